#!/usr/bin/env python3
"""test_labels_worker.py: Swarm service labels on a worker node, on a real two-node swarm.

Usage: test_labels_worker.py PATH/TO/tailjet. Two private engines (tj_docker.Dockerd): "m"
inits a swarm, "w" joins it as a worker on 127.0.0.2. A global service runs one task on each.
Two tailjets run as host processes: M against m's socket (a manager: it serves the label table
on its --metrics-addr), W against w's socket with --label-source pointing at M. Both share a
token file. The cases run in order, on the same swarm, and each builds on the one before:

  logstash_labels    (after worker_parsed) three more global services: logEcs=disabled with
                     %{COMBINEDAPACHELOG} gives Logstash's legacy fields (clientip, verb,
                     response, ...) on both nodes; logPatternDefinitions (NAME REGEX lines)
                     defines the pattern its logPattern uses, on both nodes; a definition that
                     does not compile is reported naming logPatternDefinitions, and the
                     service's lines ship tagged _patternerror. The table the manager serves
                     carries logEcs, logPatternDefinitions and logTimestamp; logTimestamp
                     takes @timestamp from the Apache line (Docker's time: event.created).
  worker_parsed      W parses the worker's task with the service label's pattern, with the
                     task's full metadata; every one of its lines, the first ones included
                     (they wait for the labels, they are not shipped unparsed); the table
                     carries only log labels; a worker's tailjet does not serve a table.
  live_update        20 `service update --label-add logPattern=...` on the manager: every line
                     the worker's task writes more than GRACE after the update event is parsed
                     with the new pattern; the figure (update event -> first line parsed with
                     the new pattern, median of 20) is printed.
  manager_restart    M is killed (SIGKILL), the label changes meanwhile, M comes back: W heals
                     and parses with the new pattern; W's /metrics said it was disconnected.
  worker_cached      M is stopped, W restarts while no source answers: it says once that it
                     uses its cached table and parses with it.
  token_mismatch     a third tailjet on the worker with another token: refused, with a clear
                     message on both sides; with no table, a new task's lines wait
                     --label-wait, then ship tagged _labelsmissing and counted.
  failover           a worker given three sources, the first with nothing listening and the
                     second a worker's tailjet (which answers 503), follows the third.
  manager_demoted    the worker is promoted and the first manager demoted: a tailjet on the
                     demoted node (started while it was a manager, with --label-source) says
                     so and parses with the labels it now follows from the other's tailjet.
  tls                a manager's tailjet serving HTTPS (--tls-cert/--tls-key, a CA made with
                     openssl): a worker with --label-ca-file follows it; one without the CA
                     says the certificate is not trusted.

The engines that cannot start, or a swarm that cannot form, FAIL the test; they never skip.
"""

import calendar
import json
import os
import re
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "engine"))
from tj_engine_util import (Env, OutputTail, TestFailure, check, fail, free_port, log,  # noqa: E402
                            main_wrapper, tail_text, wait_until)
from tj_docker import IMAGE, Dockerd, DockerError  # noqa: E402

SVC = "tjlog"
PATS = ["%{WORD:word} %{INT:n:int}", "%{WORD:w2} %{INT:m:int}", "%{NOTSPACE:w3} %{INT:k:int}"]
FIELDS = [("word", "n"), ("w2", "m"), ("w3", "k")]
TICK = re.compile(r"tick (\d+)")
APPEAR = 30.0
GRACE_NS = 10**9      # the bound: lines written later than this use the new pattern
UPDATES = 20
TOKEN = "tj-test-token-5b1e"


def rfc3339_ns(s):
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", s)
    if not m:
        fail("not an RFC 3339 UTC time: %r" % s)
    secs = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    frac = (m.group(2) or "0")[:9].ljust(9, "0")
    return int(secs) * 10**9 + int(frac)


def http_get(url, token=None, timeout=10):
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except (urllib.error.URLError, OSError) as e:
        return 0, str(e)


