/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the record store: the writer and the reader of shm/ against
 * each other. Boundaries of names, addresses and the domain; a second
 * writer taking over; growth into a new file; a torture run in which reader
 * threads check every answer while the writer republishes; writers killed
 * at random moments and at the rename of a growth; hostile files; the
 * persisted copy of the store and readers falling back on it; SipHash-1-3
 * known answers.
 *
 * Check runs every test in its own process. Each gets a private store
 * directory (mode 0755, owned by root): the reader refuses world-writable
 * directories such as /tmp itself, so the tests run as root.
 */
#include <arpa/inet.h>
#include <check.h>
#include <dirent.h>
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
        bool down, stale;
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
        ret->stale = shm_snapshot_stale(&s);
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
        ret->stale = shm_snapshot_stale(&s);
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

static int read_generation(const ShmSnapshot *s, void *userdata) {
        *(uint64_t *) userdata = s->generation;
        return 7;
}

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

        /* shm_snapshot_read(): fn's value from a consistent read, and what
         * it copied out; a store that is not there: begin's error, fn
         * never run. */
        uint64_t seen = 0;
        ck_assert_int_eq(shm_snapshot_read(r, read_generation, NULL, &seen), 7);
        ck_assert_uint_eq(seen, g);
        shm_reader_free(r);
        ck_assert_int_eq(shm_reader_new("/nonexistent-ztna-dir/records", &r), 0);
        seen = 0;
        ck_assert_int_eq(shm_snapshot_read(r, read_generation, NULL, &seen), -ENOENT);
        ck_assert_uint_eq(seen, 0);
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

/* The blocklist: a name and everything under it, any case, tailnet names
 * included (the blocklist comes first), and nothing else. */
