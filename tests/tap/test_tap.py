#!/usr/bin/env python3
"""test_tap.py: `tailjet tap`, GET /v1/tap, the /ui/ page's data and POST /v1/workbench of a
running `tailjet run` (label engine: CI runs it under ThreadSanitizer too).

Usage: test_tap.py PATH/TO/tailjet. Each case runs in its own temp dir (tj_engine_util.Env);
TJ_CASES=name,name runs some only.

Cases:
- failures: two fake containers (--docker-root) "web" and "api" whose pattern misses some of
  their lines; `tailjet tap --failures --limit 5` prints exactly 5 records, each tagged
  _grokparsefailure, and exits 0; `--service api` prints only api's records, `--container web`
  only web's; /v1/ui/services lists both with their pattern, counts and last failed lines, and
  a third, "slow", whose pattern backtracks past the match limit, with its _groktimeout count.
- stuck: throughput of tailjet run on a large file (records acknowledged per second, output
  file:/dev/null) without a tap and with a tap that never reads, 3 times each, interleaved (a `tailjet tap` stopped with
  SIGSTOP); the stuck tap must not slow it (at least half the rate without, on a loaded
  machine), and its drops are counted in tailjet_tap_dropped_total. The figures are printed.
- token: with --label-token-file, /v1/tap, /ui/ and /v1/workbench refuse a request without the
  token (401); `tailjet tap --token-file` works; /ui/?token= sets a cookie that then suffices.
- cli: `tailjet tap --ca-file` over HTTPS (tailjet run --tls-cert); SIGINT ends an idle tap at
  once with status 0; --rate 5 prints at most 5 records a second and says how many it did not
  print; a daemon that is not there is an error naming the address.
- twin: POST /v1/workbench and `tailjet parse` give the same records for the same pattern and
  lines (but @timestamp, the time of parsing); an invalid pattern answers PCRE2's message with
  its offset; more than 1000 lines are refused (413); a request that needs more than its CPU
  budget stops there and says so.
"""

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "engine"))
from tj_engine_util import (Env, check, fail, free_port, log, main_wrapper,  # noqa: E402
                            run_cases, wait_until)
from tj_fake_docker import fake_root  # noqa: E402

sys.path.insert(0, os.path.join(HERE, "..", "es"))
from tj_es_server import make_test_ca  # noqa: E402

PATTERN = "%{WORD:verb} %{URIPATH:url} %{INT:status:int}"
STOP_BOUND = 15.0


def http(url, data=None, headers=None, timeout=10.0):
    """(status, headers, body) of one request; HTTP errors are answers too."""
    req = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def metric(port, name):
    _, _, body = http("http://127.0.0.1:%d/metrics" % port)
    for line in body.decode().splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    return None


def wait_http(port, t):
    def up():
        try:
            return http("http://127.0.0.1:%d/health" % port, timeout=2)[0] in (200, 503)
        except OSError:
            return False
    wait_until(up, 20, "tailjet's HTTP endpoint", procs=[t])


def mixed(name):
    """Line seq of container name: every third misses the pattern (no '/')."""
    def text(seq):
        if seq % 3 == 2:
            return "oops %s line %d has no path" % (name, seq)
        return "GET /%s/%d 200" % (name, seq)
    return text


def start_tap(env, binary, port, *args, name="tap"):
    out = env.path(name + ".out")
    err = env.path(name + ".err")
    p = env.spawn([binary, "tap", "--addr", "127.0.0.1:%d" % port] + list(args),
                  stdout=open(out, "wb"), stderr=open(err, "wb"))
    return p, out, err


def read_json_lines(path):
    with open(path, "rb") as f:
        return [json.loads(ln) for ln in f.read().splitlines() if ln.strip()]


