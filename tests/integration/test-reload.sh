#!/bin/bash
# SPDX-License-Identifier: MIT
#
# SIGHUP applies every [dns] key (docs/reload.md), with the real ztnad, dig,
# and Debian's unbound as DoT upstreams (tests/harness/unbound-dot.sh):
#
#   upstream           answers come from the new server (each unbound
#                      answers who.example.test TXT with its own name);
#   allow_plaintext_fallback
#                      turned off by reload: not one query reaches the
#                      plain DNS server of resolv.conf afterwards, under a
#                      query loop that runs through the reload;
#   blocklist          a list added by reload blocks (EDE 15), removed
#                      unblocks;
#   listen             an address added answers, one removed is closed, one
#                      kept loses nothing under a query loop across reloads;
#   cache_size, serve_stale
#                      the cache is off or on as configured; serve_stale
#                      turned on serves an expired answer when the upstream
#                      is gone (EDE 3), off does not;
#   upstream_timeout   a silent server fails after the new timeout; one
#                      above 10 s with a server answering after 10.5 s: the
#                      stub passes the late answer on (its deadline derives
#                      from upstream_timeout);
#   tls_ca_file, spki_pins
#                      a wrong CA or a pin no certificate matches makes
#                      SERVFAIL; the right ones answer again; a reload of a
#                      [ztnad] key only (the [dns] side keeps serving while
#                      the configuration it was built from is freed) still
#                      answers over DoT; a CA file that cannot be loaded
#                      fails the new stub's workers: rejected, nothing
#                      changes, nothing leaks (under the sanitizers);
#   stub               off closes the port, on opens it again;
#   a listen address that cannot be bound (both ports taken) leaves the
#                      others serving, shows in `ztna status` (text and
#                      --json) and is bound on a later attempt once free;
#   and a broken file (bad value, or a blocklist that cannot be read) is
#   rejected whole: the log names file, line and key, nothing changes.
#
# And a cold start with 100,000 peers under query loops that start before
# ztnad: no tailnet name or tailnet PTR reaches the upstream, and the
# existing peer is never NXDOMAIN (SERVFAIL until the first publish, or
# answered from the store's persisted copy when there is one).
#
# Everything runs in a network and mount namespace of its own, with its own
# /etc/resolv.conf (bind-mounted there only). Needs root, unshare, unbound,
# openssl, dig, python3 and `make all`.
# Usage: B=build bash tests/integration/test-reload.sh   (VERBOSE=1: show the logs)
# Under the sanitizers (a use after free or a leak on a reload path fails
# the log and exit status checks):
#        make sanitized && B=build/test/bin bash tests/integration/test-reload.sh
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=lib.sh
. "$root/tests/lib.sh"
abs_build "$root"
PYTHON=/usr/bin/python3

if [ "${1-}" != --in-namespace ]; then
	need_root network and mount namespace
	need_built ztnad ztna
	need_tools unshare ip unbound openssl dig mount $PYTHON
	exec unshare --net --mount --propagation private env B="$B" bash "$0" --in-namespace
fi

