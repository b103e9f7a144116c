/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target over ztnad/common/dns-wire.c: the bytes are a DNS message from
 * a hostile client or server. Parsing must never crash or read out of
 * bounds, and whatever ztnad builds from an accepted message (an error
 * response, an answer fitted to a query, a truncated answer, a name's text
 * form) must itself parse again: ztnad never sends what it would refuse.
 *
 * Seeds: the .hex files in tests/data/dns (the Makefile turns them into binary files in
 * build/fuzz/corpus/fuzz-dns).
 */

#include <assert.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "common/dns-wire.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint8_t out[DNS_MESSAGE_MAX];
static uint8_t query[DNS_MESSAGE_MAX];

static void check_names(const DnsMessage *m) {
        char text[DNS_NAME_TEXT_MAX];
        DnsName back;

        int r = dns_name_to_text(&m->qname, text, sizeof text);
        assert(r > 0);
        assert(dns_name_from_text(text, &back) == 0);
        assert(dns_name_equal(&back, &m->qname));
        assert(dns_name_endswith(&m->qname, &back));
        DnsName lower = m->qname;
        dns_name_lower(&lower);
        assert(dns_name_equal(&lower, &m->qname));
}

static void check_records(const uint8_t *data, size_t size, const DnsMessage *m) {
        DnsRRIter it;
        DnsRR rr;
        unsigned n = 0;
        int r;

        dns_rr_iter_init(&it, data, size, m);
        while ((r = dns_rr_next(&it, &rr)) > 0) {
                assert(rr.end <= size && rr.rdata_off + rr.rdlength == rr.end);
                assert(rr.ttl_off + 6 == rr.rdata_off);
                if (rr.type == DNS_TYPE_SOA) {
                        uint32_t minimum;
                        /* parse already checked SOA RDATA */
                        assert(dns_soa_minimum(data, size, &rr, &minimum) == 0);
                }
                n++;
        }
        assert(r == 0);
        assert(n == (unsigned) m->ancount + m->nscount + m->arcount);
}

/* A query for m's question, as a stub client would send it. */
static size_t make_query(const uint8_t *data, const DnsMessage *m, uint8_t knobs, DnsMessage *ret) {
        DnsBuilder b;
        size_t len;

        dns_builder_init(&b, query, sizeof query);
        dns_builder_header(&b, (uint16_t) (m->id ^ 0x5a5a), DNS_FLAG_RD | (knobs & 1 ? DNS_FLAG_CD : 0), 1, 0, 0,
                           knobs & 2 ? 1 : 0);
        dns_builder_bytes(&b, data + m->question_off, m->question_end - m->question_off);
        if (knobs & 2)
                dns_builder_opt(&b, (uint16_t) (knobs << 6), 0, knobs & 4, -1, NULL);
        assert(dns_builder_finish(&b, &len) == 0);
        assert(dns_message_parse(query, len, ret) == 0);
        return len;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        DnsMessage m, r;
        size_t len, qoff, qlen;
        uint16_t id;
        uint8_t knobs = size > 0 ? data[size - 1] : 0;

        if (dns_wire_question_span(data, size, &id, &qoff, &qlen) == 0)
                assert(qoff == DNS_HEADER_SIZE && qoff + qlen <= size && qlen >= DNS_QUESTION_SIZE_MIN);

        /* An error response to anything with a header parses, and echoes
         * the ID. */
        static const uint16_t rcodes[] = { DNS_RCODE_FORMERR, DNS_RCODE_SERVFAIL, DNS_RCODE_NXDOMAIN,
                                           DNS_RCODE_BADVERS };
        uint16_t rcode = rcodes[knobs % 4];
        int ede = knobs & 8 ? DNS_EDE_BLOCKED : -1;
        size_t cap = knobs & 16 ? sizeof out : 64;
        int e = dns_wire_error_response(data, size, rcode, ede, "Blocked", out, cap, &len);
        if (e == 0) {
                assert(dns_message_parse(out, len, &r) == 0);
                assert(r.id == (uint16_t) (data[0] << 8 | data[1]));
                assert(r.flags & DNS_FLAG_QR);
        } else
                assert(e == -EBADMSG || e == -ENOBUFS);

        if (dns_message_parse(data, size, &m) < 0)
                return 0;
        assert(m.question_end <= size);
        assert(!m.edns.present || (m.edns.off >= m.question_end && m.edns.end <= size));
        check_records(data, size, &m);
        if (m.qdcount > 0)
                check_names(&m);
        if (!m.has_question)
                return 0;

        /* The message as an upstream answer, fitted to a query for its
         * question: it parses, carries the query's ID and fits the size. */
        DnsMessage q;
        size_t ql = make_query(data, &m, knobs, &q);
        size_t limit = knobs & 32 ? DNS_MESSAGE_MAX : dns_wire_udp_limit(&q);
        e = dns_wire_adapt_answer(query, ql, &q, data, size, &m, limit, knobs & 64 ? DNS_EDE_STALE_ANSWER : -1,
                                  "Stale Answer", out, sizeof out, &len);
        assert(e == 0);
        assert(len <= limit);
        assert(dns_message_parse(out, len, &r) == 0);
        assert(r.id == q.id);
        assert(r.has_question && dns_name_equal(&r.qname, &q.qname));
        assert(r.edns.present == q.edns.present);
        return 0;
}
