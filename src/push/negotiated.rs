//! What a remote-write receiver was found to speak, remembered per URL in the spool directory, so
//! a batch job started every minute does not probe a 1.0-only receiver with a wasted 2.0 request
//! (and a log line) on every run.
//!
//! Only "takes 1.0 only" is remembered: a 2.0 receiver answers the probe itself at no cost. The
//! memory is fresh for a day; after that, or for another URL (a config change), the target probes
//! again. Reading or writing it never fails a push: a lost memory costs one probe.

use std::path::{Path, PathBuf};

/// The file, in the spool directory.
pub const FILE: &str = "kdbprom-negotiated.json";
/// How long a fallback is trusted before the receiver is probed again: a day.
pub const FRESH_MS: i64 = 86_400_000;

/// The remembered outcomes of one spool directory.
#[derive(Debug, Clone)]
pub struct Memory {
    path: PathBuf,
}

impl Memory {
    /// The memory kept in `dir`.
    pub fn at(dir: &Path) -> Memory {
        Memory { path: dir.join(FILE) }
    }

    fn read(&self) -> serde_json::Map<String, serde_json::Value> {
        std::fs::read(&self.path)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| match v {
                serde_json::Value::Object(m) => Some(m),
                _ => None,
            })
            .unwrap_or_default()
    }

    /// True when `url` was found to take only remote-write 1.0 less than [`FRESH_MS`] before `now_ms`.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("kdbprom-negotiated-doc-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// let m = kdbprom::push::negotiated::Memory::at(&dir);
    /// assert!(!m.only_v1("http://a/w", 1_000));
    /// m.remember_v1("http://a/w", 1_000);
    /// assert!(m.only_v1("http://a/w", 1_000 + 3_600_000) && !m.only_v1("http://b/w", 1_000));
    /// assert!(!m.only_v1("http://a/w", 1_000 + 86_400_000), "re-probed after a day");
    /// std::fs::remove_dir_all(dir).unwrap();
    /// ```
    pub fn only_v1(&self, url: &str, now_ms: i64) -> bool {
        let m = self.read();
        let Some(e) = m.get(url) else { return false };
        let at = e.get("at_ms").and_then(serde_json::Value::as_i64).unwrap_or(i64::MIN);
        e.get("protocol").and_then(serde_json::Value::as_str) == Some("1.0") && (0..FRESH_MS).contains(&now_ms.saturating_sub(at))
    }

    /// Remembers that `url` takes only 1.0, as of `now_ms`; written whole (a temporary file and a
    /// rename), keeping the other URLs' entries.
    pub fn remember_v1(&self, url: &str, now_ms: i64) {
        let mut m = self.read();
        m.insert(url.into(), serde_json::json!({"protocol": "1.0", "at_ms": now_ms}));
        let tmp = self.path.with_extension(format!("json.tmp.{}", std::process::id()));
        let body = serde_json::Value::Object(m).to_string();
        if std::fs::write(&tmp, body).and_then(|()| std::fs::rename(&tmp, &self.path)).is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
    }
}
