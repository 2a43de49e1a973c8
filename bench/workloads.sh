#!/usr/bin/env bash
# bench/workloads.sh: `tailjet parse` on six workloads, each beside its own PCRE2 floor.
#
# For each workload: generates LINES lines as json-file and as plain twins (bench/gen_corpus.c),
# asks tailjet for the exact regex of each alternative (`tailjet patterns --regex`, and
# `--byte-regex` for the byte-mode twin it runs on pure-ASCII lines), then, pinned
# to one CPU, runs each in turn, RUNS rounds (the median counts):
#   tailjet parse   json-file -> NDJSON file (the file removed and `sync`ed before each run)
#   floor --byte    the same regexes in byte mode, as tailjet matches ASCII lines (lines in memory)
#   floor           the same regexes in UTF mode
# and checks that tailjet wrote one record per event and matched exactly the events the floor
# matched. The workloads:
#   apache     %{COMBINEDAPACHELOG}
#   syslog     %{SYSLOGLINE}
#   haproxy    %{HAPROXYHTTP}
#   java       a logback/Spring Boot line pattern, logMultiline joining stack traces into events
#   kv         key=value application lines, three :int fields
#   nomatch    JSON application lines against three alternatives, none of which matches
#              (the failure path: every alternative tried, every record tagged)
# Prints one table: lines/s, CPU s, peak RSS, floor lines/s in both modes, the ratio to each, and
# the ratio of the byte-mode floor's CPU time to tailjet's (the one a shared machine moves least).
# After each tailjet run, bench/iocost.c reads the same input and writes as many bytes as tailjet
# wrote (the kernel's copies alone); the table's `ceiling` is the CPU ratio tailjet would reach if
# its own code cost nothing, and `own_ns` what its own code costs per event (io: the least of
# the runs, the cheapest the copies were seen to be).
#
# Environment: TAILJET (build/tailjet), LINES (1000000), RUNS (5), CPU (0), SEED (20261125),
# RUN_TIMEOUT (600 s a run),
# BENCH_DIR (a new /tmp/tailjet-workloads.XXXXXX, removed at the end unless KEEP=1),
# WORKLOADS ("apache syslog haproxy java kv nomatch": a subset runs only those).
# SHIP (0; 1 also runs each workload through `tailjet run --exit-on-eof` to the file output,
# --workers 1 and 2, RUNS times each, and prints a second table: CPU s per million records).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

TAILJET=${TAILJET:-build/tailjet}
LINES=${LINES:-1000000}
RUNS=${RUNS:-5}
CPU=${CPU:-0}
SEED=${SEED:-20261125}
KEEP=${KEEP:-0}
RUN_TIMEOUT=${RUN_TIMEOUT:-600}
WORKLOADS=${WORKLOADS:-apache syslog haproxy java kv nomatch}
SHIP=${SHIP:-0}

say() { printf 'workloads.sh: %s\n' "$*" >&2; }
die() {
	say "$*"
	exit 1
}

# shellcheck source=bench/lib.sh
source "$here/lib.sh"
cleanup() {
	stop_started
	remove_bench_dir "corpora and outputs" corpus out ship bin
}

# ---- the workloads -------------------------------------------------------------------------------
# E: an optional ANSI colour escape, as Spring Boot writes with colours on.
E='(?:\e\[[0-9;]*m)?'
JAVA_PATTERN="^$E%{TIMESTAMP_ISO8601:timestamp}$E +$E *%{LOGLEVEL:log.level}$E +(?:\[%{DATA:process.thread.name}\] %{JAVACLASS:log.logger} - |${E}1$E $E---$E (?:\[%{DATA:service.component}\] \[ *%{DATA:process.thread.name}\] )?$E%{JAVACLASS:log.logger} *$E $E:$E )%{GREEDYDATA:log.text}"
JAVA_MULTILINE="^$E\\d{4}-\\d\\d-\\d\\d"
KV_PATTERN='ts=%{TIMESTAMP_ISO8601:timestamp} level=%{LOGLEVEL:log.level} method=%{WORD:http.request.method} path=%{NOTSPACE:url.original} status=%{INT:http.response.status_code:int} duration_ms=%{INT:event.duration_ms:int} bytes=%{INT:http.response.body.bytes:int} user=%{NOTSPACE:user.name} request_id=%{BASE16NUM:trace.id}'

