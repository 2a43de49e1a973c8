#!/usr/bin/env python3
"""legacy_names.py: writes patterns/legacy.names, the field names tailjet's library uses under
ecs_compatibility => disabled.

    python3 tests/logstash/legacy_names.py UPSTREAM_PATTERNS_DIR > patterns/legacy.names

UPSTREAM_PATTERNS_DIR holds logstash-patterns-core's ecs-v1/ and legacy/ definition files
(git show v4.3.1:patterns/... of a fetched checkout). Only their field names are read: for each
pattern that both sets define, the captures of the ecs-v1 definition are paired with those of
the legacy one (in order when they have as many, else by the sub-patterns they capture), which
tells what each ECS field was called before ECS. Our own definitions (patterns/*.grok) are then
walked the same way, and each of their captures gets a line:

    NAME<TAB>ECS_FIELD<TAB>LEGACY_FIELD[:type]   the capture is renamed (typed as legacy types it)
    NAME<TAB>ECS_FIELD<TAB>-                     the legacy pattern does not capture it

A capture with no line keeps its ECS name in legacy mode too (a pattern upstream defines only
for ECS, or one whose captures could not be paired: counted on stderr).
"""
import difflib
import glob
import os
import re
import sys

CAP = re.compile(r'%\{(\w+):([^:}]+)(?::(\w+))?\}|\(\?<([^>!=][^>]*)>')


def load(pattern):
    defs = {}
    for path in sorted(glob.glob(pattern)):
        with open(path, encoding='utf-8') as f:
            for line in f:
                line = line.rstrip('\n')
                if not line.strip() or line.lstrip().startswith('#'):
                    continue
                name, _, body = line.partition(' ')
                defs[name] = body.strip()
    return defs


def captures(body):
    return [(m[1] or '', m[2] or m[4], m[3]) for m in CAP.finditer(body)]


# top-level names of tailjet's record metadata that a pattern may not replace
RESERVED = {'service', 'event', 'host', 'container', 'log', 'stream', 'docker', 'tags',
            '@timestamp'}
NUMS = {'INT', 'NUMBER', 'POSINT', 'NONNEGINT', 'BASE10NUM', 'BASE16NUM'}
TEXT = {'DATA', 'GREEDYDATA', 'NOTSPACE', 'WORD', ''}


def kind(sub):
    """What a capture takes, loosely: a number, some text, or the named sub-pattern."""
    return 'N' if sub in NUMS else 'T' if sub in TEXT else sub


def pair(a, b):
    """Pairs captures a (ecs) with b (legacy): {index in a: index in b}."""
    if len(a) == len(b):
        return {i: i for i in range(len(a))}
    out = {}
    sm = difflib.SequenceMatcher(a=[kind(x[0]) for x in a], b=[kind(x[0]) for x in b],
                                 autojunk=False)
    for tag, i1, i2, j1, j2 in sm.get_opcodes():
        if tag == 'equal' or (tag == 'replace' and i2 - i1 == j2 - j1):
            for k in range(i2 - i1):
                out[i1 + k] = j1 + k
    return out


def main():
    up = sys.argv[1]
    ecs = load(os.path.join(up, 'ecs-v1', '*'))
    leg = load(os.path.join(up, 'legacy', '*'))
    here = os.path.dirname(os.path.abspath(__file__))
    ours = load(os.path.join(here, '..', '..', 'patterns', '*.grok'))
    lines, kept = [], 0
    for name in sorted(ours):
        if name not in ecs or name not in leg:
            continue
        a, b, o = captures(ecs[name]), captures(leg[name]), captures(ours[name])
        if not o:
            continue
        p = pair(a, b)
        by_field = {}
        for i, (_, field, _) in enumerate(a):
            by_field.setdefault(field, i)
        # our captures to upstream ecs ones: in order when as many, else by field name
        mine = {i: i for i in range(len(o))} if len(o) == len(a) else {
            i: by_field[f] for i, (_, f, _) in enumerate(o) if f in by_field}
        seen = set()
        for i, (_, field, _) in enumerate(o):
            if field in seen:
                continue
            seen.add(field)
            j = mine.get(i)
            if j is None and len(a) != len(b):
                kept += 1
                continue  # not paired: keeps its ECS name
            if j is None or j not in p:
                lines.append(f'{name}\t{field}\t-')
                continue
            _, lf, lt = b[p[j]]
            if lf in RESERVED:
                lf = 'legacy_' + lf  # tailjet's own objects (service is the Docker service)
            lines.append(f'{name}\t{field}\t{lf}{":" + lt if lt else ""}')
    print('# Legacy (ecs_compatibility => disabled) field names of the library\'s captures:')
    print('# NAME<TAB>ECS field<TAB>legacy field[:type], or - when the legacy pattern does not')
    print('# capture it. Written by tests/logstash/legacy_names.py (see the README, Patterns).')
    print('\n'.join(lines))
    print(f'{len(lines)} renames, {kept} captures left with their ECS name', file=sys.stderr)


main()
