/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the record store: the writer and the reader of shm/ against
 * each other. Boundaries of names, addresses and the domain; a second
 * writer taking over; growth into a new file; a torture run in which reader
 * threads check every answer while the writer republishes; writers killed
 * at random moments and at the rename of a growth; hostile files; SipHash-1-3
 * known answers.
 *
 * Check runs every test in its own process. Each gets a private store
 * directory (mode 0755, owned by root): the reader refuses world-writable
 * directories such as /tmp itself, so the tests run as root.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "shm-format.h"
#include "shm.h"
#include "siphash.h"

#define DOMAIN "yourorg.zt.net"
#define MANY_ADDRS 500u
#define NOBODY_UID 65534
#define DAEMON_UID 1 /* a system account (Debian's "daemon") */

static char test_dir[PATH_MAX / 2];
static char store[PATH_MAX];

/* ---- fixture: a private directory per test ---- */

static void path_in_dir(char *buf, size_t size, const char *name) {
        int n = snprintf(buf, size, "%s/%s", test_dir, name);
        ck_assert(n > 0 && (size_t) n < size);
}

static void dir_setup(void) {
        const char *tmp = getenv("TMPDIR");
        ck_assert_msg(geteuid() == 0, "the store tests run as root (the reader trusts root's directories)");
        snprintf(test_dir, sizeof(test_dir), "%s/test-shm.XXXXXX", tmp && tmp[0] == '/' ? tmp : "/tmp");
        ck_assert_ptr_nonnull(mkdtemp(test_dir));
        ck_assert_int_eq(chmod(test_dir, 0755), 0);
        path_in_dir(store, sizeof(store), "records");
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
        (void) st, (void) flag, (void) ftw;
        return remove(path) < 0 ? -1 : 0;
}

