//! The label blocks kept between pushes: whatever changes from one push to the next, a kept
//! encoder writes the bytes a fresh one writes, and a push of the same series takes every block
//! from the last.

use crate::aggregate::{Aggregator, NativeConfig};
use crate::encode::remote_write::{Encoded, V1Encoder, Values};
use crate::encode::remote_write2::V2Encoder;
use crate::event::{Event, Op, SeriesId};
use crate::registry::{Kind, Limits, OnSeriesLimit, Registry};
use crate::snapshot::Snapshot;
use proptest::prelude::*;

const TS: i64 = 1_700_000_000_123;

fn consts(which: u8) -> Vec<(String, String)> {
    let pair = |a: &str, b: &str| (a.to_string(), b.to_string());
    match which % 4 {
        0 => vec![pair("instance", "h:1"), pair("job", "eod")],
        1 => vec![pair("instance", "h:2"), pair("job", "eod")],
        2 => vec![pair("instance", "h:1"), pair("job", "eod"), pair("zone", "")],
        _ => vec![pair("a", "first"), pair("job", "eod"), pair("zz", "last")],
    }
}

/// The bodies of a fresh 1.0 and 2.0 encoder for `snap`.
fn fresh(snap: &Snapshot<'_>, consts: &[(String, String)], max: usize, values: Values, native: bool) -> (Vec<Encoded>, Vec<Encoded>) {
    let (mut e1, mut e2) = (V1Encoder::default(), V2Encoder::default());
    e1.send_native_histograms(native);
    e2.send_native_histograms(native);
    (e1.encode(snap, consts, TS, max, values), e2.encode(snap, consts, TS, max, values))
}

/// Every kind, label values with and without an overflow series (3 series a family at most).
fn registry() -> Registry {
    let reg = Registry::new(Limits { max_series_per_metric: 3, on_series_limit: OnSeriesLimit::Overflow, ..Limits::default() });
    let native = Some(NativeConfig::default());
    reg.declare("c_total", "Count.", Kind::Counter, &["table", "user"], &[]).unwrap();
    reg.declare("g", "", Kind::Gauge, &[], &[]).unwrap();
    reg.declare("h_seconds", "Hist.", Kind::Histogram, &["path"], &[0.5, 1.0]).unwrap();
    reg.declare("s_seconds", "Sum.", Kind::Summary, &["path"], &[0.5, 0.9]).unwrap();
    reg.declare_with("n_seconds", "Native.", Kind::Histogram, &["path"], &[], native).unwrap();
    reg.declare_with("b_seconds", "Both.", Kind::Histogram, &["zone"], &[0.1], native).unwrap();
    reg
}

/// Series of one label each, made in this order (family, label value), each given one `op` of `value`.
fn made(reg: &Registry, agg: &mut Aggregator, series: &[(&str, &str)], op: Op, value: f64) -> Vec<SeriesId> {
    let mut made = Vec::new();
    for (f, v) in series {
        made.push(reg.series(f, &[v]).unwrap());
        agg.apply(reg, Event { series: *made.last().unwrap(), op, value });
    }
    made
}

fn op_for(kind: Kind) -> Op {
    match kind {
        Kind::Counter => Op::Inc,
        Kind::Gauge => Op::Set,
        _ => Op::Observe,
    }
}

const FAMILIES: [(&str, Kind, usize); 6] = [
    ("c_total", Kind::Counter, 2),
    ("g", Kind::Gauge, 0),
    ("h_seconds", Kind::Histogram, 1),
    ("s_seconds", Kind::Summary, 1),
    ("n_seconds", Kind::Histogram, 1),
    ("b_seconds", Kind::Histogram, 1),
];

/// What happens between two pushes.
#[derive(Debug, Clone)]
enum Change {
    /// Nothing but values.
    Values,
    /// A series of family `family` with these label values (a new one, or one that exists).
    Add(usize, Vec<String>),
    /// The `n`-th series made so far goes (if it is still there and may go).
    Remove(usize),
    /// Other constant labels.
    Consts(u8),
    /// Another request size.
    Max(usize),
    /// A family declared after the others.
    Declare(usize),
    /// Native histograms on or off.
    Native(bool),
}

