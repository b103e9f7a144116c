#!/bin/sh
# SPDX-License-Identifier: MIT
#
# What a peers document may claim (ztnad.conf's domains and address_space),
# through the real ztnad and the real glibc (getent -s), from each of its
# sources: the peers file, `ztna peers push` and an HTTPS control plane
# (tests/harness/cp-server.py, a throwaway CA made here with openssl).
#
# Hostile documents: a public suffix as the domain (co.uk, com, github.io),
# a domain other than the pinned one (example.com), a peer at an address
# outside the private ranges (8.8.8.8, 2001:4860::8888), a range outside
# them. Each is refused whole, with a message naming the source, the field
# and the reason (in the log, in `ztna status`, and to the client that
# pushed it); nothing is published, the last good map keeps resolving and
# the hostile names do not. Then a configuration that widens the pins
# (SIGHUP) lets the same peers in, and narrowing it again re-checks the
# published map.
#
# Every path is in a private temporary directory; nothing under /etc, /run
# or /var/lib is touched.
# Usage: B=build sh tests/integration/test-pin.sh   (VERBOSE=1: show ztnad's log)
set -eu

here=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=lib.sh
. "$here/tests/lib.sh"
abs_build
# Only the module: a name it does not answer is not found, never asked of
# the network.
NSS='hosts: ztna'
ORG=org-pin-1

no_proxy_env
need_built ztnad ztna libnss_ztna.so.2

