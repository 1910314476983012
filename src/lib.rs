//! kdbprom: push Prometheus metrics from kdb+/q.
//!
//! q records events through the exported functions of the q boundary ([`q`]) into a bounded
//! lock-free [`ring`]; the [`flusher`] thread drains it into an [`aggregate::Aggregator`], takes
//! [`snapshot`]s and encodes them ([`encode`]). Everything but the q boundary is plain safe Rust.

#![deny(unsafe_code)]
#![warn(missing_docs)]
#![warn(clippy::undocumented_unsafe_blocks)]

pub mod agent;
pub mod aggregate;
pub mod builtin;
pub mod collect;
pub mod compat;
pub mod config;
pub mod encode;
pub mod event;
pub mod flusher;
pub mod handles;
pub mod log;
pub mod name;
pub mod process;
pub mod proto;
pub mod push;
pub mod registry;
pub mod ring;
pub mod snapshot;
pub mod state;
pub mod stats;
pub mod telemetry;

// The q boundary is left out of the lib's unit-test binary, which has no q to resolve K symbols;
// the host tests in tests/ load the real .so instead.
#[cfg(not(test))]
#[allow(unsafe_code)]
pub mod q;
