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

use bytes::Bytes;
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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
pub enum Kind {
    /// Snappy-compressed `prometheus.WriteRequest` bodies, replayed with their own timestamps.
    RemoteWrite1 = 1,
    /// Text exposition bodies for the Pushgateway, replayed as the last state.
    Pushgateway = 2,
    /// Remote-write 2.0 request bodies (snappy-compressed `io.prometheus.write.v2.Request`).
    RemoteWrite2 = 3,
}

impl Kind {
    /// The kind stored as `b`, if this version knows it.
    pub fn from_u8(b: u8) -> Option<Kind> {
        match b {
            1 => Some(Kind::RemoteWrite1),
            2 => Some(Kind::Pushgateway),
            3 => Some(Kind::RemoteWrite2),
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
    pub kind: Kind,
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
}

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

/// Creates `dir` if it is missing and checks that a file can be created in it (as root, mode bits
/// do not stop writes, so this tries). For `.prom.init`: an error names the directory.
pub fn check_dir(dir: &Path) -> Result<(), SpoolError> {
    fs::create_dir_all(dir).map_err(|e| SpoolError::io("create directory", dir, e))?;
    let probe = dir.join(format!(".kdbprom-probe-{}-{}.tmp", std::process::id(), SEQ.fetch_add(1, Ordering::Relaxed)));
    OpenOptions::new().write(true).create_new(true).open(&probe).map_err(|e| SpoolError::io("create a file in", dir, e))?;
    fs::remove_file(&probe).map_err(|e| SpoolError::io("remove", &probe, e))
}

/// Writes `entries` (oldest first) as one file in `dir`, creating `dir` if it is missing.
///
/// If the file would exceed `max_bytes`, the oldest entries are left out (counted in `dropped_*`)
/// so the newest state survives; if nothing fits, or there is nothing, no file is written and
/// everything is dropped. Crash-safe: a `.tmp` file is written, fsynced, renamed to its final name
/// and the directory fsynced. Returns `Err` only for I/O failure (a full disk:
/// [`SpoolError::is_no_space`]); then nothing of this call remains on disk.
pub fn write(dir: &Path, header: &Header, entries: &[Entry], max_bytes: u64) -> Result<Written, SpoolError> {
    // Which newest entries fit: a suffix, so the kept ones stay contiguous and in order.
    let strings = [header.job.as_bytes(), header.instance.as_bytes(), header.host.as_bytes(), header.target.as_bytes()];
    let header_len = MIN_HEADER_LEN as u64 + strings.iter().map(|s| s.len() as u64).sum::<u64>();
    let fits_header = header_len <= u32::MAX as u64 && strings.iter().all(|s| s.len() <= u32::MAX as usize);
    let mut file_len = header_len + 4 + 4;
    let mut keep_from = entries.len();
    if fits_header && file_len <= max_bytes {
        for (i, e) in entries.iter().enumerate().rev() {
            let len = file_len.saturating_add(e.encoded_len());
            if len > max_bytes || e.body.len() > u32::MAX as usize || entries.len() - i > u32::MAX as usize {
                break;
            }
            file_len = len;
            keep_from = i;
        }
    }
    let (dropped, kept) = entries.split_at(keep_from);
    let mut out = Written { dropped_entries: dropped.len(), dropped_samples: samples(dropped), ..Written::default() };
    if kept.is_empty() {
        return Ok(out);
    }

    fs::create_dir_all(dir).map_err(|e| SpoolError::io("create directory", dir, e))?;
    let (path, tmp, file) = create_tmp(dir, header)?;
    let hdr = encode_header(header, file_len, header_len as u32, kept.len() as u32);
    let res = write_body(file, &hdr, kept).map_err(|e| SpoolError::io("write", &tmp, e)).and_then(|f| {
        f.sync_all().map_err(|e| SpoolError::io("fsync", &tmp, e))?;
        drop(f);
        fs::rename(&tmp, &path).map_err(|e| SpoolError::io("rename", &tmp, e))
    });
    if let Err(e) = res {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    if let Err(e) = sync_dir(dir) {
        // The file is whole but might not survive a power cut: take it back, so an error always
        // means "not spooled" and the caller's accounting holds.
        let _ = fs::remove_file(&path);
        return Err(e);
    }
    out.path = path;
    out.bytes = file_len;
    out.entries = kept.len();
    out.samples = samples(kept);
    Ok(out)
}

/// Samples in `entries` (saturating: counts come from callers and files, never trusted to fit).
fn samples(entries: &[Entry]) -> u64 {
    entries.iter().fold(0u64, |n, e| n.saturating_add(e.samples))
}

/// Reserves a fresh final name and creates its `.tmp` file (never replacing an existing file).
fn create_tmp(dir: &Path, header: &Header) -> Result<(PathBuf, PathBuf, File), SpoolError> {
    let target = sanitise(&header.target);
    let pid = std::process::id();
    let mut last = None;
    for _ in 0..64 {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed);
        let name = format!("kdbprom-{target}-{}-{pid}-{seq}.{EXTENSION}", header.created_ms);
        let path = dir.join(&name);
        let tmp = dir.join(format!("{name}.tmp"));
        // A pid reused after a reboot with the clock set back could meet an old name.
        if path.symlink_metadata().is_ok() {
            continue;
        }
        match OpenOptions::new().write(true).create_new(true).open(&tmp) {
            Ok(f) => return Ok((path, tmp, f)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some((tmp, e)),
            Err(e) => return Err(SpoolError::io("create", &tmp, e)),
        }
    }
    let (tmp, e) = last.unwrap_or_else(|| (dir.to_path_buf(), io::Error::from(io::ErrorKind::AlreadyExists)));
    Err(SpoolError::io("create", &tmp, e))
}

fn encode_header(h: &Header, file_len: u64, header_len: u32, count: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(header_len as usize + 4);
    b.extend_from_slice(&MAGIC);
    b.extend_from_slice(&VERSION.to_le_bytes());
    b.push(h.kind as u8);
    b.push(0);
    b.extend_from_slice(&file_len.to_le_bytes());
    b.extend_from_slice(&header_len.to_le_bytes());
    for s in [&h.job, &h.instance, &h.host, &h.target] {
        b.extend_from_slice(&(s.len() as u32).to_le_bytes());
        b.extend_from_slice(s.as_bytes());
    }
    b.extend_from_slice(&h.created_ms.to_le_bytes());
    b.extend_from_slice(&count.to_le_bytes());
    debug_assert_eq!(b.len(), header_len as usize);
    let crc = crc32fast::hash(&b);
    b.extend_from_slice(&crc.to_le_bytes());
    b
}

/// A writer that checksums what passes through it.
struct Crc<W> {
    inner: W,
    crc: crc32fast::Hasher,
}

impl<W: Write> Write for Crc<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.crc.update(&buf[..n]);
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes header (with its CRC), entries and the file CRC; returns the file, flushed.
fn write_body(file: File, hdr: &[u8], entries: &[Entry]) -> io::Result<File> {
    let mut w = Crc { inner: BufWriter::with_capacity(256 << 10, file), crc: crc32fast::Hasher::new() };
    w.write_all(hdr)?;
    for e in entries {
        let mut fixed = [0u8; ENTRY_OVERHEAD as usize];
        fixed[0..8].copy_from_slice(&e.samples.to_le_bytes());
        fixed[8..16].copy_from_slice(&e.ts_ms.to_le_bytes());
        fixed[16..20].copy_from_slice(&(e.body.len() as u32).to_le_bytes());
        w.write_all(&fixed)?;
        w.write_all(&e.body)?;
    }
    let crc = w.crc.finalize();
    let mut inner = w.inner;
    inner.write_all(&crc.to_le_bytes())?;
    inner.into_inner().map_err(|e| e.into_error())
}

fn sync_dir(dir: &Path) -> Result<(), SpoolError> {
    let res = File::open(dir).and_then(|d| d.sync_all());
    match res {
        // Some file systems cannot fsync a directory; the rename is as durable as they make it.
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(()),
        r => r.map_err(|e| SpoolError::io("fsync directory", dir, e)),
    }
}

/// Every spool file in `dir` of `owner` (any target), fully read, verified and locked, oldest
/// first (`created_ms`, then file name).
///
/// Files of another job or host are left alone and not returned; files another live process holds
/// are listed in [`Scan::busy`]. Files with the `.spool`
/// extension that are corrupt, truncated, of an unknown version or kind, or not spool files at
/// all are renamed to `<name>.bad` and listed in [`Scan::set_aside`]. `.tmp` leftovers of a killed
/// writer are never read. A missing `dir` is an empty scan, not an error.
pub fn scan(dir: &Path, owner: Owner<'_>) -> Scan {
    let mut out = Scan::default();
    let rd = match fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return out,
        Err(e) => {
            out.errors.push(format!("cannot read directory {}: {e}", dir.display()));
            return out;
        }
    };
    for ent in rd {
        let ent = match ent {
            Ok(ent) => ent,
            Err(e) => {
                out.errors.push(format!("cannot read directory {}: {e}", dir.display()));
                break;
            }
        };
        if !is_spool_name(&ent.file_name()) || ent.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let path = ent.path();
        match load(&path, Some(owner)) {
            Ok(Loaded::File(f)) => out.files.push(f),
            Ok(Loaded::Busy) => out.busy.push(path),
            Ok(Loaded::NotOurs) => {}
            Err(Problem::Io(e)) => out.errors.push(format!("cannot read {}: {e}", path.display())),
            Err(Problem::Bad(why)) => match set_aside(&path) {
                Ok(Some(bad)) => out.set_aside.push((bad, why)),
                Ok(None) => {}
                Err(e) => out.errors.push(format!("cannot set aside {} ({why}): {e}", path.display())),
            },
        }
    }
    out.files.sort_by(|a, b| a.header.created_ms.cmp(&b.header.created_ms).then_with(|| a.path.file_name().cmp(&b.path.file_name())));
    out
}

/// Reads and verifies one spool file, whoever it belongs to.
pub fn read(path: &Path) -> Result<SpoolFile, SpoolError> {
    match load(path, None) {
        Ok(Loaded::File(f)) => Ok(f),
        Ok(_) => Err(SpoolError::io("open", path, io::Error::from(io::ErrorKind::NotFound))),
        Err(Problem::Io(e)) => Err(SpoolError::io("read", path, e)),
        Err(Problem::Bad(reason)) => Err(SpoolError::Corrupt { path: path.to_path_buf(), reason }),
    }
}

/// Removes a replayed file; one already gone is fine.
pub fn remove(path: &Path) -> Result<(), SpoolError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(SpoolError::io("remove", path, e)),
        _ => Ok(()),
    }
}

