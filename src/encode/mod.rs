//! Encoders: pure functions from a [`Snapshot`] to bytes, all driven by one traversal ([`walk`]).
//!
//! Every format implements [`Sink`]; [`walk`] expands counters, gauges, histograms and summaries
//! into samples once, so the text and the protobuf of one snapshot cannot disagree.

pub mod float;
pub mod remote_write;
pub mod remote_write2;
pub mod symbols;
pub mod text;

use crate::registry::{Family, Kind};
use crate::snapshot::{Snapshot, Value};

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
    /// `le` or `quantile` with its canonical spelling.
    pub extra: Option<(&'static str, &'a str)>,
    /// The value.
    pub value: f64,
    /// When the series was created (ms since the Unix epoch).
    pub created_ms: i64,
}

/// A format's view of the traversal.
pub trait Sink {
    /// Called once per family that has at least one series, before its samples.
    fn family(&mut self, family: &Family);
    /// Called for every sample, in exposition order.
    fn sample(&mut self, sample: &Sample<'_>);
}

/// Expands `snap` into `sink`: families in order; for each series its samples in the order the
/// text format requires (buckets ascending then `+Inf`, `_sum`, `_count`; quantiles ascending).
pub fn walk(snap: &Snapshot<'_>, sink: &mut impl Sink) {
    let mut extras: Vec<String> = Vec::new();
    for fam in snap.families.iter().filter(|f| !f.series.is_empty()) {
        let f = fam.family;
        sink.family(f);
        // Bounds and quantiles are per family: spell them once.
        extras.clear();
        for &p in f.params.iter() {
            let mut s = String::new();
            float::write_canonical(&mut s, p);
            extras.push(s);
        }
        if f.kind == Kind::Histogram {
            extras.push("+Inf".into());
        }
        for s in &fam.series {
            let base = |suffix, extra, value| Sample {
                name: &f.name,
                suffix,
                label_names: &f.label_names,
                label_values: s.label_values,
                extra,
                value,
                created_ms: s.created_ms,
            };
            match &s.value {
                Value::Scalar(v) => sink.sample(&base("", None, *v)),
                Value::Histogram { cumulative, sum, count, .. } => {
                    for (le, c) in extras.iter().zip(cumulative) {
                        sink.sample(&base("_bucket", Some(("le", le)), *c as f64));
                    }
                    sink.sample(&base("_sum", None, *sum));
                    sink.sample(&base("_count", None, *count as f64));
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
    }
}
