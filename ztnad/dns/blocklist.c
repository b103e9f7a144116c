/* SPDX-License-Identifier: MIT */
/*
 * The threat blocklist (see blocklist.h): files of names read into one
 * immutable set. Matching looks up the query name and each of its parents
 * in an open-addressed hash table keyed with a random SipHash key, so
 * neither a list nor a stream of queries can be arranged into long probe
 * chains. The work per query is one hash and a probe or two per label.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dns/blocklist.h"
#include "common/read-file.h"
#include "macro.h"
#include "siphash.h"

typedef struct BlocklistFile {
        char *path;
        bool present;
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime;
} BlocklistFile;

struct Blocklist {
        uint64_t key[2];
        /* Each name as its wire length (one byte) then its lower-case wire
         * form, in sorted text order. */
        uint8_t *pool;
        size_t pool_len;
        uint32_t *names; /* pool offsets, sorted by text */
        size_t n;
        uint32_t *slots; /* 1 + index into names; 0 is empty */
        size_t mask;

        size_t skipped;
        char problem[BLOCKLIST_PROBLEM_MAX];

        BlocklistFile *files;
        size_t n_files;
};

/* The text names while loading: NUL-terminated, lower-case, in one buffer. */
typedef struct Loader {
        char *text;
        size_t text_len, text_cap;
        size_t *offs;
        size_t n, cap;
        Blocklist *bl;
        const char *path;
        unsigned line;
} Loader;

static void note_problem(Loader *ld, const char *reason) {
        ld->bl->skipped++;
        if (ld->bl->problem[0] == '\0')
                snprintf(ld->bl->problem, sizeof ld->bl->problem, "%s:%u: %s", ld->path, ld->line, reason);
}

static int loader_add(Loader *ld, const char *name, size_t len) {
        if (ld->n >= BLOCKLIST_NAMES_MAX)
                return -E2BIG;
        if (ld->n == ld->cap) {
                size_t cap = ld->cap ? ld->cap * 2 : 1024;
                size_t *o = realloc(ld->offs, cap * sizeof *o);
                if (!o)
                        return -ENOMEM;
                ld->offs = o;
                ld->cap = cap;
        }
        if (len + 1 > ld->text_cap - ld->text_len) {
                size_t cap = ld->text_cap ? ld->text_cap * 2 : 65536;
                while (len + 1 > cap - ld->text_len)
                        cap *= 2;
                char *t = realloc(ld->text, cap);
                if (!t)
                        return -ENOMEM;
                ld->text = t;
                ld->text_cap = cap;
        }
        memcpy(ld->text + ld->text_len, name, len);
        ld->text[ld->text_len + len] = '\0';
        ld->offs[ld->n++] = ld->text_len;
        ld->text_len += len + 1;
        return 0;
}

static bool name_char(char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
}

/* Checks and normalises one name token in place. Returns the number of
 * labels, 0 for the root or an empty name, or -1 with *reason set. */
static int normalise(char *s, size_t *len, const char **reason) {
        size_t n = strlen(s), label = 0;
        int labels = 0;

        if (n > 0 && s[n - 1] == '.')
                s[--n] = '\0';
        if (n == 0)
                return 0;
        /* RFC 1035 2.3.4: 255 bytes of wire form are 253 of text. */
        if (n > DNS_NAME_MAX - 2) {
                *reason = "name longer than 253 characters";
                return -1;
        }
        for (size_t i = 0; i <= n; i++) {
                if (i == n || s[i] == '.') {
                        if (label == 0) {
                                *reason = "empty label";
                                return -1;
                        }
                        labels++;
                        label = 0;
                        continue;
                }
                s[i] = ascii_tolower(s[i]);
                if (!name_char(s[i])) {
                        *reason = "not a domain name (letters, digits, '-', '_' and dots only)";
                        return -1;
                }
                if (++label > DNS_LABEL_MAX) {
                        *reason = "label longer than 63 characters";
                        return -1;
                }
        }
        *len = n;
        return labels;
}

