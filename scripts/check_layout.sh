#!/usr/bin/env bash
# scripts/check_layout.sh [ROOT]: every include of ours points down the layers:
#   lib/                        includes only headers of lib/ (it is the bottom: nothing else of ours),
#   parser/ discover/ outputs/ patterns/  never include a header of cmd/ (the commands are the top).
#   and no .c file is over about 1,000 lines (MAX_LINES, 1,100) without a line ` * Size: WHY`
#   in its first comment: a longer file says in one line why it is one piece.
# An include is "ours" when its file name is a header somewhere in those folders (the include
# directories are flat, so "tj_buf.h", <tj_buf.h> and "../lib/tj_buf.h" all name lib/tj_buf.h).
# Prints each offending line as FILE:LINE: ... and exits 1 when there is one, 0 otherwise.
# `check_layout.sh --self-test` plants one violation of each rule in a copy and checks each is caught.
set -euo pipefail
MAX_LINES=1100

check() {
	local root=$1 bad=0 f line name
	declare -A where=()
	for d in lib cmd parser discover outputs patterns; do
		[ -d "$root/$d" ] || continue
		while IFS= read -r f; do where[$(basename "$f")]=$d; done < <(find "$root/$d" -name '*.h')
	done
	[ -d "$root/lib" ] && [ -d "$root/cmd" ] || {
		echo "check_layout: $root has no lib/ or no cmd/ folder" >&2
		return 2
	}
	for d in lib parser discover outputs patterns; do
		[ -d "$root/$d" ] || continue
		while IFS= read -r hit; do
			f=${hit%%:*}
			line=${hit#*:}
			line=${line%%:*}
			name=$(sed -E 's/^[^:]*:[^:]*:[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]([^>"]+)[>"].*/\1/' <<<"$hit")
			name=$(basename "$name")
			local home=${where[$name]:-}
			[ -n "$home" ] || continue # a system header
			if [ "$d" = lib ] && [ "$home" != lib ]; then
				echo "${f#"$root"/}:$line: lib/ includes $home/$name; lib/ must include nothing of ours outside itself"
				bad=1
			elif [ "$d" != lib ] && [ "$home" = cmd ]; then
				echo "${f#"$root"/}:$line: $d/ includes cmd/$name; only cmd/ may include the commands' headers"
				bad=1
			fi
		done < <(grep -rnE '^[[:space:]]*#[[:space:]]*include[[:space:]]*[<"]' --include='*.c' --include='*.h' "$root/$d" || true)
	done
	while IFS= read -r f; do
		local n
		n=$(wc -l <"$f")
		[ "$n" -gt "$MAX_LINES" ] || continue
		if ! awk 'NR == 1 && !/^\/\*/ { exit 1 } /^ \* Size: ./ { found = 1; exit } /\*\// { exit } END { exit !found }' "$f"; then
			echo "${f#"$root"/}: $n lines, over $MAX_LINES, and its first comment has no ' * Size: ' line saying why it is one piece"
			bad=1
		fi
	done < <(find "$root" -name '*.c' -not -path '*/build*' -not -path '*/.git/*' -not -path '*/node_modules/*')
	return $bad
}

if [ "${1:-}" = --self-test ]; then
	src=$(cd "$(dirname "$0")/.." && pwd)
	tmp=$(mktemp -d)
	trap 'rm -rf "$tmp"' EXIT
	for d in lib cmd parser; do cp -r "$src/$d" "$tmp/$d"; done
	check "$tmp" >/dev/null || {
		echo "self-test: the clean copy already fails" >&2
		exit 1
	}
	# caught PATTERN WHAT: the check of the planted tree must fail with a line matching PATTERN.
	caught() {
		local out
		out=$(check "$tmp" || true)
		grep -q "$1" <<<"$out" || {
			echo "self-test: $2 went unnoticed: $out" >&2
			exit 1
		}
	}
	printf '#include <stdio.h>\n#include "tj_engine.h"\n' >"$tmp/lib/tj_planted.c"
	caught 'lib/tj_planted.c:2: lib/ includes parser/tj_engine.h' "an include from lib/ into parser/"
	rm "$tmp/lib/tj_planted.c"
	echo '#include "../cmd/tj_cmd.h"' >"$tmp/parser/tj_planted.h"
	caught 'parser/tj_planted.h:1: parser/ includes cmd/tj_cmd.h' "an include from parser/ into cmd/"
	rm "$tmp/parser/tj_planted.h"
	{ echo '/* tj_planted.c: a long file. */'; for i in $(seq 1 1200); do echo "int planted_$i;"; done; } >"$tmp/lib/tj_planted.c"
	caught 'lib/tj_planted.c: 1201 lines, over 1100' "a long .c without a Size: line"
	sed -i '1s#.*#/* tj_planted.c: a long file.\n * Size: one table, generated. */#' "$tmp/lib/tj_planted.c"
	check "$tmp" >/dev/null || {
		echo "self-test: a long .c with its Size: line is refused: $(check "$tmp")" >&2
		exit 1
	}
	echo "check_layout self-test: each rule caught its planted file"
	exit 0
fi

root=${1:-$(cd "$(dirname "$0")/.." && pwd)}
if check "$root"; then
	echo "check_layout: every include of lib/ stays in lib/; none of parser/ discover/ outputs/ patterns/ reaches cmd/; every .c over $MAX_LINES lines says why"
else
	exit 1
fi
