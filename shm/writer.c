/* SPDX-License-Identifier: MIT */
/*
 * The store writer (ztnad). Single-threaded, one per store (flock on
 * "<path>.lock"). Publishing builds the whole table in the copy readers are
 * not using, moves readers over with one counter bump and then brings the
 * other copy level; see the contract in shm-format.h.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "macro.h"
#include "shm-format.h"
#include "shm.h"
#include "siphash.h"

#define SHM_REKEY_TRIES 8

struct ShmWriter {
        char *path;
        int lock_fd;
        int fd;
        uint8_t *map; /* NULL until a store exists */
        size_t map_len;
        uint64_t generation;
};

/* Where each section of a copy goes, computed before anything is written. */
typedef struct Layout {
        uint32_t n_records, entries_len, name_slots, addr_slots, blocked_len, block_slots;
        uint32_t index_off, entries_off, name_idx_off, addr_idx_off, blocked_off, block_idx_off;
        uint32_t used;
} Layout;

static uint64_t now_usec(void) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

static ShmWireHeader *header(const ShmWriter *w) {
        return (ShmWireHeader *) w->map;
}

static uint8_t *region(const ShmWriter *w, unsigned i) {
        return w->map + header(w)->region_off[i];
}

static void unmap_store(ShmWriter *w) {
        if (w->map)
                munmap(w->map, w->map_len);
        w->map = NULL;
        w->map_len = 0;
        w->fd = safe_close(w->fd);
}

/* Takes over a store a previous writer left, if it is one we can use. */
static void adopt_existing(ShmWriter *w) {
        _cleanup_close_ int fd = open(w->path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < (off_t) SHM_HEADER_SIZE)
                return;
        void *p = mmap(NULL, (size_t) st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED)
                return;
        const ShmWireHeader *h = p;
        /* `retired` may be set: a writer died between retiring the file and
         * renaming its successor over it. It is still the store. */
        bool ok = h->magic == SHM_MAGIC && h->version == SHM_VERSION && h->header_size == SHM_HEADER_SIZE &&
                  h->file_size == (uint64_t) st.st_size;
        for (unsigned i = 0; ok && i < 2; i++)
                ok = h->region_off[i] >= SHM_HEADER_SIZE && h->region_off[i] <= h->file_size &&
                     h->region_size[i] <= h->file_size - h->region_off[i] && h->region_size[i] <= UINT32_MAX;
        if (!ok) {
                munmap(p, (size_t) st.st_size);
                return;
        }
        w->map = p;
        w->map_len = (size_t) st.st_size;
        w->fd = TAKE_FD(fd);
        w->generation = h->copy[0].generation > h->copy[1].generation ? h->copy[0].generation : h->copy[1].generation;
        __atomic_store_n(&header(w)->retired, 0, __ATOMIC_RELEASE); /* readers may keep it again */
        /* The heartbeat is the previous writer's last one: up to a period
         * before it stopped. Taking the store over is this writer's first
         * sign of life; left alone, a ztnad restarted a few times within a
         * period or two would sit behind a heartbeat older than readers'
         * stale bound (ztna doctor's store-stale) until its first timer. */
        shm_writer_heartbeat(w);
}

