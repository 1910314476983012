//! Delivery under faults, proven against real receivers: the real .so in the libe host pushes
//! through the fault proxy (tests/faults) to a real Prometheus or Pushgateway, and every scenario
//! checks what the receiver holds against counts the test keeps itself, then the accounting
//! identity `samples_in = sent + failed + queued + spooled` on the final stats.
//!
//! The identity alone proves nothing (the library keeps it by construction), so each figure is also
//! held against what the test knows without the library: the rounds it made (series × pushes), the
//! request bodies the fault proxy logged (decoded here: [`faults::witness`]), and the spool files
//! read back and decoded.

mod common;
mod faults;
mod servers;

use common::life::{Outcome, Stats, outcomes, parse_stats, wait_until};
use common::{Host, host, lock, rw};
use faults::{Fault, Proxy};
use kdbplus::api::K;
use servers::query;
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const INSTANCE: &str = "delivery-host:1";

// ---------------------------------------------------------------------------------------------
// The library through its exports.

fn stats(h: &Host) -> Stats {
    let d = h.ok("kdbprom_stats", &[h.id()]);
    parse_stats(h, d)
}

/// `.prom.stop[]`: the final stats plus the final push's outcomes.
fn stop(h: &Host) -> Stats {
    let d = h.ok("kdbprom_stop", &[h.id()]);
    parse_stats(h, d)
}

/// `.prom.init` with `job`, a fixed `instance` and `extra` keys; stops a previous agent first.
fn init(h: &Host, job: &str, extra: &[(&str, K)]) {
    let _ = h.call("kdbprom_stop", &[h.id()]);
    let mut keys = vec!["job", "instance"];
    let mut vals = vec![h.s(job), h.s(INSTANCE)];
    for (k, v) in extra {
        keys.push(k);
        vals.push(*v);
    }
    let r = h.ok("kdbprom_init", &[h.dict(&keys, &vals), h.id()]);
    (h.r0)(r);
}

fn push(h: &Host) -> HashMap<String, Outcome> {
    let d = h.ok("kdbprom_push", &[h.id()]);
    outcomes(h, d)
}

fn gauge(h: &Host, name: &str) {
    h.ok("kdbprom_declare", &[h.s("gauge"), h.s(name), h.str("A test gauge."), h.id(), h.id()]);
}

fn set(h: &Host, name: &str, v: f64) {
    h.ok("kdbprom_set", &[h.s(name), h.f(v)]);
}

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// Samples in the remote-write spool files in `dir`, counted by decoding each entry's body (not
/// from the count the file stores).
fn spool_file_samples(dir: &std::path::Path) -> u64 {
    use kdbprom::push::spool::{self, BodyKind};
    let mut n = 0;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "spool") {
            continue;
        }
        let f = spool::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        let ct = match f.header.kind {
            BodyKind::RemoteWrite1 => "application/x-protobuf",
            BodyKind::RemoteWrite2 => "application/x-protobuf;proto=io.prometheus.write.v2.Request",
            BodyKind::Pushgateway => panic!("a Pushgateway spool file in {}", dir.display()),
        };
        for entry in &f.entries {
            let seen = faults::Seen {
                method: "POST".into(),
                path: String::new(),
                status: 0,
                body_len: entry.body.len(),
                body: entry.body.to_vec(),
                headers: [("content-type".to_string(), ct.to_string())].into(),
                fault: Fault::Pass,
                written: None,
                at: Instant::now(),
            };
            n += seen.rw_samples();
        }
    }
    n
}

/// Where the rounds of a test with no interval rounds (`interval_ms` a day) come from: init,
/// each `.prom.push[]` and the final push.
const NO_INTERVAL_ROUNDS: i64 = 86_400_000;

/// The longest `.prom.stop[]` may take past `exit_deadline_ms` in these tests: the agent's own
/// margin for draining, the spool's write and joining the flusher (`Agent::stop`). A stop that
/// ignored the deadline would be late by at least a round deadline (1 s here).
const STOP_SLACK: Duration = Duration::from_millis(500);

// ---------------------------------------------------------------------------------------------
// What the receivers hold.

/// Every sample Prometheus holds for job `job` in the last hour, counted from the raw data.
fn received(port: u16, job: &str) -> i64 {
    servers::matrix(port, &format!("{{job=\"{job}\"}}")).iter().map(|(_, v)| v.len() as i64).sum()
}

/// The raw samples of the one series `sel` selects, over the last hour.
fn raw(port: u16, sel: &str) -> Vec<(i64, f64)> {
    let m = servers::matrix(port, sel);
    assert!(m.len() <= 1, "{sel} selects one series: {m:?}");
    m.into_iter().next().map(|(_, v)| v).unwrap_or_default()
}

/// The samples of a gauge declared right after init, less the 0 the round at init may carry:
/// that round runs on the flusher while the test declares, and a gauge declared but not yet set
/// reads 0.
fn after_declare(port: u16, sel: &str) -> Vec<(i64, f64)> {
    raw(port, sel).into_iter().skip_while(|s| s.1 == 0.0).collect()
}

/// Values in time order, consecutive repeats collapsed.
fn runs(samples: &[(i64, f64)]) -> Vec<f64> {
    let mut out: Vec<f64> = Vec::new();
    for (_, v) in samples {
        if out.last() != Some(v) {
            out.push(*v);
        }
    }
    out
}

fn assert_time_ordered(samples: &[(i64, f64)]) {
    assert!(samples.windows(2).all(|w| w[0].0 < w[1].0), "timestamps strictly increase: {samples:?}");
}

/// The Pushgateway's `/metrics` sample lines (series text, value) of group job=`job`.
fn pgw_group(port: u16, job: &str) -> Vec<(String, f64)> {
    let text = servers::http().get(format!("http://127.0.0.1:{port}/metrics")).send().unwrap().text().unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && l.contains(&format!("job=\"{job}\"")))
        .map(|l| {
            let (s, v) = l.rsplit_once(' ').unwrap();
            (s.to_string(), v.parse().unwrap())
        })
        .collect()
}

fn pgw_value(lines: &[(String, f64)], name: &str) -> Option<f64> {
    let hits: Vec<_> = lines.iter().filter(|(s, _)| s.starts_with(&format!("{name}{{"))).collect();
    assert!(hits.len() <= 1, "{name} in {lines:?}");
    hits.first().map(|(_, v)| *v)
}

