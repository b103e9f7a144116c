#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The store's persisted copy (docs/store-fallback.md) through the real
# glibc: ztnad publishes and saves the copy, stops, the store is removed (a
# reboot empties /run the same way), and then getent, the C getaddrinfo
# client and Python resolve with `hosts: files ztna [!UNAVAIL=return] dns`
# while a stand-in "public" DNS server on 127.0.0.1 logs every name it is
# asked. With a trusted copy no tailnet name and no tailnet-range PTR may
# reach it; without one (none, or untrusted) the old behaviour returns and
# they do, which is also what shows the stand-in would see a leak.
#
# Everything runs in a private mount and network namespace (unshare):
# nsswitch.conf, hosts and resolv.conf are bind-mounted over /etc's there
# only, and checked unchanged on the host at the end.
#
# Needs root, unshare, ip, python3, and
# `make all build/gai-client`.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build
# shellcheck source=lib.sh
. "$root/tests/lib.sh"

if [ "${1-}" != --in-namespace ]; then
	for f in libnss_ztna.so.2 ztnad gai-client; do
		if [ ! -e "$build/$f" ]; then
			not_ok "build/$f is missing (make all build/gai-client)"
			finish
		fi
	done
	if [ "$(id -u)" != 0 ]; then
		not_ok "needs root (namespaces, bind mounts, the store's trust checks)"
		finish
	fi
	rc=0
	host_etc_kept unshare --mount --net --propagation private bash "$0" --in-namespace || rc=$?
	[ "$rc" -eq 0 ] && ok "the checks in the namespace passed" || not_ok "the checks in the namespace failed (exit $rc)"
	finish
fi

# ---- inside the private namespaces ----

temp_dir
tmp=$dir
dns_pid= ztnad_pid=
cleanup() { stop_pids "$ztnad_pid" "$dns_pid"; }

own_etc_net "$tmp"
printf 'hosts: files ztna [!UNAVAIL=return] dns\n' >"$tmp/nsswitch.conf"
printf '127.0.0.1 localhost\n' >"$tmp/hosts"

# The stand-in public DNS: logs "NAME QTYPE" per query; public.example is
# 192.0.2.53, every other name NXDOMAIN.
python3 "$root/tests/harness/plain-dns.py" public.example "$tmp/dns.log" "$tmp/dns.ready" &
dns_pid=$!
wait_for 5 test -e "$tmp/dns.ready" || true
check "the stand-in DNS server listens on 127.0.0.1:53" test -e "$tmp/dns.ready"

# ---- ztnad, with a private store and copy ----

mkdir -m 0755 "$tmp/run" "$tmp/cache"
store=$tmp/run/records
copy=$tmp/cache/records
ztnad_conf "$tmp" "store_fallback = $copy"
cat >"$tmp/peers.json" <<'EOF'
{"domain": "yourorg.zt.net",
 "peers": [{"name": "Win-A", "addresses": ["100.64.0.1", "fd7a:115c:a1e0::1"]},
           {"name": "Linux-B", "addresses": ["100.64.0.2"]}]}
EOF
chmod 0644 "$tmp/peers.json"

ztnad_start() {
	"$build/ztnad" -c "$tmp/ztnad.conf" --peers "$tmp/peers.json" 2>>"$tmp/ztnad.log" &
	ztnad_pid=$!
}
ztnad_stop() {
	kill -TERM "$ztnad_pid" 2>/dev/null
	wait "$ztnad_pid" 2>/dev/null
	ztnad_pid=
}

# Lookups as every process makes them, the store and the copy named for
# the module (it reads no copy for a ZTNA_STORE otherwise).
out= rc=0
run() {
	rc=0
	out=$(env ZTNA_STORE="$store" ZTNA_STORE_FALLBACK="$copy" LD_LIBRARY_PATH="$build" "$@" 2>"$tmp/stderr") || rc=$?
}
ge() { run getent "$@"; }
gai() { run "$build/gai-client" "$@"; }
py() {
	run python3 -c '
import socket, sys
try:
    res = socket.getaddrinfo(sys.argv[1], None, socket.AF_INET, socket.SOCK_STREAM)
except socket.gaierror as e:
    print("error", e.errno)
    sys.exit(1)
for r in res:
    print(r[4][0])
' "$1"
}
first_field() { awk '{ print $1 }' <<<"$out" | sort -u | tr '\n' ' '; }
GAI_NONAME=2 GAI_AGAIN=3
dns_clear() { : >"$tmp/dns.log"; }
# Tailnet names and tailnet-range PTRs the stand-in saw.
leaked() {
	grep -iE 'yourorg\.zt\.net|(^|\.)(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\.100\.in-addr\.arpa|0\.e\.1\.a\.c\.5\.1\.1\.a\.7\.d\.f\.ip6\.arpa' \
		"$tmp/dns.log"
}

