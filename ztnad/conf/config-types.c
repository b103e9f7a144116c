/* SPDX-License-Identifier: MIT */
/*
 * ztnad.conf's value types: for each KeyType, its parser (the text of a
 * value into its field), its printer (the field back to text that parses
 * again), its comparison and its free; and the text helpers they share with
 * the file's reader (config.c): quoting a value in a message, the reasons.
 * A parser knows its key only by its row (bounds, choices, check, flags).
 */

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/inet-util.h"
#include "common/quote.h"
#include "conf/config.h"
#include "conf/config-internal.h"
#include "conf/config-keys.h"
#include "macro.h"
#include "conf/public-suffix.h"
#include "shm-format.h"

#define PIN_BASE64_LEN 44u /* 32 bytes: 43 characters and one '=' */

/* ---- text helpers ---- */

bool config_is_blank(char c) {
        return c == ' ' || c == '\t';
}

/* `s` (`len` bytes) shown in a message (common/quote.h). */
const char *config_show(char buf[static SHOW_MAX], const char *s, size_t len) {
        return quote_text(buf, SHOW_MAX, s, len);
}

const char *config_show_str(char buf[static SHOW_MAX], const char *s) {
        return config_show(buf, s, strlen(s));
}

/* For the checks: writes the reason and returns false. */
__attribute__((format(printf, 3, 4)))
bool config_why_set(char *why, size_t why_size, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(why, why_size, fmt, ap);
        va_end(ap);
        return false;
}

/* For the parsers: writes the reason and returns -EBADMSG. */
__attribute__((format(printf, 3, 4)))
static int invalid(char *why, size_t why_size, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(why, why_size, fmt, ap);
        va_end(ap);
        return -EBADMSG;
}

/* A decimal number of at most `max_digits` digits, all of `s[0..len)`. */
static bool parse_digits(const char *s, size_t len, size_t max_digits, uint64_t *ret) {
        uint64_t v = 0;

        if (len == 0 || len > max_digits)
                return false;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (uint64_t) (s[i] - '0');
        }
        *ret = v;
        return true;
}

bool config_ascii_equal_n(const char *a, size_t len, const char *b) {
        if (strlen(b) != len)
                return false;
        for (size_t i = 0; i < len; i++)
                if (ascii_tolower(a[i]) != ascii_tolower(b[i]))
                        return false;
        return true;
}

/* A host name as DNS writes it (RFC 1123 2.1): labels of 1 to 63 letters,
 * digits and '-', not starting or ending with '-', at most 253 in all. */
static bool hostname_valid(const char *s, size_t len, char *why, size_t why_size) {
        size_t label = 0;

        if (len == 0)
                return config_why_set(why, why_size, "is empty");
        if (len > CONFIG_TLS_NAME_MAX)
                return config_why_set(why, why_size, "is %zu characters long; a host name is at most %u", len,
                               CONFIG_TLS_NAME_MAX);
        for (size_t i = 0; i <= len; i++) {
                if (i == len || s[i] == '.') {
                        if (label == 0)
                                return config_why_set(why, why_size, "has an empty label");
                        if (label > SHM_LABEL_MAX)
                                return config_why_set(why, why_size, "has a label longer than %u characters",
                                               SHM_LABEL_MAX);
                        if (s[i - label] == '-' || s[i - 1] == '-')
                                return config_why_set(why, why_size, "has a label that starts or ends with '-'");
                        label = 0;
                        continue;
                }
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9') || s[i] == '-')) {
                        unsigned char c = (unsigned char) s[i];

                        if (c > 0x20 && c < 0x7f)
                                return config_why_set(why, why_size,
                                               "contains '%c'; only letters, digits, '-' and '.' are allowed", c);
                        return config_why_set(why, why_size,
                                       "contains byte 0x%02x; only letters, digits, '-' and '.' are allowed", c);
                }
                label++;
        }
        return true;
}

/* ---- types: parse, print, compare, free ---- */

static int path_check(const Key *k, const char *s, size_t len, char *why, size_t why_size) {
        char q[SHOW_MAX];

        if (s[0] != '/')
                return invalid(why, why_size, "%s is not an absolute path", config_show(q, s, len));
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
                        return invalid(why, why_size, "%s contains a control character", config_show(q, s, len));
        if ((k->flags & KEY_FILE) && s[len - 1] == '/')
                return invalid(why, why_size, "%s ends with '/'; expected the path of a file", config_show(q, s, len));
        return 0;
}

static int parse_path(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        char **p = field, q[SHOW_MAX], phrase[WHY_MAX];
        int r;

        if (value[0] == '\0') {
                if (k->flags & KEY_OPTIONAL)
                        return 0;
                return invalid(why, why_size, "must not be empty (expected an absolute path)");
        }
        r = path_check(k, value, strlen(value), why, why_size);
        if (r < 0)
                return r;
        if (k->check && !k->check(value, phrase, sizeof phrase))
                return invalid(why, why_size, "%s %s", config_show_str(q, value), phrase);
        *p = strdup(value);
        return *p ? 0 : -ENOMEM;
}