# workload NAME: sets KIND (gen_corpus --kind), PATTERNS (array, alternatives in order), ML.
workload() {
	ML=""
	case $1 in
	apache) KIND=apache PATTERNS=('%{COMBINEDAPACHELOG}') ;;
	syslog) KIND=syslog PATTERNS=('%{SYSLOGLINE}') ;;
	haproxy) KIND=haproxy PATTERNS=('%{HAPROXYHTTP}') ;;
	java) KIND=javatrace PATTERNS=("$JAVA_PATTERN") ML=$JAVA_MULTILINE ;;
	kv) KIND=kv PATTERNS=("$KV_PATTERN") ;;
	nomatch) KIND=json PATTERNS=('%{COMBINEDAPACHELOG}' '%{SYSLOGLINE}' '%{HAPROXYHTTP}') ;;
	*) die "unknown workload '$1' (apache syslog haproxy java kv nomatch)" ;;
	esac
}

# ---- one workload ------------------------------------------------------------------------------
ROWS=()

# run_workload NAME: generates its corpus, runs tailjet and both floors, checks, adds a row.
run_workload() {
	local name=$1 json plain re bre ml_file p args=() walls=() cpus=() rss=0 i out d
	local fb=() fbc=() fu=() io=() matched_floor fallbacks floor_total events line t_wall t_cpu t_rss
	workload "$name"
	json="$BENCH_DIR/corpus/$name.json"
	plain="$BENCH_DIR/corpus/$name.log"
	"$BENCH_DIR/bin/gen_corpus" --kind "$KIND" --lines "$LINES" --seed "$SEED" --format json-file -o "$json" 2>/dev/null
	"$BENCH_DIR/bin/gen_corpus" --kind "$KIND" --lines "$LINES" --seed "$SEED" --format plain -o "$plain" 2>/dev/null

	re="$BENCH_DIR/corpus/$name.regex"
	bre="$BENCH_DIR/corpus/$name.byte-regex"
	: >"$re"
	: >"$bre"
	for p in "${PATTERNS[@]}"; do
		"$TJ" patterns --regex "$p" >>"$re" || die "$name: 'tailjet patterns --regex $p' failed"
		# tailjet's byte-mode twin, or (exit 1: it has none) the regex itself, which the floor
		# then compiles in UTF mode as tailjet does
		"$TJ" patterns --byte-regex "$p" >>"$bre" 2>/dev/null || tail -1 "$re" >>"$bre"
		args+=(--pattern "$p")
	done
	ml_file=""
	if [ -n "$ML" ]; then
		ml_file="$BENCH_DIR/corpus/$name.multiline"
		"$TJ" patterns --regex "$ML" >"$ml_file" || die "$name: cannot expand the multiline regex"
		args+=(--multiline "$ML")
	fi

	d="$BENCH_DIR/out"
	out="$d/$name.ndjson"
	# tailjet and both floors in turn, run after run, so that a change in the machine's load
	# (other processes on these cores) falls on all three alike
	for i in $(seq 1 "$RUNS"); do
		rm -f "$out"
		sync
		run_timed "$d" "tailjet parse ($name)" 0 taskset -c "$CPU" "$TJ" parse "${args[@]}" "$json"
		[ "$T_RC" = 0 ] && [ "$T_WAITED" = 0 ] || die "$name: tailjet parse failed (exit $T_RC): $(tail -3 "$d/stderr.txt")"
		mv "$d/stdout.txt" "$out"
		walls+=("$T_WALL")
		cpus+=("$T_CPU")
		[ "$T_RSS" = - ] || [ "$T_RSS" -le "$rss" ] || rss=$T_RSS
		# the kernel's copies alone: read the same input, write as many bytes, into a fresh file
		rm -f "$d/iocost.out"
		sync
		line=$(taskset -c "$CPU" "$BENCH_DIR/bin/iocost" "$json" "$(stat -c %s "$out")" "$d/iocost.out")
		io+=("$(sed -n 's/.* cpu_seconds=\([0-9.]*\)$/\1/p' <<<"$line")")
		rm -f "$d/iocost.out"
		[ "$KEEP" = 1 ] || [ "$i" = "$RUNS" ] || rm -f "$out"

		line=$(taskset -c "$CPU" "$BENCH_DIR/bin/floor" --byte ${ml_file:+--multiline-file "$ml_file"} --regex-file "$bre" "$plain")
		fb+=("$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<<"$line")")
		fbc+=("$(sed -n 's/.* cpu_seconds=\([0-9.]*\).*/\1/p' <<<"$line")")
		matched_floor=$(sed -n 's/.* matched=\([0-9]*\).*/\1/p' <<<"$line")
		fallbacks=$(sed -n 's/.* utf_fallbacks=\([0-9]*\).*/\1/p' <<<"$line")
		floor_total=$(sed -n 's/.* total=\([0-9]*\).*/\1/p' <<<"$line")
		line=$(taskset -c "$CPU" "$BENCH_DIR/bin/floor" ${ml_file:+--multiline-file "$ml_file"} --regex-file "$re" "$plain")
		fu+=("$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<<"$line")")
	done
	# parse's summary: "N records: M matched, ..."
	line=$(grep -m1 'records:' "$d/stderr.txt" || true)
	events=$(sed -n 's/.*: \([0-9]*\) records:.*/\1/p' <<<"$line")
	local matched_tj
	matched_tj=$(sed -n 's/.* \([0-9]*\) matched,.*/\1/p' <<<"$line")
	[ "$(wc -l <"$out")" = "$events" ] || die "$name: $(wc -l <"$out") records written, the summary says $events"
	[ "$floor_total" = "$events" ] || die "$name: the floor saw $floor_total events, tailjet $events"
	local note=""
	[ "$fallbacks" = 0 ] || note="$fallbacks of ${#PATTERNS[@]} in UTF mode (no byte-mode twin) "
	[ "$matched_floor" = "$matched_tj" ] || note+="MISMATCH: the floor matched $matched_floor"
	t_wall=$(printf '%s\n' "${walls[@]}" | median)
	t_cpu=$(printf '%s\n' "${cpus[@]}" | median)
	t_rss=$rss
	ROWS+=("$name|$events|$matched_tj|$t_wall|$t_cpu|$t_rss|$(printf '%s\n' "${fb[@]}" | median)|$(printf '%s\n' "${fu[@]}" | median)|$(printf '%s\n' "${walls[@]}" | sort -g | head -1)|$(printf '%s\n' "${walls[@]}" | sort -g | tail -1)|$(printf '%s\n' "${fbc[@]}" | median)|$(printf '%s\n' "${io[@]}" | sort -g | head -1)|$note")
	[ "$KEEP" = 1 ] || rm -f "$out"
	if [ "$SHIP" = 1 ]; then
		say "$name: $RUNS runs of tailjet run, W=1 and W=2"
		ship_workload "$name" "$json" "$events" "${args[@]}"
	fi
	[ "$KEEP" = 1 ] || rm -f "$json" "$plain"
	[ "$matched_floor" = "$matched_tj" ] || MISMATCH=1
}

