#!/usr/bin/env python3
"""test_metrics.py: the metrics endpoint of `tailjet run --metrics-addr`, scraped by a real
Prometheus, and the alerting rules shipped in deploy/prometheus/alerts.yml.

Usage: test_metrics.py PATH/TO/tailjet. Needs Debian's `prometheus` package (prometheus and
promtool on PATH); a missing one is a FAIL, never a skip. Each case runs in its own temp dir
(tj_engine_util.Env: every process it started is killed by its pid and the dir removed, also on
failure); a failing case is reported and the others still run; exit status 1 when any failed.
TJ_CASES=name,name runs only those cases; TJ_KEEP_TMP=1 keeps the temp dirs.

Cases:
- exposition: a file of known lines (some matching the --pattern, some not) followed with
  --output file:; once every record is out, GET /metrics passes `promtool check metrics`
  (lint warnings are printed, errors fail), carries every series of the contract with its
  HELP and TYPE, and exact values: records by result, records acknowledged, bytes read (the
  file's size), lag 0, nothing in flight. Lines appended later move every counter by exactly
  as much, and no counter ever goes down between scrapes.
- health: /health is 200 "ok\\n" with --watch only; with --docker-host on a socket that does
  not exist it is 503 and names docker (tailjet_discovery_connected 0); any other path is
  404; --metrics-addr off listens nowhere; an address given and in use stops tailjet with a
  message naming it.
- stalled: an output that refuses everything (file:/dev/full) and a file larger than
  --read-ahead: /health 503 names the output; reading pauses at --read-ahead, nothing is
  acknowledged, refusals are counted, the lag is the whole file and grows with it.
- rotation: a rename rotation and a copytruncate count one each in tailjet_rotations_total and
  tailjet_truncations_total; the lag series of a deleted file goes, files_followed follows.
- checkpoint: while checkpoint writes fail, tailjet_checkpoint_age_seconds grows; it drops
  once they succeed again.
- prometheus: a real Prometheus server (loopback, scrape_interval 1s, job "tailjet", the
  alerting rules loaded) scrapes tailjet: the target is up without a scrape error, a query of
  tailjet_records_total returns the exact counts with job/instance labels, every rule is loaded
  and evaluates without error, and a healthy tailjet raises no alert. Prometheus is stopped by
  its pid.
- services_gone: two fake containers (--docker-root); once one is removed and its file read
  to its end, its tailjet_records_total series go from /metrics (series of containers that
  come and go do not pile up), the other's stay with their values, and
  tailjet_records_truncated_total keeps the removed one's truncated record.
- rules: `promtool check rules deploy/prometheus/alerts.yml` and `promtool test rules
  tests/metrics/alerts_test.yml` pass, and the file defines each alert of the runbook.
"""

import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(HERE, "..", "engine"))
from tj_engine_util import (Env, TestFailure, append, check, fail, free_port, log,
                            main_wrapper,  # noqa: E402
                            read_records, read_text, tail_text, wait_until,
                            run_cases)
from tj_fake_docker import fake_root  # noqa: E402

ALERTS = os.path.join(REPO, "deploy", "prometheus", "alerts.yml")
ALERTS_TEST = os.path.join(HERE, "alerts_test.yml")
ALERT_NAMES = ["TailjetShippingStalled", "TailjetLagGrowing", "TailjetParseFailuresHigh",
               "TailjetDeadLetters", "TailjetDiscoveryDisconnected", "TailjetDown",
               "TailjetCheckpointStale"]

# A matching line has a word, a path and a number; the others have no '/' at all, so
# %{URIPATH} cannot match anywhere in them.
PATTERN = "%{WORD:verb} %{URIPATH:url} %{INT:status:int}"

OUT_TIMEOUT = 20.0      # every record of a small file in the output
METRICS_TIMEOUT = 10.0  # the metrics catch up with what is in the output (acks, checkpoint)
HTTP_TIMEOUT = 5.0      # one HTTP request
PROM_TIMEOUT = 30.0     # Prometheus ready, and the first query result
STOP_BOUND = 10.0       # SIGTERM: tailjet exits 0 within this

# The contract's series: name -> TYPE. Every one is there in every run (with HELP and TYPE),
# except DISCOVERY: only with discovery (--docker-host / --docker-root).
SERIES = {
    "tailjet_build_info": "gauge",
    "tailjet_up_seconds": "gauge",
    "tailjet_read_bytes_total": "counter",
    "tailjet_records_total": "counter",
    "tailjet_records_truncated_total": "counter",
    "tailjet_pattern_errors_total": "counter",
    "tailjet_output_records_acked_total": "counter",
    "tailjet_output_submit_retries_total": "counter",
    "tailjet_inflight_bytes": "gauge",
    "tailjet_inflight_chunks": "gauge",
    "tailjet_files_followed": "gauge",
    "tailjet_file_lag_bytes": "gauge",
    "tailjet_checkpoint_age_seconds": "gauge",
    "tailjet_rotations_total": "counter",
    "tailjet_truncations_total": "counter",
}
DISCOVERY = {
    "tailjet_discovery_connected": "gauge",
    "tailjet_discovery_reconnects_total": "counter",
    "tailjet_discovery_containers": "gauge",
}
OPTIONAL = {"tailjet_read_lines_total": "counter"}  # "not guaranteed" by the contract


# ------------------------------------------------------------------------------------------
# HTTP and the exposition format


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body


