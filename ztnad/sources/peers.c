/* SPDX-License-Identifier: MIT */
/*
 * The peers document, read straight from its bytes and validated whole.
 * Nothing here is trusted: the file may come from a control plane, a script or a typo, and
 * whatever passes is what every process on the machine will resolve.
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

/* Where a string with escapes is decoded; grown as needed. */
typedef struct Scratch {
        char *buf;
        size_t size;
} Scratch;

typedef struct Parser {
        const char *source;
        PeersError *err;
        const PeersPolicy *policy; /* NULL: nothing pinned */
        const char *data;          /* the document, `len` bytes */
        size_t len;
        Scratch *scratch;
} Parser;

/* One address as read, with where it was read, for the duplicate checks. */
typedef struct AddrEntry {
        uint8_t family; /* AF_INET or AF_INET6 */
        uint8_t bytes[16];
        uint32_t peer, pos;
} AddrEntry;
/* The repeat check hashes family and bytes as one run of 17 bytes. */
static_assert(offsetof(AddrEntry, bytes) == 1, "bytes follow family directly");

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

/* ---- the JSON text (RFC 8259), read strictly, straight from the bytes ----
 *
 * No tree is built: a first pass checks the whole text and notes where the
 * top-level members start and how big the map will be; the second walks the
 * same bytes again to validate and fill the map. Peak memory is the input,
 * the map and its sort copies, whatever the document's shape. */

/* The document is at most 4 deep when valid; unknown members are refused
 * anyway, so the cap only has to keep the recursion short. */
#define JSON_DEPTH_MAX 128
#define NO_VAL SIZE_MAX
#define KEY_TEXT_MAX (QUOTE_MAX + 8) /* enough of a key to quote it */

typedef struct Lexer {
        const Parser *p;
        size_t pos;
} Lexer;

static int peek(const Lexer *l) {
        return l->pos < l->p->len ? (unsigned char) l->p->data[l->pos] : -1;
}

static void skip_ws(Lexer *l) {
        const char *d = l->p->data;
        size_t pos = l->pos, len = l->p->len;

        while (pos < len && (d[pos] == ' ' || d[pos] == '\t' || d[pos] == '\n' || d[pos] == '\r'))
                pos++;
        l->pos = pos;
}

/* A syntax error at byte `at`: "SOURCE:LINE:COLUMN: what", path "". */
__attribute__((format(printf, 3, 4)))
static int syntax_fail(const Lexer *l, size_t at, const char *fmt, ...) {
        PeersError *e = l->p->err;
        size_t line = 1, line_start = 0;
        va_list ap;
        int n;

        if (!e)
                return -EBADMSG;
        for (size_t i = 0; i < at && i < l->p->len; i++)
                if (l->p->data[i] == '\n') {
                        line++;
                        line_start = i + 1;
                }
        *e = (PeersError) { .line = (int) line, .column = (int) (at - line_start + 1) };
        n = snprintf(e->message, sizeof e->message, "%s:%d:%d: ", l->p->source, e->line, e->column);
        if (n >= 0 && (size_t) n < sizeof e->message) {
                va_start(ap, fmt);
                (void) vsnprintf(e->message + n, sizeof e->message - (size_t) n, fmt, ap);
                va_end(ap);
        }
        scrub(e->message);
        return -EBADMSG;
}

/* What sits at `at`, for a syntax error: "end of input", "'x'", "byte 0x80". */
static const char *found(const Lexer *l, size_t at, char buf[static 16]) {
        unsigned char c;

        if (at >= l->p->len)
                return "end of input";
        c = (unsigned char) l->p->data[at];
        if (c > 0x20 && c < 0x7f)
                (void) snprintf(buf, 16, "'%c'", c);
        else
                (void) snprintf(buf, 16, "byte 0x%02x", c);
        return buf;
}

static int unexpected(const Lexer *l, const char *wanted) {
        char b[16];

        return syntax_fail(l, l->pos, "expected %s, found %s", wanted, found(l, l->pos, b));
}

/* The length of the well-formed UTF-8 sequence at `s` (RFC 3629: no
 * overlong forms, no surrogates, nothing above U+10FFFF), 0 if there is
 * none. */
static size_t utf8_length(const unsigned char *s, size_t avail) {
        unsigned char lo = 0x80, hi = 0xbf;
        size_t n;

        if (s[0] >= 0xc2 && s[0] <= 0xdf)
                n = 2;
        else if (s[0] >= 0xe0 && s[0] <= 0xef) {
                n = 3;
                if (s[0] == 0xe0)
                        lo = 0xa0;
                else if (s[0] == 0xed)
                        hi = 0x9f;
        } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
                n = 4;
                if (s[0] == 0xf0)
                        lo = 0x90;
                else if (s[0] == 0xf4)
                        hi = 0x8f;
        } else
                return 0;
        if (avail < n || s[1] < lo || s[1] > hi)
                return 0;
        for (size_t i = 2; i < n; i++)
                if ((s[i] & 0xc0) != 0x80)
                        return 0;
        return n;
}