fn is_spool_name(name: &std::ffi::OsStr) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let b = name.as_bytes();
    b.len() > EXTENSION.len() + 1 && b.ends_with(EXTENSION.as_bytes()) && b[b.len() - EXTENSION.len() - 1] == b'.'
}

/// Renames `path` to `<path>.bad` (or `.bad.N` if taken). `None`: the file is already gone (another
/// scanner was first).
fn set_aside(path: &Path) -> io::Result<Option<PathBuf>> {
    for n in 0..100u32 {
        let mut name = OsString::from(path.as_os_str());
        name.push(if n == 0 { ".bad".to_string() } else { format!(".bad.{n}") });
        let bad = PathBuf::from(name);
        if bad.symlink_metadata().is_ok() {
            continue;
        }
        return match fs::rename(path, &bad) {
            Ok(()) => Ok(Some(bad)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        };
    }
    Err(io::Error::new(io::ErrorKind::AlreadyExists, "too many .bad files of this name"))
}

/// Why a file was not returned.
enum Problem {
    /// It could not be read (it may be fine): reported, left in place.
    Io(io::Error),
    /// It is not a whole spool file of this version: set aside.
    Bad(String),
}

impl From<io::Error> for Problem {
    fn from(e: io::Error) -> Problem {
        Problem::Io(e)
    }
}

/// Reads `buf` up to `len` bytes from `f` (fewer at end of file).
fn fill(f: &mut File, buf: &mut Vec<u8>, len: usize) -> io::Result<()> {
    if len > buf.len() {
        buf.reserve_exact(len - buf.len());
        let want = (len - buf.len()) as u64;
        f.take(want).read_to_end(buf)?;
    }
    Ok(())
}

/// Bounds-checked little-endian reads; `None` when the section has too few bytes left.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let s = self.buf.get(self.pos..self.pos.checked_add(n)?)?;
        self.pos += n;
        Some(s)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4).map(le_u32)
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    /// A u32-length-prefixed UTF-8 header field.
    fn string(&mut self, what: &str) -> Result<String, Problem> {
        let s = self
            .u32()
            .and_then(|n| self.take(n as usize))
            .ok_or_else(|| Problem::Bad(format!("malformed: {what} runs past the header")))?;
        String::from_utf8(s.to_vec()).map_err(|_| Problem::Bad(format!("malformed: {what} is not UTF-8")))
    }
}

fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().unwrap_or_default())
}

/// What [`load`] found at a path that was not a problem.
enum Loaded {
    /// A whole, verified file (locked, when loaded for an owner).
    File(SpoolFile),
    /// Gone, or another job's or host's.
    NotOurs,
    /// The owner's, but another live process holds its lock.
    Busy,
}

/// Reads and verifies `path`; with `only`, takes it only if it is `only`'s and its lock is free.
fn load(path: &Path, only: Option<Owner<'_>>) -> Result<Loaded, Problem> {
    let mut f = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Loaded::NotOurs),
        Err(e) => return Err(e.into()),
    };
    let size = f.metadata()?.len();
    let bad = |s: String| Err(Problem::Bad(s));

    // Prefix: magic, version, kind, reserved, file_len, header_len.
    let mut buf = Vec::new();
    fill(&mut f, &mut buf, PREFIX_LEN)?;
    let got = buf.len();
    if got < MAGIC.len() {
        return if got > 0 && MAGIC.starts_with(&buf) {
            bad(format!("truncated: {got} bytes"))
        } else if got == 0 {
            bad("empty file".into())
        } else {
            bad("not a spool file (bad magic)".into())
        };
    }
    if buf[..8] != MAGIC {
        return bad("not a spool file (bad magic)".into());
    }
    if got < PREFIX_LEN {
        return bad(format!("truncated: {got} bytes"));
    }
    let version = u16::from_le_bytes([buf[8], buf[9]]);
    let kind = buf[10];
    let reserved = buf[11];
    let file_len = u64::from_le_bytes(buf[12..20].try_into().unwrap_or_default());
    let header_len = le_u32(&buf[20..24]) as usize;
    if file_len != size {
        return if size < file_len {
            bad(format!("truncated: {size} of {file_len} bytes"))
        } else {
            bad(format!("malformed: {size} bytes where the header says {file_len}"))
        };
    }
    if header_len < PREFIX_LEN + 8 || header_len as u64 + 8 > file_len {
        return bad(format!("malformed: header length {header_len} in a file of {file_len} bytes"));
    }

    // Header and its checksum: enough to know whose file it is.
    fill(&mut f, &mut buf, header_len + 4)?;
    if buf.len() < header_len + 4 {
        return bad(format!("truncated: {} of {file_len} bytes", buf.len()));
    }
    if crc32fast::hash(&buf[..header_len]) != le_u32(&buf[header_len..header_len + 4]) {
        return bad("header checksum mismatch".into());
    }
    let mut c = Cursor { buf: &buf[..header_len], pos: PREFIX_LEN };
    let job = c.string("job")?;
    let instance = c.string("instance")?;
    // From version 2 on, `host` follows `instance`, so a reader of any version can tell whose a
    // file is and leave another job's or host's alone, even one of a newer version.
    let host = if version >= 2 { c.string("host")? } else { String::new() };
    let ours = |o: &Owner<'_>| o.job == job && if version >= 2 { o.host == host } else { o.instance == instance };
    if only.is_some_and(|o| !ours(&o)) {
        return Ok(Loaded::NotOurs);
    }
    if version != 1 && version != VERSION {
        return bad(format!("unsupported version {version} (this kdbprom reads versions 1 and {VERSION})"));
    }
    let Some(kind) = Kind::from_u8(kind) else {
        return bad(format!("unknown kind {kind}"));
    };
    if reserved != 0 {
        return bad(format!("malformed: reserved byte is {reserved}"));
    }
    let target = c.string("target")?;
    let (Some(created_ms), Some(count)) = (c.i64(), c.u32()) else {
        return bad("malformed: header too short".into());
    };
    if c.pos != header_len {
        return bad(format!("malformed: header has {} bytes after its fields", header_len - c.pos));
    }
    let header = Header { job, instance, host, target, kind, created_ms };

    // The rest, then the whole-file checksum. `file_len == size`, so this allocates the file's size.
    let total = file_len as usize;
    fill(&mut f, &mut buf, total)?;
    if buf.len() < total {
        return bad(format!("truncated: {} of {file_len} bytes", buf.len()));
    }
    if crc32fast::hash(&buf[..total - 4]) != le_u32(&buf[total - 4..]) {
        return bad("checksum mismatch".into());
    }
    let bytes = Bytes::from(buf);
    let body = &bytes[header_len + 4..total - 4];
    let mut c = Cursor { buf: body, pos: 0 };
    let mut entries = Vec::with_capacity((count as usize).min(body.len() / ENTRY_OVERHEAD as usize));
    for i in 0..count {
        let entry = (|| {
            let (samples, ts_ms, len) = (c.u64()?, c.i64()?, c.u32()? as usize);
            let start = header_len + 4 + c.pos;
            c.take(len)?;
            Some(Entry { body: bytes.slice(start..start + len), samples, ts_ms })
        })();
        let Some(entry) = entry else {
            return bad(format!("malformed: entry {i} of {count} runs past the end"));
        };
        entries.push(entry);
    }
    if c.pos != body.len() {
        return bad(format!("malformed: {} bytes after entry {count}", body.len() - c.pos));
    }
    let lock = match only {
        None => None,
        Some(_) => match claim(f, path)? {
            Some(f) => Some(std::sync::Arc::new(f)),
            None => return Ok(Loaded::Busy),
        },
    };
    Ok(Loaded::File(SpoolFile { path: path.to_path_buf(), header, entries, bytes: size, lock }))
}

