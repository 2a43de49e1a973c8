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
from tj_fake_docker import Container as FakeContainer, Feeder, feed  # noqa: E402
from tj_fake_docker import fake_root as fake_root_of  # noqa: E402
import test_kafka as tk  # noqa: E402  (Result, verify, kcat: shared with the mock's test)

KAFKA_SH = os.path.join(HERE, "..", "servers", "kafka.sh")
STOP_BOUND = 15.0
SETTLE = 1.5
FIGURES = []
RUN = "%x" % (int(time.time()) % 0xfffff)  # topic names are made unique per run: T("x")
ADMIN = None
CLUSTER = None


def T(name):
    """The topic name of this run (a cluster kept between runs still holds older ones)."""
    return "%s-%s" % (name, RUN)


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
        self.reload()
        if r.returncode != 0:
            fail("kafka.sh %s failed: %s" % (" ".join(args), r.stdout.decode(errors="replace")[-1500:]))

    def kill_node(self, i, sig="KILL"):
        self.sh("kill-node", self.dir, str(i), sig)

    def start_nodes(self, *ids):
        self.sh("start-node", self.dir, *[str(i) for i in ids])

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
        dead = [i for i in range(1, self.nodes + 1) if not self.node_alive(i)]
        if dead:
            log("    nodes %s are not running: started again" % dead)
            self.start_nodes(*dead)
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

    def end_offset(self, topic, partition, timeout=5):
        """One partition's end offset, or None when it does not answer."""
        try:
            r = subprocess.run(["kcat", "-Q", "-b", self.bootstrap, "-t", "%s:%d:-1" %
                                (topic, partition)], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, timeout=timeout)
        except subprocess.TimeoutExpired:
            return None
        m = re.search(r"\[%d\] offset (-?\d+)" % partition, r.stdout.decode())
        return int(m.group(1)) if r.returncode == 0 and m else None

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
        self.wtime = []  # wall-clock time each line was written

    def write(self, n, day="2026-11-25", text=None):
        super().write(n, day, text)
        self.wtime.extend([time.time()] * n)


def fake_root(env, *specs):
    return fake_root_of(env, *specs, cls=Container)


def tailjet(env, binary, root, bootstrap, topic, name="tj", *extra, metrics=None):
    args = tk.tailjet_args(env, root, bootstrap, topic)
    if metrics:
        args += ["--metrics-addr", metrics]
    return env.tailjet(binary, args + list(extra), name=name)


def collect(cluster, ctrs, upto=None):
    return tk.collect_from(cluster.bootstrap, ctrs, {c.topic for c in ctrs}, upto, wait_ms=50,
                           timeout=120.0)


def wait_delivered(cluster, ctrs, procs, partitions, timeout=60.0, what="every line"):
    """Waits until every line written so far was read back at least once; returns the Result
    read again after SETTLE (late duplicates counted too)."""
    topics = sorted({c.topic for c in ctrs})

    def ends():
        e = [cluster.end_offsets(t, partitions) for t in topics]
        return None if None in e else sum(e)

    upto = tk.wait_read_back(ends, lambda u: collect(cluster, ctrs, u), ctrs, procs, timeout,
                             what, 0.5, SETTLE)
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
    c.create([T("dlv-web"), T("dlv-api"), T("dlv-default")], 6, 3)
    root, ctrs = fake_root(env, ("web1", {"logTopic": T("dlv-web")}), ("web2", {"logTopic": T("dlv-web")}),
                           ("api1", {"logTopic": T("dlv-api")}), ("api2", {"logTopic": T("dlv-api")}))
    t = tailjet(env, binary, root, c.bootstrap, T("dlv-default"))
    feed(ctrs, 5000, rate=2500, chunk=100)
    res = wait_delivered(c, ctrs, [t], 6)
    tk.verify(res, ctrs)
    for topic in (T("dlv-web"), T("dlv-api")):
        n = c.end_offsets(topic, 6)
        check(n == 10000, "%s holds %s messages, expected 10000 (2 containers x 5000)" % (topic, n))
    check(c.end_offsets(T("dlv-default"), 6) == 0, "the URI's topic got messages")
    log("    partitions: %s" % ", ".join("%s -> %s%s" % (x.name, x.topic, res.partitions(x.name))
                                         for x in ctrs))
    errs = error_lines(t)
    check(not errs, "error lines on stderr: %s" % errs[:3])
    t.stop(STOP_BOUND)


