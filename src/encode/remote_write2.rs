//! Remote-write 2.0: a snapshot as `io.prometheus.write.v2.Request` protobufs, snappy
//! block-compressed, split into requests of at most `max_samples_per_send` samples.
//!
//! Each request has its own symbols table (`""` first, every string once); each series carries
//! sorted label refs, its metadata (type, help, and the unit its name ends with) and, for
//! counters, histograms and summaries, the series' creation time (to the second) as start timestamp,
//! in both layouts receivers read: rc.4's `Sample.start_timestamp` (3) / `Histogram.start_timestamp`
//! (17) and rc.3's `TimeSeries.created_timestamp` (6), equal (Prometheus 3.5 LTS and Mimir ≤ 3.2
//! read only field 6, Prometheus ≥ 3.8 only fields 3/17; a receiver skips the one it does not know). Written
//! straight into reused buffers, like the 1.0 encoder, and driven by the same [`walk`], so the
//! two protocols cannot disagree on a sample.
//!
//! A native histogram is one series named after its family holding one integer `Histogram`
//! (field 3) with the series' start timestamp, metadata type HISTOGRAM, counted as one sample;
//! declared with classic buckets as well, its `_bucket`, `_sum` and `_count` series go too. With
//! [`V2Encoder::send_native_histograms`] off, only what the text exposition shows goes: the classic
//! buckets, or `_sum` and `_count` for a native-only family.
//!
//! From one push to the next the encoder keeps each request's symbols table and each sample's
//! label block (its label refs field and metadata field, encoded), for as long as the samples are
//! those of the last push (`label_blocks.rs`): a push of the same series then copies each
//! series' block instead of interning its strings, and writes only the value and timestamps. The
//! bytes are those a fresh encoder writes for the same snapshot.

use super::label_blocks::{LabelBlocks, Lookup, suffix_slot};
use super::remote_write::{Compressor, Encoded, STALE_NAN, Src, Values, family_orders, metric_type, overflow_order, put_histogram};
use super::symbols::Symbols;
use super::wire::{put_varint, varint_len};
use super::{HistogramSeries, Sample, Sink, walk};
use crate::registry::{Family, FamilyId, Kind, OVERFLOW_LABEL};
use crate::snapshot::NativeSnapshot;
use crate::snapshot::Snapshot;

/// Headers every remote-write 2.0 request carries (the Content-Type exactly so: Thanos compares it whole).
pub const HEADERS: [(&str, &str); 3] = [
    ("Content-Type", "application/x-protobuf;proto=io.prometheus.write.v2.Request"),
    ("Content-Encoding", "snappy"),
    ("X-Prometheus-Remote-Write-Version", "2.0.0"),
];

/// Units a metric name may end with (before `_total`), as OpenMetrics and Prometheus spell them.
const UNITS: [&str; 11] = ["seconds", "bytes", "ratio", "percent", "celsius", "meters", "grams", "volts", "amperes", "joules", "hertz"];

/// The unit a metric name declares by its suffix, or `""`.
///
/// ```
/// use kdbprom::encode::remote_write2::unit_of;
/// assert_eq!(unit_of("kdb_request_duration_seconds"), "seconds");
/// assert_eq!(unit_of("kdbprom_push_bytes_total"), "bytes");
/// assert_eq!(unit_of("kdb_requests_total"), "");
/// ```
pub fn unit_of(name: &str) -> &'static str {
    let base = name.strip_suffix("_total").unwrap_or(name);
    UNITS.iter().find(|u| base.strip_suffix(**u).is_some_and(|b| b.ends_with('_'))).copied().unwrap_or("")
}

/// Buffers and label blocks kept from one push to the next.
#[derive(Debug, Default)]
pub struct V2Encoder {
    /// The symbols table of each request of the last push that was kept; the first ones stay
    /// valid while its samples are the same ([`LabelBlocks`]).
    tables: Vec<Symbols>,
    /// The table of a push that is not kept (stale markers).
    scratch: Symbols,
    /// The request being written, and whether its table is in `tables` (else `scratch`).
    request: usize,
    keep: bool,
    /// Bumped whenever a request ends, so the refs cached per family are re-interned.
    generation: u64,
    blocks: LabelBlocks,
    /// The snapshot generation, constant labels and request size the label blocks were made with.
    registry: u64,
    consts: Vec<(String, String)>,
    max: usize,
    series: Vec<u8>,
    refs: Vec<u32>,
    /// A native histogram's `Histogram` message, before its length is known.
    histogram: Vec<u8>,
    raw: Vec<u8>,
    compressor: Compressor,
    /// Native histograms are sent as what the text exposition shows (`send_native_histograms: false`).
    classic_only: bool,
}

impl V2Encoder {
    /// Whether native histograms go whole (the default) or as what the text exposition shows:
    /// their classic buckets, or `_sum` and `_count` only (for a receiver without native
    /// histograms, e.g. a Prometheus 2.40–3.7 without `--enable-feature=native-histograms`).
    pub fn send_native_histograms(&mut self, on: bool) {
        self.classic_only = !on;
        self.blocks.clear();
    }

