#!/usr/bin/env bash
# Own PostgreSQL cluster (Debian's postgresql package, not the system service) on 127.0.0.1, for the tests and for
# trying the suite on its production database on one machine.
#
#   deploy/postgres.sh start     # apt-get install postgresql if missing, initdb on first start, start, wait until
#                                #   it accepts connections, make the suite's role and database, print DATABASE_URL
#   deploy/postgres.sh stop      # fast shutdown of this cluster only (pg_ctl on its own data directory)
#   deploy/postgres.sh status    # exit 0 when this cluster accepts connections, 1 when not
#   deploy/postgres.sh url       # print the DATABASE_URL for this cluster (starts nothing)
#   deploy/postgres.sh sessions  # how many other client connections it has (0 when it is not running)
#
#   PG_PORT=5433 PG_DURABLE=0 deploy/postgres.sh start    # test cluster: no fsync (data may be lost on a crash)
#
# Environment: PG_PORT (5433: beside a system cluster on 5432), PG_VAR (var/postgres-$PG_PORT: data/, postgres.log,
# run/ for the Unix socket; as root with a clone the postgres account cannot reach, ~postgres/sector-ai/<clone>-<port>), PG_USER and PG_DB (suite, suite: the role the suite connects as, with CREATEDB so that
# the tests can make their test_<db> database), PG_PASSWORD (empty: connections from 127.0.0.1 are trusted, no
# password; set: the role gets it and 127.0.0.1 needs it, scram-sha-256), PG_DURABLE (1: fsync and synchronous
# commit as in production; 0: off, for throw-away test data), PG_BIN (newest /usr/lib/postgresql/*/bin),
# PG_OS_USER (postgres: the account the server runs as when this script runs as root; initdb refuses root).
# The server listens on 127.0.0.1 only.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PG_PORT=${PG_PORT:-5433}
PG_VAR_GIVEN=${PG_VAR:-}
PG_VAR=${PG_VAR:-$ROOT/var/postgres-$PG_PORT}
PG_USER=${PG_USER:-suite}
PG_DB=${PG_DB:-suite}
PG_PASSWORD=${PG_PASSWORD:-}
PG_DURABLE=${PG_DURABLE:-1}
PG_OS_USER=${PG_OS_USER:-postgres}

say() { echo "[postgres] $*"; }
die() { echo "[postgres] ERROR: $*" >&2; exit 1; }

# As root the server runs as PG_OS_USER, which must reach PG_VAR. A clone in a closed home (/root is 0700) is out of
# its reach: then the cluster lives in that account's home instead, in a folder named after the clone and the port.
place() {
  if [ "$(id -u)" = 0 ] && [ -z "$PG_VAR_GIVEN" ] && id -u "$PG_OS_USER" >/dev/null 2>&1; then
    local probe=$ROOT/var/postgres-$PG_PORT home
    while [ ! -e "$probe" ]; do probe=$(dirname "$probe"); done
    if ! runuser -u "$PG_OS_USER" -- test -x "$probe" 2>/dev/null; then
      home=$(getent passwd "$PG_OS_USER" | cut -d: -f6)
      PG_VAR=$home/sector-ai/$(printf '%s' "$ROOT" | sha256sum | cut -c1-12)-$PG_PORT
    fi
  fi
  DATA=$PG_VAR/data
  RUN=$PG_VAR/run
  LOG=$PG_VAR/postgres.log
}
place

case "$PG_PORT" in ''|*[!0-9]*) die "PG_PORT=$PG_PORT is not a port number" ;; esac
case "$PG_USER$PG_DB" in *[!A-Za-z0-9_]*) die "PG_USER and PG_DB must be letters, digits and underscores (got $PG_USER, $PG_DB)" ;; esac
case "$PG_DURABLE" in 0|1) ;; *) die "PG_DURABLE=$PG_DURABLE must be 0 or 1" ;; esac

find_bin() {
  if [ -n "${PG_BIN:-}" ]; then [ -x "$PG_BIN/pg_ctl" ] || die "PG_BIN=$PG_BIN has no pg_ctl"; return 0; fi
  local dir
  dir=$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  if [ -n "$dir" ] && [ -x "$dir/pg_ctl" ]; then PG_BIN=$dir; return 0; fi
  return 1
}

