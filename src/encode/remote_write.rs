//! Remote-write 1.0: a snapshot as `WriteRequest` protobufs, snappy block-compressed, split into
//! requests of at most `max_samples_per_send` samples.
//!
//! Written straight into reused buffers with prost's wire primitives (one `TimeSeries` per sample,
//! labels sorted by name, `__name__` included, empty values left out), then checked against the
//! prost-generated [`crate::proto::WriteRequest`] in tests. Family metadata (type, help) rides in
//! the last request of each push. [`Values::Stale`] writes Prometheus's stale marker instead of
//! every value, so a finished job's or a removed series ends at once instead of fading out.
//!
//! A native histogram is one `TimeSeries` named after its family (no suffix, no `le`) holding one
//! integer `Histogram` (field 4), and counts as one sample; a family declared with classic buckets
//! as well also sends its `_bucket`, `_sum` and `_count` series, as client_golang does. Its stale
//! marker is a histogram whose `sum` is the stale NaN.
//!
//! From one push to the next the encoder keeps each sample's labels, encoded, for as long as the
//! samples are those of the last push (`label_blocks.rs`, which knows a series by its id):
//! a push of the same series copies them instead of reading and writing each label value.

use super::label_blocks::{LabelBlocks, Lookup, suffix_slot};
use super::wire::{begin_len, end_len, put_string, put_varint, string_len, varint_len, zigzag32, zigzag64};
use super::{HistogramSeries, Sample, Sink, walk};
use crate::registry::{Family, FamilyId, Kind, OVERFLOW_LABEL};
use crate::snapshot::NativeSnapshot;
use crate::snapshot::Snapshot;
use bytes::Bytes;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

/// Prometheus's staleness marker: a NaN with this exact bit pattern ends a series.
pub const STALE_NAN: u64 = 0x7ff0_0000_0000_0002;

/// What to write as each sample's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    /// The snapshot's values, with family metadata.
    Current,
    /// [`STALE_NAN`] for every sample, without metadata.
    Stale,
}

/// Headers every remote-write 1.0 request carries.
pub const HEADERS: [(&str, &str); 3] =
    [("Content-Type", "application/x-protobuf"), ("Content-Encoding", "snappy"), ("X-Prometheus-Remote-Write-Version", "0.1.0")];

/// One request body, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// Snappy (block format) of the serialised WriteRequest.
    pub body: Bytes,
    /// Samples in it.
    pub samples: usize,
}

/// Buffers kept from one push to the next.
#[derive(Debug, Default)]
pub struct V1Encoder {
    raw: Vec<u8>,
    /// A native histogram's `Histogram` message, before its length is known.
    histogram: Vec<u8>,
    metadata: Vec<u8>,
    /// The current family's labels, pre-encoded; its memory is kept from one push to the next.
    template: Template,
    /// Each sample's labels as the last push wrote them.
    blocks: LabelBlocks,
    /// The snapshot generation and constant labels the blocks were made with.
    registry: u64,
    consts: Vec<(String, String)>,
    compressor: Compressor,
    /// Native histograms are sent as what the text exposition shows (`send_native_histograms: false`).
    classic_only: bool,
}

/// Snappy block compression into a buffer kept from one request to the next (both protocols).
pub(crate) struct Compressor {
    snappy: snap::raw::Encoder,
    out: Vec<u8>,
}

impl std::fmt::Debug for Compressor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Compressor").field("capacity", &self.out.capacity()).finish()
    }
}

impl Default for Compressor {
    fn default() -> Self {
        Compressor { snappy: snap::raw::Encoder::new(), out: Vec::new() }
    }
}

impl Compressor {
    /// `raw` in snappy's block format, as a body of its own.
    pub(crate) fn compress(&mut self, raw: &[u8]) -> Bytes {
        let need = snap::raw::max_compress_len(raw.len());
        if self.out.len() < need {
            self.out.resize(need, 0); // zeroed once, not on every request
        }
        let n = self.snappy.compress(raw, &mut self.out).expect("a buffer of max_compress_len always suffices");
        Bytes::copy_from_slice(&self.out[..n])
    }
}

impl V1Encoder {
    /// Whether native histograms go whole (the default) or as what the text exposition shows:
    /// their classic buckets, or `_sum` and `_count` only (for a receiver without native histograms).
    pub fn send_native_histograms(&mut self, on: bool) {
        self.classic_only = !on;
        self.blocks.clear();
    }

