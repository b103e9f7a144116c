/* SPDX-License-Identifier: MIT */
/*
 * The peers document's JSON reader (RFC 8259, strict, straight from the
 * bytes; docs/peers-reader.md): the text checks (strings, escapes, UTF-8,
 * numbers, literals), the first pass that checks the whole text and sizes
 * the map, and the second pass's cursor that peers.c reads the values with
 * (the elements of an array, the members of a peer, a string);
 * the errors that say where in the document, or at which line and column,
 * something is wrong. What a value may be is peers.c's; this file calls
 * nothing there.
 */

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/quote.h"
#include "macro.h"
#include "sources/peers.h"
#include "sources/peers-internal.h"

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

/* A value from the document, quoted for a log line (common/quote.h). */
const char *peers_quote(char buf[static QUOTE_MAX], const char *s, size_t len) {
        return quote_text(buf, QUOTE_MAX, s, len);
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
int peers_fail_code(const Parser *p, int code, Where w, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vfail(p, code, w, fmt, ap);
        va_end(ap);
        return r;
}

__attribute__((format(printf, 3, 4)))
int peers_fail(const Parser *p, Where w, const char *fmt, ...) {
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = vfail(p, -EBADMSG, w, fmt, ap);
        va_end(ap);
        return r;
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

/* The number under l->pos. *ret_integer: it has neither a fraction nor an
 * exponent, and *ret_value is its value; an integer outside int64_t is a
 * syntax error (it cannot be anything this document wants). */
int peers_lex_number(Lexer *l, bool *ret_integer, int64_t *ret_value) {
        size_t start = l->pos;
        bool neg = false, integer = true, big = false;
        uint64_t v = 0;

        if (peek(l) == '-') {
                neg = true;
                l->pos++;
        }
        if (!peers_is_digit(peek(l)))
                return unexpected(l, "a digit");
        if (peek(l) == '0')
                l->pos++;
        else
                for (; peers_is_digit(peek(l)); l->pos++) {
                        unsigned d = (unsigned) (peek(l) - '0');

                        if (v > (UINT64_MAX - d) / 10)
                                big = true;
                        else
                                v = v * 10 + d;
                }
        if (peek(l) == '.') {
                integer = false;
                l->pos++;
                if (!peers_is_digit(peek(l)))
                        return unexpected(l, "a digit after '.'");
                while (peers_is_digit(peek(l)))
                        l->pos++;
        }
        if (peek(l) == 'e' || peek(l) == 'E') {
                integer = false;
                l->pos++;
                if (peek(l) == '+' || peek(l) == '-')
                        l->pos++;
                if (!peers_is_digit(peek(l)))
                        return unexpected(l, "a digit in the exponent");
                while (peers_is_digit(peek(l)))
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
                if (peek(l) == '-' || peers_is_digit(peek(l)))
                        return peers_lex_number(l, &integer, NULL);
                return unexpected(l, "a JSON value");
        }
}

int peers_scan_document(const Parser *p, Sizes *z) {
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

/* Moves past the value under l->pos, which the first pass has checked. */
static int skip_value(Lexer *l) {
        Sizes ignored;

        return scan_value(l, ROLE_OTHER, 0, &ignored);
}

const char *peers_value_kind(const Parser *p, size_t pos) {
        Lexer l = peers_lexer_at(p, pos);
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
                if (peers_lex_number(&l, &integer, NULL) < 0)
                        return "an unknown value";
                return integer ? "an integer" : "a fractional number";
        }
}

/* The position of the next element, NO_VAL after the last. */
size_t peers_items_next(Items *it) {
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
int peers_get_string(const Parser *p, Where w, size_t pos, const char **ret, size_t *ret_len) {
        Lexer l = peers_lexer_at(p, pos);
        Scratch *sc = p->scratch;
        size_t len;
        bool escaped;
        int r;

        if (!peers_value_is(p, pos, '"'))
                return peers_fail(p, w, "expected a string, got %s", peers_value_kind(p, pos));
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
                        return peers_fail_code(p, -ENOMEM, AT_ROOT, "out of memory");
                sc->buf = b;
                sc->size = len;
        }
        l = peers_lexer_at(p, pos);
        r = lex_string(&l, sc->buf, sc->size, &len, NULL);
        if (r < 0)
                return r;
        /* The reader refuses \u0000; this keeps C from ever seeing a
         * shorter name than the one validated if that changes. */
        if (memchr(sc->buf, '\0', len))
                return peers_fail(p, w, "contains a NUL character");
        *ret = sc->buf;
        *ret_len = len;
        return 0;
}

/* Typos must not pass silently: "adresses" would otherwise leave a peer
 * without addresses and nobody would know why. `key_at` is the key's
 * opening quote. */
int peers_unknown_key(const Parser *p, Where w, size_t key_at, const char *known_text) {
        Lexer l = peers_lexer_at(p, key_at);
        char key[KEY_TEXT_MAX], q[QUOTE_MAX];
        size_t len = 0;

        (void) lex_string(&l, key, sizeof key, &len, NULL);
        return peers_fail(p, w, "unknown key %s%s (known keys: %s)",
                          peers_quote(q, key, len < sizeof key ? len : sizeof key),
                          w.key ? "" : " at the top level", known_text);
}

/* Where each member of the peer object at `v` starts (NO_VAL: absent), and
 * where the object ends; an unknown key is refused. */
int peers_peer_members(const Parser *p, size_t i, size_t v, size_t vals[static _PEER_MAX], size_t *ret_end) {
        Lexer l = peers_lexer_at(p, v + 1);
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
                        return peers_unknown_key(p, AT_ITEM("peers", i), key_at, "name, addresses, online, ttl");
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
