//! Encoders: pure functions from a [`Snapshot`] to bytes, all driven by one traversal ([`walk`]).
//!
//! Every format implements [`Sink`]; [`walk`] expands counters, gauges, histograms and summaries
//! into samples once, so the text and the protobuf of one snapshot cannot disagree. A native
//! histogram reaches the sink whole through [`Sink::native`], whose default degrades it to what
//! the text format can show: its classic buckets, or just `_sum` and `_count`.
//!
//! A family's overflow series has every label value empty, so no label of the family is written
//! (each format drops a label whose value is empty); [`Sample::overflow`] tells the format to write
//! [`crate::registry::OVERFLOW_LABEL`]`="true"` instead.

pub mod downgrade;
pub mod float;
mod label_blocks;
pub mod metric_family;
pub mod remote_write;
pub mod remote_write2;
pub mod series_cache;
pub mod symbols;
pub mod text;
mod wire;

use crate::event::SeriesId;
use crate::registry::{Family, FamilyId, Kind};
use crate::snapshot::NativeSnapshot;
use crate::snapshot::{SeriesSnapshot, Snapshot, Value};

/// One expanded sample.
#[derive(Debug)]
pub struct Sample<'a> {
    /// Family name.
    pub name: &'a str,
    /// `""`, `_bucket`, `_sum` or `_count`.
    pub suffix: &'static str,
    /// The family's label names.
    pub label_names: &'a [Box<str>],
    /// This series' label values (same order).
    pub label_values: &'a [Box<str>],
    /// The series' id ([`SeriesSnapshot::id`]): within the snapshot's generation, these label
    /// values and this overflow flag.
    pub series: SeriesId,
    /// The family's overflow series (label values all empty): labelled
    /// [`crate::registry::OVERFLOW_LABEL`]`="true"` besides the constant labels.
    pub overflow: bool,
    /// `le` or `quantile` with its canonical spelling.
    pub extra: Option<(&'static str, &'a str)>,
    /// The value.
    pub value: f64,
    /// When the series was created (ms since the Unix epoch).
    pub created_ms: i64,
}

/// One histogram series as [`walk`] hands it to [`Sink::native`]: its identity, and the classic
/// samples it expands to (none for a native-only histogram besides `_sum` and `_count`).
#[derive(Debug)]
pub struct HistogramSeries<'a> {
    /// The series' name, labels and creation time (suffix `""`, no `le`, value = the count).
    pub series: Sample<'a>,
    /// `le` spellings of the classic bounds, then `+Inf`; empty for a native-only histogram.
    pub les: &'a [String],
    /// Cumulative classic counts, one per `les` entry.
    pub cumulative: &'a [u64],
    /// Sum of observations.
    pub sum: f64,
    /// Count of observations.
    pub count: u64,
}

impl HistogramSeries<'_> {
    /// True when the histogram has classic `le` buckets (declared with both kinds).
    pub fn has_classic_buckets(&self) -> bool {
        !self.cumulative.is_empty()
    }

    /// Emits the classic samples into `sink`: each `_bucket` (when there are classic buckets),
    /// then `_sum` and `_count`.
    pub fn classic<S: Sink + ?Sized>(&self, sink: &mut S) {
        let base = |suffix, extra, value| Sample { suffix, extra, value, ..self.series };
        for (le, c) in self.les.iter().zip(self.cumulative) {
            sink.sample(&base("_bucket", Some(("le", le.as_str())), *c as f64));
        }
        sink.sample(&base("_sum", None, self.sum));
        sink.sample(&base("_count", None, self.count as f64));
    }
}

