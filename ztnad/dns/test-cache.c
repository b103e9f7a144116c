/* SPDX-License-Identifier: MIT */
/*
 * The answer cache: TTLs counting down in served answers and the entry
 * gone when they reach 0, negative answers living min(SOA TTL, MINIMUM)
 * (RFC 2308), what is never stored, the key (case, type, class, DO, CD),
 * eviction under the byte budget keeping what is used, flush, serve-stale
 * (RFC 8767), and readers, writers and flushes from several threads at
 * once.
 */

#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/config.h"
#include "dns/cache.h"
#include "dns/cache-stats.h"

#define SEC UINT64_C(1000000)
#define T0 (UINT64_C(1000) * SEC)

static uint8_t qbuf[512];

/* A query for name/type; the DnsMessage refers to nothing outside itself. */
static DnsMessage query(const char *name, uint16_t type, bool do_bit, bool cd) {
        DnsBuilder b;
        DnsName n;
        DnsMessage m;
        size_t len;

        ck_assert_int_eq(dns_name_from_text(name, &n), 0);
        dns_builder_init(&b, qbuf, sizeof qbuf);
        dns_builder_header(&b, 0x4242, DNS_FLAG_RD | (cd ? DNS_FLAG_CD : 0), 1, 0, 0, 1);
        dns_builder_name(&b, &n);
        dns_builder_u16(&b, type);
        dns_builder_u16(&b, DNS_CLASS_IN);
        dns_builder_opt(&b, 1232, 0, do_bit, -1, NULL);
        ck_assert_int_eq(dns_builder_finish(&b, &len), 0);
        ck_assert_int_eq(dns_message_parse(qbuf, len, &m), 0);
        return m;
}

typedef struct Answer {
        uint8_t wire[4096];
        size_t len;
        DnsMessage m;
} Answer;

typedef struct Spec {
        const char *name;
        uint16_t type;
        uint16_t flags; /* QR|RA added; rcode in the low bits */
        unsigned n_a;   /* A records, TTLs ttl[0], ttl[1], ttl[0] ... */
        uint32_t ttl[2];
        bool soa;
        uint32_t soa_ttl, soa_minimum;
        bool opt_do;    /* an OPT record with DO */
        size_t padding; /* TXT bytes to make it larger */
} Spec;

static void answer(const Spec *s, Answer *ret) {
        DnsBuilder b;
        DnsName n;

        ck_assert_int_eq(dns_name_from_text(s->name, &n), 0);
        dns_builder_init(&b, ret->wire, sizeof ret->wire);
        dns_builder_header(&b, 0x1111, (uint16_t) (DNS_FLAG_QR | DNS_FLAG_RA | DNS_FLAG_RD | s->flags), 1,
                           (uint16_t) (s->n_a + (s->padding > 0)), s->soa, s->opt_do);
        dns_builder_name(&b, &n);
        dns_builder_u16(&b, s->type);
        dns_builder_u16(&b, DNS_CLASS_IN);
        for (unsigned i = 0; i < s->n_a; i++) {
                size_t rd = dns_builder_rr_begin(&b, DNS_HEADER_SIZE, DNS_TYPE_A, DNS_CLASS_IN, s->ttl[i % 2]);
                dns_builder_u32(&b, 0xc0000200 + i);
                dns_builder_rr_end(&b, rd);
        }
        if (s->padding > 0) {
                size_t rd = dns_builder_rr_begin(&b, DNS_HEADER_SIZE, DNS_TYPE_TXT, DNS_CLASS_IN, s->ttl[0]);
                for (size_t left = s->padding; left > 0;) {
                        uint8_t chunk = left > 255 ? 255 : (uint8_t) left;
                        dns_builder_u8(&b, chunk);
                        for (unsigned k = 0; k < chunk; k++)
                                dns_builder_u8(&b, 'x');
                        left -= chunk;
                }
                dns_builder_rr_end(&b, rd);
        }
        if (s->soa) {
                size_t rd = dns_builder_rr_begin(&b, DNS_HEADER_SIZE, DNS_TYPE_SOA, DNS_CLASS_IN, s->soa_ttl);
                dns_builder_bytes(&b, "\2ns\0\4host\0", 10);
                dns_builder_u32(&b, 2024010101);
                dns_builder_u32(&b, 7200);
                dns_builder_u32(&b, 900);
                dns_builder_u32(&b, 1209600);
                dns_builder_u32(&b, s->soa_minimum);
                dns_builder_rr_end(&b, rd);
        }
        if (s->opt_do)
                dns_builder_opt(&b, 1232, 0, true, -1, NULL);
        ck_assert_int_eq(dns_builder_finish(&b, &ret->len), 0);
        ck_assert_int_eq(dns_message_parse(ret->wire, ret->len, &ret->m), 0);
}

