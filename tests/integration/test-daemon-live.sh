#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The real ztnad with all of its sources, read through the real glibc, the way
# an operator and every program on the machine meet it (numbered as in the
# issue that asked for this test, in the order they run):
#
#   1. a bad peers file is rejected, the last good map stays, and the error
#      is in `ztna status` (text and --json);
#   2. `ztna peers push` from root is visible to getaddrinfo at once; from
#      nobody it is refused (exit 4) while `ztna status` still works;
#      `ztna down` makes tailnet names TRY_AGAIN with no fall-through to the
#      modules after ztna; `ztna up` restores them; an invalid push is
#      refused (exit 5) with its line and reason and changes nothing;
#   7. SIGHUP with a broken configuration names its file, line and key, and
#      ztnad goes on with the old configuration (`ztnad --check-config`
#      exits 78 with the same message);
#   3. an HTTPS control plane (tests/harness/cp-server.py, a throwaway CA made here
#      with openssl): the map syncs, a change appears, an unchanged map is a
#      304 that publishes nothing, a wrong token, malformed JSON and a
#      stopped server are clear errors in `ztna status` that keep the map,
#      with back-off, and ztnad recovers when the server is back;
#   5. `ztna -c CONF dns query Win-A` asks the control plane while ztnad is
#      stopped, and says why it cannot when both are gone (exit 3);
#   4. a cold start with the store gone and the control plane down publishes
#      the map saved by the earlier run, and only then says READY=1;
#   8. a bad peers file at start with the control plane down: READY=1
#      comes once the file is fixed and published;
#   6. ztnad killed with SIGKILL and restarted 50 times while getent loops
#      and a long-running getaddrinfo client (Python, in a private mount
#      namespace with its own nsswitch.conf) resolve tailnet names: not one
#      lookup fails, the generation only grows, no temporary store is left.
#
# Every path of every ztnad is in a private temporary directory (-c CONF
# names the store, state_dir and control socket); nothing under /etc, /run or
# /var/lib of the host is written, and /etc's files are compared before and
# after. The getaddrinfo clients see their own nsswitch.conf and hosts file
# bind-mounted over /etc's inside a private mount namespace
# (tests/harness/mountns.sh).
#
# Needs root (setpriv, unshare, mount), openssl and python3.
# Usage: B=build sh tests/integration/test-daemon-live.sh   (VERBOSE=1: show the logs)
set -eu

here=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=lib.sh
. "$here/tests/lib.sh"
abs_build
PYTHON=/usr/bin/python3
NSS='hosts: files ztna [!UNAVAIL=return] dns'
ORG=org-live-1
RESTARTS=${RESTARTS:-50}

no_proxy_env
need_root setpriv, unshare and mount for the clients
need_built ztnad ztna libnss_ztna.so.2

# The module trusts no store under a world-writable directory, and nobody
# must reach the control sockets and the clients' files: 0755.
temp_dir
pids=
spid=

