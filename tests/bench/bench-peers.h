/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The synthetic tailnet of the benchmarks, shared by tests/bench/bench-nss.c (which
 * publishes it) and tests/bench/nss-noop.c (which answers the one measured name
 * with the same bytes, so both modules hand glibc identical work).
 *
 * Peer i is "host-%06u", with one IPv4 address 100.64.0.0 + i + 1 (inside
 * 100.64.0.0/10 up to i = 4194302) and one IPv6 address fd7a:115c:a1e0::/48
 * with the IPv4 address in its last 32 bits, the way mesh VPNs mirror them.
 */

#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define BENCH_DOMAIN       "yourorg.zt.net"
#define BENCH_PEERS_MAX    4194302u
#define BENCH_NAME_SIZE    32u /* "host-012345.yourorg.zt.net" and its NUL fit */
#define BENCH_TTL          300u

/* The peer every getaddrinfo variant asks for, present in the large store. */
#define BENCH_GAI_PEER     12345u
#define BENCH_GAI_NAME     "host-012345." BENCH_DOMAIN

static inline void bench_peer_label(uint32_t i, char buf[BENCH_NAME_SIZE]) {
        snprintf(buf, BENCH_NAME_SIZE, "host-%06u", (unsigned) i);
}

static inline void bench_peer_fqdn(uint32_t i, char buf[BENCH_NAME_SIZE]) {
        snprintf(buf, BENCH_NAME_SIZE, "host-%06u.%s", (unsigned) i, BENCH_DOMAIN);
}

static inline struct in_addr bench_peer_v4(uint32_t i) {
        uint32_t host = (UINT32_C(100) << 24 | UINT32_C(64) << 16) + i + 1;
        return (struct in_addr) { .s_addr = htonl(host) };
}

static inline struct in6_addr bench_peer_v6(uint32_t i) {
        static const uint8_t prefix[6] = { 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0 };
        struct in6_addr a = {};
        struct in_addr v4 = bench_peer_v4(i);
        memcpy(a.s6_addr, prefix, sizeof(prefix));
        memcpy(a.s6_addr + 12, &v4, 4);
        return a;
}
