//! Tests of native histograms: exact indexing against a slow reference, spans, reduction, memory bounds.

#[path = "../../../tests/common/lognormal.rs"]
mod lognormal;

use super::bucket::pow2_wide;
use super::*;
use proptest::prelude::*;

fn cfg(schema: i8, max_buckets: usize) -> NativeConfig {
    NativeConfig { schema, zero_threshold: DEFAULT_ZERO_THRESHOLD, max_buckets }
}

/// The slow reference: the smallest integer i with base^i >= a, from `powf` and a correction loop.
fn reference_index(a: f64, schema: i8) -> i32 {
    let per = 2f64.powi(i32::from(schema)); // buckets per doubling (a fraction below schema 0)
    let bound = |i: i32| 2f64.powf(f64::from(i) / per);
    let mut i = (a.log2() * per).ceil() as i32;
    while bound(i) < a {
        i += 1;
    }
    while bound(i - 1) >= a {
        i -= 1;
    }
    i
}

#[test]
fn doc_examples() {
    assert_eq!(bucket_index(1.0, 0), 0);
    assert_eq!(bucket_index(1.5, 0), 1);
    assert_eq!(bucket_index(1.1, 3), 2);
    assert!(upper_bound(1, 3) < 1.1 && 1.1 <= upper_bound(2, 3));
    assert_eq!(bucket_index(-1.1, 3), 2, "negative values index by magnitude");
    // Exact powers of two sit on an upper bound, at every schema.
    for n in MIN_SCHEMA..=MAX_SCHEMA {
        for e in [-1074, -1072, -1030, -1024, -1022, -100, -3, -1, 0, 1, 2, 5, 16, 17, 100, 1008, 1023] {
            let v = pow2_wide(e);
            let i = bucket_index(v, n);
            assert!(v <= upper_bound(i, n), "2^{e} at schema {n}");
            // (Below 2^-1021 the previous bound may round up to v itself in the subnormals.)
            assert!(e <= -1021 || upper_bound(i - 1, n) < v, "2^{e} at schema {n}");
            if n >= 0 || e % (1 << -n) == 0 {
                assert_eq!(upper_bound(i, n), v, "2^{e} at schema {n}");
            }
        }
    }
    assert_eq!(bucket_index(2.0, 3), 8);
    assert_eq!(bucket_index(0.5, 0), -1);
    assert_eq!(bucket_index(4.0, -1), 1);
    assert_eq!(bucket_index(4.000001, -1), 2);
    assert_eq!(bucket_index(0.25, -1), -1);
    assert_eq!(bucket_index(0.2, -1), -1);
    assert_eq!(bucket_index(0.0625, -2), -1);
    assert_eq!(bucket_index(0.06, -2), -1);
    assert_eq!(bucket_index(f64::INFINITY, 3), bucket_index(f64::MAX, 3) + 1);
    assert_eq!((bucket_index(0.0, 3), bucket_index(f64::NAN, 3)), (i32::MIN, i32::MIN));
}

#[test]
fn bounds_are_client_golangs() {
    // nativeHistogramBounds (client_golang prometheus/histogram.go), halved fractions.
    let go3 = [
        0.5,
        0.5452538663326288,
        0.5946035575013605,
        0.6484197773255048,
        0.7071067811865475,
        0.7711054127039704,
        0.8408964152537144,
        0.9170040432046711,
    ];
    for (k, g) in go3.iter().enumerate() {
        assert_eq!(upper_bound(k as i32 - 8, 3), *g);
    }
    assert_eq!(upper_bound(-256 + 129, 8), 0.7090239421602076);
    assert_eq!(upper_bound(-256 + 255, 8), 0.9972960560854698);
    assert_eq!(growth_factor(3), 1.0905077326652577);
}

