#!/usr/bin/env bash
# Configures and builds one tree: scripts/build.sh DIR [CMAKE ARGS...]. Used by demo.sh, test.sh.
set -euo pipefail
dir=$1
shift
cmake -S "$(dirname "$0")/.." -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
cmake --build "$dir" -j"$(nproc)"