static void dir_teardown(void) {
        (void) nftw(test_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- a small hand-written map ---- */

static struct in_addr ip4(const char *s) {
        struct in_addr a;
        ck_assert_int_eq(inet_pton(AF_INET, s, &a), 1);
        return a;
}

static struct in6_addr ip6(const char *s) {
        struct in6_addr a;
        ck_assert_int_eq(inet_pton(AF_INET6, s, &a), 1);
        return a;
}

static void default_ranges(ShmPrefix ranges[2]) {
        ranges[0] = (ShmPrefix) { .family = AF_INET, .prefixlen = 10, .addr.in = ip4("100.64.0.0") };
        ranges[1] = (ShmPrefix) { .family = AF_INET6, .prefixlen = 48, .addr.in6 = ip6("fd7a:115c:a1e0::") };
}

enum {
        PEER_WIN_A,
        PEER_LINUX_B,
        PEER_V6ONLY,
        PEER_BARE,
        PEER_MANY,
        PEER_LONG,
        N_BASIC_PEERS,
};

typedef struct BasicMap {
        struct in_addr a_v4, b_v4, many_v4[MANY_ADDRS];
        struct in6_addr a_v6, c_v6, many_v6[MANY_ADDRS];
        char long_name[SHM_LABEL_MAX + 1];
        ShmPrefix ranges[2];
        ShmPeer peers[N_BASIC_PEERS];
        ShmMap map;
} BasicMap;

static void basic_map_init(BasicMap *b) {
        memset(b, 0, sizeof(*b));
        b->a_v4 = ip4("100.64.0.1");
        b->a_v6 = ip6("fd7a:115c:a1e0::1");
        b->b_v4 = ip4("100.64.0.2");
        b->c_v6 = ip6("fd7a:115c:a1e0::3");
        for (unsigned k = 0; k < MANY_ADDRS; k++) {
                char s[64];
                snprintf(s, sizeof(s), "100.65.%u.%u", k >> 8, k & 0xff);
                b->many_v4[k] = ip4(s);
                snprintf(s, sizeof(s), "fd7a:115c:a1e0:1::%x", k);
                b->many_v6[k] = ip6(s);
        }
        for (unsigned k = 0; k < SHM_LABEL_MAX; k++)
                b->long_name[k] = (char) ('a' + k % 26);
        default_ranges(b->ranges);
        b->peers[PEER_WIN_A] = (ShmPeer) {
                .name = "Win-A", .ttl = 300, .online = true, .n_v4 = 1, .v4 = &b->a_v4, .n_v6 = 1, .v6 = &b->a_v6 };
        b->peers[PEER_LINUX_B] = (ShmPeer) { .name = "linux-b", .ttl = 60, .n_v4 = 1, .v4 = &b->b_v4 };
        b->peers[PEER_V6ONLY] = (ShmPeer) { .name = "v6only", .ttl = 5, .online = true, .n_v6 = 1, .v6 = &b->c_v6 };
        b->peers[PEER_BARE] = (ShmPeer) { .name = "bare", .ttl = 1, .online = true };
        b->peers[PEER_MANY] = (ShmPeer) { .name = "many", .ttl = 7, .online = true, .n_v4 = MANY_ADDRS,
                                          .v4 = b->many_v4, .n_v6 = MANY_ADDRS, .v6 = b->many_v6 };
        b->peers[PEER_LONG] = (ShmPeer) { .name = b->long_name, .ttl = 9, .n_v4 = 0 };
        b->map = (ShmMap) { .domain = DOMAIN, .n_ranges = 2, .ranges = b->ranges, .n_peers = N_BASIC_PEERS,
                            .peers = b->peers };
}

/* ---- lookups the way the NSS module makes them: begin, look up, copy the
 * answer out, end. Nothing else writes the store meanwhile, so end() must
 * report a consistent read. ---- */

typedef struct Answer {
        ShmClass cls;
        uint64_t generation;
        bool down;
        char name[SHM_LABEL_MAX + 1];
        size_t name_len;
        uint32_t ttl;
        bool online;
        size_t n_v4, n_v6;
        uint8_t v4[MANY_ADDRS][4];
        uint8_t v6[MANY_ADDRS][16];
} Answer;

static void answer_copy(ShmClass cls, const ShmRecordView *v, Answer *a) {
        a->cls = cls;
        if (cls != SHM_FOUND)
                return;
        ck_assert_uint_le(v->name_len, SHM_LABEL_MAX);
        memcpy(a->name, v->name, v->name_len);
        a->name[v->name_len] = 0;
        a->name_len = v->name_len;
        a->ttl = v->ttl;
        a->online = v->online;
        a->n_v4 = v->n_v4;
        a->n_v6 = v->n_v6;
        memcpy(a->v4, v->v4, (v->n_v4 < MANY_ADDRS ? v->n_v4 : MANY_ADDRS) * 4);
        memcpy(a->v6, v->v6, (v->n_v6 < MANY_ADDRS ? v->n_v6 : MANY_ADDRS) * 16);
}

static int lookup_name(ShmReader *r, const char *name, Answer *ret) {
        ShmSnapshot s;
        ShmRecordView v;
        int e = shm_snapshot_begin(r, &s);
        if (e < 0)
                return e;
        memset(ret, 0, sizeof(*ret));
        answer_copy(shm_snapshot_lookup_name(&s, name, &v), &v, ret);
        ret->generation = s.generation;
        ret->down = shm_snapshot_down(&s);
        ck_assert(shm_snapshot_end(&s));
        return 0;
}

static int lookup_addr(ShmReader *r, int family, const char *text, Answer *ret) {
        uint8_t addr[16];
        ck_assert_int_eq(inet_pton(family, text, addr), 1);
        ShmSnapshot s;
        ShmRecordView v;
        int e = shm_snapshot_begin(r, &s);
        if (e < 0)
                return e;
        memset(ret, 0, sizeof(*ret));
        answer_copy(shm_snapshot_lookup_addr(&s, family, addr, &v), &v, ret);
        ret->generation = s.generation;
        ret->down = shm_snapshot_down(&s);
        ck_assert(shm_snapshot_end(&s));
        return 0;
}

/* The class of `name`; on SHM_FOUND, also that the record is `want`. */
static ShmClass class_of(ShmReader *r, const char *name, const char *want) {
        static Answer a;
        ck_assert_int_eq(lookup_name(r, name, &a), 0);
        if (a.cls == SHM_FOUND && want)
                ck_assert_str_eq(a.name, want);
        return a.cls;
}

static ShmClass class_of_addr(ShmReader *r, int family, const char *text, const char *want) {
        static Answer a;
        ck_assert_int_eq(lookup_addr(r, family, text, &a), 0);
        if (a.cls == SHM_FOUND && want)
                ck_assert_str_eq(a.name, want);
        return a.cls;
}

static uint64_t generation_of(ShmReader *r) {
        ShmSnapshot s;
        ck_assert_int_eq(shm_snapshot_begin(r, &s), 0);
        uint64_t g = s.generation;
        ck_assert(shm_snapshot_end(&s));
        return g;
}

static ShmWriter *writer_open(void) {
        ShmWriter *w = NULL;
        ck_assert_int_eq(shm_writer_open(store, &w), 0);
        ck_assert_ptr_nonnull(w);
        return w;
}

static ShmReader *reader_new(void) {
        ShmReader *r = NULL;
        ck_assert_int_eq(shm_reader_new(store, &r), 0);
        return r;
}

static void check_win_a(const Answer *a) {
        struct in_addr v4 = ip4("100.64.0.1");
        struct in6_addr v6 = ip6("fd7a:115c:a1e0::1");
        ck_assert_int_eq(a->cls, SHM_FOUND);
        ck_assert_str_eq(a->name, "Win-A"); /* the case as published */
        ck_assert_uint_eq(a->name_len, 5);
        ck_assert_uint_eq(a->ttl, 300);
        ck_assert(a->online);
        ck_assert_uint_eq(a->n_v4, 1);
        ck_assert_uint_eq(a->n_v6, 1);
        ck_assert_mem_eq(a->v4[0], &v4, 4);
        ck_assert_mem_eq(a->v6[0], &v6, 16);
}

/* ---- 1. basics and boundaries ---- */

START_TEST(test_names) {
        static BasicMap b;
        static Answer a;
        basic_map_init(&b);
        ShmWriter *w = writer_open();
        ck_assert_uint_eq(shm_writer_generation(w), 0);
        ck_assert_int_eq(shm_writer_set_state(w, false), -ENODATA); /* nothing published yet */
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        ck_assert_uint_eq(shm_writer_generation(w), 1);
        ShmReader *r = reader_new();

        /* Short name, FQDN, trailing dot, any case: the same record. */
        const char *win_a[] = { "Win-A", "win-a", "WIN-A", "win-a.", "Win-A.yourorg.zt.net", "win-a.YourOrg.ZT.Net",
                                "WIN-A.YOURORG.ZT.NET." };
        for (size_t i = 0; i < ELEMENTSOF(win_a); i++) {
                ck_assert_int_eq(lookup_name(r, win_a[i], &a), 0);
                check_win_a(&a);
                ck_assert_uint_eq(a.generation, 1);
                ck_assert(!a.down);
        }

        ck_assert_int_eq(lookup_name(r, "linux-b.yourorg.zt.net", &a), 0);
        ck_assert_int_eq(a.cls, SHM_FOUND);
        ck_assert_str_eq(a.name, "linux-b");
        ck_assert(!a.online);
        ck_assert_uint_eq(a.ttl, 60);
        ck_assert_uint_eq(a.n_v4, 1);
        ck_assert_uint_eq(a.n_v6, 0); /* v4 only */

        ck_assert_int_eq(lookup_name(r, "V6ONLY", &a), 0);
        ck_assert_int_eq(a.cls, SHM_FOUND);
        ck_assert_uint_eq(a.n_v4, 0);
        ck_assert_uint_eq(a.n_v6, 1);
        ck_assert_mem_eq(a.v6[0], &b.c_v6, 16);

        ck_assert_int_eq(lookup_name(r, "bare.yourorg.zt.net.", &a), 0);
        ck_assert_int_eq(a.cls, SHM_FOUND); /* a peer without addresses still exists */
        ck_assert_uint_eq(a.n_v4, 0);
        ck_assert_uint_eq(a.n_v6, 0);

        ck_assert_int_eq(lookup_name(r, "many", &a), 0);
        ck_assert_int_eq(a.cls, SHM_FOUND);
        ck_assert_uint_eq(a.n_v4, MANY_ADDRS);
        ck_assert_uint_eq(a.n_v6, MANY_ADDRS);
        for (unsigned k = 0; k < MANY_ADDRS; k++) { /* every one, in the published order */
                ck_assert_mem_eq(a.v4[k], &b.many_v4[k], 4);
                ck_assert_mem_eq(a.v6[k], &b.many_v6[k], 16);
        }

        /* A 63-character label is a name; 64 is not (RFC 1035 2.3.4). */
        char fqdn[128], too_long[SHM_LABEL_MAX + 2];
        ck_assert_str_eq(b.long_name, "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk");
        ck_assert_int_eq(class_of(r, b.long_name, b.long_name), SHM_FOUND);
        snprintf(fqdn, sizeof(fqdn), "%s.%s.", b.long_name, DOMAIN);
        ck_assert_int_eq(class_of(r, fqdn, b.long_name), SHM_FOUND);
        snprintf(too_long, sizeof(too_long), "%sx", b.long_name);
        ck_assert_int_eq(class_of(r, too_long, NULL), SHM_NOT_OURS);
        snprintf(fqdn, sizeof(fqdn), "%s.%s", too_long, DOMAIN);
        ck_assert_int_eq(class_of(r, fqdn, NULL), SHM_UNKNOWN);
        b.peers[PEER_LONG].name = too_long;
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), -EINVAL);
        b.peers[PEER_LONG].name = "has.dot";
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), -EINVAL);
        b.peers[PEER_LONG].name = "";
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), -EINVAL);
        b.peers[PEER_LONG].name = b.long_name;
        ck_assert_uint_eq(shm_writer_generation(w), 1); /* refused maps publish nothing */
        ck_assert_uint_eq(generation_of(r), 1);
        ck_assert_int_eq(class_of(r, "win-a", "Win-A"), SHM_FOUND);

        /* The domain and below: ours; deeper names and the apex: nobody. */
        ck_assert_int_eq(class_of(r, "yourorg.zt.net", NULL), SHM_UNKNOWN);
        ck_assert_int_eq(class_of(r, "YourOrg.zt.net.", NULL), SHM_UNKNOWN);
        ck_assert_int_eq(class_of(r, "nobody.yourorg.zt.net", NULL), SHM_UNKNOWN);
        ck_assert_int_eq(class_of(r, "a.b.yourorg.zt.net", NULL), SHM_UNKNOWN);
        ck_assert_int_eq(class_of(r, "win-a.win-a.yourorg.zt.net", NULL), SHM_UNKNOWN);
        ck_assert_int_eq(class_of(r, ".yourorg.zt.net", NULL), SHM_UNKNOWN);
        ck_assert_int_eq(class_of(r, "notyourorg.zt.net", NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of(r, "win-a.notyourorg.zt.net", NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of(r, "zt.net", NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of(r, "example.com", NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of(r, "win-a.example.com", NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of(r, "nobody", NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of(r, "win-a..", NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of(r, "win-", NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of(r, "win-aa", NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of(r, "", NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of(r, ".", NULL), SHM_NOT_OURS);

        shm_reader_free(r);
        shm_writer_close(w);
}
END_TEST

START_TEST(test_reverse) {
        static BasicMap b;
        basic_map_init(&b);
        ShmWriter *w = writer_open();
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        ShmReader *r = reader_new();

        ck_assert_int_eq(class_of_addr(r, AF_INET, "100.64.0.1", "Win-A"), SHM_FOUND);
        ck_assert_int_eq(class_of_addr(r, AF_INET6, "fd7a:115c:a1e0::1", "Win-A"), SHM_FOUND);
        ck_assert_int_eq(class_of_addr(r, AF_INET, "100.64.0.2", "linux-b"), SHM_FOUND);
        ck_assert_int_eq(class_of_addr(r, AF_INET6, "fd7a:115c:a1e0::3", "v6only"), SHM_FOUND);
        ck_assert_int_eq(class_of_addr(r, AF_INET, "100.65.0.0", "many"), SHM_FOUND);    /* its first */
        ck_assert_int_eq(class_of_addr(r, AF_INET, "100.65.1.243", "many"), SHM_FOUND);  /* its last */
        ck_assert_int_eq(class_of_addr(r, AF_INET6, "fd7a:115c:a1e0:1::1f3", "many"), SHM_FOUND);
        ck_assert_int_eq(class_of_addr(r, AF_INET, "100.65.1.244", NULL), SHM_UNKNOWN); /* one past */

        /* Inside the tailnet ranges, nobody's: ours to deny. */
        ck_assert_int_eq(class_of_addr(r, AF_INET, "100.64.0.0", NULL), SHM_UNKNOWN);
        ck_assert_int_eq(class_of_addr(r, AF_INET, "100.64.9.9", NULL), SHM_UNKNOWN);
        ck_assert_int_eq(class_of_addr(r, AF_INET, "100.127.255.255", NULL), SHM_UNKNOWN);
        ck_assert_int_eq(class_of_addr(r, AF_INET6, "fd7a:115c:a1e0::99", NULL), SHM_UNKNOWN);
        ck_assert_int_eq(class_of_addr(r, AF_INET6, "fd7a:115c:a1e0:ffff:ffff:ffff:ffff:ffff", NULL), SHM_UNKNOWN);
        /* Just outside, or another family's form: the next module's. */
        ck_assert_int_eq(class_of_addr(r, AF_INET, "100.63.255.255", NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of_addr(r, AF_INET, "100.128.0.0", NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of_addr(r, AF_INET, "8.8.8.8", NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of_addr(r, AF_INET6, "fd7a:115c:a1df:ffff::1", NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of_addr(r, AF_INET6, "fd7a:115c:a1e1::", NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of_addr(r, AF_INET6, "::ffff:100.64.0.1", NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of_addr(r, AF_INET6, "2001:db8::1", NULL), SHM_NOT_OURS);

        ShmSnapshot s;
        ShmRecordView v;
        uint8_t any[16] = {};
        ck_assert_int_eq(shm_snapshot_begin(r, &s), 0);
        ck_assert_int_eq(shm_snapshot_lookup_addr(&s, AF_UNIX, any, &v), SHM_NOT_OURS);
        ck_assert(shm_snapshot_end(&s));

        /* Without ranges, an unknown address is nobody's business. */
        b.map.n_ranges = 0;
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        ck_assert_int_eq(class_of_addr(r, AF_INET, "100.64.0.1", "Win-A"), SHM_FOUND);
        ck_assert_int_eq(class_of_addr(r, AF_INET, "100.64.9.9", NULL), SHM_NOT_OURS);
        shm_reader_free(r);
        shm_writer_close(w);
}
END_TEST

START_TEST(test_state_and_generation) {
        static BasicMap b;
        static Answer a;
        basic_map_init(&b);
        ShmWriter *w = writer_open();
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        ShmReader *r = reader_new();
        uint64_t g = generation_of(r);
        ck_assert_uint_eq(g, 1);

        /* Down keeps the map (the NSS module answers TRYAGAIN from it). */
        ck_assert_int_eq(shm_writer_set_state(w, false), 0);
        ck_assert_uint_eq(shm_writer_generation(w), ++g);
        ck_assert_int_eq(lookup_name(r, "win-a", &a), 0);
        ck_assert(a.down);
        ck_assert_uint_eq(a.generation, g);
        check_win_a(&a);
        ck_assert_int_eq(shm_writer_set_state(w, false), 0); /* idempotent, still counts */
        ck_assert_uint_eq(generation_of(r), ++g);
        ck_assert_int_eq(shm_writer_set_state(w, true), 0);
        ck_assert_int_eq(lookup_name(r, "win-a", &a), 0);
        ck_assert(!a.down);
        ck_assert_uint_eq(a.generation, ++g);
        check_win_a(&a);

        /* Published down from the start. */
        ck_assert_int_eq(shm_writer_publish(w, &b.map, false), 0);
        ck_assert_int_eq(lookup_name(r, "linux-b", &a), 0);
        ck_assert(a.down);
        ck_assert_uint_eq(a.generation, ++g);

        for (unsigned i = 0; i < 10; i++) {
                ck_assert_int_eq(shm_writer_publish(w, &b.map, i % 2), 0);
                ck_assert_uint_eq(shm_writer_generation(w), ++g);
                ck_assert_int_eq(lookup_name(r, "WIN-A", &a), 0);
                ck_assert_uint_eq(a.generation, g);
                ck_assert(a.down == !(i % 2));
                check_win_a(&a);
        }

        /* The heartbeat is readers' sign that ztnad lives. */
        ShmSnapshot s;
        ck_assert_int_eq(shm_snapshot_begin(r, &s), 0);
        uint64_t before = s.heartbeat_usec;
        ck_assert(shm_snapshot_end(&s));
        usleep(2000);
        shm_writer_heartbeat(w);
        ck_assert_int_eq(shm_snapshot_begin(r, &s), 0);
        ck_assert_uint_gt(s.heartbeat_usec, before);
        ck_assert_uint_eq(s.file_size, shm_writer_file_size(w));
        ck_assert(shm_snapshot_end(&s));
        shm_reader_free(r);
        shm_writer_close(w);
}
END_TEST

START_TEST(test_enumerate) {
        static BasicMap b;
        basic_map_init(&b);
        ShmWriter *w = writer_open();
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        ShmReader *r = reader_new();
        ShmSnapshot s;
        ShmRecordView v;
        bool seen[N_BASIC_PEERS] = {};

        ck_assert_int_eq(shm_snapshot_begin(r, &s), 0);
        ck_assert_uint_eq(s.n_records, N_BASIC_PEERS);
        for (uint32_t i = 0; i < s.n_records; i++) {
                ck_assert(shm_snapshot_record(&s, i, &v));
                ck_assert_uint_eq(strlen(v.name), v.name_len);
                size_t k;
                for (k = 0; k < N_BASIC_PEERS; k++)
                        if (strcmp(v.name, b.peers[k].name) == 0)
                                break;
                ck_assert_msg(k < N_BASIC_PEERS, "unexpected record %s", v.name);
                ck_assert_msg(!seen[k], "record %s listed twice", v.name);
                seen[k] = true;
                ck_assert_uint_eq(v.n_v4, b.peers[k].n_v4);
                ck_assert_uint_eq(v.n_v6, b.peers[k].n_v6);
                ck_assert_uint_eq(v.ttl, b.peers[k].ttl);
                ck_assert(v.online == b.peers[k].online);
        }
        ck_assert(!shm_snapshot_record(&s, N_BASIC_PEERS, &v)); /* one past the end */
        ck_assert(!shm_snapshot_record(&s, UINT32_MAX, &v));
        ck_assert(shm_snapshot_end(&s));
        for (size_t k = 0; k < N_BASIC_PEERS; k++)
                ck_assert_msg(seen[k], "record %s missing", b.peers[k].name);
        shm_reader_free(r);
        shm_writer_close(w);
}
END_TEST

START_TEST(test_empty_map) {
        static BasicMap b;
        basic_map_init(&b);
        b.map.n_peers = 0;
        ShmWriter *w = writer_open();
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        ShmReader *r = reader_new();
        ShmSnapshot s;
        ShmRecordView v;

        ck_assert_int_eq(shm_snapshot_begin(r, &s), 0);
        ck_assert_uint_eq(s.n_records, 0);
        ck_assert(!shm_snapshot_record(&s, 0, &v));
        ck_assert(shm_snapshot_end(&s));
        ck_assert_int_eq(class_of(r, "win-a", NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of(r, "win-a.yourorg.zt.net", NULL), SHM_UNKNOWN);
        ck_assert_int_eq(class_of_addr(r, AF_INET, "100.64.0.1", NULL), SHM_UNKNOWN);
        ck_assert_int_eq(class_of_addr(r, AF_INET6, "fd7a:115c:a1e0::1", NULL), SHM_UNKNOWN);
        ck_assert_int_eq(class_of_addr(r, AF_INET, "192.0.2.1", NULL), SHM_NOT_OURS);

        /* From empty to full and back, in place. */
        b.map.n_peers = N_BASIC_PEERS;
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        ck_assert_int_eq(class_of(r, "win-a", "Win-A"), SHM_FOUND);
        b.map.n_peers = 0;
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        ck_assert_int_eq(class_of(r, "win-a", NULL), SHM_NOT_OURS);
        ck_assert_uint_eq(generation_of(r), 3);
        shm_reader_free(r);
        shm_writer_close(w);
}
END_TEST

START_TEST(test_domain_limits) {
        static BasicMap b;
        char domain[SHM_DOMAIN_MAX + 2], name[SHM_DOMAIN_MAX + 8];
        basic_map_init(&b);

        /* 63 + 1 + 63 + 1 + 63 + 1 + 61 = 253 characters: the longest name. */
        memset(domain, 'd', sizeof(domain));
        domain[63] = domain[127] = domain[191] = '.';
        domain[SHM_DOMAIN_MAX] = 0;
        ShmWriter *w = writer_open();
        b.map.domain = domain;
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        ShmReader *r = reader_new();
        ck_assert_int_eq(class_of(r, domain, NULL), SHM_UNKNOWN);
        snprintf(name, sizeof(name), "%s.", domain);
        ck_assert_int_eq(class_of(r, name, NULL), SHM_UNKNOWN);
        ck_assert_int_eq(class_of(r, "Win-A", "Win-A"), SHM_FOUND);
        /* Its peers' FQDNs would pass 253 characters: not names at all. */
        snprintf(name, sizeof(name), "win-a.%s", domain);
        ck_assert_int_eq(class_of(r, name, NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of(r, domain + 64, NULL), SHM_NOT_OURS);

        /* One more character, or none at all: refused. */
        domain[SHM_DOMAIN_MAX] = 'd';
        domain[SHM_DOMAIN_MAX + 1] = 0;
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), -EINVAL);
        b.map.domain = "";
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), -EINVAL);
        b.map.domain = NULL;
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), -EINVAL);
        ck_assert_uint_eq(generation_of(r), 1);

        /* A one-label domain works like any other. */
        b.map.domain = "ts";
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        ck_assert_int_eq(class_of(r, "win-a.ts", "Win-A"), SHM_FOUND);
        ck_assert_int_eq(class_of(r, "win-a.ts.", "Win-A"), SHM_FOUND);
        ck_assert_int_eq(class_of(r, "nobody.ts", NULL), SHM_UNKNOWN);
        /* Its apex is a single label, and a single label is a short name. */
        ck_assert_int_eq(class_of(r, "ts", NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of(r, "win-a.yourorg.zt.net", NULL), SHM_NOT_OURS);
        shm_reader_free(r);
        shm_writer_close(w);
}
END_TEST

START_TEST(test_format_limits) {
        static BasicMap b;
        static struct in_addr v4[SHM_ADDRS_MAX + 1];
        static Answer a;
        ShmPrefix ranges[SHM_RANGES_MAX + 1];
        basic_map_init(&b);
        ShmWriter *w = writer_open();

        /* Ranges: at most SHM_RANGES_MAX, prefixes no longer than the family. */
        for (size_t i = 0; i < ELEMENTSOF(ranges); i++)
                ranges[i] = b.ranges[i % 2];
        b.map.ranges = ranges;
        b.map.n_ranges = SHM_RANGES_MAX + 1;
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), -EINVAL);
        b.map.n_ranges = SHM_RANGES_MAX;
        ranges[0].prefixlen = 33;
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), -EINVAL);
        ranges[0].prefixlen = 32;
        ranges[1].prefixlen = 129;
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), -EINVAL);
        ranges[1].prefixlen = 128;
        ranges[2].family = AF_UNIX;
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), -EINVAL);
        ranges[2] = b.ranges[0];
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        ShmReader *r = reader_new();
        ck_assert_int_eq(class_of_addr(r, AF_INET, "100.100.100.100", NULL), SHM_UNKNOWN);

        /* Addresses per family and peer: at most SHM_ADDRS_MAX. */
        for (uint32_t k = 0; k <= SHM_ADDRS_MAX; k++)
                v4[k].s_addr = htonl(0x0a000000u + k);
        b.peers[PEER_BARE].v4 = v4;
        b.peers[PEER_BARE].n_v4 = SHM_ADDRS_MAX + 1;
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), -E2BIG);
        b.peers[PEER_BARE].n_v4 = SHM_ADDRS_MAX;
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        ck_assert_int_eq(lookup_name(r, "bare", &a), 0);
        ck_assert_int_eq(a.cls, SHM_FOUND);
        ck_assert_uint_eq(a.n_v4, SHM_ADDRS_MAX);
        ck_assert_int_eq(class_of_addr(r, AF_INET, "10.0.255.254", "bare"), SHM_FOUND); /* the last one */
        ck_assert_int_eq(class_of_addr(r, AF_INET, "10.0.255.255", NULL), SHM_NOT_OURS);
        shm_reader_free(r);
        shm_writer_close(w);
}
END_TEST

/* ---- main ---- */

int main(void) {
        Suite *s = suite_create("shm");
        TCase *tc;

        tc = tcase_create("basics");
        tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_names);
        tcase_add_test(tc, test_reverse);
        tcase_add_test(tc, test_state_and_generation);
        tcase_add_test(tc, test_enumerate);
        tcase_add_test(tc, test_empty_map);
        tcase_add_test(tc, test_domain_limits);
        tcase_add_test(tc, test_format_limits);
        suite_add_tcase(s, tc);

        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
