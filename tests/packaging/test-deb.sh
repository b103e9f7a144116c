#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The install test behind "make deb-test": the packages in build/deb go
# into a throwaway Debian 12 root made here with debootstrap, never onto
# this machine, and are installed, used, reinstalled, removed and purged
# there with apt and dpkg as an administrator would.
#
#   - nsswitch.conf: installing libnss-ztna puts "ztna [!UNAVAIL=return]"
#     before "dns" (or before "resolve" where it is present); reinstalling
#     changes nothing; removing and purging give back the file byte for byte.
#   - ztnad: the "ztna" system account, the conffile, /var/lib/ztna, the
#     service enabled and the socket unit not; the daemon started by hand
#     in the root (there is no systemd running there) with the example
#     tailnet, as the unit would start it (user ztna, CAP_NET_BIND_SERVICE
#     only, a fresh network namespace) -> getent resolves Win-A through the
#     installed module, and "ztna" talks to the daemon.
#   - systemd-analyze verify and security --offline=true on the installed
#     units (the exposure score is printed).
#   - purge leaves nothing of ours: no file of the packages, no /etc/ztna,
#     /var/lib/ztna or /run/ztna. The "ztna" account stays, as Debian
#     keeps system accounts (files owned by its uid may remain).
#   - ztna-selinux: the module goes into the root's policy store and comes
#     out again on purge. Built without it (the pkg.ztna.noselinux profile),
#     that is a skip (tests/lib.sh), which sh dev.sh test does not allow.
#
# Needs root, debootstrap, unshare, ip, and Debian's package mirror. The
# bootstrapped root is kept as a tarball in build/deb-test/ and apt's
# downloads in build/deb-test/archives/, so a rerun bootstraps nothing
# and downloads little. Every mount is made in a private mount namespace
# and undone on exit.
#
# Usage: bash tests/packaging/test-deb.sh   (after make deb; "make deb-test" does both)
#   ZTNA_DEB_MIRROR=URL  the Debian mirror (default: this machine's apt
#                        source for bookworm, else debootstrap's default)
# "CHECK && ok || fail" is meant: ok only prints.
# shellcheck disable=SC2015
set -euo pipefail

cd "$(dirname "$0")/../.."
SRC=$(pwd)
DEBS=$SRC/build/deb
CACHE=$SRC/build/deb-test
SUITE=bookworm

if [ "$(id -u)" -ne 0 ]; then
	echo "test-deb: needs root (debootstrap, chroot, mounts)" >&2
	exit 1
fi
for tool in debootstrap unshare chroot ip setpriv; do
	if ! command -v "$tool" >/dev/null; then
		echo "test-deb: $tool is missing" >&2
		exit 1
	fi
done

# Everything below runs in a mount namespace of its own: no mount made
# here can outlive the test or show on the host, even after a SIGKILL.
if [ -z "${ZTNA_DEB_TEST_NS:-}" ]; then
	exec env ZTNA_DEB_TEST_NS=1 unshare --mount --propagation private bash "$0" "$@"
fi

ARCH=$(dpkg --print-architecture)
deb_of() {
	local f
	for f in "$DEBS/$1"_*_"$2".deb; do
		[ -f "$f" ] && echo "$f" && return 0
	done
	return 1
}
ZTNAD_DEB=$(deb_of ztnad "$ARCH") || { echo "test-deb: no ztnad package in $DEBS (make deb)" >&2; exit 1; }
NSS_DEB=$(deb_of libnss-ztna "$ARCH") || { echo "test-deb: no libnss-ztna package in $DEBS (make deb)" >&2; exit 1; }
SELINUX_DEB=$(deb_of ztna-selinux all) || SELINUX_DEB=

start=$(date +%s)
mkdir -p "$CACHE/archives/partial"
# The real path: findmnt reports mounts by it, and cleanup() compares.
work=$(cd "$(mktemp -d "$CACHE/run.XXXXXX")" && pwd -P)
root=$work/root
mkdir "$root"
daemon_pid=
. "$SRC/tests/lib.sh"

note() {
	echo "# $*"
}

