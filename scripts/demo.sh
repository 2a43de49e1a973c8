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
echo "   (one JSON record per line; long lines cut to 300 characters for the screen)"
echo
./build/tailjet parse --pattern '%{COMBINEDAPACHELOG}' "$sample" | cut -c1-300