int shm_writer_open(const char *path, ShmWriter **ret) {
        _cleanup_free_ char *lock_path = NULL;
        if (asprintf(&lock_path, "%s.lock", path) < 0)
                return -ENOMEM;

        ShmWriter *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->fd = -1;
        w->path = strdup(path);
        w->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (!w->path || w->lock_fd < 0) {
                int e = w->path ? -errno : -ENOMEM;
                shm_writer_close(w);
                return e;
        }
        if (flock(w->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                int e = errno == EWOULDBLOCK ? -EBUSY : -errno;
                shm_writer_close(w);
                return e;
        }
        /* A writer killed while growing the store leaves its "<path>.XXXXXX"
         * (mkostemp) behind; on tmpfs that is memory. Only the lock holder
         * may make them, so under the lock every such name is a leftover. */
        shm_store_remove_leftovers(path);
        adopt_existing(w);
        *ret = w;
        return 0;
}

ShmWriter *shm_writer_close(ShmWriter *w) {
        if (!w)
                return NULL;
        unmap_store(w);
        safe_close(w->lock_fd);
        free(w->path);
        free(w);
        return NULL;
}

static int check_map(const ShmMap *map) {
        size_t dl = map->domain ? strlen(map->domain) : 0;
        if (dl == 0 || dl > SHM_DOMAIN_MAX || map->n_ranges > SHM_RANGES_MAX)
                return -EINVAL;
        if (map->n_peers >= UINT32_MAX / 2)
                return -E2BIG;
        for (size_t i = 0; i < map->n_ranges; i++) {
                const ShmPrefix *p = &map->ranges[i];
                if (!((p->family == AF_INET && p->prefixlen <= 32) || (p->family == AF_INET6 && p->prefixlen <= 128)))
                        return -EINVAL;
        }
        if (map->n_blocked >= UINT32_MAX / 4)
                return -E2BIG;
        for (size_t i = 0; i < map->n_blocked; i++) {
                size_t n = map->blocked[i] ? strlen(map->blocked[i]) : 0;
                if (n == 0 || n > SHM_DOMAIN_MAX)
                        return -EINVAL;
        }
        for (size_t i = 0; i < map->n_peers; i++) {
                const ShmPeer *p = &map->peers[i];
                size_t nl = p->name ? strlen(p->name) : 0;
                if (nl == 0 || nl > SHM_LABEL_MAX || memchr(p->name, '.', nl))
                        return -EINVAL;
                if (p->n_v4 > SHM_ADDRS_MAX || p->n_v6 > SHM_ADDRS_MAX)
                        return -E2BIG;
        }
        return 0;
}

/* Index slots for n keys: a load of at most 3/4 keeps linear probes short. */
static uint64_t slots_for(uint64_t n) {
        return n + n / 3 + 1;
}

static int layout_compute(const ShmMap *map, Layout *ret) {
        uint64_t n_addrs = 0, entries = 0, off = 0;
        for (size_t i = 0; i < map->n_peers; i++) {
                const ShmPeer *p = &map->peers[i];
                n_addrs += p->n_v4 + p->n_v6;
                entries += shm_entry_size((uint32_t) strlen(p->name), (uint32_t) p->n_v4, (uint32_t) p->n_v6);
        }
        uint64_t blocked = 0;
        for (size_t i = 0; i < map->n_blocked; i++)
                blocked += strlen(map->blocked[i]) + 2;
        uint64_t name_slots = slots_for(map->n_peers), addr_slots = slots_for(n_addrs);
        uint64_t block_slots = map->n_blocked ? slots_for(map->n_blocked) : 0;
        /* Entries first: their offsets / 8 must fit a slot's reference. */
        uint64_t sizes[] = { entries, map->n_peers * sizeof(uint32_t), name_slots * sizeof(ShmWireSlot),
                             addr_slots * sizeof(ShmWireSlot), blocked, block_slots * sizeof(ShmWireSlot) };
        uint64_t offs[ELEMENTSOF(sizes)];
        for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
                offs[i] = off;
                off = ALIGN_TO(off + sizes[i], 8);
        }
        if (off > UINT32_MAX)
                return -E2BIG;
        *ret = (Layout) {
                .n_records = (uint32_t) map->n_peers,
                .entries_len = (uint32_t) entries,
                .name_slots = (uint32_t) name_slots,
                .addr_slots = (uint32_t) addr_slots,
                .entries_off = (uint32_t) offs[0],
                .index_off = (uint32_t) offs[1],
                .name_idx_off = (uint32_t) offs[2],
                .addr_idx_off = (uint32_t) offs[3],
                .blocked_len = (uint32_t) blocked,
                .blocked_off = (uint32_t) offs[4],
                .block_slots = (uint32_t) block_slots,
                .block_idx_off = (uint32_t) offs[5],
                .used = (uint32_t) off,
        };
        return 0;
}

