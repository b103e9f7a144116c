# SPDX-License-Identifier: MIT
# shellcheck shell=bash
# Single quotes hold scripts for the container and apt's format strings;
# "A && B || C" is meant where used; the CT_ variables are for the scripts
# that source this file.
# shellcheck disable=SC2016,SC2015,SC2034
#
# A booted Debian 12 container for the system tests (tests/system/test-system.sh,
# tests/system/bench-system.sh): real systemd as PID 1, real D-Bus, real
# systemd-resolved when a test installs it, the project's .debs installed
# with apt. Sourced by bash scripts; every function is prefixed ct_.
#
# The network (all of it in namespaces of the test's own; the machine's
# network namespace, /etc and firewall are never touched):
#
#   test namespace (an "unshare --net" of the test)   container
#   bridge ct-br 192.0.2.1, .2 <-- veth ct-up --->  host0 192.0.2.10/24
#     192.0.2.1:53   tests/harness/dns-standin.py: the        default route via
#                    uplink's "public" DNS server,    192.0.2.1; networkd
#                    answers every A query with       gives resolved
#                    203.0.113.66 and logs each       DNS=192.0.2.1 on host0,
#                    name it is asked                 as DHCP would;
#     192.0.2.2:853  unbound, DNS-over-TLS (CA and    /etc/resolv.conf says
#                    certificate of                   nameserver 192.0.2.1
#                    tests/harness/unbound-dot.sh, name       ztna0: a tun device
#                    dns.test); www.example.test      held open by the test,
#                    is 192.0.2.1, everything else    100.64.0.100/10 and
#                    NXDOMAIN; logs every query       fd7a:115c:a1e0::100/48
#
# The stand-in and unbound both log the names they are asked: a tailnet
# name in either log is a leak (ct_assert_no_leak).
#
# Functions (CT_* variables below them describe the state):
#   ct_require                 root and the tools, or exit 1 with a message
#   ct_private_mounts "$0" "$@"  re-exec the calling script in a private
#                              mount namespace (call first; mounts of the
#                              test then die with it)
#   ct_base                    the cached Debian base root (built when
#                              missing or when its recipe changed; ~2 min)
#   ct_start                   an overlay over the base, the test network,
#                              the container booted (waits for systemd)
#   ct_exec CMD...             run CMD inside (all the container's
#                              namespaces, a clean environment); its exit
#                              status is returned, stdin is passed on
#   ct_sh 'SCRIPT'             ct_exec sh -c SCRIPT
#   ct_timeout SECS CMD...     ct_exec bounded by SECS (exit 124 on timeout)
#   ct_copy_in SRC DST [MODE]  a file of this machine into the container
#   ct_read PATH               print a file of the container
#   ct_install_debs [PKG...]   the project's packages from build/deb (default:
#                              ztnad libnss-ztna) with apt, offline
#   ct_apt_install PKG...      packages fetched in advance (CT_EXTRA_SETS)
#   ct_apt_remove remove|purge PKG...
#   ct_resolved_install        systemd-resolved and libnss-resolve, offline,
#                              and resolved on the bus (see the function)
#   ct_resolved_on_bus [SECS]  until resolved owns its bus name
#   ct_ztnad_conf [DNS_LINE...]  the bed's /etc/ztna/ztnad.conf: the example
#                              tailnet, the DoT upstream with the test CA,
#                              each argument a line of [dns]
#   ct_wait_active UNIT [SECS] until UNIT is active
#   ct_reboot                  "systemctl reboot" inside, the same overlay
#                              booted again, network and ztna0 again
#   ct_stop                    power the container off
#   ct_teardown                everything down: container, servers,
#                              namespace, cgroups, overlay, run directory
#                              (kept with CT_KEEP=1); also the EXIT trap
#   ct_standin_log             the names the stand-in was asked, one a line
#   ct_dot_log                 the names unbound (the DoT upstream) was asked
#   ct_logs_mark               remember where both logs end now
#   ct_leaks                   "standin NAME" / "dot NAME" for each tailnet
#                              name either was asked since ct_logs_mark
#   ct_assert_no_leak LABEL    ok / not ok: no tailnet name in either log
#                              since the last ct_logs_mark
#   ct_journal [UNIT]          the container's journal (for failures)
#
# Results: tests/lib.sh's (sourced here): ok, not_ok, skip, check LABEL
# CMD..., finish; and note TEXT ("# TEXT"). ct_die prints its reason and
# exits 1: run each part in a subshell, as tests/system/test-system.sh does, so a
# part that dies is counted and the others still run.
#
# Environment:
#   CT_KEEP=1        keep the run directory (overlay, logs) and print it
#   CT_MIRROR=URL    Debian mirror for the base (default: this machine's)
#   CT_BOOT_TIMEOUT  seconds for the container to boot (default 90)

