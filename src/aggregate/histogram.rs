//! A classic histogram: fixed upper bounds, per-bucket counts, sum and count.

use std::sync::Arc;

/// Aggregated observations of one histogram series. Memory is fixed by the bound count.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: Arc<[f64]>,
    /// Non-cumulative: `counts[i]` holds values in `(bounds[i-1], bounds[i]]`, the last slot is `+Inf`.
    counts: Box<[u64]>,
    sum: f64,
    count: u64,
}

impl Histogram {
    /// An empty histogram over `bounds` (sorted, finite, without +Inf).
    pub fn new(bounds: Arc<[f64]>) -> Self {
        let counts = vec![0; bounds.len() + 1].into_boxed_slice();
        Histogram { bounds, counts, sum: 0.0, count: 0 }
    }

    /// Adds one observation.
    #[inline]
    pub fn observe(&mut self, v: f64) {
        // `le` is inclusive: v goes to the first bound >= v, whose index is the count of bounds below v.
        // Up to 32 bounds (the usual case) that count is taken without a branch, which the compiler
        // vectorises; a binary search mispredicts about half of its steps.
        let i = if self.bounds.len() <= 32 {
            self.bounds.iter().map(|b| usize::from(*b < v)).sum()
        } else {
            self.bounds.partition_point(|b| *b < v)
        };
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// Upper bounds, without +Inf.
    pub fn bounds(&self) -> &Arc<[f64]> {
        &self.bounds
    }

    /// Cumulative counts per bound, ending with the +Inf bucket (= count).
    pub fn cumulative(&self) -> Vec<u64> {
        self.counts
            .iter()
            .scan(0u64, |acc, c| {
                *acc += c;
                Some(*acc)
            })
            .collect()
    }

    /// Sum of observations.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Number of observations.
    pub fn count(&self) -> u64 {
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn le_is_inclusive() {
        let mut h = Histogram::new(Arc::from([0.1, 0.5]));
        for v in [0.1, 0.2, 0.5, 9.0] {
            h.observe(v);
        }
        assert_eq!(h.cumulative(), vec![1, 3, 4]);
        assert_eq!((h.count(), h.sum()), (4, 9.8));
    }
}
