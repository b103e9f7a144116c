/* SPDX-License-Identifier: MIT */
/*
 * The DNS wire cursor and builder: every read at its boundaries (first,
 * last, one past the end), compression loops and forward pointers, 63/64
 * byte labels and 255/256 byte names, impossible counts and trailing bytes,
 * the packet corpus in tests/data/dns/ (real dig, kdig and unbound packets,
 * and handmade broken ones), and the responses the stub and the upstream
 * send: error responses with Extended DNS Errors, answers fitted to a
 * client's query, truncation.
 *
 * Run from the top of the tree (the corpus path is relative).
 */

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/dns-wire.h"

#define CORPUS "tests/data/dns"

/* Reads a .hex file: hex digit pairs, whitespace, '#' comments to the end
 * of the line. `*parse` gets the "# parse: ok|bad" directive (1, 0, or -1
 * when missing). Returns the length. */
static size_t load_hex(const char *path, uint8_t *buf, size_t cap, int *parse) {
        FILE *f = fopen(path, "re");
        char line[512];
        size_t n = 0;

        ck_assert_msg(f, "cannot open %s", path);
        *parse = -1;
        while (fgets(line, sizeof line, f)) {
                char *hash = strchr(line, '#');
                if (hash) {
                        if (strncmp(hash, "# parse: ok", 11) == 0)
                                *parse = 1;
                        else if (strncmp(hash, "# parse: bad", 12) == 0)
                                *parse = 0;
                        *hash = '\0';
                }
                int hi = -1;
                for (char *p = line; *p; p++) {
                        int v;
                        if (*p >= '0' && *p <= '9')
                                v = *p - '0';
                        else if (*p >= 'a' && *p <= 'f')
                                v = *p - 'a' + 10;
                        else if (*p >= 'A' && *p <= 'F')
                                v = *p - 'A' + 10;
                        else {
                                ck_assert_msg(*p == ' ' || *p == '\n' || *p == '\t' || *p == '\r',
                                              "%s: stray character '%c'", path, *p);
                                continue;
                        }
                        if (hi < 0)
                                hi = v;
                        else {
                                ck_assert_msg(n < cap, "%s: too long", path);
                                buf[n++] = (uint8_t) (hi << 4 | v);
                                hi = -1;
                        }
                }
                ck_assert_msg(hi < 0, "%s: odd number of hex digits on a line", path);
        }
        fclose(f);
        return n;
}

static size_t corpus(const char *name, uint8_t *buf, size_t cap) {
        char path[256];
        int parse;
        snprintf(path, sizeof path, CORPUS "/%s.hex", name);
        return load_hex(path, buf, cap, &parse);
}

static uint16_t get16(const uint8_t *p) {
        return (uint16_t) (p[0] << 8 | p[1]);
}

/* ---- the cursor ---- */

START_TEST(test_cursor_boundaries) {
        const uint8_t data[] = { 1, 2, 3, 4, 5, 6, 7 };
        DnsCursor c;

        /* first byte, last byte, one past the end */
        dns_cursor_init(&c, data, sizeof data);
        ck_assert_uint_eq(dns_cursor_left(&c), 7);
        ck_assert_ptr_eq(dns_cursor_bytes(&c, 1), data); /* the first byte, 1 */
        ck_assert_uint_eq(dns_cursor_u16(&c), 0x0203);
        ck_assert_uint_eq(dns_cursor_u32(&c), 0x04050607);
        ck_assert_uint_eq(dns_cursor_left(&c), 0);
        ck_assert_int_eq(dns_cursor_error(&c), 0);
        ck_assert_ptr_null(dns_cursor_bytes(&c, 1));
        ck_assert_int_eq(dns_cursor_error(&c), -EBADMSG);

        /* The error sticks: a seek back does not clear it, reads give 0. */
        dns_cursor_seek(&c, 0);
        ck_assert_ptr_null(dns_cursor_bytes(&c, 1));
        ck_assert_uint_eq(dns_cursor_left(&c), 0);
        ck_assert_int_eq(dns_cursor_error(&c), -EBADMSG);

        /* A wide read one byte short fails whole, not partly. */
        dns_cursor_init(&c, data, sizeof data);
        dns_cursor_skip(&c, 4);
        ck_assert_uint_eq(dns_cursor_u32(&c), 0);
        ck_assert_int_eq(dns_cursor_error(&c), -EBADMSG);
        dns_cursor_init(&c, data, sizeof data);
        dns_cursor_skip(&c, 6);
        ck_assert_uint_eq(dns_cursor_u16(&c), 0);
        ck_assert_int_eq(dns_cursor_error(&c), -EBADMSG);

        /* bytes(): exactly what is left, then one more */
        dns_cursor_init(&c, data, sizeof data);
        ck_assert_ptr_eq(dns_cursor_bytes(&c, 7), data);
        ck_assert_ptr_null(dns_cursor_bytes(&c, 1));
        dns_cursor_init(&c, data, sizeof data);
        ck_assert_ptr_null(dns_cursor_bytes(&c, 8));
        ck_assert_int_eq(dns_cursor_error(&c), -EBADMSG);
        dns_cursor_init(&c, data, sizeof data);
        ck_assert_ptr_null(dns_cursor_bytes(&c, SIZE_MAX));

        /* seek: to the end is fine, past it is not */
        dns_cursor_init(&c, data, sizeof data);
        dns_cursor_seek(&c, 7);
        ck_assert_int_eq(dns_cursor_error(&c), 0);
        dns_cursor_seek(&c, 8);
        ck_assert_int_eq(dns_cursor_error(&c), -EBADMSG);

        /* an empty buffer */
        dns_cursor_init(&c, NULL, 0);
        ck_assert_ptr_null(dns_cursor_bytes(&c, 1));
        ck_assert_int_eq(dns_cursor_error(&c), -EBADMSG);

        /* a caller's check fails the cursor the same way */
        dns_cursor_init(&c, data, sizeof data);
        ck_assert_int_eq(dns_cursor_fail(&c), -EBADMSG);
        ck_assert_ptr_null(dns_cursor_bytes(&c, 1));
}
END_TEST