cleanup() {
	if [ -n "$daemon_pid" ]; then
		kill "$daemon_pid" 2>/dev/null || true
		wait "$daemon_pid" 2>/dev/null || true
	fi
	# Unmount before removing anything: rm must never reach /dev or /proc.
	local m
	for m in $(findmnt -rn -o TARGET | grep "^$root/" | sort -r); do
		umount -l "$m" 2>/dev/null || true
	done
	m=$(findmnt -rn -o TARGET)
	if grep -q "^$root/" <<<"$m"; then
		echo "test-deb: mounts left under $root; not removing it" >&2
		return
	fi
	rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

in_root() {
	chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 \
		DEBIAN_FRONTEND=noninteractive "$@"
}
apt_root() {
	in_root apt-get -q -y -o Dpkg::Use-Pty=0 "$@" >>"$work/apt.log" 2>&1
}
hosts_line() {
	# The hosts line with its spacing normalised.
	awk '/^hosts:/ { $1 = "hosts:"; print }' "$root/etc/nsswitch.conf"
}

# ---- the root ------------------------------------------------------------
base=$CACHE/$SUITE-minbase-$ARCH.tar.gz
if [ ! -s "$base" ]; then
	mirror=${ZTNA_DEB_MIRROR:-$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
		awk -v s="$SUITE" '$2 == s { print $1; exit }')}
	note "bootstrapping $SUITE (minbase) once into $base"
	boot=$work/boot
	debootstrap --variant=minbase "$SUITE" "$boot" ${mirror:+"$mirror"} >"$work/debootstrap.log" 2>&1 || {
		tail -20 "$work/debootstrap.log"
		echo "test-deb: debootstrap failed" >&2
		exit 1
	}
	for m in $(findmnt -rn -o TARGET | grep "^$boot/" | sort -r); do
		umount -l "$m"
	done
	rm -f "$boot/var/cache/apt/archives/"*.deb
	tar -C "$boot" --numeric-owner -czf "$base.tmp" .
	mv "$base.tmp" "$base"
	rm -rf --one-file-system "$boot"
fi
tar -C "$root" --numeric-owner -xzf "$base"

mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
# A minimal /dev: a few device nodes bound from the host, nothing else.
mount -t tmpfs -o mode=0755,nosuid,noexec tmpfs "$root/dev"
for n in null zero full random urandom tty; do
	touch "$root/dev/$n"
	mount --bind "/dev/$n" "$root/dev/$n"
done
ln -s /proc/self/fd "$root/dev/fd"
ln -s /proc/self/fd/0 "$root/dev/stdin"
ln -s /proc/self/fd/1 "$root/dev/stdout"
ln -s /proc/self/fd/2 "$root/dev/stderr"
mkdir "$root/dev/pts" "$root/dev/shm"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$root/dev/shm"
# /run is a tmpfs, as on a booted system (the store lives there).
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$root/run"
mount --bind "$CACHE/archives" "$root/var/cache/apt/archives"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# No service is started from a maintainer script in here.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 0755 "$root/usr/sbin/policy-rc.d"
mkdir "$root/tmp/debs"
cp "$ZTNAD_DEB" "$NSS_DEB" ${SELINUX_DEB:+"$SELINUX_DEB"} "$root/tmp/debs/"
ztnad_deb=/tmp/debs/$(basename "$ZTNAD_DEB")
nss_deb=/tmp/debs/$(basename "$NSS_DEB")

apt_root update || { tail -20 "$work/apt.log"; echo "test-deb: apt-get update failed" >&2; exit 1; }
cp "$root/etc/nsswitch.conf" "$work/nsswitch.orig"
note "nsswitch.conf before: $(hosts_line)"

# ---- install -------------------------------------------------------------
if apt_root install --no-install-recommends "$ztnad_deb" "$nss_deb"; then
	ok "apt installs ztnad and libnss-ztna"
else
	tail -30 "$work/apt.log"
	fail "apt installs ztnad and libnss-ztna"
	exit 1
fi

line=$(hosts_line)
[ "$line" = "hosts: files ztna [!UNAVAIL=return] dns" ] &&
	ok "nsswitch.conf: $line" || fail "nsswitch.conf hosts line is '$line'"
[ ! -e "$root/etc/nsswitch.conf.nss.libnss-ztna-will-install" ] &&
	ok "no dh-nss flag file left behind" || fail "dh-nss flag file left in /etc"

multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
[ -f "$root/usr/lib/$multiarch/libnss_ztna.so.2" ] &&
	ok "module at /usr/lib/$multiarch/libnss_ztna.so.2" || fail "module not in /usr/lib/$multiarch"

pw=$(in_root getent passwd ztna || true)
uid=$(echo "$pw" | cut -d: -f3)
[ -n "$uid" ] && [ "$uid" -lt 1000 ] && [ "$(echo "$pw" | cut -d: -f7)" = /usr/sbin/nologin ] &&
	ok "system account: $pw" || fail "no ztna system account: '$pw'"
in_root getent group ztna >/dev/null && ok "group ztna exists" || fail "no group ztna"

# Outputs are captured before grep -q looks at them: grep ending a pipe
# early would fail it (pipefail).
out=$(in_root dpkg-query -W -f '${Conffiles}\n' ztnad)
[ -f "$root/etc/ztna/ztnad.conf" ] && grep -q '^ /etc/ztna/ztnad.conf ' <<<"$out" &&
	ok "/etc/ztna/ztnad.conf is in place and a conffile" || fail "/etc/ztna/ztnad.conf missing or not a conffile"
in_root ztnad --check-config >"$work/check-config.log" 2>&1 &&
	ok "ztnad --check-config accepts the shipped configuration" ||
	{ cat "$work/check-config.log"; fail "ztnad --check-config rejects the shipped configuration"; }
gid=$(in_root getent group ztna | cut -d: -f3)
st=$(stat -c '%u:%g %a' "$root/var/lib/ztna" 2>/dev/null || true)
[ "$st" = "$uid:$gid 750" ] && ok "/var/lib/ztna from tmpfiles.d: $st" || fail "/var/lib/ztna is '$st'"
st=$(stat -c '%u:%g %a' "$root/var/cache/ztna" 2>/dev/null || true)
[ "$st" = "$uid:$gid 755" ] && ok "/var/cache/ztna from tmpfiles.d: $st" || fail "/var/cache/ztna is '$st'"
[ -L "$root/etc/systemd/system/multi-user.target.wants/ztnad.service" ] &&
	ok "ztnad.service enabled" || fail "ztnad.service not enabled"
[ ! -e "$root/etc/systemd/system/sockets.target.wants/ztnad.socket" ] &&
	ok "ztnad.socket left disabled" || fail "ztnad.socket was enabled"

# ---- the daemon, started by hand -----------------------------------------
# /run/ztna as RuntimeDirectory= makes it: owned by the service's account, 0755.
install -d -m 0755 -o "$uid" -g "$gid" "$root/run/ztna"
unshare --net sh -c 'ip link set lo up && exec "$@"' sh \
	chroot "$root" setpriv --reuid=ztna --regid=ztna --init-groups \
	--inh-caps=-all,+net_bind_service --ambient-caps=+net_bind_service \
	--bounding-set=-all,+net_bind_service --no-new-privs \
	/usr/sbin/ztnad --peers /usr/share/doc/ztnad/examples/tailnet.json \
	>"$work/ztnad.log" 2>&1 &
daemon_pid=$!
for _ in $(seq 100); do
	[ -s "$root/run/ztna/records" ] && [ -S "$root/run/ztna/control.sock" ] && break
	kill -0 "$daemon_pid" 2>/dev/null || break
	sleep 0.1
done
if [ -s "$root/run/ztna/records" ]; then
	st=$(stat -c '%u %a' "$root/run/ztna/records")
	[ "$st" = "$uid 644" ] && ok "ztnad published /run/ztna/records (uid and mode $st)" ||
		fail "the store's uid and mode are $st"
else
	cat "$work/ztnad.log"
	fail "ztnad did not publish the store"
fi

out=$(in_root getent hosts Win-A || true)
grep -qi ' win-a\.yourorg\.zt\.net ' <<<"$out" &&
	ok "getent hosts Win-A -> $out" || fail "getent hosts Win-A gave '$out'"
