//! The defaults a production q process gets without asking (issue 14), each held by a host test
//! in separate processes where two processes are the point:
//! - no target: nothing written anywhere, one line at init, `.prom.text[]` still answers;
//! - the textfile: one file per job and instance, series told apart by `kdb_job`/`kdb_instance`,
//!   both files served together by a real node_exporter;
//! - two live processes with one job and instance: the second is warned, naming the lock and the fix;
//!   the lock goes with the process;
//! - an unusable default spool directory: one warning, init goes on without a spool.
//!
//! A child is this test binary run again (`--exact <test>`) with `DEFAULTS_CHILD` naming its part.

mod common;
mod servers;

use common::life::Life;
use common::{Host, host, lock};
use kdbplus::api::K;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHILD_ENV: &str = "DEFAULTS_CHILD";

/// The process dictionary the q script passes (a process that does not listen).
fn procinfo(h: &Host) -> K {
    h.dict(
        &["version", "release_date", "os", "cores", "host", "port", "pid"],
        &[h.f(4.1), h.str("2024-10-16"), h.s("l64"), h.j(2), h.s("qhost"), h.j(0), h.j(std::process::id() as i64)],
    )
}

/// `.prom.init[cfg;process]` as the q script of a process that does not listen calls it.
fn init(h: &Host, cfg: K) -> Life {
    Life::init_as(cfg, procinfo(h))
}

/// `.prom.push[]`: the targets it reported on.
fn push(life: &Life) -> Vec<String> {
    life.push().into_keys().collect()
}

/// Runs the child part named in `DEFAULTS_CHILD` (`<part>\n<arg>`) if this process is a child.
fn child_part() {
    let Ok(spec) = std::env::var(CHILD_ENV) else { return };
    let _g = lock();
    let h = host();
    let (part, arg) = spec.split_once('\n').unwrap_or((&spec, ""));
    match part {
        // Writes its textfile as instance `arg` of job tf, value 1 or 2.
        "textfile" => {
            let dir = std::env::var("DEFAULTS_TEXTFILE_DIR").unwrap();
            let life = init(h, h.dict(&["job", "instance", "interval_ms", "textfile"], &[h.s("tf"), h.s(arg), h.j(60_000), h.str(&dir)]));
            life.gauge("tf_value");
            life.set("tf_value", if arg == "a" { 1.0 } else { 2.0 });
            assert_eq!(push(&life), ["textfile"]);
            life.stop();
        }
        // Holds job lockjob (instance: the default, the host) until its stdin closes.
        "hold" => {
            let life = init(h, h.dict(&["job"], &[h.s("lockjob")]));
            println!("READY");
            let _ = std::io::stdout().flush();
            let _ = std::io::stdin().lines().count();
            life.stop();
        }
        // Inits job lockjob once and stops.
        "once" => {
            init(h, h.dict(&["job"], &[h.s("lockjob")])).stop();
        }
        // No target at all, in working directory `arg`.
        "none" => {
            std::env::set_current_dir(arg).unwrap();
            let life = init(h, h.dict(&["job", "interval_ms"], &[h.s("quiet_job"), h.j(100)]));
            life.gauge("quiet_value");
            life.set("quiet_value", 7.0);
            assert!(push(&life).is_empty(), "no target, no outcome");
            let t = life.text();
            assert!(t.contains("quiet_value 7"), "{t}");
            std::thread::sleep(Duration::from_millis(350)); // a few interval rounds
            life.stop();
        }
        // A remote-write target and the default spool, wherever XDG_STATE_HOME says.
        "spool" => {
            let rw = common::rw(h, "http://127.0.0.1:9/api/v1/write", "prom", &[]);
            init(h, h.dict(&["job", "exit_deadline_ms", "remote_write"], &[h.s("spool_job"), h.j(200), h.list(&[rw])])).stop();
        }
        p => panic!("unknown child part {p}"),
    }
    std::process::exit(0);
}

/// Starts this binary's `test` as child `part` with `arg`.
fn spawn(test: &str, part: &str, arg: &str, env: &[(&str, &str)]) -> Child {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, format!("{part}\n{arg}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The child keeps the state directory the test gives it (common::host would choose its own).
    assert!(env.iter().any(|(k, _)| *k == "XDG_STATE_HOME"), "every child is given its state directory");
    c.env("HOST_HARNESS_STATE_CHOSEN", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    c.spawn().expect("re-execute the test binary")
}

/// Runs child `part` to its end (30 s at most): its stderr.
fn run(test: &str, part: &str, arg: &str, env: &[(&str, &str)]) -> String {
    let mut child = spawn(test, part, arg, env);
    drop(child.stdin.take());
    let end = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < end, "child {part} did not end");
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "child {part}: {}\n{}\n{err}", out.status, String::from_utf8_lossy(&out.stdout));
    err
}

/// The library's lines of `err` at `level` (its one format: `<UTC time> kdbprom <LEVEL> <text>`).
fn said<'a>(err: &'a str, level: &str) -> Vec<&'a str> {
    err.lines().filter_map(|l| l.split_once(&format!(" kdbprom {level} ")).map(|(_, m)| m)).collect()
}

