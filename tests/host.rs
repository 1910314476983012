//! The real libkdbprom.so in a libe host: every export, called with the argument types q passes.

mod common;
use common::{Host, host, lock};
use kdbplus::api::K;

/// Starts a fresh agent (stopping any earlier one) with `cfg` entries over test defaults.
fn start(h: &Host, keys: &[&str], vals: &[kdbplus::api::K]) {
    let _ = h.call("kdbprom_stop", &[h.id()]);
    let proc = h.dict(
        &["version", "release_date", "os", "cores", "host", "port", "pid"],
        &[h.f(4.1), h.str("2024-10-16"), h.s("l64"), h.j(2), h.s("qhost"), h.j(5010), h.j(42)],
    );
    let cfg = h.dict(keys, vals);
    let r = h.ok("kdbprom_init", &[cfg, proc]);
    (h.r0)(r);
}

fn text(h: &Host) -> String {
    let t = h.ok("kdbprom_text", &[h.id()]);
    let s = h.string(t);
    (h.r0)(t);
    s
}

#[test]
fn smoke_declare_record_text() {
    let _g = lock();
    let h = host();
    start(h, &["job"], &[h.s("smoke")]);
    h.ok("kdbprom_declare", &[h.s("counter"), h.s("rows_total"), h.str("Rows."), h.syms(&["table"]), h.id()]);
    let sid = h.ok("kdbprom_series", &[h.s("rows_total"), h.syms(&["trade"])]);
    let id = h.long(sid);
    (h.r0)(sid);
    h.ok("kdbprom_inc", &[h.j(id), h.j(5)]);
    h.ok("kdbprom_inc", &[h.j(id), h.floats(&[1.0, 2.0])]);
    let t = text(h);
    assert!(t.contains("rows_total{table=\"trade\"} 8\n"), "{t}");
}

fn stats(h: &Host) -> std::collections::HashMap<String, i64> {
    let d = h.ok("kdbprom_stats", &[h.id()]);
    let m = h.long_dict(d).into_iter().collect();
    (h.r0)(d);
    m
}

