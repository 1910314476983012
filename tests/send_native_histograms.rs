//! `remote_write[].send_native_histograms` (issue 16, item 2): the key is a boolean (default
//! true, env `KDBPROM_REMOTE_WRITE_SEND_NATIVE_HISTOGRAMS`); false sends what the text exposition
//! shows, so a Prometheus without `--enable-feature=native-histograms` (which answers 500 to a
//! request holding one) gets a native-only family as `_count`/`_sum` with exact values and fails
//! nothing; the default sends native histograms whole to a Prometheus with the flag. The real .so
//! in the libe host pushes, as q does.

mod common;
mod servers;

use common::life::Life;
use common::{Host, host, lock, rw};
use kdbprom::config::Config;
use servers::query;
use std::collections::HashMap;

/// Values whose sum is exact in binary: count 6, sum 10.5.
const VALUES: [f64; 6] = [0.25, 0.5, 0.75, 1.0, 2.0, 6.0];

/// A native-only `nh_seconds{path}` and a native + classic `nd_seconds` (bounds 0.5, 1, 4), both
/// given [`VALUES`].
fn declare_and_observe(h: &Host) {
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("nh_seconds"), h.str("Native only."), h.syms(&["path"]), h.s("native")]);
    let both = h.dict(&["buckets", "factor"], &[h.floats(&[0.5, 1.0, 4.0]), h.f(1.1)]);
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("nd_seconds"), h.str("Native and classic."), h.id(), both]);
    let s = h.ok("kdbprom_series", &[h.s("nh_seconds"), h.syms(&["/q"])]);
    h.ok("kdbprom_observe", &[s, h.floats(&VALUES)]);
    h.ok("kdbprom_observe", &[h.s("nd_seconds"), h.floats(&VALUES)]);
}

#[test]
fn the_key_is_a_boolean_defaulting_to_true_and_the_environment_sets_it() {
    let c = Config::from_json(&serde_json::json!({"remote_write": {"url": "http://h:1/w"}})).unwrap();
    assert!(c.remote_write[0].send_native_histograms);
    let c = Config::from_json(&serde_json::json!({"remote_write": {"url": "http://h:1/w", "send_native_histograms": false}})).unwrap();
    assert!(!c.remote_write[0].send_native_histograms);
    let e = Config::from_json(&serde_json::json!({"remote_write": {"url": "http://h:1/w", "send_native_histograms": "no"}})).unwrap_err();
    assert_eq!(e.to_string(), "config key remote_write[0].send_native_histograms must be a boolean");
    let env = |v: &str| -> HashMap<String, String> {
        [("KDBPROM_REMOTE_WRITE_URL", "http://h:1/w"), ("KDBPROM_REMOTE_WRITE_SEND_NATIVE_HISTOGRAMS", v)]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert!(!Config::from_env(&env("false")).unwrap().remote_write[0].send_native_histograms);
    assert!(Config::from_env(&env("YES")).unwrap().remote_write[0].send_native_histograms);
    let e = Config::from_env(&env("maybe")).unwrap_err().to_string();
    assert!(e.contains("remote_write[0].send_native_histograms (from environment KDBPROM_REMOTE_WRITE_SEND_NATIVE_HISTOGRAMS)"), "{e}");
}

/// Bookworm's Prometheus 2.42 without the native-histograms flag, over 1.0 and over `auto` (whose
/// 2.0 probe that Prometheus answers 204 without written counts: it falls back and resends as 1.0).
#[test]
fn false_sends_what_the_text_shows_to_a_prometheus_without_native_histograms() {
    let _g = lock();
    let h = host();
    for protocol in ["1.0", "auto"] {
        let prom = servers::prometheus(None);
        let url = format!("http://127.0.0.1:{}/api/v1/write", prom.port);
        let t = rw(h, &url, "prom", &[("protocol", h.str(protocol)), ("send_native_histograms", h.b(false))]);
        let life = Life::init_with(
            &["job", "instance", "remote_write", "interval_ms"],
            &[h.s("nhoff"), h.s("box:1"), h.list(&[t]), h.j(3_600_000)],
        );
        declare_and_observe(h);
        let o = life.push();
        assert!(o["prom"].ok && o["prom"].status == 204, "{protocol}: {o:?}");
        let sel = "{job=\"nhoff\",instance=\"box:1\"}";
        let one = |m: &str| {
            let rows = query(prom.port, &format!("{m}{sel}"));
            assert_eq!(rows.len(), 1, "{protocol}: {m}: {rows:?}");
            rows[0].1
        };
        assert_eq!((one("nh_seconds_count"), one("nh_seconds_sum")), (6.0, 10.5), "{protocol}: exact count and sum");
        assert_eq!((one("nd_seconds_count"), one("nd_seconds_sum")), (6.0, 10.5), "{protocol}");
        let b = query(prom.port, &format!("nd_seconds_bucket{sel}"));
        let le = |l: &str| servers::value(&b, &[("le", l)]);
        assert_eq!((le("0.5"), le("1.0"), le("4.0"), le("+Inf")), (2.0, 4.0, 5.0, 6.0), "{protocol}: {b:?}");
        assert!(query(prom.port, "nh_seconds").is_empty() && query(prom.port, "nd_seconds").is_empty(), "{protocol}: no native series");
        assert!(query(prom.port, "nh_seconds_bucket").is_empty(), "{protocol}: a native-only family has no buckets, as in the text");
        let prom_stats = life.target("prom");
        let (sent, failed) = (prom_stats.sent, prom_stats.failed);
        assert!(failed.iter().all(|(_, n)| *n == 0), "{protocol}: nothing fails: {failed:?}");
        assert!(sent > 0);
        let fin = life.stop().pushed;
        assert!(fin["prom"].ok, "{protocol}: the final push and its stale markers: {fin:?}");
        assert!(query(prom.port, "nh_seconds_count").is_empty(), "{protocol}: stale markers ended it");
    }
}

/// The default against a Prometheus with `--enable-feature=native-histograms`: the native
/// histogram arrives whole (and the classic series only for the family that has classic buckets).
#[test]
fn the_default_sends_native_histograms_whole() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus_with(&["--enable-feature=native-histograms"]);
    let t = rw(h, &format!("http://127.0.0.1:{}/api/v1/write", prom.port), "prom", &[]);
    let life =
        Life::init_with(&["job", "instance", "remote_write", "interval_ms"], &[h.s("nhon"), h.s("box:1"), h.list(&[t]), h.j(3_600_000)]);
    declare_and_observe(h);
    let o = life.push();
    assert!(o["prom"].ok && o["prom"].status == 204, "{o:?}");
    for m in ["nh_seconds", "nd_seconds"] {
        let one = |q: String| {
            let r = query(prom.port, &q);
            assert_eq!(r.len(), 1, "{q}: {r:?}");
            r[0].1
        };
        assert_eq!(one(format!("histogram_count({m}{{job=\"nhon\"}})")), 6.0, "{m}");
        assert_eq!(one(format!("histogram_sum({m}{{job=\"nhon\"}})")), 10.5, "{m}");
    }
    assert!(query(prom.port, "nh_seconds_count").is_empty(), "a native-only family has no classic series");
    assert_eq!(servers::value(&query(prom.port, "nd_seconds_count"), &[]), 6.0);
    let failed = life.target("prom").failed;
    assert!(failed.iter().all(|(_, n)| *n == 0), "{failed:?}");
    let _ = h.call("kdbprom_stop", &[h.id()]);
}