def http_get(url, timeout=HTTP_TIMEOUT):
    """GET url: a Resp (any status), or None when nothing answers (connection refused)."""
    req = urllib.request.Request(url, headers={"User-Agent": "tailjet-test"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return Resp(r.status, r.headers, r.read().decode("utf-8", "replace"))
    except urllib.error.HTTPError as e:
        return Resp(e.code, e.headers, e.read().decode("utf-8", "replace"))
    except (urllib.error.URLError, ConnectionError, socket.timeout) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, (ConnectionRefusedError, ConnectionResetError)):
            return None
        if isinstance(reason, socket.timeout) or isinstance(e, socket.timeout):
            fail("GET %s: no answer within %.0f s" % (url, timeout))
        return None


def wait_http(url, t, timeout=10.0):
    """Waits until something answers at url (tailjet t must stay alive); returns the Resp."""
    return wait_until(lambda: http_get(url), timeout, "an answer from %s" % url,
                      procs=[t] if t else ())


LABELS_RE = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"\s*(,|\})')
NAME_RE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)")


def _unescape(v):
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), v)


class Exposition:
    """A parsed text exposition: help/type per family, samples as (name, labels, value)."""

    def __init__(self, text):
        self.text = text
        self.help = {}
        self.type = {}
        self.samples = []
        for n, ln in enumerate(text.split("\n"), 1):
            if not ln.strip():
                continue
            if ln.startswith("# HELP "):
                parts = ln.split(" ", 3)
                self.help[parts[2]] = parts[3] if len(parts) > 3 else ""
                continue
            if ln.startswith("# TYPE "):
                parts = ln.split(" ")
                check(len(parts) == 4, "/metrics line %d: bad TYPE line %r" % (n, ln))
                self.type[parts[2]] = parts[3]
                continue
            if ln.startswith("#"):
                continue
            m = NAME_RE.match(ln)
            check(m is not None, "/metrics line %d: not a sample: %r" % (n, ln))
            name, pos, labels = m.group(1), m.end(), {}
            if pos < len(ln) and ln[pos] == "{":
                pos += 1
                if ln[pos:pos + 1] == "}":
                    pos += 1
                else:
                    while True:
                        lm = LABELS_RE.match(ln, pos)
                        check(lm is not None, "/metrics line %d: bad labels: %r" % (n, ln))
                        labels[lm.group(1)] = _unescape(lm.group(2))
                        pos = lm.end()
                        if lm.group(3) == "}":
                            break
            rest = ln[pos:].split()
            check(1 <= len(rest) <= 2, "/metrics line %d: bad value: %r" % (n, ln))
            try:
                value = float(rest[0])
            except ValueError:
                fail("/metrics line %d: value %r is not a number" % (n, rest[0]))
            self.samples.append((name, labels, value))

    def get(self, name, **labels):
        """The value of the one sample name{labels} (exactly that label set), or None."""
        for n, ls, v in self.samples:
            if n == name and ls == labels:
                return v
        return None

    def all(self, name):
        return [(ls, v) for n, ls, v in self.samples if n == name]

    def value(self, name, **labels):
        v = self.get(name, **labels)
        if v is None:
            fail("/metrics has no sample %s; its samples of %s: %s" %
                 (fmt(name, labels), name, self.all(name) or "none"))
        return v

    def expect(self, name, want, **labels):
        got = self.value(name, **labels)
        check(got == want, "/metrics: %s is %s, expected %s" %
              (fmt(name, labels), num(got), num(want)))


def fmt(name, labels):
    if not labels:
        return name
    return "%s{%s}" % (name, ",".join('%s="%s"' % kv for kv in sorted(labels.items())))


def num(v):
    return "%d" % v if v == int(v) else "%g" % v


def scrape(port, t=None):
    r = http_get("http://127.0.0.1:%d/metrics" % port)
    if r is None:
        if t:
            t.check_alive("while scraping /metrics")
        fail("GET /metrics on 127.0.0.1:%d: connection refused" % port)
    check(r.status == 200, "GET /metrics: status %d, expected 200 (body %r)" %
          (r.status, r.body[:200]))
    return r


def promtool_check_metrics(text, what):
    """`promtool check metrics` on the exposition (stdin): errors fail, lint warnings print."""
    r = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    out = r.stdout.decode(errors="replace").strip()
    if r.returncode == 3:  # lint problems only: the exposition parsed
        log("  promtool check metrics (%s): warnings:\n%s" % (what, tail_text(out, 40)))
    elif r.returncode != 0:
        fail("promtool check metrics (%s): exit %d:\n%s" % (what, r.returncode, tail_text(out)))


def family_problems(ex, with_discovery):
    """What differs from the contract's list of series: each has HELP and TYPE with the
    contract's type; the discovery series only with discovery."""
    want = dict(SERIES)
    if with_discovery:
        want.update(DISCOVERY)
    problems = []
    for name, typ in sorted(want.items()):
        if name not in ex.type:
            problems.append("%s: no # TYPE" % name)
        elif ex.type[name] != typ:
            problems.append("%s: TYPE %s, the contract says %s" % (name, ex.type[name], typ))
        if not ex.help.get(name):
            problems.append("%s: no # HELP" % name)
    for name, typ in OPTIONAL.items():
        if name in ex.type and ex.type[name] != typ:
            problems.append("%s: TYPE %s, the contract says %s" % (name, ex.type[name], typ))
    if not with_discovery:
        for name in DISCOVERY:
            if ex.all(name):
                problems.append("%s: present without discovery (contract: absent)" % name)
    known = set(want) | set(OPTIONAL) | set(DISCOVERY)
    for n, _, _ in ex.samples:
        if n not in ex.type and n not in known:
            problems.append("%s: a sample without # TYPE" % n)
    return problems


