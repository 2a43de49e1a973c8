#!/usr/bin/env python3
"""test_identity.py: one file, one reading. A file is known by its identity (device, inode,
fingerprint of its first bytes), not by its path; the file output holds only whole records.

Usage: test_identity.py PATH/TO/tailjet. TJ_CASES=name,name runs only those cases.

Cases:
- torn_output: an output file that ends in a record cut short (kill -9 in a write) has it cut
  away at open, said on stderr; the next record starts on a line of its own.
- glob_rename: `--watch 'DIR/app.log*'` while a writer renames app.log to app.log.1 (older ones
  shifted, the oldest deleted) several times a second: every line exactly once.
- glob_logrotate: `--watch 'DIR/*'` and Debian's logrotate (`create`) rotating a file whose
  writer reopens it: every line exactly once.
- glob_copytruncate: the same glob while the writer copies app.log to app.log.1 and truncates
  it (copytruncate, lossless as the writer does it): every line exactly once.
- glob_restart: the same glob, SIGTERM, a rename rotation while tailjet is down, a restart:
  every line exactly once.
- kill9: 10 kill -9 at random moments while a writer appends and rotates by rename with the
  glob matching the rotated names: 0 lost, 0 torn records, every record valid JSON; the
  duplicates are counted, reported, and bounded by what was read but not acknowledged; the
  same run without a kill (SIGTERM at the end): 0 duplicates.
"""

import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tj_engine_util import (OutputTail, SeqCounter, append, check, fail, finish_writer,  # noqa
                            log, main_wrapper, read_records, run_cases, run_logrotate,
                            start_writer, tj_args, wait_until, write_logrotate_conf)

FIGURES = []


def setup(env):
    d = env.mkdir("logs")
    return d, env.path("out.ndjson"), env.path("state")


def setup_log(env):
    """setup(), plus an empty logs/app.log: returns (dir, out, state, app.log's path)."""
    d, out, state = setup(env)
    p = os.path.join(d, "app.log")
    open(p, "wb").close()
    return d, out, state, p


def collect(tail, seen, expected, tj, timeout, what):
    """Reads the output until every number of `expected` ({tag: n}) is in it; fails after
    timeout. Then waits a second for late duplicates."""
    deadline = time.monotonic() + timeout
    while True:
        for r in tail.poll():
            seen.add(r)
        if seen.complete(expected):
            break
        tj.check_alive(what)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    time.sleep(1.0)
    for r in tail.poll():
        seen.add(r)


def drain(out, tj, expected, timeout, what, fast=True):
    """Reads out until it holds every number of `expected` (collect), stops tailjet, reads what
    came last; returns (tail, seen) for the checks."""
    tail, seen = OutputTail(out, fast=fast), SeqCounter()
    collect(tail, seen, expected, tj, timeout, what)
    tj.stop(bound=15.0)
    for r in tail.poll_all():
        seen.add(r)
    return tail, seen


def exactly_once(seen, expected, what, tail=None):
    errors = []
    for tag, n in expected.items():
        missing, dup_n, extra, maxc, unexpected, first_missing = seen.summary(tag, n)
        log("    %s: %s lines %d, missing %d, duplicated %d (max %d copies), unexpected %d" %
            (what, tag, n, missing, dup_n, maxc, unexpected))
        if missing:
            errors.append("%s: %d of %d lines never shipped, first %s" %
                          (tag, missing, n, seen.missing_list(tag, n)))
        if dup_n:
            errors.append("%s: %d lines shipped more than once (max %d times)" %
                          (tag, dup_n, maxc))
        if unexpected:
            errors.append("%s: %d numbers never written were shipped" % (tag, unexpected))
    if seen.bad:
        errors.append("%d records are not writer lines, first %r" % (len(seen.bad), seen.bad[0]))
    if tail is not None and tail.torn:
        errors.append("%d output lines are not JSON records, first %r" %
                      (len(tail.torn), tail.torn[0]))
    if errors:
        fail("%s:\n  %s" % (what, "\n  ".join(errors)))


# ------------------------------------------------------------------------------------------


def case_torn_output(binary, env):
    d, out, state = setup(env)
    p = os.path.join(d, "app.log")
    append(p, "one\ntwo\n")
    whole = b'{"message":"before","log":{"file":{"path":"x"},"offset":0}}\n'
    torn = b'{"message":"cut sho'
    with open(out, "wb") as f:
        f.write(whole + torn)
    t = env.tailjet(binary, tj_args([p], out, state, "--exit-on-eof"))
    t.run_to_exit(15.0)
    with open(out, "rb") as f:
        data = f.read()
    check(data.startswith(whole), "the whole record before the torn one is gone: %r" % data[:200])
    check(torn not in data, "the torn record is still in the output: %r" % data[:300])
    recs = read_records(out)  # strict: every line a JSON object
    got = [r.get("message") for r in recs]
    check(got == ["before", "one", "two"], "records %s, expected before, one, two" % got)
    err = t.stderr_text()
    check("cut short" in err and out in err,
          "nothing on stderr says the torn record was cut away: %r" % err[-500:])


