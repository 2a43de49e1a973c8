#!/usr/bin/env bash
# bench/kafka.sh: the Kafka output, `tailjet run --exit-on-eof --output kafka://...`, end to end
# into SERVER: librdkafka's mock cluster (mock, the default: tests/kafka/tj_kafka_mock.c, 3
# brokers in one process), a real Apache Kafka broker (single: tests/servers/kafka.sh
# start-single, topics with replication 1) or a real 3-node cluster (cluster: start-cluster,
# replication 3, min.insync.replicas 2). The real ones run on this machine too (JVMs on the same
# cores), with topics of 3 partitions made by tests/kafka/tj_kafka_admin.
#
# Generates one Apache combined corpus in Docker's json-file format (bench/gen_corpus.c, as
# engine.sh does) and measures, RUNS times each, alternating (W=1, W=2, kcat, W=1, ...):
#   tailjet W=1, W=2  --watch on the one file, --exit-on-eof, --workers W, a fresh state dir and
#                     a fresh topic each run; the topic's end offsets must add up to LINES
#   kcat              the ceiling: kcat -P producing the very records tailjet produces (taken
#                     from a file: output of the same corpus, with the same key, so one partition
#                     as tailjet's) with -z lz4 -X enable.idempotence=true, fed from a file
# and prints records/s and MB/s (of the json-file input and of the records), medians, the
# ratios to kcat, the CPU the mock cluster used in each run (the broker shares the machine's
# cores with the producer: these are not figures against a remote cluster), the producer
# settings tailjet's librdkafka reports (debug=conf), and what else ran on the machine at the
# start and at the end. The mock keeps at most ~5 MB per partition (older messages are dropped,
# offsets go on), so the check is on end offsets, not on reading everything back.
#
# Environment: SERVER (mock, single or cluster), TAILJET (build/tailjet), MOCK (built from
# tests/kafka/tj_kafka_mock.c into BENCH_DIR), LINES (1000000), RUNS (3), SEED (20261125), PATTERN (empty: records shipped
# unparsed, ~400 B; e.g. '%{COMBINEDAPACHELOG}' parses them as engine.sh does), BENCH_DIR (a new
# mktemp -d under /tmp), KEEP (0; 1 keeps BENCH_DIR), LOAD_MAX (0.5), LOAD_WAIT (120 s).
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

TAILJET=${TAILJET:-build/tailjet}
MOCK=${MOCK:-}
SERVER=${SERVER:-mock}
case $SERVER in mock | single | cluster) ;; *) echo "kafka.sh: SERVER must be mock, single or cluster, not '$SERVER'" >&2; exit 2 ;; esac
LINES=${LINES:-1000000}
RUNS=${RUNS:-3}
KEEP=${KEEP:-0}
SEED=${SEED:-20261125}
PATTERN=${PATTERN:-}
LOAD_MAX=${LOAD_MAX:-0.5}
LOAD_WAIT=${LOAD_WAIT:-120}
RUN_TIMEOUT=600 # a run that takes longer is stopped and reported as failed
export TAILJET_METRICS_ADDR=${TAILJET_METRICS_ADDR:-off} # no /metrics server in the timed runs