install() {
  find_bin && return 0
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo=sudo; else die "PostgreSQL missing; as root: apt-get install -y postgresql"; fi
  fi
  say "installing postgresql with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  # Keep the package's own cluster from starting on install (it would take port 5432);
  # Docker images usually have this policy file already.
  local policy=/usr/sbin/policy-rc.d added=""
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null; $sudo chmod +x "$policy"; added=1; fi
  local rc=0 log=$PG_VAR/apt-get.log
  $sudo apt-get install -y -q postgresql >"$log" 2>&1 ||
    { $sudo apt-get update -q >>"$log" 2>&1 && $sudo apt-get install -y -q postgresql >>"$log" 2>&1; } || rc=$?
  if [ -n "$added" ]; then $sudo rm -f "$policy"; fi
  if [ "$rc" != 0 ]; then tail -n 15 "$log"; die "apt-get install postgresql failed (log above)"; fi
  find_bin || die "postgresql installed but no /usr/lib/postgresql/*/bin/pg_ctl"
  say "installed $("$PG_BIN/postgres" --version)"
}

# The server and initdb run as PG_OS_USER when we are root, as ourselves otherwise.
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u "$PG_OS_USER" -- "$@"; else "$@"; fi
}

pg_ctl_() { as_owner "$PG_BIN/pg_ctl" -D "$DATA" "$@"; }

# Answers on the port with our cluster behind it (its postmaster.pid names this data directory's port).
alive() {
  [ -f "$DATA/postmaster.pid" ] || return 1
  find_bin || return 1
  "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 3 2>/dev/null
}

port_taken() { (exec 3<>"/dev/tcp/127.0.0.1/$PG_PORT") 2>/dev/null; }

url() {
  local auth=$PG_USER
  if [ -n "$PG_PASSWORD" ]; then
    auth="$PG_USER:$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$PG_PASSWORD")"
  fi
  echo "postgres://$auth@127.0.0.1:$PG_PORT/$PG_DB"
}

sql() {  # stdin, as the cluster's superuser over its private Unix socket
  as_owner "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$RUN" -p "$PG_PORT" -U "$PG_OS_SUPER" -d postgres
}

