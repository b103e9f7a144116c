#!/bin/bash
# SPDX-License-Identifier: MIT
#
# Instructions (valgrind --tool=callgrind) on the two lookup paths, for one
# revision, so a restructure can be compared with the tree before it:
#   nss   per _nss_ztna_gethostbyname4_r call: bench-nss's "count" loop,
#         random names over a store of NSS_PEERS records (as `make bench`);
#   stub  per UDP query the stub answers from the tailnet: ztnad on the
#         bundled example tailnet, in a network namespace of its own,
#         asked STUB_QUERIES A queries one at a time for two of its names;
#         counted inside the stub's UDP handler (on_udp).
# The revision is built (release flags) in a temporary worktree; nothing
# else is changed. Needs root (unshare --net), valgrind, python3.
# Usage: bash tests/tools/measure-paths.sh [REV]   (default HEAD)
set -euo pipefail
rev=${1:-HEAD}
NSS_PEERS=${NSS_PEERS:-1000}
NSS_CALLS=${NSS_CALLS:-2000}
STUB_QUERIES=${STUB_QUERIES:-2000}
repo=$(cd "$(dirname "$0")/../.." && pwd)
d=$(mktemp -d)
chmod 0755 "$d" # the module trusts no store in a world-writable directory
cleanup() {
	cd /
	git -C "$repo" worktree remove --force "$d/src" >/dev/null 2>&1 || true
	rm -rf "$d"
}
trap cleanup EXIT
git -C "$repo" worktree add --detach "$d/src" "$rev" >/dev/null 2>&1
cd "$d/src"
echo "== $rev ($(git log -1 --format=%h\ %s | cut -c1-60))"
make -s -j2 build/ztnad build/bench/bench-nss >/dev/null

# ---- nss ----
build/bench/bench-nss store "$d/records" "$NSS_PEERS" >/dev/null
ZTNA_STORE=$d/records valgrind --tool=callgrind --toggle-collect=_nss_ztna_gethostbyname4_r \
	--callgrind-out-file="$d/nss.cg" build/bench/bench-nss count "$NSS_PEERS" "$NSS_CALLS" \
	>"$d/nss.out" 2>"$d/nss.log"
grep -q "^count.$NSS_PEERS.failures=0\$" "$d/nss.out" || { echo "nss: lookups failed" >&2; exit 1; }
ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$d/nss.cg")
echo "nss  calls=$NSS_CALLS records=$NSS_PEERS instructions=$ir per_call=$((ir / NSS_CALLS))"

# ---- stub ----
unshare --net bash -s "$d" "$STUB_QUERIES" <<'IN'
set -euo pipefail
d=$1 n=$2
ip link set lo up
printf 'store = %s\nstate_dir = %s\ncontrol_socket = %s\n[dns]\nlisten = 127.0.0.1:5300\nupstream = 127.0.0.9:853#upstream.invalid\n' \
	"$d/stub-records" "$d/state" "$d/control.sock" >"$d/ztnad.conf"
valgrind --tool=callgrind --toggle-collect=on_udp --callgrind-out-file="$d/stub.cg" \
	build/ztnad -c "$d/ztnad.conf" --example 2>"$d/ztnad.log" &
pid=$!
i=0
until [ -s "$d/stub-records" ]; do
	i=$((i + 1))
	if [ $i -gt 300 ] || ! kill -0 $pid 2>/dev/null; then
		echo "stub: ztnad did not publish" >&2; tail -n 5 "$d/ztnad.log" >&2; exit 1
	fi
	sleep 0.1
done
python3 - "$n" <<'PY'
import socket, struct, sys
n = int(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(10)
names = ["win-a.yourorg.zt.net", "mac-b.yourorg.zt.net"]
for i in range(n):
    q = struct.pack(">HHHHHH", i, 0x0100, 1, 0, 0, 0)
    for label in names[i % 2].split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack(">HH", 1, 1)
    s.sendto(q, ("127.0.0.1", 5300))
    r = s.recv(4096)
    if struct.unpack(">H", r[:2])[0] != i or r[3] & 15 or struct.unpack(">H", r[6:8])[0] < 1:
        sys.exit("stub: query %d not answered from the tailnet" % i)
PY
kill -INT $pid
wait $pid || true
ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$d/stub.cg")
echo "stub queries=$n instructions=$ir per_query=$((ir / n))"
IN