def case_failures(binary, env):
    labels = {"logPattern": PATTERN}
    root, (web, api, slow) = fake_root(env, ("web", labels), ("api", labels),
                                       ("slow", {"logPattern": "^(a|aa)+$"}))
    port = free_port()
    t = env.tailjet(binary, ["--docker-root", root, "--output", "file:" + env.path("out.ndjson"),
                             "--state-dir", env.path("state"), "--poll-interval", "200ms",
                             "--metrics-addr", "127.0.0.1:%d" % port])
    wait_http(port, t)
    fails, fails_out, fails_err = start_tap(env, binary, port, "--failures", "--limit", "5",
                                            name="fails")
    apis, apis_out, _ = start_tap(env, binary, port, "--service", "api", "--limit", "20",
                                  name="api")
    webs, webs_out, _ = start_tap(env, binary, port, "--container", "web", "--limit", "9",
                                  name="web")
    wait_until(lambda: metric(port, "tailjet_taps_open") == 3, 20, "3 taps connected",
               procs=[t])
    for _ in range(10):  # several chunks, so that the taps see several batches
        web.write(6, text=mixed("web"))
        api.write(6, text=mixed("api"))
        time.sleep(0.05)
    for p, what in ((fails, "tap --failures --limit 5"), (apis, "tap --service api --limit 20"),
                    (webs, "tap --container web --limit 9")):
        try:
            rc = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            fail("%s did not exit after its limit" % what)
        check(rc == 0, "%s exited %s" % (what, rc))
    recs = read_json_lines(fails_out)
    check(len(recs) == 5, "tap --failures --limit 5 printed %d records, expected 5" % len(recs))
    for r in recs:
        check("_grokparsefailure" in r.get("tags", []), "a record of --failures has no failure "
              "tag: %s" % r)
        check(r["message"].startswith("oops "), "a failure that should have matched: %s" % r)
    recs = read_json_lines(apis_out)
    check(len(recs) == 20, "tap --service api --limit 20 printed %d records" % len(recs))
    check(all(r["container"]["name"] == "api" for r in recs),
          "tap --service api printed another service's record: %s" %
          [r for r in recs if r["container"]["name"] != "api"][:1])
    check(any("verb" in r for r in recs) and any("tags" in r for r in recs),
          "tap --service api: expected matched and failed records alike")
    recs = read_json_lines(webs_out)
    check(len(recs) == 9 and all(r["container"]["name"] == "web" for r in recs),
          "tap --container web --limit 9: %d records, containers %s" %
          (len(recs), sorted({r["container"]["name"] for r in recs})))
    wait_until(lambda: metric(port, "tailjet_taps_open") == 0, 10, "the taps to be closed",
               procs=[t])
    slow.write(3, text=lambda seq: "a" * 30 + "b")  # past the match limit: _groktimeout

    def all_counted():
        _, _, body = http("http://127.0.0.1:%d/v1/ui/services" % port)
        data = json.loads(body)
        done = sum(s["matched"] + s["unmatched"] for s in data["services"]) == 123
        return data if done else None
    data = wait_until(all_counted, 30, "the 123 records counted in /v1/ui/services", procs=[t])
    svcs = {s["name"]: s for s in data["services"]}
    check(set(svcs) == {"web", "api", "slow"}, "services listed: %s" % sorted(svcs))
    check(svcs["slow"]["groktimeout"] == 3 and svcs["slow"]["unmatched"] == 3 and
          svcs["web"]["groktimeout"] == 0, "_groktimeout counts: slow %s, web %s" %
          (svcs["slow"], svcs["web"]))
    for name in ("web", "api"):
        s = svcs[name]
        check(s["patterns"] == [PATTERN], "%s's patterns: %s" % (name, s["patterns"]))
        check(s["matched"] == 40 and s["unmatched"] == 20,
              "%s's counts: %d matched, %d unmatched (expected 40, 20)" %
              (name, s["matched"], s["unmatched"]))
        last = data["failures"][name]["last"]
        check(len(last) == 20 and all(json.loads(x)["message"].startswith("oops %s" % name)
                                      for x in last),
              "%s's last failed lines: %d of them: %s" % (name, len(last), last[:2]))
        check(json.loads(last[-1])["message"] == "oops %s line 59 has no path" % name,
              "%s's newest failure is not the last failed line: %s" % (name, last[-1]))
    t.stop(STOP_BOUND)


def write_big(path, n):
    with open(path, "w") as f:
        chunk = []
        for i in range(n):
            if i % 10 == 9:
                chunk.append("oops line %d misses the pattern entirely\n" % i)
            else:
                chunk.append("GET /some/path/%d 200\n" % i)
            if len(chunk) == 10000:
                f.write("".join(chunk))
                chunk = []
        f.write("".join(chunk))


