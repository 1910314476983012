//! Aggregation throughput on one core: a mix of counter, gauge and histogram events.

#[path = "common/mixed.rs"]
mod mixed;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kdbprom::aggregate::Aggregator;
use std::hint::black_box;
use std::time::Duration;

fn aggregate(c: &mut Criterion) {
    let (reg, events) = mixed::workload();
    let mut agg = Aggregator::new(5);
    let mut g = c.benchmark_group("aggregate");
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("apply_1M_mixed_events", |b| {
        b.iter(|| {
            for &e in &events {
                agg.apply(&reg, black_box(e));
            }
        })
    });
    g.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)); targets = aggregate }
criterion_main!(benches);
