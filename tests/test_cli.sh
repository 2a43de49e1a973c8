#!/usr/bin/env bash
# test_cli.sh: `tailjet parse` and `tailjet patterns` end to end, as a user runs them.
# Usage: test_cli.sh PATH/TO/tailjet. Prints "N passed, N failed"; exits non-zero on a failure.
set -u
TJ=${1:?usage: test_cli.sh TAILJET}
HERE=$(cd "$(dirname "$0")" && pwd)
SAMPLE=$HERE/data/samples/apache.json-file.log
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); echo "ok   $1"; }
bad() { fail=$((fail + 1)); echo "FAIL $1"; }
# check NAME COMMAND...: the command must succeed
check() { local n=$1; shift; if "$@"; then ok "$n"; else bad "$n"; fi; }

# jq-like assertions over an NDJSON file with python3: check_json NAME FILE PYTHON-EXPR
# The expression sees `recs` (list of parsed records); every line must be valid JSON.
check_json() {
  local n=$1 f=$2 expr=$3
  if python3 - "$f" "$expr" <<'PY'; then ok "$n"; else bad "$n"; fi
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
ok = eval(sys.argv[2])
if not ok:
    for r in recs[:10]:
        print("   ", json.dumps(r)[:300], file=sys.stderr)
sys.exit(0 if ok else 1)
PY
}

# --- version and help
check version "$TJ" --version | grep -qE '^tailjet [0-9]+\.[0-9]+\.[0-9]+$'
check help bash -c "'$TJ' --help | grep -q 'parse' && '$TJ' parse --help | grep -q -- '--multiline'"

# --- the shipped sample, as the README's demo runs it
"$TJ" parse --pattern '%{COMBINEDAPACHELOG}' "$SAMPLE" >"$T/out" 2>"$T/err"
check sample_exit test $? -eq 0
check_json sample_records "$T/out" 'len(recs) == 7'
check_json sample_fields "$T/out" \
  'recs[0]["source"]["address"] == "203.0.113.7" and recs[0]["http"]["response"]["status_code"] == 200 and recs[0]["http"]["request"]["method"] == "GET" and recs[0]["url"]["original"] == "/index.html?lang=en" and recs[0]["user_agent"]["original"].startswith("Mozilla/5.0") and recs[0]["log"]["file"]["path"].endswith("apache.json-file.log") and recs[0]["log"]["offset"] == 0 and recs[0]["@timestamp"] == "2026-11-25T17:56:16.123456789Z"'
check_json sample_ipv6_and_dash "$T/out" \
  'recs[1]["source"]["address"] == "2001:db8::1" and "user" not in recs[1] and recs[2]["source"]["address"] == "gw.example.net" and "body" not in recs[2]["http"]["response"]'
check_json sample_failure_tagged "$T/out" \
  'recs[3]["tags"] == ["_grokparsefailure"] and recs[3]["stream"] == "stderr" and recs[3]["message"] == "this line matches no pattern"'
# Apache escapes a quote inside a quoted field as \" : the field keeps that text as is.
check_json sample_escaped_quotes "$T/out" 'recs[4]["user_agent"]["original"].endswith(chr(92) + chr(34) + "quoted" + chr(92) + chr(34)) and recs[4]["source"]["address"] == "::1"'
check_json sample_partials_joined "$T/out" \
  'len(recs[5]["url"]["original"]) == 20001 and recs[5]["@timestamp"].endswith("01Z") and "tags" not in recs[5]'
check_json sample_torn_line_kept "$T/out" 'recs[6]["tags"] == ["_jsonparsefailure"] and recs[6]["message"].startswith("{\"log\":\"torn")'
check sample_summary grep -q '7 records: 5 matched, 1 _grokparsefailure, 0 _groktimeout, 1 _jsonparsefailure' "$T/err"

# --- stdin, plain lines, CRLF, empty lines, alternatives in order
printf 'a=1\r\n\nb=x\nc\n' | "$TJ" parse --quiet --pattern '^a=%{INT:a:int}$' --pattern '^b=%{WORD:b}$' - >"$T/plain"
check_json plain_lines "$T/plain" \
  'len(recs) == 4 and recs[0]["a"] == 1 and recs[0]["message"] == "a=1" and recs[1]["message"] == "" and recs[2]["b"] == "x" and recs[3]["tags"] == ["_grokparsefailure"] and "stream" not in recs[0] and "path" not in recs[0]["log"]["file"] if "file" in recs[0]["log"] else True'
