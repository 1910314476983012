//! The textfile target: the exposition written atomically for node_exporter's textfile collector.
//!
//! node_exporter serves every file of its directory under its own `job` and `instance`, and
//! refuses a series that two files both carry. So each process writes its own file
//! ([`crate::config::textfile_path`]) and labels every series with [`JOB_LABEL`] and
//! [`INSTANCE_LABEL`]: two q processes of one host stay two sets of series.

use super::Outcome;
use super::accounting::Reason;
use super::deadline::Deadline;
use super::leftovers::SpoolTo;
use super::pipeline::{Common, Pipeline, Sending};
use super::round::Round;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// The label carrying the kdbprom `job` in a textfile (node_exporter's scrape sets `job`).
pub const JOB_LABEL: &str = crate::config::TEXTFILE_LABELS[0];
/// The label carrying the kdbprom `instance` in a textfile.
pub const INSTANCE_LABEL: &str = crate::config::TEXTFILE_LABELS[1];

/// A configured textfile.
pub struct Textfile {
    /// Name (`textfile`) and accounting.
    pub common: Common,
    path: PathBuf,
    /// [`JOB_LABEL`] and [`INSTANCE_LABEL`], after the round's static labels.
    own: [(String, String); 2],
    /// The round's static labels, then `own`.
    labels: Vec<(String, String)>,
    /// Kept from one round to the next: it writes what did not change as it was.
    text: crate::encode::text::TextEncoder,
    /// This round's samples, whose exposition `text` holds.
    pending: Option<u64>,
}

impl Textfile {
    /// A textfile target writing to `path` for `job` and `instance`.
    pub fn new(common: Common, path: PathBuf, job: &str, instance: &str) -> Textfile {
        let own = [(JOB_LABEL.to_string(), job.to_string()), (INSTANCE_LABEL.to_string(), instance.to_string())];
        Textfile { common, path, own, labels: Vec::new(), text: Default::default(), pending: None }
    }

    /// Takes this round's exposition.
    fn take_round(&mut self, r: &Round<'_>) {
        let n = r.samples();
        let mut l = self.common.ledger.lock();
        l.admit(n);
        if !self.labels.iter().eq(r.text_labels.iter().chain(&self.own)) {
            self.labels = r.text_labels.iter().chain(&self.own).cloned().collect();
        }
        self.text.encode(r.snap, &self.labels);
        if let Some(old) = self.pending.replace(n) {
            l.fail(Reason::WriteError, old);
        }
    }

    /// Writes the pending exposition.
    fn write_pending(&mut self) -> Outcome {
        let Some(n) = self.pending.take() else { return Outcome { ok: true, ..Outcome::new("textfile") } };
        let out = write(&self.path, self.text.body(), n);
        let mut l = self.common.ledger.lock();
        if out.ok {
            l.sent(n, out.bytes);
        } else {
            l.fail(Reason::WriteError, n);
        }
        out
    }
}

impl Pipeline for Textfile {
    fn offer(&mut self, round: &Round<'_>) {
        self.take_round(round);
    }

    /// A local write: it does not wait, so the deadline never ends it.
    fn send<'a>(&'a mut self, _deadline: &'a Deadline, _last: bool) -> Sending<'a> {
        let out = self.write_pending();
        Box::pin(std::future::ready(out))
    }

    /// Nothing is left: a failed write was counted as `write_error` when it failed.
    fn spool(&mut self, _to: Option<&SpoolTo>, _budget: &mut u64) -> Option<String> {
        None
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
