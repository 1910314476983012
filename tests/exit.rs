//! The final push at process exit, without q's `.z.exit`: a child process (this test binary run
//! again) inits, records, pushes once, then ends through C `exit` in each way a q process can:
//! on its main thread, after `.prom.stop[]`, from a secondary thread, from two threads at once,
//! and with a push round still in flight against a hung receiver. The receivers are real
//! (Prometheus and the Pushgateway), each behind a fault proxy that counts what the child sent
//! after it was told to end.

mod common;
mod faults;
mod servers;

use common::{Host, host, lock};
use faults::{Fault, Proxy};
use kdbplus::api::K;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "KDBPROM_EXIT_CHILD";
/// exit_deadline_ms of every child.
const DEADLINE_MS: u64 = 2_000;
/// What the process-exit hook says on stderr when it made the final push.
const HOOK_LINE: &str = "final push at process exit (.prom.stop[] was not called)";

fn declare(h: &Host, kind: &str, name: &str) {
    h.ok("kdbprom_declare", &[h.s(kind), h.s(name), h.str("test"), h.id(), h.id()]);
}

/// The child's configuration: remote write (1.0, so one round is one request) and the Pushgateway.
fn config(h: &Host, job: &str, rw: &str, pg: &str, spool: &str) -> K {
    let t = h.dict(&["url", "name", "protocol"], &[h.str(&format!("{rw}/api/v1/write")), h.s("prom"), h.str("1.0")]);
    let mut keys = vec!["job", "instance", "interval_ms", "exit_deadline_ms", "remote_write", "pushgateway"];
    let mut vals = vec![h.s(job), h.s("i1"), h.j(3_600_000), h.j(DEADLINE_MS as i64), h.list(&[t]), h.dict(&["url"], &[h.str(pg)])];
    if !spool.is_empty() {
        keys.push("spool");
        vals.push(h.dict(&["dir"], &[h.str(spool)]));
    }
    h.dict(&keys, &vals)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The child: `scenario|job|rw base|pg url|spool dir` in the environment. Pushes once, prints
/// READY, waits for a line on stdin, records the final values and ends as the scenario says.
/// Not a test of its own: without the variable it returns at once.
#[test]
fn exit_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let p: Vec<&str> = spec.split('|').collect();
    let (scenario, job, rw, pg, spool) = (p[0], p[1], p[2], p[3], p[4]);
    let _g = lock();
    let h = host();
    let proc = h.dict(&["host", "port", "pid"], &[h.s("box"), h.j(0), h.j(i64::from(std::process::id()))]);
    h.ok("kdbprom_init", &[config(h, job, rw, pg, spool), proc]);
    declare(h, "gauge", "exit_value");
    declare(h, "counter", "exit_rows_total");
    h.ok("kdbprom_set", &[h.s("exit_value"), h.f(1.0)]);
    let o = h.ok("kdbprom_push", &[h.id()]);
    (h.r0)(o);
    println!("READY");
    std::io::stdout().flush().unwrap();
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).unwrap();
    println!("FINAL_MS {}", now_ms());
    h.ok("kdbprom_set", &[h.s("exit_value"), h.f(42.0)]);
    h.ok("kdbprom_inc", &[h.s("exit_rows_total"), h.j(7)]);
    std::io::stdout().flush().unwrap();
    match scenario {
        "exit" => std::process::exit(0),
        "stop_exit" => {
            let st = h.ok("kdbprom_stop", &[h.id()]);
            (h.r0)(st);
            std::process::exit(0);
        }
        "thread_exit" => {
            std::thread::spawn(|| std::process::exit(0));
        }
        "two_exits" => {
            let go = std::sync::Arc::new(std::sync::Barrier::new(2));
            for _ in 0..2 {
                let go = go.clone();
                std::thread::spawn(move || {
                    go.wait();
                    std::process::exit(0)
                });
            }
        }
        "in_flight" => {
            // A round held by a hung receiver when the process exits.
            std::thread::spawn(|| {
                let h = host();
                let _ = h.call("kdbprom_push", &[h.id()]);
            });
            std::thread::sleep(Duration::from_millis(300));
            std::process::exit(0);
        }
        s => panic!("scenario {s}"),
    }
    // Only exit may end this process: the main thread sleeps in q's stead.
    std::thread::sleep(Duration::from_secs(60));
    panic!("still running a minute after {scenario}");
}

