//! Ring push alone (uncontended and with 4 threads), beside tikv `prometheus` `Histogram::observe`.

use criterion::{Criterion, criterion_group, criterion_main};
use kdbprom::event::{Event, Op};
use kdbprom::ring::Ring;
use std::hint::black_box;
use std::time::{Duration, Instant};

const CHUNK: u64 = 4096;

fn push(c: &mut Criterion) {
    let mut g = c.benchmark_group("ring_push");
    let ring = Ring::new(CHUNK as usize, 0);
    let ev = Event { series: 3, op: Op::Inc, value: 1.0 };
    g.bench_function("kdbprom_ring_push_uncontended", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters;
            while left > 0 {
                let n = left.min(CHUNK);
                let t = Instant::now();
                for _ in 0..n {
                    black_box(ring.push(black_box(ev)));
                }
                total += t.elapsed();
                ring.drain(usize::MAX, |e| {
                    black_box(e);
                });
                left -= n;
            }
            total
        })
    });
    let h = prometheus::Histogram::with_opts(prometheus::HistogramOpts::new("h", "h")).unwrap();
    g.bench_function("tikv_prometheus_histogram_observe", |b| b.iter(|| h.observe(black_box(0.25))));
    let shared = Ring::new(1 << 16, 0);
    g.bench_function("kdbprom_ring_push_4_threads_wall_per_event", |b| {
        b.iter_custom(|iters| {
            let per = (iters / 4).max(1);
            let stop = std::sync::atomic::AtomicBool::new(false);
            let t = Instant::now();
            std::thread::scope(|s| {
                s.spawn(|| {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        shared.drain(usize::MAX, |e| {
                            black_box(e);
                        });
                    }
                });
                let workers: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            for _ in 0..per {
                                black_box(shared.push(black_box(ev)));
                            }
                        })
                    })
                    .collect();
                for w in workers {
                    w.join().unwrap();
                }
                stop.store(true, std::sync::atomic::Ordering::Relaxed);
            });
            t.elapsed()
        })
    });
    g.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)); targets = push }
criterion_main!(benches);
