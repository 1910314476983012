//! Pushgateway: the grouping-key URL (with `@base64` where needed) and the PUT/POST/DELETE calls.

use super::retry::{self, Backoff};
use super::{Outcome, client};
use crate::config::{PushMethod, Pushgateway};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::time::{Duration, Instant};

/// The gateway is one local service: retry soon, and never wait longer than 5 s between attempts.
const BACKOFF: Backoff = Backoff { min: Duration::from_millis(50), max: Duration::from_secs(5) };

/// Content-Type of the body.
pub const CONTENT_TYPE: &str = crate::encode::text::CONTENT_TYPE;

/// `<base>/metrics/job/<job>{/<label>/<value>}`. A value that is empty or holds anything but
/// `[A-Za-z0-9_.:-]` goes as `<label>@base64/<URL-safe base64>` (`=` for empty), so `/`, spaces
/// and `+` survive the gateway's router unchanged.
///
/// ```
/// use kdbprom::push::pushgateway::group_path;
/// let key = [("instance".to_string(), "h:5010".to_string()), ("path".to_string(), "/var/tmp".to_string()), ("x".to_string(), "".to_string())];
/// assert_eq!(group_path("http://gw:9091", "eod", &key), "http://gw:9091/metrics/job/eod/instance/h:5010/path@base64/L3Zhci90bXA/x@base64/=");
/// ```
pub fn group_path(base: &str, job: &str, labels: &[(String, String)]) -> String {
    let mut p = format!("{}/metrics", base.trim_end_matches('/'));
    for (n, v) in std::iter::once(("job", job)).chain(labels.iter().map(|(n, v)| (n.as_str(), v.as_str()))) {
        let safe = !v.is_empty() && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"_.:-".contains(&b));
        if safe {
            p.push_str(&format!("/{n}/{v}"));
        } else if v.is_empty() {
            p.push_str(&format!("/{n}@base64/="));
        } else {
            p.push_str(&format!("/{n}@base64/{}", URL_SAFE_NO_PAD.encode(v)));
        }
    }
    p
}

/// A configured Pushgateway target.
pub struct Target {
    /// Settings.
    pub cfg: Pushgateway,
    /// The group URL.
    pub url: String,
    client: reqwest::Client,
}

impl Target {
    /// Builds the target for `job` and `instance` plus the configured grouping labels.
    pub fn new(cfg: Pushgateway, job: &str, instance: &str) -> Result<Target, client::ClientError> {
        let client = client::build(&cfg.auth, cfg.timeout_ms, "pushgateway")?;
        let mut key = vec![("instance".to_string(), instance.to_string())];
        key.extend(cfg.grouping.iter().map(|(k, v)| (k.clone(), v.clone())));
        let url = group_path(&cfg.url, job, &key);
        Ok(Target { cfg, url, client })
    }

    /// Pushes `body` (text 0.0.4, no timestamps), retrying transport errors and 5xx until `deadline`.
    pub async fn push(&self, body: &str, samples: u64, deadline: Instant) -> Outcome {
        let method = match self.cfg.method {
            PushMethod::Put => reqwest::Method::PUT,
            PushMethod::Post => reqwest::Method::POST,
        };
        self.call(method, Some(body.to_string()), samples, deadline).await
    }

    /// Deletes the group (on stop, when `delete_on_exit`).
    pub async fn delete(&self, deadline: Instant) -> Outcome {
        self.call(reqwest::Method::DELETE, None, 0, deadline).await
    }

    async fn call(&self, method: reqwest::Method, body: Option<String>, samples: u64, deadline: Instant) -> Outcome {
        let started = Instant::now();
        let attempt = |_n: u32| {
            let mut req = client::authorise(self.client.request(method.clone(), &self.url), &self.cfg.auth);
            if let Some(b) = &body {
                req = req.header("Content-Type", CONTENT_TYPE).body(b.clone());
            }
            async move { retry::answer(req.send().await.map_err(|e| retry::transport(&e))?, true).await }
        };
        let sent = retry::with_retries(attempt, BACKOFF, deadline).await;
        let mut out = Outcome::new("pushgateway");
        if sent.ok {
            out.samples = samples;
            out.bytes = body.as_ref().map_or(0, |b| b.len() as u64);
        }
        (out.ok, out.status, out.message, out.attempts) = (sent.ok, sent.status, sent.message, sent.attempts);
        out.millis = started.elapsed().as_secs_f64() * 1e3;
        out
    }
}
