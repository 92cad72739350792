//! Containerfile parser: parser directives, comments, line continuations and
//! the per-instruction argument grammar.
//!
//! Follows <https://docs.docker.com/reference/dockerfile/#format>: directives
//! (`# syntax=`, `# escape=`, `# check=`) are honoured only at the very top;
//! comment lines are dropped even inside continuations; an instruction ends at
//! a line that does not end with the escape character. Heredocs are not
//! supported.

use super::ast::{
    CommandForm, Containerfile, CopyArgs, Healthcheck, Heredoc, Instruction, InstructionKind,
};
use super::error::ContainerfileError;

/// A logical line: continuation-joined text and the line it starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct LogicalLine {
    line: usize,
    text: String,
    heredocs: Vec<Heredoc>,
}

/// Parse a whole Containerfile.
pub fn parse(text: &str) -> Result<Containerfile, ContainerfileError> {
    let lines: Vec<&str> = text.lines().collect();
    let (directives, first_body_line) = parse_directives(&lines)?;
    let mut escape = '\\';
    let mut syntax = None;
    for (line, name, value) in &directives {
        match name.as_str() {
            "escape" => {
                escape = match value.as_str() {
                    "\\" => '\\',
                    "`" => '`',
                    other => {
                        return Err(ContainerfileError::Directive {
                            line: *line,
                            message: format!("invalid escape character {other:?} (use \\ or `)"),
                        });
                    }
                }
            }
            "syntax" => syntax = Some(value.clone()),
            _ => {}
        }
    }
    let logical = logical_lines(&lines, first_body_line, escape)?;
    let mut instructions = Vec::with_capacity(logical.len());
    for l in logical {
        let mut ins = parse_instruction(l.line, &l.text, escape)?;
        ins.heredocs = l.heredocs;
        instructions.push(ins);
    }
    Ok(Containerfile {
        syntax,
        escape,
        instructions,
    })
}

/// `(line, lower-case name, value)` of a parser directive.
type Directive = (usize, String, String);

/// Directives at the top of the file: `(line, lower-case name, value)`, and
/// the index of the first line that is not a directive.
fn parse_directives(lines: &[&str]) -> Result<(Vec<Directive>, usize), ContainerfileError> {
    let mut found: Vec<Directive> = Vec::new();
    for (idx, raw) in lines.iter().enumerate() {
        let Some((name, value)) = directive_of(raw) else {
            return Ok((found, idx));
        };
        if !matches!(name.as_str(), "syntax" | "escape" | "check") {
            // Unknown directives are comments, and end directive processing.
            return Ok((found, idx));
        }
        if found.iter().any(|(_, n, _)| *n == name) {
            return Err(ContainerfileError::Directive {
                line: idx + 1,
                message: format!("{name} directive given twice"),
            });
        }
        found.push((idx + 1, name, value));
    }
    Ok((found, lines.len()))
}

/// `# name=value` → `(lower-case name, value)`.
fn directive_of(line: &str) -> Option<(String, String)> {
    let rest = line.trim_start().strip_prefix('#')?;
    let (name, value) = rest.split_once('=')?;
    let name = name.trim();
    let mut chars = name.chars();
    let first = chars.next()?;
    if !first.is_ascii_alphabetic() || !chars.all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    Some((name.to_ascii_lowercase(), value.to_string()))
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// Join continuation lines, dropping comments and blank lines, and collect
/// the heredoc bodies that follow a RUN/COPY/ADD line.
fn logical_lines(
    lines: &[&str],
    start: usize,
    escape: char,
) -> Result<Vec<LogicalLine>, ContainerfileError> {
    let mut out = Vec::new();
    let mut current: Option<LogicalLine> = None;
    let mut idx = start;
    while idx < lines.len() {
        let raw = lines[idx];
        idx += 1;
        if is_comment(raw) || raw.trim().is_empty() {
            continue;
        }
        let trimmed = raw.trim_end();
        let (body, continues) = match trimmed.strip_suffix(escape) {
            Some(body) => (body, true),
            None => (trimmed, false),
        };
        let entry = current.get_or_insert_with(|| LogicalLine {
            line: idx,
            text: String::new(),
            heredocs: Vec::new(),
        });
        if entry.text.is_empty() {
            entry.text.push_str(body.trim_start());
        } else {
            entry.text.push_str(body);
        }
        if !continues {
            let mut done = current
                .take()
                .unwrap_or_else(|| unreachable!("entry was just set"));
            for marker in heredoc_markers(&done.text) {
                let (heredoc, next) = read_heredoc(lines, idx, marker, done.line)?;
                done.heredocs.push(heredoc);
                idx = next;
            }
            out.push(done);
        }
    }
    // A trailing continuation at end of file still forms an instruction.
    out.extend(current.take().filter(|l| !l.text.trim().is_empty()));
    Ok(out)
}

/// A heredoc marker found on an instruction line: `<<[-]["']NAME["']`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct HeredocMarker {
    name: String,
    strip_tabs: bool,
    quoted: bool,
}

