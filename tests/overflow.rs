//! Cardinality overflow (`on_series_limit`): label sets past `max_series` or
//! `max_series_per_metric` fold into each family's `otel_metric_overflow="true"` series; nothing
//! recorded is lost, `kdbprom_series_overflow_total{metric}` counts the records that went there,
//! and the number of series stays bounded.

use kdbprom::agent::Agent;
use kdbprom::aggregate::Aggregator;
use kdbprom::builtin::ProcessInfo;
use kdbprom::config::Config;
use kdbprom::event::{Batch, Event, Op};
use kdbprom::registry::{Kind, Limits, OnSeriesLimit, Registry};
use kdbprom::snapshot::Value;
use kdbprom::telemetry;
use proptest::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Barrier};

/// The user families of the threaded test: every kind of state.
const FAMILIES: [(&str, Kind); 4] = [
    ("ovf_rows_total", Kind::Counter),
    ("ovf_depth", Kind::Gauge),
    ("ovf_load_seconds", Kind::Histogram),
    ("ovf_query_seconds", Kind::Summary),
];
const THREADS: usize = 4;
const LABEL_SETS: usize = 150;
const PER_METRIC: usize = 100;
/// Room for user series beyond the built-ins': less than 4 × PER_METRIC, so both limits bite.
const USER_ROOM: usize = 330;

fn config(max_series: usize) -> Config {
    // One file per agent: tests run in parallel, and each textfile is replaced by a rename.
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let file = std::env::temp_dir().join(format!("kdbprom-overflow-{}-{n}.prom", std::process::id()));
    Config {
        job: "ovf".into(),
        textfile: Some(file),
        interval_ms: 86_400_000,
        max_series,
        max_series_per_metric: PER_METRIC,
        ..Config::default()
    }
}

fn process() -> ProcessInfo {
    ProcessInfo { host: "h".into(), pid: 1, version: "4.1".into(), ..ProcessInfo::default() }
}

/// What one thread recorded, per family: (value total, observations, records that went to the
/// overflow series).
#[derive(Debug, Default, Clone, Copy, PartialEq)]
struct Tally {
    total: f64,
    count: u64,
    overflow_records: u64,
    /// Values the ring refused (a full ring drops and counts; it never blocks).
    dropped: u64,
}

/// Sums the text exposition's samples by (metric name with suffix, the label filter's result).
fn sum_samples(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| l.split(['{', ' ']).next() == Some(name))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap())
        .sum()
}