/* A message: a 12-byte header of zeroes, then `body`. */
static size_t message(uint8_t *buf, const void *body, size_t n) {
        memset(buf, 0, DNS_HEADER_SIZE);
        memcpy(buf + DNS_HEADER_SIZE, body, n);
        return DNS_HEADER_SIZE + n;
}

static int name_at(const uint8_t *msg, size_t len, size_t off, DnsName *ret, size_t *ret_end) {
        DnsCursor c;
        dns_cursor_init(&c, msg, len);
        dns_cursor_seek(&c, off);
        int r = dns_cursor_name(&c, ret);
        if (ret_end)
                *ret_end = c.pos;
        return r;
}

START_TEST(test_name_labels) {
        uint8_t msg[600], body[300];
        DnsName n;
        size_t len, end;

        /* 63 bytes: the longest label */
        body[0] = 63;
        memset(body + 1, 'a', 63);
        body[64] = 0;
        len = message(msg, body, 65);
        ck_assert_int_eq(name_at(msg, len, DNS_HEADER_SIZE, &n, &end), 0);
        ck_assert_uint_eq(n.len, 65);
        ck_assert_uint_eq(n.labels, 1);
        ck_assert_uint_eq(end, len);

        /* 64 bytes: one over (and the 0x40 label type, unused) */
        body[0] = 64;
        memset(body + 1, 'a', 64);
        body[65] = 0;
        len = message(msg, body, 66);
        ck_assert_int_eq(name_at(msg, len, DNS_HEADER_SIZE, &n, NULL), -EBADMSG);

        /* 0x80 label type: reserved */
        body[0] = 0x81;
        len = message(msg, body, 4);
        ck_assert_int_eq(name_at(msg, len, DNS_HEADER_SIZE, &n, NULL), -EBADMSG);

        /* a label whose bytes run past the end by one */
        body[0] = 3;
        memcpy(body + 1, "ab", 2);
        len = message(msg, body, 3);
        ck_assert_int_eq(name_at(msg, len, DNS_HEADER_SIZE, &n, NULL), -EBADMSG);
        /* ... and with exactly its bytes but no root label after it */
        memcpy(body + 1, "abc", 3);
        len = message(msg, body, 4);
        ck_assert_int_eq(name_at(msg, len, DNS_HEADER_SIZE, &n, NULL), -EBADMSG);
        body[4] = 0;
        len = message(msg, body, 5);
        ck_assert_int_eq(name_at(msg, len, DNS_HEADER_SIZE, &n, &end), 0);
        ck_assert_uint_eq(end, len);

        /* the root alone */
        body[0] = 0;
        len = message(msg, body, 1);
        ck_assert_int_eq(name_at(msg, len, DNS_HEADER_SIZE, &n, &end), 0);
        ck_assert_uint_eq(n.len, 1);
        ck_assert_uint_eq(n.labels, 0);
        ck_assert_uint_eq(end, len);

        /* nothing at all where a name should be */
        len = message(msg, body, 0);
        ck_assert_int_eq(name_at(msg, len, DNS_HEADER_SIZE, &n, NULL), -EBADMSG);
}
END_TEST

/* Three 63-byte labels and one of `last` bytes: 192 + 1 + last + 1 bytes. */
static size_t long_name(uint8_t *p, size_t last) {
        size_t n = 0;
        for (int i = 0; i < 3; i++) {
                p[n++] = 63;
                memset(p + n, 'a' + i, 63);
                n += 63;
        }
        p[n++] = (uint8_t) last;
        memset(p + n, 'z', last);
        n += last;
        p[n++] = 0;
        return n;
}

START_TEST(test_name_length) {
        uint8_t msg[600], body[300];
        DnsName n;
        size_t len, end;

        len = message(msg, body, long_name(body, 61));
        ck_assert_uint_eq(len - DNS_HEADER_SIZE, 255);
        ck_assert_int_eq(name_at(msg, len, DNS_HEADER_SIZE, &n, &end), 0);
        ck_assert_uint_eq(n.len, 255);
        ck_assert_uint_eq(n.labels, 4);
        ck_assert_uint_eq(end, len);

        len = message(msg, body, long_name(body, 62));
        ck_assert_uint_eq(len - DNS_HEADER_SIZE, 256);
        ck_assert_int_eq(name_at(msg, len, DNS_HEADER_SIZE, &n, NULL), -EBADMSG);

        /* 256 bytes reached through a pointer: the cap counts the whole
         * name, not the bytes in place. Suffix "b.<61 z>" at 12, then three
         * 63-byte labels and a pointer to it: 192 + 1 + 2 + 62 + 1 = 258. */
        size_t o = 0;
        body[o++] = 61;
        memset(body + o, 'z', 61);
        o += 61;
        body[o++] = 0;
        size_t start = o;
        for (int i = 0; i < 3; i++) {
                body[o++] = 63;
                memset(body + o, 'a', 63);
                o += 63;
        }
        body[o++] = 1;
        body[o++] = 'b';
        body[o++] = 0xc0;
        body[o++] = DNS_HEADER_SIZE;
        len = message(msg, body, o);
        ck_assert_int_eq(name_at(msg, len, DNS_HEADER_SIZE + start, &n, NULL), -EBADMSG);
        /* one label fewer fits */
        body[start + 64 * 2] = 0xc0;
        body[start + 64 * 2 + 1] = DNS_HEADER_SIZE;
        len = message(msg, body, o);
        ck_assert_int_eq(name_at(msg, len, DNS_HEADER_SIZE + start, &n, &end), 0);
        ck_assert_uint_eq(n.len, 128 + 63);
        ck_assert_uint_eq(end, DNS_HEADER_SIZE + start + 130);
}
END_TEST