/* The TTLs of every non-OPT record of a served answer. */
static size_t ttls(const uint8_t *buf, size_t len, uint32_t *out, size_t max) {
        DnsMessage m;
        DnsRRIter it;
        DnsRR rr;
        size_t n = 0;

        ck_assert_int_eq(dns_message_parse(buf, len, &m), 0);
        dns_rr_iter_init(&it, buf, len, &m);
        while (dns_rr_next(&it, &rr) > 0)
                if (rr.type != DNS_TYPE_OPT && n < max)
                        out[n++] = rr.ttl;
        return n;
}

/* The budget ztnad gives by default: the cache_size key's (the key table
 * is the one place it is written; test-config checks its value). */
static uint64_t default_size(void) {
        _cleanup_config_ ZtnadConfig *d = NULL;

        ck_assert_int_eq(config_defaults(&d), 0);
        ck_assert_uint_gt(d->cache_size, 0);
        return d->cache_size;
}

static Cache *new_cache(uint64_t max_bytes, bool stale) {
        CacheConfig cfg = { .max_bytes = max_bytes, .serve_stale = stale, .stale_window = 100 };
        Cache *c = NULL;
        ck_assert_int_eq(cache_new(&cfg, &c), 0);
        return c;
}

static uint8_t out[DNS_MESSAGE_MAX];

START_TEST(test_ttl_countdown) {
        Cache *c = new_cache(default_size(), false);
        Answer a;
        size_t len;
        uint32_t t[8];

        answer(&(Spec) { .name = "www.example.test", .type = DNS_TYPE_A, .n_a = 3, .ttl = { 300, 200 } }, &a);
        DnsMessage q = query("www.example.test", DNS_TYPE_A, false, false);
        ck_assert_int_eq(cache_get(c, &q, T0, false, out, sizeof out, &len), CACHE_MISS);
        ck_assert_int_eq(cache_put(c, &q, a.wire, a.len, &a.m, T0), 1);

        /* at once: every TTL cut to the entry's lifetime, the smallest */
        ck_assert_int_eq(cache_get(c, &q, T0, false, out, sizeof out, &len), CACHE_FRESH);
        ck_assert_uint_eq(len, a.len);
        ck_assert_uint_eq(ttls(out, len, t, 8), 3);
        ck_assert_uint_eq(t[0], 200);
        ck_assert_uint_eq(t[1], 200);
        ck_assert_uint_eq(t[2], 200);
        /* the rest of the answer as stored */
        ck_assert_int_eq(memcmp(out + DNS_HEADER_SIZE, a.wire + DNS_HEADER_SIZE, 22), 0);

        /* 50.9 s later: 150 (whole seconds, rounded down) */
        ck_assert_int_eq(cache_get(c, &q, T0 + 50 * SEC + 900000, false, out, sizeof out, &len), CACHE_FRESH);
        ttls(out, len, t, 8);
        ck_assert_uint_eq(t[0], 150);
        ck_assert_uint_eq(t[2], 150);
        /* the last microsecond: 1, never 0 */
        ck_assert_int_eq(cache_get(c, &q, T0 + 200 * SEC - 1, false, out, sizeof out, &len), CACHE_FRESH);
        ttls(out, len, t, 8);
        ck_assert_uint_eq(t[0], 1);
        /* then gone */
        ck_assert_int_eq(cache_get(c, &q, T0 + 200 * SEC, false, out, sizeof out, &len), CACHE_MISS);
        /* the entry itself was never changed by serving it */
        ck_assert_int_eq(cache_get(c, &q, T0 + 1 * SEC, false, out, sizeof out, &len), CACHE_FRESH);
        ttls(out, len, t, 8);
        ck_assert_uint_eq(t[1], 199);

        /* a buffer one byte short */
        ck_assert_int_eq(cache_get(c, &q, T0, false, out, a.len - 1, &len), -ENOBUFS);

        CacheStats st;
        cache_stats(c, &st);
        ck_assert_uint_eq(st.entries, 1);
        ck_assert_uint_eq(st.insertions, 1);
        ck_assert_uint_eq(st.hits, 4);
        ck_assert_uint_eq(st.misses, 2);
        cache_free(c);
}
END_TEST

