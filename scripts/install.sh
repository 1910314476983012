#!/usr/bin/env bash
# Builds the release library and installs it with q/kdbprom.q so that `\l kdbprom.q` finds both.
#
#   scripts/install.sh [QHOME]        q's own layout (default: $QHOME):
#                                       QHOME/kdbprom.q
#                                       QHOME/<os dir>/libkdbprom.so      (l64 on Linux x86-64, l64arm on arm64)
#                                       QHOME/libkdbprom.so -> <os dir>/libkdbprom.so
#   scripts/install.sh --prefix DIR   one directory: DIR/kdbprom.q and DIR/libkdbprom.so
#
# kdbprom.q loads $KDBPROM_LIB when set, else libkdbprom.so beside itself; the link in QHOME is that
# file, and q's `2:` also falls back to the directory of the q binary (QHOME/l64), so both lookups
# land on the one library in the os dir. Then: `q` (QHOME set) and `\l kdbprom.q`, or
# `\l DIR/kdbprom.q` for a prefix. --no-build installs the library already in target/release.
set -euo pipefail
script=$(cd "$(dirname "$0")" && pwd)/$(basename "$0")
usage() { sed -n '2,13p' "$script" | sed 's/^# \{0,1\}//' >&2; exit 2; }
absolute() { case "$1" in /*) printf '%s' "$1" ;; *) printf '%s/%s' "$PWD" "$1" ;; esac; }
build=1 prefix= qhome=
while [ $# -gt 0 ]; do
  case "$1" in
    --prefix) [ $# -ge 2 ] || usage; prefix=$2; shift 2 ;;
    --prefix=*) prefix=${1#--prefix=}; shift ;;
    --no-build) build=0; shift ;;
    -h|--help) usage ;;
    -*) echo "install.sh: unknown option $1" >&2; usage ;;
    *) [ -z "$qhome" ] || usage; qhome=$1; shift ;;
  esac
done
if [ -n "$prefix" ] && [ -n "$qhome" ]; then echo "install.sh: give QHOME or --prefix, not both" >&2; exit 2; fi
if [ -z "$prefix" ] && [ -z "$qhome" ]; then
  qhome=${QHOME:-}
  [ -n "$qhome" ] || { echo "install.sh: QHOME is not set: give it as the argument, or use --prefix DIR" >&2; exit 2; }
fi
# Paths are taken relative to where the script was called from; the build runs in the repo.
[ -z "$prefix" ] || prefix=$(absolute "$prefix")
[ -z "$qhome" ] || qhome=$(absolute "$qhome")
cd "$(dirname "$script")/.."

case "$(uname -s)/$(uname -m)" in
  Linux/x86_64) osdir=l64 ;;
  Linux/aarch64|Linux/arm64) osdir=l64arm ;;
  *) echo "install.sh: $(uname -s)/$(uname -m) is not supported (kdbprom builds a Linux .so)" >&2; exit 1 ;;
esac

if [ "$build" = 1 ]; then
  cargo build --release --lib
fi
lib=target/release/libkdbprom.so
[ -f "$lib" ] || { echo "install.sh: $lib is missing (build it, or drop --no-build)" >&2; exit 1; }

# Copy to a temporary name and rename, so a q process loading the library never sees half a file.
put() { # put SRC DEST MODE
  local tmp
  tmp=$(mktemp "$2.XXXXXX")
  cp "$1" "$tmp"
  chmod "$3" "$tmp"
  mv -f "$tmp" "$2"
}

# The release profile keeps line tables (debug = 1) for profiles and backtraces; the installed
# library goes without them (about 6 MB instead of 38), and they go beside it as
# libkdbprom.so.debug, which gdb and perf find through the library's .gnu_debuglink.
put_lib() { # put_lib DIR
  local tmp
  if ! command -v objcopy >/dev/null; then
    echo "install.sh: objcopy (binutils) not found: installing the library with its debug info" >&2
    put "$lib" "$1/libkdbprom.so" 755
    return
  fi
  tmp=$(mktemp -d)
  objcopy --only-keep-debug "$lib" "$tmp/libkdbprom.so.debug"
  objcopy --strip-debug --add-gnu-debuglink="$tmp/libkdbprom.so.debug" "$lib" "$tmp/libkdbprom.so"
  put "$tmp/libkdbprom.so.debug" "$1/libkdbprom.so.debug" 644
  put "$tmp/libkdbprom.so" "$1/libkdbprom.so" 755
  rm -rf "$tmp"
}

if [ -n "$prefix" ]; then
  mkdir -p "$prefix"
  put_lib "$prefix"
  put q/kdbprom.q "$prefix/kdbprom.q" 644
  echo "installed $prefix/libkdbprom.so and $prefix/kdbprom.q"
  echo "load with: \\l $prefix/kdbprom.q"
else
  mkdir -p "$qhome/$osdir"
  put_lib "$qhome/$osdir"
  put q/kdbprom.q "$qhome/kdbprom.q" 644
  ln -sfn "$osdir/libkdbprom.so" "$qhome/libkdbprom.so"
  echo "installed $qhome/$osdir/libkdbprom.so (linked as $qhome/libkdbprom.so) and $qhome/kdbprom.q"
  echo "load with: QHOME=$qhome q, then \\l kdbprom.q (or \\l $qhome/kdbprom.q)"
fi
