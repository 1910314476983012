//! What the README promises and no other test held: each test drives the real .so in the libe host
//! against real receivers (through the fault proxy where a fault is needed) and checks the
//! library's figures against what the test did and what the proxy logged, not against each other.

mod common;
mod faults;
mod mock;
mod servers;

use common::life::{Life, sample_lines, wait_until};
use common::{host, lock, rw};
use faults::{Fault, Proxy};
use kdbprom::push::spool;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const INSTANCE: &str = "promises-host:1";
/// No interval rounds: every round is init, a `.prom.push[]` or the final push.
const NO_INTERVAL_ROUNDS: i64 = 86_400_000;

fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

fn now_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs_f64()
}

/// A remote-write 1.0 body of `fixture_value{job,instance,k=<i>} = i` at `ts_ms`, for i in 0..n.
fn v1_body(job: &str, n: usize, ts_ms: i64) -> bytes::Bytes {
    use kdbprom::proto::{Label, Sample, TimeSeries, WriteRequest};
    use prost::Message;
    let label = |n: &str, v: &str| Label { name: n.into(), value: v.into() };
    let req = WriteRequest {
        timeseries: (0..n)
            .map(|i| TimeSeries {
                labels: vec![label("__name__", "fixture_value"), label("instance", "i2"), label("job", job), label("k", &i.to_string())],
                samples: vec![Sample { value: i as f64, timestamp: ts_ms }],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap().into()
}

/// The same series as a remote-write 2.0 body (symbols table, label references).
fn v2_body(job: &str, n: usize, ts_ms: i64) -> bytes::Bytes {
    use kdbprom::proto::v2;
    use prost::Message;
    let mut symbols = vec![
        String::new(),
        "__name__".into(),
        "fixture_value".into(),
        "instance".into(),
        "i2".into(),
        "job".into(),
        job.into(),
        "k".into(),
    ];
    let timeseries = (0..n)
        .map(|i| {
            symbols.push(i.to_string());
            v2::TimeSeries {
                labels_refs: vec![1, 2, 3, 4, 5, 6, 7, symbols.len() as u32 - 1],
                samples: vec![v2::Sample { value: i as f64, timestamp: ts_ms, ..Default::default() }],
                ..Default::default()
            }
        })
        .collect();
    let req = v2::Request { symbols, timeseries };
    snap::raw::Encoder::new().compress_vec(&req.encode_to_vec()).unwrap().into()
}

/// A spool file for `job`'s target `prom` written by "another run" of this host.
fn spool_fixture(dir: &std::path::Path, job: &str, kind: spool::BodyKind, body: bytes::Bytes, samples: u64, ts_ms: i64) {
    let h = spool::Header {
        job: job.into(),
        instance: "i2".into(),
        host: kdbprom::builtin::local_host(),
        target: "prom".into(),
        kind,
        created_ms: ts_ms,
    };
    spool::write(dir, &h, &[spool::Entry { body, samples, ts_ms }], 1 << 20).unwrap();
}

/// README "Daily replays": samples Prometheus refuses as older than its head block are counted
/// `too_old` and not retried. A spool file three hours old is replayed at init to a real
/// Prometheus: it answers 400 (out of bounds), the proxy sees that one request and no other
/// carrying those samples, and `too_old` is exactly the samples the test wrote into the file.
#[test]
fn a_replay_prometheus_refuses_as_too_old_is_counted_and_not_retried() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    let proxy = Proxy::start(prom.port);
    let dir = servers::tmpdir("too-old");
    let job = "p_too_old";
    let n = 5;
    let url = format!("{}/api/v1/write", proxy.url());
    // A first run gives Prometheus a head block that ends now (an empty one takes any time).
    let first = Life::init(
        job,
        INSTANCE,
        &[
            ("interval_ms", h.j(NO_INTERVAL_ROUNDS)),
            ("remote_write", rw(h, &url, "prom", &[("stale_markers", h.b(false)), ("protocol", h.str("1.0"))])),
        ],
    );
    assert!(first.push()["prom"].ok);
    let _ = first.stop();
    let before = proxy.requests() as usize;
    spool_fixture(&dir, job, spool::BodyKind::RemoteWrite1, v1_body(job, n, now_ms() - 3 * 3_600_000), n as u64, now_ms() - 3 * 3_600_000);
    let a = Life::init(
        job,
        INSTANCE,
        &[
            ("interval_ms", h.j(NO_INTERVAL_ROUNDS)),
            ("spool", h.dict(&["dir"], &[h.str(dir.to_str().unwrap())])),
            ("remote_write", rw(h, &url, "prom", &[("stale_markers", h.b(false)), ("protocol", h.str("1.0"))])),
        ],
    );
    a.gauge("t_seq");
    a.set("t_seq", 1.0);
    assert!(a.push()["prom"].ok);
    let fin = a.stop();
    let log = proxy.log()[before..].to_vec();
    let refused: Vec<_> = log.iter().filter(|s| s.status == 400).collect();
    eprintln!("statuses {:?}", log.iter().map(|s| s.status).collect::<Vec<_>>());
    assert_eq!(refused.len(), 1, "one refused request, not retried: {log:?}");
    assert_eq!(refused[0].rw_samples(), n as u64, "it carried the file's samples");
    let fixture = |s: &&faults::Seen| s.rw_points().iter().any(|(l, _)| l.contains("fixture_value"));
    assert_eq!(log.iter().filter(fixture).count(), 1, "no other request carried them");
    let p = &fin.targets["prom"];
    assert_eq!(p.failed("too_old"), n as i64, "{p:?}");
    p.assert_failed_only(&["too_old"]);
    assert_eq!(p.sent as u64, faults::witness(&log).delivered_samples, "{p:?}");
    assert!(servers::matrix(prom.port, "fixture_value").is_empty(), "Prometheus holds none of them");
    assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e.unwrap().path().to_string_lossy().ends_with(".spool")), "the file is done with");
}

