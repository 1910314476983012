//! Recording through the exported function, in the libe host, exactly as q calls it:
//! `.prom.inc[id;1]` on one thread and on four at once (as under `peach`), and the two calls
//! the `.z.pg`/`.z.ps` wrapper makes around every request (`@[.prom.x.b;k;{}]`, `@[.prom.x.e;k;{}]`).

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use kdbplus::api::K;
use std::hint::black_box;
use std::time::Duration;

fn record(c: &mut Criterion) {
    let h = common::host();
    let _ = h.call("kdbprom_stop", &[h.id()]);
    let cfg = h.dict(&["ring_capacity", "instrument"], &[h.j(1 << 24), h.b(false)]);
    let r = h.ok("kdbprom_init", &[cfg, h.id()]);
    (h.r0)(r);
    h.ok("kdbprom_declare", &[h.s("counter"), h.s("b_total"), h.str(""), h.syms(&["k"]), h.id()]);
    let sid = h.ok("kdbprom_series", &[h.s("b_total"), h.str("x")]);
    let inc: extern "C" fn(K, K) -> K = h.export("kdbprom_inc");
    let one = h.j(1);
    let mut g = c.benchmark_group("record_ffi");
    g.bench_function("kdbprom_inc_by_id_1_thread", |b| b.iter(|| black_box(inc(black_box(sid), black_box(one)))));
    g.bench_function("kdbprom_inc_by_id_4_threads_wall_per_event", |b| {
        let (sid, one) = (sid as usize, one as usize);
        b.iter_custom(|iters| {
            let per = (iters / 4).max(1);
            let t = std::time::Instant::now();
            std::thread::scope(|s| {
                for _ in 0..4 {
                    // q's secondary threads share the same argument objects; the export only reads them.
                    s.spawn(move || {
                        for _ in 0..per {
                            black_box(inc(sid as K, one as K));
                        }
                    });
                }
            });
            t.elapsed()
        })
    });
    let begin: extern "C" fn(K) -> K = h.export("kdbprom_begin");
    let end: extern "C" fn(K) -> K = h.export("kdbprom_end");
    let sync = h.j(0);
    g.bench_function("wrapped_request_begin_end", |b| {
        b.iter(|| {
            black_box(begin(black_box(sync)));
            black_box(end(black_box(sync)))
        })
    });
    g.finish();
    let st = h.ok("kdbprom_stop", &[h.id()]);
    for (k, v) in h.long_dict(st) {
        eprintln!("record_ffi stats: {k} = {v}");
    }
}

criterion_group! { name = benches; config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(2)).warm_up_time(Duration::from_millis(500)); targets = record }
criterion_main!(benches);
