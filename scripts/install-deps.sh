#!/usr/bin/env bash
# Installs what the tests and the demo need on a fresh Debian machine, skipping what is present:
# Prometheus (promtool, remote-write receiver), the Pushgateway, VictoriaMetrics and node_exporter
# (the textfile collector) from Debian;
# python prometheus_client (a reference text parser) in .work/py; KX's libe.so in .kx/; Prometheus 3.x
# from Debian sid unpacked in .work/sid/ (a remote-write 2.0 receiver; nothing installed: scripts/fetch-sid.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
command -v promtool >/dev/null && command -v prometheus >/dev/null || need+=(prometheus)
command -v prometheus-pushgateway >/dev/null || need+=(prometheus-pushgateway)
command -v victoria-metrics >/dev/null || need+=(victoria-metrics)
command -v prometheus-node-exporter >/dev/null || need+=(prometheus-node-exporter)
command -v curl >/dev/null || need+=(curl)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]}" >&2
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
if ! .work/py/bin/python -c 'import prometheus_client, bcrypt' 2>/dev/null; then
  mkdir -p .work
  python3 -m venv .work/py
  .work/py/bin/pip install -q prometheus_client==0.26.0 bcrypt==5.0.0
fi
scripts/fetch-libe.sh
scripts/fetch-sid.sh
