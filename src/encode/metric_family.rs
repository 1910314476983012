//! The Pushgateway's protobuf: a snapshot as length-delimited `io.prometheus.client.MetricFamily`
//! messages (each preceded by its length as a varint), one per family, as client_golang pushes.
//!
//! Driven by the same [`walk`](super::walk) as the text exposition, so both show the same series and values.
//! Counters and gauges are one `Counter`/`Gauge` each; a summary's quantiles, sum and count are
//! one `Summary`; a classic histogram is one `Histogram` with cumulative buckets (the `+Inf` one
//! left out: it is the count). A native histogram goes whole in the same `Histogram` message:
//! schema, zero threshold and count, and per sign its spans and delta-encoded integer counts
//! (the very [`Spans`] remote write sends), next to its classic buckets
//! when the family has both. No field `timestamp_ms`: the Pushgateway refuses it. Labels are the
//! family's and the constant ones, sorted by name, empty values left out; job, instance and the
//! grouping labels come from the URL.

use super::series_cache::{Run, SeriesCache};
use super::wire::{put_string, put_varint, varint_len, zigzag32, zigzag64};
use super::{HistogramSeries, Sample, Sink, Walker, walk_series};
use crate::registry::{Family, FamilyId, Kind, OVERFLOW_LABEL};
use crate::snapshot::{NativeSnapshot, Snapshot, Spans};

/// The Content-Type of this format (client_golang's spelling).
pub const CONTENT_TYPE: &str = "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited";

// Field keys (field number << 3 | wire type), each one byte.
const LEN: u8 = 2;
const F64: u8 = 1;
const FAMILY_NAME: u8 = 1 << 3 | LEN;
const FAMILY_HELP: u8 = 2 << 3 | LEN;
const FAMILY_TYPE: u8 = 3 << 3;
const FAMILY_METRIC: u8 = 4 << 3 | LEN;
const METRIC_LABEL: u8 = 1 << 3 | LEN;
const METRIC_GAUGE: u8 = 2 << 3 | LEN;
const METRIC_COUNTER: u8 = 3 << 3 | LEN;
const METRIC_SUMMARY: u8 = 4 << 3 | LEN;
const METRIC_HISTOGRAM: u8 = 7 << 3 | LEN;
/// `Gauge.value`, `Counter.value`, `Quantile.quantile`.
const VALUE: u8 = 1 << 3 | F64;
/// `Quantile.value`, `Summary.sample_sum`, `Histogram.sample_sum`, `Bucket.upper_bound`.
const SECOND_F64: u8 = 2 << 3 | F64;
/// `Summary.sample_count`, `Histogram.sample_count`, `Bucket.cumulative_count`.
const COUNT: u8 = 1 << 3;
const SUMMARY_QUANTILE: u8 = 3 << 3 | LEN;
const HISTOGRAM_BUCKET: u8 = 3 << 3 | LEN;
const SCHEMA: u8 = 5 << 3;
const ZERO_THRESHOLD: u8 = 6 << 3 | F64;
const ZERO_COUNT: u8 = 7 << 3;
const NEGATIVE_SPAN: u8 = 9 << 3 | LEN;
const NEGATIVE_DELTA: u8 = 10 << 3 | LEN;
const POSITIVE_SPAN: u8 = 12 << 3 | LEN;
const POSITIVE_DELTA: u8 = 13 << 3 | LEN;

/// `MetricType` of a kind.
fn metric_type(kind: Kind) -> u64 {
    match kind {
        Kind::Counter => 0,
        Kind::Gauge => 1,
        Kind::Summary => 2,
        Kind::Histogram => 4,
    }
}

/// Where a label of the current family takes its value from.
#[derive(Debug, Clone, Copy)]
enum Src {
    Family(usize),
    Const(usize),
    Overflow,
}