# ---- the shipping path: tailjet run ------------------------------------------------------------
SHIP_ROWS=()

# ship_workload NAME JSON EVENTS ARGS...: `tailjet run --exit-on-eof` on the workload's json-file
# corpus to the file output, W=1 and W=2 alternating, RUNS times each (fresh output and state
# dir, `sync`ed first, not pinned); checks the exit status and that the output holds EVENTS
# records; adds a row of medians.
ship_workload() {
	local name=$1 json=$2 events=$3 d="$BENCH_DIR/ship" w i out state
	shift 3
	local -A walls=() cpus=() rss=()
	mkdir -p "$d"
	out="$d/out.ndjson"
	state="$d/state"
	for i in $(seq 1 "$RUNS"); do
		for w in 1 2; do
			rm -rf "$out" "$state"
			mkdir -p "$state"
			sync
			run_timed "$d" "tailjet run ($name, W=$w)" 0 "$TJ" run --watch "$json" "$@" --output "file:$out" \
				--state-dir "$state" --exit-on-eof --workers "$w" --metrics-addr off
			[ "$T_RC" = 0 ] && [ "$T_WAITED" = 0 ] ||
				die "$name: tailjet run --workers $w failed (exit $T_RC): $(tail -3 "$d/stderr.txt")"
			[ "$(wc -l <"$out")" = "$events" ] ||
				die "$name: tailjet run --workers $w shipped $(wc -l <"$out") records, parse made $events"
			walls[$w]+="$T_WALL "
			cpus[$w]+="$T_CPU "
			[ "$T_RSS" = - ] || [ "$T_RSS" -le "${rss[$w]:-0}" ] || rss[$w]=$T_RSS
		done
	done
	rm -rf "$out" "$state"
	local row="$name|$events"
	for w in 1 2; do
		row+="|$(tr ' ' '\n' <<<"${walls[$w]}" | grep . | median)|$(tr ' ' '\n' <<<"${cpus[$w]}" | grep . | median)|${rss[$w]:-0}"
	done
	SHIP_ROWS+=("$row")
}

print_ship_table() {
	local row
	echo
	echo "shipping path: tailjet run --exit-on-eof --watch CORPUS --output file:OUT, json-file, not pinned, median of $RUNS runs, W=1 and W=2 alternating"
	echo "  cpu/M: CPU seconds (user + system, all threads) per million records"
	printf '%-9s %9s | %11s %7s %7s %7s %7s | %11s %7s %7s %7s %7s | %5s\n' workload records \
		W1_lines/s wall_s cpu_s cpu/M RSS W2_lines/s wall_s cpu_s cpu/M RSS 2/1
	for row in "${SHIP_ROWS[@]}"; do
		IFS='|' read -r name events w1 c1 r1 w2 c2 r2 <<<"$row"
		awk -v n="$name" -v e="$events" -v lines="$LINES" -v w1="$w1" -v c1="$c1" -v r1="$r1" \
			-v w2="$w2" -v c2="$c2" -v r2="$r2" 'BEGIN {
			printf "%-9s %9d | %11.0f %7.3f %7.2f %7.2f %4.0fMiB | %11.0f %7.3f %7.2f %7.2f %4.0fMiB | %5.2f\n",
				n, e, lines / w1, w1, c1, c1 * 1e6 / e, r1 / 1024, lines / w2, w2, c2, c2 * 1e6 / e, r2 / 1024, w1 / w2
		}'
	done
}

