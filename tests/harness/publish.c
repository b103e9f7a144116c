/* SPDX-License-Identifier: MIT */
/*
 * publish: writes a record store from a small text description, with the
 * same writer ztnad uses, so the integration tests do not need the daemon.
 *
 *     publish [--down] STORE [FILE]    publish FILE (default: stdin)
 *     publish --state up|down STORE    mark the published map up or down
 *
 * The description, one directive a line ('#' starts a comment):
 *
 *     domain yourorg.zt.net
 *     range 100.64.0.0/10              (none: the default tailnet ranges)
 *     peer Win-A [ttl=60] [offline] 100.64.0.1 fd7a:115c:a1e0::1 ...
 *
 * A test tool: it checks only what it needs to build the map; the writer
 * refuses what the format cannot hold.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "shm.h"

#define PUBLISH_DEFAULT_TTL 60u

typedef struct Spec {
        char *domain;
        ShmPrefix ranges[8];
        size_t n_ranges;
        ShmPeer *peers;
        size_t n_peers;
} Spec;

static void spec_done(Spec *s) {
        free(s->domain);
        for (size_t i = 0; i < s->n_peers; i++) {
                free((char *) s->peers[i].name);
                free((void *) s->peers[i].v4);
                free((void *) s->peers[i].v6);
        }
        free(s->peers);
}

static int parse_prefix(const char *text, ShmPrefix *ret) {
        char buf[INET6_ADDRSTRLEN + 8];
        const char *slash = strchr(text, '/');
        if (!slash || (size_t) (slash - text) >= sizeof(buf))
                return -EINVAL;
        memcpy(buf, text, (size_t) (slash - text));
        buf[slash - text] = '\0';

        char *end;
        errno = 0;
        unsigned long plen = strtoul(slash + 1, &end, 10);
        if (errno || end == slash + 1 || *end)
                return -EINVAL;

        ShmPrefix p = {};
        if (inet_pton(AF_INET, buf, &p.addr.in) == 1 && plen <= 32)
                p.family = AF_INET;
        else if (inet_pton(AF_INET6, buf, &p.addr.in6) == 1 && plen <= 128)
                p.family = AF_INET6;
        else
                return -EINVAL;
        p.prefixlen = (unsigned) plen;
        *ret = p;
        return 0;
}

static int append(void *array, size_t *n, size_t size, const void *elem) {
        void **a = array;
        void *p = realloc(*a, (*n + 1) * size);
        if (!p)
                return -ENOMEM;
        memcpy((char *) p + *n * size, elem, size);
        *a = p;
        (*n)++;
        return 0;
}

/* `line` is modified (tokenised). */
static int parse_peer(char *line, Spec *s) {
        char *save = NULL, *tok = strtok_r(line, " \t", &save);
        if (!tok)
                return -EINVAL;

        ShmPeer p = { .ttl = PUBLISH_DEFAULT_TTL, .online = true };
        struct in_addr *v4 = NULL;
        struct in6_addr *v6 = NULL;
        p.name = strdup(tok);
        if (!p.name)
                return -ENOMEM;

        int r = 0;
        while (r == 0 && (tok = strtok_r(NULL, " \t", &save))) {
                struct in_addr a4;
                struct in6_addr a6;
                if (strncmp(tok, "ttl=", 4) == 0) {
                        char *end;
                        errno = 0;
                        unsigned long long ttl = strtoull(tok + 4, &end, 10);
                        if (errno || end == tok + 4 || *end || ttl > UINT32_MAX)
                                r = -EINVAL;
                        p.ttl = (uint32_t) ttl;
                } else if (strcmp(tok, "offline") == 0)
                        p.online = false;
                else if (inet_pton(AF_INET, tok, &a4) == 1)
                        r = append(&v4, &p.n_v4, sizeof(a4), &a4);
                else if (inet_pton(AF_INET6, tok, &a6) == 1)
                        r = append(&v6, &p.n_v6, sizeof(a6), &a6);
                else
                        r = -EINVAL;
        }
        p.v4 = v4;
        p.v6 = v6;
        if (r == 0)
                r = append(&s->peers, &s->n_peers, sizeof(p), &p);
        if (r < 0) {
                free((char *) p.name);
                free(v4);
                free(v6);
        }
        return r;
}

