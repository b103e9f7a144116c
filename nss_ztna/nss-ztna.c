/* SPDX-License-Identifier: MIT */
/*
 * libnss_ztna.so.2: glibc "hosts" entry points answering tailnet names from
 * the record store. It runs inside every process that resolves a name, so:
 * no threads, no malloc, no output, and after the first mapping no syscall
 * on a lookup. The status table it implements is DESIGN.md's "NSS
 * semantics"; UNAVAIL means "not ours, ask the next module", everything else
 * is authoritative.
 *
 * Each entry point saves errno, finds the record inside one consistent
 * snapshot, computes the size it needs, fails with ERANGE before writing a
 * byte, fills the caller's buffer, and keeps the answer only if the snapshot
 * was consistent (else it reads again).
 *
 * Without a store (nothing published since the boot, ztnad broken) the
 * reader answers from the persisted copy and marks the snapshot stale:
 * peers in it resolve, with a short TTL; an unknown name under the tailnet
 * domain or address in its ranges is TRYAGAIN, not NOTFOUND, as the copy
 * may predate the peer (docs/store-fallback.md). Nothing in the domain or
 * the ranges is ever UNAVAIL then, so `[!UNAVAIL=return]` keeps it from DNS.
 */
#include <assert.h>
#include <errno.h>
#include <netdb.h>
#include <nss.h>
#include <stdalign.h>
#include <string.h>
#include <sys/socket.h>

#include "macro.h"
#include "shm-format.h"
#include "shm.h"

#define NSS_ENTRY(name) _public_ enum nss_status _nss_ztna_##name

NSS_ENTRY(gethostbyname4_r)(const char *name, struct gaih_addrtuple **pat, char *buffer, size_t buflen, int *errnop,
                            int *h_errnop, int32_t *ttlp);
NSS_ENTRY(gethostbyname3_r)(const char *name, int af, struct hostent *result, char *buffer, size_t buflen,
                            int *errnop, int *h_errnop, int32_t *ttlp, char **canonp);
NSS_ENTRY(gethostbyname2_r)(const char *name, int af, struct hostent *result, char *buffer, size_t buflen,
                            int *errnop, int *h_errnop);
NSS_ENTRY(gethostbyname_r)(const char *name, struct hostent *result, char *buffer, size_t buflen, int *errnop,
                           int *h_errnop);
NSS_ENTRY(gethostbyaddr2_r)(const void *addr, socklen_t len, int af, struct hostent *result, char *buffer,
                            size_t buflen, int *errnop, int *h_errnop, int32_t *ttlp);
NSS_ENTRY(gethostbyaddr_r)(const void *addr, socklen_t len, int af, struct hostent *result, char *buffer,
                           size_t buflen, int *errnop, int *h_errnop);
NSS_ENTRY(sethostent)(int stayopen);
NSS_ENTRY(endhostent)(void);
NSS_ENTRY(gethostent_r)(struct hostent *result, char *buffer, size_t buflen, int *errnop, int *h_errnop);

/* The outcome of one consistent read, decided before any status is set. */
typedef enum Outcome {
        OUT_SUCCESS,
        OUT_NO_DATA,   /* the peer exists, no address of that family */
        OUT_NOT_FOUND, /* ours, no such peer */
        OUT_DOWN,      /* ours, but the tailnet is down */
        OUT_NOT_OURS,
        OUT_ERANGE,
} Outcome;

static enum nss_status finish(Outcome o, int saved_errno, int *errnop, int *h_errnop) {
        switch (o) {
        case OUT_SUCCESS:
                *h_errnop = NETDB_SUCCESS;
                errno = saved_errno;
                return NSS_STATUS_SUCCESS;
        case OUT_NO_DATA:
                *h_errnop = NO_DATA;
                errno = saved_errno;
                return NSS_STATUS_NOTFOUND;
        case OUT_NOT_FOUND:
                *h_errnop = HOST_NOT_FOUND;
                errno = saved_errno;
                return NSS_STATUS_NOTFOUND;
        case OUT_DOWN:
                *errnop = EAGAIN;
                *h_errnop = TRY_AGAIN;
                return NSS_STATUS_TRYAGAIN;
        case OUT_NOT_OURS:
                *errnop = EINVAL;
                *h_errnop = NO_RECOVERY;
                return NSS_STATUS_UNAVAIL;
        case OUT_ERANGE:
                *errnop = ERANGE;
                *h_errnop = NETDB_INTERNAL;
                return NSS_STATUS_TRYAGAIN;
        }
        assert(!"unreachable");
        return NSS_STATUS_UNAVAIL;
}

/* The store could not be read: missing, untrusted, corrupt, or a writer so
 * busy that SHM_READ_TRIES reads were all torn. */
