//! Where every sample a target takes in ends up: sent, failed (by reason), queued or spooled.
//!
//! Samples only move between those states through the methods below, each of which keeps
//! `samples_in = sent + failed + queued + spooled` true, and the whole struct sits behind one
//! mutex per target, so `.prom.stats[]` never sees a half-applied move.

use std::sync::{Arc, Mutex, MutexGuard};

/// Why samples were given up, as `kdbprom_samples_failed_total{reason}` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The receiver refused the request with a 4xx that retrying cannot change.
    Http4xx,
    /// Older than `queue.sample_age_limit_ms` when their turn came.
    AgeLimit,
    /// Pushed out of a full queue by newer samples.
    QueueFull,
    /// Left out of the spool file: over `spool.max_bytes`, or the disk refused the write.
    SpoolFull,
    /// Still unsent when a deadline ended the push and nothing could keep them (no spool).
    Deadline,
    /// A remote-write 2.0 receiver wrote fewer samples than it was sent.
    Rejected,
    /// The receiver refused them as too old or out of order.
    TooOld,
    /// The textfile could not be written.
    WriteError,
}

impl Reason {
    /// Every reason, in the order of [`Counts::failed`].
    pub const ALL: [Reason; 8] = [
        Reason::Http4xx,
        Reason::AgeLimit,
        Reason::QueueFull,
        Reason::SpoolFull,
        Reason::Deadline,
        Reason::Rejected,
        Reason::TooOld,
        Reason::WriteError,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Http4xx => "http_4xx",
            Reason::AgeLimit => "age_limit",
            Reason::QueueFull => "queue_full",
            Reason::SpoolFull => "spool_full",
            Reason::Deadline => "deadline",
            Reason::Rejected => "rejected",
            Reason::TooOld => "too_old",
            Reason::WriteError => "write_error",
        }
    }
}

/// One target's figures since `.prom.init`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// Samples taken into the pipeline (encoded rounds, stale markers, replayed spool).
    pub samples_in: u64,
    /// Samples the receiver accepted.
    pub sent: u64,
    /// Samples given up, by [`Reason::ALL`] order.
    pub failed: [u64; 8],
    /// Samples waiting in the target's queue.
    pub queued: u64,
    /// Samples written to the spool by this run.
    pub spooled: u64,
    /// Bytes of the spool files this run wrote.
    pub spool_bytes: u64,
    /// Samples sent again after a failed attempt (each retry counts its samples once).
    pub retried: u64,
    /// Unix seconds of the last accepted request; 0 before the first.
    pub last_success: f64,
    /// Pushes (rounds) that delivered everything they had.
    pub pushes_ok: u64,
    /// Pushes that left something unsent or refused.
    pub pushes_failed: u64,
    /// Body bytes accepted by the receiver.
    pub bytes_sent: u64,
}

impl Counts {
    /// `n` samples enter the pipeline and wait to be sent.
    pub fn admit(&mut self, n: u64) {
        self.samples_in += n;
        self.queued += n;
    }

    /// `n` waiting samples were accepted in `bytes` bytes.
    pub fn sent(&mut self, n: u64, bytes: u64) {
        self.leave(n);
        self.sent += n;
        self.bytes_sent += bytes;
        self.last_success = unix_now();
    }

    /// `n` waiting samples were given up.
    pub fn fail(&mut self, why: Reason, n: u64) {
        self.leave(n);
        self.failed[why as usize] += n;
    }

    /// `n` waiting samples were written to the spool in a file of `bytes` bytes.
    pub fn spool(&mut self, n: u64, bytes: u64) {
        self.leave(n);
        self.spooled += n;
        self.spool_bytes += bytes;
    }

    /// Failed samples for one reason.
    pub fn failed(&self, why: Reason) -> u64 {
        self.failed[why as usize]
    }

    /// Failed samples, all reasons.
    pub fn failed_total(&self) -> u64 {
        self.failed.iter().sum()
    }

    /// The accounting identity; false would be a kdbprom bug.
    pub fn balanced(&self) -> bool {
        self.samples_in == self.sent + self.failed_total() + self.queued + self.spooled
    }

    fn leave(&mut self, n: u64) {
        debug_assert!(n <= self.queued, "{n} samples leave a queue of {}", self.queued);
        self.queued -= n.min(self.queued);
    }
}

/// A target's counts, shared with `.prom.stats[]`.
#[derive(Debug, Clone, Default)]
pub struct Ledger(Arc<Mutex<Counts>>);

impl Ledger {
    /// Locks the counts; a poisoned lock still holds consistent figures (every move is one call).
    pub fn lock(&self) -> MutexGuard<'_, Counts> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the counts.
    pub fn get(&self) -> Counts {
        self.lock().clone()
    }
}

/// Seconds since the Unix epoch, as Prometheus timestamps them.
pub fn unix_now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_move_keeps_the_identity() {
        let mut c = Counts::default();
        c.admit(10);
        c.sent(4, 100);
        c.fail(Reason::QueueFull, 3);
        c.spool(2, 50);
        assert_eq!((c.samples_in, c.sent, c.failed(Reason::QueueFull), c.queued, c.spooled), (10, 4, 3, 1, 2));
        assert!(c.balanced());
        assert!(c.last_success > 0.0);
        assert_eq!(Reason::ALL.map(Reason::as_str)[7], "write_error");
    }
}
