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
build/test/test-dns-state
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

logs=$(mktemp -d) || exit 1
trap 'rm -rf "$logs"' EXIT

passed=0
failed=0
failures=
n=0
for t in $TESTS; do
        n=$((n + 1))
        echo "=== $t"
        start=$(date +%s)
        rc=0
        if [ ! -e "$t" ]; then
                echo "$t: missing (not built, or not written yet)" | tee "$logs/$n.log"
                rc=127
        else
                # Into a log first (not a pipe, which a daemon a test left
                # behind would hold open), so the summary can repeat the end
                # of a failure.
                case $t in
                *.sh) bash "$t" >"$logs/$n.log" 2>&1 || rc=$? ;;
                *) "./$t" >"$logs/$n.log" 2>&1 || rc=$? ;;
                esac
                cat "$logs/$n.log"
        fi
        secs=$(($(date +%s) - start))
        if [ "$rc" -eq 0 ]; then
                echo "=== PASS $t (${secs}s)"
                passed=$((passed + 1))
        else
                echo "=== FAIL $t (exit $rc, ${secs}s)"
                failed=$((failed + 1))
                failures="$failures $n:$t"
        fi
done

echo
echo "run-tests: $passed passed, $failed failed"
if [ "$failed" -gt 0 ]; then
        # The end of each failure's output again, where a log cut to its
        # last lines still shows it.
        for f in $failures; do
                echo
                echo "--- the last lines of ${f#*:}:"
                grep -v '^ok \|^=== PASS' "$logs/${f%%:*}.log" | tail -n 25
        done
        echo
        for f in $failures; do
                echo "  FAIL ${f#*:}"
        done
        exit 1
fi
