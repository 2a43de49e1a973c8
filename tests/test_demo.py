#!/usr/bin/env python3
"""test_demo.py: the README's demo (scripts/demo.py) does what it shows.

Usage: test_demo.py REPO_ROOT [PATH/TO/tailjet]    (tailjet defaults to REPO_ROOT/build/tailjet)

Runs `python3 REPO_ROOT/scripts/demo.py TAILJET` once, from a directory outside the repository,
and checks its output:
- it exits 0 and ends with `demo: OK`;
- the records it shows: web's are Apache combined records (source.address, http.*, url.original,
  user_agent.original) or its stderr warning tagged _grokparsefailure; app's carry timestamp,
  log.level, thread and msg, and an ERROR's stack trace is joined into its record; kv's carry
  log.level, user.name, event.action and took_ms as a number; plain's carry no extracted field
  and no tag;
- the summary table has one line per container with the lines the demo's containers write and
  the counts tailjet must report (parsed > 0 for the labeled ones, failed == 0 for app and kv,
  everything unparsed for plain);
- nothing of the demo is left: with a private engine, its dockerd pid has exited, no process
  (containerd, shims) names its directory, nothing is mounted under it and it is gone; with an
  engine that was already running, no container named like the demo's is left on it.
Exit status 0 when every check passes, 1 otherwise (each failed check is printed).
"""

import json
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "engine"))
from tj_engine_util import sub  # noqa: E402

DEMO_TIMEOUT = 300
ROLES = ("web", "app", "kv", "plain")
# role -> (lines, records, parsed, failed, unparsed): what the demo's containers write.
WANT = {"web": (21, 21, 20, 1, 0), "app": (23, 11, 11, 0, 0), "kv": (15, 15, 15, 0, 0),
        "plain": (10, 10, 0, 0, 10)}
META = {"@timestamp", "message", "stream", "container", "host", "log"}

failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what, flush=True)
    return cond


def sections(out):
    """The displayed records: {container name: [record dict, ...]} (strings shortened)."""
    res = {}
    cur = None
    buf = None
    for ln in out.splitlines():
        m = re.match(r"^-- (tjdemo-[0-9a-f]+-\w+)$", ln)
        if m:
            cur = m.group(1)
            res[cur] = []
            continue
        if ln.startswith("== "):
            cur = None
        if cur is None:
            continue
        if buf is None and ln.startswith("{"):
            buf = []
        if buf is not None:
            buf.append(ln)
            if ln.endswith("}") and not ln.startswith("   "):
                try:
                    res[cur].append(json.loads("".join(buf)))
                except ValueError as e:
                    check(False, "record shown for %s is not JSON (%s): %s" % (cur, e, buf))
                buf = None
    return res


def expect(role, r, conds):
    """One check per record: the names of the conditions it fails, and the record (short)."""
    bad = [what for ok, what in conds if not ok]
    check(not bad, "%s: record fails %s: %s" % (role, ", ".join(bad), json.dumps(r)[:400]))


def check_web(recs):
    parsed = [r for r in recs if "tags" not in r]
    failed = [r for r in recs if "tags" in r]
    check(parsed, "web: no parsed record shown")
    for r in parsed:
        expect("web", r, [
            (isinstance(sub(r, "source", "address"), str), "source.address"),
            (sub(r, "http", "request", "method") in ("GET", "POST"), "http.request.method"),
            (sub(r, "http", "response", "status_code") in (200, 201, 404, 500),
             "http.response.status_code (a number)"),
            (isinstance(sub(r, "http", "response", "body", "bytes"), int),
             "http.response.body.bytes (a number)"),
            (isinstance(sub(r, "url", "original"), str), "url.original"),
            (isinstance(sub(r, "user_agent", "original"), str), "user_agent.original"),
            (r.get("stream") == "stdout", "stream stdout")])
    for r in failed:
        expect("web", r, [
            (r.get("tags") == ["_grokparsefailure"], "tags [_grokparsefailure]"),
            (r.get("stream") == "stderr", "stream stderr"),
            (r.get("message", "").startswith("AH00558"), "message AH00558..."),
            (not set(r) - META - {"tags"}, "no extracted field")])


def check_app(recs, out):
    for r in recs:
        expect("app", r, [
            (sub(r, "log", "level") in ("INFO", "ERROR"), "log.level"),
            (re.match(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}$", r.get("timestamp", "")),
             "timestamp"),
            (r.get("thread") in ("main", "worker-1", "worker-2"), "thread"),
            (isinstance(r.get("msg"), str) and r["msg"], "msg"),
            (isinstance(sub(r, "log", "file", "path"), str), "log.file.path beside log.level"),
            ("tags" not in r, "no tags")])
    check([r for r in recs if sub(r, "log", "level") == "ERROR"], "app: no ERROR record shown")
    # The joined message is shown whole under its record.
    check(re.search(r"\(its message: 5 lines joined into this one record by logMultiline\)\n"
                    r" +\S.* ERROR \[worker-\d\] Failed to process order \d+\n"
                    r" +java\.lang\.IllegalStateException: .*\n"
                    r"( +at com\.example\..*\n){2} +at java\.base/", out),
          "app: the ERROR's stack trace is not shown joined into one record")


