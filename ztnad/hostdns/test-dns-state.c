/* SPDX-License-Identifier: MIT */
/*
 * The DNS state file that crosses from ztnad (user ztna) to its root
 * helper: the round trip, every line the strict parser must refuse, the
 * owner and mode checks of the reader, and the reverse zones derived from
 * the tailnet ranges (which decide whether `dig -x` leaks).
 */

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hostdns/dns-state.h"

static char dir[] = "/tmp/test-dns-state-XXXXXX";

static void setup(void) {
        ck_assert_ptr_nonnull(mkdtemp(dir));
        ck_assert_int_eq(chmod(dir, 0755), 0);
}

static void teardown(void) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
        strcpy(dir, "/tmp/test-dns-state-XXXXXX");
}

static ShmPrefix prefix(const char *addr, unsigned len) {
        ShmPrefix p = { .prefixlen = len };
        p.family = strchr(addr, ':') ? AF_INET6 : AF_INET;
        ck_assert_int_eq(inet_pton(p.family, addr, &p.addr), 1);
        return p;
}

static DnsStateServer server(const char *addr, uint16_t port) {
        DnsStateServer s = { .port = port };
        s.family = strchr(addr, ':') ? AF_INET6 : AF_INET;
        ck_assert_int_eq(inet_pton(s.family, addr, &s.addr), 1);
        return s;
}

static const char full[] = "ztna-dns-state 1\n"
                           "server 127.0.0.1 53\n"
                           "server ::1 15353\n"
                           "domain yourorg.zt.net\n"
                           "range 100.64.0.0/10\n"
                           "range fd7a:115c:a1e0::/48\n";

START_TEST(test_round_trip) {
        DnsState st = { 0 }, back;
        char text[DNS_STATE_SIZE_MAX + 1], why[DNS_STATE_WHY_MAX];
        int n;

        st.servers[st.n_servers++] = server("127.0.0.1", 53);
        st.servers[st.n_servers++] = server("::1", 15353);
        strcpy(st.domain, "yourorg.zt.net");
        st.ranges[st.n_ranges++] = prefix("100.64.0.0", 10);
        st.ranges[st.n_ranges++] = prefix("fd7a:115c:a1e0::", 48);
        n = dns_state_format(&st, text, sizeof text);
        ck_assert_int_eq(n, (int) strlen(full));
        ck_assert_str_eq(text, full);
        ck_assert_int_eq(dns_state_parse(text, (size_t) n, &back, why, sizeof why), 0);
        ck_assert_uint_eq(back.n_servers, 2);
        ck_assert_uint_eq(back.servers[1].port, 15353);
        ck_assert_int_eq(back.servers[1].family, AF_INET6);
        ck_assert_str_eq(back.domain, "yourorg.zt.net");
        ck_assert_uint_eq(back.n_ranges, 2);
        ck_assert_uint_eq(back.ranges[0].prefixlen, 10);
        ck_assert_int_eq(memcmp(&back.ranges[1], &st.ranges[1], sizeof st.ranges[1]), 0);

        /* Before the first publish: servers only. */
        ck_assert_int_eq(dns_state_parse("ztna-dns-state 1\nserver 127.0.0.1 53\n", 37, &back, why, sizeof why), 0);
        ck_assert_str_eq(back.domain, "");
        ck_assert_uint_eq(back.n_ranges, 0);

        /* 127.0.0.53 is fine in the file (resolv.conf can use it) but
         * not for resolved, which refuses it. */
        DnsStateServer s53 = server("127.0.0.53", 53), s54 = server("127.0.0.54", 53), s1 = server("127.0.0.1", 53),
                       s6 = server("::1", 53), s2 = server("127.0.0.2", 53), out = server("9.9.9.9", 53);
        ck_assert(dns_state_server_usable(&s53));
        ck_assert(!dns_state_server_resolved_ok(&s53));
        ck_assert(!dns_state_server_resolved_ok(&s54));
        ck_assert(dns_state_server_resolved_ok(&s1));
        ck_assert(dns_state_server_resolved_ok(&s2));
        ck_assert(dns_state_server_resolved_ok(&s6));
        ck_assert(!dns_state_server_usable(&out));
        ck_assert(!dns_state_server_resolved_ok(&out));

        /* What the parser refuses, the writer refuses to write. */
        st.servers[0] = server("10.0.0.53", 53);
        ck_assert_int_eq(dns_state_format(&st, text, sizeof text), -EINVAL);
        st.servers[0] = server("127.0.0.1", 53);
        st.ranges[0] = prefix("100.64.0.1", 10);
        ck_assert_int_eq(dns_state_format(&st, text, sizeof text), -EINVAL);
        st.ranges[0] = prefix("100.64.0.0", 10);
        ck_assert_int_eq(dns_state_format(&st, text, 20), -ENOBUFS);
}
END_TEST

