#!/bin/sh
# The ztna command against the real ztnad (built under the sanitizers,
# build/test/bin/ztnad) on a private control socket and record store, the
# stub off; ztna runs as root, as nobody (setpriv --clear-groups) and as
# nobody in the admin group (setpriv --groups). Checks output, --json and
# every exit code. The admin group, "ztna-test", exists only in a private
# mount namespace (a copy of /etc/group bind-mounted over it).
# Needs root. Usage: B=build sh tests/integration/test-control.sh
set -eu
if [ -z "${ZTNA_CONTROL_NS:-}" ]; then
	ZTNA_CONTROL_NS=1 exec unshare -m --propagation private sh "$0" "$@"
fi

# shellcheck source=lib.sh
. "$(dirname "$0")/../lib.sh"
abs_build
ADMIN_GID=4242
ADMIN_GROUP=ztna-test
ZTNAD=${ZTNAD:-$B/test/bin/ztnad}

# nobody must reach the socket and run the binary from here: 0755.
temp_dir
mkdir -m 0755 "$dir/run"
sock=$dir/run/control.sock
store=$dir/run/records
log=$dir/ztnad.log
pid=
cppid=
cleanup() { stop_pids "$pid" "$cppid"; }

ztna() { "$B/ztna" --socket "$sock" "$@"; }
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
as_admin() { setpriv --reuid=65534 --regid=65534 --groups=$ADMIN_GID "$@"; }

# exit_is WANT COMMAND...: COMMAND exits with status WANT.
exit_is() {
	want=$1
	shift
	rc=0
	"$@" >"$dir/out" 2>"$dir/err" || rc=$?
	[ $rc -eq "$want" ] && ok "exit $want: $*" || fail "exit $rc, not $want: $* ($(cat "$dir/err"))"
}

cat >"$dir/peers.json" <<'EOF'
{"domain": "yourorg.zt.net",
 "peers": [{"name": "Win-A", "addresses": ["100.64.0.1", "fd7a:115c:a1e0::1"]},
           {"name": "Linux-C", "addresses": ["100.64.0.3"], "online": false}]}
EOF

# ---- unreachable first: nothing listens yet ----
exit_is 3 ztna status
grep -q "not reachable at $sock" "$dir/out" && ok "status says ztnad is not reachable" ||
	fail "status did not say so: $(cat "$dir/out")"
exit_is 3 ztna dns query Win-A
exit_is 3 ztna dns list
exit_is 3 ztna down
exit_is 3 ztna --json dns flush
grep -q '"code": "unreachable"' "$dir/out" && ok "--json says unreachable" || fail "--json: $(cat "$dir/out")"

cp /etc/group "$dir/group"
echo "$ADMIN_GROUP:x:$ADMIN_GID:" >>"$dir/group"
mount --bind "$dir/group" /etc/group
cat >"$dir/ztnad.conf" <<EOF
store = $store
state_dir = $dir/state
control_socket = $sock
control_group = $ADMIN_GROUP
peers_file = $dir/peers.json
[dns]
stub = no
EOF
"$ZTNAD" -c "$dir/ztnad.conf" 2>"$log" &
pid=$!
i=0
until [ -S "$sock" ] && grep -q 'published generation' "$log"; do
	i=$((i + 1))
	[ $i -lt 400 ] && kill -0 "$pid" 2>/dev/null || {
		fail "ztnad did not start: $(cat "$log")"
		exit 1
	}
	sleep 0.05
done
mode=$(stat -c %a "$sock")
[ "$mode" = 666 ] && ok "the socket is mode 0666" || fail "the socket is mode $mode"

# ---- reading, as anyone ----
out=$(ztna dns query Win-A)
[ "$out" = "Win-A.yourorg.zt.net -> 100.64.0.1
Win-A.yourorg.zt.net -> fd7a:115c:a1e0::1" ] && ok "dns query Win-A: one line per address" ||
	fail "dns query Win-A printed '$out'"
out=$(as_nobody "$B/ztna" --socket "$sock" dns query win-a.yourorg.zt.net.)
echo "$out" | grep -qxF "Win-A.yourorg.zt.net -> 100.64.0.1" && ok "nobody may query" ||
	fail "nobody's query printed '$out'"
out=$(ztna dns query 100.64.0.3)
[ "$out" = "100.64.0.3 -> Linux-C.yourorg.zt.net" ] && ok "dns query by address: $out" || fail "by address: '$out'"
exit_is 1 ztna dns query nosuch
grep -qF "nosuch: no such peer in the tailnet" "$dir/err" && ok "not found says so" || fail "not found: $(cat "$dir/err")"
exit_is 1 ztna --json dns query nosuch
grep -qF '"found": false' "$dir/out" && ok "--json not found: found false" || fail "--json: $(cat "$dir/out")"
out=$(ztna --json dns query Win-A)
case $out in
*'"peer": {"name": "Win-A", "fqdn": "Win-A.yourorg.zt.net", "online": true, "ttl": 60, "addresses": ["100.64.0.1", "fd7a:115c:a1e0::1"]}, "source": "daemon"}') ok "--json dns query" ;;
*) fail "--json dns query printed '$out'" ;;
esac
out=$(as_nobody "$B/ztna" --socket "$sock" dns list)
echo "$out" | grep -qxF "Linux-C.yourorg.zt.net 100.64.0.3 (offline)" && ok "nobody may list; offline shown" ||
	fail "dns list printed '$out'"
