#!/usr/bin/env bash
# bench/parse.sh: tailjet's parse path on one core, beside the bare PCRE2 floor and the peers.
#
# One run: builds gen_corpus and floor, generates an Apache combined corpus (json-file and plain
# twins of the same lines), asks tailjet for the exact regex it compiles, then measures, each
# pinned to one CPU:
#   tailjet parse   json-file -> NDJSON file, end to end (and the plain twin, for the decode cost)
#   floor           the same regex, JIT, matching the plain lines in memory: the ceiling
#   syslog-ng       file() source -> regexp-parser (PCRE) -> JSON file      (if it can be unpacked)
#   rsyslog         imfile -> mmnormalize (liblognorm) -> JSON file        (if rsyslog is installed)
# and prints one table. See bench/README.md for what each number means.
#
# Environment: TAILJET (build/tailjet), LINES (2000000), BENCH_DIR (/tmp/tailjet-bench), CPU (0),
# SEED (20261125), RUNS (1: best of N for tailjet and floor), PEERS (1; 0 skips them),
# PEER_TIMEOUT (600 s), KEEP_OUTPUT (0; 1 keeps the NDJSON outputs), TIMESTAMP (empty; e.g.
# 'timestamp dd/MMM/yyyy:HH:mm:ss Z' runs tailjet parse with --timestamp, to measure its cost).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

TAILJET=${TAILJET:-build/tailjet}
LINES=${LINES:-2000000}
BENCH_DIR=${BENCH_DIR:-/tmp/tailjet-bench}
CPU=${CPU:-0}
SEED=${SEED:-20261125}
RUNS=${RUNS:-1}
PEERS=${PEERS:-1}
PEER_TIMEOUT=${PEER_TIMEOUT:-600}
PEER_STALL=${PEER_STALL:-60}
KEEP_OUTPUT=${KEEP_OUTPUT:-0}
PATTERN='%{COMBINEDAPACHELOG}'
TIMESTAMP=${TIMESTAMP:-}
TS_ARGS=()
if [ -n "$TIMESTAMP" ]; then TS_ARGS=(--timestamp "$TIMESTAMP"); fi