say() { printf 'kafka.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_positive LINES RUNS LOAD_WAIT
[[ $LOAD_MAX =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "LOAD_MAX must be a number, not '$LOAD_MAX'"

use_bench_dir kafka

# ---- processes this script started: stopped on every exit ------------------------------------
MOCK_PID=
PEER_PIDS= # the server's process(es): the mock, or the Kafka nodes
KAFKA_DIR=

# Stops, newest first, every process this script started and their children (tailjet and kcat
# run as children of /usr/bin/time, which does not pass signals on), then the mock cluster
# ("quit" on its stdin, then by its pid), then removes what the run wrote under BENCH_DIR unless
# KEEP=1 (and BENCH_DIR itself if this script made it).
cleanup() {
	stop_started
	if [ -n "$MOCK_PID" ]; then
		{ echo quit >&3; } 2>/dev/null || true
		exec 3>&- || true
		for _ in $(seq 1 50); do
			kill -0 "$MOCK_PID" 2>/dev/null || break
			sleep 0.1
		done
		stop_pid "$MOCK_PID"
		wait "$MOCK_PID" 2>/dev/null || true
	fi
	if [ -n "$KAFKA_DIR" ]; then # by the pids in its kafka.env (SIGTERM, then SIGKILL)
		bash "$repo/tests/servers/kafka.sh" stop "$KAFKA_DIR" || true
	fi
	remove_bench_dir "corpus, binaries, logs and Kafka's data" bin corpus run mock kafka
}
set_traps

check_tools() {
	local t
	for t in cc awk df pgrep ps sort sync wc pkg-config sha256sum; do
		command -v "$t" >/dev/null || die "$t is missing: run scripts/setup.sh (Debian packages)"
	done
	command -v kcat >/dev/null || die "kcat is missing: apt-get install kcat (scripts/setup.sh)"
	[ -x /usr/bin/time ] || die "/usr/bin/time is missing: apt-get install time"
	pkg-config --exists rdkafka || die "librdkafka's headers are missing: apt-get install librdkafka-dev"
}

# The mock cluster: MOCK if given, else built from the test helper's source.
resolve_mock() {
	if [ -n "$MOCK" ]; then
		[ -x "$MOCK" ] || die "MOCK=$MOCK is not an executable"
		cp "$MOCK" "$BENCH_DIR/bin/tj_kafka_mock"
	else
		# shellcheck disable=SC2046 # pkg-config's flags are meant to split
		cc -O2 -Wall -Wextra -o "$BENCH_DIR/bin/tj_kafka_mock" "$repo/tests/kafka/tj_kafka_mock.c" \
			$(pkg-config --cflags --libs rdkafka) || die "cannot build tests/kafka/tj_kafka_mock.c"
	fi
	MOCK_BIN="$BENCH_DIR/bin/tj_kafka_mock"
}




# About 270 bytes a json-file line, ~400-450 bytes a record (twice: tailjet's file output, then
# the keyed copy kcat reads; the first is deleted once the second exists).
check_disk() {
	local need
	need=$((LINES * (280 + 2 * 900) + 256 * 1024 * 1024))
	require_disk "$need"
}

# ---- the mock cluster --------------------------------------------------------------------------
# start_mock TOPIC...: starts tj_kafka_mock with TOPIC... (3 partitions each), its stdin on fd 3
# (a FIFO), and sets BOOTSTRAP from its first line.
start_mock() {
	local d="$BENCH_DIR/mock"
	rm -rf "$d"
	mkdir -p "$d"
	mkfifo "$d/in"
	"$MOCK_BIN" --partitions 3 "$@" <"$d/in" >"$d/out" 2>"$d/err" &
	MOCK_PID=$!
	exec 3>"$d/in"
	for _ in $(seq 1 100); do
		BOOTSTRAP=$(head -1 "$d/out" 2>/dev/null || true)
		[ -z "$BOOTSTRAP" ] || break
		kill -0 "$MOCK_PID" 2>/dev/null || die "tj_kafka_mock exited: $(cat "$d/err")"
		sleep 0.1
	done
	[[ $BOOTSTRAP =~ ^127\.0\.0\.1:[0-9]+(,127\.0\.0\.1:[0-9]+){2}$ ]] || die "tj_kafka_mock gave no bootstrap servers: '$BOOTSTRAP' $(cat "$d/err")"
	PEER_PIDS=$MOCK_PID
	say "mock cluster (pid $MOCK_PID): $BOOTSTRAP"
}

# ---- a real Kafka --------------------------------------------------------------------------------
# start_kafka TOPIC...: a real Apache Kafka (tests/servers/kafka.sh start-single or start-cluster,
# as SERVER says) in BENCH_DIR/kafka, TOPIC... made with 3 partitions (replication 1 or 3); sets
# BOOTSTRAP and PEER_PIDS (its nodes).
start_kafka() {
	local rf=1 how=start-single
	[ "$SERVER" = single ] || { rf=3; how=start-cluster; }
	cc -O2 -Wall -Wextra -o "$BENCH_DIR/bin/tj_kafka_admin" "$repo/tests/kafka/tj_kafka_admin.c" \
		$(pkg-config --cflags --libs rdkafka) || die "cannot build tests/kafka/tj_kafka_admin.c"
	KAFKA_DIR="$BENCH_DIR/kafka"
	bash "$repo/tests/servers/kafka.sh" "$how" "$KAFKA_DIR" || die "Kafka did not start (tests/servers/kafka.sh $how)"
	BOOTSTRAP=$(sed -n 's/^BOOTSTRAP=//p' "$KAFKA_DIR/kafka.env")
	KAFKA_VERSION=$(sed -n 's/^VERSION=//p' "$KAFKA_DIR/kafka.env")
	PEER_PIDS=$(sed -n 's/^NODE[0-9]*_PID=//p' "$KAFKA_DIR/kafka.env" | paste -sd' ')
	"$BENCH_DIR/bin/tj_kafka_admin" "$BOOTSTRAP" 3 "$rf" "$@" || die "cannot create the topics"
	say "Apache Kafka $KAFKA_VERSION ($SERVER, pids $PEER_PIDS): $BOOTSTRAP"
}

# end_offsets TOPIC: the sum of the topic's end offsets (messages it took).
end_offsets() {
	{ kcat -Q -b "$BOOTSTRAP" -t "$1:0:-1" -t "$1:1:-1" -t "$1:2:-1" 2>/dev/null || true; } |
		awk '/offset/ { s += $NF; n++ } END { if (n == 3) print s; else print "?" }'
}

# ---- corpus and records --------------------------------------------------------------------
generate() {
	local c="$BENCH_DIR/corpus" id
	id=$(printf '%064x' 0)
	rm -rf "$c"
	apache_corpus "$c/$id/$id-json.log"
}

# tj_args W TOPIC STATE [ARGS...]: sets ARGS to the tailjet command line into TOPIC.
tj_args() {
	local w=$1 topic=$2 state=$3
	shift 3
	ARGS=("$TJ" run --watch "$ONE")
	[ -z "$PATTERN" ] || ARGS+=(--pattern "$PATTERN")
	ARGS+=(--output "kafka://$BOOTSTRAP/$topic" --state-dir "$state" --exit-on-eof --workers "$w" "$@")
}

# The records kcat sends: tailjet's own output of the corpus (file:), each line prefixed with the
# key tailjet uses for a --watch file (its path) and a tab.
make_records() {
	local d="$BENCH_DIR/run" rec n
	mkdir -p "$d"
	rec="$d/records.ndjson"
	rm -rf "$d/state" "$rec"
	ARGS=("$TJ" run --watch "$ONE")
	[ -z "$PATTERN" ] || ARGS+=(--pattern "$PATTERN")
	ARGS+=(--output "file:$rec" --state-dir "$d/state" --exit-on-eof)
	"${ARGS[@]}" 2>"$d/records.stderr" || die "tailjet could not write the records file: $(tail -3 "$d/records.stderr")"
	n=$(wc -l <"$rec")
	[ "$n" = "$LINES" ] || die "the records file holds $n records, not $LINES"
	REC_BYTES=$(($(stat -c %s "$rec") - LINES)) # without the newlines: what a message's value holds
	KEYED="$BENCH_DIR/corpus/keyed.tsv"
	awk -v k="$ONE" '{ print k "\t" $0 }' "$rec" >"$KEYED"
	rm -rf "$rec" "$d/state"
}

# settings: the producer configuration tailjet's librdkafka reports (debug=conf), a short run.
settings() {
	local d="$BENCH_DIR/run" f
	mkdir -p "$d/conf"
	f="$d/conf/app.log"
	echo 'hello' >"$f"
	timeout 30 "$TJ" run --watch "$f" --state-dir "$d/conf/state" --exit-on-eof \
		--output "kafka://$BOOTSTRAP/conf" --kafka-opt debug=conf --log-level debug 2>"$d/conf/stderr" || true
	SETTINGS=$(grep -E 'kafka: CONF: .*  [a-z.]+ = ' "$d/conf/stderr" |
		sed 's/.*\]:   //' | grep -vE '^(debug|[a-z_]+_cb|opaque|default_topic_conf|client.software.version) ' |
		sort -u | paste -sd';' | sed 's/;/; /g')
	[ -n "$SETTINGS" ] || SETTINGS="(none reported; the contract's defaults: enable.idempotence=true (acks=all), compression.type=lz4, linger.ms=5, message.timeout.ms=0)"
	rm -rf "$d/conf"
}

# ---- runs --------------------------------------------------------------------------------------
ROWS=() # "who|W|run|wall s|cpu s|mock cpu s|peak RSS KiB|note"
FAILED=0
declare -A CMDS=()

# timed WHO W RUN TOPIC CMD...: runs CMD under /usr/bin/time (stdin: REDIR_IN if set), checks its
# exit status and that TOPIC took LINES messages; adds a row.
timed() {
	local who=$1 w=$2 run=$3 topic=$4
	shift 4
	local d="$BENCH_DIR/run" wall got note=""
	mkdir -p "$d"
	[ -n "${CMDS[$who]:-}" ] || CMDS[$who]=$(cmdline "$@")
	sync
	run_timed "$d" "$who W=$w run $run" "$PEER_PIDS" "$@"
	wall=$T_WALL
	got=$(end_offsets "$topic")
	if [ "$T_RC" != 0 ] || [ "$got" != "$LINES" ] || [ "$T_WAITED" = 1 ]; then
		note="FAILED: exit $T_RC, topic $topic took $got of $LINES messages"
		say "$who W=$w run $run: $note; its stderr ends:"
		tail -5 "$d/stderr.txt" >&2
		FAILED=1
		wall=-
	fi
	ROWS+=("$who|$w|$run|$wall|$T_CPU|$T_PEER_CPU|$T_RSS|$note")
	say "$who W=$w run $run: ${wall} s, $T_CPU cpu s, server $T_PEER_CPU cpu s, peak RSS $T_RSS KiB"
}

run_tailjet() {
	local w=$1 run=$2 topic="tj-w$1-r$2" state="$BENCH_DIR/run/state"
	rm -rf "$state"
	mkdir -p "$state"
	tj_args "$w" "$topic" "$state"
	REDIR_IN="" timed tailjet "$w" "$run" "$topic" "${ARGS[@]}"
	rm -rf "$state"
}

run_kcat() {
	local run=$1 topic="kcat-r$1"
	REDIR_IN="$KEYED" timed kcat - "$run" "$topic" kcat -P -b "$BOOTSTRAP" -t "$topic" -K $'\t' \
		-z lz4 -X enable.idempotence=true
}

# ---- the table ---------------------------------------------------------------------------------
# row_fmt WHO W RUN WALL CPU MOCK RSS NOTE [RECORDS_PER_S]
row_fmt() {
	awk -v who="$1" -v w="$2" -v run="$3" -v wall="$4" -v cpu="$5" -v mcpu="$6" -v rss="$7" \
		-v note="$8" -v l="${9:-}" -v lines="$LINES" -v ib="$ONE_BYTES" -v rb="$REC_BYTES" 'BEGIN {
		if (wall == "-" || wall <= 0) { rps = "-"; imb = "-"; rmb = "-" }
		else {
			if (l == "") l = lines / wall
			rps = sprintf("%.0f", l); imb = sprintf("%.1f", l * ib / lines / 1e6)
			rmb = sprintf("%.1f", l * rb / lines / 1e6); wall = sprintf("%.3f", wall)
		}
		r = (rss == "-" || rss == "") ? "-" : sprintf("%.1f MiB", rss / 1024)
		cpr = (cpu == "-" || cpu == "") ? "-" : sprintf("%.2f", cpu * 1e6 / lines)
		printf "%-8s %2s %6s %10s %9s %9s %8s %7s %8s %8s %10s  %s\n", who, w, run, rps, imb, rmb, wall, cpu, cpr, mcpu, r, note
	}'
}

# medians WHO W: the median row of WHO at W over its successful runs; sets MED_RPS.
medians() {
	local sel wall cpu mcpu rss
	sel=$(printf '%s\n' "${ROWS[@]}" | awk -F'|' -v s="$1" -v w="$2" '$1 == s && $2 == w && $4 != "-"')
	MED_RPS=-
	if [ -z "$sel" ]; then
		row_fmt "$1" "$2" median - - - - "no successful run"
		return 0
	fi
	wall=$(cut -d'|' -f4 <<<"$sel" | median)
	cpu=$(cut -d'|' -f5 <<<"$sel" | median)
	mcpu=$(cut -d'|' -f6 <<<"$sel" | median)
	rss=$(cut -d'|' -f7 <<<"$sel" | median)
	MED_RPS=$(awk -F'|' -v n="$LINES" '{ print n / $4 }' <<<"$sel" | median)
	row_fmt "$1" "$2" median "$wall" "$cpu" "$mcpu" "$rss" "median of $(wc -l <<<"$sel") runs" "$MED_RPS"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b <= 0) print "-"; else printf "%.2f", a / b }'; }

print_table() {
	local row who w run wall cpu mcpu rss note m1 m2 mk
	echo
	case $SERVER in
	mock) echo "Kafka benchmark: tailjet run --exit-on-eof --output kafka://... into librdkafka's mock cluster (3 brokers, one process, THIS machine)" ;;
	single) echo "Kafka benchmark: tailjet run --exit-on-eof --output kafka://... into a real Apache Kafka $KAFKA_VERSION broker (1 node, KRaft, THIS machine), 3 partitions, replication 1" ;;
	cluster) echo "Kafka benchmark: tailjet run --exit-on-eof --output kafka://... into a real Apache Kafka $KAFKA_VERSION cluster (3 nodes, KRaft, THIS machine), 3 partitions, replication 3, min.insync.replicas 2" ;;
	esac
	echo "  tailjet: $TJ_VERSION ($TAILJET, sha256 $TJ_ID), librdkafka $(pkg-config --modversion rdkafka), $(nproc) CPUs, RUNS=$RUNS"
	echo "  corpus: 1 json-file, $LINES Apache combined lines, $ONE_BYTES bytes; ${PATTERN:+pattern $PATTERN; }records: $REC_BYTES bytes ($(awk -v b="$REC_BYTES" -v n="$LINES" 'BEGIN { printf "%.0f", b / n }') B each, as values), key: the file's path (one partition)"
	echo "  tailjet's producer settings (librdkafka debug=conf, non-defaults): $SETTINGS"
	echo "  kcat: the same records and key from a file, -z lz4 -X enable.idempotence=true, librdkafka's other defaults (linger.ms 5)"
	echo "  the server runs on the same $(nproc) cores: srv_cpu is the CPU it used during each run; records/s here are not those against a remote cluster"
	echo "  us/rec: the producer's own CPU (user + system) per record, in microseconds"
	echo "  before the timed runs: $QUIET"
	printf '%-8s %2s %6s %10s %9s %9s %8s %7s %8s %8s %10s  %s\n' who W run records/s in_MB/s rec_MB/s wall_s cpu_s us/rec srv_cpu peak_RSS note
	for row in "${ROWS[@]}"; do
		IFS='|' read -r who w run wall cpu mcpu rss note <<<"$row"
		row_fmt "$who" "$w" "$run" "$wall" "$cpu" "$mcpu" "$rss" "$note"
	done
	echo
	medians tailjet 1
	m1=$MED_RPS
	medians tailjet 2
	m2=$MED_RPS
	medians kcat -
	mk=$MED_RPS
	echo
	echo "median records/s: W=2 / W=1 = $(ratio "$m2" "$m1"); W=1 / kcat = $(ratio "$m1" "$mk"); W=2 / kcat = $(ratio "$m2" "$mk")"
	echo "in_MB/s: json-file bytes read per second; rec_MB/s: record (message value) bytes per second, before lz4"
	echo
	echo "commands (\$B/bin/tailjet is a copy of $TAILJET taken at the start; state dir and topic fresh each run):"
	echo "  B=$(printf '%q' "$BENCH_DIR")"
	printf '  %-8s %s\n' "tailjet:" "${CMDS[tailjet]:-}" "kcat:" "${CMDS[kcat]:-} < \$B/corpus/keyed.tsv" |
		awk -v b="$(printf '%q' "$BENCH_DIR")" '{ while ((i = index($0, b)) > 0) $0 = substr($0, 1, i - 1) "$B" substr($0, i + length(b)); print }' |
		sed -E 's/--workers 1/--workers W/; s/tj-w1-r1/tj-wW-rN/; s/kcat-r1/kcat-rN/'
	echo "  each under: /usr/bin/time -f '%e %U %S %M' (wall: its elapsed time)"
	echo "  this run:   SERVER=$SERVER TAILJET=$TAILJET LINES=$LINES RUNS=$RUNS SEED=$SEED PATTERN='$PATTERN' BENCH_DIR=$BENCH_DIR bench/kafka.sh"
}

