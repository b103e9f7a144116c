/* SPDX-License-Identifier: MIT */
#pragma once

/* Public interface of the record store. The layout and the reader/writer
 * contract are in shm-format.h. */

#include <netinet/in.h>
#include <sys/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- Writer (ztnad) ---- */

typedef struct ShmPrefix {
        int family; /* AF_INET or AF_INET6 */
        unsigned prefixlen;
        union {
                struct in_addr in;
                struct in6_addr in6;
        } addr;
} ShmPrefix;

typedef struct ShmPeer {
        const char *name; /* one DNS label, case kept */
        uint32_t ttl;
        bool online;
        size_t n_v4;
        const struct in_addr *v4;
        size_t n_v6;
        const struct in6_addr *v6;
} ShmPeer;

typedef struct ShmMap {
        const char *domain; /* without the final dot */
        size_t n_ranges;
        const ShmPrefix *ranges;
        size_t n_peers;
        const ShmPeer *peers;
        size_t n_blocked; /* the threat blocklist: lower-case names, no final dot */
        const char *const *blocked;
} ShmMap;

typedef struct ShmWriter ShmWriter;

/* Takes the writer lock ("<path>.lock") and, when a valid store exists at
 * `path`, takes it over: readers keep answering from it until the first
 * publish. -EBUSY when another writer holds the lock. */
int shm_writer_open(const char *path, ShmWriter **ret);
ShmWriter *shm_writer_close(ShmWriter *w); /* NULL-safe; the file stays */

/* Publishes `map` as the next generation. The map must already be valid
 * (ztnad checks names, duplicates and addresses); this only refuses what the
 * format cannot hold (-EINVAL, -E2BIG). */
int shm_writer_publish(ShmWriter *w, const ShmMap *map, bool up);
/* Marks the published map up or down without changing it. */
int shm_writer_set_state(ShmWriter *w, bool up);
/* The state the store shows now (true with no store yet): a restarted
 * daemon keeps what `ztna down` set. */
bool shm_writer_state_up(const ShmWriter *w);
void shm_writer_heartbeat(ShmWriter *w);
uint64_t shm_writer_generation(const ShmWriter *w);
uint64_t shm_writer_file_size(const ShmWriter *w);

/* ---- The persisted copy (docs/store-fallback.md) ---- */

/* The table readers use now as the bytes of a one-region store file, in
 * *ret (malloc'd, *ret_len bytes), for shm_store_save(). -ENODATA before
 * the first publish. */
int shm_writer_export(const ShmWriter *w, void **ret, size_t *ret_len);
/* Writes `data` to a new file beside `path` (mode 0644), flushes it, renames
 * it over `path` and flushes the directory: the file at `path` is always
 * either the old copy or the new one, whole. */
int shm_store_save(const char *path, const void *data, size_t len);
/* Removes "<path>.XXXXXX" files that a saver killed mid-write left behind;
 * only for the one process that writes `path` (it holds a lock). */
void shm_store_remove_leftovers(const char *path);

/* ---- Reader (the NSS module, ztna, tests) ---- */

typedef struct ShmReader ShmReader;

/* `path` NULL: $ZTNA_STORE read with secure_getenv(), else /run/ztna/records.
 * The persisted copy that stands in while the store cannot be mapped: with
 * `path` NULL, $ZTNA_STORE_FALLBACK (secure_getenv(); empty: none), else
 * /var/cache/ztna/records, but none when $ZTNA_STORE names another store;
 * with a `path`, none. */
int shm_reader_new(const char *path, ShmReader **ret);
/* The same with both paths given; `fallback` NULL: none. */
int shm_reader_new_fallback(const char *path, const char *fallback, ShmReader **ret);
ShmReader *shm_reader_free(ShmReader *r); /* NULL-safe */
/* The process-wide reader of the NSS module: static storage, no malloc. */
ShmReader *shm_reader_default(void);

/* Drops the cached mapping; the next lookup maps the path again (threads
 * still reading the old one keep it until they are done). */
void shm_reader_forget(ShmReader *r);

/* Which of the reader's trust rules a store breaks (DESIGN.md, "The record
 * store"); the order is the order they are checked in. */
typedef enum ShmTrustRule {
        SHM_TRUST_OK = 0,
        SHM_TRUST_DIR_NOT_DIR,
        SHM_TRUST_DIR_OWNER,    /* not root or a system account */
        SHM_TRUST_DIR_WRITABLE, /* by others */
        SHM_TRUST_FILE_SYMLINK,
        SHM_TRUST_FILE_NOT_REGULAR,
        SHM_TRUST_FILE_LINKS,    /* more than one hard link */
        SHM_TRUST_FILE_WRITABLE, /* by group or others */
        SHM_TRUST_FILE_OWNER,    /* neither root nor the directory's owner */
} ShmTrustRule;

/* What the reader saw of a store, for `ztna doctor`: the checks of a
 * lookup's first mapping, with the reason kept. */