/// The calls q/kdbprom.q makes, in its order, with the argument types q passes.
#[test]
fn q_script_session_init_request_error_timer_exit() {
    let _g = lock();
    let h = host();
    let _ = h.call("kdbprom_stop", &[h.id()]);
    // .prom.init[cfg] → .prom.x.init[cfg;.prom.procinfo[]]
    let cfg = h.dict(&["job", "instance", "labels"], &[h.s("eod"), h.s("box:5010"), h.dict(&["env"], &[h.s("prod")])]);
    let procinfo = h.dict(
        &["version", "release_date", "os", "cores", "host", "port", "pid", "license_expiry", "start_time"],
        &[h.f(4.1), h.str("2024-10-16"), h.s("l64"), h.j(4), h.s("box"), h.j(5010), h.j(77), h.f(1.7985e9), h.f(1.7e9)],
    );
    let r = h.ok("kdbprom_init", &[cfg, procinfo]);
    let settings: std::collections::HashMap<String, kdbplus::api::K> = h.dict_items(r).into_iter().collect();
    assert_eq!(h.sym(settings["job"]), "eod");
    assert_eq!(h.sym(settings["instance"]), "box:5010");
    assert_eq!(h.syms_of(settings["instrument"]), ["sync", "async", "http", "websocket", "timer", "conn"], "every handler group");
    assert_eq!(h.long(settings["interval_ms"]), 10_000);
    assert_eq!(h.sym(settings["sampler"]), "none", "no sd1 in this host, no timer asked for: sampled at init, push, stop and exit");
    (h.r0)(r);
    // .prom.sample[] → .prom.x.sample[.Q.w[];count .z.W]
    let qw = h.dict(&["used", "heap", "peak", "wmax", "mmap", "mphy", "syms", "symw"], &[]);
    (h.r0)(qw);
    let keys = h.syms(&["used", "heap", "peak", "wmax", "mmap", "mphy", "syms", "symw"]);
    let vals = h.longs(&[361_728, 67_108_864, 67_108_864, 0, 0, 25_000_000_000, 1_234, 56_789]);
    let qw = (h.xd)(keys, vals);
    h.ok("kdbprom_sample", &[qw, h.j(3)]);
    // .z.pg wrapper, a request that succeeds: @[.prom.x.b;0;{}] … @[.prom.x.e;0;{}]
    h.ok("kdbprom_begin", &[h.j(0)]);
    h.ok("kdbprom_end", &[h.j(0)]);
    // one that errors: .prom.fail[0] → @[.prom.x.fl;0;{}]
    h.ok("kdbprom_begin", &[h.j(0)]);
    h.ok("kdbprom_fail", &[h.j(0)]);
    // a timer tick (handler 5), an IPC connection (handle 7, an int as .z.po gets it) opened and closed
    h.ok("kdbprom_begin", &[h.j(5)]);
    h.ok("kdbprom_end", &[h.j(5)]);
    h.ok("kdbprom_conn", &[h.j(0), h.i(7), h.b(true)]);
    h.ok("kdbprom_conn", &[h.j(0), h.i(7), h.b(false)]);
    let text = text(h);
    for line in [
        "kdb_requests_total{handler=\"sync\",env=\"prod\"} 2\n",
        "kdb_request_errors_total{handler=\"sync\",env=\"prod\"} 1\n",
        "kdb_request_errors_total{handler=\"async\",env=\"prod\"} 0\n",
        "kdb_requests_total{handler=\"timer\",env=\"prod\"} 1\n",
        "kdb_request_duration_seconds_count{handler=\"sync\",env=\"prod\"} 2\n",
        "kdb_connections_opened_total{kind=\"ipc\",env=\"prod\"} 1\n",
        "kdb_connections_closed_total{kind=\"ipc\",env=\"prod\"} 1\n",
        "kdb_memory_used_bytes{env=\"prod\"} 361728\n",
        "kdb_memory_physical_bytes{env=\"prod\"} 25000000000\n",
        "kdb_symbol_memory_bytes{env=\"prod\"} 56789\n",
        "kdb_open_handles{env=\"prod\"} 3\n",
        "kdb_info{version=\"4.1\",release_date=\"2024-10-16\",os=\"l64\",cores=\"4\",env=\"prod\"} 1\n",
        "kdb_license_expiry_timestamp_seconds{env=\"prod\"} 1798500000\n",
        "process_start_time_seconds{env=\"prod\"} 1700000000\n",
        "# TYPE kdb_request_duration_seconds histogram\n",
        "kdb_request_duration_seconds_bucket{handler=\"sync\",env=\"prod\",le=\"0.0001\"}",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // .z.exit → .prom.stop[] → .prom.x.stop[]
    let d = h.ok("kdbprom_stop", &[h.id()]);
    let st: std::collections::HashMap<String, i64> = h.long_dict(d).into_iter().collect();
    (h.r0)(d);
    assert_eq!(st["events_recorded"], st["events_applied"] + st["events_dropped"]);
    assert!(st["events_applied"] >= 14, "{st:?}");
    // After stop: instrumentation is silent, the API says why.
    h.ok("kdbprom_end", &[h.j(0)]);
    assert_eq!(h.err("kdbprom_text", &[h.id()]), "prom: stopped: call .prom.init again to restart");
    assert_eq!(h.err("kdbprom_inc", &[h.s("kdbprom_series"), h.j(1)]), "prom: stopped: call .prom.init again to restart");
    // stop is idempotent, as .z.exit after an explicit .prom.stop[] needs
    let d = h.ok("kdbprom_stop", &[h.id()]);
    (h.r0)(d);
}

#[test]
fn the_flusher_thread_blocks_every_signal_so_q_keeps_its_own() {
    let _g = lock();
    let h = host();
    start(h, &[], &[]);
    let flushers = || -> Vec<String> {
        std::fs::read_dir("/proc/self/task")
            .unwrap()
            .filter_map(|t| {
                let t = t.ok()?.path();
                (std::fs::read_to_string(t.join("comm")).ok()?.trim() == "kdbprom-flusher")
                    .then(|| std::fs::read_to_string(t.join("status")).ok()?.lines().find(|l| l.starts_with("SigBlk")).map(str::to_string))
                    .flatten()
            })
            .collect()
    };
    // A thread names itself once it runs: give it a moment.
    let mut masks = flushers();
    for _ in 0..100 {
        if !masks.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
        masks = flushers();
    }
    assert!(!masks.is_empty(), "no flusher thread found");
    assert!(masks.iter().all(|m| m.ends_with("fffffffe7ffbfeff") || m.ends_with("ffffffffffffffff")), "{masks:?}");
    // and the caller's own mask is restored
    let me = std::fs::read_to_string("/proc/thread-self/status").unwrap();
    assert!(me.lines().any(|l| l == "SigBlk:\t0000000000000000"), "{me}");
}

#[test]
fn init_from_json_file_and_env_and_twice() {
    let _g = lock();
    let h = host();
    let _ = h.call("kdbprom_stop", &[h.id()]);
    let dir = std::env::temp_dir().join(format!("kdbprom-host-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("cfg.json");
    std::fs::write(&f, r#"{"job":"fromfile","labels":{"dc":"ldn"}}"#).unwrap();
    let r = h.ok("kdbprom_init", &[h.str(f.to_str().unwrap()), h.id()]);
    let settings: std::collections::HashMap<String, kdbplus::api::K> = h.dict_items(r).into_iter().collect();
    assert_eq!(h.sym(settings["job"]), "fromfile");
    (h.r0)(r);
    assert_eq!(
        h.err("kdbprom_init", &[h.id(), h.id()]),
        "prom: already initialised: .prom.init runs once (call .prom.stop[] first to restart)"
    );
    let _ = h.call("kdbprom_stop", &[h.id()]);
    // a q file symbol `:path works too
    let r = h.ok("kdbprom_init", &[h.s(&format!(":{}", f.display())), h.id()]);
    (h.r0)(r);
    let _ = h.call("kdbprom_stop", &[h.id()]);
    // `enlist` of a dictionary is a one-row table in q: accepted as a list of targets
    let cols = h.dict(&["url", "name"], &[h.list(&[h.str("http://127.0.0.1:9/api/v1/write")]), h.syms(&["one"])]);
    let table = (h.xt)(cols);
    assert_eq!(h.qtype(table), 98);
    let r = h.ok("kdbprom_init", &[h.dict(&["remote_write", "interval_ms", "exit_deadline_ms"], &[table, h.j(1_000), h.j(0)]), h.id()]);
    (h.r0)(r);
    let o = h.ok("kdbprom_push", &[h.id()]);
    let targets: Vec<String> = h.dict_items(o).into_iter().map(|(k, _)| k).collect();
    assert_eq!(targets, ["one"], "the table's one row is the one target");
    (h.r0)(o);
    let _ = h.call("kdbprom_stop", &[h.id()]);
    // `::` reads KDBPROM_* from the environment
    // SAFETY (test): single-threaded use of the environment under the test lock.
    unsafe { std::env::set_var("KDBPROM_JOB", "fromenv") };
    let r = h.ok("kdbprom_init", &[h.id(), h.id()]);
    unsafe { std::env::remove_var("KDBPROM_JOB") };
    let settings: std::collections::HashMap<String, kdbplus::api::K> = h.dict_items(r).into_iter().collect();
    assert_eq!(h.sym(settings["job"]), "fromenv");
    (h.r0)(r);
}

#[test]
fn every_bad_input_is_a_named_q_error() {
    let _g = lock();
    let h = host();
    start(h, &["max_series_per_metric", "on_series_limit"], &[h.j(2), h.s("error")]);
    h.ok("kdbprom_declare", &[h.s("counter"), h.s("c_total"), h.str(""), h.syms(&["t"]), h.id()]);
    h.ok("kdbprom_declare", &[h.s("gauge"), h.s("g"), h.s("a gauge"), h.syms(&[]), h.id()]);
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("h_seconds"), h.str(""), h.list(&[]), h.floats(&[0.1, 1.0])]);
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("h_native"), h.str(""), h.list(&[]), h.s("native")]);
    let sid = h.ok("kdbprom_series", &[h.s("c_total"), h.syms(&["x"])]);
    let c = h.long(sid);
    (h.r0)(sid);
    let cases: Vec<(&str, Vec<kdbplus::api::K>, &str)> = vec![
        // declarations
        ("kdbprom_declare", vec![h.s("meter"), h.s("m"), h.str(""), h.id(), h.id()], "prom: declare: unknown type meter"),
        ("kdbprom_declare", vec![h.j(1), h.s("m"), h.str(""), h.id(), h.id()], "prom: declare: type must be a symbol, not a long atom"),
        (
            "kdbprom_declare",
            vec![h.s("gauge"), h.s("kdb.rows"), h.str(""), h.id(), h.id()],
            "prom: invalid metric name 'kdb.rows' (must match [a-zA-Z_:][a-zA-Z0-9_:]*)",
        ),
        ("kdbprom_declare", vec![h.s("gauge"), h.s(""), h.str(""), h.id(), h.id()], "prom: gauge: name must not be the null symbol"),
        (
            "kdbprom_declare",
            vec![h.s("gauge"), h.s("__x"), h.str(""), h.id(), h.id()],
            "prom: metric name '__x' is reserved: names starting with __ belong to Prometheus",
        ),
        (
            "kdbprom_declare",
            vec![h.s("gauge"), h.s("g2"), h.str(""), h.syms(&["__a"]), h.id()],
            "prom: label name '__a' is reserved: names starting with __ belong to Prometheus",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("h2"), h.str(""), h.syms(&["le"]), h.id()],
            "prom: h2: label 'le' is reserved (histograms use it for bucket bounds)",
        ),
        (
            "kdbprom_declare",
            vec![h.s("summary"), h.s("s2"), h.str(""), h.syms(&["quantile"]), h.id()],
            "prom: s2: label 'quantile' is reserved (summaries use it for quantiles)",
        ),
        (
            "kdbprom_declare",
            vec![h.s("gauge"), h.s("c_total"), h.str(""), h.syms(&["t"]), h.id()],
            "prom: c_total is already declared as a counter with other labels or parameters",
        ),
        (
            "kdbprom_declare",
            vec![h.s("summary"), h.s("s3"), h.str(""), h.id(), h.floats(&[0.5, 1.5])],
            "prom: s3: quantiles must lie in [0, 1]",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("h3"), h.str(""), h.id(), h.floats(&[f64::NAN])],
            "prom: h3: buckets or quantiles must not contain nulls",
        ),
        (
            "kdbprom_declare",
            vec![h.s("gauge"), h.s("g3"), h.j(5), h.id(), h.id()],
            "prom: g3: help must be a symbol or a string, not a long atom",
        ),
        // histogram buckets: every wrong type of b, and native parameters out of range
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.str("0.1 0.5")],
            "prom: hb: buckets must be a numeric vector, (), `native or a dictionary, not a char vector",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.j(5)],
            "prom: hb: buckets must be a numeric vector, (), `native or a dictionary, not a long atom (for one bound, enlist it)",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.list(&[h.f(0.1), h.s("native")])],
            "prom: hb: buckets must be a numeric vector, (), `native or a dictionary, not a general list",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.s("sparse")],
            "prom: hb: buckets must be a numeric vector, (), `native or a dictionary, not `sparse",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.s("")],
            "prom: hb: buckets must be a numeric vector, (), `native or a dictionary, not `",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.syms(&["native"])],
            "prom: hb: buckets must be a numeric vector, (), `native or a dictionary, not a symbol vector",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.vec::<u8>(1, &[1, 0])],
            "prom: hb: buckets must be a numeric vector, (), `native or a dictionary, not a boolean vector",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.dict(&["native"], &[h.b(true)])],
            "prom: hb: unknown histogram key `native (keys: buckets, factor, zero_threshold, max_buckets)",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.dict(&["buckets", "native"], &[h.floats(&[0.1]), h.s("yes")])],
            "prom: hb: unknown histogram key `native (keys: buckets, factor, zero_threshold, max_buckets)",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.dict(&["buckets"], &[h.list(&[])])],
            "prom: hb: the dictionary gives no buckets: `buckets is empty and no native key (factor, zero_threshold, max_buckets) is set; use `native for native buckets alone",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.dict(&["factor", "factor"], &[h.f(1.1), h.f(1.2)])],
            "prom: hb: histogram key `factor is given twice",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.dict(&["buckets"], &[h.s("a")])],
            "prom: hb: buckets must be a numeric vector or (), not a symbol atom",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.dict(&["buckets", "factor"], &[h.floats(&[0.1, f64::NAN]), h.f(1.1)])],
            "prom: hb: buckets must not contain nulls",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.dict(&["factor"], &[h.f(1.0)])],
            "prom: hb: native histogram factor must be a finite number greater than 1, got 1",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.dict(&["factor"], &[h.f(0.5)])],
            "prom: hb: native histogram factor must be a finite number greater than 1, got 0.5",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.dict(&["factor"], &[h.f(f64::NAN)])],
            "prom: hb: native histogram factor must be a finite number greater than 1, got NaN",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.dict(&["factor"], &[h.f(f64::INFINITY)])],
            "prom: hb: native histogram factor must be a finite number greater than 1, got inf",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), (h.xd)(h.syms(&["factor", "zero_threshold"]), h.floats(&[1.0, 0.0]))],
            "prom: hb: native histogram factor must be a finite number greater than 1, got 1",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.dict(&["factor"], &[h.s("fine")])],
            "prom: hb: factor must be a number, not a symbol atom",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.dict(&["max_buckets"], &[h.j(0)])],
            "prom: hb: native histogram max_buckets must be at least 1, got 0",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.dict(&["max_buckets"], &[h.j(-5)])],
            "prom: hb: native histogram max_buckets must be at least 1, got -5",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.dict(&["max_buckets"], &[h.j(i64::MIN)])],
            "prom: hb: native histogram max_buckets must not be null",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.dict(&["max_buckets"], &[h.f(100.0)])],
            "prom: hb: max_buckets must be a long, not a float atom",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("hb"), h.str(""), h.id(), h.dict(&["zero_threshold"], &[h.f(-1.0)])],
            "prom: hb: native histogram zero_threshold must be a finite number >= 0, got -1",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("h_seconds"), h.str(""), h.list(&[]), h.s("native")],
            "prom: h_seconds is already declared as a histogram with other labels or parameters",
        ),
        (
            "kdbprom_declare",
            vec![h.s("histogram"), h.s("h_native"), h.str(""), h.id(), h.dict(&["factor"], &[h.f(2.0)])],
            "prom: h_native is already declared as a histogram with other labels or parameters",
        ),
        // series
        ("kdbprom_series", vec![h.s("nope"), h.syms(&["x"])], "prom: unknown metric nope"),
        ("kdbprom_series", vec![h.s("c_total"), h.syms(&["x", "y"])], "prom: c_total has 1 label(s), 2 value(s) given"),
        (
            "kdbprom_series",
            vec![h.s("c_total"), h.floats(&[1.0])],
            "prom: series c_total: label values must be symbols or strings, not a float vector",
        ),
        // records
        ("kdbprom_inc", vec![h.j(c), h.j(-1)], "prom: counter c_total cannot decrease"),
        ("kdbprom_inc", vec![h.j(c), h.j(i64::MIN)], "prom: inc c_total: value is null or infinite"),
        ("kdbprom_inc", vec![h.j(c), h.f(f64::NAN)], "prom: inc c_total: value is null or infinite"),
        ("kdbprom_inc", vec![h.j(c), h.f(f64::INFINITY)], "prom: inc c_total: value is null or infinite"),
        ("kdbprom_inc", vec![h.j(c), h.j(i64::MAX)], "prom: inc c_total: value is null or infinite"),
        ("kdbprom_inc", vec![h.j(c), h.s("one")], "prom: inc: value must be a number, a timespan or a vector of them, not a symbol atom"),
        (
            "kdbprom_inc",
            vec![h.j(c), h.list(&[h.j(1), h.s("a")])],
            "prom: inc: value must be a number, a timespan or a vector of them, not a general list",
        ),
        ("kdbprom_inc", vec![h.j(c), h.longs(&[1, -2])], "prom: counter c_total cannot decrease"),
        ("kdbprom_inc", vec![h.j(i64::MIN), h.j(1)], "prom: inc: series must not be null"),
        ("kdbprom_inc", vec![h.j(-5), h.j(1)], "prom: inc: unknown series id -5"),
        ("kdbprom_inc", vec![h.j(999_999), h.j(1)], "prom: unknown series id 999999"),
        ("kdbprom_inc", vec![h.f(1.0), h.j(1)], "prom: inc: series must be a long or a symbol, not a float atom"),
        ("kdbprom_inc", vec![h.s(""), h.j(1)], "prom: inc: series must not be the null symbol"),
        ("kdbprom_inc", vec![h.s("c_total"), h.j(1)], "prom: c_total has labels: get a series id with .prom.series first"),
        ("kdbprom_inc", vec![h.s("missing"), h.j(1)], "prom: unknown metric missing"),
        ("kdbprom_set", vec![h.s("g"), h.floats(&[1.0, 2.0])], "prom: set g: takes one value, not a vector"),
        ("kdbprom_set", vec![h.j(c), h.j(1)], "prom: counter c_total does not support set"),
        ("kdbprom_observe", vec![h.s("g"), h.j(1)], "prom: gauge g does not support observe"),
        (
            "kdbprom_observe",
            vec![h.s("h_seconds"), h.floats(&[0.1, f64::NEG_INFINITY])],
            "prom: observe h_seconds: value 1 of the vector is null or infinite",
        ),
        ("kdbprom_dec", vec![h.s("c_total"), h.j(1)], "prom: c_total has labels: get a series id with .prom.series first"),
        ("kdbprom_remove", vec![h.s("g")], "prom: g: an unlabelled metric cannot be removed"),
        // instrumentation and sampling
        ("kdbprom_end", vec![h.j(9)], "prom: handler index 9 is out of range 0..7"),
        ("kdbprom_end", vec![h.s("sync")], "prom: handler must be a long, not a symbol atom"),
        ("kdbprom_conn", vec![h.j(0), h.j(3), h.j(1)], "prom: opened must be a boolean, not a long atom"),
        ("kdbprom_conn", vec![h.j(2), h.j(3), h.b(true)], "prom: connection kind index 2 is out of range 0..2"),
        ("kdbprom_sample", vec![h.j(1), h.j(1)], "prom: sample: .Q.w[] must be a dictionary, not a long atom"),
        // compat
        ("kdbprom_updval", vec![h.s("g"), h.s("times"), h.j(1)], "prom: updval: func must be one of : + - ,"),
        ("kdbprom_newmetric", vec![h.s("m1"), h.s("meter"), h.id(), h.str("")], "prom: newmetric m1: unknown type meter"),
        // config
        ("kdbprom_init", vec![h.id(), h.id()], "prom: already initialised: .prom.init runs once (call .prom.stop[] first to restart)"),
    ];
    for (export, args, want) in cases {
        assert_eq!(h.err(export, &args), want, "{export}");
    }
    // cardinality
    let s = h.ok("kdbprom_series", &[h.s("c_total"), h.str("y")]);
    (h.r0)(s);
    assert_eq!(h.err("kdbprom_series", &[h.s("c_total"), h.str("z")]), "prom: c_total: too many series (limit 2 per metric)");
    // config errors (a stopped agent accepts a new init)
    let _ = h.call("kdbprom_stop", &[h.id()]);
    for (keys, vals, want) in [
        (vec!["jobb"], vec![h.s("x")], "prom: unknown config key jobb"),
        (vec!["interval_ms"], vec![h.s("fast")], "prom: config key interval_ms must be a non-negative whole number"),
        (vec!["on_series_limit"], vec![h.s("drop")], r#"prom: config key on_series_limit: must be "overflow" or "error", not 'drop'"#),
        (vec!["on_series_limit"], vec![h.j(1)], "prom: config key on_series_limit must be a string or symbol"),
        (vec!["ring_capacity"], vec![h.j(1)], "prom: config key ring_capacity: 1 is outside 16..67108864"),
        (
            vec!["pushgateway"],
            vec![h.dict(&["url"], &[h.str("not a url")])],
            "prom: config key pushgateway.url: 'not a url' is not a URL: relative URL without a base",
        ),
        (
            vec!["remote_write"],
            vec![h.dict(&["url", "headers"], &[h.str("http://127.0.0.1:9/w"), h.dict(&["Authorization"], &[h.str("x")])])],
            "prom: config key remote_write[0].headers.Authorization: is set by kdbprom itself (use basic_auth or bearer_token_file for Authorization)",
        ),
        // Nested conversion errors name the key path; a null is "not given".
        (vec!["interval_ms"], vec![h.j(i64::MAX)], "prom: config.interval_ms must not be infinite"),
        (vec!["remote_write"], vec![h.dict(&["url"], &[h.j(i64::MIN)])], "prom: config key remote_write[0].url is required"),
        (
            vec!["remote_write"],
            vec![h.dict(&["url", "headers"], &[h.str("http://127.0.0.1:9/w"), h.dict(&["X-A"], &[(h.ktj)(-14, 1)])])],
            "prom: config.remote_write.headers.X-A: unsupported date atom",
        ),
    ] {
        let cfg = h.dict(&keys, &vals);
        assert_eq!(h.err("kdbprom_init", &[cfg, h.id()]), want);
    }
    // An error text longer than q's 255 bytes is cut on a character boundary.
    let long_key = format!("a{}", "é".repeat(200));
    let cut = h.err("kdbprom_init", &[h.dict(&[&long_key], &[h.j(1)]), h.id()]);
    assert_eq!(cut, format!("prom: unknown config key a{}", "é".repeat(114)));
    assert_eq!(
        h.err("kdbprom_init", &[h.j(3), h.id()]),
        "prom: init: config must be a dictionary, a JSON file path or ::, not a long atom"
    );
    assert!(
        h.err("kdbprom_init", &[h.str("/nonexistent/kdbprom.json"), h.id()])
            .starts_with("prom: config file /nonexistent/kdbprom.json: No such file")
    );
}