def check_kv(recs):
    for r in recs:
        expect("kv", r, [
            (sub(r, "log", "level") in ("info", "warn", "error"), "log.level"),
            (sub(r, "user", "name") in ("alice", "bob", "carol", "dave"), "user.name"),
            (isinstance(sub(r, "event", "action"), str), "event.action"),
            (isinstance(r.get("took_ms"), int), "took_ms (a number)"),
            ("tags" not in r, "no tags")])


def check_plain(recs):
    for r in recs:
        expect("plain", r, [
            (not set(r) - META, "no field beyond the metadata"),
            (set(sub(r, "log") or {}) <= {"file", "offset"}, "no log.* field of a pattern")])


def proc_cmdlines():
    res = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open("/proc/%s/cmdline" % name, "rb") as f:
                    res[int(name)] = f.read().replace(b"\0", b" ").decode("utf-8", "replace")
            except OSError:
                pass
    return res


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    return st[st.rfind(")") + 2:][:1] != "Z"


def check_left(out, prefix):
    m = re.search(r"dockerd pid (\d+) .*\n.* under (/\S+?)/?\n", out)
    if m:
        pid, d = int(m.group(1)), m.group(2)
        check(not alive(pid), "the demo's dockerd (pid %d) is still running" % pid)
        procs = {p: c for p, c in proc_cmdlines().items() if d in c and p != os.getpid()}
        check(not procs, "processes of the demo's engine still running: %s" % procs)
        with open("/proc/mounts") as f:
            mounts = [ln.split()[1] for ln in f if ln.split()[1].startswith(d)]
        check(not mounts, "still mounted under %s: %s" % (d, mounts))
        check(not os.path.exists(d), "%s still exists" % d)
        return
    m = re.search(r"engine:  using the Docker engine at (\S+) ", out)
    if check(m, "the demo says neither which engine it started nor which one it used"):
        r = subprocess.run(["docker", "-H", m.group(1), "ps", "-a", "--format", "{{.Names}}",
                            "--filter", "name=" + prefix], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        check(r.returncode == 0 and not r.stdout.strip(),
              "containers of the demo left on %s: %r %r" % (m.group(1), r.stdout, r.stderr))


def main():
    if len(sys.argv) not in (2, 3):
        print("usage: test_demo.py REPO_ROOT [PATH/TO/tailjet]", file=sys.stderr)
        return 2
    root = os.path.abspath(sys.argv[1])
    tailjet = os.path.abspath(sys.argv[2] if len(sys.argv) == 3
                              else os.path.join(root, "build", "tailjet"))
    with tempfile.TemporaryDirectory(prefix="tj-demo-test-") as cwd:
        try:
            r = subprocess.run([sys.executable, os.path.join(root, "scripts", "demo.py"),
                                tailjet], cwd=cwd, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               timeout=DEMO_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            print((e.stdout or b"").decode("utf-8", "replace"))
            print("FAIL: the demo did not finish within %d s" % DEMO_TIMEOUT)
            return 1
    out = r.stdout.decode("utf-8", "replace")
    print(out)
    print("---- checks")
    check(r.returncode == 0, "demo.py exited with status %d" % r.returncode)
    check(out.rstrip().splitlines()[-1].startswith("demo: OK") if out.strip() else False,
          "the demo does not end with `demo: OK`")
    m = re.search(r"\b(tjdemo-[0-9a-f]+-)web\b", out)
    if not check(m, "no container tjdemo-*-web in the output"):
        return 1
    prefix = m.group(1)

    shown = sections(out)
    for role in ROLES:
        recs = shown.get(prefix + role, [])
        check(len(recs) == 2, "%s: %d records shown, expected 2" % (role, len(recs)))
        for rec in recs:
            check(sub(rec, "container", "name") == prefix + role,
                  "%s: container.name in %s" % (role, rec))
            check(isinstance(rec.get("message"), str), "%s: no message in %s" % (role, rec))
    check_web(shown.get(prefix + "web", []))
    check_app(shown.get(prefix + "app", []), out)
    check_kv(shown.get(prefix + "kv", []))
    check_plain(shown.get(prefix + "plain", []))

    check(re.search(r"^service +lines +records +parsed +failed +unparsed$", out, re.M),
          "no summary table header")
    for role in ROLES:
        m = re.search(r"^%s +(\d+) +(\d+) +(\d+) +(\d+) +(\d+)$" % re.escape(prefix + role),
                      out, re.M)
        if not check(m, "%s: no summary line" % role):
            continue
        got = tuple(int(x) for x in m.groups())
        lines, recs, parsed, failed, unparsed = got
        check(got == WANT[role], "%s: summary %s, expected %s (lines, records, parsed, "
              "failed, unparsed)" % (role, got, WANT[role]))
        check(recs == parsed + failed + unparsed, "%s: records != parsed + failed + unparsed"
              % role)
        if role != "plain":
            check(parsed > 0, "%s: nothing parsed" % role)
        if role in ("app", "kv"):
            check(failed == 0, "%s: %d failed" % (role, failed))
    check(re.search(r"tailjet\[\d+\] info: stopped: .* records acknowledged", out),
          "tailjet's exit summary is not shown")
    check_left(out, prefix)
    if failures:
        print("test_demo: %d checks failed" % len(failures))
        return 1
    print("test_demo: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
