//! The remote-write messages generated from `proto/` (used to decode and verify what the
//! encoders write; the encoders themselves write the same wire format directly): 1.0 at the top
//! level, 2.0 in [`v2`], and the Pushgateway's `io.prometheus.client.MetricFamily` in [`client`].
#![allow(missing_docs, clippy::all)]

include!(concat!(env!("OUT_DIR"), "/prometheus.rs"));

/// Remote write 2.0 (`io.prometheus.write.v2`).
pub mod v2 {
    include!(concat!(env!("OUT_DIR"), "/io.prometheus.write.v2.rs"));
}

/// The client data model (`io.prometheus.client`): what the Pushgateway takes as delimited protobuf.
pub mod client {
    include!(concat!(env!("OUT_DIR"), "/io.prometheus.client.rs"));
}