START_TEST(test_key) {
        Cache *c = new_cache(default_size(), false);
        Answer a;
        size_t len;

        answer(&(Spec) { .name = "WWW.Example.TEST", .type = DNS_TYPE_A, .n_a = 1, .ttl = { 60, 60 } }, &a);
        DnsMessage put = query("WWW.Example.TEST", DNS_TYPE_A, false, false);
        ck_assert_int_eq(cache_put(c, &put, a.wire, a.len, &a.m, T0), 1);

        DnsMessage q = query("www.example.test.", DNS_TYPE_A, false, false);
        ck_assert_int_eq(cache_get(c, &q, T0, false, out, sizeof out, &len), CACHE_FRESH);
        q = query("www.EXAMPLE.test", DNS_TYPE_A, false, false);
        ck_assert_int_eq(cache_get(c, &q, T0, false, out, sizeof out, &len), CACHE_FRESH);
        q = query("www.example.test", DNS_TYPE_AAAA, false, false);
        ck_assert_int_eq(cache_get(c, &q, T0, false, out, sizeof out, &len), CACHE_MISS);
        q = query("www.example.test", DNS_TYPE_A, true, false);
        ck_assert_int_eq(cache_get(c, &q, T0, false, out, sizeof out, &len), CACHE_MISS);
        q = query("www.example.test", DNS_TYPE_A, false, true);
        ck_assert_int_eq(cache_get(c, &q, T0, false, out, sizeof out, &len), CACHE_MISS);
        q = query("ww.example.test", DNS_TYPE_A, false, false);
        ck_assert_int_eq(cache_get(c, &q, T0, false, out, sizeof out, &len), CACHE_MISS);
        q = query("www.example.test", DNS_TYPE_A, false, false);
        q.qclass = DNS_CLASS_CH;
        ck_assert_int_eq(cache_get(c, &q, T0, false, out, sizeof out, &len), CACHE_MISS);

        /* the answer must answer the query it is stored for */
        q = query("other.example.test", DNS_TYPE_A, false, false);
        ck_assert_int_eq(cache_put(c, &q, a.wire, a.len, &a.m, T0), 0);
        q = query("www.example.test", DNS_TYPE_AAAA, false, false);
        ck_assert_int_eq(cache_put(c, &q, a.wire, a.len, &a.m, T0), 0);

        /* storing again replaces */
        Answer b;
        answer(&(Spec) { .name = "www.example.test", .type = DNS_TYPE_A, .n_a = 2, .ttl = { 90, 90 } }, &b);
        q = query("www.example.test", DNS_TYPE_A, false, false);
        ck_assert_int_eq(cache_put(c, &q, b.wire, b.len, &b.m, T0 + SEC), 1);
        ck_assert_int_eq(cache_get(c, &q, T0 + SEC, false, out, sizeof out, &len), CACHE_FRESH);
        ck_assert_uint_eq(len, b.len);
        CacheStats st;
        cache_stats(c, &st);
        ck_assert_uint_eq(st.entries, 1);
        cache_free(c);
}
END_TEST