/// README "Retries": a 4xx other than 429 (and 408) is tried once: counted `http_4xx`, the
/// proxy logs exactly one request for that round, and the request leaves the queue (the next
/// push sends only the new round).
#[test]
fn a_4xx_is_counted_http_4xx_and_not_retried() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    let proxy = Proxy::start(prom.port);
    let job = "p_4xx";
    let url = format!("{}/api/v1/write", proxy.url());
    let a = Life::init(
        job,
        INSTANCE,
        &[
            ("interval_ms", h.j(NO_INTERVAL_ROUNDS)),
            ("remote_write", rw(h, &url, "prom", &[("stale_markers", h.b(false)), ("protocol", h.str("1.0"))])),
        ],
    );
    a.gauge("t_seq");
    a.set("t_seq", 1.0);
    assert!(a.push()["prom"].ok);
    for (i, status) in [403u16, 404, 413].into_iter().enumerate() {
        let before = proxy.requests() as usize;
        let failed_before = a.target("prom").failed("http_4xx");
        proxy.set_fault(Fault::Status(status, "no".into()));
        a.set("t_seq", 2.0 + i as f64);
        let o = a.push();
        assert!(!o["prom"].ok && o["prom"].status == status as i64 && o["prom"].attempts == 1, "{o:?}");
        let log = proxy.log();
        assert_eq!(log.len(), before + 1, "HTTP {status}: one request, not retried");
        let p = a.target("prom");
        assert_eq!(p.failed("http_4xx") - failed_before, log[before].rw_samples() as i64, "HTTP {status}: {p:?}");
        assert_eq!(p.queued, 0, "the refused request left the queue: {p:?}");
        p.assert_failed_only(&["http_4xx"]);
        proxy.set_fault(Fault::Pass);
    }
    let before = proxy.requests() as usize;
    a.set("t_seq", 9.0);
    assert!(a.push()["prom"].ok);
    let log = proxy.log();
    assert_eq!(log.len(), before + 1, "the next push sends only its own round");
    let fin = a.stop();
    let p = &fin.targets["prom"];
    let refused: u64 = log.iter().filter(|s| (400..500).contains(&s.status)).map(|s| s.rw_samples()).sum();
    assert_eq!(p.failed("http_4xx") as u64, refused, "{p:?}");
    let t: Vec<f64> = servers::matrix(prom.port, &format!("t_seq{{job=\"{job}\"}}"))[0].1.iter().map(|s| s.1).collect();
    assert!(!t.iter().any(|v| (2.0..5.0).contains(v)), "refused rounds never arrived: {t:?}");
}

