#!/usr/bin/env bash
# A real Elasticsearch node for the `real` tests and bench/es.sh: Elastic's integ-test-zip
# distribution (no bundled JDK, no extra modules) from Maven Central, run by Debian's OpenJDK 17.
#
#   es.sh fetch               puts the pinned zip into Maven's repository (~/.m2), the cache
#                             (scripts/setup.sh runs it; nothing is copied into the tree)
#   es.sh start DIR [-Ek=v]   a fresh node (a node left running from DIR is stopped first, its
#                             data removed): unzips it into DIR/home (once), runs it as the non-root user
#                             $TJ_SERVER_USER (default tailjet-test; it refuses root) with
#                             DIR/data and DIR/logs: single node, security off, heap
#                             $TJ_ES_HEAP (default 512m), on 127.0.0.1 and a free port (the one
#                             in DIR/port when it is restarted), extra -E settings after DIR.
#                             Waits until the node answers /_cluster/health, then writes
#                             DIR/url and prints it. DIR/pid is the node's JVM.
#   es.sh restart DIR         starts it again from DIR with the settings of its last start (after
#                             a test killed it: same port, same data)
#   es.sh stop DIR            SIGTERM to DIR/pid, SIGKILL after 30 s; waits for it to be gone.
# Any failure exits non-zero with the reason (and the end of the node's log): the tests that need
# the node fail then, they never skip.
set -euo pipefail

ES_VERSION=8.17.4
ARTIFACT=org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip
M2=${MAVEN_REPO:-${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}/.m2/repository}
ZIP=$M2/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$ES_VERSION/elasticsearch-$ES_VERSION.zip
RUN_USER=${TJ_SERVER_USER:-tailjet-test}
HEAP=${TJ_ES_HEAP:-512m}

here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/servers/lib.sh
source "$here/lib.sh" # tj_free_port, tj_user, tj_as_user, tj_stop_pid

die() {
  echo "es.sh: $*" >&2
  exit 1
}

java_home() {
  local j
  for j in "${ES_JAVA_HOME:-}" /usr/lib/jvm/java-17-openjdk-amd64 /usr/lib/jvm/java-17-openjdk-*; do
    [ -n "$j" ] && [ -x "$j/bin/java" ] && { echo "$j"; return; }
  done
  die "no Java 17 (Debian's openjdk-17-jre-headless; scripts/setup.sh installs it): set ES_JAVA_HOME"
}

alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

fetch() {
  if [ -f "$ZIP" ]; then
    echo "es.sh: $ARTIFACT is in $M2"
    return
  fi
  command -v mvn >/dev/null || die "mvn is missing (Debian's maven; scripts/setup.sh installs it)"
  echo "es.sh: fetching $ARTIFACT from Maven Central"
  mvn -q -B dependency:get -Dartifact="$ARTIFACT" -Dtransitive=false \
    -Dmaven.repo.local="$M2" ||
    die "Maven Central did not serve $ARTIFACT"
  [ -f "$ZIP" ] || die "mvn succeeded but $ZIP is not there"
}

