//! Aggregation under callgrind: `aggregate_cg <rounds>` applies the mixed workload of
//! benches/aggregate.rs (counter inc, gauge set, histogram observe over 100 series each, 999,900
//! events a round) `rounds` times. scripts/callgrind.sh runs it at two round counts; the difference
//! over the events is the instructions an event costs the flusher's apply.

use kdbprom::aggregate::Aggregator;
use kdbprom::event::{Event, Op};
use kdbprom::registry::{DEFAULT_BUCKETS, Kind, Limits, Registry};
use std::hint::black_box;

fn main() {
    let rounds: usize = std::env::args().nth(1).map_or(1, |s| s.parse().expect("rounds"));
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
    for _ in 0..rounds {
        for &e in &events {
            agg.apply(&reg, black_box(e));
        }
    }
    println!("{} events applied", agg.applied());
}