// ---------------------------------------------------------------------------------------------

#[test]
fn an_outage_leaves_no_gap_and_every_sample_is_accounted() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    let proxy = Proxy::start(prom.port);
    let job = "d_outage";
    let url = format!("{}/api/v1/write", proxy.url());
    // interval 1.5 s: a failing round gives up after 1.5 s (the round deadline) and auto rounds
    // run between the manual pushes; each carries the value set last, so values repeat in runs.
    init(h, job, &[("interval_ms", h.j(1_500)), ("remote_write", rw(h, &url, "prom", &[("stale_markers", h.b(false))]))]);
    gauge(h, "t_seq");
    let plan = [
        Fault::Pass,
        Fault::Pass,
        Fault::Status(500, "storm".into()),
        Fault::Reset,
        Fault::RetryAfter(429, "1".into()),
        Fault::Hang,
        Fault::Status(500, "storm again".into()),
        Fault::Pass,
        Fault::Pass,
        Fault::Pass,
    ];
    let n = plan.len();
    let mut outage: Option<(i64, i64)> = None;
    for (i, fault) in plan.iter().enumerate() {
        let v = (i + 1) as f64;
        let failing = *fault != Fault::Pass;
        if failing && outage.is_none() {
            outage = Some((now_ms(), 0));
        }
        if !failing && let Some((s, 0)) = outage {
            outage = Some((s, now_ms()));
        }
        proxy.set_fault(fault.clone());
        set(h, "t_seq", v);
        let o = push(h);
        assert_eq!(o["prom"].ok, !failing, "push {} under {fault:?}: {o:?}", i + 1);
    }
    let (outage_start, outage_end) = outage.unwrap();
    let fin = stop(h);
    assert!(fin.pushed["prom"].ok, "{:?}", fin.pushed);
    // The faults really were applied.
    let log = proxy.log();
    for (what, seen) in [
        ("500", log.iter().any(|s| s.status == 500)),
        ("429", log.iter().any(|s| s.status == 429)),
        ("reset", log.iter().any(|s| s.fault == Fault::Reset)),
        ("hang", log.iter().any(|s| s.fault == Fault::Hang)),
    ] {
        assert!(seen, "no {what} in the proxy log");
    }

    // What Prometheus holds: every value 1..N, each once as a run, in time order, and no hole in
    // time across the outage (rounds are at most one interval or one round deadline apart).
    let t = after_declare(prom.port, &format!("t_seq{{job=\"{job}\"}}"));
    assert_time_ordered(&t);
    let want: Vec<f64> = (1..=n).map(|i| i as f64).collect();
    assert_eq!(runs(&t), want, "every value once, in order: {t:?}");
    let gap = t.windows(2).map(|w| w[1].0 - w[0].0).max().unwrap();
    assert!(outage_end - outage_start > 6_000, "the outage lasted {} ms", outage_end - outage_start);
    eprintln!("outage {} ms, largest gap {gap} ms, {} samples of t_seq", outage_end - outage_start, t.len());
    assert!(gap <= 2_500, "largest gap between samples {gap} ms over an outage of {} ms: {t:?}", outage_end - outage_start);
    assert!(t.iter().filter(|(ts, _)| (outage_start..outage_end).contains(ts)).count() >= 5, "{t:?}");

    // Every sample taken in arrived; nothing failed, waits or was spooled.
    let p = &fin.targets["prom"];
    p.assert_identity();
    let got = received(prom.port, job);
    assert_eq!(got, p.sent, "receiver count vs samples_sent: {p:?}");
    assert_eq!(p.samples_in, got, "{p:?}");
    assert_eq!((p.failed_total(), p.queued, p.spooled), (0, 0, 0), "{p:?}");
    assert!(p.retried > 0, "{p:?}");
    assert_eq!(fin.top["samples_sent"], p.sent);
    // The same figures from the request bodies the proxy logged: no round was dropped, so every
    // sample taken in reached the proxy at least once and was answered 2xx once.
    let w = faults::witness(&proxy.log());
    eprintln!("outage witness {w:?}");
    assert_eq!(p.samples_in as u64, w.seen, "samples_in vs distinct samples the proxy received: {p:?} {w:?}");
    assert_eq!(w.never_delivered, 0, "{w:?}");
    assert_eq!(p.sent as u64, w.delivered_samples, "samples_sent vs samples in requests answered 2xx: {p:?} {w:?}");
    assert_eq!(w.delivered, w.delivered_samples, "nothing was delivered twice: {w:?}");
    assert_eq!(p.retried as u64, w.retried_samples + w.resent_samples, "retried = the retries' samples + the 1.0 resend: {p:?} {w:?}");
}

