//! The aggregation workload of benches/aggregate.rs and examples/aggregate_cg.rs: counter inc,
//! gauge set and 16-bucket histogram observe over 100 series each, 999,900 events in all.

use kdbprom::event::{Event, Op};
use kdbprom::registry::{DEFAULT_BUCKETS, Kind, Limits, Registry};

/// The flusher's drain applies at most this many events at a time (src/flusher.rs `SLICE`).
#[allow(dead_code)]
pub const SLICE: usize = 16_384;

/// The registry and the events, in the order they are applied: each series' 3,333 events of a
/// kind in a row (a 16 MB stream, read from memory).
pub fn workload() -> (Registry, Vec<Event>) {
    let (reg, series) = registry();
    let mut events = Vec::new();
    for &(c, g, h) in &series {
        for j in 0..3_333u32 {
            events.extend(triple(c, g, h, j));
        }
    }
    (reg, events)
}

/// One drain's slice, [`SLICE`] events (256 KB, in cache) that go round all 300 series as a busy
/// process's would, so consecutive events hit different series.
#[allow(dead_code)]
pub fn slice() -> (Registry, Vec<Event>) {
    let (reg, series) = registry();
    let mut events = Vec::with_capacity(SLICE);
    for j in 0.. {
        let (c, g, h) = series[j as usize % series.len()];
        events.extend(triple(c, g, h, j * 7));
        if events.len() >= SLICE {
            events.truncate(SLICE);
            return (reg, events);
        }
    }
    unreachable!()
}

fn registry() -> (Registry, Vec<(u32, u32, u32)>) {
    let reg = Registry::new(Limits::default());
    reg.declare("c_total", "", Kind::Counter, &["k"], &[]).unwrap();
    reg.declare("g", "", Kind::Gauge, &["k"], &[]).unwrap();
    reg.declare("h_seconds", "", Kind::Histogram, &["k"], &DEFAULT_BUCKETS).unwrap();
    let series = (0..100u32)
        .map(|i| {
            let k = i.to_string();
            (reg.series("c_total", &[&k]).unwrap(), reg.series("g", &[&k]).unwrap(), reg.series("h_seconds", &[&k]).unwrap())
        })
        .collect();
    (reg, series)
}

fn triple(c: u32, g: u32, h: u32, j: u32) -> [Event; 3] {
    let v = f64::from(j % 1000) * 1e-3;
    [
        Event { series: c, op: Op::Inc, value: 1.0 },
        Event { series: g, op: Op::Set, value: v },
        Event { series: h, op: Op::Observe, value: v },
    ]
}