CT_SRC=${CT_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)}
CT_CACHE=${CT_CACHE:-$CT_SRC/build/system-test}
CT_SUITE=bookworm
CT_BOOT_TIMEOUT=${CT_BOOT_TIMEOUT:-90}

# What the base holds. ztnad's and libnss-ztna's Depends (dpkg-deb -f
# build/deb/*.deb Depends) are here, so installing them needs nothing from
# the network; the rest is what the tests run inside.
CT_INCLUDE="systemd,systemd-sysv,dbus,iproute2,bind9-dnsutils,python3,ca-certificates,\
libjansson4,liburcu8,libssl3,libcurl4,libpsl5,publicsuffix,libsystemd0,procps,libc-bin"
# Packages fetched into the base's apt cache for tests to install later,
# offline; one apt transaction per ';'-separated set (sets may conflict
# with each other: resolvconf and systemd-resolved do).
CT_EXTRA_SETS="systemd-resolved libnss-resolve;resolvconf"

# The test network (RFC 5737 documentation ranges).
CT_NS_ADDR=192.0.2.1
CT_DOT_ADDR=192.0.2.2
CT_CT_ADDR=192.0.2.10
CT_PUBLIC_ANSWER=203.0.113.66
CT_DOT_NAME=dns.test
CT_TUN=ztna0
CT_TUN_ADDR4=100.64.0.100
CT_TUN_ADDR6=fd7a:115c:a1e0::100

CT_RUN=
CT_ROOT=
CT_PID=
CT_NSPAWN_PID=
CT_NS_PID=
CT_STANDIN_PID=
CT_UNBOUND_PID=
CT_TUN_PID=
CT_CGROUPS=
CT_BASE=
CT_MARK_STANDIN=0
CT_MARK_DOT=0

# ---- results ---------------------------------------------------------------
# ok, not_ok, skip, check, finish and the numeric checks: tests/lib.sh.
# shellcheck source=tests/lib.sh
. "$CT_SRC/tests/lib.sh"
note() {
	echo "# $*"
}
ct_die() {
	echo "container: $*" >&2
	exit 1
}

# ---- setup -----------------------------------------------------------------
ct_require() {
	[ "$(id -u)" -eq 0 ] || ct_die "needs root (debootstrap, namespaces, mounts, systemd-nspawn)"
	local t
	for t in debootstrap systemd-nspawn nsenter unshare ip unbound openssl timeout /usr/bin/python3; do
		command -v "$t" >/dev/null || ct_die "$t is missing"
	done
	[ -c /dev/net/tun ] || ct_die "/dev/net/tun is missing (ztna0 needs it)"
}

ct_private_mounts() {
	if [ -z "${CT_MOUNT_NS:-}" ]; then
		exec env CT_MOUNT_NS=1 unshare --mount --propagation private bash "$@"
	fi
}

# The base's recipe: a change to any of it builds a new base.
ct__base_key() {
	{
		echo "$CT_SUITE $CT_INCLUDE $CT_EXTRA_SETS"
		declare -f ct__base_build
	} | sha256sum | cut -c1-12
}

ct__mirror() {
	echo "${CT_MIRROR:-$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
		awk -v s="$CT_SUITE" '$2 == s { print $1; exit }')}"
}

