//! Process sampling through q's main loop: this binary exports `sd1`/`sd0x` stubs (build.rs exports
//! them), so the library registers with "q", the flusher wakes it at each push, and this test plays
//! q's main loop by calling the registered callback. It also exports `k`, q's evaluator, which plays
//! the two q functions the callback evaluates: `.prom.sampled[]` calls the sample export as the
//! script does, `.prom.book[]` answers as q would (or with `'noupdate`, as under `-b`). Without
//! `sd1` (every other host) the sampler is `none`.

mod common;

use common::{Host, host, lock};
use kdbplus::api::K;
use std::ffi::{CStr, c_char};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};

static REGISTERED: Mutex<Vec<(i32, usize)>> = Mutex::new(Vec::new());
static REMOVED: Mutex<Vec<(i32, i32)>> = Mutex::new(Vec::new());
/// What the library asked q to evaluate, in order.
static EVALS: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// `.prom.book[]` signals `'noupdate`, as it does in an sd1 callback under `-b`.
static READ_ONLY_Q: AtomicBool = AtomicBool::new(false);
/// The `used` figure `.Q.w[]` reports to the next `.prom.sampled[]`.
static USED: AtomicI64 = AtomicI64::new(1);

/// q's `K k(I, const S, ...)`, called with handle 0 and no arguments (the x86-64 calling convention
/// passes the first arguments of a variadic call as of a plain one).
#[unsafe(no_mangle)]
#[allow(clippy::not_unsafe_ptr_arg_deref)] // q's C signature: the library passes a valid string
pub extern "C" fn k(_h: i32, expr: *const c_char, _end: K) -> K {
    // SAFETY: the library passes a NUL-terminated expression.
    let expr = unsafe { CStr::from_ptr(expr) }.to_string_lossy().into_owned();
    EVALS.lock().unwrap().push(expr.clone());
    let h = host();
    match expr.as_str() {
        // .prom.sampled:{.prom.x.sample[@[.Q.w;::;()!()];"j"$sum each value .z.W]}
        ".prom.sampled[]" => {
            let qw = h.dict(&["used", "heap"], &[h.j(USED.load(Ordering::SeqCst)), h.j(1 << 26)]);
            match h.call("kdbprom_sample", &[qw, h.longs(&[0, 0])]) {
                Ok(_) => h.id(),
                Err(e) => error_object(h, &e),
            }
        }
        ".prom.book[]" if READ_ONLY_Q.load(Ordering::SeqCst) => error_object(h, "noupdate"),
        _ => h.id(),
    }
}

/// What q's `k` returns for an error: a -128 atom holding the message.
fn error_object(h: &Host, msg: &str) -> K {
    let e = (h.ka)(-128);
    // SAFETY: a fresh -128 atom; its symbol slot takes an interned string.
    unsafe { (*e).value.symbol = (h.ss)(std::ffi::CString::new(msg).unwrap().as_ptr()) };
    e
}

