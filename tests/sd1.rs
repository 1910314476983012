//! Process sampling through q's main loop: this binary exports `sd1`/`sd0x` stubs (build.rs exports
//! them), so the library registers with "q", the flusher wakes it at each push, and this test plays
//! q's main loop by calling the registered callback. Without `sd1` (every other host) it is `timer`.

mod common;

use common::{Host, host, lock};
use kdbplus::api::K;
use std::sync::Mutex;

static REGISTERED: Mutex<Vec<(i32, usize)>> = Mutex::new(Vec::new());
static REMOVED: Mutex<Vec<(i32, i32)>> = Mutex::new(Vec::new());

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
        assert_eq!(init(h, 0, timer), "timer", "timer {timer}");
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
    let (fd, cb) = *REGISTERED.lock().unwrap().last().unwrap();
    // SAFETY: the address was registered as `K(*)(I)`.
    let cb: extern "C" fn(i32) -> K = unsafe { std::mem::transmute(cb) };
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
    let (fd, cb) = *REGISTERED.lock().unwrap().last().expect("init registered with sd1");
    // SAFETY: the address was registered as `K(*)(I)`.
    let cb: extern "C" fn(i32) -> K = unsafe { std::mem::transmute(cb) };
    // The push that init starts asks for a sample.
    assert!(readable(fd, 3_000), "no wake-up for the first push");
    // q's main loop calls back on its main thread: the request is consumed (the q code it
    // evaluates needs a real q; libe answers with an error object, which the callback frees).
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
