//! A fault proxy the tests own: an HTTP/1.1 listener on a free loopback port, placed in front of a
//! real receiver, that forwards requests or answers them with a chosen fault (5xx storm, 429 with
//! Retry-After, reset, hang, garbage 200, refused connects). Plain std threads and blocking sockets.
//!
//! `mod faults;` from a test file. Everything binds and connects to 127.0.0.1 only.
//!
//! Semantics a test relies on:
//! - The fault is read when a request has been fully received (line, headers, body); `requests()`,
//!   `log()` and `forwarded()` are updated before the answer is written, so a client that has its
//!   answer sees them already counted.
//! - `Pass` opens one upstream connection per request (`Connection: close` upstream); an unreachable
//!   upstream or a broken upstream answer is answered 502 by the proxy (status 502 in the log).
//! - `Hang` holds the request until the next `set_fault` (any fault, even the same one) or the drop,
//!   then closes that connection without answering: a held request is never forwarded later.
//! - `Refuse` closes the listening socket (connects get ECONNREFUSED) and also shuts down every open
//!   client connection (pooled keep-alive connections then fail); a request still arriving on one is
//!   reset. The next `set_fault` of another fault re-binds the same port.
#![allow(dead_code)]

#[allow(clippy::duplicate_mod)] // tests/mock reads HTTP the same way; a test may load both
#[path = "../http/mod.rs"]
mod http;
use http::{Request, bad, content_length, header, is_chunked, read_chunked, read_head, read_request};

use std::collections::{BTreeMap, HashMap};
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What the proxy does with each request it receives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Forward the request to the upstream and return its answer unchanged (502 if it is unreachable).
    Pass,
    /// Answer this status and body (text/plain) without forwarding.
    Status(u16, String),
    /// Answer this status (429 or 503) with this `Retry-After` value (seconds or an HTTP-date), without forwarding.
    RetryAfter(u16, String),
    /// Read the request, then close the socket abruptly (SO_LINGER 0: the client sees a RST).
    Reset,
    /// Read the request and never answer, until the next `set_fault` or the drop (then the connection is closed).
    Hang,
    /// Answer 200 with a nonsense body and no remote-write headers.
    Garbage200,
    /// Close the listening socket (connects are refused) and cut open client connections; the next
    /// `set_fault` re-binds the same port.
    Refuse,
}

/// One request the proxy received.
#[derive(Clone)]
pub struct Seen {
    pub method: String,
    /// The request target as sent (path and query).
    pub path: String,
    /// The status the client was answered; 0 when it got no answer (Reset, Hang, Refuse, client gone).
    pub status: u16,
    /// The request body length (after de-chunking).
    pub body_len: usize,
    /// The request body as received (after de-chunking): what the test counts samples from.
    pub body: Vec<u8>,
    /// The selected request headers present, lower-case names: content-type, content-encoding,
    /// x-prometheus-remote-write-version, retry-attempt.
    pub headers: BTreeMap<String, String>,
    /// The fault applied.
    pub fault: Fault,
    /// The remote-write 2.0 written counts of the answer, when the upstream answered with them
    /// (`x-prometheus-remote-write-samples-written`, `…-histograms-written`).
    pub written: Option<(u64, u64)>,
    /// When the request had been fully read.
    pub at: Instant,
}

