//! Crash safety of the spool: a writer killed with SIGKILL at random moments leaves only whole,
//! verified files for `scan` to return, and `.tmp` leftovers that `scan` ignores.
//!
//! The test re-executes its own binary as the writer: with `KDBPROM_SPOOL_CRASH_CHILD=<dir>` set,
//! the `child_writer` test writes spool files of 1–4 MiB to `<dir>` until it is killed. Every
//! file's contents are a function of the sequence number it names in its header's target, so the
//! parent can check each file it gets back entry by entry.

use bytes::Bytes;
use kdbprom::push::spool::{self, BodyKind, Entry, Header};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const CHILD_ENV: &str = "KDBPROM_SPOOL_CRASH_CHILD";
const BASE_ENV: &str = "KDBPROM_SPOOL_CRASH_BASE";
const JOB: &str = "crashjob";
const INSTANCE: &str = "host:1";

/// xorshift64*: deterministic bytes without a dependency.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// What the writer spools for sequence number `seq`: 1–5 entries, 1–4 MiB in all.
fn entries_for(seq: u64) -> Vec<Entry> {
    let mut rng = Rng::new(seq);
    let n = 1 + (rng.next() % 5) as usize;
    let total = (1 << 20) + (rng.next() % (3 << 20)) as usize;
    (0..n)
        .map(|i| {
            let len = total / n + i;
            let mut body = Vec::with_capacity(len + 8);
            while body.len() < len {
                body.extend_from_slice(&rng.next().to_le_bytes());
            }
            body.truncate(len);
            Entry { body: Bytes::from(body), samples: seq * 10 + i as u64, ts_ms: (seq * 1000 + i as u64) as i64 }
        })
        .collect()
}

fn header_for(seq: u64) -> Header {
    let created_ms = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64;
    Header {
        job: JOB.into(),
        instance: INSTANCE.into(),
        host: "h".into(),
        target: format!("crash-{seq}"),
        kind: BodyKind::RemoteWrite1,
        created_ms,
    }
}

/// The writer child. As an ordinary test (no env var) it does nothing.
#[test]
fn child_writer() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else { return };
    let dir = PathBuf::from(dir);
    let base: u64 = std::env::var(BASE_ENV).ok().and_then(|s| s.parse().ok()).unwrap_or(0);
    // A safety net should the parent die without killing us: stop after a while.
    let until = Instant::now() + Duration::from_secs(20);
    let mut seq = base;
    while Instant::now() < until {
        spool::write(&dir, &header_for(seq), &entries_for(seq), u64::MAX).expect("spool write");
        seq += 1;
    }
}

/// Kills the child if the parent panics first.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(dir: &Path, base: u64) -> Guard {
    let child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_writer", "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, dir)
        .env(BASE_ENV, base.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn writer");
    Guard(child)
}

fn count(dir: &Path, suffix: &str) -> usize {
    std::fs::read_dir(dir).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(suffix)).count()
}

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

#[test]
fn sigkill_mid_write_leaves_only_whole_files() {
    let started = Instant::now();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("spool-crash-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let seed = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_nanos() as u64;
    println!("seed {seed}");
    let mut rng = Rng::new(seed);

    // Round 0 runs until a few files exist; the others are killed 0–50 ms after they start, which
    // lands in start-up, in content generation, in a write, an fsync or a rename. Every fourth
    // round, and every round after the 40th until one has, waits for a new `.tmp` to appear and
    // kills the writer at once: a kill that leaves a new `.tmp` behind landed mid-write, and at
    // least one must have, or the test proved nothing about half-written files.
    const ROUNDS: u64 = 40;
    const MAX_ROUNDS: u64 = 200;
    let (mut mid_write, mut aimed) = (0, 0);
    let mut round = 0;
    while round < ROUNDS || (mid_write == 0 && round < MAX_ROUNDS) {
        let tmps_before = count(&dir, ".spool.tmp");
        let mut child = spawn(&dir, round * 1_000_000);
        if round == 0 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while count(&dir, ".spool") < 3 {
                assert!(Instant::now() < deadline, "the writer made no files");
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        if round % 4 == 3 || round >= ROUNDS {
            aimed += 1;
            let deadline = Instant::now() + Duration::from_secs(10);
            while count(&dir, ".spool.tmp") == tmps_before {
                assert!(Instant::now() < deadline, "the writer never started a file");
                std::hint::spin_loop();
            }
        } else {
            std::thread::sleep(Duration::from_micros(rng.next() % 50_000));
        }
        child.0.kill().unwrap();
        child.0.wait().unwrap();
        if count(&dir, ".spool.tmp") > tmps_before {
            mid_write += 1;
        }
        round += 1;
    }
    println!("{round} kills, {aimed} aimed at a write in progress, {mid_write} left a .tmp (killed mid-write)");
    assert!(mid_write >= 1, "no SIGKILL of {round} landed mid-write (no .tmp left behind)");

    let tmps = files(&dir, ".tmp");
    assert!(tmps.len() >= mid_write, "{tmps:?}");
    let whole = count(&dir, ".spool");
    let t = Instant::now();
    let s = spool::scan(&dir, spool::Owner { job: JOB, host: "h", instance: INSTANCE });
    let scan_ms = t.elapsed().as_secs_f64() * 1e3;
    println!("{whole} whole files, {} .tmp leftovers, scan {scan_ms:.0} ms", tmps.len());
    assert!(s.set_aside.is_empty(), "set aside: {:?}", s.set_aside);
    assert!(s.errors.is_empty(), "errors: {:?}", s.errors);
    assert!(s.files.len() >= 3 && s.files.len() == whole, "{} returned of {whole}", s.files.len());
    for f in &s.files {
        assert!(f.path.extension().is_some_and(|e| e == "spool"), "{}", f.path.display());
        assert_eq!((f.header.job.as_str(), f.header.instance.as_str(), f.header.kind), (JOB, INSTANCE, BodyKind::RemoteWrite1));
        let seq: u64 = f.header.target.strip_prefix("crash-").and_then(|s| s.parse().ok()).expect("target names the seq");
        let want = entries_for(seq);
        assert_eq!(f.entries.len(), want.len(), "{}", f.path.display());
        for (got, want) in f.entries.iter().zip(&want) {
            assert!(got == want, "{}: entry differs from what seq {seq} wrote", f.path.display());
        }
        assert_eq!(f.bytes, std::fs::metadata(&f.path).unwrap().len());
    }
    // Leftovers of killed writes are neither read nor touched, and nothing was set aside.
    assert_eq!(files(&dir, ".tmp"), tmps);
    assert_eq!(count(&dir, ".bad"), 0);

    std::fs::remove_dir_all(&dir).unwrap();
    println!("{:.1} s", started.elapsed().as_secs_f64());
}
