#!/usr/bin/env bash
# Single-node Apache Kafka 4.x in KRaft mode (combined broker+controller), from Maven Central jars.
#
#   deploy/kafka.sh fetch     # resolve the jars into var/kafka-lib/ (mvn; skipped when up to date)
#   deploy/kafka.sh start     # fetch if needed, format storage once, start, wait until it serves
#   deploy/kafka.sh stop      # SIGTERM, up to 30 s, then SIGKILL
#   deploy/kafka.sh status    # exit 0 when running, 1 when not
#
#   KAFKA_PORT=19092 KAFKA_FRESH=1 deploy/kafka.sh start     # test broker, wiped storage
#
# Environment: KAFKA_PORT (9092), KAFKA_CONTROLLER_PORT (KAFKA_PORT+1), KAFKA_VAR
# (var/kafka-$KAFKA_PORT: server.properties, data/, kafka.log, kafka.pid), KAFKA_HEAP
# ("-Xmx512m -Xms256m"), KAFKA_OPTS (extra JVM flags), KAFKA_START_TIMEOUT (90 s),
# KAFKA_FRESH=1 (wipe data before start), JAVA (java), KAFKA_LIB (var/kafka-lib).
# The Kafka version is pinned in deploy/kafka/pom.xml. Console tools use the same jars:
#   java -cp 'var/kafka-lib/*' org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
POM=$ROOT/deploy/kafka/pom.xml
JAVA=${JAVA:-java}
KAFKA_PORT=${KAFKA_PORT:-9092}
KAFKA_CONTROLLER_PORT=${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
KAFKA_VAR=${KAFKA_VAR:-$ROOT/var/kafka-$KAFKA_PORT}
KAFKA_LIB=${KAFKA_LIB:-$ROOT/var/kafka-lib}
KAFKA_HEAP=${KAFKA_HEAP:--Xmx512m -Xms256m}
KAFKA_START_TIMEOUT=${KAFKA_START_TIMEOUT:-90}
PIDFILE=$KAFKA_VAR/kafka.pid
LOG=$KAFKA_VAR/kafka.log
PROPS=$KAFKA_VAR/server.properties
DATA=$KAFKA_VAR/data

say() { echo "[kafka] $*"; }
die() { echo "[kafka] ERROR: $*" >&2; exit 1; }

need_java() {
  command -v "$JAVA" >/dev/null 2>&1 || die "'$JAVA' not found; install Java 17+: apt-get install -y openjdk-17-jre-headless"
  local v; v=$("$JAVA" -version 2>&1 | sed -n 's/.* version "\([0-9]*\).*/\1/p' | head -n 1)
  [ "${v:-0}" -ge 17 ] 2>/dev/null || die "Kafka 4 needs Java 17+, '$JAVA' is version ${v:-unknown}; apt-get install -y openjdk-17-jre-headless"
}

fetch() {
  local stamp; stamp=$(sha256sum "$POM" | cut -c1-64)
  if [ "$(cat "$KAFKA_LIB/.fetched" 2>/dev/null)" = "$stamp" ]; then return 0; fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found; install it: apt-get install -y maven"
  local version; version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")
  say "fetching Kafka $version jars from Maven Central into ${KAFKA_LIB#"$ROOT"/}"
  local tmp=$KAFKA_LIB.tmp.$$
  rm -rf "$tmp"; mkdir -p "$(dirname "$KAFKA_LIB")"
  local out   # mvn -q still prints ANSI resets; show its output only when it fails
  if ! out=$(mvn -q -B -Dstyle.color=never -f "$POM" dependency:copy-dependencies -DoutputDirectory="$tmp" 2>&1); then
    echo "$out" >&2; rm -rf "$tmp"; die "mvn could not fetch the jars (is Maven Central reachable?)"
  fi
  echo "$stamp" > "$tmp/.fetched"
  rm -rf "$KAFKA_LIB"; mv "$tmp" "$KAFKA_LIB"   # swap whole dir: no stale jars of other versions
  say "fetched $(find "$KAFKA_LIB" -name '*.jar' | wc -l) jars"
}

pid_of() { cat "$PIDFILE" 2>/dev/null || true; }
# Our broker: the pid in the pid file is alive and is a kafka.Kafka running our server.properties.
running() {
  local pid; pid=$(pid_of)
  [ -n "$pid" ] && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $PROPS"
}
pid_alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" | cut -c1)" != Z ]; }   # not a zombie
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

