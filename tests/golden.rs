//! Golden files for the encoders: one deterministic snapshot (every metric type, awkward label
//! values, empty values, a summary with an empty window, a native histogram with zeros and
//! negative values) encoded as text and as remote write,
//! compared byte for byte with tests/golden/. `UPDATE_GOLDEN=1 cargo test --test golden` rewrites them.

use kdbprom::aggregate::{Aggregator, NativeConfig};
use kdbprom::encode::{remote_write, text};
use kdbprom::event::{Batch, Event, Op};
use kdbprom::proto::WriteRequest;
use kdbprom::registry::{Kind, Limits, Registry};
use prost::Message;
use std::fmt::Write;

fn registry() -> (Registry, Aggregator) {
    let reg = Registry::new(Limits::default());
    reg.declare("app_rows_total", "Rows loaded, by \\table\\\nper day.", Kind::Counter, &["table", "Source"], &[]).unwrap();
    reg.declare("app_queue_depth", "", Kind::Gauge, &[], &[]).unwrap();
    reg.declare("app_load_seconds", "Load time.", Kind::Histogram, &["table"], &[0.00001, 0.5, 1.0, 100000.0, 1e6]).unwrap();
    reg.declare("app_query_seconds", "Query \"time\".", Kind::Summary, &["user"], &[0.5, 0.99]).unwrap();
    reg.declare_with("app_native_seconds", "Native latency.", Kind::Histogram, &["table"], &[], Some(NativeConfig::default())).unwrap();
    let mut agg = Aggregator::new(1);
    for (t, src, v) in [("trade", "feed", 12345678.0), ("quo\"te", "", 0.5), ("back\\slash\nnewline", "é€", 1e21)] {
        let s = reg.series("app_rows_total", &[t, src]).unwrap();
        agg.apply(&reg, Event { series: s, op: Op::Inc, value: v });
    }
    agg.apply(&reg, Event { series: reg.by_name("app_queue_depth").unwrap(), op: Op::Set, value: -3.25 });
    let h = reg.series("app_load_seconds", &["trade"]).unwrap();
    agg.apply_batch(&reg, &Batch { series: h, values: vec![0.000001, 0.5, 0.75, 2.0, 5e5, 2e6] });
    let q = reg.series("app_query_seconds", &["alice"]).unwrap();
    agg.apply_batch(&reg, &Batch { series: q, values: vec![1.0, 2.0, 4.0, 8.0] });
    reg.series("app_query_seconds", &["bob"]).unwrap();
    let n = reg.series("app_native_seconds", &["trade"]).unwrap();
    agg.apply_batch(&reg, &Batch { series: n, values: vec![0.0, -0.002, 0.001, 0.0011, 0.0012, 0.0015, 0.004, 0.5, 3.0] });
    (reg, agg)
}

