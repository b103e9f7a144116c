/* SPDX-License-Identifier: MIT */
/*
 * The peers document, parsed with jansson and validated whole. Nothing here
 * is trusted: the file may come from a control plane, a script or a typo, and
 * whatever passes is what every process on the machine will resolve.
 */

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "peers.h"
#include "public-suffix.h"
#include "shm-format.h"

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

/* Where in the document a value sits: key[index].member[sub]. Kept as parts
 * and only formatted when something fails, so the happy path never prints. */
#define NO_INDEX SIZE_MAX
typedef struct Where {
        const char *key; /* top-level member, NULL for the document itself */
        size_t index;
        const char *member;
        size_t sub;
} Where;

#define AT_ROOT ((Where) { NULL, NO_INDEX, NULL, NO_INDEX })
#define AT(key) ((Where) { (key), NO_INDEX, NULL, NO_INDEX })
#define AT_ITEM(key, i) ((Where) { (key), (i), NULL, NO_INDEX })
#define AT_PEER(i, member) ((Where) { "peers", (i), (member), NO_INDEX })
#define AT_ADDR(i, j) ((Where) { "peers", (i), "addresses", (j) })

typedef struct Parser {
        const char *source;
        PeersError *err;
        const PeersPolicy *policy; /* NULL: nothing pinned */
} Parser;

/* One address as read, with where it was read, for the duplicate checks. */
typedef struct AddrEntry {
        uint8_t family; /* AF_INET or AF_INET6 */
        uint8_t bytes[16];
        uint32_t peer, pos;
} AddrEntry;

typedef struct NameEntry {
        const char *name;
        uint32_t peer;
} NameEntry;

#define QUOTE_MAX 96 /* a quoted value in a message, cut short with "..." */

static void where_format(Where w, char *buf, size_t size) {
        int n;

        buf[0] = '\0';
        if (!w.key)
                return;
        /* The longest possible path, "peers[<20 digits>].addresses[<20
         * digits>]", fits PEERS_PATH_MAX. */
        n = snprintf(buf, size, "%s", w.key);
        if (w.index != NO_INDEX)
                n += snprintf(buf + n, size - (size_t) n, "[%zu]", w.index);
        if (w.member)
                n += snprintf(buf + n, size - (size_t) n, ".%s", w.member);
        if (w.sub != NO_INDEX)
                (void) snprintf(buf + n, size - (size_t) n, "[%zu]", w.sub);
}

/* A value from the document, quoted for a log line: printable ASCII only
 * (a name with a newline must not forge a second log line), and cut short so
 * a megabyte string does not become a megabyte message. */
static const char *quote(char buf[static QUOTE_MAX], const char *s, size_t len) {
        size_t o = 0;

        buf[o++] = '"';
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];

                /* Room is kept for the longest escape, "...", '"' and NUL. */
                if (o + 4 > QUOTE_MAX - 5) {
                        memcpy(buf + o, "...", 3);
                        o += 3;
                        break;
                }
                if (c == '"' || c == '\\') {
                        buf[o++] = '\\';
                        buf[o++] = (char) c;
                } else if (c >= 0x20 && c < 0x7f)
                        buf[o++] = (char) c;
                else
                        o += (size_t) snprintf(buf + o, 5, "\\x%02x", c);
        }
        buf[o++] = '"';
        buf[o] = '\0';
        assert(o < QUOTE_MAX);
        return buf;
}

/* Values are quoted already; the source name and jansson's text (which
 * quotes the input near a syntax error) are not ours either. */
static void scrub(char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f)
                        *s = '?';
}

static int vfail(const Parser *p, int code, Where w, const char *fmt, va_list ap) {
        PeersError *e = p->err;
        int n;

        if (!e)
                return code;

        *e = (PeersError) {};
        where_format(w, e->path, sizeof e->path);
        if (e->path[0])
                n = snprintf(e->message, sizeof e->message, "%s: %s: ", p->source, e->path);
        else
                n = snprintf(e->message, sizeof e->message, "%s: ", p->source);
        if (n >= 0 && (size_t) n < sizeof e->message)
                (void) vsnprintf(e->message + n, sizeof e->message - (size_t) n, fmt, ap);
        scrub(e->message);
        return code;
}

