#!/usr/bin/env python3
"""tj_es_server.py: a strict Elasticsearch `_bulk` server, to test tailjet's Elasticsearch output.

Debian packages no Elasticsearch, so the output is tested against this: one Python file,
standard library only, speaking Elasticsearch 8.11's REST dialect for the calls a log shipper
makes, keeping every document it indexed, and injecting the faults a real cluster produces.

Run it:   python3 tj_es_server.py --port 0 [--host 127.0.0.1] [--port-file F] [flags]
          prints "listening on http://127.0.0.1:PORT", writes PORT to F once ready, serves until
          SIGTERM/SIGINT, then exits 0.
Import:   with EsServer(port=0, item_429_rate=0.1) as es: ... es.url, es.docs(), es.stats()
Test CA:  python3 tj_es_server.py --make-test-ca DIR   (or make_test_ca(DIR) from Python)

Endpoints (Elasticsearch's)
  POST|PUT /_bulk, /<index>/_bulk  NDJSON action/source pairs; the path's index is the default.
  GET|HEAD /                       cluster info: version.number "8.11.0", tagline.
  GET /_cluster/health             green, one node.
  GET|HEAD /<index>                200 if it holds documents, else 404 index_not_found_exception.
  GET /<index>/_doc/<id>           one document ({"found": ...}).
  GET|POST /<index>/_count         {"count": N} (the body, a query, is ignored).
  POST /_refresh, /<index>/_refresh  no-op, answered as Elasticsearch does.
  Anything else: 404 {"error": "no handler found for uri [...] and method [...]", "status": 404};
  a known path with the wrong method: 405 with Allow, as Elasticsearch does.

How strict `_bulk` is (each rule is what Elasticsearch 8 does, unless marked "test server")
  * Content-Type must be application/x-ndjson or application/json (any parameters, such as
    "; charset=UTF-8"), or the compatible-with=7|8 vendor types the official clients send;
    otherwise 406 {"error":"Content-Type header [X] is not supported","status":406}
    ("Content-Type header is missing" when absent).  Applies to any request with a body.
  * Content-Encoding gzip (or deflate) is decompressed; a body that does not decompress: 400.
    Transfer-Encoding chunked and Expect: 100-continue are supported.
  * The body must end with "\\n", else 400 illegal_argument_exception "The bulk request must be
    terminated by a newline [\\n]".  "\\r\\n" is accepted.  Blank action lines are skipped.
  * Action lines are parsed before anything is executed; any fault in one answers 400 for the
    whole request and indexes nothing: not JSON (x_content_parse_exception), not exactly one of
    create/delete/index/update (illegal_argument_exception "Malformed action/metadata line [N],
    ..."), a metadata key Elasticsearch 8 does not know -- `_type` included -- ("Action/metadata
    line [N] contains an unknown parameter [K]"), no index in the action nor the path, or no _id
    for delete/update (action_request_validation_exception "Validation Failed: 1: index is
    missing;"), an index/create action with no source line, an empty request ("no requests
    added"; no body at all: 400 parse_exception "request body is required").  Unknown query
    parameters: 400 "request [/_bulk] contains unrecognized parameter: [P]".
  * filter_path (any endpoint, as Elasticsearch's response filtering): comma-separated dotted
    paths; `*` matches any part of a field name, `**` any number of levels; arrays are
    transparent; objects left empty are dropped ({} when nothing matches).  Error answers (a body
    with "error" and "status") are never filtered, as Elasticsearch renders them unfiltered.
    Exclusions (a leading "-"): 400 (test server: not implemented, so never silently wrong).
  * Source lines are parsed per item, as Elasticsearch parses them on the shard: a source that is
    not a JSON object fails that item only (400 mapper_parsing_exception "failed to parse"), not
    the request.  (Elasticsearch 8.8+ names this type document_parsing_exception; a client
    should act on the status, never the type.)
  * Per item, in this order: invalid index name (400 invalid_index_name_exception: uppercase,
    leading _ - +, one of \\ / * ? " < > | space , # :, "." or "..", over 255 bytes); _id over 512
    bytes or empty (400 illegal_argument_exception); --forbid-index prefix (403
    security_exception); injected 429/503; source not an object (400); --mapping or "es_reject"
    (400 mapper_parsing_exception); then the operation itself.
  * index: creates (201 "created") or overwrites (200 "updated"); create on an existing _id: 409
    version_conflict_engine_exception (the document is there: a client counts it as delivered);
    delete: 200 "deleted" or 404 "not_found" (not an error: `errors` stays false), 404
    index_not_found_exception if the index does not exist; update: 400 per item (test server:
    not supported).  An absent _id gets a generated 20-character one (seeded by --seed).
    `_version` counts writes and deletes of an _id, `_seq_no` counts operations per index,
    `_primary_term` is 1.  Items are answered in request order; HTTP status 200 whenever the
    request itself was valid, `errors` true iff some item carries an "error".
  * Responses are application/json with X-elastic-product: Elasticsearch, gzipped when the
    request's Accept-Encoding names gzip; HTTP/1.1 keep-alive with Content-Length; one thread
    per connection, so many connections at once.  Bodies over --max-content-length: 413.

Authentication (off unless a flag sets it; the /_test/ endpoints never ask for it)
  --user U --password P   accept "Authorization: Basic base64(U:P)".
  --api-key KEY           accept "Authorization: ApiKey KEY" (KEY compared as sent, i.e. the
                          base64 of id:key that clients put in the header).
  Missing or wrong: 401 security_exception, with WWW-Authenticate: Basic realm="security"
  charset="UTF-8" (and a second WWW-Authenticate: ApiKey), as Elasticsearch answers.
  --forbid-index PREFIX   (repeatable) items whose index starts with PREFIX: 403 security_exception
                          "action [indices:data/write/bulk[s]] is unauthorized for user [U] ...".

Mappings (400s on demand)
  --mapping FIELD=TYPE    (repeatable) e.g. http.response.status_code=long.  FIELD is dotted and
                          matches nested objects and dotted keys alike.  Types: long, integer,
                          short, byte (an integer, an integral float or an integer string, in
                          range), double, float (a number or numeric string), keyword (any
                          scalar), boolean (true/false or "true"/"false").  null always fits;
                          arrays fit when each element does.  A value that does not fit: item 400
                          mapper_parsing_exception "failed to parse field [F] of type [T] in
                          document with id 'ID'. Preview of field's value: 'V'".
  A document with a top-level "es_reject": true is always refused that way (a test hook).

Faults: set at start by flags (--item-429-rate 0.1 ...) and at run time by POST /_test/faults
{"item_429_rate": 0.1} or EsServer.set_faults(item_429_rate=0.1); GET /_test/faults shows them.
Random draws come from one RNG seeded by --seed (default 0).  Faults apply to /_bulk only,
except down and refuse_ms, which apply to every Elasticsearch endpoint.
  item_429_rate     each item, independently: 429 es_rejected_execution_exception.
  item_503_rate     each item: 503 unavailable_shards_exception (primary shard not active).
  request_429_rate  whole request: 429 es_rejected_execution_exception body, nothing indexed.
  request_500_rate  whole request: 500, nothing indexed.
  request_503_rate  whole request: 503 cluster_block_exception, nothing indexed.
  drop_before_rate  connection closed without an answer before indexing (nothing indexed).
  drop_after_rate   connection closed without an answer AFTER indexing: the documents ARE kept
                    but the client never learns it (the case that makes deterministic ids pay).
  drop_rate         write-only shorthand: drop_before_rate = drop_after_rate = drop_rate / 2.
  delay_ms          sleep this long after indexing, before answering (slow cluster; a client
                    that times out and retries produces duplicates unless its ids are stable).
  down              true: every request but /_test/ ones gets its connection closed without an
                    answer (idle keep-alive connections are closed at once); TCP connects work.
  refuse_ms         the listening socket is closed for this many ms from now, so connects get
                    ECONNREFUSED, and open connections are closed as with down (a dead node
                    resets them too); then it listens again on the same port.  Reads back the
                    ms left.  The control endpoint is unreachable meanwhile; 0 ends it early
                    (from Python).
  Request-level faults are drawn in this order, one draw each: drop_before; then 429/500/503 as
  one draw over their summed rates; after indexing, drop_after.  Item 429/503 is one draw per
  item over their summed rates.

Test endpoints (JSON; no auth, no faults)
  GET  /_test/docs[?index=I]   {index: {id: source}} (sources are null with --no-store-source).
  GET  /_test/writes[?min=N]   {index: {id: times written}} for ids written at least N times
                               (default 1): an id written twice was a duplicate delivery.
  GET  /_test/stats            counters: requests, bulk_requests, requests_by_status, items,
                               items_by_status, items_by_op, bytes_received (as sent),
                               bytes_decompressed, gzip_requests, concurrent_requests,
                               max_concurrent_requests, connections, docs, overwrites (index ops
                               that replaced a document), duplicate_ids (ids written > once),
                               docs_without_id, dropped_before, dropped_after, dropped_down,
                               auth_failures, tls_handshake_failures.
  GET|POST /_test/faults       read / change faults (unknown names or bad values: 400).
  POST /_test/reset            forget every document and counter; faults back to their start.

Other flags
  --tls-cert F --tls-key F     serve HTTPS (handshake in the connection's thread).
  --seed N                     RNG seed for faults and generated ids.
  --no-store-source            keep ids, versions and counts only (benchmarks).
  --max-content-length BYTES   default 104857600, as Elasticsearch's http.max_content_length.
  --verbose                    log every request to stderr.

Python API: EsServer(host="127.0.0.1", port=0, *, user=None, password=None, api_key=None,
forbid_index=(), tls_cert=None, tls_key=None, mapping=None, seed=0, store_source=True,
max_content_length=104857600, verbose=False, **faults) with start() -> self, stop(), url, port,
docs(index=None), writes(min_count=1), stats(), faults(), set_faults(**kw) -> faults, reset(),
wait_for_docs(count, index=None, timeout=10.0) -> bool; a context manager (start/stop).
make_test_ca(directory) -> {"ca_cert", "ca_key", "cert", "key"} (openssl command line; EC keys;
server certificate for DNS localhost and IP 127.0.0.1, signed by the CA).

Throughput, measured on the 2-core test machine (Python 3.11), server and client on the same
machine, one keep-alive connection, requests of 1000 `create` actions with a new _id each and
~300-byte log documents, every item checked for 201:
  * curl as the client (150 different bodies chained with --next in one curl; the client costs
    almost no CPU): ~68 000 docs/s (67 800 and 68 900 in two runs).
  * `python3 tj_es_server.py --bench` (server in a subprocess, a Python http.client loop that
    builds each body, so the client competes for the CPU; 5 s per line): ~35 000-46 000 docs/s
    plain, ~40 000-44 000 with gzip -1 bodies, ~47 000-57 000 with --no-store-source (which
    mostly saves memory: sources are still parsed, to stay strict).
  Without HTTP (parse + store only): ~52 000 docs/s.  64 connections at once with faults on:
  ~100 000 docs in 3 s, every acknowledged document stored.
"""