def check_families(ex, with_discovery):
    problems = family_problems(ex, with_discovery)
    check(not problems, "/metrics against the contract: " + "; ".join(problems))


COUNTERS_RE = re.compile(r"_total$")


def check_monotonic(prev, cur, what, may_go=lambda name, labels: False):
    """No counter sample of prev is lower (or gone, unless may_go says it may) in cur;
    up_seconds does not go back."""
    if prev is None:
        return
    for n, ls, v in prev.samples:
        if COUNTERS_RE.search(n) or n == "tailjet_up_seconds":
            w = cur.get(n, **ls)
            if w is None and may_go(n, ls):
                continue
            check(w is not None, "%s: %s disappeared between two scrapes" % (what, fmt(n, ls)))
            check(w >= v, "%s: %s went down from %s to %s between two scrapes" %
                  (what, fmt(n, ls), num(v), num(w)))


# ------------------------------------------------------------------------------------------
# Test data and tailjet


def write_lines(path, start, n, every_unmatched=4):
    """Appends n lines; each every_unmatched-th (by global index) has no path, so the pattern
    does not match. Returns (matched, unmatched)."""
    buf, m, u = [], 0, 0
    for i in range(start, start + n):
        if i % every_unmatched == every_unmatched - 1:
            buf.append("note %d: nothing to see here, no path at all" % i)
            u += 1
        else:
            buf.append("GET /api/item/%d %d" % (i, 200 + i % 300))
            m += 1
    append(path, "\n".join(buf) + "\n")
    return m, u


def start_tailjet(env, binary, log_path, port, *extra, name="tj"):
    """tailjet following log_path with PATTERN, its endpoint on port; returns once /metrics
    answers (within 10 s)."""
    args = ["--watch", log_path, "--pattern", PATTERN,
            "--output", "file:" + env.path("out.ndjson"), "--state-dir", env.path("state"),
            "--metrics-addr", "127.0.0.1:%d" % port] + list(extra)
    t = env.tailjet(binary, args, name=name)
    wait_http("http://127.0.0.1:%d/metrics" % port, t)
    return t


def wait_output(env, t, n):
    out = env.path("out.ndjson")
    wait_until(lambda: len(read_records(out)) >= n or None, OUT_TIMEOUT,
               "%d records in %s" % (n, out), procs=[t])
    recs = read_records(out)
    check(len(recs) == n, "%d records in the output, expected %d" % (len(recs), n))
    return recs


def wait_metrics(port, t, cond, what, prev=None, may_go=lambda name, labels: False):
    """Scrapes until cond(Exposition) holds (counters checked monotonic on the way, but those
    may_go allows may disappear); fails with the last scrape's relevant samples after
    METRICS_TIMEOUT. Returns (Exposition, Resp)."""
    state = {"ex": None, "resp": None, "prev": prev}

    def once():
        r = scrape(port, t)
        ex = Exposition(r.body)
        check_monotonic(state["prev"], ex, "/metrics", may_go)
        state.update(ex=ex, resp=r, prev=ex)
        return cond(ex)

    try:
        wait_until(once, METRICS_TIMEOUT, what, procs=[t], interval=0.1)
    except TestFailure as e:
        ex = state["ex"]
        if ex is None:
            raise
        lines = [ln for ln in ex.text.split("\n") if ln and not ln.startswith("#")]
        fail("%s; last scrape:\n%s" % (e, tail_text("\n".join(lines), 40)))
    return state["ex"], state["resp"]


def settled(logf, n):
    """The condition: n records acknowledged, logf's lag 0, nothing in flight."""
    return lambda ex: (ex.get("tailjet_output_records_acked_total", output="file") == n and
                       ex.get("tailjet_file_lag_bytes", path=logf) == 0 and
                       ex.get("tailjet_inflight_bytes") == 0)


# ------------------------------------------------------------------------------------------
# Cases


def case_exposition(binary, env):
    logf = env.path("app.log")
    matched, unmatched = write_lines(logf, 0, 300)
    total = matched + unmatched
    port = free_port()
    t = start_tailjet(env, binary, logf, port)
    recs = wait_output(env, t, total)
    failures = sum(1 for r in recs if "_grokparsefailure" in (r.get("tags") or []))
    check(failures == unmatched, "the output has %d records tagged _grokparsefailure, "
          "expected %d (the test data is wrong?)" % (failures, unmatched))

    ex, r = wait_metrics(port, t, settled(logf, total),
                         "acked %d, lag 0 and nothing in flight in /metrics" % total)
    ctype = r.headers.get("Content-Type", "")
    check(ctype.startswith("text/plain") and "version=0.0.4" in ctype,
          "GET /metrics: Content-Type %r, expected text/plain; version=0.0.4" % ctype)
    promtool_check_metrics(r.body, "--watch")
    problems = family_problems(ex, with_discovery=False)
    try:
        check_exposition_values(binary, env, t, port, logf, ex, matched, unmatched)
    except TestFailure as e:
        if problems:
            fail("%s; also, against the contract: %s" % (e, "; ".join(problems)))
        raise
    check(not problems, "/metrics against the contract: " + "; ".join(problems))


