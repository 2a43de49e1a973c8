#!/usr/bin/env python3
"""test_es_real.py: `tailjet run --output elasticsearch://...` against a real Elasticsearch node.

Usage: TJ_ES_NODE=DIR test_es_real.py PATH/TO/tailjet

DIR is a node that tests/servers/es.sh started (ctest's es_node_start fixture: DIR/url, DIR/pid;
its write thread pool is 1 thread with a queue of 2, so that concurrent bulk requests are really
rejected with 429 es_rejected_execution_exception). A node that is not there fails the test, it
never skips. Each case writes into indices of its own (tjreal-<case>-...), deleted first, through
fake containers (--docker-root, tests/engine/tj_fake_docker.py) whose numbered lines
("seq=000042") name a lost or duplicated document; what the node holds is read back with
_refresh, _count, _search (with _version: a document written twice by a retry has _version 2)
and _mapping.

Cases: delivery (_count equals the lines written, each line one document, ECS fields mapped with
their types: http.response.status_code long, @timestamp date), rejections (real 429s from the
small write pool, many of them: 0 lost, 0 duplicated), node_restart (the node SIGKILLed and
started again mid-stream: 0 lost, 0 duplicated), kill9 (tailjet SIGKILLed three times mid-stream:
0 lost, 0 duplicated), user_conflict (two services write `user` as a string and as an object
into one index: Elasticsearch's mapping error and reason in the dead-letter file for the losers,
the rest indexed), data_stream (deploy/elasticsearch/tailjet-logs-template.json installed by
tailjet's --es-opt template_file, --es-data-stream writes into a real data stream, the documents
are in its backing index, typed by the template). The strict test server (test_es.py) keeps the
faults a node cannot make on demand: dropped connections, slow answers, 401/403, TLS, 413s that
stop, failover.

TJ_CASES=name,name runs some cases only; TJ_KEEP_TMP=1 keeps the temp dirs.
"""

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "engine"))
sys.path.insert(0, HERE)
from tj_engine_util import (check, fail, log, main_wrapper, run_cases,  # noqa: E402
                            tail_text, wait_until)
from tj_fake_docker import Feeder  # noqa: E402
from test_es import Run, fake_root, metric, STOP_BOUND  # noqa: E402

ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
ES_SH = os.path.join(ROOT, "tests", "servers", "es.sh")
TEMPLATE = os.path.join(ROOT, "deploy", "elasticsearch", "tailjet-logs-template.json")
DELIVER = 120.0    # every line written must be indexed and acknowledged within this
SEQ_RE = re.compile(r"seq=(\d{6})")
ID_RE = re.compile(r"^[A-Za-z0-9_-]{22}$")
FAST = ["--es-opt", "retry.initial_backoff=50ms", "--es-opt", "retry.max_backoff=2s"]
FIGURES = []


def figure(what, text):
    FIGURES.append((what, text))
    log("    figure: %s: %s" % (what, text))


# ------------------------------------------------------------------------------------------
# The node


