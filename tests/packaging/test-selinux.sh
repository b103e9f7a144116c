#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The SELinux policy module as it ships in ztna-selinux, checked in a
# policy built with it; nothing is loaded into a kernel.
#
#   - The module from the built package goes into a copy of this machine's
#     policy store (Debian's reference policy, selinux-policy-default) in
#     a temporary root, with "semodule -p", as the package's postinst
#     would install it; this machine's own store is never written.
#   - sesearch/seinfo on the resulting policy: the rules of ztnad_t (its
#     ports, files and socket), of ztna_t (the control socket), the domain
#     transitions, and that every domain that resolves names
#     (nsswitch_domain) may read and map the store and has nothing else on
#     ztna's types.
#   - A client module written against ztnad.if (ztnad_read_store,
#     ztnad_stream_connect) builds and gets exactly that access.
#   - ztnad.fc against the packages: every path in the built .debs gets
#     the type it should (ours only for the daemon, the command, the
#     configuration and the units; the NSS module stays lib_t), the
#     runtime and state paths too, and every .fc line labels something
#     the packages or the daemon make.
#
# What this cannot show: enforcement. This machine's kernel runs without
# SELinux, so no access is ever granted or denied by the policy here;
# whether ztnad really runs with these rules and no denials needs a host
# booted with SELinux enforcing.
#
# Needs: selinux-policy-dev (builds the module), selinux-policy-default
# (the base policy store), policycoreutils (semodule), setools (sesearch,
# seinfo), selinux-utils (matchpathcon), and what "make deb" needs
# (dpkg-dev, debhelper, dh-nss). The packages in build/deb are (re)built
# with "make deb" when missing or older than the policy or packaging.
# Usage: bash tests/packaging/test-selinux.sh
# "CHECK && ok || fail" is meant: ok only prints.
# shellcheck disable=SC2015
set -euo pipefail

cd "$(dirname "$0")/../.."
SRC=$(pwd)
DEBS=$SRC/build/deb
STORE=/var/lib/selinux/default
DEVEL=/usr/share/selinux/devel/Makefile

for tool in semodule sesearch seinfo matchpathcon dpkg-buildpackage; do
	if ! command -v "$tool" >/dev/null; then
		echo "test-selinux: $tool is missing" >&2
		exit 1
	fi
done
for f in "$STORE" "$DEVEL" /etc/selinux/default/contexts/files/file_contexts.subs_dist; do
	if [ ! -e "$f" ]; then
		echo "test-selinux: $f is missing (selinux-policy-default, selinux-policy-dev)" >&2
		exit 1
	fi
done

ARCH=$(dpkg --print-architecture)
newest_deb() {
	local l
	l=$(ls -t "$DEBS/$1"_*_"$2".deb 2>/dev/null) || true
	echo "${l%%$'\n'*}"
}
sel_deb=$(newest_deb ztna-selinux all)
# Sources newer than the package; not what a build leaves in debian/.
stale() {
	[ -n "$(find Makefile selinux debian/source debian -maxdepth 1 -type f \
		! -name files ! -name '*.substvars' ! -name '*debhelper*' -newer "$sel_deb" -print)" ]
}
if [ -z "$sel_deb" ] || stale; then
	echo "# building the packages (make deb)"
	if ! make -s deb LINTIAN=true >"$SRC/build/test-selinux-deb.log" 2>&1; then
		tail -30 "$SRC/build/test-selinux-deb.log"
		echo "test-selinux: make deb failed" >&2
		exit 1
	fi
	sel_deb=$(newest_deb ztna-selinux all)
fi
ztnad_deb=$(newest_deb ztnad "$ARCH")
nss_deb=$(newest_deb libnss-ztna "$ARCH")