START_TEST(test_negative) {
        Cache *c = new_cache(default_size(), false);
        Answer a;
        size_t len;
        uint32_t t[4];

        /* NXDOMAIN: SOA TTL 600, MINIMUM 300 -> 300 s (RFC 2308 5) */
        answer(&(Spec) { .name = "nosuch.example.test", .type = DNS_TYPE_A, .flags = DNS_RCODE_NXDOMAIN, .soa = true,
                         .soa_ttl = 600, .soa_minimum = 300 },
               &a);
        DnsMessage q = query("nosuch.example.test", DNS_TYPE_A, false, false);
        ck_assert_int_eq(cache_put(c, &q, a.wire, a.len, &a.m, T0), 1);
        ck_assert_int_eq(cache_get(c, &q, T0 + 299 * SEC, false, out, sizeof out, &len), CACHE_FRESH);
        DnsMessage m;
        ck_assert_int_eq(dns_message_parse(out, len, &m), 0);
        ck_assert_uint_eq(m.rcode, DNS_RCODE_NXDOMAIN);
        ck_assert_uint_eq(ttls(out, len, t, 4), 1);
        ck_assert_uint_eq(t[0], 1); /* the SOA counts down from 300 */
        ck_assert_int_eq(cache_get(c, &q, T0 + 300 * SEC, false, out, sizeof out, &len), CACHE_MISS);

        /* SOA TTL 100, MINIMUM 300 -> 100 s */
        answer(&(Spec) { .name = "nosuch.example.test", .type = DNS_TYPE_A, .flags = DNS_RCODE_NXDOMAIN, .soa = true,
                         .soa_ttl = 100, .soa_minimum = 300 },
               &a);
        ck_assert_int_eq(cache_put(c, &q, a.wire, a.len, &a.m, T0), 1);
        ck_assert_int_eq(cache_get(c, &q, T0 + 99 * SEC, false, out, sizeof out, &len), CACHE_FRESH);
        ck_assert_int_eq(cache_get(c, &q, T0 + 100 * SEC, false, out, sizeof out, &len), CACHE_MISS);

        /* NODATA: NOERROR, no answers, SOA */
        answer(&(Spec) { .name = "www.example.test", .type = DNS_TYPE_MX, .soa = true, .soa_ttl = 3600,
                         .soa_minimum = 60 },
               &a);
        q = query("www.example.test", DNS_TYPE_MX, false, false);
        ck_assert_int_eq(cache_put(c, &q, a.wire, a.len, &a.m, T0), 1);
        ck_assert_int_eq(cache_get(c, &q, T0 + 59 * SEC, false, out, sizeof out, &len), CACHE_FRESH);
        ck_assert_int_eq(cache_get(c, &q, T0 + 60 * SEC, false, out, sizeof out, &len), CACHE_MISS);

        /* negative without an SOA: not stored */
        answer(&(Spec) { .name = "bare.example.test", .type = DNS_TYPE_A, .flags = DNS_RCODE_NXDOMAIN }, &a);
        q = query("bare.example.test", DNS_TYPE_A, false, false);
        ck_assert_int_eq(cache_put(c, &q, a.wire, a.len, &a.m, T0), 0);
        answer(&(Spec) { .name = "bare.example.test", .type = DNS_TYPE_A }, &a);
        ck_assert_int_eq(cache_put(c, &q, a.wire, a.len, &a.m, T0), 0);

        /* the negative cap: a day-long MINIMUM is cut to 3 hours */
        answer(&(Spec) { .name = "long.example.test", .type = DNS_TYPE_A, .flags = DNS_RCODE_NXDOMAIN, .soa = true,
                         .soa_ttl = 86400, .soa_minimum = 86400 },
               &a);
        q = query("long.example.test", DNS_TYPE_A, false, false);
        ck_assert_int_eq(cache_put(c, &q, a.wire, a.len, &a.m, T0), 1);
        ck_assert_int_eq(cache_get(c, &q, T0, false, out, sizeof out, &len), CACHE_FRESH);
        ttls(out, len, t, 4);
        ck_assert_uint_eq(t[0], CACHE_DEFAULT_MAX_NEGATIVE_TTL);
        ck_assert_int_eq(cache_get(c, &q, T0 + CACHE_DEFAULT_MAX_NEGATIVE_TTL * SEC, false, out, sizeof out, &len),
                         CACHE_MISS);
        cache_free(c);
}
END_TEST

