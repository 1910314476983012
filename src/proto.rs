//! The remote-write 1.0 messages generated from `proto/remote.proto` (used to decode and verify
//! what the encoder writes; the encoder itself writes the same wire format directly).
#![allow(missing_docs, clippy::all)]

include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));
