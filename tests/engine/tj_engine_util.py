"""Shared helpers for the engine tests of `tailjet run` (Python 3 stdlib only).

- Env: a temp dir under /tmp and every process a test starts; on exit each process still
  running is killed by its pid and the dir is removed (TJ_KEEP_TMP=1 keeps it for a post-mortem).
- Tailjet: one `tailjet run` process, stderr captured to a file; stop() sends SIGTERM and checks
  exit status 0 within a bound; VmHWM/VmRSS from /proc.
- parse_ndjson / OutputTail: NDJSON records, tolerating a torn record (a write cut short by
  kill -9), also when a later run appended the next record right after it on the same line.
- Writer: `python3 tj_engine_util.py writer SPEC.json`, a separate process appending numbered
  lines ("seq=%09d f=TAG xxx...") to files, each rotated its own way while it writes.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    """A TCP port free on 127.0.0.1 right now (the kernel's choice)."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _die_with_parent():
    """preexec_fn: the child gets SIGKILL if the test process dies without cleaning up (killed
    by a timeout with SIGKILL, say), so no tailjet or writer outlives it."""
    try:
        import ctypes
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


class TestFailure(Exception):
    """A failed assertion: the message says what a user would see go wrong."""


def log(msg):
    print(msg, flush=True)


def fail(msg):
    raise TestFailure(msg)


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


# ------------------------------------------------------------------------------------------
# Processes and temp dirs


class Env:
    """Temp dir + processes of one test; use as a context manager (cleanup also on failure)."""

    def __init__(self, name):
        self.dir = tempfile.mkdtemp(prefix="tj-%s-" % name, dir="/tmp")
        self.procs = []  # subprocess.Popen objects, killed by pid at exit
        self.tailjets = []
        self.fds = []

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def mkdir(self, *parts):
        p = self.path(*parts)
        os.makedirs(p, exist_ok=True)
        return p

    def spawn(self, argv, **kw):
        p = subprocess.Popen(argv, preexec_fn=_die_with_parent, **kw)
        self.procs.append(p)
        return p

    def tailjet(self, binary, args, name="tj", **kw):
        t = Tailjet(self, binary, args, name=name, **kw)
        self.tailjets.append(t)
        return t

    def dump_stderr(self, lines=25):
        """Prints the end of each tailjet's stderr (called when a test fails)."""
        empty = 0
        for t in self.tailjets:
            text = t.stderr_text()
            if not text:
                empty += 1
                continue
            tail = text.splitlines()[-lines:]
            log("--- stderr of %s (pid %d, %d lines, last %d):" %
                (t.name, t.pid, len(text.splitlines()), len(tail)))
            for ln in tail:
                log("    " + ln[:300])
        if empty:
            log("--- %d tailjet process(es) wrote nothing on stderr" % empty)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    log("warning: pid %d did not die after SIGKILL" % p.pid)
        for fd in self.fds:
            try:
                os.close(fd)
            except OSError:
                pass
        if os.environ.get("TJ_KEEP_TMP"):
            log("kept %s (TJ_KEEP_TMP)" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None:
            try:
                self.dump_stderr()
            except Exception as e:  # diagnostics must not hide the failure
                log("(could not dump stderr: %s)" % e)
        self.close()
        return False


class Tailjet:
    """One `tailjet run ARGS` process; stderr goes to a file in the env's dir."""

    _count = 0

    def __init__(self, env, binary, args, name="tj", stdout=None):
        Tailjet._count += 1
        self.env = env
        self.name = name
        self.args = list(args)
        self.stderr_path = env.path("%s-%d.stderr" % (name, Tailjet._count))
        self._err = open(self.stderr_path, "wb")
        out = stdout if stdout is not None else subprocess.DEVNULL
        self.proc = env.spawn([binary, "run"] + self.args, stdin=subprocess.DEVNULL,
                              stdout=out, stderr=self._err)
        self._err.close()
        self.pid = self.proc.pid
        self.started = time.monotonic()

    def alive(self):
        return self.proc.poll() is None

    def returncode(self):
        return self.proc.poll()

    def stderr_text(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def check_alive(self, what=""):
        rc = self.proc.poll()
        if rc is not None:
            fail("tailjet (%s) exited with status %d%s; stderr:\n%s" %
                 (self.name, rc, (" " + what) if what else "", tail_text(self.stderr_text())))

    def wait(self, timeout):
        """Waits for the process to exit; returns its status or fails after timeout."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            fail("tailjet (%s, pid %d) still running after %.1f s" %
                 (self.name, self.pid, timeout))

    def run_to_exit(self, timeout, expect=0):
        """For --exit-on-eof runs: waits, checks the exit status, returns seconds taken."""
        rc = self.wait(timeout)
        secs = time.monotonic() - self.started
        if expect is not None and rc != expect:
            fail("tailjet (%s) exited with status %d, expected %d; stderr:\n%s" %
                 (self.name, rc, expect, tail_text(self.stderr_text())))
        return secs

    def stop(self, bound=10.0):
        """SIGTERM; requires exit status 0 within `bound` seconds. Returns seconds taken."""
        self.check_alive("before SIGTERM")
        t0 = time.monotonic()
        os.kill(self.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=bound)
        except subprocess.TimeoutExpired:
            fail("tailjet (%s, pid %d) did not exit within %.1f s of SIGTERM" %
                 (self.name, self.pid, bound))
        secs = time.monotonic() - t0
        if rc != 0:
            fail("tailjet (%s) exited with status %d after SIGTERM (expected 0); stderr:\n%s" %
                 (self.name, rc, tail_text(self.stderr_text())))
        return secs

    def kill9(self):
        self.check_alive("before kill -9")
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def status_kib(self, field):
        """VmHWM, VmRSS... from /proc/PID/status in KiB (None once the process is gone)."""
        try:
            with open("/proc/%d/status" % self.pid) as f:
                for ln in f:
                    if ln.startswith(field + ":"):
                        return int(ln.split()[1])
        except OSError:
            return None
        return None

    def peak_rss_kib(self):
        return self.status_kib("VmHWM")

    def rss_kib(self):
        return self.status_kib("VmRSS")

    def open_paths(self):
        """Paths of the process's open fds (to know it has opened a file)."""
        res = []
        d = "/proc/%d/fd" % self.pid
        try:
            for fd in os.listdir(d):
                try:
                    res.append(os.readlink(os.path.join(d, fd)))
                except OSError:
                    pass
        except OSError:
            pass
        return res

    def fd_pos(self, path):
        """File position of the fd open on `path` (from fdinfo), or None."""
        d = "/proc/%d/fd" % self.pid
        try:
            for fd in os.listdir(d):
                try:
                    if os.readlink(os.path.join(d, fd)) == path:
                        with open("/proc/%d/fdinfo/%s" % (self.pid, fd)) as f:
                            for ln in f:
                                if ln.startswith("pos:"):
                                    return int(ln.split()[1])
                except OSError:
                    pass
        except OSError:
            pass
        return None

    def wait_open(self, path, timeout=10.0):
        """Waits until the process holds `path` open (it follows that file)."""
        deadline = time.monotonic() + timeout
        path = os.path.realpath(path)
        while time.monotonic() < deadline:
            self.check_alive("while waiting for it to open %s" % path)
            if path in self.open_paths():
                return
            time.sleep(0.02)
        fail("tailjet (%s) did not open %s within %.1f s" % (self.name, path, timeout))


def tail_text(text, lines=20):
    ls = text.splitlines()[-lines:]
    return "\n".join("    " + ln[:300] for ln in ls) if ls else "    (empty)"


def tj_args(watches, out, state, *extra):
    """Common `run` arguments: one --watch per glob, --output file:OUT, --state-dir STATE."""
    a = []
    for w in watches:
        a += ["--watch", w]
    a += ["--output", "file:" + out, "--state-dir", state]
    a += list(extra)
    return a


def wait_until(cond, timeout, what, procs=(), interval=0.05):
    """Polls cond() until true; fails after timeout or when one of procs (Tailjet) exits."""
    deadline = time.monotonic() + timeout
    while True:
        r = cond()
        if r:
            return r
        for p in procs:
            p.check_alive("while waiting for " + what)
        if time.monotonic() >= deadline:
            fail("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


# ------------------------------------------------------------------------------------------
# NDJSON output


def _recover_glued(line):
    """A torn record followed on the same line by a complete one (the next run appended after
    a write that kill -9 cut short): returns the complete trailing record, or None."""
    start = 1
    while True:
        i = line.find(b'{"', start)
        if i < 0:
            return None
        try:
            r = json.loads(line[i:])
            if isinstance(r, dict) and "message" in r and "log" in r:
                return r
        except ValueError:
            pass
        start = i + 1


class Parsed:
    def __init__(self):
        self.records = []
        self.torn = []       # fragments that are not a record (bytes, first 200)
        self.glued = 0       # torn fragments followed by a complete record on the same line


# fast=True: a plain record as tailjet writes it, with nothing to unescape, is matched without
# a JSON parse (~10x faster; a line that does not match is parsed with json.loads, so another
# layout is only slower). Such a record keeps only message, log.file.path and log.offset.
FAST_RECORD = re.compile(rb'\{"@timestamp":"[0-9TZ:.+-]*","message":"([^"\\]*)",'
                         rb'"host":\{"name":"[^"\\]*"\},"log":\{"file":\{"path":"([^"\\]*)"\},'
                         rb'"offset":(\d+)\}\}')


def parse_lines(lines, res, fast=False):
    match = FAST_RECORD.fullmatch if fast else (lambda ln: None)
    for ln in lines:
        m = match(ln)
        if m:
            res.records.append({"message": m.group(1).decode(), "log": {
                "file": {"path": m.group(2).decode()}, "offset": int(m.group(3))}})
            continue
        try:
            r = json.loads(ln)
            if not isinstance(r, dict):
                raise ValueError("not an object")
            res.records.append(r)
        except ValueError:
            res.torn.append(ln[:200])
            r = _recover_glued(ln)
            if r is not None:
                res.glued += 1
                res.records.append(r)


def parse_ndjson(data, fast=False):
    """Parses NDJSON bytes. A last line without "\\n" counts as torn."""
    res = Parsed()
    parts = data.split(b"\n")
    last = parts.pop()
    parse_lines(parts, res, fast)
    if last:  # no "\n": a write cut short, even if what is there parses
        res.torn.append(last[:200])
    return res


def read_records(path, strict=True, fast=False):
    """Records of an NDJSON file. strict: any line that is not a JSON object fails the test
    (use where nothing was killed)."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    res = parse_ndjson(data, fast)
    if strict and res.torn:
        fail("output %s has %d lines that are not JSON records, first: %r" %
             (path, len(res.torn), res.torn[0]))
    return res.records


class OutputTail:
    """Reads an NDJSON file incrementally (the output while tailjet writes it). poll() returns
    the records of the complete lines added since the last call."""

    def __init__(self, path, fast=False):
        self.path = path
        self.fast = fast
        self.off = 0
        self.buf = b""
        self.torn = []
        self.glued = 0
        self.nrecords = 0

    def poll(self, max_bytes=64 << 20):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.off)
                data = f.read(max_bytes)
        except FileNotFoundError:
            return []
        if not data:
            return []
        self.off += len(data)
        data = self.buf + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self.buf = data
            return []
        self.buf = data[cut + 1:]
        res = Parsed()
        parse_lines(data[:cut].split(b"\n"), res, self.fast)
        self.torn += res.torn
        self.glued += res.glued
        self.nrecords += len(res.records)
        return res.records

    def poll_all(self):
        out = []
        while True:
            r = self.poll()
            if not r and not self._more():
                return out
            out += r

    def _more(self):
        try:
            return os.path.getsize(self.path) > self.off
        except OSError:
            return False


def messages(records, path=None):
    """Messages of the records, in output order (of one watched path when given)."""
    return [r.get("message") for r in records
            if path is None or rec_path(r) == path]


def sub(r, *path):
    """r[path[0]][path[1]]... of a record, or None where a level is missing or not an object."""
    for p in path:
        if not isinstance(r, dict) or p not in r:
            return None
        r = r[p]
    return r


def rec_path(r):
    return sub(r, "log", "file", "path")


SEQ_RE = re.compile(r"^seq=(\d+) f=(\w+) ")


class SeqCounter:
    """Counts how often each number of each writer tag was shipped (bytearray per tag)."""

    def __init__(self):
        self.counts = {}   # tag -> bytearray (saturating at 255)
        self.bad = []      # records whose message is not a writer line
        self.paths = {}    # tag -> {path: n}

    def add(self, r):
        msg = r.get("message")
        m = SEQ_RE.match(msg) if isinstance(msg, str) else None
        if not m:
            if len(self.bad) < 1000:
                self.bad.append(r)
            return
        n, tag = int(m.group(1)), m.group(2)
        c = self.counts.get(tag)
        if c is None:
            c = self.counts[tag] = bytearray()
        if n >= len(c):
            c.extend(bytes(n + 1 - len(c) + 65536))
        if c[n] < 255:
            c[n] += 1
        p = rec_path(r)
        d = self.paths.setdefault(tag, {})
        d[p] = d.get(p, 0) + 1

    def complete(self, expected):
        """expected: {tag: n}; true when 0..n-1 of every tag were seen at least once."""
        for tag, n in expected.items():
            c = self.counts.get(tag)
            if n == 0:
                continue
            if c is None or len(c) < n or c.find(0, 0, n) >= 0:
                return False
        return True

    def summary(self, tag, n):
        """(missing, duplicated numbers, extra copies, max copies, unexpected numbers,
        first missing)"""
        c = self.counts.get(tag, bytearray())
        if len(c) < n:
            c = c + bytes(n - len(c))
        head = c[:n]
        missing = head.count(0)
        ones = head.count(1)
        dup_numbers = n - missing - ones
        extra = sum(head) - (n - missing)
        maxc = max(head) if n else 0
        unexpected = len(c) - n - c[n:].count(0)
        first_missing = head.find(0) if missing else None
        return missing, dup_numbers, extra, maxc, unexpected, first_missing

    def missing_list(self, tag, n, limit=10):
        c = self.counts.get(tag, bytearray())
        out = []
        for i in range(n):
            if i >= len(c) or c[i] == 0:
                out.append(i)
                if len(out) >= limit:
                    break
        return out


# ------------------------------------------------------------------------------------------
# Small file helpers


def append(path, data):
    if isinstance(data, str):
        data = data.encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def read_text(path, default=None):
    """The file's text (bad UTF-8 replaced); default, when given, for a file that cannot be
    read."""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        if default is None:
            raise
        return default


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


LOGROTATE_CREATE = """%s {
    create
    rotate 3
    size 1
    missingok
    nocompress
}
"""


def write_logrotate_conf(conf, log_path):
    """Writes a logrotate configuration for log_path: `create`, 3 rotated copies kept, rotated at
    every run (`size 1`), uncompressed."""
    with open(conf, "w") as f:
        f.write(LOGROTATE_CREATE % log_path)


def run_logrotate(env, conf, state):
    """Runs Debian's logrotate once with a private state file; fails on a non-zero status."""
    r = subprocess.run(["logrotate", "-s", state, conf], stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
    if r.returncode != 0:
        fail("logrotate failed (%d): %s" % (r.returncode, r.stdout.decode(errors="replace")))


# ------------------------------------------------------------------------------------------
# Writer (a separate process): numbered lines, rotations done while writing.


def line_bytes(seq, tag, size):
    head = "seq=%09d f=%s " % (seq, tag)
    return (head + "x" * max(0, size - len(head) - 1) + "\n").encode()


def start_writer(env, spec, name="writer"):
    """Starts the writer process. spec: {"files": [{"path", "tag", "mode", "rotate_bytes",
    "rotate_seconds", "keep"}], "rate": lines/s per file, "seconds": run time or None (until
    SIGTERM), "line_bytes": size}. Returns (Popen, stats path)."""
    spec = dict(spec)
    spec["stats"] = env.path("%s-stats.json" % name)
    spec_path = env.path("%s-spec.json" % name)
    with open(spec_path, "w") as f:
        json.dump(spec, f)
    err = open(env.path("%s.stderr" % name), "wb")
    p = env.spawn([sys.executable, os.path.join(HERE, "tj_engine_util.py"), "writer", spec_path],
                  stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    err.close()
    return p, spec["stats"]


def finish_writer(env, proc, stats_path, stop=True, timeout=60, name="writer"):
    """SIGTERM (when stop) then waits; returns the writer's stats (fails if it failed)."""
    if stop and proc.poll() is None:
        os.kill(proc.pid, signal.SIGTERM)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        fail("writer did not finish within %d s" % timeout)
    if rc != 0:
        fail("writer failed (%d): %s" % (rc, read_text(env.path("%s.stderr" % name))[-2000:]))
    with open(stats_path) as f:
        return json.load(f)


class _WFile:
    def __init__(self, d, line_size):
        self.path = d["path"]
        self.tag = d["tag"]
        self.mode = d.get("mode", "none")  # rename | unlink | copytruncate | reopen | none
        self.rotate_bytes = d.get("rotate_bytes") or 0
        self.rotate_seconds = d.get("rotate_seconds") or 0
        self.keep = d.get("keep", 3)
        self.size_line = line_size
        self.seq = 0
        self.rotations = 0
        self.reopens = 0
        self.bytes = 0
        self.fd = self._open()
        self.size = os.fstat(self.fd).st_size
        self.last_rot = time.monotonic()

    def _open(self):
        return os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def write(self):
        data = line_bytes(self.seq, self.tag, self.size_line)
        n = os.write(self.fd, data)
        if n != len(data):
            raise OSError("short write to %s: %d of %d" % (self.path, n, len(data)))
        self.seq += 1
        self.size += n
        self.bytes += n
        if self.mode == "reopen":
            if self.seq % 64 == 0:
                self._maybe_reopen()
        elif self.mode != "none":
            if self.rotate_bytes and self.size >= self.rotate_bytes:
                self.rotate()
            elif self.rotate_seconds and time.monotonic() - self.last_rot >= self.rotate_seconds:
                self.rotate()

    def _maybe_reopen(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return  # between logrotate's rename and create: keep writing to the old file
        if st.st_ino != os.fstat(self.fd).st_ino:
            os.close(self.fd)
            self.fd = self._open()
            self.reopens += 1

    def _shift(self):
        """PATH.keep is deleted, PATH.k becomes PATH.k+1."""
        try:
            os.unlink("%s.%d" % (self.path, self.keep))
        except FileNotFoundError:
            pass
        for k in range(self.keep - 1, 0, -1):
            try:
                os.rename("%s.%d" % (self.path, k), "%s.%d" % (self.path, k + 1))
            except FileNotFoundError:
                pass

    def rotate(self):
        if self.mode == "rename":
            self._shift()
            os.rename(self.path, self.path + ".1")
            os.close(self.fd)
            self.fd = self._open()
        elif self.mode == "unlink":
            os.close(self.fd)
            os.unlink(self.path)
            self.fd = self._open()
        elif self.mode == "copytruncate":
            self._shift()
            cfd = os.open(self.path + ".1", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                with open(self.path, "rb") as src:
                    while True:
                        b = src.read(1 << 20)
                        if not b:
                            break
                        os.write(cfd, b)
            finally:
                os.close(cfd)
            os.ftruncate(self.fd, 0)
        self.size = 0
        self.rotations += 1
        self.last_rot = time.monotonic()


def writer_main(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    stop = []
    signal.signal(signal.SIGTERM, lambda s, fr: stop.append(s))
    size = spec.get("line_bytes", 200)
    files = [_WFile(d, size) for d in spec["files"]]
    rate = float(spec.get("rate", 10000))
    seconds = spec.get("seconds")
    parent = os.getppid()
    t0 = time.monotonic()
    base_t, base_ticks = t0, 0  # the schedule: `rate` ticks per second from base_t
    ticks = 0
    stalls = 0       # times the writer fell more than 50 ms behind (the disk, the scheduler)
    max_behind = 0.0
    while not stop:
        for wf in files:
            wf.write()
        ticks += 1
        if ticks % 64 == 0:
            now = time.monotonic()
            if seconds is not None and now - t0 >= seconds:
                break
            if os.getppid() != parent:
                sys.exit("writer: the test is gone")
            ahead = (ticks - base_ticks) / rate - (now - base_t)
            if ahead > 0:
                time.sleep(ahead)
            elif ahead < -0.05:
                # Behind schedule: start the schedule again from now rather than catching up
                # in a burst far above the rate (and its rotations every few milliseconds).
                stalls += 1
                max_behind = max(max_behind, -ahead)
                base_t, base_ticks = now, ticks
    elapsed = time.monotonic() - t0
    for wf in files:
        os.close(wf.fd)
    stats = {"seconds": elapsed, "stalls": stalls, "max_behind": max_behind, "files": {
        wf.tag: {"path": wf.path, "lines": wf.seq, "rotations": wf.rotations,
                 "reopens": wf.reopens, "bytes": wf.bytes} for wf in files}}
    tmp = spec["stats"] + ".tmp"
    with open(tmp, "w") as f:
        json.dump(stats, f)
    os.rename(tmp, spec["stats"])


# ------------------------------------------------------------------------------------------


class CaseTimeout(TestFailure):
    pass


def _on_alarm(signum, frame):
    raise CaseTimeout("the case did not finish within its time bound")


def run_cases(cases, prefix, call, between=None, figures=(), width=16):
    """Runs a test's cases: `cases` lists case functions, or (case function, time bound in
    seconds) pairs; call(case, env) runs one in its own Env(prefix + name), within its bound if
    it has one (SIGALRM), and between() (if given) runs after each, passed or not.
    TJ_CASES=name,name runs some only (an unknown name fails). A failed case is reported and the
    others still run, unless the run itself was interrupted (ctest's timeout); at the end the
    figures (what, text) are printed and the run fails naming the failed cases."""
    cases = [c if isinstance(c, tuple) else (c, None) for c in cases]
    only = os.environ.get("TJ_CASES")
    names = [c.__name__[len("case_"):] for c, _ in cases]
    if only:
        unknown = [n for n in only.split(",") if n not in names]
        check(not unknown, "TJ_CASES names unknown cases %s (cases: %s)" % (unknown, names))
    signal.signal(signal.SIGALRM, _on_alarm)
    failed = []
    for (case, bound), name in zip(cases, names):
        if only and name not in only.split(","):
            continue
        c0 = time.monotonic()
        try:
            with Env(prefix + name) as env:
                if bound:
                    signal.setitimer(signal.ITIMER_REAL, bound)
                try:
                    call(case, env)
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
            log("ok   %-*s %5.1f s" % (width, name, time.monotonic() - c0))
        except CaseTimeout as e:
            log("FAIL %-*s %5.1f s: %s (%d s)" % (width, name, time.monotonic() - c0, e, bound))
            failed.append(name)
        except TestFailure as e:
            log("FAIL %-*s %5.1f s: %s" % (width, name, time.monotonic() - c0, e))
            failed.append(name)
            if str(e).startswith("interrupted by signal"):  # ctest's timeout: no more cases
                break
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            if between:
                between()
    if figures:
        log("figures:")
        for what, text in figures:
            log("    %s: %s" % (what, text))
    if failed:
        fail("%d case(s) failed: %s" % (len(failed), ", ".join(failed)))


def main_wrapper(fn, usage=("PATH/TO/tailjet",)):
    """Runs a test's main(binary, ...) with one executable per word of `usage` given on the
    command line; exit 0 on success, 1 with a clear FAIL line otherwise."""
    if len(sys.argv) != 1 + len(usage):
        print("usage: %s %s" % (sys.argv[0], " ".join(usage)), file=sys.stderr)
        sys.exit(2)
    binaries = [os.path.abspath(a) for a in sys.argv[1:]]
    for binary in binaries:
        if not os.access(binary, os.X_OK):
            print("FAIL: %s is not an executable" % binary, file=sys.stderr)
            sys.exit(1)
    name = os.path.basename(sys.argv[0])
    t0 = time.monotonic()

    def on_term(sig, frame):  # ctest's timeout: clean up (finally blocks) and report
        raise TestFailure("interrupted by signal %d" % sig)

    signal.signal(signal.SIGTERM, on_term)
    try:
        fn(*binaries)
    except TestFailure as e:
        print("FAIL %s (%.1f s): %s" % (name, time.monotonic() - t0, e), flush=True)
        sys.exit(1)
    except KeyboardInterrupt:
        print("FAIL %s: interrupted" % name, flush=True)
        sys.exit(1)
    except Exception:
        import traceback
        traceback.print_exc()
        print("FAIL %s (%.1f s): the test itself raised (see traceback)" %
              (name, time.monotonic() - t0), flush=True)
        sys.exit(1)
    print("PASS %s (%.1f s)" % (name, time.monotonic() - t0), flush=True)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "writer":
        writer_main(sys.argv[2])
    else:
        print("usage: tj_engine_util.py writer SPEC.json", file=sys.stderr)
        sys.exit(2)
