//! A target's place in the delivery: its id, name and accounting, which the flusher and
//! `.prom.stats[]` read at any time, and its pipeline, which a round borrows by value. (Its
//! self-metric series are the flusher's, by slot id: delivery knows nothing of telemetry.)

use super::Outcome;
use super::accounting::Ledger;
use super::pipeline::Pipeline;

/// One configured target.
pub struct Slot {
    /// Its index in the delivery: rounds report by it, never by name.
    pub id: usize,
    /// Unique name: `pushgateway`, `textfile`, or the remote-write `name`.
    pub name: String,
    /// Where its samples went (the pipeline holds a clone and does the moving).
    pub ledger: Ledger,
    /// The failure last written to stderr, so each cause is logged once, not every round.
    logged: Option<String>,
    /// None while a round has it.
    pipeline: Option<Box<dyn Pipeline>>,
}

impl Slot {
    /// A slot holding `pipeline`.
    pub fn new(id: usize, name: &str, ledger: Ledger, pipeline: Box<dyn Pipeline>) -> Slot {
        Slot { id, name: name.into(), ledger, logged: None, pipeline: Some(pipeline) }
    }

    /// The pipeline, when no round has it.
    pub fn pipeline(&mut self) -> Option<&mut (dyn Pipeline + 'static)> {
        self.pipeline.as_deref_mut()
    }

    /// Lends the pipeline to a round.
    pub fn take(&mut self) -> Option<Box<dyn Pipeline>> {
        self.pipeline.take()
    }

    /// Takes the pipeline back from a round.
    pub fn put_back(&mut self, p: Box<dyn Pipeline>) {
        debug_assert!(self.pipeline.is_none(), "a slot holds one pipeline");
        self.pipeline = Some(p);
    }

    /// Counts a finished push and logs a change of cause (a failure once, a recovery once).
    pub fn finish(&mut self, o: &Outcome) {
        {
            let mut c = self.ledger.lock();
            if o.ok {
                c.pushes_ok += 1;
            } else {
                c.pushes_failed += 1;
            }
        }
        let cause = (!o.ok).then(|| {
            let why = if o.cause.is_empty() { &o.message } else { &o.cause };
            if o.status > 0 { format!("HTTP {}: {why}", o.status) } else { why.clone() }
        });
        if cause == self.logged {
            return;
        }
        match &cause {
            Some(_) => crate::warn!("push to {} failed: {}", self.name, o.message),
            None => crate::info!("push to {} succeeds again", self.name),
        }
        self.logged = cause;
    }
}
