/* SPDX-License-Identifier: MIT */
/*
 * The peers document, validated whole: what a document may claim (its
 * domain, its address space, its peers' names and addresses, no repeats)
 * and the map built from its values. Nothing here is trusted: the file may
 * come from a control plane, a script or a typo, and whatever passes is what
 * every process on the machine will resolve. The JSON text itself is read by
 * peers-json.c.
 */

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "sources/peers.h"
#include "common/read-file.h"
#include "conf/public-suffix.h"
#include "shm-format.h"
#include "siphash.h"
#include "sources/peers-internal.h"

/* Counts and indexes below are kept in uint32_t: the input cap bounds them. */
static_assert(PEERS_INPUT_MAX < UINT32_MAX, "input cap must keep counts in uint32_t");

struct PeerMap {
        char *strings; /* the domain, then every peer name, NUL-terminated */
        ShmPeer *peers;
        size_t n_peers;
        struct in_addr *v4;
        struct in6_addr *v6;
        size_t n_ranges;
        ShmPrefix ranges[SHM_RANGES_MAX];
};

/* Names that mean something on every host already (/etc/hosts entries,
 * RFC 6761 special-use names), in one place. A peer may not be called by a
 * PEER name; the tailnet domain may not be, or be under, a ZONE name. */
enum {
        RESERVED_PEER = 1 << 0,
        RESERVED_ZONE = 1 << 1,
};

static const struct {
        const char *name;
        unsigned flags;
} reserved_names[] = {
        { "localhost", RESERVED_PEER | RESERVED_ZONE }, /* RFC 6761 6.3 */
        { "localdomain", RESERVED_PEER | RESERVED_ZONE }, /* /etc/hosts convention */
        { "ip6-localhost", RESERVED_PEER },
        { "ip6-loopback", RESERVED_PEER },
        { "ip6-allnodes", RESERVED_PEER },
        { "ip6-allrouters", RESERVED_PEER },
        { "ip6-localnet", RESERVED_PEER },
        { "ip6-mcastprefix", RESERVED_PEER },
        { "broadcasthost", RESERVED_PEER },
        { "local", RESERVED_ZONE },   /* RFC 6762: multicast DNS owns it */
        { "invalid", RESERVED_ZONE }, /* RFC 6761 6.4 */
        { "arpa", RESERVED_ZONE },    /* reverse mapping, RFC 3172 */
};

/* One address as read, with where it was read, for the duplicate checks. */
typedef struct AddrEntry {
        uint8_t family; /* AF_INET or AF_INET6 */
        uint8_t bytes[16];
        uint32_t peer, pos;
} AddrEntry;
/* The repeat check hashes family and bytes as one run of 17 bytes. */
static_assert(offsetof(AddrEntry, bytes) == 1, "bytes follow family directly");

static bool ascii_equal(const char *a, size_t a_len, const char *b) {
        size_t b_len = strlen(b);

        if (a_len != b_len)
                return false;
        for (size_t i = 0; i < a_len; i++)
                if (ascii_tolower(a[i]) != ascii_tolower(b[i]))
                        return false;
        return true;
}

static int ascii_compare(const char *a, const char *b) {
        for (;; a++, b++) {
                int d = (unsigned char) ascii_tolower(*a) - (unsigned char) ascii_tolower(*b);

                if (d != 0 || *a == '\0')
                        return d;
        }
}

static bool all_digits(const char *s, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (s[i] < '0' || s[i] > '9')
                        return false;
        return true;
}

/* Whether `s` (`len` bytes) is one LDH label (RFC 1123 2.1, RFC 952):
 * 1..63 letters, digits and hyphens, no hyphen first or last. If not, `why`
 * gets the reason as a phrase that follows the quoted label. */
static bool label_valid(const char *s, size_t len, char *why, size_t why_size) {
        if (len == 0) {
                (void) snprintf(why, why_size, "is empty");
                return false;
        }
        if (len > SHM_LABEL_MAX) {
                (void) snprintf(why, why_size, "is %zu characters long; a DNS label is at most %u", len,
                                SHM_LABEL_MAX);
                return false;
        }
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];

                if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-')
                        continue;
                if (c > 0x20 && c < 0x7f)
                        (void) snprintf(why, why_size,
                                        "contains '%c' at position %zu; only letters, digits and '-' are allowed",
                                        c, i + 1);
                else
                        (void) snprintf(why, why_size,
                                        "contains byte 0x%02x at position %zu; only letters, digits and '-' are allowed",
                                        c, i + 1);
                return false;
        }
        if (s[0] == '-' || s[len - 1] == '-') {
                (void) snprintf(why, why_size, "%s with '-'", s[0] == '-' ? "starts" : "ends");
                return false;
        }
        return true;
}

/* ---- the policy: what this machine lets a document claim ---- */

#define POLICY_TEXT_MAX 200 /* a list in a message, cut short with "..." */

static bool policy_has_domain(const PeersPolicy *policy, const char *s, size_t len) {
        for (size_t i = 0; i < policy->n_domains; i++)
                if (ascii_equal(s, len, policy->domains[i]))
                        return true;
        return false;
}

