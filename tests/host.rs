//! The real libkdbprom.so in a libe host: every export, called with the argument types q passes.

mod common;
use common::{host, lock, Host};

/// Starts a fresh agent (stopping any earlier one) with `cfg` entries over test defaults.
fn start(h: &Host, keys: &[&str], vals: &[kdbplus::api::K]) {
    let _ = h.call("kdbprom_stop", &[h.id()]);
    let proc = h.dict(&["version", "release_date", "os", "cores", "host", "port", "pid"], &[h.f(4.1), h.str("2024-10-16"), h.s("l64"), h.j(2), h.s("qhost"), h.j(5010), h.j(42)]);
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
