#!/bin/sh
# The lookup benchmarks of ztna, run side by side in one go, ending in a
# markdown table (fit for README.md) with each target's PASS or FAIL.
# The exit status is 0 only when every row says PASS or is reported
# without a target; a row that says FAIL (a target missed, a figure
# missing, a part that broke or gave wrong answers) makes it 1, and each
# such row is named on stderr at the end.
#
# BENCH_BREAK=PART runs that part (a step name: store, publish, copy,
# push100, rss, dns, system, ...) under a 64 MiB address-space limit, so
# it fails for real: the check that a broken part turns its rows to FAIL
# and the exit status to 1.
#
#   1. _nss_ztna_gethostbyname4_r called directly, 10 vs 100,000 records
#      (one worker process per store, run alternately; hot-set and
#      full-random names), plus instructions per lookup under callgrind
#      when valgrind is installed.
#   2. getaddrinfo through "hosts: ztna", a no-op module and "hosts: files",
#      round-robin. Each variant is a server process in a private mount
#      namespace with a temporary nsswitch.conf and hosts file bind-mounted
#      over /etc's (tests/harness/mountns.sh), so the host's files are never
#      written; they are compared with copies afterwards.
#   3. Publishing 100,000 peers, and lookup latency while a writer thread
#      republishes them continuously on the other CPU; the store's
#      persisted copy of them (docs/store-fallback.md): the export that
#      runs on ztnad's event loop, and the write with fsync that its saver
#      thread does, on a disk (/var/tmp) as /var/cache would be.
#   4. Bytes of store per peer.
#   5. The real ztnad: a change to the peer map, pushed over the control
#      socket or by replacing the peers file (write a temporary file, rename
#      it), until getaddrinfo through "hosts: ztna" returns the new name's
#      address (tests/bench/bench-push.c, in a private mount namespace like 2),
#      with ztnad saving its copy of the store meanwhile (its own figures
#      of the saves are reported beside).
#   6. The real ztnad's memory with 100,000 peers (one IPv4 and one IPv6
#      address each), after it has published: /proc/PID/status, and the
#      store mapping's share of it from /proc/PID/smaps.
#   7. The DNS stub (tests/bench/bench-dns.sh, in a network namespace of its
#      own): dnsperf against ztnad, unbound and dnsmasq answering cached
#      names, ztnad and dnsmasq answering tailnet names; the latency a cache
#      miss adds over a warm DoT connection; the first answer on a fresh
#      one; queries at a steady rate with the first upstream dead.
#   8. The system (tests/system/bench-system.sh, in a booted Debian 12 container
#      with the packages of build/deb): getaddrinfo of a tailnet name
#      through "hosts: files ztna" vs "hosts: files resolve" with resolved
#      routing the domain to ztnad's stub; one UDP query via resolved vs
#      straight to the stub.
#
# Environment: B (build dir, default build), BENCH_QUICK=1 for a short smoke
# run with the same steps and fewer repetitions.
set -eu

B=${B:-build}
BENCH=$B/bench
SMALL=10
LARGE=100000
# BENCH_GAI_PEER and BENCH_GAI_NAME of tests/bench/bench-peers.h
GAI_PEER=12345
GAI_NAME=host-012345.yourorg.zt.net

if [ "${BENCH_QUICK:-0}" = 1 ]; then
	PUBLISH_REPS=3 DIRECT_BLOCKS=50 CG_CALLS=2000 CONTEND_PAIRS=1 CONTEND_MS=100
	GAI_ROUNDS=3 GAI_CALLS=20 GAI_WARMUP=20 GAI_CG=100
	PUSH_UPDATES=20 PARSE_REPS=3
else
	PUBLISH_REPS=15 DIRECT_BLOCKS=2000 CG_CALLS=20000 CONTEND_PAIRS=20 CONTEND_MS=150
	GAI_ROUNDS=200 GAI_CALLS=50 GAI_WARMUP=200 GAI_CG=1000
	PUSH_UPDATES=200 PARSE_REPS=15
fi
# The peers documents the reader is measured on: the flood test's tailnet,
# the large one, and one near the 64 MiB cap.
PARSE_PEERS="20000 $LARGE 700000"
# The tailnet sizes the push benchmark changes: a typical one and a large one.
PUSH_PEERS="100 1000"

say() {
	printf 'bench: %s\n' "$*" >&2
}

for f in bench/bench-nss bench/bench-gai bench/libnss_ztnanoop.so.2 bench/bench-push bench/bench-parse ztnad; do
	if [ ! -e "$B/$f" ]; then
		say "$B/$f is missing; run 'make bench'"
		exit 1
	fi
done
absb=$(cd "$B" && pwd)
here=$(cd "$(dirname "$0")/../.." && pwd)

