//! The encoders under callgrind: `encode_cg <mode> <pushes>` makes the 10 k counters of
//! benches/encode_*.rs (`bench_requests_total{table,user}`) and encodes their snapshot `pushes`
//! times with one kept encoder. Run it at two push counts: the difference over the pushes is the
//! instructions a push costs (snapshot included), which load does not move as it moves times.
//!
//! Modes: `v1`, `v2` (remote write, 2,000 samples a request, snappy included), `text` (nothing
//! changed since the last push), `text_changed` (every value changed: 10 k increments a push
//! included), `text_oneshot` (`text::encode`).

use kdbprom::aggregate::Aggregator;
use kdbprom::encode::remote_write::{V1Encoder, Values};
use kdbprom::encode::remote_write2::V2Encoder;
use kdbprom::encode::text::{self, TextEncoder};
use kdbprom::event::{Event, Op, SeriesId};
use kdbprom::registry::{Kind, Limits, Registry};
use std::hint::black_box;

const SERIES: usize = 10_000;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let usage = "usage: encode_cg v1|v2|text|text_changed|text_oneshot <pushes>";
    let mode = args.get(1).expect(usage).as_str();
    let pushes: usize = args.get(2).expect(usage).parse().expect(usage);
    let reg = Registry::new(Limits { max_series: SERIES * 2, max_series_per_metric: SERIES, ..Limits::default() });
    reg.declare("bench_requests_total", "Requests.", Kind::Counter, &["table", "user"], &[]).unwrap();
    let mut agg = Aggregator::new(1);
    let ids: Vec<SeriesId> = (0..SERIES)
        .map(|i| reg.series("bench_requests_total", &[&format!("table{}", i % 100), &format!("user{}", i / 100)]).unwrap())
        .collect();
    for (i, &s) in ids.iter().enumerate() {
        agg.apply(&reg, Event { series: s, op: Op::Inc, value: (i * 37 % 1000) as f64 });
    }
    let consts = vec![("instance".to_string(), "host:5010".to_string()), ("job".to_string(), "bench".to_string())];
    let (mut v1, mut v2, mut t) = (V1Encoder::default(), V2Encoder::default(), TextEncoder::default());
    let mut bytes = 0;
    for _ in 0..pushes {
        if mode == "text_changed" {
            for &s in &ids {
                agg.apply(&reg, Event { series: s, op: Op::Inc, value: 1.0 });
            }
        }
        let snap = agg.snapshot(&reg);
        bytes += match mode {
            "v1" => v1.encode(&snap, &consts, 1_700_000_000_000, 2_000, Values::Current).iter().map(|r| r.body.len()).sum(),
            "v2" => v2.encode(&snap, &consts, 1_700_000_000_000, 2_000, Values::Current).iter().map(|r| r.body.len()).sum(),
            "text" | "text_changed" => t.encode(&snap, &[]).len(),
            "text_oneshot" => text::encode(&snap, &[]).len(),
            _ => panic!("{usage}"),
        };
        black_box(&snap);
    }
    println!("{pushes} pushes, {bytes} bytes");
}
