#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The stub listener end to end, with real clients: dig, kdig and Python
# sockets (tests/harness/stub-client.py) against build/test/stub-harness, which runs
# the stub with the real cache, blocklist and store reader and forwards to a
# real unbound on loopback (plain UDP/TCP: the DoT upstream is tested by
# tests/integration/test-upstream.sh).
#
# Everything runs in a private network namespace (unshare --net): a fresh
# loopback where 127.0.0.53:53 is free, where the test can take port 53
# itself to see the stub fall back to 15353, and where a veth pair gives a
# non-loopback source address. The host's network, firewall and
# resolv.conf are never touched.
#
# Needs root, unshare, ip, unbound, dig (bind9-dnsutils), kdig
# (knot-dnsutils), python3, and `make build/test/stub-harness build/publish`.
# Prints "ok - ..." / "not ok - ..." lines; exits nonzero on any failure.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build
TEST_NAME=test-stub
# shellcheck source=lib.sh
. "$root/tests/lib.sh"

if [ "${1-}" != --in-namespace ]; then
        B=$build need_built test/stub-harness publish
        need_tools unshare ip unbound dig kdig python3
        exec unshare --net bash "$0" --in-namespace
fi

# ---- inside the private network namespace ----

ip link set lo up

out=''
# A failing check shows the last output too.
CHECK_SHOW_OUT=600

temp_dir
tmp=$dir
pids=()
cleanup() { stop_pids "${pids[@]}"; }

client() { python3 "$root/tests/harness/stub-client.py" "$@"; }
# Runs a stub-client.py check, counting each of its lines.
client_checks() {
        local line rc=0
        out=$(client "$@" 2>&1) || rc=$?
        while IFS= read -r line; do
                case $line in
                "ok - "*) ok "${line#ok - }" ;;
                "not ok - "*) not_ok "${line#not ok - }" ;;
                *) echo "# $line" ;;
                esac
        done <<<"$out"
        if [ "$rc" -ne 0 ] && ! grep -q "^not ok" <<<"$out"; then
                not_ok "stub-client.py $1 failed (exit $rc)"
        fi
}

# ---- the tailnet, the blocklist and the upstream ----

store=$tmp/records
"$build/publish" "$store" <<EOF
domain yourorg.zt.net
peer Win-A 100.64.0.1 fd7a:115c:a1e0::1
peer Linux-C ttl=30 100.64.0.3
peer Mac-B fd7a:115c:a1e0::2
EOF
cat >"$tmp/blocklist" <<EOF
# threat list
bad.example
0.0.0.0 ads.example tracker.example
EOF

cat >"$tmp/unbound.conf" <<EOF
server:
    interface: 127.0.0.1@5301
    port: 5301
    do-daemonize: no
    username: ""
    chroot: ""
    directory: "$tmp"
    pidfile: ""
    use-syslog: no
    logfile: "$tmp/unbound.log"
    verbosity: 0
    do-not-query-localhost: yes
    access-control: 127.0.0.0/8 allow
    module-config: "iterator"
    local-zone: "example.test." static
    local-data: "example.test. 3600 IN SOA ns1.example.test. hostmaster.example.test. 1 7200 900 1209600 300"
    local-data: "example.test. 3600 IN NS ns1.example.test."
    local-data: "www.example.test. 300 IN A 192.0.2.1"
    local-data: "www.example.test. 300 IN A 192.0.2.2"
    local-data: "short.example.test. 2 IN A 192.0.2.7"
EOF
for i in $(seq -w 1 40); do
        echo "    local-data: 'big.example.test. 60 IN TXT \"txt$i-$(printf 'x%.0s' $(seq 50))\"'" >>"$tmp/unbound.conf"
done

start_unbound() {
        unbound -d -c "$tmp/unbound.conf" 2>>"$tmp/unbound.err" &
        unbound_pid=$!
        pids+=("$unbound_pid")
        for _ in $(seq 50); do
                dig @127.0.0.1 -p 5301 +tries=1 +time=1 www.example.test +short 2>/dev/null | grep -q 192.0.2 && return 0
                sleep 0.1
        done
        return 1
}
stop_unbound() {
        kill "$unbound_pid"
        wait "$unbound_pid" 2>/dev/null || true
}
check "unbound answers on 127.0.0.1:5301" start_unbound

