#!/usr/bin/env bash
# tests/servers/kafka.sh: a real Apache Kafka (KRaft, no ZooKeeper) on loopback, for the `real`
# tests and bench/kafka.sh. The broker's jars come from Maven Central into Maven's own repository
# (~/.m2/repository) through kafka-pom.xml; nothing is copied into the tree.
#
#   kafka.sh fetch                      resolve the pinned jars (a second run finds them cached)
#   kafka.sh start-cluster DIR          3 nodes (each broker + controller), replication 3
#   kafka.sh start-single DIR           1 node, replication 1 (the benchmark)
#   kafka.sh stop DIR                   stop every node of DIR (SIGTERM, then SIGKILL), by pid
#   kafka.sh kill-node DIR I [SIGNAL]   signal node I (default KILL) and wait until it is gone
#   kafka.sh start-node DIR I [J...]    start nodes again with their config and data
#
# DIR/kafka.env (KEY=VALUE lines, shell- and Python-readable) says where the cluster is:
#   BOOTSTRAP=127.0.0.1:P1,...          PLAINTEXT listeners
#   SASL_BOOTSTRAP=127.0.0.1:S1,...     SASL_PLAINTEXT listeners, mechanism PLAIN
#   SASL_USER=... SASL_PASSWORD=...     the one account the SASL listeners know
#   NODES=3  NODE1_PID=... NODE1_PORT=... NODE1_SASL_PORT=... NODE1_LOG=...   (per node)
# Topics are not created automatically (auto.create.topics.enable=false): a test creates its
# own (tests/kafka/tj_kafka_admin). Environment: KAFKA_HEAP (default 512m),
# KAFKA_START_SECONDS (default 120: how long a node may take to serve).
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

POM=$HERE/kafka-pom.xml
VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM")
M2=${MAVEN_REPO:-${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}/.m2/repository}
CLASSPATH_FILE=$M2/../tailjet-kafka-$VERSION.classpath
HEAP=${KAFKA_HEAP:-512m}
START_SECONDS=${KAFKA_START_SECONDS:-120}
SASL_USER=tailjet
SASL_PASSWORD=tailjet-secret

die() {
  echo "kafka.sh: $*" >&2
  exit 1
}

# Resolves the jars (Maven Central, or the local repository when they are there) and writes
# the classpath file. Idempotent.
fetch() {
  command -v java >/dev/null || die "java is missing: bash scripts/setup.sh installs a JDK"
  command -v mvn >/dev/null || die "mvn is missing: bash scripts/setup.sh installs Maven"
  if [ -s "$CLASSPATH_FILE" ] && classpath_ok; then
    return 0
  fi
  mkdir -p "$(dirname "$CLASSPATH_FILE")"
  local log
  log=$(mktemp)
  echo "kafka.sh: resolving Apache Kafka $VERSION from Maven Central into $M2" >&2
  if ! mvn -B -f "$POM" -Dmaven.repo.local="$M2" dependency:build-classpath \
    -Dmdep.outputFile="$CLASSPATH_FILE.tmp" -Dmdep.includeScope=runtime >"$log" 2>&1; then
    grep -E 'ERROR|Could not|refused|status code' "$log" | head -20 >&2
    rm -f "$CLASSPATH_FILE.tmp" "$log"
    die "Maven could not resolve Apache Kafka $VERSION (see the lines above for the artifact)"
  fi
  rm -f "$log"
  mv "$CLASSPATH_FILE.tmp" "$CLASSPATH_FILE"
  classpath_ok || die "the classpath $CLASSPATH_FILE names jars that are not there"
}

classpath_ok() {
  local IFS=:
  for j in $(cat "$CLASSPATH_FILE"); do
    [ -f "$j" ] || return 1
  done
  grep -q "kafka_2.13-$VERSION.jar" "$CLASSPATH_FILE"
}

java_cmd() {
  # Small heap, serial GC (2 cores shared by everything), no JMX, the broker's log through
  # log4j2 to its own file.
  echo java -Xms64m "-Xmx$HEAP" -XX:+UseSerialGC -XX:MaxMetaspaceSize=256m \
    -Djava.awt.headless=true "-Dlog4j2.configurationFile=$1/log4j2.properties" \
    -cp "$(cat "$CLASSPATH_FILE")"
}

write_log4j() {
  cat >"$1/log4j2.properties" <<'L4J'
status = error
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = INFO
rootLogger.appenderRef.out.ref = out
logger.state.name = state.change.logger
logger.state.level = WARN
logger.req.name = kafka.request.logger
logger.req.level = WARN
L4J
}

