#!/usr/bin/env python3
"""test_kafka_real.py: `tailjet run --output kafka://...` against a real Apache Kafka cluster.

Usage: test_kafka_real.py PATH/TO/tailjet PATH/TO/tj_kafka_admin CLUSTER_DIR

CLUSTER_DIR holds the kafka.env of a 3-node KRaft cluster that tests/servers/kafka.sh started
(ctest's fixture kafka_cluster does it once per build; auto-creation of topics is off, and each
node has a SASL_PLAINTEXT listener with mechanism PLAIN). Each case makes its own topics
(tj_kafka_admin), its own fake containers (--docker-root, as in test_kafka.py) and its own
tailjet, and reads back with an independent client, kcat. Lines are numbered, so a lost,
duplicated or reordered line is named. A case that stops nodes starts them again; between cases
every node is checked to run (started again if not), so one failure does not cascade.

Cases: delivery, leader_kill, cluster_down, missing_topic, too_large, sasl, kill9, topics257
(see each one's docstring). TJ_CASES=name,name runs some only; TJ_KEEP_TMP=1 keeps temp dirs.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "engine"))
sys.path.insert(0, HERE)
from tj_engine_util import (check, fail, free_port, log, main_wrapper, run_cases,  # noqa: E402
                            tail_text, wait_until)
from tj_fake_docker import Container as FakeContainer, Feeder  # noqa: E402
from tj_fake_docker import fake_root as fake_root_of  # noqa: E402
import test_kafka as tk  # noqa: E402  (Result, verify, kcat: shared with the mock's test)

KAFKA_SH = os.path.join(HERE, "..", "servers", "kafka.sh")
STOP_BOUND = 15.0
SETTLE = 1.5
FIGURES = []
ADMIN = None
CLUSTER = None


def figure(what, text):
    FIGURES.append((what, text))
    log("    figure: %s: %s" % (what, text))


# ------------------------------------------------------------------------------------------
# The cluster


class Cluster:
    """The nodes kafka.sh started (CLUSTER_DIR/kafka.env), and what a case does to them."""

    def __init__(self, d):
        self.dir = d
        path = os.path.join(d, "kafka.env")
        check(os.path.exists(path), "%s is missing: the Kafka cluster did not start (see the "
              "kafka_cluster_start test's output; tests/servers/kafka.sh start-cluster %s)" %
              (path, d))
        self.reload()

    def reload(self):
        env = {}
        with open(os.path.join(self.dir, "kafka.env")) as f:
            for ln in f:
                k, _, v = ln.rstrip("\n").partition("=")
                env[k] = v
        self.env = env
        self.bootstrap = env["BOOTSTRAP"]
        self.sasl_bootstrap = env["SASL_BOOTSTRAP"]
        self.nodes = int(env["NODES"])

    def sh(self, *args, timeout=180):
        r = subprocess.run(["bash", KAFKA_SH] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=timeout)
        if r.returncode != 0:
            fail("kafka.sh %s failed: %s" % (" ".join(args), r.stdout.decode(errors="replace")[-1500:]))
        self.reload()

    def kill_node(self, i, sig="KILL"):
        self.sh("kill-node", self.dir, str(i), sig)

    def start_node(self, i):
        self.sh("start-node", self.dir, str(i))

    def node_alive(self, i):
        pid = self.env.get("NODE%d_PID" % i)
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                return b"node%d/server.properties" % i in f.read()
        except (OSError, TypeError):
            return False

    def node_of_port(self, port):
        for i in range(1, self.nodes + 1):
            if self.env["NODE%d_PORT" % i] == str(port):
                return i
        fail("no node listens on port %s" % port)

    def heal(self):
        """Every node runs and the cluster lists all brokers (after a case, passed or not)."""
        for i in range(1, self.nodes + 1):
            if not self.node_alive(i):
                log("    node %d is not running: started again" % i)
                self.start_node(i)
        wait_until(lambda: self.brokers() >= self.nodes, 120.0, "all %d brokers listed" %
                   self.nodes, interval=0.5)

    def brokers(self):
        r = subprocess.run(["kcat", "-L", "-b", self.bootstrap, "-m", "5"], stdout=subprocess.PIPE,
                           stderr=subprocess.DEVNULL, timeout=30)
        m = re.search(r"^ (\d+) brokers:", r.stdout.decode(), re.M)
        return int(m.group(1)) if m else 0

    def create(self, topics, partitions, replication, *configs):
        r = subprocess.run([ADMIN, self.bootstrap, str(partitions), str(replication)] +
                           list(configs) + list(topics), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120)
        check(r.returncode == 0, "creating topics %s failed: %s" %
              (list(topics)[:5], r.stdout.decode(errors="replace")[-1000:]))
        # every partition has a leader before the case produces
        for t in topics[:3]:
            wait_until(lambda: len(self.leaders(t)) == partitions, 60.0,
                       "leaders for the %d partitions of %s" % (partitions, t), interval=0.3)

    def leaders(self, topic):
        """{partition: leader node} of a topic (partitions with a live leader only)."""
        r = subprocess.run(["kcat", "-L", "-b", self.bootstrap, "-t", topic, "-m", "10"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=30)
        return {int(p): int(b) for p, b in
                re.findall(r"partition (\d+), leader (\d+),", r.stdout.decode())}

    def end_offsets(self, topic, partitions):
        """Sum of a topic's end offsets, or None when some partition does not answer."""
        args = ["kcat", "-Q", "-b", self.bootstrap]
        for p in range(partitions):
            args += ["-t", "%s:%d:-1" % (topic, p)]
        try:
            r = subprocess.run(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               timeout=15)
        except subprocess.TimeoutExpired:
            return None
        got = re.findall(r"\[(\d+)\] offset (-?\d+)", r.stdout.decode())
        if r.returncode != 0 or len(got) != partitions:
            return None
        return sum(max(0, int(o)) for _, o in got)