write_config() {
  mkdir -p "$DATA"
  cat > "$PROPS" <<EOF
# Written by deploy/kafka.sh on every start; edit the script, not this file.
process.roles=broker,controller
node.id=1
listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$KAFKA_PORT,CONTROLLER://127.0.0.1:$KAFKA_CONTROLLER_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
controller.quorum.bootstrap.servers=127.0.0.1:$KAFKA_CONTROLLER_PORT
log.dirs=$DATA
num.partitions=3
auto.create.topics.enable=true
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
log.retention.hours=168
EOF
  # log4j2: INFO to stdout (= kafka.log), the chattiest internals at WARN.
  cat > "$KAFKA_VAR/log4j2.xml" <<'EOF'
<Configuration status="WARN">
  <Appenders>
    <Console name="out" target="SYSTEM_OUT"><PatternLayout pattern="[%d] %p %m (%c)%n"/></Console>
  </Appenders>
  <Loggers>
    <Root level="INFO"><AppenderRef ref="out"/></Root>
    <Logger name="org.apache.kafka.common.config" level="WARN"/>
    <Logger name="org.apache.kafka.common.utils.AppInfoParser" level="WARN"/>
    <Logger name="org.apache.kafka.storage.internals.log" level="WARN"/>
    <Logger name="kafka.log.LogCleaner" level="WARN"/>
    <Logger name="kafka.log.LogManager" level="WARN"/>
    <Logger name="kafka.cluster.Partition" level="WARN"/>
    <Logger name="org.apache.kafka.controller.ReplicationControlManager" level="WARN"/>
    <Logger name="org.apache.kafka.controller.PartitionChangeBuilder" level="WARN"/>
    <Logger name="state.change.logger" level="WARN"/>
    <Logger name="kafka.coordinator" level="WARN"/>
    <Logger name="org.apache.kafka.coordinator" level="WARN"/>
  </Loggers>
</Configuration>
EOF
}

format_storage() {
  [ -f "$DATA/meta.properties" ] && return 0
  # Cluster id: 16 random bytes, base64url without padding (Kafka's Uuid format).
  local id; id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
  say "formatting storage in ${DATA#"$ROOT"/} (cluster id $id)"
  "$JAVA" -Dlog4j2.configurationFile="$KAFKA_VAR/log4j2.xml" -cp "$KAFKA_LIB/*" kafka.tools.StorageTool \
    format --standalone -t "$id" -c "$PROPS" >> "$LOG" 2>&1 || { tail -n 20 "$LOG"; die "storage format failed"; }
}

start() {
  if running; then
    say "already running on 127.0.0.1:$KAFKA_PORT (pid $(pid_of))"
    if [ "${KAFKA_FRESH:-0}" = 1 ]; then say "KAFKA_FRESH=1 ignored: stop it first to wipe its data"; fi
    return 0
  fi
  need_java
  rm -f "$PIDFILE"
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if port_open "$p"; then die "port $p is already in use by another process (not this script's broker)"; fi
  done
  fetch
  if [ "${KAFKA_FRESH:-0}" = 1 ]; then say "KAFKA_FRESH=1: wiping ${DATA#"$ROOT"/}"; rm -rf "$DATA"; fi
  mkdir -p "$KAFKA_VAR"
  if [ -f "$LOG" ]; then mv -f "$LOG" "$LOG.1"; fi   # keep the previous run's log only
  write_config
  format_storage
  local t0=$SECONDS
  # shellcheck disable=SC2086  # KAFKA_HEAP / KAFKA_OPTS are word lists
  setsid "$JAVA" $KAFKA_HEAP -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$KAFKA_VAR/log4j2.xml" -Dkafka.logs.dir="$KAFKA_VAR" ${KAFKA_OPTS:-} \
    -cp "$KAFKA_LIB/*" kafka.Kafka "$PROPS" >> "$LOG" 2>&1 < /dev/null &
  echo $! > "$PIDFILE"
  say "starting on 127.0.0.1:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT, pid $!), log ${LOG#"$ROOT"/}"
  while [ $((SECONDS - t0)) -lt "$KAFKA_START_TIMEOUT" ]; do
    # pid_alive, not running: for a moment after the fork the child is still setsid, not yet java
    if ! pid_alive "$(pid_of)"; then rm -f "$PIDFILE"; tail -n 40 "$LOG"; die "broker exited during start-up (log above)"; fi
    if port_open "$KAFKA_PORT" && grep -q "Kafka Server started" "$LOG"; then
      say "ready on 127.0.0.1:$KAFKA_PORT after $((SECONDS - t0)) s"; return 0
    fi
    sleep 0.5
  done
  tail -n 40 "$LOG"; say "not ready after $KAFKA_START_TIMEOUT s (log above); stopping it"; stop; exit 1
}

stop() {
  if ! running; then rm -f "$PIDFILE"; say "not running"; return 0; fi
  local pid; pid=$(pid_of)
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 60); do pid_alive "$pid" || break; sleep 0.5; done
  if pid_alive "$pid"; then say "did not stop in 30 s; killing pid $pid"; kill -KILL "$pid" 2>/dev/null || true; sleep 1; fi
  rm -f "$PIDFILE"
  say "stopped (port $KAFKA_PORT)"
}

case "${1:-}" in
  fetch) fetch; say "jars ready in ${KAFKA_LIB#"$ROOT"/}" ;;
  start) start ;;
  stop) stop ;;
  status) if running; then say "running on 127.0.0.1:$KAFKA_PORT (pid $(pid_of))"; else say "not running (port $KAFKA_PORT)"; exit 1; fi ;;
  *) echo "usage: $0 fetch|start|stop|status" >&2; exit 2 ;;
esac