# ct__base_build DIR: debootstrap into DIR/root, fetch the extra packages,
# configure what every test run shares.
ct__base_build() {
	local dir=$1 root=$1/root mirror m set
	mirror=$(ct__mirror)
	debootstrap --variant=minbase --include="$CT_INCLUDE" "$CT_SUITE" "$root" ${mirror:+"$mirror"} \
		>"$dir/debootstrap.log" 2>&1 || { tail -20 "$dir/debootstrap.log" >&2; return 1; }
	for m in $(findmnt -rn -o TARGET | grep "^$root/" | sort -r); do
		umount -l "$m"
	done
	# apt in a chroot: the machine's resolver for the mirror, /dev and /proc.
	cp /etc/resolv.conf "$root/etc/resolv.conf"
	mount -t proc proc "$root/proc"
	mount --rbind /dev "$root/dev"
	(
		set -e
		chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 apt-get -q update
		IFS=';'
		for set in $CT_EXTRA_SETS; do
			IFS=' '
			# shellcheck disable=SC2086
			chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
				DEBIAN_FRONTEND=noninteractive apt-get -q -y --no-install-recommends \
				install --download-only $set
		done
	) >"$dir/apt.log" 2>&1
	local rc=$?
	umount -R -l "$root/dev"
	umount -l "$root/proc"
	[ "$rc" -eq 0 ] || { tail -20 "$dir/apt.log" >&2; return 1; }

	# What DHCP would have given the uplink: the stand-in as DNS server.
	echo "nameserver $CT_NS_ADDR" >"$root/etc/resolv.conf"
	echo ztna-ct >"$root/etc/hostname"
	printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\tztna-ct\n' \
		>"$root/etc/hosts"
	# A fixed machine id: a boot is not a first boot.
	tr -d - </proc/sys/kernel/random/uuid >"$root/etc/machine-id"
	# host0 is configured by networkd, which hands its DNS server to
	# resolved when that is installed (as a DHCP lease would).
	mkdir -p "$root/etc/systemd/network"
	cat >"$root/etc/systemd/network/50-host0.network" <<-EOF
	[Match]
	Name=host0
	[Network]
	Address=$CT_CT_ADDR/24
	Gateway=$CT_NS_ADDR
	DNS=$CT_NS_ADDR
	LinkLocalAddressing=no
	IPv6AcceptRA=no
	EOF
	chroot "$root" systemctl enable systemd-networkd.service >/dev/null 2>&1
	# Nothing on the console (it is a pipe), no timers that reach out.
	chroot "$root" systemctl mask console-getty.service getty@.service apt-daily.timer \
		apt-daily-upgrade.timer systemd-networkd-wait-online.service >/dev/null 2>&1
	# apt and dpkg quiet and without prompts inside.
	printf 'APT::Install-Recommends "false";\nAPT::Get::Assume-Yes "true";\nDpkg::Use-Pty "0";\n' \
		>"$root/etc/apt/apt.conf.d/90ztna-test"
	# The extra packages stay in the apt cache: tests install them offline.
	rm -f "$root/var/cache/apt/archives/lock" "$root/var/cache/apt/archives/partial/"* 2>/dev/null
	return 0
}

# ct_base: sets CT_BASE to the cached base root, building it when needed.
ct_base() {
	local key dir tmp start
	key=$(ct__base_key)
	dir=$CT_CACHE/base-$CT_SUITE-$key
	if [ ! -f "$dir/done" ]; then
		mkdir -p "$CT_CACHE"
		start=$(date +%s)
		note "building the container base $dir (once per recipe)"
		tmp=$(mktemp -d "$CT_CACHE/base-build.XXXXXX")
		if ! (unshare --mount --propagation private bash -c "$(declare -f ct__base_build ct__mirror ct_die note);
				$(declare -p CT_SUITE CT_INCLUDE CT_EXTRA_SETS CT_NS_ADDR CT_CT_ADDR CT_MIRROR 2>/dev/null);
				ct__base_build '$tmp'"); then
			rm -rf --one-file-system "$tmp"
			ct_die "building the base failed"
		fi
		rm -rf --one-file-system "$dir"
		mv "$tmp" "$dir"
		touch "$dir/done"
		note "base built in $(($(date +%s) - start))s"
		# Older bases are of no use any more.
		local old
		for old in "$CT_CACHE"/base-*; do
			[ "$old" = "$dir" ] || [ ! -d "$old" ] || rm -rf --one-file-system "$old"
		done
	fi
	CT_BASE=$dir/root
}

# ---- the test network ------------------------------------------------------
ct__ns() {
	nsenter -t "$CT_NS_PID" -n "$@"
}

# The processes in the test's network namespace.
ct__ns_pids() {
	local ns p
	[ -n "$CT_NS_PID" ] || return 0
	ns=$(readlink "/proc/$CT_NS_PID/ns/net") || return 0
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/ns/net" 2>/dev/null)" = "$ns" ] && echo "${p#/proc/}"
	done
	return 0
}