/* Writes code point `cp` as UTF-8 to `out` (NULL: only counts). */
static size_t put_utf8(char *out, uint32_t cp) {
        unsigned char b[4];
        size_t n;

        if (cp < 0x80) {
                b[0] = (unsigned char) cp;
                n = 1;
        } else if (cp < 0x800) {
                b[0] = (unsigned char) (0xc0 | cp >> 6);
                b[1] = (unsigned char) (0x80 | (cp & 0x3f));
                n = 2;
        } else if (cp < 0x10000) {
                b[0] = (unsigned char) (0xe0 | cp >> 12);
                b[1] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
                b[2] = (unsigned char) (0x80 | (cp & 0x3f));
                n = 3;
        } else {
                b[0] = (unsigned char) (0xf0 | cp >> 18);
                b[1] = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
                b[2] = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
                b[3] = (unsigned char) (0x80 | (cp & 0x3f));
                n = 4;
        }
        if (out)
                memcpy(out, b, n);
        return n;
}

static int lex_hex4(Lexer *l, uint32_t *ret) {
        uint32_t v = 0;

        for (int i = 0; i < 4; i++) {
                int c = peek(l);

                v <<= 4;
                if (c >= '0' && c <= '9')
                        v |= (uint32_t) (c - '0');
                else if (c >= 'a' && c <= 'f')
                        v |= (uint32_t) (c - 'a' + 10);
                else if (c >= 'A' && c <= 'F')
                        v |= (uint32_t) (c - 'A' + 10);
                else
                        return unexpected(l, "a hexadecimal digit in a \\u escape");
                l->pos++;
        }
        *ret = v;
        return 0;
}

/* The escape at the backslash under l->pos, as a code point. */
static int lex_escape(Lexer *l, uint32_t *ret) {
        static const char simple[] = "\"\"\\\\//b\bf\fn\nr\rt\t";
        size_t at = l->pos;
        uint32_t cp = 0, low = 0;
        int c, r;

        l->pos++;
        c = peek(l);
        for (size_t i = 0; c > 0 && i + 1 < sizeof simple; i += 2)
                if (simple[i] == c) {
                        l->pos++;
                        *ret = (unsigned char) simple[i + 1];
                        return 0;
                }
        if (c != 'u')
                return unexpected(l, "an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX)");
        l->pos++;
        r = lex_hex4(l, &cp);
        if (r < 0)
                return r;
        /* A NUL would make C see a shorter name than the one validated. */
        if (cp == 0)
                return syntax_fail(l, at, "\\u0000 is not allowed in a string");
        if (cp >= 0xdc00 && cp <= 0xdfff)
                return syntax_fail(l, at, "\\u%04X is a low surrogate without a high one before it", cp);
        if (cp >= 0xd800 && cp <= 0xdbff) {
                if (peek(l) != '\\' || l->pos + 1 >= l->p->len || l->p->data[l->pos + 1] != 'u')
                        return syntax_fail(l, at, "\\u%04X is a high surrogate without a low one after it", cp);
                l->pos += 2;
                r = lex_hex4(l, &low);
                if (r < 0)
                        return r;
                if (low < 0xdc00 || low > 0xdfff)
                        return syntax_fail(l, at, "\\u%04X is a high surrogate without a low one after it", cp);
                cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
        }
        *ret = cp;
        return 0;
}

/* The bytes a string holds as they are: printable ASCII but '"' (0x22) and
 * '\\' (0x5c). */
#define P4(b) [b] = 1, [(b) + 1] = 1, [(b) + 2] = 1, [(b) + 3] = 1
#define P16(b) P4(b), P4((b) + 4), P4((b) + 8), P4((b) + 12)
static const bool string_plain[256] = {
        [0x20] = 1, [0x21] = 1, [0x23] = 1, P4(0x24), P4(0x28), P4(0x2c) /* not '"' */,
        P16(0x30), P16(0x40),
        P4(0x50), P4(0x54), P4(0x58), [0x5d] = 1, [0x5e] = 1, [0x5f] = 1 /* not '\\' */,
        P16(0x60), P16(0x70),
};
#undef P16
#undef P4

/* The string whose opening quote is under l->pos. Its decoded bytes go to
 * `out` (NULL: only checked), at most `out_size` of them; a decoded string
 * is never longer than its text. *ret_len gets the full decoded length,
 * *ret_escaped whether that differs from the text between the quotes. */
