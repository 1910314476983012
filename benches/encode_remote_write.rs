//! Remote-write 1.0 encoding of 10 k samples: protobuf + snappy (block), 2,000 samples per request.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kdbprom::encode::remote_write;
use std::hint::black_box;
use std::time::Duration;

fn encode_remote_write(c: &mut Criterion) {
    let mut d = common::data();
    let snap = d.agg.snapshot(&d.reg);
    assert_eq!(snap.sample_count(), common::SERIES);
    let consts = vec![("instance".to_string(), "host:5010".to_string()), ("job".to_string(), "bench".to_string())];
    let mut enc = remote_write::Encoder::default();
    let mut g = c.benchmark_group("encode_remote_write_10k_samples");
    g.throughput(Throughput::Elements(common::SERIES as u64));
    g.bench_function("kdbprom_protobuf_and_snappy_2000_per_request", |b| {
        b.iter(|| black_box(enc.encode(&snap, &consts, 1_700_000_000_000, 2_000, kdbprom::encode::remote_write::Values::Current)))
    });
    g.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)); targets = encode_remote_write }
criterion_main!(benches);
