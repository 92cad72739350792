//! Variable expansion and quote removal for Containerfile words, as Docker's
//! builder does it (<https://docs.docker.com/reference/dockerfile/#environment-replacement>):
//! `$VAR`, `${VAR}`, `${VAR:-word}`, `${VAR-word}`, `${VAR:+word}`,
//! `${VAR+word}`, `${VAR:?msg}`, `${VAR?msg}`; single quotes are literal;
//! inside double quotes the escape character only escapes `"`, `$` and itself;
//! outside quotes it escapes any character. Unset variables expand to "".

/// Expands words against a variable lookup.
pub struct Expander<'a> {
    escape: char,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl<'a> Expander<'a> {
    pub fn new(escape: char, lookup: &'a dyn Fn(&str) -> Option<String>) -> Self {
        Self { escape, lookup }
    }

    /// Expand a raw shell-form word: quotes removed, escapes applied.
    pub fn word(&self, raw: &str) -> Result<String, String> {
        Lexer::new(raw, self.escape, true, self.lookup).word(None)
    }

    /// Expand a word that came from a JSON array: quotes are literal and the
    /// escape character only protects `$`.
    pub fn json_word(&self, raw: &str) -> Result<String, String> {
        Lexer::new(raw, self.escape, false, self.lookup).word(None)
    }
}