static int parse_string(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        char **p = field, q[SHOW_MAX], phrase[WHY_MAX];

        if (value[0] == '\0') {
                if (k->flags & KEY_OPTIONAL)
                        return 0;
                return invalid(why, why_size, "must not be empty");
        }
        if (k->check && !k->check(value, phrase, sizeof phrase))
                return invalid(why, why_size, "%s %s", config_show_str(q, value), phrase);
        *p = strdup(value);
        return *p ? 0 : -ENOMEM;
}

/* A port, "1" to "65535". */
static bool parse_port(const char *s, size_t len, uint16_t *ret) {
        uint64_t v;

        if (!parse_digits(s, len, 5, &v) || v == 0 || v > UINT16_MAX)
                return false;
        *ret = (uint16_t) v;
        return true;
}

/* Only https://: the requests carry the bearer token. The host is a DNS
 * name or an address, with an optional port; no user part (the token comes
 * from token_file, never from the URL); the rest printable ASCII. */
static int parse_url(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        static const char scheme[] = "https://";
        char **p = field, q[SHOW_MAX], phrase[WHY_MAX];
        size_t len = strlen(value), host_len, auth_len;
        const char *auth, *host, *colon = NULL;
        uint16_t port;

        if (len == 0) {
                if (k->flags & KEY_OPTIONAL)
                        return 0;
                return invalid(why, why_size, "must not be empty");
        }
        config_show(q, value, len);
        if (len >= 7 && config_ascii_equal_n(value, 7, "http://"))
                return invalid(why, why_size,
                               "%s: plain http:// is refused, the bearer token must travel over https://", q);
        if (len < sizeof scheme - 1 || !config_ascii_equal_n(value, sizeof scheme - 1, scheme))
                return invalid(why, why_size, "%s does not start with https://", q);
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) value[i];

                if (c <= 0x20 || c >= 0x7f)
                        return invalid(why, why_size, "%s contains %s; percent-encode it", q,
                                       c == ' ' ? "a space" : "a byte that is not printable ASCII");
        }

        auth = value + sizeof scheme - 1;
        auth_len = strcspn(auth, "/?#");
        if (memchr(auth, '@', auth_len))
                return invalid(why, why_size, "%s has a user part; the token is read from token_file", q);
        host = auth;
        if (auth_len > 0 && auth[0] == '[') {
                const char *close = memchr(auth, ']', auth_len);
                char text[INET6_ADDRSTRLEN];
                struct in6_addr a6;

                host_len = close ? (size_t) (close - auth) - 1 : 0;
                if (!close || host_len >= sizeof text)
                        return invalid(why, why_size, "%s has a bad IPv6 address in brackets", q);
                memcpy(text, auth + 1, host_len);
                text[host_len] = '\0';
                if (inet_pton(AF_INET6, text, &a6) != 1)
                        return invalid(why, why_size, "%s has a bad IPv6 address in brackets", q);
                if ((size_t) (close - auth) + 1 < auth_len) {
                        if (close[1] != ':')
                                return invalid(why, why_size, "%s has text after the ']' of its host", q);
                        colon = close + 1;
                }
        } else {
                colon = memchr(auth, ':', auth_len);
                host_len = colon ? (size_t) (colon - auth) : auth_len;
                if (host_len == 0)
                        return invalid(why, why_size, "%s has no host", q);
                if (!hostname_valid(host, host_len, phrase, sizeof phrase))
                        return invalid(why, why_size, "%s: the host %s", q, phrase);
        }
        if (colon && !parse_port(colon + 1, (size_t) (auth + auth_len - colon - 1), &port))
                return invalid(why, why_size, "%s has a bad port; expected a number from 1 to 65535", q);

        *p = strdup(value);
        return *p ? 0 : -ENOMEM;
}

static const struct {
        const char *suffix;
        uint64_t usec;
} duration_units[] = {
        /* Largest first: config_print() uses the first that divides. */
        { "d", USEC_PER_DAY },
        { "h", USEC_PER_HOUR },
        { "min", USEC_PER_MIN },
        { "s", USEC_PER_SEC },
        { "ms", USEC_PER_MSEC },
        { "us", 1 },
};

static void duration_format(uint64_t usec, char *buf, size_t size) {
        if (usec == 0) {
                (void) snprintf(buf, size, "0");
                return;
        }
        for (size_t i = 0; i < ELEMENTSOF(duration_units); i++)
                if (usec % duration_units[i].usec == 0) {
                        (void) snprintf(buf, size, "%" PRIu64 "%s", usec / duration_units[i].usec,
                                        duration_units[i].suffix);
                        return;
                }
        assert(false);
}

/* A whole number and an optional unit, no space between: "500ms", "30s",
 * "5min", "2h", "1d"; a bare number is seconds. */