# The namespace, the stand-in and unbound: once per run (they outlive
# reboots of the container, and so do their logs).
ct__net_start() {
	unshare --net sleep 1000000000 &
	CT_NS_PID=$!
	local i
	for i in $(seq 50); do
		[ "$(readlink "/proc/$CT_NS_PID/ns/net")" != "$(readlink /proc/self/ns/net)" ] && break
		sleep 0.02
	done
	ct__ns ip link set lo up || ct_die "the test's network namespace did not come up"

	mkdir -p "$CT_RUN/certs" "$CT_RUN/unbound"
	sh "$CT_SRC/tests/harness/unbound-dot.sh" certs "$CT_RUN/certs" || ct_die "making the test CA failed"
	cat >"$CT_RUN/unbound/extra.conf" <<-EOF2
		interface: $CT_DOT_ADDR@853
		access-control: 192.0.2.0/24 allow
		log-queries: yes
	EOF2
	: >"$CT_RUN/standin.log"
	# nsenter itself in the background (it execs the server), not a
	# function: $! is then the server's PID.
	nsenter -t "$CT_NS_PID" -n /usr/bin/python3 "$CT_SRC/tests/harness/dns-standin.py" "$CT_NS_ADDR" 53 \
		"$CT_RUN/standin.log" >"$CT_RUN/standin.out" 2>&1 &
	CT_STANDIN_PID=$!
	# A bridge holds both server addresses: it stays while the container's
	# veth comes and goes with each boot (ct__link_up).
	ct__ns ip link add ct-br type bridge || ct_die "no bridge in the test's namespace"
	ct__ns ip addr add "$CT_NS_ADDR/24" dev ct-br
	ct__ns ip addr add "$CT_DOT_ADDR/24" dev ct-br
	ct__ns ip link set ct-br up
	nsenter -t "$CT_NS_PID" -n sh "$CT_SRC/tests/harness/unbound-dot.sh" run "$CT_RUN/unbound" 853 "$CT_RUN/certs/server.pem" \
		"$CT_RUN/certs/server.key" "" "$CT_RUN/unbound/extra.conf" >"$CT_RUN/unbound.log" 2>&1 &
	CT_UNBOUND_PID=$!
	for i in $(seq 100); do
		if grep -q 'serving' "$CT_RUN/standin.out" 2>/dev/null && ct__ns ss -ltnH "sport = 853" | grep -q 853; then
			return 0
		fi
		kill -0 "$CT_STANDIN_PID" 2>/dev/null || { cat "$CT_RUN/standin.out" >&2; ct_die "the stand-in DNS server died"; }
		kill -0 "$CT_UNBOUND_PID" 2>/dev/null || { tail "$CT_RUN/unbound.log" >&2; ct_die "unbound died"; }
		sleep 0.1
	done
	ct_die "the stand-in or unbound did not start listening within 10s"
}

# The container's links, at each boot: host0 (the uplink, configured by
# networkd inside) and ztna0 (a tun device held open by a process of the
# test that sits in the container's network namespace only).
ct__link_up() {
	ct__ns ip link del ct-up 2>/dev/null || true
	# host0 made in the container's namespace, then ztna0: their
	# interface indexes (2 and 3) are the same at every boot, as on a
	# real machine, so resolved's settings compare byte for byte across
	# reboots.
	ct__ns ip link add ct-up type veth peer name host0 netns "$CT_PID" &&
		ct__ns ip link set ct-up master ct-br &&
		ct__ns ip link set ct-up up ||
		ct_die "the container's veth link failed"
	rm -f "$CT_RUN/tun.out"
	nsenter -t "$CT_PID" -n /usr/bin/python3 -c '
import fcntl, os, struct, sys
TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
fd = os.open("/dev/net/tun", os.O_RDWR)
fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", sys.argv[1].encode(), IFF_TUN | IFF_NO_PI))
print("ready", flush=True)
while True:
    os.read(fd, 65536)
' "$CT_TUN" >"$CT_RUN/tun.out" 2>&1 &
	CT_TUN_PID=$!
	local i
	for i in $(seq 50); do
		grep -q ready "$CT_RUN/tun.out" 2>/dev/null && break
		kill -0 "$CT_TUN_PID" 2>/dev/null || break
		sleep 0.1
	done
	grep -q ready "$CT_RUN/tun.out" 2>/dev/null || { cat "$CT_RUN/tun.out" >&2; ct_die "the tun device $CT_TUN did not come up"; }
	nsenter -t "$CT_PID" -n sh -c "ip addr add $CT_TUN_ADDR4/10 dev $CT_TUN &&
		ip -6 addr add $CT_TUN_ADDR6/48 dev $CT_TUN nodad &&
		ip link set $CT_TUN up" || ct_die "addresses on $CT_TUN failed"
}