import argparse
import base64
import binascii
import functools
import gzip
import hashlib
import json
import os
import random
import re
import select
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# json.loads on bytes sniffs the encoding every call; decoding str lines directly is faster.
decode_str = json.JSONDecoder().decode


def load_line(line):
    """Parses one NDJSON line: str normally, bytes when the body was not valid UTF-8."""
    return decode_str(line) if isinstance(line, str) else json.loads(line)


def dumps(obj):
    """Compact JSON, as Elasticsearch writes it."""
    return json.dumps(obj, separators=(",", ":"))


ES_VERSION = "8.11.0"
CLUSTER_NAME = "tailjet-test"
CLUSTER_UUID = "dGFpbGpldC10ZXN0LWNsdXN0ZXI"
MAX_ID_BYTES = 512
MAX_INDEX_NAME_BYTES = 255
DEFAULT_MAX_CONTENT_LENGTH = 100 * 1024 * 1024
WWW_AUTHENTICATE = ('Basic realm="security" charset="UTF-8"', "ApiKey")

# ------------------------------------------------------------------------------------------
# Faults: one declarative table drives validation, the CLI flags and the docs above.

FAULTS = {
    # name: (kind, help)
    "item_429_rate": ("rate", "each item answers 429 es_rejected_execution_exception"),
    "item_503_rate": ("rate", "each item answers 503 unavailable_shards_exception"),
    "request_429_rate": ("rate", "whole request answers 429, nothing indexed"),
    "request_500_rate": ("rate", "whole request answers 500, nothing indexed"),
    "request_503_rate": ("rate", "whole request answers 503, nothing indexed"),
    "drop_before_rate": ("rate", "connection closed unanswered before indexing"),
    "drop_after_rate": ("rate", "connection closed unanswered after indexing (docs kept)"),
    "delay_ms": ("ms", "sleep after indexing, before answering"),
    "down": ("bool", "close every non-/_test/ request's connection unanswered"),
    "refuse_ms": ("ms", "close the listening socket for this many ms (ECONNREFUSED)"),
}
FAULT_DEFAULTS = {"rate": 0.0, "ms": 0, "bool": False}


def check_fault_value(name, value):
    """Returns value converted for fault `name`; raises ValueError naming what is wrong."""
    if name not in FAULTS:
        raise ValueError("unknown fault [%s]; known: %s" % (name, ", ".join(sorted(FAULTS))))
    kind = FAULTS[name][0]
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError("fault [%s] must be true or false, not %r" % (name, value))
        return value
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("fault [%s] must be a number, not %r" % (name, value))
    if kind == "rate" and not 0.0 <= value <= 1.0:
        raise ValueError("fault [%s] must be between 0 and 1, not %r" % (name, value))
    if kind == "ms" and value < 0:
        raise ValueError("fault [%s] must be >= 0 ms, not %r" % (name, value))
    return float(value) if kind == "rate" else value


class Faults:
    """The current fault settings; readers take a snapshot, writers replace values atomically."""

    def __init__(self, initial):
        self._lock = threading.Lock()
        self._values = {name: FAULT_DEFAULTS[kind] for name, (kind, _) in FAULTS.items()}
        self._refuse_until = 0.0
        self.update(initial)
        self._start = dict(self._values)

    def update(self, changes):
        """Validates every change first, so a bad one changes nothing. Returns the snapshot."""
        changes = dict(changes)
        if "drop_rate" in changes:  # shorthand: half before, half after indexing
            total = check_fault_value("drop_before_rate", changes.pop("drop_rate"))
            changes.setdefault("drop_before_rate", total / 2)
            changes.setdefault("drop_after_rate", total / 2)
        checked = {name: check_fault_value(name, value) for name, value in changes.items()}
        with self._lock:
            for name, value in checked.items():
                if name == "refuse_ms":
                    self._refuse_until = time.monotonic() + value / 1000.0
                else:
                    self._values[name] = value
        return self.snapshot()

    def restore_start(self):
        with self._lock:
            self._values = dict(self._start)
            self._refuse_until = 0.0

    def snapshot(self):
        with self._lock:
            values = dict(self._values)
            left = self._refuse_until - time.monotonic()
        values["refuse_ms"] = max(0, int(left * 1000))
        return values

    def refusing(self):
        return time.monotonic() < self._refuse_until

    def down(self):
        """True while requests must go unanswered: down, or refusing connections."""
        return self._values["down"] or self.refusing()


# ------------------------------------------------------------------------------------------
# Elasticsearch's error shapes

class EsError(Exception):
    """A whole-request failure, answered with Elasticsearch's error body."""

    def __init__(self, status, etype, reason, **extra):
        super().__init__(reason)
        self.status = status
        self.etype = etype
        self.reason = reason
        self.extra = extra
        self.headers = ()

    def body(self):
        cause = dict(type=self.etype, reason=self.reason, **self.extra)
        return {"error": dict(root_cause=[cause], **cause), "status": self.status}


