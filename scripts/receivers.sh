# Sourced by scripts/demo.sh and scripts/screenshot.sh: a scratch dir ($work), and Prometheus (as a
# remote-write receiver) and the Pushgateway on free loopback ports, stopped by PID when the script exits.
work=$(mktemp -d -t "kdbprom-${1:-run}.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ready() { for _ in $(seq 200); do [ "$(curl -s -o /dev/null -w '%{http_code}' "$1")" = 200 ] && return 0; sleep 0.05; done; echo "not ready: $1" >&2; return 1; }
# Starts both receivers and waits until they are ready; sets pp (Prometheus) and gp (Pushgateway).
start_receivers() {
  pp=$(port); gp=$(port)
  printf 'global:\n  scrape_interval: 15s\n' > "$work/prom.yml"
  prometheus --config.file="$work/prom.yml" --storage.tsdb.path="$work/prom" --web.listen-address="127.0.0.1:$pp" \
    --web.enable-remote-write-receiver --log.level=warn 2>"$work/prom.log" & pids+=($!)
  prometheus-pushgateway --web.listen-address="127.0.0.1:$gp" --persistence.file= --log.level=warn 2>"$work/pgw.log" & pids+=($!)
  ready "http://127.0.0.1:$pp/-/ready"; ready "http://127.0.0.1:$gp/-/ready"
}
