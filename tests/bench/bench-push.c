/* SPDX-License-Identifier: MIT */
/*
 * bench-push: how long a change to the peer map takes to reach getaddrinfo.
 *
 *     bench-push peers N                      a peers document of N peers
 *     bench-push push SOCKET UPDATES PEERS    through the control socket
 *     bench-push file PATH UPDATES PEERS      by replacing ztnad's peers file
 *
 * "peers" prints the synthetic tailnet of tests/bench/bench-peers.h as a peers
 * document (for the daemon's memory benchmark).
 *
 * "push" and "file" make UPDATES changes, one after the other, to a tailnet of
 * PEERS peers plus one more whose name and address are new at every update
 * ("upd-000123", 100.96.0.0 + 123). The clock starts just before the first
 * byte of the change leaves this process: the push request written to the
 * control socket (this program speaks the protocol itself, so no `ztna`
 * process start-up is timed), or the temporary file opened, written, closed
 * and renamed over PATH (what ztnad's directory watch sees). It stops at the
 * first getaddrinfo() of the new name that returns exactly the new address;
 * getaddrinfo is called every 50 us until then (a pause that leaves the CPU
 * to ztnad on a small machine). The push's reply is read
 * after that (it must say "ok"), and the next update starts after a short
 * pause, so each one meets an idle daemon.
 *
 * getaddrinfo goes through the real glibc and whatever nsswitch.conf this
 * process sees: tests/bench/run-bench.sh runs it in a private mount namespace with
 * "hosts: ztna" bind-mounted over /etc/nsswitch.conf and ZTNA_STORE set.
 *
 * Prints WAY.updates=, WAY.peers=, WAY.p50_us=, WAY.p99_us=, WAY.max_us=,
 * WAY.min_us= and WAY.failures= (updates that never became visible within
 * 5 s, or pushes refused); exits 1 if any failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "bench-peers.h"

#define UPDATE_PREFIX     "upd-"
#define UPDATE_NET        ((UINT32_C(100) << 24) | (UINT32_C(96) << 16)) /* 100.96.0.0 */
#define UPDATES_MAX       100000u
#define PEERS_MAX         1000000u
#define WARMUP_UPDATES    5u
#define VISIBLE_LIMIT_NS  (5 * 1000000000.0)
#define PAUSE_NS          (5 * 1000000L)
#define POLL_PAUSE_NS     (50 * 1000L)
#define REPLY_MAX         4096u

static double now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

static unsigned long parse_count(const char *s, const char *what, unsigned long max) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || end == s || *end || v == 0 || v > max) {
                fprintf(stderr, "bench-push: bad %s: %s (1..%lu)\n", what, s, max);
                exit(2);
        }
        return v;
}

/* ---- the document ---- */

typedef struct Buf {
        char *p;
        size_t len, cap;
} Buf;

static void buf_reserve(Buf *b, size_t more) {
        if (b->len + more <= b->cap)
                return;
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + more)
                cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
                fprintf(stderr, "bench-push: out of memory\n");
                exit(1);
        }
        b->p = p;
        b->cap = cap;
}

static void buf_add(Buf *b, const char *s, size_t n) {
        buf_reserve(b, n);
        memcpy(b->p + b->len, s, n);
        b->len += n;
}

static void buf_printf(Buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void buf_printf(Buf *b, const char *fmt, ...) {
        char line[256];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t) n >= sizeof line) {
                fprintf(stderr, "bench-push: line too long\n");
                exit(1);
        }
        buf_add(b, line, (size_t) n);
}

static struct in_addr update_v4(uint32_t i) {
        return (struct in_addr) { .s_addr = htonl(UPDATE_NET + i) };
}

/* The tailnet of `peers` peers, one line each, then the update's peer when
 * `update` is not UINT32_MAX. */
