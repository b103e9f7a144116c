/* SPDX-License-Identifier: MIT */
/*
 * The store reader. It runs inside every process that resolves a name,
 * setuid ones included, so it treats the file as hostile input: the file
 * is trusted only when root or the directory's system account made it,
 * every field is read once (READ_ONCE) and checked before use, every loop is
 * bounded. After the first mapping a lookup makes no syscall and no
 * allocation. See shm-format.h for the latch contract.
 *
 * When the store cannot be mapped (nothing published since the boot, say)
 * the reader maps the persisted copy instead, with the same checks, and
 * marks its snapshots stale. While it answers from the copy it tries the
 * store's path again at most once every SHM_FALLBACK_RECHECK_USEC (the
 * clock is read through the vDSO: no syscall on the lookups in between).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "shm-format.h"
#include "shm.h"
#include "siphash.h"

/* Accounts below this uid are system accounts (Debian's SYS_UID_MAX + 1). */
#define SHM_SYSTEM_UID_LIMIT 1000u
#define SHM_PATH_MAX 1024u
#define SHM_FILE_MAX (UINT64_C(1) << 33)
#define SHM_MAPPINGS_MAX 8u

/* A field of the shared mapping, read exactly once: the compiler may neither
 * tear nor repeat the load, so a value checked is the value used. */
#define READ_ONCE(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

/* `refs` of a slot being filled in: no reference can be taken yet. */
#define SHM_MAPPING_CLAIMED UINT32_MAX

typedef struct ShmMapping {
        uint32_t refs; /* 0: the slot is free; one reference is `current`'s */
        const uint8_t *addr;
        size_t len;
        uint64_t region_off[2]; /* checked once at mapping time, kept here */
        uint32_t region_size[2];
        struct stat st; /* the file as it was mapped: is it still the one at the path? */
} ShmMapping;

struct ShmReader {
        const char *path;     /* NULL: $ZTNA_STORE or the default */
        const char *fallback; /* with `explicit_fallback`; NULL: none */
        bool explicit_fallback;
        ShmMapping *current;  /* the store */
        ShmMapping *stale;    /* the persisted copy, only while `current` is NULL */
        uint64_t recheck_usec; /* CLOCK_MONOTONIC_COARSE: when to try the store's path again */
        ShmMapping slots[SHM_MAPPINGS_MAX];
        bool allocated;
};

static ShmReader default_reader;

ShmReader *shm_reader_default(void) {
        return &default_reader;
}

static int reader_alloc(const char *path, const char *fallback, bool explicit_fallback, ShmReader **ret) {
        ShmReader *r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->allocated = true;
        r->explicit_fallback = explicit_fallback;
        if ((path && !(r->path = strdup(path))) || (fallback && !(r->fallback = strdup(fallback)))) {
                shm_reader_free(r);
                return -ENOMEM;
        }
        *ret = r;
        return 0;
}

int shm_reader_new(const char *path, ShmReader **ret) {
        /* An explicit store has no persisted copy unless one is named. */
        return reader_alloc(path, NULL, path != NULL, ret);
}

int shm_reader_new_fallback(const char *path, const char *fallback, ShmReader **ret) {
        return reader_alloc(path, fallback, true, ret);
}

ShmReader *shm_reader_free(ShmReader *r) {
        if (!r)
                return NULL;
        /* Only for readers no other thread uses any more. */
        for (size_t i = 0; i < SHM_MAPPINGS_MAX; i++)
                if (r->slots[i].refs > 0)
                        munmap((void *) r->slots[i].addr, r->slots[i].len);
        if (r->allocated) {
                free((char *) r->path);
                free((char *) r->fallback);
                free(r);
        }
        return NULL;
}

static const char *reader_path(const ShmReader *r) {
        if (r->path)
                return r->path;
        /* secure_getenv: a setuid program must not be pointed elsewhere. */
        const char *e = secure_getenv(SHM_ENV_PATH);
        if (e && e[0] == '/')
                return e;
        return SHM_DEFAULT_PATH;
}

/* The persisted copy's path, or NULL for none. The default copy belongs to
 * the default store: a test's $ZTNA_STORE gets one only when
 * $ZTNA_STORE_FALLBACK names it. */
static const char *reader_fallback_path(const ShmReader *r) {
        if (r->explicit_fallback)
                return r->fallback;
        const char *e = secure_getenv(SHM_ENV_FALLBACK);
        if (e)
                return e[0] == '/' ? e : NULL;
        e = secure_getenv(SHM_ENV_PATH);
        if (e && e[0] == '/')
                return NULL;
        return SHM_DEFAULT_FALLBACK_PATH;
}

