#!/usr/bin/env bash
# The README's test command, and what CI runs: installs what is missing, then
#   1. builds with -Werror and runs every test (ctest: unit and integration) but the packaging one,
#   2. the packaging test (ctest label package: the Dockerfile, deploy/stack.yml on a swarm,
#      Prometheus scraping it; 2.5-4 min, skipped with TJ_SKIP_PACKAGE=1 for a quick local run),
#   3. builds with AddressSanitizer + UndefinedBehaviorSanitizer and runs every test again,
#   4. builds with ThreadSanitizer and runs the engine's tests (label engine), the other
#      tests of threaded code (label threads) and the tests against real servers (label real),
#   5. runs each libFuzzer target for FUZZ_SECONDS (default 30) from its seed corpus,
#   6. checks that the tree is clang-formatted.
# Any failure stops it with a non-zero exit.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
FUZZ_SECONDS=${FUZZ_SECONDS:-30}

echo "== 1/6 build and test"
bash scripts/build.sh build
(cd build && ctest -LE package --output-on-failure)

if [ "${TJ_SKIP_PACKAGE:-0}" = 1 ]; then
  echo "== 2/6 packaging: skipped (TJ_SKIP_PACKAGE=1)"
else
  echo "== 2/6 packaging: image, stack, metrics (Debian base cached in build/package-cache)"
  (cd build && ctest -L package --no-tests=error --output-on-failure)
fi

echo "== 3/6 AddressSanitizer + UndefinedBehaviorSanitizer"
CC=clang bash scripts/build.sh build-asan -DTJ_SANITIZE=address,undefined
# Sanitizer builds write 256 MiB behind the blocked output instead of 1 GiB, and their RSS
# (quarantine, shadow memory) is held to 256 MiB instead of the 64 MiB of the real build.
(cd build-asan && ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  TJ_BACKPRESSURE_BYTES=268435456 TJ_RSS_BOUND_MIB=256 \
  ctest -LE package --output-on-failure)

echo "== 4/6 ThreadSanitizer: the engine's tests, the other threaded ones, the real servers'"
CC=clang bash scripts/build.sh build-tsan -DTJ_SANITIZE=thread
# A data race makes tailjet exit 66, which every engine test checks. The backpressure test
# writes 256 MiB here instead of 1 GiB: TSan runs the same code several times slower.
(cd build-tsan && TSAN_OPTIONS="halt_on_error=1 exitcode=66 suppressions=$PWD/../tests/tsan.supp" \
  TJ_BACKPRESSURE_BYTES=268435456 TJ_RSS_BOUND_MIB=256 \
  ctest -L 'engine|threads|real' --no-tests=error --output-on-failure)

echo "== 5/6 fuzz targets, ${FUZZ_SECONDS}s each"
CC=clang bash scripts/build.sh build-fuzz -DTJ_FUZZ=ON -DTJ_SANITIZE=address,undefined
for f in jsonfile grok checkpoint time; do
  work=$(mktemp -d)
  cp -r "tests/fuzz/corpus_$f/." "$work/"
  set +e
  ./build-fuzz/tests/fuzz_$f -max_total_time="$FUZZ_SECONDS" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix="$work/" -print_final_stats=1 "$work" >"$work.log" 2>&1
  rc=$?
  set -e
  grep -E '^stat::number_of_executed_units' "$work.log" | sed "s/^/fuzz_$f: /"
  if [ "$rc" -ne 0 ]; then
    tail -n 60 "$work.log"
    echo "fuzz_$f failed (exit $rc); the failing input is in $work"
    exit 1
  fi
  rm -rf "$work" "$work.log"
done

echo "== 6/6 formatting"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  files=$(git ls-files '*.c' '*.h')
else # a tarball: every C file but the build trees
  files=$(find . -path './build*' -prune -o -name '*.[ch]' -print)
fi
clang-format --dry-run --Werror $files
echo "all checks passed"