#[test]
fn four_threads_past_both_limits_lose_nothing_and_stay_bounded() {
    // The built-ins' series count against max_series: measure them with the same configuration.
    let builtins = {
        let probe = Agent::start(config(100_000), &process()).unwrap();
        let n = probe.registry().live_series();
        probe.stop().unwrap();
        n
    };
    let max_series = builtins + USER_ROOM;
    let agent = Arc::new(Agent::start(config(max_series), &process()).unwrap());
    for (name, kind) in FAMILIES {
        let params: &[f64] = if kind == Kind::Histogram { &[1.0, 2.0] } else { &[] };
        agent.declare(name, "", kind, &["k"], params).unwrap();
    }
    let start = Arc::new(Barrier::new(THREADS));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let (agent, start) = (agent.clone(), start.clone());
            std::thread::spawn(move || {
                let mut tally = [Tally::default(); FAMILIES.len()];
                let reg = agent.registry();
                start.wait();
                for j in 0..LABEL_SETS {
                    let label = format!("t{t}-{j}");
                    for (f, (name, kind)) in FAMILIES.iter().enumerate() {
                        // Never a q error, whatever the limits.
                        let sid = agent.series(name, &[&label]).expect("a new label set is never refused");
                        let overflow = reg.live_slot(sid).unwrap().overflow;
                        let v = (j % 7 + 1) as f64;
                        // (accepted, value added, observations, records)
                        let done: Vec<(bool, f64, u64, u64)> = match kind {
                            Kind::Counter => vec![
                                (agent.record(sid, Op::Inc, v).unwrap(), v, 0, 1),
                                // A vector inc is one event: its sum.
                                (agent.record_vector(sid, Op::Inc, &[1.0, 2.0]).unwrap(), 3.0, 0, 1),
                            ],
                            Kind::Gauge => {
                                vec![
                                    (agent.record(sid, Op::Inc, v).unwrap(), v, 0, 1),
                                    (agent.record(sid, Op::Dec, 0.5).unwrap(), -0.5, 0, 1),
                                ]
                            }
                            _ => vec![
                                (agent.record(sid, Op::Observe, v / 4.0).unwrap(), v / 4.0, 1, 1),
                                // A vector observe counts its values.
                                (agent.record_vector(sid, Op::Observe, &[0.5, 1.5, v]).unwrap(), 2.0 + v, 3, 3),
                            ],
                        };
                        for (accepted, value, obs, records) in done {
                            // A full ring drops the event and counts it (never blocks): the test
                            // tallies only what was taken, as the library applies only that.
                            if !accepted {
                                tally[f].dropped += records;
                                continue;
                            }
                            let t = &mut tally[f];
                            t.total += value;
                            t.count += obs;
                            if overflow {
                                t.overflow_records += records;
                            }
                        }
                    }
                }
                tally
            })
        })
        .collect();
    let mut want = [Tally::default(); FAMILIES.len()];
    for th in threads {
        for (w, t) in want.iter_mut().zip(th.join().expect("no panic")) {
            w.total += t.total;
            w.count += t.count;
            w.overflow_records += t.overflow_records;
            w.dropped += t.dropped;
        }
    }
    let text = agent.text().unwrap();
    for ((name, kind), w) in FAMILIES.iter().zip(&want) {
        assert!(w.overflow_records > 0, "{name} overflowed");
        let (total, count) = match kind {
            Kind::Counter | Kind::Gauge => (sum_samples(&text, name), 0.0),
            _ => (sum_samples(&text, &format!("{name}_sum")), sum_samples(&text, &format!("{name}_count"))),
        };
        assert_eq!(total, w.total, "{name}: series + overflow = recorded");
        assert_eq!(count, w.count as f64, "{name}: observations");
        let counted = text
            .lines()
            .find(|l| l.starts_with(&format!("kdbprom_series_overflow_total{{metric=\"{name}\"")))
            .unwrap_or_else(|| panic!("no overflow counter for {name}:\n{text}"));
        assert_eq!(counted, format!("kdbprom_series_overflow_total{{metric=\"{name}\"}} {}", w.overflow_records));
        // The overflow series has the overflow label and none of the family's.
        let ovf: Vec<&str> = text.lines().filter(|l| l.starts_with(name) && l.contains("otel_metric_overflow")).collect();
        assert!(!ovf.is_empty() && ovf.iter().all(|l| l.contains("{otel_metric_overflow=\"true\"") && !l.contains("k=")), "{ovf:?}");
    }
    // Bounded: per family at most PER_METRIC real series and one overflow series; in all at
    // most max_series counted, the overflow series and their counters besides.
    let reg = agent.registry();
    let mut real: HashMap<&str, usize> = HashMap::new();
    let mut overflow: HashMap<&str, usize> = HashMap::new();
    let mut live = 0;
    for sid in 0..reg.slot_count() as u32 {
        let slot = reg.slot(sid).unwrap();
        assert!(slot.is_alive());
        live += 1;
        let name = &*reg.family(slot.family).name;
        *(if slot.overflow { &mut overflow } else { &mut real }).entry(name).or_default() += 1;
    }
    assert_eq!(live, reg.live_series());
    let mut user = 0;
    for (name, _) in FAMILIES {
        assert!(real[name] <= PER_METRIC, "{name}: {}", real[name]);
        assert_eq!(overflow[name], 1, "{name}");
        user += real[name];
    }
    assert_eq!(overflow.values().sum::<usize>(), FAMILIES.len(), "only user families overflowed");
    assert_eq!(real["kdbprom_series_overflow_total"], FAMILIES.len());
    assert_eq!(user, USER_ROOM, "the room in all was used up, no more");
    assert_eq!(reg.live_series(), max_series + 2 * FAMILIES.len());
    // Under load the flusher may fall behind 1,200 vector batches (1,024 slots): what the ring
    // refused is exactly what the threads were told was refused.
    assert_eq!(agent.stats().events_dropped, want.iter().map(|w| w.dropped).sum::<u64>());
    agent.stop().unwrap();
    let _ = std::fs::remove_file(config(0).textfile.unwrap());
}

#[test]
fn on_series_limit_error_refuses_the_label_set() {
    let agent =
        Agent::start(Config { on_series_limit: OnSeriesLimit::Error, max_series_per_metric: 1, ..config(100_000) }, &process()).unwrap();
    agent.declare("e_total", "", Kind::Counter, &["k"], &[]).unwrap();
    agent.series("e_total", &["a"]).unwrap();
    assert_eq!(agent.series("e_total", &["b"]).unwrap_err().to_string(), "e_total: too many series (limit 1 per metric)");
    let text = agent.text().unwrap();
    assert!(!text.contains("otel_metric_overflow") && !text.contains("kdbprom_series_overflow_total"), "{text}");
    agent.stop().unwrap();
}