#[test]
fn values_of_every_numeric_type_vectors_and_timespans() {
    let _g = lock();
    let h = host();
    start(h, &[], &[]);
    h.ok("kdbprom_declare", &[h.s("gauge"), h.s("g"), h.str(""), h.id(), h.id()]);
    h.ok("kdbprom_declare", &[h.s("counter"), h.s("n_total"), h.str(""), h.id(), h.id()]);
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("d_seconds"), h.str(""), h.id(), h.floats(&[0.001, 1.0])]);
    h.ok("kdbprom_declare", &[h.s("summary"), h.s("s_seconds"), h.str(""), h.id(), h.id()]);
    h.ok("kdbprom_inc", &[h.s("n_total"), (h.kh)(2)]);
    h.ok("kdbprom_inc", &[h.s("n_total"), h.i(3)]);
    h.ok("kdbprom_inc", &[h.s("n_total"), (h.ke)(0.5)]);
    h.ok("kdbprom_inc", &[h.s("n_total"), h.list(&[h.j(1), h.f(0.5)])]);
    h.ok("kdbprom_inc", &[h.s("n_total"), h.longs(&[])]);
    h.ok("kdbprom_set", &[h.s("g"), h.n(1_500_000_000)]);
    h.ok("kdbprom_dec", &[h.s("g"), h.f(0.25)]);
    h.ok("kdbprom_observe", &[h.s("d_seconds"), h.vec(16, &[500_000i64, 2_000_000_000])]);
    h.ok("kdbprom_observe", &[h.s("d_seconds"), h.floats(&[])]);
    let big: Vec<f64> = (0..1_000_000).map(|i| f64::from(i % 1000) / 1000.0).collect();
    h.ok("kdbprom_observe", &[h.s("s_seconds"), h.floats(&big)]);
    let t = text(h);
    assert!(t.contains("\nn_total 7\n"), "{t}");
    assert!(t.contains("\ng 1.25\n"), "{t}");
    assert!(t.contains("d_seconds_bucket{le=\"0.001\"} 1\nd_seconds_bucket{le=\"1.0\"} 1\nd_seconds_bucket{le=\"+Inf\"} 2\nd_seconds_sum 2.0005\nd_seconds_count 2\n"), "{t}");
    assert!(t.contains("\ns_seconds_count 1000000\n"), "{t}");
    let st = stats(h);
    assert_eq!(st["events_dropped"], 0);
}

