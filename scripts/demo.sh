#!/usr/bin/env bash
# The README's first command: installs what is missing, builds, then shows `tailjet run` at work
# on a real Docker engine (scripts/demo.py): four containers (an access-log web server, an app
# with multi-line stack traces, a key=value logger, one without labels) parsed by their own
# labels, two records of each, and a per-service summary from /metrics. It uses the engine that
# answers (DOCKER_HOST, else /var/run/docker.sock) and leaves it as it was, or starts a private
# dockerd for the run and removes it afterwards; it says which. Exit status 0 when every figure
# is what the containers wrote.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh build >/dev/null
python3 scripts/demo.py build/tailjet