def append_times(cluster, topic, ctr):
    """{seq: the broker's append time (s since the epoch) of its first copy} of a container's
    lines in a topic with message.timestamp.type=LogAppendTime."""
    out = tk.kcat(["-C", "-b", cluster.bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
                   "-f", "%T\\t%s\\n"], timeout=120.0)
    res = {}
    for ln in out.split("\n"):
        ts, _, value = ln.partition("\t")
        if not value:
            continue
        m = tk.LINE_RE.match(json.loads(value).get("message", ""))
        if m and m.group(2) == ctr.name:
            res.setdefault(int(m.group(1)), int(ts) / 1000.0)
    return res


def pct(vals, p):
    if not vals:
        return float("nan")
    vals = sorted(vals)
    return vals[min(len(vals) - 1, int(p * len(vals)))]


def case_leader_kill(binary, env):
    """The broker leading web's partition is killed (SIGKILL) mid-stream and started again 10 s
    later. Idempotent producer: 0 lost, 0 duplicates, order kept; the records' latency around
    it is a figure."""
    c = CLUSTER
    c.create([T("lk-web"), T("lk-api")], 6, 3, "message.timestamp.type=LogAppendTime")
    c.create([T("lk-default")], 6, 3)
    root, ctrs = fake_root(env, ("web", {"logTopic": T("lk-web")}), ("api", {"logTopic": T("lk-api")}))
    web, api = ctrs
    t = tailjet(env, binary, root, c.bootstrap, T("lk-default"))
    feeder = Feeder(ctrs, 100000, rate=400, chunk=20)   # stopped 5 s after the node is back
    feeder.start()
    try:
        feeder.wait_written(800)
        res = wait_delivered(c, ctrs, [t], 6, what="the first 800 lines")
        pw = res.partitions("web")[0]
        node = c.leaders(T("lk-web"))[pw]
        time.sleep(2.0)
        log("    web's partition lk-web[%d] is led by node %d: SIGKILL" % (pw, node))
        t_kill = time.time()
        c.kill_node(node, "KILL")
        time.sleep(max(0.0, 10.0 - (time.time() - t_kill)))
        t.check_alive("while node %d was down" % node)
        t_start = time.time()
        c.start_nodes(node)
        t_up = time.time()
        log("    node %d started again %.1f s after the kill, serving %.1f s later" %
            (node, t_start - t_kill, t_up - t_start))
        time.sleep(5.0)
    finally:
        feeder.stop()
    feeder.finish()
    res = wait_delivered(c, ctrs, [t], 6, timeout=120.0)
    tk.verify(res, ctrs)
    at = append_times(c, T("lk-web"), web)

    def lat(t0, t1):
        return [at[s] - w for s, w in enumerate(web.wtime) if s in at and t0 <= w < t1]
    # lines written up to 2 s before the kill may still be in flight when it comes
    before, during = lat(0, t_kill - 2), lat(t_kill - 2, t_start)
    restart, after = lat(t_start, t_up), lat(t_up, 1e12)
    figure("leader_kill: web's latency (written -> broker's LogAppendTime)",
           "until 2 s before the kill: median %.2f s, max %.2f s; written from then until the "
           "node was started again (%.1f s after the kill): max %.2f s; while it restarted "
           "(%.1f s): max %.2f s; after: median %.2f s, max %.2f s" %
           (pct(before, 0.5), max(before or [0]), t_start - t_kill, max(during or [0]),
            t_up - t_start, max(restart or [0]), pct(after, 0.5), max(after or [0])))
    figure("leader_kill: lost / duplicates", "0 / 0 of %d lines (web %d, api %d)" %
           (web.seq + api.seq, web.seq, api.seq))
    t.stop(STOP_BOUND)