class Out:
    def __init__(self, path):
        self.tail = OutputTail(path)
        self.records = []

    def of(self, cid):
        self.records += self.tail.poll_all()
        return [r for r in self.records if r.get("container", {}).get("id") == cid]


def pattern_of(r):
    """Which of PATS parsed record r: 0, 1, 2, or None (unparsed)."""
    for i, (a, b) in enumerate(FIELDS):
        if a in r and b in r:
            return i
    return None


class World:
    """The two engines, the service, the two tailjets and their files."""

    def __init__(self, env, binary):
        self.env, self.binary = env, binary
        self.m = self.w = None
        self.token = env.path("token")
        with open(self.token, "w") as f:
            f.write(TOKEN + "\n")
        self.pm, self.pw = free_port(), free_port()
        self.M = self.W = None
        self.label = 0  # index in PATS of the service's current pattern

    def start_engines(self):
        t0 = time.monotonic()
        self.m = Dockerd("m")
        self.w = Dockerd("w")
        self.m.swarm_init()
        self.w.swarm_join(self.m)
        nodes = self.m.docker("node", "ls", "--format", "{{.Hostname}} {{.ManagerStatus}}")
        log("    swarm of 2 nodes in %.1f s: %s" % (time.monotonic() - t0, nodes.replace("\n", "; ")))
        info = json.loads(self.w.docker("info", "--format", "{{json .Swarm}}"))
        check(info.get("LocalNodeState") == "active" and not info.get("ControlAvailable"),
              "the second engine is not an active worker: %s" % info)

    def start_manager_tj(self):
        args = ["--docker-host", self.m.host, "--output", "file:" + self.env.path("m.ndjson"),
                "--state-dir", self.env.path("mstate"), "--metrics-addr",
                "127.0.0.1:%d" % self.pm, "--label-token-file", self.token]
        self.M = self.env.tailjet(self.binary, args, name="manager")
        wait_until(lambda: http_get(self.url_m("/health"))[0] == 200, 20,
                   "the manager tailjet's /health to answer 200", procs=[self.M])

    def start_worker_tj(self, name="worker", token=None, port=None, state="wstate", out="w.ndjson"):
        args = ["--docker-host", self.w.host, "--output", "file:" + self.env.path(out),
                "--state-dir", self.env.path(state), "--metrics-addr",
                "127.0.0.1:%d" % (port or self.pw), "--label-source",
                "http://127.0.0.1:%d" % self.pm, "--label-token-file", token or self.token]
        return self.env.tailjet(self.binary, args, name=name)

    def url_m(self, path):
        return "http://127.0.0.1:%d%s" % (self.pm, path)

    def url_w(self, path, port=None):
        return "http://127.0.0.1:%d%s" % (port or self.pw, path)

    def task_container(self, engine):
        node = json.loads(engine.docker("info", "--format", "{{json .Swarm.NodeID}}"))

        def find():
            for t in self.m.service_tasks(SVC):
                if t["node"] == node and t["state"] == "running" and t["container"]:
                    return t["container"]
            return None
        return wait_until(find, 90, "a running task of %s on node %s" % (SVC, node[:12]))

    def task_of(self, engine, service):
        node = json.loads(engine.docker("info", "--format", "{{json .Swarm.NodeID}}"))

        def find():
            for t in self.m.service_tasks(service):
                if t["node"] == node and t["state"] == "running" and t["container"]:
                    return t["container"]
            return None
        return wait_until(find, 90, "a running task of %s on node %s" % (service, node[:12]))

    def set_label(self, i):
        self.m.docker("service", "update", "--detach", "--label-add", "logPattern=" + PATS[i], SVC)
        self.label = i

    def metric(self, port, name):
        st, text = http_get(self.url_w("/metrics", port))
        if st != 200:
            return None  # not listening yet, or gone: the caller's wait or check says what
        for ln in text.splitlines():
            if ln.startswith(name + " ") or ln.startswith(name + "{"):
                return ln
        return None