class Node:
    """The node of TJ_ES_NODE: its REST API, its pid, es.sh restart."""

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
            fail("no Elasticsearch node in %s (the es_node_start fixture failed? %s)" %
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


# ------------------------------------------------------------------------------------------
# Cases


def case_delivery(binary, env, node):
    """_count equals the lines written; each line one document, written once; ECS types."""
    node.delete("tjreal-delivery-*")
    root, ctrs = fake_root(env, ("web", {"logPattern": "%{COMBINEDAPACHELOG}",
                                         "logIndex": "tjreal-delivery-web"}),
                           ("api", {"logIndex": "tjreal-delivery-api"}))
    web, api = ctrs
    r = Run(env, binary, "elasticsearch://" + node.hostport, root, FAST)
    web.write(3000, text=lambda s: apache(web, s))
    api.write(3000)
    r.wait_acked(6000, DELIVER)
    # (_version 2 is no fault of tailjet's here: the node's small write pool may reject a
    # request with 429 after it indexed it, and the retry overwrites the same _id)
    over = 0
    for c in ctrs:
        over += check_once(node, "tjreal-delivery-" + c.name, [c])[1]
    m = node.call("GET", "/tjreal-delivery-web/_mapping")
    for field, want in (("http.response.status_code", "long"), ("@timestamp", "date"),
                        ("http.response.body.bytes", "long"), ("log.offset", "long")):
        got = field_type(m, field)
        check(got == want, "tjreal-delivery-web: %s is mapped %s, expected %s" %
              (field, got, want))
    hits = node.call("POST", "/tjreal-delivery-web/_search", {
        "size": 0, "query": {"range": {"http.response.status_code": {"gte": 500}}}})
    check(hits["hits"]["total"]["value"] == 1000, "status_code >= 500 (a numeric range): %s" %
          hits["hits"]["total"])
    mm = r.metrics()
    check(metric(mm, "tailjet_output_documents_total", result="indexed") == 6000,
          "indexed metric %s" % metric(mm, "tailjet_output_documents_total", result="indexed"))
    r.t.stop(STOP_BOUND)
    figure("delivery", "6000 lines, _count 6000 (3000 + 3000), %d _ids written again "
           "(overwrites after a 429); http.response.status_code long, @timestamp date" % over)


def case_rejections(binary, env, node):
    """Many concurrent small requests against a write pool of 1 thread and 2 queued: the node
    rejects them (429 es_rejected_execution_exception), tailjet retries: 0 lost, 0 dup."""
    node.delete("tjreal-rejections-*")
    specs = [("svc%d" % i, {"logIndex": "tjreal-rejections-%d" % i}) for i in range(4)]
    root, ctrs = fake_root(env, *specs)
    before = node.write_rejections()
    r = Run(env, binary, "elasticsearch://" + node.hostport, root,
            FAST + ["--es-opt", "request.concurrency=8", "--es-opt", "batch.max_events=50",
                    "--workers", "2"])
    feeder = Feeder(ctrs, 1500, rate=1000, chunk=25)
    feeder.start()
    try:
        feeder.finish()
    finally:
        feeder.stop()
    r.wait_acked(6000, DELIVER)
    rejected = node.write_rejections() - before
    mm = r.metrics()
    retried = metric(mm, "tailjet_output_documents_retried_total")
    for c in ctrs:
        check_once(node, "tjreal-rejections-" + c.name[3:], [c])
    check(rejected >= 10, "the node rejected only %d write tasks (expected many)" % rejected)
    check(retried and retried > 0, "tailjet retried no document (%s)" % retried)
    said = [ln for ln in r.stderr().splitlines() if "429" in ln]
    check(said and "es_rejected_execution_exception" in said[0],
          "a warning names the 429 and es_rejected_execution_exception: %s" % said[:1])
    log("    stderr: %s" % said[0][:300])
    r.t.stop(STOP_BOUND)
    figure("rejections", "6000 lines; the node rejected %d write tasks (429), tailjet retried "
           "%d documents; 0 lost, 0 duplicated" % (rejected, retried))


def case_node_restart(binary, env, node):
    """The node is SIGKILLed mid-stream and started again (same data): 0 lost, 0 duplicated."""
    node.delete("tjreal-restart-*")
    root, ctrs = fake_root(env, ("web", {"logIndex": "tjreal-restart-web"}))
    r = Run(env, binary, "elasticsearch://" + node.hostport, root, FAST)
    feeder = Feeder(ctrs, 6000, rate=250, chunk=10)
    feeder.start()
    try:
        feeder.wait_written(1500)
        node.kill9()
        log("    node SIGKILLed after %d lines" % feeder.written())
        t0 = time.monotonic()
        node.restart()
        log("    node up again in %.1f s, after %d lines" % (time.monotonic() - t0,
                                                            feeder.written()))
        feeder.finish()
    finally:
        feeder.stop()
    r.wait_acked(6000, DELIVER)
    n, over = check_once(node, "tjreal-restart-web", ctrs)
    mm = r.metrics()
    r.t.stop(STOP_BOUND)
    figure("node_restart", "6000 lines, node kill -9 and restart mid-stream: _count %d, "
           "%d _ids written again (overwrites), %d documents retried" %
           (n, over, metric(mm, "tailjet_output_documents_retried_total")))


def case_kill9(binary, env, node):
    """tailjet SIGKILLed three times mid-stream, restarted with the same state dir: every line
    one document (what was sent again overwrote itself)."""
    node.delete("tjreal-kill9-*")
    root, ctrs = fake_root(env, ("web", {"logIndex": "tjreal-kill9-web"}),
                           ("api", {"logIndex": "tjreal-kill9-api"}))
    args = FAST + ["--checkpoint-interval", "200ms"]
    r = Run(env, binary, "elasticsearch://" + node.hostport, root, args, name="run1")
    feeder = Feeder(ctrs, 4000, rate=500, chunk=25)
    feeder.start()
    try:
        for i, at in enumerate((800, 1800, 2800)):
            feeder.wait_written(at)
            r.t.kill9()
            log("    kill -9 of run %d after %d lines per container" % (i + 1,
                                                                        feeder.written()))
            time.sleep(0.2)
            r = Run(env, binary, "elasticsearch://" + node.hostport, root, args,
                    name="run%d" % (i + 2))
        feeder.finish()
    finally:
        feeder.stop()
    wait_until(lambda: sum(node.count("tjreal-kill9-" + c.name) for c in ctrs) >= 8000,
               DELIVER, "the node to hold 8000 documents", procs=[r.t], interval=0.5)
    wait_until(lambda: r.acked() > 0 and not r.metrics().get(
        'tailjet_output_buffered_bytes{output="elasticsearch"}'), DELIVER,
        "the last run to hold nothing", procs=[r.t])
    over = 0
    for c in ctrs:
        over += check_once(node, "tjreal-kill9-" + c.name, [c])[1]
    r.t.stop(STOP_BOUND)
    figure("kill9", "3 kill -9 of tailjet (8000 lines): _count 8000, 0 duplicated; %d _ids "
           "written again (overwrites)" % over)


def case_user_conflict(binary, env, node):
    """alpha writes `user` as a string, then beta as an object (every other line) into the
    same index: beta's lines with a user are dead-lettered with Elasticsearch's reason, the rest
    indexed."""
    node.delete("tjreal-conflict")
    pat_a = "seq=%{INT} c=%{WORD} user=%{WORD:user} %{GREEDYDATA}"
    pat_b = "seq=%{INT} c=%{WORD} (?:user=%{WORD:[user][name]} )?%{GREEDYDATA}"
    root, ctrs = fake_root(env, ("alpha", {"logPattern": pat_a, "logIndex": "tjreal-conflict"}),
                           ("beta", {"logPattern": pat_b, "logIndex": "tjreal-conflict"}))
    alpha, beta = ctrs
    losers = set()

    def text_a(seq):
        return "seq=%06d c=alpha user=u%d %s" % (seq, seq % 7, "x" * 80)

    def text_b(seq):
        if seq % 2 == 0:
            losers.add(("beta", seq))
            return "seq=%06d c=beta user=u%d %s" % (seq, seq % 7, "y" * 80)
        return "seq=%06d c=beta %s" % (seq, "y" * 80)
    dl = env.path("dead.ndjson")
    r = Run(env, binary, "elasticsearch://" + node.hostport, root,
            FAST + ["--es-opt", "dead_letter_file=" + dl])
    alpha.write(500, text=text_a)
    r.wait_acked(500, DELIVER)     # `user` is a text field from now on
    beta.write(1000, text=text_b)
    r.wait_acked(1500, DELIVER)
    check_once(node, "tjreal-conflict", ctrs, skip=losers)
    with open(dl, "rb") as f:
        rows = [json.loads(x) for x in f.read().splitlines()]
    got = sorted(int(SEQ_RE.search(x["document"]["message"]).group(1)) for x in rows)
    check(got == sorted(s for _, s in losers), "dead letters: %d (first %s), expected %d" %
          (len(got), got[:5], len(losers)))
    for x in rows:
        err = x.get("error") or {}
        check(x["status"] == 400 and err.get("type") in ("document_parsing_exception",
                                                          "mapper_parsing_exception") and
              "[user]" in err.get("reason", "") and x["index"] == "tjreal-conflict" and
              ID_RE.match(x["_id"]), "a dead letter %s" % json.dumps(x)[:500])
    mm = r.metrics()
    check(metric(mm, "tailjet_output_dead_letters_total") == len(losers),
          "dead letters metric %s" % metric(mm, "tailjet_output_dead_letters_total"))
    r.t.stop(STOP_BOUND)
    log("    dead letter: %s" % json.dumps(rows[0])[:400])
    figure("user_conflict", "%d of beta's lines dead-lettered: %s" %
           (len(rows), rows[0]["error"]["reason"][:160]))


def case_data_stream(binary, env, node):
    """tailjet puts deploy/'s index template in (--es-opt template_file), --es-data-stream
    writes into a real data stream: the documents are in its backing index, typed by the
    template; a run with a fresh state dir sends everything again: 409s, counted as delivered.
    (A data stream cannot be deleted on this distribution, which lacks the data streams
    module's REST API: the service name is new at each run.)"""
    svc = "tjreal%d" % (os.getpid() % 100000)
    stream = "logs-%s-default" % svc
    # a node of an earlier run of this test may hold the template, in use: then it stays
    node.call("DELETE", "/_index_template/tailjet-logs", ok=(200, 400, 404))
    had = node.call("GET", "/_index_template/tailjet-logs", ok=(200, 404)).get("index_templates")
    root, ctrs = fake_root(env, (svc, {"logPattern": "%{COMBINEDAPACHELOG}"}))
    c = ctrs[0]
    c.write(1500, text=lambda s: apache(c, s))
    for i, state in enumerate(("state1", "state2")):
        r = Run(env, binary, "elasticsearch://" + node.hostport, root,
                ["--es-data-stream", "--es-opt", "template_file=" + TEMPLATE],
                name="run%d" % (i + 1), state=state)
        r.wait_acked(1500, DELIVER)
        mm = r.metrics()
        said = [ln for ln in r.stderr().splitlines() if "index template tailjet-logs put" in ln]
        r.t.stop(STOP_BOUND)
        check(said, "run %d: tailjet says it put the template in" % (i + 1))
        want = (1500, 0) if i == 0 else (0, 1500)
        got = (metric(mm, "tailjet_output_documents_total", result="indexed"),
               metric(mm, "tailjet_output_documents_total", result="conflict"))
        check(got == want, "run %d: indexed and conflicts %s, expected %s" % (i + 1, got, want))
    log("    %s" % said[0][:200])
    t = node.call("GET", "/_index_template/tailjet-logs")
    check(len(t.get("index_templates", [])) == 1, "the template is installed: %s" % t)
    if had:
        log("    (the template was there already, from an earlier run on this node)")
    res = node.call("GET", "/_resolve/index/" + stream)
    ds = res.get("data_streams", [])
    check(len(ds) == 1 and ds[0]["timestamp_field"] == "@timestamp" and
          len(ds[0]["backing_indices"]) == 1 and ds[0]["backing_indices"][0].startswith(
              ".ds-%s-" % stream), "%s is a data stream: %s" % (stream, res))
    backing = ds[0]["backing_indices"][0]
    n, over = check_once(node, stream, ctrs)
    check(over == 0, "a create overwrote a document")
    docs = node.docs(backing)
    check(len(docs) == 1500 and all(d[0] == backing for d in docs),
          "the documents are in the backing index %s" % backing)
    m = node.call("GET", "/%s/_mapping" % backing)
    for field, want in (("http.response.status_code", "long"), ("@timestamp", "date_nanos"),
                        ("source.address", "keyword"), ("message", "text"),
                        ("container.name", "keyword")):
        got = field_type(m, field)
        check(got == want, "%s: %s is mapped %s, expected %s (the template)" %
              (backing, field, got, want))
    figure("data_stream", "1500 documents in %s (template tailjet-logs put in by tailjet); "
           "the second run's 1500 creates answered 409" % backing)


CASES = [
    (case_delivery, 150),
    (case_rejections, 180),
    (case_node_restart, 240),
    (case_kill9, 180),
    (case_user_conflict, 120),
    (case_data_stream, 120),
]


def main(binary):
    d = os.environ.get("TJ_ES_NODE")
    if not d:
        fail("TJ_ES_NODE is not set: the directory of a node that tests/servers/es.sh started")
    node = Node(d)
    h = node.health()
    check(h["status"] in ("green", "yellow"), "the node's health: %s" % h)
    for k in ("TAILJET_ES_PASSWORD", "TAILJET_ES_API_KEY", "TAILJET_ES_USER", "TAILJET_OUTPUT"):
        os.environ.pop(k, None)

    def between():  # a case that failed with the node down leaves it up for the next
        if not os.path.exists("/proc/%d" % node.pid):
            log("    the node is down: starting it again")
            node.restart()
    run_cases(CASES, "esreal-", lambda case, env: case(binary, env, node), between=between,
              figures=FIGURES)


if __name__ == "__main__":
    main_wrapper(main)