class PlainError(Exception):
    """An error Elasticsearch answers with a bare string: {"error": "...", "status": N}."""

    def __init__(self, status, text, headers=()):
        super().__init__(text)
        self.status = status
        self.text = text
        self.headers = headers

    def body(self):
        return {"error": self.text, "status": self.status}


def item_error(etype, reason, **extra):
    return dict(type=etype, reason=reason, **extra)


# ------------------------------------------------------------------------------------------
# Bulk parsing: action lines are all checked before anything runs, as Elasticsearch does.

OPS = frozenset(("create", "delete", "index", "update"))
ACTION_KEYS = frozenset((
    "_index", "_id", "routing", "op_type", "version", "version_type", "if_seq_no",
    "if_primary_term", "retry_on_conflict", "pipeline", "_source", "require_alias",
    "require_data_stream", "dynamic_templates", "list_executed_pipelines"))
BULK_PARAMS = frozenset((
    "refresh", "routing", "timeout", "wait_for_active_shards", "pipeline", "require_alias",
    "require_data_stream", "_source", "_source_includes", "_source_excludes",
    "list_executed_pipelines", "include_source_on_error", "pretty", "human", "error_trace",
    "filter_path"))

# ------------------------------------------------------------------------------------------
# Response filtering (filter_path), as Elasticsearch's common option.

_MISSING = object()


def compile_filter_path(text):
    """filter_path=a.b,c.*.d -> a list of paths, each a list of "**" or compiled name patterns.
    Raises EsError(400) for what the test server does not implement (exclusions)."""
    paths = []
    for f in text.split(","):
        f = f.strip()
        if not f:
            continue
        if f.startswith("-"):
            raise bad_request("test server: filter_path exclusions [%s] are not implemented" % f)
        parts = []
        for part in f.split("."):
            parts.append("**" if part == "**" else
                         re.compile("".join(".*" if c == "*" else re.escape(c) for c in part)
                                    + r"\Z"))
        paths.append(parts)
    return paths


def _filter(value, paths):
    if any(not p for p in paths):  # a path ends here: the whole value is kept
        return value
    if isinstance(value, list):
        out = [v for v in (_filter(e, paths) for e in value) if v is not _MISSING]
        return out if out else _MISSING
    if not isinstance(value, dict):
        return _MISSING
    out = {}
    for key, v in value.items():
        nexts = []
        for p in paths:
            if p[0] == "**":
                nexts.append(p)  # ** goes on below this field
                if len(p) == 1:
                    nexts.append([])
                elif p[1] != "**" and p[1].match(key):
                    nexts.append(p[2:])
            elif p[0].match(key):
                nexts.append(p[1:])
        if nexts:
            r = _filter(v, nexts)
            if r is not _MISSING:
                out[key] = r
    return out if out else _MISSING


def apply_filter_path(obj, paths):
    """The answer `obj` (parsed JSON) filtered as Elasticsearch's filter_path does."""
    if not paths:
        return obj
    r = _filter(obj, paths)
    return {} if r is _MISSING else r


def bad_request(reason, etype="illegal_argument_exception"):
    return EsError(400, etype, reason)


def parse_action(line, line_no):
    """Returns (op, metadata) from one action line; raises EsError(400) as Elasticsearch would."""
    try:
        action = load_line(line)
    except ValueError as e:
        raise bad_request("[%d:%d] Malformed action/metadata line [%d]: %s"
                          % (line_no, getattr(e, "colno", 1), line_no, e),
                          "x_content_parse_exception")
    if not isinstance(action, dict) or len(action) != 1:
        raise bad_request("Malformed action/metadata line [%d], expected a single object with "
                          "one of [create, delete, index, update]" % line_no)
    (op, meta), = action.items()
    if op not in OPS:
        raise bad_request("Malformed action/metadata line [%d], expected one of [create, "
                          "delete, index, update] but found [%s]" % (line_no, op))
    if not isinstance(meta, dict):
        raise bad_request("Malformed action/metadata line [%d], expected START_OBJECT but "
                          "found [%s]" % (line_no, type(meta).__name__))
    if not ACTION_KEYS.issuperset(meta):
        key = sorted(set(meta) - ACTION_KEYS)[0]
        raise bad_request("Action/metadata line [%d] contains an unknown parameter [%s]"
                          % (line_no, key))
    return op, meta


def action_target(op, meta, default_index, line_no):
    """Returns (op, index or None, _id or None) after checking the metadata's types."""
    index = meta.get("_index", default_index)
    if index is not None and not isinstance(index, str):
        raise bad_request("Malformed action/metadata line [%d]: [_index] must be a string"
                          % line_no)
    doc_id = meta.get("_id")
    if isinstance(doc_id, bool) or not isinstance(doc_id, (str, int, type(None))):
        raise bad_request("Malformed action/metadata line [%d]: [_id] must be a string"
                          % line_no)
    if isinstance(doc_id, int):
        doc_id = str(doc_id)
    op_type = meta.get("op_type")
    if op == "index" and op_type is not None:
        if op_type not in ("index", "create"):
            raise bad_request("opType must be 'create' or 'index', found: [%s]" % op_type)
        op = op_type
    return op, index, doc_id


def parse_bulk(body, default_index):
    """Splits an NDJSON bulk body into [(op, index, _id, source bytes or None)].

    Raises EsError(400) for anything Elasticsearch rejects as a whole request; nothing is
    executed then.  Source lines are left unparsed: their faults belong to their item."""
    if not body.endswith(b"\n"):
        raise bad_request("The bulk request must be terminated by a newline [\\n]")
    try:
        lines = body.decode("utf-8").split("\n")
    except UnicodeDecodeError:
        lines = body.split(b"\n")  # each line then fails or passes on its own, as in ES
    lines.pop()  # the empty string after the final newline
    items, missing = [], []
    i, count = 0, len(lines)
    while i < count:
        line = lines[i]
        i += 1
        if not line.strip():
            continue  # Elasticsearch skips an action line that holds no token
        op, meta = parse_action(line, i)
        op, index, doc_id = action_target(op, meta, default_index, i)
        if index is None:
            missing.append("index is missing")
        if doc_id is None and op in ("delete", "update"):
            missing.append("id is missing")
        source = None
        if op != "delete":
            if i >= count:
                missing.append("source is missing")
                break
            source = lines[i]
            i += 1
        items.append((op, index, doc_id, source))
    if not items and not missing:
        missing.append("no requests added")
    if missing:
        reason = "Validation Failed: " + "".join(
            "%d: %s;" % (n, text) for n, text in enumerate(missing, 1))
        raise bad_request(reason, "action_request_validation_exception")
    return items


# ------------------------------------------------------------------------------------------
# Per-item checks that do not need the store

INDEX_BAD_CHARS = '\\/*?"<>| ,#'


@functools.lru_cache(maxsize=4096)  # a log shipper writes to few indices, many times
def index_name_error(name):
    """Returns Elasticsearch's reason why `name` cannot be an index, or None if it can."""
    if name == "":
        return "Invalid index name [], must not be empty"
    if name != name.lower():
        return "Invalid index name [%s], must be lowercase" % name
    if name[0] in "_-+":
        return "Invalid index name [%s], must not start with '_', '-', or '+'" % name
    if any(c in INDEX_BAD_CHARS for c in name):
        return ("Invalid index name [%s], must not contain the following characters "
                "[ , \", *, \\, <, |, ,, >, /, ?, #]" % name)
    if ":" in name:
        return "Invalid index name [%s], must not contain ':'" % name
    if name in (".", ".."):
        return "Invalid index name [%s], must not be '.' or '..'" % name
    size = len(name.encode("utf-8"))
    if size > MAX_INDEX_NAME_BYTES:
        return "Invalid index name [%s], index name is too long, (%d > %d)" % (
            name, size, MAX_INDEX_NAME_BYTES)
    return None


def id_error(doc_id):
    if doc_id == "":
        return "if _id is specified it must not be empty"
    size = len(doc_id.encode("utf-8"))
    if size > MAX_ID_BYTES:
        return "id [%s] is too long, must be no longer than %d bytes but was: %d" % (
            doc_id, MAX_ID_BYTES, size)
    return None