def check_exposition_values(binary, env, t, port, logf, ex, matched, unmatched):
    total = matched + unmatched
    size = os.path.getsize(logf)
    version = subprocess.run([binary, "--version"], stdout=subprocess.PIPE, timeout=10,
                             ).stdout.decode().split()[-1]
    check(ex.all("tailjet_build_info") == [({"version": version}, 1.0)],
          "tailjet_build_info: %s, expected one sample {version=\"%s\"} 1" %
          (ex.all("tailjet_build_info"), version))
    ex.expect("tailjet_records_total", matched, service="file", result="matched")
    ex.expect("tailjet_records_total", unmatched, service="file", result="unmatched")
    others = [(ls, v) for ls, v in ex.all("tailjet_records_total")
              if ls.get("result") not in ("matched", "unmatched") and v != 0]
    check(not others, "tailjet_records_total: unexpected non-zero samples %s" % others)
    check(sum(v for _, v in ex.all("tailjet_records_total")) == total,
          "tailjet_records_total: the samples add up to %s, expected %d (records shipped)" %
          (num(sum(v for _, v in ex.all("tailjet_records_total"))), total))
    ex.expect("tailjet_output_records_acked_total", total, output="file")
    ex.expect("tailjet_read_bytes_total", size)
    ex.expect("tailjet_file_lag_bytes", 0, path=logf)
    check(len(ex.all("tailjet_file_lag_bytes")) == 1,
          "tailjet_file_lag_bytes: %s, expected one sample (one file followed)" %
          ex.all("tailjet_file_lag_bytes"))
    ex.expect("tailjet_files_followed", 1)
    ex.expect("tailjet_inflight_bytes", 0)
    ex.expect("tailjet_inflight_chunks", 0)
    for name in ("tailjet_records_truncated_total", "tailjet_pattern_errors_total",
                 "tailjet_output_submit_retries_total", "tailjet_rotations_total",
                 "tailjet_truncations_total"):
        if name in ex.type:  # a missing one is among the contract problems
            ex.expect(name, 0)
    if ex.get("tailjet_read_lines_total") is not None:
        ex.expect("tailjet_read_lines_total", total)
    up = ex.value("tailjet_up_seconds")
    elapsed = time.monotonic() - t.started
    check(0 < up <= elapsed + 0.5, "tailjet_up_seconds %s, but it was started %.2f s ago" %
          (num(up), elapsed))
    age = ex.value("tailjet_checkpoint_age_seconds")
    check(0 <= age < 5, "tailjet_checkpoint_age_seconds %s with --checkpoint-interval 1s" %
          num(age))

    # Lines appended while it follows: every counter moves by exactly as much.
    m2, u2 = write_lines(logf, total, 40)
    total2 = total + m2 + u2
    wait_output(env, t, total2)
    ex2, r2 = wait_metrics(port, t, settled(logf, total2),
                           "acked %d and lag 0 after appending %d lines" % (total2, m2 + u2),
                           prev=ex)
    ex2.expect("tailjet_records_total", matched + m2, service="file", result="matched")
    ex2.expect("tailjet_records_total", unmatched + u2, service="file", result="unmatched")
    ex2.expect("tailjet_read_bytes_total", os.path.getsize(logf))
    ex2.expect("tailjet_output_records_acked_total", total2, output="file")
    check(ex2.value("tailjet_up_seconds") > up, "tailjet_up_seconds did not grow")
    promtool_check_metrics(r2.body, "--watch, after appending")
    t.stop(STOP_BOUND)


def listening_inodes():
    """Inodes of the TCP sockets in state LISTEN (IPv4 and IPv6)."""
    res = set()
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(f) as fh:
                next(fh)
                for ln in fh:
                    p = ln.split()
                    if p[3] == "0A":
                        res.add(p[9])
        except OSError:
            pass
    return res


def socket_inodes(pid):
    res = set()
    d = "/proc/%d/fd" % pid
    for fd in os.listdir(d):
        try:
            m = re.match(r"socket:\[(\d+)\]", os.readlink(os.path.join(d, fd)))
        except OSError:
            continue
        if m:
            res.add(m.group(1))
    return res