    /// Encodes `snap` with `const_labels` (job, instance, static labels) on every series, all samples
    /// stamped `ts_ms`.
    pub fn encode(
        &mut self,
        snap: &Snapshot<'_>,
        const_labels: &[(String, String)],
        ts_ms: i64,
        max_samples: usize,
        values: Values,
    ) -> Vec<Encoded> {
        self.raw.clear();
        self.metadata.clear();
        let keep = values == Values::Current;
        let reuse = self.registry == snap.generation && self.consts == const_labels;
        if keep && !reuse {
            self.registry = snap.generation;
            self.consts = const_labels.to_vec();
        }
        self.blocks.begin(reuse, keep);
        let mut sink = RwSink {
            enc: self,
            const_labels,
            ts_ms,
            values,
            max: max_samples.max(1),
            n: 0,
            template_ready: false,
            out: Vec::new(),
            ts_bytes: {
                let mut b = vec![TIMESTAMP_KEY];
                put_varint(&mut b, ts_ms as u64);
                b
            },
        };
        walk(snap, &mut sink);
        let RwSink { enc, mut out, n, .. } = sink;
        enc.blocks.end();
        if n > 0 || !enc.metadata.is_empty() {
            let meta = std::mem::take(&mut enc.metadata);
            enc.raw.extend_from_slice(&meta);
            enc.metadata = meta;
            out.push(enc.finish_request(n));
        }
        out
    }

    /// Caps the label blocks kept (tests; [`super::label_blocks::MAX_BYTES`] otherwise).
    #[cfg(test)]
    pub(crate) fn cap_blocks(&mut self, bytes: usize) {
        self.blocks.max_bytes = Some(bytes);
    }

    fn finish_request(&mut self, samples: usize) -> Encoded {
        let body = self.compressor.compress(&self.raw);
        self.raw.clear();
        Encoded { body, samples }
    }
}

/// Where a label of a sample comes from, in name order.
#[derive(Clone, Copy)]
pub(crate) enum Src {
    Name,
    Family(usize),
    Const(usize),
    Extra,
    /// [`OVERFLOW_LABEL`], on a family's overflow series only.
    Overflow,
}

struct RwSink<'e, 'c> {
    enc: &'e mut V1Encoder,
    const_labels: &'c [(String, String)],
    ts_ms: i64,
    values: Values,
    max: usize,
    n: usize,
    /// The template is the current family's (it is set only when a sample is written afresh).
    template_ready: bool,
    out: Vec<Encoded>,
    /// The sample's timestamp field, the same for every sample of the call.
    ts_bytes: Vec<u8>,
}

// Field keys (field number << 3 | wire type), each one byte.
const TIMESERIES_KEY: u8 = 1 << 3 | 2;
const LABEL_KEY: u8 = 1 << 3 | 2;
const LABEL_NAME_KEY: u8 = 1 << 3 | 2;
const LABEL_VALUE_KEY: u8 = 2 << 3 | 2;
const SAMPLE_KEY: u8 = 2 << 3 | 2;
const VALUE_KEY: u8 = 1 << 3 | 1;
const TIMESTAMP_KEY: u8 = 2 << 3;
const HISTOGRAM_KEY: u8 = 4 << 3 | 2;

/// How the labels of the current family's samples are written: in name order, with everything
/// but the family's label values and the `le`/`quantile` value encoded once per family and push,
/// so a sample costs a copy of each piece and two varints per label value.
#[derive(Debug, Default)]
struct Template {
    /// The encoded pieces the steps point into.
    bytes: Vec<u8>,
    /// The steps of a sample without, and with, its `le`/`quantile` label.
    plain: Vec<Step>,
    extra: Vec<Step>,
    /// The whole `__name__` label for each suffix: "", `_bucket`, `_sum`, `_count`.
    names: [(u32, u32); 4],
    /// The family's `le`/`quantile` label name.
    extra_name: Option<&'static str>,
}

/// One piece of a sample's labels.
#[derive(Debug, Clone, Copy)]
enum Step {
    /// Whole labels the same on every sample (the constant ones, empty values left out): `bytes[a..b]`.
    Fixed(u32, u32),
    /// The `__name__` label of the sample's suffix.
    Name,
    /// The family's label `i`: its name field (key, length, name) is `bytes[a..b]`, the value the sample's.
    Value(u32, u32, u32),
    /// The `le`/`quantile` label: its name field is `bytes[a..b]`, the value the sample's.
    Extra(u32, u32),
}

/// Appends a `Label` message (field 1 of `TimeSeries`) of `name_field` (pre-encoded) and `value`.
#[inline]
fn put_label(buf: &mut Vec<u8>, name_field: &[u8], value: &[&str]) {
    let vlen: usize = value.iter().map(|v| v.len()).sum();
    buf.push(LABEL_KEY);
    put_varint(buf, (name_field.len() + 1 + varint_len(vlen as u64) + vlen) as u64);
    buf.extend_from_slice(name_field);
    buf.push(LABEL_VALUE_KEY);
    put_varint(buf, vlen as u64);
    for v in value {
        buf.extend_from_slice(v.as_bytes());
    }
}

