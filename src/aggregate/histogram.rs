//! A classic histogram: fixed upper bounds, per-bucket counts, sum and count.

use super::octaves::Octaves;
use std::sync::Arc;

/// Aggregated observations of one histogram series. Memory is fixed by the bound count.
#[derive(Debug, Clone)]
pub struct Histogram {
    bounds: Arc<[f64]>,
    /// Non-cumulative: `counts[i]` holds values in `(bounds[i-1], bounds[i]]`, the last slot is `+Inf`.
    counts: Box<[u64]>,
    sum: f64,
    count: u64,
    /// The bounds by exponent, when they allow it (shared by the family's series).
    octaves: Option<Arc<Octaves>>,
}

impl Histogram {
    /// An empty histogram over `bounds` (sorted, finite, without +Inf).
    pub fn new(bounds: Arc<[f64]>) -> Self {
        let octaves = Octaves::new(&bounds).map(Arc::new);
        Self::with_octaves(bounds, octaves)
    }

    /// [`Histogram::new`] with the lookup of `bounds` made once for a family
    /// ([`Octaves::new`]).
    pub fn with_octaves(bounds: Arc<[f64]>, octaves: Option<Arc<Octaves>>) -> Self {
        let counts = vec![0; bounds.len() + 1].into_boxed_slice();
        Histogram { bounds, counts, sum: 0.0, count: 0, octaves }
    }

    /// Adds one observation.
    #[inline]
    pub fn observe(&mut self, v: f64) {
        // `le` is inclusive: v goes to the first bound >= v, whose index is the count of bounds below v.
        let i = match &self.octaves {
            Some(o) if v > 0.0 => o.below(v),
            _ => self.count_below(v),
        };
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum += v;
        self.count += 1;
    }

    /// The bounds below `v`, counted. Up to 32 bounds without a branch, which the compiler
    /// vectorises; a binary search mispredicts about half of its steps.
    #[inline]
    fn count_below(&self, v: f64) -> usize {
        if self.bounds.len() <= 32 {
            self.bounds.iter().map(|b| usize::from(*b < v)).sum()
        } else {
            self.bounds.partition_point(|b| *b < v)
        }
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

    #[test]
    fn the_lookup_and_the_count_fill_the_same_buckets() {
        let bounds: Arc<[f64]> = Arc::from(crate::registry::DEFAULT_BUCKETS);
        let (mut fast, mut counted) = (Histogram::new(bounds.clone()), Histogram::with_octaves(bounds, None));
        assert!(fast.octaves.is_some());
        for i in -200..2000 {
            let v = f64::from(i) * 6.1e-3;
            fast.observe(v);
            counted.observe(v);
        }
        for v in [0.0, -0.0, 0.0001, 0.00025, 10.0, 1e-300, f64::INFINITY] {
            fast.observe(v);
            counted.observe(v);
        }
        assert_eq!(fast.cumulative(), counted.cumulative());
    }
}