static enum nss_status store_error(int e, int *errnop, int *h_errnop) {
        if (e == -EAGAIN) {
                *errnop = EAGAIN;
                *h_errnop = TRY_AGAIN;
                return NSS_STATUS_TRYAGAIN; /* never fall through to DNS on a race */
        }
        *errnop = -e;
        *h_errnop = NO_RECOVERY;
        return NSS_STATUS_UNAVAIL;
}

static size_t align_pad(const char *p, size_t a) {
        return (size_t) (-(uintptr_t) p & (a - 1));
}

static size_t fqdn_len(const ShmSnapshot *s, const ShmRecordView *v) {
        return v->name_len + 1 + s->domain_len;
}

/* Writes "name.domain\0" to `p` (room for fqdn_len() + 1 bytes). */
static void fqdn_write(char *p, const ShmSnapshot *s, const ShmRecordView *v) {
        memcpy(p, v->name, v->name_len);
        p[v->name_len] = '.';
        memcpy(p + v->name_len + 1, s->domain, s->domain_len);
        p[v->name_len + 1 + s->domain_len] = '\0';
}

static Outcome classify(ShmClass c, const ShmSnapshot *s, size_t n_addrs) {
        if (c == SHM_NOT_OURS)
                return OUT_NOT_OURS;
        if (c == SHM_BLOCKED)
                return OUT_NOT_FOUND; /* authoritative: never on to DNS */
        if (shm_snapshot_down(s))
                return OUT_DOWN;
        if (c == SHM_UNKNOWN)
                /* A stale copy cannot say a peer does not exist. */
                return shm_snapshot_stale(s) ? OUT_DOWN : OUT_NOT_FOUND;
        return n_addrs > 0 ? OUT_SUCCESS : OUT_NO_DATA;
}

static int32_t answer_ttl(const ShmSnapshot *s, uint32_t ttl) {
        if (shm_snapshot_stale(s) && ttl > SHM_STALE_TTL_MAX)
                ttl = SHM_STALE_TTL_MAX;
        return (int32_t) (ttl > INT32_MAX ? INT32_MAX : ttl);
}

NSS_ENTRY(gethostbyname4_r)(const char *name, struct gaih_addrtuple **pat, char *buffer, size_t buflen, int *errnop,
                            int *h_errnop, int32_t *ttlp) {
        int saved_errno = errno;
        ShmReader *r = shm_reader_default();

        for (unsigned tries = 0; tries < SHM_READ_TRIES; tries++) {
                ShmSnapshot s;
                ShmRecordView v = {};
                int e = shm_snapshot_begin(r, &s);
                if (e < 0)
                        return store_error(e, errnop, h_errnop);

                ShmClass c = shm_snapshot_lookup_name(&s, name, &v);
                size_t n = c == SHM_FOUND ? v.n_v4 + v.n_v6 : 0;
                Outcome o = classify(c, &s, n);
                if (o == OUT_SUCCESS) {
                        size_t pad = align_pad(buffer, alignof(struct gaih_addrtuple));
                        size_t nl = fqdn_len(&s, &v);
                        size_t needed = pad + n * sizeof(struct gaih_addrtuple) + nl + 1;
                        if (buflen < needed)
                                o = OUT_ERANGE;
                        else {
                                struct gaih_addrtuple *t = (struct gaih_addrtuple *) (buffer + pad);
                                char *cname = (char *) (t + n);
                                size_t idx = pad;
                                fqdn_write(cname, &s, &v);
                                for (size_t i = 0; i < n; i++) {
                                        t[i] = (struct gaih_addrtuple) {
                                                .next = i + 1 < n ? &t[i + 1] : NULL,
                                                .name = cname,
                                                .family = i < v.n_v4 ? AF_INET : AF_INET6,
                                        };
                                        if (i < v.n_v4)
                                                memcpy(t[i].addr, v.v4 + i * 4, 4);
                                        else
                                                memcpy(t[i].addr, v.v6 + (i - v.n_v4) * 16, 16);
                                        idx += sizeof(struct gaih_addrtuple);
                                }
                                idx += nl + 1;
                                assert(idx == needed);
                        }
                }
                int32_t ttl = answer_ttl(&s, v.ttl);
                if (!shm_snapshot_end(&s))
                        continue;

                if (o == OUT_SUCCESS) {
                        struct gaih_addrtuple *first = (struct gaih_addrtuple *) (buffer + align_pad(buffer, alignof(struct gaih_addrtuple)));
                        /* glibc may hand us a tuple of its own to fill first. */
                        if (*pat)
                                **pat = *first;
                        else
                                *pat = first;
                        if (ttlp)
                                *ttlp = ttl;
                }
                return finish(o, saved_errno, errnop, h_errnop);
        }
        return store_error(-EAGAIN, errnop, h_errnop);
}