# start_stub NAME ARGS...: runs the harness, waits for "DNS resolver started".
start_stub() {
        local name=$1
        shift
        : >"$tmp/$name.fwd"
        "$build/test/stub-harness" --store "$store" --blocklist "$tmp/blocklist" --upstream 127.0.0.1:5301 \
                --forward-log "$tmp/$name.fwd" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" &
        eval "${name}_pid=$!"
        pids+=("$!")
        for _ in $(seq 100); do
                grep -q "DNS resolver started" "$tmp/$name.err" && return 0
                kill -0 "$!" 2>/dev/null || break
                sleep 0.1
        done
        out=$(cat "$tmp/$name.err")
        return 1
}
# stop_stub NAME: SIGTERM; it must exit 0 with no sanitizer report.
stop_stub() {
        local name=$1 pid rc=0
        pid=$(eval "echo \$${name}_pid")
        kill -TERM "$pid"
        wait "$pid" || rc=$?
        out=$(cat "$tmp/$name.err")
        [ "$rc" -eq 0 ] && ! grep -qE "AddressSanitizer|runtime error|LeakSanitizer" "$tmp/$name.err"
}
forwarded() { # forwarded STUB NAME: how many times NAME went upstream
        grep -ci "^$2 " "$tmp/$1.fwd" || true
}
stat_of() { # stat_of STUB KEY: the counter from a SIGUSR2 report
        local pid
        pid=$(eval "echo \$${1}_pid")
        kill -USR2 "$pid"
        sleep 0.3
        grep "^stats:" "$tmp/$1.err" | tail -1 | tr ' ' '\n' | sed -n "s/^$2=//p"
}

# ---- port 53 on 127.0.0.53, free in this namespace ----

check "the stub binds 127.0.0.53:53 when it is free" start_stub main --workers 2 --tcp-idle-ms 1500 --tcp-max 6
out=$(cat "$tmp/main.err")
check "it logs 'DNS resolver started' with the address" grep -q "DNS resolver started on 127.0.0.53:53 " <<<"$out"
check "no high-port fallback was needed" bash -c "! grep -q 'Cannot bind' '$tmp/main.err'"

# Never fail (set -e): what they print is checked.
dq() { dig @127.0.0.53 +tries=1 +time=3 "$@" 2>&1 || true; }
kq() { kdig @127.0.0.53 +retry=0 +time=3 "$@" 2>&1 || true; }

# tailnet names
out=$(dq win-a.yourorg.zt.net A)
check "dig A win-a.yourorg.zt.net -> 100.64.0.1" grep -qE "^win-a\.yourorg\.zt\.net\.\s+60\s+IN\s+A\s+100\.64\.0\.1$" <<<"$out"
check "... NOERROR, authoritative, EDNS answered with udp 1232" \
        bash -c 'grep -q "status: NOERROR" <<<"$1" && grep -q "flags: qr aa rd ra;" <<<"$1" && grep -q "udp: 1232" <<<"$1"' _ "$out"
out=$(kq Win-A.YourOrg.zt.net AAAA)
check "kdig AAAA Win-A.YourOrg.zt.net -> fd7a:115c:a1e0::1" grep -qiE "Win-A\.YourOrg\.zt\.net\.\s+60\s+IN\s+AAAA\s+fd7a:115c:a1e0::1" <<<"$out"
out=$(dq WIN-A.yourorg.ZT.net A +noall +question +answer)
check "the question's case comes back as asked (0x20)" grep -q "^;WIN-A.yourorg.ZT.net." <<<"$out"
out=$(dq -x 100.64.0.1 +short)
check "dig -x 100.64.0.1 -> Win-A.yourorg.zt.net." grep -qx "Win-A.yourorg.zt.net." <<<"$out"
out=$(kq -x fd7a:115c:a1e0::2 +short)
check "kdig -x fd7a:115c:a1e0::2 -> Mac-B.yourorg.zt.net." grep -qx "Mac-B.yourorg.zt.net." <<<"$out"
out=$(dq 1.0.64.100.IN-ADDR.ARPA PTR +short)
check "a reverse name in upper case (0x20) -> Win-A.yourorg.zt.net." grep -qx "Win-A.yourorg.zt.net." <<<"$out"
out=$(dq Win-A. A +short)
check "the short name Win-A. -> 100.64.0.1" grep -qx "100.64.0.1" <<<"$out"
out=$(dq linux-c.yourorg.zt.net AAAA)
check "a peer without IPv6: AAAA is NOERROR with no answer" \
        bash -c 'grep -q "status: NOERROR" <<<"$1" && grep -q "ANSWER: 0," <<<"$1"' _ "$out"