/// The Pushgateway body of successive snapshots, each made from the one before: a series whose
/// labels and values are as the last body had them is copied from it (its whole `Metric`), one
/// whose values changed keeps its encoded labels, anything else is encoded afresh
/// ([`SeriesCache`] says which). Every buffer is kept from one push to the next. The output is
/// byte for byte a fresh encoder's.
///
/// Memory: the last body and this one, the cache's index of the last body (a few words per series
/// and a `u64` per value) and one series' scratch; shrunk when a body needs much less than an
/// earlier one.
#[derive(Debug, Default)]
pub struct FamilyEncoder {
    /// The whole body.
    out: Vec<u8>,
    /// The last body, which unchanged series are copied from.
    prev: Vec<u8>,
    /// A fresh series' `Label` fields.
    labels: Vec<u8>,
    /// The current series' `Counter`/`Gauge`/`Summary`/`Histogram` body.
    value: Vec<u8>,
    /// A summary's quantiles or a histogram's buckets, gathered until its `_count`.
    parts: Vec<u8>,
    /// One native span or one packed delta list before its length is known.
    scratch: Vec<u8>,
    /// The family's name, help and type fields.
    header: Vec<u8>,
    /// Classic bounds or quantiles.
    params: Vec<f64>,
    /// Label sources in label-name order.
    order: Vec<Src>,
    /// Where each family's message starts (at its length) and its length, in the last body and
    /// in this one, in output order.
    fam_lens: Vec<(usize, usize)>,
    new_fam_lens: Vec<(usize, usize)>,
    cache: SeriesCache,
    walker: Walker,
    /// The last body was taken and not given back: nothing can be copied from it.
    lent: bool,
}

impl FamilyEncoder {
    /// Encodes `snap` with `const_labels` (the static labels) on every series; the body stays in
    /// the encoder until the next call.
    pub fn encode(&mut self, snap: &Snapshot<'_>, const_labels: &[(String, String)]) -> &[u8] {
        if std::mem::take(&mut self.lent) {
            self.cache.clear();
        }
        std::mem::swap(&mut self.out, &mut self.prev);
        std::mem::swap(&mut self.fam_lens, &mut self.new_fam_lens);
        self.out.clear();
        self.new_fam_lens.clear();
        self.cache.begin(snap.generation, const_labels);
        let mut walker = std::mem::take(&mut self.walker);
        let mut sink = FamilySink {
            enc: self,
            const_labels,
            kind: Kind::Counter,
            version: 0,
            fam: None,
            part: 0,
            sum: 0.0,
            old: None,
            copy: Run::default(),
        };
        for fam in snap.families.iter().filter(|f| !f.series.is_empty()) {
            let f = fam.family;
            // A family showing what it showed in the last body: its message as it was, whole.
            if let Some(i) = sink.enc.cache.unchanged_family(fam.id, fam.version)
                && let Some(&(from, len)) = sink.enc.fam_lens.get(i)
            {
                sink.end_family();
                let at = sink.len();
                sink.copy(from, from + varint_len(len as u64) + len);
                sink.enc.cache.keep_family(i, at as i64 - from as i64);
                sink.enc.new_fam_lens.push((at, len));
                continue;
            }
            sink.version = fam.version;
            sink.family(fam.id, f);
            let extras = walker.spell(f);
            for s in &fam.series {
                let e = &mut *sink.enc;
                let old = e.cache.series(s.id);
                e.cache.push_value(&s.value);
                match old {
                    // Labels and values as last time: its `Metric` as it was.
                    Some(j) if e.cache.same_values(j) => {
                        let m = e.cache.old_marks(j);
                        let (from, to) = (m[0] as usize, m[3] as usize);
                        let start = sink.len();
                        sink.copy(from, to);
                        sink.enc.cache.push_marks_moved(j, from, start);
                    }
                    // Else through the walk, with the old labels when it had them.
                    _ => {
                        sink.old = old;
                        walk_series(f, s, extras, &mut sink);
                    }
                }
            }
        }
        sink.end_family();
        // Nothing changed: the last body is this one, as it is (no copy).
        if sink.copy.is_whole(sink.enc.prev.len()) && sink.enc.out.is_empty() {
            sink.copy = Run::default();
            let e = &mut *sink.enc;
            std::mem::swap(&mut e.out, &mut e.prev);
        }
        sink.flush();
        self.walker = walker;
        self.cache.finish();
        // The old body is needed only while the next one is made from it; keep its allocation
        // unless it is far larger than bodies are now.
        if self.prev.capacity() > 4 * self.out.len() + (1 << 16) {
            self.prev = Vec::new();
        }
        &self.out
    }

