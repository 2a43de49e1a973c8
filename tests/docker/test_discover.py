#!/usr/bin/env python3
"""test_discover.py: `tailjet run` discovering containers and Swarm services of a real engine.

Usage: test_discover.py PATH/TO/tailjet. One private dockerd (tj_docker.Dockerd) serves every
case; each case runs its own tailjet (own temp dir, output file, state dir), removes what it
created, and has a time bound: a hang fails the case. A failing case is reported and the others
still run; the exit status is 1 when any case failed. The daemon that cannot start is a FAIL,
never a skip. TJ_CASES=name,name runs some cases only; TJ_KEEP_TMP=1 keeps the temp dirs.
"""

import calendar
import json
import os
import re
import signal
import socket
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "engine"))
from tj_engine_util import (check, fail, log, main_wrapper, OutputTail, run_cases,  # noqa: E402
                            tail_text, TestFailure, wait_until)
from tj_docker import IMAGE, Dockerd, DockerError  # noqa: E402

PAT = "%{WORD:word} %{INT:n:int}"
PAT2 = "%{WORD:w2} %{INT:m:int}"
APPEAR = 30.0        # a line written by a container must be shipped within this
STOP_BOUND = 10.0    # SIGTERM at the end of each case: exit status 0 within this
SETTLE = 1.5         # after the expected records arrived: time for duplicates to show up
# A label change takes effect when tailjet has heard of it: the lines written in between (a few
# ms after the engine's update event) are parsed with the old pattern. Lines written later than
# this after the event must all carry the new pattern.
UPDATE_GRACE_NS = 250 * 10**6
META = {"@timestamp", "message", "stream", "container", "service", "host", "log", "tags"}
HEX64 = re.compile(r"[0-9a-f]{64}")

FIGURES = []         # (what, text) printed at the end


def figure(what, text):
    FIGURES.append((what, text))
    log("    figure: %s: %s" % (what, text))


_names = [0]


def uniq(tag):
    _names[0] += 1
    return "tj-%s-%d" % (tag, _names[0])


# ------------------------------------------------------------------------------------------
# Output


def cid_of(r):
    c = r.get("container")
    return c.get("id") if isinstance(c, dict) else None


def offset_of(r):
    try:
        return r["log"]["offset"]
    except (KeyError, TypeError):
        return None


def path_of(r):
    try:
        return r["log"]["file"]["path"]
    except (KeyError, TypeError):
        return None


def short(v, n=300):
    s = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
    return s if len(s) <= n else s[:n] + "...(%d chars)" % len(s)


class Out:
    """Every record of tailjet's NDJSON output so far (read incrementally)."""

    def __init__(self, path):
        self.path = path
        self.tail = OutputTail(path)
        self.records = []

    def poll(self):
        new = self.tail.poll_all()
        if self.tail.torn:
            fail("output %s has lines that are not JSON records, first: %r" %
                 (self.path, self.tail.torn[0]))
        self.records += new
        return new

    def of(self, cid):
        self.poll()
        return [r for r in self.records if cid_of(r) == cid]


def start_tj(env, binary, d, *extra, host=True):
    out = env.path("out.ndjson")
    args = ["--docker-host", d.host] if host else []
    args += ["--output", "file:" + out, "--state-dir", env.path("state")] + list(extra)
    t = env.tailjet(binary, args)
    return t, Out(out)


def connected_lines(t):
    return [ln for ln in t.stderr_text().splitlines() if "docker: connected" in ln]


def wait_connected(t, timeout=15.0, required=True):
    """Waits for tailjet's `info: docker: connected to ...` line. required=False: after the
    timeout, carries on (the case is about something else) and says so."""
    try:
        wait_until(lambda: connected_lines(t), timeout,
                   "tailjet's `docker: connected to` line on stderr", procs=[t])
    except TestFailure:
        if required:
            fail("no `info: docker: connected to unix://... (API ..., engine ..., swarm ...)` "
                 "line on stderr within %.0f s; stderr:\n%s" % (timeout, tail_text(t.stderr_text())))
        log("    note: no `docker: connected` line on stderr after %.0f s; going on" % timeout)
        return None
    return connected_lines(t)[0]


def wait_n(out, cid, n, t, timeout=APPEAR, what=None):
    """Waits until the output holds at least n records of container cid; returns them."""
    try:
        return wait_until(lambda: (lambda rs: rs if len(rs) >= n else None)(out.of(cid)),
                          timeout, what or "%d records of container %s" % (n, cid[:12]),
                          procs=[t])
    except TestFailure as e:
        got = out.of(cid)
        fail("%s; got %d: %s; all records: %d" %
             (e, len(got), short([r.get("message") for r in got]), len(out.records)))


def settle_exact(out, cid, n, t, what):
    """After n records arrived: waits SETTLE and requires exactly n (no duplicates)."""
    time.sleep(SETTLE)
    t.check_alive()
    rs = out.of(cid)
    if len(rs) != n:
        fail("%s: %d records of container %s, expected exactly %d: %s" %
             (what, len(rs), cid[:12], n, short([(offset_of(r), r.get("message")) for r in rs],
                                                 600)))
    return rs


