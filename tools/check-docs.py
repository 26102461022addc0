#!/usr/bin/env python3
"""Checks the documentation against the tree (part of `make test`; no build needed):

- every relative link in README.md, CONTRIBUTING.md and docs/ resolves to a file;
- every document under docs/ is reachable from README.md's links, directly or through
  docs/adr/README.md;
- every test (or function) a document cites exists: a `file.rs::name` citation, and every
  backticked name of four or more words joined by underscores, must be a `fn` somewhere in the
  Rust sources (for `file.rs::name`, in a file of that name).
"""
import os
import re
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
os.chdir(root)

docs = ['README.md', 'CONTRIBUTING.md']
for dp, _, fns in os.walk('docs'):
    docs += [os.path.join(dp, f) for f in fns if f.endswith('.md')]

fns_by_file = {}
all_fns = set()
for top in ('shared', 'functions', 'tests', 'emulator'):
    for dp, dn, fns in os.walk(top):
        dn[:] = [d for d in dn if d != 'target']
        for f in fns:
            if f.endswith('.rs'):
                text = open(os.path.join(dp, f), encoding='utf-8').read()
                names = set(re.findall(r'\bfn\s+([a-z_][a-z0-9_]*)', text))
                fns_by_file.setdefault(f, set()).update(names)
                all_fns |= names

problems = []
links = {}
for d in docs:
    if not os.path.exists(d):
        problems.append(f'{d}: missing')
        continue
    text = open(d, encoding='utf-8').read()
    base = os.path.dirname(d)
    out = set()
    for target in re.findall(r'\]\(([^)#\s]+)(?:#[^)]*)?\)', text):
        if re.match(r'^[a-z]+:', target):
            continue
        path = os.path.normpath(os.path.join(base, target))
        if not os.path.exists(path):
            problems.append(f'{d}: link to {target} ({path}) does not exist')
        out.add(path)
    links[d] = out
    for file, name in re.findall(r'`?([\w-]+\.rs)::([a-z_][a-z0-9_]*)`?', text):
        if name not in fns_by_file.get(file, set()):
            problems.append(f'{d}: cites {file}::{name}, which is no fn in any {file}')
    for name in re.findall(r'`([a-z][a-z0-9]*(?:_[a-z0-9]+){5,})`', text):
        if name not in all_fns:
            problems.append(f'{d}: cites `{name}`, which is no fn in the Rust sources')

seen, todo = set(), ['README.md']
while todo:
    d = todo.pop()
    if d in seen:
        continue
    seen.add(d)
    todo += [t for t in links.get(d, ()) if t.endswith('.md')]
for d in docs:
    if d.startswith('docs') and os.path.normpath(d) not in seen:
        problems.append(f'{d}: not reachable from README.md')

for p in problems:
    print('docs: ' + p)
print(f'docs: {len(docs)} documents, {sum(len(v) for v in links.values())} links, {len(problems)} problems')
sys.exit(1 if problems else 0)