check_json plain_offsets "$T/plain" '[r["log"]["offset"] for r in recs] == [0, 5, 6, 10]'

# --- alternatives that both match: the first one wins
printf 'GET /x\n' | "$TJ" parse --quiet --pattern '^%{WORD:first}' --pattern '^%{WORD:second}' - >"$T/alt"
check_json alternatives_first_wins "$T/alt" 'recs[0]["first"] == "GET" and "second" not in recs[0]'

# --- a last line without a line end is kept, even one byte
printf 'a\nb' | "$TJ" parse --quiet - >"$T/noeol"
check_json last_line_without_newline "$T/noeol" '[r["message"] for r in recs] == ["a", "b"]'

# --- a line longer than the read buffer (the cap + 1 MiB): one record, the rest is dropped
python3 -c 'import sys; sys.stdout.write("x" * (1100 * 1024) + "\nshort\n")' |
  "$TJ" parse --quiet --max-line-bytes 16 >"$T/huge_line"
check_json overlong_line_one_record "$T/huge_line" \
  'len(recs) == 2 and recs[0]["message"] == "x" * 16 and recs[0]["tags"] == ["_truncated"] and recs[1]["message"] == "short"'

# --- a file named like Docker's json-file log is read as one, even when its first line is torn
printf '%s\n' 'ut","time":"2026-11-25T17:56:16Z"}' '{"log":"whole\n","stream":"stdout","time":"2026-11-25T17:56:17Z"}' >"$T/abc-json.log"
"$TJ" parse --quiet "$T/abc-json.log" >"$T/jsonlog"
check_json json_log_suffix "$T/jsonlog" \
  'len(recs) == 2 and recs[0]["tags"] == ["_jsonparsefailure"] and recs[1]["message"] == "whole" and recs[1]["stream"] == "stdout"'

# --- no pattern: shipped unparsed, no failure tag
printf 'hello\n' | "$TJ" parse --quiet >"$T/none"
check_json no_pattern_unparsed "$T/none" 'len(recs) == 1 and recs[0]["message"] == "hello" and "tags" not in recs[0]'

# --- multiline: a java stack trace is one event
cat >"$T/java.log" <<'LOG'
2026-11-25 17:56:16,123 ERROR [main] com.example.App - request failed
java.lang.IllegalStateException: boom
	at com.example.App.handle(App.java:42)
	at com.example.App.main(App.java:7)
2026-11-25 17:56:17,001 INFO [main] com.example.App - recovered
LOG
"$TJ" parse --quiet --multiline '^%{TIMESTAMP_ISO8601} ' \
  --pattern '^%{TIMESTAMP_ISO8601:timestamp} %{LOGLEVEL:log.level} \[%{DATA:process.thread.name}\] %{NOTSPACE:log.logger} - %{GREEDYDATA:msg}' \
  "$T/java.log" >"$T/multi"
check_json multiline_joined "$T/multi" \
  'len(recs) == 2 and recs[0]["message"].count("\n") == 3 and recs[0]["log"]["level"] == "ERROR" and recs[0]["msg"].startswith("request failed") and recs[1]["log"]["offset"] > 0 and recs[1]["log"]["level"] == "INFO"'

# --- multiline never drops lines: an event at the cap is shipped and the next one begins
seq 1 20000 | "$TJ" parse --quiet --multiline '^NEVER' --max-line-bytes 1k >"$T/mcap"
check_json multiline_cap_keeps_every_line "$T/mcap" \
  'sorted(int(x) for r in recs for x in r["message"].split("\n")) == list(range(1, 20001)) and all(len(r["message"]) <= 1024 for r in recs) and all(r.get("tags") == ["_truncated"] for r in recs[:-1])'

# --- a joined event whose time is too long to keep gets the reading time, like a single line
long_time=$(python3 -c 'print("2026-11-25T17:56:16." + "1" * 80 + "Z")')
printf '{"log":"piece ","stream":"stdout","time":"%s"}\n{"log":"end\\n","stream":"stdout","time":"%s"}\n' \
  "$long_time" "$long_time" | "$TJ" parse --quiet - >"$T/ltime"
check_json joined_event_keeps_a_time "$T/ltime" 'recs[0]["message"] == "piece end" and recs[0]["@timestamp"].startswith("20")'