tmp=$(mktemp -d)
cleanup() {
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

passed=0
failed=0
ok() {
	echo "ok - $*"
	passed=$((passed + 1))
}
fail() {
	echo "FAIL - $*"
	failed=$((failed + 1))
}

# ---- the module and a client of its interfaces ----------------------------
dpkg-deb -x "$sel_deb" "$tmp/pkg"
pp=$tmp/pkg/usr/share/selinux/packages/ztnad.pp
iface=$tmp/pkg/usr/share/selinux/devel/include/services/ztnad.if
[ -s "$pp" ] && [ -s "$iface" ] && ok "ztna-selinux ships ztnad.pp and ztnad.if" ||
	fail "ztna-selinux lacks ztnad.pp or ztnad.if"

# Another policy's view: a daemon of its own that reads the store and
# talks to ztnad, through the interfaces and nothing else. The headers are
# the development files with ztnad.if where the package puts it.
mkdir "$tmp/client"
cp -as "$(dirname "$DEVEL")/include" "$tmp/headers"
cp "$iface" "$tmp/headers/services/ztnad.if"
cat >"$tmp/client/ztnadclient.te" <<'EOF'
policy_module(ztnadclient, 1.0)
type ztnadclient_t;
type ztnadclient_exec_t;
init_daemon_domain(ztnadclient_t, ztnadclient_exec_t)
ztnad_read_store(ztnadclient_t)
ztnad_stream_connect(ztnadclient_t)
EOF
: >"$tmp/client/ztnadclient.fc"
: >"$tmp/client/ztnadclient.if"
if make -s -C "$tmp/client" -f "$DEVEL" HEADERDIR="$tmp/headers" ztnadclient.pp >"$tmp/client.log" 2>&1; then
	ok "a module using ztnad_read_store and ztnad_stream_connect builds"
else
	cat "$tmp/client.log"
	fail "a module using ztnad.if does not build"
fi

# ---- the policy with the module, in a temporary root ----------------------
root=$tmp/root
mkdir -p "$root/var/lib/selinux" "$root/etc/selinux/default"
cp -a "$STORE" "$root/var/lib/selinux/"
cp -a /etc/selinux/semanage.conf "$root/etc/selinux/" 2>/dev/null || true
cp -a /etc/selinux/default/contexts "$root/etc/selinux/default/"
modules=(-i "$pp")
[ -s "$tmp/client/ztnadclient.pp" ] && modules+=(-i "$tmp/client/ztnadclient.pp")
if semodule -p "$root" -s default -X 200 "${modules[@]}" >"$tmp/semodule.log" 2>&1; then
	ok "semodule installs the module into a copy of the reference policy"
else
	cat "$tmp/semodule.log"
	fail "semodule rejects the module"
	echo "test-selinux: $passed passed, $failed failed"
	exit 1
fi
P=$(ls "$root/etc/selinux/default/policy/policy."*)
FC=$root/etc/selinux/default/contexts/files/file_contexts

# rules ARGS...: the allow/type_transition lines sesearch prints, sorted.
rules() {
	sesearch "$@" "$P" 2>/dev/null | sed 's/^ *//' | sort
}
# has DESCRIPTION SESEARCH-ARGS...: at least one rule matches.
has() {
	local what=$1
	shift
	[ -n "$(rules "$@")" ] && ok "$what" || fail "$what: no rule for sesearch $*"
}
# hasnt DESCRIPTION SESEARCH-ARGS...: no rule matches.
hasnt() {
	local what=$1 out
	shift
	out=$(rules "$@")
	[ -z "$out" ] && ok "$what" || fail "$what: $out"
}

OURS="ztnad_t ztna_t ztnad_exec_t ztna_exec_t ztnad_unit_t ztnad_conf_t ztnad_var_lib_t
ztnad_runtime_t ztnad_store_t ztnad_control_sock_t ztnad_cache_t ztnad_store_copy_t"
for t in $OURS; do
	out=$(seinfo -t "$t" "$P")
	grep -q "^ *$t\$" <<<"$out" || fail "type $t is not in the policy"
done

# ---- every domain that resolves names --------------------------------------
# What the module grants the attribute itself (-ds: rules written for
# nsswitch_domain), and then what confined domains that resolve names end
# up with through every attribute they hold (no -ds: a rule for a broader
# attribute such as domain or file_type counts too). ztnad_t and the
# unconfined domains are in nsswitch_domain as well, so the attribute
# cannot be searched indirectly itself; these are ordinary members.
CLIENTS="httpd_t sshd_t user_t"
want='allow nsswitch_domain ztnad_runtime_t:dir { getattr open read search };
allow nsswitch_domain ztnad_store_t:file { getattr map open read };
allow nsswitch_domain ztnad_cache_t:dir { getattr open read search };
allow nsswitch_domain ztnad_store_copy_t:file { getattr map open read };'
got=$(for t in $OURS; do rules -A -s nsswitch_domain -ds -t "$t"; done)
[ "$got" = "$want" ] && ok "nsswitch_domain: read and map the store and its copy, search their directories, nothing else of ours" ||
	fail "nsswitch_domain on ztna's types is:
$got"
# through_attrs DOMAIN: every allow rule DOMAIN gets on ztna's files, by
# any attribute (filesystem getattr on file_type, which every domain has
# on every file system, aside). ztnad_t and ztna_t are processes (domain
# rules such as reading /proc apply to them) and the exec types programs
# (application_exec_type): their rules are checked by name below.
FILES="ztnad_conf_t ztnad_var_lib_t ztnad_runtime_t ztnad_store_t ztnad_control_sock_t ztnad_cache_t ztnad_store_copy_t"
through_attrs() {
	local t
	for t in $FILES; do rules -A -s "$1" -t "$t"; done | grep -v ':filesystem ' || true
}
for d in $CLIENTS; do
	got=$(through_attrs "$d")
	[ "$got" = "$want" ] && ok "$d, through every attribute it holds: the same read-only rules and nothing more" ||
		fail "$d on ztna's types, through its attributes, is:
$got"
	for t in $OURS; do
		out=$(rules -T -s "$d" -t "$t")
		[ -z "$out" ] || fail "$d has a type rule on $t: $out"
	done
	hasnt "$d may not write the store" -A -s "$d" -t ztnad_store_t -p write,append,create,unlink,rename,setattr
	hasnt "$d may not write the copy" -A -s "$d" -t ztnad_store_copy_t -p write,append,create,unlink,rename,setattr
	hasnt "$d may not write in /var/cache/ztna" -A -s "$d" -t ztnad_cache_t -p write,add_name,remove_name
	hasnt "$d may not write in /run/ztna" -A -s "$d" -t ztnad_runtime_t -p write,add_name,remove_name
done

# ---- ztnad_t -----------------------------------------------------------------
has "init_t starts ztnad in ztnad_t" -T -s init_t -t ztnad_exec_t -c process -D ztnad_t
has "ztnad may bind the DNS port (tcp)" -A -s ztnad_t -t dns_port_t -c tcp_socket -p name_bind
has "ztnad may bind the DNS port (udp)" -A -s ztnad_t -t dns_port_t -c udp_socket -p name_bind
has "ztnad may bind an unreserved port for 15353 (tcp)" -A -s ztnad_t -t unreserved_port_t -c tcp_socket -p name_bind
has "ztnad may bind an unreserved port for 15353 (udp)" -A -s ztnad_t -t unreserved_port_t -c udp_socket -p name_bind
has "ztnad may connect to DNS ports (853 DoT, 53 fallback)" -A -s ztnad_t -t dns_port_t -c tcp_socket -p name_connect
has "ztnad may connect to HTTPS (443)" -A -s ztnad_t -t http_port_t -c tcp_socket -p name_connect
hasnt "ztnad may not bind the HTTP port" -A -s ztnad_t -t http_port_t -c tcp_socket -p name_bind
# Output is captured first throughout: grep -q ending a pipe early would
# fail it (pipefail).
portcon() {
	local out
	out=$(seinfo --portcon="$2" "$P")
	grep -q "portcon $1 $2 .*:$3:" <<<"$out" && ok "$1 port $2 is $3" || fail "$1 port $2 is not $3"
}
portcon tcp 53 dns_port_t
portcon udp 53 dns_port_t
portcon tcp 853 dns_port_t
portcon tcp 443 http_port_t
out=$(seinfo --portcon=15353 "$P")
grep -q 'portcon tcp 1024-65535 .*:unreserved_port_t:' <<<"$out" &&
	ok "tcp port 15353 is unreserved_port_t" || fail "tcp port 15353 is not unreserved_port_t"
# Every capability in any rule, conditional ones included.
caps=$({
	rules -A -s ztnad_t -t ztnad_t -c capability
	rules -A -s ztnad_t -t ztnad_t -c capability2
} | sed 's/.*:capability2* \({ \)*\([^};]*\).*/\2/' | tr ' ' '\n' | sed '/^$/d' | sort -u | tr '\n' ' ')
[ "$caps" = "net_bind_service " ] &&
	ok "ztnad's only capability is net_bind_service" || fail "ztnad's capabilities: $caps"
has "ztnad reads its configuration" -A -s ztnad_t -t ztnad_conf_t -c file -p read,open
hasnt "ztnad may not change its configuration" -A -s ztnad_t -t ztnad_conf_t -c file -p write,append,create,unlink,rename,setattr
has "ztnad writes its state" -A -s ztnad_t -t ztnad_var_lib_t -c file -p create,write,rename,unlink
has "ztnad writes the store" -A -s ztnad_t -t ztnad_store_t -c file -p create,write,rename,unlink,map
has "files ztnad makes in /run/ztna are the store" -T -s ztnad_t -t ztnad_runtime_t -c file -D ztnad_store_t
has "its lock file stays ztnad_runtime_t" -T -s ztnad_t -t ztnad_runtime_t -c file -D ztnad_runtime_t
has "ztnad writes the store's copy" -A -s ztnad_t -t ztnad_store_copy_t -c file -p create,write,rename,unlink
has "files ztnad makes in /var/cache/ztna are the copy" -T -s ztnad_t -t ztnad_cache_t -c file -D ztnad_store_copy_t
has "its saver's lock file stays ztnad_cache_t" -T -s ztnad_t -t ztnad_cache_t -c file -D ztnad_cache_t
has "ztnad may map the copy (a cold start answers from it)" -A -s ztnad_t -t ztnad_store_copy_t -c file -p read,map
has "ztnad makes the control socket" -A -s ztnad_t -t ztnad_control_sock_t -c sock_file -p create,unlink,setattr
has "sockets ztnad makes in /run/ztna are the control socket" -T -s ztnad_t -t ztnad_runtime_t -c sock_file -D ztnad_control_sock_t
hasnt "ztnad may not write /etc" -A -s ztnad_t -t etc_t -c file -p write,create

# ---- the ztna command ------------------------------------------------------
has "ztna may connect to ztnad" -A -s ztna_t -t ztnad_t -c unix_stream_socket -p connectto
has "ztna may write to the control socket" -A -s ztna_t -t ztnad_control_sock_t -c sock_file -p write
has "ztna may read the store" -A -s ztna_t -t ztnad_store_t -c file -p read,map
has "ztna may read the store's copy" -A -s ztna_t -t ztnad_store_copy_t -c file -p read,map
hasnt "ztna may not change the store" -A -s ztna_t -t ztnad_store_t -c file -p write,append,create,unlink
for d in unconfined sysadm staff; do
	has "${d}_t runs ztna in ztna_t" -T -s "${d}_t" -t ztna_exec_t -c process -D ztna_t
	out=$(seinfo -x -r "${d}_r" "$P")
	grep -qw ztna_t <<<"$out" && ok "role ${d}_r may hold ztna_t" || fail "role ${d}_r lacks ztna_t"
done

# ---- the interfaces, as another module gets them ---------------------------
got=$(rules -A -s ztnadclient_t -t ztnad_store_t | grep -v ':filesystem ' || true)
[ "$got" = "allow ztnadclient_t ztnad_store_t:file { getattr map open read };" ] &&
	ok "ztnad_read_store: read and map the store" || fail "ztnad_read_store gives: $got"
got=$(rules -A -s ztnadclient_t -t ztnad_store_copy_t | grep -v ':filesystem ' || true)
[ "$got" = "allow ztnadclient_t ztnad_store_copy_t:file { getattr map open read };" ] &&
	ok "ztnad_read_store: read and map the copy" || fail "ztnad_read_store gives on the copy: $got"
has "ztnad_stream_connect: connect to ztnad" -A -s ztnadclient_t -t ztnad_t -c unix_stream_socket -p connectto
has "ztnad_stream_connect: write the control socket" -A -s ztnadclient_t -t ztnad_control_sock_t -c sock_file -p write

# ---- ztnad.fc against the packages ------------------------------------------
# Every path the packages install, by its dpkg -c type letter.
for deb in "$ztnad_deb" "$nss_deb"; do
	dpkg-deb -c "$deb"
done | awk '{ p = $6; sub(/^\./, "", p); if (p != "/" && p != "") print substr($1, 1, 1), p }' | sort -u >"$tmp/paths"
# Where the daemon and systemd make more (see ztnad.service and daemon.h).
cat >>"$tmp/paths" <<'EOF'
d /run/ztna
- /run/ztna/records
- /run/ztna/records.lock
- /run/ztna/records.Zq3x9A
s /run/ztna/control.sock
d /var/lib/ztna
- /var/lib/ztna/peers.json
d /var/cache/ztna
- /var/cache/ztna/records
- /var/cache/ztna/records.lock
- /var/cache/ztna/records.Zq3x9A
EOF

label() {
	local mode
	case $1 in
	d) mode=dir ;;
	l) mode=lnk_file ;;
	s) mode=sock_file ;;
	*) mode=file ;;
	esac
	matchpathcon -f "$FC" -m "$mode" "$2" | awk '{ split($2, c, ":"); print c[3] }'
}
expected() {
	case $1 in
	/usr/sbin/ztnad) echo ztnad_exec_t ;;
	/usr/bin/ztna) echo ztna_exec_t ;;
	/etc/ztna | /etc/ztna/*) echo ztnad_conf_t ;;
	/lib/systemd/system/ztnad.service | /lib/systemd/system/ztnad.socket) echo ztnad_unit_t ;;
	/var/lib/ztna | /var/lib/ztna/*) echo ztnad_var_lib_t ;;
	/var/cache/ztna/records | /var/cache/ztna/records.??????) echo ztnad_store_copy_t ;;
	/var/cache/ztna | /var/cache/ztna/*) echo ztnad_cache_t ;;
	/run/ztna/records | /run/ztna/records.??????) echo ztnad_store_t ;;
	/run/ztna/control.sock) echo ztnad_control_sock_t ;;
	/run/ztna | /run/ztna/*) echo ztnad_runtime_t ;;
	*/libnss_ztna.so.2) echo lib_t ;;
	*) echo "not ours" ;;
	esac
}
bad=0
while read -r kind path; do
	got=$(label "$kind" "$path")
	want=$(expected "$path")
	if [ "$want" = "not ours" ]; then
		case $got in
		ztna*) echo "  $path: $got, should not be one of ours" && bad=$((bad + 1)) ;;
		esac
	elif [ "$got" != "$want" ]; then
		echo "  $path: $got, want $want"
		bad=$((bad + 1))
	fi
