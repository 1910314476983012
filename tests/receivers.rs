//! Delivery proven against real receivers: the real .so in the libe host pushes, and the values
//! are read back from Prometheus, VictoriaMetrics and the Pushgateway.

mod common;
mod servers;

use common::life::Life;
use common::{Host, host, lock, rw};
use kdbplus::api::K;
use servers::{query, query_vm, value};
use std::time::{Duration, Instant};

fn declare_and_record(h: &Host, prefix: &str) {
    let n = |s: &str| format!("{prefix}_{s}");
    h.ok("kdbprom_declare", &[h.s("counter"), h.s(&n("rows_total")), h.str("Rows."), h.syms(&["table"]), h.id()]);
    h.ok("kdbprom_declare", &[h.s("gauge"), h.s(&n("depth")), h.str("Depth."), h.id(), h.id()]);
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s(&n("lat_seconds")), h.str("Latency."), h.id(), h.floats(&[0.1, 0.5, 1.0])]);
    h.ok("kdbprom_declare", &[h.s("summary"), h.s(&n("q_seconds")), h.str("Quantiles."), h.id(), h.id()]);
    for (t, v) in [("trade", 1234), ("quote", 42)] {
        let s = h.ok("kdbprom_series", &[h.s(&n("rows_total")), h.str(t)]);
        h.ok("kdbprom_inc", &[s, h.j(v)]);
    }
    h.ok("kdbprom_set", &[h.s(&n("depth")), h.f(7.5)]);
    h.ok("kdbprom_observe", &[h.s(&n("lat_seconds")), h.floats(&[0.05, 0.3, 0.3, 0.7, 2.0])]);
    let qs: Vec<f64> = (1..=1000).map(|i| f64::from(i) / 1000.0).collect();
    h.ok("kdbprom_observe", &[h.s(&n("q_seconds")), h.floats(&qs)]);
}

fn check_values(rows: impl Fn(&str) -> Vec<servers::Row>, prefix: &str, job: &str, instance: &str) {
    let n = |s: &str| format!("{prefix}_{s}");
    let c = rows(&n("rows_total"));
    assert_eq!(value(&c, &[("table", "trade"), ("job", job), ("instance", instance), ("env", "ci")]), 1234.0);
    assert_eq!(value(&c, &[("table", "quote")]), 42.0);
    assert_eq!(value(&rows(&n("depth")), &[]), 7.5);
    let b = rows(&n("lat_seconds_bucket"));
    for (le, want) in [("0.1", 1.0), ("0.5", 3.0), ("1.0", 4.0), ("+Inf", 5.0)] {
        assert_eq!(value(&b, &[("le", le)]), want, "le={le}");
    }
    assert!((value(&rows(&n("lat_seconds_sum")), &[]) - 3.35).abs() < 1e-9);
    assert_eq!(value(&rows(&n("lat_seconds_count")), &[]), 5.0);
    let q = rows(&n("q_seconds"));
    for (quantile, want) in [("0.5", 0.5), ("0.9", 0.9), ("0.99", 0.99)] {
        let got = value(&q, &[("quantile", quantile)]);
        assert!((got - want).abs() <= want * 0.01 + 0.001, "quantile {quantile}: {got} vs {want} (1 % documented)");
    }
    assert_eq!(value(&rows(&n("q_seconds_count")), &[]), 1000.0);
}

