# SPDX-License-Identifier: MIT
# shellcheck shell=sh
# Variables set here for the tests to read ($rc, $out, $err, $spid, $port)
# and read here that the tests set ($store, $sock, $NSS):
# shellcheck disable=SC2034,SC2154
#
# The helpers every shell test shares; sourced, never run:
#
#     . "$(dirname "$0")/../lib.sh"  (POSIX sh and bash alike; from a folder under tests/)
#
#   ok TEXT / not_ok TEXT   one check passed / failed ("fail" is not_ok)
#   check TEXT CMD...       ok when CMD exits 0, else not ok with its status
#                           (and with CHECK_SHOW_OUT=N, the first N bytes
#                           of $out, the test's last output, on one line)
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
#   wait_for SECS CMD...    polls CMD every 50 ms, its output dropped,
#                           until it exits 0; 1 when it has not within SECS
#   replace FILE            FILE's new content from stdin, put in place by
#                           rename (mode 0644), as a careful writer does
#   run CMD...              CMD's exit status in $rc, its stdout and stderr
#                           in $out and $err (through files, not a pipe a
#                           daemon it starts could hold open)
#   abs_build [DIR]         B (default "build") made absolute: relative to
#                           DIR, else to the current directory
#   need_root WHY           not ok and finish unless running as root
#   need_built FILE...      not ok and finish unless each $B/FILE exists
#   need_tools TOOL...      not ok and finish unless each TOOL is on PATH
#   no_proxy_env            unsets the proxy and CA bundle variables, so
#                           nothing from the caller steers libcurl
#   temp_dir                $dir: a new directory (0755: the module trusts
#                           no store under a world-writable one), removed
#                           at exit after the test's own cleanup function,
#                           if it has one; INT, TERM and HUP exit 1
#   stop_pids [-SIG] PID... each PID (empty ones passed over) sent SIG
#                           (TERM), then each waited for
#   ztnad_conf DIR LINE...  DIR/ztnad.conf with every path of ztnad's under
#                           DIR (store DIR/run/records, state_dir DIR/state,
#                           control_socket DIR/run/control.sock), each LINE,
#                           and the DNS stub off
#   own_resolv_conf DIR     DIR/resolv.conf (nameserver 127.0.0.1, one try
#                           of 1 s) bind-mounted over /etc/resolv.conf: for
#                           a test in a mount namespace of its own only
#   own_etc_net DIR         DIR's nsswitch.conf, hosts and resolv.conf
#                           (this one as own_resolv_conf's) bind-mounted
#                           over /etc's, nscd's socket hidden, and lo up
#                           with 198.51.100.1 and 2001:db8::1: for a test in
#                           mount and network namespaces of its own only
#   host_etc_kept CMD...    CMD's status, and a check that the host's
#                           nsswitch.conf, hosts and resolv.conf are byte
#                           for byte as before it (CMD: a test's part in
#                           namespaces of its own, bind-mounting over them)
#   make_ca DIR NAME        DIR/NAME.pem and DIR/NAME.key: a throwaway CA
#   make_cert DIR NAME CA SAN  DIR/NAME.pem and .key: a server certificate
#                           for SAN ("IP:127.0.0.1,DNS:localhost") signed
#                           by DIR/CA's
#   start_cp_server CERT MAPDIR ORG [PORT]
#                           tests/harness/cp-server.py on 127.0.0.1:PORT (a
#                           free one by default) with CERT.pem and CERT.key,
#                           serving MAPDIR's map and token for ORG, its
#                           stderr in MAPDIR/server.err; sets $spid and
#                           $port, or not ok and finish if it is not up
#                           within 10 s
#   start_unbound_dot DIR NAME TLS_PORT CERT PLAIN_PORT [RECORD...]
#                           tests/harness/unbound-dot.sh in the background
#                           ($! its pid) in DIR/NAME: DoT on TLS_PORT with
#                           DIR/pki/CERT.pem and .key, plain DNS on
#                           PLAIN_PORT (none when empty), every query
#                           logged in DIR/NAME.log, who.example.test TXT
#                           NAME and each RECORD ("name ttl IN A addr")
#   show_logs FILE...       with VERBOSE set, each FILE that exists, after
#                           a "--- FILE" line (for a cleanup function)
#   jget PATH               a value from the JSON on stdin
#                           (tests/harness/jget.py)
#   daemon_field PATH       jget "daemon/PATH" of `ztna --json status` on
#                           the control socket $sock
#   resolve ARGS...         getent -s "$NSS" ARGS through the module in $B
#                           and the store $store (the test sets all three)
#   resolves_to NAME ADDR   glibc, so, gives ADDR among NAME's addresses
#   failed_yet              exits 0 when a check has failed so far
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
# tests/harness, beside the folder of the test that sources this.
t_harness=$(cd "$(dirname "$0")/../harness" 2>/dev/null && pwd) || t_harness=

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
		if [ -n "${CHECK_SHOW_OUT:-}" ]; then
			echo "#   last output: $(printf '%s' "${out-}" | head -c "$CHECK_SHOW_OUT" | tr '\n' ' ')"
		fi
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

