"""Fake Docker containers for the output tests (Python 3 stdlib only): a --docker-root tree of
D/containers/<id>/config.v2.json files with their json-file logs, as DESIGN.md describes them,
and a thread that writes their lines at a steady rate. The Kafka and Elasticsearch tests use
them; discovery's docker-root mode reads them like a real engine's.

    root, ctrs = fake_root(env, ("web", {}), ("api", {"logTopic": "other"}))
    feeder = Feeder(ctrs, 2000, rate=1000)
    feeder.start(); ...; feeder.finish()
    ctrs[0].lines[seq]           # (message, json-file time) of each line written
"""

import hashlib
import json
import os
import threading
import time

from tj_engine_util import check, fail, wait_until


class Container:
    """D/containers/<id>/config.v2.json and its json-file log. Lines are numbered by `seq`; a
    line's json-file time grows with it (day given, 10:00:00 plus seq+1 ns)."""

    def __init__(self, root, name, labels=None, line_bytes=200):
        self.name = name
        self.id = hashlib.sha256(("%s %s" % (root, name)).encode()).hexdigest()
        d = os.path.join(root, "containers", self.id)
        os.makedirs(d)
        self.log = os.path.join(d, "%s-json.log" % self.id)
        open(self.log, "wb").close()
        self.labels = labels or {}
        self.line_bytes = line_bytes
        self.seq = 0          # lines written so far
        self.lines = []       # (message, time) of each line, by seq
        cfg = {"ID": self.id, "Name": "/" + name, "Created": "2026-11-25T10:00:00Z",
               "Config": {"Image": "bb:1", "Labels": self.labels},
               "LogPath": self.log, "State": {"Running": True}}
        tmp = os.path.join(d, "config.v2.json.tmp")
        with open(tmp, "w") as f:
            json.dump(cfg, f)
        os.rename(tmp, os.path.join(d, "config.v2.json"))

    def text(self, seq):
        head = "seq=%06d c=%s " % (seq, self.name)
        return head + "x" * max(1, self.line_bytes - len(head))

    def write(self, n, day="2026-11-25", text=None):
        """Appends n json-file lines in one write (text(seq) makes each message)."""
        out = []
        for _ in range(n):
            msg = (text or self.text)(self.seq)
            t = "%sT10:00:00.%09dZ" % (day, self.seq + 1)  # strictly increasing
            out.append(json.dumps({"log": msg + "\n", "stream": "stdout", "time": t},
                                  separators=(",", ":")) + "\n")
            self.lines.append((msg, t))
            self.seq += 1
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND)
        try:
            data = "".join(out).encode()
            check(os.write(fd, data) == len(data), "short write to %s" % self.log)
        finally:
            os.close(fd)


def fake_root(env, *specs, cls=Container):
    """Containers (name, labels) of class cls under a new --docker-root."""
    root = env.mkdir("docker")
    return root, [cls(root, name, labels) for name, labels in specs]


class Feeder(threading.Thread):
    """Appends `total` lines to each container at `rate` lines/s each, in chunks of `chunk`."""

    def __init__(self, ctrs, total, rate, chunk=50):
        super().__init__(daemon=True)
        self.ctrs, self.total, self.rate, self.chunk = ctrs, total, rate, chunk
        self.halt = threading.Event()
        self.error = None

    def run(self):
        try:
            t0 = time.monotonic()
            done = 0
            while done < self.total and not self.halt.is_set():
                n = min(self.chunk, self.total - done)
                for c in self.ctrs:
                    c.write(n)
                done += n
                ahead = done / self.rate - (time.monotonic() - t0)
                if ahead > 0:
                    self.halt.wait(ahead)
        except Exception as e:  # reported by finish()
            self.error = e

    def written(self):
        return min(c.seq for c in self.ctrs)

    def wait_written(self, n, timeout=60.0):
        wait_until(lambda: self.written() >= n or self.error or not self.is_alive(), timeout,
                   "the feeder to write %d lines" % n)

    def finish(self, timeout=120.0):
        """Waits for the end; unless stop() was called, every line must have been written."""
        self.join(timeout)
        check(not self.is_alive(), "the feeder did not finish within %.0f s" % timeout)
        if self.error:
            fail("the feeder failed: %r" % self.error)
        if not self.halt.is_set():
            check(self.written() == self.total, "the feeder wrote %d of %d lines" %
                  (self.written(), self.total))

    def stop(self):
        self.halt.set()


def feed(ctrs, total, rate, chunk=50, at=()):
    """Runs a Feeder to its end (every line written). at: (n, action) pairs in order, each
    action called once every container has n lines written."""
    feeder = Feeder(ctrs, total, rate, chunk)
    feeder.start()
    try:
        for n, action in at:
            feeder.wait_written(n)
            action()
        feeder.finish()
    finally:
        feeder.stop()


class LabelSource:
    """A Swarm manager's tailjet as a worker's tailjet sees it (--label-source URL): it serves
    the label table at /v1/services as discover/tj_labels.c does, {"version": 16 hex digits,
    "services": [{"id", "name", "labels"}]}, and holds a long poll (?version=V&wait=S) that asks
    for the version it has until the table changes (then 200) or the wait ends (304)."""

    def __init__(self, services=()):
        import http.server

        self.cv = threading.Condition()
        self.closed = False
        self.gen = 0
        self.services = list(services)
        self.asked = 0  # requests answered
        src = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                from urllib.parse import parse_qs, urlsplit
                u = urlsplit(self.path)
                if u.path != "/v1/services":
                    self.send_error(404)
                    return
                q = parse_qs(u.query)
                have = q.get("version", [""])[0]
                wait = min(float(q.get("wait", ["0"])[0] or 0), 25.0)
                with src.cv:
                    src.cv.wait_for(lambda: src.closed or src.version() != have, wait)
                    version, body = src.version(), json.dumps(
                        {"version": src.version(), "services": src.services}).encode()
                    src.asked += 1
                if version == have:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = "http://127.0.0.1:%d" % self.server.server_address[1]

    def version(self):
        return "%016x" % (0x7a11e7000000 + self.gen)

    def set(self, services):
        """Serves a new table: [{"id", "name", "labels": {...}}, ...]."""
        with self.cv:
            self.services = list(services)
            self.gen += 1
            self.cv.notify_all()

    def close(self):
        with self.cv:
            self.closed = True
            self.cv.notify_all()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5.0)
