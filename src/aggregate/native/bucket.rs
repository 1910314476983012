//! Bucket math of the standard exponential schemas: the index of a value and the bound of an index,
//! exact from the IEEE representation, with client_golang's boundaries.

use super::{MAX_SCHEMA, MIN_SCHEMA};
use std::sync::OnceLock;

/// The bucket index of `|v|` at `schema` (clamped to -4..=8): the smallest `i` with
/// `|v| <= upper_bound(i, schema)`, computed exactly from the IEEE representation as client_golang
/// does (protocols.md §7). Infinities count one above the bucket of `f64::MAX`; 0 and NaN have no
/// bucket and give `i32::MIN`.
pub fn bucket_index(v: f64, schema: i8) -> i32 {
    let schema = schema.clamp(MIN_SCHEMA, MAX_SCHEMA);
    let a = v.abs();
    if a == 0.0 || a.is_nan() {
        return i32::MIN;
    }
    if a.is_infinite() {
        return bucket_index(f64::MAX, schema) + 1;
    }
    let (e, mant) = split(a);
    if schema > 0 {
        let entry = tables().lookup[schema as usize][(mant >> (52 - (schema as u32 + 1))) as usize];
        (e << schema) + (entry >> ENTRY_K_SHIFT) as i32 + i32::from(mant > entry & ENTRY_BOUND_MASK)
    } else {
        ceil_log2_shifted(e, mant, -schema)
    }
}

/// Upper bound of bucket `i` at `schema` (clamped to -4..=8), `base^i`: exact, using the same
/// boundaries as [`bucket_index`] (so `bucket_index(upper_bound(i, n), n) == i` wherever the bound is a
/// normal float). Overflows to +Inf and underflows to 0 at the ends of the float range.
pub fn upper_bound(i: i32, schema: i8) -> f64 {
    let schema = schema.clamp(MIN_SCHEMA, MAX_SCHEMA);
    if schema > 0 {
        let frac = tables().bounds[schema as usize][(i & ((1 << schema) - 1)) as usize];
        ldexp(frac, i >> schema)
    } else {
        // Saturate: anything past ±2^11 doublings is already 0 or +Inf.
        let e = i64::from(i) << -schema;
        pow2_wide(e)
    }
}

// ---------------------------------------------------------------------------------------------------
// Index arithmetic

const MANT_MASK: u64 = (1 << 52) - 1;
/// A lookup entry holds `k0` above bit 53 and the mantissa bits of boundary `k0` (up to `1 << 52`,
/// meaning 2.0) below.
pub(super) const ENTRY_K_SHIFT: u32 = 53;
pub(super) const ENTRY_BOUND_MASK: u64 = (1 << 53) - 1;

/// `a = 1.mant * 2^e` for finite `a > 0`, subnormals normalized.
#[inline(always)]
pub(super) fn split(a: f64) -> (i32, u64) {
    let bits = a.to_bits();
    if bits >> 52 == 0 {
        return split_subnormal(a);
    }
    ((bits >> 52) as i32 - 1023, bits & MANT_MASK)
}

#[cold]
fn split_subnormal(a: f64) -> (i32, u64) {
    let bits = (a * pow2(64)).to_bits();
    ((bits >> 52) as i32 - 1023 - 64, bits & MANT_MASK)
}

/// `ceil(ceil(log2(1.mant * 2^e)) / 2^s)`: the index for schema `-s <= 0`. An exact power of two
/// sits on an upper bound.
#[inline(always)]
pub(super) fn ceil_log2_shifted(e: i32, mant: u64, s: i8) -> i32 {
    let c = e + i32::from(mant != 0);
    (c + (1 << s) - 1) >> s
}

/// 2^e, exact, for e in -1022..=1023.
pub(super) fn pow2(e: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&e));
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// 2^e for any e: exact where representable, 0 below, +Inf above.
pub(super) fn pow2_wide(e: i64) -> f64 {
    match e {
        ..-1074 => 0.0,
        -1074..-1022 => f64::from_bits(1 << (e + 1074)),
        -1022..=1023 => pow2(e as i32),
        _ => f64::INFINITY,
    }
}

