//! What issue 17's additions cost: reading the process collector's figures from /proc (the
//! flusher's work when a reading is due, at most once a second, never q's) and applying a 100-entry `.prom.collect` result (what one
//! collector costs q's main thread besides the user's function).

use criterion::{Criterion, criterion_group, criterion_main};
use kdbprom::agent::Agent;
use kdbprom::builtin::ProcessInfo;
use kdbprom::config::Config;
use kdbprom::registry::Kind;
use std::hint::black_box;
use std::time::Duration;

fn process_collector(c: &mut Criterion) {
    // A reading as the flusher takes it when one is due (its files kept open), and as init takes
    // its one reading (opening them).
    let mut r = kdbprom::process::Reader::new();
    c.bench_function("process_collector_read", |b| b.iter(|| black_box(r.read())));
    c.bench_function("process_collector_read_opening", |b| b.iter(|| black_box(kdbprom::process::read())));
}

fn collect_100(c: &mut Criterion) {
    let p = ProcessInfo { host: "h".into(), pid: 7, version: "4.1".into(), ..ProcessInfo::default() };
    let a = Agent::start(Config::default(), &p).unwrap();
    a.declare("bench_rows", "Rows.", Kind::Gauge, &["table"], &[]).unwrap();
    let rows: Vec<(Vec<String>, f64)> = (0..100).map(|i| (vec![format!("t{i:03}")], i as f64)).collect();
    c.bench_function("collect_apply_100_entries", |b| b.iter(|| a.collectors().apply(&a, "bench_rows", black_box(&rows)).unwrap()));
    a.stop().unwrap();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)); targets = process_collector, collect_100 }
criterion_main!(benches);