# ------------------------------------------------------------------------------------------
# Containers, tailjet, read-back


class Container(FakeContainer):
    """A fake container that remembers when each line was written (latency figures)."""

    def __init__(self, root, name, labels=None, line_bytes=200):
        super().__init__(root, name, labels, line_bytes)
        self.topic = self.labels.get("logTopic")
        self.wtime = []

    def write(self, n, day="2026-11-25", text=None):
        super().write(n, day, text)
        now = time.monotonic()
        self.wtime.extend([now] * n)


def fake_root(env, *specs):
    return fake_root_of(env, *specs, cls=Container)


def tailjet(env, binary, root, bootstrap, topic, name="tj", *extra, metrics=None):
    args = ["--docker-root", root, "--output", "kafka://%s/%s" % (bootstrap, topic),
            "--state-dir", env.path("state"), "--poll-interval", "200ms"]
    if metrics:
        args += ["--metrics-addr", metrics]
    return env.tailjet(binary, args + list(extra), name=name)


def read_topic(bootstrap, topic, extra=()):
    """Every message of a topic (kcat -C -e), partition by partition in offset order."""
    out = tk.kcat(["-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
                   "-X", "fetch.wait.max.ms=50", "-f", "%p\\t%o\\t%k\\t%s\\n"] + list(extra),
                  timeout=120.0)
    msgs = []
    for ln in out.split("\n"):
        if not ln:
            continue
        parts = ln.split("\t", 3)
        if len(parts) != 4:
            fail("kcat printed a line that is not PARTITION\\tOFFSET\\tKEY\\tVALUE: %r" % ln[:300])
        msgs.append(tk.Msg(topic, int(parts[0]), int(parts[1]), parts[2], parts[3]))
    msgs.sort(key=lambda m: (m.partition, m.offset))
    return msgs