/// A format's view of the traversal.
pub trait Sink {
    /// Called once per family that has at least one series, before its samples; `id` is its
    /// [`crate::snapshot::FamilySnapshot::id`].
    fn family(&mut self, id: FamilyId, family: &Family);
    /// Called for every sample, in exposition order.
    fn sample(&mut self, sample: &Sample<'_>);
    /// Called once per series of a native histogram, instead of [`Sink::sample`] for its classic
    /// samples. The default degrades to what a format without native histograms can show (the
    /// text exposition, the Pushgateway): the classic buckets when the family has them, else just
    /// `_sum` and `_count`. A format that carries native histograms writes `native` itself (and
    /// the classic samples too, through [`HistogramSeries::classic`], when it sends both).
    fn native(&mut self, family: &Family, series: &HistogramSeries<'_>, native: &NativeSnapshot) {
        let _ = (family, native);
        series.classic(self);
    }
    /// Whether the sink will read the label values of the series coming next, so [`walk`]
    /// reads them ahead (see there). An encoder that knows those series by their ids, and
    /// writes what it kept of them, does not: reading them would be most of its time.
    fn reads_label_values(&self) -> bool {
        true
    }
}

/// Series whose label values [`walk`] reads ahead at a time (see there).
const LOOKAHEAD: usize = 8;

/// Expands `snap` into `sink`: families in order; for each series its samples in the order the
/// text format requires (buckets ascending then `+Inf`, `_sum`, `_count`; quantiles ascending).
pub fn walk(snap: &Snapshot<'_>, sink: &mut impl Sink) {
    walk_with(snap, sink, &mut Walker::default());
}

/// What [`walk_with`] keeps from one body to the next: the spellings of bounds and quantiles
/// (the `le` and `quantile` values), so an encoder kept between pushes neither allocates nor
/// formats them again. A few sets are kept (families often share theirs); past that, the oldest
/// set's room is reused.
#[derive(Debug, Default)]
pub struct Walker {
    /// Each set: its values as bits, `+Inf` after them or not, and the spellings.
    sets: Vec<(Vec<u64>, bool, Vec<String>)>,
    /// The set to reuse next when all are taken.
    next: usize,
}

/// How many sets of spellings a [`Walker`] keeps.
const SPELLED_SETS: usize = 16;

impl Walker {
    /// Spells `f`'s bounds or quantiles (then `+Inf` for a histogram): the `le` and `quantile`
    /// values of its samples.
    pub fn spell(&mut self, f: &Family) -> &[String] {
        let inf = f.kind == Kind::Histogram;
        let same = |(bits, i, _): &(Vec<u64>, bool, Vec<String>)| {
            *i == inf && bits.len() == f.params.len() && bits.iter().zip(f.params.iter()).all(|(b, p)| *b == p.to_bits())
        };
        if let Some(at) = self.sets.iter().position(same) {
            return &self.sets[at].2;
        }
        let at = if self.sets.len() < SPELLED_SETS {
            self.sets.push(Default::default());
            self.sets.len() - 1
        } else {
            self.next = (self.next + 1) % SPELLED_SETS;
            self.next
        };
        let (bits, i, spelled) = &mut self.sets[at];
        bits.clear();
        bits.extend(f.params.iter().map(|p| p.to_bits()));
        *i = inf;
        let n = f.params.len() + usize::from(inf);
        spelled.resize_with(n, String::new);
        for (s, &p) in spelled.iter_mut().zip(f.params.iter()) {
            s.clear();
            float::write_canonical(s, p);
        }
        if inf {
            let last = &mut spelled[n - 1];
            last.clear();
            last.push_str("+Inf");
        }
        spelled
    }
}

/// [`walk`] with buffers kept in `w`.
pub fn walk_with(snap: &Snapshot<'_>, sink: &mut impl Sink, w: &mut Walker) {
    for fam in snap.families.iter().filter(|f| !f.series.is_empty()) {
        let f = fam.family;
        sink.family(fam.id, f);
        // Bounds and quantiles are per family: spell them once.
        let extras = w.spell(f);
        for (i, s) in fam.series.iter().enumerate() {
            // Each series' label values are a slice and strings of their own, wherever the
            // allocator put them when the series was made: reading them one series at a time
            // waits on memory once or twice a series (most of an encoder's time for 10 k
            // series). Every LOOKAHEAD series, read the strings of this batch and the slices of
            // the next (whose strings are read next time, then without waiting on the slices),
            // all at once, so the misses overlap; the sink then finds them in cache.
            if i % LOOKAHEAD == 0 && sink.reads_label_values() {
                let mut touched = 0usize;
                for ahead in fam.series.iter().skip(i + LOOKAHEAD).take(LOOKAHEAD) {
                    touched += ahead.label_values.first().map_or(0, |v| v.len());
                }
                for ahead in fam.series.iter().skip(i).take(LOOKAHEAD) {
                    for v in ahead.label_values {
                        touched += usize::from(v.as_bytes().first().copied().unwrap_or(0));
                    }
                }
                std::hint::black_box(touched);
            }
            walk_series(f, s, extras, sink);
        }
    }
}

/// One series of [`walk`]: its samples into `sink`, `extras` being its family's [`Walker::spell`].
/// (An encoder that keeps what it wrote last time calls it only for the series it must write anew.)
pub fn walk_series(f: &Family, s: &SeriesSnapshot<'_>, extras: &[String], sink: &mut impl Sink) {
    let base = |suffix, extra, value| Sample {
        name: &f.name,
        suffix,
        label_names: &f.label_names,
        label_values: s.label_values,
        series: s.id,
        overflow: s.overflow,
        extra,
        value,
        created_ms: s.created_ms,
    };
    match &s.value {
        Value::Scalar(v) => sink.sample(&base("", None, *v)),
        Value::Histogram { cumulative, sum, count, native, .. } => {
            let h = HistogramSeries {
                series: base("", None, *count as f64),
                les: if cumulative.is_empty() { &[] } else { extras },
                cumulative,
                sum: *sum,
                count: *count,
            };
            match native {
                Some(n) => sink.native(f, &h, n),
                None => h.classic(sink),
            }
        }
        Value::Summary { quantiles, sum, count } => {
            for (q, (_, v)) in extras.iter().zip(quantiles) {
                sink.sample(&base("", Some(("quantile", q)), *v));
            }
            sink.sample(&base("_sum", None, *sum));
            sink.sample(&base("_count", None, *count as f64));
        }
    }
}