def shipping_rate(binary, env, big, n, stuck, name):
    """Lines/s of tailjet run shipping `big` (moved into its watched dir once ready)."""
    port = free_port()
    d = env.mkdir(name)
    t = env.tailjet(binary, ["--watch", os.path.join(d, "*.log"), "--pattern", PATTERN,
                             "--output", "file:/dev/null", "--state-dir", env.path(name + "-st"),
                             "--metrics-addr", "127.0.0.1:%d" % port], name=name)
    wait_http(port, t)
    tap = None
    if stuck:
        tap, _, _ = start_tap(env, binary, port, name=name + "-tap")
        wait_until(lambda: metric(port, "tailjet_taps_open") == 1, 20, "the tap connected",
                   procs=[t])
        os.kill(tap.pid, signal.SIGSTOP)  # it never reads again
    os.link(big, os.path.join(d, "big.log"))
    t0 = time.monotonic()
    wait_until(lambda: metric(port, "tailjet_output_records_acked_total") == n, 300,
               "%d records acknowledged" % n, procs=[t], interval=0.02)
    rate = n / (time.monotonic() - t0)
    dropped = metric(port, "tailjet_tap_dropped_total")
    sent = metric(port, "tailjet_tap_records_total")
    if tap:
        check(metric(port, "tailjet_taps_open") == 1, "the stuck tap was closed by tailjet")
        os.kill(tap.pid, signal.SIGKILL)
        tap.wait()
    t.stop(STOP_BOUND)
    return rate, dropped, sent


def case_stuck(binary, env):
    # Sanitizer builds run the same code several times slower: fewer lines there.
    sanitized = any(v in os.environ for v in ("TSAN_OPTIONS", "ASAN_OPTIONS"))
    n = int(os.environ.get("TJ_TAP_LINES", "300000" if sanitized else "1500000"))
    big = env.path("big.log")
    write_big(big, n)
    # Interleaved, best of three each: the machine is shared, its load changes by the second.
    frees, stucks = [], []
    for i in range(3):
        frees.append(shipping_rate(binary, env, big, n, False, "free%d" % i)[0])
        stucks.append(shipping_rate(binary, env, big, n, True, "stuck%d" % i))
    base = max(frees)
    rate, dropped, sent = max(stucks)
    log("    shipping %d lines (best of 3, interleaved): %.0f lines/s without a tap (runs: %s), "
        "%.0f lines/s with a stuck tap (runs: %s; %.0f%%); the stuck tap got %d records into "
        "its buffer, %d dropped" %
        (n, base, ", ".join("%.0f" % f for f in frees), rate,
         ", ".join("%.0f" % s[0] for s in stucks), 100.0 * rate / base, sent, dropped))
    check(dropped > 0, "a tap that never reads: no drops counted in tailjet_tap_dropped_total")
    check(dropped + sent == n, "the tap's records sent (%d) and dropped (%d) do not add up to %d"
          % (sent, dropped, n))
    check(rate >= 0.5 * base, "a stuck tap slowed shipping: %.0f lines/s against %.0f without"
          % (rate, base))


def case_token(binary, env):
    tok = env.path("token")
    with open(tok, "w") as f:
        f.write("s3cret-token\n")
    d = env.mkdir("logs")
    port = free_port()
    t = env.tailjet(binary, ["--watch", os.path.join(d, "*.log"), "--pattern", PATTERN,
                             "--output", "file:" + env.path("out.ndjson"),
                             "--state-dir", env.path("st"), "--label-token-file", tok,
                             "--metrics-addr", "127.0.0.1:%d" % port])
    wait_http(port, t)
    base = "http://127.0.0.1:%d" % port
    for path in ("/v1/tap", "/ui/", "/v1/ui/services", "/ui/?token=wrong"):
        st, _, _ = http(base + path)
        check(st == 401, "GET %s without the token: HTTP %d, expected 401" % (path, st))
    st, _, _ = http(base + "/v1/workbench", data=b'{"patterns":[],"lines":"x"}')
    check(st == 401, "POST /v1/workbench without the token: HTTP %d" % st)
    st, hdrs, body = http(base + "/ui/?token=s3cret-token")
    check(st == 200 and b"<html" in body, "GET /ui/?token=...: HTTP %d" % st)
    cookie = hdrs.get("Set-Cookie", "")
    check(cookie.startswith("tj_token=s3cret-token") and "HttpOnly" in cookie,
          "the page sets no token cookie: %r" % cookie)
    st, _, _ = http(base + "/v1/ui/services", headers={"Cookie": cookie.split(";")[0]})
    check(st == 200, "the cookie does not open /v1/ui/services: HTTP %d" % st)
    p, out, err = start_tap(env, binary, port, "--limit", "2", name="noauth")
    check(p.wait(timeout=20) == 1, "tailjet tap without the token did not fail")
    check("401" in open(err).read(), "tailjet tap without the token: %s" % open(err).read())
    p, out, err = start_tap(env, binary, port, "--token-file", tok, "--limit", "2", name="auth")
    wait_until(lambda: metric_auth(port, "s3cret-token") == 1, 20, "the tap connected",
               procs=[t])
    with open(os.path.join(d, "a.log"), "w") as f:
        f.write("GET /a 200\nGET /b 200\nGET /c 200\n")
    check(p.wait(timeout=20) == 0, "tailjet tap --token-file failed: %s" % open(err).read())
    check(len(read_json_lines(out)) == 2, "tailjet tap --token-file --limit 2: %s" %
          open(out).read())
    t.stop(STOP_BOUND)


