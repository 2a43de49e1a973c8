#!/usr/bin/env python3
"""test_systemd.py: deploy/tailjet.service is a valid unit, and its ExecStart works under the
credentials the unit gives it, against a real Docker engine.

Usage: test_systemd.py PATH/TO/tailjet. Needs systemd-analyze (Debian's systemd package), setpriv
(util-linux), a group named as the unit's SupplementaryGroups (docker: Debian's docker.io makes it)
and a private engine (tj_docker.Dockerd); anything missing is a FAIL, never a skip.

- verify: `systemd-analyze verify` on the unit, with ExecStart's /usr/local/bin/tailjet replaced by
  the build (the only change), prints nothing and exits 0 (it exits 0 on an unknown key or a bad
  value, so any line it prints fails the test); `systemd-analyze security --offline=yes` rates its
  exposure at most MAX_EXPOSURE.
- settings: the ones the README and the unit's comment promise (a user of its own, the docker
  group, CAP_DAC_READ_SEARCH and nothing else, StateDirectory=tailjet, no MemoryDenyWriteExecute,
  which would break PCRE2's JIT).
No systemd runs here (PID 1 is not systemd), so the unit's credentials are emulated with setpriv:
a uid from DynamicUser's range that no user has, the gid of the docker group as its only
supplementary group, the unit's capabilities as the ambient, inheritable and bounding sets, and
no_new_privs; the environment is systemd's (PATH, STATE_DIRECTORY, LOGS_DIRECTORY) plus the unit's
Environment= lines and, as /etc/default/tailjet would, TAILJET_METRICS_ADDR on a free port.
StateDirectory and LogsDirectory become temp dirs owned by that uid; the socket path is the
private engine's, whose directory is opened to others for traversal (0711, as /var/run is).
- runs: a container labeled logPattern=%{COMBINEDAPACHELOG} is shipped, parsed, with its metadata,
  into the unit's default output; /health is 200; the process runs with that uid, no other
  capability in its effective set than CAP_DAC_READ_SEARCH; SIGTERM: exit 0.
- without the capability: tailjet warns once that it cannot read the container's log (naming
  Permission denied and CAP_DAC_READ_SEARCH) and ships none of it.
- without the docker group: /health is 503 and names docker.
"""

import grp
import json
import os
import pwd
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "engine"))
from tj_engine_util import (Env, TestFailure, check, fail, free_port, log, main_wrapper,  # noqa: E402
                            tail_text, wait_until)
from tj_docker import Dockerd, DockerError  # noqa: E402

UNIT = os.path.join(REPO, "deploy", "tailjet.service")
INSTALLED = "/usr/local/bin/tailjet"
MAX_EXPOSURE = 3.0
RECORDS_TIMEOUT = 30.0
STOP_BOUND = 15.0
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CAP_DAC_READ_SEARCH = 2  # linux/capability.h

LINES = ['198.51.100.%d - - [25/Nov/2026:10:00:%02d +0000] "GET /a/%d HTTP/1.1" 200 %d "-" "t/1"'
         % (i + 1, i, i, 10 + i) for i in range(10)]


def parse_unit(path):
    """{section: [(key, value), ...]} (systemd allows repeated keys; continuation lines and
    comments are handled as systemd does for this simple file)."""
    res, sec = {}, None
    with open(path) as f:
        text = f.read().replace("\\\n", " ")
    for ln in text.splitlines():
        s = ln.strip()
        if not s or s[0] in "#;":
            continue
        if s.startswith("[") and s.endswith("]"):
            sec = s[1:-1]
            res.setdefault(sec, [])
            continue
        k, _, v = s.partition("=")
        res[sec].append((k.strip(), v.strip()))
    return res


def values(unit, key, sec="Service"):
    return [v for k, v in unit.get(sec, []) if k == key]


def one(unit, key, sec="Service"):
    v = values(unit, key, sec)
    check(len(v) == 1, "%s= appears %d times in [%s] of %s" % (key, len(v), sec, UNIT))
    return v[0]


# ------------------------------------------------------------------------------------------