fn golden(name: &str, got: &str) {
    let path = format!("{}/tests/golden/{name}", env!("CARGO_MANIFEST_DIR"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e} (UPDATE_GOLDEN=1 writes it)"));
    assert_eq!(got, want, "{name} differs from the golden file");
}

#[test]
fn text_exposition_golden() {
    let (reg, mut agg) = registry();
    let consts = [("env".to_string(), "prod".to_string())];
    golden("session.prom", &text::encode(&agg.snapshot(&reg), &consts));
}

#[test]
fn remote_write_golden() {
    let (reg, mut agg) = registry();
    let consts = [
        ("env".to_string(), "prod".to_string()),
        ("instance".to_string(), "host:5010".to_string()),
        ("job".to_string(), "eod".to_string()),
    ];
    let reqs =
        remote_write::V1Encoder::default().encode(&agg.snapshot(&reg), &consts, 1_700_000_000_000, 10, remote_write::Values::Current);
    let mut out = String::new();
    for (i, r) in reqs.iter().enumerate() {
        let w = WriteRequest::decode(&snap::raw::Decoder::new().decompress_vec(&r.body).unwrap()[..]).unwrap();
        writeln!(out, "# request {i}: {} samples", r.samples).unwrap();
        for ts in &w.timeseries {
            let labels: Vec<String> = ts.labels.iter().map(|l| format!("{}={:?}", l.name, l.value)).collect();
            for s in &ts.samples {
                writeln!(out, "{{{}}} {:?} @{}", labels.join(", "), s.value, s.timestamp).unwrap();
            }
            for h in &ts.histograms {
                let spans =
                    |s: &[kdbprom::proto::BucketSpan]| s.iter().map(|s| format!("{}:{}", s.offset, s.length)).collect::<Vec<_>>().join(" ");
                writeln!(
                    out,
                    "{{{}}} histogram count={:?} sum={:?} schema={} zero_threshold={:?} zero_count={:?} positive=[{}] {:?} negative=[{}] {:?} @{}",
                    labels.join(", "),
                    h.count,
                    h.sum,
                    h.schema,
                    h.zero_threshold,
                    h.zero_count,
                    spans(&h.positive_spans),
                    h.positive_deltas,
                    spans(&h.negative_spans),
                    h.negative_deltas,
                    h.timestamp
                )
                .unwrap();
            }
        }
        for m in &w.metadata {
            writeln!(out, "# metadata {} type={} help={:?}", m.metric_family_name, m.r#type, m.help).unwrap();
        }
    }
    golden("session.rw.txt", &out);
}

#[test]
fn remote_write_2_golden() {
    use kdbprom::proto::v2;
    let (reg, mut agg) = registry();
    let consts = [
        ("env".to_string(), "prod".to_string()),
        ("instance".to_string(), "host:5010".to_string()),
        ("job".to_string(), "eod".to_string()),
    ];
    let reqs = kdbprom::encode::remote_write2::V2Encoder::default().encode(
        &agg.snapshot(&reg),
        &consts,
        1_700_000_000_000,
        10,
        remote_write::Values::Current,
    );
    let mut out = String::new();
    for (i, r) in reqs.iter().enumerate() {
        let w = v2::Request::decode(&snap::raw::Decoder::new().decompress_vec(&r.body).unwrap()[..]).unwrap();
        writeln!(out, "# request {i}: {} samples, {} symbols", r.samples, w.symbols.len()).unwrap();
        let sym = |r: u32| w.symbols[r as usize].as_str();
        for ts in &w.timeseries {
            let labels: Vec<String> = ts.labels_refs.chunks(2).map(|p| format!("{}={:?}", sym(p[0]), sym(p[1]))).collect();
            let m = ts.metadata.unwrap_or_default();
            let meta = format!("type={} help={:?} unit={:?}", m.r#type, sym(m.help_ref), sym(m.unit_ref));
            // Start timestamps are the series' creation time: only whether one is set is stable, and
            // whether rc.3's layout (TimeSeries field 6) holds the same value as rc.4's (3/17).
            let created = |start: i64| match ts.created_timestamp {
                0 => "none",
                c if c == start => "=start",
                _ => "DIFFERS",
            };
            for s in &ts.samples {
                let start = if s.start_timestamp > 0 { "set" } else { "none" };
                let created = created(s.start_timestamp);
                writeln!(out, "{{{}}} {:?} @{} start={start} created={created} {meta}", labels.join(", "), s.value, s.timestamp).unwrap();
            }
            for h in &ts.histograms {
                let spans = |s: &[v2::BucketSpan]| s.iter().map(|s| format!("{}:{}", s.offset, s.length)).collect::<Vec<_>>().join(" ");
                let start = if h.start_timestamp > 0 { "set" } else { "none" };
                let created = created(h.start_timestamp);
                writeln!(
                    out,
                    "{{{}}} histogram count={:?} sum={:?} schema={} zero_threshold={:?} zero_count={:?} positive=[{}] {:?} negative=[{}] {:?} @{} start={start} created={created} {meta}",
                    labels.join(", "),
                    h.count,
                    h.sum,
                    h.schema,
                    h.zero_threshold,
                    h.zero_count,
                    spans(&h.positive_spans),
                    h.positive_deltas,
                    spans(&h.negative_spans),
                    h.negative_deltas,
                    h.timestamp
                )
                .unwrap();
            }
        }
    }
    golden("session.rw2.txt", &out);
}