static int parse_duration(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        uint64_t *p = field, n, mult = 0;
        size_t digits = strspn(value, "0123456789");
        const char *unit = value + digits;
        char q[SHOW_MAX], lo[32], hi[32];

        config_show_str(q, value);
        if (digits == 0)
                goto bad;
        if (unit[0] == '\0')
                mult = USEC_PER_SEC;
        for (size_t i = 0; i < ELEMENTSOF(duration_units) && mult == 0; i++)
                if (strcmp(unit, duration_units[i].suffix) == 0)
                        mult = duration_units[i].usec;
        if (mult == 0)
                goto bad;

        duration_format(k->min, lo, sizeof lo);
        duration_format(k->max, hi, sizeof hi);
        /* 20 digits and more may not fit; any of them is out of range. */
        if (!parse_digits(value, digits, 19, &n) || n > k->max / mult)
                return invalid(why, why_size, "%s is longer than the maximum, %s", q, hi);
        if (n * mult < k->min)
                return invalid(why, why_size, "%s is shorter than the minimum, %s", q, lo);
        *p = n * mult;
        return 0;

bad:
        return invalid(why, why_size,
                       "%s is not a duration: expected a whole number and a unit (us, ms, s, min, h, d; none "
                       "means s), e.g. \"30s\"",
                       q);
}

static const struct {
        char suffix;
        uint64_t bytes;
} size_units[] = {
        /* Largest first, as for durations. */
        { 'G', GIB },
        { 'M', MIB },
        { 'K', KIB },
};

static void size_format(uint64_t bytes, char *buf, size_t size) {
        for (size_t i = 0; i < ELEMENTSOF(size_units); i++)
                if (bytes > 0 && bytes % size_units[i].bytes == 0) {
                        (void) snprintf(buf, size, "%" PRIu64 "%c", bytes / size_units[i].bytes,
                                        size_units[i].suffix);
                        return;
                }
        (void) snprintf(buf, size, "%" PRIu64, bytes);
}

/* A whole number of bytes, or of K, M or G (powers of 1024, either case). */
static int parse_size(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        uint64_t *p = field, n, mult = 0;
        size_t digits = strspn(value, "0123456789");
        const char *unit = value + digits;
        char q[SHOW_MAX], lo[32], hi[32];

        config_show_str(q, value);
        if (digits == 0)
                goto bad;
        if (unit[0] == '\0')
                mult = 1;
        else if (unit[1] == '\0')
                for (size_t i = 0; i < ELEMENTSOF(size_units); i++)
                        if (ascii_tolower(unit[0]) == ascii_tolower(size_units[i].suffix))
                                mult = size_units[i].bytes;
        if (mult == 0)
                goto bad;

        size_format(k->min, lo, sizeof lo);
        size_format(k->max, hi, sizeof hi);
        if (!parse_digits(value, digits, 19, &n) || n > k->max / mult)
                return invalid(why, why_size, "%s is more than the maximum, %s", q, hi);
        if (n * mult < k->min)
                return invalid(why, why_size, "%s is less than the minimum, %s", q, lo);
        *p = n * mult;
        return 0;

bad:
        return invalid(why, why_size,
                       "%s is not a size: expected a whole number of bytes, or of K, M or G (1024, 1024^2, "
                       "1024^3), e.g. \"16M\"",
                       q);
}

static int parse_bool(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        static const char *const yes[] = { "yes", "true", "on", "1" }, *const no[] = { "no", "false", "off", "0" };
        size_t len = strlen(value);
        bool *p = field;
        char q[SHOW_MAX];

        (void) k;
        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (config_ascii_equal_n(value, len, yes[i])) {
                        *p = true;
                        return 0;
                }
                if (config_ascii_equal_n(value, len, no[i])) {
                        *p = false;
                        return 0;
                }
        }
        return invalid(why, why_size, "%s is not a boolean: expected yes, no, true, false, on, off, 1 or 0",
                       config_show_str(q, value));
}

static int parse_enum(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        size_t len = strlen(value), o = 0;
        int *p = field;
        char q[SHOW_MAX], list[128];

        for (int i = 0; k->choices[i]; i++)
                if (config_ascii_equal_n(value, len, k->choices[i])) {
                        *p = i;
                        return 0;
                }
        /* "a, b or c" */
        list[0] = '\0';
        for (int i = 0; k->choices[i]; i++) {
                const char *sep = i == 0 ? "" : k->choices[i + 1] ? ", " : " or ";

                o += (size_t) snprintf(list + o, sizeof list - o, "%s%s", sep, k->choices[i]);
                assert(o < sizeof list);
        }
        return invalid(why, why_size, "%s is not one of %s", config_show_str(q, value), list);
}

/* Calls `fn` on each item of a list separated by spaces and tabs, with its
 * 0-based index; stops at the first error. At most `max` items. */
static int list_foreach(const char *value, size_t max, const char *what, char *why, size_t why_size,
                        int (*fn)(const char *item, size_t len, size_t index, void *userdata, char *why,
                                  size_t why_size),
                        void *userdata) {
        size_t n = 0;

        for (const char *s = value;;) {
                size_t len;
                int r;

                while (config_is_blank(*s))
                        s++;
                if (*s == '\0')
                        return 0;
                len = strcspn(s, " \t");
                if (n == max)
                        return invalid(why, why_size, "has more than %zu %s", max, what);
                r = fn(s, len, n, userdata, why, why_size);
                if (r < 0)
                        return r;
                n++;
                s += len;
        }
}

