//! Counters shared between the flusher and `.prom.stats[]`; never touched by the record path.

use std::sync::atomic::{AtomicU64, Ordering};

/// The flusher's running totals.
#[derive(Debug, Default)]
pub struct Stats {
    /// Events and vector values applied to the aggregation state.
    pub applied: AtomicU64,
    /// Pushes that a target accepted.
    pub pushes_ok: AtomicU64,
    /// Pushes that failed for good (after retries, or refused).
    pub pushes_failed: AtomicU64,
    /// Request body bytes sent.
    pub bytes_sent: AtomicU64,
    /// Samples sent.
    pub samples_sent: AtomicU64,
}

impl Stats {
    /// Reads one counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Adds to one counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }
}

/// What `.prom.stats[]` returns, in this order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsView {
    /// Events offered (applied + queued + dropped).
    pub events_recorded: u64,
    /// Events applied.
    pub events_applied: u64,
    /// Events dropped because the ring was full.
    pub events_dropped: u64,
    /// Events waiting in the ring.
    pub queue_depth: u64,
    /// Ring capacity.
    pub queue_capacity: u64,
    /// Live series.
    pub series: u64,
    /// Accepted pushes.
    pub pushes_ok: u64,
    /// Failed pushes.
    pub pushes_failed: u64,
    /// Bytes sent.
    pub bytes_sent: u64,
    /// Samples sent.
    pub samples_sent: u64,
}

impl StatsView {
    /// Field names and values, for the q dictionary.
    pub fn fields(&self) -> [(&'static str, u64); 10] {
        [
            ("events_recorded", self.events_recorded),
            ("events_applied", self.events_applied),
            ("events_dropped", self.events_dropped),
            ("queue_depth", self.queue_depth),
            ("queue_capacity", self.queue_capacity),
            ("series", self.series),
            ("pushes_ok", self.pushes_ok),
            ("pushes_failed", self.pushes_failed),
            ("bytes_sent", self.bytes_sent),
            ("samples_sent", self.samples_sent),
        ]
    }
}