/// Runs `f` with this process's stderr going to a pipe; what was written.
fn stderr_of(f: impl FnOnce()) -> String {
    let mut p = [0i32; 2];
    // SAFETY: pipe fills two fds; dup/dup2 swap fd 2 and put it back; the read end is drained after.
    unsafe {
        assert_eq!(libc::pipe(p.as_mut_ptr()), 0);
        let saved = libc::dup(2);
        libc::dup2(p[1], 2);
        f();
        libc::dup2(saved, 2);
        libc::close(saved);
        libc::close(p[1]);
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            let n = libc::read(p[0], buf.as_mut_ptr().cast(), buf.len());
            if n <= 0 {
                break;
            }
            out.extend_from_slice(&buf[..n as usize]);
        }
        libc::close(p[0]);
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// q's `K sd1(I, K(*)(I))`: remember the registration.
#[unsafe(no_mangle)]
pub extern "C" fn sd1(fd: i32, cb: extern "C" fn(i32) -> K) -> K {
    REGISTERED.lock().unwrap().push((fd, cb as usize));
    std::ptr::null_mut()
}

/// q's `void sd0x(I, I)`.
#[unsafe(no_mangle)]
pub extern "C" fn sd0x(fd: i32, close: i32) {
    REMOVED.lock().unwrap().push((fd, close));
}

/// The socket and callback of the last registration with "q".
fn registered() -> (i32, extern "C" fn(i32) -> K) {
    let (fd, cb) = *REGISTERED.lock().unwrap().last().expect("init registered with sd1");
    // SAFETY: the address was registered as `K(*)(I)`.
    (fd, unsafe { std::mem::transmute::<usize, extern "C" fn(i32) -> K>(cb) })
}

fn readable(fd: i32, ms: i32) -> bool {
    let mut p = libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    // SAFETY: one valid pollfd.
    unsafe { libc::poll(&mut p, 1, ms) == 1 && p.revents & libc::POLLIN != 0 }
}

/// `.prom.init` as the q script calls it, with `system"p"` and `system"t"`; the `sampler` it reports.
fn init(h: &Host, port: i64, timer: i64) -> String {
    let _ = h.call("kdbprom_stop", &[h.id()]);
    // Not /dev/null: the textfile is replaced by a rename, which as root would replace the device.
    let file = std::env::temp_dir().join(format!("kdbprom-sd1-{}.prom", std::process::id()));
    let cfg = h.dict(&["textfile", "interval_ms"], &[h.str(file.to_str().unwrap()), h.j(3_600_000)]);
    let proc = h.dict(&["host", "port", "timer", "pid"], &[h.s("box"), h.j(port), h.j(timer), h.j(7)]);
    let r = h.ok("kdbprom_init", &[cfg, proc]);
    let settings: std::collections::HashMap<String, K> = h.dict_items(r).into_iter().collect();
    let sampler = h.sym(settings["sampler"]);
    (h.r0)(r);
    sampler
}

/// A registered descriptor keeps q's main loop alive: a q that does not listen (a batch script,
/// `q job.q </dev/null`) must still end at the end of its input, so nothing is registered, even
/// with a timer running (q's timer alone does not keep q up; the .z.ts wrapper samples instead).
#[test]
fn a_q_that_does_not_listen_is_never_kept_alive() {
    let _g = lock();
    let h = host();
    let before = REGISTERED.lock().unwrap().len();
    for timer in [0, 1_000] {
        assert_eq!(init(h, 0, timer), "none", "timer {timer}");
        assert_eq!(REGISTERED.lock().unwrap().len(), before, "nothing registered (timer {timer})");
    }
    // Listening, on a port or (multithreaded input mode) a negative one: registered.
    for port in [5010, -5010] {
        assert_eq!(init(h, port, 0), "sd1", "port {port}");
        assert_eq!(REGISTERED.lock().unwrap().len(), before + 1, "port {port}");
        let st = h.ok("kdbprom_stop", &[h.id()]);
        (h.r0)(st);
        REGISTERED.lock().unwrap().pop();
    }
}

/// A client's `.prom.stop[]` in multithreaded input mode runs off q's main thread, which alone may
/// change q's event loop: the socket stays registered until q's main loop sees the flusher's end
/// close and calls back, and the callback removes it there.
#[test]
fn a_stop_off_the_main_thread_leaves_the_removal_to_q_main_loop() {
    let _g = lock();
    let h = host();
    assert_eq!(init(h, 5010, 0), "sd1");
    let (fd, cb) = registered();
    let removed = REMOVED.lock().unwrap().len();
    std::thread::spawn(|| {
        let st = host().ok("kdbprom_stop", &[host().id()]);
        (host().r0)(st);
    })
    .join()
    .unwrap();
    assert_eq!(REMOVED.lock().unwrap().len(), removed, "not removed from another thread");
    // The flusher closed its end: q's loop sees the fd readable (end of file) and calls back.
    assert!(readable(fd, 3_000), "end of file once the flusher stopped");
    assert!(cb(fd).is_null());
    assert_eq!(REMOVED.lock().unwrap().last(), Some(&(fd, 0)), "removed by the main loop's callback");
    // SAFETY: fcntl on a closed fd just fails with EBADF.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_GETFD) }, -1, "fd closed");
}

#[test]
fn the_flusher_wakes_q_main_loop_to_sample_and_stop_deregisters() {
    let _g = lock();
    let h = host();
    assert_eq!(init(h, 5010, 0), "sd1");
    let (fd, cb) = registered();
    // The push that init starts asks for a sample.
    assert!(readable(fd, 3_000), "no wake-up for the first push");
    // q's main loop calls back on its main thread: the request is consumed.
    assert!(cb(fd).is_null());
    assert!(!readable(fd, 0), "callback drained the socket");
    // Each push asks again.
    let o = h.ok("kdbprom_push", &[h.id()]);
    (h.r0)(o);
    assert!(readable(fd, 3_000), "no wake-up for .prom.push[]");
    assert!(cb(fd).is_null());
    // Stop takes the socket out of q's loop without letting q close it, and closes it.
    let st = h.ok("kdbprom_stop", &[h.id()]);
    (h.r0)(st);
    assert_eq!(REMOVED.lock().unwrap().last(), Some(&(fd, 0)));
    // SAFETY: fcntl on a closed fd just fails with EBADF.
    assert_eq!(unsafe { libc::fcntl(fd, libc::F_GETFD) }, -1, "fd closed after stop");
}

fn text(h: &Host) -> String {
    let t = h.ok("kdbprom_text", &[h.id()]);
    let s = h.string(t);
    (h.r0)(t);
    s
}

/// Wakes "q" through the flusher (a push round asks for a sample) and plays q's main loop once.
fn wake(h: &Host, fd: i32, cb: extern "C" fn(i32) -> K) {
    let o = h.ok("kdbprom_push", &[h.id()]);
    (h.r0)(o);
    assert!(readable(fd, 3_000), "no wake-up for .prom.push[]");
    assert!(cb(fd).is_null());
}

/// Under `-b` (and `-u`) the bookkeeping step fails in the sd1 callback's handle context: the
/// read-only sample still lands at every wake-up, and the failure is reported once, with q's text
/// and what to do. In multithreaded input mode the callback writes nothing: `.prom.book[]` is
/// never evaluated there.
#[test]
fn the_wake_up_samples_read_only_and_reports_a_failing_bookkeeping_once() {
    let _g = lock();
    let h = host();
    assert_eq!(init(h, 5010, 0), "sd1");
    let (fd, cb) = registered();
    assert!(readable(fd, 3_000));
    assert!(cb(fd).is_null());
    READ_ONLY_Q.store(true, Ordering::SeqCst);
    EVALS.lock().unwrap().clear();
    let err = stderr_of(|| {
        for used in [1_111, 2_222, 3_333] {
            USED.store(used, Ordering::SeqCst);
            wake(h, fd, cb);
            assert!(text(h).contains(&format!("\nkdb_memory_used_bytes {used}\n")), "sample {used} did not land");
        }
    });
    READ_ONLY_Q.store(false, Ordering::SeqCst);
    assert_eq!(*EVALS.lock().unwrap(), [".prom.sampled[]", ".prom.book[]"].repeat(3), "read-only sample first, then the bookkeeping");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("cannot update q state")).collect();
    assert_eq!(lines.len(), 1, "reported once: {err}");
    assert!(lines[0].contains("(-b or -u?): noupdate;") && lines[0].contains(".prom.rewrap[] run from handle 0"), "{}", lines[0]);
    // The time of the last good sample is published (the sample-lag alert reads it) with the
    // sampling period in force.
    let t = text(h);
    let last: f64 = t.lines().find_map(|l| l.strip_prefix("kdbprom_last_sample_timestamp_seconds ")).unwrap().parse().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!(last > now - 30.0 && last <= now, "{last} vs {now}");
    assert!(t.contains("\nkdbprom_sample_interval_seconds 3600\n"), "{t}");
    let st = h.ok("kdbprom_stop", &[h.id()]);
    (h.r0)(st);

    // Multithreaded input mode: reads only.
    assert_eq!(init(h, -5010, 0), "sd1");
    let (fd, cb) = registered();
    assert!(readable(fd, 3_000));
    EVALS.lock().unwrap().clear();
    USED.store(4_444, Ordering::SeqCst);
    assert!(cb(fd).is_null());
    wake(h, fd, cb);
    assert_eq!(*EVALS.lock().unwrap(), [".prom.sampled[]"].repeat(2));
    assert!(text(h).contains("\nkdb_memory_used_bytes 4444\n"));
    let st = h.ok("kdbprom_stop", &[h.id()]);
    (h.r0)(st);
}
