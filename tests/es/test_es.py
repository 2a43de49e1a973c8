#!/usr/bin/env python3
"""test_es.py: `tailjet run --output elasticsearch://...` against tj_es_server.py, a strict
Elasticsearch _bulk server with fault injection (Debian packages no Elasticsearch).

Usage: test_es.py PATH/TO/tailjet

Each case starts its own server (tj_es_server.py in a subprocess, controlled through its /_test/
endpoints: faults, stats, what it indexed and how often each _id was written), its own tailjet on
fake containers (--docker-root: a config.v2.json with labels and a json-file log per container,
lines appended while tailjet runs), and checks what the server holds. Lines are numbered
("seq=000042 c=web ..."), so a lost or duplicated line is named. "Exactly once" means: every line
written is one document, in the index it belongs to, with the record tailjet made of it, and no
line is two documents; an _id written more than once (a retry of what was indexed but not
acknowledged) overwrote itself, which is counted and shown.

Cases: delivery (default per-service index from @timestamp in UTC across two days, a logIndex
label with a date, an upper-case service name, gzip, the metrics), item_faults (items 429 and
503), request_faults (whole requests 500, 429, 503), drops (connections dropped before and
after indexing), slow (answers slower than request.timeout), mapping (400 mapping errors: those
documents in the dead-letter file with Elasticsearch's error, the rest indexed), too_large (413:
requests cut smaller; a document too large alone is dead-lettered), regrow (after a 413 the
request size grows back over time), data_stream
(create actions; everything sent again: 409 conflicts count as delivered), kill9 (kill -9
three times mid-stream with dropped connections, restarts with the same state dir), auth_basic
(wrong password: 401 said clearly and /health 503; right password from a file; a password on the
command line refused), api_key (from the environment), forbidden (403 on one index: said,
held, not dead-lettered, the other index flows), tls (the right CA, a wrong CA: a certificate
error said clearly, verification off), failover (the first host refuses connections), and
bad_options. A case that fails is reported and the others still run; each has a time bound;
every process is stopped by its pid. TJ_CASES=name,name runs some cases only; TJ_KEEP_TMP=1
keeps the temp dirs.
"""

import base64
import http.client
import json
import os
import re
import shutil
import ssl
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "engine"))
sys.path.insert(0, HERE)
from tj_engine_util import (check, fail, free_port, log, main_wrapper,  # noqa: E402
                            read_text, run_cases, tail_text, wait_until)
from tj_es_server import make_test_ca  # noqa: E402
from es_common import (DELIVER, FIGURES, ID_RE, STOP_BOUND, Run, clean_environ,  # noqa: E402
                       dead_letters, dead_seqs, fake_root, feed, figure, kill9_runs, lines_of,
                       metric, stop_holding, wait_drained)

SERVER = os.path.join(HERE, "tj_es_server.py")
LINE_RE = re.compile(r"^seq=(\d{6}) c=(\w+) ")
FAST = ["--es-opt", "retry.initial_backoff=50ms", "--es-opt", "retry.max_backoff=1s"]


# ------------------------------------------------------------------------------------------
# The server


class Es:
    """One tj_es_server.py process; its /_test/ endpoints over HTTP(S)."""

    def __init__(self, env, *args, name="es"):
        port_file = env.path("%s.port" % name)
        self.err_path = env.path("%s.stderr" % name)
        err = open(self.err_path, "wb")
        self.proc = env.spawn([sys.executable, SERVER, "--port", "0", "--port-file", port_file] +
                              list(args), stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        err.close()
        self.tls = "--tls-cert" in args

        def ready():
            if self.proc.poll() is not None:
                fail("tj_es_server.py exited (%s): %s" % (self.proc.returncode,
                                                          tail_text(read_text(self.err_path, ""))))
            try:
                with open(port_file) as f:
                    return int(f.read().strip() or 0)
            except (OSError, ValueError):
                return 0
        self.port = wait_until(ready, 15.0, "tj_es_server.py to listen")
        self.url = "%s://127.0.0.1:%d" % ("https" if self.tls else "http", self.port)
        self.hostport = "127.0.0.1:%d" % self.port

    def call(self, method, path, body=None):
        if self.tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=30, context=ctx)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
        except OSError as e:
            fail("tj_es_server.py: %s %s: %s" % (method, path, e))
        finally:
            conn.close()
        if r.status != 200:
            fail("tj_es_server.py: %s %s answered %d: %r" % (method, path, r.status, data[:300]))
        return json.loads(data)

    def stats(self):
        return self.call("GET", "/_test/stats")

    def docs(self):
        return self.call("GET", "/_test/docs")

    def writes(self, min_count=2):
        return self.call("GET", "/_test/writes?min=%d" % min_count)

    def faults(self, **kw):
        return self.call("POST", "/_test/faults", kw)

    def ndocs(self):
        return self.stats()["docs"]


