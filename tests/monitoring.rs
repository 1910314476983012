//! The operator's kit in `monitoring/` proven against the library and real servers:
//! - the alert and KX 1.x compatibility rules pass `promtool check rules` and their unit tests, and
//!   every alert is tested both firing and not firing;
//! - every metric name (and every `label="value"` matcher) that monitoring/ refers to is one the
//!   library emits, read from the text exposition of a full session pushing to a remote-write
//!   target and a Pushgateway; the only exceptions are listed in [`NOT_EMITTED`];
//! - the Grafana dashboard's every panel expression, with Grafana's variables substituted, parses and
//!   returns data on a real Prometheus fed by the real .so (in KX's libe host) through remote write,
//!   and so do the compatibility rules; the alert expressions parse there;
//! - with `native_request_histograms: true` (no `_bucket` series, one native histogram), every
//!   latency panel and the latency alert still return data, from the native side of their `or`
//!   (promtool 2.42 cannot write native histogram input series, so this is where that side is tested).

mod common;
mod servers;

use common::{Host, host, lock};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// Names monitoring/ may refer to although the library does not emit them: (name, its labels
/// besides job and instance, why).
const NOT_EMITTED: [(&str, &[&str], &str); 1] = [("push_time_seconds", &[], "the Pushgateway's own, per group")];

const JOB: &str = "monitoring_demo";
const INSTANCE: &str = "demo-host:5001";

fn monitoring() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("monitoring")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(monitoring().join(rel)).unwrap_or_else(|e| panic!("monitoring/{rel}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// promtool

fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(monitoring())
        .output()
        .unwrap_or_else(|e| panic!("promtool is required (scripts/test.sh installs it): {e}"));
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool {}:\n{text}", args.join(" "));
    text
}

#[test]
fn rules_pass_promtool_check_and_unit_tests() {
    let c = promtool(&["check", "rules", "alerts.yml", "kx1-compat.rules.yml"]);
    assert!(c.contains("SUCCESS: 17 rules found"), "{c}");
    let t = promtool(&["test", "rules", "alerts_test.yml", "kx1-compat_test.yml"]);
    assert_eq!(t.matches("SUCCESS").count(), 2, "{t}");
}

/// `- alert: Name` lines of alerts.yml.
fn alert_names(rules: &str) -> Vec<String> {
    rules.lines().filter_map(|l| l.trim().strip_prefix("- alert:")).map(|n| n.trim().to_string()).collect()
}

#[test]
fn every_alert_is_tested_firing_and_not_firing() {
    let names = alert_names(&read("alerts.yml"));
    assert_eq!(names.len(), 17, "{names:?}");
    // In alerts_test.yml each case is `alertname: X` followed by `exp_alerts: []` (must not fire)
    // or `exp_alerts:` with `- exp_labels:` items (must fire with those).
    let test = read("alerts_test.yml");
    let lines: Vec<&str> = test.lines().map(str::trim).collect();
    let (mut firing, mut quiet) = (BTreeSet::new(), BTreeSet::new());
    for (i, l) in lines.iter().enumerate() {
        let Some(name) = l.strip_prefix("alertname:") else { continue };
        let name = name.trim().to_string();
        match lines.get(i + 1) {
            Some(&"exp_alerts: []") => quiet.insert(name),
            Some(&"exp_alerts:") if lines.get(i + 2).is_some_and(|n| n.starts_with("- exp_labels:")) => firing.insert(name),
            other => panic!("alerts_test.yml: unexpected line after alertname {name}: {other:?}"),
        };
    }
    for n in &names {
        assert!(firing.contains(n), "alert {n} has no test where it fires");
        assert!(quiet.contains(n), "alert {n} has no test where it does not fire");
    }
    let unknown: Vec<_> = firing.union(&quiet).filter(|n| !names.contains(n)).collect();
    assert!(unknown.is_empty(), "alerts_test.yml tests alerts that alerts.yml lacks: {unknown:?}");
}

// ---------------------------------------------------------------------------------------------
// What monitoring/ refers to

/// The `expr:` values of a rule file (single line, or a `|`/`>` block).
fn rule_exprs(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        let indent = l.len() - l.trim_start().len();
        if let Some(rest) = l.trim_start().strip_prefix("expr:") {
            let rest = rest.trim();
            if rest.starts_with('|') || rest.starts_with('>') {
                let mut block = Vec::new();
                while i + 1 < lines.len()
                    && (lines[i + 1].trim().is_empty() || lines[i + 1].len() - lines[i + 1].trim_start().len() > indent)
                {
                    i += 1;
                    block.push(lines[i].trim());
                }
                out.push(block.join(" "));
            } else {
                out.push(rest.trim_matches('\'').to_string());
            }
        }
        i += 1;
    }
    out
}

