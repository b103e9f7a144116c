/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The ztna record store: one file on tmpfs (/run/ztna/records), written by
 * ztnad only and mapped read-only by every process that resolves names.
 *
 * Contract
 * --------
 * This is a seqcount *latch*, the pattern of the kernel's timekeeping
 * (include/linux/seqlock.h, "latch sequence counters"): two complete copies of
 * the table, and one counter whose low bit says which copy readers use. The
 * writer never waits for readers and readers never lock, so a writer that is
 * stopped or killed at any instant leaves one complete copy behind.
 *
 * Who writes: exactly one ztnad at a time (it holds flock(LOCK_EX) on
 * "<path>.lock"). Readers never write a byte: they map the file PROT_READ.
 *
 * The segment holds no pointers and no `long`: fixed-width little-endian
 * integers, and offsets relative to the start of a copy's region.
 *
 * The writer, publishing a new table (shm/writer.c, shm_writer_publish()):
 *
 *      g = seq & 1;                    // the copy readers use now
 *      write region[!g] and copy[!g];  // readers are not looking at it
 *      smp_store_release(&seq, seq + 1);  // (A) readers move to !g
 *      smp_wmb();                      // (B) the bump before any write to g
 *      write region[g] and copy[g];    // same bytes again
 *
 * After a kill between the two writes, seq & 1 names the complete new copy
 * and the other one is torn; the next writer starts by rewriting the one
 * that seq & 1 does not name, so it never bumps onto a torn copy.
 *
 * The reader (shm/reader.c, shm_snapshot_begin()/shm_snapshot_end()):
 *
 *      do {
 *              s = smp_load_acquire(&seq);     // (C) pairs with (A)
 *              read copy[s & 1], region[s & 1]; copy the answer out;
 *              smp_rmb();                      // (D) pairs with (B)
 *      } while (READ_ONCE(seq) != s && tries++ < SHM_READ_TRIES);
 *
 * (C)/(A): a reader that sees the new count sees the copy written before it.
 * (D)/(B): a reader whose copy the writer began to overwrite after the bump
 * sees the count changed and retries. A torn read is thrown away, never used;
 * while it lasts every offset and length read from it is checked against the
 * mapping before use and every loop is bounded, so torn or hostile bytes give
 * "unavailable", never a fault or a hang.
 *
 * Growth: a file mapped by readers is never truncated (they would SIGBUS). A
 * larger table goes into a new file, renamed over the path; then the old
 * header's `retired` is set (release). Readers check it (acquire) on each
 * lookup and re-open the path. Old mappings stay mapped until no thread of
 * the process holds them (a reference count per mapping, no locks).
 *
 * The persisted copy (SHM_DEFAULT_FALLBACK_PATH): ztnad writes the table
 * readers use, in this same format, into a new file on disk and renames it
 * over the old one (shm_writer_export(), shm_store_save()). Both copy
 * descriptors are the same and both region offsets name the one region;
 * `seq` is 0 and nothing ever writes the file in place. A reader that cannot
 * map the store maps this file, with the same trust checks, and marks every
 * snapshot of it stale.
 */

#include <assert.h>
#include <stdint.h>

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
/* The fields are stored little-endian in host order; a big-endian port would
 * need byte swaps in the reader and writer. */
#error "the ztna record store is defined as little-endian"
#endif

#define SHM_MAGIC       UINT64_C(0x3143455241544e5a) /* "ZNTAREC1" */
#define SHM_VERSION     2u /* 2: one entry per peer, the blocklist */
#define SHM_DEFAULT_PATH "/run/ztna/records"
#define SHM_ENV_PATH    "ZTNA_STORE"
/* The persisted copy of the default store, outside tmpfs (docs/store-fallback.md):
 * the same format with one region, answered from as stale while the store
 * itself is missing (before the first publish after a boot, say). */
#define SHM_DEFAULT_FALLBACK_PATH "/var/cache/ztna/records"
#define SHM_ENV_FALLBACK "ZTNA_STORE_FALLBACK"
/* While a reader answers from the persisted copy it tries the store's path
 * again (and checks that the copy is still the file at its path) at most
 * this often: one attempt a second per process, not one per lookup. */
#define SHM_FALLBACK_RECHECK_USEC UINT64_C(1000000)

#define SHM_LABEL_MAX   63u  /* RFC 1035 2.3.4 */
#define SHM_DOMAIN_MAX  253u /* a name's text form, without the final dot */
#define SHM_RANGES_MAX  8u
#define SHM_PROBE_LIMIT 512u /* the writer re-keys rather than exceed this */
#define SHM_READ_TRIES  8u
#define SHM_ADDRS_MAX   UINT16_MAX /* per family and peer */

enum {
        SHM_STATE_UP = 1,
        SHM_STATE_DOWN = 2,
};

enum {
        SHM_RECORD_ONLINE = 1u << 0,
};

