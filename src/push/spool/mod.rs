//! A target's on-disk spool: what it could not deliver when the q process stopped, written as one
//! file, and replayed by the next run of the same `job` on the same host.
//!
//! # Guarantees
//! - **Whole files only.** [`write()`] writes `<name>.tmp`, fsyncs it, renames it to `<name>` and
//!   fsyncs the directory. A process killed at any point (SIGKILL included) leaves either a whole,
//!   checksummed `.spool` file or a `.tmp` leftover that [`scan`] never reads.
//! - **Bounded.** A file never exceeds `max_bytes`; when the entries do not fit, the *oldest* are
//!   left out and counted ([`Written::dropped_entries`], [`Written::dropped_samples`]), so the
//!   newest state survives.
//! - **Verified before use.** [`scan`] returns only files whose length and both checksums are
//!   right. Corrupt, truncated, unknown-version or foreign-format files carrying the `.spool`
//!   extension are renamed to `<name>.bad`: reported once, never replayed, never deleted.
//! - **Matched by content.** A file belongs to the job and host its header names, never to what
//!   its file name says. Files of another job or host are left alone (only their header is read,
//!   so a shared directory costs little). Not the instance: a batch job's instance may change
//!   between runs, and a replayed body keeps the labels it was encoded with anyway.
//! - **Replayed once.** [`scan`] returns a file with an exclusive `flock` held on it
//!   ([`SpoolFile::lock`]) and skips files another live process holds, so two processes of one job
//!   starting together never both replay a file. The lock goes with the process, however it ends.
//!
//! # File name
//! `kdbprom-<target>-<created_ms>-<pid>-<seq>.spool`, where `<target>` is the target name with
//! every byte outside `[A-Za-z0-9_.-]` replaced by `_` (cut at 96 bytes), and `<seq>` a
//! process-wide counter, so two writes in one millisecond never collide. The name is for people;
//! nothing is decided from it but the `.spool` extension.
//!
//! # Format (version 2, all integers little-endian)
//! ```text
//! offset  size  field
//!      0     8  magic "KDBPSPL\0"
//!      8     2  version u16 = 1
//!     10     1  kind u8: 1 remote-write 1.0, 2 Pushgateway (3 is reserved for remote-write 2.0)
//!     11     1  reserved u8 = 0
//!     12     8  file_len u64: length of the whole file, this field and both checksums included
//!     20     4  header_len u32 = H: bytes from offset 0 to the header checksum
//!     24        job       u32 length + UTF-8
//!               instance  u32 length + UTF-8
//!               host      u32 length + UTF-8 (version 2; absent in version 1)
//!               target    u32 length + UTF-8
//!               created_ms i64
//!               count u32: number of entries
//!      H     4  header CRC32 (crc32fast, IEEE) of bytes [0, H)
//!    H+4        count × entry: samples u64, ts_ms i64 (newest sample), body_len u32, body
//! file_len-4 4  file CRC32 of bytes [0, file_len - 4)
//! ```
//! Version 1 (release 2) has no `host`; its files are read and matched by job and instance, as
//! release 2 did. Compatibility promise for later versions: bytes 0..24 keep this layout, and the
//! header still starts with `job`, `instance` and `host` and ends with its CRC at `header_len`. So
//! a reader of any version can tell whose file it is, and leaves another job's or host's newer
//! files alone instead of setting them aside.
//!
//! # Why a hand-written format
//! File-backed queue crates (`yaque`, `queue-file`) keep an append-only log that is consumed
//! record by record. The spool needs something else: a whole-file unit that appears atomically
//! (rename) or not at all; a header naming job, host, instance and target so a shared directory can hold
//! several jobs and a file can be matched and set aside as one; and a size cap applied *before*
//! writing that keeps the newest entries and reports exactly what it dropped, so the sample
//! accounting stays exact. Neither gives all three, and the format costs about 150 lines (write
//! and verified read) with `crc32fast` doing the checksums. The separate header checksum lets
//! [`scan`] decide ownership from a few hundred bytes without reading (or trusting) another job's
//! file.
//!
//! # Reading garbage
//! Every length is checked against the bytes actually left before it is used; nothing is
//! allocated beyond the file's size; a file of any content never panics [`scan`].

mod dir;
mod format;
#[cfg(test)]
mod tests;

pub use dir::{check_dir, read, remove, scan, write};

use bytes::Bytes;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;

/// The first 8 bytes of every spool file.
pub const MAGIC: [u8; 8] = *b"KDBPSPL\0";
/// The format version this module writes (it reads 1 too).
pub const VERSION: u16 = 2;
/// The extension of a finished spool file (`.tmp` and `.bad` follow it for the other states).
pub const EXTENSION: &str = "spool";

/// Fixed prefix: magic, version, kind, reserved, file_len, header_len.
const PREFIX_LEN: usize = 24;
/// Smallest version-2 header: prefix, four empty strings, created_ms, count.
const MIN_HEADER_LEN: usize = PREFIX_LEN + 4 * 4 + 8 + 4;
/// An entry without its body: samples, ts_ms, body_len.
const ENTRY_OVERHEAD: u64 = 8 + 8 + 4;
/// Longest target part of a file name (file names are limited to 255 bytes).
const MAX_NAME_TARGET: usize = 96;

/// Process-wide sequence for file names.
static SEQ: AtomicU64 = AtomicU64::new(0);