START_TEST(test_name_compression) {
        uint8_t msg[600], body[300];
        DnsName n, want;
        size_t len, end;

        /* 12: "example.test"  26: "www" -> 12  32: pointer -> 26 */
        const uint8_t base[] = { 7, 'e', 'x', 'a', 'm', 'p', 'l', 'e', 4, 't', 'e', 's', 't', 0,
                                 3, 'w', 'w', 'w', 0xc0, 12, 0xc0, 26 };
        len = message(msg, base, sizeof base);
        ck_assert_int_eq(name_at(msg, len, 26, &n, &end), 0);
        ck_assert_int_eq(dns_name_from_text("www.example.test", &want), 0);
        ck_assert(dns_name_equal(&n, &want));
        /* the cursor stops after the first pointer, in place */
        ck_assert_uint_eq(end, 32);
        ck_assert_int_eq(name_at(msg, len, 32, &n, &end), 0);
        ck_assert(dns_name_equal(&n, &want));
        ck_assert_uint_eq(end, 34);

        /* a pointer to itself */
        const uint8_t self[] = { 0xc0, 12 };
        len = message(msg, self, sizeof self);
        ck_assert_int_eq(name_at(msg, len, 12, &n, NULL), -EBADMSG);

        /* a label, then a pointer back to that label: a loop */
        const uint8_t loop[] = { 1, 'a', 0xc0, 12 };
        len = message(msg, loop, sizeof loop);
        ck_assert_int_eq(name_at(msg, len, 12, &n, NULL), -EBADMSG);

        /* two pointers at each other: the second one is forward */
        const uint8_t pair[] = { 0, 0xc0, 15, 0xc0, 13 };
        len = message(msg, pair, sizeof pair);
        ck_assert_int_eq(name_at(msg, len, 13, &n, NULL), -EBADMSG);
        ck_assert_int_eq(name_at(msg, len, 15, &n, NULL), -EBADMSG);

        /* forward, even to a valid name */
        const uint8_t fwd[] = { 0xc0, 14, 0 };
        len = message(msg, fwd, sizeof fwd);
        ck_assert_int_eq(name_at(msg, len, 12, &n, NULL), -EBADMSG);

        /* backwards, but to a name whose labels run on past the pointer:
         * a name at 12 whose one label covers a pointer at 16 to 12 */
        const uint8_t over[] = { 10, 'a', 'b', 'c', 0xc0, 12, 'd', 'e', 'f', 'g', 'h', 0 };
        len = message(msg, over, sizeof over);
        ck_assert_int_eq(name_at(msg, len, 12, &n, &end), 0);
        ck_assert_uint_eq(end, len);
        ck_assert_int_eq(name_at(msg, len, 16, &n, NULL), -EBADMSG);

        /* into the header */
        const uint8_t hdr[] = { 0xc0, 11 };
        len = message(msg, hdr, sizeof hdr);
        ck_assert_int_eq(name_at(msg, len, 12, &n, NULL), -EBADMSG);

        /* the pointer's second byte missing: the last byte of the message */
        const uint8_t cut[] = { 0, 0xc0 };
        len = message(msg, cut, sizeof cut);
        ck_assert_int_eq(name_at(msg, len, 13, &n, NULL), -EBADMSG);

        /* beyond the message */
        const uint8_t out[] = { 0, 0xff, 0xff };
        len = message(msg, out, sizeof out);
        ck_assert_int_eq(name_at(msg, len, 13, &n, NULL), -EBADMSG);

        /* not allowed at all where the caller says so */
        DnsCursor c;
        len = message(msg, base, sizeof base);
        dns_cursor_init(&c, msg, len);
        dns_cursor_seek(&c, 26);
        ck_assert_int_eq(dns_cursor_name_uncompressed(&c, &n), -EBADMSG);
        dns_cursor_init(&c, msg, len);
        dns_cursor_seek(&c, 12);
        ck_assert_int_eq(dns_cursor_name_uncompressed(&c, &n), 0);
        ck_assert_uint_eq(c.pos, 26);

        /* A chain of pointers, each to the one before: DNS_POINTERS_MAX
         * jumps are followed, one more is refused. */
        size_t o = 0;
        body[o++] = 0; /* the root at 12 */
        body[o++] = 0xc0;
        body[o++] = 12; /* 13 -> 12 */
        for (unsigned i = 1; i <= DNS_POINTERS_MAX; i++) {
                size_t prev = DNS_HEADER_SIZE + o - 2;
                body[o++] = 0xc0;
                body[o++] = (uint8_t) prev;
        }
        len = message(msg, body, o);
        /* the pointer at 13 + 2k makes k + 1 jumps */
        ck_assert_int_eq(name_at(msg, len, 13 + 2 * (DNS_POINTERS_MAX - 1), &n, NULL), 0);
        ck_assert_uint_eq(n.len, 1);
        ck_assert_int_eq(name_at(msg, len, 13 + 2 * DNS_POINTERS_MAX, &n, NULL), -EBADMSG);
}
END_TEST

