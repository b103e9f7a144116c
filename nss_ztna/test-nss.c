/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of libnss_ztna's entry points, called directly with the
 * arguments glibc passes, against stores published with the shm writer.
 * What is checked is DESIGN.md's "NSS semantics" table, row by row, through
 * every entry point; and for every buffer size up to the one needed, that
 * the answer is either complete or exactly "buffer too small", with nothing
 * written outside the caller's buffer.
 *
 * The module reads through one process-wide reader whose mapping stays
 * cached, so every test runs in a process of its own (Check's fork mode,
 * forced in main()) and points ZTNA_STORE at its store before its first
 * lookup. The parent publishes all stores once, in a private directory.
 *
 * The persisted copy: with ZTNA_STORE missing (or untrusted) and
 * ZTNA_STORE_FALLBACK naming a copy ztnad would save, names and addresses
 * of the tailnet must never be UNAVAIL; untrusted copies change nothing.
 */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netdb.h>
#include <nss.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "shm.h"

/* The module's entry points, with the types glibc declares for them. */
nss_gethostbyname4_r _nss_ztna_gethostbyname4_r;
nss_gethostbyname3_r _nss_ztna_gethostbyname3_r;
nss_gethostbyname2_r _nss_ztna_gethostbyname2_r;
nss_gethostbyname_r _nss_ztna_gethostbyname_r;
nss_gethostbyaddr2_r _nss_ztna_gethostbyaddr2_r;
nss_gethostbyaddr_r _nss_ztna_gethostbyaddr_r;
nss_sethostent _nss_ztna_sethostent;
nss_gethostent_r _nss_ztna_gethostent_r;
nss_endhostent _nss_ztna_endhostent;

#define DOMAIN "yourorg.zt.net"
#define LABEL_MAX 63 /* RFC 1035 2.3.4 */
#define NAME_MAX_TEXT 253 /* a name's text form without the final dot */
#define MANY_ADDRS 300

/* Values no call sets on its own, to see what a call left untouched. */
#define ERRNO_SENTINEL 7777
#define ERRNOP_SENTINEL 8888
#define H_ERRNO_SENTINEL 9999
#define TTL_SENTINEL INT32_C(-4242)
#define CANARY 0xa5
#define CANARY_TAIL 64
#define BIG_BUFFER 65536

/* Buffer sizes are swept from 0 to this much past the smallest that works,
 * at every start offset modulo a pointer's alignment. */
#define SWEEP_PAST 64
#define SWEEP_LIMIT (1u << 20)
#define ALL_OFFSETS alignof(void *)

static char canon_sentinel[] = "untouched";

/* ck_assert_msg() tells the parent about every check that passes (a write
 * each), and the sweeps make millions: this one speaks only on failure. */
#define verify(expr, ...)                         \
        do {                                      \
                if (!(expr))                      \
                        ck_abort_msg(__VA_ARGS__); \
        } while (0)

/* ---- the tailnet under test ---- */

enum { P_WIN_A, P_LINUX_B, P_MAC_C, P_EMPTY_D, P_MANY, P_LONG, N_PEERS };

static struct in_addr win_a_v4[1], linux_b_v4[1], long_v4[1], many_v4[MANY_ADDRS];
static struct in6_addr win_a_v6[1], mac_c_v6[1], many_v6[MANY_ADDRS];
static char long_name[LABEL_MAX + 1];
static ShmPeer peers[N_PEERS];
static ShmPrefix ranges[2];
static ShmMap tailnet;
static char store_dir[PATH_MAX];
/* Answers come from the persisted copy: TTLs are capped. */
static bool stale_ttl;

static struct in_addr ip4(const char *text) {
        struct in_addr a;
        if (inet_pton(AF_INET, text, &a) != 1)
                abort();
        return a;
}

static struct in6_addr ip6(const char *text) {
        struct in6_addr a;
        if (inet_pton(AF_INET6, text, &a) != 1)
                abort();
        return a;
}

static void tailnet_init(void) {
        win_a_v4[0] = ip4("100.64.0.1");
        win_a_v6[0] = ip6("fd7a:115c:a1e0::1");
        linux_b_v4[0] = ip4("100.64.0.2");
        mac_c_v6[0] = ip6("fd7a:115c:a1e0::3");
        long_v4[0] = ip4("100.64.0.63");
        for (unsigned i = 0; i < MANY_ADDRS; i++) {
                /* 100.64.1.0 ... and fd7a:115c:a1e0::1:0 ... */
                uint8_t *b4 = (uint8_t *) &many_v4[i];
                b4[0] = 100, b4[1] = 64, b4[2] = (uint8_t) (1 + i / 256), b4[3] = (uint8_t) (i % 256);
                many_v6[i] = ip6("fd7a:115c:a1e0::1:0");
                many_v6[i].s6_addr[14] = (uint8_t) (i >> 8);
                many_v6[i].s6_addr[15] = (uint8_t) i;
        }
        memset(long_name, 'x', LABEL_MAX);
        memcpy(long_name, "Long-", 5);

        peers[P_WIN_A] = (ShmPeer) { "Win-A", 60, true, 1, win_a_v4, 1, win_a_v6 };
        peers[P_LINUX_B] = (ShmPeer) { "Linux-B", 300, true, 1, linux_b_v4, 0, NULL };
        peers[P_MAC_C] = (ShmPeer) { "Mac-C", 30, true, 0, NULL, 1, mac_c_v6 };
        peers[P_EMPTY_D] = (ShmPeer) { "Empty-D", 60, true, 0, NULL, 0, NULL };
        peers[P_MANY] = (ShmPeer) { "Many", 120, true, MANY_ADDRS, many_v4, MANY_ADDRS, many_v6 };
        /* A TTL above INT32_MAX must not come out negative. */
        peers[P_LONG] = (ShmPeer) { long_name, UINT32_MAX, true, 1, long_v4, 0, NULL };

        ranges[0] = (ShmPrefix) { .family = AF_INET, .prefixlen = 10, .addr.in = ip4("100.64.0.0") };
        ranges[1] = (ShmPrefix) { .family = AF_INET6, .prefixlen = 48, .addr.in6 = ip6("fd7a:115c:a1e0::") };
        tailnet = (ShmMap) { .domain = DOMAIN, .n_ranges = 2, .ranges = ranges, .n_peers = N_PEERS, .peers = peers };
}

/* ---- the stores, made by the parent ---- */

/* Same map, each refused for one reason of trust. */
static const char *const untrusted_stores[] = {
        "world-writable",   /* mode 0666 */
        "group-writable",   /* mode 0664 */
        "foreign-owner",    /* owned by neither root nor the directory's owner */
        "open-dir/records", /* in a world-writable directory */
        "user-dir/records", /* in a directory of a non-system account */
        "symlink",          /* a symbolic link to "good" */
        "hardlink",         /* a second link to a store */
        "fifo",             /* must be refused, not block the caller */
};
static const char *const corrupt_stores[] = {
        "garbage",   /* no magic */
        "truncated", /* shorter than a header */
};

static void die(const char *what) {
        fprintf(stderr, "test-nss: %s: %s\n", what, strerror(errno));
        exit(EXIT_FAILURE);
}

static void store_path(const char *name, char *ret, size_t size) {
        if ((size_t) snprintf(ret, size, "%s/%s", store_dir, name) >= size)
                abort();
}

static int publish(const char *name, const ShmMap *map, bool up) {
        char path[PATH_MAX];
        ShmWriter *w = NULL;
        store_path(name, path, sizeof(path));
        int r = shm_writer_open(path, &w);
        if (r >= 0)
                r = shm_writer_publish(w, map, up);
        shm_writer_close(w);
        return r;
}

static void publish_or_die(const char *name, const ShmMap *map, bool up) {
        int r = publish(name, map, up);
        if (r < 0) {
                errno = -r;
                die(name);
        }
}

/* Publishes `map` and saves its persisted copy as `name`, as ztnad does. */
static void copy_or_die(const char *name, const ShmMap *map, bool up) {
        char src[PATH_MAX], path[PATH_MAX];
        ShmWriter *w = NULL;
        void *img = NULL;
        size_t len;
        store_path("copy-source", src, sizeof(src));
        store_path(name, path, sizeof(path));
        int r = shm_writer_open(src, &w);
        if (r >= 0)
                r = shm_writer_publish(w, map, up);
        if (r >= 0)
                r = shm_writer_export(w, &img, &len);
        if (r >= 0)
                r = shm_store_save(path, img, len);
        free(img);
        shm_writer_close(w);
        if (r < 0) {
                errno = -r;
                die(name);
        }
}