cleanup() {
	# shellcheck disable=SC2086 # a list of pids
	stop_pids -KILL $pids $spid
	show_logs "$dir"/*/ztnad*.log "$dir/notify.log"
}

etc_sums() {
	sha256sum /etc/nsswitch.conf /etc/hosts
}
etc_before=$(etc_sums)

# ---- helpers ----

# The store and control socket the commands below talk to; set per daemon.
store=
sock=

# getent_rc ARGS...: getent's exit status.
getent_rc() {
	gr_rc=0
	resolve "$@" >/dev/null 2>&1 || gr_rc=$?
	echo $gr_rc
}
ztna() {
	"$B/ztna" --socket "$sock" "$@"
}
as_nobody() {
	setpriv --reuid=65534 --regid=65534 --clear-groups "$@"
}

# jget and daemon_field: tests/lib.sh.
generation() {
	daemon_field generation
}
cp_field() {
	daemon_field "sources/name=control plane/$1"
}
# generation_above N: ztnad reports a generation above N.
generation_above() {
	[ "$(generation)" -gt "$1" ]
}
# failing_at_least N: the control plane has failed N times in a row or more.
failing_at_least() {
	[ "$(cp_field consecutive_failures)" -ge "$1" ]
}
# sync_error_has PATTERN: the control plane's current error matches.
sync_error_has() {
	cp_field sync_error | grep -q -- "$1"
}
# status_has PATTERN: a line of `ztna status` matches.
status_has() {
	ztna status 2>/dev/null | grep -q -- "$1"
}
# says TEXT PATTERN: a line of TEXT matches.
says() {
	printf '%s\n' "$1" | grep -q -- "$2"
}
# contains TEXT STRING: STRING is in TEXT.
contains() {
	printf '%s\n' "$1" | grep -qF -- "$2"
}

# READY=1 and STATUS= of every ztnad, one line each with the sender's pid
# (SCM_CREDENTIALS), as systemd would receive them.
cat >"$dir/notify.py" <<'EOF'
import socket, struct, sys

s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
log = open(sys.argv[2], "a", buffering=1)
cred = struct.calcsize("3i")
while True:
    msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(cred))
    pid = 0
    for level, kind, data in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("3i", data[:cred])[0]
    for line in msg.decode("utf-8", "replace").splitlines():
        log.write("%d %s\n" % (pid, line))
EOF
: >"$dir/notify.log"
$PYTHON "$dir/notify.py" "$dir/notify.sock" "$dir/notify.log" &
pids="$pids $!"
wait_for 5 test -S "$dir/notify.sock" || {
	echo "not ok - the notify listener did not start"
	exit 1
}
ready_from() {
	grep -qx "$1 READY=1" "$dir/notify.log"
}
# ready_after_map PID: PID said "STATUS=Up: ..." (a map is published)
# before it said READY=1.
ready_after_map() {
	awk -v pid="$1" '$1 == pid && $2 == "STATUS=Up:" && !map { map = NR }
		$1 == pid && $2 == "READY=1" && !ready { ready = NR }
		END { exit !(map && ready && map < ready) }' "$dir/notify.log"
}

# start_ztnad CONF LOG: one ztnad in the background; $zpid is its pid.
start_ztnad() {
	NOTIFY_SOCKET=$dir/notify.sock "$B/ztnad" -c "$1" 2>>"$2" &
	zpid=$!
	pids="$pids $zpid"
}
# stop_ztnad [SIGNAL]: signals $zpid (TERM by default) and reaps it.
stop_ztnad() {
	kill -"${1:-TERM}" "$zpid" 2>/dev/null || true
	wait "$zpid" 2>/dev/null || true
}

# ---- the private mount namespace of the getaddrinfo clients ----
outer_ns=$(readlink /proc/self/ns/mnt)
printf '127.0.0.1 localhost\n192.0.2.99 Win-A.yourorg.zt.net Win-A\n' >"$dir/hosts.shadow"
printf 'hosts: ztna [!UNAVAIL=return] files\n' >"$dir/nss.ztna-files"
printf 'hosts: files\n' >"$dir/nss.files"
printf '127.0.0.1 localhost\n' >"$dir/hosts.plain"
printf 'hosts: files ztna [!UNAVAIL=return]\n' >"$dir/nss.standard"
chmod 0644 "$dir"/hosts.* "$dir"/nss.*
# in_ns NSSWITCH HOSTS COMMAND...: COMMAND with those over /etc's, the module
# from the build tree and the current store.
in_ns() {
	in_nss=$1 in_hosts=$2
	shift 2
	unshare -m --propagation private sh "$here/tests/harness/mountns.sh" "$outer_ns" "$in_nss" "$in_hosts" \
		env ZTNA_STORE="$store" LD_LIBRARY_PATH="$B" "$@"
}
# A getaddrinfo client: py_gai NAME prints the IPv4 addresses, or
# "error EAI-NUMBER".
cat >"$dir/gai1.py" <<'EOF'
import socket, sys

try:
    res = socket.getaddrinfo(sys.argv[1], None, socket.AF_INET, socket.SOCK_STREAM)
except socket.gaierror as e:
    print("error", e.errno)
    sys.exit(1)
print(" ".join(sorted({r[4][0] for r in res})))
EOF
EAI_AGAIN=$($PYTHON -c 'import socket; print(socket.EAI_AGAIN)')

# =====================================================================
# A ztnad that follows a peers file and takes pushes
# =====================================================================
mkdir -m 0755 "$dir/a"
A=$dir/a
store=$A/run/records
sock=$A/run/control.sock
conf_a=$A/ztnad.conf
write_conf_a() {
	cat <<EOF
# test-daemon-live: the peers file ztnad
store = $A/run/records
state_dir = $A/state
control_socket = $A/run/control.sock
peers_file = $A/peers.json
control_group = ztna-ops
$1
[dns]
stub = no
EOF
}
write_conf_a "" >"$conf_a"
cat >"$A/good.json" <<'EOF'
{"domain": "yourorg.zt.net",
 "peers": [{"name": "Win-A", "addresses": ["100.64.0.1", "fd7a:115c:a1e0::1"]},
           {"name": "Linux-C", "addresses": ["100.64.0.3"], "online": false}]}
EOF
replace "$A/peers.json" <"$A/good.json"
chmod 0644 "$A/peers.json"
loga=$A/ztnad.log
start_ztnad "$conf_a" "$loga"
if wait_for 10 resolves_to Win-A 100.64.0.1; then
	ok "ztnad publishes the peers file: Win-A resolves to 100.64.0.1 through glibc"
else
	not_ok "Win-A does not resolve after ztnad started: $(cat "$loga")"
fi
check "READY=1 came from ztnad (pid $zpid) once the map was published" wait_for 5 ready_from "$zpid"

# ---- 1. a bad peers file ----
gen=$(generation)
printf '{"domain": "yourorg.zt.net",\n "peers": [{"name": "Win-A", "addresses": ["100.64.0.300"]}]}\n' |
	replace "$A/peers.json"
bad_msg="$A/peers.json: peers[0].addresses[0]: \"100.64.0.300\" is not an IPv4 or IPv6 address"
file_error() {
	daemon_field "sources/name=peers file/last_error"
}
file_error_is() {
	[ "$(file_error)" = "$1" ]
}
if wait_for 5 file_error_is "$bad_msg"; then
	ok "ztna --json status: the peers file's last_error is '$bad_msg'"
else
	not_ok "the bad file's error is not in --json status: $(file_error)"
fi
run ztna status
check "ztna status (text) shows the error under the peers file" contains "$out" "last error:    $bad_msg"
check "ztna status exits 0 with a rejected file (ztnad is fine)" test "$rc" = 0
check "the rejected file published nothing (generation $gen)" test "$(generation)" = "$gen"
check "the last good map still resolves (Win-A 100.64.0.1)" resolves_to Win-A 100.64.0.1
check "the log says the file was rejected and the last good map stays" \
	grep -qF "$bad_msg; the last good map stays published" "$loga"
replace "$A/peers.json" <"$A/good.json"
if wait_for 5 generation_above "$gen"; then
	ok "a good file again is published (generation $(generation))"
else
	not_ok "the good file was not published again"
fi
check "and the error is cleared in ztna status" test "$(file_error)" = null

# ---- 2. pushes, down and up ----
cat >"$A/push.json" <<'EOF'
{"domain": "yourorg.zt.net",
 "peers": [{"name": "Win-A", "addresses": ["100.64.0.1", "fd7a:115c:a1e0::1"]},
           {"name": "Linux-C", "addresses": ["100.64.0.3"], "online": false},
           {"name": "Pushed-P", "addresses": ["100.64.0.50"]}]}
EOF
chmod 0644 "$A/push.json"
gen=$(generation)
run ztna peers push "$A/push.json"
check "root's push is accepted: $out" test "$rc" = 0 -a "$out" = \
	"pushed $A/push.json: accepted; ztnad publishes generation $((gen + 1))"
# No waiting: ztnad answers once the map is published.
check "the pushed name resolves the moment ztna returns (Pushed-P 100.64.0.50)" resolves_to Pushed-P 100.64.0.50
check "ztna status says the map came from the control socket" \
	test "$(daemon_field published_from)" = "control socket"

cat >"$A/push2.json" <<'EOF'
{"domain": "yourorg.zt.net",
 "peers": [{"name": "Win-A", "addresses": ["100.64.0.1"]}, {"name": "Sneaky-S", "addresses": ["100.64.0.66"]}]}
EOF
chmod 0644 "$A/push2.json"
gen=$(generation)
run as_nobody "$B/ztna" --socket "$sock" peers push "$A/push2.json"
check "nobody's push is refused with exit 4" test "$rc" = 4
check "and names the configured control_group: $err" \
	test "$err" = "ztna: not authorised: changes need root or the ztna-ops group"
check "nobody's push changed nothing (Sneaky-S unknown, generation $gen)" \
	test "$(getent_rc hosts Sneaky-S)" = 2 -a "$(generation)" = "$gen"
run as_nobody "$B/ztna" --socket "$sock" status
check "nobody may still run ztna status: exit 0" test "$rc" = 0
check "and it shows ztnad running" says "$out" "^daemon: *running"
run as_nobody "$B/ztna" --socket "$sock" down
check "nobody's down is refused too (exit 4)" test "$rc" = 4
check "ztnad logged the refused changes with the client's uid" grep -q "from uid 65534 .*refused: not authorised" "$loga"

# The namespace's hosts file has Win-A at 192.0.2.99 for "files" after
# ztna: while up, ztna wins; while down, the lookup stops at ztna.
run in_ns "$dir/nss.files" "$dir/hosts.shadow" $PYTHON "$dir/gai1.py" Win-A
check "(in the namespace, files alone gives Win-A 192.0.2.99)" test "$out" = 192.0.2.99
run in_ns "$dir/nss.ztna-files" "$dir/hosts.shadow" $PYTHON "$dir/gai1.py" Win-A
check "up: getaddrinfo Win-A through 'ztna [!UNAVAIL=return] files' gives 100.64.0.1" test "$out" = 100.64.0.1

run ztna down
check "root's ztna down: exit 0" test "$rc" = 0
check "ztna status shows the store down" status_has "^state: *down$"
# getent exits 2 for TRY_AGAIN and for not found alike; getaddrinfo tells
# them apart (EAI_AGAIN, EAI_NONAME).
for name in Win-A win-a.yourorg.zt.net Pushed-P.yourorg.zt.net. nosuch.yourorg.zt.net; do
	check "down: getent hosts $name exits 2" test "$(getent_rc hosts "$name")" = 2
	run in_ns "$dir/nss.ztna-files" "$dir/hosts.shadow" $PYTHON "$dir/gai1.py" "$name"
	check "down: getaddrinfo $name fails with EAI_AGAIN (TRY_AGAIN), not as not found ($out)" \
		test "$out" = "error $EAI_AGAIN"
done
run in_ns "$dir/nss.ztna-files" "$dir/hosts.shadow" $PYTHON "$dir/gai1.py" Win-A
check "down: getaddrinfo Win-A fails with EAI_AGAIN, not 192.0.2.99 from files after ztna" \
	test "$out" = "error $EAI_AGAIN"
run in_ns "$dir/nss.ztna-files" "$dir/hosts.shadow" env LD_LIBRARY_PATH="$B" ZTNA_STORE="$store" \
	getent -s 'hosts: ztna [!UNAVAIL=return] files' ahosts win-a.yourorg.zt.net
check "down: getent ahosts win-a.yourorg.zt.net exits 2 and prints nothing (no fall-through)" \
	test "$rc" = 2 -a -z "$out"
run ztna up
check "ztna up: exit 0" test "$rc" = 0
check "up again: Win-A resolves" resolves_to Win-A 100.64.0.1
check "up again: Pushed-P resolves" resolves_to Pushed-P 100.64.0.50

printf '{"domain": "yourorg.zt.net",\n "peers": [{"name": "Win-A", "addresses": ["100.64.0.1"]},\n' \
	>"$A/bad-push.json"
printf '   {"name": "Bad-B", "addresses": ["100.64.0.300"]}]}\n' >>"$A/bad-push.json"
gen=$(generation)
run ztna peers push "$A/bad-push.json"
check "an invalid push exits 5" test "$rc" = 5
check "and says where and why: $err" says "$err" \
	'^ztna: push rejected: .*peers\[1\]\.addresses\[0\]: "100\.64\.0\.300" is not an IPv4 or IPv6 address$'
printf '{"domain": "yourorg.zt.net",\n "peers": [{"name": "Win-A",\n   "addresses": ["100.64.0.1"],, }]}\n' \
	>"$A/syntax-push.json"
run ztna peers push "$A/syntax-push.json"
check "a push with a syntax error exits 5" test "$rc" = 5
check "naming its line, 3: $err" says "$err" "^ztna: push rejected: [^:]*:3:[0-9]*: "
check "the invalid pushes published nothing (generation $gen)" test "$(generation)" = "$gen"
check "Pushed-P still resolves after the invalid pushes" resolves_to Pushed-P 100.64.0.50

# ---- 7. SIGHUP with a broken configuration ----
# The broken file also turns a valid key (offline_peers = hide): none of
# it may take effect.
cp "$conf_a" "$A/ztnad.conf.good"
write_conf_a "offline_peers = hide
sync_interval = soon" >"$conf_a"
bad_line=$(grep -n '^sync_interval' "$conf_a" | cut -d: -f1)
run "$B/ztnad" --check-config -c "$conf_a"
check_msg=$err
check "ztnad --check-config exits 78 on the broken file" test "$rc" = 78
check "and names the file, line and key: $check_msg" \
	test "${check_msg#"$conf_a:$bad_line: key 'sync_interval': "}" != "$check_msg"
replace "$A/peers.json" <"$A/good.json"
wait_for 5 resolves_to Linux-C 100.64.0.3 || true
kill -HUP "$zpid"
if wait_for 5 grep -qF "$check_msg; keeping the running configuration" "$loga"; then
	ok "SIGHUP with the broken file logs the same message and keeps the running configuration"
else
	not_ok "no such log line after SIGHUP: $(tail -n 3 "$loga")"
fi
sleep 0.2
check "ztnad is still running" kill -0 "$zpid"
check "the offline peer still resolves: nothing of the broken file took effect" resolves_to Linux-C 100.64.0.3
check "ztna status still answers" test "$(daemon_field offline_peers)" = show
replace "$A/peers.json" <<'EOF'
{"domain": "yourorg.zt.net",
 "peers": [{"name": "Win-A", "addresses": ["100.64.0.1"]},
           {"name": "Linux-C", "addresses": ["100.64.0.3"], "online": false},
           {"name": "After-H", "addresses": ["100.64.0.77"]}]}
EOF
check "the peers file is still followed under the old configuration" wait_for 5 resolves_to After-H 100.64.0.77
write_conf_a "offline_peers = hide" >"$conf_a"
kill -HUP "$zpid"
check "fixed and reloaded: 'configuration reloaded' logged" wait_for 5 grep -q "configuration reloaded" "$loga"
not_found() {
	[ "$(getent_rc hosts "$1")" = 2 ]
}
check "the new configuration applies: the offline peer no longer resolves (exit 2)" wait_for 5 not_found Linux-C
cp "$A/ztnad.conf.good" "$conf_a"

stop_ztnad TERM
check "ztnad exits on SIGTERM; the store still resolves" resolves_to Win-A 100.64.0.1

# =====================================================================
# A ztnad that polls an HTTPS control plane
# =====================================================================
if ! make_ca "$dir" ca || ! make_cert "$dir" server ca "IP:127.0.0.1,DNS:localhost"; then
	echo "not ok - openssl could not make the test certificates"
	exit 1
fi
C=$dir/c
CP=$dir/cp
mkdir -m 0755 "$C" "$CP"
store=$C/run/records
sock=$C/run/control.sock
conf_c=$C/ztnad.conf
logc=$C/ztnad.log
cp "$here/examples/tailnet.json" "$CP/peers.json"
token=live-token-$$
echo "$token" >"$CP/token"
echo "$token" >"$C/token"
chmod 0600 "$C/token"

# start_server [PORT]
start_server() {
	start_cp_server "$dir/server" "$CP" "$ORG" "$@"
}
stop_server() {
	kill "$spid" 2>/dev/null || true
	wait "$spid" 2>/dev/null || true
	spid=
}
mode() {
	echo "$1" | replace "$CP/mode"
}
requests() {
	wc -l <"$CP/requests.log" 2>/dev/null || echo 0
}
# seen_since LINE PATTERN: a request logged after line LINE matches.
seen_since() {
	tail -n +"$(($1 + 1))" "$CP/requests.log" | grep -q -- "$2"
}
# count_since LINE PATTERN
count_since() {
	tail -n +"$(($1 + 1))" "$CP/requests.log" | grep -c -- "$2" || true
}

mode normal
start_server
cat >"$conf_c" <<EOF
# test-daemon-live: the control plane ztnad
store = $C/run/records
state_dir = $C/state
control_socket = $C/run/control.sock
control_url = https://127.0.0.1:$port
org_id = $ORG
token_file = $C/token
ca_file = $dir/ca.pem
sync_interval = 1s
[dns]
stub = no
EOF

# ---- 3. the control plane ----
start_ztnad "$conf_c" "$logc"
if wait_for 10 resolves_to Win-A 100.64.0.1 && resolves_to Mac-B 100.64.0.2; then
	ok "the control plane's map is synced and resolves (Win-A 100.64.0.1, Mac-B 100.64.0.2)"
else
	not_ok "the control plane's map does not resolve: $(cat "$logc")"
fi
check "the log says so: $(grep -m 1 'published generation' "$logc")" \
	grep -q "published generation 1: 6 peers from the control plane (https://127.0.0.1:$port)" "$logc"
check "READY=1 came only after the first map from the control plane" wait_for 5 ready_after_map "$zpid"
check "ztna status: published from the control plane" test "$(daemon_field published_from)" = "control plane"
check "the map was saved for a cold start ($C/state/peers.json)" wait_for 5 cmp -s "$C/state/peers.json" "$CP/peers.json"

gen=$(generation)
line=$(requests)
# The ETag is a quoted hex string; the log shows it JSON-escaped.
NOT_MODIFIED='"if_none_match": "\\"[0-9a-f]*\\"".*"status": 304'
two_304s() {
	[ "$(count_since "$line" "$NOT_MODIFIED")" -ge 2 ]
}
check "unchanged map: ztnad sends If-None-Match and the server answers 304 (twice)" wait_for 6 two_304s
check "after those 304s the generation is unchanged ($gen): nothing republished" test "$(generation)" = "$gen"

$PYTHON - "$CP/peers.json" <<'EOF'
import json, os, sys
path = sys.argv[1]
doc = json.load(open(path))
doc["peers"].append({"name": "New-E", "addresses": ["100.64.0.5"]})
with open(path + ".tmp", "w") as f:
    json.dump(doc, f)
os.rename(path + ".tmp", path)
EOF
if wait_for 5 resolves_to New-E 100.64.0.5; then
	ok "a change on the server appears (New-E 100.64.0.5), generation $(generation)"
else
	not_ok "the change on the server did not appear: $(tail -n 3 "$logc")"
fi
check "the saved map follows the change" wait_for 5 cmp -s "$C/state/peers.json" "$CP/peers.json"

# kept GEN: the map is the last good one, generation GEN.
kept() {
	resolves_to New-E 100.64.0.5 && resolves_to Win-A 100.64.0.1 && [ "$(generation)" = "$1" ]
}
in_sync() {
	[ "$(cp_field consecutive_failures)" = 0 ] && [ "$(cp_field sync_error)" = absent ]
}

# Malformed JSON: rejected, the map kept.
gen=$(generation)
mode malformed
if wait_for 5 sync_error_has "rejected.*:1:[0-9]*: "; then
	ok "malformed JSON from the server is rejected: $(cp_field sync_error | cut -c1-150)"
else
	not_ok "no rejection of malformed JSON in ztna status: $(ztna --json status)"
fi
check "the map is kept (generation $gen)" kept "$gen"
mode normal
check "served properly again, ztnad is back in sync" wait_for 6 in_sync
check "with the same map (generation $gen)" kept "$gen"

# A wrong token on ztnad's side: refused, the map kept.
echo wrong-token | replace "$C/token"
chmod 0600 "$C/token"
if wait_for 5 status_has "sync error: *control plane refused the token (HTTP 401)"; then
	ok "a wrong token: ztna status says '$(ztna status | sed -n 's/^ *sync error: *//p' | cut -c1-120)'"
else
	not_ok "no clear token error in ztna status: $(ztna status)"
fi
check "the map is kept while the token is refused (generation $gen)" kept "$gen"
echo "$token" | replace "$C/token"
chmod 0600 "$C/token"
check "the right token again: back in sync" wait_for 6 in_sync

# The server stops: back-off, the map kept.
stop_server
if wait_for 10 failing_at_least 1; then
	f1=$(cp_field consecutive_failures)
	n1=$(cp_field next_attempt_in)
	ok "server down: ztna status counts the failure ($f1): $(cp_field sync_error | cut -c1-120)"
else
	f1=0 n1=0
	not_ok "server down: no failure counted: $(ztna --json status)"
fi
if wait_for 12 failing_at_least 3; then
	f3=$(cp_field consecutive_failures)
	n3=$(cp_field next_attempt_in)
	# After 3 failures the next attempt is 4 s +-10 % away, not the 1 s
	# interval; some of it may have passed already.
	check "back-off: $f1 -> $f3 failures in a row, next attempt in $n1 s -> $n3 s" \
		$PYTHON -c 'import sys; sys.exit(not (float(sys.argv[1]) > 1.5 and float(sys.argv[1]) <= 4.5))' "$n3"
else
	not_ok "server down: fewer than 3 failures counted: $(ztna --json status)"
fi
# The text status while failing: the failure as the last error, not
# "none", and the delay with its unit.
st_text=$(ztna status)
check "ztna status shows the failure as the last error while failing" \
	sh -c 'printf "%s\n" "$1" | grep -E "^ *last error: +" | grep -vq "last error: *none$"' sh "$st_text"
check "ztna status gives the next attempt in seconds: $(printf '%s\n' "$st_text" | grep -m1 'next attempt')" \
	sh -c 'printf "%s\n" "$1" | grep -Eq "^ *next attempt in: +[0-9]+\.[0-9] s$"' sh "$st_text"
check "the map is kept while the server is down (generation $gen)" kept "$gen"
start_server "$port"
check "the server back on its port: ztnad recovers" wait_for 8 in_sync
check "the log says 'back in sync': $(grep 'back in sync' "$logc" | tail -n 1 | cut -c1-120)" \
	grep -q "back in sync.*after [0-9]* failed attempt" "$logc"
check "still the same map (generation $gen)" kept "$gen"

# ---- 5. ztna dns query with ztnad stopped ----
stop_ztnad TERM
line=$(requests)
run "$B/ztna" -c "$conf_c" --socket "$sock" dns query Win-A
check "ztnad stopped: ztna -c CONF dns query Win-A exits 0" test "$rc" = 0
check "and prints what the control plane says: $(echo "$out" | head -n 1)" says "$out" "^Win-A\.yourorg\.zt\.net -> 100\.64\.0\.1$"
check "the server saw the resolve request" seen_since "$line" '"action": "resolve".*"name": "Win-A".*"status": 200'
stop_server
run "$B/ztna" -c "$conf_c" --socket "$sock" dns query Win-A
check "control plane down too: exit 3" test "$rc" = 3
check "saying why: $(echo "$err" | tr '\n' ' ' | cut -c1-220)" says "$err" "^ztna: control plane: .*; asking ztnad instead$"
check "and that ztnad is not there either" says "$err" "^ztna: cannot reach ztnad at $sock: "

# ---- 8. a bad peers file at start, the control plane down: READY=1 once the file is fixed ----
# Nothing saved and nothing publishable at start, so READY=1 waits; a
# fixed peers file publishes a map, and that map is what READY=1 waits for,
# whichever source it came from.
mkdir -m 0755 "$dir/r"
R=$dir/r
printf '{"domain": "yourorg.zt.net", "peers": [' | replace "$R/peers.json"
chmod 0644 "$R/peers.json"
cat >"$R/ztnad.conf" <<EOF
# test-daemon-live: a bad peers file and a control plane that is down
store = $R/run/records
state_dir = $R/state
control_socket = $R/run/control.sock
peers_file = $R/peers.json
control_url = https://127.0.0.1:$port
org_id = $ORG
token_file = $C/token
ca_file = $dir/ca.pem
[dns]
stub = no
EOF
start_ztnad "$R/ztnad.conf" "$R/ztnad.log"
check "a bad peers file and the control plane down: ztnad keeps running" wait_for 5 grep -q "peers.json" "$R/ztnad.log"
sleep 0.5
check "and says no READY=1 while nothing is published" sh -c '! grep -qx "$1 READY=1" "$2"' sh "$zpid" "$dir/notify.log"
replace "$R/peers.json" <"$A/good.json"
chmod 0644 "$R/peers.json"
check "the fixed peers file is published" wait_for 5 grep -q "published generation 1: 2 peers from the peers file" "$R/ztnad.log"
check "then READY=1 came (pid $zpid), after the map" wait_for 5 ready_after_map "$zpid"
stop_ztnad TERM

# ---- 4. cold start: no store, no control plane, the saved map ----
rm -f "$store"
check "(the store is gone: Win-A does not resolve)" test "$(getent_rc ahosts Win-A)" != 0
: >"$logc"
start_ztnad "$conf_c" "$logc"
if wait_for 10 resolves_to Win-A 100.64.0.1 && resolves_to New-E 100.64.0.5; then
	ok "cold start, control plane down: the saved map resolves (Win-A, and New-E from the last sync)"
else
	not_ok "cold start: the saved map does not resolve: $(cat "$logc")"
fi
check "the log says the saved map was published: $(grep -m 1 'published generation' "$logc")" \
	grep -q "published generation 1: 7 peers from the saved map ($C/state/peers.json)" "$logc"
check "READY=1 came from the new ztnad (pid $zpid), after the saved map was published" \
	wait_for 5 ready_after_map "$zpid"
check "its STATUS= names the saved map" grep -q "^$zpid STATUS=Up: 7 peers .*from the saved map" "$dir/notify.log"
check "ztna status: published from the saved map" test "$(daemon_field published_from)" = "saved map"
check "and the control plane failing meanwhile" wait_for 5 failing_at_least 1
start_server "$port"
check "the control plane back: ztnad syncs" wait_for 8 in_sync

# ---- 6. SIGKILL and restart, under load ----
# getent processes in a loop, and one Python process calling getaddrinfo
# in a private mount namespace whose nsswitch.conf is the packaged line.
rm -f "$dir/stop"
(
	good=0 bad=0
	while [ ! -e "$dir/stop" ]; do
		for n in Win-A New-E.yourorg.zt.net; do
			case $n in Win-A) want=100.64.0.1 ;; *) want=100.64.0.5 ;; esac
			if LD_LIBRARY_PATH=$B ZTNA_STORE=$store getent -s "$NSS" ahosts "$n" 2>/dev/null |
				awk '{ print $1 }' | grep -qxF "$want"; then
				good=$((good + 1))
			else
				bad=$((bad + 1))
				echo "$(date +%T.%N) getent ahosts $n failed" >>"$dir/getent.failures"
			fi
		done
		[ "$good" -ne 2 ] || : >"$dir/getent.ready"
	done
	echo "$good $bad" >"$dir/getent.counts"
) &
gpid=$!
pids="$pids $gpid"
cat >"$dir/gai-loop.py" <<'EOF'
import os, socket, sys, time