START_TEST(test_name_text) {
        DnsName a, b, zone;
        char text[DNS_NAME_TEXT_MAX];

        ck_assert_int_eq(dns_name_from_text("Win-A.YourOrg.zt.net.", &a), 0);
        ck_assert_int_eq(dns_name_from_text("win-a.yourorg.ZT.NET", &b), 0);
        ck_assert_uint_eq(a.labels, 4);
        ck_assert(dns_name_equal(&a, &b));
        ck_assert_int_eq(dns_name_to_text(&a, text, sizeof text), (int) strlen("Win-A.YourOrg.zt.net"));
        ck_assert_str_eq(text, "Win-A.YourOrg.zt.net");
        dns_name_lower(&a);
        ck_assert_int_ge(dns_name_to_text(&a, text, sizeof text), 0);
        ck_assert_str_eq(text, "win-a.yourorg.zt.net");

        ck_assert_int_eq(dns_name_from_text("yourorg.zt.net", &zone), 0);
        ck_assert(dns_name_endswith(&a, &zone));
        ck_assert(dns_name_endswith(&zone, &zone));
        ck_assert(!dns_name_endswith(&zone, &a));
        ck_assert_int_eq(dns_name_from_text("rorg.zt.net", &zone), 0);
        ck_assert(!dns_name_endswith(&a, &zone)); /* labels, not bytes */
        ck_assert_int_eq(dns_name_from_text(".", &zone), 0);
        ck_assert(dns_name_endswith(&a, &zone));
        ck_assert_uint_eq(dns_name_suffix_offset(&a, 2), 1 + 5 + 1 + 7);

        /* escapes both ways */
        ck_assert_int_eq(dns_name_from_text("a\\.b.c\\\\d.\\255\\000", &a), 0);
        ck_assert_uint_eq(a.labels, 3);
        ck_assert_int_ge(dns_name_to_text(&a, text, sizeof text), 0);
        ck_assert_str_eq(text, "a\\.b.c\\\\d.\\255\\000");
        ck_assert_int_eq(dns_name_from_text(text, &b), 0);
        ck_assert(dns_name_equal(&a, &b));
        /* a name whose every byte is escaped fills the text maximum */
        DnsName worst = { .len = 255, .labels = 4 };
        size_t o = 0;
        for (int i = 0; i < 4; i++) {
                unsigned l = i < 3 ? 63 : 61;
                worst.wire[o++] = (uint8_t) l;
                memset(worst.wire + o, 0xff, l);
                o += l;
        }
        worst.wire[o] = 0;
        int r = dns_name_to_text(&worst, text, sizeof text);
        ck_assert_int_eq(r, 250 * 4 + 3);
        ck_assert_int_eq(dns_name_to_text(&worst, text, (size_t) r), -ENOBUFS);
        ck_assert_int_eq(dns_name_to_text(&worst, text, (size_t) r + 1), r);

        /* the root; bad names */
        ck_assert_int_eq(dns_name_from_text(".", &a), 0);
        ck_assert_uint_eq(a.len, 1);
        ck_assert_int_eq(dns_name_to_text(&a, text, sizeof text), 1);
        ck_assert_str_eq(text, ".");
        ck_assert_int_eq(dns_name_from_text("", &a), -EINVAL);
        ck_assert_int_eq(dns_name_from_text("a..b", &a), -EINVAL);
        ck_assert_int_eq(dns_name_from_text(".a", &a), -EINVAL);
        ck_assert_int_eq(dns_name_from_text("a..", &a), -EINVAL);
        ck_assert_int_eq(dns_name_from_text("a\\", &a), -EINVAL);
        ck_assert_int_eq(dns_name_from_text("a\\25", &a), -EINVAL);
        ck_assert_int_eq(dns_name_from_text("a\\256", &a), -EINVAL);

        /* 63 and 64 characters; 253 and 254 characters (255 and 256 bytes) */
        char big[300];
        memset(big, 'x', 63);
        big[63] = '\0';
        ck_assert_int_eq(dns_name_from_text(big, &a), 0);
        memset(big, 'x', 64);
        big[64] = '\0';
        ck_assert_int_eq(dns_name_from_text(big, &a), -EINVAL);
        memset(big, 'x', 253);
        for (int i = 63; i < 253; i += 64)
                big[i] = '.';
        big[253] = '\0';
        ck_assert_int_eq(dns_name_from_text(big, &a), 0);
        ck_assert_uint_eq(a.len, 255);
        big[253] = 'x';
        big[254] = '\0';
        ck_assert_int_eq(dns_name_from_text(big, &a), -EINVAL);
}
END_TEST

/* ---- messages ---- */

START_TEST(test_corpus) {
        DIR *d = opendir(CORPUS);
        struct dirent *de;
        unsigned n_ok = 0, n_bad = 0;

        ck_assert_msg(d, "cannot open " CORPUS " (run from the top of the tree)");
        while ((de = readdir(d))) {
                size_t l = strlen(de->d_name);
                if (l < 5 || strcmp(de->d_name + l - 4, ".hex") != 0)
                        continue;
                char path[512];
                uint8_t buf[DNS_MESSAGE_MAX];
                int parse;
                DnsMessage m;
                snprintf(path, sizeof path, CORPUS "/%s", de->d_name);
                size_t len = load_hex(path, buf, sizeof buf, &parse);
                ck_assert_msg(parse >= 0, "%s: no '# parse:' line", path);
                int r = dns_message_parse(buf, len, &m);
                ck_assert_msg(r == (parse ? 0 : -EBADMSG), "%s: parse returned %d", path, r);
                if (parse)
                        n_ok++;
                else
                        n_bad++;

                /* Every prefix of a good message is bad (its counts promise
                 * more), and one byte more is too. */
                if (parse) {
                        for (size_t k = 0; k < len; k++)
                                ck_assert_msg(dns_message_parse(buf, k, &m) == -EBADMSG, "%s: prefix %zu parsed",
                                              path, k);
                        buf[len] = 0;
                        ck_assert_int_eq(dns_message_parse(buf, len + 1, &m), -EBADMSG);
                }
        }
        closedir(d);
        ck_assert_uint_ge(n_ok, 20);
        ck_assert_uint_ge(n_bad, 20);
}
END_TEST

