#!/bin/sh
# The control plane client (ztnad/sources/controlplane.c, ztnad/sources/sync.c) against a
# real HTTPS server: tests/harness/cp-server.py on 127.0.0.1 with a certificate from
# a throwaway CA made here with the openssl command. test-sync (built with
# the sanitizers) polls it on an sd-event loop and prints what it publishes
# and every error; the server logs every request it answers.
#
# Shown: the first sync publishes; an unchanged map is a 304 to the
# If-None-Match the server saw and is not republished; a change is; a
# refused token, HTTP 500, a stopped server, a hanging one, a redirect, an
# oversized body, malformed JSON and an invalid peers document are each a
# clear error that leaves the map alone, with exponential back-off between
# attempts and recovery once the server behaves; SIGHUP resyncs in full;
# certificates from another CA, from no CA the client was given, or for
# another host name are refused; "resolve" finds a peer or says it does
# not exist.
# Usage: B=build sh tests/integration/test-controlplane.sh
set -eu

# shellcheck source=lib.sh
. "$(dirname "$0")/../lib.sh"
abs_build
HARNESS=$B/test/test-sync
SERVER=$(cd "$(dirname "$0")/../harness" && pwd)/cp-server.py
PYTHON=/usr/bin/python3
EXAMPLE=$(cd "$(dirname "$0")/../.." && pwd)/examples/tailnet.json
ORG=org-test-1

# Nothing from the caller's environment may steer libcurl: no proxy, no CA
# bundle other than the one a test names.
no_proxy_env

temp_dir
st=$dir/state
out=$dir/sync.out
err=$dir/sync.err
spid=
hpid=
mpid=

cleanup() { stop_pids "$hpid" "$spid" "$mpid"; }

mode() {
	echo "$1" | replace "$st/mode"
}

# ---- certificates ----
make_ca "$dir" ca
make_ca "$dir" other-ca
make_cert "$dir" server ca "IP:127.0.0.1,DNS:localhost"
make_cert "$dir" elsewhere ca "DNS:elsewhere.invalid"

mkdir "$st"
cp "$EXAMPLE" "$st/peers.json"
echo "test-token-$$" >"$st/token"
printf '  test-token-%s\n\n' $$ >"$dir/token"
chmod 0600 "$dir/token"

# start_server [PORT]: the control plane, on PORT or a free one.
start_server() {
	start_cp_server "$dir/server" "$st" "$ORG" "$@"
}
start_server
URL=https://127.0.0.1:$port

# ---- resolve (what `ztna dns query` calls) ----
resolve() {
	"$HARNESS" resolve --url "$URL" --org "$ORG" --token-file "$dir/token" --ca-file "$dir/ca.pem" \
		--timeout-ms 3000 "$@"
}

rc=0
got=$(resolve Win-A 2>&1) || rc=$?
want="Win-A.yourorg.zt.net -> 100.64.0.1
Win-A.yourorg.zt.net -> fd7a:115c:a1e0::1"
[ $rc -eq 0 ] && [ "$got" = "$want" ] && ok "resolve Win-A: $(echo "$got" | head -n 1) (and its IPv6 address)" ||
	fail "resolve Win-A: exit $rc, output: $got"
rc=0
got=$(resolve WIN-A.yourorg.zt.net. 2>&1) || rc=$?
[ $rc -eq 0 ] && [ "$got" = "$want" ] && ok "resolve by FQDN, any case, final dot" ||
	fail "resolve by FQDN: exit $rc, output: $got"
rc=0
got=$(resolve Nobody 2>&1) || rc=$?
[ $rc -eq 1 ] && [ "$got" = 'control plane knows no peer "Nobody"' ] && ok "resolve of an unknown peer: exit 1, $got" ||
	fail "resolve Nobody: exit $rc, output: $got"
grep -q '"action": "resolve".*"name": "Win-A".*"status": 200' "$st/requests.log" &&
	ok "the server saw action resolve with the name" || fail "the server did not log the resolve request"

echo wrong-token >"$dir/bad-token"
chmod 0600 "$dir/bad-token"
rc=0
got=$("$HARNESS" resolve --url "$URL" --org "$ORG" --token-file "$dir/bad-token" --ca-file "$dir/ca.pem" Win-A 2>&1) ||
	rc=$?
[ $rc -eq 3 ] && echo "$got" | grep -qF "control plane refused the token (HTTP 401)" &&
	ok "resolve with a wrong token: $got" || fail "resolve with a wrong token: exit $rc, output: $got"