def check_parsed(r, i, cid, what):
    e = TICK.fullmatch(r.get("message", ""))
    check(e, "%s: unexpected message %r" % (what, r.get("message")))
    a, b = FIELDS[i]
    check(r.get(a) == "tick" and r.get(b) == int(e.group(1)),
          "%s: record not parsed with pattern %r: %s" % (what, PATS[i], json.dumps(r)[:600]))
    check("tags" not in r, "%s: tagged %s" % (what, r.get("tags")))


# ------------------------------------------------------------------------------------------


def case_worker_parsed(wd):
    wd.W = wd.start_worker_tj()
    wait_until(lambda: "tailjet_label_source_connected 1" in http_get(wd.url_w("/metrics"))[1],
               20, "the worker tailjet to report tailjet_label_source_connected 1",
               procs=[wd.W, wd.M])
    wd.m.docker("service", "create", "--detach", "--name", SVC, "--mode", "global",
                "--label", "logPattern=" + PATS[0], "--label", "secretLabel=do-not-publish",
                "--env", "SECRET_ENV=hush", IMAGE, "sh", "-c",
                "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.05; done")
    sid = json.loads(wd.m.docker("service", "inspect", SVC))[0]["ID"]
    wd.sid = sid
    wd.cw = wd.task_container(wd.w)
    wd.cm = wd.task_container(wd.m)
    wd.wout = Out(wd.env.path("w.ndjson"))
    mout = Out(wd.env.path("m.ndjson"))
    wait_until(lambda: len(wd.wout.of(wd.cw)) >= 20, APPEAR,
               "20 records of the worker's task in the worker tailjet's output",
               procs=[wd.W, wd.M])
    wait_until(lambda: len(mout.of(wd.cm)) >= 5, APPEAR,
               "5 records of the manager's task in the manager tailjet's output", procs=[wd.M])
    ins = json.loads(wd.w.docker("inspect", wd.cw))[0]
    check("logPattern" not in ins["Config"]["Labels"],
          "the engine copied the service label onto the worker's task container")
    recs = wd.wout.of(wd.cw)
    for k, r in enumerate(recs):
        check_parsed(r, 0, wd.cw, "worker task record %d" % k)
        check(r.get("service") == {"name": SVC, "id": sid},
              "service metadata: %s" % r.get("service"))
        c = r.get("container", {})
        check(c.get("id") == wd.cw and c.get("name") == ins["Name"].lstrip("/") and
              c.get("image", {}).get("name") == IMAGE, "container metadata: %s" % c)
        check(r.get("log", {}).get("file", {}).get("path") == ins["LogPath"],
              "log.file.path: %s" % r.get("log"))
    first = min(int(TICK.fullmatch(r["message"]).group(1)) for r in recs)
    check(first == 1, "the worker task's first line (tick 1) is missing: first is tick %d" % first)
    for r in mout.of(wd.cm):
        check_parsed(r, 0, wd.cm, "manager task record")
    # What the manager serves: only log labels, with a token.
    st, body = http_get(wd.url_m("/v1/services"), TOKEN)
    check(st == 200, "manager /v1/services with the token: %d %s" % (st, body[:200]))
    table = json.loads(body)
    svc = [s for s in table["services"] if s["id"] == sid]
    check(svc and svc[0]["name"] == SVC and svc[0]["labels"] == {"logPattern": PATS[0]},
          "the table's entry for %s: %s" % (SVC, svc))
    check("do-not-publish" not in body and "hush" not in body,
          "the table leaks a non-log label or the env: %s" % body[:400])
    st, body = http_get(wd.url_m("/v1/services"))
    check(st == 401, "manager /v1/services without a token answered %d" % st)
    st, body = http_get(wd.url_w("/v1/services"), TOKEN)
    check(st == 503 and "not a Swarm manager" in body,
          "a worker's /v1/services answered %d %s" % (st, body[:200]))
    # Long poll: an unchanged version waits, then 304.
    t0 = time.monotonic()
    st, _ = http_get(wd.url_m("/v1/services?version=%s&wait=1" % table["version"]), TOKEN)
    check(st == 304 and time.monotonic() - t0 >= 0.9,
          "long poll on the current version: %d after %.2f s" % (st, time.monotonic() - t0))
    health = http_get(wd.url_w("/health"))
    check(health[0] == 200 and "label source: connected" in health[1],
          "worker /health: %s" % (health,))
    log("    worker task: %d records, all parsed; table version %s" % (len(recs), table["version"]))