def extracted(r):
    return {k: v for k, v in r.items() if k not in META}


def check_record(r, what, cid, name, entry, fields, tags=None, service=None, image=IMAGE):
    """Every field of one record: metadata from the json-file entry and `docker inspect`,
    the extracted fields exactly (types included), the tags."""
    msg = entry["log"][:-1] if entry["log"].endswith("\n") else entry["log"]
    errs = []

    def eq(label, got, want):
        if json.dumps(got, sort_keys=True) != json.dumps(want, sort_keys=True):
            errs.append("%s is %s, expected %s" % (label, short(got, 200), short(want, 200)))

    eq("message", r.get("message"), msg)
    c = r.get("container") if isinstance(r.get("container"), dict) else {}
    eq("container.id", c.get("id"), cid)
    eq("container.name", c.get("name"), name)
    eq("container.image.name", (c.get("image") or {}).get("name"), image)
    eq("log.file.path", path_of(r), entry["path"])
    eq("log.offset", offset_of(r), entry["offset"])
    eq("stream", r.get("stream"), entry["stream"])
    eq("@timestamp", r.get("@timestamp"), entry["time"])
    eq("host.name", (r.get("host") or {}).get("name"), socket.gethostname())
    eq("extracted fields", extracted(r), fields)
    eq("tags", r.get("tags"), tags)
    if service is None:
        if "service" in r:
            errs.append("has service %s, expected none (not a Swarm task)" % short(r["service"]))
    else:
        eq("service", r.get("service"), service)
    if errs:
        fail("%s: record %s: %s" % (what, short(r, 700), "; ".join(errs)))


# ------------------------------------------------------------------------------------------
# Cases


def case_labeled_container(binary, env, d):
    """Started before the containers: a labeled one is parsed, an unlabeled one is not."""
    t, out = start_tj(env, binary, d)
    line = wait_connected(t)
    check(re.search(r"docker: connected to unix://%s \(API 1\.41, engine 20\.10\.\S+, swarm "
                    r"(inactive|manager|worker)\)" % re.escape(d.sock), line),
          "the connected line does not read `info: docker: connected to unix://%s (API 1.41, "
          "engine 20.10.x, swarm ...)`: %r" % (d.sock, line))
    n1, n2 = uniq("lab"), uniq("plain")
    c1 = d.run(n1, ["sh", "-c", "for i in 1 2 3; do echo hello $i; done; sleep 600"],
               labels={"logPattern": PAT})
    c2 = d.run(n2, ["sh", "-c", "echo plain one; echo 'plain two 2'; echo oops >&2; sleep 600"])
    check(HEX64.fullmatch(c1) and HEX64.fullmatch(c2), "docker run gave ids %s %s" % (c1, c2))
    wait_n(out, c1, 3, t)
    wait_n(out, c2, 3, t)
    r1 = settle_exact(out, c1, 3, t, "labeled container")
    r2 = settle_exact(out, c2, 3, t, "unlabeled container")
    e1, e2 = d.log_entries(c1), d.log_entries(c2)
    check(len(e1) == 3 and len(e2) == 3, "json-file logs: %d and %d lines" % (len(e1), len(e2)))
    check(e1[0]["path"] == d.log_path(c1), "LogPath")
    for i, r in enumerate(sorted(r1, key=offset_of)):
        check_record(r, "labeled container", c1, n1, e1[i], {"word": "hello", "n": i + 1})
    for i, r in enumerate(sorted(r2, key=offset_of)):
        check_record(r, "unlabeled container", c2, n2, e2[i], {})
    check([r["message"] for r in r1] == ["hello 1", "hello 2", "hello 3"],
          "records of one container out of order: %s" % [r["message"] for r in r1])


def case_existing_containers(binary, env, d):
    """Containers running before tailjet starts are found at start, read from the start."""
    n1, n2 = uniq("old"), uniq("old")
    c1 = d.run(n1, ["sh", "-c", "for i in 1 2 3; do echo hello $i; done; sleep 600"],
               labels={"logPattern": PAT})
    c2 = d.run(n2, ["sh", "-c", "echo a=1; echo b=22; sleep 600"],
               labels={"logPattern": "^%{WORD:k}=%{INT:v:int}$"})
    d.wait_log_lines(c1, 3)
    d.wait_log_lines(c2, 2)
    time.sleep(0.3)
    t, out = start_tj(env, binary, d)
    wait_n(out, c1, 3, t)
    wait_n(out, c2, 2, t)
    r1 = settle_exact(out, c1, 3, t, "container started before tailjet")
    r2 = settle_exact(out, c2, 2, t, "container started before tailjet")
    e1, e2 = d.log_entries(c1), d.log_entries(c2)
    for i, r in enumerate(sorted(r1, key=offset_of)):
        check_record(r, "existing container", c1, n1, e1[i], {"word": "hello", "n": i + 1})
    want = [{"k": "a", "v": 1}, {"k": "b", "v": 22}]
    for i, r in enumerate(sorted(r2, key=offset_of)):
        check_record(r, "existing container", c2, n2, e2[i], want[i])


