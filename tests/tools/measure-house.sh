#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The house's figures for one revision: pairs of duplicated code
# (the `duplicates` tool, when it is on PATH), C lines per part (tests
# apart), the longest files, and the functions neither ztnad nor ztna
# references (built at -O0 with -ffunction-sections, linked with
# --gc-sections --print-gc-sections; curl's type-check helpers left out),
# and the cycles between parts and between files (nm: which object uses a
# symbol another defines; strongly connected components).
# The revision is checked out in a temporary worktree; nothing here is
# changed.
# Usage: bash tests/tools/measure-house.sh [REV]   (default HEAD)
set -u
rev=${1:-HEAD}
repo=$(cd "$(dirname "$0")/../.." && pwd)
d=$(mktemp -d)
git -C "$repo" worktree add --detach "$d" "$rev" >/dev/null 2>&1 || exit 1
cd "$d"
echo "== $rev ($(git log -1 --format=%h\ %s | cut -c1-60))"
if command -v duplicates >/dev/null 2>&1; then
	echo "-- duplicates (whole tree, pairs):"; duplicates --most 1 --seconds 120 | head -1
	echo "-- duplicates (ztnad/ only):"; duplicates --repo ztnad --most 1 --seconds 120 | head -1
fi
echo "-- C lines per folder (non-test):"
find ztnad shm nss_ztna -name '*.[ch]' ! -name 'test-*' | xargs wc -l | sort -k2 | awk '$2!="total"{split($2,p,"/"); k=(p[2] ~ /\.[ch]$/ ? p[1] : p[1]"/"p[2]); n[k]+=$1} END{for(k in n) printf "   %-16s %6d\n", k, n[k]}' | sort
echo "-- longest files:"; find ztnad shm nss_ztna -name '*.[ch]' ! -name 'test-*' | xargs wc -l | grep -v total | sort -rn | head -3
echo "-- dead functions (gc-sections: removed from every binary whose link includes the object):"
make -s -j2 B=build-gc CFLAGS="-O0 -ffunction-sections -fdata-sections" build-gc/ztnad build-gc/ztna >/dev/null 2>&1
for bin in ztnad ztna; do
	rm -f build-gc/$bin
	make -s B=build-gc CFLAGS="-O0 -ffunction-sections -fdata-sections" LDFLAGS="-Wl,--gc-sections -Wl,--print-gc-sections" build-gc/$bin 2> gc-$bin.log >/dev/null
	grep -o "removing unused section '.text\.[^']*' in file 'build-gc/obj/[^']*'" gc-$bin.log | sed "s/removing unused section '.text\.\([^']*\)' in file 'build-gc\/obj\/\([^']*\)'/\2 \1/" | sort -u > gc-$bin.txt
done
python3 - <<'PY2'
import re, subprocess
mk = subprocess.run(['make','-pn','B=build-gc'],capture_output=True,text=True).stdout
def srcs(var):
    m = re.search(r'^%s := (.*)$' % var, mk, re.M)
    return {s[:-2] + '.o' for s in m.group(1).split()} if m else set()
objs = {'ztnad': srcs('ZTNAD_SRC'), 'ztna': srcs('ZTNA_SRC')}
removed = {b: {tuple(l.split()) for l in open('gc-%s.txt' % b)} for b in objs}
dead = set()
for b in objs:
    for o, f in removed[b]:
        if all((o, f) in removed[c] for c in objs if o in objs[c]):
            dead.add((o, f))
dead = {x for x in dead if not x[1].startswith("_curl_")}
print(len(dead))
for o, f in sorted(dead):
    print("  ", o, f)
PY2
echo "-- cycles (objects of ztnad, ztna and shm; an edge where one calls what another defines):"
python3 - <<'PY3'
import subprocess, glob, os, re, sys
objs = sorted(glob.glob('build-gc/obj/ztnad/**/*.o', recursive=True) + glob.glob('build-gc/obj/shm/*.o'))
objs = [o for o in objs if not os.path.basename(o).startswith('test-')]
defs, uses = {}, {}
for o in objs:
    out = subprocess.run(['nm', o], capture_output=True, text=True).stdout
    uses[o] = set()
    for l in out.splitlines():
        f = l.split()
        if len(f) == 2 and f[0] == 'U':
            uses[o].add(f[1])
        elif len(f) == 3 and f[1] in 'TDBR':
            defs.setdefault(f[2], o)
name = lambda o: o[len('build-gc/obj/'):-2]
def sccs(nodes, edges):
    idx, low, st, on, out, n = {}, {}, [], set(), [], [0]
    def go(v):
        idx[v] = low[v] = n[0]; n[0] += 1; st.append(v); on.add(v)
        for w in edges.get(v, ()):
            if w not in idx:
                go(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], idx[w])
        if low[v] == idx[v]:
            c = []
            while True:
                w = st.pop(); on.discard(w); c.append(w)
                if w == v: break
            if len(c) > 1: out.append(sorted(c))
    sys.setrecursionlimit(10000)
    for v in nodes:
        if v not in idx: go(v)
    return out
fe = {name(o): {name(defs[s]) for s in uses[o] if s in defs and defs[s] != o} for o in objs}
part = lambda f: f.split('/')[1] if f.startswith('ztnad/') else f.split('/')[0]
pe = {}
for a, bs in fe.items():
    for b in bs:
        if part(a) != part(b): pe.setdefault(part(a), set()).add(part(b))
fc, pc = sccs(list(fe), fe), sccs(sorted({part(f) for f in fe}), pe)
print("   between parts (folders): %d" % len(pc))
for c in pc: print("     ", " <-> ".join(c))
print("   between files (objects calling each other): %d" % len(fc))
for c in fc: print("     ", " <-> ".join(c))
PY3
cd /; git -C "$repo" worktree remove --force "$d"
