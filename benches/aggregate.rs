//! Aggregation throughput on one core: a mix of counter, gauge and histogram events.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kdbprom::aggregate::Aggregator;
use kdbprom::event::{Event, Op};
use kdbprom::registry::{DEFAULT_BUCKETS, Kind, Limits, Registry};
use std::hint::black_box;
use std::time::Duration;

fn aggregate(c: &mut Criterion) {
    let reg = Registry::new(Limits::default());
    reg.declare("c_total", "", Kind::Counter, &["k"], &[]).unwrap();
    reg.declare("g", "", Kind::Gauge, &["k"], &[]).unwrap();
    reg.declare("h_seconds", "", Kind::Histogram, &["k"], &DEFAULT_BUCKETS).unwrap();
    let mut events = Vec::new();
    for i in 0..100u32 {
        let k = i.to_string();
        let (c, g, h) = (reg.series("c_total", &[&k]).unwrap(), reg.series("g", &[&k]).unwrap(), reg.series("h_seconds", &[&k]).unwrap());
        for j in 0..3_333u32 {
            let v = f64::from(j % 1000) * 1e-3;
            events.push(Event { series: c, op: Op::Inc, value: 1.0 });
            events.push(Event { series: g, op: Op::Set, value: v });
            events.push(Event { series: h, op: Op::Observe, value: v });
        }
    }
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
