//! The one retry loop of every HTTP target: backon's capped exponential backoff with jitter,
//! `Retry-After` honoured, stopping at a deadline and keeping the last error for the outcome.

use super::clock::Clock;
use super::deadline::Deadline;
use super::{Action, classify, snippet};
use backon::{ExponentialBuilder, Retryable};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime};

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
    /// Never worth another attempt (other 4xx, or a request that cannot be built).
    Permanent {
        /// HTTP status, 0 when the request could not be built.
        status: u16,
        /// The receiver's message.
        message: String,
    },
    /// The request aged past its sample age limit before a retry: not sent again.
    Expired,
}

/// What an expired request's outcome says.
const EXPIRED: &str = "older than queue.sample_age_limit_ms: dropped, not retried";

/// What a 2.0 receiver says it wrote, from the `X-Prometheus-Remote-Write-*-Written` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Written {
    /// No such header: a 1.0 receiver (or a 1.0 request).
    #[default]
    Absent,
    /// Samples plus histograms written.
    Count(u64),
    /// A header that is not a non-negative whole number.
    Nonsense,
}

impl Written {
    /// Reads the written-count headers of an answer.
    pub fn from_headers(h: &reqwest::header::HeaderMap) -> Written {
        let parse = |v: &reqwest::header::HeaderValue| v.to_str().ok().and_then(|v| v.trim().parse::<u64>().ok());
        let mut any = false;
        let mut total = 0u64;
        for name in [
            "x-prometheus-remote-write-samples-written",
            "x-prometheus-remote-write-histograms-written",
            "x-prometheus-remote-write-exemplars-written",
        ] {
            let Some(v) = h.get(name) else { continue };
            any = true;
            match parse(v) {
                // Exemplars ride with samples: they say "I speak 2.0" but are not counted.
                Some(n) if !name.contains("exemplars") => total = total.saturating_add(n),
                Some(_) => {}
                None => return Written::Nonsense,
            }
        }
        if any { Written::Count(total) } else { Written::Absent }
    }
}

/// A 2xx answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    /// HTTP status.
    pub status: u16,
    /// The written counts, if the receiver sent them.
    pub written: Written,
}

/// How a call ended after its retries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sent {
    /// Attempts made.
    pub attempts: u32,
    /// Last HTTP status (0: none, e.g. connection refused).
    pub status: u16,
    /// Delivered, refused for good, or given up at the deadline.
    pub ending: Ending,
}

/// The four ways a call ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// A 2xx, with what a 2.0 receiver said it wrote.
    Delivered {
        /// The written-count headers' word.
        written: Written,
    },
    /// Refused for good: retrying the same request can never succeed.
    Refused(Refusal),
    /// The receiver asked (`Retry-After`) for a wait that ends past the deadline: the loop
    /// stopped rather than sleep it out, and the caller keeps the wait for its next round.
    Waiting {
        /// When the receiver may be called again, on the caller's clock (as it asked, uncapped).
        until: Instant,
        /// What is shown: why it kept failing, with the attempt count.
        message: String,
        /// The cause alone, without attempt counts.
        cause: String,
    },
    /// Still failing when the deadline came.
    GaveUp {
        /// What is shown: why it kept failing, with the attempt count.
        message: String,
        /// The cause alone, without attempt counts: what "log once per cause" compares.
        cause: String,
        /// The receiver's last `Retry-After`, so the next round does not call before it is due.
        retry_after: Option<Duration>,
    },
}

/// Why a request was refused for good.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The receiver's 4xx (or a request that could not be built), with its message.
    Receiver(String),
    /// The request aged past its sample age limit before a retry ([`Failure::Expired`]).
    Expired,
}

impl Sent {
    /// Delivered.
    pub fn ok(&self) -> bool {
        matches!(self.ending, Ending::Delivered { .. })
    }

    /// What the outcome shows; empty when delivered.
    pub fn message(&self) -> &str {
        match &self.ending {
            Ending::Delivered { .. } => "",
            Ending::Refused(Refusal::Receiver(m)) => m,
            Ending::Refused(Refusal::Expired) => EXPIRED,
            Ending::Waiting { message, .. } | Ending::GaveUp { message, .. } => message,
        }
    }