START_TEST(test_parse_captured) {
        uint8_t buf[4096];
        size_t len;
        DnsMessage m;
        DnsName want;
        DnsRRIter it;
        DnsRR rr;
        uint32_t minimum;

        /* dig's query: EDNS 1232, RD + AD, a cookie */
        len = corpus("query-dig-a-edns-cookie", buf, sizeof buf);
        ck_assert_int_eq(dns_message_parse(buf, len, &m), 0);
        ck_assert(m.has_question);
        ck_assert_int_eq(dns_name_from_text("www.example.test", &want), 0);
        ck_assert(dns_name_equal(&m.qname, &want));
        ck_assert_uint_eq(m.qtype, DNS_TYPE_A);
        ck_assert_uint_eq(m.qclass, DNS_CLASS_IN);
        ck_assert(m.flags & DNS_FLAG_RD);
        ck_assert(m.edns.present);
        ck_assert_uint_eq(m.edns.udp_size, 1232);
        ck_assert_uint_eq(m.edns.version, 0);
        ck_assert(!(m.edns.flags & DNS_EDNS_FLAG_DO));
        ck_assert_uint_eq(m.edns.end, len);
        ck_assert_uint_eq(dns_wire_udp_limit(&m), 1232);

        /* dig keeps the case it was given */
        len = corpus("query-dig-mixed-case-nsid", buf, sizeof buf);
        ck_assert_int_eq(dns_message_parse(buf, len, &m), 0);
        ck_assert(dns_name_equal(&m.qname, &want));
        ck_assert_int_eq(memcmp(m.qname.wire, "\3WWW\7Example\4TEST", 18), 0);
        ck_assert_uint_eq(m.qtype, DNS_TYPE_AAAA);
        ck_assert_uint_eq(dns_wire_udp_limit(&m), 1232);
        /* kdig asks for 4096 bytes: clamped to ours */
        len = corpus("query-kdig-nsid", buf, sizeof buf);
        ck_assert_int_eq(dns_message_parse(buf, len, &m), 0);
        ck_assert_uint_eq(m.edns.udp_size, 4096);
        ck_assert_uint_eq(dns_wire_udp_limit(&m), 1232);

        len = corpus("query-dig-aaaa-noedns", buf, sizeof buf);
        ck_assert_int_eq(dns_message_parse(buf, len, &m), 0);
        ck_assert(!m.edns.present);
        ck_assert_int_eq(m.edns.ede_code, -1);
        ck_assert_uint_eq(dns_wire_udp_limit(&m), 512);

        len = corpus("query-dig-ptr-do", buf, sizeof buf);
        ck_assert_int_eq(dns_message_parse(buf, len, &m), 0);
        ck_assert(m.edns.flags & DNS_EDNS_FLAG_DO);
        ck_assert_uint_eq(m.qtype, DNS_TYPE_PTR);

        /* two A records owned by pointers, in order */
        len = corpus("response-a-two-records", buf, sizeof buf);
        ck_assert_int_eq(dns_message_parse(buf, len, &m), 0);
        ck_assert_uint_eq(m.ancount, 2);
        ck_assert_uint_eq(m.rcode, DNS_RCODE_NOERROR);
        dns_rr_iter_init(&it, buf, len, &m);
        ck_assert_int_eq(dns_rr_next(&it, &rr), 1);
        ck_assert_uint_eq(rr.section, DNS_SECTION_ANSWER);
        ck_assert_uint_eq(rr.type, DNS_TYPE_A);
        ck_assert_uint_eq(rr.ttl, 300);
        ck_assert_uint_eq(rr.rdlength, 4);
        ck_assert_uint_eq(buf[rr.rdata_off], 192);
        ck_assert_uint_eq(get16(buf + rr.ttl_off + 2), 300);
        unsigned last = buf[rr.rdata_off + 3];
        ck_assert_int_eq(dns_rr_next(&it, &rr), 1);
        ck_assert_uint_eq(buf[rr.rdata_off + 3] + last, 1 + 2); /* 192.0.2.1 and .2, either order */
        ck_assert_int_eq(dns_rr_next(&it, &rr), 1);
        ck_assert_uint_eq(rr.type, DNS_TYPE_OPT);
        ck_assert_uint_eq(rr.section, DNS_SECTION_ADDITIONAL);
        ck_assert_int_eq(dns_rr_next(&it, &rr), 0);

        /* NXDOMAIN with a compressed SOA: negative TTL material */
        len = corpus("response-nxdomain-soa", buf, sizeof buf);
        ck_assert_int_eq(dns_message_parse(buf, len, &m), 0);
        ck_assert_uint_eq(m.rcode, DNS_RCODE_NXDOMAIN);
        dns_rr_iter_init(&it, buf, len, &m);
        ck_assert_int_eq(dns_rr_next(&it, &rr), 1);
        ck_assert_uint_eq(rr.section, DNS_SECTION_AUTHORITY);
        ck_assert_uint_eq(rr.type, DNS_TYPE_SOA);
        ck_assert_int_eq(dns_soa_minimum(buf, len, &rr, &minimum), 0);
        ck_assert_uint_eq(minimum, 300);

        len = corpus("response-nxdomain-handmade", buf, sizeof buf);
        ck_assert_int_eq(dns_message_parse(buf, len, &m), 0);
        dns_rr_iter_init(&it, buf, len, &m);
        ck_assert_int_eq(dns_rr_next(&it, &rr), 1);
        ck_assert_uint_eq(rr.ttl, 600);
        ck_assert_int_eq(dns_soa_minimum(buf, len, &rr, &minimum), 0);
        ck_assert_uint_eq(minimum, 300);
        /* dns_soa_minimum() only takes SOA records */
        rr.type = DNS_TYPE_A;
        ck_assert_int_eq(dns_soa_minimum(buf, len, &rr, &minimum), -EBADMSG);

        /* 40 TXT records over TCP */
        len = corpus("response-large-txt-tcp", buf, sizeof buf);
        ck_assert_uint_eq(len, 2805);
        ck_assert_int_eq(dns_message_parse(buf, len, &m), 0);
        ck_assert_uint_eq(m.ancount, 40);

        len = corpus("response-tc-udp", buf, sizeof buf);
        ck_assert_int_eq(dns_message_parse(buf, len, &m), 0);
        ck_assert(m.flags & DNS_FLAG_TC);

        len = corpus("response-servfail-ede", buf, sizeof buf);
        ck_assert_int_eq(dns_message_parse(buf, len, &m), 0);
        ck_assert_uint_eq(m.rcode, DNS_RCODE_SERVFAIL);
        ck_assert_int_eq(m.edns.ede_code, DNS_EDE_NO_REACHABLE_AUTHORITY);

        len = corpus("response-badvers", buf, sizeof buf);
        ck_assert_int_eq(dns_message_parse(buf, len, &m), 0);
        ck_assert_uint_eq(m.rcode, DNS_RCODE_BADVERS);

        /* two questions: parses, only the first kept, has_question false */
        len = corpus("query-qdcount-2", buf, sizeof buf);
        ck_assert_int_eq(dns_message_parse(buf, len, &m), 0);
        ck_assert_uint_eq(m.qdcount, 2);
        ck_assert(!m.has_question);

        /* a failed parse leaves *ret alone */
        len = corpus("bad-trailing-byte", buf, sizeof buf);
        memset(&m, 0x5a, sizeof m);
        ck_assert_int_eq(dns_message_parse(buf, len, &m), -EBADMSG);
        ck_assert_uint_eq(m.id, 0x5a5a);
}
END_TEST

