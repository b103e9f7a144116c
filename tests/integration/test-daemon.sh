#!/bin/sh
# ztnad end to end, through real glibc: getent -s picks the NSS line and
# LD_LIBRARY_PATH finds the module, so nothing under /etc is read or changed.
# Publishes, follows an atomic replace of the peers file, keeps the last good
# map when a new file is bad, reloads on SIGHUP, exits 0 on SIGTERM leaving
# the store resolvable, and refuses a second daemon on the same store.
# Usage: B=build sh tests/integration/test-daemon.sh
set -eu

# shellcheck source=lib.sh
. "$(dirname "$0")/../lib.sh"
abs_build

# The module trusts no store in a world-writable directory (so not in /tmp
# itself): temp_dir's is 0755, and so is the one the daemon creates in it.
temp_dir
store=$dir/run/records
peers=$dir/peers.json
log=$dir/ztnad.log
NSS='hosts: files ztna [!UNAVAIL=return] dns'
pid=

cleanup() { stop_pids "$pid"; }

logged() {
	grep -qF -- "$1" "$log"
}

generation() {
	"$B/ztna" --store "$store" --json status | sed -n 's/.*"generation": \([0-9]*\).*/\1/p'
}

# Every path of ztnad's in the private directory: nothing under /run or
# /var/lib of the host is touched.
conf=$dir/ztnad.conf
printf 'state_dir = %s\ncontrol_socket = %s\n[dns]\nstub = no\n' "$dir/state" "$dir/control.sock" >"$conf"
printf 'state_dir = %s\ncontrol_socket = %s\n[dns]\nstub = no\n' "$dir/unused/state" "$dir/unused/control.sock" \
	>"$dir/unused.conf"

start_daemon() {
	"$B/ztnad" -c "$conf" --peers "$peers" --store "$store" 2>>"$log" &
	pid=$!
}

replace "$peers" <<'EOF'
{"domain": "yourorg.zt.net",
 "peers": [{"name": "Win-A", "addresses": ["100.64.0.1", "fd7a:115c:a1e0::1"]},
           {"name": "Linux-C", "addresses": ["100.64.0.3"]}]}
EOF

# ---- a bad first file: nothing to keep, so ztnad fails and says why ----
echo '{"domain": "yourorg.zt.net", "peers": [{"name": "Win-A", "adresses": []}]}' >"$dir/bad-first.json"
rc=0
out=$(timeout 10 "$B/ztnad" -c "$dir/unused.conf" --peers "$dir/bad-first.json" --store "$dir/unused/records" 2>&1) || rc=$?
if [ $rc -ne 0 ] && echo "$out" | grep -qF "$dir/bad-first.json: peers[0]: unknown key \"adresses\""; then
	ok "a bad first peers file fails ztnad (exit $rc) naming the file, path and key"
else
	fail "a bad first peers file: exit $rc, output: $out"
fi
[ ! -e "$dir/unused/records" ] && ok "nothing was published for it" || fail "a store was created for a bad first file"

# ---- log lines: plain text, "<N>" priority prefixes only into the journal ----
printf '[dns]\nstub = maybe\n' >"$dir/broken.conf"
want="$dir/broken.conf:2: key 'stub':"
# A terminal: script(1) gives ztnad a pty as stdin, stdout and stderr.
out=$(script -qec "'$B/ztnad' --check-config -c '$dir/broken.conf'" /dev/null 2>&1 | tr -d '\r' || true)
case $out in
"$want"*) ok "on a terminal --check-config prints plain text: $out" ;;
*) fail "on a terminal --check-config printed '$out'" ;;
esac
# The journal: systemd's JOURNAL_STREAM names stderr's device and inode.
: >"$dir/journal"
rc=0
JOURNAL_STREAM=$(stat -c %d:%i "$dir/journal") "$B/ztnad" --check-config -c "$dir/broken.conf" 2>>"$dir/journal" ||
	rc=$?
out=$(cat "$dir/journal")
case $out in
"<3>$want"*) ok "with stderr the journal's stream the line has its priority (exit $rc): $out" ;;
*) fail "with stderr the journal's stream ztnad printed '$out' (exit $rc)" ;;
esac
# Inherited, but stderr went elsewhere: plain again.
out=$(JOURNAL_STREAM=$(stat -c %d:%i "$dir/journal") "$B/ztnad" --check-config -c "$dir/broken.conf" 2>&1 || true)
case $out in
"$want"*) ok "JOURNAL_STREAM naming another file leaves stderr plain" ;;
*) fail "JOURNAL_STREAM naming another file: ztnad printed '$out'" ;;
esac

# ---- publish ----
start_daemon
if wait_for 5 test -s "$store" && wait_for 5 resolves_to Win-A 100.64.0.1; then
	ok "Win-A resolves to 100.64.0.1 through glibc"
else
	fail "Win-A does not resolve after start; log:"
	cat "$log"
