//! Remote write: headers, tenant, auth, and the send loop with capped exponential backoff and
//! jitter (backon), honouring Retry-After; permanent 4xx answers drop the batch and are counted.

use super::{Action, Outcome, classify, client, retry_after, snippet};
use crate::config::RemoteWrite;
use crate::encode::remote_write::{HEADERS, Request};
use backon::{ExponentialBuilder, Retryable};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// A configured remote-write target.
pub struct Target {
    /// Settings.
    pub cfg: RemoteWrite,
    client: reqwest::Client,
}

enum Failure {
    Retry { status: u16, message: String, after: Option<Duration> },
    Permanent { status: u16, message: String },
}

/// A timestamp strictly after `last`, so a receiver never sees two values of a series at one time.
pub fn next_ts(last: &mut i64, now_ms: i64) -> i64 {
    *last = now_ms.max(*last + 1);
    *last
}

/// A transport error as text, without URLs' credentials (we never put any in URLs).
pub fn transport_message(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    snippet(&s)
}

impl Target {
    /// Builds the target; `index` is its position in `remote_write` for error texts.
    pub fn new(cfg: RemoteWrite, index: usize) -> Result<Target, client::ClientError> {
        let client = client::build(&cfg.auth, cfg.remote_timeout_ms, &format!("remote_write[{index}]"))?;
        Ok(Target { cfg, client })
    }

    async fn send_one(&self, body: &[u8], attempt: &AtomicU32, last: &Mutex<(u16, String)>) -> Result<u16, Failure> {
        let n = attempt.fetch_add(1, Ordering::Relaxed) + 1;
        let res = self.try_send(body, n).await;
        if let Err(Failure::Retry { status, message, .. } | Failure::Permanent { status, message }) = &res {
            *last.lock().unwrap_or_else(|p| p.into_inner()) = (*status, message.clone());
        }
        res
    }

    async fn try_send(&self, body: &[u8], n: u32) -> Result<u16, Failure> {
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
        let resp = client::authorise(req, &self.cfg.auth).send().await.map_err(|e| Failure::Retry {
            status: 0,
            message: transport_message(&e),
            after: None,
        })?;
        let status = resp.status().as_u16();
        let after = retry_after(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()));
        match classify(status, after, self.cfg.queue.retry_on_http_429) {
            Action::Done => Ok(status),
            Action::Retry(after) => Err(Failure::Retry { status, message: snippet(&resp.text().await.unwrap_or_default()), after }),
            Action::Drop => Err(Failure::Permanent { status, message: snippet(&resp.text().await.unwrap_or_default()) }),
        }
    }

    /// Sends the requests of one push in order; each is retried until it succeeds, fails for good,
    /// or `deadline` passes.
    pub async fn push(&self, requests: &[Request], deadline: Instant) -> Outcome {
        let started = Instant::now();
        let mut out = Outcome {
            target: self.cfg.name.clone(),
            ok: true,
            status: 0,
            message: String::new(),
            samples: 0,
            bytes: 0,
            millis: 0.0,
            attempts: 0,
        };
        let q = &self.cfg.queue;
        for r in requests {
            let attempts = AtomicU32::new(0);
            let last = Mutex::new((0, String::new()));
            let backoff = ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(q.min_backoff_ms))
                .with_max_delay(Duration::from_millis(q.max_backoff_ms))
                .with_jitter()
                .without_max_times();
            let send = (|| self.send_one(&r.body, &attempts, &last))
                .retry(backoff)
                .sleep(tokio::time::sleep)
                .when(|f| matches!(f, Failure::Retry { .. }) && Instant::now() < deadline)
                .adjust(|f, d| match f {
                    Failure::Retry { after: Some(a), .. } => Some(*a),
                    _ => d,
                });
            let res = tokio::time::timeout_at(deadline.into(), send).await;
            out.attempts += attempts.load(Ordering::Relaxed);
            match res {
                Ok(Ok(status)) => {
                    out.status = status;
                    out.samples += r.samples as u64;
                    out.bytes += r.body.len() as u64;
                }
                Ok(Err(Failure::Retry { status, message, .. } | Failure::Permanent { status, message })) => {
                    out.ok = false;
                    out.status = status;
                    out.message = message;
                }
                Err(_) => {
                    // Report why it kept failing, not only that time ran out.
                    let (status, message) = last.lock().unwrap_or_else(|p| p.into_inner()).clone();
                    out.ok = false;
                    out.status = status;
                    out.message = format!("deadline reached after {} attempt(s); last error: {message}", attempts.load(Ordering::Relaxed));
                }
            }
        }
        out.millis = started.elapsed().as_secs_f64() * 1e3;
        out
    }
}