chmod 0644 "$dir/bad-token"
rc=0
got=$("$HARNESS" resolve --url "$URL" --org "$ORG" --token-file "$dir/bad-token" --ca-file "$dir/ca.pem" Win-A 2>&1) ||
	rc=$?
echo "$got" | grep -qF "readable by other users" && ok "a token file readable by others is warned about" ||
	fail "no warning for a world-readable token file: $got"

: >"$dir/empty-token"
rc=0
got=$("$HARNESS" resolve --url "$URL" --org "$ORG" --token-file "$dir/empty-token" --ca-file "$dir/ca.pem" Win-A 2>&1) ||
	rc=$?
[ $rc -eq 2 ] && echo "$got" | grep -qF "is empty" && ok "an empty token file: $got" ||
	fail "an empty token file: exit $rc, output: $got"
printf 'abc\r\nX-Injected: 1\n' >"$dir/two-lines"
rc=0
got=$("$HARNESS" resolve --url "$URL" --org "$ORG" --token-file "$dir/two-lines" --ca-file "$dir/ca.pem" Win-A 2>&1) ||
	rc=$?
[ $rc -eq 2 ] && echo "$got" | grep -qF "control character" && ok "a token that would inject a header is refused" ||
	fail "a two-line token: exit $rc, output: $got"

rc=0
got=$("$HARNESS" resolve --url "http://127.0.0.1:$port" --org "$ORG" --token-file "$dir/token" Win-A 2>&1) || rc=$?
[ $rc -eq 2 ] && echo "$got" | grep -qF "is not https://" && ok "an http:// control_url is refused before connecting" ||
	fail "http:// control_url: exit $rc, output: $got"

# ---- TLS: the chain and the name are verified ----
rc=0
got=$("$HARNESS" resolve --url "$URL" --org "$ORG" --token-file "$dir/token" Win-A 2>&1) || rc=$?
[ $rc -eq 3 ] && echo "$got" | grep -qF "is not trusted" &&
	ok "without ca_file the test CA's server is refused: $(echo "$got" | sed 's/.*is not trusted: //')" ||
	fail "without ca_file: exit $rc, output: $got"
rc=0
got=$("$HARNESS" resolve --url "$URL" --org "$ORG" --token-file "$dir/token" --ca-file "$dir/other-ca.pem" Win-A 2>&1) ||
	rc=$?
[ $rc -eq 3 ] && echo "$got" | grep -qF "is not trusted" && ok "a server not signed by ca_file is refused" ||
	fail "another CA: exit $rc, output: $got"
rc=0
got=$("$HARNESS" resolve --url "https://localhost:$port" --org "$ORG" --token-file "$dir/token" \
	--ca-file "$dir/ca.pem" Win-A 2>&1) || rc=$?
[ $rc -eq 0 ] && ok "the certificate's DNS name (localhost) is accepted" || fail "https://localhost: exit $rc, output: $got"

mkdir "$dir/elsewhere"
cp "$st/peers.json" "$st/token" "$dir/elsewhere/"
$PYTHON "$SERVER" --cert "$dir/elsewhere.pem" --key "$dir/elsewhere.key" --dir "$dir/elsewhere" \
	--port-file "$dir/elsewhere/port" 2>>"$dir/server.err" &
mpid=$!
wait_for 5 test -s "$dir/elsewhere/port" || fail "the second server did not start"
rc=0
got=$("$HARNESS" resolve --url "https://127.0.0.1:$(cat "$dir/elsewhere/port")" --org "$ORG" \
	--token-file "$dir/token" --ca-file "$dir/ca.pem" Win-A 2>&1) || rc=$?
[ $rc -eq 3 ] && echo "$got" | grep -qF "is not trusted" &&
	ok "a certificate for another host name is refused: $(echo "$got" | sed 's/.*is not trusted: //')" ||
	fail "host name mismatch: exit $rc, output: $got"
if wait_for 3 grep -q "tls_error\|closed_without_request" "$dir/elsewhere/requests.log" &&
	! grep -q '"action"' "$dir/elsewhere/requests.log"; then
	ok "no request (no token) reached the server with the wrong name: $(head -n 1 "$dir/elsewhere/requests.log")"
else
	fail "the mismatched server's log: $(cat "$dir/elsewhere/requests.log" 2>&1)"
fi
kill "$mpid"
wait "$mpid" 2>/dev/null || true
mpid=