fi
out=$(resolve hosts Linux-C || true)
case $out in
"100.64.0.3 "*Linux-C.yourorg.zt.net*) ok "getent hosts Linux-C: $out" ;;
*) fail "getent hosts Linux-C printed '$out'" ;;
esac
out=$(resolve hosts 100.64.0.1 || true)
case $out in
*Win-A.yourorg.zt.net*) ok "reverse lookup of 100.64.0.1 names Win-A.yourorg.zt.net" ;;
*) fail "reverse lookup of 100.64.0.1 printed '$out'" ;;
esac
rc=0
resolve hosts nosuch.yourorg.zt.net >/dev/null || rc=$?
[ $rc -eq 2 ] && ok "an unknown tailnet name is not found (getent exit 2)" || fail "unknown tailnet name: getent exit $rc"
out=$("$B/ztna" --store "$store" dns query Win-A || true)
echo "$out" | grep -qxF "Win-A.yourorg.zt.net -> 100.64.0.1" &&
	ok "ztna dns query Win-A prints Win-A.yourorg.zt.net -> 100.64.0.1" || fail "ztna dns query Win-A printed '$out'"

# exit_is WANT COMMAND...: COMMAND exits with status WANT.
exit_is() {
	want=$1
	shift
	rc=0
	"$@" >/dev/null 2>&1 || rc=$?
	[ $rc -eq "$want" ] && ok "exit $want: $*" || fail "exit $rc, not $want: $*"
}
exit_is 0 "$B/ztna" --store "$store" dns query win-a.yourorg.zt.net
exit_is 1 "$B/ztna" --store "$store" dns query nosuch
exit_is 1 "$B/ztna" --store "$store" dns query 100.64.9.9
exit_is 2 "$B/ztna" --store "$store" dns
exit_is 3 "$B/ztna" --store "$dir/run/missing" status
out=$("$B/ztna" --store "$store" --json dns list || true)
case $out in
*'{"name": "Win-A", "fqdn": "Win-A.yourorg.zt.net", "online": true, "ttl": 60, "addresses": ["100.64.0.1", "fd7a:115c:a1e0::1"]}'*)
	ok "ztna --json dns list shows Win-A" ;;
*) fail "ztna --json dns list printed '$out'" ;;
esac

# ---- an atomic replace is picked up ----
gen=$(generation)
replace "$peers" <<'EOF'
{"domain": "yourorg.zt.net",
 "peers": [{"name": "Win-A", "addresses": ["100.64.0.11"]},
           {"name": "Linux-C", "addresses": ["100.64.0.3"]},
           {"name": "Mac-B", "addresses": ["100.64.0.2"]}]}
EOF
if wait_for 5 resolves_to Win-A 100.64.0.11 && wait_for 5 resolves_to Mac-B 100.64.0.2; then
	ok "a replaced peers file is published (Win-A now 100.64.0.11, Mac-B added)"
else
	fail "the replaced peers file was not published within 5 s"
fi
resolves_to Win-A 100.64.0.1 && fail "Win-A still has its old address" || ok "Win-A's old address is gone"
[ "$(generation)" -gt "$gen" ] && ok "the generation went up ($gen -> $(generation))" || fail "generation did not move"

# ---- a bad file is refused and the last good map stays ----
gen=$(generation)
replace "$peers" <<'EOF'
{"domain": "yourorg.zt.net",
 "peers": [{"name": "Win-A", "addresses": ["100.64.0.300"]}]}
EOF
if wait_for 5 logged "$peers: peers[0].addresses[0]: \"100.64.0.300\" is not an IPv4 or IPv6 address"; then
	ok "ztnad logged the bad file with its name, JSON path and reason"
else
	fail "no error naming $peers in the log:"
	cat "$log"
fi
resolves_to Win-A 100.64.0.11 && ok "the last good map still resolves (Win-A 100.64.0.11)" ||
	fail "Win-A stopped resolving after a bad update"
[ "$(generation)" = "$gen" ] && ok "nothing was published for the bad file" || fail "a bad file changed the generation"

printf '{"domain": "yourorg.zt.net", "peers": [' | replace "$peers"
wait_for 5 logged "$peers:1:" && ok "a truncated file is logged as a syntax error at its line and column" ||
	fail "no syntax error logged for a truncated file"
kill -0 "$pid" 2>/dev/null && ok "ztnad is still running" || fail "ztnad died on a bad file"

# ---- SIGHUP re-reads the file ----
# The peers path becomes a symlink into a directory ztnad does not watch, so
# a change there is seen only through SIGHUP.
mkdir "$dir/data"
replace "$dir/data/peers.json" <<'EOF'
{"domain": "yourorg.zt.net", "peers": [{"name": "Win-A", "addresses": ["100.64.0.21"]}]}
EOF
ln -s "$dir/data/peers.json" "$peers.tmp"
mv -f "$peers.tmp" "$peers"
wait_for 5 resolves_to Win-A 100.64.0.21 && ok "a symlink put in place is followed" ||
	fail "the symlinked peers file was not published"