static void write_file(const char *name, uint8_t byte, size_t size) {
        char path[PATH_MAX];
        store_path(name, path, sizeof(path));
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
                die(path);
        uint8_t chunk[4096];
        memset(chunk, byte, sizeof(chunk));
        for (size_t done = 0; done < size;) {
                size_t n = size - done < sizeof(chunk) ? size - done : sizeof(chunk);
                ssize_t k = write(fd, chunk, n);
                if (k <= 0)
                        die(path);
                done += (size_t) k;
        }
        close(fd);
}

static void stores_create(void) {
        char a[PATH_MAX], b[PATH_MAX];
        const char *tmp = getenv("TMPDIR");

        if ((size_t) snprintf(store_dir, sizeof(store_dir), "%s/test-nss.XXXXXX", tmp && *tmp ? tmp : "/tmp") >=
            sizeof(store_dir))
                abort();
        /* The reader refuses a world-writable directory such as /tmp. */
        if (!mkdtemp(store_dir) || chmod(store_dir, 0755) < 0)
                die("mkdtemp");

        publish_or_die("good", &tailnet, true);
        publish_or_die("down", &tailnet, false);

        publish_or_die("world-writable", &tailnet, true);
        store_path("world-writable", a, sizeof(a));
        if (chmod(a, 0666) < 0)
                die(a);
        publish_or_die("group-writable", &tailnet, true);
        store_path("group-writable", a, sizeof(a));
        if (chmod(a, 0664) < 0)
                die(a);
        publish_or_die("foreign-owner", &tailnet, true);
        store_path("foreign-owner", a, sizeof(a));
        if (chown(a, 4242, 4242) < 0)
                die(a);

        store_path("open-dir", a, sizeof(a));
        if (mkdir(a, 0755) < 0 || chmod(a, 0777) < 0)
                die(a);
        publish_or_die("open-dir/records", &tailnet, true);
        store_path("user-dir", a, sizeof(a));
        if (mkdir(a, 0755) < 0)
                die(a);
        publish_or_die("user-dir/records", &tailnet, true);
        store_path("user-dir/records", b, sizeof(b));
        if (chown(b, 4242, 4242) < 0 || chown(a, 4242, 4242) < 0)
                die(a);

        store_path("symlink", a, sizeof(a));
        if (symlink("good", a) < 0)
                die(a);
        publish_or_die("hardlink", &tailnet, true);
        store_path("hardlink", a, sizeof(a));
        store_path("hardlink-2", b, sizeof(b));
        if (link(a, b) < 0)
                die(b);
        store_path("fifo", a, sizeof(a));
        if (mkfifo(a, 0644) < 0)
                die(a);

        write_file("garbage", 0xa5, 65536);
        write_file("truncated", 0, 100);

        copy_or_die("copy-good", &tailnet, true);
        copy_or_die("copy-down", &tailnet, false);
        copy_or_die("copy-world-writable", &tailnet, true);
        store_path("copy-world-writable", a, sizeof(a));
        if (chmod(a, 0666) < 0)
                die(a);
        copy_or_die("copy-foreign-owner", &tailnet, true);
        store_path("copy-foreign-owner", a, sizeof(a));
        if (chown(a, 4242, 4242) < 0)
                die(a);
        copy_or_die("open-dir/copy", &tailnet, true);
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw) {
        (void) st, (void) type, (void) ftw;
        return remove(path) < 0 ? -1 : 0;
}

static void stores_remove(void) {
        if (store_dir[0] && nftw(store_dir, remove_one, 16, FTW_DEPTH | FTW_PHYS) < 0)
                fprintf(stderr, "test-nss: cannot remove %s: %s\n", store_dir, strerror(errno));
}

static void use_store(const char *name) {
        char path[PATH_MAX];
        store_path(name, path, sizeof(path));
        ck_assert_int_eq(setenv("ZTNA_STORE", path, 1), 0);
}

static void use_fallback(const char *name) {
        char path[PATH_MAX];
        store_path(name, path, sizeof(path));
        ck_assert_int_eq(setenv("ZTNA_STORE_FALLBACK", path, 1), 0);
}

/* ---- calling the module ---- */

typedef enum Entry {
        BY_NAME4,
        BY_NAME3,
        BY_NAME2,
        BY_NAME,
        BY_ADDR2,
        BY_ADDR,
        BY_ENT,
} Entry;

static const char *const entry_names[] = {
        [BY_NAME4] = "gethostbyname4_r", [BY_NAME3] = "gethostbyname3_r", [BY_NAME2] = "gethostbyname2_r",
        [BY_NAME] = "gethostbyname_r",   [BY_ADDR2] = "gethostbyaddr2_r", [BY_ADDR] = "gethostbyaddr_r",
        [BY_ENT] = "gethostent_r",
};

typedef struct Query {
        Entry entry;
        const char *name; /* by name */
        int af;           /* by name (not BY_NAME4) and by address */
        uint8_t addr[16]; /* by address */
        socklen_t addr_len;
} Query;

enum {
        VIA_ERRNO = 1 << 0, /* errnop = &errno, as glibc passes it */
        OWN_TUPLE = 1 << 1, /* BY_NAME4: *pat is a tuple of the caller's */
        NULL_TTL = 1 << 2,  /* ttlp (and canonp) NULL */
};

typedef struct Call {
        enum nss_status status;
        int errnop, h_errnop, errno_after;
        int32_t ttl;
        char *canon;
        struct hostent he;
        struct gaih_addrtuple own; /* the caller's tuple with OWN_TUPLE */
        struct gaih_addrtuple *pat;
} Call;

/* A caller's buffer: `len` bytes at `start`, `offset` bytes into an
 * allocation that ends exactly there or `tail` canary bytes later. */
typedef struct Buf {
        uint8_t *mem;
        size_t size;
        char *start;
        size_t len;
} Buf;

static void buf_new(Buf *b, size_t offset, size_t len, size_t tail) {
        b->size = offset + len + tail;
        b->mem = malloc(b->size ? b->size : 1);
        verify(b->mem, "out of memory");
        memset(b->mem, CANARY, b->size);
        b->start = (char *) b->mem + offset;
        b->len = len;
}

static void buf_free(Buf *b) {
        free(b->mem);
        b->mem = NULL;
}

/* The first byte in [from, to) of the allocation that is not the canary,
 * or `to`. */
static size_t buf_touched(const Buf *b, size_t from, size_t to) {
        static uint8_t canary[4096];
        if (canary[0] != CANARY)
                memset(canary, CANARY, sizeof(canary));
        while (from < to) {
                size_t n = to - from < sizeof(canary) ? to - from : sizeof(canary);
                if (memcmp(b->mem + from, canary, n) != 0)
                        for (size_t i = from;; i++)
                                if (b->mem[i] != CANARY)
                                        return i;
                from += n;
        }
        return to;
}

static bool in_buf(const Buf *b, const void *p, size_t size) {
        const char *c = p;
        return c >= b->start && c <= b->start + b->len && size <= (size_t) (b->start + b->len - c);
}

static bool aligned(const void *p, size_t a) {
        return (uintptr_t) p % a == 0;
}

static Query by_name(Entry e, const char *name, int af) {
        return (Query) { .entry = e, .name = name, .af = af };
}

static Query by_addr(Entry e, int af, const char *text) {
        Query q = { .entry = e, .af = af, .addr_len = af == AF_INET ? 4 : 16 };
        verify(inet_pton(af, text, q.addr) == 1, "bad address %s", text);
        return q;
}

static Query by_addr_bytes(Entry e, int af, const void *addr) {
        Query q = { .entry = e, .af = af, .addr_len = af == AF_INET ? 4 : 16 };
        memcpy(q.addr, addr, q.addr_len);
        return q;
}

static const char *af_name(int af) {
        return af == AF_INET ? "AF_INET" : af == AF_INET6 ? "AF_INET6" : af == AF_UNSPEC ? "AF_UNSPEC" : "AF_?";
}