def case_alternatives_and_multiline(binary, env, d):
    t, out = start_tj(env, binary, d)
    wait_connected(t, required=False)
    na, nb, nm = uniq("alt"), uniq("alt"), uniq("ml")
    # .1 and .2: a line matching both is parsed by .1; one matching only .2 by .2; none: tag.
    ca = d.run(na, ["sh", "-c", "echo both 7; echo only two words; echo '!!!'; sleep 600"],
               labels={"logPattern.1": "^%{WORD:a} %{INT:b:int}$",
                       "logPattern.2": "^%{WORD:c}"})
    # plain logPattern is tried before logPattern.1 ("x5" matches both).
    cb = d.run(nb, ["sh", "-c", "echo x5; echo hello; sleep 600"],
               labels={"logPattern": "^x%{INT:x:int}$", "logPattern.1": "^%{WORD:y}$"})
    cm = d.run(nm, ["sh", "-c", "printf 'Exception in main\\n  at a.b(C.java:1)\\n"
                    "  at d.e(F.java:2)\\nNext line\\n'; sleep 600"],
               labels={"logMultiline": "^[A-Z]", "logPattern": "^%{WORD:first}"})
    wait_n(out, ca, 3, t)
    wait_n(out, cb, 2, t)
    wait_n(out, cm, 2, t, what="2 events of the multiline container (the last one shipped "
           "after --multiline-timeout at the end of the quiet file)")
    ra = sorted(settle_exact(out, ca, 3, t, "logPattern.1/.2"), key=offset_of)
    rb = sorted(settle_exact(out, cb, 2, t, "logPattern + logPattern.1"), key=offset_of)
    rm = sorted(settle_exact(out, cm, 2, t, "logMultiline"), key=offset_of)
    ea, eb, em = d.log_entries(ca), d.log_entries(cb), d.log_entries(cm)
    check_record(ra[0], "logPattern.1 and .2 both match: .1 wins", ca, na, ea[0],
                 {"a": "both", "b": 7})
    check_record(ra[1], "only logPattern.2 matches", ca, na, ea[1], {"c": "only"})
    check_record(ra[2], "no alternative matches", ca, na, ea[2], {}, tags=["_grokparsefailure"])
    check_record(rb[0], "logPattern is tried before logPattern.1", cb, nb, eb[0], {"x": 5})
    check_record(rb[1], "logPattern.1 after logPattern", cb, nb, eb[1], {"y": "hello"})
    check(len(em) == 4, "multiline container wrote %d lines, expected 4" % len(em))
    ev = dict(em[0])
    ev["log"] = "Exception in main\n  at a.b(C.java:1)\n  at d.e(F.java:2)\n"
    check_record(rm[0], "multiline event (first line's offset and time)", cm, nm, ev,
                 {"first": "Exception"})
    check_record(rm[1], "line after the multiline event", cm, nm, em[3], {"first": "Next"})


def stderr_lines_naming(t, names):
    return [ln for ln in t.stderr_text().splitlines() if any(n in ln for n in names)]


def case_invalid_pattern(binary, env, d):
    t, out = start_tj(env, binary, d)
    wait_connected(t, required=False)
    cmd = ["sh", "-c", "echo line 1; echo line 2; sleep 600"]
    specs = [  # (labels, label named in the message, text naming the problem)
        ({"logPattern": "%{NOSUCHPATTERN}"}, "logPattern", ["NOSUCHPATTERN"]),
        ({"logPattern": "(unclosed"}, "logPattern", ["missing closing parenthesis", "offset"]),
        ({"logPattern": PAT, "logMultiline": "^[A-Z"}, "logMultiline",
         ["missing terminating ]", "offset"]),
    ]
    cs = []
    for labels, label, problem in specs:
        name = uniq("bad")
        cs.append((d.run(name, cmd, labels=labels), name, label, problem, labels))
    for cid, name, label, problem, labels in cs:
        rs = wait_n(out, cid, 2, t, what="2 records of container %s (labels %s)" %
                    (name, labels))
        es = d.log_entries(cid)
        for i, r in enumerate(sorted(rs, key=offset_of)):
            check_record(r, "labels %s" % labels, cid, name, es[i], {}, tags=["_patternerror"])
    time.sleep(0.5)
    t.check_alive("after labels that do not compile")
    for cid, name, label, problem, labels in cs:
        lines = stderr_lines_naming(t, [name, cid[:12]])
        good = [ln for ln in lines if label in ln and all(p in ln for p in problem)]
        if not good:
            fail("no stderr line names container %s (or %s), the label %s and the problem %s; "
                 "lines naming the container: %s; stderr:\n%s" %
                 (name, cid[:12], label, problem, lines, tail_text(t.stderr_text())))
        if len(good) > 1:
            log("    note: %d stderr lines about %s's %s" % (len(good), name, label))


