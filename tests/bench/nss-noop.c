/* SPDX-License-Identifier: MIT */
/*
 * libnss_ztnanoop.so.2: the floor of the getaddrinfo benchmark. A "hosts"
 * module that answers one fixed name (BENCH_GAI_NAME, or its label) from
 * constants, with the very tuples libnss_ztna gives for it: the FQDN as
 * canonical name, one IPv4 and one IPv6 address. Whatever getaddrinfo costs
 * through this module is glibc's own work (nsswitch, sorting, the result
 * list); tests/bench/run-bench.sh compares libnss_ztna against it.
 *
 * It does the same output work as the real module (size check, tuples and
 * name written into the caller's buffer) and nothing else: no store, no hash.
 * Benchmark only; never installed.
 */
#include <errno.h>
#include <netdb.h>
#include <nss.h>
#include <stdalign.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "bench-peers.h"

#define NOOP_ENTRY(name) __attribute__((visibility("default"))) enum nss_status _nss_ztnanoop_##name

NOOP_ENTRY(gethostbyname4_r)(const char *name, struct gaih_addrtuple **pat, char *buffer, size_t buflen, int *errnop,
                             int *h_errnop, int32_t *ttlp);
NOOP_ENTRY(gethostbyname3_r)(const char *name, int af, struct hostent *result, char *buffer, size_t buflen,
                             int *errnop, int *h_errnop, int32_t *ttlp, char **canonp);
NOOP_ENTRY(gethostbyname2_r)(const char *name, int af, struct hostent *result, char *buffer, size_t buflen,
                             int *errnop, int *h_errnop);
NOOP_ENTRY(gethostbyname_r)(const char *name, struct hostent *result, char *buffer, size_t buflen, int *errnop,
                            int *h_errnop);

static const char noop_fqdn[] = BENCH_GAI_NAME;
#define NOOP_FQDN_LEN (sizeof(noop_fqdn) - 1)
#define NOOP_LABEL_LEN (NOOP_FQDN_LEN - sizeof(BENCH_DOMAIN))

static bool ascii_caseeq(const char *a, const char *b, size_t n) {
        for (size_t i = 0; i < n; i++) {
                char x = a[i], y = b[i];
                if (x >= 'A' && x <= 'Z')
                        x = (char) (x + ('a' - 'A'));
                if (x != y)
                        return false;
        }
        return true;
}

/* The name as the real module would match it: label or FQDN, any case, one
 * final dot allowed. */
static bool noop_match(const char *name) {
        size_t len = strnlen(name, NOOP_FQDN_LEN + 2);
        if (len > 0 && name[len - 1] == '.')
                len--;
        return (len == NOOP_FQDN_LEN || len == NOOP_LABEL_LEN) && ascii_caseeq(name, noop_fqdn, len);
}

static size_t align_pad(const char *p, size_t a) {
        return (size_t) (-(uintptr_t) p & (a - 1));
}

static enum nss_status not_ours(int *errnop, int *h_errnop) {
        *errnop = EINVAL;
        *h_errnop = NO_RECOVERY;
        return NSS_STATUS_UNAVAIL;
}

static enum nss_status too_small(int *errnop, int *h_errnop) {
        *errnop = ERANGE;
        *h_errnop = NETDB_INTERNAL;
        return NSS_STATUS_TRYAGAIN;
}

