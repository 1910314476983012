#!/usr/bin/env bash
# Pictures of what the demo delivers, for the README ("For operators"): the simulated q batch job
# (examples/batch_job, the real .so in KX's libe.so) runs three times against a local Prometheus
# (remote write) and Pushgateway, then Debian's headless Chromium photographs
#   docs/pushgateway.png   the Pushgateway's page, the first run's group and one metric opened
#                          (the page as served, with the two panels a click would open shown open)
#   docs/prometheus.png    Prometheus's graph page (the classic UI Debian's build serves) for the
#                          rows each run pushed as it exited
# Installs what it needs when missing (receivers: scripts/install-deps.sh; chromium from Debian).
# Usage: scripts/screenshot.sh [OUTDIR]   (default docs/)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-docs}
mkdir -p "$out"
scripts/install-deps.sh
if ! command -v chromium >/dev/null; then
  echo "installing chromium" >&2
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >/dev/null
fi
cargo build -q --release --lib --example batch_job

. scripts/receivers.sh shots
start_receivers

# Three runs of the nightly job, a few seconds apart; each is a new instance (host:pid, no port).
for run in 1 2 3; do
  KDBPROM_DEMO_PUSHGATEWAY="http://127.0.0.1:$gp" KDBPROM_DEMO_REMOTE_WRITE="http://127.0.0.1:$pp/api/v1/write" \
    target/release/examples/batch_job >"$work/run$run.log" 2>&1
  echo "== run $run pushed: $(grep -c 'ok=true' "$work/run$run.log") targets ok"
  sleep 5
done

# Headless flags that work on this machine kind (no GPU, no sandbox as root, no background network).
shot() { # shot WIDTHxHEIGHT OUT URL
  local profile
  profile=$(mktemp -d "$work/chromium.XXXXXX")
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --hide-scrollbars --user-data-dir="$profile" \
    --window-size="${1/x/,}" --virtual-time-budget=10000 --screenshot="$2" "$3" >"$work/chromium.log" 2>&1 \
    || { cat "$work/chromium.log" >&2; return 1; }
  [ -s "$2" ] || { echo "no screenshot written to $2" >&2; cat "$work/chromium.log" >&2; return 1; }
  echo "== $2: $(stat -c %s "$2") bytes"
}

# The Pushgateway renders its groups collapsed: open the first group and its eod_rows_loaded_total
# panel in a copy of the page (assets still come from the gateway).
curl -sf "http://127.0.0.1:$gp/" >"$work/pgw.html"
python3 - "$work/pgw.html" "$gp" <<'PY'
import re, sys
path, port = sys.argv[1], sys.argv[2]
h = open(path, encoding="utf-8").read()
h = h.replace('id="j-1" class="collapse"', 'id="j-1" class="collapse show"', 1)
m = re.search(r'data-target="#(m-\d+)"[^>]*>\s*<span[^>]*></span>\s*eod_rows_loaded_total\s*<', h)
if not m:
    sys.exit("the Pushgateway page has no eod_rows_loaded_total panel")
h = h.replace('id="%s" class="collapse"' % m.group(1), 'id="%s" class="collapse show"' % m.group(1), 1)
h = h.replace("<head>", '<head><base href="http://127.0.0.1:%s/">' % port, 1)
open(path, "w", encoding="utf-8").write(h)
PY
shot 1280x900 "$out/pushgateway.png" "file://$work/pgw.html"

expr='sum by (table) (last_over_time(eod_rows_loaded_total{job="eod_load"}[15m]))'
q=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$expr")
shot 1280x800 "$out/prometheus.png" "http://127.0.0.1:$pp/classic/graph?g0.expr=$q&g0.tab=0&g0.stacked=0&g0.range_input=30s"

for f in "$out/pushgateway.png" "$out/prometheus.png"; do
  [ "$(stat -c %s "$f")" -lt 307200 ] || { echo "$f is 300 KB or more" >&2; exit 1; }
done
