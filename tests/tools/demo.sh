#!/bin/sh
# The demo: ztnad publishes the bundled example tailnet into a store in a
# private temporary directory, and real glibc resolves through the module
# (getent -s picks the NSS configuration, LD_LIBRARY_PATH finds the
# module). Nothing under /etc is read for hosts or changed.
set -eu
B=${B:-build}
dir=$(mktemp -d)
chmod 0755 "$dir" # the module trusts no store in a world-writable directory
store=$dir/records
pid=
cleanup() {
        [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
        rm -rf "$dir"
}
trap cleanup EXIT INT TERM

# Every path of ztnad's inside the private directory.
printf 'store = %s\nstate_dir = %s\ncontrol_socket = %s\n' "$store" "$dir/state" "$dir/control.sock" \
        >"$dir/ztnad.conf"
"$B/ztnad" -c "$dir/ztnad.conf" --example 2>"$dir/ztnad.log" &
pid=$!
i=0
until [ -s "$store" ]; do
        i=$((i + 1))
        if [ $i -gt 100 ] || ! kill -0 "$pid" 2>/dev/null; then
                echo "demo: ztnad did not publish the store:" >&2
                cat "$dir/ztnad.log" >&2
                exit 1
        fi
        sleep 0.05
done

NSS='hosts: files ztna [!UNAVAIL=return] dns'
run() {
        echo "\$ getent $*"
        LD_LIBRARY_PATH=$B ZTNA_STORE=$store getent -s "$NSS" "$@" || echo "(exit $?)"
        echo
}
echo "ztnad is publishing the example tailnet to $store"
echo "NSS configuration used (via getent -s): $NSS"
echo
run hosts Win-A
run ahosts win-a.yourorg.zt.net
run hosts 100.64.0.1
run hosts nosuchpeer.yourorg.zt.net
echo "\$ getent -s hosts:ztna hosts     # enumerate: the tailnet alone"
LD_LIBRARY_PATH=$B ZTNA_STORE=$store getent -s hosts:ztna hosts
echo
echo "\$ ztna dns list"
"$B/ztna" --socket "$dir/control.sock" dns list
echo
echo "\$ ztna dns query Win-A"
"$B/ztna" --socket "$dir/control.sock" dns query Win-A

# The DNS stub, for programs that skip NSS: 127.0.0.53:53, or 15353 when
# port 53 is taken (ztna status shows where).
listen=$("$B/ztna" --socket "$dir/control.sock" --json status |
        python3 -c 'import json, sys; print((json.load(sys.stdin)["daemon"]["dns"].get("listening") or [""])[0])')
if [ -n "$listen" ] && command -v dig >/dev/null; then
        echo
        echo "\$ dig +short @${listen%:*} -p ${listen##*:} win-a.yourorg.zt.net   # the stub, not NSS"
        dig +short +time=2 +tries=1 "@${listen%:*}" -p "${listen##*:}" win-a.yourorg.zt.net || true
fi
