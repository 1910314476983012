//! A remote-write target: its protocol (1.0, 2.0, or negotiated), encoders, ordered queue,
//! replayed spool, client, retry and log state.
//!
//! Each round is encoded into the queue; sending takes requests oldest first and retries the
//! head until it is accepted, refused for good, or the round's deadline comes, so a receiver that
//! comes back gets every round in order and its series have no gap.
//!
//! With `protocol: "auto"` the target speaks 2.0 until the receiver shows it cannot: a 415, a
//! 400, or a 2xx without the written-count headers (a 1.0 receiver decodes a 2.0 body as an
//! empty request). It then speaks 1.0 for the rest of its life, and the request that showed it
//! is rewritten and sent again as 1.0, once.

use super::accounting::Reason;
use super::deadline::Deadline;
use super::leftovers::{SpoolTo, spool_left};
use super::negotiated::Memory;
use super::pipeline::{Common, Pipeline, Sending};
use super::queue::{Queue, Queued};
use super::redact::Redactor;
use super::replay::Replay;
use super::retry::{self, Backoff, Failure};
use super::retry::{Ending, Refusal, Written};
use super::round::Round;
use super::spool;
use super::{Outcome, Waiting, client};
use crate::config::{self, Protocol};
use crate::encode::downgrade::downgrade;
use crate::encode::remote_write::{self as rw1, V1Encoder, Values};
use crate::encode::remote_write2;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// A `Retry-After` longer than this is taken as this: a receiver that asks for an hour's silence
/// would otherwise see nothing until the queue had aged out.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// A configured remote-write target.
pub struct RemoteWrite {
    /// Name and accounting.
    pub common: Common,
    cfg: config::RemoteWriteConfig,
    url: reqwest::Url,
    client: reqwest::Client,
    redactor: Redactor,
    encoder: V1Encoder,
    encoder2: remote_write2::V2Encoder,
    /// What the target speaks now: `Auto` until the receiver has shown which.
    speaks: Protocol,
    last_ts: i64,
    queue: Queue,
    /// Set from the receiver's `Retry-After`: no request before then, on `common.clock`.
    not_before: Option<Instant>,
    /// Where a fallback to 1.0 is remembered for the next runs (the spool directory).
    memory: Option<Memory>,
}

/// A timestamp strictly after `last`, so a receiver never sees two values of a series at one time.
pub fn next_ts(last: &mut i64, now_ms: i64) -> i64 {
    *last = now_ms.max(*last + 1);
    *last
}

/// True when a refusal says the samples are too old or out of order (Prometheus, Mimir and
/// VictoriaMetrics word it so), which retrying cannot change either.
fn too_old(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    ["out of bounds", "too old", "out of order", "too far in the past"].iter().any(|p| m.contains(p))
}

impl RemoteWrite {
    /// Builds the target; `index` is its position in `remote_write` for error texts. Spool files of
    /// a previous run for this target go to the front of the queue, before any new data.
    /// With `memory` (the spool directory's), an `auto` target that found its receiver takes only
    /// 1.0 less than a day ago speaks 1.0 at once.
    pub fn new(
        common: Common,
        cfg: config::RemoteWriteConfig,
        index: usize,
        replay: &mut Replay,
        memory: Option<Memory>,
    ) -> Result<RemoteWrite, client::ClientError> {
        let key = format!("remote_write[{index}]");
        let client = client::build(&cfg.auth, cfg.remote_timeout_ms, &key)?;
        let url = cfg.endpoint.clone();
        let mut queue = Queue::new(cfg.queue.capacity as u64);
        let replayed = replay.take(&cfg.name, &[spool::BodyKind::RemoteWrite1, spool::BodyKind::RemoteWrite2]);
        // New samples must come after the replayed ones, even if the clock went back since.
        let last_ts = replayed.iter().map(|r| r.ts_ms).max().unwrap_or(0);
        common.ledger.lock().admit(replayed.iter().map(|r| r.samples).sum());
        queue.push_front_all(replayed);
        let redactor = Redactor::new(&cfg.auth);
        let remembered = cfg.protocol == Protocol::Auto && memory.as_ref().is_some_and(|m| m.only_v1(url.as_str(), common.clock.unix_ms()));
        let speaks = if remembered { Protocol::V1 } else { cfg.protocol };
        let (mut encoder, mut encoder2) = (V1Encoder::default(), remote_write2::V2Encoder::default());
        encoder.send_native_histograms(cfg.send_native_histograms);
        encoder2.send_native_histograms(cfg.send_native_histograms);
        Ok(RemoteWrite { common, cfg, url, client, redactor, encoder, encoder2, speaks, last_ts, queue, not_before: None, memory })
    }