/// Heredoc markers of a RUN/COPY/ADD shell-form line, in order
/// (<https://docs.docker.com/reference/dockerfile/#here-documents>).
fn heredoc_markers(text: &str) -> Vec<HeredocMarker> {
    let keyword = text.split_whitespace().next().unwrap_or_default();
    if !["RUN", "COPY", "ADD"].contains(&keyword.to_ascii_uppercase().as_str()) {
        return Vec::new();
    }
    let rest = text[keyword.len()..].trim_start();
    if rest.starts_with('[') {
        return Vec::new();
    }
    let chars: Vec<char> = rest.chars().collect();
    let mut out = Vec::new();
    let mut quote: Option<char> = None;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '<'
                && chars.get(i + 1) == Some(&'<')
                && chars.get(i + 2) != Some(&'<') =>
            {
                let mut j = i + 2;
                let strip_tabs = chars.get(j) == Some(&'-');
                if strip_tabs {
                    j += 1;
                }
                let open = chars.get(j).copied().filter(|c| *c == '"' || *c == '\'');
                if open.is_some() {
                    j += 1;
                }
                let name_start = j;
                while chars.get(j).is_some_and(|c| {
                    c.is_ascii_alphanumeric() || *c == '_' || *c == '.' || *c == '-'
                }) {
                    j += 1;
                }
                let name: String = chars[name_start..j].iter().collect();
                let closed = match open {
                    Some(q) => chars.get(j) == Some(&q),
                    None => true,
                };
                if !name.is_empty() && closed {
                    if open.is_some() {
                        j += 1;
                    }
                    out.push(HeredocMarker {
                        name,
                        strip_tabs,
                        quoted: open.is_some(),
                    });
                    i = j;
                    continue;
                }
            }
            None => {}
        }
        i += 1;
    }
    out
}

/// Read one heredoc body starting at `lines[start]`; returns it and the
/// index of the line after its terminator.
fn read_heredoc(
    lines: &[&str],
    start: usize,
    marker: HeredocMarker,
    line: usize,
) -> Result<(Heredoc, usize), ContainerfileError> {
    let mut content = String::new();
    for (idx, raw) in lines.iter().enumerate().skip(start) {
        let text = if marker.strip_tabs {
            raw.trim_start_matches('\t')
        } else {
            raw
        };
        if text.trim_end() == marker.name {
            return Ok((
                Heredoc {
                    name: marker.name,
                    content,
                    strip_tabs: marker.strip_tabs,
                    expand: !marker.quoted,
                },
                idx + 1,
            ));
        }
        content.push_str(text);
        content.push('\n');
    }
    Err(ContainerfileError::syntax(
        line,
        "heredoc",
        format!(
            "no terminating line {:?} for <<{}",
            marker.name, marker.name
        ),
    ))
}

/// Split `text` into words at unquoted, unescaped whitespace, keeping quotes
/// and escapes in the words (they are removed at expansion time).
pub(crate) fn split_words_raw(text: &str, escape: char) -> Vec<String> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    // Depth of `${...}`: whitespace inside a substitution does not split.
    let mut braces = 0usize;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == escape && quote != Some('\'') {
            cur.push(c);
            if let Some(n) = chars.next() {
                cur.push(n);
            }
            in_word = true;
            continue;
        }
        if quote != Some('\'') {
            if c == '$' && chars.peek() == Some(&'{') {
                braces += 1;
            } else if c == '}' && braces > 0 {
                braces -= 1;
            }
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c.is_whitespace() && braces == 0 => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
                continue;
            }
            None => {}
        }
        cur.push(c);
        in_word = true;
    }
    if in_word {
        words.push(cur);
    }
    words
}