stop, ready = sys.argv[1], sys.argv[2]
want = [tuple(a.split("=")) for a in sys.argv[3:]]
good = bad = 0
errors = []
while not os.path.exists(stop):
    for name, addr in want:
        try:
            got = {r[4][0] for r in socket.getaddrinfo(name, None, socket.AF_INET, socket.SOCK_STREAM)}
            wrong = got != {addr}
        except socket.gaierror as e:
            got, wrong = "gaierror %d" % e.errno, True
        if wrong:
            bad += 1
            if len(errors) < 5:
                errors.append("%.6f %s: %s" % (time.time(), name, got))
        else:
            good += 1
    if good >= 100 and not os.path.exists(ready):
        open(ready, "w").close()
print(good, bad)
for e in errors:
    print("#", e)
EOF
in_ns "$dir/nss.standard" "$dir/hosts.plain" $PYTHON "$dir/gai-loop.py" "$dir/stop" "$dir/gai.ready" \
	Win-A=100.64.0.1 new-e.yourorg.zt.net=100.64.0.5 >"$dir/gai.counts" 2>&1 &
ppid=$!
pids="$pids $ppid"
if ! wait_for 20 test -e "$dir/getent.ready" -a -e "$dir/gai.ready"; then
	not_ok "the clients did not start resolving: $(cat "$dir/gai.counts" "$dir/getent.failures" 2>&1)"