# --- a lone surrogate escape becomes U+FFFD (the escaped form is not copied as is)
printf '%s\n' '{"log":"a\ud800b\n","stream":"stdout","time":"t"}' | "$TJ" parse --quiet - >"$T/surr"
check_json lone_surrogate "$T/surr" 'recs[0]["message"] == "a\ufffdb"'
grep -q 'ud800' "$T/surr"
check lone_surrogate_not_copied test $? -ne 0

# --- the line cap: one record, cut, tagged
python3 -c 'print("x" * 5000); print("short")' | "$TJ" parse --quiet --max-line-bytes 100 >"$T/cap"
check_json line_cap "$T/cap" \
  'len(recs) == 2 and len(recs[0]["message"]) == 100 and recs[0]["tags"] == ["_truncated"] and recs[1]["message"] == "short"'

# --- a pathological pattern costs a bounded time and is counted
python3 -c 'print("a" * 30000 + "!")' | timeout 20 "$TJ" parse --pattern '(a+)+$' >"$T/patho" 2>"$T/patho.err"
check pathological_bounded test $? -eq 0
check_json pathological_tagged "$T/patho" 'recs[0]["tags"] == ["_grokparsefailure", "_groktimeout"]'

# --- a record too large for the output buffer (30 overlapping captures of a 16 KB line of
# control bytes, 6 output bytes each) is shipped without its fields, and the next line still is
overlap=$(for i in $(seq 1 30); do printf '(?=(?<f%d>.*))' "$i"; done)
python3 -c 'import sys; sys.stdout.write("\x01" * 16000 + "\nsecond\n")' |
  "$TJ" parse --quiet --max-line-bytes 16k --pattern "$overlap" >"$T/huge"
check huge_record_exit test $? -eq 0
check_json huge_record_kept "$T/huge" \
  'len(recs) == 2 and recs[0]["tags"] == ["_truncated"] and len(recs[0]["message"]) == 16000 and "f1" not in recs[0] and recs[1]["f1"] == "second"'

# --- :float takes decimal text only; anything else stays a string
printf 'a=1.5 b=0x10 c=-.5e2 d=inf\n' | "$TJ" parse --quiet \
  --pattern 'a=%{NOTSPACE:a:float} b=%{NOTSPACE:b:float} c=%{NOTSPACE:c:float} d=%{NOTSPACE:d:float}' >"$T/float"
check_json float_syntax "$T/float" 'recs[0]["a"] == 1.5 and recs[0]["b"] == "0x10" and recs[0]["c"] == -50 and recs[0]["d"] == "inf"'

# --- errors: exit 2 with a message that points at the problem; unreadable file exit 1
"$TJ" parse --pattern 'x %{NOPE:y}' </dev/null 2>"$T/e1"
check bad_pattern_exit test $? -eq 2
check bad_pattern_message grep -q 'unknown pattern %{NOPE} at offset 2' "$T/e1"
"$TJ" parse --pattern '(unclosed' </dev/null 2>"$T/e2"
check pcre2_error_message bash -c "[ $? -eq 2 ] && grep -q 'PCRE2 error at offset 9 of the expression: missing closing parenthesis' '$T/e2'"
"$TJ" parse --no-such-flag </dev/null 2>"$T/e3"
check bad_flag bash -c "[ $? -eq 2 ] && grep -q \"unknown option '--no-such-flag'\" '$T/e3'"
"$TJ" parse --max-line-bytes ' -5' </dev/null 2>"$T/e7"
check bad_size bash -c "[ $? -eq 2 ] && grep -q 'is not a size' '$T/e7'"
"$TJ" parse --max-line-bytes 15 </dev/null 2>"$T/e9"
check size_lower_bound bash -c "[ $? -eq 2 ] && grep -q 'between 16 and 64MiB' '$T/e9'"
"$TJ" parse --max-line-bytes 1GiB </dev/null 2>"$T/e8"
check size_bounded bash -c "[ $? -eq 2 ] && grep -q 'between 16 and 64MiB' '$T/e8'"
"$TJ" parse --match-limit ' -18446744073709551615' </dev/null 2>"$T/e9"
check bad_number bash -c "[ $? -eq 2 ] && grep -q 'is not a whole number' '$T/e9'"
"$TJ" parse --format xml </dev/null 2>"$T/e4"
check bad_choice bash -c "[ $? -eq 2 ] && grep -q 'not one of auto|json-file|plain' '$T/e4'"
"$TJ" parse --quiet "$T/does-not-exist" >/dev/null 2>"$T/e5"
check missing_file bash -c "[ $? -eq 1 ] && grep -q 'cannot open .*does-not-exist' '$T/e5'"
"$TJ" frobnicate 2>"$T/e6"
check bad_command bash -c "[ $? -eq 2 ] && grep -q \"unknown command 'frobnicate'\" '$T/e6'"

