//! Self-test of the fault proxy (tests/faults): each fault against a tiny loopback upstream, and
//! Pass / Status in front of a real Pushgateway.

mod faults;
mod servers;

use faults::{Fault, Proxy};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the tiny upstream received: method, path, headers (lower-case names), body.
type Got = (String, String, Vec<(String, String)>, Vec<u8>);

/// A loopback upstream answering every request 204 with no body (keep-alive honoured).
struct Tiny {
    port: u16,
    got: Arc<Mutex<Vec<Got>>>,
}

impl Tiny {
    fn start() -> Tiny {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let got: Arc<Mutex<Vec<Got>>> = Arc::default();
        let g = got.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                let Ok(c) = c else { return };
                let g = g.clone();
                std::thread::spawn(move || {
                    let mut r = BufReader::new(c.try_clone().unwrap());
                    let mut w = c;
                    loop {
                        let mut start = String::new();
                        if r.read_line(&mut start).unwrap_or(0) == 0 {
                            return;
                        }
                        let mut p = start.split_whitespace();
                        let (m, path) = (p.next().unwrap_or("").to_string(), p.next().unwrap_or("").to_string());
                        let mut headers = Vec::new();
                        loop {
                            let mut h = String::new();
                            if r.read_line(&mut h).unwrap_or(0) == 0 {
                                return;
                            }
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            let (k, v) = h.split_once(':').unwrap();
                            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
                        }
                        let n = headers.iter().find(|(k, _)| k == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
                        let mut body = vec![0; n];
                        if r.read_exact(&mut body).is_err() {
                            return;
                        }
                        let close = headers.iter().any(|(k, v)| k == "connection" && v.eq_ignore_ascii_case("close"));
                        g.lock().unwrap().push((m, path, headers, body));
                        if w.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").is_err() || close {
                            return;
                        }
                    }
                });
            }
        });
        Tiny { port, got }
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }
}

fn client(timeout_ms: u64) -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder().timeout(Duration::from_millis(timeout_ms)).build().unwrap()
}

fn post(c: &reqwest::blocking::Client, p: &Proxy, body: &'static [u8]) -> reqwest::Result<reqwest::blocking::Response> {
    c.post(format!("{}/api/v1/write", p.url()))
        .header("Content-Type", "application/x-protobuf")
        .header("Content-Encoding", "snappy")
        .header("X-Prometheus-Remote-Write-Version", "0.1.0")
        .header("Retry-Attempt", "2")
        .body(body)
        .send()
}

#[test]
fn pass_forwards_unchanged_and_logs() {
    let up = Tiny::start();
    let p = Proxy::start(up.port);
    let r = post(&client(5000), &p, b"0123456789").unwrap();
    assert_eq!(r.status().as_u16(), 204);
    assert_eq!((p.requests(), p.forwarded()), (1, 1));
    let got = up.got.lock().unwrap().clone();
    let (m, path, h, body) = &got[0];
    assert_eq!((m.as_str(), path.as_str(), &body[..]), ("POST", "/api/v1/write", &b"0123456789"[..]));
    let hv = |k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
    assert_eq!(hv("content-type"), Some("application/x-protobuf"));
    assert_eq!(hv("content-encoding"), Some("snappy"));
    assert_eq!(hv("content-length"), Some("10"));
    assert_eq!(hv("connection"), Some("close"));
    let s = &p.log()[0];
    assert_eq!((s.method.as_str(), s.path.as_str(), s.status, s.body_len), ("POST", "/api/v1/write", 204, 10));
    assert_eq!(s.header("Content-Type"), Some("application/x-protobuf"));
    assert_eq!(s.header("content-encoding"), Some("snappy"));
    assert_eq!(s.header("x-prometheus-remote-write-version"), Some("0.1.0"));
    assert_eq!(s.header("retry-attempt"), Some("2"));
    assert_eq!(s.fault, Fault::Pass);
}