/// Takes the exclusive lock of the open file `f` without waiting. None: another live process
/// holds it. A file that was replayed and removed while this process waited to open it is gone:
/// it counts as busy (its path no longer names the file that was locked).
fn claim(f: File, path: &Path) -> Result<Option<File>, Problem> {
    use std::os::unix::fs::MetadataExt;
    match f.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => return Ok(None),
        Err(fs::TryLockError::Error(e)) => return Err(e.into()),
    }
    let held = f.metadata()?;
    match fs::metadata(path) {
        Ok(now) if now.dev() == held.dev() && now.ino() == held.ino() => Ok(Some(f)),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::Instant;

    /// A fresh directory, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> TempDir {
            static N: AtomicU64 = AtomicU64::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!("kdbprom-spool-{tag}-{}-{n}", std::process::id()));
            let _ = fs::remove_dir_all(&p);
            fs::create_dir_all(&p).unwrap();
            TempDir(p)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::set_permissions(&self.0, fs::Permissions::from_mode(0o755));
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn header(job: &str, instance: &str, target: &str, created_ms: i64) -> Header {
        Header { job: job.into(), instance: instance.into(), host: "h".into(), target: target.into(), kind: Kind::RemoteWrite1, created_ms }
    }

    /// [`scan`] as `job` on host `h` (and `instance`, which matters for version-1 files only).
    fn scan_as(dir: &Path, job: &str, instance: &str) -> Scan {
        scan(dir, Owner { job, host: "h", instance })
    }

    fn entry(i: u64, len: usize) -> Entry {
        Entry {
            body: Bytes::from((0..len).map(|k| (k as u64 * 31 + i) as u8).collect::<Vec<u8>>()),
            samples: i + 1,
            ts_ms: 1000 + i as i64,
        }
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    /// Recomputes both checksums after a test edited the bytes.
    fn fix_crcs(b: &mut [u8]) {
        let h = le_u32(&b[20..24]) as usize;
        let crc = crc32fast::hash(&b[..h]);
        b[h..h + 4].copy_from_slice(&crc.to_le_bytes());
        let n = b.len();
        let crc = crc32fast::hash(&b[..n - 4]);
        b[n - 4..].copy_from_slice(&crc.to_le_bytes());
    }

    /// One small valid file's bytes.
    fn small_file(job: &str) -> Vec<u8> {
        let d = TempDir::new("small");
        let w = write(&d.0, &header(job, "i", "t", 5), &[entry(0, 3), entry(1, 0)], u64::MAX).unwrap();
        fs::read(w.path).unwrap()
    }

    #[test]
    fn round_trip() {
        let d = TempDir::new("rt");
        let h = Header { kind: Kind::Pushgateway, ..header("job", "host:9", "pushgateway", 1_700_000_000_123) };
        let es = vec![entry(0, 10), entry(1, 0), entry(2, 5000)];
        let w = write(&d.0, &h, &es, 1 << 20).unwrap();
        assert_eq!((w.entries, w.samples, w.dropped_entries, w.dropped_samples), (3, 6, 0, 0));
        assert_eq!(w.bytes, fs::metadata(&w.path).unwrap().len());
        let name = w.path.file_name().unwrap().to_str().unwrap();
        assert!(name.starts_with(&format!("kdbprom-pushgateway-1700000000123-{}-", std::process::id())), "{name}");
        assert!(name.ends_with(".spool"));
        let s = scan_as(&d.0, "job", "host:9");
        assert!(s.set_aside.is_empty() && s.errors.is_empty(), "{s:?}");
        assert_eq!(s.files.len(), 1);
        let f = &s.files[0];
        assert_eq!((&f.path, &f.header, &f.entries, f.bytes), (&w.path, &h, &es, w.bytes));
        assert_eq!(read(&w.path).unwrap().entries, es);
        // While a scan's files live, their locks are held: another scanner (another process, or
        // this one) is told the file is busy instead of replaying it a second time.
        let again = scan_as(&d.0, "job", "other-instance");
        assert!(again.files.is_empty() && again.busy == [w.path.clone()], "{again:?}");
        drop(s);
        // Scanning does not consume: the caller removes a file once it is replayed.
        assert_eq!(scan_as(&d.0, "job", "host:9").files.len(), 1);
        remove(&w.path).unwrap();
        remove(&w.path).unwrap();
        assert!(scan_as(&d.0, "job", "host:9").files.is_empty());
    }

    #[test]
    fn file_name_is_sanitised_and_unique() {
        assert_eq!(sanitise("host:9090/api v1é"), "host_9090_api_v1__");
        assert_eq!(sanitise(&"x".repeat(300)).len(), MAX_NAME_TARGET);
        let d = TempDir::new("names");
        let h = header("j", "i", "a/b", 7);
        let a = write(&d.0, &h, &[entry(0, 1)], u64::MAX).unwrap();
        let b = write(&d.0, &h, &[entry(0, 1)], u64::MAX).unwrap();
        assert_ne!(a.path, b.path);
        assert_eq!(a.path.parent(), Some(d.0.as_path()));
        assert!(a.path.file_name().unwrap().to_str().unwrap().starts_with("kdbprom-a_b-7-"));
        assert_eq!(scan_as(&d.0, "j", "i").files.len(), 2);
    }

    #[test]
    fn max_bytes_keeps_the_newest_and_counts_the_dropped() {
        let d = TempDir::new("max");
        let h = header("j", "i", "t", 1);
        let es: Vec<Entry> = (0..10).map(|i| entry(i, 100)).collect();
        let fixed = MIN_HEADER_LEN as u64 + 4 + 8;
        // Exactly three entries fit, with a few bytes to spare that a fourth cannot use.
        let max = fixed + 3 * 120 + 50;
        let w = write(&d.0, &h, &es, max).unwrap();
        assert_eq!((w.entries, w.dropped_entries), (3, 7));
        assert_eq!(w.samples, 8 + 9 + 10);
        assert_eq!(w.dropped_samples, (1..=7).sum::<u64>());
        assert_eq!(w.bytes, fixed + 3 * 120);
        assert!(fs::metadata(&w.path).unwrap().len() <= max);
        assert_eq!(read(&w.path).unwrap().entries, es[7..]);
        // The boundary is inclusive.
        let w = write(&d.0, &h, &es, fixed + 3 * 120).unwrap();
        assert_eq!((w.entries, w.dropped_entries, w.bytes), (3, 7, fixed + 3 * 120));
        // A big newest entry that does not fit drops everything older too: no gap inside a file.
        let mut es2 = es.clone();
        es2.push(entry(99, 10_000));
        let w = write(&d.0, &h, &es2, max).unwrap();
        assert_eq!((w.entries, w.dropped_entries, w.path.as_os_str().is_empty()), (0, 11, true));
    }

    #[test]
    fn nothing_fits_writes_nothing() {
        let d = TempDir::new("nofit");
        let h = header("j", "i", "t", 1);
        let es = vec![entry(0, 100), entry(1, 100)];
        for max in [0, 10, MIN_HEADER_LEN as u64 + 4 + 8 + 119] {
            let w = write(&d.0, &h, &es, max).unwrap();
            assert_eq!(w, Written { dropped_entries: 2, dropped_samples: 3, ..Written::default() });
        }
        let w = write(&d.0, &h, &[], u64::MAX).unwrap();
        assert_eq!(w, Written::default());
        assert!(names(&d.0).is_empty(), "{:?}", names(&d.0));
    }

    #[test]
    fn scan_returns_only_this_job_and_host_oldest_first() {
        let d = TempDir::new("jobs");
        write(&d.0, &header("a", "x", "t1", 30), &[entry(0, 1)], u64::MAX).unwrap();
        write(&d.0, &header("a", "x", "t2", 10), &[entry(1, 1)], u64::MAX).unwrap();
        write(&d.0, &header("a", "x", "t0", 30), &[entry(2, 1)], u64::MAX).unwrap();
        write(&d.0, &header("b", "x", "t1", 1), &[entry(3, 1)], u64::MAX).unwrap();
        // Another instance of the job on this host: a batch job's earlier run. Replayed.
        write(&d.0, &header("a", "y", "t3", 20), &[entry(4, 1)], u64::MAX).unwrap();
        write(&d.0, &header("ax", "", "t1", 1), &[entry(5, 1)], u64::MAX).unwrap();
        // The same job on another host sharing the directory (an NFS home): left alone.
        write(&d.0, &Header { host: "h2".into(), ..header("a", "x", "t4", 1) }, &[entry(6, 1)], u64::MAX).unwrap();
        let before = names(&d.0);
        let s = scan_as(&d.0, "a", "x");
        assert!(s.set_aside.is_empty() && s.errors.is_empty() && s.busy.is_empty(), "{s:?}");
        let got: Vec<(&str, &str)> = s.files.iter().map(|f| (f.header.target.as_str(), f.header.instance.as_str())).collect();
        // created_ms first, then file name (t0's name sorts before t1's); each keeps its instance.
        assert_eq!(got, [("t2", "x"), ("t3", "y"), ("t0", "x"), ("t1", "x")]);
        assert_eq!(names(&d.0), before, "other jobs' and hosts' files are left alone");
        drop(s);
        assert_eq!(scan_as(&d.0, "b", "x").files.len(), 1);
        assert_eq!(scan_as(&d.0, "a", "").files.len(), 4, "the instance does not decide");
        let other = scan(&d.0, Owner { job: "a", host: "h2", instance: "x" });
        assert_eq!(other.files.iter().map(|f| f.header.target.as_str()).collect::<Vec<_>>(), ["t4"]);
    }

    #[test]
    fn version_1_files_are_read_and_matched_by_job_and_instance() {
        let d = TempDir::new("v1");
        // A release-2 file: version 1, no host string.
        let v2 = small_file("j");
        let hl = le_u32(&v2[20..24]) as usize;
        let host_at = PREFIX_LEN + 4 + 1 + 4 + 1; // after job "j" and instance "i"
        assert_eq!(&v2[host_at..host_at + 5], b"\x01\0\0\0h");
        let mut v1 = [&v2[..host_at], &v2[host_at + 5..]].concat();
        v1[8..10].copy_from_slice(&1u16.to_le_bytes());
        let len = v1.len() as u64;
        v1[12..20].copy_from_slice(&len.to_le_bytes());
        v1[20..24].copy_from_slice(&((hl - 5) as u32).to_le_bytes());
        fix_crcs(&mut v1);
        fs::write(d.0.join("kdbprom-t-5-1-1.spool"), &v1).unwrap();
        assert!(scan_as(&d.0, "j", "other").files.is_empty(), "version 1: another instance's");
        let s = scan(&d.0, Owner { job: "j", host: "any", instance: "i" });
        assert_eq!(s.files.len(), 1, "{s:?}");
        assert_eq!((s.files[0].header.host.as_str(), s.files[0].entries.len()), ("", 2));
    }

    #[test]
    fn a_missing_dir_is_an_empty_scan_and_write_creates_it() {
        let d = TempDir::new("missing");
        let sub = d.0.join("not").join("yet");
        let s = scan_as(&sub, "j", "i");
        assert!(s.files.is_empty() && s.errors.is_empty() && s.set_aside.is_empty());
        check_dir(&sub).unwrap();
        assert!(names(&sub).is_empty(), "the probe is removed");
        write(&sub.join("deeper"), &header("j", "i", "t", 1), &[entry(0, 1)], u64::MAX).unwrap();
        assert_eq!(scan_as(&sub.join("deeper"), "j", "i").files.len(), 1);
    }

    /// Writes `bytes` as a `.spool` file, scans, and checks it was set aside whole.
    fn assert_set_aside(d: &Path, bytes: &[u8], why: &str) -> String {
        let p = d.join("kdbprom-t-5-1-1.spool");
        fs::write(&p, bytes).unwrap();
        let s = scan_as(d, "j", "i");
        assert!(s.files.is_empty(), "{why}: returned {:?}", s.files);
        assert!(s.errors.is_empty(), "{why}: {:?}", s.errors);
        assert_eq!(s.set_aside.len(), 1, "{why}: {s:?}");
        let bad = d.join("kdbprom-t-5-1-1.spool.bad");
        assert_eq!(s.set_aside[0].0, bad);
        assert!(!p.exists());
        assert_eq!(fs::read(&bad).unwrap(), bytes, "{why}: set aside unchanged");
        // Reported once: the next scan does not see it.
        let again = scan_as(d, "j", "i");
        assert!(again.set_aside.is_empty() && again.files.is_empty());
        fs::remove_file(&bad).unwrap();
        s.set_aside[0].1.clone()
    }

    #[test]
    fn every_flipped_byte_is_set_aside() {
        let good = small_file("j");
        let d = TempDir::new("flip");
        for pos in 0..good.len() {
            for mask in [0x01u8, 0x80, 0xff] {
                let mut b = good.clone();
                b[pos] ^= mask;
                assert_set_aside(&d.0, &b, &format!("byte {pos} ^ {mask:#x}"));
            }
        }
    }

    #[test]
    fn every_truncation_is_set_aside() {
        let good = small_file("j");
        let d = TempDir::new("trunc");
        for len in 0..good.len() {
            let why = assert_set_aside(&d.0, &good[..len], &format!("cut at {len}"));
            assert!(why.contains("truncated") || why.contains("empty") || why.contains("magic"), "{len}: {why}");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert!(assert_set_aside(&d.0, &longer, "one byte more").contains("malformed"));
        // The good file itself still reads.
        fs::write(d.0.join("x.spool"), &good).unwrap();
        assert_eq!(scan_as(&d.0, "j", "i").files.len(), 1);
    }

    #[test]
    fn not_a_spool_file_is_set_aside_other_names_are_ignored() {
        let d = TempDir::new("magic");
        let why = assert_set_aside(&d.0, b"# HELP some_metric text\n", "text");
        assert!(why.contains("bad magic"), "{why}");
        for name in ["notes.txt", "spool", ".spool", "x.spool.bad", "x.spoolx", "x.SPOOL"] {
            fs::write(d.0.join(name), b"garbage").unwrap();
        }
        fs::create_dir(d.0.join("dir.spool")).unwrap();
        let before = names(&d.0);
        let s = scan_as(&d.0, "j", "i");
        assert!(s.files.is_empty() && s.set_aside.is_empty() && s.errors.is_empty(), "{s:?}");
        assert_eq!(names(&d.0), before);
    }

    #[test]
    fn tmp_files_are_ignored() {
        let d = TempDir::new("tmp");
        let w = write(&d.0, &header("j", "i", "t", 1), &[entry(0, 10)], u64::MAX).unwrap();
        let good = fs::read(&w.path).unwrap();
        fs::write(d.0.join("kdbprom-t-2-1-1.spool.tmp"), &good).unwrap();
        fs::write(d.0.join("kdbprom-t-3-1-2.spool.tmp"), &good[..good.len() / 2]).unwrap();
        fs::write(d.0.join("kdbprom-t-4-1-3.spool.tmp"), b"").unwrap();
        let before = names(&d.0);
        let s = scan_as(&d.0, "j", "i");
        assert!(s.set_aside.is_empty() && s.errors.is_empty(), "{s:?}");
        assert_eq!(s.files.len(), 1);
        assert_eq!(s.files[0].path, w.path);
        assert_eq!(names(&d.0), before);
    }

    #[test]
    fn versions_and_kinds_this_version_does_not_know() {
        let d = TempDir::new("version");
        let good = small_file("j");
        let patch = |at: usize, v: &[u8]| {
            let mut b = good.clone();
            b[at..at + v.len()].copy_from_slice(v);
            fix_crcs(&mut b);
            b
        };
        let why = assert_set_aside(&d.0, &patch(8, &3u16.to_le_bytes()), "version 3");
        assert!(why.contains("unsupported version 3"), "{why}");
        let why = assert_set_aside(&d.0, &patch(10, &[4]), "kind 4");
        assert!(why.contains("unknown kind 4"), "{why}");
        assert_set_aside(&d.0, &patch(11, &[1]), "reserved");
        // Another job's newer file is left alone: its header still says whose it is; so is this
        // job's newer file written on another host.
        let mut other = small_file("k");
        other[8..10].copy_from_slice(&3u16.to_le_bytes());
        fix_crcs(&mut other);
        fs::write(d.0.join("other.spool"), &other).unwrap();
        let s = scan_as(&d.0, "j", "i");
        assert!(s.files.is_empty() && s.set_aside.is_empty(), "{s:?}");
        let s = scan(&d.0, Owner { job: "j", host: "h2", instance: "i" });
        assert!(s.files.is_empty() && s.set_aside.is_empty(), "{s:?}");
        let s = scan(&d.0, Owner { job: "k", host: "h2", instance: "i" });
        assert!(s.files.is_empty() && s.set_aside.is_empty(), "{s:?}");
        assert!(d.0.join("other.spool").exists());
    }

    #[test]
    fn absurd_lengths_with_valid_checksums_are_set_aside_without_allocating() {
        let d = TempDir::new("absurd");
        let good = small_file("j");
        let h = le_u32(&good[20..24]) as usize;
        let body = h + 4;
        let cases: Vec<(usize, Vec<u8>)> = vec![
            (h - 4, u32::MAX.to_le_bytes().to_vec()),         // entry count
            (h - 4, 3u32.to_le_bytes().to_vec()),             // one entry more than there is
            (h - 4, 1u32.to_le_bytes().to_vec()),             // one entry fewer: trailing bytes
            (body + 16, u32::MAX.to_le_bytes().to_vec()),     // body length
            (body + 16, 4u32.to_le_bytes().to_vec()),         // body length one too long
            (PREFIX_LEN, u32::MAX.to_le_bytes().to_vec()),    // job length
            (20, u32::MAX.to_le_bytes().to_vec()),            // header length
            (20, (PREFIX_LEN as u32).to_le_bytes().to_vec()), // header length too short
            (12, u64::MAX.to_le_bytes().to_vec()),            // file length
        ];
        for (at, v) in cases {
            let mut b = good.clone();
            b[at..at + v.len()].copy_from_slice(&v);
            if le_u32(&b[20..24]) as usize + 4 <= b.len() {
                fix_crcs(&mut b);
            }
            assert_set_aside(&d.0, &b, &format!("{at}"));
        }
        // Invalid UTF-8 in the job.
        let mut b = good.clone();
        b[PREFIX_LEN + 4] = 0xff;
        fix_crcs(&mut b);
        assert!(assert_set_aside(&d.0, &b, "utf8").contains("UTF-8"));
    }

    #[test]
    fn unwritable_dir_is_an_error_naming_the_path() {
        let d = TempDir::new("ro");
        let h = header("j", "i", "t", 1);
        let es = [entry(0, 10)];
        // A path under a regular file: refused even for root.
        let file = d.0.join("plain");
        fs::write(&file, b"x").unwrap();
        let under = file.join("spool");
        for e in [write(&under, &h, &es, u64::MAX).unwrap_err(), check_dir(&under).unwrap_err()] {
            assert!(e.to_string().contains(under.to_str().unwrap()), "{e}");
            assert!(!e.is_no_space());
            assert!(matches!(e, SpoolError::Io { .. }));
        }
        // A read-only directory: refused unless running as root.
        let ro = d.0.join("ro");
        fs::create_dir(&ro).unwrap();
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o500)).unwrap();
        let root_can_write = fs::write(ro.join("probe"), b"").is_ok();
        if !root_can_write {
            let e = write(&ro, &h, &es, u64::MAX).unwrap_err();
            assert!(e.to_string().contains(ro.to_str().unwrap()), "{e}");
            let e = check_dir(&ro).unwrap_err();
            assert!(e.to_string().contains(ro.to_str().unwrap()), "{e}");
            assert!(names(&ro).is_empty());
        }
        fs::set_permissions(&ro, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// A full disk, simulated with a 256 KiB tmpfs (needs root and mount rights; skipped without).
    #[test]
    fn full_disk_is_no_space_and_leaves_nothing() {
        struct Mount(PathBuf);
        impl Drop for Mount {
            fn drop(&mut self) {
                let _ = std::process::Command::new("umount").arg("-l").arg(&self.0).status();
            }
        }
        let d = TempDir::new("full");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "kdbprom-spool-test"])
            .arg(&d.0)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a tmpfs here");
            return;
        }
        let _m = Mount(d.0.clone());
        let h = header("j", "i", "t", 1);
        let big: Vec<Entry> = (0..8).map(|i| entry(i, 64 << 10)).collect();
        let e = write(&d.0, &h, &big, u64::MAX).unwrap_err();
        assert!(e.is_no_space(), "{e}");
        assert!(e.path().starts_with(&d.0) && e.to_string().contains(d.0.to_str().unwrap()), "{e}");
        assert!(names(&d.0).is_empty(), "nothing partial remains: {:?}", names(&d.0));
        // Bounded by max_bytes, the newest part fits.
        let w = write(&d.0, &h, &big, 128 << 10).unwrap();
        assert_eq!((w.entries, w.dropped_entries), (1, 7));
        assert_eq!(scan_as(&d.0, "j", "i").files.len(), 1);
    }

    #[test]
    fn no_space_is_recognised() {
        let e = SpoolError::io("write", Path::new("/x/y.spool.tmp"), io::Error::from_raw_os_error(libc::ENOSPC));
        assert!(e.is_no_space());
        assert_eq!(e.path(), Path::new("/x/y.spool.tmp"));
        assert!(e.to_string().starts_with("spool: cannot write /x/y.spool.tmp: "), "{e}");
        assert!(SpoolError::io("write", Path::new("/x"), io::Error::from_raw_os_error(libc::EDQUOT)).is_no_space());
        assert!(!SpoolError::io("write", Path::new("/x"), io::Error::from_raw_os_error(libc::EACCES)).is_no_space());
    }

    /// Write and scan throughput; `cargo test --release --lib spool::tests::throughput -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn throughput() {
        let d = TempDir::new("speed");
        let es: Vec<Entry> = (0..64).map(|i| entry(i, 1 << 20)).collect();
        let h = header("j", "i", "t", 1);
        let mb = 64.0 * 1.048576;
        for round in 0..3 {
            let t = Instant::now();
            let w = write(&d.0, &h, &es, u64::MAX).unwrap();
            let wt = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let s = scan_as(&d.0, "j", "i");
            let st = t.elapsed().as_secs_f64();
            assert_eq!(s.files.len(), 1);
            println!("round {round}: write {:.0} MB/s ({:.1} ms, fsync included), scan {:.0} MB/s", mb / wt, wt * 1e3, mb / st);
            fs::remove_file(w.path).unwrap();
        }
    }

    fn arb_entry() -> impl Strategy<Value = Entry> {
        (proptest::collection::vec(any::<u8>(), 0..600), any::<u64>(), any::<i64>()).prop_map(|(b, samples, ts_ms)| Entry {
            body: Bytes::from(b),
            samples,
            ts_ms,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_entries_round_trip(
            es in proptest::collection::vec(arb_entry(), 0..20),
            job in ".{0,20}", instance in ".{0,20}", host in ".{0,20}", target in ".{0,40}", created_ms in any::<i64>(),
            pg in any::<bool>(),
        ) {
            let d = TempDir::new("prop");
            let h = Header { job, instance, host, target, kind: if pg { Kind::Pushgateway } else { Kind::RemoteWrite1 }, created_ms };
            let w = write(&d.0, &h, &es, u64::MAX).unwrap();
            prop_assert_eq!(w.entries, es.len());
            let s = scan(&d.0, Owner { job: &h.job, host: &h.host, instance: "any" });
            prop_assert!(s.set_aside.is_empty() && s.errors.is_empty());
            if es.is_empty() {
                prop_assert!(s.files.is_empty());
            } else {
                prop_assert_eq!(s.files.len(), 1);
                prop_assert_eq!(&s.files[0].header, &h);
                prop_assert_eq!(&s.files[0].entries, &es);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn any_bytes_never_panic_scan(content in proptest::collection::vec(any::<u8>(), 0..400), magic in any::<bool>()) {
            let d = TempDir::new("garbage");
            let mut b = content;
            if magic {
                // Past the magic, so the length checks are reached.
                let n = b.len().min(8);
                b[..n].copy_from_slice(&MAGIC[..n]);
            }
            fs::write(d.0.join("g.spool"), &b).unwrap();
            let s = scan_as(&d.0, "j", "i");
            prop_assert!(s.files.is_empty());
            prop_assert_eq!(s.set_aside.len(), 1);
        }

        #[test]
        fn mutated_files_with_fixed_checksums_never_panic(
            edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
            cut in any::<prop::sample::Index>(), do_cut in any::<bool>(),
        ) {
            let d = TempDir::new("mut");
            let good = small_file("j");
            let mut b = good.clone();
            for (i, v) in &edits {
                let at = i.index(b.len());
                b[at] = *v;
            }
            if do_cut {
                b.truncate(cut.index(b.len()));
            }
            if b.len() >= PREFIX_LEN && (le_u32(&b[20..24]) as usize).saturating_add(8) <= b.len() {
                fix_crcs(&mut b);
            }
            fs::write(d.0.join("m.spool"), &b).unwrap();
            let s = scan_as(&d.0, "j", "i");
            prop_assert!(s.errors.is_empty());
            prop_assert!(s.files.len() + s.set_aside.len() <= 1);
            if let Some(f) = s.files.first() {
                // Whatever is returned was written whole: re-encoding it gives the same bytes.
                let d2 = TempDir::new("mut2");
                let w = write(&d2.0, &f.header, &f.entries, u64::MAX).unwrap();
                prop_assert_eq!(fs::read(w.path).unwrap(), b);
            }
        }
    }
}
