#!/usr/bin/env python3
"""The README's demo: `tailjet run` against a few labeled containers of a real Docker engine.

Usage: python3 scripts/demo.py PATH/TO/tailjet    (scripts/demo.sh builds it and runs this)

1. The engine. If one answers `docker version` (DOCKER_HOST, else /var/run/docker.sock), the
   demo uses it and leaves it as it was: it creates only its own containers (named
   tjdemo-<run>-*, labeled tailjet.demo=<run>), imports the busybox image bb:1 only if the
   engine lacks it, and removes what it created. Otherwise it starts a private dockerd
   (tests/docker/tj_docker.py: its own data-root, exec-root and socket under /tmp/tjdemXXXX,
   --bridge=none --iptables=false --storage-driver=vfs), says so, and stops it by pid at the end.
2. tailjet run starts first (--start-at end: lines other containers wrote before are skipped),
   then four containers are deployed; tailjet discovers them through the engine's events and
   parses each one's lines by its own labels:
     web    Apache combined access lines (and one startup warning on stderr), %{COMBINEDAPACHELOG}
     app    INFO lines and ERRORs followed by Java stack traces, a grok pattern + logMultiline
     kv     key=value lines, a grok pattern that names their fields
     plain  no labels: shipped unparsed
   Each container prints a fixed number of lines over ~3 s and then sleeps, so the counts are
   known in advance.
3. It shows 2 records per container from the output file, a per-service summary from
   /metrics (tailjet_records_total{service,result}) beside the lines each container wrote, and
   tailjet's own exit summary (after SIGTERM). Then it removes everything it started.
Exit status 0 when every figure is what the containers wrote, 1 otherwise (the reason is
printed), 2 for bad usage. Python 3 stdlib only.
"""

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "docker"))
import tj_docker  # noqa: E402

WAIT_RECORDS = 45.0   # every expected record must be counted in /metrics within this
STOP_TIMEOUT = 20.0   # tailjet must exit after SIGTERM within this
SHORT = 60            # strings longer than this are shortened on the screen

APP_PATTERN = (r"%{TIMESTAMP_ISO8601:timestamp} %{LOGLEVEL:log.level} \[%{DATA:thread}\] "
               r"%{GREEDYDATA:msg}")
APP_MULTILINE = r"^%{TIMESTAMP_ISO8601} "
# took=12ms goes to took_ms, not to ECS event.duration (which is in nanoseconds).
KV_PATTERN = (r"level=%{LOGLEVEL:log.level} user=%{USERNAME:user.name} "
              r"action=%{WORD:event.action} took=%{INT:took_ms:int}ms")

# The containers' programs (busybox sh). Each prints a fixed number of lines, then sleeps.
WEB_SH = r'''
echo "AH00558: httpd: Could not reliably determine the server's fully qualified domain name, using 172.17.0.5. Set the 'ServerName' directive globally to suppress this message" >&2
sleep 0.1
i=1
while [ $i -le 20 ]; do
  case $((i % 6)) in
    0) ip=203.0.113.7 ;; 1) ip=198.51.100.23 ;; 2) ip=192.0.2.140 ;;
    3) ip=2001:db8::1f ;; 4) ip=10.1.4.22 ;; 5) ip=203.0.113.99 ;;
  esac
  user=-; [ $((i % 4)) -eq 0 ] && user=alice
  case $((i % 7)) in
    0) req="GET / HTTP/1.1" st=200 size=5120 ;;
    1) req="GET /index.html?lang=en HTTP/1.1" st=200 size=5120 ;;
    2) req="GET /static/app.js HTTP/1.1" st=200 size=48213 ;;
    3) req="POST /api/orders HTTP/1.1" st=201 size=87 ;;
    4) req="GET /images/missing.png HTTP/1.1" st=404 size=196 ;;
    5) req="GET /api/orders/1001 HTTP/1.1" st=200 size=342 ;;
    6) req="GET /api/report?year=2026 HTTP/1.1" st=500 size=531 ;;
  esac
  case $((i % 3)) in
    0) ref=- ;; 1) ref=https://example.com/ ;; 2) ref="https://www.google.com/search?q=tailjet" ;;
  esac
  case $((i % 4)) in
    0) ua="curl/8.4.0" ;;
    1) ua="Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0" ;;
    2) ua="Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15" ;;
    3) ua="Googlebot/2.1 (+http://www.google.com/bot.html)" ;;
  esac
  printf '%s - %s [%s +0000] "%s" %s %s "%s" "%s"\n' "$ip" "$user" \
    "$(date -u +%d/%b/%Y:%H:%M:%S)" "$req" "$st" "$size" "$ref" "$ua"
  sleep 0.15
  i=$((i + 1))
done
exec sleep 3600
'''

