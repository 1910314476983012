//! The connection handles whose opening was counted, so a close is counted only for those.
//!
//! q runs `.z.pc` when any handle closes, including the ones this process opened itself (an RDB's
//! handle to its tickerplant, a gateway's to its backends), which `.z.po` never saw. Counting
//! those closes would make `opened - closed` negative. The set is a fixed bitmap of atomics: the
//! connection wrappers run on q's threads, which never lock.

use std::sync::atomic::{AtomicU64, Ordering};

/// Handles below this are tracked (q's handles are file descriptors; 2^20 covers any usual
/// `ulimit -n`). A larger handle's close is counted as before, since it cannot be told apart.
pub const TRACKED: usize = 1 << 20;

/// One bit per handle: set while a counted connection is open.
pub struct Handles {
    bits: Box<[AtomicU64]>,
}

impl Default for Handles {
    fn default() -> Self {
        Handles { bits: (0..TRACKED / 64).map(|_| AtomicU64::new(0)).collect() }
    }
}

impl Handles {
    /// Remembers an opened handle.
    pub fn open(&self, h: i64) {
        if let Some((w, b)) = place(h) {
            self.bits[w].fetch_or(b, Ordering::Relaxed);
        }
    }

    /// Forgets a handle; true when its close should be counted (its opening was, or it is
    /// outside the tracked range).
    ///
    /// ```
    /// let h = kdbprom::handles::Handles::default();
    /// assert!(!h.close(12), "an outgoing handle closing: its opening was never counted");
    /// h.open(12);
    /// assert!(h.close(12));
    /// assert!(!h.close(12), "counted once");
    /// assert!(h.close(1 << 40), "outside the tracked range: counted");
    /// ```
    pub fn close(&self, h: i64) -> bool {
        match place(h) {
            Some((w, b)) => self.bits[w].fetch_and(!b, Ordering::Relaxed) & b != 0,
            None => true,
        }
    }
}

/// The word and bit of handle `h`, when it is tracked.
fn place(h: i64) -> Option<(usize, u64)> {
    let h = usize::try_from(h).ok().filter(|&h| h < TRACKED)?;
    Some((h / 64, 1 << (h % 64)))
}
