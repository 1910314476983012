//! A native (sparse, exponential) histogram: schema, zero bucket, and per-sign sparse buckets,
//! pushed over remote write as an integer histogram (spans and deltas).
//!
//! Bucket `i` of schema `n` covers `(base^(i-1), base^i]` with `base = 2^(2^-n)`; the negative
//! buckets mirror the positive ones; `|v| <= zero_threshold` goes to the zero bucket.
//!
//! Indexing is exact (no `log`): the value's IEEE exponent gives `i / 2^n`, and for `n > 0` the top
//! `n + 1` mantissa bits pick a table cell holding the one bucket boundary that can fall inside it,
//! so one load and one compare give the rest. The boundaries are bit-identical to client_golang's
//! `nativeHistogramBounds` (the values Prometheus itself uses), so a value lands in the same bucket
//! as it would there, even one sitting exactly on a boundary.
//!
//! Storage per sign is a dense window of counts with an offset, grown on demand (observing into an
//! existing bucket is an index check and an add, with no allocation). The window is capped at
//! `max(1024, 4 * max_buckets)` slots (at most 65,536); a populated bucket that would stretch it past
//! the cap (a far outlier) goes to a short sorted list beside it instead (and the window moves when
//! most buckets end up there). So memory per sign is at most the cap's slots plus the populated
//! buckets, which `max_buckets` bounds, whatever values arrive: 8 KiB + a few outliers by default.

mod bucket;
mod side;
#[cfg(test)]
mod tests;

pub use crate::snapshot::{NativeSnapshot, Spans};
pub use bucket::{bucket_index, upper_bound};

use bucket::{ENTRY_BOUND_MASK, ENTRY_K_SHIFT, ceil_log2_shifted, pow2, split, tables};
use side::{MAX_WINDOW_CAP, MIN_WINDOW_CAP, Side};

pub use crate::registry::{DEFAULT_MAX_BUCKETS, DEFAULT_ZERO_THRESHOLD, NativeConfig};
/// Default growth factor (schema 3).
pub const DEFAULT_FACTOR: f64 = 1.1;
/// Lowest standard exponential schema (the coarsest: base 2^16).
pub const MIN_SCHEMA: i8 = -4;
/// Highest standard exponential schema (the finest: 256 buckets per doubling).
pub const MAX_SCHEMA: i8 = 8;

/// Empty-index runs this short or shorter are sent as explicit zero buckets instead of a new span
/// (client_golang's choice: a span costs more bytes than one or two zero deltas).
pub const SPAN_BRIDGE: u32 = 2;

// The factor arithmetic lives beside the bucket math; the type is the registry's, which keeps it per family.
impl NativeConfig {
    /// The coarsest schema whose growth factor 2^(2^-n) does not exceed `factor` (factor 1.1 → schema 3,
    /// as client_golang chooses), clamped to 8 for factors below 2^(2^-8) and to -4 for factors of
    /// 2^16 and above. Errors: `factor` not finite or not > 1, `zero_threshold` negative or not finite,
    /// `max_buckets` 0.
    pub fn from_factor(factor: f64, zero_threshold: f64, max_buckets: usize) -> Result<NativeConfig, String> {
        if !(factor > 1.0 && factor.is_finite()) {
            return Err(format!("native histogram factor must be a finite number greater than 1, got {factor}"));
        }
        if !(zero_threshold >= 0.0 && zero_threshold.is_finite()) {
            return Err(format!("native histogram zero_threshold must be a finite number >= 0, got {zero_threshold}"));
        }
        if max_buckets == 0 {
            return Err("native histogram max_buckets must be at least 1".to_string());
        }
        let schema = (MIN_SCHEMA..MAX_SCHEMA).find(|&n| growth_factor(n) <= factor).unwrap_or(MAX_SCHEMA);
        Ok(NativeConfig { schema, zero_threshold, max_buckets })
    }
}

/// The ratio between neighbouring bucket bounds at `schema`, 2^(2^-schema), as Prometheus computes it.
pub fn growth_factor(schema: i8) -> f64 {
    let n = schema.clamp(MIN_SCHEMA, MAX_SCHEMA);
    if n <= 0 { pow2(1 << -n) } else { tables().bounds[n as usize][1] }
}

/// The state of one native histogram series.
#[derive(Debug, Clone)]
pub struct NativeHistogram {
    schema: i8,
    /// For schema > 0, the index-lookup table of that schema (see [`bucket::Tables`]); empty otherwise.
    lookup: &'static [u64],
    /// Right shift of the mantissa that leaves the table cell (`52 - (schema + 1)`).
    shift: u32,
    zero_threshold: f64,
    /// `usize::MAX` for "no limit".
    max_buckets: usize,
    /// Cap on the dense window of each sign.
    window_cap: usize,
    zero_count: u64,
    count: u64,
    sum: f64,
    positive: Side,
    negative: Side,
}

