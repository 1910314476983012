//! `.prom.init` with configurations built as q builds them, in the real .so over libe: every shape
//! q makes of nested dictionaries (`enlist` of one is a table, a list of dictionaries with the same
//! keys is a table, dictionaries inside become table columns), every q example of the README and
//! the spec, the keys of enterprise networks (`proxy_url`, `proxy_from_environment`,
//! `push_timeout_ms`) against loopback receivers, a loopback proxy and a hung receiver.
//!
//! The README's and spec's q examples are quoted in `// q:` comments above the code that builds
//! them; [`every_readme_and_spec_init_example_is_built_here`] fails when one is not.

mod common;
mod faults;
mod mock;

use common::{Host, host, lock};
use kdbplus::api::K;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The process dictionary the q script passes (a process that does not listen).
fn procinfo(h: &Host) -> K {
    h.dict(
        &["version", "release_date", "os", "cores", "host", "port", "pid"],
        &[h.f(4.1), h.str("2024-10-16"), h.s("l64"), h.j(2), h.s("qhost"), h.j(0), h.j(42)],
    )
}

/// `.prom.init cfg` after stopping any earlier agent: the settings' symbols, or q's error.
fn init(h: &Host, cfg: K) -> Result<HashMap<String, String>, String> {
    let _ = h.call("kdbprom_stop", &[h.id()]);
    let r = h.call("kdbprom_init", &[cfg, procinfo(h)])?;
    let settings = h.dict_items(r).into_iter().filter(|(_, v)| h.qtype(*v) == -11).map(|(k, v)| (k, h.sym(v))).collect();
    (h.r0)(r);
    Ok(settings)
}

/// `.prom.init` that must succeed.
fn init_ok(h: &Host, cfg: K, what: &str) -> HashMap<String, String> {
    init(h, cfg).unwrap_or_else(|e| panic!("{what}: refused: '{e}"))
}

/// `.prom.stop[]`, quietly.
fn stop(h: &Host) {
    if let Ok(d) = h.call("kdbprom_stop", &[h.id()])
        && !d.is_null()
    {
        (h.r0)(d);
    }
}

/// `.prom.push[]`: target → (ok, message).
fn push(h: &Host) -> HashMap<String, (bool, String)> {
    let d = h.ok("kdbprom_push", &[h.id()]);
    let out = h
        .dict_items(d)
        .into_iter()
        .map(|(t, o)| {
            let f: HashMap<String, K> = h.dict_items(o).into_iter().collect();
            (t, (h.boolean(f["ok"]), h.string(f["message"])))
        })
        .collect();
    (h.r0)(d);
    out
}

fn text(h: &Host) -> String {
    let t = h.ok("kdbprom_text", &[h.id()]);
    let s = h.string(t);
    (h.r0)(t);
    s
}

type Log = Arc<Mutex<Vec<mock::Seen>>>;

/// A receiver answering 200 to everything (the Pushgateway's answer; remote write takes any 2xx).
fn receiver() -> (String, Log) {
    mock::mock_with(|_, _| (200, String::new(), String::new()))
}

