//! The process-exit hook: the final push when the process ends without `.prom.stop[]`.
//!
//! q runs `.z.exit` only on some paths, and the wrapper there is lost as soon as a script assigns
//! `.z.exit` after `.prom.init`. C `exit` is where every orderly end meets (q's `exit`, the end of
//! a script's input, `exit` from any thread), so the first init registers a C `atexit` handler
//! that stops the agent still running: drain the ring, final push with stale markers within
//! `exit_deadline_ms`, spool what is left. It never calls into q (q is going away). A
//! `.prom.stop[]` first makes it a no-op: [`crate::agent::Agent::stop`] runs once, and a second
//! caller waits for the first to finish.
//!
//! The handler is registered twice. glibc before 2.41 lets a second thread that calls `exit`
//! run the handlers the first has not taken yet and then end the process, while the first is
//! still pushing; the second copy of the handler, run by that second thread, waits inside
//! `Agent::stop` until the push is done. SIGKILL and crashes run nothing: what the last interval
//! push carried is what arrived.

use std::sync::Once;

/// Registers the hook, once per process (each later init reuses it: it stops whichever agent is
/// current at exit).
pub fn register() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: atexit stores plain function pointers. q never unloads a library it bound with
        // `2:`; were it unloaded, glibc's atexit (a __cxa_atexit keyed by this object) would run
        // the handlers then, while the code is still mapped.
        unsafe {
            libc::atexit(at_exit);
            libc::atexit(at_exit);
        }
    });
}

extern "C" fn at_exit() {
    // A panic must not unwind into libc's exit.
    let _ = std::panic::catch_unwind(|| {
        // Agent::stop runs once: a caller that finds it stopped, or stopping on another thread,
        // waits for that final push to be done and gets no outcomes, so only the first reports.
        if let Some(a) = super::current() {
            report(a.stop());
        }
    });
}

/// One line on stderr: the final push happened here, not in `.prom.stop[]`, and how it went.
fn report(stopped: Result<(crate::stats::StatsView, Vec<crate::push::Outcome>), crate::agent::AgentError>) {
    let how = match stopped {
        // Another thread's stop won the race (it reports its own), or there is no target.
        Ok((_, outcomes)) if outcomes.is_empty() => return,
        Ok((_, outcomes)) => outcomes
            .iter()
            .map(|o| match (o.ok, o.message.is_empty()) {
                (true, _) => format!("{} ok", o.target),
                (false, true) => format!("{} failed", o.target),
                (false, false) => format!("{} failed ({})", o.target, o.message),
            })
            .collect::<Vec<_>>()
            .join(", "),
        Err(e) => e.to_string(),
    };
    crate::info!("final push at process exit (.prom.stop[] was not called): {how}");
}