START_TEST(test_question_span) {
        uint8_t buf[4096];
        size_t len, qoff = 99, qlen = 99;
        uint16_t id = 7;

        len = corpus("query-dig-a-edns-cookie", buf, sizeof buf);
        ck_assert_int_eq(dns_wire_question_span(buf, len, &id, &qoff, &qlen), 0);
        ck_assert_uint_eq(id, get16(buf));
        ck_assert_uint_eq(qoff, DNS_HEADER_SIZE);
        ck_assert_uint_eq(qlen, 18 + 4);

        /* a response: the same span */
        len = corpus("response-a-two-records", buf, sizeof buf);
        ck_assert_int_eq(dns_wire_question_span(buf, len, &id, &qoff, &qlen), 0);
        ck_assert_uint_eq(qlen, 22);

        /* exactly the question, nothing after it */
        len = corpus("query-minimal", buf, sizeof buf);
        ck_assert_int_eq(dns_wire_question_span(buf, len, &id, &qoff, &qlen), 0);
        ck_assert_uint_eq(qoff + qlen, len);
        ck_assert_uint_eq(id, 0x1234);
        /* one byte short */
        id = 7;
        qoff = qlen = 99;
        ck_assert_int_eq(dns_wire_question_span(buf, len - 1, &id, &qoff, &qlen), -EBADMSG);
        ck_assert_uint_eq(id, 7); /* not written on failure */
        ck_assert_uint_eq(qoff, 99);
        ck_assert_uint_eq(qlen, 99);

        const char *bad[] = { "query-qdcount-2", "query-qdcount-0", "bad-header-short", "bad-empty",
                              "bad-compressed-question-to-header", "bad-label-64", "bad-name-256" };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
                len = corpus(bad[i], buf, sizeof buf);
                ck_assert_msg(dns_wire_question_span(buf, len, &id, &qoff, &qlen) == -EBADMSG, "%s", bad[i]);
        }
        len = corpus("query-name-255", buf, sizeof buf);
        ck_assert_int_eq(dns_wire_question_span(buf, len, &id, &qoff, &qlen), 0);
        ck_assert_uint_eq(qlen, 259);
}
END_TEST

START_TEST(test_error_response) {
        uint8_t q[4096], out[4096];
        size_t qlen, len;
        DnsMessage m;

        /* NXDOMAIN + EDE 15 to an EDNS query */
        qlen = corpus("query-dig-a-edns-cookie", q, sizeof q);
        ck_assert_int_eq(dns_wire_error_response(q, qlen, DNS_RCODE_NXDOMAIN, DNS_EDE_BLOCKED, "Blocked", out,
                                                 sizeof out, &len),
                         0);
        ck_assert_int_eq(dns_message_parse(out, len, &m), 0);
        ck_assert_uint_eq(m.id, get16(q));
        ck_assert(m.flags & DNS_FLAG_QR);
        ck_assert(m.flags & DNS_FLAG_RD);
        ck_assert(m.flags & DNS_FLAG_RA);
        ck_assert(!(m.flags & DNS_FLAG_AA));
        ck_assert_uint_eq(m.rcode, DNS_RCODE_NXDOMAIN);
        ck_assert(m.has_question);
        ck_assert_int_eq(memcmp(out + DNS_HEADER_SIZE, q + DNS_HEADER_SIZE, 22), 0);
        ck_assert(m.edns.present);
        ck_assert_uint_eq(m.edns.udp_size, DNS_EDNS_UDP_SIZE);
        ck_assert_int_eq(m.edns.ede_code, DNS_EDE_BLOCKED);
        ck_assert_int_eq(memcmp(out + len - 7, "Blocked", 7), 0);
        ck_assert_uint_eq(m.ancount + m.nscount, 0);

        /* The DO bit mirrored; no text */
        qlen = corpus("query-dig-ptr-do", q, sizeof q);
        ck_assert_int_eq(dns_wire_error_response(q, qlen, DNS_RCODE_SERVFAIL, DNS_EDE_NETWORK_ERROR, NULL, out,
                                                 sizeof out, &len),
                         0);
        ck_assert_int_eq(dns_message_parse(out, len, &m), 0);
        ck_assert(m.edns.flags & DNS_EDNS_FLAG_DO);
        ck_assert_int_eq(m.edns.ede_code, DNS_EDE_NETWORK_ERROR);
        ck_assert_uint_eq(m.rcode, DNS_RCODE_SERVFAIL);

        /* no OPT in the query: none in the answer, so no EDE either */
        qlen = corpus("query-dig-aaaa-noedns", q, sizeof q);
        ck_assert_int_eq(dns_wire_error_response(q, qlen, DNS_RCODE_SERVFAIL, DNS_EDE_NETWORK_ERROR, "x", out,
                                                 sizeof out, &len),
                         0);
        ck_assert_int_eq(dns_message_parse(out, len, &m), 0);
        ck_assert(!m.edns.present);
        ck_assert_uint_eq(len, qlen);
        /* BADVERS cannot be said without OPT: SERVFAIL */
        ck_assert_int_eq(dns_wire_error_response(q, qlen, DNS_RCODE_BADVERS, -1, NULL, out, sizeof out, &len), 0);
        ck_assert_int_eq(dns_message_parse(out, len, &m), 0);
        ck_assert_uint_eq(m.rcode, DNS_RCODE_SERVFAIL);
        ck_assert_int_eq(dns_wire_error_response(q, qlen, DNS_RCODE_MAX + 1, -1, NULL, out, sizeof out, &len),
                         -EINVAL);

        /* ... with OPT: upper bits in OPT */
        qlen = corpus("query-edns-do", q, sizeof q);
        ck_assert_int_eq(dns_wire_error_response(q, qlen, DNS_RCODE_BADVERS, -1, NULL, out, sizeof out, &len), 0);
        ck_assert_int_eq(dns_message_parse(out, len, &m), 0);
        ck_assert_uint_eq(m.rcode, DNS_RCODE_BADVERS);
        ck_assert_int_eq(m.edns.ede_code, -1);

        /* FORMERR to garbage after a header: the header's ID, no question */
        qlen = corpus("bad-question-truncated", q, sizeof q);
        ck_assert_int_eq(dns_wire_error_response(q, qlen, DNS_RCODE_FORMERR, -1, NULL, out, sizeof out, &len), 0);
        ck_assert_uint_eq(len, DNS_HEADER_SIZE);
        ck_assert_int_eq(dns_message_parse(out, len, &m), 0);
        ck_assert_uint_eq(m.qdcount, 0);
        ck_assert_uint_eq(m.id, 0x1234);
        ck_assert_uint_eq(m.rcode, DNS_RCODE_FORMERR);
        /* ... a readable question with garbage after it: echoed */
        qlen = corpus("bad-trailing-byte", q, sizeof q);
        ck_assert_int_eq(dns_wire_error_response(q, qlen, DNS_RCODE_FORMERR, -1, NULL, out, sizeof out, &len), 0);
        ck_assert_int_eq(dns_message_parse(out, len, &m), 0);
        ck_assert(m.has_question);
        ck_assert_uint_eq(len, qlen - 1);
        /* ... two questions: none echoed */
        qlen = corpus("query-qdcount-2", q, sizeof q);
        ck_assert_int_eq(dns_wire_error_response(q, qlen, DNS_RCODE_FORMERR, -1, NULL, out, sizeof out, &len), 0);
        ck_assert_uint_eq(len, DNS_HEADER_SIZE);

        /* a header and no more: the least that is answered */
        qlen = corpus("bad-header-short", q, sizeof q);
        ck_assert_int_eq(dns_wire_error_response(q, qlen + 1, DNS_RCODE_FORMERR, -1, NULL, out, sizeof out, &len),
                         0);
        ck_assert_int_eq(dns_wire_error_response(q, qlen, DNS_RCODE_FORMERR, -1, NULL, out, sizeof out, &len),
                         -EBADMSG);
        /* never an answer to an answer */
        qlen = corpus("response-a-two-records", q, sizeof q);
        ck_assert_int_eq(dns_wire_error_response(q, qlen, DNS_RCODE_FORMERR, -1, NULL, out, sizeof out, &len),
                         -EBADMSG);

        /* the output buffer: exactly enough, one byte short */
        qlen = corpus("query-minimal", q, sizeof q);
        ck_assert_int_eq(dns_wire_error_response(q, qlen, DNS_RCODE_SERVFAIL, -1, NULL, out, qlen, &len), 0);
        ck_assert_uint_eq(len, qlen);
        ck_assert_int_eq(dns_wire_error_response(q, qlen, DNS_RCODE_SERVFAIL, -1, NULL, out, qlen - 1, &len),
                         -ENOBUFS);

        /* a long EDE text is cut at DNS_EDE_TEXT_MAX, not inside a UTF-8 character */
        char text[400];
        memset(text, 'a', sizeof text);
        text[DNS_EDE_TEXT_MAX - 1] = (char) 0xc3;
        text[DNS_EDE_TEXT_MAX] = (char) 0xa9;
        text[sizeof text - 1] = '\0';
        qlen = corpus("query-edns-do", q, sizeof q);
        ck_assert_int_eq(dns_wire_error_response(q, qlen, DNS_RCODE_SERVFAIL, DNS_EDE_OTHER, text, out, sizeof out,
                                                 &len),
                         0);
        ck_assert_int_eq(dns_message_parse(out, len, &m), 0);
        ck_assert_uint_eq(len - m.edns.off, DNS_OPT_SIZE + 4 + 2 + DNS_EDE_TEXT_MAX - 1);
}
END_TEST

