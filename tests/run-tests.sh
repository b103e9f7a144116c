#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The runner behind `make test`: runs the tests it is given in order, each
# one to its end whatever the others did, then prints a summary and exits nonzero
# if any failed. A test that is missing counts as a failure: a runner that
# skips what it cannot find would pass on an empty tree.
#
# Each test runs under a time limit (ZTNA_TEST_TIMEOUT seconds, 900 by
# default: several times the slowest test on two CPUs under sanitizers).
# One that outlives it is named, sent TERM with its whole process group
# (its EXIT trap cleans up), KILL 30 s later, and counts as a failure.
#
# Checks a test skipped (the "SKIP - reason" lines of tests/lib.sh) are
# counted apart and summed; with ZTNA_NO_SKIP=1 (sh dev.sh test, which
# installs everything a test needs) a single skip fails the run.
#
#     sh tests/run-tests.sh TEST...
#
# The one list of tests is the Makefile's: UNIT_TESTS (every Check program
# beside its code) and INTEGRATION_TESTS (every tests/integration/test-*.sh;
# packaging, SELinux and the booted system have targets of their own).
set -u

limit=${ZTNA_TEST_TIMEOUT:-900}

cd "$(dirname "$0")/.." || exit 1

if [ $# -eq 0 ]; then
        echo "usage: sh tests/run-tests.sh TEST... ('make test' runs them all)" >&2
        exit 2
fi
TESTS=$*

logs=$(mktemp -d) || exit 1
trap 'rm -rf "$logs"' EXIT

passed=0
failed=0
skipped=0
failures=
skippers=
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
                # timeout(1) runs the test in a process group of its own
                # and signals all of it when the time is up.
                case $t in
                *.sh) timeout -k 30 "$limit" bash "$t" </dev/null >"$logs/$n.log" 2>&1 || rc=$? ;;
                *) timeout -k 30 "$limit" "./$t" </dev/null >"$logs/$n.log" 2>&1 || rc=$? ;;
                esac
                cat "$logs/$n.log"
        fi
        secs=$(($(date +%s) - start))
        skips=0
        [ -e "$logs/$n.log" ] && skips=$(grep -c '^SKIP - ' "$logs/$n.log")
        note=
        if [ "$skips" -gt 0 ]; then
                note=", $skips skipped"
                skipped=$((skipped + skips))
                skippers="$skippers $n:$t"
        fi
        if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
                echo "=== TIMEOUT $t: still running after ${limit}s, killed with its process group"
                echo "=== FAIL $t (timed out, ${secs}s$note)"
                : >"$logs/$n.timeout"
                failed=$((failed + 1))
                failures="$failures $n:$t"
        elif [ "$rc" -eq 0 ]; then
                echo "=== PASS $t (${secs}s$note)"
                passed=$((passed + 1))
        else
                echo "=== FAIL $t (exit $rc, ${secs}s$note)"
                failed=$((failed + 1))
                failures="$failures $n:$t"
        fi
done

echo
echo "run-tests: $passed passed, $failed failed, $skipped checks skipped"
if [ "$skipped" -gt 0 ]; then
        for f in $skippers; do
                grep '^SKIP - ' "$logs/${f%%:*}.log" | sed "s|^|  ${f#*:}: |"
        done
        if [ "${ZTNA_NO_SKIP:-0}" = 1 ]; then
                echo "run-tests: ZTNA_NO_SKIP=1: every test must run in full here"
                failed=$((failed + 1))
        fi
fi
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
                if [ -e "$logs/${f%%:*}.timeout" ]; then
                        echo "  FAIL ${f#*:} (hung: killed after ${limit}s)"
                else
                        echo "  FAIL ${f#*:}"
                fi
        done
        exit 1
fi