def case_health(binary, env):
    # --watch only: healthy.
    logf = env.path("app.log")
    write_lines(logf, 0, 10)
    port = free_port()
    t = start_tailjet(env, binary, logf, port)
    base = "http://127.0.0.1:%d" % port
    r = wait_http(base + "/health", t)
    check(r.status == 200, "/health with --watch only: status %d, expected 200; body %r" %
          (r.status, r.body[:300]))
    check(r.body == "ok\n", "/health with --watch only: body %r, expected \"ok\\n\"" % r.body)
    for p in ("/", "/nope", "/healthz", "/metricsx", "/metrics/x", "/health/x"):
        r = http_get(base + p)
        check(r is not None and r.status == 404, "GET %s: %s, expected 404" %
              (p, "no answer" if r is None else "status %d" % r.status))
    t.stop(STOP_BOUND)

    # Docker Engine API unreachable: 503, the body names docker; /metrics still answers.
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    sock = "/nonexistent.sock"
    check(not os.path.exists(sock), "%s exists on this machine" % sock)
    t = env.tailjet(binary, ["--docker-host", "unix://" + sock,
                             "--output", "file:" + env.path("out-docker.ndjson"),
                             "--state-dir", env.path("state-docker"),
                             "--metrics-addr", "127.0.0.1:%d" % port], name="tj-docker")
    wait_http(base + "/health", t)
    r = wait_until(lambda: (lambda x: x if x and x.status == 503 else None)(
        http_get(base + "/health")), 10.0, "/health 503 with --docker-host unix://" + sock,
        procs=[t])
    check("docker" in r.body.lower(), "/health 503 body does not name docker: %r" % r.body)
    lines = r.body.rstrip("\n").split("\n")
    check(all(ln.strip() for ln in lines), "/health 503 body has empty lines: %r" % r.body)
    m = scrape(port, t)
    ex = Exposition(m.body)
    promtool_check_metrics(m.body, "--docker-host unreachable")
    check_families(ex, with_discovery=True)
    ex.expect("tailjet_discovery_connected", 0)
    t.check_alive("with the Docker Engine API unreachable (it must keep retrying)")
    t.stop(STOP_BOUND)

    # --metrics-addr off: no listening socket at all.
    t = env.tailjet(binary, ["--watch", logf, "--output", "file:" + env.path("out-off.ndjson"),
                             "--state-dir", env.path("state-off"), "--metrics-addr", "off"],
                    name="tj-off")
    out_off = env.path("out-off.ndjson")
    wait_until(lambda: len(read_records(out_off)) >= 10 or None, OUT_TIMEOUT,
               "10 records with --metrics-addr off", procs=[t])
    lst = socket_inodes(t.pid) & listening_inodes()
    check(not lst, "--metrics-addr off: tailjet has %d listening TCP socket(s)" % len(lst))
    t.stop(STOP_BOUND)

    # An address given and in use: tailjet does not run without the endpoint it was asked
    # for, and says why (not in the contract: the lead's choice; the default address in use
    # only warns).
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        busy = s.getsockname()[1]
        t = env.tailjet(binary, ["--watch", logf, "--output",
                                 "file:" + env.path("out-busy.ndjson"), "--state-dir",
                                 env.path("state-busy"), "--metrics-addr",
                                 "127.0.0.1:%d" % busy], name="tj-busy")
        rc = t.wait(10.0)
        err = t.stderr_text()
        check(rc != 0, "--metrics-addr on a port in use: exit status 0")
        check("127.0.0.1:%d" % busy in err,
              "--metrics-addr on a port in use: exit %d, stderr does not name the address:\n%s"
              % (rc, tail_text(err)))
    finally:
        s.close()


def case_stalled(binary, env):
    """An output that refuses every record (file:/dev/full, ENOSPC) and a file larger than
    --read-ahead: /health is 503 and names the output; reading pauses at --read-ahead; nothing
    is acknowledged, the refusals are counted; the lag is the whole file, and grows with it
    while reading is paused (what TailjetLagGrowing watches)."""
    logf = env.path("app.log")
    write_lines(logf, 0, 6000)  # ~150 KiB
    ahead, chunk = 64 << 10, 16 << 10
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    t = env.tailjet(binary, ["--watch", logf, "--output", "file:/dev/full", "--state-dir",
                             env.path("state"), "--metrics-addr", "127.0.0.1:%d" % port,
                             "--read-ahead", "64KiB", "--chunk-bytes", "16KiB",
                             "--shutdown-timeout", "500ms"])
    wait_http(base + "/health", t)
    r = wait_until(lambda: (lambda x: x if x and x.status == 503 else None)(
        http_get(base + "/health")), 10.0, "/health 503 with --output file:/dev/full", procs=[t])
    check("output" in r.body.lower(), "/health 503 body does not name the output: %r" % r.body)
    size = os.path.getsize(logf)
    ex, _ = wait_metrics(port, t, lambda ex: (
        (ex.get("tailjet_output_submit_retries_total") or 0) > 0 and
        (ex.get("tailjet_inflight_bytes") or 0) >= ahead - chunk),
        "refused submits counted and about --read-ahead (%d) bytes in flight" % ahead)
    ex.expect("tailjet_output_records_acked_total", 0, output="file")
    ex.expect("tailjet_file_lag_bytes", size, path=logf)
    inflight = ex.value("tailjet_inflight_bytes")
    check(inflight <= ahead + chunk, "tailjet_inflight_bytes %s with --read-ahead %d" %
          (num(inflight), ahead))
    check(ex.value("tailjet_read_bytes_total") <= ahead + chunk,
          "tailjet_read_bytes_total %s: reading did not pause at --read-ahead %d" %
          (num(ex.value("tailjet_read_bytes_total")), ahead))
    check(ex.value("tailjet_inflight_chunks") >= 1,
          "tailjet_inflight_chunks is 0 with %s bytes in flight" % num(inflight))
    promtool_check_metrics(scrape(port, t).body, "output refusing")

    # The file grows while reading is paused: so does its lag (size - acknowledged offset).
    write_lines(logf, 6000, 4000)
    size2 = os.path.getsize(logf)
    wait_metrics(port, t, lambda ex: ex.get("tailjet_file_lag_bytes", path=logf) == size2,
                 "tailjet_file_lag_bytes = %d (the file grew from %d while reading is paused)"
                 % (size2, size), prev=ex)
    os.kill(t.pid, signal.SIGTERM)  # it cannot drain: exit status 1 is expected, any will do
    t.wait(STOP_BOUND)