# The reader trusts a store only in a directory nobody else may write:
# a private directory, 0755, on tmpfs like /run/ztna when there is one.
if [ -d /dev/shm ] && [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
	work=$(mktemp -d -p /dev/shm ztna-bench.XXXXXX)
else
	work=$(mktemp -d)
fi
# The store's persisted copy lives on a disk (/var/cache), not tmpfs: its
# saves are timed there, fsync included.
disk=$(mktemp -d -p /var/tmp ztna-bench-copy.XXXXXX)
daemons=
cleanup() {
	for p in $daemons; do
		kill "$p" 2> /dev/null || :
		wait "$p" 2> /dev/null || :
	done
	rm -rf "$work" "$disk"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
chmod 0755 "$work" "$disk"
mkdir -m 0755 "$work/small" "$work/large"
res=$work/results
: > "$res"

put() {
	printf '%s=%s\n' "$1" "$2" >> "$res"
}

# usage: step NAME COMMAND... -- runs COMMAND, its output to the results; a
# step that breaks is noted and the run goes on, so the table still shows
# what the others measured.
step() {
	name=$1
	shift
	if [ "${BENCH_BREAK:-}" = "$name" ]; then
		say "$name: broken on purpose (BENCH_BREAK): a 64 MiB address-space limit"
		set -- sh -c 'ulimit -v 65536 && exec "$@"' sh "$@"
	fi
	if ! "$@" >> "$res"; then
		say "$name failed"
		put "step.failed.$name" 1
	fi
}

put bench.cpus "$(nproc)"
put bench.cpu "$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)"
put bench.glibc "$(getconf GNU_LIBC_VERSION 2>/dev/null | sed 's/^glibc //' || echo unknown)"
put bench.store_fs "$(stat -f -c %T "$work")"
put bench.copy_fs "$(stat -f -c %T "$disk")"
put bench.quick "${BENCH_QUICK:-0}"
put bench.parse_peers "$PARSE_PEERS"
start=$(date +%s)

# ---- 4 and 3a: the stores, publish times, size ----
say "publishing $LARGE peers ($PUBLISH_REPS times each way)"
step store "$BENCH/bench-nss" store "$work/small/records" "$SMALL"
step publish "$BENCH/bench-nss" publish "$work/large" "$LARGE" "$PUBLISH_REPS"
say "the store's persisted copy, $LARGE peers ($PUBLISH_REPS saves, on $(stat -f -c %T "$disk"))"
step copy "$BENCH/bench-nss" copy "$work/large" "$disk" "$LARGE" "$PUBLISH_REPS"

# ---- 1: the entry point, both store sizes, alternating workers ----
say "direct calls, $SMALL vs $LARGE records ($DIRECT_BLOCKS blocks each)"
step direct "$BENCH/bench-nss" direct "$work/small/records" "$SMALL" "$work/large/records" "$LARGE" \
	"$DIRECT_BLOCKS"

if command -v valgrind > /dev/null 2>&1; then
	for n in $SMALL $LARGE; do
		if [ "$n" = "$SMALL" ]; then store=$work/small/records; else store=$work/large/records; fi
		say "callgrind, $n records"
		if ! ZTNA_STORE=$store valgrind --tool=callgrind --toggle-collect=_nss_ztna_gethostbyname4_r \
			--callgrind-out-file="$work/callgrind.$n" "$BENCH/bench-nss" count "$n" "$CG_CALLS" \
			> "$work/callgrind.$n.out" 2> "$work/callgrind.$n.log" ||
			! grep -q "^count.$n.failures=0\$" "$work/callgrind.$n.out"; then
			say "callgrind run failed:"
			tail -n 5 "$work/callgrind.$n.log" >&2
			put callgrind.failed 1
			continue
		fi
		ir=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$work/callgrind.$n")
		put "callgrind.$n.ir_per_lookup" "$(awk -v ir="$ir" -v n="$CG_CALLS" 'BEGIN { printf "%.0f", ir / n }')"
	done
else
	say "valgrind not installed: no instruction counts"
fi

# ---- 3b: latency while a writer republishes ----
say "lookups while republishing ($CONTEND_PAIRS x idle/busy, ${CONTEND_MS} ms phases)"
step contend env ZTNA_STORE="$work/large/records" "$BENCH/bench-nss" contend "$LARGE" "$CONTEND_PAIRS" "$CONTEND_MS"

# ---- 2: getaddrinfo through glibc, one private mount namespace a server ----
gai_sums() {
	for f in /etc/nsswitch.conf /etc/hosts; do
		if [ -e "$f" ]; then sha256sum < "$f"; else echo "$f absent"; fi
	done
}

gai=$work/gai
mkdir "$gai"
printf 'hosts: ztna\n' > "$gai/nss.ztna"
printf 'hosts: ztnanoop\n' > "$gai/nss.noop"
printf 'hosts: files\n' > "$gai/nss.files"
"$BENCH/bench-nss" hosts "$GAI_PEER" 1 > "$gai/hosts.2"
"$BENCH/bench-nss" hosts 0 "$LARGE" > "$gai/hosts.all"
chmod 0644 "$gai"/*

# One line a variant: NAME BATCHES COMMAND. Each command is a server that
# bench-gai compare keeps alive for the whole run, inside its own private
# mount namespace (tests/harness/mountns.sh refuses to run outside one).
# usage: gai_variant NAME NSSWITCH HOSTS FAMILY WARMUP CALLS
gai_variant() {
	printf "%s 1 unshare -m --propagation private sh '%s' '%s' '%s' '%s' env 'ZTNA_STORE=%s' " \
		"$1" "$here/tests/harness/mountns.sh" "$outer_ns" "$gai/$2" "$gai/$3" "$work/large/records"
	printf "'LD_LIBRARY_PATH=%s' '%s' serve '%s' %s %s %s\n" \
		"$absb:$absb/bench" "$absb/bench/bench-gai" "$GAI_NAME" "$4" "$5" "$6"
}
outer_ns=$(readlink /proc/self/ns/mnt)
{
	gai_variant ztna nss.ztna hosts.2 unspec "$GAI_WARMUP" "$GAI_CALLS"
	gai_variant noop nss.noop hosts.2 unspec "$GAI_WARMUP" "$GAI_CALLS"
	gai_variant files2 nss.files hosts.2 unspec "$GAI_WARMUP" "$GAI_CALLS"
	gai_variant filesall nss.files hosts.all unspec 1 1
	gai_variant ztna4 nss.ztna hosts.2 inet "$GAI_WARMUP" "$GAI_CALLS"
	gai_variant noop4 nss.noop hosts.2 inet "$GAI_WARMUP" "$GAI_CALLS"
	gai_variant files24 nss.files hosts.2 inet "$GAI_WARMUP" "$GAI_CALLS"
} > "$gai/variants"

case $here$work$absb in
*"'"*)
	say "a path holds a single quote: getaddrinfo skipped"
	put gai.skipped 1 ;;
*)
	if [ "$(id -u)" != 0 ] || ! unshare -m --propagation private true 2> /dev/null; then
		say "no private mount namespace (needs root and unshare): getaddrinfo skipped"
		put gai.skipped 1
	fi ;;
esac
if ! grep -q '^gai.skipped=' "$res"; then
	cp /etc/nsswitch.conf "$gai/etc-nsswitch.before"
	cp /etc/hosts "$gai/etc-hosts.before"
	before=$(gai_sums)
	say "getaddrinfo, $(wc -l < "$gai/variants") variants round-robin ($GAI_ROUNDS rounds)"
	"$BENCH/bench-gai" compare "$GAI_ROUNDS" "$gai/variants" >> "$res" || put gai.failed "bench-gai"
	# Instructions per getaddrinfo in user space, repeatable where times
	# are not: the slope between runs of GAI_CG and 2 * GAI_CG calls, so
	# the first call (loading the module) and start-up cancel out.
	if command -v valgrind > /dev/null 2>&1; then
		say "callgrind of getaddrinfo"
		for v in ztna noop files2; do
			nss=nss.files
			[ "$v" = files2 ] || nss=nss.$v
			for n in "$GAI_CG" "$((2 * GAI_CG))"; do
				printf b | unshare -m --propagation private sh "$here/tests/harness/mountns.sh" "$outer_ns" \
					"$gai/$nss" "$gai/hosts.2" env ZTNA_STORE="$work/large/records" \
					LD_LIBRARY_PATH="$absb:$absb/bench" valgrind --tool=callgrind \
					--toggle-collect=getaddrinfo --toggle-collect=freeaddrinfo \
					--callgrind-out-file="$gai/cg.$v.$n" "$absb/bench/bench-gai" serve "$GAI_NAME" \
					unspec 1 "$n" > /dev/null 2>&1 || :
			done
			a=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$gai/cg.$v.$GAI_CG" 2> /dev/null)
			b=$(sed -n 's/^totals: *\([0-9]*\).*/\1/p' "$gai/cg.$v.$((2 * GAI_CG))" 2> /dev/null)
			if [ -n "$a" ] && [ -n "$b" ]; then
				put "gai.$v.ir_per_call" "$(awk -v a="$a" -v b="$b" -v n="$GAI_CG" \
					'BEGIN { printf "%.0f", (b - a) / n }')"
			fi
		done
	fi
	after=$(gai_sums)
	if [ "$before" = "$after" ] && cmp -s /etc/nsswitch.conf "$gai/etc-nsswitch.before" &&
		cmp -s /etc/hosts "$gai/etc-hosts.before"; then
		put gai.etc_unchanged yes
	else
		put gai.etc_unchanged NO
	fi
fi

# ---- 5 and 6: the real ztnad ----
# usage: daemon_start DIR -- a ztnad publishing DIR/peers.json with every
# path of its own under DIR (nothing under /run, /var/lib or /etc), in the
# background; $dpid is its pid, and it has published when this returns 0.
daemon_start() {
	# The store's copy on the disk, as /var/cache/ztna would be: its saves
	# run while the pushes are timed.
	mkdir -p -m 0755 "$disk/${1##*/}"
	printf '%s\n' "store = $1/run/records" "state_dir = $1/state" "control_socket = $1/run/control.sock" \
		"store_fallback = $disk/${1##*/}/records" "peers_file = $1/peers.json" "[dns]" "stub = no" \
		> "$1/ztnad.conf"
	"$B/ztnad" -c "$1/ztnad.conf" 2> "$1/ztnad.log" &
	dpid=$!
	daemons="$daemons $dpid"
	# Up to 60 s for the first publish (100,000 peers on a slow machine).
	n=0
	until grep -q 'published generation' "$1/ztnad.log"; do
		n=$((n + 1))
		if [ $n -gt 600 ] || ! kill -0 "$dpid" 2> /dev/null; then
			say "ztnad did not publish $1/peers.json:"
			cat "$1/ztnad.log" >&2
			return 1
		fi
		sleep 0.1
	done
}
# daemon_stop: SIGTERM to ztnad; fails when it had died before, or did
# not exit 0 (as it does on SIGTERM).
daemon_stop() {
	if ! kill "$dpid" 2> /dev/null; then
		say "ztnad (pid $dpid) was no longer running"
		wait "$dpid" 2> /dev/null || :
		return 1
	fi
	rc=0
	wait "$dpid" 2> /dev/null || rc=$?
	[ "$rc" -eq 0 ] || say "ztnad exited $rc on SIGTERM"
	return "$rc"
}

# usage: daemon_push PEERS -- prints daemon.PEERS.{push,file}.* for a
# tailnet of PEERS peers.
daemon_push() {
	broke=0
	d=$work/push.$1
	mkdir -m 0755 "$d"
	"$BENCH/bench-push" peers "$1" > "$d/peers.json"
	daemon_start "$d" || return 1
	for way in push file; do
		if [ "$way" = push ]; then target=$d/run/control.sock; else target=$d/peers.json; fi
		unshare -m --propagation private sh "$here/tests/harness/mountns.sh" "$outer_ns" "$gai/nss.ztna" \
			"$gai/hosts.2" env ZTNA_STORE="$d/run/records" LD_LIBRARY_PATH="$absb" \
			"$absb/bench/bench-push" "$way" "$target" "$PUSH_UPDATES" "$1" > "$d/$way.out" ||
			{ say "bench-push $way with $1 peers failed"; broke=1; }
		sed "s/^/daemon.$1./" "$d/$way.out"
	done
	# What ztnad measured of its own saves of the copy, meanwhile and once
	# the last change settled (a save is due 1 s after it; the updates of a
	# short run come faster than that).
	sleep 1.5
	"$B/ztna" --socket "$d/run/control.sock" --json status 2> /dev/null | python3 -c '
import json, sys
f = json.load(sys.stdin)["daemon"]["store_fallback"]
for k in ("saves", "export_max_usec", "save_max_usec"):
    print("daemon.%s.fallback.%s=%d" % (sys.argv[1], k, f[k]))
' "$1" || { say "no store_fallback figures from ztnad with $1 peers"; broke=1; }
	daemon_stop || broke=1
	[ "$broke" -eq 0 ]
}

# usage: daemon_rss -- prints daemon.rss.* for ztnad with LARGE peers.
daemon_rss() {
	d=$work/rss
	mkdir -m 0755 "$d"
	"$BENCH/bench-push" peers "$LARGE" > "$d/peers.json"
	daemon_start "$d" || return 1
	# After publishing it saves the map for a cold start and gives the
	# parse's memory back; measure once the saved copy is complete.
	n=0
	until cmp -s "$d/peers.json" "$d/state/peers.json"; do
		n=$((n + 1))
		[ $n -le 300 ] || { say "ztnad did not save the map"; return 1; }
		sleep 0.1
	done
	sleep 0.5
	for k in VmRSS RssAnon RssFile RssShmem VmHWM; do
		printf 'daemon.rss.%s_kb=%s\n' "$k" "$(awk -v k="$k:" '$1 == k { print $2 }' "/proc/$dpid/status")"
	done
	# The store's pages resident in ztnad: the Rss of its mappings of
	# the store file (shared memory on tmpfs, file pages elsewhere).
	printf 'daemon.rss.store_kb=%s\n' "$(awk -v path="$d/run/records" '
		/^[0-9a-f]+-[0-9a-f]+ / { mine = ($6 == path) }
		mine && $1 == "Rss:" { kb += $2 }
		END { print kb + 0 }' "/proc/$dpid/smaps")"
	printf 'daemon.rss.store_bytes=%s\ndaemon.rss.peers_bytes=%s\n' "$(stat -c %s "$d/run/records")" \
		"$(stat -c %s "$d/peers.json")"
	daemon_stop
}

if grep -q '^gai.skipped=' "$res"; then
	say "no private mount namespace: push-to-getaddrinfo skipped"
else
	for n in $PUSH_PEERS; do
		say "ztnad: $PUSH_UPDATES pushes and $PUSH_UPDATES file replacements, $n peers, to getaddrinfo"
		step "push$n" daemon_push "$n"
	done
fi
say "ztnad's memory with $LARGE peers"
step rss daemon_rss

# ---- 6a: reading a peers document, memory and time ----
# usage: parse_docs -- prints parse.N.* (tests/bench/bench-parse.c) for each size.
parse_docs() {
	d=$work/parse
	mkdir -p "$d"
	for n in $PARSE_PEERS; do
		"$BENCH/bench-push" peers "$n" > "$d/peers.json" || return 1
		reps=$PARSE_REPS
		[ "$n" -le "$LARGE" ] || reps=3
		"$BENCH/bench-parse" "$d/peers.json" "$reps" | sed "s/^parse\./parse.$n./" || return 1
		rm -f "$d/peers.json"
	done
}
say "reading peers documents of $PARSE_PEERS peers: peak memory and time, beside jansson"
step parse parse_docs

# ---- 6b: unprivileged users flooding the control socket ----
# usage: daemon_flood -- prints flood.{idle,flood}.* (tests/harness/control-flood.py):
# root's status every 100 ms and a peers file gaining a peer every second,
# without and then with five unprivileged users flooding list requests.
daemon_flood() {
	d=$work/flood
	mkdir -m 0755 "$d"
	"$BENCH/bench-push" peers 20000 > "$d/peers.json"
	daemon_start "$d" || return 1
	for phase in idle flood; do
		users=0 secs=4
		[ "$phase" = idle ] || { users=5; secs=8; }
		python3 "$here/tests/harness/control-flood.py" "$d/run/control.sock" "$d/peers.json" "$d/run/records" \
			"$absb" "$dpid" "$secs" "$users" | sed "s/^/flood.$phase./" || { daemon_stop; return 1; }
	done
	daemon_stop
}
say "the control socket: root and a peers file under five unprivileged users' flood (20,000 peers)"
step flood daemon_flood

# ---- 7: the DNS stub beside unbound and dnsmasq ----
say "the DNS stub: dnsperf, cache misses, fresh connections, a dead first server (tests/bench/bench-dns.sh)"
step dns env B="$absb" bash "$here/tests/bench/bench-dns.sh"

# ---- 8: the system, in a booted Debian 12 container ----
say "the system: getaddrinfo through ztna vs resolved, resolved in front of the stub (tests/system/bench-system.sh)"
step system env B="$absb" bash "$here/tests/system/bench-system.sh"
put bench.seconds "$(($(date +%s) - start))"

# ---- the table ----
awk -F= -v gai_name="$GAI_NAME" -v gai_calls="$GAI_CALLS" -v push_peers="$PUSH_PEERS" '
{ v[$1] = substr($0, length($1) + 2) }

function has(k) { return (k in v) && v[k] != "" }
function num(k) { return v[k] + 0 }
function row(n, what, value, target, verdict) {
	# A row without its figure fails: nothing was measured.
	if (value ~ /^n\/a/ || value ~ /^missing/ || verdict == "n/a")
		verdict = "**FAIL** (no figure)"
	printf "| %s | %s | %s | %s | %s |\n", n, what, value, target, verdict
}
# "PASS"/"FAIL" for x <= limit; FAIL too when x is missing.
function le(ok, x, limit) { return !ok ? "**FAIL** (no figure)" : (x <= limit ? "PASS" : "**FAIL**") }
function ratio(a, b) { return has(a) && has(b) && num(b) > 0 }

END {
	S = 10; L = 100000; SL = "10"; LL = "100,000"
	print "| # | Measurement | Result | Target | Verdict |"
	print "|---|---|---|---|---|"

	# 1. direct calls
	split("hot random", wl, " ")
	desc["hot"] = "hot set (1,000 names)"; desc["random"] = "full random (all names)"
	for (i = 1; i <= 2; i++) {
		w = wl[i]
		for (j = 0; j < 2; j++) {
			n = j ? L : S
			k = "direct." w "." n
			val = has(k ".median_ns") ? sprintf("%.1f ns (single call p50 %d, p99 %d ns)", \
				num(k ".median_ns"), num(k ".single_p50_ns"), num(k ".single_p99_ns")) : "n/a"
			if (n == L)
				row(1, "`_nss_ztna_gethostbyname4_r`, " desc[w] ", " LL " records: median per call", \
					val, "<= 150 ns", le(has(k ".median_ns"), num(k ".median_ns"), 150))
			else
				row(1, "`_nss_ztna_gethostbyname4_r`, " desc[w] ", " SL " records: median per call", \
					val, "", "")
		}
		a = "direct." w "." L ".median_ns"; b = "direct." w "." S ".median_ns"
		ok = ratio(a, b)
		row(1, desc[w] ": " LL " / " SL " records", ok ? sprintf("%.2f", num(a) / num(b)) : "n/a", \
			"<= 1.3", le(ok, ok ? num(a) / num(b) : 0, 1.3))
	}
	a = "callgrind." L ".ir_per_lookup"; b = "callgrind." S ".ir_per_lookup"
	if (ratio(a, b))
		row(1, "instructions per lookup (callgrind), " SL " / " LL " records", \
			sprintf("%d / %d (ratio %.3f)", num(b), num(a), num(a) / num(b)), "", "")
	else
		row(1, "instructions per lookup (callgrind)", "n/a (no valgrind)", "", "")

	# 2. getaddrinfo
	if (has("gai.skipped")) {
		row(2, "getaddrinfo", "skipped: no private mount namespace", "", "n/a")
	} else {
		gname["ztna"] = "`hosts: ztna`"
		gname["noop"] = "`hosts: ztnanoop` (no-op module, fixed answer)"
		gname["files2"] = "`hosts: files`, 2-line hosts file"
		gname["filesall"] = "`hosts: files`, 100,000 peers (200,000 lines)"
		split("ztna noop files2 filesall", gv, " ")
		for (i = 1; i <= 4; i++) {
			k = "gai." gv[i] ".median_ns"
			row(2, "getaddrinfo(AF_UNSPEC) via " gname[gv[i]] ": median per call", \
				has(k) ? sprintf("%.2f us", num(k) / 1000) : "n/a", "", "")
		}
		ok = ratio("gai.ztna.median_ns", "gai.noop.median_ns")
		x = ok ? num("gai.ztna.median_ns") / num("gai.noop.median_ns") : 0
		row(2, "getaddrinfo(AF_UNSPEC): ztna / no-op", ok ? sprintf("%.3f", x) : "n/a", "<= 1.10", le(ok, x, 1.10))
		ok = ratio("gai.ztna.median_ns", "gai.files2.median_ns")
		x = ok ? num("gai.ztna.median_ns") / num("gai.files2.median_ns") : 0
		row(2, "getaddrinfo(AF_UNSPEC): ztna / files (2 lines)", ok ? sprintf("%.3f", x) : "n/a", \
			"<= 0.5", le(ok, x, 0.5))
		ok = ratio("gai.noop.median_ns", "gai.files2.median_ns")
		x = ok ? num("gai.noop.median_ns") / num("gai.files2.median_ns") : 0
		row(2, "getaddrinfo(AF_UNSPEC): no-op / files (2 lines), the floor of the line above", \
			ok ? sprintf("%.3f", x) : "n/a", "", "")
		# What each module adds on top of the no-op run (glibc alone).
		if (ok && has("gai.ztna.median_ns")) {
			z = num("gai.ztna.median_ns") - num("gai.noop.median_ns")
			f = num("gai.files2.median_ns") - num("gai.noop.median_ns")
			row(2, "getaddrinfo(AF_UNSPEC): cost above the no-op floor, ztna / files (2 lines)", \
				sprintf("%+.2f / %+.2f us", z / 1000, f / 1000), "", "")
		}
		if (has("gai.ztna.ir_per_call") && has("gai.noop.ir_per_call") && has("gai.files2.ir_per_call"))
			row(2, "getaddrinfo(AF_UNSPEC) + freeaddrinfo, user-space instructions per call " \
				"(callgrind), ztna / no-op / files (2 lines)", \
				sprintf("%d / %d / %d (ztna/no-op %.3f, ztna/files %.3f)", num("gai.ztna.ir_per_call"), \
					num("gai.noop.ir_per_call"), num("gai.files2.ir_per_call"), \
					num("gai.ztna.ir_per_call") / num("gai.noop.ir_per_call"), \
					num("gai.ztna.ir_per_call") / num("gai.files2.ir_per_call")), "", "")
		if (has("gai.ztna4.median_ns") && has("gai.noop4.median_ns") && has("gai.files24.median_ns"))
			row(2, "getaddrinfo(AF_INET) via ztna / no-op / files (2 lines), no address sorting", \
				sprintf("%.2f / %.2f / %.2f us (ztna/no-op %.3f, ztna/files %.3f)", \
					num("gai.ztna4.median_ns") / 1000, num("gai.noop4.median_ns") / 1000, \
					num("gai.files24.median_ns") / 1000, \
					num("gai.ztna4.median_ns") / num("gai.noop4.median_ns"), \
					num("gai.ztna4.median_ns") / num("gai.files24.median_ns")), "", "")
		if (has("gai.failed"))
			row(2, "getaddrinfo runs that failed", v["gai.failed"], "none", "**FAIL**")
		row(2, "host /etc/nsswitch.conf and /etc/hosts byte-identical afterwards", \
			has("gai.etc_unchanged") ? v["gai.etc_unchanged"] : "n/a", "yes", \
			v["gai.etc_unchanged"] == "yes" ? "PASS" : "**FAIL**")
	}

	# 3. publishing
	p = "publish." L
	row(3, "publish " LL " peers, first publish (creates the file)", \
		has(p ".first_ms") ? sprintf("%.1f ms", num(p ".first_ms")) : "n/a", "<= 100 ms", \
		le(has(p ".first_ms"), num(p ".first_ms"), 100))
	row(3, "publish " LL " peers into a new file: median (max) of " num(p ".reps") + 1, \
		has(p ".create_median_ms") ? sprintf("%.1f ms (%.1f)", num(p ".create_median_ms"), \
			num(p ".create_max_ms")) : "n/a", "<= 100 ms", \
		le(has(p ".create_median_ms"), num(p ".create_median_ms"), 100))
	row(3, "publish " LL " peers into the existing store: median (max) of " num(p ".reps"), \
		has(p ".update_median_ms") ? sprintf("%.1f ms (%.1f)", num(p ".update_median_ms"), \
			num(p ".update_max_ms")) : "n/a", "<= 100 ms", \
		le(has(p ".update_median_ms"), num(p ".update_median_ms"), 100))
	for (i = 1; i <= 2; i++) {
		w = wl[i]
		a = "contend.busy." w; b = "contend.idle." w
		ok = ratio(a ".p999_ns", b ".p999_ns")
		row(3, "lookup p99.9, " desc[w] ", " LL " records: idle / writer republishing", \
			ok ? sprintf("%d / %d ns (p99 %d / %d ns)", num(b ".p999_ns"), num(a ".p999_ns"), \
				num(b ".p99_ns"), num(a ".p99_ns")) : "n/a", "", "")
		row(3, "lookup p99.9 ratio republishing / idle, " desc[w], \
			ok ? sprintf("%.2f", num(a ".p999_ns") / num(b ".p999_ns")) : "n/a", "<= 2", \
			le(ok, ok ? num(a ".p999_ns") / num(b ".p999_ns") : 0, 2))
	}
	if (has("contend.busy.failures"))
		row(3, "wrong or failed answers while republishing (" num("contend.publishes") " publishes)", \
			num("contend.busy.failures") + num("contend.idle.failures"), "0", \
			num("contend.busy.failures") + num("contend.idle.failures") == 0 ? "PASS" : "**FAIL**")

	# 3. the persisted copy: the export is all that runs on the loop
	k = "copy." L
	row(3, "store" "\047" "s copy of " LL " peers (docs/store-fallback.md): export on ztnad" "\047" \
		"s event loop, median (max) of " num(k ".reps"), has(k ".export_median_ms") ? \
		sprintf("%.1f ms (%.1f)", num(k ".export_median_ms"), num(k ".export_max_ms")) : "n/a", \
		"<= 10 ms", le(has(k ".export_median_ms"), num(k ".export_median_ms"), 10))
	row(3, "the same copy written, fsynced and renamed on ztnad" "\047" "s saver thread (" \
		v["bench.copy_fs"] "), off the loop: median (max)", has(k ".save_median_ms") ? \
		sprintf("%.1f ms (%.1f)", num(k ".save_median_ms"), num(k ".save_max_ms")) : "n/a", "", \
		has(k ".save_median_ms") ? "" : "n/a")
	row(3, "the copy" "\047" "s size per peer (file / the store" "\047" "s file)", has(k ".size_bytes") ? \
		sprintf("%.1f B (%d / %d B)", num(k ".size_bytes") / L, num(k ".size_bytes"), \
			num(k ".store_bytes")) : "n/a", "", has(k ".size_bytes") ? "" : "n/a")

	# 4. size
	k = "store." L
	row(4, "store size per peer (" LL " peers, one IPv4 + one IPv6 each)", \
		has(k ".bytes_per_record") ? sprintf("%.1f B (file %d B)", num(k ".bytes_per_record"), \
			num(k ".size_bytes")) : "n/a", "<= 200 B", \
		le(has(k ".bytes_per_record"), num(k ".bytes_per_record"), 200))

	# 5. ztnad: a change until getaddrinfo sees it
	np = split(push_peers, pp, " ")
	for (i = 1; i <= np; i++)
		ppn[i] = pp[i] + 0 >= 1000 ? sprintf("%d,%03d", pp[i] / 1000, pp[i] % 1000) : pp[i]
	wname["push"] = "push over the control socket"
	wname["file"] = "peers file replaced (temporary file renamed over it)"
	for (i = 1; i <= np; i++)
		for (j = 1; j <= 2; j++) {
			w = j == 1 ? "push" : "file"
			k = "daemon." pp[i] "." w
			ok = has(k ".p99_us")
			row(5, wname[w] " until getaddrinfo returns the new address, " ppn[i] " peers: p50 / p99 (max) of " \
				(has(k ".updates") ? num(k ".updates") : "n/a") " updates", \
				ok ? sprintf("%.2f / %.2f ms (%.2f)", num(k ".p50_us") / 1000, num(k ".p99_us") / 1000, \
					num(k ".max_us") / 1000) : "n/a", "p99 <= 10 ms", le(ok, num(k ".p99_us"), 10000))
			if (has(k ".failures") && num(k ".failures") > 0)
				row(5, wname[w] ", " ppn[i] " peers: updates getaddrinfo never saw (5 s)", \
					num(k ".failures"), "0", "**FAIL**")
		}
	for (i = 1; i <= np; i++) {
		k = "daemon." pp[i] ".fallback"
		ok = has(k ".saves")
		row(5, "the store" "\047" "s copy during and after those updates, " ppn[i] " peers: saves, longest export on " \
			"the loop / longest save on its thread (ztnad" "\047" "s own figures)", ok ? \
			sprintf("%d, %.2f / %.1f ms", num(k ".saves"), num(k ".export_max_usec") / 1000, \
				num(k ".save_max_usec") / 1000) : "n/a", "saved, export <= 50 ms", \
			!ok ? "**FAIL** (no figure)" : (num(k ".saves") >= 1 && num(k ".export_max_usec") <= 50000 ? "PASS" : "**FAIL**"))
	}

	# 6. ztnad memory
	k = "daemon.rss."
	if (has(k "VmRSS_kb")) {
		mib = 1024
		beside = num(k "VmRSS_kb") - num(k "store_kb")
		row(6, "ztnad with " LL " peers (one IPv4 + one IPv6 each), published: VmRSS " \
			"(RssAnon / RssFile / RssShmem)", sprintf("%.1f MiB (%.1f / %.1f / %.1f MiB)", \
			num(k "VmRSS_kb") / mib, num(k "RssAnon_kb") / mib, num(k "RssFile_kb") / mib, \
			num(k "RssShmem_kb") / mib), "", "")
		row(6, "ztnad beside the store: VmRSS less the store mapping" "\047" "s Rss (" \
			sprintf("%.1f MiB of a %.1f MiB store file", num(k "store_kb") / mib, \
			num(k "store_bytes") / 1048576) ")", sprintf("%.1f MiB", beside / mib), "<= 16 MiB", \
			le(1, beside, 16 * mib))
		row(6, "ztnad peak (VmHWM), reading a " sprintf("%.1f MiB", num(k "peers_bytes") / 1048576) \
			" peers file", sprintf("%.1f MiB", num(k "VmHWM_kb") / mib), "", "")
	} else
		row(6, "ztnad memory with " LL " peers", "n/a", "<= 16 MiB", "n/a")
	np = split(v["bench.parse_peers"], pn, " ")
	for (i = 1; i <= np; i++) {
		k = "parse." pn[i] "."
		ok = has(k "ztna.peak_kb") && num(k "ztna.peak_kb") > 0 && has(k "bytes") && num(k "bytes") > 0
		pk = ok ? num(k "ztna.peak_kb") * 1024 / num(k "bytes") : 0
		row(6, "peak memory reading a peers document of " pn[i] " peers (" \
			(has(k "bytes") ? sprintf("%.1f MiB", num(k "bytes") / 1048576) : "n/a") \
			"), input included: ztna / jansson" "\047" "s tree alone", \
			ok ? sprintf("%.1fx (%.1f MiB) / %.1fx", pk, num(k "ztna.peak_kb") / 1024, \
			num(k "jansson.peak_kb") * 1024 / num(k "bytes")) : "n/a", "<= 4x", le(ok, pk, 4))
		ok = has(k "ztna.p50_us") && has(k "jansson.p50_us") && num(k "jansson.p50_us") > 0
		row(6, "time to read it: ztna (validated map) / jansson (tree only): median", \
			ok ? sprintf("%.1f / %.1f ms = %.2f", num(k "ztna.p50_us") / 1000, num(k "jansson.p50_us") / 1000, \
			num(k "ztna.p50_us") / num(k "jansson.p50_us")) : "n/a", "", ok ? "" : "**FAIL** (no figure)")
	}
	k = "flood."
	ok = has(k "flood.status_p99_ms") && has(k "idle.status_p99_ms")
	row(6, "root'"'"'s `status` every 100 ms, 20,000 peers, five unprivileged users flooding `list` " \
		"(16 idle connections each, then connect-send-close as fast as they can): p50 / p99 (idle p99)", \
		ok ? sprintf("%.1f / %.1f ms (%.1f); %d flood requests", num(k "flood.status_p50_ms"), \
		num(k "flood.status_p99_ms"), num(k "idle.status_p99_ms"), num(k "flood.flood_requests")) : "n/a", \
		"p99 <= 50 ms", le(ok, num(k "flood.status_p99_ms"), 50))
	ok = has(k "flood.update_median_ms") && has(k "idle.update_median_ms") && num(k "idle.update_median_ms") > 0
	row(6, "a peers-file update seen through glibc under that flood / idle: median", \
		ok ? sprintf("%.1f / %.1f ms = %.2f", num(k "flood.update_median_ms"), num(k "idle.update_median_ms"), \
		num(k "flood.update_median_ms") / num(k "idle.update_median_ms")) : "n/a", "<= 2", \
		le(ok, ok ? num(k "flood.update_median_ms") / num(k "idle.update_median_ms") : 0, 2))
	ok = has(k "flood.cpu_us_per_flood_request")
	row(6, "ztnad CPU per abandoned flood request", ok ? sprintf("%.1f us", \
		num(k "flood.cpu_us_per_flood_request")) : "n/a", "reported", "")

	# 7. the DNS stub
	if (has("dns.skipped"))
		row(7, "the DNS stub beside unbound and dnsmasq (tests/bench/bench-dns.sh)", "skipped: " v["dns.skipped"], \
			"", "n/a")
	else if (has("dns.versions")) {
		runs = "median of " num("dns.rounds") " runs of " num("dns.seconds_per_run") " s, alternating"
		k = "dns.hit."
		ok = has(k "ztnad_over_unbound") && has(k "ztnad_over_dnsmasq")
		row(7, "cached names, dnsperf: ztnad / unbound / dnsmasq (" runs ")", \
			ok ? sprintf("%d / %d / %d QPS (ztnad/unbound %.2f, ztnad/dnsmasq %.2f)", num(k "ztnad.qps_median"), \
				num(k "unbound.qps_median"), num(k "dnsmasq.qps_median"), num(k "ztnad_over_unbound"), \
				num(k "ztnad_over_dnsmasq")) : "n/a", "ztnad >= both", \
			!ok ? "**FAIL** (no figure)" : (num(k "ztnad_over_unbound") >= 1 && num(k "ztnad_over_dnsmasq") >= 1 ? "PASS" : "**FAIL**"))
		if (has(k "ztnad.cpu_us_median"))
			row(7, "cached names: server CPU per answer (share of its core used), ztnad / unbound / dnsmasq", \
				sprintf("%.2f (%.2f) / %.2f (%.2f) / %.2f (%.2f) us", num(k "ztnad.cpu_us_median"), \
					num(k "ztnad.cpu_share_median"), num(k "unbound.cpu_us_median"), \
					num(k "unbound.cpu_share_median"), num(k "dnsmasq.cpu_us_median"), \
					num(k "dnsmasq.cpu_share_median")), "", "")
		k = "dns.tailnet."
		ok = has(k "ztnad_over_dnsmasq")
		row(7, "tailnet names, dnsperf: ztnad / dnsmasq from a hosts file (" runs ")", \
			ok ? sprintf("%d / %d QPS (ratio %.2f)", num(k "ztnad.qps_median"), num(k "dnsmasq.qps_median"), \
				num(k "ztnad_over_dnsmasq")) : "n/a", "ztnad >= dnsmasq", \
			!ok ? "**FAIL** (no figure)" : (num(k "ztnad_over_dnsmasq") >= 1 ? "PASS" : "**FAIL**"))
		if (has(k "ztnad.cpu_us_median"))
			row(7, "tailnet names: server CPU per answer (share of its core used), ztnad / dnsmasq", \
				sprintf("%.2f (%.2f) / %.2f (%.2f) us", num(k "ztnad.cpu_us_median"), \
					num(k "ztnad.cpu_share_median"), num(k "dnsmasq.cpu_us_median"), \
					num(k "dnsmasq.cpu_share_median")), "", "")
		for (j = 1; j <= 2; j++) {
			k = j == 1 ? "dns.miss." : "dns.miss1."
			if (!has(k "placement"))
				continue
			ok = has(k "a_p50_us") && has(k "b_p50_us")
			row(7, "cache miss (" v[k "placement"] "), one query at a time, p50 (p99): ztnad over warm " \
				"DoT / the upstream unbound over plain UDP / the same over DoT from the client itself (" \
				num(k "pairs") " each)", \
				ok ? sprintf("%.0f (%.0f) / %.0f (%.0f) / %.0f (%.0f) us", num(k "a_p50_us"), \
					num(k "a_p99_us"), num(k "b_p50_us"), num(k "b_p99_us"), num(k "c_p50_us"), \
					num(k "c_p99_us")) : "n/a", "", "")
			row(7, "cache miss (" v[k "placement"] "): latency added by ztnad over DoT to a plain UDP " \
				"query, p50", has(k "added_p50_us") ? sprintf("%.0f us", num(k "added_p50_us")) : "n/a", \
				"<= 100 us", le(has(k "added_p50_us"), num(k "added_p50_us"), 100))
		}
		k = "dns.fresh."
		row(7, "first answer on a fresh DoT connection (a new ztnad: TCP, TLS handshake, query): median " \
			"(min - max) of " num(k "n"), has(k "median_ms") ? sprintf("%.2f ms (%.2f - %.2f)", \
			num(k "median_ms"), num(k "min_ms"), num(k "max_ms")) : "n/a", "<= 5 ms", \
			le(has(k "median_ms"), num(k "median_ms"), 5))
		hname["blackhole"] = "a black hole (accepts TCP, never answers)"
		hname["silent"] = "silent on its open connection (packets dropped)"
		for (j = 1; j <= 2; j++) {
			h = j == 1 ? "blackhole" : "silent"
			k = "dns.hole." h "."
			ok = has(k "after_p99_ms")
			good = ok && num(k "after_p99_ms") <= 50 && num(k "unanswered") == 0 && num(k "not_noerror") == 0
			row(7, "first upstream " hname[h] ", second fine, " num("dns.rate_qps") " queries/s for " \
				num("dns.paced_seconds") " s: after the first detection p50 / p99 (over 50 ms); worst " \
				"(first query); unanswered", ok ? sprintf("%.2f / %.2f ms (%d of %d); %.1f ms (%.1f); " \
				"%d of %d (%d not NOERROR)", num(k "after_p50_ms"), num(k "after_p99_ms"), \
				num(k "after_over_50ms"), num(k "after"), num(k "max_ms"), num(k "first_ms"), \
				num(k "unanswered"), num(k "sent"), num(k "not_noerror")) : "n/a", \
				"p99 <= 50 ms, none unanswered", !ok ? "**FAIL** (no figure)" : (good ? "PASS" : "**FAIL**"))
		}
		bad = num("dns.hit.ztnad.bad") + num("dns.hit.unbound.bad") + num("dns.hit.dnsmasq.bad") + \
			num("dns.tailnet.ztnad.bad") + num("dns.tailnet.dnsmasq.bad") + num("dns.miss.bad") + \
			num("dns.fresh.bad")
		lost = num("dns.hit.ztnad.lost") + num("dns.hit.unbound.lost") + num("dns.hit.dnsmasq.lost") + \
			num("dns.tailnet.ztnad.lost") + num("dns.tailnet.dnsmasq.lost")
		fwd = num("dns.hit.ztnad.forwarded") + num("dns.hit.unbound.forwarded") + \
			num("dns.hit.dnsmasq.forwarded") + num("dns.tailnet.ztnad.forwarded")
		row(7, "DNS runs: wrong answers (not NOERROR, or no address) / dnsperf queries lost / cached or " \
			"tailnet names forwarded upstream during the runs", bad " / " lost " / " fwd, "0 / 0 / 0", \
			bad + lost + fwd == 0 ? "PASS" : "**FAIL**")
		failed = ""
		for (k in v)
			if (k ~ /^dns\.failed\./)
				failed = failed " " substr(k, 12) ": " v[k] ";"
		if (failed != "")
			row(7, "DNS measurements that could not be made", failed, "none", "**FAIL**")
	} else
		row(7, "the DNS stub beside unbound and dnsmasq", "n/a (tests/bench/bench-dns.sh printed nothing)", "", "n/a")

	# 8. the system
	fname[""] = "AF_UNSPEC"; fname["4"] = "AF_INET"
	for (i = 1; i <= 2; i++) {
		f = i == 1 ? "" : "4"
		a = "sys.gai.ztna" f ".median_ns"; b = "sys.gai.resolve" f ".median_ns"
		if (ratio(b, a))
			row(8, "booted Debian 12: getaddrinfo(" fname[f] ") of a tailnet name, `hosts: files ztna` / " \
				"`hosts: files resolve` (resolved routing the domain to ztnad'"'"'s stub, its cache warm): " \
				"median per call", sprintf("%.2f us / %.2f us: ztna %.1f times faster", num(a) / 1000, \
				num(b) / 1000, num(b) / num(a)), "reported", "")
		else
			row(8, "booted Debian 12: getaddrinfo(" fname[f] "), `hosts: files ztna` / `hosts: files resolve`", \
				"missing" (has("sys.failed") ? ": " v["sys.failed"] : ""), "a figure", "**FAIL**")
	}
	if (has("sys.gai.files.median_ns"))
		row(8, "booted Debian 12: getaddrinfo(AF_UNSPEC), the name in the hosts file, `hosts: files`: " \
			"glibc'"'"'s own work there (the floor of the AF_UNSPEC row)", \
			sprintf("%.2f us", num("sys.gai.files.median_ns") / 1000), "reported", "")
	else
		row(8, "booted Debian 12: getaddrinfo(AF_UNSPEC) through `hosts: files` (the floor)", "missing", \
			"a figure", "**FAIL**")
	if (has("sys.udp.resolved_warm.median_ns") && has("sys.udp.resolved_miss.median_ns") && \
	    has("sys.udp.stub.median_ns")) {
		w = num("sys.udp.resolved_warm.median_ns"); m = num("sys.udp.resolved_miss.median_ns")
		d = num("sys.udp.stub.median_ns")
		row(8, "booted Debian 12: one UDP query for a tailnet name (as dig sends it), via resolved " \
			"(cache warm) / via resolved (not cached: forwarded to the stub) / straight to the stub: median", \
			sprintf("%.1f us / %.1f us / %.1f us: resolved adds %+.1f us warm, %+.1f us forwarding", \
				w / 1000, m / 1000, d / 1000, (w - d) / 1000, (m - d) / 1000), "reported", "")
	} else
		row(8, "booted Debian 12: one UDP query via resolved / straight to the stub", \
			"missing" (has("sys.failed") ? ": " v["sys.failed"] : ""), "a figure", "**FAIL**")

	broken = ""
	for (k in v)
		if (k ~ /^step\.failed\./)
			broken = broken " " substr(k, 13)
	if (broken != "")
		row("-", "benchmark steps that broke (their rows say FAIL)", broken, "none", "**FAIL**")

	print ""
	printf "Measured on %s CPU(s) (%s), glibc %s, store on %s; whole run %s s%s.\n", \
		v["bench.cpus"], v["bench.cpu"], v["bench.glibc"], v["bench.store_fs"], v["bench.seconds"], \
		v["bench.quick"] == "1" ? " (BENCH_QUICK: few repetitions, numbers indicative only)" : ""
	printf "\n"
	printf "Direct calls: names asked as FQDNs, the way getaddrinfo passes them; one warm worker " \
		"process per store size, the two running blocks alternately; a block is a batch of " \
		"%d calls (its mean is one sample; the medians are of %d samples per size and workload) " \
		"and %d single calls timed one by one (percentiles, less the %d ns of a clock_gettime pair).\n", \
		num("direct.batch_calls"), num("direct.batches"), num("direct.single_calls"), num("direct.timer_ns")
	printf "\n"
	printf "getaddrinfo: name `%s`, SOCK_STREAM hints, getaddrinfo + freeaddrinfo timed; one warm " \
		"server per variant, each in its own private mount namespace with its own nsswitch.conf " \
		"and hosts file, asked for batches round-robin (%d batches of %d calls per variant, " \
		"1 call for the 100,000-peer hosts file).\n", \
		gai_name, num("gai.ztna.batches"), gai_calls
	printf "\n"
	printf "ztnad: each update changes one peer (a new name and address) in a tailnet of the size " \
		"shown and is timed from the first byte of the change (the push request written to the " \
		"control socket by the benchmark itself, or the temporary file opened) to the first " \
		"getaddrinfo(AF_INET) that returns the new address, asked every 50 us through " \
		"`hosts: ztna` in a private mount namespace; 5 ms between updates; store, state and " \
		"peers file on %s.\n\n", v["bench.store_fs"]
	printf "Republishing: a writer thread pinned to the other CPU publishing %s peers back to back " \
		"(median %.1f ms a publish, %d publishes), the reader pinned to CPU 0 timing single calls; " \
		"idle and busy phases of %d ms alternate.\n", LL, num("contend.publish_median_ms"), \
		num("contend.publishes"), num("contend.phase_ms")
	if (has("dns.versions")) {
		printf "\n"
		printf "DNS (%s): every server on loopback in a network namespace of its own; %s; dnsperf " \
			"%s, a file of 20 names (cached) or the example tailnet'"'"'s names (A and AAAA), each run " \
			"%d s, the servers taking turns. ztnad (a stub worker per CPU it may use) and unbound (as many threads) forward to the same upstream " \
			"unbound over DoT with the test CA, dnsmasq to it over plain DNS (it has no DoT); every " \
			"name was asked once before. CPU per answer is the server'"'"'s user + system time over " \
			"the answers of the run. Cache misses: unique names under a redirect zone of the upstream, " \
			"one query at a time from a Python client, the targets interleaved, the CPUs fixed (a " \
			"wake-up on another CPU costs tens of microseconds here, so an unpinned run varies with " \
			"where the scheduler puts each process). Fresh connections: a " \
			"new ztnad each time, asked once. Dead first server: ztnad with no cache, unique names, " \
			"every query waited for up to 10 s; the first detection is the first query'"'"'s answer.\n", \
			v["dns.versions"], v["dns.pinning"], v["dns.dnsperf_args"], num("dns.seconds_per_run")
	}
	if (has("sys.gai.rounds")) {
		printf "\n"
		printf "System (tests/system/bench-system.sh): the packages of build/deb in a booted Debian 12 " \
			"container (systemd 252 as PID 1, systemd-resolved); resolved configured with resolvectl " \
			"on the tun link ztna0: ztnad'"'"'s stub at 127.0.0.1:5300, `~yourorg.zt.net` routing only, " \
			"no DoT, no DNSSEC. getaddrinfo: `%s`, bench-gai compare inside the container " \
			"(%d rounds of %d calls per variant, each variant a warm process in a private mount " \
			"namespace with its own nsswitch.conf). UDP: a Python client, one query at a time, %d of " \
			"each kind interleaved; \"not cached\" asks a different peer each time.\n", \
			gai_name, num("sys.gai.rounds"), num("sys.gai.calls"), num("sys.udp.queries")
	}
}' "$res" | tee "$work/table"

# Every row that says FAIL fails the run, by name: a target missed, a
# figure missing, a part that broke.
status=0
if grep -q '| \*\*FAIL\*\*' "$work/table"; then
	say "rows that FAIL:"
	awk -F' [|] ' '/[|] \*\*FAIL\*\*/ { v = $5; sub(/ *[|]$/, "", v); printf "bench:   row %s: %s: %s\n", substr($1, 3), $2, v }' "$work/table" >&2
	status=1
fi
for f in $(sed -n 's/^step\.failed\.\([^=]*\)=.*/\1/p' "$res"); do
	say "the part '$f' broke (its rows above say FAIL)"
	status=1
done
# A benchmark that broke (not a target missed) fails the run.
if grep -qE '^(step\.failed\.|callgrind\.failed=|direct\.[0-9]+\.failures=[1-9]|contend\.(idle|busy)\.failures=[1-9]|gai\.failed=|gai\.etc_unchanged=NO|daemon\.[0-9]+\.(push|file)\.failures=[1-9]|dns\.failed\.|dns\.(hit|tailnet)\.[a-z]+\.bad=[1-9]|dns\.(miss|miss1|fresh)\.bad=[1-9]|dns\.hole\.[a-z]+\.unanswered=[1-9]|sys\.failed=|sys\.leaks=[1-9])' "$res"; then
	say "a benchmark gave wrong answers or failed (see the table)"
	status=1
fi
exit $status