#[test]
fn remote_write_to_prometheus_and_victoria_metrics() {
    let _g = lock();
    let h = host();
    let (prom, vm) = (servers::prometheus(None), servers::victoria());
    let targets = h.list(&[
        rw(h, &format!("http://127.0.0.1:{}/api/v1/write", prom.port), "prom", &[]),
        rw(h, &format!("http://127.0.0.1:{}/api/v1/write", vm.port), "vm", &[("queue", h.dict(&["max_samples_per_send"], &[h.j(7)]))]),
    ]);
    let life = Life::init_with(
        &["job", "instance", "labels", "remote_write", "interval_ms"],
        &[h.s("rwtest"), h.s("host-a:5010"), h.dict(&["env"], &[h.s("ci")]), targets, h.j(3_600_000)],
    );
    // The first push goes out at init, not one (here: hour-long) interval later.
    let t = Instant::now();
    while query(prom.port, "kdb_info{job=\"rwtest\"}").is_empty() {
        assert!(t.elapsed() < Duration::from_secs(3), "no push at init");
        std::thread::sleep(Duration::from_millis(20));
    }
    declare_and_record(h, "rw");
    let o = life.push();
    assert!(o["prom"].ok && o["prom"].status == 204, "{o:?}");
    assert!(o["vm"].ok && o["vm"].status == 204, "{o:?}");
    assert_eq!(o["prom"].samples, o["vm"].samples, "same snapshot, split differently");
    check_values(|m| query(prom.port, m), "rw", "rwtest", "host-a:5010");
    assert_eq!(value(&query(prom.port, "kdbprom_events_dropped_total"), &[("job", "rwtest")]), 0.0);
    check_values(|m| query_vm(vm.port, m, 1), "rw", "rwtest", "host-a:5010");
    let fin = life.stop().pushed;
    assert!(fin["prom"].ok && fin["vm"].ok, "final push on stop: {fin:?}");
}

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

fn pgw_value(lines: &[(String, f64)], name: &str, labels: &[&str]) -> f64 {
    let hits: Vec<_> = lines.iter().filter(|(s, _)| s.starts_with(&format!("{name}{{")) && labels.iter().all(|l| s.contains(l))).collect();
    assert_eq!(hits.len(), 1, "{name} {labels:?} in {lines:?}");
    hits[0].1
}

#[test]
fn pushgateway_groups_by_job_instance_and_labels() {
    let _g = lock();
    let h = host();
    let pgw = servers::pushgateway();
    let pg = h.dict(&["url", "grouping"], &[h.str(&format!("http://127.0.0.1:{}", pgw.port)), h.dict(&["path"], &[h.str("/var/tmp")])]);
    let life = Life::init_with(
        &["job", "instance", "labels", "pushgateway", "interval_ms"],
        &[h.s("pgtest"), h.s("host-b:1"), h.dict(&["env"], &[h.s("ci")]), pg, h.j(3_600_000)],
    );
    declare_and_record(h, "pg");
    let o = life.push();
    assert!(o["pushgateway"].ok && o["pushgateway"].status == 200, "{o:?}");
    let m = pgw_metrics(pgw.port);
    let group = ["job=\"pgtest\"", "instance=\"host-b:1\"", "path=\"/var/tmp\"", "env=\"ci\""];
    let with = |extra: &'static str| group.iter().copied().chain(std::iter::once(extra)).collect::<Vec<_>>();
    assert_eq!(pgw_value(&m, "pg_rows_total", &with("table=\"trade\"")), 1234.0);
    assert_eq!(pgw_value(&m, "pg_depth", &group), 7.5);
    assert_eq!(pgw_value(&m, "pg_lat_seconds_bucket", &with("le=\"0.5\"")), 3.0);
    assert_eq!(pgw_value(&m, "pg_lat_seconds_bucket", &with("le=\"+Inf\"")), 5.0);
    assert_eq!(pgw_value(&m, "pg_lat_seconds_count", &group), 5.0);
    // The gateway's own per-group gauge carries the grouping key only.
    assert!(pgw_value(&m, "push_time_seconds", &group[..3]) > 1.7e9);
    // PUT replaces the group: a second push with a new value wins.
    h.ok("kdbprom_set", &[h.s("pg_depth"), h.f(9.0)]);
    life.push();
    assert_eq!(pgw_value(&pgw_metrics(pgw.port), "pg_depth", &group), 9.0);
    let _ = h.call("kdbprom_stop", &[h.id()]);
}