# --- records written to a file: the same bytes
# as through a pipe, no blocks left past the end, and >> and <> keep what the file held
for i in $(seq 80); do grep -v torn "$SAMPLE"; done >"$T/big.log" # every line has its time
"$TJ" parse --quiet --pattern '%{COMBINEDAPACHELOG}' "$T/big.log" | cat >"$T/piped"
"$TJ" parse --quiet --pattern '%{COMBINEDAPACHELOG}' "$T/big.log" >"$T/direct"
check file_output_same cmp -s "$T/piped" "$T/direct"
check file_output_large test "$(stat -c %s "$T/direct")" -gt $((2 * 1024 * 1024))
check file_output_no_blocks_past_end \
  test "$(stat -c '%b * %B' "$T/direct" | bc)" -le $(($(stat -c %s "$T/direct") + 65536))
echo head >"$T/appended" && "$TJ" parse --quiet --pattern '%{COMBINEDAPACHELOG}' "$T/big.log" >>"$T/appended"
check file_output_append bash -c "{ echo head; cat '$T/piped'; } | cmp -s - '$T/appended'"
printf 'xxxxx' >"$T/rw" && "$TJ" parse --quiet --pattern '%{COMBINEDAPACHELOG}' "$T/big.log" 1<>"$T/rw"
check file_output_rw_from_start cmp -s "$T/piped" "$T/rw"

# --- records come out in line order whatever their size: a 300 KiB line (joined from 16 KiB
# partial entries) between short ones, and multiline events, are parsed as they come
python3 - "$T/order.json" <<'PY'
import json, sys
out = []
def entry(log):
    out.append(json.dumps({"log": log, "stream": "stdout", "time": "2026-11-25T17:56:16.000000001Z"}))
for i in range(200):
    entry("line %d\n" % i)
    if i == 100:
        big = "B" * 300000 + "\n"
        for k in range(0, len(big), 16384):
            entry(big[k:k + 16384])
open(sys.argv[1], "w").write("\n".join(out) + "\n")
PY
"$TJ" parse --quiet --pattern '^line %{INT:n:int}$' "$T/order.json" >"$T/order.out"
check_json order_kept "$T/order.out" \
  'len(recs) == 201 and [r.get("n") for r in recs[:101]] == list(range(101)) and len(recs[101]["message"]) == 300000 and [r.get("n") for r in recs[102:]] == list(range(101, 200))'
"$TJ" parse --quiet --multiline '^line' --pattern '^line %{INT:n:int}' "$T/order.json" >"$T/order.ml"
check_json order_kept_multiline "$T/order.ml" \
  'len(recs) == 200 and [r.get("n") for r in recs] == list(range(200)) and recs[100]["message"].endswith("B" * 1000) and len(recs[100]["message"]) == 300009'

# --- from a pipe, each record goes out as soon as the input pauses, not at the end
mkfifo "$T/fifo"
{ printf 'a=1\n'; for _ in $(seq 100); do [ -e "$T/seen" ] && break; sleep 0.05; done; printf 'a=2\n'; } >"$T/fifo" &
"$TJ" parse --quiet --pattern '^a=%{INT:a:int}$' - <"$T/fifo" >"$T/live" &
tj_pid=$!
for _ in $(seq 100); do [ -s "$T/live" ] && break; sleep 0.05; done
check live_first_record_early test "$(wc -l <"$T/live")" -eq 1
touch "$T/seen"
wait "$tj_pid"
check_json live_all_records "$T/live" '[r["a"] for r in recs] == [1, 2]'

