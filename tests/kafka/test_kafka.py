#!/usr/bin/env python3
"""test_kafka.py: `tailjet run --output kafka://...` against librdkafka's mock Kafka cluster.

Usage: test_kafka.py PATH/TO/tailjet PATH/TO/tj_kafka_mock

Each case starts its own mock cluster (tj_kafka_mock: 3 brokers, its topics with 3 partitions,
faults injected through its stdin), its own tailjet on fake containers (--docker-root: a
config.v2.json and a json-file log per container, lines appended while tailjet runs) and reads
back with an independent client, kcat (`kcat -C -e`: every message of a topic, with its key,
partition and offset). Lines are numbered ("seq=000042 c=web ..."), so a lost, duplicated or
reordered line is named. Volumes stay small: the mock keeps at most ~5 MB per partition.

Cases: delivery (keys, topics from logTopic, per-container order, exact records), broker_down
(the leader of a container's partition down for 10 s; the other container's partition keeps
flowing), produce_errors (Produce requests failing with REQUEST_TIMED_OUT and
NOT_LEADER_OR_FOLLOWER), queue_full (a backlog into a 200-message librdkafka queue: submits
refused and resumed), permanent_error (TOPIC_AUTHORIZATION_FAILED: held and produced again, in
their order), batch_too_large (MESSAGE_TOO_LARGE for a batch of small records: nothing cut or
dropped), kill9 (kill -9 and restart with the same state dir: at-least-once, duplicates
counted), bad_options (unknown or invalid --kafka-opt, a URI without a topic, an unreachable
broker: held, then shipped by the next run), many_topics (300 containers with a logTopic
each: all 300 topics get their lines). A case that fails is reported and the others still
run; each has a time bound; every process is stopped by its pid. TJ_CASES=name,name runs some
cases only; TJ_KEEP_TMP=1 keeps the temp dirs.
"""

import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "engine"))
from tj_engine_util import (check, Env, fail, log, main_wrapper, read_text, run_cases,  # noqa: E402
                            tail_text, wait_until)
from tj_fake_docker import Container as FakeContainer, Feeder, feed  # noqa: E402
from tj_fake_docker import fake_root as fake_root_of  # noqa: E402

TOPIC = "logs"          # the URI's topic
OTHER = "other"         # the logTopic label of the labeled containers
PARTITIONS = 3
AUTO_PARTITIONS = 4     # of a topic the mock makes on first use (librdkafka's mock default)
DELIVER = 30.0          # every line written must be read back within this
STOP_BOUND = 10.0       # SIGTERM at the end of a case: exit status 0 within this
SETTLE = 1.0            # after every line arrived: time for duplicates to show up
LINE_RE = re.compile(r"^seq=(\d{6}) c=(\w+) x+$")
FIGURES = []


def figure(what, text):
    FIGURES.append((what, text))
    log("    figure: %s: %s" % (what, text))


# ------------------------------------------------------------------------------------------
# The mock cluster and kcat