    /// Encodes `snap` with `const_labels` (job, instance, static labels) on every series, all
    /// samples stamped `ts_ms`.
    pub fn encode(
        &mut self,
        snap: &Snapshot<'_>,
        const_labels: &[(String, String)],
        ts_ms: i64,
        max_samples: usize,
        values: Values,
    ) -> Vec<Encoded> {
        let max = max_samples.max(1);
        self.keep = values == Values::Current;
        let reuse = self.registry == snap.generation && self.consts == const_labels && self.max == max;
        if self.keep && !reuse {
            self.registry = snap.generation;
            self.consts = const_labels.to_vec();
            self.max = max;
        }
        self.blocks.begin(reuse, self.keep);
        self.request = 0;
        self.start_request();
        let mut sink = Sink2 {
            enc: self,
            const_labels,
            values,
            ts_ms,
            max,
            n: 0,
            out: Vec::new(),
            start: false,
            fam: FamilyState::default(),
            family_ready: false,
            cache: Cache::default(),
            stamps: Stamps::new(ts_ms),
        };
        walk(snap, &mut sink);
        let Sink2 { enc, mut out, n, .. } = sink;
        if n > 0 {
            out.push(enc.finish_request(n));
        }
        if enc.keep {
            enc.blocks.end();
            // Tables past the last kept sample's request are of no use to the next push.
            let used = enc.blocks.kept().div_ceil(max).max(1);
            enc.tables.truncate(used);
        }
        out
    }

    /// Samples of the last push whose label block was the push before's (tests).
    #[cfg(test)]
    pub(crate) fn reused(&self) -> usize {
        self.blocks.hits()
    }

    /// Caps the label blocks kept (tests; [`super::label_blocks::MAX_BYTES`] otherwise).
    #[cfg(test)]
    pub(crate) fn cap_blocks(&mut self, bytes: usize) {
        self.blocks.max_bytes = Some(bytes);
    }

    /// The table of the request being written.
    fn table(&mut self) -> &mut Symbols {
        if self.keep { &mut self.tables[self.request] } else { &mut self.scratch }
    }

    /// Gets the table of a new request ready: kept from the last push while its samples are the
    /// same, else empty.
    fn start_request(&mut self) {
        self.generation += 1;
        self.series.clear();
        if self.keep {
            if self.tables.len() <= self.request {
                self.tables.push(Symbols::new());
            }
            if !self.blocks.hitting() {
                self.tables[self.request].clear();
            }
        } else {
            self.scratch.clear();
        }
    }

    fn finish_request(&mut self, samples: usize) -> Encoded {
        if self.blocks.hitting() {
            // A request cut short by the end of the push holds only what its own samples use.
            let n = self.blocks.symbols_before();
            self.table().truncate(n);
        }
        self.raw.clear();
        let table = if self.keep { &self.tables[self.request] } else { &self.scratch };
        self.raw.extend_from_slice(table.encoded());
        self.raw.extend_from_slice(&self.series);
        let body = self.compressor.compress(&self.raw);
        self.request += 1;
        self.start_request();
        Encoded { body, samples }
    }
}

struct Sink2<'e, 'c> {
    enc: &'e mut V2Encoder,
    const_labels: &'c [(String, String)],
    values: Values,
    /// The timestamp of every sample of the call.
    ts_ms: i64,
    max: usize,
    n: usize,
    out: Vec<Encoded>,
    /// Whether the family's samples carry a start timestamp.
    start: bool,
    /// What interning the family's samples needs; set up only when a sample is encoded afresh.
    fam: FamilyState,
    family_ready: bool,
    cache: Cache,
    /// The timestamp fields of the current sample.
    stamps: Stamps,
}

/// A sample's timestamp fields, encoded: its timestamp, the same for every sample of a push, and
/// its start timestamp in both layouts, the same for every series made in the same second, so
/// encoded once for a run of them.
struct Stamps {
    /// The start timestamp the fields hold (0: none).
    start: i64,
    /// Bytes of `sample` that are the timestamp.
    ts_len: usize,
    /// `Sample.timestamp` then `Sample.start_timestamp` (rc.4).
    sample: Vec<u8>,
    /// `TimeSeries.created_timestamp` (rc.3), or nothing.
    created: Vec<u8>,
}

impl Stamps {
    fn new(ts_ms: i64) -> Stamps {
        let mut sample = vec![TIMESTAMP_KEY];
        put_varint(&mut sample, ts_ms as u64);
        Stamps { start: 0, ts_len: sample.len(), sample, created: Vec::new() }
    }

    /// Makes the fields those of a sample whose start timestamp is `start` (0: none).
    #[inline]
    fn start(&mut self, start: i64) {
        if start == self.start {
            return;
        }
        self.start = start;
        self.sample.truncate(self.ts_len);
        self.created.clear();
        if start > 0 {
            self.sample.push(START_KEY);
            put_varint(&mut self.sample, start as u64);
            self.created.push(CREATED_KEY);
            put_varint(&mut self.created, start as u64);
        }
    }
}

