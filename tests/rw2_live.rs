//! Remote write 2.0 against a live 2.0 receiver: Prometheus 3.x from Debian sid (scripts/fetch-sid.sh
//! unpacks it into .work/sid/; reference receivers.md §9), started with
//! `--enable-feature=native-histograms,created-timestamp-zero-ingestion`. The real .so in the libe
//! host pushes with `protocol` at its default `auto`, through a recording proxy of this file that
//! keeps each request's Content-Type and each answer's written counts. Held:
//! - kdbprom stays on 2.0: every request is 2.0, every answer carries written counts, and no
//!   fallback line is on stderr (the scenario runs in a child process whose stderr is read);
//! - `.prom.stats[]` samples_sent equals what the receiver counted (the answers' written counts,
//!   and Prometheus' own samples_in/histograms_in counters less the zero samples it added);
//! - every kind's value is exact: each sample `.prom.text[]` shows (counter, gauge, classic
//!   histogram buckets, summary quantiles as gauges) is the value Prometheus returns, and the
//!   native histogram arrives whole (count, sum, every bucket);
//! - stale markers end every series at `.prom.stop[]`;
//! - a counter's series gets its zero sample at its start timestamp (created-timestamp-zero-ingestion),
//!   seen in a raw range query: the start timestamp arrived.
//!
//! A missing sid binary fails the tests, naming scripts/install-deps.sh; never a skip.

mod common;
mod http;
mod servers;

use common::life::Life;
use common::{Host, host, lock, rw};
use std::collections::BTreeMap;
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CHILD_ENV: &str = "RW2_LIVE_CHILD";
const V2_TYPE: &str = "application/x-protobuf;proto=io.prometheus.write.v2.Request";
const FALLBACK_LINE: &str = "takes only remote-write 1.0";
const JOB: &str = "rw2live";

/// One exchange the recording proxy saw.
#[derive(Debug, Clone)]
struct Exchange {
    content_type: String,
    version: String,
    status: u16,
    /// The answer's X-Prometheus-Remote-Write-{Samples,Histograms,Exemplars}-Written, if present.
    samples_written: Option<u64>,
    histograms_written: Option<u64>,
    exemplars_written: Option<u64>,
}

/// A recording HTTP/1.1 proxy on loopback in front of `upstream`: forwards each POST with its
/// protocol headers and returns the upstream's answer with its headers.
fn recording_proxy(upstream: u16) -> (String, Arc<Mutex<Vec<Exchange>>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}", l.local_addr().unwrap().port());
    let log = Arc::new(Mutex::new(Vec::new()));
    let log2 = log.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { return };
            let log = log2.clone();
            std::thread::spawn(move || serve(conn, upstream, &log));
        }
    });
    (url, log)
}

fn serve(conn: TcpStream, upstream: u16, log: &Mutex<Vec<Exchange>>) {
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let mut w = conn.try_clone().unwrap();
    let mut r = BufReader::new(conn);
    loop {
        let Ok(Some(req)) = http::read_request(&mut r, &mut &w) else { return };
        let headers: BTreeMap<String, String> = req.headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
        let (method, path, body) = (req.method, req.path, req.body);
        let mut req = client.request(method.parse().unwrap(), format!("http://127.0.0.1:{upstream}{path}")).body(body);
        for k in ["content-type", "content-encoding", "x-prometheus-remote-write-version", "user-agent", "retry-attempt"] {
            if let Some(v) = headers.get(k) {
                req = req.header(k, v);
            }
        }
        let resp = req.send().unwrap();
        let status = resp.status().as_u16();
        let h = |k: &str| resp.headers().get(k).and_then(|v| v.to_str().ok()).and_then(|v| v.parse().ok());
        let ex = Exchange {
            content_type: headers.get("content-type").cloned().unwrap_or_default(),
            version: headers.get("x-prometheus-remote-write-version").cloned().unwrap_or_default(),
            status,
            samples_written: h("x-prometheus-remote-write-samples-written"),
            histograms_written: h("x-prometheus-remote-write-histograms-written"),
            exemplars_written: h("x-prometheus-remote-write-exemplars-written"),
        };
        let mut out = format!("HTTP/1.1 {status} {}\r\n", resp.status().canonical_reason().unwrap_or("X"));
        for (k, v) in resp.headers() {
            if !matches!(k.as_str(), "content-length" | "transfer-encoding" | "connection") {
                out.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap_or("")));
            }
        }
        let body = resp.bytes().unwrap();
        out.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        log.lock().unwrap().push(ex);
        if w.write_all(out.as_bytes()).and_then(|_| w.write_all(&body)).is_err() {
            return;
        }
    }
}

