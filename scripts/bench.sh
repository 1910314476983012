#!/usr/bin/env bash
# Benchmarks, each figure beside a peer measured in the same run (not part of scripts/test.sh:
# too slow and noisy for CI). Criterion benches, then CPU per 1,000-series Pushgateway push:
# kdbprom vs python prometheus_client.push_to_gateway against the same local gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
cargo bench --bench ring_push --bench aggregate --bench record_ffi --bench encode 2>&1 | grep -E '^[a-z_0-9]+/|time:|thrpt:'
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
