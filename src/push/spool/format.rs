//! The file format: the header and entries encoded as the module docs lay out, and a file read
//! back and verified (lengths, both checksums, version and kind) before anything in it is used.

use super::dir::claim;
use super::{BodyKind, ENTRY_OVERHEAD, Entry, Header, MAGIC, Owner, PREFIX_LEN, SpoolFile, VERSION};
use bytes::Bytes;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;

/// The header as written: prefix, job, instance, host, target, created_ms, count, then its CRC.
pub(super) fn encode_header(h: &Header, file_len: u64, header_len: u32, count: u32) -> Vec<u8> {
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
pub(super) fn write_body(file: File, hdr: &[u8], entries: &[Entry]) -> io::Result<File> {
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

/// Why a file was not returned.
pub(super) enum Problem {
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

pub(super) fn le_u32(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().unwrap_or_default())
}

/// What [`load`] found at a path that was not a problem.
pub(super) enum Loaded {
    /// A whole, verified file (locked, when loaded for an owner).
    File(SpoolFile),
    /// Gone, or another job's or host's.
    NotOurs,
    /// The owner's, but another live process holds its lock.
    Busy,
}

/// Reads and verifies `path`; with `only`, takes it only if it is `only`'s and its lock is free.
pub(super) fn load(path: &Path, only: Option<Owner<'_>>) -> Result<Loaded, Problem> {
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
    let Some(kind) = BodyKind::from_u8(kind) else {
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
