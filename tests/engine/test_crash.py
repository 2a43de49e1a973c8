#!/usr/bin/env python3
"""test_crash.py: kill -9 over and over while a writer appends and rotates; nothing is lost.

Usage: test_crash.py PATH/TO/tailjet

A writer appends numbered 200-byte lines (~20k lines/s) to one file for the whole test and
rotates it by rename every ~2 s (PATH -> PATH.1, older generations shifted; none deleted during
the test, so a lost line is tailjet's doing). TJ_CRASH_ROUNDS times (default 20) tailjet is
started with the same --state-dir and the same --output file (appended to), left running a
random 0.3-1.5 s, and killed with SIGKILL. Then the writer stops, tailjet is started a last
time, and the test waits until every number is in the output (at most 120 s) and stops it with
SIGTERM. Required: every number present (at-least-once), no number that was never written, no
checkpoint reported corrupt (they are written atomically). Printed, not required: duplicates
(allowed) and torn records left by a kill (tolerated; their lines are shipped again).
TJ_CRASH_SEED makes the kill times reproducible; --checkpoint-interval is TJ_CRASH_CKPT
(default 200ms, so that kills often land while a checkpoint is being written).
"""

import os
import random
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tj_engine_util import (Env, OutputTail, SeqCounter, fail, finish_writer, log,  # noqa
                            main_wrapper, start_writer, tj_args)

ROUNDS = int(os.environ.get("TJ_CRASH_ROUNDS", "20"))
RATE = int(os.environ.get("TJ_CRASH_RATE", "20000"))
CKPT = os.environ.get("TJ_CRASH_CKPT", "200ms")
FINAL_TIMEOUT = 120.0
CKPT_PROBLEM = re.compile(r"tailjet\[\d+\] (warn|error): .*checkpoint", re.I)


def main(binary):
    seed = int(os.environ.get("TJ_CRASH_SEED", str(int(time.time()))))
    rnd = random.Random(seed)
    log("seed %d (TJ_CRASH_SEED), %d rounds, checkpoint interval %s" % (seed, ROUNDS, CKPT))
    with Env("crash") as env:
        p = os.path.join(env.mkdir("logs"), "app.log")
        open(p, "wb").close()
        out, state = env.path("out.ndjson"), env.path("state")
        args = tj_args([p], out, state, "--checkpoint-interval", CKPT)
        spec = {"rate": RATE, "seconds": None, "line_bytes": 200,
                "files": [{"path": p, "tag": "a", "mode": "rename", "rotate_seconds": 2.0,
                           "keep": 1000}]}
        t0 = time.monotonic()
        writer, stats_path = start_writer(env, spec)
        tjs = []
        for i in range(ROUNDS):
            before = os.path.getsize(out) if os.path.exists(out) else 0
            tj = env.tailjet(binary, args, name="round%02d" % (i + 1))
            tjs.append(tj)
            up = rnd.uniform(0.3, 1.5)
            time.sleep(up)
            tj.kill9()
            after = os.path.getsize(out) if os.path.exists(out) else 0
            log("  round %2d: up %.2f s, killed; output +%.1f MB" %
                (i + 1, up, (after - before) / 1e6))
            if writer.poll() is not None:
                fail("the writer stopped early (status %s)" % writer.returncode)
        stats = finish_writer(env, writer, stats_path)
        n = stats["files"]["a"]["lines"]
        log("writer: %d lines in %.1f s (%.0f lines/s), %d rotations" %
            (n, stats["seconds"], n / stats["seconds"], stats["files"]["a"]["rotations"]))

        last_before = os.path.getsize(out) if os.path.exists(out) else 0
        final = env.tailjet(binary, args, name="final")
        tjs.append(final)
        tail = OutputTail(out, fast=True)
        seen = SeqCounter()
        t_final = time.monotonic()
        deadline = t_final + FINAL_TIMEOUT
        complete = False
        while time.monotonic() < deadline:
            for r in tail.poll():
                seen.add(r)
            if seen.complete({"a": n}):
                complete = True
                break
            final.check_alive("in the last run")
            time.sleep(0.2)
        took = time.monotonic() - t_final
        if complete:
            time.sleep(1.0)  # late duplicates
        secs = final.stop(bound=15.0)
        for r in tail.poll_all():
            seen.add(r)
        log("last run: %s %.1f s after its start; exit 0 %.2f s after SIGTERM; it added "
            "%.1f MB" % ("every number present" if complete else "NOT complete", took, secs,
                         (os.path.getsize(out) - last_before) / 1e6))

        missing, dup_n, extra, maxc, unexpected, first_missing = seen.summary("a", n)
        log("records %d: numbers %d, missing %d, duplicated numbers %d (%d extra copies, max "
            "%d copies of one), unexpected %d; torn lines %d (%d followed by a record on the "
            "same line)" % (tail.nrecords, n, missing, dup_n, extra, maxc, unexpected,
                            len(tail.torn), tail.glued))
        for t in tail.torn[:3]:
            log("  torn: %r" % t[:120])
        ck_msgs = []
        for tj in tjs:
            ck_msgs += [ln for ln in tj.stderr_text().splitlines() if CKPT_PROBLEM.search(ln)]
        log("total %.1f s" % (time.monotonic() - t0))

        errors = []
        if missing:
            ml = seen.missing_list("a", n, limit=100000)
            errors.append("%d of %d lines never shipped (lost), first %s ... last %s" %
                          (missing, n, ml[:5], ml[-3:]))
        if unexpected:
            errors.append("%d numbers never written were shipped" % unexpected)
        if seen.bad:
            errors.append("%d records are not writer lines, first %r" %
                          (len(seen.bad), seen.bad[0]))
        if ck_msgs:
            errors.append("checkpoints reported damaged after kill -9 (%d messages; they are "
                          "written atomically), first: %s" % (len(ck_msgs), ck_msgs[0][:300]))
        if errors:
            fail("kill -9 x %d (seed %d):\n  %s" % (ROUNDS, seed, "\n  ".join(errors)))


if __name__ == "__main__":
    main_wrapper(main)