/* For messages; one at a time. */
static const char *describe(const Query *q, unsigned flags) {
        static char text[512];
        char a[INET6_ADDRSTRLEN] = "?";
        const char *how = flags & VIA_ERRNO ? ", errnop=&errno" : "";
        const char *own = flags & OWN_TUPLE ? ", *pat preset" : "";

        switch (q->entry) {
        case BY_NAME4:
        case BY_NAME:
                snprintf(text, sizeof(text), "%s(\"%.300s\"%s%s)", entry_names[q->entry], q->name, how, own);
                break;
        case BY_NAME3:
        case BY_NAME2:
                snprintf(text, sizeof(text), "%s(\"%.300s\", %s%s)", entry_names[q->entry], q->name,
                         af_name(q->af), how);
                break;
        case BY_ADDR2:
        case BY_ADDR:
                if (q->af == AF_INET || q->af == AF_INET6)
                        inet_ntop(q->af, q->addr, a, sizeof(a));
                snprintf(text, sizeof(text), "%s(%s, %u, %s%s)", entry_names[q->entry], a, (unsigned) q->addr_len,
                         af_name(q->af), how);
                break;
        case BY_ENT:
                snprintf(text, sizeof(text), "%s(%s)", entry_names[q->entry], how);
                break;
        }
        return text;
}

static void do_call(const Query *q, char *buf, size_t len, unsigned flags, Call *c) {
        int local = ERRNOP_SENTINEL;
        int *errnop = flags & VIA_ERRNO ? &errno : &local;
        bool with_ttl = !(flags & NULL_TTL);

        memset(c, 0x5a, sizeof(*c));
        c->h_errnop = H_ERRNO_SENTINEL;
        c->ttl = TTL_SENTINEL;
        c->canon = canon_sentinel;
        c->pat = flags & OWN_TUPLE ? &c->own : NULL;

        errno = ERRNO_SENTINEL;
        switch (q->entry) {
        case BY_NAME4:
                c->status = _nss_ztna_gethostbyname4_r(q->name, &c->pat, buf, len, errnop, &c->h_errnop,
                                                       with_ttl ? &c->ttl : NULL);
                break;
        case BY_NAME3:
                c->status = _nss_ztna_gethostbyname3_r(q->name, q->af, &c->he, buf, len, errnop, &c->h_errnop,
                                                       with_ttl ? &c->ttl : NULL, with_ttl ? &c->canon : NULL);
                break;
        case BY_NAME2:
                c->status = _nss_ztna_gethostbyname2_r(q->name, q->af, &c->he, buf, len, errnop, &c->h_errnop);
                break;
        case BY_NAME:
                c->status = _nss_ztna_gethostbyname_r(q->name, &c->he, buf, len, errnop, &c->h_errnop);
                break;
        case BY_ADDR2:
                c->status = _nss_ztna_gethostbyaddr2_r(q->addr, q->addr_len, q->af, &c->he, buf, len, errnop,
                                                       &c->h_errnop, with_ttl ? &c->ttl : NULL);
                break;
        case BY_ADDR:
                c->status = _nss_ztna_gethostbyaddr_r(q->addr, q->addr_len, q->af, &c->he, buf, len, errnop,
                                                      &c->h_errnop);
                break;
        case BY_ENT:
                c->status = _nss_ztna_gethostent_r(&c->he, buf, len, errnop, &c->h_errnop);
                break;
        }
        c->errno_after = errno;
        c->errnop = flags & VIA_ERRNO ? c->errno_after : local;
}

/* ---- checking what came back ---- */

typedef struct Expect {
        enum nss_status status;
        int errnop; /* or one of: */
        int h_errnop;
} Expect;

enum {
        ERRNOP_UNTOUCHED = -1, /* and errno preserved */
        ERRNOP_ANY = -2,       /* some errno, but not one that means "retry" */
};

/* The rows of DESIGN.md's table. */
static const Expect FOUND = { NSS_STATUS_SUCCESS, ERRNOP_UNTOUCHED, NETDB_SUCCESS };
static const Expect NO_ADDR = { NSS_STATUS_NOTFOUND, ERRNOP_UNTOUCHED, NO_DATA };
static const Expect UNKNOWN = { NSS_STATUS_NOTFOUND, ERRNOP_UNTOUCHED, HOST_NOT_FOUND };
static const Expect DOWN = { NSS_STATUS_TRYAGAIN, EAGAIN, TRY_AGAIN };
static const Expect NOT_OURS = { NSS_STATUS_UNAVAIL, EINVAL, NO_RECOVERY };
static const Expect MISSING = { NSS_STATUS_UNAVAIL, ENOENT, NO_RECOVERY };
static const Expect UNUSABLE = { NSS_STATUS_UNAVAIL, ERRNOP_ANY, NO_RECOVERY };
static const Expect TOO_SMALL = { NSS_STATUS_TRYAGAIN, ERANGE, NETDB_INTERNAL };
/* An argument glibc never passes (a family other than the two). */
static const Expect REFUSED = { NSS_STATUS_UNAVAIL, ERRNOP_ANY, NO_RECOVERY };

static void check_outcome(const Query *q, unsigned flags, const Call *c, Expect x, const Buf *b) {
        const char *what = describe(q, flags);
        size_t start = (size_t) ((uint8_t *) b->start - b->mem), end = start + b->len;

        verify(c->status == x.status, "%s: status %d, expected %d", what, c->status, x.status);
        verify(c->h_errnop == x.h_errnop, "%s: *h_errnop %d, expected %d", what, c->h_errnop, x.h_errnop);
        if (x.errnop == ERRNOP_UNTOUCHED) {
                int want = flags & VIA_ERRNO ? ERRNO_SENTINEL : ERRNOP_SENTINEL;
                verify(c->errnop == want, "%s: *errnop set to %d", what, c->errnop);
                verify(c->errno_after == ERRNO_SENTINEL, "%s: errno changed to %d", what, c->errno_after);
        } else if (x.errnop == ERRNOP_ANY)
                verify(c->errnop > 0 && c->errnop != ERANGE && c->errnop != EAGAIN &&
                                      c->errnop != ERRNOP_SENTINEL && c->errnop != ERRNO_SENTINEL,
                              "%s: *errnop %d", what, c->errnop);
        else
                verify(c->errnop == x.errnop, "%s: *errnop %d (%s), expected %d (%s)", what, c->errnop,
                              strerror(c->errnop), x.errnop, strerror(x.errnop));

        if (c->status == NSS_STATUS_SUCCESS) {
                size_t t = buf_touched(b, 0, start);
                verify(t == start, "%s: wrote %zu bytes before the buffer", what, start - t);
                t = buf_touched(b, end, b->size);
                verify(t == b->size, "%s: wrote past the %zu-byte buffer, at +%zu", what, b->len, t - end);
                return;
        }
        /* Nothing of the caller's written unless the answer is complete. */
        size_t t = buf_touched(b, 0, b->size);
        verify(t == b->size, "%s: status %d but wrote the buffer at %zd", what, c->status,
                      (ssize_t) t - (ssize_t) start);
        verify(c->ttl == TTL_SENTINEL, "%s: *ttlp written on failure", what);
        verify(c->canon == canon_sentinel, "%s: *canonp written on failure", what);
        verify(c->pat == (flags & OWN_TUPLE ? &c->own : NULL), "%s: *pat written on failure", what);
        struct gaih_addrtuple untouched_tuple;
        struct hostent untouched_hostent;
        memset(&untouched_tuple, 0x5a, sizeof(untouched_tuple));
        memset(&untouched_hostent, 0x5a, sizeof(untouched_hostent));
        verify(memcmp(&c->own, &untouched_tuple, sizeof(c->own)) == 0, "%s: **pat written on failure", what);
        verify(memcmp(&c->he, &untouched_hostent, sizeof(c->he)) == 0, "%s: *result written on failure",
                      what);
}

static void peer_fqdn(int peer, char *ret, size_t size) {
        verify((size_t) snprintf(ret, size, "%s.%s", peers[peer].name, DOMAIN) < size, "name too long");
}

static int32_t peer_ttl(int peer) {
        uint32_t ttl = peers[peer].ttl;
        if (stale_ttl && ttl > SHM_STALE_TTL_MAX)
                ttl = SHM_STALE_TTL_MAX;
        return ttl > INT32_MAX ? INT32_MAX : (int32_t) ttl;
}

