//! Real receivers for integration tests: Prometheus (remote-write receiver), the Pushgateway,
//! VictoriaMetrics and node_exporter (textfile collector), each on a free loopback port with a fresh
//! data dir, stopped by PID on drop.
//! A missing binary is a failure (scripts/test.sh installs them), never a skip.
#![allow(dead_code)]

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Server {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
    /// How it was started, so a test can kill it and start it again on the same port and data.
    again: Option<(String, Vec<String>, String)>,
}

impl Server {
    /// Kills the server (SIGKILL: no clean shutdown) and starts it again on the same port and data
    /// dir, once `down` has run while it is gone.
    pub fn kill_and_restart(&mut self, down: impl FnOnce()) {
        let (bin, args, ready) = self.again.clone().expect("a server started by start()");
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        let _ = self.child.wait();
        down();
        self.child = launch(&bin, &args, self.port, &self.dir, &ready);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGTERM, then wait: the servers exit in milliseconds.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn tmpdir(tag: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let d =
        std::env::temp_dir().join(format!("kdbprom-{tag}-{}-{}", std::process::id(), N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)));
    std::fs::create_dir_all(&d).unwrap();
    d
}

pub fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).danger_accept_invalid_certs(true).build().unwrap()
}

fn start(bin: &str, args: Vec<String>, port: u16, dir: PathBuf, ready: &str) -> Server {
    let child = launch(bin, &args, port, &dir, ready);
    Server { port, dir, child, again: Some((bin.to_string(), args, ready.to_string())) }
}

/// Starts `bin` and waits until its readiness URL answers 200.
fn launch(bin: &str, args: &[String], port: u16, dir: &std::path::Path, ready: &str) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.join("log")).unwrap();
    let mut child = Command::new(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("{bin} is required (scripts/test.sh installs it): {e}"));
    let url = ready.replace("PORT", &port.to_string());
    let end = Instant::now() + Duration::from_secs(20);
    let c = http();
    while c.get(&url).send().map(|r| r.status().as_u16()).unwrap_or(0) != 200 {
        if Instant::now() > end {
            let _ = child.kill();
            panic!("{bin} not ready at {url}: {}", std::fs::read_to_string(dir.join("log")).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child
}

/// Prometheus with the remote-write receiver; `web_config` adds TLS/basic auth (its readiness URL then uses https).
pub fn prometheus(web_config: Option<&str>) -> Server {
    let (port, dir, mut args) = prometheus_args();
    match web_config {
        Some(c) => {
            std::fs::write(dir.join("web.yml"), c).unwrap();
            args.push(format!("--web.config.file={}", dir.join("web.yml").display()));
            // Readiness needs credentials there: wait for the port instead.
            start_tls(args, port, dir)
        }
        None => start("prometheus", args, port, dir, "http://127.0.0.1:PORT/-/ready"),
    }
}

/// Prometheus with the remote-write receiver (no TLS) and these extra command-line arguments,
/// e.g. `--enable-feature=native-histograms`.
pub fn prometheus_with(extra: &[&str]) -> Server {
    let (port, dir, mut args) = prometheus_args();
    args.extend(extra.iter().map(|a| a.to_string()));
    start("prometheus", args, port, dir, "http://127.0.0.1:PORT/-/ready")
}

/// Where scripts/fetch-sid.sh unpacks Prometheus 3.x from Debian sid (receivers.md §9).
pub fn prometheus3_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".work/sid/x/usr/bin/prometheus")
}

/// The sid Prometheus' version line (`prometheus, version 3.5.3+ds1 ...`); fails, naming the
/// script that fetches it, when it is missing.
pub fn prometheus3_version() -> String {
    let bin = prometheus3_bin();
    let out = Command::new(&bin).arg("--version").output().unwrap_or_else(|e| {
        panic!(
            "{} is required: run scripts/install-deps.sh (it runs scripts/fetch-sid.sh, Prometheus 3.x from Debian sid): {e}",
            bin.display()
        )
    });
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    text.lines().next().unwrap_or_default().to_string()
}

/// Prometheus 3.x from Debian sid (a remote-write 2.0 receiver) on loopback with
/// `--web.enable-remote-write-receiver --enable-feature=native-histograms,created-timestamp-zero-ingestion`
/// and `extra_flags`. Missing, it fails naming scripts/install-deps.sh, never skips.
pub fn prometheus3(extra_flags: &[&str]) -> Server {
    let bin = prometheus3_bin();
    assert!(
        bin.is_file(),
        "{} is missing: run scripts/install-deps.sh (it fetches Prometheus 3.x from Debian sid into .work/sid/ with scripts/fetch-sid.sh)",
        bin.display()
    );
    let (port, dir, mut args) = prometheus_args();
    args.push("--enable-feature=native-histograms,created-timestamp-zero-ingestion".into());
    args.extend(extra_flags.iter().map(|a| a.to_string()));
    start(bin.to_str().unwrap(), args, port, dir, "http://127.0.0.1:PORT/-/ready")
}