    /// Bytes held between calls (both bodies, the scratch and the index), for the memory bound.
    pub fn heap_bytes(&self) -> usize {
        self.out.capacity()
            + self.prev.capacity()
            + self.labels.capacity()
            + self.value.capacity()
            + self.parts.capacity()
            + self.scratch.capacity()
            + self.header.capacity()
            + self.cache.heap_bytes()
    }

    /// Takes the body out without copying it. Give its buffer back ([`FamilyEncoder::give_back`])
    /// before the next [`FamilyEncoder::encode`], which copies unchanged series from it; without
    /// it, that body is encoded afresh.
    pub fn take(&mut self) -> Vec<u8> {
        self.lent = true;
        std::mem::take(&mut self.out)
    }

    /// Gives back the buffer [`FamilyEncoder::take`] took, as it was.
    pub fn give_back(&mut self, body: Vec<u8>) {
        self.out = body;
        self.lent = false;
    }
}

/// Encodes `snap` into a new buffer (see [`FamilyEncoder::encode`]).
///
/// ```
/// use kdbprom::registry::{Kind, Limits, Registry};
/// use kdbprom::aggregate::Aggregator;
/// use kdbprom::event::{Event, Op};
/// use prost::Message;
/// let reg = Registry::new(Limits::default());
/// reg.declare("rows_total", "Rows.", Kind::Counter, &["table"], &[]).unwrap();
/// let mut agg = Aggregator::new(5);
/// agg.apply(&reg, Event { series: reg.series("rows_total", &["t"]).unwrap(), op: Op::Inc, value: 3.0 });
/// let body = kdbprom::encode::metric_family::encode(&agg.snapshot(&reg), &[("env".into(), "prod".into())]);
/// let f = kdbprom::proto::client::MetricFamily::decode_length_delimited(&body[..]).unwrap();
/// assert_eq!((f.name(), f.help(), f.metric[0].counter.as_ref().unwrap().value()), ("rows_total", "Rows.", 3.0));
/// let labels: Vec<_> = f.metric[0].label.iter().map(|l| (l.name(), l.value())).collect();
/// assert_eq!(labels, [("env", "prod"), ("table", "t")]);
/// ```
pub fn encode(snap: &Snapshot<'_>, const_labels: &[(String, String)]) -> Vec<u8> {
    FamilyEncoder::default().encode(snap, const_labels).to_vec()
}

/// Where the current family's message started: its length's place and how many bytes it was
/// given; and for a family the last body had, where its message was and how long.
#[derive(Debug, Clone, Copy)]
struct FamStart {
    at: usize,
    len_bytes: usize,
    old: Option<(usize, usize)>,
}

struct FamilySink<'e, 'c> {
    enc: &'e mut FamilyEncoder,
    const_labels: &'c [(String, String)],
    kind: Kind,
    /// The version of the family [`Sink::family`] starts next.
    version: u64,
    fam: Option<FamStart>,
    /// Buckets or quantiles of the current series seen so far.
    part: usize,
    sum: f64,
    /// The old series the current one is, if any.
    old: Option<usize>,
    /// A run of the old body still to copy: consecutive unchanged series become one copy.
    copy: Run,
}

impl FamilySink<'_, '_> {
    /// Length of the body with the pending copy.
    fn len(&self) -> usize {
        self.enc.out.len() + self.copy.len()
    }

    fn copy(&mut self, from: usize, to: usize) {
        if let Some(r) = self.copy.add(from, to) {
            let e = &mut *self.enc;
            e.out.extend_from_slice(&e.prev[r]);
        }
    }

    /// Writes the pending copy: before anything else is written.
    fn flush(&mut self) {
        if let Some(r) = self.copy.take() {
            let e = &mut *self.enc;
            e.out.extend_from_slice(&e.prev[r]);
        }
    }