#[test]
fn a_full_queue_drops_the_oldest_and_counts_them_exactly() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    let proxy = Proxy::start(prom.port);
    let url = format!("{}/api/v1/write", proxy.url());
    let cfg = |queue: K| rw(h, &url, "prom", &[("stale_markers", h.b(false)), ("queue", queue)]);

    // A probe run measures one round's samples: the series Prometheus shows for the job after a
    // push (every series has one sample per round), same declarations, same target name.
    let probe = "d_qfull_probe";
    init(h, probe, &[("interval_ms", h.j(60_000)), ("remote_write", cfg(h.dict(&["max_samples_per_send"], &[h.j(2_000)])))]);
    gauge(h, "t_seq");
    set(h, "t_seq", 0.0);
    let a = push(h);
    let b = push(h);
    let round = query(prom.port, &format!("count({{job=\"{probe}\"}})"))[0].1 as i64;
    assert!(a["prom"].ok && b["prom"].ok, "{a:?} {b:?}");
    assert_eq!((a["prom"].samples, b["prom"].samples), (round, round), "one round = one sample per series");
    let _ = stop(h);

    // Room for three rounds.
    let job = "d_qfull";
    let probe_requests = proxy.requests() as usize;
    let cap = 3 * round;
    init(
        h,
        job,
        &[("interval_ms", h.j(1_000)), ("remote_write", cfg(h.dict(&["capacity", "max_samples_per_send"], &[h.j(cap), h.j(cap)])))],
    );
    gauge(h, "t_seq");
    set(h, "t_seq", 0.0);
    assert!(push(h)["prom"].ok);
    assert_eq!(query(prom.port, &format!("count({{job=\"{job}\"}})"))[0].1 as i64, round, "same round size as the probe");
    proxy.set_fault(Fault::Status(503, "down".into()));
    let k = 6;
    for i in 1..=k {
        set(h, "t_seq", i as f64);
        let o = push(h);
        assert!(!o["prom"].ok, "{o:?}");
    }
    let during = stats(h).targets["prom"].clone();
    during.assert_identity();
    assert!(during.queued <= cap, "{during:?}");
    proxy.set_fault(Fault::Pass);
    set(h, "t_seq", (k + 1) as f64);
    assert!(push(h)["prom"].ok);
    let fin = stop(h);
    assert!(fin.pushed["prom"].ok, "{:?}", fin.pushed);

    // The rounds that arrived: the pre-outage 0s, the newest outage rounds (at most the queue's
    // three), then k+1. Every older outage value is missing, oldest first.
    let t = raw(prom.port, &format!("t_seq{{job=\"{job}\"}}"));
    assert_time_ordered(&t);
    eprintln!("queue_full: round {round} samples, t_seq as received {:?}", t.iter().map(|s| s.1).collect::<Vec<_>>());
    let out: Vec<f64> = t.iter().map(|(_, v)| *v).filter(|v| (1.0..=k as f64).contains(v)).collect();
    assert!((2..=3).contains(&out.len()), "the queue held three rounds, the recovery round may push one out: {t:?}");
    assert_eq!(*out.last().unwrap(), k as f64, "the newest outage round arrived: {t:?}");
    let first = out[0] as usize;
    assert!(first >= k - 2 && first > 1, "only the newest outage rounds arrive: {t:?}");
    let mut want = vec![0.0];
    want.extend((first..=k + 1).map(|i| i as f64));
    assert_eq!(runs(&t), want, "a contiguous newest suffix: {t:?}");

    let p = &fin.targets["prom"];
    p.assert_identity();
    p.assert_failed_only(&["queue_full"]);
    let got = received(prom.port, job);
    assert_eq!(got, p.sent, "{p:?}");
    assert_eq!(p.failed("queue_full"), p.samples_in - got, "{p:?}");
    assert!(p.failed("queue_full") >= (k as i64 - 3) * round, "at least {} rounds dropped: {p:?}", k - 3);
    assert_eq!(p.failed("queue_full") % round, 0, "whole rounds are dropped: {p:?}");
    assert_eq!((p.queued, p.spooled), (0, 0));
    // From the proxy's log: what was sent is what the requests answered 2xx carried; a dropped
    // round the proxy saw refused never came back. (Interval rounds run during the outage, so the
    // number of rounds dropped unseen is not known to the test: queue_full is bounded below here,
    // exactly by the identity above.)
    let w = faults::witness(&proxy.log()[probe_requests..]);
    eprintln!("queue_full witness {w:?}");
    assert_eq!(p.sent as u64, w.delivered_samples, "{p:?} {w:?}");
    assert_eq!(w.delivered, w.delivered_samples, "nothing delivered twice: {w:?}");
    assert!(p.failed("queue_full") as u64 >= w.never_delivered, "{p:?} {w:?}");
    assert!(p.samples_in as u64 >= w.seen, "{p:?} {w:?}");
}

#[test]
fn old_samples_are_dropped_at_the_age_limit() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    let proxy = Proxy::start(prom.port);
    let url = format!("{}/api/v1/write", proxy.url());
    let job = "d_age";
    let limit = 1_500;
    let queue = h.dict(&["sample_age_limit_ms", "max_backoff_ms"], &[h.j(limit), h.j(100)]);
    // No interval rounds: every round is one the test made, so the failed samples are counted from
    // the test's pushes (a failing round retries its request until the age limit drops it, and
    // the round ends there).
    init(
        h,
        job,
        &[
            ("interval_ms", h.j(NO_INTERVAL_ROUNDS)),
            ("remote_write", rw(h, &url, "prom", &[("stale_markers", h.b(false)), ("queue", queue)])),
        ],
    );
    gauge(h, "t_seq");
    set(h, "t_seq", 0.0);
    assert!(push(h)["prom"].ok);
    proxy.set_fault(Fault::Status(503, "down".into()));
    let outage_start = now_ms();
    let k = 3;
    let mut last_set = 0;
    for i in 1..=k {
        last_set = now_ms();
        set(h, "t_seq", i as f64);
        assert!(!push(h)["prom"].ok);
    }
    // Every round holding 1..k-1 was made before `last_set`; hold the outage until those are
    // older than the limit. Ages are checked again before every retry, so nothing older goes out.
    let hold = limit + 300;
    let wait = (last_set + hold - now_ms()).max(0) as u64;
    std::thread::sleep(Duration::from_millis(wait));
    let recovered = now_ms();
    proxy.set_fault(Fault::Pass);
    set(h, "t_seq", (k + 1) as f64);
    assert!(push(h)["prom"].ok);
    let fin = stop(h);
    assert!(fin.pushed["prom"].ok);

    let t = raw(prom.port, &format!("t_seq{{job=\"{job}\"}}"));
    assert_time_ordered(&t);
    eprintln!(
        "age_limit: t_seq as received (age at recovery, value) {:?}",
        t.iter().map(|(ts, v)| (recovered - ts, *v)).collect::<Vec<_>>()
    );
    for (ts, v) in &t {
        assert!(!(1.0..k as f64).contains(v), "value {v} (set over {hold} ms before recovery) arrived: {t:?}");
        if *ts >= outage_start && *ts < recovered {
            // Sent after `recovered` and no older than the limit when sent.
            assert!(recovered - ts <= limit, "a sample {} ms old at recovery arrived: {t:?}", recovered - ts);
        }
    }
    assert_eq!(t.first().map(|s| s.1), Some(0.0));
    assert_eq!(t.last().map(|s| s.1), Some((k + 1) as f64));

    let p = &fin.targets["prom"];
    p.assert_identity();
    p.assert_failed_only(&["age_limit"]);
    let got = received(prom.port, job);
    assert_eq!(got, p.sent, "{p:?}");
    assert!(p.failed("age_limit") > 0, "{p:?}");
    assert_eq!(p.failed("age_limit"), p.samples_in - got, "{p:?}");
    assert_eq!((p.queued, p.spooled), (0, 0));
    // The test's own count: k failing pushes, each one round of one sample per series (the
    // series Prometheus shows for the job); and the proxy saw exactly those refused, never 2xx.
    let round = query(prom.port, &format!("count({{job=\"{job}\"}})"))[0].1 as i64;
    assert_eq!(p.failed("age_limit"), k as i64 * round, "{k} rounds of {round} samples: {p:?}");
    let w = faults::witness(&proxy.log());
    eprintln!("age_limit witness {w:?}");
    assert_eq!(p.failed("age_limit") as u64, w.never_delivered, "{p:?} {w:?}");
    assert_eq!(p.samples_in as u64, w.seen, "every round reached the proxy: {p:?} {w:?}");
    assert_eq!(p.sent as u64, w.delivered_samples, "{p:?} {w:?}");
    assert_eq!(p.retried as u64, w.retried_samples + w.resent_samples, "{p:?} {w:?}");
}

