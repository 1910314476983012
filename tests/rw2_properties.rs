//! Properties of the remote-write 2.0 encoder over random snapshots, checked with the prost types
//! of the v2 proto: a symbols table that starts with `""` and holds each string once, every ref in
//! range, labels sorted by name with no empty value, and the same samples as the 1.0 encoder writes
//! for the same snapshot (request by request, through the 2.0 → 1.0 rewrite).

use kdbprom::aggregate::{Aggregator, NativeConfig};
use kdbprom::encode::downgrade::downgrade;
use kdbprom::encode::remote_write::{self, Values};
use kdbprom::encode::remote_write2;
use kdbprom::event::{Batch, Event, Op};
use kdbprom::proto::{WriteRequest, v2};
use kdbprom::registry::{Kind, Limits, Registry};
use proptest::prelude::*;
use prost::Message;
use std::collections::HashSet;

fn decode_v2(b: &[u8]) -> v2::Request {
    v2::Request::decode(&snap::raw::Decoder::new().decompress_vec(b).unwrap()[..]).unwrap()
}

fn decode_v1(b: &[u8]) -> WriteRequest {
    WriteRequest::decode(&snap::raw::Decoder::new().decompress_vec(b).unwrap()[..]).unwrap()
}

#[derive(Debug, Clone)]
struct Family {
    kind: u8,
    labels: Vec<String>,
    series: Vec<(Vec<String>, Vec<f64>)>,
}

fn family() -> impl Strategy<Value = Family> {
    (0u8..4, 0usize..3).prop_flat_map(|(kind, nlabels)| {
        let values = proptest::collection::vec("[a-z0-9 é€\"\\\\/]{0,6}", nlabels);
        let obs = proptest::collection::vec(prop_oneof![-1e9..1e9f64, 1e-9..1e-3f64, Just(0.0)], 1..20);
        (Just(kind), Just((0..nlabels).map(|i| format!("l{i}")).collect::<Vec<_>>()), proptest::collection::vec((values, obs), 1..6))
            .prop_map(|(kind, labels, series)| Family { kind, labels, series })
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]
    #[test]
    fn symbols_refs_order_and_the_same_samples_as_1_0(fams in proptest::collection::vec(family(), 1..5), max in 1usize..40, job in "[a-z]{1,8}") {
        let reg = Registry::new(Limits::default());
        let mut agg = Aggregator::new(1);
        for (i, f) in fams.iter().enumerate() {
            let name = format!("f{i}_seconds");
            let labels: Vec<&str> = f.labels.iter().map(String::as_str).collect();
            let (kind, native) = match f.kind {
                0 => (Kind::Counter, None),
                1 => (Kind::Gauge, None),
                2 => (Kind::Histogram, None),
                _ => (Kind::Histogram, Some(NativeConfig::default())),
            };
            let bounds: &[f64] = if f.kind == 2 { &[0.001, 1.0, 1000.0] } else { &[] };
            reg.declare_with(&name, "Help \"x\".", kind, &labels, bounds, native).unwrap();
            for (values, obs) in &f.series {
                let vs: Vec<&str> = values.iter().map(String::as_str).collect();
                let Ok(s) = reg.series(&name, &vs) else { continue }; // the same label values twice
                match kind {
                    Kind::Counter => agg.apply(&reg, Event { series: s, op: Op::Inc, value: obs[0].abs() }),
                    Kind::Gauge => agg.apply(&reg, Event { series: s, op: Op::Set, value: obs[0] }),
                    _ => agg.apply_batch(&reg, &Batch { series: s, values: obs.clone() }),
                }
            }
        }
        let snap = agg.snapshot(&reg);
        let consts = vec![("instance".to_string(), "h:1".to_string()), ("job".to_string(), job)];
        let mut r1 = remote_write::V1Encoder::default().encode(&snap, &consts, 1_700_000_000_000, max, Values::Current);
        // 1.0 sends family metadata in the last request, alone when the samples filled the others.
        r1.retain(|r| r.samples > 0);
        let r2 = remote_write2::V2Encoder::default().encode(&snap, &consts, 1_700_000_000_000, max, Values::Current);
        prop_assert_eq!(r1.iter().map(|r| r.samples).collect::<Vec<_>>(), r2.iter().map(|r| r.samples).collect::<Vec<_>>());
        for (a, b) in r1.iter().zip(&r2) {
            let w = decode_v2(&b.body);
            prop_assert_eq!(w.symbols[0].as_str(), "");
            let mut seen = HashSet::new();
            prop_assert!(w.symbols.iter().all(|s| seen.insert(s.as_str())), "each symbol once");
            let mut samples = 0;
            for t in &w.timeseries {
                prop_assert!(t.labels_refs.len() % 2 == 0);
                prop_assert!(t.labels_refs.iter().all(|&r| (r as usize) < w.symbols.len()), "ref in range");
                let names: Vec<&str> = t.labels_refs.chunks(2).map(|p| w.symbols[p[0] as usize].as_str()).collect();
                prop_assert!(names.windows(2).all(|p| p[0] < p[1]), "sorted, no duplicate: {:?}", names);
                prop_assert!(t.labels_refs.chunks(2).all(|p| p[1] != 0), "no empty value");
                prop_assert!(t.samples.is_empty() != t.histograms.is_empty(), "samples or histograms, never both");
                prop_assert!(t.metadata.is_some_and(|m| m.r#type != 0));
                samples += t.samples.len() + t.histograms.len();
            }
            prop_assert_eq!(samples, b.samples);
            // The same points as 1.0, series by series.
            prop_assert_eq!(decode_v1(&downgrade(&b.body).unwrap()).timeseries, decode_v1(&a.body).timeseries);
        }
    }
}