# --- the pattern library
check patterns_list bash -c "'$TJ' patterns | grep -qE '^COMBINEDAPACHELOG +http.grok$'"
check patterns_show bash -c "'$TJ' patterns COMBINEDAPACHELOG | grep -q 'http.response.status_code (int)'"
check patterns_regex bash -c "'$TJ' patterns --regex '%{INT:x}' | grep -qF '(?<g1>'"
"$TJ" patterns NO_SUCH_NAME >/dev/null 2>&1
check patterns_unknown test $? -eq 2
mkdir -p "$T/pd" && printf 'MYAPP app=%%{WORD:app.name}\n' >"$T/pd/mine"
echo 'x app=shop' | "$TJ" parse --quiet --patterns-dir "$T/pd" --pattern '%{MYAPP}' >"$T/pd.out"
check_json patterns_dir "$T/pd.out" 'recs[0]["app"]["name"] == "shop"'
# two files defining one name: the later file in sort order wins, whatever the directory order
printf 'WHO first\n' >"$T/pd/b-second" && printf 'WHO second\n' >>"$T/pd/b-second"
printf 'WHO zero\n' >"$T/pd/a-first"
echo 'x second y' | "$TJ" parse --quiet --patterns-dir "$T/pd" --pattern '(?<who>%{WHO})' >"$T/pd2.out"
check_json patterns_dir_order "$T/pd2.out" 'recs[0]["who"] == "second"'
"$TJ" patterns --patterns-dir "$T/pd" WHO | grep -q "WHO ($T/pd/b-second)"
check patterns_dir_origin test $? -eq 0

# --- Logstash's legacy field names (ecs_compatibility => disabled)
"$TJ" parse --quiet --ecs disabled --pattern '%{COMBINEDAPACHELOG}' "$SAMPLE" >"$T/legacy"
check_json ecs_disabled_fields "$T/legacy" \
  'recs[0]["clientip"] and recs[0]["verb"] and recs[0]["response"].isdigit() and "bytes" in recs[0] and "httpversion" in recs[0] and "source" not in recs[0] and "http" not in recs[0]'
check patterns_show_legacy bash -c "'$TJ' patterns --ecs disabled COMBINEDAPACHELOG | grep -qx '  clientip'"
"$TJ" parse --ecs legacyish --pattern x </dev/null >/dev/null 2>"$T/ecs.err"
check ecs_bad_value grep -q 'disabled' "$T/ecs.err"
# every library name compiles in both modes
bad_names=$("$TJ" patterns | while read -r n _; do "$TJ" patterns --ecs disabled "$n" >/dev/null 2>&1 || echo "$n"; done)
check every_name_in_legacy_mode test -z "$bad_names"
# a conversion Elasticsearch knows and one it does not
echo 'n=5 b=TRUE' | "$TJ" parse --quiet --pattern 'n=%{INT:n:long} b=%{WORD:b:boolean}' >"$T/conv"
check_json ingest_conversions "$T/conv" 'recs[0]["n"] == 5 and recs[0]["b"] is True'

# --- event time from the line (--timestamp): @timestamp from the field, json-file time kept
cat >"$T/ts.log" <<'TSEOF'
{"log":"1.2.3.4 - - [10/Oct/2000:13:55:36 -0700] \"GET / HTTP/1.0\" 200 2 \"-\" \"a\"\n","stream":"stdout","time":"2024-05-01T10:00:00.123456789Z"}
{"log":"1.2.3.4 - - [31/Feb/2015:23:13:42 +0000] \"GET / HTTP/1.0\" 200 2 \"-\" \"a\"\n","stream":"stdout","time":"2024-05-01T10:00:01.5Z"}
{"log":"1.2.3.4 - - [24/Feb/2015:23:13:42.25 +0100] \"GET / HTTP/1.0\" 200 2 \"-\" \"a\"\n","stream":"stdout","time":"2024-05-01T10:00:02Z"}
TSEOF
"$TJ" parse --quiet --pattern '%{COMBINEDAPACHELOG}' --timestamp 'timestamp dd/MMM/yyyy:HH:mm:ss Z|dd/MMM/yyyy:HH:mm:ss.SS Z' "$T/ts.log" >"$T/ts.out"
check_json timestamp_from_line "$T/ts.out" \
  'len(recs) == 3 and recs[0]["@timestamp"] == "2000-10-10T20:55:36Z" and recs[0]["event"]["created"] == "2024-05-01T10:00:00.123456789Z" and recs[2]["@timestamp"] == "2015-02-24T22:13:42.25Z"'
check_json timestamp_bad_date_tagged "$T/ts.out" \
  'recs[1]["tags"] == ["_dateparsefailure"] and recs[1]["@timestamp"] == "2024-05-01T10:00:01.5Z" and "event" not in recs[1] and recs[1]["source"]["address"] == "1.2.3.4"'
"$TJ" parse --timestamp 'timestamp' --pattern x </dev/null >/dev/null 2>"$T/ts.err"
check timestamp_bad_spec grep -q 'timestamp: ' "$T/ts.err"

echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