static size_t list_count(const char *value) {
        size_t n = 0;

        for (const char *s = value;;) {
                while (config_is_blank(*s))
                        s++;
                if (*s == '\0')
                        return n;
                n++;
                s += strcspn(s, " \t");
        }
}

bool config_address_same(const ConfigAddress *a, const ConfigAddress *b) {
        if (a->sa.ss_family != b->sa.ss_family || a->port != b->port)
                return false;
        if (a->sa.ss_family == AF_INET)
                return ((const struct sockaddr_in *) &a->sa)->sin_addr.s_addr ==
                       ((const struct sockaddr_in *) &b->sa)->sin_addr.s_addr;
        return memcmp(&((const struct sockaddr_in6 *) &a->sa)->sin6_addr,
                      &((const struct sockaddr_in6 *) &b->sa)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

typedef struct AddressList {
        ConfigAddresses *list;
        bool upstream;
} AddressList;

/* One list item, `len` bytes at `item`: "ADDR:PORT" or "[ADDR6]:PORT", then
 * "#tls-name" for an upstream, into items[index], which is then counted. */
static int address_parse_item(const char *item, size_t len, size_t index, void *userdata, char *why,
                              size_t why_size) {
        AddressList *l = userdata;
        ConfigAddress *a = &l->list->items[index];
        const char *hash = memchr(item, '#', len), *port;
        size_t addr_len = hash ? (size_t) (hash - item) : len, host_len, port_len;
        char q[SHOW_MAX], text[INET6_ADDRSTRLEN], phrase[WHY_MAX];
        const char *host;
        int family;

        config_show(q, item, len);
        if (l->upstream) {
                if (!hash)
                        return invalid(why, why_size,
                                       "%s has no TLS name; expected ADDR:PORT#tls-name, e.g. "
                                       "\"9.9.9.9:853#dns.quad9.net\"",
                                       q);
                if (!hostname_valid(hash + 1, len - addr_len - 1, phrase, sizeof phrase))
                        return invalid(why, why_size, "%s: the TLS name %s", q, phrase);
                memcpy(a->tls_name, hash + 1, len - addr_len - 1);
                a->tls_name[len - addr_len - 1] = '\0';
        } else if (hash)
                return invalid(why, why_size, "%s: a listen address takes no TLS name", q);

        if (addr_len > 0 && item[0] == '[') {
                const char *close = memchr(item, ']', addr_len);

                if (!close || close + 1 == item + addr_len || close[1] != ':')
                        return invalid(why, why_size, "%s: expected [ADDR6]:PORT, e.g. \"[::1]:53\"", q);
                host = item + 1;
                host_len = (size_t) (close - host);
                port = close + 2;
                family = AF_INET6;
        } else {
                const char *colon = memchr(item, ':', addr_len);

                if (!colon)
                        return invalid(why, why_size, "%s has no port; expected ADDR:PORT, e.g. \"127.0.0.53:53\"",
                                       q);
                if (memchr(colon + 1, ':', addr_len - (size_t) (colon + 1 - item)))
                        return invalid(why, why_size, "%s: put an IPv6 address in brackets, as in \"[::1]:53\"", q);
                host = item;
                host_len = (size_t) (colon - item);
                port = colon + 1;
                family = AF_INET;
        }
        port_len = (size_t) (item + addr_len - port);

        if (host_len >= sizeof text)
                goto bad_address;
        memcpy(text, host, host_len);
        text[host_len] = '\0';
        if (family == AF_INET) {
                struct sockaddr_in *sin = (struct sockaddr_in *) &a->sa;

                if (inet_pton(AF_INET, text, &sin->sin_addr) != 1)
                        goto bad_address;
                sin->sin_family = AF_INET;
                a->sa_len = sizeof *sin;
        } else {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &a->sa;

                if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1)
                        goto bad_address;
                sin6->sin6_family = AF_INET6;
                a->sa_len = sizeof *sin6;
        }
        if (!parse_port(port, port_len, &a->port))
                return invalid(why, why_size, "%s: the port %s is not a number from 1 to 65535", q,
                               config_show(phrase, port, port_len));
        if (family == AF_INET)
                ((struct sockaddr_in *) &a->sa)->sin_port = htons(a->port);
        else
                ((struct sockaddr_in6 *) &a->sa)->sin6_port = htons(a->port);

        if (family == AF_INET) {
                uint32_t v4 = ntohl(((const struct sockaddr_in *) &a->sa)->sin_addr.s_addr);

                /* The stub serves this machine only: never an open resolver. */
                if (!l->upstream && (v4 >> 24) != 127)
                        return invalid(why, why_size, "%s is not a loopback address (127.0.0.0/8 or [::1])", q);
                if (l->upstream && (v4 == 0 || (v4 >> 28) == 0xe || v4 == UINT32_MAX))
                        return invalid(why, why_size, "%s is not a unicast address", q);
        } else {
                const struct in6_addr *v6 = &((const struct sockaddr_in6 *) &a->sa)->sin6_addr;

                if (!l->upstream && !IN6_IS_ADDR_LOOPBACK(v6))
                        return invalid(why, why_size, "%s is not a loopback address (127.0.0.0/8 or [::1])", q);
                if (l->upstream && (IN6_IS_ADDR_UNSPECIFIED(v6) || IN6_IS_ADDR_MULTICAST(v6)))
                        return invalid(why, why_size, "%s is not a unicast address", q);
        }

        for (size_t i = 0; i < index; i++)
                if (config_address_same(&l->list->items[i], a))
                        return invalid(why, why_size, "%s is listed twice", q);
        l->list->n = index + 1;
        return 0;

bad_address:
        return invalid(why, why_size, "%s: %s is not an IPv%c address", q, config_show(phrase, host, host_len),
                       family == AF_INET ? '4' : '6');
}

static int parse_addresses(const Key *k, const char *value, void *field, char *why, size_t why_size, bool upstream) {
        ConfigAddresses *p = field;
        AddressList l = { .list = p, .upstream = upstream };
        size_t n = list_count(value), max = upstream ? CONFIG_UPSTREAM_MAX : CONFIG_LISTEN_MAX;

        if (n == 0) {
                if (k->flags & KEY_OPTIONAL)
                        return 0;
                return invalid(why, why_size, "must not be empty");
        }
        p->items = calloc(n < max ? n : max, sizeof *p->items);
        if (!p->items)
                return -ENOMEM;
        return list_foreach(value, max, upstream ? "servers" : "addresses", why, why_size, address_parse_item, &l);
}

static int parse_listen(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        return parse_addresses(k, value, field, why, why_size, false);
}

static int parse_upstream(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        return parse_addresses(k, value, field, why, why_size, true);
}

static const char base64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int base64_value(char c) {
        const char *at = c ? strchr(base64_alphabet, c) : NULL;

        return at ? (int) (at - base64_alphabet) : -1;
}

/* A pin is the base64 (RFC 4648 4, padded) of 32 bytes: 43 characters and
 * '='. The last character carries 4 bits; the 2 left over must be zero, so
 * that each pin has one spelling and config_print() gives it back as it
 * was written. */
static int pin_parse_item(const char *item, size_t len, size_t index, void *userdata, char *why, size_t why_size) {
        ConfigPins *pins = userdata;
        ConfigPin *pin = &pins->items[index];
        uint32_t acc = 0;
        unsigned bits = 0;
        size_t o = 0;
        char q[SHOW_MAX];

        config_show(q, item, len);
        if (len != PIN_BASE64_LEN || item[len - 1] != '=')
                return invalid(why, why_size,
                               "%s is not a pin: expected the base64 of a SHA-256 digest, 44 characters ending "
                               "in '='",
                               q);
        for (size_t i = 0; i < len - 1; i++) {
                int v = base64_value(item[i]);

                if (v < 0)
                        return invalid(why, why_size, "%s contains '%c', which is not base64", q, item[i]);
                acc = (acc << 6) | (uint32_t) v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        pin->sha256[o++] = (uint8_t) (acc >> bits);
                        acc &= (UINT32_C(1) << bits) - 1;
                }
        }
        assert(o == CONFIG_SHA256_SIZE && bits == 2);
        if (acc != 0)
                return invalid(why, why_size, "%s is not canonical base64 (its last character is off)", q);

        for (size_t i = 0; i < index; i++)
                if (memcmp(pins->items[i].sha256, pin->sha256, CONFIG_SHA256_SIZE) == 0)
                        return invalid(why, why_size, "%s is listed twice", q);
        pins->n = index + 1;
        return 0;
}

