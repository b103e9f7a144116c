/* SPDX-License-Identifier: MIT */
/*
 * Tailnet answers for the stub (see stub-tailnet.h), from the record store
 * through the same reader the NSS module uses.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "dns/stub-tailnet.h"

int stub_reverse_address(const DnsName *name, int *ret_family, uint8_t addr[16]) {
        static const uint8_t v4tail[] = "\7in-addr\4arpa"; /* with the root: sizeof counts the NUL */
        static const uint8_t v6tail[] = "\3ip6\4arpa";
        DnsName lower = *name, *n = &lower;
        const uint8_t *p = n->wire;

        /* Resolvers randomise the case (0x20): IN-ADDR.ARPA, hex A-F. */
        dns_name_lower(n);

        if (n->labels == 6 && n->len > sizeof v4tail &&
            memcmp(n->wire + n->len - sizeof v4tail, v4tail, sizeof v4tail) == 0) {
                for (int i = 3; i >= 0; i--) {
                        uint8_t l = *p++;
                        unsigned v = 0;
                        if (l < 1 || l > 3 || (l > 1 && p[0] == '0'))
                                return -EINVAL;
                        for (uint8_t k = 0; k < l; k++) {
                                if (p[k] < '0' || p[k] > '9')
                                        return -EINVAL;
                                v = v * 10 + (unsigned) (p[k] - '0');
                        }
                        if (v > 255)
                                return -EINVAL;
                        addr[i] = (uint8_t) v;
                        p += l;
                }
                *ret_family = AF_INET;
                return 0;
        }
        if (n->labels == 34 && n->len > sizeof v6tail &&
            memcmp(n->wire + n->len - sizeof v6tail, v6tail, sizeof v6tail) == 0) {
                memset(addr, 0, 16);
                for (int i = 0; i < 32; i++) {
                        if (p[0] != 1)
                                return -EINVAL;
                        char c = (char) p[1];
                        unsigned v;
                        if (c >= '0' && c <= '9')
                                v = (unsigned) (c - '0');
                        else if (c >= 'a' && c <= 'f')
                                v = (unsigned) (c - 'a' + 10);
                        else
                                return -EINVAL;
                        /* the first label is the lowest nibble */
                        addr[15 - i / 2] |= (uint8_t) (i % 2 ? v << 4 : v);
                        p += 2;
                }
                *ret_family = AF_INET6;
                return 0;
        }
        return -EINVAL;
}

/* The answer for a tailnet name into buf: AA set; records owned by the
 * question name (a pointer to it). Within a snapshot; returns the length
 * or -ENOBUFS. */
static int build_answer(uint8_t *buf, size_t size, const uint8_t *query, const DnsMessage *q, ShmClass cls, bool apex,
                         const ShmRecordView *rec, bool reverse, const ShmSnapshot *snap) {
        DnsBuilder b;
        size_t len;
        uint16_t rcode = cls == SHM_FOUND || apex ? DNS_RCODE_NOERROR : DNS_RCODE_NXDOMAIN;
        unsigned an = 0;
        bool any = q->qtype == DNS_TYPE_ANY;
        /* From the persisted copy: short, so a caching client asks again
         * once the store is back (docs/store-fallback.md). */
        uint32_t ttl = shm_snapshot_stale(snap) && rec->ttl > SHM_STALE_TTL_MAX ? SHM_STALE_TTL_MAX : rec->ttl;

        dns_builder_init(&b, buf, size);
        dns_builder_header(&b, q->id, (uint16_t) (DNS_FLAG_QR | DNS_FLAG_AA | DNS_FLAG_RA | rcode), 1, 0, 0, 0);
        dns_builder_bytes(&b, query + q->question_off, q->question_end - q->question_off);
        if (cls == SHM_FOUND && reverse && (q->qtype == DNS_TYPE_PTR || any)) {
                /* PTR: the peer's full name, "Win-A.yourorg.zt.net." */
                char fqdn[DNS_NAME_TEXT_MAX];
                DnsName target;
                int n = snprintf(fqdn, sizeof fqdn, "%.*s.%.*s", (int) rec->name_len, rec->name,
                                 (int) snap->domain_len, snap->domain);
                if (n > 0 && (size_t) n < sizeof fqdn && dns_name_from_text(fqdn, &target) == 0) {
                        size_t rd = dns_builder_rr_begin(&b, DNS_HEADER_SIZE, DNS_TYPE_PTR, DNS_CLASS_IN, ttl);
                        dns_builder_name(&b, &target);
                        dns_builder_rr_end(&b, rd);
                        an++;
                }
        }
        if (cls == SHM_FOUND && !reverse && (q->qtype == DNS_TYPE_A || any))
                for (size_t i = 0; i < rec->n_v4; i++) {
                        size_t rd = dns_builder_rr_begin(&b, DNS_HEADER_SIZE, DNS_TYPE_A, DNS_CLASS_IN, ttl);
                        dns_builder_bytes(&b, rec->v4 + 4 * i, 4);
                        dns_builder_rr_end(&b, rd);
                        an++;
                }
        if (cls == SHM_FOUND && !reverse && (q->qtype == DNS_TYPE_AAAA || any))
                for (size_t i = 0; i < rec->n_v6; i++) {
                        size_t rd = dns_builder_rr_begin(&b, DNS_HEADER_SIZE, DNS_TYPE_AAAA, DNS_CLASS_IN, ttl);
                        dns_builder_bytes(&b, rec->v6 + 16 * i, 16);
                        dns_builder_rr_end(&b, rd);
                        an++;
                }
        if (an > UINT16_MAX)
                return -ENOBUFS;
        dns_builder_put_u16(&b, DNS_OFF_ANCOUNT, (uint16_t) an);
        int r = dns_builder_finish(&b, &len);
        return r < 0 ? r : (int) len;
}