START_TEST(test_not_stored) {
        Cache *c = new_cache(default_size(), false);
        Answer a;
        DnsMessage q = query("www.example.test", DNS_TYPE_A, false, false);
        size_t len;

        const uint16_t flags[] = { DNS_RCODE_SERVFAIL, DNS_RCODE_REFUSED, DNS_RCODE_FORMERR, DNS_FLAG_TC };
        for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
                answer(&(Spec) { .name = "www.example.test", .type = DNS_TYPE_A, .flags = flags[i], .n_a = 1,
                                 .ttl = { 60, 60 }, .soa = true, .soa_ttl = 60, .soa_minimum = 60 },
                       &a);
                ck_assert_int_eq(cache_put(c, &q, a.wire, a.len, &a.m, T0), 0);
        }
        /* TTL 0; a TTL with the top bit set counts as 0 (RFC 2181 8) */
        answer(&(Spec) { .name = "www.example.test", .type = DNS_TYPE_A, .n_a = 2, .ttl = { 60, 0 } }, &a);
        ck_assert_int_eq(cache_put(c, &q, a.wire, a.len, &a.m, T0), 0);
        answer(&(Spec) { .name = "www.example.test", .type = DNS_TYPE_A, .n_a = 1, .ttl = { 0x80000000u, 0 } }, &a);
        ck_assert_int_eq(cache_put(c, &q, a.wire, a.len, &a.m, T0), 0);
        /* a query, not an answer */
        answer(&(Spec) { .name = "www.example.test", .type = DNS_TYPE_A, .n_a = 1, .ttl = { 60, 60 } }, &a);
        a.m.flags &= (uint16_t) ~DNS_FLAG_QR;
        ck_assert_int_eq(cache_put(c, &q, a.wire, a.len, &a.m, T0), 0);
        /* larger than the whole budget */
        Cache *tiny = new_cache(256, false);
        answer(&(Spec) { .name = "www.example.test", .type = DNS_TYPE_A, .n_a = 1, .ttl = { 60, 60 },
                         .padding = 300 },
               &a);
        ck_assert_int_eq(cache_put(tiny, &q, a.wire, a.len, &a.m, T0), 0);
        cache_free(tiny);

        ck_assert_int_eq(cache_get(c, &q, T0, false, out, sizeof out, &len), CACHE_MISS);
        CacheStats st;
        cache_stats(c, &st);
        ck_assert_uint_eq(st.entries, 0);
        ck_assert_uint_eq(st.bytes, 0);
        cache_free(c);
}
END_TEST

START_TEST(test_caps_and_opt) {
        CacheConfig cfg = { .max_ttl = 3600 };
        Cache *c = NULL;
        Answer a;
        size_t len;
        uint32_t t[4];

        /* No budget, no configuration: refused (the default is the key
         * table's, never the cache's own). */
        ck_assert_int_eq(cache_new(&cfg, &c), -EINVAL);
        ck_assert_int_eq(cache_new(NULL, &c), -EINVAL);
        ck_assert_ptr_null(c);
        cfg.max_bytes = default_size();
        ck_assert_int_eq(cache_new(&cfg, &c), 0);
        answer(&(Spec) { .name = "www.example.test", .type = DNS_TYPE_A, .n_a = 1, .ttl = { 604800, 0 },
                         .opt_do = true },
               &a);
        DnsMessage q = query("www.example.test", DNS_TYPE_A, true, false);
        ck_assert_int_eq(cache_put(c, &q, a.wire, a.len, &a.m, T0), 1);
        ck_assert_int_eq(cache_get(c, &q, T0 + 600 * SEC, false, out, sizeof out, &len), CACHE_FRESH);
        ck_assert_uint_eq(ttls(out, len, t, 4), 1);
        ck_assert_uint_eq(t[0], 3000);
        /* the OPT record's TTL field (extended rcode, version, DO) untouched */
        DnsMessage m;
        ck_assert_int_eq(dns_message_parse(out, len, &m), 0);
        ck_assert(m.edns.present);
        ck_assert(m.edns.flags & DNS_EDNS_FLAG_DO);
        ck_assert_uint_eq(m.edns.ext_rcode, 0);
        ck_assert_int_eq(cache_get(c, &q, T0 + 3600 * SEC, false, out, sizeof out, &len), CACHE_MISS);
        cache_free(c);
}
END_TEST