/// Index of the first `=` outside quotes and escapes.
fn unquoted_eq(word: &str, escape: char) -> Option<usize> {
    let mut quote: Option<char> = None;
    let mut skip = false;
    for (i, c) in word.char_indices() {
        if skip {
            skip = false;
            continue;
        }
        if c == escape && quote != Some('\'') {
            skip = true;
            continue;
        }
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '\'' || c == '"' => quote = Some(c),
            None if c == '=' => return Some(i),
            None => {}
        }
    }
    None
}

/// Leading `--name[=value]` flags and the rest of the argument text.
fn take_flags(args: &str) -> (Vec<(String, Option<String>)>, &str) {
    let mut flags = Vec::new();
    let mut rest = args.trim_start();
    while let Some(after) = rest.strip_prefix("--") {
        let end = after.find(char::is_whitespace).unwrap_or(after.len());
        let flag = &after[..end];
        if flag.is_empty() {
            break;
        }
        match flag.split_once('=') {
            Some((n, v)) => flags.push((n.to_ascii_lowercase(), Some(v.to_string()))),
            None => flags.push((flag.to_ascii_lowercase(), None)),
        }
        rest = after[end..].trim_start();
    }
    (flags, rest)
}

/// `["a", "b"]` → exec form; anything else (including malformed JSON, as
/// Docker does) → shell form.
fn command_form(args: &str) -> CommandForm {
    match json_array(args) {
        Some(v) => CommandForm::Exec(v),
        None => CommandForm::Shell(args.trim().to_string()),
    }
}

fn json_array(args: &str) -> Option<Vec<String>> {
    let t = args.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(t).ok()
}

fn check_flags(
    line: usize,
    keyword: &str,
    flags: &[(String, Option<String>)],
    allowed: &[&str],
) -> Result<(), ContainerfileError> {
    for (name, _) in flags {
        if !allowed.contains(&name.as_str()) {
            return Err(ContainerfileError::syntax(
                line,
                keyword,
                format!("unknown flag: --{name}"),
            ));
        }
    }
    Ok(())
}

fn flag_value(
    line: usize,
    keyword: &str,
    flags: &[(String, Option<String>)],
    name: &str,
) -> Result<Option<String>, ContainerfileError> {
    match flags.iter().rev().find(|(n, _)| n == name) {
        None => Ok(None),
        Some((_, Some(v))) => Ok(Some(v.clone())),
        Some((_, None)) => Err(ContainerfileError::syntax(
            line,
            keyword,
            format!("flag --{name} needs a value (--{name}=VALUE)"),
        )),
    }
}

/// Parse one logical line into an instruction.
pub(crate) fn parse_instruction(
    line: usize,
    text: &str,
    escape: char,
) -> Result<Instruction, ContainerfileError> {
    let text = text.trim();
    let (word, args) = match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim()),
        None => (text, ""),
    };
    let keyword = word.to_ascii_uppercase();
    let kind = parse_kind(line, &keyword, args, escape)?;
    let original = if args.is_empty() {
        keyword
    } else {
        format!("{keyword} {args}")
    };
    Ok(Instruction {
        line,
        original,
        kind,
        heredocs: Vec::new(),
    })
}

fn require_args(line: usize, keyword: &str, args: &str) -> Result<(), ContainerfileError> {
    if args.trim().is_empty() {
        return Err(ContainerfileError::syntax(
            line,
            keyword,
            "requires at least one argument",
        ));
    }
    Ok(())
}