static int parse_pins(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        ConfigPins *p = field;
        size_t n = list_count(value);

        (void) k;
        if (n == 0)
                return 0;
        p->items = calloc(n < CONFIG_PINS_MAX ? n : CONFIG_PINS_MAX, sizeof *p->items);
        if (!p->items)
                return -ENOMEM;
        return list_foreach(value, CONFIG_PINS_MAX, "pins", why, why_size, pin_parse_item, p);
}

typedef struct PathList {
        const Key *key;
        ConfigPaths *paths;
} PathList;

static int path_parse_item(const char *item, size_t len, size_t index, void *userdata, char *why, size_t why_size) {
        PathList *l = userdata;
        char q[SHOW_MAX];
        int r;

        r = path_check(l->key, item, len, why, why_size);
        if (r < 0)
                return r;
        for (size_t i = 0; i < index; i++)
                if (strlen(l->paths->items[i]) == len && memcmp(l->paths->items[i], item, len) == 0)
                        return invalid(why, why_size, "%s is listed twice", config_show(q, item, len));
        l->paths->items[index] = strndup(item, len);
        if (!l->paths->items[index])
                return -ENOMEM;
        l->paths->n = index + 1;
        return 0;
}

static int parse_paths(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        ConfigPaths *p = field;
        PathList l = { .key = k, .paths = p };
        size_t n = list_count(value);

        if (n == 0)
                return 0;
        p->items = calloc(n < CONFIG_BLOCKLIST_MAX ? n : CONFIG_BLOCKLIST_MAX, sizeof *p->items);
        if (!p->items)
                return -ENOMEM;
        return list_foreach(value, CONFIG_BLOCKLIST_MAX, "files", why, why_size, path_parse_item, &l);
}

