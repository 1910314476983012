//! Spool and replay across processes, against real receivers behind the fault proxy.
//!
//! A batch job that exits while its receiver is down spools what it could not deliver (by default
//! in `$XDG_STATE_HOME/kdbprom`), and the next run of the same `job` on this host replays it before
//! its own data, with the first run's timestamps and labels. The Pushgateway's final state is given
//! up, not spooled (a replayed last state would be replaced before a scrape could see it). Run 1 is a real second process: the
//! test binary re-executes itself (`--exact <this test>`) with `SPOOL_REPLAY_TEST_RUN1` set, and
//! that child exits the process after `.prom.stop[]`, so nothing of run 1 survives in memory.
//!
//! Also here: spool files that are corrupt, truncated, garbage or another job's; an unwritable
//! spool dir; the `max_bytes` cap; a full disk (a tiny tmpfs, so this needs root and mount rights).

mod common;
mod faults;
mod servers;

use common::life::{Life, Stats};
use common::{Host, host, lock};
use faults::{Fault, Proxy};
use kdbplus::api::K;
use kdbprom::builtin::local_host;
use kdbprom::push::spool;
use std::collections::HashMap;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Set in the child: `<kind>\n<url>\n<spool dir>`, kind `rw` or `pg`; dir `default`: no spool key.
const RUN1_ENV: &str = "SPOOL_REPLAY_TEST_RUN1";

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

// ---------------------------------------------------------------------------------------------
// The q side

fn spool_cfg(h: &Host, dir: &Path, max_bytes: i64) -> K {
    h.dict(&["dir", "max_bytes"], &[h.str(dir.to_str().unwrap()), h.j(max_bytes)])
}

fn rw_target(h: &Host, base: &str) -> K {
    let t = h.dict(&["url", "name", "stale_markers"], &[h.str(&format!("{base}/api/v1/write")), h.s("prom"), h.b(false)]);
    h.list(&[t])
}

fn declare(h: &Host, kind: &str, name: &str, labels: &[&str]) {
    let l = if labels.is_empty() { h.id() } else { h.syms(labels) };
    h.ok("kdbprom_declare", &[h.s(kind), h.s(name), h.str("test"), l, h.id()]);
}

/// A gauge `name{k=...}` with `n` series of hard-to-compress label values and values.
fn many_series(h: &Host, name: &str, n: usize, salt: u64) {
    declare(h, "gauge", name, &["k"]);
    let mut x = salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    for i in 0..n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let s = h.ok("kdbprom_series", &[h.s(name), h.str(&format!("s{i:04}-{x:016x}"))]);
        h.ok("kdbprom_set", &[s, h.f((x % 1_000_003) as f64 / 7.0)]);
    }
}

/// Waits until `target`'s samples_in has grown `rounds` times (each push round admits samples).
fn wait_rounds(life: &Life, target: &str, rounds: usize, timeout: Duration) {
    let end = Instant::now() + timeout;
    let mut last = life.stats().targets[target].samples_in;
    let mut seen = 0;
    while seen < rounds {
        assert!(Instant::now() < end, "only {seen} of {rounds} rounds in {timeout:?}");
        std::thread::sleep(Duration::from_millis(25));
        let now = life.stats().targets[target].samples_in;
        if now != last {
            seen += 1;
            last = now;
        }
    }
}

