//! `on_series_limit` through the real libkdbprom.so in a libe host, with the argument types q
//! passes: a new label set past the limits is never a q error with `overflow` (the default), is
//! one with `error`, and a bad value of the key is refused with the key named.

mod common;
use common::{Host, host, lock};

/// Starts a fresh agent (stopping any earlier one) with `cfg` entries, writing to a temp textfile.
fn start(h: &Host, keys: &[&str], vals: &[kdbplus::api::K]) {
    let _ = h.call("kdbprom_stop", &[h.id()]);
    let proc = h.dict(&["version", "host", "port", "pid"], &[h.f(4.1), h.s("qhost"), h.j(5010), h.j(42)]);
    let file = std::env::temp_dir().join(format!("kdbprom-overflow-host-{}.prom", std::process::id()));
    let mut keys = keys.to_vec();
    keys.push("textfile");
    let mut vals = vals.to_vec();
    vals.push(h.str(file.to_str().unwrap()));
    let r = h.ok("kdbprom_init", &[h.dict(&keys, &vals), proc]);
    (h.r0)(r);
}

fn text(h: &Host) -> String {
    let t = h.ok("kdbprom_text", &[h.id()]);
    let s = h.string(t);
    (h.r0)(t);
    s
}

fn series(h: &Host, name: &str, value: &str) -> Result<i64, String> {
    let r = h.call("kdbprom_series", &[h.s(name), h.syms(&[value])])?;
    let id = h.long(r);
    (h.r0)(r);
    Ok(id)
}

#[test]
fn new_label_sets_past_the_limit_fold_into_the_overflow_series() {
    let _g = lock();
    let h = host();
    start(h, &["max_series_per_metric"], &[h.j(2)]);
    h.ok("kdbprom_declare", &[h.s("counter"), h.s("c_total"), h.str(""), h.syms(&["t"]), h.id()]);
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("h_seconds"), h.str(""), h.syms(&["t"]), h.floats(&[1.0])]);
    let x = series(h, "c_total", "x").unwrap();
    assert_ne!(series(h, "c_total", "y").unwrap(), x);
    let over = series(h, "c_total", "z").expect("never a q error");
    assert_eq!(series(h, "c_total", "w"), Ok(over), "one overflow series per family");
    h.ok("kdbprom_inc", &[h.j(x), h.j(1)]);
    h.ok("kdbprom_inc", &[h.j(over), h.j(5)]);
    h.ok("kdbprom_inc", &[h.j(over), h.floats(&[1.0, 2.0])]);
    for v in ["a", "b", "c"] {
        let s = series(h, "h_seconds", v).unwrap();
        h.ok("kdbprom_observe", &[h.j(s), h.floats(&[0.5, 2.0])]);
    }
    let t = text(h);
    assert!(t.contains("\nc_total{t=\"x\"} 1\n"), "{t}");
    assert!(t.contains("\nc_total{otel_metric_overflow=\"true\"} 8\n"), "{t}");
    assert!(t.contains("\nh_seconds_count{otel_metric_overflow=\"true\"} 2\n"), "{t}");
    assert!(t.contains("\nh_seconds_bucket{otel_metric_overflow=\"true\",le=\"1.0\"} 1\n"), "{t}");
    // Records: two events for c_total, one vector of two values for h_seconds.
    assert!(t.contains("\nkdbprom_series_overflow_total{metric=\"c_total\"} 2\n"), "{t}");
    assert!(t.contains("\nkdbprom_series_overflow_total{metric=\"h_seconds\"} 2\n"), "{t}");
    let _ = h.call("kdbprom_stop", &[h.id()]);
}

#[test]
fn on_series_limit_error_keeps_the_q_error_and_bad_values_are_named() {
    let _g = lock();
    let h = host();
    start(h, &["max_series_per_metric", "on_series_limit"], &[h.j(1), h.s("error")]);
    h.ok("kdbprom_declare", &[h.s("counter"), h.s("c_total"), h.str(""), h.syms(&["t"]), h.id()]);
    series(h, "c_total", "x").unwrap();
    assert_eq!(series(h, "c_total", "y"), Err("prom: c_total: too many series (limit 1 per metric)".into()));
    // A string works as well as a symbol.
    start(h, &["on_series_limit"], &[h.str("overflow")]);
    let _ = h.call("kdbprom_stop", &[h.id()]);
    for (val, want) in [
        (h.s("drop"), r#"prom: config key on_series_limit: must be "overflow" or "error", not 'drop'"#),
        (h.s("ERROR"), r#"prom: config key on_series_limit: must be "overflow" or "error", not 'ERROR'"#),
        (h.j(1), "prom: config key on_series_limit must be a string or symbol"),
        (h.b(true), "prom: config key on_series_limit must be a string or symbol"),
        (h.syms(&["error", "overflow"]), "prom: config key on_series_limit must be a string or symbol"),
    ] {
        assert_eq!(h.err("kdbprom_init", &[h.dict(&["on_series_limit"], &[val]), h.id()]), want);
    }
}
