//! What `.prom.stats[]` reports: the ring's counters and every target's accounting.

use crate::push::accounting::{Counts, Reason};
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters the flusher keeps for `.prom.stats[]`; never touched by the record path.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events and vector values applied to the aggregation state.
    pub applied: AtomicU64,
}

impl Stats {
    /// Reads one counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

/// A target's figures for q: the counts, `samples_failed` by reason, and `last_success`.
pub type TargetFields = ([(&'static str, u64); 6], [(&'static str, u64); 8], f64);

/// What `.prom.stats[]` returns.
#[derive(Debug, Clone, PartialEq)]
pub struct StatsView {
    /// Events offered (applied + queued + dropped).
    pub events_recorded: u64,
    /// Events applied.
    pub events_applied: u64,
    /// Events dropped because the ring was full.
    pub events_dropped: u64,
    /// Events waiting in the ring.
    pub ring_depth: u64,
    /// Ring capacity.
    pub ring_capacity: u64,
    /// Live series.
    pub series: u64,
    /// Every target's accounting, in configuration order.
    pub targets: Vec<(String, Counts)>,
}

impl StatsView {
    /// The top-level fields, for the q dictionary: the ring's, then totals over the targets.
    /// `queue_depth` and `queue_capacity` are release 2's names of the ring's figures, kept for
    /// release 3 (a target's queue is `queue_samples`); they go in release 4.
    pub fn fields(&self) -> [(&'static str, u64); 12] {
        let sum = |f: fn(&Counts) -> u64| self.targets.iter().map(|(_, c)| f(c)).sum::<u64>();
        [
            ("events_recorded", self.events_recorded),
            ("events_applied", self.events_applied),
            ("events_dropped", self.events_dropped),
            ("ring_depth", self.ring_depth),
            ("ring_capacity", self.ring_capacity),
            ("queue_depth", self.ring_depth),
            ("queue_capacity", self.ring_capacity),
            ("series", self.series),
            ("pushes_ok", sum(|c| c.pushes_ok)),
            ("pushes_failed", sum(|c| c.pushes_failed)),
            ("bytes_sent", sum(|c| c.bytes_sent)),
            ("samples_sent", sum(|c| c.sent)),
        ]
    }

    /// A target's fields as `.prom.stats[]` names them (`samples_failed` is by reason).
    pub fn target_fields(c: &Counts) -> TargetFields {
        (
            [
                ("samples_in", c.samples_in),
                ("samples_sent", c.sent),
                ("samples_retried", c.retried),
                ("queue_samples", c.queued),
                ("spool_samples", c.spooled),
                ("spool_bytes", c.spool_bytes),
            ],
            Reason::ALL.map(|r| (r.as_str(), c.failed(r))),
            c.last_success,
        )
    }

    /// The accounting of target `name`.
    pub fn target(&self, name: &str) -> Option<&Counts> {
        self.targets.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    /// Failed pushes over every target.
    pub fn pushes_failed(&self) -> u64 {
        self.targets.iter().map(|(_, c)| c.pushes_failed).sum()
    }
}