#[test]
fn status_retry_after_and_garbage_are_answered_without_forwarding() {
    let up = Tiny::start();
    let p = Proxy::start(up.port);
    let c = client(5000);
    p.set_fault(Fault::Status(500, "storm".into()));
    for _ in 0..3 {
        let r = post(&c, &p, b"x").unwrap();
        assert_eq!(r.status().as_u16(), 500);
        assert_eq!(r.headers()["content-length"], "5");
        assert_eq!(r.text().unwrap(), "storm");
    }
    p.set_fault(Fault::Status(415, "unsupported".into()));
    assert_eq!(post(&c, &p, b"x").unwrap().status().as_u16(), 415);
    p.set_fault(Fault::RetryAfter(429, "2".into()));
    let r = post(&c, &p, b"x").unwrap();
    assert_eq!(r.status().as_u16(), 429);
    assert_eq!(r.headers()["retry-after"], "2");
    let date = "Wed, 21 Oct 2015 07:28:00 GMT";
    p.set_fault(Fault::RetryAfter(503, date.into()));
    let r = post(&c, &p, b"x").unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["retry-after"].to_str().unwrap()), (503, date));
    p.set_fault(Fault::Garbage200);
    let r = post(&c, &p, b"x").unwrap();
    assert_eq!(r.status().as_u16(), 200);
    assert!(r.headers().keys().all(|k| !k.as_str().starts_with("x-prometheus")), "{:?}", r.headers());
    assert!(!r.bytes().unwrap().is_empty());
    assert_eq!((p.requests(), p.forwarded(), up.count()), (7, 0, 0));
    let st: Vec<u16> = p.log().iter().map(|s| s.status).collect();
    assert_eq!(st, [500, 500, 500, 415, 429, 503, 200]);
}

#[test]
fn reset_gives_a_connection_error() {
    let up = Tiny::start();
    let p = Proxy::start(up.port);
    p.set_fault(Fault::Reset);
    let e = post(&client(5000), &p, b"x").unwrap_err();
    assert!(!e.is_timeout() && e.status().is_none(), "{e:?}");
    // On a raw socket the read after the request sees the RST.
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.write_all(b"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi").unwrap();
    let mut buf = [0u8; 64];
    let err = s.read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}");
    assert_eq!((p.requests(), p.forwarded(), up.count()), (2, 0, 0));
    assert!(p.log().iter().all(|s| s.status == 0));
}

#[test]
fn hang_times_out_then_pass_recovers() {
    let up = Tiny::start();
    let p = Proxy::start(up.port);
    p.set_fault(Fault::Hang);
    let c = client(300);
    let t = Instant::now();
    let e = post(&c, &p, b"x").unwrap_err();
    assert!(e.is_timeout(), "{e:?}");
    assert!(t.elapsed() >= Duration::from_millis(290) && t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    p.set_fault(Fault::Pass);
    assert_eq!(post(&c, &p, b"x").unwrap().status().as_u16(), 204);
    // The held request was dropped, not forwarded late.
    assert_eq!((p.requests(), p.forwarded(), up.count()), (2, 1, 1));
    assert_eq!(p.log()[0].status, 0);
}

#[test]
fn refuse_then_pass_on_the_same_port() {
    let up = Tiny::start();
    let p = Proxy::start(up.port);
    let port = p.port;
    let pooled = client(2000);
    assert_eq!(post(&pooled, &p, b"x").unwrap().status().as_u16(), 204);
    p.set_fault(Fault::Refuse);
    let e = TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused);
    let e = post(&client(2000), &p, b"x").unwrap_err();
    assert!(e.is_connect(), "{e:?}");
    // The pooled keep-alive connection was cut too.
    assert!(post(&pooled, &p, b"x").is_err());
    p.set_fault(Fault::Pass);
    assert_eq!(p.port, port);
    assert_eq!(post(&client(2000), &p, b"x").unwrap().status().as_u16(), 204);
    assert_eq!(post(&pooled, &p, b"x").unwrap().status().as_u16(), 204);
    assert_eq!((p.forwarded(), up.count()), (3, 3));
    // Twice in a row, to be sure the re-bind holds.
    p.set_fault(Fault::Refuse);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
    p.set_fault(Fault::Status(503, "back".into()));
    assert_eq!(post(&client(2000), &p, b"x").unwrap().status().as_u16(), 503);
}

#[test]
fn keep_alive_three_requests_one_connection() {
    let up = Tiny::start();
    let p = Proxy::start(up.port);
    let c = client(5000);
    for _ in 0..3 {
        let r = post(&c, &p, b"abc").unwrap();
        assert_eq!(r.status().as_u16(), 204);
        r.bytes().unwrap();
    }
    assert_eq!((p.requests(), p.forwarded(), up.count()), (3, 3, 3));
    assert_eq!(p.connections(), 1, "reqwest reused its connection");
}