/// A free port, a fresh data dir with a minimal config, and the arguments every test Prometheus gets.
fn prometheus_args() -> (u16, PathBuf, Vec<String>) {
    let port = free_port();
    let dir = tmpdir("prom");
    std::fs::write(dir.join("prom.yml"), "global:\n  scrape_interval: 15s\n").unwrap();
    let args = vec![
        format!("--config.file={}", dir.join("prom.yml").display()),
        format!("--storage.tsdb.path={}", dir.join("data").display()),
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--web.enable-remote-write-receiver".into(),
        "--log.level=warn".into(),
    ];
    (port, dir, args)
}

fn start_tls(args: Vec<String>, port: u16, dir: PathBuf) -> Server {
    let log = std::fs::File::create(dir.join("log")).unwrap();
    let child = Command::new("prometheus").args(&args).stdout(Stdio::null()).stderr(log).spawn().expect("prometheus is required");
    let s = Server { port, dir, child, again: None };
    let end = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < end, "prometheus (TLS) did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    s
}

pub fn pushgateway() -> Server {
    let port = free_port();
    let dir = tmpdir("pgw");
    let args = vec![format!("--web.listen-address=127.0.0.1:{port}"), "--persistence.file=".into(), "--log.level=warn".into()];
    start("prometheus-pushgateway", args, port, dir, "http://127.0.0.1:PORT/-/ready")
}

/// node_exporter with only its textfile collector, reading `dir`.
pub fn node_exporter(dir: &std::path::Path) -> Server {
    let port = free_port();
    let work = tmpdir("node-exporter");
    let args = vec![
        format!("--web.listen-address=127.0.0.1:{port}"),
        "--collector.disable-defaults".into(),
        "--collector.textfile".into(),
        format!("--collector.textfile.directory={}", dir.display()),
        "--log.level=warn".into(),
    ];
    start("prometheus-node-exporter", args, port, work, "http://127.0.0.1:PORT/metrics")
}

pub fn victoria() -> Server {
    let port = free_port();
    let dir = tmpdir("vm");
    let args = vec![
        format!("-httpListenAddr=127.0.0.1:{port}"),
        format!("-storageDataPath={}", dir.join("data").display()),
        "-retentionPeriod=100y".into(),
        "-search.latencyOffset=0s".into(),
        "-loggerLevel=WARN".into(),
    ];
    start("victoria-metrics", args, port, dir, "http://127.0.0.1:PORT/health")
}

/// A series' labels and its raw samples (ms timestamp, value).
pub type Series = (serde_json::Map<String, Value>, Vec<(i64, f64)>);

/// Every series `sel` selects with its raw samples (ms timestamp, value) over the hour before `at`
/// (Unix seconds), as Prometheus stores them (stale markers are not returned).
pub fn matrix_at(port: u16, sel: &str, at: f64) -> Vec<Series> {
    api_query(port, &format!("{sel}[1h]"), at)
        .iter()
        .map(|r| {
            let values = r["values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| ((p[0].as_f64().unwrap() * 1000.0).round() as i64, p[1].as_str().unwrap().parse().unwrap()))
                .collect();
            (r["metric"].as_object().unwrap().clone(), values)
        })
        .collect()
}

/// [`matrix_at`] now.
pub fn matrix(port: u16, sel: &str) -> Vec<Series> {
    matrix_at(port, sel, std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64())
}

/// The results of `/api/v1/query` for `q` at `at` (Unix seconds); the call must succeed.
pub fn api_query(port: u16, q: &str, at: f64) -> Vec<Value> {
    let v: Value = http()
        .get(format!("http://127.0.0.1:{port}/api/v1/query"))
        .query(&[("query", q), ("time", &format!("{at:.3}"))])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["status"], "success", "{q}: {v}");
    v["data"]["result"].as_array().unwrap().clone()
}

/// One instant-query result: labels and value.
pub type Row = (std::collections::BTreeMap<String, String>, f64);

/// `/api/v1/query` on Prometheus or VictoriaMetrics.
pub fn query(port: u16, q: &str) -> Vec<Row> {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    api_query(port, q, now)
        .iter()
        .map(|r| {
            let labels = r["metric"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string())).collect();
            (labels, r["value"][1].as_str().unwrap().parse().unwrap())
        })
        .collect()
}

/// VictoriaMetrics shows new data only after a flush and about a second; poll for `want` rows.
pub fn query_vm(port: u16, q: &str, want: usize) -> Vec<Row> {
    let _ = http().get(format!("http://127.0.0.1:{port}/internal/force_flush")).send();
    let end = Instant::now() + Duration::from_secs(20);
    std::thread::sleep(Duration::from_millis(1100));
    loop {
        let r = query(port, q);
        if r.len() >= want || Instant::now() > end {
            return r;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The value of the one row whose labels include every pair of `labels`.
pub fn value(rows: &[Row], labels: &[(&str, &str)]) -> f64 {
    let hits: Vec<&Row> = rows.iter().filter(|(l, _)| labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))).collect();
    assert_eq!(hits.len(), 1, "rows matching {labels:?} in {rows:?}");
    hits[0].1
}