__attribute__((format(printf, 4, 5)))
static int fail_code(const Parser *p, int code, Where w, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vfail(p, code, w, fmt, ap);
        va_end(ap);
        return r;
}

__attribute__((format(printf, 3, 4)))
static int fail(const Parser *p, Where w, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vfail(p, -EBADMSG, w, fmt, ap);
        va_end(ap);
        return r;
}

static const char *json_kind(const json_t *v) {
        switch (json_typeof(v)) {
        case JSON_OBJECT:
                return "an object";
        case JSON_ARRAY:
                return "an array";
        case JSON_STRING:
                return "a string";
        case JSON_INTEGER:
                return "an integer";
        case JSON_REAL:
                return "a fractional number";
        case JSON_TRUE:
        case JSON_FALSE:
                return "a boolean";
        case JSON_NULL:
                return "null";
        }
        return "an unknown value";
}

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

/* A string value, refused when it carries a NUL: C would see a shorter name
 * than the one validated. (jansson refuses \u0000 already without
 * JSON_ALLOW_NUL; this keeps the guarantee if the flags ever change.) */
static int get_string(const Parser *p, Where w, const json_t *v, const char **ret, size_t *ret_len) {
        const char *s;
        size_t len;

        if (!json_is_string(v))
                return fail(p, w, "expected a string, got %s", json_kind(v));
        s = json_string_value(v);
        len = json_string_length(v);
        if (strlen(s) != len)
                return fail(p, w, "contains a NUL character");
        *ret = s;
        *ret_len = len;
        return 0;
}

/* Typos must not pass silently: "adresses" would otherwise leave a peer
 * without addresses and nobody would know why. */
