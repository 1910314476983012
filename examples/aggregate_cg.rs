//! Aggregation under callgrind: `aggregate_cg <rounds>` applies the mixed workload of
//! benches/aggregate.rs (counter inc, gauge set, histogram observe over 100 series each, 999,900
//! events a round) `rounds` times. scripts/callgrind.sh runs it at two round counts; the difference
//! over the events is the instructions an event costs the flusher's apply.

#[path = "../benches/common/mixed.rs"]
mod mixed;

use kdbprom::aggregate::Aggregator;
use std::hint::black_box;

fn main() {
    let rounds: usize = std::env::args().nth(1).map_or(1, |s| s.parse().expect("rounds"));
    let (reg, events) = mixed::workload();
    let mut agg = Aggregator::new(5);
    for _ in 0..rounds {
        for &e in &events {
            agg.apply(&reg, black_box(e));
        }
    }
    println!("{} events applied", agg.applied());
}