fn now_s() -> f64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64()
}

/// A counter of Prometheus' own /metrics (no labels).
fn own_counter(port: u16, name: &str) -> f64 {
    let body = servers::http().get(format!("http://127.0.0.1:{port}/metrics")).send().unwrap().text().unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(' ')).map(|v| v.parse().unwrap()))
        .unwrap_or_else(|| panic!("{name} in Prometheus' /metrics"))
}

/// Values whose sum is exact in binary: count 6, sum 10.5.
const NATIVE_VALUES: [f64; 6] = [0.25, 0.5, 0.75, 1.0, 2.0, 6.0];

fn declare_and_record(h: &Host) {
    h.ok("kdbprom_declare", &[h.s("counter"), h.s("rw2_rows_total"), h.str("Rows."), h.syms(&["table"]), h.id()]);
    h.ok("kdbprom_declare", &[h.s("gauge"), h.s("rw2_depth"), h.str("Depth."), h.id(), h.id()]);
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("rw2_lat_seconds"), h.str("Latency."), h.id(), h.floats(&[0.1, 0.5, 1.0])]);
    h.ok("kdbprom_declare", &[h.s("summary"), h.s("rw2_q_seconds"), h.str("Quantiles."), h.id(), h.id()]);
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s("rw2_native_seconds"), h.str("Native."), h.syms(&["path"]), h.s("native")]);
    for (t, v) in [("trade", 1234), ("quote", 42)] {
        let s = h.ok("kdbprom_series", &[h.s("rw2_rows_total"), h.str(t)]);
        h.ok("kdbprom_inc", &[s, h.j(v)]);
    }
    h.ok("kdbprom_set", &[h.s("rw2_depth"), h.f(7.5)]);
    h.ok("kdbprom_observe", &[h.s("rw2_lat_seconds"), h.floats(&[0.05, 0.3, 0.3, 0.7, 2.0])]);
    let qs: Vec<f64> = (1..=1000).map(|i| f64::from(i) / 1000.0).collect();
    h.ok("kdbprom_observe", &[h.s("rw2_q_seconds"), h.floats(&qs)]);
    let s = h.ok("kdbprom_series", &[h.s("rw2_native_seconds"), h.syms(&["/q"])]);
    h.ok("kdbprom_observe", &[s, h.floats(&NATIVE_VALUES)]);
}

/// The `rw2_` samples `.prom.text[]` shows: (series as written, value).
fn text_samples(h: &Host) -> Vec<(String, f64)> {
    let t = h.ok("kdbprom_text", &[h.id()]);
    let text = h.string(t);
    (h.r0)(t);
    text.lines()
        .filter(|l| l.starts_with("rw2_"))
        .map(|l| {
            let (s, v) = l.rsplit_once(' ').unwrap();
            (s.to_string(), v.parse().unwrap())
        })
        .collect()
}

/// A text-format series as a PromQL selector of this job's series.
fn selector(series: &str) -> String {
    match series.strip_suffix('}') {
        Some(s) => format!("{s},job=\"{JOB}\"}}"),
        None => format!("{series}{{job=\"{JOB}\"}}"),
    }
}

