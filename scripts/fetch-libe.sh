#!/usr/bin/env bash
# Fetches KX's libe.so (the K C API without q) from the pinned pykx wheel into .kx/, checking its sha256.
# Never committed: it is fetched at test time. Idempotent: a present file with the right hash is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
PYKX_VERSION=4.2.0
LIBE_SHA256=c1b4b03db5f57360969a72213beebdcdf5dee99eb90ba67f0275899ac49c66ce
out=.kx/libe.so
if [ -f "$out" ] && echo "$LIBE_SHA256  $out" | sha256sum -c --quiet 2>/dev/null; then exit 0; fi
mkdir -p .kx
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux2014_x86_64 -d "$tmp" "pykx==$PYKX_VERSION"
python3 - "$tmp" <<'PY'
import glob, sys, zipfile
whl = glob.glob(sys.argv[1] + "/pykx-*.whl")[0]
with zipfile.ZipFile(whl) as z:
    for src, dst in (("pykx/lib/l64/libe.so", ".kx/libe.so"), ("pykx/include/k.h", ".kx/k.h")):
        with z.open(src) as f, open(dst, "wb") as g:
            g.write(f.read())
PY
echo "$LIBE_SHA256  $out" | sha256sum -c --quiet || { echo "libe.so sha256 mismatch" >&2; rm -f "$out"; exit 1; }