START_TEST(test_eviction) {
        const uint64_t budget = 64 * 1024;
        Cache *c = new_cache(budget, false);
        Answer a, hot;
        CacheStats st;
        size_t len;
        char name[64];

        answer(&(Spec) { .name = "hot.example.test", .type = DNS_TYPE_A, .n_a = 1, .ttl = { 3600, 3600 } }, &hot);
        DnsMessage hq = query("hot.example.test", DNS_TYPE_A, false, false);
        ck_assert_int_eq(cache_put(c, &hq, hot.wire, hot.len, &hot.m, T0), 1);

        /* 2000 answers of ~200 bytes: far over 64 KiB */
        for (unsigned i = 0; i < 2000; i++) {
                snprintf(name, sizeof name, "n%u.example.test", i);
                answer(&(Spec) { .name = name, .type = DNS_TYPE_A, .n_a = 8, .ttl = { 3600, 3600 } }, &a);
                DnsMessage q = query(name, DNS_TYPE_A, false, false);
                ck_assert_int_eq(cache_put(c, &q, a.wire, a.len, &a.m, T0), 1);
                cache_stats(c, &st);
                ck_assert_uint_le(st.bytes, budget);
                /* the hot name is asked for all the time */
                ck_assert_int_eq(cache_get(c, &hq, T0, false, out, sizeof out, &len), CACHE_FRESH);
        }
        cache_stats(c, &st);
        ck_assert_uint_gt(st.evictions, 1000);
        ck_assert_uint_lt(st.entries, 2000);
        ck_assert_uint_gt(st.entries, 100);
        ck_assert_uint_gt(st.bytes, budget / 2);
        /* the oldest cold one went, the newest stayed */
        DnsMessage q = query("n0.example.test", DNS_TYPE_A, false, false);
        ck_assert_int_eq(cache_get(c, &q, T0, false, out, sizeof out, &len), CACHE_MISS);
        q = query("n1999.example.test", DNS_TYPE_A, false, false);
        ck_assert_int_eq(cache_get(c, &q, T0, false, out, sizeof out, &len), CACHE_FRESH);

        /* expired entries go first: with all of them expired, one store
         * evicts what it needs and the hot one (used) goes too */
        answer(&(Spec) { .name = "late.example.test", .type = DNS_TYPE_A, .n_a = 1, .ttl = { 60, 60 } }, &a);
        q = query("late.example.test", DNS_TYPE_A, false, false);
        uint64_t before = st.evictions;
        ck_assert_int_eq(cache_put(c, &q, a.wire, a.len, &a.m, T0 + 7200 * SEC), 1);
        cache_stats(c, &st);
        ck_assert_uint_ge(st.evictions, before);

        /* prune drops everything expired */
        size_t pruned = cache_prune(c, T0 + 7200 * SEC);
        ck_assert_uint_gt(pruned, 100);
        cache_stats(c, &st);
        ck_assert_uint_eq(st.entries, 1);
        ck_assert_int_eq(cache_get(c, &q, T0 + 7200 * SEC, false, out, sizeof out, &len), CACHE_FRESH);

        /* flush: nothing left */
        cache_flush(c);
        cache_stats(c, &st);
        ck_assert_uint_eq(st.entries, 0);
        ck_assert_uint_eq(st.bytes, 0);
        ck_assert_int_eq(cache_get(c, &q, T0 + 7200 * SEC, false, out, sizeof out, &len), CACHE_MISS);
        ck_assert_int_eq(cache_put(c, &q, a.wire, a.len, &a.m, T0 + 7200 * SEC), 1);
        ck_assert_int_eq(cache_get(c, &q, T0 + 7200 * SEC, false, out, sizeof out, &len), CACHE_FRESH);
        cache_free(c);
}
END_TEST

