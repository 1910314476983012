//! Soak: four recording threads for about a minute while the fault proxy in front of a real
//! Prometheus changes its fault every few seconds. Totals must be exact in the receiver, every
//! sample accounted for, and memory flat after warm-up.

mod faults;
mod servers;

use faults::{Fault, Proxy};
use kdbprom::agent::Agent;
use kdbprom::builtin::ProcessInfo;
use kdbprom::config::Config;
use kdbprom::event::Op;
use kdbprom::registry::Kind;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok()).unwrap()
}

#[test]
fn four_threads_under_rotating_faults_keep_exact_totals_and_flat_memory() {
    let prom = servers::prometheus(None);
    let proxy = Proxy::start(prom.port);
    let spool = servers::tmpdir("soak-spool");
    let cfg = serde_json::json!({
        "job": "soak", "instance": "s1", "interval_ms": 500, "exit_deadline_ms": 3000,
        "remote_write": [{"url": format!("{}/api/v1/write", proxy.url()), "name": "prom", "stale_markers": false,
                          "queue": {"min_backoff_ms": 20, "max_backoff_ms": 200}}],
        "spool": {"dir": spool},
    });
    let a = Agent::start(Config::from_json(&cfg).unwrap(), &ProcessInfo { host: "h".into(), pid: 1, ..ProcessInfo::default() }).unwrap();
    a.declare("soak_events_total", "", Kind::Counter, &["thread"], &[]).unwrap();
    a.declare("soak_latency_seconds", "", Kind::Histogram, &["thread"], &[0.001, 0.01, 0.1]).unwrap();
    let run = AtomicBool::new(true);
    let kept: Vec<AtomicU64> = (0..4).map(|_| AtomicU64::new(0)).collect();
    let faults = [
        Fault::Status(500, "storm".into()),
        Fault::Pass,
        Fault::Reset,
        Fault::Pass,
        Fault::RetryAfter(429, "1".into()),
        Fault::Pass,
        Fault::Hang,
        Fault::Pass,
        Fault::Refuse,
        Fault::Pass,
    ];
    let mut rss = Vec::new();
    let started = Instant::now();
    std::thread::scope(|s| {
        for (t, kept) in kept.iter().enumerate() {
            let (a, run) = (&a, &run);
            s.spawn(move || {
                let c = a.series("soak_events_total", &[&t.to_string()]).unwrap();
                let h = a.series("soak_latency_seconds", &[&t.to_string()]).unwrap();
                let mut i = 0u64;
                while run.load(Ordering::Relaxed) {
                    // The ring never blocks: a full ring drops and says so; the test counts what was taken.
                    if a.record(c, Op::Inc, 1.0).unwrap() {
                        kept.fetch_add(1, Ordering::Relaxed);
                    }
                    a.record(h, Op::Observe, (i % 100) as f64 * 1e-3).unwrap();
                    i += 1;
                    if i.is_multiple_of(64) {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
            });
        }
        for (n, f) in faults.iter().cycle().take(20).enumerate() {
            // Each fault holds 3 s and until a request met it (a refused connect leaves no request:
            // the 3 s alone), so every fault in the list was really applied.
            let (at, seen) = (Instant::now(), proxy.requests() as usize);
            proxy.set_fault(f.clone());
            let met = || *f == Fault::Refuse || proxy.log()[seen..].iter().any(|r| r.fault == *f);
            wait_until(&format!("a request under {f:?}"), Duration::from_secs(20), || at.elapsed() >= Duration::from_secs(3) && met());
            if n >= 3 {
                rss.push(rss_kib());
            }
        }
        proxy.set_fault(Fault::Pass);
        run.store(false, Ordering::Relaxed);
    });
    // Let the queue drain through a healthy receiver (a round made after the threads stopped is
    // delivered and nothing waits), then stop.
    let after = proxy.forwarded();
    wait_until("the queue drains", Duration::from_secs(30), || {
        proxy.forwarded() >= after + 2 && a.stats().target("prom").unwrap().queued == 0
    });
    let (st, pushed) = a.stop().unwrap();
    let c = st.target("prom").unwrap();
    assert!(c.balanced(), "{c:?}");
    assert_eq!((c.queued, c.spooled, c.failed_total()), (0, 0, 0), "a healthy receiver at the end takes everything: {c:?} {pushed:?}");
    assert!(c.retried > 0, "the faults made it retry: {c:?}");
    // The receiver's totals equal what the test counted itself, per thread.
    let rows = servers::query(prom.port, "last_over_time(soak_events_total[10m])");
    for (t, k) in kept.iter().enumerate() {
        assert_eq!(servers::value(&rows, &[("thread", &t.to_string())]), k.load(Ordering::Relaxed) as f64, "thread {t}");
    }
    // Every sample the library says it sent is in Prometheus, no more, no less.
    assert_eq!(
        servers::matrix(prom.port, "{job=\"soak\"}").iter().map(|(_, v)| v.len() as u64).sum::<u64>(),
        c.sent,
        "receiver's sample count vs samples_sent"
    );
    let (first, last) = (rss[0], *rss.last().unwrap());
    eprintln!(
        "soak: {:?}, rss after warm-up {first} KiB, at the end {last} KiB, {} samples sent, {} retried",
        started.elapsed(),
        c.sent,
        c.retried
    );
    assert!(last < first + 16 * 1024, "memory flat after warm-up: {rss:?}");
}