START_TEST(test_adapt_answer) {
        uint8_t q[4096], a[4096], out[4096];
        size_t qlen, alen, len;
        DnsMessage qm, am, m;

        /* dig asked WWW.Example.TEST AAAA with EDNS; the upstream answer
         * (to another AAAA query, without EDNS) gets dig's ID, case and an OPT. */
        qlen = corpus("query-dig-mixed-case-nsid", q, sizeof q);
        ck_assert_int_eq(dns_message_parse(q, qlen, &qm), 0);
        alen = corpus("response-aaaa-noedns", a, sizeof a);
        ck_assert_int_eq(dns_message_parse(a, alen, &am), 0);
        ck_assert_int_eq(dns_wire_adapt_answer(q, qlen, &qm, a, alen, &am, 1232, -1, NULL, out, sizeof out, &len),
                         0);
        ck_assert_int_eq(dns_message_parse(out, len, &m), 0);
        ck_assert_uint_eq(m.id, qm.id);
        ck_assert_int_eq(memcmp(out + DNS_HEADER_SIZE, "\3WWW\7Example\4TEST", 18), 0);
        ck_assert_uint_eq(m.ancount, 1);
        ck_assert(m.edns.present);
        ck_assert_uint_eq(m.edns.udp_size, DNS_EDNS_UDP_SIZE);
        ck_assert_uint_eq(len, alen + DNS_OPT_SIZE);
        ck_assert(!(m.flags & DNS_FLAG_TC));
        /* the AAAA record's data came through */
        ck_assert_int_eq(memcmp(out + len - DNS_OPT_SIZE - 16, a + alen - 16, 16), 0);

        /* A client without EDNS gets no OPT even when the answer had one;
         * the answer's cookie is not passed on. */
        qlen = corpus("query-minimal", q, sizeof q);
        ck_assert_int_eq(dns_message_parse(q, qlen, &qm), 0);
        alen = corpus("response-a-two-records", a, sizeof a);
        ck_assert_int_eq(dns_message_parse(a, alen, &am), 0);
        ck_assert_int_eq(dns_wire_adapt_answer(q, qlen, &qm, a, alen, &am, 512, -1, NULL, out, sizeof out, &len),
                         0);
        ck_assert_int_eq(dns_message_parse(out, len, &m), 0);
        ck_assert(!m.edns.present);
        ck_assert_uint_eq(m.arcount, 0);
        ck_assert_uint_eq(m.ancount, 2);

        /* The EDE of the answer is kept, ours added (stale answers). */
        qlen = corpus("query-dig-a-edns-cookie", q, sizeof q);
        ck_assert_int_eq(dns_message_parse(q, qlen, &qm), 0);
        alen = corpus("response-servfail-ede", a, sizeof a);
        ck_assert_int_eq(dns_message_parse(a, alen, &am), 0);
        ck_assert_int_eq(dns_wire_adapt_answer(q, qlen, &qm, a, alen, &am, 1232, DNS_EDE_STALE_ANSWER,
                                               "Stale Answer", out, sizeof out, &len),
                         0);
        ck_assert_int_eq(dns_message_parse(out, len, &m), 0);
        ck_assert_uint_eq(m.rcode, DNS_RCODE_SERVFAIL);
        ck_assert_int_eq(m.edns.ede_code, DNS_EDE_NO_REACHABLE_AUTHORITY);
        ck_assert_int_eq(memcmp(out + len - 12, "Stale Answer", 12), 0);

        /* 2805 bytes of TXT for a 1232-byte client: TC, question, OPT */
        qlen = corpus("query-dig-a-edns-cookie", q, sizeof q);
        memcpy(q + DNS_HEADER_SIZE, "\3big", 4); /* same length as "www" */
        q[DNS_HEADER_SIZE + 18 + 1] = DNS_TYPE_TXT;
        ck_assert_int_eq(dns_message_parse(q, qlen, &qm), 0);
        alen = corpus("response-large-txt-tcp", a, sizeof a);
        ck_assert_int_eq(dns_message_parse(a, alen, &am), 0);
        ck_assert_int_eq(dns_wire_adapt_answer(q, qlen, &qm, a, alen, &am, 1232, -1, NULL, out, sizeof out, &len),
                         0);
        ck_assert_uint_le(len, 1232);
        ck_assert_int_eq(dns_message_parse(out, len, &m), 0);
        ck_assert(m.flags & DNS_FLAG_TC);
        ck_assert_uint_eq(m.ancount, 0);
        ck_assert(m.edns.present);
        /* the same over TCP: all of it */
        ck_assert_int_eq(dns_wire_adapt_answer(q, qlen, &qm, a, alen, &am, DNS_MESSAGE_MAX, -1, NULL, out,
                                               sizeof out, &len),
                         0);
        ck_assert_int_eq(dns_message_parse(out, len, &m), 0);
        ck_assert(!(m.flags & DNS_FLAG_TC));
        ck_assert_uint_eq(m.ancount, 40);
        ck_assert_uint_eq(len, alen);
        /* an output buffer too small for all of it also truncates */
        ck_assert_int_eq(dns_wire_adapt_answer(q, qlen, &qm, a, alen, &am, DNS_MESSAGE_MAX, -1, NULL, out, 2000,
                                               &len),
                         0);
        ck_assert_int_eq(dns_message_parse(out, len, &m), 0);
        ck_assert(m.flags & DNS_FLAG_TC);

        /* a different question is refused: another name, another type */
        alen = corpus("response-aaaa-noedns", a, sizeof a);
        ck_assert_int_eq(dns_message_parse(a, alen, &am), 0);
        qlen = corpus("query-minimal", q, sizeof q);
        ck_assert_int_eq(dns_message_parse(q, qlen, &qm), 0);
        ck_assert_int_eq(dns_wire_adapt_answer(q, qlen, &qm, a, alen, &am, 1232, -1, NULL, out, sizeof out, &len),
                         -EBADMSG);
        alen = corpus("response-large-txt-tcp", a, sizeof a);
        ck_assert_int_eq(dns_message_parse(a, alen, &am), 0);
        qlen = corpus("query-dig-a-edns-cookie", q, sizeof q);
        ck_assert_int_eq(dns_message_parse(q, qlen, &qm), 0);
        ck_assert_int_eq(dns_wire_adapt_answer(q, qlen, &qm, a, alen, &am, 1232, -1, NULL, out, sizeof out, &len),
                         -EBADMSG);
}
END_TEST

