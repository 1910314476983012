//! The Pushgateway target: last-state delivery to one group, whose URL (with `@base64` where
//! needed) is built once; PUT/POST each round, DELETE on exit. The body is delimited protobuf
//! ([`metric_family`], the default: native histograms whole) or the text exposition
//! (`pushgateway.format: "text"`), gzipped when `pushgateway.compression` is `"gzip"`.
//!
//! The gateway keeps only the last state, so there is no queue and no spool: a round that cannot
//! be delivered is given up (a newer state follows), the final one included ([`Pushgateway::give_up`]).

use super::accounting::Reason;
use super::deadline::Deadline;
use super::leftovers::SpoolTo;
use super::pipeline::{Common, Pipeline, Sending};
use super::queue::Queued;
use super::redact::Redactor;
use super::retry::{self, Backoff, Ending};
use super::round::Round;
use super::{Outcome, client};
use crate::config::{self, PushMethod, PushgatewayCompression, PushgatewayFormat};
use crate::encode::{metric_family, text};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::time::{Duration, Instant};

/// The gateway is one local service: retry soon, and never wait longer than 5 s between attempts.
const BACKOFF: Backoff = Backoff { min: Duration::from_millis(50), max: Duration::from_secs(5) };

/// Content-Type of a body in `format`.
pub fn content_type(format: PushgatewayFormat) -> &'static str {
    match format {
        PushgatewayFormat::Protobuf => metric_family::CONTENT_TYPE,
        PushgatewayFormat::Text => crate::encode::text::CONTENT_TYPE,
    }
}

/// `body` gzipped at level 1, appended to `out`: 5–7× less CPU than the default level 6, for bodies
/// at most a quarter larger (BENCHMARKS.md); the gateway is usually near.
pub fn gzip(body: &[u8], out: &mut Vec<u8>) {
    use std::io::Write;
    let mut z = flate2::write::GzEncoder::new(out, flate2::Compression::fast());
    // Writing to a Vec cannot fail.
    z.write_all(body).expect("gzip into memory");
    z.finish().expect("gzip into memory");
}

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

/// The configured Pushgateway.
pub struct Pushgateway {
    /// Name (`pushgateway`) and accounting.
    pub common: Common,
    cfg: config::PushgatewayConfig,
    /// The group URL.
    pub url: reqwest::Url,
    client: reqwest::Client,
    redactor: Redactor,
    /// This round's state.
    pending: Option<Queued>,
    /// The encoders, kept between rounds: each makes its body from the last one (unchanged
    /// series are copied, see [`crate::encode::series_cache`]).
    encoder: metric_family::FamilyEncoder,
    text: text::TextEncoder,
    /// What the last round sent, to take its buffer back once no request holds it any more.
    sent: Option<(bytes::Bytes, Lent)>,
    /// A buffer for the gzipped body or a copy of the text one.
    spare: Vec<u8>,
}

/// Whose buffer a sent body is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Lent {
    /// The protobuf encoder's own body, sent without a copy; it goes back to the encoder.
    Encoder,
    /// [`Pushgateway::spare`].
    Spare,
}

impl Pushgateway {
    /// Builds the target for `job` and `instance` plus the configured grouping labels.
    pub fn new(common: Common, cfg: config::PushgatewayConfig, job: &str, instance: &str) -> Result<Pushgateway, client::ClientError> {
        let client = client::build(&cfg.auth, cfg.timeout_ms, "pushgateway")?;
        let mut key = vec![("instance".to_string(), instance.to_string())];
        key.extend(cfg.grouping.iter().map(|(k, v)| (k.clone(), v.clone())));
        let url = group_path(&cfg.url, job, &key);
        let url = reqwest::Url::parse(&url).map_err(|e| client::ClientError { key: "pushgateway.url".into(), why: e.to_string() })?;
        let redactor = Redactor::new(&cfg.auth);
        Ok(Pushgateway {
            common,
            cfg,
            url,
            client,
            redactor,
            pending: None,
            encoder: Default::default(),
            text: Default::default(),
            sent: None,
            spare: Vec::new(),
        })
    }

