/* SPDX-License-Identifier: MIT */
/*
 * The shared answer cache (see cache.h): an RCU lock-free hash table for
 * readers, a mutex for writers, a CLOCK sweep under a byte budget.
 */

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <urcu/urcu-memb.h>
/* The flavour is included before the hash table, as rculfhash.h asks. */
#include <urcu/rculfhash.h>

#include "dns/cache.h"
#include "dns/cache-internal.h"
#include "macro.h"
#include "siphash.h"
#include "common/time-util.h"

/* What the hash table spends per node beyond the entry (buckets, its
 * split counters), counted against the budget as a round figure. */
#define NODE_OVERHEAD 32u
/* RFC 2181 8: a TTL with the top bit set is treated as 0. */
#define TTL_MAX_VALID 0x7fffffffu

/* lower-cased name, type, class, flags */
#define KEY_MAX (DNS_NAME_MAX + 5u)
#define KEY_FLAG_DO 1u
#define KEY_FLAG_CD 2u

typedef struct CacheKey {
        uint8_t bytes[KEY_MAX];
        size_t len;
} CacheKey;

typedef struct CacheEntry {
        struct cds_lfht_node node;
        struct rcu_head rcu;
        /* The CLOCK ring: writers only, under the mutex. */
        struct CacheEntry *prev, *next;
        atomic_bool used; /* set by readers, cleared by the sweep */

        uint64_t stored_usec;
        uint64_t expire_usec; /* fresh before this */
        uint64_t drop_usec;   /* of no use from this on (stale window included) */
        size_t charge;
        uint16_t n_ttls;
        uint16_t key_len;
        uint32_t len;
        /* key bytes, then n_ttls TTL offsets (uint16_t, host order), then
         * the answer */
        _Alignas(uint16_t) uint8_t data[];
} CacheEntry;

/* ---- RCU thread registration ---- */

static pthread_once_t rcu_once = PTHREAD_ONCE_INIT;
static pthread_key_t rcu_exit_key;
static _Thread_local bool rcu_registered;

static void rcu_thread_exit(void *p) {
        (void) p;
        urcu_memb_unregister_thread();
}

static void rcu_make_key(void) {
        if (pthread_key_create(&rcu_exit_key, rcu_thread_exit) != 0)
                abort(); /* only with PTHREAD_KEYS_MAX keys already taken */
}

void cache_thread_init(void) {
        if (rcu_registered)
                return;
        (void) pthread_once(&rcu_once, rcu_make_key);
        urcu_memb_register_thread();
        /* A non-NULL value makes the destructor run at thread exit. */
        (void) pthread_setspecific(rcu_exit_key, (void *) 1);
        rcu_registered = true;
}

/* ---- entries ---- */

static const uint8_t *entry_key(const CacheEntry *e) {
        return e->data;
}

static const uint16_t *entry_ttls(const CacheEntry *e) {
        return (const uint16_t *) (const void *) (e->data + ALIGN_TO(e->key_len, sizeof(uint16_t)));
}

static const uint8_t *entry_wire(const CacheEntry *e) {
        return (const uint8_t *) (entry_ttls(e) + e->n_ttls);
}

static void make_key(const DnsMessage *q, CacheKey *ret) {
        DnsName n = q->qname;
        uint8_t flags = 0;

        dns_name_lower(&n);
        memcpy(ret->bytes, n.wire, n.len);
        ret->len = n.len;
        ret->bytes[ret->len++] = (uint8_t) (q->qtype >> 8);
        ret->bytes[ret->len++] = (uint8_t) q->qtype;
        ret->bytes[ret->len++] = (uint8_t) (q->qclass >> 8);
        ret->bytes[ret->len++] = (uint8_t) q->qclass;
        if (q->edns.present && (q->edns.flags & DNS_EDNS_FLAG_DO))
                flags |= KEY_FLAG_DO;
        if (q->flags & DNS_FLAG_CD)
                flags |= KEY_FLAG_CD;
        ret->bytes[ret->len++] = flags;
}

static unsigned long key_hash(const Cache *c, const CacheKey *k) {
        return (unsigned long) siphash13(c->hash_key, k->bytes, k->len, 0);
}

static int key_match(struct cds_lfht_node *node, const void *key) {
        const CacheEntry *e = caa_container_of(node, CacheEntry, node);
        const CacheKey *k = key;
        return e->key_len == k->len && memcmp(entry_key(e), k->bytes, k->len) == 0;
}

static void entry_free_rcu(struct rcu_head *head) {
        free(caa_container_of(head, CacheEntry, rcu));
}

