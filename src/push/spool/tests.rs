//! Tests of the spool: round trips, the size budget, ownership, and every corruption set aside.

use super::format::le_u32;
use super::*;
use proptest::prelude::*;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::Ordering;
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
    Header { job: job.into(), instance: instance.into(), host: "h".into(), target: target.into(), kind: BodyKind::RemoteWrite1, created_ms }
}

/// [`scan`] as `job` on host `h` (and `instance`, which matters for version-1 files only).
fn scan_as(dir: &Path, job: &str, instance: &str) -> Scan {
    scan(dir, Owner { job, host: "h", instance })
}

fn entry(i: u64, len: usize) -> Entry {
    Entry { body: Bytes::from((0..len).map(|k| (k as u64 * 31 + i) as u8).collect::<Vec<u8>>()), samples: i + 1, ts_ms: 1000 + i as i64 }
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
    let h = Header { kind: BodyKind::Pushgateway, ..header("job", "host:9", "pushgateway", 1_700_000_000_123) };
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
fn tmp_leftovers_older_than_an_hour_are_swept() {
    let d = TempDir::new("sweep");
    let old = d.0.join("kdbprom-t-2-1-1.spool.tmp");
    let fresh = d.0.join("kdbprom-t-3-1-2.spool.tmp");
    let other = d.0.join("notes.tmp");
    for p in [&old, &fresh, &other] {
        fs::write(p, b"half a file").unwrap();
    }
    let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
    for p in [&old, &other] {
        fs::File::options().write(true).open(p).unwrap().set_modified(two_hours_ago).unwrap();
    }
    let s = scan_as(&d.0, "j", "i");
    assert_eq!(s.swept, std::slice::from_ref(&old));
    assert!(s.errors.is_empty() && s.files.is_empty(), "{s:?}");
    assert!(!old.exists() && fresh.exists(), "a writer may still be at work on a fresh one");
    assert!(other.exists(), "only spool leftovers are ours to remove");
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
        let h = Header { job, instance, host, target, kind: if pg { BodyKind::Pushgateway } else { BodyKind::RemoteWrite1 }, created_ms };
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
