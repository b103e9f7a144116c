/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The answer cache the stub's worker threads share.
 *
 * Entries are whole upstream answers in wire form, keyed by the lower-cased
 * question name, type and class and the query's DO and CD bits (an answer
 * for a validating client differs from one for a client that asked for
 * records unchecked). Positive answers live for the smallest TTL of their
 * answer and authority records, negative ones (NXDOMAIN, NODATA) for
 * min(SOA TTL, SOA MINIMUM) from the SOA in their authority section
 * (RFC 2308 5); a negative answer without an SOA, a truncated answer, any
 * other rcode and a TTL of 0 are not stored. TTLs are capped (max_ttl,
 * max_negative_ttl), and every record's TTL is cut to the entry's lifetime
 * when it is stored. An answer served from the cache carries TTLs reduced
 * by the time it spent there (RFC 1035 3.2.1: they count down).
 *
 * With serve_stale (RFC 8767) an expired entry is kept for stale_window
 * more seconds; cache_get(..., allow_stale = true), which the stub calls
 * only when the upstream failed, returns it with every TTL at 30 s
 * (RFC 8767 4) and the stub adds EDE 3 "Stale Answer".
 *
 * Memory is bounded by a byte budget (the cache_size key of ztnad.conf,
 * whose default is written only in config-keys.c's key table) covering entries
 * and their bookkeeping. When an answer does not
 * fit, entries past their use go first, then the least recently used
 * ones by a CLOCK sweep (readers set a "used" bit, the sweep clears it and
 * evicts entries whose bit stayed clear).
 *
 * Concurrency: lookups are RCU readers of a lock-free hash table
 * (liburcu's cds_lfht, memb flavour) and never take a lock; they copy the
 * answer out before leaving the read-side section. Stores, evictions and
 * flushes are serialised by one mutex (they follow upstream round trips,
 * far rarer than hits) and free entries after a grace period (call_rcu).
 * Every thread that calls into the cache is registered with liburcu on its
 * first call and unregistered when it exits; cache_thread_init() does it
 * up front.
 *
 * Times are CLOCK_MONOTONIC microseconds passed in by the caller (the
 * event loop's sd_event_now()), so the tests can move time.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/dns-wire.h"

#define CACHE_DEFAULT_MAX_TTL 86400u          /* one day */
#define CACHE_DEFAULT_MAX_NEGATIVE_TTL 10800u /* three hours (RFC 2308 5) */
#define CACHE_DEFAULT_STALE_WINDOW 86400u     /* one day (RFC 8767 5 suggests 1-3) */
#define CACHE_STALE_TTL 30u                   /* RFC 8767 4 */

typedef struct CacheConfig {
        uint64_t max_bytes; /* > 0: the cache_size key's value (0 there: no cache at all) */
        uint32_t max_ttl;   /* seconds; 0: the default */
        uint32_t max_negative_ttl;
        bool serve_stale;
        uint32_t stale_window; /* seconds; 0: the default */
} CacheConfig;

typedef struct Cache Cache;

typedef enum CacheResult {
        CACHE_MISS = 0,
        CACHE_FRESH = 1,
        CACHE_STALE = 2,
} CacheResult;

/* Returns 0, -EINVAL when `config` is NULL or max_bytes 0, -ENOMEM, or
 * -errno of getrandom(). */
int cache_new(const CacheConfig *config, Cache **ret);
/* NULL-safe. No other thread may be using the cache. */
Cache *cache_free(Cache *c);

/* Stores `answer` (len bytes, parsed as `a`) as the answer to the query
 * `q` (whose question it must have, case aside). Returns 1 when stored,
 * 0 when the answer is not one to cache, -ENOMEM. Any older entry for the
 * same key is replaced. */
int cache_put(Cache *c, const DnsMessage *q, const uint8_t *answer, size_t len, const DnsMessage *a,
              uint64_t now_usec);

/* Looks up the answer to `q`: CACHE_FRESH or CACHE_STALE with the answer
 * (TTLs counted down, the ID and question case as stored: the stub fits it
 * to the query with dns_wire_adapt_answer()) in buf, CACHE_MISS, or
 * -ENOBUFS when buf is too small (DNS_MESSAGE_MAX always fits). Stale
 * entries are returned only with allow_stale and serve_stale. */
int cache_get(Cache *c, const DnsMessage *q, uint64_t now_usec, bool allow_stale, uint8_t *buf, size_t size,
              size_t *ret_len);

/* Forgets every entry (`ztna dns flush`). */
void cache_flush(Cache *c);
/* Drops entries past their use (expired, and past the stale window with
 * serve_stale); returns how many. For a periodic timer: eviction does the
 * same lazily when space is needed. */
size_t cache_prune(Cache *c, uint64_t now_usec);

bool cache_serve_stale(const Cache *c);

/* Registers the calling thread with liburcu's memb flavour, once; the
 * registration is dropped when the thread exits. Any thread using the
 * cache, or other memb-RCU data of ztnad (the stub's blocklist), calls it
 * or has it called on its first use. */
void cache_thread_init(void);