/// A file holding `content`, for `password_file` (the README's /etc/kdbprom/pw is not ours to write).
fn secret_file(name: &str, content: &str) -> String {
    let dir = std::env::temp_dir().join(format!("kdbprom-host-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join(name);
    std::fs::write(&f, content).unwrap();
    f.to_string_lossy().into_owned()
}

/// `Basic <base64(user:password)>`.
fn basic(user: &str, pw: &str) -> String {
    use base64::Engine;
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pw}")))
}

// ---------------------------------------------------------------------------------------------
// The README's and the spec's examples.

/// The q statements of the README's and the spec's q code blocks that call `.prom.init`, joined
/// across continuation lines (q continues a statement on lines that start with a space), without
/// trailing comments, whitespace collapsed.
fn init_examples(doc: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_q = false;
    let mut stmt = String::new();
    let mut flush = |stmt: &mut String| {
        let s = normalise(stmt);
        if s.contains(".prom.init") {
            out.push(s);
        }
        stmt.clear();
    };
    for line in doc.lines() {
        if line.trim_start().starts_with("```") {
            flush(&mut stmt);
            in_q = line.trim_start() == "```q";
            continue;
        }
        if !in_q {
            continue;
        }
        let code = strip_comment(line);
        if !line.starts_with([' ', '\t']) {
            flush(&mut stmt);
        }
        stmt.push(' ');
        stmt.push_str(code);
    }
    flush(&mut stmt);
    out
}

/// A q line without its trailing comment (` /` outside a string).
fn strip_comment(line: &str) -> &str {
    let mut in_str = false;
    let b = line.as_bytes();
    for i in 0..b.len() {
        match b[i] {
            b'"' if i == 0 || b[i - 1] != b'\\' => in_str = !in_str,
            b'/' if !in_str && (i == 0 || b[i - 1] == b' ' || b[i - 1] == b'\t') => return &line[..i],
            _ => {}
        }
    }
    line
}

fn normalise(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The `// q:` quotes of this file, consecutive ones joined into one statement.
fn quoted_here() -> Vec<String> {
    let src = include_str!("host_config.rs");
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in src.lines() {
        match line.trim_start().strip_prefix("// q: ") {
            Some(q) => {
                cur.push(' ');
                cur.push_str(q);
            }
            None if !cur.is_empty() => out.push(normalise(&std::mem::take(&mut cur))),
            None => {}
        }
    }
    out
}

/// A README or spec example that is not built and passed to `.prom.init` below fails here: add
/// it to a test, built as q builds it, quoted in `// q:` comments.
#[test]
fn every_readme_and_spec_init_example_is_built_here() {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let mut examples = init_examples(&readme);
    assert!(examples.len() >= 2, "the README's q examples were not found: {examples:?}");
    // The spec sits beside the repository (shared/) on developers' machines only, not in CI's clean
    // checkout; it has no `.prom.init` example today. Read where present; the README is always read.
    if let Ok(spec) = std::fs::read_to_string(format!("{root}/../shared/spec.md")) {
        examples.extend(init_examples(&spec));
    }
    let here = quoted_here();
    let missing: Vec<&String> = examples.iter().filter(|e| !here.contains(e)).collect();
    assert!(missing.is_empty(), "q examples of README.md/spec.md not built by a test in tests/host_config.rs: {missing:#?}");
    // The extraction itself: continuation lines joined, comments dropped, strings kept whole.
    assert_eq!(
        init_examples("```q\n.prom.init `a`b!(1;  / one\n  \"x /y\")   / c\n.prom.push[]\n```\n.prom.init x\n"),
        [".prom.init `a`b!(1; \"x /y\")"]
    );
}

#[test]
fn readme_quick_start() {
    let _g = lock();
    let h = host();
    // q: .prom.init `job`labels!(`eod_load;enlist[`desk]!enlist`rates)
    let labels = h.qdict(&["desk"], &[h.s("rates")]);
    assert_eq!(h.qtype(labels), 99, "enlist[`desk]!enlist`rates is a dictionary");
    let cfg = h.qdict(&["job", "labels"], &[h.s("eod_load"), labels]);
    let settings = init_ok(h, cfg, "README quick start");
    assert_eq!(settings["job"], "eod_load");
    let t = text(h);
    assert!(t.contains("kdb_info{version=\"4.1\",release_date=\"2024-10-16\",os=\"l64\",cores=\"2\",desk=\"rates\"} 1\n"), "{t}");
    stop(h);
    let _ = std::fs::remove_file("kdbprom_eod_load.prom");
}

/// The README's Mimir example, with the receivers and the password file of this test in place of
/// `pushgw:9091`, `mimir` and `/etc/kdbprom/pw` (the shape is the README's, built as q builds it).
#[test]
fn readme_delivery_example_reaches_both_receivers_with_tenant_and_auth() {
    let _g = lock();
    let h = host();
    let (pg_url, pg_log) = receiver();
    let (rw_url, rw_log) = receiver();
    let pw = secret_file("pw", "hunter2\n");
    // q: .prom.init `job`pushgateway`remote_write!(`eod_load;
    // q:   enlist[`url]!enlist"http://pushgw:9091";
    // q:   enlist `url`tenant`basic_auth!("https://mimir/api/v1/push";"desk-a";`username`password_file!("kdb";"/etc/kdbprom/pw")))
    let auth = h.qdict(&["username", "password_file"], &[h.str("kdb"), h.str(&pw)]);
    let rw = h.enlist_dict(&["url", "tenant", "basic_auth"], &[h.str(&format!("{rw_url}/api/v1/push")), h.str("desk-a"), auth]);
    assert_eq!(h.qtype(rw), 98, "enlist of a dictionary is a table");
    let pg = h.qdict(&["url"], &[h.str(&pg_url)]);
    let cfg = h.qdict(&["job", "pushgateway", "remote_write"], &[h.s("eod_load"), pg, rw]);
    init_ok(h, cfg, "README delivery example");
    let out = push(h);
    let rw_name = rw_url.trim_start_matches("http://");
    assert_eq!(out.keys().map(String::as_str).collect::<std::collections::BTreeSet<_>>(), ["pushgateway", rw_name].into());
    assert!(out.values().all(|(ok, _)| *ok), "{out:?}");
    stop(h);
    assert!(!pg_log.lock().unwrap().is_empty());
    let seen = rw_log.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|s| s.headers.get("x-scope-orgid").map(String::as_str) == Some("desk-a")), "the tenant");
    assert!(
        seen.iter().all(|s| s.headers.get("authorization") == Some(&basic("kdb", "hunter2"))),
        "the basic auth of the nested dictionary"
    );
}

/// The README's quick start 1: an end-of-day job to the Pushgateway (this test's receiver in place
/// of `pushgw:9091`). A process that does not listen is its host: one group across runs.
#[test]
fn readme_quick_start_batch_job_to_the_pushgateway() {
    let _g = lock();
    let h = host();
    let (url, log) = receiver();
    // q: .prom.init `job`labels`pushgateway!(`eod_load;enlist[`desk]!enlist`rates;enlist[`url]!enlist"http://pushgw:9091")
    let labels = h.qdict(&["desk"], &[h.s("rates")]);
    let pg = h.qdict(&["url"], &[h.str(&url)]);
    let cfg = h.qdict(&["job", "labels", "pushgateway"], &[h.s("eod_load"), labels, pg]);
    assert_eq!(h.qtype(cfg), 99);
    let settings = init_ok(h, cfg, "README quick start 1");
    assert_eq!((settings["job"].as_str(), settings["instance"].as_str()), ("eod_load", "qhost"), "the host is the instance");
    let out = push(h);
    assert_eq!(out.keys().map(String::as_str).collect::<Vec<_>>(), ["pushgateway"]);
    assert!(out.values().all(|(ok, _)| *ok), "{out:?}");
    stop(h);
    let seen = log.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(
        seen.iter().all(|s| s.path == "/metrics/job/eod_load/instance/qhost"),
        "{:?}",
        seen.iter().map(|s| &s.path).collect::<Vec<_>>()
    );
    // The Pushgateway gets delimited protobuf by default: every series carries the static label.
    use prost::Message;
    let mut body = &seen[0].body[..];
    let mut labelled = 0;
    while !body.is_empty() {
        let mf = kdbprom::proto::client::MetricFamily::decode_length_delimited(&mut body).unwrap();
        for m in &mf.metric {
            assert!(m.label.iter().any(|l| l.name() == "desk" && l.value() == "rates"), "{}: {:?}", mf.name(), m.label);
            labelled += 1;
        }
    }
    assert!(labelled > 10, "{labelled} series");
}

