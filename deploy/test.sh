#!/usr/bin/env bash
# Runs the test suite against its own Redis (port 6390, no persistence), Kafka (port 19092, fresh storage) and
# PostgreSQL (port 5433, fsync off), then stops what it started. Called by `make test`.
#
#   deploy/test.sh                  # the whole suite on PostgreSQL, then the SQLite set (tests/sqlite-set.txt) on SQLite
#   deploy/test.sh -k kafka -x      # with arguments: one pytest run with them, on TEST_DB
#   TEST_DB=sqlite deploy/test.sh   # the whole suite on SQLite (as before PostgreSQL ran in the tests)
#   TEST_DB=sqlite deploy/test.sh tests/apps/support -x
#
# TEST_DB: postgres (default) or sqlite; a DATABASE_URL already set is used as it is (no PostgreSQL is started).
# On PostgreSQL the suite connects as `suite` to a database named after the run's var folder (var/test -> suite_test;
# pytest-django makes and drops test_suite_test), so concurrent runs with their own TEST_VAR_DIR and TEST_REDIS_PORT
# share one cluster. TEST_PG_PORT picks the cluster's port.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=${PY:-python3}
export REDIS_PORT=${TEST_REDIS_PORT:-6390}
export KAFKA_PORT=${TEST_KAFKA_PORT:-19092}
export KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
export PG_PORT=${TEST_PG_PORT:-5433}
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
export KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:$KAFKA_PORT"
export SUITE_VAR_DIR=${TEST_VAR_DIR:-$ROOT/var/test}  # a second concurrent run needs its own (and own ports)
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
# services/heap.py's settle after each model/index load costs a full collection of the test process's millions of
# objects (60 s instead of 23 s for the runtime/answering/serving tests): off here, on in servers; tests/services/test_heap.py runs it.
export SUITE_GC_FREEZE=${SUITE_GC_FREEZE:-0}
TEST_DB=${TEST_DB:-postgres}
SQLITE_SET=tests/sqlite-set.txt

case "$TEST_DB" in postgres|sqlite) ;; *) echo "[test] TEST_DB=$TEST_DB: use postgres or sqlite" >&2; exit 2 ;; esac

# Browser tests drive Debian's chromium (Playwright never downloads a browser here).
if ! command -v chromium >/dev/null 2>&1; then
  echo "[test] installing Debian's chromium for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; }
fi

# The pages' browser libraries (uPlot) from npm into static files, when missing or older than the lock file.
deploy/vendor.sh

started=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  for svc in "${started[@]}"; do
    if [ "$svc" = postgres ]; then
      # Another run (its own database on this cluster) may still be connected: leave the cluster to it.
      others=$(deploy/postgres.sh sessions 2>/dev/null || echo 0)
      if [ "${others:-0}" != 0 ]; then echo "[test] PostgreSQL on $PG_PORT left running: $others other connection(s)"; continue; fi
    fi
    "deploy/$svc.sh" stop || true
  done
}
trap cleanup EXIT

if ! REDIS_PERSIST=0 deploy/redis.sh status >/dev/null 2>&1; then
  REDIS_PERSIST=0 deploy/redis.sh start; started+=(redis)
fi
if ! deploy/kafka.sh status >/dev/null 2>&1; then
  KAFKA_FRESH=1 deploy/kafka.sh start; started+=(kafka)
fi

pg_url=""
if [ -n "${DATABASE_URL:-}" ]; then
  echo "[test] DATABASE_URL is set: the tests run on it"
elif [ "$TEST_DB" = postgres ]; then
  export PG_USER=suite
  # One database per var folder: suite_<folder name>, letters, digits and underscores only.
  PG_DB=suite_$(basename "$SUITE_VAR_DIR" | tr '[:upper:]' '[:lower:]' | tr -c 'a-z0-9_\n' '_')
  export PG_DB=${PG_DB:0:50}
  if deploy/postgres.sh status >/dev/null 2>&1; then
    deploy/postgres.sh start >/dev/null  # makes this run's database when missing
  else
    PG_DURABLE=0 deploy/postgres.sh start; started+=(postgres)
  fi
  pg_url=$(deploy/postgres.sh url)
fi

run_pytest() {  # DB (postgres|sqlite|given), pytest args...
  local db=$1; shift
  local rc=0 t0=$SECONDS
  case "$db" in
    postgres) echo "[test] pytest on PostgreSQL ($pg_url)"; DATABASE_URL=$pg_url "$PY" -m pytest "$@" || rc=$? ;;
    sqlite) echo "[test] pytest on SQLite"; env -u DATABASE_URL "$PY" -m pytest "$@" || rc=$? ;;
    given) "$PY" -m pytest "$@" || rc=$? ;;
  esac
  # pytest exits 5 when it collected nothing: that is a failure of the suite, say so.
  [ "$rc" -eq 5 ] && echo "[test] pytest collected no tests" >&2
  echo "[test] $db run: exit $rc after $((SECONDS - t0)) s"
  return "$rc"
}

rc=0
if [ -n "${DATABASE_URL:-}" ]; then
  run_pytest given "$@" || rc=$?
elif [ $# -gt 0 ] || [ "$TEST_DB" = sqlite ]; then
  run_pytest "$TEST_DB" "$@" || rc=$?
else
  # The whole suite on PostgreSQL (production's database), then the tests of SQLite's own paths (the demo's
  # database: settings, locking between processes, the demo commands) on SQLite.
  run_pytest postgres || rc=$?
  run_pytest sqlite "@$SQLITE_SET" || rc=$?
fi
exit "$rc"