#[test]
fn every_bound_is_its_buckets_top() {
    for n in MIN_SCHEMA..=MAX_SCHEMA {
        let per = if n > 0 { 1 << n } else { 1 };
        for i in (-1022 * per..1023 * per).step_by(if n > 4 { 7 } else { 1 }) {
            let b = upper_bound(i, n);
            if !b.is_normal() {
                continue;
            }
            assert_eq!(bucket_index(b, n), i, "bound of {i} at {n}");
            assert_eq!(bucket_index(f64::from_bits(b.to_bits() + 1), n), i + 1, "just above {i} at {n}");
            assert_eq!(bucket_index(f64::from_bits(b.to_bits() - 1), n), i, "just below {i} at {n}");
        }
    }
    // Subnormals index as exactly as normals: scaling by 2^64 moves 64 doublings.
    for v in [5e-324, 1e-320, 3.3e-310, 2.2e-308, 2.2250738585072014e-308] {
        for n in MIN_SCHEMA..=MAX_SCHEMA {
            let doublings = if n >= 0 { 64 << n } else { 64 >> -n };
            assert_eq!(bucket_index(v, n), bucket_index(v * 2f64.powi(64), n) - doublings, "{v:e} at {n}");
        }
    }
    assert_eq!(bucket_index(5e-324, 1), -2148);
    assert_eq!(bucket_index(5e-324, -4), -67);
}

#[test]
fn spans_example_both_forms() {
    let b = [(-1, 4), (0, 1), (3, 2), (4, 2)];
    let plain = Spans::from_buckets(&b, 0);
    assert_eq!(plain, Spans { spans: vec![(-1, 2), (2, 2)], deltas: vec![4, -3, 1, 0] });
    // The gap of two empty buckets (1 and 2) is bridged as client_golang does.
    let bridged = Spans::from_buckets(&b, SPAN_BRIDGE);
    assert_eq!(bridged, Spans { spans: vec![(-1, 6)], deltas: vec![4, -3, -1, 0, 2, 0] });
    assert_eq!(plain.decode().unwrap(), b);
    assert_eq!(bridged.decode().unwrap(), b);
    // A gap of three is not bridged.
    let b3 = [(-1, 4), (3, 2)];
    assert_eq!(Spans::from_buckets(&b3, SPAN_BRIDGE), Spans { spans: vec![(-1, 1), (3, 1)], deltas: vec![4, -2] });
    assert_eq!(Spans::from_buckets(&[], SPAN_BRIDGE), Spans::default());
    assert_eq!(Spans { spans: vec![(0, 2)], deltas: vec![1] }.decode(), None);
    assert_eq!(Spans { spans: vec![(0, 2)], deltas: vec![1, -2] }.decode(), None);
}

#[test]
fn from_factor_picks_schema() {
    let s = |f| NativeConfig::from_factor(f, DEFAULT_ZERO_THRESHOLD, 160).map(|c| c.schema);
    assert_eq!(s(1.1), Ok(3));
    assert_eq!(s(2.0), Ok(0));
    assert_eq!(s(4.0), Ok(-1));
    assert_eq!(s(3.9), Ok(0));
    assert_eq!(s(1e9), Ok(-4));
    assert_eq!(s(1.0001), Ok(8));
    assert_eq!(s(growth_factor(3)), Ok(3), "a factor equal to a schema's growth picks it");
    for bad in [1.0, f64::NAN, f64::INFINITY, 0.5, -2.0] {
        let e = s(bad).unwrap_err();
        assert!(e.contains("factor") && e.contains("greater than 1"), "{e}");
    }
    assert!(NativeConfig::from_factor(1.1, -1.0, 160).unwrap_err().contains("zero_threshold"));
    assert!(NativeConfig::from_factor(1.1, f64::NAN, 160).is_err());
    assert!(NativeConfig::from_factor(1.1, 0.0, 0).unwrap_err().contains("max_buckets"));
    assert_eq!(NativeConfig::from_factor(1.1, 0.0, 1).unwrap(), NativeConfig { schema: 3, zero_threshold: 0.0, max_buckets: 1 });
}

