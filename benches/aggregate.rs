//! Aggregation throughput on one core: a mix of counter, gauge and histogram events, streamed
//! from memory and from one drain's slice in cache, beside the cost of only reading the events.

#[path = "common/mixed.rs"]
mod mixed;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use kdbprom::aggregate::Aggregator;
use kdbprom::event::Event;
use kdbprom::registry::Registry;
use std::hint::black_box;
use std::time::Duration;

/// Applies `events` to one aggregator, as the flusher's drain does, event by event.
fn apply(g: &mut BenchmarkGroup<WallTime>, name: &str, (reg, events): &(Registry, Vec<Event>)) {
    let mut agg = Aggregator::new(5);
    g.throughput(Throughput::Elements(events.len() as u64));
    g.bench_function(name, |b| {
        b.iter(|| {
            for &e in events {
                agg.apply(reg, black_box(e));
            }
        })
    });
}

fn aggregate(c: &mut Criterion) {
    let mut g = c.benchmark_group("aggregate");
    let streamed = mixed::workload();
    apply(&mut g, "apply_1M_mixed_events", &streamed);
    // The floor of the case above: the same 16 MB read, nothing applied.
    g.bench_function("read_1M_events_only", |b| {
        b.iter(|| black_box(&streamed.1).iter().map(|e| e.value + f64::from(e.series)).sum::<f64>())
    });
    apply(&mut g, "apply_16k_slice_round_robin", &mixed::slice());
    g.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)); targets = aggregate }
criterion_main!(benches);