def rename_spec(p, seconds, rate=4000, rotate_bytes=40000, keep=3):
    # 200-byte lines, a rotation every 200 lines: 20 a second at 4000 lines/s
    return {"rate": rate, "seconds": seconds, "line_bytes": 200,
            "files": [{"path": p, "tag": "a", "mode": "rename", "rotate_bytes": rotate_bytes,
                       "keep": keep}]}


def case_glob_rename(binary, env):
    d, out, state, p = setup_log(env)
    tj = env.tailjet(binary, tj_args([p + "*"], out, state))
    tj.wait_open(p)
    writer, stats_path = start_writer(env, rename_spec(p, 6.0))
    stats = finish_writer(env, writer, stats_path, stop=False)
    n, rot = stats["files"]["a"]["lines"], stats["files"]["a"]["rotations"]
    log("    writer: %d lines, %d rename rotations in %.1f s" % (n, rot, stats["seconds"]))
    check(rot >= 20, "the writer rotated only %d times" % rot)
    tail, seen = drain(out, tj, {"a": n}, 60.0, "while catching up")
    exactly_once(seen, {"a": n}, "glob over rotated names, rename", tail)


def case_glob_copytruncate(binary, env):
    d, out, state, p = setup_log(env)
    tj = env.tailjet(binary, tj_args([p + "*"], out, state))
    tj.wait_open(p)
    spec = rename_spec(p, 6.0, rate=2000)
    spec["files"][0]["mode"] = "copytruncate"
    writer, stats_path = start_writer(env, spec)
    stats = finish_writer(env, writer, stats_path, stop=False)
    n, rot = stats["files"]["a"]["lines"], stats["files"]["a"]["rotations"]
    log("    writer: %d lines, %d copytruncate rotations in %.1f s" % (n, rot, stats["seconds"]))
    tail, seen = drain(out, tj, {"a": n}, 60.0, "while catching up")
    exactly_once(seen, {"a": n}, "glob over rotated names, copytruncate", tail)



def case_glob_logrotate(binary, env):
    d, out, state, p = setup_log(env)
    conf = env.path("logrotate.conf")
    write_logrotate_conf(conf, p)
    tj = env.tailjet(binary, tj_args([d + "/*"], out, state))
    tj.wait_open(p)
    spec = {"rate": 3000, "seconds": 6.0, "line_bytes": 200,
            "files": [{"path": p, "tag": "a", "mode": "reopen"}]}
    writer, stats_path = start_writer(env, spec)
    t0 = time.monotonic()
    runs = 0
    while writer.poll() is None:
        if time.monotonic() - t0 >= 0.8 * (runs + 1) and runs < 5:
            run_logrotate(env, conf, env.path("logrotate.state"))
            runs += 1
        time.sleep(0.05)
    stats = finish_writer(env, writer, stats_path, stop=False)
    n = stats["files"]["a"]["lines"]
    log("    writer: %d lines, reopened %d times after %d logrotate runs" %
        (n, stats["files"]["a"]["reopens"], runs))
    check(stats["files"]["a"]["reopens"] >= 2, "logrotate rotated fewer than 2 times")
    tail, seen = drain(out, tj, {"a": n}, 60.0, "while catching up")
    exactly_once(seen, {"a": n}, "glob over rotated names, logrotate create", tail)


def case_glob_restart(binary, env):
    d, out, state = setup(env)
    p = os.path.join(d, "app.log")
    lines = []

    def write(k):
        start = len(lines)
        for i in range(start, start + k):
            lines.append("seq=%09d f=a line" % i)
        append(p, "".join(ln + "\n" for ln in lines[start:]))

    def rotate():
        for k in range(3, 0, -1):
            if os.path.exists("%s.%d" % (p, k)):
                os.rename("%s.%d" % (p, k), "%s.%d" % (p, k + 1))
        os.rename(p, p + ".1")

    write(100)
    tj = env.tailjet(binary, tj_args([p + "*"], out, state), name="tj1")
    wait_until(lambda: len(read_records(out)) >= 100, 15.0, "100 records", procs=[tj])
    write(50)
    rotate()
    write(50)
    wait_until(lambda: len(read_records(out)) >= 200, 15.0, "200 records", procs=[tj])
    write(30)
    tj.stop()
    # while down: the file is rotated (twice), more lines are written before and after
    write(20)
    rotate()
    write(40)
    rotate()
    write(10)
    tj = env.tailjet(binary, tj_args([p + "*"], out, state), name="tj2")
    wait_until(lambda: len(read_records(out)) >= len(lines), 15.0,
               "%d records" % len(lines), procs=[tj])
    time.sleep(1.5)  # duplicates, if any, come by now
    write(5)
    wait_until(lambda: len(read_records(out)) >= len(lines), 15.0,
               "%d records" % len(lines), procs=[tj])
    time.sleep(0.5)
    tj.stop()
    seen = SeqCounter()
    for r in read_records(out):
        seen.add(r)
    exactly_once(seen, {"a": len(lines)}, "SIGTERM, rotations while down, restart")


