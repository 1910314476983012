//! The Pushgateway's body formats against the real gateway (Debian's 1.5.1): the real .so in the
//! libe host declares and records counters, a gauge, a classic histogram, a summary and native
//! histograms through the q API, pushes them as delimited protobuf (the default), gzipped, or as
//! text, and the test reads the gateway's `/metrics` back in protobuf, decoding it with the
//! `io.prometheus.client` types. Every value and every native bucket is compared with a recount of
//! the observations made here, bucket indices computed in this file (⌈log2|v| · 2^schema⌉).
//! The headers are checked on a mock, and bad `pushgateway.format`/`compression` values are
//! refused naming the key.

mod common;
mod mock;
mod servers;

use common::life::Life;
use common::{Host, host, lock};
use kdbplus::api::K;
use kdbprom::config::Config;
use kdbprom::proto::client::{Metric, MetricFamily, MetricType};
use prost::Message;
use std::collections::{BTreeMap, HashMap};

const ACCEPT: &str = "application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited";

/// The native histograms' configuration: factor 1.1 is schema 3 (2^(1/8) ≈ 1.0905 ≤ 1.1 < 2^(1/4)),
/// a zero threshold of 1e-6, and room enough that the schema is never lowered.
const SCHEMA: i32 = 3;
const ZERO_THRESHOLD: f64 = 1e-6;

/// `.prom.init` of `job` as instance box:1, labelled env=ci, pushing to `pg` (at init and when
/// the test asks: the interval is an hour).
fn init(h: &Host, job: &str, pg: K) -> Life {
    Life::init(job, "box:1", &[("labels", h.dict(&["env"], &[h.s("ci")])), ("pushgateway", pg), ("interval_ms", h.j(3_600_000))])
}

/// (ok, status) of the Pushgateway's outcome of `.prom.push[]`.
fn push(life: &Life) -> (bool, i64) {
    let o = &life.push()["pushgateway"];
    (o.ok, o.status)
}

/// A fixed sample: 300 lognormal-ish latencies around 5 ms (splitmix64 through Box-Muller), exact
/// powers of two (upper bounds of their buckets), zeros, values inside the zero bucket, negatives.
fn sample() -> Vec<f64> {
    let mut v = common::lognormal(0x0bad_cafe_u64, 300, 1.5);
    v.extend([1.0, 2.0, 0.5, 0.25, 0.0, 0.0, 0.0, 1e-7, -5e-7, 1e-6, -0.001, -0.02, -0.3, -1.5, -7.0, -2.0, 1234.5]);
    v
}

/// The bucket index of `|v|` at [`SCHEMA`], from the definition: ⌈log2|v| · 2^schema⌉ (exact for
/// powers of two; the random values are checked to be nowhere near a boundary).
fn index(v: f64) -> i32 {
    let x = v.abs().log2() * f64::from(1 << SCHEMA);
    let frac = x - x.floor();
    assert!(frac == 0.0 || (1e-9..1.0 - 1e-9).contains(&frac), "{v} is too close to a bucket boundary for this recount");
    x.ceil() as i32
}

/// What the gateway should hold for a native histogram of `values`: zero count, and the positive
/// and negative buckets (index → count).
fn recount(values: &[f64]) -> (u64, BTreeMap<i32, u64>, BTreeMap<i32, u64>) {
    let (mut zero, mut pos, mut neg) = (0, BTreeMap::new(), BTreeMap::new());
    for &v in values {
        if v.abs() <= ZERO_THRESHOLD {
            zero += 1;
        } else if v > 0.0 {
            *pos.entry(index(v)).or_insert(0) += 1;
        } else {
            *neg.entry(index(v)).or_insert(0) += 1;
        }
    }
    (zero, pos, neg)
}

/// Buckets (index → count) from spans and deltas as the gateway serves them, checking that the
/// span lengths add up and no implied count is negative.
fn buckets(spans: &[kdbprom::proto::client::BucketSpan], deltas: &[i64]) -> BTreeMap<i32, u64> {
    assert_eq!(spans.iter().map(|s| s.length() as usize).sum::<usize>(), deltas.len(), "span lengths vs deltas");
    let (mut out, mut d, mut count, mut next) = (BTreeMap::new(), deltas.iter(), 0i64, 0i32);
    for (n, s) in spans.iter().enumerate() {
        let mut i = if n == 0 { s.offset() } else { next + s.offset() };
        for _ in 0..s.length() {
            count += d.next().unwrap();
            assert!(count >= 0, "negative bucket count");
            if count > 0 {
                out.insert(i, count as u64);
            }
            i += 1;
        }
        next = i;
    }
    out
}

