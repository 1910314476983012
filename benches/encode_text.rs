//! Text encoding of 10 k series: kdbprom (snapshot + text 0.0.4) beside tikv `prometheus`
//! (gather + TextEncoder), `prometheus-client` (OpenMetrics text) and metrics-rs
//! `metrics-exporter-prometheus` (render), all holding the same values, in the same run.
//!
//! kdbprom's cases: the one-shot `text::encode` (what `.prom.text[]` does); the encoder kept
//! between bodies (`TextEncoder`, what the Pushgateway target keeps) with every value changed
//! since the last body (two aggregators of the same series, taken in turn: the cache's worst case
//! short of new series) and with no value changed; and the snapshot alone, the part of each
//! figure that is not text.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kdbprom::encode::text;
use prometheus::Encoder as _;
use std::hint::black_box;
use std::time::Duration;

fn encode_text(c: &mut Criterion) {
    let mut d = common::data();
    let mut other = common::other_values(&d);
    let mut g = c.benchmark_group("encode_text_10k_series");
    g.throughput(Throughput::Elements(common::SERIES as u64));
    g.bench_function("kdbprom_snapshot_and_text", |b| {
        b.iter(|| {
            let snap = d.agg.snapshot(&d.reg);
            black_box(text::encode(&snap, &[]).len())
        })
    });
    g.bench_function("kdbprom_snapshot_and_kept_encoder_all_values_changed", |b| {
        let mut enc = text::TextEncoder::default();
        let mut flip = false;
        b.iter(|| {
            flip = !flip;
            let agg = if flip { &mut d.agg } else { &mut other };
            let snap = agg.snapshot(&d.reg);
            black_box(enc.encode(&snap, &[]).len())
        })
    });
    g.bench_function("kdbprom_snapshot_and_kept_encoder_no_value_changed", |b| {
        let mut enc = text::TextEncoder::default();
        b.iter(|| {
            let snap = d.agg.snapshot(&d.reg);
            black_box(enc.encode(&snap, &[]).len())
        })
    });
    g.bench_function("kdbprom_snapshot_alone", |b| b.iter(|| black_box(d.agg.snapshot(&d.reg).families.len())));
    g.bench_function("tikv_prometheus_gather_and_text_encoder", |b| {
        let enc = prometheus::TextEncoder::new();
        let mut buf = Vec::with_capacity(1 << 20);
        b.iter(|| {
            buf.clear();
            enc.encode(&d.tikv.gather(), &mut buf).unwrap();
            black_box(buf.len())
        })
    });
    g.bench_function("prometheus_client_openmetrics_text", |b| {
        b.iter(|| {
            let mut out = String::with_capacity(1 << 20);
            prometheus_client::encoding::text::encode(&mut out, &d.pc).unwrap();
            black_box(out.len())
        })
    });
    g.bench_function("metrics_exporter_prometheus_render", |b| b.iter(|| black_box(d.mrs.render().len())));
    g.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)); targets = encode_text }
criterion_main!(benches);