def case_cluster_down(binary, env):
    """All three nodes killed for 30 s while a container writes 600 KB/s: reading pauses at
    --read-ahead (1 MiB), RSS stays flat, /health answers 503 naming the brokers; after they
    are back every line arrives, in order, none twice."""
    c = CLUSTER
    c.create([T("cd-web"), T("cd-default")], 6, 3)
    root, ctrs = fake_root(env, ("web", {"logTopic": T("cd-web")}))
    web = ctrs[0]
    maddr = "127.0.0.1:%d" % free_port()
    ra = 1 << 20
    t = tailjet(env, binary, root, c.bootstrap, T("cd-default"), "tj", "--read-ahead", "1MiB",
                "--chunk-bytes", "64KiB", metrics=maddr)
    feeder = Feeder(ctrs, 70000, rate=2000, chunk=100)   # ~35 s, ~330 B a json-file line
    feeder.start()
    try:
        feeder.wait_written(4000)
        wait_delivered(c, ctrs, [t], 6, what="the first 4000 lines")
        wait_until(lambda: health(maddr)[0] == 200, 20.0, "/health 200 before the outage",
                   procs=[t], interval=0.3)
        t_down = time.monotonic()
        for i in range(1, c.nodes + 1):
            c.kill_node(i, "KILL")
        pos0 = os.path.getsize(web.log)
        log("    all %d nodes killed; the log holds %d bytes" % (c.nodes, pos0))
        said = wait_until(lambda: (lambda h: h if h[0] == 503 and "kafka" in h[1] else None)(
            health(maddr)), 25.0, "/health to answer 503 naming kafka", procs=[t], interval=0.5)
        log("    /health %d after %.1f s: %s" % (said[0], time.monotonic() - t_down,
                                                said[1].strip()[:200]))
        time.sleep(max(0.0, 8.0 - (time.monotonic() - t_down)))
        rss0, read0 = t.rss_kib(), metric(maddr, "tailjet_read_bytes_total")
        time.sleep(max(0.0, 29.0 - (time.monotonic() - t_down)))
        rss1, read1 = t.rss_kib(), metric(maddr, "tailjet_read_bytes_total")
        inflight, size1 = metric(maddr, "tailjet_inflight_bytes"), os.path.getsize(web.log)
        t.check_alive("with every broker down")
        st, body = health(maddr)
        check(st == 503, "/health at the end of the outage: %s %r" % (st, body[:200]))
        log("    after 8 s down: %d bytes read, RSS %d KiB; after 29 s: %d bytes read of %d "
            "written, %d in flight, RSS %d KiB" % (read0, rss0, read1, size1, inflight, rss1))
        check(read1 - read0 <= 256 << 10, "tailjet read %d more bytes between 8 s and 29 s "
              "with every broker down: reading did not pause" % (read1 - read0))
        check(inflight <= ra + (256 << 10), "%d bytes in flight with the brokers down, over "
              "--read-ahead 1MiB" % inflight)
        check(size1 - read1 > 4 * ra, "the test wrote too little to show the pause (%d bytes "
              "unread)" % (size1 - read1))
        check(rss1 - rss0 <= 8192, "RSS grew from %d to %d KiB with the brokers down" %
              (rss0, rss1))
        t_start = time.monotonic()
        c.start_nodes(*range(1, c.nodes + 1))
        t_up = time.monotonic()
        log("    all nodes started again %.1f s after the kill, serving %.1f s later" %
            (t_start - t_down, t_up - t_start))
        feeder.finish()
    finally:
        feeder.stop()
    res = wait_delivered(c, ctrs, [t], 6, timeout=120.0)
    figure("cluster_down: every node killed, started again after %.0f s, serving %.0f s later" %
           (t_start - t_down, t_up - t_start),
           "reading paused with %d KiB in flight (--read-ahead 1MiB) and %d MiB of the log unread; "
           "RSS %d -> %d KiB from 8 s to 29 s; every line back %.1f s after the nodes served" %
           (inflight >> 10, (size1 - read1) >> 20, rss0, rss1, time.monotonic() - t_up - SETTLE))
    extra = tk.verify(res, ctrs, dups_ok=True, order="first")
    figure("cluster_down: duplicates", "%d of %d lines" % (extra, web.seq))
    check(extra == 0, "%d lines arrived twice (idempotent producer)" % extra)
    st, body = health(maddr)
    check(st == 200, "/health after the outage: %s %r" % (st, body[:200]))
    t.stop(STOP_BOUND)