    /// Takes this round's state to push, encoded and compressed as configured.
    ///
    /// No buffer is made or copied for it in the steady state: the last round's body comes back
    /// from the `Bytes` it was sent as (its request is over by now, so nothing else holds it), the
    /// encoder writes the new one from it, and the new one goes out without a copy (a text body
    /// is copied once, into the spare buffer). A body still held (a request abandoned at the
    /// deadline still has it) is left to its holders, and the encoder starts afresh.
    fn take_round(&mut self, r: &Round<'_>) {
        if let Some((body, whose)) = self.sent.take() {
            let back = body.try_into_mut().ok().map(Vec::from);
            match (back, whose) {
                (Some(b), Lent::Encoder) => self.encoder.give_back(b),
                (Some(b), Lent::Spare) => self.spare = b,
                (None, _) => {}
            }
        }
        let gz = self.cfg.compression == PushgatewayCompression::Gzip;
        let (body, whose) = match (self.cfg.format, gz) {
            (PushgatewayFormat::Protobuf, false) => {
                self.encoder.encode(r.snap, r.text_labels);
                (self.encoder.take(), Lent::Encoder)
            }
            (format, _) => {
                let encoded = match format {
                    PushgatewayFormat::Protobuf => self.encoder.encode(r.snap, r.text_labels),
                    PushgatewayFormat::Text => self.text.encode(r.snap, r.text_labels).as_bytes(),
                };
                self.spare.clear();
                if gz {
                    gzip(encoded, &mut self.spare);
                } else {
                    self.spare.extend_from_slice(encoded);
                }
                (std::mem::take(&mut self.spare), Lent::Spare)
            }
        };
        let body = bytes::Bytes::from(body);
        self.sent = Some((body.clone(), whose));
        let req = Queued { body, samples: r.samples(), ts_ms: r.now_ms, origin: None, v2: false };
        let mut l = self.common.ledger.lock();
        l.admit(req.samples);
        if let Some(old) = self.pending.replace(req) {
            l.fail(Reason::Deadline, old.samples);
        }
    }

    /// Pushes this round's state, retrying transport errors and 5xx until `deadline`. A failed
    /// state is given up, except in the `last` round, where [`Pushgateway::give_up`] says so.
    pub async fn send(&mut self, deadline: &Deadline, last: bool) -> Outcome {
        let started = Instant::now();
        let mut out = Outcome::new("pushgateway");
        out.ok = true;
        // A state leaves its slot only once settled: a round aborted by `.prom.stop[]` mid-send
        // leaves it there, still accounted as waiting, for the final round to supersede.
        if let Some(req) = self.pending.clone() {
            let method = match self.cfg.method {
                PushMethod::Put => reqwest::Method::PUT,
                PushMethod::Post => reqwest::Method::POST,
            };
            let sent = self.call(method, Some(req.body.clone()), deadline).await;
            (out.attempts, out.status) = (sent.attempts, sent.status);
            if !sent.ok() {
                out.ok = false;
                out.message = self.redactor.redact(sent.message());
                out.cause = self.redactor.redact(sent.cause());
            }
            match sent.ending {
                Ending::Delivered { .. } => {
                    self.pending = None;
                    self.common.ledger.lock().sent(req.samples, req.body.len() as u64);
                    (out.samples, out.bytes) = (req.samples, req.body.len() as u64);
                }
                Ending::Refused(_) => {
                    self.pending = None;
                    self.common.ledger.lock().fail(Reason::Http4xx, req.samples);
                }
                // The final state waits for give_up, which says it is not spooled. A Retry-After
                // past the round is not kept: the next round brings a newer state, and asks again.
                Ending::GaveUp { .. } | Ending::Waiting { .. } if last => {}
                Ending::GaveUp { .. } | Ending::Waiting { .. } => {
                    self.pending = None;
                    self.common.ledger.lock().fail(Reason::Deadline, req.samples);
                }
            }
        }
        out.millis = started.elapsed().as_secs_f64() * 1e3;
        out
    }

