//! A series a `.prom.collect` function stops returning ends in a real Prometheus: remote write
//! carries its stale marker at the next push, so an instant query no longer finds it (a series
//! merely not pushed would linger for 5 minutes), while the ones still returned go on.

mod common;
mod servers;

use common::{host, lock};

#[test]
fn a_series_the_collector_drops_gets_its_stale_marker_in_prometheus() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    let _ = h.call("kdbprom_stop", &[h.id()]);
    let rw = common::rw(h, &format!("http://127.0.0.1:{}/api/v1/write", prom.port), "prom", &[("protocol", h.str("1.0"))]);
    let cfg = h.dict(&["job", "instance", "interval_ms", "remote_write"], &[h.s("collect_job"), h.s("c1"), h.j(3_600_000), h.list(&[rw])]);
    let r = h.ok("kdbprom_init", &[cfg, h.id()]);
    (h.r0)(r);
    h.ok("kdbprom_declare", &[h.s("gauge"), h.s("tp_subscribers"), h.str("Subscribers."), h.syms(&["table"]), h.id()]);
    let push = || {
        let o = h.ok("kdbprom_push", &[h.id()]);
        (h.r0)(o);
    };
    let now = || {
        let mut rows = servers::query(prom.port, "tp_subscribers{job=\"collect_job\"}");
        rows.sort_by(|a, b| a.0["table"].cmp(&b.0["table"]));
        rows.into_iter().map(|(l, v)| (l["table"].clone(), v)).collect::<Vec<_>>()
    };

    // count each .u.w: `trade`quote!3 5, then the quote subscriber goes away.
    h.ok("kdbprom_collect", &[h.s("tp_subscribers"), h.qdict(&["trade", "quote"], &[h.j(3), h.j(5)])]);
    push();
    assert_eq!(now(), [("quote".to_string(), 5.0), ("trade".to_string(), 3.0)]);
    h.ok("kdbprom_collect", &[h.s("tp_subscribers"), h.qdict(&["trade"], &[h.j(4)])]);
    push();
    assert_eq!(now(), [("trade".to_string(), 4.0)], "quote ended by its stale marker, trade goes on");
    let _ = h.call("kdbprom_stop", &[h.id()]);
}
