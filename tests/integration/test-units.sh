#!/bin/bash
# The systemd integration: the units, the sysusers.d and tmpfiles.d files,
# and the daemon's side of the contract the service unit relies on.
#
#   - systemd-analyze verify on the service and socket units. verify fails
#     when ExecStart's binary does not exist, and /usr/sbin/ztnad is not
#     installed on a build machine, so the units are verified as copies in a
#     temporary directory whose ExecStart= names the built binary's absolute
#     path; nothing else in them is changed. (--root= would need a whole OS
#     tree: verify looks for sysinit.target and /bin/kill under it.) The
#     Documentation= pages must all be in man/; verify finds them through
#     MANPATH.
#   - systemd-analyze security --offline=true: the exposure must be 2.0 or
#     lower (--threshold counts tenths).
#   - systemd-sysusers and systemd-tmpfiles apply the files to an empty
#     temporary root, never to the host: the account must be a system one,
#     as the NSS module's trust rule requires.
#   - every system call ztnad makes (strace) while it starts, answers DNS
#     queries over UDP and TCP (a tailnet name, and a name for an upstream
#     that refuses the connection), reloads on SIGHUP and stops on SIGTERM
#     must pass the unit's SystemCallFilter=, or the service would fail
#     under systemd only.
#   - socket activation as ztnad.socket does it: two sockets passed as
#     LISTEN_FDS named "stub" (one UDP, one TCP), answered on, and ztnad's
#     own listen address left alone.
#   - sd_notify: READY=1 arrives only once the store is published and
#     resolves through glibc, never for a map that could not be published;
#     WATCHDOG=1 follows when WATCHDOG_USEC is set; STOPPING=1 and exit 0 on
#     SIGTERM.
#   - as root: ztnad running as a system account, in a store directory that
#     account owns (what RuntimeDirectory= gives it), publishes a store that
#     glibc trusts.
#
# No unit is started and nothing under /etc is read for the test or written.
# Without man, groff, strace or root the checks that need them are skipped,
# counted as skips (tests/lib.sh), never as passes.
# Usage: B=build bash tests/integration/test-units.sh
# "CHECK && ok || fail" is meant: ok only prints.
# shellcheck disable=SC2015
set -euo pipefail

SRC=$(pwd)
# shellcheck source=lib.sh
. "$SRC/tests/lib.sh"
abs_build
UNITS=$SRC/systemd
PYTHON=/usr/bin/python3
NSS='hosts: files ztna [!UNAVAIL=return] dns'

# The module trusts no store in a world-writable directory (so not in /tmp
# itself), and the account test below must be able to reach this one:
# temp_dir's is 0755.
temp_dir
pids=
# shellcheck disable=SC2086 # a list of pids
cleanup() { stop_pids $pids; }

# resolves_in STORE NAME ADDRESS: resolves_to (tests/lib.sh) in the store
# STORE.
resolves_in() {
	local store=$1
	shift
	resolves_to "$@"
}

peers=$dir/peers.json
# ztnad's other paths in the private directory too, nothing under the
# host's /run or /var/lib; the DNS stub only where it is under test.
conf=$dir/ztnad.conf
printf 'state_dir = %s\ncontrol_socket = %s\n[dns]\nstub = no\n' "$dir/state" "$dir/control.sock" >"$conf"
strace_conf=$dir/strace.conf
# Its upstream a closed port: a name sent there fails at once, through
# the whole path of a query that leaves the machine.
printf 'state_dir = %s\ncontrol_socket = %s\n[dns]\nlisten = 127.0.0.1:15398\nupstream = 127.0.0.1:15396#dns.test\n' \
	"$dir/strace-state" "$dir/strace.sock" >"$strace_conf"
cat >"$peers" <<'EOF'
{"domain": "yourorg.zt.net",
 "peers": [{"name": "Win-A", "addresses": ["100.64.0.1", "fd7a:115c:a1e0::1"]}]}
EOF
chmod 0644 "$peers"