out=$(dq linux-c.yourorg.zt.net MX)
check "MX for a peer: NOERROR, no answer" \
        bash -c 'grep -q "status: NOERROR" <<<"$1" && grep -q "ANSWER: 0," <<<"$1"' _ "$out"
out=$(dq nobody.yourorg.zt.net A)
check "an unknown tailnet name -> NXDOMAIN" grep -q "status: NXDOMAIN" <<<"$out"
out=$(dq a.b.win-a.yourorg.zt.net A)
check "a name below a peer -> NXDOMAIN" grep -q "status: NXDOMAIN" <<<"$out"
out=$(dq -x 100.64.9.9)
check "an unknown address in the tailnet range -> NXDOMAIN" grep -q "status: NXDOMAIN" <<<"$out"
out=$(dq yourorg.zt.net SOA)
check "the tailnet domain itself -> NOERROR, no answer (not NXDOMAIN)" \
        bash -c 'grep -q "status: NOERROR" <<<"$1" && grep -q "ANSWER: 0," <<<"$1"' _ "$out"
out=$(dq win-a.yourorg.zt.net ANY)
check "ANY for a peer -> its A and AAAA" \
        bash -c 'grep -qE "IN\s+A\s+100.64.0.1" <<<"$1" && grep -qE "IN\s+AAAA\s+fd7a" <<<"$1"' _ "$out"
out=$(cat "$tmp/main.fwd")
check "no tailnet name or tailnet address went upstream" \
        bash -c '! grep -qiE "zt\.net|64\.100\.in-addr|a\.1\.1\.5\.c\.7\.a\.d\.f\.ip6" <<<"$1"' _ "$out"

# the blocklist
out=$(dq x.bad.example A)
check "a name under a blocked domain -> NXDOMAIN" grep -q "status: NXDOMAIN" <<<"$out"
check "... with EDE 15 (Blocked) in dig's output" grep -q "EDE: 15 (Blocked)" <<<"$out"
out=$(kq +edns tracker.example AAAA)
check "kdig shows the hosts-file entry blocked, EDE 15" \
        bash -c 'grep -q "NXDOMAIN" <<<"$1" && grep -qE "EDE: 15 \(Blocked\)" <<<"$1"' _ "$out"
out=$(dq x.bad.example A +noedns)
check "blocked without EDNS: NXDOMAIN, no OPT" \
        bash -c 'grep -q "status: NXDOMAIN" <<<"$1" && ! grep -q "OPT PSEUDOSECTION" <<<"$1"' _ "$out"
check "blocked names were not forwarded" test "$(forwarded main x.bad.example)$(forwarded main tracker.example)" = 00

# upstream, and the cache
out=$(dq www.example.test A +noall +answer)
check "dig www.example.test -> unbound's answer through the forwarder" grep -q "192.0.2.1" <<<"$out"
check "... it went upstream once" test "$(forwarded main www.example.test)" = 1
sleep 2
out=$(dq www.example.test A +noall +answer)
check "asked again: answered from the cache, not forwarded" test "$(forwarded main www.example.test)" = 1
ttl=$(awk '$4 == "A" { print $2; exit }' <<<"$out")
check "... with its TTL counted down ($ttl < 300)" test "${ttl:-300}" -lt 299
out=$(kq WWW.EXAMPLE.TEST A)
check "the cache key ignores case (kdig, upper case)" \
        bash -c 'grep -q "192.0.2" <<<"$1" && test "$2" = 1' _ "$out" "$(forwarded main www.example.test)"
