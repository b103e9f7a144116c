#!/bin/sh
# SPDX-License-Identifier: MIT
#
# ztnad killed while it saves the map leaves nothing behind for good.
# Each save writes state_dir/peers.json.XXXXXX and renames it over
# peers.json; a SIGKILL between the two left the temporary file forever,
# a whole map each time. The next start removes its own leftovers.
#
# 50 runs of the real ztnad, each fed a peers file replaced as fast as it
# publishes (20,000 peers, so a save takes a while) and killed with
# SIGKILL at a random moment; then one more start: no temporary file may
# be left, a file that only looks like one by its prefix stays, and a
# symbolic link with a leftover's name is removed without touching its
# target. Every path is in a private temporary directory.
# Usage: B=build sh tests/integration/test-save-kill.sh   (KILLS=N: other than 50)
set -eu

KILLS=${KILLS:-50}
PYTHON=/usr/bin/python3

# shellcheck source=lib.sh
. "$(dirname "$0")/../lib.sh"
abs_build

temp_dir
pid=
cleanup() { stop_pids -KILL "$pid"; }

# Two documents of 20,000 peers that differ, swapped in by rename.
"$PYTHON" - "$dir" <<'EOF'
import json, sys
for v in (1, 2):
    peers = [{"name": "Win-A", "addresses": ["100.64.0.1"]}]
    for i in range(2, 20001):
        peers.append({"name": "peer-%d-v%d" % (i, v), "addresses": ["100.%d.%d.%d" % (64 + (i >> 16), (i >> 8) & 255, i & 255)]})
    json.dump({"domain": "yourorg.zt.net", "peers": peers}, open("%s/doc%d.json" % (sys.argv[1], v), "w"))
EOF
cp "$dir/doc1.json" "$dir/peers.json"
ztnad_conf "$dir" "peers_file = $dir/peers.json"

leftovers() { # the temporary files of saves in the state directory
	find "$dir/state" -maxdepth 1 -name 'peers.json.??????' 2>/dev/null | wc -l
}

seen=0
most=0
i=0
while [ "$i" -lt "$KILLS" ]; do
	i=$((i + 1))
	"$B/ztnad" -c "$dir/ztnad.conf" 2>>"$dir/ztnad.log" &
	pid=$!
	# Replace the peers file back to back; SIGKILL 50-450 ms in.
	delay=$("$PYTHON" -c 'import random; print("%.3f" % random.uniform(0.05, 0.45))')
	(
		v=1
		while :; do
			v=$((3 - v))
			cp "$dir/doc$v.json" "$dir/peers.json.new" && mv "$dir/peers.json.new" "$dir/peers.json"
			sleep 0.01
		done
	) &
	writer=$!
	sleep "$delay"
	kill -KILL "$pid" 2>/dev/null || :
	wait "$pid" 2>/dev/null || :
	pid=
	kill "$writer" 2>/dev/null || :
	wait "$writer" 2>/dev/null || :
	n=$(leftovers)
	[ "$n" -eq 0 ] || seen=$((seen + 1))
	[ "$n" -le "$most" ] || most=$n
done
echo "# $KILLS SIGKILLs: $seen left a temporary file behind (at most $most at once, each removed by the next start)"

# Planted: a leftover of a save, a symbolic link with a leftover's name
# (to a file that must survive), and a name only sharing the prefix.
mkdir -p "$dir/state"
echo partial >"$dir/state/peers.json.Ab12Cd"
echo target >"$dir/target"
ln -s "$dir/target" "$dir/state/peers.json.Lnk123"
echo keep >"$dir/state/peers.json.keep"
check "before the last start there are leftovers to remove" num_ge "$(leftovers)" 2

"$B/ztnad" -c "$dir/ztnad.conf" 2>"$dir/last.log" &
pid=$!
j=0
until grep -q 'published generation' "$dir/last.log"; do
	j=$((j + 1))
	[ "$j" -lt 300 ] && kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
check "the next start publishes" grep -q 'published generation' "$dir/last.log"
check_eq "temporary files of saves left after the next start" "$(leftovers)" 0
check "a file that only shares the prefix stays" test -f "$dir/state/peers.json.keep"
check "the target of a link named like a leftover is untouched" grep -qx target "$dir/target"
check "the saved map is whole" "$PYTHON" -c 'import json, sys; json.load(open(sys.argv[1]))' "$dir/state/peers.json"
kill "$pid"
rc=0
wait "$pid" || rc=$?
pid=
check_eq "ztnad exits 0 on SIGTERM" "$rc" 0
finish