/// The current family as interning its samples' labels needs it.
#[derive(Default)]
struct FamilyState {
    order: Vec<Src>,
    order_extra: Vec<Src>,
    /// The family's metadata type, help and unit.
    kind: u64,
    help: String,
    unit: &'static str,
    name: String,
    label_names: Vec<String>,
    extra: Option<&'static str>,
}

impl FamilyState {
    fn set(&mut self, f: &Family, consts: &[(String, String)]) {
        let extra;
        (self.order, self.order_extra, extra) = family_orders(f, consts);
        self.kind = metric_type(f.kind);
        self.help.clear();
        self.help.push_str(&f.help);
        self.unit = unit_of(&f.name);
        self.name.clear();
        self.name.push_str(&f.name);
        self.label_names.clear();
        self.label_names.extend(f.label_names.iter().map(|n| n.to_string()));
        self.extra = extra;
    }
}

/// Refs of the strings every sample of the current family shares, valid for one symbols table.
#[derive(Default)]
struct Cache {
    generation: u64,
    /// Label-name refs in `order` and `order_extra` order.
    names: Vec<u32>,
    names_extra: Vec<u32>,
    /// Refs of the const labels' values.
    consts: Vec<u32>,
    /// `__name__` values by suffix: "", `_bucket`, `_sum`, `_count`.
    metric: [u32; 4],
    /// The whole metadata field (type, help ref, unit ref), encoded.
    meta: Vec<u8>,
}

// Field keys (field number << 3 | wire type), each one byte.
const TIMESERIES_KEY: u8 = 5 << 3 | 2;
const LABELS_REFS_KEY: u8 = 1 << 3 | 2;
const SAMPLE_KEY: u8 = 2 << 3 | 2;
const HISTOGRAM_KEY: u8 = 3 << 3 | 2;
const VALUE_KEY: u8 = 1 << 3 | 1;
const TIMESTAMP_KEY: u8 = 2 << 3;
const START_KEY: u8 = 3 << 3;
/// rc.3's `TimeSeries.created_timestamp`, written after the metadata.
const CREATED_KEY: u8 = 6 << 3;
const METADATA_KEY: u8 = 5 << 3 | 2;
const META_TYPE_KEY: u8 = 1 << 3;
const META_HELP_KEY: u8 = 3 << 3;
const META_UNIT_KEY: u8 = 4 << 3;

/// rc.3's `TimeSeries.created_timestamp` (field 6) holding `start`, the same value as the sample's
/// or histogram's rc.4 start timestamp; nothing when there is none.
#[inline]
fn put_created(out: &mut Vec<u8>, start: i64) {
    if start > 0 {
        out.push(CREATED_KEY);
        put_varint(out, start as u64);
    }
}

impl Sink2<'_, '_> {
    /// Interns what the family's samples share, once per family and symbols table.
    fn refresh(&mut self) {
        let e = &mut *self.enc;
        let symbols = if e.keep { &mut e.tables[e.request] } else { &mut e.scratch };
        let (c, f) = (&mut self.cache, &self.fam);
        c.generation = e.generation;
        c.names.clear();
        c.names_extra.clear();
        for (order, out) in [(&f.order, &mut c.names), (&f.order_extra, &mut c.names_extra)] {
            for &src in order.iter() {
                out.push(match src {
                    Src::Name => symbols.intern("__name__"),
                    Src::Family(i) => symbols.intern(&f.label_names[i]),
                    Src::Const(i) => symbols.intern(&self.const_labels[i].0),
                    Src::Extra => symbols.intern(f.extra.unwrap_or("")),
                    Src::Overflow => symbols.intern(OVERFLOW_LABEL),
                });
            }
        }
        c.consts.clear();
        for (_, v) in self.const_labels {
            c.consts.push(symbols.intern(v));
        }
        for (slot, suffix) in ["", "_bucket", "_sum", "_count"].iter().enumerate() {
            c.metric[slot] = symbols.intern_parts(&[&f.name, suffix]);
        }
        let (help, unit) = (symbols.intern(&f.help), symbols.intern(f.unit));
        // The metadata field is the same for every series of the family in this request.
        let mut body = Vec::with_capacity(12);
        body.push(META_TYPE_KEY);
        put_varint(&mut body, f.kind);
        if help > 0 {
            body.push(META_HELP_KEY);
            put_varint(&mut body, u64::from(help));
        }
        if unit > 0 {
            body.push(META_UNIT_KEY);
            put_varint(&mut body, u64::from(unit));
        }
        c.meta.clear();
        c.meta.push(METADATA_KEY);
        put_varint(&mut c.meta, body.len() as u64);
        c.meta.extend_from_slice(&body);
    }