# start DIR N: writes the configs, formats the storage, starts the nodes, waits until every
# broker serves metadata with all N brokers in it.
start() {
  local dir=$1 n=$2 rf voters="" i
  fetch
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/kafka.env" ]; then # left by a run that died: its nodes go, then its data
    echo "kafka.sh: stopping the cluster a previous run left in $dir" >&2
    stop "$dir"
  fi
  rm -rf "$dir"/node* "$dir"/kafka.env*
  mkdir -p "$dir"
  rf=$n
  declare -a bport cport sport
  for ((i = 1; i <= n; i++)); do
    bport[i]=$(tj_free_port)
    cport[i]=$(tj_free_port)
    sport[i]=$(tj_free_port)
    voters+="${voters:+,}$i@127.0.0.1:${cport[i]}"
  done
  write_log4j "$dir"
  local cluster_id
  # shellcheck disable=SC2046
  cluster_id=$($(java_cmd "$dir") kafka.tools.StorageTool random-uuid 2>/dev/null | tail -1)
  [ -n "$cluster_id" ] || die "kafka.tools.StorageTool random-uuid printed nothing"
  local bootstrap="" sasl="" minisr=$((n > 1 ? 2 : 1))
  for ((i = 1; i <= n; i++)); do
    local nd=$dir/node$i
    mkdir -p "$nd/data"
    cat >"$nd/server.properties" <<PROPS
process.roles=broker,controller
node.id=$i
controller.quorum.voters=$voters
controller.listener.names=CONTROLLER
listeners=PLAINTEXT://127.0.0.1:${bport[i]},CONTROLLER://127.0.0.1:${cport[i]},SASL_PLAINTEXT://127.0.0.1:${sport[i]}
advertised.listeners=PLAINTEXT://127.0.0.1:${bport[i]},SASL_PLAINTEXT://127.0.0.1:${sport[i]}
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT
inter.broker.listener.name=PLAINTEXT
sasl.enabled.mechanisms=PLAIN
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$SASL_USER="$SASL_PASSWORD";
log.dirs=$nd/data
auto.create.topics.enable=false
num.partitions=1
default.replication.factor=$rf
min.insync.replicas=$minisr
offsets.topic.replication.factor=$rf
offsets.topic.num.partitions=3
transaction.state.log.replication.factor=$rf
transaction.state.log.min.isr=$minisr
share.coordinator.state.topic.replication.factor=$rf
share.coordinator.state.topic.min.isr=$minisr
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=2
num.recovery.threads.per.data.dir=1
background.threads=2
log.segment.bytes=67108864
log.retention.check.interval.ms=600000
unclean.leader.election.enable=false
PROPS
    # shellcheck disable=SC2046
    $(java_cmd "$dir") kafka.tools.StorageTool format -t "$cluster_id" -c "$nd/server.properties" \
      >"$nd/format.log" 2>&1 || { cat "$nd/format.log" >&2; die "formatting node $i failed"; }
    bootstrap+="${bootstrap:+,}127.0.0.1:${bport[i]}"
    sasl+="${sasl:+,}127.0.0.1:${sport[i]}"
  done
  {
    echo "BOOTSTRAP=$bootstrap"
    echo "SASL_BOOTSTRAP=$sasl"
    echo "SASL_USER=$SASL_USER"
    echo "SASL_PASSWORD=$SASL_PASSWORD"
    echo "NODES=$n"
    echo "VERSION=$VERSION"
    for ((i = 1; i <= n; i++)); do
      echo "NODE${i}_PORT=${bport[i]}"
      echo "NODE${i}_SASL_PORT=${sport[i]}"
      echo "NODE${i}_LOG=$dir/node$i/server.log"
    done
  } >"$dir/kafka.env.tmp"
  mv "$dir/kafka.env.tmp" "$dir/kafka.env"
  for ((i = 1; i <= n; i++)); do
    start_node "$dir" "$i" nowait
  done
  for ((i = 1; i <= n; i++)); do
    wait_node "$dir" "$i"
  done
  wait_brokers "$dir" "$n"
  echo "kafka.sh: $n node(s) of Apache Kafka $VERSION serve at $bootstrap (state: $dir/kafka.env)" >&2
}

env_get() { sed -n "s/^$2=//p" "$1/kafka.env" | tail -1; }

# The pid of node I of DIR when that process still runs that node (a pid left in kafka.env by
# a run that died may belong to another process by now: that one is never signalled).
node_pid() {
  local pid
  pid=$(env_get "$1" "NODE${2}_PID")
  [ -n "$pid" ] && tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" |
    grep -qF "$1/node$2/server.properties" && echo "$pid"
  return 0
}

