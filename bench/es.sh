#!/usr/bin/env bash
# bench/es.sh: the Elasticsearch output, `tailjet run --exit-on-eof --output elasticsearch://...`,
# end to end into tests/es/tj_es_server.py (TARGET=test, the default: the strict _bulk test
# server, --no-store-source: it parses every document and keeps ids and counts, not sources), or
# into a real Elasticsearch node (TARGET=real: tests/servers/es.sh starts the pinned 8.17.4 from
# Maven's repository, default thread pools, heap ES_HEAP (1g), on this machine; every run writes
# into a new index tjbench of 1 shard and no replica, checked with _count).
#
# Generates one Apache combined corpus in Docker's json-file format (bench/gen_corpus.c, as
# kafka.sh does), records shipped unparsed (~380 B each) or parsed with PATTERN (~700 B with
# %{COMBINEDAPACHELOG}), and measures, RUNS times each in turn:
#   tailjet CONFIG   for each CONFIG of CONFIGS (EVENTS:CONCURRENCY:COMPRESSION, e.g.
#                    5000:4:gzip = --es-opt batch.max_events=5000 request.concurrency=4
#                    compression=gzip), --workers WORKERS, a fresh state dir; the server is
#                    reset before each run and must then hold LINES documents, all answered 201
#   curl             the ceiling: curl 4 requests at a time (-Z --parallel-max 4, keep-alive),
#                    sending pre-built gzip bodies of the same records (5000 documents each, with
#                    22-character ids and the same filter_path as tailjet's): what the server
#                    takes from a client that costs almost nothing
# and prints documents/s and MB/s (of the records, before compression, and as sent), medians,
# the ratio to curl, the CPU the server used in each run (it shares the machine's cores with
# the client: these are not figures against a remote cluster), and what else ran on the machine.
#
# Environment: TAILJET (build/tailjet), LINES (200000), RUNS (3), WORKERS (2), CONFIGS
# ("5000:4:gzip 1000:4:gzip 5000:1:gzip 5000:4:none"), SEED (20261125), PATTERN (empty: records
# shipped unparsed; e.g. '%{COMBINEDAPACHELOG}'), BENCH_DIR (a new mktemp -d under /tmp), KEEP
# (0; 1 keeps BENCH_DIR), LOAD_MAX (0.5), LOAD_WAIT (120 s), TARGET (test|real), ES_HEAP (1g),
# ALT_TAILJET (another build, e.g. cmake -DTJ_LIBDEFLATE=ON: its rows "alt CONFIG" run right after
# each "tj CONFIG" row, same records, same server).
set -Eeuo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/.." && pwd)

TAILJET=${TAILJET:-build/tailjet}
LINES=${LINES:-200000}
RUNS=${RUNS:-3}
WORKERS=${WORKERS:-2}
CONFIGS=${CONFIGS:-5000:4:gzip 1000:4:gzip 5000:1:gzip 5000:4:none}
KEEP=${KEEP:-0}
SEED=${SEED:-20261125}
PATTERN=${PATTERN:-}
LOAD_MAX=${LOAD_MAX:-0.5}
LOAD_WAIT=${LOAD_WAIT:-120}
TARGET=${TARGET:-test}
ES_HEAP=${ES_HEAP:-1g}
[[ $TARGET =~ ^(test|real)$ ]] || { echo "es.sh: TARGET must be test or real, not '$TARGET'" >&2; exit 1; }
if [ "$TARGET" = real ]; then
	INDEX=tjbench # one index, made anew before each run
	TJ_INDEX=(--es-opt "index=$INDEX")
else
	INDEX=logs-file-2026.11.25 # tailjet's default index for these records
	TJ_INDEX=()
fi
RUN_TIMEOUT=600 # a run that takes longer is stopped and reported as failed
SERVER="$repo/tests/es/tj_es_server.py"
export TAILJET_METRICS_ADDR=${TAILJET_METRICS_ADDR:-off} # no /metrics server in the timed runs

