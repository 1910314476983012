//! CPU cost of one Pushgateway push of N series, measured in-process (user + system time of the
//! whole process, flusher included) over many pushes. Used by scripts/bench.sh beside python
//! prometheus_client's push_to_gateway on the same gateway.
//!
//! usage: push_cost <pushgateway url> [series=1000] [pushes=100]

mod support;

use kdbprom::agent::Agent;
use kdbprom::builtin::ProcessInfo;
use kdbprom::config::Config;
use kdbprom::event::Op;
use kdbprom::registry::Kind;
use support::cpu;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url = args.get(1).expect("pushgateway url");
    let n: usize = args.get(2).map_or(1000, |s| s.parse().unwrap());
    let pushes: usize = args.get(3).map_or(100, |s| s.parse().unwrap());
    let cfg = serde_json::json!({"job": "pushcost", "interval_ms": 86_400_000, "instrument": false, "pushgateway": {"url": url}});
    let a = Agent::start(Config::from_json(&cfg).unwrap(), &ProcessInfo::default()).unwrap();
    a.declare("bench_gauge", "A gauge with many label values.", Kind::Gauge, &["label"], &[]).unwrap();
    for i in 0..n {
        let s = a.series("bench_gauge", &[&format!("value{i}")]).unwrap();
        a.record(s, Op::Set, i as f64).unwrap();
    }
    a.push().unwrap(); // warm: connection and buffers
    // The idle flusher's own cost over the same wall time, to report the push alone.
    let (i0, w) = (cpu(), std::time::Instant::now());
    std::thread::sleep(std::time::Duration::from_millis(500));
    let idle_per_ms = (cpu() - i0) / w.elapsed().as_secs_f64() / 1e3;
    let (c0, t0) = (cpu(), std::time::Instant::now());
    let mut bytes = 0;
    for _ in 0..pushes {
        let o = a.push().unwrap();
        assert!(o.iter().all(|o| o.ok), "{o:?}");
        bytes = o[0].bytes;
    }
    let (c, t) = (cpu() - c0, t0.elapsed().as_secs_f64());
    let per = c * 1e3 / pushes as f64;
    let wall = t * 1e3 / pushes as f64;
    println!(
        "kdbprom push of {n} series (+built-ins, {bytes} bytes): {per:.3} ms CPU per push ({:.3} ms of it the idle flusher), {wall:.2} ms wall, over {pushes}",
        idle_per_ms * 1e3 * wall
    );
}
