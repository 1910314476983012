//! Where pushes go, and when: the configured targets in their slots, assembled from the
//! configuration in one place, with what the previous run spooled put back in their queues.

use super::accounting::Ledger;
use super::client::ClientError;
use super::clock::Clock;
use super::leftovers::SpoolTo;
use super::negotiated::Memory;
use super::pipeline::{Common, Pipeline};
use super::replay::Replay;
use super::slot::Slot;
use super::{pushgateway, remote_write, textfile};
use crate::config::Config;
use std::time::Duration;
use thiserror::Error;

/// Why the targets could not be built.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum BuildError {
    /// A target's HTTP client could not be built (TLS files, URL).
    #[error(transparent)]
    Client(#[from] ClientError),
}

/// Every target and the schedule of their rounds.
pub struct Delivery {
    /// Every target, in the order outcomes are reported (the textfile, the Pushgateway, then
    /// remote write in configuration order); a slot's id is its index here.
    pub slots: Vec<Slot>,
    /// Labels on every remote-write series: static labels, job, instance.
    pub rw_labels: Vec<(String, String)>,
    /// Push interval.
    pub interval: Duration,
    /// Budget of a push round (retries stop then; what is left waits for the next round).
    pub round_deadline: Duration,
    /// Budget of `.prom.stop[]`: final push and spool.
    pub exit_deadline: Duration,
    /// Where what the final push could not deliver goes, and the byte cap of one stop's files.
    pub spool: Option<(SpoolTo, u64)>,
    /// The time every pipeline decides by, and rounds are stamped with.
    pub clock: Clock,
}

impl Delivery {
    /// Builds the targets of `c` for `instance`, each with what the previous run of the job on
    /// this host spooled for it. With none configured,
    /// nothing is pushed or written anywhere (an HDB's working directory is its database root):
    /// this says so once, and `.prom.text[]` and `/metrics` still answer.
    pub fn build(c: &Config, instance: &str) -> Result<Delivery, BuildError> {
        Delivery::build_with_clock(c, instance, Clock::System)
    }

    /// [`Delivery::build`] with every pipeline reading the time on `clock`.
    pub fn build_with_clock(c: &Config, instance: &str, clock: Clock) -> Result<Delivery, BuildError> {
        let spool = c.spool.as_ref().map(|s| {
            let to = SpoolTo { dir: s.dir.clone(), job: c.job.clone(), instance: instance.into(), host: crate::builtin::local_host() };
            (to, s.max_bytes)
        });
        let mut replay = spool.as_ref().map(|(to, _)| Replay::scan(&to.dir, to.owner())).unwrap_or_default();
        if c.textfile.is_none() && c.pushgateway.is_none() && c.remote_write.is_empty() {
            crate::info!(
                "no target configured (pushgateway, remote_write, textfile): nothing is pushed or written; .prom.text[] and /metrics still answer"
            );
        }
        let mut slots = Vec::new();
        let mut add = |name: &str, make: &mut dyn FnMut(Common) -> Result<Box<dyn Pipeline>, BuildError>| -> Result<(), BuildError> {
            let ledger = Ledger::default();
            let pipeline = make(Common::new(name, ledger.clone(), clock.clone()))?;
            slots.push(Slot::new(slots.len(), name, ledger, pipeline));
            Ok(())
        };
        if let Some(p) = &c.textfile {
            let file = crate::config::textfile_path(p, &c.job, instance);
            add("textfile", &mut |common| Ok(Box::new(textfile::Textfile::new(common, file.clone(), &c.job, instance))))?;
        }
        if let Some(p) = &c.pushgateway {
            add("pushgateway", &mut |common| Ok(Box::new(pushgateway::Pushgateway::new(common, p.clone(), &c.job, instance)?)))?;
        }
        for (i, r) in c.remote_write.iter().enumerate() {
            let memory = spool.as_ref().map(|(to, _)| Memory::at(&to.dir));
            add(&r.name, &mut |common| Ok(Box::new(remote_write::RemoteWrite::new(common, r.clone(), i, &mut replay, memory.clone())?)))?;
        }
        replay.report_unclaimed();
        let mut rw_labels: Vec<(String, String)> = c.labels.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        rw_labels.push(("job".into(), c.job.clone()));
        rw_labels.push(("instance".into(), instance.into()));
        Ok(Delivery {
            slots,
            rw_labels,
            interval: Duration::from_millis(c.interval_ms),
            round_deadline: Duration::from_millis(c.interval_ms.clamp(1_000, 30_000)),
            exit_deadline: Duration::from_millis(c.exit_deadline_ms),
            spool,
            clock,
        })
    }

    /// Every target's name and accounting, in slot order (for `.prom.stats[]` on q's threads).
    pub fn ledgers(&self) -> Vec<(String, Ledger)> {
        self.slots.iter().map(|s| (s.name.clone(), s.ledger.clone())).collect()
    }
}