fn change() -> impl Strategy<Value = Change> {
    let value = prop_oneof![Just(String::new()), "[ab]{1,2}", Just("é€".to_string())];
    prop_oneof![
        3 => Just(Change::Values),
        4 => (0usize..6, proptest::collection::vec(value, 2)).prop_map(|(f, v)| Change::Add(f, v)),
        3 => (0usize..40).prop_map(Change::Remove),
        1 => (0u8..4).prop_map(Change::Consts),
        1 => prop_oneof![Just(1usize), Just(3), Just(4), Just(1000)].prop_map(Change::Max),
        1 => (0usize..6).prop_map(Change::Declare),
        1 => any::<bool>().prop_map(Change::Native),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, failure_persistence: None, ..ProptestConfig::default() })]
    /// A kept encoder pushes what a fresh one pushes, after any change, whether the change comes
    /// with stale markers between the pushes or not, and however small its cap on kept blocks;
    /// a push after a change of values only reuses every block it kept.
    #[test]
    fn after_any_change_the_bytes_of_a_fresh_encoder(
        changes in proptest::collection::vec(change(), 1..14),
        stale_between in any::<bool>(),
        cap in prop_oneof![Just(None), (0usize..600).prop_map(Some)],
    ) {
        let reg = registry();
        let mut agg = Aggregator::new(1);
        let mut made: Vec<SeriesId> = Vec::new();
        let (mut e1, mut e2) = (V1Encoder::default(), V2Encoder::default());
        if let Some(cap) = cap {
            e1.cap_blocks(cap);
            e2.cap_blocks(cap);
        }
        let (mut which, mut max, mut native, mut declared) = (0u8, 4usize, true, 0usize);
        let add = |agg: &mut Aggregator, made: &mut Vec<SeriesId>, name: &str, kind: Kind, values: &[&str]| {
            if let Ok(s) = reg.series(name, values) {
                agg.apply(&reg, Event { series: s, op: op_for(kind), value: 0.25 });
                made.push(s);
            }
        };
        for (name, kind, n) in FAMILIES {
            add(&mut agg, &mut made, name, kind, &["a", "b"][..n]);
        }
        for (round, c) in changes.iter().enumerate() {
            match c {
                Change::Values => {}
                Change::Add(f, values) => {
                    let (name, kind, n) = FAMILIES[*f];
                    let v: Vec<&str> = values.iter().map(String::as_str).take(n).collect();
                    add(&mut agg, &mut made, name, kind, &v);
                }
                Change::Remove(i) => {
                    if let Some(&s) = made.get(*i) {
                        let _ = reg.remove(s); // an unlabelled one stays, as does one gone already
                    }
                }
                Change::Consts(w) => which = *w,
                Change::Max(m) => max = *m,
                Change::Declare(k) => {
                    let (_, kind, n) = FAMILIES[*k];
                    let name = format!("later{declared}_seconds");
                    declared += 1;
                    let params: &[f64] = match kind { Kind::Histogram => &[2.0], Kind::Summary => &[0.5], _ => &[] };
                    reg.declare(&name, "Later.", kind, &["x", "y"][..n], params).unwrap();
                    add(&mut agg, &mut made, &name, kind, &["q", "r"][..n]);
                }
                Change::Native(on) => {
                    native = *on;
                    e1.send_native_histograms(on.to_owned());
                    e2.send_native_histograms(on.to_owned());
                }
            }
            // Values move every round.
            for &s in &made {
                if let Some(slot) = reg.slot(s) && slot.is_alive() {
                    agg.apply(&reg, Event { series: s, op: op_for(slot.kind), value: round as f64 + 0.5 });
                }
            }
            let cs = consts(which);
            if stale_between {
                let ended = agg.take_ended(&reg);
                let (f1, f2) = fresh(&ended, &cs, max, Values::Stale, native);
                prop_assert_eq!(&e1.encode(&ended, &cs, TS, max, Values::Stale), &f1, "1.0 stale markers, round {}", round);
                prop_assert_eq!(&e2.encode(&ended, &cs, TS, max, Values::Stale), &f2, "2.0 stale markers, round {}", round);
            }
            let snap = agg.snapshot(&reg);
            let (f1, f2) = fresh(&snap, &cs, max, Values::Current, native);
            prop_assert_eq!(&e1.encode(&snap, &cs, TS, max, Values::Current), &f1, "1.0 after {:?}", c);
            prop_assert_eq!(&e2.encode(&snap, &cs, TS, max, Values::Current), &f2, "2.0 after {:?}", c);
            // The same series again: every block reused (up to the cap), the same bytes.
            let again = e2.encode(&snap, &cs, TS, max, Values::Current);
            prop_assert_eq!(&again, &f2, "2.0 pushed twice after {:?}", c);
            if cap.is_none() {
                prop_assert_eq!(e2.reused(), again.iter().map(|r| r.samples).sum::<usize>(), "every block reused after {:?}", c);
            }
            if stale_between {
                // A final push's stale markers for every series, between two pushes.
                let (_, f2) = fresh(&snap, &cs, max, Values::Stale, native);
                prop_assert_eq!(&e2.encode(&snap, &cs, TS, max, Values::Stale), &f2);
                prop_assert_eq!(e2.reused(), 0, "a push that is not kept reads nothing");
            }
        }
    }
}

