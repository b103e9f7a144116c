/* SPDX-License-Identifier: MIT */
/*
 * The DNS wire cursor and the message builder (see dns-wire.h).
 *
 * Nothing read here is trusted: a message may come from any local program
 * (the stub) or from the network (the upstream). Every read is bounded by
 * the cursor; every loop is bounded by the message length or a cap.
 */

#include <assert.h>
#include <errno.h>
#include <string.h>

#include "common/dns-wire.h"

/* ---- the cursor ---- */

void dns_cursor_init(DnsCursor *c, const uint8_t *msg, size_t len) {
        *c = (DnsCursor) { .msg = msg, .len = len };
}

int dns_cursor_fail(DnsCursor *c) {
        if (c->error == 0)
                c->error = -EBADMSG;
        return c->error;
}

size_t dns_cursor_left(const DnsCursor *c) {
        if (c->error != 0 || c->pos > c->len)
                return 0;
        return c->len - c->pos;
}

/* Whether n more bytes can be read; fails the cursor when not. */
static bool cursor_need(DnsCursor *c, size_t n) {
        if (c->error != 0)
                return false;
        if (n > dns_cursor_left(c)) {
                dns_cursor_fail(c);
                return false;
        }
        return true;
}

uint16_t dns_cursor_u16(DnsCursor *c) {
        if (!cursor_need(c, 2))
                return 0;
        uint16_t v = (uint16_t) ((unsigned) c->msg[c->pos] << 8 | c->msg[c->pos + 1]);
        c->pos += 2;
        return v;
}

