#!/usr/bin/env python3
"""test_es_server.py: checks tj_es_server.py itself, so tests of tailjet's Elasticsearch output
can trust it.

Usage: python3 tests/es/test_es_server.py   (standard library only; about 10 s)

Each case starts its own server (EsServer, in threads of this process; the cli case runs the
command line in a subprocess and stops it by its pid) and talks to it with http.client, as a
client would: the Elasticsearch answers for good and bad bulk requests, the strictness rules,
gzip both ways, chunked bodies, keep-alive and concurrency, Basic and ApiKey authentication,
forbidden indices, mapping refusals, every fault, the control endpoints, TLS with a right and a
wrong CA, filter_path. A failing case is reported and the others still run; the exit status is 1 if any
failed. TJ_CASES=name,name runs some cases only.
"""

import base64
import gzip
import http.client
import json
import os
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from tj_es_server import EsServer, make_test_ca  # noqa: E402

NDJSON = {"Content-Type": "application/x-ndjson"}


class Failure(Exception):
    pass


def check(cond, what, detail=""):
    if not cond:
        raise Failure("%s%s" % (what, (": %s" % (detail,)) if detail != "" else ""))


# ------------------------------------------------------------------------------------------
# A small client

def connect(url, timeout=5.0, context=None):
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        return http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=context)
    return http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)


