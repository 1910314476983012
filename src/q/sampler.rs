//! Process sampling on q's main thread through `sd1`, the spec's preferred path.
//!
//! `.Q.w[]` and `.z.W` can only be read on q's main thread. When the host exports `sd1` (q does; a
//! test host without it samples only at init, push, stop and exit), init registers one end of a
//! socket pair with q's event loop; the flusher writes a byte to the other end as each push round
//! starts, and q then calls [`on_wake`] on its main thread. The sample lands in the ring and rides
//! in the next push. `sd1`, `sd0` and `sd0x` are looked up at run time, so the library still
//! loads in hosts that lack them.
//!
//! q runs an `sd1` callback in the handle context of the registered socket, not of handle 0, so
//! `-b` refuses global writes there and `-u` system commands (KX: "Callbacks from sd1 … are also
//! subject to permissions checks"). The wake-up therefore makes two calls: `.prom.sampled[]`,
//! which only reads and hands the figures over, and `.prom.book[]`, which writes q state (`\e`,
//! handlers re-wrapped) and whose failure is reported once on stderr with q's text. In
//! multithreaded input mode (`-p -N`) any main-thread update waits for the queries in flight and
//! blocks new ones, so there the wake-up only reads.
//!
//! q's event loop belongs to its main thread. A `.prom.stop[]` that a client runs on another thread
//! (multithreaded input mode) leaves the socket registered; the flusher's end closes as it stops,
//! and q's main loop, seeing end of file, calls [`on_wake`], which takes the socket out there.

use crate::flusher::Hook;
use kdbplus::api::native::{k, r0};
use kdbplus::api::{K, k0};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

type Callback = extern "C" fn(i32) -> K;
type Sd1 = unsafe extern "C" fn(i32, Callback) -> K;
type Sd0 = unsafe extern "C" fn(i32);
type Sd0x = unsafe extern "C" fn(i32, i32);

/// q's end of the socket pair, kept open while registered, and the thread that registered it.
static REGISTERED: Mutex<Option<(UnixStream, std::thread::ThreadId)>> = Mutex::new(None);
/// Multithreaded input mode: the wake-up only reads.
static READ_ONLY: AtomicBool = AtomicBool::new(false);
/// Causes already reported on stderr (one line per cause, not one per wake-up).
static REPORTED: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn lookup(name: &std::ffi::CStr) -> Option<*mut libc::c_void> {
    // SAFETY: dlsym with RTLD_DEFAULT searches the loaded objects; a null answer means "absent".
    let p = unsafe { libc::dlsym(libc::RTLD_DEFAULT, name.as_ptr()) };
    (!p.is_null()).then_some(p)
}

/// Registers with q's main loop; returns the hook that wakes it, or None when the host has no
/// `sd1`. `read_only`: multithreaded input mode, where the wake-up writes no q global.
pub fn register(read_only: bool) -> Option<Hook> {
    let sd1 = lookup(c"sd1")?;
    // SAFETY: q's sd1 has the C signature `K sd1(I, K(*)(I))`.
    let sd1: Sd1 = unsafe { std::mem::transmute::<*mut libc::c_void, Sd1>(sd1) };
    let (q_end, flusher_end) = UnixStream::pair().ok()?;
    q_end.set_nonblocking(true).ok()?;
    flusher_end.set_nonblocking(true).ok()?;
    remove(true);
    READ_ONLY.store(read_only, Ordering::Relaxed);
    // SAFETY: the fd stays open (held in REGISTERED) until `remove` takes it out of q's loop (from
    // deregister, a new register, or on_wake at end of file).
    unsafe { sd1(q_end.as_raw_fd(), on_wake) };
    *REGISTERED.lock().unwrap_or_else(|p| p.into_inner()) = Some((q_end, std::thread::current().id()));
    // A full socket means q has a wake-up pending already: dropping this one loses nothing.
    Some(Arc::new(move || drop((&flusher_end).write(&[1]))))
}