#[test]
fn observe_zero_negative_and_reduce() {
    let mut h = NativeHistogram::new(&cfg(3, 4));
    for v in [0.0, -0.0, 1e-40, 1.0, 1.1, -1.1, 2.0] {
        h.observe(v);
    }
    assert_eq!((h.count(), h.zero_count(), h.schema()), (7, 3, 3));
    assert_eq!(h.buckets(), (vec![(0, 1), (2, 1), (8, 1)], vec![(2, 1)]));
    // 3.0 is a fifth bucket (13 at schema 3). Halving keeps 5 at schemas 2 and 1 (every
    // populated index lands apart), so the loop goes on to schema 0, where 1.1 and 2.0 merge.
    h.observe(3.0);
    assert_eq!(h.schema(), 0);
    assert_eq!(h.buckets(), (vec![(0, 1), (1, 2), (2, 1)], vec![(1, 1)]));
    assert_eq!(h.populated(), 4);
    assert_eq!(h.count(), 8);
    let snap = h.snapshot();
    assert_eq!(snap.positive, Spans { spans: vec![(0, 3)], deltas: vec![1, 1, -1] });
    assert_eq!(snap.negative, Spans { spans: vec![(1, 1)], deltas: vec![1] });
    // At schema -4 nothing merges further: the cap is then exceeded rather than data lost.
    let mut h = NativeHistogram::new(&cfg(-4, 1));
    for v in [1.0, 1e10, 1e-10] {
        h.observe(v);
    }
    assert_eq!((h.schema(), h.populated()), (-4, 3));
}

#[test]
fn far_outliers_keep_memory_bounded() {
    let mut h = NativeHistogram::new(&NativeConfig { schema: 8, zero_threshold: 0.0, max_buckets: 100_000 });
    h.observe(1e-300);
    for k in 0..2000 {
        h.observe(1e-3 * (1.0 + f64::from(k) / 100.0));
    }
    h.observe(1e300);
    assert!(h.positive.dense.len() <= h.window_cap);
    assert!(h.positive.far.len() <= 8, "the window moved to the bulk: {} far", h.positive.far.len());
    let (p, _) = h.buckets();
    assert_eq!(p.iter().map(|e| e.1).sum::<u64>(), 2002);
    assert_eq!(p.first().unwrap().0, bucket_index(1e-300, 8));
    assert_eq!(p.last().unwrap().0, bucket_index(1e300, 8));
    assert_eq!(h.snapshot().positive.decode().unwrap(), p);
}

/// Estimates a quantile from the buckets as Prometheus' histogram_quantile does for native
/// histograms: find the bucket holding the rank, interpolate exponentially inside it.
fn quantile(h: &NativeHistogram, q: f64) -> f64 {
    let (pos, neg) = h.buckets();
    let n = h.schema();
    let mut cells: Vec<(f64, f64, u64)> = neg.iter().rev().map(|&(i, c)| (-upper_bound(i, n), -upper_bound(i - 1, n), c)).collect();
    cells.push((-h.zero_threshold(), h.zero_threshold(), h.zero_count()));
    cells.extend(pos.iter().map(|&(i, c)| (upper_bound(i - 1, n), upper_bound(i, n), c)));
    let rank = q * h.count() as f64;
    let mut seen = 0.0;
    for (lo, hi, c) in cells {
        if c > 0 && seen + c as f64 >= rank {
            let f = (rank - seen) / c as f64;
            return if lo > 0.0 { lo * (hi / lo).powf(f) } else { lo + (hi - lo) * f };
        }
        seen += c as f64;
    }
    f64::NAN
}

#[test]
fn median_from_buckets_within_10_percent() {
    // Lognormal-ish: exp(N(ln 5ms, 1.2)), the tests' reproducible sequence.
    let mut h = NativeHistogram::new(&cfg(3, 160));
    let mut vals = lognormal::lognormal(0x9e37_79b9_7f4a_7c15, 10_000, 1.2);
    vals.iter().for_each(|&v| h.observe(v));
    assert_eq!(h.schema(), 3, "stays at schema 3 within 160 buckets");
    vals.sort_by(f64::total_cmp);
    let truth = (vals[4999] + vals[5000]) / 2.0;
    let est = quantile(&h, 0.5);
    assert!((est / truth - 1.0).abs() < 0.10, "median {est} vs true {truth}");
    // Schema 3 buckets are 9 % wide, so the estimate is in fact much closer.
    assert!((est / truth - 1.0).abs() < 0.05, "median {est} vs true {truth}");
    for q in [0.1, 0.9, 0.99] {
        let t = vals[(q * 10_000.0) as usize];
        assert!((quantile(&h, q) / t - 1.0).abs() < 0.10, "q{q}");
    }
}