/// Appends a `Label.name` field.
fn put_name_field(buf: &mut Vec<u8>, name: &str) {
    buf.push(LABEL_NAME_KEY);
    put_varint(buf, name.len() as u64);
    buf.extend_from_slice(name.as_bytes());
}

impl Template {
    /// Encodes what the samples of `f` share with `consts` on them.
    fn set(&mut self, f: &Family, consts: &[(String, String)]) {
        let (order, order_extra, extra_name) = family_orders(f, consts);
        self.bytes.clear();
        self.extra_name = extra_name;
        let mut field = Vec::new();
        for (slot, suffix) in ["", "_bucket", "_sum", "_count"].iter().enumerate() {
            let a = self.bytes.len() as u32;
            field.clear();
            put_name_field(&mut field, "__name__");
            put_label(&mut self.bytes, &field, &[&f.name, suffix]);
            self.names[slot] = (a, self.bytes.len() as u32);
        }
        for (steps, order) in [(&mut self.plain, order), (&mut self.extra, order_extra)] {
            steps.clear();
            for src in order {
                let a = self.bytes.len() as u32;
                match src {
                    Src::Name => steps.push(Step::Name),
                    Src::Const(i) => {
                        let (name, value) = &consts[i];
                        if value.is_empty() {
                            continue; // an empty value is no label at all
                        }
                        field.clear();
                        put_name_field(&mut field, name);
                        put_label(&mut self.bytes, &field, &[value]);
                        let b = self.bytes.len() as u32;
                        match steps.last_mut() {
                            Some(Step::Fixed(_, end)) if *end == a => *end = b,
                            _ => steps.push(Step::Fixed(a, b)),
                        }
                    }
                    Src::Family(i) => {
                        put_name_field(&mut self.bytes, &f.label_names[i]);
                        steps.push(Step::Value(i as u32, a, self.bytes.len() as u32));
                    }
                    Src::Extra => {
                        put_name_field(&mut self.bytes, extra_name.unwrap_or(""));
                        steps.push(Step::Extra(a, self.bytes.len() as u32));
                    }
                    Src::Overflow => {} // not in a family's own orders
                }
            }
        }
    }

    /// The steps of the labels of `s`, a sample of the family; `None` for a sample the template
    /// does not cover (an overflow series).
    #[inline]
    fn steps(&self, s: &Sample<'_>) -> Option<&[Step]> {
        match s.extra {
            _ if s.overflow => None,
            None => Some(&self.plain),
            Some((name, _)) if Some(name) == self.extra_name => Some(&self.extra),
            Some(_) => None,
        }
    }

    fn piece(&self, a: u32, b: u32) -> &[u8] {
        &self.bytes[a as usize..b as usize]
    }

    /// Appends the labels of `s` by `steps`.
    #[inline]
    fn write(&self, steps: &[Step], buf: &mut Vec<u8>, s: &Sample<'_>) {
        for &step in steps {
            match step {
                Step::Fixed(a, b) => buf.extend_from_slice(self.piece(a, b)),
                Step::Name => {
                    let (a, b) = self.names[suffix_slot(s.suffix)];
                    buf.extend_from_slice(self.piece(a, b));
                }
                Step::Value(i, a, b) => {
                    let v = &s.label_values[i as usize];
                    if !v.is_empty() {
                        put_label(buf, self.piece(a, b), &[v]);
                    }
                }
                Step::Extra(a, b) => {
                    let v = s.extra.map_or("", |(_, v)| v);
                    if !v.is_empty() {
                        put_label(buf, self.piece(a, b), &[v]);
                    }
                }
            }
        }
    }
}

/// The label order of a family's samples without and with their `le`/`quantile` label, and that
/// label's name.
pub(crate) fn family_orders(f: &Family, consts: &[(String, String)]) -> (Vec<Src>, Vec<Src>, Option<&'static str>) {
    let extra = match f.kind {
        Kind::Histogram => Some("le"),
        Kind::Summary => Some("quantile"),
        _ => None,
    };
    (label_order(f, consts, None), label_order(f, consts, extra), extra)
}

/// The metadata type remote write gives a kind (the same numbers in 1.0 and 2.0).
pub(crate) fn metric_type(kind: Kind) -> u64 {
    match kind {
        Kind::Counter => 1,
        Kind::Gauge => 2,
        Kind::Histogram => 3,
        Kind::Summary => 5,
    }
}

fn label_order(f: &Family, consts: &[(String, String)], extra: Option<&str>) -> Vec<Src> {
    let mut v: Vec<(&str, Src)> = vec![("__name__", Src::Name)];
    v.extend(f.label_names.iter().enumerate().map(|(i, n)| (&**n, Src::Family(i))));
    v.extend(consts.iter().enumerate().map(|(i, (n, _))| (n.as_str(), Src::Const(i))));
    v.extend(extra.map(|e| (e, Src::Extra)));
    v.sort_by(|a, b| a.0.cmp(b.0));
    v.into_iter().map(|(_, s)| s).collect()
}

