#!/bin/bash
# SPDX-License-Identifier: MIT
#
# libnss_ztna through the real glibc: getent -s, a C getaddrinfo client
# (tests/harness/gai-client.c) and Python's socket module, against stores published
# with build/publish.
#
# getaddrinfo has no -s: the clients read /etc/nsswitch.conf. So everything
# runs in a private mount and network namespace (unshare) in which our own
# nsswitch.conf, hosts and resolv.conf are bind-mounted over /etc's; the
# host's files are never written, and are checked unchanged at the end. In
# the private network namespace a small DNS server on 127.0.0.1 records
# every query, which shows what reached "dns" and what never did.
#
# Needs root, unshare, python3, and `make all build/publish build/gai-client`.
# Prints "ok - ..." / "not ok - ..." lines; exits nonzero on any failure.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=$root/build
TEST_NAME=test-glibc
# shellcheck source=lib.sh
. "$root/tests/lib.sh"

if [ "${1-}" != --in-namespace ]; then
        B=$build need_built libnss_ztna.so.2 publish gai-client
        # The summary is the namespace's; this only adds the check of /etc.
        rc=0
        host_etc_kept unshare --mount --net --propagation private bash "$0" --in-namespace || rc=$?
        ! failed_yet || rc=1
        exit $rc
fi

# ---- inside the private namespaces ----

rc=0 out='' err=''
# tests/lib.sh's check, and what the last lookup gave when it fails.
check() { # check DESCRIPTION COMMAND...: ok when COMMAND succeeds
        local what=$1
        shift
        if "$@"; then
                ok "$what"
        else
                not_ok "$what"
                # what the last lookup gave, to see why
                echo "#   exit $rc, stdout: $(head -c 300 <<<"$out" | tr '\n' ' ')"
                echo "#   stderr: $(head -c 300 <<<"$err" | tr '\n' ' ')"
        fi
}

temp_dir
tmp=$dir
dns_pid=
cleanup() { stop_pids "$dns_pid"; }

# Our /etc files, over the real ones in this mount namespace only.
own_etc_net "$tmp"

# The DNS server: logs "NAME QTYPE" a query, answers dns-only.example with
# 192.0.2.53 and everything else with NXDOMAIN.
python3 "$root/tests/harness/plain-dns.py" dns-only.example "$tmp/dns.log" "$tmp/dns.ready" &
dns_pid=$!
wait_for 5 test -e "$tmp/dns.ready" || true
check "a DNS server records queries on 127.0.0.1:53" test -e "$tmp/dns.ready"

# ---- helpers ----

STD='files ztna [!UNAVAIL=return] dns' # what the packages write
conf=$STD
store=$tmp/records

use_conf() { # the hosts line, for getent -s and in nsswitch.conf
        conf=$1
        printf 'hosts: %s\n' "$conf" >"$tmp/nsswitch.conf"
}
use_hosts() { # lines of the private /etc/hosts
        printf '%s\n' "127.0.0.1 localhost" "$@" >"$tmp/hosts"
}
dns_clear() { : >"$tmp/dns.log"; }
dns_saw() { grep -qi -- "$1" "$tmp/dns.log"; }

run() { # run COMMAND...: sets $out, $err, $rc
        rc=0
        out=$("$@" 2>"$tmp/stderr") || rc=$?
        err=$(cat "$tmp/stderr")
}
ge() { run env ZTNA_STORE="$store" LD_LIBRARY_PATH="$build" getent -s "hosts: $conf" "$@"; }
gai() { run env ZTNA_STORE="$store" LD_LIBRARY_PATH="$build" "$build/gai-client" "$@"; }
py() { # py NAME: "canon NAME" and "inet ADDR"/"inet6 ADDR" lines, or "error CODE"
        run env ZTNA_STORE="$store" LD_LIBRARY_PATH="$build" python3 -c '
import socket, sys
try:
    res = socket.getaddrinfo(sys.argv[1], None, proto=socket.IPPROTO_TCP, flags=socket.AI_CANONNAME)
except socket.gaierror as e:
    print("error", e.errno)
    sys.exit(1)
print("canon", res[0][3])
for family, _, _, _, sa in res:
    print("inet" if family == socket.AF_INET else "inet6", sa[0])
' "$1"
}
norm() { awk '{$1 = $1; print}'; }        # one space between fields
addrs() { awk '{print $1}' | sort -u; }   # distinct first fields
lines() { printf '%s\n' "$@" | sort -u; } # expected sets
family_lines() { # gai-client's lines for ADDRESS...
        for a in "$@"; do
                case $a in
                *:*) echo "inet6 $a" ;;
                *) echo "inet $a" ;;
                esac
        done | sort
}