    /// Ends the family being written: its length goes in front of it. The length was given as
    /// many bytes as the same family's length took in the last body (1 for a new family); when
    /// that was wrong the family moves, and its series' offsets with it.
    ///
    /// A family the last body had starts as a copy of its length and header from there; when
    /// every series was copied too, in one run to the old message's end, the message is the old
    /// one byte for byte, length included, and stays a copy (not yet written).
    fn end_family(&mut self) {
        // None written yet, or the last one copied whole: nothing to end (a pending copy stays
        // pending, so a body with nothing changed stays one run).
        let Some(FamStart { at, len_bytes, old }) = self.fam.take() else { return };
        if let Some((from, len)) = old
            && self.copy.to == from + len_bytes + len
            && self.copy.from <= from
            && self.len() - at == len_bytes + len
        {
            self.enc.new_fam_lens.push((at, len));
            return;
        }
        self.flush();
        let e = &mut *self.enc;
        let len = e.out.len() - at - len_bytes;
        if len == e.header.len() {
            // No series (walk never does this): no message.
            e.out.truncate(at);
            return;
        }
        e.new_fam_lens.push((at, len));
        let mut v = [0u8; 10];
        let n = varint_into(&mut v, len as u64);
        if n != len_bytes {
            e.out.splice(at..at + len_bytes, v[..n].iter().copied());
            e.cache.shift_family_marks(n as i64 - len_bytes as i64);
        } else {
            e.out[at..at + n].copy_from_slice(&v[..n]);
        }
    }

    /// Writes the current series as a `Metric` holding `e.value` as field `key`, with the last
    /// body's labels when it had the series, else encoded afresh. Offsets kept
    /// ([`SeriesCache::push_mark`]): where the `Metric` field starts, where its labels start and
    /// end, where it ends.
    fn metric(&mut self, s: &Sample<'_>, key: u8) {
        self.flush();
        let e = &mut *self.enc;
        let start = e.out.len();
        let labels: &[u8] = match self.old {
            Some(j) => {
                let m = e.cache.old_marks(j);
                &e.prev[m[1] as usize..m[2] as usize]
            }
            None => {
                e.labels.clear();
                put_labels(&mut e.labels, &e.order, s, self.const_labels);
                &e.labels
            }
        };
        let body = labels.len() + 1 + varint_len(e.value.len() as u64) + e.value.len();
        e.out.push(FAMILY_METRIC);
        put_varint(&mut e.out, body as u64);
        let ls = e.out.len();
        e.out.extend_from_slice(labels);
        let le = e.out.len();
        put_message(&mut e.out, key, &e.value);
        let end = e.out.len();
        for m in [start, ls, le, end] {
            e.cache.push_mark(m);
        }
    }
}

/// `v` as a varint into `buf`; its length.
fn varint_into(buf: &mut [u8; 10], mut v: u64) -> usize {
    let mut i = 0;
    while v >= 0x80 {
        buf[i] = v as u8 | 0x80;
        v >>= 7;
        i += 1;
    }
    buf[i] = v as u8;
    i + 1
}

/// Appends `s`'s `Label` fields in `order` (names sorted), empty values left out.
fn put_labels(out: &mut Vec<u8>, order: &[Src], s: &Sample<'_>, consts: &[(String, String)]) {
    for &src in order {
        let (name, v): (&str, &str) = match src {
            Src::Family(i) => (&s.label_names[i], &s.label_values[i]),
            Src::Const(i) => (&consts[i].0, &consts[i].1),
            Src::Overflow => (OVERFLOW_LABEL, if s.overflow { "true" } else { "" }),
        };
        // Empty values mean "no label", as in the text exposition.
        if v.is_empty() {
            continue;
        }
        let len = 1 + varint_len(name.len() as u64) + name.len() + 1 + varint_len(v.len() as u64) + v.len();
        out.push(METRIC_LABEL);
        put_varint(out, len as u64);
        put_string(out, 1, &[name]);
        put_string(out, 2, &[v]);
    }
}

/// Appends one classic `Bucket` to a `Histogram` body.
fn put_bucket(out: &mut Vec<u8>, bound: f64, cumulative: u64) {
    out.push(HISTOGRAM_BUCKET);
    put_varint(out, (1 + varint_len(cumulative) + 9) as u64);
    out.push(COUNT);
    put_varint(out, cumulative);
    out.push(SECOND_F64);
    out.extend_from_slice(&bound.to_le_bytes());
}

/// Appends `body` as the length-delimited field `key`.
fn put_message(out: &mut Vec<u8>, key: u8, body: &[u8]) {
    out.push(key);
    put_varint(out, body.len() as u64);
    out.extend_from_slice(body);
}