init_cluster() {
  say "initdb in ${DATA#"$ROOT"/}"
  mkdir -p "$DATA" "$RUN"
  if [ "$(id -u)" = 0 ]; then
    case "$PG_VAR" in "$ROOT"/*) ;; *) say "$PG_OS_USER cannot reach the clone's var/: the cluster lives in $PG_VAR" ;; esac
    id -u "$PG_OS_USER" >/dev/null 2>&1 || die "no OS user $PG_OS_USER to run PostgreSQL as (the postgresql package makes 'postgres'; or set PG_OS_USER)"
    chown "$PG_OS_USER": "$PG_VAR" "$DATA" "$RUN"
    runuser -u "$PG_OS_USER" -- test -w "$DATA" ||
      die "$PG_OS_USER cannot reach $DATA (a parent directory is closed to it); set PG_VAR to a directory it can reach, e.g. /var/tmp/sector-ai-postgres-$PG_PORT"
  fi
  chmod 700 "$DATA"
  as_owner "$PG_BIN/initdb" -D "$DATA" -U "$PG_OS_SUPER" --auth-local=trust --auth-host=reject \
    --encoding=UTF8 --locale=C.UTF-8 >"$PG_VAR/initdb.log" 2>&1 ||
    { tail -n 20 "$PG_VAR/initdb.log"; rm -rf "$DATA"; die "initdb failed (log above)"; }
}

write_config() {
  local host_auth=trust; [ -n "$PG_PASSWORD" ] && host_auth=scram-sha-256
  as_owner tee "$DATA/pg_hba.conf" >/dev/null <<EOF
# Written by deploy/postgres.sh on every start; edit the script, not this file.
# The superuser over the private socket (in ${RUN#"$ROOT"/}); everyone else over TCP from 127.0.0.1 only.
local all $PG_OS_SUPER trust
host  all all 127.0.0.1/32 $host_auth
EOF
  local fast=on; [ "$PG_DURABLE" = 0 ] && fast=off
  as_owner tee "$DATA/postgresql.auto.conf" >/dev/null <<EOF
# Written by deploy/postgres.sh on every start; edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$RUN'
max_connections = 200
fsync = $fast
synchronous_commit = $fast
full_page_writes = $fast
password_encryption = 'scram-sha-256'
log_min_messages = warning
log_min_error_statement = error
EOF
}

ensure_role_and_db() {
  local pw="NULL"
  if [ -n "$PG_PASSWORD" ]; then pw="'$(printf '%s' "$PG_PASSWORD" | sed "s/'/''/g")'"; fi
  sql <<EOF
SELECT format('CREATE ROLE %I LOGIN CREATEDB', '$PG_USER') WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER') \gexec
ALTER ROLE $PG_USER LOGIN CREATEDB PASSWORD $pw;
SELECT format('CREATE DATABASE %I OWNER %I', '$PG_DB', '$PG_USER') WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = '$PG_DB') \gexec
EOF
}

start() {
  mkdir -p "$PG_VAR"
  install
  place  # the OS account exists now
  if alive; then ensure_role_and_db; say "already running on 127.0.0.1:$PG_PORT (data ${DATA#"$ROOT"/})"; echo "DATABASE_URL=$(url)"; return 0; fi
  if port_taken; then die "port $PG_PORT is in use by something else (not the cluster in ${DATA#"$ROOT"/}); set PG_PORT"; fi
  [ -f "$DATA/PG_VERSION" ] || init_cluster
  local have; have=$(cat "$DATA/PG_VERSION")
  case "$PG_BIN" in */"$have"/bin) ;; *) die "${DATA#"$ROOT"/} was made by PostgreSQL $have but PG_BIN is $PG_BIN; set PG_BIN=/usr/lib/postgresql/$have/bin or PG_VAR" ;; esac
  mkdir -p "$RUN"; [ "$(id -u)" = 0 ] && chown "$PG_OS_USER": "$RUN"
  write_config
  : >"$LOG"; [ "$(id -u)" = 0 ] && chown "$PG_OS_USER": "$LOG"
  pg_ctl_ start -l "$LOG" -w -t 60 -s >/dev/null ||
    { tail -n 20 "$LOG" 2>/dev/null || true; die "PostgreSQL did not start on 127.0.0.1:$PG_PORT (log above)"; }
  alive || { tail -n 20 "$LOG"; die "PostgreSQL started but does not accept connections on 127.0.0.1:$PG_PORT"; }
  ensure_role_and_db
  say "ready on 127.0.0.1:$PG_PORT ($("$PG_BIN/postgres" --version | awk '{print $3}'), durable $([ "$PG_DURABLE" = 1 ] && echo on || echo off), data ${DATA#"$ROOT"/})"
  echo "DATABASE_URL=$(url)"
}

stop() {
  if [ ! -f "$DATA/postmaster.pid" ]; then say "not running (port $PG_PORT, data ${DATA#"$ROOT"/})"; return 0; fi
  find_bin || die "no pg_ctl to stop the cluster in ${DATA#"$ROOT"/} with"
  if ! pg_ctl_ status >/dev/null 2>&1; then say "not running (port $PG_PORT; a stale postmaster.pid is left for the next start)"; return 0; fi
  if ! pg_ctl_ stop -m fast -w -t 30 -s; then
    say "fast shutdown did not finish in 30 s; immediate shutdown"
    pg_ctl_ stop -m immediate -w -t 30 -s || die "could not stop the cluster in ${DATA#"$ROOT"/}"
  fi
  say "stopped (port $PG_PORT)"
}

# The cluster's own superuser: the OS account's name, as initdb makes it.
if [ "$(id -u)" = 0 ]; then PG_OS_SUPER=$PG_OS_USER; else PG_OS_SUPER=$(id -un); fi

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) if alive; then say "running on 127.0.0.1:$PG_PORT (data ${DATA#"$ROOT"/})"; else say "not running (port $PG_PORT)"; exit 1; fi ;;
  url) url ;;
  sessions)  # how many clients other than this query are connected (test.sh: is another run still using it?)
    alive || { echo 0; exit 0; }
    PGPASSWORD=$PG_PASSWORD "$PG_BIN/psql" -X -tA -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d postgres -c \
      "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()" ;;
  *) echo "usage: $0 start|stop|status|url|sessions" >&2; exit 2 ;;
esac
