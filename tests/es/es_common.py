"""es_common.py: what the Elasticsearch tests share (test_es.py against the strict test server,
test_es_real.py and test_es_real_413.py against real nodes): fake containers that know their
index, a tailjet run with its /metrics, the figures a run prints, the kill -9 loop, the dead-letter
file, and a real node (tests/servers/es.sh's directory: its REST API, its pid, a restart) with the
exactly-once check of what it holds.
"""

import http.client
import json
import os
import re
import signal
import subprocess
import time

from tj_engine_util import check, fail, free_port, log, tail_text, wait_until
from tj_fake_docker import Container as FakeContainer, Feeder
from tj_fake_docker import fake_root as fake_root_of

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
ES_SH = os.path.join(ROOT, "tests", "servers", "es.sh")
DELIVER = 60.0       # the default bound for every line written to be indexed and acknowledged
STOP_BOUND = 15.0    # SIGTERM at the end of a case: exit status 0 within this
ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
SEQ_RE = re.compile(r"seq=(\d{6})")
FIGURES = []         # (what, text): run_cases(..., figures=FIGURES) prints them at the end


def figure(what, text):
    FIGURES.append((what, text))
    log("    figure: %s: %s" % (what, text))


def clean_environ():
    """No credentials or output of the caller's environment reach the runs."""
    for k in ("TAILJET_ES_PASSWORD", "TAILJET_ES_API_KEY", "TAILJET_ES_USER", "TAILJET_OUTPUT"):
        os.environ.pop(k, None)


# ------------------------------------------------------------------------------------------
# Fake containers (--docker-root) and the lines they write


class Container(FakeContainer):
    """A fake container that knows which index each of its lines belongs in."""

    def __init__(self, root, name, labels=None, line_bytes=200):
        super().__init__(root, name, labels, line_bytes)
        self.default = "logs-%{service}-%Y.%m.%d"

    def index_of(self, seq):
        """The index the line belongs in: the logIndex label, else logs-<name>-<UTC date> (or
        self.default, set by a case that changes the default)."""
        day = self.lines[seq][1][:10].replace("-", ".")
        tpl = self.labels.get("logIndex", self.default)
        return (tpl.replace("%{service}", self.name.lower()).replace("%Y", day[0:4])
                .replace("%m", day[5:7]).replace("%d", day[8:10]))


def fake_root(env, *specs):
    return fake_root_of(env, *specs, cls=Container)


# ------------------------------------------------------------------------------------------
# tailjet and its endpoint


