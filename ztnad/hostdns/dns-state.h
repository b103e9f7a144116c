/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The DNS state file, /run/ztna/dns-state: what the unprivileged daemon
 * tells the root helper (`ztnad --dns-manager`, dns-manager.c) so that the
 * helper can point the host's resolver at the stub. It crosses a privilege
 * boundary: ztnad (user ztna) writes it, root reads it, so the reader
 * treats it as hostile (dns_state_read() checks the file's owner and mode
 * like the record store's reader does; dns_state_parse() takes nothing it
 * does not expect).
 *
 *     ztna-dns-state 1
 *     server 127.0.0.1 53
 *     server ::1 53
 *     domain yourorg.zt.net
 *     range 100.64.0.0/10
 *     range fd7a:115c:a1e0::/48
 *
 * The first line exactly; then one "KEY VALUE" a line, one space between,
 * every line ending in '\n', no blank lines, no comments, the keys in this
 * order. `server`: the
 * addresses and ports the stub has bound (loopback only; the helper picks
 * what its mode can use), at most DNS_STATE_SERVERS_MAX. `domain`: the published tailnet domain (absent
 * before the first publish). `range`: a tailnet range in canonical form
 * (host bits zero), at most DNS_STATE_RANGES_MAX.
 */

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "shm.h"

#define DNS_STATE_MAGIC "ztna-dns-state 1"
#define DNS_STATE_FILE_NAME "dns-state"
#define DNS_STATE_SIZE_MAX 4096u
#define DNS_STATE_SERVERS_MAX 8u
#define DNS_STATE_RANGES_MAX 8u
#define DNS_STATE_DOMAIN_MAX 253u
#define DNS_STATE_WHY_MAX 256u

typedef struct DnsStateServer {
        int family; /* AF_INET or AF_INET6 */
        union {
                struct in_addr in;
                struct in6_addr in6;
        } addr;
        uint16_t port;
} DnsStateServer;

typedef struct DnsState {
        size_t n_servers;
        DnsStateServer servers[DNS_STATE_SERVERS_MAX];
        char domain[DNS_STATE_DOMAIN_MAX + 1]; /* "" before the first publish */
        size_t n_ranges;
        ShmPrefix ranges[DNS_STATE_RANGES_MAX];
} DnsState;

/* Whether `s` may be in the file: a loopback address and a port. */
bool dns_state_server_usable(const DnsStateServer *s);
/* Whether resolved takes `s` as a DNS server: usable, and not 127.0.0.53
 * or 127.0.0.54 (systemd 252 refuses those, its own stub listeners, with
 * "Invalid DNS server address"). */
bool dns_state_server_resolved_ok(const DnsStateServer *s);

/* "127.0.0.1:53", "[::1]:53". Returns the length or -ENOBUFS. */
int dns_state_server_text(const DnsStateServer *s, char *buf, size_t size);

/* The file's text. Returns its length, -ENOBUFS if `size` is too small or
 * -EINVAL for a state that dns_state_parse() would refuse. */
int dns_state_format(const DnsState *s, char *buf, size_t size);

/* Parses `len` bytes (no NUL needed). On failure *ret is left alone and
 * `why` (may be NULL) says which line and why.
 * Returns 0 or -EBADMSG. */
int dns_state_parse(const char *data, size_t len, DnsState *ret, char *why, size_t why_size);

/* Writes the file atomically (a temporary file renamed over it), 0644. */
int dns_state_write(const char *path, const DnsState *s);

/* Reads and parses the file as root does: not through a symbolic link, a
 * regular file with one link, no group/other write bit, owned by root or
 * by the owner of its directory, which must be owned by root or a system
 * account (uid < 1000) and not writable by others.
 * Returns 0, -ENOENT, -EPERM (untrusted, with `why`), -EBADMSG, -errno. */
int dns_state_read(const char *path, DnsState *ret, char *why, size_t why_size);

/* ---- reverse zones ---- */

/* "255.255.255.255.in-addr.arpa" or the 32 nibbles of ip6.arpa, plus '\0'. */
#define DNS_REVERSE_ZONE_MAX 74u
/* The most zones one prefix needs: a v4 prefix one bit above an octet
 * boundary needs 2^7; a v6 prefix, 2^3 (nibbles). */
#define DNS_REVERSE_ZONES_PER_PREFIX 128u

/* The reverse zones that together cover exactly `p`: whole octets under
 * in-addr.arpa (RFC 1035 3.5) or nibbles under ip6.arpa (RFC 3596 2.5);
 * a prefix between boundaries is split into the zones of the next one
 * (100.64.0.0/10: 64.100.in-addr.arpa ... 127.100.in-addr.arpa).
 * Writes at most `max` zones; returns how many there are (which may be
 * more than `max`), or -EINVAL for a bad prefix. */
int dns_reverse_zones(const ShmPrefix *p, char (*zones)[DNS_REVERSE_ZONE_MAX], size_t max);