# The daemon and the store agree.
a=$(ztna --json dns list) || true
b=$("$B/ztna" --store "$store" --json dns list) || true
[ "$a" = "$b" ] && ok "dns list through ztnad and --local are the same JSON" || fail "differ: '$a' vs '$b'"
out=$(ztna status)
echo "$out" | grep -q "^daemon: *running" && echo "$out" | grep -q "^  generation: *1$" &&
	echo "$out" | grep -qx "state: *up" && ok "status shows ztnad, then the store" || fail "status printed '$out'"
exit_is 0 ztna status

# ---- dns query with a control plane configured (ztna -c CONF) ----
# tests/harness/cp-server.py serves the same map over HTTPS with a certificate from
# a throwaway CA. Its "resolve" knows names only: an address goes to ztnad,
# and so does every query the control plane cannot be asked for.
no_proxy_env
make_ca "$dir" ca
make_cert "$dir" server ca IP:127.0.0.1
mkdir "$dir/cp"
cp "$dir/peers.json" "$dir/cp/peers.json"
echo "cp-token-$$" >"$dir/cp/token"
cp "$dir/cp/token" "$dir/token"
chmod 0600 "$dir/token"
start_cp_server "$dir/server" "$dir/cp" org-test
cppid=$spid
# cpconf NAME TOKEN_FILE: a ztnad.conf naming the control plane.
cpconf() {
	printf 'control_url = https://127.0.0.1:%s\norg_id = org-test\ntoken_file = %s\nca_file = %s\ncontrol_socket = %s\n' \
		"$port" "$2" "$dir/ca.pem" "$sock" >"$dir/$1"
}
cpconf cp.conf "$dir/token"
cpconf notoken.conf "$dir/no-such-token"
requests() { wc -l <"$dir/cp/requests.log" 2>/dev/null || echo 0; }

exit_is 0 "$B/ztna" -c "$dir/cp.conf" --json dns query Win-A
grep -qF '"source": "control plane"' "$dir/out" && ok "a name is asked of the control plane" ||
	fail "not from the control plane: $(cat "$dir/out") $(cat "$dir/err") $(cat "$dir/cp/server.err")"
n=$(requests)
exit_is 0 "$B/ztna" -c "$dir/cp.conf" dns query 100.64.0.3
[ "$(cat "$dir/out")" = "100.64.0.3 -> Linux-C.yourorg.zt.net" ] && ok "an address with a control plane: $(cat "$dir/out")" ||
	fail "an address with a control plane printed '$(cat "$dir/out")' ($(cat "$dir/err"))"
[ "$(requests)" = "$n" ] && ok "an address is not sent to the control plane" || fail "the control plane was asked for an address"
exit_is 0 "$B/ztna" -c "$dir/cp.conf" --json dns query fd7a:115c:a1e0::1
grep -qF '"source": "daemon"' "$dir/out" && ok "an IPv6 address is answered by ztnad" || fail "IPv6: $(cat "$dir/out")"
exit_is 1 "$B/ztna" -c "$dir/cp.conf" dns query nosuch
grep -qF 'control plane knows no peer "nosuch"' "$dir/err" && ok "the control plane's 'no such peer' stays final" ||
	fail "nosuch: $(cat "$dir/err")"

exit_is 0 "$B/ztna" -c "$dir/notoken.conf" dns query Win-A
grep -qxF "Win-A.yourorg.zt.net -> 100.64.0.1" "$dir/out" && ok "token file missing: ztnad answers" ||
	fail "token file missing printed '$(cat "$dir/out")'"
grep -qxF "ztna: control plane: cannot open token file $dir/no-such-token: No such file or directory; asking ztnad instead" \
	"$dir/err" && ok "and stderr says the control plane could not be asked" || fail "token file missing: $(cat "$dir/err")"
