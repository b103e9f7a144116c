/* SPDX-License-Identifier: MIT */
/*
 * The stub's tailnet answers against a store published with the real
 * writer: every answer kind (A, AAAA, PTR, ANY, NODATA, NXDOMAIN, the
 * domain itself, a store marked down, no store), names the text lookup
 * cannot take, reverse names at their boundaries. The listener itself,
 * with real clients, is tests/integration/test-stub.sh.
 */

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dns/stub-tailnet.h"

static char dir[] = "/tmp/test-stub-XXXXXX";
static char path[64];
static ShmWriter *writer;
static ShmReader *reader;

static void publish(bool up) {
        static struct in_addr v4[20];
        static struct in6_addr v6[1];
        ShmPeer peers[3] = {
                { .name = "Win-A", .ttl = 60, .online = true, .n_v4 = 1, .v4 = v4, .n_v6 = 1, .v6 = v6 },
                { .name = "Linux-C", .ttl = 30, .online = true, .n_v4 = 1, .v4 = v4 + 1 },
                { .name = "many", .ttl = 10, .online = true, .n_v4 = 20, .v4 = v4 + 0 },
        };
        for (int i = 0; i < 20; i++)
                v4[i].s_addr = htonl(0x64400001u + (uint32_t) i); /* 100.64.0.1 ... */
        inet_pton(AF_INET6, "fd7a:115c:a1e0::1", &v6[0]);
        ShmPrefix ranges[2] = { { .family = AF_INET, .prefixlen = 10 }, { .family = AF_INET6, .prefixlen = 48 } };
        inet_pton(AF_INET, "100.64.0.0", &ranges[0].addr.in);
        inet_pton(AF_INET6, "fd7a:115c:a1e0::", &ranges[1].addr.in6);
        ShmMap map = { .domain = "yourorg.zt.net", .n_ranges = 2, .ranges = ranges, .n_peers = 3, .peers = peers };
        ck_assert_int_eq(shm_writer_publish(writer, &map, up), 0);
}

static void setup(void) {
        ck_assert_ptr_nonnull(mkdtemp(dir));
        ck_assert_int_eq(chmod(dir, 0755), 0);
        snprintf(path, sizeof path, "%s/records", dir);
        ck_assert_int_eq(shm_writer_open(path, &writer), 0);
        publish(true);
        ck_assert_int_eq(shm_reader_new(path, &reader), 0);
}

static void teardown(void) {
        char cmd[128];
        reader = shm_reader_free(reader);
        writer = shm_writer_close(writer);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
        strcpy(dir, "/tmp/test-stub-XXXXXX");
}

static uint8_t qbuf[512], abuf[4096];

/* Asks; on STUB_TAILNET_ANSWER parses the answer into *ret. */
static StubTailnet ask(const char *name, uint16_t type, DnsMessage *ret) {
        DnsBuilder b;
        DnsName n;
        DnsMessage q;
        size_t len;

        ck_assert_int_eq(dns_name_from_text(name, &n), 0);
        dns_builder_init(&b, qbuf, sizeof qbuf);
        dns_builder_header(&b, 0x5150, DNS_FLAG_RD, 1, 0, 0, 0);
        dns_builder_name(&b, &n);
        dns_builder_u16(&b, type);
        dns_builder_u16(&b, DNS_CLASS_IN);
        ck_assert_int_eq(dns_builder_finish(&b, &len), 0);
        ck_assert_int_eq(dns_message_parse(qbuf, len, &q), 0);
        StubTailnet t = stub_tailnet_answer(reader, qbuf, &q, abuf, sizeof abuf, &len);
        if (t == STUB_TAILNET_ANSWER) {
                ck_assert_int_eq(dns_message_parse(abuf, len, ret), 0);
                ck_assert_uint_eq(ret->id, 0x5150);
                ck_assert(ret->flags & DNS_FLAG_AA);
                ck_assert(dns_name_equal(&ret->qname, &n));
                /* the question as asked, case and all */
                ck_assert_int_eq(memcmp(abuf + DNS_HEADER_SIZE, qbuf + DNS_HEADER_SIZE, n.len), 0);
        }
        return t;
}

/* The RDATA of the i-th answer record. */
static const uint8_t *rdata(const DnsMessage *m, unsigned i, uint16_t *ret_type, uint32_t *ret_ttl) {
        DnsRRIter it;
        DnsRR rr;
        dns_rr_iter_init(&it, abuf, sizeof abuf, m);
        for (unsigned k = 0; k <= i; k++)
                ck_assert_int_eq(dns_rr_next(&it, &rr), 1);
        *ret_type = rr.type;
        *ret_ttl = rr.ttl;
        return abuf + rr.rdata_off;
}