START_TEST(test_blocklist) {
        static BasicMap b;
        static const char *const blocked[] = { "bad.example", "evil.test", "linux-b.yourorg.zt.net", "a" };
        basic_map_init(&b);
        b.map.n_blocked = ELEMENTSOF(blocked);
        b.map.blocked = blocked;
        ShmWriter *w = writer_open();
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        ShmReader *r = reader_new();

        const char *hits[] = { "bad.example", "BAD.Example.", "x.bad.example", "a.b.c.bad.example", "evil.test",
                               "linux-b.yourorg.zt.net", "Linux-B.YourOrg.zt.net.", "a", "x.a" };
        for (size_t i = 0; i < ELEMENTSOF(hits); i++)
                ck_assert_msg(class_of(r, hits[i], NULL) == SHM_BLOCKED, "%s not blocked", hits[i]);
        const char *misses[] = { "notbad.example", "example", "bad.example.org", "xevil.test", "test", "b" };
        for (size_t i = 0; i < ELEMENTSOF(misses); i++)
                ck_assert_msg(class_of(r, misses[i], NULL) == SHM_NOT_OURS, "%s blocked", misses[i]);
        ck_assert_int_eq(class_of(r, "win-a", "Win-A"), SHM_FOUND);
        /* The short name of a blocked FQDN is a different name. */
        ck_assert_int_eq(class_of(r, "linux-b", "linux-b"), SHM_FOUND);

        /* Lifted by the next publish. */
        b.map.n_blocked = 0;
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        ck_assert_int_eq(class_of(r, "x.bad.example", NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of(r, "linux-b.yourorg.zt.net", "linux-b"), SHM_FOUND);
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

/* ---- generated maps whose every answer can be checked on its own ----
 *
 * In generation g the map holds t_peers(g) peers "p<i>" (first letter's case
 * from (g, i)). Peer i has t_n_v4(g, i) IPv4 addresses 100.64.0.0 + 4i + k
 * and t_n_v6(g, i) IPv6 addresses fd7a:115c:a1e0:GGGG:GGGG:IIII:IIII:KKCC
 * (g, i, k and a check byte), a TTL and an online flag drawn from (g, i),
 * and the map is up unless t_up(g) says otherwise. A reader that knows the
 * generation an answer came from knows exactly what the answer must be:
 * which peers exist, every byte of the record, and which lookups are
 * unknown. */

#define T_DOMAIN "torture.zt.net"
#define T_PEERS_MIN 10u
#define T_PEERS_MAX 20000u
#define T_ADDRS 2u /* at most, per family and peer */
#define T_NAME_MAX 12u

typedef struct TortureMap {
        uint32_t capacity;
        ShmPeer *peers;
        char (*names)[T_NAME_MAX];
        struct in_addr *v4;
        struct in6_addr *v6;
        ShmPrefix ranges[2];
        ShmMap map;
} TortureMap;

static uint64_t mix64(uint64_t x) {
        x ^= x >> 30;
        x *= UINT64_C(0xbf58476d1ce4e5b9);
        x ^= x >> 27;
        x *= UINT64_C(0x94d049bb133111eb);
        return x ^ (x >> 31);
}

static uint64_t t_mix(uint64_t g, uint32_t i) {
        return mix64(g * UINT64_C(0x9e3779b97f4a7c15) + i + 1);
}

/* Peers of generation g: from 10 up to a cap that rises by `ramp` each
 * generation, so the store grows again and again during a run. */
static uint32_t t_peers(uint64_t g, uint32_t ramp) {
        uint64_t cap = T_PEERS_MIN + (g ? g - 1 : 0) * ramp;
        if (cap > T_PEERS_MAX)
                cap = T_PEERS_MAX;
        return T_PEERS_MIN + (uint32_t) (mix64(g) % (cap - T_PEERS_MIN + 1));
}

static bool t_up(uint64_t g) {
        return (mix64(~g) & 7) != 0;
}

static unsigned t_n_v4(uint64_t g, uint32_t i) {
        return (unsigned) ((t_mix(g, i) >> 8) % (T_ADDRS + 1));
}

static unsigned t_n_v6(uint64_t g, uint32_t i) {
        return (unsigned) ((t_mix(g, i) >> 16) % (T_ADDRS + 1));
}

static uint32_t t_ttl(uint64_t g, uint32_t i) {
        return (uint32_t) (t_mix(g, i) >> 32);
}

static bool t_online(uint64_t g, uint32_t i) {
        return t_mix(g, i) & 1;
}

/* Writes "p<i>" or "P<i>"; returns the length. */
static size_t t_name(uint64_t g, uint32_t i, char out[T_NAME_MAX]) {
        char digits[T_NAME_MAX];
        size_t n = 0, len = 0;
        out[len++] = (t_mix(g, i) & 2) ? 'P' : 'p';
        do
                digits[n++] = (char) ('0' + i % 10);
        while ((i /= 10) > 0);
        while (n > 0)
                out[len++] = digits[--n];
        out[len] = 0;
        return len;
}

static void t_v4(uint32_t i, unsigned k, uint8_t out[4]) {
        uint32_t a = 0x64400000u | ((i << 2) + k); /* 100.64.0.0/10, i < 2^20 */
        out[0] = (uint8_t) (a >> 24);
        out[1] = (uint8_t) (a >> 16);
        out[2] = (uint8_t) (a >> 8);
        out[3] = (uint8_t) a;
}

static void t_v6(uint64_t g, uint32_t i, unsigned k, uint8_t out[16]) {
        static const uint8_t prefix[6] = { 0xfd, 0x7a, 0x11, 0x5c, 0xa1, 0xe0 };
        memcpy(out, prefix, sizeof(prefix));
        for (unsigned b = 0; b < 4; b++) {
                out[6 + b] = (uint8_t) (g >> (24 - 8 * b));
                out[10 + b] = (uint8_t) (i >> (24 - 8 * b));
        }
        out[14] = (uint8_t) k;
        out[15] = (uint8_t) (t_mix(g, i) >> (40 + 8 * k));
}

static TortureMap *t_map_new(uint32_t capacity) {
        TortureMap *m = calloc(1, sizeof(*m));
        if (!m)
                return NULL;
        m->capacity = capacity;
        m->peers = calloc(capacity, sizeof(*m->peers));
        m->names = calloc(capacity, sizeof(*m->names));
        m->v4 = calloc((size_t) capacity * T_ADDRS, sizeof(*m->v4));
        m->v6 = calloc((size_t) capacity * T_ADDRS, sizeof(*m->v6));
        if (!m->peers || !m->names || !m->v4 || !m->v6)
                return NULL; /* a test process: the exit frees it */
        m->ranges[0] = (ShmPrefix) { .family = AF_INET, .prefixlen = 10, .addr.in.s_addr = htonl(0x64400000u) };
        m->ranges[1] = (ShmPrefix) { .family = AF_INET6, .prefixlen = 48 };
        t_v6(0, 0, 0, m->ranges[1].addr.in6.s6_addr);
        memset(m->ranges[1].addr.in6.s6_addr + 6, 0, 10);
        return m;
}

static void t_map_free(TortureMap *m) {
        if (!m)
                return;
        free(m->peers);
        free(m->names);
        free(m->v4);
        free(m->v6);
        free(m);
}

/* Fills `m` with generation g's map of n peers. */
static void t_build_n(TortureMap *m, uint64_t g, uint32_t n) {
        if (n > m->capacity)
                abort();
        for (uint32_t i = 0; i < n; i++) {
                ShmPeer *p = &m->peers[i];
                struct in_addr *v4 = m->v4 + (size_t) i * T_ADDRS;
                struct in6_addr *v6 = m->v6 + (size_t) i * T_ADDRS;
                t_name(g, i, m->names[i]);
                *p = (ShmPeer) { .name = m->names[i], .ttl = t_ttl(g, i), .online = t_online(g, i),
                                 .n_v4 = t_n_v4(g, i), .v4 = v4, .n_v6 = t_n_v6(g, i), .v6 = v6 };
                for (unsigned k = 0; k < p->n_v4; k++)
                        t_v4(i, k, (uint8_t *) &v4[k]);
                for (unsigned k = 0; k < p->n_v6; k++)
                        t_v6(g, i, k, v6[k].s6_addr);
        }
        m->map = (ShmMap) { .domain = T_DOMAIN, .n_ranges = 2, .ranges = m->ranges, .n_peers = n, .peers = m->peers };
}

static void t_build(TortureMap *m, uint64_t g, uint32_t ramp) {
        t_build_n(m, g, t_peers(g, ramp));
}

static ino_t inode_of(const char *path) {
        struct stat st;
        ck_assert_int_eq(stat(path, &st), 0);
        return st.st_ino;
}

static off_t size_of(const char *path) {
        struct stat st;
        ck_assert_int_eq(stat(path, &st), 0);
        return st.st_size;
}

/* A test's own read-only view of one store file's header, kept across the
 * file being replaced. */
typedef struct HeaderView {
        const ShmWireHeader *h;
        size_t len;
} HeaderView;

static HeaderView header_view(const char *path) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        HeaderView v = { .len = sizeof(ShmWireHeader) };
        void *p = mmap(NULL, v.len, PROT_READ, MAP_SHARED, fd, 0);
        ck_assert(p != MAP_FAILED);
        close(fd);
        v.h = p;
        return v;
}

static void header_view_done(HeaderView *v) {
        munmap((void *) v->h, v->len);
}

static uint32_t retired(const HeaderView *v) {
        return __atomic_load_n(&v->h->retired, __ATOMIC_ACQUIRE);
}

/* ---- 2. takeover ---- */

START_TEST(test_takeover) {
        static BasicMap b;
        static Answer a;
        ShmWriter *w2 = NULL;
        basic_map_init(&b);
        TortureMap *m = t_map_new(100);
        ck_assert_ptr_nonnull(m);

        ShmWriter *w = writer_open();
        for (unsigned i = 0; i < 3; i++)
                ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        ShmReader *r = reader_new();
        ck_assert_int_eq(class_of(r, "win-a", "Win-A"), SHM_FOUND);
        ino_t ino = inode_of(store);

        /* One writer at a time, even within one process. */
        ck_assert_int_eq(shm_writer_open(store, &w2), -EBUSY);
        ck_assert_ptr_null(w2);
        w = shm_writer_close(w);

        /* The file outlives its writer: lookups go on from the last map. */
        ck_assert_int_eq(lookup_name(r, "Win-A.yourorg.zt.net", &a), 0);
        check_win_a(&a);
        ck_assert_uint_eq(a.generation, 3);

        w2 = writer_open();
        ck_assert_uint_eq(shm_writer_generation(w2), 3);
        ck_assert_int_eq(shm_writer_open(store, &w), -EBUSY);
        /* Taken over but not yet published: the old map still answers, to
         * old readers and to new ones alike. */
        ck_assert_int_eq(lookup_name(r, "win-a", &a), 0);
        check_win_a(&a);
        ck_assert_uint_eq(a.generation, 3);
        ShmReader *r2 = reader_new();
        ck_assert_int_eq(lookup_name(r2, "win-a", &a), 0);
        check_win_a(&a);
        ck_assert_uint_eq(a.generation, 3);

        /* The first publish replaces the map; the generation goes on. */
        t_build_n(m, 4, 50);
        ck_assert_int_eq(shm_writer_publish(w2, &m->map, true), 0);
        ck_assert_uint_eq(shm_writer_generation(w2), 4);
        ck_assert_uint_eq(inode_of(store), ino); /* it fitted: rewritten in place */
        for (ShmReader *x = r; x; x = x == r ? r2 : NULL) {
                ck_assert_uint_eq(generation_of(x), 4);
                ck_assert_int_eq(class_of(x, "win-a", NULL), SHM_NOT_OURS);
                ck_assert_int_eq(class_of(x, "win-a.torture.zt.net", NULL), SHM_UNKNOWN);
                ck_assert_int_eq(class_of(x, "p49.torture.zt.net", NULL), SHM_FOUND);
                ck_assert_int_eq(class_of(x, "p50", NULL), SHM_NOT_OURS);
        }
        ck_assert_int_eq(shm_writer_set_state(w2, false), 0);
        ck_assert_uint_eq(generation_of(r), 5);

        /* A third writer after a clean close continues from there too. */
        w2 = shm_writer_close(w2);
        w = writer_open();
        ck_assert_uint_eq(shm_writer_generation(w), 5);
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        ck_assert_uint_eq(generation_of(r2), 6);
        ck_assert_int_eq(class_of(r2, "win-a", "Win-A"), SHM_FOUND);
        shm_writer_close(w);
        shm_reader_free(r);
        shm_reader_free(r2);
        t_map_free(m);
}
END_TEST

/* ---- 3. growth ---- */

START_TEST(test_growth) {
        /* Each step far past the last file's capacity (its used bytes plus
         * an eighth plus 4 KiB), so each one must grow; 0 ends a round. */
        static const uint32_t rounds[][5] = {
                { 10, 100000 },
                { 10, 1000, 10000, 100000 },
                { 10, 1000, 10000, 100000 },
        };
        TortureMap *m = t_map_new(100000);
        ck_assert_ptr_nonnull(m);

        /* Rounds on fresh stores, so that each one grows from small again. */
        for (unsigned round = 0; round < ELEMENTSOF(rounds); round++) {
                const uint32_t *sizes = rounds[round];
                char name[32];
                snprintf(name, sizeof(name), "records.%u", round);
                path_in_dir(store, sizeof(store), name);
                ShmWriter *w = writer_open();
                t_build_n(m, 1, sizes[0]);
                ck_assert_int_eq(shm_writer_publish(w, &m->map, true), 0);
                ShmReader *r = reader_new();
                ck_assert_int_eq(class_of(r, "p9", NULL), SHM_FOUND);

                for (size_t k = 1; k < ELEMENTSOF(rounds[0]) && sizes[k]; k++) {
                        uint64_t g = shm_writer_generation(w) + 1;
                        char last[T_NAME_MAX], past[T_NAME_MAX];
                        ino_t ino = inode_of(store);
                        off_t size = size_of(store);
                        HeaderView old = header_view(store);
                        ck_assert_uint_eq(retired(&old), 0);

                        /* A lookup in progress over the growth: the old
                         * file stays mapped and intact (no SIGBUS, no torn
                         * read), so it ends consistent. */
                        ShmSnapshot s;
                        ShmRecordView v;
                        ck_assert_int_eq(shm_snapshot_begin(r, &s), 0);
                        ck_assert_uint_eq(s.generation, g - 1);

                        t_build_n(m, g, sizes[k]);
                        ck_assert_int_eq(shm_writer_publish(w, &m->map, true), 0);
                        ck_assert_uint_eq(shm_writer_generation(w), g);

                        t_name(g - 1, sizes[0] - 1, last);
                        ck_assert_int_eq(shm_snapshot_lookup_name(&s, last, &v), SHM_FOUND);
                        ck_assert_str_eq(v.name, last);
                        ck_assert(shm_snapshot_end(&s));

                        /* Replaced by rename, the old header retired. */
                        ck_assert_uint_ne(inode_of(store), ino);
                        ck_assert_int_gt(size_of(store), size);
                        ck_assert_uint_eq((uint64_t) size_of(store), shm_writer_file_size(w));
                        ck_assert_uint_eq(retired(&old), 1);
                        header_view_done(&old);

                        /* The same reader moves over by itself. */
                        t_name(g, sizes[k] - 1, last);
                        snprintf(past, sizeof(past), "p%" PRIu32, sizes[k]);
                        ck_assert_uint_eq(generation_of(r), g);
                        ck_assert_int_eq(class_of(r, last, last), SHM_FOUND);
                        ck_assert_int_eq(class_of(r, past, NULL), SHM_NOT_OURS);
                        uint8_t a4[4];
                        char text[INET_ADDRSTRLEN];
                        t_v4(sizes[k] - 1, 0, a4);
                        inet_ntop(AF_INET, a4, text, sizeof(text));
                        ck_assert_int_eq(class_of_addr(r, AF_INET, text, NULL),
                                         t_n_v4(g, sizes[k] - 1) ? SHM_FOUND : SHM_UNKNOWN);

                        /* Back to small: the big file is reused in place. */
                        ino = inode_of(store);
                        t_build_n(m, g + 1, sizes[0]);
                        ck_assert_int_eq(shm_writer_publish(w, &m->map, true), 0);
                        ck_assert_uint_eq(inode_of(store), ino);
                        ck_assert_int_eq(class_of(r, "p10", NULL), SHM_NOT_OURS);
                        ck_assert_int_eq(class_of(r, "p9", NULL), SHM_FOUND);
                        ck_assert_uint_eq(generation_of(r), g + 1);
                }
                shm_writer_close(w);
                shm_reader_free(r);
        }
        t_map_free(m);
}
END_TEST

/* ---- 4. torture: reader threads check every answer while the writer
 * republishes as fast as it can ---- */

enum {
        T_SHORT,
        T_FQDN,
        T_REV4,
        T_REV6,
        T_KINDS,
};

typedef struct Torture {
        ShmReader *reader; /* one for all threads, like the NSS module's */
        uint32_t ramp;
        uint64_t target; /* lookups over all threads; 0: until told to stop */
        uint64_t total;  /* atomic */
        int stop;        /* atomic */
} Torture;

typedef struct TReader {
        pthread_t thread;
        Torture *t;
        uint64_t rng;
        uint64_t lookups, found, retries, giveups, errors, inconsistent;
        uint64_t last_gen, gen_changes;
        char problem[200]; /* the first inconsistency or error */
} TReader;

/* An answer copied out of the store before shm_snapshot_end(). */
typedef struct TAnswer {
        ShmClass cls;
        bool down;
        char name[SHM_LABEL_MAX + 1];
        size_t name_len;
        uint32_t ttl;
        bool online;
        size_t n_v4, n_v6;
        uint8_t v4[T_ADDRS][4];
        uint8_t v6[T_ADDRS][16];
} TAnswer;

static uint64_t rng_next(uint64_t *x) {
        /* xorshift64* */
        *x ^= *x >> 12;
        *x ^= *x << 25;
        *x ^= *x >> 27;
        return *x * UINT64_C(0x2545f4914f6cdd1d);
}

/* The query for peer i: any mix of case, sometimes a final dot. */
static void t_query(uint32_t i, bool fqdn, uint64_t bits, char *out, size_t size) {
        char name[T_NAME_MAX];
        t_name(0, i, name);
        int n = snprintf(out, size, "%s%s%s", name, fqdn ? "." T_DOMAIN : "", (bits & 1) ? "." : "");
        for (int k = 0; k < n; k++)
                if ((bits >> (k % 60 + 1)) & 1)
                        out[k] = (char) (out[k] >= 'a' && out[k] <= 'z' ? out[k] - 32 : out[k]);
}

/* NULL when `a` is what generation g published for the query, else why not. */
static const char *t_verify(uint64_t g, uint32_t ramp, unsigned kind, uint32_t i, unsigned k, const TAnswer *a) {
        bool present = i < t_peers(g, ramp);
        if (present && kind == T_REV4)
                present = k < t_n_v4(g, i);
        if (present && kind == T_REV6)
                present = k < t_n_v6(g, i);
        if (a->down != !t_up(g))
                return "up/down is not this generation's";
        if (!present)
                return a->cls == (kind == T_SHORT ? SHM_NOT_OURS : SHM_UNKNOWN) ? NULL : "wrong class for a missing peer";
        if (a->cls != SHM_FOUND)
                return "a published peer not found";

        char want[T_NAME_MAX];
        size_t len = t_name(g, i, want);
        if (a->name_len != len || memcmp(a->name, want, len) != 0)
                return "another name";
        if (a->ttl != t_ttl(g, i) || a->online != t_online(g, i))
                return "TTL or online flag of another generation";
        if (a->n_v4 != t_n_v4(g, i) || a->n_v6 != t_n_v6(g, i))
                return "address count of another generation";
        for (unsigned x = 0; x < a->n_v4; x++) {
                uint8_t v4[4];
                t_v4(i, x, v4);
                if (memcmp(a->v4[x], v4, 4) != 0)
                        return "another IPv4 address";
        }
        for (unsigned x = 0; x < a->n_v6; x++) {
                uint8_t v6[16];
                t_v6(g, i, x, v6);
                if (memcmp(a->v6[x], v6, 16) != 0)
                        return "another IPv6 address";
        }
        return NULL;
}

static void t_problem(TReader *tr, const char *what, uint64_t g, unsigned kind, uint32_t i, unsigned k) {
        if (tr->problem[0])
                return;
        snprintf(tr->problem, sizeof(tr->problem), "%s (generation %" PRIu64 ", query kind %u, peer %" PRIu32
                 ", address %u)", what, g, kind, i, k);
}

static void t_lookup_once(TReader *tr) {
        Torture *t = tr->t;
        uint64_t x = rng_next(&tr->rng), y = rng_next(&tr->rng);
        unsigned kind = (unsigned) ((x >> 32) % T_KINDS), k = (unsigned) ((x >> 40) % (T_ADDRS + 1));
        ShmSnapshot s;
        ShmRecordView v;
        ShmClass cls;
        TAnswer a;

        int e = shm_snapshot_begin(t->reader, &s);
        if (e == -EAGAIN) {
                tr->giveups++;
                return;
        }
        if (e < 0) {
                tr->errors++;
                t_problem(tr, strerror(-e), 0, kind, 0, k);
                return;
        }
        /* Mostly peers of the map this snapshot claims, some just past it
         * (the claim itself is what end() then confirms or refutes). */
        uint64_t g = s.generation;
        uint32_t n = t_peers(g, t->ramp);
        uint32_t i = (uint32_t) (x % (n + n / 8 + 1));
        if (kind == T_SHORT || kind == T_FQDN) {
                char q[T_NAME_MAX + sizeof(T_DOMAIN) + 2];
                t_query(i, kind == T_FQDN, y, q, sizeof(q));
                cls = shm_snapshot_lookup_name(&s, q, &v);
        } else if (kind == T_REV4) {
                uint8_t addr[4];
                t_v4(i, k, addr);
                cls = shm_snapshot_lookup_addr(&s, AF_INET, addr, &v);
        } else {
                uint8_t addr[16];
                t_v6(g, i, k, addr);
                cls = shm_snapshot_lookup_addr(&s, AF_INET6, addr, &v);
        }
        a.cls = cls;
        a.down = shm_snapshot_down(&s);
        if (cls == SHM_FOUND) {
                a.name_len = v.name_len;
                memcpy(a.name, v.name, v.name_len <= SHM_LABEL_MAX ? v.name_len : SHM_LABEL_MAX);
                a.ttl = v.ttl;
                a.online = v.online;
                a.n_v4 = v.n_v4;
                a.n_v6 = v.n_v6;
                memcpy(a.v4, v.v4, (v.n_v4 < T_ADDRS ? v.n_v4 : T_ADDRS) * 4);
                memcpy(a.v6, v.v6, (v.n_v6 < T_ADDRS ? v.n_v6 : T_ADDRS) * 16);
        }
        if (!shm_snapshot_end(&s)) {
                tr->retries++; /* torn: thrown away, as the NSS module does */
                return;
        }

        tr->lookups++;
        tr->found += cls == SHM_FOUND;
        if (g < tr->last_gen) {
                tr->inconsistent++;
                t_problem(tr, "the generation went backwards", g, kind, i, k);
        } else if (g > tr->last_gen) {
                tr->gen_changes++;
                tr->last_gen = g;
        }
        const char *bad = t_verify(g, t->ramp, kind, i, k, &a);
        if (bad) {
                tr->inconsistent++;
                t_problem(tr, bad, g, kind, i, k);
        }
}

static void *t_reader_main(void *arg) {
        TReader *tr = arg;
        Torture *t = tr->t;
        while (!__atomic_load_n(&t->stop, __ATOMIC_RELAXED)) {
                uint64_t before = tr->lookups;
                for (unsigned n = 0; n < 512; n++)
                        t_lookup_once(tr);
                uint64_t total = __atomic_add_fetch(&t->total, tr->lookups - before, __ATOMIC_RELAXED);
                if (t->target && total >= t->target)
                        __atomic_store_n(&t->stop, 1, __ATOMIC_RELAXED);
        }
        return NULL;
}

static void t_readers_start(Torture *t, TReader *readers, unsigned n) {
        uint64_t seed;
        ck_assert_int_eq(getrandom(&seed, sizeof(seed), 0), sizeof(seed));
        for (unsigned i = 0; i < n; i++) {
                readers[i] = (TReader) { .t = t, .rng = mix64(seed + i) | 1 };
                ck_assert_int_eq(pthread_create(&readers[i].thread, NULL, t_reader_main, &readers[i]), 0);
        }
}

/* Joins the readers and adds up their counts into `sum`. */
static void t_readers_join(TReader *readers, unsigned n, TReader *sum) {
        *sum = (TReader) {};
        for (unsigned i = 0; i < n; i++) {
                TReader *tr = &readers[i];
                ck_assert_int_eq(pthread_join(tr->thread, NULL), 0);
                sum->lookups += tr->lookups;
                sum->found += tr->found;
                sum->retries += tr->retries;
                sum->giveups += tr->giveups;
                sum->errors += tr->errors;
                sum->inconsistent += tr->inconsistent;
                sum->gen_changes += tr->gen_changes;
                if (!sum->problem[0] && tr->problem[0])
                        memcpy(sum->problem, tr->problem, sizeof(sum->problem));
                if (tr->gen_changes < 2)
                        ck_abort_msg("a reader saw only %" PRIu64 " generation(s)", tr->gen_changes);
        }
}

typedef struct TWriter {
        pthread_t thread;
        Torture *t;
        ShmWriter *w;
        TortureMap *m;
        uint64_t publishes, growths;
        int error;
} TWriter;

static void *t_writer_main(void *arg) {
        TWriter *tw = arg;
        while (!__atomic_load_n(&tw->t->stop, __ATOMIC_RELAXED)) {
                uint64_t g = shm_writer_generation(tw->w) + 1, size = shm_writer_file_size(tw->w);
                t_build(tw->m, g, tw->t->ramp);
                int e = shm_writer_publish(tw->w, &tw->m->map, t_up(g));
                if (e < 0 || shm_writer_generation(tw->w) != g) {
                        tw->error = e < 0 ? e : -EPROTO;
                        __atomic_store_n(&tw->t->stop, 1, __ATOMIC_RELAXED);
                        break;
                }
                tw->publishes++;
                tw->growths += shm_writer_file_size(tw->w) != size;
        }
        return NULL;
}

static double now_sec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

#define TORTURE_READERS 3u
#define TORTURE_LOOKUPS UINT64_C(10000000)
#define TORTURE_RAMP 4u /* the cap reaches T_PEERS_MAX after ~5,000 publishes */

START_TEST(test_torture) {
        static TReader readers[TORTURE_READERS];
        Torture t = { .ramp = TORTURE_RAMP, .target = TORTURE_LOOKUPS };
        TWriter tw = { .t = &t, .m = t_map_new(T_PEERS_MAX) };
        TReader sum;
        ck_assert_ptr_nonnull(tw.m);

        tw.w = writer_open();
        t_build(tw.m, 1, t.ramp);
        ck_assert_int_eq(shm_writer_publish(tw.w, &tw.m->map, t_up(1)), 0);
        uint64_t first_size = shm_writer_file_size(tw.w);
        t.reader = reader_new();

        double start = now_sec();
        t_readers_start(&t, readers, TORTURE_READERS);
        ck_assert_int_eq(pthread_create(&tw.thread, NULL, t_writer_main, &tw), 0);
        t_readers_join(readers, TORTURE_READERS, &sum);
        __atomic_store_n(&t.stop, 1, __ATOMIC_RELAXED);
        ck_assert_int_eq(pthread_join(tw.thread, NULL), 0);
        double secs = now_sec() - start;

        printf("torture: %" PRIu64 " lookups (%" PRIu64 " found) by %u threads, %" PRIu64 " retries, %" PRIu64
               " give-ups, %" PRIu64 " errors, %" PRIu64 " inconsistent; %" PRIu64 " publishes, %" PRIu64
               " growths (%" PRIu64 " -> %" PRIu64 " bytes), %" PRIu64 " generation changes seen; %.1f s\n",
               sum.lookups, sum.found, TORTURE_READERS, sum.retries, sum.giveups, sum.errors, sum.inconsistent,
               tw.publishes, tw.growths, first_size, shm_writer_file_size(tw.w), sum.gen_changes, secs);
        fflush(stdout);
        ck_assert_msg(tw.error == 0, "publish failed: %s", strerror(-tw.error));
        ck_assert_msg(sum.inconsistent == 0 && sum.errors == 0, "%s", sum.problem);
        ck_assert_uint_ge(sum.lookups, TORTURE_LOOKUPS);
        ck_assert_uint_ge(tw.publishes, 100);
        ck_assert_uint_ge(tw.growths, 3); /* the file was replaced under the readers */
        shm_reader_free(t.reader);
        shm_writer_close(tw.w);
        t_map_free(tw.m);
}
END_TEST

/* ---- 5. writers killed at random moments ----
 *
 * The writers are children of a supervisor process forked before any
 * reader thread exists, so no process forks while it has threads. Each
 * writer takes the store over (the kernel drops the dead one's lock) and
 * republishes as fast as it can until SIGKILL, 0-20 ms after it started;
 * map sizes rise with the generation, so many kills land during growth.
 * The test process's reader threads check every answer throughout. */

#define KILLS 150u
#define KILL_DELAY_USEC 20000u
#define KILL_RAMP 16u

typedef struct KillReport {
        uint32_t kills;
        int failure; /* 0, else what went wrong in the supervisor */
        uint64_t final_generation;
        uint64_t delay_usec;
} KillReport;

static _Noreturn void kill_writer_main(uint32_t ramp) {
        ShmWriter *w;
        TortureMap *m = t_map_new(T_PEERS_MAX);
        if (!m || shm_writer_open(store, &w) < 0)
                _exit(2);
        for (;;) {
                uint64_t g = shm_writer_generation(w) + 1;
                t_build(m, g, ramp);
                if (shm_writer_publish(w, &m->map, t_up(g)) < 0 || shm_writer_generation(w) != g)
                        _exit(3);
        }
}

static _Noreturn void kill_supervisor_main(unsigned kills, uint32_t ramp, int fd) {
        KillReport rep = {};
        uint64_t rng;
        if (getrandom(&rng, sizeof(rng), 0) != sizeof(rng))
                rng = (uint64_t) getpid();
        rng |= 1;

        for (unsigned n = 0; n < kills && !rep.failure; n++) {
                pid_t pid = fork();
                if (pid < 0) {
                        rep.failure = 1;
                        break;
                }
                if (pid == 0)
                        kill_writer_main(ramp);
                uint64_t delay = rng_next(&rng) % (KILL_DELAY_USEC + 1);
                struct timespec ts = { .tv_sec = 0, .tv_nsec = (long) delay * 1000 };
                int st;
                (void) nanosleep(&ts, NULL);
                if (kill(pid, SIGKILL) < 0 || waitpid(pid, &st, 0) != pid)
                        rep.failure = 2;
                else if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
                        rep.failure = 100 + (WIFEXITED(st) ? WEXITSTATUS(st) : 99); /* died on its own */
                else
                        rep.kills++;
                rep.delay_usec += delay;
        }

        /* A last writer that finishes: every reader must end up on its map. */
        ShmWriter *w;
        TortureMap *m = t_map_new(T_PEERS_MAX);
        if (!rep.failure && (!m || shm_writer_open(store, &w) < 0))
                rep.failure = 3;
        if (!rep.failure) {
                uint64_t g = shm_writer_generation(w) + 1;
                t_build(m, g, ramp);
                if (shm_writer_publish(w, &m->map, t_up(g)) < 0)
                        rep.failure = 4;
                rep.final_generation = shm_writer_generation(w);
                shm_writer_close(w);
        }
        if (write(fd, &rep, sizeof(rep)) != sizeof(rep))
                _exit(1);
        _exit(0);
}

/* Temporary files a writer left in the store's directory. */
static unsigned temp_files(void) {
        char pattern[PATH_MAX];
        unsigned n = 0;
        path_in_dir(pattern, sizeof(pattern), "records.");
        const char *base = strrchr(pattern, '/') + 1;
        DIR *d = opendir(test_dir);
        ck_assert_ptr_nonnull(d);
        for (struct dirent *de; (de = readdir(d));)
                if (strncmp(de->d_name, base, strlen(base)) == 0 && strcmp(de->d_name, "records.lock") != 0)
                        n++;
        closedir(d);
        return n;
}

START_TEST(test_kill_writer) {
        static TReader readers[TORTURE_READERS];
        Torture t = { .ramp = KILL_RAMP };
        TortureMap *m = t_map_new(T_PEERS_MAX);
        KillReport rep;
        TReader sum;
        int fds[2], st;
        ck_assert_ptr_nonnull(m);

        ShmWriter *w = writer_open();
        t_build(m, 1, t.ramp);
        ck_assert_int_eq(shm_writer_publish(w, &m->map, t_up(1)), 0);
        shm_writer_close(w);
        t_map_free(m);

        ck_assert_int_eq(pipe2(fds, O_CLOEXEC), 0);
        double start = now_sec();
        pid_t sup = fork();
        ck_assert_int_ge(sup, 0);
        if (sup == 0) {
                close(fds[0]);
                kill_supervisor_main(KILLS, t.ramp, fds[1]);
        }
        close(fds[1]);

        t.reader = reader_new();
        t_readers_start(&t, readers, TORTURE_READERS);
        ssize_t n = read(fds[0], &rep, sizeof(rep));
        __atomic_store_n(&t.stop, 1, __ATOMIC_RELAXED);
        t_readers_join(readers, TORTURE_READERS, &sum);
        double secs = now_sec() - start;
        close(fds[0]);
        ck_assert_int_eq(waitpid(sup, &st, 0), sup);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        ck_assert_int_eq(n, sizeof(rep));

        /* After the last, clean writer: the readers' shared reader is on
         * its map, not stranded on an older file. */
        uint64_t g = generation_of(t.reader);
        unsigned temps = temp_files();
        printf("kill: %" PRIu32 " writers killed (mean delay %.1f ms), final generation %" PRIu64 "; %" PRIu64
               " lookups (%" PRIu64 " found) by %u threads, %" PRIu64 " retries, %" PRIu64 " give-ups, %" PRIu64
               " errors, %" PRIu64 " inconsistent, %" PRIu64 " generation changes seen; %u temporary files left; "
               "%.1f s\n",
               rep.kills, rep.kills ? (double) rep.delay_usec / rep.kills / 1000 : 0.0, rep.final_generation,
               sum.lookups, sum.found, TORTURE_READERS, sum.retries, sum.giveups, sum.errors, sum.inconsistent,
               sum.gen_changes, temps, secs);
        fflush(stdout);
        ck_assert_msg(rep.failure == 0, "supervisor failure %d", rep.failure);
        ck_assert_uint_ge(rep.kills, 100);
        ck_assert_msg(sum.inconsistent == 0 && sum.errors == 0, "%s", sum.problem);
        ck_assert_uint_gt(sum.lookups, 100000);
        ck_assert_uint_eq(g, rep.final_generation);
        ck_assert_int_eq(class_of(t.reader, "p0", NULL), SHM_FOUND);
        shm_reader_free(t.reader);
}
END_TEST

/* ---- 5b. a writer killed exactly at the rename of a growth ---- */

static bool is_rename(uint64_t nr) {
#ifdef SYS_rename
        if (nr == SYS_rename)
                return true;
#endif
        return nr == SYS_renameat || nr == SYS_renameat2;
}

/* Publishes `map` from a traced child writer and kills the child with
 * SIGKILL as it enters (after == false) or leaves (after == true) the
 * rename(2) of a growth. */
static void publish_killed_at_rename(const ShmMap *map, bool after) {
        int st, sig = 0;
        bool in_rename = false;
        pid_t pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                ShmWriter *w;
                if (ptrace(PTRACE_TRACEME, 0, NULL, NULL) < 0 || raise(SIGSTOP) != 0 ||
                    shm_writer_open(store, &w) < 0)
                        _exit(2);
                (void) shm_writer_publish(w, map, true);
                _exit(3);
        }
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert(WIFSTOPPED(st) && WSTOPSIG(st) == SIGSTOP);
        ck_assert_int_eq(ptrace(PTRACE_SETOPTIONS, pid, NULL, (void *) (PTRACE_O_TRACESYSGOOD | PTRACE_O_EXITKILL)),
                         0);
        for (;;) {
                ck_assert_int_eq(ptrace(PTRACE_SYSCALL, pid, NULL, (void *) (long) sig), 0);
                ck_assert_int_eq(waitpid(pid, &st, 0), pid);
                ck_assert_msg(WIFSTOPPED(st), "the writer ended (status %#x) before its rename", (unsigned) st);
                sig = 0;
                if (WSTOPSIG(st) != (SIGTRAP | 0x80)) {
                        sig = WSTOPSIG(st); /* a signal of its own: pass it on */
                        continue;
                }
                struct __ptrace_syscall_info info;
                ck_assert_int_gt(ptrace(PTRACE_GET_SYSCALL_INFO, pid, (void *) sizeof(info), &info), 0);
                if (info.op == PTRACE_SYSCALL_INFO_ENTRY) {
                        in_rename = is_rename(info.entry.nr);
                        if (in_rename && !after)
                                break;
                } else if (info.op == PTRACE_SYSCALL_INFO_EXIT && in_rename) {
                        ck_assert_int_eq(info.exit.rval, 0);
                        break;
                }
        }
        ck_assert_int_eq(kill(pid, SIGKILL), 0);
        ck_assert_int_eq(waitpid(pid, &st, 0), pid);
        ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
}

