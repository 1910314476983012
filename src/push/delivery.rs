//! Where pushes go, and when: the configured targets in their slots, assembled from the
//! configuration in one place, with what the previous run spooled put back in their queues.
//!
//! This is where the spool directory is first touched (created if missing, and probed), not when
//! the configuration is parsed: parsing stays free of side effects, and the directory is checked
//! by the code that will write into it.

use super::accounting::Ledger;
use super::client::ClientError;
use super::clock::Clock;
use super::leftovers::SpoolTo;
use super::negotiated::Memory;
use super::pipeline::{Common, Pipeline};
use super::replay::Replay;
use super::slot::Slot;
use super::{pushgateway, remote_write, textfile};
use crate::config::{Config, ConfigError, Spool};
use std::time::Duration;
use thiserror::Error;

/// Why the targets could not be built.
#[derive(Debug, Clone, PartialEq, Error)]
pub enum BuildError {
    /// A target's HTTP client could not be built (TLS files, URL).
    #[error(transparent)]
    Client(#[from] ClientError),
    /// A configured place cannot be used: an explicit `spool.dir` that cannot be written.
    #[error(transparent)]
    Config(#[from] ConfigError),
}

/// The spool after probing its directory (created if missing): an explicit one that cannot be
/// written refuses init, naming the key; the default place only warns, and there is no spool.
fn usable(spool: Option<&Spool>) -> Result<Option<&Spool>, ConfigError> {
    let Some(sp) = spool else { return Ok(None) };
    match (crate::state::writable(&sp.dir), sp.explicit) {
        (Ok(()), _) => Ok(Some(sp)),
        (Err(e), true) => {
            Err(ConfigError::Invalid { key: "spool.dir".into(), why: format!("cannot write to {}: {}", sp.dir.display(), e.source) })
        }
        // The default place: a process without a usable home still runs, without a spool.
        (Err(e), false) => {
            let why = if sp.dir.as_os_str().is_empty() { "neither XDG_STATE_HOME nor HOME is set".into() } else { e.to_string() };
            crate::warn!("no spool: the default spool directory is unusable ({why}); set spool.dir, or spool.dir \"\" to say none");
            Ok(None)
        }
    }
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
    /// this host spooled for it, after probing the spool directory ([`BuildError::Config`] for an
    /// explicit one that cannot be written). With none configured,
    /// nothing is pushed or written anywhere (an HDB's working directory is its database root):
    /// this says so once, and `.prom.text[]` and `/metrics` still answer.
    pub fn build(c: &Config, instance: &str) -> Result<Delivery, BuildError> {
        Delivery::build_with_clock(c, instance, Clock::System)
    }

    /// [`Delivery::build`] with every pipeline reading the time on `clock`.
    pub fn build_with_clock(c: &Config, instance: &str, clock: Clock) -> Result<Delivery, BuildError> {
        let spool = usable(c.spool.as_ref())?.map(|s| {
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_spool_directory_is_created_and_probed_when_delivery_is_built() {
        let base = std::env::temp_dir().join(format!("kdbprom-delivery-spool-{}", std::process::id()));
        let dir = base.join("a/b");
        let c = Config::from_json(&json!({ "spool": { "dir": dir } })).unwrap();
        assert!(!base.exists(), "parsing touches nothing");
        let d = Delivery::build(&c, "i").unwrap();
        assert_eq!(d.spool.as_ref().map(|(to, max)| (to.dir.clone(), *max)), Some((dir.clone(), 64 << 20)));
        assert!(dir.is_dir());
        // The probe file is gone again.
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&base).unwrap();
        // An explicit directory that cannot be written refuses init, naming the key.
        let c = Config::from_json(&json!({"spool": {"dir": "/dev/null/spool"}})).unwrap();
        assert_eq!(
            Delivery::build(&c, "i").err().map(|e| e.to_string()).as_deref(),
            Some("config key spool.dir: cannot write to /dev/null/spool: Not a directory (os error 20)")
        );
        // The default place only warns: no spool, no refusal.
        let c = Config { spool: Some(Spool { dir: "/dev/null/kdbprom".into(), max_bytes: 4096, explicit: false }), ..c };
        assert!(Delivery::build(&c, "i").map(|d| d.spool.is_none()).unwrap_or(false));
    }
}