/// The whole scenario, in the child process (its stderr is the parent's to read).
fn scenario() {
    let _g = lock();
    let h = host();
    let prom = servers::prometheus3(&[]);
    let (proxy, log) = recording_proxy(prom.port);
    let t0 = now_s();
    let target = rw(h, &format!("{proxy}/api/v1/write"), "prom3", &[]);
    let life =
        Life::init_with(&["job", "instance", "remote_write", "interval_ms"], &[h.s(JOB), h.s("box:1"), h.list(&[target]), h.j(3_600_000)]);
    declare_and_record(h);
    let o = life.push();
    assert!(o["prom3"].ok && o["prom3"].status == 204, "{o:?}");
    let pushed_at = now_s();

    // Every kind's value is exact: what the text shows is what Prometheus holds.
    let samples = text_samples(h);
    assert!(samples.len() >= 15, "{samples:?}");
    for (series, want) in &samples {
        if series.starts_with("rw2_native_seconds") {
            continue; // a native histogram: its text is _sum/_count, stored whole (checked below)
        }
        let sel = selector(series);
        let r = servers::api_query(prom.port, &sel, pushed_at);
        assert_eq!(r.len(), 1, "{sel}: {r:?}");
        let got: f64 = r[0]["value"][1].as_str().unwrap().parse().unwrap();
        assert_eq!(got.to_bits(), want.to_bits(), "{sel}: Prometheus has {got}, the text shows {want}");
    }
    for kind in ["rw2_rows_total{", "rw2_depth", "rw2_lat_seconds_bucket{", "rw2_q_seconds{quantile="] {
        assert!(samples.iter().any(|(s, _)| s.starts_with(kind)), "{kind} in {samples:?}");
    }
    // The native histogram, whole: count, sum, and each bucket's count is the values in its range.
    let r = servers::api_query(prom.port, &format!("rw2_native_seconds{{job=\"{JOB}\",path=\"/q\"}}"), pushed_at);
    assert_eq!(r.len(), 1, "{r:?}");
    let hist = &r[0]["histogram"][1];
    assert_eq!((hist["count"].as_str(), hist["sum"].as_str()), (Some("6"), Some("10.5")), "{hist}");
    let buckets = hist["buckets"].as_array().unwrap();
    let mut total = 0.0;
    for b in buckets {
        let f = |i: usize| b[i].as_str().unwrap().parse::<f64>().unwrap();
        let (rule, lo, hi, n) = (b[0].as_u64().unwrap(), f(1), f(2), f(3));
        let inside = NATIVE_VALUES.iter().filter(|&&v| if rule == 0 { lo < v && v <= hi } else { lo <= v && v <= hi }).count();
        assert_eq!(n, inside as f64, "bucket {b}");
        total += n;
    }
    assert_eq!(total, 6.0, "{hist}");
    assert!(
        servers::api_query(prom.port, &format!("rw2_native_seconds_count{{job=\"{JOB}\"}}"), pushed_at).is_empty(),
        "no classic series"
    );

    // The counter's zero sample at its start timestamp (whole seconds, before the first push).
    for table in ["trade", "quote"] {
        let m = servers::matrix_at(prom.port, &format!("rw2_rows_total{{job=\"{JOB}\",table=\"{table}\"}}"), pushed_at);
        assert_eq!(m.len(), 1, "{m:?}");
        let pts = &m[0].1;
        let (first_t, first_v) = pts[0];
        assert_eq!(first_v, 0.0, "{table}: the zero sample comes first: {pts:?}");
        assert!(first_t % 1000 == 0 && first_t >= (t0.floor() as i64 - 1) * 1000, "{table}: at the start timestamp: {pts:?}");
        assert!(pts.len() >= 2 && pts[1].0 > first_t, "{table}: {pts:?}");
        assert_eq!(pts.last().unwrap().1, if table == "trade" { 1234.0 } else { 42.0 });
    }

    // A second push, then the stop: its final push and stale markers.
    let s = h.ok("kdbprom_series", &[h.s("rw2_rows_total"), h.str("trade")]);
    h.ok("kdbprom_inc", &[s, h.j(1)]);
    life.push();
    std::thread::sleep(Duration::from_millis(20));
    let before_stop = now_s();
    std::thread::sleep(Duration::from_millis(20));
    let st = life.stop();
    let fin = &st.pushed;
    assert!(fin["prom3"].ok, "the final push and its stale markers: {fin:?}");
    let (sent, failed) = (st.targets["prom3"].sent as u64, &st.targets["prom3"].failed);
    assert!(failed.iter().all(|(_, n)| *n == 0), "nothing failed: {failed:?}");

    // Stale markers ended every series: nothing of the job now, everything just before.
    let after = now_s() + 0.001;
    for (series, _) in &samples {
        let sel = if series.starts_with("rw2_native_seconds") { format!("rw2_native_seconds{{job=\"{JOB}\"}}") } else { selector(series) };
        assert_eq!(servers::api_query(prom.port, &sel, before_stop).len(), 1, "{sel} before the stop");
        assert!(servers::api_query(prom.port, &sel, after).is_empty(), "{sel} ended by its stale marker at the stop");
    }

    // Stayed on 2.0, every answer with written counts, and samples_sent is what the receiver counted.
    let ex = log.lock().unwrap().clone();
    assert!(ex.len() >= 3, "{ex:?}");
    for e in &ex {
        assert_eq!((e.content_type.as_str(), e.version.as_str(), e.status), (V2_TYPE, "2.0.0", 204), "{e:?}");
        assert!(e.samples_written.is_some() && e.histograms_written.is_some() && e.exemplars_written.is_some(), "{e:?}");
    }
    let written: u64 = ex.iter().map(|e| e.samples_written.unwrap() + e.histograms_written.unwrap()).sum();
    assert_eq!(sent, written, "samples_sent vs the answers' written counts: {ex:?}");
    // Prometheus' own count of what went into its storage: the written samples, plus one zero
    // sample per series with a start timestamp (created-timestamp-zero-ingestion).
    let stored = own_counter(prom.port, "prometheus_remote_storage_samples_in_total")
        + own_counter(prom.port, "prometheus_remote_storage_histograms_in_total");
    // Series whose first stored sample is a zero at a whole second before the next one.
    let all = servers::matrix_at(prom.port, &format!("{{job=\"{JOB}\",__name__!=\"rw2_native_seconds\"}}"), before_stop);
    let zero = all.iter().filter(|(_, p)| p.len() >= 2 && p[0].1 == 0.0 && p[0].0 % 1000 == 0).count();
    // The native histogram's zero sample: a first histogram with count 0.
    let r = servers::api_query(prom.port, &format!("rw2_native_seconds{{job=\"{JOB}\"}}[1h]"), before_stop);
    let hs = r[0]["histograms"].as_array().unwrap();
    let native_zero = usize::from(hs.len() >= 2 && hs[0][1]["count"] == "0");
    assert_eq!(native_zero, 1, "the native histogram's zero sample at its start timestamp: {hs:?}");
    eprintln!(
        "rw2_live: {} requests, samples_sent {sent}, written {written}, Prometheus samples_in+histograms_in {stored}, \
         float series {} with a zero sample first {zero}, native {native_zero}",
        ex.len(),
        all.len()
    );
    assert_eq!(
        stored,
        (sent as usize + zero + native_zero) as f64,
        "Prometheus stored what was sent and one zero sample per started series"
    );
}