replace "$dir/data/peers.json" <<'EOF'
{"domain": "yourorg.zt.net", "peers": [{"name": "Win-A", "addresses": ["100.64.0.22"]}]}
EOF
sleep 0.3
resolves_to Win-A 100.64.0.21 && ok "a change ztnad cannot see is not published on its own" ||
	fail "the unwatched change was published without SIGHUP"
kill -HUP "$pid"
if wait_for 5 resolves_to Win-A 100.64.0.22 && logged "(SIGHUP)"; then
	ok "SIGHUP reloads the peers file"
else
	fail "SIGHUP did not reload; log:"
	cat "$log"
fi

# ---- SIGTERM: exit 0, the store outlives the daemon ----
gen=$(generation)
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ $rc -eq 0 ] && ok "ztnad exits 0 on SIGTERM" || fail "ztnad exited $rc on SIGTERM"
resolves_to Win-A 100.64.0.22 && ok "the store still resolves with ztnad stopped" ||
	fail "Win-A stopped resolving when ztnad exited"
"$B/ztna" --store "$store" status | grep -qx "state: *up" && ok "the store stays up across a stop" ||
	fail "the store was marked down by SIGTERM"

# ---- a restart takes the store over; a second daemon is refused ----
# The stopped daemon's last heartbeat, made a minute old (the header's
# heartbeat_usec, shm/shm-format.h): the restarted one must beat as it takes
# the store over, not a timer period later. Without that, a ztnad restarted
# a few times within a period or two ran behind a heartbeat older than 15 s
# and `ztna doctor` called it store-stale.
python3 -c '
import struct, sys, time
with open(sys.argv[1], "r+b") as f:
    f.seek(32)
    f.write(struct.pack("<Q", int((time.time() - 60) * 1e6)))' "$store"
heartbeat_age() {
	"$B/ztna" --store "$store" --json status | sed -n 's/.*"heartbeat_age_sec": \([0-9]*\).*/\1/p'
}
start_daemon
if wait_for 5 logged "published generation $((gen + 1)):"; then
	ok "a restarted ztnad goes on from generation $gen"
else
	fail "a restarted ztnad did not publish generation $((gen + 1)); log:"
	cat "$log"
fi
age=$(heartbeat_age)
[ -n "$age" ] && [ "$age" -le 2 ] && ok "a restarted ztnad beats as it takes the store over (heartbeat ${age} s old)" ||
	fail "a restarted ztnad left the stopped one's heartbeat: ${age:-no} s old"
rc=0
out=$(timeout 10 "$B/ztnad" -c "$dir/unused.conf" --peers "$peers" --store "$store" 2>&1) || rc=$?
if [ $rc -ne 0 ] && [ $rc -ne 124 ] && echo "$out" | grep -qF "store $store is in use by another ztnad"; then
	ok "a second ztnad on the same store fails (exit $rc): $(echo "$out")"
else
	fail "a second ztnad on the same store: exit $rc, output: $out"
fi
resolves_to Win-A 100.64.0.22 && ok "the first ztnad's map still resolves" || fail "the second ztnad disturbed the store"

# ---- peers_file from ztnad.conf stays watched across reloads ----
# Issue 11 item 1: the watch kept a pointer into the configuration that a
# reload frees, and after the second SIGHUP a replaced file went unseen.
kill -TERM "$pid"
wait "$pid" || true
pid=
rm -f "$peers"
replace "$peers" <<'EOF'
{"domain": "yourorg.zt.net", "peers": [{"name": "Win-A", "addresses": ["100.64.0.30"]}]}
EOF
printf 'state_dir = %s\ncontrol_socket = %s\npeers_file = %s\n[dns]\nstub = no\n' "$dir/state" \
	"$dir/control.sock" "$peers" >"$conf"
# Freed memory filled with junk at once, so a stale pointer cannot still
# read the right name by luck.
MALLOC_PERTURB_=165 "$B/ztnad" -c "$conf" --store "$store" 2>>"$log" &
pid=$!
wait_for 5 resolves_to Win-A 100.64.0.30 && ok "peers_file in ztnad.conf is published" ||
	fail "peers_file in ztnad.conf was not published"
# reloaded_times N: the log has N "configuration reloaded" lines or more.
reloaded_times() {
	[ "$(grep -c 'configuration reloaded' "$log")" -ge "$1" ]
}
reloads=$(grep -c 'configuration reloaded' "$log" || true)
for n in 1 2 3; do
	kill -HUP "$pid"
	wait_for 5 reloaded_times $((reloads + n)) || fail "SIGHUP $n was not logged"
	replace "$peers" <<EOF
{"domain": "yourorg.zt.net", "peers": [{"name": "Win-A", "addresses": ["100.64.0.3$n"]}]}
EOF
	wait_for 5 resolves_to Win-A "100.64.0.3$n" && ok "after SIGHUP $n a replaced peers file is published" ||
		fail "after SIGHUP $n the replaced peers file was not published within 5 s"
done

if [ -n "${VERBOSE:-}" ] || failed_yet; then
	echo "--- ztnad's log:"
	cat "$log"
fi
finish
