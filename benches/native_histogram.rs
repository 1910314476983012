//! Native histogram observe (schema 3, max 160 buckets) beside tikv `prometheus` `Histogram::observe`
//! with the 16 default classic buckets, on the same latency-like values (100 µs .. 10 s), in the
//! same run. Also kdbprom's classic histogram and the native one at schema 8 for reference. Prints
//! a direct ns-per-observe comparison and the ratio after the criterion groups.

#[path = "../tests/common/lognormal.rs"]
mod lognormal;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kdbprom::aggregate::{Histogram, NativeConfig, NativeHistogram};
use kdbprom::registry::DEFAULT_BUCKETS;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

const N: usize = 4096;

/// Lognormal-ish latencies around 5 ms (σ = 1.5 in log space), clamped to 100 µs .. 10 s, from a
/// fixed sequence: the same values for every run and every contender.
fn latencies() -> Vec<f64> {
    lognormal::lognormal(0x2545_f491_4f6c_dd1d, N, 1.5).into_iter().map(|v| v.clamp(1e-4, 10.0)).collect()
}

fn native(schema: i8) -> NativeHistogram {
    NativeHistogram::new(&NativeConfig { schema, zero_threshold: kdbprom::aggregate::native::DEFAULT_ZERO_THRESHOLD, max_buckets: 160 })
}

fn tikv() -> prometheus::Histogram {
    prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("h", "h").buckets(DEFAULT_BUCKETS.to_vec())).unwrap()
}

/// ns per observe over `rounds` passes of the values, best of 7 trials.
fn time(rounds: usize, mut f: impl FnMut(f64)) -> f64 {
    let vals = latencies();
    (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..rounds {
                for &v in &vals {
                    f(black_box(v));
                }
            }
            t.elapsed().as_nanos() as f64 / (rounds * N) as f64
        })
        .fold(f64::INFINITY, f64::min)
}

fn observe(c: &mut Criterion) {
    let vals = latencies();
    let mut g = c.benchmark_group("native_histogram");
    g.throughput(Throughput::Elements(N as u64));
    let mut h3 = native(3);
    g.bench_function("kdbprom_native_schema3_observe", |b| b.iter(|| vals.iter().for_each(|&v| h3.observe(black_box(v)))));
    assert_eq!(h3.schema(), 3, "no reduction within 160 buckets");
    let t = tikv();
    g.bench_function("tikv_prometheus_histogram_observe_16_buckets", |b| b.iter(|| vals.iter().for_each(|&v| t.observe(black_box(v)))));
    let mut classic = Histogram::new(Arc::from(DEFAULT_BUCKETS));
    g.bench_function("kdbprom_classic_observe_16_buckets", |b| b.iter(|| vals.iter().for_each(|&v| classic.observe(black_box(v)))));
    let mut h8 = native(8);
    g.bench_function("kdbprom_native_schema8_max160_observe", |b| b.iter(|| vals.iter().for_each(|&v| h8.observe(black_box(v)))));
    g.finish();
    println!("native_histogram: schema 8 with max 160 buckets settled at schema {} ({} buckets)", h8.schema(), h8.populated());

    // Direct comparison, interleaved twice so drift on a noisy machine hits both.
    let rounds = 2_000;
    let (mut nat, mut tik) = (f64::INFINITY, f64::INFINITY);
    for _ in 0..2 {
        let mut h = native(3);
        nat = nat.min(time(rounds, |v| h.observe(v)));
        black_box(h.count());
        let t = tikv();
        tik = tik.min(time(rounds, |v| t.observe(v)));
        black_box(t.get_sample_count());
    }
    println!(
        "native_histogram: kdbprom native (schema 3, max 160) {nat:.2} ns/observe, tikv Histogram::observe (16 buckets) {tik:.2} ns/observe, ratio {:.2}x faster (target >= 1.5x, <= 10 ns)",
        tik / nat
    );
}

criterion_group! { name = benches; config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)); targets = observe }
criterion_main!(benches);