# ------------------------------------------------------------------------------------------
# What the server holds


def check_exactly_once(es, ctrs, skip=()):
    """Every line of every container (but those in skip: {(name, seq)}) is exactly one
    document, in its index, with the record tailjet made of it; nothing else is there. Returns
    the number of _ids written more than once (overwrites)."""
    docs = es.docs()
    byname = {c.name: c for c in ctrs}
    seen = {}
    errors, unexpected = [], []
    for index, d in docs.items():
        for doc_id, src in d.items():
            msg = src.get("message") if isinstance(src, dict) else None
            m = LINE_RE.match(msg) if isinstance(msg, str) else None
            if not m or m.group(2) not in byname or int(m.group(1)) >= byname[m.group(2)].seq:
                unexpected.append((index, doc_id, str(src)[:200]))
                continue
            c, seq = byname[m.group(2)], int(m.group(1))
            seen.setdefault((c.name, seq), []).append((index, doc_id))
            text, t = c.lines[seq]
            cont = src.get("container") if isinstance(src.get("container"), dict) else {}
            for label, got, want in (("index", index, c.index_of(seq)), ("message", msg, text),
                                     ("@timestamp", src.get("@timestamp"), t),
                                     ("container.id", cont.get("id"), c.id)):
                if got != want and len(errors) < 10:
                    errors.append("%s/%s: %s is %r, expected %r" % (index, doc_id, label, got,
                                                                    want))
            if not ID_RE.match(doc_id) and len(errors) < 10:
                errors.append("%s/%s: the _id is not 22 base64url characters" % (index, doc_id))
    check(not unexpected, "%d documents that no container wrote, first: %s" %
          (len(unexpected), unexpected[:3]))
    check(not errors, "wrong documents: %s" % "; ".join(errors[:5]))
    for c in ctrs:
        missing = [s for s in range(c.seq) if (c.name, s) not in seen and (c.name, s) not in skip]
        check(not missing, "%s: %d of %d lines not indexed, first: %s" %
              (c.name, len(missing), c.seq, missing[:10]))
        twice = [(s, seen[(c.name, s)]) for s in range(c.seq) if len(seen.get((c.name, s), ())) > 1]
        check(not twice, "%s: %d lines indexed more than once, first: %s" %
              (c.name, len(twice), twice[:3]))
    extra = [k for k in seen if k in skip]
    check(not extra, "%d lines indexed that should not be, first %s" % (len(extra), extra[:3]))
    overwritten = sum(len(v) for v in es.writes(2).values())
    return overwritten


def wait_indexed(es, n, procs, timeout=DELIVER):
    wait_until(lambda: es.ndocs() >= n, timeout, "the server to hold %d documents" % n,
               procs=procs, interval=0.2)


def total(ctrs):
    return sum(c.seq for c in ctrs)


def fault_case(binary, env, faults, extra=(), lines=3000, rate=1500):
    """Two containers write while the server injects faults; every line exactly once."""
    es = Es(env)
    es.faults(**faults)
    root, ctrs = fake_root(env, ("web", {}), ("api", {}))
    r = Run(env, binary, "elasticsearch://" + es.hostport, root, FAST + list(extra))
    feed(ctrs, lines, rate)
    r.wait_acked(total(ctrs))
    es.faults(**{k: 0 for k in faults})
    stats = es.stats()
    over = check_exactly_once(es, ctrs)
    m = r.metrics()
    r.t.stop(STOP_BOUND)
    return es, r, stats, over, m