temp_dir
zpid=
spid=
cleanup() {
	stop_pids "$zpid" "$spid"
	show_logs "$dir"/*.log "$dir"/cp/server.err
}

store=$dir/run/records
sock=$dir/run/control.sock
peers=$dir/peers.json
conf=$dir/ztnad.conf
log=$dir/ztnad.log

# unresolved NAME: glibc finds nothing for NAME (getent exit 2).
unresolved() {
	ur_rc=0
	resolve ahosts "$1" >/dev/null 2>&1 || ur_rc=$?
	[ "$ur_rc" = 2 ]
}
ztna() {
	"$B/ztna" --socket "$sock" "$@"
}
generation() {
	daemon_field generation
}
# store_field KEY: of the store itself, as every process reads it.
store_field() {
	ztna --json status 2>/dev/null | jget "store/$1"
}
# published: the store's domain and ranges, one line.
published() {
	echo "$(store_field domain) $(store_field ranges)"
}
source_error() {
	daemon_field "sources/name=$1/last_error"
}
source_error_is() {
	[ "$(source_error "$1")" = "$2" ]
}
logged() {
	grep -qF -- "$1" "$log"
}

# write_conf [EXTRA...]: the configuration, each EXTRA a line of [ztnad].
write_conf() {
	{
		printf 'store = %s\nstate_dir = %s\ncontrol_socket = %s\npeers_file = %s\n' \
			"$store" "$dir/state" "$sock" "$peers"
		for line in "$@"; do
			printf '%s\n' "$line"
		done
		printf '[dns]\nstub = no\n'
	} | replace "$conf"
}

good='{"domain": "yourorg.zt.net",
 "peers": [{"name": "Win-A", "addresses": ["100.64.0.1", "fd7a:115c:a1e0::1"]}]}'
ALLOWED='100.64.0.0/10 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7'

# The hostile documents: a file name, then the document.
hostile() {
	case $1 in
	co.uk) echo '{"domain": "co.uk", "peers": [{"name": "www", "addresses": ["100.64.0.66"]}]}' ;;
	com) echo '{"domain": "com", "peers": [{"name": "google", "addresses": ["100.64.0.66"]}]}' ;;
	github.io) echo '{"domain": "github.io", "peers": [{"name": "www", "addresses": ["100.64.0.66"]}]}' ;;
	example.com) echo '{"domain": "example.com", "peers": [{"name": "www", "addresses": ["100.64.0.66"]}]}' ;;
	v4) echo '{"domain": "yourorg.zt.net", "peers": [{"name": "Win-A", "addresses": ["100.64.0.1"]},
	            {"name": "dns-a", "addresses": ["8.8.8.8"]}]}' ;;
	v6) echo '{"domain": "yourorg.zt.net", "peers": [{"name": "Win-A", "addresses": ["100.64.0.1"]},
	            {"name": "dns-b", "addresses": ["fd7a:115c:a1e0::2", "2001:4860::8888"]}]}' ;;
	range) echo '{"domain": "yourorg.zt.net", "ranges": ["100.64.0.0/10", "8.8.0.0/16"],
	            "peers": [{"name": "Win-A", "addresses": ["100.64.0.1"]},
	                      {"name": "dns-c", "addresses": ["100.64.0.67"]}]}' ;;
	esac
}
# why NAME: the reason each must be refused with, after "SOURCE: ".
why() {
	case $1 in
	co.uk) echo 'domain: "co.uk" is a public suffix: anyone may register names under it, so no tailnet owns it' ;;
	com) echo 'domain: "com" has a single label; the tailnet domain needs at least two' ;;
	github.io) echo 'domain: "github.io" is a public suffix: anyone may register names under it, so no tailnet owns it' ;;
	example.com) echo 'domain: "example.com" is not a domain this machine takes maps for (domains in ztnad.conf: yourorg.zt.net)' ;;
	v4) echo "peers[1].addresses[0]: \"8.8.8.8\" of peer \"dns-a\" is outside the address space this machine allows (address_space in ztnad.conf: $ALLOWED)" ;;
	v6) echo "peers[1].addresses[1]: \"2001:4860::8888\" of peer \"dns-b\" is outside the address space this machine allows (address_space in ztnad.conf: $ALLOWED)" ;;
	range) echo "ranges[1]: \"8.8.0.0/16\" is outside the address space this machine allows (address_space in ztnad.conf: $ALLOWED)" ;;
	esac
}
# The name each would have made resolve.
target() {
	case $1 in
	co.uk) echo www.co.uk ;;
	com) echo google.com ;;
	github.io) echo www.github.io ;;
	example.com) echo www.example.com ;;
	v4) echo dns-a.yourorg.zt.net ;;
	v6) echo dns-b.yourorg.zt.net ;;
	range) echo dns-c.yourorg.zt.net ;;
	esac
}
CASES="co.uk com github.io example.com v4 v6 range"

# ---- the peers file ----
printf '%s\n' "$good" | replace "$peers"
write_conf
"$B/ztnad" -c "$conf" 2>>"$log" &
zpid=$!
if wait_for 10 resolves_to Win-A 100.64.0.1; then
	ok "ztnad publishes the good map with the default pins: Win-A resolves to 100.64.0.1"
else
	not_ok "Win-A does not resolve after start: $(cat "$log")"
	finish
fi

for c in $CASES; do
	gen=$(generation)
	hostile "$c" | replace "$peers"
	want="$peers: $(why "$c")"
	if wait_for 5 source_error_is "peers file" "$want"; then
		ok "peers file, $c: refused: $want"
	else
		not_ok "peers file, $c: the error is '$(source_error "peers file")', not '$want'"
	fi
	check "peers file, $c: the log says so and that the last good map stays" \
		logged "$want; the last good map stays published"
	check "peers file, $c: nothing published (generation $gen)" test "$(generation)" = "$gen"
	check "peers file, $c: Win-A still resolves to 100.64.0.1" resolves_to Win-A 100.64.0.1
	check "peers file, $c: $(target "$c") does not resolve through ztna" unresolved "$(target "$c")"
done
GOOD_PUBLISHED='yourorg.zt.net ["100.64.0.0/10", "fd7a:115c:a1e0::/48"]'
check "the store still holds the good map's domain and ranges: $(published)" \
	test "$(published)" = "$GOOD_PUBLISHED"
printf '%s\n' "$good" | replace "$peers"
wait_for 5 source_error_is "peers file" null || true

# ---- ztna peers push ----
for c in $CASES; do
	gen=$(generation)
	hostile "$c" >"$dir/push-$c.json"
	run ztna peers push "$dir/push-$c.json"
	check "push, $c: exit 5" test "$rc" = 5
	check "push, $c: ztna says why: $err" test "$err" = "ztna: push rejected: pushed document: $(why "$c")"
	check "push, $c: nothing published (generation $gen)" test "$(generation)" = "$gen"
	check "push, $c: Win-A still resolves to 100.64.0.1" resolves_to Win-A 100.64.0.1
	check "push, $c: $(target "$c") does not resolve through ztna" unresolved "$(target "$c")"
done
check "the control socket's last error is the last refusal" \
	test "$(source_error "control socket")" = "pushed document: $(why range)"
check "the store still holds the good map's domain and ranges: $(published)" \
	test "$(published)" = "$GOOD_PUBLISHED"

# ---- the control plane ----
if ! make_ca "$dir" ca || ! make_cert "$dir" server ca "IP:127.0.0.1"; then
	not_ok "openssl could not make the test certificates"
	finish
fi
CP=$dir/cp
mkdir -m 0755 "$CP"
printf '%s\n' "$good" >"$CP/peers.json"
echo "pin-token-$$" >"$CP/token"
echo "pin-token-$$" >"$dir/token"
chmod 0600 "$dir/token"
start_cp_server "$dir/server" "$CP" "$ORG"
url=https://127.0.0.1:$port
cp_lines="control_url = $url
org_id = $ORG
token_file = $dir/token
ca_file = $dir/ca.pem
sync_interval = 1s"
# The control plane alone: no peers file in the way.
write_conf "$cp_lines"
sed -i '/^peers_file/d' "$conf"
kill "$zpid"
wait "$zpid" 2>/dev/null || true
"$B/ztnad" -c "$conf" 2>>"$log" &
zpid=$!
published_from_cp() {
	[ "$(daemon_field published_from)" = "control plane" ]
}
check "a ztnad polling the control plane publishes its good map" wait_for 10 published_from_cp
for c in $CASES; do
	gen=$(generation)
	hostile "$c" | replace "$CP/peers.json"
	# Refusals make ztnad back off; SIGHUP asks the control plane now.
	kill -HUP "$zpid"
	want="$url: $(why "$c")"
	if wait_for 5 source_error_is "control plane" "$want"; then
		ok "control plane, $c: refused: $want"
	else
		not_ok "control plane, $c: the error is '$(source_error "control plane")', not '$want'"
	fi
	check "control plane, $c: nothing published (generation $gen)" test "$(generation)" = "$gen"
	check "control plane, $c: Win-A still resolves to 100.64.0.1" resolves_to Win-A 100.64.0.1
	check "control plane, $c: $(target "$c") does not resolve through ztna" unresolved "$(target "$c")"
done
check "the store still holds the good map's domain and ranges: $(published)" \
	test "$(published)" = "$GOOD_PUBLISHED"

# ---- a configuration that widens the pins lets the same peers in ----
write_conf "$cp_lines" "domains = yourorg.zt.net example.com" \
	"address_space = $ALLOWED 8.8.0.0/16 2001:4860::/32"
sed -i '/^peers_file/d' "$conf"
hostile v4 | replace "$CP/peers.json"
kill -HUP "$zpid"
if wait_for 5 resolves_to dns-a.yourorg.zt.net 8.8.8.8; then
	ok "with 8.8.0.0/16 in address_space (SIGHUP), the peer at 8.8.8.8 is published and resolves"
else
	not_ok "the widened address_space did not let 8.8.8.8 in: $(source_error "control plane")"
fi
hostile v6 | replace "$CP/peers.json"
kill -HUP "$zpid"
check "with 2001:4860::/32 in address_space, dns-b resolves to 2001:4860::8888" \
	wait_for 5 resolves_to dns-b.yourorg.zt.net 2001:4860::8888
hostile range | replace "$CP/peers.json"
kill -HUP "$zpid"
range_published() {
	[ "$(published)" = 'yourorg.zt.net ["100.64.0.0/10", "8.8.0.0/16"]' ]
}
check "with 8.8.0.0/16 in address_space, the range 8.8.0.0/16 is published" wait_for 5 range_published
hostile example.com | replace "$CP/peers.json"
kill -HUP "$zpid"
check "with example.com in domains, its map is published: www.example.com resolves to 100.64.0.66" \
	wait_for 5 resolves_to www.example.com 100.64.0.66
hostile co.uk | replace "$CP/peers.json"
kill -HUP "$zpid"
want="$url: $(why co.uk)"
check "a public suffix stays refused whatever the configuration says" wait_for 5 source_error_is "control plane" "$want"

# ---- narrowing the pins again checks the published map ----
hostile v4 | replace "$CP/peers.json"
wait_for 5 resolves_to dns-a.yourorg.zt.net 8.8.8.8 || true
write_conf "$cp_lines"
sed -i '/^peers_file/d' "$conf"
kill -HUP "$zpid"
check "after narrowing address_space (SIGHUP) the published map is checked again and refused" \
	wait_for 5 logged "peers[1].addresses[0]: \"8.8.8.8\" of peer \"dns-a\" is outside the address space this machine allows (address_space in ztnad.conf: $ALLOWED); the last good map stays published"

check "ztnad is still running" kill -0 "$zpid"
finish
