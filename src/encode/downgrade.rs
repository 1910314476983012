//! A remote-write 2.0 body rewritten as the same data in 1.0, for a receiver found to take only
//! 1.0 after requests were already encoded (negotiation fallback, or a 2.0 spool replayed to a
//! 1.0 target).
//!
//! Rare (once per target at most, plus replays), so it goes through the prost types rather than
//! the hand-written writers: decode, map field by field, encode. Start timestamps have no place
//! in 1.0 and are dropped; metadata becomes one entry per family.

use crate::proto::{self, v2};
use bytes::Bytes;
use prost::Message;
use thiserror::Error;

/// Why a body could not be rewritten (it was not a 2.0 request).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DowngradeError {
    /// Not snappy.
    #[error("not snappy-compressed: {0}")]
    Snappy(String),
    /// Not an `io.prometheus.write.v2.Request`.
    #[error("not a remote-write 2.0 request: {0}")]
    Decode(String),
    /// A label ref outside the symbols table.
    #[error("label ref {0} outside a symbols table of {1}")]
    Ref(u32, usize),
}

/// The 1.0 `WriteRequest` (snappy) carrying the same series, samples and histograms as `body`.
pub fn downgrade(body: &[u8]) -> Result<Bytes, DowngradeError> {
    let raw = snap::raw::Decoder::new().decompress_vec(body).map_err(|e| DowngradeError::Snappy(e.to_string()))?;
    let req = v2::Request::decode(&raw[..]).map_err(|e| DowngradeError::Decode(e.to_string()))?;
    let sym = |r: u32| req.symbols.get(r as usize).cloned().ok_or(DowngradeError::Ref(r, req.symbols.len()));
    let mut out = proto::WriteRequest::default();
    let mut families = std::collections::BTreeMap::new();
    for ts in &req.timeseries {
        let mut labels = Vec::with_capacity(ts.labels_refs.len() / 2);
        let mut name = String::new();
        for pair in ts.labels_refs.chunks(2) {
            let (n, v) = (sym(pair[0])?, sym(*pair.get(1).unwrap_or(&0))?);
            if n == "__name__" {
                name = v.clone();
            }
            labels.push(proto::Label { name: n, value: v });
        }
        if let Some(m) = &ts.metadata {
            let family = match m.r#type {
                3 | 5 => ["_bucket", "_sum", "_count"].iter().find_map(|s| name.strip_suffix(s)).unwrap_or(&name).to_string(),
                _ => name.clone(),
            };
            families.entry(family).or_insert((m.r#type, sym(m.help_ref)?, sym(m.unit_ref)?));
        }
        out.timeseries.push(proto::TimeSeries {
            labels,
            samples: ts.samples.iter().map(|s| proto::Sample { value: s.value, timestamp: s.timestamp }).collect(),
            exemplars: Vec::new(),
            histograms: ts.histograms.iter().map(histogram).collect(),
        });
    }
    out.metadata = families
        .into_iter()
        .map(|(name, (kind, help, unit))| proto::MetricMetadata { r#type: kind, metric_family_name: name, help, unit })
        .collect();
    let raw = out.encode_to_vec();
    let compressed = snap::raw::Encoder::new().compress_vec(&raw).map_err(|e| DowngradeError::Snappy(e.to_string()))?;
    Ok(Bytes::from(compressed))
}

fn histogram(h: &v2::Histogram) -> proto::Histogram {
    use proto::histogram::{Count, ZeroCount};
    use v2::histogram::{Count as C2, ZeroCount as Z2};
    let spans = |s: &[v2::BucketSpan]| s.iter().map(|s| proto::BucketSpan { offset: s.offset, length: s.length }).collect();
    proto::Histogram {
        count: h.count.map(|c| match c {
            C2::CountInt(n) => Count::CountInt(n),
            C2::CountFloat(f) => Count::CountFloat(f),
        }),
        sum: h.sum,
        schema: h.schema,
        zero_threshold: h.zero_threshold,
        zero_count: h.zero_count.map(|z| match z {
            Z2::ZeroCountInt(n) => ZeroCount::ZeroCountInt(n),
            Z2::ZeroCountFloat(f) => ZeroCount::ZeroCountFloat(f),
        }),
        negative_spans: spans(&h.negative_spans),
        negative_deltas: h.negative_deltas.clone(),
        negative_counts: h.negative_counts.clone(),
        positive_spans: spans(&h.positive_spans),
        positive_deltas: h.positive_deltas.clone(),
        positive_counts: h.positive_counts.clone(),
        reset_hint: h.reset_hint,
        timestamp: h.timestamp,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aggregate::Aggregator;
    use crate::encode::{remote_write, remote_write2};
    use crate::event::{Event, Op};
    use crate::registry::{Kind, Limits, Registry};

    #[test]
    fn the_same_samples_as_the_1_0_encoder_writes() {
        let reg = Registry::new(Limits::default());
        reg.declare("lat_seconds", "Latency.", Kind::Histogram, &["zone"], &[0.5, 1.0]).unwrap();
        reg.declare("rows_total", "Rows.", Kind::Counter, &[], &[]).unwrap();
        let s = reg.series("lat_seconds", &["eu"]).unwrap();
        let mut agg = Aggregator::new(1);
        agg.apply(&reg, Event { series: s, op: Op::Observe, value: 0.7 });
        agg.apply(&reg, Event { series: reg.by_name("rows_total").unwrap(), op: Op::Inc, value: 3.0 });
        let consts = vec![("job".to_string(), "j".to_string())];
        let snap = agg.snapshot(&reg);
        let decode = |b: &[u8]| proto::WriteRequest::decode(&snap::raw::Decoder::new().decompress_vec(b).unwrap()[..]).unwrap();
        let v1 = remote_write::V1Encoder::default().encode(&snap, &consts, 77, 100, remote_write::Values::Current);
        let v2 = remote_write2::V2Encoder::default().encode(&snap, &consts, 77, 100, remote_write::Values::Current);
        let (want, got) = (decode(&v1[0].body), decode(&downgrade(&v2[0].body).unwrap()));
        assert_eq!(got.timeseries, want.timeseries);
        let names = |w: &proto::WriteRequest| w.metadata.iter().map(|m| (m.metric_family_name.clone(), m.r#type)).collect::<Vec<_>>();
        assert_eq!(names(&got), [("lat_seconds".to_string(), 3), ("rows_total".to_string(), 1)]);
        assert_eq!(got.metadata[0].unit, "seconds");
        assert!(matches!(downgrade(b"not snappy at all"), Err(DowngradeError::Snappy(_) | DowngradeError::Decode(_))));
    }
}