/* Size of a hostent's data for one name, its short alias and n addresses. */
static size_t hostent_needed(const char *buffer, size_t fqdn, size_t label, size_t n, size_t alen) {
        return align_pad(buffer, alignof(char *)) + 2 * sizeof(char *) /* aliases */ +
               (n + 1) * sizeof(char *) /* address list */ + n * alen + fqdn + 1 + label + 1;
}

/* Fills `result` in `buffer` (at least hostent_needed() bytes) with the
 * record's name, and either the one address `only` or all of family `af`. */
static void hostent_fill(struct hostent *result, char *buffer, size_t needed, const ShmSnapshot *s,
                         const ShmRecordView *v, int af, const void *only) {
        size_t alen = af == AF_INET ? 4 : 16;
        size_t n = only ? 1 : (af == AF_INET ? v->n_v4 : v->n_v6);
        const uint8_t *src = only ? only : (af == AF_INET ? v->v4 : v->v6);
        size_t idx = align_pad(buffer, alignof(char *));
        char **aliases = (char **) (buffer + idx);
        idx += 2 * sizeof(char *);
        char **addrs = (char **) (buffer + idx);
        idx += (n + 1) * sizeof(char *);
        for (size_t i = 0; i < n; i++) {
                memcpy(buffer + idx, src + i * alen, alen);
                addrs[i] = buffer + idx;
                idx += alen;
        }
        addrs[n] = NULL;
        char *fqdn = buffer + idx;
        fqdn_write(fqdn, s, v);
        idx += fqdn_len(s, v) + 1;
        char *label = buffer + idx;
        memcpy(label, v->name, v->name_len);
        label[v->name_len] = '\0';
        idx += v->name_len + 1;
        aliases[0] = label;
        aliases[1] = NULL;
        assert(idx == needed);

        *result = (struct hostent) {
                .h_name = fqdn,
                .h_aliases = aliases,
                .h_addrtype = af,
                .h_length = (int) alen,
                .h_addr_list = addrs,
        };
}

NSS_ENTRY(gethostbyname3_r)(const char *name, int af, struct hostent *result, char *buffer, size_t buflen,
                            int *errnop, int *h_errnop, int32_t *ttlp, char **canonp) {
        int saved_errno = errno;
        ShmReader *r = shm_reader_default();

        if (af == AF_UNSPEC)
                af = AF_INET;
        if (af != AF_INET && af != AF_INET6) {
                *errnop = EAFNOSUPPORT;
                *h_errnop = NO_RECOVERY;
                return NSS_STATUS_UNAVAIL;
        }

        for (unsigned tries = 0; tries < SHM_READ_TRIES; tries++) {
                ShmSnapshot s;
                ShmRecordView v = {};
                int e = shm_snapshot_begin(r, &s);
                if (e < 0)
                        return store_error(e, errnop, h_errnop);

                ShmClass c = shm_snapshot_lookup_name(&s, name, &v);
                size_t n = c == SHM_FOUND ? (af == AF_INET ? v.n_v4 : v.n_v6) : 0;
                Outcome o = classify(c, &s, n);
                if (o == OUT_SUCCESS) {
                        size_t needed = hostent_needed(buffer, fqdn_len(&s, &v), v.name_len, n,
                                                       af == AF_INET ? 4 : 16);
                        if (buflen < needed)
                                o = OUT_ERANGE;
                        else
                                hostent_fill(result, buffer, needed, &s, &v, af, NULL);
                }
                int32_t ttl = answer_ttl(&s, v.ttl);
                if (!shm_snapshot_end(&s))
                        continue;

                if (o == OUT_SUCCESS) {
                        if (ttlp)
                                *ttlp = ttl;
                        if (canonp)
                                *canonp = result->h_name;
                }
                return finish(o, saved_errno, errnop, h_errnop);
        }
        return store_error(-EAGAIN, errnop, h_errnop);
}

NSS_ENTRY(gethostbyname2_r)(const char *name, int af, struct hostent *result, char *buffer, size_t buflen,
                            int *errnop, int *h_errnop) {
        return _nss_ztna_gethostbyname3_r(name, af, result, buffer, buflen, errnop, h_errnop, NULL, NULL);
}

NSS_ENTRY(gethostbyname_r)(const char *name, struct hostent *result, char *buffer, size_t buflen, int *errnop,
                           int *h_errnop) {
        return _nss_ztna_gethostbyname3_r(name, AF_INET, result, buffer, buflen, errnop, h_errnop, NULL, NULL);
}