# ---- systemd-analyze verify ----
verify_dir=$dir/verify
mkdir "$verify_dir"
# Every Exec*= line that runs ztnad (the DNS manager's too), prefixes kept.
for unit in ztnad.service ztnad-dns.service ztnad-dns-check.service; do
	sed -E "s#^(Exec[A-Za-z]*=[-+]*)/usr/sbin/ztnad\b#\1$B/ztnad#" "$UNITS/$unit" >"$verify_dir/$unit"
done
cp "$UNITS/ztnad.socket" "$UNITS/ztnad-dns.path" "$verify_dir/"
if grep -qxF "ExecStart=$B/ztnad" "$verify_dir/ztnad.service"; then
	ok "the verified copy of ztnad.service runs $B/ztnad"
else
	fail "ztnad.service's ExecStart= is not exactly /usr/sbin/ztnad"
fi

# man/NAME.SECTION laid out as a man tree, so verify can find the pages.
mkdir -p "$dir/man"
for page in "$SRC"/man/*.[1-8]; do
	[ -e "$page" ] || continue
	mkdir -p "$dir/man/man${page##*.}"
	cp "$page" "$dir/man/man${page##*.}/"
done
missing=
# shellcheck disable=SC2013 # Documentation= is a list of words
for ref in $(sed -n 's/^Documentation=//p' "$UNITS"/ztnad*.service "$UNITS"/ztnad*.socket "$UNITS"/ztnad*.path); do
	page=${ref#man:}
	name=${page%(*}
	section=${page#*(}
	section=${section%)}
	[ -e "$SRC/man/$name.$section" ] || missing="$missing $page"
done
check "every Documentation= page is in man/${missing:+ (missing:$missing)}" test -z "$missing"
if command -v man >/dev/null; then
	man_opt=--man=yes
else
	man_opt=--man=no
	skip "man(1) is not installed (man-db): verify does not look for the Documentation= pages"
fi
for unit in ztnad.service ztnad.socket ztnad-dns.service ztnad-dns.path ztnad-dns-check.service; do
	if out=$(cd "$verify_dir" && MANPATH=$dir/man systemd-analyze verify "$man_opt" "$verify_dir/$unit" 2>&1) &&
		[ -z "$out" ]; then
		ok "systemd-analyze verify $unit ($man_opt)"
	else
		fail "systemd-analyze verify $unit: $out"
	fi
done

# ---- the man pages render without a warning ----
if ! command -v groff >/dev/null; then
	skip "groff is not installed: the man pages are not checked"
else
	for page in "$SRC"/man/*.[1-8]; do
		[ -e "$page" ] || continue
		# -t: tbl for the pages that have tables; -ww: every warning.
		if out=$(groff -t -man -ww -z "$page" 2>&1) && [ -z "$out" ]; then
			ok "${page#"$SRC"/} renders without warnings"
		else
			fail "${page#"$SRC"/}: $out"
		fi
	done
fi

# ---- systemd-analyze security ----
out=$(systemd-analyze security --offline=true --threshold=20 "$UNITS/ztnad.service" 2>&1) && rc=0 || rc=$?
line=$(echo "$out" | grep 'Overall exposure level' || true)
if [ "$rc" -eq 0 ] && [ -n "$line" ]; then
	ok "ztnad.service: ${line#→ }"
else
	fail "ztnad.service is rated above 2.0 (exit $rc): $line"
	echo "$out" | grep '✗' || true
fi

# ---- the settings the store's lifetime and trust depend on ----
# set_to KEY VALUE: ztnad.service sets KEY to exactly VALUE.
set_to() {
	[ "$(sed -n "s/^$1=//p" "$UNITS/ztnad.service" | tail -n 1)" = "$2" ]
}
set_to Type notify && ok "Type=notify: started means published" || fail "ztnad.service is not Type=notify"
set_to RuntimeDirectoryPreserve yes && ok "the store survives a stop or restart (RuntimeDirectoryPreserve=yes)" ||
	fail "RuntimeDirectoryPreserve= is not yes: a stop would delete the store and names would fall to public DNS"
set_to RuntimeDirectoryMode 0755 && set_to UMask 0022 &&
	ok "the store directory and files are readable by every process" ||
	fail "RuntimeDirectoryMode=0755 and UMask=0022 are not both set"
grep -q '^DynamicUser=yes' "$UNITS/ztnad.service" &&
	fail "DynamicUser=yes: dynamic uids are >= 61184 and the module would not trust the store" ||
	ok "a static account, which the module can trust"

# ---- sysusers.d and tmpfiles.d, applied to an empty root ----
root=$dir/root
mkdir -p "$root/etc"
if out=$(systemd-sysusers --root="$root" "$UNITS/ztna.sysusers" 2>&1); then
	ok "systemd-sysusers accepts ztna.sysusers"
else
	fail "systemd-sysusers: $out"
fi
uid=$(awk -F: '$1 == "ztna" { print $3 }' "$root/etc/passwd" 2>/dev/null || true)
gid=$(awk -F: '$1 == "ztna" { print $3 }' "$root/etc/group" 2>/dev/null || true)
if [ -n "$uid" ] && [ -n "$gid" ] && [ "$uid" -lt 1000 ]; then
	ok "user and group ztna are a system account (uid $uid, gid $gid)"
else
	fail "no system user and group ztna in the sysusers result (uid '$uid', gid '$gid')"
fi
if out=$(systemd-tmpfiles --root="$root" --create "$UNITS/ztna.tmpfiles" 2>&1); then
	ok "systemd-tmpfiles accepts ztna.tmpfiles"
else
	fail "systemd-tmpfiles: $out"
fi
st=$(stat -c '%a %u %g' "$root/var/lib/ztna" 2>/dev/null || true)
[ "$st" = "750 $uid $gid" ] && ok "/var/lib/ztna is 0750 ztna:ztna" || fail "/var/lib/ztna is '$st', not '750 $uid $gid'"
st=$(stat -c '%a %u %g' "$root/var/cache/ztna" 2>/dev/null || true)
[ "$st" = "755 $uid $gid" ] && ok "/var/cache/ztna (the store's copy) is 0755 ztna:ztna" ||
	fail "/var/cache/ztna is '$st', not '755 $uid $gid'"

# ---- the system call filter lets ztnad run ----
# expand SET...: the system calls systemd-analyze lists in SET, nested
# groups expanded, one per line.
expand() {
	local s members
	for s in "$@"; do
		case $s in
		@*)
			members=$(systemd-analyze syscall-filter "$s" | sed -n 's/^    \([-@a-z0-9_]*\)$/\1/p')
			# shellcheck disable=SC2086 # a list of names, split on purpose
			expand $members
			;;
		*) echo "$s" ;;
		esac
	done
}
filter=$(sed -n 's/^SystemCallFilter=//p' "$UNITS/ztnad.service")
allow=$(echo "$filter" | grep -v '^~' | tr ' ' '\n' | grep . || true)
deny=$(echo "$filter" | sed -n 's/^~//p' | tr ' ' '\n' | grep . || true)
# shellcheck disable=SC2086
expand $allow | sort -u >"$dir/allowed"
# shellcheck disable=SC2086
expand $deny | sort -u >"$dir/denied"
comm -23 "$dir/allowed" "$dir/denied" >"$dir/permitted"

if ! command -v strace >/dev/null; then
	skip "strace is not installed: ztnad's system calls are not checked against SystemCallFilter="
else
	store=$dir/strace/records
	strace -f -qq -e signal=none -o "$dir/trace" "$B/ztnad" -c "$strace_conf" --peers "$peers" --store "$store" \
		2>"$dir/strace.log" &
	spid=$!
	pids="$pids $spid"
	if wait_for 5 resolves_in "$store" Win-A 100.64.0.1; then
		zpid=$(pgrep -P "$spid" || true)
		# The query path, every thread of it (strace -f).
		dq() { dig @127.0.0.1 -p 15398 +tries=1 +time=5 "$@" 2>&1 || true; }
		wait_for 5 dig @127.0.0.1 -p 15398 +tries=1 +time=1 Win-A.yourorg.zt.net || true
		out=$(dq +short Win-A.yourorg.zt.net A)
		check "under strace: a tailnet name over UDP ($out)" test "$out" = 100.64.0.1
		out=$(dq +tcp +short Win-A.yourorg.zt.net AAAA)
		check "under strace: a tailnet name over TCP ($out)" test "$out" = fd7a:115c:a1e0::1
		out=$(dq www.example.test A)
		check "under strace: a name for the upstream, which refuses the connection: SERVFAIL" \
			grep -q 'status: SERVFAIL' <<<"$out"
		kill -HUP "$zpid"
		check "under strace: SIGHUP reloads" wait_for 5 grep -qF '(SIGHUP)' "$dir/strace.log"
		kill -TERM "$zpid"
	else
		fail "ztnad under strace did not publish; log: $(cat "$dir/strace.log")"
	fi
	wait "$spid" || true
	pids=
	sed -nE 's/^[0-9]+ +([a-z0-9_]+)\(.*/\1/p' "$dir/trace" | sort -u >"$dir/used"
	blocked=$(comm -23 "$dir/used" "$dir/permitted" | tr '\n' ' ')
	if [ ! -s "$dir/used" ]; then
		fail "strace recorded no system calls"
	elif [ -z "$blocked" ]; then
		ok "all $(wc -l <"$dir/used") system calls ztnad made (start, DNS queries, SIGHUP, SIGTERM) pass SystemCallFilter="
	else
		fail "ztnad makes system calls the unit's SystemCallFilter= refuses: $blocked"
	fi