exit_is 0 "$B/ztna" -c "$dir/notoken.conf" --json dns query Win-A
grep -qF '"source": "daemon"' "$dir/out" && ok "--json names ztnad as the source" || fail "--json: $(cat "$dir/out")"
# Every other way of failing to ask falls back the same way.
: >"$dir/empty-token"
chmod 0600 "$dir/empty-token"
cpconf empty.conf "$dir/empty-token"
exit_is 0 "$B/ztna" -c "$dir/empty.conf" dns query Win-A
grep -q "control plane: token file .* is empty; asking ztnad instead" "$dir/err" && ok "an empty token falls back too" ||
	fail "empty token: $(cat "$dir/err")"
echo wrong >"$dir/cp/token"
exit_is 0 "$B/ztna" -c "$dir/cp.conf" dns query Win-A
grep -q "control plane: control plane refused the token (HTTP 401).*; asking ztnad instead" "$dir/err" &&
	ok "a refused token falls back too" || fail "refused token: $(cat "$dir/err")"
kill "$cppid" && wait "$cppid" 2>/dev/null || true
cppid=
exit_is 0 "$B/ztna" -c "$dir/cp.conf" dns query Win-A
grep -q "control plane: .*; asking ztnad instead" "$dir/err" && ok "a stopped control plane falls back too" ||
	fail "stopped control plane: $(cat "$dir/err")"

# ---- changes: refused to nobody, allowed to the admin group and root ----
exit_is 4 as_nobody "$B/ztna" --socket "$sock" down
grep -qF "not authorised: changes need root or the $ADMIN_GROUP group" "$dir/err" && ok "the refusal says why" ||
	fail "refusal: $(cat "$dir/err")"
exit_is 4 as_nobody "$B/ztna" --socket "$sock" dns flush
exit_is 4 as_nobody "$B/ztna" --socket "$sock" peers push "$dir/peers.json"
exit_is 4 as_nobody "$B/ztna" --socket "$sock" --json up
grep -qF '"code": "not-authorised"' "$dir/out" && ok "--json refusal has its code" || fail "--json: $(cat "$dir/out")"
"$B/ztna" --store "$store" status | grep -qx "state: *up" && ok "nobody's down changed nothing" ||
	fail "the store went down for nobody"

exit_is 0 as_admin "$B/ztna" --socket "$sock" down
"$B/ztna" --store "$store" status | grep -qx "state: *down" && ok "the admin group's down marks the store down" ||
	fail "the store is not down"
exit_is 0 ztna up
"$B/ztna" --store "$store" status | grep -qx "state: *up" && ok "root's up marks it up" || fail "not up"
exit_is 0 ztna dns flush

# ---- push ----
gen=$(ztna --json status | sed -n 's/.*"generation": \([0-9]*\).*/\1/p')
cat >"$dir/new.json" <<'EOF'
{"domain": "yourorg.zt.net",
 "peers": [{"name": "Win-A", "addresses": ["100.64.0.11"]},
           {"name": "Mac-B", "addresses": ["100.64.0.2"]}]}
EOF
exit_is 0 as_admin "$B/ztna" --socket "$sock" peers push "$dir/new.json"
grep -q "accepted; ztnad publishes generation $((gen + 1))" "$dir/out" && ok "push reports the new generation" ||
	fail "push printed '$(cat "$dir/out")'"
out=$("$B/ztna" --store "$store" dns query Mac-B)
[ "$out" = "Mac-B.yourorg.zt.net -> 100.64.0.2" ] && ok "the pushed map is in the store" || fail "store: '$out'"

# From standard input by a redirection, so that exit_is runs in this shell:
# in a pipeline it would run in a subshell of its own.
printf '{"domain": "yourorg.zt.net",\n "peers": [{"name": "Win-A", "addresses": ["100.64.0.300"]}]}\n' \
	>"$dir/bad.json"
exit_is 5 ztna peers push - <"$dir/bad.json"
grep -qF 'peers[0].addresses[0]: "100.64.0.300" is not an IPv4 or IPv6 address' "$dir/err" &&
	ok "a bad push is rejected with the JSON path and reason" || fail "rejection: $(cat "$dir/err")"
