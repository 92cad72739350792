//! `.dockerignore` matching and the glob patterns COPY/ADD sources use.
//!
//! Patterns follow Go's `filepath.Match` (`*`, `?`, `[a-z]`, `[^a-z]`, `\`
//! escapes) plus `**` for any number of directories, as Docker's
//! patternmatcher does (<https://docs.docker.com/build/concepts/context/#dockerignore-files>).
//! A path is excluded when the last pattern that matches it (or one of its
//! parent directories) is not a `!` exception.

use super::error::ContainerfileError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `**/` (or `**` followed by more pattern): empty or anything ending in `/`.
    AnyDirs,
    /// `**` at the end: anything.
    AnyAll,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

/// A compiled glob pattern over `/`-separated relative paths.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    source: String,
    tokens: Vec<Token>,
}

impl Glob {
    /// Compile `pattern`; errors describe what is wrong.
    pub fn new(pattern: &str) -> Result<Self, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '*' if chars.get(i + 1) == Some(&'*') => {
                    i += 2;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                    }
                    tokens.push(if i >= chars.len() {
                        Token::AnyAll
                    } else {
                        Token::AnyDirs
                    });
                    continue;
                }
                '*' => tokens.push(Token::Star),
                '?' => tokens.push(Token::One),
                '\\' => {
                    i += 1;
                    let c = *chars
                        .get(i)
                        .ok_or_else(|| "trailing escape character".to_string())?;
                    tokens.push(Token::Literal(c));
                }
                '[' => {
                    let (tok, next) = parse_class(&chars, i + 1)?;
                    tokens.push(tok);
                    i = next;
                    continue;
                }
                c => tokens.push(Token::Literal(c)),
            }
            i += 1;
        }
        Ok(Self {
            source: pattern.to_string(),
            tokens,
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Whether the whole of `path` matches.
    pub fn matches(&self, path: &str) -> bool {
        let chars: Vec<char> = path.chars().collect();
        match_tokens(&self.tokens, &chars)
    }

    /// Whether `path` or one of its parent directories matches.
    pub fn matches_self_or_parent(&self, path: &str) -> bool {
        if self.matches(path) {
            return true;
        }
        path.match_indices('/')
            .any(|(idx, _)| self.matches(&path[..idx]))
    }

    /// Whether the pattern contains glob metacharacters at all.
    pub fn is_literal(&self) -> bool {
        self.tokens.iter().all(|t| matches!(t, Token::Literal(_)))
    }
}

/// Parse a `[...]` class starting after the `[`; returns the token and the
/// index after the closing `]`.
fn parse_class(chars: &[char], mut i: usize) -> Result<(Token, usize), String> {
    let negated = chars.get(i) == Some(&'^');
    if negated {
        i += 1;
    }
    let mut ranges = Vec::new();
    let mut first = true;
    loop {
        let c = *chars
            .get(i)
            .ok_or_else(|| "unterminated [ class".to_string())?;
        if c == ']' && !first {
            return Ok((Token::Class { negated, ranges }, i + 1));
        }
        first = false;
        let lo = class_char(chars, &mut i)?;
        let hi = if chars.get(i) == Some(&'-') && chars.get(i + 1) != Some(&']') {
            i += 1;
            class_char(chars, &mut i)?
        } else {
            lo
        };
        if hi < lo {
            return Err(format!("bad range {lo}-{hi} in [ class"));
        }
        ranges.push((lo, hi));
    }
}

fn class_char(chars: &[char], i: &mut usize) -> Result<char, String> {
    let mut c = *chars
        .get(*i)
        .ok_or_else(|| "unterminated [ class".to_string())?;
    if c == '\\' {
        *i += 1;
        c = *chars
            .get(*i)
            .ok_or_else(|| "unterminated [ class".to_string())?;
    }
    *i += 1;
    Ok(c)
}

fn match_tokens(tokens: &[Token], s: &[char]) -> bool {
    let Some((tok, rest)) = tokens.split_first() else {
        return s.is_empty();
    };
    match tok {
        Token::Literal(c) => s.first() == Some(c) && match_tokens(rest, &s[1..]),
        Token::One => s.first().is_some_and(|c| *c != '/') && match_tokens(rest, &s[1..]),
        Token::Class { negated, ranges } => {
            s.first().is_some_and(|c| {
                *c != '/' && ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negated
            }) && match_tokens(rest, &s[1..])
        }
        Token::Star => {
            for n in 0..=s.len() {
                if match_tokens(rest, &s[n..]) {
                    return true;
                }
                if n < s.len() && s[n] == '/' {
                    return false;
                }
            }
            false
        }
        Token::AnyAll => true,
        Token::AnyDirs => {
            if match_tokens(rest, s) {
                return true;
            }
            (0..s.len()).any(|n| s[n] == '/' && match_tokens(rest, &s[n + 1..]))
        }
    }
}

/// Normalise a context-relative path or pattern the way Go's `filepath.Clean`
/// does, without a leading `/`: `./a//b/../c/` → `a/c`. Leading `..` stays so
/// the caller can refuse it.
pub fn clean_relative(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        match comp {
            "" | "." => {}
            ".." => {
                if matches!(parts.last(), Some(p) if *p != "..") {
                    parts.pop();
                } else {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    if parts.is_empty() {
        ".".into()
    } else {
        parts.join("/")
    }
}

#[derive(Debug, Clone)]
struct Rule {
    glob: Glob,
    exception: bool,
}

/// The rules of a `.dockerignore` file.
#[derive(Debug, Clone, Default)]
pub struct IgnoreMatcher {
    rules: Vec<Rule>,
}

impl IgnoreMatcher {
    /// Parse `.dockerignore` text: one pattern a line, `#` comments, blank
    /// lines ignored, `!` marks an exception.
    pub fn parse(text: &str) -> Result<Self, ContainerfileError> {
        let mut rules = Vec::new();
        for raw in text.lines() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, pat) = match line.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, line),
            };
            if pat.is_empty() {
                return Err(ContainerfileError::BadIgnorePattern {
                    pattern: line.to_string(),
                    message: "empty exception pattern".into(),
                });
            }
            let cleaned = clean_relative(pat);
            let glob =
                Glob::new(&cleaned).map_err(|message| ContainerfileError::BadIgnorePattern {
                    pattern: pat.to_string(),
                    message,
                })?;
            rules.push(Rule { glob, exception });
        }
        Ok(Self { rules })
    }

    /// Whether the context-relative `path` is excluded from the context.
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = clean_relative(path);
        let mut excluded = false;
        for rule in &self.rules {
            if rule.glob.matches_self_or_parent(&path) {
                excluded = !rule.exception;
            }
        }
        excluded
    }

    /// Whether any exception rule exists (a directory that is excluded may
    /// still hold re-included files, so it cannot be skipped wholesale).
    pub fn has_exceptions(&self) -> bool {
        self.rules.iter().any(|r| r.exception)
    }

    /// No rules at all.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("*.go", "main.go", true),
            ("*.go", "dir/main.go", false),
            ("*/*.go", "dir/main.go", true),
            ("a?c", "abc", true),
            ("a?c", "a/c", false),
            ("[a-c]x", "bx", true),
            ("[a-c]x", "dx", false),
            ("[^a-c]x", "dx", true),
            ("[^a-c]x", "ax", false),
            ("[]a]", "]", true),
            ("\\*", "*", true),
            ("\\*", "x", false),
            ("**/*.go", "main.go", true),
            ("**/*.go", "a/b/c/main.go", true),
            ("**/*.go", "a/b/main.rs", false),
            ("a/**/b", "a/b", true),
            ("a/**/b", "a/x/y/b", true),
            ("a/**", "a/x/y", true),
            ("**", "anything/at/all", true),
            ("*", "", true),
            ("abc", "abcd", false),
        ];
        for (pat, path, want) in cases {
            assert_eq!(
                Glob::new(pat).unwrap().matches(path),
                *want,
                "{pat} vs {path}"
            );
        }
    }

    #[test]
    fn bad_globs() {
        for pat in ["[a-", "[", "x\\", "[z-a]"] {
            assert!(Glob::new(pat).is_err(), "{pat}");
        }
    }

    #[test]
    fn clean_relative_table() {
        let cases: &[(&str, &str)] = &[
            ("./a//b/../c/", "a/c"),
            ("/abs/x", "abs/x"),
            ("../x", "../x"),
            ("a/../../x", "../x"),
            (".", "."),
            ("", "."),
        ];
        for (input, want) in cases {
            assert_eq!(clean_relative(input), *want, "{input}");
        }
    }

    #[test]
    fn dockerignore_table() {
        let m = IgnoreMatcher::parse(
            "# comment\n\n*.md\n!README.md\ntarget\n/build/\n**/*.tmp\nsecret?\n!docs/keep/**\ndocs\n",
        )
        .unwrap();
        let cases: &[(&str, bool)] = &[
            ("CHANGES.md", true),
            ("README.md", false),
            ("sub/CHANGES.md", false),
            ("target", true),
            ("target/debug/x", true),
            ("build/out.o", true),
            ("src/build/out.o", false),
            ("a/b/c.tmp", true),
            ("c.tmp", true),
            ("secret1", true),
            ("secret12", false),
            ("src/main.rs", false),
            // `docs` comes after the exception, so it wins.
            ("docs/keep/a", true),
            ("docs/other", true),
        ];
        for (path, want) in cases {
            assert_eq!(m.is_excluded(path), *want, "{path}");
        }
        assert!(m.has_exceptions());
    }

    #[test]
    fn exception_after_directory_exclusion() {
        let m = IgnoreMatcher::parse("vendor\n!vendor/keep.txt\n").unwrap();
        assert!(m.is_excluded("vendor/drop.txt"));
        assert!(!m.is_excluded("vendor/keep.txt"));
    }

    #[test]
    fn bad_ignore_pattern_is_named() {
        let err = IgnoreMatcher::parse("ok\n[oops\n").unwrap_err().to_string();
        assert!(err.contains("[oops"), "{err}");
        assert!(IgnoreMatcher::parse("!\n").is_err());
    }
}
