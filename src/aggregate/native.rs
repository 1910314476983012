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

use std::sync::OnceLock;

/// client_golang's default zero threshold, 2^-128.
pub const DEFAULT_ZERO_THRESHOLD: f64 = 2.938735877055719e-39;
/// Default growth factor (schema 3).
pub const DEFAULT_FACTOR: f64 = 1.1;
/// Default cap on populated buckets (positive + negative) before the schema is reduced.
pub const DEFAULT_MAX_BUCKETS: usize = 160;
/// Lowest standard exponential schema (the coarsest: base 2^16).
pub const MIN_SCHEMA: i8 = -4;
/// Highest standard exponential schema (the finest: 256 buckets per doubling).
pub const MAX_SCHEMA: i8 = 8;

/// Empty-index runs this short or shorter are sent as explicit zero buckets instead of a new span
/// (client_golang's choice: a span costs more bytes than one or two zero deltas).
pub const SPAN_BRIDGE: u32 = 2;

/// How a native histogram is set up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NativeConfig {
    /// Initial schema, -4..=8 (clamped into that range by [`NativeHistogram::new`]).
    pub schema: i8,
    /// Observations with `|v| <= zero_threshold` count in the zero bucket.
    pub zero_threshold: f64,
    /// Populated buckets (both signs) allowed before the schema is lowered; 0 means no limit.
    pub max_buckets: usize,
}

impl Default for NativeConfig {
    /// Schema 3 (factor 1.1), 2^-128 zero threshold, 160 buckets: client_golang's usual choice.
    fn default() -> Self {
        NativeConfig { schema: 3, zero_threshold: DEFAULT_ZERO_THRESHOLD, max_buckets: DEFAULT_MAX_BUCKETS }
    }
}

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
    /// For schema > 0, the index-lookup table of that schema (see [`Tables`]); empty otherwise.
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

/// A native histogram as remote write sends it (integer histogram).
#[derive(Debug, Clone, PartialEq)]
pub struct NativeSnapshot {
    pub schema: i8,
    pub zero_threshold: f64,
    pub zero_count: u64,
    pub count: u64,
    pub sum: f64,
    pub positive: Spans,
    pub negative: Spans,
}

/// Buckets of one sign as remote write encodes them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Spans {
    /// `(offset, length)`: the first offset is the absolute index of the first bucket, each later one
    /// the number of empty indices skipped since the previous span ended.
    pub spans: Vec<(i32, u32)>,
    /// One per bucket in the spans: the first is an absolute count, each later one the difference to
    /// the previous bucket's count.
    pub deltas: Vec<i64>,
}

impl Spans {
    /// Encodes populated buckets (sorted by index, counts > 0). Runs of at most `bridge` empty indices
    /// between two buckets become explicit zero entries instead of a new span.
    pub fn from_buckets(buckets: &[(i32, u64)], bridge: u32) -> Spans {
        let mut out = Spans::default();
        let (mut prev, mut next) = (0i64, 0i32);
        for (n, &(i, c)) in buckets.iter().enumerate() {
            let gap = i - next;
            if n == 0 || gap > bridge as i32 {
                out.spans.push((if n == 0 { i } else { gap }, 0));
            } else {
                for _ in 0..gap {
                    out.push(0, &mut prev);
                }
            }
            out.push(c as i64, &mut prev);
            next = i + 1;
        }
        out
    }

    fn push(&mut self, count: i64, prev: &mut i64) {
        self.spans.last_mut().expect("a span is opened before its first bucket").1 += 1;
        self.deltas.push(count - *prev);
        *prev = count;
    }

    /// The populated buckets `(index, count)` these spans encode (explicit zeros dropped); None when
    /// the span lengths do not add up to the deltas or an implied count is negative.
    pub fn decode(&self) -> Option<Vec<(i32, u64)>> {
        if self.spans.iter().map(|s| s.1 as usize).sum::<usize>() != self.deltas.len() {
            return None;
        }
        let (mut out, mut deltas, mut count, mut next) = (Vec::new(), self.deltas.iter(), 0i64, 0i32);
        for (n, &(offset, len)) in self.spans.iter().enumerate() {
            let mut i = if n == 0 { offset } else { next.checked_add(offset)? };
            for _ in 0..len {
                count = count.checked_add(*deltas.next()?)?;
                if count < 0 {
                    return None;
                }
                if count > 0 {
                    out.push((i, count as u64));
                }
                i = i.checked_add(1)?;
            }
            next = i;
        }
        Some(out)
    }
}

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
const ENTRY_K_SHIFT: u32 = 53;
const ENTRY_BOUND_MASK: u64 = (1 << 53) - 1;