static int check_keys(const Parser *p, Where w, json_t *obj, const char *const *known, const char *known_text) {
        const char *key;
        json_t *value;

        json_object_foreach(obj, key, value) {
                bool found = false;
                char q[QUOTE_MAX];

                for (const char *const *k = known; *k; k++)
                        if (strcmp(key, *k) == 0) {
                                found = true;
                                break;
                        }
                if (!found)
                        return fail(p, w, "unknown key %s%s (known keys: %s)", quote(q, key, strlen(key)),
                                    w.key ? "" : " at the top level", known_text);
        }
        return 0;
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

/* The tailnet domain. Returns its length without the one tolerated final
 * dot, so the caller copies exactly the name the store will hold. */
static int parse_domain(const Parser *p, json_t *root, const char **ret, size_t *ret_len) {
        json_t *v = json_object_get(root, "domain");
        const char *s;
        size_t len, n_labels = 0, label_start = 0;
        char q[QUOTE_MAX], why[160], copy[SHM_DOMAIN_MAX + 1];
        struct in_addr a;
        int r;

        if (!v)
                return fail(p, AT("domain"), "missing (the tailnet's DNS domain, e.g. \"yourorg.zt.net\")");
        r = get_string(p, AT("domain"), v, &s, &len);
        if (r < 0)
                return r;
        quote(q, s, len);
        if (len > 0 && s[len - 1] == '.')
                len--;
        if (len == 0)
                return fail(p, AT("domain"), "%s is empty", q);
        if (len > SHM_DOMAIN_MAX)
                return fail(p, AT("domain"), "%s is %zu characters long; a domain name is at most %u", q, len,
                            SHM_DOMAIN_MAX);

        for (size_t i = 0; i <= len; i++) {
                char lq[QUOTE_MAX];

                if (i < len && s[i] != '.')
                        continue;
                n_labels++;
                if (!label_valid(s + label_start, i - label_start, why, sizeof why))
                        return fail(p, AT("domain"), "%s: label %zu %s %s", q, n_labels,
                                    quote(lq, s + label_start, i - label_start), why);
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
                        return fail(p, AT("domain"), "%s is reserved (\"%s\" and names under it)", q, z);
        }

        /* A one-label domain ("net") would make every name under that
         * top-level domain ours, answered "not found" without asking DNS. */
        if (n_labels < 2)
                return fail(p, AT("domain"), "%s has a single label; the tailnet domain needs at least two", q);
        /* RFC 3696 2: an all-numeric top-level label reads as an address. */
        if (all_digits(s + label_start, len - label_start))
                return fail(p, AT("domain"), "%s ends in an all-numeric label, which reads as an IPv4 address", q);
        /* Hexadecimal parts too: inet_aton() takes "0x1.0x2". */
        memcpy(copy, s, len);
        copy[len] = '\0';
        if (inet_aton(copy, &a))
                return fail(p, AT("domain"), "%s reads as an IPv4 address", q);

        r = public_suffix_check(s, len);
        if (r < 0)
                return fail(p, AT("domain"), "%s cannot be checked against the public suffix list: %s", q,
                            strerror(-r));
        if (r > 0)
                return fail(p, AT("domain"),
                            "%s is a public suffix: anyone may register names under it, so no tailnet owns it", q);
        if (p->policy && !policy_has_domain(p->policy, s, len)) {
                char list[POLICY_TEXT_MAX];

                return fail(p, AT("domain"), "%s is not a domain this machine takes maps for (domains in ztnad.conf: %s)",
                            q, policy_domains_text(p->policy, list));
        }

        *ret = s;
        *ret_len = len;
        return 0;
}

/* One "ADDRESS/LENGTH" of the tailnet ranges: reverse lookups inside it are
 * answered by the store, so host bits and a /0 are refused. */
static int parse_range(const Parser *p, Where w, const json_t *v, ShmPrefix *ret) {
        const char *s, *slash;
        size_t len, alen, plen;
        char q[QUOTE_MAX], addr[INET6_ADDRSTRLEN];
        unsigned prefixlen = 0, max;
        ShmPrefix prefix = {};
        const uint8_t *bytes;
        int r;

        r = get_string(p, w, v, &s, &len);
        if (r < 0)
                return r;
        quote(q, s, len);
        slash = memchr(s, '/', len);
        if (!slash)
                return fail(p, w, "%s has no prefix length (expected ADDRESS/LENGTH, e.g. \"100.64.0.0/10\")", q);
        alen = (size_t) (slash - s);
        plen = len - alen - 1;
        if (plen == 0 || plen > 3 || !all_digits(slash + 1, plen) || (plen > 1 && slash[1] == '0'))
                return fail(p, w, "%s has a bad prefix length (expected a decimal number)", q);
        for (size_t i = 0; i < plen; i++)
                prefixlen = prefixlen * 10 + (unsigned) (slash[1 + i] - '0');
        if (alen >= sizeof addr)
                return fail(p, w, "%s is not an IPv4 or IPv6 prefix", q);
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
                return fail(p, w, "%s is not an IPv4 or IPv6 prefix", q);

        if (prefixlen > max)
                return fail(p, w, "%s: prefix length %u is more than %u", q, prefixlen, max);
        if (prefixlen == 0)
                return fail(p, w, "%s would claim every address; use a real tailnet range", q);
        for (unsigned bit = prefixlen; bit < max; bit++)
                if (bytes[bit / 8] & (0x80u >> (bit % 8)))
                        return fail(p, w, "%s has bits set after the first %u", q, prefixlen);

        prefix.prefixlen = prefixlen;
        *ret = prefix;
        return 0;
}

static int parse_ranges(const Parser *p, json_t *root, PeerMap *m) {
        json_t *v = json_object_get(root, "ranges");
        size_t i;
        json_t *item;

        if (!v) {
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

                                return fail(p, AT("ranges"),
                                            "missing, and the default range %s is outside the address space this "
                                            "machine allows (address_space in ztnad.conf: %s); list the tailnet's "
                                            "ranges",
                                            prefix_text(&m->ranges[k], one), policy_allowed_text(p->policy, list));
                        }
                return 0;
        }
        if (!json_is_array(v))
                return fail(p, AT("ranges"), "expected an array of prefixes, got %s", json_kind(v));
        if (json_array_size(v) > SHM_RANGES_MAX)
                return fail(p, AT("ranges"), "has %zu prefixes; at most %u are supported", json_array_size(v),
                            SHM_RANGES_MAX);

        json_array_foreach(v, i, item) {
                ShmPrefix *range = &m->ranges[i];
                int r = parse_range(p, AT_ITEM("ranges", i), item, range);

                if (r < 0)
                        return r;
                if (p->policy && !policy_allows(p->policy, range->family, prefix_bytes(range), range->prefixlen)) {
                        char one[INET6_ADDRSTRLEN + 8], list[POLICY_TEXT_MAX], q[QUOTE_MAX];

                        (void) prefix_text(range, one);
                        return fail(p, AT_ITEM("ranges", i),
                                    "%s is outside the address space this machine allows (address_space in "
                                    "ztnad.conf: %s)",
                                    quote(q, one, strlen(one)), policy_allowed_text(p->policy, list));
                }
        }
        m->n_ranges = json_array_size(v);
        return 0;
}