static void verify_tuples(const Query *q, unsigned flags, const Call *c, const Buf *b, int peer) {
        const char *what = describe(q, flags);
        const ShmPeer *p = &peers[peer];
        size_t total = p->n_v4 + p->n_v6, n4 = 0, n6 = 0, i = 0;
        char fqdn[NAME_MAX_TEXT + 2];
        peer_fqdn(peer, fqdn, sizeof(fqdn));

        if (flags & OWN_TUPLE)
                verify(c->pat == &c->own, "%s: replaced the caller's tuple", what);
        for (const struct gaih_addrtuple *t = c->pat; t; t = t->next, i++) {
                verify(i < total, "%s: more than %zu tuples", what, total);
                if (!(i == 0 && (flags & OWN_TUPLE)))
                        verify(in_buf(b, t, sizeof(*t)) && aligned(t, alignof(struct gaih_addrtuple)),
                                      "%s: tuple %zu outside the buffer or misaligned", what, i);
                verify(t->name && in_buf(b, t->name, strlen(fqdn) + 1) && strcmp(t->name, fqdn) == 0,
                              "%s: tuple %zu names \"%s\", expected \"%s\" in the buffer", what, i,
                              in_buf(b, t->name, 1) ? t->name : "?", fqdn);
                verify(t->scopeid == 0, "%s: tuple %zu scope %u", what, i, t->scopeid);
                if (t->family == AF_INET) {
                        verify(n4 < p->n_v4 && memcmp(t->addr, &p->v4[n4], 4) == 0,
                                      "%s: tuple %zu is not IPv4 address %zu", what, i, n4);
                        n4++;
                } else {
                        verify(t->family == AF_INET6, "%s: tuple %zu family %d", what, i, t->family);
                        verify(n6 < p->n_v6 && memcmp(t->addr, &p->v6[n6], 16) == 0,
                                      "%s: tuple %zu is not IPv6 address %zu", what, i, n6);
                        n6++;
                }
        }
        verify(n4 == p->n_v4 && n6 == p->n_v6, "%s: %zu+%zu addresses, expected %zu+%zu", what, n4, n6,
                      p->n_v4, p->n_v6);
        if (flags & NULL_TTL)
                verify(c->ttl == TTL_SENTINEL, "%s: *ttlp written", what);
        else
                verify(c->ttl == peer_ttl(peer), "%s: ttl %d, expected %d", what, c->ttl, peer_ttl(peer));
}

static void verify_hostent(const Query *q, unsigned flags, const Call *c, const Buf *b, int peer) {
        const char *what = describe(q, flags);
        const ShmPeer *p = &peers[peer];
        const struct hostent *he = &c->he;
        int af = q->entry == BY_NAME ? AF_INET : q->entry == BY_ENT ? he->h_addrtype : q->af;
        size_t alen = af == AF_INET ? 4 : 16, n;
        const uint8_t *want;
        char fqdn[NAME_MAX_TEXT + 2];
        peer_fqdn(peer, fqdn, sizeof(fqdn));

        if (q->entry == BY_ADDR || q->entry == BY_ADDR2) {
                /* The address asked about, nothing else. */
                want = q->addr;
                n = 1;
        } else {
                want = af == AF_INET ? (const uint8_t *) p->v4 : (const uint8_t *) p->v6;
                n = af == AF_INET ? p->n_v4 : p->n_v6;
        }

        verify(he->h_addrtype == af && (af == AF_INET || af == AF_INET6), "%s: h_addrtype %d", what,
                      he->h_addrtype);
        verify(he->h_length == (int) alen, "%s: h_length %d", what, he->h_length);
        verify(in_buf(b, he->h_name, strlen(fqdn) + 1) && strcmp(he->h_name, fqdn) == 0,
                      "%s: h_name \"%s\", expected \"%s\" in the buffer", what,
                      in_buf(b, he->h_name, 1) ? he->h_name : "?", fqdn);

        verify(in_buf(b, he->h_aliases, 2 * sizeof(char *)) && aligned(he->h_aliases, alignof(char *)),
                      "%s: h_aliases outside the buffer or misaligned", what);
        verify(in_buf(b, he->h_aliases[0], strlen(p->name) + 1) && strcmp(he->h_aliases[0], p->name) == 0,
                      "%s: alias is not the short name \"%s\"", what, p->name);
        verify(he->h_aliases[1] == NULL, "%s: more than one alias", what);

        verify(in_buf(b, he->h_addr_list, (n + 1) * sizeof(char *)) && aligned(he->h_addr_list, alignof(char *)),
                      "%s: h_addr_list outside the buffer or misaligned", what);
        for (size_t i = 0; i < n; i++)
                verify(he->h_addr_list[i] && in_buf(b, he->h_addr_list[i], alen) &&
                                      memcmp(he->h_addr_list[i], want + i * alen, alen) == 0,
                              "%s: address %zu of %zu wrong", what, i, n);
        verify(he->h_addr_list[n] == NULL, "%s: more than %zu addresses", what, n);

        bool has_ttl = (q->entry == BY_NAME3 || q->entry == BY_ADDR2) && !(flags & NULL_TTL);
        if (has_ttl)
                verify(c->ttl == peer_ttl(peer), "%s: ttl %d, expected %d", what, c->ttl, peer_ttl(peer));
        else
                verify(c->ttl == TTL_SENTINEL, "%s: *ttlp written", what);
        if (q->entry == BY_NAME3 && !(flags & NULL_TTL))
                verify(c->canon == he->h_name, "%s: *canonp is not h_name", what);
        else
                verify(c->canon == canon_sentinel, "%s: *canonp written", what);
}

static void verify_found(const Query *q, unsigned flags, const Call *c, const Buf *b, int peer) {
        if (q->entry == BY_NAME4)
                verify_tuples(q, flags, c, b, peer);
        else
                verify_hostent(q, flags, c, b, peer);
}

/* One call with a roomy buffer at a few start offsets, in every way of
 * passing the outputs that applies. */
static void expect(const Query *q, Expect x, int peer) {
        static const unsigned variants[] = { 0, VIA_ERRNO, NULL_TTL, OWN_TUPLE, OWN_TUPLE | VIA_ERRNO | NULL_TTL };
        static const size_t offsets[] = { 0, 1, 4 };

        for (size_t v = 0; v < ELEMENTSOF(variants); v++) {
                if ((variants[v] & OWN_TUPLE) && q->entry != BY_NAME4)
                        continue;
                for (size_t o = 0; o < ELEMENTSOF(offsets); o++) {
                        Buf b;
                        Call c;
                        buf_new(&b, offsets[o], BIG_BUFFER, CANARY_TAIL);
                        do_call(q, b.start, b.len, variants[v], &c);
                        check_outcome(q, variants[v], &c, x, &b);
                        if (c.status == NSS_STATUS_SUCCESS)
                                verify_found(q, variants[v], &c, &b, peer);
                        buf_free(&b);
                }
        }
}

/* Every by-name entry point: `any` is what gethostbyname4_r (all families)
 * must answer, `v4` and `v6` what the single-family ones must. */
static void expect_name(const char *name, int peer, Expect any, Expect v4, Expect v6) {
        const struct {
                Entry entry;
                int af;
                const Expect *x;
        } calls[] = {
                { BY_NAME4, AF_UNSPEC, &any }, { BY_NAME3, AF_INET, &v4 }, { BY_NAME3, AF_INET6, &v6 },
                { BY_NAME2, AF_INET, &v4 },    { BY_NAME2, AF_INET6, &v6 }, { BY_NAME, AF_INET, &v4 },
        };
        for (size_t i = 0; i < ELEMENTSOF(calls); i++) {
                Query q = by_name(calls[i].entry, name, calls[i].af);
                expect(&q, *calls[i].x, peer);
        }
}

static void expect_name_all(const char *name, Expect x) {
        expect_name(name, -1, x, x, x);
}

/* Both by-address entry points. */
static void expect_addr(int af, const char *text, int peer, Expect x) {
        Query q = by_addr(BY_ADDR2, af, text);
        expect(&q, x, peer);
        q = by_addr(BY_ADDR, af, text);
        expect(&q, x, peer);
}

/* The first entry of a fresh enumeration. */
static void expect_enum_first(Expect x) {
        Query q = { .entry = BY_ENT };
        for (unsigned flags = 0; flags <= VIA_ERRNO; flags++) {
                Buf b;
                Call c;
                ck_assert_int_eq(_nss_ztna_sethostent(0), NSS_STATUS_SUCCESS);
                buf_new(&b, 0, BIG_BUFFER, CANARY_TAIL);
                do_call(&q, b.start, b.len, flags, &c);
                check_outcome(&q, flags, &c, x, &b);
                buf_free(&b);
                ck_assert_int_eq(_nss_ztna_endhostent(), NSS_STATUS_SUCCESS);
        }
}

/* What the module needs at most for a complete answer to `q`, at a buffer
 * start aligned for pointers (plus alignment padding otherwise). */