/* Whether the first `bits` bits of `a` and `b` agree. */
static bool bits_equal(const uint8_t *a, const uint8_t *b, unsigned bits) {
        unsigned whole = bits / 8, rest = bits % 8;

        if (memcmp(a, b, whole) != 0)
                return false;
        return rest == 0 || ((a[whole] ^ b[whole]) & (uint8_t) (0xff00u >> rest)) == 0;
}

static const uint8_t *prefix_bytes(const ShmPrefix *p) {
        return p->family == AF_INET ? (const uint8_t *) &p->addr.in : p->addr.in6.s6_addr;
}

/* Whether the prefix `family`/`bytes`/`prefixlen` (an address: its full
 * length) lies inside one of the allowed prefixes. */
static bool policy_allows(const PeersPolicy *policy, int family, const uint8_t *bytes, unsigned prefixlen) {
        for (size_t i = 0; i < policy->n_allowed; i++) {
                const ShmPrefix *a = &policy->allowed[i];

                if (a->family == family && prefixlen >= a->prefixlen &&
                    bits_equal(prefix_bytes(a), bytes, a->prefixlen))
                        return true;
        }
        return false;
}

/* `items` joined by spaces into `buf`, cut short with "..." when long. */
static const char *join_text(char buf[static POLICY_TEXT_MAX], size_t n, const char *(*item)(const void *, size_t, char *),
                             const void *list) {
        size_t o = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < n; i++) {
                char one[INET6_ADDRSTRLEN + 8];
                const char *t = item(list, i, one);
                size_t tl = strlen(t);

                if (o + 1 + tl + 4 > POLICY_TEXT_MAX) {
                        memcpy(buf + o, " ...", 5);
                        break;
                }
                o += (size_t) snprintf(buf + o, POLICY_TEXT_MAX - o, "%s%s", i > 0 ? " " : "", t);
        }
        return buf;
}

static const char *domain_item(const void *list, size_t i, char *one) {
        (void) one;
        return ((const PeersPolicy *) list)->domains[i];
}

static const char *prefix_text(const ShmPrefix *p, char *buf) {
        char text[INET6_ADDRSTRLEN];

        if (!inet_ntop(p->family, &p->addr, text, sizeof text))
                (void) snprintf(text, sizeof text, "?");
        (void) snprintf(buf, INET6_ADDRSTRLEN + 8, "%s/%u", text, p->prefixlen);
        return buf;
}

static const char *allowed_item(const void *list, size_t i, char *one) {
        return prefix_text(&((const PeersPolicy *) list)->allowed[i], one);
}

static const char *policy_domains_text(const PeersPolicy *policy, char buf[static POLICY_TEXT_MAX]) {
        return join_text(buf, policy->n_domains, domain_item, policy);
}

static const char *policy_allowed_text(const PeersPolicy *policy, char buf[static POLICY_TEXT_MAX]) {
        return join_text(buf, policy->n_allowed, allowed_item, policy);
}

/* The tailnet domain at `v`, copied to `ret` without the one tolerated
 * final dot: exactly the name the store will hold. */
static int parse_domain(const Parser *p, size_t v, char ret[static SHM_DOMAIN_MAX + 1], size_t *ret_len) {
        const char *s;
        size_t len, n_labels = 0, label_start = 0;
        char q[QUOTE_MAX], why[160], copy[SHM_DOMAIN_MAX + 1];
        struct in_addr a;
        int r;

        if (v == NO_VAL)
                return peers_fail(p, AT("domain"), "missing (the tailnet's DNS domain, e.g. \"yourorg.zt.net\")");
        r = peers_get_string(p, AT("domain"), v, &s, &len);
        if (r < 0)
                return r;
        peers_quote(q, s, len);
        if (len > 0 && s[len - 1] == '.')
                len--;
        if (len == 0)
                return peers_fail(p, AT("domain"), "%s is empty", q);
        if (len > SHM_DOMAIN_MAX)
                return peers_fail(p, AT("domain"), "%s is %zu characters long; a domain name is at most %u", q, len,
                            SHM_DOMAIN_MAX);

        for (size_t i = 0; i <= len; i++) {
                char lq[QUOTE_MAX];

                if (i < len && s[i] != '.')
                        continue;
                n_labels++;
                if (!label_valid(s + label_start, i - label_start, why, sizeof why))
                        return peers_fail(p, AT("domain"), "%s: label %zu %s %s", q, n_labels,
                                    peers_quote(lq, s + label_start, i - label_start), why);
                if (i < len)
                        label_start = i + 1; /* else it stays on the last label */
        }

        for (size_t i = 0; i < ELEMENTSOF(reserved_names); i++) {
                const char *z = reserved_names[i].name;
                size_t zl = strlen(z);

                if (!(reserved_names[i].flags & RESERVED_ZONE))
                        continue;
                /* The zone itself or any name under it. */
                if (ascii_equal(s, len, z) ||
                    (len > zl && s[len - zl - 1] == '.' && ascii_equal(s + len - zl, zl, z)))
                        return peers_fail(p, AT("domain"), "%s is reserved (\"%s\" and names under it)", q, z);
        }

        /* A one-label domain ("net") would make every name under that
         * top-level domain ours, answered "not found" without asking DNS. */
        if (n_labels < 2)
                return peers_fail(p, AT("domain"), "%s has a single label; the tailnet domain needs at least two", q);
        /* RFC 3696 2: an all-numeric top-level label reads as an address. */
        if (all_digits(s + label_start, len - label_start))
                return peers_fail(p, AT("domain"),
                                  "%s ends in an all-numeric label, which reads as an IPv4 address", q);
        /* Hexadecimal parts too: inet_aton() takes "0x1.0x2". */
        memcpy(copy, s, len);
        copy[len] = '\0';
        if (inet_aton(copy, &a))
                return peers_fail(p, AT("domain"), "%s reads as an IPv4 address", q);

        r = public_suffix_check(s, len);
        if (r < 0)
                return peers_fail(p, AT("domain"), "%s cannot be checked against the public suffix list: %s", q,
                            strerror(-r));
        if (r > 0)
                return peers_fail(p, AT("domain"),
                            "%s is a public suffix: anyone may register names under it, so no tailnet owns it", q);
        if (p->policy && !policy_has_domain(p->policy, s, len)) {
                char list[POLICY_TEXT_MAX];

                return peers_fail(p, AT("domain"), "%s is not a domain this machine takes maps for (domains in ztnad.conf: %s)",
                            q, policy_domains_text(p->policy, list));
        }

        memcpy(ret, s, len);
        ret[len] = '\0';
        *ret_len = len;
        return 0;
}