/// The label order of a family's overflow series: its own labels are all empty, so `__name__`,
/// [`OVERFLOW_LABEL`], the constant labels and `extra`, sorted. Built per overflow sample (a
/// family has one overflow series at most), so the other samples pay nothing for it.
pub(crate) fn overflow_order(consts: &[(String, String)], extra: Option<&str>) -> Vec<Src> {
    let mut v: Vec<(&str, Src)> = vec![("__name__", Src::Name), (OVERFLOW_LABEL, Src::Overflow)];
    v.extend(consts.iter().enumerate().map(|(i, (n, _))| (n.as_str(), Src::Const(i))));
    v.extend(extra.map(|e| (e, Src::Extra)));
    v.sort_by(|a, b| a.0.cmp(b.0));
    v.into_iter().map(|(_, s)| s).collect()
}

impl Sink for RwSink<'_, '_> {
    fn family(&mut self, id: FamilyId, f: &Family) {
        self.template_ready = !self.enc.blocks.enter_family(id, f);
        if self.template_ready {
            self.enc.template.set(f, self.const_labels);
        }
        if self.values == Values::Stale {
            return;
        }
        let kind = metric_type(f.kind);
        let m = &mut self.enc.metadata;
        let body = 2 + string_len(1, f.name.len()) + if f.help.is_empty() { 0 } else { string_len(1, f.help.len()) };
        encode_key(3, WireType::LengthDelimited, m);
        encode_varint(body as u64, m);
        encode_key(1, WireType::Varint, m);
        encode_varint(kind, m);
        put_string(m, 2, &[&f.name]);
        if !f.help.is_empty() {
            put_string(m, 4, &[&f.help]);
        }
    }

    fn sample(&mut self, s: &Sample<'_>) {
        let value = match self.values {
            Values::Current => s.value,
            Values::Stale => f64::from_bits(STALE_NAN),
        };
        // A sample is its value and its timestamp: its length is always one byte.
        let sample_len = 1 + 8 + self.ts_bytes.len();
        debug_assert!(sample_len < 0x80);
        let start = self.start_series(s);
        let raw = &mut self.enc.raw;
        raw.extend_from_slice(&[SAMPLE_KEY, sample_len as u8, VALUE_KEY]);
        raw.extend_from_slice(&value.to_le_bytes());
        raw.extend_from_slice(&self.ts_bytes);
        end_len(raw, start);
        self.counted();
    }

    /// While the push takes its labels from the last one, the label values are not read.
    fn reads_label_values(&self) -> bool {
        !self.enc.blocks.hitting()
    }

    fn native(&mut self, _: &Family, h: &HistogramSeries<'_>, n: &NativeSnapshot) {
        if self.enc.classic_only || h.has_classic_buckets() {
            h.classic(self);
        }
        if self.enc.classic_only {
            return; // what the text exposition shows, and no more
        }
        let mut body = std::mem::take(&mut self.enc.histogram);
        body.clear();
        put_histogram(&mut body, n, self.ts_ms, 0, self.values == Values::Stale);
        let start = self.start_series(&h.series);
        let raw = &mut self.enc.raw;
        raw.push(HISTOGRAM_KEY);
        put_varint(raw, body.len() as u64);
        raw.extend_from_slice(&body);
        end_len(raw, start);
        self.enc.histogram = body;
        self.counted();
    }
}

impl RwSink<'_, '_> {
    /// Starts the `TimeSeries` of `s` in the request: its key, room for its length, its labels,
    /// sorted; [`end_len`] ends it.
    #[inline]
    fn start_series(&mut self, s: &Sample<'_>) -> usize {
        match self.enc.blocks.lookup(s) {
            Lookup::Hit => {}
            Lookup::Switch => {
                if !self.template_ready {
                    self.enc.template.set(self.enc.blocks.family(), self.const_labels);
                    self.template_ready = true;
                }
                self.labels(s);
            }
            Lookup::Miss => self.labels(s),
        }
        let e = &mut *self.enc;
        e.raw.push(TIMESERIES_KEY);
        let start = begin_len(&mut e.raw);
        e.raw.extend_from_slice(e.blocks.block().0);
        start
    }

    /// Writes the labels of `s` as the current block ([`LabelBlocks::block`]).
    fn labels(&mut self, s: &Sample<'_>) {
        let e = &mut *self.enc;
        let buf = e.blocks.open_block();
        let at = buf.len();
        match e.template.steps(s) {
            Some(steps) => e.template.write(steps, buf, s),
            None => overflow_labels(buf, self.const_labels, s),
        }
        let len = buf.len() - at;
        e.blocks.close_block(s, len, 0);
    }

