//! One push round as every pipeline sees it: the snapshot, the ended series, the labels, the
//! time, and the text exposition made once for whichever pipelines need it.

use crate::snapshot::Snapshot;
use std::cell::OnceCell;

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
    /// Wall clock, ms since the Unix epoch, on the delivery's clock: the samples' timestamp.
    pub now_ms: i64,
    /// The final round of `.prom.stop[]`.
    pub last: bool,
    text: OnceCell<String>,
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