printf '{"domain": "yourorg.zt.net",\n "peers": [\n' >"$dir/trunc.json"
exit_is 5 ztna peers push "$dir/trunc.json"
grep -qF 'pushed document:3:' "$dir/err" && ok "a syntax error points at the document's line" || fail "syntax: $(cat "$dir/err")"
out=$(ztna dns query Mac-B)
[ "$out" = "Mac-B.yourorg.zt.net -> 100.64.0.2" ] && ok "the last good map stays" || fail "after bad push: '$out'"
printf 'not \377 utf-8' >"$dir/bin.json"
exit_is 5 ztna peers push "$dir/bin.json"
exit_is 5 ztna peers push "$dir/missing.json"
# A large push from nobody is refused as unauthorised, not cut off.
head -c 300000 /dev/zero | tr '\0' ' ' >"$dir/big.json"
exit_is 4 as_nobody "$B/ztna" --socket "$sock" peers push "$dir/big.json"

# ---- --json: exactly one JSON object on stdout, whatever went wrong ----
# json_is WANT COMMAND...: COMMAND exits WANT and its stdout is one JSON
# object; for a failure (not 0 or 1) {"ok": false, "code": ..., "error": ...}.
json_is() {
	want=$1
	shift
	exit_is "$want" "$@"
	if /usr/bin/python3 -c '
import json, sys
o = json.load(open(sys.argv[1]))
assert isinstance(o, dict), "not an object"
if int(sys.argv[2]) >= 2:
    assert o.get("ok") is False, "ok is not false"
    assert isinstance(o.get("code"), str) and o["code"], "no code"
    assert isinstance(o.get("error"), str) and o["error"], "no error"
' "$dir/out" "$want" 2>"$dir/pyerr"; then
		ok "  one JSON object: $(cut -c1-100 "$dir/out")"
	else
		fail "  not one JSON object ($(tail -n 1 "$dir/pyerr")): '$(cat "$dir/out")'"
	fi
}
json_is 5 ztna --json peers push "$dir/missing.json"
json_is 5 ztna --json peers push "$dir/bin.json"
json_is 5 ztna --json peers push "$dir/trunc.json"
json_is 5 ztna --json peers push "$dir"
json_is 4 as_nobody "$B/ztna" --socket "$sock" --json peers push "$dir/big.json"
json_is 4 as_nobody "$B/ztna" --socket "$sock" --json down
json_is 3 "$B/ztna" --local --store "$dir/missing" --json dns list
json_is 3 "$B/ztna" --local --store "$dir/missing" --json dns query Win-A
json_is 3 "$B/ztna" --local --store "$dir/missing" --json dns query 100.64.0.1
json_is 3 "$B/ztna" --local --store "$dir/missing" --json status
for c in status "dns list" "dns query Win-A" "dns flush" up down "peers push $dir/new.json"; do
	# shellcheck disable=SC2086 # the words of the command
	json_is 3 "$B/ztna" --socket "$dir/no.sock" --json $c
done
json_is 1 ztna --json dns query nosuch
json_is 1 ztna --json dns query 100.64.9.9
json_is 2 ztna --json
json_is 2 ztna --json status extra
json_is 2 ztna --json dns
json_is 2 ztna --json dns query
json_is 2 ztna --json dns list extra
json_is 2 ztna --json dns flush extra
json_is 2 ztna --json up extra
json_is 2 ztna --json peers
json_is 2 ztna --json peers push
json_is 2 ztna --json frobnicate
json_is 2 ztna --no-such-option --json status
json_is 2 ztna --timeout 0 --json status
json_is 2 "$B/ztna" --store "$store" --json down
json_is 2 "$B/ztna" --store "$store" --json dns flush
json_is 2 "$B/ztna" --store "$store" --json peers push "$dir/new.json"
json_is 2 "$B/ztna" --store "" --json status
json_is 2 "$B/ztna" -c "$dir/no-such.conf" --json status
printf 'frobnicate = 1\n' >"$dir/bad.conf"
json_is 2 "$B/ztna" -c "$dir/bad.conf" --json dns query Win-A

# ---- usage ----
exit_is 2 ztna
exit_is 2 ztna dns
exit_is 2 ztna dns query
exit_is 2 ztna peers push
exit_is 2 "$B/ztna" --store "$store" down
exit_is 2 ztna --timeout 0 status
exit_is 0 ztna --help
grep -q "4  not authorised" "$dir/out" && ok "--help lists the exit codes" || fail "--help: no exit codes"

kill -0 "$pid" && ok "ztnad is still running" || fail "ztnad died"
kill "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ "$rc" -eq 0 ] && ok "ztnad exits 0 on SIGTERM" || fail "ztnad exited $rc"
if grep -q "ERROR: AddressSanitizer\|ERROR: LeakSanitizer\|runtime error" "$log"; then
	fail "sanitizer reports in ztnad's log:"
	cat "$log"
fi
finish