START_TEST(test_answers) {
        DnsMessage m;
        uint16_t type;
        uint32_t ttl;

        ck_assert_int_eq(ask("win-a.yourorg.zt.net", DNS_TYPE_A, &m), STUB_TAILNET_ANSWER);
        ck_assert_uint_eq(m.rcode, DNS_RCODE_NOERROR);
        ck_assert_uint_eq(m.ancount, 1);
        ck_assert_int_eq(memcmp(rdata(&m, 0, &type, &ttl), "\x64\x40\x00\x01", 4), 0);
        ck_assert_uint_eq(type, DNS_TYPE_A);
        ck_assert_uint_eq(ttl, 60);

        ck_assert_int_eq(ask("WIN-A.YourOrg.ZT.NET.", DNS_TYPE_AAAA, &m), STUB_TAILNET_ANSWER);
        ck_assert_uint_eq(m.ancount, 1);
        ck_assert_uint_eq(rdata(&m, 0, &type, &ttl)[15], 1);
        ck_assert_uint_eq(type, DNS_TYPE_AAAA);

        /* the short name */
        ck_assert_int_eq(ask("linux-c", DNS_TYPE_A, &m), STUB_TAILNET_ANSWER);
        ck_assert_uint_eq(m.ancount, 1);
        rdata(&m, 0, &type, &ttl);
        ck_assert_uint_eq(ttl, 30);

        /* ANY: A and AAAA */
        ck_assert_int_eq(ask("win-a.yourorg.zt.net", DNS_TYPE_ANY, &m), STUB_TAILNET_ANSWER);
        ck_assert_uint_eq(m.ancount, 2);

        /* no address of the type, other types: NOERROR, nothing */
        ck_assert_int_eq(ask("linux-c.yourorg.zt.net", DNS_TYPE_AAAA, &m), STUB_TAILNET_ANSWER);
        ck_assert_uint_eq(m.rcode, DNS_RCODE_NOERROR);
        ck_assert_uint_eq(m.ancount + m.nscount + m.arcount, 0);
        ck_assert_int_eq(ask("win-a.yourorg.zt.net", DNS_TYPE_MX, &m), STUB_TAILNET_ANSWER);
        ck_assert_uint_eq(m.ancount, 0);
        ck_assert_int_eq(ask("win-a.yourorg.zt.net", DNS_TYPE_PTR, &m), STUB_TAILNET_ANSWER);
        ck_assert_uint_eq(m.ancount, 0);

        /* twenty addresses */
        ck_assert_int_eq(ask("many.yourorg.zt.net", DNS_TYPE_A, &m), STUB_TAILNET_ANSWER);
        ck_assert_uint_eq(m.ancount, 20);

        /* unknown, deeper, the domain itself */
        ck_assert_int_eq(ask("nobody.yourorg.zt.net", DNS_TYPE_A, &m), STUB_TAILNET_ANSWER);
        ck_assert_uint_eq(m.rcode, DNS_RCODE_NXDOMAIN);
        ck_assert_uint_eq(m.ancount, 0);
        ck_assert_int_eq(ask("x.win-a.yourorg.zt.net", DNS_TYPE_A, &m), STUB_TAILNET_ANSWER);
        ck_assert_uint_eq(m.rcode, DNS_RCODE_NXDOMAIN);
        ck_assert_int_eq(ask("yourorg.zt.net", DNS_TYPE_SOA, &m), STUB_TAILNET_ANSWER);
        ck_assert_uint_eq(m.rcode, DNS_RCODE_NOERROR);
        ck_assert_uint_eq(m.ancount, 0);
        /* names the text lookup cannot take are still the tailnet's */
        ck_assert_int_eq(ask("we\\.ird.yourorg.zt.net", DNS_TYPE_A, &m), STUB_TAILNET_ANSWER);
        ck_assert_uint_eq(m.rcode, DNS_RCODE_NXDOMAIN);
        ck_assert_int_eq(ask("bin\\000ary.yourorg.zt.net", DNS_TYPE_A, &m), STUB_TAILNET_ANSWER);
        ck_assert_uint_eq(m.rcode, DNS_RCODE_NXDOMAIN);

        /* not ours */
        ck_assert_int_eq(ask("www.example.com", DNS_TYPE_A, &m), STUB_TAILNET_NO);
        ck_assert_int_eq(ask("notyourorg.zt.net", DNS_TYPE_A, &m), STUB_TAILNET_NO);
        ck_assert_int_eq(ask("unknown-single-label", DNS_TYPE_A, &m), STUB_TAILNET_NO);
        ck_assert_int_eq(ask("1.1.168.192.in-addr.arpa", DNS_TYPE_PTR, &m), STUB_TAILNET_NO);
}
END_TEST

