/* SPDX-License-Identifier: MIT */
/*
 * bench-gai: getaddrinfo through several "hosts:" lines, round-robin.
 *
 *     bench-gai serve NAME FAMILY WARMUP CALLS         FAMILY: unspec or inet
 *     bench-gai compare ROUNDS VARIANTS
 *
 * "serve" times getaddrinfo(NAME, NULL, {FAMILY, SOCK_STREAM}) +
 * freeaddrinfo() through whatever nsswitch.conf the process sees. It first
 * checks that the answer is the benchmark peer's (tests/bench/bench-peers.h: its
 * IPv4 and, for unspec, its IPv6 address, nothing else), since a wrong
 * "hosts:" line or a module glibc could not load would otherwise be timed as
 * a fast failure; then it makes WARMUP untimed calls and prints "ready".
 * For each byte read from stdin it then times CALLS calls back to back and
 * prints the mean nanoseconds per call on a line; EOF ends it.
 *
 * "compare" starts one server per line of the file VARIANTS,
 *
 *     NAME BATCHES SHELL-COMMAND...
 *
 * with `sh -c SHELL-COMMAND` (tests/bench/run-bench.sh makes each command enter a
 * private mount namespace with its own nsswitch.conf and hosts file bind-
 * mounted over /etc's, then exec "bench-gai serve"). When all are ready it
 * runs ROUNDS rounds, asking each server in turn for BATCHES batches, each
 * round starting one server later. Every server stays alive and warm
 * throughout, so the variants are interleaved batch by batch and a noisy
 * neighbour hurts them alike. It prints "gai.NAME.median_ns=" and
 * "gai.NAME.batches=" for each, and "gai.failed=" naming any that broke.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench-peers.h"

#define VARIANTS_MAX 16
#define LINE_MAX_GAI 4096

static struct addrinfo gai_hints = {
        .ai_family = AF_UNSPEC,
        .ai_socktype = SOCK_STREAM,
};

static double now_ns(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec * 1e9 + (double) ts.tv_nsec;
}

static unsigned long parse_count(const char *s, const char *what) {
        char *end;
        errno = 0;
        unsigned long v = strtoul(s, &end, 10);
        if (errno || end == s || *end || v == 0 || v > 100000000ul) {
                fprintf(stderr, "bench-gai: bad %s: %s\n", what, s);
                exit(2);
        }
        return v;
}

static int cmp_double(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;
        return (x > y) - (x < y);
}

/* ---- serve ---- */

/* True when `res` is exactly the benchmark peer's addresses of the family
 * asked. */
static bool answer_ok(const struct addrinfo *res) {
        struct in_addr v4 = bench_peer_v4(BENCH_GAI_PEER);
        struct in6_addr v6 = bench_peer_v6(BENCH_GAI_PEER);
        unsigned seen4 = 0, seen6 = 0, other = 0;
        for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
                if (ai->ai_family == AF_INET && ai->ai_addrlen == sizeof(struct sockaddr_in) &&
                    memcmp(&((const struct sockaddr_in *) ai->ai_addr)->sin_addr, &v4, 4) == 0)
                        seen4++;
                else if (ai->ai_family == AF_INET6 && ai->ai_addrlen == sizeof(struct sockaddr_in6) &&
                         memcmp(&((const struct sockaddr_in6 *) ai->ai_addr)->sin6_addr, &v6, 16) == 0)
                        seen6++;
                else
                        other++;
        }
        return seen4 == 1 && seen6 == (gai_hints.ai_family == AF_UNSPEC) && other == 0;
}

static int cmd_serve(const char *name, const char *family, unsigned long warmup, unsigned long calls) {
        if (strcmp(family, "inet") == 0)
                gai_hints.ai_family = AF_INET;
        else if (strcmp(family, "unspec") != 0) {
                fprintf(stderr, "bench-gai: bad FAMILY: %s\n", family);
                return 2;
        }

        struct addrinfo *res = NULL;
        int e = getaddrinfo(name, NULL, &gai_hints, &res);
        if (e != 0) {
                fprintf(stderr, "bench-gai: %s: %s\n", name, gai_strerror(e));
                return 1;
        }
        bool ok = answer_ok(res);
        freeaddrinfo(res);
        if (!ok) {
                fprintf(stderr, "bench-gai: %s: not the benchmark peer's addresses\n", name);
                return 1;
        }
        for (unsigned long i = 0; i < warmup; i++) {
                if (getaddrinfo(name, NULL, &gai_hints, &res) != 0)
                        return 1;
                freeaddrinfo(res);
        }
        printf("ready\n");
        fflush(stdout);

        while (getchar() != EOF) {
                unsigned long failed = 0;
                double t0 = now_ns();
                for (unsigned long i = 0; i < calls; i++) {
                        if (getaddrinfo(name, NULL, &gai_hints, &res) != 0) {
                                failed++;
                                continue;
                        }
                        freeaddrinfo(res);
                }
                double t1 = now_ns();
                if (failed) {
                        fprintf(stderr, "bench-gai: %s: %lu of %lu calls failed\n", name, failed, calls);
                        return 1;
                }
                printf("%.1f\n", (t1 - t0) / (double) calls);
                if (fflush(stdout) != 0)
                        return 1;
        }
        return 0;
}

/* ---- compare ---- */

typedef struct Variant {
        char name[64];
        unsigned long batches;
        char *command;
        pid_t pid;
        FILE *to, *from;
        double *ns;
        size_t n_ns;
        bool failed;
} Variant;