/* Each input must be refused, saying this. */
static const struct {
        const char *text, *why;
} bad[] = {
        { "", "line 1" },
        { "ztna-dns-state 2\n", "line 1" },
        { "ztna-dns-state 1", "line 1" },
        { "ztna-dns-state 1 \n", "line 1" },
        { "ztna-dns-state 1\nserver 127.0.0.1 53", "does not end with a newline" },
        { "ztna-dns-state 1\n\n", "line 2: expected 'KEY VALUE'" },
        { "ztna-dns-state 1\nserver\n", "line 2: expected 'KEY VALUE'" },
        { "ztna-dns-state 1\nserver \n", "line 2: expected 'KEY VALUE'" },
        { "ztna-dns-state 1\n server 127.0.0.1 53\n", "line 2: expected 'KEY VALUE'" },
        { "ztna-dns-state 1\n# comment\n", "line 2: unknown key" },
        { "ztna-dns-state 1\nServer 127.0.0.1 53\n", "line 2: unknown key" },
        { "ztna-dns-state 1\nserver 127.0.0.1\n", "line 2: expected 'server ADDRESS PORT'" },
        { "ztna-dns-state 1\nserver 127.0.0.1  53\n", "the port is not a number" },
        { "ztna-dns-state 1\nserver 127.0.0.1 53 \n", "the port is not a number" },
        { "ztna-dns-state 1\nserver 127.0.0.1 053\n", "the port is not a number" },
        { "ztna-dns-state 1\nserver 127.0.0.1 0\n", "the port is not a number" },
        { "ztna-dns-state 1\nserver 127.0.0.1 65536\n", "the port is not a number" },
        { "ztna-dns-state 1\nserver 127.0.0.1 99999999999\n", "the port is not a number" },
        { "ztna-dns-state 1\nserver 127.0.0.1 +53\n", "the port is not a number" },
        { "ztna-dns-state 1\nserver 127.000.0.1 53\n", "expected 'server ADDRESS PORT'" },
        { "ztna-dns-state 1\nserver 0:0::1 53\n", "expected 'server ADDRESS PORT'" },
        { "ztna-dns-state 1\nserver [::1] 53\n", "expected 'server ADDRESS PORT'" },
        { "ztna-dns-state 1\nserver localhost 53\n", "expected 'server ADDRESS PORT'" },
        { "ztna-dns-state 1\nserver 9.9.9.9 53\n", "must be a loopback address" },
        { "ztna-dns-state 1\nserver 128.0.0.1 53\n", "must be a loopback address" },
        { "ztna-dns-state 1\nserver ::2 53\n", "must be a loopback address" },
        { "ztna-dns-state 1\nserver ::ffff:127.0.0.1 53\n", "must be a loopback address" },
        { "ztna-dns-state 1\nserver 127.0.0.1 53\nserver 127.0.0.1 53\n", "line 3: the server is listed twice" },
        { "ztna-dns-state 1\nserver 127.0.0.1 1\nserver 127.0.0.1 2\nserver 127.0.0.1 3\nserver 127.0.0.1 4\n"
          "server 127.0.0.1 5\nserver 127.0.0.1 6\nserver 127.0.0.1 7\nserver 127.0.0.1 8\nserver 127.0.0.1 9\n",
          "line 10: more than 8 servers" },
        { "ztna-dns-state 1\ndomain YourOrg.zt.net\n", "not a lower-case domain name" },
        { "ztna-dns-state 1\ndomain yourorg.zt.net.\n", "not a lower-case domain name" },
        { "ztna-dns-state 1\ndomain your_org.zt.net\n", "not a lower-case domain name" },
        { "ztna-dns-state 1\ndomain -x.zt.net\n", "not a lower-case domain name" },
        { "ztna-dns-state 1\ndomain a..b\n", "not a lower-case domain name" },
        { "ztna-dns-state 1\ndomain a b\n", "not a lower-case domain name" },
        { "ztna-dns-state 1\ndomain a\ndomain b\n", "line 3: a second domain" },
        { "ztna-dns-state 1\ndomain a\nserver 127.0.0.1 53\n", "line 3: out of order" },
        { "ztna-dns-state 1\nrange 10.0.0.0/8\ndomain a\n", "line 3: out of order" },
        { "ztna-dns-state 1\nrange 100.64.0.0\n", "expected 'range ADDRESS/LENGTH'" },
        { "ztna-dns-state 1\nrange 100.64.0.0/33\n", "expected 'range ADDRESS/LENGTH'" },
        { "ztna-dns-state 1\nrange fd7a::/129\n", "expected 'range ADDRESS/LENGTH'" },
        { "ztna-dns-state 1\nrange 100.64.0.0/010\n", "expected 'range ADDRESS/LENGTH'" },
        { "ztna-dns-state 1\nrange 100.64.0.1/10\n", "the range has host bits set" },
        { "ztna-dns-state 1\nrange 100.128.0.0/9\nrange 100.128.0.0/9\n", "line 3: the range is listed twice" },
        { "ztna-dns-state 1\nrange 1.0.0.0/8\nrange 2.0.0.0/8\nrange 3.0.0.0/8\nrange 4.0.0.0/8\n"
          "range 5.0.0.0/8\nrange 6.0.0.0/8\nrange 7.0.0.0/8\nrange 8.0.0.0/8\nrange 9.0.0.0/8\n",
          "line 10: more than 8 ranges" },
};