/* RFC 6761 6.3: localhost names always mean this host. Hosts-file lists
 * start with "127.0.0.1 localhost.localdomain" and such. */
static bool is_localhost(const char *s, size_t len) {
        static const char suffix[] = ".localhost";
        const size_t slen = sizeof suffix - 1;
        return strcmp(s, "localhost") == 0 || strcmp(s, "localhost.localdomain") == 0 ||
               (len > slen && memcmp(s + len - slen, suffix, slen) == 0);
}

static bool is_address(const char *s) {
        struct in6_addr a;
        return inet_pton(AF_INET, s, &a) == 1 || inet_pton(AF_INET6, s, &a) == 1;
}

static int parse_line(Loader *ld, char *line) {
        char *tokens[64], *save = NULL;
        size_t n = 0;
        bool problem = false;

        char *hash = strchr(line, '#');
        if (hash)
                *hash = '\0';
        for (char *t = strtok_r(line, " \t\r\v\f", &save); t; t = strtok_r(NULL, " \t\r\v\f", &save)) {
                if (n == ELEMENTSOF(tokens)) {
                        note_problem(ld, "too many names on one line");
                        return 0;
                }
                tokens[n++] = t;
        }
        if (n == 0)
                return 0;

        bool hosts = is_address(tokens[0]);
        if (hosts && n == 1) {
                note_problem(ld, "an address without names");
                return 0;
        }
        if (!hosts && n > 1) {
                note_problem(ld, "more than one name (a hosts-file line starts with an address)");
                return 0;
        }
        for (size_t i = hosts; i < n; i++) {
                char *s = tokens[i];
                const char *reason = NULL;
                size_t len = 0;

                if (!hosts && strncmp(s, "*.", 2) == 0)
                        s += 2;
                if (hosts && is_address(s))
                        continue; /* "0.0.0.0 0.0.0.0" in the head of some lists */
                int labels = normalise(s, &len, &reason);
                if (labels < 0) {
                        problem = true;
                        if (!ld->bl->problem[0])
                                snprintf(ld->bl->problem, sizeof ld->bl->problem, "%s:%u: %s: %s", ld->path,
                                         ld->line, reason, s);
                        continue;
                }
                if (labels == 0) {
                        problem = true;
                        if (!ld->bl->problem[0])
                                snprintf(ld->bl->problem, sizeof ld->bl->problem,
                                         "%s:%u: the root would block everything", ld->path, ld->line);
                        continue;
                }
                if (hosts && labels == 1)
                        continue; /* localhost, broadcasthost, ip6-loopback ... */
                if (is_localhost(s, len)) {
                        if (!hosts) {
                                problem = true;
                                if (!ld->bl->problem[0])
                                        snprintf(ld->bl->problem, sizeof ld->bl->problem,
                                                 "%s:%u: localhost names are never blocked", ld->path, ld->line);
                        }
                        continue;
                }
                int r = loader_add(ld, s, len);
                if (r < 0)
                        return r;
        }
        if (problem)
                ld->bl->skipped++;
        return 0;
}

