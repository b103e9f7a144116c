/* SPDX-License-Identifier: MIT */
/*
 * bench-parse: what reading a peers document costs, ztna's reader beside
 * jansson's (the tree the reader replaced was built by json_loadb()).
 *
 *     bench-parse FILE REPS
 *
 * Memory: in a fresh child process each, after a warm-up parse of a tiny
 * document (so libpsl's list is loaded already), the peak resident set
 * (ru_maxrss) grows from before the file is read to after it is parsed;
 * that growth over the file's size is the ratio reported: the input buffer
 * itself counts (1x), as it does in ztnad. jansson's figure is json_loadb()
 * alone, without any of the checks, so the comparison flatters it.
 *
 * Time: REPS parses of the file by each, interleaved, in this process;
 * medians in microseconds.
 *
 * Prints parse.bytes=, parse.peers=, parse.ztna.peak_kb=,
 * parse.jansson.peak_kb=, parse.ztna.p50_us=, parse.jansson.p50_us=; exits 1
 * if ztna's reader refuses the document.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sources/peers.h"

#define REPS_MAX 1000

static double now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static long maxrss_kb(void) {
        struct rusage ru;

        return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : -1;
}

static int read_doc(const char *path, char **data, size_t *len) {
        PeersError err;

        if (peers_read_file(path, data, len, &err) < 0) {
                fprintf(stderr, "bench-parse: %s\n", err.message);
                return -1;
        }
        return 0;
}

/* 0 parsed, 1 refused. */
static int parse_once(bool ours, const char *data, size_t len, size_t *n_peers) {
        if (ours) {
                PeerMap *m = NULL;
                PeersError err;
                ShmMap s;

                if (peers_parse(data, len, "bench", &m, &err) < 0) {
                        fprintf(stderr, "bench-parse: %s\n", err.message);
                        return 1;
                }
                peer_map_to_shm(m, &s);
                if (n_peers)
                        *n_peers = s.n_peers;
                peer_map_free(m);
        } else {
                json_error_t jerr;
                json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);

                if (!root) {
                        fprintf(stderr, "bench-parse: jansson: %s\n", jerr.text);
                        return 1;
                }
                json_decref(root);
        }
        return 0;
}

/* The peak growth of one parse, in a child of its own. */
static long peak_kb(bool ours, const char *path) {
        static const char tiny[] = "{\"domain\": \"warm.example\", \"peers\": []}";
        int fds[2];
        long kb = -1;
        pid_t pid;

        if (pipe(fds) < 0)
                return -1;
        pid = fork();
        if (pid < 0)
                return -1;
        if (pid == 0) {
                char *data;
                size_t len;
                long before, grown;

                close(fds[0]);
                if (parse_once(ours, tiny, sizeof tiny - 1, NULL) != 0)
                        _exit(1);
                before = maxrss_kb();
                if (read_doc(path, &data, &len) < 0 || parse_once(ours, data, len, NULL) != 0)
                        _exit(1);
                grown = maxrss_kb() - before;
                if (write(fds[1], &grown, sizeof grown) != sizeof grown)
                        _exit(1);
                _exit(0);
        }
        close(fds[1]);
        if (read(fds[0], &kb, sizeof kb) != sizeof kb)
                kb = -1;
        close(fds[0]);
        int status;
        if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
                kb = -1;
        return kb;
}

static int compare(const void *a, const void *b) {
        double x = *(const double *) a, y = *(const double *) b;

        return (x > y) - (x < y);
}

int main(int argc, char **argv) {
        static double t_ours[REPS_MAX], t_jansson[REPS_MAX];
        char *data;
        size_t len, n_peers = 0;
        long reps;

        if (argc != 3 || (reps = strtol(argv[2], NULL, 10)) < 1 || reps > REPS_MAX) {
                fprintf(stderr, "usage: bench-parse FILE REPS (1..%d)\n", REPS_MAX);
                return 2;
        }
        if (read_doc(argv[1], &data, &len) < 0)
                return 1;
        if (parse_once(true, data, len, &n_peers) != 0)
                return 1;
        printf("parse.bytes=%zu\nparse.peers=%zu\n", len, n_peers);
        printf("parse.ztna.peak_kb=%ld\nparse.jansson.peak_kb=%ld\n", peak_kb(true, argv[1]), peak_kb(false, argv[1]));
        for (long i = 0; i < reps; i++) {
                double t0 = now_us();
                if (parse_once(true, data, len, NULL) != 0)
                        return 1;
                double t1 = now_us();
                (void) parse_once(false, data, len, NULL);
                double t2 = now_us();
                t_ours[i] = t1 - t0;
                t_jansson[i] = t2 - t1;
        }
        qsort(t_ours, (size_t) reps, sizeof *t_ours, compare);
        qsort(t_jansson, (size_t) reps, sizeof *t_jansson, compare);
        printf("parse.ztna.p50_us=%.0f\nparse.jansson.p50_us=%.0f\n", t_ours[reps / 2], t_jansson[reps / 2]);
        free(data);
        return 0;
}
