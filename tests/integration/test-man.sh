#!/bin/sh
# SPDX-License-Identifier: MIT
#
# The man pages tell the truth about the programs: every option, exit code
# and command that `ztna --help` and `ztnad --help` list is in ztna(1) and
# ztnad(8), and the pages list nothing the programs lack
# (tests/harness/man-check.py). ztnad.conf(5) against the key table is
# ztnad/conf/test-config.c's job. The checker itself is shown to fail on a
# page that lost an option, a --help with one more, and a page with an exit
# code the program does not have. And the private-DoT example of
# ztnad.conf(5) and docs/private-dot.md is accepted by ztnad --check-config.
# Usage: B=build sh tests/integration/test-man.sh
set -eu

B=${B:-build}
here=$(cd "$(dirname "$0")/../.." && pwd)
# shellcheck source=lib.sh
. "$(dirname "$0")/../lib.sh"

dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
trap 'exit 1' INT TERM HUP

mancheck() {
	/usr/bin/python3 "$here/tests/harness/man-check.py" "$@" >"$dir/out" 2>&1
}
fails() {
	! "$@"
}

for prog in ztna:man/ztna.1 ztnad:man/ztnad.8; do
	bin=${prog%%:*}
	page=$here/${prog#*:}
	"$B/$bin" --help >"$dir/$bin.help"
	if mancheck "$dir/$bin.help" "$page"; then
		ok "$bin --help and ${prog#*:} agree (options, exit codes, commands)"
	else
		not_ok "$bin --help and ${prog#*:} differ: $(tr '\n' ';' <"$dir/out")"
	fi
done

# The private-DoT example the pages point at (docs/private-dot.md) is one
# ztnad accepts, and means what the page says.
if "$B/ztnad" -c "$here/examples/private-dot.conf" --check-config >"$dir/private-dot.out" 2>&1; then
	ok "ztnad --check-config accepts examples/private-dot.conf"
else
	not_ok "ztnad --check-config refuses examples/private-dot.conf: $(cat "$dir/private-dot.out")"
fi
check "... with both servers and the certificate's name" \
	grep -qx 'upstream = 10.20.0.53:853#dns.corp.example \[fd00:20::53\]:853#dns.corp.example' "$dir/private-dot.out"
check "... the private CA" grep -qx 'tls_ca_file = /etc/ztna/corp-dns-ca.pem' "$dir/private-dot.out"
check "... two pins" grep -qxE 'spki_pins = [A-Za-z0-9+/]{43}= [A-Za-z0-9+/]{43}=' "$dir/private-dot.out"
check "... and no plaintext fallback" grep -qx 'allow_plaintext_fallback = no' "$dir/private-dot.out"

# The checker can fail.
sed '/^\.TP$/{N;/\\-\\-json/d}' "$here/man/ztna.1" >"$dir/no-json.1"
check "a page without --json's entry is caught" fails mancheck "$dir/ztna.help" "$dir/no-json.1"
check "... and named" grep -q -- "option --json is in --help but not in the man page" "$dir/out"
sed 's/^  -h, --help .*/&\n      --frobnicate  does nothing/' "$dir/ztna.help" >"$dir/extra.help"
check "a --help with an option the page lacks is caught" fails mancheck "$dir/extra.help" \
	"$here/man/ztna.1"
check "... and named" grep -q -- "option --frobnicate is in --help but not in the man page" "$dir/out"
sed 's/^\.SH EXIT STATUS$/&\n.TP\n.B 9\nA code the program does not have./' "$here/man/ztnad.8" >"$dir/extra.8"
check "a page with an exit code the program lacks is caught" fails mancheck "$dir/ztnad.help" \
	"$dir/extra.8"
check "... and named" grep -q -- "exit code 9 is in the man page but not in --help" "$dir/out"
sed '/^\.SH COMMANDS$/,/^\.SH/{/^\.B dns flush$/d}' "$here/man/ztna.1" >"$dir/no-flush.1"
check "a page without a command's entry is caught" fails mancheck "$dir/ztna.help" "$dir/no-flush.1"
finish