class Mock:
    """One tj_kafka_mock process: bootstrap servers, commands on its stdin."""

    def __init__(self, env, binary, topics, partitions=PARTITIONS):
        self.err_path = env.path("mock.stderr")
        err = open(self.err_path, "wb")
        self.proc = env.spawn([binary, "--partitions", str(partitions)] + list(topics),
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=err)
        err.close()
        self.buf = b""
        line = self._readline(10.0, "its bootstrap servers")
        if not re.fullmatch(r"127\.0\.0\.1:\d+(,127\.0\.0\.1:\d+){2}", line):
            fail("tj_kafka_mock's first line is not 3 bootstrap servers: %r" % line)
        self.bootstrap = line

    def _readline(self, timeout, what):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                fail("tj_kafka_mock gave no line within %.0f s (%s)" % (timeout, what))
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 4096)
                if not chunk:
                    fail("tj_kafka_mock exited (status %s) before %s; stderr:\n%s" %
                         (self.proc.wait(), what, tail_text(read_text(self.err_path, ""))))
                self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.decode()

    def cmd(self, line):
        """Sends one command; fails unless the answer is "ok"."""
        try:
            self.proc.stdin.write(line.encode() + b"\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            fail("tj_kafka_mock is gone (command %r)" % line)
        ans = self._readline(10.0, "the answer to %r" % line)
        if ans != "ok":
            fail("tj_kafka_mock: %r answered %r" % (line, ans))

    def stop(self):
        if self.proc.poll() is not None:
            return
        try:
            self.proc.stdin.write(b"quit\n")
            self.proc.stdin.flush()
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (BrokenPipeError, subprocess.TimeoutExpired):
            pass  # Env kills it by its pid


def kcat(args, timeout=30.0):
    try:
        r = subprocess.run(["kcat"] + args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
    except subprocess.TimeoutExpired:
        fail("kcat %s: no answer within %.0f s" % (" ".join(args), timeout))
    if r.returncode != 0:
        fail("kcat %s failed (%d): %s" % (" ".join(args), r.returncode,
                                          r.stderr.decode(errors="replace")[-1000:]))
    return r.stdout.decode("utf-8", "replace")


def leaders(mock, topic):
    """{partition: leader broker id} from `kcat -L`."""
    out = kcat(["-L", "-b", mock.bootstrap, "-t", topic])
    res = {int(p): int(b) for p, b in re.findall(r"partition (\d+), leader (-?\d+)", out)}
    check(len(res) == PARTITIONS, "kcat -L shows %d partitions of %s:\n%s" % (len(res), topic, out))
    return res


def offsets(mock, topic, when, parts=range(PARTITIONS)):
    """{partition: offset}: when -1 the end offsets (next offset), -2 the first ones kept.
    Only partitions whose leader is up answer: ask for those."""
    args = ["-Q", "-b", mock.bootstrap]
    for p in parts:
        args += ["-t", "%s:%d:%d" % (topic, p, when)]
    out = kcat(args)
    res = {int(p): int(o) for p, o in re.findall(r"\[(\d+)\] offset (-?\d+)", out)}
    check(sorted(res) == sorted(parts), "kcat -Q gave %r" % out)
    return res


class Msg:
    __slots__ = ("topic", "partition", "offset", "key", "value")

    def __init__(self, topic, partition, offset, key, value):
        self.topic, self.partition, self.offset, self.key, self.value = \
            topic, partition, offset, key, value


def read_topic_at(bootstrap, topic, wait_ms=20, extra=(), timeout=60.0):
    """Every message of topic, partition by partition in offset order (kcat -C -e)."""
    out = kcat(["-C", "-b", bootstrap, "-t", topic, "-o", "beginning", "-e", "-q",
                "-X", "fetch.wait.max.ms=%d" % wait_ms, "-f", "%p\\t%o\\t%k\\t%s\\n"] +
               list(extra), timeout=timeout)
    msgs = []
    for ln in out.split("\n"):
        if not ln:
            continue
        parts = ln.split("\t", 3)
        if len(parts) != 4:
            fail("kcat printed a line that is not PARTITION\\tOFFSET\\tKEY\\tVALUE: %r" % ln[:300])
        msgs.append(Msg(topic, int(parts[0]), int(parts[1]), parts[2], parts[3]))
    msgs.sort(key=lambda m: (m.partition, m.offset))
    return msgs


def read_topic(mock, topic):
    return read_topic_at(mock.bootstrap, topic)


def check_log_kept(mock, topic):
    """The mock drops the oldest messages past its per-partition cap: that must not have
    happened (the test would blame tailjet for a loss)."""
    first = offsets(mock, topic, -2)
    check(all(o <= 0 for o in first.values()),
          "the mock cluster dropped old messages of %s (first offsets %s): lower the volume" %
          (topic, first))


# ------------------------------------------------------------------------------------------
# Fake containers (--docker-root) and the lines they write


class Container(FakeContainer):
    """A fake container whose records go to its logTopic label, else TOPIC."""

    def __init__(self, root, name, labels=None, line_bytes=200):
        super().__init__(root, name, labels, line_bytes)
        self.topic = self.labels.get("logTopic", TOPIC)


def fake_root(env, *specs):
    return fake_root_of(env, *specs, cls=Container)


def tailjet_args(env, root, bootstrap, topic):
    """The arguments every case starts tailjet with: fake containers, a Kafka output."""
    return ["--docker-root", root, "--output", "kafka://%s/%s" % (bootstrap, topic),
            "--state-dir", env.path("state"), "--poll-interval", "200ms"]


def tj_kafka(env, binary, mock, root, name="tj", *extra):
    return env.tailjet(binary, tailjet_args(env, root, mock.bootstrap, TOPIC) + list(extra),
                       name=name)


# ------------------------------------------------------------------------------------------
# What came out


class Result:
    """The messages of the containers' lines, checked against what was written."""

    def __init__(self, ctrs, upto):
        """upto: {name: n}: lines 0..n-1 of each container are expected (later ones, written
        while the feeder runs on, are checked but not counted)."""
        self.ctrs = {c.name: c for c in ctrs}
        self.by_ctr = {c.name: [] for c in ctrs}  # (msg, seq), in offset order per partition
        self.errors = []
        self.nerrors = 0
        self.counts = {c.name: [0] * upto[c.name] for c in ctrs}
        self.unexpected = []

    def err(self, text):
        self.nerrors += 1
        if len(self.errors) < 20:
            self.errors.append(text)

    def add(self, m):
        where = "%s[%d]@%d" % (m.topic, m.partition, m.offset)
        try:
            r = json.loads(m.value)
        except ValueError:
            self.err("%s: the value is not JSON: %r" % (where, m.value[:200]))
            return
        msg = r.get("message") if isinstance(r, dict) else None
        mm = LINE_RE.match(msg) if isinstance(msg, str) else None
        if not mm or mm.group(2) not in self.ctrs:
            self.unexpected.append((where, m.value[:200]))
            return
        seq, c = int(mm.group(1)), self.ctrs[mm.group(2)]
        if seq >= c.seq:
            self.unexpected.append((where, m.value[:200]))
            return
        if seq < len(self.counts[c.name]):
            self.counts[c.name][seq] += 1
        self.by_ctr[c.name].append((m, seq))
        text, t = c.lines[seq]
        cont = r.get("container") if isinstance(r.get("container"), dict) else {}
        for label, got, want in (("key", m.key, c.id), ("topic", m.topic, c.topic),
                                 ("message", msg, text), ("@timestamp", r.get("@timestamp"), t),
                                 ("stream", r.get("stream"), "stdout"),
                                 ("container.id", cont.get("id"), c.id)):
            if got != want:
                self.err("%s: %s is %r, expected %r (record %s)" %
                         (where, label, got, want, m.value[:300]))

    def stats(self, name):
        """(missing count, first missing seqs, duplicated lines, extra copies, max copies)."""
        cnt = self.counts[name]
        missing = [i for i, n in enumerate(cnt) if n == 0]
        dup = sum(1 for n in cnt if n > 1)
        extra = sum(n - 1 for n in cnt if n > 1)
        return len(missing), missing[:10], dup, extra, max(cnt) if cnt else 0

    def complete(self):
        return all(min(cnt) > 0 for cnt in self.counts.values() if cnt)

    def order_errors(self, name, first_only=False):
        """Places where a container's numbers go down in offset order (first_only: only the
        first copy of each number counts, duplicates re-sent later are ignored)."""
        bad, last, seen = [], -1, set()
        for m, seq in self.by_ctr[name]:
            if first_only:
                if seq in seen:
                    continue
                seen.add(seq)
            if seq <= last:
                bad.append("seq %d after %d at %s[%d]@%d" % (seq, last, m.topic, m.partition,
                                                              m.offset))
            last = seq
        return bad

    def partitions(self, name):
        return sorted({m.partition for m, _ in self.by_ctr[name]})


def collect_from(bootstrap, ctrs, topics, upto=None, **kw):
    """The Result of reading back every topic (read_topic_at's keywords)."""
    res = Result(ctrs, upto or {c.name: c.seq for c in ctrs})
    for topic in sorted(topics):
        for m in read_topic_at(bootstrap, topic, **kw):
            res.add(m)
    return res


def collect(mock, ctrs, upto=None):
    return collect_from(mock.bootstrap, ctrs, {c.topic for c in ctrs} | {TOPIC}, upto)


def total_end(mock, topics):
    return sum(sum(offsets(mock, t, -1).values()) for t in topics)


def wait_read_back(ends, collect_upto, ctrs, procs, timeout, what, interval, settle):
    """Waits until every line written so far was read back at least once: ends() is the sum
    of the topics' end offsets (None: not known now), collect_upto(upto) reads a Result back.
    Fails, naming what is missing per container, after timeout s. Returns upto, after
    settle s more (so that late duplicates are counted too by the caller's last read)."""
    upto = {c.name: c.seq for c in ctrs}
    need = sum(upto.values())
    deadline = time.monotonic() + timeout
    while True:
        for p in procs:
            p.check_alive("while waiting for %s" % what)
        n = ends()
        if n is not None and n >= need and collect_upto(upto).complete():
            break
        if time.monotonic() >= deadline:
            res = collect_upto(upto)
            parts = []
            for c in ctrs:
                miss, first, _, _, _ = res.stats(c.name)
                parts.append("%s: %d of %d missing (first: %s)" % (c.name, miss, upto[c.name],
                                                                    first))
            fail("after %.0f s, not %s was read back: %s" % (timeout, what, "; ".join(parts)))
        time.sleep(interval)
    time.sleep(settle)
    return upto


def wait_delivered(mock, ctrs, procs, timeout=DELIVER, what="every line"):
    """Waits until every line written so far was read back at least once; returns the
    Result (read again after SETTLE, so that late duplicates are counted too)."""
    topics = sorted({c.topic for c in ctrs} | {TOPIC})
    upto = wait_read_back(lambda: total_end(mock, topics), lambda u: collect(mock, ctrs, u),
                          ctrs, procs, timeout, what, 0.3, SETTLE)
    for t in topics:
        check_log_kept(mock, t)
    return collect(mock, ctrs, upto)


def verify(res, ctrs, dups_ok=False, order="strict"):
    """Exact checks on a complete Result; returns the total of extra copies."""
    if res.errors:
        fail("%d wrong messages, first: %s" % (res.nerrors, "; ".join(res.errors[:3])))
    if res.unexpected:
        fail("%d messages that no container wrote, first: %s" % (len(res.unexpected),
                                                                  res.unexpected[:3]))
    extra_all = 0
    for c in ctrs:
        miss, first, dup, extra, maxc = res.stats(c.name)
        check(miss == 0, "%s: %d of %d lines missing, first: %s" % (c.name, miss,
                                                                    len(res.counts[c.name]), first))
        if dup:
            log("    %s: %d lines shipped more than once (%d extra copies, at most %d copies)" %
                (c.name, dup, extra, maxc))
        check(dups_ok or dup == 0, "%s: %d lines shipped more than once (%d extra copies)" %
              (c.name, dup, extra))
        extra_all += extra
        parts = res.partitions(c.name)
        check(len(parts) == 1, "%s: its messages (one key) are in partitions %s of %s, "
              "expected one" % (c.name, parts, c.topic))
        if order:
            bad = res.order_errors(c.name, first_only=(order == "first"))
            check(not bad, "%s: %d places out of order, first: %s" % (c.name, len(bad), bad[:3]))
    return extra_all


def error_lines(t):
    return [ln for ln in t.stderr_text().splitlines() if re.search(r"tailjet\[\d+\] error:", ln)]


# ------------------------------------------------------------------------------------------
# Cases


def case_delivery(binary, mockbin, env):
    """Two containers, one labeled logTopic=other: keys, topics, order, exact records."""
    mock = Mock(env, mockbin, [TOPIC, OTHER])
    root, ctrs = fake_root(env, ("web", {}), ("api", {"logTopic": OTHER}))
    t = tj_kafka(env, binary, mock, root)
    feed(ctrs, 2000, rate=2000, chunk=100)
    res = wait_delivered(mock, ctrs, [t])
    verify(res, ctrs)
    n_logs = sum(offsets(mock, TOPIC, -1).values())
    n_other = sum(offsets(mock, OTHER, -1).values())
    check((n_logs, n_other) == (2000, 2000),
          "end offsets: %s %d, %s %d; expected 2000 each" % (TOPIC, n_logs, OTHER, n_other))
    log("    partitions: web -> %s%s, api -> %s%s" % (TOPIC, res.partitions("web"), OTHER,
                                                      res.partitions("api")))
    errs = error_lines(t)
    check(not errs, "error lines on stderr: %s" % errs[:3])
    t.stop(STOP_BOUND)


def case_broker_down(binary, mockbin, env):
    """The leader of web's partition is down for 10 s while both containers write; api's
    partition has another leader (moved there first if needed) and must keep flowing."""
    mock = Mock(env, mockbin, [TOPIC, OTHER])
    root, ctrs = fake_root(env, ("web", {}), ("api", {"logTopic": OTHER}))
    web, api = ctrs
    t = tj_kafka(env, binary, mock, root)
    feeder = Feeder(ctrs, 3000, rate=200, chunk=20)   # ~15 s
    feeder.start()
    try:
        feeder.wait_written(200)
        res = wait_delivered(mock, ctrs, [t], what="the first 200 lines")
        pw, pa = res.partitions("web")[0], res.partitions("api")[0]
        broker = leaders(mock, TOPIC)[pw]
        if leaders(mock, OTHER)[pa] == broker:
            other = broker % 3 + 1
            mock.cmd("leader %s %d %d" % (OTHER, pa, other))
            log("    api's partition %s[%d] moved from broker %d to %d first" %
                (OTHER, pa, broker, other))
            wait_until(lambda: leaders(mock, OTHER)[pa] == other, 10.0, "the new leader")
            time.sleep(1.0)
        log("    leaders of %s: %s, of %s: %s; web is in %s[%d], api in %s[%d]; broker %d goes "
            "down" % (TOPIC, leaders(mock, TOPIC), OTHER, leaders(mock, OTHER), TOPIC, pw,
                      OTHER, pa, broker))
        before = web.seq

        def api_end():
            return offsets(mock, OTHER, -1, [pa])[pa]
        a0 = api_end()
        mock.cmd("down %d" % broker)
        t_down = time.monotonic()
        time.sleep(9.0)
        a1 = api_end()
        time.sleep(max(0.0, 10.0 - (time.monotonic() - t_down)))
        t.check_alive("while broker %d was down" % broker)
        mock.cmd("up %d" % broker)
        t_up = time.monotonic()
        log("    broker %d down for %.1f s; web wrote %d lines meanwhile; api's partition got "
            "%d messages (%d written)" % (broker, t_up - t_down, web.seq - before, a1 - a0,
                                          api.seq - before))
        feeder.finish()
    finally:
        feeder.stop()
    res = wait_delivered(mock, ctrs, [t], timeout=60.0)
    figure("broker_down: broker up -> every line read back (incl. kcat polling)", "%.2f s" %
           (time.monotonic() - t_up - SETTLE))
    extra = verify(res, ctrs, dups_ok=True, order="first")
    log("    duplicates: %d extra copies (the mock does not deduplicate retries of requests "
        "it had appended before closing the connection)" % extra)
    check(a1 - a0 >= 1000, "while web's partition leader was down, api's partition (another "
          "leader) got only %d messages in 9 s (api wrote ~1800): one stuck partition held "
          "back the other container" % (a1 - a0))
    said = [ln for ln in t.stderr_text().splitlines() if " kafka: " in ln]
    log("    tailjet's kafka lines on stderr: %d%s" % (len(said), (", first: " + said[0][:200])
                                                       if said else ""))
    t.stop(STOP_BOUND)


def case_produce_errors(binary, mockbin, env):
    """20 Produce requests fail with REQUEST_TIMED_OUT (7), then 20 with
    NOT_LEADER_OR_FOLLOWER (6), mid-stream: nothing lost, nothing twice, order kept."""
    mock = Mock(env, mockbin, [TOPIC, OTHER, "probe"])
    root, ctrs = fake_root(env, ("web", {}), ("api", {"logTopic": OTHER}))
    t = tj_kafka(env, binary, mock, root)
    feed(ctrs, 3000, rate=600, chunk=20,   # ~5 s
         at=((500, lambda: mock.cmd("errors 20 7")), (1500, lambda: mock.cmd("errors 20 6"))))
    res = wait_delivered(mock, ctrs, [t])
    verify(res, ctrs)
    t.stop(STOP_BOUND)
    check_errors_consumed(mock, 40)


def check_errors_consumed(mock, n):
    """The errors pushed on the mock's Produce stack were all spent on tailjet's requests
    (else the case tested nothing): one probe message without retries must go through."""
    r = subprocess.run(["kcat", "-P", "-b", mock.bootstrap, "-t", "probe", "-X",
                        "message.send.max.retries=0", "-X", "enable.idempotence=false", "-X",
                        "acks=1"], input=b"probe\n", stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=30)
    check(r.returncode == 0, "a probe message after the run failed (%s): the %d errors pushed "
          "were not all spent on tailjet's Produce requests, so the case did not test them" %
          (r.stdout.decode(errors="replace").strip()[-200:], n))


def case_queue_full(binary, mockbin, env):
    """A 20,000-line backlog read at full speed into a tiny librdkafka queue
    (queue.buffering.max.messages=200): submits are refused with QUEUE_FULL and resumed where
    they stopped. Nothing lost, nothing twice, each container in order."""
    mock = Mock(env, mockbin, [TOPIC, OTHER])
    root, ctrs = fake_root(env, ("bulk", {}), ("live", {"logTopic": OTHER}))
    bulk, live = ctrs
    for _ in range(20):
        bulk.write(1000)
    t = tj_kafka(env, binary, mock, root, "tj", "--kafka-opt", "queue.buffering.max.messages=200",
                 "--chunk-bytes", "64KiB")
    feed([live], 2000, rate=1000, chunk=50)
    res = wait_delivered(mock, ctrs, [t])
    verify(res, ctrs)
    refused = re.findall(r"(\d+) refused submits", t.stderr_text())
    t.stop(STOP_BOUND)
    refused = re.findall(r"(\d+) refused submits", t.stderr_text())
    log("    exit summary: %s refused submits" % (refused[-1] if refused else "?"))


def case_permanent_error(binary, mockbin, env):
    """Two Produce requests fail with TOPIC_AUTHORIZATION_FAILED (29, not retriable): the
    contract holds such messages and produces them again every few seconds. Required: nothing
    lost, nothing twice, the cause logged, and a held group keeps its own order (it comes back
    after later lines, so at most one descent per failed request and container)."""
    mock = Mock(env, mockbin, [TOPIC, OTHER])
    root, ctrs = fake_root(env, ("web", {}), ("api", {"logTopic": OTHER}))
    t = tj_kafka(env, binary, mock, root)
    feed(ctrs, 2000, rate=500, chunk=20, at=((500, lambda: mock.cmd("errors 2 29")),))  # ~4 s
    res = wait_delivered(mock, ctrs, [t], timeout=30.0)
    verify(res, ctrs, order=None)
    said = [ln for ln in t.stderr_text().splitlines() if re.search(r"(warn|error): kafka:", ln)]
    for ln in said[:2]:
        log("    stderr: %s" % ln[:240])
    check(any("authorization" in ln.lower() for ln in said),
          "nothing on stderr names the authorization failure")
    for c in ctrs:
        bad = res.order_errors(c.name)
        log("    %s: %d places out of order%s" % (c.name, len(bad),
                                                  (", first: %s" % bad[:3]) if bad else ""))
        check(len(bad) <= 2, "%s: %d places out of order (2 failed requests: at most 2 expected): "
              "the held lines do not come back in their own order, first: %s" %
              (c.name, len(bad), bad[:3]))
    t.stop(STOP_BOUND)


def case_batch_too_large(binary, mockbin, env):
    """One Produce request fails with MESSAGE_TOO_LARGE (10), as a broker answers when a
    record batch exceeds the topic's max.message.bytes, although each record is ~660 B.
    Required: every line arrives, unchanged (not cut, not tagged _truncated), none twice."""
    mock = Mock(env, mockbin, [TOPIC, OTHER])
    root, ctrs = fake_root(env, ("web", {}), ("api", {"logTopic": OTHER}))
    t = tj_kafka(env, binary, mock, root)
    feed(ctrs, 1000, rate=500, chunk=20, at=((400, lambda: mock.cmd("errors 1 10")),))  # ~2 s
    try:
        res = wait_delivered(mock, ctrs, [t], timeout=15.0)
    finally:
        said = [ln for ln in t.stderr_text().splitlines()
                if re.search(r"(warn|error): kafka:", ln)]
        dropped = [ln for ln in said if "not shipped" in ln]
        log("    %d kafka lines on stderr, %d say a record is not shipped%s" %
            (len(said), len(dropped), (", first: " + dropped[0][:200]) if dropped else ""))
    verify(res, ctrs, order=None)
    check(not dropped, "tailjet says %d records are not shipped" % len(dropped))
    t.stop(STOP_BOUND)


def kill9_thrice(ctrs, start):
    """Feeds 4000 lines a container (~8 s) to tailjet started by start(name), killed with
    SIGKILL after 800, 1800 and 2800 lines and started again each time; returns the runs."""
    runs = [start("run1")]

    def kill():
        runs[-1].kill9()
        log("    kill -9 of run %d after %d lines per container" % (len(runs),
                                                                      min(c.seq for c in ctrs)))
        time.sleep(0.2)
        runs.append(start("run%d" % (len(runs) + 1)))

    feed(ctrs, 4000, rate=500, chunk=25, at=[(n, kill) for n in (800, 1800, 2800)])
    return runs


def case_kill9(binary, mockbin, env):
    """kill -9 three times mid-stream, restart with the same --state-dir: every line present;
    the duplicates are counted."""
    mock = Mock(env, mockbin, [TOPIC, OTHER])
    root, ctrs = fake_root(env, ("web", {}), ("api", {"logTopic": OTHER}))
    args = ("--checkpoint-interval", "200ms")
    t = kill9_thrice(ctrs, lambda name: tj_kafka(env, binary, mock, root, name, *args))[-1]
    res = wait_delivered(mock, ctrs, [t])
    extra = verify(res, ctrs, dups_ok=True, order=None)
    per = ", ".join("%s %d" % (c.name, res.stats(c.name)[3]) for c in ctrs)
    figure("kill9: duplicates after 3 kill -9 (8000 lines)", "%d extra copies (%s)" % (extra, per))
    t.stop(STOP_BOUND)


def run_status(env, binary, args, name, timeout=15.0):
    t = env.tailjet(binary, args, name=name)
    rc = t.wait(timeout)
    return rc, t.stderr_text()


def case_bad_options(binary, mockbin, env):
    logs = env.mkdir("logs")
    path = os.path.join(logs, "app.log")
    with open(path, "w") as f:
        for i in range(10):
            f.write("seq=%06d c=file line\n" % i)
    base = ["--watch", path, "--state-dir", env.path("state")]
    good = "kafka://127.0.0.1:1/t"

    rc, err = run_status(env, binary, base + ["--output", good, "--kafka-opt",
                                              "no.such.property=1"], "unknown-prop")
    check(rc == 2 and "no.such.property" in err,
          "--kafka-opt no.such.property=1: exit %d (expected 2), stderr %r" % (rc, err[-500:]))
    log("    unknown property: exit 2: %s" % err.strip().splitlines()[-1][:200])
    rc, err = run_status(env, binary, base + ["--output", good, "--kafka-opt", "acks=banana"],
                         "bad-value")
    check(rc == 2 and "acks" in err and "banana" in err,
          "--kafka-opt acks=banana: exit %d (expected 2), stderr %r" % (rc, err[-500:]))
    log("    invalid value: exit 2: %s" % err.strip().splitlines()[-1][:200])
    for uri in ("kafka://127.0.0.1:9092", "kafka://127.0.0.1:9092/", "kafka:///t"):
        rc, err = run_status(env, binary, base + ["--output", uri], "bad-uri")
        check(rc == 2 and uri in err, "--output %s: exit %d (expected 2 naming the URI), "
              "stderr %r" % (uri, rc, err[-500:]))
    check(not os.path.exists(env.path("state", "checkpoints")),
          "a run refused for its options wrote %s" % env.path("state", "checkpoints"))

    # An unreachable broker: tailjet runs on, says so, holds the 10 records.
    t = env.tailjet(binary, base + ["--output", good, "--shutdown-timeout", "2s"],
                    name="unreachable")
    t0 = time.monotonic()
    warn = re.compile(r"tailjet\[\d+\] warn: kafka: .*cannot reach")
    wait_until(lambda: warn.search(t.stderr_text()), 10.0,
               "a `warn: kafka: ... cannot reach ...` line on stderr", procs=[t])
    said = time.monotonic() - t0
    line = next(ln for ln in t.stderr_text().splitlines() if warn.search(ln))
    log("    unreachable broker: said after %.2f s: %s" % (said, line[:200]))
    time.sleep(1.0)
    t.check_alive("with an unreachable broker")
    t1 = time.monotonic()
    os.kill(t.pid, signal.SIGTERM)
    rc = t.wait(STOP_BOUND + 5)
    took = time.monotonic() - t1
    last = t.stderr_text().strip().splitlines()[-1:]
    figure("unreachable broker: SIGTERM (--shutdown-timeout 2s) -> exit",
           "status %d after %.2f s; last line: %s" % (rc, took, last[0][:200] if last else ""))
    check(took <= 2.0 + 5.0, "exit took %.1f s with --shutdown-timeout 2s" % took)

    # Held, not dropped: the next run (same state dir) ships all 10 to a broker that answers.
    mock = Mock(env, mockbin, ["t"])
    t2 = env.tailjet(binary, base + ["--output", "kafka://%s/t" % mock.bootstrap],
                     name="after")

    def got():
        return [m for m in read_topic(mock, "t")] if sum(offsets(mock, "t", -1).values()) \
            >= 10 else None
    msgs = wait_until(got, DELIVER, "the 10 lines held by the unreachable run", procs=[t2])
    time.sleep(SETTLE)
    msgs = read_topic(mock, "t")
    seqs = sorted(int(m.group(1)) if m else -1 for m in (
        re.fullmatch(r"seq=(\d{6}) c=file line", json.loads(x.value).get("message", ""))
        for x in msgs))
    check(seqs == list(range(10)), "the next run shipped %s, expected 0..9 once each" % seqs)
    check(all(m.key == path for m in msgs), "keys %s, expected the file path %s" %
          (sorted({m.key for m in msgs}), path))
    t2.stop(STOP_BOUND)


def case_many_topics(binary, mockbin, env):
    """300 containers, each with its own logTopic label: every topic gets its container's
    lines (there is no cap on the number of topics one tailjet produces to)."""
    n, per = 300, 2
    names = ["t%03d" % i for i in range(n)]
    mock = Mock(env, mockbin, [TOPIC])  # the others made on first use (creating 300 is slow)
    root, ctrs = fake_root(env, *[("c%03d" % i, {"logTopic": names[i]}) for i in range(n)])
    for c in ctrs:
        c.write(per)
    t = tj_kafka(env, binary, mock, root)

    def ends():
        args = ["-Q", "-b", mock.bootstrap]
        for name in names:
            for p in range(AUTO_PARTITIONS):
                args += ["-t", "%s:%d:-1" % (name, p)]
        got = dict.fromkeys(names, 0)
        for tp, o in re.findall(r"(t\d{3}) \[\d+\] offset (-?\d+)", kcat(args)):
            got[tp] += max(0, int(o))
        short = [name for name in names if got[name] < per]
        return None if short else got
    t0 = time.monotonic()
    got = None
    try:
        got = wait_until(ends, DELIVER, "%d lines in each of %d topics" % (per, n), procs=[t])
    finally:
        if got is None:
            log("    stderr tail: %s" % tail_text(t.stderr_text()))
    figure("%d topics, %d lines each: all delivered" % (n, per), "%.1f s" % (time.monotonic() - t0))
    time.sleep(SETTLE)
    for i in (0, 255, 256, n - 1):  # exact records on both sides of the old 256-topic cap
        msgs = read_topic(mock, names[i])
        seqs = [int(LINE_RE.match(json.loads(m.value)["message"]).group(1)) for m in msgs]
        check(seqs == list(range(per)) and all(m.key == ctrs[i].id for m in msgs),
              "topic %s holds %s (keys %s), expected lines 0..%d of %s" %
              (names[i], seqs, sorted({m.key for m in msgs}), per - 1, ctrs[i].name))
    errs = error_lines(t)
    check(not errs, "error lines on stderr: %s" % errs[:3])
    t.stop(STOP_BOUND)


CASES = [  # (case, time bound in seconds)
    (case_delivery, 60),
    (case_broker_down, 90),
    (case_produce_errors, 60),
    (case_queue_full, 60),
    (case_permanent_error, 60),
    (case_batch_too_large, 60),
    (case_kill9, 90),
    (case_bad_options, 90),
    (case_many_topics, 90),
]


def main(binary, mockbin):
    os.environ.setdefault("TAILJET_METRICS_ADDR", "off")  # no /metrics port shared by the runs
    check(shutil.which("kcat"), "kcat is missing: apt-get install kcat (scripts/setup.sh)")
    run_cases(CASES, "kafka-", lambda case, env: case(binary, mockbin, env), figures=FIGURES)


if __name__ == "__main__":
    main_wrapper(main, ("PATH/TO/tailjet", "PATH/TO/tj_kafka_mock"))