def case_verify(tailjet, env):
    with open(UNIT) as f:
        text = f.read()
    check(text.count(INSTALLED) >= 1, "ExecStart does not run %s" % INSTALLED)
    copy = env.path("tailjet.service")
    with open(copy, "w") as f:
        f.write(text.replace(INSTALLED, tailjet))
    sa = shutil.which("systemd-analyze")
    check(sa, "systemd-analyze is not installed: install Debian's systemd package "
          "(scripts/setup.sh)")
    r = subprocess.run([sa, "verify", copy], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=60)
    out = r.stdout.decode("utf-8", "replace").strip()
    check(r.returncode == 0 and not out,
          "systemd-analyze verify (status %d) says:\n%s" % (r.returncode, out))
    r = subprocess.run([sa, "security", "--offline=yes", copy], stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=60)
    out = r.stdout.decode("utf-8", "replace")
    m = re.search(r"Overall exposure level for tailjet\.service: ([0-9.]+)", out)
    check(m, "systemd-analyze security gives no exposure level:\n%s" % tail_text(out))
    log("  systemd-analyze security: exposure %s (at most %.1f)" % (m.group(1), MAX_EXPOSURE))
    check(float(m.group(1)) <= MAX_EXPOSURE, "exposure %s > %.1f; what it counts against the "
          "unit:\n%s" % (m.group(1), MAX_EXPOSURE,
                         "\n".join(ln for ln in out.splitlines() if "\u2717" in ln)))


def case_settings(tailjet, env):
    u = parse_unit(UNIT)
    check(one(u, "DynamicUser") == "yes", "DynamicUser is not yes (README: a user of its own)")
    check(not values(u, "User"), "User= set: the README says it runs as a user of its own")
    check(one(u, "SupplementaryGroups") == "docker", "SupplementaryGroups is not docker")
    check(one(u, "AmbientCapabilities") == "CAP_DAC_READ_SEARCH",
          "AmbientCapabilities is not exactly CAP_DAC_READ_SEARCH")
    check(one(u, "CapabilityBoundingSet") == "CAP_DAC_READ_SEARCH",
          "CapabilityBoundingSet is not exactly CAP_DAC_READ_SEARCH")
    check(one(u, "StateDirectory") == "tailjet", "StateDirectory is not tailjet")
    check(one(u, "NoNewPrivileges") == "yes", "NoNewPrivileges is not yes")
    check(values(u, "MemoryDenyWriteExecute") in ([], ["no"]),
          "MemoryDenyWriteExecute=yes: PCRE2's JIT would fail")
    argv = shlex.split(one(u, "ExecStart"))
    check(argv[:2] == [INSTALLED, "run"], "ExecStart %r" % argv)
    check("unix:///var/run/docker.sock" in argv and "/var/lib/tailjet" in argv,
          "ExecStart does not name the socket and the state directory: %r" % argv)


# ------------------------------------------------------------------------------------------
# The unit's ExecStart under its credentials


def dynamic_uid():
    """A uid in DynamicUser's range (61184-65519) that no user or group has."""
    for uid in range(61184 + 1000, 65519):
        try:
            pwd.getpwuid(uid)
            continue
        except KeyError:
            pass
        try:
            grp.getgrgid(uid)
            continue
        except KeyError:
            return uid
    fail("no free uid in 61184-65519")