start_node() {
  local dir i=$2 pid
  dir=$(cd "$1" && pwd)
  [ -f "$dir/kafka.env" ] || die "no cluster in $dir (no kafka.env)"
  pid=$(node_pid "$dir" "$i")
  if [ -n "$pid" ]; then
    echo "kafka.sh: node $i of $dir runs already (pid $pid): left as it is" >&2
    return 0
  fi
  echo "=== start $(date -u +%FT%TZ)" >>"$dir/node$i/server.log"
  # shellcheck disable=SC2046
  pid=$(tj_start "$dir/node$i/pid" "$dir/node$i/server.log" $(java_cmd "$dir") kafka.Kafka \
    "$dir/node$i/server.properties")
  sed -i "/^NODE${i}_PID=/d" "$dir/kafka.env"
  echo "NODE${i}_PID=$pid" >>"$dir/kafka.env"
  if [ "${3:-}" != nowait ]; then
    wait_node "$dir" "$i"
  fi
}

wait_node() {
  local dir=$1 i=$2 pid port
  pid=$(env_get "$dir" "NODE${i}_PID")
  port=$(env_get "$dir" "NODE${i}_PORT")
  if ! tj_wait_port "$port" "$START_SECONDS" "$pid"; then
    tail -n 30 "$dir/node$i/server.log" >&2
    die "node $i (pid $pid) did not serve on 127.0.0.1:$port; its log: $dir/node$i/server.log"
  fi
}

# Every broker is registered and unfenced: metadata from the cluster lists all n.
wait_brokers() {
  local dir=$1 n=$2 end=$((SECONDS + START_SECONDS)) got=0 bootstrap
  bootstrap=$(env_get "$dir" BOOTSTRAP)
  command -v kcat >/dev/null || die "kcat is missing: bash scripts/setup.sh installs it"
  while ((SECONDS < end)); do
    got=$(kcat -L -b "$bootstrap" -m 5 2>/dev/null | sed -n 's/^ *\([0-9]*\) brokers:$/\1/p' | head -1)
    [ "${got:-0}" -ge "$n" ] && return 0
    sleep 0.5
  done
  die "after ${START_SECONDS}s the cluster at $bootstrap lists ${got:-0} of $n brokers"
}

kill_node() {
  local dir i=$2 sig=${3:-KILL} pid
  dir=$(cd "$1" && pwd)
  pid=$(node_pid "$dir" "$i")
  [ -n "$pid" ] || die "node $i of $dir does not run"
  kill "-$sig" "$pid" 2>/dev/null || true
  local end=$((SECONDS + 60))
  while kill -0 "$pid" 2>/dev/null && ((SECONDS < end)); do sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && die "node $i (pid $pid) still alive 60s after SIG$sig"
  return 0
}

stop() {
  local dir=$1 n i
  [ -f "$dir/kafka.env" ] || return 0
  dir=$(cd "$dir" && pwd)
  n=$(env_get "$dir" NODES)
  # SIGTERM to all first (a controlled shutdown each), then wait for each.
  for ((i = 1; i <= n; i++)); do
    local pid
    pid=$(node_pid "$dir" "$i")
    [ -n "$pid" ] && kill -TERM "$pid" 2>/dev/null || true
  done
  for ((i = 1; i <= n; i++)); do
    tj_stop_pid "$(node_pid "$dir" "$i")" 10
    rm -f "$dir/node$i/pid"
  done
  mv "$dir/kafka.env" "$dir/kafka.env.stopped"
}

cmd=${1:-}
case "$cmd" in
fetch) fetch ;;
start-cluster) start "${2:?DIR}" 3 ;;
start-single) start "${2:?DIR}" 1 ;;
stop) stop "${2:?DIR}" ;;
kill-node) kill_node "${2:?DIR}" "${3:?I}" "${4:-KILL}" ;;
start-node)
  dir=${2:?DIR}
  shift 2
  [ $# -gt 0 ] || die "start-node DIR I [J...]: which nodes?"
  # all first, then wait: a lone node of a KRaft quorum does not serve until a majority runs
  for i in "$@"; do start_node "$dir" "$i" nowait; done
  for i in "$@"; do wait_node "$dir" "$i"; done
  ;;
*) die "usage: kafka.sh fetch | start-cluster DIR | start-single DIR | stop DIR | kill-node DIR I [SIGNAL] | start-node DIR I [J...]" ;;
esac