static int lex_string(Lexer *l, char *out, size_t out_size, size_t *ret_len, bool *ret_escaped) {
        const unsigned char *d = (const unsigned char *) l->p->data;
        size_t start = l->pos, n = 0;
        bool escaped = false;

        l->pos++;
        for (;;) {
                size_t run = l->pos;
                unsigned char c;

                /* Plain printable ASCII, the bulk of any document (in
                 * locals: a store through l could alias the length). */
                size_t pos = l->pos, end = l->p->len;
                while (pos < end && string_plain[d[pos]])
                        pos++;
                l->pos = pos;
                if (out && n < out_size)
                        memcpy(out + n, d + run, l->pos - run < out_size - n ? l->pos - run : out_size - n);
                n += l->pos - run;

                if (l->pos >= l->p->len)
                        return syntax_fail(l, start, "string not terminated");
                c = d[l->pos];
                if (c == '"')
                        break;
                if (c == '\\') {
                        char b[4];
                        uint32_t cp = 0;
                        size_t k;
                        int r = lex_escape(l, &cp);

                        if (r < 0)
                                return r;
                        k = put_utf8(b, cp);
                        for (size_t i = 0; out && i < k && n + i < out_size; i++)
                                out[n + i] = b[i];
                        n += k;
                        escaped = true;
                        continue;
                }
                if (c < 0x20)
                        return syntax_fail(l, l->pos, "control character 0x%02x in a string (write it escaped)", c);
                size_t k = utf8_length(d + l->pos, l->p->len - l->pos);
                if (k == 0)
                        return syntax_fail(l, l->pos, "byte 0x%02x does not start valid UTF-8", c);
                for (size_t i = 0; out && i < k && n + i < out_size; i++)
                        out[n + i] = (char) d[l->pos + i];
                n += k;
                l->pos += k;
        }
        l->pos++;
        *ret_len = n;
        if (ret_escaped)
                *ret_escaped = escaped;
        return 0;
}

static bool is_digit(int c) {
        return c >= '0' && c <= '9';
}

/* The number under l->pos. *ret_integer: it has neither a fraction nor an
 * exponent, and *ret_value is its value; an integer outside int64_t is a
 * syntax error (it cannot be anything this document wants). */
static int lex_number(Lexer *l, bool *ret_integer, int64_t *ret_value) {
        size_t start = l->pos;
        bool neg = false, integer = true, big = false;
        uint64_t v = 0;

        if (peek(l) == '-') {
                neg = true;
                l->pos++;
        }
        if (!is_digit(peek(l)))
                return unexpected(l, "a digit");
        if (peek(l) == '0')
                l->pos++;
        else
                for (; is_digit(peek(l)); l->pos++) {
                        unsigned d = (unsigned) (peek(l) - '0');

                        if (v > (UINT64_MAX - d) / 10)
                                big = true;
                        else
                                v = v * 10 + d;
                }
        if (peek(l) == '.') {
                integer = false;
                l->pos++;
                if (!is_digit(peek(l)))
                        return unexpected(l, "a digit after '.'");
                while (is_digit(peek(l)))
                        l->pos++;
        }
        if (peek(l) == 'e' || peek(l) == 'E') {
                integer = false;
                l->pos++;
                if (peek(l) == '+' || peek(l) == '-')
                        l->pos++;
                if (!is_digit(peek(l)))
                        return unexpected(l, "a digit in the exponent");
                while (is_digit(peek(l)))
                        l->pos++;
        }
        if (integer && (big || v > (uint64_t) INT64_MAX + neg))
                return syntax_fail(l, start, "integer %.*s is too big", (int) (l->pos - start < 40 ? l->pos - start : 40),
                                   l->p->data + start);
        *ret_integer = integer;
        if (ret_value)
                *ret_value = !integer ? 0 : neg ? (int64_t) (0 - v) : (int64_t) v;
        return 0;
}

static int lex_literal(Lexer *l, const char *word) {
        size_t n = strlen(word);

        if (l->p->len - l->pos < n || memcmp(l->p->data + l->pos, word, n) != 0)
                return unexpected(l, "a JSON value");
        l->pos += n;
        return 0;
}

/* ---- first pass: the whole text checked, the map sized ---- */

enum { TOP_DOMAIN, TOP_RANGES, TOP_TTL, TOP_PEERS, _TOP_MAX };
enum { PEER_NAME, PEER_ADDRESSES, PEER_ONLINE, PEER_TTL, _PEER_MAX };

static const char *const top_keys[] = { "domain", "ranges", "ttl", "peers", NULL };
static const char *const peer_keys[] = { "name", "addresses", "online", "ttl", NULL };

