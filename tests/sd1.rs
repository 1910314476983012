//! Process sampling through q's main loop: this binary exports `sd1`/`sd0x` stubs (build.rs exports
//! them), so the library registers with "q", the flusher wakes it at each push, and this test plays
//! q's main loop by calling the registered callback. Without `sd1` (every other host) it is `timer`.

mod common;

use common::host;
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

#[test]
fn the_flusher_wakes_q_main_loop_to_sample_and_stop_deregisters() {
    let h = host();
    let cfg = h.dict(&["textfile", "interval_ms"], &[h.str("/dev/null"), h.j(3_600_000)]);
    let r = h.ok("kdbprom_init", &[cfg, h.id()]);
    let settings: std::collections::HashMap<String, K> = h.dict_items(r).into_iter().collect();
    assert_eq!(h.sym(settings["sampler"]), "sd1");
    (h.r0)(r);
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
