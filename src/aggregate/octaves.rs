//! A classic histogram's bucket for a positive value in two comparisons, found by its binary exponent.
//!
//! Counting the bounds below a value is the whole cost of a classic observation: 16 default bounds
//! are 8 paired comparisons even vectorised, and a binary search's dependent loads were slower
//! still (BENCHMARKS.md). Bounds are usually spaced by factors (Prometheus's defaults, ours,
//! `exponential_buckets`), so few share a binary exponent: a value's exponent says how many bounds
//! lie below its power of two, and only the bounds of that same power of two are left to compare.
//! Where at most two bounds share one, that is two independent comparisons, without a branch.

/// Most exponents a lookup spans, and most bounds it takes; both arrays are this long, so an
/// index masked to it needs no bounds check.
const SLOTS: usize = 64;

/// The lookup of one family's bounds (shared by its series).
#[derive(Debug)]
pub struct Octaves {
    /// For each exponent field from `low` to `low + span`, how many bounds have a lower field (for
    /// positive numbers, lie below its power of two).
    starts: [u8; SLOTS],
    /// The bounds, then `+Inf`: the two comparisons never meet anything but a bound or `+Inf`.
    padded: [f64; SLOTS],
    low: u32,
    span: u32,
}

/// The biased exponent field of a positive `f64`: ordered as the numbers are.
#[inline(always)]
fn field(x: f64) -> u32 {
    (x.to_bits() >> 52) as u32
}

impl Octaves {
    /// The lookup of `bounds` (sorted, finite, without `+Inf`), when they allow it: all positive,
    /// at most 62, over at most 63 powers of two (1e-9 to 1e9), and no three with one exponent.
    /// None otherwise (the caller counts them all).
    pub fn new(bounds: &[f64]) -> Option<Self> {
        let (&first, &last) = (bounds.first()?, bounds.last()?);
        // One past the last bound's field: every value above it has all the bounds below it.
        let (low, high) = (field(first), field(last) + 1);
        let fits = bounds.len() <= SLOTS - 2 && first > 0.0 && last.is_finite() && ((high - low) as usize) < SLOTS;
        if !fits || bounds.windows(3).any(|w| field(w[0]) == field(w[2])) {
            return None;
        }
        let mut o = Octaves { starts: [0; SLOTS], padded: [f64::INFINITY; SLOTS], low, span: high - low };
        for (k, e) in (low..=high).enumerate() {
            o.starts[k] = bounds.iter().filter(|&&b| field(b) < e).count() as u8;
        }
        o.padded[..bounds.len()].copy_from_slice(bounds);
        Some(o)
    }

    /// How many bounds lie below `v`, which must be positive (NaN is not).
    ///
    /// A value below the lowest bound's power of two is taken at the first one (no bound lies
    /// below it), one above the highest at the last (all do): the clamp is exact at both ends.
    #[inline(always)]
    pub fn below(&self, v: f64) -> usize {
        let k = field(v).saturating_sub(self.low).min(self.span) as usize;
        let s = usize::from(self.starts[k % SLOTS]);
        s + usize::from(self.padded[s % SLOTS] < v) + usize::from(self.padded[(s + 1) % SLOTS] < v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn counted(bounds: &[f64], v: f64) -> usize {
        bounds.iter().filter(|&&b| b < v).count()
    }

    #[test]
    fn only_positive_bounds_with_at_most_two_to_an_exponent() {
        assert!(Octaves::new(&[1e-9, 1e9]).is_some());
        assert!(Octaves::new(&[1e-10, 1e10]).is_none(), "67 powers of two");
        assert!(Octaves::new(&(1..=62).map(|i| 1.5f64.powi(i)).collect::<Vec<_>>()).is_some());
        assert!(Octaves::new(&(1..=63).map(|i| 1.5f64.powi(i)).collect::<Vec<_>>()).is_none());
        assert!(Octaves::new(&crate::registry::DEFAULT_BUCKETS).is_some());
        assert!(Octaves::new(&[0.5, 0.75]).is_some());
        assert!(Octaves::new(&[0.5, 0.6, 0.7]).is_none(), "three in [0.5, 1)");
        assert!(Octaves::new(&[0.0, 1.0]).is_none());
        assert!(Octaves::new(&[-1.0, 1.0]).is_none());
        assert!(Octaves::new(&[]).is_none());
    }

    #[test]
    fn the_edges() {
        let b = [1e-9, 0.001, 1.0, 1.5, 1e9];
        let o = Octaves::new(&b).unwrap();
        for v in
            [f64::MIN_POSITIVE, 5e-324, 1e-9, 0.0005, 0.001, 0.0011, 0.99, 1.0, 1.25, 1.5, 1.75, 2.0, 1e9, 1.1e9, f64::MAX, f64::INFINITY]
        {
            assert_eq!(o.below(v), counted(&b, v), "{v}");
        }
    }

    proptest! {
        #[test]
        fn the_same_count_as_counting(
            exps in proptest::collection::vec(-10f64..10.0, 1..40),
            vs in proptest::collection::vec(-12f64..12.0, 1..64),
        ) {
            let mut bounds: Vec<f64> = exps.iter().map(|e| 10f64.powf(*e)).collect();
            bounds.sort_by(f64::total_cmp);
            bounds.dedup();
            if let Some(o) = Octaves::new(&bounds) {
                // Values anywhere, and at each bound and either side of it.
                let at = bounds.iter().flat_map(|&b| [b, f64::from_bits(b.to_bits() - 1), f64::from_bits(b.to_bits() + 1)]);
                for v in vs.iter().map(|e| 10f64.powf(*e)).chain(at) {
                    prop_assert_eq!(o.below(v), counted(&bounds, v), "{}", v);
                }
            }
        }

        #[test]
        fn factor_spaced_bounds_take_the_lookup(start in 1e-9f64..1e-3, factor in 1.5f64..10.0, n in 1usize..30, v in 0f64..1e12) {
            let bounds: Vec<f64> = (0..n).map(|i| start * factor.powi(i as i32)).take_while(|b| *b < 1e9).collect();
            let o = Octaves::new(&bounds).expect("a factor of 1.5 or more puts at most two bounds in a power of two");
            if v > 0.0 {
                prop_assert_eq!(o.below(v), counted(&bounds, v));
            }
        }
    }
}