/* One "ADDRESS/LENGTH" of the tailnet ranges: reverse lookups inside it are
 * answered by the store, so host bits and a /0 are refused. */
static int parse_range(const Parser *p, Where w, size_t v, ShmPrefix *ret) {
        const char *s, *slash;
        size_t len, alen, plen;
        char q[QUOTE_MAX], addr[INET6_ADDRSTRLEN];
        unsigned prefixlen = 0, max;
        ShmPrefix prefix = {};
        const uint8_t *bytes;
        int r;

        r = peers_get_string(p, w, v, &s, &len);
        if (r < 0)
                return r;
        peers_quote(q, s, len);
        slash = memchr(s, '/', len);
        if (!slash)
                return peers_fail(p, w, "%s has no prefix length (expected ADDRESS/LENGTH, e.g. \"100.64.0.0/10\")", q);
        alen = (size_t) (slash - s);
        plen = len - alen - 1;
        if (plen == 0 || plen > 3 || !all_digits(slash + 1, plen) || (plen > 1 && slash[1] == '0'))
                return peers_fail(p, w, "%s has a bad prefix length (expected a decimal number)", q);
        for (size_t i = 0; i < plen; i++)
                prefixlen = prefixlen * 10 + (unsigned) (slash[1 + i] - '0');
        if (alen >= sizeof addr)
                return peers_fail(p, w, "%s is not an IPv4 or IPv6 prefix", q);
        memcpy(addr, s, alen);
        addr[alen] = '\0';

        if (inet_pton(AF_INET, addr, &prefix.addr.in) == 1) {
                prefix.family = AF_INET;
                max = 32;
                bytes = (const uint8_t *) &prefix.addr.in;
        } else if (inet_pton(AF_INET6, addr, &prefix.addr.in6) == 1) {
                prefix.family = AF_INET6;
                max = 128;
                bytes = prefix.addr.in6.s6_addr;
        } else
                return peers_fail(p, w, "%s is not an IPv4 or IPv6 prefix", q);

        if (prefixlen > max)
                return peers_fail(p, w, "%s: prefix length %u is more than %u", q, prefixlen, max);
        if (prefixlen == 0)
                return peers_fail(p, w, "%s would claim every address; use a real tailnet range", q);
        for (unsigned bit = prefixlen; bit < max; bit++)
                if (bytes[bit / 8] & (0x80u >> (bit % 8)))
                        return peers_fail(p, w, "%s has bits set after the first %u", q, prefixlen);

        prefix.prefixlen = prefixlen;
        *ret = prefix;
        return 0;
}