APP_SH = r'''
ts() { printf '%s,%03d' "$(date '+%Y-%m-%d %H:%M:%S')" $(( (n * 137) % 1000 )); }
n=1
while [ $n -le 8 ]; do
  echo "$(ts) INFO [main] Handling order $((1000 + n))"
  if [ $((n % 3)) -eq 1 ]; then
    echo "$(ts) ERROR [worker-$((n % 2 + 1))] Failed to process order $((1000 + n))"
    echo "java.lang.IllegalStateException: inventory unavailable for SKU-$((40 + n))"
    printf '\tat com.example.orders.OrderService.process(OrderService.java:42)\n'
    printf '\tat com.example.orders.Worker.run(Worker.java:17)\n'
    printf '\tat java.base/java.lang.Thread.run(Thread.java:833)\n'
  fi
  sleep 0.35
  n=$((n + 1))
done
exec sleep 3600
'''

KV_SH = r'''
i=1
while [ $i -le 15 ]; do
  case $((i % 4)) in
    0) l=info u=alice a=login ;; 1) l=info u=bob a=search ;;
    2) l=warn u=carol a=upload ;; 3) l=error u=dave a=checkout ;;
  esac
  echo "level=$l user=$u action=$a took=$(( (i * 37) % 400 + 3 ))ms"
  sleep 0.2
  i=$((i + 1))
done
exec sleep 3600
'''

PLAIN_SH = r'''
i=1
while [ $i -le 10 ]; do
  echo "worker heartbeat $i: queue depth $(( (i * 3) % 7 )), cache warm"
  sleep 0.3
  i=$((i + 1))
done
exec sleep 3600
'''

# role, program, labels, what it prints, lines it writes, records tailjet makes of them,
# {result: count} expected in tailjet_records_total.
SERVICES = [
    ("web", WEB_SH, {"logPattern": "%{COMBINEDAPACHELOG}"},
     "20 Apache combined access lines, and the server's startup warning on stderr",
     21, 21, {"matched": 20, "unmatched": 1}),
    ("app", APP_SH, {"logPattern": APP_PATTERN, "logMultiline": APP_MULTILINE},
     "8 INFO lines, 3 ERRORs each followed by a 4-line Java stack trace",
     23, 11, {"matched": 11}),
    ("kv", KV_SH, {"logPattern": KV_PATTERN},
     "15 key=value lines", 15, 15, {"matched": 15}),
    ("plain", PLAIN_SH, {}, "10 plain lines, no labels", 10, 10, {"unparsed": 10}),
]
CTR_LINE = re.compile(r"\bcontainer [0-9a-f]{12}\b")
LONG_ID = re.compile(r"\b([0-9a-f]{12})[0-9a-f]{52}\b")
RESULTS = ("matched", "unmatched", "json_error", "unparsed")


class DemoError(Exception):
    pass


def say(msg=""):
    print(msg, flush=True)