print_table() {
	local row
	echo
	echo "parse workloads: $LINES json-file lines each, tailjet parse -> NDJSON file, pinned to CPU $CPU, median of $RUNS runs"
	echo "  tailjet: $TJ_VERSION ($TJ_ID)"
	echo "  command: TAILJET=$TAILJET LINES=$LINES RUNS=$RUNS CPU=$CPU SEED=$SEED bash bench/workloads.sh"
	echo "  ratios: the floor's time over tailjet's (median over median); events: records (java joins traces)"
	echo "  x_byte_cpu: the byte-mode floor's CPU time over tailjet's (user + system): on a shared machine,"
	echo "  the wall-clock ratios also count the time other processes take from each run"
	echo "  io_cpu: CPU seconds of reading the same input and writing as many output bytes, nothing else"
	echo "  (bench/iocost.c: the least of its three passes, the least over the runs; a first write into a"
	echo "  fresh file can cost several times more while the kernel reclaims page cache)"
	echo "  ceiling: x_byte_cpu if tailjet's own code cost nothing, the byte floor's CPU over (that + io_cpu)"
	echo "  own_ns: what is left per event, (cpu_s - byte floor CPU - io_cpu) / events"
	printf '%-9s %9s %9s %11s %7s %7s %8s %12s %12s %7s %7s %10s %6s %7s %6s %s\n' workload events matched tailjet/s wall_s cpu_s RSS floor_byte/s floor_utf/s x_byte x_utf x_byte_cpu io_cpu ceiling own_ns "wall min-max / note"
	for row in "${ROWS[@]}"; do
		IFS='|' read -r name events matched wall cpu rss fb fu wmin wmax fbc io note <<<"$row"
		awk -v n="$name" -v e="$events" -v m="$matched" -v w="$wall" -v c="$cpu" -v r="$rss" \
			-v fb="$fb" -v fu="$fu" -v lo="$wmin" -v hi="$wmax" -v fbc="$fbc" -v io="$io" -v note="$note" -v lines="$LINES" 'BEGIN {
			printf "%-9s %9d %9d %11.0f %7.3f %7.2f %5.0fMiB %12.0f %12.0f %7.3f %7.3f %10.3f %6.3f %7.3f %6.0f %s-%s %s\n",
				n, e, m, lines / w, w, c, r / 1024, lines / fb, lines / fu, fb / w, fu / w, (c > 0 ? fbc / c : 0),
				io, fbc / (fbc + io), (c - fbc - io) * 1e9 / e, lo, hi, note
		}'
	done
}

main() {
	require_positive LINES RUNS
	command -v taskset >/dev/null || die "taskset is missing: apt-get install util-linux"
	[ -x /usr/bin/time ] || die "/usr/bin/time is missing: apt-get install time"
	pkg-config --exists libpcre2-8 || die "libpcre2-8 development files are missing: apt-get install libpcre2-dev"
	use_bench_dir workloads
	set_traps
	resolve_tailjet
	require_disk $((LINES * 2600)) "each workload's corpus twins and output"
	mkdir -p "$BENCH_DIR/bin" "$BENCH_DIR/corpus" "$BENCH_DIR/out"
	cc -O2 -std=c11 -Wall -Wextra -o "$BENCH_DIR/bin/gen_corpus" "$here/gen_corpus.c"
	cc -O2 -std=c11 -Wall -Wextra -o "$BENCH_DIR/bin/iocost" "$here/iocost.c"
	# shellcheck disable=SC2046 # pkg-config prints several words on purpose
	cc -O2 -std=c11 -Wall -Wextra -o "$BENCH_DIR/bin/floor" "$here/floor.c" $(pkg-config --cflags --libs libpcre2-8)
	machine_state "before the run"
	MISMATCH=0
	local w
	for w in $WORKLOADS; do
		say "$w: generating $LINES lines, then $RUNS runs of tailjet and of each floor"
		run_workload "$w"
	done
	print_table
	[ "$SHIP" != 1 ] || print_ship_table
	machine_state "after the run"
	[ "$MISMATCH" = 0 ] || die "tailjet and the floor disagree on what matched (see the table)"
}

main "$@"