# ---- the container ---------------------------------------------------------
# A cgroup of the test's own in every hierarchy this machine mounts (its
# PID 1 is no systemd, so nobody else gives nspawn one), removed at the end.
ct__cgroups_make() {
	local h cg
	CT_CGROUPS=
	for h in /sys/fs/cgroup/unified /sys/fs/cgroup/systemd /sys/fs/cgroup; do
		[ -e "$h/cgroup.procs" ] || continue
		cg=$h/ztna-system-test.$$
		mkdir -p "$cg" || ct_die "cannot make the cgroup $cg"
		CT_CGROUPS="$CT_CGROUPS $cg"
	done
	[ -n "$CT_CGROUPS" ] || ct_die "no cgroup hierarchy found under /sys/fs/cgroup"
}

# Every process in our cgroups (and below), one a line.
ct__cgroup_pids() {
	local cg
	for cg in $CT_CGROUPS; do
		[ -d "$cg" ] && find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null
	done | sort -un
}

ct__cgroups_remove() {
	local cg pid pids
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		pids=$(ct__cgroup_pids)
		[ -z "$pids" ] && break
		for pid in $pids; do
			kill -KILL "$pid" 2>/dev/null
		done
		sleep 0.2
	done
	for cg in $CT_CGROUPS; do
		[ -d "$cg" ] || continue
		# Children first.
		find "$cg" -depth -type d -exec rmdir {} \; 2>/dev/null
		[ -d "$cg" ] && echo "container: could not remove the cgroup $cg" >&2
	done
}

ct__boot() {
	local log=$CT_RUN/console.$CT_BOOTS.log
	CT_BOOTS=$((CT_BOOTS + 1))
	(
		for cg in $CT_CGROUPS; do
			echo "$BASHPID" >"$cg/cgroup.procs" || exit 1
		done
		exec systemd-nspawn -q -D "$CT_ROOT" --boot --register=no --keep-unit --private-network \
			--resolv-conf=off --timezone=off --link-journal=no --console=pipe -M "ztna-ct-$$"
	) </dev/null >"$log" 2>&1 &
	CT_NSPAWN_PID=$!
	# The container's PID 1: a process of our cgroups that is PID 1 of a
	# PID namespace of its own.
	local i pid
	CT_PID=
	for i in $(seq 200); do
		for pid in $(ct__cgroup_pids); do
			if awk '/^NSpid:/ { exit !($NF == 1 && NF > 2) }' "/proc/$pid/status" 2>/dev/null; then
				CT_PID=$pid
				break 2
			fi
		done
		kill -0 "$CT_NSPAWN_PID" 2>/dev/null || break
		sleep 0.05
	done
	[ -n "$CT_PID" ] || { cat "$log" >&2; ct_die "systemd-nspawn did not start the container"; }
	ct__link_up
	# Until the system bus is up, systemctl fails at once: retry until
	# it waits for the boot to end, within the one deadline.
	local state rc left deadline=$(($(date +%s) + CT_BOOT_TIMEOUT))
	while :; do
		rc=0
		# At least a second: "timeout 0" would wait for ever.
		left=$((deadline - $(date +%s)))
		[ "$left" -ge 1 ] || left=1
		state=$(timeout -k 5 "$left" nsenter -t "$CT_PID" -a \
			systemctl is-system-running --wait 2>&1) || rc=$?
		case $state in
		running | degraded | stopping | offline | maintenance) break ;;
		esac
		[ "$(date +%s)" -lt "$deadline" ] && kill -0 "$CT_NSPAWN_PID" 2>/dev/null || break
		sleep 0.2
	done
	case $state in
	running | degraded) ;;
	*)
		tail -30 "$log" >&2
		ct_exec systemctl --no-pager --failed >&2 2>&1
		ct_exec systemctl --no-pager list-jobs >&2 2>&1
		ct_die "the container did not finish booting within ${CT_BOOT_TIMEOUT}s: '$state' (exit $rc)"
		;;
	esac
	[ "$state" = degraded ] && note "container booted degraded: $(ct_exec systemctl --no-pager --plain --no-legend --failed | awk '{ printf "%s ", $1 }')"
	return 0
}

