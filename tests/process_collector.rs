//! The process collector through the real library in the libe host: its figures equal what the
//! kernel says of this very process (getrusage, /proc/self/statm, /proc/self/fd, the fd limit),
//! move when the process burns CPU and opens files, and the exposition passes promtool. Push
//! rounds reuse a reading for up to a second; the final push at stop reads afresh.

mod common;
mod mock;

use common::{host, lock};
use std::collections::HashMap;

fn figures(h: &common::Host) -> HashMap<String, f64> {
    let t = h.ok("kdbprom_text", &[h.id()]);
    let text = h.string(t);
    (h.r0)(t);
    text.lines()
        .filter(|l| l.starts_with("process_"))
        .filter_map(|l| l.rsplit_once(' ').and_then(|(k, v)| Some((k.to_string(), v.parse().ok()?))))
        .collect()
}

fn rusage_cpu() -> f64 {
    // SAFETY: getrusage fills the struct it is given.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) }, 0);
    let s = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    s(u.ru_utime) + s(u.ru_stime)
}

#[test]
fn the_figures_are_the_kernels_and_move_with_the_process() {
    let _g = lock();
    let h = host();
    let _ = h.call("kdbprom_stop", &[h.id()]);
    let r = h.ok("kdbprom_init", &[h.dict(&["job"], &[h.s("proc")]), h.id()]);
    (h.r0)(r);

    let before = rusage_cpu();
    let f = figures(h);
    let after = rusage_cpu();
    let cpu = f["process_cpu_seconds_total"];
    // /proc counts in clock ticks (10 ms): within two ticks of getrusage around the reading.
    assert!(cpu >= before - 0.02 && cpu <= after + 0.02, "cpu {cpu} vs getrusage {before}..{after}");
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let rss_pages: f64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    let page = 4096.0;
    let rss = f["process_resident_memory_bytes"];
    assert!((rss - rss_pages * page).abs() < 64.0 * 1024.0 * 1024.0, "rss {rss} vs statm {}", rss_pages * page);
    let mut lim: libc::rlimit = unsafe { std::mem::zeroed() };
    // SAFETY: getrlimit fills the struct it is given.
    assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
    assert_eq!(f["process_max_fds"], lim.rlim_cur as f64);
    assert!(f["process_virtual_memory_bytes"] >= rss);

    // Burn CPU and open 64 files: the next reading moves by as much.
    // (CPU time, not wall time: the machine may be busy with other work.)
    let start = rusage_cpu();
    let mut x = 1u64;
    while rusage_cpu() - start < 0.4 {
        for _ in 0..100_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    let open_before = f["process_open_fds"];
    let files: Vec<std::fs::File> = (0..64).map(|_| std::fs::File::open("/proc/self/stat").unwrap()).collect();
    let g = figures(h);
    assert!(g["process_cpu_seconds_total"] - cpu >= 0.3, "{} → {}", cpu, g["process_cpu_seconds_total"]);
    assert!(g["process_open_fds"] - open_before >= 60.0, "{open_before} → {}", g["process_open_fds"]);
    drop(files);
    let _ = h.call("kdbprom_stop", &[h.id()]);
}

/// `process_cpu_seconds_total` in a text body the mock gateway saw.
fn pushed_cpu(body: &[u8]) -> f64 {
    let t = std::str::from_utf8(body).unwrap();
    t.lines().find_map(|l| l.strip_prefix("process_cpu_seconds_total ")).expect("process_cpu_seconds_total").parse().unwrap()
}

#[test]
fn push_rounds_reuse_a_reading_for_a_second_and_the_final_push_reads_afresh() {
    let (url, seen) = mock::mock(vec![(200, "", "")]);
    // Before init: every reading the agent takes is after this.
    let started = std::time::Instant::now();
    let a = mock::agent(serde_json::json!({"job": "eod", "instance": "h:1", "interval_ms": 3_600_000,
        "pushgateway": {"url": url, "format": "text"}}));
    assert!(a.push().unwrap().iter().all(|o| o.ok));
    let first = pushed_cpu(&seen.lock().unwrap().last().unwrap().body);
    // Burn 0.2 s of CPU (CPU time, not wall time): the process's counter moves by as much.
    let start = rusage_cpu();
    let mut x = 1u64;
    while rusage_cpu() - start < 0.2 {
        for _ in 0..100_000 {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
    assert!(a.push().unwrap().iter().all(|o| o.ok));
    let second = pushed_cpu(&seen.lock().unwrap().last().unwrap().body);
    // The first push (or init's) read /proc; a round within a second of that reading reuses it.
    if started.elapsed() < kdbprom::process::MAX_AGE {
        assert_eq!(second, first, "a push round within MAX_AGE of the last reading reuses it");
    } else {
        // A busy machine took a second: the round may or may not have read again.
        assert!(second >= first, "{first} → {second}");
    }
    let (_, outcomes) = a.stop().unwrap();
    assert!(outcomes.iter().all(|o| o.ok), "{outcomes:?}");
    let last = pushed_cpu(&seen.lock().unwrap().last().unwrap().body);
    // /proc counts in 10 ms ticks: the burn shows whole, less a tick at each end.
    assert!(last >= first + 0.18, "the final push carries a fresh reading: {first} → {last}");
    assert!(last <= rusage_cpu() + 0.02, "{last} vs getrusage {}", rusage_cpu());
}
