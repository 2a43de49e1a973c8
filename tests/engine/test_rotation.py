#!/usr/bin/env python3
"""test_rotation.py: a rotation storm while a writer appends numbered lines at a high rate.

Usage: test_rotation.py PATH/TO/tailjet

tailjet follows four files in four directories (one --watch each) while a separate writer
process appends "seq=%09d f=TAG xxx..." lines (200 bytes, one write each) to all of them,
TJ_STORM_RATE (default 17000) lines/s per file, and rotates:
  a: rename, Docker max-size style (PATH.3 deleted, .2 -> .3, .1 -> .2, PATH -> .1, new PATH)
     whenever PATH reaches 200 KB: ~17 times a second, a generation lives ~60 ms as PATH;
  b: unlink PATH and create a new one, whenever it reaches 200 KB;
  c: copytruncate by the writer itself between two writes (PATH copied to PATH.1, older copies
     shifted, PATH truncated to 0) at 200 KB: lossless from the log's point of view;
  d: no rotation by the writer; Debian's logrotate (`create`, `rotate 3`, `size 1`, private
     state file) runs twice during the storm; the writer checks every 64 lines (~4 ms) whether
     PATH is a new file and reopens it, so its last lines before that land in the renamed file.
After TJ_STORM_SECONDS (default 10) the writer stops; the test waits until the output holds
every number (at most 60 s), stops tailjet with SIGTERM, and requires every number of every
file exactly once, each record carrying its watched path.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tj_engine_util import (Env, OutputTail, SeqCounter, fail, finish_writer, log,  # noqa
                            main_wrapper, run_logrotate, start_writer, tj_args,
                            write_logrotate_conf)

STORM_SECONDS = float(os.environ.get("TJ_STORM_SECONDS", "10"))
RATE_PER_FILE = int(os.environ.get("TJ_STORM_RATE", "17000"))  # lines/s each, 4 files
ROTATE_BYTES = 200 * 1000
LINE_BYTES = 200
CATCH_UP_TIMEOUT = float(os.environ.get("TJ_STORM_CATCH_UP", "60"))


def main(binary):
    with Env("rotation") as env:
        modes = {"a": "rename", "b": "unlink", "c": "copytruncate", "d": "logrotate create"}
        paths = {tag: os.path.join(env.mkdir(tag), "app.log") for tag in "abcd"}
        for p in paths.values():
            open(p, "wb").close()
        out, state = env.path("out.ndjson"), env.path("state")
        conf = env.path("logrotate.conf")
        write_logrotate_conf(conf, paths["d"])
        tj = env.tailjet(binary, tj_args([paths[t] for t in "abcd"], out, state))
        for p in paths.values():
            tj.wait_open(p)

        spec = {"rate": RATE_PER_FILE, "seconds": STORM_SECONDS, "line_bytes": LINE_BYTES,
                "files": [
                    {"path": paths["a"], "tag": "a", "mode": "rename",
                     "rotate_bytes": ROTATE_BYTES, "keep": 3},
                    {"path": paths["b"], "tag": "b", "mode": "unlink",
                     "rotate_bytes": ROTATE_BYTES},
                    {"path": paths["c"], "tag": "c", "mode": "copytruncate",
                     "rotate_bytes": ROTATE_BYTES, "keep": 3},
                    {"path": paths["d"], "tag": "d", "mode": "reopen"}]}
        t0 = time.monotonic()
        writer, stats_path = start_writer(env, spec)
        tail = OutputTail(out, fast=True)
        seen = SeqCounter()
        logrotates = 0
        next_lr = [t0 + STORM_SECONDS / 3, t0 + 2 * STORM_SECONDS / 3]
        # The output is read once the writer is done: on 2 cores, parsing it meanwhile would
        # take the CPU that tailjet needs to see each generation in its ~60 ms of life.
        while writer.poll() is None:
            tj.check_alive("during the storm")
            if next_lr and time.monotonic() >= next_lr[0]:
                next_lr.pop(0)
                run_logrotate(env, conf, env.path("logrotate.state"))
                logrotates += 1
            time.sleep(0.05)
        stats = finish_writer(env, writer, stats_path, stop=False)
        t_written = time.monotonic()
        expected = {tag: st["lines"] for tag, st in stats["files"].items()}
        total = sum(expected.values())
        storm_lines = sum(expected[t] for t in "abc")
        log("writer: %d lines in %.1f s (%.0f lines/s; a, b, c: %.0f lines/s), "
            "%d logrotate runs; the writer fell behind its rate %d times (at most %.0f ms)" %
            (total, stats["seconds"], total / stats["seconds"], storm_lines / stats["seconds"],
             logrotates, stats["stalls"], stats["max_behind"] * 1000))

        deadline = time.monotonic() + CATCH_UP_TIMEOUT
        complete = False
        while time.monotonic() < deadline:
            for r in tail.poll():
                seen.add(r)
            if seen.complete(expected):
                complete = True
                break
            tj.check_alive("while catching up")
            time.sleep(0.2)
        t_done = time.monotonic()
        if complete:
            log("every number present %.1f s after the writer stopped (reading and checking the "
                "output included)" % (t_done - t_written))
            time.sleep(1.0)  # time for late duplicates to show
        else:
            log("NOT every number present %.0f s after the writer stopped" % CATCH_UP_TIMEOUT)
        hwm = tj.peak_rss_kib()
        secs = tj.stop(bound=15.0)
        for r in tail.poll_all():
            seen.add(r)
        log("tailjet exited 0 %.2f s after SIGTERM; %d records, peak RSS %s KiB" %
            (secs, tail.nrecords, hwm))

        errors = []
        for tag in "abcd":
            st = stats["files"][tag]
            n = st["lines"]
            missing, dup_n, extra, maxc, unexpected, first_missing = seen.summary(tag, n)
            rot = st["reopens"] if tag == "d" else st["rotations"]
            lines_per_gen = ROTATE_BYTES // LINE_BYTES
            log("  %s %-17s lines %7d  rotations %4d  missing %6d  duplicated %5d (max %d)  "
                "unexpected %d" % (tag, modes[tag], n, rot, missing, dup_n, maxc, unexpected))
            if missing:
                ml = seen.missing_list(tag, n, limit=100000)
                gens = sorted({m // lines_per_gen for m in ml})
                where = ("generations (of %d lines) %s" % (lines_per_gen, gens[:12])
                         if tag != "d" else "")
                errors.append("%s (%s): %d of %d lines missing, first %s %s" %
                              (tag, modes[tag], missing, n, ml[:5], where))
            if dup_n:
                errors.append("%s (%s): %d lines shipped more than once (max %d times)" %
                              (tag, modes[tag], dup_n, maxc))
            if unexpected:
                errors.append("%s (%s): %d numbers never written were shipped" %
                              (tag, modes[tag], unexpected))
            wrong = {p: c for p, c in seen.paths.get(tag, {}).items() if p != paths[tag]}
            if wrong:
                errors.append("%s (%s): records with log.file.path other than the watched %s:"
                              " %s" % (tag, modes[tag], paths[tag], dict(list(wrong.items())[:3])))
        if stats["files"]["d"]["reopens"] < 1:
            errors.append("logrotate never rotated the 4th file (writer reopened it %d times)" %
                          stats["files"]["d"]["reopens"])
        if seen.bad:
            errors.append("%d records are not writer lines, first: %r" %
                          (len(seen.bad), seen.bad[0]))
        if tail.torn:
            errors.append("%d output lines are not JSON records (nothing was killed), first: %r"
                          % (len(tail.torn), tail.torn[0]))
        log("catch-up %.1f s, total %.1f s" % (t_done - t_written, time.monotonic() - t0))
        if errors:
            fail("rotation storm:\n  " + "\n  ".join(errors))


if __name__ == "__main__":
    main_wrapper(main)
