//! CPU cost of one Pushgateway push of N series, measured in-process (user + system time of the
//! whole process, flusher included) over many pushes. Used by scripts/bench.sh beside python
//! prometheus_client's push_to_gateway on the same gateway.
//!
//! usage: push_cost <pushgateway url> [series=1000] [pushes=100] [key=value ...]
//!
//! - `format=protobuf|text` and `compression=none|gzip`: the `pushgateway.format` and
//!   `pushgateway.compression` of the push (default protobuf, none: kdbprom's defaults).
//! - `values=same|changing`: `changing` sets every gauge to a new value before each push (its
//!   recording CPU is measured apart and left out), so no family's values are as the last push left
//!   them; `same` (default) pushes the same values every time.
//! - `client=kdbprom|raw`: `raw` is the floor: the very body kdbprom sends (caught once on a local
//!   listener), PUT over one kept-alive `std::net::TcpStream` with one write of the head and body,
//!   the answer read to its end: what the kernel's loopback TCP and the gateway's answer cost a
//!   client that does nothing else.
//!
//! Under callgrind (`valgrind --tool=callgrind`), run it at two push counts and take the difference:
//! start-up and the first push cancel out.

mod support;

use kdbprom::agent::Agent;
use kdbprom::builtin::ProcessInfo;
use kdbprom::config::Config;
use kdbprom::event::Op;
use kdbprom::registry::Kind;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use support::cpu;

/// One request as the gateway would get it.
struct Caught {
    head: String,
    body: Vec<u8>,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let url =
        args.get(1).expect("usage: push_cost <pushgateway url> [series] [pushes] [format=..] [compression=..] [values=..] [client=..]");
    let (mut positional, mut opt) = (Vec::new(), std::collections::HashMap::new());
    for a in &args[2..] {
        match a.split_once('=') {
            Some((k, v)) => {
                opt.insert(k.to_string(), v.to_string());
            }
            None => positional.push(a.clone()),
        }
    }
    let n: usize = positional.first().map_or(1000, |s| s.parse().unwrap());
    let pushes: usize = positional.get(1).map_or(100, |s| s.parse().unwrap());
    let get = |k: &str, default: &str, allowed: &[&str]| {
        let v = opt.get(k).map_or(default.to_string(), String::clone);
        assert!(allowed.contains(&v.as_str()), "{k} must be one of {allowed:?}, not {v}");
        v
    };
    let format = get("format", "protobuf", &["protobuf", "text"]);
    let compression = get("compression", "none", &["none", "gzip"]);
    let changing = get("values", "same", &["same", "changing"]) == "changing";
    let raw = get("client", "kdbprom", &["kdbprom", "raw"]) == "raw";

    if raw {
        return raw_floor(url, n, pushes, &format, &compression);
    }
    let (a, sids) = agent(url, n, &format, &compression);
    a.push().unwrap(); // warm: connection and buffers
    // The idle flusher's own cost over the same wall time, to report the push alone.
    let (i0, w) = (cpu(), std::time::Instant::now());
    std::thread::sleep(std::time::Duration::from_millis(500));
    let idle_per_ms = (cpu() - i0) / w.elapsed().as_secs_f64() / 1e3;
    let (c0, t0) = (cpu(), std::time::Instant::now());
    let (mut bytes, mut recording) = (0, 0.0);
    for p in 0..pushes {
        if changing {
            let r0 = cpu();
            for (i, &s) in sids.iter().enumerate() {
                a.record(s, Op::Set, (i + p + 1) as f64).unwrap();
            }
            recording += cpu() - r0;
        }
        let o = a.push().unwrap();
        assert!(o.iter().all(|o| o.ok), "{o:?}");
        bytes = o[0].bytes;
    }
    let (c, t) = (cpu() - c0 - recording, t0.elapsed().as_secs_f64());
    let per = c * 1e3 / pushes as f64;
    let wall = t * 1e3 / pushes as f64;
    println!(
        "kdbprom push of {n} series (+built-ins, {format}, {compression}, values {}, {bytes} bytes): {per:.3} ms CPU per push \
         ({:.3} ms of it the idle flusher), {wall:.2} ms wall, over {pushes}",
        if changing { "changing" } else { "same" },
        idle_per_ms * 1e3 * wall
    );
}