fi

# ---- sd_notify ----
# A Python datagram socket stands in for systemd's notification socket. On
# READY=1 ztnad is stopped (SIGSTOP) before anything is checked, so a store
# published after READY=1 could not slip in while the check runs.
cat >"$dir/notify.py" <<'EOF'
import os, signal, socket, subprocess, sys, time

ztnad, store, peers, build, nss, watchdog = sys.argv[1:7]
path = os.path.join(os.path.dirname(store), "notify")
os.makedirs(os.path.dirname(store), exist_ok=True)
sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
sock.bind(path)
env = dict(os.environ, NOTIFY_SOCKET=path)
if watchdog != "0":
    env["WATCHDOG_USEC"] = watchdog
proc = subprocess.Popen([ztnad, "-c", os.environ["ZTNAD_CONF"], "--peers", peers, "--store", store],
                        env=env, stderr=subprocess.DEVNULL)

def resolves():
    r = subprocess.run(["getent", "-s", nss, "ahosts", "Win-A"], capture_output=True, text=True,
                       env=dict(os.environ, LD_LIBRARY_PATH=build, ZTNA_STORE=store))
    return any(l.split()[0] == "100.64.0.1" for l in r.stdout.splitlines())

def say(what):
    print(what, flush=True)

sock.settimeout(0.2)
deadline = time.monotonic() + 15
ready = watchdogs = 0
gap = 0.0
while time.monotonic() < deadline:
    try:
        msg = sock.recv(4096).decode()
    except socket.timeout:
        if proc.poll() is not None:
            break
        continue
    fields = msg.split("\n")
    if "READY=1" in fields:
        os.kill(proc.pid, signal.SIGSTOP)
        ready += 1
        say("ready store=%s resolves=%s" % (os.path.exists(store), resolves()))
        os.kill(proc.pid, signal.SIGCONT)
        if watchdog == "0":
            break
    for f in fields:
        if f.startswith("STATUS="):
            say("status " + f[7:])
    if "WATCHDOG=1" in fields and ready:
        now = time.monotonic()
        if watchdogs:
            gap = max(gap, now - last)
        watchdogs += 1
        last = now
        if watchdogs == 4:
            say("watchdog longest gap %.2f s" % gap)
            break
