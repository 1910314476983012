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
use super::queue::{Queue, Queued};
use super::redact::Redactor;
use super::replay::Replay;
use super::retry::{Ending, Refusal, Written};
use super::retry::{self, Backoff, Failure};
use super::spool;
use super::deadline::Deadline;
use super::leftovers::{SpoolTo, spool_left};
use super::negotiated::Memory;
use super::pipeline::{Common, Pipeline, Sending};
use super::round::Round;
use super::{Outcome, client};
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
    /// Set from the receiver's `Retry-After`: no request before then.
    not_before: Option<Instant>,
    /// Where a fallback to 1.0 is remembered for the next runs (the spool directory).
    memory: Option<Memory>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
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
        let remembered = cfg.protocol == Protocol::Auto && memory.as_ref().is_some_and(|m| m.only_v1(url.as_str(), now_ms()));
        let speaks = if remembered { Protocol::V1 } else { cfg.protocol };
        let (mut encoder, mut encoder2) = (V1Encoder::default(), remote_write2::V2Encoder::default());
        encoder.send_native_histograms(cfg.send_native_histograms);
        encoder2.send_native_histograms(cfg.send_native_histograms);
        Ok(RemoteWrite {
            common,
            cfg,
            url,
            client,
            redactor,
            encoder,
            encoder2,
            speaks,
            last_ts,
            queue,
            not_before: None,
            memory,
        })
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
                m.remember_v1(self.url.as_str(), now_ms());
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
        retry::answer(resp, self.cfg.queue.retry_on_http_429).await
    }

    /// Sends the queue oldest first until it is empty or `deadline` comes; what a retryable
    /// failure leaves stays queued, in order, for the next round.
    pub async fn send(&mut self, deadline: &Deadline) -> Outcome {
        let started = Instant::now();
        let mut out = Outcome::new(&self.common.name);
        out.ok = true;
        if let Some(at) = self.not_before.take() {
            if at >= deadline.when() && !self.queue.is_empty() {
                self.not_before = Some(at);
                out.ok = false;
                out.message = format!(
                    "the receiver asked (Retry-After) for no request in the next {:.1} s",
                    at.saturating_duration_since(started).as_secs_f64()
                );
                out.millis = started.elapsed().as_secs_f64() * 1e3;
                return out;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(at.into()) => {}
                // `.prom.stop[]` lowered the deadline during the wait: the final round sends.
                _ = deadline.reached() => {
                    self.not_before = Some(at);
                    out.ok = false;
                    out.message = "the deadline came while waiting out the receiver's Retry-After".into();
                    out.millis = started.elapsed().as_secs_f64() * 1e3;
                    return out;
                }
            }
        }
        let q = &self.cfg.queue;
        let backoff = Backoff { min: Duration::from_millis(q.min_backoff_ms), max: Duration::from_millis(q.max_backoff_ms) };
        loop {
            let limit = self.cfg.queue.sample_age_limit_ms;
            let expired = self.queue.expire(now_ms(), limit);
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
                    let aged = n > 1 && limit > 0 && now_ms().saturating_sub(ts_ms) > limit as i64;
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
                Ending::GaveUp { retry_after, .. } => {
                    if let Some(after) = retry_after {
                        self.not_before = Some(Instant::now() + after.min(MAX_RETRY_AFTER));
                    }
                    break;
                }
            }
        }
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
                Written::Absent => format!(
                    "HTTP {}: the receiver wrote none of {samples} samples (no written-count headers: not a 2.0 receiver)",
                    status
                ),
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