say() { printf 'es.sh: %s\n' "$*" >&2; }
die() { say "$*"; exit 1; }

# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
require_positive LINES RUNS WORKERS LOAD_WAIT
[[ $LOAD_MAX =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "LOAD_MAX must be a number, not '$LOAD_MAX'"
for c in $CONFIGS; do
	[[ $c =~ ^[0-9]+:[0-9]+:(gzip|none)$ ]] || die "CONFIGS: '$c' is not EVENTS:CONCURRENCY:gzip|none"
done

use_bench_dir es

# ---- processes this script started: stopped on every exit ------------------------------------
SERVER_PID=

# Stops, newest first, every process this script started and their children (tailjet and curl
# run as children of /usr/bin/time), then the server (SIGTERM, by its pid), then removes what
# the run wrote under BENCH_DIR unless KEEP=1 (and BENCH_DIR itself if this script made it).
cleanup() {
	stop_started
	if [ "$TARGET" = real ] && [ -d "$BENCH_DIR/node" ]; then
		bash "$repo/tests/servers/es.sh" stop "$BENCH_DIR/node" || true
	elif [ -n "$SERVER_PID" ]; then
		stop_pid "$SERVER_PID"
		wait "$SERVER_PID" 2>/dev/null || true
	fi
	remove_bench_dir "corpus, bodies and logs" bin corpus run server node
}
set_traps

check_tools() {
	local t
	for t in cc awk df pgrep ps sort sync wc curl python3 sha256sum; do
		command -v "$t" >/dev/null || die "$t is missing: run scripts/setup.sh (Debian packages)"
	done
	[ -x /usr/bin/time ] || die "/usr/bin/time is missing: apt-get install time"
	[ -f "$SERVER" ] || die "no $SERVER"
}

# json-file ~270 B a line, records ~450 B (once, for the curl bodies), bodies ~1/8 of that.
check_disk() {
	local need
	need=$((LINES * (280 + 700) + 256 * 1024 * 1024))
	require_disk "$need"
}

# ---- the server --------------------------------------------------------------------------------
start_server() {
	local d="$BENCH_DIR/server"
	if [ "$TARGET" = real ]; then
		URL=$(TJ_ES_HEAP=$ES_HEAP bash "$repo/tests/servers/es.sh" start "$BENCH_DIR/node") ||
			die "the Elasticsearch node did not start (tests/servers/es.sh)"
		SERVER_PID=$(cat "$BENCH_DIR/node/pid")
		PORT=${URL##*:}
		say "Elasticsearch node (pid $SERVER_PID, heap $ES_HEAP): $URL"
		return
	fi
	mkdir -p "$d"
	python3 "$SERVER" --port 0 --port-file "$d/port" --no-store-source >"$d/out" 2>&1 &
	SERVER_PID=$!
	for _ in $(seq 1 100); do
		[ -s "$d/port" ] && break
		kill -0 "$SERVER_PID" 2>/dev/null || die "tj_es_server.py exited: $(cat "$d/out")"
		sleep 0.1
	done
	PORT=$(cat "$d/port")
	[[ $PORT =~ ^[0-9]+$ ]] || die "tj_es_server.py gave no port: $(cat "$d/out")"
	URL="http://127.0.0.1:$PORT"
	say "server (pid $SERVER_PID): $URL"
}

api() { curl -sS --max-time 30 "$@"; }

# server_check: the server holds LINES documents, every item answered 201; sets CHECK_NOTE
# (empty when fine) and SENT_BYTES (request bytes it received).
server_check() {
	local st n
	if [ "$TARGET" = real ]; then
		api -X POST "$URL/$INDEX/_refresh" >/dev/null || true
		n=$(api "$URL/$INDEX/_count" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("count", -1))' || echo -1)
		CHECK_NOTE=""
		[ "$n" = "$LINES" ] || CHECK_NOTE="FAILED: the node holds $n documents of $LINES"
		SENT_BYTES=$REAL_SENT
		return
	fi
	st=$(api "$URL/_test/stats") || st='{}'
	read -r CHECK_NOTE SENT_BYTES < <(python3 -c '
import json, sys
s = json.loads(sys.argv[1] or "{}"); n = int(sys.argv[2])
by = s.get("items_by_status", {})
bad = []
if s.get("docs") != n: bad.append("the server holds %s documents of %d" % (s.get("docs"), n))
if set(by) - {"201"}: bad.append("items by status %s" % by)
print(("FAILED:" + "_".join(" ".join(bad).split())) if bad else "-", s.get("bytes_received", 0))
' "$st" "$LINES")
	[ "$CHECK_NOTE" != - ] || CHECK_NOTE=""
	CHECK_NOTE=${CHECK_NOTE//_/ }
}

# ---- corpus, records and curl's bodies -------------------------------------------------------
generate() {
	rm -rf "$BENCH_DIR/corpus"
	apache_corpus "$BENCH_DIR/corpus/app-json.log"
}

# The records tailjet sends (its file: output of the corpus), then curl's bodies: 5000 of them per
# body, each after an action line with a 22-character id, gzip level 1 (as tailjet), and a curl
# config that sends them all to /_bulk.
make_bodies() {
	local d="$BENCH_DIR/run" rec n
	mkdir -p "$d"
	rec="$BENCH_DIR/corpus/records.ndjson"
	rm -rf "$d/state" "$rec"
	PAT=()
	[ -z "$PATTERN" ] || PAT=(--pattern "$PATTERN")
	"$TJ" run --watch "$ONE" "${PAT[@]}" --output "file:$rec" --state-dir "$d/state" --exit-on-eof \
		2>"$d/records.stderr" || die "tailjet could not write the records file: $(tail -3 "$d/records.stderr")"
	n=$(wc -l <"$rec")
	[ "$n" = "$LINES" ] || die "the records file holds $n records, not $LINES"
	REC_BYTES=$(stat -c %s "$rec") # with their newlines: as they stand in a bulk body
	python3 - "$rec" "$BENCH_DIR/corpus" "$URL" "$INDEX" <<'EOF'
import base64, gzip, hashlib, os, sys
rec, out, url, index = sys.argv[1:5]
docs, k, cfg = [], 0, []
def flush():
    global docs, k
    if not docs:
        return
    path = os.path.join(out, "body-%05d.gz" % k)
    with open(path, "wb") as f:
        f.write(gzip.compress(b"".join(docs), 1))
    cfg.append('url = "%s/_bulk?filter_path=errors,items.*.status,items.*.error"\n'
               'output = "/dev/null"\ndata-binary = "@%s"\n'
               'header = "Content-Type: application/x-ndjson"\nheader = "Content-Encoding: gzip"\n'
               'header = "Expect:"\n' % (url, path))
    docs, k = [], k + 1
with open(rec, "rb") as f:
    for line in f:
        i = base64.urlsafe_b64encode(hashlib.md5(line).digest()).rstrip(b"=")
        docs.append(b'{"index":{"_index":"' + index.encode() + b'","_id":"' + i + b'"}}\n' + line)
        if len(docs) == 5000:
            flush()
flush()
with open(os.path.join(out, "curl.cfg"), "w") as f:
    f.write("next\n".join(cfg))
EOF
	BODIES=$(find "$BENCH_DIR/corpus" -name 'body-*.gz' | wc -l)
	CURL_SENT=$(find "$BENCH_DIR/corpus" -name 'body-*.gz' -printf '%s\n' | awk '{ s += $1 } END { print s + 0 }')
	rm -f "$rec" && rm -rf "$d/state"
}

# ---- runs --------------------------------------------------------------------------------------
ROWS=() # "who|run|wall s|cpu s|server cpu s|peak RSS KiB|sent bytes|note"
FAILED=0
declare -A CMDS=()

# timed WHO RUN CMD...: resets the server, runs CMD under /usr/bin/time, checks its exit status
# and what the server holds; adds a row.
timed() {
	local who=$1 run=$2
	shift 2
	local d="$BENCH_DIR/run" wall note=""
	mkdir -p "$d"
	[ -n "${CMDS[$who]:-}" ] || CMDS[$who]=$(cmdline "$@")
	if [ "$TARGET" = real ]; then
		api -X DELETE "$URL/$INDEX?ignore_unavailable=true" >/dev/null || die "the node does not answer $URL"
		api -X PUT "$URL/$INDEX" -H 'Content-Type: application/json' \
			-d '{"settings":{"number_of_shards":1,"number_of_replicas":0}}' >/dev/null ||
			die "the node did not make the index $INDEX"
		REAL_SENT=0
		[ "$who" != curl ] || REAL_SENT=$CURL_SENT
	else
		api -X POST "$URL/_test/reset" >/dev/null || die "the server does not answer $URL/_test/reset"
	fi
	sync
	run_timed "$d" "$who run $run" "$SERVER_PID" "$@"
	wall=$T_WALL
	server_check
	if [ "$T_RC" != 0 ] || [ -n "$CHECK_NOTE" ] || [ "$T_WAITED" = 1 ]; then
		note="FAILED: exit $T_RC ${CHECK_NOTE#FAILED:}"
		say "$who run $run: $note; its stderr ends:"
		tail -5 "$d/stderr.txt" >&2
		FAILED=1
		wall=-
	fi
	ROWS+=("$who|$run|$wall|$T_CPU|$T_PEER_CPU|$T_RSS|$SENT_BYTES|$note")
	say "$who run $run: ${wall} s, $T_CPU cpu s, server $T_PEER_CPU cpu s, peak RSS $T_RSS KiB, $SENT_BYTES bytes sent"
}

# run_tailjet CFG RUN [WHO BINARY]: one run of tailjet (or the ALT_TAILJET build) with the
# batch.max_events:request.concurrency:compression of CFG.
run_tailjet() {
	local cfg=$1 run=$2 who=${3:-tj} bin=${4:-$TJ} state="$BENCH_DIR/run/state" ev conc comp
	IFS=: read -r ev conc comp <<<"$cfg"
	rm -rf "$state"
	timed "$who $cfg" "$run" "$bin" run --watch "$ONE" "${PAT[@]}" --output "elasticsearch://127.0.0.1:$PORT" "${TJ_INDEX[@]}" \
		--state-dir "$state" --exit-on-eof --workers "$WORKERS" --es-opt "batch.max_events=$ev" \
		--es-opt "request.concurrency=$conc" --es-opt "compression=$comp"
	rm -rf "$state"
}

run_curl() {
	timed "curl" "$1" curl -sS --fail -Z --parallel-max 4 -K "$BENCH_DIR/corpus/curl.cfg"
}

# ---- the table ---------------------------------------------------------------------------------
# row_fmt WHO RUN WALL CPU SERVER_CPU RSS SENT NOTE [DOCS_PER_S]
row_fmt() {
	awk -v who="$1" -v run="$2" -v wall="$3" -v cpu="$4" -v mcpu="$5" -v rss="$6" -v sent="$7" \
		-v note="$8" -v l="${9:-}" -v lines="$LINES" -v rb="$REC_BYTES" 'BEGIN {
		if (wall == "-" || wall <= 0) { dps = "-"; rmb = "-"; smb = "-" }
		else {
			if (l == "") l = lines / wall
			dps = sprintf("%.0f", l); rmb = sprintf("%.1f", l * rb / lines / 1e6)
			smb = (sent > 0) ? sprintf("%.1f", l * sent / lines / 1e6) : "-"; wall = sprintf("%.3f", wall)
		}
		r = (rss == "-" || rss == "") ? "-" : sprintf("%.1f MiB", rss / 1024)
		printf "%-17s %6s %8s %9s %9s %8s %7s %10s %10s  %s\n", who, run, dps, rmb, smb, wall, cpu, mcpu, r, note
	}'
}

# medians WHO: the median row of WHO over its successful runs; sets MED_DPS and MED_CPU.
medians() {
	local sel wall cpu mcpu rss sent
	sel=$(printf '%s\n' "${ROWS[@]}" | awk -F'|' -v s="$1" '$1 == s && $3 != "-"')
	MED_DPS=-
	MED_CPU=-
	if [ -z "$sel" ]; then
		row_fmt "$1" median - - - - - "no successful run"
		return 0
	fi
	wall=$(cut -d'|' -f3 <<<"$sel" | median)
	cpu=$(cut -d'|' -f4 <<<"$sel" | median)
	mcpu=$(cut -d'|' -f5 <<<"$sel" | median)
	rss=$(cut -d'|' -f6 <<<"$sel" | median)
	sent=$(cut -d'|' -f7 <<<"$sel" | median)
	MED_DPS=$(awk -F'|' -v n="$LINES" '{ print n / $3 }' <<<"$sel" | median)
	MED_CPU=$cpu
	row_fmt "$1" median "$wall" "$cpu" "$mcpu" "$rss" "$sent" "median of $(wc -l <<<"$sel") runs" "$MED_DPS"
}

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "-" || b == "-" || b <= 0) print "-"; else printf "%.2f", a / b }'; }

print_table() {
	local row who run wall cpu mcpu rss sent note c mc what="shipped unparsed"
	[ -z "$PATTERN" ] || what="parsed with $PATTERN"
	echo
	if [ "$TARGET" = real ]; then
		echo "Elasticsearch benchmark: tailjet run --exit-on-eof --output elasticsearch://... into a real Elasticsearch 8.17.4 node (tests/servers/es.sh, heap $ES_HEAP, default thread pools, THIS machine); index $INDEX, 1 shard, 0 replicas, made anew before each run"
	else
		echo "Elasticsearch benchmark: tailjet run --exit-on-eof --output elasticsearch://... into tests/es/tj_es_server.py --no-store-source (Python, one process, THIS machine)"
	fi
	echo "  tailjet: $TJ_VERSION ($TAILJET, sha256 $TJ_ID), --workers $WORKERS, $(nproc) CPUs, RUNS=$RUNS"
	echo "  corpus: 1 json-file, $LINES Apache combined lines, $ONE_BYTES bytes; records $what: $REC_BYTES bytes ($(awk -v b="$REC_BYTES" -v n="$LINES" 'BEGIN { printf "%.0f", b / n }') B each with its newline)"
	echo "  tailjet CONFIG = batch.max_events:request.concurrency:compression (batch.max_bytes 5MiB; gzip level 1)"
	echo "  curl: $BODIES pre-built gzip bodies of 5000 documents (the same records, 22-character ids, the same filter_path), -Z --parallel-max 4, keep-alive"
	echo "  the server runs on the same $(nproc) cores: server_cpu is the CPU it used during each run; these are not figures against a real cluster"
	echo "  before the timed runs: $QUIET"
	printf '%-17s %6s %8s %9s %9s %8s %7s %10s %10s  %s\n' who run docs/s rec_MB/s sent_MB/s wall_s cpu_s server_cpu peak_RSS note
	for row in "${ROWS[@]}"; do
		IFS='|' read -r who run wall cpu mcpu rss sent note <<<"$row"
		row_fmt "$who" "$run" "$wall" "$cpu" "$mcpu" "$rss" "$sent" "$note"
	done
	echo
	medians curl
	mc=$MED_DPS
	for c in $CONFIGS; do
		medians "tj $c"
		echo "    tj $c / curl = $(ratio "$MED_DPS" "$mc"); tailjet's own work: $(awk -v c="$MED_CPU" -v n="$LINES" 'BEGIN { if (c == "-" || c <= 0) print "-"; else printf "%.0f documents per CPU-second (%.2f us each: json-file, record, id, gzip, HTTP)", n / c, c / n * 1e6 }')"
		if [ -n "${ALT_TAILJET:-}" ]; then
			medians "alt $c"
			echo "    alt $c / curl = $(ratio "$MED_DPS" "$mc"); its own work: $(awk -v c="$MED_CPU" -v n="$LINES" 'BEGIN { if (c == "-" || c <= 0) print "-"; else printf "%.0f documents per CPU-second (%.2f us each)", n / c, c / n * 1e6 }')"
		fi
	done
	echo
	echo "rec_MB/s: record bytes (the documents' NDJSON, without action lines) per second; sent_MB/s: request bytes on the wire per second"
	echo
	echo "commands (\$B/bin/tailjet is a copy of $TAILJET taken at the start; the server is reset before each run):"
	echo "  B=$(printf '%q' "$BENCH_DIR")"
	printf '  %-8s %s\n' "tailjet:" "${CMDS["tj ${CONFIGS%% *}"]:-}" "curl:" "${CMDS[curl]:-}" |
		awk -v b="$(printf '%q' "$BENCH_DIR")" '{ while ((i = index($0, b)) > 0) $0 = substr($0, 1, i - 1) "$B" substr($0, i + length(b)); print }'
	if [ "$TARGET" = real ]; then
		echo "  node:    TJ_ES_HEAP=$ES_HEAP bash tests/servers/es.sh start \$B/node (sent_MB/s: curl's bodies only; tailjet's are not counted here)"
	else
		echo "  server:  python3 tests/es/tj_es_server.py --port 0 --no-store-source"
	fi
	echo "  each under: /usr/bin/time -f '%e %U %S %M' (wall: its elapsed time)"
	[ -z "${ALT_TAILJET:-}" ] || echo "  alt:        ALT_TAILJET=$ALT_TAILJET (sha256 $(sha256sum "$BENCH_DIR/bin/tailjet-alt" | cut -c1-12))"
	echo "  this run:   TARGET=$TARGET TAILJET=$TAILJET LINES=$LINES RUNS=$RUNS WORKERS=$WORKERS CONFIGS='$CONFIGS' SEED=$SEED PATTERN='$PATTERN' BENCH_DIR=$BENCH_DIR bench/es.sh"
}

main() {
	local start=$SECONDS r c
	check_tools
	machine_state "at the start"
	check_disk
	resolve_tailjet
	[[ $("$TJ" run --help 2>&1) == *--es-opt* ]] || die "$TAILJET has no Elasticsearch output (no --es-opt in 'tailjet run --help')"
	say "tailjet: $TJ_VERSION ($TAILJET, copied to $TJ)"
	if [ -n "${ALT_TAILJET:-}" ]; then
		[ -x "$ALT_TAILJET" ] || die "ALT_TAILJET $ALT_TAILJET is not an executable"
		cp "$ALT_TAILJET" "$BENCH_DIR/bin/tailjet-alt"
		say "alt: $ALT_TAILJET (sha256 $(sha256sum "$ALT_TAILJET" | cut -c1-12))"
	fi
	start_server
	say "generating the corpus into $BENCH_DIR/corpus ($LINES lines)"
	generate
	say "writing the records and curl's bodies"
	make_bodies
	sync
	wait_for_quiet

	for r in $(seq 1 "$RUNS"); do
		for c in $CONFIGS; do
			run_tailjet "$c" "$r"
			[ -z "${ALT_TAILJET:-}" ] || run_tailjet "$c" "$r" alt "$BENCH_DIR/bin/tailjet-alt"
		done
		run_curl "$r"
	done

	print_table
	echo
	machine_state "at the end"
	say "done in $((SECONDS - start)) s"
	[ "$FAILED" = 0 ] || die "some runs failed (see the notes above)"
}

main
