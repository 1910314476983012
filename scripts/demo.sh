#!/usr/bin/env bash
# The main job, no q needed: a simulated q batch job drives the real libkdbprom.so inside KX's libe.so,
# pushes its final state as it exits, and we read back what arrived. Prometheus and the Pushgateway
# are installed when missing (scripts/install-deps.sh), run on free loopback ports and stopped
# afterwards; only if they cannot be installed does the job fall back to a textfile.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh || echo "== could not install the receivers; the demo falls back to a textfile" >&2
scripts/fetch-libe.sh
cargo build -q --release --lib --example batch_job
. scripts/receivers.sh demo
if command -v prometheus >/dev/null && command -v prometheus-pushgateway >/dev/null && command -v curl >/dev/null; then
  start_receivers
  echo "== receivers: Prometheus 127.0.0.1:$pp (remote write), Pushgateway 127.0.0.1:$gp"
  KDBPROM_DEMO_PUSHGATEWAY="http://127.0.0.1:$gp" KDBPROM_DEMO_REMOTE_WRITE="http://127.0.0.1:$pp/api/v1/write" \
    target/release/examples/batch_job
  echo "== the job has exited; its stale markers ended its series, so read back the last values from Prometheus (remote write):"
  for q in 'eod_rows_loaded_total' 'eod_file_load_seconds_count' 'eod_row_bytes{quantile="0.99"}' 'kdb_request_errors_total{handler="sync"}'; do
    name=${q%%\{*}
    curl -s -G "http://127.0.0.1:$pp/api/v1/query" --data-urlencode "query=last_over_time($q[10m])" | NAME=$name python3 -c '
import json,os,sys
for r in json.load(sys.stdin)["data"]["result"]:
    m=r["metric"]; m.pop("__name__", None)
    print("  %s{%s} %s" % (os.environ["NAME"], ",".join("%s=\"%s\"" % kv for kv in sorted(m.items())), r["value"][1]))'
  done
  echo "== and from the Pushgateway (group job=eod_load):"
  curl -s "http://127.0.0.1:$gp/metrics" | grep -E '^(eod_rows_loaded_total|eod_file_load_seconds_count|push_time_seconds)\{' | sed 's/^/  /'
else
  echo "== prometheus/prometheus-pushgateway not installed (scripts/install-deps.sh): pushing to a textfile"
  (cd "$work" && "$OLDPWD/target/release/examples/batch_job")
  echo "== the job has exited; $work/kdbprom_eod_load.prom holds:"
  grep -E '^eod_rows_loaded_total' "$work/kdbprom_eod_load.prom" | sed 's/^/  /'
fi