KILLS = int(os.environ.get("TJ_IDENTITY_KILLS", "10"))
CKPT_MS = int(os.environ.get("TJ_IDENTITY_CKPT_MS", "1000"))


def kill_run(binary, env, kills, seed):
    """A writer appends (3000 lines/s, 200 B) and rotates by rename every 200 KB; tailjet with
    --watch 'app.log*' is killed `kills` times at random moments, then runs to the end. Returns
    (lines, duplicate copies, reads not acknowledged at each kill (bytes, from /metrics))."""
    rnd = random.Random(seed)
    d, out, state, p = setup_log(env)
    args = tj_args([p + "*"], out, state, "--checkpoint-interval", "%dms" % CKPT_MS)
    spec = rename_spec(p, None, rate=3000, rotate_bytes=200000, keep=1000)
    writer, stats_path = start_writer(env, spec)
    for i in range(kills):
        tj = env.tailjet(binary, args, name="kill%02d" % (i + 1))
        time.sleep(rnd.uniform(0.5, 2.5))
        tj.kill9()
        if writer.poll() is not None:
            fail("the writer stopped early (status %s)" % writer.returncode)
    if not kills:
        time.sleep(6.0)
    stats = finish_writer(env, writer, stats_path)
    n = stats["files"]["a"]["lines"]
    tj = env.tailjet(binary, args, name="final")
    tail, seen = drain(out, tj, {"a": n}, 120.0, "in the last run", fast=False)
    missing, dup_n, extra, maxc, unexpected, first_missing = seen.summary("a", n)
    log("    %d kills: %d lines (%d rotations), missing %d, duplicated lines %d (%d extra copies, "
        "max %d copies), torn %d" % (kills, n, stats["files"]["a"]["rotations"], missing, dup_n,
                                     extra, maxc, len(tail.torn)))
    errors = []
    if missing:
        errors.append("%d of %d lines never shipped, first %s" %
                      (missing, n, seen.missing_list("a", n)))
    if unexpected:
        errors.append("%d numbers never written were shipped" % unexpected)
    if tail.torn:
        errors.append("%d output lines are not whole JSON records, first %r" %
                      (len(tail.torn), tail.torn[0]))
    if seen.bad:
        errors.append("%d records are not writer lines, first %r" % (len(seen.bad), seen.bad[0]))
    if errors:
        fail("%d x kill -9 (seed %d):\n  %s" % (kills, seed, "\n  ".join(errors)))
    return n, extra


def case_kill9(binary, env):
    seed = int(os.environ.get("TJ_IDENTITY_SEED", str(int(time.time()))))
    log("    seed %d (TJ_IDENTITY_SEED)" % seed)
    n, extra = kill_run(binary, env, KILLS, seed)
    # Bound: a kill loses at most what was read but not in the last checkpoint: what was
    # acknowledged since the last save (1 s of the writer's 3000 lines/s, plus the read-ahead
    # of lines read but not acknowledged, 8 MiB = 41,943 lines of 200 B).
    bound = KILLS * (3000 * CKPT_MS // 1000 * 2 + (8 << 20) // 200)
    FIGURES.append(("kill -9 x %d, %d ms checkpoints, 3000 lines/s" % (KILLS, CKPT_MS),
                    "%d lines, %d duplicates (%.0f per kill; bound %d per kill)" %
                    (n, extra, extra / max(KILLS, 1), bound // max(KILLS, 1))))
    check(extra <= bound, "%d duplicates after %d kills: over the bound %d" % (extra, KILLS, bound))


def case_no_kill(binary, env):
    n, extra = kill_run(binary, env, 0, 0)
    FIGURES.append(("the same without a kill", "%d lines, %d duplicates" % (n, extra)))
    check(extra == 0, "%d duplicates without any kill" % extra)


CASES = [
    case_torn_output,
    (case_glob_rename, 120),
    (case_glob_logrotate, 120),
    (case_glob_copytruncate, 120),
    (case_glob_restart, 120),
    (case_kill9, 300),
    (case_no_kill, 120),
]


def main(binary):
    run_cases(CASES, "identity-", lambda case, env: case(binary, env), figures=FIGURES,
              width=16)


if __name__ == "__main__":
    main_wrapper(main)
