//! Remote-write encoding of 10 k samples, protobuf + snappy (block), 2,000 samples per request:
//! 1.0 and 2.0 side by side, with the bytes each puts on the wire per sample; each encoder in the
//! steady state (the same series as the push before) and after a change (the constant labels
//! alternate, so no push can reuse the last one's label blocks); and snappy alone on the same raw
//! bytes, the floor of either encoder.

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
    // The same length, so the relabelled bytes are the same size as the steady ones.
    let other = vec![("instance".to_string(), "host:5011".to_string()), ("job".to_string(), "bench".to_string())];
    let mut v1 = remote_write::V1Encoder::default();
    let mut v2 = remote_write2::V2Encoder::default();
    let reqs1 = v1.encode(&snap, &consts, 1_700_000_000_000, 2_000, Values::Current);
    let reqs2 = v2.encode(&snap, &consts, 1_700_000_000_000, 2_000, Values::Current);
    let per_sample = |n: usize| n as f64 / common::SERIES as f64;
    let wire = |reqs: &[remote_write::Encoded]| per_sample(reqs.iter().map(|r| r.body.len()).sum());
    let raw = |reqs: &[remote_write::Encoded]| -> Vec<Vec<u8>> {
        reqs.iter().map(|r| snap::raw::Decoder::new().decompress_vec(&r.body).unwrap()).collect()
    };
    let (raw1, raw2) = (raw(&reqs1), raw(&reqs2));
    let raw_len = |r: &[Vec<u8>]| per_sample(r.iter().map(Vec::len).sum());
    let (b1, b2) = (wire(&reqs1), wire(&reqs2));
    eprintln!(
        "encode_remote_write: bytes per sample on the wire: 1.0 {b1:.2}, 2.0 {b2:.2} ({:.2}× of 1.0); before snappy: 1.0 {:.2}, 2.0 {:.2}",
        b2 / b1,
        raw_len(&raw1),
        raw_len(&raw2)
    );
    let mut g = c.benchmark_group("encode_remote_write_10k_samples");
    g.throughput(Throughput::Elements(common::SERIES as u64));
    g.bench_function("kdbprom_protobuf_and_snappy_2000_per_request", |b| {
        b.iter(|| black_box(v1.encode(&snap, &consts, 1_700_000_000_000, 2_000, Values::Current)))
    });
    g.bench_function("kdbprom_v2_symbols_metadata_and_snappy_2000_per_request", |b| {
        b.iter(|| black_box(v2.encode(&snap, &consts, 1_700_000_000_000, 2_000, Values::Current)))
    });
    let mut flip = false;
    let mut alternate = || {
        flip = !flip;
        if flip { &other } else { &consts }
    };
    g.bench_function("kdbprom_protobuf_and_snappy_2000_per_request_relabelled_every_push", |b| {
        b.iter(|| black_box(v1.encode(&snap, alternate(), 1_700_000_000_000, 2_000, Values::Current)))
    });
    g.bench_function("kdbprom_v2_symbols_metadata_and_snappy_2000_per_request_relabelled_every_push", |b| {
        b.iter(|| black_box(v2.encode(&snap, alternate(), 1_700_000_000_000, 2_000, Values::Current)))
    });
    // The floor: snappy alone on the bytes each encoder compresses, into a buffer kept from one
    // request to the next, as the encoders do (the copy into the body is left out).
    let mut snappy = snap::raw::Encoder::new();
    let mut out = Vec::new();
    let mut compress_all = |raws: &[Vec<u8>]| {
        raws.iter()
            .map(|r| {
                out.resize(snap::raw::max_compress_len(r.len()), 0);
                snappy.compress(r, &mut out).unwrap()
            })
            .sum::<usize>()
    };
    g.bench_function("snappy_alone_on_the_1_0_bytes", |b| b.iter(|| black_box(compress_all(&raw1))));
    g.bench_function("snappy_alone_on_the_2_0_bytes", |b| b.iter(|| black_box(compress_all(&raw2))));
    g.finish();
}

criterion_group! { name = benches; config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)); targets = encode_remote_write }
criterion_main!(benches);