static void make_document(Buf *b, uint32_t peers, uint32_t update) {
        char name[BENCH_NAME_SIZE], v4[INET_ADDRSTRLEN], v6[INET6_ADDRSTRLEN];

        b->len = 0;
        buf_printf(b, "{\"domain\": \"%s\", \"ttl\": %u,\n \"peers\": [", BENCH_DOMAIN, BENCH_TTL);
        for (uint32_t i = 0; i < peers; i++) {
                struct in_addr a4 = bench_peer_v4(i);
                struct in6_addr a6 = bench_peer_v6(i);
                bench_peer_label(i, name);
                inet_ntop(AF_INET, &a4, v4, sizeof v4);
                inet_ntop(AF_INET6, &a6, v6, sizeof v6);
                buf_printf(b, "%s\n  {\"name\": \"%s\", \"addresses\": [\"%s\", \"%s\"]}", i ? "," : "", name, v4,
                           v6);
        }
        if (update != UINT32_MAX) {
                struct in_addr a4 = update_v4(update);
                inet_ntop(AF_INET, &a4, v4, sizeof v4);
                buf_printf(b, "%s\n  {\"name\": \"" UPDATE_PREFIX "%06u\", \"addresses\": [\"%s\"]}",
                           peers ? "," : "", (unsigned) update, v4);
        }
        buf_printf(b, "]}\n");
}

/* The push request: the document as a JSON string (it holds no control
 * character but '\n', and quotes). */
static void make_push(Buf *req, const Buf *doc) {
        static const char head[] = "{\"command\": \"push\", \"document\": \"";
        req->len = 0;
        buf_add(req, head, sizeof head - 1);
        buf_reserve(req, 2 * doc->len + 4);
        for (size_t i = 0; i < doc->len; i++) {
                char c = doc->p[i];
                if (c == '\n') {
                        req->p[req->len++] = '\\';
                        req->p[req->len++] = 'n';
                        continue;
                }
                if (c == '"' || c == '\\')
                        req->p[req->len++] = '\\';
                req->p[req->len++] = c;
        }
        buf_add(req, "\"}\n", 3);
}

/* ---- the measurement ---- */

static const struct addrinfo hints = {
        .ai_family = AF_INET,
        .ai_socktype = SOCK_STREAM,
};

/* True when getaddrinfo(name) gives `want` and nothing else. */
static bool visible(const char *name, struct in_addr want) {
        struct addrinfo *res = NULL;
        bool ok;

        if (getaddrinfo(name, NULL, &hints, &res) != 0)
                return false;
        ok = res && !res->ai_next && res->ai_family == AF_INET &&
             ((const struct sockaddr_in *) res->ai_addr)->sin_addr.s_addr == want.s_addr;
        freeaddrinfo(res);
        return ok;
}

/* Calls getaddrinfo back to back until the update is visible; returns the
 * nanoseconds since `start`, or -1 after VISIBLE_LIMIT_NS. */
static double wait_visible(uint32_t update, double start) {
        char name[BENCH_NAME_SIZE + 8];
        struct in_addr want = update_v4(update);

        snprintf(name, sizeof name, UPDATE_PREFIX "%06u." BENCH_DOMAIN, (unsigned) update);
        for (;;) {
                if (visible(name, want))
                        return now_ns() - start;
                if (now_ns() - start > VISIBLE_LIMIT_NS)
                        return -1;
                /* Leave the CPU to ztnad now and then: on a small machine
                 * a client spinning flat out would slow what it times. */
                nanosleep(&(struct timespec) { .tv_nsec = POLL_PAUSE_NS }, NULL);
        }
}

static int write_all(int fd, const char *p, size_t n) {
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0)
                        return -errno;
                p += k;
                n -= (size_t) k;
        }
        return 0;
}

/* One reply line; 0 when it says "ok": true. */
static int read_reply(int fd) {
        char reply[REPLY_MAX];
        size_t n = 0;

        while (n < sizeof reply - 1) {
                ssize_t k = read(fd, reply + n, sizeof reply - 1 - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0)
                        return k < 0 ? -errno : -ECONNRESET;
                n += (size_t) k;
                reply[n] = '\0';
                if (memchr(reply, '\n', n))
                        break;
        }
        if (!strstr(reply, "\"ok\":true") && !strstr(reply, "\"ok\": true")) {
                fprintf(stderr, "bench-push: ztnad refused the push: %.300s", reply);
                return -EPERM;
        }
        return 0;
}