static int parse_ranges(const Parser *p, const Sizes *z, PeerMap *m) {
        size_t v = z->top[TOP_RANGES], item;
        Items it;

        if (v == NO_VAL) {
                /* 100.64.0.0/10 (the CGNAT block, RFC 6598) and
                 * fd7a:115c:a1e0::/48, the ranges mesh VPNs hand out. */
                m->ranges[0] = (ShmPrefix) { .family = AF_INET, .prefixlen = 10 };
                m->ranges[0].addr.in.s_addr = htonl(UINT32_C(0x64400000));
                m->ranges[1] = (ShmPrefix) {
                        .family = AF_INET6,
                        .prefixlen = 48,
                        .addr.in6.s6_addr = { 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0 },
                };
                m->n_ranges = 2;
                /* Published all the same: they must keep to the policy. */
                for (size_t k = 0; p->policy && k < m->n_ranges; k++)
                        if (!policy_allows(p->policy, m->ranges[k].family, prefix_bytes(&m->ranges[k]),
                                           m->ranges[k].prefixlen)) {
                                char one[INET6_ADDRSTRLEN + 8], list[POLICY_TEXT_MAX];

                                return peers_fail(p, AT("ranges"),
                                            "missing, and the default range %s is outside the address space this "
                                            "machine allows (address_space in ztnad.conf: %s); list the tailnet's "
                                            "ranges",
                                            prefix_text(&m->ranges[k], one), policy_allowed_text(p->policy, list));
                        }
                return 0;
        }
        if (!peers_value_is(p, v, '['))
                return peers_fail(p, AT("ranges"), "expected an array of prefixes, got %s", peers_value_kind(p, v));
        if (z->n_ranges > SHM_RANGES_MAX)
                return peers_fail(p, AT("ranges"), "has %zu prefixes; at most %u are supported", z->n_ranges,
                            SHM_RANGES_MAX);

        it = peers_items_at(p, v);
        for (size_t i = 0; (item = peers_items_next(&it)) != NO_VAL && i < SHM_RANGES_MAX; i++) {
                ShmPrefix *range = &m->ranges[i];
                int r = parse_range(p, AT_ITEM("ranges", i), item, range);

                if (r < 0)
                        return r;
                if (p->policy && !policy_allows(p->policy, range->family, prefix_bytes(range), range->prefixlen)) {
                        char one[INET6_ADDRSTRLEN + 8], list[POLICY_TEXT_MAX], q[QUOTE_MAX];

                        (void) prefix_text(range, one);
                        return peers_fail(p, AT_ITEM("ranges", i),
                                    "%s is outside the address space this machine allows (address_space in "
                                    "ztnad.conf: %s)",
                                    peers_quote(q, one, strlen(one)), policy_allowed_text(p->policy, list));
                }
        }
        m->n_ranges = z->n_ranges;
        return 0;
}

static int parse_ttl(const Parser *p, Where w, size_t v, uint32_t *ret) {
        Lexer l = peers_lexer_at(p, v);
        bool integer = false;
        int64_t t = 0;

        if (!(peers_value_is(p, v, '-') || (v < p->len && peers_is_digit((unsigned char) p->data[v]))) ||
            peers_lex_number(&l, &integer, &t) < 0 || !integer)
                return peers_fail(p, w, "expected an integer number of seconds, got %s", peers_value_kind(p, v));
        /* RFC 2181 8: a TTL is 0..2^31-1. */
        if (t < 0 || t > INT32_MAX)
                return peers_fail(p, w, "%lld is out of range (0..%d seconds)", (long long) t, INT32_MAX);
        *ret = (uint32_t) t;
        return 0;
}

/* A tailnet address of a peer. Refuses what could never be this peer's
 * address on the mesh, so a copy-paste slip fails here, not at connect time. */
static int parse_address(const Parser *p, Where w, size_t v, AddrEntry *ret) {
        AddrEntry e = {};
        const char *s;
        size_t len;
        char q[QUOTE_MAX], text[INET6_ADDRSTRLEN];
        int r;

        r = peers_get_string(p, w, v, &s, &len);
        if (r < 0)
                return r;
        if (memchr(s, '/', len))
                return peers_fail(p, w, "%s is a CIDR prefix, not an address", peers_quote(q, s, len));
        if (memchr(s, '%', len))
                return peers_fail(p, w, "%s has a scope id, which a name cannot carry", peers_quote(q, s, len));
        if (len >= sizeof text)
                return peers_fail(p, w, "%s is not an IPv4 or IPv6 address", peers_quote(q, s, len));
        memcpy(text, s, len);
        text[len] = '\0';

        if (inet_pton(AF_INET, text, e.bytes) == 1) {
                uint8_t *b = e.bytes;

                e.family = AF_INET;
                if (b[0] == 0)
                        return peers_fail(p, w, "%s is %s", peers_quote(q, s, len),
                                    (b[1] | b[2] | b[3]) ? "in 0.0.0.0/8 (\"this network\", RFC 1122)"
                                                         : "the unspecified address");
                if (b[0] == 127)
                        return peers_fail(p, w, "%s is a loopback address", peers_quote(q, s, len));
                if (b[0] >= 224 && b[0] <= 239)
                        return peers_fail(p, w, "%s is a multicast address", peers_quote(q, s, len));
                if (b[0] == 255 && b[1] == 255 && b[2] == 255 && b[3] == 255)
                        return peers_fail(p, w, "%s is the limited broadcast address", peers_quote(q, s, len));
        } else if (inet_pton(AF_INET6, text, e.bytes) == 1) {
                struct in6_addr a;

                e.family = AF_INET6;
                memcpy(&a, e.bytes, sizeof a);
                if (IN6_IS_ADDR_UNSPECIFIED(&a))
                        return peers_fail(p, w, "%s is the unspecified address", peers_quote(q, s, len));
                if (IN6_IS_ADDR_LOOPBACK(&a))
                        return peers_fail(p, w, "%s is a loopback address", peers_quote(q, s, len));
                if (IN6_IS_ADDR_MULTICAST(&a))
                        return peers_fail(p, w, "%s is a multicast address", peers_quote(q, s, len));
                if (IN6_IS_ADDR_V4MAPPED(&a))
                        return peers_fail(p, w, "%s is an IPv4-mapped IPv6 address; list the IPv4 address itself", peers_quote(q, s, len));
                /* Useless without an interface, which a name cannot carry. */
                if (IN6_IS_ADDR_LINKLOCAL(&a))
                        return peers_fail(p, w, "%s is a link-local address", peers_quote(q, s, len));
        } else
                return peers_fail(p, w, "%s is not an IPv4 or IPv6 address", peers_quote(q, s, len));

        *ret = e;
        return 0;
}

