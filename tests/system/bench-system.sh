#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The system benchmark of "make bench" (tests/bench/run-bench.sh, step 8): in the
# booted Debian 12 container of tests/system/container.sh, with the packages of
# build/deb installed, what the NSS module saves over systemd-resolved
# routing the tailnet's domain to ztnad's stub, and what resolved adds in
# front of the stub.
#
#   1. getaddrinfo(host-012345.yourorg.zt.net) through "hosts: files ztna"
#      vs "hosts: files resolve", resolved's cache warm, AF_UNSPEC and
#      AF_INET, and the floor: the name in the hosts file, "hosts: files"
#      (tests/bench/bench-gai.c compare: one warm server per variant, each in a
#      private mount namespace inside the container with its own
#      nsswitch.conf and hosts file, asked for batches round-robin).
#   2. One UDP query for a tailnet name, as dig sends it: to resolved
#      (127.0.0.53:53) with its cache warm, to resolved with a name it has
#      not cached (it forwards to the stub), and straight to the stub;
#      interleaved, medians.
#
# resolved is configured here as ztna's DNS manager would (resolvectl on
# the ztna0 link: the stub at 127.0.0.1:5300, "~yourorg.zt.net" routing
# only, no DoT, no DNSSEC) so the figures need nothing of the DNS manager.
#
# Prints "sys.KEY=VALUE" lines on stdout for run-bench.sh's table,
# progress on stderr; "sys.failed=WHAT" and exit 1 when a measurement could
# not be made (a missing figure is a failure, never n/a).
#
# Environment: B (build dir, default build), BENCH_QUICK=1 for fewer
# repetitions. Needs what tests/system/test-system.sh needs, make deb and make
# bench's build/bench/bench-gai.
# ct_install_debs without arguments: the default packages.
# shellcheck disable=SC2119
set -uo pipefail

cd "$(dirname "$0")/../.." || exit 1
B=${B:-build}
# shellcheck source=tests/system/container.sh
. tests/system/container.sh

say() {
	printf 'bench-system: %s\n' "$*" >&2
}
fail() {
	echo "sys.failed=$*"
	say "FAIL: $*"
	exit 1
}

# BENCH_GAI_PEER and BENCH_GAI_NAME of tests/bench/bench-peers.h.
GAI_PEER=12345
GAI_NAME=host-012345.yourorg.zt.net
STUB_PORT=5300
if [ "${BENCH_QUICK:-0}" = 1 ]; then
	GAI_ROUNDS=5 GAI_CALLS=50 GAI_WARMUP=50 UDP_QUERIES=200
else
	GAI_ROUNDS=40 GAI_CALLS=200 GAI_WARMUP=500 UDP_QUERIES=2000
fi
# Peers for the resolved-miss queries: one name per query, plus the peer
# of the getaddrinfo benchmark.
PEERS=$((UDP_QUERIES + 10))

ct_require
ct_private_mounts "$0" "$@"
[ -x "$B/bench/bench-gai" ] || fail "no $B/bench/bench-gai (make bench builds it)"
ls "$B"/deb/ztnad_*.deb "$B"/deb/libnss-ztna_*.deb >/dev/null 2>&1 || fail "no packages in $B/deb (make deb)"

say "booting the container"
ct_start >&2
ct_resolved_install >&2 || fail "installing systemd-resolved in the container"

# The tailnet: bench-peers.h's peers 0..PEERS-1 and GAI_PEER (IPv4
# 100.64.0.0 + i + 1, IPv6 fd7a:115c:a1e0:: with the IPv4 address last).
/usr/bin/python3 - "$PEERS" "$GAI_PEER" >"$CT_RUN/bench-peers.json" <<'EOF'
import ipaddress, json, sys
n, extra = int(sys.argv[1]), int(sys.argv[2])
peers = []
for i in sorted(set(range(n)) | {extra}):
    v4 = ipaddress.IPv4Address(int(ipaddress.IPv4Address("100.64.0.0")) + i + 1)
    v6 = ipaddress.IPv6Address(int(ipaddress.IPv6Address("fd7a:115c:a1e0::")) + int(v4))
    peers.append({"name": "host-%06d" % i, "addresses": [str(v4), str(v6)], "online": True})
json.dump({"domain": "yourorg.zt.net", "ranges": ["100.64.0.0/10", "fd7a:115c:a1e0::/48"],
           "ttl": 300, "peers": peers}, sys.stdout)
EOF
ct_ztnad_conf "listen = 127.0.0.1:$STUB_PORT" >&2 || fail "copying ztnad.conf in"
ct_copy_in "$CT_RUN/bench-peers.json" /etc/ztna/test-peers.json || fail "copying the peers in"
ct_install_debs >&2 || fail "installing the packages in the container"
ct_wait_active ztnad.service >&2 || fail "ztnad.service did not start"
out=$(ct_exec dig +short +time=2 +tries=1 -p "$STUB_PORT" @127.0.0.1 "$GAI_NAME")
[ "$out" = 100.64.48.58 ] || fail "the stub answered '$out' for $GAI_NAME"

# resolved routes the tailnet domain to the stub, as the DNS manager would.
ct_sh "resolvectl dns $CT_TUN 127.0.0.1:$STUB_PORT && resolvectl domain $CT_TUN '~yourorg.zt.net' &&
	resolvectl dnsovertls $CT_TUN no && resolvectl dnssec $CT_TUN no &&
	resolvectl default-route $CT_TUN no" >&2 || fail "configuring resolved on $CT_TUN"
