# SPDX-License-Identifier: MIT
#
# The helpers every shell test shares; sourced, never run:
#
#     . "$(dirname "$0")/../lib.sh"  (POSIX sh and bash alike; from a folder under tests/)
#
#   ok TEXT / not_ok TEXT   one check passed / failed ("fail" is not_ok)
#   check TEXT CMD...       ok when CMD exits 0, else not ok with its status
#   skip TEXT               "SKIP - TEXT", counted apart from the passes
#   skip_all TEXT           a skip, then finish: nothing else can run
#   is_num X                X is a decimal number (-1, 2, 3.5); not empty
#   num_lt/num_le/num_gt/num_ge/num_eq A B
#                           compare two numbers; refuse (status 2, a line
#                           on stderr) when either is empty or not a number
#   check_lt/check_le/check_gt/check_ge/check_eq TEXT A B
#                           the comparison as a check, the values in its line
#   with_timeout SECS CMD...  CMD (a program, not a shell function), sent
#                           TERM after SECS and KILL 5 s later (not its
#                           children: it stays in the test's process group,
#                           which tests/run-tests.sh kills on its own
#                           timeout); on expiry says so and returns 124
#   finish                  "NAME: P passed, F failed, S skipped", then
#                           exit 1 if any failed, none ran at all, or any
#                           skipped while ZTNA_NO_SKIP=1 (sh dev.sh test)
#
# Each result is also appended to a file that is unlinked at once but held
# open, and finish counts from it: a check in a subshell (a pipeline's
# braces, $(...), a background job) is never lost, as a variable would be.
# A skip is allowed only where the machine truly lacks something the
# README's test command does not install; tests/run-tests.sh sums them.
# The test's own name for the summary: TEST_NAME (default: the script's).

TEST_NAME=${TEST_NAME:-$(basename "$0" .sh)}

t_results=$(mktemp "${TMPDIR:-/tmp}/ztna-test-results.XXXXXX") || {
	echo "$TEST_NAME: mktemp failed" >&2
	exit 1
}
# fd 8 appends the results, fd 9 reads them back from the start.
exec 8>>"$t_results" 9<"$t_results"
rm -f "$t_results"

ok() {
	echo "ok - $*"
	echo ok >&8
}
not_ok() {
	echo "not ok - $*"
	echo fail >&8
}
fail() {
	not_ok "$@"
}
skip() {
	echo "SKIP - $*"
	echo skip >&8
}

# check TEXT CMD...: CMD's exit status decides.
check() {
	t_what=$1
	shift
	t_rc=0
	"$@" || t_rc=$?
	if [ "$t_rc" -eq 0 ]; then
		ok "$t_what"
	else
		not_ok "$t_what"
		echo "#   exit $t_rc: $*"
	fi
	return 0
}

is_num() {
	case $1 in
	'' | - | . | -. | *[!0-9.-]* | ?*-* | *.*.*) return 1 ;;
	esac
	return 0
}

# t_cmp NAME OP A B: the comparison, or 2 when A or B is not a number.
t_cmp() {
	if ! is_num "$3" || ! is_num "$4"; then
		echo "$1: '$3' and '$4' are not both numbers" >&2
		return 2
	fi
	awk -v a="$3" -v b="$4" -v op="$2" 'BEGIN {
		a += 0; b += 0
		if (op == "<") r = a < b
		else if (op == "<=") r = a <= b
		else if (op == ">") r = a > b
		else if (op == ">=") r = a >= b
		else r = a == b
		exit !r
	}'
}
num_lt() { t_cmp num_lt '<' "$1" "$2"; }
num_le() { t_cmp num_le '<=' "$1" "$2"; }
num_gt() { t_cmp num_gt '>' "$1" "$2"; }
num_ge() { t_cmp num_ge '>=' "$1" "$2"; }
num_eq() { t_cmp num_eq '==' "$1" "$2"; }
check_lt() { check "$1 ('$2' < $3)" num_lt "$2" "$3"; }
check_le() { check "$1 ('$2' <= $3)" num_le "$2" "$3"; }
check_gt() { check "$1 ('$2' > $3)" num_gt "$2" "$3"; }
check_ge() { check "$1 ('$2' >= $3)" num_ge "$2" "$3"; }
check_eq() { check "$1 ('$2' = $3)" num_eq "$2" "$3"; }

with_timeout() {
	t_secs=$1
	shift
	t_rc=0
	timeout --foreground -k 5 "$t_secs" "$@" || t_rc=$?
	if [ "$t_rc" -eq 124 ] || [ "$t_rc" -eq 137 ]; then
		echo "$TEST_NAME: timed out after $t_secs s: $*" >&2
		return 124
	fi
	return "$t_rc"
}

# skip_all TEXT: the whole test cannot run here.
skip_all() {
	skip "$@"
	finish
}

finish() {
	t_pass=0
	t_fail=0
	t_skip=0
	while read -r t_line; do
		case $t_line in
		ok) t_pass=$((t_pass + 1)) ;;
		fail) t_fail=$((t_fail + 1)) ;;
		skip) t_skip=$((t_skip + 1)) ;;
		esac
	done <&9
	echo "$TEST_NAME: $t_pass passed, $t_fail failed, $t_skip skipped"
	if [ "$t_fail" -gt 0 ]; then
		exit 1
	fi
	if [ $((t_pass + t_skip)) -eq 0 ]; then
		echo "$TEST_NAME: no check ran"
		exit 1
	fi
	if [ "$t_skip" -gt 0 ] && [ "${ZTNA_NO_SKIP:-0}" = 1 ]; then
		echo "$TEST_NAME: ZTNA_NO_SKIP=1: a skip is a failure here"
		exit 1
	fi
	exit 0
}