/* A tailnet address range: reverse lookups inside it are ours. */
typedef struct ShmWireRange {
        uint8_t family;   /* 4 or 6 */
        uint8_t prefixlen;
        uint8_t reserved[2];
        uint8_t addr[16]; /* IPv4 in the first 4 bytes */
} ShmWireRange;

/* The descriptor of one copy, rewritten with it. Offsets are relative to the
 * copy's region and checked against `used`, `used` against the region size. */
typedef struct ShmWireCopy {
        uint64_t generation;     /* publish count, goes on across restarts */
        uint64_t published_usec; /* CLOCK_REALTIME */
        uint64_t hash_key[2];    /* SipHash-1-3 key of both indexes */
        uint32_t state;          /* SHM_STATE_* */
        uint32_t used;           /* bytes of the region in use */
        uint32_t n_records, index_off;       /* uint32_t[n_records]: entry offsets, in order */
        uint32_t entries_len, entries_off;   /* the records, see ShmWireEntry */
        uint32_t name_slots, name_idx_off, name_max_probe; /* ShmWireSlot[] */
        uint32_t addr_slots, addr_idx_off, addr_max_probe; /* ShmWireSlot[] */
        uint32_t blocked_len, blocked_off;                 /* blocked names, see below */
        uint32_t block_slots, block_idx_off, block_max_probe; /* ShmWireSlot[] */
        uint32_t n_ranges;
        uint32_t domain_len;
        ShmWireRange ranges[SHM_RANGES_MAX];
        char domain[256];        /* as configured, NUL-terminated */
        char domain_lc[256];     /* the same, lower-cased: what names are matched against */
        uint32_t reserved[8];
} ShmWireCopy;

typedef struct ShmWireHeader {
        uint64_t magic;
        uint32_t version;
        uint32_t header_size;
        uint64_t file_size;
        uint32_t seq;            /* the latch; atomic */
        uint32_t retired;        /* atomic; set once, after the rename */
        uint64_t heartbeat_usec; /* atomic; CLOCK_REALTIME of the writer's last sign of life */
        uint64_t writer_pid;
        uint64_t region_off[2];  /* fixed for the life of the file */
        uint64_t region_size[2];
        ShmWireCopy copy[2];
} ShmWireHeader;

/* One peer, everything a lookup needs in one place (one or two cache lines
 * rather than one per array): this header, the short name as configured
 * (name_len bytes and a NUL), zero padding to a multiple of 4, n_v4 IPv4
 * addresses (4 bytes each), n_v6 IPv6 addresses (16 bytes each), zero
 * padding to a multiple of 8. The FQDN is name "." domain. */
typedef struct ShmWireEntry {
        uint32_t ttl;
        uint16_t n_v4;
        uint16_t n_v6;
        uint8_t name_len;
        uint8_t flags;     /* SHM_RECORD_* */
        uint16_t reserved;
        char name[];
} ShmWireEntry;

/* Open addressing, linear probing. The slot for hash h starts at
 * ((h & 0xffffffff) * slots) >> 32; `tag` is h >> 32 and saves most name
 * comparisons; `entry` is the entry's offset in the entries section divided
 * by 8, plus one; 0 marks an empty slot. A name index entry is keyed by the
 * lower-cased short name; an address entry by the 16-byte address (IPv4 as
 * ::ffff:a.b.c.d) and refers to the entry holding it. */
typedef struct ShmWireSlot {
        uint32_t tag;
        uint32_t entry;
} ShmWireSlot;

/* The threat blocklist, so the module refuses what the stub refuses: each
 * name lower-case without the final dot, as one length byte, the name and a
 * NUL, packed; the block index is keyed by the name and its `entry` is the
 * name's offset plus one. A name matches when it or any domain above it is
 * in the index. */

#define SHM_ENTRY_ALIGN 8u

static inline uint32_t shm_entry_addrs_off(uint32_t name_len) {
        return (uint32_t) ((sizeof(ShmWireEntry) + name_len + 1 + 3) & ~3u);
}

static inline uint32_t shm_entry_size(uint32_t name_len, uint32_t n_v4, uint32_t n_v6) {
        return (shm_entry_addrs_off(name_len) + n_v4 * 4u + n_v6 * 16u + SHM_ENTRY_ALIGN - 1) &
               ~(SHM_ENTRY_ALIGN - 1);
}

static_assert(sizeof(ShmWireRange) == 20, "range layout");
static_assert(sizeof(ShmWireEntry) == 12, "entry layout");
static_assert(sizeof(ShmWireSlot) == 8, "slot layout");
static_assert(sizeof(ShmWireCopy) % 8 == 0, "copy layout");
static_assert(sizeof(ShmWireHeader) % 8 == 0, "header layout");

#define SHM_HEADER_SIZE ((uint32_t) ((sizeof(ShmWireHeader) + 4095) & ~(size_t) 4095))

static inline uint32_t shm_slot_start(uint64_t hash, uint32_t slots) {
        return (uint32_t) (((hash & UINT64_C(0xffffffff)) * slots) >> 32);
}