/// `queue.max_samples_per_send` splits a round on the wire: every request the proxy logs holds at
/// most that many samples, together exactly the round, and Prometheus holds every series.
#[test]
fn max_samples_per_send_splits_a_round_into_requests() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    let proxy = Proxy::start(prom.port);
    let job = "p_split";
    let max = 7;
    let url = format!("{}/api/v1/write", proxy.url());
    let queue = h.dict(&["max_samples_per_send"], &[h.j(max)]);
    let a = Life::init(
        job,
        INSTANCE,
        &[
            ("interval_ms", h.j(NO_INTERVAL_ROUNDS)),
            ("remote_write", rw(h, &url, "prom", &[("stale_markers", h.b(false)), ("protocol", h.str("1.0")), ("queue", queue)])),
        ],
    );
    a.declare("gauge", "t_many", &["k"], None);
    let n = 50;
    for i in 0..n {
        let id = a.series("t_many", &[&i.to_string()]);
        a.set_id(id, i as f64);
    }
    wait_until("the init round", Duration::from_secs(5), || {
        let p = a.target("prom");
        p.sent > 0 && p.queued == 0
    });
    let before = proxy.requests() as usize;
    let o = a.push();
    assert!(o["prom"].ok, "{o:?}");
    // Metadata goes in requests of its own (no samples): those are not split by samples.
    let log: Vec<_> = proxy.log()[before..].iter().filter(|s| s.rw_samples() > 0 || !metadata_only(s)).cloned().collect();
    let sizes: Vec<u64> = log.iter().map(|s| s.rw_samples()).collect();
    eprintln!("a round of {} samples sent as {} requests: {sizes:?}", o["prom"].samples, log.len());
    assert!(log.iter().all(|s| s.status == 204), "{log:?}");
    assert!(sizes.iter().all(|&s| s >= 1 && s <= max as u64), "every request at most {max} samples: {sizes:?}");
    assert_eq!(sizes.iter().sum::<u64>(), o["prom"].samples as u64, "together the round");
    assert!(log.len() as u64 >= (o["prom"].samples as u64).div_ceil(max as u64), "{sizes:?}");
    let mine: usize = log.iter().map(|s| s.rw_points().iter().filter(|(l, _)| l.contains("__name__=t_many")).count()).sum();
    assert_eq!(mine, n, "each of the {n} series once");
    let _ = a.stop();
    assert_eq!(servers::query(prom.port, &format!("count(t_many{{job=\"{job}\"}})"))[0].1, n as f64);
}

/// A 1.0 request that carries metadata and no time series.
fn metadata_only(s: &faults::Seen) -> bool {
    use prost::Message;
    let w = kdbprom::proto::WriteRequest::decode(&snap::raw::Decoder::new().decompress_vec(&s.body).unwrap()[..]).unwrap();
    w.timeseries.is_empty() && !w.metadata.is_empty()
}