main() {
	local start=$SECONDS r topics=(conf)
	check_tools
	machine_state "at the start"
	check_disk
	resolve_tailjet
	[[ $("$TJ" run --help 2>&1) == *--kafka-opt* ]] || die "$TAILJET has no Kafka output (no --kafka-opt in 'tailjet run --help')"
	[ "$SERVER" != mock ] || resolve_mock
	say "tailjet: $TJ_VERSION ($TAILJET, copied to $TJ)"
	for r in $(seq 1 "$RUNS"); do topics+=("tj-w1-r$r" "tj-w2-r$r" "kcat-r$r"); done
	if [ "$SERVER" = mock ]; then start_mock "${topics[@]}"; else start_kafka "${topics[@]}"; fi
	say "generating the corpus into $BENCH_DIR/corpus ($LINES lines)"
	generate
	say "writing the records kcat will send (tailjet --output file:, the same corpus)"
	make_records
	settings
	sync
	wait_for_quiet

	for r in $(seq 1 "$RUNS"); do
		run_tailjet 1 "$r"
		run_tailjet 2 "$r"
		run_kcat "$r"
	done

	print_table
	echo
	machine_state "at the end"
	echo "total runtime: $((SECONDS - start)) s"
	if [ "$FAILED" != 0 ]; then
		say "a run failed or its topic did not take every record (see above)"
		exit 1
	fi
}

main "$@"