done <"$tmp/paths"
[ "$bad" -eq 0 ] && ok "every installed, runtime and state path gets its type ($(wc -l <"$tmp/paths") paths)" ||
	fail "$bad paths labelled wrongly"

# Every .fc line labels something the packages or the daemon make. The
# .fc is written with Debian's canonical paths (/usr/lib for /lib); the
# packaged paths are mapped the same way first.
awk 'NR == FNR { if ($0 !~ /^#/ && NF == 2) alias[$1] = $2; next }
     { p = $2; for (a in alias) if (index(p, a "/") == 1) { p = alias[a] substr(p, length(a) + 1); break }; print p }' \
	/etc/selinux/default/contexts/files/file_contexts.subs_dist "$tmp/paths" >"$tmp/canonical"
unused=
while read -r re _; do
	case $re in '' | '#'*) continue ;; esac
	grep -Eq "^($re)\$" "$tmp/canonical" || unused="$unused $re"
done <selinux/ztnad.fc
[ -z "$unused" ] && ok "every line of ztnad.fc matches a path the packages or the daemon make" ||
	fail "ztnad.fc lines that match nothing:$unused"

# ---- the checks through attributes can fail --------------------------------
# A deliberate break: a module that lets every domain (the broadest
# attribute) write the store. The rule names neither nsswitch_domain nor a
# client; the searches through attributes above must see it.
mkdir "$tmp/breaker"
cat >"$tmp/breaker/ztnabreak.te" <<'EOF2'
policy_module(ztnabreak, 1.0)
gen_require(`
	attribute domain;
	type ztnad_store_t;
')
allow domain ztnad_store_t:file write;
EOF2
: >"$tmp/breaker/ztnabreak.fc"
: >"$tmp/breaker/ztnabreak.if"
if make -s -C "$tmp/breaker" -f "$DEVEL" HEADERDIR="$tmp/headers" ztnabreak.pp >"$tmp/breaker.log" 2>&1 &&
	semodule -p "$root" -s default -X 200 -i "$tmp/breaker/ztnabreak.pp" >>"$tmp/breaker.log" 2>&1; then
	P=$(ls "$root/etc/selinux/default/policy/policy."*)
	got=$(through_attrs httpd_t)
	[ "$got" != "$want" ] && grep -q 'allow domain ztnad_store_t:file write' <<<"$got" &&
		ok "broken on purpose (allow domain ztnad_store_t:file write): the search through httpd_t's attributes sees it" || fail "... the search through attributes misses it: $got"
	out=$(rules -A -s httpd_t -t ztnad_store_t -p write)
	[ -n "$out" ] && ok "... and 'httpd_t may not write the store' would fail" ||
		fail "... the write search misses it"
else
	cat "$tmp/breaker.log"
	fail "the module that breaks the policy on purpose does not build or install"
fi

echo "test-selinux: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