INT_BITS = {"long": 63, "integer": 31, "short": 15, "byte": 7}
INT_STRING = re.compile(r"-?[0-9]+(\.0*)?\Z")
MAPPING_TYPES = frozenset(tuple(INT_BITS) + ("double", "float", "keyword", "boolean"))


def fits_integer(value, bits):
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        if not value.is_integer():
            return False
        value = int(value)
    elif isinstance(value, str):
        if not INT_STRING.match(value):
            return False
        value = int(value.split(".")[0])
    elif not isinstance(value, int):
        return False
    return -(1 << bits) <= value < (1 << bits)


def fits_type(ftype, value):
    """True if Elasticsearch would index `value` into a field mapped as `ftype`."""
    if value is None:
        return True
    if isinstance(value, list):
        return all(fits_type(ftype, v) for v in value)
    if ftype in INT_BITS:
        return fits_integer(value, INT_BITS[ftype])
    if ftype in ("double", "float"):
        if isinstance(value, bool) or isinstance(value, dict):
            return False
        if isinstance(value, str):
            try:
                float(value)
            except ValueError:
                return False
        return True
    if ftype == "keyword":
        return not isinstance(value, dict)
    return value is True or value is False or value in ("true", "false")  # boolean


def field_values(doc, parts):
    """Yields each value the dotted path `parts` names, written nested or with dotted keys."""
    for cut in range(1, len(parts) + 1):
        key = ".".join(parts[:cut])
        if key not in doc:
            continue
        value = doc[key]
        if cut == len(parts):
            yield value
            continue
        for inner in (value if isinstance(value, list) else [value]):
            if isinstance(inner, dict):
                yield from field_values(inner, parts[cut:])


def parse_mapping(specs):
    """Turns ["a.b=long", ...] or {"a.b": "long"} into [(field, parts, type)]."""
    if isinstance(specs, dict):
        specs = ["%s=%s" % kv for kv in specs.items()]
    mapping = []
    for spec in specs or ():
        field, sep, ftype = spec.partition("=")
        if not sep or not field or ftype not in MAPPING_TYPES:
            raise ValueError("--mapping wants FIELD=TYPE with TYPE one of %s, got [%s]"
                             % (", ".join(sorted(MAPPING_TYPES)), spec))
        mapping.append((field, field.split("."), ftype))
    return mapping


def preview(value):
    text = dumps(value) if isinstance(value, (dict, list)) else str(value)
    return text if len(text) <= 20 else text[:20] + "..."


def mapping_error(source, doc_id, mapping):
    """Returns the item error for a document the mapping refuses, or None."""
    if source.get("es_reject") is True:
        return item_error("mapper_parsing_exception",
                          "failed to parse field [es_reject] of type [boolean] in document with "
                          "id '%s'. Preview of field's value: 'true' (es_reject test hook)"
                          % doc_id)
    for field, parts, ftype in mapping:
        for value in field_values(source, parts):
            if not fits_type(ftype, value):
                return item_error(
                    "mapper_parsing_exception",
                    "failed to parse field [%s] of type [%s] in document with id '%s'. "
                    "Preview of field's value: '%s'" % (field, ftype, doc_id, preview(value)),
                    caused_by=item_error("illegal_argument_exception",
                                         "For input string: \"%s\"" % preview(value)))
    return None


# ------------------------------------------------------------------------------------------
# The store: what was indexed, and how often each _id was written.

class IndexState:
    """One index: live documents, versions (kept after delete, as tombstones) and writes."""

    def __init__(self, name):
        self.docs = {}
        self.versions = {}
        self.writes = {}
        self.next_seq_no = 0
        self.uuid = base64.urlsafe_b64encode(
            hashlib.sha1(name.encode()).digest()[:16]).decode().rstrip("=")


class Store:
    def __init__(self, keep_source):
        self.lock = threading.Lock()
        self.keep_source = keep_source
        self.indices = {}

    def clear(self):
        with self.lock:
            self.indices = {}


OK_ITEM = ('{"%s":{"_index":%s,"_id":%s,"_version":%d,"result":"%s",'
           '"_shards":{"total":2,"successful":1,"failed":0},'
           '"_seq_no":%d,"_primary_term":1,"status":%d}}')


def error_item(op, index, doc_id, status, error):
    return dumps({op: {"_index": index, "_id": doc_id, "status": status, "error": error}})


# ------------------------------------------------------------------------------------------
# Counters

class Stats:
    COUNTERS = ("requests", "bulk_requests", "items", "bytes_received", "bytes_decompressed",
                "gzip_requests", "concurrent_requests", "max_concurrent_requests",
                "connections", "overwrites", "docs_without_id", "dropped_before",
                "dropped_after", "dropped_down", "auth_failures", "tls_handshake_failures")

    def __init__(self):
        self.lock = threading.Lock()
        self.clear()

    def clear(self):
        with self.lock:
            self.values = dict.fromkeys(self.COUNTERS, 0)
            self.by_status = {}
            self.items_by_status = {}
            self.items_by_op = {}

    def add(self, **counts):
        with self.lock:
            for name, n in counts.items():
                self.values[name] += n

    def request_status(self, status):
        with self.lock:
            key = str(status)
            self.by_status[key] = self.by_status.get(key, 0) + 1

    def enter(self):
        with self.lock:
            v = self.values
            v["concurrent_requests"] += 1
            v["max_concurrent_requests"] = max(v["max_concurrent_requests"],
                                               v["concurrent_requests"])

    def leave(self):
        with self.lock:  # never below 0, even after a /_test/reset mid-request
            v = self.values
            v["concurrent_requests"] = max(0, v["concurrent_requests"] - 1)

    def items_done(self, statuses, ops):
        with self.lock:
            for table, counts in ((self.items_by_status, statuses), (self.items_by_op, ops)):
                for key, n in counts.items():
                    table[key] = table.get(key, 0) + n
            self.values["items"] += sum(statuses.values())

    def snapshot(self):
        with self.lock:
            out = dict(self.values)
            out["requests_by_status"] = dict(self.by_status)
            out["items_by_status"] = dict(self.items_by_status)
            out["items_by_op"] = dict(self.items_by_op)
        return out


# ------------------------------------------------------------------------------------------
# The server's state and the bulk engine, shared by every connection thread.