fi

# Every other round waits for the new ztnad to publish (its generation must
# be above the last one seen); the others kill it 0..80 ms after starting,
# at any point of its start-up.
last_gen=$(generation 2>/dev/null || echo 0)
[ "$last_gen" != absent ] || last_gen=0
first_gen=$last_gen
backwards=0 unpublished=0
i=0
t0=$(date +%s)
while [ $i -lt "$RESTARTS" ]; do
	i=$((i + 1))
	stop_ztnad KILL
	start_ztnad "$conf_c" "$C/life.log"
	if [ $((i % 2)) = 0 ]; then
		if wait_for 10 grep -q "published generation" "$C/life.log"; then
			g=$(sed -n 's/.*published generation \([0-9]*\):.*/\1/p' "$C/life.log" | tail -n 1)
			if [ "$g" -le "$last_gen" ]; then
				backwards=$((backwards + 1))
				echo "# round $i: generation $g after $last_gen"
			fi
			last_gen=$g
		else
			unpublished=$((unpublished + 1))
			echo "# round $i: ztnad did not publish: $(cat "$C/life.log")"
		fi
	else
		sleep "0.0$((i % 5 * 2))"
	fi
	cat "$C/life.log" >>"$logc"
	: >"$C/life.log"
done
secs=$(($(date +%s) - t0))
# A last one that stays, so the clients see it publish too.
stop_ztnad KILL
start_ztnad "$conf_c" "$logc"
wait_for 10 in_sync || true
sleep 0.5
: >"$dir/stop"
wait "$gpid" 2>/dev/null || true
wait "$ppid" 2>/dev/null || true
read -r g_good g_bad <"$dir/getent.counts" || { g_good=0 g_bad=-1; }
read -r p_good p_bad <"$dir/gai.counts" || { p_good=0 p_bad=-1; }
echo "# $RESTARTS kills and restarts in ${secs}s; getent: $g_good ok, $g_bad failed;" \
	"getaddrinfo (python): $p_good ok, $p_bad failed"
