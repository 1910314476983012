//! A summary: quantiles over a sliding time window, from DDSketch buckets; sum and count for all time.
//!
//! Error bound: every quantile is within a relative error of [`ALPHA`] (1 %) of the value of the
//! observation at that rank, for values inside the sketch's range of [`MAX_BINS`] logarithmic
//! bins (a ratio of about 8·10⁸ between the smallest and the largest magnitude kept; beyond it the
//! smallest bins are merged, which only coarsens the lowest quantiles). Memory per series is at
//! most `age_buckets × 2 × MAX_BINS × 8` bytes (80 KiB with 5 buckets), whatever the number of
//! observations.

use sketches_ddsketch::{Config, DDSketch};

/// Relative accuracy of quantiles.
pub const ALPHA: f64 = 0.01;
/// Bins per sign per sketch: the memory bound.
pub const MAX_BINS: u32 = 1024;
/// Magnitudes below this count as zero.
const MIN_VALUE: f64 = 1e-9;

fn sketch() -> DDSketch {
    DDSketch::new(Config::new(ALPHA, MAX_BINS, MIN_VALUE))
}

/// Aggregated observations of one summary series.
#[derive(Clone)]
pub struct Summary {
    /// Ring of sketches, one per time slice; `epoch % len` is the one being filled.
    slices: Box<[DDSketch]>,
    epoch: u64,
    sum: f64,
    count: u64,
}

impl std::fmt::Debug for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Summary").field("epoch", &self.epoch).field("sum", &self.sum).field("count", &self.count).finish()
    }
}

impl Summary {
    /// An empty summary whose window is `slices` time slices long, starting at `epoch`.
    pub fn new(slices: usize, epoch: u64) -> Self {
        Summary { slices: (0..slices.max(1)).map(|_| sketch()).collect(), epoch, sum: 0.0, count: 0 }
    }

    /// Moves the window to `epoch`, clearing the slices that fell out of it.
    pub fn advance(&mut self, epoch: u64) {
        if epoch <= self.epoch {
            return;
        }
        let n = self.slices.len() as u64;
        for e in (self.epoch + 1)..=epoch.min(self.epoch + n) {
            self.slices[(e % n) as usize] = sketch();
        }
        self.epoch = epoch;
    }

    /// Adds one observation to the current slice.
    #[inline]
    pub fn observe(&mut self, v: f64) {
        let n = self.slices.len() as u64;
        self.slices[(self.epoch % n) as usize].add(v);
        self.sum += v;
        self.count += 1;
    }

    /// The `q` quantile over the window, NaN when the window holds no observation.
    pub fn quantiles(&self, qs: &[f64]) -> Vec<(f64, f64)> {
        let mut merged = sketch();
        for s in self.slices.iter().filter(|s| s.count() > 0) {
            // Same config on both sides, so merge cannot fail.
            let _ = merged.merge(s);
        }
        qs.iter().map(|&q| (q, merged.quantile(q).ok().flatten().unwrap_or(f64::NAN))).collect()
    }

    /// Sum of all observations ever.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Count of all observations ever.
    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_within_alpha_and_window_slides() {
        let mut s = Summary::new(2, 0);
        for i in 1..=1000 {
            s.observe(f64::from(i));
        }
        let q = s.quantiles(&[0.5, 0.99]);
        assert!((q[0].1 - 500.0).abs() <= 500.0 * ALPHA + 1.0, "{q:?}");
        assert!((q[1].1 - 990.0).abs() <= 990.0 * ALPHA + 1.0, "{q:?}");
        s.advance(1);
        assert!(!s.quantiles(&[0.5])[0].1.is_nan(), "slice 0 still inside a 2-slice window");
        s.advance(2);
        assert!(s.quantiles(&[0.5])[0].1.is_nan(), "window emptied");
        assert_eq!(s.count(), 1000, "count is cumulative");
    }
}
