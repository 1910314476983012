//! Remote-write 1.0: a snapshot as `WriteRequest` protobufs, snappy block-compressed, split into
//! requests of at most `max_samples_per_send` samples.
//!
//! Written straight into reused buffers with prost's wire primitives (one `TimeSeries` per sample,
//! labels sorted by name, `__name__` included, empty values left out), then checked against the
//! prost-generated [`crate::proto::WriteRequest`] in tests. Family metadata (type, help) rides in
//! the last request of each push. [`Values::Stale`] writes Prometheus's stale marker instead of
//! every value, so a finished job's or a removed series ends at once instead of fading out.

use super::{Sample, Sink, walk};
use crate::registry::{Family, Kind};
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
pub struct Request {
    /// Snappy (block format) of the serialised WriteRequest.
    pub body: Bytes,
    /// Samples in it.
    pub samples: usize,
}

/// Buffers kept from one push to the next.
pub struct Encoder {
    raw: Vec<u8>,
    series: Vec<u8>,
    metadata: Vec<u8>,
    snappy: snap::raw::Encoder,
    compressed: Vec<u8>,
}

impl Default for Encoder {
    fn default() -> Self {
        Encoder { raw: Vec::new(), series: Vec::new(), metadata: Vec::new(), snappy: snap::raw::Encoder::new(), compressed: Vec::new() }
    }
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Encoder").field("raw_capacity", &self.raw.capacity()).finish()
    }
}

impl Encoder {
    /// Encodes `snap` with `const_labels` (job, instance, static labels) on every series, all samples
    /// stamped `ts_ms`.
    pub fn encode(
        &mut self,
        snap: &Snapshot<'_>,
        const_labels: &[(String, String)],
        ts_ms: i64,
        max_samples: usize,
        values: Values,
    ) -> Vec<Request> {
        self.raw.clear();
        self.metadata.clear();
        let mut sink = RwSink {
            enc: self,
            const_labels,
            ts_ms,
            values,
            max: max_samples.max(1),
            n: 0,
            out: Vec::new(),
            order: Vec::new(),
            order_extra: Vec::new(),
        };
        walk(snap, &mut sink);
        let RwSink { enc, mut out, n, .. } = sink;
        if n > 0 || !enc.metadata.is_empty() {
            let meta = std::mem::take(&mut enc.metadata);
            enc.raw.extend_from_slice(&meta);
            enc.metadata = meta;
            out.push(enc.finish_request(n));
        }
        out
    }

    fn finish_request(&mut self, samples: usize) -> Request {
        let max = snap::raw::max_compress_len(self.raw.len());
        self.compressed.resize(max, 0);
        let n = self.snappy.compress(&self.raw, &mut self.compressed).expect("a buffer of max_compress_len always suffices");
        self.raw.clear();
        Request { body: Bytes::copy_from_slice(&self.compressed[..n]), samples }
    }
}

/// Where a label of a sample comes from, in name order.
#[derive(Clone, Copy)]
pub(crate) enum Src {
    Name,
    Family(usize),
    Const(usize),
    Extra,
}

struct RwSink<'e, 'c> {
    enc: &'e mut Encoder,
    const_labels: &'c [(String, String)],
    ts_ms: i64,
    values: Values,
    max: usize,
    n: usize,
    out: Vec<Request>,
    /// Label order of the current family without and with its `le`/`quantile` label.
    order: Vec<Src>,
    order_extra: Vec<Src>,
}

pub(crate) fn label_order(f: &Family, consts: &[(String, String)], extra: Option<&str>) -> Vec<Src> {
    let mut v: Vec<(&str, Src)> = vec![("__name__", Src::Name)];
    v.extend(f.label_names.iter().enumerate().map(|(i, n)| (&**n, Src::Family(i))));
    v.extend(consts.iter().enumerate().map(|(i, (n, _))| (n.as_str(), Src::Const(i))));
    v.extend(extra.map(|e| (e, Src::Extra)));
    v.sort_by(|a, b| a.0.cmp(b.0));
    v.into_iter().map(|(_, s)| s).collect()
}

fn put_string(buf: &mut Vec<u8>, tag: u32, parts: &[&str]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(len as u64, buf);
    for p in parts {
        buf.extend_from_slice(p.as_bytes());
    }
}

fn string_len(tag_len: usize, len: usize) -> usize {
    tag_len + encoded_len_varint(len as u64) + len
}

impl Sink for RwSink<'_, '_> {
    fn family(&mut self, f: &Family) {
        self.order = label_order(f, self.const_labels, None);
        let extra = match f.kind {
            Kind::Histogram => Some("le"),
            Kind::Summary => Some("quantile"),
            _ => None,
        };
        self.order_extra = label_order(f, self.const_labels, extra);
        if self.values == Values::Stale {
            return;
        }
        let kind = match f.kind {
            Kind::Counter => 1,
            Kind::Gauge => 2,
            Kind::Histogram => 3,
            Kind::Summary => 5,
        };
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
        let ts = &mut self.enc.series;
        ts.clear();
        let order = if s.extra.is_some() { &self.order_extra } else { &self.order };
        for &src in order {
            let (name, value): (&str, [&str; 2]) = match src {
                Src::Name => ("__name__", [s.name, s.suffix]),
                Src::Family(i) => (&s.label_names[i], [&s.label_values[i], ""]),
                Src::Const(i) => (&self.const_labels[i].0, [&self.const_labels[i].1, ""]),
                Src::Extra => s.extra.map_or(("", ["", ""]), |(n, v)| (n, [v, ""])),
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
        let ts_len = encoded_len_varint(self.ts_ms as u64);
        encode_key(2, WireType::LengthDelimited, ts);
        encode_varint((1 + 8 + 1 + ts_len) as u64, ts);
        encode_key(1, WireType::SixtyFourBit, ts);
        let value = match self.values {
            Values::Current => s.value,
            Values::Stale => f64::from_bits(STALE_NAN),
        };
        ts.extend_from_slice(&value.to_le_bytes());
        encode_key(2, WireType::Varint, ts);
        encode_varint(self.ts_ms as u64, ts);
        let raw = &mut self.enc.raw;
        encode_key(1, WireType::LengthDelimited, raw);
        encode_varint(ts.len() as u64, raw);
        raw.extend_from_slice(ts);
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
    use crate::proto::{Label, WriteRequest};
    use crate::registry::{Limits, Registry};
    use prost::Message;

    fn decode(r: &Request) -> WriteRequest {
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
        let reqs = Encoder::default().encode(&agg.snapshot(&reg), &consts, 1_700_000_000_123, 2, Values::Current);
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
        let stale = Encoder::default().encode(&agg.snapshot(&reg), &consts, 7, 100, Values::Stale);
        let w = decode(&stale[0]);
        assert_eq!(w.timeseries.len(), 5);
        assert!(w.metadata.is_empty());
        assert!(w.timeseries.iter().all(|t| t.samples[0].value.to_bits() == STALE_NAN && t.samples[0].timestamp == 7));
    }
}
