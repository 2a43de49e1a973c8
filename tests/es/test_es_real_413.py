#!/usr/bin/env python3
"""test_es_real_413.py: after a 413, tailjet's requests grow back, against a real node.

Usage: TJ_ES_NODE=DIR test_es_real_413.py PATH/TO/tailjet

DIR is a node of its own that tests/servers/es.sh started (ctest's es_node_413_start fixture)
with http.max_content_length=1mb: a node answers a _bulk body larger than that (decompressed)
with 413 and an empty body, and closes the connection. http.max_content_length is a static
setting, so the shared node of test_es_real.py cannot serve this. A node that is not there
fails the test, it never skips.

Case regrow: batch.max_bytes=4MiB, batch.regrow_after=2s. A burst of ~7 MB of NDJSON meets
413s and tailjet cuts its requests (the warning names the refused size and the new bound); the
bound then doubles every 2 s without a 413, back to 4 MiB (an info line each time); a second
burst is sent in requests larger than the cut bound again (so it meets 413s again: the node's
limit has not moved) and is cut again. The 413s are counted by requests_total{outcome=
"http_error"} (the node answers nothing else with an HTTP error here); every line is one
document (_count, _ids), 0 lost, 0 duplicated.
"""

import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "engine"))
sys.path.insert(0, HERE)
from tj_engine_util import check, log, main_wrapper, run_cases, wait_until  # noqa: E402
from es_common import (STOP_BOUND, Run, check_once, fake_root, lines_of,  # noqa: E402
                       metric, open_node)

LIMIT = 1 << 20          # the node's http.max_content_length (CMake's es_node_413_start)
MAX_BYTES = 4 << 20      # tailjet's batch.max_bytes
REGROW_S = 2.0           # tailjet's batch.regrow_after
LINES = 5000             # per burst, ~1.4 KB of NDJSON each: ~7 MB, two full requests and more
DELIVER = 120.0
CUT_RE = re.compile(r"refused a request of (\d+) bytes as too large \(413\): requests are now "
                    r"cut at (\d+) bytes")
GROWN_RE = re.compile(r"no 413 for [\d.]+ s: requests may be (\d+) bytes again")
FAST = ["--es-opt", "retry.initial_backoff=50ms", "--es-opt", "retry.max_backoff=2s"]
FIGURES = []


def events(r):
    """[("cut", refused bytes, new bound) or ("grown", None, new bound)] in stderr's order."""
    out = []
    for ln in lines_of(r.t, r"elasticsearch: .*(too large \(413\)|bytes again)"):
        m = CUT_RE.search(ln)
        g = GROWN_RE.search(ln)
        if m:
            out.append(("cut", int(m.group(1)), int(m.group(2))))
        elif g:
            out.append(("grown", None, int(g.group(1))))
    return out


def regrow(binary, env, node, compression):
    index = "tjreal-413-" + compression
    node.delete(index)
    root, ctrs = fake_root(env, ("web", {"logIndex": index}))
    c = ctrs[0]
    c.line_bytes = 1000
    r = Run(env, binary, "elasticsearch://" + node.hostport, root,
            FAST + ["--es-opt", "compression=" + compression,
                    "--es-opt", "batch.max_bytes=%d" % MAX_BYTES,
                    "--es-opt", "batch.max_events=100000",
                    "--es-opt", "batch.regrow_after=%gs" % REGROW_S])
    t0 = time.monotonic()
    c.write(LINES)
    r.wait_acked(LINES, DELIVER)
    # no 413 from now on: the bound doubles every REGROW_S back to MAX_BYTES
    wait_until(lambda: any(e[0] == "grown" and e[2] == MAX_BYTES for e in events(r)),
               DELIVER, "the bound to grow back to %d bytes" % MAX_BYTES, procs=[r.t])
    first = events(r)
    cuts1 = [e for e in first if e[0] == "cut"]
    check(cuts1, "the first burst met no 413 (stderr: %s)" % lines_of(r.t, "elasticsearch")[:5])
    lowest = min(e[2] for e in cuts1)
    check(lowest <= LIMIT, "cut to %d bytes at the lowest, above the node's %d" % (lowest, LIMIT))
    last = max(i for i, e in enumerate(first) if e[0] == "cut")
    low = first[last][2]  # the bound the last 413 left, which then grew back
    grown = [e[2] for e in first[last + 1:] if e[0] == "grown"]
    check(len(grown) >= 2 and grown == sorted(grown) and grown[-1] == MAX_BYTES and
          grown[0] == 2 * low, "the bound grows back from %d step by step: %s" % (low, grown))
    e413_1 = metric(r.metrics(), "tailjet_output_requests_total", outcome="http_error")
    c.write(LINES)
    r.wait_acked(2 * LINES, DELIVER)
    second = events(r)[len(first):]
    cuts2 = [e for e in second if e[0] == "cut"]
    check(cuts2 and cuts2[0][1] > low,
          "after the regrowth a request larger than the cut bound %d was sent (and met the "
          "node's limit again): %s" % (low, second))
    m2 = r.metrics()
    e413 = metric(m2, "tailjet_output_requests_total", outcome="http_error")
    n, over = check_once(node, index, ctrs)
    check(over == 0, "%d documents written twice (a 413 indexes nothing)" % over)
    check(metric(m2, "tailjet_output_documents_total", result="indexed") == 2 * LINES,
          "indexed metric %s" % metric(m2, "tailjet_output_documents_total", result="indexed"))
    check(e413_1 > 0 and e413 > e413_1, "413s counted: %s after the first burst, %s in all" %
          (e413_1, e413))
    others = lines_of(r.t, r"elasticsearch: [45]\d\d (from|for) ")
    check(not others, "answers other than 413 (the count of 413s would be off): %s" %
          others[:3])
    ok = metric(m2, "tailjet_output_requests_total", outcome="ok")
    lost = metric(m2, "tailjet_output_requests_total", outcome="transport_error")
    r.t.stop(STOP_BOUND)
    for ln in lines_of(r.t, r"elasticsearch: .*(too large \(413\)|bytes again)")[:3]:
        log("    stderr: %s" % ln[:200])
    FIGURES.append(("regrow, " + compression,
                    "%d lines, %d documents (_count), 0 lost, 0 duplicated; %d requests "
                    "answered 413 (%d in the first burst), %d ok, %d without an answer; cut to "
                    "%d bytes, grown back %s, then a request of %d bytes refused again and cut "
                    "to %d; %.1f s" % (2 * LINES, n, e413, e413_1, ok, lost, low,
                                       " -> ".join(str(g) for g in grown), cuts2[0][1],
                                       cuts2[-1][2], time.monotonic() - t0)))


def case_regrow_gzip(binary, env, node):
    """gzip bodies (the default): small on the wire, the node reads one whole, decompresses it,
    finds it too large and answers 413 with `connection: close`."""
    regrow(binary, env, node, "gzip")


def case_regrow_none(binary, env, node):
    """Uncompressed bodies: the node answers 413 while the body is still being sent; libcurl
    stops sending and reads the answer."""
    regrow(binary, env, node, "none")


CASES = [(case_regrow_gzip, 180), (case_regrow_none, 180)]


def main(binary):
    node = open_node()
    run_cases(CASES, "esreal413-", lambda case, env: case(binary, env, node), figures=FIGURES)


if __name__ == "__main__":
    main_wrapper(main)
