/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The peers document: the tailnet's domain, its address ranges and its peers,
 * as JSON. It is validated whole, before anything is published, so that a
 * bad update never replaces a good map: every problem is reported with the
 * source it came from, the JSON path of the value ("peers[3].addresses[1]")
 * and what is wrong with it.
 *
 *     {"domain": "yourorg.zt.net",
 *      "ranges": ["100.64.0.0/10", "fd7a:115c:a1e0::/48"],   optional
 *      "ttl": 60,                                            optional
 *      "peers": [{"name": "Win-A",
 *                 "addresses": ["100.64.0.1", "fd7a:115c:a1e0::1"],
 *                 "online": true,                            optional
 *                 "ttl": 60}]}                               optional
 */

#include <stddef.h>

#include "macro.h"
#include "shm.h"

/* Far above any real tailnet, low enough that a runaway file cannot make the
 * daemon swap while parsing it. */
#define PEERS_INPUT_MAX ((size_t) 64 << 20)
#define PEERS_DEFAULT_TTL 60u
#define PEERS_PATH_MAX 128
#define PEERS_ERROR_MAX 512

typedef struct PeersError {
        /* JSON path of the offending value, "" when the whole document is. */
        char path[PEERS_PATH_MAX];
        /* Of a JSON syntax error, 0 otherwise (1-based; the column counts bytes). */
        int line, column;
        /* "SOURCE: PATH: PROBLEM" (or "SOURCE:LINE:COLUMN: PROBLEM"), one
         * line of printable ASCII, ready for the log. */
        char message[PEERS_ERROR_MAX];
} PeersError;

/* A validated peer map. Everything peer_map_to_shm() hands out points into
 * it, so it must outlive every use of that ShmMap. */
typedef struct PeerMap PeerMap;

/* What a document may claim on this machine (ztnad.conf's domains and
 * allowed_ranges): whoever publishes a map answers these names for every
 * process here, so a map for another domain, or with an address or range
 * outside these prefixes, is refused whole. */
typedef struct PeersPolicy {
        const char *const *domains; /* lower case, no final dot */
        size_t n_domains;
        const ShmPrefix *allowed;
        size_t n_allowed;
} PeersPolicy;

/* Parses and validates `len` bytes of `data` (need not be NUL-terminated).
 * `source` names the input in messages (the file name). On failure `err`
 * (may be NULL) says why and *ret_map is left alone.
 * Returns 0, -EBADMSG for an invalid document, -E2BIG above PEERS_INPUT_MAX,
 * -ENOMEM. */
int peers_parse(const char *data, size_t len, const char *source, PeerMap **ret_map, PeersError *err);

/* The same, and the document must also keep to `policy`: its domain one of
 * policy->domains, every peer address and every range inside one of
 * policy->allowed. A public suffix ("co.uk") is refused as the domain with
 * or without a policy; a NULL policy pins nothing else (tests). */
int peers_parse_policy(const char *data, size_t len, const char *source, const PeersPolicy *policy,
                       PeerMap **ret_map, PeersError *err);

/* Reads a regular file of at most PEERS_INPUT_MAX bytes without blocking on
 * a FIFO or a device; the bytes are the caller's to free. */
int peers_read_file(const char *path, char **ret_data, size_t *ret_len, PeersError *err);

/* Reads a regular file (never blocks on a FIFO or a device) and parses it
 * with its path as the source. Also returns -errno of open/read. */
int peers_load_file(const char *path, PeerMap **ret_map, PeersError *err);

PeerMap *peer_map_free(PeerMap *m); /* NULL-safe, returns NULL */

/* The map in the writer's terms; `ret` points into `m`. Cannot fail. */
void peer_map_to_shm(const PeerMap *m, ShmMap *ret);

static inline void peer_map_freep(PeerMap **m) {
        peer_map_free(*m);
}
#define _cleanup_peer_map_ _cleanup_(peer_map_freep)
