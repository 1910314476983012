//! Remote-write 2.0 negotiation against a scripted receiver: `auto` falls back to 1.0 for good on
//! 415, 400 or a 2xx without written counts, resending the same data once as 1.0; written counts
//! lower than sent are `rejected`; nonsense counts are taken as written; `2.0` never falls back.

mod mock;

use kdbprom::proto::{WriteRequest, v2};
use mock::{Seen, agent, mock_with, settle};
use prost::Message;
use std::collections::BTreeSet;

const V2_TYPE: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";

fn is_v2(s: &Seen) -> bool {
    s.headers.get("content-type").map(String::as_str) == Some(V2_TYPE)
        && s.headers.get("x-prometheus-remote-write-version").map(String::as_str) == Some("2.0.0")
}

fn raw(s: &Seen) -> Vec<u8> {
    snap::raw::Decoder::new().decompress_vec(&s.body).unwrap()
}

/// Samples a request carries (histograms count one each).
fn samples(s: &Seen) -> u64 {
    if is_v2(s) {
        v2::Request::decode(&raw(s)[..]).unwrap().timeseries.iter().map(|t| (t.samples.len() + t.histograms.len()) as u64).sum()
    } else {
        WriteRequest::decode(&raw(s)[..]).unwrap().timeseries.iter().map(|t| (t.samples.len() + t.histograms.len()) as u64).sum()
    }
}

/// (series labels, value, timestamp) of every sample, whatever the protocol.
fn points(s: &Seen) -> BTreeSet<(String, u64, i64)> {
    if is_v2(s) {
        let r = v2::Request::decode(&raw(s)[..]).unwrap();
        r.timeseries
            .iter()
            .flat_map(|t| {
                let l: Vec<String> =
                    t.labels_refs.chunks(2).map(|p| format!("{}={}", r.symbols[p[0] as usize], r.symbols[p[1] as usize])).collect();
                t.samples.iter().map(move |x| (l.join(","), x.value.to_bits(), x.timestamp))
            })
            .collect()
    } else {
        let r = WriteRequest::decode(&raw(s)[..]).unwrap();
        r.timeseries
            .iter()
            .flat_map(|t| {
                let l: Vec<String> = t.labels.iter().map(|l| format!("{}={}", l.name, l.value)).collect();
                t.samples.iter().map(move |x| (l.join(","), x.value.to_bits(), x.timestamp))
            })
            .collect()
    }
}

fn written(n: u64) -> String {
    format!("X-Prometheus-Remote-Write-Samples-Written: {n}\r\nX-Prometheus-Remote-Write-Histograms-Written: 0\r\n")
}

fn cfg(url: &str, protocol: &str) -> serde_json::Value {
    serde_json::json!({"interval_ms": 3_600_000, "remote_write": [{"url": url, "name": "r", "protocol": protocol,
        "queue": {"min_backoff_ms": 5, "max_backoff_ms": 20}}]})
}

/// `auto` against a receiver that answers a 2.0 request with `status` and `extra` headers, and 204
/// to 1.0: the first request is 2.0, the next carries the same points as 1.0, and every later one
/// is 1.0; nothing is lost and nothing is counted twice.
fn falls_back(status: u16, extra: &'static str) {
    let (url, seen) =
        mock_with(move |_, s| if is_v2(s) { (status, extra.to_string(), String::new()) } else { (204, String::new(), String::new()) });
    let a = agent(cfg(&url, "auto"));
    settle(&seen, 2);
    a.push().unwrap();
    let (st, _) = a.stop().unwrap();
    let s = seen.lock().unwrap().clone();
    assert!(is_v2(&s[0]), "auto speaks 2.0 first");
    assert!(s[1..].iter().all(|r| !is_v2(r)), "1.0 for good after HTTP {status}: {:?}", s.iter().map(is_v2).collect::<Vec<_>>());
    assert_eq!(points(&s[0]), points(&s[1]), "the same data, resent as 1.0");
    assert_eq!(s[2..].iter().filter(|r| points(r) == points(&s[0])).count(), 0, "resent once, never twice");
    let c = st.target("r").unwrap();
    let delivered: u64 = s[1..].iter().map(samples).sum();
    assert_eq!(c.sent, delivered, "{c:?}");
    assert_eq!((c.failed_total(), c.queued), (0, 0), "{c:?}");
    assert!(c.balanced());
}

#[test]
fn auto_falls_back_on_415() {
    falls_back(415, "");
}

#[test]
fn auto_falls_back_on_400() {
    falls_back(400, "");
}

#[test]
fn auto_falls_back_on_2xx_without_written_counts() {
    falls_back(204, "");
}