/* ---- the ring (under c->lock) ---- */

static void ring_insert(Cache *c, CacheEntry *e) {
        if (!c->hand) {
                e->prev = e->next = e;
                c->hand = e;
                return;
        }
        /* Just behind the hand: the last the sweep reaches. */
        e->next = c->hand;
        e->prev = c->hand->prev;
        e->prev->next = e;
        c->hand->prev = e;
}

static void ring_remove(Cache *c, CacheEntry *e) {
        if (e->next == e)
                c->hand = NULL;
        else {
                if (c->hand == e)
                        c->hand = e->next;
                e->prev->next = e->next;
                e->next->prev = e->prev;
        }
        e->prev = e->next = NULL;
}

/* Takes e out of the table and the ring; freed after a grace period.
 * Under c->lock and the RCU read lock. */
static void entry_drop(Cache *c, CacheEntry *e) {
        ring_remove(c, e);
        c->bytes -= e->charge;
        c->entries--;
        if (cds_lfht_del(c->ht, &e->node) == 0)
                urcu_memb_call_rcu(&e->rcu, entry_free_rcu);
}

/* One step of the CLOCK sweep: evicts one entry. Under c->lock and the
 * RCU read lock; the ring is not empty. */
static void evict_one(Cache *c, uint64_t now_usec) {
        /* Every used bit is cleared on the first lap, so two laps find a victim. */
        for (uint64_t steps = 0; steps < 2 * c->entries + 1; steps++) {
                CacheEntry *e = c->hand;
                c->hand = e->next;
                if (e->drop_usec <= now_usec || !atomic_exchange_explicit(&e->used, false, memory_order_relaxed)) {
                        entry_drop(c, e);
                        atomic_fetch_add_explicit(&c->evictions, 1, memory_order_relaxed);
                        return;
                }
        }
        entry_drop(c, c->hand);
        atomic_fetch_add_explicit(&c->evictions, 1, memory_order_relaxed);
}

/* ---- the cache ---- */