/// Appends one sign's spans (`BucketSpan` messages) and packed zigzag deltas.
fn put_spans(out: &mut Vec<u8>, scratch: &mut Vec<u8>, span_key: u8, delta_key: u8, s: &Spans) {
    for &(offset, length) in &s.spans {
        scratch.clear();
        scratch.push(1 << 3);
        put_varint(scratch, zigzag32(offset));
        scratch.push(2 << 3);
        put_varint(scratch, u64::from(length));
        put_message(out, span_key, scratch);
    }
    if !s.deltas.is_empty() {
        scratch.clear();
        for &d in &s.deltas {
            put_varint(scratch, zigzag64(d));
        }
        put_message(out, delta_key, scratch);
    }
}

/// Appends the native fields of `n` to a `Histogram` body.
fn put_native(out: &mut Vec<u8>, scratch: &mut Vec<u8>, n: &NativeSnapshot) {
    // Written even when 0 (proto2 presence): the schema marks the histogram as native.
    out.push(SCHEMA);
    put_varint(out, zigzag32(i32::from(n.schema)));
    out.push(ZERO_THRESHOLD);
    out.extend_from_slice(&n.zero_threshold.to_le_bytes());
    out.push(ZERO_COUNT);
    put_varint(out, n.zero_count);
    put_spans(out, scratch, NEGATIVE_SPAN, NEGATIVE_DELTA, &n.negative);
    put_spans(out, scratch, POSITIVE_SPAN, POSITIVE_DELTA, &n.positive);
    // Without buckets and a zero threshold, a no-op span tells it from a classic histogram.
    if n.zero_threshold == 0.0 && n.positive.spans.is_empty() && n.negative.spans.is_empty() {
        put_message(out, POSITIVE_SPAN, &[1 << 3, 0, 2 << 3, 0]);
    }
}

impl Sink for FamilySink<'_, '_> {
    fn family(&mut self, id: FamilyId, f: &Family) {
        self.end_family();
        self.kind = f.kind;
        let known = self.enc.cache.family(id, self.version);
        let e = &mut *self.enc;
        e.header.clear();
        e.header.push(FAMILY_NAME);
        put_varint(&mut e.header, f.name.len() as u64);
        e.header.extend_from_slice(f.name.as_bytes());
        if !f.help.is_empty() {
            e.header.push(FAMILY_HELP);
            put_varint(&mut e.header, f.help.len() as u64);
            e.header.extend_from_slice(f.help.as_bytes());
        }
        e.header.push(FAMILY_TYPE);
        put_varint(&mut e.header, metric_type(f.kind));
        e.params.clear();
        e.params.extend_from_slice(&f.params);
        // Labels sorted by name: the family's, the constant ones, the overflow label; a stable
        // order among equal names (by where each comes from), as a stable sort would give.
        let nf = f.label_names.len();
        let consts = self.const_labels;
        let name = |s: Src| match s {
            Src::Family(i) => (&*f.label_names[i], i),
            Src::Const(i) => (consts[i].0.as_str(), nf + i),
            Src::Overflow => (OVERFLOW_LABEL, nf + consts.len()),
        };
        e.order.clear();
        e.order.extend((0..nf).map(Src::Family));
        e.order.extend((0..consts.len()).map(Src::Const));
        e.order.push(Src::Overflow);
        e.order.sort_unstable_by(|&a, &b| name(a).cmp(&name(b)));
        e.parts.clear();
        self.part = 0;
        // The family's length goes before it: give it as many bytes as last time. A family the
        // last body had starts as a copy of its length and header (see `end_family`).
        let old = known.and_then(|i| e.fam_lens.get(i).copied());
        let len_bytes = old.map_or(1, |(_, l)| varint_len(l as u64));
        let at = match old {
            Some((from, _)) => {
                let at = self.len();
                self.copy(from, from + len_bytes + self.enc.header.len());
                at
            }
            None => {
                self.flush();
                let e = &mut *self.enc;
                let at = e.out.len();
                e.out.resize(at + len_bytes, 0);
                e.out.extend_from_slice(&e.header);
                at
            }
        };
        self.fam = Some(FamStart { at, len_bytes, old });
    }