fn sample() -> impl Strategy<Value = f64> {
    prop_oneof![
        8 => (any::<bool>(), -9.0f64..9.0).prop_map(|(neg, x)| if neg { -(10f64.powf(x)) } else { 10f64.powf(x) }),
        1 => Just(0.0),
        1 => (any::<bool>(), -29i32..29).prop_map(|(neg, e)| if neg { -(2f64.powi(e)) } else { 2f64.powi(e) }),
    ]
}

fn check(values: &[f64], c: NativeConfig) -> Result<(), TestCaseError> {
    let mut h = NativeHistogram::new(&c);
    let mut sum = 0.0;
    for &v in values {
        h.observe(v);
        sum += v;
        prop_assert!(h.populated() <= c.max_buckets || h.schema() == MIN_SCHEMA);
        let (p, n) = h.buckets();
        prop_assert_eq!(h.populated(), p.len() + n.len());
        for side in [&h.positive, &h.negative] {
            let end = side.offset + side.dense.len() as i32;
            prop_assert!(side.dense.len() <= h.window_cap);
            prop_assert!(side.far.windows(2).all(|w| w[0].0 < w[1].0));
            prop_assert!(side.far.iter().all(|e| e.1 > 0 && (e.0 < side.offset || e.0 >= end)));
        }
    }
    // Independent recount at the final schema.
    let n = h.schema();
    let (mut pos, mut neg) = (std::collections::BTreeMap::new(), std::collections::BTreeMap::new());
    let mut zero = 0u64;
    for &v in values {
        if v.abs() <= c.zero_threshold {
            zero += 1;
        } else {
            *(if v > 0.0 { &mut pos } else { &mut neg }).entry(reference_index(v.abs(), n)).or_insert(0u64) += 1;
        }
    }
    let (p, ng) = h.buckets();
    prop_assert_eq!(&p, &pos.into_iter().collect::<Vec<_>>());
    prop_assert_eq!(&ng, &neg.into_iter().collect::<Vec<_>>());
    prop_assert_eq!(h.zero_count(), zero);
    prop_assert_eq!(h.count(), values.len() as u64);
    prop_assert_eq!(h.count(), zero + p.iter().chain(&ng).map(|e| e.1).sum::<u64>());
    prop_assert!((h.sum() - sum).abs() <= 1e-9 * values.iter().map(|v| v.abs()).sum::<f64>());
    let snap = h.snapshot();
    prop_assert_eq!(snap.positive.decode(), Some(p));
    prop_assert_eq!(snap.negative.decode(), Some(ng));
    prop_assert_eq!((snap.schema, snap.count, snap.zero_count, snap.sum), (n, h.count(), zero, h.sum()));
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn buckets_match_independent_recount(
        values in proptest::collection::vec(sample(), 0..400),
        schema in MIN_SCHEMA..=MAX_SCHEMA,
        small in 8usize..40,
        zt in prop_oneof![Just(0.0), Just(DEFAULT_ZERO_THRESHOLD), Just(1e-6)],
    ) {
        // Large cap: no reduction happens.
        let big = NativeConfig { schema, zero_threshold: zt, max_buckets: 100_000 };
        check(&values, big)?;
        let mut h = NativeHistogram::new(&big);
        values.iter().for_each(|&v| h.observe(v));
        prop_assert_eq!(h.schema(), schema);
        // Small cap: reductions.
        check(&values, NativeConfig { schema, zero_threshold: zt, max_buckets: small })?;
        // A cap of 300 leaves a window of 1,200 slots, narrower than 1e-9..1e9 at schemas 5..8:
        // far buckets beside the window, moved windows, reductions with far buckets.
        check(&values, NativeConfig { schema, zero_threshold: zt, max_buckets: 300 })?;
    }
}