fn parse_kind(
    line: usize,
    keyword: &str,
    args: &str,
    escape: char,
) -> Result<InstructionKind, ContainerfileError> {
    let known = [
        "FROM",
        "RUN",
        "COPY",
        "ADD",
        "ENV",
        "ARG",
        "WORKDIR",
        "USER",
        "CMD",
        "ENTRYPOINT",
        "EXPOSE",
        "LABEL",
        "VOLUME",
        "SHELL",
        "STOPSIGNAL",
        "HEALTHCHECK",
        "ONBUILD",
        "MAINTAINER",
    ];
    if !known.contains(&keyword) {
        return Err(ContainerfileError::UnknownInstruction {
            line,
            name: keyword.to_string(),
        });
    }
    require_args(line, keyword, args)?;
    Ok(match keyword {
        "FROM" => parse_from(line, args, escape)?,
        "RUN" => {
            let (flags, rest) = take_flags(args);
            check_flags(line, keyword, &flags, &["mount", "network", "security"])?;
            require_args(line, keyword, rest)?;
            let flags = flags
                .into_iter()
                .map(|(n, v)| (n, v.unwrap_or_default()))
                .collect();
            InstructionKind::Run {
                command: command_form(rest),
                flags,
            }
        }
        "COPY" | "ADD" => {
            let copy = parse_copy(line, keyword, args, escape)?;
            if keyword == "COPY" {
                InstructionKind::Copy(copy)
            } else {
                InstructionKind::Add(copy)
            }
        }
        "ENV" => InstructionKind::Env(parse_key_values(line, keyword, args, escape)?),
        "LABEL" => InstructionKind::Label(parse_key_values(line, keyword, args, escape)?),
        "ARG" => InstructionKind::Arg(parse_arg(line, args, escape)?),
        "WORKDIR" => InstructionKind::Workdir(args.to_string()),
        "USER" => InstructionKind::User(single_word(line, keyword, args, escape)?),
        "STOPSIGNAL" => InstructionKind::StopSignal(single_word(line, keyword, args, escape)?),
        "CMD" => InstructionKind::Cmd(command_form(args)),
        "ENTRYPOINT" => InstructionKind::Entrypoint(command_form(args)),
        "EXPOSE" => InstructionKind::Expose(split_words_raw(args, escape)),
        "VOLUME" => InstructionKind::Volume(
            json_array(args).unwrap_or_else(|| split_words_raw(args, escape)),
        ),
        "SHELL" => {
            InstructionKind::Shell(json_array(args).filter(|v| !v.is_empty()).ok_or_else(|| {
                ContainerfileError::syntax(line, keyword, "requires a non-empty JSON array")
            })?)
        }
        "HEALTHCHECK" => InstructionKind::Healthcheck(parse_healthcheck(line, args)?),
        "ONBUILD" => {
            let inner = parse_instruction(line, args, escape)?;
            if matches!(
                inner.kind,
                InstructionKind::Onbuild(_)
                    | InstructionKind::From { .. }
                    | InstructionKind::Maintainer(_)
            ) {
                return Err(ContainerfileError::syntax(
                    line,
                    keyword,
                    format!(
                        "{} is not allowed as an ONBUILD trigger",
                        inner.kind.keyword()
                    ),
                ));
            }
            InstructionKind::Onbuild(Box::new(inner))
        }
        "MAINTAINER" => InstructionKind::Maintainer(args.to_string()),
        _ => unreachable!("keyword list checked above"),
    })
}

fn single_word(
    line: usize,
    keyword: &str,
    args: &str,
    escape: char,
) -> Result<String, ContainerfileError> {
    let words = split_words_raw(args, escape);
    match words.as_slice() {
        [one] => Ok(one.clone()),
        _ => Err(ContainerfileError::syntax(
            line,
            keyword,
            format!("requires exactly one argument, got {}", words.len()),
        )),
    }
}

fn parse_from(
    line: usize,
    args: &str,
    escape: char,
) -> Result<InstructionKind, ContainerfileError> {
    let (flags, rest) = take_flags(args);
    check_flags(line, "FROM", &flags, &["platform"])?;
    let platform = flag_value(line, "FROM", &flags, "platform")?;
    let words = split_words_raw(rest, escape);
    match words.as_slice() {
        [image] => Ok(InstructionKind::From {
            image: image.clone(),
            alias: None,
            platform,
        }),
        [image, as_kw, alias] if as_kw.eq_ignore_ascii_case("as") => {
            if !valid_stage_name(alias) {
                return Err(ContainerfileError::syntax(
                    line,
                    "FROM",
                    format!("invalid stage name {alias:?}"),
                ));
            }
            Ok(InstructionKind::From {
                image: image.clone(),
                alias: Some(alias.to_ascii_lowercase()),
                platform,
            })
        }
        _ => Err(ContainerfileError::syntax(
            line,
            "FROM",
            "expected `FROM [--platform=P] IMAGE [AS NAME]`",
        )),
    }
}

