# bench/lib.sh: process handling, the bench directory and the binary under test, shared by the
# benchmark scripts (sourced, not run). A script appends every pid it starts to PIDS and calls
# stop_started from its EXIT trap; it defines say() and die(), repo, TAILJET and BENCH_DIR before
# it calls these.

PIDS=()

# require_positive VAR...: dies unless each named variable holds a positive integer.
require_positive() {
	local v
	for v in "$@"; do
		if ! [[ ${!v} =~ ^[0-9]+$ ]] || [ "${!v}" -eq 0 ]; then
			die "$v must be a positive integer, not '${!v}'"
		fi
	done
}

# use_bench_dir NAME: BENCH_DIR as given (made if missing) or a new /tmp/tailjet-NAME.XXXXXX,
# as an absolute path; BENCH_DIR_CREATED=1 when this script made it.
use_bench_dir() {
	BENCH_DIR_CREATED=0
	if [ -z "${BENCH_DIR:-}" ]; then
		BENCH_DIR=$(mktemp -d "/tmp/tailjet-$1.XXXXXX")
		BENCH_DIR_CREATED=1
	elif [ ! -d "$BENCH_DIR" ]; then
		mkdir -p "$BENCH_DIR"
		BENCH_DIR_CREATED=1
	fi
	BENCH_DIR=$(cd "$BENCH_DIR" && pwd)
}

# remove_bench_dir WHAT SUBDIR...: unless KEEP=1 (then says that WHAT is left there), removes
# those subdirectories of BENCH_DIR, and BENCH_DIR itself if use_bench_dir made it.
remove_bench_dir() {
	local what=$1 d
	shift
	if [ "$KEEP" = 1 ]; then
		say "KEEP=1: $what left in $BENCH_DIR"
		return 0
	fi
	for d in "$@"; do
		rm -rf "${BENCH_DIR:?}/$d"
	done
	if [ "$BENCH_DIR_CREATED" = 1 ]; then
		rmdir "$BENCH_DIR" 2>/dev/null || true
	fi
}

# set_traps: cleanup (the script's) on exit; a failed command, ^C and SIGTERM say why first.
set_traps() {
	trap cleanup EXIT
	trap 'say "stopped: line $LINENO failed: $BASH_COMMAND"' ERR
	trap 'say "interrupted: stopping what it started"; exit 130' INT
	trap 'say "terminated: stopping what it started"; exit 143' TERM
}

# stop_pid PID: TERM, up to 10 s of grace, then KILL. Only for PIDs this script started.
stop_pid() {
	local pid=$1
	kill -0 "$pid" 2>/dev/null || return 0
	kill -TERM "$pid" 2>/dev/null || true
	for _ in $(seq 1 100); do
		kill -0 "$pid" 2>/dev/null || return 0
		sleep 0.1
	done
	say "pid $pid ignored SIGTERM for 10 s: sending SIGKILL"
	kill -KILL "$pid" 2>/dev/null || true
}

# Stops, newest first, every process in PIDS and their children (a program run under
# /usr/bin/time is its child, and time does not pass signals on), then reaps them.
stop_started() {
	local i pid child
	for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
		pid=${PIDS[i]}
		for child in $(pgrep -P "$pid" || true); do
			stop_pid "$child"
		done
		stop_pid "$pid"
	done
	for pid in "${PIDS[@]+"${PIDS[@]}"}"; do
		wait "$pid" 2>/dev/null || true
	done
}

# ---- shared by engine.sh and kafka.sh: time, the machine's state ---------------------------

# ---- small helpers ---------------------------------------------------------------------------
now_ns() { date +%s%N; }

# secs NS_FROM NS_TO
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }

