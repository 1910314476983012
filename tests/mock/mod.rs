//! A scripted HTTP receiver on loopback for tests of what a target sends and how it takes the
//! answers: each request is logged and answered by a function of what was seen so far.
#![allow(dead_code)]

#[allow(clippy::duplicate_mod)] // tests/faults reads HTTP the same way; a test may load both
#[path = "../http/mod.rs"]
mod http;

use kdbprom::agent::Agent;
use kdbprom::builtin::ProcessInfo;
use kdbprom::config::Config;
use kdbprom::event::Op;
use kdbprom::registry::Kind;
use std::collections::HashMap;
use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
    pub at: Instant,
}

/// A server answering each request with the next (status, extra headers, body) of `script`
/// (the last one repeats); returns its base URL and what it saw.
pub fn mock(script: Vec<(u16, &'static str, &'static str)>) -> (String, Arc<Mutex<Vec<Seen>>>) {
    mock_with(move |i, _| {
        let (status, extra, text) = script[i.min(script.len() - 1)];
        (status, extra.to_string(), text.to_string())
    })
}

/// A server answering request `i` (counting from 0) with `answer(i, &seen)`: status, extra header
/// lines (each ending in CRLF), body.
pub fn mock_with(answer: impl Fn(usize, &Seen) -> (u16, String, String) + Send + Sync + 'static) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let answer = Arc::new(answer);
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(conn) = conn else { return };
            let (log, answer) = (log.clone(), answer.clone());
            std::thread::spawn(move || {
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut w = conn;
                loop {
                    let Ok(Some(req)) = http::read_request(&mut r, &mut &w) else { return };
                    let headers: HashMap<String, String> = req.headers.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
                    let (method, path, body) = (req.method, req.path, req.body);
                    let seen = Seen { method, path, headers, body, at: Instant::now() };
                    let (status, extra, text) = answer(log.lock().unwrap().len(), &seen);
                    log.lock().unwrap().push(seen);
                    let resp = format!("HTTP/1.1 {status} X\r\nContent-Length: {}\r\n{extra}\r\n{text}", text.len());
                    if w.write_all(resp.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, seen)
}

pub fn agent(cfg: serde_json::Value) -> Agent {
    let p = ProcessInfo { host: "h".into(), pid: 1, ..ProcessInfo::default() };
    let a = Agent::start(Config::from_json(&cfg).unwrap(), &p).unwrap();
    a.declare("m_total", "M.", Kind::Counter, &[], &[]).unwrap();
    a.record(a.by_name("m_total").unwrap(), Op::Inc, 5.0).unwrap();
    a
}

/// Waits for the push that init starts, so later assertions see only what they cause.
pub fn settle(seen: &Arc<Mutex<Vec<Seen>>>, n: usize) {
    let end = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().len() < n && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(5));
    }
}