def collect(cluster, ctrs, upto=None):
    res = tk.Result(ctrs, upto or {c.name: c.seq for c in ctrs})
    for topic in sorted({c.topic for c in ctrs}):
        for m in read_topic(cluster.bootstrap, topic):
            res.add(m)
    return res


def wait_delivered(cluster, ctrs, procs, partitions, timeout=60.0, what="every line"):
    """Waits until every line written so far was read back at least once; returns the Result
    read again after SETTLE (late duplicates counted too)."""
    topics = sorted({c.topic for c in ctrs})
    upto = {c.name: c.seq for c in ctrs}
    need = sum(upto.values())
    deadline = time.monotonic() + timeout
    while True:
        for p in procs:
            p.check_alive("while waiting for %s" % what)
        ends = [cluster.end_offsets(t, partitions) for t in topics]
        if None not in ends and sum(ends) >= need:
            res = collect(cluster, ctrs, upto)
            if res.complete():
                break
        if time.monotonic() >= deadline:
            res = collect(cluster, ctrs, upto)
            parts = []
            for c in ctrs:
                miss, first, _, _, _ = res.stats(c.name)
                parts.append("%s: %d of %d missing (first: %s)" % (c.name, miss, upto[c.name],
                                                                    first))
            fail("after %.0f s, not %s was read back: %s" % (timeout, what, "; ".join(parts)))
        time.sleep(0.5)
    time.sleep(SETTLE)
    return collect(cluster, ctrs, upto)


def error_lines(t):
    return tk.error_lines(t)


def health(addr):
    """(status, body) of GET /health."""
    try:
        with urllib.request.urlopen("http://%s/health" % addr, timeout=5) as r:
            return r.status, r.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as e:
        return None, str(e)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# ------------------------------------------------------------------------------------------
# Cases


def case_delivery(binary, env):
    """Four containers of two services, each service with its own logTopic (6 partitions,
    replication 3): every record once, in order per key (container), read back by kcat."""
    c = CLUSTER
    c.create(["dlv-web", "dlv-api", "dlv-default"], 6, 3)
    root, ctrs = fake_root(env, ("web1", {"logTopic": "dlv-web"}), ("web2", {"logTopic": "dlv-web"}),
                           ("api1", {"logTopic": "dlv-api"}), ("api2", {"logTopic": "dlv-api"}))
    t = tailjet(env, binary, root, c.bootstrap, "dlv-default")
    feeder = Feeder(ctrs, 5000, rate=2500, chunk=100)
    feeder.start()
    try:
        feeder.finish()
    finally:
        feeder.stop()
    res = wait_delivered(c, ctrs, [t], 6)
    tk.verify(res, ctrs)
    for topic in ("dlv-web", "dlv-api"):
        n = c.end_offsets(topic, 6)
        check(n == 10000, "%s holds %s messages, expected 10000 (2 containers x 5000)" % (topic, n))
    check(c.end_offsets("dlv-default", 6) == 0, "the URI's topic got messages")
    log("    partitions: %s" % ", ".join("%s -> %s%s" % (x.name, x.topic, res.partitions(x.name))
                                         for x in ctrs))
    errs = error_lines(t)
    check(not errs, "error lines on stderr: %s" % errs[:3])
    t.stop(STOP_BOUND)


CASES = [  # (case, time bound in seconds)
    (case_delivery, 120),
]


def main(binary, admin, cluster_dir):
    global ADMIN, CLUSTER
    os.environ.setdefault("TAILJET_METRICS_ADDR", "off")
    check(shutil.which("kcat"), "kcat is missing: apt-get install kcat (scripts/setup.sh)")
    ADMIN = admin
    CLUSTER = Cluster(cluster_dir)
    CLUSTER.heal()
    run_cases(CASES, "kafka-real-", lambda case, env: case(binary, env), between=CLUSTER.heal,
              figures=FIGURES)


if __name__ == "__main__":
    main_wrapper(main, ("PATH/TO/tailjet", "PATH/TO/tj_kafka_admin", "CLUSTER_DIR"))