check "not one getent lookup failed through $RESTARTS SIGKILLs ($g_good succeeded)" test "$g_bad" = 0
[ ! -s "$dir/getent.failures" ] || head -n 5 "$dir/getent.failures"
check "not one getaddrinfo call failed through $RESTARTS SIGKILLs ($p_good succeeded)" test "$p_bad" = 0
grep '^#' "$dir/gai.counts" || true
check "getent kept resolving throughout (at least $RESTARTS lookups)" test "$g_good" -ge "$RESTARTS"
check "getaddrinfo kept resolving throughout (at least $((RESTARTS * 20)) calls)" test "$p_good" -ge $((RESTARTS * 20))
check "every ztnad that published went above the generation before it ($first_gen -> $last_gen)" \
	test "$backwards" = 0 -a "$unpublished" = 0 -a "$last_gen" -gt "$first_gen"
check "the last ztnad goes on from there (generation $(generation) > $last_gen)" test "$(generation)" -gt "$last_gen"
store_up() {
	"$B/ztna" --store "$store" status | grep -qx "state: *up"
}
check "the store is up" store_up
leftovers=
for f in "$C"/run/records.??????; do
	[ -e "$f" ] && [ "$f" != "$C/run/records.lock" ] && leftovers="$leftovers ${f##*/}"
done
check "no temporary store (records.XXXXXX) is left behind:$(cd "$C/run" && printf ' %s' *)" test -z "$leftovers"
check "the control socket is back: ztna status exits 0" status_has "^daemon: *running"

stop_ztnad TERM
stop_server
etc_after=$(etc_sums)
check "the host's /etc/nsswitch.conf and /etc/hosts are unchanged" test "$etc_before" = "$etc_after"

finish