/// Stage names: letter first, then letters, digits, `-`, `_`, `.`.
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn parse_copy(
    line: usize,
    keyword: &str,
    args: &str,
    escape: char,
) -> Result<CopyArgs, ContainerfileError> {
    let (flags, rest) = take_flags(args);
    let allowed: &[&str] = if keyword == "COPY" {
        &["from", "chown", "chmod", "link"]
    } else {
        &["chown", "chmod", "link", "checksum", "keep-git-dir"]
    };
    check_flags(line, keyword, &flags, allowed)?;
    let (mut words, json) = match json_array(rest) {
        Some(v) => (v, true),
        None => (split_words_raw(rest, escape), false),
    };
    if words.len() < 2 {
        return Err(ContainerfileError::syntax(
            line,
            keyword,
            "requires at least two arguments: SOURCE... DEST",
        ));
    }
    let dest = words.pop().unwrap_or_default();
    Ok(CopyArgs {
        sources: words,
        dest,
        from: flag_value(line, keyword, &flags, "from")?,
        chown: flag_value(line, keyword, &flags, "chown")?,
        chmod: flag_value(line, keyword, &flags, "chmod")?,
        link: flags.iter().any(|(n, _)| n == "link"),
        checksum: flag_value(line, keyword, &flags, "checksum")?,
        json,
    })
}

/// `ENV k=v k2="v 2"` or the legacy `ENV k some value`.
fn parse_key_values(
    line: usize,
    keyword: &str,
    args: &str,
    escape: char,
) -> Result<Vec<(String, String)>, ContainerfileError> {
    let words = split_words_raw(args, escape);
    let first = words.first().map(String::as_str).unwrap_or_default();
    if unquoted_eq(first, escape).is_none() {
        // Legacy single pair: the value is the rest of the line.
        let value = args.trim()[first.len()..].trim();
        if value.is_empty() {
            return Err(ContainerfileError::syntax(
                line,
                keyword,
                format!("{first:?} needs a value (KEY=VALUE or KEY VALUE)"),
            ));
        }
        return Ok(vec![(first.to_string(), value.to_string())]);
    }
    words
        .iter()
        .map(|w| match unquoted_eq(w, escape) {
            Some(0) => Err(ContainerfileError::syntax(
                line,
                keyword,
                format!("empty key in {w:?}"),
            )),
            Some(i) => Ok((w[..i].to_string(), w[i + 1..].to_string())),
            None => Err(ContainerfileError::syntax(
                line,
                keyword,
                format!("{w:?} is not of the form KEY=VALUE"),
            )),
        })
        .collect()
}

fn parse_arg(
    line: usize,
    args: &str,
    escape: char,
) -> Result<Vec<(String, Option<String>)>, ContainerfileError> {
    split_words_raw(args, escape)
        .into_iter()
        .map(|w| {
            let (name, default) = match unquoted_eq(&w, escape) {
                Some(i) => (w[..i].to_string(), Some(w[i + 1..].to_string())),
                None => (w.clone(), None),
            };
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(ContainerfileError::syntax(
                    line,
                    "ARG",
                    format!("invalid argument name in {w:?}"),
                ));
            }
            Ok((name, default))
        })
        .collect()
}

