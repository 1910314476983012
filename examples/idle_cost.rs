//! What an idle q process pays for kdbprom: an agent with a textfile target and the default
//! 10 s interval, nothing recorded, watched for `secs` seconds (default 30). Prints the flusher
//! thread's wake-ups a second (voluntary context switches, from /proc) and its CPU, as seconds an
//! hour. `cargo run --release --example idle_cost [secs]`; BENCHMARKS.md keeps the figures.

use kdbprom::agent::Agent;
use kdbprom::builtin::ProcessInfo;
use kdbprom::config::Config;
use std::time::{Duration, Instant};

/// The flusher thread's (voluntary switches, utime + stime in clock ticks), read from /proc.
fn flusher() -> (u64, u64) {
    for task in std::fs::read_dir("/proc/self/task").expect("/proc") {
        let dir = task.expect("task").path();
        if std::fs::read_to_string(dir.join("comm")).unwrap_or_default().trim() != "kdbprom-flusher" {
            continue;
        }
        let status = std::fs::read_to_string(dir.join("status")).expect("status");
        let switches = status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse().ok())
            .expect("voluntary_ctxt_switches");
        let stat = std::fs::read_to_string(dir.join("stat")).expect("stat");
        // Fields after the command (which ends at the last ')'): utime and stime are the 12th and 13th.
        let rest: Vec<&str> = stat.rsplit_once(')').expect("stat").1.split_whitespace().collect();
        let ticks = rest[11].parse::<u64>().unwrap() + rest[12].parse::<u64>().unwrap();
        return (switches, ticks);
    }
    panic!("no kdbprom-flusher thread");
}

fn main() {
    let secs: u64 = std::env::args().nth(1).map_or(30, |s| s.parse().expect("seconds"));
    let dir = std::env::temp_dir().join(format!("kdbprom-idle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cfg = Config { textfile: Some(dir.join("idle.prom")), spool: None, ..Config::default() };
    let agent = Agent::start(cfg, &ProcessInfo::default()).expect("start");
    // Let the first push (at once after init) and its start-up pass.
    std::thread::sleep(Duration::from_secs(2));
    let (s0, t0) = flusher();
    let start = Instant::now();
    std::thread::sleep(Duration::from_secs(secs));
    let (s1, t1) = flusher();
    let el = start.elapsed().as_secs_f64();
    let tick = 100.0; // USER_HZ on Linux
    println!(
        "idle flusher over {el:.1} s: {:.2} wake-ups/s, CPU {:.3} s an hour ({} ticks)",
        (s1 - s0) as f64 / el,
        (t1 - t0) as f64 / tick / el * 3600.0,
        t1 - t0
    );
    let _ = agent.stop();
    let _ = std::fs::remove_dir_all(&dir);
}