/// The gateway's whole store, asked for in delimited protobuf.
fn gateway(port: u16) -> Vec<MetricFamily> {
    let r = servers::http().get(format!("http://127.0.0.1:{port}/metrics")).header("Accept", ACCEPT).send().unwrap();
    let ct = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(ct.contains("io.prometheus.client.MetricFamily") && ct.contains("delimited"), "{ct}");
    let body = r.bytes().unwrap();
    let mut b = &body[..];
    let mut out = Vec::new();
    while !b.is_empty() {
        out.push(MetricFamily::decode_length_delimited(&mut b).unwrap());
    }
    out
}

fn labels(m: &Metric) -> BTreeMap<&str, &str> {
    m.label.iter().map(|l| (l.name(), l.value())).collect()
}

/// The one series of family `name` in group `job` whose labels include `want`.
fn series<'a>(fams: &'a [MetricFamily], name: &str, job: &str, want: &[(&str, &str)]) -> (&'a MetricFamily, &'a Metric) {
    let f = fams.iter().find(|f| f.name() == name).unwrap_or_else(|| panic!("{name} not in the gateway"));
    let hits: Vec<&Metric> = f
        .metric
        .iter()
        .filter(|m| {
            let l = labels(m);
            l.get("job") == Some(&job) && want.iter().all(|(k, v)| l.get(k) == Some(v))
        })
        .collect();
    assert_eq!(hits.len(), 1, "{name} {want:?}: {:?}", f.metric);
    let l = labels(hits[0]);
    assert_eq!((l["instance"], l["env"]), ("box:1", "ci"), "grouping key and static labels: {l:?}");
    assert!(hits[0].timestamp_ms.is_none());
    (f, hits[0])
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1e-300)
}

/// The observations around rank `q · n` (one rank either side): a `q` quantile lies between them.
fn quantile(values: &[f64], q: f64) -> (f64, f64) {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let r = (q * v.len() as f64).ceil() as usize;
    (v[r.saturating_sub(2)], v[r.min(v.len() - 1)])
}

/// Declares and records every kind; returns the native histograms' observations.
fn declare_and_record(h: &Host, p: &str) -> Vec<f64> {
    let n = |s: &str| format!("{p}_{s}");
    h.ok("kdbprom_declare", &[h.s("counter"), h.s(&n("rows_total")), h.str("Rows."), h.syms(&["table"]), h.id()]);
    h.ok("kdbprom_declare", &[h.s("gauge"), h.s(&n("depth")), h.str("Depth."), h.id(), h.id()]);
    h.ok(
        "kdbprom_declare",
        &[h.s("histogram"), h.s(&n("lat_seconds")), h.str("Latency."), h.syms(&["path"]), h.floats(&[0.001, 0.01, 0.1, 1.0])],
    );
    h.ok("kdbprom_declare", &[h.s("summary"), h.s(&n("size_bytes")), h.str("Sizes."), h.id(), h.floats(&[0.5, 0.9, 0.99])]);
    let native = || h.dict(&["factor", "zero_threshold", "max_buckets"], &[h.f(1.1), h.f(ZERO_THRESHOLD), h.j(10_000)]);
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s(&n("native_seconds")), h.str("Native only."), h.syms(&["path"]), native()]);
    let both = h.dict(
        &["buckets", "factor", "zero_threshold", "max_buckets"],
        &[h.floats(&[0.001, 0.01, 0.1, 1.0]), h.f(1.1), h.f(ZERO_THRESHOLD), h.j(10_000)],
    );
    h.ok("kdbprom_declare", &[h.s("histogram"), h.s(&n("both_seconds")), h.str("Native and classic."), h.id(), both]);

    for (t, v) in [("trade", 1234.0), ("quote", 42.5)] {
        let s = h.ok("kdbprom_series", &[h.s(&n("rows_total")), h.str(t)]);
        h.ok("kdbprom_inc", &[s, h.f(v)]);
    }
    h.ok("kdbprom_set", &[h.s(&n("depth")), h.f(-7.25)]);
    let values = sample();
    let lat = h.ok("kdbprom_series", &[h.s(&n("lat_seconds")), h.str("/q")]);
    h.ok("kdbprom_observe", &[lat, h.floats(&values)]);
    h.ok("kdbprom_observe", &[h.s(&n("size_bytes")), h.floats(&values)]);
    let s = h.ok("kdbprom_series", &[h.s(&n("native_seconds")), h.str("/q")]);
    // A vector, then single values: both record paths.
    h.ok("kdbprom_observe", &[(h.r1)(s), h.floats(&values[..200])]);
    for &v in &values[200..] {
        h.ok("kdbprom_observe", &[(h.r1)(s), h.f(v)]);
    }
    (h.r0)(s);
    h.ok("kdbprom_observe", &[h.s(&n("both_seconds")), h.floats(&values)]);
    values
}