/* Microseconds of CLOCK_MONOTONIC_COARSE: read in the vDSO, no syscall. */
static uint64_t coarse_usec(void) {
        struct timespec ts;
        if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) < 0)
                return 0;
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

/* The trust rules, one at a time, so that shm_store_inspect() can name the
 * one a store breaks; the lookup path only asks whether any is broken. */
static ShmTrustRule dir_rule(const struct stat *st) {
        if (!S_ISDIR(st->st_mode))
                return SHM_TRUST_DIR_NOT_DIR;
        if (st->st_uid >= SHM_SYSTEM_UID_LIMIT)
                return SHM_TRUST_DIR_OWNER;
        if (st->st_mode & S_IWOTH)
                return SHM_TRUST_DIR_WRITABLE;
        return SHM_TRUST_OK;
}

static ShmTrustRule file_rule(const struct stat *st, const struct stat *dir) {
        if (!S_ISREG(st->st_mode))
                return SHM_TRUST_FILE_NOT_REGULAR;
        if (st->st_nlink != 1)
                return SHM_TRUST_FILE_LINKS;
        if (st->st_mode & (S_IWGRP | S_IWOTH))
                return SHM_TRUST_FILE_WRITABLE;
        if (st->st_uid != 0 && st->st_uid != dir->st_uid)
                return SHM_TRUST_FILE_OWNER;
        return SHM_TRUST_OK;
}

/* Checks the fixed part of a freshly mapped header and keeps what it found
 * in `m`, so later lookups never re-read these fields from the file. */
static int header_check(ShmMapping *m) {
        const ShmWireHeader *h = (const ShmWireHeader *) m->addr;
        if (m->len < sizeof(ShmWireHeader))
                return -EBADMSG;
        if (READ_ONCE(h->magic) != SHM_MAGIC)
                return -EBADMSG;
        if (READ_ONCE(h->version) != SHM_VERSION)
                return -EPROTONOSUPPORT;
        uint32_t hs = READ_ONCE(h->header_size);
        if (hs < sizeof(ShmWireHeader) || hs > m->len || READ_ONCE(h->file_size) != m->len)
                return -EBADMSG;
        for (unsigned i = 0; i < 2; i++) {
                uint64_t off = READ_ONCE(h->region_off[i]), size = READ_ONCE(h->region_size[i]);
                if (off < hs || off % 8 || off > m->len || size > m->len - off || size > UINT32_MAX)
                        return -EBADMSG;
                m->region_off[i] = off;
                m->region_size[i] = (uint32_t) size;
        }
        return 0;
}

/* Maps the store at `path` after checking that it may be trusted. `why`
 * (NULL on the lookup path) gets the rule broken and what was seen. */
static int store_map(const char *path, ShmMapping *m, ShmInspect *why) {
        char dir[SHM_PATH_MAX];
        const char *slash = strrchr(path, '/');
        const char *base;
        struct stat dst, fst;

        if (!slash) {
                strcpy(dir, ".");
                base = path;
        } else {
                size_t n = slash == path ? 1 : (size_t) (slash - path);
                if (n >= sizeof(dir))
                        return -ENAMETOOLONG;
                memcpy(dir, path, n);
                dir[n] = 0;
                base = slash + 1;
        }
        if (!*base)
                return -EISDIR;

        _cleanup_close_ int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0)
                return -errno;
        if (fstat(dfd, &dst) < 0)
                return -errno;
        if (why) {
                why->dir_uid = dst.st_uid;
                why->dir_mode = dst.st_mode;
        }
        ShmTrustRule rule = dir_rule(&dst);
        if (rule != SHM_TRUST_OK) {
                if (why)
                        why->rule = rule;
                return -EPERM;
        }

        /* O_NOFOLLOW: no symlinks; O_NONBLOCK: a FIFO planted here must not
         * block the caller (it is then refused as not a regular file). */
        _cleanup_close_ int fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) {
                if (errno == ELOOP && why)
                        why->rule = SHM_TRUST_FILE_SYMLINK;
                return errno == ELOOP ? -EPERM : -errno;
        }
        if (fstat(fd, &fst) < 0)
                return -errno;
        if (why) {
                why->file_uid = fst.st_uid;
                why->file_mode = fst.st_mode;
                why->file_links = (uint64_t) fst.st_nlink;
                why->file_size = (uint64_t) fst.st_size;
        }
        /* Unlinked since we opened it: the writer renamed a larger store
         * over it just now. Not untrusted, just stale: open the path again
         * (an -EPERM here would send a tailnet name to the next module). */
        if (S_ISREG(fst.st_mode) && fst.st_nlink == 0)
                return -EAGAIN;
        rule = file_rule(&fst, &dst);
        if (rule != SHM_TRUST_OK) {
                if (why)
                        why->rule = rule;
                return -EPERM;
        }
        if (fst.st_size < (off_t) sizeof(ShmWireHeader) || (uint64_t) fst.st_size > SHM_FILE_MAX)
                return -EBADMSG;

        void *p = mmap(NULL, (size_t) fst.st_size, PROT_READ, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return -errno;
        m->addr = p;
        m->len = (size_t) fst.st_size;
        m->st = fst;
        int r = header_check(m);
        if (why && m->len >= sizeof(ShmWireHeader))
                why->version = READ_ONCE(((const ShmWireHeader *) p)->version);
        if (r < 0) {
                munmap(p, m->len);
                return r;
        }
        return 0;
}