    fn sample(&mut self, s: &Sample<'_>) {
        let kind = self.kind;
        let e = &mut *self.enc;
        match (kind, s.suffix) {
            (Kind::Counter | Kind::Gauge, _) => {
                e.value.clear();
                e.value.push(VALUE);
                e.value.extend_from_slice(&s.value.to_le_bytes());
                self.metric(s, if kind == Kind::Counter { METRIC_COUNTER } else { METRIC_GAUGE });
            }
            (Kind::Summary, "") => {
                let q = e.params.get(self.part).copied().unwrap_or(f64::NAN);
                e.parts.push(SUMMARY_QUANTILE);
                e.parts.push(18);
                e.parts.push(VALUE);
                e.parts.extend_from_slice(&q.to_le_bytes());
                e.parts.push(SECOND_F64);
                e.parts.extend_from_slice(&s.value.to_le_bytes());
                self.part += 1;
            }
            (Kind::Histogram, "_bucket") => {
                // The last one is `+Inf`: the count says it.
                if let Some(&bound) = e.params.get(self.part) {
                    put_bucket(&mut e.parts, bound, s.value as u64);
                }
                self.part += 1;
            }
            (_, "_sum") => self.sum = s.value,
            (_, "_count") => {
                e.value.clear();
                e.value.push(COUNT);
                put_varint(&mut e.value, s.value as u64);
                e.value.push(SECOND_F64);
                e.value.extend_from_slice(&self.sum.to_le_bytes());
                e.value.extend_from_slice(&e.parts);
                e.parts.clear();
                self.part = 0;
                self.metric(s, if kind == Kind::Summary { METRIC_SUMMARY } else { METRIC_HISTOGRAM });
            }
            _ => {}
        }
    }