/// Checks what the gateway holds for group `job` against the recount; `native`: whether native
/// histograms are expected whole (protobuf) or as their classic parts (text).
fn check(fams: &[MetricFamily], p: &str, job: &str, values: &[f64], native: bool) {
    let n = |s: &str| format!("{p}_{s}");
    let (count, sum) = (values.len() as u64, values.iter().sum::<f64>());
    let bounds = [0.001, 0.01, 0.1, 1.0];
    let classic: Vec<(f64, u64)> = bounds.iter().map(|&b| (b, values.iter().filter(|&&v| v <= b).count() as u64)).collect();

    let (f, m) = series(fams, &n("rows_total"), job, &[("table", "trade")]);
    assert_eq!((f.r#type(), f.help()), (MetricType::Counter, "Rows."));
    assert_eq!(m.counter.as_ref().unwrap().value(), 1234.0);
    assert_eq!(series(fams, &n("rows_total"), job, &[("table", "quote")]).1.counter.as_ref().unwrap().value(), 42.5);
    let (f, m) = series(fams, &n("depth"), job, &[]);
    assert_eq!((f.r#type(), m.gauge.as_ref().unwrap().value()), (MetricType::Gauge, -7.25));

    let (f, m) = series(fams, &n("lat_seconds"), job, &[("path", "/q")]);
    assert_eq!(f.r#type(), MetricType::Histogram);
    let hist = m.histogram.as_ref().unwrap();
    assert_eq!(hist.sample_count(), count);
    assert!(close(hist.sample_sum(), sum), "{} vs {sum}", hist.sample_sum());
    let got: Vec<(f64, u64)> =
        hist.bucket.iter().filter(|b| b.upper_bound().is_finite()).map(|b| (b.upper_bound(), b.cumulative_count())).collect();
    assert_eq!(got, classic);
    assert!(hist.schema.is_none() && hist.positive_span.is_empty(), "classic only");

    let (f, m) = series(fams, &n("size_bytes"), job, &[]);
    assert_eq!(f.r#type(), MetricType::Summary);
    let s = m.summary.as_ref().unwrap();
    assert_eq!(s.sample_count(), count);
    assert!(close(s.sample_sum(), sum));
    let qs: Vec<f64> = s.quantile.iter().map(|q| q.quantile()).collect();
    assert_eq!(qs, [0.5, 0.9, 0.99]);
    for q in &s.quantile {
        let (lo, hi) = quantile(values, q.quantile());
        // DDSketch: a relative error of at most 1 %, around a rank that may differ by one.
        assert!(q.value() >= lo * 0.99 && q.value() <= hi * 1.01, "quantile {}: {} not in [{lo}, {hi}]", q.quantile(), q.value());
    }

    let (zero, pos, neg) = recount(values);
    assert!(pos.len() > 30 && neg.len() >= 5 && zero == 6, "the sample spans many buckets of both signs: {pos:?} {neg:?} {zero}");
    for (name, has_classic) in [("native_seconds", false), ("both_seconds", true)] {
        let want: &[(&str, &str)] = if has_classic { &[] } else { &[("path", "/q")] };
        let (f, m) = series(fams, &n(name), job, want);
        assert_eq!(f.r#type(), MetricType::Histogram, "{name}");
        let hist = m.histogram.as_ref().unwrap();
        assert_eq!(hist.sample_count(), count, "{name}");
        assert!(close(hist.sample_sum(), sum), "{name}: {} vs {sum}", hist.sample_sum());
        let got: Vec<(f64, u64)> =
            hist.bucket.iter().filter(|b| b.upper_bound().is_finite()).map(|b| (b.upper_bound(), b.cumulative_count())).collect();
        if native {
            assert_eq!(got, if has_classic { classic.clone() } else { vec![] }, "{name}");
            assert_eq!((hist.schema(), hist.zero_threshold(), hist.zero_count()), (SCHEMA, ZERO_THRESHOLD, zero), "{name}");
            assert_eq!(buckets(&hist.positive_span, &hist.positive_delta), pos, "{name}: positive buckets");
            assert_eq!(buckets(&hist.negative_span, &hist.negative_delta), neg, "{name}: negative buckets");
            let total = zero + pos.values().sum::<u64>() + neg.values().sum::<u64>();
            assert_eq!(total, count, "{name}: every observation in one bucket");
        } else {
            // Text: the classic buckets where declared, else only count and sum.
            assert_eq!(got, if has_classic { classic.clone() } else { vec![] }, "{name}");
            assert!(hist.schema.is_none() && hist.positive_span.is_empty(), "{name}: no native fields in text");
        }
    }
}

fn pushgateway(h: &Host, port: u16, extra: &[(&str, &str)]) -> K {
    let mut keys = vec!["url"];
    let mut vals = vec![h.str(&format!("http://127.0.0.1:{port}"))];
    for (k, v) in extra {
        keys.push(k);
        vals.push(h.str(v));
    }
    h.dict(&keys, &vals)
}

#[test]
fn protobuf_by_default_gzip_and_text_read_back_from_the_gateway() {
    let _g = lock();
    let h = host();
    let pgw = servers::pushgateway();
    for (job, extra, native) in [
        ("pf_default", &[][..], true),
        ("pf_gzip", &[("format", "protobuf"), ("compression", "gzip")][..], true),
        ("pf_text", &[("format", "text")][..], false),
        ("pf_text_gzip", &[("format", "text"), ("compression", "gzip")][..], false),
    ] {
        let life = init(h, job, pushgateway(h, pgw.port, extra));
        let values = declare_and_record(h, job);
        assert_eq!(push(&life), (true, 200), "{job}");
        check(&gateway(pgw.port), job, job, &values, native);
        // A text scrape of the gateway shows a native histogram's count and sum (and the implied `+Inf` bucket).
        let text = servers::http().get(format!("http://127.0.0.1:{}/metrics", pgw.port)).send().unwrap().text().unwrap();
        let count = text.lines().find(|l| l.starts_with(&format!("{job}_native_seconds_count{{"))).unwrap_or_else(|| panic!("{text}"));
        assert!(count.ends_with(&format!(" {}", values.len())), "{count}");
        assert!(text.lines().any(|l| l.starts_with(&format!("{job}_native_seconds_sum{{"))), "{text}");
        // PUT replaces the group: a new gauge value wins, the rest stays.
        h.ok("kdbprom_set", &[h.s(&format!("{job}_depth")), h.f(9.5)]);
        assert_eq!(push(&life), (true, 200), "{job}");
        let fams = gateway(pgw.port);
        assert_eq!(series(&fams, &format!("{job}_depth"), job, &[]).1.gauge.as_ref().unwrap().value(), 9.5);
        assert_eq!(series(&fams, &format!("{job}_rows_total"), job, &[("table", "trade")]).1.counter.as_ref().unwrap().value(), 1234.0);
        let _ = h.call("kdbprom_stop", &[h.id()]);
    }
    // Nothing failed on the gateway's side.
    let fams = gateway(pgw.port);
    let failed = fams.iter().find(|f| f.name() == "push_failure_time_seconds").unwrap();
    assert_eq!(failed.metric.len(), 4, "{failed:?}");
    assert!(failed.metric.iter().all(|m| m.gauge.as_ref().unwrap().value() == 0.0), "{failed:?}");
}

#[test]
fn headers_and_bodies_as_the_mock_sees_them() {
    for (cfg, ct, gz) in [
        (serde_json::json!({}), "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited", false),
        (
            serde_json::json!({"compression": "gzip"}),
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited",
            true,
        ),
        (serde_json::json!({"format": "text", "compression": "none"}), "text/plain; version=0.0.4; charset=utf-8", false),
        (serde_json::json!({"format": "text", "compression": "gzip"}), "text/plain; version=0.0.4; charset=utf-8", true),
    ] {
        let (url, seen) = mock::mock(vec![(200, "", "")]);
        let mut pg = cfg.clone();
        pg["url"] = url.into();
        let a = mock::agent(serde_json::json!({"job": "eod", "instance": "h:1", "interval_ms": 3_600_000, "pushgateway": pg}));
        let o = a.push().unwrap();
        assert!(o.iter().all(|o| o.ok), "{o:?}");
        let s = seen.lock().unwrap().clone();
        let push = s.last().unwrap();
        assert_eq!(push.headers["content-type"], ct, "{cfg}");
        assert_eq!(push.headers.get("content-encoding").map(String::as_str), gz.then_some("gzip"), "{cfg}");
        let body = if gz {
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&push.body[..]), &mut b).unwrap();
            b
        } else {
            push.body.clone()
        };
        if ct.starts_with("text/plain") {
            let t = String::from_utf8(body).unwrap();
            assert!(t.contains("\nm_total 5\n"), "{t}");
        } else {
            let mut b = &body[..];
            let mut fams = Vec::new();
            while !b.is_empty() {
                fams.push(MetricFamily::decode_length_delimited(&mut b).unwrap());
            }
            let m = fams.iter().find(|f| f.name() == "m_total").unwrap();
            assert_eq!((m.r#type(), m.metric[0].counter.as_ref().unwrap().value()), (MetricType::Counter, 5.0));
            assert!(m.metric[0].label.is_empty(), "job and instance go in the URL");
            let mut names: Vec<&str> = fams.iter().map(|f| f.name()).collect();
            let n = names.len();
            names.dedup();
            assert_eq!(names.len(), n, "one MetricFamily per name");
        }
        a.stop().unwrap();
    }
}

#[test]
fn bad_format_or_compression_is_refused_naming_the_key() {
    let e = |pg: serde_json::Value| {
        let mut pg = pg;
        pg["url"] = "http://127.0.0.1:9091".into();
        Config::from_json(&serde_json::json!({ "pushgateway": pg })).unwrap_err().to_string()
    };
    assert_eq!(e(serde_json::json!({"format": "x"})), r#"config key pushgateway.format: must be "protobuf" or "text", not 'x'"#);
    assert_eq!(e(serde_json::json!({"format": 1})), "config key pushgateway.format must be a string or symbol");
    assert_eq!(
        e(serde_json::json!({"compression": "snappy"})),
        r#"config key pushgateway.compression: must be "none" or "gzip", not 'snappy'"#
    );
    assert_eq!(e(serde_json::json!({"compression": true})), "config key pushgateway.compression must be a string or symbol");
    let ok =
        Config::from_json(&serde_json::json!({"pushgateway": {"url": "http://h:1", "format": "text", "compression": "gzip"}})).unwrap();
    let pg = ok.pushgateway.unwrap();
    assert_eq!((pg.format, pg.compression), (kdbprom::config::PushgatewayFormat::Text, kdbprom::config::PushgatewayCompression::Gzip));
    let d = Config::from_json(&serde_json::json!({"pushgateway": {"url": "http://h:1"}})).unwrap().pushgateway.unwrap();
    assert_eq!((d.format, d.compression), Default::default());

    // The environment sets them too, and a bad value names the variable.
    let env = |k: &str, v: &str| -> HashMap<String, String> {
        [("KDBPROM_PUSHGATEWAY_URL".to_string(), "http://h:1".to_string()), (k.to_string(), v.to_string())].into()
    };
    let c = Config::from_env(&env("KDBPROM_PUSHGATEWAY_FORMAT", "text")).unwrap();
    assert_eq!(c.pushgateway.unwrap().format, kdbprom::config::PushgatewayFormat::Text);
    let c = Config::from_env(&env("KDBPROM_PUSHGATEWAY_COMPRESSION", "gzip")).unwrap();
    assert_eq!(c.pushgateway.unwrap().compression, kdbprom::config::PushgatewayCompression::Gzip);
    assert_eq!(
        Config::from_env(&env("KDBPROM_PUSHGATEWAY_FORMAT", "json")).unwrap_err().to_string(),
        r#"config key pushgateway.format (from environment KDBPROM_PUSHGATEWAY_FORMAT): must be "protobuf" or "text", not 'json'"#
    );
    assert_eq!(
        Config::from_env(&env("KDBPROM_PUSHGATEWAY_COMPRESSION", "zstd")).unwrap_err().to_string(),
        r#"config key pushgateway.compression (from environment KDBPROM_PUSHGATEWAY_COMPRESSION): must be "none" or "gzip", not 'zstd'"#
    );

    // And through the q API, at init.
    let _g = lock();
    let h = host();
    let pg = h.dict(&["url", "format"], &[h.str("http://127.0.0.1:9091"), h.s("xml")]);
    let err = Life::init_err("pfbad", &[("pushgateway", pg)]);
    assert!(err.contains(r#"config key pushgateway.format: must be "protobuf" or "text", not 'xml'"#), "{err}");
}
