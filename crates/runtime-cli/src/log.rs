//! Error output in runc's shape: to stderr, and to `--log` as text or as
//! JSON lines (`{"level":"error","msg":…,"time":…}`), which containerd's
//! shim and Podman's conmon read to show the user why a command failed.

use std::io::Write;
use std::path::PathBuf;

pub struct Logger {
    file: Option<PathBuf>,
    json: bool,
}

impl Logger {
    pub fn new(file: Option<PathBuf>, format: &str, _debug: bool) -> Self {
        Self {
            file,
            json: format == "json",
        }
    }

    pub fn error(&self, msg: &str) {
        eprintln!("berth-runtime: {msg}");
        let Some(path) = &self.file else { return };
        let time = berth_runtime::state::now_rfc3339();
        let line = if self.json {
            serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string()
        } else {
            format!("time=\"{time}\" level=error msg={msg:?}")
        };
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{line}");
        }
    }
}