# ---- the poller ----
# Interval 1 s, back-off 1 s doubling up to 4 s, 1.5 s per transfer
# (SYNC_TIMEOUT_MS overrides the last).
start_sync() {
	: >"$out"
	"$HARNESS" sync --url "$URL" --org "$ORG" --token-file "$dir/token" --ca-file "$1" --interval-ms 1000 \
		--max-backoff-ms 4000 --timeout-ms "${SYNC_TIMEOUT_MS:-1500}" >"$out" 2>>"$err" &
	hpid=$!
}

# The harness's output from line $mark on.
mark() {
	mark=$(($(wc -l <"$out") + 1))
}
since_mark() {
	tail -n +"$mark" "$out"
}
seen() {
	since_mark | grep -q -- "$1"
}
published() {
	grep -c " published " "$out" || true
}
# gaps N: the milliseconds between the attempts that failed 1st..Nth in a
# row since the mark, space-separated.
gaps() {
	since_mark | awk -v n="$1" '$2 == "error" && $3 >= 1 && $3 <= n { t[$3] = $1 }
		END { for (i = 2; i <= n; i++) printf "%s%d", (i > 2 ? " " : ""), t[i] - t[i - 1] }'
}
# within VALUE LOW HIGH
within() {
	[ "$1" -ge "$2" ] && [ "$1" -le "$3" ]
}
# recovered: waits for the next success after the mark.
recovered() {
	wait_for 8 seen " unchanged\| published "
}

mode normal
start_sync "$dir/ca.pem"
mark
if wait_for 5 seen " published 6 peers of yourorg.zt.net"; then
	ok "the first sync publishes the 6 peers"
else
	fail "no first publish; harness:"
	cat "$out" "$err"
fi

mark
wait_for 5 sh -c "tail -n +$mark '$out' | grep -c ' unchanged' | grep -qx 2" || true
if [ "$(since_mark | grep -c ' unchanged')" -ge 2 ] && [ "$(published)" -eq 1 ] &&
	grep -q '"action": "list", "if_none_match": "\\"[0-9a-f]*\\"".*"status": 304' "$st/requests.log"; then
	ok "an unchanged map: the server saw If-None-Match, answered 304, nothing republished"
else
	fail "unchanged map: harness and server log:"
	cat "$out" "$st/requests.log"
fi
if [ "$(grep -c 'in sync' "$err")" -eq 1 ]; then
	ok "quiet while in sync: one log line, not one per poll"
else
	fail "the log while in sync:"
	cat "$err"
fi

mark
"$PYTHON" - "$st/peers.json" <<'EOF'
import json, sys
p = sys.argv[1]
d = json.load(open(p))
d["peers"].append({"name": "New-E", "addresses": ["100.64.0.5"]})
open(p + ".tmp", "w").write(json.dumps(d))
EOF
mv -f "$st/peers.json.tmp" "$st/peers.json"
wait_for 3 seen " published 7 peers of yourorg.zt.net" && ok "a changed map is republished within the interval" ||
	fail "the change was not republished: $(since_mark)"

# ---- a refused token ----
mark
n=$(published)
echo "another-token" | replace "$st/token"
if wait_for 4 seen " error 1 EACCES control plane refused the token (HTTP 401)"; then
	ok "a refused token: $(since_mark | grep ' error 1 ' | cut -d' ' -f5-)"
else
	fail "no 401 error: $(since_mark)"
fi
echo "test-token-$$" | replace "$st/token"
recovered && [ "$(published)" -eq "$n" ] && ok "the token accepted again: back in sync with the map it kept" ||
	fail "after the 401: $(since_mark)"

# ---- HTTP 500: exponential back-off, one log line, recovery ----
mark
n=$(published)
mode 500
if wait_for 12 seen " error 4 "; then
	set -- $(gaps 4)
	if within "$1" 850 1400 && within "$2" 1750 2600 && within "$3" 3500 4700; then
		ok "HTTP 500: attempts $1, $2, $3 ms apart (1 s doubling, capped at 4 s)"
	else
		fail "HTTP 500: back-off gaps $*"
	fi
else
	fail "HTTP 500: fewer than 4 attempts: $(since_mark)"
fi
[ "$(grep -c 'answered HTTP 500' "$err")" -eq 1 ] && ok "HTTP 500 four times is logged once: $(grep 'answered HTTP 500' "$err")" ||
	fail "HTTP 500 log lines: $(grep -c 'answered HTTP 500' "$err")"