ct_start() {
	[ -n "${CT_MOUNT_NS:-}" ] || ct_die "ct_start needs a private mount namespace: call ct_private_mounts \"\$0\" \"\$@\" first"
	CT_BOOTS=0
	ct_base
	mkdir -p "$CT_CACHE/runs"
	CT_RUN=$(cd "$(mktemp -d "$CT_CACHE/runs/run.XXXXXX")" && pwd -P)
	CT_ROOT=$CT_RUN/root
	mkdir "$CT_RUN/upper" "$CT_RUN/work" "$CT_ROOT"
	trap ct_teardown EXIT
	trap 'exit 1' INT TERM HUP
	mount -t overlay overlay -o "lowerdir=$CT_BASE,upperdir=$CT_RUN/upper,workdir=$CT_RUN/work" "$CT_ROOT" ||
		ct_die "the overlay over $CT_BASE failed"
	# nspawn keeps its per-machine directories there: a tmpfs of this
	# mount namespace, so nothing is left on the machine's /run.
	mkdir -p /run/systemd/nspawn
	mount -t tmpfs -o mode=0755 tmpfs /run/systemd/nspawn || ct_die "no tmpfs for /run/systemd/nspawn"
	ct__cgroups_make
	ct__net_start
	ct__boot
}

ct_exec() {
	nsenter -t "$CT_PID" -a env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		LC_ALL=C.UTF-8 HOME=/root TERM=dumb DEBIAN_FRONTEND=noninteractive "$@"
}
ct_sh() {
	ct_exec sh -c "$1"
}
ct_timeout() {
	local secs=$1
	shift
	ct_exec timeout -k 2 "$secs" "$@"
}
ct_copy_in() {
	local src=$1 dst=$2 mode=${3:-0644}
	ct_exec sh -c 'mkdir -p "$(dirname "$1")" && cat >"$1" && chmod "$2" "$1"' sh "$dst" "$mode" <"$src"
}
ct_read() {
	ct_exec cat "$1"
}
ct_journal() {
	ct_exec journalctl --no-pager -b ${1:+-u "$1"}
}

# The project's packages from build/deb ("make deb"), with apt, offline.
ct_install_debs() {
	local pkgs=${*:-ztnad libnss-ztna} arch p f files=
	arch=$(dpkg --print-architecture)
	for p in $pkgs; do
		f=
		for f in "$CT_SRC/build/deb/${p}_"*"_$arch.deb" "$CT_SRC/build/deb/${p}_"*_all.deb; do
			[ -f "$f" ] && break
		done
		[ -f "$f" ] || ct_die "no package $p in build/deb (make deb)"
		ct_copy_in "$f" "/root/debs/$(basename "$f")"
		files="$files /root/debs/$(basename "$f")"
	done
	# shellcheck disable=SC2086
	# No --no-download: apt then refuses .deb files given by path ("not
	# absolute"); there is no network inside anyway.
	ct_timeout 120 apt-get install -q -o Dpkg::Options::=--force-confdef \
		-o Dpkg::Options::=--force-confold $files >>"$CT_RUN/apt.log" 2>&1 ||
		{ tail -20 "$CT_RUN/apt.log"; return 1; }
}
ct_apt_install() {
	ct_timeout 120 apt-get install -q --no-download "$@" >>"$CT_RUN/apt.log" 2>&1 ||
		{ tail -20 "$CT_RUN/apt.log"; return 1; }
}
ct_apt_remove() {
	local how=$1
	shift
	ct_timeout 120 apt-get "$how" -q "$@" >>"$CT_RUN/apt.log" 2>&1 ||
		{ tail -20 "$CT_RUN/apt.log"; return 1; }
}