fn files(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn no_target_writes_nothing_anywhere_and_says_so_once() {
    child_part();
    let _g = lock();
    let work = servers::tmpdir("defaults-none");
    let state = servers::tmpdir("defaults-none-state");
    let err = run(
        "no_target_writes_nothing_anywhere_and_says_so_once",
        "none",
        work.to_str().unwrap(),
        &[("XDG_STATE_HOME", state.to_str().unwrap())],
    );
    let info = said(&err, "INFO");
    assert_eq!(info.iter().filter(|l| l.starts_with("no target configured")).count(), 1, "{err}");
    assert!(said(&err, "WARN").is_empty() && said(&err, "ERROR").is_empty(), "{err}");
    assert!(files(&work).is_empty(), "nothing in the working directory: {:?}", files(&work));
    // The state directory holds the instance lock (empty) and nothing else.
    let state_files: Vec<String> = files(&state.join("kdbprom"));
    assert_eq!(state_files, ["kdbprom-quiet_job-qhost.lock"], "{state_files:?}");
    assert_eq!(std::fs::metadata(state.join("kdbprom/kdbprom-quiet_job-qhost.lock")).unwrap().len(), 0);
    let _ = std::fs::remove_dir_all(work);
    let _ = std::fs::remove_dir_all(state);
}

#[test]
fn textfiles_of_two_processes_are_two_files_node_exporter_serves_together() {
    child_part();
    let _g = lock();
    let dir = servers::tmpdir("defaults-textfile").join("collector");
    let test = "textfiles_of_two_processes_are_two_files_node_exporter_serves_together";
    let state = servers::tmpdir("defaults-textfile-state");
    let env = [("DEFAULTS_TEXTFILE_DIR", dir.to_str().unwrap()), ("XDG_STATE_HOME", state.to_str().unwrap())];
    run(test, "textfile", "a", &env);
    run(test, "textfile", "b:5010", &env);
    assert_eq!(files(&dir), ["kdbprom_tf_a.prom", "kdbprom_tf_b_5010.prom"], "one file per job and instance");
    let a = std::fs::read_to_string(dir.join("kdbprom_tf_a.prom")).unwrap();
    let samples: Vec<&str> = a.lines().filter(|l| !l.starts_with('#')).collect();
    assert!(samples.len() > 10, "{a}");
    assert!(samples.iter().all(|l| l.contains("kdb_job=\"tf\"") && l.contains("kdb_instance=\"a\"")), "every series labelled:\n{a}");

    let ne = servers::node_exporter(&dir);
    let text = servers::http().get(format!("http://127.0.0.1:{}/metrics", ne.port)).send().unwrap().text().unwrap();
    let value = |sel: &str| -> Vec<f64> {
        text.lines().filter(|l| l.starts_with(sel)).map(|l| l.rsplit_once(' ').unwrap().1.parse().unwrap()).collect()
    };
    assert_eq!(value("tf_value{kdb_instance=\"a\",kdb_job=\"tf\"}"), [1.0], "{text}");
    assert_eq!(value("tf_value{kdb_instance=\"b:5010\",kdb_job=\"tf\"}"), [2.0], "{text}");
    assert_eq!(value("node_textfile_scrape_error"), [0.0], "node_exporter read both files without a clash:\n{text}");
    let _ = std::fs::remove_dir_all(dir.parent().unwrap());
    let _ = std::fs::remove_dir_all(state);
}

#[test]
fn a_second_live_process_of_one_job_and_instance_is_warned_and_the_lock_goes_with_the_first() {
    child_part();
    let _g = lock();
    let state = servers::tmpdir("defaults-lock");
    let env = [("XDG_STATE_HOME", state.to_str().unwrap())];
    let test = "a_second_live_process_of_one_job_and_instance_is_warned_and_the_lock_goes_with_the_first";
    let mut first = spawn(test, "hold", "", &env);
    // libtest's own words come first ("running 1 test", the test's name on READY's line).
    let ready = BufReader::new(first.stdout.as_mut().unwrap()).lines().map_while(Result::ok).any(|l| l.trim_end().ends_with("READY"));
    assert!(ready, "the first process is running");

    let err = run(test, "once", "", &env);
    let warned: Vec<&str> = said(&err, "WARN").into_iter().filter(|l| l.starts_with("another live process")).collect();
    assert_eq!(warned.len(), 1, "{err}");
    let lock_file = state.join("kdbprom/kdbprom-lockjob-qhost.lock");
    assert!(warned[0].contains("job=lockjob instance=qhost") && warned[0].contains(lock_file.to_str().unwrap()), "{err}");
    assert!(warned[0].contains("give each its own instance"), "the fix is named: {err}");

    drop(first.stdin.take());
    assert!(first.wait().unwrap().success());
    let err = run(test, "once", "", &env);
    assert!(said(&err, "WARN").is_empty(), "the first process ended, its lock with it: {err}");
    let _ = std::fs::remove_dir_all(state);
}

#[test]
fn an_unusable_default_spool_directory_is_one_warning_not_a_refusal() {
    child_part();
    let _g = lock();
    let test = "an_unusable_default_spool_directory_is_one_warning_not_a_refusal";
    let base = servers::tmpdir("defaults-nospool");
    std::fs::write(base.join("file"), "").unwrap();
    let bad: PathBuf = base.join("file");
    let err = run(test, "spool", "", &[("XDG_STATE_HOME", bad.to_str().unwrap())]);
    let warned: Vec<&str> = said(&err, "WARN").into_iter().filter(|l| l.starts_with("no spool:")).collect();
    assert_eq!(warned.len(), 1, "{err}");
    assert!(warned[0].contains(&format!("{}/kdbprom", bad.display())) && warned[0].contains("set spool.dir"), "{err}");
    let _ = std::fs::remove_dir_all(base);
}