/// A family whose key was kept but none of its blocks (the cap was reached at its first sample),
/// after a family that since lost its last series: the family's first sample meets the lost
/// series' first entry, whose `le` index is the other family's and is out of this family's empty
/// list of `le`/`quantile` values (it was read before the series was compared, and panicked; the
/// property test above shrank its rare failure to this). Which cap stops the recording right there
/// depends on the block sizes (when this was written, 370–407 bytes for 2.0 and 887–975 for 1.0,
/// whose blocks spell the labels out), so every cap up to past both is tried.
#[test]
fn a_family_kept_without_blocks_after_one_that_lost_its_last_series() {
    for cap in 0..1200 {
        let reg = Registry::new(Limits::default());
        reg.declare("h_seconds", "Hist.", Kind::Histogram, &["path"], &[0.5, 1.0]).unwrap();
        reg.declare("s_seconds", "Sum.", Kind::Summary, &["path"], &[0.5, 0.9]).unwrap();
        let mut agg = Aggregator::new(1);
        let made = made(&reg, &mut agg, &[("h_seconds", "a"), ("h_seconds", "b"), ("s_seconds", "a")], Op::Observe, 0.25);
        let cs = consts(0);
        let (mut e1, mut e2) = (V1Encoder::default(), V2Encoder::default());
        e1.cap_blocks(cap);
        e2.cap_blocks(cap);
        for round in 0..2 {
            if round == 1 {
                reg.remove(made[1]).unwrap(); // h_seconds{path="b"}, the last series before s_seconds
            }
            let snap = agg.snapshot(&reg);
            let (f1, f2) = fresh(&snap, &cs, 1000, Values::Current, true);
            assert_eq!(e1.encode(&snap, &cs, TS, 1000, Values::Current), f1, "1.0, cap {cap}, round {round}");
            assert_eq!(e2.encode(&snap, &cs, TS, 1000, Values::Current), f2, "2.0, cap {cap}, round {round}");
        }
    }
}

/// Another registry with the same ids, where one family's help differs: nothing of the last push
/// is used (another generation), and going back neither.
#[test]
fn a_family_that_changed_is_encoded_afresh() {
    let make = |help: &str| {
        let reg = Registry::new(Limits::default());
        reg.declare("a_total", "A.", Kind::Counter, &["t"], &[]).unwrap();
        reg.declare("b_total", help, Kind::Counter, &["t"], &[]).unwrap();
        reg.declare("c_total", "C.", Kind::Counter, &["t"], &[]).unwrap();
        let mut agg = Aggregator::new(1);
        for f in ["a_total", "b_total", "c_total"] {
            for t in ["x", "y"] {
                agg.apply(&reg, Event { series: reg.series(f, &[t]).unwrap(), op: Op::Inc, value: 1.0 });
            }
        }
        (reg, agg)
    };
    let ((r1, mut a1), (r2, mut a2)) = (make("B."), make("Other help."));
    let cs = consts(0);
    let mut e2 = V2Encoder::default();
    let (s1, s2) = (a1.snapshot(&r1), a2.snapshot(&r2));
    for max in [1000, 3] {
        assert_eq!(e2.encode(&s1, &cs, TS, max, Values::Current), fresh(&s1, &cs, max, Values::Current, true).1);
        assert_eq!(e2.encode(&s1, &cs, TS, max, Values::Current), fresh(&s1, &cs, max, Values::Current, true).1);
        assert_eq!(e2.reused(), 6);
        assert_eq!(e2.encode(&s2, &cs, TS, max, Values::Current), fresh(&s2, &cs, max, Values::Current, true).1);
        assert_eq!(e2.reused(), 0, "another generation, though a_total's two series look the same");
        assert_eq!(e2.encode(&s2, &cs, TS, max, Values::Current), fresh(&s2, &cs, max, Values::Current, true).1);
        assert_eq!(e2.reused(), 6);
    }
}