START_TEST(test_reverse) {
        DnsMessage m;
        uint16_t type;
        uint32_t ttl;
        DnsName want, got;
        DnsCursor c;

        ck_assert_int_eq(ask("1.0.64.100.in-addr.arpa", DNS_TYPE_PTR, &m), STUB_TAILNET_ANSWER);
        ck_assert_uint_eq(m.ancount, 1);
        const uint8_t *p = rdata(&m, 0, &type, &ttl);
        ck_assert_uint_eq(type, DNS_TYPE_PTR);
        dns_cursor_init(&c, abuf, sizeof abuf);
        dns_cursor_seek(&c, (size_t) (p - abuf));
        ck_assert_int_eq(dns_cursor_name(&c, &got), 0);
        ck_assert_int_eq(dns_name_from_text("Win-A.yourorg.zt.net", &want), 0);
        ck_assert(dns_name_equal(&got, &want));
        ck_assert_int_eq(memcmp(got.wire, "\5Win-A", 6), 0); /* the peer's own case */

        /* upper case, as a 0x20 resolver sends it */
        ck_assert_int_eq(ask("1.0.64.100.IN-ADDR.ARPA", DNS_TYPE_PTR, &m), STUB_TAILNET_ANSWER);
        ck_assert_uint_eq(m.ancount, 1);
        ck_assert_int_eq(ask("1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.E.1.A.C.5.1.1.A.7.D.F.IP6.ARPA", DNS_TYPE_PTR, &m),
                         STUB_TAILNET_ANSWER);
        ck_assert_uint_eq(m.ancount, 1);
        /* in the range, nobody's */
        ck_assert_int_eq(ask("99.9.64.100.in-addr.arpa", DNS_TYPE_PTR, &m), STUB_TAILNET_ANSWER);
        ck_assert_uint_eq(m.rcode, DNS_RCODE_NXDOMAIN);
        /* a reverse name, another type: NODATA */
        ck_assert_int_eq(ask("1.0.64.100.in-addr.arpa", DNS_TYPE_A, &m), STUB_TAILNET_ANSWER);
        ck_assert_uint_eq(m.rcode, DNS_RCODE_NOERROR);
        ck_assert_uint_eq(m.ancount, 0);
}
END_TEST

static int rev(const char *text, int *family, uint8_t addr[16]) {
        DnsName n;
        ck_assert_int_eq(dns_name_from_text(text, &n), 0);
        return stub_reverse_address(&n, family, addr);
}

START_TEST(test_reverse_names) {
        uint8_t a[16];
        int f = 0;

        ck_assert_int_eq(rev("4.3.2.1.in-addr.arpa", &f, a), 0);
        ck_assert_int_eq(f, AF_INET);
        ck_assert_int_eq(memcmp(a, "\1\2\3\4", 4), 0);
        ck_assert_int_eq(rev("255.0.0.0.in-addr.arpa.", &f, a), 0);
        ck_assert_uint_eq(a[3], 255);
        ck_assert_uint_eq(a[0], 0);
        ck_assert_int_eq(rev("256.0.0.0.in-addr.arpa", &f, a), -EINVAL);
        ck_assert_int_eq(rev("01.0.0.0.in-addr.arpa", &f, a), -EINVAL);
        ck_assert_int_eq(rev("1000.0.0.0.in-addr.arpa", &f, a), -EINVAL);
        ck_assert_int_eq(rev("a.0.0.0.in-addr.arpa", &f, a), -EINVAL);
        ck_assert_int_eq(rev("0.0.0.in-addr.arpa", &f, a), -EINVAL);        /* a network, not a host */
        ck_assert_int_eq(rev("1.0.0.0.0.in-addr.arpa", &f, a), -EINVAL);    /* five labels */
        ck_assert_int_eq(rev("4.3.2.1.in-addr.arpa.example", &f, a), -EINVAL);

        char v6[128] = "";
        for (int i = 0; i < 32; i++)
                strcat(v6, i == 0 ? "f." : "0.");
        strcat(v6, "ip6.arpa");
        ck_assert_int_eq(rev(v6, &f, a), 0);
        ck_assert_int_eq(f, AF_INET6);
        ck_assert_uint_eq(a[15], 0x0f);
        ck_assert_uint_eq(a[0], 0);
        v6[0] = 'g';
        ck_assert_int_eq(rev(v6, &f, a), -EINVAL);
        ck_assert_int_eq(rev(v6 + 2, &f, a), -EINVAL); /* 31 nibbles */
        ck_assert_int_eq(rev("ff.0.ip6.arpa", &f, a), -EINVAL);
}
END_TEST