static int read_file(Loader *ld, BlocklistFile *f, char *err, size_t errlen) {
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        ReadFileStep step;
        size_t len;
        int r;

        /* Runs on the event loop: the reader's O_NONBLOCK keeps a FIFO at
         * the path from blocking open() until the watchdog. */
        r = read_regular_file(f->path, BLOCKLIST_FILE_MAX, 0, &buf, &len, &st, &step);
        if (r < 0) {
                if (r == -EINVAL && step == READ_FILE_CHECK)
                        snprintf(err, errlen, "%s: not a regular file", f->path);
                else if (r == -EFBIG && step == READ_FILE_CHECK)
                        snprintf(err, errlen, "%s: larger than %zu MiB", f->path, BLOCKLIST_FILE_MAX >> 20);
                else if (r == -EAGAIN && step == READ_FILE_READ)
                        snprintf(err, errlen, "%s: changed while it was read", f->path);
                else if (r != -ENOMEM)
                        snprintf(err, errlen, "%s: %s", f->path, strerror(-r));
                return r;
        }
        f->present = true;
        f->dev = st.st_dev;
        f->ino = st.st_ino;
        f->size = st.st_size;
        f->mtime = st.st_mtim;

        ld->path = f->path;
        ld->line = 0;
        for (char *p = buf; p < buf + len;) {
                char *nl = memchr(p, '\n', (size_t) (buf + len - p));
                char *end = nl ? nl : buf + len;
                ld->line++;
                if ((size_t) (end - p) > BLOCKLIST_LINE_MAX)
                        note_problem(ld, "line too long");
                else if (memchr(p, '\0', (size_t) (end - p)))
                        note_problem(ld, "NUL byte in the line");
                else {
                        *end = '\0';
                        r = parse_line(ld, p);
                        if (r == -E2BIG) {
                                snprintf(err, errlen, "%s:%u: more than %zu names in all", f->path, ld->line,
                                         BLOCKLIST_NAMES_MAX);
                                return r;
                        }
                        if (r < 0)
                                return r;
                }
                p = end + 1;
        }
        return 0;
}

static int compare_names(const void *a, const void *b, void *text) {
        return strcmp((const char *) text + *(const size_t *) a, (const char *) text + *(const size_t *) b);
}

static const uint8_t *entry(const Blocklist *bl, size_t i, size_t *ret_len) {
        const uint8_t *p = bl->pool + bl->names[i];
        *ret_len = p[0];
        return p + 1;
}

/* Builds the pool, the sorted index and the hash table from the loader. */
static int build(Blocklist *bl, Loader *ld) {
        size_t n = 0;

        if (ld->n > 1)
                qsort_r(ld->offs, ld->n, sizeof *ld->offs, compare_names, ld->text);

        for (size_t i = 0; i < ld->n; i++)
                if (n == 0 || strcmp(ld->text + ld->offs[n - 1], ld->text + ld->offs[i]) != 0)
                        ld->offs[n++] = ld->offs[i];

        size_t slots = 16;
        while (slots < n * 2)
                slots *= 2;
        /* Wire form: one byte more than the text, plus our length byte. */
        bl->pool = malloc(ld->text_len + 2 * n + 1);
        bl->names = calloc(n ? n : 1, sizeof *bl->names);
        bl->slots = calloc(slots, sizeof *bl->slots);
        if (!bl->pool || !bl->names || !bl->slots)
                return -ENOMEM;
        bl->mask = slots - 1;

        for (size_t i = 0; i < n; i++) {
                DnsName w;
                if (dns_name_from_text(ld->text + ld->offs[i], &w) < 0)
                        return -EINVAL; /* normalise() let through only valid names */
                bl->names[i] = (uint32_t) bl->pool_len;
                bl->pool[bl->pool_len++] = w.len;
                memcpy(bl->pool + bl->pool_len, w.wire, w.len);
                bl->pool_len += w.len;

                size_t h = (size_t) siphash13(bl->key, w.wire, w.len, 0) & bl->mask;
                while (bl->slots[h] != 0)
                        h = (h + 1) & bl->mask;
                bl->slots[h] = (uint32_t) i + 1;
        }
        bl->n = n;
        return 0;
}