/// A series relabelled in place: removed, and one with another value made; and the same label
/// values made again after their series went (a new series, with a new id, at a new place).
#[test]
fn a_relabelled_series_is_encoded_afresh() {
    let reg = Registry::new(Limits::default());
    reg.declare("c_total", "C.", Kind::Counter, &["t"], &[]).unwrap();
    reg.declare("d_total", "D.", Kind::Counter, &["t"], &[]).unwrap();
    let mut agg = Aggregator::new(1);
    let inc = |agg: &mut Aggregator, f: &str, t: &str| {
        let s = reg.series(f, &[t]).unwrap();
        agg.apply(&reg, Event { series: s, op: Op::Inc, value: 1.0 });
        s
    };
    let x = inc(&mut agg, "c_total", "x");
    inc(&mut agg, "c_total", "y");
    inc(&mut agg, "d_total", "z");
    let cs = consts(0);
    let mut e2 = V2Encoder::default();
    let push = |e2: &mut V2Encoder, agg: &mut Aggregator| {
        let snap = agg.snapshot(&reg);
        assert_eq!(e2.encode(&snap, &cs, TS, 2, Values::Current), fresh(&snap, &cs, 2, Values::Current, true).1);
        e2.reused()
    };
    assert_eq!((push(&mut e2, &mut agg), push(&mut e2, &mut agg)), (0, 3));
    reg.remove(x).unwrap();
    let w = inc(&mut agg, "c_total", "w");
    assert_eq!(push(&mut e2, &mut agg), 0, "c_total{{t=\"y\"}} is first now");
    assert_eq!(push(&mut e2, &mut agg), 3);
    reg.remove(w).unwrap();
    inc(&mut agg, "c_total", "x");
    assert_eq!(push(&mut e2, &mut agg), 1, "y, then x where w was");
    assert_eq!(push(&mut e2, &mut agg), 3);
}

/// Two families of the same shape: the series that follows a removed one is another family's
/// with the same label values, at the place the removed one had (its block names the other
/// family).
#[test]
fn the_same_label_values_in_the_next_family_are_not_the_same_series() {
    let reg = Registry::new(Limits::default());
    reg.declare("c1_total", "C.", Kind::Counter, &["t"], &[]).unwrap();
    reg.declare("c2_total", "C.", Kind::Counter, &["t"], &[]).unwrap();
    let mut agg = Aggregator::new(1);
    let made = made(&reg, &mut agg, &[("c1_total", "x"), ("c1_total", "y"), ("c2_total", "y")], Op::Inc, 1.0);
    let cs = consts(0);
    let mut e2 = V2Encoder::default();
    for _ in 0..2 {
        let snap = agg.snapshot(&reg);
        assert_eq!(e2.encode(&snap, &cs, TS, 1000, Values::Current), fresh(&snap, &cs, 1000, Values::Current, true).1);
    }
    reg.remove(made[1]).unwrap();
    let snap = agg.snapshot(&reg);
    assert_eq!(e2.encode(&snap, &cs, TS, 1000, Values::Current), fresh(&snap, &cs, 1000, Values::Current, true).1);
    assert_eq!(e2.reused(), 1);
}

/// A family's overflow series has every label value empty, as a real label set may have: the
/// one is not the other.
#[test]
fn an_overflow_series_is_not_a_series_of_empty_values() {
    let make = |limit: usize| {
        let reg = Registry::new(Limits { max_series_per_metric: limit, on_series_limit: OnSeriesLimit::Overflow, ..Limits::default() });
        reg.declare("c_total", "C.", Kind::Counter, &["t", "u"], &[]).unwrap();
        let mut agg = Aggregator::new(1);
        for v in [["x", "y"], ["", ""]] {
            agg.apply(&reg, Event { series: reg.series("c_total", &v).unwrap(), op: Op::Inc, value: 1.0 });
        }
        (reg, agg)
    };
    let ((r1, mut a1), (r2, mut a2)) = (make(1), make(2));
    let (s1, s2) = (a1.snapshot(&r1), a2.snapshot(&r2));
    assert!(s1.families[0].series[1].overflow && !s2.families[0].series[1].overflow);
    let cs = consts(0);
    let mut e2 = V2Encoder::default();
    for s in [&s1, &s1, &s2, &s2, &s1] {
        assert_eq!(e2.encode(s, &cs, TS, 1000, Values::Current), fresh(s, &cs, 1000, Values::Current, true).1);
    }
    assert_eq!(e2.reused(), 0, "another generation");
}

/// The text encoders' scenario (series added, removed and overflowing, values changing, a family
/// declared late, other constant labels, then the registry made again with other label values
/// at the same ids): kept 1.0 and 2.0 encoders push what fresh ones push.
#[test]
fn through_the_text_encoders_scenario_including_a_new_registry_at_the_same_ids() {
    for seed in [1, 7, 0x5eed] {
        let (mut e1, mut e2) = (V1Encoder::default(), V2Encoder::default());
        let mut round = 0;
        crate::encode::series_cache::tests::scenario(seed, 80, |snap, cs| {
            let (f1, f2) = fresh(snap, cs, 5, Values::Current, true);
            assert_eq!(e1.encode(snap, cs, TS, 5, Values::Current), f1, "1.0, seed {seed}, round {round}");
            assert_eq!(e2.encode(snap, cs, TS, 5, Values::Current), f2, "2.0, seed {seed}, round {round}");
            round += 1;
        });
    }
}
