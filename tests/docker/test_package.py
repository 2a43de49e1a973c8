#!/usr/bin/env python3
"""test_package.py: the image, the Swarm stack and the metrics labels, as the README deploys them.

Usage: test_package.py PATH/TO/tailjet (the host build: its --version must be the image's).
ctest label `package` (slow: it builds the image from scratch); scripts/test.sh runs it in its own
stage. Every missing tool (debootstrap, dockerd, docker, prometheus) or unreachable Debian mirror is
a FAIL, never a skip.

No registry can be reached here, so:
1. base image: `debootstrap --variant=minbase bookworm` from Debian's mirror (TJ_DEBIAN_MIRROR,
   default http://deb.debian.org/debian), apt caches removed, tarred into the cache directory
   $TJ_PACKAGE_CACHE (ctest sets BUILD/package-cache; delete the file to refresh it) and reused by
   later runs; `docker import` makes it tjbase:bookworm in a private engine (tj_docker.Dockerd).
2. image: the README's `docker build -t tailjet .` from the repository's root, plus
   `--build-arg BASE=tjbase:bookworm` and `--network host` (the private engine has no bridge;
   apt-get in both stages reaches the mirror through the host's network). Checked: the default
   user is tailjet (non-root), the image's tailjet is the host build's version, its libraries all
   resolve, no compiler is left in it, and the runtime stage adds less than RUNTIME_MAX_MB to
   the base.
3. stack: the README's `docker network create --driver overlay monitor` and
   `docker stack deploy -c deploy/stack.yml tailjet`: deploy/stack.yml itself, unchanged, with
   TAILJET_DOCKER_SOCKET and TAILJET_DOCKER_ROOT set to the private engine's socket and data-root
   (and --resolve-image never: there is no registry to ask). The deployed service is checked:
   global mode, socket and containers directory mounted read-only (the latter at its own path),
   the state volume, user 0:0 without capabilities on a read-only root, the health check on
   /health at the port of --metrics-addr, and Docker Flow Monitor's labels naming that port.
   Its task must become healthy (Docker's health check, curl /health in the container).
4. records: a service `web` created next to it with --label logPattern=%{COMBINEDAPACHELOG}
   writes Apache access lines and one line that is not one; every line of its json-file log comes
   out exactly once in the default output (records.ndjson on the state volume), parsed (ECS
   fields, numbers as numbers) and carrying the service's name and id, the task's container,
   the node's host name (the stack's hostname template) and the log's path on the node; the odd
   line is tagged _grokparsefailure.
5. metrics: a label-driven Prometheus, as Docker Flow Monitor sets it up: every service with
   com.df.notify=true becomes a job scraping DNS tasks.<service> on com.df.scrapePort at
   com.df.metricsPath. A real Prometheus (Debian's binary, run as a Swarm service on the monitor
   network in the tailjet image, which has the same libc) scrapes tailjet's task through the
   overlay network: the target is up and tailjet_records_total for web has the exact counts.
   tasks.tailjet (the stack's alias; issue 5's --label-source) resolves to the same task.
6. stop: `docker stack rm tailjet` stops the task with SIGTERM; tailjet drains and exits 0
   within the stack's stop_grace_period.
7. the README's `docker run -d --name tailjet ...` (read from docs/deploy.md, the README's
   Deploy page; host paths pointed at
   the private engine, --network none added): healthy, and web's records in its own volume.
The private engine is stopped by its pid at the end (tj_docker.Dockerd.stop). Timings of each step
are printed; TJ_KEEP_TMP=1 keeps the engine's directory.
"""

import json
import os
import shlex
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "engine"))
from tj_engine_util import (TestFailure, check, fail, log, main_wrapper, sub,  # noqa: E402
                            wait_until)
from tj_docker import IMAGE, Dockerd, DockerError  # noqa: E402