#[test]
fn stale_markers_end_series_at_stop_and_on_remove() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    let job = "d_stale";
    let url = format!("http://127.0.0.1:{}/api/v1/write", prom.port);
    init(h, job, &[("interval_ms", h.j(60_000)), ("remote_write", rw(h, &url, "prom", &[]))]);
    h.ok("kdbprom_declare", &[h.s("gauge"), h.s("t_stale"), h.str("Labelled."), h.syms(&["k"]), h.id()]);
    let sa = h.ok("kdbprom_series", &[h.s("t_stale"), h.str("a")]);
    let sb = h.ok("kdbprom_series", &[h.s("t_stale"), h.str("b")]);
    let (ida, idb) = (h.long(sa), h.long(sb));
    h.ok("kdbprom_set", &[h.j(ida), h.f(1.0)]);
    h.ok("kdbprom_set", &[h.j(idb), h.f(2.0)]);
    assert!(push(h)["prom"].ok);
    let sel = format!("t_stale{{job=\"{job}\"}}");
    let ks = |rows: &[servers::Row]| rows.iter().map(|(l, v)| (l["k"].clone(), *v)).collect::<Vec<_>>();
    let mut now = ks(&query(prom.port, &sel));
    now.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(now, vec![("a".to_string(), 1.0), ("b".to_string(), 2.0)]);

    h.ok("kdbprom_remove", &[h.j(ida)]);
    h.ok("kdbprom_set", &[h.j(idb), h.f(3.0)]);
    assert!(push(h)["prom"].ok);
    assert_eq!(ks(&query(prom.port, &sel)), vec![("b".to_string(), 3.0)], "the removed series ends at the next push");
    assert!(!query(prom.port, &format!("{{job=\"{job}\"}}")).is_empty());

    let fin = stop(h);
    assert!(fin.pushed["prom"].ok, "{:?}", fin.pushed);
    assert_eq!(query(prom.port, &format!("{{job=\"{job}\"}}")), vec![], "every series of the job ends at stop");
    let mut last = ks(&query(prom.port, &format!("last_over_time({sel}[10m])")));
    last.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(last, vec![("a".to_string(), 1.0), ("b".to_string(), 3.0)], "a look back still finds the last values");

    // Each series that ever existed got exactly one stale marker (the removed one at its removal,
    // the rest at stop); Prometheus counts stale markers as no samples.
    let series = servers::matrix(prom.port, &format!("{{job=\"{job}\"}}")).len() as i64;
    let p = &fin.targets["prom"];
    p.assert_identity();
    assert_eq!((p.failed_total(), p.queued, p.spooled), (0, 0, 0), "{p:?}");
    assert_eq!(p.samples_in, p.sent);
    assert_eq!(received(prom.port, job) + series, p.sent, "values + one stale marker per series: {p:?}");
}