#[test]
fn arguments_are_borrowed_results_fresh_and_nothing_leaks() {
    use kdbplus::api::K;
    let _g = lock();
    let h = host();
    // A lane's pages are touched as events first fill them: the warm-up round (80,000 events) goes
    // once around this thread's lane of 65,536, so the measured round sees its steady state.
    start(h, &["ring_capacity"], &[h.j(1 << 16)]);
    h.ok("kdbprom_declare", &[h.s("counter"), h.s("r_total"), h.str(""), h.syms(&["k"]), h.id()]);
    let series: extern "C" fn(K, K) -> K = h.export("kdbprom_series");
    let inc: extern "C" fn(K, K) -> K = h.export("kdbprom_inc");
    let stats_f: extern "C" fn(K) -> K = h.export("kdbprom_stats");
    let (name, vals, one, vec10, nothing) = (h.s("r_total"), h.syms(&["a"]), h.j(1), h.floats(&[1.0; 10]), h.id());
    let rss = || std::fs::read_to_string("/proc/self/statm").unwrap().split(' ').nth(1).unwrap().parse::<u64>().unwrap() * 4096;
    let round = |n: usize| {
        for _ in 0..n {
            let s = h.result(series(name, vals)).unwrap();
            assert_eq!(h.refcount(s), 0, "a fresh result");
            let sid = h.long(s);
            (h.r0)(s);
            let id = h.j(sid);
            assert!(h.result(inc(id, one)).unwrap().is_null(), "(K)0 for ::");
            assert!(h.result(inc(id, vec10)).unwrap().is_null());
            (h.r0)(id);
            let d = h.result(stats_f(nothing)).unwrap();
            (h.r0)(d);
        }
    };
    round(40_000);
    let before = rss();
    round(100_000);
    let grown = rss().saturating_sub(before);
    for k in [name, vals, one, vec10, nothing] {
        assert_eq!(h.refcount(k), 0, "arguments are never freed or retained");
        (h.r0)(k);
    }
    assert!(grown < 2 << 20, "RSS grew {grown} bytes over 100k calls of each export");
    assert!(text(h).contains(&format!("r_total{{k=\"a\"}} {}\n", 140_000 * 11)));
}