static size_t needed_at_most(const Query *q, int peer) {
        const ShmPeer *p = &peers[peer];
        size_t fqdn = strlen(p->name) + 1 + strlen(DOMAIN) + 1;
        if (q->entry == BY_NAME4)
                return (p->n_v4 + p->n_v6) * sizeof(struct gaih_addrtuple) + fqdn;
        int af = q->entry == BY_NAME ? AF_INET : q->af;
        size_t alen = af == AF_INET ? 4 : 16;
        size_t n = q->entry == BY_ADDR || q->entry == BY_ADDR2 ? 1 : af == AF_INET ? p->n_v4 : p->n_v6;
        return 2 * sizeof(char *) + (n + 1) * sizeof(char *) + n * alen + fqdn + strlen(p->name) + 1;
}

/* Calls `q` with every buffer size from 0 to SWEEP_PAST bytes past the
 * smallest that works, starting at `from` (to skip what a full sweep
 * already covered), at buffer offsets [0, offsets). Every size is tried in
 * an allocation ending exactly at the buffer's end (ASan sees any byte past
 * it) and in one followed by canary bytes. Below the smallest size the
 * answer must be exactly TOO_SMALL with nothing written; from it on, the
 * complete answer. Returns the smallest size at offset 0. */
static size_t sweep(const Query *q, int peer, unsigned flags, size_t offsets, size_t from) {
        size_t first = 0;
        for (size_t off = 0; off < offsets; off++) {
                size_t need = SIZE_MAX;
                for (size_t len = from; len < SWEEP_LIMIT && (need == SIZE_MAX || len < need + SWEEP_PAST); len++)
                        for (size_t tail = 0; tail <= CANARY_TAIL; tail += CANARY_TAIL) {
                                Buf b;
                                Call c;
                                buf_new(&b, off, len, tail);
                                do_call(q, b.start, len, flags, &c);
                                if (c.status == NSS_STATUS_SUCCESS) {
                                        check_outcome(q, flags, &c, FOUND, &b);
                                        verify_found(q, flags, &c, &b, peer);
                                        if (need == SIZE_MAX)
                                                need = len;
                                } else {
                                        verify(need == SIZE_MAX, "%s: fails with %zu bytes, worked with %zu",
                                                      describe(q, flags), len, need);
                                        check_outcome(q, flags, &c, TOO_SMALL, &b);
                                }
                                buf_free(&b);
                        }
                verify(need != SIZE_MAX, "%s: no answer with up to %u bytes", describe(q, flags), SWEEP_LIMIT);
                verify(need <= needed_at_most(q, peer) + alignof(void *) - 1,
                              "%s: needs %zu bytes at offset %zu, more than the %zu its answer takes",
                              describe(q, flags), need, off, needed_at_most(q, peer));
                if (off == 0)
                        first = need;
        }
        return first;
}

/* ---- the tests ---- */

START_TEST(test_found_name_forms) {
        use_store("good");
        static const char *const forms[] = {
                "Win-A", "win-a", "WIN-A", "wIN-a", "Win-A.", "win-a.",
                "Win-A.yourorg.zt.net", "win-a.yourorg.zt.net", "WIN-A.YOURORG.ZT.NET", "wIn-A.YourOrg.Zt.Net",
                "Win-A.yourorg.zt.net.", "WIN-A.YOURORG.ZT.NET.",
        };
        for (size_t i = 0; i < ELEMENTSOF(forms); i++)
                expect_name(forms[i], P_WIN_A, FOUND, FOUND, FOUND);
}
END_TEST

START_TEST(test_found_one_family) {
        use_store("good");
        /* IPv4 only, IPv6 only, neither. */
        expect_name("Linux-B", P_LINUX_B, FOUND, FOUND, NO_ADDR);
        expect_name("linux-b.yourorg.zt.net.", P_LINUX_B, FOUND, FOUND, NO_ADDR);
        expect_name("Mac-C", P_MAC_C, FOUND, NO_ADDR, FOUND);
        expect_name("MAC-C.yourorg.zt.net", P_MAC_C, FOUND, NO_ADDR, FOUND);
        expect_name("Empty-D", P_EMPTY_D, NO_ADDR, NO_ADDR, NO_ADDR);
        expect_name("empty-d.yourorg.zt.net", P_EMPTY_D, NO_ADDR, NO_ADDR, NO_ADDR);
}
END_TEST

START_TEST(test_found_longest_label) {
        char name[LABEL_MAX + 2], fqdn[NAME_MAX_TEXT + 2];
        use_store("good");
        /* A 63-character label, its TTL above INT32_MAX clamped. */
        expect_name(long_name, P_LONG, FOUND, FOUND, NO_ADDR);
        peer_fqdn(P_LONG, fqdn, sizeof(fqdn));
        expect_name(fqdn, P_LONG, FOUND, FOUND, NO_ADDR);
        expect_addr(AF_INET, "100.64.0.63", P_LONG, FOUND);

        /* One character more is no peer's. */
        snprintf(name, sizeof(name), "%sx", long_name);
        expect_name_all(name, NOT_OURS);
        snprintf(fqdn, sizeof(fqdn), "%sx.%s", long_name, DOMAIN);
        expect_name_all(fqdn, UNKNOWN);
}
END_TEST

START_TEST(test_found_many_addresses) {
        char text[INET6_ADDRSTRLEN];
        use_store("good");
        expect_name("Many", P_MANY, FOUND, FOUND, FOUND);
        expect_name("many.yourorg.zt.net", P_MANY, FOUND, FOUND, FOUND);
        /* Every address maps back to the peer. */
        for (size_t i = 0; i < MANY_ADDRS; i++) {
                Query q = by_addr_bytes(BY_ADDR2, AF_INET, &many_v4[i]);
                expect(&q, FOUND, P_MANY);
                q = by_addr_bytes(BY_ADDR, AF_INET6, &many_v6[i]);
                expect(&q, FOUND, P_MANY);
        }
        inet_ntop(AF_INET, &many_v4[MANY_ADDRS - 1], text, sizeof(text));
        expect_addr(AF_INET, text, P_MANY, FOUND);
}
END_TEST

START_TEST(test_found_reverse) {
        use_store("good");
        expect_addr(AF_INET, "100.64.0.1", P_WIN_A, FOUND);
        expect_addr(AF_INET6, "fd7a:115c:a1e0::1", P_WIN_A, FOUND);
        expect_addr(AF_INET, "100.64.0.2", P_LINUX_B, FOUND);
        expect_addr(AF_INET6, "fd7a:115c:a1e0::3", P_MAC_C, FOUND);
}
END_TEST

START_TEST(test_unknown_in_tailnet) {
        char name[NAME_MAX_TEXT + 8];
        use_store("good");
        expect_name_all("nobody.yourorg.zt.net", UNKNOWN);
        expect_name_all("NOBODY.YourOrg.zt.net.", UNKNOWN);
        expect_name_all("yourorg.zt.net", UNKNOWN);           /* the domain itself */
        expect_name_all("Win-A.sub.yourorg.zt.net", UNKNOWN); /* deeper than a peer */
        expect_name_all("www.win-a.yourorg.zt.net", UNKNOWN);
        expect_name_all("Empty-D.x.yourorg.zt.net", UNKNOWN);

        /* The longest name there is, under the domain. */
        memset(name, 'a', sizeof(name));
        size_t dl = strlen("." DOMAIN);
        memcpy(name + NAME_MAX_TEXT - dl, "." DOMAIN, dl + 1);
        for (size_t i = LABEL_MAX; i < NAME_MAX_TEXT - dl; i += LABEL_MAX + 1)
                name[i] = '.';
        ck_assert_uint_eq(strlen(name), NAME_MAX_TEXT);
        expect_name_all(name, UNKNOWN);

        /* Reverse: unknown addresses inside the tailnet's ranges, first
         * and last of each range included. */
        static const char *const v4[] = { "100.64.9.9", "100.64.0.0", "100.127.255.255", "100.64.0.3" };
        static const char *const v6[] = { "fd7a:115c:a1e0::99", "fd7a:115c:a1e0::",
                                          "fd7a:115c:a1e0:ffff:ffff:ffff:ffff:ffff", "fd7a:115c:a1e0::2" };
        for (size_t i = 0; i < ELEMENTSOF(v4); i++)
                expect_addr(AF_INET, v4[i], -1, UNKNOWN);
        for (size_t i = 0; i < ELEMENTSOF(v6); i++)
                expect_addr(AF_INET6, v6[i], -1, UNKNOWN);
}
END_TEST