static int parse_ttl(const Parser *p, Where w, const json_t *v, uint32_t *ret) {
        json_int_t t;

        if (!json_is_integer(v))
                return fail(p, w, "expected an integer number of seconds, got %s", json_kind(v));
        t = json_integer_value(v);
        /* RFC 2181 8: a TTL is 0..2^31-1. */
        if (t < 0 || t > INT32_MAX)
                return fail(p, w, "%lld is out of range (0..%d seconds)", (long long) t, INT32_MAX);
        *ret = (uint32_t) t;
        return 0;
}

/* A tailnet address of a peer. Refuses what could never be this peer's
 * address on the mesh, so a copy-paste slip fails here, not at connect time. */
static int parse_address(const Parser *p, Where w, const json_t *v, AddrEntry *ret) {
        AddrEntry e = {};
        const char *s;
        size_t len;
        char q[QUOTE_MAX];
        int r;

        r = get_string(p, w, v, &s, &len);
        if (r < 0)
                return r;
        quote(q, s, len);
        if (memchr(s, '/', len))
                return fail(p, w, "%s is a CIDR prefix, not an address", q);
        if (memchr(s, '%', len))
                return fail(p, w, "%s has a scope id, which a name cannot carry", q);

        if (inet_pton(AF_INET, s, e.bytes) == 1) {
                uint8_t *b = e.bytes;

                e.family = AF_INET;
                if (b[0] == 0)
                        return fail(p, w, "%s is %s", q,
                                    (b[1] | b[2] | b[3]) ? "in 0.0.0.0/8 (\"this network\", RFC 1122)"
                                                         : "the unspecified address");
                if (b[0] == 127)
                        return fail(p, w, "%s is a loopback address", q);
                if (b[0] >= 224 && b[0] <= 239)
                        return fail(p, w, "%s is a multicast address", q);
                if (b[0] == 255 && b[1] == 255 && b[2] == 255 && b[3] == 255)
                        return fail(p, w, "%s is the limited broadcast address", q);
        } else if (inet_pton(AF_INET6, s, e.bytes) == 1) {
                struct in6_addr a;

                e.family = AF_INET6;
                memcpy(&a, e.bytes, sizeof a);
                if (IN6_IS_ADDR_UNSPECIFIED(&a))
                        return fail(p, w, "%s is the unspecified address", q);
                if (IN6_IS_ADDR_LOOPBACK(&a))
                        return fail(p, w, "%s is a loopback address", q);
                if (IN6_IS_ADDR_MULTICAST(&a))
                        return fail(p, w, "%s is a multicast address", q);
                if (IN6_IS_ADDR_V4MAPPED(&a))
                        return fail(p, w, "%s is an IPv4-mapped IPv6 address; list the IPv4 address itself", q);
                /* Useless without an interface, which a name cannot carry. */
                if (IN6_IS_ADDR_LINKLOCAL(&a))
                        return fail(p, w, "%s is a link-local address", q);
        } else
                return fail(p, w, "%s is not an IPv4 or IPv6 address", q);

        *ret = e;
        return 0;
}