impl std::fmt::Debug for Seen {
    /// Everything but the body's bytes (its length is there).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seen")
            .field("method", &self.method)
            .field("path", &self.path)
            .field("status", &self.status)
            .field("body_len", &self.body_len)
            .field("headers", &self.headers)
            .field("fault", &self.fault)
            .field("written", &self.written)
            .field("at", &self.at)
            .finish()
    }
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// Answered 2xx (by the upstream or the fault).
    pub fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// A remote-write 2.0 request (by its Content-Type).
    pub fn is_v2(&self) -> bool {
        self.header("content-type").is_some_and(|t| t.contains("io.prometheus.write.v2.Request"))
    }

    /// Accepted as remote write: answered 2xx, and for a 2.0 request with written counts (a 2.0
    /// request answered without them was not understood: the library resends it as 1.0).
    pub fn accepted(&self) -> bool {
        self.ok() && (!self.is_v2() || self.written.is_some())
    }

    /// A retry of an earlier request (it carries `Retry-Attempt`).
    pub fn is_retry(&self) -> bool {
        self.header("retry-attempt").is_some()
    }

    /// A remote-write body, decoded here (snappy, then protobuf 1.0 or 2.0 by Content-Type):
    /// (series labels, timestamp) of every sample and histogram it carries, in body order.
    pub fn rw_points(&self) -> Vec<(String, i64)> {
        use kdbprom::proto::{WriteRequest, v2};
        use prost::Message;
        let raw = snap::raw::Decoder::new().decompress_vec(&self.body).expect("a snappy remote-write body");
        if self.is_v2() {
            let r = v2::Request::decode(&raw[..]).expect("a remote-write 2.0 body");
            r.timeseries
                .iter()
                .flat_map(|t| {
                    let l: Vec<String> =
                        t.labels_refs.chunks(2).map(|p| format!("{}={}", r.symbols[p[0] as usize], r.symbols[p[1] as usize])).collect();
                    let l = l.join(",");
                    let s = t.samples.iter().map(|x| x.timestamp);
                    let h = t.histograms.iter().map(|x| x.timestamp);
                    s.chain(h).map(move |ts| (l.clone(), ts)).collect::<Vec<_>>()
                })
                .collect()
        } else {
            let r = WriteRequest::decode(&raw[..]).expect("a remote-write 1.0 body");
            r.timeseries
                .iter()
                .flat_map(|t| {
                    let l: Vec<String> = t.labels.iter().map(|l| format!("{}={}", l.name, l.value)).collect();
                    let l = l.join(",");
                    let s = t.samples.iter().map(|x| x.timestamp);
                    let h = t.histograms.iter().map(|x| x.timestamp);
                    s.chain(h).map(move |ts| (l.clone(), ts)).collect::<Vec<_>>()
                })
                .collect()
        }
    }

    /// Samples (and histograms) a remote-write body carries.
    pub fn rw_samples(&self) -> u64 {
        self.rw_points().len() as u64
    }

    /// Sample lines of a text-exposition body (a Pushgateway push): every line but comments and blanks.
    pub fn text_samples(&self) -> u64 {
        String::from_utf8_lossy(&self.body).lines().filter(|l| !l.trim().is_empty() && !l.starts_with('#')).count() as u64
    }
}

/// What a proxy log says about remote-write samples, counted by the test from the bodies.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Witness {
    /// Distinct (series, timestamp) points in any request the proxy received.
    pub seen: u64,
    /// Distinct points in an accepted request ([`Seen::accepted`]).
    pub delivered: u64,
    /// Distinct points received, never in an accepted request.
    pub never_delivered: u64,
    /// Samples of the accepted requests (with repeats, as the receiver was sent them).
    pub delivered_samples: u64,
    /// Samples of the requests that were retries (`Retry-Attempt`).
    pub retried_samples: u64,
    /// Samples of 2.0 requests answered 2xx without written counts: not understood, so sent again
    /// as 1.0 (a resend without `Retry-Attempt`).
    pub resent_samples: u64,
}

/// Counts the remote-write samples in `log` (requests with an empty body are skipped).
pub fn witness(log: &[Seen]) -> Witness {
    use std::collections::BTreeSet;
    let (mut seen, mut ok) = (BTreeSet::new(), BTreeSet::new());
    let mut w = Witness::default();
    for s in log.iter().filter(|s| !s.body.is_empty()) {
        let pts = s.rw_points();
        if s.accepted() {
            w.delivered_samples += pts.len() as u64;
            ok.extend(pts.iter().cloned());
        }
        if s.is_retry() {
            w.retried_samples += pts.len() as u64;
        }
        if s.ok() && !s.accepted() {
            w.resent_samples += pts.len() as u64;
        }
        seen.extend(pts);
    }
    w.seen = seen.len() as u64;
    w.delivered = ok.len() as u64;
    w.never_delivered = seen.difference(&ok).count() as u64;
    w
}