say() { printf 'parse.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# ---- processes this script started: stopped on every exit ------------------------------------
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Stops, newest first, every process this script started and their children (a peer runs as the
# child of /usr/bin/time, which does not pass signals on), then reaps them.
cleanup() {
	stop_started
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- small helpers ---------------------------------------------------------------------------

# tv FILE LABEL: the value after LABEL in a `/usr/bin/time -v` report.
tv() { awk -v k="$2" 'index($0, k) { sub(/.*: /, ""); print; exit }' "$1"; }

# Results, one row per tool.
ROWS=()   # "tool|input file|lines|wall s|cpu s|peak rss KiB|note"
NOTES=()
VECTOR_FAILURES=()
add_row() { ROWS+=("$1|$2|$3|$4|$5|$6|$7"); }


check_tools() {
	local t
	for t in cc pkg-config taskset python3 dd awk; do
		command -v "$t" >/dev/null || die "$t is missing: run scripts/setup.sh (Debian packages)"
	done
	[ -x /usr/bin/time ] || die "/usr/bin/time is missing: apt-get install time"
	pkg-config --exists libpcre2-8 || die "libpcre2-8 development files are missing: apt-get install libpcre2-dev"
	taskset -c "$CPU" true 2>/dev/null || die "cannot pin to CPU $CPU: set CPU= to one of $(taskset -pc $$ | sed 's/.*: //')"
}

# ---- the machine, as seen before the run -----------------------------------------------------
describe_machine() {
	local model
	model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	echo "machine: $(nproc) CPUs (${model:-unknown}), $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), kernel $(uname -r)"
	echo "load average before the run: $(cut -d' ' -f1-3 /proc/loadavg)"
	echo "busiest other processes (%CPU since their start):"
	ps -eo pid=,pcpu=,rss=,comm= --sort=-pcpu | awk -v me=$$ '$1 != me && n++ < 5 { print "    " $0 }' || true
}

# ---- build and generate ----------------------------------------------------------------------
build_tools() {
	mkdir -p "$BENCH_DIR/bin"
	cc -O2 -std=c11 -Wall -Wextra -o "$BENCH_DIR/bin/gen_corpus" "$here/gen_corpus.c"
	# shellcheck disable=SC2046 # pkg-config prints several words on purpose
	cc -O2 -std=c11 -Wall -Wextra -o "$BENCH_DIR/bin/floor" "$here/floor.c" $(pkg-config --cflags --libs libpcre2-8)
}

generate() {
	mkdir -p "$BENCH_DIR/corpus"
	JSON="$BENCH_DIR/corpus/apache-$LINES.json"
	PLAIN="$BENCH_DIR/corpus/apache-$LINES.log"
	"$BENCH_DIR/bin/gen_corpus" --kind apache --lines "$LINES" --seed "$SEED" --format json-file -o "$JSON"
	"$BENCH_DIR/bin/gen_corpus" --kind apache --lines "$LINES" --seed "$SEED" --format plain -o "$PLAIN"
	JSON_BYTES=$(stat -c %s "$JSON")
	PLAIN_BYTES=$(stat -c %s "$PLAIN")
	[ "$(wc -l <"$PLAIN")" -eq "$LINES" ] || die "the plain corpus does not hold $LINES lines"
}

get_regex() {
	REGEX="$BENCH_DIR/regex.txt"
	"$TJ" patterns --regex "$PATTERN" >"$REGEX" ||
		die "'tailjet patterns --regex $PATTERN' failed"
	if [ ! -s "$REGEX" ] || [ "$(wc -l <"$REGEX")" -gt 1 ]; then
		die "'tailjet patterns --regex' should print one line, got $(wc -l <"$REGEX") (see $REGEX)"
	fi
	say "regex: $(wc -c <"$REGEX") bytes (in $REGEX)"
}

# ---- tailjet -----------------------------------------------------------------------------------
# run_tailjet LABEL INPUT: best of RUNS, adds a row. Leaves the output in $BENCH_DIR/out/LABEL.ndjson.
run_tailjet() {
	local label=$1 input=$2 d="$BENCH_DIR/out" t0 t1 best="" wall cpu rss
	local out="$d/$label.ndjson"
	mkdir -p "$d"
	for _ in $(seq 1 "$RUNS"); do
		# The previous run's output is removed before the clock starts, as run_peer does for the
		# peers: truncating ~730 MB of page cache at open (O_TRUNC, ~0.18 s) is not parsing.
		rm -f "$out"
		sync # earlier outputs' dirty pages are written back now, not during the run
		t0=$(now_ns)
		if ! taskset -c "$CPU" /usr/bin/time -v -o "$d/$label.time" \
			"$TJ" parse --pattern "$PATTERN" "${TS_ARGS[@]}" "$input" >"$out" 2>"$d/$label.stderr"; then
			say "tailjet parse failed on $input (exit $(tv "$d/$label.time" 'Exit status')), see $d/$label.stderr:"
			tail -5 "$d/$label.stderr" >&2
			add_row "$label" "$input" "$LINES" - - - "FAILED"
			TAILJET_FAILED=1
			return 0
		fi
		t1=$(now_ns)
		wall=$(secs "$t0" "$t1")
		if [ -z "$best" ] || awk -v a="$wall" -v b="$best" 'BEGIN { exit !(a < b) }'; then
			best=$wall
			cpu=$(awk -v u="$(tv "$d/$label.time" 'User time')" -v s="$(tv "$d/$label.time" 'System time')" 'BEGIN { printf "%.2f", u + s }')
			rss=$(tv "$d/$label.time" 'Maximum resident set size')
		fi
	done
	add_row "$label" "$input" "$LINES" "$best" "$cpu" "$rss" ""
}

# verify_tailjet OUTPUT: every record valid JSON, one per input line, messages equal to the plain
# lines; failures counted; a sample checked for the json-file time and the extracted fields.
verify_tailjet() {
	local out=$1
	say "verifying $out"
	python3 - "$out" "$PLAIN" "$JSON" "$LINES" "$TIMESTAMP" <<'PY' || { VERIFY_FAILED=1; return 0; }
import json, sys

out_path, plain_path, json_path, want = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
ts_flag = len(sys.argv) > 5 and sys.argv[5] != ""

def flat(v):
    if isinstance(v, dict):
        for x in v.values():
            yield from flat(x)
    elif isinstance(v, list):
        for x in v:
            yield from flat(x)
    else:
        yield v

n = invalid = failures = wrong_msg = 0
sample_bad = []
with open(out_path, encoding="utf-8", errors="surrogateescape") as out, \
     open(plain_path, encoding="utf-8") as plain, open(json_path, encoding="utf-8") as jf:
    for rec_line, line, entry in zip(out, plain, jf):
        n += 1
        try:
            rec = json.loads(rec_line)
        except ValueError:
            invalid += 1
            if len(sample_bad) < 3:
                sample_bad.append(f"line {n}: not JSON: {rec_line[:200]!r}")
            continue
        if "_grokparsefailure" in (rec.get("tags") or []):
            failures += 1
            if len(sample_bad) < 3:
                sample_bad.append(f"line {n}: _grokparsefailure: {line[:200]!r}")
        if rec.get("message") != line.rstrip("\n"):
            wrong_msg += 1
            if len(sample_bad) < 3:
                sample_bad.append(f"line {n}: message differs: {rec.get('message')!r:.200} vs {line[:200]!r}")
        if n % 997 == 1:  # a sample: the json-file time and the extracted values
            e = json.loads(entry)
            # with --timestamp the json-file time is event.created, @timestamp the line's own
            docker_time = rec.get("event", {}).get("created") if ts_flag else rec.get("@timestamp")
            if docker_time != e["time"]:
                sample_bad.append(f"line {n}: json-file time in the record {docker_time!r} != {e['time']!r}")
            words = line.split(" ")
            values = {str(x) for x in flat(rec)}
            status = line.split('" ')[1].split(" ")[0] if '" ' in line else None
            for want_v in (words[0], status):
                if want_v and want_v not in values:
                    sample_bad.append(f"line {n}: no field holds {want_v!r}: {rec_line[:300]!r}")
    extra = sum(1 for _ in out)
total = n + extra
print(f"verify: records={total} (want {want}) invalid_json={invalid} grokparsefailure={failures} "
      f"message_mismatch={wrong_msg}")
for s in sample_bad[:5]:
    print("verify:   " + s)
sys.exit(0 if total == want and invalid == 0 and failures == 0 and wrong_msg == 0 and not sample_bad else 1)
PY
}

# ---- the floor ---------------------------------------------------------------------------------
run_floor() {
	local d="$BENCH_DIR/out" line best="" secs_ matched rss
	mkdir -p "$d"
	for _ in $(seq 1 "$RUNS"); do
		if ! line=$(taskset -c "$CPU" /usr/bin/time -v -o "$d/floor.time" \
			"$BENCH_DIR/bin/floor" --regex-file "$REGEX" "$PLAIN" 2>"$d/floor.stderr"); then
			say "floor failed, see $d/floor.stderr:"
			tail -5 "$d/floor.stderr" >&2
			add_row floor "$PLAIN" "$LINES" - - - "FAILED"
			return 0
		fi
		secs_=$(sed -n 's/.* seconds=\([0-9.]*\).*/\1/p' <<<"$line")
		if [ -z "$best" ] || awk -v a="$secs_" -v b="$best" 'BEGIN { exit !(a < b) }'; then
			best=$secs_
			matched=$(sed -n 's/.* matched=\([0-9]*\).*/\1/p' <<<"$line")
			rss=$(tv "$d/floor.time" 'Maximum resident set size')
		fi
	done
	FLOOR_SECS=$best
	add_row floor "$PLAIN" "$LINES" "$best" "$best" "$rss" "matched $matched/$LINES; loop only, input in memory"
}

# ---- peers -------------------------------------------------------------------------------------
# peer_pid TIME_PID PIDFILE: the peer's own PID (its pid file, else the child of /usr/bin/time).
peer_pid() {
	local p=""
	[ -s "$2" ] && p=$(tr -dc '0-9' <"$2")
	[ -n "$p" ] || p=$(pgrep -P "$1" | head -1 || true)
	echo "$p"
}

# peer_usage PID CLK_TCK: sets cpu (user + system seconds, all threads) and rss (peak, KiB) from
# /proc while PID still runs; leaves them as they were otherwise.
peer_usage() {
	local pstat
	[ -n "$1" ] && [ -r "/proc/$1/stat" ] || return 0
	pstat=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null) || return 0
	cpu=$(awk -v t="$2" '{ printf "%.2f", ($12 + $13) / t }' <<<"$pstat")
	rss=$(awk '/^VmHWM/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo "$rss")
}

# run_peer NAME DIR OUTPUT PIDFILE CMD...: starts CMD pinned and timed, waits until OUTPUT holds
# LINES lines (or the peer dies, stalls PEER_STALL s, or PEER_TIMEOUT s pass), reads its CPU time
# and peak RSS from /proc, stops it, adds a row. PEER_PIN (default: taskset -c CPU; empty: all
# cores) prefixes CMD; PEER_INPUT (default: the plain corpus) is the row's input, PEER_NOTE its note.
PEER_PIN=(taskset -c "$CPU")
PEER_INPUT=""
PEER_NOTE=""
run_peer() {
	local name=$1 dir=$2 out=$3 pidfile=$4
	shift 4
	local tpid ppid="" t0 now t_done="" counted=0 off=0 size last_change note=""
	local cpu=- rss=- ticks
	rm -f "$out" "$pidfile"
	sync
	t0=$(now_ns)
	${PEER_PIN[@]+"${PEER_PIN[@]}"} /usr/bin/time -v -o "$dir/time.txt" "$@" >"$dir/stdout.txt" 2>"$dir/stderr.txt" &
	tpid=$!
	PIDS+=("$tpid")
	last_change=$t0
	ticks=$(getconf CLK_TCK)
	while :; do
		if [ -z "$ppid" ]; then
			ppid=$(peer_pid "$tpid" "$pidfile")
			[ -z "$ppid" ] || PIDS+=("$ppid")
		fi
		peer_usage "$ppid" "$ticks"
		if [ -f "$out" ]; then
			size=$(stat -c %s "$out")
			if [ "$size" -gt "$off" ]; then
				counted=$((counted + $(dd if="$out" bs=1M iflag=skip_bytes,count_bytes skip="$off" \
					count="$((size - off))" status=none | wc -l)))
				off=$size
				last_change=$(now_ns)
			fi
		fi
		if [ "$counted" -ge "$LINES" ]; then
			t_done=$(now_ns)
			break
		fi
		now=$(now_ns)
		if ! kill -0 "$tpid" 2>/dev/null; then
			note="exited early"
			say "$name exited after $counted lines: see $dir/stderr.txt"
			tail -5 "$dir/stderr.txt" >&2
			break
		fi
		if [ $(((now - t0) / 1000000000)) -ge "$PEER_TIMEOUT" ]; then
			note="timed out"
			say "$name: $counted of $LINES lines after PEER_TIMEOUT=$PEER_TIMEOUT s; stopping it"
			break
		fi
		if [ $(((now - last_change) / 1000000000)) -ge "$PEER_STALL" ]; then
			note="stalled"
			say "$name: stuck at $counted of $LINES lines for $PEER_STALL s; stopping it"
			break
		fi
		sleep 0.1
	done
	peer_usage "$ppid" "$ticks"
	if [ -n "$ppid" ]; then
		stop_pid "$ppid"
	fi
	stop_pid "$tpid"
	wait "$tpid" 2>/dev/null || true
	if [ -z "$t_done" ]; then
		add_row "$name" "${PEER_INPUT:-$PLAIN}" "$counted" - "$cpu" "$rss" "${note}: $counted/$LINES lines${PEER_NOTE:+; $PEER_NOTE}"
		return 0
	fi
	add_row "$name" "${PEER_INPUT:-$PLAIN}" "$LINES" "$(secs "$t0" "$t_done")" "$cpu" "$rss" "$PEER_NOTE"
}

# setup_syslog_ng: unpacks syslog-ng-core (and each of its dependencies the machine lacks) under
# $BENCH_DIR/syslog-ng/root with apt-get download + dpkg -x, since it conflicts with rsyslog in
# apt. Sets SNG_ROOT. Returns 1, with the reason in SNG_WHY, when it cannot.
setup_syslog_ng() {
	local d="$BENCH_DIR/syslog-ng" dep deb missing
	SNG_ROOT="$d/root"
	if [ ! -x "$SNG_ROOT/usr/sbin/syslog-ng" ]; then
		rm -rf "$d/debs" "$SNG_ROOT"
		mkdir -p "$d/debs"
		if ! (cd "$d/debs" && apt-get download syslog-ng-core) >"$d/apt.log" 2>&1; then
			SNG_WHY="apt-get download syslog-ng-core failed (see $d/apt.log; apt-get update first?)"
			return 1
		fi
		for dep in $(apt-cache depends syslog-ng-core | awk '$1 == "Depends:" && $2 !~ /^</ { print $2 }' | sort -u); do
			dpkg-query -W -f='${Status}' "$dep" 2>/dev/null | grep -q 'install ok installed' && continue
			(cd "$d/debs" && apt-get download "$dep") >>"$d/apt.log" 2>&1 || {
				SNG_WHY="apt-get download $dep failed (see $d/apt.log)"
				return 1
			}
		done
		for deb in "$d"/debs/*.deb; do
			dpkg -x "$deb" "$SNG_ROOT"
		done
	fi
	SNG_LIBS="$SNG_ROOT/usr/lib/x86_64-linux-gnu:$SNG_ROOT/usr/lib/syslog-ng:$SNG_ROOT/lib/x86_64-linux-gnu"
	missing=$(LD_LIBRARY_PATH=$SNG_LIBS ldd "$SNG_ROOT/usr/sbin/syslog-ng" "$SNG_ROOT"/usr/lib/syslog-ng/3.*/lib{affile,json-plugin,regexp-parser}.so 2>&1 |
		awk '/not found/ { print $1 }' | sort -u | tr '\n' ' ')
	if [ -n "$missing" ]; then
		SNG_WHY="unpacked syslog-ng lacks libraries: $missing"
		return 1
	fi
}

run_syslog_ng() {
	local d="$BENCH_DIR/syslog-ng" run="$BENCH_DIR/syslog-ng/run" re modpath
	if ! setup_syslog_ng; then
		NOTES+=("syslog-ng: not available: $SNG_WHY")
		return 0
	fi
	rm -rf "$run"
	mkdir -p "$run"
	modpath=$(echo "$SNG_ROOT"/usr/lib/syslog-ng/3.*)
	# The same regex as tailjet's, as a syslog-ng string: \ and " escaped; a backtick would start
	# a `variable` reference in syslog-ng's config, so it becomes \x60, the same byte to PCRE.
	re=$(sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/`/\\\\x60/g' "$REGEX")
	cat >"$run/syslog-ng.conf" <<EOF
@version: 3.38
options { use-dns(no); dns-cache(no); stats-freq(0); };
source s_corpus { file("$PLAIN" flags(no-parse) follow-freq(1)); };
parser p_apache { regexp-parser(patterns("$re") prefix(".grok.")); };
destination d_json { file("$run/out.ndjson" template("\$(format-json message=\$MSG --key .grok.* --key tags)\n")); };
log {
    source(s_corpus);
    junction {
        channel { parser(p_apache); flags(final); };
        channel { rewrite { set("_grokparsefailure" value("tags")); }; flags(final); };
    };
    destination(d_json);
    flags(flow-control);
};
EOF
	if ! LD_LIBRARY_PATH=$SNG_LIBS "$SNG_ROOT/usr/sbin/syslog-ng" --syntax-only --module-path="$modpath" \
		-f "$run/syslog-ng.conf" >"$run/syntax.txt" 2>&1; then
		NOTES+=("syslog-ng: rejected the config (the regex in PCRE1?): $(head -c 300 "$run/syntax.txt" | head -1)")
		return 0
	fi
	say "running syslog-ng $(LD_LIBRARY_PATH=$SNG_LIBS "$SNG_ROOT/usr/sbin/syslog-ng" --version 2>/dev/null | awk 'NR == 1 { print $3 }' | tr -d '()' || true)"
	run_peer syslog-ng "$run" "$run/out.ndjson" "$run/syslog-ng.pid" \
		env LD_LIBRARY_PATH="$SNG_LIBS" "$SNG_ROOT/usr/sbin/syslog-ng" -F --no-caps --module-path="$modpath" -f "$run/syslog-ng.conf" \
		-R "$run/syslog-ng.persist" -c "$run/syslog-ng.ctl" -p "$run/syslog-ng.pid"
	SNG_FAILURES=$(grep -c _grokparsefailure "$run/out.ndjson" || true)
	[ "$KEEP_OUTPUT" = 1 ] || rm -f "$run/out.ndjson"
}

run_rsyslog() {
	local run="$BENCH_DIR/rsyslog" rsyslogd
	rsyslogd=$(command -v rsyslogd || true)
	if [ -z "$rsyslogd" ] && [ -x /usr/sbin/rsyslogd ]; then
		rsyslogd=/usr/sbin/rsyslogd
	fi
	if [ -z "$rsyslogd" ]; then
		NOTES+=("rsyslog: not installed (apt-get install rsyslog; the system daemon is never used)")
		return 0
	fi
	rm -rf "$run"
	mkdir -p "$run/work"
	# liblognorm's rulebase for Apache combined (rsyslog has no named-capture PCRE parser):
	# the usual fields, quoted strings with backslash escapes, and the request-less 408 line.
	cat >"$run/apache.rulebase" <<'EOF'
version=2
type=@qs:%{"type":"string", "name":"..", "quoting.mode":"required", "quoting.escape.mode":"backslash"}%
rule=apache:%client:word% %ident:word% %auth:word% [%timestamp:char-to{"extradata":"]"}%] "%verb:word% %request:word% HTTP/%httpversion:char-to{"extradata":"\""}%" %status:number{"format":"number"}% %bytes:word% %referrer:@qs% %agent:@qs%
rule=apache:%client:word% %ident:word% %auth:word% [%timestamp:char-to{"extradata":"]"}%] "%request:char-to{"extradata":"\""}%" %status:number{"format":"number"}% %bytes:word% %referrer:@qs% %agent:@qs%
EOF
	cat >"$run/rsyslog.conf" <<EOF
global(workDirectory="$run/work" maxMessageSize="64k")
module(load="imfile")
module(load="mmnormalize")
template(name="tj_json" type="list") {
    constant(value="{\"message\":\"") property(name="msg" format="json")
    constant(value="\",\"fields\":") property(name="\$!all-json") constant(value="}\n")
}
ruleset(name="bench") {
    action(type="mmnormalize" rulebase="$run/apache.rulebase")
    action(type="omfile" file="$run/out.ndjson" template="tj_json")
}
input(type="imfile" file="$PLAIN" tag="apache" ruleset="bench" freshStartTail="off" addMetadata="off")
EOF
	if ! "$rsyslogd" -N1 -f "$run/rsyslog.conf" >"$run/check.txt" 2>&1; then
		NOTES+=("rsyslog: rejected the config (mmnormalize missing?): $(grep -m1 -i error "$run/check.txt" || head -1 "$run/check.txt")")
		return 0
	fi
	say "running rsyslog $("$rsyslogd" -v 2>/dev/null | awk 'NR == 1 { print $2 }' | tr -d ',' || true)"
	run_peer rsyslog "$run" "$run/out.ndjson" "$run/rsyslogd.pid" \
		"$rsyslogd" -n -f "$run/rsyslog.conf" -i "$run/rsyslogd.pid"
	RSYSLOG_FAILURES=$(grep -c unparsed-data "$run/out.ndjson" || true)
	[ "$KEEP_OUTPUT" = 1 ] || rm -f "$run/out.ndjson"
}

# ---- Vector --------------------------------------------------------------------------------------
# find_vector: sets VECTOR_BIN to $VECTOR, else the newest binary bench/vector_build.sh cached in
# /var/cache/tailjet-bench/vector; returns 1 when there is none.
find_vector() {
	VECTOR_BIN=${VECTOR:-}
	if [ -z "$VECTOR_BIN" ]; then
		# shellcheck disable=SC2012 # the names are ours: vector-VERSION-LTO
		VECTOR_BIN=$(ls -t /var/cache/tailjet-bench/vector/vector-* 2>/dev/null | grep -v '\.tmp$' | head -1 || true)
	fi
	[ -n "$VECTOR_BIN" ] && [ -x "$VECTOR_BIN" ]
}

# vector_config DIR INPUT OUTPUT SINK GROK: writes DIR/vector.toml: the file source reading INPUT
# from its beginning (checkpoints in DIR/data, fresh), a remap that decodes Docker's json-file
# line (the line, without its \n, becomes .message; time and stream are kept) and runs parse_grok
# with GROK on it (fields merged into the event, or tags = ["_grokparsefailure"]), and a sink
# writing NDJSON to OUTPUT: SINK=file is Vector's file sink, SINK=console its console sink, whose
# stdout the caller sends to OUTPUT.
vector_config() {
	local dir=$1 input=$2 output=$3 sink=$4 grok=$5
	rm -rf "$dir/data"
	mkdir -p "$dir/data"
	{
		cat <<EOF
data_dir = "$dir/data"

[sources.corpus]
type = "file"
include = ["$input"]
read_from = "beginning"

[transforms.parse]
type = "remap"
inputs = ["corpus"]
source = '''
entry = parse_json!(string!(.message))
line = string!(entry.log)
if ends_with(line, "\n") { line = slice!(line, 0, -1) }
.message = line
."@timestamp" = entry.time
.stream = entry.stream
fields, err = parse_grok(line, "$grok")
if err == null {
  . = merge(., fields)
} else {
  .tags = ["_grokparsefailure"]
}
'''

EOF
		if [ "$sink" = file ]; then
			printf '[sinks.out]\ntype = "file"\ninputs = ["parse"]\npath = "%s"\nencoding.codec = "json"\n' "$output"
		else
			printf '[sinks.out]\ntype = "console"\ninputs = ["parse"]\ntarget = "stdout"\nencoding.codec = "json"\n'
		fi
	} >"$dir/vector.toml"
}

# run_vector: Vector on the json-file corpus, pinned to CPU with one worker thread, then on all
# cores (no pin, one thread a core), each a row; with VECTOR_CONSOLE=1 also pinned with the
# console sink (stdout to a file) instead of the file sink.
run_vector() {
	local run="$BENCH_DIR/vector" threads ver label sink pin out c
	if ! find_vector; then
		NOTES+=("vector: no binary (set VECTOR=path, or build one: bash bench/vector_build.sh SRC; see bench/README.md)")
		return 0
	fi
	ver=$("$VECTOR_BIN" --version 2>/dev/null | head -1 || true)
	if [ -z "$ver" ]; then
		NOTES+=("vector: $VECTOR_BIN --version failed")
		return 0
	fi
	say "running $ver ($VECTOR_BIN)"
	VECTOR_VERSION=$ver
	local cases=("1core file" "all file")
	[ "${VECTOR_CONSOLE:-0}" != 1 ] || cases+=("1core console")
	for c in "${cases[@]}"; do
		read -r pin sink <<<"$c"
		rm -rf "$run"
		mkdir -p "$run"
		out="$run/out.ndjson"
		vector_config "$run" "$JSON" "$out" "$sink" "$PATTERN"
		if ! "$VECTOR_BIN" validate --no-environment --config-toml "$run/vector.toml" >"$run/validate.txt" 2>&1; then
			NOTES+=("vector: rejected the config: $(grep -m1 -iE 'error|x ' "$run/validate.txt" || head -1 "$run/validate.txt")")
			return 0
		fi
		if [ "$pin" = 1core ]; then
			PEER_PIN=(taskset -c "$CPU")
			threads=1
			label=vector
		else
			PEER_PIN=()
			threads=$(nproc)
			label=vector-all-cores
		fi
		[ "$sink" = file ] || label="$label-console"
		PEER_INPUT=$JSON
		PEER_NOTE="parse_grok, $sink sink, --threads $threads"
		# with the console sink, the command's stdout (run_peer's DIR/stdout.txt) is the output
		[ "$sink" = file ] || out="$run/stdout.txt"
		run_peer "$label" "$run" "$out" "$run/none.pid" \
			"$VECTOR_BIN" --quiet --threads "$threads" --config-toml "$run/vector.toml"
		PEER_PIN=(taskset -c "$CPU")
		PEER_INPUT=""
		PEER_NOTE=""
		VECTOR_FAILURES+=("$label: $(grep -c _grokparsefailure "$out" || true) records tagged _grokparsefailure")
		[ "$KEEP_OUTPUT" = 1 ] || rm -f "$out"
	done
}

# ---- the table ---------------------------------------------------------------------------------
print_table() {
	local row tool input lines wall cpu rss note bytes
	local floor_lps=""
	[ -n "${FLOOR_SECS:-}" ] && floor_lps=$(awk -v n="$LINES" -v s="$FLOOR_SECS" 'BEGIN { if (s > 0) print n / s }')
	echo
	echo "parse benchmark: $LINES Apache combined lines, pattern $PATTERN${TIMESTAMP:+, --timestamp '$TIMESTAMP'}, pinned to CPU $CPU"
	echo "  tailjet: $TJ_VERSION ($TJ_ID)"
	echo "  command: TAILJET=$TAILJET LINES=$LINES SEED=$SEED RUNS=$RUNS CPU=$CPU BENCH_DIR=$BENCH_DIR bench/parse.sh"
	echo "  json-file corpus $JSON_BYTES bytes, plain corpus $PLAIN_BYTES bytes; MB = 10^6 bytes of each tool's own input"
	printf '%-16s %-9s %12s %9s %9s %9s %10s %8s  %s\n' tool input lines/s MB/s wall_s cpu_s peak_RSS x_floor note
	for row in "${ROWS[@]}"; do
		IFS='|' read -r tool input lines wall cpu rss note <<<"$row"
		bytes=$(stat -c %s "$input")
		awk -v tool="$tool" -v input="${input##*.}" -v lines="$lines" -v wall="$wall" -v cpu="$cpu" \
			-v rss="$rss" -v note="$note" -v bytes="$bytes" -v flps="$floor_lps" 'BEGIN {
			if (input == "log") input = "plain"; else input = "json-file"
			if (wall == "-" || wall <= 0) { lps = "-"; mbs = "-"; ratio = "-" }
			else {
				lps = sprintf("%.0f", lines / wall); mbs = sprintf("%.1f", bytes / 1e6 / wall)
				ratio = (flps == "") ? "-" : sprintf("%.3f", (lines / wall) / flps)
			}
			r = (rss == "-" || rss == "") ? "-" : sprintf("%.0f MiB", rss / 1024)
			if (wall != "-") wall = sprintf("%.3f", wall)
			if (cpu != "-") cpu = sprintf("%.2f", cpu)
			printf "%-16s %-9s %12s %9s %9s %9s %10s %8s  %s\n", tool, input, lps, mbs, wall, cpu, r, ratio, note
		}'
	done
	for row in "${NOTES[@]+"${NOTES[@]}"}"; do
		echo "$row"
	done
}

main() {
	check_tools
	resolve_tailjet
	mkdir -p "$BENCH_DIR"
	describe_machine
	say "building gen_corpus and floor into $BENCH_DIR/bin"
	build_tools
	say "generating $LINES lines (seed $SEED) into $BENCH_DIR/corpus"
	generate
	get_regex

	TAILJET_FAILED=0
	VERIFY_FAILED=0
	say "tailjet parse, json-file input"
	run_tailjet tailjet "$JSON"
	if [ "$TAILJET_FAILED" = 0 ]; then
		verify_tailjet "$BENCH_DIR/out/tailjet.ndjson"
	fi
	say "tailjet parse, plain input"
	run_tailjet tailjet-plain "$PLAIN"
	[ "$KEEP_OUTPUT" = 1 ] || rm -f "$BENCH_DIR/out/tailjet.ndjson" "$BENCH_DIR/out/tailjet-plain.ndjson"
	say "floor"
	run_floor

	if [ "$PEERS" = 1 ]; then
		run_syslog_ng
		run_rsyslog
		run_vector
	else
		NOTES+=("peers: skipped (PEERS=0)")
	fi
	print_table
	[ -z "${SNG_FAILURES:-}" ] || echo "syslog-ng: $SNG_FAILURES lines did not match the regex"
	[ -z "${RSYSLOG_FAILURES:-}" ] || echo "rsyslog: $RSYSLOG_FAILURES lines not normalised by the rulebase"
	[ -z "${VECTOR_VERSION:-}" ] || echo "vector: $VECTOR_VERSION ($VECTOR_BIN)"
	for row in "${VECTOR_FAILURES[@]+"${VECTOR_FAILURES[@]}"}"; do
		echo "$row"
	done
	echo "load average after the run: $(cut -d' ' -f1-3 /proc/loadavg)"
	if [ "$TAILJET_FAILED" != 0 ] || [ "$VERIFY_FAILED" != 0 ]; then
		say "tailjet's run or its output check failed (see above)"
		exit 1
	fi
}

main "$@"
