//! End-to-end measurements for scripts/bench.sh, with the real libkdbprom.so in the libe host:
//!
//! - `first-sample <prom port>`: ms from `.prom.init` to our first sample being queryable in Prometheus.
//! - `stop <pushgateway url> <remote-write url>`: `.prom.stop[]` wall time with 1,000 series, p50/p90/p99,
//!   and the final push's own time as its pipeline measured it.
//! - `memory`: resident bytes of the host with 100 k series, and per series.
//! - `steady <remote-write url> <seconds>`: pushes 1,000 series every second; CPU seconds per million
//!   samples delivered (compared with Prometheus agent mode by scripts/bench.sh).
//! - `replay <remote-write url>`: a previous run's spool of 100 rounds of 1,000 series, replayed by
//!   `.prom.init` into the receiver; samples per second from init until the queue is empty.

#[path = "../tests/common/mod.rs"]
mod common;
mod support;

use common::Host;
use std::time::{Duration, Instant};
use support::cpu;

fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/statm").unwrap().split(' ').nth(1).unwrap().parse::<u64>().unwrap() * 4096
}

fn init(h: &Host, keys: &[&str], vals: &[kdbplus::api::K]) {
    let _ = h.call("kdbprom_stop", &[h.id()]);
    let r = h.ok("kdbprom_init", &[h.dict(keys, vals), h.id()]);
    (h.r0)(r);
}