START_TEST(test_not_ours) {
        char name[4096];
        use_store("good");
        static const char *const names[] = {
                "nobody", "NOBODY.", "localhost", "", ".", "..", "Win-A..", "Win-A.yourorg.zt.net..",
                "example.com", "win-a.example.com", "notyourorg.zt.net", "win-a.notyourorg.zt.net", "zt.net",
                "yourorg.zt.net.example.com", "win-a.yourorg", "yourorg", "100.64.0.1",
        };
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                expect_name_all(names[i], NOT_OURS);

        /* One past the longest name; and far past it. */
        memset(name, 'a', sizeof(name));
        size_t dl = strlen("." DOMAIN);
        memcpy(name + NAME_MAX_TEXT + 1 - dl, "." DOMAIN, dl + 1);
        for (size_t i = LABEL_MAX; i < NAME_MAX_TEXT + 1 - dl; i += LABEL_MAX + 1)
                name[i] = '.';
        ck_assert_uint_eq(strlen(name), NAME_MAX_TEXT + 1);
        expect_name_all(name, NOT_OURS);
        memset(name, 'a', sizeof(name));
        memcpy(name + sizeof(name) - 1 - dl, "." DOMAIN, dl + 1);
        expect_name_all(name, NOT_OURS);

        /* Outside the ranges, right next to them included. */
        static const char *const v4[] = { "8.8.8.8", "100.63.255.255", "100.128.0.0", "127.0.0.1", "0.0.0.0" };
        static const char *const v6[] = { "2001:db8::1", "fd7a:115c:a1e1::", "fd7a:115c:a1df:ffff::1", "::1",
                                          "::ffff:100.64.0.1" };
        for (size_t i = 0; i < ELEMENTSOF(v4); i++)
                expect_addr(AF_INET, v4[i], -1, NOT_OURS);
        for (size_t i = 0; i < ELEMENTSOF(v6); i++)
                expect_addr(AF_INET6, v6[i], -1, NOT_OURS);

        /* A length that does not match the family. */
        Query q = by_addr(BY_ADDR2, AF_INET, "100.64.0.1");
        q.addr_len = 16;
        expect(&q, NOT_OURS, -1);
        q = by_addr(BY_ADDR, AF_INET6, "fd7a:115c:a1e0::1");
        q.addr_len = 4;
        expect(&q, NOT_OURS, -1);
        q.af = AF_UNIX;
        expect(&q, NOT_OURS, -1);

        /* A family that is neither. */
        q = by_name(BY_NAME3, "Win-A", AF_UNIX);
        expect(&q, REFUSED, -1);
        q = by_name(BY_NAME2, "Win-A", AF_UNIX);
        expect(&q, REFUSED, -1);
}
END_TEST

START_TEST(test_down) {
        use_store("down");
        /* Tailnet names and addresses: try again, never "not ours". */
        static const char *const names[] = {
                "Win-A", "win-a.", "Win-A.yourorg.zt.net", "WIN-A.YOURORG.ZT.NET.", "nobody.yourorg.zt.net",
                "yourorg.zt.net", "Empty-D", "Mac-C", "Linux-B.yourorg.zt.net",
        };
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                expect_name_all(names[i], DOWN);
        expect_addr(AF_INET, "100.64.0.1", -1, DOWN);
        expect_addr(AF_INET6, "fd7a:115c:a1e0::1", -1, DOWN);
        expect_addr(AF_INET, "100.64.9.9", -1, DOWN);
        expect_addr(AF_INET6, "fd7a:115c:a1e0::99", -1, DOWN);

        /* Everything else still goes to the next module. */
        expect_name_all("nobody", NOT_OURS);
        expect_name_all("example.com", NOT_OURS);
        expect_addr(AF_INET, "8.8.8.8", -1, NOT_OURS);
        expect_addr(AF_INET6, "2001:db8::1", -1, NOT_OURS);

        /* A listing while down shows nothing. */
        expect_enum_first(UNKNOWN);
}
END_TEST

static void expect_unusable(Expect x) {
        expect_name_all("Win-A", x);
        expect_name_all("win-a.yourorg.zt.net", x);
        expect_name_all("nobody.yourorg.zt.net", x);
        expect_name_all("example.com", x);
        expect_addr(AF_INET, "100.64.0.1", -1, x);
        expect_addr(AF_INET6, "fd7a:115c:a1e0::1", -1, x);
        expect_addr(AF_INET, "8.8.8.8", -1, x);
        expect_enum_first(x);
}

START_TEST(test_store_missing) {
        use_store("missing");
        expect_unusable(MISSING);
        /* A missing directory too. */
        use_store("missing-dir/records");
        expect_unusable(MISSING);
}
END_TEST

START_TEST(test_store_untrusted) {
        for (size_t i = 0; i < ELEMENTSOF(untrusted_stores); i++) {
                use_store(untrusted_stores[i]);
                expect_unusable(UNUSABLE);
        }
        /* The same process, given a trusted store, answers: a refusal is
         * not remembered. */
        use_store("good");
        expect_name("Win-A", P_WIN_A, FOUND, FOUND, FOUND);
}
END_TEST

START_TEST(test_store_corrupt) {
        for (size_t i = 0; i < ELEMENTSOF(corrupt_stores); i++) {
                use_store(corrupt_stores[i]);
                expect_unusable(UNUSABLE);
        }
}
END_TEST

/* ---- the persisted copy ---- */

START_TEST(test_fallback_found) {
        use_store("missing");
        use_fallback("copy-good");
        stale_ttl = true;
        /* Peers in the copy resolve, as stale answers with short TTLs. */
        expect_name("Win-A", P_WIN_A, FOUND, FOUND, FOUND);
        expect_name("win-a.yourorg.zt.net.", P_WIN_A, FOUND, FOUND, FOUND);
        expect_name("Linux-B", P_LINUX_B, FOUND, FOUND, NO_ADDR);
        expect_name("Mac-C.YOURORG.zt.net", P_MAC_C, FOUND, NO_ADDR, FOUND);
        expect_name(long_name, P_LONG, FOUND, FOUND, NO_ADDR); /* TTL UINT32_MAX, capped */
        expect_name_all("Empty-D", NO_ADDR);
        expect_addr(AF_INET, "100.64.0.1", P_WIN_A, FOUND);
        expect_addr(AF_INET6, "fd7a:115c:a1e0::1:12b", P_MANY, FOUND);

        /* Unknown in the domain or the ranges: try again (the copy may
         * predate the peer), never "not ours". */
        static const char *const unknown[] = { "nobody.yourorg.zt.net", "NOBODY.yourorg.zt.net.", "yourorg.zt.net",
                                               "a.b.yourorg.zt.net" };
        for (size_t i = 0; i < ELEMENTSOF(unknown); i++)
                expect_name_all(unknown[i], DOWN);
        expect_addr(AF_INET, "100.64.9.9", -1, DOWN);
        expect_addr(AF_INET6, "fd7a:115c:a1e0::99", -1, DOWN);

        /* Everything else still goes to the next module. */
        expect_name_all("nobody", NOT_OURS);
        expect_name_all("example.com", NOT_OURS);
        expect_name_all("notyourorg.zt.net", NOT_OURS);
        expect_addr(AF_INET, "8.8.8.8", -1, NOT_OURS);
        expect_addr(AF_INET6, "2001:db8::1", -1, NOT_OURS);

        /* `getent hosts` lists the copy. */
        expect_enum_first(FOUND);
}
END_TEST

START_TEST(test_fallback_store_untrusted) {
        /* A store that cannot be trusted is no current store either. */
        use_store("world-writable");
        use_fallback("copy-good");
        stale_ttl = true;
        expect_name("Win-A", P_WIN_A, FOUND, FOUND, FOUND);
        expect_name_all("nobody.yourorg.zt.net", DOWN);
}
END_TEST

START_TEST(test_fallback_store_wins) {
        /* With a store, the copy is never read: not down, TTLs whole. */
        use_store("good");
        use_fallback("copy-down");
        expect_name("Win-A", P_WIN_A, FOUND, FOUND, FOUND);
        expect_name_all("nobody.yourorg.zt.net", UNKNOWN);
}
END_TEST

START_TEST(test_fallback_down) {
        use_store("missing");
        use_fallback("copy-down");
        static const char *const names[] = { "Win-A", "win-a.yourorg.zt.net", "nobody.yourorg.zt.net" };
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                expect_name_all(names[i], DOWN);
        expect_addr(AF_INET, "100.64.0.1", -1, DOWN);
        expect_addr(AF_INET, "100.64.9.9", -1, DOWN);
        expect_name_all("example.com", NOT_OURS);
        expect_enum_first(UNKNOWN);
}
END_TEST