/// `last_success` (README "Every sample is accounted for": `kdbprom_last_success_timestamp_seconds`):
/// 0 before any accepted request, the time of the last accepted request after one, unchanged by
/// failures.
#[test]
fn last_success_is_zero_until_a_success_then_moves_only_on_success() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    let proxy = Proxy::start(prom.port);
    proxy.set_fault(Fault::Status(503, "down".into()));
    let url = format!("{}/api/v1/write", proxy.url());
    let a = Life::init(
        "p_last",
        INSTANCE,
        &[("interval_ms", h.j(1_000)), ("remote_write", rw(h, &url, "prom", &[("stale_markers", h.b(false)), ("protocol", h.str("1.0"))]))],
    );
    assert!(proxy.wait_requests(2, Duration::from_secs(5)), "the init round is being refused");
    assert_eq!(a.target("prom").last_success, 0.0, "0 = never");
    assert!(!a.push()["prom"].ok);
    assert_eq!(a.target("prom").last_success, 0.0, "still never");
    let t0 = now_s();
    proxy.set_fault(Fault::Pass);
    assert!(a.push()["prom"].ok);
    let t1 = now_s();
    let moved = a.target("prom").last_success;
    // The figure is the time of the accepted request: within the push.
    assert!(moved >= t0 - 0.01 && moved <= t1 + 0.01, "{t0} <= {moved} <= {t1}");
    // Down again; once a request has been refused, no success can come, so the figure read then
    // is the last success (an interval round may have succeeded in between).
    proxy.set_fault(Fault::Status(503, "down again".into()));
    let n = proxy.requests();
    assert!(proxy.wait_requests(n + 1, Duration::from_secs(3)));
    let t2 = now_s();
    let first = a.target("prom").last_success;
    assert!(first >= moved && first <= t2, "{moved} <= {first} <= {t2}");
    assert!(!a.push()["prom"].ok);
    let n = proxy.requests();
    assert!(proxy.wait_requests(n + 2, Duration::from_secs(5)), "more refused rounds");
    assert_eq!(a.target("prom").last_success, first, "failures leave it");
    proxy.set_fault(Fault::Pass);
    let t3 = now_s();
    assert!(a.push()["prom"].ok);
    let later = a.target("prom").last_success;
    assert!(later >= t3 - 0.01 && later > first, "moves on the next success: {first} -> {later}");
    let _ = a.stop();
}

/// README "Textfile": a failure to write it counts as `write_error` (every sample of the round).
/// The file's directory is replaced by a regular file after init (mode bits do not stop root).
#[test]
fn a_textfile_that_cannot_be_written_counts_write_error() {
    let _g = lock();
    let h = host();
    let dir = servers::tmpdir("textfile-we");
    let file = dir.join("p.prom");
    let a = Life::init("p_textfile", INSTANCE, &[("interval_ms", h.j(NO_INTERVAL_ROUNDS)), ("textfile", h.str(file.to_str().unwrap()))]);
    a.gauge("t_seq");
    a.set("t_seq", 1.0);
    let o = a.push();
    assert!(o["textfile"].ok, "{o:?}");
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.lines().any(|l| l.starts_with("t_seq{") && l.ends_with("} 1")), "{written}");
    assert_eq!(o["textfile"].samples as usize, sample_lines(&written), "the round is the file's sample lines");
    let p = a.target("textfile");
    assert_eq!(p.failed("write_error"), 0);
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, "not a directory").unwrap();
    a.set("t_seq", 2.0);
    let expected = sample_lines(&a.text()) as i64;
    let o = a.push();
    assert!(!o["textfile"].ok, "{o:?}");
    eprintln!("textfile failure: {}", o["textfile"].message);
    let p = a.target("textfile");
    p.assert_failed_only(&["write_error"]);
    assert_eq!(p.failed("write_error"), expected, "every sample of the round: {p:?}");
    let _ = a.stop();
    let _ = std::fs::remove_file(&dir);
}