mode normal
if recovered && [ "$(published)" -eq "$n" ] && grep -q "back in sync.*after 4 failed attempts\|back in sync.*after 5 failed attempts" "$err"; then
	ok "recovery after HTTP 500, the map kept: $(grep 'back in sync' "$err" | tail -n 1)"
else
	fail "no recovery after HTTP 500: $(since_mark)"
fi

# ---- the server stops, then comes back on the same port ----
mark
kill "$spid"
wait "$spid" 2>/dev/null || true
spid=
if wait_for 6 seen " error 3 ECONNREFUSED"; then
	set -- $(gaps 3)
	within "$1" 850 1400 && within "$2" 1750 2600 && ok "server down: ECONNREFUSED, attempts $1 and $2 ms apart" ||
		fail "server down: back-off gaps $*"
else
	fail "server down: no 3 refused attempts: $(since_mark)"
fi
start_server "$port"
recovered && ok "the restarted server is picked up again" || fail "no recovery from a stopped server: $(since_mark)"

# ---- bad bodies are rejected, the map kept ----
# bad MODE PATTERN DESCRIPTION [SECONDS]
bad() {
	mark
	n=$(published)
	mode "$1"
	if wait_for "${4:-6}" seen " error 1 [A-Z0-9]* .*$2"; then
		ok "$3: $(since_mark | grep ' error 1 ' | cut -d' ' -f5- | cut -c1-160)"
	else
		fail "$3: $(since_mark)"
	fi
	mode normal
	recovered && [ "$(published)" -eq "$n" ] || fail "$3: no recovery, or the map changed: $(since_mark)"
}
bad malformed "map from the control plane rejected: control plane:1:" "malformed JSON is rejected"
bad invalid "map from the control plane rejected: control plane: peers\[1\]" "an invalid peers document is rejected"
bad redirect "redirects are not followed" "a redirect to http:// is not followed"
bad hang "timed out" "a server that never answers times out"
grep -q '"mode": "invalid".*"status": 200' "$st/requests.log" &&
	[ "$(grep -c ' rejected ' "$out")" -ge 2 ] && ok "rejected bodies reached the validator, not the store" ||
	fail "the rejections did not go through the callback"

# ---- SIGHUP: a full resync ----
mark
n=$(published)
lines=$(wc -l <"$st/requests.log")
kill -HUP "$hpid"
if wait_for 3 seen " published 7 peers" && [ "$(published)" -eq $((n + 1)) ] &&
	tail -n +"$((lines + 1))" "$st/requests.log" | grep -q '"if_none_match": null.*"status": 200'; then
	ok "SIGHUP (sync_now) fetches in full, without If-None-Match, and republishes"
else
	fail "SIGHUP: $(since_mark)"
fi

kill -TERM "$hpid"
rc=0
wait "$hpid" || rc=$?
hpid=
[ $rc -eq 0 ] && ! grep -q "Sanitizer" "$err" && ok "the poller stops cleanly (sanitizers quiet)" ||
	fail "the harness exited $rc: $(cat "$err")"

# ---- size caps ----
# 64 MiB through TLS under sanitizers takes longer than 1.5 s on a loaded
# machine; a transfer cut by the timeout would prove nothing about the cap,
# so these run in a poller with time enough to reach it.
SYNC_TIMEOUT_MS=60000 start_sync "$dir/ca.pem"
mark
wait_for 10 seen " published " || fail "the size-cap poller never published: $(since_mark)"
bad huge "sent more than 67108864 bytes" "a body announced above 64 MiB is refused" 90
bad huge-stream "sent more than 67108864 bytes" "a body streamed past 64 MiB is cut off" 90
kill -TERM "$hpid"
wait "$hpid" 2>/dev/null || true
hpid=

# ---- a poller that does not trust the server never publishes ----
start_sync "$dir/other-ca.pem"
mark
if wait_for 5 seen " error 2 EPERM" && ! grep -q " published " "$out"; then
	ok "a poller given another CA never publishes: $(grep -m 1 ' error 1 ' "$out" | cut -d' ' -f5- | cut -c1-120)"
else
	fail "another CA, poller: $(cat "$out")"
fi
kill -TERM "$hpid"
wait "$hpid" 2>/dev/null || true
hpid=

if [ -n "${VERBOSE:-}" ]; then
	echo "--- harness:"
	cat "$out"
	echo "--- log:"
	cat "$err"
fi
finish
