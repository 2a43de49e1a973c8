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
faults a node cannot make on demand: dropped connections, slow answers, 401/403, TLS, a document
too large alone, failover. After a 413 the request size grows back: test_es_real_413.py, on a
node of its own (http.max_content_length is a static setting).

TJ_CASES=name,name runs some cases only; TJ_KEEP_TMP=1 keeps the temp dirs.
"""

import json
import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "engine"))
sys.path.insert(0, HERE)
from tj_engine_util import check, log, main_wrapper, run_cases, wait_until  # noqa: E402
from tj_fake_docker import Feeder  # noqa: E402
from es_common import (FIGURES, ID_RE, ROOT, STOP_BOUND, Run,  # noqa: E402
                       apache, check_once, dead_letters, dead_seqs, fake_root, feed,
                       field_type, figure, kill9_runs, metric, open_node, wait_drained)

TEMPLATE = os.path.join(ROOT, "deploy", "elasticsearch", "tailjet-logs-template.json")
DELIVER = 120.0    # every line written must be indexed and acknowledged within this
FAST = ["--es-opt", "retry.initial_backoff=50ms", "--es-opt", "retry.max_backoff=2s"]


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
    feed(ctrs, 1500, 1000, 25)
    r.wait_acked(6000, DELIVER)
    rejected = node.write_rejections() - before
    mm = r.metrics()
    retried = metric(mm, "tailjet_output_documents_retried_total")
    for c in ctrs:
        check_once(node, "tjreal-rejections-" + c.name[3:], [c])
    check(rejected >= 10, "the node rejected only %d write tasks (expected many)" % rejected)
    check(retried and retried > 0, "tailjet retried no document (%s)" % retried)
    # 429 as a word: a container id (hex) may hold the digits too
    said = [ln for ln in r.stderr().splitlines() if re.search(r"(?<![0-9a-f])429(?![0-9a-f])", ln)]
    check(any("es_rejected_execution_exception" in ln for ln in said),
          "a warning names the 429 and es_rejected_execution_exception: %s" % said[:1])
    said = [ln for ln in said if "es_rejected_execution_exception" in ln]
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
    r = kill9_runs(env, binary, "elasticsearch://" + node.hostport, root, ctrs,
                   FAST + ["--checkpoint-interval", "200ms"])
    wait_until(lambda: sum(node.count("tjreal-kill9-" + c.name) for c in ctrs) >= 8000,
               DELIVER, "the node to hold 8000 documents", procs=[r.t], interval=0.5)
    wait_drained(r, DELIVER)
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
    rows = dead_letters(dl)
    got = dead_seqs(rows)
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
    node = open_node()

    def between():  # a case that failed with the node down leaves it up for the next
        if not os.path.exists("/proc/%d" % node.pid):
            log("    the node is down: starting it again")
            node.restart()
    run_cases(CASES, "esreal-", lambda case, env: case(binary, env, node), between=between,
              figures=FIGURES)


if __name__ == "__main__":
    main_wrapper(main)
