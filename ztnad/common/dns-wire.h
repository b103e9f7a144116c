/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * DNS messages on the wire (RFC 1035 4.1, RFC 6891, RFC 8914).
 *
 * Every byte of DNS that ztnad reads goes through the one cursor below. Its
 * first error sticks: after a failed read every further read fails too and
 * returns zeroes, so a parse function may read a whole record and check once.
 * The remaining length is checked before every read; compression pointers
 * may only point backwards into the message body, at a name lying wholly
 * before the one being read, and at most DNS_POINTERS_MAX of them are
 * followed per name; a label is at most 63 bytes and a name at most 255 (RFC 1035 2.3.4);
 * counts the remaining bytes cannot hold and bytes after the last record are
 * refused. There is one error code: -EBADMSG. Only the stub turns it into
 * FORMERR (or a dropped datagram).
 *
 * Names are kept in uncompressed wire form (DnsName) and compared ASCII
 * case-insensitively (RFC 4343).
 *
 * The builder writes into a caller's buffer; it too has a sticky error
 * (-ENOBUFS when the buffer is too small).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- The header (RFC 1035 4.1.1) ---- */

#define DNS_HEADER_SIZE 12u
#define DNS_OFF_ID 0u
#define DNS_OFF_FLAGS 2u
#define DNS_OFF_QDCOUNT 4u
#define DNS_OFF_ANCOUNT 6u
#define DNS_OFF_NSCOUNT 8u
#define DNS_OFF_ARCOUNT 10u

#define DNS_FLAG_QR 0x8000u
#define DNS_OPCODE_MASK 0x7800u
#define DNS_OPCODE_SHIFT 11
#define DNS_FLAG_AA 0x0400u
#define DNS_FLAG_TC 0x0200u
#define DNS_FLAG_RD 0x0100u
#define DNS_FLAG_RA 0x0080u
#define DNS_FLAG_AD 0x0020u /* RFC 4035 3.2.3 */
#define DNS_FLAG_CD 0x0010u /* RFC 4035 3.2.2 */
#define DNS_RCODE_MASK 0x000fu

#define DNS_OPCODE_QUERY 0u

/* ---- Sizes ---- */

#define DNS_NAME_MAX 255u  /* wire form, the root label included */
#define DNS_LABEL_MAX 63u
#define DNS_POINTERS_MAX 32u /* per name; strict backwards jumps end sooner */
#define DNS_MESSAGE_MAX 65535u
#define DNS_UDP_SIZE_MIN 512u      /* without EDNS (RFC 1035 4.2.1) */
#define DNS_EDNS_UDP_SIZE 1232u    /* what ztnad advertises (DNS flag day 2020) */
#define DNS_QUESTION_SIZE_MIN 5u   /* root name, type, class */
#define DNS_RR_SIZE_MIN 11u        /* root name, type, class, TTL, RDLENGTH */
#define DNS_RR_FIXED_SIZE 10u      /* type, class, TTL, RDLENGTH */
#define DNS_RR_OFF_TTL 4u          /* from the end of the owner name */
#define DNS_OPT_SIZE 11u           /* an OPT record without options */
#define DNS_EDE_TEXT_MAX 256u      /* what the builder puts in an EDE option */

/* ---- Codes ---- */

enum {
        DNS_RCODE_NOERROR = 0,
        DNS_RCODE_FORMERR = 1,
        DNS_RCODE_SERVFAIL = 2,
        DNS_RCODE_NXDOMAIN = 3,
        DNS_RCODE_NOTIMP = 4,
        DNS_RCODE_REFUSED = 5,
        DNS_RCODE_BADVERS = 16, /* extended: needs an OPT record (RFC 6891 6.1.3) */
        DNS_RCODE_MAX = 4095,
};

enum {
        DNS_TYPE_A = 1,
        DNS_TYPE_NS = 2,
        DNS_TYPE_CNAME = 5,
        DNS_TYPE_SOA = 6,
        DNS_TYPE_PTR = 12,
        DNS_TYPE_HINFO = 13,
        DNS_TYPE_MX = 15,
        DNS_TYPE_TXT = 16,
        DNS_TYPE_AAAA = 28,
        DNS_TYPE_SRV = 33,
        DNS_TYPE_OPT = 41,
        DNS_TYPE_DS = 43,
        DNS_TYPE_RRSIG = 46,
        DNS_TYPE_NSEC = 47,
        DNS_TYPE_DNSKEY = 48,
        DNS_TYPE_SVCB = 64,
        DNS_TYPE_HTTPS = 65,
        DNS_TYPE_IXFR = 251,
        DNS_TYPE_AXFR = 252,
        DNS_TYPE_MAILB = 253,
        DNS_TYPE_MAILA = 254,
        DNS_TYPE_ANY = 255,
};

