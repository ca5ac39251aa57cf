#!/usr/bin/env bash
# Browser libraries from npm into the apps' static files (never from a CDN): `npm ci` on frontend/'s pinned
# package-lock.json, then the files the pages load are copied into apps/<app>/static/vendor/. Called by
# `make demo`, `make test` and deploy/test.sh; does nothing when the copies match the lock file already.
#
#   deploy/vendor.sh            # install and copy when frontend/package-lock.json changed (or a copy is missing)
#   VENDOR_FORCE=1 deploy/vendor.sh
#
# The copies and frontend/node_modules are build outputs (.gitignore); collectstatic serves them in production.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
FRONT=$ROOT/frontend
say() { echo "[vendor] $*"; }
die() { echo "[vendor] ERROR: $*" >&2; exit 1; }

# What the pages load; each line: <file under node_modules> <destination folder under ROOT>
FILES=(
  "uplot/dist/uPlot.iife.min.js apps/sentiment/static/vendor/uplot"
  "uplot/dist/uPlot.min.css apps/sentiment/static/vendor/uplot"
  "uplot/LICENSE apps/sentiment/static/vendor/uplot"
)

lock_sum=$(sha256sum "$FRONT/package-lock.json" | cut -c1-64)
STAMP=$ROOT/apps/sentiment/static/vendor/.package-lock.sha256

current() {
  [ "${VENDOR_FORCE:-0}" = 1 ] && return 1
  [ "$(cat "$STAMP" 2>/dev/null)" = "$lock_sum" ] || return 1
  for entry in "${FILES[@]}"; do
    set -- $entry
    [ -s "$ROOT/$2/$(basename "$1")" ] || return 1
  done
}

current && exit 0
mkdir -p "$ROOT/var"
exec 9>"$ROOT/var/vendor.lock"
flock 9  # two runs at once (a demo and a test run) install once
current && exit 0

if ! command -v npm >/dev/null 2>&1; then
  say "installing Debian's nodejs and npm"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q nodejs npm >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q nodejs npm >/dev/null; } \
    || die "npm is missing and could not be installed (apt-get install nodejs npm)"
fi
say "npm ci in frontend/ (package-lock.json $(echo "$lock_sum" | cut -c1-12))"
(cd "$FRONT" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error) || die "npm ci failed in frontend/"
for entry in "${FILES[@]}"; do
  set -- $entry
  src=$FRONT/node_modules/$1
  [ -s "$src" ] || die "$src is missing after npm ci (did the package's layout change?)"
  mkdir -p "$ROOT/$2"
  cp "$src" "$ROOT/$2/.$(basename "$1").tmp"
  mv "$ROOT/$2/.$(basename "$1").tmp" "$ROOT/$2/$(basename "$1")"
  say "$1 → $2/"
done
echo "$lock_sum" >"$STAMP"