/* One tailnet domain a peers document may claim. Stored in lower case
 * without the final dot, the form documents are compared in. */
static int domain_parse_item(const char *item, size_t len, size_t index, void *userdata, char *why,
                             size_t why_size) {
        ConfigNames *l = userdata;
        char q[SHOW_MAX], phrase[WHY_MAX];
        size_t last;
        char *name;
        int r;

        config_show(q, item, len);
        if (len > 1 && item[len - 1] == '.')
                len--;
        if (!hostname_valid(item, len, phrase, sizeof phrase))
                return invalid(why, why_size, "%s %s", q, phrase);
        if (!memchr(item, '.', len))
                return invalid(why, why_size,
                               "%s has a single label; it would make a whole top-level domain the tailnet's", q);
        last = len;
        while (last > 0 && item[last - 1] != '.')
                last--;
        if (strspn(item + last, "0123456789") == len - last)
                return invalid(why, why_size, "%s ends in an all-numeric label, which reads as an IPv4 address", q);
        r = public_suffix_check(item, len);
        if (r < 0)
                return invalid(why, why_size,
                               "%s cannot be checked against the public suffix list (%s); is the publicsuffix "
                               "package installed?",
                               q, strerror(-r));
        if (r > 0)
                return invalid(why, why_size,
                               "%s is a public suffix (anyone may register names under it), not a domain a "
                               "tailnet can own",
                               q);
        for (size_t i = 0; i < index; i++)
                if (config_ascii_equal_n(item, len, l->items[i]))
                        return invalid(why, why_size, "%s is listed twice", q);

        name = strndup(item, len);
        if (!name)
                return -ENOMEM;
        for (char *c = name; *c; c++)
                *c = ascii_tolower(*c);
        l->items[index] = name;
        l->n = index + 1;
        return 0;
}

static int parse_domains(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        ConfigNames *p = field;
        size_t n = list_count(value);

        (void) k;
        if (n == 0)
                return invalid(why, why_size, "must not be empty (expected the tailnet's domain, e.g. "
                                              "\"yourorg.zt.net\")");
        p->items = calloc(n < CONFIG_DOMAINS_MAX ? n : CONFIG_DOMAINS_MAX, sizeof *p->items);
        if (!p->items)
                return -ENOMEM;
        return list_foreach(value, CONFIG_DOMAINS_MAX, "domains", why, why_size, domain_parse_item, p);
}

static bool prefix_same(const ShmPrefix *a, const ShmPrefix *b) {
        if (a->family != b->family || a->prefixlen != b->prefixlen)
                return false;
        if (a->family == AF_INET)
                return a->addr.in.s_addr == b->addr.in.s_addr;
        return memcmp(&a->addr.in6, &b->addr.in6, sizeof a->addr.in6) == 0;
}

/* "ADDRESS/LENGTH", host bits clear; "0.0.0.0/0" and "::/0" allow every
 * address of their family, for an operator who means it. */
static int prefix_parse_item(const char *item, size_t len, size_t index, void *userdata, char *why,
                             size_t why_size) {
        ConfigPrefixes *l = userdata;
        ShmPrefix *p = &l->items[index];
        const char *slash = memchr(item, '/', len);
        char q[SHOW_MAX], text[INET6_ADDRSTRLEN];
        size_t alen, plen;
        uint64_t prefixlen;
        const uint8_t *bytes;
        unsigned max;

        config_show(q, item, len);
        if (!slash)
                return invalid(why, why_size,
                               "%s has no prefix length; expected ADDRESS/LENGTH, e.g. \"100.64.0.0/10\"", q);
        alen = (size_t) (slash - item);
        plen = len - alen - 1;
        if (!parse_digits(slash + 1, plen, 3, &prefixlen) || (plen > 1 && slash[1] == '0'))
                return invalid(why, why_size, "%s has a bad prefix length (expected a decimal number)", q);
        if (alen >= sizeof text)
                return invalid(why, why_size, "%s is not an IPv4 or IPv6 prefix", q);
        memcpy(text, item, alen);
        text[alen] = '\0';
        *p = (ShmPrefix) {};
        if (inet_pton(AF_INET, text, &p->addr.in) == 1) {
                p->family = AF_INET;
                max = 32;
                bytes = (const uint8_t *) &p->addr.in;
        } else if (inet_pton(AF_INET6, text, &p->addr.in6) == 1) {
                p->family = AF_INET6;
                max = 128;
                bytes = p->addr.in6.s6_addr;
        } else
                return invalid(why, why_size, "%s is not an IPv4 or IPv6 prefix", q);
        if (prefixlen > max)
                return invalid(why, why_size, "%s: prefix length %" PRIu64 " is more than %u", q, prefixlen, max);
        for (unsigned bit = (unsigned) prefixlen; bit < max; bit++)
                if (bytes[bit / 8] & (0x80u >> (bit % 8)))
                        return invalid(why, why_size, "%s has bits set after the first %" PRIu64, q, prefixlen);
        p->prefixlen = (unsigned) prefixlen;
        for (size_t i = 0; i < index; i++)
                if (prefix_same(&l->items[i], p))
                        return invalid(why, why_size, "%s is listed twice", q);
        l->n = index + 1;
        return 0;
}