APACHE = ('10.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 '
          '"http://www.example.com/start.html" "Mozilla/4.08"')
TS = "timestamp dd/MMM/yyyy:HH:mm:ss Z"
DEFS = "TICKWORD tick\nTICKLINE %{TICKWORD:word} #%{INT:n:int}"


def case_logstash_labels(wd):
    loop = "while true; do echo %s; sleep 0.1; done"
    wd.m.docker("service", "create", "--detach", "--name", "tjlegacy", "--mode", "global",
                "--label", "logPattern=%{COMBINEDAPACHELOG}", "--label", "logEcs=disabled",
                "--label", "logTimestamp=" + TS, IMAGE, "sh", "-c", loop % ("'" + APACHE + "'"))
    wd.m.docker("service", "create", "--detach", "--name", "tjdefs", "--mode", "global",
                "--label", "logPattern=%{TICKLINE}", "--label", "logPatternDefinitions=" + DEFS,
                IMAGE, "sh", "-c", "i=0; while true; do i=$((i+1)); echo tick \\#$i; sleep 0.1; done")
    wd.m.docker("service", "create", "--detach", "--name", "tjbaddefs", "--mode", "global",
                "--label", "logPattern=%{BROKEN}", "--label", "logPatternDefinitions=BROKEN a(b",
                IMAGE, "sh", "-c", "while true; do echo ab; sleep 0.2; done")
    mout, wout = Out(wd.env.path("m.ndjson")), wd.wout
    for engine, out, who, procs in ((wd.m, mout, "manager", [wd.M]),
                                    (wd.w, wout, "worker", [wd.W, wd.M])):
        legacy, defs = wd.task_of(engine, "tjlegacy"), wd.task_of(engine, "tjdefs")
        bad = wd.task_of(engine, "tjbaddefs")
        wait_until(lambda: len(out.of(legacy)) >= 3 and len(out.of(defs)) >= 3 and
                   len(out.of(bad)) >= 2, APPEAR,
                   "records of the three services' tasks on the %s" % who, procs=procs)
        for r in out.of(legacy):
            want = {"clientip": "10.0.0.1", "ident": "-", "auth": "frank", "verb": "GET",
                    "request": "/apache_pb.gif", "httpversion": "1.0", "response": "200",
                    "bytes": "2326", "timestamp": "10/Oct/2000:13:55:36 -0700",
                    "referrer": '"http://www.example.com/start.html"', "agent": '"Mozilla/4.08"'}
            got = {k: r.get(k) for k in want}
            check(r.get("@timestamp") == "2000-10-10T20:55:36Z" and
                  r.get("event", {}).get("created", "").startswith("20"),
                  "%s: logTimestamp did not set @timestamp from the line (json-file time in "
                  "event.created): %s" % (who, json.dumps(r)[:700]))
            check(got == want and "source" not in r and "http" not in r and "tags" not in r,
                  "%s: logEcs=disabled record is not Logstash's legacy one: %s"
                  % (who, json.dumps(r)[:700]))
        for r in out.of(defs):
            m = re.fullmatch(r"tick #(\d+)", r.get("message", ""))
            check(m and r.get("word") == "tick" and r.get("n") == int(m.group(1)) and
                  "tags" not in r, "%s: logPatternDefinitions record: %s" % (who, json.dumps(r)[:500]))
        for r in out.of(bad):
            check("_patternerror" in r.get("tags", []),
                  "%s: a service whose definitions do not compile: %s" % (who, json.dumps(r)[:400]))
    for t, who in ((wd.M, "manager"), (wd.W, "worker")):
        err = t.stderr_text()
        check(re.search(r"service tjbaddefs.*label \(service\) logPatternDefinitions does not "
                        r"compile: BROKEN: .*missing closing parenthesis", err) or
              re.search(r"service tjbaddefs.*label logPatternDefinitions does not compile: "
                        r"BROKEN: .*missing closing parenthesis", err),
              "the %s tailjet did not report the bad logPatternDefinitions: %s"
              % (who, tail_text(err, 40)))
    st, body = http_get(wd.url_m("/v1/services"), TOKEN)
    table = {s["name"]: s["labels"] for s in json.loads(body)["services"]}
    check(table.get("tjlegacy") == {"logPattern": "%{COMBINEDAPACHELOG}", "logEcs": "disabled",
                                    "logTimestamp": TS} and
          table.get("tjdefs") == {"logPattern": "%{TICKLINE}", "logPatternDefinitions": DEFS},
          "the label table does not carry logEcs / logPatternDefinitions: %s" % table)
    for svc in ("tjlegacy", "tjdefs", "tjbaddefs"):
        wd.m.docker("service", "rm", svc)
    log("    legacy names, service definitions and their error on both nodes")