/* Inserts a reference for `hash`; returns the probe length it took. */
static uint32_t slot_insert(ShmWireSlot *slots, uint32_t n, uint64_t hash, uint32_t ref) {
        uint32_t pos = shm_slot_start(hash, n);
        for (uint32_t probe = 1;; probe++) {
                if (slots[pos].entry == 0) {
                        slots[pos] = (ShmWireSlot) { .tag = (uint32_t) (hash >> 32), .entry = ref };
                        return probe;
                }
                if (++pos == n)
                        pos = 0;
        }
}

static void addr_key4(const struct in_addr *a, uint8_t key[16]) {
        memset(key, 0, 10);
        key[10] = key[11] = 0xff;
        memcpy(key + 12, a, 4);
}

/* Builds the indexes over the entries already written; false when a probe
 * chain would pass SHM_PROBE_LIMIT (the caller then picks another key). */
static bool build_indexes(uint8_t *base, const Layout *l, const ShmMap *map, const uint64_t key[2],
                          uint32_t *ret_name_probe, uint32_t *ret_addr_probe) {
        ShmWireSlot *names = (ShmWireSlot *) (base + l->name_idx_off);
        ShmWireSlot *addrs = (ShmWireSlot *) (base + l->addr_idx_off);
        const uint32_t *offs = (const uint32_t *) (base + l->index_off);
        uint32_t name_probe = 0, addr_probe = 0;
        memset(names, 0, (size_t) l->name_slots * sizeof(ShmWireSlot));
        memset(addrs, 0, (size_t) l->addr_slots * sizeof(ShmWireSlot));

        for (size_t i = 0; i < map->n_peers; i++) {
                const ShmPeer *p = &map->peers[i];
                uint32_t ref = offs[i] / SHM_ENTRY_ALIGN + 1;
                char lc[SHM_LABEL_MAX];
                size_t nl = strlen(p->name);
                for (size_t k = 0; k < nl; k++)
                        lc[k] = ascii_tolower(p->name[k]);
                uint32_t probe = slot_insert(names, l->name_slots, siphash13(key, lc, nl, 0), ref);
                if (probe > name_probe)
                        name_probe = probe;
                for (size_t k = 0; k < p->n_v4 + p->n_v6; k++) {
                        uint8_t ak[16];
                        if (k < p->n_v4)
                                addr_key4(&p->v4[k], ak);
                        else
                                memcpy(ak, &p->v6[k - p->n_v4], 16);
                        probe = slot_insert(addrs, l->addr_slots, siphash13(key, ak, 16, 0), ref);
                        if (probe > addr_probe)
                                addr_probe = probe;
                }
                if (name_probe > SHM_PROBE_LIMIT || addr_probe > SHM_PROBE_LIMIT)
                        return false;
        }
        *ret_name_probe = name_probe;
        *ret_addr_probe = addr_probe;
        return true;
}

/* The blocklist's names and their index; false as build_indexes(). */
static bool build_blocklist(uint8_t *base, const Layout *l, const ShmMap *map, const uint64_t key[2],
                            uint32_t *ret_probe) {
        ShmWireSlot *slots = (ShmWireSlot *) (base + l->block_idx_off);
        uint8_t *names = base + l->blocked_off;
        uint32_t at = 0, max_probe = 0;
        memset(slots, 0, (size_t) l->block_slots * sizeof(ShmWireSlot));

        for (size_t i = 0; i < map->n_blocked; i++) {
                size_t n = strlen(map->blocked[i]);
                names[at] = (uint8_t) n;
                memcpy(names + at + 1, map->blocked[i], n + 1);
                uint32_t probe = slot_insert(slots, l->block_slots, siphash13(key, map->blocked[i], n, 0), at + 1);
                if (probe > max_probe)
                        max_probe = probe;
                if (max_probe > SHM_PROBE_LIMIT)
                        return false;
                at += (uint32_t) n + 2;
        }
        *ret_probe = max_probe;
        return true;
}