START_TEST(test_bad) {
        DnsState st;
        char why[DNS_STATE_WHY_MAX] = "";

        memset(&st, 0x5a, sizeof st);
        ck_assert_int_eq(dns_state_parse(bad[_i].text, strlen(bad[_i].text), &st, why, sizeof why), -EBADMSG);
        ck_assert_msg(strstr(why, bad[_i].why), "%s: said \"%s\", expected \"%s\"", bad[_i].text, why, bad[_i].why);
        /* Nothing written on failure. */
        ck_assert_uint_eq(((unsigned char *) &st)[0], 0x5a);
}
END_TEST

START_TEST(test_bad_bytes) {
        char text[DNS_STATE_SIZE_MAX + 2];
        char why[DNS_STATE_WHY_MAX];
        DnsState st;

        /* A NUL inside a line. */
        memcpy(text, "ztna-dns-state 1\ndomain a\0b\n", 28);
        ck_assert_int_eq(dns_state_parse(text, 28, &st, why, sizeof why), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(why, "NUL"));
        /* One byte over the limit, however well-formed. */
        memset(text, 'x', sizeof text);
        memcpy(text, "ztna-dns-state 1\n", 17);
        ck_assert_int_eq(dns_state_parse(text, DNS_STATE_SIZE_MAX + 1, &st, why, sizeof why), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(why, "larger than"));
        /* NULL why is fine. */
        ck_assert_int_eq(dns_state_parse("x", 1, &st, NULL, 0), -EBADMSG);
}
END_TEST

static char *path_in(const char *name) {
        char *p;
        ck_assert_int_ge(asprintf(&p, "%s/%s", dir, name), 0);
        return p;
}

