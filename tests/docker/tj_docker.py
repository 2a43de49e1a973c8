"""A private Docker engine for tailjet's tests (Python 3 stdlib only).

    with Dockerd() as d:            # starts dockerd with DESIGN.md's flags, imports bb:1
        cid = d.run("c1", ["sh", "-c", "echo hi; sleep 600"], labels={"logPattern": "..."})
        d.wait_log_lines(cid, 1)
        d.log_entries(cid)          # the json-file entries, read from LogPath (and its .N files)
        d.restart()                 # SIGTERM, wait, start again on the same dirs
        d.swarm_init()              # docker swarm init --advertise-addr 127.0.0.1
        d.docker("service", "create", ...)

- Everything lives in one short temp dir D=/tmp/tjdXXXXXXXX (unix socket paths are limited to
  108 bytes): D/root (data-root), D/exec (exec-root), D/docker.sock, D/pid, D/dockerd.log, D/bb.
- start() waits until `docker -H unix://D/docker.sock version` answers (60 s) and raises
  DockerError with the end of dockerd.log otherwise: a test that needs Docker FAILS when the
  daemon cannot start, it never skips.
- stop() leaves the swarm, removes services and containers, SIGTERMs dockerd by its pid (SIGKILL
  after 30 s), kills by pid every containerd / containerd-shim / runc / container process that
  still refers to D (and their descendants), unmounts whatever is mounted under D, rm -rf D.
- Containers run with --network none --log-driver json-file.

Also: docker_rc() (status, stdout, stderr without raising), inspect(), log_path(),
log_files() (LogPath and its rotated .N files), log_entries()/log_lines()/wait_log_lines()
(the json-file truth with path and offset of each line), hold_log() (keeps the LogPath open so
it can be read after Docker deleted it with the container), wait_state(), rm(), rm_all(),
events(since, until, filters), swarm_join(manager) (a second Dockerd as a worker on 127.0.0.2),
swarm_leave(), service_tasks(), wait_service_container(), leftover_pids(), mounts().

Measured on this engine (dockerd 20.10.24, API 1.41, vfs, --bridge=none; docker CLI 28):
- dockerd answers in ~0.2 s; importing bb:1 takes ~0.2 s; `docker run -d` ~0.2-0.3 s.
- Stopping dockerd (or `service rm`) takes ~11 s with a `sh -c` container: sh as PID 1
  ignores SIGTERM, so the engine waits the 10 s stop timeout and kills it; the container keeps
  writing meanwhile. Without live-restore, a container without a restart policy is left
  "exited" after a daemon restart; --restart always ones start again and append to the SAME
  json-file log (same id, same LogPath; the numbering of `i` restarts at 1).
- LogPath = D/root/containers/<id>/<id>-json.log; `docker rm` deletes the whole dir (the
  log included), hence hold_log(). Mounts under D while running: D/root (private bind) and
  D/exec/netns/* (one per container, and ingress_sbox / 1-<id> in swarm mode).
- containerd-shim-runc-v2 processes are re-parented to PID 1, not children of dockerd: stop()
  finds them by D in their command line.
- Swarm: services run with --bridge=none and no --network flag (task containers get
  NetworkMode "default", the ingress overlay network is created anyway). swarm init must use a
  free --listen-addr port and a --data-path-port in 1024-49151 when another engine on the
  machine already holds 2377/4789. Task containers are named /SVC.SLOT.TASKID, carry only the
  com.docker.swarm.* labels (not the service's --label ones; --container-label ones do),
  Config.Image is "bb:1" (no digest: no registry). `service update --label-add` does not
  restart the task (same container, same StartedAt) and emits a service "update" event.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

DOCKERD = shutil.which("dockerd") or "/usr/sbin/dockerd"
DOCKER = shutil.which("docker") or "/usr/bin/docker"
BUSYBOX = "/bin/busybox"
IMAGE = "bb:1"
BB_LINKS = ("sh", "echo", "seq", "sleep", "cat", "printf", "true", "date", "head", "yes")

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
CLI_TIMEOUT = 60.0


class DockerError(Exception):
    """The engine or the docker CLI failed (an infrastructure failure: the test fails)."""


def _log(msg):
    print(msg, flush=True)


def _tail(path, lines=30):
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 64 * 1024))
            text = f.read().decode("utf-8", "replace")
    except OSError as e:
        return "    (cannot read %s: %s)" % (path, e)
    ls = text.splitlines()[-lines:]
    return "\n".join("    " + ln[:400] for ln in ls) if ls else "    (empty)"


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            st = f.read()
    except OSError:
        return False
    # A zombie (state Z) is dead for our purpose.
    return st[st.rfind(")") + 2:][:1] != "Z"


def _proc_table():
    """{pid: (ppid, cmdline)} of every process."""
    res = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        pid = int(name)
        try:
            with open("/proc/%d/stat" % pid) as f:
                st = f.read()
            ppid = int(st[st.rfind(")") + 2:].split()[1])
            with open("/proc/%d/cmdline" % pid, "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except (OSError, ValueError, IndexError):
            continue
        res[pid] = (ppid, cmd)
    return res


def _free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Dockerd:
    """One private dockerd. Use as a context manager (stop() also on failure)."""

    def __init__(self, name="d", image=True, start=True, extra_flags=()):
        # Short prefix: D/docker.sock and D/exec/containerd/containerd.sock stay far below 108.
        self.dir = tempfile.mkdtemp(prefix="tj%s" % name[:3], dir="/tmp")
        self.root = os.path.join(self.dir, "root")
        self.exec_root = os.path.join(self.dir, "exec")
        self.sock = os.path.join(self.dir, "docker.sock")
        self.host = "unix://" + self.sock
        self.pidfile = os.path.join(self.dir, "pid")
        self.logfile = os.path.join(self.dir, "dockerd.log")
        self.extra_flags = list(extra_flags)
        self.proc = None
        self.starts = 0
        self.swarm = False
        self.image_built = False
        self.want_image = image
        if start:
            try:
                self.start()
                if image:
                    self.build_image()
            except BaseException:
                self.stop()
                raise

    # --------------------------------------------------------------------------------------
    # Daemon life cycle

    def argv(self):
        return [DOCKERD, "--data-root", self.root, "--exec-root", self.exec_root,
                "-H", self.host, "--pidfile", self.pidfile, "--iptables=false",
                "--ip-masq=false", "--bridge=none", "--storage-driver=vfs"] + self.extra_flags

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def start(self, timeout=START_TIMEOUT):
        """Starts dockerd (logging to D/dockerd.log) and waits until the API answers."""
        if self.proc is not None and self.proc.poll() is None:
            raise DockerError("dockerd (pid %d) is already running" % self.proc.pid)
        self.starts += 1
        with open(self.logfile, "ab") as lf:
            lf.write(("\n===== tj_docker: start #%d: %s\n" %
                      (self.starts, " ".join(self.argv()))).encode())
            lf.flush()
            env = dict(os.environ)
            env.pop("DOCKER_HOST", None)
            self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL, stdout=lf,
                                         stderr=lf, env=env, start_new_session=True)
        t0 = time.monotonic()
        deadline = t0 + timeout
        last = ""
        while True:
            rc = self.proc.poll()
            if rc is not None:
                raise DockerError("dockerd exited with status %d while starting; end of %s:\n%s"
                                  % (rc, self.logfile, _tail(self.logfile)))
            if os.path.exists(self.sock):
                r = self._cli(["version", "--format", "{{.Server.Version}} {{.Server.APIVersion}}"],
                              timeout=10, check=False)
                if r.returncode == 0:
                    self.version = r.stdout.decode().strip()
                    self.started_in = time.monotonic() - t0
                    return self.version
                last = (r.stderr or b"").decode(errors="replace").strip()
            if time.monotonic() >= deadline:
                raise DockerError("dockerd (pid %d) did not answer `docker version` within "
                                  "%.0f s (last error: %s); end of %s:\n%s" %
                                  (self.proc.pid, timeout, last[-300:], self.logfile,
                                   _tail(self.logfile)))
            time.sleep(0.1)

    def _sigterm_wait(self, timeout=STOP_TIMEOUT):
        """SIGTERM dockerd by pid, wait for its exit (SIGKILL after timeout). Returns seconds."""
        if self.proc is None:
            return 0.0
        t0 = time.monotonic()
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _log("tj_docker: dockerd (pid %d) still running %.0f s after SIGTERM: SIGKILL"
                     % (self.proc.pid, timeout))
                try:
                    os.kill(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait(timeout=10)
        return time.monotonic() - t0

    def restart(self, timeout=START_TIMEOUT, between=None):
        """Stops dockerd (SIGTERM by pid, waits for the exit) and starts it again on the same
        dirs. `between`: optional callable run while the daemon is down. Returns (seconds
        down, seconds to stop)."""
        t0 = time.monotonic()
        stop_secs = self._sigterm_wait()
        # containerd is dockerd's child and exits with it; make sure before starting again.
        self._wait_containerd_gone(10.0)
        if between:
            between()
        self.start(timeout)
        return time.monotonic() - t0, stop_secs

    def _wait_containerd_gone(self, timeout):
        deadline = time.monotonic() + timeout
        conf = os.path.join(self.exec_root, "containerd")
        while time.monotonic() < deadline:
            if not [p for p, (pp, cmd) in _proc_table().items()
                    if cmd.startswith("containerd ") and conf in cmd]:
                return
            time.sleep(0.1)

    def stop(self):
        """Leaves the swarm, removes services/containers, stops dockerd by pid, kills what it
        left behind (by pid), unmounts under D, removes D. Never raises."""
        errors = []
        if self.proc is not None and self.proc.poll() is None:
            try:
                if self.swarm:
                    self._cli(["swarm", "leave", "--force"], timeout=30, check=False)
                    self.swarm = False
                ids = self._cli(["ps", "-aq"], timeout=20, check=False).stdout.decode().split()
                if ids:
                    self._cli(["rm", "-f"] + ids, timeout=60, check=False)
            except Exception as e:  # keep going: the daemon must stop anyway
                errors.append("cleanup through the API: %s" % e)
            try:
                self._sigterm_wait()
            except Exception as e:
                errors.append("stopping dockerd: %s" % e)
        self._kill_leftovers()
        self._unmount_all()
        if os.environ.get("TJ_KEEP_TMP"):
            _log("kept %s (TJ_KEEP_TMP)" % self.dir)
        else:
            shutil.rmtree(self.dir, ignore_errors=True)
            if os.path.exists(self.dir):
                errors.append("could not remove %s" % self.dir)
        for e in errors:
            _log("tj_docker: warning: %s" % e)

    def leftover_pids(self):
        """Processes that belong to this engine: any whose command line names D (containerd,
        containerd-shim-runc-v2 -address D/exec/..., runc --root D/exec/...), plus all their
        descendants (the containers' processes)."""
        table = _proc_table()
        me = os.getpid()
        roots = {pid for pid, (ppid, cmd) in table.items()
                 if self.dir in cmd and pid != me and (self.proc is None or pid != self.proc.pid
                                                       or self.proc.poll() is not None)}
        children = {}
        for pid, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        res, todo = set(), list(roots)
        while todo:
            p = todo.pop()
            if p in res or p == me or p == 1:
                continue
            res.add(p)
            todo.extend(children.get(p, ()))
        return {p: table[p][1] for p in res if p in table}

    def _kill_leftovers(self):
        for attempt in range(3):
            left = self.leftover_pids()
            if not left:
                return
            for pid, cmd in sorted(left.items()):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and any(_alive(p) for p in left):
                time.sleep(0.05)
        left = self.leftover_pids()
        if left:
            _log("tj_docker: warning: processes of %s still alive: %s" % (self.dir, left))

    def mounts(self):
        res = []
        with open("/proc/mounts") as f:
            for ln in f:
                parts = ln.split()
                if len(parts) >= 2:
                    mp = parts[1].encode().decode("unicode_escape")  # \040 for spaces
                    if mp == self.dir or mp.startswith(self.dir + "/"):
                        res.append(mp)
        return res

    def _unmount_all(self):
        for attempt in range(5):
            mps = self.mounts()
            if not mps:
                return
            for mp in sorted(set(mps), key=len, reverse=True):  # deepest first
                r = subprocess.run(["umount", mp], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
                if r.returncode != 0:
                    subprocess.run(["umount", "-l", mp], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        if self.mounts():
            _log("tj_docker: warning: still mounted under %s: %s" % (self.dir, self.mounts()))

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is not None:
            _log("--- end of %s:\n%s" % (self.logfile, _tail(self.logfile, 15)))
        self.stop()
        return False

    def log_tail(self, lines=30):
        return _tail(self.logfile, lines)

    # --------------------------------------------------------------------------------------
    # The docker CLI

    def _cli(self, args, timeout=CLI_TIMEOUT, check=True, input=None):
        env = dict(os.environ)
        for k in ("DOCKER_HOST", "DOCKER_CONTEXT", "DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
            env.pop(k, None)
        argv = [DOCKER, "-H", self.host] + list(args)
        try:
            r = subprocess.run(argv, stdin=subprocess.PIPE if input is not None
                               else subprocess.DEVNULL, input=input, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout, env=env)
        except subprocess.TimeoutExpired:
            raise DockerError("`docker %s` did not finish within %.0f s; end of %s:\n%s" %
                              (" ".join(args), timeout, self.logfile, _tail(self.logfile, 10)))
        if check and r.returncode != 0:
            raise DockerError("`docker %s` failed (status %d): %s" %
                              (" ".join(args), r.returncode,
                               r.stderr.decode(errors="replace").strip()[-1500:]))
        return r

    def docker(self, *args, timeout=CLI_TIMEOUT, input=None):
        """Runs `docker -H unix://D/docker.sock ARGS`; raises DockerError on failure; returns
        stdout (str, stripped)."""
        return self._cli(args, timeout=timeout, input=input).stdout.decode().strip()

    def docker_rc(self, *args, timeout=CLI_TIMEOUT):
        """(status, stdout, stderr) without raising."""
        r = self._cli(args, timeout=timeout, check=False)
        return r.returncode, r.stdout.decode().strip(), r.stderr.decode(errors="replace").strip()

    # --------------------------------------------------------------------------------------
    # The busybox image

    def build_image(self, tag=IMAGE):
        """Imports busybox as `bb:1` (once per daemon: its data-root keeps it across restarts)."""
        if self.image_built:
            return tag
        bb = os.path.join(self.dir, "bb")
        shutil.rmtree(bb, ignore_errors=True)
        os.makedirs(os.path.join(bb, "bin"))
        os.makedirs(os.path.join(bb, "tmp"))
        shutil.copy2(BUSYBOX, os.path.join(bb, "bin", "busybox"))
        for name in BB_LINKS:
            os.symlink("busybox", os.path.join(bb, "bin", name))
        tar = os.path.join(self.dir, "bb.tar")
        subprocess.run(["tar", "-C", bb, "-cf", tar, "."], check=True)
        self.docker("import", "--change", "ENV PATH=/bin", tar, tag, timeout=120)
        self.image_built = True
        return tag

    # --------------------------------------------------------------------------------------
    # Containers

    def run(self, name, cmd, labels=None, image=IMAGE, extra=(), detach=True):
        """docker run -d --network none --log-driver json-file [--name NAME] [--label K=V]...
        IMAGE CMD...; returns the full container id."""
        args = ["run"]
        if detach:
            args.append("-d")
        args += ["--network", "none", "--log-driver", "json-file"]
        if name:
            args += ["--name", name]
        for k, v in (labels or {}).items():
            args += ["--label", "%s=%s" % (k, v)]
        args += list(extra)
        args.append(image)
        args += list(cmd)
        out = self.docker(*args)
        return out.splitlines()[-1].strip() if detach else out

    def inspect(self, what, kind=None):
        args = ["inspect"]
        if kind:
            args += ["--type", kind]
        return json.loads(self.docker(*(args + [what])))[0]

    def container_id(self, name):
        return self.inspect(name, "container")["Id"]

    def log_path(self, cid):
        p = self.inspect(cid, "container").get("LogPath")
        if not p:
            raise DockerError("container %s has no LogPath" % cid)
        return p

    def log_files(self, cid_or_path):
        """The json-file log of a container and its rotated files (.1, .2, ...), oldest first."""
        p = cid_or_path if cid_or_path.startswith("/") else self.log_path(cid_or_path)
        rotated = []
        d, base = os.path.split(p)
        try:
            for n in os.listdir(d):
                if n.startswith(base + ".") and n[len(base) + 1:].isdigit():
                    rotated.append((int(n[len(base) + 1:]), os.path.join(d, n)))
        except FileNotFoundError:
            pass
        return [q for _, q in sorted(rotated, reverse=True)] + ([p] if os.path.exists(p) else [])

    def log_entries(self, cid_or_path, complete_only=True):
        """json-file entries of a container, from its LogPath files directly (the truth):
        list of dicts {"log", "stream", "time", "path", "offset"} in file order."""
        res = []
        for p in self.log_files(cid_or_path):
            with open(p, "rb") as f:
                data = f.read()
            res += parse_json_file(data, p, complete_only)
        return res

    def log_lines(self, cid_or_path):
        """The lines of a container's log (json-file `log` without the trailing newline)."""
        return [e["log"][:-1] if e["log"].endswith("\n") else e["log"]
                for e in self.log_entries(cid_or_path)]

    def wait_log_lines(self, cid, n, timeout=30.0):
        """Waits until the container's json-file log holds at least n lines; returns them."""
        path = self.log_path(cid)
        deadline = time.monotonic() + timeout
        while True:
            lines = self.log_lines(path)
            if len(lines) >= n:
                return lines
            if time.monotonic() >= deadline:
                raise DockerError("container %s wrote %d lines in %.0f s, expected %d: %r" %
                                  (cid[:12], len(lines), timeout, n, lines[-5:]))
            time.sleep(0.05)

    def wait_state(self, cid, status="running", timeout=30.0):
        deadline = time.monotonic() + timeout
        while True:
            st = self.inspect(cid, "container")["State"]
            if st.get("Status") == status:
                return st
            if time.monotonic() >= deadline:
                raise DockerError("container %s is %s after %.0f s, expected %s" %
                                  (cid[:12], st.get("Status"), timeout, status))
            time.sleep(0.1)

    def rm(self, *ids):
        if ids:
            self.docker("rm", "-f", *ids)

    def rm_all(self):
        """Removes every service (in swarm mode) and every container (rm -f: SIGKILL)."""
        if self.swarm:
            svcs = self.docker("service", "ls", "-q").split()
            if svcs:
                self.docker("service", "rm", *svcs)
        ids = self.docker("ps", "-aq").split()
        if ids:
            self.docker("rm", "-f", *ids)

    def hold_log(self, cid):
        """Opens the container's LogPath and keeps the descriptor: the file can still be read
        (HeldLog.entries()) after Docker deleted it with the container."""
        return HeldLog(self.log_path(cid))

    def events(self, since, until=None, filters=()):
        """Engine events between two times (unix seconds, floats) as dicts; filters like
        ("type=service", "event=update")."""
        args = ["events", "--since", "%.6f" % since, "--until", "%.6f" % (until or time.time()),
                "--format", "{{json .}}"]
        for f in filters:
            args += ["--filter", f]
        return [json.loads(ln) for ln in self.docker(*args).splitlines() if ln.strip()]

    # --------------------------------------------------------------------------------------
    # Swarm

    def swarm_init(self, listen_port=None):
        """docker swarm init --advertise-addr 127.0.0.1. The listen port is a free one unless
        given (2377 may be taken by another engine on this machine); the data path port too."""
        if self.swarm:
            return
        port = listen_port or _free_port()
        self.docker("swarm", "init", "--advertise-addr", "127.0.0.1",
                    "--listen-addr", "127.0.0.1:%d" % port,
                    "--data-path-port", str(_free_udp_port()), timeout=120)
        self.swarm = True
        self.swarm_port = port

    def swarm_join(self, manager, addr="127.0.0.2"):
        """Joins `manager` (a Dockerd in swarm mode) as a worker, advertising `addr` (DESIGN.md:
        a second private engine on 127.0.0.2 makes a real two-node swarm on one machine)."""
        token = manager.docker("swarm", "join-token", "-q", "worker")
        self.docker("swarm", "join", "--token", token, "--advertise-addr", addr,
                    "--listen-addr", "%s:%d" % (addr, _free_port()),
                    "127.0.0.1:%d" % manager.swarm_port, timeout=120)
        self.swarm = True

    def swarm_leave(self):
        if self.swarm:
            self.docker("swarm", "leave", "--force", timeout=60)
            self.swarm = False

    def service_tasks(self, service):
        """Tasks of a service: list of {"id", "state", "desired", "container", "node"}."""
        out = self.docker("service", "ps", "--no-trunc", "--format", "{{.ID}}", service)
        res = []
        for tid in out.split():
            t = json.loads(self.docker("inspect", tid))[0]
            st = t.get("Status", {})
            res.append({"id": t["ID"], "state": st.get("State"),
                        "desired": t.get("DesiredState"),
                        "container": st.get("ContainerStatus", {}).get("ContainerID"),
                        "node": t.get("NodeID")})
        return res

    def wait_service_container(self, service, timeout=60.0):
        """Waits for a running task of the service; returns its container id."""
        deadline = time.monotonic() + timeout
        tasks = []
        while True:
            tasks = self.service_tasks(service)
            for t in tasks:
                if t["state"] == "running" and t["container"]:
                    return t["container"]
            if time.monotonic() >= deadline:
                raise DockerError("service %s has no running task after %.0f s: %s" %
                                  (service, timeout, tasks))
            time.sleep(0.2)


class HeldLog:
    """An open json-file log; entries() reads it from the start through the descriptor."""

    def __init__(self, path):
        self.path = path
        self.fd = os.open(path, os.O_RDONLY)

    def entries(self):
        data = b""
        off = 0
        while True:
            b = os.pread(self.fd, 1 << 20, off)
            if not b:
                break
            data += b
            off += len(b)
        return parse_json_file(data, self.path)

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def parse_json_file(data, path, complete_only=True):
    """json-file bytes -> [{"log", "stream", "time", "path", "offset"}] (complete lines)."""
    res = []
    off = 0
    while off < len(data):
        nl = data.find(b"\n", off)
        if nl < 0:
            if not complete_only:
                res.append({"path": path, "offset": off, "torn": data[off:]})
            break
        e = json.loads(data[off:nl])
        e["path"] = path
        e["offset"] = off
        res.append(e)
        off = nl + 1
    return res


def _free_udp_port():
    """A free UDP port in 1024-49151 (swarm init refuses a data path port above 49151)."""
    import random
    for _ in range(200):
        port = random.randint(20000, 49151)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("0.0.0.0", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise DockerError("no free UDP port for the swarm data path")