/// The README's quick start 2: a long-running process to Mimir with a tenant and basic auth read
/// from a password file (this test's receiver and file in place of Mimir and /etc/kdbprom/mimir.pw).
#[test]
fn readme_quick_start_long_running_process_to_mimir() {
    let _g = lock();
    let h = host();
    let (url, log) = receiver();
    let pw = secret_file("mimir.pw", "s3cret\n");
    // q: .prom.init `job`interval_ms`remote_write!(`rdb;15000;enlist `url`tenant`basic_auth!("https://mimir.example.com/api/v1/push";"kdb-prod";`username`password_file!("kdb";"/etc/kdbprom/mimir.pw")))
    let auth = h.qdict(&["username", "password_file"], &[h.str("kdb"), h.str(&pw)]);
    let rw = h.enlist_dict(&["url", "tenant", "basic_auth"], &[h.str(&format!("{url}/api/v1/push")), h.str("kdb-prod"), auth]);
    assert_eq!(h.qtype(rw), 98, "enlist of a dictionary is a table");
    let cfg = h.qdict(&["job", "interval_ms", "remote_write"], &[h.s("rdb"), h.j(15_000), rw]);
    let settings = init_ok(h, cfg, "README quick start 2");
    assert_eq!(settings["job"], "rdb");
    let out = push(h);
    assert!(out.values().all(|(ok, _)| *ok), "{out:?}");
    stop(h);
    let seen = log.lock().unwrap();
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|s| s.path == "/api/v1/push"));
    assert!(seen.iter().all(|s| s.headers.get("x-scope-orgid").map(String::as_str) == Some("kdb-prod")), "the tenant");
    assert!(seen.iter().all(|s| s.headers.get("authorization") == Some(&basic("kdb", "s3cret"))), "the password file, its newline dropped");
}

