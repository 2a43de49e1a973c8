#!/usr/bin/env python3
"""test_readme.py: the documentation (README.md, the front page, and the pages of docs/) names
every command, option and environment variable the binary has, and its Deploy page matches the
deployment files.

Usage: test_readme.py PATH/TO/tailjet. Checks:
- README.md is a front page: at most 200 lines; it links every page of docs/, and every link
  from README.md or a docs page to a .md file of the repository points at a file that exists;
- every command of `tailjet --help` has its `## \\`tailjet CMD\\`` section (in README.md or a
  docs page) and a line in the Reference page's synopsis; `tailjet --version` is in the synopsis;
- every option of `tailjet CMD --help` is named (`--opt`) in that command's section, and every
  NAME of an output's options (`--es-opt NAME=VALUE`, listed by `tailjet run --help`) is named
  (`NAME=` or `NAME` in backquotes) in README.md or docs/;
- every `[env: VAR]` of the help texts is in the Reference page;
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


FRONT_MAX_LINES = 200


def pages():
    """{path relative to the repository: text} for README.md and every docs/*.md."""
    res = {}
    docs = os.path.join(REPO, "docs")
    for rel in ["README.md"] + sorted("docs/" + n for n in os.listdir(docs) if n.endswith(".md")):
        with open(os.path.join(REPO, rel)) as f:
            res[rel] = f.read()
    return res


def sections(texts):
    """{heading: body} for the `# ` and `## ` sections of all the pages (a page's title is a
    section too: docs/deploy.md's `# Deploy` is the section Deploy)."""
    res = {}
    for text in texts:
        cur = None
        for ln in text.splitlines():
            m = re.match(r"##? (.*)", ln)
            if m:
                cur = m.group(1).strip()
                check(cur not in res, "two sections are headed %r" % cur)
                res[cur] = ""
            elif cur is not None:
                res[cur] += ln + "\n"
    return res


def check_pages(docs):
    front = docs["README.md"]
    n = len(front.splitlines())
    expect(n <= FRONT_MAX_LINES, "README.md has %d lines: the front page holds at most %d, the "
           "rest goes to docs/" % (n, FRONT_MAX_LINES))
    linked = set(re.findall(r"\]\((docs/[A-Za-z0-9_.-]+\.md)(?:#[^)]*)?\)", front))
    pages_ = [p for p in docs if p.startswith("docs/")]
    expect(pages_, "docs/ has no page")
    for p in pages_:
        expect(p in linked, "README.md does not link %s" % p)
    nlinks = 0
    for p, text in docs.items():
        for target in re.findall(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", text):
            if "://" in target:
                continue
            nlinks += 1
            path = os.path.normpath(os.path.join(REPO, os.path.dirname(p), target))
            if not path.startswith(REPO + os.sep):
                continue  # outside the repository (../shared/DESIGN.md): not ours to check
            expect(os.path.exists(path), "%s links %s, which does not exist" % (p, target))
    print("pages: README.md (%d lines) links %d docs pages; %d links to .md files checked" %
          (n, len(pages_), nlinks))


def check_output_options(tailjet, alltext):
    """Every NAME of every output's NAME=VALUE list in `tailjet run --help`."""
    h = helptext(tailjet, "run", "--help")
    names, inblock = [], False
    for ln in h.splitlines():
        if re.match(r"^\S.* options \(--[a-z-]+ NAME=VALUE", ln):
            inblock = True
        elif not ln.strip() or re.match(r"^\S", ln):
            inblock = False
        elif inblock:
            m = re.match(r"^  ([a-z][a-z0-9_.]*)=", ln)
            if m:
                names.append(m.group(1))
    expect(names, "tailjet run --help lists no output option (NAME=VALUE)")
    for nm in names:
        expect("`%s=" % nm in alltext or "`%s`" % nm in alltext,
               "no page documents the output option %s (`%s=...`)" % (nm, nm))
    print("output options: %d names checked" % len(names))


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
    expect(ref, "no page has a Reference section (docs/reference.md)")
    expect("tailjet --version" in ref, "the Reference synopsis does not show tailjet --version")
    envs = set()
    for c in cmds:
        body = secs.get("`tailjet %s`" % c)
        expect(body is not None, "no page has a section ## `tailjet %s`" % c)
        expect(re.search(r"^tailjet %s\b" % c, ref, re.M),
               "the Reference synopsis has no line for tailjet %s" % c)
        h = helptext(tailjet, c, "--help")
        opts = re.findall(r"^  (--[a-z][a-z-]*)", h, re.M)
        expect(opts, "tailjet %s --help lists no option" % c)
        for o in opts:
            expect(body is not None and ("`%s " % o in body or "`%s`" % o in body),
                   "section `tailjet %s`: option %s is not documented" % (c, o))
        envs |= set(re.findall(r"\[env: ([A-Z_]+)\]", h))
    for e in sorted(envs):
        expect("`%s`" % e in ref, "the Reference section does not name the variable %s" % e)
    print("commands %s: their options and %d variables checked" % (cmds, len(envs)))


def check_deploy(secs):
    dep = secs.get("Deploy")
    check(dep, "no page has a Deploy section (docs/deploy.md)")
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
    docs = pages()
    secs = sections(docs.values())
    check_pages(docs)
    check_commands(tailjet, secs)
    check_output_options(tailjet, "\n".join(docs.values()))
    check_deploy(secs)
    if failures:
        fail("%d README checks failed" % len(failures))


if __name__ == "__main__":
    main_wrapper(main)