/* The name of peer `i`, checked as one label the resolver will not mistake
 * for anything else; `domain_len` bounds the FQDN built from it. */
static int parse_name(const Parser *p, size_t i, size_t v, size_t domain_len, const char **ret,
                      size_t *ret_len) {
        Where w = AT_PEER(i, "name");
        const char *s;
        size_t len;
        char q[QUOTE_MAX], why[160], text[SHM_LABEL_MAX + 1];
        struct in_addr a;
        int r;

        if (v == NO_VAL)
                return peers_fail(p, w, "missing (every peer needs a name)");
        r = peers_get_string(p, w, v, &s, &len);
        if (r < 0)
                return r;
        if (memchr(s, '.', len))
                return peers_fail(p, w, "%s contains '.'; a peer name is a single label (the domain is added to it)", peers_quote(q, s, len));
        if (!label_valid(s, len, why, sizeof why))
                return peers_fail(p, w, "%s %s", peers_quote(q, s, len), why);
        /* getaddrinfo() tries inet_aton() before NSS: "100" or "0x10" would
         * be taken for an address and never reach the store. */
        if (all_digits(s, len))
                return peers_fail(p, w,
                                  "%s is all digits, which resolvers read as an IPv4 address", peers_quote(q, s, len));
        memcpy(text, s, len); /* a valid label fits */
        text[len] = '\0';
        if (inet_aton(text, &a))
                return peers_fail(p, w, "%s reads as an IPv4 address", peers_quote(q, s, len));
        for (size_t k = 0; k < ELEMENTSOF(reserved_names); k++)
                if ((reserved_names[k].flags & RESERVED_PEER) && ascii_equal(s, len, reserved_names[k].name))
                        return peers_fail(p, w, "%s is a reserved name", peers_quote(q, s, len));
        if (len + 1 + domain_len > SHM_DOMAIN_MAX)
                return peers_fail(p, w, "%s makes a %zu-character name with the domain; a name is at most %u", peers_quote(q, s, len),
                            len + 1 + domain_len, SHM_DOMAIN_MAX);
        *ret = s;
        *ret_len = len;
        return 0;
}

/* The names of the map, one after the other in the strings blob. */
typedef struct Names {
        char *next, *end;
} Names;

/* Peer `i` at `v` (ending at *ret_end): fills `peer` except its address
 * pointers, copies the name to `names` and appends its addresses to
 * `entries` (room for `max_entries`, as the first pass counted). */