#[test]
fn four_threads_record_at_once_with_exact_totals() {
    let _g = lock();
    let h = host();
    start(h, &["ring_capacity"], &[h.j(1 << 22)]);
    h.ok("kdbprom_declare", &[h.s("counter"), h.s("shared_total"), h.str(""), h.id(), h.id()]);
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("own_seconds"), h.str(""), h.syms(&["thread"]), h.floats(&[0.5])]);
    const N: i64 = 200_000;
    let ids: Vec<i64> = (0..4)
        .map(|t| {
            let s = h.ok("kdbprom_series", &[h.s("own_seconds"), h.str(&format!("t{t}"))]);
            let id = h.long(s);
            (h.r0)(s);
            id
        })
        .collect();
    std::thread::scope(|sc| {
        for &id in &ids {
            sc.spawn(move || {
                let name = h.s("shared_total");
                let sid = h.j(id);
                for i in 0..N {
                    let one = h.j(1);
                    h.call("kdbprom_inc", &[(h.r1)(name), one]).unwrap();
                    let v = h.f(if i % 2 == 0 { 0.25 } else { 0.75 });
                    h.call("kdbprom_observe", &[(h.r1)(sid), v]).unwrap();
                }
                (h.r0)(name);
                (h.r0)(sid);
            });
        }
    });
    let t = text(h);
    let st = stats(h);
    assert_eq!(st["events_dropped"], 0, "{st:?}");
    assert!(t.contains(&format!("\nshared_total {}\n", 4 * N)), "{t}");
    for th in 0..4 {
        assert!(t.contains(&format!("own_seconds_bucket{{thread=\"t{th}\",le=\"0.5\"}} {}\n", N / 2)), "{t}");
        assert!(t.contains(&format!("own_seconds_count{{thread=\"t{th}\"}} {N}\n")), "{t}");
    }
}