ztnad_start
check "ztnad publishes the store" wait_for 10 test -s "$store"
check "ztnad saves the copy about a second later" wait_for 10 test -s "$copy"
check "the copy is 0644 and one link" test "$(stat -c '%a %h' "$copy" 2>/dev/null)" = "644 1"

# A change just before SIGTERM: saved on the way out, not a second later.
cat >"$tmp/peers.new" <<'EOF'
{"domain": "yourorg.zt.net",
 "peers": [{"name": "Win-A", "addresses": ["100.64.0.1", "fd7a:115c:a1e0::1"]},
           {"name": "Linux-B", "addresses": ["100.64.0.2"]},
           {"name": "Mac-C", "addresses": ["100.64.0.3"]}]}
EOF
chmod 0644 "$tmp/peers.new"
mv "$tmp/peers.new" "$tmp/peers.json"
mac_c_live() {
	env ZTNA_STORE="$store" ZTNA_STORE_FALLBACK= LD_LIBRARY_PATH="$build" \
		getent -s 'hosts: ztna' ahostsv4 mac-c.yourorg.zt.net >/dev/null 2>&1
}
check "the store has Mac-C" wait_for 10 mac_c_live
ztnad_stop
run env ZTNA_STORE="$copy" getent -s 'hosts: ztna' ahostsv4 mac-c.yourorg.zt.net
check "the copy has Mac-C: the change was saved when ztnad stopped" test "$(first_field)" = "100.64.0.3 "
check "no temporary file left beside the copy" test "$(ls "$tmp/cache")" = "$(printf 'records\nrecords.lock')"

# ---- no store, the copy in place (a reboot, a daemon that cannot start) ----

rm -f "$store"
dns_clear
ge ahostsv4 win-a.yourorg.zt.net
check "getent ahostsv4 win-a.yourorg.zt.net: 100.64.0.1 from the copy" test "$(first_field)" = "100.64.0.1 "
ge ahosts Win-A
check "getent ahosts Win-A: both addresses" test "$(first_field)" = "100.64.0.1 fd7a:115c:a1e0::1 "
ge hosts 100.64.0.1
check "getent hosts 100.64.0.1: Win-A.yourorg.zt.net" grep -q 'Win-A.yourorg.zt.net' <<<"$out"
gai -f inet Linux-B.yourorg.zt.net
check "gai-client Linux-B.yourorg.zt.net: inet 100.64.0.2" test "$rc $out" = "0 inet 100.64.0.2"
py win-a.yourorg.zt.net
check "Python getaddrinfo win-a.yourorg.zt.net: 100.64.0.1" test "$rc $(sort -u <<<"$out")" = "0 100.64.0.1"
gai nobody.yourorg.zt.net
check "gai-client nobody.yourorg.zt.net: EAI_AGAIN (the copy may be older than the peer)" test "$rc" = "$GAI_AGAIN"
ge ahostsv4 yourorg.zt.net
check "getent ahostsv4 yourorg.zt.net fails" test "$rc" != 0
gai -r 100.64.9.9
check "getnameinfo 100.64.9.9 (in the ranges, unknown) fails" test "$rc" != 0
ge hosts fd7a:115c:a1e0::99
check "getent hosts fd7a:115c:a1e0::99 fails" test "$rc" != 0
ge ahostsv4 public.example
check "a public name still goes to DNS: public.example is 192.0.2.53" test "$(first_field)" = "192.0.2.53 "
check "the stand-in saw public.example" grep -q '^public.example ' "$tmp/dns.log"
if leaked >"$tmp/leaks"; then
	not_ok "tailnet names reached the stand-in: $(tr '\n' ' ' <"$tmp/leaks")"