def wait_pattern(wd, out, cid, i, after_ns, what, procs):
    """Waits for a record of cid parsed with PATS[i] written after after_ns; returns it."""
    def find():
        for r in out.of(cid):
            if pattern_of(r) == i and rfc3339_ns(r["@timestamp"]) > after_ns:
                return r
        return None
    return wait_until(find, APPEAR, what, procs=procs)


def case_live_update(wd):
    lat = []
    marks = []  # (event ns, pattern index)
    for k in range(UPDATES):
        i = 1 if wd.label != 1 else 0
        t_wall = time.time()
        wd.set_label(i)
        evs = [e for e in wd.m.events(t_wall - 1, time.time() + 0.5,
                                      ("type=service", "event=update"))
               if e.get("Actor", {}).get("ID") == wd.sid]
        check(evs, "no service update event for update %d" % k)
        ev_ns = int(evs[-1]["timeNano"])
        r = wait_pattern(wd, wd.wout, wd.cw, i, ev_ns, "a worker record parsed with pattern %d "
                         "after update %d" % (i, k), [wd.W, wd.M])
        lat.append((rfc3339_ns(r["@timestamp"]) - ev_ns) / 1e9)
        marks.append((ev_ns, i))
        time.sleep(1.2)  # lines with this pattern, past the grace
    time.sleep(1.0)
    recs = sorted(wd.wout.of(wd.cw), key=lambda r: r["log"]["offset"])
    wrong = []
    for r in recs:
        ns = rfc3339_ns(r["@timestamp"])
        past = [i for ev, i in marks if ev + GRACE_NS < ns]
        recent = [ev for ev, _ in marks if ns - GRACE_NS <= ev <= ns]
        if past and not recent and pattern_of(r) != past[-1]:
            wrong.append((r["message"], pattern_of(r), past[-1]))
    check(not wrong, "%d lines written more than %.0f ms after an update were not parsed with "
          "its pattern (message, got, wanted): %s" % (len(wrong), GRACE_NS / 1e6, wrong[:5]))
    lat.sort()
    log("    figure: service update event -> first worker line parsed with the new pattern: "
        "median %.3f s, min %.3f s, max %.3f s over %d updates (each line written every 50 ms)"
        % (statistics.median(lat), lat[0], lat[-1], len(lat)))