/// `a = 1.mant * 2^e` for finite `a > 0`, subnormals normalized.
#[inline(always)]
fn split(a: f64) -> (i32, u64) {
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
fn ceil_log2_shifted(e: i32, mant: u64, s: i8) -> i32 {
    let c = e + i32::from(mant != 0);
    (c + (1 << s) - 1) >> s
}

/// 2^e, exact, for e in -1022..=1023.
fn pow2(e: i32) -> f64 {
    debug_assert!((-1022..=1023).contains(&e));
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// 2^e for any e: exact where representable, 0 below, +Inf above.
fn pow2_wide(e: i64) -> f64 {
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
struct Tables {
    bounds: [Box<[f64]>; 9],
    lookup: [Box<[u64]>; 9],
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

fn tables() -> &'static Tables {
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

// ---------------------------------------------------------------------------------------------------
// Storage of one sign

const MIN_WINDOW_CAP: usize = 1024;
const MAX_WINDOW_CAP: usize = 1 << 16;
/// Slots of a fresh window.
const INITIAL_WINDOW: usize = 16;

/// The buckets of one sign: a dense window `dense[p]` = count of index `offset + p`, plus far buckets
/// that did not fit the window's cap.
#[derive(Debug, Clone, Default)]
struct Side {
    offset: i32,
    dense: Vec<u64>,
    /// Populated buckets outside the window, sorted by index.
    far: Vec<(i32, u64)>,
    /// Non-zero buckets in `dense` and `far`.
    populated: usize,
    /// `far.len()` after the last rebuild: the window moves again only once that has doubled.
    far_mark: usize,
}

impl Side {
    /// Adds one to bucket `i`; true when the bucket was empty before.
    #[inline(always)]
    fn incr(&mut self, i: i32, cap: usize) -> bool {
        // Below the offset wraps to a huge position, out of the window like one past its end.
        let p = i.wrapping_sub(self.offset) as u32 as usize;
        match self.dense.get_mut(p) {
            Some(c) => {
                *c += 1;
                if *c == 1 {
                    self.populated += 1;
                    return true;
                }
                false
            }
            None => self.add_outside(i, 1, cap),
        }
    }

    /// Adds `c > 0` to bucket `i`, which is outside the window: grows the window over it when the
    /// cap allows, else keeps it among the far buckets. True when the bucket was empty before.
    #[cold]
    #[inline(never)]
    fn add_outside(&mut self, i: i32, c: u64, cap: usize) -> bool {
        let len = self.dense.len();
        let (lo, hi) = if len == 0 { (i, i) } else { (self.offset.min(i), (self.offset + len as i32 - 1).max(i)) };
        let need = (i64::from(hi) - i64::from(lo) + 1) as usize;
        if need <= cap {
            let target = need.max(len * 2).max(INITIAL_WINDOW).min(cap);
            let extra = (target - need) as i32;
            // Slack goes where the window grew (both ways for a fresh one).
            let start = if len == 0 {
                lo - extra / 2
            } else if i < self.offset {
                lo - extra
            } else {
                lo
            };
            let mut dense = vec![0u64; target];
            if len > 0 {
                let at = (self.offset - start) as usize;
                dense[at..at + len].copy_from_slice(&self.dense);
            }
            self.far.retain(|&(j, n)| match usize::try_from(i64::from(j) - i64::from(start)) {
                Ok(p) if p < target => {
                    dense[p] += n;
                    false
                }
                _ => true,
            });
            self.offset = start;
            self.dense = dense;
            let slot = &mut self.dense[(i - start) as usize];
            *slot += c;
            if *slot == c {
                self.populated += 1;
                return true;
            }
            return false;
        }
        match self.far.binary_search_by_key(&i, |e| e.0) {
            Ok(k) => {
                self.far[k].1 += c;
                false
            }
            Err(k) => {
                self.far.insert(k, (i, c));
                self.populated += 1;
                // The window sits on a few outliers while most buckets are far: move it.
                if self.far.len() > 8.max(2 * self.far_mark) && self.far.len() * 2 > self.populated {
                    let entries = self.entries();
                    self.rebuild(&entries, cap);
                }
                true
            }
        }
    }

    /// Populated buckets in index order.
    fn entries(&self) -> Vec<(i32, u64)> {
        let mut out = Vec::with_capacity(self.populated);
        let split = self.far.partition_point(|e| e.0 < self.offset);
        out.extend_from_slice(&self.far[..split]);
        out.extend(self.dense.iter().enumerate().filter(|e| *e.1 > 0).map(|(p, &c)| (self.offset + p as i32, c)));
        out.extend_from_slice(&self.far[split..]);
        out
    }

    /// Merges bucket pairs for the next lower schema: index `i` becomes `ceil(i/2)`.
    fn halve(&mut self, cap: usize) {
        let mut merged: Vec<(i32, u64)> = Vec::with_capacity(self.populated);
        for (i, c) in self.entries() {
            let j = (i + 1) >> 1;
            match merged.last_mut() {
                Some(last) if last.0 == j => last.1 += c,
                _ => merged.push((j, c)),
            }
        }
        self.rebuild(&merged, cap);
    }

    /// Replaces the contents with `entries` (sorted, distinct, counts > 0), placing the window of at
    /// most `cap` slots where it covers the most buckets.
    fn rebuild(&mut self, entries: &[(i32, u64)], cap: usize) {
        self.populated = entries.len();
        self.far.clear();
        self.dense.clear();
        if entries.is_empty() {
            return;
        }
        let (mut best, mut best_n, mut b) = (0usize, 0usize, 0usize);
        for a in 0..entries.len() {
            while b < entries.len() && i64::from(entries[b].0) - i64::from(entries[a].0) < cap as i64 {
                b += 1;
            }
            if b - a > best_n {
                (best, best_n) = (a, b - a);
            }
        }
        let lo = entries[best].0;
        let hi = entries[best + best_n - 1].0;
        self.offset = lo;
        self.dense = vec![0; (hi - lo) as usize + 1];
        for &(i, c) in entries {
            if (lo..=hi).contains(&i) {
                self.dense[(i - lo) as usize] = c;
            } else {
                self.far.push((i, c));
            }
        }
        self.far_mark = self.far.len();
    }
}

#[cfg(test)]
mod tests {
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
        // Lognormal-ish: exp(N(ln 5ms, 1.2)) from a fixed splitmix64 sequence through Box-Muller.
        let mut s = 0x9e37_79b9_7f4a_7c15u64;
        let mut unif = move || {
            s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut h = NativeHistogram::new(&cfg(3, 160));
        let mut vals: Vec<f64> = (0..10_000)
            .map(|_| {
                let (u1, u2) = (unif().max(1e-300), unif());
                let g = (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos();
                (0.005f64.ln() + 1.2 * g).exp()
            })
            .collect();
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
}