    /// Encodes the round into the queue: the snapshot, stale markers for removed series, and in
    /// the final round stale markers for every series (one timestamp later, so they end it).
    fn take_round(&mut self, r: &Round<'_>) {
        let max = self.cfg.queue.max_samples_per_send;
        let v2 = self.speaks != Protocol::V1;
        let (enc1, enc2) = (&mut self.encoder, &mut self.encoder2);
        let mut encode = |snap, ts, values| -> Vec<(rw1::Encoded, i64)> {
            let reqs = if v2 { enc2.encode(snap, r.rw_labels, ts, max, values) } else { enc1.encode(snap, r.rw_labels, ts, max, values) };
            reqs.into_iter().map(|q| (q, ts)).collect()
        };
        let ts = next_ts(&mut self.last_ts, r.now_ms);
        let mut reqs = encode(r.snap, ts, Values::Current);
        if self.cfg.stale_markers {
            reqs.extend(encode(r.ended, ts, Values::Stale));
            if r.last {
                let ts = next_ts(&mut self.last_ts, r.now_ms);
                reqs.extend(encode(r.snap, ts, Values::Stale));
            }
        }
        for (q, ts_ms) in reqs {
            let samples = q.samples as u64;
            let mut l = self.common.ledger.lock();
            l.admit(samples);
            let dropped = self.queue.push(Queued { body: q.body, samples, ts_ms, origin: None, v2 });
            l.fail(Reason::QueueFull, dropped);
        }
    }

    /// The receiver showed it takes only 1.0: say so once, speak 1.0 from now on.
    fn fall_back(&mut self, why: &str) {
        let until = match &self.memory {
            Some(m) => {
                m.remember_v1(self.url.as_str(), self.common.clock.unix_ms());
                "remembered for a day in the spool directory"
            }
            None => "probed again by the next run (no spool directory to remember it in)",
        };
        crate::warn!("{} takes only remote-write 1.0 ({why}); sending 1.0 from now on, {until}", self.common.name);
        self.speaks = Protocol::V1;
    }

    /// Rewrites a queued 2.0 head as 1.0 for a target that speaks 1.0; false if it was not a
    /// readable 2.0 body (then it is dropped and counted).
    fn head_as_v1(&mut self) -> bool {
        if self.speaks != Protocol::V1 {
            return true;
        }
        let Some(head) = self.queue.front() else { return true };
        if !head.v2 {
            return true;
        }
        match downgrade(&head.body) {
            Ok(body) => {
                self.queue.rewrite_front(body, false);
                true
            }
            Err(e) => {
                let r = self.queue.pop().expect("a head");
                crate::error!("{}: a queued 2.0 request could not be rewritten as 1.0 and is dropped: {e}", self.common.name);
                self.common.ledger.lock().fail(Reason::Http4xx, r.samples);
                false
            }
        }
    }

    /// One attempt; `n` counts attempts from 1 (retries carry `Retry-Attempt`).
    async fn attempt(&self, body: Bytes, v2: bool, n: u32) -> Result<retry::Answer, Failure> {
        let mut req = self.client.post(self.url.clone()).body(body);
        for (k, v) in if v2 { remote_write2::HEADERS } else { rw1::HEADERS } {
            req = req.header(k, v);
        }
        if n > 1 {
            req = req.header("Retry-Attempt", (n - 1).to_string());
        }
        if let Some(t) = &self.cfg.tenant {
            req = req.header(self.cfg.tenant_header.as_str(), t);
        }
        for (k, v) in &self.cfg.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        let resp = client::authorise(req, &self.cfg.auth).send().await.map_err(|e| retry::transport(&e))?;
        retry::answer(resp, self.cfg.queue.retry_on_http_429, self.common.clock.wall()).await
    }

