#!/usr/bin/env bash
# Fetches Prometheus 3.x from Debian sid into .work/sid/ (a live remote-write 2.0 receiver for
# tests/rw2_live.rs), without installing anything: the package is downloaded with apt into a
# private apt state and unpacked with dpkg-deb -x (reference: receivers.md §9). The system's apt
# sources and packages stay as they are. Prints the version. Skips the download when present.
set -euo pipefail
cd "$(dirname "$0")/.."
D=$PWD/.work/sid
BIN=$D/x/usr/bin/prometheus
if [ ! -x "$BIN" ]; then
  mkdir -p "$D/lists/partial" "$D/cache/archives/partial" "$D/x"
  U=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  U=${U:-http://deb.debian.org/debian}
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $U sid main" >"$D/sources.list"
  O=(-o Dir::Etc::SourceList="$D/sources.list" -o Dir::Etc::SourceParts=/dev/null
     -o Dir::State::Lists="$D/lists" -o Dir::Cache="$D/cache")
  echo "fetching prometheus from Debian sid into $D" >&2
  apt-get "${O[@]}" update -q >/dev/null
  (cd "$D" && apt-get "${O[@]}" download prometheus) >/dev/null 2>&1 \
    || (cd "$D" && apt-get "${O[@]}" download prometheus)
  deb=$(ls -t "$D"/prometheus_*.deb | head -1)
  dpkg-deb -x "$deb" "$D/x"
fi
"$BIN" --version 2>&1 | head -1
