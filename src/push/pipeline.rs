//! What every kind of target is to the flusher: a pipeline it offers rounds to, lends out by
//! value to send, and asks to spool and say goodbye when the process stops.
//!
//! Adding a kind of target is a file in `push/` implementing [`Pipeline`] and one line in
//! [`super::delivery::Delivery::build`]. A pipeline owns its encoder, queue, client, retry and
//! replay state; the name, accounting and self-metric series it shares with the flusher live in
//! its [`super::slot::Slot`].

use super::Outcome;
use super::accounting::Ledger;
use super::clock::Clock;
use super::deadline::Deadline;
use super::leftovers::SpoolTo;
use super::round::Round;
use std::future::Future;
use std::pin::Pin;

/// A pipeline's send in progress, borrowing the pipeline (and the deadline) until it ends.
pub type Sending<'a> = Pin<Box<dyn Future<Output = Outcome> + Send + 'a>>;

/// One kind of target's delivery.
///
/// Who owns it when: between rounds its slot holds it and only the flusher thread touches it
/// ([`Pipeline::offer`], [`Pipeline::spool`]); during a round a task of the round owns it by value
/// and [`Pipeline::send`] runs there; the round hands it back with its outcome. Nothing else ever
/// reaches it, so it needs no lock, and `send` ends at the round's [`Deadline`], which
/// `.prom.stop[]` may lower but never cancels.
pub trait Pipeline: Send {
    /// Takes this round's state (encoding it into the pipeline's queue), on the flusher thread.
    fn offer(&mut self, round: &Round<'_>);

    /// Delivers what it holds until it is all sent or `deadline` passes. In the `last` round
    /// (`.prom.stop[]`), what cannot be sent stays for [`Pipeline::spool`] instead of being given up.
    fn send<'a>(&'a mut self, deadline: &'a Deadline, last: bool) -> Sending<'a>;

    /// After the final round: writes what is left to the spool within `budget` bytes (lowering
    /// it by what was written), or gives it up; a note for the final outcome.
    fn spool(&mut self, to: Option<&SpoolTo>, budget: &mut u64) -> Option<String>;

    /// After the final round and the spool: a last request of its own (the Pushgateway's DELETE
    /// of its group), given the final round's outcome; None when there is none.
    fn on_exit<'a>(&'a mut self, _last: &'a Outcome, _deadline: &'a Deadline) -> Option<Sending<'a>> {
        None
    }
}

/// What a pipeline shares with its slot and the delivery: the target's name, its accounting and
/// the clock it decides by.
#[derive(Debug, Clone)]
pub struct Common {
    /// Unique name: `pushgateway`, `textfile`, or the remote-write `name`.
    pub name: String,
    /// Where its samples went, shared with `.prom.stats[]` and the self-metrics.
    pub ledger: Ledger,
    /// The delivery's clock: ages, `Retry-After` waits and the negotiation memory are read on it.
    pub clock: Clock,
}

impl Common {
    /// A target named `name`, accounting into `ledger`, reading the time on `clock`.
    pub fn new(name: &str, ledger: Ledger, clock: Clock) -> Common {
        Common { name: name.into(), ledger, clock }
    }
}
