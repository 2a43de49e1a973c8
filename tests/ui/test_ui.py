#!/usr/bin/env python3
"""test_ui.py: the /ui/ page of `tailjet run` in a real browser: Debian's chromium, headless,
driven by playwright-core (tests/ui/node_modules, from `npm ci` in scripts/setup.sh; no browser
is downloaded). A missing chromium, node or playwright-core is a FAIL, never a skip.

Usage: test_ui.py PATH/TO/tailjet SCREENSHOT.png

Two fake containers (--docker-root) "web" and "api" with a pattern that misses some lines ship
records; the page shows both in its services table with their pattern and _grokparsefailure
counts, and web's last failed lines; in the workbench, a pattern and three lines give the
extracted fields (verb, url.path, status as a number) and the line that misses is marked failed;
an invalid pattern shows PCRE2's message; with the legacy field names (ECS disabled) and a custom
definition, %{COMMONAPACHELOG} gives clientip and verb; the live tail of web shows the lines appended to web's
log once it streams, the failed ones marked. A second tailjet with --label-token-file refuses the
page without the token (401) and serves it, table and all, with ?token=. The screenshot of the
page (docs/running.md shows docs/ui.png, made by this test) is written to SCREENSHOT.png.
"""

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "engine"))
from tj_engine_util import (Env, check, fail, free_port, log, main_wrapper,  # noqa: E402
                            run_cases, wait_until)
from tj_fake_docker import fake_root  # noqa: E402

PATTERN = "%{WORD:verb} %{URIPATH:url} %{INT:status:int}"
CHROMIUM = os.environ.get("TJ_CHROMIUM", "/usr/bin/chromium")
SHOT = None


def up(port):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/health" % port, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def mixed(name):
    def text(seq):
        return ("oops %s line %d has no path" % (name, seq) if seq % 3 == 2
                else "GET /%s/%d 200" % (name, seq))
    return text