enum {
        DNS_CLASS_IN = 1,
        DNS_CLASS_CH = 3,
        DNS_CLASS_ANY = 255,
};

/* EDNS(0) option codes */
enum {
        DNS_EDNS_OPT_CLIENT_SUBNET = 8,
        DNS_EDNS_OPT_COOKIE = 10,
        DNS_EDNS_OPT_PADDING = 12,
        DNS_EDNS_OPT_EDE = 15,
};

#define DNS_EDNS_FLAG_DO 0x8000u /* in the OPT record's TTL, low 16 bits (RFC 3225) */

/* Extended DNS Error codes (RFC 8914 4) */
enum {
        DNS_EDE_OTHER = 0,
        DNS_EDE_UNSUPPORTED_DNSKEY_ALGORITHM = 1,
        DNS_EDE_UNSUPPORTED_DS_DIGEST = 2,
        DNS_EDE_STALE_ANSWER = 3,
        DNS_EDE_FORGED_ANSWER = 4,
        DNS_EDE_DNSSEC_INDETERMINATE = 5,
        DNS_EDE_DNSSEC_BOGUS = 6,
        DNS_EDE_SIGNATURE_EXPIRED = 7,
        DNS_EDE_SIGNATURE_NOT_YET_VALID = 8,
        DNS_EDE_DNSKEY_MISSING = 9,
        DNS_EDE_RRSIGS_MISSING = 10,
        DNS_EDE_NO_ZONE_KEY_BIT = 11,
        DNS_EDE_NSEC_MISSING = 12,
        DNS_EDE_CACHED_ERROR = 13,
        DNS_EDE_NOT_READY = 14,
        DNS_EDE_BLOCKED = 15,
        DNS_EDE_CENSORED = 16,
        DNS_EDE_FILTERED = 17,
        DNS_EDE_PROHIBITED = 18,
        DNS_EDE_STALE_NXDOMAIN = 19,
        DNS_EDE_NOT_AUTHORITATIVE = 20,
        DNS_EDE_NOT_SUPPORTED = 21,
        DNS_EDE_NO_REACHABLE_AUTHORITY = 22,
        DNS_EDE_NETWORK_ERROR = 23,
        DNS_EDE_INVALID_DATA = 24,
};

/* ---- The cursor ---- */

typedef struct DnsCursor {
        const uint8_t *msg; /* the whole message: pointers are offsets into it */
        size_t len;
        size_t pos;
        int error; /* 0, or the first error (-EBADMSG) */
} DnsCursor;

void dns_cursor_init(DnsCursor *c, const uint8_t *msg, size_t len);
static inline int dns_cursor_error(const DnsCursor *c) {
        return c->error;
}
/* Bytes left after the cursor; 0 once an error stuck. */
size_t dns_cursor_left(const DnsCursor *c);
/* Each read checks the length first; on error it returns 0 (NULL) and the
 * error sticks. */
uint16_t dns_cursor_u16(DnsCursor *c);
uint32_t dns_cursor_u32(DnsCursor *c);
const uint8_t *dns_cursor_bytes(DnsCursor *c, size_t n);
void dns_cursor_skip(DnsCursor *c, size_t n);
/* Moves to an absolute offset (<= len). */
void dns_cursor_seek(DnsCursor *c, size_t pos);
/* Marks the cursor failed (a caller's semantic check); returns -EBADMSG. */
int dns_cursor_fail(DnsCursor *c);

/* A domain name in uncompressed wire form, the root label included. */
typedef struct DnsName {
        uint8_t wire[DNS_NAME_MAX];
        uint8_t len;    /* bytes used in wire, 1 for the root */
        uint8_t labels; /* not counting the root */
} DnsName;

/* Text form: at most DNS_NAME_MAX * 4 bytes ("\\DDD" for every byte) plus the NUL. */
#define DNS_NAME_TEXT_MAX (DNS_NAME_MAX * 4u + 1u)