out=$(in_root getent ahostsv4 win-a.yourorg.zt.net | awk 'NR == 1 { print $1 }' || true)
[ "$out" = 100.64.0.1 ] && ok "getent ahostsv4 win-a.yourorg.zt.net -> $out" || fail "ahostsv4 gave '$out'"
out=$(in_root getent hosts 100.64.0.1 || true)
grep -qi 'win-a' <<<"$out" && ok "reverse: getent hosts 100.64.0.1 -> $out" || fail "reverse gave '$out'"
# Answered by the module (NOTFOUND, final): never handed on to dns.
rc=0
in_root getent hosts nosuchpeer.yourorg.zt.net >/dev/null || rc=$?
[ "$rc" -eq 2 ] && ok "unknown tailnet name: not found (exit 2)" || fail "unknown tailnet name: exit $rc"
out=$(in_root ztna dns list 2>&1 || true)
grep -q 'Win-A' <<<"$out" && ok "ztna dns list (control socket) lists Win-A" || fail "ztna dns list: $out"

kill "$daemon_pid"
rc=0
wait "$daemon_pid" || rc=$?
daemon_pid=
[ "$rc" -eq 0 ] && ok "ztnad exits 0 on SIGTERM" || fail "ztnad exited $rc on SIGTERM"
out=$(in_root getent hosts Win-A || true)
[ -n "$out" ] && ok "Win-A still resolves with ztnad stopped" || fail "Win-A gone with ztnad stopped"

# ---- the units -----------------------------------------------------------
units="/lib/systemd/system/ztnad.service /lib/systemd/system/ztnad.socket"
# --man=no: the root has no man-db; the pages are checked against the
# packages just below.
# shellcheck disable=SC2086
if in_root systemd-analyze verify --man=no $units >"$work/verify.log" 2>&1 && [ ! -s "$work/verify.log" ]; then
	ok "systemd-analyze verify: the installed units are clean"
else
	cat "$work/verify.log"
	fail "systemd-analyze verify"
