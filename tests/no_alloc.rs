//! The scalar record path allocates nothing: checked with a counting global allocator.

use kdbprom::agent::Agent;
use kdbprom::builtin::ProcessInfo;
use kdbprom::config::Config;
use kdbprom::event::Op;
use kdbprom::registry::Kind;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

struct Counting;

// SAFETY: forwards to the system allocator; the counter is a thread-local Cell (no allocation).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        ALLOCS.with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        unsafe { System.dealloc(p, l) }
    }
}

#[global_allocator]
static A: Counting = Counting;

#[test]
fn scalar_records_and_request_timing_do_not_allocate() {
    let a = Agent::start(Config { ring_capacity: 1 << 16, ..Config::default() }, &ProcessInfo::default()).unwrap();
    a.declare("c_total", "", Kind::Counter, &["k"], &[]).unwrap();
    a.declare("h_seconds", "", Kind::Histogram, &[], &[]).unwrap();
    let c = a.series("c_total", &["x"]).unwrap();
    let h = a.by_name("h_seconds").unwrap();
    let before = ALLOCS.with(Cell::get);
    for i in 0..10_000 {
        a.record(c, Op::Inc, 1.0).unwrap();
        a.record(h, Op::Observe, f64::from(i) * 1e-4).unwrap();
        a.request(0, 0.001, i % 7 == 0).unwrap();
        a.connection(1, i64::from(i % 50), i % 2 == 0).unwrap();
    }
    assert_eq!(ALLOCS.with(Cell::get) - before, 0);
}
