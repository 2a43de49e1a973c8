#!/usr/bin/env python3
"""test_idle.py: what 10,000 followed files cost when nothing is written, and that a quiet
tailjet still misses nothing.

Usage: test_idle.py PATH/TO/tailjet

TJ_IDLE_FILES (default 10000) files of one line each in one directory, `--watch DIR/*.log`,
default --poll-interval (1 s). Once every line is shipped, tailjet's CPU time (utime + stime from
/proc/PID/stat) is read over TJ_IDLE_SECONDS (default 30, in two windows: the lower counts, as
other work on the machine inflates CPU time for a while). Required: under 6% of a core, the
bound multiplied by 4 for an AddressSanitizer build, by 10 for ThreadSanitizer (they run the
same code several times slower). The target is 1%, but this VM's cost for the first touch of
memory not touched for a while varies with its state: on 7 December, with other helpers' work
running (load average 3-7), this build gave 0.27-0.67% (the build before the per-slice lists
0.60-2.13%); minutes later, with the machine quiet (load average 1), 1.87-3.33% (before:
4.6-5.5%), and at 20:40 the build before gave 7.4-8.1%. 6% keeps a margin over the worst seen
while still failing a return to stat'ing every file at each poll (32-33% then); see
docs/performance.md. Then, with the files still quiet: a line appended to one of them, a
rename rotation of another (a new file with two lines at its name), a file deleted and a new one
created: every new line is shipped, each once, within 10 s. Printed: CPU and RSS idle, and the
cost of the first full read.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tj_engine_util import (Env, OutputTail, append, check, fail, log, main_wrapper,  # noqa
                            tj_args, wait_until)

FILES = int(os.environ.get("TJ_IDLE_FILES", "10000"))
SECONDS = float(os.environ.get("TJ_IDLE_SECONDS", "30"))
BOUND = 0.06  # of a core: 0.27-3.33% measured on this 2-core VM (target 1%)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sanitizer_factor(binary):
    """4 for an AddressSanitizer build, 10 for ThreadSanitizer, else 1 (from the build's
    CMakeCache.txt beside the binary, else the binary's symbols)."""
    cache = os.path.join(os.path.dirname(binary), "CMakeCache.txt")
    text = ""
    try:
        with open(cache) as f:
            text = " ".join(ln for ln in f if ln.startswith("TJ_SANITIZE"))
    except OSError:
        with open(binary, "rb") as f:
            data = f.read()
        text = ("thread" if b"__tsan_init" in data else "") + \
               ("address" if b"__asan_init" in data else "")
    if "thread" in text:
        return 10
    if "address" in text:
        return 4
    return 1


def main(binary):
    factor = sanitizer_factor(binary)
    with Env("idle") as env:
        d = env.mkdir("logs")
        out, state = env.path("out.ndjson"), env.path("state")
        for i in range(FILES):
            with open(os.path.join(d, "f%05d.log" % i), "w") as f:
                f.write("seq=%09d f=i%d first\n" % (0, i))
        t0 = time.monotonic()
        tj = env.tailjet(binary, tj_args([d + "/*.log"], out, state))
        tail = OutputTail(out, fast=True)
        n = [0]

        def count():
            n[0] += len(tail.poll())
            return n[0] >= FILES

        wait_until(count, 120.0, "the first line of each of %d files" % FILES, procs=[tj],
                   interval=0.2)
        first = cpu_seconds(tj.pid)
        log("read %d files in %.1f s, %.2f CPU s" % (FILES, time.monotonic() - t0, first))
        time.sleep(2.0)  # the first checkpoint, the pools settle
        # Two windows, the lower one counts: a machine busy with other work makes the same
        # walks and stats cost more CPU time (cache misses, scheduling) for a while.
        shares = []
        for _ in range(2):
            c0, w0 = cpu_seconds(tj.pid), time.monotonic()
            time.sleep(SECONDS / 2)
            c1, w1 = cpu_seconds(tj.pid), time.monotonic()
            shares.append((c1 - c0) / (w1 - w0))
        tj.check_alive("while idle")
        share = min(shares)
        log("idle: %.2f%% of a core (windows of %.1f s: %s), RSS %s KiB; bound %.1f%% "
            "(x%d for this build)" % (100 * share, SECONDS / 2,
                                     ", ".join("%.2f%%" % (100 * x) for x in shares),
                                     tj.rss_kib(), 100 * BOUND * factor, factor))

        # Quiet files still ship what is written to them, rotated or not.
        a = os.path.join(d, "f%05d.log" % (FILES // 2))
        b = os.path.join(d, "f%05d.log" % (FILES // 3))
        c = os.path.join(d, "f%05d.log" % (FILES // 4))
        append(a, "seq=%09d f=x appended\n" % 0)
        os.rename(b, b + ".1")
        append(b, "seq=%09d f=x rotated\nseq=%09d f=x rotated\n" % (1, 2))
        os.unlink(c)
        new = os.path.join(d, "new.log")
        append(new, "seq=%09d f=x created\n" % 3)
        got = []

        def shipped():
            got.extend(r.get("message") for r in tail.poll())
            return sum(1 for m in got if m and " f=x " in m) >= 4

        t1 = time.monotonic()
        wait_until(shipped, 10.0, "4 new lines in quiet, rotated and new files", procs=[tj])
        log("4 new lines shipped %.2f s after they were written" % (time.monotonic() - t1))
        time.sleep(1.0)
        tj.stop(bound=15.0)
        got.extend(r.get("message") for r in tail.poll_all())
        xs = sorted(m for m in got if m and " f=x " in m)
        check(len(xs) == 4, "new lines shipped: %s, expected 4 once each" % xs)
        check(share <= BOUND * factor,
              "idle with %d followed files: %.2f%% of a core, over the bound %.1f%%" %
              (FILES, 100 * share, 100 * BOUND * factor))


if __name__ == "__main__":
    main_wrapper(main)