    fn native(&mut self, _: &Family, h: &HistogramSeries<'_>, n: &NativeSnapshot) {
        let e = &mut *self.enc;
        e.parts.clear();
        if h.has_classic_buckets() {
            for (&bound, &c) in e.params.iter().zip(h.cumulative) {
                put_bucket(&mut e.parts, bound, c);
            }
        }
        e.value.clear();
        e.value.push(COUNT);
        put_varint(&mut e.value, h.count);
        e.value.push(SECOND_F64);
        e.value.extend_from_slice(&h.sum.to_le_bytes());
        e.value.extend_from_slice(&e.parts);
        e.parts.clear();
        put_native(&mut e.value, &mut e.scratch, n);
        self.metric(&h.series, METRIC_HISTOGRAM);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregator;
    use crate::encode::remote_write::tests::{native_registry, overflow_registry};
    use crate::event::{Event, Op};
    use crate::proto::client::{self, MetricFamily, MetricType};
    use crate::registry::{Limits, Registry};
    use prost::Message;

    /// Every message of a delimited body.
    pub(crate) fn decode(mut body: &[u8]) -> Vec<MetricFamily> {
        let mut out = Vec::new();
        while !body.is_empty() {
            out.push(MetricFamily::decode_length_delimited(&mut body).unwrap());
        }
        out
    }

    fn labels(m: &client::Metric) -> Vec<(&str, &str)> {
        m.label.iter().map(|l| (l.name(), l.value())).collect()
    }

    fn spans(s: &[client::BucketSpan]) -> Vec<(i32, u32)> {
        s.iter().map(|s| (s.offset(), s.length())).collect()
    }

    #[test]
    fn counters_gauges_summaries_and_classic_histograms() {
        let reg = Registry::new(Limits::default());
        reg.declare("rows_total", "Rows.", Kind::Counter, &["table"], &[]).unwrap();
        reg.declare("depth", "", Kind::Gauge, &[], &[]).unwrap();
        reg.declare("lat_seconds", "Latency.", Kind::Histogram, &["path", "Zone"], &[0.5, 1.0]).unwrap();
        reg.declare("size_bytes", "Sizes.", Kind::Summary, &[], &[0.5, 0.9]).unwrap();
        let mut agg = Aggregator::new(1);
        let mut ev = |series, op, value| agg.apply(&reg, Event { series, op, value });
        ev(reg.series("rows_total", &["a"]).unwrap(), Op::Inc, 3.0);
        ev(reg.series("rows_total", &["b\"\n"]).unwrap(), Op::Inc, 4.5);
        ev(reg.by_name("depth").unwrap(), Op::Set, -2.25);
        let lat = reg.series("lat_seconds", &["/q", ""]).unwrap();
        for v in [0.1, 0.7, 0.7, 3.0] {
            ev(lat, Op::Observe, v);
        }
        for v in [10.0, 20.0, 30.0] {
            ev(reg.by_name("size_bytes").unwrap(), Op::Observe, v);
        }
        let body = FamilyEncoder::default().encode(&agg.snapshot(&reg), &[("env".into(), "prod".into())]).to_vec();
        let f = decode(&body);
        let by: std::collections::HashMap<&str, &MetricFamily> = f.iter().map(|f| (f.name(), f)).collect();
        assert_eq!(f.len(), 4);

        let rows = by["rows_total"];
        assert_eq!((rows.help(), rows.r#type()), ("Rows.", MetricType::Counter));
        assert_eq!(rows.metric.len(), 2);
        assert_eq!(labels(&rows.metric[0]), [("env", "prod"), ("table", "a")]);
        assert_eq!(rows.metric[0].counter.as_ref().unwrap().value(), 3.0);
        assert_eq!(labels(&rows.metric[1]), [("env", "prod"), ("table", "b\"\n")]);
        assert!(rows.metric.iter().all(|m| m.timestamp_ms.is_none() && m.gauge.is_none()));

        let depth = by["depth"];
        assert_eq!((depth.help.as_deref(), depth.r#type()), (None, MetricType::Gauge));
        assert_eq!(depth.metric[0].gauge.as_ref().unwrap().value(), -2.25);

        let lat = by["lat_seconds"];
        assert_eq!(lat.r#type(), MetricType::Histogram);
        let m = &lat.metric[0];
        // The empty Zone value is no label; labels sorted by name (capitals first).
        assert_eq!(labels(m), [("env", "prod"), ("path", "/q")]);
        let h = m.histogram.as_ref().unwrap();
        assert_eq!((h.sample_count(), h.sample_sum()), (4, 4.5));
        let b: Vec<(f64, u64)> = h.bucket.iter().map(|b| (b.upper_bound(), b.cumulative_count())).collect();
        assert_eq!(b, [(0.5, 1), (1.0, 3)]);
        assert!(h.schema.is_none() && h.positive_span.is_empty(), "a classic histogram has no native fields");

        let size = by["size_bytes"];
        assert_eq!(size.r#type(), MetricType::Summary);
        let s = size.metric[0].summary.as_ref().unwrap();
        assert_eq!((s.sample_count(), s.sample_sum()), (3, 60.0));
        let q: Vec<f64> = s.quantile.iter().map(|q| q.quantile()).collect();
        assert_eq!(q, [0.5, 0.9]);
        assert!((s.quantile[0].value() - 20.0).abs() < 0.5, "{:?}", s.quantile);
    }

    #[test]
    fn native_histograms_whole_beside_their_classic_buckets() {
        let (reg, mut agg, want) = native_registry();
        let f = decode(FamilyEncoder::default().encode(&agg.snapshot(&reg), &[]));
        let want_n = want.snapshot();
        assert_eq!(f.len(), 2);
        for fam in &f {
            let h = fam.metric[0].histogram.as_ref().unwrap();
            assert_eq!((h.sample_count(), h.sample_sum().to_bits()), (want.count(), want.sum().to_bits()));
            assert_eq!(
                (h.schema(), h.zero_threshold(), h.zero_count()),
                (i32::from(want_n.schema), want_n.zero_threshold, want_n.zero_count)
            );
            assert_eq!((spans(&h.positive_span), &h.positive_delta), (want_n.positive.spans.clone(), &want_n.positive.deltas));
            assert_eq!((spans(&h.negative_span), &h.negative_delta), (want_n.negative.spans.clone(), &want_n.negative.deltas));
            assert!(h.positive_count.is_empty() && h.zero_count_float.is_none());
        }
        assert_eq!(labels(&f[0].metric[0]), [("path", "/q")]);
        assert!(f[0].metric[0].histogram.as_ref().unwrap().bucket.is_empty(), "native only");
        let b: Vec<(f64, u64)> =
            f[1].metric[0].histogram.as_ref().unwrap().bucket.iter().map(|b| (b.upper_bound(), b.cumulative_count())).collect();
        assert_eq!(b, [(0.001, 5), (1.0, 10)]);
    }

    #[test]
    fn overflow_series_carry_only_the_overflow_label_and_an_empty_native_one_a_noop_span() {
        let (reg, mut agg) = overflow_registry();
        let f = decode(FamilyEncoder::default().encode(&agg.snapshot(&reg), &[("env".into(), "prod".into())]));
        let names: Vec<&str> = f.iter().map(|f| f.name()).collect();
        assert_eq!(names, ["rows_total", "lat_seconds", "n_seconds"]);
        assert_eq!(labels(&f[0].metric[1]), [("env", "prod"), (OVERFLOW_LABEL, "true")]);
        assert_eq!(f[0].metric[1].counter.as_ref().unwrap().value(), 5.0);
        assert_eq!(f[2].metric[1].histogram.as_ref().unwrap().sample_count(), 2);

        let mut out = Vec::new();
        let n = NativeSnapshot {
            schema: 0,
            zero_threshold: 0.0,
            zero_count: 0,
            count: 0,
            sum: 0.0,
            positive: Spans::default(),
            negative: Spans::default(),
        };
        put_native(&mut out, &mut Vec::new(), &n);
        let h = client::Histogram::decode(&out[..]).unwrap();
        assert_eq!((h.schema, spans(&h.positive_span)), (Some(0), vec![(0, 0)]));
    }

    #[test]
    fn a_kept_encoder_writes_what_a_fresh_one_does_through_every_kind_of_change() {
        for seed in [1, 2, 3, 0x5eed] {
            let mut enc = FamilyEncoder::default();
            let mut rounds = 0;
            crate::encode::series_cache::tests::scenario(seed, 120, |snap, consts| {
                let fresh = encode(snap, consts);
                assert_eq!(enc.encode(snap, consts), &fresh[..], "seed {seed}, round {rounds}");
                decode(&fresh);
                rounds += 1;
            });
        }
        let mut enc = FamilyEncoder::default();
        crate::encode::series_cache::tests::first_family_goes(|snap| assert_eq!(enc.encode(snap, &[]), &encode(snap, &[])[..]));
    }

    #[test]
    fn what_a_kept_encoder_holds_follows_the_bodies_down() {
        let mut enc = FamilyEncoder::default();
        let mut big = 0;
        crate::encode::series_cache::tests::big_then_small(20_000, |snap, round| {
            assert_eq!(enc.encode(snap, &[]), &encode(snap, &[])[..]);
            match round {
                0 => big = enc.heap_bytes(),
                3 => assert!(enc.heap_bytes() < big / 20, "{} of {big} bytes still held", enc.heap_bytes()),
                _ => {}
            }
        });
        assert!(big > 20_000 * 40, "{big}");
    }

    #[test]
    fn a_family_whose_length_needs_another_byte_moves_and_is_found_again() {
        // 1 series, then 20 (past 127 bytes: a 2-byte length), then only the first one changes.
        let reg = Registry::new(Limits::default());
        reg.declare("rows_total", "Rows.", Kind::Counter, &["table"], &[]).unwrap();
        let mut agg = Aggregator::new(1);
        let mut enc = FamilyEncoder::default();
        let sids: Vec<_> = (0..20).map(|i| reg.series("rows_total", &[&format!("t{i}")]).unwrap()).collect();
        for (round, n) in [1, 20, 20, 1, 1].into_iter().enumerate() {
            for (i, &s) in sids.iter().enumerate() {
                if i < n {
                    agg.apply(&reg, Event { series: s, op: Op::Inc, value: round as f64 });
                }
            }
            let snap = agg.snapshot(&reg);
            assert_eq!(enc.encode(&snap, &[]), &encode(&snap, &[])[..], "round {round}");
        }
    }

    #[test]
    fn a_body_taken_out_is_copied_from_when_given_back_and_not_when_not() {
        let (reg, mut agg) = overflow_registry();
        let snap = agg.snapshot(&reg);
        let want = encode(&snap, &[]);
        let mut enc = FamilyEncoder::default();
        enc.encode(&snap, &[]);
        for give_back in [true, false, true] {
            let body = enc.take();
            assert_eq!(body, want);
            if give_back {
                enc.give_back(body);
            }
            assert_eq!(enc.encode(&snap, &[]), &want[..]);
        }
    }

    #[test]
    fn an_empty_snapshot_is_an_empty_body() {
        let reg = Registry::new(Limits::default());
        reg.declare("rows_total", "Rows.", Kind::Counter, &["table"], &[]).unwrap();
        let mut agg = Aggregator::new(1);
        assert!(FamilyEncoder::default().encode(&agg.snapshot(&reg), &[]).is_empty());
    }
}