fn series(h: &Host, n: usize) {
    h.ok("kdbprom_declare", &[h.s("gauge"), h.s("e2e_value"), h.str("A gauge with many label values."), h.syms(&["label"]), h.id()]);
    for i in 0..n {
        let s = h.ok("kdbprom_series", &[h.s("e2e_value"), h.str(&format!("value{i}"))]);
        h.ok("kdbprom_set", &[s, h.j(i as i64)]);
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let h = common::host();
    let http = reqwest::blocking::Client::new();
    match args.get(1).map(String::as_str) {
        Some("first-sample") => {
            let port = &args[2];
            let mut ms = Vec::new();
            for run in 0..10 {
                let job = format!("first{run}_{}", std::process::id());
                let url = format!("http://127.0.0.1:{port}/api/v1/write");
                let t = Instant::now();
                init(h, &["job", "remote_write"], &[h.s(&job), h.dict(&["url"], &[h.str(&url)])]);
                let q = format!("kdb_info{{job=\"{job}\"}}");
                loop {
                    let v: serde_json::Value =
                        http.get(format!("http://127.0.0.1:{port}/api/v1/query")).query(&[("query", &q)]).send().unwrap().json().unwrap();
                    if v["data"]["result"].as_array().is_some_and(|a| !a.is_empty()) {
                        break;
                    }
                    assert!(t.elapsed() < Duration::from_secs(10), "never arrived");
                }
                ms.push(t.elapsed().as_secs_f64() * 1e3);
            }
            println!(
                "init -> first sample queryable in Prometheus: p50 {:.1} ms, max {:.1} ms (10 runs)",
                pct(&mut ms, 0.5),
                pct(&mut ms, 1.0)
            );
        }
        Some("stop") => {
            let (pg, rw) = (&args[2], &args[3]);
            // The same job every run, as a rerun batch job: its Pushgateway group is replaced, not added.
            for (label, keys) in [
                ("Prometheus (remote write)", vec!["remote_write"]),
                ("Pushgateway", vec!["pushgateway"]),
                ("both", vec!["remote_write", "pushgateway"]),
            ] {
                let (mut ms, mut put, mut ours) = (Vec::new(), Vec::new(), Vec::new());
                for _ in 0..50 {
                    let mut k = vec!["job", "interval_ms"];
                    let mut v = vec![h.s("stopbench"), h.j(86_400_000)];
                    for key in &keys {
                        k.push(key);
                        v.push(h.dict(&["url"], &[h.str(if *key == "pushgateway" { pg } else { rw })]));
                    }
                    init(h, &k, &v);
                    series(h, 1000);
                    // Let the push that init starts finish, as it would in a job that works for a while.
                    std::thread::sleep(Duration::from_millis(20));
                    let t = Instant::now();
                    let r = h.ok("kdbprom_stop", &[h.id()]);
                    ms.push(t.elapsed().as_secs_f64() * 1e3);
                    // The slowest target's own time for its final push, as its pipeline timed it:
                    // the rest of the stop is kdbprom's (wake-up, drain, snapshot, encode, join).
                    let pushed = h.dict_items(r).into_iter().find(|(k, _)| k == "pushed").expect("pushed").1;
                    let own = h
                        .dict_items(pushed)
                        .into_iter()
                        .map(|(_, o)| h.dict_items(o).into_iter().find(|(k, _)| k == "ms").map_or(0.0, |(_, v)| h.float(v)));
                    put.push(own.fold(0.0, f64::max));
                    ours.push(ms[ms.len() - 1] - put[put.len() - 1]);
                    (h.r0)(r);
                }
                println!(
                    "stop with 1,000 series, final push to {label}: p50 {:.2} ms, p90 {:.2} ms, p99 {:.2} ms (50 runs); \
                     the push itself p50 {:.2} ms, the rest (per run) p50 {:.2} ms, p90 {:.2} ms",
                    pct(&mut ms, 0.5),
                    pct(&mut ms, 0.9),
                    pct(&mut ms, 0.99),
                    pct(&mut put, 0.5),
                    pct(&mut ours, 0.5),
                    pct(&mut ours, 0.9)
                );
            }
        }
        Some("memory") => {
            let before = rss();
            init(
                h,
                &["job", "max_series", "max_series_per_metric", "textfile"],
                // A scratch file, never /dev/null: the textfile is replaced by a rename at every push.
                &[
                    h.s("mem"),
                    h.j(200_000),
                    h.j(200_000),
                    h.str(&std::env::temp_dir().join("kdbprom-e2e-memory.prom").display().to_string()),
                ],
            );
            series(h, 100_000);
            let t = h.ok("kdbprom_text", &[h.id()]);
            (h.r0)(t);
            let after = rss();
            println!(
                "100,000 series: host RSS {:.1} MiB ({:.1} MiB before init), {:.0} bytes per series",
                after as f64 / 1048576.0,
                before as f64 / 1048576.0,
                (after - before) as f64 / 1e5
            );
        }
        Some("steady") => {
            let (rw, secs) = (&args[2], args[3].parse::<u64>().unwrap());
            init(
                h,
                &["job", "interval_ms", "remote_write", "instrument"],
                &[h.s("steady"), h.j(1_000), h.dict(&["url"], &[h.str(rw)]), h.b(false)],
            );
            series(h, 1000);
            std::thread::sleep(Duration::from_secs(3));
            let stat = |h: &Host| {
                let d = h.ok("kdbprom_stats", &[h.id()]);
                let v = h.long_dict(d).into_iter().find(|(k, _)| k == "samples_sent").unwrap().1;
                (h.r0)(d);
                v
            };
            let (c0, s0) = (cpu(), stat(h));
            std::thread::sleep(Duration::from_secs(secs));
            let (c, s) = (cpu() - c0, stat(h) - s0);
            println!("kdbprom steady: {s} samples in {secs} s, {c:.3} CPU s, {:.3} CPU s per million samples", c / s as f64 * 1e6);
        }
        Some("replay") => {
            use kdbprom::encode::remote_write::{V1Encoder, Values};
            use kdbprom::push::spool::{self, BodyKind as SpoolKind, Entry, Header};
            let rw = &args[2];
            let dir = std::env::temp_dir().join(format!("kdbprom-e2e-replay-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            // Run 1's rounds, encoded as run 1 would have: 1,000 series, one round every 10 s
            // over the last 17 minutes (inside Prometheus's head block, so none is too old).
            let reg = kdbprom::registry::Registry::new(kdbprom::registry::Limits::default());
            reg.declare("e2e_replayed", "Replayed.", kdbprom::registry::Kind::Gauge, &["label"], &[]).unwrap();
            let mut agg = kdbprom::aggregate::Aggregator::new(1);
            for i in 0..1000 {
                let s = reg.series("e2e_replayed", &[&format!("value{i}")]).unwrap();
                agg.apply(&reg, kdbprom::event::Event { series: s, op: kdbprom::event::Op::Set, value: i as f64 });
            }
            let snap = agg.snapshot(&reg);
            let labels = vec![("job".to_string(), "e2e_replay".to_string()), ("instance".to_string(), "r:1".to_string())];
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64;
            let mut enc = V1Encoder::default();
            let entries: Vec<Entry> = (0..100)
                .flat_map(|r| {
                    let ts = now - 1_000_000 + r * 10_000;
                    enc.encode(&snap, &labels, ts, 2_000, Values::Current)
                        .into_iter()
                        .map(move |q| Entry { body: q.body, samples: q.samples as u64, ts_ms: ts })
                        .collect::<Vec<_>>()
                })
                .collect();
            let total: u64 = entries.iter().map(|e| e.samples).sum();
            let header = Header {
                job: "e2e_replay".into(),
                instance: "r:1".into(),
                host: kdbprom::builtin::local_host(),
                target: "prom".into(),
                kind: SpoolKind::RemoteWrite1,
                created_ms: now,
            };
            spool::write(&dir, &header, &entries, u64::MAX).unwrap();
            let t = Instant::now();
            init(
                h,
                &["job", "instance", "interval_ms", "spool", "remote_write", "instrument"],
                &[
                    h.s("e2e_replay"),
                    h.s("r:1"),
                    h.j(60_000),
                    h.dict(&["dir"], &[h.str(dir.to_str().unwrap())]),
                    h.dict(&["url", "name", "protocol"], &[h.str(rw), h.s("prom"), h.str("1.0")]),
                    h.b(false),
                ],
            );
            let sent = |h: &Host| {
                let d = h.ok("kdbprom_stats", &[h.id()]);
                let v = h.long_dict(d).into_iter().find(|(k, _)| k == "samples_sent").unwrap().1;
                (h.r0)(d);
                v as u64
            };
            while sent(h) < total && t.elapsed() < Duration::from_secs(60) {
                std::thread::sleep(Duration::from_millis(2));
            }
            let secs = t.elapsed().as_secs_f64();
            println!("kdbprom replay: {total} spooled samples into the receiver in {:.3} s: {:.0} samples/s", secs, total as f64 / secs);
            let _ = h.call("kdbprom_stop", &[h.id()]);
            let _ = std::fs::remove_dir_all(&dir);
        }
        _ => eprintln!("usage: e2e first-sample|stop|memory|steady|replay ..."),
    }
}
