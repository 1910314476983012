//! The aggregation workload of benches/aggregate.rs and examples/aggregate_cg.rs: counter inc,
//! gauge set and 16-bucket histogram observe over 100 series each, 999,900 events in all.

use kdbprom::event::{Event, Op};
use kdbprom::registry::{DEFAULT_BUCKETS, Kind, Limits, Registry};

/// The registry and the events, in the order they are applied.
pub fn workload() -> (Registry, Vec<Event>) {
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
    (reg, events)
}