if proc.poll() is None:
    proc.send_signal(signal.SIGTERM)
    stopping = False
    sock.settimeout(5)
    try:
        while not stopping:
            stopping = "STOPPING=1" in sock.recv(4096).decode().split("\n")
    except socket.timeout:
        pass
    say("stopping %s" % stopping)
say("exit %d" % proc.wait(timeout=10))
say("readies %d" % ready)
EOF

out=$(ZTNAD_CONF=$conf "$PYTHON" "$dir/notify.py" "$B/ztnad" "$dir/notify/records" "$peers" "$B" "$NSS" 2000000 2>&1 || true)
echo "$out" | grep -qx 'ready store=True resolves=True' &&
	ok "READY=1 arrives with the store published and Win-A resolving through glibc" ||
	fail "READY=1 did not find the store published and resolving: $out"
echo "$out" | grep -qx 'readies 1' && ok "READY=1 is sent once" || fail "READY=1 count: $out"
echo "$out" | grep -q '^status Up: 1 peers of yourorg.zt.net' &&
	ok "STATUS= says what is published" || fail "no STATUS= naming the published map: $out"
# systemd fails the service when WATCHDOG=1 is not renewed within the
# period; sd-event pings at roughly three quarters of it.
if echo "$out" | grep -qE '^watchdog longest gap [01]\.[0-9]+ s$'; then
	ok "WATCHDOG=1 is renewed within the period ($(echo "$out" | sed -n 's/^watchdog //p') at WATCHDOG_USEC=2000000)"