/* What a value is to the document, which decides what the first pass notes
 * about it. */
typedef enum Role {
        ROLE_OTHER,
        ROLE_ROOT,
        ROLE_RANGES,
        ROLE_PEERS,
        ROLE_PEER,
        ROLE_NAME,
        ROLE_ADDRESSES,
} Role;

typedef struct Sizes {
        size_t top[_TOP_MAX]; /* where each top-level member's value starts */
        size_t top_unknown;   /* the first unknown top-level key */
        size_t n_ranges, n_peers, n_addrs, name_bytes;
} Sizes;

static int key_index(const char *const *keys, const char *s, size_t len) {
        for (int i = 0; keys[i]; i++)
                if (strlen(keys[i]) == len && memcmp(keys[i], s, len) == 0)
                        return i;
        return -1;
}

static int scan_value(Lexer *l, Role role, unsigned depth, Sizes *z);

static int scan_object(Lexer *l, Role role, unsigned depth, Sizes *z) {
        unsigned seen = 0;
        int r;

        l->pos++;
        skip_ws(l);
        if (peek(l) == '}') {
                l->pos++;
                return 0;
        }
        for (;;) {
                char key[KEY_TEXT_MAX];
                size_t key_at = l->pos, key_len;
                Role child = ROLE_OTHER;
                int k = -1;

                if (peek(l) != '"')
                        return unexpected(l, "a string (an object key)");
                r = lex_string(l, key, sizeof key, &key_len, NULL);
                if (r < 0)
                        return r;
                skip_ws(l);
                if (peek(l) != ':')
                        return unexpected(l, "':'");
                l->pos++;
                skip_ws(l);

                if ((role == ROLE_ROOT || role == ROLE_PEER) && key_len <= sizeof key) {
                        k = key_index(role == ROLE_ROOT ? top_keys : peer_keys, key, key_len);
                        /* The same key twice: which one would count? */
                        if (k >= 0 && (seen & 1u << k))
                                return syntax_fail(l, key_at, "duplicate object key \"%.*s\"", (int) key_len, key);
                        if (k >= 0)
                                seen |= 1u << k;
                }
                if (role == ROLE_ROOT) {
                        if (k >= 0)
                                z->top[k] = l->pos;
                        else if (z->top_unknown == NO_VAL)
                                z->top_unknown = key_at;
                        child = k == TOP_PEERS ? ROLE_PEERS : k == TOP_RANGES ? ROLE_RANGES : ROLE_OTHER;
                } else if (role == ROLE_PEER)
                        child = k == PEER_NAME ? ROLE_NAME : k == PEER_ADDRESSES ? ROLE_ADDRESSES : ROLE_OTHER;

                r = scan_value(l, child, depth, z);
                if (r < 0)
                        return r;
                skip_ws(l);
                if (peek(l) == '}') {
                        l->pos++;
                        return 0;
                }
                if (peek(l) != ',')
                        return unexpected(l, "',' or '}'");
                l->pos++;
                skip_ws(l);
        }
}

static int scan_array(Lexer *l, Role role, unsigned depth, Sizes *z) {
        int r;

        l->pos++;
        skip_ws(l);
        if (peek(l) == ']') {
                l->pos++;
                return 0;
        }
        for (;;) {
                if (role == ROLE_PEERS)
                        z->n_peers++;
                else if (role == ROLE_ADDRESSES)
                        z->n_addrs++;
                else if (role == ROLE_RANGES)
                        z->n_ranges++;
                r = scan_value(l, role == ROLE_PEERS ? ROLE_PEER : ROLE_OTHER, depth, z);
                if (r < 0)
                        return r;
                skip_ws(l);
                if (peek(l) == ']') {
                        l->pos++;
                        return 0;
                }
                if (peek(l) != ',')
                        return unexpected(l, "',' or ']'");
                l->pos++;
                skip_ws(l);
        }
}

/* The value under l->pos (white space skipped already), checked whole. */
static int scan_value(Lexer *l, Role role, unsigned depth, Sizes *z) {
        size_t len;
        bool integer;
        int r;

        switch (peek(l)) {
        case '{':
        case '[':
                if (depth >= JSON_DEPTH_MAX)
                        return syntax_fail(l, l->pos, "nested more than %u deep", JSON_DEPTH_MAX);
                return peek(l) == '{' ? scan_object(l, role, depth + 1, z) : scan_array(l, role, depth + 1, z);
        case '"':
                r = lex_string(l, NULL, 0, &len, NULL);
                if (r >= 0 && role == ROLE_NAME)
                        z->name_bytes += len + 1;
                return r;
        case 't':
                return lex_literal(l, "true");
        case 'f':
                return lex_literal(l, "false");
        case 'n':
                return lex_literal(l, "null");
        default:
                if (peek(l) == '-' || is_digit(peek(l)))
                        return lex_number(l, &integer, NULL);
                return unexpected(l, "a JSON value");
        }
}

