//! One format for every line kdbprom writes on stderr: UTC time, `kdbprom`, a level, the message.
//!
//! q's own console has no timestamps, so a line in a batch job's log must carry its time to be
//! matched with a receiver's logs; the level lets a log shipper route it. One `write` per line,
//! so lines of two threads never interleave.

use std::fmt;
use std::io::Write;
use std::time::SystemTime;

/// How serious a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Data was or will be lost, or a configured feature cannot work.
    Error,
    /// Something an operator should look at; delivery goes on.
    Warn,
    /// A state change worth knowing (a target works again, a protocol was chosen).
    Info,
}

impl Level {
    /// The level as printed.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Error => "ERROR",
            Level::Warn => "WARN",
            Level::Info => "INFO",
        }
    }
}

/// The line for `msg` at `now`, without its newline.
///
/// ```
/// use kdbprom::log::{Level, format};
/// let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_796_670_914_123);
/// assert_eq!(format(t, Level::Warn, format_args!("push to {} failed", "mimir")),
///            "2026-12-07T19:15:14.123Z kdbprom WARN push to mimir failed");
/// ```
pub fn format(now: SystemTime, level: Level, msg: fmt::Arguments<'_>) -> String {
    format!("{} kdbprom {} {msg}", humantime::format_rfc3339_millis(now), level.as_str())
}

/// Writes one line on stderr (errors writing it are ignored: there is nowhere else to say so).
pub fn write(level: Level, msg: fmt::Arguments<'_>) {
    let mut line = format(SystemTime::now(), level, msg);
    line.push('\n');
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// Logs at [`Level::Error`]: `error!("cannot write {}", path)`.
#[macro_export]
macro_rules! error {
    ($($t:tt)*) => { $crate::log::write($crate::log::Level::Error, format_args!($($t)*)) };
}

/// Logs at [`Level::Warn`].
#[macro_export]
macro_rules! warn {
    ($($t:tt)*) => { $crate::log::write($crate::log::Level::Warn, format_args!($($t)*)) };
}

/// Logs at [`Level::Info`].
#[macro_export]
macro_rules! info {
    ($($t:tt)*) => { $crate::log::write($crate::log::Level::Info, format_args!($($t)*)) };
}
