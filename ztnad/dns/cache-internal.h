/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The cache's state, for cache.c and the tests' cache-stats.h only: every
 * other part holds a Cache * and calls cache.h.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "dns/cache.h"

struct cds_lfht;
struct CacheEntry;

struct Cache {
        struct cds_lfht *ht;
        uint64_t hash_key[2];
        CacheConfig config;

        pthread_mutex_t lock;    /* writers: the ring, bytes, entries */
        struct CacheEntry *hand; /* the CLOCK hand; NULL when empty */
        uint64_t bytes, entries;

        /* Read by the tests and the stub harness (cache-stats.h). */
        atomic_uint_fast64_t hits, stale_hits, misses, insertions, evictions;
};