static int scan_document(const Parser *p, Sizes *z) {
        Lexer l = { .p = p };
        int r;

        *z = (Sizes) { .top_unknown = NO_VAL };
        for (size_t i = 0; i < _TOP_MAX; i++)
                z->top[i] = NO_VAL;
        skip_ws(&l);
        if (peek(&l) != '{' && peek(&l) != '[')
                return unexpected(&l, "'{' (a JSON object)");
        r = scan_value(&l, peek(&l) == '{' ? ROLE_ROOT : ROLE_OTHER, 0, z);
        if (r < 0)
                return r;
        skip_ws(&l);
        if (l.pos < p->len)
                return unexpected(&l, "the end of the document");
        return 0;
}

/* ---- second pass: values read where the first pass found them ---- */

static Lexer lexer_at(const Parser *p, size_t pos) {
        return (Lexer) { .p = p, .pos = pos };
}

/* Moves past the value under l->pos, which the first pass has checked. */
static int skip_value(Lexer *l) {
        Sizes ignored;

        return scan_value(l, ROLE_OTHER, 0, &ignored);
}

static const char *value_kind(const Parser *p, size_t pos) {
        Lexer l = lexer_at(p, pos);
        bool integer = false;

        switch (peek(&l)) {
        case '{':
                return "an object";
        case '[':
                return "an array";
        case '"':
                return "a string";
        case 't':
        case 'f':
                return "a boolean";
        case 'n':
                return "null";
        default:
                if (lex_number(&l, &integer, NULL) < 0)
                        return "an unknown value";
                return integer ? "an integer" : "a fractional number";
        }
}

static bool value_is(const Parser *p, size_t pos, char c) {
        return pos < p->len && p->data[pos] == c;
}

/* The elements of the array at `pos`, one at a time. A caller that has read
 * an element whole may set `end` past it to save skipping it again. */
typedef struct Items {
        Lexer l;
        bool started;
        size_t end;
} Items;

static Items items_at(const Parser *p, size_t pos) {
        return (Items) { .l = lexer_at(p, pos + 1), .end = NO_VAL };
}

/* The position of the next element, NO_VAL after the last. */
static size_t items_next(Items *it) {
        size_t at;

        if (it->started && it->end != NO_VAL)
                it->l.pos = it->end;
        else if (it->started && skip_value(&it->l) < 0)
                return NO_VAL; /* cannot happen: the first pass checked it */
        it->end = NO_VAL;
        skip_ws(&it->l);
        if (it->started) {
                if (peek(&it->l) != ',')
                        return NO_VAL;
                it->l.pos++;
                skip_ws(&it->l);
        } else if (peek(&it->l) == ']')
                return NO_VAL;
        it->started = true;
        at = it->l.pos;
        return at;
}

/* A string value: its bytes in place when it has no escapes, else decoded
 * into the parser's scratch buffer, valid until the next string. */
static int get_string(const Parser *p, Where w, size_t pos, const char **ret, size_t *ret_len) {
        Lexer l = lexer_at(p, pos);
        Scratch *sc = p->scratch;
        size_t len;
        bool escaped;
        int r;

        if (!value_is(p, pos, '"'))
                return fail(p, w, "expected a string, got %s", value_kind(p, pos));
        r = lex_string(&l, NULL, 0, &len, &escaped);
        if (r < 0)
                return r;
        if (!escaped) {
                *ret = p->data + pos + 1;
                *ret_len = len;
                return 0;
        }
        if (len > sc->size) {
                char *b = realloc(sc->buf, len);

                if (!b)
                        return fail_code(p, -ENOMEM, AT_ROOT, "out of memory");
                sc->buf = b;
                sc->size = len;
        }
        l = lexer_at(p, pos);
        r = lex_string(&l, sc->buf, sc->size, &len, NULL);
        if (r < 0)
                return r;
        /* The reader refuses \u0000; this keeps C from ever seeing a
         * shorter name than the one validated if that changes. */
        if (memchr(sc->buf, '\0', len))
                return fail(p, w, "contains a NUL character");
        *ret = sc->buf;
        *ret_len = len;
        return 0;
}

/* Typos must not pass silently: "adresses" would otherwise leave a peer
 * without addresses and nobody would know why. `key_at` is the key's
 * opening quote. */