fn parse_healthcheck(line: usize, args: &str) -> Result<Healthcheck, ContainerfileError> {
    let (flags, rest) = take_flags(args);
    let first = rest.split_whitespace().next().unwrap_or_default();
    if first.eq_ignore_ascii_case("NONE") {
        if !flags.is_empty() || rest.trim().len() != first.len() {
            return Err(ContainerfileError::syntax(
                line,
                "HEALTHCHECK",
                "HEALTHCHECK NONE takes no other arguments",
            ));
        }
        return Ok(Healthcheck::None);
    }
    if !first.eq_ignore_ascii_case("CMD") {
        return Err(ContainerfileError::syntax(
            line,
            "HEALTHCHECK",
            "expected `HEALTHCHECK [OPTIONS] CMD command` or `HEALTHCHECK NONE`",
        ));
    }
    check_flags(
        line,
        "HEALTHCHECK",
        &flags,
        &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
    )?;
    let command = rest.trim()[first.len()..].trim();
    require_args(line, "HEALTHCHECK", command)?;
    let retries = flag_value(line, "HEALTHCHECK", &flags, "retries")?
        .map(|r| {
            r.parse::<u32>().map_err(|_| {
                ContainerfileError::syntax(line, "HEALTHCHECK", format!("invalid --retries={r}"))
            })
        })
        .transpose()?;
    Ok(Healthcheck::Check {
        test: command_form(command),
        interval: flag_value(line, "HEALTHCHECK", &flags, "interval")?,
        timeout: flag_value(line, "HEALTHCHECK", &flags, "timeout")?,
        start_period: flag_value(line, "HEALTHCHECK", &flags, "start-period")?,
        start_interval: flag_value(line, "HEALTHCHECK", &flags, "start-interval")?,
        retries,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<InstructionKind> {
        parse(text)
            .unwrap()
            .instructions
            .into_iter()
            .map(|i| i.kind)
            .collect()
    }

    #[test]
    fn line_numbers_continuations_and_comments() {
        let f = parse(
            "# a comment\nFROM alpine\n\nRUN echo a \\\n  # inner comment\n  && echo b\nCMD [\"sh\"]\n",
        )
        .unwrap();
        let lines: Vec<usize> = f.instructions.iter().map(|i| i.line).collect();
        assert_eq!(lines, vec![2, 4, 7]);
        assert_eq!(
            f.instructions[1].kind,
            InstructionKind::Run {
                command: CommandForm::Shell("echo a   && echo b".into()),
                flags: vec![]
            }
        );
        assert_eq!(
            f.instructions[2].kind,
            InstructionKind::Cmd(CommandForm::Exec(vec!["sh".into()]))
        );
    }

    #[test]
    fn directives_table() {
        let cases: &[(&str, char, Option<&str>)] = &[
            ("FROM a\n", '\\', None),
            ("# escape=`\nFROM a\n", '`', None),
            (
                "# syntax=docker/dockerfile:1\n# escape=`\nFROM a\n",
                '`',
                Some("docker/dockerfile:1"),
            ),
            ("#ESCAPE = `\nFROM a\n", '`', None),
            // A comment ends directive processing: later "directives" are comments.
            ("# hello\n# escape=`\nFROM a\n", '\\', None),
            // So does a blank line.
            ("\n# escape=`\nFROM a\n", '\\', None),
            // And an unknown directive.
            ("# foo=bar\n# escape=`\nFROM a\n", '\\', None),
        ];
        for (text, esc, syntax) in cases {
            let f = parse(text).unwrap();
            assert_eq!(f.escape, *esc, "{text:?}");
            assert_eq!(f.syntax.as_deref(), *syntax, "{text:?}");
        }
    }

    #[test]
    fn directive_errors() {
        for text in ["# escape=x\nFROM a\n", "# escape=`\n# escape=\\\nFROM a\n"] {
            assert!(
                matches!(parse(text), Err(ContainerfileError::Directive { .. })),
                "{text:?}"
            );
        }
    }

    #[test]
    fn backtick_escape_continues_lines() {
        let f = parse("# escape=`\nFROM a\nRUN dir c:\\ `\n  /w\n").unwrap();
        assert_eq!(
            f.instructions[1].kind,
            InstructionKind::Run {
                command: CommandForm::Shell("dir c:\\   /w".into()),
                flags: vec![]
            }
        );
    }

    #[test]
    fn from_forms() {
        let k = kinds("FROM scratch\nfrom --platform=linux/amd64 alpine:3 As Build\n");
        assert_eq!(
            k[0],
            InstructionKind::From {
                image: "scratch".into(),
                alias: None,
                platform: None
            }
        );
        assert_eq!(
            k[1],
            InstructionKind::From {
                image: "alpine:3".into(),
                alias: Some("build".into()),
                platform: Some("linux/amd64".into())
            }
        );
    }

    #[test]
    fn run_exec_and_flags() {
        let k = kinds(
            "FROM a\nRUN [\"/bin/echo\", \"hi there\"]\nRUN --mount=type=cache,target=/c --network=none make\nRUN [not json\n",
        );
        assert_eq!(
            k[1],
            InstructionKind::Run {
                command: CommandForm::Exec(vec!["/bin/echo".into(), "hi there".into()]),
                flags: vec![]
            }
        );
        assert_eq!(
            k[2],
            InstructionKind::Run {
                command: CommandForm::Shell("make".into()),
                flags: vec![
                    ("mount".into(), "type=cache,target=/c".into()),
                    ("network".into(), "none".into())
                ]
            }
        );
        assert_eq!(
            k[3],
            InstructionKind::Run {
                command: CommandForm::Shell("[not json".into()),
                flags: vec![]
            }
        );
    }

    #[test]
    fn copy_and_add_args() {
        let k = kinds(
            "FROM a\nCOPY --from=build --chown=1:2 --chmod=755 a b /dst/\nADD [\"x y\", \"/z\"]\nCOPY --link \"my file\" /d\n",
        );
        assert_eq!(
            k[1],
            InstructionKind::Copy(CopyArgs {
                sources: vec!["a".into(), "b".into()],
                dest: "/dst/".into(),
                from: Some("build".into()),
                chown: Some("1:2".into()),
                chmod: Some("755".into()),
                ..Default::default()
            })
        );
        assert_eq!(
            k[2],
            InstructionKind::Add(CopyArgs {
                sources: vec!["x y".into()],
                dest: "/z".into(),
                json: true,
                ..Default::default()
            })
        );
        assert_eq!(
            k[3],
            InstructionKind::Copy(CopyArgs {
                sources: vec!["\"my file\"".into()],
                dest: "/d".into(),
                link: true,
                ..Default::default()
            })
        );
    }

    #[test]
    fn env_label_arg_forms() {
        let k = kinds(
            "ARG V=1 W\nFROM a\nENV A=1 B=\"two words\" C=x\\ y\nENV LEGACY some value here\nLABEL \"com.x\"=\"y\" z=1\n",
        );
        assert_eq!(
            k[0],
            InstructionKind::Arg(vec![("V".into(), Some("1".into())), ("W".into(), None)])
        );
        assert_eq!(
            k[2],
            InstructionKind::Env(vec![
                ("A".into(), "1".into()),
                ("B".into(), "\"two words\"".into()),
                ("C".into(), "x\\ y".into())
            ])
        );
        assert_eq!(
            k[3],
            InstructionKind::Env(vec![("LEGACY".into(), "some value here".into())])
        );
        assert_eq!(
            k[4],
            InstructionKind::Label(vec![
                ("\"com.x\"".into(), "\"y\"".into()),
                ("z".into(), "1".into())
            ])
        );
    }

    #[test]
    fn misc_instructions() {
        let k = kinds(
            "FROM a\nEXPOSE 80/tcp 53/udp\nVOLUME [\"/data\", \"/logs\"]\nVOLUME /a /b\nSHELL [\"/bin/bash\", \"-c\"]\nSTOPSIGNAL SIGTERM\nUSER app:app\nWORKDIR /srv/app\nONBUILD RUN make\nHEALTHCHECK --interval=5s --retries=3 CMD curl -f http://x/\nHEALTHCHECK NONE\nMAINTAINER me\n",
        );
        assert_eq!(
            k[1],
            InstructionKind::Expose(vec!["80/tcp".into(), "53/udp".into()])
        );
        assert_eq!(
            k[2],
            InstructionKind::Volume(vec!["/data".into(), "/logs".into()])
        );
        assert_eq!(
            k[3],
            InstructionKind::Volume(vec!["/a".into(), "/b".into()])
        );
        assert_eq!(
            k[4],
            InstructionKind::Shell(vec!["/bin/bash".into(), "-c".into()])
        );
        assert_eq!(k[5], InstructionKind::StopSignal("SIGTERM".into()));
        assert_eq!(k[6], InstructionKind::User("app:app".into()));
        assert_eq!(k[7], InstructionKind::Workdir("/srv/app".into()));
        match &k[8] {
            InstructionKind::Onbuild(inner) => assert_eq!(inner.original, "RUN make"),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            k[9],
            InstructionKind::Healthcheck(Healthcheck::Check {
                test: CommandForm::Shell("curl -f http://x/".into()),
                interval: Some("5s".into()),
                timeout: None,
                start_period: None,
                start_interval: None,
                retries: Some(3)
            })
        );
        assert_eq!(k[10], InstructionKind::Healthcheck(Healthcheck::None));
        assert_eq!(k[11], InstructionKind::Maintainer("me".into()));
    }

    #[test]
    fn errors_name_the_line() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "FROM a\nFROBNICATE x\n",
                2,
                "unknown instruction: FROBNICATE",
            ),
            ("FROM a\n\nCOPY onlyone\n", 3, "at least two arguments"),
            ("FROM a\nSHELL /bin/sh -c\n", 2, "JSON array"),
            ("FROM a\nRUN --bogus=1 true\n", 2, "unknown flag: --bogus"),
            (
                "FROM a\nCOPY --checksum=sha256:x a b\n",
                2,
                "unknown flag: --checksum",
            ),
            ("FROM a b c d\n", 1, "FROM"),
            (
                "FROM a\nONBUILD FROM b\n",
                2,
                "not allowed as an ONBUILD trigger",
            ),
            ("FROM a\nHEALTHCHECK --retries=x CMD true\n", 2, "--retries"),
            ("FROM a\nHEALTHCHECK ping\n", 2, "HEALTHCHECK"),
            ("FROM a\nENV\n", 2, "at least one argument"),
            ("FROM a\nENV K\n", 2, "needs a value"),
            ("FROM a\nENV A=1 B\n", 2, "KEY=VALUE"),
            ("FROM a\nUSER a b\n", 2, "exactly one"),
            ("FROM a AS 9bad\n", 1, "invalid stage name"),
            ("FROM a\nARG a-b\n", 2, "invalid argument name"),
        ];
        for (text, line, needle) in cases {
            let err = parse(text).unwrap_err().to_string();
            assert!(err.starts_with(&format!("line {line}:")), "{text:?}: {err}");
            assert!(err.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn split_words_respects_quotes_and_escapes() {
        let cases: &[(&str, &[&str])] = &[
            ("a b  c", &["a", "b", "c"]),
            ("\"a b\" c", &["\"a b\"", "c"]),
            ("'a \" b' c", &["'a \" b'", "c"]),
            ("a\\ b c", &["a\\ b", "c"]),
            ("X=${Y:-a b} Z=1", &["X=${Y:-a b}", "Z=1"]),
            ("  ", &[]),
        ];
        for (input, want) in cases {
            assert_eq!(split_words_raw(input, '\\'), *want, "{input:?}");
        }
    }

    #[test]
    fn heredocs() {
        let text = "FROM a\nRUN <<EOF\necho one\n# not a comment\n\necho two\nEOF\nRUN <<-'X' cat > /f && <<\"Y\" cat\n\t\tindented $V\n\tX\nplain\nY\nCOPY <<conf /etc/app.conf\nkey=$V\nconf\nCMD [\"<<NOT\"]\n";
        let f = parse(text).unwrap();
        let lines: Vec<usize> = f.instructions.iter().map(|i| i.line).collect();
        assert_eq!(lines, vec![1, 2, 8, 13, 16]);
        let run = &f.instructions[1];
        assert_eq!(run.heredocs.len(), 1);
        assert_eq!(run.heredocs[0].name, "EOF");
        assert_eq!(
            run.heredocs[0].content,
            "echo one\n# not a comment\n\necho two\n"
        );
        assert!(run.heredocs[0].expand);
        let two = &f.instructions[2].heredocs;
        assert_eq!(two.len(), 2);
        assert_eq!(
            (two[0].name.as_str(), two[0].strip_tabs, two[0].expand),
            ("X", true, false)
        );
        assert_eq!(two[0].content, "indented $V\n");
        assert_eq!((two[1].name.as_str(), two[1].expand), ("Y", false));
        assert_eq!(two[1].content, "plain\n");
        assert_eq!(f.instructions[3].heredocs[0].content, "key=$V\n");
        assert!(f.instructions[4].heredocs.is_empty());
    }

    #[test]
    fn unterminated_heredoc_names_the_line() {
        let err = parse("FROM a\n\nRUN <<EOF\necho\n")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("line 3:"), "{err}");
        assert!(err.contains("<<EOF"), "{err}");
    }
}
