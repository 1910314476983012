//! Property tests of the pipeline's invariants, in plain Rust: nothing is lost or invented.

use kdbprom::aggregate::Aggregator;
use kdbprom::event::{Batch, Event, Op};
use kdbprom::registry::{Kind, Limits, Registry};
use kdbprom::ring::Ring;
use kdbprom::snapshot::Value;
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Step {
    Inc(u8),
    Observe(Vec<u8>),
    Drain(u8),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        any::<u8>().prop_map(Step::Inc),
        proptest::collection::vec(any::<u8>(), 0..20).prop_map(Step::Observe),
        any::<u8>().prop_map(Step::Drain),
    ]
}

proptest! {
    /// Events in = applied + dropped, and the aggregated totals are exactly the applied events.
    #[test]
    fn events_in_equal_applied_plus_dropped(steps in proptest::collection::vec(step(), 1..300), cap in 1usize..32, vbytes in 0usize..256) {
        let reg = Registry::new(Limits::default());
        reg.declare("c_total", "", Kind::Counter, &[], &[]).unwrap();
        reg.declare("h", "", Kind::Histogram, &[], &[100.0]).unwrap();
        let (c, h) = (reg.by_name("c_total").unwrap(), reg.by_name("h").unwrap());
        let ring = Ring::new(cap, vbytes);
        let mut agg = Aggregator::new(1);
        let (mut offered, mut inc_sum, mut obs_ok) = (0u64, 0.0, 0u64);
        let drain_all = |agg: &mut Aggregator, max: usize| {
            ring.drain(max, |ev| agg.apply(&reg, ev));
            while let Some(b) = ring.pop_batch() { agg.apply_batch(&reg, &b); }
        };
        for s in steps {
            match s {
                Step::Inc(v) => {
                    offered += 1;
                    if ring.push(Event { series: c, op: Op::Inc, value: f64::from(v) }) { inc_sum += f64::from(v); }
                }
                Step::Observe(vs) => {
                    offered += vs.len() as u64;
                    let n = vs.len() as u64;
                    if ring.push_batch(Batch { series: h, values: vs.into_iter().map(f64::from).collect() }) { obs_ok += n; }
                }
                Step::Drain(n) => drain_all(&mut agg, usize::from(n)),
            }
        }
        drain_all(&mut agg, usize::MAX);
        prop_assert_eq!(offered, agg.applied() + ring.dropped());
        let snap = agg.snapshot(&reg);
        prop_assert_eq!(&snap.families[0].series[0].value, &Value::Scalar(inc_sum));
        match &snap.families[1].series[0].value {
            Value::Histogram { count, cumulative, .. } => { prop_assert_eq!(*count, obs_ok); prop_assert_eq!(*cumulative.last().unwrap(), obs_ok); }
            v => prop_assert!(false, "{:?}", v),
        }
    }
}
