/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What crosses files inside the peers reader, nowhere else: peers.c (the
 * policy and the map) calls peers-json.c (the JSON reader), never the
 * reverse.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sources/peers.h"


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

#define QUOTE_MAX 96 /* a quoted value in a message, cut short with "..." */

#define NO_VAL SIZE_MAX
#define KEY_TEXT_MAX (QUOTE_MAX + 8) /* enough of a key to quote it */

typedef struct Lexer {
        const Parser *p;
        size_t pos;
} Lexer;

enum { TOP_DOMAIN, TOP_RANGES, TOP_TTL, TOP_PEERS, _TOP_MAX };
enum { PEER_NAME, PEER_ADDRESSES, PEER_ONLINE, PEER_TTL, _PEER_MAX };

typedef struct Sizes {
        size_t top[_TOP_MAX]; /* where each top-level member's value starts */
        size_t top_unknown;   /* the first unknown top-level key */
        size_t n_ranges, n_peers, n_addrs, name_bytes;
} Sizes;

/* The elements of the array at `pos`, one at a time. A caller that has read
 * an element whole may set `end` past it to save skipping it again. */
typedef struct Items {
        Lexer l;
        bool started;
        size_t end;
} Items;

/* The one-line accessors of the text and the cursor, called for every
 * value in both files: inline. */
static inline bool peers_is_digit(int c) {
        return c >= '0' && c <= '9';
}

static inline Lexer peers_lexer_at(const Parser *p, size_t pos) {
        return (Lexer) { .p = p, .pos = pos };
}

static inline bool peers_value_is(const Parser *p, size_t pos, char c) {
        return pos < p->len && p->data[pos] == c;
}

static inline Items peers_items_at(const Parser *p, size_t pos) {
        return (Items) { .l = peers_lexer_at(p, pos + 1), .end = NO_VAL };
}

/* peers-json.c: the errors. */
const char *peers_quote(char buf[static QUOTE_MAX], const char *s, size_t len);
__attribute__((format(printf, 4, 5)))
int peers_fail_code(const Parser *p, int code, Where w, const char *fmt, ...);
__attribute__((format(printf, 3, 4)))
int peers_fail(const Parser *p, Where w, const char *fmt, ...);

/* peers-json.c: the text. */
int peers_lex_number(Lexer *l, bool *ret_integer, int64_t *ret_value);

/* peers-json.c: the first pass. */
int peers_scan_document(const Parser *p, Sizes *z);

/* peers-json.c: the second pass's cursor. */
const char *peers_value_kind(const Parser *p, size_t pos);
size_t peers_items_next(Items *it);
int peers_get_string(const Parser *p, Where w, size_t pos, const char **ret, size_t *ret_len);
int peers_unknown_key(const Parser *p, Where w, size_t key_at, const char *known_text);
int peers_peer_members(const Parser *p, size_t i, size_t v, size_t vals[static _PEER_MAX], size_t *ret_end);