/// README "Each target one pipeline … a slow or dead receiver must not use up the others'
/// deadline": with one remote-write target behind a proxy that never answers, a value set now is
/// in the healthy target's Prometheus within one interval (plus the query's own latency).
#[test]
fn a_hung_target_does_not_delay_a_healthy_one() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    let proxy = Proxy::start(prom.port);
    proxy.set_fault(Fault::Hang);
    let job = "p_hung_other";
    let interval = 1_000;
    let targets = h.list(&[
        rw(h, &format!("{}/api/v1/write", proxy.url()), "hung", &[("stale_markers", h.b(false)), ("protocol", h.str("1.0"))]),
        rw(
            h,
            &format!("http://127.0.0.1:{}/api/v1/write", prom.port),
            "healthy",
            &[("stale_markers", h.b(false)), ("protocol", h.str("1.0"))],
        ),
    ]);
    let a = Life::init(job, INSTANCE, &[("interval_ms", h.j(interval)), ("exit_deadline_ms", h.j(500)), ("remote_write", targets)]);
    a.gauge("t_seq");
    assert!(proxy.wait_requests(1, Duration::from_secs(5)), "the hung target is hanging");
    let sel = format!("t_seq{{job=\"{job}\"}}");
    let mut worst = Duration::ZERO;
    for v in 1..=3 {
        a.set("t_seq", v as f64);
        let t = Instant::now();
        wait_until(&format!("t_seq = {v} in Prometheus"), Duration::from_secs(10), || {
            servers::query(prom.port, &sel).first().is_some_and(|r| r.1 == v as f64)
        });
        worst = worst.max(t.elapsed());
    }
    eprintln!("healthy target beside a hung one: slowest value arrived after {worst:?}");
    // Rounds run back to back behind the hung target's deadline (one interval): a value waits up
    // to one round for the next, then its push and the query. Held behind the hung target, it
    // would never arrive (the healthy send cut at the deadline) and the wait above would fail.
    assert!(worst <= Duration::from_millis(2 * interval as u64), "a value took {worst:?} with interval_ms {interval}");
    let st = a.stats();
    assert_eq!(st.targets["hung"].sent, 0, "{:?}", st.targets["hung"]);
    assert!(st.targets["healthy"].sent > 0);
    let _ = a.stop();
}

/// `native_request_histograms: true` end to end: `kdb_request_duration_seconds` goes out as a
/// native histogram (the proxy sees histogram points for it and no `_bucket` series) and a
/// Prometheus started with `--enable-feature=native-histograms` holds it as one: its count is the
/// requests the test made, and there is no classic bucket series.
#[test]
fn native_request_histograms_arrive_as_native_histograms() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus_with(&["--enable-feature=native-histograms"]);
    let proxy = Proxy::start(prom.port);
    let job = "p_native_req";
    let url = format!("{}/api/v1/write", proxy.url());
    let a = Life::init(
        job,
        INSTANCE,
        &[
            ("interval_ms", h.j(NO_INTERVAL_ROUNDS)),
            ("native_request_histograms", h.b(true)),
            ("remote_write", rw(h, &url, "prom", &[("stale_markers", h.b(false)), ("protocol", h.str("1.0"))])),
        ],
    );
    // What the sync handler wrapper calls around each request: begin, then end (handler 0 = sync).
    let n = 12;
    for _ in 0..n {
        assert!(h.ok("kdbprom_begin", &[h.j(0)]).is_null());
        std::thread::sleep(Duration::from_millis(1));
        assert!(h.ok("kdbprom_end", &[h.j(0)]).is_null());
    }
    let before = proxy.requests() as usize;
    assert!(a.push()["prom"].ok);
    let _ = a.stop();
    let log = proxy.log()[before..].to_vec();
    let pts: Vec<(String, i64)> = log.iter().flat_map(|s| s.rw_points()).collect();
    assert!(pts.iter().any(|(l, _)| l.starts_with("__name__=kdb_request_duration_seconds,")), "the histogram went out");
    assert!(!pts.iter().any(|(l, _)| l.contains("kdb_request_duration_seconds_bucket")), "no classic buckets on the wire");
    let sel = format!("kdb_request_duration_seconds{{job=\"{job}\",handler=\"sync\"}}");
    let count = servers::query(prom.port, &format!("histogram_count({sel})"));
    assert_eq!(count.len(), 1, "a native histogram series in Prometheus: {count:?}");
    assert_eq!(count[0].1, n as f64, "its count is the requests made");
    let sum = servers::query(prom.port, &format!("histogram_sum({sel})"))[0].1;
    assert!(sum >= n as f64 * 0.001 && sum < 5.0, "its sum is the requests' time: {sum}");
    let classic = servers::query(prom.port, &format!("count({{__name__=\"kdb_request_duration_seconds_bucket\",job=\"{job}\"}})"));
    assert!(classic.is_empty(), "no classic bucket series: {classic:?}");
}