/// Runs `f` with fd 2 sent to a file; returns its result and what was written there (the .so's
/// `eprintln!` writes to fd 2 directly, not to the test harness's capture).
fn capture_stderr<T>(dir: &Path, f: impl FnOnce() -> T) -> (T, String) {
    let path = dir.join(format!("stderr-{}", now_ms()));
    let file = std::fs::File::create(&path).unwrap();
    let _ = std::io::stderr().flush();
    // SAFETY: plain descriptor juggling; fd 2 is restored before returning.
    let saved = unsafe { libc::dup(2) };
    assert!(saved >= 0);
    unsafe { libc::dup2(file.as_raw_fd(), 2) };
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    unsafe {
        libc::dup2(saved, 2);
        libc::close(saved);
    }
    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    match r {
        Ok(r) => (r, text),
        Err(p) => {
            eprintln!("captured stderr:\n{text}");
            std::panic::resume_unwind(p)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Files

/// A fresh temporary directory, removed on drop (a failing test included).
struct Tmp(PathBuf);

impl Tmp {
    fn new(tag: &str) -> Tmp {
        Tmp(servers::tmpdir(tag))
    }
}

impl std::ops::Deref for Tmp {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Tmp {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

fn spool_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "spool") && p.file_name().unwrap().to_string_lossy().starts_with("kdbprom-"))
        .collect();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// Run 1, the child process

/// Runs this test binary's `test` as run 1 with `spec` and returns its stdout lines starting with
/// `RUN1 ` (as key=value maps). The child must exit 0 within 30 s.
fn run_child(test: &str, spec: &str) -> HashMap<String, String> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(RUN1_ENV, spec)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("re-execute the test binary as run 1");
    let end = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > end {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("run 1 did not exit within 30 s: {}", String::from_utf8_lossy(&out.stderr));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "run 1 failed ({}):\n{stdout}\n{stderr}", out.status);
    let kv: HashMap<String, String> = stdout
        .lines()
        .filter_map(|l| l.find("RUN1 ").map(|i| &l[i + 5..]))
        .flat_map(|l| l.split(' ').filter_map(|p| p.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect::<Vec<_>>())
        .collect();
    assert!(kv.contains_key("spool_samples") && kv.contains_key("t1_ms"), "run 1 printed no figures:\n{stdout}\n{stderr}");
    kv
}

/// Run 1: a batch job whose receiver is down. Records, pushes (fails), stops (spools), exits.
fn run1(spec: &str) -> ! {
    let _g = lock();
    let h = host();
    let mut parts = spec.splitn(3, '\n');
    let (kind, url, dir) = (parts.next().unwrap(), parts.next().unwrap(), PathBuf::from(parts.next().unwrap()));
    let (job, key, target, tcfg) = match kind {
        "rw" => ("replay_job", "remote_write", "prom", rw_target(h, url)),
        "pg" => ("pg_replay_job", "pushgateway", "pushgateway", h.dict(&["url"], &[h.str(url)])),
        k => panic!("run 1 kind {k}"),
    };
    // interval_ms 1000: a push round retries a refused receiver for min(interval, 30 s), so a
    // 60 s interval would hold the push for half a minute.
    let life = if dir == Path::new("default") {
        Life::init_with(&["job", "instance", "interval_ms", "exit_deadline_ms", key], &[h.s(job), h.s("i1"), h.j(1_000), h.j(1_000), tcfg])
    } else {
        Life::init_with(
            &["job", "instance", "interval_ms", "exit_deadline_ms", "spool", key],
            &[h.s(job), h.s("i1"), h.j(1_000), h.j(1_000), spool_cfg(h, &dir, 64 << 20), tcfg],
        )
    };
    declare(h, "gauge", "run_value", &[]);
    declare(h, "counter", "run_rows_total", &[]);
    h.ok("kdbprom_set", &[h.s("run_value"), h.f(111.0)]);
    h.ok("kdbprom_inc", &[h.s("run_rows_total"), h.j(5)]);
    let t1 = now_ms();
    println!("RUN1 t1_ms={t1}");
    let o = life.push();
    assert!(!o[target].ok, "the receiver is down, the push must fail: {o:?}");
    let Stats { targets: st, pushed, .. } = life.stop();
    let f = &st[target];
    assert!(f.balanced(), "run 1 accounting: {f:?}");
    println!(
        "RUN1 spool_samples={} spool_bytes={} samples_in={} sent={} failed={} queue={}",
        f.spooled,
        f.spool_bytes,
        f.samples_in,
        f.sent,
        f.failed_total(),
        f.queued
    );
    println!("RUN1 note={}", pushed.get(target).map(|o| o.message.replace(' ', "_")).unwrap_or_default());
    let _ = std::io::stdout().flush();
    // A batch job that exits: nothing of this run survives in memory.
    std::process::exit(0);
}

/// If this process is a run-1 child for `kind`, acts as run 1 and exits.
fn maybe_run1(kind: &str) {
    if let Ok(spec) = std::env::var(RUN1_ENV)
        && spec.starts_with(&format!("{kind}\n"))
    {
        run1(&spec);
    }
}

// ---------------------------------------------------------------------------------------------
// Prometheus

/// Raw samples (ms, value) of the one series `selector` selects, over the last hour.
fn raw_samples(port: u16, selector: &str) -> Vec<(i64, f64)> {
    raw_samples_at(port, selector, SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64())
}

/// Raw samples of the one series `selector` selects, over the hour before `at` (Unix seconds).
fn raw_samples_at(port: u16, selector: &str, at: f64) -> Vec<(i64, f64)> {
    let m = servers::matrix_at(port, selector, at);
    assert_eq!(m.len(), 1, "one series for {selector}: {m:?}");
    m.into_iter().next().map(|(_, v)| v).unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn a_job_that_exits_during_an_outage_is_replayed_by_the_next_run() {
    maybe_run1("rw");
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    let proxy = Proxy::start(prom.port);
    proxy.set_fault(Fault::Refuse);
    // The default spool directory, which the child inherits through XDG_STATE_HOME (common::host).
    let dir = PathBuf::from(std::env::var("XDG_STATE_HOME").unwrap()).join("kdbprom");
    assert!(dir.starts_with(std::env::temp_dir()), "the harness gives this process its own state directory: {}", dir.display());

    // Run 1, another process (another pid), instance i1, no spool key: exits during the outage.
    let r1 = run_child("a_job_that_exits_during_an_outage_is_replayed_by_the_next_run", &format!("rw\n{}\ndefault", proxy.url()));
    let t1: i64 = r1["t1_ms"].parse().unwrap();
    let spooled: i64 = r1["spool_samples"].parse().unwrap();
    assert!(spooled > 0, "run 1 spooled nothing: {r1:?}");
    let files: Vec<PathBuf> =
        spool_files(&dir).into_iter().filter(|p| spool::read(p).is_ok_and(|f| f.header.job == "replay_job")).collect();
    assert_eq!(files.len(), 1, "one spool file in the default directory: {:?}", names(&dir));
    let file = spool::read(&files[0]).unwrap();
    assert_eq!(
        (file.header.job.as_str(), file.header.instance.as_str(), file.header.host.as_str(), file.header.target.as_str()),
        ("replay_job", "i1", local_host().as_str(), "prom")
    );
    assert_eq!(file.entries.iter().map(|e| e.samples).sum::<u64>() as i64, spooled);
    assert_eq!(proxy.forwarded(), 0, "nothing reached Prometheus during the outage");

    // Run 2, this process: the receiver is back. Another instance (a batch job's may change), the
    // default spool: the job and host decide what is replayed.
    proxy.set_fault(Fault::Pass);
    let t2 = now_ms();
    let life = Life::init_with(
        &["job", "instance", "interval_ms", "exit_deadline_ms", "remote_write"],
        &[h.s("replay_job"), h.s("i2"), h.j(60_000), h.j(2_000), rw_target(h, &proxy.url())],
    );
    let at_init = life.stats().targets["prom"].clone();
    assert!(at_init.samples_in >= spooled, "the replay counts as samples_in of run 2: {at_init:?} vs {spooled}");
    declare(h, "gauge", "run_value", &[]);
    h.ok("kdbprom_set", &[h.s("run_value"), h.f(222.0)]);
    let o = life.push();
    assert!(o["prom"].ok, "{o:?}");
    let f = life.stats().targets["prom"].clone();
    assert!(f.balanced(), "{f:?}");
    assert_eq!((f.failed_total(), f.queued), (0, 0), "everything delivered: {f:?}");
    assert!(f.sent >= spooled, "{f:?}");
    assert!(!files[0].exists(), "the replayed file is removed: {:?}", names(&dir));

    // Prometheus has run 1's value at run 1's time under run 1's labels, and run 2's after it
    // under its own.
    let s = raw_samples(prom.port, "run_value{job=\"replay_job\",instance=\"i1\"}");
    // Run 1's rounds (one a second while it ran) held 111, replayed each at its own time; a round
    // that ran between run 1's `declare` and its `set` (the first round starts at init) held the
    // declared 0, and only before the first 111.
    let first = s.iter().position(|(_, v)| *v == 111.0);
    assert!(
        first.is_some_and(|i| s[..i].iter().all(|(_, v)| *v == 0.0) && s[i..].iter().all(|(_, v)| *v == 111.0)),
        "run 1's series, replayed alone: {s:?}"
    );
    let old: Vec<i64> = s.iter().map(|(t, _)| *t).collect();
    assert!(old.iter().any(|t| (t - t1).abs() <= 2_000), "111 near run 1's time {t1}: {s:?}");
    assert!(old.iter().all(|t| *t < t2), "111 carries run 1's timestamps (before {t2}): {s:?}");
    let s2 = raw_samples(prom.port, "run_value{job=\"replay_job\",instance=\"i2\"}");
    let new: Vec<i64> = s2.iter().filter(|(_, v)| *v == 222.0).map(|(t, _)| *t).collect();
    // A round between `declare` and the first `set` reaching the flusher sees the new gauge at 0.
    let zeros = s2.iter().filter(|(_, v)| *v == 0.0).count();
    assert_eq!(new.len() + zeros, s2.len(), "only 222 (and a declared 0): {s2:?}");
    assert!(!new.is_empty() && new.iter().all(|t| *t >= t2), "222 after: {s2:?}");
    let c = raw_samples(prom.port, "run_rows_total{job=\"replay_job\",instance=\"i1\"}");
    assert!(c.iter().any(|(t, v)| *v == 5.0 && (t - t1).abs() <= 2_000), "the counter at run 1's time: {c:?}");

    let st = life.stop().targets;
    let f = &st["prom"];
    assert!(f.balanced() && f.spooled == 0, "{f:?}");
    assert!(!spool_files(&dir).iter().any(|p| spool::read(p).is_ok_and(|f| f.header.job == "replay_job")), "{:?}", names(&dir));
}

/// A remote-write body holding `fixture_value{job,instance} = value` at `ts_ms`.
fn fixture_body(job: &str, instance: &str, value: f64, ts_ms: i64) -> bytes::Bytes {
    use kdbprom::proto::{Label, Sample, TimeSeries, WriteRequest};
    use prost::Message;
    let label = |n: &str, v: &str| Label { name: n.into(), value: v.into() };
    let req = WriteRequest {
        timeseries: vec![TimeSeries {
            labels: vec![label("__name__", "fixture_value"), label("instance", instance), label("job", job)],
            samples: vec![Sample { value, timestamp: ts_ms }],
            ..Default::default()
        }],
        ..Default::default()
    };
    snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap().into()
}

fn fixture(dir: &Path, job: &str, ts_ms: i64) -> PathBuf {
    let h = spool::Header {
        job: job.into(),
        instance: "i2".into(),
        host: local_host(),
        target: "prom".into(),
        kind: spool::BodyKind::RemoteWrite1,
        created_ms: ts_ms,
    };
    let e = spool::Entry { body: fixture_body(job, "i2", 42.0, ts_ms), samples: 1, ts_ms };
    spool::write(dir, &h, &[e], 1 << 20).unwrap().path
}

#[test]
fn corrupt_truncated_and_foreign_spool_files_are_set_aside_once() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    let dir = Tmp::new("spool-bad");
    let work = Tmp::new("spool-bad-stderr");
    let ts = now_ms() - 60_000;
    let good = fixture(&dir, "fixture_job", ts);
    let bytes = std::fs::read(&good).unwrap();
    let mut flipped = bytes.clone();
    let at = bytes.len() - 10;
    flipped[at] ^= 0x40;
    std::fs::write(dir.join("flipped.spool"), &flipped).unwrap();
    std::fs::write(dir.join("truncated.spool"), &bytes[..bytes.len() / 2]).unwrap();
    std::fs::write(dir.join("garbage.spool"), b"this is not a spool file\n").unwrap();
    let other_dir = Tmp::new("spool-other");
    let other = fixture(&other_dir, "other_job", ts);
    let other = {
        let to = dir.join(other.file_name().unwrap());
        std::fs::rename(&other, &to).unwrap();
        to
    };
    let other_bytes = std::fs::read(&other).unwrap();

    let cfg = |h: &Host| {
        h.dict(
            &["job", "instance", "interval_ms", "exit_deadline_ms", "spool", "remote_write"],
            &[
                h.s("fixture_job"),
                h.s("i2"),
                h.j(60_000),
                h.j(2_000),
                spool_cfg(h, &dir, 1 << 20),
                rw_target(h, &format!("http://127.0.0.1:{}", prom.port)),
            ],
        )
    };
    let _ = h.call("kdbprom_stop", &[h.id()]);
    let (r, err) = capture_stderr(&work, || h.call("kdbprom_init", &[cfg(h), h.id()]));
    (h.r0)(r.unwrap_or_else(|e| panic!("init: {e}")));
    let life = Life { h };
    let set_aside: Vec<&str> = err.lines().filter(|l| l.contains("set aside")).collect();
    assert_eq!(set_aside.len(), 3, "each broken file reported once:\n{err}");
    for name in ["flipped", "truncated", "garbage"] {
        let bad = dir.join(format!("{name}.spool.bad"));
        assert_eq!(set_aside.iter().filter(|l| l.contains(bad.to_str().unwrap())).count(), 1, "{name}:\n{err}");
        assert!(bad.exists() && !dir.join(format!("{name}.spool")).exists(), "{name}: {:?}", names(&dir));
    }
    assert!(!err.contains(other.to_str().unwrap()), "another job's file is not reported:\n{err}");

    // The valid file is replayed (the push at init) and removed.
    let end = Instant::now() + Duration::from_secs(10);
    while good.exists() {
        assert!(Instant::now() < end, "the replayed file is still there: {:?}", names(&dir));
        std::thread::sleep(Duration::from_millis(20));
    }
    let s = raw_samples(prom.port, "fixture_value{job=\"fixture_job\",instance=\"i2\"}");
    assert_eq!(s, vec![(ts, 42.0)], "replayed with its own timestamp");
    let f = life.stats().targets["prom"].clone();
    assert!(f.balanced() && f.samples_in >= 1 && f.failed_total() == 0, "{f:?}");
    assert_eq!(std::fs::read(&other).unwrap(), other_bytes, "another job's file is left alone");

    // A second cycle: the .bad files are not .spool files any more, nothing is reported again.
    let before = names(&dir);
    let (st, err) = capture_stderr(&work, || {
        let st = life.stop().targets;
        let life = Life::init_as(cfg(h), h.id());
        life.push();
        let st2 = life.stop().targets;
        (st, st2)
    });
    assert!(st.0["prom"].balanced() && st.1["prom"].balanced(), "{st:?}");
    assert_eq!((st.0["prom"].spooled, st.1["prom"].spooled), (0, 0), "{st:?}");
    assert!(!err.contains("set aside") && !err.contains(".bad"), "nothing reported the second time:\n{err}");
    assert_eq!(names(&dir), before, "nothing renamed, removed or added");
    assert_eq!(std::fs::read(&other).unwrap(), other_bytes);
}

#[test]
fn an_unwritable_spool_dir_fails_init_naming_it() {
    let _g = lock();
    let h = host();
    let base = Tmp::new("spool-unwritable");
    // Root ignores mode bits; a path under a regular file cannot be a directory for anyone.
    let file = base.join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let dir = file.join("spool");
    let e =
        Life::init_err("unwritable_job", &[("spool", spool_cfg(h, &dir, 1 << 20)), ("remote_write", rw_target(h, "http://127.0.0.1:9"))]);
    assert!(e.contains("spool.dir") && e.contains(dir.to_str().unwrap()), "{e}");
    assert!(e.starts_with("prom: config key spool.dir: cannot write to "), "{e}");
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}

#[test]
fn the_spool_cap_keeps_the_newest_and_counts_the_rest() {
    let _g = lock();
    let h = host();
    let proxy = Proxy::start(servers::free_port());
    proxy.set_fault(Fault::Refuse);
    let dir = Tmp::new("spool-cap");
    const MAX: i64 = 8_192;
    let life = Life::init_with(
        &["job", "instance", "interval_ms", "exit_deadline_ms", "spool", "remote_write"],
        &[h.s("cap_job"), h.s("i3"), h.j(1_000), h.j(1_000), spool_cfg(h, &dir, MAX), rw_target(h, &proxy.url())],
    );
    many_series(h, "cap_value", 60, 1);
    wait_rounds(&life, "prom", 4, Duration::from_secs(15));
    let before = life.stats().targets["prom"].clone();
    assert!(before.balanced() && before.sent == 0 && before.queued > 0, "{before:?}");
    let t_stop = now_ms();
    let Stats { targets: st, pushed, .. } = life.stop();
    let f = &st["prom"];
    assert!(f.balanced(), "{f:?}");
    let final_round = f.samples_in - before.samples_in;
    assert!(final_round > 0, "{f:?} vs {before:?}");
    let full = f.failed("spool_full");
    assert!(f.spooled > 0 && full > 0, "the cap must both keep and drop: {f:?} ({pushed:?})");
    assert_eq!(f.spooled + full, before.queued + final_round, "every queued sample spooled or counted: {f:?} vs {before:?}");
    assert_eq!((f.sent, f.failed_total() - full, f.queued), (0, 0, 0), "{f:?}");
    assert!(pushed["prom"].message.contains("left out (spool.max_bytes)"), "{pushed:?}");

    let files = spool_files(&dir);
    assert_eq!(files.len(), 1, "{:?}", names(&dir));
    let size = std::fs::metadata(&files[0]).unwrap().len() as i64;
    assert!(size <= MAX && size == f.spool_bytes, "size {size}, cap {MAX}, spool_bytes {}", f.spool_bytes);
    let file = spool::read(&files[0]).unwrap();
    assert_eq!(file.entries.iter().map(|e| e.samples).sum::<u64>() as i64, f.spooled);
    // The newest are kept: the final round (stamped after stop began) is the last entry.
    assert!(file.entries.windows(2).all(|w| w[0].ts_ms <= w[1].ts_ms), "oldest first");
    assert!(file.entries.last().unwrap().ts_ms >= t_stop, "the final round is kept: {} < {t_stop}", file.entries.last().unwrap().ts_ms);
}

/// Unmounts on drop (lazily, so a failing test cannot leave it busy).
struct Mount(PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_is_counted_as_spool_full() {
    let _g = lock();
    let h = host();
    let base = Tmp::new("spool-enospc");
    let dir = base.join("mnt");
    // A 64 KiB tmpfs with one page left: the probe at init (an empty file) fits, the spool file will not.
    let _m = tiny_full_tmpfs(&dir, 4_096);
    let proxy = Proxy::start(servers::free_port());
    proxy.set_fault(Fault::Refuse);
    let life = Life::init_with(
        &["job", "instance", "interval_ms", "exit_deadline_ms", "spool", "remote_write"],
        &[h.s("enospc_job"), h.s("i4"), h.j(1_000), h.j(1_000), spool_cfg(h, &dir, 16 << 20), rw_target(h, &proxy.url())],
    );
    many_series(h, "full_value", 200, 2);
    wait_rounds(&life, "prom", 2, Duration::from_secs(15));
    let before = life.stats().targets["prom"].clone();
    assert!(before.balanced() && before.queued > 0, "{before:?}");
    let Stats { targets: st, pushed, .. } = life.stop();
    let f = &st["prom"];
    assert!(f.balanced(), "{f:?}");
    let final_round = f.samples_in - before.samples_in;
    assert_eq!((f.spooled, f.spool_bytes), (0, 0), "nothing could be spooled: {f:?}");
    assert_eq!(f.failed("spool_full"), before.queued + final_round, "all of it counted as spool_full: {f:?} vs {before:?}");
    assert_eq!((f.sent, f.queued, f.failed_total()), (0, 0, f.failed("spool_full")), "{f:?}");
    let msg = &pushed["prom"].message;
    assert!(msg.contains("could not be spooled") && msg.contains("No space left on device"), "{msg}");
    assert!(msg.contains(dir.to_str().unwrap()), "the message names the path: {msg}");
    assert_eq!(names(&dir), vec!["filler".to_string()], "no partial or .tmp file is left");
}

/// The Pushgateway's `/metrics` lines `(series, value)`.
fn pgw_metrics(port: u16) -> Vec<(String, f64)> {
    let text = servers::http().get(format!("http://127.0.0.1:{port}/metrics")).send().unwrap().text().unwrap();
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (s, v) = l.rsplit_once(' ').unwrap();
            (s.to_string(), v.parse().unwrap())
        })
        .collect()
}

/// The Pushgateway keeps one state per group, and the next run's first push replaces it: a
/// replayed final state would reach a scrape only by chance. So it is given up and said so, not
/// spooled; and a Pushgateway state that release 2 spooled is removed at init, never pushed.
#[test]
fn pushgateway_final_state_is_given_up_not_spooled() {
    maybe_run1("pg");
    let _g = lock();
    let h = host();
    let pgw = servers::pushgateway();
    let proxy = Proxy::start(pgw.port);
    proxy.set_fault(Fault::Refuse);
    let dir = Tmp::new("spool-pg");

    let r1 = run_child("pushgateway_final_state_is_given_up_not_spooled", &format!("pg\n{}\n{}", proxy.url(), dir.display()));
    let (samples_in, failed): (i64, i64) = (r1["samples_in"].parse().unwrap(), r1["failed"].parse().unwrap());
    assert_eq!(r1["spool_samples"], "0", "{r1:?}");
    assert!(samples_in > 0 && failed == samples_in, "every state counted as given up: {r1:?}");
    let note = r1["note"].replace('_', " ");
    assert!(note.contains("given up") && note.contains("not spooled"), "the final outcome says so: {note}");
    assert!(spool_files(&dir).is_empty(), "{:?}", names(&dir));

    // A release-2 spool file holding a Pushgateway state of this job.
    let ts = now_ms() - 60_000;
    let hdr = spool::Header {
        job: "pg_replay_job".into(),
        instance: "i1".into(),
        host: local_host(),
        target: "pushgateway".into(),
        kind: spool::BodyKind::Pushgateway,
        created_ms: ts,
    };
    let body = bytes::Bytes::from_static(b"# TYPE run_value gauge\nrun_value 111\n");
    let old = spool::write(&dir, &hdr, &[spool::Entry { body: body.clone(), samples: 1, ts_ms: ts }], 1 << 20).unwrap().path;
    proxy.set_fault(Fault::Pass);
    let seen = proxy.requests() as usize;
    let work = Tmp::new("spool-pg-stderr");
    let (life, err) = capture_stderr(&work, || {
        Life::init_with(
            &["job", "instance", "interval_ms", "exit_deadline_ms", "spool", "pushgateway"],
            &[
                h.s("pg_replay_job"),
                h.s("i1"),
                h.j(60_000),
                h.j(2_000),
                spool_cfg(h, &dir, 64 << 20),
                h.dict(&["url"], &[h.str(&proxy.url())]),
            ],
        )
    });
    let said: Vec<&str> = err.lines().filter(|l| l.contains(" kdbprom WARN ") && l.contains(old.to_str().unwrap())).collect();
    assert!(said.len() == 1 && said[0].contains("not replayed") && said[0].contains("removed"), "{err}");
    assert!(!old.exists(), "{:?}", names(&dir));

    declare(h, "gauge", "run_value", &[]);
    h.ok("kdbprom_set", &[h.s("run_value"), h.f(222.0)]);
    let o = life.push();
    assert!(o["pushgateway"].ok, "{o:?}");
    let log = proxy.log();
    assert!(log.len() > seen && log[seen..].iter().all(|r| r.body_len != body.len()), "the old state was never pushed: {log:?}");
    let m = pgw_metrics(pgw.port);
    let v: Vec<f64> = m
        .iter()
        .filter(|(s, _)| s.starts_with("run_value{") && s.contains("job=\"pg_replay_job\"") && s.contains("instance=\"i1\""))
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(v, vec![222.0], "{m:?}");
    let st = life.stop().targets;
    assert!(st["pushgateway"].balanced() && st["pushgateway"].spooled == 0, "{st:?}");
    assert!(spool_files(&dir).is_empty(), "{:?}", names(&dir));
}

/// Mounts a 64 KiB tmpfs at `dir` and fills it so that at most `leave` bytes stay free.
fn tiny_full_tmpfs(dir: &Path, leave: u64) -> Mount {
    std::fs::create_dir_all(dir).unwrap();
    let out = Command::new("mount").args(["-t", "tmpfs", "-o", "size=64k", "kdbprom-spool-test"]).arg(dir).output();
    let mounted = out.as_ref().is_ok_and(|o| o.status.success());
    assert!(
        mounted,
        "this test needs root and mount rights to simulate ENOSPC with a 64 KiB tmpfs: {:?}",
        out.map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
    );
    let m = Mount(dir.to_path_buf());
    let free = free_bytes(dir);
    if free > leave {
        std::fs::write(dir.join("filler"), vec![0u8; (free - leave) as usize]).unwrap();
    }
    assert!(free_bytes(dir) <= leave, "{} bytes free", free_bytes(dir));
    m
}

fn free_bytes(dir: &Path) -> u64 {
    // SAFETY: statvfs on a path we own.
    unsafe {
        let mut s: libc::statvfs = std::mem::zeroed();
        let p = std::ffi::CString::new(dir.to_str().unwrap()).unwrap();
        assert_eq!(libc::statvfs(p.as_ptr(), &mut s), 0);
        s.f_bavail as u64 * s.f_frsize as u64
    }
}

/// Run 2 replays run 1's file into a receiver that is still down, and at stop the new spool file
/// cannot be written (the disk is full). Run 1's file is the only copy of samples never delivered:
/// it must stay for the next run ("removed only after the new file is in place").
#[test]
fn a_spool_write_that_fails_keeps_the_previous_runs_file() {
    let _g = lock();
    let h = host();
    let base = Tmp::new("spool-keep");
    let dir = base.join("mnt");
    let _m = tiny_full_tmpfs(&dir, 8_192);
    let ts = now_ms() - 60_000;
    let hdr = spool::Header {
        job: "keep_job".into(),
        instance: "i5".into(),
        host: local_host(),
        target: "prom".into(),
        kind: spool::BodyKind::RemoteWrite1,
        created_ms: ts,
    };
    let e = spool::Entry { body: fixture_body("keep_job", "i5", 42.0, ts), samples: 1, ts_ms: ts };
    let old = spool::write(&dir, &hdr, &[e], 1 << 20).unwrap().path;
    let old_bytes = std::fs::read(&old).unwrap();
    assert!(free_bytes(&dir) <= 4_096, "{} bytes free", free_bytes(&dir));

    let proxy = Proxy::start(servers::free_port());
    proxy.set_fault(Fault::Refuse);
    let life = Life::init_with(
        &["job", "instance", "interval_ms", "exit_deadline_ms", "spool", "remote_write"],
        &[h.s("keep_job"), h.s("i5"), h.j(1_000), h.j(1_000), spool_cfg(h, &dir, 16 << 20), rw_target(h, &proxy.url())],
    );
    assert!(life.stats().targets["prom"].samples_in >= 1, "the old file is replayed");
    many_series(h, "keep_value", 200, 3);
    wait_rounds(&life, "prom", 1, Duration::from_secs(15));
    let Stats { targets: st, pushed, .. } = life.stop();
    let f = &st["prom"];
    assert!(f.balanced(), "{f:?}");
    assert!(pushed["prom"].message.contains("No space left on device"), "the new spool file could not be written: {pushed:?}");
    assert_eq!(f.spooled, 1, "the replayed sample stays spooled, in run 1's file: {f:?}");
    assert!(old.exists(), "run 1's undelivered samples were deleted although no new spool file holds them: {:?}", names(&dir));
    assert_eq!(std::fs::read(&old).unwrap(), old_bytes);
}

/// The previous run's clock was ahead (or this one's went back): its spooled samples are stamped
/// in this run's future. They are replayed as they are, and this run stamps its own samples just
/// after them, so the receiver never sees a series go back in time and nothing is refused.
#[test]
fn a_clock_that_went_back_between_runs_never_sends_samples_out_of_order() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    let dir = Tmp::new("spool-clock");
    let ahead = now_ms() + 10 * 60_000;
    let h1 = spool::Header {
        job: "clock_job".into(),
        instance: "i2".into(),
        host: local_host(),
        target: "prom".into(),
        kind: spool::BodyKind::RemoteWrite1,
        created_ms: ahead,
    };
    let e = spool::Entry { body: fixture_body("clock_job", "i2", 42.0, ahead), samples: 1, ts_ms: ahead };
    spool::write(&dir, &h1, &[e], 1 << 20).unwrap();
    let life = Life::init_with(
        &["job", "instance", "interval_ms", "spool", "remote_write"],
        &[h.s("clock_job"), h.s("i2"), h.j(60_000), spool_cfg(h, &dir, 1 << 20), rw_target(h, &format!("http://127.0.0.1:{}", prom.port))],
    );
    declare(h, "gauge", "clock_value", &[]);
    h.ok("kdbprom_set", &[h.s("clock_value"), h.f(7.0)]);
    assert!(life.push()["prom"].ok);
    let st = life.stop().targets;
    let f = &st["prom"];
    assert!(f.balanced() && f.failed_total() == 0, "nothing refused as too old or out of order: {f:?}");
    let later = (ahead + 60_000) as f64 / 1e3;
    assert_eq!(raw_samples_at(prom.port, "fixture_value{job=\"clock_job\"}", later), vec![(ahead, 42.0)], "replayed at its own time");
    let own = raw_samples_at(prom.port, "clock_value{job=\"clock_job\"}", later);
    assert!(!own.is_empty() && own.iter().all(|(ts, _)| *ts > ahead), "this run's samples come after the replayed ones: {own:?}");
    assert_eq!(own.last().unwrap().1, 7.0);
    assert!(spool_files(&dir).is_empty(), "{:?}", names(&dir));
}