/// The README's quick start 3, the textfile: node_exporter's directory, where kdbprom writes
/// `kdbprom_<job>_<instance>.prom` (the process does not listen: instance qhost, the host).
#[test]
fn readme_quick_start_textfile() {
    let _g = lock();
    let h = host();
    let dir = std::env::temp_dir().join(format!("kdbprom-host-config-textfile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    // q: .prom.init `job`textfile!(`eod_load;"/var/lib/node_exporter/textfile")
    let cfg = h.qdict(&["job", "textfile"], &[h.s("eod_load"), h.str(&dir.to_string_lossy())]);
    init_ok(h, cfg, "README quick start 3, textfile");
    let out = push(h);
    assert_eq!(out.keys().map(String::as_str).collect::<Vec<_>>(), ["textfile"]);
    assert!(out.values().all(|(ok, _)| *ok), "{out:?}");
    stop(h);
    let t = std::fs::read_to_string(dir.join("kdbprom_eod_load_qhost.prom")).unwrap();
    assert!(t.contains("kdb_info{") && t.contains("kdb_job=\"eod_load\",kdb_instance=\"qhost\""), "{t}");
    std::fs::remove_dir_all(dir).unwrap();
}

/// The README's json blocks, with this test's receiver, password file, CA and spool directory in
/// place of the README's (`mimir.example.com`, `/etc/kdbprom/…`, `/var/lib/kdbprom/spool`).
fn readme_json(url: &str, pw: &str, spool: &str) -> Vec<String> {
    let root = env!("CARGO_MANIFEST_DIR");
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let mut blocks = Vec::new();
    let (mut in_json, mut cur) = (false, String::new());
    for line in readme.lines() {
        let l = line.trim_start();
        if !in_json {
            in_json = l == "```json";
        } else if l.starts_with("```") {
            blocks.push(std::mem::take(&mut cur));
            in_json = false;
        } else {
            cur.push_str(line);
            cur.push('\n');
        }
    }
    let blocks: Vec<String> = blocks
        .into_iter()
        .map(|b| {
            b.replace("https://mimir.example.com/api/v1/push", &format!("{url}/api/v1/push"))
                .replace("/etc/kdbprom/mimir.pw", pw)
                .replace("/etc/kdbprom/ca.pem", &format!("{root}/tests/tls/ca.pem"))
                .replace("/var/lib/kdbprom/spool", spool)
        })
        .collect();
    for b in &blocks {
        assert!(
            !b.contains("example.com") && !b.contains("/etc/kdbprom") && !b.contains("/var/lib/kdbprom"),
            "a README json block names something this test does not replace: {b}"
        );
    }
    blocks
}

/// What a session of `cfg` pushes: the outcomes' targets and the tenant and authorization headers
/// the receiver saw, and whether the text carries the file's job, instance and labels.
fn session(h: &Host, log: &Log, what: &str, cfg: K) -> (Vec<String>, Option<String>, Option<String>, bool) {
    log.lock().unwrap().clear();
    init_ok(h, cfg, what);
    let t = text(h);
    let labelled = t.contains("kdb_info{") && t.lines().filter(|l| l.starts_with("kdb_info{")).all(|l| l.contains("env=\"prod\""));
    let out = push(h);
    assert!(out.values().all(|(ok, _)| *ok), "{what}: {out:?}");
    stop(h);
    let seen = log.lock().unwrap();
    assert!(!seen.is_empty(), "{what}: nothing arrived");
    let one = |name: &str| {
        let v: Vec<Option<&String>> = seen.iter().map(|s| s.headers.get(name)).collect();
        assert!(v.windows(2).all(|w| w[0] == w[1]), "{what} {name}: {v:?}");
        v[0].cloned()
    };
    let mut targets: Vec<String> = out.into_keys().collect();
    targets.sort();
    (targets, one("x-scope-orgid"), one("authorization"), labelled)
}

/// The README's complete configuration, as the JSON file and as its q twin: both are accepted and
/// push alike; and every json block of the README is a configuration `.prom.init` takes.
#[test]
fn readme_complete_configuration_as_json_and_as_q_agree() {
    let _g = lock();
    let h = host();
    let (url, log) = receiver();
    let pw = secret_file("mimir.pw", "s3cret\n");
    let spool = std::env::temp_dir().join(format!("kdbprom-host-config-spool-{}", std::process::id()));
    let spool = spool.to_string_lossy().into_owned();
    let blocks = readme_json(&url, &pw, &spool);
    assert!(blocks.len() >= 2, "the README's json blocks: {blocks:?}");
    let complete = blocks.iter().find(|b| b.contains("\"spool\"")).expect("the complete file");
    let file = std::env::temp_dir().join(format!("kdbprom-host-config-{}-tp.json", std::process::id()));
    std::fs::write(&file, complete).unwrap();

    // q: .prom.init `:/etc/kdbprom/tp.json
    let from_file = session(h, &log, "the README's complete file", h.s(&format!(":{}", file.display())));

    // q: cfg:`job`instance`labels`interval_ms`exit_deadline_ms`push_timeout_ms`sampler`instrument`serve_metrics`max_series`max_series_per_metric`on_series_limit`remote_write`spool!(
    // q:   `tp;"tp-a";enlist[`env]!enlist`prod;15000;2000;5000;`auto;1b;0b;100000;10000;`overflow;
    // q:   enlist `name`url`protocol`tenant`basic_auth`tls`remote_timeout_ms`queue!(`mimir;"https://mimir.example.com/api/v1/push";"auto";"kdb-prod";
    // q:     `username`password_file!("kdb";"/etc/kdbprom/mimir.pw");enlist[`ca_file]!enlist"/etc/kdbprom/ca.pem";30000;
    // q:     `capacity`max_samples_per_send`sample_age_limit_ms!500000 2000 0);
    // q:   `dir`max_bytes!("/var/lib/kdbprom/spool";67108864))
    let ca = format!("{}/tests/tls/ca.pem", env!("CARGO_MANIFEST_DIR"));
    let auth = h.qdict(&["username", "password_file"], &[h.str("kdb"), h.str(&pw)]);
    let tls = h.qdict(&["ca_file"], &[h.str(&ca)]);
    let queue = h.qdict(&["capacity", "max_samples_per_send", "sample_age_limit_ms"], &[h.j(500_000), h.j(2_000), h.j(0)]);
    let rw = h.enlist_dict(
        &["name", "url", "protocol", "tenant", "basic_auth", "tls", "remote_timeout_ms", "queue"],
        &[h.s("mimir"), h.str(&format!("{url}/api/v1/push")), h.str("auto"), h.str("kdb-prod"), auth, tls, h.j(30_000), queue],
    );
    assert_eq!(h.qtype(rw), 98);
    let labels = h.qdict(&["env"], &[h.s("prod")]);
    let spool_d = h.qdict(&["dir", "max_bytes"], &[h.str(&spool), h.j(67_108_864)]);
    let keys = [
        "job",
        "instance",
        "labels",
        "interval_ms",
        "exit_deadline_ms",
        "push_timeout_ms",
        "sampler",
        "instrument",
        "serve_metrics",
        "max_series",
        "max_series_per_metric",
        "on_series_limit",
        "remote_write",
        "spool",
    ];
    let vals = [
        h.s("tp"),
        h.str("tp-a"),
        labels,
        h.j(15_000),
        h.j(2_000),
        h.j(5_000),
        h.s("auto"),
        h.b(true),
        h.b(false),
        h.j(100_000),
        h.j(10_000),
        h.s("overflow"),
        rw,
        spool_d,
    ];
    let cfg = h.qdict(&keys, &vals);
    assert_eq!(h.qtype(cfg), 99);
    // q: .prom.init cfg
    let from_q = session(h, &log, "the README's q twin", cfg);

    assert_eq!(from_file, from_q, "the file and its q twin push alike");
    let (targets, tenant, auth, labelled) = from_q;
    assert_eq!(targets, ["mimir"]);
    assert_eq!(tenant.as_deref(), Some("kdb-prod"));
    assert_eq!(auth, Some(basic("kdb", "s3cret")));
    assert!(labelled, "the static labels");

    // Every json block of the README (the tick plant's base file too) is a configuration.
    for b in &blocks {
        std::fs::write(&file, b).unwrap();
        init_ok(h, h.str(&file.to_string_lossy()), b);
        stop(h);
    }
    let _ = std::fs::remove_file(&file);
    let _ = std::fs::remove_dir_all(&spool);
}

/// The README's kdb+tick scripts call `.prom.init[::]`: KDBPROM_CONFIG (the README's tick.json)
/// is the base and KDBPROM_JOB sets the job over it.
#[test]
fn readme_tick_processes_configured_by_the_environment() {
    let _g = lock();
    let h = host();
    let (url, log) = receiver();
    let pw = secret_file("mimir.pw", "s3cret\n");
    let blocks = readme_json(&url, &pw, "/nonexistent");
    let tick = blocks.iter().find(|b| !b.contains("\"job\"")).expect("the README's tick.json (no job: the environment gives it)");
    let file = std::env::temp_dir().join(format!("kdbprom-host-config-{}-tick.json", std::process::id()));
    std::fs::write(&file, tick).unwrap();
    let path = file.to_string_lossy().into_owned();
    set_env(&[("KDBPROM_CONFIG", Some(path.as_str())), ("KDBPROM_JOB", Some("rdb"))]);
    log.lock().unwrap().clear();
    // q: .prom.init[::]
    let settings = init(h, h.id());
    let out = settings.as_ref().ok().map(|_| push(h));
    stop(h);
    set_env(&[("KDBPROM_CONFIG", None), ("KDBPROM_JOB", None)]);
    let _ = std::fs::remove_file(&file);
    let settings = settings.unwrap_or_else(|e| panic!(".prom.init[::] refused: '{e}"));
    assert_eq!(settings["job"], "rdb");
    let out = out.unwrap();
    assert_eq!(out.keys().map(String::as_str).collect::<Vec<_>>(), ["mimir"]);
    assert!(out.values().all(|(ok, _)| *ok), "{out:?}");
    let seen = log.lock().unwrap();
    assert!(seen.iter().all(|s| s.headers.get("x-scope-orgid").map(String::as_str) == Some("kdb-prod")));
    assert!(seen.iter().all(|s| s.headers.get("authorization") == Some(&basic("kdb", "s3cret"))));
}

// ---------------------------------------------------------------------------------------------
// Every shape.

/// A table's column `name` (borrowed).
fn column(h: &Host, t: K, name: &str) -> K {
    assert_eq!(h.qtype(t), 98);
    // SAFETY (test): a table holds its column dictionary.
    let cols = unsafe { (*t).value.table };
    h.dict_items(cols).into_iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no column {name}")).1
}

/// The builders make what q makes (the shapes every test below relies on).
#[test]
fn the_harness_builds_what_q_builds() {
    let _g = lock();
    let h = host();
    // enlist `url`n`s`c`auth!("http://x";1;`a;"t";`u`p!("u";"p")): a one-row table whose columns
    // are enlist of each value.
    let auth = h.qdict(&["u", "p"], &[h.str("u"), h.str("p")]);
    let t = h.enlist_dict(&["url", "n", "s", "c", "auth"], &[h.str("http://x"), h.j(1), h.s("a"), h.c(b't'), auth]);
    assert_eq!(h.qtype(t), 98);
    let types: Vec<i8> = ["url", "n", "s", "c", "auth"].iter().map(|c| h.qtype(column(h, t, c))).collect();
    assert_eq!(types, [0, 7, 11, 10, 98], "a string is a list of strings, atoms vectors, a dictionary a table");
    (h.r0)(t);
    // (`a`b!(1;"x");`a`b!(2;"y")): a table, columns collapsed; keys in another order do not conform.
    let t = h.list_of_dicts(&[h.qdict(&["a", "b"], &[h.j(1), h.str("xy")]), h.qdict(&["a", "b"], &[h.j(2), h.str("zw")])]);
    assert_eq!((h.qtype(t), h.qtype(column(h, t, "a")), h.qtype(column(h, t, "b"))), (98, 7, 0));
    (h.r0)(t);
    let l = h.list_of_dicts(&[h.qdict(&["a", "b"], &[h.j(1), h.j(2)]), h.qdict(&["b", "a"], &[h.j(2), h.j(1)])]);
    assert_eq!(h.qtype(l), 0);
    (h.r0)(l);
    // (`a;`b) is a symbol vector, (`a;1) a general list, `a`b!1 2 a dictionary of a long vector.
    let v = h.qlist(&[h.s("a"), h.s("b")]);
    assert_eq!(h.syms_of(v), ["a", "b"]);
    (h.r0)(v);
    let v = h.qlist(&[h.s("a"), h.j(1)]);
    assert_eq!(h.qtype(v), 0);
    (h.r0)(v);
    let d = h.qdict(&["a", "b"], &[h.j(1), h.j(2)]);
    // SAFETY (test): a dictionary is a 2-item list: keys, values.
    assert_eq!(h.qtype(unsafe { *(*d).value.list.G0.as_ptr().cast::<K>().add(1) }), 7);
    (h.r0)(d);
}

/// A target `name` on the receiver at `url` (path `/name`), with `extra` keys, as a q dictionary.
fn target(h: &Host, url: &str, name: &str, extra: &[(&str, K)]) -> K {
    let mut keys = vec!["url", "name"];
    let mut vals = vec![h.str(&format!("{url}/{name}")), h.s(name)];
    for (k, v) in extra {
        keys.push(k);
        vals.push(*v);
    }
    h.qdict(&keys, &vals)
}

/// `` `job`remote_write!(`shapes;rw) ``: the top level most rows use.
fn with_rw(h: &Host, rw: K) -> K {
    h.qdict(&["job", "exit_deadline_ms", "remote_write"], &[h.s("shapes"), h.j(300), rw])
}

/// Inits `cfg`, pushes, stops; the targets' outcomes (all must be ok) and what the receiver saw.
fn run(h: &Host, log: &Log, what: &str, cfg: K) -> Vec<String> {
    log.lock().unwrap().clear();
    init_ok(h, cfg, what);
    let out = push(h);
    assert!(out.values().all(|(ok, _)| *ok), "{what}: {out:?}");
    stop(h);
    let mut names: Vec<String> = out.into_keys().collect();
    names.sort();
    names
}

/// The one value of header `name` in the requests to `/path` (every request agrees).
fn header(log: &Log, path: &str, name: &str) -> Option<String> {
    let seen = log.lock().unwrap();
    let vals: Vec<Option<&String>> = seen.iter().filter(|s| s.path == format!("/{path}")).map(|s| s.headers.get(name)).collect();
    assert!(!vals.is_empty(), "no request to /{path}");
    assert!(vals.windows(2).all(|w| w[0] == w[1]), "/{path} {name}: {vals:?}");
    vals[0].cloned()
}

#[test]
fn every_shape_q_makes_of_nested_dictionaries_is_read() {
    let _g = lock();
    let h = host();
    let (url, log) = receiver();
    let pw_a = secret_file("pw_a", "pa");
    let pw_b = secret_file("pw_b", "pb");
    let auth = |user: &str, pw: &str| h.qdict(&["username", "password_file"], &[h.str(user), h.str(pw)]);

    // A dictionary.
    // `job`exit_deadline_ms`remote_write!(`shapes;300;`url`name`tenant!("http://…/a";`a;"ta"))
    let rw = target(h, &url, "a", &[("tenant", h.str("ta"))]);
    assert_eq!(h.qtype(rw), 99);
    assert_eq!(run(h, &log, "a dictionary", with_rw(h, rw)), ["a"]);
    assert_eq!(header(&log, "a", "x-scope-orgid").as_deref(), Some("ta"));

    // enlist of a dictionary holding a dictionary: a one-row table with a one-row table column;
    // a one-character tenant is a char atom in q ("t"), so its column is a one-char string.
    // enlist `url`name`tenant`basic_auth!("http://…/a";`a;"t";`username`password_file!("u";"/f"))
    let rw = target(h, &url, "a", &[("tenant", h.c(b't')), ("basic_auth", auth("u", &pw_a))]);
    let rw = h.enlist(rw);
    assert_eq!(h.qtype(rw), 98);
    assert_eq!(run(h, &log, "enlist of a dictionary", with_rw(h, rw)), ["a"]);
    assert_eq!(header(&log, "a", "x-scope-orgid").as_deref(), Some("t"));
    assert_eq!(header(&log, "a", "authorization"), Some(basic("u", "pa")));

    // A list of dictionaries with the same keys: a table; their basic_auth dictionaries have the
    // same keys too, so that column is a table as well.
    // (`url`name`tenant`basic_auth!(…;`a;"ta";`username`password_file!…);`url`name`tenant`basic_auth!(…;`b;"tb";…))
    let a = target(h, &url, "a", &[("tenant", h.str("ta")), ("basic_auth", auth("ua", &pw_a))]);
    let b = target(h, &url, "b", &[("tenant", h.str("tb")), ("basic_auth", auth("ub", &pw_b))]);
    let rw = h.list_of_dicts(&[a, b]);
    assert_eq!(h.qtype(rw), 98);
    assert_eq!(run(h, &log, "a list of conforming dictionaries", with_rw(h, rw)), ["a", "b"]);
    assert_eq!(header(&log, "a", "authorization"), Some(basic("ua", "pa")));
    assert_eq!(header(&log, "b", "authorization"), Some(basic("ub", "pb")));
    assert_eq!(header(&log, "b", "x-scope-orgid").as_deref(), Some("tb"));

    // A table whose column is a general list of dictionaries (their keys differ).
    let a = target(h, &url, "a", &[("headers", h.qdict(&["X-A"], &[h.str("1")]))]);
    let b = target(h, &url, "b", &[("headers", h.qdict(&["X-B", "X-C"], &[h.str("2"), h.str("3")]))]);
    let rw = h.list_of_dicts(&[a, b]);
    assert_eq!(h.qtype(rw), 98);
    assert_eq!(run(h, &log, "a table with a column of dictionaries", with_rw(h, rw)), ["a", "b"]);
    assert_eq!(header(&log, "a", "x-a").as_deref(), Some("1"));
    assert_eq!((header(&log, "b", "x-b").as_deref(), header(&log, "b", "x-c").as_deref()), (Some("2"), Some("3")));

    // A table whose column is a list of one-row tables: (enlist d1; enlist d2) inside each row.
    let a = target(h, &url, "a", &[("basic_auth", h.enlist(auth("ua", &pw_a)))]);
    let b = target(h, &url, "b", &[("basic_auth", h.enlist(auth("ub", &pw_b)))]);
    let rw = h.list_of_dicts(&[a, b]);
    assert_eq!(h.qtype(rw), 98);
    assert_eq!(run(h, &log, "a table with a column of one-row tables", with_rw(h, rw)), ["a", "b"]);
    assert_eq!(header(&log, "b", "authorization"), Some(basic("ub", "pb")));

    // A general list of one-row tables, and a general list of dictionaries that do not conform.
    let rw = h.qlist(&[h.enlist(target(h, &url, "a", &[])), h.enlist(target(h, &url, "b", &[("tenant", h.str("tb"))]))]);
    assert_eq!(h.qtype(rw), 0);
    assert_eq!(run(h, &log, "a list of one-row tables", with_rw(h, rw)), ["a", "b"]);
    let rw = h.list_of_dicts(&[target(h, &url, "a", &[]), target(h, &url, "b", &[("tenant", h.str("tb"))])]);
    assert_eq!(h.qtype(rw), 0);
    assert_eq!(run(h, &log, "a list of dictionaries that do not conform", with_rw(h, rw)), ["a", "b"]);
    assert_eq!(header(&log, "b", "x-scope-orgid").as_deref(), Some("tb"));

    // Depth 3: enlist of a target whose queue, tls and headers are one-row tables, inside a
    // configuration that is itself enlist of a dictionary (so every level is a table).
    let q = h.enlist_dict(&["capacity", "max_samples_per_send"], &[h.j(4_000), h.j(100)]);
    let tls = h.enlist_dict(&["insecure_skip_verify"], &[h.b(false)]);
    let headers = h.enlist_dict(&["X-Deep"], &[h.str("3")]);
    let rw = h.enlist(target(h, &url, "a", &[("queue", q), ("tls", tls), ("headers", headers)]));
    let labels = h.enlist_dict(&["env"], &[h.s("prod")]);
    let cfg = h.enlist_dict(&["job", "exit_deadline_ms", "labels", "remote_write"], &[h.s("shapes"), h.j(300), labels, rw]);
    assert_eq!(h.qtype(cfg), 98);
    assert_eq!(run(h, &log, "tables at every depth", cfg), ["a"]);
    assert_eq!(header(&log, "a", "x-deep").as_deref(), Some("3"));

    // A dictionary whose values are dictionaries with the same keys: q makes its values a table
    // (a dictionary of rows).
    // `pushgateway`remote_write!(enlist[`url]!enlist"http://…";enlist[`url]!enlist"http://…/a")
    let pg = h.qdict(&["url"], &[h.str(&format!("{url}/pg"))]);
    let rw = h.qdict(&["url"], &[h.str(&format!("{url}/a"))]);
    let cfg = h.qdict(&["pushgateway", "remote_write"], &[pg, rw]);
    // SAFETY (test): a dictionary is a 2-item list: keys, values.
    let vals = unsafe { *(*cfg).value.list.G0.as_ptr().cast::<K>().add(1) };
    assert_eq!(h.qtype(vals), 98, "q collapsed the values into a table");
    let rw_name = url.trim_start_matches("http://").to_string();
    assert_eq!(run(h, &log, "a dictionary of rows", cfg), vec![rw_name, "pushgateway".to_string()]);
    assert!(log.lock().unwrap().iter().any(|s| s.path.starts_with("/pg/metrics/job/kdb/instance/")), "the pushgateway row");

    // The pushgateway as enlist of a dictionary whose grouping is a dictionary (a table column).
    let pg = h.enlist_dict(&["url", "grouping"], &[h.str(&format!("{url}/pg")), h.qdict(&["desk"], &[h.s("rates")])]);
    let cfg = h.qdict(&["job", "exit_deadline_ms", "pushgateway"], &[h.s("shapes"), h.j(300), pg]);
    assert_eq!(run(h, &log, "an enlisted pushgateway", cfg), ["pushgateway"]);
    let paths: Vec<String> = log.lock().unwrap().iter().map(|s| s.path.clone()).collect();
    assert!(
        paths.iter().all(|p| p.starts_with("/pg/metrics/job/shapes/instance/") && p.ends_with("/desk/rates")),
        "the grouping: {paths:?}"
    );
}

#[test]
fn shapes_that_cannot_be_a_configuration_are_refused_naming_the_key() {
    let _g = lock();
    let h = host();
    let url = "http://127.0.0.1:9";
    // A keyed table: `name xkey (d1;d2).
    let t = h.list_of_dicts(&[target(h, url, "a", &[]), target(h, url, "b", &[])]);
    let keyed = h.xkey(1, t);
    assert_eq!(h.qtype(keyed), 99);
    assert_eq!(
        init(h, with_rw(h, keyed)).unwrap_err(),
        "prom: config.remote_write must be a dictionary or a table, not a keyed table (keyed on url): unkey it with 0!"
    );
    // A table of two rows where one dictionary is expected.
    let pg = h.list_of_dicts(&[h.qdict(&["url"], &[h.str(url)]), h.qdict(&["url"], &[h.str(url)])]);
    assert_eq!(
        init(h, h.qdict(&["job", "pushgateway"], &[h.s("x"), pg])).unwrap_err(),
        "prom: config key pushgateway: must be one dictionary, not a table of 2 rows (or a list of 2 dictionaries)"
    );
    // The keys of this release, of the wrong type or value.
    let rows: Vec<(K, &str)> = vec![
        (h.qdict(&["push_timeout_ms"], &[h.s("fast")]), "prom: config key push_timeout_ms must be a non-negative whole number"),
        (h.qdict(&["push_timeout_ms"], &[h.j(50)]), "prom: config key push_timeout_ms: 50 is outside 100..300000"),
        (
            with_rw(h, h.enlist(target(h, url, "a", &[("proxy_url", h.str("socks5://127.0.0.1:1080"))]))),
            "prom: config key remote_write[0].proxy_url: 'socks5://127.0.0.1:1080' must be an http:// or https:// proxy URL with a host (socks is not supported)",
        ),
        (
            h.qdict(
                &["pushgateway"],
                &[h.enlist_dict(&["url", "proxy_url", "proxy_from_environment"], &[h.str(url), h.str("http://p:3128"), h.b(true)])],
            ),
            "prom: config key pushgateway.proxy_from_environment: cannot be combined with proxy_url: set one of them",
        ),
        (
            h.qdict(&["job", "pushgateway"], &[h.s("x"), h.qdict(&["url", "proxy_from_environment"], &[h.str(url), h.s("yes")])]),
            "prom: config key pushgateway.proxy_from_environment must be a boolean",
        ),
        (
            with_rw(h, target(h, url, "a", &[("proxy_url", h.str("http://u:hunter2@p:3128"))])),
            "prom: config key remote_write[0].proxy_url: must not carry credentials (for an authenticating proxy use proxy_from_environment)",
        ),
    ];
    for (cfg, want) in rows {
        assert_eq!(init(h, cfg).unwrap_err(), want);
    }
}

// ---------------------------------------------------------------------------------------------
// Enterprise networks: proxies and the bound on q's thread.

/// Sets (or with None removes) environment variables for the scope of the test lock.
fn set_env(vars: &[(&str, Option<&str>)]) {
    for (k, v) in vars {
        // SAFETY (test): the environment is changed under the test lock, with no other thread of
        // this test binary reading it meanwhile (agents are stopped between tests).
        unsafe {
            match v {
                Some(v) => std::env::set_var(k, v),
                None => std::env::remove_var(k),
            }
        }
    }
}

const PROXY_VARS: [&str; 6] = ["HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"];

#[test]
fn proxy_url_carries_the_requests_and_environment_proxies_only_when_asked() {
    let _g = lock();
    let h = host();
    let (url, log) = receiver();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = faults::Proxy::start(port);
    let through_proxy = || proxy.log().into_iter().filter(|s| s.path.starts_with(&format!("{url}/"))).count();

    // proxy_url: every request goes through the proxy (absolute-form request line) and on. The
    // README's example, with this test's receiver and proxy in place of mimir and proxy.corp:
    // q: .prom.init `job`remote_write!(`eod_load;enlist `url`tenant`proxy_url!("https://mimir/api/v1/push";"desk-a";"http://proxy.corp:3128"))
    let rw = h.enlist_dict(&["url", "tenant", "proxy_url"], &[h.str(&format!("{url}/viaproxy")), h.str("desk-a"), h.str(&proxy.url())]);
    let cfg = h.qdict(&["job", "remote_write"], &[h.s("eod_load"), rw]);
    assert_eq!(run(h, &log, "proxy_url", cfg), [url.trim_start_matches("http://")]);
    assert!(through_proxy() >= 2, "init's push and .prom.push[] through the proxy: {:?}", proxy.log());
    assert!(proxy.forwarded() >= 2);
    assert!(log.lock().unwrap().iter().all(|s| s.path == format!("{url}/viaproxy")), "the receiver got them from the proxy");
    assert!(log.lock().unwrap().iter().all(|s| s.headers.get("x-scope-orgid").map(String::as_str) == Some("desk-a")));

    // The environment names the proxy: ignored by default (reqwest alone would follow it)...
    let purl = proxy.url();
    let saved: Vec<(&str, Option<String>)> =
        PROXY_VARS.iter().chain(&["NO_PROXY", "no_proxy"]).map(|v| (*v, std::env::var(v).ok())).collect();
    let mut vars: Vec<(&str, Option<&str>)> = PROXY_VARS.iter().map(|v| (*v, Some(purl.as_str()))).collect();
    vars.extend([("NO_PROXY", None), ("no_proxy", None)]);
    set_env(&vars);
    let before = through_proxy();
    let rw = h.enlist(target(h, &url, "direct", &[]));
    let direct = run(h, &log, "environment proxy, not asked", with_rw(h, rw));
    let after = through_proxy();
    // ... and followed with proxy_from_environment (the same test, so a change of reqwest's
    // defaults or of the variables' reach cannot make the first half pass for nothing).
    let rw = h.enlist(target(h, &url, "fromenv", &[("proxy_from_environment", h.b(true))]));
    let fromenv = run(h, &log, "environment proxy, asked", with_rw(h, rw));
    let asked = through_proxy();
    set_env(&saved.iter().map(|(k, v)| (*k, v.as_deref())).collect::<Vec<_>>());
    assert_eq!(direct, ["direct"]);
    assert_eq!(after, before, "HTTP_PROXY is ignored without proxy_from_environment");
    assert_eq!(fromenv, ["fromenv"]);
    assert!(asked >= after + 2, "proxy_from_environment follows HTTP_PROXY: {:?}", proxy.log());
    assert!(log.lock().unwrap().iter().all(|s| s.path == format!("{url}/fromenv")));
}

#[test]
fn push_and_text_return_within_push_timeout_ms_while_the_receiver_hangs() {
    let _g = lock();
    let h = host();
    let (url, _log) = receiver();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    let hung = faults::Proxy::start(port);
    hung.set_fault(faults::Fault::Hang);
    for bound_ms in [300, 1_500] {
        let rw = h.enlist(h.qdict(&["url", "name"], &[h.str(&format!("{}/api/v1/write", hung.url())), h.s("hung")]));
        let cfg = h.qdict(&["job", "push_timeout_ms", "exit_deadline_ms", "remote_write"], &[h.s("hang"), h.j(bound_ms), h.j(200), rw]);
        init_ok(h, cfg, "a hung receiver");
        // The push init starts is held by the receiver: text still answers at once.
        assert!(hung.wait_requests(1, Duration::from_secs(5)), "init's push reached the receiver");
        let t0 = Instant::now();
        assert!(text(h).contains("kdb_info"));
        assert!(t0.elapsed() < Duration::from_millis(bound_ms as u64), "text took {:?}", t0.elapsed());
        let t0 = Instant::now();
        let out = push(h);
        let took = t0.elapsed();
        assert!(took >= Duration::from_millis(bound_ms as u64 - 20), "push_timeout_ms {bound_ms}: returned after {took:?}");
        assert!(took < Duration::from_millis(bound_ms as u64 + 1_000), "push_timeout_ms {bound_ms}: held q {took:?}");
        let (ok, message) = &out["hung"];
        assert!(!ok);
        assert_eq!(
            message,
            &format!(
                "still in flight after push_timeout_ms ({bound_ms} ms): the push goes on in the background; .prom.stats[] counts its result"
            )
        );
        let t0 = Instant::now();
        stop(h);
        // exit_deadline_ms 200, and the agent's 500 ms margin past it at most (draining, the
        // spool's fsyncs, joining); the final push to the hung receiver waits until its own
        // deadline (200 less the spool's 50 ms), so not much less.
        assert!(t0.elapsed() <= Duration::from_millis(200 + 500), "stop within its exit deadline: {:?}", t0.elapsed());
        assert!(t0.elapsed() >= Duration::from_millis(100), "the hung receiver was given time: {:?}", t0.elapsed());
    }
}
