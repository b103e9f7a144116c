#!/bin/sh
# usage: unshare -m --propagation private sh tests/harness/mountns.sh \
#            OUTER-NS NSSWITCH HOSTS COMMAND...
#
# Inside a private mount namespace made for it, bind-mounts NSSWITCH over
# /etc/nsswitch.conf and HOSTS over /etc/hosts, then execs COMMAND. The
# mounts vanish with the namespace when COMMAND exits; the host's files are
# never written. OUTER-NS is what `readlink /proc/self/ns/mnt` said before
# unshare: run in that namespace (or, if readable, in PID 1's), it refuses.
set -eu

if [ $# -lt 4 ]; then
	echo "usage: $0 OUTER-NS NSSWITCH HOSTS COMMAND..." >&2
	exit 2
fi
self=$(readlink /proc/self/ns/mnt)
init=$(readlink /proc/1/ns/mnt 2> /dev/null || :)
if [ -z "$1" ] || [ -z "$self" ] || [ "$self" = "$1" ] || [ "$self" = "$init" ]; then
	echo "$0: not in a private mount namespace; refusing to touch /etc" >&2
	exit 1
fi

mount --bind "$2" /etc/nsswitch.conf
mount --bind "$3" /etc/hosts
shift 3
exec "$@"