static int unknown_key(const Parser *p, Where w, size_t key_at, const char *known_text) {
        Lexer l = lexer_at(p, key_at);
        char key[KEY_TEXT_MAX], q[QUOTE_MAX];
        size_t len = 0;

        (void) lex_string(&l, key, sizeof key, &len, NULL);
        return fail(p, w, "unknown key %s%s (known keys: %s)", quote(q, key, len < sizeof key ? len : sizeof key),
                    w.key ? "" : " at the top level", known_text);
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

                                return fail(p, AT("ranges"),
                                            "missing, and the default range %s is outside the address space this "
                                            "machine allows (address_space in ztnad.conf: %s); list the tailnet's "
                                            "ranges",
                                            prefix_text(&m->ranges[k], one), policy_allowed_text(p->policy, list));
                        }
                return 0;
        }
        if (!value_is(p, v, '['))
                return fail(p, AT("ranges"), "expected an array of prefixes, got %s", value_kind(p, v));
        if (z->n_ranges > SHM_RANGES_MAX)
                return fail(p, AT("ranges"), "has %zu prefixes; at most %u are supported", z->n_ranges,
                            SHM_RANGES_MAX);

        it = items_at(p, v);
        for (size_t i = 0; (item = items_next(&it)) != NO_VAL && i < SHM_RANGES_MAX; i++) {
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
        m->n_ranges = z->n_ranges;
        return 0;
}

static int parse_ttl(const Parser *p, Where w, size_t v, uint32_t *ret) {
        Lexer l = lexer_at(p, v);
        bool integer = false;
        int64_t t = 0;

        if (!(value_is(p, v, '-') || (v < p->len && is_digit((unsigned char) p->data[v]))) ||
            lex_number(&l, &integer, &t) < 0 || !integer)
                return fail(p, w, "expected an integer number of seconds, got %s", value_kind(p, v));
        /* RFC 2181 8: a TTL is 0..2^31-1. */
        if (t < 0 || t > INT32_MAX)
                return fail(p, w, "%lld is out of range (0..%d seconds)", (long long) t, INT32_MAX);
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

        r = get_string(p, w, v, &s, &len);
        if (r < 0)
                return r;
        if (memchr(s, '/', len))
                return fail(p, w, "%s is a CIDR prefix, not an address", quote(q, s, len));
        if (memchr(s, '%', len))
                return fail(p, w, "%s has a scope id, which a name cannot carry", quote(q, s, len));
        if (len >= sizeof text)
                return fail(p, w, "%s is not an IPv4 or IPv6 address", quote(q, s, len));
        memcpy(text, s, len);
        text[len] = '\0';

        if (inet_pton(AF_INET, text, e.bytes) == 1) {
                uint8_t *b = e.bytes;

                e.family = AF_INET;
                if (b[0] == 0)
                        return fail(p, w, "%s is %s", quote(q, s, len),
                                    (b[1] | b[2] | b[3]) ? "in 0.0.0.0/8 (\"this network\", RFC 1122)"
                                                         : "the unspecified address");
                if (b[0] == 127)
                        return fail(p, w, "%s is a loopback address", quote(q, s, len));
                if (b[0] >= 224 && b[0] <= 239)
                        return fail(p, w, "%s is a multicast address", quote(q, s, len));
                if (b[0] == 255 && b[1] == 255 && b[2] == 255 && b[3] == 255)
                        return fail(p, w, "%s is the limited broadcast address", quote(q, s, len));
        } else if (inet_pton(AF_INET6, text, e.bytes) == 1) {
                struct in6_addr a;

                e.family = AF_INET6;
                memcpy(&a, e.bytes, sizeof a);
                if (IN6_IS_ADDR_UNSPECIFIED(&a))
                        return fail(p, w, "%s is the unspecified address", quote(q, s, len));
                if (IN6_IS_ADDR_LOOPBACK(&a))
                        return fail(p, w, "%s is a loopback address", quote(q, s, len));
                if (IN6_IS_ADDR_MULTICAST(&a))
                        return fail(p, w, "%s is a multicast address", quote(q, s, len));
                if (IN6_IS_ADDR_V4MAPPED(&a))
                        return fail(p, w, "%s is an IPv4-mapped IPv6 address; list the IPv4 address itself", quote(q, s, len));
                /* Useless without an interface, which a name cannot carry. */
                if (IN6_IS_ADDR_LINKLOCAL(&a))
                        return fail(p, w, "%s is a link-local address", quote(q, s, len));
        } else
                return fail(p, w, "%s is not an IPv4 or IPv6 address", quote(q, s, len));

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
                return fail(p, w, "missing (every peer needs a name)");
        r = get_string(p, w, v, &s, &len);
        if (r < 0)
                return r;
        if (memchr(s, '.', len))
                return fail(p, w, "%s contains '.'; a peer name is a single label (the domain is added to it)", quote(q, s, len));
        if (!label_valid(s, len, why, sizeof why))
                return fail(p, w, "%s %s", quote(q, s, len), why);
        /* getaddrinfo() tries inet_aton() before NSS: "100" or "0x10" would
         * be taken for an address and never reach the store. */
        if (all_digits(s, len))
                return fail(p, w, "%s is all digits, which resolvers read as an IPv4 address", quote(q, s, len));
        memcpy(text, s, len); /* a valid label fits */
        text[len] = '\0';
        if (inet_aton(text, &a))
                return fail(p, w, "%s reads as an IPv4 address", quote(q, s, len));
        for (size_t k = 0; k < ELEMENTSOF(reserved_names); k++)
                if ((reserved_names[k].flags & RESERVED_PEER) && ascii_equal(s, len, reserved_names[k].name))
                        return fail(p, w, "%s is a reserved name", quote(q, s, len));
        if (len + 1 + domain_len > SHM_DOMAIN_MAX)
                return fail(p, w, "%s makes a %zu-character name with the domain; a name is at most %u", quote(q, s, len),
                            len + 1 + domain_len, SHM_DOMAIN_MAX);
        *ret = s;
        *ret_len = len;
        return 0;
}

