//! Value conversions between OCI (cgroup v1 units) and cgroup v2 files, as
//! pure functions.

use std::collections::BTreeSet;

/// cpu.shares (v1, 2..=262144, default 1024) → cpu.weight (v2, 1..=10000,
/// default 100), the linear mapping runc and crun use:
/// `weight = 1 + ((shares - 2) * 9999) / 262142`. 0 means "unset" → 0.
/// (See <https://github.com/containers/crun/blob/main/crun.1.md#cpu-controller>.)
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let s = shares.clamp(2, 262_144);
    1 + ((s - 2) * 9999) / 262_142
}

/// blkio.weight (v1, 10..=1000) → io.weight (v2, 1..=10000):
/// `1 + ((weight - 10) * 9999) / 990`. 0 means "unset" → 0.
pub fn blkio_weight_to_io_weight(weight: u64) -> u64 {
    if weight == 0 {
        return 0;
    }
    let w = weight.clamp(10, 1000);
    1 + ((w - 10) * 9999) / 990
}

/// What to write to v2 `memory.swap.max` for OCI `memory.swap` (which, as on
/// v1, is memory+swap) and `memory.limit`. `Ok(None)`: leave unset;
/// `Ok(Some(None))`: "max"; `Ok(Some(Some(n)))`: n bytes of swap.
pub fn swap_to_v2(swap: Option<i64>, limit: Option<i64>) -> Result<Option<Option<u64>>, String> {
    let limit = limit.unwrap_or(0);
    match swap.unwrap_or(0) {
        // Unlimited memory and swap unset: unlimited swap too (as on v1).
        0 if limit == -1 => Ok(Some(None)),
        0 => Ok(None),
        -1 => Ok(Some(None)),
        s if s < -1 => Err(format!("{s} is not a valid limit (use -1 for unlimited)")),
        s => {
            if limit <= 0 {
                return Err(
                    "a swap limit needs a memory limit (memory.swap is memory+swap)".into(),
                );
            }
            if s < limit {
                return Err(format!(
                    "memory+swap limit {s} is below memory.limit {limit}"
                ));
            }
            Ok(Some(Some((s - limit) as u64)))
        }
    }
}

/// v2 `cpu.max` content for OCI quota/period (µs). `None` when neither set.
pub fn cpu_max(quota: Option<i64>, period: Option<u64>) -> Option<String> {
    let quota = quota.unwrap_or(0);
    let period = period.unwrap_or(0);
    if quota == 0 && period == 0 {
        return None;
    }
    let mut s = if quota > 0 {
        quota.to_string()
    } else {
        "max".to_owned()
    };
    if period != 0 {
        s.push(' ');
        s.push_str(&period.to_string());
    }
    Some(s)
}

/// Parses a cpuset list ("0-3,5,7-8") into its members.
pub fn parse_cpu_list(s: &str) -> Result<BTreeSet<u32>, String> {
    let mut out = BTreeSet::new();
    let s = s.trim();
    if s.is_empty() {
        return Ok(out);
    }
    for part in s.split(',') {
        let part = part.trim();
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a, b),
            None => (part, part),
        };
        let lo: u32 = lo
            .parse()
            .map_err(|_| format!("{part:?} is not a number or range"))?;
        let hi: u32 = hi
            .parse()
            .map_err(|_| format!("{part:?} is not a number or range"))?;
        if lo > hi || hi - lo > 65_536 {
            return Err(format!("range {part:?} is reversed or too large"));
        }
        out.extend(lo..=hi);
    }
    Ok(out)
}

/// Formats members back as a compact list ("0-3,5").
pub fn format_cpu_list(set: &BTreeSet<u32>) -> String {
    let mut parts = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(start) = iter.next() {
        let mut end = start;
        while iter.peek() == Some(&(end + 1)) {
            end = iter.next().unwrap_or(end);
        }
        parts.push(if start == end {
            start.to_string()
        } else {
            format!("{start}-{end}")
        });
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_weight_mapping_endpoints() {
        assert_eq!(shares_to_weight(0), 0);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(shares_to_weight(1024), 39);
        assert_eq!(shares_to_weight(262_144), 10_000);
        assert_eq!(shares_to_weight(1), 1, "clamped to the v1 minimum");
    }

    #[test]
    fn blkio_weight_mapping_endpoints() {
        assert_eq!(blkio_weight_to_io_weight(10), 1);
        assert_eq!(blkio_weight_to_io_weight(500), 1 + (490 * 9999) / 990);
        assert_eq!(blkio_weight_to_io_weight(1000), 10_000);
    }

    #[test]
    fn swap_conversion() {
        assert_eq!(swap_to_v2(None, None), Ok(None));
        assert_eq!(swap_to_v2(None, Some(-1)), Ok(Some(None)));
        assert_eq!(swap_to_v2(Some(-1), Some(100)), Ok(Some(None)));
        assert_eq!(swap_to_v2(Some(300), Some(100)), Ok(Some(Some(200))));
        assert_eq!(swap_to_v2(Some(100), Some(100)), Ok(Some(Some(0))));
        assert!(swap_to_v2(Some(50), Some(100)).is_err());
        assert!(swap_to_v2(Some(50), None).is_err());
        assert!(swap_to_v2(Some(-5), Some(100)).is_err());
    }

    #[test]
    fn cpu_max_strings() {
        assert_eq!(cpu_max(None, None), None);
        assert_eq!(
            cpu_max(Some(20_000), Some(100_000)).as_deref(),
            Some("20000 100000")
        );
        assert_eq!(cpu_max(Some(-1), None).as_deref(), Some("max"));
        assert_eq!(cpu_max(None, Some(50_000)).as_deref(), Some("max 50000"));
        assert_eq!(cpu_max(Some(5000), None).as_deref(), Some("5000"));
    }

    #[test]
    fn cpu_lists() {
        let s = parse_cpu_list("0-3,5, 7-8").unwrap();
        assert_eq!(
            s.iter().copied().collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 5, 7, 8]
        );
        assert_eq!(format_cpu_list(&s), "0-3,5,7-8");
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("a").is_err());
        assert!(parse_cpu_list("").unwrap().is_empty());
    }
}
