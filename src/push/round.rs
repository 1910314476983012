//! One push round as every pipeline sees it: the snapshot, the ended series, the labels, the time.

use crate::snapshot::Snapshot;

/// Everything one round offers every target; each pipeline encodes it with encoders of its own.
pub struct Round<'a> {
    /// The aggregated state now.
    pub snap: &'a Snapshot<'a>,
    /// Series removed since the last round (stale markers).
    pub ended: &'a Snapshot<'a>,
    /// Labels on every remote-write series: static labels, job, instance.
    pub rw_labels: &'a [(String, String)],
    /// Static labels of the text exposition.
    pub text_labels: &'a [(String, String)],
    /// Wall clock, ms since the Unix epoch, on the delivery's clock: the samples' timestamp.
    pub now_ms: i64,
    /// The final round of `.prom.stop[]`.
    pub last: bool,
}

impl<'a> Round<'a> {
    /// A round over `snap` at `now_ms` (the delivery's [`super::clock::Clock::unix_ms`]).
    pub fn new(
        snap: &'a Snapshot<'a>,
        ended: &'a Snapshot<'a>,
        rw_labels: &'a [(String, String)],
        text_labels: &'a [(String, String)],
        now_ms: i64,
        last: bool,
    ) -> Round<'a> {
        Round { snap, ended, rw_labels, text_labels, now_ms, last }
    }

    /// Samples in the snapshot.
    pub fn samples(&self) -> u64 {
        self.snap.sample_count() as u64
    }
}
