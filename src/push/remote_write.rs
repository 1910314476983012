//! Remote write: headers, tenant and auth of each request; sending goes through [`super::retry`].

use super::retry::{self, Backoff, Failure};
use super::{Outcome, client};
use crate::config::RemoteWrite;
use crate::encode::remote_write::{HEADERS, Request};
use std::time::{Duration, Instant};

/// A configured remote-write target.
pub struct Target {
    /// Settings.
    pub cfg: RemoteWrite,
    client: reqwest::Client,
}

/// A timestamp strictly after `last`, so a receiver never sees two values of a series at one time.
pub fn next_ts(last: &mut i64, now_ms: i64) -> i64 {
    *last = now_ms.max(*last + 1);
    *last
}

impl Target {
    /// Builds the target; `index` is its position in `remote_write` for error texts.
    pub fn new(cfg: RemoteWrite, index: usize) -> Result<Target, client::ClientError> {
        let client = client::build(&cfg.auth, cfg.remote_timeout_ms, &format!("remote_write[{index}]"))?;
        Ok(Target { cfg, client })
    }

    /// One attempt; `n` counts attempts from 1 (retries carry `Retry-Attempt`).
    async fn send(&self, body: &[u8], n: u32) -> Result<u16, Failure> {
        let mut req = self.client.post(&self.cfg.url).body(body.to_vec());
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

    /// Sends the requests of one push in order; each is retried until it succeeds, fails for good,
    /// or `deadline` passes.
    pub async fn push(&self, requests: &[Request], deadline: Instant) -> Outcome {
        let started = Instant::now();
        let mut out = Outcome::new(&self.cfg.name);
        out.ok = true;
        let q = &self.cfg.queue;
        let backoff = Backoff { min: Duration::from_millis(q.min_backoff_ms), max: Duration::from_millis(q.max_backoff_ms) };
        for r in requests {
            let sent = retry::with_retries(|n| self.send(&r.body, n), backoff, deadline).await;
            out.attempts += sent.attempts;
            out.status = sent.status;
            if sent.ok {
                out.samples += r.samples as u64;
                out.bytes += r.body.len() as u64;
            } else {
                out.ok = false;
                out.message = sent.message;
            }
        }
        out.millis = started.elapsed().as_secs_f64() * 1e3;
        out
    }
}