impl NativeHistogram {
    /// An empty histogram. The schema is clamped to -4..=8, a negative or NaN zero threshold is
    /// taken as 0, and `max_buckets` 0 means no limit.
    pub fn new(cfg: &NativeConfig) -> Self {
        let max_buckets = if cfg.max_buckets == 0 { usize::MAX } else { cfg.max_buckets };
        let mut h = NativeHistogram {
            schema: cfg.schema.clamp(MIN_SCHEMA, MAX_SCHEMA),
            lookup: &[],
            shift: 0,
            zero_threshold: if cfg.zero_threshold >= 0.0 { cfg.zero_threshold } else { 0.0 },
            max_buckets,
            window_cap: max_buckets.saturating_mul(4).clamp(MIN_WINDOW_CAP, MAX_WINDOW_CAP),
            zero_count: 0,
            count: 0,
            sum: 0.0,
            positive: Side::default(),
            negative: Side::default(),
        };
        h.set_lookup();
        h
    }

    /// One observation. The caller passes finite values only (NaN and infinities are refused
    /// upstream; one that got here anyway would land in a bucket past `f64::MAX` and spoil `sum`).
    /// No allocation unless the value opens a bucket outside the current window.
    #[inline]
    pub fn observe(&mut self, v: f64) {
        self.count += 1;
        self.sum += v;
        let a = v.abs();
        if a <= self.zero_threshold {
            self.zero_count += 1;
            return;
        }
        let i = self.index(a);
        let cap = self.window_cap;
        let side = if v > 0.0 { &mut self.positive } else { &mut self.negative };
        if side.incr(i, cap) && self.positive.populated + self.negative.populated > self.max_buckets {
            self.reduce();
        }
    }

    /// The bucket index of `a` (finite, > 0) at the current schema.
    #[inline(always)]
    fn index(&self, a: f64) -> i32 {
        let (e, mant) = split(a);
        if self.schema > 0 {
            // The cell's entry: the first boundary at or above the cell start (k0 in the top bits,
            // its mantissa below); the value is in bucket k0 unless it lies above that boundary.
            let entry = self.lookup[(mant >> self.shift) as usize];
            (e << self.schema) + (entry >> ENTRY_K_SHIFT) as i32 + i32::from(mant > entry & ENTRY_BOUND_MASK)
        } else {
            ceil_log2_shifted(e, mant, -self.schema)
        }
    }

    /// Lowers the schema (merging bucket pairs: `i → ceil(i/2)`) until the populated buckets fit
    /// `max_buckets`, or the schema is -4. client_golang lowers once per new bucket; looping
    /// guarantees the cap even when a halving merges nothing (every other index populated).
    #[cold]
    #[inline(never)]
    fn reduce(&mut self) {
        while self.populated() > self.max_buckets && self.schema > MIN_SCHEMA {
            self.schema -= 1;
            self.positive.halve(self.window_cap);
            self.negative.halve(self.window_cap);
        }
        self.set_lookup();
    }

    fn set_lookup(&mut self) {
        if self.schema > 0 {
            self.lookup = &tables().lookup[self.schema as usize];
            self.shift = 52 - (self.schema as u32 + 1);
        } else {
            self.lookup = &[];
            self.shift = 0;
        }
    }

    /// Current schema (the configured one, or lower after reductions).
    pub fn schema(&self) -> i8 {
        self.schema
    }

    /// Number of observations (zero bucket included).
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of observations.
    pub fn sum(&self) -> f64 {
        self.sum
    }

    /// Observations in the zero bucket.
    pub fn zero_count(&self) -> u64 {
        self.zero_count
    }

    /// Upper bound of `|v|` for the zero bucket.
    pub fn zero_threshold(&self) -> f64 {
        self.zero_threshold
    }

    /// Populated (non-zero) buckets, positive and negative; at most `max_buckets` unless the schema
    /// has reached -4.
    pub fn populated(&self) -> usize {
        self.positive.populated + self.negative.populated
    }

    /// The state as remote write wants it: integer histogram spans and deltas per sign, with gaps of
    /// up to [`SPAN_BRIDGE`] empty buckets sent as explicit zeros.
    pub fn snapshot(&self) -> NativeSnapshot {
        NativeSnapshot {
            schema: self.schema,
            zero_threshold: self.zero_threshold,
            zero_count: self.zero_count,
            count: self.count,
            sum: self.sum,
            positive: Spans::from_buckets(&self.positive.entries(), SPAN_BRIDGE),
            negative: Spans::from_buckets(&self.negative.entries(), SPAN_BRIDGE),
        }
    }

    /// Populated buckets `(index, count)` in index order: (positive, negative).
    pub fn buckets(&self) -> (Buckets, Buckets) {
        (self.positive.entries(), self.negative.entries())
    }
}

/// Populated buckets `(index, count)` of one sign, in index order.
pub type Buckets = Vec<(i32, u64)>;