START_TEST(test_serve_stale) {
        Answer a;
        size_t len;
        uint32_t t[4];

        answer(&(Spec) { .name = "www.example.test", .type = DNS_TYPE_A, .n_a = 2, .ttl = { 60, 60 } }, &a);
        DnsMessage q = query("www.example.test", DNS_TYPE_A, false, false);

        /* serve_stale on, a 100 s window */
        Cache *c = new_cache(default_size(), true);
        ck_assert(cache_serve_stale(c));
        ck_assert_int_eq(cache_put(c, &q, a.wire, a.len, &a.m, T0), 1);
        ck_assert_int_eq(cache_get(c, &q, T0 + 59 * SEC, true, out, sizeof out, &len), CACHE_FRESH);
        /* expired: a normal lookup misses (the stub asks upstream) ... */
        ck_assert_int_eq(cache_get(c, &q, T0 + 60 * SEC, false, out, sizeof out, &len), CACHE_MISS);
        /* ... and after the upstream failed the stale answer comes, TTL 30 */
        ck_assert_int_eq(cache_get(c, &q, T0 + 60 * SEC, true, out, sizeof out, &len), CACHE_STALE);
        ck_assert_uint_eq(ttls(out, len, t, 4), 2);
        ck_assert_uint_eq(t[0], CACHE_STALE_TTL);
        ck_assert_uint_eq(t[1], CACHE_STALE_TTL);
        ck_assert_int_eq(cache_get(c, &q, T0 + 159 * SEC, true, out, sizeof out, &len), CACHE_STALE);
        ck_assert_int_eq(cache_get(c, &q, T0 + 160 * SEC, true, out, sizeof out, &len), CACHE_MISS);
        /* prune keeps entries inside the window */
        ck_assert_uint_eq(cache_prune(c, T0 + 100 * SEC), 0);
        ck_assert_uint_eq(cache_prune(c, T0 + 160 * SEC), 1);
        CacheStats st;
        cache_stats(c, &st);
        ck_assert_uint_eq(st.stale_hits, 2);
        cache_free(c);

        /* serve_stale off: never stale */
        c = new_cache(default_size(), false);
        ck_assert(!cache_serve_stale(c));
        ck_assert_int_eq(cache_put(c, &q, a.wire, a.len, &a.m, T0), 1);
        ck_assert_int_eq(cache_get(c, &q, T0 + 60 * SEC, true, out, sizeof out, &len), CACHE_MISS);
        ck_assert_uint_eq(cache_prune(c, T0 + 60 * SEC), 1);
        cache_free(c);
}
END_TEST

/* ---- threads ---- */

typedef struct Shared {
        Cache *cache;
        atomic_bool stop;
        atomic_ulong reads, hits, writes, flushes;
} Shared;

#define N_NAMES 512

static void *reader(void *p) {
        Shared *s = p;
        uint8_t buf[DNS_MESSAGE_MAX];
        uint8_t qb[512];
        unsigned i = 0;

        while (!atomic_load(&s->stop)) {
                char name[64];
                DnsBuilder b;
                DnsName n;
                DnsMessage q, m;
                size_t len;

                snprintf(name, sizeof name, "n%u.example.test", i++ % N_NAMES);
                dns_name_from_text(name, &n);
                dns_builder_init(&b, qb, sizeof qb);
                dns_builder_header(&b, 1, DNS_FLAG_RD, 1, 0, 0, 0);
                dns_builder_name(&b, &n);
                dns_builder_u16(&b, DNS_TYPE_A);
                dns_builder_u16(&b, DNS_CLASS_IN);
                if (dns_builder_finish(&b, &len) < 0 || dns_message_parse(qb, len, &q) < 0)
                        abort();
                int r = cache_get(s->cache, &q, T0, false, buf, sizeof buf, &len);
                atomic_fetch_add(&s->reads, 1);
                if (r == CACHE_FRESH) {
                        /* whole, the right one, never torn */
                        if (dns_message_parse(buf, len, &m) < 0 || !dns_name_equal(&m.qname, &n) || m.ancount != 4)
                                abort();
                        atomic_fetch_add(&s->hits, 1);
                }
        }
        return NULL;
}