/// What kind of body a file holds (decides how it is replayed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum BodyKind {
    /// Snappy-compressed `prometheus.WriteRequest` bodies, replayed with their own timestamps.
    RemoteWrite1 = 1,
    /// Text exposition bodies for the Pushgateway, replayed as the last state.
    Pushgateway = 2,
    /// Remote-write 2.0 request bodies (snappy-compressed `io.prometheus.write.v2.Request`).
    RemoteWrite2 = 3,
}

impl BodyKind {
    /// The kind stored as `b`, if this version knows it.
    pub fn from_u8(b: u8) -> Option<BodyKind> {
        match b {
            1 => Some(BodyKind::RemoteWrite1),
            2 => Some(BodyKind::Pushgateway),
            3 => Some(BodyKind::RemoteWrite2),
            _ => None,
        }
    }
}

/// Whose file it is and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The `job` of the run that wrote it.
    pub job: String,
    /// The `instance` of the run that wrote it (its bodies carry it as a label).
    pub instance: String,
    /// The host that wrote it (empty in version-1 files).
    pub host: String,
    /// The target name (`pushgateway`, or a remote-write `name`).
    pub target: String,
    /// How the bodies are replayed.
    pub kind: BodyKind,
    /// Wall-clock time of the write (ms since the epoch); orders files of one job and instance.
    pub created_ms: i64,
}

/// One request body as it would have been sent (already snappy-compressed protobuf, or text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The body, byte for byte.
    pub body: Bytes,
    /// Samples in it.
    pub samples: u64,
    /// Timestamp of its newest sample (ms).
    pub ts_ms: i64,
}

impl Entry {
    /// Bytes this entry takes in a file.
    pub fn encoded_len(&self) -> u64 {
        ENTRY_OVERHEAD + self.body.len() as u64
    }
}

/// What [`write()`] did. `entries == 0` means no file was written (`path` is empty).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Written {
    /// The file written.
    pub path: PathBuf,
    /// Its size.
    pub bytes: u64,
    /// Entries in it.
    pub entries: usize,
    /// Samples in it.
    pub samples: u64,
    /// Oldest entries left out to stay within `max_bytes`.
    pub dropped_entries: usize,
    /// Samples in those.
    pub dropped_samples: u64,
}

/// Why the spool could not do what was asked. Texts name the path, never body bytes.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The file system refused: permissions, a missing or non-directory path, a full disk
    /// ([`SpoolError::is_no_space`]), a read-only file system, …
    #[error("spool: cannot {op} {}: {source}", .path.display())]
    Io {
        /// What was being done (`create directory`, `write`, `fsync`, `rename`, …).
        op: &'static str,
        /// The file or directory it was done to.
        path: PathBuf,
        /// The operating system's answer.
        #[source]
        source: io::Error,
    },
    /// A file that is not a whole, verified spool file (from [`read`]).
    #[error("spool: {}: {reason}", .path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl SpoolError {
    fn io(op: &'static str, path: &Path, source: io::Error) -> SpoolError {
        SpoolError::Io { op, path: path.to_path_buf(), source }
    }

    /// The file or directory concerned.
    pub fn path(&self) -> &Path {
        match self {
            SpoolError::Io { path, .. } | SpoolError::Corrupt { path, .. } => path,
        }
    }

    /// The disk (or the user's quota) is full: ENOSPC or EDQUOT.
    pub fn is_no_space(&self) -> bool {
        match self {
            SpoolError::Io { source, .. } => matches!(source.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT)),
            SpoolError::Corrupt { .. } => false,
        }
    }
}

/// Whose files a [`scan`] takes: this job on this host (version-1 files: this job and instance).
#[derive(Debug, Clone, Copy)]
pub struct Owner<'a> {
    /// The job.
    pub job: &'a str,
    /// The host name.
    pub host: &'a str,
    /// The instance, for version-1 files only.
    pub instance: &'a str,
}

/// The spool files [`scan`] found for one job and host.
#[derive(Debug, Default)]
pub struct Scan {
    /// Whole, verified files, oldest first (`created_ms`, then file name).
    pub files: Vec<SpoolFile>,
    /// Files renamed to `<name>.bad` by this scan: the new path and why.
    pub set_aside: Vec<(PathBuf, String)>,
    /// This job's files another live process is replaying now (it holds their lock).
    pub busy: Vec<PathBuf>,
    /// What could not be looked at (the directory unreadable, a file unreadable, a rename refused).
    pub errors: Vec<String>,
    /// `.tmp` leftovers of writers killed mid-write, older than [`STALE_TMP`], removed by this scan.
    pub swept: Vec<PathBuf>,
}

/// A `.tmp` file this old was left by a writer that died: a live one writes, fsyncs and renames its
/// file within a round (seconds), on any host sharing the directory.
pub const STALE_TMP: std::time::Duration = std::time::Duration::from_secs(3600);

/// One whole, verified spool file.
#[derive(Debug, Clone)]
pub struct SpoolFile {
    /// Where it is.
    pub path: PathBuf,
    /// Whose it is.
    pub header: Header,
    /// Its entries, oldest first; the bodies share one buffer, the file's contents.
    pub entries: Vec<Entry>,
    /// Its size.
    pub bytes: u64,
    /// The exclusive lock [`scan`] holds on it until this (or a clone) is dropped; None from [`read`].
    pub lock: Option<std::sync::Arc<File>>,
}

/// `target` made safe for a file name: bytes outside `[A-Za-z0-9_.-]` become `_`.
pub fn sanitise(target: &str) -> String {
    target
        .bytes()
        .take(MAX_NAME_TARGET)
        .map(|b| if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-') { b as char } else { '_' })
        .collect()
}