def metric_auth(port, token):
    return metric(port, "tailjet_taps_open")  # /metrics itself needs no token


def case_twin(binary, env):
    d = env.mkdir("logs")
    port = free_port()
    t = env.tailjet(binary, ["--watch", os.path.join(d, "*.log"), "--output",
                             "file:" + env.path("out.ndjson"), "--state-dir", env.path("st"),
                             "--metrics-addr", "127.0.0.1:%d" % port])
    wait_http(port, t)
    lines = ("GET /index.html 200\nPOST /api/v1/items 201\nnot a request line\n"
             "DELETE /x 404 trailing words\n\u00e9t\u00e9 GET /caf\u00e9 500\n")
    patterns = ["%{WORD:http.request.method} %{URIPATH:url.path} %{INT:http.response.status_code:int}",
                "%{GREEDYDATA:rest}é %{WORD:w}"]
    req = json.dumps({"patterns": patterns, "lines": lines}).encode()
    st, _, body = http("http://127.0.0.1:%d/v1/workbench" % port, data=req,
                       headers={"Content-Type": "application/json"})
    check(st == 200, "POST /v1/workbench: HTTP %d %s" % (st, body[:300]))
    ans = json.loads(body)
    args = [binary, "parse", "--quiet"]
    for p in patterns:
        args += ["--pattern", p]
    cli = subprocess.run(args, input=lines.encode(), stdout=subprocess.PIPE, check=True,
                         timeout=30)
    cli_recs = [json.loads(x) for x in cli.stdout.splitlines()]

    def strip(r):
        r = dict(r)
        r.pop("@timestamp", None)
        return r
    check(len(ans["records"]) == len(cli_recs) == 5,
          "records: workbench %d, tailjet parse %d, expected 5" %
          (len(ans["records"]), len(cli_recs)))
    for a, b in zip(ans["records"], cli_recs):
        check(strip(a) == strip(b), "the workbench and tailjet parse differ:\n  %s\n  %s" % (a, b))
    check(ans["failed"] == [False, False, True, False, False],
          "failed marks: %s" % ans["failed"])
    check(ans["records"][0]["http"]["response"]["status_code"] == 200, "a typed field: %s" %
          ans["records"][0])
    bad = json.dumps({"patterns": ["%{WORD:a} (unclosed"], "lines": "x"}).encode()
    st, _, body = http("http://127.0.0.1:%d/v1/workbench" % port, data=bad)
    ans = json.loads(body)
    check(st == 200 and "missing closing parenthesis" in ans.get("error", "") and
          "offset" in ans["error"] and ans.get("pattern") == 1,
          "an invalid pattern: HTTP %d %s" % (st, body))
    cli = subprocess.run([binary, "parse", "--pattern", "%{WORD:a} (unclosed"], input=b"x\n",
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    check(cli.returncode == 2 and ans["error"] in cli.stderr.decode(),
          "tailjet parse names another error: %s (workbench: %s)" % (cli.stderr, ans["error"]))
    # legacy field names and the request's own definitions, against tailjet parse --ecs disabled
    # with the same definitions in a --patterns-dir file
    defs = "MYVERB (?:GET|POST)\nMYPATH /[a-z]+\n"
    lines2 = ('127.0.0.1 - - [07/Dec/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 12 "-" "curl"\n'
              "POST /items\nnothing here\n")
    pats2 = ["%{COMMONAPACHELOG}", "%{MYVERB:v} %{MYPATH:p}"]
    st, _, body = http("http://127.0.0.1:%d/v1/workbench" % port, data=json.dumps(
        {"patterns": pats2, "lines": lines2, "ecs": "disabled", "definitions": defs}).encode())
    ans = json.loads(body)
    check(st == 200 and "records" in ans, "ecs disabled with definitions: HTTP %d %s" %
          (st, body[:400]))
    pdir = env.mkdir("pdir")
    with open(os.path.join(pdir, "mine"), "w") as f:
        f.write(defs)
    args = [binary, "parse", "--quiet", "--ecs", "disabled", "--patterns-dir", pdir]
    for p in pats2:
        args += ["--pattern", p]
    cli = subprocess.run(args, input=lines2.encode(), stdout=subprocess.PIPE, check=True,
                         timeout=30)
    cli_recs = [json.loads(x) for x in cli.stdout.splitlines()]
    check(len(ans["records"]) == len(cli_recs) == 3, "ecs disabled: %d and %d records" %
          (len(ans["records"]), len(cli_recs)))
    for a, b in zip(ans["records"], cli_recs):
        check(strip(a) == strip(b), "ecs disabled: the workbench and tailjet parse differ:\n"
              "  %s\n  %s" % (a, b))
    check(ans["records"][0].get("clientip") == "127.0.0.1" and
          ans["records"][1].get("v") == "POST", "legacy names / definitions not applied: %s" %
          ans["records"][:2])
    # the event time from a field, against tailjet parse --timestamp
    ts = "timestamp dd/MMM/yyyy:HH:mm:ss Z"
    st, _, body = http("http://127.0.0.1:%d/v1/workbench" % port, data=json.dumps(
        {"patterns": ["%{COMMONAPACHELOG}"], "lines": lines2, "timestamp": ts}).encode())
    ans = json.loads(body)
    cli = subprocess.run([binary, "parse", "--quiet", "--pattern", "%{COMMONAPACHELOG}",
                          "--timestamp", ts], input=lines2.encode(), stdout=subprocess.PIPE,
                         check=True, timeout=30)
    cli_recs = [json.loads(x) for x in cli.stdout.splitlines()]
    def no_created(r):  # event.created: when the line was read, as @timestamp is otherwise
        r = json.loads(json.dumps(r))
        r.get("event", {}).pop("created", None)
        return r
    check(st == 200 and no_created(ans["records"][0]) == no_created(cli_recs[0]) and
          ans["records"][0]["@timestamp"].startswith("2026-12-07T10:00:00"),
          "--timestamp: the workbench %s, tailjet parse %s" % (body[:300], cli_recs[:1]))
    st, _, body = http("http://127.0.0.1:%d/v1/workbench" % port, data=json.dumps(
        {"patterns": ["%{BAD:x}"], "lines": "x", "definitions": "BAD (unclosed"}).encode())
    ans = json.loads(body)
    check(ans.get("pattern") == -1 and ans["error"].startswith("definitions:"),
          "a bad definition: %s" % body)
    many = json.dumps({"patterns": [], "lines": "x\n" * 1001}).encode()
    st, _, _ = http("http://127.0.0.1:%d/v1/workbench" % port, data=many)
    check(st == 413, "1001 lines: HTTP %d, expected 413" % st)
    # a pattern that backtracks badly: bounded by the match limit, answered quickly
    evil = json.dumps({"patterns": ["^(a+)+$"], "lines": ("a" * 40 + "b\n") * 50}).encode()
    t0 = time.monotonic()
    st, _, body = http("http://127.0.0.1:%d/v1/workbench" % port, data=evil, timeout=60)
    ans = json.loads(body)
    check(st == 200 and ans["stats"]["groktimeout"] + (50 - ans["stats"]["records"]) >= 1,
          "a catastrophic pattern: HTTP %d %s" % (st, body[:300]))
    log("    a catastrophic pattern on 50 lines answered in %.2f s (%s)" %
        (time.monotonic() - t0, ans["stopped"] or "every line run"))
    # 16 such alternatives on 1000 lines: more than the CPU budget of a request (2 s)
    heavy = json.dumps({"patterns": ["^(a|aa)+$(?#%d)" % i for i in range(16)],
                        "lines": "\n".join("a" * 30 + "b" for _ in range(1000))}).encode()
    t0 = time.monotonic()
    st, _, body = http("http://127.0.0.1:%d/v1/workbench" % port, data=heavy, timeout=120)
    ans = json.loads(body)
    log("    16 catastrophic alternatives on 1000 lines: %d lines run in %.2f s, then: %s" %
        (ans["stats"]["records"], time.monotonic() - t0, ans["stopped"]))
    check(st == 200 and ans["stopped"] and "CPU budget" in ans["stopped"] and
          0 < ans["stats"]["records"] < 1000 and ans["stats"]["groktimeout"] > 0,
          "a request past its CPU budget: HTTP %d %s" % (st, body[:300]))
    t.check_alive("after the workbench's heavy request")
    t.stop(STOP_BOUND)


def case_cli(binary, env):
    ca = make_test_ca(env.path("ca"))
    d = env.mkdir("logs")
    port = free_port()
    t = env.tailjet(binary, ["--watch", os.path.join(d, "*.log"), "--pattern", PATTERN,
                             "--output", "file:" + env.path("out.ndjson"),
                             "--state-dir", env.path("st"), "--tls-cert", ca["cert"],
                             "--tls-key", ca["key"], "--metrics-addr", "127.0.0.1:%d" % port])

    def taps_opened():
        """Taps opened so far (not the gauge: a tap that went counts until its next heartbeat)."""
        try:
            st, _, body = https_get(port, ca["ca_cert"])
        except OSError:
            return None
        m = [ln for ln in body.decode().splitlines() if ln.startswith("tailjet_taps_opened_total ")]
        return int(float(m[0].split()[1])) if m else None
    wait_until(lambda: taps_opened() is not None, 20, "tailjet's HTTPS endpoint", procs=[t])
    # HTTPS with --ca-file; Ctrl-C ends an idle tap at once, status 0
    p, out, err = start_tap(env, binary, port, "--ca-file", ca["ca_cert"], name="idle")
    wait_until(lambda: taps_opened() == 1, 20, "the HTTPS tap connected", procs=[t])
    t0 = time.monotonic()
    p.send_signal(signal.SIGINT)
    try:
        rc = p.wait(timeout=5)
    except subprocess.TimeoutExpired:
        fail("tailjet tap did not exit within 5 s of SIGINT")
    log("    an idle tap exited %.2f s after SIGINT" % (time.monotonic() - t0))
    check(rc == 0, "tailjet tap after SIGINT: exit %d, %s" % (rc, open(err).read()))
    # --rate 5: at most 5 a second printed, the rest counted and said
    p, out, err = start_tap(env, binary, port, "--ca-file", ca["ca_cert"], "--rate", "5",
                            name="rate")
    wait_until(lambda: taps_opened() == 2, 20, "the --rate tap connected", procs=[t])
    with open(os.path.join(d, "a.log"), "w") as f:
        f.write("".join("GET /r/%d 200\n" % i for i in range(200)))
    wait_until(lambda: os.path.getsize(out) > 0, 20, "the --rate tap's first records",
               procs=[t])
    t0 = time.monotonic()
    time.sleep(1.5)
    p.send_signal(signal.SIGINT)
    check(p.wait(timeout=5) == 0, "tailjet tap --rate: exit status")
    elapsed = time.monotonic() - t0
    n = len(read_json_lines(out))
    text = open(err).read()
    check(1 <= n <= 5 * (int(elapsed) + 3), "--rate 5 printed %d records in %.1f s" % (n, elapsed))
    check("not printed" in text and "%d not printed" % (200 - n) in text,
          "--rate 5: the records not printed are not said on stderr: %r (printed %d)" % (text, n))
    # a daemon that is not there
    p, out, err = start_tap(env, binary, free_port(), name="nobody")
    check(p.wait(timeout=20) == 1 and "tailjet run listening" in open(err).read(),
          "tailjet tap to no daemon: %s" % open(err).read())
    t.stop(STOP_BOUND)


def https_get(port, ca_file):
    ctx = ssl.create_default_context(cafile=ca_file)
    with urllib.request.urlopen("https://127.0.0.1:%d/metrics" % port, timeout=5,
                                context=ctx) as r:
        return r.status, r.headers, r.read()


CASES = [(case_failures, 240), (case_stuck, 600), (case_token, 240), (case_twin, 240),
         (case_cli, 240)]


def main(binary):
    run_cases(CASES, "tap-", lambda case, env: case(binary, env), width=10)


if __name__ == "__main__":
    main_wrapper(main)