class EsCore:
    def __init__(self, *, user, password, api_key, forbid_index, mapping, seed, store_source,
                 max_content_length, verbose, faults):
        self.user = user
        self.password = password
        self.api_key = api_key
        self.forbid_index = tuple(forbid_index or ())
        self.mapping = parse_mapping(mapping)
        self.max_content_length = max_content_length
        self.verbose = verbose
        self.faults = Faults(faults)
        self.store = Store(store_source)
        self.stats = Stats()
        self.rng = random.Random(seed)
        self.rng_lock = threading.Lock()
        self.conns_lock = threading.Lock()
        self.conns = {}  # handler -> socket, for closing idle ones (down) and all (stop)

    # -- connections --------------------------------------------------------------------

    def connection_opened(self, handler):
        self.stats.add(connections=1)
        with self.conns_lock:
            self.conns[handler] = handler.connection

    def connection_closed(self, handler):
        with self.conns_lock:
            self.conns.pop(handler, None)

    def close_connections(self, idle_only):
        with self.conns_lock:
            victims = [s for h, s in self.conns.items() if not (idle_only and h.busy)]
        for sock in victims:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def set_faults(self, changes):
        snap = self.faults.update(changes)
        if snap["down"] or snap["refuse_ms"]:
            self.close_connections(idle_only=True)
        return snap

    def reset(self):
        self.store.clear()
        self.stats.clear()
        self.faults.restore_start()

    # -- authentication -----------------------------------------------------------------

    def auth_required(self):
        return self.user is not None or self.api_key is not None

    def authenticate(self, header, path):
        """Returns a user label for messages; raises EsError(401) as Elasticsearch does."""
        if not self.auth_required():
            return "_anonymous"
        scheme, _, cred = (header or "").strip().partition(" ")
        scheme = scheme.lower()
        cred = cred.strip()
        if scheme == "basic" and self.user is not None:
            try:
                user, _, password = base64.b64decode(cred, validate=True).decode().partition(":")
            except (binascii.Error, UnicodeDecodeError):
                user, password = None, None
            if user == self.user and password == self.password:
                return user
            reason = "unable to authenticate user [%s] for REST request [%s]" % (user, path)
        elif scheme == "apikey" and self.api_key is not None:
            if cred == self.api_key:
                return "API key id [%s] of user [tailjet]" % api_key_id(cred)
            reason = "unable to authenticate with provided credentials and anonymous access " \
                     "is not allowed for this request"
        else:
            reason = "missing authentication credentials for REST request [%s]" % path
        err = EsError(401, "security_exception", reason,
                      header={"WWW-Authenticate": list(WWW_AUTHENTICATE)})
        err.headers = [("WWW-Authenticate", v) for v in WWW_AUTHENTICATE]
        raise err

    # -- random draws -------------------------------------------------------------------

    def draw(self, n=1):
        with self.rng_lock:
            return [self.rng.random() for _ in range(n)]

    def new_id(self):
        with self.rng_lock:
            bits = self.rng.getrandbits(120)
        return base64.urlsafe_b64encode(bits.to_bytes(15, "big")).decode()

    def request_fault(self, faults):
        """Returns the whole-request failure to answer, or None."""
        r = self.draw()[0]
        for status, etype, reason in (
                (429, "es_rejected_execution_exception",
                 "rejected execution of coordinating operation [coordinating_and_primary_bytes"
                 "=0, replica_bytes=0, all_bytes=0, coordinating_operation_bytes=1, "
                 "max_coordinating_and_primary_bytes=0] (injected by tj_es_server)"),
                (500, "exception", "injected internal server error (tj_es_server)"),
                (503, "cluster_block_exception",
                 "blocked by: [SERVICE_UNAVAILABLE/2/no master]; (injected by tj_es_server)")):
            rate = faults["request_%d_rate" % status]
            if r < rate:
                return EsError(status, etype, reason)
            r -= rate
        return None

    # -- the bulk engine ----------------------------------------------------------------

    def precheck(self, op, index, doc_id, user, faults, draw):
        """Returns (status, error) for an item refused before the store, or None."""
        reason = index_name_error(index)
        if reason:
            return 400, item_error("invalid_index_name_exception", reason,
                                   index_uuid="_na_", index=index)
        reason = id_error(doc_id)
        if reason:
            return 400, item_error("illegal_argument_exception", reason)
        if self.forbid_index and index.startswith(self.forbid_index):
            return 403, item_error(
                "security_exception",
                "action [indices:data/write/bulk[s]] is unauthorized for user [%s] with "
                "effective roles [tailjet_writer] on indices [%s], this action is granted by "
                "the index privileges [create_doc,create,delete,index,write,all]"
                % (user, index))
        if draw is not None:
            if draw < faults["item_429_rate"]:
                return 429, item_error(
                    "es_rejected_execution_exception",
                    "rejected execution of primary operation [coordinating_and_primary_bytes=0,"
                    " replica_bytes=0, all_bytes=0, primary_operation_bytes=1, "
                    "max_coordinating_and_primary_bytes=0] (injected by tj_es_server)")
            if draw < faults["item_429_rate"] + faults["item_503_rate"]:
                return 503, item_error(
                    "unavailable_shards_exception",
                    "[%s][0] primary shard is not active Timeout: [1m], request: "
                    "[BulkShardRequest [[%s][0]] containing [1] requests] (injected by "
                    "tj_es_server)" % (index, index))
        if op == "update":
            return 400, item_error("illegal_argument_exception",
                                   "update is not supported by tj_es_server")
        return None

    def prepare(self, items, user, faults):
        """Runs every check that needs no store, outside the lock.

        Returns [(op, index, _id, generated, source or None, refusal or None)]."""
        item_faults = faults["item_429_rate"] + faults["item_503_rate"] > 0
        draws = self.draw(len(items)) if item_faults else [None] * len(items)
        prepared = []
        for (op, index, doc_id, line), draw in zip(items, draws):
            generated = doc_id is None
            if generated:
                doc_id = self.new_id()
            refusal = self.precheck(op, index, doc_id, user, faults, draw)
            source = None
            if refusal is None and op != "delete":
                source, refusal = self.parse_source(line, doc_id)
            prepared.append((op, index, doc_id, generated, source, refusal))
        return prepared

    def parse_source(self, line, doc_id):
        """Returns (document, None) or (None, (400, error)) for one source line."""
        try:
            source = load_line(line)
        except ValueError as e:
            reason = "failed to parse, document is empty" if not line.strip() else \
                "failed to parse: %s" % e
            return None, (400, item_error("mapper_parsing_exception", reason))
        if not isinstance(source, dict):
            return None, (400, item_error(
                "mapper_parsing_exception",
                "failed to parse, document must be a JSON object, found %s"
                % type(source).__name__))
        if self.mapping or "es_reject" in source:
            error = mapping_error(source, doc_id, self.mapping)
            if error:
                return None, (400, error)
        return source, None

    def execute(self, prepared):
        """Applies the prepared items to the store in order.

        Returns (item JSON strings, errors, statuses, ops)."""
        out, statuses, ops = [], {}, {}
        errors = False
        overwrites = without_id = 0
        keep = self.store.keep_source
        names = {}
        with self.store.lock:
            indices = self.store.indices
            for op, index, doc_id, generated, source, refusal in prepared:
                ops[op] = ops.get(op, 0) + 1
                if refusal is not None:
                    status, error = refusal
                    errors = True
                    out.append(error_item(op, index, doc_id, status, error))
                    statuses[status] = statuses.get(status, 0) + 1
                    continue
                state = indices.get(index)
                index_json = names.get(index) or names.setdefault(index, dumps(index))
                if op == "delete":
                    status, text = self.delete(state, op, index, doc_id, index_json)
                    errors = errors or status == 404 and state is None
                else:
                    if state is None:
                        state = indices[index] = IndexState(index)
                    status, text, overwrote = self.write(state, op, index, doc_id, index_json,
                                                         source if keep else None)
                    if status == 409:
                        errors = True
                    overwrites += overwrote
                    without_id += generated and status < 300
                out.append(text)
                statuses[status] = statuses.get(status, 0) + 1
        self.stats.add(overwrites=overwrites, docs_without_id=without_id)
        return out, errors, statuses, ops

    def write(self, state, op, index, doc_id, index_json, source):
        """index or create one document; the store lock is held. Returns (status, JSON, 0|1)."""
        exists = doc_id in state.docs
        version = state.versions.get(doc_id, 0)
        if exists and op == "create":
            return 409, error_item(op, index, doc_id, 409, item_error(
                "version_conflict_engine_exception",
                "[%s]: version conflict, document already exists (current version [%d])"
                % (doc_id, version), index_uuid=state.uuid, shard="0", index=index)), 0
        version += 1
        state.docs[doc_id] = source
        state.versions[doc_id] = version
        state.writes[doc_id] = state.writes.get(doc_id, 0) + 1
        seq_no = state.next_seq_no
        state.next_seq_no += 1
        status, result = (200, "updated") if exists else (201, "created")
        return status, OK_ITEM % (op, index_json, dumps(doc_id), version, result,
                                  seq_no, status), int(exists)

    @staticmethod
    def delete(state, op, index, doc_id, index_json):
        """Deletes one document; the store lock is held. Returns (status, JSON)."""
        if state is None:
            return 404, error_item(op, index, doc_id, 404, item_error(
                "index_not_found_exception", "no such index [%s]" % index,
                index_uuid="_na_", index=index))
        exists = doc_id in state.docs
        version = state.versions.get(doc_id, 0) + 1
        state.versions[doc_id] = version
        state.docs.pop(doc_id, None)
        seq_no = state.next_seq_no
        state.next_seq_no += 1
        status, result = (200, "deleted") if exists else (404, "not_found")
        return status, OK_ITEM % (op, index_json, dumps(doc_id), version, result,
                                  seq_no, status)

    # -- introspection ------------------------------------------------------------------

    def docs(self, index=None):
        with self.store.lock:
            return {name: dict(state.docs) for name, state in self.store.indices.items()
                    if index is None or name == index}

    def writes(self, min_count=1):
        with self.store.lock:
            return {name: {i: n for i, n in state.writes.items() if n >= min_count}
                    for name, state in self.store.indices.items()}

    def full_stats(self):
        out = self.stats.snapshot()
        with self.store.lock:
            out["docs"] = sum(len(s.docs) for s in self.store.indices.values())
            out["duplicate_ids"] = sum(1 for s in self.store.indices.values()
                                       for n in s.writes.values() if n > 1)
            out["indices"] = sorted(self.store.indices)
        return out