fi
for page in $(sed -n 's/^Documentation=//p' "$root/lib/systemd/system/ztnad.service" | tr ' ' '\n' | sed -n 's/^man://p'); do
	name=${page%(*}
	sect=${page#*(}
	sect=${sect%)}
	[ -f "$root/usr/share/man/man$sect/$name.$sect.gz" ] &&
		ok "Documentation=man:$page is installed" || fail "Documentation=man:$page is not installed"
done
in_root systemd-analyze security --offline=true --no-pager /lib/systemd/system/ztnad.service \
	>"$work/security.log" 2>&1 || true
score=$(sed -n 's/.*Overall exposure level for ztnad.service: \([0-9.]*\).*/\1/p' "$work/security.log")
if [ -n "$score" ] && awk -v s="$score" 'BEGIN { exit !(s <= 2.0) }'; then
	ok "systemd-analyze security --offline=true: exposure $score (at most 2.0)"
else
	tail -5 "$work/security.log"
	fail "systemd-analyze security: exposure '${score:-none}'"
fi

# ---- reinstall: nothing changes ------------------------------------------
snapshot() {
	{
		sha256sum "$root/etc/nsswitch.conf" "$root/etc/ztna/ztnad.conf"
		grep '^ztna:' "$root/etc/passwd" "$root/etc/group"
		stat -c '%n %U %G %a' "$root/var/lib/ztna"
		in_root dpkg -L ztnad libnss-ztna | sort
		find "$root/etc/systemd" -name 'ztnad*' | sort
	} 2>&1
}
snapshot >"$work/before-reinstall"
if apt_root install --reinstall --no-install-recommends "$ztnad_deb" "$nss_deb"; then
	snapshot >"$work/after-reinstall"
	cmp -s "$work/before-reinstall" "$work/after-reinstall" &&
		ok "reinstall changes nothing (nsswitch.conf, config, account, files, units)" ||
		{ diff "$work/before-reinstall" "$work/after-reinstall"; fail "reinstall changed something"; }
else
	tail -20 "$work/apt.log"
	fail "apt reinstall"
fi

# ---- remove, then purge --------------------------------------------------
dpkg-deb -c "$ZTNAD_DEB" >"$work/contents"
dpkg-deb -c "$NSS_DEB" >>"$work/contents"
awk '$1 !~ /^d/ { sub(/^\./, "", $6); print $6 }' "$work/contents" >"$work/files"

apt_root remove ztnad libnss-ztna && ok "apt removes both" || fail "apt remove"
cmp "$work/nsswitch.orig" "$root/etc/nsswitch.conf" &&
	ok "after remove: nsswitch.conf byte-identical to before" || fail "after remove: nsswitch.conf differs"
[ ! -e "$root/run/ztna" ] && ok "after remove: /run/ztna is gone" || fail "after remove: /run/ztna left"
[ -f "$root/etc/ztna/ztnad.conf" ] && ok "after remove: the conffile stays until purge" ||
	fail "after remove: the conffile is gone"
[ -d "$root/var/cache/ztna" ] && ok "after remove: the store's copy stays until purge" ||
	fail "after remove: /var/cache/ztna is gone"

apt_root purge ztnad libnss-ztna && ok "apt purges both" || fail "apt purge"
cmp "$work/nsswitch.orig" "$root/etc/nsswitch.conf" &&
	ok "after purge: nsswitch.conf byte-identical to before" || fail "after purge: nsswitch.conf differs"
for p in ztnad libnss-ztna; do
	st=$(in_root dpkg-query -W -f '${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	[ -z "$st" ] || [ "$st" = "un " ] && ok "dpkg knows nothing of $p" || fail "dpkg: $p is '$st'"
done
left=
while read -r f; do
	[ -e "$root$f" ] || [ -L "$root$f" ] && left="$left $f"
done <"$work/files"
[ -z "$left" ] && ok "no file of the packages left" || fail "left behind:$left"
for d in /etc/ztna /var/lib/ztna /var/cache/ztna /run/ztna; do
	[ ! -e "$root$d" ] && ok "no $d" || fail "$d left behind"
done
left=$(find "$root/etc/systemd" "$root/var/lib/systemd" -name '*ztna*' 2>/dev/null || true)
[ -z "$left" ] && ok "no unit links or state left" || fail "left behind: $left"
in_root getent passwd ztna >/dev/null && note "the system account ztna is kept after purge (Debian's practice)"

# ---- nsswitch.conf with myhostname and resolve, and with mdns ------------
variant() {
	local before=$1 want=$2
	sed -i "s/^hosts:.*/$before/" "$root/etc/nsswitch.conf"
	cp "$root/etc/nsswitch.conf" "$work/nsswitch.variant"
	if ! apt_root install --no-install-recommends "$nss_deb"; then
		tail -20 "$work/apt.log"
		fail "apt install libnss-ztna ($before)"
		return
	fi
	line=$(hosts_line)
	[ "$line" = "$want" ] && ok "'$before' -> '$line'" || fail "'$before' -> '$line', want '$want'"
	apt_root purge libnss-ztna || fail "apt purge libnss-ztna"
	cmp -s "$work/nsswitch.variant" "$root/etc/nsswitch.conf" &&
		ok "purged: '$before' restored byte for byte" || fail "purged: nsswitch.conf differs ($(hosts_line))"
}
variant 'hosts:          files myhostname resolve [!UNAVAIL=return] dns' \
	'hosts: files myhostname ztna [!UNAVAIL=return] resolve [!UNAVAIL=return] dns'
variant 'hosts:          files mdns4_minimal [NOTFOUND=return] dns' \
	'hosts: files mdns4_minimal [NOTFOUND=return] ztna [!UNAVAIL=return] dns'
cp "$work/nsswitch.orig" "$root/etc/nsswitch.conf"

# ---- ztna-selinux ----------------------------------------------------------
if [ -n "$SELINUX_DEB" ]; then
	if apt_root install --no-install-recommends "/tmp/debs/$(basename "$SELINUX_DEB")"; then
		ok "apt installs ztna-selinux (and the reference policy)"
		out=$(in_root semodule -l)
		grep -qx ztnad <<<"$out" && ok "the ztnad module is in the policy store" ||
			fail "ztnad is not in the policy store"
		apt_root purge ztna-selinux && out=$(in_root semodule -l) && ! grep -qx ztnad <<<"$out" &&
			ok "purge takes the module out again" || fail "ztnad still in the store after purge"
	else
		tail -20 "$work/apt.log"
		fail "apt install ztna-selinux"
	fi
else
	skip "no ztna-selinux package in $DEBS (built with the pkg.ztna.noselinux profile?): its install is not tested"
fi

echo "test-deb: $(($(date +%s) - start)) s"
finish
