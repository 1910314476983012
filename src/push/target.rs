//! A delivery target: one value owning its whole pipeline, and what every kind has in common.
//!
//! The flusher calls, per round: [`Target::offer`] (encode this round's snapshot into the
//! target's queue, on the flusher thread), then [`Target::send`] (deliver, oldest first, until
//! the deadline), and on `.prom.stop[]` [`Target::spool`] for what is left. Adding a kind of
//! target is a variant here and a file beside this one.

use super::accounting::Ledger;
use super::{Outcome, pushgateway, remote_write, textfile};
use crate::snapshot::Snapshot;
use crate::telemetry::TargetSeries;
use std::cell::OnceCell;
use std::path::PathBuf;
use std::time::Instant;

/// What every target carries besides its pipeline.
#[derive(Debug)]
pub struct Common {
    /// Unique name: `pushgateway`, `textfile`, or the remote-write `name`.
    pub name: String,
    /// Where its samples went, shared with `.prom.stats[]`.
    pub ledger: Ledger,
    /// Its `kdbprom_*{target}` series.
    pub series: TargetSeries,
    /// The failure last written to stderr, so each cause is logged once, not every round.
    logged: Option<String>,
}

impl Common {
    /// A target's common part.
    pub fn new(name: &str, series: TargetSeries) -> Common {
        Common { name: name.into(), ledger: Ledger::default(), series, logged: None }
    }

    /// Counts a finished push and logs a change of cause (a failure once, a recovery once).
    pub fn finish(&mut self, o: &Outcome) {
        {
            let mut c = self.ledger.lock();
            if o.ok {
                c.pushes_ok += 1;
            } else {
                c.pushes_failed += 1;
            }
        }
        let cause = (!o.ok).then(|| {
            let why = if o.cause.is_empty() { &o.message } else { &o.cause };
            if o.status > 0 { format!("HTTP {}: {why}", o.status) } else { why.clone() }
        });
        if cause == self.logged {
            return;
        }
        match &cause {
            Some(_) => crate::warn!("push to {} failed: {}", self.name, o.message),
            None => crate::info!("push to {} succeeds again", self.name),
        }
        self.logged = cause;
    }
}

/// Everything one round offers every target; encoded formats are made once, on first use.
pub struct Round<'a> {
    /// The aggregated state now.
    pub snap: &'a Snapshot<'a>,
    /// Series removed since the last round (stale markers).
    pub ended: &'a Snapshot<'a>,
    /// Labels on every remote-write series: static labels, job, instance.
    pub rw_labels: &'a [(String, String)],
    /// Static labels of the text exposition.
    pub text_labels: &'a [(String, String)],
    /// Wall clock, ms since the Unix epoch.
    pub now_ms: i64,
    /// The final round of `.prom.stop[]`.
    pub last: bool,
    text: OnceCell<String>,
}

impl<'a> Round<'a> {
    /// A round over `snap`.
    pub fn new(
        snap: &'a Snapshot<'a>,
        ended: &'a Snapshot<'a>,
        rw_labels: &'a [(String, String)],
        text_labels: &'a [(String, String)],
        last: bool,
    ) -> Round<'a> {
        let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
        Round { snap, ended, rw_labels, text_labels, now_ms, last, text: OnceCell::new() }
    }

    /// The text exposition of the snapshot (shared by the Pushgateway and the textfile).
    pub fn text(&self) -> &str {
        self.text.get_or_init(|| crate::encode::text::encode(self.snap, self.text_labels))
    }

    /// Samples in the snapshot.
    pub fn samples(&self) -> u64 {
        self.snap.sample_count() as u64
    }
}

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

/// One configured destination.
pub enum Target {
    /// A remote-write receiver.
    RemoteWrite(Box<remote_write::RemoteWrite>),
    /// The Pushgateway.
    Pushgateway(Box<pushgateway::Pushgateway>),
    /// node_exporter's textfile collector.
    Textfile(textfile::Textfile),
}

impl Target {
    /// The part every kind has.
    pub fn common(&self) -> &Common {
        match self {
            Target::RemoteWrite(t) => &t.common,
            Target::Pushgateway(t) => &t.common,
            Target::Textfile(t) => &t.common,
        }
    }

    /// The part every kind has, mutably.
    pub fn common_mut(&mut self) -> &mut Common {
        match self {
            Target::RemoteWrite(t) => &mut t.common,
            Target::Pushgateway(t) => &mut t.common,
            Target::Textfile(t) => &mut t.common,
        }
    }

    /// Takes this round's data into the target's pipeline (accounted as `samples_in`).
    pub fn offer(&mut self, r: &Round<'_>) {
        match self {
            Target::RemoteWrite(t) => t.offer(r),
            Target::Pushgateway(t) => t.offer(r),
            Target::Textfile(t) => t.offer(r),
        }
    }

    /// Delivers what the pipeline holds until `deadline`; in the `last` round what cannot be
    /// sent stays for [`Target::spool`] instead of being given up.
    pub async fn send(&mut self, deadline: Instant, last: bool) -> Outcome {
        match self {
            Target::RemoteWrite(t) => t.send(deadline).await,
            Target::Pushgateway(t) => t.send(deadline, last).await,
            Target::Textfile(t) => t.send(),
        }
    }

    /// After the final round: writes what is left to the spool within `budget` bytes (lowered by
    /// what was written), or gives it up as `deadline` without a spool (the Pushgateway's always:
    /// see [`pushgateway::Pushgateway::give_up`]). Returns a note for the outcome.
    pub fn spool(&mut self, to: Option<&SpoolTo>, budget: &mut u64) -> Option<String> {
        match self {
            Target::RemoteWrite(t) => t.spool(to, budget),
            Target::Pushgateway(t) => t.give_up(),
            Target::Textfile(_) => None,
        }
    }
}

/// Writes `left` (oldest first) to the spool for target `c` and accounts for every sample: spooled,
/// `spool_full` (over the budget or refused by the disk), or `deadline` (no spool configured).
/// The replayed files `left` came from are removed only after the new file is in place.
pub fn spool_left(
    c: &Common,
    kind: super::spool::Kind,
    left: Vec<super::queue::Request>,
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
        created_ms: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64),
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