static int parse_peer(const Parser *p, size_t i, size_t v, size_t *ret_end, size_t domain_len, uint32_t default_ttl,
                      ShmPeer *peer, Names *names, AddrEntry *entries, size_t *n_entries, size_t max_entries) {
        size_t vals[_PEER_MAX], addrs, item;
        const char *name = NULL;
        size_t name_len = 0;
        Items it;
        int r;

        if (!peers_value_is(p, v, '{'))
                return peers_fail(p, AT_ITEM("peers", i), "expected an object, got %s", peers_value_kind(p, v));
        r = peers_peer_members(p, i, v, vals, ret_end);
        if (r < 0)
                return r;

        r = parse_name(p, i, vals[PEER_NAME], domain_len, &name, &name_len);
        if (r < 0)
                return r;
        /* Copied now: the address strings below may reuse the scratch
         * buffer the name was decoded into. */
        if ((size_t) (names->end - names->next) < name_len + 1)
                return peers_fail_code(p, -EINVAL, AT_ROOT, "the first pass counted the names wrong");
        memcpy(names->next, name, name_len);
        names->next[name_len] = '\0';
        *peer = (ShmPeer) { .name = names->next, .ttl = default_ttl, .online = true };
        names->next += name_len + 1;
        name = peer->name;

        if (vals[PEER_ONLINE] != NO_VAL) {
                if (!peers_value_is(p, vals[PEER_ONLINE], 't') && !peers_value_is(p, vals[PEER_ONLINE], 'f'))
                        return peers_fail(p, AT_PEER(i, "online"), "expected true or false, got %s",
                                    peers_value_kind(p, vals[PEER_ONLINE]));
                peer->online = peers_value_is(p, vals[PEER_ONLINE], 't');
        }
        if (vals[PEER_TTL] != NO_VAL) {
                r = parse_ttl(p, AT_PEER(i, "ttl"), vals[PEER_TTL], &peer->ttl);
                if (r < 0)
                        return r;
        }

        addrs = vals[PEER_ADDRESSES];
        if (addrs == NO_VAL)
                return peers_fail(p, AT_PEER(i, "addresses"), "missing (use [] for a peer without addresses)");
        if (!peers_value_is(p, addrs, '['))
                return peers_fail(p, AT_PEER(i, "addresses"), "expected an array of addresses, got %s",
                            peers_value_kind(p, addrs));
        it = peers_items_at(p, addrs);
        for (size_t j = 0; (item = peers_items_next(&it)) != NO_VAL; j++) {
                AddrEntry *e;

                if (*n_entries >= max_entries)
                        return peers_fail_code(p, -EINVAL, AT_ROOT, "the first pass counted the addresses wrong");
                e = &entries[*n_entries];
                r = parse_address(p, AT_ADDR(i, j), item, e);
                if (r < 0)
                        return r;
                if (p->policy && !policy_allows(p->policy, e->family, e->bytes, e->family == AF_INET ? 32 : 128)) {
                        char text[INET6_ADDRSTRLEN], list[POLICY_TEXT_MAX], q[QUOTE_MAX], qa[QUOTE_MAX];

                        if (!inet_ntop(e->family, e->bytes, text, sizeof text))
                                (void) snprintf(text, sizeof text, "?");
                        return peers_fail(p, AT_ADDR(i, j),
                                    "%s of peer %s is outside the address space this machine allows "
                                    "(address_space in ztnad.conf: %s)",
                                    peers_quote(qa, text, strlen(text)), peers_quote(q, name, name_len),
                                    policy_allowed_text(p->policy, list));
                }
                e->peer = (uint32_t) i;
                e->pos = (uint32_t) j;
                (*n_entries)++;
                if (e->family == AF_INET)
                        peer->n_v4++;
                else
                        peer->n_v6++;
                if (peer->n_v4 > SHM_ADDRS_MAX || peer->n_v6 > SHM_ADDRS_MAX)
                        return peers_fail(p, AT_PEER(i, "addresses"), "has more than %u IPv%c addresses",
                                    SHM_ADDRS_MAX, e->family == AF_INET ? '4' : '6');
        }
        return 0;
}

/* ---- repeats, found in document order ---- */

/* An open-addressed set of indexes (UINT32_MAX: an empty slot), at least
 * twice as many slots as entries, keyed with SipHash so that a document
 * cannot be arranged into long probe chains. */
typedef struct IndexSet {
        uint32_t *slots;
        size_t mask;
        uint64_t key[2];
} IndexSet;

static int index_set_init(IndexSet *set, size_t n) {
        size_t size = 16;

        while (size < 2 * n)
                size <<= 1;
        set->slots = malloc(size * sizeof *set->slots);
        if (!set->slots)
                return -ENOMEM;
        memset(set->slots, 0xff, size * sizeof *set->slots);
        set->mask = size - 1;
        if (getrandom(set->key, sizeof set->key, GRND_NONBLOCK) != (ssize_t) sizeof set->key) {
                /* Early boot: a key nobody outside can predict in detail. */
                struct timespec ts;

                (void) clock_gettime(CLOCK_MONOTONIC, &ts);
                set->key[0] = (uint64_t) ts.tv_nsec ^ ((uint64_t) ts.tv_sec << 32) ^ (uint64_t) (uintptr_t) set;
                set->key[1] = set->key[0] * UINT64_C(0x9e3779b97f4a7c15) ^ (uint64_t) getpid();
        }
        return 0;
}

/* Reports the first name, in document order, that repeats an earlier one
 * (names compared case-insensitively). */
static int check_duplicate_names(const Parser *p, const PeerMap *m) {
        IndexSet set;
        char q1[QUOTE_MAX], q2[QUOTE_MAX];

        if (m->n_peers < 2)
                return 0;
        if (index_set_init(&set, m->n_peers) < 0)
                return peers_fail_code(p, -ENOMEM, AT_ROOT, "out of memory");
        for (size_t i = 0; i < m->n_peers; i++) {
                const char *name = m->peers[i].name;
                size_t h = (size_t) siphash13(set.key, name, strlen(name), 1) & set.mask;

                for (;; h = (h + 1) & set.mask) {
                        uint32_t earlier = set.slots[h];

                        if (earlier == UINT32_MAX) {
                                set.slots[h] = (uint32_t) i;
                                break;
                        }
                        if (ascii_compare(m->peers[earlier].name, name) == 0) {
                                free(set.slots);
                                return peers_fail(p, AT_PEER(i, "name"),
                                            "%s is the same name as peers[%" PRIu32 "].name %s (names are compared "
                                            "case-insensitively)",
                                            peers_quote(q1, name, strlen(name)), earlier,
                                            peers_quote(q2, m->peers[earlier].name, strlen(m->peers[earlier].name)));
                        }
                }
        }
        free(set.slots);
        return 0;
}

/* An address listed twice in a peer is a slip; the same address on two peers
 * would make a reverse lookup answer either. `entries` are in document
 * order; the first repeat in that order is reported. */
