//! The textfile target: the exposition written atomically for node_exporter's textfile collector.

use super::Outcome;
use std::path::Path;
use std::time::Instant;

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