/// Threads that start, record and end, as q's connection threads under `-p -port` do: more at once
/// than there are lanes (the rest share one queue), then wave after wave taking the lanes that
/// ended threads left. Nothing is lost, nothing is dropped, and every call succeeds.
#[test]
fn threads_that_come_and_go_lose_nothing() {
    let _g = lock();
    let h = host();
    start(h, &["ring_capacity"], &[h.j(1 << 16)]);
    h.ok("kdbprom_declare", &[h.s("counter"), h.s("churn_total"), h.str(""), h.id(), h.id()]);
    let sid = h.ok("kdbprom_series", &[h.s("churn_total"), h.id()]);
    let inc: extern "C" fn(K, K) -> K = h.export("kdbprom_inc");
    // Made on this thread and only read by the others, as q's secondary threads share arguments.
    let (sid, one) = (sid as usize, h.j(1) as usize);
    const PER: usize = 1000;
    let mut sent = 0;
    // 300 at once: past MAX_LANES (256), so some go through the shared queue.
    let barrier = std::sync::Barrier::new(300);
    std::thread::scope(|sc| {
        for _ in 0..300 {
            let barrier = &barrier;
            sc.spawn(move || {
                barrier.wait();
                for _ in 0..PER {
                    assert!(inc(sid as K, one as K).is_null(), "a record call never fails");
                }
                // Every thread holds its lane until all have recorded.
                barrier.wait();
            });
        }
    });
    sent += 300 * PER;
    // Then waves of 20 short-lived threads, each taking a lane an ended thread left.
    for _ in 0..30 {
        std::thread::scope(|sc| {
            for _ in 0..20 {
                sc.spawn(move || {
                    for _ in 0..PER {
                        assert!(inc(sid as K, one as K).is_null());
                    }
                });
            }
        });
        sent += 20 * PER;
    }
    let t = text(h);
    let st = stats(h);
    assert_eq!(st["events_dropped"], 0, "{st:?}");
    assert!(t.contains(&format!("\nchurn_total {sent}\n")), "sent {sent}: {t}");
    assert_eq!(st["ring_depth"], 0, "{st:?}");
}

#[test]
fn kx_1x_compatibility() {
    let _g = lock();
    let h = host();
    start(h, &[], &[]);
    h.ok("kdbprom_newmetric", &[h.s("kx_rows_total"), h.s("counter"), h.syms(&["tbl"]), h.str("rows")]);
    h.ok("kdbprom_newmetric", &[h.s("kx_lat_seconds"), h.s("histogram"), h.list(&[]), h.str("latency")]);
    let hd = h.ok("kdbprom_addmetric", &[h.s("kx_rows_total"), h.list(&[h.str("trade")]), h.list(&[]), h.j(5)]);
    assert_eq!(h.sym(hd), "kx_rows_total|trade");
    (h.r0)(hd);
    let hd = h.ok("kdbprom_addmetric", &[h.s("kx_lat_seconds"), h.list(&[]), h.floats(&[0.1, 1.0]), h.list(&[])]);
    assert_eq!(h.sym(hd), "kx_lat_seconds");
    (h.r0)(hd);
    // .prom.updval[name;+;3] → .prom.x.upd[name;`inc;3]
    h.ok("kdbprom_updval", &[h.s("kx_rows_total|trade"), h.s("inc"), h.j(3)]);
    h.ok("kdbprom_updval", &[h.s("kx_lat_seconds"), h.s("observe"), h.f(0.5)]);
    assert_eq!(
        h.err("kdbprom_updval", &[h.s("kx_rows_total|trade"), h.s("dec"), h.j(1)]),
        "prom: counter kx_rows_total does not support dec"
    );
    let t = text(h);
    assert!(t.contains("kx_rows_total{tbl=\"trade\"} 8\n"), "{t}");
    assert!(t.contains("kx_lat_seconds_bucket{le=\"1.0\"} 1\n"), "{t}");
}

#[test]
fn remove_forgets_a_series_and_grouping_labels_are_reserved() {
    let _g = lock();
    let h = host();
    let pg = h.dict(&["url", "grouping"], &[h.str("http://127.0.0.1:9"), h.dict(&["region"], &[h.s("eu")])]);
    start(h, &["pushgateway", "exit_deadline_ms"], &[pg, h.j(0)]);
    assert_eq!(
        h.err("kdbprom_declare", &[h.s("gauge"), h.s("g"), h.str(""), h.syms(&["region"]), h.id()]),
        "prom: g: label 'region' is reserved (set by configuration for every series)"
    );
    h.ok("kdbprom_declare", &[h.s("gauge"), h.s("tables_rows"), h.str(""), h.syms(&["table"]), h.id()]);
    let (a, b) = (h.ok("kdbprom_series", &[h.s("tables_rows"), h.str("a")]), h.ok("kdbprom_series", &[h.s("tables_rows"), h.str("b")]));
    let a_id = h.long(a);
    h.ok("kdbprom_set", &[a, h.j(1)]);
    h.ok("kdbprom_set", &[b, h.j(2)]);
    h.ok("kdbprom_remove", &[h.j(a_id)]);
    let t = text(h);
    assert!(!t.contains("table=\"a\"") && t.contains("tables_rows{table=\"b\"} 2\n"), "{t}");
    assert_eq!(h.err("kdbprom_set", &[h.j(a_id), h.j(3)]), format!("prom: unknown series id {a_id}"));
}