def case_manager_restart(wd):
    wd.M.proc.kill()
    wd.M.proc.wait(10)
    wait_until(lambda: (wd.metric(wd.pw, "tailjet_label_source_connected") or "").endswith(" 0"),
               20, "the worker to report tailjet_label_source_connected 0 once the manager's "
               "tailjet is gone", procs=[wd.W])
    st, health = http_get(wd.url_w("/health"))
    check(st == 200 and "not connected" in health and "last received table" in health,
          "worker /health while the source is down: %d %r" % (st, health))
    i = 2
    t_wall = time.time()
    wd.set_label(i)
    time.sleep(1.0)
    recent = [r for r in wd.wout.of(wd.cw) if rfc3339_ns(r["@timestamp"]) > t_wall * 1e9 + 5e8]
    check(recent and all(pattern_of(r) != i for r in recent),
          "while no source answers, the worker cannot know the new pattern, yet: %s" %
          [pattern_of(r) for r in recent][:10])
    t0 = time.monotonic()
    wd.start_manager_tj()
    r = wait_pattern(wd, wd.wout, wd.cw, i, int(time.time() * 1e9), "a worker record parsed with "
                     "the pattern set while the manager's tailjet was down", [wd.W, wd.M])
    log("    healed: the worker parses with the new pattern %.2f s after the manager's tailjet "
        "was started again" % (time.monotonic() - t0))
    check("answers again" in wd.W.stderr_text(), "the worker did not say its source answers again")


def case_worker_cached(wd):
    wd.M.stop()
    wd.W.stop()
    i = wd.label
    t_restart = time.time()
    wd.W = wd.start_worker_tj(name="worker-cached")
    r = wait_pattern(wd, wd.wout, wd.cw, i, int(t_restart * 1e9), "a record parsed with the "
                     "cached table's pattern after the worker restarted with no source",
                     [wd.W])
    time.sleep(3.0)
    err = wd.W.stderr_text()
    check(err.count("loaded the last table") == 1,
          "the worker did not say exactly once that it loaded its cached table:\n%s" %
          tail_text(err))
    check(err.count("none answers") == 1 and "cached" in err,
          "the worker did not say exactly once that no source answers and it uses the cached "
          "table:\n%s" % tail_text(err))
    later = [x for x in wd.wout.of(wd.cw) if rfc3339_ns(x["@timestamp"]) > t_restart * 1e9]
    bad = [x["message"] for x in later if pattern_of(x) != i]
    check(not bad, "lines after the restart not parsed with the cached pattern: %s" % bad[:5])
    info = wd.metric(wd.pw, "tailjet_label_source_table_info")
    check(info and 'cached="true"' in info, "metrics do not say the table is cached: %s" % info)
    log("    restarted worker parses with the cached table (%d records since)" % len(later))


def case_token_mismatch(wd):
    wd.start_manager_tj()
    bad_tok = wd.env.path("bad-token")
    with open(bad_tok, "w") as f:
        f.write("not-the-token\n")
    port = free_port()
    X = wd.start_worker_tj(name="worker-badtoken", token=bad_tok, port=port, state="xstate",
                           out="x.ndjson")
    wait_until(lambda: "refused our token" in X.stderr_text(), 20,
               "the worker with the wrong token to say the manager refused it", procs=[X, wd.M])
    wait_until(lambda: "refused a request from 127.0.0.1: wrong token" in wd.M.stderr_text(), 20,
               "the manager to log the refused request", procs=[X, wd.M])
    st, body = http_get(wd.url_w("/health", port))
    check(st == 503 and "no label table" in body, "bad-token worker /health: %d %r" % (st, body))
    # Its tasks' lines: they wait --label-wait (5 s), then ship unparsed, tagged and counted.
    out = Out(wd.env.path("x.ndjson"))
    recs = wait_until(lambda: out.of(wd.cw), APPEAR, "the bad-token worker's records", procs=[X])
    check(all("_labelsmissing" in r.get("tags", []) and pattern_of(r) is None for r in recs),
          "records without labels are not tagged _labelsmissing: %s" % json.dumps(recs[0])[:400])
    line = wd.metric(port, "tailjet_label_wait_timeouts_total")
    check(line and int(line.split()[-1]) >= 1, "wait timeouts not counted: %s" % line)
    X.stop()


