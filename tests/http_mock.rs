//! The HTTP a target sends, seen by a scripted loopback server: headers, tenant, auth, methods and
//! paths, and what the sender does with 400, 429 and 503 (with Retry-After) answers.

mod mock;

use kdbprom::event::Op;
use mock::{agent, mock, settle};
use std::time::{Duration, Instant};

#[test]
fn remote_write_headers_tenant_bearer_and_extra_headers() {
    let (url, seen) = mock(vec![(204, "", "")]);
    let dir = std::env::temp_dir().join(format!("kdbprom-mock-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("token"), "tok3n\n").unwrap();
    let a = agent(serde_json::json!({"job": "j", "interval_ms": 3_600_000, "remote_write": [
        {"url": format!("{url}/api/v1/push"), "name": "mimir", "tenant": "desk-a", "headers": {"X-Extra": "1"}, "bearer_token_file": dir.join("token")},
        {"url": format!("{url}/api/v1/receive"), "name": "thanos", "tenant": "t2", "tenant_header": "THANOS-TENANT"}]}));
    let o = a.push().unwrap();
    assert!(o.iter().all(|o| o.ok && o.status == 204), "{o:?}");
    let s = seen.lock().unwrap().clone();
    let mimir = s.iter().rev().find(|r| r.path == "/api/v1/push").unwrap();
    for (k, v) in [
        ("content-type", "application/x-protobuf"),
        ("content-encoding", "snappy"),
        ("x-prometheus-remote-write-version", "0.1.0"),
        ("x-scope-orgid", "desk-a"),
        ("x-extra", "1"),
        ("authorization", "Bearer tok3n"),
    ] {
        assert_eq!(mimir.headers.get(k).map(String::as_str), Some(v), "{k} in {:?}", mimir.headers);
    }
    assert!(mimir.headers["user-agent"].starts_with("kdbprom/"));
    assert_eq!(mimir.method, "POST");
    let thanos = s.iter().rev().find(|r| r.path == "/api/v1/receive").unwrap();
    assert_eq!(thanos.headers.get("thanos-tenant").map(String::as_str), Some("t2"));
    assert!(!thanos.headers.contains_key("x-scope-orgid") && !thanos.headers.contains_key("authorization"));
    // The body is snappy block format of a WriteRequest holding our counter.
    let raw = snap::raw::Decoder::new().decompress_vec(&mimir.body).unwrap();
    let w = <kdbprom::proto::WriteRequest as prost::Message>::decode(&raw[..]).unwrap();
    assert!(w.timeseries.iter().any(|t| t.labels.iter().any(|l| l.value == "m_total") && t.samples[0].value == 5.0));
}

#[test]
fn retries_5xx_with_retry_after_drops_4xx_and_429_when_told() {
    // 503 with Retry-After: 1, then 204: retried after about a second, on the same deadline.
    let (url, seen) = mock(vec![(204, "", ""), (503, "Retry-After: 1\r\n", "busy"), (204, "", "")]);
    let a = agent(
        serde_json::json!({"interval_ms": 5_000, "remote_write": [{"url": url, "protocol": "1.0", "queue": {"min_backoff_ms": 10, "max_backoff_ms": 50}}]}),
    );
    settle(&seen, 1);
    let o = a.push().unwrap();
    assert!(o[0].ok && o[0].attempts == 2, "{o:?}");
    let s = seen.lock().unwrap().clone();
    let gap = s[2].at - s[1].at;
    assert!(gap >= Duration::from_millis(950), "Retry-After honoured: {gap:?}");
    assert_eq!(s[2].headers.get("retry-attempt").map(String::as_str), Some("1"));

    // 400 with a message: not retried, the message comes back.
    let (url, seen) = mock(vec![(204, "", ""), (400, "", "out of order sample")]);
    let a = agent(serde_json::json!({"interval_ms": 5_000, "remote_write": [{"url": url, "protocol": "1.0"}]}));
    settle(&seen, 1);
    let o = a.push().unwrap();
    assert_eq!((o[0].ok, o[0].status, o[0].attempts, o[0].message.as_str()), (false, 400, 1, "out of order sample"));
    assert_eq!(a.stats().pushes_failed(), 1);
    // Counted per target in the self-metrics too.
    let name = &o[0].target;
    let text = a.text().unwrap();
    assert!(text.contains(&format!("kdbprom_pushes_total{{target=\"{name}\",outcome=\"failed\"}} 1\n")), "{text}");
    assert!(text.contains(&format!("kdbprom_pushes_total{{target=\"{name}\",outcome=\"ok\"}} 1\n")), "{text}");
    assert!(text.contains(&format!("kdbprom_push_duration_seconds_count{{target=\"{name}\"}} 2\n")), "{text}");

    // 429 with retry_on_http_429 false: dropped at once.
    let (url, seen) = mock(vec![(204, "", ""), (429, "", "rate limited")]);
    let a = agent(
        serde_json::json!({"interval_ms": 5_000, "remote_write": [{"url": url, "protocol": "1.0", "queue": {"retry_on_http_429": false}}]}),
    );
    settle(&seen, 1);
    let o = a.push().unwrap();
    assert_eq!((o[0].ok, o[0].status, o[0].attempts), (false, 429, 1));
}

#[test]
fn pushgateway_methods_paths_content_type_and_delete_on_exit() {
    let (url, seen) = mock(vec![(200, "", ""), (200, "", ""), (202, "", "")]);
    let a = agent(serde_json::json!({"job": "eod", "instance": "h:1", "interval_ms": 3_600_000,
        "pushgateway": {"url": url, "method": "POST", "format": "text", "grouping": {"path": "/var/tmp", "desk": "rates a"}, "delete_on_exit": true}}));
    let (_, outcomes) = a.stop().unwrap();
    assert!(outcomes.iter().all(|o| o.ok), "{outcomes:?}");
    let s = seen.lock().unwrap().clone();
    let group = "/metrics/job/eod/instance/h:1/desk@base64/cmF0ZXMgYQ/path@base64/L3Zhci90bXA";
    let (push, delete) = (&s[s.len() - 2], &s[s.len() - 1]);
    assert_eq!((push.method.as_str(), push.path.as_str()), ("POST", group));
    assert_eq!(push.headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    let body = String::from_utf8(push.body.clone()).unwrap();
    assert!(body.contains("\nm_total 5\n") && body.ends_with('\n') && !body.contains("job="), "{body}");
    assert_eq!((delete.method.as_str(), delete.path.as_str(), delete.body.len()), ("DELETE", group, 0));
}

#[test]
fn textfile_is_written_at_init_and_replaced_atomically_on_push() {
    let path = std::env::temp_dir().join(format!("kdbprom-textfile-{}.prom", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let a = agent(serde_json::json!({"interval_ms": 3_600_000, "textfile": path}));
    let end = Instant::now() + Duration::from_secs(3);
    while !path.exists() {
        assert!(Instant::now() < end, "no textfile written at init");
        std::thread::sleep(Duration::from_millis(5));
    }
    a.record(a.by_name("m_total").unwrap(), Op::Inc, 2.0).unwrap();
    let o = a.push().unwrap();
    assert_eq!((o[0].target.as_str(), o[0].ok), ("textfile", true));
    let text = std::fs::read_to_string(&path).unwrap();
    // Every series carries the process's job and instance, so two processes' files never clash.
    assert!(text.contains("\nm_total{kdb_job=\"kdb\",kdb_instance=\"h\"} 7\n") && text.ends_with('\n'), "{text}");
    let leftovers: Vec<_> = std::fs::read_dir(std::env::temp_dir())
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(&format!("kdbprom-textfile-{}.prom.tmp", std::process::id())))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    let _ = std::fs::remove_file(&path);
}

/// A batch job that stops right after init: the first push, still in flight (the gateway takes
/// 150 ms to answer it), is let finish within a quarter of the exit deadline (1 s: room for a
/// loaded machine) instead of being superseded, so nothing counts as failed.
#[test]
fn stop_right_after_init_lets_the_first_push_finish() {
    let (url, seen) = mock::mock_with(|i, _| {
        if i == 0 {
            std::thread::sleep(Duration::from_millis(150));
        }
        (200, String::new(), String::new())
    });
    let a = agent(serde_json::json!({"interval_ms": 60_000, "exit_deadline_ms": 4_000, "pushgateway": {"url": url}}));
    let (st, _) = a.stop().unwrap();
    let c = st.target("pushgateway").unwrap();
    assert_eq!((c.failed_total(), c.queued, c.pushes_ok), (0, 0, 2), "{c:?}");
    assert_eq!(c.sent, c.samples_in);
    assert_eq!(seen.lock().unwrap().len(), 2, "the first push and the final one");
}