# ------------------------------------------------------------------------------------------
# HTTP

class BodyTooLarge(Exception):
    pass


def media_type(header):
    return (header or "").split(";")[0].strip().lower()


BULK_MEDIA_TYPES = frozenset((
    "application/json", "application/x-ndjson",
    "application/vnd.elasticsearch+json", "application/vnd.elasticsearch+x-ndjson"))


def check_content_type(header):
    """Raises PlainError(406) unless `header` is a type Elasticsearch reads a body as."""
    if header is None:
        raise PlainError(406, "Content-Type header is missing")
    if media_type(header) not in BULK_MEDIA_TYPES:
        raise PlainError(406, "Content-Type header [%s] is not supported" % header)


def decode_body(raw, encoding):
    """Returns the body with its Content-Encoding undone; raises EsError(400) if it will not."""
    encoding = (encoding or "identity").strip().lower()
    try:
        if encoding == "gzip":
            return gzip.decompress(raw)
        if encoding == "deflate":
            return zlib.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise bad_request("the request body could not be decompressed as %s: %s"
                          % (encoding, e))
    if encoding != "identity":
        raise bad_request("unsupported Content-Encoding [%s]" % encoding)
    return raw


def api_key_id(credential):
    try:
        return base64.b64decode(credential, validate=True).decode().partition(":")[0]
    except (binascii.Error, UnicodeDecodeError):
        return "?"


def cluster_info():
    return {
        "name": "tj-es-server", "cluster_name": CLUSTER_NAME, "cluster_uuid": CLUSTER_UUID,
        "version": {"number": ES_VERSION, "build_flavor": "default", "build_type": "tar",
                    "build_hash": "0" * 40, "build_date": "2023-11-04T10:04:57.184859352Z",
                    "build_snapshot": False, "lucene_version": "9.8.0",
                    "minimum_wire_compatibility_version": "7.17.0",
                    "minimum_index_compatibility_version": "7.0.0"},
        "tagline": "You Know, for Search"}