def case_page(binary, env):
    for need, how in ((CHROMIUM, "apt-get install chromium (scripts/setup.sh)"),
                      (shutil.which("node") or "node", "apt-get install nodejs (scripts/setup.sh)"),
                      (os.path.join(HERE, "node_modules", "playwright-core"),
                       "cd tests/ui && npm ci (scripts/setup.sh)")):
        check(os.path.exists(need), "%s is missing: %s" % (need, how))
    labels = {"logPattern": PATTERN}
    root, (web, api) = fake_root(env, ("web", labels), ("api", labels))
    web.write(30, text=mixed("web"))
    api.write(12, text=mixed("api"))
    port, tport = free_port(), free_port()
    t = env.tailjet(binary, ["--docker-root", root, "--output", "file:" + env.path("out.ndjson"),
                             "--state-dir", env.path("state"), "--poll-interval", "200ms",
                             "--metrics-addr", "127.0.0.1:%d" % port])
    tok = env.path("token")
    with open(tok, "w") as f:
        f.write("ui-secret\n")
    t2 = env.tailjet(binary, ["--docker-root", root, "--output", "file:" + env.path("out2.ndjson"),
                              "--state-dir", env.path("state2"), "--poll-interval", "200ms",
                              "--label-token-file", tok, "--metrics-addr", "127.0.0.1:%d" % tport],
                     name="tj-token")
    wait_until(lambda: up(port) and up(tport), 20, "both tailjets' HTTP endpoints", procs=[t, t2])

    def counted():  # every line written so far is in the table before the browser looks
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/v1/ui/services" % port,
                                        timeout=5) as r:
                data = json.loads(r.read())
        except OSError:
            return False
        return sum(x["matched"] + x["unmatched"] for x in data["services"]) == 42
    wait_until(counted, 30, "the 42 records counted", procs=[t])
    env_js = dict(os.environ, PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD="1",
                  PLAYWRIGHT_BROWSERS_PATH=env.path("no-browsers"))
    t0 = time.monotonic()
    r = subprocess.run(["node", os.path.join(HERE, "test_ui.js"), "http://127.0.0.1:%d" % port,
                        SHOT, web.log, "http://127.0.0.1:%d" % tport, "ui-secret"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env_js, timeout=240)
    if r.returncode != 0:
        fail("the browser run failed (exit %d): %s" % (r.returncode, r.stderr.decode()[-3000:]))
    out = json.loads(r.stdout)
    log("    chromium run: %.1f s; screenshot %s" % (time.monotonic() - t0, SHOT))
    check(out["status"] == 200, "/ui/: HTTP %s" % out["status"])
    svcs = {s["name"]: s for s in out["services"]}
    check(set(svcs) == {"web", "api"}, "the services table shows %s" % sorted(svcs))
    check(PATTERN in svcs["web"]["patterns"], "web's patterns column: %r" % svcs["web"]["patterns"])
    check("_grokparsefailure 10" in svcs["web"]["tags"] and "_grokparsefailure 4" in
          svcs["api"]["tags"], "failures by tag: web %r, api %r" % (svcs["web"]["tags"],
                                                                    svcs["api"]["tags"]))
    check("66.7" in svcs["web"]["share"], "web's matched share: %r" % svcs["web"]["share"])
    wf = out["web_failures"]
    check(len(wf) == 10 and all("oops web line" in x and "_grokparsefailure" in x for x in wf),
          "web's last failed lines on the page: %s" % wf)
    recs = out["records"]
    check(len(recs) == 3, "the workbench shows %d records, expected 3" % len(recs))
    check(recs[0]["fields"].get("verb") == "GET" and recs[0]["fields"].get("url.path") ==
          "/index.html" and recs[0]["fields"].get("status") == "200" and not recs[0]["failed"],
          "the first record's fields: %s" % recs[0])
    check(recs[1]["failed"] and "_grokparsefailure" in recs[1]["fields"].get("tags", ""),
          "the line that misses is not marked failed: %s" % recs[1])
    check(recs[2]["fields"].get("verb") == "POST" and not recs[2]["failed"],
          "the third record: %s" % recs[2])
    tail = [json.loads(d["text"]) for d in out["tail"]]
    check(len(tail) == 6 and all(r["container"]["name"] == "web" for r in tail),
          "the live tail of web shows: %s" % out["tail"])
    check([r["message"] for r in tail] == ["GET /tail/0 200", "GET /tail/1 200",
                                            "tail 2 misses the pattern", "GET /tail/3 200",
                                            "GET /tail/4 200", "tail 5 misses the pattern"],
          "the live tail's lines: %s" % [r["message"] for r in tail])
    check([d["failed"] for d in out["tail"]] == [False, False, True, False, False, True],
          "the live tail marks failures: %s" % out["tail"])
    check("missing closing parenthesis" in out["error"] and "offset" in out["error"],
          "an invalid pattern shows: %r" % out["error"])
    leg = out["legacy"]
    check(len(leg) == 1 and leg[0]["fields"].get("clientip") == "10.1.2.3" and
          leg[0]["fields"].get("verb") == "GET" and leg[0]["fields"].get("extra") == "tail",
          "ECS disabled with a definition of its own: %s" % leg)
    check(out["no_token"]["status"] == 401 and "token is required" in out["no_token"]["text"],
          "/ui/ without the token: %s" % out["no_token"])
    check(out["with_token"]["status"] == 200 and set(out["with_token"]["services"]) ==
          {"web", "api"}, "/ui/?token=: %s" % out["with_token"])
    check(os.path.getsize(SHOT) > 10000, "the screenshot is empty")
    t.stop(15)
    t2.stop(15)


def main(binary, shot):
    global SHOT
    SHOT = os.path.abspath(shot)
    run_cases([(case_page, 300)], "ui-", lambda case, env: case(binary, env), width=6)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: test_ui.py PATH/TO/tailjet SCREENSHOT.png", file=sys.stderr)
        sys.exit(2)
    shot_arg = sys.argv.pop()
    main_wrapper(lambda binary: main(binary, shot_arg))