/* The name of peer `i`, checked as one label the resolver will not mistake
 * for anything else; `domain_len` bounds the FQDN built from it. */
static int parse_name(const Parser *p, size_t i, const json_t *v, size_t domain_len, const char **ret,
                      size_t *ret_len) {
        Where w = AT_PEER(i, "name");
        const char *s;
        size_t len;
        char q[QUOTE_MAX], why[160];
        struct in_addr a;
        int r;

        if (!v)
                return fail(p, w, "missing (every peer needs a name)");
        r = get_string(p, w, v, &s, &len);
        if (r < 0)
                return r;
        quote(q, s, len);
        if (memchr(s, '.', len))
                return fail(p, w, "%s contains '.'; a peer name is a single label (the domain is added to it)", q);
        if (!label_valid(s, len, why, sizeof why))
                return fail(p, w, "%s %s", q, why);
        /* getaddrinfo() tries inet_aton() before NSS: "100" or "0x10" would
         * be taken for an address and never reach the store. */
        if (all_digits(s, len))
                return fail(p, w, "%s is all digits, which resolvers read as an IPv4 address", q);
        if (inet_aton(s, &a))
                return fail(p, w, "%s reads as an IPv4 address", q);
        for (size_t k = 0; k < ELEMENTSOF(reserved_names); k++)
                if ((reserved_names[k].flags & RESERVED_PEER) && ascii_equal(s, len, reserved_names[k].name))
                        return fail(p, w, "%s is a reserved name", q);
        if (len + 1 + domain_len > SHM_DOMAIN_MAX)
                return fail(p, w, "%s makes a %zu-character name with the domain; a name is at most %u", q,
                            len + 1 + domain_len, SHM_DOMAIN_MAX);
        *ret = s;
        *ret_len = len;
        return 0;
}

static const char *const peer_keys[] = { "name", "addresses", "online", "ttl", NULL };

/* Peer `i`: fills `peer` except its address pointers, copies the name to
 * `*names` (advanced past it) and appends its addresses to `entries`. */