    /// Makes the block of `s` current ([`LabelBlocks::block`]): last push's when the push is the
    /// same so far, else its labels interned afresh.
    #[inline]
    fn block(&mut self, s: &Sample<'_>) {
        match self.enc.blocks.lookup(s) {
            Lookup::Hit => return,
            Lookup::Switch => {
                self.rewind();
                if !self.family_ready {
                    self.fam.set(self.enc.blocks.family(), self.const_labels);
                    self.family_ready = true;
                }
            }
            Lookup::Miss => {}
        }
        self.refs(s);
        let e = &mut *self.enc;
        let symbols = if e.keep { e.tables[e.request].len() } else { e.scratch.len() };
        let buf = e.blocks.open_block();
        let start = buf.len();
        let refs_len: usize = e.refs.iter().map(|&r| varint_len(u64::from(r))).sum();
        buf.push(LABELS_REFS_KEY);
        put_varint(buf, refs_len as u64);
        for &r in &e.refs {
            put_varint(buf, u64::from(r));
        }
        let split = buf.len() - start;
        buf.extend_from_slice(&self.cache.meta);
        e.blocks.close_block(s, split, symbols);
    }

    /// The push stops being the same as the last one here: the request's table goes back to
    /// what it held after the previous sample of this push, so what follows is interned as a
    /// fresh encoder would.
    #[cold]
    fn rewind(&mut self) {
        let e = &mut *self.enc;
        let symbols = e.blocks.symbols_before();
        let table = &mut e.tables[e.request];
        if self.n == 0 {
            table.clear()
        } else {
            table.truncate(symbols)
        }
        // Re-interned against the table as it now is: the strings a family shares are there
        // already if an earlier sample of this request interned them, else added at this sample,
        // as a fresh encoder adds them at the family's first sample in the request.
        self.cache.generation = u64::MAX;
    }
}

impl Sink for Sink2<'_, '_> {
    fn family(&mut self, id: FamilyId, f: &Family) {
        self.start = f.kind != Kind::Gauge;
        self.cache.generation = u64::MAX;
        let was = self.enc.blocks.hitting();
        self.family_ready = !self.enc.blocks.enter_family(id, f);
        if self.family_ready {
            if was {
                self.rewind();
            }
            self.fam.set(f, self.const_labels);
        }
    }

    fn sample(&mut self, s: &Sample<'_>) {
        self.block(s);
        let start = self.start_ms(s);
        let value = match self.values {
            Values::Current => s.value,
            Values::Stale => f64::from_bits(STALE_NAN),
        };
        self.stamps.start(start);
        let st = &self.stamps;
        let e = &mut *self.enc;
        let (labels, meta) = e.blocks.block();
        // Lengths first, so the series is written once, straight into the request. A sample is
        // its value and at most two 11-byte stamps: its length is always one byte.
        let sample_len = 1 + 8 + st.sample.len();
        debug_assert!(sample_len < 0x80);
        let series_len = labels.len() + 2 + sample_len + meta.len() + st.created.len();
        let out = &mut e.series;
        out.reserve(series_len + 3);
        out.push(TIMESERIES_KEY);
        put_varint(out, series_len as u64);
        out.extend_from_slice(labels);
        out.extend_from_slice(&[SAMPLE_KEY, sample_len as u8, VALUE_KEY]);
        out.extend_from_slice(&value.to_le_bytes());
        out.extend_from_slice(&st.sample);
        out.extend_from_slice(meta);
        out.extend_from_slice(&st.created);
        self.counted();
    }

    /// While the push takes its blocks from the last one, the label values are not read.
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
        self.block(&h.series);
        let start = self.start_ms(&h.series);
        let e = &mut *self.enc;
        let body = &mut e.histogram;
        body.clear();
        put_histogram(body, n, self.ts_ms, start, self.values == Values::Stale);
        let (labels, meta) = e.blocks.block();
        let start_len = if start > 0 { 1 + varint_len(start as u64) } else { 0 };
        let series_len = labels.len() + 1 + varint_len(body.len() as u64) + body.len() + meta.len() + start_len;
        let out = &mut e.series;
        out.push(TIMESERIES_KEY);
        put_varint(out, series_len as u64);
        out.extend_from_slice(labels);
        out.push(HISTOGRAM_KEY);
        put_varint(out, body.len() as u64);
        out.extend_from_slice(body);
        out.extend_from_slice(meta);
        put_created(out, start);
        self.counted();
    }
}

impl Sink2<'_, '_> {
    /// Fills `enc.refs` with the sorted (name, value) refs of `s`, interning what is new.
    #[inline]
    fn refs(&mut self, s: &Sample<'_>) {
        if self.cache.generation != self.enc.generation {
            self.refresh();
        }
        if s.overflow {
            return self.overflow_refs(s);
        }
        let e = &mut *self.enc;
        let symbols = if e.keep { &mut e.tables[e.request] } else { &mut e.scratch };
        let c = &self.cache;
        e.refs.clear();
        let (order, names) = if s.extra.is_some() { (&self.fam.order_extra, &c.names_extra) } else { (&self.fam.order, &c.names) };
        for (&src, &name) in order.iter().zip(names) {
            let value = match src {
                Src::Name => c.metric[suffix_slot(s.suffix)],
                Src::Family(i) if s.label_values[i].is_empty() => continue, // an empty value is no label at all
                Src::Family(i) => symbols.intern(&s.label_values[i]),
                Src::Const(i) if self.const_labels[i].1.is_empty() => continue,
                Src::Const(i) => c.consts[i],
                Src::Extra => symbols.intern(s.extra.map_or("", |(_, v)| v)),
                Src::Overflow => symbols.intern("true"),
            };
            e.refs.push(name);
            e.refs.push(value);
        }
    }