/// Each argument of each export given a value of a type it does not take: a q error, never a crash.
#[test]
fn a_wrong_type_in_every_argument_of_every_export_is_an_error() {
    let _g = lock();
    let h = host();
    start(h, &[], &[]);
    h.ok("kdbprom_declare", &[h.s("gauge"), h.s("w"), h.str(""), h.id(), h.id()]);
    h.ok("kdbprom_newmetric", &[h.s("w1_total"), h.s("counter"), h.id(), h.str("")]);
    // A byte vector and a date atom are accepted nowhere; a dictionary nowhere but config and sample.
    let bad = |h: &Host| (h.vec::<u8>(4, &[1, 2]), (h.ktj)(-14, 1));
    type Good = fn(&Host) -> Vec<kdbplus::api::K>;
    let exports: Vec<(&str, Good)> = vec![
        ("kdbprom_declare", |h| vec![h.s("gauge"), h.s("w2"), h.str(""), h.id(), h.id()]),
        ("kdbprom_series", |h| vec![h.s("w"), h.id()]),
        ("kdbprom_inc", |h| vec![h.s("w"), h.j(1)]),
        ("kdbprom_dec", |h| vec![h.s("w"), h.j(1)]),
        ("kdbprom_set", |h| vec![h.s("w"), h.j(1)]),
        ("kdbprom_observe", |h| vec![h.s("w"), h.j(1)]),
        ("kdbprom_remove", |h| vec![h.s("w")]),
        ("kdbprom_end", |h| vec![h.j(0)]),
        ("kdbprom_fail", |h| vec![h.j(0)]),
        ("kdbprom_conn", |h| vec![h.j(0), h.j(9), h.b(true)]),
        ("kdbprom_sample", |h| vec![h.dict(&["used"], &[h.j(1)]), h.j(1)]),
        ("kdbprom_newmetric", |h| vec![h.s("w3_total"), h.s("counter"), h.id(), h.str("")]),
        ("kdbprom_addmetric", |h| vec![h.s("w1_total"), h.id(), h.id(), h.id()]),
        ("kdbprom_updval", |h| vec![h.s("w"), h.s("set"), h.j(1)]),
        ("kdbprom_log", |h| vec![h.s("INFO"), h.str("")]),
    ];
    for (name, good) in exports {
        let n = good(h).len();
        for i in 0..n {
            for which in 0..2 {
                let mut args = good(h);
                let (bytes, date) = bad(h);
                let wrong = if which == 0 { bytes } else { date };
                (h.r0)(if which == 0 { date } else { bytes });
                // A few positions take anything that lists texts or numbers; those are covered by the bad-input table.
                let lenient = matches!((name, i), ("kdbprom_declare", 4) | ("kdbprom_addmetric", 2 | 3) | ("kdbprom_sample", 0));
                (h.r0)(args[i]);
                args[i] = wrong;
                match h.call(name, &args) {
                    Err(e) => assert!(e.starts_with("prom: "), "{name} arg {i}: {e}"),
                    Ok(r) => {
                        assert!(lenient, "{name} accepted a {} in argument {i}", if which == 0 { "byte vector" } else { "date" });
                        if !r.is_null() {
                            (h.r0)(r);
                        }
                    }
                }
            }
        }
    }
    // Even an error object (type -128) as an argument is a q error, not an overflow.
    let err_obj = || {
        let k = (h.ka)(-128);
        // SAFETY: a fresh -128 atom; its symbol slot must hold a valid string for q.
        unsafe { (*k).value.symbol = (h.ss)(c"boom".as_ptr()) };
        k
    };
    assert!(h.err("kdbprom_inc", &[h.s("w"), err_obj()]).starts_with("prom: inc: value must be a number"));
    assert!(h.err("kdbprom_end", &[err_obj()]).starts_with("prom: handler must be a long"));
    // q keeps running: the agent still answers.
    assert!(text(h).contains("\nw "));
}