# wait_for SECS CMD...: polls every 50 ms until CMD succeeds.
wait_for() {
	t_tries=$(($1 * 20))
	shift
	while ! "$@" >/dev/null 2>&1; do
		t_tries=$((t_tries - 1))
		[ "$t_tries" -gt 0 ] || return 1
		sleep 0.05
	done
}

# replace FILE: FILE's new content from stdin, put in place by rename.
replace() {
	cat >"$1.tmp"
	chmod 0644 "$1.tmp"
	mv -f "$1.tmp" "$1"
}

# run CMD...: sets $rc, and $out and $err from CMD's stdout and stderr.
run() {
	t_run=$(mktemp -d "${TMPDIR:-/tmp}/ztna-run.XXXXXX") || return 1
	rc=0
	"$@" >"$t_run/out" 2>"$t_run/err" || rc=$?
	out=$(cat "$t_run/out")
	err=$(cat "$t_run/err")
	rm -rf "$t_run"
}

# abs_build [DIR]: the build folder the test takes, as an absolute path.
abs_build() {
	B=${B:-build}
	case $B in
	/*) ;;
	*) B=${1:-$(pwd)}/$B ;;
	esac
}

# need_root WHY, need_built FILE..., need_tools TOOL...: what the test
# cannot run without; a failure (not a skip: the README's test command
# provides them all) and the end when it is missing.
need_root() {
	[ "$(id -u)" = 0 ] && return 0
	not_ok "needs root ($*)"
	finish
}
need_built() {
	for t_f in "$@"; do
		[ -e "$B/$t_f" ] && continue
		not_ok "$B/$t_f is missing: build it first (make all, and what the test's header names)"
		finish
	done
}
need_tools() {
	for t_f in "$@"; do
		command -v "$t_f" >/dev/null 2>&1 && continue
		not_ok "$t_f is missing (dev.sh installs it)"
		finish
	done
}

# no_proxy_env: libcurl takes no proxy and no CA bundle from the caller.
no_proxy_env() {
	unset http_proxy https_proxy HTTP_PROXY HTTPS_PROXY all_proxy ALL_PROXY no_proxy NO_PROXY \
		CURL_CA_BUNDLE SSL_CERT_FILE SSL_CERT_DIR 2>/dev/null || true
}

# temp_dir: the test's private directory $dir, gone at exit.
temp_dir() {
	dir=$(mktemp -d) || exit 1
	chmod 0755 "$dir"
	trap t_cleanup EXIT
	trap 'exit 1' INT TERM HUP
}
t_cleanup() {
	if command -v cleanup >/dev/null 2>&1; then
		cleanup || true
	fi
	rm -rf "$dir"
}

# stop_pids [-SIGNAL] PID...: the processes stopped and reaped.
stop_pids() {
	t_sig=-TERM
	case ${1-} in
	-*)
		t_sig=$1
		shift
		;;
	esac
	for t_p in "$@"; do
		[ -z "$t_p" ] || kill "$t_sig" "$t_p" 2>/dev/null || true
	done
	for t_p in "$@"; do
		[ -z "$t_p" ] || wait "$t_p" 2>/dev/null || true
	done
}

# ztnad_conf DIR LINE...: a ztnad.conf that keeps ztnad inside DIR.
ztnad_conf() {
	t_d=$1
	shift
	{
		echo "store = $t_d/run/records"
		echo "state_dir = $t_d/state"
		echo "control_socket = $t_d/run/control.sock"
		for t_l in "$@"; do echo "$t_l"; done
		echo "[dns]"
		echo "stub = no"
	} >"$t_d/ztnad.conf"
}

# own_resolv_conf DIR: the namespace's resolver is a server of the test's
# on 127.0.0.1; the host's file is untouched (the mount is in this
# namespace only).
own_resolv_conf() {
	printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$1/resolv.conf"
	chmod 0644 "$1/resolv.conf"
	mount --bind "$1/resolv.conf" /etc/resolv.conf
}

# own_etc_net DIR: the files glibc's lookups read are the test's (rewritten
# in place, same inode, as its cases need), no nscd answers from the host's
# configuration, and the addresses are not loopback ones only, as on a host
# on a network: AI_ADDRCONFIG (getent ahostsv4, ahostsv6) ignores loopback.
own_etc_net() {
	for t_f in nsswitch.conf hosts resolv.conf; do
		: >"$1/$t_f"
		mount --bind "$1/$t_f" "/etc/$t_f"
	done
	for t_d in /run/nscd /var/run/nscd; do
		if [ -d "$t_d" ]; then mount -t tmpfs tmpfs "$t_d"; fi
	done
	printf 'nameserver 127.0.0.1\noptions timeout:1 attempts:1\n' >"$1/resolv.conf"
	ip link set lo up
	ip addr add 198.51.100.1/32 dev lo
	ip addr add 2001:db8::1/128 dev lo nodad
}

# host_etc_kept CMD...: what CMD did to /etc stayed in its namespace.
host_etc_kept() {
	t_etc="/etc/nsswitch.conf /etc/hosts /etc/resolv.conf"
	# shellcheck disable=SC2086 # a list of files
	t_before=$(sha256sum $t_etc)
	t_rc=0
	"$@" || t_rc=$?
	# shellcheck disable=SC2086
	t_after=$(sha256sum $t_etc)
	if [ "$t_before" = "$t_after" ]; then
		ok "the host's $t_etc are unchanged"
	else
		not_ok "the host's $t_etc changed"
	fi
	return "$t_rc"
}

# make_ca DIR NAME, make_cert DIR NAME CA SAN: certificates for a test's
# HTTPS or TLS servers (EC P-256, valid two days).
make_ca() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
		-subj "/CN=ztna test $2" -addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" -keyout "$1/$2.key" -out "$1/$2.pem" 2>/dev/null
}
make_cert() {
	printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
		"extendedKeyUsage=serverAuth" "subjectAltName=$4" >"$1/$2.ext"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$2" \
		-keyout "$1/$2.key" -out "$1/$2.csr" 2>/dev/null &&
		openssl x509 -req -in "$1/$2.csr" -CA "$1/$3.pem" -CAkey "$1/$3.key" -CAcreateserial -days 2 \
			-extfile "$1/$2.ext" -out "$1/$2.pem" 2>/dev/null
}

# start_cp_server CERT MAPDIR ORG [PORT]: an HTTPS control plane.
start_cp_server() {
	rm -f "$2/port"
	/usr/bin/python3 "$t_harness/cp-server.py" --cert "$1.pem" --key "$1.key" --dir "$2" --org "$3" \
		--port "${4:-0}" --port-file "$2/port" 2>>"$2/server.err" &
	spid=$!
	if ! wait_for 10 test -s "$2/port"; then
		not_ok "cp-server.py did not start: $(cat "$2/server.err")"
		finish
	fi
	port=$(cat "$2/port")
}

# start_unbound_dot DIR NAME TLS_PORT CERT PLAIN_PORT [RECORD...]: an
# upstream that says who it is.
start_unbound_dot() {
	t_d=$1 t_n=$2 t_tls=$3 t_cert=$4 t_plain=$5
	shift 5
	{
		echo "log-queries: yes"
		echo "local-data: 'who.example.test. 0 IN TXT \"$t_n\"'"
		for t_l in "$@"; do echo "local-data: \"$t_l\""; done
	} >"$t_d/$t_n.extra"
	sh "$t_harness/unbound-dot.sh" run "$t_d/$t_n" "$t_tls" "$t_d/pki/$t_cert.pem" "$t_d/pki/$t_cert.key" \
		"$t_plain" "$t_d/$t_n.extra" >"$t_d/$t_n.log" 2>&1 &
}

# show_logs FILE...: the logs, when VERBOSE asks for them.
show_logs() {
	[ -n "${VERBOSE:-}" ] || return 0
	for t_f in "$@"; do
		[ -e "$t_f" ] || continue
		echo "--- $t_f"
		cat "$t_f"
	done
}

# jget PATH: keys joined by '/'; "name=X" picks a list's element by name.
jget() {
	/usr/bin/python3 "$t_harness/jget.py" "$1"
}
daemon_field() {
	"$B/ztna" --socket "$sock" --json status 2>/dev/null | jget "daemon/$1"
}

# resolve ARGS...: getent with the hosts line $NSS, the module of $B and
# the store $store, nothing under /etc read for them.
resolve() {
	LD_LIBRARY_PATH=$B ZTNA_STORE=$store getent -s "$NSS" "$@"
}
# resolves_to NAME ADDRESS: glibc gives ADDRESS among NAME's addresses.
resolves_to() {
	resolve ahosts "$1" 2>/dev/null | awk '{ print $1 }' | grep -qxF "$2"
}

# failed_yet: a check has failed so far (read through a file descriptor of
# its own, so that finish still reads fd 9 from the start).
failed_yet() {
	grep -qx fail /proc/self/fd/9
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