int cache_new(const CacheConfig *config, Cache **ret) {
        /* No budget of its own: the cache_size key's default is the one. */
        if (!config || config->max_bytes == 0)
                return -EINVAL;
        Cache *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->config = *config;
        if (c->config.max_ttl == 0)
                c->config.max_ttl = CACHE_DEFAULT_MAX_TTL;
        if (c->config.max_negative_ttl == 0)
                c->config.max_negative_ttl = CACHE_DEFAULT_MAX_NEGATIVE_TTL;
        if (c->config.stale_window == 0)
                c->config.stale_window = CACHE_DEFAULT_STALE_WINDOW;
        if (getrandom(c->hash_key, sizeof c->hash_key, 0) != sizeof c->hash_key) {
                int r = -errno;
                free(c);
                return r;
        }
        if (pthread_mutex_init(&c->lock, NULL) != 0) {
                free(c);
                return -ENOMEM;
        }
        c->ht = cds_lfht_new_flavor(1024, 1024, 0, CDS_LFHT_AUTO_RESIZE | CDS_LFHT_ACCOUNTING, &urcu_memb_flavor,
                                    NULL);
        if (!c->ht) {
                pthread_mutex_destroy(&c->lock);
                free(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

Cache *cache_free(Cache *c) {
        if (!c)
                return NULL;
        cache_flush(c);
        /* Every entry's call_rcu callback has run after this. */
        urcu_memb_barrier();
        (void) cds_lfht_destroy(c->ht, NULL);
        pthread_mutex_destroy(&c->lock);
        free(c);
        return NULL;
}

bool cache_serve_stale(const Cache *c) {
        return c && c->config.serve_stale;
}

/* How long `a` may be kept, in seconds; 0 when it is not to be kept. */
static uint32_t answer_ttl(const Cache *c, const uint8_t *answer, size_t len, const DnsMessage *a) {
        DnsRRIter it;
        DnsRR rr;
        uint32_t answers = UINT32_MAX, authority = UINT32_MAX, soa = UINT32_MAX;
        bool any = false;
        int r;

        if (!(a->flags & DNS_FLAG_QR) || (a->flags & DNS_FLAG_TC) ||
            (a->flags & DNS_OPCODE_MASK) != DNS_OPCODE_QUERY << DNS_OPCODE_SHIFT)
                return 0;
        if (a->rcode != DNS_RCODE_NOERROR && a->rcode != DNS_RCODE_NXDOMAIN)
                return 0;

        dns_rr_iter_init(&it, answer, len, a);
        while ((r = dns_rr_next(&it, &rr)) > 0) {
                if (rr.section == DNS_SECTION_ADDITIONAL)
                        break;
                uint32_t ttl = rr.ttl > TTL_MAX_VALID ? 0 : rr.ttl;
                if (rr.section == DNS_SECTION_ANSWER) {
                        any = true;
                        if (ttl < answers)
                                answers = ttl;
                        continue;
                }
                if (ttl < authority)
                        authority = ttl;
                if (rr.type == DNS_TYPE_SOA && soa == UINT32_MAX) {
                        uint32_t minimum;
                        if (dns_soa_minimum(answer, len, &rr, &minimum) < 0)
                                return 0;
                        if (minimum > TTL_MAX_VALID)
                                minimum = 0;
                        soa = ttl < minimum ? ttl : minimum;
                }
        }
        if (r < 0)
                return 0;

        if (a->rcode == DNS_RCODE_NXDOMAIN || !any) {
                /* RFC 2308 5: the SOA's TTL and MINIMUM, whichever is
                 * less (with a CNAME chain's TTLs, for NXDOMAIN after one);
                 * without an SOA a negative answer is not cached. */
                if (soa == UINT32_MAX)
                        return 0;
                uint32_t t = soa < answers ? soa : answers;
                return t < c->config.max_negative_ttl ? t : c->config.max_negative_ttl;
        }
        uint32_t t = answers < authority ? answers : authority;
        return t < c->config.max_ttl ? t : c->config.max_ttl;
}

int cache_put(Cache *c, const DnsMessage *q, const uint8_t *answer, size_t len, const DnsMessage *a,
              uint64_t now_usec) {
        CacheKey key;
        DnsRRIter it;
        DnsRR rr;
        size_t n_ttls = 0;
        int r;

        if (!c || !q->has_question || !a->has_question || len > DNS_MESSAGE_MAX ||
            !dns_name_equal(&q->qname, &a->qname) || q->qtype != a->qtype || q->qclass != a->qclass)
                return 0;
        uint32_t ttl = answer_ttl(c, answer, len, a);
        if (ttl == 0)
                return 0;

        dns_rr_iter_init(&it, answer, len, a);
        while ((r = dns_rr_next(&it, &rr)) > 0)
                if (rr.type != DNS_TYPE_OPT)
                        n_ttls++;
        if (r < 0)
                return 0;

        make_key(q, &key);
        size_t size = sizeof(CacheEntry) + ALIGN_TO(key.len, sizeof(uint16_t)) + n_ttls * sizeof(uint16_t) + len;
        size_t charge = size + NODE_OVERHEAD;
        if (charge > c->config.max_bytes)
                return 0;

        CacheEntry *e = malloc(size);
        if (!e)
                return -ENOMEM;
        cds_lfht_node_init(&e->node);
        atomic_init(&e->used, false);
        e->prev = e->next = NULL;
        e->stored_usec = now_usec;
        e->expire_usec = now_usec + ttl * USEC_PER_SEC;
        e->drop_usec = e->expire_usec + (c->config.serve_stale ? c->config.stale_window * USEC_PER_SEC : 0);
        e->charge = charge;
        e->n_ttls = (uint16_t) n_ttls;
        e->key_len = (uint16_t) key.len;
        e->len = (uint32_t) len;
        memcpy(e->data, key.bytes, key.len);
        uint16_t *ttls = (uint16_t *) (void *) (e->data + ALIGN_TO(key.len, sizeof(uint16_t)));
        uint8_t *wire = (uint8_t *) (ttls + n_ttls);
        memcpy(wire, answer, len);

        /* Record every TTL's place and cut it to the entry's lifetime, so
         * counting down never leaves a record outliving its entry. */
        size_t i = 0;
        dns_rr_iter_init(&it, answer, len, a);
        while (dns_rr_next(&it, &rr) > 0) {
                if (rr.type == DNS_TYPE_OPT)
                        continue;
                ttls[i++] = (uint16_t) rr.ttl_off;
                uint32_t t = rr.ttl > TTL_MAX_VALID ? 0 : rr.ttl;
                if (t > ttl)
                        t = ttl;
                wire[rr.ttl_off] = (uint8_t) (t >> 24);
                wire[rr.ttl_off + 1] = (uint8_t) (t >> 16);
                wire[rr.ttl_off + 2] = (uint8_t) (t >> 8);
                wire[rr.ttl_off + 3] = (uint8_t) t;
        }

        cache_thread_init();
        unsigned long hash = key_hash(c, &key);
        pthread_mutex_lock(&c->lock);
        urcu_memb_read_lock();
        while (c->hand && c->bytes + charge > c->config.max_bytes)
                evict_one(c, now_usec);
        struct cds_lfht_node *old = cds_lfht_add_replace(c->ht, hash, key_match, &key, &e->node);
        if (old) {
                CacheEntry *o = caa_container_of(old, CacheEntry, node);
                ring_remove(c, o);
                c->bytes -= o->charge;
                c->entries--;
                urcu_memb_call_rcu(&o->rcu, entry_free_rcu);
        }
        ring_insert(c, e);
        c->bytes += charge;
        c->entries++;
        urcu_memb_read_unlock();
        pthread_mutex_unlock(&c->lock);
        atomic_fetch_add_explicit(&c->insertions, 1, memory_order_relaxed);
        return 1;
}

static void put_ttl(uint8_t *p, uint32_t ttl) {
        p[0] = (uint8_t) (ttl >> 24);
        p[1] = (uint8_t) (ttl >> 16);
        p[2] = (uint8_t) (ttl >> 8);
        p[3] = (uint8_t) ttl;
}

static uint32_t get_ttl(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

int cache_get(Cache *c, const DnsMessage *q, uint64_t now_usec, bool allow_stale, uint8_t *buf, size_t size,
              size_t *ret_len) {
        CacheKey key;
        struct cds_lfht_iter iter;
        int result = CACHE_MISS;

        if (!c || !q->has_question)
                return CACHE_MISS;
        make_key(q, &key);
        unsigned long hash = key_hash(c, &key);

        cache_thread_init();
        urcu_memb_read_lock();
        cds_lfht_lookup(c->ht, hash, key_match, &key, &iter);
        struct cds_lfht_node *node = cds_lfht_iter_get_node(&iter);
        if (node) {
                CacheEntry *e = caa_container_of(node, CacheEntry, node);
                bool fresh = now_usec < e->expire_usec;
                bool stale = !fresh && allow_stale && c->config.serve_stale && now_usec < e->drop_usec;
                if ((fresh || stale) && e->len > size)
                        result = -ENOBUFS;
                else if (fresh || stale) {
                        memcpy(buf, entry_wire(e), e->len);
                        /* Whole seconds spent in the cache, rounded down:
                         * the TTLs never reach 0 while the entry is fresh. */
                        uint64_t elapsed = now_usec > e->stored_usec ? (now_usec - e->stored_usec) / USEC_PER_SEC : 0;
                        const uint16_t *ttls = entry_ttls(e);
                        for (size_t i = 0; i < e->n_ttls; i++) {
                                uint32_t t = get_ttl(buf + ttls[i]);
                                if (stale)
                                        t = CACHE_STALE_TTL;
                                else
                                        t = t > elapsed ? (uint32_t) (t - elapsed) : 0;
                                put_ttl(buf + ttls[i], t);
                        }
                        atomic_store_explicit(&e->used, true, memory_order_relaxed);
                        *ret_len = e->len;
                        result = fresh ? CACHE_FRESH : CACHE_STALE;
                }
        }
        urcu_memb_read_unlock();

        if (result == CACHE_FRESH)
                atomic_fetch_add_explicit(&c->hits, 1, memory_order_relaxed);
        else if (result == CACHE_STALE)
                atomic_fetch_add_explicit(&c->stale_hits, 1, memory_order_relaxed);
        else if (result == CACHE_MISS && !allow_stale)
                atomic_fetch_add_explicit(&c->misses, 1, memory_order_relaxed);
        return result;
}

void cache_flush(Cache *c) {
        if (!c)
                return;
        cache_thread_init();
        pthread_mutex_lock(&c->lock);
        urcu_memb_read_lock();
        while (c->hand)
                entry_drop(c, c->hand);
        urcu_memb_read_unlock();
        pthread_mutex_unlock(&c->lock);
}

size_t cache_prune(Cache *c, uint64_t now_usec) {
        size_t n = 0;

        if (!c)
                return 0;
        cache_thread_init();
        pthread_mutex_lock(&c->lock);
        urcu_memb_read_lock();
        for (uint64_t left = c->entries; left > 0 && c->hand; left--) {
                CacheEntry *e = c->hand;
                c->hand = e->next;
                if (e->drop_usec <= now_usec) {
                        entry_drop(c, e);
                        n++;
                }
        }
        urcu_memb_read_unlock();
        pthread_mutex_unlock(&c->lock);
        return n;
}
