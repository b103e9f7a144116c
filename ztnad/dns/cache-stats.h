/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The cache's counters, for the unit test and the stub harness only: no
 * program reads them (`ztna status` counts cache hits in the stub), so the
 * reader lives in their header, not in ztnad.
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "dns/cache-internal.h"

typedef struct CacheStats {
        uint64_t entries, bytes, max_bytes;
        uint64_t hits, stale_hits, misses;
        uint64_t insertions, evictions;
} CacheStats;

static inline void cache_stats(Cache *c, CacheStats *ret) {
        pthread_mutex_lock(&c->lock);
        ret->entries = c->entries;
        ret->bytes = c->bytes;
        pthread_mutex_unlock(&c->lock);
        ret->max_bytes = c->config.max_bytes;
        ret->hits = atomic_load_explicit(&c->hits, memory_order_relaxed);
        ret->stale_hits = atomic_load_explicit(&c->stale_hits, memory_order_relaxed);
        ret->misses = atomic_load_explicit(&c->misses, memory_order_relaxed);
        ret->insertions = atomic_load_explicit(&c->insertions, memory_order_relaxed);
        ret->evictions = atomic_load_explicit(&c->evictions, memory_order_relaxed);
}