START_TEST(test_killed_after_rename) {
        static BasicMap b;
        basic_map_init(&b);
        TortureMap *m = t_map_new(5000);
        ck_assert_ptr_nonnull(m);
        ShmWriter *w = writer_open();
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        w = shm_writer_close(w);
        ShmReader *r = reader_new();
        ck_assert_int_eq(class_of(r, "win-a", "Win-A"), SHM_FOUND); /* the old file is mapped */
        ino_t ino = inode_of(store);

        t_build_n(m, 2, 5000);
        publish_killed_at_rename(&m->map, true);
        ck_assert_uint_ne(inode_of(store), ino);

        /* The new file is in place though its writer never came back:
         * readers must move to it, now and after the next writer. */
        ck_assert_uint_eq(generation_of(r), 2);
        ck_assert_int_eq(class_of(r, "p4999", NULL), SHM_FOUND);
        ck_assert_int_eq(class_of(r, "win-a", NULL), SHM_NOT_OURS);
        w = writer_open();
        ck_assert_uint_eq(shm_writer_generation(w), 2);
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        ck_assert_uint_eq(generation_of(r), 3);
        ck_assert_int_eq(class_of(r, "win-a", "Win-A"), SHM_FOUND);
        ck_assert_uint_eq(temp_files(), 0);
        shm_writer_close(w);
        shm_reader_free(r);
        t_map_free(m);
}
END_TEST

