//! A 1,000-series Pushgateway push body: delimited protobuf (`io.prometheus.client.MetricFamily`)
//! against the text exposition, each with and without gzip, on two workloads: 1,000 counters
//! `{table,user}`, and a mix (700 counters, 100 gauges, 100 classic histograms of 10 buckets, 100
//! native histograms of schema 3 with ~40 populated buckets each). The body sizes are printed once.
//!
//! `protobuf` keeps its encoder between bodies, as the Pushgateway target does (the snapshot is the
//! same every time, so every series is copied from the last body); `protobuf_fresh_encoder` makes a
//! new one for each body, as the first push does; `text` is the one-shot `text::encode` and
//! `text_kept_encoder_no_value_changed` its kept counterpart.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kdbprom::aggregate::{Aggregator, NativeConfig};
use kdbprom::encode::{metric_family, text};
use kdbprom::event::{Event, Op};
use kdbprom::push::pushgateway::gzip;
use kdbprom::registry::{Kind, Limits, Registry};
use std::hint::black_box;
use std::time::Duration;

const SERIES: usize = 1_000;

fn counters() -> (Registry, Aggregator) {
    let reg = Registry::new(Limits { max_series: SERIES * 2, max_series_per_metric: SERIES, ..Limits::default() });
    reg.declare("bench_requests_total", "Requests.", Kind::Counter, &["table", "user"], &[]).unwrap();
    let mut agg = Aggregator::new(1);
    for i in 0..SERIES {
        let s = reg.series("bench_requests_total", &[&format!("table{}", i % 100), &format!("user{}", i / 100)]).unwrap();
        agg.apply(&reg, Event { series: s, op: Op::Inc, value: (i * 37 % 1000) as f64 });
    }
    (reg, agg)
}

fn mixed() -> (Registry, Aggregator) {
    let reg = Registry::new(Limits { max_series: SERIES * 2, max_series_per_metric: SERIES, ..Limits::default() });
    reg.declare("bench_requests_total", "Requests.", Kind::Counter, &["table", "user"], &[]).unwrap();
    reg.declare("bench_depth", "Depth.", Kind::Gauge, &["table"], &[]).unwrap();
    let bounds = [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0];
    reg.declare("bench_latency_seconds", "Latency.", Kind::Histogram, &["table"], &bounds).unwrap();
    reg.declare_with("bench_native_seconds", "Latency.", Kind::Histogram, &["table"], &[], Some(NativeConfig::default())).unwrap();
    let mut agg = Aggregator::new(1);
    let mut x = 0x1234_5678_u64;
    let mut latency = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        // 100 µs .. 1 s, log-uniform.
        1e-4 * 10f64.powf((x >> 11) as f64 / (1u64 << 53) as f64 * 4.0)
    };
    for i in 0..700 {
        let s = reg.series("bench_requests_total", &[&format!("table{}", i % 100), &format!("user{}", i / 100)]).unwrap();
        agg.apply(&reg, Event { series: s, op: Op::Inc, value: (i * 37 % 1000) as f64 });
    }
    for i in 0..100 {
        let t = format!("table{i}");
        let g = reg.series("bench_depth", &[&t]).unwrap();
        agg.apply(&reg, Event { series: g, op: Op::Set, value: i as f64 });
        for fam in ["bench_latency_seconds", "bench_native_seconds"] {
            let s = reg.series(fam, &[&t]).unwrap();
            for _ in 0..200 {
                agg.apply(&reg, Event { series: s, op: Op::Observe, value: latency() });
            }
        }
    }
    (reg, agg)
}

fn encode_pushgateway(c: &mut Criterion) {
    for (name, (reg, mut agg)) in [("counters", counters()), ("mixed", mixed())] {
        let snap = agg.snapshot(&reg);
        let labels = [("env".to_string(), "prod".to_string())];
        let mut enc = metric_family::FamilyEncoder::default();
        let (t, p) = (text::encode(&snap, &labels), enc.encode(&snap, &labels).to_vec());
        let (mut tz, mut pz) = (Vec::new(), Vec::new());
        gzip(t.as_bytes(), &mut tz);
        gzip(&p, &mut pz);
        eprintln!(
            "{name}: {} samples; bytes: text {}, protobuf {}, text+gzip {}, protobuf+gzip {}",
            snap.sample_count(),
            t.len(),
            p.len(),
            tz.len(),
            pz.len()
        );
        let mut g = c.benchmark_group(format!("pushgateway_body_1k_{name}"));
        g.throughput(Throughput::Elements(SERIES as u64));
        g.bench_function("text", |b| b.iter(|| black_box(text::encode(&snap, &labels).len())));
        g.bench_function("protobuf_fresh_encoder", |b| {
            b.iter(|| black_box(metric_family::FamilyEncoder::default().encode(&snap, &labels).len()))
        });
        let mut kept = text::TextEncoder::default();
        g.bench_function("text_kept_encoder_no_value_changed", |b| b.iter(|| black_box(kept.encode(&snap, &labels).len())));
        g.bench_function("protobuf", |b| b.iter(|| black_box(enc.encode(&snap, &labels).len())));
        let mut z = Vec::with_capacity(1 << 16);
        g.bench_function("text_gzip", |b| {
            b.iter(|| {
                z.clear();
                gzip(text::encode(&snap, &labels).as_bytes(), &mut z);
                black_box(z.len())
            })
        });
        g.bench_function("protobuf_gzip", |b| {
            b.iter(|| {
                z.clear();
                gzip(enc.encode(&snap, &labels), &mut z);
                black_box(z.len())
            })
        });
        g.finish();
    }
}

criterion_group! { name = benches; config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)); targets = encode_pushgateway }
criterion_main!(benches);