def case_rotation(binary, env):
    """Rotation counters and the per-file lag series follow the files."""
    d = env.mkdir("logs")
    a, b = os.path.join(d, "a.log"), os.path.join(d, "b.log")
    write_lines(a, 0, 5)
    write_lines(b, 0, 5)
    port = free_port()
    args = ["--watch", os.path.join(d, "*.log"), "--pattern", PATTERN,
            "--output", "file:" + env.path("out.ndjson"), "--state-dir", env.path("state"),
            "--metrics-addr", "127.0.0.1:%d" % port, "--rotate-wait", "1s",
            "--poll-interval", "200ms"]
    t = env.tailjet(binary, args)
    wait_http("http://127.0.0.1:%d/metrics" % port, t)
    nbytes = os.path.getsize(a) + os.path.getsize(b)
    ex, _ = wait_metrics(port, t, lambda ex: ex.get("tailjet_output_records_acked_total",
                                                    output="file") == 10, "10 acked")
    ex.expect("tailjet_files_followed", 2)
    ex.expect("tailjet_rotations_total", 0)
    ex.expect("tailjet_truncations_total", 0)

    # Rename and create (the old name leaves the glob): one rotation.
    os.rename(a, a + ".1")
    write_lines(a, 5, 3)
    nbytes += os.path.getsize(a)
    ex, _ = wait_metrics(port, t, lambda ex: (
        ex.get("tailjet_output_records_acked_total", output="file") == 13 and
        ex.get("tailjet_files_followed") == 2 and ex.get("tailjet_file_lag_bytes", path=a) == 0),
        "13 acked, 2 files followed after a rename rotation (--rotate-wait 1s)", prev=ex)
    ex.expect("tailjet_rotations_total", 1)
    ex.expect("tailjet_truncations_total", 0)

    # copytruncate: one truncation; the bytes read again after it are counted.
    with open(b + ".1", "wb") as f:
        f.write(open(b, "rb").read())
    os.truncate(b, 0)
    write_lines(b, 5, 2)
    nbytes += os.path.getsize(b)
    ex, _ = wait_metrics(port, t, lambda ex: (
        ex.get("tailjet_output_records_acked_total", output="file") == 15 and
        ex.get("tailjet_file_lag_bytes", path=b) == 0), "15 acked after a copytruncate", prev=ex)
    ex.expect("tailjet_truncations_total", 1)
    ex.expect("tailjet_rotations_total", 1)
    ex.expect("tailjet_read_bytes_total", nbytes)

    # A file deleted: its lag series goes.
    os.unlink(a)
    ex, _ = wait_metrics(port, t, lambda ex: (
        ex.get("tailjet_files_followed") == 1 and
        [ls["path"] for ls, _ in ex.all("tailjet_file_lag_bytes")] == [b]),
        "1 file followed and only %s's lag after deleting %s" % (b, a), prev=ex)
    t.stop(STOP_BOUND)


def case_checkpoint(binary, env):
    """Checkpoint writes that fail (DIR/checkpoints.tmp is a directory): the age grows; it
    is small again once they succeed."""
    logf = env.path("app.log")
    write_lines(logf, 0, 10)
    port = free_port()
    t = start_tailjet(env, binary, logf, port, "--checkpoint-interval", "200ms")
    ex, _ = wait_metrics(port, t, lambda ex: (
        ex.get("tailjet_output_records_acked_total", output="file") == 10 and
        (ex.get("tailjet_checkpoint_age_seconds") or 99) < 1), "10 acked, a checkpoint written")
    blocker = env.path("state", "checkpoints.tmp")
    os.mkdir(blocker)
    write_lines(logf, 10, 5)  # something new to checkpoint
    time.sleep(2.5)
    ex = Exposition(scrape(port, t).body)
    age = ex.value("tailjet_checkpoint_age_seconds")
    check(age >= 2.0, "tailjet_checkpoint_age_seconds %s after 2.5 s of failing checkpoint "
          "writes (--checkpoint-interval 200ms), expected >= 2" % num(age))
    os.rmdir(blocker)
    wait_metrics(port, t, lambda ex: (ex.get("tailjet_checkpoint_age_seconds") or 99) < 1,
                 "tailjet_checkpoint_age_seconds < 1 once checkpoints can be written again")
    t.stop(STOP_BOUND)


