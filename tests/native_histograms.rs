//! Native histograms end to end: declared through the real .so in the libe host exactly as
//! q/kdbprom.q does (`.prom.histogram[name;help;labels;b]` passes `b` unchanged), pushed over
//! remote write 1.0 to a real Prometheus with `--enable-feature=native-histograms` and queried
//! back with histogram_count, histogram_sum and histogram_quantile; the Pushgateway gets the
//! text exposition, where a native-only histogram is just `_sum` and `_count`.

mod common;
mod servers;

use common::life::Life;
use common::{host, lock};
use servers::{query, value};

/// A fixed sample of 1,000 values: 990 lognormal-ish latencies around 5 ms (σ = 1.2 in log
/// space, from splitmix64 through Box-Muller), 5 zeros and 5 negative values.
fn sample() -> Vec<f64> {
    let mut v = common::lognormal(0x005e_ed0f_2042_u64, 990, 1.2);
    v.extend([0.0; 5]);
    v.extend([-0.001, -0.02, -0.3, -1.5, -7.0]);
    v
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0
}

/// The one value of an instant query, or None when it has no result.
fn scalar(port: u16, q: &str) -> Option<f64> {
    let rows = query(port, q);
    assert!(rows.len() <= 1, "{q}: {rows:?}");
    rows.first().map(|r| r.1)
}

/// Seconds since the Unix epoch.
fn now() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// The one value of an instant query at `time`, or None.
fn scalar_at(port: u16, q: &str, time: f64) -> Option<f64> {
    let v: serde_json::Value = servers::http()
        .get(format!("http://127.0.0.1:{port}/api/v1/query"))
        .query(&[("query", q), ("time", &format!("{time:.3}"))])
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(v["status"], "success", "{v}");
    let r = v["data"]["result"].as_array().unwrap();
    assert!(r.len() <= 1, "{q}: {v}");
    r.first().map(|r| r["value"][1].as_str().unwrap().parse().unwrap())
}