START_TEST(test_killed_before_rename) {
        static BasicMap b;
        basic_map_init(&b);
        TortureMap *m = t_map_new(5000);
        ck_assert_ptr_nonnull(m);
        ShmWriter *w = writer_open();
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        w = shm_writer_close(w);
        ShmReader *r = reader_new();
        ck_assert_int_eq(class_of(r, "win-a", "Win-A"), SHM_FOUND);
        ino_t ino = inode_of(store);

        t_build_n(m, 2, 5000);
        publish_killed_at_rename(&m->map, false);
        ck_assert_uint_eq(inode_of(store), ino);

        /* The old map goes on answering, to old and new readers. */
        ShmReader *r2 = reader_new();
        for (unsigned i = 0; i < 3; i++) {
                ck_assert_uint_eq(generation_of(r), 1);
                ck_assert_int_eq(class_of(r, "win-a", "Win-A"), SHM_FOUND);
                ck_assert_int_eq(class_of(r2, "win-a.yourorg.zt.net", "Win-A"), SHM_FOUND);
        }
        /* The next writer takes it over: the generation goes on, and its
         * growth reaches the readers. */
        w = writer_open();
        ck_assert_uint_eq(shm_writer_generation(w), 1);
        ck_assert_int_eq(shm_writer_publish(w, &m->map, true), 0);
        ck_assert_uint_eq(shm_writer_generation(w), 2);
        ck_assert_uint_ne(inode_of(store), ino);
        ck_assert_uint_eq(generation_of(r), 2);
        ck_assert_uint_eq(generation_of(r2), 2);
        ck_assert_int_eq(class_of(r, "p4999", NULL), SHM_FOUND);
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        ck_assert_int_eq(class_of(r2, "win-a", "Win-A"), SHM_FOUND);
        ck_assert_uint_eq(generation_of(r2), 3);
        shm_writer_close(w);
        shm_reader_free(r);
        shm_reader_free(r2);
        t_map_free(m);
}
END_TEST

/* ---- 6. hostile stores: an error or a miss, never a crash or a hang ---- */

/* A valid store of the basic map at `path`, published twice so that the
 * latch has moved (seq 1: readers use copy 1) and both copies are full. */
static void store_write_valid(const char *path) {
        static BasicMap b;
        ShmWriter *w = NULL;
        basic_map_init(&b);
        ck_assert_int_eq(shm_writer_open(path, &w), 0);
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        shm_writer_close(w);
}

/* Renames a fresh valid store over `store`, as a writer's growth would;
 * `retire` marks the replaced file retired, as the writer does. */