int blocklist_load(const char *const *paths, size_t n_paths, Blocklist **ret, char *err, size_t errlen) {
        char dummy[1];
        Loader ld = { 0 };
        int r;

        if (!err || errlen == 0) {
                err = dummy;
                errlen = sizeof dummy;
        }
        err[0] = '\0';

        Blocklist *bl = calloc(1, sizeof *bl);
        if (!bl)
                return -ENOMEM;
        ld.bl = bl;
        if (getrandom(bl->key, sizeof bl->key, 0) != sizeof bl->key) {
                r = -errno;
                goto fail;
        }
        bl->files = calloc(n_paths ? n_paths : 1, sizeof *bl->files);
        if (!bl->files) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t i = 0; i < n_paths; i++) {
                bl->files[i].path = strdup(paths[i]);
                if (!bl->files[i].path) {
                        r = -ENOMEM;
                        goto fail;
                }
                bl->n_files++;
                r = read_file(&ld, &bl->files[i], err, errlen);
                if (r < 0)
                        goto fail;
        }
        r = build(bl, &ld);
        if (r < 0)
                goto fail;
        free(ld.text);
        free(ld.offs);
        *ret = bl;
        return 0;

fail:
        if (r == -ENOMEM && err[0] == '\0')
                snprintf(err, errlen, "out of memory");
        free(ld.text);
        free(ld.offs);
        blocklist_free(bl);
        return r;
}

Blocklist *blocklist_free(Blocklist *bl) {
        if (!bl)
                return NULL;
        for (size_t i = 0; i < bl->n_files; i++)
                free(bl->files[i].path);
        free(bl->files);
        free(bl->pool);
        free(bl->names);
        free(bl->slots);
        free(bl);
        return NULL;
}

static bool wire_equal_nocase(const uint8_t *a, const uint8_t *b, size_t n) {
        for (size_t i = 0; i < n; i++) {
                uint8_t x = a[i], y = b[i];
                if (x >= 'A' && x <= 'Z')
                        x = (uint8_t) (x + 32);
                if (y >= 'A' && y <= 'Z')
                        y = (uint8_t) (y + 32);
                if (x != y)
                        return false;
        }
        return true;
}

static bool contains(const Blocklist *bl, const uint8_t *wire, size_t len) {
        /* fold: the hash lower-cases as it goes; entries are stored lower-case */
        size_t h = (size_t) siphash13(bl->key, wire, len, 1) & bl->mask;
        for (;;) {
                uint32_t s = bl->slots[h];
                if (s == 0)
                        return false;
                size_t elen;
                const uint8_t *e = entry(bl, s - 1, &elen);
                if (elen == len && wire_equal_nocase(e, wire, len))
                        return true;
                h = (h + 1) & bl->mask;
        }
}

bool blocklist_match(const Blocklist *bl, const DnsName *name) {
        if (!bl || bl->n == 0)
                return false;
        /* The name itself, then each parent; never the root. */
        size_t off = 0;
        for (unsigned i = 0; i < name->labels && off < name->len; i++) {
                if (contains(bl, name->wire + off, name->len - off))
                        return true;
                off += 1 + (size_t) name->wire[off];
        }
        return false;
}

size_t blocklist_size(const Blocklist *bl) {
        return bl ? bl->n : 0;
}

int blocklist_name(const Blocklist *bl, size_t i, char *buf, size_t size) {
        DnsName n;
        size_t len;

        if (!bl || i >= bl->n)
                return -ERANGE;
        const uint8_t *w = entry(bl, i, &len);
        memcpy(n.wire, w, len);
        n.len = (uint8_t) len;
        n.labels = 0;
        return dns_name_to_text(&n, buf, size);
}

size_t blocklist_skipped(const Blocklist *bl) {
        return bl ? bl->skipped : 0;
}

const char *blocklist_problem(const Blocklist *bl) {
        return bl ? bl->problem : "";
}

bool blocklist_changed(const Blocklist *bl) {
        if (!bl)
                return false;
        for (size_t i = 0; i < bl->n_files; i++) {
                const BlocklistFile *f = &bl->files[i];
                struct stat st;
                if (stat(f->path, &st) < 0) {
                        if (f->present)
                                return true;
                        continue;
                }
                if (!f->present || st.st_dev != f->dev || st.st_ino != f->ino || st.st_size != f->size ||
                    st.st_mtim.tv_sec != f->mtime.tv_sec || st.st_mtim.tv_nsec != f->mtime.tv_nsec)
                        return true;
        }
        return false;
}
