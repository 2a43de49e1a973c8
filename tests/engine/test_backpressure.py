#!/usr/bin/env python3
"""test_backpressure.py: a blocked output pauses reading; memory stays flat; nothing is lost.

Usage: test_backpressure.py PATH/TO/tailjet

The output is a FIFO that the test opens for reading (O_RDONLY|O_NONBLOCK) but does not read,
so tailjet's writes block once the pipe is full. Meanwhile TJ_BACKPRESSURE_BYTES (default
1 GiB) of numbered 400-byte plain lines are appended to the watched file, and tailjet's RSS is
sampled. Required: peak RSS (VmHWM) below RSS_BOUND_MIB while blocked and over the whole run.
Then the test reads the FIFO (checking the numbers on the fly, nothing stored) and requires
every line exactly once, in order.
"""

import fcntl
import json
import os
import re
import select
import struct
import sys
import termios
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tj_engine_util import (Env, check, fail, free_bytes, log, main_wrapper,  # noqa
                            tj_args)

# Peak RSS of tailjet while its output is blocked. Sanitizer builds keep freed memory in
# quarantine and add shadow memory, so scripts/test.sh raises the bound for them only.
RSS_BOUND_MIB = int(os.environ.get("TJ_RSS_BOUND_MIB", "64"))
TOTAL_BYTES = int(os.environ.get("TJ_BACKPRESSURE_BYTES", str(1 << 30)))
LINE_BYTES = 400
BLOCKED_SETTLE = 2.0   # seconds tailjet stays blocked after the write, still sampled
DRAIN_TIMEOUT = 150.0  # to read everything once the FIFO is read

SEQ = re.compile(rb'"message"\s*:\s*"seq=(\d{10}) ')


def make_chunk(first, count):
    pad = "x" * (LINE_BYTES - len("seq=0000000000 ") - 1)
    return "".join("seq=%010d %s\n" % (i, pad) for i in range(first, first + count)).encode()