const LOGGED: [&str; 4] = ["content-type", "content-encoding", "x-prometheus-remote-write-version", "retry-attempt"];
const HOP: [&str; 9] =
    ["connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "content-length", "expect"];
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(30);

struct State {
    fault: Fault,
    upstream: u16,
    /// Bumped by every `set_fault`: wakes hung requests.
    generation: u64,
    log: Vec<Seen>,
}

struct Inner {
    port: u16,
    state: Mutex<State>,
    changed: Condvar,
    /// None while refusing (and after the drop). The accept thread holds a clone only for one poll.
    listener: Mutex<Option<Arc<TcpListener>>>,
    /// Open sockets: (stream clone, is a client connection). Shut down on Refuse (clients) and drop (all).
    conns: Mutex<HashMap<u64, (TcpStream, bool)>>,
    next_id: AtomicU64,
    stop: AtomicBool,
    forwarded: AtomicU64,
    connections: AtomicU64,
}

pub struct Proxy {
    pub port: u16,
    inner: Arc<Inner>,
    accept: Option<JoinHandle<()>>,
}

impl Proxy {
    /// A proxy on 127.0.0.1:<free port> forwarding (fault `Pass`) to 127.0.0.1:`upstream_port`.
    pub fn start(upstream_port: u16) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").expect("fault proxy: bind");
        l.set_nonblocking(true).unwrap();
        let port = l.local_addr().unwrap().port();
        let inner = Arc::new(Inner {
            port,
            state: Mutex::new(State { fault: Fault::Pass, upstream: upstream_port, generation: 0, log: Vec::new() }),
            changed: Condvar::new(),
            listener: Mutex::new(Some(Arc::new(l))),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            forwarded: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        });
        let i = inner.clone();
        let accept = std::thread::Builder::new().name(format!("fault-proxy-{port}")).spawn(move || accept_loop(i)).unwrap();
        Proxy { port, inner, accept: Some(accept) }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Applies to requests fully received from now on; wakes (and closes) hung requests.
    /// `Refuse` returns once the port refuses connects; leaving it returns once the port listens again.
    pub fn set_fault(&self, f: Fault) {
        let refuse = f == Fault::Refuse;
        if !refuse {
            self.inner.listen();
        }
        {
            let mut s = self.inner.state.lock().unwrap();
            s.fault = f;
            s.generation += 1;
            self.inner.changed.notify_all();
        }
        if refuse {
            self.inner.unlisten();
            self.inner.shutdown_conns(false);
        }
    }

    /// The receiver moved: forward to 127.0.0.1:`port` from now on.
    pub fn set_upstream(&self, port: u16) {
        self.inner.state.lock().unwrap().upstream = port;
    }

    /// Requests fully received, whatever the fault.
    pub fn requests(&self) -> u64 {
        self.inner.state.lock().unwrap().log.len() as u64
    }

    /// Requests forwarded and answered 2xx by the upstream.
    pub fn forwarded(&self) -> u64 {
        self.inner.forwarded.load(SeqCst)
    }

    /// Client connections accepted (keep-alive: several requests per connection).
    pub fn connections(&self) -> u64 {
        self.inner.connections.load(SeqCst)
    }

    pub fn log(&self) -> Vec<Seen> {
        self.inner.state.lock().unwrap().log.clone()
    }

    /// Waits until at least `n` requests were received; false on timeout.
    pub fn wait_requests(&self, n: u64, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        while self.requests() < n {
            if Instant::now() >= end {
                return false;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        true
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        {
            let _s = self.inner.state.lock().unwrap();
            self.inner.stop.store(true, SeqCst);
            self.inner.changed.notify_all();
        }
        self.inner.unlisten();
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        self.inner.shutdown_conns(true);
    }
}

impl Inner {
    /// Re-binds the port if it was closed by `Refuse` (std sets SO_REUSEADDR on Unix listeners, so
    /// TIME_WAIT connections on the port do not block it).
    fn listen(&self) {
        let mut g = self.listener.lock().unwrap();
        if g.is_some() {
            return;
        }
        let end = Instant::now() + Duration::from_secs(3);
        let l = loop {
            match TcpListener::bind(("127.0.0.1", self.port)) {
                Ok(l) => break l,
                Err(e) if Instant::now() < end => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(e) => panic!("fault proxy: re-bind 127.0.0.1:{}: {e}", self.port),
            }
        };
        l.set_nonblocking(true).unwrap();
        *g = Some(Arc::new(l));
    }

    /// Closes the listening socket and returns once it is closed (the accept thread lets go of its
    /// clone within one poll).
    fn unlisten(&self) {
        let Some(mut l) = self.listener.lock().unwrap().take() else { return };
        loop {
            match Arc::try_unwrap(l) {
                Ok(l) => return drop(l),
                Err(again) => {
                    l = again;
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }

    fn shutdown_conns(&self, all: bool) {
        for (s, client) in self.conns.lock().unwrap().values() {
            if all || *client {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
    }

    /// None when the proxy is stopping (the socket is then shut down).
    fn register(&self, s: &TcpStream, client: bool) -> Option<u64> {
        let mut c = self.conns.lock().unwrap();
        if self.stop.load(SeqCst) {
            let _ = s.shutdown(Shutdown::Both);
            return None;
        }
        let id = self.next_id.fetch_add(1, SeqCst);
        c.insert(id, (s.try_clone().ok()?, client));
        Some(id)
    }

    fn unregister(&self, id: u64) {
        self.conns.lock().unwrap().remove(&id);
    }

    fn set_status(&self, idx: usize, status: u16) {
        self.state.lock().unwrap().log[idx].status = status;
    }
}

fn accept_loop(inner: Arc<Inner>) {
    while !inner.stop.load(SeqCst) {
        let Some(l) = inner.listener.lock().unwrap().clone() else {
            std::thread::sleep(Duration::from_millis(5));
            continue;
        };
        let mut p = libc::pollfd { fd: l.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        if unsafe { libc::poll(&mut p, 1, 10) } <= 0 {
            continue;
        }
        // Nonblocking: a connection that vanished between poll and accept gives WouldBlock.
        let accepted = l.accept();
        drop(l);
        if let Ok((s, _)) = accepted {
            inner.connections.fetch_add(1, SeqCst);
            let i = inner.clone();
            let _ = std::thread::Builder::new().name("fault-proxy-conn".into()).spawn(move || serve(i, s));
        }
    }
}

enum End {
    Close,
    Reset,
}

fn serve(inner: Arc<Inner>, s: TcpStream) {
    let _ = s.set_nonblocking(false);
    let _ = s.set_nodelay(true);
    let Some(id) = inner.register(&s, true) else { return };
    let end = match s.try_clone() {
        Ok(r) => serve_conn(&inner, BufReader::new(r), &s),
        Err(_) => End::Close,
    };
    if let End::Reset = end {
        // With SO_LINGER {on, 0}, closing the last descriptor sends RST instead of FIN.
        let lin = libc::linger { l_onoff: 1, l_linger: 0 };
        unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &lin as *const libc::linger as *const libc::c_void,
                size_of::<libc::linger>() as libc::socklen_t,
            )
        };
    }
    inner.unregister(id);
    drop(s);
}

fn serve_conn(inner: &Inner, mut r: BufReader<TcpStream>, mut w: &TcpStream) -> End {
    loop {
        let req = match read_request(&mut r, &mut w) {
            Ok(Some(req)) => req,
            _ => return End::Close,
        };
        let (fault, generation, upstream, idx) = {
            let mut s = inner.state.lock().unwrap();
            let headers = req
                .headers
                .iter()
                .filter(|(k, _)| LOGGED.contains(&k.to_ascii_lowercase().as_str()))
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect();
            let fault = s.fault.clone();
            s.log.push(Seen {
                method: req.method.clone(),
                path: req.path.clone(),
                status: 0,
                body_len: req.body.len(),
                body: req.body.clone(),
                written: None,
                headers,
                fault: fault.clone(),
                at: Instant::now(),
            });
            (fault, s.generation, s.upstream, s.log.len() - 1)
        };
        let close = req.wants_close();
        let text = [("Content-Type".to_string(), "text/plain; charset=utf-8".to_string())];
        let (status, answer) = match fault {
            Fault::Pass => match forward(inner, &req, upstream) {
                Ok(resp) => {
                    if (200..300).contains(&resp.status) {
                        inner.forwarded.fetch_add(1, SeqCst);
                    }
                    let n = |h: &str| header(&resp.headers, h).and_then(|v| v.trim().parse::<u64>().ok());
                    if let Some(samples) = n("x-prometheus-remote-write-samples-written") {
                        let histograms = n("x-prometheus-remote-write-histograms-written").unwrap_or(0);
                        inner.state.lock().unwrap().log[idx].written = Some((samples, histograms));
                    }
                    (resp.status, relay(&resp, &req.method, close))
                }
                Err(e) => {
                    let body = format!("kdbprom fault proxy: upstream 127.0.0.1:{upstream}: {e}\n");
                    (502, response(502, &text, body.as_bytes(), close))
                }
            },
            Fault::Status(code, body) => (code, response(code, &text, body.as_bytes(), close)),
            Fault::RetryAfter(code, after) => {
                let h = [text[0].clone(), ("Retry-After".to_string(), after)];
                (code, response(code, &h, b"slow down: retry later\n", close))
            }
            Fault::Garbage200 => {
                let h = [("Content-Type".to_string(), "application/octet-stream".to_string())];
                (200, response(200, &h, b"\xff\x00<html>garbage, not a remote-write answer\x07\xfe", close))
            }
            Fault::Reset | Fault::Refuse => return End::Reset,
            Fault::Hang => {
                let mut s = inner.state.lock().unwrap();
                while s.generation == generation && !inner.stop.load(SeqCst) {
                    s = inner.changed.wait_timeout(s, Duration::from_millis(100)).unwrap().0;
                }
                return End::Close;
            }
        };
        inner.set_status(idx, status);
        if w.write_all(&answer).and_then(|_| w.flush()).is_err() || close {
            return End::Close;
        }
    }
}

fn body_less(method: &str, status: u16) -> bool {
    method.eq_ignore_ascii_case("HEAD") || (100..200).contains(&status) || status == 204 || status == 304
}

/// An upstream answer as read.
struct Response {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

/// Sends `req` to 127.0.0.1:`port` on a fresh connection and reads the whole answer.
fn forward(inner: &Inner, req: &Request, port: u16) -> io::Result<Response> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    let Some(id) = inner.register(&s, false) else { return Err(io::Error::other("proxy stopping")) };
    let out = exchange(&s, req);
    inner.unregister(id);
    out
}

fn exchange(s: &TcpStream, req: &Request) -> io::Result<Response> {
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(UPSTREAM_TIMEOUT))?;
    s.set_write_timeout(Some(UPSTREAM_TIMEOUT))?;
    let mut head = format!("{} {} HTTP/1.1\r\n", req.method, req.path);
    for (k, v) in &req.headers {
        if !HOP.contains(&k.to_ascii_lowercase().as_str()) {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
    }
    if req.framed || !req.body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", req.body.len()));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut msg = head.into_bytes();
    msg.extend_from_slice(&req.body);
    let mut w = s;
    w.write_all(&msg)?;
    w.flush()?;
    let mut r = BufReader::new(s);
    loop {
        let (start, headers) = read_head(&mut r)?.ok_or_else(|| bad("upstream closed without an answer"))?;
        let mut parts = start.splitn(3, ' ');
        let _version = parts.next();
        let status: u16 = parts.next().and_then(|c| c.parse().ok()).ok_or_else(|| bad(format!("bad status line {start:?}")))?;
        let reason = parts.next().unwrap_or("").to_string();
        if (100..200).contains(&status) && status != 101 {
            continue; // interim answer
        }
        let body = if body_less(&req.method, status) {
            Vec::new()
        } else if is_chunked(&headers) {
            read_chunked(&mut r)?
        } else if let Some(n) = content_length(&headers)? {
            let mut b = vec![0; n];
            r.read_exact(&mut b)?;
            b
        } else {
            let mut b = Vec::new();
            r.read_to_end(&mut b)?;
            b
        };
        return Ok(Response { status, reason, headers, body });
    }
}

/// The upstream answer for the client: same status, reason, headers and body; framing redone with
/// Content-Length (chunked answers are de-chunked), hop-by-hop headers dropped.
fn relay(resp: &Response, method: &str, close: bool) -> Vec<u8> {
    let no_body = body_less(method, resp.status);
    let reason = if resp.reason.is_empty() { reason(resp.status) } else { &resp.reason };
    let mut head = format!("HTTP/1.1 {} {reason}\r\n", resp.status);
    for (k, v) in &resp.headers {
        let k_l = k.to_ascii_lowercase();
        // A body-less answer keeps its Content-Length (HEAD, 304: the size of the representation).
        if HOP.contains(&k_l.as_str()) && !(no_body && k_l == "content-length") {
            continue;
        }
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !no_body {
        head.push_str(&format!("Content-Length: {}\r\n", resp.body.len()));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&resp.body);
    out
}

/// An answer the proxy makes itself (always with Content-Length).
fn response(status: u16, headers: &[(String, String)], body: &[u8], close: bool) -> Vec<u8> {
    let mut head = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    // 1xx, 204 and 304 carry no body and no Content-Length.
    let body = if body_less("", status) { &[][..] } else { body };
    if !body_less("", status) {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    if close {
        head.push_str("Connection: close\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    out
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Status",
    }
}
