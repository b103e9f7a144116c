#!/bin/sh
# SPDX-License-Identifier: MIT
#
# A republish (the blocklist or the pinned domains changed) publishes the
# map that is published now, never another one:
#  - a pushed map that could not be saved under state_dir stays after a
#    republish (it used to be replaced by the older saved map);
#  - with a peers file that has turned bad since its map was published,
#    a republish still happens, from the saved copy of that map (it used to
#    re-read the file, fail, and leave the change unapplied);
#  - offline_peers changed by a reload applies to a pushed map at once (it
#    used to wait for the next update).
# Every path is in a private temporary directory, in a private mount
# namespace (a small tmpfs as state_dir, filled up so that saves fail while
# the older saved map stays readable); the stub is off.
# Usage: B=build sh tests/integration/test-republish.sh   (as root)
set -eu
if [ -z "${ZTNA_REPUBLISH_NS:-}" ]; then
	ZTNA_REPUBLISH_NS=1 exec unshare -m --propagation private sh "$0" "$@"
fi

# shellcheck source=lib.sh
. "$(dirname "$0")/../lib.sh"
abs_build

temp_dir
pid=
cleanup() { stop_pids "$pid"; }

doc() { # NAME ADDRESS: a one-peer document besides Win-A
	printf '{"domain": "yourorg.zt.net", "peers": [{"name": "Win-A", "addresses": ["100.64.0.1"]}, {"name": "%s", "addresses": ["%s"]}]}\n' "$1" "$2"
}
conf() { # EXTRA-LINE...: ztnad.conf, then any lines given
	ztnad_conf "$dir" "$@"
}
generation() {
	"$B/ztna" --socket "$dir/run/control.sock" --json status 2>/dev/null |
		python3 -c 'import json, sys; print(json.load(sys.stdin)["daemon"]["generation"])' 2>/dev/null || echo 0
}
has_peer() { # NAME: in the store ztnad publishes
	"$B/ztna" --local --store "$dir/run/records" dns query "$1" >/dev/null 2>&1
}
start() {
	"$B/ztnad" -c "$dir/ztnad.conf" 2>>"$dir/ztnad.log" &
	pid=$!
	wait_for 10 test -S "$dir/run/control.sock" && wait_for 10 grep -q 'published generation' "$dir/ztnad.log"
}
stop() {
	kill "$pid" 2>/dev/null || :
	wait "$pid" 2>/dev/null || :
	pid=
}
republished_since() { # GENERATION: a later one is published
	[ "$(generation)" -gt "$1" ]
}

# ---- a pushed map that could not be saved ----
mkdir -m 0750 "$dir/state"
mount -t tmpfs -o size=1m,mode=0750 ztna-state "$dir/state"
conf "peers_file ="
check "ztnad starts" start
doc peer-a 100.64.0.10 >"$dir/a.json"
doc peer-b 100.64.0.11 >"$dir/b.json"
check "map A is pushed" "$B/ztna" --socket "$dir/run/control.sock" peers push "$dir/a.json"
check "and saved" wait_for 10 grep -q peer-a "$dir/state/peers.json"
# The state directory fills up: every save from now on fails (ENOSPC),
# and the saved A stays as it was.
dd if=/dev/zero of="$dir/state/filler" bs=64k 2>/dev/null || :
check "map B is pushed although it cannot be saved" "$B/ztna" --socket "$dir/run/control.sock" peers push "$dir/b.json"
check "ztnad says it could not save it" wait_for 10 grep -q 'cannot save the map' "$dir/ztnad.log"
check "B is published" has_peer peer-b
g=$(generation)
conf "peers_file =" "domains = yourorg.zt.net corp.example"
kill -HUP "$pid"
check "a SIGHUP that changes the pinned domains republishes (generation after $g)" wait_for 10 republished_since "$g"
check "the republished map is B, not the older saved A" has_peer peer-b
check "... and A's peer is not back" eval '! has_peer peer-a'
check "the saved copy on disk is still A (the case this is about)" grep -q peer-a "$dir/state/peers.json"
stop
umount "$dir/state"

# ---- a peers file that turned bad ----
rm -rf "$dir/state" "$dir/ztnad.log"
doc peer-c 100.64.0.12 >"$dir/peers.json"
conf "peers_file = $dir/peers.json"
check "ztnad starts from a peers file" start
check "its map is saved" wait_for 10 grep -q peer-c "$dir/state/peers.json"
echo '{"domain": "yourorg.zt.net", "peers": [' >"$dir/peers.json.new"
mv "$dir/peers.json.new" "$dir/peers.json"
check "the bad file is rejected" wait_for 10 grep -q 'the last good map stays published' "$dir/ztnad.log"
g=$(generation)
conf "peers_file = $dir/peers.json" "domains = yourorg.zt.net corp.example"
kill -HUP "$pid"
check "a SIGHUP that changes the pins still republishes C (generation after $g)" wait_for 10 republished_since "$g"
check "the map is still C" has_peer peer-c
stop

# ---- offline_peers changed, the map pushed ----
rm -rf "$dir/state" "$dir/ztnad.log"
conf "peers_file =" "offline_peers = show"
check "ztnad starts without a peers file" start
printf '{"domain": "yourorg.zt.net", "peers": [{"name": "Win-A", "addresses": ["100.64.0.1"]}, {"name": "peer-off", "addresses": ["100.64.0.13"], "online": false}]}\n' >"$dir/off.json"
check "a map with an offline peer is pushed" "$B/ztna" --socket "$dir/run/control.sock" peers push "$dir/off.json"
check "offline_peers = show: the offline peer resolves" has_peer peer-off
g=$(generation)
conf "peers_file =" "offline_peers = hide"
kill -HUP "$pid"
check "a SIGHUP that sets offline_peers = hide republishes the pushed map (generation after $g)" \
	wait_for 10 republished_since "$g"
check "... without the offline peer" eval '! has_peer peer-off'
check "... and with the others" has_peer Win-A
stop
finish