/// One metric selector in an expression: the metric name and its (label, op, value) matchers.
#[derive(Debug, Clone, PartialEq)]
struct Selector {
    name: String,
    matchers: Vec<(String, String, String)>,
}

/// Label names an expression groups or matches on (`by`, `without`, `on`, `ignoring`, `group_*`).
fn grouping_labels(expr: &str) -> BTreeSet<String> {
    scan(expr).1
}

fn selectors(expr: &str) -> Vec<Selector> {
    scan(expr).0
}

const AGGREGATORS: [&str; 14] = [
    "sum",
    "min",
    "max",
    "avg",
    "group",
    "stddev",
    "stdvar",
    "count",
    "count_values",
    "bottomk",
    "topk",
    "quantile",
    "limitk",
    "limit_ratio",
];
const KEYWORDS: [&str; 9] = ["and", "or", "unless", "bool", "offset", "inf", "nan", "atan2", "start"];
const LIST_KEYWORDS: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];

/// A small PromQL scanner, enough for the expressions we write: strings, durations, numbers and
/// Grafana's `$variables` are skipped; an identifier followed by `(` is a function; the label lists
/// after `by`/`without`/`on`/`ignoring`/`group_*` are collected; any other identifier is a metric.
fn scan(expr: &str) -> (Vec<Selector>, BTreeSet<String>) {
    let c: Vec<char> = expr.chars().collect();
    let (mut sels, mut labels) = (Vec::new(), BTreeSet::new());
    let mut i = 0;
    let ident_start = |ch: char| ch.is_ascii_alphabetic() || ch == '_' || ch == ':';
    let ident_char = |ch: char| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':';
    let skip_ws = |mut i: usize| {
        while i < c.len() && c[i].is_whitespace() {
            i += 1;
        }
        i
    };
    let string = |i: usize| -> (String, usize) {
        let q = c[i];
        let mut j = i + 1;
        let mut s = String::new();
        while j < c.len() && c[j] != q {
            if c[j] == '\\' && q != '`' && j + 1 < c.len() {
                j += 1;
            }
            s.push(c[j]);
            j += 1;
        }
        (s, j + 1)
    };
    let word = |i: usize| -> (String, usize) {
        let mut j = i;
        while j < c.len() && ident_char(c[j]) {
            j += 1;
        }
        (c[i..j].iter().collect(), j)
    };
    // `( a, b )` label list starting at '(' → (names, index after ')')
    let list = |i: usize| -> (Vec<String>, usize) {
        let mut j = i + 1;
        let mut names = Vec::new();
        while j < c.len() && c[j] != ')' {
            if ident_start(c[j]) {
                let (w, k) = word(j);
                names.push(w);
                j = k;
            } else {
                j += 1;
            }
        }
        (names, j + 1)
    };
    let matchers = |i: usize| -> (Vec<(String, String, String)>, usize) {
        let mut j = i + 1;
        let mut out = Vec::new();
        loop {
            j = skip_ws(j);
            if j >= c.len() || c[j] == '}' {
                return (out, j + 1);
            }
            if c[j] == ',' {
                j += 1;
                continue;
            }
            let (name, k) = word(j);
            assert!(!name.is_empty(), "matcher expected at {j} in {expr}");
            j = skip_ws(k);
            let mut op = String::new();
            while j < c.len() && "=!~".contains(c[j]) {
                op.push(c[j]);
                j += 1;
            }
            j = skip_ws(j);
            let (value, k) = string(j);
            out.push((name, op, value));
            j = k;
        }
    };
    while i < c.len() {
        let ch = c[i];
        if ch == '"' || ch == '\'' || ch == '`' {
            i = string(i).1;
        } else if ch == '[' {
            while i < c.len() && c[i] != ']' {
                i += 1;
            }
            i += 1;
        } else if ch == '$' {
            i += 1;
            if i < c.len() && c[i] == '{' {
                while i < c.len() && c[i] != '}' {
                    i += 1;
                }
                i += 1;
            } else {
                i = word(i).1;
            }
        } else if ch.is_ascii_digit() || (ch == '.' && c.get(i + 1).is_some_and(char::is_ascii_digit)) {
            while i < c.len() && (c[i].is_ascii_alphanumeric() || c[i] == '.') {
                i += 1;
            }
        } else if ch == '{' {
            let (m, j) = matchers(i);
            if let Some((_, _, n)) = m.iter().find(|(l, op, _)| l == "__name__" && op == "=") {
                sels.push(Selector { name: n.clone(), matchers: m.clone() });
            }
            i = j;
        } else if ident_start(ch) {
            let (w, j) = word(i);
            let k = skip_ws(j);
            let next = c.get(k).copied();
            if LIST_KEYWORDS.contains(&w.as_str()) {
                if next == Some('(') {
                    let (names, after) = list(k);
                    labels.extend(names);
                    i = after;
                } else {
                    i = j;
                }
            } else if KEYWORDS.contains(&w.as_str()) || next == Some('(') {
                i = j;
            } else if AGGREGATORS.contains(&w.as_str()) && ident_start(next.unwrap_or(' ')) {
                i = j; // `sum by (x) (...)`, `max without (y) (...)`
            } else if next == Some('{') {
                let (m, after) = matchers(k);
                sels.push(Selector { name: w, matchers: m });
                i = after;
            } else {
                sels.push(Selector { name: w, matchers: Vec::new() });
                i = j;
            }
        } else {
            i += 1;
        }
    }
    (sels, labels)
}