/* Reads a name, following compression pointers. On entry the cursor is at
 * the name's first byte; on exit it is after the name's last byte in place
 * (after the first pointer, when there is one). `ret` may be NULL to only
 * check and skip. Returns 0 or -EBADMSG. */
int dns_cursor_name(DnsCursor *c, DnsName *ret);
/* The same, but a compression pointer is an error. */
int dns_cursor_name_uncompressed(DnsCursor *c, DnsName *ret);

/* Lower-cases ASCII letters in place (RFC 4343: nothing else). */
void dns_name_lower(DnsName *n);
bool dns_name_equal(const DnsName *a, const DnsName *b);
/* Whether `n` is `zone` or below it. */
bool dns_name_endswith(const DnsName *n, const DnsName *zone);
/* Offset in n->wire where the suffix of `keep` labels starts. */
size_t dns_name_suffix_offset(const DnsName *n, unsigned keep);
/* "www.example.com" / "www.example.com." / "." to wire form; "\\." and
 * "\\DDD" escapes. Returns 0 or -EINVAL (empty label, too long, bad escape). */
int dns_name_from_text(const char *text, DnsName *ret);
/* Wire form to text without the final dot ("." for the root), escaping
 * '.', '\\' and bytes outside printable ASCII. Returns the length or
 * -ENOBUFS. */
int dns_name_to_text(const DnsName *n, char *buf, size_t size);

/* ---- Messages ---- */

typedef enum DnsSection {
        DNS_SECTION_ANSWER,
        DNS_SECTION_AUTHORITY,
        DNS_SECTION_ADDITIONAL,
} DnsSection;

typedef struct DnsRR {
        DnsSection section;
        size_t off;       /* the owner name's first byte */
        size_t ttl_off;   /* the TTL field */
        size_t rdata_off;
        size_t end;       /* after the RDATA */
        uint16_t type, class;
        uint32_t ttl;
        uint16_t rdlength;
} DnsRR;

typedef struct DnsEdns {
        bool present;
        uint16_t udp_size;   /* as sent; callers clamp */
        uint8_t ext_rcode;   /* the upper 8 bits of a 12-bit rcode */
        uint8_t version;
        uint16_t flags;      /* DNS_EDNS_FLAG_DO ... */
        size_t off, end;     /* the OPT record in the message */
        int ede_code;        /* the first EDE option, -1 when none */
} DnsEdns;

typedef struct DnsMessage {
        uint16_t id, flags;
        uint16_t qdcount, ancount, nscount, arcount;
        /* The question, when qdcount is 1: its name as sent (case kept). */
        bool has_question;
        DnsName qname;
        uint16_t qtype, qclass;
        size_t question_off, question_end;
        DnsEdns edns;
        uint16_t rcode; /* 12 bits, the OPT record's upper bits included */
} DnsMessage;

/* Parses and checks a whole message: header, every question, every record
 * and its RDATA (names inside NS, CNAME, PTR, MX and SOA data too), at most
 * one OPT record and only in the additional section with the root as owner,
 * EDNS options well-formed, nothing after the last record. A message with
 * several questions parses; only the first is kept. Returns 0 or -EBADMSG;
 * `ret` is not written on failure. */
int dns_message_parse(const uint8_t *msg, size_t len, DnsMessage *ret);

/* Walks the records of a message dns_message_parse() accepted. */
typedef struct DnsRRIter {
        DnsCursor c;
        unsigned left[3];
        unsigned section;
} DnsRRIter;

/* Starts after the question section (at m->question_end). */
void dns_rr_iter_init(DnsRRIter *it, const uint8_t *msg, size_t len, const DnsMessage *m);
/* 1 with *ret filled, 0 after the last record, -EBADMSG. The cursor stays
 * after the record returned. */
int dns_rr_next(DnsRRIter *it, DnsRR *ret);

/* SOA RDATA: the MINIMUM field (RFC 2308 4), names skipped. */
int dns_soa_minimum(const uint8_t *msg, size_t len, const DnsRR *rr, uint32_t *ret_minimum);