/* One read of the store for stub_tailnet_answer(); what it finds is used
 * only when shm_snapshot_end() says the read was consistent. */
typedef struct TailnetRead {
        const uint8_t *query;
        const DnsMessage *q;
        uint8_t *buf;
        size_t size;
        const char *text;
        const uint8_t *addr;
        int family;
        bool reverse;
        ShmClass cls;
        bool down, unsure;
        int len;
} TailnetRead;

static int tailnet_read(const ShmSnapshot *snap, void *userdata) {
        TailnetRead *t = userdata;
        const DnsMessage *q = t->q;
        ShmRecordView rec;
        char dom[DNS_NAME_TEXT_MAX];
        DnsName zone;
        bool have_zone = false, apex = false;

        t->len = 0;
        if (snap->domain_len > 0 && snap->domain_len < sizeof dom) {
                memcpy(dom, snap->domain, snap->domain_len);
                dom[snap->domain_len] = '\0';
                have_zone = dns_name_from_text(dom, &zone) == 0;
        }
        if (t->reverse)
                t->cls = shm_snapshot_lookup_addr(snap, t->family, t->addr, &rec);
        else {
                t->cls = shm_snapshot_lookup_name(snap, t->text, &rec);
                /* Names the store's text lookup cannot take (escapes,
                 * length) but under the tailnet domain are still ours:
                 * never forwarded. */
                if (t->cls == SHM_NOT_OURS && have_zone && dns_name_endswith(&q->qname, &zone))
                        t->cls = SHM_UNKNOWN;
                /* The domain itself exists (it has peers): NODATA, not
                 * NXDOMAIN, which would deny every name under it (RFC
                 * 8020). */
                apex = t->cls == SHM_UNKNOWN && have_zone && dns_name_equal(&q->qname, &zone);
        }
        t->down = shm_snapshot_down(snap);
        /* The copy may predate a peer: "no such name" from it could deny
         * one that exists. */
        t->unsure = t->cls == SHM_UNKNOWN && !apex && shm_snapshot_stale(snap);
        if (t->cls != SHM_NOT_OURS && !t->down && !t->unsure)
                t->len = build_answer(t->buf, t->size, t->query, q, t->cls, apex, &rec, t->reverse, snap);
        return 0;
}

StubTailnet stub_tailnet_answer(ShmReader *reader, const uint8_t *query, const DnsMessage *q, uint8_t *buf,
                                size_t size, size_t *ret_len) {
        char text[DNS_NAME_TEXT_MAX];
        uint8_t addr[16];
        int family = 0;

        if (q->qclass != DNS_CLASS_IN && q->qclass != DNS_CLASS_ANY)
                return STUB_TAILNET_NO;
        if (!reader)
                return STUB_TAILNET_NO_STORE;
        bool reverse = stub_reverse_address(&q->qname, &family, addr) == 0;
        if (dns_name_to_text(&q->qname, text, sizeof text) < 0)
                return STUB_TAILNET_NO;

        TailnetRead t = { .query = query, .q = q, .buf = buf, .size = size, .text = text, .addr = addr,
                          .family = family, .reverse = reverse };
        int r = shm_snapshot_read(reader, tailnet_read, NULL, &t);

        /* Missing, untrusted or corrupt (and no copy to stand in): nothing
         * says what is ours. */
        if (r < 0)
                return r == -EAGAIN ? STUB_TAILNET_ERROR : STUB_TAILNET_NO_STORE;
        if (t.cls == SHM_NOT_OURS)
                return STUB_TAILNET_NO;
        if (t.down)
                return STUB_TAILNET_DOWN;
        if (t.unsure)
                return STUB_TAILNET_UNSURE;
        if (t.len < 0)
                return STUB_TAILNET_ERROR;
        *ret_len = (size_t) t.len;
        return STUB_TAILNET_ANSWER;
}
