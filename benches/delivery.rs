//! Delivery costs: the record call with the receiver down vs up (it must not notice), queue memory
//! per queued sample, spool replay (scan + verify into requests), samples per second, and init
//! with a spool directory full of other jobs' files.

use criterion::{Criterion, criterion_group, criterion_main};
use kdbprom::agent::Agent;
use kdbprom::builtin::ProcessInfo;
use kdbprom::config::Config;
use kdbprom::encode::remote_write::{V1Encoder, Values};
use kdbprom::event::Op;
use kdbprom::push::queue::{Queue, Queued};
use kdbprom::push::spool::{self, BodyKind as SpoolKind, Entry, Header};
use kdbprom::registry::Kind;
use std::hint::black_box;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

mod common;

/// A receiver on loopback that answers every request 204.
fn receiver() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || {
                let mut s = s;
                let mut buf = vec![0u8; 1 << 20];
                // One request per read is enough for kdbprom's small bodies on loopback.
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n").is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

fn agent(url: &str) -> Agent {
    let cfg = serde_json::json!({"interval_ms": 100, "instrument": false, "ring_capacity": 1 << 22,
        "remote_write": [{"url": url, "name": "bench", "queue": {"min_backoff_ms": 1, "max_backoff_ms": 5}}]});
    let a = Agent::start(Config::from_json(&cfg).unwrap(), &ProcessInfo { host: "h".into(), pid: 1, ..ProcessInfo::default() }).unwrap();
    a.declare("b_total", "", Kind::Counter, &["k"], &[]).unwrap();
    for i in 0..1000 {
        a.series("b_total", &[&i.to_string()]).unwrap();
    }
    a
}

/// p50 and p99 of single record calls, timed one by one.
fn percentiles(a: &Agent, sid: u32) -> (f64, f64) {
    let mut t: Vec<u64> = (0..200_000)
        .map(|_| {
            let s = Instant::now();
            black_box(a.record(black_box(sid), Op::Inc, 1.0).unwrap());
            s.elapsed().as_nanos() as u64
        })
        .collect();
    t.sort_unstable();
    (t[t.len() / 2] as f64, t[t.len() * 99 / 100] as f64)
}

fn record_down_vs_up(c: &mut Criterion) {
    let up = format!("http://127.0.0.1:{}/api/v1/write", receiver());
    let down =
        format!("http://127.0.0.1:{}/api/v1/write", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port());
    let mut g = c.benchmark_group("delivery_record");
    for (label, url) in [("receiver_up", up), ("receiver_down", down)] {
        let a = agent(&url);
        let sid = a.series("b_total", &["7"]).unwrap();
        // Let a few rounds run (and fail, when down) so the queue and the retries are busy.
        std::thread::sleep(Duration::from_millis(400));
        g.bench_function(label, |b| b.iter(|| black_box(a.record(black_box(sid), Op::Inc, 1.0).unwrap())));
        let (p50, p99) = percentiles(&a, sid);
        let st = a.stats();
        let c = st.target("bench").unwrap();
        eprintln!(
            "delivery_record/{label}: p50 {p50:.0} ns, p99 {p99:.0} ns (timer included); target: in {} sent {} queued {} retried {}",
            c.samples_in, c.sent, c.queued, c.retried
        );
        a.stop().unwrap();
    }
    g.finish();
}

fn queue_and_replay(c: &mut Criterion) {
    // Twenty rounds of the shared 10,000 counters, encoded as remote write and queued.
    let mut d = common::data();
    let snap = d.agg.snapshot(&d.reg);
    let consts = vec![("instance".to_string(), "h:1".to_string()), ("job".to_string(), "bench".to_string())];
    let mut enc = V1Encoder::default();
    let mut q = Queue::new(u64::MAX);
    let mut ts = 1_700_000_000_000;
    for _ in 0..20 {
        ts += 10_000;
        for r in enc.encode(&snap, &consts, ts, 2_000, Values::Current) {
            q.push(Queued { body: r.body, samples: r.samples as u64, ts_ms: ts, origin: None, v2: false });
        }
    }
    let per_request = std::mem::size_of::<Queued>() as f64;
    let bytes = q.bytes() as f64 + q.len() as f64 * per_request;
    eprintln!(
        "delivery_queue: {} samples in {} requests hold {:.0} bytes: {:.2} bytes per queued sample (bodies {:.2}, request records {:.3})",
        q.samples(),
        q.len(),
        bytes,
        bytes / q.samples() as f64,
        q.bytes() as f64 / q.samples() as f64,
        q.len() as f64 * per_request / q.samples() as f64
    );
    let dir = std::env::temp_dir().join(format!("kdbprom-bench-spool-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let entries: Vec<Entry> = q.take_all().into_iter().map(|r| Entry { body: r.body, samples: r.samples, ts_ms: r.ts_ms }).collect();
    let samples: u64 = entries.iter().map(|e| e.samples).sum();
    let header = Header {
        job: "bench".into(),
        instance: "h:1".into(),
        host: "h".into(),
        target: "bench".into(),
        kind: SpoolKind::RemoteWrite1,
        created_ms: 0,
    };
    let w = spool::write(&dir, &header, &entries, u64::MAX).unwrap();
    let mut g = c.benchmark_group("delivery_spool");
    g.throughput(criterion::Throughput::Elements(samples));
    g.bench_function("scan_and_verify_into_requests", |b| {
        b.iter(|| {
            let s = spool::scan(&dir, spool::Owner { job: "bench", host: "h", instance: "h:1" });
            let n: u64 = s.files.iter().flat_map(|f| &f.entries).map(|e| e.samples).sum();
            assert_eq!(n, samples);
            black_box(s)
        })
    });
    g.bench_function("write_with_fsync", |b| {
        let other = dir.join("w");
        std::fs::create_dir_all(&other).unwrap();
        b.iter(|| {
            let w = spool::write(&other, &header, &entries, u64::MAX).unwrap();
            std::fs::remove_file(&w.path).unwrap();
        })
    });
    g.finish();
    eprintln!("delivery_spool: file of {} bytes for {samples} samples", w.bytes);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Init (with its spool scan) and stop of an agent whose spool directory holds `n` files of
/// another job: the cost a shared state directory puts on `.prom.init`.
fn init_with_foreign_spool_files(c: &mut Criterion) {
    let p = ProcessInfo { host: "h".into(), pid: 7, version: "4.1".into(), ..ProcessInfo::default() };
    let mut g = c.benchmark_group("init_spool_scan");
    for n in [0usize, 1000] {
        let dir = std::env::temp_dir().join(format!("kdbprom-bench-init-{n}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..n {
            let h = Header {
                job: format!("other{}", i % 7),
                instance: "x:1".into(),
                host: kdbprom::builtin::local_host(),
                target: "prom".into(),
                kind: SpoolKind::RemoteWrite1,
                created_ms: i as i64,
            };
            let e = Entry { body: bytes::Bytes::from(vec![7u8; 200]), samples: 10, ts_ms: 0 };
            spool::write(&dir, &h, &[e], u64::MAX).unwrap();
        }
        let textfile = dir.join("out.prom");
        let cfg = serde_json::json!({"job": "bench", "spool": {"dir": dir}, "textfile": textfile});
        g.bench_function(format!("init_and_stop_{n}_foreign_files"), |b| {
            b.iter(|| {
                let a = Agent::start(Config::from_json(&cfg).unwrap(), &p).unwrap();
                black_box(a.stop().unwrap());
            })
        });
        g.bench_function(format!("scan_{n}_foreign_files"), |b| {
            b.iter(|| black_box(spool::scan(&dir, spool::Owner { job: "bench", host: "h", instance: "h" })))
        });
        let _ = std::fs::remove_dir_all(&dir);
    }
    g.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)); targets = record_down_vs_up, queue_and_replay, init_with_foreign_spool_files }
criterion_main!(benches);
