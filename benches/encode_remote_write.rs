//! Remote-write encoding of 10 k samples, protobuf + snappy (block), 2,000 samples per request:
//! 1.0 and 2.0 side by side, with the bytes each puts on the wire per sample.

mod common;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use kdbprom::encode::remote_write::{self, Values};
use kdbprom::encode::remote_write2;
use std::hint::black_box;
use std::time::Duration;

fn encode_remote_write(c: &mut Criterion) {
    let mut d = common::data();
    let snap = d.agg.snapshot(&d.reg);
    assert_eq!(snap.sample_count(), common::SERIES);
    let consts = vec![("instance".to_string(), "host:5010".to_string()), ("job".to_string(), "bench".to_string())];
    let mut v1 = remote_write::V1Encoder::default();
    let mut v2 = remote_write2::V2Encoder::default();
    let wire = |reqs: Vec<remote_write::Encoded>| reqs.iter().map(|r| r.body.len()).sum::<usize>() as f64 / common::SERIES as f64;
    let (b1, b2) = (
        wire(v1.encode(&snap, &consts, 1_700_000_000_000, 2_000, Values::Current)),
        wire(v2.encode(&snap, &consts, 1_700_000_000_000, 2_000, Values::Current)),
    );
    eprintln!("encode_remote_write: bytes per sample on the wire: 1.0 {b1:.2}, 2.0 {b2:.2} ({:.2}× of 1.0)", b2 / b1);
    let mut g = c.benchmark_group("encode_remote_write_10k_samples");
    g.throughput(Throughput::Elements(common::SERIES as u64));
    g.bench_function("kdbprom_protobuf_and_snappy_2000_per_request", |b| {
        b.iter(|| black_box(v1.encode(&snap, &consts, 1_700_000_000_000, 2_000, Values::Current)))
    });
    g.bench_function("kdbprom_v2_symbols_metadata_and_snappy_2000_per_request", |b| {
        b.iter(|| black_box(v2.encode(&snap, &consts, 1_700_000_000_000, 2_000, Values::Current)))
    });
    g.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)); targets = encode_remote_write }
criterion_main!(benches);