# median: the median of the numbers on stdin, one a line (mean of the middle two for an even count).
median() {
	sort -g | awk '{ v[NR] = $1 } END {
		if (NR == 0) { print "-"; exit }
		if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# cmdline ARGS...: ARGS as one shell-quoted line, for the reader to copy.
cmdline() {
	local out="" a
	for a in "$@"; do out+="$(printf '%q' "$a") "; done
	echo "${out% }"
}

# ticks "PID [PID...]": user + system clock ticks the PIDs have used so far (all threads; 0 for
# one that is gone).
ticks() {
	local p
	# shellcheck disable=SC2086 # one pid or several, space-separated
	for p in $1; do
		sed 's/.*) //' "/proc/$p/stat" 2>/dev/null || true
	done | awk '{ t += $12 + $13 } END { print t + 0 }'
}

# ---- the machine -----------------------------------------------------------------------------
# busy_now: the share of all CPUs busy over the next second, from /proc/stat.
busy_now() {
	local a b
	a=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
	sleep 1
	b=$(awk '/^cpu / { print $2 + $3 + $4 + $7 + $8, $5 + $6 }' /proc/stat)
	awk -v a="$a" -v b="$b" 'BEGIN { split(a, x, " "); split(b, y, " "); busy = y[1] - x[1]; idle = y[2] - x[2]
		printf "%.0f%%", (busy + idle > 0) ? 100 * busy / (busy + idle) : 0 }'
}

# machine_state WHEN: load average, how busy the CPUs are now, the five busiest processes.
machine_state() {
	echo "machine, $1: load average $(cut -d' ' -f1-3 /proc/loadavg), all CPUs $(busy_now) busy over 1 s"
	echo "  top 5 processes by %CPU (ps: CPU time / elapsed time since their start), this script excluded:"
	echo "      PID  %CPU   RSS_KiB     ELAPSED COMMAND"
	ps -eo pid=,pcpu=,rss=,etime=,comm= --sort=-pcpu |
		awk -v me=$$ '$1 != me && $5 != "ps" && n++ < 5 { printf "  %7s %5s %9s %11s %s\n", $1, $2, $3, $4, $5 }' || true
}

# wait_for_quiet: up to LOAD_WAIT s until the 1-minute load average is below LOAD_MAX.
wait_for_quiet() {
	local start=$SECONDS load
	while :; do
		load=$(cut -d' ' -f1 /proc/loadavg)
		if awk -v l="$load" -v m="$LOAD_MAX" 'BEGIN { exit !(l < m) }'; then
			QUIET="1-minute load $load < $LOAD_MAX after waiting $((SECONDS - start)) s"
			say "$QUIET"
			return 0
		fi
		if [ $((SECONDS - start)) -ge "$LOAD_WAIT" ]; then
			QUIET="WARNING: the 1-minute load average was still $load (>= $LOAD_MAX) after $LOAD_WAIT s: the machine is busy, the figures below are suspect"
			say "$QUIET"
			return 0
		fi
		say "1-minute load average $load >= $LOAD_MAX: waiting ($((SECONDS - start)) of $LOAD_WAIT s)"
		sleep 5
	done
}

# require_disk NEED [WHAT]: dies unless BENCH_DIR's file system has NEED bytes free (WHAT, if
# given, says in the message what they are for); says how much there is.
require_disk() {
	local need=$1 what=${2:+ ($2)} avail
	avail=$(df -B1 --output=avail "$BENCH_DIR" 2>/dev/null | tail -1 | tr -dc '0-9' || true)
	[ -n "$avail" ] || die "df could not tell the free space of $BENCH_DIR"
	if [ "$avail" -lt "$need" ]; then
		die "not enough disk space in $BENCH_DIR: $((avail / 1000000)) MB free, about $((need / 1000000)) MB needed$what; set BENCH_DIR elsewhere or LINES lower"
	fi
	say "disk: $((avail / 1000000)) MB free in $BENCH_DIR, about $((need / 1000000)) MB needed"
}

