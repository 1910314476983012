//! Shared bench setup: the same 10 k counters in kdbprom and in each peer library.
#![allow(dead_code)]

use kdbprom::aggregate::Aggregator;
use kdbprom::event::{Event, Op};
use kdbprom::registry::{Kind, Limits, Registry};

/// Series in the encoding benches.
pub const SERIES: usize = 10_000;

/// kdbprom's state and the peers', holding the same values.
pub struct Data {
    pub reg: Registry,
    pub agg: Aggregator,
    pub tikv: prometheus::Registry,
    pub pc: prometheus_client::registry::Registry,
    pub mrs: metrics_exporter_prometheus::PrometheusHandle,
}

/// `bench_requests_total{table,user}`: 100 tables × 100 users.
pub fn data() -> Data {
    let reg = Registry::new(Limits { max_series: SERIES * 2, max_series_per_metric: SERIES, ..Limits::default() });
    reg.declare("bench_requests_total", "Requests.", Kind::Counter, &["table", "user"], &[]).unwrap();
    let tikv = prometheus::Registry::new();
    let tc = prometheus::CounterVec::new(prometheus::Opts::new("bench_requests_total", "Requests."), &["table", "user"]).unwrap();
    tikv.register(Box::new(tc.clone())).unwrap();
    let mut pc = prometheus_client::registry::Registry::default();
    let pcf = prometheus_client::metrics::family::Family::<Vec<(String, String)>, prometheus_client::metrics::counter::Counter>::default();
    pc.register("bench_requests", "Requests.", pcf.clone());
    let mrs = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
    let mut agg = Aggregator::new(1);
    for i in 0..SERIES {
        let (t, u) = (format!("table{}", i % 100), format!("user{}", i / 100));
        let s = reg.series("bench_requests_total", &[&t, &u]).unwrap();
        let v = (i * 37 % 1000) as u64;
        agg.apply(&reg, Event { series: s, op: Op::Inc, value: v as f64 });
        tc.with_label_values(&[&t, &u]).inc_by(v as f64);
        pcf.get_or_create(&vec![("table".to_string(), t.clone()), ("user".to_string(), u.clone())]).inc_by(v);
        metrics::with_local_recorder(&mrs, || {
            metrics::counter!("bench_requests_total", "table" => t.clone(), "user" => u.clone()).increment(v)
        });
    }
    Data { reg, agg, tikv, pc, mrs: mrs.handle() }
}

/// A second aggregator over `d`'s series, every value other than in `d.agg` (one more).
pub fn other_values(d: &Data) -> Aggregator {
    let mut agg = Aggregator::new(1);
    for i in 0..SERIES {
        let (t, u) = (format!("table{}", i % 100), format!("user{}", i / 100));
        let s = d.reg.series("bench_requests_total", &[&t, &u]).unwrap();
        agg.apply(&d.reg, Event { series: s, op: Op::Inc, value: (i * 37 % 1000 + 1) as f64 });
    }
    agg
}