static int check_duplicate_addresses(const Parser *p, const PeerMap *m, const AddrEntry *entries, size_t n) {
        IndexSet set;
        char text[INET6_ADDRSTRLEN], q[QUOTE_MAX];

        if (n < 2)
                return 0;
        if (index_set_init(&set, n) < 0)
                return peers_fail_code(p, -ENOMEM, AT_ROOT, "out of memory");
        for (size_t i = 0; i < n; i++) {
                const AddrEntry *e = &entries[i];
                size_t h = (size_t) siphash13(set.key, &e->family, 1 + sizeof e->bytes, 0) & set.mask;

                for (;; h = (h + 1) & set.mask) {
                        const AddrEntry *orig;

                        if (set.slots[h] == UINT32_MAX) {
                                set.slots[h] = (uint32_t) i;
                                break;
                        }
                        orig = &entries[set.slots[h]];
                        if (orig->family != e->family || memcmp(orig->bytes, e->bytes, sizeof e->bytes) != 0)
                                continue;
                        free(set.slots);
                        if (!inet_ntop(e->family, e->bytes, text, sizeof text))
                                (void) snprintf(text, sizeof text, "?");
                        if (e->peer == orig->peer)
                                return peers_fail(p, AT_ADDR(e->peer, e->pos),
                                            "%s is listed twice (also addresses[%" PRIu32 "])", text, orig->pos);
                        return peers_fail(p, AT_ADDR(e->peer, e->pos),
                                    "%s is also an address of peers[%" PRIu32 "] %s; reverse lookups would be ambiguous",
                                    text, orig->peer,
                                    peers_quote(q, m->peers[orig->peer].name, strlen(m->peers[orig->peer].name)));
                }
        }
        free(set.slots);
        return 0;
}

/* The address arrays of the map, filled from `entries` (still in document
 * order: peer by peer) so that each peer's addresses are contiguous. */
static int fill_addresses(const Parser *p, PeerMap *m, const AddrEntry *entries, size_t n) {
        size_t n_v4 = 0, n_v6 = 0, k = 0;

        for (size_t i = 0; i < m->n_peers; i++) {
                n_v4 += m->peers[i].n_v4;
                n_v6 += m->peers[i].n_v6;
        }
        if (n_v4 > 0) {
                m->v4 = malloc(n_v4 * sizeof *m->v4);
                if (!m->v4)
                        return peers_fail_code(p, -ENOMEM, AT_ROOT, "out of memory");
        }
        if (n_v6 > 0) {
                m->v6 = malloc(n_v6 * sizeof *m->v6);
                if (!m->v6)
                        return peers_fail_code(p, -ENOMEM, AT_ROOT, "out of memory");
        }

        n_v4 = n_v6 = 0;
        for (size_t i = 0; i < m->n_peers; i++) {
                ShmPeer *peer = &m->peers[i];
                size_t end = k + peer->n_v4 + peer->n_v6;

                peer->v4 = peer->n_v4 > 0 ? &m->v4[n_v4] : NULL;
                peer->v6 = peer->n_v6 > 0 ? &m->v6[n_v6] : NULL;
                for (; k < end; k++) {
                        assert(k < n && entries[k].peer == i);
                        if (entries[k].family == AF_INET)
                                memcpy(&m->v4[n_v4++], entries[k].bytes, sizeof *m->v4);
                        else
                                memcpy(&m->v6[n_v6++], entries[k].bytes, sizeof *m->v6);
                }
        }
        assert(k == n);
        return 0;
}

int peers_parse(const char *data, size_t len, const char *source, PeerMap **ret_map, PeersError *err) {
        return peers_parse_policy(data, len, source, NULL, ret_map, err);
}

static void scratch_done(Scratch *s) {
        free(s->buf);
}