START_TEST(test_fallback_untrusted) {
        /* An untrusted or corrupt copy is not read: the old behaviour, the
         * store's own error (docs/store-fallback.md says why). */
        static const char *const bad[] = { "copy-world-writable", "copy-foreign-owner", "open-dir/copy", "garbage",
                                           "truncated", "missing-copy" };
        use_store("missing");
        for (size_t i = 0; i < ELEMENTSOF(untrusted_stores); i++) {
                use_fallback(untrusted_stores[i]);
                expect_unusable(MISSING);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                use_fallback(bad[i]);
                expect_unusable(MISSING);
        }
        /* Empty or relative: no copy. */
        ck_assert_int_eq(setenv("ZTNA_STORE_FALLBACK", "", 1), 0);
        expect_unusable(MISSING);
        ck_assert_int_eq(setenv("ZTNA_STORE_FALLBACK", "copy-good", 1), 0);
        expect_unusable(MISSING);
        /* The same process, given a trusted copy, answers. */
        use_fallback("copy-good");
        stale_ttl = true;
        expect_name("Win-A", P_WIN_A, FOUND, FOUND, FOUND);
}
END_TEST

START_TEST(test_erange_name) {
        use_store("good");
        Query q;
        q = by_name(BY_NAME4, "Win-A", AF_UNSPEC);
        sweep(&q, P_WIN_A, 0, ALL_OFFSETS, 0);
        sweep(&q, P_WIN_A, OWN_TUPLE | VIA_ERRNO, ALL_OFFSETS, 0);
        sweep(&q, P_WIN_A, NULL_TTL, 2, 0);
        q = by_name(BY_NAME4, "Mac-C.yourorg.zt.net.", AF_UNSPEC);
        sweep(&q, P_MAC_C, 0, ALL_OFFSETS, 0);
        for (int af = AF_INET; af != -1; af = af == AF_INET ? AF_INET6 : -1) {
                q = by_name(BY_NAME3, "win-a.yourorg.zt.net", af);
                sweep(&q, P_WIN_A, 0, ALL_OFFSETS, 0);
                sweep(&q, P_WIN_A, VIA_ERRNO | NULL_TTL, ALL_OFFSETS, 0);
                q = by_name(BY_NAME2, "WIN-A", af);
                sweep(&q, P_WIN_A, 0, ALL_OFFSETS, 0);
        }
        q = by_name(BY_NAME, "Win-A.", AF_INET);
        sweep(&q, P_WIN_A, VIA_ERRNO, ALL_OFFSETS, 0);
        q = by_name(BY_NAME3, long_name, AF_INET);
        sweep(&q, P_LONG, 0, ALL_OFFSETS, 0);
}
END_TEST

START_TEST(test_erange_addr) {
        use_store("good");
        Query q;
        q = by_addr(BY_ADDR2, AF_INET, "100.64.0.1");
        sweep(&q, P_WIN_A, 0, ALL_OFFSETS, 0);
        q = by_addr(BY_ADDR2, AF_INET6, "fd7a:115c:a1e0::1");
        sweep(&q, P_WIN_A, VIA_ERRNO, ALL_OFFSETS, 0);
        q = by_addr(BY_ADDR, AF_INET, "100.64.0.63");
        sweep(&q, P_LONG, 0, ALL_OFFSETS, 0);
        q = by_addr_bytes(BY_ADDR, AF_INET6, &many_v6[MANY_ADDRS - 1]);
        sweep(&q, P_MANY, 0, ALL_OFFSETS, 0);
}
END_TEST

/* The many-address answers are large: every size at offset 0, and around
 * the threshold at every other offset. */
static void sweep_large(const Query *q, unsigned flags) {
        size_t need = sweep(q, P_MANY, flags, 1, 0);
        ck_assert_uint_gt(need, 1024);
        sweep(q, P_MANY, flags, ALL_OFFSETS, need - 256);
}

START_TEST(test_erange_many) {
        use_store("good");
        Query q;
        q = by_name(BY_NAME4, "Many", AF_UNSPEC);
        sweep_large(&q, 0);
        sweep_large(&q, OWN_TUPLE);
        q = by_name(BY_NAME3, "Many", AF_INET);
        sweep_large(&q, 0);
        q = by_name(BY_NAME3, "many.yourorg.zt.net", AF_INET6);
        sweep_large(&q, 0);
        q = by_name(BY_NAME, "MANY", AF_INET);
        sweep_large(&q, VIA_ERRNO);
}
END_TEST

/* One entry of a listing. */
typedef struct Listed {
        int peer, af;
} Listed;

/* Every peer once for each family it has addresses in. */
static size_t listing_expected(Listed *ret, size_t max) {
        size_t n = 0;
        for (int i = 0; i < N_PEERS; i++) {
                if (peers[i].n_v4 > 0 && n < max)
                        ret[n++] = (Listed) { i, AF_INET };
                if (peers[i].n_v6 > 0 && n < max)
                        ret[n++] = (Listed) { i, AF_INET6 };
        }
        return n;
}

/* The peer a listed hostent is of, by its alias (the short name). */
static int listed_peer(const Call *c, const Buf *b) {
        const struct hostent *he = &c->he;
        if (!in_buf(b, he->h_aliases, sizeof(char *)) || !in_buf(b, he->h_aliases[0], 1))
                return -1;
        for (int i = 0; i < N_PEERS; i++)
                if (in_buf(b, he->h_aliases[0], strlen(peers[i].name) + 1) &&
                    strcmp(he->h_aliases[0], peers[i].name) == 0)
                        return i;
        return -1;
}

/* Takes the next entry with a roomy buffer: true and a complete hostent of
 * some peer, or false at the end (not found, errno as it was). */
static bool take_entry(unsigned flags, Listed *ret) {
        Query q = { .entry = BY_ENT };
        Buf b;
        Call c;
        buf_new(&b, 0, BIG_BUFFER, CANARY_TAIL);
        do_call(&q, b.start, b.len, flags, &c);
        bool found = c.status == NSS_STATUS_SUCCESS;
        check_outcome(&q, flags, &c, found ? FOUND : UNKNOWN, &b);
        if (found) {
                int peer = listed_peer(&c, &b);
                verify(peer >= 0, "gethostent_r: an entry of no peer");
                verify_found(&q, flags, &c, &b, peer);
                *ret = (Listed) { peer, c.he.h_addrtype };
        }
        buf_free(&b);
        return found;
}

static Listed next_entry(unsigned flags) {
        Listed l;
        verify(take_entry(flags, &l), "gethostent_r: the listing ended early");
        return l;
}

START_TEST(test_enumerate) {
        Listed want[2 * N_PEERS], got[2 * N_PEERS], l;
        size_t n_want = listing_expected(want, 2 * N_PEERS), n_got = 0;
        use_store("good");

        ck_assert_int_eq(_nss_ztna_sethostent(1), NSS_STATUS_SUCCESS);
        while (take_entry(n_got % 2 ? VIA_ERRNO : 0, &l)) {
                verify(n_got < n_want, "gethostent_r: more than %zu entries", n_want);
                got[n_got++] = l;
        }
        ck_assert_uint_eq(n_got, n_want);
        for (size_t i = 0; i < n_want; i++) {
                size_t seen = 0;
                for (size_t k = 0; k < n_got; k++)
                        seen += got[k].peer == want[i].peer && got[k].af == want[i].af;
                verify(seen == 1, "%s (%s) listed %zu times", peers[want[i].peer].name, af_name(want[i].af),
                              seen);
        }
        /* The end sticks. */
        for (int i = 0; i < 3; i++)
                ck_assert(!take_entry(VIA_ERRNO, &l));

        /* endhostent + sethostent start over, in the same order. */
        ck_assert_int_eq(_nss_ztna_endhostent(), NSS_STATUS_SUCCESS);
        ck_assert_int_eq(_nss_ztna_sethostent(0), NSS_STATUS_SUCCESS);
        for (size_t i = 0; i < n_got; i++) {
                l = next_entry(i % 2 ? 0 : VIA_ERRNO);
                ck_assert(l.peer == got[i].peer && l.af == got[i].af);
        }
        ck_assert(!take_entry(0, &l));
        ck_assert_int_eq(_nss_ztna_endhostent(), NSS_STATUS_SUCCESS);

        /* sethostent in the middle starts over too. */
        ck_assert_int_eq(_nss_ztna_sethostent(0), NSS_STATUS_SUCCESS);
        next_entry(0);
        next_entry(0);
        ck_assert_int_eq(_nss_ztna_sethostent(0), NSS_STATUS_SUCCESS);
        l = next_entry(0);
        ck_assert(l.peer == got[0].peer && l.af == got[0].af);
        ck_assert_int_eq(_nss_ztna_endhostent(), NSS_STATUS_SUCCESS);
}
END_TEST