#[test]
fn stop_with_a_hung_receiver_returns_within_the_exit_deadline() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    let proxy = Proxy::start(prom.port);
    let dir = servers::tmpdir("spool");
    let job = "d_hung";
    let url = format!("{}/api/v1/write", proxy.url());
    init(
        h,
        job,
        &[
            ("interval_ms", h.j(1_000)),
            ("exit_deadline_ms", h.j(1_000)),
            ("remote_write", rw(h, &url, "prom", &[])),
            ("spool", h.dict(&["dir"], &[h.str(dir.to_str().unwrap())])),
        ],
    );
    gauge(h, "t_seq");
    set(h, "t_seq", 1.0);
    assert!(push(h)["prom"].ok);
    proxy.set_fault(Fault::Hang);
    set(h, "t_seq", 2.0);
    // Let an interval round hang first: stop must supersede it.
    let n = proxy.requests();
    assert!(proxy.wait_requests(n + 1, Duration::from_secs(3)), "an interval round reaches the hung receiver");
    let t = Instant::now();
    let fin = stop(h);
    let took = t.elapsed();
    assert!(took <= Duration::from_millis(1_000) + STOP_SLACK, "stop took {took:?} with exit_deadline_ms 1000");
    assert!(took >= Duration::from_millis(500), "the final push gave the hung receiver time: {took:?}");
    eprintln!("stop with a hung receiver took {took:?}");
    assert!(!fin.pushed["prom"].ok, "{:?}", fin.pushed);
    assert!(fin.pushed["prom"].message.contains("spooled to"), "{:?}", fin.pushed);
    let files: Vec<_> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "spool")).collect();
    assert_eq!(files.len(), 1, "one spool file in {}: {files:?}", dir.display());

    let p = &fin.targets["prom"];
    p.assert_identity();
    assert_eq!(p.failed_total(), 0, "{p:?}");
    assert_eq!(p.queued, 0, "{p:?}");
    assert_eq!(p.spooled, p.samples_in - p.sent, "{p:?}");
    assert!(p.spooled > 0 && p.spool_bytes > 0, "{p:?}");
    // Prometheus holds exactly what was sent before the hang.
    assert_eq!(received(prom.port, job), p.sent, "{p:?}");
    // Spooled: what the spool file holds, decoded here; sent: what the proxy saw answered 2xx.
    assert_eq!(p.spooled as u64, spool_file_samples(&dir), "{p:?}");
    let w = faults::witness(&proxy.log());
    assert_eq!(p.sent as u64, w.delivered_samples, "{p:?} {w:?}");
    drop(proxy);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn retry_after_http_date_is_honoured() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    let proxy = Proxy::start(prom.port);
    let job = "d_retry_date";
    let url = format!("{}/api/v1/write", proxy.url());
    // A 5 s round deadline leaves room for a wait of up to 3 s within the round.
    init(
        h,
        job,
        &[("interval_ms", h.j(5_000)), ("remote_write", rw(h, &url, "prom", &[("stale_markers", h.b(false)), ("protocol", h.str("1.0"))]))],
    );
    gauge(h, "t_seq");
    set(h, "t_seq", 1.0);
    assert!(push(h)["prom"].ok);
    // An HTTP-date has whole seconds: round up, so the receiver asks for at least 2 s.
    let date_s = (SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64() + 2.0).ceil() as u64;
    let date = UNIX_EPOCH + Duration::from_secs(date_s);
    let before = proxy.requests() as usize;
    proxy.set_fault(Fault::RetryAfter(429, httpdate::fmt_http_date(date)));
    set(h, "t_seq", 2.0);
    let o = std::thread::scope(|s| {
        let helper = s.spawn(|| {
            // After the first 429, the receiver is back.
            assert!(proxy.wait_requests(before as u64 + 1, Duration::from_secs(5)));
            proxy.set_fault(Fault::Pass);
        });
        let o = push(h);
        helper.join().unwrap();
        o
    });
    assert!(o["prom"].ok && o["prom"].status == 204, "{o:?}");
    assert_eq!(o["prom"].attempts, 2, "{o:?}");
    let log = proxy.log();
    let (first, next) = (&log[before], &log[before + 1]);
    assert_eq!(first.status, 429);
    assert_eq!((next.status, next.header("retry-attempt")), (204, Some("1")));
    let waited = next.at - first.at;
    // What the date asked, from when the proxy had the first request (the 429 was answered a
    // moment after, so the library waits a little less, then sends a little later).
    let first_wall = SystemTime::now() - first.at.elapsed();
    let asked = date.duration_since(first_wall).unwrap_or_default();
    eprintln!("retry-after date: asked {asked:?}, waited {waited:?}");
    assert!(waited >= Duration::from_millis(1_800), "next request {waited:?} after the 429");
    assert!(waited >= asked.saturating_sub(Duration::from_millis(100)), "waited {waited:?}, the date asked {asked:?}");
    assert!(waited <= asked + Duration::from_millis(600), "waited {waited:?}, the date asked {asked:?}");
    let fin = stop(h);
    assert!(fin.pushed["prom"].ok);
    let t = after_declare(prom.port, &format!("t_seq{{job=\"{job}\"}}"));
    assert_eq!(runs(&t), vec![1.0, 2.0], "{t:?}");
    let p = &fin.targets["prom"];
    p.assert_identity();
    assert_eq!((p.failed_total(), p.queued, p.spooled), (0, 0, 0), "{p:?}");
    assert_eq!(received(prom.port, job), p.sent, "{p:?}");
    assert_eq!(p.samples_in, p.sent);
    // 1.0 here: with auto, the fallback resend of the first request would count as retried too.
    assert_eq!(p.retried, o["prom"].samples, "the one retried request: {p:?}");
}

#[test]
fn a_garbage_200_counts_as_sent_for_remote_write_1() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    let proxy = Proxy::start(prom.port);
    let job = "d_garbage";
    let url = format!("{}/api/v1/write", proxy.url());
    init(h, job, &[("interval_ms", h.j(60_000)), ("remote_write", rw(h, &url, "prom", &[("stale_markers", h.b(false))]))]);
    gauge(h, "t_seq");
    set(h, "t_seq", 1.0);
    assert!(push(h)["prom"].ok);
    let before_count = received(prom.port, job);
    let before = proxy.requests() as usize;
    proxy.set_fault(Fault::Garbage200);
    set(h, "t_seq", 2.0);
    let o = push(h);
    // Documented: remote-write 1.0 has no written-count headers, so any 2xx is success.
    assert!(o["prom"].ok && o["prom"].status == 200 && o["prom"].attempts == 1, "{o:?}");
    let garbage = o["prom"].samples;
    let log = proxy.log();
    assert_eq!(log.len(), before + 1, "one request, not retried");
    assert_eq!((log[before].status, &log[before].fault), (200, &Fault::Garbage200));
    assert_eq!(received(prom.port, job), before_count, "nothing reached Prometheus");
    proxy.set_fault(Fault::Pass);
    set(h, "t_seq", 3.0);
    assert!(push(h)["prom"].ok);
    let round = query(prom.port, &format!("count({{job=\"{job}\"}})"))[0].1 as i64;
    assert_eq!(garbage, round, "the garbage round had one sample per series");
    let fin = stop(h);
    assert!(fin.pushed["prom"].ok);

    // The round at init may carry t_seq = 0 or 1; value 2 went only to the garbage answer.
    let t = after_declare(prom.port, &format!("t_seq{{job=\"{job}\"}}"));
    assert_eq!(runs(&t), vec![1.0, 3.0], "the garbage round never arrived: {t:?}");
    assert_eq!(t.iter().filter(|s| s.1 == 3.0).count(), 2, "the push after it and the final push: {t:?}");
    let p = &fin.targets["prom"];
    p.assert_identity();
    assert_eq!((p.failed_total(), p.queued, p.spooled), (0, 0, 0), "{p:?}");
    assert_eq!(p.samples_in, p.sent);
    assert_eq!(p.sent, received(prom.port, job) + round, "sent = what Prometheus holds + the garbage round: {p:?}");
    let w = faults::witness(&proxy.log());
    assert_eq!(p.sent as u64, w.delivered_samples, "the 2xx answers' samples, the garbage one included: {p:?} {w:?}");
}