#[test]
fn auto_stays_on_2_0_with_a_2_0_receiver_and_counts_partial_writes_as_rejected() {
    // Every 2.0 request is answered with its own count, except the second, which is 3 short.
    let (url, seen) = mock_with(|i, s| {
        let n = samples(s);
        let w = if i == 1 { n - 3 } else { n };
        (204, written(w), String::new())
    });
    let a = agent(cfg(&url, "auto"));
    settle(&seen, 1);
    let o = a.push().unwrap();
    assert!(!o[0].ok && o[0].message.contains("wrote"), "{o:?}");
    a.push().unwrap();
    let (st, _) = a.stop().unwrap();
    let s = seen.lock().unwrap().clone();
    assert!(s.iter().all(is_v2), "a 2.0 receiver keeps getting 2.0");
    let c = st.target("r").unwrap();
    let sent_by_us: u64 = s.iter().map(samples).sum();
    assert_eq!(c.failed(kdbprom::push::accounting::Reason::Rejected), 3, "{c:?}");
    assert_eq!(c.sent, sent_by_us - 3, "{c:?}");
    assert!(c.balanced());
}

#[test]
fn nonsense_written_counts_are_taken_as_written_and_larger_ones_capped() {
    for bad in ["X-Prometheus-Remote-Write-Samples-Written: lots\r\n", "X-Prometheus-Remote-Write-Samples-Written: -1\r\n"] {
        let (url, seen) = mock_with(move |_, _| (204, bad.to_string(), String::new()));
        let a = agent(cfg(&url, "2.0"));
        settle(&seen, 1);
        let o = a.push().unwrap();
        assert!(o[0].ok && o[0].message.contains("not numbers"), "{bad}: {o:?}");
        let (st, _) = a.stop().unwrap();
        let c = st.target("r").unwrap();
        assert_eq!((c.sent, c.failed_total()), (seen.lock().unwrap().iter().map(samples).sum(), 0), "{bad}: {c:?}");
    }
    let (url, seen) = mock_with(|_, s| (204, written(samples(s) + 1000), String::new()));
    let a = agent(cfg(&url, "2.0"));
    settle(&seen, 1);
    let (st, _) = a.stop().unwrap();
    let c = st.target("r").unwrap();
    assert_eq!(c.sent, seen.lock().unwrap().iter().map(samples).sum::<u64>(), "more written than sent is capped: {c:?}");
}

#[test]
fn forced_2_0_never_falls_back_and_counts_a_silent_receiver_as_rejected() {
    let (url, seen) = mock_with(|_, _| (204, String::new(), String::new()));
    let a = agent(cfg(&url, "2.0"));
    settle(&seen, 1);
    let o = a.push().unwrap();
    assert!(!o[0].ok && o[0].message.contains("not a 2.0 receiver"), "{o:?}");
    let (st, _) = a.stop().unwrap();
    let s = seen.lock().unwrap().clone();
    assert!(s.iter().all(is_v2));
    let c = st.target("r").unwrap();
    assert_eq!(c.failed(kdbprom::push::accounting::Reason::Rejected), s.iter().map(samples).sum::<u64>(), "{c:?}");
    assert_eq!(c.sent, 0);
}

/// A 1.0-only receiver is found out once, then remembered per URL in the spool directory for a
/// day: the next run (a new agent, the same spool directory) sends 1.0 from its first request.
/// After a day it probes again, and so does every run without a spool directory.
#[test]
fn a_fallback_is_remembered_per_url_in_the_spool_directory_for_a_day() {
    let (url, seen) = mock_with(|_, s| if is_v2(s) { (415, String::new(), String::new()) } else { (204, String::new(), String::new()) });
    let dir = std::env::temp_dir().join(format!("kdbprom-negotiated-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let spooled = |spool: &str| {
        let mut c = cfg(&url, "auto");
        c["spool"] = serde_json::json!({ "dir": spool });
        c
    };
    let run = |c: serde_json::Value| -> Vec<Seen> {
        let before = seen.lock().unwrap().len();
        let a = agent(c);
        settle(&seen, before + 1);
        a.push().unwrap();
        a.stop().unwrap();
        seen.lock().unwrap()[before..].to_vec()
    };
    let kinds = |s: &[Seen]| s.iter().map(is_v2).collect::<Vec<_>>();

    let first = run(spooled(dir.to_str().unwrap()));
    assert!(is_v2(&first[0]) && first[1..].iter().all(|r| !is_v2(r)), "the first run probes: {:?}", kinds(&first));
    let memory = dir.join(kdbprom::push::negotiated::FILE);
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&memory).unwrap()).unwrap();
    // The key is the URL as parsed (`http://host:port/`).
    let key = format!("{url}/");
    assert_eq!(m[&key]["protocol"], "1.0", "{m}");

    let second = run(spooled(dir.to_str().unwrap()));
    assert!(!second.is_empty() && second.iter().all(|r| !is_v2(r)), "the next run speaks 1.0 at once: {:?}", kinds(&second));

    // A day and a minute later: probed again.
    let mut m = m;
    m[&key]["at_ms"] = serde_json::json!(m[&key]["at_ms"].as_i64().unwrap() - 86_460_000);
    std::fs::write(&memory, m.to_string()).unwrap();
    let third = run(spooled(dir.to_str().unwrap()));
    assert!(is_v2(&third[0]), "re-probed after a day: {:?}", kinds(&third));

    // No spool directory, nothing remembered: each run probes.
    let fourth = run(spooled(""));
    let fifth = run(spooled(""));
    assert!(is_v2(&fourth[0]) && is_v2(&fifth[0]), "{:?} {:?}", kinds(&fourth), kinds(&fifth));
    std::fs::remove_dir_all(dir).unwrap();
}
