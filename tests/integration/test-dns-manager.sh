#!/bin/bash
# SPDX-License-Identifier: MIT
#
# The DNS manager's root helper (ztnad --dns-manager) in file mode, without
# systemd: a private directory stands in for /etc/resolv.conf and
# /var/lib/ztna-dns (ZTNA_DNS_MANAGER_RESOLV_CONF, ZTNA_DNS_MANAGER_LIB),
# and the DNS state file is written by hand where ztnad would write it,
# next to the configured store. Checked: the stub written and a rewrite
# undone with a bound, the host's file restored byte for byte (a regular
# file with its mode, a symbolic link with its target, no file at all),
# nothing written without port 53, hostile state files refused, manage =
# off reverting, a takeover by another program left alone, root only, and
# ztna status showing what was set. resolved and resolvconf need a booted
# system: tests/system/test-system.sh.
# Usage: B=build bash tests/integration/test-dns-manager.sh (as root)
set -uo pipefail

B=${B:-build}
# shellcheck source=lib.sh
. "$(dirname "$0")/../lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "needs root (the helper refuses other users)"

t=$(mktemp -d)
chmod 0755 "$t"
trap 'rm -rf "$t"' EXIT
mkdir -m 0755 "$t/run" "$t/etc"
conf=$t/ztnad.conf
rc=$t/etc/resolv.conf
export ZTNA_DNS_MANAGER_LIB=$t/lib ZTNA_DNS_MANAGER_RESOLV_CONF=$rc

write_conf() { # write_conf MODE
	printf 'store = %s\nstate_dir = %s\ncontrol_socket = %s\n[dns]\nmanage = %s\n' \
		"$t/run/records" "$t/state" "$t/run/control.sock" "$1" >"$conf"
}
write_state() { # write_state LINE... (after the magic line)
	{
		echo "ztna-dns-state 1"
		printf '%s\n' "$@"
	} >"$t/run/dns-state"
	chmod 0644 "$t/run/dns-state"
}
helper() { # helper VERB: the helper's exit status; its log in $t/log
	"$B/ztnad" -c "$conf" --dns-manager "$1" >"$t/log" 2>&1
}
status_get() { # status_get KEY: a value of the status next to the store
	python3 -c 'import json, sys; v = json.load(open(sys.argv[1])).get(sys.argv[2]); print(v if not isinstance(v, list) else " ".join(v))' \
		"$t/run/dns-manager.json" "$1"
}
nameservers() {
	grep '^nameserver' "$rc" | tr '\n' ' '
}
same_bytes_and_mode() { # same_bytes_and_mode SAVED
	cmp -s "$1" "$rc" && [ "$(stat -c %a "$1")" = "$(stat -c %a "$rc")" ] && [ ! -L "$rc" ]
}

write_conf file
write_state "server 127.0.0.53 53" "server 127.0.0.1 15353" "domain yourorg.zt.net" "range 100.64.0.0/10"

# ---- a regular file: written, rewrites undone, restored ----
printf 'nameserver 192.0.2.1\nsearch example.test' >"$rc" # no final newline
chmod 0640 "$rc"
cp -p "$rc" "$t/orig"
check "apply (manage = file) exits 0" helper apply
check "resolv.conf names the stub on port 53 only ($(nameservers))" test "$(nameservers)" = "nameserver 127.0.0.53 "
check "the log says so" grep -q "points at the stub" "$t/log"
check "/var/lib/ztna-dns stand-in is root's, 0700" test "$(stat -c '%U %a' "$t/lib")" = "root 700"
check "status: mode file, state applied, servers 127.0.0.53:53" \
	test "$(status_get mode) $(status_get state) $(status_get servers)" = "file applied 127.0.0.53:53"
cp "$rc" "$t/ours"
helper apply
check "apply again changes nothing" cmp -s "$t/ours" "$rc"
check "check with the file untouched exits 0" helper check
check "and leaves it" cmp -s "$t/ours" "$rc"
echo "nameserver 203.0.113.9" >"$rc"
check "check after a rewrite exits 0" helper check
check "the stub is back" cmp -s "$t/ours" "$rc"
check "with a log line" grep -q "rewritten by another program.*1 of 20" "$t/log"
for i in $(seq 2 20); do
	echo "nameserver 203.0.113.$i" >"$rc"
	helper check