#[test]
fn pushgateway_outage_counts_rounds_as_deadline_and_recovers() {
    let _g = lock();
    let h = host();
    let pgw = servers::pushgateway();
    let proxy = Proxy::start(pgw.port);
    let job = "d_pgw";
    // Text bodies: the test counts the sample lines the proxy logged (protobuf is tests/pushgateway_formats.rs).
    init(h, job, &[("interval_ms", h.j(1_000)), ("pushgateway", h.dict(&["url", "format"], &[h.str(&proxy.url()), h.str("text")]))]);
    gauge(h, "t_seq");
    set(h, "t_seq", 1.0);
    let o = push(h);
    assert!(o["pushgateway"].ok, "{o:?}");
    // One round's samples, as the gateway holds them (less its own push_time_seconds and
    // push_failure_time_seconds).
    let group = |port| pgw_group(port, job).into_iter().filter(|(s, _)| !s.starts_with("push_")).collect::<Vec<_>>();
    let round = group(pgw.port).len() as i64;
    assert_eq!(o["pushgateway"].samples, round, "{o:?}");
    assert_eq!(pgw_value(&group(pgw.port), "t_seq"), Some(1.0));

    // Two failing manual rounds. Each starts right after an interval round was delivered (so the
    // next interval round waits behind it), and the receiver is back as soon as it returns (so
    // the interval round that follows succeeds on its next attempt).
    let mut failed_rounds = 0;
    for v in [2.0, 3.0] {
        let n = proxy.forwarded();
        wait_until("an interval round delivered", Duration::from_secs(3), || proxy.forwarded() > n);
        proxy.set_fault(Fault::Status(500, "gateway down".into()));
        set(h, "t_seq", v);
        let o = push(h);
        proxy.set_fault(Fault::Pass);
        assert!(!o["pushgateway"].ok && o["pushgateway"].status == 500, "{o:?}");
        failed_rounds += 1;
    }
    let n = proxy.forwarded();
    wait_until("an interval round delivered", Duration::from_secs(3), || proxy.forwarded() > n);
    assert_eq!(pgw_value(&group(pgw.port), "t_seq"), Some(3.0), "the newest state after recovery");
    set(h, "t_seq", 4.0);
    assert!(push(h)["pushgateway"].ok);
    assert_eq!(pgw_value(&group(pgw.port), "t_seq"), Some(4.0));
    let fin = stop(h);
    assert!(fin.pushed["pushgateway"].ok, "{:?}", fin.pushed);
    assert_eq!(pgw_value(&group(pgw.port), "t_seq"), Some(4.0));
    assert_eq!(group(pgw.port).len() as i64, round, "same series at stop");

    eprintln!("pushgateway: statuses {:?}", proxy.log().iter().map(|s| s.status).collect::<Vec<_>>());
    let p = &fin.targets["pushgateway"];
    p.assert_identity();
    p.assert_failed_only(&["deadline"]);
    assert_eq!(p.failed("deadline"), failed_rounds * round, "two failed rounds of {round} samples: {p:?}");
    assert_eq!((p.queued, p.spooled), (0, 0));
    assert_eq!(p.samples_in, p.sent + failed_rounds * round);
    // What was sent is what the PUTs answered 2xx carried, counted from their bodies.
    let log = proxy.log();
    let delivered: u64 = log.iter().filter(|s| s.ok()).map(|s| s.text_samples()).sum();
    assert_eq!(p.sent as u64, delivered, "{p:?}");
}

/// `queue.sample_age_limit_ms` holds for a request that is already being retried: one that grows
/// older than the limit while the receiver fails is dropped (`age_limit`), not sent when the
/// receiver comes back, as Prometheus' own remote-write queue does on every attempt.
#[test]
fn a_request_retried_past_the_age_limit_is_dropped_not_sent() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    let proxy = Proxy::start(prom.port);
    let job = "d_age_retry";
    let url = format!("{}/api/v1/write", proxy.url());
    let limit = 1_000;
    let queue = h.dict(&["sample_age_limit_ms", "max_backoff_ms"], &[h.j(limit), h.j(100)]);
    // No interval rounds (a 30 s round deadline): the request keeps being retried well past the
    // 1 s limit, and every round is one the test made.
    init(
        h,
        job,
        &[
            ("interval_ms", h.j(NO_INTERVAL_ROUNDS)),
            ("remote_write", rw(h, &url, "prom", &[("stale_markers", h.b(false)), ("queue", queue)])),
        ],
    );
    gauge(h, "t_seq");
    set(h, "t_seq", 0.0);
    assert!(push(h)["prom"].ok);
    let before = proxy.requests();
    proxy.set_fault(Fault::Status(503, "down".into()));
    set(h, "t_seq", 1.0);
    let set_at = now_ms();
    let (o, back_at) = std::thread::scope(|s| {
        let helper = s.spawn(|| {
            assert!(proxy.wait_requests(before + 1, Duration::from_secs(3)));
            // Back 2 s after the value was set: twice the limit.
            std::thread::sleep(Duration::from_millis((set_at + 2 * limit - now_ms()).max(0) as u64));
            proxy.set_fault(Fault::Pass);
            now_ms()
        });
        let o = push(h);
        (o, helper.join().unwrap())
    });
    assert!(back_at - set_at >= 2 * limit);
    let fin = stop(h);
    let t = raw(prom.port, &format!("t_seq{{job=\"{job}\"}}"));
    let late: Vec<_> = t.iter().filter(|(ts, v)| *v == 1.0 && back_at - ts > limit).collect();
    assert!(
        late.is_empty(),
        "samples older than sample_age_limit_ms {limit} when the receiver came back {back_at} were sent: {late:?}; push: {o:?}"
    );
    let p = &fin.targets["prom"];
    p.assert_identity();
    p.assert_failed_only(&["age_limit"]);
    assert_eq!(p.failed("age_limit"), p.samples_in - received(prom.port, job), "{p:?}");
    assert!(p.failed("age_limit") > 0, "{p:?}");
    // The test's own count: one failing push of one round (a sample per series Prometheus shows
    // for the job); the proxy saw its request refused, retried, and never answered 2xx.
    let round = query(prom.port, &format!("count({{job=\"{job}\"}})"))[0].1 as i64;
    assert_eq!(p.failed("age_limit"), round, "{p:?}");
    let log = proxy.log();
    let refused: Vec<_> = log.iter().filter(|s| s.status == 503).collect();
    assert!(refused.len() >= 2 && refused.iter().skip(1).all(|s| s.is_retry()), "retried while refused: {refused:?}");
    assert!(refused.iter().all(|s| s.rw_samples() == round as u64), "each attempt carries the round: {refused:?}");
    let w = faults::witness(&log);
    eprintln!("age_limit retry witness {w:?}, {} attempts", refused.len());
    assert_eq!(p.failed("age_limit") as u64, w.never_delivered, "{p:?} {w:?}");
    assert_eq!(p.samples_in as u64, w.seen, "{p:?} {w:?}");
    assert_eq!(p.sent as u64, w.delivered_samples, "{p:?} {w:?}");
    assert_eq!(p.retried as u64, w.retried_samples + w.resent_samples, "{p:?} {w:?}");
}