# Waits for nspawn to end, bounded; its exit status in CT_NSPAWN_RC.
ct__wait_nspawn() {
	local secs=$1 _
	CT_NSPAWN_RC=
	for _ in $(seq $((secs * 10))); do
		kill -0 "$CT_NSPAWN_PID" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$CT_NSPAWN_PID" 2>/dev/null; then
		return 1
	fi
	CT_NSPAWN_RC=0
	wait "$CT_NSPAWN_PID" || CT_NSPAWN_RC=$?
	return 0
}

ct__unlink() {
	if [ -n "$CT_TUN_PID" ]; then
		kill "$CT_TUN_PID" 2>/dev/null
		wait "$CT_TUN_PID" 2>/dev/null
		CT_TUN_PID=
	fi
}

ct_reboot() {
	ct_exec systemctl reboot >/dev/null 2>&1 &
	if ! ct__wait_nspawn 60; then
		ct_die "the container did not shut down for the reboot within 60s"
	fi
	# 133: the container asked to be rebooted.
	[ "$CT_NSPAWN_RC" = 133 ] || note "systemd-nspawn exited $CT_NSPAWN_RC for a reboot (expected 133)"
	ct__unlink
	ct__boot
}

ct_stop() {
	ct__unlink
	if [ -n "$CT_NSPAWN_PID" ] && kill -0 "$CT_NSPAWN_PID" 2>/dev/null; then
		# SIGTERM: nspawn asks the container's systemd to power off.
		kill -TERM "$CT_NSPAWN_PID" 2>/dev/null
		ct__wait_nspawn 30 || echo "container: no clean poweroff within 30s, killing it" >&2
	fi
	CT_NSPAWN_PID=
	CT_PID=
}

ct_teardown() {
	local rc=$?
	ct_stop
	local p
	# Every process in the test's namespace: the servers, the holder,
	# anything a part started there.
	ct__ns_pids | xargs -r kill 2>/dev/null
	for p in $CT_STANDIN_PID $CT_UNBOUND_PID $CT_NS_PID; do
		wait "$p" 2>/dev/null
	done
	CT_STANDIN_PID=''
	CT_UNBOUND_PID=''
	CT_NS_PID=''
	ct__cgroups_remove
	if [ -n "$CT_ROOT" ] && mountpoint -q "$CT_ROOT"; then
		umount -R "$CT_ROOT" 2>/dev/null || umount -R -l "$CT_ROOT"
	fi
	if [ -n "$CT_RUN" ]; then
		if [ "${CT_KEEP:-0}" = 1 ]; then
			echo "container: kept $CT_RUN (upper: the container's changes; *.log: the logs)" >&2
		elif ! findmnt -rn -o TARGET | grep -q "^$CT_RUN/"; then
			rm -rf --one-file-system "$CT_RUN"
		else
			echo "container: mounts left under $CT_RUN; not removing it" >&2
		fi
	fi
	CT_RUN=
	return $rc
}

# ---- the logs and leaks ----------------------------------------------------
ct_standin_log() {
	awk '$1 != "-" { print $1 }' "$CT_RUN/standin.log"
}
# unbound's "info: 192.0.2.10 NAME. TYPE IN" lines.
ct_dot_log() {
	awk '$0 ~ / info: [0-9a-f.:]+ [^ ]+\. [A-Z0-9]+ IN$/ { n = $(NF - 2); sub(/\.$/, "", n); print tolower(n) }' \
		"$CT_RUN/unbound.log"
}
ct_logs_mark() {
	CT_MARK_STANDIN=$(wc -l <"$CT_RUN/standin.log")
	CT_MARK_DOT=$(wc -l <"$CT_RUN/unbound.log")
}
# The tailnet's names: the domain, the peers' short names, the reverse
# zones of 100.64.0.0/10 and fd7a:115c:a1e0::/48.
CT_LEAK_RE='(^|\.)yourorg\.zt\.net$|^(win-a|mac-b|linux-c|printer|build-v6|laptop-d)(\.|$)|(^|\.)(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\.100\.in-addr\.arpa$|(^|\.)0\.e\.1\.a\.c\.5\.1\.1\.a\.7\.d\.f\.ip6\.arpa$'
# ct_leaks: "standin NAME" / "dot NAME" for each tailnet name asked of
# either server since the last ct_logs_mark.
ct_leaks() {
	tail -n +$((CT_MARK_STANDIN + 1)) "$CT_RUN/standin.log" |
		awk '$1 != "-" { print $1 }' | grep -E "$CT_LEAK_RE" | sed 's/^/standin /'
	tail -n +$((CT_MARK_DOT + 1)) "$CT_RUN/unbound.log" |
		awk '$0 ~ / info: [0-9a-f.:]+ [^ ]+\. [A-Z0-9]+ IN$/ { n = $(NF - 2); sub(/\.$/, "", n); print tolower(n) }' |
		grep -E "$CT_LEAK_RE" | sed 's/^/dot /'
	return 0
}
ct_assert_no_leak() {
	local leaks
	leaks=$(ct_leaks | sort | uniq -c | sort -rn | head -10)
	if [ -z "$leaks" ]; then
		ok "$1: no tailnet name reached the stand-in or the DoT upstream"
	else
		not_ok "$1: tailnet names reached other servers: $(echo "$leaks" | tr -s ' \n' ' ')"
	fi
}

