//! Delivery: one pipeline per target, their slots, the rounds that lend them out, and the retry
//! decision shared by every HTTP target.
//!
//! A pipeline ([`pipeline::Pipeline`]) owns its encoder, queue, client, retry, replay and log
//! state; [`delivery::Delivery::build`] assembles them from the configuration, each in a
//! [`slot::Slot`] with its id, name, accounting and self-metric series. Request building is pure
//! ([`pushgateway::group_path`], [`classify`]); only [`client`] and the `send` functions touch the
//! network. A push never panics past its round and never outlives its deadline. Building the
//! delivery is also where the spool directory is created and probed (parsing the configuration
//! touches no disk for it).
//!
//! # Time
//! What time decides (a round's timestamp, queue expiry at `sample_age_limit_ms`, a receiver's
//! `Retry-After`, the negotiation memory's day) is read on the delivery's [`clock::Clock`], which
//! every pipeline holds in its [`pipeline::Common`]; unit tests move a manual one instead of
//! sleeping. A round's [`deadline::Deadline`] and the flusher's schedule stay on real time: they
//! bound real waiting. A `Retry-After` that outlives the round is kept by the pipeline and
//! reported as [`Outcome::waiting`] (and [`retry::Ending::Waiting`] for the one request).
//!
//! # Who owns a pipeline when
//! - Between rounds: its slot, on the flusher thread. The flusher offers it the round
//!   ([`pipeline::Pipeline::offer`]) and, at stop, asks it to spool and say goodbye.
//! - During a round: the round's task, by value. The slot is empty; its ledger and series stay,
//!   so `.prom.stats[]` (on q's threads, through a clone of the ledger's mutex) and the
//!   self-metrics never wait for a send.
//! - A round ends when every pipeline's `send` returns, at the latest at the round's
//!   [`deadline::Deadline`]; it hands each pipeline back with its outcome, by slot id.
//!   `.prom.stop[]` lowers that deadline and waits: nothing is aborted mid-send, so a pipeline's
//!   `send` only has to keep its accounts at the points where it waits, which it does anyway.
//! - Accounting moves samples only through [`accounting::Ledger`]: `in = sent + failed + queued +
//!   spooled` holds at every moment, whichever thread looks.

pub mod accounting;
pub mod client;
pub mod clock;
pub mod deadline;
pub mod delivery;
pub mod leftovers;
pub mod negotiated;
pub mod pipeline;
pub mod pushgateway;
pub mod queue;
pub mod redact;
pub mod remote_write;
pub mod replay;
pub mod retry;
pub mod retry_after;
pub mod round;
pub mod slot;
pub mod spool;
pub mod textfile;

use std::time::{Duration, Instant};

/// What one target said about one push.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// Target name: `pushgateway`, `textfile`, or the remote-write `name`.
    pub target: String,
    /// Accepted.
    pub ok: bool,
    /// Last HTTP status (0: none, e.g. connection refused or a file target).
    pub status: u16,
    /// The receiver's message or the transport error (at most 1 KiB, never a secret).
    pub message: String,
    /// Samples delivered.
    pub samples: u64,
    /// Body bytes sent.
    pub bytes: u64,
    /// Wall time of the push.
    pub millis: f64,
    /// HTTP attempts made (retries included).
    pub attempts: u32,
    /// Why it failed, without attempt counts (what "logged once per cause" compares); empty when ok.
    pub cause: String,
    /// Set when the receiver's `Retry-After` outlives the round: the target calls it again no
    /// sooner than this, and says why in `message`.
    pub waiting: Option<Waiting>,
}

/// A receiver's `Retry-After` that the round ended inside of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Waiting {
    /// No request to the receiver before this, on the delivery's [`clock::Clock`].
    pub until: Instant,
}

impl Outcome {
    /// An outcome of `target` with nothing sent yet.
    pub fn new(target: &str) -> Outcome {
        Outcome {
            target: target.into(),
            ok: false,
            status: 0,
            message: String::new(),
            samples: 0,
            bytes: 0,
            millis: 0.0,
            attempts: 0,
            cause: String::new(),
            waiting: None,
        }
    }
}

/// What to do after an HTTP answer or a transport error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// 2xx.
    Done,
    /// 5xx, 429 (when enabled), 408, timeouts and connection errors: back off, honouring Retry-After.
    Retry(Option<Duration>),
    /// Any other 4xx: drop and count; retrying cannot help.
    Drop,
}

/// Classifies an HTTP status; `retry_after` is the parsed header, if any.
///
/// ```
/// use kdbprom::push::{classify, Action};
/// use std::time::{Duration, Instant};
/// assert_eq!(classify(204, None, true), Action::Done);
/// assert_eq!(classify(503, Some(Duration::from_secs(2)), true), Action::Retry(Some(Duration::from_secs(2))));
/// assert_eq!(classify(429, None, false), Action::Drop);
/// assert_eq!(classify(409, None, true), Action::Drop);
/// ```
pub fn classify(status: u16, retry_after: Option<Duration>, retry_429: bool) -> Action {
    match status {
        200..=299 => Action::Done,
        429 if retry_429 => Action::Retry(retry_after),
        408 | 500..=599 => Action::Retry(retry_after),
        _ => Action::Drop,
    }
}

/// Keeps at most 1 KiB of a receiver's message, on a character boundary, without trailing space.
pub fn snippet(s: &str) -> String {
    redact::cut_on_char(s, 1024).trim().to_string()
}