class Run:
    """One tailjet run with its /metrics port."""

    def __init__(self, env, binary, es_url, root, extra=(), name="tj", state="state",
                 environ=None):
        self.port = free_port()
        args = ["--docker-root", root, "--output", es_url, "--state-dir", env.path(state),
                "--poll-interval", "200ms", "--metrics-addr", "127.0.0.1:%d" % self.port]
        old = {}
        for k, v in (environ or {}).items():
            old[k] = os.environ.get(k)
            os.environ[k] = v
        try:
            self.t = env.tailjet(binary, args + list(extra), name=name)
        finally:
            for k, v in old.items():
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v

    def get(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read().decode("utf-8", "replace")
        except OSError:
            return None, ""
        finally:
            conn.close()

    def metrics(self):
        """{name{labels}: value} of /metrics (None when it does not answer)."""
        status, body = self.get("/metrics")
        if status != 200:
            return None
        out = {}
        for ln in body.splitlines():
            if ln and not ln.startswith("#"):
                k, _, v = ln.rpartition(" ")
                out[k] = float(v)
        return out

    def acked(self):
        m = self.metrics() or {}
        return int(m.get('tailjet_output_records_acked_total{output="elasticsearch"}', -1))

    def wait_acked(self, n, timeout=DELIVER, what=None):
        wait_until(lambda: self.acked() >= n, timeout,
                   what or "tailjet to acknowledge %d records" % n, procs=[self.t])

    def stderr(self):
        return self.t.stderr_text()


def stop_holding(r):
    """SIGTERM to a run that holds documents it cannot deliver: it drains for its
    --shutdown-timeout, gives up and exits 1 (what it did not deliver is shipped at the next
    start); anything else (a sanitizer's exit status, a crash) fails."""
    os.kill(r.t.pid, signal.SIGTERM)
    rc = r.t.wait(STOP_BOUND)
    check(rc in (0, 1), "tailjet (%s) exited %d after SIGTERM: %s" %
          (r.t.name, rc, tail_text(r.stderr())))


def lines_of(t, pattern):
    return [ln for ln in t.stderr_text().splitlines() if re.search(pattern, ln)]


def metric(m, name, **labels):
    key = name + "{" + ",".join('%s="%s"' % kv for kv in
                                [("output", "elasticsearch")] + sorted(labels.items())) + "}"
    return m.get(key)


def feed(ctrs, lines, rate, chunk=50):
    """Appends `lines` lines to each container at `rate` lines/s each (a Feeder), to the end."""
    feeder = Feeder(ctrs, lines, rate=rate, chunk=chunk)
    feeder.start()
    try:
        feeder.finish()
    finally:
        feeder.stop()


def kill9_runs(env, binary, url, root, ctrs, args):
    """Lines written at 500/s to each container (4000 each) while tailjet is SIGKILLed three
    times (after 800, 1800 and 2800) and started again with the same state dir; returns the
    last run, which is left running."""
    r = Run(env, binary, url, root, args, name="run1")
    feeder = Feeder(ctrs, 4000, rate=500, chunk=25)
    feeder.start()
    try:
        for i, at in enumerate((800, 1800, 2800)):
            feeder.wait_written(at)
            r.t.kill9()
            log("    kill -9 of run %d after %d lines per container" % (i + 1, feeder.written()))
            time.sleep(0.2)
            r = Run(env, binary, url, root, args, name="run%d" % (i + 2))
        feeder.finish()
    finally:
        feeder.stop()
    return r


def wait_drained(r, timeout=DELIVER):
    """Until run r has acknowledged something and holds nothing."""
    wait_until(lambda: r.acked() > 0 and not r.metrics().get(
        'tailjet_output_buffered_bytes{output="elasticsearch"}'), timeout,
        "the last run to hold nothing", procs=[r.t])


def dead_letters(path):
    """The rows of a dead-letter file, which ends with a newline."""
    with open(path, "rb") as f:
        raw = f.read()
    check(raw.endswith(b"\n"), "the dead-letter file ends with a newline")
    return [json.loads(x) for x in raw.splitlines()]


def dead_seqs(rows):
    """The line numbers (seq=) of the dead-lettered documents, sorted."""
    return sorted(int(SEQ_RE.search(x["document"]["message"]).group(1)) for x in rows)


# ------------------------------------------------------------------------------------------
# A real node (tests/servers/es.sh)


def open_node():
    """The node of TJ_ES_NODE (a directory es.sh started a node in), healthy; fails if not."""
    d = os.environ.get("TJ_ES_NODE")
    if not d:
        fail("TJ_ES_NODE is not set: the directory of a node that tests/servers/es.sh started")
    node = Node(d)
    h = node.health()
    check(h["status"] in ("green", "yellow"), "the node's health: %s" % h)
    clean_environ()
    return node


class Node:
    """The node es.sh started in directory d: its REST API, its pid, es.sh restart."""

    def __init__(self, d):
        self.dir = d
        self.reload()

    def reload(self):
        try:
            with open(os.path.join(self.dir, "url")) as f:
                self.url = f.read().strip()
            with open(os.path.join(self.dir, "pid")) as f:
                self.pid = int(f.read().strip())
        except (OSError, ValueError) as e:
            fail("no Elasticsearch node in %s (did its ctest fixture, es.sh start, fail? %s)" %
                 (self.dir, e))
        self.hostport = self.url.split("://", 1)[1]
        self.host, self.port = self.hostport.rsplit(":", 1)

    def call(self, method, path, body=None, ok=(200,), ndjson=False, timeout=60):
        conn = http.client.HTTPConnection(self.host, int(self.port), timeout=timeout)
        if body is None:
            data = None
        elif ndjson:
            data = "".join(json.dumps(x) + "\n" for x in body).encode()
        else:
            data = json.dumps(body).encode()
        try:
            conn.request(method, path, body=data, headers={
                "Content-Type": "application/x-ndjson" if ndjson else "application/json"})
            r = conn.getresponse()
            raw = r.read()
        except OSError as e:
            fail("Elasticsearch %s: %s %s: %s" % (self.url, method, path, e))
        finally:
            conn.close()
        if r.status not in ok:
            fail("Elasticsearch: %s %s answered %d: %s" % (method, path, r.status, raw[:500]))
        return json.loads(raw) if raw else {}

    def delete(self, pattern):
        self.call("DELETE", "/_data_stream/" + pattern, ok=(200, 404, 405))
        self.call("DELETE", "/" + pattern + "?expand_wildcards=all&ignore_unavailable=true",
                  ok=(200, 404))

    def count(self, index):
        self.call("POST", "/%s/_refresh" % index, ok=(200, 404))
        r = self.call("GET", "/%s/_count" % index, ok=(200, 404))
        return r.get("count", 0)

    def docs(self, index):
        """[(backing index, _id, _version, source)] of every document of index (at most
        10 000, sorted by _doc)."""
        self.call("POST", "/%s/_refresh" % index)
        r = self.call("POST", "/%s/_search" % index, {
            "size": 10000, "version": True, "sort": ["_doc"], "track_total_hits": True,
            "query": {"match_all": {}}})
        hits = r["hits"]["hits"]
        check(r["hits"]["total"]["value"] == len(hits), "%s: %d hits, %d returned" %
              (index, r["hits"]["total"]["value"], len(hits)))
        return [(h["_index"], h["_id"], h["_version"], h["_source"]) for h in hits]

    def write_rejections(self):
        r = self.call("GET", "/_nodes/stats/thread_pool")
        return sum(n["thread_pool"]["write"]["rejected"] for n in r["nodes"].values())

    def health(self):
        return self.call("GET", "/_cluster/health")

    def kill9(self):
        os.kill(self.pid, signal.SIGKILL)
        wait_until(lambda: not os.path.exists("/proc/%d" % self.pid), 30,
                   "the node's JVM %d to die" % self.pid)

    def restart(self):
        p = subprocess.run(["bash", ES_SH, "restart", self.dir], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=300)
        check(p.returncode == 0, "es.sh restart: %s" % tail_text(p.stdout.decode(), 30))
        self.reload()


def check_once(node, index, ctrs, skip=(), min_version_1=True):
    """Every line of the containers writing into index (but those in skip) is exactly one
    document there, with its message; _count agrees. Returns (documents, _ids written more than
    once)."""
    docs = node.docs(index)
    n = node.count(index)
    check(n == len(docs), "%s: _count %d, _search %d" % (index, n, len(docs)))
    seen = {}
    bad = []
    for bindex, doc_id, version, src in docs:
        msg = src.get("message", "")
        m = SEQ_RE.search(msg)
        name = (src.get("container") or {}).get("name", "")
        c = next((c for c in ctrs if c.name == name or "/" + c.name == name), None)
        if not m or c is None or int(m.group(1)) >= c.seq or c.lines[int(m.group(1))][0] != msg:
            bad.append((bindex, doc_id, msg[:80], name))
            continue
        if not ID_RE.match(doc_id):
            bad.append((bindex, doc_id, "the _id is not 22 base64url characters", name))
        seen.setdefault((c.name, int(m.group(1))), []).append((doc_id, version))
    check(not bad, "%s: %d documents no container wrote (or wrong), first %s" %
          (index, len(bad), bad[:3]))
    want = [(c.name, s) for c in ctrs for s in range(c.seq) if (c.name, s) not in skip]
    missing = [k for k in want if k not in seen]
    check(not missing, "%s: %d of %d lines lost, first %s" % (index, len(missing), len(want),
                                                            missing[:10]))
    twice = [(k, v) for k, v in seen.items() if len(v) > 1]
    check(not twice, "%s: %d lines indexed more than once, first %s" %
          (index, len(twice), twice[:3]))
    extra = [k for k in seen if k in skip]
    check(not extra, "%s: %d lines indexed that should not be, first %s" %
          (index, len(extra), extra[:3]))
    check(n == len(want), "%s: _count %d, lines %d" % (index, n, len(want)))
    return n, sum(1 for v in seen.values() if v[0][1] > 1)


def apache(c, seq):
    """An access-log line of container c (its seq in the path), for %{COMBINEDAPACHELOG}."""
    return ('10.0.%d.%d - - [25/Nov/2026:10:%02d:%02d +0000] "GET /%s/seq=%06d HTTP/1.1" %d %d '
            '"-" "tailjet-test/1.0"' % (seq // 250 % 250, seq % 250, seq // 60 % 60, seq % 60,
                                        c.name, seq, (200, 404, 503)[seq % 3], 100 + seq))


def field_type(mapping, dotted):
    for idx in mapping.values():
        props = idx["mappings"].get("properties", {})
        parts = dotted.split(".")
        for i, p in enumerate(parts):
            f = props.get(p)
            if f is None:
                return None
            if i == len(parts) - 1:
                return f.get("type", "object")
            props = f.get("properties", {})
    return None