static int parse_peer(const Parser *p, size_t i, json_t *v, size_t domain_len, uint32_t default_ttl,
                      ShmPeer *peer, char **names, AddrEntry *entries, size_t *n_entries) {
        json_t *addrs, *online, *ttl, *item;
        const char *name = NULL;
        size_t name_len = 0, j;
        int r;

        if (!json_is_object(v))
                return fail(p, AT_ITEM("peers", i), "expected an object, got %s", json_kind(v));
        r = check_keys(p, AT_ITEM("peers", i), v, peer_keys, "name, addresses, online, ttl");
        if (r < 0)
                return r;

        r = parse_name(p, i, json_object_get(v, "name"), domain_len, &name, &name_len);
        if (r < 0)
                return r;

        *peer = (ShmPeer) { .ttl = default_ttl, .online = true };
        online = json_object_get(v, "online");
        if (online) {
                if (!json_is_boolean(online))
                        return fail(p, AT_PEER(i, "online"), "expected true or false, got %s", json_kind(online));
                peer->online = json_is_true(online);
        }
        ttl = json_object_get(v, "ttl");
        if (ttl) {
                r = parse_ttl(p, AT_PEER(i, "ttl"), ttl, &peer->ttl);
                if (r < 0)
                        return r;
        }

        addrs = json_object_get(v, "addresses");
        if (!addrs)
                return fail(p, AT_PEER(i, "addresses"), "missing (use [] for a peer without addresses)");
        if (!json_is_array(addrs))
                return fail(p, AT_PEER(i, "addresses"), "expected an array of addresses, got %s", json_kind(addrs));
        json_array_foreach(addrs, j, item) {
                AddrEntry *e = &entries[*n_entries];

                r = parse_address(p, AT_ADDR(i, j), item, e);
                if (r < 0)
                        return r;
                if (p->policy && !policy_allows(p->policy, e->family, e->bytes, e->family == AF_INET ? 32 : 128)) {
                        char text[INET6_ADDRSTRLEN], list[POLICY_TEXT_MAX], q[QUOTE_MAX], qa[QUOTE_MAX];

                        if (!inet_ntop(e->family, e->bytes, text, sizeof text))
                                (void) snprintf(text, sizeof text, "?");
                        return fail(p, AT_ADDR(i, j),
                                    "%s of peer %s is outside the address space this machine allows "
                                    "(address_space in ztnad.conf: %s)",
                                    quote(qa, text, strlen(text)), quote(q, name, name_len),
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
                        return fail(p, AT_PEER(i, "addresses"), "has more than %u IPv%c addresses",
                                    SHM_ADDRS_MAX, e->family == AF_INET ? '4' : '6');
        }

        memcpy(*names, name, name_len);
        (*names)[name_len] = '\0';
        peer->name = *names;
        *names += name_len + 1;
        return 0;
}

static int name_entry_compare(const void *a, const void *b) {
        const NameEntry *x = a, *y = b;
        int d = ascii_compare(x->name, y->name);

        if (d != 0)
                return d;
        return (x->peer > y->peer) - (x->peer < y->peer);
}

/* Reports the first name, in document order, that repeats an earlier one. */
static int check_duplicate_names(const Parser *p, const PeerMap *m) {
        _cleanup_free_ NameEntry *sorted = NULL;
        size_t first = 0, found = NO_INDEX, earlier = 0;
        char q1[QUOTE_MAX], q2[QUOTE_MAX];

        if (m->n_peers < 2)
                return 0;
        sorted = malloc(m->n_peers * sizeof *sorted);
        if (!sorted)
                return fail_code(p, -ENOMEM, AT_ROOT, "out of memory");
        for (size_t i = 0; i < m->n_peers; i++)
                sorted[i] = (NameEntry) { m->peers[i].name, (uint32_t) i };
        qsort(sorted, m->n_peers, sizeof *sorted, name_entry_compare);

        /* Equal names sort together, earliest peer first. */
        for (size_t i = 1; i < m->n_peers; i++) {
                if (ascii_compare(sorted[i].name, sorted[first].name) != 0) {
                        first = i;
                        continue;
                }
                if (found == NO_INDEX || sorted[i].peer < found) {
                        found = sorted[i].peer;
                        earlier = sorted[first].peer;
                }
        }
        if (found == NO_INDEX)
                return 0;
        return fail(p, AT_PEER(found, "name"),
                    "%s is the same name as peers[%zu].name %s (names are compared case-insensitively)",
                    quote(q1, m->peers[found].name, strlen(m->peers[found].name)), earlier,
                    quote(q2, m->peers[earlier].name, strlen(m->peers[earlier].name)));
}

static int addr_entry_compare(const void *a, const void *b) {
        const AddrEntry *x = a, *y = b;
        int d;

        if (x->family != y->family)
                return x->family < y->family ? -1 : 1;
        d = memcmp(x->bytes, y->bytes, sizeof x->bytes);
        if (d != 0)
                return d;
        if (x->peer != y->peer)
                return x->peer < y->peer ? -1 : 1;
        return (x->pos > y->pos) - (x->pos < y->pos);
}

static bool addr_entry_same(const AddrEntry *x, const AddrEntry *y) {
        return x->family == y->family && memcmp(x->bytes, y->bytes, sizeof x->bytes) == 0;
}

/* An address listed twice in a peer is a slip; the same address on two peers
 * would make a reverse lookup answer either. Sorts `entries` in place and
 * reports the first repeat in document order. */
static int check_duplicate_addresses(const Parser *p, const PeerMap *m, AddrEntry *entries, size_t n) {
        size_t first = 0;
        const AddrEntry *dup = NULL, *orig = NULL;
        char text[INET6_ADDRSTRLEN], q[QUOTE_MAX];

        if (n < 2)
                return 0;
        qsort(entries, n, sizeof *entries, addr_entry_compare);
        for (size_t i = 1; i < n; i++) {
                if (!addr_entry_same(&entries[i], &entries[first])) {
                        first = i;
                        continue;
                }
                if (!dup || entries[i].peer < dup->peer ||
                    (entries[i].peer == dup->peer && entries[i].pos < dup->pos)) {
                        dup = &entries[i];
                        orig = &entries[first];
                }
        }
        if (!dup)
                return 0;

        if (!inet_ntop(dup->family, dup->bytes, text, sizeof text))
                (void) snprintf(text, sizeof text, "?");
        if (dup->peer == orig->peer)
                return fail(p, AT_ADDR(dup->peer, dup->pos), "%s is listed twice (also addresses[%" PRIu32 "])",
                            text, orig->pos);
        return fail(p, AT_ADDR(dup->peer, dup->pos),
                    "%s is also an address of peers[%" PRIu32 "] %s; reverse lookups would be ambiguous", text,
                    orig->peer, quote(q, m->peers[orig->peer].name, strlen(m->peers[orig->peer].name)));
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
                        return fail_code(p, -ENOMEM, AT_ROOT, "out of memory");
        }
        if (n_v6 > 0) {
                m->v6 = malloc(n_v6 * sizeof *m->v6);
                if (!m->v6)
                        return fail_code(p, -ENOMEM, AT_ROOT, "out of memory");
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

static const char *const top_keys[] = { "domain", "ranges", "ttl", "peers", NULL };

int peers_parse(const char *data, size_t len, const char *source, PeerMap **ret_map, PeersError *err) {
        return peers_parse_policy(data, len, source, NULL, ret_map, err);
}

int peers_parse_policy(const char *data, size_t len, const char *source, const PeersPolicy *policy,
                       PeerMap **ret_map, PeersError *err) {
        Parser p = { .source = source ? source : "peers", .err = err, .policy = policy };
        _cleanup_(json_decrefp) json_t *root = NULL;
        _cleanup_peer_map_ PeerMap *m = NULL;
        _cleanup_free_ AddrEntry *entries = NULL;
        json_t *peers, *v, *item;
        json_error_t jerr;
        const char *domain = NULL;
        size_t domain_len = 0, n_addrs = 0, name_bytes = 0, n_entries = 0, i;
        uint32_t default_ttl = PEERS_DEFAULT_TTL;
        char *names;
        int r;

        if (len > PEERS_INPUT_MAX)
                return fail_code(&p, -E2BIG, AT_ROOT, "is %zu bytes; the limit is %zu", len, PEERS_INPUT_MAX);

        root = json_loadb(data ? data : "", len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                if (json_error_code(&jerr) == json_error_out_of_memory)
                        return fail_code(&p, -ENOMEM, AT_ROOT, "out of memory");
                r = fail(&p, AT_ROOT, "%s", jerr.text);
                if (err) {
                        /* The usual compiler form, "FILE:LINE:COLUMN: what". */
                        err->line = jerr.line;
                        err->column = jerr.column;
                        (void) snprintf(err->message, sizeof err->message, "%s:%d:%d: %s", p.source, jerr.line,
                                        jerr.column, jerr.text);
                        scrub(err->message);
                }
                return r;
        }

        if (!json_is_object(root))
                return fail(&p, AT_ROOT, "the document must be a JSON object, got %s", json_kind(root));
        r = check_keys(&p, AT_ROOT, root, top_keys, "domain, ranges, ttl, peers");
        if (r < 0)
                return r;

        r = parse_domain(&p, root, &domain, &domain_len);
        if (r < 0)
                return r;

        m = calloc(1, sizeof *m);
        if (!m)
                return fail_code(&p, -ENOMEM, AT_ROOT, "out of memory");
        r = parse_ranges(&p, root, m);
        if (r < 0)
                return r;

        v = json_object_get(root, "ttl");
        if (v) {
                r = parse_ttl(&p, AT("ttl"), v, &default_ttl);
                if (r < 0)
                        return r;
        }

        peers = json_object_get(root, "peers");
        if (!peers)
                return fail(&p, AT("peers"), "missing (use [] for a tailnet without peers)");
        if (!json_is_array(peers))
                return fail(&p, AT("peers"), "expected an array of peers, got %s", json_kind(peers));

        /* Size the arrays once: whatever is not a string or an array here is
         * refused below before anything is written. */
        json_array_foreach(peers, i, item) {
                json_t *name = json_object_get(item, "name");
                json_t *addrs = json_object_get(item, "addresses");

                if (json_is_string(name))
                        name_bytes += json_string_length(name) + 1;
                if (json_is_array(addrs))
                        n_addrs += json_array_size(addrs);
        }

        m->n_peers = json_array_size(peers);
        m->strings = malloc(domain_len + 1 + name_bytes);
        if (m->n_peers > 0)
                m->peers = calloc(m->n_peers, sizeof *m->peers);
        if (n_addrs > 0)
                entries = malloc(n_addrs * sizeof *entries);
        if (!m->strings || (m->n_peers > 0 && !m->peers) || (n_addrs > 0 && !entries))
                return fail_code(&p, -ENOMEM, AT_ROOT, "out of memory");

        memcpy(m->strings, domain, domain_len);
        m->strings[domain_len] = '\0';
        names = m->strings + domain_len + 1;

        json_array_foreach(peers, i, item) {
                r = parse_peer(&p, i, item, domain_len, default_ttl, &m->peers[i], &names, entries, &n_entries);
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
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        size_t size, n = 0;

        /* O_NONBLOCK: a FIFO put in the file's place must not hang the
         * daemon in open(); it is refused below as not a regular file. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0)
                return fail_code(&p, -errno, AT_ROOT, "cannot open: %s", strerror(errno));
        if (fstat(fd, &st) < 0)
                return fail_code(&p, -errno, AT_ROOT, "cannot stat: %s", strerror(errno));
        if (!S_ISREG(st.st_mode))
                return fail_code(&p, -EINVAL, AT_ROOT, "is not a regular file");
        if ((uintmax_t) st.st_size > PEERS_INPUT_MAX)
                return fail_code(&p, -E2BIG, AT_ROOT, "is %jd bytes; the limit is %zu", (intmax_t) st.st_size,
                                 PEERS_INPUT_MAX);

        /* One byte more than the size, to notice a file still growing. */
        size = (size_t) st.st_size;
        buf = malloc(size + 1);
        if (!buf)
                return fail_code(&p, -ENOMEM, AT_ROOT, "out of memory");
        while (n < size + 1) {
                ssize_t k = read(fd, buf + n, size + 1 - n);

                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return fail_code(&p, -errno, AT_ROOT, "cannot read: %s", strerror(errno));
                }
                if (k == 0)
                        break;
                n += (size_t) k;
        }
        if (n > size)
                return fail_code(&p, -EAGAIN, AT_ROOT, "changed while it was read");
        *ret_data = TAKE_PTR(buf);
        *ret_len = n;
        return 0;
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