int peers_parse_policy(const char *data, size_t len, const char *source, const PeersPolicy *policy,
                       PeerMap **ret_map, PeersError *err) {
        _cleanup_(scratch_done) Scratch scratch = {};
        Parser p = {
                .source = source ? source : "peers",
                .err = err,
                .policy = policy,
                .data = data ? data : "",
                .len = data ? len : 0,
                .scratch = &scratch,
        };
        _cleanup_peer_map_ PeerMap *m = NULL;
        _cleanup_free_ AddrEntry *entries = NULL;
        char domain[SHM_DOMAIN_MAX + 1];
        size_t domain_len = 0, n_entries = 0, root = 0, item;
        uint32_t default_ttl = PEERS_DEFAULT_TTL;
        Names names;
        Sizes z;
        Items it;
        int r;

        if (len > PEERS_INPUT_MAX)
                return peers_fail_code(&p, -E2BIG, AT_ROOT, "is %zu bytes; the limit is %zu", len, PEERS_INPUT_MAX);

        /* The whole text first: a syntax error anywhere is reported as
         * such, before any value is judged. */
        r = peers_scan_document(&p, &z);
        if (r < 0)
                return r;

        while (root < p.len && p.data[root] != '{' && p.data[root] != '[')
                root++;
        if (!peers_value_is(&p, root, '{'))
                return peers_fail(&p, AT_ROOT,
                                  "the document must be a JSON object, got %s", peers_value_kind(&p, root));
        if (z.top_unknown != NO_VAL)
                return peers_unknown_key(&p, AT_ROOT, z.top_unknown, "domain, ranges, ttl, peers");

        r = parse_domain(&p, z.top[TOP_DOMAIN], domain, &domain_len);
        if (r < 0)
                return r;

        m = calloc(1, sizeof *m);
        if (!m)
                return peers_fail_code(&p, -ENOMEM, AT_ROOT, "out of memory");
        r = parse_ranges(&p, &z, m);
        if (r < 0)
                return r;

        if (z.top[TOP_TTL] != NO_VAL) {
                r = parse_ttl(&p, AT("ttl"), z.top[TOP_TTL], &default_ttl);
                if (r < 0)
                        return r;
        }

        if (z.top[TOP_PEERS] == NO_VAL)
                return peers_fail(&p, AT("peers"), "missing (use [] for a tailnet without peers)");
        if (!peers_value_is(&p, z.top[TOP_PEERS], '['))
                return peers_fail(&p, AT("peers"),
                                  "expected an array of peers, got %s", peers_value_kind(&p, z.top[TOP_PEERS]));

        /* Sized by the first pass: nothing grows while the peers are read. */
        m->n_peers = z.n_peers;
        m->strings = malloc(domain_len + 1 + z.name_bytes);
        if (m->n_peers > 0)
                m->peers = calloc(m->n_peers, sizeof *m->peers);
        if (z.n_addrs > 0)
                entries = malloc(z.n_addrs * sizeof *entries);
        if (!m->strings || (m->n_peers > 0 && !m->peers) || (z.n_addrs > 0 && !entries))
                return peers_fail_code(&p, -ENOMEM, AT_ROOT, "out of memory");

        memcpy(m->strings, domain, domain_len + 1);
        names = (Names) { m->strings + domain_len + 1, m->strings + domain_len + 1 + z.name_bytes };

        it = peers_items_at(&p, z.top[TOP_PEERS]);
        for (size_t i = 0; (item = peers_items_next(&it)) != NO_VAL; i++) {
                if (i >= m->n_peers)
                        return peers_fail_code(&p, -EINVAL, AT_ROOT, "the first pass counted the peers wrong");
                r = parse_peer(&p, i, item, &it.end, domain_len, default_ttl, &m->peers[i], &names, entries,
                               &n_entries, z.n_addrs);
                if (r < 0)
                        return r;
        }

        r = fill_addresses(&p, m, entries, n_entries);
        if (r < 0)
                return r;
        r = check_duplicate_names(&p, m);
        if (r < 0)
                return r;
        r = check_duplicate_addresses(&p, m, entries, n_entries);
        if (r < 0)
                return r;

        *ret_map = TAKE_PTR(m);
        return 0;
}

int peers_read_file(const char *path, char **ret_data, size_t *ret_len, PeersError *err) {
        Parser p = { .source = path, .err = err };
        struct stat st;
        ReadFileStep step;
        int r;

        r = read_regular_file(path, PEERS_INPUT_MAX, 0, ret_data, ret_len, &st, &step);
        if (r >= 0)
                return 0;
        if (step == READ_FILE_OPEN)
                return peers_fail_code(&p, r, AT_ROOT, "cannot open: %s", strerror(-r));
        if (step == READ_FILE_STAT)
                return peers_fail_code(&p, r, AT_ROOT, "cannot stat: %s", strerror(-r));
        if (r == -EINVAL && step == READ_FILE_CHECK)
                return peers_fail_code(&p, r, AT_ROOT, "is not a regular file");
        if (r == -EFBIG && step == READ_FILE_CHECK)
                return peers_fail_code(&p, -E2BIG, AT_ROOT, "is %jd bytes; the limit is %zu", (intmax_t) st.st_size,
                                 PEERS_INPUT_MAX);
        if (r == -ENOMEM)
                return peers_fail_code(&p, r, AT_ROOT, "out of memory");
        if (r == -EAGAIN)
                return peers_fail_code(&p, r, AT_ROOT, "changed while it was read");
        return peers_fail_code(&p, r, AT_ROOT, "cannot read: %s", strerror(-r));
}

int peers_load_file(const char *path, PeerMap **ret_map, PeersError *err) {
        _cleanup_free_ char *buf = NULL;
        size_t n;
        int r = peers_read_file(path, &buf, &n, err);
        if (r < 0)
                return r;
        return peers_parse(buf, n, path, ret_map, err);
}

PeerMap *peer_map_free(PeerMap *m) {
        if (!m)
                return NULL;
        free(m->strings);
        free(m->peers);
        free(m->v4);
        free(m->v6);
        free(m);
        return NULL;
}

void peer_map_to_shm(const PeerMap *m, ShmMap *ret) {
        *ret = (ShmMap) {
                .domain = m->strings,
                .n_ranges = m->n_ranges,
                .ranges = m->ranges,
                .n_peers = m->n_peers,
                .peers = m->peers,
        };
}