def cluster_health(index_count):
    return {"cluster_name": CLUSTER_NAME, "status": "green", "timed_out": False,
            "number_of_nodes": 1, "number_of_data_nodes": 1,
            "active_primary_shards": index_count, "active_shards": index_count,
            "relocating_shards": 0, "initializing_shards": 0, "unassigned_shards": 0,
            "delayed_unassigned_shards": 0, "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0, "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": 100.0}


class DropConnection(Exception):
    """Close the connection without answering."""


class Handler(BaseHTTPRequestHandler):
    """One connection: parses requests, routes them, answers or drops."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # header and body go out at once anyway; no 40 ms stalls
    busy = False

    def setup(self):
        super().setup()
        self.core = self.server.core
        self.core.connection_opened(self)

    def finish(self):
        try:
            super().finish()
        finally:
            self.core.connection_closed(self)

    def log_message(self, fmt, *args):
        if self.core.verbose:
            sys.stderr.write("tj_es_server: %s %s\n" % (self.address_string(), fmt % args))

    def do_GET(self):
        self.busy = True
        try:
            self.dispatch()
        finally:
            self.busy = False

    do_POST = do_PUT = do_HEAD = do_DELETE = do_PATCH = do_OPTIONS = do_GET

    # -- plumbing -----------------------------------------------------------------------

    def reply(self, status, obj, headers=()):
        """Answers with `obj` as JSON (pre-encoded bytes pass through), in one write."""
        body = obj if isinstance(obj, bytes) else dumps(obj).encode()
        fp = getattr(self, "query", {}).get("filter_path")
        if fp and body and not self.path.startswith("/_test/"):  # checked by dispatch
            parsed = json.loads(body)
            if not (isinstance(parsed, dict) and "error" in parsed and "status" in parsed):
                body = dumps(apply_filter_path(parsed, compile_filter_path(",".join(fp))))
                body = body.encode()
        if "pretty" in getattr(self, "query", {}) and body:
            body = json.dumps(json.loads(body), indent=2).encode() + b"\n"
        lines = ["HTTP/1.1 %d %s" % (status, self.responses.get(status, ("",))[0]),
                 "Content-Type: application/json",
                 "X-elastic-product: Elasticsearch"]
        if "gzip" in (self.headers.get("Accept-Encoding") or "").lower() and body:
            body = gzip.compress(body, 1)
            lines.append("Content-Encoding: gzip")
        lines.append("Content-Length: %d" % len(body))
        lines.extend("%s: %s" % h for h in headers)
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head if self.command == "HEAD" else head + body)
        self.log_request(status)
        if not self.path.startswith("/_test/"):
            self.core.stats.request_status(status)

    def drop(self):
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def read_body(self):
        """Reads the request body (Content-Length or chunked); raises BodyTooLarge."""
        cap = self.core.max_content_length
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self.read_chunked(cap)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise bad_request("bad Content-Length [%s]" % self.headers.get("Content-Length"))
        if length > cap:
            raise BodyTooLarge()
        return self.rfile.read(length) if length > 0 else b""

    def read_chunked(self, cap):
        chunks, total = [], 0
        while True:
            line = self.rfile.readline(65537)
            try:
                size = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                self.close_connection = True
                raise bad_request("bad chunk size line in a chunked body")
            if size == 0:
                while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            total += size
            if total > cap:
                raise BodyTooLarge()
            chunks.append(self.rfile.read(size))
            self.rfile.readline()

    # -- routing ------------------------------------------------------------------------

    def dispatch(self):
        url = urllib.parse.urlsplit(self.path)
        self.query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        parts = [urllib.parse.unquote(p) for p in url.path.split("/") if p]
        if parts and parts[0] == "_test":
            return self.control(parts[1:])
        if self.core.faults.down():
            self.core.stats.add(dropped_down=1)
            return self.drop()
        self.core.stats.add(requests=1)
        try:
            if "filter_path" in self.query:  # an exclusion: 400 before anything is done
                compile_filter_path(",".join(self.query["filter_path"]))
            self.route(parts, url.path)
        except BodyTooLarge:
            self.close_connection = True
            self.reply(413, {"error": "Request Entity Too Large (over %d bytes)"
                             % self.core.max_content_length, "status": 413})
        except (EsError, PlainError) as e:
            self.reply(e.status, e.body(), e.headers)
        except DropConnection:
            self.drop()

    def route(self, parts, path):
        body = self.read_body()
        if body:
            check_content_type(self.headers.get("Content-Type"))
        try:
            self.user = self.core.authenticate(self.headers.get("Authorization"), path)
        except EsError:
            self.core.stats.add(auth_failures=1)
            raise
        method = self.command
        if parts and parts[-1] == "_bulk" and len(parts) <= 2:
            self.allow(method, ("POST", "PUT"), path)
            return self.bulk(body, parts[0] if len(parts) == 2 else None)
        if not parts:
            self.allow(method, ("GET", "HEAD"), path)
            return self.reply(200, cluster_info())
        if parts == ["_cluster", "health"]:
            self.allow(method, ("GET",), path)
            return self.reply(200, cluster_health(len(self.core.store.indices)))
        if parts[-1] == "_refresh" and len(parts) <= 2:
            self.allow(method, ("GET", "POST"), path)
            return self.reply(200, {"_shards": {"total": 2, "successful": 1, "failed": 0}})
        if not parts[0].startswith("_"):
            return self.index_api(method, parts, path)
        raise self.no_handler(path)

    def no_handler(self, path):
        return PlainError(404, "no handler found for uri [%s] and method [%s]"
                          % (path, self.command))

    def allow(self, method, allowed, path):
        if method not in allowed:
            raise PlainError(405, "Incorrect HTTP method for uri [%s] and method [%s], "
                             "allowed: [%s]" % (path, method, ", ".join(allowed)),
                             headers=[("Allow", ",".join(allowed))])

    def index_api(self, method, parts, path):
        """GET|HEAD /<index>, GET /<index>/_doc/<id>, GET|POST /<index>/_count."""
        docs = self.core.docs(parts[0]).get(parts[0])
        if len(parts) == 3 and parts[1] == "_doc":
            self.allow(method, ("GET", "HEAD"), path)
            return self.get_doc(parts[0], parts[2], docs)
        if len(parts) == 2 and parts[1] == "_count":
            self.allow(method, ("GET", "POST"), path)
            return self.reply(200, {"count": len(docs or {}),
                                    "_shards": {"total": 1, "successful": 1, "skipped": 0,
                                                "failed": 0}})
        if len(parts) == 1:
            self.allow(method, ("GET", "HEAD"), path)
            if docs is not None:
                return self.reply(200, {parts[0]: {"aliases": {}, "mappings": {},
                                                   "settings": {}}})
        else:
            raise self.no_handler(path)
        raise EsError(404, "index_not_found_exception", "no such index [%s]" % parts[0],
                      **{"resource.type": "index_or_alias", "resource.id": parts[0],
                         "index_uuid": "_na_", "index": parts[0]})

    def get_doc(self, index, doc_id, docs):
        if docs is None:
            raise EsError(404, "index_not_found_exception", "no such index [%s]" % index,
                          index_uuid="_na_", index=index)
        if doc_id not in docs:
            return self.reply(404, {"_index": index, "_id": doc_id, "found": False})
        with self.core.store.lock:
            state = self.core.store.indices[index]
            version = state.versions.get(doc_id, 1)
        return self.reply(200, {"_index": index, "_id": doc_id, "_version": version,
                                "_seq_no": version - 1, "_primary_term": 1, "found": True,
                                "_source": docs[doc_id]})

    # -- _bulk --------------------------------------------------------------------------

    def bulk(self, raw, default_index):
        core = self.core
        core.stats.enter()
        try:
            self.bulk_inner(raw, default_index)
        finally:
            core.stats.leave()

    def bulk_inner(self, raw, default_index):
        core = self.core
        started = time.monotonic()
        for name in self.query:
            if name not in BULK_PARAMS:
                raise bad_request("request [%s] contains unrecognized parameter: [%s]"
                                  % (urllib.parse.urlsplit(self.path).path, name))
        if not raw:
            raise EsError(400, "parse_exception", "request body is required")
        check_content_type(self.headers.get("Content-Type"))
        encoding = self.headers.get("Content-Encoding")
        gzipped = (encoding or "").strip().lower() == "gzip"
        core.stats.add(bulk_requests=1, bytes_received=len(raw), gzip_requests=int(gzipped))
        body = decode_body(raw, encoding)
        core.stats.add(bytes_decompressed=len(body))
        faults = core.faults.snapshot()
        if faults["drop_before_rate"] and core.draw()[0] < faults["drop_before_rate"]:
            core.stats.add(dropped_before=1)
            raise DropConnection()
        failure = core.request_fault(faults)
        if failure:
            raise failure
        items = parse_bulk(body, default_index)
        prepared = core.prepare(items, self.user, faults)
        out, errors, statuses, ops = core.execute(prepared)
        core.stats.items_done({str(k): v for k, v in statuses.items()}, ops)
        if faults["drop_after_rate"] and core.draw()[0] < faults["drop_after_rate"]:
            core.stats.add(dropped_after=1)
            raise DropConnection()
        if faults["delay_ms"]:
            time.sleep(faults["delay_ms"] / 1000.0)
        took = int((time.monotonic() - started) * 1000)
        text = '{"took":%d,"errors":%s,"items":[%s]}' % (
            took, "true" if errors else "false", ",".join(out))
        self.reply(200, text.encode())

    # -- /_test/ ------------------------------------------------------------------------

    def control(self, parts):
        core = self.core
        try:
            body = self.read_body()
        except (BodyTooLarge, EsError):
            self.close_connection = True
            return self.reply(413, {"error": "control body too large or malformed"})
        name = parts[0] if len(parts) == 1 else None
        method = self.command
        if name == "docs" and method == "GET":
            return self.reply(200, core.docs(self.query.get("index", [None])[0]))
        if name == "writes" and method == "GET":
            return self.reply(200, core.writes(int(self.query.get("min", ["1"])[0])))
        if name == "stats" and method == "GET":
            return self.reply(200, core.full_stats())
        if name == "reset" and method == "POST":
            core.reset()
            return self.reply(200, {"acknowledged": True})
        if name == "faults" and method == "GET":
            return self.reply(200, core.faults.snapshot())
        if name == "faults" and method == "POST":
            try:
                changes = json.loads(body or b"{}")
                if not isinstance(changes, dict):
                    raise ValueError("the body must be a JSON object of fault: value")
                return self.reply(200, core.set_faults(changes))
            except ValueError as e:
                return self.reply(400, {"error": str(e), "status": 400})
        return self.reply(404, {"error": "unknown test endpoint [%s %s]" % (method, self.path),
                                "status": 404})


class HttpServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with its own accept loop, so the listening socket can be closed
    (refuse_ms) and opened again on the same port, and with TLS done in the connection's
    thread, so a slow or failing handshake never stalls accept."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address, core, ssl_context):
        self.core = core
        self.ssl_context = ssl_context
        self.stopping = threading.Event()
        super().__init__(address, Handler)

    def server_bind(self):
        # HTTPServer.server_bind resolves the host's FQDN, which can hang without DNS.
        socketserver_bind(self)
        self.server_name, self.server_port = self.server_address[:2]

    def finish_request(self, request, client_address):
        conn = request
        if self.ssl_context is not None:
            try:
                request.settimeout(10)
                conn = self.ssl_context.wrap_socket(request, server_side=True)
                conn.settimeout(None)
            except (ssl.SSLError, OSError):
                self.core.stats.add(tls_handshake_failures=1)
                return
        try:
            Handler(conn, client_address, self)
        finally:
            if conn is not request:
                conn.close()

    def handle_error(self, request, client_address):
        if self.core.verbose:
            super().handle_error(request, client_address)

    def reopen(self):
        """Listens again on the same port after refuse_ms; returns False to retry later."""
        sock = socket.socket(self.address_family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(self.server_address)
            sock.listen(self.request_queue_size)
        except OSError:
            sock.close()
            return False
        self.socket = sock
        return True

    def accept_loop(self):
        listening = True
        while not self.stopping.is_set():
            if self.core.faults.refusing():
                if listening:
                    self.socket.close()
                    listening = False
                time.sleep(0.01)
                continue
            if not listening:
                listening = self.reopen()
                if not listening:
                    time.sleep(0.05)
                    continue
            try:
                ready, _, _ = select.select([self.socket], [], [], 0.05)
            except (OSError, ValueError):
                continue
            if ready:
                self.accept_one()
        self.socket.close()

    def accept_one(self):
        try:
            request, address = self.get_request()
        except OSError:
            return
        try:
            self.process_request(request, address)
        except Exception:
            self.shutdown_request(request)


def socketserver_bind(server):
    if server.allow_reuse_address:
        server.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.socket.bind(server.server_address)
    server.server_address = server.socket.getsockname()


# ------------------------------------------------------------------------------------------
# The public face: EsServer in a thread of the caller's process

class EsServer:
    """A strict Elasticsearch _bulk server running in threads of this process."""

    def __init__(self, host="127.0.0.1", port=0, *, user=None, password=None, api_key=None,
                 forbid_index=(), tls_cert=None, tls_key=None, mapping=None, seed=0,
                 store_source=True, max_content_length=DEFAULT_MAX_CONTENT_LENGTH,
                 verbose=False, **faults):
        if (user is None) != (password is None):
            raise ValueError("user and password go together")
        if (tls_cert is None) != (tls_key is None):
            raise ValueError("tls_cert and tls_key go together")
        self.host = host
        self.requested_port = port
        self.tls = tls_cert is not None
        self.ssl_context = None
        if self.tls:
            self.ssl_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ssl_context.load_cert_chain(tls_cert, tls_key)
        self.core = EsCore(user=user, password=password, api_key=api_key,
                           forbid_index=forbid_index, mapping=mapping, seed=seed,
                           store_source=store_source, max_content_length=max_content_length,
                           verbose=verbose, faults=faults)
        self.httpd = None
        self.thread = None

    def start(self):
        self.httpd = HttpServer((self.host, self.requested_port), self.core, self.ssl_context)
        self.thread = threading.Thread(target=self.httpd.accept_loop, name="tj_es_accept",
                                       daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.httpd is None:
            return
        self.httpd.stopping.set()
        self.thread.join(5)
        self.core.close_connections(idle_only=False)
        self.httpd = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def port(self):
        return self.httpd.server_address[1]

    @property
    def url(self):
        return "%s://%s:%d" % ("https" if self.tls else "http", self.host, self.port)

    def docs(self, index=None):
        return self.core.docs(index)

    def writes(self, min_count=1):
        return self.core.writes(min_count)

    def stats(self):
        return self.core.full_stats()

    def faults(self):
        return self.core.faults.snapshot()

    def set_faults(self, **changes):
        return self.core.set_faults(changes)

    def reset(self):
        self.core.reset()

    def wait_for_docs(self, count, index=None, timeout=10.0):
        """True once at least `count` documents are stored (in `index`, or in all)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if sum(len(d) for d in self.docs(index).values()) >= count:
                return True
            time.sleep(0.02)
        return False


# ------------------------------------------------------------------------------------------
# A test CA, with the openssl command line

def make_test_ca(directory, cn="tailjet test CA"):
    """Writes ca.crt/ca.key and server.crt/server.key (DNS localhost, IP 127.0.0.1, signed by
    the CA) into `directory`. Returns their paths; raises CalledProcessError if openssl fails."""
    os.makedirs(directory, exist_ok=True)
    p = {name: os.path.join(directory, name) for name in
         ("ca.crt", "ca.key", "server.crt", "server.key", "server.csr", "server.ext")}
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *args: subprocess.run(["openssl", *args], check=True,  # noqa: E731
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run("req", "-x509", *ec, "-keyout", p["ca.key"], "-out", p["ca.crt"], "-days", "3650",
        "-subj", "/CN=%s" % cn, "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", p["server.key"], "-out", p["server.csr"], "-subj", "/CN=localhost")
    with open(p["server.ext"], "w") as f:
        f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("x509", "-req", "-in", p["server.csr"], "-CA", p["ca.crt"], "-CAkey", p["ca.key"],
        "-CAcreateserial", "-out", p["server.crt"], "-days", "3650", "-extfile", p["server.ext"])
    return {"ca_cert": p["ca.crt"], "ca_key": p["ca.key"], "cert": p["server.crt"],
            "key": p["server.key"]}


# ------------------------------------------------------------------------------------------
# Command line

def fault_flag(name):
    return "--" + name.replace("_", "-")


def build_parser():
    ap = argparse.ArgumentParser(description="Strict Elasticsearch _bulk test server "
                                             "(see the module docstring).")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9200, help="0 picks a free port")
    ap.add_argument("--port-file", help="write the port here once listening")
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--api-key")
    ap.add_argument("--forbid-index", action="append", default=[], metavar="PREFIX")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--mapping", action="append", default=[], metavar="FIELD=TYPE")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-store-source", action="store_true")
    ap.add_argument("--max-content-length", type=int, default=DEFAULT_MAX_CONTENT_LENGTH)
    ap.add_argument("--verbose", action="store_true")
    ap.add_argument("--make-test-ca", metavar="DIR", help="write a test CA and exit")
    ap.add_argument("--bench", action="store_true", help="measure throughput and exit")
    for name, (kind, text) in FAULTS.items():
        if kind == "bool":
            ap.add_argument(fault_flag(name), action="store_true", help=text)
        else:
            ap.add_argument(fault_flag(name), type=float if kind == "rate" else int,
                            default=FAULT_DEFAULTS[kind], help=text)
    return ap


