//! Aggregation throughput on one core: a mix of counter, gauge and histogram events, streamed
//! from memory and from one drain's slice in cache, beside the cost of only reading the events.

#[path = "common/mixed.rs"]
mod mixed;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kdbprom::aggregate::Aggregator;
use std::hint::black_box;
use std::time::Duration;

fn aggregate(c: &mut Criterion) {
    let mut g = c.benchmark_group("aggregate");
    let (reg, events) = mixed::workload();
    let mut agg = Aggregator::new(5);
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function("apply_1M_mixed_events", |b| {
        b.iter(|| {
            for &e in &events {
                agg.apply(&reg, black_box(e));
            }
        })
    });
    // The floor of the case above: the same 16 MB read, nothing applied.
    g.bench_function("read_1M_events_only", |b| b.iter(|| black_box(&events).iter().map(|e| e.value + f64::from(e.series)).sum::<f64>()));
    let (reg, slice) = mixed::slice();
    let mut agg = Aggregator::new(5);
    g.throughput(Throughput::Elements(slice.len() as u64));
    g.bench_function("apply_16k_slice_round_robin", |b| {
        b.iter(|| {
            for &e in &slice {
                agg.apply(&reg, black_box(e));
            }
        })
    });
    g.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)); targets = aggregate }
criterion_main!(benches);