def request(url, method, path, body=None, headers=None, timeout=5.0, conn=None):
    """Returns (status, headers, body bytes); uses `conn` (kept open) if given."""
    own = conn is None
    conn = conn or connect(url, timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.headers, resp.read()
    finally:
        if own:
            conn.close()


def ndjson(*objs):
    return "".join(json.dumps(o) + "\n" for o in objs).encode()


def bulk(es, body, path="/_bulk", headers=None, conn=None, timeout=5.0):
    """Posts a bulk body; returns (status, parsed answer)."""
    status, _, data = request(es.url, "POST", path, body, dict(NDJSON, **(headers or {})),
                              timeout=timeout, conn=conn)
    return status, json.loads(data) if data else None


def get_json(es, path):
    status, _, data = request(es.url, "GET", path)
    check(status == 200, "GET %s answers 200" % path, status)
    return json.loads(data)


def item_of(answer, n):
    (op, item), = answer["items"][n].items()
    return op, item


def docs_of(items):
    """Index action + source lines for `items` of (index, id, source)."""
    lines = []
    for index, doc_id, source in items:
        meta = {"_index": index}
        if doc_id is not None:
            meta["_id"] = doc_id
        lines += [{"index": meta}, source]
    return ndjson(*lines)


def expect_whole_error(es, body, status, etype, headers=None, path="/_bulk"):
    got, answer = bulk(es, body, path=path, headers=headers)
    check(got == status, "whole-request status %d" % status, (got, answer))
    check(answer["status"] == status and answer["error"]["type"] == etype
          and answer["error"]["root_cause"][0]["type"] == etype,
          "Elasticsearch error body of type %s" % etype, answer)
    return answer


def expect_dropped(fn):
    try:
        fn()
    except (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine):
        return
    raise Failure("expected the connection to close without an answer")


# ------------------------------------------------------------------------------------------
# Cases

def case_probes():
    with EsServer() as es:
        info = get_json(es, "/")
        check(info["version"]["number"] == "8.11.0" and info["tagline"] == "You Know, for Search",
              "GET / cluster info", info)
        status, headers, data = request(es.url, "HEAD", "/")
        check(status == 200 and data == b"" and int(headers["Content-Length"]) > 0,
              "HEAD / answers headers only", (status, dict(headers)))
        check(headers["X-elastic-product"] == "Elasticsearch", "X-elastic-product header")
        check(get_json(es, "/_cluster/health")["status"] == "green", "cluster health green")
        status, headers, data = request(es.url, "GET", "/_nope/x")
        check(status == 404 and json.loads(data)["status"] == 404, "unknown path 404 JSON",
              (status, data))
        check(headers["Content-Type"] == "application/json", "answers are application/json")
        status, headers, data = request(es.url, "GET", "/_bulk")
        check(status == 405 and "POST" in headers["Allow"], "GET /_bulk is 405", (status, data))
        status, _, _ = request(es.url, "GET", "/missing")
        check(status == 404, "GET /<missing index> 404", status)


def case_bulk_basic():
    with EsServer() as es:
        body = ndjson({"index": {"_index": "logs", "_id": "1"}}, {"msg": "one"},
                      {"create": {"_index": "logs", "_id": "2"}}, {"msg": "two"},
                      {"index": {"_id": "3"}}, {"msg": "three, default index"},
                      {"index": {}}, {"msg": "no id"},
                      {"delete": {"_id": "nothing"}})
        status, answer = bulk(es, body, path="/dflt/_bulk")
        check(status == 200 and answer["errors"] is False, "a valid bulk: 200, errors false",
              answer)
        check(isinstance(answer["took"], int) and len(answer["items"]) == 5, "took and 5 items")
        op, item = item_of(answer, 0)
        check(op == "index" and item["status"] == 201 and item["result"] == "created"
              and item["_version"] == 1 and item["_index"] == "logs" and item["_id"] == "1"
              and item["_primary_term"] == 1 and item["_seq_no"] == 0
              and item["_shards"]["successful"] == 1, "index item shape", item)
        op, item = item_of(answer, 2)
        check(item["_index"] == "dflt", "path index is the default", item)
        op, item = item_of(answer, 3)
        check(len(item["_id"]) == 20 and item["status"] == 201, "generated id", item)
        op, item = item_of(answer, 4)
        check(op == "delete" and item["status"] == 404 and item["result"] == "not_found"
              and "error" not in item, "delete of a missing id: 404 not_found, no error", item)
        docs = es.docs()
        check(docs["logs"] == {"1": {"msg": "one"}, "2": {"msg": "two"}}, "docs stored", docs)
        check(len(docs["dflt"]) == 2, "default index docs", docs)

        body = ndjson({"index": {"_index": "logs", "_id": "1"}}, {"msg": "one again"},
                      {"create": {"_index": "logs", "_id": "2"}}, {"msg": "two again"},
                      {"index": {"_index": "logs", "_id": "4", "op_type": "create"}}, {"m": 4},
                      {"delete": {"_index": "logs", "_id": "4"}})
        status, answer = bulk(es, body)
        check(status == 200 and answer["errors"] is True, "a 409 sets errors", answer)
        op, item = item_of(answer, 0)
        check(item["status"] == 200 and item["result"] == "updated" and item["_version"] == 2,
              "overwrite: 200 updated, version 2", item)
        op, item = item_of(answer, 1)
        check(op == "create" and item["status"] == 409
              and item["error"]["type"] == "version_conflict_engine_exception"
              and "document already exists" in item["error"]["reason"], "create conflict", item)
        op, item = item_of(answer, 2)
        check(op == "create" and item["status"] == 201, "op_type create answers as create", item)
        op, item = item_of(answer, 3)
        check(item["status"] == 200 and item["result"] == "deleted", "delete", item)
        check(es.docs("logs")["logs"]["1"] == {"msg": "one again"}
              and es.docs("logs")["logs"]["2"] == {"msg": "two"}, "409 kept the first source")
        stats = es.stats()
        check(stats["overwrites"] == 1 and stats["docs_without_id"] == 1
              and stats["duplicate_ids"] == 1, "overwrite and no-id counters", stats)
        check(stats["items_by_status"] == {"201": 5, "404": 1, "200": 2, "409": 1},
              "items by status", stats["items_by_status"])
        check(es.writes(min_count=2) == {"logs": {"1": 2}, "dflt": {}}, "writes min 2",
              es.writes(2))
        check(get_json(es, "/_test/writes?min=2")["logs"] == {"1": 2}, "GET /_test/writes")
        check(get_json(es, "/logs/_count")["count"] == 2, "GET /<index>/_count")
        doc = get_json(es, "/logs/_doc/1")
        check(doc["found"] and doc["_source"] == {"msg": "one again"}, "GET _doc", doc)
        status, _, data = request(es.url, "POST", "/_test/reset")
        check(status == 200 and es.docs() == {} and es.stats()["items"] == 0, "reset")


def case_strict_request():
    with EsServer() as es:
        good = ndjson({"index": {"_index": "a", "_id": "1"}}, {"x": 1})
        expect_whole_error(es, good[:-1], 400, "illegal_argument_exception")
        got, answer = bulk(es, good, headers={"Content-Type": "text/plain"})
        check(got == 406 and answer == {"error": "Content-Type header [text/plain] is not "
                                        "supported", "status": 406}, "406 body", answer)
        status, _, data = request(es.url, "POST", "/_bulk", good, {})
        check(status == 406, "no Content-Type: 406", (status, data))
        for ctype in ("application/json", "application/x-ndjson; charset=UTF-8",
                      "application/vnd.elasticsearch+x-ndjson; compatible-with=8"):
            got, answer = bulk(es, good, headers={"Content-Type": ctype})
            check(got == 200, "Content-Type %s accepted" % ctype, answer)
        # a malformed action anywhere: 400 and nothing at all indexed, not even earlier items
        bad = ndjson({"index": {"_index": "b", "_id": "1"}}, {"x": 1}) + b'{"index": {\n{}\n'
        expect_whole_error(es, bad, 400, "x_content_parse_exception")
        for tail, etype, reason in (
                ([{"upsert": {"_index": "b"}}, {}], "illegal_argument_exception",
                 "expected one of [create, delete, index, update] but found [upsert]"),
                ([{"index": {"_index": "b", "_type": "_doc"}}, {}], "illegal_argument_exception",
                 "contains an unknown parameter [_type]"),
                ([{"index": {"_id": "1"}}, {}], "action_request_validation_exception",
                 "index is missing"),
                ([{"delete": {"_index": "b"}}], "action_request_validation_exception",
                 "id is missing"),
                # delete takes no source line: the next line is read as an action
                ([{"delete": {"_index": "b", "_id": "1"}}, {"x": 1}],
                 "illegal_argument_exception", "but found [x]")):
            body = ndjson({"index": {"_index": "b", "_id": "0"}}, {"x": 0}, *tail)
            answer = expect_whole_error(es, body, 400, etype)
            check(reason in answer["error"]["reason"], "reason names %s" % reason, answer)
        expect_whole_error(es, b"", 400, "parse_exception")
        expect_whole_error(es, b"\n", 400, "action_request_validation_exception")
        expect_whole_error(es, ndjson({"index": {"_index": "b"}}), 400,
                           "action_request_validation_exception")
        expect_whole_error(es, good, 400, "illegal_argument_exception", path="/_bulk?bogus=1")
        check("b" not in es.docs(), "no request above indexed anything", es.docs())
        got, _ = bulk(es, good, path="/_bulk?refresh=wait_for&timeout=1m")
        check(got == 200, "known query parameters accepted")
        # CRLF line ends and blank action lines are accepted
        got, answer = bulk(es, b'\n{"index":{"_index":"c","_id":"1"}}\r\n{"x":1}\r\n\n')
        check(got == 200 and not answer["errors"] and es.docs("c")["c"]["1"] == {"x": 1},
              "CRLF and blank lines", answer)


def case_strict_items():
    with EsServer() as es:
        body = (ndjson({"index": {"_index": "d", "_id": "ok1"}}, {"x": 1},
                       {"index": {"_index": "d", "_id": "badjson"}}) + b'{"x": \n'
                + ndjson({"index": {"_index": "d", "_id": "array"}}, [1, 2],
                         {"index": {"_index": "Upper"}}, {"x": 1},
                         {"index": {"_index": "_under"}}, {"x": 1},
                         {"index": {"_index": "d", "_id": "x" * 513}}, {"x": 1},
                         {"update": {"_index": "d", "_id": "ok1"}}, {"doc": {"x": 2}},
                         {"index": {"_index": "d", "_id": "ok2"}}, {"x": 2}))
        status, answer = bulk(es, body)
        check(status == 200 and answer["errors"] is True, "item faults answer 200 errors", answer)
        want = [201, 400, 400, 400, 400, 400, 400, 201]
        got = [item_of(answer, n)[1]["status"] for n in range(len(want))]
        check(got == want, "per-item statuses", got)
        types = [item_of(answer, n)[1].get("error", {}).get("type") for n in range(len(want))]
        check(types[1:4] == ["mapper_parsing_exception", "mapper_parsing_exception",
                             "invalid_index_name_exception"], "error types", types)
        check("must be lowercase" in item_of(answer, 3)[1]["error"]["reason"], "lowercase rule")
        check(sorted(es.docs()["d"]) == ["ok1", "ok2"], "only the good items stored", es.docs())


def case_encodings():
    with EsServer() as es:
        body = docs_of([("g", str(n), {"n": n}) for n in range(100)])
        got, answer = bulk(es, gzip.compress(body), headers={"Content-Encoding": "gzip"})
        check(got == 200 and not answer["errors"] and len(es.docs("g")["g"]) == 100,
              "gzip body indexed", answer)
        stats = es.stats()
        check(stats["gzip_requests"] == 1 and stats["bytes_decompressed"] == len(body)
              and stats["bytes_received"] < len(body), "gzip stats", stats)
        expect_whole_error(es, b"not gzip at all\n", 400, "illegal_argument_exception",
                           headers={"Content-Encoding": "gzip"})
        status, headers, data = request(es.url, "POST", "/_bulk", body,
                                        dict(NDJSON, **{"Accept-Encoding": "gzip"}))
        check(status == 200 and headers["Content-Encoding"] == "gzip"
              and int(headers["Content-Length"]) == len(data)
              and len(json.loads(gzip.decompress(data))["items"]) == 100, "gzip answer")
        # chunked request body
        conn = connect(es.url)
        conn.putrequest("POST", "/_bulk")
        conn.putheader("Content-Type", "application/x-ndjson")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        for piece in (body[:100], body[100:]):
            conn.send(b"%x\r\n%s\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
        resp = conn.getresponse()
        answer = json.loads(resp.read())
        conn.close()
        check(resp.status == 200 and len(answer["items"]) == 100, "chunked body", resp.status)


def case_keepalive_and_concurrency():
    with EsServer() as es:
        conn = connect(es.url)
        for n in range(50):
            got, answer = bulk(es, docs_of([("k", "%d" % n, {"n": n})]), conn=conn)
            check(got == 200, "keep-alive request %d" % n, answer)
        conn.close()
        check(es.stats()["connections"] == 1, "50 requests on one connection",
              es.stats()["connections"])
        es.set_faults(delay_ms=300)
        results = []

        def one(n):
            got, answer = bulk(es, docs_of([("c", "%d" % n, {"n": n})]))
            results.append(got)

        threads = [threading.Thread(target=one, args=(n,)) for n in range(16)]
        begin = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        took = time.monotonic() - begin
        check(results == [200] * 16 and took < 2.0, "16 concurrent slow requests", (results, took))
        check(es.stats()["max_concurrent_requests"] >= 8, "max_concurrent_requests",
              es.stats()["max_concurrent_requests"])


def case_auth():
    basic = "Basic " + base64.b64encode(b"elastic:s3cret").decode()
    key = base64.b64encode(b"kid:kvalue").decode()
    with EsServer(user="elastic", password="s3cret", api_key=key,
                  forbid_index=["secret-"]) as es:
        body = docs_of([("pub", "1", {"x": 1}), ("secret-x", "2", {"x": 2})])
        for auth in (None, "Basic " + base64.b64encode(b"elastic:wrong").decode(),
                     "ApiKey wrong", "Bearer x"):
            got, headers, data = request(es.url, "POST", "/_bulk", body, dict(
                NDJSON, **({"Authorization": auth} if auth else {})))
            answer = json.loads(data)
            check(got == 401 and answer["error"]["type"] == "security_exception",
                  "401 for %s" % auth, answer)
            check('Basic realm="security" charset="UTF-8"' in headers.get_all("WWW-Authenticate"),
                  "WWW-Authenticate", headers.get_all("WWW-Authenticate"))
        check(request(es.url, "GET", "/")[0] == 401, "GET / asks for credentials too")
        check(es.docs() == {}, "nothing indexed without credentials")
        for auth in (basic, "ApiKey " + key):
            got, answer = bulk(es, body, headers={"Authorization": auth})
            check(got == 200 and item_of(answer, 0)[1]["status"] in (200, 201),
                  "authorized with %s" % auth.split()[0], answer)
            item = item_of(answer, 1)[1]
            check(item["status"] == 403 and item["error"]["type"] == "security_exception"
                  and "is unauthorized for user" in item["error"]["reason"]
                  and "[secret-x]" in item["error"]["reason"], "forbidden index", item)
        check(list(es.docs()) == ["pub"], "forbidden index not written", es.docs())
        check(get_json(es, "/_test/stats")["auth_failures"] == 5, "control needs no auth")


def case_mapping():
    with EsServer(mapping=["http.response.status_code=long", "user.name=keyword"]) as es:
        cases = [({"http": {"response": {"status_code": 200}}}, 201),
                 ({"http.response.status_code": "404"}, 201),
                 ({"http": {"response.status_code": 2.0}}, 201),
                 ({"http": {"response": {"status_code": "abc"}}}, 400),
                 ({"http.response": {"status_code": True}}, 400),
                 ({"http.response.status_code": 2 ** 63}, 400),
                 ({"user": {"name": {"first": "a"}}}, 400),
                 ({"user": {"name": ["a", 1]}}, 201),
                 ({"es_reject": True, "x": 1}, 400),
                 ({"es_reject": False}, 201)]
        body = docs_of([("m", str(n), doc) for n, (doc, _) in enumerate(cases)])
        got, answer = bulk(es, body)
        statuses = [item_of(answer, n)[1]["status"] for n in range(len(cases))]
        check(statuses == [want for _, want in cases], "mapping statuses", statuses)
        error = item_of(answer, 3)[1]["error"]
        check(error["type"] == "mapper_parsing_exception" and error["reason"] ==
              "failed to parse field [http.response.status_code] of type [long] in document "
              "with id '3'. Preview of field's value: 'abc'", "mapping reason", error)


def case_faults_items():
    with EsServer(item_429_rate=1.0) as es:
        got, answer = bulk(es, docs_of([("f", str(n), {"n": n}) for n in range(10)]))
        check(got == 200 and answer["errors"] and all(
            item_of(answer, n)[1]["status"] == 429 and item_of(answer, n)[1]["error"]["type"]
            == "es_rejected_execution_exception" for n in range(10)), "item 429 rate 1", answer)
        check(es.docs() == {}, "429 items not stored")
        es.set_faults(item_429_rate=0.0, item_503_rate=1.0)
        got, answer = bulk(es, docs_of([("f", "1", {"n": 1})]))
        check(item_of(answer, 0)[1]["status"] == 503 and item_of(answer, 0)[1]["error"]["type"]
              == "unavailable_shards_exception", "item 503", answer)
        es.set_faults(item_503_rate=0.0, item_429_rate=0.3)
        got, answer = bulk(es, docs_of([("f", str(n), {"n": n}) for n in range(2000)]))
        rejected = sum(1 for n in range(2000) if item_of(answer, n)[1]["status"] == 429)
        check(500 <= rejected <= 700, "item_429_rate 0.3 of 2000", rejected)
        check(len(es.docs("f")["f"]) == 2000 - rejected, "the rest stored")


def case_faults_requests():
    with EsServer() as es:
        body = docs_of([("r", "1", {"n": 1})])
        for rate, status, etype in (("request_429_rate", 429, "es_rejected_execution_exception"),
                                    ("request_500_rate", 500, "exception"),
                                    ("request_503_rate", 503, "cluster_block_exception")):
            es.set_faults(**{rate: 1.0})
            expect_whole_error(es, body, status, etype)
            es.set_faults(**{rate: 0.0})
        check(es.docs() == {}, "nothing indexed by failed requests", es.docs())
        es.set_faults(drop_before_rate=1.0)
        expect_dropped(lambda: bulk(es, body))
        check(es.docs() == {} and es.stats()["dropped_before"] == 1, "drop before: nothing kept")
        es.set_faults(drop_before_rate=0.0, drop_after_rate=1.0)
        expect_dropped(lambda: bulk(es, body))
        check(es.docs() == {"r": {"1": {"n": 1}}} and es.stats()["dropped_after"] == 1,
              "drop after: the document is kept", es.docs())
        es.set_faults(drop_after_rate=0.0, delay_ms=400)
        begin = time.monotonic()
        got, _ = bulk(es, body)
        check(got == 200 and time.monotonic() - begin >= 0.4, "delay_ms")
        try:
            bulk(es, docs_of([("r", "2", {"n": 2})]), timeout=0.1)
            raise Failure("a 0.1 s client timeout should fire against delay_ms 400")
        except socket.timeout:
            pass
        es.set_faults(delay_ms=0)
        check(es.wait_for_docs(2, "r", 2.0), "a timed-out request was still indexed")
        check(es.set_faults(drop_rate=0.5)["drop_before_rate"] == 0.25, "drop_rate shorthand")


def case_down_and_refuse():
    with EsServer() as es:
        body = docs_of([("u", "1", {"n": 1})])
        idle = connect(es.url)
        check(bulk(es, body, conn=idle)[0] == 200, "before down")
        status, _, data = request(es.url, "POST", "/_test/faults", b'{"down": true}')
        check(status == 200 and json.loads(data)["down"] is True, "down via control endpoint")
        expect_dropped(lambda: bulk(es, body, conn=idle))  # the idle keep-alive one too
        expect_dropped(lambda: request(es.url, "GET", "/"))
        check(get_json(es, "/_test/faults")["down"] is True, "control works while down")
        es.set_faults(down=False)
        check(request(es.url, "GET", "/")[0] == 200, "up again")
        idle.close()  # down closed it; http.client connects again on the next request
        check(bulk(es, body, conn=idle)[0] == 200, "a fresh keep-alive connection after down")
        es.set_faults(refuse_ms=600)
        expect_dropped(lambda: bulk(es, body, conn=idle))  # open connections die too
        time.sleep(0.15)
        try:
            socket.create_connection(("127.0.0.1", es.port), timeout=1).close()
            raise Failure("connect should be refused while refuse_ms runs")
        except ConnectionRefusedError:
            pass
        check(0 < es.faults()["refuse_ms"] <= 600, "refuse_ms reads back what is left")
        time.sleep(0.7)
        check(request(es.url, "GET", "/")[0] == 200, "listening again on the same port")
        check(es.stats()["dropped_down"] >= 1, "dropped_down counted", es.stats())


def case_control():
    with EsServer(item_429_rate=0.5, seed=7) as es:
        for change, why in (({"nope": 1}, "unknown fault"), ({"item_429_rate": 2}, "rate > 1"),
                            ({"down": "yes"}, "non-bool"), ([1], "not an object")):
            status, _, data = request(es.url, "POST", "/_test/faults",
                                      json.dumps(change).encode())
            check(status == 400 and "error" in json.loads(data), "faults reject %s" % why, data)
        check(get_json(es, "/_test/faults")["item_429_rate"] == 0.5, "bad changes change nothing")
        es.set_faults(item_429_rate=0.0, delay_ms=5)
        request(es.url, "POST", "/_test/reset")
        check(es.faults()["item_429_rate"] == 0.5 and es.faults()["delay_ms"] == 0,
              "reset restores the start faults", es.faults())
        stats = get_json(es, "/_test/stats")
        for key in ("requests", "items", "items_by_status", "bytes_received",
                    "bytes_decompressed", "gzip_requests", "max_concurrent_requests",
                    "connections", "overwrites", "docs_without_id"):
            check(key in stats, "stats has %s" % key, stats)


def case_no_store_source():
    with EsServer(store_source=False) as es:
        bulk(es, docs_of([("n", "1", {"big": "x" * 1000})]))
        check(es.docs() == {"n": {"1": None}}, "ids kept, sources not", es.docs())
        got, answer = bulk(es, ndjson({"create": {"_index": "n", "_id": "1"}}, {"x": 1}))
        check(item_of(answer, 0)[1]["status"] == 409, "create conflicts still detected")


def case_tls():
    with tempfile.TemporaryDirectory() as tmp:
        ca = make_test_ca(os.path.join(tmp, "ca"))
        other = make_test_ca(os.path.join(tmp, "other"))
        with EsServer(tls_cert=ca["cert"], tls_key=ca["key"]) as es:
            check(es.url.startswith("https://"), "https url", es.url)
            good = ssl.create_default_context(cafile=ca["ca_cert"])
            for host in ("127.0.0.1", "localhost"):
                conn = http.client.HTTPSConnection(host, es.port, context=good, timeout=5)
                status, _, data = request(es.url, "POST", "/_bulk",
                                          docs_of([("t", host, {"h": host})]), NDJSON, conn=conn)
                conn.close()
                check(status == 200, "TLS verified with the CA file via %s" % host, data)
            wrong = ssl.create_default_context(cafile=other["ca_cert"])
            conn = http.client.HTTPSConnection("127.0.0.1", es.port, context=wrong, timeout=5)
            try:
                conn.request("GET", "/")
                raise Failure("a client trusting another CA must fail")
            except ssl.SSLCertVerificationError:
                pass
            finally:
                conn.close()
            time.sleep(0.1)
            check(es.stats()["tls_handshake_failures"] >= 1, "handshake failure counted")
            check(len(es.docs("t")["t"]) == 2, "docs over TLS")


def case_cli():
    with tempfile.TemporaryDirectory() as tmp:
        port_file = os.path.join(tmp, "port")
        proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "tj_es_server.py"), "--port", "0",
             "--port-file", port_file, "--request-429-rate", "1", "--mapping", "n=long"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline()
            check(line.startswith("listening on http://127.0.0.1:"), "listening line", line)
            port = int(open(port_file).read())
            check(line.strip().endswith(":%d" % port), "port file matches", (line, port))
            url = "http://127.0.0.1:%d" % port
            body = docs_of([("cli", "1", {"n": "x"})])
            status, _, _ = request(url, "POST", "/_bulk", body, NDJSON)
            check(status == 429, "--request-429-rate 1", status)
            request(url, "POST", "/_test/faults", b'{"request_429_rate": 0}')
            status, _, data = request(url, "POST", "/_bulk", body, NDJSON)
            check(status == 200 and json.loads(data)["items"][0]["index"]["status"] == 400,
                  "--mapping n=long refuses 'x'", data)
            proc.terminate()
            check(proc.wait(5) == 0, "SIGTERM: exit status 0", proc.returncode)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
            proc.stderr.close()


def case_filter_path():
    """filter_path as Elasticsearch's response filtering: what a bulk client asks for stays,
    the rest goes; errors are never filtered; exclusions are refused (not implemented)."""
    with EsServer(mapping={"n": "long"}) as es:
        body = docs_of([("f", "1", {"n": 1}), ("f", "2", {"n": "x"})])
        got, answer = bulk(es, body, path="/_bulk?filter_path=errors,items.*.status,"
                           "items.*.error.type")
        check(got == 200 and answer == {"errors": True, "items": [
            {"index": {"status": 201}},
            {"index": {"status": 400, "error": {"type": "mapper_parsing_exception"}}}]},
            "bulk answer filtered to errors, status and error type", answer)
        got, answer = bulk(es, docs_of([("f", "3", {"n": 3})]),
                           path="/_bulk?filter_path=**.result,took")
        check(got == 200 and set(answer) == {"took", "items"} and
              answer["items"] == [{"index": {"result": "created"}}], "** and top-level", answer)
        got, answer = bulk(es, docs_of([("f", "4", {"n": 4})]), path="/_bulk?filter_path=nope")
        check(got == 200 and answer == {}, "nothing matches: {}", answer)
        check(get_json(es, "/?filter_path=version.num*") == {"version": {"number": "8.11.0"}},
              "a wildcard in a name (GET /)")
        got, answer = bulk(es, b"", path="/_bulk?filter_path=errors")
        check(got == 400 and answer["error"]["type"] == "parse_exception",
              "an error answer is not filtered", answer)
        got, answer = bulk(es, docs_of([("f", "5", {"n": 5})]), path="/_bulk?filter_path=-took")
        check(got == 400 and "not implemented" in answer["error"]["reason"] and
              "5" not in es.docs("f")["f"], "exclusions refused before indexing", answer)


CASES = [case_probes, case_bulk_basic, case_strict_request, case_strict_items, case_encodings,
         case_keepalive_and_concurrency, case_auth, case_mapping, case_faults_items,
         case_faults_requests, case_down_and_refuse, case_control, case_no_store_source,
         case_tls, case_cli, case_filter_path]


def main():
    only = set(filter(None, os.environ.get("TJ_CASES", "").split(",")))
    failed = []
    begin = time.monotonic()
    for case in CASES:
        name = case.__name__[len("case_"):]
        if only and name not in only:
            continue
        start = time.monotonic()
        try:
            case()
            print("ok    %-28s %.2f s" % (name, time.monotonic() - start), flush=True)
        except Exception as e:  # a failing case is reported; the others still run
            failed.append(name)
            print("FAIL  %-28s %s" % (name, e), flush=True)
            if not isinstance(e, Failure):
                traceback.print_exc()
    print("%d failed of %d cases, %.1f s" % (len(failed), len(CASES) if not only else len(only),
                                            time.monotonic() - begin))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