out=$(dq nosuch.example.test A)
dq nosuch.example.test A >/dev/null
check "NXDOMAIN from upstream, with its SOA" \
        bash -c 'grep -q "status: NXDOMAIN" <<<"$1" && grep -q "SOA" <<<"$1"' _ "$out"
check "... cached negatively: forwarded once for two queries" test "$(forwarded main nosuch.example.test)" = 1
out=$(dq www.example.test ANY)
check "ANY for another name -> HINFO \"RFC8482\", not forwarded" \
        bash -c 'grep -q "HINFO.*\"RFC8482\"" <<<"$1" && test "$2" = 1' _ "$out" "$(forwarded main www.example.test)"
out=$(dq version.bind CH TXT)
check "class CHAOS -> REFUSED" grep -q "status: REFUSED" <<<"$out"
out=$(dq +edns=1 win-a.yourorg.zt.net A +noednsneg)
check "EDNS version 1 -> BADVERS" grep -q "status: BADVERS" <<<"$out"

# truncation and TCP
out=$(dq big.example.test TXT +ignore)
check "a 2.8 kB answer over UDP: TC set, no records (1232-byte client)" \
        bash -c 'grep -qE "flags: qr.* tc" <<<"$1" && grep -q "ANSWER: 0," <<<"$1"' _ "$out"
out=$(dq big.example.test TXT)
check "dig retries over TCP and gets all 40 records" \
        bash -c 'grep -q "Truncated, retrying in TCP mode" <<<"$1" && grep -q "ANSWER: 40," <<<"$1"' _ "$out"
out=$(dq www.example.test A +noedns +ignore +bufsize=0)
check "a small answer without EDNS fits 512: no TC" bash -c '! grep -qE "flags: qr.* tc" <<<"$1"' _ "$out"
out=$(kq +tcp big.example.test TXT)
check "kdig over TCP: 40 records in one answer" grep -q "ANSWER: 40;" <<<"$out"
out=$(kq +notcp +bufsize=512 +ignore big.example.test TXT)
check "kdig with a 512-byte EDNS size: TC" grep -qE "Flags: qr.* tc" <<<"$out"
check "the truncated answers were counted" test "$(stat_of main truncated)" -ge 2

client_checks pipeline 127.0.0.53 53
client_checks idle 127.0.0.53 53 4
client_checks limit 127.0.0.53 53 6
client_checks burst 127.0.0.53 53 1000
client_checks malformed 127.0.0.53 53
check "the FORMERR answers were counted" test "$(stat_of main formerr)" -ge 5

# a client that is not on loopback: a veth pair inside the namespace
if ip link add zt-v0 type veth peer name zt-v1 2>/dev/null; then
        ip addr add 10.53.0.1/24 dev zt-v0
        ip addr add 10.53.0.2/24 dev zt-v1
        ip link set zt-v0 up
        ip link set zt-v1 up
        dropped_before=$(stat_of main dropped)
        client_checks source 10.53.0.2 127.0.0.53 53
        check "the non-loopback queries were counted as dropped" test "$(stat_of main dropped)" -ge $((dropped_before + 2))
        ip link del zt-v0
else
        not_ok "cannot create a veth pair in the namespace"
fi

# reloading the blocklist, flushing the cache
echo "new-bad.example" >>"$tmp/blocklist"
kill -HUP "$main_pid"
sleep 0.5
out=$(dq new-bad.example A)
check "a blocklist reload (SIGHUP) blocks the new name, EDE 15" \
        bash -c 'grep -q "status: NXDOMAIN" <<<"$1" && grep -q "EDE: 15" <<<"$1"' _ "$out"
kill -WINCH "$main_pid"
sleep 0.3
dq www.example.test A >/dev/null
check "after a cache flush the name goes upstream again" test "$(forwarded main www.example.test)" = 2