typedef struct ShmInspect {
        int error;         /* what a lookup's mapping gives: 0, -ENOENT, -EPERM, -EPROTONOSUPPORT, -EBADMSG... */
        ShmTrustRule rule; /* with -EPERM: the rule broken */
        uid_t dir_uid, file_uid;
        mode_t dir_mode, file_mode;
        uint64_t file_links, file_size;
        uint32_t version;  /* the header's, when the file was mapped far enough */
        bool retired;      /* a larger store was renamed over this file */
        uint64_t writer_pid;
} ShmInspect;

/* Opens, checks and maps the store at `path` (NULL: as shm_reader_new())
 * the way a lookup does, then lets go. Returns ret->error. */
int shm_store_inspect(const char *path, ShmInspect *ret);
const char *shm_trust_rule_to_string(ShmTrustRule rule);

/* One consistent read of the store: begin, look up, copy out, end. */
typedef struct ShmSnapshot {
        const uint8_t *region;
        uint32_t region_size;
        uint32_t seq;
        void *mapping;
        /* validated copies of the descriptor's fields */
        uint64_t generation, published_usec, heartbeat_usec, file_size;
        uint64_t hash_key[2];
        uint32_t state;
        uint32_t n_records, index_off;
        uint32_t entries_len, entries_off;
        uint32_t name_slots, name_idx_off, name_max_probe;
        uint32_t addr_slots, addr_idx_off, addr_max_probe;
        uint32_t blocked_len, blocked_off;
        uint32_t block_slots, block_idx_off, block_max_probe;
        uint32_t n_ranges;
        uint32_t domain_len;
        const char *domain;    /* in the mapping, not NUL-terminated for you */
        const char *domain_lc; /* the same, lower-cased */
        const void *ranges;
        /* Read from the persisted copy because the store could not be
         * mapped: the last map ztnad saved, perhaps out of date. */
        bool stale;
} ShmSnapshot;

/* The longest TTL to give an answer from a stale snapshot: a caching caller
 * (nscd) asks again soon and gets the store once it is back. */
#define SHM_STALE_TTL_MAX 5u

typedef struct ShmRecordView {
        const char *name; /* in the mapping; checked NUL-terminated */
        size_t name_len;
        uint32_t ttl;
        bool online;
        size_t n_v4, n_v6;
        const uint8_t *v4; /* n_v4 * 4 bytes */
        const uint8_t *v6; /* n_v6 * 16 bytes */
} ShmRecordView;

typedef enum ShmClass {
        SHM_NOT_OURS = 0, /* not in the tailnet: let the next module answer */
        SHM_FOUND,        /* a tailnet peer */
        SHM_UNKNOWN,      /* in the tailnet domain or ranges, no such peer */
        SHM_BLOCKED,      /* on the threat blocklist: nobody may resolve it */
} ShmClass;

/* 0, or -ENOENT/-EACCES/-EPERM/-EBADMSG/... when the store is missing,
 * untrusted or corrupt. On success shm_snapshot_end() must follow. */
int shm_snapshot_begin(ShmReader *r, ShmSnapshot *ret);
/* true when the read was consistent; releases the mapping either way. */
bool shm_snapshot_end(ShmSnapshot *s);

/*
 * One consistent read of the store, the retry policy every reader outside
 * the NSS module shares (the NSS entry points write the same loop out, to
 * keep their lookup path free of indirect calls): `fn` runs on a snapshot
 * between shm_snapshot_begin() and shm_snapshot_end(). A read torn by a
 * concurrent publish (end says so, or begin gave -EAGAIN) is thrown away:
 * `discard` (may be NULL) releases what that run of `fn` left in `userdata`,
 * and the read is done again, at most SHM_READ_TRIES times in all. `fn`
 * only reads the snapshot (what it saw may be torn until end says
 * otherwise) and copies its answer into `userdata`.
 *
 * Returns fn's value from a consistent read, shm_snapshot_begin()'s error
 * (-ENOENT, -EACCES, -EBADMSG...), or -EAGAIN when every read was torn.
 */
int shm_snapshot_read(ShmReader *r, int (*fn)(const ShmSnapshot *s, void *userdata),
                      void (*discard)(void *userdata), void *userdata);

bool shm_snapshot_down(const ShmSnapshot *s);
bool shm_snapshot_stale(const ShmSnapshot *s);
/* `name`: a host name as given to gethostbyname (one final dot allowed). */
ShmClass shm_snapshot_lookup_name(const ShmSnapshot *s, const char *name, ShmRecordView *ret);
/* `addr`: 4 or 16 bytes by family. */
ShmClass shm_snapshot_lookup_addr(const ShmSnapshot *s, int family, const void *addr, ShmRecordView *ret);
/* Records in index order, for enumeration; false past the end or when bad. */
bool shm_snapshot_record(const ShmSnapshot *s, uint32_t index, ShmRecordView *ret);
