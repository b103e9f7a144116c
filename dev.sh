#!/bin/sh
# The README's two commands. Run as root on Debian 12:
#   sh dev.sh demo   install what is needed, build, and resolve the bundled
#                    example tailnet through the module (touches nothing in /etc)
#   sh dev.sh test   install what is needed, build, and run every test
#                    (unit, real glibc, daemon, DNS, a short fuzz run, the
#                    Debian packages, the SELinux policy and the packages
#                    in a booted Debian 12 container)
set -eu
cd "$(dirname "$0")"

# systemd-container: systemd-nspawn for tests/system/test-system.sh. Installed, like
# everything here, without recommends: its libnss-mymachines would edit this
# machine's nsswitch.conf.
PACKAGES="build-essential pkg-config check libjansson-dev libsystemd-dev liburcu-dev
libssl-dev libcurl4-openssl-dev clang libclang-rt-14-dev valgrind python3 iproute2 util-linux
strace groff-base man-db systemd openssl unbound iptables bind9-dnsutils knot-dnsutils
dpkg-dev debhelper dh-nss lintian fakeroot debootstrap selinux-policy-dev selinux-policy-default
policycoreutils setools selinux-utils checkpolicy semodule-utils procps
dnsperf dnsmasq-base systemd-container libpsl-dev publicsuffix faketime"

deps() {
        missing=
        for p in $PACKAGES; do
                dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
        done
        [ -z "$missing" ] && return 0
        if [ "$(id -u)" -ne 0 ]; then
                echo "dev.sh: missing packages:$missing (run as root to install them)" >&2
                exit 1
        fi
        echo "dev.sh: installing$missing"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

case "${1:-}" in
demo)
        deps
        make -s all
        sh tests/tools/demo.sh
        ;;
test)
        deps
        # Everything a test needs is installed above: a skipped check
        # fails the run (tests/lib.sh, tests/run-tests.sh).
        export ZTNA_NO_SKIP=1
        make -s WERROR=-Werror test
        make -s fuzz FUZZ_SECONDS="${FUZZ_SECONDS:-20}"
        # The packages: built, checked by lintian, the policy module queried,
        # then installed, reinstalled and purged in a throwaway Debian root.
        make -s selinux-check
        bash tests/packaging/test-deb.sh
        # The packages in a booted Debian 12 container: real systemd,
        # resolved, every DNS client, the uplink's DNS watched for leaks.
        make -s system-test
        ;;
*)
        echo "usage: sh dev.sh demo|test" >&2
        exit 2
        ;;
esac
