//! The one retry loop of every HTTP target: backon's capped exponential backoff with jitter,
//! `Retry-After` honoured, stopping at a deadline and keeping the last error for the outcome.

use super::{Action, classify, retry_after, snippet};
use backon::{ExponentialBuilder, Retryable};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Why one attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth another attempt (5xx, 408, 429 when enabled, transport errors).
    Retry {
        /// HTTP status, 0 for transport errors.
        status: u16,
        /// The receiver's message or the transport error.
        message: String,
        /// The receiver's `Retry-After`.
        after: Option<Duration>,
    },
    /// Never worth another attempt (other 4xx).
    Permanent {
        /// HTTP status.
        status: u16,
        /// The receiver's message.
        message: String,
    },
}

/// How a call ended after its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Accepted.
    pub ok: bool,
    /// Last HTTP status (0: none).
    pub status: u16,
    /// Receiver's message or transport error, empty on success.
    pub message: String,
    /// Attempts made.
    pub attempts: u32,
}

/// Backoff bounds.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First delay.
    pub min: Duration,
    /// Delay cap.
    pub max: Duration,
}

/// Turns an HTTP answer into success or a [`Failure`], reading the body only when it failed.
pub async fn answer(resp: reqwest::Response, retry_429: bool) -> Result<u16, Failure> {
    let status = resp.status().as_u16();
    let after = retry_after(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()));
    match classify(status, after, retry_429) {
        Action::Done => Ok(status),
        Action::Retry(after) => Err(Failure::Retry { status, message: snippet(&resp.text().await.unwrap_or_default()), after }),
        Action::Drop => Err(Failure::Permanent { status, message: snippet(&resp.text().await.unwrap_or_default()) }),
    }
}

/// A transport error (connect, TLS, timeout) as a retryable failure with its whole cause chain.
pub fn transport(e: &reqwest::Error) -> Failure {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    Failure::Retry { status: 0, message: snippet(&s), after: None }
}

/// Calls `attempt(n)` (n counts from 1) until it succeeds, fails for good, or `deadline` passes.
pub async fn with_retries<F, Fut>(attempt: F, backoff: Backoff, deadline: Instant) -> Sent
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = Result<u16, Failure>>,
{
    let attempts = AtomicU32::new(0);
    let last = Mutex::new((0u16, String::new()));
    let once = || async {
        let n = attempts.fetch_add(1, Ordering::Relaxed) + 1;
        let res = attempt(n).await;
        if let Err(Failure::Retry { status, message, .. } | Failure::Permanent { status, message }) = &res {
            *last.lock().unwrap_or_else(|p| p.into_inner()) = (*status, message.clone());
        }
        res
    };
    let policy = ExponentialBuilder::default().with_min_delay(backoff.min).with_max_delay(backoff.max).with_jitter().without_max_times();
    let retried =
        once.retry(policy).sleep(tokio::time::sleep).when(|f| matches!(f, Failure::Retry { .. }) && Instant::now() < deadline).adjust(
            |f, d| match f {
                Failure::Retry { after: Some(a), .. } => Some(*a),
                _ => d,
            },
        );
    let res = tokio::time::timeout_at(deadline.into(), retried).await;
    let attempts = attempts.load(Ordering::Relaxed);
    match res {
        Ok(Ok(status)) => Sent { ok: true, status, message: String::new(), attempts },
        Ok(Err(Failure::Retry { status, message, .. } | Failure::Permanent { status, message })) => {
            Sent { ok: false, status, message, attempts }
        }
        Err(_) => {
            // Report why it kept failing, not only that time ran out.
            let (status, message) = last.lock().unwrap_or_else(|p| p.into_inner()).clone();
            Sent { ok: false, status, message: format!("deadline reached after {attempts} attempt(s); last error: {message}"), attempts }
        }
    }
}