class Prometheus:
    """A private Prometheus server on loopback scraping `targets` (job "tailjet") every second,
    with the alerting rules loaded. stop() sends SIGTERM to its pid (SIGKILL after 15 s); Env
    kills it by pid if the test fails first."""

    _count = 0

    def __init__(self, env, targets, rule_files=(ALERTS,)):
        Prometheus._count += 1
        tag = "prometheus-%d" % Prometheus._count
        self.env = env
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        cfg = env.path(tag + ".yml")
        with open(cfg, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "  evaluation_interval: 1s\n")
            f.write("rule_files:\n" + "".join("  - %s\n" % json.dumps(r) for r in rule_files))
            f.write("scrape_configs:\n  - job_name: tailjet\n    static_configs:\n"
                    "      - targets: [%s]\n" % ", ".join(json.dumps(t) for t in targets))
        self.log_path = env.path(tag + ".log")
        lf = open(self.log_path, "wb")
        self.proc = env.spawn(["prometheus", "--config.file=" + cfg,
                               "--storage.tsdb.path=" + env.mkdir(tag + "-data"),
                               "--web.listen-address=127.0.0.1:%d" % self.port],
                              stdin=subprocess.DEVNULL, stdout=lf, stderr=lf, cwd=env.dir)
        lf.close()
        self.pid = self.proc.pid
        self.started = time.monotonic()

    def log_tail(self):
        return tail_text(read_text(self.log_path), 15)

    def check_alive(self, what):
        rc = self.proc.poll()
        if rc is not None:
            fail("prometheus exited with status %d %s; its log:\n%s" %
                 (rc, what, self.log_tail()))

    def wait_ready(self, timeout=PROM_TIMEOUT):
        def ready():
            self.check_alive("before it was ready")
            r = http_get(self.base + "/-/ready")
            return r is not None and r.status == 200
        try:
            wait_until(ready, timeout, "prometheus ready on %s" % self.base, interval=0.2)
        except TestFailure as e:
            fail("%s; its log:\n%s" % (e, self.log_tail()))

    def api(self, path, **params):
        url = self.base + "/api/v1/" + path
        if params:
            url += "?" + urllib.parse.urlencode(params)
        r = http_get(url)
        if r is None:
            self.check_alive("while queried")
            fail("prometheus API %s: connection refused" % path)
        try:
            j = json.loads(r.body)
        except ValueError:
            fail("prometheus API %s: status %d, not JSON: %r" % (path, r.status, r.body[:300]))
        check(r.status == 200 and j.get("status") == "success",
              "prometheus API %s: status %d: %s" % (path, r.status, r.body[:300]))
        return j["data"]

    def query(self, q):
        return self.api("query", query=q)["result"]

    def wait_query(self, q, timeout, procs=()):
        """Polls an instant query until it returns a non-empty result; returns the result."""
        def once():
            self.check_alive("while waiting for %s" % q)
            return self.query(q) or None
        try:
            return wait_until(once, timeout, "a result for the query %s" % q, procs=procs,
                              interval=0.25)
        except TestFailure as e:
            targets = self.api("targets").get("activeTargets", [])
            fail("%s; targets: %s; its log:\n%s" % (e, [(t.get("scrapeUrl"), t.get("health"),
                                                         t.get("lastError")) for t in targets],
                                                    self.log_tail()))

    def stop(self, bound=15.0):
        if self.proc.poll() is not None:
            fail("prometheus (pid %d) had already exited with status %d; its log:\n%s" %
                 (self.pid, self.proc.returncode, self.log_tail()))
        os.kill(self.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=bound)
        except subprocess.TimeoutExpired:
            os.kill(self.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
            fail("prometheus (pid %d) did not exit within %.0f s of SIGTERM (killed)" %
                 (self.pid, bound))
        if rc != 0:
            log("  warning: prometheus exited with status %d after SIGTERM" % rc)
        return rc


def rfc3339(ts):
    """Prometheus's RFC 3339 time (nanoseconds, Z or an offset) as Unix seconds; 0 if none."""
    if not ts:
        return 0.0
    m = re.match(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", ts)
    check(m is not None, "prometheus API: time %r is not RFC 3339" % ts)
    tz = "+00:00" if m.group(3) == "Z" else m.group(3)
    base = datetime.datetime.fromisoformat(m.group(1) + tz).timestamp()
    return base + (float("0" + m.group(2)) if m.group(2) else 0.0)


def case_prometheus(binary, env):
    logf = env.path("app.log")
    matched, unmatched = write_lines(logf, 0, 40)
    port = free_port()
    target = "127.0.0.1:%d" % port
    t = start_tailjet(env, binary, logf, port)
    wait_output(env, t, matched + unmatched)
    wait_metrics(port, t, lambda ex: ex.get("tailjet_output_records_acked_total", output="file")
                 == matched + unmatched, "acked %d in /metrics" % (matched + unmatched))

    prom = Prometheus(env, [target])
    prom.wait_ready()
    res = prom.wait_query("tailjet_records_total", PROM_TIMEOUT - (time.monotonic() -
                                                                   prom.started), procs=[t])
    log("  prometheus: first result %.1f s after its start" % (time.monotonic() - prom.started))
    got = {}
    for s in res:
        m = s["metric"]
        check(m.get("job") == "tailjet" and m.get("instance") == target,
              "tailjet_records_total in Prometheus: labels %s, expected job=\"tailjet\", "
              "instance=\"%s\"" % (m, target))
        check(m.get("service") == "file", "tailjet_records_total: service %r, expected file" %
              m.get("service"))
        got[m.get("result")] = float(s["value"][1])
    check(got.get("matched") == matched and got.get("unmatched") == unmatched,
          "tailjet_records_total in Prometheus: %s, expected matched %d, unmatched %d" %
          (got, matched, unmatched))

    up = prom.query('up{job="tailjet"}')
    check(len(up) == 1 and up[0]["value"][1] == "1", "up{job=\"tailjet\"}: %s, expected 1" % up)
    targets = prom.api("targets")["activeTargets"]
    check(len(targets) == 1 and targets[0]["health"] == "up" and not targets[0]["lastError"],
          "prometheus target: %s" % [(x["scrapeUrl"], x["health"], x["lastError"])
                                     for x in targets])
    for q, want in (('tailjet_output_records_acked_total{output="file"}', matched + unmatched),
                    ("tailjet_read_bytes_total", os.path.getsize(logf)),
                    ('tailjet_file_lag_bytes{path="%s"}' % logf, 0)):
        r = prom.query(q)
        check(len(r) == 1 and float(r[0]["value"][1]) == want,
              "%s in Prometheus: %s, expected %d" % (q, [x["value"][1] for x in r], want))

    # The alerting rules: loaded, evaluated against the real series (after they arrived: an
    # evaluation over nothing cannot fail) without error, all quiet.
    data_at = time.time()

    def rules_evaluated():
        groups = prom.api("rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if not rules or any(r.get("health") == "unknown" or
                            rfc3339(r.get("lastEvaluation")) <= data_at + 0.1 for r in rules):
            return None
        return rules
    rules = wait_until(rules_evaluated, 10.0, "every rule evaluated after the first scrape",
                       procs=[t], interval=0.2)
    names = sorted(r["name"] for r in rules if r["type"] == "alerting")
    check(names == sorted(ALERT_NAMES), "alerting rules loaded: %s, expected %s" %
          (names, sorted(ALERT_NAMES)))
    for r in rules:
        check(r.get("health") == "ok", "rule %s: health %s: %s" %
              (r["name"], r.get("health"), r.get("lastError")))
        check(r["labels"].get("severity") in ("warning", "critical"),
              "rule %s: severity %r" % (r["name"], r["labels"].get("severity")))
        ann = r.get("annotations", {})
        check(ann.get("summary") and ann.get("description"),
              "rule %s: annotations %s, expected summary and description" % (r["name"], ann))
    alerts = prom.api("alerts")["alerts"]
    check(not alerts, "alerts on a healthy tailjet: %s" %
          [(a["labels"].get("alertname"), a["state"]) for a in alerts])

    prom.stop()
    t.stop(STOP_BOUND)


def run_promtool(args, what):
    r = subprocess.run(["promtool"] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=120, cwd=REPO)
    out = r.stdout.decode(errors="replace")
    check(r.returncode == 0 and "SUCCESS" in out,
          "promtool %s (%s): exit %d:\n%s" % (" ".join(args), what, r.returncode,
                                              tail_text(out, 60)))
    return out


def case_rules(binary, env):
    out = run_promtool(["check", "rules", ALERTS], "the alerting rules")
    m = re.search(r"SUCCESS: (\d+) rules found", out)
    check(m and int(m.group(1)) == len(ALERT_NAMES),
          "promtool check rules: %s, expected %d rules" % (out.strip(), len(ALERT_NAMES)))
    names = re.findall(r"^\s*-\s*alert:\s*(\w+)\s*$", read_text(ALERTS), re.M)
    check(sorted(names) == sorted(ALERT_NAMES),
          "%s defines %s, expected %s" % (ALERTS, sorted(names), sorted(ALERT_NAMES)))
    tested = set(re.findall(r"alertname:\s*(\w+)", read_text(ALERTS_TEST)))
    check(tested >= set(ALERT_NAMES), "alerts_test.yml tests no alert %s" %
          sorted(set(ALERT_NAMES) - tested))
    run_promtool(["test", "rules", ALERTS_TEST], "unit tests of the alerting rules")


def case_services_gone(binary, env):
    root, (keep, gone) = fake_root(env, ("keep", {}), ("gone", {}))
    keep.line_bytes = gone.line_bytes = 40
    keep.write(5)
    gone.write(3)
    gone.write(1, text=lambda seq: "x" * 200)  # longer than --max-line-bytes: _truncated
    port = free_port()
    t = env.tailjet(binary, ["--docker-root", root, "--output", "file:" + env.path("out.ndjson"),
                             "--state-dir", env.path("state"), "--poll-interval", "200ms",
                             "--max-line-bytes", "100", "--metrics-addr", "127.0.0.1:%d" % port],
                    name="tj")
    wait_http("http://127.0.0.1:%d/metrics" % port, t)

    def counts(ex, name):
        return ex.get("tailjet_records_total", service=name, result="unparsed")
    ex, _ = wait_metrics(port, t, lambda ex: counts(ex, "keep") == 5 and counts(ex, "gone") == 4,
                         "records of keep (5) and gone (4) counted")
    ex.expect("tailjet_records_truncated_total", 1)
    shutil.rmtree(os.path.dirname(gone.log))  # `docker rm`: its config and log go

    def went(ex):
        return not [ls for ls, _ in ex.all("tailjet_records_total") if ls.get("service") == "gone"]
    ex, r = wait_metrics(port, t, went, "the series of the removed container gone", prev=ex,
                         may_go=lambda n, ls: ls.get("service") == "gone")
    check(counts(ex, "keep") == 5, "keep's records: %s, expected 5" % counts(ex, "keep"))
    ex.expect("tailjet_records_truncated_total", 1)
    promtool_check_metrics(r.body, "after a container went")
    keep.write(2)
    wait_metrics(port, t, lambda ex: counts(ex, "keep") == 7, "keep's 2 new records counted",
                 prev=ex)
    t.stop(STOP_BOUND)


CASES = [case_exposition, case_health, case_stalled, case_rotation, case_checkpoint,
         case_prometheus, case_services_gone, case_rules]


def main(binary):
    for tool in ("prometheus", "promtool"):
        if not any(os.access(os.path.join(d, tool), os.X_OK)
                   for d in os.environ.get("PATH", "").split(os.pathsep)):
            fail("%s is not on PATH: install Debian's prometheus package (scripts/setup.sh)"
                 % tool)
    run_cases(CASES, "metrics-", lambda case, env: case(binary, env), width=12)

if __name__ == "__main__":
    main_wrapper(main)