/* Finds the ID and the question section of a DNS message: on success *ret_id is the ID, and the
 * question (QNAME QTYPE QCLASS, exactly one) spans msg[*ret_qoff .. *ret_qoff + *ret_qlen).
 * Returns 0 or -EBADMSG. Compression pointers are not allowed in the question of a query but
 * must be followed in responses... keep it simple: the question's QNAME must be uncompressed (it is first in the message). */
int dns_wire_question_span(const uint8_t *msg, size_t len, uint16_t *ret_id, size_t *ret_qoff, size_t *ret_qlen);

/* ---- The builder ---- */

typedef struct DnsBuilder {
        uint8_t *buf;
        size_t cap;
        size_t len;
        int error; /* 0 or -ENOBUFS, sticky */
} DnsBuilder;

void dns_builder_init(DnsBuilder *b, uint8_t *buf, size_t cap);
void dns_builder_u8(DnsBuilder *b, uint8_t v);
void dns_builder_u16(DnsBuilder *b, uint16_t v);
void dns_builder_u32(DnsBuilder *b, uint32_t v);
void dns_builder_bytes(DnsBuilder *b, const void *p, size_t n);
/* Overwrites two bytes already written (counts, RDLENGTH). */
void dns_builder_put_u16(DnsBuilder *b, size_t off, uint16_t v);
void dns_builder_name(DnsBuilder *b, const DnsName *n);
/* A compression pointer to `off` (the question name: DNS_HEADER_SIZE). */
void dns_builder_pointer(DnsBuilder *b, size_t off);
void dns_builder_header(DnsBuilder *b, uint16_t id, uint16_t flags, uint16_t qd, uint16_t an, uint16_t ns,
                        uint16_t ar);
/* Starts a record whose owner is the name at `name_off` (a pointer); returns
 * the offset of RDLENGTH for dns_builder_rr_end(). */
size_t dns_builder_rr_begin(DnsBuilder *b, size_t name_off, uint16_t type, uint16_t class, uint32_t ttl);
void dns_builder_rr_end(DnsBuilder *b, size_t rdlength_off);
/* An OPT record: our UDP size, the upper rcode bits, the DO bit, and an EDE
 * option when ede_code >= 0 (text may be NULL). */
void dns_builder_opt(DnsBuilder *b, uint16_t udp_size, uint16_t rcode, bool do_bit, int ede_code,
                     const char *ede_text);
/* 0 and the length, or -ENOBUFS. */
int dns_builder_finish(const DnsBuilder *b, size_t *ret_len);

/* An error response to `query`: its ID, opcode, RD and CD, QR and RA set;
 * the question echoed when the query has exactly one readable question; an
 * OPT record (our UDP size, the DO bit mirrored, an EDE option when
 * ede_code >= 0) when the query had a valid one. Needs only a readable
 * header: anything after it may be garbage (then no question is echoed).
 * Returns 0, -EBADMSG (shorter than a header, or a response), -ENOBUFS or
 * -EINVAL (rcode above DNS_RCODE_MAX, an extended rcode without OPT is cut
 * to SERVFAIL instead). */
int dns_wire_error_response(const uint8_t *query, size_t qlen, uint16_t rcode, int ede_code /* -1 none */,
                            const char *ede_text, uint8_t *out, size_t outcap, size_t *ret_len);

/* Makes an upstream or cached answer fit the client's query: the client's
 * ID and question bytes (its 0x20 case), the answer's flags with RD and CD
 * copied from the query, the answer and authority sections as they are, the
 * additional records before any OPT record, then, when the client sent OPT,
 * ours (DNS_EDNS_UDP_SIZE, the client's DO bit, the answer's EDE options and
 * one more when ede_code >= 0). When the result exceeds `max_size` it is
 * replaced by a truncated one: header with TC, question, OPT. `answer`
 * must have passed dns_message_parse() with a question equal to the
 * query's (case-insensitively); returns 0, -EBADMSG or -ENOBUFS. */
int dns_wire_adapt_answer(const uint8_t *query, size_t qlen, const DnsMessage *q, const uint8_t *answer,
                          size_t alen, const DnsMessage *a, size_t max_size, int ede_code, const char *ede_text,
                          uint8_t *out, size_t outcap, size_t *ret_len);

/* The largest UDP answer a client with this query accepts: 512 without
 * EDNS, otherwise its size clamped to [512, DNS_EDNS_UDP_SIZE]. */
size_t dns_wire_udp_limit(const DnsMessage *q);