class FifoReader(threading.Thread):
    """Reads the FIFO, checks that the numbers come in order and counts each (bytearray)."""

    def __init__(self, fd, nlines, path):
        super().__init__(daemon=True)
        self.fd = fd
        self.n = nlines
        self.path = path
        self.counts = bytearray(nlines)
        self.lines = 0          # records read
        self.next = 0           # number expected next
        self.disorder = 0       # places where the next number was not the expected one
        self.first_disorder = None
        self.unknown = 0        # records without a writer number
        self.first_unknown = None
        self.bad_sample = None  # a sampled record that is not what it should be
        self.bytes = 0
        self.eof_seen = False
        self.stop = threading.Event()
        self.error = None

    def run(self):
        try:
            self._run()
        except Exception as e:  # reported by the main thread
            self.error = repr(e)

    def _run(self):
        po = select.poll()
        po.register(self.fd, select.POLLIN)
        buf = b""
        while True:
            po.poll(100)
            try:
                data = os.read(self.fd, 1 << 20)
            except BlockingIOError:
                data = None
            if data:
                self.bytes += len(data)
                buf += data
                cut = buf.rfind(b"\n")
                if cut >= 0:
                    self._lines(buf[:cut + 1])
                    buf = buf[cut + 1:]
                continue
            if data == b"":  # no writer at the moment
                self.eof_seen = True
                if self.stop.is_set():
                    return
                time.sleep(0.01)
            elif self.stop.is_set():
                return

    def _lines(self, block):
        nl = block.count(b"\n")
        nums = [int(x) for x in SEQ.findall(block)]
        if len(nums) != nl:
            self.unknown += nl - len(nums)
            if self.first_unknown is None:
                for ln in block.split(b"\n"):
                    if ln and not SEQ.search(ln):
                        self.first_unknown = ln[:200]
                        break
        if (self.lines // 10000) != ((self.lines + nl) // 10000):  # sample one record
            ln = block[:block.find(b"\n")]
            try:
                r = json.loads(ln)
                if r["log"]["file"]["path"] != self.path or not r["message"].startswith("seq="):
                    raise ValueError("unexpected fields")
            except (ValueError, KeyError, TypeError) as e:
                if self.bad_sample is None:
                    self.bad_sample = "%s: %r" % (e, ln[:300])
        self.lines += nl
        if nums and nums != list(range(self.next, self.next + len(nums))):
            for i, v in enumerate(nums):
                if v != self.next + i:
                    self.disorder += 1
                    if self.first_disorder is None:
                        self.first_disorder = (self.next + i, v)
                    break
        c = self.counts
        n = self.n
        for v in nums:
            if v < n and c[v] < 255:
                c[v] += 1
        if nums:
            self.next = nums[-1] + 1


def fifo_bytes(fd):
    """Bytes waiting in the pipe (FIONREAD)."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


def main(binary):
    nlines = TOTAL_BYTES // LINE_BYTES
    need = int(2.5 * TOTAL_BYTES)
    free = free_bytes("/tmp")
    check(free >= need, "/tmp has %.2f GiB free; this test needs %.2f GiB (TJ_BACKPRESSURE_BYTES"
          "=%d)" % (free / 2**30, need / 2**30, TOTAL_BYTES))
    bound_kib = RSS_BOUND_MIB * 1024
    with Env("backpressure") as env:
        p = os.path.join(env.mkdir("logs"), "app.log")
        open(p, "wb").close()
        out, state = env.path("out.fifo"), env.path("state")
        os.mkfifo(out)
        rfd = os.open(out, os.O_RDONLY | os.O_NONBLOCK)
        env.fds.append(rfd)
        tj = env.tailjet(binary, tj_args([p], out, state))
        tj.wait_open(p)
        time.sleep(0.3)
        base = tj.rss_kib()
        log("tailjet started: RSS %s KiB; writing %d lines of %d bytes (%.2f GiB) to %s" %
            (base, nlines, LINE_BYTES, nlines * LINE_BYTES / 2**30, p))

        samples = []  # (seconds, bytes written, VmRSS KiB)
        t0 = time.monotonic()
        wfd = os.open(p, os.O_WRONLY | os.O_APPEND)
        per_chunk = (1 << 20) // LINE_BYTES
        written = 0
        next_sample = 0
        i = 0
        try:
            while i < nlines:
                k = min(per_chunk, nlines - i)
                data = make_chunk(i, k)
                mv = memoryview(data)
                while mv:
                    mv = mv[os.write(wfd, mv):]
                i += k
                written += len(data)
                if written >= next_sample:
                    tj.check_alive("while its output is blocked")
                    samples.append((time.monotonic() - t0, written, tj.rss_kib()))
                    next_sample += 16 << 20
        finally:
            os.close(wfd)
        t_write = time.monotonic() - t0
        log("wrote %.2f GiB in %.1f s (%.0f MB/s)" %
            (written / 2**30, t_write, written / 1e6 / t_write))
        t1 = time.monotonic()
        while time.monotonic() - t1 < BLOCKED_SETTLE:
            samples.append((time.monotonic() - t0, written, tj.rss_kib()))
            time.sleep(0.1)
        tj.check_alive("while its output is blocked")
        hwm_blocked = tj.peak_rss_kib()
        rss_max = max(s[2] for s in samples if s[2] is not None)
        in_pipe = fifo_bytes(rfd)
        pos = tj.fd_pos(p)
        log("blocked: peak RSS (VmHWM) %d KiB = %.1f MiB (sampled VmRSS max %d KiB, bound %d "
            "MiB); %d bytes waiting in the FIFO; tailjet's input fd position %s" %
            (hwm_blocked, hwm_blocked / 1024, rss_max, RSS_BOUND_MIB, in_pipe, pos))
        log("  RSS samples (s, MiB written, KiB): %s" % ", ".join(
            "(%.1f, %d, %s)" % (s[0], s[1] >> 20, s[2]) for s in samples[::max(1, len(samples)
                                                                                 // 12)]))

        # now read: every line exactly once, in order
        try:
            fcntl.fcntl(rfd, fcntl.F_SETPIPE_SZ, 1 << 20)
        except OSError:
            pass
        reader = FifoReader(rfd, nlines, p)
        t2 = time.monotonic()
        reader.start()
        deadline = t2 + DRAIN_TIMEOUT
        while reader.lines < nlines and time.monotonic() < deadline:
            if reader.error:
                break
            tj.check_alive("while the FIFO is read")
            time.sleep(0.1)
        t_drain = time.monotonic() - t2
        hwm_all = tj.peak_rss_kib()
        log("read %d records (%.2f GB) in %.1f s after the reading started (%.0f records/s)" %
            (reader.lines, reader.bytes / 1e9, t_drain, reader.lines / max(t_drain, 1e-9)))
        stop_secs = tj.stop(bound=15.0)
        reader.stop.set()
        reader.join(timeout=30)
        log("tailjet exited 0 %.2f s after SIGTERM; whole-run peak RSS %d KiB = %.1f MiB" %
            (stop_secs, hwm_all, hwm_all / 1024))

        errors = []
        if reader.error:
            errors.append("the FIFO reader failed: %s" % reader.error)
        if hwm_blocked > bound_kib:
            errors.append("peak RSS while the output was blocked: %.1f MiB > %d MiB: reading "
                          "did not pause" % (hwm_blocked / 1024, RSS_BOUND_MIB))
        if hwm_all > bound_kib:
            errors.append("peak RSS over the run: %.1f MiB > %d MiB" %
                          (hwm_all / 1024, RSS_BOUND_MIB))
        c = reader.counts
        missing = c.count(0)
        dups = nlines - missing - c.count(1)
        log("lines %d: received %d records, missing %d, duplicated %d, out of order %d, "
            "not writer lines %d" % (nlines, reader.lines, missing, dups, reader.disorder,
                                     reader.unknown))
        if missing:
            errors.append("%d of %d lines never arrived (first missing #%d) within %.0f s" %
                          (missing, nlines, c.find(0), DRAIN_TIMEOUT))
        if dups:
            errors.append("%d lines arrived more than once" % dups)
        if reader.disorder:
            errors.append("lines out of order: after #%d came #%d (%d places)" %
                          (reader.first_disorder[0] - 1, reader.first_disorder[1],
                           reader.disorder))
        if reader.unknown:
            errors.append("%d records without a writer number, first %r" %
                          (reader.unknown, reader.first_unknown))
        if reader.bad_sample:
            errors.append("a sampled record is not as expected: %s" % reader.bad_sample)
        log("times: write %.1f s, blocked %.1f s, drain %.1f s, total %.1f s" %
            (t_write, BLOCKED_SETTLE, t_drain, time.monotonic() - t0))
        if errors:
            fail("blocked output:\n  " + "\n  ".join(errors))


if __name__ == "__main__":
    main_wrapper(main)
