//! A native histogram as the encoders see it: schema, zero bucket, and per-sign spans and deltas.

/// A native histogram as remote write sends it (integer histogram).
#[derive(Debug, Clone, PartialEq)]
pub struct NativeSnapshot {
    /// Schema, -4..=8.
    pub schema: i8,
    /// Upper bound of `|v|` for the zero bucket.
    pub zero_threshold: f64,
    /// Observations in the zero bucket.
    pub zero_count: u64,
    /// Number of observations (zero bucket included).
    pub count: u64,
    /// Sum of observations.
    pub sum: f64,
    /// Positive buckets.
    pub positive: Spans,
    /// Negative buckets (indexed by `|v|`).
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