    /// Deletes the group (on stop, when `delete_on_exit`).
    pub async fn delete(&self, deadline: &Deadline) -> Outcome {
        let started = Instant::now();
        let sent = self.call(reqwest::Method::DELETE, None, deadline).await;
        let mut out = Outcome::new("pushgateway");
        (out.ok, out.status, out.message, out.attempts) = (sent.ok(), sent.status, self.redactor.redact(sent.message()), sent.attempts);
        out.millis = started.elapsed().as_secs_f64() * 1e3;
        out
    }

    async fn call(&self, method: reqwest::Method, body: Option<bytes::Bytes>, deadline: &Deadline) -> retry::Sent {
        let attempt = |_n: u32| {
            let mut req = client::authorise(self.client.request(method.clone(), self.url.clone()), &self.cfg.auth);
            if let Some(b) = &body {
                // Static names and values: nothing to parse, check or copy per request.
                use reqwest::header::{CONTENT_ENCODING, CONTENT_TYPE, HeaderValue};
                req = req.header(CONTENT_TYPE, HeaderValue::from_static(content_type(self.cfg.format))).body(b.clone());
                if self.cfg.compression == PushgatewayCompression::Gzip {
                    req = req.header(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
                }
            }
            let clock = &self.common.clock;
            async move {
                let resp = req.send().await.map_err(|e| retry::transport(&e))?;
                retry::answer(resp, true, clock.wall()).await
            }
        };
        retry::with_retries(attempt, BACKOFF, deadline, &self.common.clock).await
    }

    /// The final state that could not be pushed is given up, and said so: it is not spooled.
    ///
    /// The gateway keeps one state per group and the next run replaces it with its own first
    /// push, seconds after starting; a replayed state would be visible to a scrape only by chance,
    /// so kdbprom does not claim to deliver it. A job whose every run must arrive uses remote
    /// write, whose spool is replayed with the samples' own timestamps.
    pub fn give_up(&mut self) -> Option<String> {
        let req = self.pending.take()?;
        self.common.ledger.lock().fail(Reason::Deadline, req.samples);
        Some(format!(
            "{} sample(s) of the final state not delivered and given up: the Pushgateway keeps only the latest state, \
             so it is not spooled (use remote_write for a job whose every run must arrive)",
            req.samples
        ))
    }
}

impl Pipeline for Pushgateway {
    fn offer(&mut self, round: &Round<'_>) {
        self.take_round(round);
    }

    fn send<'a>(&'a mut self, deadline: &'a Deadline, last: bool) -> Sending<'a> {
        Box::pin(Pushgateway::send(self, deadline, last))
    }

    fn spool(&mut self, _to: Option<&SpoolTo>, _budget: &mut u64) -> Option<String> {
        self.give_up()
    }

    /// DELETE of the group when `delete_on_exit` is set and the final state landed.
    fn on_exit<'a>(&'a mut self, last: &'a Outcome, deadline: &'a Deadline) -> Option<Sending<'a>> {
        (self.cfg.delete_on_exit && last.ok).then(|| Box::pin(self.delete(deadline)) as Sending<'a>)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gzip_round_trips_and_content_types_follow_the_format() {
        let body = "# TYPE m_total counter\nm_total 5\n".repeat(50);
        let mut z = Vec::new();
        gzip(body.as_bytes(), &mut z);
        assert!(z.len() < body.len() / 5 && z[..2] == [0x1f, 0x8b]);
        let mut back = String::new();
        std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&z[..]), &mut back).unwrap();
        assert_eq!(back, body);
        assert_eq!(
            content_type(PushgatewayFormat::Protobuf),
            "application/vnd.google.protobuf; proto=io.prometheus.client.MetricFamily; encoding=delimited"
        );
        assert_eq!(content_type(PushgatewayFormat::Text), "text/plain; version=0.0.4; charset=utf-8");
    }
}