START_TEST(test_files) {
        char *path = path_in(DNS_STATE_FILE_NAME), *link_path = path_in("link");
        char why[DNS_STATE_WHY_MAX];
        DnsState st = { 0 }, back;
        struct stat s;

        st.servers[st.n_servers++] = server("127.0.0.1", 53);
        strcpy(st.domain, "yourorg.zt.net");
        ck_assert_int_eq(dns_state_read(path, &back, why, sizeof why), -ENOENT);
        ck_assert_int_eq(dns_state_write(path, &st), 0);
        ck_assert_int_eq(stat(path, &s), 0);
        ck_assert_uint_eq(s.st_mode & 07777, 0644);

        /* The test runs as root (or a system account in CI), so the
         * directory passes; then each way of being untrusted. */
        if (geteuid() >= 1000) {
                ck_assert_int_eq(dns_state_read(path, &back, why, sizeof why), -EPERM);
                goto done;
        }
        ck_assert_int_eq(dns_state_read(path, &back, why, sizeof why), 0);
        ck_assert_str_eq(back.domain, "yourorg.zt.net");

        ck_assert_int_eq(chmod(path, 0664), 0);
        ck_assert_int_eq(dns_state_read(path, &back, why, sizeof why), -EPERM);
        ck_assert_int_eq(chmod(path, 0644), 0);

        ck_assert_int_eq(symlink(path, link_path), 0);
        ck_assert_int_eq(dns_state_read(link_path, &back, why, sizeof why), -ELOOP);
        ck_assert_int_eq(unlink(link_path), 0);

        ck_assert_int_eq(link(path, link_path), 0);
        ck_assert_int_eq(dns_state_read(path, &back, why, sizeof why), -EPERM);
        ck_assert_int_eq(unlink(link_path), 0);

        /* Owned by someone else than root or the directory's owner. */
        ck_assert_int_eq(chown(path, 4242, 4242), 0);
        ck_assert_int_eq(dns_state_read(path, &back, why, sizeof why), -EPERM);
        ck_assert_int_eq(chown(path, 0, 0), 0);

        /* A directory others may write to, or a user's. */
        ck_assert_int_eq(chmod(dir, 0777), 0);
        ck_assert_int_eq(dns_state_read(path, &back, why, sizeof why), -EPERM);
        ck_assert_int_eq(chmod(dir, 0755), 0);
        ck_assert_int_eq(chown(dir, 4242, 4242), 0);
        ck_assert_int_eq(dns_state_read(path, &back, why, sizeof why), -EPERM);
        ck_assert_int_eq(chown(dir, 0, 0), 0);

        /* A FIFO does not block the reader. */
        ck_assert_int_eq(unlink(path), 0);
        ck_assert_int_eq(mkfifo(path, 0644), 0);
        ck_assert_int_eq(dns_state_read(path, &back, why, sizeof why), -EPERM);
        ck_assert_int_eq(unlink(path), 0);

        /* Hostile contents in a trusted file. */
        FILE *f = fopen(path, "we");
        ck_assert_ptr_nonnull(f);
        fputs("ztna-dns-state 1\nserver 198.51.100.1 53\n", f);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_int_eq(chmod(path, 0644), 0);
        ck_assert_int_eq(dns_state_read(path, &back, why, sizeof why), -EBADMSG);
        ck_assert_ptr_nonnull(strstr(why, "must be a loopback address"));
done:
        free(path);
        free(link_path);
}
END_TEST

/* ---- reverse zones ---- */

static char zones[DNS_REVERSE_ZONES_PER_PREFIX][DNS_REVERSE_ZONE_MAX];