check "the stub stops cleanly (SIGTERM, no sanitizer report)" stop_stub main

# ---- port 53 taken ----

python3 "$root/tests/harness/stub-client.py" occupy 127.0.0.53 53 udp >"$tmp/occupy.out" &
occupy_pid=$!
pids+=("$occupy_pid")
for _ in $(seq 50); do grep -q occupied "$tmp/occupy.out" && break; sleep 0.1; done
check "with port 53 taken the stub still starts (default address)" start_stub high --workers 2
out=$(cat "$tmp/high.err")
check "it logs exactly 'Cannot bind to port 53, trying high port'" grep -qx "<4>Cannot bind to port 53, trying high port" <<<"$out"
check "... and 'DNS resolver started' on 127.0.0.53:15353" grep -q "DNS resolver started on 127.0.0.53:15353 " <<<"$out"
out=$(grep "^listening" "$tmp/high.out")
check "the bound address is reported (for ztna status)" grep -qx "listening 127.0.0.53:15353" <<<"$out"
out=$(dig @127.0.0.53 -p 15353 +tries=1 +time=3 win-a.yourorg.zt.net +short 2>&1 || true)
check "dig on port 15353 resolves the tailnet" grep -qx "100.64.0.1" <<<"$out"
out=$(dig @127.0.0.53 -p 15353 +tcp +tries=1 +time=3 linux-c.yourorg.zt.net +short 2>&1 || true)
check "... over TCP too" grep -qx "100.64.0.3" <<<"$out"
check "the high-port stub stops cleanly" stop_stub high
kill "$occupy_pid"
wait "$occupy_pid" 2>/dev/null || true

python3 "$root/tests/harness/stub-client.py" occupy 127.0.0.53 53 tcp >"$tmp/occupy.out" &
occupy_pid=$!
pids+=("$occupy_pid")
for _ in $(seq 50); do grep -q occupied "$tmp/occupy.out" && break; sleep 0.1; done
check "with only TCP 53 taken the stub still starts" start_stub tcp53 --listen 127.0.0.53:53 --workers 1
out=$(cat "$tmp/tcp53.err")
check "... UDP and TCP both moved to 127.0.0.53:15353, logged" \
        bash -c 'grep -q "Cannot bind to port 53, trying high port" <<<"$1" && grep -q "started on 127.0.0.53:15353 " <<<"$1"' _ "$out"
check "the tcp53 stub stops cleanly" stop_stub tcp53
kill "$occupy_pid"
wait "$occupy_pid" 2>/dev/null || true

# ---- IPv6 loopback, several addresses ----

check "the stub listens on 127.0.0.2:5353 and [::1]:5353" start_stub six --listen 127.0.0.2:5353 --listen "[::1]:5353" --workers 3
out=$(dig @::1 -p 5353 +tries=1 +time=3 win-a.yourorg.zt.net AAAA +short 2>&1 || true)
check "dig @::1 -> fd7a:115c:a1e0::1" grep -qx "fd7a:115c:a1e0::1" <<<"$out"
out=$(dig @127.0.0.2 -p 5353 +tries=1 +time=3 -x 100.64.0.3 +short 2>&1 || true)
check "dig @127.0.0.2 -x 100.64.0.3 -> Linux-C.yourorg.zt.net." grep -qx "Linux-C.yourorg.zt.net." <<<"$out"
client_checks burst ::1 5353 600
check "the IPv6 stub stops cleanly" stop_stub six

# ---- socket activation ----

: >"$tmp/act.fwd"
python3 "$root/tests/harness/stub-client.py" activate 127.0.0.54 53 "$build/test/stub-harness" --activated \
        --store "$store" --blocklist "$tmp/blocklist" --upstream 127.0.0.1:5301 --forward-log "$tmp/act.fwd" \
        --workers 2 >"$tmp/act.out" 2>"$tmp/act.err" &
act_pid=$!
pids+=("$act_pid")
for _ in $(seq 100); do grep -q "DNS resolver started" "$tmp/act.err" && break; sleep 0.1; done
out=$(cat "$tmp/act.err")
check "socket-activated sockets (named \"stub\") are taken over" \
        grep -q "DNS resolver started on 127.0.0.54:53 (UDP and TCP, socket-activated" <<<"$out"