# gai-client's exit codes (tests/harness/gai-client.c) and their EAI_* names.
GAI_NONAME=2 GAI_AGAIN=3 GAI_NODATA=5
AI_AGAIN_ERRNO=$(python3 -c 'import socket; print(socket.EAI_AGAIN)')

# ---- the module itself ----

check "the release module needs only libc" \
        test "$(readelf -d "$build/libnss_ztna.so.2" | awk '/NEEDED/ {print $NF}')" = "[libc.so.6]"
# Its symbols first: with nm missing or failing, "no __asan symbol" would
# hold of nothing.
syms=$(nm -D "$build/libnss_ztna.so.2" 2>&1) || true
check "nm -D lists the release module's entry points" grep -q ' T _nss_ztna_gethostbyname4_r$' <<<"$syms"
check "the release module is not sanitized" test -z "$(grep __asan <<<"$syms" || true)"

# ---- the tailnet ----

many_v4=() many_v6=()
for i in $(seq 0 199); do
        many_v4+=("100.64.$((1 + i / 256)).$((i % 256))")
        many_v6+=("$(printf 'fd7a:115c:a1e0::1:%x' "$i")")
done
publish_tailnet() { # publish_tailnet STORE [--down]
        {
                echo "domain yourorg.zt.net"
                echo "range 100.64.0.0/10"
                echo "range fd7a:115c:a1e0::/48"
                echo "peer Win-A ttl=60 100.64.0.1 fd7a:115c:a1e0::1"
                echo "peer Linux-B 100.64.0.2"
                echo "peer Mac-C fd7a:115c:a1e0::3"
                echo "peer Empty-D"
                echo "peer Many ${many_v4[*]} ${many_v6[*]}"
        } | "$build/publish" ${2:+"$2"} "$1"
}
check "publish a store" publish_tailnet "$store"
use_conf "$STD"
use_hosts