static int connect_control(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct timeval tv = { .tv_sec = 10 };
        int fd;

        if (strlen(path) >= sizeof sa.sun_path) {
                fprintf(stderr, "bench-push: socket path too long: %s\n", path);
                exit(2);
        }
        strcpy(sa.sun_path, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0 ||
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0) {
                fprintf(stderr, "bench-push: cannot connect to %s: %s\n", path, strerror(errno));
                exit(1);
        }
        return fd;
}

/* Written to PATH.tmp, then renamed over PATH: the atomic way. */
static int replace_file(const char *path, const char *tmp, const Buf *doc) {
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        if (fd < 0)
                return -errno;
        int r = write_all(fd, doc->p, doc->len);
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        return r;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return (x > y) - (x < y);
}

/* The nearest-rank percentile `pct` of n > 0 sorted values. */
static double percentile(const double *sorted, size_t n, unsigned pct) {
        size_t rank = (pct * n + 99) / 100;
        return sorted[rank ? rank - 1 : 0];
}

static int run(bool push, const char *target, uint32_t updates, uint32_t peers) {
        const char *way = push ? "push" : "file";
        double *lat = calloc(updates, sizeof(double));
        Buf doc = { 0 }, req = { 0 };
        char *tmp = NULL;
        size_t n = 0;
        unsigned failures = 0;
        int fd = -1;

        if (!lat || (!push && asprintf(&tmp, "%s.tmp", target) < 0)) {
                fprintf(stderr, "bench-push: out of memory\n");
                return 1;
        }
        if (push)
                fd = connect_control(target);

        for (uint32_t u = 0; u < WARMUP_UPDATES + updates; u++) {
                double start, took;
                int r;

                make_document(&doc, peers, u);
                if (push)
                        make_push(&req, &doc);
                start = now_ns();
                r = push ? write_all(fd, req.p, req.len) : replace_file(target, tmp, &doc);
                if (r < 0) {
                        fprintf(stderr, "bench-push: %s %u: %s\n", way, (unsigned) u, strerror(-r));
                        return 1;
                }
                took = wait_visible(u, start);
                if (push && read_reply(fd) < 0)
                        took = -1;
                if (took < 0) {
                        fprintf(stderr, "bench-push: %s %u never became visible\n", way, (unsigned) u);
                        failures++;
                } else if (u >= WARMUP_UPDATES)
                        lat[n++] = took;
                nanosleep(&(struct timespec) { .tv_nsec = PAUSE_NS }, NULL);
        }
        if (fd >= 0)
                close(fd);

        printf("%s.updates=%u\n%s.peers=%u\n%s.failures=%u\n", way, (unsigned) updates, way, (unsigned) peers, way,
               failures);
        if (n > 0) {
                qsort(lat, n, sizeof *lat, cmp_double);
                printf("%s.p50_us=%.0f\n%s.p99_us=%.0f\n%s.min_us=%.0f\n%s.max_us=%.0f\n", way,
                       percentile(lat, n, 50) / 1e3, way, percentile(lat, n, 99) / 1e3, way, lat[0] / 1e3, way,
                       lat[n - 1] / 1e3);
        }
        free(lat);
        free(doc.p);
        free(req.p);
        free(tmp);
        return failures ? 1 : 0;
}

static void usage(void) {
        fprintf(stderr, "usage: bench-push peers N\n"
                        "       bench-push push SOCKET UPDATES PEERS\n"
                        "       bench-push file PATH UPDATES PEERS\n");
        exit(2);
}

int main(int argc, char **argv) {
        if (argc == 3 && strcmp(argv[1], "peers") == 0) {
                Buf doc = { 0 };
                make_document(&doc, (uint32_t) parse_count(argv[2], "peer count", BENCH_PEERS_MAX), UINT32_MAX);
                if (fwrite(doc.p, 1, doc.len, stdout) != doc.len || fflush(stdout) != 0) {
                        fprintf(stderr, "bench-push: cannot write the document: %s\n", strerror(errno));
                        return 1;
                }
                free(doc.p);
                return 0;
        }
        if (argc != 5 || (strcmp(argv[1], "push") != 0 && strcmp(argv[1], "file") != 0))
                usage();
        return run(strcmp(argv[1], "push") == 0, argv[2], (uint32_t) parse_count(argv[3], "update count", UPDATES_MAX),
                   (uint32_t) parse_count(argv[4], "peer count", PEERS_MAX));
}
