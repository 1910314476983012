#!/usr/bin/env bash
# The main job, no q needed: a simulated q batch job drives the real libkdbprom.so inside KX's libe.so.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fetch-libe.sh
cargo build -q --release --lib --example batch_job
target/release/examples/batch_job