/// Convenience: expand one raw word.
pub fn expand_word(
    raw: &str,
    escape: char,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<String, String> {
    Expander::new(escape, lookup).word(raw)
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    escape: char,
    quotes: bool,
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

impl<'a> Lexer<'a> {
    fn new(
        raw: &str,
        escape: char,
        quotes: bool,
        lookup: &'a dyn Fn(&str) -> Option<String>,
    ) -> Self {
        Self {
            chars: raw.chars().collect(),
            pos: 0,
            escape,
            quotes,
            lookup,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Process until `stop` (consumed) or end of input.
    fn word(&mut self, stop: Option<char>) -> Result<String, String> {
        let mut out = String::new();
        while let Some(c) = self.bump() {
            if Some(c) == stop {
                return Ok(out);
            }
            match c {
                '\'' if self.quotes => out.push_str(&self.single_quoted()?),
                '"' if self.quotes => out.push_str(&self.double_quoted()?),
                '$' => out.push_str(&self.dollar()?),
                c if c == self.escape => {
                    if self.quotes {
                        // Outside quotes the escape protects any character;
                        // a trailing escape is dropped.
                        out.extend(self.bump());
                    } else if self.peek() == Some('$') {
                        out.extend(self.bump());
                    } else {
                        out.push(c);
                    }
                }
                c => out.push(c),
            }
        }
        match stop {
            Some(s) => Err(format!("missing closing '{s}'")),
            None => Ok(out),
        }
    }

    fn single_quoted(&mut self) -> Result<String, String> {
        let mut out = String::new();
        loop {
            match self.bump() {
                Some('\'') => return Ok(out),
                Some(c) => out.push(c),
                None => return Err("unterminated single quote".into()),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, String> {
        let mut out = String::new();
        loop {
            match self.bump() {
                Some('"') => return Ok(out),
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) if c == self.escape => match self.peek() {
                    Some(n) if n == '"' || n == '$' || n == self.escape => {
                        self.pos += 1;
                        out.push(n);
                    }
                    _ => out.push(c),
                },
                Some(c) => out.push(c),
                None => return Err("unterminated double quote".into()),
            }
        }
    }

    fn name(&mut self) -> String {
        let mut name = String::new();
        while let Some(c) = self.peek().filter(|c| is_name_char(*c)) {
            name.push(c);
            self.pos += 1;
        }
        name
    }

    /// After a `$`.
    fn dollar(&mut self) -> Result<String, String> {
        match self.peek() {
            Some('{') => {
                self.pos += 1;
                self.braced()
            }
            Some(c) if is_name_char(c) => {
                let name = self.name();
                Ok((self.lookup)(&name).unwrap_or_default())
            }
            _ => Ok("$".into()),
        }
    }

    /// After `${`.
    fn braced(&mut self) -> Result<String, String> {
        let name = self.name();
        if name.is_empty() {
            return Err("bad substitution: empty variable name in ${}".into());
        }
        let value = (self.lookup)(&name);
        let colon = self.peek() == Some(':');
        if colon {
            self.pos += 1;
        }
        let op = self.bump();
        if op == Some('}') && !colon {
            return Ok(value.unwrap_or_default());
        }
        // "set" means non-empty with ':' and defined without it.
        let set = match &value {
            Some(v) => !colon || !v.is_empty(),
            None => false,
        };
        match op {
            Some('-') => {
                let word = self.word(Some('}'))?;
                Ok(if set { value.unwrap_or_default() } else { word })
            }
            Some('+') => {
                let word = self.word(Some('}'))?;
                Ok(if set { word } else { String::new() })
            }
            Some('?') => {
                let word = self.word(Some('}'))?;
                if set {
                    Ok(value.unwrap_or_default())
                } else if word.is_empty() {
                    Err(format!("{name}: parameter not set or null"))
                } else {
                    Err(format!("{name}: {word}"))
                }
            }
            Some(c) => Err(format!("unsupported modifier {c:?} in ${{{name}...}}")),
            None => Err(format!("missing closing '}}' after ${{{name}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(name: &str) -> Option<String> {
        match name {
            "A" => Some("alpha".into()),
            "EMPTY" => Some(String::new()),
            "SP" => Some("a b".into()),
            _ => None,
        }
    }

    #[test]
    fn expansion_table() {
        let cases: &[(&str, &str)] = &[
            ("plain", "plain"),
            ("$A", "alpha"),
            ("${A}", "alpha"),
            ("x${A}y", "xalphay"),
            ("$A/b", "alpha/b"),
            ("$UNSET", ""),
            ("${UNSET}", ""),
            ("${UNSET:-def}", "def"),
            ("${UNSET-def}", "def"),
            ("${EMPTY:-def}", "def"),
            ("${EMPTY-def}", ""),
            ("${A:-def}", "alpha"),
            ("${A:+alt}", "alt"),
            ("${A+alt}", "alt"),
            ("${EMPTY:+alt}", ""),
            ("${EMPTY+alt}", "alt"),
            ("${UNSET:+alt}", ""),
            ("${UNSET:-${A}}", "alpha"),
            ("${UNSET:-a b}", "a b"),
            ("'$A'", "$A"),
            ("\"$A\"", "alpha"),
            ("\"${SP}\"", "a b"),
            ("\\$A", "$A"),
            ("\"\\$A\"", "$A"),
            ("\"a\\b\"", "a\\b"),
            ("\"q\\\"q\"", "q\"q"),
            ("a\\ b", "a b"),
            ("$", "$"),
            ("a$", "a$"),
            ("$-x", "$-x"),
            ("trailing\\", "trailing"),
            ("${A:?boom}", "alpha"),
        ];
        for (raw, want) in cases {
            assert_eq!(expand_word(raw, '\\', &vars).as_deref(), Ok(*want), "{raw}");
        }
    }

    #[test]
    fn backtick_escape() {
        assert_eq!(
            expand_word("`$A c:\\dir", '`', &vars).as_deref(),
            Ok("$A c:\\dir")
        );
    }

    #[test]
    fn json_words_keep_quotes() {
        let e = Expander::new('\\', &vars);
        assert_eq!(e.json_word("'$A' \"x\"").as_deref(), Ok("'alpha' \"x\""));
        assert_eq!(e.json_word("\\$A c:\\x").as_deref(), Ok("$A c:\\x"));
    }

    #[test]
    fn expansion_errors() {
        let cases: &[(&str, &str)] = &[
            ("${A", "missing"),
            ("${}", "empty variable name"),
            ("${A%x}", "unsupported modifier"),
            ("'open", "single quote"),
            ("\"open", "double quote"),
            ("${UNSET:-abc", "missing closing"),
            ("${UNSET:?must be set}", "UNSET: must be set"),
            ("${EMPTY:?}", "EMPTY: parameter not set"),
        ];
        for (raw, needle) in cases {
            let err = expand_word(raw, '\\', &vars).unwrap_err();
            assert!(err.contains(needle), "{raw}: {err}");
        }
    }
}