done
check "the 20th rewrite in an hour is still undone" cmp -s "$t/ours" "$rc"
echo "nameserver 203.0.113.21" >"$rc"
helper check
check "the 21st is left to the other program" grep -qx "nameserver 203.0.113.21" "$rc"
check "status says why" sh -c "python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[\"error\"])' '$t/run/dns-manager.json' | grep -q '20 times within an hour'"
check "apply takes the file back" helper apply
check "the stub again" cmp -s "$t/ours" "$rc"
check "revert exits 0" helper revert
check "the original bytes and mode 0640 are back" same_bytes_and_mode "$t/orig"
check "the backups are gone" test -z "$(ls -A "$t/lib")"
check "status: off" test "$(status_get state)" = off
check "revert again changes nothing" helper revert
check "still the original" same_bytes_and_mode "$t/orig"

# ---- a symbolic link, and no file at all ----
rm -f "$rc"
ln -s ../run/systemd/resolve/stub-resolv.conf "$rc"
helper apply
check "a link is replaced by a file" test -f "$rc" -a ! -L "$rc"
helper revert
check "and comes back as the same link" test "$(readlink "$rc")" = ../run/systemd/resolve/stub-resolv.conf
rm -f "$rc"
helper apply
check "no resolv.conf: one is written" grep -q "^nameserver 127.0.0.53$" "$rc"
helper revert
check "and removed again" test ! -e "$rc" -a ! -L "$rc"

# ---- manage = off reverts ----
cp -p "$t/orig" "$rc"
helper apply
write_conf off
check "manage = off: apply exits 0" helper apply
check "manage = off: the original is back" same_bytes_and_mode "$t/orig"
write_conf file

# ---- taken over meanwhile: left alone ----
helper apply
rm -f "$rc"
ln -s ../run/systemd/resolve/stub-resolv.conf "$rc"
check "revert after another program took the file over exits 0" helper revert
check "the other program's link stays" test "$(readlink "$rc")" = ../run/systemd/resolve/stub-resolv.conf
check "the log says it was taken over" grep -q "taken over by another program" "$t/log"
check "the backups are dropped" test -z "$(ls -A "$t/lib")"
rm -f "$rc"
cp -p "$t/orig" "$rc"

# ---- no port 53: nothing written ----
write_state "server 127.0.0.53 15353" "server 127.0.0.1 15353" "domain yourorg.zt.net"
check "apply without a stub on port 53 fails (exit 1)" test "$(helper apply; echo $?)" = 1
check "resolv.conf is left as it was" same_bytes_and_mode "$t/orig"
check "the log says why" grep -q "holds no port 53 and resolv.conf has no port syntax" "$t/log"
check "status: error" test "$(status_get state)" = error

# ---- hostile state files ----
write_state "server 127.0.0.53 53"
chmod 0666 "$t/run/dns-state"
check "a group/other-writable state file is refused (exit 1)" test "$(helper apply; echo $?)" = 1
check "nothing written" same_bytes_and_mode "$t/orig"
write_state "server 198.51.100.7 53"
check "a state file naming a server off loopback is refused" test "$(helper apply; echo $?)" = 1
check "the log names the line" grep -q "line 2: a server must be a loopback address" "$t/log"
check "nothing written" same_bytes_and_mode "$t/orig"
write_state "server 127.0.0.53 53"
ln "$t/run/dns-state" "$t/run/dns-state.hardlink"
check "a state file with two links is refused" test "$(helper apply; echo $?)" = 1
rm -f "$t/run/dns-state.hardlink"
chown nobody "$t/run/dns-state"
check "a state file owned by another user is refused" test "$(helper apply; echo $?)" = 1
chown root "$t/run/dns-state"
check "nothing written through all of them" same_bytes_and_mode "$t/orig"

# ---- a broken configuration keeps what is in place ----
helper apply
cp "$rc" "$t/ours"
echo "manage = sometimes" >>"$conf"
check "apply with a broken configuration fails (exit 1)" test "$(helper apply; echo $?)" = 1
check "and keeps the settings in place (fail closed)" cmp -s "$t/ours" "$rc"
write_conf file
helper revert
check "revert: the original again" same_bytes_and_mode "$t/orig"

# ---- usage and privileges ----
check "an unknown verb is a usage error (exit 2)" test "$(helper frobnicate; echo $?)" = 2
out=$(setpriv --reuid=nobody --regid=nogroup --clear-groups "$B/ztnad" -c "$conf" --dns-manager apply 2>&1)
check "not root: exit 4, nothing done" test "$?" = 4 -a -n "$out"

# ---- ztna status shows it ----
helper apply
json=$("$B/ztna" --store "$t/run/records" --json status 2>/dev/null)
check "ztna --json status has dns_manager with mode file and the servers" \
	test "$(python3 -c 'import json, sys; d = json.loads(sys.argv[1])["dns_manager"]; print(d["mode"], d["state"], " ".join(d["servers"]))' "$json")" = "file applied 127.0.0.53:53"
helper revert

finish