def kafka_lines(t, word):
    return [ln for ln in t.stderr_text().splitlines() if " kafka: " in ln and word in ln]


def case_missing_topic(binary, env):
    """A container's logTopic does not exist (auto-creation is off): one clear error naming the
    topic, its records held (not lost, not spinning), the other container's records flow; once
    the topic is made they arrive, once each, in order."""
    c = CLUSTER
    c.create([T("mt-default")], 6, 3)
    root, ctrs = fake_root(env, ("web", {"logTopic": T("mt-missing")}), ("api", {"logTopic": T("mt-default")}))
    web, api = ctrs
    maddr = "127.0.0.1:%d" % free_port()
    # librdkafka waits topic.metadata.propagation.max.ms (30 s) for a topic to appear before
    # it fails its messages; 3 s keeps the case short.
    t = tailjet(env, binary, root, c.bootstrap, T("mt-default"), "tj", "--kafka-opt",
                "topic.metadata.propagation.max.ms=3000", metrics=maddr)
    feed(ctrs, 600, rate=200, chunk=20)
    wait_until(lambda: kafka_lines(t, T("mt-missing")), 30.0,
               "an error naming topic mt-missing on stderr", procs=[t], interval=0.3)
    wait_delivered(c, [api], [t], 6, what="api's lines (its topic exists)")
    cpu0, t0 = cpu_seconds(t.pid), time.monotonic()
    time.sleep(6.0)
    cpu = (cpu_seconds(t.pid) - cpu0) / (time.monotonic() - t0)
    said = kafka_lines(t, T("mt-missing"))
    log("    stderr: %s" % said[0][:300])
    st, body = health(maddr)
    log("    /health: %s %s" % (st, body.strip()[:200]))
    check(len(said) == 1, "%d lines on stderr name mt-missing (one expected): %s" %
          (len(said), said[:3]))
    check(st == 503 and T("mt-missing") in body, "/health with a missing topic: %s %r" %
          (st, body[:300]))
    check(cpu < 0.2, "tailjet used %.2f CPU while its records were held" % cpu)
    figure("missing_topic: tailjet's CPU while held", "%.3f cores" % cpu)
    c.create([T("mt-missing")], 6, 3)
    res = wait_delivered(c, ctrs, [t], 6, timeout=60.0)
    tk.verify(res, ctrs)
    t.stop(STOP_BOUND)