/// README "Replay": a remote-write 2.0 spool file (written by a run that spoke 2.0) is replayed to
/// a target configured `protocol: "1.0"`: it arrives rewritten as 1.0, with its own timestamps.
#[test]
fn a_2_0_spool_file_is_replayed_to_a_1_0_target() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus(None);
    let proxy = Proxy::start(prom.port);
    let dir = servers::tmpdir("v2-spool");
    let job = "p_v2_spool";
    let n = 4;
    let ts = now_ms() - 20_000;
    spool_fixture(&dir, job, spool::BodyKind::RemoteWrite2, v2_body(job, n, ts), n as u64, ts);
    let url = format!("{}/api/v1/write", proxy.url());
    let a = Life::init(
        job,
        INSTANCE,
        &[
            ("interval_ms", h.j(NO_INTERVAL_ROUNDS)),
            ("spool", h.dict(&["dir"], &[h.str(dir.to_str().unwrap())])),
            ("remote_write", rw(h, &url, "prom", &[("stale_markers", h.b(false)), ("protocol", h.str("1.0"))])),
        ],
    );
    assert!(a.push()["prom"].ok);
    let fin = a.stop();
    let log = proxy.log();
    assert!(log.iter().all(|s| !s.is_v2()), "a 1.0 target gets only 1.0: {log:?}");
    let carrying: Vec<_> = log.iter().filter(|s| s.rw_points().iter().any(|(l, _)| l.contains("fixture_value"))).collect();
    assert_eq!(carrying.len(), 1, "{carrying:?}");
    assert_eq!(carrying[0].status, 204);
    let fixture_pts: Vec<_> = carrying[0].rw_points().into_iter().filter(|(l, _)| l.contains("fixture_value")).collect();
    assert_eq!(fixture_pts.len(), n);
    assert!(fixture_pts.iter().all(|(_, t)| *t == ts), "original timestamps: {fixture_pts:?}");
    let m = servers::matrix(prom.port, &format!("fixture_value{{job=\"{job}\"}}"));
    assert_eq!(m.len(), n, "{m:?}");
    for (labels, samples) in &m {
        let k: f64 = labels["k"].as_str().unwrap().parse().unwrap();
        assert_eq!(samples.iter().map(|s| (s.0, s.1)).collect::<Vec<_>>(), vec![(ts, k)], "{labels:?}");
    }
    let p = &fin.targets["prom"];
    p.assert_failed_only(&[]);
    assert_eq!(p.sent as u64, faults::witness(&log).delivered_samples, "{p:?}");
}

