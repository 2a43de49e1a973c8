#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, and parses the json-file sample
# that ships with the repository with %{COMBINEDAPACHELOG}, showing the records it writes.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh build >/dev/null
sample=tests/data/samples/apache.json-file.log
echo
echo "== tailjet parse --pattern '%{COMBINEDAPACHELOG}' $sample"
echo "   (one JSON record per line; for the screen, string values over 60 characters are"
echo "   shortened with ...; tailjet itself writes them whole)"
echo
summary=$(mktemp)
./build/tailjet parse --pattern '%{COMBINEDAPACHELOG}' "$sample" 2>"$summary" | python3 -c '
import json, sys
def short(v):
    if isinstance(v, dict):
        return {k: short(x) for k, x in v.items()}
    if isinstance(v, str) and len(v) > 60:
        return v[:57] + "..."
    return v
for line in sys.stdin:
    print(json.dumps(short(json.loads(line)), ensure_ascii=False, separators=(",", ":")))
'
echo
cat "$summary"
rm -f "$summary"