    /// [`Sink2::refs`] for a family's overflow series: its own labels (all empty) left out,
    /// [`OVERFLOW_LABEL`]`="true"` in, names interned here (one series a family at most).
    #[cold]
    fn overflow_refs(&mut self, s: &Sample<'_>) {
        let e = &mut *self.enc;
        let symbols = if e.keep { &mut e.tables[e.request] } else { &mut e.scratch };
        let c = &self.cache;
        e.refs.clear();
        for src in overflow_order(self.const_labels, s.extra.map(|(n, _)| n)) {
            let (name, value) = match src {
                Src::Name => ("__name__", c.metric[suffix_slot(s.suffix)]),
                Src::Const(i) if self.const_labels[i].1.is_empty() => continue,
                Src::Const(i) => (self.const_labels[i].0.as_str(), c.consts[i]),
                Src::Extra => s.extra.map_or(("", 0), |(n, v)| (n, symbols.intern(v))),
                Src::Overflow => (OVERFLOW_LABEL, symbols.intern("true")),
                Src::Family(_) => continue,
            };
            e.refs.push(symbols.intern(name));
            e.refs.push(value);
        }
    }

    /// The start timestamp of `s`, 0 for none: whole seconds, rounded down, so still no later
    /// than the series' first event, and the same for every series made in that second, which
    /// snappy then stores once (1.2 fewer bytes a sample on the wire for 10 k counters).
    #[inline]
    fn start_ms(&self, s: &Sample<'_>) -> i64 {
        if self.start { s.created_ms.max(0) / 1000 * 1000 } else { 0 }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregator;
    use crate::event::{Event, Op};
    use crate::proto::v2;
    use crate::registry::{Limits, Registry};
    use prost::Message;

    fn decode(r: &Encoded) -> v2::Request {
        let raw = snap::raw::Decoder::new().decompress_vec(&r.body).unwrap();
        v2::Request::decode(&raw[..]).unwrap()
    }

    #[test]
    fn symbols_refs_metadata_and_start_timestamps() {
        let reg = Registry::new(Limits::default());
        reg.declare("lat_seconds", "Latency.", Kind::Histogram, &["Zone", "path"], &[0.5, 1.0]).unwrap();
        reg.declare("depth", "", Kind::Gauge, &[], &[]).unwrap();
        let s = reg.series("lat_seconds", &["eu", ""]).unwrap();
        let created = reg.slot(s).unwrap().created_ms;
        let mut agg = Aggregator::new(1);
        agg.apply(&reg, Event { series: s, op: Op::Observe, value: 0.7 });
        agg.apply(&reg, Event { series: reg.by_name("depth").unwrap(), op: Op::Set, value: 3.0 });
        let consts = vec![("instance".to_string(), "h:1".to_string()), ("job".to_string(), "eod".to_string())];
        let reqs = V2Encoder::default().encode(&agg.snapshot(&reg), &consts, 1_700_000_000_123, 4, Values::Current);
        assert_eq!(reqs.iter().map(|r| r.samples).collect::<Vec<_>>(), vec![4, 2]);
        for r in &reqs {
            let w = decode(r);
            assert_eq!(w.symbols[0], "");
            let mut seen = std::collections::HashSet::new();
            assert!(w.symbols.iter().all(|s| seen.insert(s)), "each symbol once: {:?}", w.symbols);
            for t in &w.timeseries {
                assert!(t.labels_refs.iter().all(|&r| (r as usize) < w.symbols.len()));
                let names: Vec<&str> = t.labels_refs.chunks(2).map(|p| w.symbols[p[0] as usize].as_str()).collect();
                assert!(names.windows(2).all(|p| p[0] < p[1]), "sorted: {names:?}");
            }
        }
        let w = decode(&reqs[0]);
        let first = &w.timeseries[0];
        let labels: Vec<(&str, &str)> =
            first.labels_refs.chunks(2).map(|p| (w.symbols[p[0] as usize].as_str(), w.symbols[p[1] as usize].as_str())).collect();
        assert_eq!(labels, [("Zone", "eu"), ("__name__", "lat_seconds_bucket"), ("instance", "h:1"), ("job", "eod"), ("le", "0.5")]);
        assert_eq!(
            (first.samples[0].value, first.samples[0].timestamp, first.samples[0].start_timestamp, first.created_timestamp),
            (0.0, 1_700_000_000_123, created / 1000 * 1000, created / 1000 * 1000)
        );
        let m = first.metadata.unwrap();
        assert_eq!(
            (m.r#type, w.symbols[m.help_ref as usize].as_str(), w.symbols[m.unit_ref as usize].as_str()),
            (3, "Latency.", "seconds")
        );
        let last = decode(&reqs[1]);
        let depth = last.timeseries.last().unwrap();
        assert_eq!(
            (depth.samples[0].value, depth.samples[0].start_timestamp, depth.created_timestamp, depth.metadata.unwrap().r#type),
            (3.0, 0, 0, 2),
            "a gauge has no start timestamp in either layout"
        );
        let stale = V2Encoder::default().encode(&agg.snapshot(&reg), &consts, 9, 100, Values::Stale);
        assert!(decode(&stale[0]).timeseries.iter().all(|t| t.samples[0].value.to_bits() == STALE_NAN));
    }

    #[test]
    fn overflow_series_have_only_the_overflow_label_besides_the_constant_ones() {
        let (reg, mut agg) = crate::encode::remote_write::tests::overflow_registry();
        let consts = vec![("instance".to_string(), "h:1".to_string()), ("job".to_string(), "eod".to_string())];
        let snap = agg.snapshot(&reg);
        // The 1.0 encoder's label sets (its own test pins them) are the 2.0 encoder's.
        let v1 = super::super::remote_write::V1Encoder::default().encode(&snap, &consts, 5, 1000, Values::Current);
        let raw = snap::raw::Decoder::new().decompress_vec(&v1[0].body).unwrap();
        let v1 = crate::proto::WriteRequest::decode(&raw[..]).unwrap();
        let want: Vec<Vec<(String, String)>> =
            v1.timeseries.iter().map(|t| t.labels.iter().map(|l| (l.name.clone(), l.value.clone())).collect()).collect();
        assert_eq!(want.iter().filter(|l| l.iter().any(|(n, v)| n == "otel_metric_overflow" && v == "true")).count(), 6);
        // Small requests: every one restarts the symbols table, so each overflow series is written
        // against a fresh table as well as after other series.
        for max in [1, 3, 1000] {
            let reqs = V2Encoder::default().encode(&snap, &consts, 5, max, Values::Current);
            let mut got = Vec::new();
            for r in &reqs {
                let w = decode(r);
                let mut seen = std::collections::HashSet::new();
                assert!(w.symbols.iter().all(|s| seen.insert(s)), "each symbol once: {:?}", w.symbols);
                for t in &w.timeseries {
                    let l: Vec<(String, String)> =
                        t.labels_refs.chunks(2).map(|p| (w.symbols[p[0] as usize].clone(), w.symbols[p[1] as usize].clone())).collect();
                    assert!(l.windows(2).all(|p| p[0].0 < p[1].0), "sorted: {l:?}");
                    got.push(l);
                }
            }
            assert_eq!(got, want, "max_samples_per_send {max}");
        }
    }

    #[test]
    fn native_histograms_with_refs_start_timestamps_and_metadata() {
        use crate::encode::remote_write::tests::{NATIVE_VALUES, native_registry};
        use v2::histogram::{Count, ZeroCount};
        let (reg, mut agg, want) = native_registry();
        let created = reg.slot(reg.series("n_seconds", &["/q", ""]).unwrap()).unwrap().created_ms;
        let consts = vec![("instance".to_string(), "h:1".to_string()), ("job".to_string(), "eod".to_string())];
        let reqs = V2Encoder::default().encode(&agg.snapshot(&reg), &consts, 1_700_000_000_123, 4, Values::Current);
        assert_eq!(reqs.iter().map(|r| r.samples).collect::<Vec<_>>(), vec![4, 3], "a native histogram is one sample");
        let (pos, neg) = want.buckets();
        let mut histograms = 0;
        for r in &reqs {
            let w = decode(r);
            assert_eq!(w.symbols[0], "");
            let mut seen = std::collections::HashSet::new();
            assert!(w.symbols.iter().all(|s| seen.insert(s)), "each symbol once: {:?}", w.symbols);
            for t in &w.timeseries {
                assert!(t.labels_refs.len() % 2 == 0 && t.labels_refs.iter().all(|&r| (r as usize) < w.symbols.len()));
                let labels: Vec<(&str, &str)> =
                    t.labels_refs.chunks(2).map(|p| (w.symbols[p[0] as usize].as_str(), w.symbols[p[1] as usize].as_str())).collect();
                assert!(labels.windows(2).all(|p| p[0].0 < p[1].0), "sorted: {labels:?}");
                let m = t.metadata.unwrap();
                assert_eq!((m.r#type, w.symbols[m.unit_ref as usize].as_str()), (3, "seconds"));
                assert!(t.samples.is_empty() != t.histograms.is_empty(), "samples or histograms, never both");
                let Some(h) = t.histograms.first() else { continue };
                histograms += 1;
                let name = labels.iter().find(|l| l.0 == "__name__").unwrap().1;
                assert!(name == "n_seconds" || name == "b_seconds", "{name}");
                assert!(labels.iter().all(|l| l.0 != "le"));
                if name == "n_seconds" {
                    assert_eq!(labels, [("__name__", "n_seconds"), ("instance", "h:1"), ("job", "eod"), ("path", "/q")]);
                    assert_eq!(w.symbols[m.help_ref as usize], "Native.");
                }
                assert_eq!(t.histograms.len(), 1);
                assert_eq!(h.count, Some(Count::CountInt(NATIVE_VALUES.len() as u64)));
                assert_eq!(h.zero_count, Some(ZeroCount::ZeroCountInt(want.zero_count())));
                assert_eq!((h.sum, h.schema, h.zero_threshold, h.timestamp), (want.sum(), 3, want.zero_threshold(), 1_700_000_000_123));
                assert_eq!((h.start_timestamp, t.created_timestamp), (created / 1000 * 1000, created / 1000 * 1000));
                let decode = |s: &[v2::BucketSpan], d: &[i64]| {
                    crate::snapshot::Spans { spans: s.iter().map(|s| (s.offset, s.length)).collect(), deltas: d.to_vec() }.decode()
                };
                assert_eq!(decode(&h.positive_spans, &h.positive_deltas).unwrap(), pos);
                assert_eq!(decode(&h.negative_spans, &h.negative_deltas).unwrap(), neg);
                assert!(h.positive_counts.is_empty() && h.custom_values.is_empty());
            }
        }
        assert_eq!(histograms, 2);
        let stale = V2Encoder::default().encode(&agg.snapshot(&reg), &consts, 9, 100, Values::Stale);
        let w = decode(&stale[0]);
        let hs: Vec<_> = w.timeseries.iter().flat_map(|t| &t.histograms).collect();
        assert_eq!(hs.len(), 2);
        assert!(hs.iter().all(|h| h.sum.to_bits() == STALE_NAN && h.count == Some(Count::CountInt(0)) && h.positive_spans.is_empty()));
        assert!(w.timeseries.iter().flat_map(|t| &t.samples).all(|s| s.value.to_bits() == STALE_NAN));
    }

    /// Every kind with a start timestamp carries it in both layouts, equal: rc.4's
    /// `Sample.start_timestamp` / `Histogram.start_timestamp` and rc.3's
    /// `TimeSeries.created_timestamp`; a gauge in neither.
    #[test]
    fn start_timestamps_in_both_layouts_and_equal() {
        use crate::encode::remote_write::tests::native_registry;
        let (reg, mut agg, _) = native_registry();
        reg.declare("c_total", "C.", Kind::Counter, &[], &[]).unwrap();
        reg.declare("g", "G.", Kind::Gauge, &[], &[]).unwrap();
        reg.declare("s_seconds", "S.", Kind::Summary, &[], &[0.5, 0.9]).unwrap();
        for (m, op) in [("c_total", Op::Inc), ("g", Op::Set), ("s_seconds", Op::Observe)] {
            agg.apply(&reg, Event { series: reg.by_name(m).unwrap(), op, value: 2.0 });
        }
        let snap = agg.snapshot(&reg);
        let consts = vec![("job".to_string(), "j".to_string())];
        for values in [Values::Current, Values::Stale] {
            let reqs = V2Encoder::default().encode(&snap, &consts, 1_700_000_000_123, 1000, values);
            let w = decode(&reqs[0]);
            let mut kinds = std::collections::BTreeSet::new();
            for t in &w.timeseries {
                let kind = t.metadata.unwrap().r#type;
                kinds.insert(kind);
                let starts: Vec<i64> =
                    t.samples.iter().map(|s| s.start_timestamp).chain(t.histograms.iter().map(|h| h.start_timestamp)).collect();
                assert_eq!(starts.len(), 1);
                if kind == 2 {
                    assert_eq!((starts[0], t.created_timestamp), (0, 0), "a gauge has none");
                } else {
                    assert!(starts[0] > 0 && starts[0] % 1000 == 0, "{kind}: {starts:?}");
                    assert_eq!(t.created_timestamp, starts[0], "kind {kind}: field 6 equals field 3/17");
                }
            }
            assert_eq!(kinds, [1, 2, 3, 5].into(), "counter, gauge, histogram, summary");
        }
    }

    /// `send_native_histograms: false` sends what the text exposition shows, over 1.0 and 2.0: a
    /// native-only family as `_sum` and `_count`, a family with classic buckets as those; never a
    /// `Histogram` message. Stale markers likewise.
    #[test]
    fn without_native_histograms_what_the_text_shows() {
        use crate::encode::remote_write::tests::{NATIVE_VALUES, native_registry};
        let (reg, mut agg, want) = native_registry();
        let snap = agg.snapshot(&reg);
        let consts = vec![("job".to_string(), "j".to_string())];
        let expect: std::collections::BTreeMap<String, f64> = [
            ("b_seconds_bucket{le=0.001}".to_string(), 5.0),
            ("b_seconds_bucket{le=1.0}".to_string(), 10.0),
            ("b_seconds_bucket{le=+Inf}".to_string(), 12.0),
            ("b_seconds_count".to_string(), 12.0),
            ("b_seconds_sum".to_string(), want.sum()),
            ("n_seconds_count".to_string(), NATIVE_VALUES.len() as f64),
            ("n_seconds_sum".to_string(), want.sum()),
        ]
        .into();
        let key = |name: &str, le: Option<&str>| match le {
            Some(le) => format!("{name}{{le={le}}}"),
            None => name.to_string(),
        };
        for values in [Values::Current, Values::Stale] {
            let mut e2 = V2Encoder::default();
            e2.send_native_histograms(false);
            let reqs = e2.encode(&snap, &consts, 5, 1000, values);
            assert_eq!(reqs.iter().map(|r| r.samples).sum::<usize>(), expect.len());
            let w = decode(&reqs[0]);
            let mut got = std::collections::BTreeMap::new();
            for t in &w.timeseries {
                assert!(t.histograms.is_empty(), "no native histogram over 2.0");
                let l: std::collections::BTreeMap<&str, &str> =
                    t.labels_refs.chunks(2).map(|p| (w.symbols[p[0] as usize].as_str(), w.symbols[p[1] as usize].as_str())).collect();
                got.insert(key(l["__name__"], l.get("le").copied()), t.samples[0].value);
                assert_eq!(t.created_timestamp, t.samples[0].start_timestamp);
            }
            let mut e1 = super::super::remote_write::V1Encoder::default();
            e1.send_native_histograms(false);
            let reqs = e1.encode(&snap, &consts, 5, 1000, values);
            let raw = snap::raw::Decoder::new().decompress_vec(&reqs[0].body).unwrap();
            let w1 = crate::proto::WriteRequest::decode(&raw[..]).unwrap();
            let mut got1 = std::collections::BTreeMap::new();
            for t in &w1.timeseries {
                assert!(t.histograms.is_empty(), "no native histogram over 1.0");
                let l: std::collections::BTreeMap<&str, &str> = t.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
                got1.insert(key(l["__name__"], l.get("le").copied()), t.samples[0].value);
            }
            let bits = |m: &std::collections::BTreeMap<String, f64>| m.iter().map(|(k, v)| (k.clone(), v.to_bits())).collect::<Vec<_>>();
            assert_eq!(bits(&got), bits(&got1), "1.0 and 2.0 carry the same samples");
            match values {
                Values::Current => assert_eq!(bits(&got), bits(&expect)),
                Values::Stale => {
                    assert_eq!(got.keys().collect::<Vec<_>>(), expect.keys().collect::<Vec<_>>());
                    assert!(got.values().all(|v| v.to_bits() == STALE_NAN));
                }
            }
        }
        // The default sends them whole.
        let reqs = V2Encoder::default().encode(&snap, &consts, 5, 1000, Values::Current);
        assert_eq!(decode(&reqs[0]).timeseries.iter().filter(|t| !t.histograms.is_empty()).count(), 2);
    }

    /// What rc.3's field 6 costs beside rc.4's field 3 (BENCHMARKS.md): a 1,000-series counter
    /// snapshot in one request, as encoded and with field 6 taken out (decoded, cleared, encoded
    /// again with prost, whose bytes are the encoder's: checked). Raw, it is 7 bytes a counter
    /// sample (a key and a 6-byte varint of milliseconds); snappy stores most of it once, as every
    /// series made in one second has the same value.
    #[test]
    fn the_cost_of_the_second_start_timestamp_layout() {
        let reg = Registry::new(Limits::default());
        reg.declare("kdb_rows_total", "Rows.", Kind::Counter, &["table"], &[]).unwrap();
        let mut agg = Aggregator::new(1);
        for i in 0..1000 {
            let s = reg.series("kdb_rows_total", &[&format!("table_{i:04}")]).unwrap();
            agg.apply(&reg, Event { series: s, op: Op::Inc, value: f64::from(i) * 3.0 + 1.0 });
        }
        let consts = vec![("instance".to_string(), "host:5010".to_string()), ("job".to_string(), "eod".to_string())];
        let reqs = V2Encoder::default().encode(&agg.snapshot(&reg), &consts, 1_796_670_914_123, 2000, Values::Current);
        assert_eq!((reqs.len(), reqs[0].samples), (1, 1000));
        let raw = snap::raw::Decoder::new().decompress_vec(&reqs[0].body).unwrap();
        let mut w = v2::Request::decode(&raw[..]).unwrap();
        assert_eq!(w.encode_to_vec(), raw, "prost writes what the encoder writes");
        assert!(w.timeseries.iter().all(|t| t.created_timestamp > 0 && t.created_timestamp == t.samples[0].start_timestamp));
        w.timeseries.iter_mut().for_each(|t| t.created_timestamp = 0);
        let without = w.encode_to_vec();
        let zipped = |b: &[u8]| snap::raw::Encoder::new().compress_vec(b).unwrap().len();
        let (raw_with, raw_without) = (raw.len() as f64 / 1000.0, without.len() as f64 / 1000.0);
        let (wire_with, wire_without) = (reqs[0].body.len() as f64 / 1000.0, zipped(&without) as f64 / 1000.0);
        eprintln!(
            "1,000 counters, one request: raw {raw_with:.2} vs {raw_without:.2} bytes/sample (+{:.2}); snappy {wire_with:.2} vs {wire_without:.2} (+{:.2})",
            raw_with - raw_without,
            wire_with - wire_without
        );
        assert_eq!(raw.len() - without.len(), 7 * 1000, "a key and a 6-byte varint a series");
        assert!(wire_with - wire_without < 1.5, "snappy keeps it small: +{:.2} bytes a sample", wire_with - wire_without);
    }
}