STACK = os.path.join(REPO, "deploy", "stack.yml")
STACK_NAME = "tailjet"
SERVICE = "tailjet_tailjet"            # <stack>_<service in the stack file>
DEPLOY_DOC = "docs/deploy.md"          # where the README sends a user to deploy (its `docker run`)
IMAGE_TAG = "tailjet"                  # the README's `docker build -t tailjet .` (tailjet:latest)
BASE_TAG = "tjbase:bookworm"
SUITE = "bookworm"
MIRROR = os.environ.get("TJ_DEBIAN_MIRROR", "http://deb.debian.org/debian")
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

DEBOOTSTRAP_TIMEOUT = 900
BUILD_TIMEOUT = 1500
HEALTHY_TIMEOUT = 120.0   # the stack's health check runs every 10 s; 3 failures mark it unhealthy
RECORDS_TIMEOUT = 60.0
PROM_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0       # stop_grace_period is 30 s
RUNTIME_MAX_MB = 40       # what the runtime stage adds to the base (measured: 19 MB)

WEB_LINES = [
    '203.0.113.%d - user%d [25/Nov/2026:17:56:%02d +0000] "%s /shop/item/%d?ref=mail HTTP/1.1" '
    '%d %d "https://example.com/start" "Mozilla/5.0 (X11; Linux x86_64) tj/%d"'
    % (i + 1, i, i, "GET" if i % 3 else "POST", i, 200 if i % 4 else 404, 100 + i * 7, i)
    for i in range(20)]
ODD_LINE = "web: warming up the cache, no access line here"

TIMES = []


def step(what, t0):
    secs = time.monotonic() - t0
    TIMES.append((what, secs))
    log("  [%6.1f s] %s" % (secs, what))


def run(argv, timeout, what, cwd=None, env=None):
    """Runs a command; fails the test with the end of its output when it fails."""
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout, cwd=cwd, env=env)
    except subprocess.TimeoutExpired as e:
        out = (e.stdout or b"").decode("utf-8", "replace")
        fail("%s did not finish within %d s; its output ended with:\n%s" %
             (what, timeout, "\n".join(out.splitlines()[-30:])))
    except OSError as e:
        fail("%s: cannot run %s: %s" % (what, argv[0], e))
    out = r.stdout.decode("utf-8", "replace")
    if r.returncode != 0:
        fail("%s failed (status %d); its output ended with:\n%s" %
             (what, r.returncode, "\n".join(out.splitlines()[-40:])))
    return out