#[test]
fn native_histograms_in_prometheus_and_the_pushgateway() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus_with(&["--enable-feature=native-histograms"]);
    let pgw = servers::pushgateway();
    let rw =
        h.dict(&["url", "name", "protocol"], &[h.str(&format!("http://127.0.0.1:{}/api/v1/write", prom.port)), h.s("prom"), h.str("1.0")]);
    let pg = h.dict(&["url"], &[h.str(&format!("http://127.0.0.1:{}", pgw.port))]);
    let life = Life::init_with(
        &["job", "instance", "remote_write", "pushgateway", "interval_ms"],
        &[h.s("nhtest"), h.s("box:1"), h.list(&[rw]), pg, h.j(3_600_000)],
    );
    // .prom.histogram[`nh_seconds;"...";`path;`native]
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("nh_seconds"), h.str("Native only."), h.syms(&["path"]), h.s("native")]);
    // .prom.histogram[`nd_seconds;"...";();`buckets`factor`zero_threshold`max_buckets!(0.001 0.01 0.1 1f;1.05;1e-6;200)]
    let dict = h.dict(
        &["buckets", "factor", "zero_threshold", "max_buckets"],
        &[h.floats(&[0.001, 0.01, 0.1, 1.0]), h.f(1.05), h.f(1e-6), h.j(200)],
    );
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("nd_seconds"), h.str("Native and classic."), h.id(), dict]);
    let values = sample();
    let s = h.ok("kdbprom_series", &[h.s("nh_seconds"), h.syms(&["/query"])]);
    // A vector, then single values: both record paths.
    h.ok("kdbprom_observe", &[(h.r1)(s), h.floats(&values[..900])]);
    for &v in &values[900..] {
        h.ok("kdbprom_observe", &[(h.r1)(s), h.f(v)]);
    }
    (h.r0)(s);
    h.ok("kdbprom_observe", &[h.s("nd_seconds"), h.floats(&values)]);
    let (sum, med) = (values.iter().sum::<f64>(), median(&values));

    // What the Pushgateway is sent: the native-only family is just _sum and _count.
    let t = life.text();
    let lines: Vec<&str> = t.lines().filter(|l| l.starts_with("nh_seconds")).collect();
    assert_eq!(lines.len(), 2, "{t}");
    assert!(lines[0].starts_with("nh_seconds_sum{path=\"/query\"} ") && lines[1] == "nh_seconds_count{path=\"/query\"} 1000", "{t}");
    assert!(t.contains("\nnd_seconds_bucket{le=\"0.01\"} ") && t.contains("\nnd_seconds_count 1000\n"), "{t}");

    let o = life.push();
    assert!(o["prom"].ok && o["prom"].status == 204, "{o:?}");
    assert_eq!((o["pushgateway"].ok, o["pushgateway"].status), (true, 200), "{o:?}");

    for (m, sel) in [("nh_seconds", "nh_seconds{job=\"nhtest\",instance=\"box:1\",path=\"/query\"}"), ("nd_seconds", "nd_seconds")] {
        assert_eq!(scalar(prom.port, &format!("histogram_count({sel})")), Some(1000.0), "{m}");
        let got = scalar(prom.port, &format!("histogram_sum({sel})")).unwrap();
        assert!((got - sum).abs() <= 1e-9 * sum.abs(), "{m}: sum {got} vs {sum}");
        let q = scalar(prom.port, &format!("histogram_quantile(0.5, {sel})")).unwrap();
        eprintln!("{m}: histogram_quantile(0.5) = {q}, true median {med} ({:+.2} %)", (q / med - 1.0) * 100.0);
        assert!((q / med - 1.0).abs() < 0.10, "{m}: median {q} vs true {med}");
    }
    // The native series is named after the family, without `le`; the classic ones go as well.
    let rows = query(prom.port, "count by (__name__) ({__name__=~\"nd_seconds.*\"})");
    let names: std::collections::BTreeSet<&str> = rows.iter().map(|r| r.0["__name__"].as_str()).collect();
    assert_eq!(names, ["nd_seconds", "nd_seconds_bucket", "nd_seconds_count", "nd_seconds_sum"].into());
    assert_eq!(value(&query(prom.port, "nd_seconds_bucket{le=\"+Inf\"}"), &[]), 1000.0);
    assert_eq!(value(&query(prom.port, "nd_seconds_count"), &[]), 1000.0);
    assert!(query(prom.port, "nh_seconds_count").is_empty(), "a native-only histogram has no classic series");

    // The gateway took the text; it serves the same count and sum (and, rendering a histogram
    // the Go way, adds the implied `le="+Inf"` bucket itself).
    let body = servers::http().get(format!("http://127.0.0.1:{}/metrics", pgw.port)).send().unwrap().text().unwrap();
    let line = |prefix: &str| body.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("{prefix} in {body}")).to_string();
    assert!(line("nh_seconds_count{").ends_with(" 1000"), "{body}");
    let pg_sum: f64 = line("nh_seconds_sum{").rsplit_once(' ').unwrap().1.parse().unwrap();
    assert!((pg_sum - sum).abs() <= 1e-9 * sum.abs());

    // The stop's stale markers (a histogram whose sum is the stale NaN) end the native series at once.
    let pushed_at = now();
    std::thread::sleep(std::time::Duration::from_millis(50));
    let fin = life.stop().pushed;
    assert!(fin["prom"].ok, "stale markers accepted: {fin:?}");
    for m in ["nh_seconds", "nd_seconds"] {
        assert_eq!(scalar(prom.port, &format!("histogram_count({m})")), None, "{m} is stale after stop");
        let before = scalar_at(prom.port, &format!("histogram_count({m})"), pushed_at);
        assert_eq!(before, Some(1000.0), "{m}: the pushed value is still there before the stop");
    }
    assert!(query(prom.port, "nd_seconds_count").is_empty(), "classic series stale too");
}