/// `x * 2^e` for x in [1, 2), rounding once (only below the normal range).
fn ldexp(x: f64, e: i32) -> f64 {
    match e {
        ..-1022 => x * pow2(-1022) * pow2_wide(i64::from(e) + 1022),
        -1022..=1023 => x * pow2(e),
        _ => f64::INFINITY,
    }
}

// ---------------------------------------------------------------------------------------------------
// Boundary tables

/// Per schema 1..=8 (index 0 unused):
/// - `bounds[n][k]` = 2^(k/2^n) in [1, 2), k in 0..2^n; bit for bit twice client_golang's
///   `nativeHistogramBounds[n][k]` (it builds them by repeated multiplication from the factors
///   below, reusing the coarser schema's value at every even k; we replay that).
/// - `lookup[n][c]`, c in 0..2^(n+1), for mantissas in the cell `[1 + c/2^(n+1), 1 + (c+1)/2^(n+1))`:
///   `k0` = the smallest k with `bounds[n][k]` at or above the cell start (2^n if none), and that
///   bound's mantissa. Bounds are more than ln2/2^n apart and cells 1/2^(n+1) wide, so a cell holds
///   at most one bound and the bucket is `k0` or `k0 + 1`.
pub(super) struct Tables {
    pub(super) bounds: [Box<[f64]>; 9],
    pub(super) lookup: [Box<[u64]>; 9],
}

/// client_golang's growth factors 2^(2^-n), n = 1..=8 (Go's `math.Exp2`; n = 1 is one ulp below
/// the correctly rounded √2), fixed here so the tables do not depend on the platform's `exp2`.
const FACTOR_BITS: [u64; 8] = [
    0x3ff6_a09e_667f_3bcc,
    0x3ff3_06fe_0a31_b715,
    0x3ff1_72b8_3c7d_517b,
    0x3ff0_b558_6cf9_890f,
    0x3ff0_59b0_d315_8574,
    0x3ff0_2c9a_3e77_8061,
    0x3ff0_163d_a9fb_3335,
    0x3ff0_0b1a_fa5a_bcbf,
];

pub(super) fn tables() -> &'static Tables {
    static TABLES: OnceLock<Tables> = OnceLock::new();
    TABLES.get_or_init(|| {
        let mut bounds: [Box<[f64]>; 9] = Default::default();
        let mut lookup: [Box<[u64]>; 9] = Default::default();
        bounds[0] = Box::new([1.0]);
        for n in 1..=8usize {
            let factor = f64::from_bits(FACTOR_BITS[n - 1]);
            let m = 1usize << n;
            let mut b = Vec::with_capacity(m);
            b.push(1.0);
            for j in 0..m - 1 {
                b.push(if (j + 1) % 2 == 0 { bounds[n - 1][j / 2 + 1] } else { b[j] * factor });
            }
            // Boundary mantissas, with 2.0 (= bucket m's start of the next doubling) as 1 << 52.
            let mant = |k: usize| if k == m { 1u64 << 52 } else { b[k].to_bits() & MANT_MASK };
            let cells = 1usize << (n + 1);
            let mut t = Vec::with_capacity(cells);
            let mut k0 = 0;
            for c in 0..cells {
                let start = (c as u64) << (52 - (n + 1));
                while mant(k0) < start {
                    k0 += 1;
                }
                debug_assert!(k0 == m || mant(k0 + 1) >= start + (1 << (52 - (n + 1))), "one bound per cell");
                t.push(((k0 as u64) << ENTRY_K_SHIFT) | mant(k0));
            }
            bounds[n] = b.into_boxed_slice();
            lookup[n] = t.into_boxed_slice();
        }
        Tables { bounds, lookup }
    })
}
