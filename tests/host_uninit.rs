//! Before `.prom.init`: every export answers with a q error or stays silent, never crashes.
//! A separate test binary, so that no other test has initialised the shared agent.

mod common;
use common::host;

#[test]
fn calls_before_init_are_named_errors_and_instrumentation_is_silent() {
    let h = host();
    let want = "prom: not initialised: call .prom.init first";
    // Declarations wait for init (tests/early.rs); records need an agent.
    assert_eq!(h.err("kdbprom_inc", &[h.s("g"), h.j(1)]), want);
    assert_eq!(h.err("kdbprom_series", &[h.s("g"), h.syms(&[])]), want);
    assert_eq!(h.err("kdbprom_text", &[h.id()]), want);
    assert_eq!(h.err("kdbprom_stats", &[h.id()]), want);
    assert_eq!(h.err("kdbprom_stop", &[h.id()]), want);
    assert!(h.ok("kdbprom_begin", &[h.j(0)]).is_null());
    assert!(h.ok("kdbprom_end", &[h.j(0)]).is_null());
    assert!(h.ok("kdbprom_conn", &[h.j(1), h.i(4), h.b(true)]).is_null());
    // .z.pw/.z.bm wrappers, and a sample a .z.ts wrapper takes before init (its caller traps it)
    assert!(h.ok("kdbprom_event", &[h.s("auth_failure")]).is_null());
    let qw = h.dict(&["used"], &[h.j(1)]);
    assert_eq!(h.err("kdbprom_sample", &[qw, h.j(0)]), want);
}