NSS_ENTRY(gethostbyaddr2_r)(const void *addr, socklen_t len, int af, struct hostent *result, char *buffer,
                            size_t buflen, int *errnop, int *h_errnop, int32_t *ttlp) {
        int saved_errno = errno;
        ShmReader *r = shm_reader_default();

        if (!((af == AF_INET && len == 4) || (af == AF_INET6 && len == 16))) {
                *errnop = EINVAL;
                *h_errnop = NO_RECOVERY;
                return NSS_STATUS_UNAVAIL;
        }

        for (unsigned tries = 0; tries < SHM_READ_TRIES; tries++) {
                ShmSnapshot s;
                ShmRecordView v = {};
                int e = shm_snapshot_begin(r, &s);
                if (e < 0)
                        return store_error(e, errnop, h_errnop);

                ShmClass c = shm_snapshot_lookup_addr(&s, af, addr, &v);
                Outcome o = classify(c, &s, 1);
                if (o == OUT_SUCCESS) {
                        size_t needed = hostent_needed(buffer, fqdn_len(&s, &v), v.name_len, 1, len);
                        if (buflen < needed)
                                o = OUT_ERANGE;
                        else
                                hostent_fill(result, buffer, needed, &s, &v, af, addr);
                }
                int32_t ttl = answer_ttl(&s, v.ttl);
                if (!shm_snapshot_end(&s))
                        continue;

                if (o == OUT_SUCCESS && ttlp)
                        *ttlp = ttl;
                return finish(o, saved_errno, errnop, h_errnop);
        }
        return store_error(-EAGAIN, errnop, h_errnop);
}

NSS_ENTRY(gethostbyaddr_r)(const void *addr, socklen_t len, int af, struct hostent *result, char *buffer,
                           size_t buflen, int *errnop, int *h_errnop) {
        return _nss_ztna_gethostbyaddr2_r(addr, len, af, result, buffer, buflen, errnop, h_errnop, NULL);
}

/* Enumeration state. glibc serialises set/get/endhostent of one database
 * under its own lock, so plain statics suffice. Each record yields one entry
 * per family it has addresses in: its IPv4 ones, then its IPv6 ones. */
static uint32_t enum_index;
static int enum_family = AF_INET;

NSS_ENTRY(sethostent)(_unused_ int stayopen) {
        enum_index = 0;
        enum_family = AF_INET;
        return NSS_STATUS_SUCCESS;
}

NSS_ENTRY(endhostent)(void) {
        enum_index = 0;
        enum_family = AF_INET;
        return NSS_STATUS_SUCCESS;
}

static void enum_advance(uint32_t *index, int *family) {
        if (*family == AF_INET)
                *family = AF_INET6;
        else {
                *family = AF_INET;
                (*index)++;
        }
}

NSS_ENTRY(gethostent_r)(struct hostent *result, char *buffer, size_t buflen, int *errnop, int *h_errnop) {
        int saved_errno = errno;
        ShmReader *r = shm_reader_default();

        for (unsigned tries = 0; tries < SHM_READ_TRIES; tries++) {
                ShmSnapshot s;
                ShmRecordView v;
                uint32_t index = enum_index;
                int family = enum_family;
                int e = shm_snapshot_begin(r, &s);
                if (e < 0)
                        return store_error(e, errnop, h_errnop);

                /* A listing while the tailnet is down shows nothing, as the
                 * names themselves answer TRY_AGAIN. */
                Outcome o = OUT_NOT_FOUND;
                /* Bounded by the record count: at most two steps a record. */
                while (!shm_snapshot_down(&s) && shm_snapshot_record(&s, index, &v)) {
                        size_t n = family == AF_INET ? v.n_v4 : v.n_v6;
                        if (n == 0) {
                                enum_advance(&index, &family);
                                continue;
                        }
                        size_t needed = hostent_needed(buffer, fqdn_len(&s, &v), v.name_len, n,
                                                       family == AF_INET ? 4 : 16);
                        if (buflen < needed)
                                o = OUT_ERANGE;
                        else {
                                hostent_fill(result, buffer, needed, &s, &v, family, NULL);
                                o = OUT_SUCCESS;
                        }
                        break;
                }
                if (!shm_snapshot_end(&s))
                        continue;

                if (o == OUT_SUCCESS) {
                        enum_advance(&index, &family);
                        enum_index = index;
                        enum_family = family;
                } else if (o == OUT_NOT_FOUND) {
                        enum_index = index;
                        enum_family = family;
                }
                /* On ERANGE the position stays, so glibc's retry with a
                 * larger buffer gets the same entry. */
                return finish(o, saved_errno, errnop, h_errnop);
        }
        return store_error(-EAGAIN, errnop, h_errnop);
}