def random_text(n):
    return __import__("base64").b64encode(os.urandom(n * 3 // 4 + 3)).decode()[:n]


def case_too_large(binary, env):
    """The topic's max.message.bytes is 20000; one record of ~60 KB (incompressible) among
    small ones: the broker's refusal puts it in the dead-letter file with the reason, counted
    in /metrics; the records around it arrive once each, in order."""
    c = CLUSTER
    c.create([T("tl-web")], 3, 3, "max.message.bytes=20000")
    c.create([T("tl-default")], 3, 3)
    root, ctrs = fake_root(env, ("web", {"logTopic": T("tl-web")}))
    web = ctrs[0]
    maddr = "127.0.0.1:%d" % free_port()
    t = tailjet(env, binary, root, c.bootstrap, T("tl-default"), metrics=maddr)
    big = "seq=%06d c=web " % 300 + random_text(60000)
    web.write(300)
    web.write(1, text=lambda s: big)
    web.write(300)
    dl = env.path("state", "kafka-dead-letters.ndjson")
    wait_until(lambda: os.path.exists(dl) and os.path.getsize(dl) > 0, 60.0,
               "the dead-letter file %s" % dl, procs=[t], interval=0.3)
    upto = {"web": web.seq}
    deadline = time.monotonic() + 60
    while True:
        res = collect(c, ctrs, upto)
        miss = [i for i, n in enumerate(res.counts["web"]) if n == 0]
        if miss == [300] or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    check(miss == [300], "lines missing from tl-web: %s (only the large one, 300, expected)" %
          miss[:10])
    time.sleep(SETTLE)
    res = collect(c, ctrs, upto)
    dup = [i for i, n in enumerate(res.counts["web"]) if n > 1]
    check(not dup, "lines shipped twice: %s" % dup[:10])
    bad = res.order_errors("web")
    check(not bad, "out of order: %s" % bad[:3])
    with open(dl) as f:
        dls = [json.loads(ln) for ln in f if ln.strip()]
    check(len(dls) == 1, "%d dead letters, expected 1" % len(dls))
    d = dls[0]
    log("    dead letter: %s" % json.dumps({k: v for k, v in d.items() if k != "record"})[:300])
    rec = d.get("record")
    check(isinstance(rec, dict) and rec.get("message") == big,
          "the dead letter's record is not the refused line: %r" % str(rec)[:200])
    check(d.get("topic") == T("tl-web") and "large" in str(d.get("error", "")).lower(),
          "the dead letter does not name the topic and the broker's reason: %r" %
          {k: v for k, v in d.items() if k != "record"})
    m = re.search(r"^tailjet_output_dead_letters_total{output=\"kafka\"} (\d+)", metrics(maddr), re.M)
    check(m and int(m.group(1)) == 1, "tailjet_output_dead_letters_total is %s, expected 1" %
          (m.group(1) if m else "missing"))
    t.stop(STOP_BOUND)


def metric(addr, name):
    m = re.search(r"^%s(?:{[^}]*})? (\S+)$" % name, metrics(addr), re.M)
    check(m, "/metrics has no %s" % name)
    return int(float(m.group(1)))


def metrics(addr):
    with urllib.request.urlopen("http://%s/metrics" % addr, timeout=5) as r:
        return r.read().decode(errors="replace")


def case_sasl(binary, env):
    """The SASL_PLAINTEXT listeners (PLAIN): a wrong password gives one clear error and /health
    503, nothing shipped and nothing lost; the next run (same state dir) with the right one
    delivers every line once."""
    c = CLUSTER
    c.create([T("sa-web"), T("sa-default")], 3, 3)
    root, ctrs = fake_root(env, ("web", {"logTopic": T("sa-web")}))
    web = ctrs[0]
    web.write(500)
    maddr = "127.0.0.1:%d" % free_port()

    def run(password, name):
        return tailjet(env, binary, root, c.sasl_bootstrap, T("sa-default"), name,
                       "--kafka-opt", "security.protocol=SASL_PLAINTEXT",
                       "--kafka-opt", "sasl.mechanisms=PLAIN",
                       "--kafka-opt", "sasl.username=%s" % c.env["SASL_USER"],
                       "--kafka-opt", "sasl.password=%s" % password,
                       "--shutdown-timeout", "2s", metrics=maddr)
    t = run("wrong-password", "wrong")
    wait_until(lambda: kafka_lines(t, "uthentication"), 30.0,
               "an error about authentication on stderr", procs=[t], interval=0.3)
    st = wait_until(lambda: (lambda h: h if h[0] == 503 and "uthentication" in h[1] else None)(
        health(maddr)), 15.0, "/health 503 naming authentication", procs=[t], interval=0.3)
    time.sleep(5.0)
    said = kafka_lines(t, "uthentication")
    log("    stderr: %s" % said[0][:300])
    log("    /health: %s %s" % (st[0], st[1].strip()[:200]))
    check(len(said) == 1, "%d lines on stderr about authentication (one expected): %s" %
          (len(said), said[:3]))
    check("uthentication" in st[1], "/health does not say authentication fails: %r" % st[1][:300])
    check(c.end_offsets(T("sa-web"), 3) == 0, "messages arrived with a wrong password")
    os.kill(t.pid, __import__("signal").SIGTERM)
    t.wait(20.0)
    web.write(500)
    t2 = run(c.env["SASL_PASSWORD"], "right")
    res = wait_delivered(c, ctrs, [t2], 3)
    tk.verify(res, ctrs)
    errs = error_lines(t2)
    check(not errs, "error lines on stderr with the right password: %s" % errs[:3])
    t2.stop(STOP_BOUND)


def case_kill9(binary, env):
    """tailjet killed with SIGKILL three times mid-stream and started again with the same
    --state-dir: every line arrives; the duplicates (the unacknowledged window) are counted."""
    c = CLUSTER
    c.create([T("k9-web"), T("k9-api"), T("k9-default")], 6, 3)
    root, ctrs = fake_root(env, ("web", {"logTopic": T("k9-web")}), ("api", {"logTopic": T("k9-api")}))
    args = ("--checkpoint-interval", "200ms")
    t = tk.kill9_thrice(ctrs, lambda name: tailjet(env, binary, root, c.bootstrap, T("k9-default"),
                                                   name, *args))[-1]
    res = wait_delivered(c, ctrs, [t], 6, timeout=90.0)
    extra = tk.verify(res, ctrs, dups_ok=True, order="first")
    per = ", ".join("%s %d" % (x.name, res.stats(x.name)[3]) for x in ctrs)
    figure("kill9: duplicates after 3 kill -9 (8000 lines)", "%d extra copies (%s)" % (extra, per))
    t.stop(STOP_BOUND)


def case_topics257(binary, env):
    """300 containers, each with its own logTopic (all made beforehand): every topic gets its
    container's lines, the 257th and later ones too (it used to stall)."""
    c = CLUSTER
    n, per = 300, 3
    names = [T("tp%03d" % i) for i in range(n)]
    c.create(names + [T("tp-default")], 1, 1)
    root, ctrs = fake_root(env, *[("c%03d" % i, {"logTopic": names[i]}) for i in range(n)])
    for x in ctrs:
        x.write(per)
    t = tailjet(env, binary, root, c.bootstrap, T("tp-default"))

    def ends():
        args = ["-Q", "-b", c.bootstrap]
        for name in names:
            args += ["-t", "%s:0:-1" % name]
        got = dict.fromkeys(names, 0)
        r = subprocess.run(["kcat"] + args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                           timeout=60)
        if r.returncode != 0:  # a partition without its leader yet: ask again
            return None
        for tp, o in re.findall(r"(tp\d{3}-%s) \[0\] offset (-?\d+)" % RUN, r.stdout.decode()):
            got[tp] = max(0, int(o))
        short = [name for name in names if got[name] < per]
        return None if short else got
    t0 = time.monotonic()
    wait_until(ends, 90.0, "%d lines in each of %d topics" % (per, n), procs=[t], interval=0.5)
    figure("topics257: %d topics, %d lines each: all delivered" % (n, per),
           "%.1f s" % (time.monotonic() - t0))
    time.sleep(SETTLE)
    for i in (0, 255, 256, 257, n - 1):
        msgs = tk.read_topic_at(c.bootstrap, names[i], wait_ms=50, timeout=120.0)
        seqs = [int(tk.LINE_RE.match(json.loads(m.value)["message"]).group(1)) for m in msgs]
        check(seqs == list(range(per)) and all(m.key == ctrs[i].id for m in msgs),
              "topic %s holds %s, expected lines 0..%d of %s" % (names[i], seqs, per - 1,
                                                                ctrs[i].name))
    errs = error_lines(t)
    check(not errs, "error lines on stderr: %s" % errs[:3])
    t.stop(STOP_BOUND)


CASES = [  # (case, time bound in seconds)
    (case_delivery, 120),
    (case_leader_kill, 240),
    (case_cluster_down, 300),
    (case_missing_topic, 150),
    (case_too_large, 150),
    (case_sasl, 150),
    (case_kill9, 150),
    (case_topics257, 200),
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