else
	ok "no tailnet name or tailnet-range PTR reached the stand-in"
fi

# ztnad with a broken configuration exits 78 and publishes nothing; the copy
# keeps answering (the case of the issue: a restart loop from boot on).
printf 'store = %s\nstore_fallback = %s\nno_such_key = 1\n' "$store" "$copy" >"$tmp/broken.conf"
rc=0
"$build/ztnad" -c "$tmp/broken.conf" --peers "$tmp/peers.json" 2>>"$tmp/ztnad.log" || rc=$?
check "ztnad with a broken ztnad.conf exits 78" test "$rc" = 78
check "and publishes no store" test ! -e "$store"
dns_clear
ge ahostsv4 win-a.yourorg.zt.net
check "getent ahostsv4 win-a.yourorg.zt.net: 100.64.0.1 from the copy" test "$(first_field)" = "100.64.0.1 "
check "nothing reached the stand-in" test ! -s "$tmp/dns.log"

# ---- without a trusted copy: the old behaviour, a leak ----

leak_case() { # leak_case WHAT: win-a.yourorg.zt.net goes to DNS
	dns_clear
	ge ahostsv4 win-a.yourorg.zt.net
	check "$1: win-a.yourorg.zt.net reaches the stand-in (the old behaviour)" grep -q '^win-a.yourorg.zt.net ' "$tmp/dns.log"
}
run_saved=$(declare -f run)
run() {
	rc=0
	out=$(env ZTNA_STORE="$store" ZTNA_STORE_FALLBACK= LD_LIBRARY_PATH="$build" "$@" 2>"$tmp/stderr") || rc=$?
}
leak_case "no copy (ZTNA_STORE_FALLBACK empty)"
eval "$run_saved"
chmod 0666 "$copy"
leak_case "a world-writable copy is ignored"
chmod 0644 "$copy"
mv "$copy" "$tmp/cache/real"
ln -s real "$copy"
leak_case "a symlinked copy is ignored"
rm "$copy"
mv "$tmp/cache/real" "$copy"
chmod 0777 "$tmp/cache"
leak_case "a copy in a world-writable directory is ignored"
chmod 0755 "$tmp/cache"
dns_clear
ge ahostsv4 win-a.yourorg.zt.net
check "put right, the copy answers again" test "$(first_field)" = "100.64.0.1 "

# ---- the store comes back ----

# A process that answers from the copy (EAI_AGAIN for an unknown name)
# switches to the store within a recheck period (1 s) of its return, and
# then says "no such name" with authority.
cat >"$tmp/loop.py" <<'EOF'
import socket, sys, time
deadline = time.monotonic() + 20
started = False
while time.monotonic() < deadline:
    try:
        socket.getaddrinfo("nobody.yourorg.zt.net", None, socket.AF_INET)
        code = 0
    except socket.gaierror as e:
        code = e.errno
    if code == socket.EAI_AGAIN and not started:
        started = True
        open(sys.argv[1], "w").close()
    if code == socket.EAI_NONAME and started:
        print("switched", time.monotonic())
        sys.exit(0)
    time.sleep(0.05)
print("never switched")
sys.exit(1)
EOF
env ZTNA_STORE="$store" ZTNA_STORE_FALLBACK="$copy" LD_LIBRARY_PATH="$build" \
	python3 "$tmp/loop.py" "$tmp/loop.started" >"$tmp/loop.out" 2>&1 &
loop_pid=$!
check "a long-running process answers from the copy" wait_for 10 test -e "$tmp/loop.started"
ztnad_start
check "ztnad publishes again" wait_for 10 test -s "$store"
published=$(python3 -c 'import time; print(time.monotonic())')
rc=0
wait "$loop_pid" || rc=$?
switched=$(awk '/^switched/ { print $2 }' "$tmp/loop.out")
check "it switched to the store" test "$rc" = 0
check_le "within the recheck period of the store's return (s)" \
	"$(awk -v a="$switched" -v b="$published" 'BEGIN { d = a - b; print (d < 0 ? 0 : d) }' </dev/null)" 1.5
gai nobody.yourorg.zt.net
check "a new process: nobody.yourorg.zt.net is EAI_NONAME from the store" test "$rc" = "$GAI_NONAME"
ztnad_stop

finish