    /// The cause alone, without attempt counts; empty when delivered.
    pub fn cause(&self) -> &str {
        match &self.ending {
            Ending::Waiting { cause, .. } | Ending::GaveUp { cause, .. } => cause,
            _ => self.message(),
        }
    }
}

/// Backoff bounds.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// First delay.
    pub min: Duration,
    /// Delay cap.
    pub max: Duration,
}

/// Turns an HTTP answer into success or a [`Failure`], reading the body only when it failed;
/// `now` (the pipeline's wall clock) turns an HTTP-date `Retry-After` into a wait.
pub async fn answer(resp: reqwest::Response, retry_429: bool, now: SystemTime) -> Result<Answer, Failure> {
    let status = resp.status().as_u16();
    let after = super::retry_after::retry_after_at(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()), now);
    match classify(status, after, retry_429) {
        Action::Done => Ok(Answer { status, written: Written::from_headers(resp.headers()) }),
        Action::Retry(after) => Err(Failure::Retry { status, message: snippet(&resp.text().await.unwrap_or_default()), after }),
        Action::Drop => Err(Failure::Permanent { status, message: snippet(&resp.text().await.unwrap_or_default()) }),
    }
}

/// A transport error (connect, TLS, timeout) as a retryable failure with its whole cause chain;
/// a request that could not be built fails for good, since building it again gives the same.
pub fn transport(e: &reqwest::Error) -> Failure {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    if e.is_builder() {
        return Failure::Permanent { status: 0, message: snippet(&s) };
    }
    Failure::Retry { status: 0, message: snippet(&s), after: None }
}

/// No retry starts in a round's last 10 ms. It could rarely be answered in time: the deadline
/// would drop it before or after it left, and a receiver that wrote it unanswered is sent the
/// same samples again in the next round.
pub const LAST_RETRY: Duration = Duration::from_millis(10);

/// Whether a retry that waits `wait` first would start before the round's last [`LAST_RETRY`].
fn retry_fits(deadline: &Deadline, wait: Duration) -> bool {
    wait + LAST_RETRY < deadline.left()
}