class Unit:
    """ExecStart of deploy/tailjet.service, run as the unit would run it (see the docstring)."""

    def __init__(self, env, tailjet, d, name, caps=True, group=True):
        u = parse_unit(UNIT)
        self.env = env
        self.uid = dynamic_uid()
        self.state = env.mkdir(name, "state")   # StateDirectory=tailjet: /var/lib/tailjet
        self.logs = env.mkdir(name, "logs")     # LogsDirectory=tailjet: /var/log/tailjet
        for p in (os.path.dirname(self.state), self.state, self.logs):
            os.chown(p, self.uid, self.uid)
        os.chmod(d.dir, 0o711)  # as /var/run: the socket is reachable through its group alone

        def local(s):
            return (s.replace("/var/lib/tailjet", self.state)
                    .replace("/var/log/tailjet", self.logs)
                    .replace("unix:///var/run/docker.sock", d.host))

        argv = [local(a) for a in shlex.split(one(u, "ExecStart"))]
        argv[0] = tailjet
        self.port = free_port()
        cenv = {"PATH": PATH, "STATE_DIRECTORY": self.state, "LOGS_DIRECTORY": self.logs}
        for v in values(u, "Environment"):
            for kv in shlex.split(v):
                k, _, val = kv.partition("=")
                cenv[k] = local(val)
        cenv["TAILJET_METRICS_ADDR"] = "127.0.0.1:%d" % self.port  # /etc/default/tailjet
        self.output = cenv["TAILJET_OUTPUT"][len("file:"):]
        capset = "-all" + "".join(",+" + c[len("CAP_"):].lower()
                                  for c in one(u, "AmbientCapabilities").split()) if caps \
            else "-all"
        groups = ",".join(str(grp.getgrnam(g).gr_gid)
                          for g in one(u, "SupplementaryGroups").split())
        pre = ["setpriv", "--reuid=%d" % self.uid, "--regid=%d" % self.uid]
        pre += ["--groups=" + groups] if group else ["--clear-groups"]
        pre += ["--inh-caps=" + capset, "--ambient-caps=" + capset, "--bounding-set=" + capset,
                "--no-new-privs", "--"]
        self.stderr_path = env.path(name, "stderr")
        with open(self.stderr_path, "wb") as err:
            # setpriv execs tailjet: the pid is tailjet's.
            self.proc = env.spawn(pre + argv, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=err, env=cenv, cwd="/")
        self.pid = self.proc.pid

    def stderr(self):
        with open(self.stderr_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def check_alive(self, what):
        rc = self.proc.poll()
        if rc is not None:
            fail("tailjet exited with status %d %s; stderr:\n%s" % (rc, what,
                                                                   tail_text(self.stderr())))

    def health(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % self.port,
                                        timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()
        except (urllib.error.URLError, ConnectionError, socket.timeout):
            return None

    def status(self, field):
        with open("/proc/%d/status" % self.pid) as f:
            for ln in f:
                if ln.startswith(field + ":"):
                    return ln.split(":", 1)[1].strip()
        return None

    def records(self):
        try:
            with open(self.output, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return []
        return [json.loads(ln) for ln in data.split(b"\n")[:-1]]

    def stop(self):
        self.check_alive("before SIGTERM")
        os.kill(self.pid, signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=STOP_BOUND)
        except subprocess.TimeoutExpired:
            fail("tailjet did not exit within %.0f s of SIGTERM" % STOP_BOUND)
        check(rc == 0, "tailjet exited with status %d after SIGTERM; stderr:\n%s" %
              (rc, tail_text(self.stderr())))


def web_container(d, name):
    script = "printf '%%s\\n' %s; exec sleep 600" % " ".join("'%s'" % ln for ln in LINES)
    cid = d.run(name, ["sh", "-c", script], labels={"logPattern": "%{COMBINEDAPACHELOG}"})
    d.wait_log_lines(cid, len(LINES))
    return cid


def case_runs(tailjet, env, d):
    cid = web_container(d, "sd-web")
    t = Unit(env, tailjet, d, "runs")

    def shipped():
        t.check_alive("while shipping")
        recs = [r for r in t.records() if r.get("container", {}).get("id") == cid]
        return recs if len(recs) >= len(LINES) else None

    try:
        recs = wait_until(shipped, RECORDS_TIMEOUT, "%d records of the container in %s" %
                          (len(LINES), t.output), interval=0.2)
    except TestFailure as e:
        fail("%s; tailjet's stderr:\n%s" % (e, tail_text(t.stderr())))
    check(len(recs) == len(LINES), "%d records for %d lines" % (len(recs), len(LINES)))
    for r in recs:
        check(r.get("container", {}).get("name") == "sd-web" and
              r.get("http", {}).get("response", {}).get("status_code") == 200 and
              "tags" not in r and r.get("message") in LINES,
              "record not parsed with its metadata: %s" % r)
    h = wait_until(t.health, 10, "/health")
    check(h == (200, "ok\n"), "/health: %r" % (h,))
    uids = t.status("Uid").split()
    check(uids and all(int(x) == t.uid for x in uids), "tailjet runs with uids %s, not %d" %
          (uids, t.uid))
    caps = int(t.status("CapEff"), 16)
    check(caps == 1 << CAP_DAC_READ_SEARCH, "effective capabilities %#x, expected only "
          "CAP_DAC_READ_SEARCH (%#x)" % (caps, 1 << CAP_DAC_READ_SEARCH))
    check(t.status("NoNewPrivs") == "1", "no_new_privs not set")
    t.stop()
    d.rm(cid)
    log("  runs: %d records as uid %d with CAP_DAC_READ_SEARCH only, /health ok, exit 0" %
        (len(recs), t.uid))


def case_no_capability(tailjet, env, d):
    cid = web_container(d, "sd-nocap")
    path = d.log_path(cid)
    t = Unit(env, tailjet, d, "nocap", caps=False)
    want = "cannot read %s: Permission denied" % path

    def warned():
        t.check_alive("while waiting for its warning")
        return want in t.stderr()

    wait_until(warned, RECORDS_TIMEOUT, "tailjet's warning %r" % want, interval=0.2)
    time.sleep(1.5)  # a poll or two more: nothing may be read, and the warning is not repeated
    err = t.stderr()
    check(err.count(want) == 1, "the warning about %s appears %d times (once, not at every "
          "poll):\n%s" % (path, err.count(want), tail_text(err)))
    check("CAP_DAC_READ_SEARCH" in err.split(want)[1].splitlines()[0],
          "the warning does not say which capability would let tailjet read it")
    check(not [r for r in t.records() if r.get("container", {}).get("id") == cid],
          "records of the container without the capability to read its log")
    t.stop()
    d.rm(cid)
    log("  without CAP_DAC_READ_SEARCH: nothing read, one warning naming it")


def case_no_group(tailjet, env, d):
    t = Unit(env, tailjet, d, "nogroup", group=False)

    def unhealthy():
        t.check_alive("while waiting for /health")
        h = t.health()
        return h if h and h[0] == 503 else None

    h = wait_until(unhealthy, 20, "/health 503", interval=0.2)
    check("docker" in h[1], "/health 503 does not name docker: %r" % h[1])
    t.stop()
    log("  without the docker group: /health 503: %s" % h[1].strip().splitlines()[0][:150])


def main(tailjet):
    failed = []
    with Env("systemd") as env:
        # `install -m 0755 build/tailjet /usr/local/bin/tailjet`, as the unit's comment says: the
        # unit's user may not be able to reach the build tree (a clone in /root, say).
        os.chmod(env.dir, 0o711)
        installed = env.path("tailjet")
        shutil.copy(tailjet, installed)
        os.chmod(installed, 0o755)
        tailjet = installed
        for case in (case_verify, case_settings):
            log("case %s" % case.__name__[5:])
            try:
                case(tailjet, env)
            except TestFailure as e:
                log("FAIL %s: %s" % (case.__name__[5:], e))
                failed.append(case.__name__[5:])
        check(shutil.which("setpriv"), "setpriv is not installed (Debian's util-linux)")
        try:
            grp.getgrnam("docker")
        except KeyError:
            fail("no group docker on this machine (Debian's docker.io creates it)")
        try:
            with Dockerd("sd") as d:
                for case in (case_runs, case_no_capability, case_no_group):
                    log("case %s" % case.__name__[5:])
                    try:
                        case(tailjet, env, d)
                    except TestFailure as e:
                        log("FAIL %s: %s" % (case.__name__[5:], e))
                        failed.append(case.__name__[5:])
        except DockerError as e:
            fail("Docker: %s" % e)
    check(not failed, "cases failed: %s" % ", ".join(failed))


if __name__ == "__main__":
    main_wrapper(main)