/* Writes the whole table into `base` (a region of at least l->used bytes)
 * and fills the descriptor; the latch is the caller's business. */
static int serialize(uint8_t *base, const Layout *l, const ShmMap *map, bool up, uint64_t generation,
                     ShmWireCopy *c) {
        uint8_t *entries = base + l->entries_off;
        uint32_t *offs = (uint32_t *) (base + l->index_off);
        uint32_t at = 0;
        uint64_t key[2];

        for (size_t i = 0; i < map->n_peers; i++) {
                const ShmPeer *p = &map->peers[i];
                uint32_t nl = (uint32_t) strlen(p->name);
                uint32_t size = shm_entry_size(nl, (uint32_t) p->n_v4, (uint32_t) p->n_v6);
                uint8_t *e = entries + at;
                memset(e, 0, size); /* the padding too: no stale bytes */
                *(ShmWireEntry *) e = (ShmWireEntry) {
                        .ttl = p->ttl,
                        .n_v4 = (uint16_t) p->n_v4,
                        .n_v6 = (uint16_t) p->n_v6,
                        .name_len = (uint8_t) nl,
                        .flags = p->online ? SHM_RECORD_ONLINE : 0,
                };
                memcpy(e + sizeof(ShmWireEntry), p->name, nl);
                uint8_t *a = e + shm_entry_addrs_off(nl);
                /* A peer without addresses of a family may pass NULL, and
                 * memcpy() from NULL is undefined even for 0 bytes. */
                if (p->n_v4)
                        memcpy(a, p->v4, p->n_v4 * 4);
                if (p->n_v6)
                        memcpy(a + p->n_v4 * 4, p->v6, p->n_v6 * 16);
                offs[i] = at;
                at += size;
        }

        uint32_t name_probe = 0, addr_probe = 0, block_probe = 0;
        for (unsigned tries = 0;; tries++) {
                if (tries == SHM_REKEY_TRIES)
                        return -ELOOP;
                if (getrandom(key, sizeof(key), 0) != sizeof(key))
                        return -errno;
                if (build_indexes(base, l, map, key, &name_probe, &addr_probe) &&
                    build_blocklist(base, l, map, key, &block_probe))
                        break;
        }

        memset(c, 0, sizeof(*c));
        c->generation = generation;
        c->published_usec = now_usec();
        c->hash_key[0] = key[0];
        c->hash_key[1] = key[1];
        c->state = up ? SHM_STATE_UP : SHM_STATE_DOWN;
        c->used = l->used;
        c->n_records = l->n_records;
        c->index_off = l->index_off;
        c->entries_len = l->entries_len;
        c->entries_off = l->entries_off;
        c->name_slots = l->name_slots;
        c->name_idx_off = l->name_idx_off;
        c->name_max_probe = name_probe;
        c->addr_slots = l->addr_slots;
        c->addr_idx_off = l->addr_idx_off;
        c->addr_max_probe = addr_probe;
        c->blocked_len = l->blocked_len;
        c->blocked_off = l->blocked_off;
        c->block_slots = l->block_slots;
        c->block_idx_off = l->block_idx_off;
        c->block_max_probe = block_probe;
        c->n_ranges = (uint32_t) map->n_ranges;
        for (size_t i = 0; i < map->n_ranges; i++) {
                const ShmPrefix *p = &map->ranges[i];
                c->ranges[i].family = p->family == AF_INET ? 4 : 6;
                c->ranges[i].prefixlen = (uint8_t) p->prefixlen;
                memcpy(c->ranges[i].addr, &p->addr, p->family == AF_INET ? 4 : 16);
        }
        c->domain_len = (uint32_t) strlen(map->domain);
        memcpy(c->domain, map->domain, c->domain_len + 1);
        for (uint32_t i = 0; i <= c->domain_len; i++)
                c->domain_lc[i] = ascii_tolower(map->domain[i]);
        return 0;
}

