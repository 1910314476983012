//! Encoders on 10 k series: text 0.0.4 beside tikv `prometheus` `TextEncoder`, `prometheus-client`
//! (OpenMetrics text) and metrics-rs `metrics-exporter-prometheus` on the same data, and
//! remote-write 1.0 protobuf + snappy in samples per second.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use kdbprom::aggregate::Aggregator;
use kdbprom::encode::{remote_write, text};
use kdbprom::event::{Event, Op};
use kdbprom::registry::{Kind, Limits, Registry};
use prometheus::Encoder as _;
use std::hint::black_box;
use std::time::Duration;

const SERIES: usize = 10_000;

fn encode(c: &mut Criterion) {
    let reg = Registry::new(Limits { max_series: SERIES * 2, max_series_per_metric: SERIES, ..Limits::default() });
    reg.declare("bench_requests_total", "Requests.", Kind::Counter, &["table", "user"], &[]).unwrap();
    let tikv = prometheus::Registry::new();
    let tc = prometheus::CounterVec::new(prometheus::Opts::new("bench_requests_total", "Requests."), &["table", "user"]).unwrap();
    tikv.register(Box::new(tc.clone())).unwrap();
    let mut pc = prometheus_client::registry::Registry::default();
    let pcf = prometheus_client::metrics::family::Family::<Vec<(String, String)>, prometheus_client::metrics::counter::Counter>::default();
    pc.register("bench_requests", "Requests.", pcf.clone());
    let mrs = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let mrs_handle = mrs.handle();
    let mut agg = Aggregator::new(1);
    for i in 0..SERIES {
        let (t, u) = (format!("table{}", i % 100), format!("user{}", i / 100));
        let s = reg.series("bench_requests_total", &[&t, &u]).unwrap();
        let v = (i * 37 % 1000) as u64;
        agg.apply(&reg, Event { series: s, op: Op::Inc, value: v as f64 });
        tc.with_label_values(&[&t, &u]).inc_by(v as f64);
        pcf.get_or_create(&vec![("table".to_string(), t.clone()), ("user".to_string(), u.clone())]).inc_by(v);
        metrics::with_local_recorder(&mrs, || metrics::counter!("bench_requests_total", "table" => t.clone(), "user" => u.clone()).increment(v));
    }
    let mut g = c.benchmark_group("encode_text_10k_series");
    g.throughput(Throughput::Elements(SERIES as u64));
    g.bench_function("kdbprom_snapshot_and_text", |b| {
        b.iter(|| {
            let snap = agg.snapshot(&reg);
            black_box(text::encode(&snap, &[]))
        })
    });
    g.bench_function("tikv_prometheus_gather_and_text_encoder", |b| {
        let enc = prometheus::TextEncoder::new();
        let mut buf = Vec::with_capacity(1 << 20);
        b.iter(|| {
            buf.clear();
            enc.encode(&tikv.gather(), &mut buf).unwrap();
            black_box(buf.len())
        })
    });
    g.bench_function("prometheus_client_openmetrics_text", |b| {
        b.iter(|| {
            let mut out = String::with_capacity(1 << 20);
            prometheus_client::encoding::text::encode(&mut out, &pc).unwrap();
            black_box(out.len())
        })
    });
    g.bench_function("metrics_exporter_prometheus_render", |b| b.iter(|| black_box(mrs_handle.render().len())));
    g.finish();
    let snap = agg.snapshot(&reg);
    assert_eq!(snap.sample_count(), SERIES);
    let consts = vec![("instance".to_string(), "host:5010".to_string()), ("job".to_string(), "bench".to_string())];
    let mut enc = remote_write::Encoder::default();
    let mut g = c.benchmark_group("encode_remote_write_10k_samples");
    g.throughput(Throughput::Elements(SERIES as u64));
    g.bench_function("kdbprom_protobuf_and_snappy_2000_per_request", |b| b.iter(|| black_box(enc.encode(&snap, &consts, 1_700_000_000_000, 2_000))));
    g.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)); targets = encode }
criterion_main!(benches);