/// A throwaway CA, a server certificate for 127.0.0.1 and a client certificate, both signed by it:
/// ca.pem, cert.pem/key.pem (server), client.pem/client.key.
fn openssl(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let p = |f: &str| dir.join(f).to_str().unwrap().to_string();
    std::fs::write(dir.join("ext.cnf"), "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n").unwrap();
    std::fs::write(dir.join("client.cnf"), "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n").unwrap();
    // One openssl command line per step (the temporary paths hold no spaces).
    let steps = [
        format!("req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=kdbprom-test-CA -keyout {} -out {}", p("ca.key"), p("ca.pem")),
        format!("req -newkey rsa:2048 -nodes -subj /CN=localhost -keyout {} -out {}", p("key.pem"), p("srv.csr")),
        format!(
            "x509 -req -in {} -CA {} -CAkey {} -CAcreateserial -days 1 -extfile {} -out {}",
            p("srv.csr"),
            p("ca.pem"),
            p("ca.key"),
            p("ext.cnf"),
            p("cert.pem")
        ),
        format!("req -newkey rsa:2048 -nodes -subj /CN=kdbprom-client -keyout {} -out {}", p("client.key"), p("client.csr")),
        format!(
            "x509 -req -in {} -CA {} -CAkey {} -CAcreateserial -days 1 -extfile {} -out {}",
            p("client.csr"),
            p("ca.pem"),
            p("ca.key"),
            p("client.cnf"),
            p("client.pem")
        ),
    ];
    for step in steps {
        let args: Vec<&str> = step.split_whitespace().collect();
        let st = std::process::Command::new("openssl")
            .args(&args)
            .stderr(std::process::Stdio::null())
            .status()
            .expect("openssl is required (scripts/test.sh installs it)");
        assert!(st.success(), "openssl {args:?}");
    }
    (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"))
}

fn bcrypt(pw: &str) -> String {
    let py = std::env::var("KDBPROM_TEST_PYTHON").unwrap_or_else(|_| ".work/py/bin/python".into());
    let out = std::process::Command::new(py)
        .args(["-c", &format!("import bcrypt;print(bcrypt.hashpw(b'{pw}',bcrypt.gensalt(rounds=4)).decode())")])
        .output()
        .expect("python with bcrypt is required (scripts/test.sh installs it)");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn mtls_and_basic_auth_against_prometheus_web_config() {
    let _g = lock();
    let h = host();
    let dir = servers::tmpdir("tls");
    let (ca, cert, key) = openssl(&dir);
    let web = format!(
        "tls_server_config:\n  cert_file: {}\n  key_file: {}\n  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {}\nbasic_auth_users:\n  kdb: {}\n",
        cert.display(),
        key.display(),
        ca.display(),
        bcrypt("s3cret")
    );
    let prom = servers::prometheus(Some(&web));
    let (good, bad) = (dir.join("pw"), dir.join("wrong"));
    std::fs::write(&good, "s3cret\n").unwrap();
    std::fs::write(&bad, "guess\n").unwrap();
    let url = format!("https://127.0.0.1:{}/api/v1/write", prom.port);
    let auth = |pw: &std::path::Path| h.dict(&["username", "password_file"], &[h.s("kdb"), h.str(pw.to_str().unwrap())]);
    let (client, client_key) = (dir.join("client.pem"), dir.join("client.key"));
    let path = |p: &std::path::Path| h.str(p.to_str().unwrap());
    let tls = || h.dict(&["ca_file", "cert_file", "key_file"], &[path(&ca), path(&client), path(&client_key)]);
    let targets = h.list(&[
        rw(h, &url, "good", &[("basic_auth", auth(&good)), ("tls", tls())]),
        rw(h, &url, "wrongpw", &[("basic_auth", auth(&bad)), ("tls", tls())]),
        rw(
            h,
            &url,
            "untrusted",
            &[("basic_auth", auth(&good)), ("tls", h.dict(&["cert_file", "key_file"], &[path(&client), path(&client_key)]))],
        ),
        rw(h, &url, "nocert", &[("basic_auth", auth(&good)), ("tls", h.dict(&["ca_file"], &[path(&ca)]))]),
        rw(
            h,
            &url,
            "skipverify",
            &[
                ("basic_auth", auth(&good)),
                ("tls", h.dict(&["insecure_skip_verify", "cert_file", "key_file"], &[h.b(true), path(&client), path(&client_key)])),
            ],
        ),
    ]);
    let life =
        Life::init_with(&["job", "remote_write", "interval_ms", "exit_deadline_ms"], &[h.s("tlstest"), targets, h.j(1_000), h.j(500)]);
    h.ok("kdbprom_declare", &[h.s("gauge"), h.s("tls_ok"), h.str("x"), h.id(), h.id()]);
    h.ok("kdbprom_set", &[h.s("tls_ok"), h.j(42)]);
    let o = life.push();
    assert!(o["good"].ok && o["good"].status == 204, "{o:?}");
    assert_eq!((o["wrongpw"].ok, o["wrongpw"].status), (false, 401), "{o:?}");
    assert!(!o["untrusted"].ok && o["untrusted"].status == 0 && o["untrusted"].message.contains("UnknownIssuer"), "{o:?}");
    assert!(!o["wrongpw"].message.contains("s3cret") && !o["wrongpw"].message.contains("guess"));
    assert!(!o["nocert"].ok && o["nocert"].status == 0, "the server requires a client certificate: {o:?}");
    assert!(o["skipverify"].ok && o["skipverify"].status == 204, "{o:?}");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    let mut pem = std::fs::read(&client).unwrap();
    pem.extend(std::fs::read(&client_key).unwrap());
    let reader = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .danger_accept_invalid_certs(true)
        .identity(reqwest::Identity::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let v: serde_json::Value = reader
        .get(format!("https://127.0.0.1:{}/api/v1/query", prom.port))
        .basic_auth("kdb", Some("s3cret"))
        .query(&[("query", "tls_ok"), ("time", &format!("{now:.3}"))])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["data"]["result"][0]["value"][1], "42", "{v}");
    let _ = h.call("kdbprom_stop", &[h.id()]);
}

#[test]
fn a_batch_job_process_that_exits_leaves_its_metrics_behind() {
    let _g = lock();
    let (prom, pgw) = (servers::prometheus(None), servers::pushgateway());
    let exe = common::so_path().parent().unwrap().join("../examples/batch_job");
    let out = std::process::Command::new(&exe)
        .env("KDBPROM_DEMO_PUSHGATEWAY", format!("http://127.0.0.1:{}", pgw.port))
        .env("KDBPROM_DEMO_REMOTE_WRITE", format!("http://127.0.0.1:{}/api/v1/write", prom.port))
        .output()
        .unwrap_or_else(|e| panic!("{} (scripts/test.sh builds it: cargo build --examples): {e}", exe.display()));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // The process is gone; its final state is in both receivers. Its stale markers ended the
    // remote-write series at once, so only a look back finds the values.
    assert_eq!(query(prom.port, "eod_rows_loaded_total"), vec![], "stale markers end the series at stop");
    let rows = query(prom.port, "last_over_time(eod_rows_loaded_total[10m])");
    assert_eq!(value(&rows, &[("table", "trade"), ("job", "eod_load")]), 1_250_000.0);
    assert_eq!(value(&rows, &[("table", "quote")]), 9_800_000.0);
    let m = pgw_metrics(pgw.port);
    assert_eq!(pgw_value(&m, "eod_rows_loaded_total", &["job=\"eod_load\"", "table=\"quote\""]), 9_800_000.0);
    assert_eq!(pgw_value(&m, "eod_file_load_seconds_count", &["table=\"trade\""]), 3.0);
}

#[test]
fn a_failing_target_is_logged_once_on_stderr_not_every_push() {
    let _g = lock();
    let exe = common::so_path().parent().unwrap().join("../examples/batch_job");
    let t = Instant::now();
    let out = std::process::Command::new(&exe)
        .env("KDBPROM_DEMO_REMOTE_WRITE", format!("http://127.0.0.1:{}/api/v1/write", servers::free_port()))
        .output()
        .unwrap_or_else(|e| panic!("{} (scripts/test.sh builds it: cargo build --examples): {e}", exe.display()));
    assert!(out.status.success(), "the job exits normally when its receiver is down: {}", String::from_utf8_lossy(&out.stderr));
    // Its exit_deadline_ms is 2 s: the push still retrying from init must not hold the exit past it.
    assert!(t.elapsed() < Duration::from_millis(3_500), "exit took {:?}", t.elapsed());
    let err = String::from_utf8_lossy(&out.stderr);
    // One format for every line: RFC 3339 UTC with milliseconds, "kdbprom", a level, the message.
    for l in err.lines() {
        let (time, rest) = l.split_at(l.find(' ').unwrap_or(0));
        let ok = time.len() == 24
            && time.ends_with('Z')
            && time.as_bytes()[10] == b'T'
            && time.as_bytes()[19] == b'.'
            && ["ERROR ", "WARN ", "INFO "].iter().any(|lv| rest.starts_with(&format!(" kdbprom {lv}")));
        assert!(ok, "a stderr line not in the one format: {l:?}");
    }
    let lines: Vec<&str> = err.lines().filter(|l| l.contains(" kdbprom WARN push to prometheus failed")).collect();
    // Two pushes (at init and at stop) failed for the same cause: one line.
    assert_eq!(lines.len(), 1, "{err}");
    assert!(lines[0].to_lowercase().contains("connect"), "{err}");
}

#[test]
fn unreachable_refused_hung_and_rejecting_receivers_fail_cleanly_and_in_time() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    // A listener that accepts and never answers.
    let hung = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hung_port = hung.local_addr().unwrap().port();
    let closed = servers::free_port();
    let targets = h.list(&[
        rw(h, &format!("http://127.0.0.1:{closed}/api/v1/write"), "refused", &[]),
        rw(h, &format!("http://127.0.0.1:{hung_port}/api/v1/write"), "hung", &[("remote_timeout_ms", h.j(300))]),
        rw(h, &format!("http://127.0.0.1:{}/api/v1/wirte", prom.port), "notfound", &[]),
    ]);
    let life =
        Life::init_with(&["job", "remote_write", "interval_ms", "exit_deadline_ms"], &[h.s("failtest"), targets, h.j(1_000), h.j(800)]);
    let t = Instant::now();
    let o = life.push();
    assert!(t.elapsed() < Duration::from_secs(3), "push took {:?}", t.elapsed());
    assert!(!o["refused"].ok && o["refused"].status == 0 && o["refused"].message.to_lowercase().contains("connect"), "{o:?}");
    assert!(!o["hung"].ok, "{o:?}");
    assert_eq!((o["notfound"].ok, o["notfound"].status), (false, 404), "{o:?}");
    assert!(o["notfound"].message.contains("404 page not found"), "{o:?}");
    let st = life.stats().top;
    assert!(st["pushes_failed"] >= 3, "{st:?}");
    let t = Instant::now();
    let _ = h.call("kdbprom_stop", &[h.id()]);
    // exit_deadline_ms 800, and the agent's 500 ms margin past it at most; the final push retries
    // the refused and waits on the hung receiver until its own deadline (800 less the spool's 200 ms).
    assert!(t.elapsed() <= Duration::from_millis(800 + 500), "stop bounded by exit_deadline_ms: {:?}", t.elapsed());
    assert!(t.elapsed() >= Duration::from_millis(400), "the failing receivers were given time: {:?}", t.elapsed());
    drop(hung);
    // Unreadable secrets and certificates fail init, naming the key.
    let bad = |extra: (&str, K)| h.list(&[rw(h, "http://127.0.0.1:9/w", "x", &[extra])]);
    let e = h.err("kdbprom_init", &[h.dict(&["remote_write"], &[bad(("bearer_token_file", h.str("/nonexistent/token")))]), h.id()]);
    assert!(e.starts_with("prom: config key remote_write[0].bearer_token_file: cannot read /nonexistent/token"), "{e}");
    let e =
        h.err("kdbprom_init", &[h.dict(&["remote_write"], &[bad(("tls", h.dict(&["ca_file"], &[h.str("/nonexistent/ca.pem")])))]), h.id()]);
    assert_eq!(e, "prom: config key remote_write[0].tls.ca_file: /nonexistent/ca.pem is not a readable file");
}