start() {
  local fresh=$1 dir=$2
  shift 2
  [ -f "$ZIP" ] || die "$ZIP is missing: run 'bash tests/servers/es.sh fetch' (scripts/setup.sh does)"
  if [ "$(id -u)" -eq 0 ]; then
    tj_user "$RUN_USER" >/dev/null || die "no user $RUN_USER to run Elasticsearch as (it refuses root)"
  fi
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  if [ -f "$dir/pid" ] && alive "$(cat "$dir/pid")"; then
    [ "$fresh" = 1 ] || die "a node already runs from $dir (pid $(cat "$dir/pid"))"
    echo "es.sh: stopping the node left running from $dir" >&2
    stop "$dir"
  fi
  # The node's own files (home, data, logs, its pid file) are in DIR, or, when the user cannot
  # reach DIR (a checkout under a closed home directory), in a directory of /tmp named in
  # DIR/node and removed by stop.
  local nd=$dir
  if [ "$(id -u)" -eq 0 ] && ! tj_as_user "$RUN_USER" test -x "$dir"; then
    nd=/tmp/tailjet-es-$(printf '%s' "$dir" | sha1sum | cut -c1-12)
    mkdir -p "$nd"
    chmod 755 "$nd"
  fi
  echo "$nd" >"$dir/node"
  [ "$fresh" = 1 ] && rm -rf "$nd/data" "$nd/logs" "$nd/tmp" "$dir/port"
  local node_dir=$dir
  dir=$nd
  if [ ! -x "$dir/home/bin/elasticsearch" ]; then
    rm -rf "$dir/home" "$dir/unzip"
    mkdir -p "$dir/unzip"
    unzip -q "$ZIP" -d "$dir/unzip"
    mv "$dir/unzip/elasticsearch-$ES_VERSION" "$dir/home"
    rmdir "$dir/unzip"
  fi
  local port tport
  port=$(cat "$node_dir/port" 2>/dev/null || true)
  [ -n "$port" ] || { port=$(tj_free_port); echo "$port" >"$node_dir/port"; }
  tport=$(tj_free_port)
  mkdir -p "$dir/data" "$dir/logs" "$dir/tmp"
  printf '%s\n' "$@" >"$node_dir/settings"
  rm -f "$dir/pid" "$node_dir/pid" "$node_dir/url"
  if [ "$(id -u)" -eq 0 ]; then
    chown -R "$RUN_USER:" "$dir/home" "$dir/data" "$dir/logs" "$dir/tmp"
    chown "$RUN_USER:" "$dir"
  fi
  local jh
  jh=$(java_home)
  # -d: the launcher returns once the node has started (or failed to); -p: the JVM's pid.
  # Disk thresholds off: a shared machine's disk filling up must not make indices read-only.
  if ! tj_as_user "$RUN_USER" env -i PATH=/usr/bin:/bin HOME="$dir" ES_JAVA_HOME="$jh" \
    ES_TMPDIR="$dir/tmp" ES_JAVA_OPTS="-Xms$HEAP -Xmx$HEAP -XX:-HeapDumpOnOutOfMemoryError" \
    "$dir/home/bin/elasticsearch" -d -p "$dir/pid" \
    -Ediscovery.type=single-node -Expack.security.enabled=false \
    -Enetwork.host=127.0.0.1 -Ehttp.port="$port" -Etransport.port="$tport" \
    -Epath.data="$dir/data" -Epath.logs="$dir/logs" \
    -Ecluster.routing.allocation.disk.threshold_enabled=false \
    -Eaction.destructive_requires_name=false \
    "$@" >"$dir/start.log" 2>&1; then
    echo "es.sh: Elasticsearch $ES_VERSION did not start:" >&2
    tail -n 30 "$dir/start.log" >&2
    tail -n 30 "$dir/logs/elasticsearch.log" 2>/dev/null >&2 || true
    exit 1
  fi
  local url="http://127.0.0.1:$port" i
  for i in $(seq 1 240); do
    if curl -fsS -o /dev/null "$url/_cluster/health?wait_for_status=yellow&timeout=1s" 2>/dev/null; then
      [ "$dir" = "$node_dir" ] || cp "$dir/pid" "$node_dir/pid"
      echo "$url" >"$node_dir/url"
      echo "$url"
      return
    fi
    [ -f "$dir/pid" ] && ! alive "$(cat "$dir/pid")" && break
    sleep 0.5
  done
  echo "es.sh: Elasticsearch $ES_VERSION did not answer on $url:" >&2
  tail -n 30 "$dir/logs/elasticsearch.log" >&2 2>/dev/null || true
  [ "$dir" = "$node_dir" ] || cp "$dir/pid" "$node_dir/pid" 2>/dev/null || true
  stop "$node_dir" || true
  exit 1
}

stop() {
  local dir=$1 pid nd
  pid=$(cat "$dir/pid" 2>/dev/null || true)
  rm -f "$dir/url"
  tj_stop_pid "$pid" 30 # SIGTERM, SIGKILL after 30 s
  rm -f "$dir/pid"
  nd=$(cat "$dir/node" 2>/dev/null || true)
  case $nd in
  /tmp/tailjet-es-*) rm -rf "$nd" "$dir/node" ;;
  esac
  return 0
}

case "${1:-}" in
fetch) fetch ;;
start) [ $# -ge 2 ] || die "usage: es.sh start DIR [-Esetting=value ...]"; shift; start 1 "$@" ;;
restart)
  [ $# -eq 2 ] || die "usage: es.sh restart DIR"
  [ -f "$2/settings" ] || die "$2 holds no node to restart"
  mapfile -t saved <"$2/settings"
  [ "${saved[0]:-}" ] || saved=()
  start 0 "$2" "${saved[@]}"
  ;;
stop) [ $# -eq 2 ] || die "usage: es.sh stop DIR"; stop "$2" ;;
*) die "usage: es.sh fetch | start DIR [-Esetting=value ...] | restart DIR | stop DIR" ;;
esac