# ---- ztnad in the container ------------------------------------------------
# ct_ztnad_conf [DNS_LINE...]: /etc/ztna/ztnad.conf for the bed: the
# example tailnet as the peers file (/etc/ztna/test-peers.json), the DoT
# upstream 192.0.2.2:853#dns.test with the test CA
# (/etc/ztna/test-ca.pem); each argument a line of its [dns] section.
# Works before the packages are installed (apt keeps the file) and after
# (restart or reload ztnad yourself).
ct_ztnad_conf() {
	local f=$CT_RUN/ztnad.conf line
	{
		echo "# ztnad.conf of the system tests (tests/system/container.sh)"
		echo "[ztnad]"
		echo "peers_file = /etc/ztna/test-peers.json"
		echo "[dns]"
		# A key given replaces its default (a key twice is an error).
		printf '%s\n' "$@" | grep -q '^upstream *=' || echo "upstream = $CT_DOT_ADDR:853#$CT_DOT_NAME"
		printf '%s\n' "$@" | grep -q '^tls_ca_file *=' || echo "tls_ca_file = /etc/ztna/test-ca.pem"
		for line in "$@"; do
			echo "$line"
		done
	} >"$f"
	ct_copy_in "$CT_RUN/certs/ca.pem" /etc/ztna/test-ca.pem &&
		ct_copy_in "$CT_SRC/examples/tailnet.json" /etc/ztna/test-peers.json &&
		ct_copy_in "$f" /etc/ztna/ztnad.conf
}

# ct_wait_active UNIT [SECS]: until UNIT is active (default 20 s); prints
# its state and returns 1 when it is not by then.
ct_wait_active() {
	local unit=$1 secs=${2:-20} _ state
	for _ in $(seq $((secs * 5))); do
		state=$(ct_exec systemctl is-active "$unit" 2>/dev/null)
		[ "$state" = active ] && return 0
		sleep 0.2
	done
	echo "$unit: $state after ${secs}s"
	return 1
}

# ct_resolved_on_bus [SECS]: until resolved owns org.freedesktop.resolve1
# (default 10 s).
ct_resolved_on_bus() {
	local _
	for _ in $(seq $((${1:-10} * 5))); do
		ct_exec busctl --timeout=1 status org.freedesktop.resolve1 >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	return 1
}

# ct_resolved_install: systemd-resolved and libnss-resolve, offline, and
# resolved on the bus. Right after "apt install systemd-resolved" on
# Debian 12, resolved asks for its bus name before dbus-daemon has
# reloaded the policy that allows it, and stays off the bus until it is
# restarted (seen in this container: over 40 s, D-Bus activation timing
# out every 25 s); the administrator's next reboot would fix it, this
# restarts it once and says so.
ct_resolved_install() {
	ct_apt_install systemd-resolved libnss-resolve || return 1
	ct_wait_active systemd-resolved.service >/dev/null || return 1
	ct_resolved_on_bus 3 && return 0
	note "resolved is not on the bus after apt install: restarting it once"
	ct_exec systemctl restart systemd-resolved.service
	ct_resolved_on_bus 10
}