/// What the parent saw of one child.
struct Ran {
    /// From the line that told it to end to its end.
    took: Duration,
    stderr: String,
    /// Requests each proxy received after READY, and those the remote-write proxy forwarded.
    rw_requests: u64,
    pg_requests: u64,
    rw_forwarded: u64,
    /// When the child recorded its final values (Unix ms).
    final_ms: i64,
}

/// Runs the child through `scenario`; `before_go` runs between READY and the line that ends it.
fn run(scenario: &str, job: &str, rw: &Proxy, pg: &Proxy, spool: &str, before_go: impl FnOnce()) -> Ran {
    let spec = format!("{scenario}|{job}|{}|{}|{spool}", rw.url(), pg.url());
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "exit_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, spec)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.contains("READY") {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "{scenario}: the child ended before READY");
    }
    before_go();
    let (rw0, pg0, fw0) = (rw.requests(), pg.requests(), rw.forwarded());
    let go = Instant::now();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let end = go + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < end, "{scenario}: the child hangs");
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = go.elapsed();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{scenario}: {status}\n{stderr}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    let final_ms = rest.lines().find_map(|l| l.strip_prefix("FINAL_MS ")).expect("FINAL_MS").trim().parse().unwrap();
    Ran { took, stderr, rw_requests: rw.requests() - rw0, pg_requests: pg.requests() - pg0, rw_forwarded: rw.forwarded() - fw0, final_ms }
}