def unmount_under(path):
    """Unmounts what a killed debootstrap left mounted in its target (proc, sys)."""
    with open("/proc/mounts") as f:
        mps = [ln.split()[1] for ln in f if ln.split()[1].startswith(path + "/")]
    for mp in sorted(mps, key=len, reverse=True):
        subprocess.run(["umount", "-l", mp], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# ------------------------------------------------------------------------------------------
# 1. The base image


def base_tarball():
    """The debootstrapped Debian base as a tar file: from the cache, or made now (and cached)."""
    cache = os.environ.get("TJ_PACKAGE_CACHE")
    tmp_cache = None
    if not cache:
        cache = tmp_cache = tempfile.mkdtemp(prefix="tj-pkgcache-", dir="/tmp")
    os.makedirs(cache, exist_ok=True)
    tar = os.path.join(cache, "tjbase-%s-minbase.tar" % SUITE)
    if os.path.exists(tar):
        log("  base: %s (cached; delete it to make it again)" % tar)
        return tar, False, tmp_cache
    debootstrap = shutil.which("debootstrap") or "/usr/sbin/debootstrap"
    check(os.access(debootstrap, os.X_OK),
          "debootstrap is not installed: install Debian's debootstrap package (scripts/setup.sh)")
    root = tempfile.mkdtemp(prefix="tjbase-", dir=cache)
    os.chmod(root, 0o755)  # it becomes the image's "/": mkdtemp's 0700 would lock out non-root
    try:
        log("  base: debootstrap --variant=minbase %s from %s (no cache yet)" % (SUITE, MIRROR))
        run([debootstrap, "--variant=minbase", SUITE, root, MIRROR], DEBOOTSTRAP_TIMEOUT,
            "debootstrap (needs Debian's mirror %s)" % MIRROR)
        # What Debian's own images leave out: downloaded packages and package lists.
        for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
            d = os.path.join(root, sub)
            for name in os.listdir(d):
                p = os.path.join(d, name)
                if os.path.isfile(p) and name != "lock":
                    os.unlink(p)
        run(["tar", "-C", root, "-cf", tar + ".tmp", "."], 300, "tar of the base")
        os.rename(tar + ".tmp", tar)
    finally:
        unmount_under(root)
        shutil.rmtree(root, ignore_errors=True)
        if os.path.exists(tar + ".tmp"):
            os.unlink(tar + ".tmp")
    return tar, True, tmp_cache


# ------------------------------------------------------------------------------------------
# 2. The image


def build_image(d, tailjet):
    t0 = time.monotonic()
    env = dict(os.environ, DOCKER_BUILDKIT="0")  # the classic builder: also in Debian's CLI 20.10
    for k in ("DOCKER_HOST", "DOCKER_CONTEXT"):
        env.pop(k, None)
    run(["docker", "-H", d.host, "build", "--network", "host", "--build-arg", "BASE=" + BASE_TAG,
         "-t", IMAGE_TAG, "."], BUILD_TIMEOUT, "docker build (Dockerfile)", cwd=REPO, env=env)
    step("docker build -t tailjet . (both stages, apt-get from the mirror)", t0)

    img = d.inspect(IMAGE_TAG, "image")
    base = d.inspect(BASE_TAG, "image")
    cfg = img["Config"]
    check(cfg.get("User") == "tailjet", "the image's default user is %r, not tailjet" %
          cfg.get("User"))
    check(cfg.get("Entrypoint") == ["tailjet"], "entrypoint %r" % cfg.get("Entrypoint"))
    env_vars = dict(e.split("=", 1) for e in cfg.get("Env") or [])
    check(env_vars.get("TAILJET_OUTPUT", "stdout") != "stdout",
          "the image's default output is stdout: a tailjet that discovers its own container "
          "would ship its own output again, without end")
    added = (img["Size"] - base["Size"]) / 1e6
    log("  image: %.0f MB (the runtime stage adds %.1f MB to the %.0f MB base)" %
        (img["Size"] / 1e6, added, base["Size"] / 1e6))
    check(added < RUNTIME_MAX_MB, "the runtime stage adds %.1f MB to the base (more than %d MB: "
          "did the build stage's packages come along?)" % (added, RUNTIME_MAX_MB))

    want = subprocess.run([tailjet, "--version"], stdout=subprocess.PIPE,
                          timeout=30).stdout.decode().strip()
    got = d.docker("run", "--rm", "--network", "none", IMAGE_TAG, "--version")
    check(got == want, "the image's tailjet says %r, the host build %r" % (got, want))
    out = d.docker("run", "--rm", "--network", "none", "--entrypoint", "sh", IMAGE_TAG, "-c",
                   "id -un; ldd /usr/local/bin/tailjet; "
                   "for t in gcc cc cmake make; do command -v $t || true; done")
    lines = out.splitlines()
    check(lines and lines[0] == "tailjet", "the container runs as %r, not tailjet" %
          (lines[:1],))
    check(not [ln for ln in lines if "not found" in ln],
          "libraries missing in the image:\n%s" % out)
    tools = [ln for ln in lines if ln.startswith("/") and "=>" not in ln and ".so" not in ln]
    check(not tools, "build tools left in the runtime image: %s" % tools)


# ------------------------------------------------------------------------------------------
# 3. The stack


def deploy_stack(d):
    t0 = time.monotonic()
    d.docker("network", "create", "--driver", "overlay", "monitor")  # the README's command
    token = os.path.join(d.dir, "label-token")
    with open(token, "w") as f:
        f.write(secrets.token_hex(32) + "\n")
    d.docker("secret", "create", "tailjet_label_token", token)  # the README's, from a file
    env_before = dict(os.environ)
    os.environ.pop("TAILJET_OUTPUT", None)  # the stack's default output, not the caller's
    os.environ.pop("TAILJET_IMAGE", None)
    os.environ["TAILJET_DOCKER_SOCKET"] = d.sock
    os.environ["TAILJET_DOCKER_ROOT"] = d.root
    try:
        d.docker("stack", "deploy", "--resolve-image", "never", "-c", STACK, STACK_NAME,
                 timeout=120)
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    step("docker stack deploy -c deploy/stack.yml tailjet", t0)


def arg_value(args, name):
    for i, a in enumerate(args):
        if a == name and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(name + "="):
            return a[len(name) + 1:]
    return None


def check_service_spec(d):
    """The deployed service as the stack file means it. Returns (scrape port, metrics path)."""
    spec = d.inspect(SERVICE, "service")["Spec"]
    check("Global" in spec.get("Mode", {}), "mode %r, not global" % spec.get("Mode"))
    cs = spec["TaskTemplate"]["ContainerSpec"]
    labels = spec.get("Labels") or {}
    check(labels.get("com.df.notify") == "true", "service label com.df.notify=true missing: %r"
          % labels)
    port = labels.get("com.df.scrapePort", "")
    path = labels.get("com.df.metricsPath") or "/metrics"
    check(port.isdigit(), "service label com.df.scrapePort=%r is not a port" % port)
    addr = arg_value(cs.get("Args") or [], "--metrics-addr") or ""
    check(addr in ("0.0.0.0:" + port, ":" + port),
          "--metrics-addr %r does not listen on every interface at com.df.scrapePort %s: "
          "Prometheus could not scrape it over the network" % (addr, port))
    host = arg_value(cs.get("Args") or [], "--docker-host")
    check(host == "unix:///var/run/docker.sock", "--docker-host %r" % host)
    mounts = {m["Target"]: m for m in cs.get("Mounts") or []}
    sock = mounts.get("/var/run/docker.sock")
    check(sock and sock.get("Type") == "bind" and sock.get("ReadOnly") and
          sock.get("Source") == d.sock, "the Docker socket mount: %r" % sock)
    ctr = os.path.join(d.root, "containers")
    cm = mounts.get(ctr)
    check(cm and cm.get("Type") == "bind" and cm.get("ReadOnly") and cm.get("Source") == ctr,
          "the containers directory is not mounted read-only at its own path %s: %r" %
          (ctr, list(mounts.values())))
    st = mounts.get("/var/lib/tailjet")
    check(st and st.get("Type") == "volume" and not st.get("ReadOnly"),
          "the state volume at /var/lib/tailjet: %r" % st)
    hc = (cs.get("Healthcheck") or {}).get("Test") or []
    check(any("127.0.0.1:%s/health" % port in t for t in hc),
          "the health check %r does not ask /health on port %s" % (hc, port))
    check(cs.get("User") == "0:0", "user %r (see the stack file's comment)" % cs.get("User"))
    check(cs.get("CapabilityDrop") == ["ALL"], "capabilities not dropped: %r" %
          cs.get("CapabilityDrop"))
    check(cs.get("ReadOnly") is True, "the root file system is not read-only")
    nets = [n.get("Target") for n in spec["TaskTemplate"].get("Networks") or []]
    monitor = d.inspect("monitor", "network")["Id"]
    check(monitor in nets, "the service is not on the monitor network: %r" % nets)
    return int(port), path


def wait_healthy(d):
    t0 = time.monotonic()
    state = {}

    def healthy():
        state["tasks"] = d.service_tasks(SERVICE)
        for t in state["tasks"]:
            if t["state"] == "running" and t["container"]:
                h = d.inspect(t["container"], "container")["State"].get("Health") or {}
                state["health"] = h
                if h.get("Status") == "healthy":
                    return t["container"]
        return None

    try:
        cid = wait_until(healthy, HEALTHY_TIMEOUT, "the tailjet task running and healthy",
                         interval=1.0)
    except TestFailure:
        logs = d.docker_rc("service", "logs", "--raw", SERVICE)
        fail("the tailjet task is not healthy after %.0f s: tasks %r, health %s; its logs:\n%s"
             % (HEALTHY_TIMEOUT, state.get("tasks"), json.dumps(state.get("health"))[:1500],
                (logs[1] + logs[2])[-3000:]))
    step("tailjet's task running and healthy (Docker's health check: curl /health)", t0)
    last = (state["health"].get("Log") or [{}])[-1]
    check(last.get("ExitCode") == 0 and last.get("Output") == "ok\n",
          "the last health check: %r" % last)
    return cid


# ------------------------------------------------------------------------------------------
# 4. Records of a labeled service


def sh_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def start_web(d):
    script = "printf '%%s\\n' %s; exec sleep 3600" % " ".join(
        sh_quote(x) for x in WEB_LINES[:10] + [ODD_LINE] + WEB_LINES[10:])
    d.docker("service", "create", "--detach", "--no-resolve-image", "--name", "web",
             "--label", "logPattern=%{COMBINEDAPACHELOG}", IMAGE, "sh", "-c", script)
    cid = d.wait_service_container("web")
    lines = d.wait_log_lines(cid, len(WEB_LINES) + 1)
    return cid, lines


def complete_records(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return []
    res = []
    for ln in data.split(b"\n")[:-1]:  # a last line without "\n" is still being written
        try:
            res.append(json.loads(ln))
        except ValueError:
            fail("a line of %s is not JSON: %r" % (path, ln[:300]))
    return res


def check_records(d, web_cid, lines):
    t0 = time.monotonic()
    out = os.path.join(d.inspect("%s_state" % STACK_NAME, "volume")["Mountpoint"],
                       "records.ndjson")
    log_path = d.log_path(web_cid)
    entries = d.log_entries(web_cid)
    want = {e["offset"]: e["log"].rstrip("\n") for e in entries}

    def web_records():
        recs = [r for r in complete_records(out) if sub(r, "container", "id") == web_cid]
        return recs if len(recs) >= len(want) else None

    recs = wait_until(web_records, RECORDS_TIMEOUT,
                      "%d records of web in %s (the stack's default output)" % (len(want), out),
                      interval=0.5)
    step("web's %d lines out as records" % len(want), t0)
    offsets = [sub(r, "log", "offset") for r in recs]
    check(sorted(offsets) == sorted(want), "web's records have offsets %s, its log %s "
          "(each line exactly once)" % (sorted(offsets), sorted(want)))
    web_id = d.inspect("web", "service")["ID"]
    node = d.docker("node", "inspect", "self", "--format", "{{.Description.Hostname}}")
    statuses = {ln: int(ln.split('" ')[1].split()[0]) for ln in WEB_LINES}
    for r in recs:
        msg = want.get(sub(r, "log", "offset"))
        meta = [
            (r.get("message") == msg, "message is the line"),
            (sub(r, "service", "name") == "web", "service.name web"),
            (sub(r, "service", "id") == web_id, "service.id"),
            ((sub(r, "container", "name") or "").startswith("web.1."), "container.name"),
            (sub(r, "host", "name") == node, "host.name %r (the node)" % node),
            (sub(r, "log", "file", "path") == log_path, "log.file.path on the node"),
            (r.get("stream") == "stdout", "stream")]
        if msg == ODD_LINE:
            fields = [(r.get("tags") == ["_grokparsefailure"], "tags [_grokparsefailure]"),
                      ("http" not in r, "no extracted field")]
        else:
            fields = [
                ("tags" not in r, "no tags"),
                (sub(r, "source", "address") == msg.split()[0], "source.address"),
                (sub(r, "http", "request", "method") in ("GET", "POST"), "http.request.method"),
                (sub(r, "http", "response", "status_code") == statuses.get(msg),
                 "http.response.status_code as a number"),
                (isinstance(sub(r, "http", "response", "body", "bytes"), int),
                 "http.response.body.bytes as a number"),
                ((sub(r, "url", "original") or "").startswith("/shop/item/"), "url.original"),
                ((sub(r, "user_agent", "original") or "").startswith("Mozilla/5.0"),
                 "user_agent.original")]
        bad = [what for ok, what in meta + fields if not ok]
        check(not bad, "a record of web fails %s: %s" % (", ".join(bad), json.dumps(r)[:800]))
    check(len(lines) == len(WEB_LINES) + 1, "web wrote %d lines" % len(lines))
    check(os.path.exists(os.path.join(os.path.dirname(out), "checkpoints")),
          "no checkpoints in the state volume")
    log("  records: %d of web, each once, parsed with its service's metadata; the odd line "
        "tagged _grokparsefailure" % len(recs))


# ------------------------------------------------------------------------------------------
# 5. A label-driven Prometheus


def dfm_jobs(d):
    """The scrape jobs Docker Flow Monitor makes from service labels (prometheus/config.go:
    services with com.df.notify=true; DNS discovery of tasks.<service> on com.df.scrapePort;
    metrics_path from com.df.metricsPath, /metrics by default)."""
    jobs = []
    for name in d.docker("service", "ls", "--filter", "label=com.df.notify=true",
                         "--format", "{{.Name}}").split():
        labels = d.inspect(name, "service")["Spec"].get("Labels") or {}
        if labels.get("com.df.scrapePort"):
            jobs.append((name, int(labels["com.df.scrapePort"]),
                         labels.get("com.df.metricsPath") or "/metrics"))
    return jobs


def prom_config(jobs):
    text = "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n"
    for name, port, path in jobs:
        text += ("  - job_name: %s\n    metrics_path: %s\n    dns_sd_configs:\n"
                 "      - names: [tasks.%s]\n        type: A\n        port: %d\n"
                 "        refresh_interval: 1s\n" % (name, path, name, port))
    return text


def check_prometheus(d, port, path):
    t0 = time.monotonic()
    check(os.access(PROMETHEUS, os.X_OK),
          "%s is not installed: install Debian's prometheus package (scripts/setup.sh)" %
          PROMETHEUS)
    jobs = dfm_jobs(d)
    check(jobs == [(SERVICE, port, path)], "services Docker Flow Monitor would scrape: %r" % jobs)
    pdir = os.path.join(d.dir, "prometheus")
    os.makedirs(os.path.join(pdir, "data"))
    with open(os.path.join(pdir, "prometheus.yml"), "w") as f:
        f.write(prom_config(jobs))
    d.docker("service", "create", "--detach", "--no-resolve-image", "--name", "prometheus",
             "--network", "monitor", "--user", "0:0",
             "--mount", "type=bind,src=%s,dst=/usr/local/bin/prometheus,readonly" % PROMETHEUS,
             "--mount", "type=bind,src=%s,dst=/prom" % pdir,
             "--entrypoint", "prometheus", IMAGE_TAG, "--config.file=/prom/prometheus.yml",
             "--storage.tsdb.path=/prom/data", "--web.listen-address=127.0.0.1:9090")
    pcid = d.wait_service_container("prometheus")

    def api(what, **params):
        url = "http://127.0.0.1:9090/api/v1/%s?%s" % (what, urllib.parse.urlencode(params))
        rc, out, err = d.docker_rc("exec", pcid, "curl", "-sS", "--max-time", "5", url)
        if rc != 0:
            return None
        try:
            r = json.loads(out)
        except ValueError:
            return None
        return r.get("data") if r.get("status") == "success" else None

    def target_up():
        data = api("targets")
        ts = (data or {}).get("activeTargets") or []
        if len(ts) == 1 and ts[0].get("health") == "up":
            return ts[0]
        last[0] = ts
        return None

    last = [None]
    try:
        target = wait_until(target_up, PROM_TIMEOUT, "Prometheus' target up", interval=1.0)
    except TestFailure:
        logs = d.docker_rc("service", "logs", "--raw", "prometheus")
        fail("Prometheus does not scrape tailjet: targets %r; its logs:\n%s" %
             (last[0], (logs[1] + logs[2])[-2000:]))
    check(target["scrapeUrl"].endswith(":%d%s" % (port, path)) and not target.get("lastError"),
          "target %r" % target)
    want = {"matched": len(WEB_LINES), "unmatched": 1}

    def counts():
        q = 'tailjet_records_total{job="%s",service="web"}' % SERVICE
        res = (api("query", query=q) or {}).get("result") or []
        got = {x["metric"].get("result"): int(float(x["value"][1])) for x in res}
        last[0] = got
        return got if all(got.get(k) == v for k, v in want.items()) else None

    wait_until(counts, PROM_TIMEOUT, "tailjet_records_total of web in Prometheus: %r" % want,
               interval=1.0)
    up = (api("query", query='tailjet_discovery_connected{job="%s"}' % SERVICE) or {})
    vals = [x["value"][1] for x in up.get("result") or []]
    check(vals == ["1"], "tailjet_discovery_connected in Prometheus: %r" % vals)
    step("Prometheus (Docker Flow Monitor's job from the labels) scrapes %s over the overlay "
         "network" % target["scrapeUrl"], t0)
    # Workers will ask the managers' tailjets for service labels at http://tasks.tailjet:9284
    # (the stack file's commented --label-source): the stack's service name is an alias on the
    # monitor network, so that name finds the same tasks as tasks.tailjet_tailjet.
    ip = urllib.parse.urlparse(target["scrapeUrl"]).hostname
    rc, out, err = d.docker_rc("exec", pcid, "getent", "ahostsv4", "tasks.tailjet")
    check(rc == 0 and ip in out.split(), "tasks.tailjet does not resolve to the task %s on the "
          "monitor network (what --label-source will use): %r %r" % (ip, out, err))


def check_label_table(d, tj_cid):
    """The stack's manager task serves the label table at tasks.tailjet:9284 with the secret's
    token (what a worker's --label-source asks), and refuses it without."""
    t0 = time.monotonic()
    ask = ('curl -sS -o /dev/null -w "%{http_code}" http://tasks.tailjet:9284/v1/services; echo; '
           'curl -sS --fail-with-body -H "Authorization: Bearer $(cat '
           '/run/secrets/tailjet_label_token)" http://tasks.tailjet:9284/v1/services')
    rc, out, err = d.docker_rc("exec", tj_cid, "sh", "-c", ask)
    check(rc == 0, "asking the label table from the tailjet task failed: %r %r" % (out, err))
    first, _, body = out.partition("\n")
    check(first.strip() == "401", "without the token the table answered %r" % first)
    table = json.loads(body)
    web = [x for x in table["services"] if x["name"] == "web"]
    check(web and web[0]["labels"] == {"logPattern": "%{COMBINEDAPACHELOG}"},
          "the label table's entry for web: %r" % web)
    step("the manager's tailjet serves the label table at tasks.tailjet:9284 with the token",
         t0)


# ------------------------------------------------------------------------------------------
# 6. Stop


def check_stop(d, cid):
    t0 = time.monotonic()
    since = time.time() - 1
    d.docker("stack", "rm", STACK_NAME)

    def died():
        ev = d.events(since, filters=("container=" + cid, "event=die"))
        return ev[-1] if ev else None

    ev = wait_until(died, STOP_TIMEOUT, "tailjet's container to stop after `docker stack rm`",
                    interval=0.5)
    code = ev.get("Actor", {}).get("Attributes", {}).get("exitCode")
    check(code == "0", "tailjet exited with status %s after SIGTERM (0: drained and stopped in "
          "the grace period)" % code)
    step("docker stack rm tailjet: tailjet drained and exited 0", t0)


# ------------------------------------------------------------------------------------------
# 7. The README's `docker run`


def readme_docker_run():
    """The README's `docker run -d --name tailjet ...` command (continuation lines joined), as
    an argv list without the leading `docker`."""
    with open(os.path.join(REPO, DEPLOY_DOC)) as f:
        lines = f.read().splitlines()
    for i, ln in enumerate(lines):
        if ln.startswith("docker run -d --name tailjet "):
            cmd = ln
            while cmd.endswith("\\"):
                i += 1
                cmd = cmd[:-1] + " " + lines[i].strip()
            return shlex.split(cmd)[1:]
    fail("%s has no `docker run -d --name tailjet ...` command" % DEPLOY_DOC)


def check_docker_run(d, web_cid):
    """Runs the README's command with the host paths pointing at the private engine (and
    --network none: this engine has no bridge); web's records must come out in its volume and
    the container must be healthy."""
    t0 = time.monotonic()
    argv = readme_docker_run()
    node = d.docker("node", "inspect", "self", "--format", "{{.Description.Hostname}}")
    ctr = os.path.join(d.root, "containers")
    subst = {"$(hostname)": node,
             "/var/run/docker.sock:/var/run/docker.sock:ro": "%s:/var/run/docker.sock:ro" % d.sock,
             "/var/lib/docker/containers:/var/lib/docker/containers:ro": "%s:%s:ro" % (ctr, ctr)}
    used = set()
    for i, a in enumerate(argv):
        if a in subst:
            argv[i] = subst[a]
            used.add(a)
    check(used == set(subst), "the README's docker run lacks %s: %r" % (set(subst) - used, argv))
    vols = [argv[i + 1] for i, a in enumerate(argv[:-1]) if a == "-v"]
    state = [v.split(":")[0] for v in vols if v.split(":")[1] == "/var/lib/tailjet"]
    check(len(state) == 1, "the README's docker run has no state volume: %r" % vols)
    cid = d.docker(*([argv[0], "--network", "none"] + argv[1:])).splitlines()[-1]
    out = os.path.join(d.inspect(state[0], "volume")["Mountpoint"], "records.ndjson")
    want = len(d.log_entries(web_cid))

    def ok():
        st = d.inspect(cid, "container")["State"]
        if st.get("Status") != "running":
            fail("the README's docker run: the container is %s; its logs:\n%s" %
                 (st.get("Status"), d.docker_rc("logs", cid)[2][-2000:]))
        recs = [r for r in complete_records(out) if sub(r, "container", "id") == web_cid]
        healthy = (st.get("Health") or {}).get("Status") == "healthy"
        return (recs, healthy) if len(recs) >= want and healthy else None

    recs, _ = wait_until(ok, HEALTHY_TIMEOUT, "the README's docker run: %d records of web in "
                         "its volume and the container healthy" % want, interval=1.0)
    check(sorted(sub(r, "log", "offset") for r in recs) ==
          sorted(e["offset"] for e in d.log_entries(web_cid)),
          "the README's docker run: web's records are not its lines, each once")
    check(all(sub(r, "service", "name") == "web" and sub(r, "host", "name") == node and
              "source" in r for r in recs if r.get("message") != ODD_LINE),
          "the README's docker run: records without their metadata or fields")
    step("the README's docker run: healthy, web's %d records in its volume" % len(recs), t0)


def main(tailjet):
    t_all = time.monotonic()
    for tool in ("docker", "dockerd"):
        check(shutil.which(tool) or os.path.exists("/usr/sbin/" + tool),
              "%s is not installed: install Debian's docker.io (scripts/setup.sh)" % tool)
    t0 = time.monotonic()
    tar, cold, tmp_cache = base_tarball()
    step("base tarball (%s)" % ("debootstrap, cold" if cold else "cached"), t0)
    d = None
    try:
        t0 = time.monotonic()
        d = Dockerd("pkg")
        d.docker("import", tar, BASE_TAG, timeout=300)
        step("private engine started, base imported", t0)
        build_image(d, tailjet)
        d.swarm_init()
        deploy_stack(d)
        port, path = check_service_spec(d)
        tj_cid = wait_healthy(d)
        t0 = time.monotonic()
        web_cid, lines = start_web(d)
        step("service web (logPattern=%{COMBINEDAPACHELOG}) wrote its lines", t0)
        check_records(d, web_cid, lines)
        check_prometheus(d, port, path)
        check_label_table(d, tj_cid)
        check_stop(d, tj_cid)
        check_docker_run(d, web_cid)
    except DockerError as e:
        fail("Docker: %s" % e)
    finally:
        if d is not None:
            t0 = time.monotonic()
            d.stop()
            step("private engine stopped and removed", t0)
        if tmp_cache:
            shutil.rmtree(tmp_cache, ignore_errors=True)
    log("timings: %s; total %.0f s" % ("; ".join("%s %.0f s" % (w.split(" (")[0], s)
                                                 for w, s in TIMES),
                                       time.monotonic() - t_all))


if __name__ == "__main__":
    main_wrapper(main)