    /// Sends the queue oldest first until it is empty or `deadline` comes; what a retryable
    /// failure leaves stays queued, in order, for the next round. A `Retry-After` that outlives
    /// the round is kept, and the outcome says until when ([`Outcome::waiting`]).
    pub async fn send(&mut self, deadline: &Deadline) -> Outcome {
        // Real time: how long the push took is what the outcome reports, whatever the clock says.
        let started = Instant::now();
        let clock = self.common.clock.clone();
        let mut out = Outcome::new(&self.common.name);
        out.ok = true;
        if let Some(at) = self.not_before.take() {
            // The wait is read on the pipeline's clock, the round's time left on the real one:
            // a receiver's wait is a fact about the receiver, the deadline one about this process.
            let wait = at.saturating_duration_since(clock.now());
            if wait >= deadline.left() && !self.queue.is_empty() {
                self.not_before = Some(at);
                out.ok = false;
                out.message = format!("the receiver asked (Retry-After) for no request in the next {:.1} s", wait.as_secs_f64());
                out.waiting = Some(Waiting { until: at });
                out.millis = started.elapsed().as_secs_f64() * 1e3;
                return out;
            }
            // The deadline first: on a tie the wait is kept for the next round, not lost.
            tokio::select! {
                biased;
                // `.prom.stop[]` lowered the deadline during the wait: the final round sends.
                _ = deadline.reached() => {
                    self.not_before = Some(at);
                    out.ok = false;
                    out.message = "the deadline came while waiting out the receiver's Retry-After".into();
                    out.waiting = Some(Waiting { until: at });
                    out.millis = started.elapsed().as_secs_f64() * 1e3;
                    return out;
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
        let q = &self.cfg.queue;
        let backoff = Backoff { min: Duration::from_millis(q.min_backoff_ms), max: Duration::from_millis(q.max_backoff_ms) };
        loop {
            let limit = self.cfg.queue.sample_age_limit_ms;
            let expired = self.queue.expire(clock.unix_ms(), limit);
            self.common.ledger.lock().fail(Reason::AgeLimit, expired);
            if !self.head_as_v1() {
                continue;
            }
            let Some(head) = self.queue.front() else { break };
            let (body, samples, ts_ms, v2) = (head.body.clone(), head.samples, head.ts_ms, head.v2);
            let ledger = &self.common.ledger;
            let this = &*self;
            let sent = retry::with_retries(
                |n| {
                    // Ages are checked again before every retry, as Prometheus's sender does: a
                    // request must not go out past the limit because it was already at the head.
                    let aged = n > 1 && limit > 0 && clock.unix_ms().saturating_sub(ts_ms) > limit as i64;
                    if n > 1 && !aged {
                        ledger.lock().retried += samples;
                    }
                    let fut = this.attempt(body.clone(), v2, n);
                    async move {
                        if aged {
                            return Err(Failure::Expired);
                        }
                        fut.await
                    }
                },
                backoff,
                deadline,
                &clock,
            )
            .await;
            out.attempts += sent.attempts;
            out.status = sent.status;
            let probing = v2 && self.speaks == Protocol::Auto;
            let without_counts = matches!(sent.ending, Ending::Delivered { written: Written::Absent });
            if probing && (sent.status == 415 || sent.status == 400 || without_counts) {
                // Not a 2.0 receiver: the same data goes again as 1.0, and never as 2.0 again.
                let how = if without_counts { "without written counts" } else { "to a 2.0 request" };
                self.fall_back(&format!("HTTP {} {how}", sent.status));
                self.common.ledger.lock().retried += samples;
                continue;
            }
            if !sent.ok() {
                out.ok = false;
                out.message = self.redactor.redact(sent.message());
                out.cause = self.redactor.redact(sent.cause());
            }
            match sent.ending {
                Ending::Delivered { written } => {
                    self.queue.pop();
                    if probing {
                        self.speaks = Protocol::V2;
                    }
                    self.accepted(written, sent.status, samples, body.len() as u64, v2, &mut out);
                }
                Ending::Refused(why) => {
                    self.queue.pop();
                    let why = match why {
                        Refusal::Expired => Reason::AgeLimit,
                        Refusal::Receiver(m) if too_old(&m) => Reason::TooOld,
                        Refusal::Receiver(_) => Reason::Http4xx,
                    };
                    self.common.ledger.lock().fail(why, samples);
                }
                Ending::Waiting { until, .. } => {
                    self.not_before = Some(until.min(clock.now() + MAX_RETRY_AFTER));
                    break;
                }
                Ending::GaveUp { retry_after, .. } => {
                    if let Some(after) = retry_after {
                        self.not_before = Some(clock.now() + after.min(MAX_RETRY_AFTER));
                    }
                    break;
                }
            }
        }
        out.waiting = self.not_before.map(|until| Waiting { until });
        out.millis = started.elapsed().as_secs_f64() * 1e3;
        out
    }

    /// Accounts for a request the receiver accepted: all of it, or for 2.0 what it says it wrote
    /// (the rest is `rejected`; counts that are not numbers are taken as all, larger ones capped).
    fn accepted(&mut self, said: Written, status: u16, samples: u64, bytes: u64, v2: bool, out: &mut Outcome) {
        let written = match said {
            _ if !v2 => samples,
            Written::Nonsense => samples,
            Written::Count(n) => n.min(samples),
            Written::Absent => 0,
        };
        let mut l = self.common.ledger.lock();
        l.sent(written, bytes);
        l.fail(Reason::Rejected, samples - written);
        drop(l);
        out.samples += written;
        out.bytes += bytes;
        if written < samples {
            out.ok = false;
            out.message = match said {
                Written::Absent => {
                    format!("HTTP {}: the receiver wrote none of {samples} samples (no written-count headers: not a 2.0 receiver)", status)
                }
                _ => format!("HTTP {status}: the receiver wrote {written} of {samples} samples"),
            };
            out.cause = "fewer samples written than sent".into();
        } else if said == Written::Nonsense {
            out.message = "the receiver's written-count headers are not numbers; counted as written".into();
        }
    }

    /// What is still queued after the final round goes to the spool (or is given up).
    fn spool_queue(&mut self, to: Option<&SpoolTo>, budget: &mut u64) -> Option<String> {
        let mut left = self.queue.take_all();
        // One file holds one kind: a mixed queue (a replayed 1.0 file ahead of 2.0 rounds) is
        // written as 1.0, which every receiver takes.
        let kind = if left.iter().all(|r| r.v2) { spool::BodyKind::RemoteWrite2 } else { spool::BodyKind::RemoteWrite1 };
        if kind == spool::BodyKind::RemoteWrite1 {
            for r in left.iter_mut().filter(|r| r.v2) {
                if let Ok(b) = downgrade(&r.body) {
                    (r.body, r.v2) = (b, false);
                }
            }
            left.retain(|r| {
                !r.v2 || {
                    self.common.ledger.lock().fail(Reason::Http4xx, r.samples);
                    false
                }
            });
        }
        spool_left(&self.common, kind, left, to, budget)
    }
}

impl Pipeline for RemoteWrite {
    fn offer(&mut self, round: &Round<'_>) {
        self.take_round(round);
    }

    fn send<'a>(&'a mut self, deadline: &'a Deadline, _last: bool) -> Sending<'a> {
        Box::pin(RemoteWrite::send(self, deadline))
    }

    fn spool(&mut self, to: Option<&SpoolTo>, budget: &mut u64) -> Option<String> {
        self.spool_queue(to, budget)
    }
}

#[cfg(test)]
mod tests {
    //! The decisions time makes for a remote-write target, on a clock the test moves: no test
    //! here sleeps out an age limit or a `Retry-After`.
    use super::*;
    use crate::aggregate::Aggregator;
    use crate::event::{Event, Op};
    use crate::push::accounting::Ledger;
    use crate::push::clock::Clock;
    use crate::registry::{Kind, Limits, Registry};
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A remote-write target of `queue` settings, speaking 1.0, to `url`, on `clock`.
    fn target(url: &str, queue: serde_json::Value, clock: &Clock, memory: Option<Memory>) -> RemoteWrite {
        let c = crate::config::Config::from_json(&serde_json::json!({
            "remote_write": {"url": url, "name": "t", "protocol": if memory.is_some() { "auto" } else { "1.0" }, "queue": queue},
            "spool": {"dir": ""},
        }))
        .unwrap();
        let common = Common::new("t", Ledger::default(), clock.clone());
        RemoteWrite::new(common, c.remote_write[0].clone(), 0, &mut Replay::default(), memory).unwrap()
    }

    /// Offers `rw` one round of one gauge sample, stamped on its clock.
    fn offer(rw: &mut RemoteWrite) {
        let reg = Registry::new(Limits::default());
        reg.declare("g", "", Kind::Gauge, &[], &[]).unwrap();
        let mut agg = Aggregator::new(1);
        agg.apply(&reg, Event { series: 0, op: Op::Set, value: 1.0 });
        let (snap, ended) = (agg.snapshot(&reg), agg.take_ended(&reg));
        let labels = [("job".to_string(), "j".to_string())];
        let now_ms = rw.common.clock.unix_ms();
        Pipeline::offer(rw, &Round::new(&snap, &ended, &labels, &[], now_ms, false));
    }

    fn within(ms: u64) -> Deadline {
        Deadline::at(Instant::now() + Duration::from_millis(ms))
    }

    /// A receiver on loopback answering each request in turn with `answers` (status and
    /// `Retry-After`), the last one for every request after; counts the requests.
    fn receiver(answers: Vec<(u16, Option<&'static str>)>) -> (String, Arc<AtomicUsize>) {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/api/v1/write", l.local_addr().unwrap());
        let seen = Arc::new(AtomicUsize::new(0));
        let count = seen.clone();
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut conn) = conn else { return };
                let mut r = BufReader::new(conn.try_clone().unwrap());
                let mut len = 0;
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        len = v.trim().parse().unwrap();
                    }
                }
                let _ = r.read_exact(&mut vec![0; len]);
                let n = count.fetch_add(1, Ordering::SeqCst);
                let (status, after) = answers[n.min(answers.len() - 1)];
                let after = after.map(|a| format!("Retry-After: {a}\r\n")).unwrap_or_default();
                let _ = write!(conn, "HTTP/1.1 {status} X\r\n{after}Content-Length: 0\r\nConnection: close\r\n\r\n");
            }
        });
        (url, seen)
    }

    #[tokio::test]
    async fn a_request_is_dropped_for_age_when_the_clock_says_it_is_past_the_limit() {
        // A port nothing listens on: every attempt is refused, and retried.
        let url = format!("http://{}/w", std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap());
        let clock = Clock::manual();
        let mut rw = target(&url, serde_json::json!({"sample_age_limit_ms": 1000, "min_backoff_ms": 10}), &clock, None);
        offer(&mut rw);
        let admitted = rw.common.ledger.get().samples_in;
        assert!(admitted > 0);
        clock.advance(Duration::from_millis(1000));
        let o = rw.send(&within(100)).await;
        let l = rw.common.ledger.get();
        assert!(!o.ok && o.attempts > 0, "at the limit, not past it: still sent ({o:?})");
        assert_eq!((l.failed(Reason::AgeLimit), l.queued), (0, admitted), "{l:?}");
        clock.advance(Duration::from_millis(1));
        let o = rw.send(&within(100)).await;
        let l = rw.common.ledger.get();
        assert_eq!(o.attempts, 0, "expired before any attempt: {o:?}");
        assert_eq!((l.failed(Reason::AgeLimit), l.queued), (admitted, 0), "{l:?}");
    }

    #[tokio::test]
    async fn a_retry_after_past_the_round_is_waited_out_on_the_clock() {
        let (url, seen) = receiver(vec![(503, Some("30")), (503, Some("3600")), (204, None)]);
        let clock = Clock::manual();
        let mut rw = target(&url, serde_json::json!({}), &clock, None);
        offer(&mut rw);
        let o = rw.send(&within(1_000)).await;
        let until = clock.now() + Duration::from_secs(30);
        assert_eq!((o.ok, o.status, o.waiting), (false, 503, Some(Waiting { until })), "{o:?}");
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        // The clock has not moved: the next round does not call the receiver at all.
        let o = rw.send(&within(1_000)).await;
        assert_eq!((o.ok, o.attempts, o.waiting), (false, 0, Some(Waiting { until })), "{o:?}");
        assert_eq!(o.message, "the receiver asked (Retry-After) for no request in the next 30.0 s");
        assert_eq!(seen.load(Ordering::SeqCst), 1);
        // Once it has, it does; an hour asked for is taken as MAX_RETRY_AFTER.
        clock.advance(Duration::from_secs(30));
        let o = rw.send(&within(1_000)).await;
        assert_eq!((o.status, o.waiting), (503, Some(Waiting { until: clock.now() + MAX_RETRY_AFTER })), "{o:?}");
        assert_eq!(seen.load(Ordering::SeqCst), 2);
        clock.advance(MAX_RETRY_AFTER);
        let o = rw.send(&within(1_000)).await;
        assert_eq!((o.ok, o.status, o.waiting), (true, 204, None), "{o:?}");
        assert_eq!(seen.load(Ordering::SeqCst), 3);
        let l = rw.common.ledger.get();
        assert_eq!((l.sent, l.queued), (l.samples_in, 0), "{l:?}");
    }

    #[test]
    fn a_remembered_fallback_to_1_0_is_trusted_for_a_day_of_the_clock() {
        let dir = std::env::temp_dir().join(format!("kdbprom-rw-memory-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = "http://127.0.0.1:9/w";
        let clock = Clock::manual();
        Memory::at(&dir).remember_v1(url, clock.unix_ms());
        let speaks = |clock: &Clock| target(url, serde_json::json!({}), clock, Some(Memory::at(&dir))).speaks;
        clock.advance(Duration::from_millis(super::super::negotiated::FRESH_MS as u64 - 1));
        assert_eq!(speaks(&clock), Protocol::V1);
        clock.advance(Duration::from_millis(1));
        assert_eq!(speaks(&clock), Protocol::Auto, "probed again after a day");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
