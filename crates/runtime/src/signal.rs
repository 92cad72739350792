//! Signal names and numbers as `kill` accepts them: `9`, `KILL`, `SIGKILL`,
//! `sigterm`, and the real-time `RTMIN+3` forms.

use crate::error::{Error, Result};

const NAMES: [(&str, i32); 31] = [
    ("HUP", 1),
    ("INT", 2),
    ("QUIT", 3),
    ("ILL", 4),
    ("TRAP", 5),
    ("ABRT", 6),
    ("IOT", 6),
    ("BUS", 7),
    ("FPE", 8),
    ("KILL", 9),
    ("USR1", 10),
    ("SEGV", 11),
    ("USR2", 12),
    ("PIPE", 13),
    ("ALRM", 14),
    ("TERM", 15),
    ("STKFLT", 16),
    ("CHLD", 17),
    ("CONT", 18),
    ("STOP", 19),
    ("TSTP", 20),
    ("TTIN", 21),
    ("TTOU", 22),
    ("URG", 23),
    ("XCPU", 24),
    ("XFSZ", 25),
    ("VTALRM", 26),
    ("PROF", 27),
    ("WINCH", 28),
    ("IO", 29),
    ("PWR", 30),
];

pub fn parse(s: &str) -> Result<i32> {
    let bad = || Error::Signal(s.to_string());
    if let Ok(n) = s.parse::<i32>() {
        return if (1..=64).contains(&n) {
            Ok(n)
        } else {
            Err(bad())
        };
    }
    let up = s.to_ascii_uppercase();
    let name = up.strip_prefix("SIG").unwrap_or(&up);
    if name == "SYS" {
        return Ok(31);
    }
    if let Some(&(_, n)) = NAMES.iter().find(|(k, _)| *k == name) {
        return Ok(n);
    }
    let rtmin = libc::SIGRTMIN();
    let rtmax = libc::SIGRTMAX();
    let rt = |base: i32, off: &str, sign: i32| {
        off.parse::<i32>()
            .ok()
            .map(|o| base + sign * o)
            .filter(|n| (rtmin..=rtmax).contains(n))
    };
    let n = match name {
        "RTMIN" => Some(rtmin),
        "RTMAX" => Some(rtmax),
        _ => name
            .strip_prefix("RTMIN+")
            .and_then(|o| rt(rtmin, o, 1))
            .or_else(|| name.strip_prefix("RTMAX-").and_then(|o| rt(rtmax, o, -1))),
    };
    n.ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn names_and_numbers() {
        assert_eq!(parse("9").unwrap(), 9);
        assert_eq!(parse("KILL").unwrap(), 9);
        assert_eq!(parse("SIGTERM").unwrap(), 15);
        assert_eq!(parse("sigusr1").unwrap(), 10);
        assert_eq!(parse("RTMIN+1").unwrap(), libc::SIGRTMIN() + 1);
        for bad in ["0", "65", "SIGFOO", "", "RTMIN+99"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