/* Where each member of the peer object at `v` starts (NO_VAL: absent), and
 * where the object ends; an unknown key is refused. */
static int peer_members(const Parser *p, size_t i, size_t v, size_t vals[static _PEER_MAX], size_t *ret_end) {
        Lexer l = lexer_at(p, v + 1);
        int r;

        for (size_t k = 0; k < _PEER_MAX; k++)
                vals[k] = NO_VAL;
        skip_ws(&l);
        while (peek(&l) == '"') {
                char key[KEY_TEXT_MAX];
                size_t key_at = l.pos, key_len;
                int k;

                r = lex_string(&l, key, sizeof key, &key_len, NULL);
                if (r < 0)
                        return r;
                k = key_len <= sizeof key ? key_index(peer_keys, key, key_len) : -1;
                if (k < 0)
                        return unknown_key(p, AT_ITEM("peers", i), key_at, "name, addresses, online, ttl");
                skip_ws(&l);
                l.pos++; /* ':' */
                skip_ws(&l);
                vals[k] = l.pos;
                r = skip_value(&l);
                if (r < 0)
                        return r;
                skip_ws(&l);
                if (peek(&l) != ',')
                        break;
                l.pos++;
                skip_ws(&l);
        }
        *ret_end = l.pos + 1; /* past the '}' */
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

        if (!value_is(p, v, '{'))
                return fail(p, AT_ITEM("peers", i), "expected an object, got %s", value_kind(p, v));
        r = peer_members(p, i, v, vals, ret_end);
        if (r < 0)
                return r;

        r = parse_name(p, i, vals[PEER_NAME], domain_len, &name, &name_len);
        if (r < 0)
                return r;
        /* Copied now: the address strings below may reuse the scratch
         * buffer the name was decoded into. */
        if ((size_t) (names->end - names->next) < name_len + 1)
                return fail_code(p, -EINVAL, AT_ROOT, "the first pass counted the names wrong");
        memcpy(names->next, name, name_len);
        names->next[name_len] = '\0';
        *peer = (ShmPeer) { .name = names->next, .ttl = default_ttl, .online = true };
        names->next += name_len + 1;
        name = peer->name;

        if (vals[PEER_ONLINE] != NO_VAL) {
                if (!value_is(p, vals[PEER_ONLINE], 't') && !value_is(p, vals[PEER_ONLINE], 'f'))
                        return fail(p, AT_PEER(i, "online"), "expected true or false, got %s",
                                    value_kind(p, vals[PEER_ONLINE]));
                peer->online = value_is(p, vals[PEER_ONLINE], 't');
        }
        if (vals[PEER_TTL] != NO_VAL) {
                r = parse_ttl(p, AT_PEER(i, "ttl"), vals[PEER_TTL], &peer->ttl);
                if (r < 0)
                        return r;
        }

        addrs = vals[PEER_ADDRESSES];
        if (addrs == NO_VAL)
                return fail(p, AT_PEER(i, "addresses"), "missing (use [] for a peer without addresses)");
        if (!value_is(p, addrs, '['))
                return fail(p, AT_PEER(i, "addresses"), "expected an array of addresses, got %s",
                            value_kind(p, addrs));
        it = items_at(p, addrs);
        for (size_t j = 0; (item = items_next(&it)) != NO_VAL; j++) {
                AddrEntry *e;

                if (*n_entries >= max_entries)
                        return fail_code(p, -EINVAL, AT_ROOT, "the first pass counted the addresses wrong");
                e = &entries[*n_entries];
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
                return fail_code(p, -ENOMEM, AT_ROOT, "out of memory");
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
                                return fail(p, AT_PEER(i, "name"),
                                            "%s is the same name as peers[%" PRIu32 "].name %s (names are compared "
                                            "case-insensitively)",
                                            quote(q1, name, strlen(name)), earlier,
                                            quote(q2, m->peers[earlier].name, strlen(m->peers[earlier].name)));
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
                return fail_code(p, -ENOMEM, AT_ROOT, "out of memory");
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
                                return fail(p, AT_ADDR(e->peer, e->pos),
                                            "%s is listed twice (also addresses[%" PRIu32 "])", text, orig->pos);
                        return fail(p, AT_ADDR(e->peer, e->pos),
                                    "%s is also an address of peers[%" PRIu32 "] %s; reverse lookups would be ambiguous",
                                    text, orig->peer,
                                    quote(q, m->peers[orig->peer].name, strlen(m->peers[orig->peer].name)));
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
                return fail_code(&p, -E2BIG, AT_ROOT, "is %zu bytes; the limit is %zu", len, PEERS_INPUT_MAX);

        /* The whole text first: a syntax error anywhere is reported as
         * such, before any value is judged. */
        r = scan_document(&p, &z);
        if (r < 0)
                return r;

        while (root < p.len && p.data[root] != '{' && p.data[root] != '[')
                root++;
        if (!value_is(&p, root, '{'))
                return fail(&p, AT_ROOT, "the document must be a JSON object, got %s", value_kind(&p, root));
        if (z.top_unknown != NO_VAL)
                return unknown_key(&p, AT_ROOT, z.top_unknown, "domain, ranges, ttl, peers");

        r = parse_domain(&p, z.top[TOP_DOMAIN], domain, &domain_len);
        if (r < 0)
                return r;

        m = calloc(1, sizeof *m);
        if (!m)
                return fail_code(&p, -ENOMEM, AT_ROOT, "out of memory");
        r = parse_ranges(&p, &z, m);
        if (r < 0)
                return r;

        if (z.top[TOP_TTL] != NO_VAL) {
                r = parse_ttl(&p, AT("ttl"), z.top[TOP_TTL], &default_ttl);
                if (r < 0)
                        return r;
        }

        if (z.top[TOP_PEERS] == NO_VAL)
                return fail(&p, AT("peers"), "missing (use [] for a tailnet without peers)");
        if (!value_is(&p, z.top[TOP_PEERS], '['))
                return fail(&p, AT("peers"), "expected an array of peers, got %s", value_kind(&p, z.top[TOP_PEERS]));

        /* Sized by the first pass: nothing grows while the peers are read. */
        m->n_peers = z.n_peers;
        m->strings = malloc(domain_len + 1 + z.name_bytes);
        if (m->n_peers > 0)
                m->peers = calloc(m->n_peers, sizeof *m->peers);
        if (z.n_addrs > 0)
                entries = malloc(z.n_addrs * sizeof *entries);
        if (!m->strings || (m->n_peers > 0 && !m->peers) || (z.n_addrs > 0 && !entries))
                return fail_code(&p, -ENOMEM, AT_ROOT, "out of memory");

        memcpy(m->strings, domain, domain_len + 1);
        names = (Names) { m->strings + domain_len + 1, m->strings + domain_len + 1 + z.name_bytes };

        it = items_at(&p, z.top[TOP_PEERS]);
        for (size_t i = 0; (item = items_next(&it)) != NO_VAL; i++) {
                if (i >= m->n_peers)
                        return fail_code(&p, -EINVAL, AT_ROOT, "the first pass counted the peers wrong");
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
                return fail_code(&p, r, AT_ROOT, "cannot open: %s", strerror(-r));
        if (step == READ_FILE_STAT)
                return fail_code(&p, r, AT_ROOT, "cannot stat: %s", strerror(-r));
        if (r == -EINVAL && step == READ_FILE_CHECK)
                return fail_code(&p, r, AT_ROOT, "is not a regular file");
        if (r == -EFBIG && step == READ_FILE_CHECK)
                return fail_code(&p, -E2BIG, AT_ROOT, "is %jd bytes; the limit is %zu", (intmax_t) st.st_size,
                                 PEERS_INPUT_MAX);
        if (r == -ENOMEM)
                return fail_code(&p, r, AT_ROOT, "out of memory");
        if (r == -EAGAIN)
                return fail_code(&p, r, AT_ROOT, "changed while it was read");
        return fail_code(&p, r, AT_ROOT, "cannot read: %s", strerror(-r));
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