def case_too_many_alternatives(binary, env, d):
    """A container with 17 logPattern alternatives: the first 16 are used, and the 17th (the only
    one that would match) is not; stderr says so, naming the container. Never silent."""
    t, out = start_tj(env, binary, d)
    wait_connected(t, required=False)
    labels = {"logPattern": "^never0$"}
    labels.update({"logPattern.%d" % i: "^never%d$" % i for i in range(1, 16)})
    labels["logPattern.16"] = PAT
    name = uniq("alts")
    cid = d.run(name, ["sh", "-c", "echo hello 1; echo hello 2; sleep 600"], labels=labels)
    rs = wait_n(out, cid, 2, t)
    es = d.log_entries(cid)
    for i, r in enumerate(sorted(rs, key=offset_of)):
        check_record(r, "17 alternatives", cid, name, es[i], {}, tags=["_grokparsefailure"])
    lines = [ln for ln in stderr_lines_naming(t, [name, cid[:12]])
             if "more than 16 logPattern alternatives" in ln and "logPattern.16 and later" in ln]
    if not lines:
        fail("no stderr line names container %s and the alternatives left out; stderr:\n%s" %
             (name, tail_text(t.stderr_text())))
    t.check_alive()


def case_label_prefix(binary, env, d):
    t, out = start_tj(env, binary, d, "--label-prefix", "com.df.")
    wait_connected(t, required=False)
    n1, n2 = uniq("pfx"), uniq("nopfx")
    cmd = ["sh", "-c", "for i in 1 2; do echo hello $i; done; sleep 600"]
    c1 = d.run(n1, cmd, labels={"com.df.logPattern": PAT})
    c2 = d.run(n2, cmd, labels={"logPattern": PAT})
    wait_n(out, c1, 2, t)
    wait_n(out, c2, 2, t)
    r1 = sorted(settle_exact(out, c1, 2, t, "com.df.logPattern"), key=offset_of)
    r2 = sorted(settle_exact(out, c2, 2, t, "plain logPattern with a prefix"), key=offset_of)
    e1, e2 = d.log_entries(c1), d.log_entries(c2)
    for i in range(2):
        check_record(r1[i], "--label-prefix com.df. and com.df.logPattern", c1, n1, e1[i],
                     {"word": "hello", "n": i + 1})
        check_record(r2[i], "--label-prefix com.df. ignores a plain logPattern", c2, n2, e2[i],
                     {})