def sh_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(url, timeout=3.0):
    """(status, body) or (None, error text)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")
    except (OSError, ValueError) as e:
        return None, str(e)


def _unescape(v):
    return v.replace('\\"', '"').replace("\\n", "\n").replace("\\\\", "\\")


SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def records_by_service(text):
    """tailjet_records_total from a /metrics text: {service: {result: count}}."""
    res = {}
    for ln in text.splitlines():
        m = SAMPLE.match(ln)
        if not m or m.group(1) != "tailjet_records_total":
            continue
        labels = {k: _unescape(v) for k, v in LABEL.findall(m.group(2) or "")}
        svc = res.setdefault(labels.get("service", ""), {})
        svc[labels.get("result", "")] = int(float(m.group(3)))
    return res


def short(v):
    if isinstance(v, dict):
        return {k: short(x) for k, x in v.items()}
    if isinstance(v, list):
        return [short(x) for x in v]
    if isinstance(v, str) and len(v) > SHORT:
        return v[:SHORT - 3] + "..."
    return v


def show_record(r):
    """One key per line, values compact; strings over SHORT characters shortened."""
    items = list(r.items())
    for i, (k, v) in enumerate(items):
        text = json.dumps(short(v), ensure_ascii=False, separators=(",", ":"))
        say("%s%s:%s%s" % ("{" if i == 0 else " ", json.dumps(k), text,
                           "}" if i == len(items) - 1 else ","))


def pick(recs):
    """The 2 records shown: the first two, or the first untagged and the first tagged one."""
    tagged = [r for r in recs if r.get("tags")]
    if tagged and not any(r.get("tags") for r in recs[:2]):
        return [[r for r in recs if not r.get("tags")][0], tagged[0]]
    return recs[:2]


def read_records(path):
    res = []
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return res
    for ln in data.split(b"\n"):
        if ln.strip():
            try:
                res.append(json.loads(ln))
            except ValueError:
                res.append({"_invalid_json": ln.decode("utf-8", "replace")})
    return res


def ctr_name(r):
    c = r.get("container")
    n = c.get("name") if isinstance(c, dict) else None
    return n.lstrip("/") if isinstance(n, str) else None


# ------------------------------------------------------------------------------------------
# Engines: the private one (tj_docker) or the one already running


class ExistingEngine:
    """An engine that was already running: the demo only adds and removes its own things."""

    def __init__(self, host, version):
        self.host = host
        self.version = version
        self.imported_id = None

    def cli(self, *args, timeout=60, check=True):
        env = dict(os.environ)
        env.pop("DOCKER_CONTEXT", None)
        r = subprocess.run([tj_docker.DOCKER, "-H", self.host] + list(args),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout, env=env)
        if check and r.returncode != 0:
            raise DemoError("`docker -H %s %s` failed (status %d): %s" %
                            (self.host, " ".join(args)[:200], r.returncode,
                             r.stderr.decode(errors="replace").strip()[-800:]))
        return r.stdout.decode().strip()

    def ensure_image(self, tmp):
        """Imports bb:1 unless the engine has it; returns what was done."""
        if subprocess.run([tj_docker.DOCKER, "-H", self.host, "image", "inspect",
                           tj_docker.IMAGE], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, timeout=30).returncode == 0:
            return "image %s: already on the engine, used as is (not removed)" % tj_docker.IMAGE
        bb = os.path.join(tmp, "bb")
        os.makedirs(os.path.join(bb, "bin"))
        os.makedirs(os.path.join(bb, "tmp"))
        shutil.copy2(tj_docker.BUSYBOX, os.path.join(bb, "bin", "busybox"))
        for name in tj_docker.BB_LINKS:
            os.symlink("busybox", os.path.join(bb, "bin", name))
        tar = os.path.join(tmp, "bb.tar")
        subprocess.run(["tar", "-C", bb, "-cf", tar, "."], check=True)
        self.imported_id = self.cli("import", "--change", "ENV PATH=/bin", tar,
                                    tj_docker.IMAGE, timeout=120).splitlines()[-1].strip()
        shutil.rmtree(bb, ignore_errors=True)
        os.unlink(tar)
        return "image %s: imported from %s (removed at the end)" % (tj_docker.IMAGE,
                                                                    tj_docker.BUSYBOX)

    def remove_image(self):
        """Removes bb:1 if this demo imported it and it is still that image."""
        if not self.imported_id:
            return None
        cur = subprocess.run([tj_docker.DOCKER, "-H", self.host, "image", "inspect", "--format",
                              "{{.Id}}", tj_docker.IMAGE], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, timeout=30).stdout.decode().strip()
        if cur != self.imported_id:
            return "image %s: no longer the one this demo imported; left alone" % tj_docker.IMAGE
        r = subprocess.run([tj_docker.DOCKER, "-H", self.host, "rmi", tj_docker.IMAGE],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
        if r.returncode != 0:  # in use by someone else's container since: leave it
            return "image %s: kept (%s)" % (tj_docker.IMAGE,
                                            r.stderr.decode(errors="replace").strip()[:200])
        return "removed image %s (imported by this demo)" % tj_docker.IMAGE


def probe(host):
    """The engine's version if `docker -H host version` answers, else (None, why)."""
    env = dict(os.environ)
    env.pop("DOCKER_CONTEXT", None)
    try:
        r = subprocess.run([tj_docker.DOCKER, "-H", host, "version", "--format",
                            "{{.Server.Version}} (API {{.Server.APIVersion}})"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=15, env=env)
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    if r.returncode == 0:
        return r.stdout.decode().strip(), ""
    return None, (r.stderr.decode(errors="replace").strip().splitlines() or ["?"])[-1][:200]


def find_engine():
    """(host, version) of an engine that answers, or (None, why none was used)."""
    env_host = os.environ.get("DOCKER_HOST", "").strip()
    if env_host:
        if not env_host.startswith(("unix://", "tcp://")):
            return None, "DOCKER_HOST=%s: tailjet speaks unix:// and tcp:// only" % env_host
        if os.environ.get("DOCKER_TLS_VERIFY"):
            return None, "DOCKER_HOST=%s needs TLS (DOCKER_TLS_VERIFY), which tailjet " \
                         "does not speak" % env_host
        ver, why = probe(env_host)
        if ver:
            return (env_host, ver), ""
        return None, "DOCKER_HOST=%s does not answer `docker version` (%s)" % (env_host, why)
    sock = "/var/run/docker.sock"
    if not os.path.exists(sock):
        return None, "DOCKER_HOST is not set and %s does not exist" % sock
    ver, why = probe("unix://" + sock)
    if ver:
        return ("unix://" + sock, ver), ""
    return None, "%s does not answer `docker version` (%s)" % (sock, why)


# ------------------------------------------------------------------------------------------
# The demo


class Demo:
    def __init__(self, tailjet):
        self.tailjet = tailjet
        self.run_id = secrets.token_hex(3)
        self.prefix = "tjdemo-%s-" % self.run_id
        self.tmp = None
        self.dockerd = None      # tj_docker.Dockerd when the demo started its own engine
        self.existing = None     # ExistingEngine when one was running
        self.cli = None
        self.host = None
        self.tj = None
        self.tj_stderr = None
        self.containers = []     # (role, name, id)
        self.problems = []

    # -- setup ---------------------------------------------------------------------------

    def start_engine(self):
        found, why = find_engine()
        if found:
            self.host, ver = found
            self.existing = ExistingEngine(self.host, ver)
            self.cli = self.existing.cli
            say("engine:  using the Docker engine at %s (Docker %s), left as it is: the demo "
                "adds only containers named %s* (label tailjet.demo=%s) and removes them"
                % (self.host, ver, self.prefix, self.run_id))
            say("         " + self.existing.ensure_image(self.tmp))
            return
        say("engine:  no Docker engine to use: %s." % why)
        say("         Starting a private dockerd for this demo (stopped and removed at the end):")
        t0 = time.monotonic()
        self.dockerd = tj_docker.Dockerd(name="demo")
        d = self.dockerd
        self.host = d.host
        self.cli = d.docker
        ver = d.version.split()
        say("         dockerd pid %d (containerd is its child), Docker %s, API %s, %.1f s to "
            "start" % (d.pid, ver[0], ver[-1], time.monotonic() - t0))
        say("         data-root, exec-root, socket and log under %s/" % d.dir)
        say("         flags: --iptables=false --ip-masq=false --bridge=none "
            "--storage-driver=vfs")
        say("         image %s imported from %s" % (tj_docker.IMAGE, tj_docker.BUSYBOX))

    def start_tailjet(self):
        self.out = os.path.join(self.tmp, "records.ndjson")
        state = os.path.join(self.tmp, "state")
        self.tj_log = os.path.join(self.tmp, "tailjet.stderr")
        env = dict(os.environ)
        env.pop("DOCKER_HOST", None)
        for attempt in range(3):  # the free port may be taken between probe and bind
            self.port = free_port()
            argv = [self.tailjet, "run", "--docker-host", self.host, "--output",
                    "file:" + self.out, "--state-dir", state, "--metrics-addr",
                    "127.0.0.1:%d" % self.port, "--start-at", "end"]
            if self.tj_stderr:
                self.tj_stderr.close()
            self.tj_stderr = open(self.tj_log, "wb")
            self.tj = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.DEVNULL, stderr=self.tj_stderr,
                                       env=env, start_new_session=True)
            deadline = time.monotonic() + 20
            last = ""
            while self.tj.poll() is None:
                st, body = http_get("http://127.0.0.1:%d/health" % self.port, timeout=2)
                if st == 200:
                    rel = os.path.relpath(self.tailjet)
                    argv[0] = self.tailjet if rel.startswith("..") else rel
                    say("tailjet: %s" % " ".join(a.replace(self.tmp, "TMP") for a in argv))
                    say("         pid %d, TMP=%s; /health answers 200: connected to the "
                        "engine" % (self.tj.pid, self.tmp))
                    say("         (--start-at end: what containers already there wrote before "
                        "is skipped; new ones are read from their first line)")
                    return
                last = body.strip()
                if time.monotonic() >= deadline:
                    raise DemoError("tailjet did not answer 200 on /health within 20 s (last: "
                                    "%s); its stderr:\n%s" % (last,
                                                              tj_docker._tail(self.tj_log)))
                time.sleep(0.1)
            with open(self.tj_log, errors="replace") as f:
                text = f.read()
            if "cannot listen" not in text:
                break
        raise DemoError("tailjet run exited with status %s while starting; its stderr:\n%s"
                        % (self.tj.returncode, tj_docker._tail(self.tj_log)))

    def deploy(self):
        say("containers (image %s, --network none, json-file logs), deployed after tailjet "
            "started:" % tj_docker.IMAGE)
        for role, prog, labels, what, _, _, _ in SERVICES:
            name = self.prefix + role
            args = ["run", "-d", "--name", name, "--network", "none", "--log-driver",
                    "json-file", "--label", "tailjet.demo=" + self.run_id]
            for k, v in labels.items():
                args += ["--label", "%s=%s" % (k, v)]
            args += [tj_docker.IMAGE, "sh", "-c", prog]
            cid = self.cli(*args).splitlines()[-1].strip()
            self.containers.append((role, name, cid))
            say("  %-19s %s" % (name, what))
            if labels:
                for k, v in labels.items():
                    say("  %-19s   --label %s=%s" % ("", k, sh_quote(v)))
            else:
                say("  %-19s   (no labels)" % "")
        # tailjet reads the json-file logs where the engine says they are.
        path = self.cli("inspect", "--format", "{{.LogPath}}", self.containers[0][2])
        if not os.access(path, os.R_OK):
            say("warning: %s (LogPath of %s) cannot be read here: tailjet reads the logs "
                "from this machine's disk, so the engine must run on it" % (path,
                                                                           self.containers[0][1]))

    # -- the run -------------------------------------------------------------------------

    def scrape(self):
        st, body = http_get("http://127.0.0.1:%d/metrics" % self.port)
        if st != 200:
            raise DemoError("GET /metrics: %s %s" % (st, body[:200]))
        return records_by_service(body)

    def wait_records(self):
        want = {self.prefix + role: exp for role, _, _, _, _, _, exp in SERVICES}
        total = sum(n for *_, n, _ in SERVICES)
        say()
        say("waiting while the containers write (%d lines, ~3 s) and tailjet ships them ..."
            % sum(s[4] for s in SERVICES))
        t0 = time.monotonic()
        deadline = t0 + WAIT_RECORDS
        while True:
            if self.tj.poll() is not None:
                raise DemoError("tailjet exited with status %d while running; its stderr:\n%s"
                                % (self.tj.returncode, tj_docker._tail(self.tj_log)))
            m = self.scrape()
            got = {svc: {r: m.get(svc, {}).get(r, 0) for r in RESULTS} for svc in want}
            done = all(sum(got[s].values()) >= sum(want[s].values()) for s in want)
            ours = [r for r in read_records(self.out) if (ctr_name(r) or "") in want]
            if done and len(ours) >= total:
                break
            if time.monotonic() >= deadline:
                self.problems.append("after %.0f s, /metrics counts %s and the output holds "
                                     "%d of the %d records expected" %
                                     (WAIT_RECORDS, {s[len(self.prefix):]: got[s] for s in got},
                                      len(ours), total))
                break
            time.sleep(0.25)
        say("all %d records counted after %.1f s" % (total, time.monotonic() - t0)
            if not self.problems else "gave up after %.1f s" % (time.monotonic() - t0))
        time.sleep(0.5)  # anything beyond the expected counts (duplicates) shows up too
        self.metrics = self.scrape()

    def stop_tailjet(self):
        if not self.tj or self.tj.poll() is not None:
            return
        t0 = time.monotonic()
        self.tj.send_signal(signal.SIGTERM)
        try:
            rc = self.tj.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.problems.append("tailjet did not exit within %.0f s of SIGTERM: killed"
                                 % STOP_TIMEOUT)
            self.tj.kill()
            rc = self.tj.wait()
        self.stop_secs = time.monotonic() - t0
        if rc != 0:
            self.problems.append("tailjet exited with status %d after SIGTERM" % rc)
        self.tj_rc = rc

    def report(self):
        recs = read_records(self.out)
        say()
        say("== records, 2 per container, from TMP/records.ndjson (one JSON object per line "
            "there;")
        say("   here one key per line, strings over %d characters shortened with ...)" % SHORT)
        by = {}
        for r in recs:
            by.setdefault(ctr_name(r), []).append(r)
        for role, name, _ in self.containers:
            say()
            say("-- %s" % name)
            for r in pick(by.get(name, [])):
                show_record(r)
                msg = r.get("message")
                if isinstance(msg, str) and "\n" in msg:
                    say("   (its message: %d lines joined into this one record by logMultiline)"
                        % (msg.count("\n") + 1))
                    for ln in msg.split("\n"):
                        say("      " + ln.replace("\t", "    "))
            if not by.get(name):
                say("(no records)")
        say()
        say("== per service: lines the container wrote (docker logs), and "
            "tailjet_records_total{service,result}")
        say("   from http://127.0.0.1:%d/metrics" % self.port)
        say()
        hdr = "%-19s %6s %8s %7s %7s %9s" % ("service", "lines", "records", "parsed", "failed",
                                             "unparsed")
        say(hdr)
        for role, name, cid in self.containers:
            spec = [s for s in SERVICES if s[0] == role][0]
            lines = self.count_lines(cid)
            m = {r: self.metrics.get(name, {}).get(r, 0) for r in RESULTS}
            n = sum(m.values())
            say("%-19s %6d %8d %7d %7d %9d" % (name, lines, n, m["matched"], m["unmatched"],
                                               m["unparsed"]))
            if m["json_error"]:
                say("%-19s (and %d _jsonparsefailure)" % ("", m["json_error"]))
            exp = {r: spec[6].get(r, 0) for r in RESULTS}
            if lines != spec[4]:
                self.problems.append("%s wrote %d lines, expected %d" % (name, lines, spec[4]))
            if m != exp:
                self.problems.append("%s: /metrics says %s, expected %s" % (name, m, exp))
            if len(by.get(name, [])) != spec[5]:
                self.problems.append("%s: %d records in the output, expected %d" %
                                     (name, len(by.get(name, [])), spec[5]))
            bad = [r for r in by.get(name, []) if "_invalid_json" in r]
            if bad:
                self.problems.append("%s: %d output lines are not JSON" % (name, len(bad)))
        say()
        say("parsed: the service's logPattern matched; failed: it did not "
            "(_grokparsefailure, shipped")
        say("with the tag: here the web server's startup warning); unparsed: no logPattern. "
            "The app's")
        say("stack traces joined their ERROR line (logMultiline): fewer records than lines.")

    def count_lines(self, cid):
        r = subprocess.run([tj_docker.DOCKER, "-H", self.host, "logs", cid],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30, env=self.cli_env())
        return r.stdout.count(b"\n") + r.stderr.count(b"\n")

    def cli_env(self):
        env = dict(os.environ)
        for k in ("DOCKER_HOST", "DOCKER_CONTEXT"):
            env.pop(k, None)
        return env

    def show_exit_summary(self):
        say()
        say("== tailjet's stderr (self-logs), after SIGTERM (exit status %s, %.1f s to drain)"
            % (getattr(self, "tj_rc", "?"), getattr(self, "stop_secs", 0.0)))
        try:
            with open(self.tj_log, errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            lines = []
        others = 0
        for ln in lines:
            if self.existing and self.prefix not in ln and CTR_LINE.search(ln):
                others += 1  # the engine's other containers
                continue
            say(LONG_ID.sub(r"\1...", ln.replace(self.tmp, "TMP")))
        if others:
            say("(and %d lines about the engine's other containers)" % others)

    # -- teardown ------------------------------------------------------------------------

    def cleanup(self):
        notes = []
        if self.tj is not None and self.tj.poll() is None:  # interrupted: SIGTERM, then KILL
            self.tj.send_signal(signal.SIGTERM)
            try:
                self.tj.wait(timeout=STOP_TIMEOUT)
                notes.append("tailjet (pid %d) stopped with SIGTERM" % self.tj.pid)
            except subprocess.TimeoutExpired:
                self.tj.kill()
                self.tj.wait()
                notes.append("tailjet (pid %d) killed" % self.tj.pid)
        elif self.tj is not None:
            notes.append("tailjet (pid %d) exited" % self.tj.pid)
        if self.tj_stderr:
            self.tj_stderr.close()
        if self.existing:
            ids = [c[2] for c in self.containers]
            try:  # also any container of this run that `docker run` created but did not report
                ids += self.cli("ps", "-aq", "--no-trunc", "--filter",
                                "label=tailjet.demo=" + self.run_id).split()
            except Exception as e:
                notes.append("could not list this demo's containers: %s" % e)
            ids = sorted(set(ids), key=ids.index)
            if ids:
                try:
                    self.cli("rm", "-f", *ids)
                    notes.append("removed containers %s" % ", ".join(
                        c[1] for c in self.containers) if self.containers else
                        "removed %d containers" % len(ids))
                except Exception as e:
                    notes.append("could not remove containers %s: %s" % (ids, e))
            try:
                note = self.existing.remove_image()
                if note:
                    notes.append(note)
            except Exception as e:
                notes.append("could not remove image %s: %s" % (tj_docker.IMAGE, e))
            notes.append("the engine at %s is left as it was" % self.host)
        if self.dockerd:
            d = self.dockerd
            pid = d.pid
            t0 = time.monotonic()
            d.stop()  # rm -f every container (all this demo's), SIGTERM dockerd by pid, ...
            left = d.leftover_pids()
            alive = pid and tj_docker._alive(pid)
            notes.append("removed containers %s" % ", ".join(c[1] for c in self.containers)
                         if self.containers else "no containers to remove")
            notes.append("private engine stopped in %.1f s: dockerd pid %d %s, %s %s" %
                         (time.monotonic() - t0, pid, "STILL RUNNING" if alive else "exited",
                          d.dir, "still exists" if os.path.exists(d.dir) else "removed"))
            if left or alive:
                self.problems.append("processes of the private engine left: %s" %
                                     (left or {pid: "dockerd"}))
        if self.tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
            notes.append("removed TMP (%s)" % self.tmp)
        say()
        say("== cleanup")
        for n in notes:
            say("  " + n)

    def run(self):
        t0 = time.monotonic()
        say("== tailjet run against labeled containers of a real Docker engine")
        say()
        self.tmp = tempfile.mkdtemp(prefix="tjdemo-")
        try:
            self.start_engine()
            self.start_tailjet()
            self.deploy()
            self.wait_records()
            self.stop_tailjet()
            self.report()
            self.show_exit_summary()
        except DemoError as e:
            self.problems.append(str(e))
        except tj_docker.DockerError as e:
            self.problems.append("Docker: %s" % e)
        except (OSError, subprocess.SubprocessError) as e:
            self.problems.append("%s (scripts/setup.sh installs what the demo needs)" % e)
        finally:
            # A second Ctrl-C must not leave the engine or the containers behind.
            saved = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGINT,
                                                                  signal.SIGTERM, signal.SIGHUP)}
            try:
                self.cleanup()
            finally:
                for s, h in saved.items():
                    signal.signal(s, h)
        say()
        if self.problems:
            say("demo: PROBLEM (%.0f s):" % (time.monotonic() - t0))
            for p in self.problems:
                say("  - " + p)
            return 1
        say("demo: OK: every line each container wrote is in the output, parsed by its own "
            "labels (%.0f s)" % (time.monotonic() - t0))
        return 0


def main():
    if len(sys.argv) != 2:
        print("usage: %s PATH/TO/tailjet" % sys.argv[0], file=sys.stderr)
        return 2
    tailjet = os.path.abspath(sys.argv[1])
    if not os.access(tailjet, os.X_OK):
        print("demo: %s is not an executable (build it: bash scripts/build.sh build)" % tailjet,
              file=sys.stderr)
        return 2

    def on_signal(signum, frame):
        raise KeyboardInterrupt("signal %d" % signum)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    try:
        return Demo(tailjet).run()
    except KeyboardInterrupt:
        say("demo: interrupted; what it started has been removed")
        return 130


if __name__ == "__main__":
    sys.exit(main())