START_TEST(test_states) {
        DnsMessage m;
        DnsName n;
        DnsBuilder b;
        DnsMessage q;
        size_t len;

        /* marked down: the tailnet's names are not answered, others go on */
        ck_assert_int_eq(shm_writer_set_state(writer, false), 0);
        ck_assert_int_eq(ask("win-a.yourorg.zt.net", DNS_TYPE_A, &m), STUB_TAILNET_DOWN);
        ck_assert_int_eq(ask("nobody.yourorg.zt.net", DNS_TYPE_A, &m), STUB_TAILNET_DOWN);
        ck_assert_int_eq(ask("www.example.com", DNS_TYPE_A, &m), STUB_TAILNET_NO);
        ck_assert_int_eq(shm_writer_set_state(writer, true), 0);
        ck_assert_int_eq(ask("win-a.yourorg.zt.net", DNS_TYPE_A, &m), STUB_TAILNET_ANSWER);

        /* a buffer too small for the answer */
        ck_assert_int_eq(dns_name_from_text("many.yourorg.zt.net", &n), 0);
        dns_builder_init(&b, qbuf, sizeof qbuf);
        dns_builder_header(&b, 1, 0, 1, 0, 0, 0);
        dns_builder_name(&b, &n);
        dns_builder_u16(&b, DNS_TYPE_A);
        dns_builder_u16(&b, DNS_CLASS_IN);
        ck_assert_int_eq(dns_builder_finish(&b, &len), 0);
        ck_assert_int_eq(dns_message_parse(qbuf, len, &q), 0);
        ck_assert_int_eq(stub_tailnet_answer(reader, qbuf, &q, abuf, 100, &len), STUB_TAILNET_ERROR);
        /* no reader; class CH */
        ck_assert_int_eq(stub_tailnet_answer(NULL, qbuf, &q, abuf, sizeof abuf, &len), STUB_TAILNET_NO_STORE);
        q.qclass = DNS_CLASS_CH;
        ck_assert_int_eq(stub_tailnet_answer(reader, qbuf, &q, abuf, sizeof abuf, &len), STUB_TAILNET_NO);

        /* the store gone: nothing is known, not even what is not ours */
        reader = shm_reader_free(reader);
        writer = shm_writer_close(writer);
        ck_assert_int_eq(unlink(path), 0);
        ck_assert_int_eq(shm_reader_new(path, &reader), 0);
        ck_assert_int_eq(ask("win-a.yourorg.zt.net", DNS_TYPE_A, &m), STUB_TAILNET_NO_STORE);
        ck_assert_int_eq(ask("www.example.com", DNS_TYPE_A, &m), STUB_TAILNET_NO_STORE);
}
END_TEST

/* The store gone, its persisted copy there: answers from the copy with a
 * short TTL; a name under the domain the copy lacks is not denied. */
START_TEST(test_stale_copy) {
        char copy[80];
        void *data;
        size_t data_len;
        DnsMessage m;
        uint16_t type;
        uint32_t ttl;

        snprintf(copy, sizeof copy, "%s/copy", dir);
        ck_assert_int_eq(shm_writer_export(writer, &data, &data_len), 0);
        ck_assert_int_eq(shm_store_save(copy, data, data_len), 0);
        free(data);
        reader = shm_reader_free(reader);
        writer = shm_writer_close(writer);
        ck_assert_int_eq(unlink(path), 0);
        ck_assert_int_eq(shm_reader_new_fallback(path, copy, &reader), 0);

        ck_assert_int_eq(ask("win-a.yourorg.zt.net", DNS_TYPE_A, &m), STUB_TAILNET_ANSWER);
        ck_assert_int_eq(m.rcode, DNS_RCODE_NOERROR);
        ck_assert_uint_eq(m.ancount, 1);
        /* Win-A's TTL is 60; from the copy at most SHM_STALE_TTL_MAX */
        ck_assert_int_eq(memcmp(rdata(&m, 0, &type, &ttl), "\x64\x40\x00\x01", 4), 0);
        ck_assert_uint_eq(ttl, SHM_STALE_TTL_MAX);
        ck_assert_int_eq(ask("1.0.64.100.in-addr.arpa", DNS_TYPE_PTR, &m), STUB_TAILNET_ANSWER);
        ck_assert_int_eq(ask("nobody.yourorg.zt.net", DNS_TYPE_A, &m), STUB_TAILNET_UNSURE);
        ck_assert_int_eq(ask("9.9.64.100.in-addr.arpa", DNS_TYPE_PTR, &m), STUB_TAILNET_UNSURE);
        /* the domain itself still has data: NODATA, as from the store */
        ck_assert_int_eq(ask("yourorg.zt.net", DNS_TYPE_A, &m), STUB_TAILNET_ANSWER);
        ck_assert_int_eq(ask("www.example.com", DNS_TYPE_A, &m), STUB_TAILNET_NO);
}
END_TEST

static Suite *stub_suite(void) {
        Suite *s = suite_create("stub");
        TCase *tc = tcase_create("tailnet");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_answers);
        tcase_add_test(tc, test_reverse);
        tcase_add_test(tc, test_reverse_names);
        tcase_add_test(tc, test_states);
        tcase_add_test(tc, test_stale_copy);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(stub_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