else
	fail "WATCHDOG=1 not renewed within WATCHDOG_USEC=2000000: $out"
fi
echo "$out" | grep -qx 'stopping True' && ok "SIGTERM sends STOPPING=1" || fail "no STOPPING=1 on SIGTERM: $out"
echo "$out" | grep -qx 'exit 0' && ok "ztnad exits 0 on SIGTERM" || fail "exit status after SIGTERM: $out"

echo '{"domain": "yourorg.zt.net", "peers": [{"name": "Win-A"}]}' >"$dir/bad.json"
# Its own state directory: no map saved by the runs above to fall back on.
printf 'state_dir = %s\ncontrol_socket = %s\n[dns]\nstub = no\n' "$dir/bad-state" "$dir/bad.sock" >"$dir/bad.conf"
out=$(ZTNAD_CONF=$dir/bad.conf "$PYTHON" "$dir/notify.py" "$B/ztnad" "$dir/bad/records" "$dir/bad.json" "$B" "$NSS" 0 2>&1 || true)
if echo "$out" | grep -qx 'readies 0' && echo "$out" | grep -q '^status Invalid peers: ' &&
	echo "$out" | grep -qx 'exit 1'; then
	ok "an invalid first map: no READY=1, STATUS= says why, exit 1 (the start fails)"
else
	fail "an invalid first map: $out"
fi

# ---- socket activation, as ztnad.socket hands the stub its sockets ----
# A Python parent binds a UDP and a TCP socket, as systemd would for
# ListenDatagram= and ListenStream=, and execs ztnad with them as fds 3 and
# 4, LISTEN_FDS=2, LISTEN_FDNAMES=stub:stub and LISTEN_PID its own pid.
cat >"$dir/activate.py" <<'EOF'
import os, socket, sys

port = int(sys.argv[1])
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
udp.bind(("127.0.0.1", port))
tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
tcp.bind(("127.0.0.1", port))
tcp.listen(16)
# Out of the way first: either may be 3 or 4 already, and close on exec.
u, t = os.dup(udp.fileno()), os.dup(tcp.fileno())
os.dup2(u, 3)
os.dup2(t, 4)
os.environ.update(LISTEN_FDS="2", LISTEN_FDNAMES="stub:stub", LISTEN_PID=str(os.getpid()))
os.execv(sys.argv[2], sys.argv[2:])
EOF
act=$dir/activated
mkdir -m 0755 "$act"
printf 'state_dir = %s\ncontrol_socket = %s\n[dns]\nlisten = 127.0.0.1:15395\nupstream = 127.0.0.1:15396#dns.test\n' \
	"$act/state" "$act/control.sock" >"$act/ztnad.conf"
