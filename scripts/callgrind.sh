#!/usr/bin/env bash
# Instructions per call of the record path, as q calls the library: .prom.inc[id;1] and the begin/end
# pair of a wrapped request. Runs examples/callgrind_record (release build) under callgrind at two call
# counts and prints (I2 - I1) / (n2 - n1): what init, loading and stop cost cancels out.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { apt-get update -q >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind >/dev/null; }
scripts/fetch-libe.sh
cargo build -q --release --example callgrind_record
bin=target/release/examples/callgrind_record
out=$(mktemp -d)
total() { # mode n -> instructions of the whole run
  valgrind --tool=callgrind --callgrind-out-file="$out/cg.$1.$2" "$bin" "$1" "$2" 2>"$out/log.$1.$2" >/dev/null
  grep -E '^summary:' "$out/cg.$1.$2" | awk '{print $2}'
}
for mode in inc request; do
  n1=10000 n2=110000
  i1=$(total "$mode" "$n1") i2=$(total "$mode" "$n2")
  echo "$mode: $(( (i2 - i1) / (n2 - n1) )) instructions a call (callgrind, $n1 vs $n2 calls)"
done
rm -rf "$out"
