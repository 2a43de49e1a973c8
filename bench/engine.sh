#!/usr/bin/env bash
# bench/engine.sh: the shipping engine, `tailjet run --exit-on-eof`, end to end on all cores.
#
# Generates Apache combined corpora in Docker's json-file format and measures, with a fresh state
# directory and output file each run (both deleted right after it):
#   1 file      one busy <id>-json.log of LINES lines, --workers 1 and 2, RUNS times each,
#               alternating (1,2,1,2,...); median of each, and the W=2/W=1 ratio of lines/s
#   100 files   the same lines split over 100 files in 100 dirs (DIR/<id>/<id>-json.log), one
#               --watch glob; the same measurements and ratio
#   1000 files  SMALL_FILES files of SMALL_LINES lines, one glob, default workers: wall time and
#               peak RSS with --exit-on-eof; then without it: started, waited for until the output
#               holds every record, its VmRSS/VmHWM sampled while it idles IDLE_SECS s following
#               them all, stopped with SIGTERM (it must exit 0)
# and prints one table, with what else ran on the machine at the start and at the end. See
# bench/README.md ("engine.sh") for what each number means.
#
# Environment: TAILJET (build/tailjet), LINES (2000000), RUNS (3), BENCH_DIR (a new mktemp -d
# under /tmp), KEEP (0; 1 keeps BENCH_DIR's corpora and binaries), SEED (20261125), SMALL_FILES
# (1000), SMALL_LINES (100), IDLE_SECS (3), LOAD_MAX (0.5), LOAD_WAIT (120 s).
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

TAILJET=${TAILJET:-build/tailjet}
LINES=${LINES:-2000000}
RUNS=${RUNS:-3}
KEEP=${KEEP:-0}
SEED=${SEED:-20261125}
SMALL_FILES=${SMALL_FILES:-1000}
SMALL_LINES=${SMALL_LINES:-100}
IDLE_SECS=${IDLE_SECS:-3}
LOAD_MAX=${LOAD_MAX:-0.5}
LOAD_WAIT=${LOAD_WAIT:-120}
PATTERN='%{COMBINEDAPACHELOG}'
MANY_FILES=100
S_ONE=1-file
S_MANY=$MANY_FILES-files
S_SMALL=$SMALL_FILES-files
[ "$S_SMALL" != "$S_MANY" ] || S_SMALL=$SMALL_FILES-small

