/* SPDX-License-Identifier: MIT */
/*
 * bench-nss: the store and the direct NSS entry point under a stopwatch.
 * Linked with nss_ztna/nss-ztna.c and libshm.a, so it calls
 * _nss_ztna_gethostbyname4_r() itself, through the process-wide reader that
 * finds the store in $ZTNA_STORE. tests/bench/run-bench.sh drives it and turns its
 * "key=value" lines into the table.
 *
 *     bench-nss store PATH N                 publish N peers at PATH, once
 *     bench-nss hosts FIRST COUNT            the same peers as a hosts file
 *     bench-nss publish DIR N REPS           publish timings, store size
 *     bench-nss direct SMALL N1 LARGE N2 BLOCKS
 *                                            per-call times, both stores
 *     bench-nss count N CALLS                a bare loop for callgrind
 *     bench-nss contend N PAIRS PHASE_MS     idle vs. republishing latency
 *
 * The peers are tests/bench/bench-peers.h's: host-000000, host-000001, ... Names
 * are asked as FQDNs ("host-012345.yourorg.zt.net"), the way getaddrinfo
 * gets them from most callers.
 *
 * Times come from clock_gettime(CLOCK_MONOTONIC) (vDSO, no syscall). A batch
 * time is the mean of CALLS back-to-back lookups; a single-call time is
 * the difference of two clock reads around one lookup, less the median cost
 * of two back-to-back clock reads (reported as timer_ns).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h> /* NAN */
#include <netdb.h>
#include <nss.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-peers.h"
#include "macro.h"
#include "shm-format.h"
#include "shm.h"

/* The module's entry point; nss-ztna.c has no header of its own. */
enum nss_status _nss_ztna_gethostbyname4_r(const char *name, struct gaih_addrtuple **pat, char *buffer,
                                           size_t buflen, int *errnop, int *h_errnop, int32_t *ttlp);

#define HOT_SET          1000u    /* names in the hot-set workload */
#define RANDOM_SEQ       131072u  /* precomputed random names, streamed */
#define BATCH_CALLS      1000u    /* lookups per timed batch */
#define SINGLE_CALLS     500u     /* single-call timings per block */
#define DIRECT_RUN       25u      /* blocks of one workload before the other's */
#define HIST_BUCKETS     16384u   /* 1 ns buckets; the last one is ">=" */
#define GAI_BUFFER       1024u    /* glibc's first tmpbuf for gethostbyname4_r */
#define BENCH_PATH_MAX   4096u

enum { WL_HOT, WL_RANDOM, WL_COUNT };
static const char *const workload_name[WL_COUNT] = { "hot", "random" };

/* ---- small helpers ---- */

static _Noreturn void die(const char *what, int e) {
        fprintf(stderr, "bench-nss: %s: %s\n", what, strerror(e < 0 ? -e : e));
        exit(1);
}

static void *xcalloc(size_t n, size_t size) {
        void *p = calloc(n, size);
        if (!p)
                die("calloc", ENOMEM);
        return p;
}

static uint32_t parse_u32(const char *s, const char *what, unsigned long min) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || end == s || *end || v < min || v > BENCH_PEERS_MAX) {
                fprintf(stderr, "bench-nss: bad %s: %s\n", what, s);
                exit(2);
        }
        return (uint32_t) v;
}

static int64_t now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* splitmix64: a seeded, repeatable stream for choosing names. */
static uint64_t rng_next(uint64_t *state) {
        uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
        z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
        return z ^ (z >> 31);
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return (x > y) - (x < y);
}

static double median(double *v, size_t n) {
        if (n == 0)
                return NAN;
        qsort(v, n, sizeof(*v), cmp_double);
        return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static void pin_to_cpu(int cpu) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        /* Best effort: a machine with one CPU simply shares it. */
        (void) sched_setaffinity(0, sizeof(set), &set);
}