static int parse_prefixes(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        ConfigPrefixes *p = field;
        size_t n = list_count(value);

        (void) k;
        if (n == 0)
                return invalid(why, why_size, "must not be empty (expected prefixes, e.g. \"100.64.0.0/10\")");
        p->items = calloc(n < CONFIG_RANGES_MAX ? n : CONFIG_RANGES_MAX, sizeof *p->items);
        if (!p->items)
                return -ENOMEM;
        return list_foreach(value, CONFIG_RANGES_MAX, "prefixes", why, why_size, prefix_parse_item, p);
}

/* A value as config_parse() reads it back: bare when it can be, otherwise in
 * double quotes with '"' and '\' escaped. */
static void string_print(const char *s, FILE *f) {
        size_t len = s ? strlen(s) : 0;

        if (len == 0)
                return;
        if (s[0] != '"' && !config_is_blank(s[0]) && !config_is_blank(s[len - 1])) {
                fputs(s, f);
                return;
        }
        fputc('"', f);
        for (; *s; s++) {
                if (*s == '"' || *s == '\\')
                        fputc('\\', f);
                fputc(*s, f);
        }
        fputc('"', f);
}

const char *config_address_format(const ConfigAddress *a, char buf[static ADDRESS_TEXT_MAX]) {
        char host_port[INET_HOST_PORT_MAX];

        /* RFC 5952 text, which may be a character longer than what was
         * parsed ("1::3:4:5:6:7:8" is "1:0:3:4:5:6:7:8"). */
        (void) inet_host_port(a->sa.ss_family, sockaddr_ip(&a->sa), a->port, host_port, sizeof host_port);
        (void) snprintf(buf, ADDRESS_TEXT_MAX, "%s%s%s", host_port, a->tls_name[0] ? "#" : "", a->tls_name);
        return buf;
}

void config_value_print(const Key *k, const void *field, FILE *f) {
        char buf[32];

        switch (k->type) {
        case TYPE_PATH:
        case TYPE_STRING:
        case TYPE_URL:
                string_print(*(char *const *) field, f);
                break;
        case TYPE_DURATION:
                duration_format(*(const uint64_t *) field, buf, sizeof buf);
                fputs(buf, f);
                break;
        case TYPE_SIZE:
                size_format(*(const uint64_t *) field, buf, sizeof buf);
                fputs(buf, f);
                break;
        case TYPE_BOOL:
                fputs(*(const bool *) field ? "yes" : "no", f);
                break;
        case TYPE_ENUM:
                fputs(k->choices[*(const int *) field], f);
                break;
        case TYPE_LISTEN:
        case TYPE_UPSTREAM: {
                const ConfigAddresses *l = field;
                char text[ADDRESS_TEXT_MAX];

                for (size_t i = 0; i < l->n; i++)
                        fprintf(f, "%s%s", i > 0 ? " " : "", config_address_format(&l->items[i], text));
                break;
        }
        case TYPE_PINS: {
                const ConfigPins *l = field;

                for (size_t i = 0; i < l->n; i++) {
                        const uint8_t *d = l->items[i].sha256;
                        char out[PIN_BASE64_LEN + 1];
                        size_t o = 0;

                        /* 32 bytes: ten groups of three, then two bytes. */
                        for (size_t j = 0; j < CONFIG_SHA256_SIZE; j += 3) {
                                uint32_t v = (uint32_t) d[j] << 16 | (uint32_t) d[j + 1] << 8;

                                if (j + 2 < CONFIG_SHA256_SIZE)
                                        v |= d[j + 2];
                                out[o++] = base64_alphabet[v >> 18 & 63];
                                out[o++] = base64_alphabet[v >> 12 & 63];
                                out[o++] = base64_alphabet[v >> 6 & 63];
                                out[o++] = j + 2 < CONFIG_SHA256_SIZE ? base64_alphabet[v & 63] : '=';
                        }
                        assert(o == PIN_BASE64_LEN);
                        out[o] = '\0';
                        fprintf(f, "%s%s", i > 0 ? " " : "", out);
                }
                break;
        }
        case TYPE_PATHS: {
                const ConfigPaths *l = field;

                for (size_t i = 0; i < l->n; i++)
                        fprintf(f, "%s%s", i > 0 ? " " : "", l->items[i]);
                break;
        }
        case TYPE_DOMAINS: {
                const ConfigNames *l = field;

                for (size_t i = 0; i < l->n; i++)
                        fprintf(f, "%s%s", i > 0 ? " " : "", l->items[i]);
                break;
        }
        case TYPE_PREFIXES: {
                const ConfigPrefixes *l = field;
                char text[INET6_ADDRSTRLEN];

                for (size_t i = 0; i < l->n; i++) {
                        (void) inet_ntop(l->items[i].family, &l->items[i].addr, text, sizeof text);
                        fprintf(f, "%s%s/%u", i > 0 ? " " : "", text, l->items[i].prefixlen);
                }
                break;
        }
        case _TYPE_MAX:
                assert(false);
        }
}