/// The sliding window of summaries: observations older than `summary_max_age_ms` leave the
/// quantiles (not the count or the sum). 100 observations of 1000, then 600 ms later 10 of 1: the
/// median reads 1000 until the window (2 s, 5 slices of 400 ms) has passed the first ones, then 1.
#[test]
fn summary_quantiles_slide_out_after_summary_max_age_ms() {
    let _g = lock();
    let h = host();
    let dir = servers::tmpdir("summary-window");
    let max_age = 2_000u64;
    let a = Life::init(
        "p_summary",
        INSTANCE,
        &[
            ("interval_ms", h.j(NO_INTERVAL_ROUNDS)),
            ("summary_max_age_ms", h.j(max_age as i64)),
            ("textfile", h.str(dir.join("s.prom").to_str().unwrap())),
        ],
    );
    a.declare("summary", "t_lat", &[], Some(&[0.5]));
    let t0 = Instant::now();
    for _ in 0..100 {
        a.observe("t_lat", 1000.0);
    }
    // The 1s go into a later slice than the 1000s (a slice is 400 ms), so they stay when the 1000s leave.
    std::thread::sleep(Duration::from_millis(600));
    for _ in 0..10 {
        a.observe("t_lat", 1.0);
    }
    let median = |t: &str| -> f64 {
        let l = t.lines().find(|l| l.starts_with("t_lat{") && l.contains("quantile=\"0.5\"")).unwrap_or_else(|| panic!("{t}"));
        l.rsplit(' ').next().unwrap().parse().unwrap()
    };
    let count = |t: &str| -> f64 { t.lines().find(|l| l.starts_with("t_lat_count")).unwrap().rsplit(' ').next().unwrap().parse().unwrap() };
    let first = a.text();
    assert!((median(&first) - 1000.0).abs() < 20.0 && count(&first) == 110.0, "{first}");
    let mut changed = None;
    while t0.elapsed() < Duration::from_millis(max_age + 1_500) {
        let t = a.text();
        if median(&t) < 500.0 {
            changed = Some((t0.elapsed(), t));
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let (at, t) = changed.expect("the old observations never left the quantiles");
    eprintln!("the median moved after {at:?}");
    let slice = Duration::from_millis(max_age / 5);
    assert!(at >= Duration::from_millis(max_age) - slice, "left too early: {at:?}");
    // Each reading goes through the flusher thread, which a loaded machine can hold back.
    assert!(at <= Duration::from_millis(max_age) + slice + Duration::from_millis(600), "left too late: {at:?}");
    // Only the ten 1s are left in the window; the count and sum keep everything.
    assert!((median(&t) - 1.0).abs() < 0.05, "{t}");
    assert_eq!(count(&t), 110.0, "{t}");
    let _ = a.stop();
}

/// Set in the child process of [`kdbprom_config_and_overrides_and_password_env_in_a_child`].
const CHILD_ENV: &str = "PROMISES_ENV_CHILD";
const SECRET_ENV: &str = "PROMISES_SECRET";

/// The child: `.prom.init[::]` in a process whose environment is the configuration; one gauge
/// (`env_value` 7), one push, stop. As an ordinary test (no variable) it does nothing.
#[test]
fn env_config_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let _g = lock();
    let h = host();
    let r = h.ok("kdbprom_init", &[h.id(), h.id()]);
    let settings: std::collections::HashMap<String, kdbplus::api::K> = h.dict_items(r).into_iter().collect();
    println!("SETTINGS job={} instance={}", h.sym(settings["job"]), h.sym(settings["instance"]));
    let a = Life { h };
    a.gauge("env_value");
    a.set("env_value", 7.0);
    let o = a.push();
    println!("PUSHED {o:?}");
    assert!(o["rw_file"].ok, "{o:?}");
    let _ = a.stop();
    std::process::exit(0);
}

/// README "The environment": with `.prom.init[::]`, the JSON file `KDBPROM_CONFIG` names is the
/// base and each `KDBPROM_<KEY PATH>` variable sets its key over it; `password_env` names the
/// variable holding the password. A child process (this binary again) gets that environment; the
/// receiver (a mock) sees the overridden job, the file's instance, label and target name, the
/// overridden protocol (1.0 only) and username, and the password from the variable.
#[test]
fn kdbprom_config_and_overrides_and_password_env_in_a_child() {
    use base64::Engine;
    let _g = lock();
    let (url, seen) = mock::mock(vec![(204, "", "")]);
    let dir = servers::tmpdir("env-config");
    let file = dir.join("kdbprom.json");
    let cfg = serde_json::json!({
        "job": "from_file", "instance": "file-inst", "interval_ms": NO_INTERVAL_ROUNDS, "exit_deadline_ms": 1000,
        "labels": {"team": "t1"},
        "remote_write": [{"url": format!("{url}/api/v1/write"), "name": "rw_file", "stale_markers": false,
                          "basic_auth": {"username": "file-user", "password_env": SECRET_ENV}}],
    });
    std::fs::write(&file, serde_json::to_vec_pretty(&cfg).unwrap()).unwrap();
    let state = dir.join("state");
    std::fs::create_dir_all(&state).unwrap();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "env_config_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("HOST_HARNESS_STATE_CHOSEN", "1")
        .env("XDG_STATE_HOME", &state)
        .env("KDBPROM_CONFIG", &file)
        .env("KDBPROM_JOB", "from_env")
        .env("KDBPROM_REMOTE_WRITE_PROTOCOL", "1.0")
        .env("KDBPROM_REMOTE_WRITE_BASIC_AUTH_USERNAME", "env-user")
        .env(SECRET_ENV, "s3cret")
        .output()
        .expect("re-execute the test binary");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "child failed: {stdout}\n{stderr}");
    assert!(stdout.contains("SETTINGS job=from_env instance=file-inst"), "{stdout}");
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty(), "the child pushed: {stdout}\n{stderr}");
    let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("env-user:s3cret"));
    let mut found = false;
    for s in &seen {
        assert_eq!(s.headers.get("authorization"), Some(&auth), "{:?}", s.headers);
        assert_eq!(s.headers.get("content-type").map(String::as_str), Some("application/x-protobuf"), "1.0 only: {:?}", s.headers);
        use prost::Message;
        let w = kdbprom::proto::WriteRequest::decode(&snap::raw::Decoder::new().decompress_vec(&s.body).unwrap()[..]).unwrap();
        for t in &w.timeseries {
            let l: std::collections::BTreeMap<&str, &str> = t.labels.iter().map(|l| (l.name.as_str(), l.value.as_str())).collect();
            assert_eq!((l["job"], l["instance"], l.get("team").copied()), ("from_env", "file-inst", Some("t1")), "{l:?}");
            if l["__name__"] == "env_value" && t.samples.iter().any(|x| x.value == 7.0) {
                found = true;
            }
        }
    }
    assert!(found, "env_value 7 arrived");
}