def write_port_file(path, port):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % port)
    os.replace(tmp, path)  # a reader never sees a half-written port


def serve(args):
    faults = {name: getattr(args, name) for name in FAULTS}
    server = EsServer(args.host, args.port, user=args.user, password=args.password,
                      api_key=args.api_key, forbid_index=args.forbid_index,
                      tls_cert=args.tls_cert, tls_key=args.tls_key, mapping=args.mapping,
                      seed=args.seed, store_source=not args.no_store_source,
                      max_content_length=args.max_content_length, verbose=args.verbose,
                      **faults)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    if args.port_file:  # first, so whoever read the line below finds the file too
        write_port_file(args.port_file, server.port)
    print("listening on %s" % server.url, flush=True)
    stop.wait()  # a signal's handler sets it; the wait is interrupted at once
    server.stop()
    return 0


def bench_body(n_docs, start):
    lines = []
    for i in range(start, start + n_docs):
        lines.append('{"create":{"_index":"logs-bench","_id":"b%010d"}}' % i)
        lines.append('{"@timestamp":"2024-05-01T12:00:00.%03dZ","message":"GET /api/v1/items/%d '
                     'HTTP/1.1 200 512 0.004 - Mozilla/5.0","service":{"name":"web"},'
                     '"container":{"id":"4f2a9c1b7e3d","name":"web.1.abcdef"},'
                     '"host":{"name":"node-1"},"stream":"stdout","log":{"offset":%d}}'
                     % (i % 1000, i, i * 300))
    return ("\n".join(lines) + "\n").encode()


def bench(seconds=5.0, batch=1000, gzip_level=None, store_source=True):
    """Posts `batch`-doc requests on one keep-alive connection to a server in a subprocess.

    Returns docs/s acknowledged (every item checked for status 201)."""
    import http.client
    with tempfile.TemporaryDirectory() as tmp:
        port_file = os.path.join(tmp, "port")
        cmd = [sys.executable, os.path.abspath(__file__), "--port", "0",
               "--port-file", port_file] + ([] if store_source else ["--no-store-source"])
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
        try:
            while not os.path.exists(port_file):
                time.sleep(0.02)
            port = int(open(port_file).read())
            conn = http.client.HTTPConnection("127.0.0.1", port)
            headers = {"Content-Type": "application/x-ndjson"}
            if gzip_level is not None:
                headers["Content-Encoding"] = "gzip"
            sent, begin = 0, time.monotonic()
            while time.monotonic() - begin < seconds:
                body = bench_body(batch, sent)
                if gzip_level is not None:
                    body = gzip.compress(body, gzip_level)
                conn.request("POST", "/_bulk", body, headers)
                answer = json.loads(conn.getresponse().read())
                assert not answer["errors"] and len(answer["items"]) == batch, answer
                sent += batch
            return sent / (time.monotonic() - begin)
        finally:
            proc.terminate()
            proc.wait(10)


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.make_test_ca:
        for name, path in make_test_ca(args.make_test_ca).items():
            print("%s %s" % (name, path))
        return 0
    if args.bench:
        for label, kw in (("plain", {}), ("gzip -1 body", {"gzip_level": 1}),
                          ("--no-store-source", {"store_source": False})):
            print("%-18s %8.0f docs/s" % (label, bench(**kw)), flush=True)
        return 0
    try:
        return serve(args)
    except (ValueError, OSError) as e:
        print("tj_es_server: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