const ParseFn config_parsers[_TYPE_MAX] = {
        [TYPE_PATH] = parse_path,
        [TYPE_STRING] = parse_string,
        [TYPE_URL] = parse_url,
        [TYPE_DURATION] = parse_duration,
        [TYPE_SIZE] = parse_size,
        [TYPE_BOOL] = parse_bool,
        [TYPE_ENUM] = parse_enum,
        [TYPE_LISTEN] = parse_listen,
        [TYPE_UPSTREAM] = parse_upstream,
        [TYPE_PINS] = parse_pins,
        [TYPE_PATHS] = parse_paths,
        [TYPE_DOMAINS] = parse_domains,
        [TYPE_PREFIXES] = parse_prefixes,
};

static bool string_equal(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

bool config_value_equal(const Key *k, const void *a, const void *b) {
        switch (k->type) {
        case TYPE_PATH:
        case TYPE_STRING:
        case TYPE_URL:
                return string_equal(*(char *const *) a, *(char *const *) b);
        case TYPE_DURATION:
        case TYPE_SIZE:
                return *(const uint64_t *) a == *(const uint64_t *) b;
        case TYPE_BOOL:
                return *(const bool *) a == *(const bool *) b;
        case TYPE_ENUM:
                return *(const int *) a == *(const int *) b;
        case TYPE_LISTEN:
        case TYPE_UPSTREAM: {
                const ConfigAddresses *x = a, *y = b;

                if (x->n != y->n)
                        return false;
                for (size_t i = 0; i < x->n; i++)
                        if (!config_address_same(&x->items[i], &y->items[i]) ||
                            strcmp(x->items[i].tls_name, y->items[i].tls_name) != 0)
                                return false;
                return true;
        }
        case TYPE_PINS: {
                const ConfigPins *x = a, *y = b;

                return x->n == y->n && (x->n == 0 || memcmp(x->items, y->items, x->n * sizeof *x->items) == 0);
        }
        case TYPE_PATHS: {
                const ConfigPaths *x = a, *y = b;

                if (x->n != y->n)
                        return false;
                for (size_t i = 0; i < x->n; i++)
                        if (strcmp(x->items[i], y->items[i]) != 0)
                                return false;
                return true;
        }
        case TYPE_DOMAINS: {
                const ConfigNames *x = a, *y = b;

                if (x->n != y->n)
                        return false;
                for (size_t i = 0; i < x->n; i++)
                        if (strcmp(x->items[i], y->items[i]) != 0)
                                return false;
                return true;
        }
        case TYPE_PREFIXES: {
                const ConfigPrefixes *x = a, *y = b;

                if (x->n != y->n)
                        return false;
                for (size_t i = 0; i < x->n; i++)
                        if (!prefix_same(&x->items[i], &y->items[i]))
                                return false;
                return true;
        }
        case _TYPE_MAX:
                break;
        }
        assert(false);
        return false;
}

void config_value_free(const Key *k, void *field) {
        switch (k->type) {
        case TYPE_PATH:
        case TYPE_STRING:
        case TYPE_URL:
                free(*(char **) field);
                break;
        case TYPE_LISTEN:
        case TYPE_UPSTREAM:
                free(((ConfigAddresses *) field)->items);
                break;
        case TYPE_PINS:
                free(((ConfigPins *) field)->items);
                break;
        case TYPE_PATHS: {
                ConfigPaths *l = field;

                for (size_t i = 0; i < l->n; i++)
                        free(l->items[i]);
                free(l->items);
                break;
        }
        case TYPE_DOMAINS: {
                ConfigNames *l = field;

                for (size_t i = 0; i < l->n; i++)
                        free(l->items[i]);
                free(l->items);
                break;
        }
        case TYPE_PREFIXES:
                free(((ConfigPrefixes *) field)->items);
                break;
        case TYPE_DURATION:
        case TYPE_SIZE:
        case TYPE_BOOL:
        case TYPE_ENUM:
        case _TYPE_MAX:
                break;
        }
}

/* Whether a value prints as nothing: an unset optional string, an empty
 * list. */
bool config_value_empty(const Key *k, const void *field) {
        switch (k->type) {
        case TYPE_PATH:
        case TYPE_STRING:
        case TYPE_URL:
                return !*(char *const *) field;
        case TYPE_LISTEN:
        case TYPE_UPSTREAM:
                return ((const ConfigAddresses *) field)->n == 0;
        case TYPE_PINS:
                return ((const ConfigPins *) field)->n == 0;
        case TYPE_PATHS:
                return ((const ConfigPaths *) field)->n == 0;
        case TYPE_DOMAINS:
                return ((const ConfigNames *) field)->n == 0;
        case TYPE_PREFIXES:
                return ((const ConfigPrefixes *) field)->n == 0;
        default:
                return false;
        }
}
