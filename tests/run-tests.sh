#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The runner behind `make test`: runs every test below in order, each one to
# its end whatever the others did, then prints a summary and exits nonzero
# if any failed. A test that is missing counts as a failure: a runner that
# skips what it cannot find would pass on an empty tree.
#
#     sh tests/run-tests.sh          all of them
#     sh tests/run-tests.sh TEST...  only those (paths as listed below)
set -u

cd "$(dirname "$0")/.." || exit 1

TESTS="
build/test/test-shm
build/test/test-nss
build/test/test-peers
build/test/test-controlplane
build/test/test-config
build/test/test-control
build/test/test-dns-wire
build/test/test-blocklist
build/test/test-cache
build/test/test-stub
build/test/test-upstream-unit
tests/test-glibc.sh
tests/test-daemon.sh
tests/test-controlplane.sh
tests/test-control.sh
tests/test-daemon-live.sh
tests/test-upstream.sh
tests/test-stub.sh
tests/test-scenarios.sh
tests/test-units.sh
"
if [ $# -gt 0 ]; then
        TESTS=$*
fi

passed=0
failed=0
failures=
for t in $TESTS; do
        echo "=== $t"
        start=$(date +%s)
        rc=0
        if [ ! -e "$t" ]; then
                echo "$t: missing (not built, or not written yet)"
                rc=127
        else
                case $t in
                *.sh) bash "$t" || rc=$? ;;
                *) "./$t" || rc=$? ;;
                esac
        fi
        secs=$(($(date +%s) - start))
        if [ "$rc" -eq 0 ]; then
                echo "=== PASS $t (${secs}s)"
                passed=$((passed + 1))
        else
                echo "=== FAIL $t (exit $rc, ${secs}s)"
                failed=$((failed + 1))
                failures="$failures $t"
        fi
done

echo
echo "run-tests: $passed passed, $failed failed"
if [ "$failed" -gt 0 ]; then
        for t in $failures; do
                echo "  FAIL $t"
        done
        exit 1
fi