out=$(dig @127.0.0.54 +tries=1 +time=3 win-a.yourorg.zt.net +short 2>&1 || true)
check "... UDP answers on them" grep -qx "100.64.0.1" <<<"$out"
out=$(dig @127.0.0.54 +tcp +tries=1 +time=3 www.example.test +short 2>&1 || true)
check "... TCP (told apart by SO_TYPE) answers on them" grep -q "192.0.2" <<<"$out"
check "the activated stub stops cleanly" stop_stub act

# ---- upstream failures: serve-stale and the forward timeout ----

check "a stub with serve-stale" start_stub stale --listen 127.0.0.1:5454 --serve-stale --workers 1
out=$(dig @127.0.0.1 -p 5454 +tries=1 +time=3 short.example.test +short 2>&1 || true)
check "short.example.test (TTL 2) is fetched and cached" grep -qx "192.0.2.7" <<<"$out"
stop_unbound
sleep 3
out=$(dig @127.0.0.1 -p 5454 +tries=1 +time=6 short.example.test 2>&1 || true)
check "upstream down, entry expired: the stale answer with TTL 30" \
        grep -qE "^short\.example\.test\.\s+30\s+IN\s+A\s+192\.0\.2\.7" <<<"$out"
check "... marked EDE 3 (Stale Answer)" grep -q "EDE: 3 (Stale Answer)" <<<"$out"
out=$(dig @127.0.0.1 -p 5454 +tries=1 +time=6 never.example.test 2>&1 || true)
check "upstream down, nothing cached: SERVFAIL with EDE 22" \
        bash -c 'grep -q "status: SERVFAIL" <<<"$1" && grep -q "EDE: 22" <<<"$1"' _ "$out"
out=$(dig @127.0.0.1 -p 5454 +tries=1 +time=3 win-a.yourorg.zt.net +short 2>&1 || true)
check "tailnet names resolve with the upstream down" grep -qx "100.64.0.1" <<<"$out"
check "the serve-stale stub stops cleanly" stop_stub stale
check "unbound restarts" start_unbound

check "a stub whose forwarder never answers" start_stub drop --listen 127.0.0.1:5455 --forward-drop --forward-timeout-ms 500
start=$(date +%s%N)
out=$(dig @127.0.0.1 -p 5455 +tries=1 +time=5 lost.example.test 2>&1 || true)
took=$((($(date +%s%N) - start) / 1000000))
check "the stub answers SERVFAIL itself after its timeout (${took} ms)" \
        bash -c 'grep -q "status: SERVFAIL" <<<"$1" && grep -q "EDE: 22" <<<"$1" && test "$2" -lt 3000' _ "$out" "$took"
out=$(dig @127.0.0.1 -p 5455 +tries=1 +time=3 win-a.yourorg.zt.net +short 2>&1 || true)
check "... and keeps answering" grep -qx "100.64.0.1" <<<"$out"
check "the stub with unfinished replies stops cleanly" stop_stub drop

# ---- the tailnet marked down ----

check "a stub for the store-down case" start_stub down --listen 127.0.0.1:5456 --workers 1
"$build/publish" --state down "$store"
out=$(dig @127.0.0.1 -p 5456 +tries=1 +time=3 win-a.yourorg.zt.net 2>&1 || true)
check "tailnet marked down: SERVFAIL, EDE 14 (Not Ready)" \
        bash -c 'grep -q "status: SERVFAIL" <<<"$1" && grep -q "EDE: 14" <<<"$1"' _ "$out"
check "... and not forwarded" test "$(forwarded down win-a.yourorg.zt.net)" = 0
"$build/publish" --state up "$store"
out=$(dig @127.0.0.1 -p 5456 +tries=1 +time=3 win-a.yourorg.zt.net +short 2>&1 || true)
check "marked up again: answered" grep -qx "100.64.0.1" <<<"$out"
check "the store-down stub stops cleanly" stop_stub down

finish
