//! The text exposition checked by real parsers: promtool's linter, and prometheus_client's parser
//! for label values full of quotes, backslashes and newlines.

use kdbprom::agent::Agent;
use kdbprom::builtin::ProcessInfo;
use kdbprom::config::Config;
use kdbprom::event::Op;
use kdbprom::registry::Kind;
use proptest::prelude::*;
use std::io::Write;
use std::process::{Command, Stdio};

fn tool(name: &str) -> String {
    // scripts/test.sh installs these; a missing one is a failure, never a skip.
    match name {
        "python" => std::env::var("KDBPROM_TEST_PYTHON").unwrap_or_else(|_| ".work/py/bin/python".into()),
        other => other.into(),
    }
}

fn run(cmd: &str, args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd} is required (scripts/test.sh installs it): {e}"));
    child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

fn session() -> String {
    let p = ProcessInfo {
        version: "4.1".into(),
        release_date: "2024-10-16".into(),
        os: "l64".into(),
        cores: 2,
        host: "h".into(),
        port: 5000,
        timer: 0,
        pid: 1,
        license_expiry: Some(1.8e9),
        start_time: 1.7e9,
    };
    let cfg = Config { labels: [("env".to_string(), "pr\"od".to_string())].into(), ..Config::default() };
    let a = Agent::start(cfg, &p).unwrap();
    a.declare("app_rows_total", "Rows loaded, by \\table\\\nand source.", Kind::Counter, &["table"], &[]).unwrap();
    a.declare("app_queue_depth", "Queue depth.", Kind::Gauge, &[], &[]).unwrap();
    a.declare("app_load_seconds", "Load time.", Kind::Histogram, &["table"], &[0.001, 0.1, 1.0, 100000.0]).unwrap();
    a.declare("app_query_seconds", "Query time.", Kind::Summary, &["user"], &[0.5, 0.9, 0.99]).unwrap();
    for t in ["trade", "quo\"te", "back\\slash", "new\nline", ""] {
        let s = a.series("app_rows_total", &[t]).unwrap();
        a.record(s, Op::Inc, 12345678.0).unwrap();
        let h = a.series("app_load_seconds", &[t]).unwrap();
        a.record_vector(h, Op::Observe, &[0.0005, 0.05, 5.0, 1e6]).unwrap();
    }
    a.record(a.by_name("app_queue_depth").unwrap(), Op::Set, -3.5).unwrap();
    let q = a.series("app_query_seconds", &["alice"]).unwrap();
    a.record_vector(q, Op::Observe, &[0.1, 0.2, 0.3]).unwrap();
    a.series("app_query_seconds", &["bob"]).unwrap(); // empty window: NaN quantiles
    a.request(0, 0.000_25, true).unwrap();
    a.sample(
        &[("used", 1.0), ("heap", 2.0), ("peak", 3.0), ("wmax", 0.0), ("mmap", 0.0), ("mphy", 8e9), ("syms", 10.0), ("symw", 400.0)],
        2.0,
        Some(&[0.0, 4096.0]),
    );
    a.text().unwrap()
}

#[test]
fn promtool_check_metrics_finds_nothing() {
    let text = session();
    let (code, out, err) = run(&tool("promtool"), &["check", "metrics"], &text);
    assert_eq!((code, out.trim(), err.trim()), (0, "", ""), "promtool on:\n{text}");
}

/// One parsed sample: name, sorted labels, value.
type Parsed = (String, Vec<(String, String)>, f64);

fn python_parse(text: &str) -> Vec<Parsed> {
    let script = r#"
import sys, json
from prometheus_client.parser import text_string_to_metric_families
out = []
for f in text_string_to_metric_families(sys.stdin.read()):
    for s in f.samples:
        out.append([s.name, sorted(s.labels.items()), repr(s.value)])
print(json.dumps(out))
"#;
    let (code, out, err) = run(&tool("python"), &["-c", script], text);
    assert_eq!(code, 0, "python parser failed: {err}\n{text}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let labels =
                s[1].as_array().unwrap().iter().map(|p| (p[0].as_str().unwrap().to_string(), p[1].as_str().unwrap().to_string())).collect();
            (s[0].as_str().unwrap().to_string(), labels, s[2].as_str().unwrap().parse().unwrap())
        })
        .collect()
}

#[test]
fn python_parser_reads_back_the_session() {
    let samples = python_parse(&session());
    let rows: Vec<_> = samples.iter().filter(|s| s.0 == "app_rows_total").collect();
    assert_eq!(rows.len(), 5);
    for t in ["trade", "quo\"te", "back\\slash", "new\nline"] {
        assert!(rows.iter().any(|s| s.1.contains(&("table".into(), t.into())) && s.2 == 12345678.0), "{t:?} in {rows:?}");
    }
    let inf = samples.iter().find(|s| s.0 == "app_load_seconds_bucket" && s.1.contains(&("le".into(), "+Inf".into()))).unwrap();
    assert_eq!(inf.2, 4.0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4, ..ProptestConfig::default() })]
    /// Any label value survives text encoding and a real parser unchanged.
    #[test]
    fn label_values_round_trip_through_a_real_parser(values in proptest::collection::btree_set("[ -~\\n\\\\\"é€😀]{1,24}", 1..64)) {
        let p = ProcessInfo::default();
        let a = Agent::start(Config::default(), &p).unwrap();
        a.declare("rt_total", "x", Kind::Counter, &["v"], &[]).unwrap();
        for (i, v) in values.iter().enumerate() {
            let s = a.series("rt_total", &[v]).unwrap();
            a.record(s, Op::Inc, i as f64).unwrap();
        }
        let parsed = python_parse(&a.text().unwrap());
        for (i, v) in values.iter().enumerate() {
            prop_assert!(parsed.iter().any(|s| s.0 == "rt_total" && s.1 == vec![("v".to_string(), v.clone())] && s.2 == i as f64), "{:?}", v);
        }
    }
}