static bool mapping_tryget(ShmMapping *m) {
        uint32_t c = __atomic_load_n(&m->refs, __ATOMIC_RELAXED);
        do {
                /* Being torn down, free, or being filled: never take it. */
                if (c == 0 || c == SHM_MAPPING_CLAIMED)
                        return false;
        } while (!__atomic_compare_exchange_n(&m->refs, &c, c + 1, true, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED));
        return true;
}

static void mapping_put(ShmMapping *m) {
        /* Read before letting go: once the count is 0 another thread may
         * claim the slot and overwrite these. */
        const uint8_t *addr = __atomic_load_n(&m->addr, __ATOMIC_RELAXED);
        size_t len = __atomic_load_n(&m->len, __ATOMIC_RELAXED);
        if (__atomic_fetch_sub(&m->refs, 1, __ATOMIC_ACQ_REL) == 1)
                munmap((void *) addr, len);
}

/* Maps the file at `path` into a free slot, holding two references: the
 * caller's and the one `current` (or `stale`) will own. */
static int mapping_open(ShmReader *r, const char *path, ShmMapping **ret) {
        ShmMapping tmp = {};
        int e = store_map(path, &tmp, NULL);
        if (e < 0)
                return e;
        for (size_t i = 0; i < SHM_MAPPINGS_MAX; i++) {
                ShmMapping *m = &r->slots[i];
                uint32_t zero = 0;
                /* A slot is claimed with a count no reference can be taken
                 * on, filled, and only then given its count (release). A
                 * thread still holding a stale pointer to it could otherwise
                 * take a reference before the fields are written and, were
                 * its mapping_put() the last, munmap() the slot's previous
                 * (already unmapped) range. Such a thread may take one
                 * after the release; it re-checks `current` before use. */
                if (!__atomic_compare_exchange_n(&m->refs, &zero, SHM_MAPPING_CLAIMED, false, __ATOMIC_ACQUIRE,
                                                 __ATOMIC_RELAXED))
                        continue;
                __atomic_store_n(&m->addr, tmp.addr, __ATOMIC_RELAXED);
                __atomic_store_n(&m->len, tmp.len, __ATOMIC_RELAXED);
                memcpy(m->region_off, tmp.region_off, sizeof(tmp.region_off));
                memcpy(m->region_size, tmp.region_size, sizeof(tmp.region_size));
                m->st = tmp.st;
                __atomic_store_n(&m->refs, 2, __ATOMIC_RELEASE);
                *ret = m;
                return 0;
        }
        munmap((void *) tmp.addr, tmp.len);
        /* Every slot still used by a thread: the file is there, so this is
         * "try again" (TRYAGAIN), never "no store" (UNAVAIL, on to DNS). */
        return -EAGAIN;
}

/* Stops publishing `m` in `*where` (`current` or `stale`), once; the caller
 * still holds its own reference. */
