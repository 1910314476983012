#!/usr/bin/env bash
# Installs what the tests need, then runs every test: unit, doc, host (real .so in KX's libe),
# parsers (promtool, prometheus_client) and integration against real receivers; benches are compiled.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The operator's kit (monitoring/): alert and KX 1.x compatibility rules, and their unit tests.
promtool check rules monitoring/alerts.yml monitoring/kx1-compat.rules.yml
promtool test rules monitoring/alerts_test.yml monitoring/kx1-compat_test.yml
# The spool is on by default in $XDG_STATE_HOME/kdbprom: tests (and the examples they start) use a
# state directory of their own, never the user's (the host harness gives each test process one too).
export XDG_STATE_HOME="${TMPDIR:-/tmp}/kdbprom-test-state-$$"
mkdir -p "$XDG_STATE_HOME"
trap 'rm -rf "$XDG_STATE_HOME"' EXIT
# Formatting is part of the build's contract (rustfmt.toml): a file out of format fails here, not in review.
cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
cargo fmt --check
# The receivers tests run examples/batch_job as a separate process: build it under its plain name first.
cargo build --examples
cargo test --all-targets --no-fail-fast
cargo test --doc
cargo bench --no-run -q
if command -v q >/dev/null && [ -n "${QHOME:-}" ]; then
  cargo build -q
  KDBPROM_LIB="$PWD/target/debug/libkdbprom" q q/test.q -q </dev/null
else
  if command -v q >/dev/null; then why="QHOME unset"; else why="no q on PATH"; fi
  echo "scripts/test.sh: q/test.q not run: no licensed q ($why); the q scripts are exercised through their library calls in tests/q_lines.rs" >&2
fi