def rfc3339_ns(s):
    """'2026-11-25T20:14:56.742352494Z' -> integer nanoseconds since the epoch."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z", s)
    if not m:
        fail("time %r is not RFC3339 UTC" % s)
    secs = calendar.timegm(time.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S"))
    frac = (m.group(2) or "0")[:9].ljust(9, "0")
    return secs * 10**9 + int(frac)


TICK_RE = re.compile(r"tick (\d+)")


def case_swarm_service(binary, env, d):
    d.swarm_init()
    t, out = start_tj(env, binary, d)
    line = wait_connected(t, required=False)
    if line is not None:
        check("swarm manager" in line, "connected line does not say `swarm manager`: %r" % line)
    t_create = time.monotonic()
    d.docker("service", "create", "--detach", "--name", "web", "--label", "logPattern=" + PAT,
             IMAGE, "sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.2; done")
    svc = json.loads(d.docker("service", "inspect", "web"))[0]
    sid = svc["ID"]
    cid = d.wait_service_container("web")
    held = d.hold_log(cid)
    try:
        ins = d.inspect(cid, "container")
        cname = ins["Name"].lstrip("/")
        check(ins["Config"]["Labels"].get("com.docker.swarm.service.id") == sid,
              "task container's com.docker.swarm.service.id is not the service's id")
        check("logPattern" not in ins["Config"]["Labels"],
              "the engine copied the service label onto the task container: %s" %
              ins["Config"]["Labels"])
        service = {"name": "web", "id": sid}
        wait_n(out, cid, 1, t, what="first record of service web's task")
        figure("service create -> first parsed record", "%.2f s" %
               (time.monotonic() - t_create))
        wait_n(out, cid, 5, t)

        # Live label change: tasks are not restarted, later lines use the new pattern.
        t_wall = time.time()
        t_upd = time.monotonic()
        d.docker("service", "update", "--detach", "--label-add", "logPattern=" + PAT2, "web")
        t_upd_ret = time.monotonic()
        first_new = None
        deadline = t_upd + APPEAR
        while first_new is None:
            for r in out.poll():
                if cid_of(r) == cid and "w2" in r:
                    first_new = time.monotonic()
                    break
            if first_new is None:
                if time.monotonic() > deadline:
                    fail("no record with the new pattern's fields (w2, m) %.0f s after "
                         "`service update --label-add`; last records: %s" %
                         (APPEAR, short([extracted(r) for r in out.of(cid)[-3:]])))
                t.check_alive("after service update")
                time.sleep(0.02)
        figure("service update -> first record with the new pattern", "%.2f s (the update "
               "command itself took %.2f s)" % (first_new - t_upd, t_upd_ret - t_upd))
        evs = [e for e in d.events(t_wall - 1, time.time() + 0.5,
                                   ("type=service", "event=update"))
               if e.get("Actor", {}).get("ID") == sid]
        check(evs, "no service update event for %s in `docker events`" % sid)
        ev_ns = int(evs[0]["timeNano"])
        check(d.wait_service_container("web") == cid,
              "service update --label-add replaced the task (container %s -> %s)" %
              (cid[:12], d.wait_service_container("web")[:12]))
        time.sleep(2)  # a few lines with the new pattern
        check(d.inspect(cid, "container")["State"]["Running"], "task container not running")

        # Removal: the task keeps writing until it is killed; all of it is shipped.
        t_rm = time.monotonic()
        d.docker("service", "rm", "web")
        wait_until(lambda: d.docker_rc("inspect", "--type", "container", cid)[0] != 0, 60,
                   "the task container to be removed after `service rm`", procs=[t])
        gone = time.monotonic() - t_rm
        entries = held.entries()
        check(entries, "held log is empty")
        by_off = {e["offset"]: e for e in entries}
        wait_until(lambda: {offset_of(r) for r in out.of(cid)} >= set(by_off), APPEAR,
                   "every line the task wrote (%d, the last %r) to be shipped after "
                   "`service rm`" % (len(entries), entries[-1]["log"].strip()), procs=[t])
        time.sleep(SETTLE)
        t.check_alive("after service rm")
        rs = out.of(cid)
        offs = [offset_of(r) for r in rs]
        dups = len(offs) - len(set(offs))
        extra = set(offs) - set(by_off)
        check(not dups and not extra, "after service rm: %d duplicated records, %d records at "
              "offsets the file does not have" % (dups, len(extra)))
        log("    task wrote %d lines; container removed %.1f s after `service rm`" %
            (len(entries), gone))
        old_late, new_early, wrong = [], [], []
        n_old = sum(1 for r in rs if "word" in r)
        n_after = sum(1 for e in entries if rfc3339_ns(e["time"]) > ev_ns)
        log("    %d records with the old pattern, %d with the new; %d lines written after the "
            "update event" % (n_old, len(rs) - n_old, n_after))
        for r in sorted(rs, key=offset_of):
            e = by_off[offset_of(r)]
            ns = rfc3339_ns(e["time"])
            n = int(TICK_RE.fullmatch(e["log"].strip()).group(1))
            old = {"word": "tick", "n": n}
            new = {"w2": "tick", "m": n}
            if ns > ev_ns + UPDATE_GRACE_NS:
                want = [new]
            elif ns < ev_ns - 10**9:
                want = [old]
            else:
                want = [old, new]  # from 1 s before the event to the grace after it: either
            got = extracted(r)
            if got not in want:
                (old_late if got == old and ns > ev_ns + UPDATE_GRACE_NS else
                 new_early if got == new else wrong).append((n, (ns - ev_ns) / 1e9, got))
            else:
                try:
                    check_record(r, "service task", cid, cname, e, got, service=service)
                except TestFailure as ex:
                    wrong.append(str(ex)[:400])
        if old_late or new_early or wrong:
            fail("live label change: %d lines written more than %d ms after the update event "
                 "parsed with the old pattern (first: %s), %d lines written >1 s before it with "
                 "the new one (first: %s), %d other wrong records (first: %s)" %
                 (len(old_late), UPDATE_GRACE_NS // 10**6, old_late[:3], len(new_early),
                  new_early[:3], len(wrong),
                  wrong[:2]))
    finally:
        held.close()
    t.check_alive("at the end")


def case_daemon_restart(binary, env, d):
    t, out = start_tj(env, binary, d)
    wait_connected(t, required=False)
    name = uniq("rst")
    cid = d.run(name, ["sh", "-c", "i=0; while true; do i=$((i+1)); echo n=$i; sleep 0.01; "
                       "done"], extra=["--restart", "always"])
    wait_n(out, cid, 50, t)
    down, stop_secs = d.restart()
    log("    dockerd restarted: %.1f s down (%.1f s to stop)" % (down, stop_secs))
    d.wait_state(cid, "running")
    before = len(d.log_entries(cid))
    wait_until(lambda: len(d.log_entries(cid)) >= before + 200, 30,
               "the container to write again after the daemon restart")
    d.docker("stop", "-t", "1", name)  # a fixed truth: the file does not grow any more
    entries = d.log_entries(cid)
    files = d.log_files(cid)
    by_key = {(e["path"], e["offset"]): e for e in entries}
    restarts = sum(1 for e in entries if e["log"] == "n=1\n")
    check(restarts >= 2, "the container did not restart with the daemon (%d runs)" % restarts)

    def shipped():
        return {(path_of(r), offset_of(r)) for r in out.of(cid)}
    try:
        wait_until(lambda: shipped() >= set(by_key), APPEAR,
                   "every line of the container's json-file log (%d lines in %d file(s))" %
                   (len(entries), len(files)), procs=[t])
    except TestFailure as e:
        missing = sorted(set(by_key) - shipped())
        fail("%s: %d missing, first: %s" % (e, len(missing), short(
            [(o, by_key[(p, o)]["log"].strip()) for p, o in missing[:5]])))
    time.sleep(SETTLE)
    t.check_alive("after the daemon restart")
    rs = out.of(cid)
    keys = [(path_of(r), offset_of(r)) for r in rs]
    counts = {}
    for k in keys:
        counts[k] = counts.get(k, 0) + 1
    dups = {k: c for k, c in counts.items() if c > 1}
    extra = set(counts) - set(by_key)
    if dups or extra:
        fail("daemon restart: %d lines shipped more than once (first: %s), %d records at "
             "offsets the log does not have" % (len(dups), short(
                 [(o, by_key.get((p, o), {}).get("log", "").strip(), c)
                  for (p, o), c in sorted(dups.items())[:5]]), len(extra)))
    bad = []
    for r in rs:
        e = by_key[(path_of(r), offset_of(r))]
        if r.get("message") != e["log"][:-1] or r.get("@timestamp") != e["time"]:
            bad.append((r.get("message"), e["log"]))
    check(not bad, "records whose message/time differ from the log: %s" % short(bad[:5]))
    err = t.stderr_text()
    check(len(connected_lines(t)) >= 2 or re.search(r"reconnect", err, re.I),
          "tailjet did not log a reconnect (no `reconnect`, %d `docker: connected` lines); "
          "stderr:\n%s" % (len(connected_lines(t)), tail_text(err)))
    log("    %d lines, %d container runs, each shipped once" % (len(entries), restarts))


def case_docker_root(binary, env, d):
    n1, n2 = uniq("root"), uniq("root")
    cmd = ["sh", "-c", "for i in 1 2 3; do echo hello $i; done; sleep 600"]
    c1 = d.run(n1, cmd, labels={"logPattern": PAT})
    d.wait_log_lines(c1, 3)
    t, out = start_tj(env, binary, d, "--docker-root", d.root, host=False)
    r1 = wait_n(out, c1, 3, t, what="3 records of a container found through --docker-root")
    t0 = time.monotonic()
    c2 = d.run(n2, cmd, labels={"logPattern": PAT2})
    wait_n(out, c2, 3, t, timeout=10.0,
           what="3 records of a container started after tailjet (--docker-root)")
    figure("--docker-root: docker run -> 3 records of the new container",
           "%.2f s" % (time.monotonic() - t0))
    r1 = sorted(settle_exact(out, c1, 3, t, "--docker-root"), key=offset_of)
    r2 = sorted(settle_exact(out, c2, 3, t, "--docker-root, later container"), key=offset_of)
    e1, e2 = d.log_entries(c1), d.log_entries(c2)
    for i in range(3):
        check_record(r1[i], "--docker-root", c1, n1, e1[i], {"word": "hello", "n": i + 1})
        check_record(r2[i], "--docker-root, later container", c2, n2, e2[i],
                     {"w2": "hello", "m": i + 1})
    t.check_alive()


def case_swarm_update_fast_writer(binary, env, d):
    """The live label change of swarm_service with a writer ~20x faster (a line every 10 ms).
    Measures the switch lag (from the engine's update event to the last line still parsed with
    the old pattern); lines written more than UPDATE_GRACE_NS after the event must carry the
    new pattern, lines written before it the old one."""
    d.swarm_init()
    t, out = start_tj(env, binary, d)
    wait_connected(t, required=False)
    d.docker("service", "create", "--detach", "--name", "fast", "--label", "logPattern=" + PAT,
             IMAGE, "sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 0.01; done")
    sid = json.loads(d.docker("service", "inspect", "fast"))[0]["ID"]
    cid = d.wait_service_container("fast")
    wait_n(out, cid, 50, t)
    t_wall = time.time()
    d.docker("service", "update", "--detach", "--label-add", "logPattern=" + PAT2, "fast")
    wait_until(lambda: any("w2" in r for r in out.of(cid)), APPEAR,
               "a record with the new pattern", procs=[t])
    time.sleep(2)
    evs = [e for e in d.events(t_wall - 1, time.time() + 0.5, ("type=service", "event=update"))
           if e.get("Actor", {}).get("ID") == sid]
    check(evs, "no service update event for %s in `docker events`" % sid)
    ev_ns = int(evs[0]["timeNano"])
    entries = d.log_entries(cid)
    by_off = {e["offset"]: e for e in entries}
    wait_until(lambda: {offset_of(r) for r in out.of(cid)} >= set(by_off), APPEAR,
               "the %d lines written so far" % len(entries), procs=[t])
    old_after, new_before, bad = [], [], []
    for r in sorted(out.of(cid), key=offset_of):
        e = by_off.get(offset_of(r))
        if e is None:
            continue
        ns = rfc3339_ns(e["time"])
        n = int(TICK_RE.fullmatch(e["log"].strip()).group(1))
        got = extracted(r)
        if got == {"word": "tick", "n": n}:
            if ns > ev_ns:
                old_after.append((r["message"], (ns - ev_ns) / 1e6))
        elif got == {"w2": "tick", "m": n}:
            if ns < ev_ns:
                new_before.append((r["message"], (ns - ev_ns) / 1e6))
        else:
            bad.append(r)
    lag = max([ms for _, ms in old_after], default=0.0)
    figure("service update event -> last line still parsed with the old pattern (10 ms writer)",
           "%.1f ms after the event (%d such lines)" % (lag, len(old_after)))
    late = [(m, round(ms, 1)) for m, ms in old_after if ms * 10**6 > UPDATE_GRACE_NS]
    check(not bad, "records parsed with neither pattern: %s" % short(bad[:2]))
    check(not late, "%d lines written more than %d ms after the update event were parsed with "
          "the old pattern (message, ms after the event): %s" %
          (len(late), UPDATE_GRACE_NS // 10**6, late[:5]))
    check(not new_before, "%d lines written before the update event were parsed with the new "
          "pattern: %s" % (len(new_before), new_before[:5]))


def case_service_container_label(binary, env, d):
    """A service's --container-label overrides its service label of the same kind: the
    container's logPattern alternatives replace the service's as a whole (the service's
    logPattern.1 is not mixed in: tailjet's documented choice), while a label of another kind
    the container does not set (logMultiline) still comes from the service."""
    d.swarm_init()
    t, out = start_tj(env, binary, d)
    wait_connected(t, required=False)
    d.docker("service", "create", "--detach", "--name", "api", "--label", "logPattern=" + PAT,
             "--label", "logPattern.1=^%{WORD:only}$", "--label", "logMultiline=^\\S",
             "--container-label", "logPattern=" + PAT2, IMAGE,
             "sh", "-c", "printf 'first 1\\n  more\\nsecond\\n'; sleep 600")
    sid = json.loads(d.docker("service", "inspect", "api"))[0]["ID"]
    cid = d.wait_service_container("api")
    ins = d.inspect(cid, "container")
    check(ins["Config"]["Labels"].get("logPattern") == PAT2,
          "--container-label did not reach the task container: %s" % ins["Config"]["Labels"])
    wait_n(out, cid, 2, t)
    rs = sorted(settle_exact(out, cid, 2, t, "service with --container-label"), key=offset_of)
    es = d.log_entries(cid)
    check(len(es) == 3, "the task wrote %d lines, expected 3" % len(es))
    svc = {"name": "api", "id": sid}
    name = ins["Name"].lstrip("/")
    ev = dict(es[0])
    ev["log"] = "first 1\n  more\n"
    check_record(rs[0], "--container-label logPattern overrides the service's logPattern; the "
                 "service's logMultiline applies", cid, name, ev, {"w2": "first", "m": 1},
                 service=svc)
    check_record(rs[1], "the container's alternatives replace the service's (no logPattern.1 "
                 "from the service)", cid, name, es[2], {}, tags=["_grokparsefailure"],
                 service=svc)


def case_signals(binary, env, d):
    """With Docker discovery on: SIGHUP reopens the output (tailjet keeps running and keeps
    shipping), SIGTERM ends it with status 0 within STOP_BOUND."""
    t, out = start_tj(env, binary, d)
    wait_connected(t, required=False)
    name = uniq("sig")
    cid = d.run(name, ["sh", "-c", "echo hello 1; sleep 2; echo hello 2; sleep 600"],
                labels={"logPattern": PAT})
    wait_n(out, cid, 1, t)
    for _ in range(5):  # several times: the signal goes to whichever thread does not block it
        os.kill(t.pid, signal.SIGHUP)
        time.sleep(0.1)
        t.check_alive("after SIGHUP (it must reopen the output file, not end)")
    wait_n(out, cid, 2, t, what="the line written after SIGHUP")
    secs = t.stop(STOP_BOUND)
    log("    SIGTERM: exit 0 in %.2f s" % secs)


def case_first_record_latency(binary, env, d):
    t, out = start_tj(env, binary, d)
    wait_connected(t, required=False)
    lat, runs = [], []
    for i in range(20):
        name = uniq("lat")
        t0 = time.monotonic()
        cid = d.run(name, ["sh", "-c", "echo start %d; sleep 600" % i],
                    labels={"logPattern": PAT})
        t_run = time.monotonic()
        got = None
        while got is None:
            for r in out.poll():
                if cid_of(r) == cid:
                    got = r
                    break
            if got is None:
                if time.monotonic() - t0 > APPEAR:
                    fail("run %d: no record of container %s within %.0f s" %
                         (i, name, APPEAR))
                t.check_alive()
                time.sleep(0.01)
        lat.append(time.monotonic() - t0)
        runs.append(t_run - t0)
        e = d.log_entries(cid)
        check_record(got, "run %d" % i, cid, name, e[0], {"word": "start", "n": i})
        d.rm(cid)
    after = [a - b for a, b in zip(lat, runs)]
    figure("docker run -> first parsed record (20 runs)", "min %.3f s, median %.3f s, "
           "max %.3f s (`docker run -d` itself: median %.3f s; from its return to the record: "
           "median %.3f s, max %.3f s)" %
           (min(lat), statistics.median(lat), max(lat), statistics.median(runs),
            statistics.median(after), max(after)))
    t.check_alive()


def case_own_container(binary, env, d):
    """tailjet in a container of the engine it discovers, with --output stdout (its records go
    to its own container's log): it leaves its own container out, so no record of its output is
    about its own container (each would come back as a new one, without end), and another
    container's lines are shipped. The container runs this tailjet binary in a chroot of the
    host's root (the bb image holds no libraries); Docker gives it its cgroup, its host name and
    its /etc mounts as to any container."""
    other = d.run(uniq("web"), ["sh", "-c", "for i in 1 2 3; do echo web $i; done; sleep 600"])
    state = env.mkdir("state-in-container")
    me = d.run(uniq("tailjet"), ["/bin/busybox", "chroot", "/host", binary, "run", "--docker-host",
                                 d.host, "--output", "stdout", "--state-dir", state,
                                 "--metrics-addr", "off"], extra=["-v", "/:/host"])

    def records():
        recs = []
        for e in d.log_entries(me):
            if e.get("stream") == "stdout":
                try:
                    recs.append(json.loads(e["log"]))
                except ValueError:
                    fail("tailjet's stdout holds a line that is no record (%d bytes; a record "
                         "over 16 KiB, cut by Docker: its own records shipped again, nested?): "
                         "%r" % (len(e["log"]), e["log"][:200]))
        return recs

    def stderr():
        return "".join(e["log"] for e in d.log_entries(me) if e.get("stream") == "stderr")

    try:
        wait_until(lambda: len([r for r in records() if cid_of(r) == other]) >= 3, APPEAR,
                   "the other container's 3 lines in the output of tailjet in a container")
    except TestFailure as e:
        fail("%s; tailjet's stderr:\n%s" % (e, tail_text(stderr())))
    time.sleep(SETTLE)  # its own lines, were they followed, come back within this
    recs = records()
    mine = [r for r in recs if cid_of(r) == me]
    check(not mine, "%d records of tailjet's own container in its output, first: %s" %
          (len(mine), short([r.get("message") for r in mine[:3]])))
    check(len([r for r in recs if cid_of(r) == other]) == 3,
          "the other container's lines: %d records, expected 3" %
          len([r for r in recs if cid_of(r) == other]))
    check("is the one tailjet runs in" in stderr(),
          "tailjet did not say it leaves its own container out:\n%s" % tail_text(stderr()))
    m = re.search(r"found by its (\w+)", stderr())
    log("    tailjet in container %s found itself by its %s" % (me[:12], m.group(1) if m else "?"))


CASES = [  # (case, time bound in seconds)
    (case_labeled_container, 60),
    (case_existing_containers, 60),
    (case_alternatives_and_multiline, 60),
    (case_invalid_pattern, 60),
    (case_too_many_alternatives, 60),
    (case_label_prefix, 60),
    (case_swarm_service, 150),
    (case_swarm_update_fast_writer, 60),
    (case_service_container_label, 60),
    (case_daemon_restart, 120),
    (case_signals, 60),
    (case_docker_root, 60),
    (case_first_record_latency, 120),
    (case_own_container, 60),
]


def cleanup(d):
    """Between cases: services, containers, swarm membership of the case go away."""
    try:
        if d.proc is None or d.proc.poll() is not None:
            log("    dockerd is not running: starting it again")
            d.start()
        d.rm_all()
        d.swarm_leave()
    except DockerError as e:
        log("    warning: cleanup: %s" % e)


def run_case(case, binary, env, d):
    try:
        case(binary, env, d)
    except DockerError as e:
        raise TestFailure("docker: %s" % e)


def main(binary):
    os.environ.pop("DOCKER_HOST", None)
    t0 = time.monotonic()
    try:
        d = Dockerd("d")
    except DockerError as e:
        fail("the private Docker engine did not start: %s" % e)
    try:
        log("dockerd %s (pid %d) at %s, started in %.1f s, image %s ready in %.1f s" %
            (d.version, d.pid, d.dir, d.started_in, IMAGE, time.monotonic() - t0))
        run_cases(CASES, "dk-", lambda case, env: run_case(case, binary, env, d),
                  between=lambda: cleanup(d), figures=FIGURES, width=28)
    finally:
        d.stop()


if __name__ == "__main__":
    main_wrapper(main)