/// A `Retry-After` in the past is no wait at all; one a day ahead is taken as 5 minutes: no request
/// reaches the receiver in the meantime, the rounds say why, and at stop the queue goes to the
/// spool, so nothing is lost and nothing is silent.
#[test]
fn retry_after_in_the_past_retries_at_once_and_one_far_ahead_is_capped_and_spooled() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    let proxy = Proxy::start(prom.port);
    let spool = servers::tmpdir("retry-far");
    let job = "d_retry_far";
    let url = format!("{}/api/v1/write", proxy.url());
    init(
        h,
        job,
        &[
            ("interval_ms", h.j(60_000)),
            ("exit_deadline_ms", h.j(1_000)),
            ("spool", h.dict(&["dir"], &[h.str(spool.to_str().unwrap())])),
            ("remote_write", rw(h, &url, "prom", &[("stale_markers", h.b(false)), ("protocol", h.str("1.0"))])),
        ],
    );
    gauge(h, "t_seq");
    wait_until("the init push", Duration::from_secs(5), || stats(h).targets["prom"].sent > 0);
    // In the past: the next attempt follows at once (min backoff, not a wait).
    let past = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(1_000_000_000));
    let before = proxy.requests() as usize;
    proxy.set_fault(Fault::RetryAfter(503, past));
    let p = &proxy;
    let o = std::thread::scope(|s| {
        s.spawn(|| {
            p.wait_requests(before as u64 + 1, Duration::from_secs(5));
            p.set_fault(Fault::Pass);
        });
        push(h)
    });
    assert!(o["prom"].ok, "{o:?}");
    let log = proxy.log();
    let gap = log[before + 1].at - log[before].at;
    assert!(gap < Duration::from_millis(500), "a Retry-After in the past is no wait: {gap:?}");
    // A day ahead: capped at 5 minutes, remembered across rounds.
    proxy.set_fault(Fault::RetryAfter(429, "86400".into()));
    set(h, "t_seq", 1.0);
    assert!(!push(h)["prom"].ok);
    let asked = proxy.requests();
    set(h, "t_seq", 2.0);
    let o = push(h);
    assert!(!o["prom"].ok && o["prom"].message.contains("Retry-After"), "{o:?}");
    assert_eq!(proxy.requests(), asked, "no request while the receiver asked for quiet");
    let t = Instant::now();
    let fin = stop(h);
    assert!(t.elapsed() <= Duration::from_millis(1_000) + STOP_SLACK, "stop within the exit deadline: {:?}", t.elapsed());
    assert_eq!(proxy.requests(), asked, "not even the final push");
    let p = &fin.targets["prom"];
    p.assert_identity();
    assert_eq!((p.failed_total(), p.queued), (0, 0), "{p:?}");
    assert!(p.spooled > 0 && p.spooled == p.samples_in - p.sent, "everything unsent is spooled: {p:?}");
    assert_eq!(p.spooled as u64, spool_file_samples(&spool), "the spool file holds what was counted spooled: {p:?}");
    let w = faults::witness(&proxy.log());
    assert_eq!(p.sent as u64, w.delivered_samples, "{p:?} {w:?}");
}

/// The receiver itself dies (SIGKILL) and comes back on the same port with its data: the rounds
/// made while it was gone wait in the queue and arrive in order, with no gap.
#[test]
fn a_receiver_killed_and_restarted_gets_every_round_in_order() {
    let _g = lock();
    let h = host();
    let mut prom = servers::prometheus(None);
    let job = "d_restart";
    let url = format!("http://127.0.0.1:{}/api/v1/write", prom.port);
    init(h, job, &[("interval_ms", h.j(1_000)), ("remote_write", rw(h, &url, "prom", &[("stale_markers", h.b(false))]))]);
    gauge(h, "t_seq");
    set(h, "t_seq", 1.0);
    assert!(push(h)["prom"].ok);
    prom.kill_and_restart(|| {
        for i in 2..=4 {
            set(h, "t_seq", i as f64);
            assert!(!push(h)["prom"].ok, "the receiver is gone");
        }
    });
    set(h, "t_seq", 5.0);
    wait_until("the queue drains", Duration::from_secs(20), || push(h)["prom"].ok && stats(h).targets["prom"].queued == 0);
    let fin = stop(h);
    let t = after_declare(prom.port, &format!("t_seq{{job=\"{job}\"}}"));
    assert_time_ordered(&t);
    assert_eq!(runs(&t), vec![1.0, 2.0, 3.0, 4.0, 5.0], "{t:?}");
    let p = &fin.targets["prom"];
    p.assert_identity();
    assert_eq!((p.failed_total(), p.queued, p.spooled), (0, 0, 0), "{p:?}");
    assert_eq!(received(prom.port, job), p.sent, "{p:?}");
}