#[test]
fn declarations_as_q_passes_them() {
    let _g = lock();
    let h = host();
    let life = Life::init_with(&["job"], &[h.s("nhdecl")]);
    // `native, and the same again: the same family.
    for _ in 0..2 {
        h.ok("kdbprom_declare", &[h.s("histogram"), h.s("a_seconds"), h.str(""), h.id(), h.s("native")]);
    }
    // A dictionary whose values are one float vector (`factor`zero_threshold!1.1 0f), an empty
    // dictionary (native defaults), and classic bounds with native defaults.
    let typed = (h.xd)(h.syms(&["factor", "zero_threshold"]), h.floats(&[1.1, 0.0]));
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("b_seconds"), h.str(""), h.id(), typed]);
    let empty = (h.xd)(h.list(&[]), h.list(&[]));
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("c_seconds"), h.str(""), h.id(), empty]);
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("d_seconds"), h.str(""), h.id(), h.dict(&["buckets"], &[h.longs(&[1, 2])])]);
    // `native is `factor`zero_threshold`max_buckets at their defaults: the same family.
    let defaults = h.dict(&["factor", "zero_threshold", "max_buckets"], &[h.f(1.1), h.f(2f64.powi(-128)), h.j(160)]);
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("a_seconds"), h.str(""), h.id(), defaults]);
    assert_eq!(
        h.err("kdbprom_declare", &[h.s("histogram"), h.s("a_seconds"), h.str(""), h.id(), h.dict(&["max_buckets"], &[h.j(10)])]),
        "prom: a_seconds is already declared as a histogram with other labels or parameters"
    );
    // Classic forms unchanged: () for the defaults, a long vector, a mixed numeric list.
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("e_seconds"), h.str(""), h.id(), h.list(&[])]);
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("f_seconds"), h.str(""), h.id(), h.longs(&[1, 5])]);
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("g_seconds"), h.str(""), h.id(), h.list(&[h.f(0.5), h.j(2)])]);
    for m in ["a_seconds", "b_seconds", "c_seconds", "d_seconds", "e_seconds", "f_seconds", "g_seconds"] {
        h.ok("kdbprom_observe", &[h.s(m), h.floats(&[0.0, -1.0, 0.25, 1.5])]);
    }
    let t = life.text();
    for m in ["a", "b", "c"] {
        assert!(t.contains(&format!("# TYPE {m}_seconds histogram\n{m}_seconds_sum 0.75\n{m}_seconds_count 4\n")), "{m}: {t}");
    }
    assert!(t.contains("d_seconds_bucket{le=\"1.0\"} 3\nd_seconds_bucket{le=\"2.0\"} 4\nd_seconds_bucket{le=\"+Inf\"} 4\n"), "{t}");
    assert!(t.contains("e_seconds_bucket{le=\"0.0001\"} 2\n"), "{t}");
    assert!(t.contains("f_seconds_bucket{le=\"5.0\"} 4\n") && t.contains("g_seconds_bucket{le=\"0.5\"} 3\n"), "{t}");
    let _ = h.call("kdbprom_stop", &[h.id()]);
}

/// `native_request_histograms: true` makes the built-in `kdb_request_duration_seconds` native:
/// the text shows its `_sum` and `_count` only.
#[test]
fn native_request_durations() {
    let _g = lock();
    let h = host();
    let life = Life::init_with(&["job", "native_request_histograms"], &[h.s("nhreq"), h.b(true)]);
    h.ok("kdbprom_begin", &[h.j(0)]);
    h.ok("kdbprom_end", &[h.j(0)]);
    let t = life.text();
    assert!(t.contains("\nkdb_request_duration_seconds_count{handler=\"sync\"} 1\n"), "{t}");
    assert!(!t.contains("kdb_request_duration_seconds_bucket"), "{t}");
    let _ = h.call("kdbprom_stop", &[h.id()]);
}