#[test]
fn auto_stays_on_2_0_against_prometheus_3_with_exact_values_counts_stale_markers_and_zero_samples() {
    if std::env::var_os(CHILD_ENV).is_some() {
        scenario();
        return;
    }
    let version = servers::prometheus3_version();
    eprintln!("receiver: {version}");
    let _g = lock();
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "auto_stays_on_2_0_against_prometheus_3_with_exact_values_counts_stale_markers_and_zero_samples"])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .output()
        .expect("re-execute the test binary");
    let err = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "the scenario failed ({version}):\n{stdout}\n{err}");
    assert!(stdout.contains("1 passed"), "the child ran the scenario: {stdout}");
    assert!(!err.contains(FALLBACK_LINE), "no fallback to 1.0 ({version}): {err}");
    for l in err.lines().filter(|l| l.starts_with("rw2_live:") || l.contains(" kdbprom ")) {
        eprintln!("child: {l}");
    }
}

/// The sid binary is there and is a 3.x (the 2.0 receiver from 2.54; sid's is 3.5.3 as of Dec 2026).
#[test]
fn the_sid_prometheus_is_a_3_x() {
    let v = servers::prometheus3_version();
    eprintln!("{v}");
    assert!(v.starts_with("prometheus, version 3."), "{v}: scripts/install-deps.sh fetches Prometheus 3.x from Debian sid");
}
