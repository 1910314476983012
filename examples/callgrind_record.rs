//! The record path under callgrind: `callgrind_record <inc|request> <n>` loads the real library into
//! KX's libe.so (as the tests do) and makes `n` calls as q makes them: `.prom.inc[id;1]`, or the
//! begin/end pair the `.z.pg` wrapper makes around a request. scripts/callgrind.sh runs it at two
//! values of `n`; the difference over the difference of `n` is the instructions of one call, with
//! everything done once (loading, init, stop) cancelled out.

#[path = "../tests/common/mod.rs"]
mod common;

use kdbplus::api::K;
use std::hint::black_box;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (mode, n): (&str, u64) = (&args[1], args[2].parse().unwrap());
    let h = common::host();
    // A ring that holds every event: a full ring would take the drop path, not the one measured.
    let cfg = h.dict(&["ring_capacity", "instrument"], &[h.j(1 << 24), h.b(false)]);
    let r = h.ok("kdbprom_init", &[cfg, h.id()]);
    (h.r0)(r);
    h.ok("kdbprom_declare", &[h.s("counter"), h.s("cg_total"), h.str(""), h.syms(&["k"]), h.id()]);
    let sid = h.ok("kdbprom_series", &[h.s("cg_total"), h.str("x")]);
    let one = h.j(1);
    match mode {
        "inc" => {
            let inc: extern "C" fn(K, K) -> K = h.export("kdbprom_inc");
            for _ in 0..n {
                black_box(inc(black_box(sid), black_box(one)));
            }
        }
        "request" => {
            let begin: extern "C" fn(K) -> K = h.export("kdbprom_begin");
            let end: extern "C" fn(K) -> K = h.export("kdbprom_end");
            let sync = h.j(0);
            for _ in 0..n {
                black_box(begin(black_box(sync)));
                black_box(end(black_box(sync)));
            }
        }
        m => panic!("mode {m}: inc or request"),
    }
    let st = h.ok("kdbprom_stop", &[h.id()]);
    (h.r0)(st);
}
