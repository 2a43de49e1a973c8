#!/usr/bin/env python3
"""test_follow.py: each rule of `tailjet run` for following files, one small case each.

Usage: test_follow.py PATH/TO/tailjet. Every case runs in its own temp dir with its own state
dir; a failing case is reported and the others still run. Exits 1 when any case failed.
TJ_CASES=name,name runs only those cases.

Cases: files present at the first start are read from their beginning; --start-at end skips
history but ships appended lines (and files created later); a file created after the start is
followed; a partial line waits for its end; empty lines, CRLF and a line over
--max-line-bytes (one record tagged _truncated, the next line intact); truncation to a
shorter size; a reused inode with other content after a restart; a restart resumes from the
checkpoint; a rename-and-create while tailjet is down; a line written to the renamed file
before the application reopens; Docker's 16 KiB partial entries joined, also across a
rotation; a json-file time that is not RFC 3339 (read time, text in docker.time, tagged
_timestampparsefailure); --exit-on-eof with --docker-root reads what the first scan found;
a Swarm task removed while it waits for its service's labels (--label-source) ships every line;
tailjet's own container is left out (unless --include-self);
garbage checkpoints (a warning, no crash, nothing lost); SIGTERM/SIGINT (exit 0,
quickly, and after a SIGTERM while shipping every line exactly once); bad flags (exit 2).
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tj_engine_util import (append, check, fail, log, main_wrapper, messages,  # noqa: E402
                            read_records, rec_path, sub, tj_args, wait_until, run_cases)

EOF_TIMEOUT = 15.0      # an --exit-on-eof run over a few small files
APPEAR_TIMEOUT = 10.0   # a line appended while following must be shipped within this
STOP_BOUND = 3.0        # SIGTERM on an idle tailjet: exit 0 within this many seconds


def run_eof(env, binary, watches, out, state, *extra, name="tj"):
    """One `tailjet run --exit-on-eof` to its end; returns the Tailjet (exit 0 checked)."""
    t = env.tailjet(binary, tj_args(watches, out, state, "--exit-on-eof", *extra), name=name)
    t.run_to_exit(EOF_TIMEOUT)
    return t


def follow(env, binary, watches, out, state, *extra, name="tj"):
    return env.tailjet(binary, tj_args(watches, out, state, *extra), name=name)


def wait_records(out, n, t, timeout=APPEAR_TIMEOUT, what=None):
    return wait_until(lambda: len(read_records(out)) >= n or None, timeout,
                      what or "%d records in %s" % (n, out), procs=[t])


def expect_msgs(got, want, what):
    if got == want:
        return
    if len(got) + len(want) <= 12:
        fail("%s: messages %s, expected %s" % (what, short(got), short(want)))
    i = next((i for i, (g, w) in enumerate(zip(got, want)) if g != w), min(len(got), len(want)))
    fail("%s: %d records, expected %d; first difference at #%d: got %s, expected %s" %
         (what, len(got), len(want), i, short(got[i:i + 2], 120), short(want[i:i + 2], 120)))


def short(v, n=200):
    s = repr(v)
    return s if len(s) <= n else s[:n] + "...(%d chars)" % len(s)


def setup(env):
    d = env.mkdir("logs")
    return d, env.path("out.ndjson"), env.path("state")


# ------------------------------------------------------------------------------------------


def case_existing_from_beginning(binary, env):
    d, out, state = setup(env)
    p = os.path.join(d, "app.log")
    append(p, "one\ntwo\nthree\n")
    run_eof(env, binary, [d + "/*.log"], out, state)
    recs = read_records(out)
    expect_msgs(messages(recs), ["one", "two", "three"], "first start")
    offs = [r.get("log", {}).get("offset") for r in recs]
    check(offs == [0, 4, 8], "log.offset of the records: %s, expected [0, 4, 8]" % offs)
    paths = {rec_path(r) for r in recs}
    check(paths == {p}, "log.file.path %s, expected %s" % (paths, p))


def case_start_at_end(binary, env):
    d, out, state = setup(env)
    p = os.path.join(d, "app.log")
    append(p, "old-1\nold-2\n")
    t = follow(env, binary, [d + "/*.log"], out, state, "--start-at", "end")
    t.wait_open(p)
    time.sleep(0.5)
    append(p, "new-1\nnew-2\n")
    # a file created after the start is new: read from its beginning even with --start-at end
    late = os.path.join(d, "late.log")
    append(late, "late-1\n")
    wait_records(out, 3, t)
    time.sleep(0.3)
    t.stop()
    recs = read_records(out)
    expect_msgs(messages(recs, p), ["new-1", "new-2"], "--start-at end, lines appended later")
    expect_msgs(messages(recs, late), ["late-1"], "--start-at end, a file created after start")
    off = [r["log"].get("offset") for r in recs if rec_path(r) == p][0]
    check(off == 12, "offset of the first new line: %s, expected 12" % off)


def case_created_after_start(binary, env):
    d, out, state = setup(env)
    t = follow(env, binary, [d + "/*.log"], out, state)
    time.sleep(0.7)
    t.check_alive("with nothing to follow yet")
    p = os.path.join(d, "new.log")
    append(p, "n1\nn2\n")
    wait_records(out, 2, t, what="the lines of a file created after start")
    time.sleep(0.3)
    t.stop()
    expect_msgs(messages(read_records(out)), ["n1", "n2"], "file created after start")


def case_partial_line(binary, env):
    d, out, state = setup(env)
    p = os.path.join(d, "app.log")
    append(p, "")
    t = follow(env, binary, [d + "/*.log"], out, state)
    t.wait_open(p)
    append(p, "abc")
    time.sleep(1.5)
    t.check_alive()
    got = messages(read_records(out))
    check(got == [], "a partial line at EOF was shipped before its end: %s" % short(got))
    append(p, "def\n")
    wait_records(out, 1, t, what="the completed line")
    time.sleep(0.5)
    t.stop()
    expect_msgs(messages(read_records(out)), ["abcdef"], "partial line completed later")


def case_empty_lines(binary, env):
    d, out, state = setup(env)
    append(os.path.join(d, "empty.log"), "a\n\nb\n\n")
    run_eof(env, binary, [d + "/*.log"], out, state)
    expect_msgs(messages(read_records(out)), ["a", "", "b", ""], "empty lines")


def case_crlf(binary, env):
    d, out, state = setup(env)
    append(os.path.join(d, "crlf.log"), "x\r\ny\r\n\r\nmid\rdle\r\nz\n")
    run_eof(env, binary, [d + "/*.log"], out, state)
    expect_msgs(messages(read_records(out)), ["x", "y", "", "mid\rdle", "z"], "CRLF lines")


def case_max_line_bytes(binary, env):
    d, out, state = setup(env)
    big = "".join("%04d" % i for i in range(1250))  # 5000 bytes
    append(os.path.join(d, "long.log"), big + "\nnext\n")
    run_eof(env, binary, [d + "/*.log"], out, state, "--max-line-bytes", "1000")
    lr = read_records(out)
    check(len(lr) == 2, "a 5000-byte line with --max-line-bytes 1000 gave %d records (messages "
          "%s), expected 2: the cut line and the next one" %
          (len(lr), short([r.get("message", "")[:30] for r in lr])))
    m0 = lr[0].get("message", "")
    check(0 < len(m0.encode()) <= 1000 and big.startswith(m0),
          "the long line's record: message of %d bytes (%s), expected a prefix of the line of"
          " at most 1000 bytes" % (len(m0.encode()), short(m0, 60)))
    check("_truncated" in (lr[0].get("tags") or []),
          "the long line's record has tags %s, expected _truncated" % lr[0].get("tags"))
    check(lr[1].get("message") == "next" and "_truncated" not in (lr[1].get("tags") or []),
          "the line after the long one: %s, expected message 'next' untagged" %
          short({"message": lr[1].get("message"), "tags": lr[1].get("tags")}))
    off = lr[1].get("log", {}).get("offset")
    check(off == 5001, "offset of the line after the long one: %s, expected 5001" % off)


def case_truncate(binary, env):
    d, out, state = setup(env)
    p = os.path.join(d, "app.log")
    before = ["before-%03d %s" % (i, "b" * 40) for i in range(50)]
    append(p, "".join(s + "\n" for s in before))
    t = follow(env, binary, [d + "/*.log"], out, state)
    wait_records(out, 50, t)
    os.truncate(p, 0)
    after = ["after-1", "after-2"]  # far shorter than what the file held
    append(p, "after-1\nafter-2\n")
    wait_until(lambda: "after-2" in messages(read_records(out)), APPEAR_TIMEOUT,
               "the lines written after a truncation", procs=[t])
    time.sleep(0.5)
    append(p, "after-3\n")
    wait_until(lambda: "after-3" in messages(read_records(out)), APPEAR_TIMEOUT,
               "a line appended after that", procs=[t])
    time.sleep(0.3)
    t.stop()
    expect_msgs(messages(read_records(out)), before + after + ["after-3"],
                "truncation to a shorter size, then new lines")


def case_inode_reuse(binary, env):
    """Deleted while tailjet is down, a new file (same inode if the filesystem reuses it,
    different first bytes, longer than the old checkpoint) must be read from its start."""
    d, out, state = setup(env)
    p = os.path.join(d, "app.log")
    old = ["old-%02d %s" % (i, "o" * 60) for i in range(20)]
    append(p, "".join(s + "\n" for s in old))
    run_eof(env, binary, [d + "/*.log"], out, state, name="tj1")
    n1 = len(read_records(out))
    check(n1 == 20, "first run shipped %d records, expected 20" % n1)
    ino = os.stat(p).st_ino
    new = ["new-%02d %s" % (i, "n" * 60) for i in range(40)]
    os.unlink(p)
    # new files until one gets the freed inode (ext4 usually gives it back within a few)
    same = False
    cands = []
    for i in range(500):
        c = os.path.join(d, ".cand-%d.tmp" % i)
        append(c, "")
        cands.append(c)
        if os.stat(c).st_ino == ino:
            append(c, "".join(s + "\n" for s in new))
            os.rename(c, p)
            cands.pop()
            same = True
            break
    for c in cands:
        os.unlink(c)
    if not same:
        append(p, "".join(s + "\n" for s in new))
    log("    inode %s reused: %s" % (ino, same))
    run_eof(env, binary, [d + "/*.log"], out, state, name="tj2")
    got = messages(read_records(out))[n1:]
    expect_msgs(got, new, "a new file at the same path%s after a restart" %
                (" with the same inode" if same else ""))


def case_restart_resumes(binary, env):
    d, out, state = setup(env)
    p = os.path.join(d, "app.log")
    append(p, "r1\nr2\nr3\n")
    run_eof(env, binary, [d + "/*.log"], out, state, name="tj1")
    check(os.path.exists(os.path.join(state, "checkpoints")),
          "no %s/checkpoints after an --exit-on-eof run" % state)
    expect_msgs(messages(read_records(out)), ["r1", "r2", "r3"], "first run")
    append(p, "r4\nr5\n")
    run_eof(env, binary, [d + "/*.log"], out, state, name="tj2")
    expect_msgs(messages(read_records(out))[3:], ["r4", "r5"],
                "second run (only the lines appended in between)")
    run_eof(env, binary, [d + "/*.log"], out, state, name="tj3")
    expect_msgs(messages(read_records(out))[5:], [], "third run with nothing new")


def case_rotated_while_down(binary, env):
    d, out, state = setup(env)
    p = os.path.join(d, "app.log")
    append(p, "".join("a%d\n" % i for i in range(1, 6)))
    run_eof(env, binary, [p], out, state, name="tj1")
    expect_msgs(messages(read_records(out)), ["a1", "a2", "a3", "a4", "a5"], "first run")
    append(p, "a6\na7\na8\n")
    os.rename(p, p + ".1")
    append(p, "b1\nb2\nb3\n")
    run_eof(env, binary, [p], out, state, name="tj2")
    recs = read_records(out)
    got = messages(recs)
    want = ["a%d" % i for i in range(1, 9)] + ["b1", "b2", "b3"]
    if sorted(got) != sorted(want):
        missing = sorted(set(want) - set(got))
        dups = sorted({m for m in got if got.count(m) > 1})
        fail("rotated while down: missing %s, twice %s (all: %s)" % (missing, dups, got))
    check(got[5:8] == ["a6", "a7", "a8"],
          "rotated while down: the rotated file was not finished first: %s" % got[5:])
    bad = [(r["message"], rec_path(r)) for r in recs[5:8] if rec_path(r) != p]
    check(not bad, "records of the rotated generation must carry the watched path %s: %s" %
          (p, bad))


def case_old_file_written_after_rename(binary, env):
    """logrotate `create`: the application writes to its old file until it reopens (after a
    postrotate signal, say): those lines are read from the renamed file."""
    d, out, state = setup(env)
    p = os.path.join(d, "app.log")
    app = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    env.fds.append(app)
    os.write(app, b"w1\n")
    t = follow(env, binary, [p], out, state)
    wait_records(out, 1, t)
    os.rename(p, p + ".1")
    append(p, "")
    time.sleep(0.5)  # tailjet follows the new file by now
    os.write(app, b"w2 written to the old file before the application reopened\n")
    time.sleep(0.2)
    append(p, "w3\n")
    wait_until(lambda: "w3" in messages(read_records(out)), APPEAR_TIMEOUT, "w3", procs=[t])
    time.sleep(1.0)
    t.stop()
    got = [m.split(" ")[0] for m in messages(read_records(out))]
    check(sorted(got) == ["w1", "w2", "w3"],
          "a line written to the renamed file 0.5 s after the rotation: shipped %s, expected "
          "w1, w2, w3 once each" % got)


def docker_entry(text, t):
    import json
    return json.dumps({"log": text, "stream": "stdout", "time": t}, ensure_ascii=False) + "\n"


BIG = "".join("%08d" % i for i in range(5120))  # 40960 chars, order visible


def big_pieces():
    ts = "2026-11-25T17:56:16.%09dZ"
    return [docker_entry(BIG[0:16384], ts % 1), docker_entry(BIG[16384:32768], ts % 2),
            docker_entry(BIG[32768:] + "\n", ts % 3), docker_entry("after\n", ts % 4)]


def check_big(recs, what):
    got = [r.get("message", "") for r in recs]
    if len(got) != 2 or got[0] != BIG or got[1] != "after":
        fail("%s: %d records with messages of %s chars (first %s), expected 2: the 40960-char "
             "line joined, then 'after'" %
             (what, len(got), [len(m) for m in got], short([m[:24] for m in got])))
    check("_truncated" not in (recs[0].get("tags") or []),
          "%s: the joined line is tagged %s" % (what, recs[0].get("tags")))


def case_jsonfile_partials(binary, env):
    d, out, state = setup(env)
    p = os.path.join(d, "c0ffee-json.log")
    append(p, "".join(big_pieces()))
    run_eof(env, binary, [d + "/*-json.log"], out, state)
    check_big(read_records(out), "json-file 16 KiB partial entries")


def partials_across_rotation(binary, env, gap, what):
    """Two 16 KiB pieces of a line, then a rotation, then `gap` seconds, then the last pieces
    in the new file: one joined record, then 'after'."""
    d, out, state = setup(env)
    p = os.path.join(d, "c0ffee-json.log")
    pieces = big_pieces()
    append(p, pieces[0] + pieces[1])
    # Docker writes the pieces of a line within microseconds; the test waits 1 s so that
    # tailjet surely holds the first two when the rotation comes, so the timeout that ships
    # an open event of a quiet file (--multiline-timeout, 1s by default) is raised.
    t = follow(env, binary, [d + "/*-json.log"], out, state, "--multiline-timeout", "10s")
    t.wait_open(p)
    time.sleep(1.0)
    os.rename(p, p + ".1")
    time.sleep(gap)
    append(p, pieces[2] + pieces[3])
    wait_records(out, 2, t, what="the joined record and 'after' after a rotation")
    time.sleep(0.5)
    t.stop()
    check_big(read_records(out), what)


def case_jsonfile_partials_rotated(binary, env):
    partials_across_rotation(binary, env, 0,
                             "json-file partials with a rotation before the last piece")


def case_jsonfile_partials_late_file(binary, env):
    """The next file appears 1.5 s after the rename (longer than --poll-interval: the reader
    surely finds no file at the path): the pieces wait for it (--rotate-wait, 5 s)."""
    partials_across_rotation(binary, env, 1.5,
                             "json-file partials with the next file created 1.5 s late")


CKPT_WARN = re.compile(r"^\S+ tailjet\[\d+\] (warn|error): .*checkpoint", re.M | re.I)


def case_jsonfile_bad_time(binary, env):
    """json-file lines whose `time` is not RFC 3339: @timestamp is the read time (which every
    index accepts), the text Docker wrote is kept in docker.time, tagged _timestampparsefailure;
    also for a line joined from 16 KiB pieces. A good time is kept as it is."""
    import datetime
    d, out, state = setup(env)
    p = os.path.join(d, "c-json.log")
    good = "2026-11-25T17:56:16.123456789Z"
    with open(p, "w") as f:
        f.write(docker_entry("one\n", "bad"))
        f.write(docker_entry("two\n", good))
        f.write(docker_entry("three\n", "2026-13-45T99:00:00Z"))
        f.write(docker_entry("x" * 16384, "not a time either"))
        f.write(docker_entry("y\n", good))
        f.write(docker_entry("four\n", "2026-11-25T17:56:16+01:00"))
    before = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(seconds=5)
    run_eof(env, binary, [p], out, state)
    recs = read_records(out)
    got = [(r.get("message", "")[:5], r.get("@timestamp"), (r.get("docker") or {}).get("time"),
            r.get("tags")) for r in recs]
    check(len(recs) == 5, "%d records, expected 5: %s" % (len(recs), short(got)))
    bad = {0: "bad", 2: "2026-13-45T99:00:00Z", 3: "not a time either"}
    for i, r in enumerate(recs):
        ts = r.get("@timestamp")
        if i in bad:
            check(r.get("tags") == ["_timestampparsefailure"] and
                  (r.get("docker") or {}).get("time") == bad[i],
                  "record %d (time %r): tags %s, docker.time %r; expected the tag "
                  "_timestampparsefailure and the text kept in docker.time" %
                  (i, bad[i], r.get("tags"), (r.get("docker") or {}).get("time")))
            try:
                t = datetime.datetime.fromisoformat(ts[:26] + "+00:00")
            except (TypeError, ValueError):
                fail("record %d: @timestamp %r is not an RFC 3339 time" % (i, ts))
            check(t >= before, "record %d: @timestamp %s is not the read time" % (i, ts))
        else:
            check("tags" not in r and "docker" not in r,
                  "record %d has a good time but tags %s, docker %s" %
                  (i, r.get("tags"), r.get("docker")))
    check(recs[1]["@timestamp"] == good and recs[4]["@timestamp"] == "2026-11-25T17:56:16+01:00",
          "good times changed: %s" % short(got))
    check(recs[3]["message"] == "x" * 16384 + "y", "the 16 KiB pieces were not joined")


def case_docker_root_exit_on_eof(binary, env):
    """--exit-on-eof with --docker-root exits only once the containers of discovery's first
    scan are followed and read to their end: every line of each, in five runs."""
    from tj_fake_docker import fake_root
    root, ctrs = fake_root(env, *(("c%d" % i, {}) for i in range(20)))
    for c in ctrs:
        c.write(50)
    for run in range(5):
        out, state = env.path("out%d.ndjson" % run), env.path("state%d" % run)
        t = env.tailjet(binary, ["--docker-root", root, "--output", "file:" + out,
                                 "--state-dir", state, "--exit-on-eof", "--metrics-addr", "off"],
                        name="run%d" % run)
        t.run_to_exit(EOF_TIMEOUT)
        n = len(read_records(out))
        check(n == 20 * 50, "run %d: %d records at exit, expected every line of the 20 "
              "containers found (1000)" % (run, n))


def case_task_removed_while_waiting(binary, env):
    """On a worker (--label-source), a new Swarm task whose service is not in the label table
    yet waits --label-wait; removed 0.2 s after it started (its directory and log deleted, as
    `docker rm` does), every one of its lines is still shipped: its file is opened at once and
    held while it waits. Task A's service labels come after the removal: its lines are parsed
    with their pattern; task B's never come: its lines ship tagged _labelsmissing when the wait
    ends. Each line once."""
    import shutil
    from tj_fake_docker import Container, LabelSource
    root = env.mkdir("docker")
    src = LabelSource([{"id": "other", "name": "other", "labels": {}}])
    try:
        out, state = env.path("out.ndjson"), env.path("state")
        t = env.tailjet(binary, ["--docker-root", root, "--output", "file:" + out,
                                 "--state-dir", state, "--metrics-addr", "off",
                                 "--label-source", src.url, "--label-wait", "6s",
                                 "--poll-interval", "100ms"])
        wait_until(lambda: src.asked >= 1, 10.0, "tailjet to read the label table", procs=[t])
        tasks = []
        for name, svc in (("a", "svc-a"), ("b", "svc-b")):
            c = Container(root, "web-%s.1.task%s" % (name, name), {
                "com.docker.swarm.service.id": svc, "com.docker.swarm.service.name": "web-" + name,
                "com.docker.swarm.task.id": "task" + name})
            c.write(200)
            tasks.append((c, time.monotonic()))
        for c, started in tasks:
            # opened at once, while it waits for its labels (well before --label-wait ends)
            t.wait_open(c.log, 4.0)
            c.write(100)  # the task goes on writing until it is removed
            time.sleep(max(0.0, started + 0.2 - time.monotonic()))
            shutil.rmtree(os.path.dirname(c.log))
            log("task %s removed %.2f s after it started" % (c.name, time.monotonic() - started))
        src.set([{"id": "other", "name": "other", "labels": {}},
                 {"id": "svc-a", "name": "web-a",
                  "labels": {"logPattern": "seq=%{INT:n:int} c=%{NOTSPACE:who} %{GREEDYDATA}"}}])
        want = {c.name: c for c, _ in tasks}

        def shipped():
            recs = read_records(out, strict=False)
            return sum(1 for r in recs if sub(r, "container", "name") in want) >= 600

        wait_until(shipped, 20.0, "the 600 lines of the two removed tasks", procs=[t])
        time.sleep(0.5)  # nothing more comes
        t.stop()
        recs = read_records(out)
        for c in want.values():
            mine = [r for r in recs if sub(r, "container", "name") == c.name]
            check(sorted(r["message"] for r in mine) == sorted(m for m, _ in c.lines),
                  "task %s: %d records, expected its %d lines once each" %
                  (c.name, len(mine), len(c.lines)))
            for r in mine:
                if c.name.startswith("web-a"):
                    check(isinstance(r.get("n"), int) and "tags" not in r,
                          "task %s (labels came after its removal): not parsed with its "
                          "service's pattern: %s" % (c.name, json.dumps(r)[:300]))
                else:
                    check("_labelsmissing" in (r.get("tags") or []),
                          "task %s (labels never came): not tagged _labelsmissing: %s" %
                          (c.name, json.dumps(r)[:300]))
    finally:
        src.close()


def case_own_container_left_out(binary, env):
    """tailjet in a container leaves its own container's log out (its records would be shipped
    again and again with a stdout output), unless --include-self: here tailjet runs in a UTS
    namespace whose host name is its container's short id, as Docker names a container's host
    by default (the cgroup and mountinfo ways are unit-tested in test_self). Another container's
    lines are shipped either way."""
    from tj_fake_docker import fake_root
    root, ctrs = fake_root(env, ("tailjet", {}), ("web", {}))
    own, web = ctrs
    for c in ctrs:
        c.write(20)
    wrapper = env.path("in-container.sh")
    with open(wrapper, "w") as f:
        f.write("#!/bin/sh\nexec unshare --uts -- sh -c 'hostname \"$1\" && shift && exec \"$@\"' "
                "sh %s %s \"$@\"\n" % (own.id[:12], binary))
    os.chmod(wrapper, 0o755)
    for include in (False, True):
        out, state = env.path("out-%s.ndjson" % include), env.path("state-%s" % include)
        t = env.tailjet(wrapper, ["--docker-root", root, "--output", "file:" + out,
                                  "--state-dir", state, "--exit-on-eof", "--metrics-addr", "off"] +
                        (["--include-self"] if include else []), name="include-%s" % include)
        t.run_to_exit(EOF_TIMEOUT)
        names = [sub(r, "container", "name") for r in read_records(out)]
        n_own, n_web = names.count(own.name), names.count(web.name)
        check(n_web == 20, "include-self %s: %d of the other container's 20 lines shipped" %
              (include, n_web))
        if include:
            check(n_own == 20, "--include-self: %d of its own container's 20 lines shipped" % n_own)
        else:
            check(n_own == 0, "its own container's lines were shipped (%d records)" % n_own)
            check("is the one tailjet runs in" in t.stderr_text(),
                  "no word on stderr that its own container is left out:\n%s" %
                  t.stderr_text()[-1500:])


def case_corrupt_state(binary, env):
    d, out, state = setup(env)
    p = os.path.join(d, "app.log")
    append(p, "c1\nc2\nc3\n")
    run_eof(env, binary, [d + "/*.log"], out, state, name="tj1")
    ck = os.path.join(state, "checkpoints")
    check(os.path.exists(ck), "no %s after an --exit-on-eof run" % ck)
    garbage = b"\x00\xffgarbage{not a checkpoint}\n" * 40 + os.urandom(300)
    # 1: the current copy is garbage (the previous copy, if any, may be used)
    append(p, "c4\nc5\n")
    with open(ck, "wb") as f:
        f.write(garbage)
    t = run_eof(env, binary, [d + "/*.log"], out, state, name="tj2")
    check(CKPT_WARN.search(t.stderr_text()),
          "garbage in %s: no warning about it on stderr:\n%s" % (ck, t.stderr_text()[-1500:]))
    got = messages(read_records(out))
    lost = [m for m in ["c1", "c2", "c3", "c4", "c5"] if m not in got]
    check(not lost, "garbage in the checkpoints file: lines never shipped: %s" % lost)
    # 2: both copies are garbage
    append(p, "c6\n")
    for f_ in (ck, ck + ".prev"):
        with open(f_, "wb") as f:
            f.write(garbage)
    t = run_eof(env, binary, [d + "/*.log"], out, state, name="tj3")
    check(CKPT_WARN.search(t.stderr_text()),
          "garbage in checkpoints and checkpoints.prev: no warning on stderr:\n%s" %
          t.stderr_text()[-1500:])
    got = messages(read_records(out))
    lost = [m for m in ["c%d" % i for i in range(1, 7)] if m not in got]
    check(not lost, "garbage in both checkpoint copies: lines never shipped: %s" % lost)


def case_sigterm(binary, env):
    d, out, state = setup(env)
    p = os.path.join(d, "app.log")
    append(p, "s0\n")
    t = follow(env, binary, [d + "/*.log"], out, state, name="idle")
    wait_records(out, 1, t)
    time.sleep(0.3)
    secs = t.stop(bound=STOP_BOUND)
    log("    idle SIGTERM: exit 0 in %.2f s" % secs)
    check(os.path.exists(os.path.join(state, "checkpoints")), "no checkpoints after SIGTERM")
    # SIGTERM while lines are being written and shipped: whatever was shipped is checkpointed,
    # the rest follows once after a restart
    n, per = 300000, 10000
    t = follow(env, binary, [d + "/*.log"], out, state, name="busy")
    t.wait_open(p)

    def write_all():
        for k in range(1, n + 1, per):
            append(p, "".join("s%d %s\n" % (i, "y" * 100) for i in range(k, k + per)))
            time.sleep(0.01)

    th = threading.Thread(target=write_all)
    th.start()
    try:
        time.sleep(0.15)
        secs = t.stop(bound=10.0)
    finally:
        th.join()
    with open(out, "rb") as f:
        shipped = f.read().count(b"\n") - 1
    log("    busy SIGTERM: exit 0 in %.2f s, %d of %d records shipped before" %
        (secs, shipped, n))
    run_eof(env, binary, [d + "/*.log"], out, state, name="after")
    got = [m.split(" ")[0] for m in messages(read_records(out, fast=True))]
    want = ["s%d" % i for i in range(0, n + 1)]
    if got != want:
        dups = len(got) - len(set(got))
        missing = len(set(want) - set(got))
        fail("SIGTERM while shipping, then a restart: %d records, %d duplicated, %d missing,"
             " expected each of %d lines once, in order" % (len(got), dups, missing, len(want)))
    # SIGINT too
    t = follow(env, binary, [d + "/*.log"], out, state, name="sigint")
    t.wait_open(p)
    time.sleep(0.3)
    t0 = time.monotonic()
    os.kill(t.pid, signal.SIGINT)
    rc = t.wait(STOP_BOUND)
    check(rc == 0, "SIGINT: exit status %d, expected 0" % rc)
    log("    SIGINT: exit 0 in %.2f s" % (time.monotonic() - t0))


def case_bad_flags(binary, env):
    for argv, names in ((["--no-such-flag"], ["--no-such-flag"]),
                        (["--watch", "/tmp/x.log", "--start-at", "middle"],
                         ["--start-at", "middle"])):
        r = subprocess.run([binary, "run"] + argv, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
        err = r.stderr.decode(errors="replace")
        check(r.returncode == 2, "`tailjet run %s`: exit status %d, expected 2 (stderr: %s)" %
              (" ".join(argv), r.returncode, err.strip()[:300]))
        check(any(n in err for n in names), "`tailjet run %s`: the message does not name %s: %r"
              % (" ".join(argv), " or ".join(names), err.strip()[:300]))


CASES = [
    case_existing_from_beginning,
    case_start_at_end,
    case_created_after_start,
    case_partial_line,
    case_empty_lines,
    case_crlf,
    case_max_line_bytes,
    case_truncate,
    case_inode_reuse,
    case_restart_resumes,
    case_rotated_while_down,
    case_old_file_written_after_rename,
    case_jsonfile_partials,
    case_jsonfile_partials_rotated,
    case_jsonfile_partials_late_file,
    case_jsonfile_bad_time,
    case_docker_root_exit_on_eof,
    case_task_removed_while_waiting,
    case_own_container_left_out,
    case_corrupt_state,
    case_sigterm,
    case_bad_flags,
]


def main(binary):
    run_cases(CASES, "follow-", lambda case, env: case(binary, env), width=28)

if __name__ == "__main__":
    main_wrapper(main)
