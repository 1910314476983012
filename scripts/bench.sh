#!/usr/bin/env bash
# Benchmarks, each figure beside a peer measured in the same run (not part of scripts/test.sh:
# too slow and noisy for CI). Instruction counts (scripts/callgrind.sh), criterion benches, the idle
# flusher (examples/idle_cost), then CPU per 1,000-series Pushgateway push:
# kdbprom vs python prometheus_client.push_to_gateway against the same local gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# Instruction counts of the record path and the flusher's apply, and the no-panic check of the
# record exports (callgrind: stable under load, unlike the times below).
scripts/callgrind.sh
cargo bench --bench ring_push --bench aggregate --bench record_ffi --bench observe_vector --bench encode_text --bench encode_remote_write 2>&1 | grep -E '^[a-z_0-9]+/|time:|thrpt:'
cargo build -q --release --example push_cost
work=$(mktemp -d -t kdbprom-bench.XXXXXX)
gp=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
prometheus-pushgateway --web.listen-address="127.0.0.1:$gp" --persistence.file= --log.level=warn 2>"$work/pgw.log" & pid=$!
trap 'kill $pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$gp/-/ready" >/dev/null && break; sleep 0.05; done
for run in 1 2 3; do
  target/release/examples/push_cost "http://127.0.0.1:$gp" 1000 100
  .work/py/bin/python - "$gp" <<'PY'
import resource, sys, time
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway
reg = CollectorRegistry()
g = Gauge("bench_gauge_py", "A gauge with many label values.", ["label"], registry=reg)
for i in range(1000):
    g.labels(f"value{i}").set(i)
url = f"127.0.0.1:{sys.argv[1]}"
push_to_gateway(url, job="pushcost_py", registry=reg)
r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.time()
for _ in range(100):
    push_to_gateway(url, job="pushcost_py", registry=reg)
r1, t1 = resource.getrusage(resource.RUSAGE_SELF), time.time()
cpu = (r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime) / 100
print(f"python push_to_gateway of 1000 series: {cpu*1e3:.3f} ms CPU, {(t1-t0)*10:.2f} ms wall per push over 100")
PY
done
# The floor under those pushes: the same body PUT over a bare kept-alive TcpStream (all kernel time).
target/release/examples/push_cost "http://127.0.0.1:$gp" 1000 100 client=raw

# The idle flusher: wake-ups a second and CPU an hour of an agent that records nothing.
cargo build -q --release --example idle_cost
target/release/examples/idle_cost "${IDLE_SECONDS:-60}"

# End to end, with the real .so in the libe host, against real receivers on loopback.
cargo build -q --release --example e2e
pp=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
printf 'global:\n  scrape_interval: 15s\n' > "$work/recv.yml"
prometheus --config.file="$work/recv.yml" --storage.tsdb.path="$work/recv" --web.listen-address="127.0.0.1:$pp" \
  --web.enable-remote-write-receiver --log.level=warn 2>"$work/recv.log" & rpid=$!
trap 'kill $pid $rpid ${apid:-} ${spid:-} 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$pp/-/ready" >/dev/null && break; sleep 0.05; done
target/release/examples/e2e first-sample "$pp"
echo "  (Prometheus agent mode: its first scrape reaches the receiver ~6 s after start, shared/reference/receivers.md §7)"
target/release/examples/e2e stop "http://127.0.0.1:$gp" "http://127.0.0.1:$pp/api/v1/write"
target/release/examples/e2e memory
target/release/examples/e2e replay "http://127.0.0.1:$pp/api/v1/write"

# CPU per million samples delivered: kdbprom pushing 1,000 series every second, vs Prometheus agent
# mode scraping the same 1,000 series from a static /metrics every second and remote-writing them.
secs=${BENCH_SECONDS:-30}
target/release/examples/e2e steady "http://127.0.0.1:$pp/api/v1/write" "$secs"
sp=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
ap=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$work/static"
python3 -c 'print("# TYPE e2e_value gauge"); [print(f"e2e_value{{label=\"value{i}\"}} {i}") for i in range(1000)]' > "$work/static/metrics"
python3 -m http.server "$sp" --bind 127.0.0.1 --directory "$work/static" >/dev/null 2>&1 & spid=$!
cat > "$work/agent.yml" <<YML
global: { scrape_interval: 1s, scrape_timeout: 1s }
scrape_configs: [ { job_name: static, static_configs: [ { targets: ['127.0.0.1:$sp'] } ] } ]
remote_write: [ { url: 'http://127.0.0.1:$pp/api/v1/write', queue_config: { batch_send_deadline: 1s } } ]
YML
prometheus --enable-feature=agent --config.file="$work/agent.yml" --storage.agent.path="$work/agent" \
  --web.listen-address="127.0.0.1:$ap" --log.level=warn 2>"$work/agent.log" & apid=$!
sleep 10
ticks() { awk '{print $14+$15}' "/proc/$apid/stat"; }
sent() { curl -s "http://127.0.0.1:$ap/metrics" | awk '/^prometheus_remote_storage_samples_total/ {s+=$2} END {printf "%d", s}'; }
t0=$(ticks); s0=$(sent); sleep "$secs"; t1=$(ticks); s1=$(sent)
python3 -c "c=($t1-$t0)/100; s=$s1-$s0; print(f'Prometheus agent mode: {s} samples in $secs s, {c:.3f} CPU s, {c/s*1e6:.3f} CPU s per million samples')"