"$PYTHON" "$dir/activate.py" 15397 "$B/ztnad" -c "$act/ztnad.conf" --peers "$peers" --store "$act/records" \
	2>"$act/ztnad.log" &
sapid=$!
pids="$pids $sapid"
if wait_for 5 resolves_in "$act/records" Win-A 100.64.0.1; then
	aq() { dig @127.0.0.1 -p 15397 +tries=1 +time=5 +short "$@" 2>&1 || true; }
	out=$(aq Win-A.yourorg.zt.net A)
	check "socket activation: answered on the passed UDP socket ($out)" test "$out" = 100.64.0.1
	out=$(aq +tcp Win-A.yourorg.zt.net A)
	check "socket activation: answered on the passed TCP socket ($out)" test "$out" = 100.64.0.1
	check "socket activation: its own listen address (127.0.0.1:15395) is not bound" \
		test -z "$(ss -Hlnu 'sport = :15395'; ss -Hlnt 'sport = :15395')"
else
	fail "socket activation: ztnad did not publish; log: $(cat "$act/ztnad.log")"
fi
kill -TERM "$sapid" 2>/dev/null || true
rc=0
wait "$sapid" || rc=$?
pids=
check "socket activation: ztnad exits 0 on SIGTERM (exit $rc)" test "$rc" = 0

# ---- running as a system account in a directory it owns ----
if [ "$(id -u)" -ne 0 ]; then
	skip "not root: ztnad is not run as a system account"
elif ! command -v setpriv >/dev/null; then
	skip "setpriv is not installed: ztnad is not run as a system account"
else
	# A system uid no account uses, standing in for ztna's.
	sys_uid=
	for u in $(seq 999 -1 900); do
		if ! getent passwd "$u" >/dev/null && ! getent group "$u" >/dev/null; then
			sys_uid=$u
			break
		fi
	done
	[ -n "$sys_uid" ] || skip "no free uid in 900-999: ztnad is not run as a system account"
fi
if [ -n "${sys_uid:-}" ]; then
	run=$dir/run-ztna
	mkdir -m 0755 "$run"
	printf 'state_dir = %s\ncontrol_socket = %s\n[dns]\nstub = no\n' "$run/state" "$run/control.sock" \
		>"$run/ztnad.conf"
	chown "$sys_uid:$sys_uid" "$run"
	setpriv --reuid="$sys_uid" --regid="$sys_uid" --clear-groups --inh-caps=-all \
		"$B/ztnad" -c "$run/ztnad.conf" --peers "$peers" --store "$run/records" 2>"$dir/account.log" &
	apid=$!
	pids="$pids $apid"
	if wait_for 5 resolves_in "$run/records" Win-A 100.64.0.1; then
		ok "ztnad as uid $sys_uid in a 0755 directory it owns: glibc trusts the store"
	else
		fail "ztnad as uid $sys_uid: the store does not resolve; log: $(cat "$dir/account.log")"
	fi
	st=$(stat -c '%a %u' "$run/records" 2>/dev/null || true)
	[ "$st" = "644 $sys_uid" ] && ok "the store is 0644 and owned by the account" ||
		fail "the store is '$st', not '644 $sys_uid'"
	kill -TERM "$apid"
	rc=0
	wait "$apid" || rc=$?
	pids=
	[ $rc -eq 0 ] && resolves_in "$run/records" Win-A 100.64.0.1 &&
		ok "stopped, it leaves the store resolving (what RuntimeDirectoryPreserve= keeps)" ||
		fail "after SIGTERM: exit $rc, or the store stopped resolving"
fi

finish