/// `.prom.stop[]` while a round to a hung Pushgateway is still in flight: that round is aborted,
/// its state is superseded by the final one (counted, not left "queued" forever), and the final
/// state is given up within the exit deadline (a Pushgateway state is never spooled).
#[test]
fn stop_aborting_a_hung_pushgateway_round_leaves_nothing_unaccounted() {
    let _g = lock();
    let h = host();
    let pgw = servers::pushgateway();
    let proxy = Proxy::start(pgw.port);
    proxy.set_fault(Fault::Hang);
    let spool = servers::tmpdir("pgw-abort");
    let job = "d_pgw_abort";
    init(
        h,
        job,
        &[
            ("interval_ms", h.j(60_000)),
            ("exit_deadline_ms", h.j(1_000)),
            ("spool", h.dict(&["dir"], &[h.str(spool.to_str().unwrap())])),
            ("pushgateway", h.dict(&["url", "format"], &[h.str(&proxy.url()), h.str("text")])),
        ],
    );
    // The round started at init hangs: it holds the target when stop comes.
    assert!(proxy.wait_requests(1, Duration::from_secs(5)));
    let t = Instant::now();
    let fin = stop(h);
    let took = t.elapsed();
    assert!(took <= Duration::from_millis(1_000) + STOP_SLACK, "{took:?}");
    // The final state hangs too, until the final push's deadline (1 s less the spool's 250 ms).
    assert!(took >= Duration::from_millis(500), "the hung gateway was given time: {took:?}");
    let p = &fin.targets["pushgateway"];
    p.assert_identity();
    assert_eq!(p.queued, 0, "nothing is left waiting after stop: {p:?}");
    assert_eq!(p.sent, 0);
    assert_eq!(p.spooled, 0, "a Pushgateway state is not spooled: {p:?}");
    assert!(p.samples_in > 0 && p.failed("deadline") == p.samples_in, "both states given up and counted: {p:?}");
    // The test's count: the init state and the final state, as the proxy holds their bodies (both hung).
    let log = proxy.log();
    eprintln!("hung pushgateway: {} requests, samples {:?}", log.len(), log.iter().map(|s| s.text_samples()).collect::<Vec<_>>());
    assert_eq!(log.len(), 2, "the init round's request and the final one: {log:?}");
    assert_eq!(p.failed("deadline") as u64, log.iter().map(|s| s.text_samples()).sum::<u64>(), "{p:?}");
    let note = &fin.pushed["pushgateway"].message;
    assert!(note.contains("not spooled"), "the outcome says so: {note}");
    assert!(std::fs::read_dir(&spool).unwrap().next().is_none(), "nothing written to the spool directory");
    proxy.set_fault(Fault::Pass);
}

/// `queue_full` counted exactly from the test's own rounds: with no interval rounds and a receiver
/// that asks for a day of quiet (`Retry-After`, capped at 5 minutes and remembered), each push
/// queues one round and sends nothing, so the queue (room for three rounds) pushes out the oldest
/// rounds one by one. At stop the three newest go to the spool. Expected figures: rounds made ×
/// the samples of one round as the spool file holds it (decoded), the proxy's log for what was sent.
#[test]
fn queue_full_counts_exactly_the_rounds_pushed_out() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    let proxy = Proxy::start(prom.port);
    let url = format!("{}/api/v1/write", proxy.url());
    let cfg = |queue: K| rw(h, &url, "prom", &[("stale_markers", h.b(false)), ("protocol", h.str("1.0")), ("queue", queue)]);
    // A probe run measures one round (the series Prometheus shows after a push).
    let probe = "d_qexact_probe";
    init(h, probe, &[("interval_ms", h.j(NO_INTERVAL_ROUNDS)), ("remote_write", cfg(h.dict(&["max_samples_per_send"], &[h.j(5_000)])))]);
    gauge(h, "t_seq");
    set(h, "t_seq", 0.0);
    assert!(push(h)["prom"].ok);
    let round = query(prom.port, &format!("count({{job=\"{probe}\"}})"))[0].1 as i64;
    let _ = stop(h);

    let spool = servers::tmpdir("qexact");
    let job = "d_qexact";
    // Room for three rounds and a little (a round after a failure may carry a few more series),
    // never four.
    let cap = 3 * round + round / 2;
    let first_request = proxy.requests() as usize;
    init(
        h,
        job,
        &[
            ("interval_ms", h.j(NO_INTERVAL_ROUNDS)),
            ("exit_deadline_ms", h.j(1_000)),
            ("spool", h.dict(&["dir"], &[h.str(spool.to_str().unwrap())])),
            ("remote_write", cfg(h.dict(&["capacity", "max_samples_per_send"], &[h.j(cap), h.j(cap)]))),
        ],
    );
    gauge(h, "t_seq");
    set(h, "t_seq", 0.0);
    assert!(push(h)["prom"].ok);
    proxy.set_fault(Fault::RetryAfter(429, "86400".into()));
    let k = 7;
    for i in 1..=k {
        set(h, "t_seq", i as f64);
        assert!(!push(h)["prom"].ok);
    }
    let fin = stop(h);
    let log = proxy.log()[first_request..].to_vec();
    let refused: Vec<_> = log.iter().filter(|s| s.status == 429).collect();
    assert_eq!(refused.len(), 1, "one request asked for quiet, none after it: {log:?}");
    assert_eq!(log.last().unwrap().status, 429, "nothing was sent after it: {log:?}");

    // The spool holds the newest three rounds: t_seq k-1, k and the final round's k.
    use kdbprom::push::spool as sp;
    let files: Vec<_> =
        std::fs::read_dir(&spool).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "spool")).collect();
    assert_eq!(files.len(), 1, "{files:?}");
    let f = sp::read(&files[0]).unwrap();
    let mut sizes = Vec::new();
    let mut values = Vec::new();
    for e in &f.entries {
        use prost::Message;
        let w = kdbprom::proto::WriteRequest::decode(&snap::raw::Decoder::new().decompress_vec(&e.body).unwrap()[..]).unwrap();
        sizes.push(w.timeseries.iter().map(|t| t.samples.len() as i64).sum::<i64>());
        let v =
            w.timeseries.iter().find(|t| t.labels.iter().any(|l| l.name == "__name__" && l.value == "t_seq")).map(|t| t.samples[0].value);
        values.push(v.unwrap());
    }
    eprintln!("queue_full exact: round {round}, spooled rounds {sizes:?} with t_seq {values:?}");
    assert_eq!(values, vec![(k - 1) as f64, k as f64, k as f64], "the three newest rounds, in order");
    let per = sizes[0];
    assert!(sizes.iter().all(|&s| s == per), "rounds after the failure have one size: {sizes:?}");
    // Rounds made after the quiet began: k pushes (the first of them sent once and refused) + the
    // final round; all but three were pushed out of the queue.
    let p = &fin.targets["prom"];
    let w = faults::witness(&log);
    assert_eq!(p.sent as u64, w.delivered_samples, "{p:?} {w:?}");
    assert_eq!(p.spooled, 3 * per, "{p:?}");
    assert_eq!(p.spooled as u64, spool_file_samples(&spool), "{p:?}");
    assert_eq!(p.failed("queue_full"), (k as i64 + 1 - 3) * per, "{} rounds of {per} pushed out: {p:?}", k + 1 - 3);
    p.assert_failed_only(&["queue_full"]);
    assert_eq!(p.samples_in, w.delivered_samples as i64 + (k as i64 + 1) * per, "{p:?}");
    assert_eq!(refused[0].rw_samples() as i64, per, "the refused request was round 1");
}