static bool variant_start(Variant *v) {
        int in[2], out[2];
        if (pipe2(in, O_CLOEXEC) < 0 || pipe2(out, O_CLOEXEC) < 0)
                return false;
        fflush(NULL);
        v->pid = fork();
        if (v->pid < 0)
                return false;
        if (v->pid == 0) {
                if (dup2(in[0], STDIN_FILENO) < 0 || dup2(out[1], STDOUT_FILENO) < 0)
                        _exit(127);
                execl("/bin/sh", "sh", "-c", v->command, (char *) NULL);
                _exit(127);
        }
        close(in[0]);
        close(out[1]);
        v->to = fdopen(in[1], "w");
        v->from = fdopen(out[0], "r");
        return v->to && v->from;
}

static void variant_fail(Variant *v, const char *why) {
        if (!v->failed)
                fprintf(stderr, "bench-gai: %s: %s\n", v->name, why);
        v->failed = true;
}

/* Reads one line from a server; false on EOF or a line too long. */
static bool variant_line(Variant *v, char *line, size_t size) {
        if (!fgets(line, (int) size, v->from) || !strchr(line, '\n'))
                return false;
        line[strcspn(line, "\n")] = '\0';
        return true;
}

static void variant_batch(Variant *v) {
        char line[128], *end;
        if (fputc('b', v->to) == EOF || fflush(v->to) != 0 || !variant_line(v, line, sizeof(line))) {
                variant_fail(v, "server stopped");
                return;
        }
        errno = 0;
        double ns = strtod(line, &end);
        if (errno || end == line || *end || ns <= 0) {
                variant_fail(v, "server sent garbage");
                return;
        }
        v->ns[v->n_ns++] = ns;
}

static size_t variants_read(const char *path, Variant *vs) {
        FILE *f = fopen(path, "re");
        if (!f) {
                fprintf(stderr, "bench-gai: %s: %s\n", path, strerror(errno));
                exit(1);
        }
        char line[LINE_MAX_GAI];
        size_t n = 0;
        while (fgets(line, sizeof(line), f)) {
                int name_end = 0, batches_end = 0;
                line[strcspn(line, "\n")] = '\0';
                if (line[0] == '\0')
                        continue;
                if (n == VARIANTS_MAX || sscanf(line, "%*63s%n %*u%n", &name_end, &batches_end) != 0 ||
                    batches_end == 0 || line[batches_end] != ' ') {
                        fprintf(stderr, "bench-gai: %s: bad line: %s\n", path, line);
                        exit(2);
                }
                Variant *v = &vs[n++];
                memcpy(v->name, line, (size_t) name_end);
                v->name[name_end] = '\0';
                v->batches = strtoul(line + name_end, NULL, 10);
                v->command = strdup(line + batches_end + 1);
                if (!v->command || v->batches == 0) {
                        fprintf(stderr, "bench-gai: %s: bad line: %s\n", path, line);
                        exit(2);
                }
        }
        fclose(f);
        return n;
}

static int cmd_compare(unsigned long rounds, const char *path) {
        Variant vs[VARIANTS_MAX] = {};
        size_t n = variants_read(path, vs);

        /* A server that dies must not kill us with SIGPIPE. */
        signal(SIGPIPE, SIG_IGN);
        for (size_t i = 0; i < n; i++) {
                vs[i].ns = calloc(rounds * vs[i].batches, sizeof(double));
                if (!vs[i].ns || !variant_start(&vs[i])) {
                        fprintf(stderr, "bench-gai: cannot start %s\n", vs[i].name);
                        return 1;
                }
        }
        for (size_t i = 0; i < n; i++) {
                char line[128];
                if (!variant_line(&vs[i], line, sizeof(line)) || strcmp(line, "ready") != 0)
                        variant_fail(&vs[i], "server did not start");
        }

        for (unsigned long r = 0; r < rounds; r++)
                for (size_t k = 0; k < n; k++) {
                        Variant *v = &vs[(r + k) % n];
                        for (unsigned long b = 0; b < v->batches && !v->failed; b++)
                                variant_batch(v);
                }

        bool any_failed = false;
        for (size_t i = 0; i < n; i++) {
                Variant *v = &vs[i];
                fclose(v->to);
                fclose(v->from);
                int status;
                if (waitpid(v->pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                        variant_fail(v, "server exited with an error");
                any_failed |= v->failed;
                if (v->failed || v->n_ns == 0)
                        continue;
                qsort(v->ns, v->n_ns, sizeof(double), cmp_double);
                double med = v->n_ns % 2 ? v->ns[v->n_ns / 2] : (v->ns[v->n_ns / 2 - 1] + v->ns[v->n_ns / 2]) / 2;
                printf("gai.%s.median_ns=%.1f\n", v->name, med);
                printf("gai.%s.batches=%zu\n", v->name, v->n_ns);
        }
        if (any_failed) {
                printf("gai.failed=");
                for (size_t i = 0; i < n; i++)
                        if (vs[i].failed)
                                printf("%s ", vs[i].name);
                printf("\n");
        }
        for (size_t i = 0; i < n; i++) {
                free(vs[i].ns);
                free(vs[i].command);
        }
        return fflush(stdout) == 0 ? 0 : 1;
}

int main(int argc, char **argv) {
        if (argc == 6 && strcmp(argv[1], "serve") == 0)
                return cmd_serve(argv[2], argv[3], parse_count(argv[4], "WARMUP"), parse_count(argv[5], "CALLS"));
        if (argc == 4 && strcmp(argv[1], "compare") == 0)
                return cmd_compare(parse_count(argv[2], "ROUNDS"), argv[3]);
        fprintf(stderr, "usage: bench-gai serve NAME unspec|inet WARMUP CALLS\n"
                        "       bench-gai compare ROUNDS VARIANTS\n");
        return 2;
}
