//! The spool directory: probing it, writing a file within the size budget, scanning and claiming
//! the owner's files, removing replayed ones and setting bad ones aside.

use super::format::{Loaded, Problem, encode_header, load, write_body};
use super::{EXTENSION, Entry, Header, MIN_HEADER_LEN, Owner, SEQ, Scan, SpoolError, SpoolFile, Written, sanitise};
use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

/// Creates `dir` if it is missing and checks that a file can be created in it (as root, mode bits
/// do not stop writes, so this tries). For `.prom.init`: an error names the directory.
pub fn check_dir(dir: &Path) -> Result<(), SpoolError> {
    crate::state::writable(dir).map_err(|e| SpoolError::Io { op: e.op, path: e.path, source: e.source })
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

/// Fsyncs `dir`, so a rename in it survives a power cut.
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
/// writer are never read, and removed once older than [`super::STALE_TMP`] ([`Scan::swept`]). A missing `dir` is an empty scan, not an error.
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
        if is_stale_tmp(&ent) {
            match fs::remove_file(ent.path()) {
                Ok(()) => out.swept.push(ent.path()),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => out.errors.push(format!("cannot remove {}: {e}", ent.path().display())),
            }
            continue;
        }
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

/// A `<name>.spool.tmp` file last written more than [`super::STALE_TMP`] ago.
fn is_stale_tmp(ent: &fs::DirEntry) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let name = ent.file_name();
    let tmp = format!(".{EXTENSION}.tmp");
    name.as_bytes().ends_with(tmp.as_bytes())
        && ent.metadata().is_ok_and(|m| m.is_file() && m.modified().is_ok_and(|t| t.elapsed().is_ok_and(|age| age > super::STALE_TMP)))
}

/// A finished spool file's name: `<something>.spool`.
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

/// Takes the exclusive lock of the open file `f` without waiting. None: another live process
/// holds it. A file that was replayed and removed while this process waited to open it is gone:
/// it counts as busy (its path no longer names the file that was locked).
pub(super) fn claim(f: File, path: &Path) -> Result<Option<File>, Problem> {
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
