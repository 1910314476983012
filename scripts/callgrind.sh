#!/usr/bin/env bash
# Instructions per call of the record path, as q calls the library (and the flusher's apply per event): .prom.inc[id;1] and the begin/end
# pair of a wrapped request. Runs examples/callgrind_record (release build) under callgrind at two call
# counts, one output file per thread, and prints for q's thread (I2 - I1) / (n2 - n1) in two ways:
# inside the exports (callgrind's inclusive cost of kdbprom_inc, or kdbprom_begin + kdbprom_end) and
# the whole thread (the exports plus the caller's loop); and, for the flusher thread, what applying one
# call's events costs. Init, loading and stop cancel out.
#
# Then it checks the promise the record path's common case rests on: it runs outside catch_unwind
# because nothing in it can panic. Every direct call the record exports make must be one of a short
# list (the TLS look-up, the clock, the consumer's wake-up, the guarded slow paths, and the abort
# landing pad every extern "C" function has); a call to a panic function fails the script.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { apt-get update -q >/dev/null; DEBIAN_FRONTEND=noninteractive apt-get install -y -q valgrind >/dev/null; }
scripts/fetch-libe.sh
cargo build -q --release --example callgrind_record
bin=target/release/examples/callgrind_record
lib=target/release/deps/libkdbprom.so
out=$(mktemp -d)
trap '[ -n "${KEEP:-}" ] || rm -rf "$out"' EXIT
run() { # mode n -> callgrind files $out/cg.mode.n-01 (q's thread) and -02 (the flusher)
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$out/cg.$1.$2" "$bin" "$1" "$2" 2>"$out/log.$1.$2" >/dev/null
}
total() { grep -E '^summary:' "$1" | awk '{print $2}'; }
inclusive() { # file function -> inclusive instructions of the function
  # awk reads to the end (no early exit): a closed pipe would fail the pipeline under pipefail.
  callgrind_annotate --inclusive=yes --auto=no "$1" 2>/dev/null | awk -v f=":$2 " '!seen && index($0 " ", f) && $0 !~ /=>/ {gsub(",", "", $1); print $1; seen = 1}'
}
n1=10000 n2=110000
for mode in inc request; do
  run "$mode" "$n1"; run "$mode" "$n2"
  if [ "$mode" = inc ]; then fns="kdbprom_inc"; else fns="kdbprom_begin kdbprom_end"; fi
  inside=0
  for f in $fns; do
    a=$(inclusive "$out/cg.$mode.$n1-01" "$f") b=$(inclusive "$out/cg.$mode.$n2-01" "$f")
    inside=$((inside + b - a))
  done
  thread=$(( $(total "$out/cg.$mode.$n2-01") - $(total "$out/cg.$mode.$n1-01") ))
  flusher=$(( $(total "$out/cg.$mode.$n2-02") - $(total "$out/cg.$mode.$n1-02") ))
  d=$((n2 - n1))
  echo "$mode: $((inside / d)) instructions a call inside the exports ($fns), $((thread / d)) on q's thread with the caller's loop; the flusher applies a call's events in $((flusher / d)) (callgrind, $n1 vs $n2 calls)"
done

# The flusher's apply alone, on benches/aggregate.rs's mixed workload (999,900 events a round).
cargo build -q --release --example aggregate_cg
for r in 1 3; do valgrind --tool=callgrind --callgrind-out-file="$out/agg.$r" target/release/examples/aggregate_cg "$r" >/dev/null 2>&1; done
echo "aggregation: $(( ($(total "$out/agg.3") - $(total "$out/agg.1")) / (2 * 999900) )) instructions an event (counter inc, gauge set, 16-bucket histogram observe, one third each)"

# The common case's calls: resolve each `call` of the exports (direct, or through the GOT) to a name.
python3 - "$lib" <<'PY'
import re, subprocess, sys
lib = sys.argv[1]
syms = {}
for line in subprocess.run(["nm", "-C", lib], capture_output=True, text=True, check=True).stdout.splitlines():
    p = line.split(" ", 2)
    if len(p) == 3 and p[0]:
        syms[int(p[0], 16)] = p[2]
got = {}
for line in subprocess.run(["readelf", "-rW", lib], capture_output=True, text=True, check=True).stdout.splitlines():
    m = re.match(r"\s*([0-9a-f]+)\s+\S+\s+R_X86_64_(RELATIVE|GLOB_DAT|JUMP_SLOT)\s+(\S+)(?:\s+(\S+))?", line)
    if m:
        got[int(m.group(1), 16)] = m.group(4) or syms.get(int(m.group(3), 16), m.group(3))
allowed = re.compile(r"__tls_get_addr|clock_gettime|Ring::signal|record_guarded|request_guarded|panic_cannot_unwind")
bad = []
for f in ["kdbprom_inc", "kdbprom_dec", "kdbprom_set", "kdbprom_observe", "kdbprom_begin", "kdbprom_end", "kdbprom_fail"]:
    asm = subprocess.run(["objdump", "-d", "-C", "--no-show-raw-insn", f"--disassemble={f}", lib], capture_output=True, text=True, check=True).stdout
    for line in asm.splitlines():
        if "call" not in line:
            continue
        m = re.search(r"# ([0-9a-f]+) <", line)
        target = got.get(int(m.group(1), 16), "?") if m else (re.search(r"<([^>]+)>", line) or [None, "?"])[1]
        if not allowed.search(target):
            bad.append(f"{f} calls {target}")
if bad:
    sys.exit("the record path's common case calls something that may panic:\n  " + "\n  ".join(bad))
print("record exports: every call of the common case is a TLS look-up, the clock, the wake-up or a guarded slow path (no panic)")
PY
