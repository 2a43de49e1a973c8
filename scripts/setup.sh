#!/usr/bin/env bash
# Installs, from Debian's packages, everything tailjet needs to build, test and benchmark.
# Idempotent: installs only what is missing. Needs root (or sudo) the first time.
set -euo pipefail

pkgs=(
  # build
  build-essential cmake pkg-config clang clang-format libclang-rt-14-dev
  # libraries
  libpcre2-dev librdkafka-dev libcjson-dev libcurl4-openssl-dev libmicrohttpd-dev
  # the Elasticsearch output: gzip bodies (libdeflate, zlib), XXH3-128 document ids
  libdeflate-dev zlib1g-dev libxxhash-dev
  # tests and benchmarks
  python3 pcre2-utils hyperfine time util-linux logrotate openssl
  # a real Prometheus server and promtool for the metrics tests
  prometheus
  # a real Docker engine for the discovery tests (started privately by the tests themselves)
  docker.io busybox-static
  # an independent Kafka client to read back what the Kafka output produced
  kcat
  # a real Apache Kafka for the `real` tests: a JDK to run it, Maven to fetch it (below)
  openjdk-17-jdk-headless maven
  # the packaging test: a Debian base image without a registry; systemd-analyze for the unit
  debootstrap systemd
  # regenerating tests/data/logstash from logstash-patterns-core's specs (tests/logstash/port_specs.rb)
  ruby
  # the /ui/ page's browser test: Debian's chromium, driven by playwright-core (npm, below)
  chromium nodejs
  # the real Elasticsearch node of the `real` tests (tests/servers/es.sh): unzip, curl
  unzip curl
)

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
# npm comes with nodejs from some sources, as a package of its own from Debian.
command -v npm >/dev/null || missing+=(npm)
# The browser test's driver (tests/ui/package-lock.json; it never downloads a browser).
npm_ci() {
  (cd "$(dirname "$0")/../tests/ui" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 \
    npm ci --no-audit --no-fund --loglevel=error)
}
# Servers the `real` tests start, fetched from Maven Central into Maven's own repository
# (~/.m2/repository) at pinned versions; a second run finds them there (tests/servers/README.md).
fetch_servers() {
  bash "$(dirname "$0")/../tests/servers/kafka.sh" fetch
  bash "$(dirname "$0")/../tests/servers/es.sh" fetch
}
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "setup: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
if [ "${#missing[@]}" -eq 0 ]; then
  echo "setup: all ${#pkgs[@]} packages already installed"
else
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
  # The tests start their own Prometheus on a free port; the package's service is not wanted here.
  if [[ " ${missing[*]} " == *" prometheus "* ]] && command -v systemctl >/dev/null &&
    [ -d /run/systemd/system ]; then
    $sudo systemctl disable --now prometheus >/dev/null 2>&1 || true
  fi
fi
npm_ci
fetch_servers
