//! `.prom.observe[name;1M floats]` through the exported function in the libe host: the call alone,
//! on the accepted path (each call waits, untimed, for the flusher to apply the previous vector).

#[path = "../tests/common/mod.rs"]
mod common;

use criterion::{Criterion, criterion_group, criterion_main};
use kdbplus::api::K;
use std::hint::black_box;
use std::time::Duration;

fn observe_vector(c: &mut Criterion) {
    let h = common::host();
    let _ = h.call("kdbprom_stop", &[h.id()]);
    // A scratch file, never /dev/null: the textfile is replaced by a rename at every push.
    let textfile = std::env::temp_dir().join(format!("kdbprom-bench-observe-{}.prom", std::process::id()));
    let cfg = h.dict(&["instrument", "textfile"], &[h.b(false), h.str(textfile.to_str().unwrap())]);
    let r = h.ok("kdbprom_init", &[cfg, h.id()]);
    (h.r0)(r);
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("b_seconds"), h.str(""), h.id(), h.id()]);
    let observe: extern "C" fn(K, K) -> K = h.export("kdbprom_observe");
    let mut g = c.benchmark_group("observe_vector");
    let name = h.s("b_seconds");
    let big = h.floats(&(0..1_000_000).map(|i| f64::from(i % 1000) * 1e-3).collect::<Vec<_>>());
    g.sample_size(10);
    let queued = || {
        let d = h.ok("kdbprom_stats", &[h.id()]);
        let q = h.long_dict(d).into_iter().find(|(k, _)| k == "ring_depth").unwrap().1;
        (h.r0)(d);
        q
    };
    g.bench_function("kdbprom_observe_1M_float_vector", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let t = std::time::Instant::now();
                black_box(observe(black_box(name), black_box(big)));
                total += t.elapsed();
                // Untimed: let the flusher apply it, so every timed call takes the accepted path.
                while queued() > 0 {
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
            total
        })
    });
    g.finish();
    let st = h.ok("kdbprom_stop", &[h.id()]);
    assert_eq!(h.long_dict(st).into_iter().find(|(k, _)| k == "events_dropped").unwrap().1, 0, "every vector applied whole");
}

criterion_group! { name = benches; config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_millis(500)); targets = observe_vector }
criterion_main!(benches);