out=$(ct_exec resolvectl query --legend=no "$GAI_NAME" 2>&1)
grep -q 100.64.48.58 <<<"$out" || fail "resolved did not route $GAI_NAME to the stub: $out"

# ---- 1: getaddrinfo through the two hosts lines ----
ct_copy_in "$B/bench/bench-gai" /root/bench-gai 0755 || fail "copying bench-gai in"
# The floor: the peer in the hosts file, "hosts: files" (glibc's own work
# in this container, which AF_UNSPEC's address sorting dominates).
for v in "ztna:files ztna" "resolve:files resolve" "files:files"; do
	sed "s/^hosts:.*/hosts: ${v#*:}/" "$CT_ROOT/etc/nsswitch.conf" >"$CT_RUN/nss.${v%%:*}"
	ct_copy_in "$CT_RUN/nss.${v%%:*}" "/root/nsswitch.${v%%:*}"
done
{
	cat "$CT_ROOT/etc/hosts"
	echo "100.64.48.58 $GAI_NAME"
	echo "fd7a:115c:a1e0::6440:303a $GAI_NAME"
} >"$CT_RUN/hosts.files"
ct_copy_in "$CT_RUN/hosts.files" /root/hosts.files
ct_exec cp /etc/hosts /root/hosts.ztna
ct_exec cp /etc/hosts /root/hosts.resolve
# NAME FAMILY: ztna and resolve for both families, the floor for AF_UNSPEC.
{
	for vf in "ztna unspec" "resolve unspec" "files unspec" "ztna inet" "resolve inet"; do
		# shellcheck disable=SC2086
		set -- $vf
		name=$1
		[ "$2" = inet ] && name=${1}4
		echo "$name 1 exec unshare --mount --propagation private sh -c 'mount --bind /root/nsswitch.$1 /etc/nsswitch.conf && mount --bind /root/hosts.$1 /etc/hosts && exec /root/bench-gai serve $GAI_NAME $2 $GAI_WARMUP $GAI_CALLS'"
	done
} >"$CT_RUN/variants"
ct_copy_in "$CT_RUN/variants" /root/variants
say "getaddrinfo $GAI_NAME: hosts: files ztna vs files resolve ($GAI_ROUNDS rounds of $GAI_CALLS calls)"
ct_timeout 600 /root/bench-gai compare "$GAI_ROUNDS" /root/variants >"$CT_RUN/gai.out" 2>"$CT_RUN/gai.err" ||
	{ cat "$CT_RUN/gai.err" >&2; fail "bench-gai compare in the container"; }
cat "$CT_RUN/gai.out" >&2
for k in ztna resolve files ztna4 resolve4; do
	v=$(sed -n "s/^gai\.$k\.median_ns=//p" "$CT_RUN/gai.out")
	[ -n "$v" ] || fail "bench-gai printed no median for $k"
	echo "sys.gai.$k.median_ns=$v"
done
echo "sys.gai.rounds=$GAI_ROUNDS"
echo "sys.gai.calls=$GAI_CALLS"

# ---- 2: one UDP query, via resolved and straight to the stub ----
cat >"$CT_RUN/udp-time.py" <<'EOF'
import random, socket, statistics, struct, sys, time

def query(name):
    qid = random.randrange(65536)
    wire = b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    return qid, struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0) + wire + struct.pack("!HH", 1, 1)

def ask(sock, addr, name):
    qid, msg = query(name)
    t0 = time.perf_counter_ns()
    sock.sendto(msg, addr)
    while True:
        data = sock.recv(4096)
        if struct.unpack("!H", data[:2])[0] == qid:
            break
    t = time.perf_counter_ns() - t0
    if data[3] & 0x0F != 0 or struct.unpack("!H", data[6:8])[0] == 0:
        raise SystemExit("no answer for %s from %s" % (name, addr))
    return t

n, warm_name, stub_port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
resolved, stub = ("127.0.0.53", 53), ("127.0.0.1", stub_port)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
for _ in range(50):
    ask(s, resolved, warm_name)
    ask(s, stub, warm_name)
warm, miss, direct = [], [], []
for i in range(n):
    # interleaved, the order turning each time
    steps = [lambda: warm.append(ask(s, resolved, warm_name)),
             lambda: miss.append(ask(s, resolved, "host-%06d.yourorg.zt.net" % i)),
             lambda: direct.append(ask(s, stub, warm_name))]
    for k in range(3):
        steps[(i + k) % 3]()
for key, v in (("resolved_warm", warm), ("resolved_miss", miss), ("stub", direct)):
    print("sys.udp.%s.median_ns=%d" % (key, statistics.median(v)))
print("sys.udp.queries=%d" % n)
EOF
ct_copy_in "$CT_RUN/udp-time.py" /root/udp-time.py
say "one UDP query for a tailnet name: resolved (warm, miss) vs the stub ($UDP_QUERIES each)"
ct_timeout 600 python3 /root/udp-time.py "$UDP_QUERIES" "$GAI_NAME" "$STUB_PORT" >"$CT_RUN/udp.out" 2>&1 ||
	fail "the UDP timing: $(tail -3 "$CT_RUN/udp.out")"
for k in resolved_warm resolved_miss stub; do
	grep -q "^sys\.udp\.$k\.median_ns=[0-9]" "$CT_RUN/udp.out" || fail "no UDP median for $k"
done
cat "$CT_RUN/udp.out"
# Nothing of the tailnet reached the stand-in or the DoT upstream.
n=$(ct_leaks | wc -l)
echo "sys.leaks=$n"
[ "$n" -eq 0 ] || fail "$n tailnet queries reached the stand-in or the DoT upstream"
ct_teardown
exit 0
