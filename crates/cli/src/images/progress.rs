//! Progress of blob transfers (pull, push): a bar per blob on a terminal
//! (indicatif), one line per finished blob otherwise (pipes, logs, dumb
//! terminals), nothing with `-q`. Either way every blob ends as
//! `Copying blob <short digest> <outcome>`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use berth_image::registry::{BlobOutcome, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Quiet,
    Bars,
    Lines,
}

/// Bars need a terminal that can move its cursor: indicatif draws nothing
/// at all when TERM is unset or `dumb`, so those terminals get lines.
fn mode(quiet: bool, stderr_is_tty: bool, term: Option<&str>) -> Mode {
    let capable = term.is_some_and(|t| !t.is_empty() && t != "dumb");
    match (quiet, stderr_is_tty && capable) {
        (true, _) => Mode::Quiet,
        (false, true) => Mode::Bars,
        (false, false) => Mode::Lines,
    }
}

fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

/// What every blob's line or bar starts with.
fn prefix(digest: &str) -> String {
    format!("Copying blob {}", short(digest))
}

fn outcome_word(o: BlobOutcome) -> &'static str {
    match o {
        BlobOutcome::Downloaded => "done",
        BlobOutcome::AlreadyPresent => "already exists",
        BlobOutcome::Mounted => "mounted from another repository",
        BlobOutcome::Uploaded => "pushed",
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// A transfer under way.
fn moving_style() -> ProgressStyle {
    style("{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}")
}

/// A finished blob: the same words as a line.
fn done_style() -> ProgressStyle {
    style("{prefix} {msg}")
}

pub struct Bars {
    mode: Mode,
    /// Some in [`Mode::Bars`].
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
}

impl Bars {
    pub fn new(quiet: bool) -> Bars {
        let term = std::env::var("TERM").ok();
        let mode = mode(quiet, std::io::stderr().is_terminal(), term.as_deref());
        let multi = (mode == Mode::Bars)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Bars {
            mode,
            multi,
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// Lines only, even on a terminal (or nothing when `quiet`): for
    /// pulls inside `build`, where nothing may draw between steps.
    pub fn lines(quiet: bool) -> Bars {
        Bars {
            mode: if quiet { Mode::Quiet } else { Mode::Lines },
            multi: None,
            bars: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ProgressBar>> {
        self.bars.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Progress for Bars {
    fn start(&self, digest: &str, total: u64) {
        if let Some(m) = &self.multi {
            let bar = m.add(ProgressBar::new(total));
            bar.set_style(moving_style());
            bar.set_prefix(prefix(digest));
            self.lock().insert(digest.to_string(), bar);
        }
    }

    fn advance(&self, digest: &str, bytes: u64) {
        if let Some(b) = self.lock().get(digest) {
            b.inc(bytes);
        }
    }

    fn finish(&self, digest: &str, outcome: BlobOutcome) {
        let word = outcome_word(outcome);
        match (&self.multi, self.mode) {
            (Some(m), _) => {
                // A blob that moved no bytes (present, mounted) had no bar.
                let bar = self.lock().remove(digest).unwrap_or_else(|| {
                    let b = m.add(ProgressBar::new(0));
                    b.set_prefix(prefix(digest));
                    b
                });
                bar.set_style(done_style());
                bar.finish_with_message(word);
            }
            (None, Mode::Lines) => eprintln!("{} {word}", prefix(digest)),
            (None, _) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_only_on_a_capable_terminal_and_nothing_when_quiet() {
        assert_eq!(mode(false, true, Some("xterm-256color")), Mode::Bars);
        assert_eq!(mode(false, false, Some("xterm")), Mode::Lines);
        assert_eq!(mode(false, true, Some("dumb")), Mode::Lines);
        assert_eq!(mode(false, true, None), Mode::Lines);
        assert_eq!(mode(false, true, Some("")), Mode::Lines);
        assert_eq!(mode(true, true, Some("xterm")), Mode::Quiet);
        assert_eq!(mode(true, false, None), Mode::Quiet);
    }

    #[test]
    fn blobs_are_named_by_a_short_digest() {
        let d = "sha256:500da24d7e5b0123456789abcdef";
        assert_eq!(prefix(d), "Copying blob 500da24d7e5b");
        assert_eq!(short("abc"), "abc");
    }
}
