//! The textfile target: the exposition written atomically for node_exporter's textfile collector.

use super::Outcome;
use super::accounting::Reason;
use super::target::{Common, Round};
use crate::telemetry::TargetSeries;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// A configured textfile.
pub struct Textfile {
    /// Name (`textfile`), accounting, self-metric series, log state.
    pub common: Common,
    path: PathBuf,
    /// This round's exposition and its samples.
    pending: Option<(String, u64)>,
}

impl Textfile {
    /// A textfile target writing to `path`.
    pub fn new(path: PathBuf, series: TargetSeries) -> Textfile {
        Textfile { common: Common::new("textfile", series), path, pending: None }
    }

    /// Takes this round's exposition.
    pub fn offer(&mut self, r: &Round<'_>) {
        let n = r.samples();
        let mut l = self.common.ledger.lock();
        l.admit(n);
        if let Some((_, old)) = self.pending.replace((r.text().to_string(), n)) {
            l.fail(Reason::WriteError, old);
        }
    }

    /// Writes the pending exposition.
    pub fn send(&mut self) -> Outcome {
        let Some((text, n)) = self.pending.take() else { return Outcome { ok: true, ..Outcome::new("textfile") } };
        let out = write(&self.path, &text, n);
        let mut l = self.common.ledger.lock();
        if out.ok {
            l.sent(n, out.bytes);
        } else {
            l.fail(Reason::WriteError, n);
        }
        out
    }
}

/// Writes `text` to `path` through a temporary file and a rename, so a reader never sees half a file.
pub fn write(path: &Path, text: &str, samples: u64) -> Outcome {
    let started = Instant::now();
    let tmp = path.with_extension(format!("prom.tmp.{}", std::process::id()));
    let res = std::fs::write(&tmp, text).and_then(|()| std::fs::rename(&tmp, path));
    let ok = res.is_ok();
    if !ok {
        let _ = std::fs::remove_file(&tmp);
    }
    let mut out = Outcome::new("textfile");
    out.ok = ok;
    out.message = res.err().map(|e| format!("{}: {e}", path.display())).unwrap_or_default();
    if ok {
        out.samples = samples;
        out.bytes = text.len() as u64;
    }
    out.millis = started.elapsed().as_secs_f64() * 1e3;
    out.attempts = 1;
    out
}