/// q's whole-number nulls (`0Nh` `0Ni` `0N`) and infinities (`±0Wh` `±0Wi` `±0W`) are read one way
/// wherever they arrive: an atom, an item of a vector, an item of a mixed list, a series id, a
/// handler index, a configuration value.
#[test]
fn short_int_long_nulls_and_infinities_are_refused_alike_in_atoms_and_vectors() {
    use kdbplus::api::K;
    let _g = lock();
    let h = host();
    start(h, &[], &[]);
    h.ok("kdbprom_declare", &[h.s("gauge"), h.s("g"), h.str(""), h.id(), h.id()]);
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("hz_seconds"), h.str(""), h.id(), h.floats(&[1.0])]);
    // (null, +infinity, -infinity, largest finite) of each type, as atoms and as one-item vectors
    type Make = fn(&Host, i64) -> K;
    let kinds: [(&str, [i64; 4], Make, Make); 3] = [
        ("short", [-32768, 32767, -32767, 32766], |h, v| (h.kh)(v as i32), |h, v| h.vec::<i16>(5, &[1, v as i16])),
        (
            "int",
            [i64::from(i32::MIN), i64::from(i32::MAX), -i64::from(i32::MAX), i64::from(i32::MAX) - 1],
            |h, v| h.i(v as i32),
            |h, v| h.vec::<i32>(6, &[1, v as i32]),
        ),
        ("long", [i64::MIN, i64::MAX, -i64::MAX, i64::MAX - 1], |h, v| h.j(v), |h, v| h.longs(&[1, v])),
    ];
    for (ty, [null, inf, ninf, big], atom, vector) in kinds {
        for v in [null, inf, ninf] {
            assert_eq!(h.err("kdbprom_set", &[h.s("g"), atom(h, v)]), "prom: set g: value is null or infinite", "{ty} atom {v}");
            assert_eq!(
                h.err("kdbprom_inc", &[h.s("g"), vector(h, v)]),
                "prom: inc g: value 1 of the vector is null or infinite",
                "{ty} vector {v}"
            );
            let mixed = h.list(&[h.f(1.0), atom(h, v)]);
            assert_eq!(
                h.err("kdbprom_observe", &[h.s("hz_seconds"), mixed]),
                "prom: observe hz_seconds: value 1 of the vector is null or infinite"
            );
            // as a series id or a handler index: named, never "unknown series id 9223372036854775807"
            let not = if v == null { "null" } else { "infinite" };
            assert_eq!(h.err("kdbprom_inc", &[atom(h, v), h.j(1)]), format!("prom: inc: series must not be {not}"), "{ty} {v}");
            assert_eq!(h.err("kdbprom_end", &[atom(h, v)]), format!("prom: handler must not be {not}"), "{ty} {v}");
            assert_eq!(h.err("kdbprom_conn", &[h.j(0), atom(h, v), h.b(true)]), format!("prom: handle must not be {not}"), "{ty} {v}");
        }
        // The largest finite value is a number, in an atom and in a vector alike.
        h.ok("kdbprom_set", &[h.s("g"), atom(h, big)]);
        h.ok("kdbprom_inc", &[h.s("g"), vector(h, big)]);
        if ty != "long" {
            assert!(text(h).contains(&format!("\ng {}\n", 2 * big + 1)), "{ty}: {}", text(h));
        }
        h.ok("kdbprom_set", &[h.s("g"), h.j(0)]);
    }
    // A configuration value (a stopped agent takes a new init): a null is "not given", an
    // infinity refused, in an atom and in a vector alike.
    let _ = h.call("kdbprom_stop", &[h.id()]);
    for (ty, [null, inf, ninf, _], atom, vector) in kinds {
        for v in [inf, ninf] {
            let cfg = h.dict(&["interval_ms"], &[atom(h, v)]);
            assert_eq!(h.err("kdbprom_init", &[cfg, h.id()]), "prom: config.interval_ms must not be infinite", "{ty} {v}");
            let cfg = h.dict(&["instrument"], &[vector(h, v)]);
            assert_eq!(h.err("kdbprom_init", &[cfg, h.id()]), "prom: config.instrument[1] must not be infinite", "{ty} {v}");
        }
        let cfg = h.dict(&["interval_ms", "exit_deadline_ms"], &[atom(h, null), h.j(0)]);
        let r = h.ok("kdbprom_init", &[cfg, h.id()]);
        let settings: std::collections::HashMap<String, K> = h.dict_items(r).into_iter().collect();
        assert_eq!(h.long(settings["interval_ms"]), 10_000, "{ty} null: the default");
        (h.r0)(r);
        let _ = h.call("kdbprom_stop", &[h.id()]);
    }
    // A whole-number vector in the configuration is whole numbers, as a mixed list's items are.
    let kinds = "prom: config key instrument: must be a boolean or a list of handler names (sync, async, http, websocket, timer, conn)";
    assert_eq!(h.err("kdbprom_init", &[h.dict(&["instrument"], &[h.longs(&[1, 2])]), h.id()]), format!("{kinds}: item 0 is 1"));
    assert_eq!(h.err("kdbprom_init", &[h.dict(&["instrument"], &[h.list(&[h.j(1), h.j(2)])]), h.id()]), format!("{kinds}: item 0 is 1"));
}

/// One helper writes every type error, "{what} must be {want}, not {type}", with the article the
/// type name takes; `updval` reads its function inside the export's guard.
#[test]
fn type_errors_share_one_form() {
    let _g = lock();
    let h = host();
    start(h, &[], &[]);
    h.ok("kdbprom_declare", &[h.s("gauge"), h.s("g"), h.str(""), h.id(), h.id()]);
    let char_atom = |b: u8| {
        let c = (h.ka)(-10);
        // SAFETY: a fresh char atom; its byte is its value.
        unsafe { (*c).value.byte = b };
        c
    };
    for (export, args, want) in [
        ("kdbprom_conn", vec![h.j(0), h.j(5), h.i(1)], "prom: opened must be a boolean, not an int atom"),
        ("kdbprom_conn", vec![h.j(0), h.s("h"), h.b(true)], "prom: handle must be a long, not a symbol atom"),
        ("kdbprom_end", vec![h.id()], "prom: handler must be a long, not ::"),
        ("kdbprom_end", vec![h.f(1.0)], "prom: handler must be a long, not a float atom"),
        (
            "kdbprom_inc",
            vec![h.s("g"), h.vec::<i64>(12, &[0])],
            "prom: inc: value must be a number, a timespan or a vector of them, not a timestamp vector",
        ),
        ("kdbprom_inc", vec![h.vec::<i32>(6, &[1]), h.j(1)], "prom: inc: series must be a long or a symbol, not an int vector"),
        ("kdbprom_series", vec![h.s("g"), h.j(1)], "prom: series g: label values must be symbols or strings, not a long atom"),
        ("kdbprom_sample", vec![h.dict(&["used"], &[h.j(1)]), h.s("x")], "prom: sample: handles must be a number, not a symbol atom"),
        ("kdbprom_event", vec![(h.ktj)(-14, 1)], "prom: event must be a symbol, not a date atom"),
        ("kdbprom_log", vec![h.s("DEBUG"), h.str("x")], "prom: log: level must be one of `ERROR`WARN`INFO, not `DEBUG"),
        ("kdbprom_log", vec![h.s("WARN"), h.j(1)], "prom: log: message must be a symbol or a string, not a long atom"),
        // a char atom is text as a string's bytes are: UTF-8 alone (ASCII)
        ("kdbprom_declare", vec![h.s("gauge"), h.s("g9"), char_atom(0xe9), h.id(), h.id()], "prom: g9: help is not UTF-8"),
        ("kdbprom_declare", vec![h.s("gauge"), h.s("g9"), h.vec::<u8>(10, &[0xe9]), h.id(), h.id()], "prom: g9: help is not UTF-8"),
        // updval's function, whatever its type, is read inside the guard
        ("kdbprom_updval", vec![h.s("g"), h.j(1), h.j(1)], "prom: updval: func must be one of : + - ,"),
        ("kdbprom_updval", vec![h.s("g"), h.vec::<u8>(4, &[1]), h.j(1)], "prom: updval: func must be one of : + - ,"),
    ] {
        assert_eq!(h.err(export, &args), want, "{export}");
    }
    h.ok("kdbprom_declare", &[h.s("gauge"), h.s("g9"), char_atom(b'x'), h.id(), h.id()]);
    assert!(text(h).contains("# HELP g9 x\n"), "{}", text(h));
    let _ = h.call("kdbprom_stop", &[h.id()]);
    assert_eq!(
        h.err("kdbprom_init", &[h.f(1.0), h.id()]),
        "prom: init: config must be a dictionary, a JSON file path or ::, not a float atom"
    );
}