say() { printf 'engine.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_positive LINES RUNS SMALL_FILES SMALL_LINES IDLE_SECS LOAD_WAIT
[[ $LOAD_MAX =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "LOAD_MAX must be a number, not '$LOAD_MAX'"
[ "$LINES" -ge "$MANY_FILES" ] || die "LINES must be at least $MANY_FILES (one line per file of the 100-file corpus)"

use_bench_dir engine

# ---- processes this script started: stopped on every exit ------------------------------------

# Stops, newest first, every process this script started and their children (tailjet runs as the
# child of /usr/bin/time, which does not pass signals on), reaps them, then removes what the run
# wrote under BENCH_DIR unless KEEP=1 (and BENCH_DIR itself if this script made it).
cleanup() {
	stop_started
	remove_bench_dir "corpora, binaries and logs" bin corpus run
}
set_traps

check_tools() {
	local t
	for t in cc awk df pgrep ps sort sync dd wc; do
		command -v "$t" >/dev/null || die "$t is missing: run scripts/setup.sh (Debian packages)"
	done
	[ -x /usr/bin/time ] || die "/usr/bin/time is missing: apt-get install time"
}

# ---- disk --------------------------------------------------------------------------------------
# About 268 bytes a json-file line; a record is about 700 bytes, 850 with a long Docker path.
check_disk() {
	local need small=$((SMALL_FILES * SMALL_LINES)) big
	big=$((LINES > small ? LINES : small))
	need=$((LINES * 280 * 2 + small * 280 + big * 900 + 256 * 1024 * 1024))
	require_disk "$need" "corpora $((LINES * 280 * 2 / 1000000)) MB, one run's output up to $((big * 900 / 1000000)) MB"
}

# ---- corpora -----------------------------------------------------------------------------------
# split_into SRC DIR N TOTAL: the TOTAL lines of SRC, in order, over N files DIR/<id>/<id>-json.log
# (<id>: 64 hex digits, as Docker's); file k holds lines floor(k*TOTAL/N)+1 .. floor((k+1)*TOTAL/N).
split_into() {
	local src=$1 dir=$2 n=$3 total=$4
	rm -rf "$dir"
	mkdir -p "$dir"
	awk -v n="$n" -v total="$total" -v dir="$dir" 'BEGIN {
		cur = -1
		for (k = 0; k < n; k++) { ids[k] = sprintf("%064x", k + 1); l = l " " dir "/" ids[k] }
		if (system("mkdir -p" l) != 0) exit 1
	}
	{
		f = int((NR - 1) * n / total)
		if (f != cur) {
			if (cur >= 0) close(path)
			cur = f
			path = sprintf("%s/%s/%s-json.log", dir, ids[f], ids[f])
		}
		print > path
	}' "$src"
}

generate() {
	local c="$BENCH_DIR/corpus" id
	id=$(printf '%064x' 0)
	rm -rf "$c"
	apache_corpus "$c/one/$id/$id-json.log"
	split_into "$ONE" "$c/many" "$MANY_FILES" "$LINES"
	MANY_GLOB="$c/many/*/*-json.log"
	SMALL_TOTAL=$((SMALL_FILES * SMALL_LINES))
	"$BENCH_DIR/bin/gen_corpus" --kind apache --lines "$SMALL_TOTAL" --seed "$((SEED + 1))" --format json-file -o "$c/small.log"
	SMALL_BYTES=$(stat -c %s "$c/small.log")
	split_into "$c/small.log" "$c/small" "$SMALL_FILES" "$SMALL_TOTAL"
	rm -f "$c/small.log"
	SMALL_GLOB="$c/small/*/*-json.log"
	# shellcheck disable=SC2086 # the globs are meant to expand here
	[ "$(cat $MANY_GLOB | wc -l)" -eq "$LINES" ] || die "the $MANY_FILES-file corpus does not hold $LINES lines"
	# shellcheck disable=SC2086
	[ "$(printf '%s\n' $SMALL_GLOB | wc -l)" -eq "$SMALL_FILES" ] || die "the small corpus does not have $SMALL_FILES files"
}

# ---- runs --------------------------------------------------------------------------------------
ROWS=()    # "scenario|W|run|lines|bytes|wall s|cpu s|peak RSS KiB|note"
FAILED=0

# tj_args W GLOB OUT STATE [--exit-on-eof]: sets ARGS to the tailjet command line.
tj_args() {
	local w=$1 glob=$2 out=$3 state=$4
	shift 4
	ARGS=("$TJ" run --watch "$glob" --pattern "$PATTERN" --output "file:$out" --state-dir "$state" "$@")
	[ "$w" = auto ] || ARGS+=(--workers "$w")
}

# run_once SCENARIO W RUN GLOB LINES BYTES: one `tailjet run --exit-on-eof` under /usr/bin/time,
# with a fresh state dir and output, both deleted afterwards; checks its exit status and that the
# output holds LINES records; adds a row.
run_once() {
	local scen=$1 w=$2 run=$3 glob=$4 want=$5 bytes=$6
	local d="$BENCH_DIR/run" pid rc=0 t0 t1 got wall cpu rss u s note="" fails
	local out="$d/out.ndjson" state="$d/state"
	mkdir -p "$d"
	rm -rf "$out" "$state"
	mkdir "$state"
	tj_args "$w" "$glob" "$out" "$state" --exit-on-eof
	[ -n "${CMDS[$scen]:-}" ] || CMDS[$scen]=$(cmdline "${ARGS[@]}")
	sync # the previous run's deleted output and the corpora are settled before the clock starts
	t0=$(now_ns)
	/usr/bin/time -f '%e %U %S %M' -o "$d/time.txt" "${ARGS[@]}" >"$d/stdout.txt" 2>"$d/stderr.txt" &
	pid=$!
	PIDS+=("$pid")
	wait "$pid" || rc=$?
	t1=$(now_ns)
	wall=$(secs "$t0" "$t1")
	got=0
	[ ! -f "$out" ] || got=$(wc -l <"$out")
	u=0 s=0 rss=-
	[ ! -s "$d/time.txt" ] || read -r _ u s rss < <(tail -1 "$d/time.txt") || true
	cpu=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
	fails=$(sed -n 's/.*[ (]\([0-9][0-9]*\) _grokparsefailure.*/\1/p' "$d/stderr.txt" | tail -1)
	[ -z "$fails" ] || [ "$fails" = 0 ] || note="$fails _grokparsefailure"
	if [ "$rc" != 0 ] || [ "$got" != "$want" ]; then
		note="FAILED: exit $rc, $got of $want records"
		say "$scen W=$w run $run: $note; its stderr ends:"
		tail -5 "$d/stderr.txt" >&2
		FAILED=1
		wall=-
	fi
	rm -rf "$out" "$state"
	ROWS+=("$scen|$w|$run|$want|$bytes|$wall|$cpu|$rss|$note")
	say "$scen W=$w run $run: ${wall} s, $cpu cpu s, peak RSS $rss KiB"
}

# scenario_pair SCENARIO GLOB LINES BYTES: W=1 and W=2, alternating, RUNS times each.
scenario_pair() {
	local r
	for r in $(seq 1 "$RUNS"); do
		run_once "$1" 1 "$r" "$2" "$3" "$4"
		run_once "$1" 2 "$r" "$2" "$3" "$4"
	done
}

# count_new FILE: adds to COUNTED the lines FILE gained since OFF bytes (both kept by the caller).
count_new() {
	local size
	[ -f "$1" ] || return 0
	size=$(stat -c %s "$1")
	if [ "$size" -gt "$OFF" ]; then
		COUNTED=$((COUNTED + $(dd if="$1" bs=1M iflag=skip_bytes,count_bytes skip="$OFF" \
			count="$((size - OFF))" status=none | wc -l)))
		OFF=$size
	fi
}


# run_idle: tailjet without --exit-on-eof on the small corpus; once the output holds every record,
# samples /proc/PID/status every 0.1 s for IDLE_SECS s, then SIGTERM; it must exit 0.
run_idle() {
	local d="$BENCH_DIR/run" pid rc=0 t0 t_all="" t_idle idle_s t_term t_exit tck c0 c1 s max_rss=0 hwm thr fds nofile stop_s
	local out="$d/out.ndjson" state="$d/state"
	mkdir -p "$d"
	rm -rf "$out" "$state"
	mkdir "$state"
	tj_args auto "$SMALL_GLOB" "$out" "$state"
	IDLE_CMD=$(cmdline "${ARGS[@]}")
	tck=$(getconf CLK_TCK)
	sync
	t0=$(now_ns)
	"${ARGS[@]}" >"$d/stdout.txt" 2>"$d/stderr.txt" &
	pid=$!
	PIDS+=("$pid")
	COUNTED=0 OFF=0
	while :; do
		count_new "$out"
		if [ "$COUNTED" -ge "$SMALL_TOTAL" ]; then
			t_all=$(now_ns)
			break
		fi
		kill -0 "$pid" 2>/dev/null || break
		[ $(($(now_ns) - t0)) -lt 120000000000 ] || break
		sleep 0.1
	done
	if [ -z "$t_all" ]; then
		say "idle run: $COUNTED of $SMALL_TOTAL records after $(secs "$t0" "$(now_ns)") s (exited or timed out); its stderr ends:"
		tail -5 "$d/stderr.txt" >&2
		IDLE="FAILED: $COUNTED of $SMALL_TOTAL records"
		FAILED=1
		stop_pid "$pid"
		wait "$pid" 2>/dev/null || true
		rm -rf "$out" "$state"
		return 0
	fi
	c0=$(ticks "$pid")
	t_idle=$(now_ns)
	while [ $(($(now_ns) - t_idle)) -lt $((IDLE_SECS * 1000000000)) ]; do
		sleep 0.1
		s=$(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status" 2>/dev/null || true)
		[ "${s:-0}" -le "$max_rss" ] || max_rss=$s
	done
	c1=$(ticks "$pid")
	idle_s=$(secs "$t_idle" "$(now_ns)")
	hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
	thr=$(awk '/^Threads/ { print $2 }' "/proc/$pid/status" 2>/dev/null || echo 0)
	fds=$(find "/proc/$pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)
	nofile=$(awk '/^Max open files/ { print $4 }' "/proc/$pid/limits" 2>/dev/null || echo 0)
	count_new "$out"
	t_term=$(now_ns)
	kill -TERM "$pid"
	wait "$pid" || rc=$?
	t_exit=$(now_ns)
	stop_s=$(secs "$t_term" "$t_exit")
	IDLE_ROW="$(secs "$t0" "$t_all")|$idle_s|$max_rss|$hwm|$thr|$fds|$(awk -v a="$c0" -v b="$c1" -v t="$tck" 'BEGIN { printf "%.2f", (b - a) / t }')|$stop_s|$rc|$COUNTED|$nofile"
	if [ "$rc" != 0 ]; then
		IDLE="FAILED: exit status $rc after SIGTERM (want 0)"
		say "idle run: $IDLE; its stderr ends:"
		tail -5 "$d/stderr.txt" >&2
		FAILED=1
	elif [ "$COUNTED" != "$SMALL_TOTAL" ]; then
		IDLE="FAILED: $COUNTED records, want $SMALL_TOTAL (shipped twice while idle?)"
		FAILED=1
	else
		IDLE=""
	fi
	rm -rf "$out" "$state"
}

# ---- the table ---------------------------------------------------------------------------------
# row_fmt SCEN W RUN LINES BYTES WALL CPU RSS NOTE [LINES_PER_S]: one formatted line; lines/s
# (and so MB/s) is LINES / WALL unless given.
row_fmt() {
	awk -v scen="$1" -v w="$2" -v run="$3" -v lines="$4" -v bytes="$5" -v wall="$6" -v cpu="$7" \
		-v rss="$8" -v note="$9" -v l="${10:-}" 'BEGIN {
		if (wall == "-" || wall <= 0) { lps = "-"; mbs = "-"; cw = "-" }
		else {
			if (l == "") l = lines / wall
			lps = sprintf("%.0f", l); mbs = sprintf("%.1f", l * bytes / lines / 1e6)
			wall = sprintf("%.3f", wall)
			cw = (cpu == "-") ? "-" : sprintf("%.2f", cpu / wall)
		}
		r = (rss == "-" || rss == "") ? "-" : sprintf("%.1f MiB", rss / 1024)
		if (cpu != "-") cpu = sprintf("%.2f", cpu)
		printf "%-10s %4s %6s %9s %10s %8s %8s %7s %8s %10s  %s\n", scen, w, run, lines, lps, mbs, wall, cpu, cw, r, note
	}'
}

# medians SCEN W: the median row of SCEN at W over its successful runs (each column on its own);
# sets MED_LPS.
medians() {
	local sel lines bytes wall cpu rss
	sel=$(printf '%s\n' "${ROWS[@]}" | awk -F'|' -v s="$1" -v w="$2" '$1 == s && $2 == w && $6 != "-"')
	MED_LPS=-
	if [ -z "$sel" ]; then
		row_fmt "$1" "$2" median - - - - - "no successful run"
		return 0
	fi
	lines=$(cut -d'|' -f4 <<<"$sel" | head -1)
	bytes=$(cut -d'|' -f5 <<<"$sel" | head -1)
	wall=$(cut -d'|' -f6 <<<"$sel" | median)
	cpu=$(cut -d'|' -f7 <<<"$sel" | median)
	rss=$(cut -d'|' -f8 <<<"$sel" | median)
	MED_LPS=$(awk -F'|' '{ print $4 / $6 }' <<<"$sel" | median)
	row_fmt "$1" "$2" median "$lines" "$bytes" "$wall" "$cpu" "$rss" "median of $(wc -l <<<"$sel") runs" "$MED_LPS"
}

print_table() {
	local row scen w run lines bytes wall cpu rss note m1 m2 s
	local i_ship i_secs i_rss i_hwm i_thr i_fds i_cpu i_stop i_rc i_n i_nofile
	echo
	echo "engine benchmark: tailjet run --exit-on-eof, Apache combined json-file lines, pattern $PATTERN"
	echo "  tailjet: $TJ_VERSION ($TAILJET, sha256 $TJ_ID), $(nproc) CPUs, RUNS=$RUNS, W = --workers (auto: one per core)"
	echo "  corpora: 1 file $LINES lines $ONE_BYTES bytes; $MANY_FILES files, the same lines; $SMALL_FILES files x $SMALL_LINES lines, $SMALL_BYTES bytes"
	echo "  before the timed runs: $QUIET"
	printf '%-10s %4s %6s %9s %10s %8s %8s %7s %8s %10s  %s\n' scenario W run lines lines/s MB/s wall_s cpu_s cpu/wall peak_RSS note
	for row in "${ROWS[@]}"; do
		IFS='|' read -r scen w run lines bytes wall cpu rss note <<<"$row"
		row_fmt "$scen" "$w" "$run" "$lines" "$bytes" "$wall" "$cpu" "$rss" "$note"
	done
	echo
	RATIOS=()
	for s in "$S_ONE" "$S_MANY"; do
		medians "$s" 1
		m1=$MED_LPS
		medians "$s" 2
		m2=$MED_LPS
		RATIOS+=("$s: median lines/s W=2 / W=1 = $(awk -v a="$m2" -v b="$m1" 'BEGIN { if (a == "-" || b == "-" || b <= 0) print "-"; else printf "%.2f", a / b }')")
	done
	medians "$S_SMALL" auto
	echo
	for row in "${RATIOS[@]}"; do echo "$row"; done
	echo
	echo "idle, following $SMALL_FILES files (no --exit-on-eof, default workers):"
	if [ -n "${IDLE_ROW:-}" ]; then
		IFS='|' read -r i_ship i_secs i_rss i_hwm i_thr i_fds i_cpu i_stop i_rc i_n i_nofile <<<"$IDLE_ROW"
		awk -v ship="$i_ship" -v secs="$i_secs" -v rss="$i_rss" -v hwm="$i_hwm" -v thr="$i_thr" -v fds="$i_fds" \
			-v cpu="$i_cpu" -v st="$i_stop" -v rc="$i_rc" -v n="$i_n" -v nofile="$i_nofile" 'BEGIN {
			printf "  all %d records in the output %.3f s after the start; then idle for %.1f s:\n", n, ship, secs
			printf "  VmRSS max %.1f MiB, VmHWM %.1f MiB, %d threads, %d open fds (its soft limit: %s), %.2f cpu s used while idle\n", rss / 1024, hwm / 1024, thr, fds, nofile, cpu
			printf "  SIGTERM -> exit status %d after %.3f s\n", rc, st
		}'
	fi
	[ -z "${IDLE:-}" ] || echo "  $IDLE"
	echo
	echo "commands (\$B/bin/tailjet is a copy of $TAILJET taken at the start; state dir and output fresh each run):"
	echo "  B=$(printf '%q' "$BENCH_DIR")"
	printf '  %-11s %s\n' "$S_ONE:" "${CMDS[$S_ONE]:-}" "$S_MANY:" "${CMDS[$S_MANY]:-}" \
		"$S_SMALL:" "${CMDS[$S_SMALL]:-}" "idle:" "${IDLE_CMD:-} (then SIGTERM)" |
		awk -v b="$(printf '%q' "$BENCH_DIR")" '{ while ((i = index($0, b)) > 0) $0 = substr($0, 1, i - 1) "$B" substr($0, i + length(b)); print }' |
		sed 's/--workers 1$/--workers W/'
	echo "  W=auto runs have no --workers; W=1 and W=2 runs have --workers 1 and --workers 2"
	echo "  each under: /usr/bin/time -f '%e %U %S %M' (wall: its elapsed time)"
	echo "  this run:   TAILJET=$TAILJET LINES=$LINES RUNS=$RUNS SEED=$SEED SMALL_FILES=$SMALL_FILES SMALL_LINES=$SMALL_LINES BENCH_DIR=$BENCH_DIR bench/engine.sh"
}

main() {
	local start=$SECONDS
	declare -gA CMDS=()
	check_tools
	machine_state "at the start"
	check_disk
	resolve_tailjet
	say "tailjet: $TJ_VERSION ($TAILJET, copied to $TJ)"
	say "generating the corpora into $BENCH_DIR/corpus ($LINES lines, $MANY_FILES files, $SMALL_FILES x $SMALL_LINES)"
	generate
	sync
	wait_for_quiet

	say "1 file, W=1 and W=2, $RUNS runs each"
	scenario_pair "$S_ONE" "$ONE" "$LINES" "$ONE_BYTES"
	say "$MANY_FILES files, W=1 and W=2, $RUNS runs each"
	scenario_pair "$S_MANY" "$MANY_GLOB" "$LINES" "$ONE_BYTES"
	say "$SMALL_FILES files, default workers, $RUNS runs"
	for r in $(seq 1 "$RUNS"); do
		run_once "$S_SMALL" auto "$r" "$SMALL_GLOB" "$SMALL_TOTAL" "$SMALL_BYTES"
	done
	say "$SMALL_FILES files followed, idle for $IDLE_SECS s"
	run_idle

	print_table
	echo
	machine_state "at the end"
	echo "total runtime: $((SECONDS - start)) s"
	if [ "$FAILED" != 0 ]; then
		say "a tailjet run failed or shipped the wrong number of records (see above)"
		exit 1
	fi
}

main "$@"