static void mapping_unpublish(ShmMapping **where, ShmMapping *m) {
        ShmMapping *expected = m;
        if (__atomic_compare_exchange_n(where, &expected, NULL, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
                mapping_put(m);
}

void shm_reader_forget(ShmReader *r) {
        ShmMapping *m = __atomic_load_n(&r->current, __ATOMIC_ACQUIRE);
        if (m)
                mapping_unpublish(&r->current, m);
        m = __atomic_load_n(&r->stale, __ATOMIC_ACQUIRE);
        if (m)
                mapping_unpublish(&r->stale, m);
        __atomic_store_n(&r->recheck_usec, 0, __ATOMIC_RELAXED);
}

/* A reference to the mapping published in `*where`, or false. */
static bool mapping_get_published(ShmMapping **where, ShmMapping **ret) {
        ShmMapping *m = __atomic_load_n(where, __ATOMIC_ACQUIRE);
        if (!m || !mapping_tryget(m))
                return false;
        if (__atomic_load_n(where, __ATOMIC_ACQUIRE) != m) {
                mapping_put(m);
                return false;
        }
        *ret = m;
        return true;
}

/* Whether the file at `path` is still the one `m` mapped, unchanged in what
 * the trust checks looked at. One syscall. */
static bool mapping_still_at(const ShmMapping *m, const char *path) {
        struct stat st;
        if (fstatat(AT_FDCWD, path, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return false;
        return st.st_dev == m->st.st_dev && st.st_ino == m->st.st_ino && st.st_size == m->st.st_size &&
               st.st_mode == m->st.st_mode && st.st_uid == m->st.st_uid && st.st_nlink == m->st.st_nlink &&
               st.st_ctim.tv_sec == m->st.st_ctim.tv_sec && st.st_ctim.tv_nsec == m->st.st_ctim.tv_nsec;
}

/* The store could not be mapped (error `e`): a reference to the persisted
 * copy, mapped now or kept from before, or `e` when there is none that can
 * be trusted. The copy is dropped once it is no longer at its path. */
static int stale_open(ShmReader *r, int e, ShmMapping **ret) {
        const char *path = reader_fallback_path(r);
        ShmMapping *old;
        if (path && mapping_get_published(&r->stale, &old)) {
                /* Its fields are stable while we hold the reference. */
                if (mapping_still_at(old, path)) {
                        *ret = old;
                        return 0;
                }
                mapping_put(old);
        }
        old = __atomic_load_n(&r->stale, __ATOMIC_ACQUIRE);
        if (!path) {
                if (old)
                        mapping_unpublish(&r->stale, old);
                return e;
        }

        ShmMapping *n;
        int k = mapping_open(r, path, &n);
        if (k == -EAGAIN)
                return k; /* renamed over as we opened it: a newer copy is there */
        if (k < 0) {
                if (old)
                        mapping_unpublish(&r->stale, old);
                return e; /* the store's error: the copy only stands in */
        }
        if (__atomic_compare_exchange_n(&r->stale, &old, n, false, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED)) {
                if (old)
                        mapping_put(old); /* the reference `stale` held */
                *ret = n;
                return 0;
        }
        mapping_put(n); /* another thread swapped it first */
        mapping_put(n);
        return -EAGAIN;
}

/* A reference to the mapping to read, and whether it is the persisted copy. */
static int mapping_acquire(ShmReader *r, ShmMapping **ret, bool *ret_stale) {
        for (unsigned tries = 0; tries < SHM_READ_TRIES; tries++) {
                ShmMapping *m = __atomic_load_n(&r->current, __ATOMIC_ACQUIRE);
                if (m) {
                        if (!mapping_tryget(m))
                                continue;
                        if (__atomic_load_n(&r->current, __ATOMIC_ACQUIRE) != m) {
                                mapping_put(m);
                                continue;
                        }
                        const ShmWireHeader *h = (const ShmWireHeader *) m->addr;
                        if (!__atomic_load_n(&h->retired, __ATOMIC_ACQUIRE)) {
                                *ret = m;
                                *ret_stale = false;
                                return 0;
                        }
                        /* A larger store was renamed over this one. */
                        mapping_unpublish(&r->current, m);
                        mapping_put(m);
                        continue;
                }

                /* Answering from the persisted copy: the store's path is
                 * tried again once a recheck period has passed, by the one
                 * thread that moves the deadline on; the others go on
                 * reading the copy meanwhile. */
                if (__atomic_load_n(&r->stale, __ATOMIC_ACQUIRE)) {
                        uint64_t now = coarse_usec(), when = __atomic_load_n(&r->recheck_usec, __ATOMIC_RELAXED);
                        if ((now < when || !__atomic_compare_exchange_n(&r->recheck_usec, &when,
                                                                        now + SHM_FALLBACK_RECHECK_USEC, false,
                                                                        __ATOMIC_RELAXED, __ATOMIC_RELAXED)) &&
                            mapping_get_published(&r->stale, &m)) {
                                *ret = m;
                                *ret_stale = true;
                                return 0;
                        }
                }

                ShmMapping *n;
                int e = mapping_open(r, reader_path(r), &n);
                if (e == -EAGAIN)
                        continue;
                if (e < 0) {
                        e = stale_open(r, e, &n);
                        if (e == -EAGAIN)
                                continue;
                        if (e < 0)
                                return e;
                        __atomic_store_n(&r->recheck_usec, coarse_usec() + SHM_FALLBACK_RECHECK_USEC,
                                         __ATOMIC_RELAXED);
                        *ret = n;
                        *ret_stale = true;
                        return 0;
                }
                ShmMapping *expected = NULL;
                if (__atomic_compare_exchange_n(&r->current, &expected, n, false, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
                        /* The store is back: the copy is not read again. */
                        ShmMapping *old = __atomic_load_n(&r->stale, __ATOMIC_ACQUIRE);
                        if (old)
                                mapping_unpublish(&r->stale, old);
                        *ret = n;
                        *ret_stale = false;
                        return 0;
                }
                mapping_put(n); /* another thread mapped it first */
                mapping_put(n);
        }
        return -EAGAIN;
}

static bool section_fits(uint32_t used, uint32_t off, uint32_t n, uint32_t elem) {
        return off % 8 == 0 && off <= used && (uint64_t) n * elem <= used - off;
}

/* Copies the descriptor of the copy that `seq` names into `s`, field by
 * field and once, and checks it. */
static bool copy_load(const ShmMapping *m, uint32_t seq, ShmSnapshot *s) {
        const ShmWireHeader *h = (const ShmWireHeader *) m->addr;
        unsigned i = seq & 1;
        const ShmWireCopy *c = &h->copy[i];

        s->region = m->addr + m->region_off[i];
        s->region_size = m->region_size[i];
        s->generation = READ_ONCE(c->generation);
        s->published_usec = READ_ONCE(c->published_usec);
        s->heartbeat_usec = READ_ONCE(h->heartbeat_usec);
        s->file_size = m->len;
        s->hash_key[0] = READ_ONCE(c->hash_key[0]);
        s->hash_key[1] = READ_ONCE(c->hash_key[1]);
        s->state = READ_ONCE(c->state);
        uint32_t used = READ_ONCE(c->used);
        s->n_records = READ_ONCE(c->n_records);
        s->index_off = READ_ONCE(c->index_off);
        s->entries_len = READ_ONCE(c->entries_len);
        s->entries_off = READ_ONCE(c->entries_off);
        s->name_slots = READ_ONCE(c->name_slots);
        s->name_idx_off = READ_ONCE(c->name_idx_off);
        s->name_max_probe = READ_ONCE(c->name_max_probe);
        s->addr_slots = READ_ONCE(c->addr_slots);
        s->addr_idx_off = READ_ONCE(c->addr_idx_off);
        s->addr_max_probe = READ_ONCE(c->addr_max_probe);
        s->blocked_len = READ_ONCE(c->blocked_len);
        s->blocked_off = READ_ONCE(c->blocked_off);
        s->block_slots = READ_ONCE(c->block_slots);
        s->block_idx_off = READ_ONCE(c->block_idx_off);
        s->block_max_probe = READ_ONCE(c->block_max_probe);
        s->n_ranges = READ_ONCE(c->n_ranges);
        s->domain_len = READ_ONCE(c->domain_len);
        s->domain = c->domain;
        s->domain_lc = c->domain_lc;
        s->ranges = c->ranges;

        return (s->state == SHM_STATE_UP || s->state == SHM_STATE_DOWN) && used <= s->region_size &&
               section_fits(used, s->index_off, s->n_records, sizeof(uint32_t)) &&
               section_fits(used, s->entries_off, s->entries_len, 1) &&
               section_fits(used, s->name_idx_off, s->name_slots, sizeof(ShmWireSlot)) &&
               section_fits(used, s->addr_idx_off, s->addr_slots, sizeof(ShmWireSlot)) &&
               s->name_max_probe <= s->name_slots && s->name_max_probe <= SHM_PROBE_LIMIT &&
               s->addr_max_probe <= s->addr_slots && s->addr_max_probe <= SHM_PROBE_LIMIT &&
               section_fits(used, s->blocked_off, s->blocked_len, 1) &&
               section_fits(used, s->block_idx_off, s->block_slots, sizeof(ShmWireSlot)) &&
               s->block_max_probe <= s->block_slots && s->block_max_probe <= SHM_PROBE_LIMIT &&
               s->n_ranges <= SHM_RANGES_MAX && s->domain_len <= SHM_DOMAIN_MAX &&
               READ_ONCE(c->domain[s->domain_len]) == '\0' && READ_ONCE(c->domain_lc[s->domain_len]) == '\0';
}

int shm_snapshot_begin(ShmReader *r, ShmSnapshot *ret) {
        for (unsigned tries = 0; tries < SHM_READ_TRIES; tries++) {
                ShmMapping *m;
                bool stale;
                int e = mapping_acquire(r, &m, &stale);
                if (e < 0)
                        return e;
                const ShmWireHeader *h = (const ShmWireHeader *) m->addr;
                ShmSnapshot s;
                s.seq = __atomic_load_n(&h->seq, __ATOMIC_ACQUIRE); /* (C) */
                s.mapping = m;
                s.stale = stale;
                if (copy_load(m, s.seq, &s)) {
                        *ret = s;
                        return 0;
                }
                if (shm_snapshot_end(&s)) {
                        /* Consistent yet invalid: the file is corrupt. Let
                         * go of it so the next lookup maps the path again. */
                        mapping_unpublish(stale ? &r->stale : &r->current, m);
                        return -EBADMSG;
                }
        }
        return -EAGAIN;
}

bool shm_snapshot_end(ShmSnapshot *s) {
        ShmMapping *m = s->mapping;
        const ShmWireHeader *h = (const ShmWireHeader *) m->addr;
        __atomic_thread_fence(__ATOMIC_ACQUIRE); /* (D) */
        bool ok = __atomic_load_n(&h->seq, __ATOMIC_RELAXED) == s->seq;
        mapping_put(m);
        s->mapping = NULL;
        return ok;
}

int shm_snapshot_read(ShmReader *r, int (*fn)(const ShmSnapshot *s, void *userdata),
                      void (*discard)(void *userdata), void *userdata) {
        for (unsigned tries = 0; tries < SHM_READ_TRIES; tries++) {
                ShmSnapshot s;
                int e = shm_snapshot_begin(r, &s);

                if (e == -EAGAIN)
                        continue;
                if (e < 0)
                        return e;
                e = fn(&s, userdata);
                if (shm_snapshot_end(&s))
                        return e;
                if (discard)
                        discard(userdata);
        }
        return -EAGAIN;
}

bool shm_snapshot_down(const ShmSnapshot *s) {
        return s->state == SHM_STATE_DOWN;
}

bool shm_snapshot_stale(const ShmSnapshot *s) {
        return s->stale;
}

/* The entry at byte `off` of the entries section, checked whole: its name
 * NUL-terminated where its length says, its addresses inside the section. */
static bool entry_view(const ShmSnapshot *s, uint32_t off, ShmRecordView *ret) {
        if (off % SHM_ENTRY_ALIGN || off > s->entries_len || s->entries_len - off < sizeof(ShmWireEntry))
                return false;
        const uint8_t *p = s->region + s->entries_off + off;
        const ShmWireEntry *e = (const ShmWireEntry *) p;
        uint32_t name_len = READ_ONCE(e->name_len), n_v4 = READ_ONCE(e->n_v4), n_v6 = READ_ONCE(e->n_v6);
        if (name_len == 0 || name_len > SHM_LABEL_MAX ||
            shm_entry_size(name_len, n_v4, n_v6) > s->entries_len - off || READ_ONCE(e->name[name_len]) != '\0')
                return false;
        uint32_t a = shm_entry_addrs_off(name_len);
        *ret = (ShmRecordView) {
                .name = e->name,
                .name_len = name_len,
                .ttl = READ_ONCE(e->ttl),
                .online = READ_ONCE(e->flags) & SHM_RECORD_ONLINE,
                .n_v4 = n_v4,
                .n_v6 = n_v6,
                .v4 = p + a,
                .v6 = p + a + n_v4 * 4u,
        };
        return true;
}

/* A slot's reference: (offset / 8) + 1, 0 for none. */
static bool slot_entry(const ShmSnapshot *s, uint32_t ref, ShmRecordView *ret) {
        return ref != 0 && ref - 1 <= UINT32_MAX / SHM_ENTRY_ALIGN && entry_view(s, (ref - 1) * SHM_ENTRY_ALIGN, ret);
}

bool shm_snapshot_record(const ShmSnapshot *s, uint32_t index, ShmRecordView *ret) {
        if (index >= s->n_records)
                return false;
        const uint32_t *offs = (const uint32_t *) (s->region + s->index_off);
        return entry_view(s, READ_ONCE(offs[index]), ret);
}

/* `lc` is lower-case already; the stored name keeps its case. */
static bool name_eq(const char *stored, const char *lc, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (ascii_tolower(READ_ONCE(stored[i])) != lc[i])
                        return false;
        return true;
}

static bool find_label(const ShmSnapshot *s, const char *lc, size_t len, ShmRecordView *ret) {
        if (len > SHM_LABEL_MAX || s->name_slots == 0)
                return false;
        uint64_t h = siphash13(s->hash_key, lc, len, 0);
        uint32_t tag = (uint32_t) (h >> 32), pos = shm_slot_start(h, s->name_slots);
        const ShmWireSlot *slots = (const ShmWireSlot *) (s->region + s->name_idx_off);

        for (uint32_t i = 0; i < s->name_max_probe; i++) {
                uint32_t ref = READ_ONCE(slots[pos].entry);
                if (ref == 0)
                        return false;
                ShmRecordView v;
                if (READ_ONCE(slots[pos].tag) == tag && slot_entry(s, ref, &v) && v.name_len == len &&
                    name_eq(v.name, lc, len)) {
                        *ret = v;
                        return true;
                }
                if (++pos == s->name_slots)
                        pos = 0;
        }
        return false;
}

/* Whether the lower-case name `lc` is itself in the block index. */
static bool block_hit(const ShmSnapshot *s, const char *lc, size_t len) {
        uint64_t h = siphash13(s->hash_key, lc, len, 0);
        uint32_t tag = (uint32_t) (h >> 32), pos = shm_slot_start(h, s->block_slots);
        const ShmWireSlot *slots = (const ShmWireSlot *) (s->region + s->block_idx_off);
        const uint8_t *names = s->region + s->blocked_off;

        for (uint32_t i = 0; i < s->block_max_probe; i++) {
                uint32_t ref = READ_ONCE(slots[pos].entry);
                if (ref == 0)
                        return false;
                uint32_t off = ref - 1;
                /* length byte, name, NUL: all inside the section */
                if (READ_ONCE(slots[pos].tag) == tag && off < s->blocked_len &&
                    READ_ONCE(names[off]) == len && s->blocked_len - off > len + 1 &&
                    memcmp(names + off + 1, lc, len) == 0)
                        return true;
                if (++pos == s->block_slots)
                        pos = 0;
        }
        return false;
}

/* The name, then each domain above it, down to the last label. */
static bool blocked(const ShmSnapshot *s, const char *lc, size_t len) {
        if (s->block_slots == 0)
                return false;
        for (size_t i = 0; i < len; i++)
                if ((i == 0 || lc[i - 1] == '.') && block_hit(s, lc + i, len - i))
                        return true;
        return false;
}

ShmClass shm_snapshot_lookup_name(const ShmSnapshot *s, const char *name, ShmRecordView *ret) {
        char lc[SHM_DOMAIN_MAX + 1];
        size_t len = strnlen(name, SHM_DOMAIN_MAX + 2);
        if (len > 0 && name[len - 1] == '.')
                len--;
        if (len == 0 || len > SHM_DOMAIN_MAX)
                return SHM_NOT_OURS;
        /* Lower-cased once; hashing and comparing then work on bytes. */
        for (size_t i = 0; i < len; i++)
                lc[i] = ascii_tolower(name[i]);
        if (blocked(s, lc, len))
                return SHM_BLOCKED;

        const char *dot = memchr(lc, '.', len);
        if (!dot)
                return find_label(s, lc, len, ret) ? SHM_FOUND : SHM_NOT_OURS;

        size_t dl = s->domain_len;
        if (dl == 0 || len < dl || memcmp(s->domain_lc, lc + len - dl, dl) != 0)
                return SHM_NOT_OURS;
        if (len == dl)
                return SHM_UNKNOWN; /* the tailnet domain itself */
        if (lc[len - dl - 1] != '.')
                return SHM_NOT_OURS; /* "notyourorg.zt.net" */
        size_t ll = len - dl - 1;
        if (ll == 0 || (size_t) (dot - lc) != ll)
                return SHM_UNKNOWN; /* deeper than a peer: nobody's */
        return find_label(s, lc, ll, ret) ? SHM_FOUND : SHM_UNKNOWN;
}

static void addr_key(int family, const void *addr, uint8_t key[16]) {
        if (family == AF_INET) {
                memset(key, 0, 10);
                key[10] = key[11] = 0xff;
                memcpy(key + 12, addr, 4);
        } else
                memcpy(key, addr, 16);
}

static bool record_has_addr(const ShmRecordView *v, int family, const void *addr) {
        size_t n = family == AF_INET ? v->n_v4 : v->n_v6, sz = family == AF_INET ? 4 : 16;
        const uint8_t *p = family == AF_INET ? v->v4 : v->v6;
        for (size_t i = 0; i < n; i++)
                if (memcmp(p + i * sz, addr, sz) == 0)
                        return true;
        return false;
}

static bool in_ranges(const ShmSnapshot *s, int family, const uint8_t *addr) {
        const ShmWireRange *ranges = s->ranges;
        unsigned want = family == AF_INET ? 4 : 6, bits = family == AF_INET ? 32 : 128;
        for (uint32_t i = 0; i < s->n_ranges; i++) {
                unsigned plen = READ_ONCE(ranges[i].prefixlen);
                if (READ_ONCE(ranges[i].family) != want || plen > bits)
                        continue;
                uint8_t net[16];
                memcpy(net, ranges[i].addr, 16);
                unsigned full = plen / 8, rest = plen % 8;
                if (memcmp(net, addr, full) != 0)
                        continue;
                if (rest && ((net[full] ^ addr[full]) & (uint8_t) (0xff << (8 - rest))))
                        continue;
                return true;
        }
        return false;
}

ShmClass shm_snapshot_lookup_addr(const ShmSnapshot *s, int family, const void *addr, ShmRecordView *ret) {
        if (family != AF_INET && family != AF_INET6)
                return SHM_NOT_OURS;
        if (s->addr_slots > 0) {
                uint8_t key[16];
                addr_key(family, addr, key);
                uint64_t h = siphash13(s->hash_key, key, sizeof(key), 0);
                uint32_t tag = (uint32_t) (h >> 32), pos = shm_slot_start(h, s->addr_slots);
                const ShmWireSlot *slots = (const ShmWireSlot *) (s->region + s->addr_idx_off);
                for (uint32_t i = 0; i < s->addr_max_probe; i++) {
                        uint32_t ref = READ_ONCE(slots[pos].entry);
                        if (ref == 0)
                                break;
                        ShmRecordView v;
                        if (READ_ONCE(slots[pos].tag) == tag && slot_entry(s, ref, &v) &&
                            record_has_addr(&v, family, addr)) {
                                *ret = v;
                                return SHM_FOUND;
                        }
                        if (++pos == s->addr_slots)
                                pos = 0;
                }
        }
        return in_ranges(s, family, addr) ? SHM_UNKNOWN : SHM_NOT_OURS;
}

int shm_store_inspect(const char *path, ShmInspect *ret) {
        ShmMapping m = {};
        ShmInspect why = { .rule = SHM_TRUST_OK };

        if (!path) {
                ShmReader r = {};
                path = reader_path(&r);
        }
        int e = store_map(path, &m, &why);
        if (e >= 0) {
                const ShmWireHeader *h = (const ShmWireHeader *) m.addr;
                why.retired = __atomic_load_n(&h->retired, __ATOMIC_ACQUIRE) != 0;
                why.writer_pid = READ_ONCE(h->writer_pid);
                munmap((void *) m.addr, m.len);
        }
        why.error = e;
        *ret = why;
        return e;
}

const char *shm_trust_rule_to_string(ShmTrustRule rule) {
        static const char *const text[] = {
                [SHM_TRUST_OK] = "trusted",
                [SHM_TRUST_DIR_NOT_DIR] = "its directory is not a directory",
                [SHM_TRUST_DIR_OWNER] = "its directory is owned by a user account, not root or a system account",
                [SHM_TRUST_DIR_WRITABLE] = "its directory is writable by others",
                [SHM_TRUST_FILE_SYMLINK] = "it is a symbolic link",
                [SHM_TRUST_FILE_NOT_REGULAR] = "it is not a regular file",
                [SHM_TRUST_FILE_LINKS] = "it has more than one hard link",
                [SHM_TRUST_FILE_WRITABLE] = "it is writable by its group or others",
                [SHM_TRUST_FILE_OWNER] = "it is owned by neither root nor its directory's owner",
        };
        return (unsigned) rule < ELEMENTSOF(text) && text[rule] ? text[rule] : "unknown rule";
}