static void *writer(void *p) {
        Shared *s = p;
        unsigned i = 0;

        while (!atomic_load(&s->stop)) {
                char name[64];
                Answer a;
                DnsBuilder b;
                DnsName n;
                DnsMessage q;
                uint8_t qb[512];
                size_t len;

                snprintf(name, sizeof name, "n%u.example.test", (i++ * 7) % N_NAMES);
                dns_name_from_text(name, &n);
                dns_builder_init(&b, qb, sizeof qb);
                dns_builder_header(&b, 1, DNS_FLAG_RD, 1, 0, 0, 0);
                dns_builder_name(&b, &n);
                dns_builder_u16(&b, DNS_TYPE_A);
                dns_builder_u16(&b, DNS_CLASS_IN);
                if (dns_builder_finish(&b, &len) < 0 || dns_message_parse(qb, len, &q) < 0)
                        abort();
                /* built without Check: ck_assert is not for other threads */
                dns_builder_init(&b, a.wire, sizeof a.wire);
                dns_builder_header(&b, 1, DNS_FLAG_QR | DNS_FLAG_RD | DNS_FLAG_RA, 1, 4, 0, 0);
                dns_builder_name(&b, &n);
                dns_builder_u16(&b, DNS_TYPE_A);
                dns_builder_u16(&b, DNS_CLASS_IN);
                for (unsigned k = 0; k < 4; k++) {
                        size_t rd = dns_builder_rr_begin(&b, DNS_HEADER_SIZE, DNS_TYPE_A, DNS_CLASS_IN, 600);
                        dns_builder_u32(&b, 0x0a000000 + k);
                        dns_builder_rr_end(&b, rd);
                }
                if (dns_builder_finish(&b, &a.len) < 0 || dns_message_parse(a.wire, a.len, &a.m) < 0)
                        abort();
                if (cache_put(s->cache, &q, a.wire, a.len, &a.m, T0) != 1)
                        abort();
                atomic_fetch_add(&s->writes, 1);
        }
        return NULL;
}

static void *flusher(void *p) {
        Shared *s = p;
        while (!atomic_load(&s->stop)) {
                struct timespec ts = { .tv_nsec = 20 * 1000 * 1000 };
                nanosleep(&ts, NULL);
                cache_flush(s->cache);
                atomic_fetch_add(&s->flushes, 1);
        }
        return NULL;
}

START_TEST(test_threads) {
        /* small enough that eviction runs all the time too */
        Shared s = { .cache = new_cache(32 * 1024, false) };
        pthread_t th[5];
        void *(*fn[5])(void *) = { reader, reader, writer, writer, flusher };

        for (int i = 0; i < 5; i++)
                ck_assert_int_eq(pthread_create(&th[i], NULL, fn[i], &s), 0);
        struct timespec ts = { .tv_sec = 2 };
        nanosleep(&ts, NULL);
        atomic_store(&s.stop, true);
        for (int i = 0; i < 5; i++)
                ck_assert_int_eq(pthread_join(th[i], NULL), 0);

        CacheStats st;
        cache_stats(s.cache, &st);
        fprintf(stderr, "cache threads: %lu reads (%lu hits), %lu writes, %lu flushes, %" PRIu64 " evictions\n",
                (unsigned long) s.reads, (unsigned long) s.hits, (unsigned long) s.writes,
                (unsigned long) s.flushes, st.evictions);
        ck_assert_uint_gt(s.reads, 1000);
        ck_assert_uint_gt(s.hits, 100);
        ck_assert_uint_gt(s.writes, 1000);
        ck_assert_uint_gt(s.flushes, 10);
        ck_assert_uint_le(st.bytes, 32 * 1024);
        cache_free(s.cache);
}
END_TEST

static Suite *cache_suite(void) {
        Suite *s = suite_create("cache");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_ttl_countdown);
        tcase_add_test(tc, test_key);
        tcase_add_test(tc, test_negative);
        tcase_add_test(tc, test_not_stored);
        tcase_add_test(tc, test_caps_and_opt);
        tcase_add_test(tc, test_eviction);
        tcase_add_test(tc, test_serve_stale);
        tcase_add_test(tc, test_threads);
        tcase_set_timeout(tc, 120);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(cache_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