START_TEST(test_reverse_v4) {
        ShmPrefix p = prefix("100.64.0.0", 10);

        /* The tailnet's default /10: 64..127 under 100.in-addr.arpa. */
        ck_assert_int_eq(dns_reverse_zones(&p, zones, DNS_REVERSE_ZONES_PER_PREFIX), 64);
        ck_assert_str_eq(zones[0], "64.100.in-addr.arpa");
        ck_assert_str_eq(zones[1], "65.100.in-addr.arpa");
        ck_assert_str_eq(zones[63], "127.100.in-addr.arpa");

        /* Octet boundaries: one zone. */
        p = prefix("10.0.0.0", 8);
        ck_assert_int_eq(dns_reverse_zones(&p, zones, 1), 1);
        ck_assert_str_eq(zones[0], "10.in-addr.arpa");
        p = prefix("192.168.7.0", 24);
        ck_assert_int_eq(dns_reverse_zones(&p, zones, 1), 1);
        ck_assert_str_eq(zones[0], "7.168.192.in-addr.arpa");
        p = prefix("100.64.0.1", 32);
        ck_assert_int_eq(dns_reverse_zones(&p, zones, 1), 1);
        ck_assert_str_eq(zones[0], "1.0.64.100.in-addr.arpa");
        p = prefix("0.0.0.0", 0);
        ck_assert_int_eq(dns_reverse_zones(&p, zones, 1), 1);
        ck_assert_str_eq(zones[0], "in-addr.arpa");

        /* One bit below and above a boundary. */
        p = prefix("172.16.0.0", 12);
        ck_assert_int_eq(dns_reverse_zones(&p, zones, DNS_REVERSE_ZONES_PER_PREFIX), 16);
        ck_assert_str_eq(zones[0], "16.172.in-addr.arpa");
        ck_assert_str_eq(zones[15], "31.172.in-addr.arpa");
        p = prefix("100.0.0.0", 9);
        ck_assert_int_eq(dns_reverse_zones(&p, zones, DNS_REVERSE_ZONES_PER_PREFIX), 128);
        ck_assert_str_eq(zones[0], "0.100.in-addr.arpa");
        ck_assert_str_eq(zones[127], "127.100.in-addr.arpa");
        p = prefix("100.64.0.0", 15);
        ck_assert_int_eq(dns_reverse_zones(&p, zones, DNS_REVERSE_ZONES_PER_PREFIX), 2);
        ck_assert_str_eq(zones[0], "64.100.in-addr.arpa");
        ck_assert_str_eq(zones[1], "65.100.in-addr.arpa");

        /* Fewer slots than zones: the count still says how many. */
        p = prefix("100.64.0.0", 10);
        memset(zones[1], 0, sizeof zones[1]);
        ck_assert_int_eq(dns_reverse_zones(&p, zones, 1), 64);
        ck_assert_str_eq(zones[1], "");

        /* Host bits set, or a length beyond the family. */
        p = prefix("100.64.0.1", 10);
        ck_assert_int_eq(dns_reverse_zones(&p, zones, 1), -EINVAL);
        p = prefix("100.64.0.0", 33);
        ck_assert_int_eq(dns_reverse_zones(&p, zones, 1), -EINVAL);
}
END_TEST

START_TEST(test_reverse_v6) {
        ShmPrefix p = prefix("fd7a:115c:a1e0::", 48);

        ck_assert_int_eq(dns_reverse_zones(&p, zones, DNS_REVERSE_ZONES_PER_PREFIX), 1);
        ck_assert_str_eq(zones[0], "0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa");

        /* Between nibbles: /47 is two /48 zones, /46 four. */
        p = prefix("fd7a:115c:a1e0::", 47);
        ck_assert_int_eq(dns_reverse_zones(&p, zones, DNS_REVERSE_ZONES_PER_PREFIX), 2);
        ck_assert_str_eq(zones[0], "0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa");
        ck_assert_str_eq(zones[1], "1.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa");
        p = prefix("fd7a:115c:a1e0::", 45);
        ck_assert_int_eq(dns_reverse_zones(&p, zones, DNS_REVERSE_ZONES_PER_PREFIX), 8);
        ck_assert_str_eq(zones[7], "7.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa");

        p = prefix("fd00::", 8);
        ck_assert_int_eq(dns_reverse_zones(&p, zones, 1), 1);
        ck_assert_str_eq(zones[0], "d.f.ip6.arpa");
        p = prefix("fd7a:115c:a1e0::1", 128);
        ck_assert_int_eq(dns_reverse_zones(&p, zones, 1), 1);
        ck_assert_str_eq(zones[0], "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.e.1.a.c.5.1.1.a.7.d.f.ip6.arpa");
        ck_assert_uint_lt(strlen(zones[0]), DNS_REVERSE_ZONE_MAX);

        p = prefix("fd7a:115c:a1e0::1", 48);
        ck_assert_int_eq(dns_reverse_zones(&p, zones, 1), -EINVAL);
}
END_TEST

static Suite *dns_state_suite(void) {
        Suite *s = suite_create("dns-state");
        TCase *tc = tcase_create("core");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_round_trip);
        tcase_add_loop_test(tc, test_bad, 0, (int) (sizeof bad / sizeof bad[0]));
        tcase_add_test(tc, test_bad_bytes);
        tcase_add_test(tc, test_files);
        tcase_add_test(tc, test_reverse_v4);
        tcase_add_test(tc, test_reverse_v6);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(dns_state_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