/// Removes our socket from q's main loop and closes it, on the thread that registered it; on any
/// other thread it is left for q's main loop to remove at end of file (see [`on_wake`]).
pub fn deregister() {
    remove(false);
}

fn remove(anywhere: bool) {
    let mut registered = REGISTERED.lock().unwrap_or_else(|p| p.into_inner());
    if !anywhere && registered.as_ref().is_some_and(|(_, t)| *t != std::thread::current().id()) {
        return;
    }
    let Some((q_end, _)) = registered.take() else { return };
    drop(registered);
    let fd = q_end.as_raw_fd();
    if let Some(f) = lookup(c"sd0x") {
        // SAFETY: `void sd0x(I, I)`; with 0 q leaves the fd open, and dropping q_end closes it.
        unsafe { std::mem::transmute::<*mut libc::c_void, Sd0x>(f)(fd, 0) };
    } else if let Some(f) = lookup(c"sd0") {
        // SAFETY: `void sd0(I)` closes the fd itself, so q_end must not close it again.
        unsafe { std::mem::transmute::<*mut libc::c_void, Sd0>(f)(fd) };
        std::mem::forget(q_end);
    }
}

/// Called by q on its main thread when the flusher asked for a sample.
extern "C" fn on_wake(fd: i32) -> K {
    let _ = std::panic::catch_unwind(|| {
        let mut buf = [0u8; 64];
        // SAFETY: reading into a local buffer from our own non-blocking socket.
        let mut n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        while n > 0 {
            // SAFETY: as above.
            n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
        }
        if n == 0 {
            // End of file: the flusher stopped and closed its end. Only q's main thread may
            // change q's loop, and this is it; a stale fd (already replaced) is left alone.
            if REGISTERED.lock().unwrap_or_else(|p| p.into_inner()).as_ref().is_some_and(|(s, _)| s.as_raw_fd() == fd) {
                remove(true);
            }
            return;
        }
        if let Err(e) = eval(c".prom.sampled[]") {
            report(format!("the process sample failed on q's main loop: {e}"));
        }
        if READ_ONLY.load(Ordering::Relaxed) {
            return;
        }
        if let Err(e) = eval(c".prom.book[]") {
            report(format!(
                "cannot update q state from q's main loop (-b or -u?): {e}; process metrics are still sampled, \
                 but handlers assigned later are re-wrapped only by .prom.rewrap[] run from handle 0 (the console, a .z.ts of yours, or your init script)"
            ));
        }
    });
    std::ptr::null_mut()
}

/// Evaluates `expr` in q; the error text when it signals.
fn eval(expr: &std::ffi::CStr) -> Result<(), String> {
    // SAFETY: k evaluates q on q's main thread (where q calls us); its result, a value or an
    // error object, is ours to free.
    let r = unsafe { k(0, expr.as_ptr(), std::ptr::null_mut::<k0>()) };
    if r.is_null() {
        // q itself answers null only when the connection (here: none) failed; libe does when the
        // expression cannot be evaluated at all.
        return Err("no answer".into());
    }
    // SAFETY: r is a valid object k handed to us; an error (type -128) holds its message in `s`.
    let out = unsafe {
        if (*r).qtype == -128 {
            let msg = (*r).value.symbol;
            Err(if msg.is_null() { "error".into() } else { std::ffi::CStr::from_ptr(msg).to_string_lossy().into_owned() })
        } else {
            Ok(())
        }
    };
    // SAFETY: r is a fresh object k handed to us.
    unsafe { r0(r) };
    out
}

/// Prints `line` on stderr unless it was printed before.
fn report(line: String) {
    let mut seen = REPORTED.lock().unwrap_or_else(|p| p.into_inner());
    if !seen.contains(&line) && seen.len() < 64 {
        crate::warn!("{line}");
        seen.push(line);
    }
}