/// An agent pushing to `url` with `n` gauges `bench_gauge{label}` set to their index.
fn agent(url: &str, n: usize, format: &str, compression: &str) -> (Agent, Vec<u32>) {
    let cfg = serde_json::json!({"job": "pushcost", "interval_ms": 86_400_000, "instrument": false,
        "pushgateway": {"url": url, "format": format, "compression": compression}});
    let a = Agent::start(Config::from_json(&cfg).unwrap(), &ProcessInfo::default()).unwrap();
    a.declare("bench_gauge", "A gauge with many label values.", Kind::Gauge, &["label"], &[]).unwrap();
    let mut sids = Vec::with_capacity(n);
    for i in 0..n {
        let s = a.series("bench_gauge", &[&format!("value{i}")]).unwrap();
        a.record(s, Op::Set, i as f64).unwrap();
        sids.push(s);
    }
    (a, sids)
}

/// The floor: kdbprom's own body, PUT by hand over one kept-alive connection.
fn raw_floor(url: &str, n: usize, pushes: usize, format: &str, compression: &str) {
    let caught = catch(n, format, compression);
    let addr = url.trim_start_matches("http://").trim_end_matches('/');
    assert!(addr.starts_with("127.0.0.1:") || addr.starts_with("localhost:"), "loopback only: {addr}");
    let mut request = caught.head.replacen("POST ", "PUT ", 1).into_bytes();
    request.extend_from_slice(&caught.body);
    let mut conn = BufReader::new(TcpStream::connect(addr).unwrap());
    conn.get_ref().set_nodelay(true).unwrap();
    let put = |conn: &mut BufReader<TcpStream>| {
        conn.get_mut().write_all(&request).unwrap();
        let status = answer(conn);
        assert!((200..300).contains(&status), "the gateway answered {status}");
    };
    put(&mut conn); // warm
    let (c0, t0) = (cpu(), std::time::Instant::now());
    for _ in 0..pushes {
        put(&mut conn);
    }
    let (c, t) = (cpu() - c0, t0.elapsed().as_secs_f64());
    println!(
        "raw TcpStream PUT of the same body ({n} series +built-ins, {format}, {compression}, {} bytes): {:.3} ms CPU per push, {:.2} ms wall, over {pushes}",
        caught.body.len(),
        c * 1e3 / pushes as f64,
        t * 1e3 / pushes as f64
    );
}

/// Reads one HTTP/1.1 answer to its end; its status.
fn answer(conn: &mut BufReader<TcpStream>) -> u16 {
    let (mut line, mut len, mut status) = (String::new(), 0usize, 0u16);
    loop {
        line.clear();
        conn.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if status == 0 {
            status = l.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
        } else if l.is_empty() {
            break;
        } else if let Some((k, v)) = l.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap();
        }
    }
    let mut rest = vec![0; len];
    conn.read_exact(&mut rest).unwrap();
    status
}

/// The request kdbprom makes for `n` series in `format` and `compression`, caught on a local
/// listener that answers every request 200.
fn catch(n: usize, format: &str, compression: &str) -> Caught {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    let last = std::sync::Arc::new(std::sync::Mutex::new(None::<Caught>));
    let keep = last.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let keep = keep.clone();
            std::thread::spawn(move || {
                let mut r = BufReader::new(s.unwrap());
                while let Some(c) = one_request(&mut r) {
                    r.get_mut().write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n").unwrap();
                    if c.head.starts_with("PUT") || c.head.starts_with("POST") {
                        *keep.lock().unwrap() = Some(c);
                    }
                }
            });
        }
    });
    let (a, _) = agent(&url, n, format, compression);
    assert!(a.push().unwrap()[0].ok);
    let caught = last.lock().unwrap().take().expect("the push was caught");
    drop(a.stop());
    caught
}

/// One request from `r` (None at the end of the connection), its head rewritten to its method,
/// path, Content-Type, Content-Encoding and length.
fn one_request(r: &mut BufReader<TcpStream>) -> Option<Caught> {
    let (mut method, mut path, mut headers, mut len) = (String::new(), String::new(), Vec::new(), 0usize);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let t = line.trim_end().to_string();
        if path.is_empty() {
            let mut w = t.split(' ');
            (method, path) = (w.next()?.to_string(), w.next()?.to_string());
        } else if t.is_empty() {
            break;
        } else if let Some((k, v)) = t.split_once(':') {
            let k = k.to_ascii_lowercase();
            if k == "content-length" {
                len = v.trim().parse().ok()?;
            } else if k == "content-type" || k == "content-encoding" {
                headers.push(t.clone());
            }
        }
    }
    let mut body = vec![0; len];
    r.read_exact(&mut body).ok()?;
    let head = format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\n{}\r\ncontent-length: {}\r\n\r\n", headers.join("\r\n"), body.len());
    Some(Caught { head, body })
}
