//! A remote-write target: its encoder, ordered queue, replayed spool, client, retry and log state.
//!
//! Each round is encoded into the queue; sending takes requests oldest first and retries the
//! head until it is accepted, refused for good, or the round's deadline comes, so a receiver that
//! comes back gets every round in order and its series have no gap.

use super::accounting::Reason;
use super::queue::{Queue, Request};
use super::redact::Redactor;
use super::replay::Replay;
use super::retry::{self, Backoff, Failure};
use super::spool;
use super::target::{Common, Round, SpoolTo, spool_left};
use super::{Outcome, client};
use crate::config;
use crate::encode::remote_write::{Encoder, HEADERS, Values};
use crate::telemetry::TargetSeries;
use bytes::Bytes;
use std::time::{Duration, Instant};

/// A `Retry-After` longer than this is taken as this: a receiver that asks for an hour's silence
/// would otherwise see nothing until the queue had aged out.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// A configured remote-write target.
pub struct RemoteWrite {
    /// Name, accounting, self-metric series, log state.
    pub common: Common,
    cfg: config::RemoteWrite,
    url: reqwest::Url,
    client: reqwest::Client,
    redactor: Redactor,
    encoder: Encoder,
    last_ts: i64,
    queue: Queue,
    /// Set from the receiver's `Retry-After`: no request before then.
    not_before: Option<Instant>,
}

/// What a retry of a request that aged past `queue.sample_age_limit_ms` says instead of sending it.
const AGED: &str = "older than queue.sample_age_limit_ms: dropped, not retried";

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
    pub fn new(
        cfg: config::RemoteWrite,
        index: usize,
        series: TargetSeries,
        replay: &mut Replay,
    ) -> Result<RemoteWrite, client::ClientError> {
        let key = format!("remote_write[{index}]");
        let client = client::build(&cfg.auth, cfg.remote_timeout_ms, &key)?;
        let url = reqwest::Url::parse(&cfg.url).map_err(|e| client::ClientError { key: format!("{key}.url"), why: e.to_string() })?;
        let common = Common::new(&cfg.name, series);
        let mut queue = Queue::new(cfg.queue.capacity as u64);
        let replayed = replay.take(&cfg.name, spool::Kind::RemoteWrite1);
        // New samples must come after the replayed ones, even if the clock went back since.
        let last_ts = replayed.iter().map(|r| r.ts_ms).max().unwrap_or(0);
        common.ledger.lock().admit(replayed.iter().map(|r| r.samples).sum());
        queue.push_front_all(replayed);
        let redactor = Redactor::new(&cfg.auth);
        Ok(RemoteWrite { common, cfg, url, client, redactor, encoder: Encoder::default(), last_ts, queue, not_before: None })
    }

    /// Encodes the round into the queue: the snapshot, stale markers for removed series, and in
    /// the final round stale markers for every series (one timestamp later, so they end it).
    pub fn offer(&mut self, r: &Round<'_>) {
        let max = self.cfg.queue.max_samples_per_send;
        let ts = next_ts(&mut self.last_ts, r.now_ms);
        let mut reqs: Vec<(crate::encode::remote_write::Request, i64)> =
            self.encoder.encode(r.snap, r.rw_labels, ts, max, Values::Current).into_iter().map(|q| (q, ts)).collect();
        if self.cfg.stale_markers {
            reqs.extend(self.encoder.encode(r.ended, r.rw_labels, ts, max, Values::Stale).into_iter().map(|q| (q, ts)));
            if r.last {
                let ts = next_ts(&mut self.last_ts, r.now_ms);
                reqs.extend(self.encoder.encode(r.snap, r.rw_labels, ts, max, Values::Stale).into_iter().map(|q| (q, ts)));
            }
        }
        for (q, ts_ms) in reqs {
            let samples = q.samples as u64;
            let mut l = self.common.ledger.lock();
            l.admit(samples);
            let dropped = self.queue.push(Request { body: q.body, samples, ts_ms, origin: None });
            l.fail(Reason::QueueFull, dropped);
        }
    }

    /// One attempt; `n` counts attempts from 1 (retries carry `Retry-Attempt`).
    async fn attempt(&self, body: Bytes, n: u32) -> Result<u16, Failure> {
        let mut req = self.client.post(self.url.clone()).body(body);
        for (k, v) in HEADERS {
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
    pub async fn send(&mut self, deadline: Instant) -> Outcome {
        let started = Instant::now();
        let mut out = Outcome::new(&self.common.name);
        out.ok = true;
        if let Some(at) = self.not_before.take() {
            if at >= deadline && !self.queue.is_empty() {
                self.not_before = Some(at);
                out.ok = false;
                out.message = format!(
                    "the receiver asked (Retry-After) for no request in the next {:.1} s",
                    at.saturating_duration_since(started).as_secs_f64()
                );
                out.millis = started.elapsed().as_secs_f64() * 1e3;
                return out;
            }
            tokio::time::sleep_until(at.into()).await;
        }
        let q = &self.cfg.queue;
        let backoff = Backoff { min: Duration::from_millis(q.min_backoff_ms), max: Duration::from_millis(q.max_backoff_ms) };
        loop {
            let limit = self.cfg.queue.sample_age_limit_ms;
            let expired = self.queue.expire(now_ms(), limit);
            self.common.ledger.lock().fail(Reason::AgeLimit, expired);
            let Some(head) = self.queue.front() else { break };
            let (body, samples, ts_ms) = (head.body.clone(), head.samples, head.ts_ms);
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
                    let fut = this.attempt(body.clone(), n);
                    async move {
                        if aged {
                            return Err(Failure::Permanent { status: 0, message: AGED.into() });
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
            if sent.ok {
                self.queue.pop();
                self.common.ledger.lock().sent(samples, body.len() as u64);
                out.samples += samples;
                out.bytes += body.len() as u64;
                continue;
            }
            out.ok = false;
            out.message = self.redactor.redact(&sent.message);
            out.cause = self.redactor.redact(&sent.cause);
            if sent.permanent {
                self.queue.pop();
                let why = match sent.cause.as_str() {
                    AGED => Reason::AgeLimit,
                    m if too_old(m) => Reason::TooOld,
                    _ => Reason::Http4xx,
                };
                self.common.ledger.lock().fail(why, samples);
                continue;
            }
            if let Some(after) = sent.retry_after {
                self.not_before = Some(Instant::now() + after.min(MAX_RETRY_AFTER));
            }
            break;
        }
        out.millis = started.elapsed().as_secs_f64() * 1e3;
        out
    }

    /// What is still queued after the final round goes to the spool (or is given up).
    pub fn spool(&mut self, to: Option<&SpoolTo>, budget: &mut u64) -> Option<String> {
        let left = self.queue.take_all();
        spool_left(&self.common, spool::Kind::RemoteWrite1, left, to, budget)
    }

    /// Samples and requests waiting.
    pub fn queued(&self) -> (u64, usize) {
        (self.queue.samples(), self.queue.len())
    }
}
