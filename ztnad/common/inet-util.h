/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * An address and port as people write them, "100.64.0.1:53" and
 * "[fd7a:115c:a1e0::1]:853" (RFC 5952 text, brackets for IPv6): the one
 * formatter every part's log lines, status and findings use.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

/* "[" INET6_ADDRSTRLEN "]:65535" and its NUL. */
#define INET_HOST_PORT_MAX (INET6_ADDRSTRLEN + 8)

/* `addr` (a struct in_addr or in6_addr of `family`) and `port`. Returns the
 * length, -EAFNOSUPPORT for another family, -ENOBUFS when `size` is short
 * (the text is then cut, still terminated). */
static inline int inet_host_port(int family, const void *addr, uint16_t port, char *buf, size_t size) {
        char host[INET6_ADDRSTRLEN];
        int n;

        if ((family != AF_INET && family != AF_INET6) || !inet_ntop(family, addr, host, sizeof host)) {
                if (size > 0)
                        (void) snprintf(buf, size, "(family %d)", family);
                return -EAFNOSUPPORT;
        }
        n = snprintf(buf, size, family == AF_INET6 ? "[%s]:%u" : "%s:%u", host, port);
        return n < 0 || (size_t) n >= size ? -ENOBUFS : n;
}

/* The in_addr or in6_addr inside an AF_INET or AF_INET6 socket address. */
static inline const void *sockaddr_ip(const struct sockaddr_storage *sa) {
        if (sa->ss_family == AF_INET6)
                return &((const struct sockaddr_in6 *) (const void *) sa)->sin6_addr;
        return &((const struct sockaddr_in *) (const void *) sa)->sin_addr;
}

/* The same for a socket address (port in network order inside it). */
static inline int sockaddr_host_port(const struct sockaddr_storage *sa, char *buf, size_t size) {
        if (sa->ss_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) (const void *) sa;
                return inet_host_port(AF_INET, &in->sin_addr, ntohs(in->sin_port), buf, size);
        }
        if (sa->ss_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) (const void *) sa;
                return inet_host_port(AF_INET6, &in6->sin6_addr, ntohs(in6->sin6_port), buf, size);
        }
        return inet_host_port(sa->ss_family, NULL, 0, buf, size);
}
