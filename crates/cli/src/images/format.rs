//! Output formatting shared by the image commands: Docker-style sizes and
//! ages, table columns, and a small subset of Go templates for `--format`
//! (`{{.Field}}`, `{{.A.B}}`, `{{json .X}}`, `{{json .}}`, a leading
//! `table`, and `\t`/`\n` escapes) evaluated over JSON values.

use serde_json::Value;

/// Docker's human sizes: SI units, 3 significant digits (`5.27MB`).
pub fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "kB", "MB", "GB", "TB", "PB"];
    let mut v = bytes as f64;
    let mut i = 0;
    while v >= 1000.0 && i < UNITS.len() - 1 {
        v /= 1000.0;
        i += 1;
    }
    let digits = if v >= 100.0 {
        0
    } else if v >= 10.0 {
        1
    } else {
        2
    };
    let t = format!("{v:.digits$}");
    let t = if t.contains('.') {
        t.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        t
    };
    format!("{t}{}", UNITS[i])
}

/// Docker's relative ages (`About a minute ago`, `3 hours ago`).
pub fn age(seconds: i64) -> String {
    let s = seconds.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    let body = if s < 1 {
        "Less than a second".to_string()
    } else if s < 60 {
        format!("{s} seconds")
    } else if m == 1 {
        "About a minute".to_string()
    } else if m < 60 {
        format!("{m} minutes")
    } else if h == 1 {
        "About an hour".to_string()
    } else if h < 48 {
        format!("{h} hours")
    } else if d < 14 {
        format!("{d} days")
    } else if d < 60 {
        format!("{} weeks", d / 7)
    } else if d < 730 {
        format!("{} months", d / 30)
    } else {
        format!("{} years", d / 365)
    };
    format!("{body} ago")
}

/// Go's `fmt` rendering of a JSON value in a template (`[a b]`, `map[k:v]`).
fn go_string(v: &Value) -> String {
    match v {
        Value::Null => "<no value>".into(),
        Value::String(s) => s.clone(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter().map(go_string).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(o) => format!(
            "map[{}]",
            o.iter()
                .map(|(k, v)| format!("{k}:{}", go_string(v)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        other => other.to_string(),
    }
}

fn lookup<'a>(v: &'a Value, path: &str) -> Result<&'a Value, String> {
    let path = path.trim();
    if path == "." {
        return Ok(v);
    }
    let rest = path
        .strip_prefix('.')
        .ok_or_else(|| format!("unsupported template expression {path:?}"))?;
    let mut cur = v;
    for field in rest.split('.') {
        cur = match cur.get(field) {
            Some(x) => x,
            None => {
                // Go templates match field names exactly; accept a
                // case-insensitive match as Docker's JSON keys vary.
                cur.as_object()
                    .and_then(|o| {
                        o.iter()
                            .find(|(k, _)| k.eq_ignore_ascii_case(field))
                            .map(|(_, v)| v)
                    })
                    .unwrap_or(&Value::Null)
            }
        };
    }
    Ok(cur)
}

/// Whether the template asks for a table with headers.
pub fn is_table(template: &str) -> bool {
    template.trim_start().starts_with("table")
}

/// Renders `template` over `v`.
pub fn render(template: &str, v: &Value) -> Result<String, String> {
    let t = template.trim_start();
    let t = t
        .strip_prefix("table")
        .map(str::trim_start)
        .unwrap_or(template);
    let t = t.replace("\\t", "\t").replace("\\n", "\n");
    let mut out = String::new();
    let mut rest = t.as_str();
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .ok_or_else(|| format!("unterminated {{{{ in template {template:?}"))?;
        let expr = rest[start + 2..start + end].trim();
        let rendered = if let Some(arg) = expr.strip_prefix("json ") {
            serde_json::to_string(lookup(v, arg)?).map_err(|e| e.to_string())?
        } else {
            go_string(lookup(v, expr)?)
        };
        out.push_str(&rendered);
        rest = &rest[start + end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

pub use crate::format::table;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes_and_ages() {
        for (b, s) in [
            (0, "0B"),
            (999, "999B"),
            (1000, "1kB"),
            (4_260_000, "4.26MB"),
            (12_340_000, "12.3MB"),
            (123_400_000, "123MB"),
            (1_500_000_000, "1.5GB"),
        ] {
            assert_eq!(human_size(b), s, "{b}");
        }
        assert_eq!(age(5), "5 seconds ago");
        assert_eq!(age(90), "About a minute ago");
        assert_eq!(age(7200), "2 hours ago");
        assert_eq!(age(3 * 86400), "3 days ago");
    }

    #[test]
    fn templates() {
        let v = json!({"ID": "abc", "Config": {"Cmd": ["sh", "-c"], "Env": null},
                       "Labels": {"a": "1"}});
        assert_eq!(render("{{.ID}}", &v).unwrap(), "abc");
        assert_eq!(render("{{.Config.Cmd}}", &v).unwrap(), "[sh -c]");
        assert_eq!(
            render("{{json .Config.Cmd}}", &v).unwrap(),
            "[\"sh\",\"-c\"]"
        );
        assert_eq!(
            render("{{.id}}\\t{{.Labels}}", &v).unwrap(),
            "abc\tmap[a:1]"
        );
        assert_eq!(render("{{.Config.Env}}", &v).unwrap(), "<no value>");
        assert_eq!(render("table {{.ID}}", &v).unwrap(), "abc");
        assert!(is_table("table {{.ID}}"));
        assert!(render("{{.ID", &v).is_err());
        assert!(render("{{if .ID}}", &v).is_err());
    }

    #[test]
    fn tables_align() {
        let t = table(&[
            vec!["A".into(), "BB".into(), "C".into()],
            vec!["xxx".into(), "y".into(), "z".into()],
        ]);
        assert_eq!(t, "A     BB   C\nxxx   y    z\n");
    }
}