# ------------------------------------------------------------------------------------------
# Cases


def case_delivery(binary, env):
    """Default index per service and UTC day from @timestamp, a dated logIndex label, an
    upper-case service name; gzip; metrics."""
    es = Es(env)
    root, ctrs = fake_root(env, ("web", {}), ("api", {"logIndex": "api-logs-%Y.%m"}),
                           ("Shop", {}))
    r = Run(env, binary, "elasticsearch://" + es.hostport, root)
    for c in ctrs:
        c.write(1000, day="2026-11-25")
        c.write(1000, day="2026-11-26")
    r.wait_acked(total(ctrs))
    over = check_exactly_once(es, ctrs)
    check(over == 0, "%d _ids written twice without any fault" % over)
    names = sorted(es.docs())
    check(names == ["api-logs-2026.11", "logs-shop-2026.11.25", "logs-shop-2026.11.26",
                    "logs-web-2026.11.25", "logs-web-2026.11.26"], "indices %s" % names)
    st = es.stats()
    check(st["gzip_requests"] == st["bulk_requests"] > 0, "gzip: %d of %d requests" %
          (st["gzip_requests"], st["bulk_requests"]))
    check(st["items_by_op"] == {"index": 6000}, "operations %s" % st["items_by_op"])
    m = r.metrics()
    check(metric(m, "tailjet_output_documents_total", result="indexed") == 6000,
          "documents indexed metric %s" % metric(m, "tailjet_output_documents_total",
                                                 result="indexed"))
    sent = metric(m, "tailjet_output_request_bytes_total", stage="sent")
    raw = metric(m, "tailjet_output_request_bytes_total", stage="uncompressed")
    check(sent == st["bytes_received"] and raw == st["bytes_decompressed"],
          "bytes metrics %s/%s, server %s/%s" % (sent, raw, st["bytes_received"],
                                                 st["bytes_decompressed"]))
    check(metric(m, "tailjet_output_requests_in_flight") == 0, "requests in flight at rest")
    figure("delivery: gzip ratio", "%.1f x (%d -> %d bytes, %d requests)" %
           (raw / sent, raw, sent, st["bulk_requests"]))
    if shutil.which("promtool"):
        status, body = r.get("/metrics")
        p = subprocess.run(["promtool", "check", "metrics"], input=body.encode(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        check(p.returncode == 0, "promtool check metrics: %s" % p.stdout.decode()[-1000:])
    status, body = r.get("/health")
    check("output" not in body, "/health %s: %s" % (status, body))
    r.t.stop(STOP_BOUND)


def case_item_faults(binary, env):
    es, r, st, over, m = fault_case(binary, env, {"item_429_rate": 0.2, "item_503_rate": 0.1})
    by = st["items_by_status"]
    check(by.get("429", 0) > 0 and by.get("503", 0) > 0, "the faults happened: %s" % by)
    check(over == 0, "%d _ids written twice (items refused are not indexed)" % over)
    figure("item_faults", "items by status %s, %d documents retried" %
           (by, metric(m, "tailjet_output_documents_retried_total")))


def case_request_faults(binary, env):
    es, r, st, over, m = fault_case(binary, env, {"request_500_rate": 0.2,
                                                  "request_429_rate": 0.1,
                                                  "request_503_rate": 0.1})
    by = st["requests_by_status"]
    check(all(by.get(s, 0) > 0 for s in ("500", "429", "503")), "the faults happened: %s" % by)
    check(over == 0, "%d _ids written twice (refused requests index nothing)" % over)
    figure("request_faults", "requests by status %s" % by)


def case_drops(binary, env):
    # small requests: many of them, so that both faults surely happen (a slow build sends few
    # large ones)
    es, r, st, over, m = fault_case(binary, env, {"drop_before_rate": 0.15,
                                                  "drop_after_rate": 0.15},
                                    extra=["--es-opt", "batch.max_events=100"])
    check(st["dropped_before"] > 0 and st["dropped_after"] > 0, "the faults happened: %s" %
          {k: st[k] for k in ("dropped_before", "dropped_after")})
    check(over > 0, "no _id written twice although %d answers were dropped after indexing" %
          st["dropped_after"])
    figure("drops", "%d dropped before, %d after indexing; %d documents overwrote themselves "
           "(same _id), none duplicated" % (st["dropped_before"], st["dropped_after"], over))


def case_slow(binary, env):
    """Answers 1.5 s late with request.timeout=1s for a while: retried, overwritten, not
    duplicated."""
    es = Es(env)
    root, ctrs = fake_root(env, ("web", {}), ("api", {}))
    r = Run(env, binary, "elasticsearch://" + es.hostport, root,
            FAST + ["--es-opt", "request.timeout=1s"])
    for c in ctrs:
        c.write(500)
    r.wait_acked(1000)
    es.faults(delay_ms=1500)
    for c in ctrs:
        c.write(1000)
    wait_until(lambda: lines_of(r.t, r"warn: elasticsearch: .* did not answer within 1000 ms"),
               20.0, "a warning that the server did not answer within request.timeout",
               procs=[r.t])
    time.sleep(2.0)
    es.faults(delay_ms=0)
    r.wait_acked(total(ctrs))
    over = check_exactly_once(es, ctrs)
    check(over > 0, "no _id written twice although answers came after the time-out")
    figure("slow", "%d documents indexed again after a time-out (overwrites), none duplicated" %
           over)
    log("    stderr: %s" % lines_of(r.t, r"did not answer")[0][:220])
    r.t.stop(STOP_BOUND)


def case_mapping(binary, env):
    """n must be a long: lines with n=abc are refused (400) and go to the dead-letter file with
    Elasticsearch's error; the others are indexed; nothing is held."""
    es = Es(env, "--mapping", "n=long")
    pat = "seq=%{INT} c=%{WORD} n=%{NOTSPACE:n} %{GREEDYDATA}"
    root, ctrs = fake_root(env, ("web", {"logPattern": pat}))
    c = ctrs[0]
    bad = set()

    def text(seq):
        if seq % 10 == 3:
            bad.add(("web", seq))
        head = "seq=%06d c=web n=%s " % (seq, "abc" if seq % 10 == 3 else str(seq))
        return head + "x" * 100
    dl = env.path("dead.ndjson")
    r = Run(env, binary, "elasticsearch://" + es.hostport, root,
            FAST + ["--es-opt", "dead_letter_file=" + dl])
    c.write(2000, text=text)
    r.wait_acked(2000)
    check_exactly_once(es, ctrs, skip=bad)
    rows = dead_letters(dl)
    got = dead_seqs(rows)
    check(got == sorted(s for _, s in bad), "dead letters: %d (first %s), expected %d" %
          (len(got), got[:5], len(bad)))
    for x in rows:
        check(x["status"] == 400 and x["error"]["type"] == "mapper_parsing_exception" and
              "failed to parse field [n]" in x["error"]["reason"] and
              x["index"] == "logs-web-2026.11.25" and ID_RE.match(x["_id"]) and
              x["@timestamp"].endswith("Z"), "a dead letter %s" % json.dumps(x)[:400])
    m = r.metrics()
    check(metric(m, "tailjet_output_dead_letters_total") == len(bad),
          "dead letters metric %s" % metric(m, "tailjet_output_dead_letters_total"))
    said = lines_of(r.t, r"warn: elasticsearch: .*rejected for good")
    check(said and "mapper_parsing_exception" in said[0] and dl in said[0],
          "a warning names the rejection and the file: %s" % said[:1])
    log("    stderr: %s" % said[0][:250])
    log("    dead letter: %s" % json.dumps(rows[0])[:300])
    r.t.stop(STOP_BOUND)


def case_too_large(binary, env):
    """The server takes bodies of 64 KiB at most (413 above): requests are cut smaller and go
    through; a line that is larger alone is dead-lettered with a 413 error."""
    es = Es(env, "--max-content-length", "65536")
    root, ctrs = fake_root(env, ("web", {}))
    c = ctrs[0]
    big = set()

    def text(seq):
        if seq == 700:
            big.add(("web", seq))
            return "seq=%06d c=web " % seq + "y" * 100000
        return c.text(seq)
    dl = env.path("dead.ndjson")
    r = Run(env, binary, "elasticsearch://" + es.hostport, root,
            FAST + ["--es-opt", "compression=none", "--es-opt", "dead_letter_file=" + dl,
                    "--es-opt", "request.timeout=3s"])
    c.write(2000, text=text)
    r.wait_acked(2000)
    check_exactly_once(es, ctrs, skip=big)
    with open(dl) as f:
        rows = [json.loads(x) for x in f]
    check(len(rows) == 1 and rows[0]["status"] == 413 and
          rows[0]["document"]["message"].startswith("seq=000700 "),
          "the large line dead-lettered with 413: %s" % [json.dumps(x)[:200] for x in rows])
    said = lines_of(r.t, r"warn: elasticsearch: .*too large \(413\)")
    check(said, "a warning that requests are cut smaller")
    log("    stderr: %s" % said[0][:250])
    figure("too_large", "requests by status %s" % es.stats()["requests_by_status"])
    r.t.stop(STOP_BOUND)


def case_regrow(binary, env):
    """After a 413 cut requests smaller, they grow back: the server takes 64 KiB at most, tailjet
    may send 256 KiB (batch.regrow_after=1s); bursts of lines 1.5 s apart: after each regrowth
    the next burst meets a 413 again and is cut again (before the fix the bound stayed halved
    until a restart, so only the first burst did); every line exactly once."""
    es = Es(env, "--max-content-length", "65536")
    root, ctrs = fake_root(env, ("web", {}))
    c = ctrs[0]
    r = Run(env, binary, "elasticsearch://" + es.hostport, root,
            FAST + ["--es-opt", "compression=none", "--es-opt", "batch.max_bytes=256KiB",
                    "--es-opt", "batch.regrow_after=1s"])
    for i in range(5):
        c.write(2000)
        r.wait_acked(2000 * (i + 1))
        time.sleep(1.5)
    over = check_exactly_once(es, ctrs)
    check(over == 0, "%d _ids written twice" % over)
    said = lines_of(r.t, r"elasticsearch: .*(too large \(413\)|bytes again)")
    order = ["grown" if "bytes again" in ln else "cut" for ln in said]
    check("cut" in order and "grown" in order[order.index("cut"):] and
          "cut" in order[order.index("grown", order.index("cut")):],
          "a 413 cut, a regrowth, then a 413 again: %s" % order)
    log("    %s" % [ln.split("elasticsearch: ", 1)[1][:110] for ln in said[:4]])
    st = es.stats()
    figure("regrow", "%d cuts and %d regrowths in 5 bursts; requests by status %s" %
           (order.count("cut"), order.count("grown"), st["requests_by_status"]))
    r.t.stop(STOP_BOUND)


def case_data_stream(binary, env):
    """--es-data-stream: create actions into logs-<service>-default; everything sent again by a
    run with a fresh state dir is answered 409, which counts as delivered."""
    es = Es(env)
    root, ctrs = fake_root(env, ("web", {}))
    c = ctrs[0]
    c.default = "logs-%{service}-default"
    c.write(1500)
    # (not --exit-on-eof: with --docker-root it may exit before discovery adds the container)
    for i, state in enumerate(("state1", "state2")):
        r = Run(env, binary, "elasticsearch://" + es.hostport, root, ["--es-data-stream"],
                name="run%d" % (i + 1), state=state)
        r.wait_acked(1500)
        m = r.metrics()
        r.t.stop(STOP_BOUND)
        want = (1500, 0) if i == 0 else (0, 1500)
        got = (metric(m, "tailjet_output_documents_total", result="indexed"),
               metric(m, "tailjet_output_documents_total", result="conflict"))
        check(got == want, "run %d: indexed and conflicts %s, expected %s" % (i + 1, got, want))
    st = es.stats()
    check(list(es.docs()) == ["logs-web-default"], "indices %s" % list(es.docs()))
    check(st["items_by_op"] == {"create": 3000} and st["items_by_status"] ==
          {"201": 1500, "409": 1500}, "creates and conflicts: %s %s" % (st["items_by_op"],
                                                                     st["items_by_status"]))
    over = check_exactly_once(es, ctrs)
    check(over == 0, "a create overwrote a document")
    figure("data_stream", "second run: 1500 creates answered 409, counted as delivered")


def case_kill9(binary, env):
    """kill -9 three times mid-stream while connections drop after indexing; restart with the
    same state dir: every line exactly once (what was re-sent overwrote itself)."""
    es = Es(env)
    es.faults(drop_after_rate=0.1, drop_before_rate=0.05)
    root, ctrs = fake_root(env, ("web", {}), ("api", {"logIndex": "api"}))
    r = kill9_runs(env, binary, "elasticsearch://" + es.hostport, root, ctrs,
                   FAST + ["--checkpoint-interval", "200ms"])
    wait_indexed(es, total(ctrs), [r.t])
    es.faults(drop_after_rate=0, drop_before_rate=0)
    wait_drained(r)
    over = check_exactly_once(es, ctrs)
    st = es.stats()
    figure("kill9: 3 kill -9 (8000 lines, drops on)", "every line indexed once; %d _ids written "
           "again (overwrites), %d answers dropped after indexing" % (over, st["dropped_after"]))
    r.t.stop(STOP_BOUND)


def case_auth_basic(binary, env):
    es = Es(env, "--user", "elastic", "--password", "s3cret")
    root, ctrs = fake_root(env, ("web", {}))
    ctrs[0].write(300)
    # wrong password: said clearly, /health 503 with the reason, nothing indexed
    r = Run(env, binary, "elasticsearch://" + es.hostport, root,
            ["--es-opt", "auth.user=elastic", "--shutdown-timeout", "1s"], name="wrong",
            environ={"TAILJET_ES_PASSWORD": "wrong"})
    said = wait_until(lambda: lines_of(r.t, r"error: elasticsearch: 401 Unauthorized"), 15.0,
                      "an error line naming 401", procs=[r.t])
    check("check auth.user" in said[0] and "TAILJET_ES_PASSWORD" in said[0],
          "the 401 line says what to check: %s" % said[0])
    log("    stderr: %s" % said[0][:300])
    status, body = wait_until(lambda: (lambda s: s if s[0] == 503 else None)(r.get("/health")),
                              15.0, "/health to answer 503", procs=[r.t])
    check("401" in body, "/health names the 401: %r" % body)
    log("    /health 503: %s" % body.strip()[:200])
    time.sleep(1.5)
    check(len(lines_of(r.t, r"401 Unauthorized")) == 1, "the 401 is said once, not per request")
    check(es.ndocs() == 0, "documents indexed with a wrong password")
    stop_holding(r)
    # right password, from a file
    pw = env.path("pw")
    with open(pw, "w") as f:
        f.write("s3cret\n")
    r = Run(env, binary, "elasticsearch://" + es.hostport, root,
            ["--es-opt", "auth.user=elastic", "--es-opt", "auth.password_file=" + pw],
            name="right")
    r.wait_acked(300)
    check_exactly_once(es, ctrs)
    r.t.stop(STOP_BOUND)
    # a password on the command line is refused
    t = env.tailjet(binary, ["--docker-root", root, "--output", "elasticsearch://" + es.hostport,
                             "--state-dir", env.path("s3"), "--es-opt", "auth.password=x"],
                    name="cmdline")
    rc = t.wait(15)
    check(rc == 2 and "TAILJET_ES_PASSWORD" in t.stderr_text(),
          "auth.password on the command line: exit %d, %r" % (rc, t.stderr_text()[-300:]))


def case_api_key(binary, env):
    key = base64.b64encode(b"key-id:key-secret").decode()
    es = Es(env, "--api-key", key)
    root, ctrs = fake_root(env, ("web", {}))
    ctrs[0].write(300)
    r = Run(env, binary, "elasticsearch://" + es.hostport, root, [],
            environ={"TAILJET_ES_API_KEY": "key-id:key-secret"})
    r.wait_acked(300)
    check_exactly_once(es, ctrs)
    r.t.stop(STOP_BOUND)
    kf = env.path("key")
    with open(kf, "w") as f:
        f.write(key + "\n")  # the encoded form works too
    ctrs[0].write(100)
    r = Run(env, binary, "elasticsearch://" + es.hostport, root,
            ["--es-opt", "auth.api_key_file=" + kf], name="file")
    r.wait_acked(100)
    check_exactly_once(es, ctrs)
    r.t.stop(STOP_BOUND)
    check(es.stats()["auth_failures"] == 0, "authentication failures: %d" %
          es.stats()["auth_failures"])


def case_forbidden(binary, env):
    """403 on web's index: said with the index and the privilege, /health 503, held (not
    dead-lettered); api's index flows meanwhile."""
    es = Es(env, "--forbid-index", "logs-web")
    root, ctrs = fake_root(env, ("web", {}), ("api", {}))
    web, api = ctrs
    dl = env.path("dead.ndjson")
    r = Run(env, binary, "elasticsearch://" + es.hostport, root,
            FAST + ["--es-opt", "dead_letter_file=" + dl, "--shutdown-timeout", "1s"])
    web.write(200)
    api.write(500)
    said = wait_until(lambda: lines_of(r.t, r"error: elasticsearch: 403 .*logs-web-2026.11.25"),
                      15.0, "an error line naming 403 and the index", procs=[r.t])
    check("privilege" in said[0] and "not dead-lettered" in said[0],
          "the 403 line says what to do: %s" % said[0])
    log("    stderr: %s" % said[0][:300])
    wait_until(lambda: len(es.docs().get("logs-api-2026.11.25", {})) == 500, DELIVER,
               "api's 500 lines", procs=[r.t])
    status, body = r.get("/health")
    check(status == 503 and "403" in body, "/health: %s %r" % (status, body))
    check(not os.path.exists(dl), "documents refused with 403 were dead-lettered")
    check("logs-web-2026.11.25" not in es.docs(), "web's lines indexed despite 403")
    time.sleep(1.0)
    check(len(lines_of(r.t, r"error: elasticsearch: 403")) == 1, "the 403 is said once")
    stop_holding(r)


def case_tls(binary, env):
    ca = make_test_ca(env.mkdir("ca"))
    other = make_test_ca(env.mkdir("ca2"))
    es = Es(env, "--tls-cert", ca["cert"], "--tls-key", ca["key"])
    root, ctrs = fake_root(env, ("web", {}))
    url = "https://" + es.hostport
    ctrs[0].write(200)
    r = Run(env, binary, url, root, ["--es-opt", "tls.ca_file=" + ca["ca_cert"]], name="right")
    r.wait_acked(200)
    check_exactly_once(es, ctrs)
    r.t.stop(STOP_BOUND)
    ctrs[0].write(100)
    r = Run(env, binary, url, root, ["--es-opt", "tls.ca_file=" + other["ca_cert"],
                                     "--shutdown-timeout", "1s"], name="wrong")
    said = wait_until(lambda: lines_of(r.t, r"error: elasticsearch: TLS certificate problem"),
                      15.0, "an error line naming the certificate problem", procs=[r.t])
    check("tls.ca_file" in said[0], "the line says what to do: %s" % said[0])
    log("    stderr: %s" % said[0][:300])
    status, body = r.get("/health")
    check(status == 503 and "certificate" in body, "/health: %s %r" % (status, body))
    stop_holding(r)
    r = Run(env, binary, url, root, ["--es-opt", "tls.verify_certificate=false"], name="noverify")
    r.wait_acked(100)
    check(lines_of(r.t, r"warn: elasticsearch: TLS certificates are not checked"),
          "no warning that certificates are not checked")
    check_exactly_once(es, ctrs)
    r.t.stop(STOP_BOUND)


def case_failover(binary, env):
    """The first host refuses connections: the second takes everything; said once."""
    es = Es(env)
    dead = free_port()
    root, ctrs = fake_root(env, ("web", {}), ("api", {}))
    r = Run(env, binary, "elasticsearch://127.0.0.1:%d,%s" % (dead, es.hostport), root, FAST)
    feed(ctrs, 2000, 1000)
    r.wait_acked(total(ctrs))
    check_exactly_once(es, ctrs)
    said = lines_of(r.t, r"warn: elasticsearch: cannot connect to http://127.0.0.1:%d" % dead)
    check(len(said) == 1, "the dead host is said once: %s" % said)
    log("    stderr: %s" % said[0][:250])
    status, body = r.get("/health")
    check("output" not in body, "/health with one host of two up: %s %r" % (status, body))
    # the live host refuses for 2 s too: nothing lost
    es.call("POST", "/_test/faults", {"refuse_ms": 2000})
    for c in ctrs:
        c.write(500)
    r.wait_acked(total(ctrs))
    check_exactly_once(es, ctrs)
    r.t.stop(STOP_BOUND)


def case_bad_options(binary, env):
    logs = env.mkdir("logs")
    path = os.path.join(logs, "app.log")
    with open(path, "w") as f:
        f.write("a line\n")
    base = ["--watch", path, "--state-dir", env.path("state")]
    es = "elasticsearch://127.0.0.1:9"
    for args, want in (
            (["--es-opt", "nope=1"], "nope"),
            (["--es-opt", "batch.max_bytes=lots"], "batch.max_bytes"),
            (["--es-opt", "compression=zstd"], "gzip|none"),
            (["--es-opt", "request.concurrency=0"], "request.concurrency"),
            (["--es-opt", "index=logs-%Q"], "%Q"),
            (["--es-opt", "auth.user=elastic"], "no password"),
            (["--es-opt", "auth.password_file=/nonexistent/pw", "--es-opt", "auth.user=u"],
             "/nonexistent/pw"),
            (["--es-opt", "tls.ca_file=/etc/hostname"], "https"),
            (["--kafka-opt", "acks=all"], "--kafka-opt"),
            (["--output", "elasticsearch://user:pw@127.0.0.1:9"], "credentials"),
            (["--output", "elasticsearch://"], "elasticsearch://HOST:PORT"),
            (["--output", "file:/dev/null", "--es-data-stream"], "--es-data-stream")):
        argv = base + (["--output", es] if "--output" not in args else []) + args
        t = env.tailjet(binary, argv, name="bad")
        rc = t.wait(15)
        err = t.stderr_text()
        check(rc == 2 and want in err, "%s: exit %d (expected 2 naming %r): %r" %
              (" ".join(args), rc, want, err[-300:]))
        log("    %-50s -> %s" % (" ".join(args)[:50], err.strip().splitlines()[-1][:150]))
    check(not os.path.exists(env.path("state", "checkpoints")),
          "a run refused for its options wrote checkpoints")


CASES = [  # (case, time bound in seconds)
    (case_delivery, 90),
    (case_item_faults, 120),
    (case_request_faults, 120),
    (case_drops, 120),
    (case_slow, 120),
    (case_mapping, 90),
    (case_too_large, 90),
    (case_regrow, 90),
    (case_data_stream, 90),
    (case_kill9, 150),
    (case_auth_basic, 90),
    (case_api_key, 60),
    (case_forbidden, 90),
    (case_tls, 90),
    (case_failover, 90),
    (case_bad_options, 120),
]


def main(binary):
    clean_environ()
    run_cases(CASES, "es-", lambda case, env: case(binary, env), figures=FIGURES)


if __name__ == "__main__":
    main_wrapper(main)