START_TEST(test_builder) {
        uint8_t buf[64];
        DnsBuilder b;
        DnsMessage m;
        size_t len;

        dns_builder_init(&b, buf, sizeof buf);
        dns_builder_header(&b, 0xbeef, DNS_FLAG_QR | DNS_FLAG_AA, 1, 1, 0, 0);
        DnsName n;
        ck_assert_int_eq(dns_name_from_text("a.b", &n), 0);
        dns_builder_name(&b, &n);
        dns_builder_u16(&b, DNS_TYPE_A);
        dns_builder_u16(&b, DNS_CLASS_IN);
        size_t rd = dns_builder_rr_begin(&b, DNS_HEADER_SIZE, DNS_TYPE_A, DNS_CLASS_IN, 60);
        dns_builder_bytes(&b, "\x64\x40\x00\x01", 4);
        dns_builder_rr_end(&b, rd);
        ck_assert_int_eq(dns_builder_finish(&b, &len), 0);
        ck_assert_uint_eq(len, 12 + 5 + 4 + 2 + 10 + 4);
        ck_assert_int_eq(dns_message_parse(buf, len, &m), 0);
        ck_assert_uint_eq(m.id, 0xbeef);
        ck_assert(m.flags & DNS_FLAG_AA);

        /* Fill to the last byte, then one more: the error sticks and
         * nothing past the buffer is written. */
        uint8_t small[5] = { 0 };
        dns_builder_init(&b, small, 4);
        dns_builder_u32(&b, 0x01020304);
        ck_assert_int_eq(dns_builder_finish(&b, &len), 0);
        dns_builder_u8(&b, 9);
        ck_assert_int_eq(dns_builder_finish(&b, &len), -ENOBUFS);
        ck_assert_uint_eq(small[4], 0);
        memset(small, 0, sizeof small);
        dns_builder_init(&b, small, 4);
        dns_builder_u8(&b, 1);
        dns_builder_u32(&b, 0xffffffff);
        dns_builder_u8(&b, 2);
        ck_assert_int_eq(dns_builder_finish(&b, &len), -ENOBUFS);
        ck_assert_uint_eq(small[1], 0);
        ck_assert_uint_eq(small[4], 0);
}
END_TEST

static Suite *dns_wire_suite(void) {
        Suite *s = suite_create("dns-wire");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_cursor_boundaries);
        tcase_add_test(tc, test_name_labels);
        tcase_add_test(tc, test_name_length);
        tcase_add_test(tc, test_name_compression);
        tcase_add_test(tc, test_name_text);
        tcase_add_test(tc, test_corpus);
        tcase_add_test(tc, test_parse_captured);
        tcase_add_test(tc, test_question_span);
        tcase_add_test(tc, test_error_response);
        tcase_add_test(tc, test_adapt_answer);
        tcase_add_test(tc, test_builder);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(dns_wire_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
