//! Replaying the previous run's spool: its files become requests at the front of each target's
//! queue, and a file is removed only once every request it held has left the queue.
//!
//! So a run that dies again before the replay is through (SIGKILL included) leaves the file in
//! place for the run after it; a run that stops cleanly writes what is still queued to a new
//! file before the old one goes.

use super::queue::Queued;
use super::spool::{self, SpoolFile};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One replayed spool file; dropped (removing the file, then releasing its lock) when its last
/// request has left, unless [`Origin::keep`] said its data is nowhere else.
#[derive(Debug)]
pub struct Origin(PathBuf, AtomicBool, #[allow(dead_code)] Option<Arc<std::fs::File>>);

impl Origin {
    /// Leaves the file in place for the next run (its data could not be delivered or re-spooled).
    pub fn keep(&self) {
        self.1.store(true, Ordering::Relaxed);
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        if self.1.load(Ordering::Relaxed) {
            return;
        }
        // A file already gone (removed by hand) is fine; anything else would replay twice, so say so.
        if let Err(e) = spool::remove(&self.0) {
            crate::error!("cannot remove a replayed spool file: {e}");
        }
    }
}

/// The previous runs' spool files of this job on this host, by target name.
#[derive(Debug, Default)]
pub struct Replay {
    by_target: HashMap<String, Vec<SpoolFile>>,
}

impl Replay {
    /// Scans `dir` once; set-aside files and read errors are reported on stderr, once, here.
    pub fn scan(dir: &Path, owner: spool::Owner<'_>) -> Replay {
        let scan = spool::scan(dir, owner);
        for path in &scan.busy {
            crate::info!("spool file {} is being replayed by another live process of job {}; left to it", path.display(), owner.job);
        }
        for (path, why) in &scan.set_aside {
            crate::warn!("spool file set aside as {}: {why}", path.display());
        }
        for e in &scan.errors {
            crate::warn!("spool: {e}");
        }
        if !scan.swept.is_empty() {
            crate::info!("spool: removed {} .tmp file(s) of writers killed mid-write, in {}", scan.swept.len(), dir.display());
        }
        let mut by_target: HashMap<String, Vec<SpoolFile>> = HashMap::new();
        for f in scan.files {
            if f.header.kind == spool::BodyKind::Pushgateway {
                // Release 2 spooled a Pushgateway's final state; a replay is overwritten by this
                // run's first push before a scrape can be sure to see it, so it is not claimed.
                crate::warn!(
                    "spool file {} holds a Pushgateway state of an earlier run ({} samples); not replayed (the next push replaces it), removed",
                    f.path.display(),
                    f.entries.iter().map(|e| e.samples).sum::<u64>()
                );
                if let Err(e) = spool::remove(&f.path) {
                    crate::error!("{e}");
                }
                continue;
            }
            by_target.entry(f.header.target.clone()).or_default().push(f);
        }
        Replay { by_target }
    }

    /// Takes the files of `target` (oldest first) as requests tied to their files; files of
    /// other kinds than `kinds` are reported and kept.
    pub fn take(&mut self, target: &str, kinds: &[spool::BodyKind]) -> Vec<Queued> {
        let files = self.by_target.remove(target).unwrap_or_default();
        let mut out = Vec::new();
        for f in files {
            if !kinds.contains(&f.header.kind) {
                crate::warn!("spool file {} holds another kind of target's data; kept, not replayed", f.path.display());
                continue;
            }
            let origin = Arc::new(Origin(f.path, AtomicBool::new(false), f.lock));
            let v2 = f.header.kind == spool::BodyKind::RemoteWrite2;
            out.extend(f.entries.into_iter().map(|e| Queued {
                body: e.body,
                samples: e.samples,
                ts_ms: e.ts_ms,
                origin: Some(origin.clone()),
                v2,
            }));
        }
        out
    }

    /// Reports files left for targets this run does not have; they stay for a run that has them.
    pub fn report_unclaimed(&self) {
        for (target, files) in &self.by_target {
            for f in files {
                crate::warn!("spool file {} is for target {target}, which is not configured; kept for a later run", f.path.display());
            }
        }
    }
}