def case_failover(wd):
    port = free_port()
    dead = "http://127.0.0.1:%d" % free_port()
    srcs = ",".join([dead, "http://127.0.0.1:%d" % wd.pw, "http://127.0.0.1:%d" % wd.pm])
    Y = wd.env.tailjet(wd.binary, [
        "--docker-host", wd.w.host, "--output", "file:" + wd.env.path("y.ndjson"),
        "--state-dir", wd.env.path("ystate"), "--metrics-addr", "127.0.0.1:%d" % port,
        "--label-source", srcs, "--label-token-file", wd.token], name="worker-failover")
    wait_until(lambda: (wd.metric(port, "tailjet_label_source_connected") or "").endswith(" 1"),
               20, "the worker with a dead first source to connect to the third", procs=[Y])
    info = wd.metric(port, "tailjet_label_source_table_info")
    check(info and ("127.0.0.1:%d" % wd.pm) in info, "not following the manager: %s" % info)
    out = Out(wd.env.path("y.ndjson"))
    wait_until(lambda: any(pattern_of(r) == wd.label for r in out.of(wd.cw)), APPEAR,
               "records parsed with the service's pattern after failing over", procs=[Y])
    Y.stop()


def make_certs(env):
    """A CA and a certificate for localhost / 127.0.0.1 signed by it (openssl CLI)."""
    d = env.path("pki")
    os.makedirs(d)

    def ossl(*args):
        r = subprocess.run(["openssl"] + list(args), cwd=d, capture_output=True, text=True)
        check(r.returncode == 0, "openssl %s: %s" % (args[0], r.stderr[-500:]))
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
         "-days", "2", "-subj", "/CN=tailjet test CA")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
         "-subj", "/CN=localhost")
    with open(os.path.join(d, "ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "srv.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "srv.pem", "-days", "2", "-extfile", "ext")
    return d


def case_tls(wd):
    pki = make_certs(wd.env)
    port = free_port()
    args = ["--docker-host", wd.m.host, "--output", "file:" + wd.env.path("m2.ndjson"),
            "--state-dir", wd.env.path("m2state"), "--metrics-addr", "127.0.0.1:%d" % port,
            "--label-token-file", wd.token, "--tls-cert", os.path.join(pki, "srv.pem"),
            "--tls-key", os.path.join(pki, "srv.key")]
    M2 = wd.env.tailjet(wd.binary, args, name="manager-tls")
    src = "https://localhost:%d" % port
    wport, xport = free_port(), free_port()
    good = wd.env.tailjet(wd.binary, [
        "--docker-host", wd.w.host, "--output", "file:" + wd.env.path("t.ndjson"),
        "--state-dir", wd.env.path("tstate"), "--metrics-addr", "127.0.0.1:%d" % wport,
        "--label-source", src, "--label-token-file", wd.token,
        "--label-ca-file", os.path.join(pki, "ca.pem")], name="worker-tls")
    bad = wd.env.tailjet(wd.binary, [
        "--docker-host", wd.w.host, "--output", "file:" + wd.env.path("u.ndjson"),
        "--state-dir", wd.env.path("ustate"), "--metrics-addr", "127.0.0.1:%d" % xport,
        "--label-source", src, "--label-token-file", wd.token, "--label-wait", "0s"],
        name="worker-untrusted")
    out = Out(wd.env.path("t.ndjson"))
    wait_until(lambda: any(pattern_of(r) == wd.label for r in out.of(wd.cw)), APPEAR,
               "the HTTPS worker's records parsed with the service's pattern",
               procs=[M2, good])
    line = wd.metric(wport, "tailjet_label_source_connected")
    check(line and line.endswith(" 1"), "HTTPS worker not connected: %s" % line)
    wait_until(lambda: (wd.metric(xport, "tailjet_label_source_errors_total") or " 0")
               .split()[-1] != "0", 20, "the worker without the CA to count a failed request",
               procs=[bad])
    st, body = http_get(wd.url_w("/health", xport))
    check(st == 503 and "certificate" in body.lower(),
          "the worker without the CA: /health %d %r does not name the certificate problem" %
          (st, body))
    for t in (good, bad, M2):
        t.stop()


def swarm_info(engine):
    return json.loads(engine.docker("info", "--format", "{{json .Swarm}}"))


def case_manager_demoted(wd):
    mnode, wnode = swarm_info(wd.m)["NodeID"], swarm_info(wd.w)["NodeID"]
    port = free_port()
    D = wd.env.tailjet(wd.binary, [
        "--docker-host", wd.m.host, "--output", "file:" + wd.env.path("d.ndjson"),
        "--state-dir", wd.env.path("dstate"), "--metrics-addr", "127.0.0.1:%d" % port,
        "--label-source", "http://127.0.0.1:%d" % wd.pw, "--label-token-file", wd.token],
        name="demoted")
    out = Out(wd.env.path("d.ndjson"))
    wait_until(lambda: any(pattern_of(r) == wd.label for r in out.of(wd.cm)), APPEAR,
               "the tailjet on the manager node to parse its task", procs=[D])
    wd.m.docker("node", "promote", wnode)
    wait_until(lambda: swarm_info(wd.w).get("ControlAvailable"), 60,
               "the second engine to become a manager")
    wd.w.docker("node", "demote", mnode)
    wait_until(lambda: not swarm_info(wd.m).get("ControlAvailable"), 60,
               "the first engine to stop being a manager")
    t0 = time.monotonic()
    wait_until(lambda: "no longer a Swarm manager" in D.stderr_text(), 30,
               "the tailjet on the demoted node to say it is no longer a manager", procs=[D])
    log("    demotion noticed after %.1f s" % (time.monotonic() - t0))
    i = (wd.label + 1) % len(PATS)
    after = int(time.time() * 1e9)
    wd.w.docker("service", "update", "--detach", "--label-add", "logPattern=" + PATS[i], SVC)
    wd.label = i
    wait_pattern(wd, out, wd.cm, i, after + GRACE_NS, "a record of the demoted node's task "
                 "parsed with the pattern set on the new manager", [D, wd.W])
    line = wd.metric(port, "tailjet_label_source_connected")
    check(line and line.endswith(" 1"), "the demoted node's tailjet does not follow its label "
          "source: %s" % line)
    D.stop()


CASES = [case_worker_parsed, case_logstash_labels, case_live_update, case_manager_restart, case_worker_cached,
         case_token_mismatch, case_failover, case_tls, case_manager_demoted]


def main(binary):
    os.environ.pop("DOCKER_HOST", None)
    only = os.environ.get("TJ_CASES")
    with Env("labels-worker") as env:
        wd = World(env, binary)
        try:
            try:
                wd.start_engines()
            except DockerError as e:
                fail("the two-node swarm did not start: %s" % e)
            wd.start_manager_tj()
            for case in CASES:
                name = case.__name__[len("case_"):]
                if only and name not in only.split(","):
                    continue
                c0 = time.monotonic()
                try:
                    case(wd)
                except DockerError as e:
                    raise TestFailure("%s: docker: %s" % (name, e))
                except TestFailure as e:
                    raise TestFailure("%s: %s" % (name, e))
                log("ok   %-18s %5.1f s" % (name, time.monotonic() - c0))
        finally:
            for t in env.tailjets:
                if t.alive():
                    t.proc.kill()
            for d in (wd.w, wd.m):
                if d is not None:
                    d.stop()


if __name__ == "__main__":
    main_wrapper(main)