static bool write_all(int fd, const void *p, size_t n) {
        const char *c = p;
        while (n > 0) {
                ssize_t k = write(fd, c, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return false;
                c += k;
                n -= (size_t) k;
        }
        return true;
}

static bool read_all(int fd, void *p, size_t n) {
        char *c = p;
        while (n > 0) {
                ssize_t k = read(fd, c, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return false;
                c += k;
                n -= (size_t) k;
        }
        return true;
}

/* ---- latency histogram: 1 ns buckets, the last one catches the rest ---- */

typedef struct Hist {
        uint64_t total;
        uint64_t count[HIST_BUCKETS];
} Hist;

static void hist_add(Hist *h, int64_t ns) {
        uint64_t b = ns < 0 ? 0 : (uint64_t) ns;
        h->count[b < HIST_BUCKETS ? b : HIST_BUCKETS - 1]++;
        h->total++;
}

/* The smallest bucket at or below which a fraction `q` of samples lie. */
static uint64_t hist_quantile(const Hist *h, double q) {
        double exact = q * (double) h->total;
        uint64_t want = (uint64_t) exact, seen = 0;
        if ((double) want < exact || want == 0)
                want++;
        for (size_t i = 0; i < HIST_BUCKETS; i++) {
                seen += h->count[i];
                if (seen >= want)
                        return i;
        }
        return HIST_BUCKETS - 1;
}

/* Median cost of two back-to-back clock reads. */
static int64_t timer_overhead_ns(void) {
        enum { N = 200001 };
        double *v = xcalloc(N, sizeof(*v));
        for (size_t i = 0; i < N; i++) {
                int64_t a = now_ns();
                int64_t b = now_ns();
                v[i] = (double) (b - a);
        }
        int64_t m = (int64_t) median(v, N);
        free(v);
        return m;
}

/* ---- the synthetic tailnet ---- */

typedef struct BenchMap {
        ShmMap map;
        ShmPrefix ranges[2];
        ShmPeer *peers;
        struct in_addr *v4;
        struct in6_addr *v6;
        char (*labels)[BENCH_NAME_SIZE];
} BenchMap;

static BenchMap *bench_map_new(uint32_t n) {
        BenchMap *m = xcalloc(1, sizeof(*m));
        m->peers = xcalloc(n, sizeof(*m->peers));
        m->v4 = xcalloc(n, sizeof(*m->v4));
        m->v6 = xcalloc(n, sizeof(*m->v6));
        m->labels = xcalloc(n, sizeof(*m->labels));
        for (uint32_t i = 0; i < n; i++) {
                bench_peer_label(i, m->labels[i]);
                m->v4[i] = bench_peer_v4(i);
                m->v6[i] = bench_peer_v6(i);
                m->peers[i] = (ShmPeer) {
                        .name = m->labels[i],
                        .ttl = BENCH_TTL,
                        .online = true,
                        .n_v4 = 1,
                        .v4 = &m->v4[i],
                        .n_v6 = 1,
                        .v6 = &m->v6[i],
                };
        }
        m->ranges[0] = (ShmPrefix) { .family = AF_INET, .prefixlen = 10, .addr.in = bench_peer_v4(UINT32_MAX) };
        m->ranges[1] = (ShmPrefix) { .family = AF_INET6, .prefixlen = 48, .addr.in6 = bench_peer_v6(UINT32_MAX) };
        m->map = (ShmMap) {
                .domain = BENCH_DOMAIN,
                .n_ranges = 2,
                .ranges = m->ranges,
                .n_peers = n,
                .peers = m->peers,
        };
        return m;
}

static BenchMap *bench_map_free(BenchMap *m) {
        if (m) {
                free(m->peers);
                free(m->v4);
                free(m->v6);
                free(m->labels);
                free(m);
        }
        return NULL;
}

/* ---- name sequences: what each workload asks, in order ---- */

typedef struct NameSeq {
        size_t n, pos;
        char (*names)[BENCH_NAME_SIZE];
} NameSeq;

/* Hot set: min(n, HOT_SET) names spread evenly over the store, shuffled.
 * Random: RANDOM_SEQ uniformly chosen names of all n. Both are laid out in
 * asking order so that reading the next name streams through memory and
 * the caches hold the store, not the benchmark's own name list. */
static void name_seq_init(NameSeq *q, int workload, uint32_t n, size_t len, uint64_t seed) {
        if (workload == WL_HOT) {
                size_t k = n < HOT_SET ? n : HOT_SET;
                uint32_t *idx = xcalloc(k, sizeof(*idx));
                for (size_t i = 0; i < k; i++)
                        idx[i] = (uint32_t) ((uint64_t) i * n / k);
                for (size_t i = k - 1; i > 0; i--) {
                        size_t j = rng_next(&seed) % (i + 1);
                        uint32_t t = idx[i];
                        idx[i] = idx[j];
                        idx[j] = t;
                }
                q->n = k;
                q->names = xcalloc(k, sizeof(*q->names));
                for (size_t i = 0; i < k; i++)
                        bench_peer_fqdn(idx[i], q->names[i]);
                free(idx);
        } else {
                q->n = len;
                q->names = xcalloc(len, sizeof(*q->names));
                for (size_t i = 0; i < len; i++)
                        bench_peer_fqdn((uint32_t) (rng_next(&seed) % n), q->names[i]);
        }
        q->pos = 0;
}

static void name_seq_done(NameSeq *q) {
        free(q->names);
        q->names = NULL;
}

static inline const char *name_seq_next(NameSeq *q) {
        const char *s = q->names[q->pos];
        if (++q->pos == q->n)
                q->pos = 0;
        return s;
}

/* ---- the measured call ---- */

/* One lookup as getaddrinfo makes it: a fresh tuple pointer, glibc's first
 * buffer size, and a TTL. */
static inline bool lookup(const char *name) {
        char buffer[GAI_BUFFER];
        struct gaih_addrtuple *pat = NULL;
        int e, he;
        int32_t ttl;
        return _nss_ztna_gethostbyname4_r(name, &pat, buffer, sizeof(buffer), &e, &he, &ttl) ==
               NSS_STATUS_SUCCESS;
}

static double time_batch(NameSeq *q, unsigned calls, uint64_t *failures) {
        int64_t t0 = now_ns();
        for (unsigned i = 0; i < calls; i++)
                if (!lookup(name_seq_next(q)))
                        (*failures)++;
        int64_t t1 = now_ns();
        return (double) (t1 - t0) / calls;
}

static void time_singles(NameSeq *q, unsigned calls, int64_t timer, Hist *h, uint64_t *failures) {
        for (unsigned i = 0; i < calls; i++) {
                const char *name = name_seq_next(q);
                int64_t t0 = now_ns();
                bool ok = lookup(name);
                int64_t t1 = now_ns();
                if (!ok)
                        (*failures)++;
                hist_add(h, t1 - t0 - timer);
        }
}

/* True when the answer in `pat` is peer i's: its IPv4, then its IPv6
 * address, under its FQDN. */
static bool answer_is(const struct gaih_addrtuple *pat, uint32_t i) {
        char fqdn[BENCH_NAME_SIZE];
        struct in_addr v4 = bench_peer_v4(i);
        struct in6_addr v6 = bench_peer_v6(i);
        bench_peer_fqdn(i, fqdn);
        return pat && pat->family == AF_INET && memcmp(pat->addr, &v4, 4) == 0 && strcmp(pat->name, fqdn) == 0 &&
               pat->next && pat->next->family == AF_INET6 && memcmp(pat->next->addr, &v6, 16) == 0 &&
               !pat->next->next;
}

/* Looks every peer up once, checking the answers; this also makes the
 * mapping and faults it in. Returns the number of wrong answers. */
static uint64_t warm_up(uint32_t n) {
        uint64_t failures = 0;
        for (uint32_t i = 0; i < n; i++) {
                char name[BENCH_NAME_SIZE], buffer[GAI_BUFFER];
                struct gaih_addrtuple *pat = NULL;
                int e, he;
                int32_t ttl;
                bench_peer_fqdn(i, name);
                if (_nss_ztna_gethostbyname4_r(name, &pat, buffer, sizeof(buffer), &e, &he, &ttl) !=
                            NSS_STATUS_SUCCESS ||
                    !answer_is(pat, i))
                        failures++;
        }
        return failures;
}

/* ---- store: publish once ---- */

static int cmd_store(const char *path, uint32_t n) {
        BenchMap *m = bench_map_new(n);
        ShmWriter *w;
        int e = shm_writer_open(path, &w);
        if (e < 0)
                die(path, e);
        e = shm_writer_publish(w, &m->map, true);
        if (e < 0)
                die("shm_writer_publish", e);
        printf("store.%u.size_bytes=%llu\n", n, (unsigned long long) shm_writer_file_size(w));
        shm_writer_close(w);
        bench_map_free(m);
        return 0;
}

/* ---- hosts: the same peers for the "files" module ---- */

static int cmd_hosts(uint32_t first, uint32_t count) {
        if (count > BENCH_PEERS_MAX - first)
                die("hosts: too many peers", ERANGE);
        for (uint32_t i = first; i < first + count; i++) {
                char label[BENCH_NAME_SIZE], fqdn[BENCH_NAME_SIZE], a4[INET_ADDRSTRLEN], a6[INET6_ADDRSTRLEN];
                struct in_addr v4 = bench_peer_v4(i);
                struct in6_addr v6 = bench_peer_v6(i);
                bench_peer_label(i, label);
                bench_peer_fqdn(i, fqdn);
                inet_ntop(AF_INET, &v4, a4, sizeof(a4));
                inet_ntop(AF_INET6, &v6, a6, sizeof(a6));
                printf("%s %s %s\n%s %s %s\n", a4, fqdn, label, a6, fqdn, label);
        }
        return 0;
}

/* ---- publish: the cost of a new generation ---- */

static void path_concat(char buf[static BENCH_PATH_MAX], const char *a, const char *b) {
        int k = snprintf(buf, BENCH_PATH_MAX, "%s%s", a, b);
        if (k < 0 || k >= (int) BENCH_PATH_MAX)
                die(a, ENAMETOOLONG);
}

/* Removes a store and its writer's lock file. */
static void unlink_store(const char *path) {
        char lock[BENCH_PATH_MAX];
        (void) unlink(path);
        path_concat(lock, path, ".lock");
        (void) unlink(lock);
}

/* The time of one publish into a store that does not exist yet: the file is
 * created, allocated, written and renamed into place. */
static double time_create(const char *path, const BenchMap *m) {
        ShmWriter *w;
        unlink_store(path);
        int e = shm_writer_open(path, &w);
        if (e < 0)
                die(path, e);
        int64_t t0 = now_ns();
        e = shm_writer_publish(w, &m->map, true);
        int64_t t1 = now_ns();
        if (e < 0)
                die("shm_writer_publish", e);
        shm_writer_close(w);
        return (double) (t1 - t0) / 1e6;
}

static int cmd_publish(const char *dir, uint32_t n, uint32_t reps) {
        char path[BENCH_PATH_MAX], scratch[BENCH_PATH_MAX];
        path_concat(path, dir, "/records");
        path_concat(scratch, dir, "/scratch");
        BenchMap *m = bench_map_new(n);
        double *create = xcalloc(reps + 1, sizeof(double)), *update = xcalloc(reps, sizeof(double));

        /* The store the later steps use: its first publish creates it. */
        create[0] = time_create(path, m);
        ShmWriter *w;
        int e = shm_writer_open(path, &w);
        if (e < 0)
                die(path, e);
        uint64_t size = shm_writer_file_size(w);

        /* Alternate the two kinds so drift hits both alike. */
        for (uint32_t r = 0; r < reps; r++) {
                create[r + 1] = time_create(scratch, m);
                unlink_store(scratch);
                int64_t t0 = now_ns();
                e = shm_writer_publish(w, &m->map, true);
                int64_t t1 = now_ns();
                if (e < 0)
                        die("shm_writer_publish", e);
                update[r] = (double) (t1 - t0) / 1e6;
                if (shm_writer_file_size(w) != size)
                        die("republish changed the file", EINVAL);
        }
        shm_writer_close(w);

        struct stat st;
        if (stat(path, &st) < 0)
                die(path, errno);
        printf("publish.%u.first_ms=%.2f\n", n, create[0]);
        printf("publish.%u.create_median_ms=%.2f\n", n, median(create, reps + 1));
        printf("publish.%u.create_max_ms=%.2f\n", n, create[reps]);
        printf("publish.%u.update_median_ms=%.2f\n", n, median(update, reps));
        printf("publish.%u.update_max_ms=%.2f\n", n, update[reps - 1]);
        printf("publish.%u.reps=%u\n", n, reps);
        printf("store.%u.size_bytes=%llu\n", n, (unsigned long long) st.st_size);
        printf("store.%u.bytes_per_record=%.1f\n", n, (double) st.st_size / n);
        free(create);
        free(update);
        bench_map_free(m);
        return 0;
}

/* ---- copy: the store's persisted copy (docs/store-fallback.md) ---- */

/* What ztnad does for each save: the export runs on its event loop, the
 * save (write, fsync, rename, fsync of the directory) on a thread of its
 * own. The store in DIR (tmpfs, as /run), the copy in COPY_DIR (a disk, as
 * /var/cache). */
static int cmd_copy(const char *dir, const char *copy_dir, uint32_t n, uint32_t reps) {
        char path[BENCH_PATH_MAX], copy[BENCH_PATH_MAX];
        path_concat(path, dir, "/copy-source");
        path_concat(copy, copy_dir, "/records");
        BenchMap *m = bench_map_new(n);
        double *exp = xcalloc(reps, sizeof(double)), *save = xcalloc(reps, sizeof(double));
        ShmWriter *w;
        int e = shm_writer_open(path, &w);
        if (e < 0)
                die(path, e);
        e = shm_writer_publish(w, &m->map, true);
        if (e < 0)
                die("shm_writer_publish", e);

        size_t len = 0;
        for (uint32_t r = 0; r < reps; r++) {
                void *img;
                int64_t t0 = now_ns();
                e = shm_writer_export(w, &img, &len);
                int64_t t1 = now_ns();
                if (e < 0)
                        die("shm_writer_export", e);
                e = shm_store_save(copy, img, len);
                int64_t t2 = now_ns();
                if (e < 0)
                        die(copy, e);
                free(img);
                exp[r] = (double) (t1 - t0) / 1e6;
                save[r] = (double) (t2 - t1) / 1e6;
        }
        double emax = 0, smax = 0;
        for (uint32_t r = 0; r < reps; r++) {
                emax = exp[r] > emax ? exp[r] : emax;
                smax = save[r] > smax ? save[r] : smax;
        }
        printf("copy.%u.export_median_ms=%.2f\n", n, median(exp, reps));
        printf("copy.%u.export_max_ms=%.2f\n", n, emax);
        printf("copy.%u.save_median_ms=%.2f\n", n, median(save, reps));
        printf("copy.%u.save_max_ms=%.2f\n", n, smax);
        printf("copy.%u.reps=%u\n", n, reps);
        printf("copy.%u.size_bytes=%zu\n", n, len);
        printf("copy.%u.store_bytes=%llu\n", n, (unsigned long long) shm_writer_file_size(w));
        shm_writer_close(w);
        unlink_store(path);
        (void) unlink(copy);
        free(exp);
        free(save);
        bench_map_free(m);
        return 0;
}

/* ---- direct: the entry point against two store sizes, interleaved ---- */

/* The module's reader is process-wide and reads $ZTNA_STORE once, so each
 * store size gets a worker process of its own. Both stay alive and warm;
 * the parent has them run one block at a time, alternately, so whatever
 * else the machine does falls on both sizes alike. The workloads take turns
 * in runs of DIRECT_RUN blocks, not block by block: a random block sweeps
 * the caches and would leave the next hot-set block cold. */

enum { WORKER_FINISH = 'f', WORKER_READY = 'r' }; /* else: a workload's index */

typedef struct Worker {
        pid_t pid;
        int to, from; /* command pipe, result pipe */
} Worker;

/* What a worker sends back at the end. */
typedef struct WorkerTotals {
        uint64_t failures;
        Hist single[WL_COUNT];
} WorkerTotals;

/* One block of a workload: a timed batch, then single-call timings.
 * Returns the batch's time per call. */
static double worker_block(NameSeq *q, int64_t timer, Hist *h, uint64_t *failures) {
        double ns = time_batch(q, BATCH_CALLS, failures);
        time_singles(q, SINGLE_CALLS, timer, h, failures);
        return ns;
}

static _Noreturn void worker_main(int from, int to, uint32_t n, uint64_t seed, int64_t timer) {
        NameSeq q[WL_COUNT];
        WorkerTotals *t = xcalloc(1, sizeof(*t));
        /* A few names need no long list; a long one would only evict the
         * other worker's data. */
        size_t random_len = (size_t) n * 4 < RANDOM_SEQ ? (size_t) n * 4 + HOT_SET : RANDOM_SEQ;
        name_seq_init(&q[WL_HOT], WL_HOT, n, 0, seed);
        name_seq_init(&q[WL_RANDOM], WL_RANDOM, n, random_len, seed ^ 0x5eed);
        t->failures = warm_up(n);
        for (int w = 0; w < WL_COUNT; w++)
                (void) time_batch(&q[w], (unsigned) q[w].n, &t->failures);

        char c = WORKER_READY;
        if (!write_all(to, &c, 1))
                _exit(1);
        /* An explicit command ends it, not EOF: the other worker, forked
         * later, holds a copy of this one's command pipe. */
        while (read_all(from, &c, 1) && c >= 0 && c < WL_COUNT) {
                double ns = worker_block(&q[(int) c], timer, &t->single[(int) c], &t->failures);
                if (!write_all(to, &ns, sizeof(ns)))
                        _exit(1);
        }
        _exit(c == WORKER_FINISH && write_all(to, t, sizeof(*t)) ? 0 : 1);
}

static void worker_start(Worker *wk, const char *store, uint32_t n, uint64_t seed, int64_t timer) {
        int cmd[2], res[2];
        if (pipe2(cmd, O_CLOEXEC) < 0 || pipe2(res, O_CLOEXEC) < 0)
                die("pipe2", errno);
        fflush(NULL);
        wk->pid = fork();
        if (wk->pid < 0)
                die("fork", errno);
        if (wk->pid == 0) {
                close(cmd[1]);
                close(res[0]);
                /* The module's reader reads $ZTNA_STORE when it first maps. */
                if (setenv(SHM_ENV_PATH, store, 1) < 0)
                        _exit(1);
                /* Both workers on one CPU: they run by turns anyway, and a
                 * worker moved to the other CPU would start its block with
                 * cold caches. */
                pin_to_cpu(0);
                worker_main(cmd[0], res[1], n, seed, timer);
        }
        close(cmd[0]);
        close(res[1]);
        wk->to = cmd[1];
        wk->from = res[0];
}

static void worker_wait_ready(Worker *wk) {
        char c;
        if (!read_all(wk->from, &c, 1) || c != WORKER_READY)
                die("direct worker did not start", EIO);
}

static double worker_run_block(Worker *wk, int workload) {
        char c = (char) workload;
        double ns;
        if (!write_all(wk->to, &c, 1) || !read_all(wk->from, &ns, sizeof(ns)))
                die("direct worker stopped", EIO);
        return ns;
}

static void worker_finish(Worker *wk, WorkerTotals *t) {
        int status;
        char c = WORKER_FINISH;
        bool ok = write_all(wk->to, &c, 1) && read_all(wk->from, t, sizeof(*t));
        close(wk->to);
        close(wk->from);
        if (waitpid(wk->pid, &status, 0) < 0)
                die("waitpid", errno);
        if (!ok || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                die("direct worker failed", EIO);
}

static int cmd_direct(const char *stores[2], const uint32_t sizes[2], uint32_t blocks) {
        int64_t timer = timer_overhead_ns();
        Worker wk[2];
        double *batches[2][WL_COUNT];
        WorkerTotals *totals = xcalloc(2, sizeof(*totals));

        for (int s = 0; s < 2; s++) {
                for (int w = 0; w < WL_COUNT; w++)
                        batches[s][w] = xcalloc(blocks, sizeof(double));
                worker_start(&wk[s], stores[s], sizes[s], UINT64_C(0x2545f4914f6cdd1d) * (uint64_t) (s + 1), timer);
        }
        /* Both warm before either is timed. */
        for (int s = 0; s < 2; s++)
                worker_wait_ready(&wk[s]);
        for (uint32_t b0 = 0; b0 < blocks; b0 += DIRECT_RUN)
                for (int w = 0; w < WL_COUNT; w++)
                        for (uint32_t b = b0; b < blocks && b < b0 + DIRECT_RUN; b++)
                                for (int k = 0; k < 2; k++) {
                                        int s = (int) ((b + (uint32_t) k) % 2); /* who goes first alternates */
                                        batches[s][w][b] = worker_run_block(&wk[s], w);
                                }
        for (int s = 0; s < 2; s++)
                worker_finish(&wk[s], &totals[s]);

        printf("direct.timer_ns=%lld\n", (long long) timer);
        printf("direct.batches=%u\n", blocks);
        printf("direct.batch_calls=%u\n", BATCH_CALLS);
        printf("direct.single_calls=%u\n", SINGLE_CALLS);
        for (int s = 0; s < 2; s++) {
                printf("direct.%u.failures=%llu\n", sizes[s], (unsigned long long) totals[s].failures);
                for (int w = 0; w < WL_COUNT; w++) {
                        const char *wl = workload_name[w];
                        const Hist *h = &totals[s].single[w];
                        printf("direct.%s.%u.median_ns=%.1f\n", wl, sizes[s], median(batches[s][w], blocks));
                        printf("direct.%s.%u.single_p50_ns=%llu\n", wl, sizes[s],
                               (unsigned long long) hist_quantile(h, 0.50));
                        printf("direct.%s.%u.single_p99_ns=%llu\n", wl, sizes[s],
                               (unsigned long long) hist_quantile(h, 0.99));
                        printf("direct.%s.%u.singles=%llu\n", wl, sizes[s], (unsigned long long) h->total);
                        free(batches[s][w]);
                }
        }
        free(totals);
        return 0; /* failures are in the output, for the table to show */
}

/* ---- count: a bare loop for valgrind --tool=callgrind ---- */

static int cmd_count(uint32_t n, uint32_t calls) {
        NameSeq q;
        name_seq_init(&q, WL_RANDOM, n, calls, UINT64_C(0xca11) + n);
        /* Map the store outside the counted function. */
        ShmSnapshot s;
        int e = shm_snapshot_begin(shm_reader_default(), &s);
        if (e < 0)
                die("shm_snapshot_begin", e);
        (void) shm_snapshot_end(&s);
        uint64_t failures = 0;
        for (uint32_t i = 0; i < calls; i++)
                if (!lookup(name_seq_next(&q)))
                        failures++;
        name_seq_done(&q);
        printf("count.%u.calls=%u\n", n, calls);
        printf("count.%u.failures=%llu\n", n, (unsigned long long) failures);
        return 0;
}

/* ---- contend: lookups while a writer republishes on the other core ---- */

typedef struct Contention {
        pthread_mutex_t lock;
        pthread_cond_t wake, parked_cv;
        bool busy, parked, stop;
        const BenchMap *map;
        const char *path;
        int cpu;
        uint64_t publishes;
        double publish_ms[4096];
        int error;
} Contention;

static void *writer_thread(void *arg) {
        Contention *c = arg;
        ShmWriter *w = NULL;
        pin_to_cpu(c->cpu);
        int e = shm_writer_open(c->path, &w);
        pthread_mutex_lock(&c->lock);
        if (e < 0)
                c->error = e;
        for (;;) {
                while (!c->stop && (!c->busy || c->error < 0)) {
                        c->parked = true;
                        pthread_cond_broadcast(&c->parked_cv);
                        pthread_cond_wait(&c->wake, &c->lock);
                }
                c->parked = false;
                if (c->stop)
                        break;
                pthread_mutex_unlock(&c->lock);

                int64_t t0 = now_ns();
                e = shm_writer_publish(w, &c->map->map, true);
                int64_t t1 = now_ns();

                pthread_mutex_lock(&c->lock);
                if (e < 0)
                        c->error = e;
                else if (c->publishes < ELEMENTSOF(c->publish_ms))
                        c->publish_ms[c->publishes++] = (double) (t1 - t0) / 1e6;
                else
                        c->publishes++;
        }
        pthread_mutex_unlock(&c->lock);
        shm_writer_close(w);
        return NULL;
}

static void writer_set_busy(Contention *c, bool busy) {
        pthread_mutex_lock(&c->lock);
        c->busy = busy;
        pthread_cond_broadcast(&c->wake);
        /* Going idle: measure only once the writer has stopped writing. */
        while (!busy && !c->parked)
                pthread_cond_wait(&c->parked_cv, &c->lock);
        pthread_mutex_unlock(&c->lock);
}

/* One phase: single timed lookups until `ms` have passed. Also checks every
 * answer is the asked peer's: a torn read must never leak out. */
static void contend_phase(NameSeq *q, uint32_t ms, int64_t timer, Hist *h, uint64_t *failures) {
        int64_t end = now_ns() + (int64_t) ms * 1000000;
        for (;;) {
                char buffer[GAI_BUFFER];
                struct gaih_addrtuple *pat = NULL;
                int e, he;
                int32_t ttl;
                const char *name = name_seq_next(q);
                int64_t t0 = now_ns();
                enum nss_status st = _nss_ztna_gethostbyname4_r(name, &pat, buffer, sizeof(buffer), &e, &he, &ttl);
                int64_t t1 = now_ns();
                hist_add(h, t1 - t0 - timer);
                /* "host-%06u." */
                if (st != NSS_STATUS_SUCCESS || !answer_is(pat, (uint32_t) strtoul(name + 5, NULL, 10)))
                        (*failures)++;
                if (t1 >= end)
                        break;
        }
}

static int cmd_contend(uint32_t n, uint32_t pairs, uint32_t ms) {
        const char *path = getenv(SHM_ENV_PATH);
        if (!path)
                die("$" SHM_ENV_PATH " is not set", EINVAL);
        int64_t timer = timer_overhead_ns();
        BenchMap *m = bench_map_new(n);
        Contention *c = xcalloc(1, sizeof(*c));
        pthread_mutex_init(&c->lock, NULL);
        pthread_cond_init(&c->wake, NULL);
        pthread_cond_init(&c->parked_cv, NULL);
        c->map = m;
        c->path = path;
        c->cpu = 1;
        pin_to_cpu(0);

        NameSeq q[WL_COUNT];
        name_seq_init(&q[WL_HOT], WL_HOT, n, 0, 0xc0ffee);
        name_seq_init(&q[WL_RANDOM], WL_RANDOM, n, RANDOM_SEQ, 0xdecaf);
        uint64_t failures[2] = { warm_up(n), 0 }; /* idle, busy */
        Hist *h = xcalloc(2 * WL_COUNT, sizeof(Hist)); /* [busy][workload] */

        pthread_t t;
        int e = pthread_create(&t, NULL, writer_thread, c);
        if (e != 0)
                die("pthread_create", e);
        writer_set_busy(c, false);
        /* Each pair is idle then busy or busy then idle, alternating, for
         * each workload in turn. */
        for (uint32_t p = 0; p < pairs; p++)
                for (int w = 0; w < WL_COUNT; w++)
                        for (int k = 0; k < 2; k++) {
                                bool busy = (p + (uint32_t) k) % 2;
                                writer_set_busy(c, busy);
                                contend_phase(&q[w], ms, timer, &h[busy * WL_COUNT + w], &failures[busy]);
                        }
        pthread_mutex_lock(&c->lock);
        c->stop = true;
        pthread_cond_broadcast(&c->wake);
        pthread_mutex_unlock(&c->lock);
        pthread_join(t, NULL);
        if (c->error < 0)
                die("writer", c->error);

        size_t np = c->publishes < ELEMENTSOF(c->publish_ms) ? c->publishes : ELEMENTSOF(c->publish_ms);
        printf("contend.timer_ns=%lld\n", (long long) timer);
        printf("contend.phase_ms=%u\n", ms);
        printf("contend.publishes=%llu\n", (unsigned long long) c->publishes);
        printf("contend.publish_median_ms=%.2f\n", median(c->publish_ms, np));
        printf("contend.idle.failures=%llu\n", (unsigned long long) failures[0]);
        printf("contend.busy.failures=%llu\n", (unsigned long long) failures[1]);
        for (int busy = 0; busy < 2; busy++)
                for (int w = 0; w < WL_COUNT; w++) {
                        const Hist *x = &h[busy * WL_COUNT + w];
                        const char *cond = busy ? "busy" : "idle";
                        printf("contend.%s.%s.calls=%llu\n", cond, workload_name[w], (unsigned long long) x->total);
                        printf("contend.%s.%s.p50_ns=%llu\n", cond, workload_name[w],
                               (unsigned long long) hist_quantile(x, 0.50));
                        printf("contend.%s.%s.p99_ns=%llu\n", cond, workload_name[w],
                               (unsigned long long) hist_quantile(x, 0.99));
                        printf("contend.%s.%s.p999_ns=%llu\n", cond, workload_name[w],
                               (unsigned long long) hist_quantile(x, 0.999));
                }
        for (int w = 0; w < WL_COUNT; w++)
                name_seq_done(&q[w]);
        free(h);
        free(c);
        bench_map_free(m);
        return 0; /* failures are in the output, for the table to show */
}

static _Noreturn void usage(void) {
        fprintf(stderr, "usage: bench-nss store PATH N\n"
                        "       bench-nss hosts FIRST COUNT\n"
                        "       bench-nss publish DIR N REPS\n"
                        "       bench-nss copy DIR COPY_DIR N REPS\n"
                        "       bench-nss direct SMALL N1 LARGE N2 BLOCKS\n"
                        "       bench-nss count N CALLS\n"
                        "       bench-nss contend N PAIRS PHASE_MS\n");
        exit(2);
}

int main(int argc, char **argv) {
        if (argc < 2)
                usage();
        const char *cmd = argv[1];
        int r;
        if (strcmp(cmd, "store") == 0 && argc == 4)
                r = cmd_store(argv[2], parse_u32(argv[3], "N", 1));
        else if (strcmp(cmd, "hosts") == 0 && argc == 4)
                r = cmd_hosts(parse_u32(argv[2], "FIRST", 0), parse_u32(argv[3], "COUNT", 1));
        else if (strcmp(cmd, "publish") == 0 && argc == 5)
                r = cmd_publish(argv[2], parse_u32(argv[3], "N", 1), parse_u32(argv[4], "REPS", 1));
        else if (strcmp(cmd, "copy") == 0 && argc == 6)
                r = cmd_copy(argv[2], argv[3], parse_u32(argv[4], "N", 1), parse_u32(argv[5], "REPS", 1));
        else if (strcmp(cmd, "direct") == 0 && argc == 7) {
                const char *stores[2] = { argv[2], argv[4] };
                uint32_t sizes[2] = { parse_u32(argv[3], "N1", 1), parse_u32(argv[5], "N2", 1) };
                r = cmd_direct(stores, sizes, parse_u32(argv[6], "BLOCKS", 1));
        } else if (strcmp(cmd, "count") == 0 && argc == 4)
                r = cmd_count(parse_u32(argv[2], "N", 1), parse_u32(argv[3], "CALLS", 1));
        else if (strcmp(cmd, "contend") == 0 && argc == 5)
                r = cmd_contend(parse_u32(argv[2], "N", 1), parse_u32(argv[3], "PAIRS", 1), parse_u32(argv[4], "PHASE_MS", 1));
        else
                usage();
        if (fflush(stdout) != 0)
                r = 1;
        return r;
}