#[test]
fn chunked_request_and_connection_close_on_a_raw_socket() {
    let up = Tiny::start();
    let p = Proxy::start(up.port);
    let mut s = TcpStream::connect(("127.0.0.1", p.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    // Two requests on one connection: the first keep-alive and chunked, the second Connection: close.
    s.write_all(b"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n")
        .unwrap();
    s.write_all(b"POST /b?q=1 HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nxyz").unwrap();
    let mut all = String::new();
    s.read_to_string(&mut all).unwrap(); // ends: the proxy closed after the second answer
    assert_eq!(all.matches("HTTP/1.1 204 No Content\r\n").count(), 2, "{all}");
    assert!(all.ends_with("Connection: close\r\n\r\n"), "{all}");
    let got = up.got.lock().unwrap().clone();
    assert_eq!((got[0].1.as_str(), &got[0].3[..]), ("/a", &b"hello world"[..]));
    assert!(got[0].2.iter().all(|(k, _)| k != "transfer-encoding"));
    assert!(got[0].2.contains(&("content-length".into(), "11".into())));
    assert_eq!((got[1].1.as_str(), &got[1].3[..]), ("/b?q=1", &b"xyz"[..]));
    assert_eq!((p.requests(), p.forwarded(), p.connections()), (2, 2, 1));
}

#[test]
fn set_upstream_and_unreachable_upstream() {
    let (a, b) = (Tiny::start(), Tiny::start());
    let p = Proxy::start(a.port);
    let c = client(5000);
    assert_eq!(post(&c, &p, b"1").unwrap().status().as_u16(), 204);
    p.set_upstream(b.port);
    assert_eq!(post(&c, &p, b"2").unwrap().status().as_u16(), 204);
    assert_eq!((a.count(), b.count()), (1, 1));
    p.set_upstream(servers::free_port());
    let r = post(&c, &p, b"3").unwrap();
    assert_eq!(r.status().as_u16(), 502);
    assert_eq!((p.requests(), p.forwarded(), p.log()[2].status), (3, 2, 502));
}

#[test]
fn drop_releases_hung_clients_promptly() {
    let up = Tiny::start();
    let p = Proxy::start(up.port);
    p.set_fault(Fault::Hang);
    let url = p.url();
    let t = std::thread::spawn(move || {
        let c = client(10_000);
        let t = Instant::now();
        let r = c.post(format!("{url}/x")).body("x").send();
        (r.map(|r| r.status().as_u16()), t.elapsed())
    });
    assert!(p.wait_requests(1, Duration::from_secs(5)));
    let t0 = Instant::now();
    drop(p);
    assert!(t0.elapsed() < Duration::from_secs(1), "drop took {:?}", t0.elapsed());
    let (r, took) = t.join().unwrap();
    assert!(r.is_err() && took < Duration::from_secs(3), "{r:?} after {took:?}");
}

#[test]
fn pushgateway_behind_the_proxy() {
    let g = servers::pushgateway();
    let p = Proxy::start(g.port);
    let c = client(5000);
    let put = |metric: &str| {
        c.put(format!("{}/metrics/job/fault_proxy/instance/i1", p.url()))
            .header("Content-Type", "text/plain; version=0.0.4")
            .body(format!("# TYPE {metric} gauge\n{metric}{{desk=\"fx\"}} 42\n"))
            .send()
            .unwrap()
    };
    let direct = || servers::http().get(format!("http://127.0.0.1:{}/metrics", g.port)).send().unwrap().text().unwrap();
    let r = put("fp_pass");
    assert!(r.status().is_success(), "{}", r.status());
    assert!(direct().contains("fp_pass{desk=\"fx\",instance=\"i1\",job=\"fault_proxy\"} 42"));
    assert_eq!((p.requests(), p.forwarded()), (1, 1));
    assert_eq!(p.log()[0].header("content-type"), Some("text/plain; version=0.0.4"));
    // A GET through the proxy relays the gateway's (larger) answer intact.
    let via = c.get(format!("{}/metrics", p.url())).send().unwrap();
    assert_eq!(via.status().as_u16(), 200);
    assert!(via.text().unwrap().contains("fp_pass{"));
    p.set_fault(Fault::Status(500, "storm".into()));
    let r = put("fp_storm");
    assert_eq!(r.status().as_u16(), 500);
    assert!(!direct().contains("fp_storm"));
    assert_eq!((p.requests(), p.forwarded()), (3, 2));
}