    /// Counts the series just written as one sample, ending the request at `max`.
    #[inline]
    fn counted(&mut self) {
        self.n += 1;
        if self.n == self.max {
            let r = self.enc.finish_request(self.n);
            self.out.push(r);
            self.n = 0;
        }
    }
}

/// The labels of a family's overflow series: `__name__`, [`OVERFLOW_LABEL`], the constant
/// labels and the `le`/`quantile` one, sorted (one series a family at most).
#[cold]
fn overflow_labels(ts: &mut Vec<u8>, consts: &[(String, String)], s: &Sample<'_>) {
    let order = overflow_order(consts, s.extra.map(|(n, _)| n));
    for src in order {
        let (name, value): (&str, [&str; 2]) = match src {
            Src::Name => ("__name__", [s.name, s.suffix]),
            Src::Family(i) => (&s.label_names[i], [&s.label_values[i], ""]),
            Src::Const(i) => (&consts[i].0, [&consts[i].1, ""]),
            Src::Extra => s.extra.map_or(("", ["", ""]), |(n, v)| (n, [v, ""])),
            Src::Overflow => (OVERFLOW_LABEL, ["true", ""]),
        };
        let vlen = value[0].len() + value[1].len();
        if vlen == 0 {
            continue; // an empty value is no label at all
        }
        encode_key(1, WireType::LengthDelimited, ts);
        encode_varint((string_len(1, name.len()) + string_len(1, vlen)) as u64, ts);
        put_string(ts, 1, &[name]);
        put_string(ts, 2, &value);
    }
}

/// Appends the body of an integer `Histogram` message (remote write 1.0 and 2.0 share its fields)
/// for `n` at `ts_ms`, with `start_ms` as 2.0's start timestamp (field 17) when above 0. A stale
/// marker keeps the schema and zero threshold but no counts, and has the stale NaN as its sum.
pub(crate) fn put_histogram(buf: &mut Vec<u8>, n: &NativeSnapshot, ts_ms: i64, start_ms: i64, stale: bool) {
    let (count, zero_count, sum) = if stale { (0, 0, f64::from_bits(STALE_NAN)) } else { (n.count, n.zero_count, n.sum) };
    // count_int and zero_count_int are in oneofs: written even when 0, so the histogram is
    // unmistakably an integer one.
    encode_key(1, WireType::Varint, buf);
    encode_varint(count, buf);
    encode_key(3, WireType::SixtyFourBit, buf);
    buf.extend_from_slice(&sum.to_le_bytes());
    if n.schema != 0 {
        encode_key(4, WireType::Varint, buf);
        encode_varint(zigzag32(i32::from(n.schema)), buf);
    }
    encode_key(5, WireType::SixtyFourBit, buf);
    buf.extend_from_slice(&n.zero_threshold.to_le_bytes());
    encode_key(6, WireType::Varint, buf);
    encode_varint(zero_count, buf);
    if !stale {
        put_spans(buf, 8, 9, &n.negative);
        put_spans(buf, 11, 12, &n.positive);
    }
    encode_key(15, WireType::Varint, buf);
    encode_varint(ts_ms as u64, buf);
    if start_ms > 0 {
        encode_key(17, WireType::Varint, buf);
        encode_varint(start_ms as u64, buf);
    }
}

