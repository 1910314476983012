//! What a pipeline could not deliver when its process stops: where it goes (the spool, for the
//! next run of the job on this host) and how every sample of it is accounted for.

use super::pipeline::Common;
use std::path::PathBuf;

/// Where and for whom spool files are written.
#[derive(Debug, Clone)]
pub struct SpoolTo {
    /// The spool directory (created and probed at init).
    pub dir: PathBuf,
    /// The `job` of this run.
    pub job: String,
    /// The `instance` of this run.
    pub instance: String,
    /// This machine's name: spool files are replayed by the next run of the job on this host.
    pub host: String,
}

impl SpoolTo {
    /// Whose spool files this run replays: its job's, written on this host.
    pub fn owner(&self) -> super::spool::Owner<'_> {
        super::spool::Owner { job: &self.job, host: &self.host, instance: &self.instance }
    }
}

/// Writes `left` (oldest first) to the spool for target `c` and accounts for every sample: spooled,
/// `spool_full` (over the budget or refused by the disk), or `deadline` (no spool configured).
/// The replayed files `left` came from are removed only after the new file is in place.
pub fn spool_left(
    c: &Common,
    kind: super::spool::BodyKind,
    left: Vec<super::queue::Queued>,
    to: Option<&SpoolTo>,
    budget: &mut u64,
) -> Option<String> {
    use super::accounting::Reason;
    use super::spool::{self, Entry, Header};
    let samples: u64 = left.iter().map(|r| r.samples).sum();
    if left.is_empty() {
        return None;
    }
    let Some(to) = to else {
        c.ledger.lock().fail(Reason::Deadline, samples);
        return Some(format!("{samples} sample(s) unsent at the deadline and lost (no spool configured)"));
    };
    let header = Header {
        job: to.job.clone(),
        instance: to.instance.clone(),
        host: to.host.clone(),
        target: c.name.clone(),
        kind,
        created_ms: c.clock.unix_ms(),
    };
    let entries: Vec<Entry> = left.iter().map(|r| Entry { body: r.body.clone(), samples: r.samples, ts_ms: r.ts_ms }).collect();
    let note = match spool::write(&to.dir, &header, &entries, *budget) {
        Ok(w) => {
            let mut l = c.ledger.lock();
            l.spool(w.samples, w.bytes);
            l.fail(Reason::SpoolFull, w.dropped_samples);
            *budget = budget.saturating_sub(w.bytes);
            match w.dropped_samples {
                0 => format!("{} sample(s) spooled to {}", w.samples, w.path.display()),
                d => format!("{} sample(s) spooled to {}; {d} left out (spool.max_bytes)", w.samples, w.path.display()),
            }
        }
        Err(e) => {
            // What came from an earlier run's file stays there for the next run; only this run's
            // own samples are lost.
            let kept: u64 = left.iter().filter(|r| r.origin.is_some()).map(|r| r.samples).sum();
            left.iter().filter_map(|r| r.origin.as_ref()).for_each(|o| o.keep());
            let mut l = c.ledger.lock();
            l.spool(kept, 0);
            l.fail(Reason::SpoolFull, samples - kept);
            drop(l);
            let note = format!("{} sample(s) could not be spooled: {e}", samples - kept);
            crate::error!("{}: {note}", c.name);
            note
        }
    };
    drop(left);
    Some(note)
}