ip link set lo up
temp_dir
tmp=$dir
pids=()
cleanup() {
	stop_pids "${pids[@]}"
	show_logs "$tmp"/*.log "$tmp"/z/ztnad.log
}

own_resolv_conf "$tmp"

now_ms() { date +%s%3N; }
out=''
says() { grep -qE -- "$1" <<<"$out"; }

# ---- upstreams ----
#   u0  plain DNS on 127.0.0.1:53, the namespace's resolv.conf server: what
#       the plaintext fallback asks
#   u1  DoT 127.0.0.1:853, u2 DoT 127.0.0.1:8853 (same CA)
#   a silent TLS port 8854 (accepts, never answers)
sh "$root/tests/harness/unbound-dot.sh" certs "$tmp/pki" >/dev/null
sh "$root/tests/harness/unbound-dot.sh" certs "$tmp/pki2" >/dev/null # another CA
CA=$tmp/pki/ca.pem
start_unbound() { # name tls_port plain_port
	start_unbound_dot "$tmp" "$1" "$2" server "$3" "ads.example.test. 300 IN A 192.0.2.66" \
		"short.example.test. 1 IN A 192.0.2.11" "cached.example.test. 300 IN A 192.0.2.10"
	pids+=("$!")
}
start_unbound u0 8859 53
start_unbound u1 853 ""
start_unbound u2 8853 ""
"$PYTHON" -c '
import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 8854)); s.listen(64)
held = []
while True:
    c, _ = s.accept(); held.append(c)' &
pids+=("$!")
port_open() { ss -Hltn "sport = :$1" | grep -q .; }
for p in 53 853 8853 8854; do
	wait_for 10 port_open "$p" || { not_ok "nothing listens on port $p: $(cat "$tmp"/u*.log)"; finish; }
done
ok "upstreams up: plain DNS on 127.0.0.1:53, DoT on 853 and 8853, a silent TLS port 8854"
saw() { # saw SERVER PATTERN: how many queries SERVER logged for names matching
	grep -ciE " $2\. " "$tmp/$1.log" || true
}

# ---- one ztnad, reconfigured by SIGHUP ----
z=$tmp/z
mkdir -m 0755 "$z"
printf '{"domain": "yourorg.zt.net", "peers": [{"name": "Win-A", "addresses": ["100.64.0.1"]}]}\n' >"$z/peers.json"
echo ads.example.test >"$z/block.txt"
conf() { # conf LINE...: the [dns] section
	{
		echo "store = $z/run/records"
		echo "state_dir = $z/state"
		echo "control_socket = $z/run/control.sock"
		echo "peers_file = $z/peers.json"
		[ -z "${ZTNAD_KEY:-}" ] || echo "$ZTNAD_KEY"
		echo "[dns]"
		printf '%s\n' "$@"
	} >"$z/ztnad.conf.tmp"
	mv -f "$z/ztnad.conf.tmp" "$z/ztnad.conf"
}
reloads() { grep -c 'configuration reloaded\|keeping the running configuration' "$z/ztnad.log" || true; }
# reload LINE...: writes the [dns] section, SIGHUP, waits for the verdict.
reload() {
	local n
	n=$(reloads)
	conf "$@"
	kill -HUP "$zpid"
	wait_for 10 reloads_above "$n"
}
reloads_above() { [ "$(reloads)" -gt "$1" ]; }
q() { # q ADDR#PORT ARGS...: dig; $out its output, $ms the time it took
	local server=${1%%#*} port=${1#*#} t0
	shift
	t0=$(now_ms)
	out=$(dig @"$server" -p "$port" +tries=1 +time="${DIG_TIME:-3}" "$@" 2>&1 || true)
	ms=$(($(now_ms) - t0))
}
jstat() { # jstat KEY: daemon.dns.KEY of ztna --json status
	"$B/ztna" --socket "$z/run/control.sock" --json status 2>/dev/null | $PYTHON -c '
import json, sys
v = json.load(sys.stdin)["daemon"]["dns"].get(sys.argv[1])
print(v if not isinstance(v, (list, dict)) else json.dumps(v))' "$1" 2>/dev/null || echo error
}
S1=127.0.0.1#5301
S2=127.0.0.2#5301

conf "listen = 127.0.0.1:5301" "upstream = 127.0.0.1:853#dns.test" "tls_ca_file = $CA" "cache_size = 0" \
	"allow_plaintext_fallback = yes"
: >"$z/ztnad.log"
"$B/ztnad" -c "$z/ztnad.conf" 2>>"$z/ztnad.log" &
zpid=$!
pids+=("$zpid")
wait_for 10 grep -q "DNS resolver started" "$z/ztnad.log" && wait_for 10 test -S "$z/run/control.sock" ||
	{ not_ok "ztnad did not start: $(cat "$z/ztnad.log")"; finish; }
q "$S1" who.example.test TXT +short
check "upstream u1 answers at first: $out" says '^"u1"$'

# ---- upstream ----
reload "listen = 127.0.0.1:5301" "upstream = 127.0.0.1:8853#dns.test" "tls_ca_file = $CA" "cache_size = 0" \
	"allow_plaintext_fallback = yes"
check "the log names the key applied: $(grep 'configuration reloaded' "$z/ztnad.log" | tail -n 1)" \
	grep -q 'configuration reloaded: upstream$' "$z/ztnad.log"
q "$S1" who.example.test TXT +short
check "after reload the new upstream u2 answers: $out" says '^"u2"$'

# ---- allow_plaintext_fallback, with a query loop across the reload ----
# The only DoT server is the silent one: every query fails over TLS.
reload "listen = 127.0.0.1:5301" "upstream = 127.0.0.1:8854#dns.test" "tls_ca_file = $CA" "cache_size = 0" \
	"allow_plaintext_fallback = yes" "upstream_timeout = 200ms"
q "$S1" fb1.plain.example.test A
check "with the fallback on, the plain server is asked" wait_for 5 test "$(saw u0 'fb1\.plain\.example\.test')" -ge 1
check "ztna status says plaintext_fallback true" test "$(jstat plaintext_fallback)" = True
"$PYTHON" "$root/tests/harness/stub-client.py" loop 127.0.0.1 5301 loop.plain.example.test >"$tmp/loop1.out" &
loop=$!
sleep 1
before=$(saw u0 'loop\.plain\.example\.test')
check_gt "the plain server got the loop's queries before the reload" "$before" 0
reload "listen = 127.0.0.1:5301" "upstream = 127.0.0.1:8854#dns.test" "tls_ca_file = $CA" "cache_size = 0" \
	"allow_plaintext_fallback = no" "upstream_timeout = 200ms"
sleep 0.3 # queries in flight when the reload came may still finish the old way
after=$(saw u0 'loop\.plain\.example\.test')
sleep 2
late=$(saw u0 'loop\.plain\.example\.test')
kill -TERM "$loop"
wait "$loop" 2>/dev/null || true
check_eq "not one plaintext query in the 2 s after the reload (u0 saw $before before, $after at the reload)" \
	"$((late - after))" 0
out=$(cat "$tmp/loop1.out")
check "the loop went on being answered (SERVFAIL now): $out" says 'SERVFAIL=[1-9]'
check "ztna status says plaintext_fallback false" test "$(jstat plaintext_fallback)" = False
q "$S1" fb2.plain.example.test A
check "a new query is SERVFAIL" says 'status: SERVFAIL'
sleep 0.5
check_eq "and never reaches the plain server" "$(saw u0 'fb2\.plain\.example\.test')" 0
check "the log line of the guide says so" grep -q 'plaintext fallback disabled -- returning SERVFAIL' "$z/ztnad.log"

# ---- upstream_timeout: the silent server fails after the new one ----
DIG_TIME=8 q "$S1" t1.example.test A
first=$ms
reload "listen = 127.0.0.1:5301" "upstream = 127.0.0.1:8854#dns.test" "tls_ca_file = $CA" "cache_size = 0" \
	"allow_plaintext_fallback = no" "upstream_timeout = 2s"
DIG_TIME=8 q "$S1" t2.example.test A
check "upstream_timeout 200ms -> 2s: SERVFAIL after ${first} ms, then after ${ms} ms" \
	eval 'num_lt "$first" 1500 && num_ge "$ms" 1900 && says "status: SERVFAIL"'

# ---- upstream_timeout above 10 s: the stub waits as long as the upstream ----
# u1 behind a relay that holds each connection's first bytes from the
# server 10.5 s (the stub's deadline was a fixed 10 s once).
"$PYTHON" "$root/tests/harness/tcp-proxy.py" --listen 8855 --connect 853 --delay 10.5 --delay-file "$tmp/slow" &
pids+=("$!")
wait_for 10 port_open 8855 || not_ok "the delaying relay did not start"
reload "listen = 127.0.0.1:5301" "upstream = 127.0.0.1:8855#dns.test" "tls_ca_file = $CA" "cache_size = 0" \
	"upstream_timeout = 12s"
touch "$tmp/slow"
DIG_TIME=15 q "$S1" who.example.test TXT +short
rm -f "$tmp/slow"
check "upstream_timeout = 12s, the server answers after 10.5 s: the stub passes the answer on ($ms ms: $out)" \
	eval 'says "^\"u1\"$" && num_ge "$ms" 10400'

# ---- tls_ca_file and spki_pins ----
base=("listen = 127.0.0.1:5301" "upstream = 127.0.0.1:853#dns.test" "cache_size = 0")
reload "${base[@]}" "tls_ca_file = $tmp/pki2/ca.pem"
q "$S1" who.example.test TXT
check "a CA that did not sign u1's certificate: SERVFAIL" says 'status: SERVFAIL'
reload "${base[@]}" "tls_ca_file = $CA"
q "$S1" who.example.test TXT +short
check "the right CA again: u1 answers ($out)" says '^"u1"$'
reload "${base[@]}" "tls_ca_file = $CA" "spki_pins = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="
q "$S1" who.example.test TXT
check "a pin no certificate matches: SERVFAIL" says 'status: SERVFAIL'
pin=$(openssl x509 -in "$tmp/pki/server.pem" -pubkey -noout | openssl pkey -pubin -outform der |
	openssl dgst -sha256 -binary | base64)
reload "${base[@]}" "tls_ca_file = $CA" "spki_pins = $pin"
q "$S1" who.example.test TXT +short
check "u1's own pin: answered ($out)" says '^"u1"$'
ZTNAD_KEY="offline_peers = hide" reload "${base[@]}" "tls_ca_file = $CA" "spki_pins = $pin"
check "a reload of a [ztnad] key only: $(grep 'configuration reloaded' "$z/ztnad.log" | tail -n 1)" \
	grep -q 'configuration reloaded: offline_peers$' "$z/ztnad.log"
q "$S1" who.example.test TXT +short
check "... the DoT upstream (CA file and pin kept) still answers ($out)" says '^"u1"$'
reload "${base[@]}" "tls_ca_file = $CA" "spki_pins = $pin"
# A [dns] section that fails only once the new stub is up: its workers
# cannot load the CA file, so the half-built generation must go whole.
reload "${base[@]}" "tls_ca_file = $tmp/no-such-ca.pem"
check "a CA file that cannot be loaded rejects the reload" \
	grep -q "the \[dns\] settings cannot be applied (see above); keeping the running configuration" "$z/ztnad.log"
q "$S1" who.example.test TXT +short
check "... and the running settings (pin included) still answer ($out)" says '^"u1"$'

# ---- blocklist ----
base=("listen = 127.0.0.1:5301" "upstream = 127.0.0.1:853#dns.test" "tls_ca_file = $CA" "cache_size = 0")
q "$S1" ads.example.test A +short
check "ads.example.test resolves without a blocklist ($out)" says '^192\.0\.2\.66$'
reload "${base[@]}" "blocklist = $z/block.txt"
q "$S1" ads.example.test A
check "a blocklist added by reload blocks it: NXDOMAIN with EDE 15" eval 'says "status: NXDOMAIN" && says "EDE: 15"'
reload "${base[@]}"
q "$S1" ads.example.test A +short
check "removed again: it resolves ($out)" says '^192\.0\.2\.66$'

# ---- a broken file is rejected whole ----
conf "listen = 127.0.0.1:5301" "upstream = 127.0.0.1:853#dns.test" "tls_ca_file = $CA" "blocklist = $z/block.txt" \
	"cache_size = lots"
n=$(reloads)
kill -HUP "$zpid"
wait_for 10 reloads_above "$n"
line=$(grep -n '^cache_size = lots' "$z/ztnad.conf" | cut -d: -f1)
check "a bad value: the log names file, line and key" \
	grep -qF "$z/ztnad.conf:$line: key 'cache_size': \"lots\" is not a size" \
	"$z/ztnad.log"
check "... and says the running configuration stays" grep -q 'is not a size.*; keeping the running configuration$' \
	"$z/ztnad.log"
q "$S1" ads.example.test A +short
check "and the valid blocklist line of that file did not apply ($out)" says '^192\.0\.2\.66$'
reload "${base[@]}" "blocklist = $z/missing.txt"
check "a blocklist that cannot be read rejects the reload" \
	grep -q "the \[dns\] settings cannot be applied (see above); keeping the running configuration" "$z/ztnad.log"
q "$S1" who.example.test TXT +short
check "the running settings still serve ($out)" says '^"u1"$'

# ---- cache_size and serve_stale ----
q "$S1" cached.example.test A
q "$S1" cached.example.test A
check "cache_size = 0: no cache hit (cache_hits $(jstat cache_hits))" test "$(jstat cache_hits)" = 0
reload "listen = 127.0.0.1:5301" "upstream = 127.0.0.1:853#dns.test" "tls_ca_file = $CA" "cache_size = 1M"
q "$S1" cached.example.test A
q "$S1" cached.example.test A
check "cache_size = 1M by reload: the second query is a hit (cache_hits $(jstat cache_hits))" \
	test "$(jstat cache_hits)" = 1
stale_case() { # stale_case yes|no: short.example.test (TTL 1) cached, expired, upstream gone
	reload "listen = 127.0.0.1:5301" "upstream = 127.0.0.1:853#dns.test" "tls_ca_file = $CA" "cache_size = 1M" \
		"serve_stale = $1"
	q "$S1" short.example.test A
	sleep 2
	# same cache settings: the cache (and its expired answer) is kept
	reload "listen = 127.0.0.1:5301" "upstream = 127.0.0.1:8854#dns.test" "tls_ca_file = $CA" \
		"cache_size = 1M" "serve_stale = $1" "upstream_timeout = 200ms"
	q "$S1" short.example.test A
}
stale_case yes
check "serve_stale = yes by reload: the expired answer is served with EDE 3" \
	eval 'says "192\.0\.2\.11" && says "EDE: 3"'
stale_case no
check "serve_stale = no by reload: SERVFAIL, nothing stale" eval 'says "status: SERVFAIL" && ! says "EDE: 3"'

# ---- listen: addresses added, removed and kept, under a query loop ----
base=("upstream = 127.0.0.1:853#dns.test" "tls_ca_file = $CA")
reload "listen = 127.0.0.1:5301" "${base[@]}"
"$PYTHON" "$root/tests/harness/stub-client.py" loop 127.0.0.1 5301 win-a.yourorg.zt.net >"$tmp/loop2.out" &
loop=$!
sleep 0.5
for i in 1 2 3 4 5; do
	reload "listen = 127.0.0.1:5301 127.0.0.2:5301" "${base[@]}"
	reload "listen = 127.0.0.1:5301" "${base[@]}" "cache_size = ${i}M"
done
reload "listen = 127.0.0.1:5301 127.0.0.2:5301" "${base[@]}"
sleep 0.5
kill -TERM "$loop"
wait "$loop" 2>/dev/null || true
out=$(cat "$tmp/loop2.out")
lost=$(sed -n 's/.* lost \([0-9]*\) .*/\1/p' <<<"$out")
check_eq "11 reloads under a query loop on the kept address: lost ($out)" "$lost" 0
q "$S2" win-a.yourorg.zt.net A +short
check "an added address answers ($out)" says '^100\.64\.0\.1$'
check "ztna status lists both" test "$(jstat listening)" = '["127.0.0.1:5301", "127.0.0.2:5301"]'
reload "listen = 127.0.0.2:5301" "${base[@]}"
q "$S1" win-a.yourorg.zt.net A
check "a removed address is closed" says 'refused|timed out|no servers'

# ---- stub off and on ----
reload "stub = no" "${base[@]}"
q "$S2" win-a.yourorg.zt.net A
check "stub = no by reload closes the port" says 'refused|timed out|no servers'
check "ztna status says dns enabled false" test "$(jstat enabled)" = False
reload "listen = 127.0.0.2:5301" "${base[@]}"
q "$S2" win-a.yourorg.zt.net A +short
check "stub = yes again opens it ($out)" says '^100\.64\.0\.1$'

# ---- a listen address that cannot be bound (issue 11, "also seen") ----
# 127.0.0.3 has both port 53 and the fallback port 15353 taken.
for p in 53 15353; do
	"$PYTHON" "$root/tests/harness/stub-client.py" occupy 127.0.0.3 $p udp >"$tmp/occupy-$p.out" &
	pids+=("$!")
	eval "occ_$p=\$!"
done
held() { grep -q occupied "$tmp/occupy-53.out" && grep -q occupied "$tmp/occupy-15353.out"; }
check "a python listener holds 127.0.0.3:53 and :15353" wait_for 5 held
reload "listen = 127.0.0.2:5301 127.0.0.3:53" "${base[@]}"
q "$S2" win-a.yourorg.zt.net A +short
check "the address that could be bound serves ($out)" says '^100\.64\.0\.1$'
check "ztna status says the stub is enabled" test "$(jstat enabled)" = True
check "--json lists the other under not_listening: $(jstat not_listening)" \
	test "$(jstat not_listening)" = '["127.0.0.3:53: Address already in use"]'
retry=$(jstat next_bind_attempt_in_seconds)
check "... with the next attempt in at most a minute ($retry s)" eval 'num_gt "$retry" 0 && num_le "$retry" 60'
out=$("$B/ztna" --socket "$z/run/control.sock" status 2>&1 || true)
check "the text status shows it too" says '^ +not listening: +127\.0\.0\.3:53: Address already in use$'
check "the log says it cannot listen there" grep -q 'cannot listen on 127.0.0.3:53: Address already in use' \
	"$z/ztnad.log"
sleep 3 # a few attempts fail meanwhile
kill "$occ_53" "$occ_15353"
t0=$(now_ms)
bound() { q 127.0.0.3#53 win-a.yourorg.zt.net A +short && says '^100\.64\.0\.1$'; }
check "once port 53 is free it is bound on a later attempt, without a reload" wait_for 70 bound
echo "# bound $(($(now_ms) - t0)) ms after the port was freed"
check "ztna status no longer lists anything not listening" test "$(jstat not_listening)" = None
check "and 127.0.0.2 still answers" eval 'q "$S2" win-a.yourorg.zt.net A +short; says "^100\.64\.0\.1$"'

check "ztnad is still running" kill -0 "$zpid"
kill -TERM "$zpid"
rc=0
wait "$zpid" || rc=$?
check_eq "ztnad exits 0 on SIGTERM (a sanitized build: nothing leaked)" "$rc" 0
san=$(grep -E -m 3 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$z/ztnad.log" || true)
check "no sanitizer report in ztnad's log over all these reloads${san:+: $san}" test -z "$san"

# ---- cold start with a large map: no tailnet name reaches the upstream ----
# COLD_PEERS peers (100,000 by default); query loops run from before ztnad
# starts until 2.5 s after its first publish. ZTNAD (default $B/ztnad)
# may name another build to measure against.
ZTNAD=${ZTNAD:-$B/ztnad}
COLD_PEERS=${COLD_PEERS:-100000}
c=$tmp/c
mkdir -m 0755 "$c" "$c/cache"
"$PYTHON" -c '
import json, sys
n = int(sys.argv[1])
peers = [{"name": "Win-A", "addresses": ["100.64.0.1"]}]
for i in range(2, n + 1):
    peers.append({"name": "peer-%d" % i, "addresses": ["100.%d.%d.%d" % (64 + (i >> 16), (i >> 8) & 255, i & 255)]})
json.dump({"domain": "yourorg.zt.net", "peers": peers}, sys.stdout)' "$COLD_PEERS" >"$c/peers.json"
{
	echo "store = $c/run/records"
	echo "state_dir = $c/state"
	echo "store_fallback = $c/cache/records"
	echo "control_socket = $c/run/control.sock"
	echo "peers_file = $c/peers.json"
	echo "[dns]"
	echo "listen = 127.0.0.4:5301"
	echo "upstream = 127.0.0.1:853#dns.test"
	echo "tls_ca_file = $CA"
	echo "cache_size = 0"
} >"$c/ztnad.conf"
# cold_start NAME: loops, then ztnad, until 2.5 s after its first
# publish (a query a loop sent before the stub was bound waits 2 s for its
# answer before the next one goes out, so a second is not always enough); the loops' tallies in $c/NAME-*.out, the upstream's new log
# lines in $c/NAME-upstream.log.
cold_start() {
	local mark p
	local lp=()
	mark=$(wc -l <"$tmp/u1.log")
	"$PYTHON" "$root/tests/harness/stub-client.py" loop 127.0.0.4 5301 win-a.yourorg.zt.net >"$c/$1-peer.out" &
	lp+=("$!")
	"$PYTHON" "$root/tests/harness/stub-client.py" loop 127.0.0.4 5301 1.0.64.100.in-addr.arpa 12 >"$c/$1-ptr.out" &
	lp+=("$!")
	"$PYTHON" "$root/tests/harness/stub-client.py" loop 127.0.0.4 5301 nosuch.yourorg.zt.net >"$c/$1-unknown.out" &
	lp+=("$!")
	sleep 0.3
	: >"$c/ztnad.log"
	"$ZTNAD" -c "$c/ztnad.conf" 2>>"$c/ztnad.log" &
	cpid=$!
	pids+=("$cpid")
	wait_for 60 grep -q 'published generation' "$c/ztnad.log" || not_ok "$1: no publish: $(cat "$c/ztnad.log")"
	sleep 2.5
	for p in "${lp[@]}"; do kill -TERM "$p"; done
	for p in "${lp[@]}"; do wait "$p" 2>/dev/null || true; done
	tail -n +"$((mark + 1))" "$tmp/u1.log" >"$c/$1-upstream.log"
	kill -TERM "$cpid"
	wait "$cpid" 2>/dev/null || true
}
tally() { # tally FILE RCODE: how many answers of that rcode a loop got
	local v
	v=$(grep -o "$2=[0-9]*" "$1" | cut -d= -f2)
	echo "${v:-0}"
}
leaks() { # leaks NAME: tailnet names and tailnet PTRs the upstream was asked
	grep -ciE ' [^ ]*(yourorg\.zt\.net|64\.100\.in-addr\.arpa)\. ' "$c/$1-upstream.log" || true
}

rm -rf "${c:?}/run" "${c:?}/cache/records"
cold_start first
echo "# first start, $COLD_PEERS peers, no store and no copy: $(grep -m 1 'published generation' "$c/ztnad.log")"
for f in peer ptr unknown; do echo "#   $f: $(cat "$c/first-$f.out")"; done
check_eq "no store, no copy: tailnet names and PTRs that reached the upstream" "$(leaks first)" 0
check_eq "... NXDOMAIN for the existing peer" "$(tally "$c/first-peer.out" NXDOMAIN)" 0
check_gt "... the existing peer is answered once the map is out" "$(tally "$c/first-peer.out" NOERROR)" 0
check "the copy of the store was saved" test -s "$c/cache/records"

# After a reboot: /run is empty, the copy on disk stands in.
rm -rf "${c:?}/run"
cold_start copy
echo "# store gone, the copy there:"
for f in peer ptr unknown; do echo "#   $f: $(cat "$c/copy-$f.out")"; done
check_eq "store gone, copy there: tailnet names and PTRs that reached the upstream" "$(leaks copy)" 0
check_eq "... NXDOMAIN for the existing peer" "$(tally "$c/copy-peer.out" NXDOMAIN)" 0
check_eq "... SERVFAIL for the existing peer (the copy answers it)" "$(tally "$c/copy-peer.out" SERVFAIL)" 0
finish
