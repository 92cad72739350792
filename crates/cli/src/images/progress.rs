//! Progress of blob transfers: a bar per blob on a terminal (indicatif),
//! one line per finished blob otherwise (logs, tests), nothing with `-q`.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::sync::Mutex;

use berth_image::registry::{BlobOutcome, Progress};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

pub struct Bars {
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    /// Verb for line output (`Copying`).
    quiet: bool,
}

fn short(digest: &str) -> &str {
    let hex = digest.split_once(':').map_or(digest, |(_, h)| h);
    &hex[..hex.len().min(12)]
}

impl Bars {
    pub fn new(quiet: bool) -> Bars {
        let multi = (!quiet && std::io::stderr().is_terminal())
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stderr()));
        Bars {
            multi,
            bars: Mutex::new(HashMap::new()),
            quiet,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, ProgressBar>> {
        self.bars.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn outcome_word(o: BlobOutcome) -> &'static str {
    match o {
        BlobOutcome::Downloaded => "done",
        BlobOutcome::AlreadyPresent => "already exists",
        BlobOutcome::Mounted => "mounted from another repository",
        BlobOutcome::Uploaded => "pushed",
    }
}

impl Progress for Bars {
    fn start(&self, digest: &str, total: u64) {
        if let Some(m) = &self.multi {
            let bar = m.add(ProgressBar::new(total));
            bar.set_style(
                ProgressStyle::with_template(
                    "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_prefix(format!("blob {}", short(digest)));
            self.lock().insert(digest.to_string(), bar);
        }
    }

    fn advance(&self, digest: &str, bytes: u64) {
        if let Some(b) = self.lock().get(digest) {
            b.inc(bytes);
        }
    }

    fn finish(&self, digest: &str, outcome: BlobOutcome) {
        if let Some(b) = self.lock().remove(digest) {
            b.finish_with_message(outcome_word(outcome));
        } else if !self.quiet && self.multi.is_none() {
            eprintln!("Copying blob {} {}", short(digest), outcome_word(outcome));
        }
    }
}