#[test]
fn the_scanner_finds_metrics_matchers_and_grouping_labels() {
    let e = r#"-sum by (kind) (rate(kdb_x_total{job="$job",instance=~"$instance", kind="ipc"}[$__rate_interval])) / on (job) group_left max without (le) (label_replace(up, "a", "$1", "b", "(.*)")) > 0.5 and bool 1e-3 offset 5m"#;
    let s = selectors(e);
    assert_eq!(s.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["kdb_x_total", "up"]);
    assert_eq!(s[0].matchers[2], ("kind".into(), "=".into(), "ipc".into()));
    assert_eq!(grouping_labels(e), ["job", "kind", "le"].into_iter().map(String::from).collect());
    let s = selectors(r#"histogram_quantile(0.99, rate(a_bucket{le=~`0\.25|\+Inf`}[5m])) - time() < 30 * 86400"#);
    assert_eq!(s, [Selector { name: "a_bucket".into(), matchers: vec![("le".into(), "=~".into(), r"0\.25|\+Inf".into())] }]);
}

/// Everything monitoring/ refers to, each with where it comes from.
struct Referenced {
    selectors: Vec<(String, Selector)>,
    labels: Vec<(String, String)>,
}

fn referenced() -> Referenced {
    fn add(r: &mut Referenced, from: String, expr: &str) {
        r.selectors.extend(selectors(expr).into_iter().map(|s| (from.clone(), s)));
        r.labels.extend(grouping_labels(expr).into_iter().map(|l| (from.clone(), l)));
    }
    let mut r = Referenced { selectors: Vec::new(), labels: Vec::new() };
    let alerts = read("alerts.yml");
    for e in rule_exprs(&alerts) {
        add(&mut r, format!("alerts.yml: {e}"), &e);
    }
    // The compatibility rules' inputs (their outputs are KX's names, recorded by them).
    for e in rule_exprs(&read("kx1-compat.rules.yml")) {
        add(&mut r, format!("kx1-compat.rules.yml: {e}"), &e);
    }
    for (title, e) in dashboard_exprs() {
        add(&mut r, format!("grafana/kdbprom.json panel {title:?}: {e}"), &e);
    }
    for (name, metric_selector, label) in dashboard_variables() {
        add(&mut r, format!("grafana/kdbprom.json variable {name}"), &metric_selector);
        r.labels.push((format!("grafana/kdbprom.json variable {name}"), label));
    }
    // Label names the alerts' annotations print.
    for part in alerts.split("$labels.").skip(1) {
        let l: String = part.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
        r.labels.push(("alerts.yml annotations".into(), l));
    }
    // The unit tests' input series stand for what the library pushes: same names.
    for f in ["alerts_test.yml", "kx1-compat_test.yml"] {
        for l in read(f).lines() {
            if let Some(s) = l.trim().strip_prefix("- series:") {
                let s = s.trim().trim_matches('\'');
                r.selectors.extend(selectors(s).into_iter().take(1).map(|sel| (format!("{f}: {s}"), sel)));
            }
        }
    }
    r
}

fn dashboard() -> Value {
    serde_json::from_str(&read("grafana/kdbprom.json")).expect("grafana/kdbprom.json is JSON")
}

/// (panel title, expression) of every target of every panel, rows' nested panels included.
fn dashboard_exprs() -> Vec<(String, String)> {
    fn walk(panels: &[Value], out: &mut Vec<(String, String)>) {
        for p in panels {
            walk(p["panels"].as_array().map_or(&[][..], Vec::as_slice), out);
            for t in p["targets"].as_array().map_or(&[][..], Vec::as_slice) {
                let e = t["expr"].as_str().unwrap_or_else(|| panic!("panel {}: a target without expr", p["title"]));
                out.push((p["title"].as_str().unwrap_or("").to_string(), e.to_string()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dashboard()["panels"].as_array().expect("panels"), &mut out);
    out
}

/// (variable, metric selector, label) of the `label_values(selector, label)` query variables.
fn dashboard_variables() -> Vec<(String, String, String)> {
    let d = dashboard();
    let mut out = Vec::new();
    for v in d["templating"]["list"].as_array().expect("templating.list") {
        if v["type"] != "query" {
            continue;
        }
        let q = v["query"]["query"].as_str().or_else(|| v["query"].as_str()).expect("a query variable's query");
        let inner = q
            .strip_prefix("label_values(")
            .and_then(|s| s.strip_suffix(')'))
            .unwrap_or_else(|| panic!("{q}: label_values(metric, label) expected"));
        let (sel, label) = inner.rsplit_once(',').expect("label_values(metric, label)");
        out.push((v["name"].as_str().unwrap().to_string(), sel.trim().to_string(), label.trim().to_string()));
    }
    out
}

#[test]
fn dashboard_has_job_and_instance_variables_and_covers_the_issue() {
    let vars: Vec<String> = dashboard_variables().into_iter().map(|(n, _, _)| n).collect();
    assert_eq!(vars, ["job", "instance"]);
    // As the README says: a Prometheus data source variable, and job and instance multi-select with All.
    let d = dashboard();
    let list = d["templating"]["list"].as_array().unwrap();
    let ds = list.iter().find(|v| v["name"] == "datasource").expect("a datasource variable");
    assert_eq!((ds["type"].as_str(), ds["query"].as_str()), (Some("datasource"), Some("prometheus")), "{ds}");
    for name in ["job", "instance"] {
        let v = list.iter().find(|v| v["name"] == name).unwrap();
        assert!(v["multi"] == true && v["includeAll"] == true && v["allValue"] == ".*", "variable {name}: {v}");
    }
    fn uses_the_variable(panels: &[Value]) {
        for p in panels {
            uses_the_variable(p["panels"].as_array().map_or(&[][..], Vec::as_slice));
            if p["type"] == "row" {
                continue;
            }
            assert_eq!(p["datasource"]["uid"], "${datasource}", "panel {}", p["title"]);
            for t in p["targets"].as_array().unwrap() {
                assert_eq!(t["datasource"]["uid"], "${datasource}", "panel {}", p["title"]);
            }
        }
    }
    uses_the_variable(d["panels"].as_array().unwrap());
    let exprs = dashboard_exprs();
    for (title, e) in &exprs {
        assert!(
            e.contains(r#"job=~"$job""#) && e.contains(r#"instance=~"$instance""#) && !e.contains(r#"job="$job""#),
            "panel {title:?} does not filter by $job and $instance (both multi-valued): {e}"
        );
    }
    // Latency works with classic buckets and with native histograms: each classic form is `or`-ed
    // with the native one (the family's own name, no `_bucket`/`_sum`/`_count`).
    let latency: Vec<_> = exprs.iter().filter(|(_, e)| e.contains("kdb_request_duration_seconds")).collect();
    assert_eq!(latency.len(), 4, "{latency:?}");
    for (title, e) in &latency {
        let (classic, native) = e.split_once(" or ").unwrap_or_else(|| panic!("panel {title:?}: no native form: {e}"));
        assert!(classic.contains("kdb_request_duration_seconds_") && !classic.contains("kdb_request_duration_seconds{"), "{title:?}: {e}");
        assert!(native.contains("kdb_request_duration_seconds{") && !native.contains("kdb_request_duration_seconds_"), "{title:?}: {e}");
    }
    // A "Batch jobs" row: each panel reads the last run's values over a day.
    let mut row = String::new();
    let mut batch = Vec::new();
    for p in d["panels"].as_array().unwrap() {
        if p["type"] == "row" {
            row = p["title"].as_str().unwrap_or("").to_string();
        } else if row.starts_with("Batch jobs") {
            batch.extend(p["targets"].as_array().unwrap().iter().map(|t| t["expr"].as_str().unwrap().to_string()));
        }
    }
    assert!(batch.len() >= 8, "the Batch jobs row: {batch:?}");
    for e in &batch {
        assert!(e.contains("last_over_time(") && e.contains("[1d])"), "a Batch jobs panel not over the last day: {e}");
    }
    let batch = batch.join("\n");
    for m in [
        "process_start_time_seconds",
        "kdbprom_last_sample_timestamp_seconds",
        "kdbprom_last_success_timestamp_seconds",
        "kdbprom_events_recorded_total",
        "kdbprom_events_dropped_total",
        "kdbprom_samples_sent_total",
        "kdbprom_samples_failed_total",
    ] {
        assert!(batch.contains(m), "the Batch jobs row does not show {m}");
    }
    let all = exprs.iter().map(|(_, e)| e.as_str()).collect::<Vec<_>>().join("\n");
    // requests, errors and latency by handler, memory, symbols, handles, connections, licence,
    // push health, drops, queue, spool
    for m in [
        "kdb_requests_total",
        "kdb_request_errors_total",
        "kdb_request_duration_seconds_bucket",
        "kdb_memory_heap_bytes",
        "kdb_symbols",
        "kdb_open_handles",
        "kdb_connections_opened_total",
        "kdb_license_expiry_timestamp_seconds",
        "kdbprom_pushes_total",
        "kdbprom_last_success_timestamp_seconds",
        "kdbprom_events_dropped_total",
        "kdbprom_samples_failed_total",
        "kdbprom_queue_length",
        "kdbprom_queue_samples",
        "kdbprom_spool_samples",
        // issue 17: the process collector, output queues and .prom.collect failures
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "kdb_ipc_output_queue_bytes",
        "kdb_ipc_output_queue_max_bytes",
        "kdb_ipc_output_queue_handles",
        "kdbprom_collect_errors_total",
    ] {
        assert!(all.contains(m), "no panel shows {m}");
    }
    assert!(all.contains("by (handler"), "requests are not split by handler");
    assert!(all.contains("rate(process_cpu_seconds_total{"), "CPU is not shown as a rate");
    assert!(all.contains("by (collector)"), "collector failures are not split by collector");
}

// ---------------------------------------------------------------------------------------------
// A session of the real .so in the libe host, pushing to a real Prometheus and Pushgateway

struct Session {
    prom: servers::Server,
    _pgw: servers::Server,
}

fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

fn pushed_ok(h: &Host, d: kdbplus::api::K) -> BTreeMap<String, bool> {
    let out = h
        .dict_items(d)
        .into_iter()
        .map(|(t, o)| {
            let f: BTreeMap<String, kdbplus::api::K> = h.dict_items(o).into_iter().collect();
            (t, h.boolean(f["ok"]))
        })
        .collect();
    (h.r0)(d);
    out
}

/// Starts the receivers and the library, and records `rounds` rounds of a demo workload, each
/// pushed at once: process samples (with .z.W's bytes per handle, one handle's queue growing),
/// connections, requests of every handler (some failing, some slow), a user counter, and a
/// `.prom.collect` gauge whose collector has failed once. The agent is left running (stale markers would end the series at stop).
/// With `native`, the request durations are a native histogram (`native_request_histograms`) and
/// Prometheus runs with `--enable-feature=native-histograms` to take them.
fn session(h: &Host, rounds: usize, native: bool) -> Session {
    let prom = if native { servers::prometheus_with(&["--enable-feature=native-histograms"]) } else { servers::prometheus(None) };
    let pgw = servers::pushgateway();
    let _ = h.call("kdbprom_stop", &[h.id()]);
    let procinfo = h.dict(
        &["version", "release_date", "os", "cores", "host", "port", "pid", "license_expiry"],
        &[
            h.f(4.1),
            h.str("2024-10-16"),
            h.s("l64"),
            h.j(8),
            h.s("demo-host"),
            h.j(5001),
            h.j(i64::from(std::process::id())),
            h.f((now() / 86400.0).floor() * 86400.0 + 40.0 * 86400.0),
        ],
    );
    let cfg = h.dict(
        &["job", "instance", "labels", "interval_ms", "max_series_per_metric", "pushgateway", "remote_write", "native_request_histograms"],
        &[
            h.s(JOB),
            h.s(INSTANCE),
            h.dict(&["desk"], &[h.s("rates")]),
            h.j(60_000),
            // Low, so the clients below overflow (the built-ins are exempt).
            h.j(3),
            h.dict(&["url"], &[h.str(&format!("http://127.0.0.1:{}", pgw.port))]),
            h.list(&[h.dict(&["url", "name"], &[h.str(&format!("http://127.0.0.1:{}/api/v1/write", prom.port)), h.s("prometheus")])]),
            h.b(native),
        ],
    );
    let r = h.ok("kdbprom_init", &[cfg, procinfo]);
    (h.r0)(r);
    h.ok("kdbprom_declare", &[h.s("counter"), h.s("eod_rows_loaded_total"), h.str("Rows loaded."), h.syms(&["table"]), h.id()]);
    let rows = h.ok("kdbprom_series", &[h.s("eod_rows_loaded_total"), h.str("trade")]);
    let rows = h.long(rows);
    // Five clients for room for three: two fold into the family's overflow series.
    h.ok("kdbprom_declare", &[h.s("counter"), h.s("client_queries_total"), h.str("Queries by client."), h.syms(&["client"]), h.id()]);
    let clients: Vec<i64> = (0..5)
        .map(|c| {
            let s = h.ok("kdbprom_series", &[h.s("client_queries_total"), h.str(&format!("c{c}"))]);
            h.long(s)
        })
        .collect();
    // A .prom.collect family as the script's sampler runs it: one good result, and one failure
    // handed to collectfail (so kdbprom_collect_errors_total{collector} has a series).
    h.ok("kdbprom_declare", &[h.s("gauge"), h.s("tp_subscribers"), h.str("Subscribers by table."), h.syms(&["table"]), h.id()]);
    h.ok("kdbprom_collect", &[h.s("tp_subscribers"), h.qdict(&["trade"], &[h.j(3)])]);
    h.ok("kdbprom_collectfail", &[h.s("tp_subscribers"), h.str("type")]);
    for round in 0..rounds {
        let r = round as i64;
        // .Q.w[] and `"j"$sum each value .z.W` (bytes waiting per handle), as the q script's sampler
        // passes them (a -w limit is set): three handles, one with a queue that grows each round.
        let qw = (h.xd)(
            h.syms(&["used", "heap", "peak", "wmax", "mmap", "mphy", "syms", "symw"]),
            h.longs(&[
                200_000_000 + r * 5_000_000,
                671_088_640,
                805_306_368,
                8_589_934_592,
                1_048_576,
                16_000_000_000,
                1_234 + r * 10,
                56_789 + r * 400,
            ]),
        );
        h.ok("kdbprom_sample", &[qw, h.longs(&[0, 2_000_000 + r * 100_000, 10])]);
        // handles 100+: two IPC connections opened and one closed, a websocket opened (per round)
        for (kind, handle, opened) in [(0, 100, true), (0, 101, true), (0, 100, false), (1, 102, true)] {
            h.ok("kdbprom_conn", &[h.j(kind), h.i(handle), h.b(opened)]);
        }
        for handler in 0..6i64 {
            for n in 0..(3 + handler) {
                h.ok("kdbprom_begin", &[h.j(handler)]);
                if n == 0 && handler < 2 {
                    std::thread::sleep(Duration::from_millis(20)); // a slow one
                }
                let failed = n % 4 == 3;
                h.ok(if failed { "kdbprom_fail" } else { "kdbprom_end" }, &[h.j(handler)]);
            }
        }
        h.ok("kdbprom_inc", &[h.j(rows), h.j(1_000 + r)]);
        for &c in &clients {
            h.ok("kdbprom_inc", &[h.j(c), h.j(1)]);
        }
        // What the .z.pw and .z.bm wrappers report.
        h.ok("kdbprom_event", &[h.s("auth_failure")]);
        h.ok("kdbprom_event", &[h.s("bad_message")]);
        let ok = pushed_ok(h, h.ok("kdbprom_push", &[h.id()]));
        assert_eq!(ok, BTreeMap::from([("prometheus".to_string(), true), ("pushgateway".to_string(), true)]), "round {round}");
        if round + 1 < rounds {
            std::thread::sleep(Duration::from_millis(1_100));
        }
    }
    Session { prom, _pgw: pgw }
}

fn stop(h: &Host) {
    if let Ok(d) = h.call("kdbprom_stop", &[h.id()])
        && !d.is_null()
    {
        (h.r0)(d);
    }
}

/// An instant query: Ok(result rows) or Err(the error Prometheus gave).
fn instant(port: u16, q: &str) -> Result<Vec<Value>, String> {
    let v: Value = servers::http()
        .get(format!("http://127.0.0.1:{port}/api/v1/query"))
        .query(&[("query", q), ("time", &format!("{:.3}", now()))])
        .send()
        .map_err(|e| e.to_string())?
        .json()
        .map_err(|e| e.to_string())?;
    if v["status"] != "success" {
        return Err(format!("{}: {}", v["errorType"], v["error"]));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

/// Grafana's variables as a dashboard on this session would have them.
fn substitute(e: &str) -> String {
    let instance_re: String = INSTANCE
        .chars()
        .flat_map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == ':' { vec![c] } else { vec!['\\', '\\', c] })
        .collect();
    let out = e
        .replace("${__rate_interval}", "1m")
        .replace("$__rate_interval", "1m")
        .replace("${__range}", "1h")
        .replace("$__range", "1h")
        .replace("${__interval}", "15s")
        .replace("$__interval", "15s")
        .replace("${job}", JOB)
        .replace("$job", JOB)
        .replace("${instance}", &instance_re)
        .replace("$instance", &instance_re);
    assert!(!out.contains('$'), "a Grafana variable is left in {out}");
    out
}

#[test]
fn every_dashboard_panel_returns_data_from_a_live_session() {
    let _g = lock();
    let h = host();
    let s = session(h, 6, false);
    let port = s.prom.port;
    let mut failures = Vec::new();
    // The variables' label_values() lists hold this session's job and instance.
    for (name, sel, label) in dashboard_variables() {
        let v: Value = servers::http()
            .get(format!("http://127.0.0.1:{port}/api/v1/label/{label}/values"))
            .query(&[("match[]", substitute(&sel))])
            .send()
            .unwrap()
            .json()
            .unwrap();
        let want = if name == "job" { JOB } else { INSTANCE };
        if !v["data"].as_array().is_some_and(|a| a.iter().any(|x| x == want)) {
            failures.push(format!("variable {name}: label_values({sel}, {label}) lacks {want}: {v}"));
        }
    }
    let panels = dashboard_exprs();
    for (title, e) in &panels {
        match instant(port, &substitute(e)) {
            Ok(rows) if rows.is_empty() => failures.push(format!("panel {title:?}: no data for {e}")),
            Ok(_) => {}
            Err(err) => failures.push(format!("panel {title:?}: {err} for {e}")),
        }
    }
    // The KX 1.x compatibility rules' expressions return data on the same session, and the alert
    // expressions parse (they return nothing here: the session is healthy).
    for e in rule_exprs(&read("kx1-compat.rules.yml")) {
        match instant(port, &e) {
            Ok(rows) if rows.is_empty() => failures.push(format!("kx1-compat rule: no data for {e}")),
            Ok(_) => {}
            Err(err) => failures.push(format!("kx1-compat rule: {err} for {e}")),
        }
    }
    for e in rule_exprs(&read("alerts.yml")) {
        if let Err(err) = instant(port, &e) {
            failures.push(format!("alert: {err} for {e}"));
        }
    }
    stop(h);
    assert!(failures.is_empty(), "{} panel expressions checked; failures:\n{}", panels.len(), failures.join("\n"));
    assert!(panels.len() >= 59, "{} panel expressions", panels.len());
}

#[test]
fn latency_panels_and_alert_work_with_native_request_histograms() {
    let _g = lock();
    let h = host();
    let s = session(h, 6, true);
    let port = s.prom.port;
    let mut failures = Vec::new();
    // The session really is native: the family's own series, no classic ones.
    let rows = |q: &str| instant(port, q).unwrap_or_else(|e| panic!("{q}: {e}"));
    if !rows(r#"{__name__=~"kdb_request_duration_seconds_.+"}"#).is_empty() {
        failures.push("classic request-duration series in a native session".to_string());
    }
    if rows("histogram_count(kdb_request_duration_seconds)").is_empty() {
        failures.push("no native kdb_request_duration_seconds".to_string());
    }
    let latency: Vec<_> = dashboard_exprs().into_iter().filter(|(_, e)| e.contains("kdb_request_duration_seconds")).collect();
    assert_eq!(latency.len(), 4, "{latency:?}");
    for (title, e) in &latency {
        match instant(port, &substitute(e)) {
            Ok(r) if r.is_empty() => failures.push(format!("panel {title:?}: no data for {e}")),
            Ok(_) => {}
            Err(err) => failures.push(format!("panel {title:?}: {err} for {e}")),
        }
    }
    // The alert, its threshold lowered from 1 s to 0 so that this quick session's p99 passes it.
    let alert =
        rule_exprs(&read("alerts.yml")).into_iter().find(|e| e.contains("kdb_request_duration_seconds")).expect("the latency alert");
    let lowered = alert.replace(") > 1", ") > 0");
    assert_ne!(lowered, alert, "the latency alert's threshold is not `) > 1`: {alert}");
    match instant(port, &lowered) {
        Ok(r) if r.is_empty() => failures.push(format!("latency alert: no data for {lowered}")),
        Ok(r) => {
            for row in &r {
                let handler = row["metric"]["handler"].as_str().unwrap_or("");
                if handler.is_empty() || handler == "timer" || row["metric"]["desk"] != "rates" {
                    failures.push(format!("latency alert: a row without its handler and static labels, or of the timer: {row}"));
                }
            }
        }
        Err(err) => failures.push(format!("latency alert: {err} for {lowered}")),
    }
    stop(h);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Sample lines of a text exposition: metric name → label sets.
fn exposition(text: &str) -> BTreeMap<String, Vec<BTreeMap<String, String>>> {
    let mut out: BTreeMap<String, Vec<BTreeMap<String, String>>> = BTreeMap::new();
    for l in text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()) {
        let sel = match l.rfind('}') {
            Some(end) => &l[..=end],
            None => l.split(' ').next().unwrap_or(l),
        };
        let s = selectors(sel).into_iter().next().unwrap_or_else(|| panic!("exposition line {l}"));
        out.entry(s.name).or_default().push(s.matchers.into_iter().map(|(k, _, v)| (k, v)).collect());
    }
    out
}

#[test]
fn every_metric_monitoring_refers_to_is_emitted() {
    let _g = lock();
    let h = host();
    let _s = session(h, 2, false);
    let text = h.ok("kdbprom_text", &[h.id()]);
    let text = h.string(text);
    stop(h);
    let emitted = exposition(&text);
    // A histogram family's own name is its native series (remote write): its labels are those of
    // its `_count` series.
    let histograms: BTreeSet<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" histogram")).collect();
    // Per-target series of both kinds of target are there, so the check covers them.
    for t in ["prometheus", "pushgateway"] {
        assert!(
            emitted["kdbprom_last_success_timestamp_seconds"].iter().any(|l| l.get("target").map(String::as_str) == Some(t)),
            "no series of target {t}:\n{text}"
        );
    }
    let allowed: BTreeMap<&str, &str> = NOT_EMITTED.iter().map(|(n, _, why)| (*n, *why)).collect();
    let label_names: BTreeSet<&str> = emitted
        .values()
        .flatten()
        .flat_map(|l| l.keys().map(String::as_str))
        .chain(["job", "instance"])
        .chain(NOT_EMITTED.iter().flat_map(|(_, l, _)| l.iter().copied()))
        .collect();
    let r = referenced();
    let mut problems = BTreeSet::new();
    let mut used_exceptions = BTreeSet::new();
    for (from, s) in &r.selectors {
        let native = || histograms.contains(s.name.as_str()).then(|| emitted.get(&format!("{}_count", s.name))).flatten();
        let Some(series) = emitted.get(&s.name).or_else(native) else {
            if allowed.contains_key(s.name.as_str()) {
                used_exceptions.insert(s.name.clone());
            } else {
                problems.insert(format!("{} is not emitted by the library ({from})", s.name));
            }
            continue;
        };
        for (label, op, value) in &s.matchers {
            // job, instance and target values are configuration, metric and collector values the
            // user's own family names, and schedule a static label the operator sets (`labels`, read
            // by the *Weekdays overdue alerts): not vocabulary.
            if op != "="
                || value.is_empty()
                || value.contains('$')
                || ["job", "instance", "target", "metric", "collector", "schedule"].contains(&label.as_str())
            {
                continue;
            }
            if !series.iter().any(|l| l.get(label) == Some(value)) {
                problems.insert(format!("no {}{{{label}=\"{value}\"}} is emitted ({from})", s.name));
            }
        }
    }
    for (from, l) in &r.labels {
        if !label_names.contains(l.as_str()) {
            problems.insert(format!("label {l} is on no emitted series ({from})"));
        }
    }
    assert!(
        problems.is_empty(),
        "monitoring/ refers to what the library does not emit:\n{}",
        problems.into_iter().collect::<Vec<_>>().join("\n")
    );
    // The exceptions are used, so the list stays exact.
    assert_eq!(used_exceptions, allowed.keys().map(|s| s.to_string()).collect(), "NOT_EMITTED lists names monitoring/ no longer uses");
    assert!(r.selectors.len() > 100, "{} selectors", r.selectors.len());
}