static int spec_parse(FILE *f, const char *source, Spec *s) {
        _cleanup_free_ char *line = NULL;
        size_t cap = 0;
        unsigned lineno = 0;

        for (ssize_t n; (n = getline(&line, &cap, f)) >= 0;) {
                lineno++;
                char *hash = strchr(line, '#');
                if (hash)
                        *hash = '\0';
                line[strcspn(line, "\r\n")] = '\0';

                char *p = line + strspn(line, " \t");
                size_t kw = strcspn(p, " \t");
                char *arg = p + kw + strspn(p + kw, " \t");
                int r = 0;

                if (kw == 0)
                        continue;
                if (kw == 6 && strncmp(p, "domain", kw) == 0) {
                        arg[strcspn(arg, " \t")] = '\0';
                        free(s->domain);
                        s->domain = strdup(arg);
                        r = s->domain ? 0 : -ENOMEM;
                } else if (kw == 5 && strncmp(p, "range", kw) == 0) {
                        arg[strcspn(arg, " \t")] = '\0';
                        if (s->n_ranges == ELEMENTSOF(s->ranges))
                                r = -E2BIG;
                        else
                                r = parse_prefix(arg, &s->ranges[s->n_ranges++]);
                } else if (kw == 4 && strncmp(p, "peer", kw) == 0)
                        r = parse_peer(arg, s);
                else
                        r = -EINVAL;
                if (r < 0) {
                        fprintf(stderr, "publish: %s:%u: %s\n", source, lineno, strerror(-r));
                        return r;
                }
        }
        if (ferror(f)) {
                fprintf(stderr, "publish: %s: %m\n", source);
                return -EIO;
        }
        if (!s->domain) {
                fprintf(stderr, "publish: %s: no domain\n", source);
                return -EINVAL;
        }
        if (s->n_ranges == 0) {
                /* The tailnet's default ranges (DESIGN.md). */
                (void) parse_prefix("100.64.0.0/10", &s->ranges[0]);
                (void) parse_prefix("fd7a:115c:a1e0::/48", &s->ranges[1]);
                s->n_ranges = 2;
        }
        return 0;
}

static int usage(void) {
        fprintf(stderr, "usage: publish [--down] STORE [FILE]\n"
                        "       publish --state up|down STORE\n");
        return 2;
}

int main(int argc, char **argv) {
        ShmWriter *w = NULL;
        int r;

        if (argc == 4 && strcmp(argv[1], "--state") == 0) {
                bool up = strcmp(argv[2], "up") == 0;
                if (!up && strcmp(argv[2], "down") != 0)
                        return usage();
                r = shm_writer_open(argv[3], &w);
                if (r == 0)
                        r = shm_writer_set_state(w, up);
                shm_writer_close(w);
                if (r < 0) {
                        fprintf(stderr, "publish: %s: %s\n", argv[3], strerror(-r));
                        return 1;
                }
                return 0;
        }

        int i = 1;
        bool up = true;
        if (i < argc && strcmp(argv[i], "--down") == 0) {
                up = false;
                i++;
        }
        if (argc - i < 1 || argc - i > 2)
                return usage();
        const char *store = argv[i], *source = argc - i == 2 ? argv[i + 1] : "-";

        FILE *f = strcmp(source, "-") == 0 ? stdin : fopen(source, "re");
        if (!f) {
                fprintf(stderr, "publish: %s: %m\n", source);
                return 1;
        }
        Spec spec = {};
        r = spec_parse(f, source, &spec);
        if (f != stdin)
                fclose(f);
        if (r == 0) {
                ShmMap map = {
                        .domain = spec.domain,
                        .n_ranges = spec.n_ranges,
                        .ranges = spec.ranges,
                        .n_peers = spec.n_peers,
                        .peers = spec.peers,
                };
                r = shm_writer_open(store, &w);
                if (r == 0)
                        r = shm_writer_publish(w, &map, up);
                shm_writer_close(w);
                if (r < 0)
                        fprintf(stderr, "publish: %s: %s\n", store, strerror(-r));
        }
        spec_done(&spec);
        return r < 0 ? 1 : 0;
}
