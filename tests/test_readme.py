#!/usr/bin/env python3
"""test_readme.py: the README documents every command, option and environment variable the
binary has, and its Deploy section matches the deployment files.

Usage: test_readme.py PATH/TO/tailjet. Checks:
- every command of `tailjet --help` has its `## \\`tailjet CMD\\`` section and a line in the
  Reference section's synopsis; `tailjet --version` is in the synopsis;
- every option of `tailjet CMD --help` is named (`--opt`) in that command's section;
- every `[env: VAR]` of the help texts is in the Reference section;
- Deploy: the commands the packaging test runs (docker build, network create, stack deploy) are
  there as written; every variable deploy/stack.yml reads (${VAR...}) is explained; each
  com.df.* label of the stack is in the table with the stack's value; the Prometheus job names
  the stack's service, port and path; the systemd unit's file name is the one installed.
Exit status 0 when every check passes, 1 otherwise (each failure printed).
"""

import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(HERE, "engine"))
from tj_engine_util import check, fail, main_wrapper  # noqa: E402

failures = []


def expect(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what, flush=True)


def sections(text):
    """{heading: body} for the README's `## ` sections."""
    res, cur = {}, None
    for ln in text.splitlines():
        if ln.startswith("## "):
            cur = ln[3:].strip()
            res[cur] = ""
        elif cur is not None:
            res[cur] += ln + "\n"
    return res


def helptext(tailjet, *args):
    r = subprocess.run([tailjet] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30)
    check(r.returncode == 0, "tailjet %s exited with %d" % (" ".join(args), r.returncode))
    return r.stdout.decode()


def check_commands(tailjet, secs):
    top = helptext(tailjet, "--help")
    cmds = re.findall(r"^  ([a-z]+) {2,}", top.split("commands:", 1)[1], re.M)
    check(cmds, "no commands in `tailjet --help`:\n%s" % top)
    ref = secs.get("Reference", "")
    expect(ref, "the README has no `## Reference` section")
    expect("tailjet --version" in ref, "the Reference synopsis does not show tailjet --version")
    envs = set()
    for c in cmds:
        body = secs.get("`tailjet %s`" % c)
        expect(body is not None, "the README has no section ## `tailjet %s`" % c)
        expect(re.search(r"^tailjet %s\b" % c, ref, re.M),
               "the Reference synopsis has no line for tailjet %s" % c)
        h = helptext(tailjet, c, "--help")
        opts = re.findall(r"^  (--[a-z][a-z-]*)", h, re.M)
        expect(opts, "tailjet %s --help lists no option" % c)
        for o in opts:
            expect(body is not None and ("`%s " % o in body or "`%s`" % o in body),
                   "README, section `tailjet %s`: option %s is not documented" % (c, o))
        envs |= set(re.findall(r"\[env: ([A-Z_]+)\]", h))
    for e in sorted(envs):
        expect("`%s`" % e in ref, "the Reference section does not name the variable %s" % e)
    print("commands %s: their options and %d variables checked" % (cmds, len(envs)))


def check_deploy(secs):
    dep = secs.get("Deploy")
    check(dep, "the README has no `## Deploy` section")
    for cmd in ("docker build -t tailjet .", "docker network create --driver overlay monitor",
                "docker stack deploy -c deploy/stack.yml tailjet",
                "install -m 0644 deploy/tailjet.service /etc/systemd/system/tailjet.service"):
        expect(cmd in dep, "Deploy does not show `%s` (the tests run it as written)" % cmd)
    with open(os.path.join(REPO, "deploy", "stack.yml")) as f:
        stack = f.read()
    for var in sorted(set(re.findall(r"\$\{([A-Z_]+)", stack))):
        expect("`%s`" % var in dep, "Deploy does not explain the stack's variable %s" % var)
    labels = dict(re.findall(r"^\s+(com\.df\.[A-Za-z]+):\s*\"?([^\"\n]+)\"?\s*$", stack, re.M))
    expect(labels.get("com.df.notify") == "true", "deploy/stack.yml has no com.df.notify: true")
    for k, v in labels.items():
        expect(re.search(r"^\| `%s` \| `%s` \|" % (re.escape(k), re.escape(v)), dep, re.M),
               "Deploy's label table does not show %s = %s" % (k, v))
    port = labels.get("com.df.scrapePort")
    expect(re.search(r"--metrics-addr=0\.0\.0\.0:%s\b" % port, stack),
           "deploy/stack.yml's --metrics-addr is not 0.0.0.0:%s (com.df.scrapePort)" % port)
    job = re.search(r"job_name: (\S+)\n\s+metrics_path: (\S+)\n\s+dns_sd_configs:\n"
                    r"\s+- names: \[tasks\.(\S+)\]\n\s+type: A\n\s+port: (\d+)", dep)
    expect(job, "Deploy has no Prometheus job with dns_sd_configs")
    if job:
        expect(job.group(3) == "tailjet_tailjet" and job.group(4) == port and
               job.group(2) == labels.get("com.df.metricsPath", "/metrics"),
               "Deploy's Prometheus job %s does not match the stack (tasks.tailjet_tailjet, "
               "port %s, path %s)" % (job.groups(), port, labels.get("com.df.metricsPath")))
    print("deploy: commands, %d stack variables, %d labels and the scrape job checked" %
          (len(set(re.findall(r"\$\{([A-Z_]+)", stack))), len(labels)))


def main(tailjet):
    with open(os.path.join(REPO, "README.md")) as f:
        secs = sections(f.read())
    check_commands(tailjet, secs)
    check_deploy(secs)
    if failures:
        fail("%d README checks failed" % len(failures))


if __name__ == "__main__":
    main_wrapper(main)