START_TEST(test_enumerate_interleaved) {
        Listed ref[2 * N_PEERS], l;
        size_t n = listing_expected(ref, 2 * N_PEERS);
        use_store("good");

        ck_assert_int_eq(_nss_ztna_sethostent(0), NSS_STATUS_SUCCESS);
        for (size_t i = 0; i < n; i++)
                ref[i] = next_entry(0);
        ck_assert_int_eq(_nss_ztna_endhostent(), NSS_STATUS_SUCCESS);

        /* Lookups between the entries do not move the listing. */
        ck_assert_int_eq(_nss_ztna_sethostent(0), NSS_STATUS_SUCCESS);
        for (size_t i = 0; i < n; i++) {
                expect_name("Win-A", P_WIN_A, FOUND, FOUND, FOUND);
                expect_addr(AF_INET6, "fd7a:115c:a1e0::3", P_MAC_C, FOUND);
                expect_name_all("nobody.yourorg.zt.net", UNKNOWN);
                expect_name_all("example.com", NOT_OURS);
                l = next_entry(0);
                ck_assert(l.peer == ref[i].peer && l.af == ref[i].af);
        }
        ck_assert(!take_entry(0, &l));
        ck_assert_int_eq(_nss_ztna_endhostent(), NSS_STATUS_SUCCESS);
}
END_TEST

/* Walks the listing taking each entry with buffers growing a byte at a time
 * from 0: every size too small must be exactly TOO_SMALL and keep the
 * position, so the entry that finally fits is the next one of `ref`. */
static void enumerate_growing(const Listed *ref, size_t n, size_t offset, size_t tail) {
        Query q = { .entry = BY_ENT };
        ck_assert_int_eq(_nss_ztna_sethostent(0), NSS_STATUS_SUCCESS);
        for (size_t i = 0; i <= n; i++) {
                size_t len;
                for (len = 0; len < SWEEP_LIMIT; len++) {
                        Buf b;
                        Call c;
                        buf_new(&b, offset, len, tail);
                        do_call(&q, b.start, len, len % 2 ? VIA_ERRNO : 0, &c);
                        if (i == n) {
                                /* Past the end: not found whatever the size. */
                                check_outcome(&q, len % 2 ? VIA_ERRNO : 0, &c, UNKNOWN, &b);
                                buf_free(&b);
                                if (len == 64)
                                        break;
                                continue;
                        }
                        if (c.status == NSS_STATUS_SUCCESS) {
                                check_outcome(&q, len % 2 ? VIA_ERRNO : 0, &c, FOUND, &b);
                                int peer = listed_peer(&c, &b);
                                verify(peer >= 0, "gethostent_r: an entry of no peer");
                                verify(peer == ref[i].peer && c.he.h_addrtype == ref[i].af,
                                              "entry %zu with %zu bytes: %s %s, expected %s %s", i, len,
                                              peer >= 0 ? peers[peer].name : "?", af_name(c.he.h_addrtype),
                                              peers[ref[i].peer].name, af_name(ref[i].af));
                                verify_found(&q, len % 2 ? VIA_ERRNO : 0, &c, &b, peer);
                                buf_free(&b);
                                break;
                        }
                        check_outcome(&q, len % 2 ? VIA_ERRNO : 0, &c, TOO_SMALL, &b);
                        buf_free(&b);
                }
                ck_assert_uint_lt(len, SWEEP_LIMIT);
        }
        ck_assert_int_eq(_nss_ztna_endhostent(), NSS_STATUS_SUCCESS);
}

START_TEST(test_enumerate_erange) {
        Listed ref[2 * N_PEERS];
        size_t n = listing_expected(ref, 2 * N_PEERS);
        use_store("good");

        ck_assert_int_eq(_nss_ztna_sethostent(0), NSS_STATUS_SUCCESS);
        for (size_t i = 0; i < n; i++)
                ref[i] = next_entry(0);
        ck_assert_int_eq(_nss_ztna_endhostent(), NSS_STATUS_SUCCESS);

        for (size_t offset = 0; offset < ALL_OFFSETS; offset++)
                enumerate_growing(ref, n, offset, offset % 2 ? CANARY_TAIL : 0);
}
END_TEST

/* The store changing under a process that has it mapped: a new state, a
 * new map in place, a larger map in a new file renamed over it. */
START_TEST(test_store_updates) {
        char name[32], path[PATH_MAX];
        ShmWriter *w = NULL;
        snprintf(name, sizeof(name), "updates-%d", (int) getpid());
        store_path(name, path, sizeof(path));
        ck_assert_int_eq(shm_writer_open(path, &w), 0);

        ShmMap one = tailnet;
        one.n_peers = 1; /* Win-A */
        ck_assert_int_eq(shm_writer_publish(w, &one, true), 0);
        use_store(name);
        expect_name("Win-A", P_WIN_A, FOUND, FOUND, FOUND);
        expect_name_all("Linux-B.yourorg.zt.net", UNKNOWN);

        ck_assert_int_eq(shm_writer_set_state(w, false), 0);
        expect_name_all("Win-A", DOWN);
        expect_name_all("Linux-B.yourorg.zt.net", DOWN);
        expect_name_all("nobody", NOT_OURS);
        ck_assert_int_eq(shm_writer_set_state(w, true), 0);
        expect_name("Win-A", P_WIN_A, FOUND, FOUND, FOUND);

        /* Win-A leaves, Linux-B and Mac-C join (fits in place). */
        ShmMap two = tailnet;
        two.peers = &peers[P_LINUX_B];
        two.n_peers = 2;
        uint64_t size = shm_writer_file_size(w);
        ck_assert_int_eq(shm_writer_publish(w, &two, true), 0);
        ck_assert_uint_eq(shm_writer_file_size(w), size);
        expect_name_all("Win-A", NOT_OURS);
        expect_name_all("Win-A.yourorg.zt.net", UNKNOWN);
        expect_addr(AF_INET, "100.64.0.1", -1, UNKNOWN);
        expect_name("Linux-B", P_LINUX_B, FOUND, FOUND, NO_ADDR);
        expect_name("Mac-C", P_MAC_C, FOUND, NO_ADDR, FOUND);

        /* The whole tailnet: a larger file replaces this one. */
        ck_assert_int_eq(shm_writer_publish(w, &tailnet, true), 0);
        ck_assert_uint_gt(shm_writer_file_size(w), size);
        expect_name("Win-A", P_WIN_A, FOUND, FOUND, FOUND);
        expect_name("Many", P_MANY, FOUND, FOUND, FOUND);
        expect_addr(AF_INET6, "fd7a:115c:a1e0::1:12b", P_MANY, FOUND);
        shm_writer_close(w);
}
END_TEST

static Suite *nss_suite(void) {
        Suite *s = suite_create("nss_ztna");
        struct {
                const char *name;
                const TTest *tests[8];
        } groups[] = {
                { "found", { test_found_name_forms, test_found_one_family, test_found_longest_label,
                             test_found_many_addresses, test_found_reverse } },
                { "not found", { test_unknown_in_tailnet, test_not_ours, test_down } },
                { "store", { test_store_missing, test_store_untrusted, test_store_corrupt, test_store_updates } },
                { "persisted copy", { test_fallback_found, test_fallback_store_untrusted, test_fallback_store_wins,
                                      test_fallback_down, test_fallback_untrusted } },
                { "buffer sizes", { test_erange_name, test_erange_addr } },
                { "buffer sizes, many addresses", { test_erange_many } },
                { "enumeration", { test_enumerate, test_enumerate_interleaved, test_enumerate_erange } },
        };
        for (size_t i = 0; i < ELEMENTSOF(groups); i++) {
                TCase *tc = tcase_create(groups[i].name);
                /* The sweeps make some 10^5 calls under ASan: seconds, not
                 * Check's default 4 on a slow machine. */
                tcase_set_timeout(tc, 120);
                for (size_t k = 0; k < ELEMENTSOF(groups[i].tests) && groups[i].tests[k]; k++)
                        tcase_add_test(tc, groups[i].tests[k]);
                suite_add_tcase(s, tc);
        }
        return s;
}

int main(void) {
        tailnet_init();
        stores_create();

        SRunner *sr = srunner_create(nss_suite());
        /* Each test needs a process of its own (see the top of the file),
         * whatever CK_FORK says. */
        srunner_set_fork_status(sr, CK_FORK);
        srunner_run_all(sr, CK_ENV);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);

        stores_remove();
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