# found: every tool, every form of the name
found() { # found NAME CANONICAL ALIAS ADDRESS...
        local name=$1 canon=$2 alias=$3
        shift 3
        local want shown=$*
        want=$(lines "$@")
        if [ $# -gt 4 ]; then shown="$# addresses"; fi
        dns_clear

        ge ahosts "$name"
        check "getent ahosts $name: $shown" test "$rc" = 0 -a "$(addrs <<<"$out")" = "$want"
        check "getent ahosts $name: canonical name $canon" \
                test "$(head -1 <<<"$out" | awk '{print $3}')" = "$canon"
        ge hosts "$name"
        check "getent hosts $name: $canon, alias $alias" \
                test "$rc" = 0 -a "$(norm <<<"$out" | cut -d' ' -f2- | sort -u)" = "$canon $alias"
        gai -c "$name"
        check "gai-client -c $name: canonname $canon and $shown" test "$rc" = 0 -a \
                "$(head -1 <<<"$out")" = "canonname $canon" -a \
                "$(tail -n +2 <<<"$out" | sort)" = "$(family_lines "$@")"
        py "$name"
        check "python getaddrinfo $name" test "$rc" = 0 -a "$(head -1 <<<"$out")" = "canon $canon" -a \
                "$(tail -n +2 <<<"$out" | awk '{print $2}' | sort -u)" = "$want"
        check "$name never reached DNS" test ! -s "$tmp/dns.log"
}

for name in Win-A win-a WIN-A Win-A. Win-A.yourorg.zt.net Win-A.yourorg.zt.net. \
        wIn-A.YourOrg.ZT.net WIN-A.YOURORG.ZT.NET.; do
        found "$name" Win-A.yourorg.zt.net Win-A 100.64.0.1 fd7a:115c:a1e0::1
done

# one family
found Linux-B Linux-B.yourorg.zt.net Linux-B 100.64.0.2
found mac-c.yourorg.zt.net Mac-C.yourorg.zt.net Mac-C fd7a:115c:a1e0::3
gai -f inet6 Linux-B
check "gai-client -f inet6 Linux-B (IPv4 only): EAI_NODATA" test "$rc" = "$GAI_NODATA" -a -z "$out"
gai -f inet Linux-B
check "gai-client -f inet Linux-B: 100.64.0.2" test "$rc" = 0 -a "$out" = "inet 100.64.0.2"
gai -f inet Mac-C
check "gai-client -f inet Mac-C (IPv6 only): EAI_NODATA" test "$rc" = "$GAI_NODATA" -a -z "$out"
gai -f inet6 Mac-C
check "gai-client -f inet6 Mac-C: fd7a:115c:a1e0::3" test "$rc" = 0 -a "$out" = "inet6 fd7a:115c:a1e0::3"
ge ahostsv4 Mac-C
check "getent ahostsv4 Mac-C: not found" test "$rc" = 2 -a -z "$out"
gai Empty-D
check "gai-client Empty-D (no address): EAI_NODATA" test "$rc" = "$GAI_NODATA" -a -z "$out"
ge hosts Empty-D
check "getent hosts Empty-D: not found" test "$rc" = 2 -a -z "$out"

# many addresses: glibc's first buffers are too small, it must grow them
found Many Many.yourorg.zt.net Many "${many_v4[@]}" "${many_v6[@]}"
ge ahostsv4 Many
check "getent ahostsv4 Many: all 200 IPv4 addresses" \
        test "$rc" = 0 -a "$(addrs <<<"$out")" = "$(lines "${many_v4[@]}")"
gai -f inet6 many.yourorg.zt.net
check "gai-client -f inet6 many.yourorg.zt.net: all 200 IPv6 addresses" \
        test "$rc" = 0 -a "$(awk '{print $2}' <<<"$out" | sort)" = "$(lines "${many_v6[@]}")"
ge hosts Many
check "getent hosts Many: 200 IPv6 addresses" test "$rc" = 0 -a "$(wc -l <<<"$out")" = 200

# unknown in the tailnet: authoritative, never files after us nor DNS
for c in "$STD" "ztna [!UNAVAIL=return] files dns"; do
        use_conf "$c"
        if [ "$c" = "$STD" ]; then
                use_hosts
        else
                # files after ztna has them: it must not be asked
                use_hosts "100.64.99.99 nobody.yourorg.zt.net NOBODY.yourorg.zt.net." \
                        "100.64.9.9 leak.example" "fd7a:115c:a1e0::99 leak6.example"
        fi
        dns_clear
        ge hosts nobody.yourorg.zt.net
        check "[$c] getent hosts nobody.yourorg.zt.net: not found" test "$rc" = 2 -a -z "$out"
        ge ahosts NOBODY.yourorg.zt.net.
        check "[$c] getent ahosts NOBODY.yourorg.zt.net.: not found" test "$rc" = 2 -a -z "$out"
        gai nobody.yourorg.zt.net
        check "[$c] gai-client nobody.yourorg.zt.net: EAI_NONAME" test "$rc" = "$GAI_NONAME" -a -z "$out"
        ge hosts 100.64.9.9
        check "[$c] getent hosts 100.64.9.9 (in the range): not found" test "$rc" = 2 -a -z "$out"
        gai -r 100.64.9.9
        check "[$c] gai-client -r 100.64.9.9: EAI_NONAME" test "$rc" = "$GAI_NONAME" -a -z "$out"
        gai -r fd7a:115c:a1e0::99
        check "[$c] gai-client -r fd7a:115c:a1e0::99: EAI_NONAME" test "$rc" = "$GAI_NONAME" -a -z "$out"
        check "[$c] unknown tailnet names and addresses never reached DNS" test ! -s "$tmp/dns.log"
done

# not ours: on to the next module
use_hosts "192.0.2.10 outside.example" "192.0.2.11 nobody"
use_conf "ztna [!UNAVAIL=return] files dns"
dns_clear
ge hosts outside.example
check "getent hosts outside.example: from files after ztna" \
        test "$rc" = 0 -a "$(norm <<<"$out")" = "192.0.2.10 outside.example"
gai nobody
check "gai-client nobody (an unknown single label): from files after ztna" \
        test "$rc" = 0 -a "$out" = "inet 192.0.2.11"
ge hosts 192.0.2.10
check "getent hosts 192.0.2.10: from files after ztna" \
        test "$rc" = 0 -a "$(norm <<<"$out")" = "192.0.2.10 outside.example"
gai -r 192.0.2.11
check "gai-client -r 192.0.2.11: from files after ztna" test "$rc" = 0 -a "$out" = "name nobody"
use_conf "$STD"
ge ahostsv4 localhost
check "getent ahostsv4 localhost: 127.0.0.1 from files" test "$rc" = 0 -a "$(addrs <<<"$out")" = 127.0.0.1
dns_clear
gai -f inet dns-only.example
check "gai-client dns-only.example: answered by DNS" test "$rc" = 0 -a "$out" = "inet 192.0.2.53"
check "dns-only.example reached DNS" dns_saw "^dns-only.example "
gai unknown-label
check "gai-client unknown-label: asked DNS, EAI_NONAME" test "$rc" = "$GAI_NONAME"
check "an unknown single label reached DNS" dns_saw "^unknown-label "

# reverse
use_hosts
reverse() { # reverse ADDRESS CANONICAL ALIAS
        dns_clear
        ge hosts "$1"
        check "getent hosts $1: $2 $3" test "$rc" = 0 -a "$(norm <<<"$out")" = "$1 $2 $3"
        gai -r "$1"
        check "gai-client -r $1: $2" test "$rc" = 0 -a "$out" = "name $2"
        check "reverse $1 never reached DNS" test ! -s "$tmp/dns.log"
}
reverse 100.64.0.1 Win-A.yourorg.zt.net Win-A
reverse fd7a:115c:a1e0::1 Win-A.yourorg.zt.net Win-A
reverse fd7a:115c:a1e0::3 Mac-C.yourorg.zt.net Mac-C
reverse "${many_v4[199]}" Many.yourorg.zt.net Many
reverse "${many_v6[123]}" Many.yourorg.zt.net Many

# enumeration
expected_listing() {
        echo "100.64.0.1 Win-A.yourorg.zt.net Win-A"
        echo "fd7a:115c:a1e0::1 Win-A.yourorg.zt.net Win-A"
        echo "100.64.0.2 Linux-B.yourorg.zt.net Linux-B"
        echo "fd7a:115c:a1e0::3 Mac-C.yourorg.zt.net Mac-C"
        for a in "${many_v4[@]}" "${many_v6[@]}"; do echo "$a Many.yourorg.zt.net Many"; done
}
use_conf ztna
ge hosts
check "getent hosts lists the tailnet, every address once" \
        test "$rc" = 0 -a "$(norm <<<"$out" | sort)" = "$(expected_listing | sort)"
use_hosts "192.0.2.10 outside.example"
use_conf "files ztna"
ge hosts
check "getent hosts lists files, then the tailnet" test "$rc" = 0 -a \
        "$(norm <<<"$out" | head -2)" = "$(printf '127.0.0.1 localhost\n192.0.2.10 outside.example')" -a \
        "$(norm <<<"$out" | tail -n +3 | sort)" = "$(expected_listing | sort)"

# down: tailnet names say "try again" and go nowhere else
check "publish --state down" "$build/publish" --state down "$store"
for c in "$STD" "ztna [!UNAVAIL=return] files dns"; do
        use_conf "$c"
        if [ "$c" = "$STD" ]; then
                use_hosts "192.0.2.10 outside.example"
        else
                use_hosts "192.0.2.1 Win-A Win-A.yourorg.zt.net nobody.yourorg.zt.net" \
                        "192.0.2.10 outside.example"
        fi
        dns_clear
        for name in Win-A win-a.yourorg.zt.net. nobody.yourorg.zt.net; do
                gai "$name"
                check "[$c] down: gai-client $name: EAI_AGAIN" test "$rc" = "$GAI_AGAIN" -a -z "$out"
                ge ahosts "$name"
                check "[$c] down: getent ahosts $name: exit 2" test "$rc" = 2 -a -z "$out"
                ge hosts "$name"
                check "[$c] down: getent hosts $name: exit 2" test "$rc" = 2 -a -z "$out"
        done
        gai -r 100.64.0.1
        check "[$c] down: gai-client -r 100.64.0.1: EAI_AGAIN" test "$rc" = "$GAI_AGAIN"
        check "[$c] down: nothing reached DNS" test ! -s "$tmp/dns.log"
        gai outside.example
        check "[$c] down: gai-client outside.example still from files" test "$rc" = 0 -a "$out" = "inet 192.0.2.10"
        gai -f inet dns-only.example
        check "[$c] down: gai-client dns-only.example still from DNS" test "$rc" = 0 -a "$out" = "inet 192.0.2.53"
done
use_conf "ztna [!UNAVAIL=return] files"
py Win-A
check "down: python getaddrinfo Win-A: EAI_AGAIN" test "$rc" = 1 -a "$out" = "error $AI_AGAIN_ERRNO"
use_conf ztna
ge hosts
check "down: getent hosts lists nothing of the tailnet" test -z "$out"
check "publish --state up" "$build/publish" --state up "$store"
use_conf "ztna [!UNAVAIL=return] files"
gai Win-A
check "up again: gai-client Win-A from the store" \
        test "$rc" = 0 -a "$(sort <<<"$out")" = "$(lines 'inet 100.64.0.1' 'inet6 fd7a:115c:a1e0::1')"

# missing or untrusted store: not ours, on to files (and DNS)
unusable() { # unusable DESCRIPTION
        use_hosts "192.0.2.1 Win-A Win-A.yourorg.zt.net"
        use_conf "ztna [!UNAVAIL=return] files"
        gai Win-A
        check "$1: gai-client Win-A falls through to files" test "$rc" = 0 -a "$out" = "inet 192.0.2.1"
        ge hosts Win-A.yourorg.zt.net
        check "$1: getent hosts Win-A.yourorg.zt.net falls through to files" \
                test "$rc" = 0 -a "$(norm <<<"$out" | cut -d' ' -f1)" = 192.0.2.1
        gai -r 100.64.0.1
        check "$1: gai-client -r 100.64.0.1 falls through (nobody has it)" test "$rc" = "$GAI_NONAME"
        use_conf "ztna [!UNAVAIL=return] dns"
        dns_clear
        gai nobody.yourorg.zt.net
        check "$1: gai-client nobody.yourorg.zt.net: EAI_NONAME" test "$rc" = "$GAI_NONAME"
        check "$1: nobody.yourorg.zt.net fell through to DNS" dns_saw '^nobody.yourorg.zt.net '
        use_conf ztna
        ge hosts
        check "$1: getent hosts lists nothing" test -z "$out"
}
store=$tmp/missing
unusable "store missing"
store=$tmp/world-writable
publish_tailnet "$store"
chmod 0666 "$store"
unusable "store world-writable"
mkdir -m 0755 "$tmp/open"
chmod 0777 "$tmp/open"
store=$tmp/open/records
publish_tailnet "$store"
unusable "store in a world-writable directory"
ln -s records "$tmp/link"
store=$tmp/link
unusable "store a symbolic link"

finish