/// Pushgateway `basic_auth` (username + `password_file`) and `timeout_ms`: every PUT carries the
/// credentials; when the gateway takes 800 ms to answer, each attempt gives up after 300 ms, so the
/// round (a 1 s deadline) makes several attempts instead of waiting on one.
#[test]
fn pushgateway_basic_auth_and_timeout_ms() {
    use base64::Engine;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let _g = lock();
    let h = host();
    let slow = Arc::new(AtomicBool::new(false));
    let arrived = Arc::new(AtomicUsize::new(0));
    let (s2, a2) = (slow.clone(), arrived.clone());
    let (url, seen) = mock::mock_with(move |_, _| {
        a2.fetch_add(1, Ordering::SeqCst);
        if s2.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(800));
        }
        (200, String::new(), String::new())
    });
    let dir = servers::tmpdir("pgw-auth");
    let pw = dir.join("pw");
    std::fs::write(&pw, "pgw-secret\n").unwrap();
    let job = "p_pgw_auth";
    let pgw = h.dict(
        &["url", "timeout_ms", "basic_auth"],
        &[h.str(&url), h.j(300), h.dict(&["username", "password_file"], &[h.str("pgw-user"), h.str(pw.to_str().unwrap())])],
    );
    let a = Life::init(job, INSTANCE, &[("interval_ms", h.j(1_000)), ("pushgateway", pgw)]);
    a.gauge("t_seq");
    a.set("t_seq", 1.0);
    assert!(a.push()["pushgateway"].ok);
    slow.store(true, Ordering::SeqCst);
    // An interval round may be under way: count from a quiet moment (no attempt for 100 ms).
    let mut last = arrived.load(Ordering::SeqCst);
    wait_until("a quiet moment", Duration::from_secs(5), || {
        std::thread::sleep(Duration::from_millis(100));
        let now = arrived.load(Ordering::SeqCst);
        std::mem::replace(&mut last, now) == now
    });
    let before = arrived.load(Ordering::SeqCst);
    let t = Instant::now();
    let o = a.push();
    let took = t.elapsed();
    let attempts = arrived.load(Ordering::SeqCst) - before;
    eprintln!("slow gateway: {attempts} attempts in {took:?}: {:?}", o["pushgateway"]);
    assert!(!o["pushgateway"].ok, "{o:?}");
    assert!(o["pushgateway"].message.to_lowercase().contains("time"), "the outcome says it timed out: {o:?}");
    assert!(attempts >= 2, "each attempt gave up at timeout_ms 300, not after the gateway's 800 ms: {attempts} in {took:?}");
    slow.store(false, Ordering::SeqCst);
    let _ = a.stop();
    let auth = format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("pgw-user:pgw-secret"));
    let seen = seen.lock().unwrap().clone();
    assert!(!seen.is_empty());
    for s in &seen {
        assert_eq!(s.headers.get("authorization"), Some(&auth), "{} {}: {:?}", s.method, s.path, s.headers);
        assert!(s.path.starts_with(&format!("/metrics/job/{job}/")), "{}", s.path);
    }
}
