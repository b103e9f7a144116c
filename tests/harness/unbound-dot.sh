#!/bin/sh
# SPDX-License-Identifier: MIT
#
# Debian's unbound as a DNS-over-TLS server on loopback, for the upstream
# tests. Needs no internet: the test names are local data, and the root is
# a static local zone, so nothing is ever looked up outside.
#
#   unbound-dot.sh certs DIR
#       a throwaway CA (DIR/ca.pem) and, signed by it, a server certificate
#       for DNS:dns.test and IP:127.0.0.1 (DIR/server.pem, .key), one for
#       DNS:other.test (DIR/other.pem, .key), one that expired in 2020
#       (DIR/expired.pem, .key); and a self-signed one for dns.test that
#       no CA vouches for (DIR/selfsigned.pem, .key).
#   unbound-dot.sh run DIR TLS_PORT CERT KEY [PLAIN_PORT] [EXTRA_CONFIG_FILE]
#       writes DIR/unbound.conf and runs unbound in the foreground (exec):
#       DoT on 127.0.0.1@TLS_PORT, plain DNS on 127.0.0.1@PLAIN_PORT (UDP
#       and TCP) when given; EXTRA_CONFIG_FILE is appended to its server
#       section (more local data, forward zones).
#
# Local data: www.example.test A 192.0.2.1, big.example.test with 100 A
# records (more than fits a 1232-byte UDP answer), and *.example.test
# NXDOMAIN.
set -eu

cmd=${1:-}
case $cmd in
certs)
	d=$2
	mkdir -p "$d/ca-db"
	cd "$d"
	: >ca-db/index.txt
	echo 1000 >ca-db/serial
	cat >ca.cnf <<-EOF
	[ ca ]
	default_ca = test_ca
	[ test_ca ]
	dir = ca-db
	database = \$dir/index.txt
	serial = \$dir/serial
	new_certs_dir = \$dir
	certificate = ca.pem
	private_key = ca.key
	default_md = sha256
	policy = any
	unique_subject = no
	copy_extensions = copy
	[ any ]
	commonName = supplied
	[ req ]
	distinguished_name = dn
	[ dn ]
	EOF
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout ca.key -out ca.pem \
		-days 30 -subj "/CN=ztna test CA" -addext basicConstraints=critical,CA:TRUE \
		-addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
	# name SAN [openssl ca options]
	issue() {
		name=$1
		san=$2
		shift 2
		openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout "$name.key" \
			-out "$name.csr" -subj "/CN=$name" -addext "subjectAltName=$san" 2>/dev/null
		openssl ca -batch -config ca.cnf -notext -in "$name.csr" -out "$name.pem" "$@" 2>/dev/null
	}
	issue server "DNS:dns.test,IP:127.0.0.1" -days 30
	issue other "DNS:other.test" -days 30
	# OpenSSL 3.0's x509 cannot go back in time; ca can.
	issue expired "DNS:dns.test,IP:127.0.0.1" -startdate 20200101000000Z -enddate 20200201000000Z
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -keyout selfsigned.key \
		-out selfsigned.pem -days 30 -subj "/CN=dns.test" \
		-addext "subjectAltName=DNS:dns.test,IP:127.0.0.1" 2>/dev/null
	;;
run)
	d=$2
	tls_port=$3
	cert=$4
	key=$5
	plain_port=${6:-}
	extra=${7:-}
	mkdir -p "$d"
	{
		echo "server:"
		echo "	verbosity: 1"
		echo "	num-threads: 1"
		echo "	interface: 127.0.0.1@$tls_port"
		if [ -n "$plain_port" ]; then
			echo "	interface: 127.0.0.1@$plain_port"
		fi
		echo "	tls-port: $tls_port"
		echo "	tls-service-key: \"$key\""
		echo "	tls-service-pem: \"$cert\""
		echo "	do-daemonize: no"
		echo "	chroot: \"\""
		echo "	username: \"\""
		echo "	directory: \"$d\""
		echo "	pidfile: \"\""
		echo "	logfile: \"\""
		echo "	use-syslog: no"
		echo "	do-ip6: no"
		echo "	access-control: 127.0.0.0/8 allow"
		echo "	do-not-query-localhost: no"
		echo "	local-zone: \".\" static"
		echo "	local-zone: \"example.test.\" static"
		echo "	local-data: \"www.example.test. 300 IN A 192.0.2.1\""
		i=1
		while [ $i -le 100 ]; do
			echo "	local-data: \"big.example.test. 300 IN A 198.51.100.$i\""
			i=$((i + 1))
		done
		if [ -n "$extra" ]; then
			cat "$extra"
		fi
		echo "remote-control:"
		echo "	control-enable: no"
	} >"$d/unbound.conf"
	unbound-checkconf "$d/unbound.conf" >/dev/null
	exec unbound -d -c "$d/unbound.conf"
	;;
*)
	echo "usage: unbound-dot.sh certs DIR | run DIR TLS_PORT CERT KEY [PLAIN_PORT] [EXTRA]" >&2
	exit 2
	;;
esac