/// Calls `attempt(n)` (n counts from 1) until it succeeds, fails for good, or `deadline` passes
/// (an attempt in flight then is dropped; a lowered deadline counts from when it is lowered).
/// A `Retry-After` that outlives the deadline ends it at once, [`Ending::Waiting`] until a moment
/// on `clock`. No attempt starts once the deadline has passed, and no retry in its last
/// [`LAST_RETRY`]: a backoff sleep that ended on the deadline's timer tick started one (counting
/// its samples as retried) only for the deadline to drop it before its request left.
pub async fn with_retries<F, Fut>(attempt: F, backoff: Backoff, deadline: &Deadline, clock: &Clock) -> Sent
where
    F: Fn(u32) -> Fut,
    Fut: Future<Output = Result<Answer, Failure>>,
{
    let attempts = AtomicU32::new(0);
    let last = Mutex::new((0u16, String::new(), None));
    let once = || async {
        let fits = if attempts.load(Ordering::Relaxed) == 0 { !deadline.passed() } else { retry_fits(deadline, Duration::ZERO) };
        if !fits {
            // The select below ends the loop on the deadline's next poll.
            std::future::pending::<()>().await;
        }
        let n = attempts.fetch_add(1, Ordering::Relaxed) + 1;
        let res = attempt(n).await;
        match &res {
            Err(Failure::Retry { status, message, after }) => {
                *last.lock().unwrap_or_else(|p| p.into_inner()) = (*status, message.clone(), *after)
            }
            Err(Failure::Permanent { status, message }) => {
                *last.lock().unwrap_or_else(|p| p.into_inner()) = (*status, message.clone(), None)
            }
            Err(Failure::Expired) => {}
            Ok(_) => {}
        }
        res
    };
    let policy = ExponentialBuilder::default().with_min_delay(backoff.min).with_max_delay(backoff.max).with_jitter().without_max_times();
    let retried =
        // A Retry-After that ends past the deadline (or in its last moments, where no retry
        // starts) stops the loop now rather than sleeping it out:
        // the caller keeps the wait for its next round.
        once.retry(policy).sleep(tokio::time::sleep).when(|f| match f {
            Failure::Retry { after: Some(a), .. } => retry_fits(deadline, *a),
            Failure::Retry { .. } => !deadline.passed(),
            Failure::Permanent { .. } | Failure::Expired => false,
        }).adjust(
            |f, d| match f {
                Failure::Retry { after: Some(a), .. } => Some(*a),
                _ => d,
            },
        );
    // The deadline first: when it and a backoff sleep end on the same tick, the deadline wins.
    let res = tokio::select! {
        biased;
        _ = deadline.reached() => Err(()),
        r = retried => Ok(r),
    };
    let attempts = attempts.load(Ordering::Relaxed);
    let (last_status, last_message, retry_after) = last.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (status, ending) = match res {
        Ok(Ok(a)) => (a.status, Ending::Delivered { written: a.written }),
        Ok(Err(Failure::Permanent { status, message })) => (status, Ending::Refused(Refusal::Receiver(message))),
        Ok(Err(Failure::Expired)) => (last_status, Ending::Refused(Refusal::Expired)),
        Ok(Err(Failure::Retry { status, message: cause, after })) => {
            let message = format!("deadline reached after {attempts} attempt(s); last error: {cause}");
            match after {
                Some(a) => (status, Ending::Waiting { until: clock.now() + a, message, cause }),
                None => (status, Ending::GaveUp { message, cause, retry_after: None }),
            }
        }
        Err(()) => {
            // Report why it kept failing, not only that time ran out; a receiver that never
            // answered has no error of its own to report.
            let (message, cause) = match last_message.as_str() {
                "" if attempts == 0 => ("deadline reached before the first attempt".to_string(), "no time left".to_string()),
                "" if attempts == 1 => {
                    ("deadline reached: the receiver did not answer the first attempt in time".to_string(), "no answer in time".to_string())
                }
                "" => {
                    (format!("deadline reached during attempt {attempts}: the receiver did not answer in time"), "no answer in time".into())
                }
                m => (format!("deadline reached after {attempts} attempt(s); last error: {m}"), m.to_string()),
            };
            (last_status, Ending::GaveUp { message, cause, retry_after })
        }
    };
    Sent { attempts, status, ending }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;

    #[tokio::test]
    async fn no_attempt_starts_once_the_deadline_has_passed_nor_a_retry_in_its_last_moments() {
        // Short rounds of 1 ms backoffs: a sleep often ends on the deadline's own tick, or just
        // before it. The old loop started attempts then, which the deadline dropped at once.
        let (started, late) = (AtomicU64::new(0), AtomicU64::new(0));
        let backoff = Backoff { min: Duration::from_millis(1), max: Duration::from_millis(1) };
        let rounds = 60;
        for _ in 0..rounds {
            let d = Deadline::at(Instant::now() + Duration::from_millis(30));
            let sent = with_retries(
                |n| {
                    started.fetch_add(1, Ordering::Relaxed);
                    // The library read the time a moment before, and a loaded machine can stall
                    // the thread in between: half of LAST_RETRY as slack. The old loop started
                    // retries with any time left, 0 included.
                    let need = if n == 1 { Duration::ZERO } else { LAST_RETRY / 2 };
                    if d.left() <= need {
                        late.fetch_add(1, Ordering::Relaxed);
                    }
                    async { Err(Failure::Retry { status: 503, message: "down".into(), after: None }) }
                },
                backoff,
                &d,
                &Clock::System,
            )
            .await;
            assert!(matches!(sent.ending, Ending::GaveUp { .. }), "{sent:?}");
        }
        let (started, late) = (started.into_inner(), late.into_inner());
        assert!(started >= 2 * rounds, "rounds of one attempt prove nothing: {started} attempts");
        assert_eq!(late, 0, "attempts started too late, of {started}");

        // A Retry-After ending in those last moments ends the round at once, the wait kept whole.
        let d = Deadline::at(Instant::now() + Duration::from_millis(200));
        let slow = || async { Err(Failure::Retry { status: 429, message: "slow".into(), after: Some(Duration::from_millis(195)) }) };
        let sent = with_retries(|_| slow(), backoff, &d, &Clock::System).await;
        assert_eq!(sent.attempts, 1);
        assert!(matches!(sent.ending, Ending::Waiting { .. }), "{sent:?}");

        let gone = Deadline::at(Instant::now());
        let sent = with_retries(|_| async { panic!("an attempt after the deadline") }, backoff, &gone, &Clock::System).await;
        assert_eq!(sent.attempts, 0);
        assert_eq!(sent.message(), "deadline reached before the first attempt");
    }
}
