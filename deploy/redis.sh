#!/usr/bin/env bash
# Own Redis instance (Debian's redis-server, not the system service) on 127.0.0.1.
#
#   deploy/redis.sh start     # apt-get install redis-server if missing, start daemonized, wait for PONG
#   deploy/redis.sh stop      # SHUTDOWN (NOSAVE when REDIS_PERSIST=0), kill via pid file as fallback
#   deploy/redis.sh status    # exit 0 when it answers PING, 1 when not
#
#   REDIS_PORT=6390 REDIS_PERSIST=0 deploy/redis.sh start    # test instance, no persistence
#
# Environment: REDIS_PORT (6379), REDIS_VAR (var/redis-$REDIS_PORT: redis.conf, redis.pid,
# redis.log, dump.rdb / appendonly data), REDIS_PERSIST (1: AOF + RDB snapshots; 0: none).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
REDIS_PORT=${REDIS_PORT:-6379}
REDIS_VAR=${REDIS_VAR:-$ROOT/var/redis-$REDIS_PORT}
REDIS_PERSIST=${REDIS_PERSIST:-1}
PIDFILE=$REDIS_VAR/redis.pid
LOG=$REDIS_VAR/redis.log
CONF=$REDIS_VAR/redis.conf

say() { echo "[redis] $*"; }
die() { echo "[redis] ERROR: $*" >&2; exit 1; }

cli() { timeout 3 redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }
alive() { command -v redis-cli >/dev/null 2>&1 && [ "$(cli ping 2>/dev/null)" = PONG ]; }
pid_of() { cat "$PIDFILE" 2>/dev/null || true; }
pid_alive() { [ -n "${1:-}" ] && [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" != Z ]; }

install() {
  command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 && return 0
  local sudo=""
  if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then sudo=sudo; else die "redis-server missing; as root: apt-get install -y redis-server"; fi
  fi
  say "installing redis-server with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  # Keep the package's own service from starting on install (it would take port 6379);
  # Docker images usually have this policy file already.
  local policy=/usr/sbin/policy-rc.d added=""
  if [ ! -e "$policy" ]; then printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null; $sudo chmod +x "$policy"; added=1; fi
  local rc=0 log=$REDIS_VAR/apt-get.log
  $sudo apt-get install -y -q redis-server >"$log" 2>&1 ||
    { $sudo apt-get update -q >>"$log" 2>&1 && $sudo apt-get install -y -q redis-server >>"$log" 2>&1; } || rc=$?
  if [ -n "$added" ]; then $sudo rm -f "$policy"; fi
  if [ "$rc" != 0 ]; then tail -n 15 "$log"; die "apt-get install redis-server failed (log above)"; fi
  say "installed $(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')"
}

start() {
  local pid; pid=$(pid_of)
  if alive; then say "already running on 127.0.0.1:$REDIS_PORT${pid:+ (pid $(pid_of))}"; return 0; fi
  if (exec 3<>"/dev/tcp/127.0.0.1/$REDIS_PORT") 2>/dev/null; then die "port $REDIS_PORT is in use by something that does not answer PING"; fi
  mkdir -p "$REDIS_VAR"
  install
  rm -f "$PIDFILE"
  {
    echo "# Written by deploy/redis.sh on every start; edit the script, not this file."
    echo "bind 127.0.0.1"
    echo "port $REDIS_PORT"
    echo "protected-mode yes"
    echo "daemonize yes"
    echo "dir $REDIS_VAR"
    echo "pidfile $PIDFILE"
    echo "logfile $LOG"
    echo "loglevel notice"
    if [ "$REDIS_PERSIST" = 1 ]; then
      echo "appendonly yes"
      echo "appendfsync everysec"
      echo "save 3600 1 300 100 60 10000"
    else
      echo "appendonly no"
      echo 'save ""'
    fi
  } > "$CONF"
  redis-server "$CONF" || die "redis-server failed to start (output above, log ${LOG#"$ROOT"/})"
  for i in $(seq 1 40); do
    if [ "$i" -gt 4 ] && ! pid_alive "$(pid_of)"; then break; fi   # daemon died (see log)
    if alive; then say "ready on 127.0.0.1:$REDIS_PORT (pid $(pid_of), persistence $([ "$REDIS_PERSIST" = 1 ] && echo on || echo off), dir ${REDIS_VAR#"$ROOT"/})"; return 0; fi
    sleep 0.5
  done
  tail -n 20 "$LOG" 2>/dev/null || true
  die "no PONG on 127.0.0.1:$REDIS_PORT (log above)"
}

stop() {
  local pid; pid=$(pid_of)
  if ! pid_alive "$pid" && ! alive; then rm -f "$PIDFILE"; say "not running (port $REDIS_PORT)"; return 0; fi
  # Plain SHUTDOWN follows the instance's own config (saves only if it persists).
  local how=(shutdown); if [ "$REDIS_PERSIST" = 0 ]; then how=(shutdown nosave); fi
  if alive; then cli "${how[@]}" >/dev/null 2>&1 || true; fi
  local t0=$SECONDS
  while { pid_alive "$pid" || { [ -z "$pid" ] && alive; }; } && [ $((SECONDS - t0)) -lt 20 ]; do sleep 0.2; done
  if pid_alive "$pid"; then
    say "SHUTDOWN did not stop it in 20 s; killing pid $pid"
    kill -TERM "$pid" 2>/dev/null || true; sleep 2; kill -KILL "$pid" 2>/dev/null || true; sleep 0.5
  fi
  rm -f "$PIDFILE"
  if alive; then die "something still answers on port $REDIS_PORT"; fi
  say "stopped (port $REDIS_PORT)"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) pid=$(pid_of); if alive; then say "running on 127.0.0.1:$REDIS_PORT${pid:+ (pid $pid)}"; else say "not running (port $REDIS_PORT)"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
