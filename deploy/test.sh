#!/usr/bin/env bash
# Runs the test suite against its own Redis (port 6390, no persistence) and Kafka (port 19092,
# fresh storage), then stops what it started. Called by `make test`; extra args go to pytest:
#
#   deploy/test.sh -k kafka -x
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=${PY:-python3}
export REDIS_PORT=${TEST_REDIS_PORT:-6390}
export KAFKA_PORT=${TEST_KAFKA_PORT:-19092}
export KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$KAFKA_PORT"
export SUITE_VAR_DIR=${TEST_VAR_DIR:-$ROOT/var/test}  # a second concurrent run needs its own (and own ports)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

# Browser tests drive Debian's chromium (Playwright never downloads a browser here).
if ! command -v chromium >/dev/null 2>&1; then
  echo "[test] installing Debian's chromium for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
fi

started=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  for svc in "${started[@]}"; do "deploy/$svc.sh" stop || true; done
}
trap cleanup EXIT

if ! REDIS_PERSIST=0 deploy/redis.sh status >/dev/null 2>&1; then
  REDIS_PERSIST=0 deploy/redis.sh start; started+=(redis)
fi
if ! deploy/kafka.sh status >/dev/null 2>&1; then
  KAFKA_FRESH=1 deploy/kafka.sh start; started+=(kafka)
fi

rc=0
"$PY" -m pytest "$@" || rc=$?
# pytest exits 5 when it collected nothing: that is a failure of the suite, say so.
[ "$rc" -eq 5 ] && echo "[test] pytest collected no tests" >&2
exit "$rc"