#[derive(Debug, Clone)]
enum Step {
    /// Family index, label value, value (or observations).
    Record(usize, u8, u8),
    Observe(usize, u8, Vec<u8>),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..3usize, 0..24u8, any::<u8>()).prop_map(|(f, l, v)| Step::Record(f, l, v)),
        (0..3usize, 0..24u8, proptest::collection::vec(any::<u8>(), 0..6)).prop_map(|(f, l, v)| Step::Observe(f, l, v)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Whatever the limits and the order: per family, series + overflow = recorded, the overflow
    /// counter = records that went to the overflow series, and the series stay within the limits
    /// plus one overflow series per family; with `error`, refused label sets record nothing.
    #[test]
    fn overflow_totals_are_exact_and_series_bounded(
        steps in proptest::collection::vec(step(), 1..200),
        // From 4: with `error`, the self-metrics' 4 unlabelled families must fit (as at init).
        max_series in 4usize..40,
        per_metric in 1usize..12,
        error in any::<bool>(),
    ) {
        let on = if error { OnSeriesLimit::Error } else { OnSeriesLimit::Overflow };
        let reg = Registry::new(Limits { max_series, max_series_per_metric: per_metric, on_series_limit: on, ..Limits::default() });
        let own = telemetry::declare(&reg).unwrap();
        let builtins = reg.live_series();
        let fams = [("p_total", Kind::Counter), ("p_lat", Kind::Histogram), ("p_q", Kind::Summary)];
        for (n, k) in fams { reg.declare(n, "", k, &["l"], &[]).unwrap(); }
        let mut agg = Aggregator::new(1);
        let mut want_total = [0.0; 3];
        let mut want_records = [0u64; 3];
        for s in steps {
            let (f, l) = match &s { Step::Record(f, l, _) | Step::Observe(f, l, _) => (*f, *l) };
            let sid = match reg.series(fams[f].0, &[&l.to_string()]) {
                Ok(sid) => sid,
                Err(e) => { prop_assert!(error, "{e}"); continue }
            };
            let ovf = reg.live_slot(sid).unwrap().overflow;
            prop_assert!(!(error && ovf));
            match (s, fams[f].1) {
                (Step::Record(_, _, v), Kind::Counter) => {
                    agg.apply(&reg, Event { series: sid, op: Op::Inc, value: f64::from(v) });
                    want_total[f] += f64::from(v);
                    want_records[f] += u64::from(ovf);
                }
                (Step::Record(_, _, v), _) => {
                    agg.apply(&reg, Event { series: sid, op: Op::Observe, value: f64::from(v) });
                    want_total[f] += 1.0;
                    want_records[f] += u64::from(ovf);
                }
                (Step::Observe(_, _, vs), Kind::Counter) => {
                    let sum: f64 = vs.iter().map(|&v| f64::from(v)).sum();
                    agg.apply(&reg, Event { series: sid, op: Op::Inc, value: sum });
                    want_total[f] += sum;
                    want_records[f] += u64::from(ovf);
                }
                (Step::Observe(_, _, vs), _) => {
                    let n = vs.len();
                    agg.apply_batch(&reg, &Batch { series: sid, values: vs.into_iter().map(f64::from).collect() });
                    want_total[f] += n as f64;
                    want_records[f] += if ovf { n as u64 } else { 0 };
                }
            }
        }
        telemetry::publish_overflow(&mut agg, &reg, &own);
        let snap = agg.snapshot(&reg);
        let mut counted = builtins;
        for (f, (name, _)) in fams.iter().enumerate() {
            let fam = snap.families.iter().find(|x| &*x.family.name == *name).unwrap();
            let total: f64 = fam.series.iter().map(|s| match &s.value {
                Value::Scalar(x) => *x,
                Value::Histogram { count, .. } | Value::Summary { count, .. } => *count as f64,
            }).sum();
            prop_assert_eq!(total, want_total[f], "{}", name);
            let overflow_series = fam.series.iter().filter(|s| s.overflow).count();
            let real = fam.series.len() - overflow_series;
            prop_assert!(overflow_series <= 1 && real <= per_metric);
            counted += real;
            let records = snap.families.iter().find(|x| &*x.family.name == telemetry::SERIES_OVERFLOW).unwrap()
                .series.iter().find(|s| &*s.label_values[0] == *name).map(|s| s.value.clone());
            match (reg.overflow_series(name), records) {
                (Some(_), Some(v)) => prop_assert_eq!(v, Value::Scalar(want_records[f] as f64)),
                (Some(_), None) => prop_assert_eq!(want_records[f], 0, "{} records without a counter", name),
                (None, r) => { prop_assert_eq!(want_records[f], 0); prop_assert!(r.is_none()) }
            }
        }
        prop_assert!(counted <= max_series.max(builtins), "{} counted, limit {}", counted, max_series);
    }
}