/// The Pushgateway's value of `name` in the group of `job`.
fn pg_value(pg_port: u16, job: &str, name: &str) -> Option<f64> {
    let text = servers::http().get(format!("http://127.0.0.1:{pg_port}/metrics")).send().unwrap().text().unwrap();
    let want = format!("{name}{{instance=\"i1\",job=\"{job}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&want)).map(|v| v.parse().unwrap())
}

/// The last raw sample of `name` for `job` in Prometheus, and whether the series is still live
/// now (a stale marker ends it at once; without one it would stay for the 5-minute lookback).
fn prom_last(port: u16, job: &str, name: &str) -> (Option<(i64, f64)>, bool) {
    let sel = format!("{name}{{job=\"{job}\"}}");
    let m = servers::matrix(port, &sel);
    let last = m.first().and_then(|(_, v)| v.last().copied());
    (last, !servers::query(port, &sel).is_empty())
}

#[test]
fn every_way_of_exiting_makes_exactly_one_final_push() {
    let _g = lock();
    let prom = servers::prometheus(None);
    let pgw = servers::pushgateway();
    let (rw, pg) = (Proxy::start(prom.port), Proxy::start(pgw.port));
    for (scenario, hook_lines) in [("exit", 1), ("stop_exit", 0), ("thread_exit", 1), ("two_exits", 1)] {
        let job = format!("exit_{scenario}");
        let r = run(scenario, &job, &rw, &pg, "", || {});
        // The process ends as soon as the final push is done, well within the deadline.
        assert!(r.took < Duration::from_millis(DEADLINE_MS + 1_000), "{scenario}: {:?}", r.took);
        assert_eq!(r.stderr.matches(HOOK_LINE).count(), hook_lines, "{scenario}: {}", r.stderr);
        if hook_lines == 1 {
            assert!(r.stderr.contains(": pushgateway ok, prom ok"), "{scenario}: {}", r.stderr);
        }
        // One final push per target, never two: the stop and the hook do not both push. A final
        // remote-write round is two requests: the values, then the stale markers one ms later.
        assert_eq!((r.rw_requests, r.pg_requests), (2, 1), "{scenario}: requests after go");
        assert_eq!(pg_value(pgw.port, &job, "exit_value"), Some(42.0), "{scenario}");
        assert_eq!(pg_value(pgw.port, &job, "exit_rows_total"), Some(7.0), "{scenario}");
        let (last, live) = prom_last(prom.port, &job, "exit_value");
        assert_eq!(last.map(|l| l.1), Some(42.0), "{scenario}");
        assert!(!live, "{scenario}: the final push carries stale markers");
        assert_eq!(prom_last(prom.port, &job, "exit_rows_total").0.map(|l| l.1), Some(7.0), "{scenario}");
    }
}

/// A round in flight to a hung receiver at exit: it gets its share of the deadline, the final push
/// supersedes it and also hangs, the process still ends within the deadline, and what it could
/// not deliver is spooled; the next run of the job replays it into Prometheus at its own time.
#[test]
fn a_hung_receiver_at_exit_spools_and_the_next_run_replays() {
    let _g = lock();
    let prom = servers::prometheus(None);
    let pgw = servers::pushgateway();
    let (rw, pg) = (Proxy::start(prom.port), Proxy::start(pgw.port));
    let spool = servers::tmpdir("exit-spool");
    let job = "exit_in_flight";
    let r = run("in_flight", job, &rw, &pg, spool.to_str().unwrap(), || rw.set_fault(Fault::Hang));
    assert!(r.took < Duration::from_millis(DEADLINE_MS + 1_000), "{:?}", r.took);
    assert!(r.took >= Duration::from_millis(DEADLINE_MS / 2), "the hung receiver was given time: {:?}", r.took);
    assert_eq!(r.stderr.matches(HOOK_LINE).count(), 1, "{}", r.stderr);
    assert!(r.stderr.contains("pushgateway ok, prom failed"), "{}", r.stderr);
    // The round in flight and the final push: each held, neither delivered.
    assert_eq!(r.rw_requests, 2, "{:?}", rw.log());
    assert_eq!(r.rw_forwarded, 0, "nothing reached Prometheus after go");
    assert_eq!(pg_value(pgw.port, job, "exit_value"), Some(42.0));
    let spooled: Vec<_> =
        std::fs::read_dir(&spool).unwrap().filter_map(|e| e.ok()).filter(|e| e.path().extension().is_some_and(|x| x == "spool")).collect();
    assert_eq!(spooled.len(), 1, "one spool file for prom in {}", spool.display());

    // The next run (here, in this process) replays the spool before its first push.
    rw.set_fault(Fault::Pass);
    let replay_ms = now_ms();
    let h = host();
    let _ = h.call("kdbprom_stop", &[h.id()]);
    let proc = h.dict(&["host", "port", "pid"], &[h.s("box"), h.j(0), h.j(1)]);
    h.ok("kdbprom_init", &[config(h, job, &rw.url(), &pg.url(), spool.to_str().unwrap()), proc]);
    let st = h.ok("kdbprom_stop", &[h.id()]);
    (h.r0)(st);
    let m = servers::matrix(prom.port, &format!("exit_value{{job=\"{job}\"}}"));
    let samples = &m.first().expect("exit_value replayed").1;
    // Two rounds carried 42, each at its own time: the one in flight, then the final push that
    // superseded it a quarter of the deadline after the exit began.
    let t42: Vec<i64> = samples.iter().filter(|s| s.1 == 42.0).map(|s| s.0).collect();
    assert_eq!(t42.len(), 2, "{samples:?}");
    for t in t42 {
        assert!(
            t >= r.final_ms && t <= r.final_ms + DEADLINE_MS as i64 && t < replay_ms - 500,
            "replayed at its own time {t} (recorded from {}), not the replay's {replay_ms}: {samples:?}",
            r.final_ms
        );
    }
    // ... and the stale markers of the final push ended the series, replayed too.
    assert!(servers::query(prom.port, &format!("exit_value{{job=\"{job}\"}}")).is_empty());
}