static void store_replace_valid(bool retire) {
        char fresh[PATH_MAX], lock[PATH_MAX];
        path_in_dir(fresh, sizeof(fresh), "fresh");
        path_in_dir(lock, sizeof(lock), "fresh.lock");
        store_write_valid(fresh);
        ck_assert_int_eq(unlink(lock), 0);
        int fd = retire ? open(store, O_RDWR | O_CLOEXEC) : -1;
        ck_assert_int_eq(rename(fresh, store), 0);
        if (retire) {
                ck_assert_int_ge(fd, 0);
                ShmWireHeader *h = mmap(NULL, sizeof(*h), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
                ck_assert(h != MAP_FAILED);
                __atomic_store_n(&h->retired, 1, __ATOMIC_RELEASE);
                munmap(h, sizeof(*h));
                close(fd);
        }
}

/* The store's bytes, writable, through a mapping of the test's own. */
typedef struct StoreBytes {
        uint8_t *p;
        size_t len;
        ShmWireHeader *h;
} StoreBytes;

static StoreBytes store_bytes(void) {
        int fd = open(store, O_RDWR | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        StoreBytes b = { .len = (size_t) size_of(store) };
        b.p = mmap(NULL, b.len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ck_assert(b.p != MAP_FAILED);
        close(fd);
        b.h = (ShmWireHeader *) b.p;
        return b;
}

static uint8_t *region_of(StoreBytes *b, unsigned i) {
        return b->p + b->h->region_off[i];
}

static uint32_t *index_of(StoreBytes *b, unsigned i) {
        return (uint32_t *) (region_of(b, i) + b->h->copy[i].index_off);
}

/* Byte offset in the entries section of the peer named `name` in copy i
 * (the writer wrote it: trusted). */
static uint32_t entry_off(StoreBytes *b, unsigned i, const char *name) {
        const ShmWireCopy *c = &b->h->copy[i];
        for (uint32_t k = 0; k < c->n_records; k++) {
                const ShmWireEntry *e = (const ShmWireEntry *) (region_of(b, i) + c->entries_off + index_of(b, i)[k]);
                if (strcmp(e->name, name) == 0)
                        return index_of(b, i)[k];
        }
        ck_abort_msg("no record %s", name);
}

static ShmWireEntry *entry_of(StoreBytes *b, unsigned i, const char *name) {
        return (ShmWireEntry *) (region_of(b, i) + b->h->copy[i].entries_off + entry_off(b, i, name));
}

static ShmWireSlot *name_slots_of(StoreBytes *b, unsigned i) {
        return (ShmWireSlot *) (region_of(b, i) + b->h->copy[i].name_idx_off);
}

/* The slot of `name` in copy i's name index. */
static ShmWireSlot *name_slot(StoreBytes *b, unsigned i, const char *name) {
        const ShmWireCopy *c = &b->h->copy[i];
        uint32_t ref = entry_off(b, i, name) / SHM_ENTRY_ALIGN + 1;
        for (uint32_t k = 0; k < c->name_slots; k++)
                if (name_slots_of(b, i)[k].entry == ref)
                        return &name_slots_of(b, i)[k];
        ck_abort_msg("no slot for %s", name);
}

static uint32_t name_tag(StoreBytes *b, unsigned i, const char *name) {
        return (uint32_t) (siphash13(b->h->copy[i].hash_key, name, strlen(name), 1) >> 32);
}

/* Damage done to a valid store, in the header (`copy` < 0, once) or to each
 * copy `copy` of the two. */
typedef void (*Damage)(StoreBytes *b, unsigned copy);

#define DAMAGE(fn, ...)                                             \
        static void fn(StoreBytes *b, unsigned i) {                 \
                ShmWireHeader *h = b->h;                            \
                ShmWireCopy *c = &h->copy[i];                       \
                (void) h, (void) c;                                 \
                __VA_ARGS__;                                        \
        }

/* Header: refused before anything is read through it. */
DAMAGE(d_magic, h->magic = SHM_MAGIC ^ 0xff)
DAMAGE(d_version, h->version = SHM_VERSION + 1)
DAMAGE(d_version0, h->version = 0)
DAMAGE(d_header_small, h->header_size = sizeof(ShmWireHeader) - 8)
DAMAGE(d_header_big, h->header_size = (uint32_t) b->len + 8)
DAMAGE(d_file_size_big, h->file_size = b->len + 4096)
DAMAGE(d_file_size_small, h->file_size = b->len - 8)
DAMAGE(d_region_past, h->region_off[1] = b->len + 8)
DAMAGE(d_region_huge, h->region_off[0] = UINT64_MAX - 7)
DAMAGE(d_region_in_header, h->region_off[0] = h->header_size - 8)
DAMAGE(d_region_unaligned, h->region_off[1] += 4)
DAMAGE(d_region_size, h->region_size[1] = b->len - h->region_off[1] + 8)
DAMAGE(d_region_size_huge, h->region_size[0] = UINT64_MAX)
/* A copy's descriptor: consistent but invalid, so -EBADMSG. */
DAMAGE(d_state, c->state = 0)
DAMAGE(d_state3, c->state = SHM_STATE_DOWN + 1)
DAMAGE(d_used, c->used = (uint32_t) h->region_size[i] + 8)
DAMAGE(d_records_past, c->index_off = c->used + 8)
DAMAGE(d_records_unaligned, c->index_off += 4)
DAMAGE(d_records_many, c->n_records = c->used / sizeof(uint32_t) + 1)
DAMAGE(d_records_max, c->n_records = UINT32_MAX)
DAMAGE(d_v4_past, c->entries_off = c->used + 8)
DAMAGE(d_v4_many, c->entries_len = UINT32_MAX)
DAMAGE(d_v6_many, c->entries_off += 4)
DAMAGE(d_pool_past, c->entries_len = c->used - c->entries_off + 1)
DAMAGE(d_name_idx_past, c->name_idx_off = c->used)
DAMAGE(d_name_slots, c->name_slots = UINT32_MAX)
DAMAGE(d_name_probe, c->name_max_probe = c->name_slots + 1)
DAMAGE(d_addr_probe, c->addr_max_probe = c->addr_slots + 1)
DAMAGE(d_addr_slots, c->addr_slots = c->used / sizeof(ShmWireSlot) + 1)
DAMAGE(d_ranges, c->n_ranges = SHM_RANGES_MAX + 1)
DAMAGE(d_domain_len, c->domain_len = SHM_DOMAIN_MAX + 1)
DAMAGE(d_domain_nul, c->domain_len = 3)
/* Records: the store opens, the damaged record is never an answer. */
DAMAGE(d_name_len0, entry_of(b, i, "Win-A")->name_len = 0)
DAMAGE(d_name_len64, entry_of(b, i, "Win-A")->name_len = SHM_LABEL_MAX + 1)
DAMAGE(d_name_len_short, entry_of(b, i, "Win-A")->name_len = 4)
DAMAGE(d_name_off_past, name_slot(b, i, "Win-A")->entry = c->entries_len / SHM_ENTRY_ALIGN)
DAMAGE(d_name_off_huge, name_slot(b, i, "Win-A")->entry = UINT32_MAX / SHM_ENTRY_ALIGN + 2)
DAMAGE(d_name_unterminated, {
        ShmWireEntry *e = entry_of(b, i, "Win-A");
        e->name[e->name_len] = 'x';
})
DAMAGE(d_v4_first_past, index_of(b, i)[0] = c->entries_len)
DAMAGE(d_v4_first_huge, index_of(b, i)[0] += 4)
DAMAGE(d_n_v4_past, entry_of(b, i, "Win-A")->n_v4 = UINT16_MAX)
DAMAGE(d_n_v6_past, entry_of(b, i, "Win-A")->n_v6 = (uint16_t) (c->entries_len / 16))
/* Indexes: every loop bounded, every hit re-checked. */
DAMAGE(d_names_full, {
        uint32_t tag = name_tag(b, i, "Win-A") ^ 1;
        for (uint32_t k = 0; k < c->name_slots; k++)
                name_slots_of(b, i)[k] = (ShmWireSlot) { .tag = tag, .entry = 1 };
        c->name_max_probe = c->name_slots; /* a few: within SHM_PROBE_LIMIT */
})
DAMAGE(d_addrs_full, {
        ShmWireSlot *slots = (ShmWireSlot *) (region_of(b, i) + c->addr_idx_off);
        for (uint32_t k = 0; k < c->addr_slots; k++)
                slots[k] = (ShmWireSlot) { .tag = k, .entry = index_of(b, i)[k % c->n_records] / SHM_ENTRY_ALIGN + 1 };
        c->addr_max_probe = c->addr_slots < SHM_PROBE_LIMIT ? c->addr_slots : SHM_PROBE_LIMIT;
})
DAMAGE(d_slot_other_record, name_slot(b, i, "Win-A")->entry = entry_off(b, i, "linux-b") / SHM_ENTRY_ALIGN + 1)
DAMAGE(d_slot_index_past, name_slot(b, i, "Win-A")->entry = c->entries_len / SHM_ENTRY_ALIGN + 1)
DAMAGE(d_slot_index_max, name_slot(b, i, "Win-A")->entry = UINT32_MAX)

typedef struct Hostile {
        const char *what;
        Damage damage;
        bool header; /* damage the header once, not each copy */
        int error;   /* from shm_snapshot_begin(); 0: it opens */
        ShmClass name, addr; /* when it opens: "Win-A" and 100.64.0.1 */
} Hostile;

static const Hostile hostile[] = {
        { "bad magic", d_magic, true, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "newer version", d_version, true, -EPROTONOSUPPORT, SHM_NOT_OURS, SHM_NOT_OURS },
        { "version 0", d_version0, true, -EPROTONOSUPPORT, SHM_NOT_OURS, SHM_NOT_OURS },
        { "header_size below the header", d_header_small, true, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "header_size past the file", d_header_big, true, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "file_size past the file", d_file_size_big, true, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "file_size short of the file", d_file_size_small, true, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "region past the file", d_region_past, true, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "region offset wraps", d_region_huge, true, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "region inside the header", d_region_in_header, true, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "region unaligned", d_region_unaligned, true, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "region runs past the file", d_region_size, true, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "region size huge", d_region_size_huge, true, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "state 0", d_state, false, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "state 3", d_state3, false, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "used past the region", d_used, false, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "record index past used", d_records_past, false, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "record index unaligned", d_records_unaligned, false, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "n_records past used", d_records_many, false, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "n_records UINT32_MAX", d_records_max, false, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "entries past used", d_v4_past, false, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "entries_len UINT32_MAX", d_v4_many, false, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "entries unaligned", d_v6_many, false, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "entries one past used", d_pool_past, false, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "name index past used", d_name_idx_past, false, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "name_slots huge", d_name_slots, false, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "name probe beyond the slots", d_name_probe, false, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "address probe beyond the slots", d_addr_probe, false, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "addr_slots past used", d_addr_slots, false, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "too many ranges", d_ranges, false, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "domain too long", d_domain_len, false, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "domain not terminated at its length", d_domain_nul, false, -EBADMSG, SHM_NOT_OURS, SHM_NOT_OURS },
        { "name_len 0", d_name_len0, false, 0, SHM_NOT_OURS, SHM_UNKNOWN },
        { "name_len 64", d_name_len64, false, 0, SHM_NOT_OURS, SHM_UNKNOWN },
        { "name_len short of the NUL", d_name_len_short, false, 0, SHM_NOT_OURS, SHM_UNKNOWN },
        { "name slot at the end of the entries", d_name_off_past, false, 0, SHM_NOT_OURS, SHM_FOUND },
        { "name slot offset overflowing", d_name_off_huge, false, 0, SHM_NOT_OURS, SHM_FOUND },
        { "name not NUL-terminated", d_name_unterminated, false, 0, SHM_NOT_OURS, SHM_UNKNOWN },
        { "record index entry past the entries", d_v4_first_past, false, 0, SHM_FOUND, SHM_FOUND },
        { "record index entry unaligned", d_v4_first_huge, false, 0, SHM_FOUND, SHM_FOUND },
        { "n_v4 past the entries", d_n_v4_past, false, 0, SHM_NOT_OURS, SHM_UNKNOWN },
        { "n_v6 past the entries", d_n_v6_past, false, 0, SHM_NOT_OURS, SHM_UNKNOWN },
        { "every name slot taken, no tag matches", d_names_full, false, 0, SHM_NOT_OURS, SHM_FOUND },
        { "every address slot taken, none matches", d_addrs_full, false, 0, SHM_FOUND, SHM_UNKNOWN },
        { "name slot pointing at another record", d_slot_other_record, false, 0, SHM_NOT_OURS, SHM_FOUND },
        { "name slot pointing past the records", d_slot_index_past, false, 0, SHM_NOT_OURS, SHM_FOUND },
        { "name slot index UINT32_MAX", d_slot_index_max, false, 0, SHM_NOT_OURS, SHM_FOUND },
};

START_TEST(test_hostile_bytes) {
        const Hostile *c = &hostile[_i];
        static Answer a;
        ShmSnapshot s;
        ShmRecordView v;

        store_write_valid(store);
        StoreBytes b = store_bytes();
        ck_assert_uint_eq(b.h->seq, 1); /* readers use copy 1; damage both */
        if (c->header)
                c->damage(&b, 0);
        else
                for (unsigned i = 0; i < 2; i++)
                        c->damage(&b, i);
        munmap(b.p, b.len);

        ShmReader *r = reader_new();
        int e = shm_snapshot_begin(r, &s);
        ck_assert_msg(e == c->error, "%s: shm_snapshot_begin() = %d, not %d", c->what, e, c->error);
        if (e == 0) {
                /* Every record that is still sound stays usable. */
                ck_assert_int_eq(shm_snapshot_lookup_name(&s, "Win-A", &v), c->name);
                ck_assert_int_eq(shm_snapshot_lookup_name(&s, "win-a.yourorg.zt.net", &v),
                                 c->name == SHM_FOUND ? SHM_FOUND : SHM_UNKNOWN);
                uint8_t addr[4] = { 100, 64, 0, 1 };
                ck_assert_int_eq(shm_snapshot_lookup_addr(&s, AF_INET, addr, &v), c->addr);
                ck_assert_int_eq(shm_snapshot_lookup_name(&s, "nobody.yourorg.zt.net", &v), SHM_UNKNOWN);
                if (c->damage != d_names_full)
                        ck_assert_int_eq(shm_snapshot_lookup_name(&s, "v6only", &v), SHM_FOUND);
                for (uint32_t k = 0; k < s.n_records; k++)
                        if (shm_snapshot_record(&s, k, &v))
                                ck_assert_uint_eq(strlen(v.name), v.name_len);
                ck_assert(shm_snapshot_end(&s));
        }
        /* Again: the verdict does not change, nothing was left behind. */
        e = shm_snapshot_begin(r, &s);
        ck_assert_int_eq(e, c->error);
        if (e == 0)
                ck_assert(shm_snapshot_end(&s));

        /* A good store renamed in place: the same reader recovers. */
        store_replace_valid(c->error == 0);
        ck_assert_int_eq(lookup_name(r, "win-a", &a), 0);
        check_win_a(&a);
        shm_reader_free(r);
}
END_TEST

/* Damage to the copy the latch does not name is harmless; to the one it
 * names, refused, and the reader lets go of the file so that a good one
 * renamed in place is picked up. Shows which copy readers use. */
START_TEST(test_hostile_one_copy) {
        static Answer a;
        ShmSnapshot s;
        store_write_valid(store);
        StoreBytes b = store_bytes();
        unsigned used = b.h->seq & 1;
        d_state(&b, !used);
        d_name_len0(&b, !used);
        ShmReader *r = reader_new();
        ck_assert_int_eq(lookup_name(r, "win-a", &a), 0);
        check_win_a(&a);
        d_state(&b, used);
        ck_assert_int_eq(shm_snapshot_begin(r, &s), -EBADMSG);
        munmap(b.p, b.len);
        store_replace_valid(false);
        ck_assert_int_eq(lookup_name(r, "win-a", &a), 0);
        check_win_a(&a);
        shm_reader_free(r);
}
END_TEST

/* Files and directories the reader must not trust. */
enum {
        BAD_OWNER,
        BAD_OWNER_SYSTEM,
        BAD_GROUP_WRITABLE,
        BAD_WORLD_WRITABLE,
        BAD_SYMLINK,
        BAD_HARD_LINK,
        BAD_FIFO,
        BAD_DIRECTORY,
        BAD_DIR_WORLD_WRITABLE,
        BAD_DIR_STICKY,
        BAD_DIR_OWNER,
        BAD_MISSING,
        BAD_EMPTY,
        BAD_SHORT_HEADER,
        BAD_TRUNCATED,
        BAD_EXTENDED,
        GOOD_SYSTEM_ACCOUNT,
        N_BAD_FILES,
};

static const struct {
        const char *what;
        int error;
} bad_files[N_BAD_FILES] = {
        [BAD_OWNER] = { "file owned by an ordinary user", -EPERM },
        [BAD_OWNER_SYSTEM] = { "file owned by a system account not owning the directory", -EPERM },
        [BAD_GROUP_WRITABLE] = { "file group-writable", -EPERM },
        [BAD_WORLD_WRITABLE] = { "file world-writable", -EPERM },
        [BAD_SYMLINK] = { "a symlink to a valid store", -EPERM },
        [BAD_HARD_LINK] = { "a second hard link", -EPERM },
        [BAD_FIFO] = { "a FIFO", -EPERM },
        [BAD_DIRECTORY] = { "a directory", -EPERM },
        [BAD_DIR_WORLD_WRITABLE] = { "directory world-writable", -EPERM },
        [BAD_DIR_STICKY] = { "directory world-writable and sticky", -EPERM },
        [BAD_DIR_OWNER] = { "directory owned by an ordinary user", -EPERM },
        [BAD_MISSING] = { "no file", -ENOENT },
        [BAD_EMPTY] = { "an empty file", -EBADMSG },
        [BAD_SHORT_HEADER] = { "shorter than the header", -EBADMSG },
        [BAD_TRUNCATED] = { "truncated below file_size", -EBADMSG },
        [BAD_EXTENDED] = { "extended past file_size", -EBADMSG },
        [GOOD_SYSTEM_ACCOUNT] = { "file and directory of a system account", 0 },
};

/* Makes the file at `path` (a valid store or copy) in `dir` bad in way `i`;
 * `other` is a spare path in the same directory, `other_base` its name. */
static void bad_file_make(unsigned i, const char *dir, const char *path, const char *other, const char *other_base) {
        off_t size = size_of(path);
        switch (i) {
        case BAD_OWNER:
                ck_assert_int_eq(chown(path, NOBODY_UID, NOBODY_UID), 0);
                break;
        case BAD_OWNER_SYSTEM:
                ck_assert_int_eq(chown(path, DAEMON_UID, 0), 0);
                break;
        case BAD_GROUP_WRITABLE:
                ck_assert_int_eq(chmod(path, 0664), 0);
                break;
        case BAD_WORLD_WRITABLE:
                ck_assert_int_eq(chmod(path, 0646), 0);
                break;
        case BAD_SYMLINK:
                ck_assert_int_eq(rename(path, other), 0);
                ck_assert_int_eq(symlink(other_base, path), 0);
                break;
        case BAD_HARD_LINK:
                ck_assert_int_eq(link(path, other), 0);
                break;
        case BAD_FIFO:
                ck_assert_int_eq(unlink(path), 0);
                ck_assert_int_eq(mkfifo(path, 0644), 0); /* opening it must not block */
                break;
        case BAD_DIRECTORY:
                ck_assert_int_eq(unlink(path), 0);
                ck_assert_int_eq(mkdir(path, 0755), 0);
                break;
        case BAD_DIR_WORLD_WRITABLE:
                ck_assert_int_eq(chmod(dir, 0777), 0);
                break;
        case BAD_DIR_STICKY:
                ck_assert_int_eq(chmod(dir, 01777), 0);
                break;
        case BAD_DIR_OWNER:
                ck_assert_int_eq(chown(dir, NOBODY_UID, NOBODY_UID), 0);
                break;
        case BAD_MISSING:
                ck_assert_int_eq(unlink(path), 0);
                break;
        case BAD_EMPTY:
                ck_assert_int_eq(truncate(path, 0), 0);
                break;
        case BAD_SHORT_HEADER:
                ck_assert_int_eq(truncate(path, sizeof(ShmWireHeader) - 1), 0);
                break;
        case BAD_TRUNCATED:
                ck_assert_int_eq(truncate(path, size - 4096), 0);
                break;
        case BAD_EXTENDED:
                ck_assert_int_eq(truncate(path, size + 4096), 0);
                break;
        case GOOD_SYSTEM_ACCOUNT: /* ztnad's own account, as the design allows */
                ck_assert_int_eq(chown(dir, DAEMON_UID, 0), 0);
                ck_assert_int_eq(chown(path, DAEMON_UID, 0), 0);
                break;
        }
}

START_TEST(test_hostile_files) {
        char other[PATH_MAX];
        static Answer a;
        ShmSnapshot s;

        path_in_dir(other, sizeof(other), "other");
        store_write_valid(store);
        bad_file_make(_i, test_dir, store, other, "other");

        ShmReader *r = reader_new();
        for (unsigned n = 0; n < 2; n++) {
                int e = shm_snapshot_begin(r, &s);
                ck_assert_msg(e == bad_files[_i].error, "%s: shm_snapshot_begin() = %d, not %d", bad_files[_i].what, e,
                              bad_files[_i].error);
                if (e == 0) {
                        ShmRecordView v;
                        ck_assert_int_eq(shm_snapshot_lookup_name(&s, "win-a", &v), SHM_FOUND);
                        ck_assert(shm_snapshot_end(&s));
                }
        }

        /* Put right: the directory back as it was, a valid store renamed
         * over whatever is at the path. The same reader recovers. */
        ck_assert_int_eq(chmod(test_dir, 0755), 0);
        ck_assert_int_eq(chown(test_dir, 0, 0), 0);
        if (_i == BAD_DIRECTORY)
                ck_assert_int_eq(rmdir(store), 0);
        store_replace_valid(false);
        ck_assert_int_eq(lookup_name(r, "win-a", &a), 0);
        check_win_a(&a);
        shm_reader_free(r);

        /* A path that cannot be a store at all. */
        ck_assert_int_eq(shm_reader_new("/nonexistent-ztna-dir/records", &r), 0);
        ck_assert_int_eq(shm_snapshot_begin(r, &s), -ENOENT);
        shm_reader_free(r);
        ck_assert_int_eq(shm_reader_new(test_dir, &r), 0); /* a directory */
        ck_assert_int_lt(shm_snapshot_begin(r, &s), 0);
        shm_reader_free(r);
}
END_TEST

/* ---- 7. the persisted copy, and readers falling back on it ---- */

/* Publishes `map` into a store of its own ("src"), so that `store` stays
 * missing, and saves its copy to `path`. */
static void copy_save(const ShmMap *map, bool up, const char *path) {
        char src[PATH_MAX];
        ShmWriter *w = NULL;
        void *img = NULL;
        size_t len = 0;
        path_in_dir(src, sizeof(src), "src");
        ck_assert_int_eq(shm_writer_open(src, &w), 0);
        ck_assert_int_eq(shm_writer_publish(w, map, up), 0);
        ck_assert_int_eq(shm_writer_export(w, &img, &len), 0);
        ck_assert_int_eq(shm_store_save(path, img, len), 0);
        free(img);
        shm_writer_close(w);
}

static ShmReader *reader_with_copy(const char *copy) {
        ShmReader *r = NULL;
        ck_assert_int_eq(shm_reader_new_fallback(store, copy, &r), 0);
        return r;
}

static double mono_sec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Sleeps past the reader's recheck period. */
static void recheck_wait(void) {
        usleep((useconds_t) (SHM_FALLBACK_RECHECK_USEC + SHM_FALLBACK_RECHECK_USEC / 5));
}

static unsigned dir_entries(const char *dir) {
        unsigned n = 0;
        DIR *d = opendir(dir);
        ck_assert_ptr_nonnull(d);
        for (struct dirent *de; (de = readdir(d));)
                n += de->d_name[0] != '.';
        closedir(d);
        return n;
}

START_TEST(test_copy_roundtrip) {
        static BasicMap b;
        static Answer a;
        char copy[PATH_MAX];
        void *img = NULL;
        size_t len = 0;
        struct stat st;

        basic_map_init(&b);
        path_in_dir(copy, sizeof(copy), "copy");
        ShmWriter *w = writer_open();
        ck_assert_int_eq(shm_writer_export(w, &img, &len), -ENODATA); /* nothing published yet */
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0);
        ck_assert_int_eq(shm_writer_publish(w, &b.map, true), 0); /* readers on copy 1 now */
        ck_assert_int_eq(shm_writer_export(w, &img, &len), 0);
        /* One region, not two with room to grow. */
        ck_assert_uint_eq(len % 8, 0);
        ck_assert_uint_lt(len, (size_t) size_of(store));
        ck_assert_int_eq(shm_store_save(copy, img, len), 0);
        free(img);
        ck_assert_int_eq(lstat(copy, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        ck_assert_uint_eq(st.st_mode & 07777, 0644);
        ck_assert_uint_eq((size_t) st.st_size, len);
        ck_assert_uint_eq(dir_entries(test_dir), 3); /* records, records.lock, copy: no temporary left */

        /* Read as a store of its own: the same answers, not stale. */
        ShmReader *r = NULL;
        ck_assert_int_eq(shm_reader_new(copy, &r), 0);
        ck_assert_int_eq(lookup_name(r, "win-a", &a), 0);
        check_win_a(&a);
        ck_assert(!a.stale);
        ck_assert_uint_eq(a.generation, 2);
        shm_reader_free(r);

        /* The store missing: answered from the copy, stale. */
        ck_assert_int_eq(unlink(store), 0);
        r = reader_with_copy(copy);
        ck_assert_int_eq(lookup_name(r, "Win-A.yourorg.zt.net.", &a), 0);
        check_win_a(&a);
        ck_assert(a.stale);
        ck_assert(!a.down);
        ck_assert_int_eq(class_of(r, "linux-b." DOMAIN, "linux-b"), SHM_FOUND);
        ck_assert_int_eq(class_of(r, "nobody." DOMAIN, NULL), SHM_UNKNOWN);
        ck_assert_int_eq(class_of(r, "nobody", NULL), SHM_NOT_OURS);
        ck_assert_int_eq(class_of_addr(r, AF_INET6, "fd7a:115c:a1e0:1::1f3", "many"), SHM_FOUND);
        ck_assert_int_eq(class_of_addr(r, AF_INET, "100.64.9.9", NULL), SHM_UNKNOWN);
        ck_assert_int_eq(class_of_addr(r, AF_INET, "10.0.0.1", NULL), SHM_NOT_OURS);
        shm_reader_free(r);

        /* `ztna down` carries over into the copy. */
        ck_assert_int_eq(shm_writer_set_state(w, false), 0);
        ck_assert_int_eq(shm_writer_export(w, &img, &len), 0);
        ck_assert_int_eq(shm_store_save(copy, img, len), 0);
        free(img);
        r = reader_with_copy(copy);
        ck_assert_int_eq(lookup_name(r, "win-a", &a), 0);
        ck_assert(a.down && a.stale);
        shm_reader_free(r);
        shm_writer_close(w);

        /* A copy where none can be written: an error, the old one stays. */
        ck_assert_int_eq(shm_store_save("/nonexistent-ztna-dir/records", "x", 1), -ENOENT);
        ck_assert_int_eq(chmod(test_dir, 0555), 0);
        if (access(test_dir, W_OK) < 0) /* root may write anyway unless capabilities are dropped */
                ck_assert_int_lt(shm_store_save(copy, "x", 1), 0);
        ck_assert_int_eq(chmod(test_dir, 0755), 0);
        ck_assert_uint_eq((size_t) size_of(copy), len);
}
END_TEST

START_TEST(test_copy_until_store_returns) {
        static BasicMap b;
        static Answer a;
        char copy[PATH_MAX];

        basic_map_init(&b);
        path_in_dir(copy, sizeof(copy), "copy");
        copy_save(&b.map, true, copy);
        ShmReader *r = reader_with_copy(copy);
        double t0 = mono_sec();
        ck_assert_int_eq(lookup_name(r, "win-a", &a), 0);
        ck_assert(a.stale);

        /* The store appears with another map (Win-A gone). */
        ShmMap two = b.map;
        two.peers = &b.peers[1];
        two.n_peers = N_BASIC_PEERS - 1;
        ShmWriter *w = writer_open();
        ck_assert_int_eq(shm_writer_publish(w, &two, true), 0);
        /* Within the recheck period the reader keeps to the copy (it makes
         * no syscall to look); a machine too slow to tell is let off. */
        ck_assert_int_eq(lookup_name(r, "win-a", &a), 0);
        if (mono_sec() - t0 < (double) SHM_FALLBACK_RECHECK_USEC / 2e6)
                ck_assert(a.stale && a.cls == SHM_FOUND);
        recheck_wait();
        ck_assert_int_eq(lookup_name(r, "win-a", &a), 0);
        ck_assert(!a.stale);
        ck_assert_int_eq(a.cls, SHM_NOT_OURS); /* the store's answer */
        ck_assert_int_eq(class_of(r, "win-a." DOMAIN, NULL), SHM_UNKNOWN);

        /* Forgotten (as after a store that went bad) and missing again:
         * back on the copy at once. */
        shm_writer_close(w);
        ck_assert_int_eq(unlink(store), 0);
        shm_reader_forget(r);
        ck_assert_int_eq(lookup_name(r, "win-a", &a), 0);
        ck_assert(a.stale && a.cls == SHM_FOUND);
        shm_reader_free(r);
}
END_TEST

START_TEST(test_copy_replaced) {
        static BasicMap b;
        static Answer a;
        char copy[PATH_MAX];
        ShmSnapshot s;

        basic_map_init(&b);
        path_in_dir(copy, sizeof(copy), "copy");
        copy_save(&b.map, true, copy);
        ShmReader *r = reader_with_copy(copy);
        ck_assert_int_eq(class_of(r, "win-a", "Win-A"), SHM_FOUND);

        /* A newer copy renamed over it is read after the recheck. */
        ShmMap two = b.map;
        two.peers = &b.peers[1];
        two.n_peers = N_BASIC_PEERS - 1;
        copy_save(&two, true, copy);
        recheck_wait();
        ck_assert_int_eq(lookup_name(r, "win-a", &a), 0);
        ck_assert(a.stale && a.cls == SHM_NOT_OURS);

        /* Made untrusted in place: dropped at the recheck. */
        ck_assert_int_eq(chmod(copy, 0666), 0);
        recheck_wait();
        ck_assert_int_eq(shm_snapshot_begin(r, &s), -ENOENT); /* the store's error */
        ck_assert_int_eq(chmod(copy, 0644), 0);
        ck_assert_int_eq(class_of(r, "linux-b", "linux-b"), SHM_FOUND);

        /* Removed: dropped at the recheck, nothing is answered. */
        ck_assert_int_eq(unlink(copy), 0);
        recheck_wait();
        ck_assert_int_eq(shm_snapshot_begin(r, &s), -ENOENT);
        shm_reader_free(r);

        /* No copy named at all. */
        ck_assert_int_eq(shm_reader_new_fallback(store, NULL, &r), 0);
        ck_assert_int_eq(shm_snapshot_begin(r, &s), -ENOENT);
        shm_reader_free(r);
}
END_TEST

/* Reader threads through the copy while it is replaced, the store appears
 * and goes, and the reader forgets its mappings over and over: every
 * consistent answer is one of the two maps, nothing faults (ASan). */
typedef struct CopyThread {
        pthread_t t;
        ShmReader *r;
        const bool *stop;
        uint64_t lookups, stale, busy, errors, wrong;
        int last_error;
} CopyThread;

static void *copy_thread_main(void *arg) {
        CopyThread *c = arg;
        while (!__atomic_load_n(c->stop, __ATOMIC_RELAXED)) {
                ShmSnapshot s;
                ShmRecordView v;
                int e = shm_snapshot_begin(c->r, &s);
                if (e == -EAGAIN) {
                        c->busy++;
                        continue;
                }
                if (e < 0) {
                        c->errors++;
                        c->last_error = e;
                        continue;
                }
                ShmClass cls = shm_snapshot_lookup_name(&s, "linux-b", &v);
                bool right = cls == SHM_FOUND && v.name_len == 7 && memcmp(v.name, "linux-b", 7) == 0;
                bool stale = shm_snapshot_stale(&s);
                if (shm_snapshot_end(&s)) {
                        c->lookups++;
                        c->stale += stale;
                        c->wrong += !right;
                }
        }
        return NULL;
}

START_TEST(test_copy_threads) {
        static BasicMap b;
        char copy[PATH_MAX];
        enum { N_THREADS = 3 };
        CopyThread th[N_THREADS] = {};
        bool stop = false;

        basic_map_init(&b);
        ShmMap two = b.map; /* without Win-A; linux-b in both */
        two.peers = &b.peers[1];
        two.n_peers = N_BASIC_PEERS - 1;
        path_in_dir(copy, sizeof(copy), "copy");
        copy_save(&b.map, true, copy);
        ShmReader *r = reader_with_copy(copy);
        for (unsigned i = 0; i < N_THREADS; i++) {
                th[i] = (CopyThread) { .r = r, .stop = &stop };
                ck_assert_int_eq(pthread_create(&th[i].t, NULL, copy_thread_main, &th[i]), 0);
        }
        double end = mono_sec() + 3;
        ShmWriter *w = NULL;
        unsigned rounds = 0;
        while (mono_sec() < end) {
                copy_save(rounds % 2 ? &two : &b.map, true, copy);
                if (rounds % 7 == 3) { /* the store appears */
                        w = writer_open();
                        ck_assert_int_eq(shm_writer_publish(w, rounds % 2 ? &b.map : &two, true), 0);
                } else if (w && rounds % 7 == 5) { /* and goes */
                        shm_writer_close(w);
                        w = NULL;
                        ck_assert_int_eq(unlink(store), 0);
                }
                shm_reader_forget(r);
                rounds++;
        }
        __atomic_store_n(&stop, true, __ATOMIC_RELAXED);
        CopyThread sum = {};
        for (unsigned i = 0; i < N_THREADS; i++) {
                ck_assert_int_eq(pthread_join(th[i].t, NULL), 0);
                sum.lookups += th[i].lookups;
                sum.stale += th[i].stale;
                sum.busy += th[i].busy;
                sum.errors += th[i].errors;
                if (th[i].errors)
                        sum.last_error = th[i].last_error;
                sum.wrong += th[i].wrong;
        }
        printf("copy threads: %u rounds, %" PRIu64 " lookups (%" PRIu64 " stale), %" PRIu64 " busy, %" PRIu64
               " errors (last %d), %" PRIu64 " wrong\n",
               rounds, sum.lookups, sum.stale, sum.busy, sum.errors, sum.last_error, sum.wrong);
        ck_assert_uint_gt(sum.lookups, 0);
        ck_assert_uint_gt(sum.stale, 0);
        ck_assert_uint_lt(sum.stale, sum.lookups); /* the store answered too */
        ck_assert_msg(sum.errors == 0, "%" PRIu64 " lookups failed, the last with %d", /* never "no store" */
                      sum.errors, sum.last_error);
        ck_assert_uint_eq(sum.wrong, 0);
        shm_writer_close(w);
        shm_reader_free(r);
}
END_TEST

/* Every untrusted file of test_hostile_files, as the copy: refused the
 * same way, and the lookup fails with the store's own error. */
START_TEST(test_hostile_copy_files) {
        static BasicMap b;
        char dir[PATH_MAX], copy[PATH_MAX], other[PATH_MAX];
        ShmSnapshot s;

        basic_map_init(&b);
        path_in_dir(dir, sizeof(dir), "cache");
        ck_assert_int_eq(mkdir(dir, 0755), 0);
        path_in_dir(copy, sizeof(copy), "cache/records");
        path_in_dir(other, sizeof(other), "cache/other");
        copy_save(&b.map, true, copy);
        bad_file_make(_i, dir, copy, other, "other");

        ShmReader *r = reader_with_copy(copy);
        for (unsigned n = 0; n < 2; n++) {
                int e = shm_snapshot_begin(r, &s);
                int want = bad_files[_i].error == 0 ? 0 : -ENOENT;
                ck_assert_msg(e == want, "%s: shm_snapshot_begin() = %d, not %d", bad_files[_i].what, e, want);
                if (e == 0) {
                        ShmRecordView v;
                        ck_assert(shm_snapshot_stale(&s));
                        ck_assert_int_eq(shm_snapshot_lookup_name(&s, "win-a", &v), SHM_FOUND);
                        ck_assert(shm_snapshot_end(&s));
                }
        }
        shm_reader_free(r);
        ck_assert_int_eq(chmod(dir, 0755), 0);
        ck_assert_int_eq(chown(dir, 0, 0), 0);
}
END_TEST

/* Bytes of a trusted copy that make no sense: an error, never a fault. */
START_TEST(test_hostile_copy_bytes) {
        static BasicMap b;
        char copy[PATH_MAX];
        ShmSnapshot s;

        basic_map_init(&b);
        path_in_dir(copy, sizeof(copy), "copy");
        copy_save(&b.map, true, copy);
        int fd = open(copy, O_RDWR | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        size_t len = (size_t) size_of(copy);
        uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        ck_assert(p != MAP_FAILED);
        close(fd);
        ShmWireHeader *h = (ShmWireHeader *) p;
        ShmReader *r = reader_with_copy(copy);

        switch (_i) {
        case 0: /* the table runs past its region */
                h->copy[0].used = (uint32_t) h->region_size[0] + 8;
                ck_assert_int_eq(shm_snapshot_begin(r, &s), -EBADMSG);
                break;
        case 1: /* a region past the end of the file */
                h->region_off[1] = len;
                h->region_size[1] = 4096;
                h->copy[1].used = 8;
                __atomic_store_n(&h->seq, 1, __ATOMIC_RELEASE);
                ck_assert_int_eq(shm_snapshot_begin(r, &s), -ENOENT);
                break;
        case 2: /* an index slot that points past the entries */
        {
                ShmWireSlot *slots = (ShmWireSlot *) (p + h->region_off[0] + h->copy[0].name_idx_off);
                for (uint32_t i = 0; i < h->copy[0].name_slots; i++)
                        if (slots[i].entry)
                                slots[i].entry = UINT32_MAX;
                ck_assert_int_eq(class_of(r, "win-a", NULL), SHM_NOT_OURS);
                ck_assert_int_eq(class_of(r, "win-a." DOMAIN, NULL), SHM_UNKNOWN);
                break;
        }
        }
        shm_reader_free(r);
        munmap(p, len);
}
END_TEST

/* ---- 8. SipHash-1-3 ---- */

/* Known answers from an independent implementation: CPython 3.11 hashes
 * bytes with SipHash-1-3 (sys.hash_info.algorithm == 'siphash13'). With
 * PYTHONHASHSEED=0 its key is all zero; with PYTHONHASHSEED=1234 it is the
 * second key below (bytes 0-15 of CPython's lcg_urandom(1234), read
 * little-endian). Each value is hash(b"...") & 0xffffffffffffffff. The
 * lengths cross the 8-byte block boundaries. */
static const struct {
        const char *msg;
        uint64_t zero_key, seed_key;
} siphash_kat[] = {
        { "a", UINT64_C(0x407448d2b89b1813), UINT64_C(0x317595167ee0981a) },
        { "Win-A", UINT64_C(0x711906b908c60981), UINT64_C(0x19ec9ffd4542cb95) },
        { "win-a", UINT64_C(0x31c43d8fab91814d), UINT64_C(0x3fc3b032f08aa63e) },
        { "abcdefg", UINT64_C(0x6db12aae9070f506), UINT64_C(0xe0968c19329a83a3) },
        { "abcdefgh", UINT64_C(0x3f7b849c0b8e35ea), UINT64_C(0x9528114e6ec8f952) },
        { "abcdefghi", UINT64_C(0xf89b34a3d11eb6e5), UINT64_C(0xd69c0c795a9b86a1) },
        { "0123456789abcde", UINT64_C(0x26f4d862282d8fcb), UINT64_C(0x08b96b7ecbfbd843) },
        { "0123456789abcdef", UINT64_C(0x1d42b30f7e060c24), UINT64_C(0xe30605c535756dbd) },
        { "0123456789abcdefg", UINT64_C(0x3323a4f8b8d9776b), UINT64_C(0xecd443b1bec35a55) },
        { "the quick brown fox jumps over the lazy dog, 64 bytes long.....!", UINT64_C(0xa1f69b75c9456329),
          UINT64_C(0x285c87ecdabf54da) },
};

START_TEST(test_siphash) {
        static const uint64_t zero[2] = { 0, 0 };
        static const uint64_t seeded[2] = { UINT64_C(0xbcaa251036d9d5e4), UINT64_C(0x35628fc316e9f8d8) };

        for (size_t i = 0; i < ELEMENTSOF(siphash_kat); i++) {
                const char *m = siphash_kat[i].msg;
                ck_assert_uint_eq(siphash13(zero, m, strlen(m), 0), siphash_kat[i].zero_key);
                ck_assert_uint_eq(siphash13(seeded, m, strlen(m), 0), siphash_kat[i].seed_key);
        }
        ck_assert_uint_eq(strlen(siphash_kat[ELEMENTSOF(siphash_kat) - 1].msg), 64);

        /* Folding: any case hashes as lower case, and only ASCII letters
         * fold ('@' and '[' sit either side of 'A'..'Z'). */
        ck_assert_uint_eq(siphash13(seeded, "Win-A", 5, 1), siphash_kat[2].seed_key);
        ck_assert_uint_eq(siphash13(seeded, "WIN-A", 5, 1), siphash13(seeded, "win-a", 5, 1));
        ck_assert_uint_ne(siphash13(seeded, "Win-A", 5, 0), siphash13(seeded, "win-a", 5, 0));
        ck_assert_uint_eq(siphash13(zero, "ABCDEFGHIJKLMNOPQ", 17, 1), siphash13(zero, "abcdefghijklmnopq", 17, 0));
        ck_assert_uint_ne(siphash13(zero, "@[", 2, 1), siphash13(zero, "`{", 2, 1));
        ck_assert_uint_eq(siphash13(zero, "@[", 2, 1), siphash13(zero, "@[", 2, 0));

        /* Another key, another hash; one bit of the message changes it. */
        ck_assert_uint_ne(siphash13(zero, "win-a", 5, 1), siphash13(seeded, "win-a", 5, 1));
        uint64_t k1[2] = { 0, 1 };
        ck_assert_uint_ne(siphash13(zero, "win-a", 5, 0), siphash13(k1, "win-a", 5, 0));
        ck_assert_uint_ne(siphash13(zero, "win-a", 5, 0), siphash13(zero, "win-b", 5, 0));
        /* Length is part of the input: a trailing NUL is not nothing. */
        ck_assert_uint_ne(siphash13(zero, "a\0", 2, 0), siphash13(zero, "a", 1, 0));

        /* Unaligned input hashes the same. */
        char buf[80];
        const char *m = siphash_kat[9].msg;
        for (size_t off = 1; off < 8; off++) {
                memcpy(buf + off, m, 64);
                ck_assert_uint_eq(siphash13(zero, buf + off, 64, 0), siphash_kat[9].zero_key);
        }
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
        tcase_add_test(tc, test_blocklist);
        tcase_add_test(tc, test_reverse);
        tcase_add_test(tc, test_state_and_generation);
        tcase_add_test(tc, test_enumerate);
        tcase_add_test(tc, test_empty_map);
        tcase_add_test(tc, test_domain_limits);
        tcase_add_test(tc, test_format_limits);
        suite_add_tcase(s, tc);

        tc = tcase_create("lifecycle");
        tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_takeover);
        tcase_add_test(tc, test_growth);
        suite_add_tcase(s, tc);

        tc = tcase_create("torture");
        tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
        tcase_set_timeout(tc, 180);
        tcase_add_test(tc, test_torture);
        suite_add_tcase(s, tc);

        tc = tcase_create("crash");
        tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_kill_writer);
        tcase_add_test(tc, test_killed_after_rename);
        tcase_add_test(tc, test_killed_before_rename);
        suite_add_tcase(s, tc);

        tc = tcase_create("hostile");
        tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
        tcase_set_timeout(tc, 30);
        tcase_add_loop_test(tc, test_hostile_bytes, 0, ELEMENTSOF(hostile));
        tcase_add_test(tc, test_hostile_one_copy);
        tcase_add_loop_test(tc, test_hostile_files, 0, N_BAD_FILES);
        tcase_add_loop_test(tc, test_hostile_copy_files, 0, N_BAD_FILES);
        tcase_add_loop_test(tc, test_hostile_copy_bytes, 0, 3);
        suite_add_tcase(s, tc);

        tc = tcase_create("persisted copy");
        tcase_add_checked_fixture(tc, dir_setup, dir_teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_copy_roundtrip);
        tcase_add_test(tc, test_copy_until_store_returns);
        tcase_add_test(tc, test_copy_replaced);
        tcase_add_test(tc, test_copy_threads);
        suite_add_tcase(s, tc);

        tc = tcase_create("siphash");
        tcase_add_test(tc, test_siphash);
        suite_add_tcase(s, tc);

        SRunner *sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