/* Copy `from` is complete; make readers use it and bring the other level.
 * (A) and (B) of the contract. */
static void latch_commit(ShmWriter *w, unsigned from) {
        ShmWireHeader *h = header(w);
        unsigned to = !from;
        uint32_t seq = h->seq;
        assert((seq & 1) == to); /* readers are on the other copy */
        __atomic_store_n(&h->seq, seq + 1, __ATOMIC_RELEASE);   /* (A) */
        __atomic_thread_fence(__ATOMIC_RELEASE);                /* (B) */
        memcpy(region(w, to), region(w, from), h->copy[from].used);
        h->copy[to] = h->copy[from];
}

/* A store this writer did not adopt (another format version, say) may still
 * be mapped by readers of that version: `retired` sits at the same offset in
 * every version, so set it and they open the path again. */
static void retire_foreign(const char *path) {
        _cleanup_close_ int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
        struct stat st;
        if (fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size < (off_t) sizeof(ShmWireHeader))
                return;
        ShmWireHeader *h = mmap(NULL, sizeof(ShmWireHeader), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (h == MAP_FAILED)
                return;
        if (h->magic == SHM_MAGIC)
                __atomic_store_n(&h->retired, 1, __ATOMIC_RELEASE);
        munmap(h, sizeof(ShmWireHeader));
}

static int create_store(ShmWriter *w, const Layout *l, const ShmMap *map, bool up) {
        /* Room for a few more peers before the next growth. */
        uint64_t cap = ALIGN_TO((uint64_t) l->used + l->used / 16 + 4096, 4096);
        uint64_t size = SHM_HEADER_SIZE + 2 * cap;
        if (cap > UINT32_MAX)
                return -E2BIG;

        _cleanup_free_ char *tmp = NULL;
        if (asprintf(&tmp, "%s.XXXXXX", w->path) < 0)
                return -ENOMEM;
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int e = fchmod(fd, 0644) < 0 ? -errno : 0;
        /* fallocate, not just ftruncate: a full tmpfs must fail here, not
         * SIGBUS us halfway through writing the mapping. */
        if (e == 0)
                e = -posix_fallocate(fd, 0, (off_t) size);
        if (e < 0) {
                unlink(tmp);
                return e;
        }
        uint8_t *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (p == MAP_FAILED) {
                e = -errno;
                unlink(tmp);
                return e;
        }
        ShmWireHeader *h = (ShmWireHeader *) p;
        h->version = SHM_VERSION;
        h->header_size = SHM_HEADER_SIZE;
        h->file_size = size;
        h->writer_pid = (uint64_t) getpid();
        h->heartbeat_usec = now_usec();
        for (unsigned i = 0; i < 2; i++) {
                h->region_off[i] = SHM_HEADER_SIZE + i * cap;
                h->region_size[i] = cap;
        }
        e = serialize(p + h->region_off[0], l, map, up, w->generation + 1, &h->copy[0]);
        if (e < 0) {
                munmap(p, size);
                unlink(tmp);
                return e;
        }
        memcpy(p + h->region_off[1], p + h->region_off[0], l->used);
        h->copy[1] = h->copy[0];
        h->seq = 0;
        h->magic = SHM_MAGIC;

        /* Retire the old file before the rename, not after: a writer killed
         * in between (SIGKILL during rename() lets the rename finish) would
         * leave it unlinked and never retired, and every process that maps
         * it would answer from it for good. Until the rename, readers that
         * see the flag re-open the path and find the same, intact file;
         * after it, the new one. */
        if (w->map)
                __atomic_store_n(&header(w)->retired, 1, __ATOMIC_RELEASE);
        if (!w->map)
                retire_foreign(w->path);
        if (rename(tmp, w->path) < 0) {
                e = -errno;
                if (w->map)
                        __atomic_store_n(&header(w)->retired, 0, __ATOMIC_RELEASE);
                munmap(p, size);
                unlink(tmp);
                return e;
        }
        unmap_store(w);
        w->map = p;
        w->map_len = size;
        w->fd = TAKE_FD(fd);
        w->generation++;
        return 0;
}

int shm_writer_publish(ShmWriter *w, const ShmMap *map, bool up) {
        Layout l;
        int e = check_map(map);
        if (e < 0)
                return e;
        e = layout_compute(map, &l);
        if (e < 0)
                return e;

        ShmWireHeader *h = header(w);
        if (!w->map || l.used > h->region_size[0] || l.used > h->region_size[1])
                return create_store(w, &l, map, up);

        unsigned from = !(h->seq & 1); /* the copy readers do not use */
        e = serialize(region(w, from), &l, map, up, w->generation + 1, &h->copy[from]);
        if (e < 0)
                return e;
        latch_commit(w, from);
        w->generation++;
        return 0;
}

int shm_writer_set_state(ShmWriter *w, bool up) {
        if (!w->map)
                return -ENODATA;
        ShmWireHeader *h = header(w);
        unsigned cur = h->seq & 1, from = !cur;
        /* Rebuild the unused copy from the one readers trust (the unused one
         * may be torn by a writer killed mid-publish), change the state. */
        memcpy(region(w, from), region(w, cur), h->copy[cur].used);
        h->copy[from] = h->copy[cur];
        h->copy[from].state = up ? SHM_STATE_UP : SHM_STATE_DOWN;
        h->copy[from].generation = ++w->generation;
        h->copy[from].published_usec = now_usec();
        latch_commit(w, from);
        return 0;
}

bool shm_writer_state_up(const ShmWriter *w) {
        if (!w->map)
                return true;
        const ShmWireHeader *h = header(w);
        return h->copy[h->seq & 1].state != SHM_STATE_DOWN;
}

void shm_writer_heartbeat(ShmWriter *w) {
        if (w->map)
                __atomic_store_n(&header(w)->heartbeat_usec, now_usec(), __ATOMIC_RELAXED);
}

uint64_t shm_writer_generation(const ShmWriter *w) {
        return w->generation;
}

uint64_t shm_writer_file_size(const ShmWriter *w) {
        return w->map_len;
}

int shm_writer_export(const ShmWriter *w, void **ret, size_t *ret_len) {
        if (!w->map)
                return -ENODATA;
        /* The copy readers use is complete: only this writer changes the
         * store, and not while this runs. */
        const ShmWireHeader *h = header(w);
        unsigned cur = h->seq & 1;
        const ShmWireCopy *c = &h->copy[cur];
        if (c->used > h->region_size[cur])
                return -EBADMSG; /* an adopted store not yet republished */
        uint64_t used = ALIGN_TO((uint64_t) c->used, 8);
        size_t len = (size_t) SHM_HEADER_SIZE + (size_t) used;

        uint8_t *p = calloc(1, len);
        if (!p)
                return -ENOMEM;
        ShmWireHeader *o = (ShmWireHeader *) p;
        o->magic = SHM_MAGIC;
        o->version = SHM_VERSION;
        o->header_size = SHM_HEADER_SIZE;
        o->file_size = len;
        o->heartbeat_usec = h->heartbeat_usec;
        o->writer_pid = h->writer_pid;
        /* One region that both copies name: seq stays 0, nothing rewrites it. */
        for (unsigned i = 0; i < 2; i++) {
                o->region_off[i] = SHM_HEADER_SIZE;
                o->region_size[i] = used;
                o->copy[i] = *c;
        }
        memcpy(p + SHM_HEADER_SIZE, region(w, cur), c->used);
        *ret = p;
        *ret_len = len;
        return 0;
}