NOOP_ENTRY(gethostbyname4_r)(const char *name, struct gaih_addrtuple **pat, char *buffer, size_t buflen, int *errnop,
                             int *h_errnop, int32_t *ttlp) {
        if (!noop_match(name))
                return not_ours(errnop, h_errnop);

        size_t pad = align_pad(buffer, alignof(struct gaih_addrtuple));
        size_t needed = pad + 2 * sizeof(struct gaih_addrtuple) + NOOP_FQDN_LEN + 1;
        if (buflen < needed)
                return too_small(errnop, h_errnop);

        struct gaih_addrtuple *t = (struct gaih_addrtuple *) (buffer + pad);
        char *cname = (char *) (t + 2);
        struct in_addr v4 = bench_peer_v4(BENCH_GAI_PEER);
        struct in6_addr v6 = bench_peer_v6(BENCH_GAI_PEER);
        memcpy(cname, noop_fqdn, NOOP_FQDN_LEN + 1);
        t[0] = (struct gaih_addrtuple) { .next = &t[1], .name = cname, .family = AF_INET };
        memcpy(t[0].addr, &v4, 4);
        t[1] = (struct gaih_addrtuple) { .next = NULL, .name = cname, .family = AF_INET6 };
        memcpy(t[1].addr, &v6, 16);

        /* glibc may hand us a tuple of its own to fill first. */
        if (*pat)
                **pat = t[0];
        else
                *pat = &t[0];
        if (ttlp)
                *ttlp = BENCH_TTL;
        *h_errnop = NETDB_SUCCESS;
        return NSS_STATUS_SUCCESS;
}

NOOP_ENTRY(gethostbyname3_r)(const char *name, int af, struct hostent *result, char *buffer, size_t buflen,
                             int *errnop, int *h_errnop, int32_t *ttlp, char **canonp) {
        if (af == AF_UNSPEC)
                af = AF_INET;
        if ((af != AF_INET && af != AF_INET6) || !noop_match(name))
                return not_ours(errnop, h_errnop);

        size_t alen = af == AF_INET ? 4 : 16;
        size_t pad = align_pad(buffer, alignof(char *));
        /* aliases {label, NULL}, addresses {a, NULL}, a, fqdn, label */
        size_t needed = pad + 4 * sizeof(char *) + alen + NOOP_FQDN_LEN + 1 + NOOP_LABEL_LEN + 1;
        if (buflen < needed)
                return too_small(errnop, h_errnop);

        char **aliases = (char **) (buffer + pad);
        char **addrs = aliases + 2;
        char *addr = (char *) (addrs + 2);
        char *fqdn = addr + alen;
        char *label = fqdn + NOOP_FQDN_LEN + 1;
        if (af == AF_INET) {
                struct in_addr v4 = bench_peer_v4(BENCH_GAI_PEER);
                memcpy(addr, &v4, 4);
        } else {
                struct in6_addr v6 = bench_peer_v6(BENCH_GAI_PEER);
                memcpy(addr, &v6, 16);
        }
        memcpy(fqdn, noop_fqdn, NOOP_FQDN_LEN + 1);
        memcpy(label, noop_fqdn, NOOP_LABEL_LEN);
        label[NOOP_LABEL_LEN] = '\0';
        aliases[0] = label;
        aliases[1] = NULL;
        addrs[0] = addr;
        addrs[1] = NULL;
        *result = (struct hostent) {
                .h_name = fqdn,
                .h_aliases = aliases,
                .h_addrtype = af,
                .h_length = (int) alen,
                .h_addr_list = addrs,
        };
        if (ttlp)
                *ttlp = BENCH_TTL;
        if (canonp)
                *canonp = fqdn;
        *h_errnop = NETDB_SUCCESS;
        return NSS_STATUS_SUCCESS;
}

NOOP_ENTRY(gethostbyname2_r)(const char *name, int af, struct hostent *result, char *buffer, size_t buflen,
                             int *errnop, int *h_errnop) {
        return _nss_ztnanoop_gethostbyname3_r(name, af, result, buffer, buflen, errnop, h_errnop, NULL, NULL);
}

NOOP_ENTRY(gethostbyname_r)(const char *name, struct hostent *result, char *buffer, size_t buflen, int *errnop,
                            int *h_errnop) {
        return _nss_ztnanoop_gethostbyname3_r(name, AF_INET, result, buffer, buflen, errnop, h_errnop, NULL, NULL);
}