uint32_t dns_cursor_u32(DnsCursor *c) {
        if (!cursor_need(c, 4))
                return 0;
        const uint8_t *p = c->msg + c->pos;
        uint32_t v = (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
        c->pos += 4;
        return v;
}

const uint8_t *dns_cursor_bytes(DnsCursor *c, size_t n) {
        if (!cursor_need(c, n))
                return NULL;
        const uint8_t *p = c->msg + c->pos;
        c->pos += n;
        return p;
}

void dns_cursor_skip(DnsCursor *c, size_t n) {
        (void) dns_cursor_bytes(c, n);
}

void dns_cursor_seek(DnsCursor *c, size_t pos) {
        if (c->error != 0)
                return;
        if (pos > c->len) {
                dns_cursor_fail(c);
                return;
        }
        c->pos = pos;
}

/* On entry the cursor is at the name's first byte; on exit after the name
 * in place: after its root label, or after its first compression pointer.
 *
 * A compressor points at a name it wrote earlier, so a pointer must land in
 * the message body (never the header), strictly before the start of the
 * label run it ends, and the labels found there must end before that start
 * too: the first run starts where the name starts, the next where the
 * pointer led. Every jump goes further back than the last and reads only
 * bytes below it, so no chain can loop, and a name never depends on bytes
 * after the place it is used (a prefix of a message parses alone). The jump
 * cap and the 255-byte cap bound it further. */
static int cursor_name(DnsCursor *c, DnsName *ret, bool allow_pointers) {
        if (c->error != 0)
                return c->error;

        DnsName n;
        size_t out = 0, p = c->pos, run_start = c->pos, limit = c->len, end = 0;
        unsigned labels = 0, jumps = 0;

        for (;;) {
                if (p >= limit)
                        return dns_cursor_fail(c);
                uint8_t b = c->msg[p];

                if ((b & 0xc0) == 0xc0) {
                        if (!allow_pointers || p + 1 >= limit)
                                return dns_cursor_fail(c);
                        size_t target = (size_t) (b & 0x3f) << 8 | c->msg[p + 1];
                        if (jumps == 0)
                                end = p + 2;
                        if (++jumps > DNS_POINTERS_MAX || target < DNS_HEADER_SIZE || target >= run_start)
                                return dns_cursor_fail(c);
                        limit = run_start;
                        run_start = p = target;
                        continue;
                }
                /* 0x40 and 0x80: extended label types (RFC 6891 5), none in use. */
                if (b & 0xc0)
                        return dns_cursor_fail(c);

                if (b == 0) {
                        if (out + 1 > DNS_NAME_MAX)
                                return dns_cursor_fail(c);
                        n.wire[out++] = 0;
                        p++;
                        break;
                }
                /* The label, and room left for at least the root after it. */
                if (out + 1 + b + 1 > DNS_NAME_MAX || b >= limit - p - 1)
                        return dns_cursor_fail(c);
                memcpy(n.wire + out, c->msg + p, 1 + (size_t) b);
                out += 1 + (size_t) b;
                p += 1 + (size_t) b;
                labels++;
        }

        c->pos = jumps > 0 ? end : p;
        if (ret) {
                n.len = (uint8_t) out;
                n.labels = (uint8_t) labels;
                memcpy(ret->wire, n.wire, out);
                ret->len = n.len;
                ret->labels = n.labels;
        }
        return 0;
}

int dns_cursor_name(DnsCursor *c, DnsName *ret) {
        return cursor_name(c, ret, true);
}

int dns_cursor_name_uncompressed(DnsCursor *c, DnsName *ret) {
        return cursor_name(c, ret, false);
}

/* ---- names ---- */

static uint8_t lower_byte(uint8_t b) {
        return (b >= 'A' && b <= 'Z') ? (uint8_t) (b + ('a' - 'A')) : b;
}

void dns_name_lower(DnsName *n) {
        /* Length bytes are at most 63, below 'A': lowering them is a no-op. */
        for (size_t i = 0; i < n->len; i++)
                n->wire[i] = lower_byte(n->wire[i]);
}

static bool bytes_equal_nocase(const uint8_t *a, const uint8_t *b, size_t n) {
        for (size_t i = 0; i < n; i++)
                if (lower_byte(a[i]) != lower_byte(b[i]))
                        return false;
        return true;
}

bool dns_name_equal(const DnsName *a, const DnsName *b) {
        return a->len == b->len && bytes_equal_nocase(a->wire, b->wire, a->len);
}

size_t dns_name_suffix_offset(const DnsName *n, unsigned keep) {
        size_t off = 0;
        for (unsigned skip = n->labels > keep ? n->labels - keep : 0; skip > 0; skip--)
                off += 1 + (size_t) n->wire[off];
        return off;
}

bool dns_name_endswith(const DnsName *n, const DnsName *zone) {
        if (zone->labels > n->labels)
                return false;
        size_t off = dns_name_suffix_offset(n, zone->labels);
        return n->len - off == zone->len && bytes_equal_nocase(n->wire + off, zone->wire, zone->len);
}

int dns_name_from_text(const char *text, DnsName *ret) {
        DnsName n;
        size_t out = 0;
        unsigned labels = 0;
        const char *s = text;

        if (!text || !*text)
                return -EINVAL;
        if (strcmp(text, ".") == 0) {
                *ret = (DnsName) { .wire = { 0 }, .len = 1 };
                return 0;
        }

        while (*s) {
                size_t lenpos = out++;
                size_t l = 0;
                if (out >= DNS_NAME_MAX)
                        return -EINVAL;
                while (*s && *s != '.') {
                        uint8_t b;
                        if (*s == '\\') {
                                s++;
                                if (s[0] >= '0' && s[0] <= '9') {
                                        if (!(s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9'))
                                                return -EINVAL;
                                        unsigned v = (unsigned) (s[0] - '0') * 100 + (unsigned) (s[1] - '0') * 10 +
                                                     (unsigned) (s[2] - '0');
                                        if (v > 255)
                                                return -EINVAL;
                                        b = (uint8_t) v;
                                        s += 3;
                                } else if (*s) {
                                        b = (uint8_t) *s++;
                                } else
                                        return -EINVAL;
                        } else
                                b = (uint8_t) *s++;
                        /* Keep room for the root label after this one. */
                        if (++l > DNS_LABEL_MAX || out + 1 >= DNS_NAME_MAX)
                                return -EINVAL;
                        n.wire[out++] = b;
                }
                if (l == 0)
                        return -EINVAL; /* "a..b", ".a" */
                n.wire[lenpos] = (uint8_t) l;
                labels++;
                if (*s == '.')
                        s++; /* one final dot is allowed: the loop ends on NUL */
        }
        n.wire[out++] = 0;
        n.len = (uint8_t) out;
        n.labels = (uint8_t) labels;
        *ret = n;
        return 0;
}

int dns_name_to_text(const DnsName *n, char *buf, size_t size) {
        size_t out = 0, i = 0;

        if (n->len <= 1) {
                if (size < 2)
                        return -ENOBUFS;
                memcpy(buf, ".", 2);
                return 1;
        }
        while (i < n->len && n->wire[i] != 0) {
                uint8_t l = n->wire[i++];
                if (out > 0) {
                        if (out + 1 >= size)
                                return -ENOBUFS;
                        buf[out++] = '.';
                }
                for (uint8_t k = 0; k < l && i < n->len; k++, i++) {
                        uint8_t b = n->wire[i];
                        if (b == '.' || b == '\\') {
                                if (out + 2 >= size)
                                        return -ENOBUFS;
                                buf[out++] = '\\';
                                buf[out++] = (char) b;
                        } else if (b <= 0x20 || b >= 0x7f) {
                                if (out + 4 >= size)
                                        return -ENOBUFS;
                                buf[out++] = '\\';
                                buf[out++] = (char) ('0' + b / 100);
                                buf[out++] = (char) ('0' + b / 10 % 10);
                                buf[out++] = (char) ('0' + b % 10);
                        } else {
                                if (out + 1 >= size)
                                        return -ENOBUFS;
                                buf[out++] = (char) b;
                        }
                }
        }
        buf[out] = '\0';
        return (int) out;
}

/* ---- messages ---- */

/* On entry the cursor is at the first byte of an RDATA of `rr->rdlength`
 * bytes holding, per type, names that may be compressed; on exit it is
 * after the RDATA. Types not listed are opaque. */
static void check_rdata(DnsCursor *c, const DnsRR *rr) {
        size_t end = rr->rdata_off + rr->rdlength;

        switch (rr->type) {
        case DNS_TYPE_NS:
        case DNS_TYPE_CNAME:
        case DNS_TYPE_PTR:
                (void) dns_cursor_name(c, NULL);
                break;
        case DNS_TYPE_MX:
                (void) dns_cursor_u16(c);
                (void) dns_cursor_name(c, NULL);
                break;
        case DNS_TYPE_SOA:
                (void) dns_cursor_name(c, NULL);
                (void) dns_cursor_name(c, NULL);
                dns_cursor_skip(c, 5 * 4);
                break;
        case DNS_TYPE_A:
                if (rr->class == DNS_CLASS_IN && rr->rdlength != 4)
                        dns_cursor_fail(c);
                dns_cursor_skip(c, rr->rdlength);
                break;
        case DNS_TYPE_AAAA:
                if (rr->class == DNS_CLASS_IN && rr->rdlength != 16)
                        dns_cursor_fail(c);
                dns_cursor_skip(c, rr->rdlength);
                break;
        default:
                dns_cursor_skip(c, rr->rdlength);
                return;
        }
        /* A name must end exactly where the RDATA does, not past it. */
        if (dns_cursor_error(c) == 0 && c->pos != end)
                dns_cursor_fail(c);
}

/* On entry the cursor is at an OPT record's RDATA; on exit after it.
 * Options are (code, length, data) triples filling the RDATA exactly. */
static void parse_opt(DnsCursor *c, const DnsRR *rr, DnsEdns *edns) {
        size_t end = rr->rdata_off + rr->rdlength;

        edns->present = true;
        edns->udp_size = rr->class;
        edns->ext_rcode = (uint8_t) (rr->ttl >> 24);
        edns->version = (uint8_t) (rr->ttl >> 16);
        edns->flags = (uint16_t) rr->ttl;
        edns->off = rr->off;
        edns->end = end;
        edns->ede_code = -1;

        while (dns_cursor_error(c) == 0 && c->pos < end) {
                uint16_t code = dns_cursor_u16(c);
                uint16_t olen = dns_cursor_u16(c);
                if (dns_cursor_error(c) != 0 || c->pos > end || olen > end - c->pos) {
                        dns_cursor_fail(c);
                        return;
                }
                if (code == DNS_EDNS_OPT_EDE) {
                        /* INFO-CODE, then EXTRA-TEXT (RFC 8914 2). */
                        if (olen < 2) {
                                dns_cursor_fail(c);
                                return;
                        }
                        size_t save = c->pos;
                        uint16_t info = dns_cursor_u16(c);
                        if (edns->ede_code < 0)
                                edns->ede_code = info;
                        dns_cursor_seek(c, save);
                }
                dns_cursor_skip(c, olen);
        }
        if (dns_cursor_error(c) == 0 && c->pos != end)
                dns_cursor_fail(c);
}

/* On entry the cursor is at a record's owner name; on exit after its RDATA
 * (unchecked: the caller checks it). Returns 0 or -EBADMSG. */
static int read_rr(DnsCursor *c, DnsSection section, DnsRR *ret) {
        DnsRR rr = { .section = section, .off = c->pos };

        (void) dns_cursor_name(c, NULL);
        rr.type = dns_cursor_u16(c);
        rr.class = dns_cursor_u16(c);
        rr.ttl_off = c->pos;
        rr.ttl = dns_cursor_u32(c);
        rr.rdlength = dns_cursor_u16(c);
        rr.rdata_off = c->pos;
        if (dns_cursor_error(c) != 0 || rr.rdlength > dns_cursor_left(c))
                return dns_cursor_fail(c);
        rr.end = rr.rdata_off + rr.rdlength;
        *ret = rr;
        return 0;
}

int dns_message_parse(const uint8_t *msg, size_t len, DnsMessage *ret) {
        DnsCursor c;
        DnsMessage m = { .edns.ede_code = -1 };

        if (len > DNS_MESSAGE_MAX)
                return -EBADMSG;
        dns_cursor_init(&c, msg, len);
        m.id = dns_cursor_u16(&c);
        m.flags = dns_cursor_u16(&c);
        m.qdcount = dns_cursor_u16(&c);
        m.ancount = dns_cursor_u16(&c);
        m.nscount = dns_cursor_u16(&c);
        m.arcount = dns_cursor_u16(&c);
        if (dns_cursor_error(&c) != 0)
                return -EBADMSG;

        /* Counts the bytes left cannot hold even at the smallest size. */
        uint64_t need = (uint64_t) m.qdcount * DNS_QUESTION_SIZE_MIN +
                        ((uint64_t) m.ancount + m.nscount + m.arcount) * DNS_RR_SIZE_MIN;
        if (need > dns_cursor_left(&c))
                return -EBADMSG;

        m.question_off = c.pos;
        for (unsigned i = 0; i < m.qdcount; i++) {
                DnsName name;
                (void) dns_cursor_name(&c, &name);
                uint16_t type = dns_cursor_u16(&c);
                uint16_t class = dns_cursor_u16(&c);
                if (dns_cursor_error(&c) != 0)
                        return -EBADMSG;
                if (i == 0) {
                        m.has_question = m.qdcount == 1;
                        m.qname = name;
                        m.qtype = type;
                        m.qclass = class;
                }
        }
        m.question_end = c.pos;

        DnsRRIter it;
        dns_rr_iter_init(&it, msg, len, &m);
        for (;;) {
                DnsRR rr;
                int r = dns_rr_next(&it, &rr);
                if (r < 0)
                        return r;
                if (r == 0)
                        break;
                dns_cursor_seek(&it.c, rr.rdata_off);
                if (rr.type == DNS_TYPE_OPT) {
                        /* RFC 6891 6.1.1: one, in the additional section, owned by the root. */
                        if (rr.section != DNS_SECTION_ADDITIONAL || m.edns.present || msg[rr.off] != 0)
                                return -EBADMSG;
                        parse_opt(&it.c, &rr, &m.edns);
                } else
                        check_rdata(&it.c, &rr);
                if (dns_cursor_error(&it.c) != 0)
                        return -EBADMSG;
        }
        if (it.c.pos != len)
                return -EBADMSG; /* trailing bytes */

        m.rcode = (uint16_t) ((m.flags & DNS_RCODE_MASK) | (m.edns.present ? (unsigned) m.edns.ext_rcode << 4 : 0));
        *ret = m;
        return 0;
}

void dns_rr_iter_init(DnsRRIter *it, const uint8_t *msg, size_t len, const DnsMessage *m) {
        dns_cursor_init(&it->c, msg, len);
        dns_cursor_seek(&it->c, m->question_end);
        it->left[DNS_SECTION_ANSWER] = m->ancount;
        it->left[DNS_SECTION_AUTHORITY] = m->nscount;
        it->left[DNS_SECTION_ADDITIONAL] = m->arcount;
        it->section = DNS_SECTION_ANSWER;
}

int dns_rr_next(DnsRRIter *it, DnsRR *ret) {
        if (dns_cursor_error(&it->c) != 0)
                return -EBADMSG;
        while (it->section <= DNS_SECTION_ADDITIONAL && it->left[it->section] == 0)
                it->section++;
        if (it->section > DNS_SECTION_ADDITIONAL)
                return 0;
        it->left[it->section]--;

        DnsRR rr;
        if (read_rr(&it->c, (DnsSection) it->section, &rr) < 0)
                return -EBADMSG;
        dns_cursor_seek(&it->c, rr.end);
        *ret = rr;
        return 1;
}

int dns_soa_minimum(const uint8_t *msg, size_t len, const DnsRR *rr, uint32_t *ret_minimum) {
        DnsCursor c;

        if (rr->type != DNS_TYPE_SOA || rr->end > len)
                return -EBADMSG;
        dns_cursor_init(&c, msg, rr->end);
        dns_cursor_seek(&c, rr->rdata_off);
        (void) dns_cursor_name(&c, NULL); /* MNAME */
        (void) dns_cursor_name(&c, NULL); /* RNAME */
        dns_cursor_skip(&c, 4 * 4);       /* SERIAL REFRESH RETRY EXPIRE */
        uint32_t minimum = dns_cursor_u32(&c);
        if (dns_cursor_error(&c) != 0 || c.pos != rr->end)
                return -EBADMSG;
        *ret_minimum = minimum;
        return 0;
}

int dns_wire_question_span(const uint8_t *msg, size_t len, uint16_t *ret_id, size_t *ret_qoff, size_t *ret_qlen) {
        DnsCursor c;

        dns_cursor_init(&c, msg, len);
        uint16_t id = dns_cursor_u16(&c);
        dns_cursor_seek(&c, DNS_OFF_QDCOUNT);
        uint16_t qdcount = dns_cursor_u16(&c);
        dns_cursor_seek(&c, DNS_HEADER_SIZE);
        if (dns_cursor_error(&c) != 0 || qdcount != 1)
                return -EBADMSG;
        (void) dns_cursor_name_uncompressed(&c, NULL);
        dns_cursor_skip(&c, 4); /* QTYPE QCLASS */
        if (dns_cursor_error(&c) != 0)
                return -EBADMSG;

        *ret_id = id;
        *ret_qoff = DNS_HEADER_SIZE;
        *ret_qlen = c.pos - DNS_HEADER_SIZE;
        return 0;
}

size_t dns_wire_udp_limit(const DnsMessage *q) {
        if (!q->edns.present || q->edns.udp_size <= DNS_UDP_SIZE_MIN)
                return DNS_UDP_SIZE_MIN;
        return q->edns.udp_size < DNS_EDNS_UDP_SIZE ? q->edns.udp_size : DNS_EDNS_UDP_SIZE;
}

/* ---- the builder ---- */

void dns_builder_init(DnsBuilder *b, uint8_t *buf, size_t cap) {
        *b = (DnsBuilder) { .buf = buf, .cap = cap > DNS_MESSAGE_MAX ? DNS_MESSAGE_MAX : cap };
}

static uint8_t *builder_room(DnsBuilder *b, size_t n) {
        if (b->error != 0)
                return NULL;
        if (n > b->cap - b->len) {
                b->error = -ENOBUFS;
                return NULL;
        }
        uint8_t *p = b->buf + b->len;
        b->len += n;
        return p;
}

void dns_builder_u8(DnsBuilder *b, uint8_t v) {
        uint8_t *p = builder_room(b, 1);
        if (p)
                p[0] = v;
}

void dns_builder_u16(DnsBuilder *b, uint16_t v) {
        uint8_t *p = builder_room(b, 2);
        if (p) {
                p[0] = (uint8_t) (v >> 8);
                p[1] = (uint8_t) v;
        }
}

void dns_builder_u32(DnsBuilder *b, uint32_t v) {
        uint8_t *p = builder_room(b, 4);
        if (p) {
                p[0] = (uint8_t) (v >> 24);
                p[1] = (uint8_t) (v >> 16);
                p[2] = (uint8_t) (v >> 8);
                p[3] = (uint8_t) v;
        }
}

void dns_builder_bytes(DnsBuilder *b, const void *data, size_t n) {
        uint8_t *p = builder_room(b, n);
        if (p && n > 0)
                memcpy(p, data, n);
}

void dns_builder_put_u16(DnsBuilder *b, size_t off, uint16_t v) {
        if (b->error != 0)
                return;
        assert(off + 2 <= b->len);
        b->buf[off] = (uint8_t) (v >> 8);
        b->buf[off + 1] = (uint8_t) v;
}

void dns_builder_name(DnsBuilder *b, const DnsName *n) {
        dns_builder_bytes(b, n->wire, n->len);
}

void dns_builder_pointer(DnsBuilder *b, size_t off) {
        assert(off < 0x4000);
        dns_builder_u16(b, (uint16_t) (0xc000u | off));
}

void dns_builder_header(DnsBuilder *b, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns,
                        uint16_t ar) {
        dns_builder_u16(b, id);
        dns_builder_u16(b, flags);
        dns_builder_u16(b, qd);
        dns_builder_u16(b, an);
        dns_builder_u16(b, ns);
        dns_builder_u16(b, ar);
}

size_t dns_builder_rr_begin(DnsBuilder *b, size_t name_off, uint16_t type, uint16_t class, uint32_t ttl) {
        dns_builder_pointer(b, name_off);
        dns_builder_u16(b, type);
        dns_builder_u16(b, class);
        dns_builder_u32(b, ttl);
        size_t off = b->len;
        dns_builder_u16(b, 0);
        return off;
}

void dns_builder_rr_end(DnsBuilder *b, size_t rdlength_off) {
        if (b->error != 0)
                return;
        size_t n = b->len - rdlength_off - 2;
        if (n > UINT16_MAX) {
                b->error = -ENOBUFS;
                return;
        }
        dns_builder_put_u16(b, rdlength_off, (uint16_t) n);
}

/* Cuts UTF-8 text to at most `max` bytes without splitting a character. */
static size_t utf8_cut(const char *s, size_t max) {
        size_t n = strnlen(s, max + 1);
        if (n <= max)
                return n;
        n = max;
        while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80)
                n--;
        return n;
}

static void builder_ede(DnsBuilder *b, int ede_code, const char *ede_text) {
        size_t tlen = ede_text ? utf8_cut(ede_text, DNS_EDE_TEXT_MAX) : 0;
        dns_builder_u16(b, DNS_EDNS_OPT_EDE);
        dns_builder_u16(b, (uint16_t) (2 + tlen));
        dns_builder_u16(b, (uint16_t) ede_code);
        dns_builder_bytes(b, ede_text, tlen);
}

/* Starts an OPT record; returns the RDLENGTH offset for dns_builder_rr_end(). */
static size_t builder_opt_begin(DnsBuilder *b, uint16_t udp_size, uint16_t rcode, bool do_bit) {
        dns_builder_u8(b, 0); /* the root */
        dns_builder_u16(b, DNS_TYPE_OPT);
        dns_builder_u16(b, udp_size);
        dns_builder_u32(b, (uint32_t) (rcode >> 4) << 24 | (do_bit ? DNS_EDNS_FLAG_DO : 0));
        size_t off = b->len;
        dns_builder_u16(b, 0);
        return off;
}

void dns_builder_opt(DnsBuilder *b, uint16_t udp_size, uint16_t rcode, bool do_bit, int ede_code,
                     const char *ede_text) {
        size_t off = builder_opt_begin(b, udp_size, rcode, do_bit);
        if (ede_code >= 0)
                builder_ede(b, ede_code, ede_text);
        dns_builder_rr_end(b, off);
}

int dns_builder_finish(const DnsBuilder *b, size_t *ret_len) {
        if (b->error != 0)
                return b->error;
        *ret_len = b->len;
        return 0;
}

/* The flags of a response to a query with `qflags`. */
static uint16_t response_flags(uint16_t qflags, uint16_t rcode) {
        return (uint16_t) (DNS_FLAG_QR | (qflags & (DNS_OPCODE_MASK | DNS_FLAG_RD | DNS_FLAG_CD)) | DNS_FLAG_RA |
                           (rcode & DNS_RCODE_MASK));
}

int dns_wire_error_response(const uint8_t *query, size_t qlen, uint16_t rcode, int ede_code, const char *ede_text,
                            uint8_t *out, size_t outcap, size_t *ret_len) {
        DnsMessage m;
        DnsBuilder b;
        size_t qoff = 0, qspan = 0;
        bool edns = false, do_bit = false;
        uint16_t id;

        if (rcode > DNS_RCODE_MAX)
                return -EINVAL;
        if (!query || qlen < DNS_HEADER_SIZE)
                return -EBADMSG;
        uint16_t qflags = (uint16_t) (query[DNS_OFF_FLAGS] << 8 | query[DNS_OFF_FLAGS + 1]);
        if (qflags & DNS_FLAG_QR)
                return -EBADMSG; /* never answer an answer: that is how loops start */

        if (dns_message_parse(query, qlen, &m) == 0) {
                id = m.id;
                if (m.has_question) {
                        qoff = m.question_off;
                        qspan = m.question_end - m.question_off;
                }
                edns = m.edns.present;
                do_bit = m.edns.flags & DNS_EDNS_FLAG_DO;
        } else if (dns_wire_question_span(query, qlen, &id, &qoff, &qspan) < 0) {
                id = (uint16_t) (query[DNS_OFF_ID] << 8 | query[DNS_OFF_ID + 1]);
                qoff = qspan = 0;
        }

        if (rcode > DNS_RCODE_MASK && !edns)
                rcode = DNS_RCODE_SERVFAIL;

        dns_builder_init(&b, out, outcap);
        dns_builder_header(&b, id, response_flags(qflags, rcode), qspan > 0, 0, 0, edns);
        dns_builder_bytes(&b, query + qoff, qspan);
        if (edns)
                dns_builder_opt(&b, DNS_EDNS_UDP_SIZE, rcode, do_bit, ede_code, ede_text);
        return dns_builder_finish(&b, ret_len);
}

/* Copies the EDE options of the OPT record at msg[edns->off .. edns->end). */
static void builder_copy_ede(DnsBuilder *b, const uint8_t *msg, size_t len, const DnsEdns *edns) {
        DnsCursor c;

        dns_cursor_init(&c, msg, edns->end <= len ? edns->end : 0);
        dns_cursor_seek(&c, edns->off + DNS_OPT_SIZE);
        while (dns_cursor_error(&c) == 0 && dns_cursor_left(&c) > 0) {
                size_t start = c.pos;
                uint16_t code = dns_cursor_u16(&c);
                uint16_t olen = dns_cursor_u16(&c);
                dns_cursor_skip(&c, olen);
                if (dns_cursor_error(&c) == 0 && code == DNS_EDNS_OPT_EDE)
                        dns_builder_bytes(b, msg + start, c.pos - start);
        }
}

int dns_wire_adapt_answer(const uint8_t *query, size_t qlen, const DnsMessage *q, const uint8_t *answer,
                          size_t alen, const DnsMessage *a, size_t max_size, int ede_code, const char *ede_text,
                          uint8_t *out, size_t outcap, size_t *ret_len) {
        DnsBuilder b;
        DnsRRIter it;
        size_t copy_end = a->question_end;
        unsigned kept_ar = 0;

        if (!q->has_question || !a->has_question || !dns_name_equal(&q->qname, &a->qname) ||
            q->qtype != a->qtype || q->qclass != a->qclass ||
            q->question_end - q->question_off != a->question_end - a->question_off ||
            q->question_off != a->question_off || q->question_end > qlen)
                return -EBADMSG;

        /* The kept part is a prefix of the answer (pointers only go back),
         * up to the first OPT record of the additional section. */
        dns_rr_iter_init(&it, answer, alen, a);
        for (;;) {
                DnsRR rr;
                int r = dns_rr_next(&it, &rr);
                if (r < 0)
                        return r;
                if (r == 0 || rr.type == DNS_TYPE_OPT)
                        break;
                copy_end = rr.end;
                if (rr.section == DNS_SECTION_ADDITIONAL)
                        kept_ar++;
        }

        uint16_t rcode = a->rcode;
        bool edns = q->edns.present;
        if (rcode > DNS_RCODE_MASK && !edns)
                rcode = DNS_RCODE_SERVFAIL;
        bool do_bit = q->edns.flags & DNS_EDNS_FLAG_DO;
        uint16_t flags = (uint16_t) ((a->flags & (DNS_FLAG_AA | DNS_FLAG_TC | DNS_FLAG_RA | DNS_FLAG_AD)) |
                                     response_flags(q->flags, rcode));
        /* RFC 6840 5.8: AD only for a client that asked with AD or DO. */
        if (!(q->flags & DNS_FLAG_AD) && !do_bit)
                flags &= (uint16_t) ~DNS_FLAG_AD;

        dns_builder_init(&b, out, outcap);
        dns_builder_header(&b, q->id, flags, 1, a->ancount, a->nscount, (uint16_t) (kept_ar + edns));
        dns_builder_bytes(&b, query + q->question_off, q->question_end - q->question_off);
        dns_builder_bytes(&b, answer + a->question_end, copy_end - a->question_end);
        if (edns) {
                size_t off = builder_opt_begin(&b, DNS_EDNS_UDP_SIZE, rcode, do_bit);
                if (a->edns.present)
                        builder_copy_ede(&b, answer, alen, &a->edns);
                if (ede_code >= 0)
                        builder_ede(&b, ede_code, ede_text);
                dns_builder_rr_end(&b, off);
        }
        if (b.error == 0 && b.len <= max_size)
                return dns_builder_finish(&b, ret_len);

        /* Too large for the client (or for our buffer): the question and
         * TC, so it asks again over TCP (RFC 1035 4.2.1, RFC 7766 5). */
        dns_builder_init(&b, out, outcap < max_size ? outcap : max_size);
        dns_builder_header(&b, q->id, (uint16_t) (flags | DNS_FLAG_TC), 1, 0, 0, edns);
        dns_builder_bytes(&b, query + q->question_off, q->question_end - q->question_off);
        if (edns)
                dns_builder_opt(&b, DNS_EDNS_UDP_SIZE, rcode, do_bit, -1, NULL);
        return dns_builder_finish(&b, ret_len);
}