# run_timed DIR LABEL PEER_PID CMD...: runs CMD under /usr/bin/time (stdin REDIR_IN, else
# /dev/null; stdout, stderr and the time report in DIR), stopping it (and saying so, as LABEL) if it
# still runs after RUN_TIMEOUT seconds. Sets T_RC (its exit status), T_WAITED (1 when it was
# stopped), T_WALL (seconds: /usr/bin/time's elapsed time, to 10 ms; the script's clock, which polls
# every 50 ms and so reads up to 50 ms late, only when there is none), T_CPU (user + system seconds), T_RSS (peak KiB,
# or -) and T_PEER_CPU (the CPU seconds PEER_PID used meanwhile).
run_timed() {
	local d=$1 label=$2 peer=$3 pid t0 t1 m0 m1 u=0 s=0 c tck
	shift 3
	tck=$(getconf CLK_TCK)
	T_RC=0 T_WAITED=0 T_RSS=-
	m0=$(ticks "$peer")
	t0=$(now_ns)
	/usr/bin/time -f '%e %U %S %M' -o "$d/time.txt" "$@" <"${REDIR_IN:-/dev/null}" >"$d/stdout.txt" 2>"$d/stderr.txt" &
	pid=$!
	PIDS+=("$pid")
	while kill -0 "$pid" 2>/dev/null; do
		if [ $(($(now_ns) - t0)) -gt $((RUN_TIMEOUT * 1000000000)) ]; then
			say "$label: still running after $RUN_TIMEOUT s: stopping it"
			for c in $(pgrep -P "$pid" || true); do stop_pid "$c"; done
			T_WAITED=1
			break
		fi
		sleep 0.05
	done
	wait "$pid" || T_RC=$?
	t1=$(now_ns)
	m1=$(ticks "$peer")
	T_WALL=$(secs "$t0" "$t1")
	T_PEER_CPU=$(awk -v a="$m0" -v b="$m1" -v t="$tck" 'BEGIN { printf "%.2f", (b - a) / t }')
	local e=""
	[ ! -s "$d/time.txt" ] || read -r e u s T_RSS < <(tail -1 "$d/time.txt") || true
	case $e in [0-9]*.[0-9]*) T_WALL=$e ;; esac
	T_CPU=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.2f", u + s }')
}

# apache_corpus FILE: builds bench/gen_corpus.c into $BENCH_DIR/bin and writes $LINES Apache
# combined lines (seed $SEED) to FILE in Docker's json-file format; sets ONE=FILE and ONE_BYTES.
apache_corpus() {
	cc -O2 -std=c11 -Wall -Wextra -o "$BENCH_DIR/bin/gen_corpus" "$(dirname "${BASH_SOURCE[0]}")/gen_corpus.c"
	mkdir -p "$(dirname "$1")"
	ONE=$1
	"$BENCH_DIR/bin/gen_corpus" --kind apache --lines "$LINES" --seed "$SEED" --format json-file -o "$ONE"
	ONE_BYTES=$(stat -c %s "$ONE")
}

# The binary: built with scripts/build.sh if it is the default one and missing (never rebuilt if
# it exists), then copied into BENCH_DIR so that a rebuild during the run cannot change it
# between runs (it carries its pattern library inside). Sets TJ, TJ_VERSION and TJ_ID.
resolve_tailjet() {
	local given=$TAILJET
	case $TAILJET in
	/*) ;;
	*) if [ -x "$TAILJET" ]; then TAILJET="$PWD/$TAILJET"; else TAILJET="$repo/$TAILJET"; fi ;;
	esac
	if [ ! -x "$TAILJET" ] && [ "$given" = build/tailjet ]; then
		say "no $TAILJET: building it (bash scripts/build.sh build)"
		(cd "$repo" && bash scripts/build.sh build) >&2 || die "the build failed"
	fi
	[ -x "$TAILJET" ] || die "no tailjet binary at $TAILJET: build it (bash scripts/build.sh build) or set TAILJET=path"
	mkdir -p "$BENCH_DIR/bin"
	cp "$TAILJET" "$BENCH_DIR/bin/tailjet"
	TJ="$BENCH_DIR/bin/tailjet"
	TJ_VERSION=$("$TJ" --version 2>&1 | head -1) || die "$TAILJET --version failed: $TJ_VERSION"
	TJ_ID="$(sha256sum "$TJ" | cut -c1-12), built $(date -r "$TAILJET" '+%F %T')"
}