/// One sign's spans (`BucketSpan` messages in field `spans_tag`) and packed zigzag deltas.
fn put_spans(buf: &mut Vec<u8>, spans_tag: u32, deltas_tag: u32, s: &crate::snapshot::Spans) {
    for &(offset, length) in &s.spans {
        let (o, l) = (zigzag32(offset), u64::from(length));
        encode_key(spans_tag, WireType::LengthDelimited, buf);
        encode_varint((2 + encoded_len_varint(o) + encoded_len_varint(l)) as u64, buf);
        encode_key(1, WireType::Varint, buf);
        encode_varint(o, buf);
        encode_key(2, WireType::Varint, buf);
        encode_varint(l, buf);
    }
    if !s.deltas.is_empty() {
        let len: usize = s.deltas.iter().map(|&d| encoded_len_varint(zigzag64(d))).sum();
        encode_key(deltas_tag, WireType::LengthDelimited, buf);
        encode_varint(len as u64, buf);
        for &d in &s.deltas {
            encode_varint(zigzag64(d), buf);
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::aggregate::Aggregator;
    use crate::event::{Event, Op};
    use crate::proto::{Label, WriteRequest};
    use crate::registry::{Limits, Registry};
    use prost::Message;

    fn decode(r: &Encoded) -> WriteRequest {
        let raw = snap::raw::Decoder::new().decompress_vec(&r.body).unwrap();
        WriteRequest::decode(&raw[..]).unwrap()
    }

    fn labels(l: &[Label]) -> Vec<(String, String)> {
        l.iter().map(|l| (l.name.clone(), l.value.clone())).collect()
    }

    #[test]
    fn histogram_as_sorted_series_with_metadata_and_batches() {
        let reg = Registry::new(Limits::default());
        reg.declare("lat_seconds", "Latency.", Kind::Histogram, &["Zone", "path"], &[0.5, 1.0]).unwrap();
        let s = reg.series("lat_seconds", &["eu", ""]).unwrap();
        let mut agg = Aggregator::new(1);
        agg.apply(&reg, Event { series: s, op: Op::Observe, value: 0.7 });
        let consts = vec![("instance".to_string(), "h:1".to_string()), ("job".to_string(), "eod".to_string())];
        let reqs = V1Encoder::default().encode(&agg.snapshot(&reg), &consts, 1_700_000_000_123, 2, Values::Current);
        assert_eq!(reqs.iter().map(|r| r.samples).collect::<Vec<_>>(), vec![2, 2, 1]);
        let all: Vec<_> = reqs.iter().map(decode).collect();
        let first = &all[0].timeseries[0];
        assert_eq!(
            labels(&first.labels),
            [("Zone", "eu"), ("__name__", "lat_seconds_bucket"), ("instance", "h:1"), ("job", "eod"), ("le", "0.5")]
                .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        assert_eq!((first.samples[0].value, first.samples[0].timestamp), (0.0, 1_700_000_000_123));
        let series: Vec<_> = all.iter().flat_map(|w| &w.timeseries).collect();
        let count = series.iter().find(|t| t.labels.iter().any(|l| l.value == "lat_seconds_count")).unwrap();
        assert_eq!(count.samples[0].value, 1.0);
        let inf = series.iter().find(|t| t.labels.iter().any(|l| l.value == "+Inf")).unwrap();
        assert_eq!(inf.samples[0].value, 1.0);
        assert!(all[..2].iter().all(|w| w.metadata.is_empty()));
        assert_eq!(all[2].metadata[0].metric_family_name, "lat_seconds");
        assert_eq!((all[2].metadata[0].r#type, all[2].metadata[0].help.as_str()), (3, "Latency."));
        let stale = V1Encoder::default().encode(&agg.snapshot(&reg), &consts, 7, 100, Values::Stale);
        let w = decode(&stale[0]);
        assert_eq!(w.timeseries.len(), 5);
        assert!(w.metadata.is_empty());
        assert!(w.timeseries.iter().all(|t| t.samples[0].value.to_bits() == STALE_NAN && t.samples[0].timestamp == 7));
    }

    /// Values with zeros, negatives, a far outlier and repeats: every part of a native histogram.
    pub(crate) const NATIVE_VALUES: [f64; 12] = [0.0, 0.0, -0.003, -2.5, 1e-40, 0.0011, 0.0012, 0.0012, 0.5, 1.0, 3.0, 1e6];

    /// A registry with a native-only histogram `n_seconds{path}` (one series) and a histogram
    /// `b_seconds` with classic and native buckets, both given [`NATIVE_VALUES`].
    pub(crate) fn native_registry() -> (Registry, Aggregator, crate::aggregate::NativeHistogram) {
        let reg = Registry::new(Limits::default());
        let cfg = crate::aggregate::NativeConfig::default();
        reg.declare_with("n_seconds", "Native.", Kind::Histogram, &["path", "Zone"], &[], Some(cfg)).unwrap();
        reg.declare_with("b_seconds", "Both.", Kind::Histogram, &[], &[0.001, 1.0], Some(cfg)).unwrap();
        let n = reg.series("n_seconds", &["/q", ""]).unwrap();
        let mut agg = Aggregator::new(1);
        let mut want = crate::aggregate::NativeHistogram::new(&cfg);
        for &v in &NATIVE_VALUES {
            agg.apply(&reg, Event { series: n, op: Op::Observe, value: v });
            agg.apply(&reg, Event { series: reg.by_name("b_seconds").unwrap(), op: Op::Observe, value: v });
            want.observe(v);
        }
        (reg, agg, want)
    }

    /// A registry of one series per family (`max_series_per_metric` 1) where a second label set
    /// went to the overflow series: `rows_total{table}` (a counter: 1, overflow 5),
    /// `lat_seconds{path,Zone}` (classic buckets 0.5: 0.7, overflow 0.2) and `n_seconds{path}`
    /// (native: 1.0, overflow 2.0 and 4.0).
    pub(crate) fn overflow_registry() -> (Registry, Aggregator) {
        let reg = Registry::new(Limits { max_series_per_metric: 1, ..Limits::default() });
        reg.declare("rows_total", "Rows.", Kind::Counter, &["table"], &[]).unwrap();
        reg.declare("lat_seconds", "", Kind::Histogram, &["path", "Zone"], &[0.5]).unwrap();
        let cfg = crate::aggregate::NativeConfig::default();
        reg.declare_with("n_seconds", "", Kind::Histogram, &["path"], &[], Some(cfg)).unwrap();
        let mut agg = Aggregator::new(1);
        let mut ev = |series, op, value| agg.apply(&reg, Event { series, op, value });
        ev(reg.series("rows_total", &["a"]).unwrap(), Op::Inc, 1.0);
        ev(reg.series("rows_total", &["b"]).unwrap(), Op::Inc, 2.0);
        ev(reg.series("rows_total", &["c"]).unwrap(), Op::Inc, 3.0);
        ev(reg.series("lat_seconds", &["/q", "eu"]).unwrap(), Op::Observe, 0.7);
        ev(reg.series("lat_seconds", &["/r", "us"]).unwrap(), Op::Observe, 0.2);
        ev(reg.series("n_seconds", &["/q"]).unwrap(), Op::Observe, 1.0);
        ev(reg.series("n_seconds", &["/r"]).unwrap(), Op::Observe, 2.0);
        ev(reg.series("n_seconds", &["/s"]).unwrap(), Op::Observe, 4.0);
        assert!(["rows_total", "lat_seconds", "n_seconds"].iter().all(|f| reg.overflow_series(f).is_some()));
        (reg, agg)
    }

    #[test]
    fn overflow_series_have_only_the_overflow_label_besides_the_constant_ones() {
        use crate::proto::histogram::Count;
        let (reg, mut agg) = overflow_registry();
        let consts = vec![("instance".to_string(), "h:1".to_string()), ("job".to_string(), "eod".to_string())];
        let reqs = V1Encoder::default().encode(&agg.snapshot(&reg), &consts, 5, 1000, Values::Current);
        let w = decode(&reqs[0]);
        type Series = (Vec<(String, String)>, Option<f64>, Option<u64>);
        let got: Vec<Series> = w
            .timeseries
            .iter()
            .map(|t| {
                let h = t.histograms.first().map(|h| match h.count {
                    Some(Count::CountInt(n)) => n,
                    _ => panic!("an integer histogram"),
                });
                (labels(&t.labels), t.samples.first().map(|s| s.value), h)
            })
            .collect();
        let l = |pairs: &[(&str, &str)]| pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<Vec<_>>();
        let ovf = |name: &str, extra: Option<(&str, &str)>| {
            let mut v = vec![("__name__", name), ("instance", "h:1"), ("job", "eod"), ("otel_metric_overflow", "true")];
            v.extend(extra);
            v.sort();
            l(&v)
        };
        let want = vec![
            (l(&[("__name__", "rows_total"), ("instance", "h:1"), ("job", "eod"), ("table", "a")]), Some(1.0), None),
            (ovf("rows_total", None), Some(5.0), None),
            (
                l(&[
                    ("Zone", "eu"),
                    ("__name__", "lat_seconds_bucket"),
                    ("instance", "h:1"),
                    ("job", "eod"),
                    ("le", "0.5"),
                    ("path", "/q"),
                ]),
                Some(0.0),
                None,
            ),
            (
                l(&[
                    ("Zone", "eu"),
                    ("__name__", "lat_seconds_bucket"),
                    ("instance", "h:1"),
                    ("job", "eod"),
                    ("le", "+Inf"),
                    ("path", "/q"),
                ]),
                Some(1.0),
                None,
            ),
            (l(&[("Zone", "eu"), ("__name__", "lat_seconds_sum"), ("instance", "h:1"), ("job", "eod"), ("path", "/q")]), Some(0.7), None),
            (l(&[("Zone", "eu"), ("__name__", "lat_seconds_count"), ("instance", "h:1"), ("job", "eod"), ("path", "/q")]), Some(1.0), None),
            (ovf("lat_seconds_bucket", Some(("le", "0.5"))), Some(1.0), None),
            (ovf("lat_seconds_bucket", Some(("le", "+Inf"))), Some(1.0), None),
            (ovf("lat_seconds_sum", None), Some(0.2), None),
            (ovf("lat_seconds_count", None), Some(1.0), None),
            (l(&[("__name__", "n_seconds"), ("instance", "h:1"), ("job", "eod"), ("path", "/q")]), None, Some(1)),
            (ovf("n_seconds", None), None, Some(2)),
        ];
        assert_eq!(got, want);
        assert!(got.iter().all(|(l, _, _)| l.windows(2).all(|p| p[0].0 < p[1].0)), "sorted");
        // Stale markers end the overflow series under the same labels.
        let stale = decode(&V1Encoder::default().encode(&agg.snapshot(&reg), &consts, 5, 1000, Values::Stale)[0]);
        assert_eq!(
            stale.timeseries.iter().map(|t| labels(&t.labels)).collect::<Vec<_>>(),
            want.iter().map(|w| w.0.clone()).collect::<Vec<_>>()
        );
    }

    fn spans(s: &[crate::proto::BucketSpan], deltas: &[i64]) -> Option<Vec<(i32, u64)>> {
        crate::snapshot::Spans { spans: s.iter().map(|s| (s.offset, s.length)).collect(), deltas: deltas.to_vec() }.decode()
    }

    #[test]
    fn native_histograms_as_integer_histograms() {
        use crate::proto::histogram::{Count, ZeroCount};
        let (reg, mut agg, want) = native_registry();
        let consts = vec![("instance".to_string(), "h:1".to_string()), ("job".to_string(), "eod".to_string())];
        let snap = agg.snapshot(&reg);
        // n: 1 histogram; b: 3 buckets, _sum, _count and 1 histogram.
        assert_eq!(snap.sample_count(), 1 + 6);
        let reqs = V1Encoder::default().encode(&snap, &consts, 1_700_000_000_123, 4, Values::Current);
        assert_eq!(reqs.iter().map(|r| r.samples).collect::<Vec<_>>(), vec![4, 3]);
        let all: Vec<_> = reqs.iter().map(decode).collect();
        let series: Vec<_> = all.iter().flat_map(|w| &w.timeseries).collect();
        assert_eq!(series.len(), 7, "one TimeSeries per sample, the histograms included");
        let (pos, neg) = want.buckets();
        assert!(!neg.is_empty() && pos.len() > 3 && want.zero_count() == 3, "the sample covers every part");
        for name in ["n_seconds", "b_seconds"] {
            let t = series.iter().find(|t| t.labels.iter().any(|l| l.name == "__name__" && l.value == name)).unwrap();
            let l = labels(&t.labels);
            assert!(l.windows(2).all(|p| p[0].0 < p[1].0), "sorted: {l:?}");
            assert!(l.iter().all(|(n, v)| n != "le" && !v.is_empty()));
            if name == "n_seconds" {
                assert_eq!(
                    l,
                    [("__name__", "n_seconds"), ("instance", "h:1"), ("job", "eod"), ("path", "/q")]
                        .map(|(a, b)| (a.to_string(), b.to_string()))
                );
            }
            assert!(t.samples.is_empty());
            let [h] = &t.histograms[..] else { panic!("one histogram: {t:?}") };
            assert_eq!(h.count, Some(Count::CountInt(NATIVE_VALUES.len() as u64)));
            assert_eq!(h.zero_count, Some(ZeroCount::ZeroCountInt(3)));
            assert_eq!((h.sum, h.schema, h.zero_threshold, h.timestamp), (want.sum(), 3, want.zero_threshold(), 1_700_000_000_123));
            assert_eq!(h.reset_hint, 0);
            assert_eq!(spans(&h.positive_spans, &h.positive_deltas).unwrap(), pos);
            assert_eq!(spans(&h.negative_spans, &h.negative_deltas).unwrap(), neg);
            assert!(h.positive_counts.is_empty() && h.negative_counts.is_empty(), "an integer histogram");
        }
        // b keeps its classic series too; n has none.
        let names: Vec<String> = series.iter().flat_map(|t| &t.labels).filter(|l| l.name == "__name__").map(|l| l.value.clone()).collect();
        assert_eq!(
            names,
            ["n_seconds", "b_seconds_bucket", "b_seconds_bucket", "b_seconds_bucket", "b_seconds_sum", "b_seconds_count", "b_seconds"]
        );
        let bucket = |le: &str| series.iter().find(|t| t.labels.iter().any(|l| l.name == "le" && l.value == le)).unwrap().samples[0].value;
        assert_eq!((bucket("0.001"), bucket("1.0"), bucket("+Inf")), (5.0, 10.0, 12.0));
        assert_eq!(
            all.last().unwrap().metadata.iter().map(|m| (m.metric_family_name.as_str(), m.r#type)).collect::<Vec<_>>(),
            [("n_seconds", 3), ("b_seconds", 3)]
        );
        // Stale markers: a histogram whose sum is the stale NaN, with no counts.
        let stale = V1Encoder::default().encode(&agg.snapshot(&reg), &consts, 7, 100, Values::Stale);
        assert_eq!(stale.iter().map(|r| r.samples).sum::<usize>(), 7);
        let w = decode(&stale[0]);
        let hs: Vec<_> = w.timeseries.iter().flat_map(|t| &t.histograms).collect();
        assert_eq!(hs.len(), 2);
        for h in hs {
            assert_eq!(
                (h.sum.to_bits(), h.timestamp, h.count, h.zero_count),
                (STALE_NAN, 7, Some(Count::CountInt(0)), Some(ZeroCount::ZeroCountInt(0)))
            );
            assert!(h.positive_spans.is_empty() && h.negative_deltas.is_empty());
        }
        assert!(w.timeseries.iter().flat_map(|t| &t.samples).all(|s| s.value.to_bits() == STALE_NAN));
    }
}
