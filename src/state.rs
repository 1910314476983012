//! The per-user state directory, and the lock that tells two live processes of one job and
//! instance apart.
//!
//! Two processes that push with the same job and instance overwrite each other's Pushgateway group
//! and interleave one set of remote-write series, which Prometheus then rejects as out of order.
//! That happens by accident when a batch job (whose default instance is the host) is started
//! twice at once. Each agent therefore holds an advisory lock on
//! `<state dir>/kdbprom-<job>-<instance>.lock` while it runs; a second one finds it held and warns.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Why a directory kdbprom writes into (the spool's, the textfile's) cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("cannot {op} {}: {source}", .path.display())]
pub struct DirError {
    /// What was being done (`create directory`, `create a file in`, `remove`).
    pub op: &'static str,
    /// The directory or file it was done to.
    pub path: PathBuf,
    /// The operating system's answer.
    #[source]
    pub source: std::io::Error,
}

/// Creates `dir` if it is missing and checks that a file can be created in it (as root, mode bits
/// do not stop writes, so this tries), so a directory that cannot be written is refused at
/// `.prom.init`, not found out at the first push.
pub fn writable(dir: &Path) -> Result<(), DirError> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let err = |op, path: &Path, source| DirError { op, path: path.to_path_buf(), source };
    std::fs::create_dir_all(dir).map_err(|e| err("create directory", dir, e))?;
    let probe = dir.join(format!(".kdbprom-probe-{}-{}.tmp", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    File::options().write(true).create_new(true).open(&probe).map_err(|e| err("create a file in", dir, e))?;
    std::fs::remove_file(&probe).map_err(|e| err("remove", &probe, e))
}

/// `$XDG_STATE_HOME/kdbprom`, else `$HOME/.local/state/kdbprom` (the XDG base directory rules);
/// None when neither variable is set.
///
/// ```
/// let d = kdbprom::state::dir_from(Some("/x/state".into()), Some("/home/u".into()));
/// assert_eq!(d.unwrap(), std::path::PathBuf::from("/x/state/kdbprom"));
/// let d = kdbprom::state::dir_from(None, Some("/home/u".into()));
/// assert_eq!(d.unwrap(), std::path::PathBuf::from("/home/u/.local/state/kdbprom"));
/// ```
pub fn dir_from(xdg_state_home: Option<String>, home: Option<String>) -> Option<PathBuf> {
    match (xdg_state_home.filter(|s| s.starts_with('/')), home.filter(|s| !s.is_empty())) {
        (Some(x), _) => Some(PathBuf::from(x).join("kdbprom")),
        (None, Some(h)) => Some(PathBuf::from(h).join(".local/state/kdbprom")),
        (None, None) => None,
    }
}

/// [`dir_from`] this process's environment.
pub fn dir() -> Option<PathBuf> {
    dir_from(std::env::var("XDG_STATE_HOME").ok(), std::env::var("HOME").ok())
}

/// A held instance lock; released when dropped (or when the process ends, however it ends).
#[derive(Debug)]
pub struct InstanceLock(#[allow(dead_code)] File);

/// What [`lock`] found.
#[derive(Debug)]
pub enum Locked {
    /// This process holds the lock now.
    Held(InstanceLock),
    /// Another live process holds it.
    Busy(PathBuf),
    /// No state directory or it cannot be written: nothing to tell.
    Unknown,
}

/// `s` fit for a file name: characters outside `[A-Za-z0-9_.-]` become `_`.
///
/// ```
/// assert_eq!(kdbprom::state::file_safe("box:5010/é"), "box_5010__");
/// ```
pub fn file_safe(s: &str) -> String {
    s.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect()
}

/// Takes the lock of `job` and `instance` in `dir` (created if missing).
pub fn lock(dir: &std::path::Path, job: &str, instance: &str) -> Locked {
    let path = dir.join(format!("kdbprom-{}-{}.lock", file_safe(job), file_safe(instance)));
    let Ok(file) = std::fs::create_dir_all(dir).and_then(|()| File::options().create(true).truncate(false).write(true).open(&path)) else {
        return Locked::Unknown;
    };
    match file.try_lock() {
        Ok(()) => Locked::Held(InstanceLock(file)),
        Err(std::fs::TryLockError::WouldBlock) => Locked::Busy(path),
        Err(_) => Locked::Unknown,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_of_one_job_and_instance_is_told_and_a_stop_releases_it() {
        let dir = std::env::temp_dir().join(format!("kdbprom-state-{}", std::process::id()));
        let Locked::Held(first) = lock(&dir, "eod", "box") else { panic!("the first takes it") };
        assert!(matches!(lock(&dir, "eod", "box"), Locked::Busy(p) if p.ends_with("kdbprom-eod-box.lock")));
        assert!(matches!(lock(&dir, "eod", "box:5010"), Locked::Held(_)), "another instance is another lock");
        drop(first);
        assert!(matches!(lock(&dir, "eod", "box"), Locked::Held(_)));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
