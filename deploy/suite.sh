#!/usr/bin/env bash
# Starts and stops the suite's own processes (ASGI web server, Celery worker, Celery beat, news consumer).
#
#   deploy/suite.sh start [web|worker|beat|news|all]   # default all
#   deploy/suite.sh stop  [web|worker|beat|news|all]
#
# news = `manage.py news_consume` (Kafka news.raw -> scored rows); it needs a `sentiment` champion.
#   deploy/suite.sh status
#
# Environment: PY (the virtualenv's python), WEB_HOST/WEB_PORT (127.0.0.1:8000),
# CELERY_QUEUES (inference,training,default), CELERY_CONCURRENCY (8 threads), plus the suite's own
# settings variables (REDIS_URL, KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL, ...).
# Logs and pid files go to var/log and var/run.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PY=${PY:-python3}
WEB_HOST=${WEB_HOST:-127.0.0.1}
WEB_PORT=${WEB_PORT:-8000}
CELERY_QUEUES=${CELERY_QUEUES:-inference,training,default}
CELERY_CONCURRENCY=${CELERY_CONCURRENCY:-8}
RUN=$ROOT/var/run
LOG=$ROOT/var/log
mkdir -p "$RUN" "$LOG"

say() { echo "[suite] $*"; }

command_for() {
  case "$1" in
    web) echo "$PY -m daphne -b $WEB_HOST -p $WEB_PORT config.asgi:application" ;;
    # threads pool: concurrent inference tasks share one model and its micro-batches
    worker) echo "$PY -m celery -A config worker -Q $CELERY_QUEUES --pool=threads --concurrency=$CELERY_CONCURRENCY -n worker@%h -l INFO" ;;
    beat) echo "$PY -m celery -A config beat -l INFO --schedule=$RUN/celerybeat-schedule" ;;
    news) echo "$PY manage.py news_consume" ;;
    *) echo "unknown process '$1' (web, worker, beat, news)" >&2; exit 2 ;;
  esac
}

running() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

start_one() {
  local name=$1
  if running "$name"; then say "$name already running (pid $(cat "$RUN/$name.pid"))"; return 0; fi
  # setsid: its own process group, so stop can end the worker's children too.
  # shellcheck disable=SC2046  # command_for prints a word list whose words hold no spaces
  setsid $(command_for "$name") >>"$LOG/$name.log" 2>&1 < /dev/null &
  echo $! > "$RUN/$name.pid"
  sleep 0.5
  if ! running "$name"; then say "$name failed to start; last log lines:"; tail -n 20 "$LOG/$name.log"; exit 1; fi
  say "$name started (pid $(cat "$RUN/$name.pid"), log var/log/$name.log)"
}

stop_one() {
  local name=$1 pid
  if ! running "$name"; then rm -f "$RUN/$name.pid"; return 0; fi
  pid=$(cat "$RUN/$name.pid")
  kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then say "$name did not stop in 30 s; killing"; kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; fi
  rm -f "$RUN/$name.pid"
  say "$name stopped"
}

wait_web() {
  for _ in $(seq 1 60); do
    if curl -fsS -o /dev/null "http://$WEB_HOST:$WEB_PORT/accounts/login/"; then return 0; fi
    sleep 0.5
  done
  say "web server did not answer on http://$WEB_HOST:$WEB_PORT/ within 30 s; last log lines:"; tail -n 30 "$LOG/web.log"; exit 1
}

what=${2:-all}
[ "$what" = all ] && names="web worker beat news" || names=$what
case "${1:-}" in
  start) for n in $names; do start_one "$n"; done; case " $names " in *" web "*) wait_web ;; esac ;;
  stop) for n in news beat worker web; do case " $names " in *" $n "*) stop_one "$n" ;; esac; done ;;
  status) for n in web worker beat news; do if running "$n"; then say "$n running (pid $(cat "$RUN/$n.pid"))"; else say "$n not running"; fi; done ;;
  *) echo "usage: $0 start|stop|status [web|worker|beat|news|all]" >&2; exit 2 ;;
esac
