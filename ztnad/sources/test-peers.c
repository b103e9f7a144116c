/* SPDX-License-Identifier: MIT */
/*
 * The peers document: the bundled example passes, and every rule refuses
 * what it must with a message naming the source, the JSON path and why.
 * Documents are written with ' for " to keep them readable.
 */

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sources/peers.h"
#include "shm-format.h"

#define SOURCE "test.json"

/* Stands for "not written": a failed parse must leave *ret_map alone. */
static char untouched_storage;
#define UNTOUCHED ((PeerMap *) (void *) &untouched_storage)

static char *unquote(const char *s) {
        char *j = strdup(s);

        ck_assert_ptr_nonnull(j);
        for (char *c = j; *c; c++)
                if (*c == '\'')
                        *c = '"';
        return j;
}

__attribute__((format(printf, 1, 2)))
static char *docf(const char *fmt, ...) {
        va_list ap;
        char *s;

        va_start(ap, fmt);
        ck_assert_int_ge(vasprintf(&s, fmt, ap), 0);
        va_end(ap);
        return s;
}

/* A document of the usual domain around `peers` (the array's contents). */
static char *with_peers(const char *peers) {
        return docf("{'domain': 'yourorg.zt.net', 'peers': [%s]}", peers);
}

static char *repeat(char c, size_t n) {
        char *s = malloc(n + 1);

        ck_assert_ptr_nonnull(s);
        memset(s, c, n);
        s[n] = '\0';
        return s;
}

/* What the documents below must keep to: NULL (nothing pinned) but in the
 * policy tests, which set it for one test each. */
static const PeersPolicy *policy;

static int parse(const char *sq, PeerMap **ret, PeersError *err) {
        char *j = unquote(sq);
        int r = policy ? peers_parse_policy(j, strlen(j), SOURCE, policy, ret, err)
                       : peers_parse(j, strlen(j), SOURCE, ret, err);

        free(j);
        return r;
}

static PeerMap *parse_ok(const char *sq) {
        PeersError err = {};
        PeerMap *m = NULL;
        int r = parse(sq, &m, &err);

        ck_assert_msg(r == 0, "refused (%d): %s\n  document: %s", r, err.message, sq);
        ck_assert_ptr_nonnull(m);
        return m;
}

static void accepts(const char *sq) {
        peer_map_free(parse_ok(sq));
}

/* Refused with -EBADMSG at JSON path `path`; the message is
 * "test.json: PATH: ..." and contains `needle`. */
static void refuses(const char *sq, const char *path, const char *needle) {
        PeersError err;
        PeerMap *m = UNTOUCHED;
        char prefix[PEERS_PATH_MAX + 32];
        int r;

        memset(&err, 0x55, sizeof err);
        r = parse(sq, &m, &err);
        ck_assert_msg(r == -EBADMSG, "expected -EBADMSG, got %d for %s", r, sq);
        ck_assert_ptr_eq(m, UNTOUCHED);
        ck_assert_str_eq(err.path, path);
        if (path[0])
                snprintf(prefix, sizeof prefix, SOURCE ": %s: ", path);
        else
                snprintf(prefix, sizeof prefix, SOURCE ": ");
        ck_assert_msg(strncmp(err.message, prefix, strlen(prefix)) == 0, "message \"%s\" does not start with \"%s\"",
                      err.message, prefix);
        ck_assert_msg(strstr(err.message, needle), "message \"%s\" lacks \"%s\"", err.message, needle);
        ck_assert_ptr_null(strchr(err.message, '\n'));
}

static void refuses_name(const char *name_sq, const char *needle) {
        char *peer = docf("{'name': %s, 'addresses': []}", name_sq);
        char *doc = with_peers(peer);

        refuses(doc, "peers[0].name", needle);
        free(doc);
        free(peer);
}

static void refuses_address(const char *addr, const char *needle) {
        char *peer = docf("{'name': 'a', 'addresses': ['%s']}", addr);
        char *doc = with_peers(peer);

        refuses(doc, "peers[0].addresses[0]", needle);
        free(doc);
        free(peer);
}

static void refuses_domain(const char *domain_sq, const char *needle) {
        char *doc = docf("{'domain': %s, 'peers': []}", domain_sq);

        refuses(doc, "domain", needle);
        free(doc);
}

static void accepts_domain(const char *domain, const char *expect) {
        char *doc = docf("{'domain': '%s', 'peers': []}", domain);
        PeerMap *m = parse_ok(doc);
        ShmMap s;

        peer_map_to_shm(m, &s);
        ck_assert_str_eq(s.domain, expect);
        peer_map_free(m);
        free(doc);
}

static void refuses_range(const char *range, const char *needle) {
        char *doc = docf("{'domain': 'yourorg.zt.net', 'ranges': ['100.64.0.0/10', '%s'], 'peers': []}", range);

        refuses(doc, "ranges[1]", needle);
        free(doc);
}

static const char *example_path(void) {
        /* The example sits at examples/ in the repository, two levels up. */
        static char path[4096];
        const char *slash = strrchr(__FILE__, '/');
        int dir_len = slash ? (int) (slash - __FILE__) : 0;

        if (dir_len > 0)
                snprintf(path, sizeof path, "%.*s/../../examples/tailnet.json", dir_len, __FILE__);
        else
                snprintf(path, sizeof path, "../../examples/tailnet.json");
        return path;
}

static const ShmPeer *find_peer(const ShmMap *s, const char *name) {
        for (size_t i = 0; i < s->n_peers; i++)
                if (strcmp(s->peers[i].name, name) == 0)
                        return &s->peers[i];
        ck_abort_msg("no peer %s", name);
        return NULL;
}

static void assert_v4(const struct in_addr *a, const char *text) {
        char buf[INET_ADDRSTRLEN];

        ck_assert_str_eq(inet_ntop(AF_INET, a, buf, sizeof buf), text);
}

static void assert_v6(const struct in6_addr *a, const char *text) {
        char buf[INET6_ADDRSTRLEN];

        ck_assert_str_eq(inet_ntop(AF_INET6, a, buf, sizeof buf), text);
}

START_TEST(test_example_file) {
        PeersError err = {};
        PeerMap *m = NULL;
        ShmMap s;
        const ShmPeer *p;
        int r;

        r = peers_load_file(example_path(), &m, &err);
        ck_assert_msg(r == 0, "%s", err.message);
        peer_map_to_shm(m, &s);

        ck_assert_str_eq(s.domain, "yourorg.zt.net");
        ck_assert_uint_eq(s.n_ranges, 2);
        ck_assert_int_eq(s.ranges[0].family, AF_INET);
        ck_assert_uint_eq(s.ranges[0].prefixlen, 10);
        ck_assert_int_eq(s.ranges[1].family, AF_INET6);
        ck_assert_uint_eq(s.ranges[1].prefixlen, 48);
        ck_assert_uint_ge(s.n_peers, 5);

        p = find_peer(&s, "Win-A");
        ck_assert(p->online);
        ck_assert_uint_eq(p->ttl, 60);
        ck_assert_uint_eq(p->n_v4, 1);
        ck_assert_uint_eq(p->n_v6, 1);
        assert_v4(&p->v4[0], "100.64.0.1");
        assert_v6(&p->v6[0], "fd7a:115c:a1e0::1");

        p = find_peer(&s, "Linux-C");
        assert_v4(&p->v4[0], "100.64.0.3");
        ck_assert_uint_eq(p->n_v6, 1);

        /* A v4-only, a v6-only and an offline peer are part of the example. */
        ck_assert_uint_eq(find_peer(&s, "printer")->n_v6, 0);
        ck_assert_ptr_null(find_peer(&s, "printer")->v6);
        ck_assert_uint_eq(find_peer(&s, "build-v6")->n_v4, 0);
        ck_assert(!find_peer(&s, "Laptop-D")->online);
        peer_map_free(m);
}
END_TEST

START_TEST(test_minimal_and_defaults) {
        PeerMap *m = parse_ok("{'domain': 'yourorg.zt.net.', 'peers': []}");
        ShmMap s;
        char text[INET6_ADDRSTRLEN];

        peer_map_to_shm(m, &s);
        ck_assert_str_eq(s.domain, "yourorg.zt.net");
        ck_assert_uint_eq(s.n_peers, 0);
        ck_assert_uint_eq(s.n_ranges, 2);
        ck_assert_str_eq(inet_ntop(AF_INET, &s.ranges[0].addr.in, text, sizeof text), "100.64.0.0");
        ck_assert_uint_eq(s.ranges[0].prefixlen, 10);
        ck_assert_str_eq(inet_ntop(AF_INET6, &s.ranges[1].addr.in6, text, sizeof text), "fd7a:115c:a1e0::");
        ck_assert_uint_eq(s.ranges[1].prefixlen, 48);
        peer_map_free(m);
}
END_TEST

START_TEST(test_peer_fields) {
        PeerMap *m = parse_ok("{'domain': 'a.b', 'ttl': 120, 'peers': ["
                              "{'name': 'One', 'addresses': ['100.64.0.1', 'fd7a::1', '100.64.0.2', 'fd7a::2',"
                              " '100.64.0.3']},"
                              "{'name': 'Two', 'addresses': [], 'online': false, 'ttl': 0},"
                              "{'name': 'three', 'addresses': ['10.0.0.1'], 'ttl': 2147483647}]}");
        ShmMap s;

        peer_map_to_shm(m, &s);
        ck_assert_uint_eq(s.n_peers, 3);

        ck_assert_str_eq(s.peers[0].name, "One");
        ck_assert(s.peers[0].online);
        ck_assert_uint_eq(s.peers[0].ttl, 120);
        ck_assert_uint_eq(s.peers[0].n_v4, 3);
        ck_assert_uint_eq(s.peers[0].n_v6, 2);
        assert_v4(&s.peers[0].v4[0], "100.64.0.1");
        assert_v4(&s.peers[0].v4[1], "100.64.0.2");
        assert_v4(&s.peers[0].v4[2], "100.64.0.3");
        assert_v6(&s.peers[0].v6[0], "fd7a::1");
        assert_v6(&s.peers[0].v6[1], "fd7a::2");

        /* Zero addresses is allowed: the name answers NO_DATA. */
        ck_assert_str_eq(s.peers[1].name, "Two");
        ck_assert(!s.peers[1].online);
        ck_assert_uint_eq(s.peers[1].ttl, 0);
        ck_assert_uint_eq(s.peers[1].n_v4, 0);
        ck_assert_uint_eq(s.peers[1].n_v6, 0);
        ck_assert_ptr_null(s.peers[1].v4);
        ck_assert_ptr_null(s.peers[1].v6);

        ck_assert_uint_eq(s.peers[2].ttl, 2147483647u);
        assert_v4(&s.peers[2].v4[0], "10.0.0.1");
        ck_assert_ptr_null(s.peers[2].v6);
        peer_map_free(m);
}
END_TEST

START_TEST(test_syntax_errors) {
        static const char *const docs[] = {
                "",
                "{'domain': 'a.b', 'peers': [}",
                "{'domain': 'a.b', 'peers': []} x",
                "{'domain': 'a.b',\n 'peers': [],\n 'peers': []}",
                "{'domain': 'a\\u0000b.c', 'peers': []}",
                "{'domain': 'a.b', 'peers': [{'name': 'x\\u0000', 'addresses': []}]}",
                "{'domain': 'a.b', 'ttl': 99999999999999999999999, 'peers': []}",
        };
        PeersError err;
        PeerMap *m = UNTOUCHED;

        for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
                ck_assert_int_eq(parse(docs[i], &m, &err), -EBADMSG);
                ck_assert_ptr_eq(m, UNTOUCHED);
                ck_assert_str_eq(err.path, "");
                ck_assert_int_ge(err.line, 1);
                /* "test.json:LINE:COLUMN: what" */
                ck_assert_msg(strncmp(err.message, SOURCE ":", strlen(SOURCE ":")) == 0, "%s", err.message);
                ck_assert_msg(strchr(err.message + strlen(SOURCE ":"), ':'), "%s", err.message);
        }

        /* Duplicate keys are refused with the line of the second. */
        ck_assert_int_eq(parse(docs[3], &m, &err), -EBADMSG);
        ck_assert_int_eq(err.line, 3);
        ck_assert_msg(strstr(err.message, "duplicate"), "%s", err.message);
        ck_assert_msg(strncmp(err.message, SOURCE ":3:", strlen(SOURCE ":3:")) == 0, "%s", err.message);

        /* A raw NUL byte in the input. */
        {
                static const char raw[] = "{\"domain\": \"a\0b.c\", \"peers\": []}";

                ck_assert_int_eq(peers_parse(raw, sizeof raw - 1, SOURCE, &m, &err), -EBADMSG);
                ck_assert_ptr_eq(m, UNTOUCHED);
        }
}
END_TEST

START_TEST(test_document_shape) {
        refuses("[]", "", "must be a JSON object, got an array");
        refuses("{'domain': 'a.b', 'peers': [], 'peer': []}", "", "unknown key \"peer\" at the top level");
        refuses("{'domain': 'a.b'}", "peers", "missing");
        refuses("{'domain': 'a.b', 'peers': {}}", "peers", "expected an array of peers, got an object");
        refuses("{'domain': 'a.b', 'peers': null}", "peers", "got null");
        refuses("{'domain': 'a.b', 'peers': ['Win-A']}", "peers[0]", "expected an object, got a string");
        refuses("{'domain': 'a.b', 'peers': [{'name': 'a', 'addresses': []}, 3]}", "peers[1]",
                "expected an object, got an integer");
        refuses("{'peers': []}", "domain", "missing");
}
END_TEST

START_TEST(test_unknown_peer_key) {
        refuses("{'domain': 'a.b', 'peers': [{'name': 'a', 'addresses': []},"
                " {'name': 'b', 'adresses': ['100.64.0.1']}]}",
                "peers[1]", "unknown key \"adresses\"");
        refuses("{'domain': 'a.b', 'peers': [{'name': 'a', 'addresses': [], 'Online': true}]}", "peers[0]",
                "unknown key \"Online\"");
}
END_TEST

START_TEST(test_domain) {
        char *label63 = repeat('d', 63), *label64 = repeat('d', 64), *doc;

        accepts_domain("yourorg.zt.net", "yourorg.zt.net");
        accepts_domain("YourOrg.ZT.net.", "YourOrg.ZT.net");
        accepts_domain("a-b.c9", "a-b.c9");
        accepts_domain("1.2.3.x", "1.2.3.x");

        refuses_domain("42", "expected a string, got an integer");
        refuses_domain("''", "is empty");
        refuses_domain("'.'", "is empty");
        refuses_domain("'a.b..'", "label 3 \"\" is empty");
        refuses_domain("'a..b'", "label 2 \"\" is empty");
        refuses_domain("'.a.b'", "label 1 \"\" is empty");
        refuses_domain("'zt_x.net'", "'_'");
        refuses_domain("'zt x.net'", "only letters, digits and '-'");
        refuses_domain("'-zt.net'", "starts with '-'");
        refuses_domain("'zt-.net'", "ends with '-'");
        refuses_domain("'net'", "single label");
        refuses_domain("'yourorg.123'", "all-numeric");
        refuses_domain("'0x1.0x2'", "reads as an IPv4 address");

        /* Label length: 63 is the last that fits. */
        doc = docf("%s.net", label63);
        accepts_domain(doc, doc);
        free(doc);
        doc = docf("'%s.net'", label64);
        refuses_domain(doc, "64 characters long; a DNS label is at most 63");
        free(doc);

        free(label63);
        free(label64);
}
END_TEST

START_TEST(test_domain_length) {
        /* 253 characters, the longest name (without the final dot): four
         * 63-character labels would be 255, so 63+63+63+61 with dots. */
        char *a = repeat('a', 63), *b = repeat('b', 61), *c = repeat('c', 62), *d253, *d254, *q;

        d253 = docf("%s.%s.%s.%s", a, a, a, b);
        ck_assert_uint_eq(strlen(d253), 253);
        accepts_domain(d253, d253);
        q = docf("%s.", d253);
        accepts_domain(q, d253);
        free(q);

        d254 = docf("%s.%s.%s.%s", a, a, a, c);
        ck_assert_uint_eq(strlen(d254), 254);
        q = docf("'%s'", d254);
        refuses_domain(q, "254 characters long; a domain name is at most 253");
        free(q);

        free(a);
        free(b);
        free(c);
        free(d253);
        free(d254);
}
END_TEST

START_TEST(test_reserved_domain) {
        static const char *const domains[] = {
                "localhost", "x.localhost", "LOCALHOST", "localdomain", "yourorg.localdomain",
                "local", "yourorg.local", "invalid", "a.invalid", "arpa", "in-addr.arpa", "ip6.arpa",
        };

        for (size_t i = 0; i < sizeof domains / sizeof domains[0]; i++) {
                char *q = docf("'%s'", domains[i]);

                refuses_domain(q, "is reserved");
                free(q);
        }
        /* Only whole labels count. */
        accepts_domain("notlocal.net", "notlocal.net");
        accepts_domain("local.example", "local.example");
        accepts_domain("yourorg.mylocal", "yourorg.mylocal");
}
END_TEST

START_TEST(test_name) {
        char *label63 = repeat('n', 63), *label64 = repeat('n', 64), *q;

        q = docf("{'name': '%s', 'addresses': []}", label63);
        free(label63);
        label63 = with_peers(q);
        free(q);
        accepts(label63);
        free(label63);

        q = docf("'%s'", label64);
        refuses_name(q, "64 characters long; a DNS label is at most 63");
        free(q);
        free(label64);

        accepts("{'domain': 'a.b', 'peers': [{'name': 'a', 'addresses': []}, {'name': 'Z9-x', 'addresses': []},"
                " {'name': 'x1', 'addresses': []}, {'name': '1x', 'addresses': []}, {'name': '1-2', 'addresses': []}]}");

        refuses("{'domain': 'a.b', 'peers': [{'addresses': []}]}", "peers[0].name", "missing");
        refuses_name("7", "expected a string, got an integer");
        refuses_name("null", "expected a string, got null");
        refuses_name("''", "\"\" is empty");
        refuses_name("'Win-A.yourorg'", "contains '.'; a peer name is a single label");
        refuses_name("'Win_A'", "contains '_' at position 4");
        refuses_name("'Win A'", "only letters, digits and '-'");
        refuses_name("'caf\\u00e9'", "contains byte 0xc3 at position 4");
        refuses_name("'-WinA'", "starts with '-'");
        refuses_name("'WinA-'", "ends with '-'");
        refuses_name("'100'", "is all digits");
        refuses_name("'0'", "is all digits");
        refuses_name("'0x10'", "reads as an IPv4 address");
        /* A value with a newline must not forge a second log line. */
        refuses_name("'a\\nb'", "\"a\\x0ab\"");
        /* A long value is cut short, escapes and all. */
        {
                char *name = malloc(200 * 6 + 3), *o = name;

                ck_assert_ptr_nonnull(name);
                *o++ = '\'';
                for (int i = 0; i < 200; i++)
                        o += sprintf(o, "\\u0001");
                *o++ = '\'';
                *o = '\0';
                refuses_name(name, "\"\\x01\\x01");
                refuses_name(name, "\\x01...\" is 200 characters long");
                free(name);
        }
}
END_TEST

START_TEST(test_reserved_names) {
        static const char *const names[] = {
                "localhost",    "localdomain",    "ip6-localhost", "ip6-loopback", "ip6-allnodes",
                "ip6-allrouters", "ip6-localnet", "ip6-mcastprefix", "broadcasthost", "LocalHost",
                "IP6-LOOPBACK",
        };

        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
                char *q = docf("'%s'", names[i]);

                refuses_name(q, "is a reserved name");
                free(q);
        }
        accepts("{'domain': 'a.b', 'peers': [{'name': 'localhost1', 'addresses': []},"
                " {'name': 'my-localhost', 'addresses': []}]}");
}
END_TEST

START_TEST(test_fqdn_length) {
        /* Domain of 251: a one-character name makes 253, two make 254. */
        char *a = repeat('a', 63), *b = repeat('b', 59), *domain, *doc;

        domain = docf("%s.%s.%s.%s", a, a, a, b);
        ck_assert_uint_eq(strlen(domain), 251);
        doc = docf("{'domain': '%s', 'peers': [{'name': 'x', 'addresses': []}]}", domain);
        accepts(doc);
        free(doc);
        doc = docf("{'domain': '%s', 'peers': [{'name': 'xy', 'addresses': []}]}", domain);
        refuses(doc, "peers[0].name", "254-character name");
        free(doc);
        free(domain);
        free(a);
        free(b);
}
END_TEST

START_TEST(test_duplicate_names) {
        refuses("{'domain': 'a.b', 'peers': [{'name': 'Win-A', 'addresses': []}, {'name': 'b', 'addresses': []},"
                " {'name': 'win-a', 'addresses': []}]}",
                "peers[2].name", "\"win-a\" is the same name as peers[0].name \"Win-A\"");
        /* The first repeat in document order is the one reported. */
        refuses("{'domain': 'a.b', 'peers': [{'name': 'z', 'addresses': []}, {'name': 'a', 'addresses': []},"
                " {'name': 'Z', 'addresses': []}, {'name': 'A', 'addresses': []}]}",
                "peers[2].name", "peers[0].name \"z\"");
}
END_TEST

START_TEST(test_addresses) {
        refuses("{'domain': 'a.b', 'peers': [{'name': 'a'}]}", "peers[0].addresses", "missing");
        refuses("{'domain': 'a.b', 'peers': [{'name': 'a', 'addresses': '100.64.0.1'}]}", "peers[0].addresses",
                "expected an array of addresses, got a string");
        refuses("{'domain': 'a.b', 'peers': [{'name': 'a', 'addresses': ['100.64.0.1', 5]}]}",
                "peers[0].addresses[1]", "expected a string, got an integer");

        refuses_address("100.64.0.1/32", "is a CIDR prefix, not an address");
        refuses_address("fd7a::/64", "is a CIDR prefix");
        refuses_address("fe80::1%eth0", "has a scope id");
        refuses_address("", "is not an IPv4 or IPv6 address");
        refuses_address("Win-A", "is not an IPv4 or IPv6 address");
        refuses_address("100.64.0", "is not an IPv4 or IPv6 address");
        refuses_address("100.64.0.256", "is not an IPv4 or IPv6 address");
        refuses_address(" 100.64.0.1", "is not an IPv4 or IPv6 address");
        refuses_address("0.0.0.0", "the unspecified address");
        refuses_address("0.1.2.3", "this network");
        refuses_address("127.0.0.1", "loopback");
        refuses_address("127.255.0.9", "loopback");
        refuses_address("224.0.0.1", "multicast");
        refuses_address("239.255.255.255", "multicast");
        refuses_address("255.255.255.255", "broadcast");
        refuses_address("::", "the unspecified address");
        refuses_address("::1", "loopback");
        refuses_address("ff02::1", "multicast");
        refuses_address("::ffff:100.64.0.1", "IPv4-mapped");
        refuses_address("fe80::1", "link-local");

        /* Just inside the refused blocks. */
        accepts("{'domain': 'a.b', 'peers': [{'name': 'a', 'addresses': ['1.0.0.0', '126.255.255.255',"
                " '128.0.0.0', '223.255.255.255', '240.0.0.1', '255.255.255.254', '::2', 'fec0::1', 'fe00::1']}]}");
}
END_TEST

START_TEST(test_duplicate_addresses) {
        refuses("{'domain': 'a.b', 'peers': [{'name': 'a', 'addresses': ['100.64.0.1', 'fd7a::1', '100.64.0.1']}]}",
                "peers[0].addresses[2]", "100.64.0.1 is listed twice (also addresses[0])");
        /* The same address however it is spelled. */
        refuses("{'domain': 'a.b', 'peers': [{'name': 'a', 'addresses': ['fd7a:0::1', 'FD7A::0:1']}]}",
                "peers[0].addresses[1]", "fd7a::1 is listed twice");
        refuses("{'domain': 'a.b', 'peers': [{'name': 'Win-A', 'addresses': ['100.64.0.1']},"
                " {'name': 'b', 'addresses': ['100.64.0.2']}, {'name': 'c', 'addresses': ['fd7a::3', '100.64.0.1']}]}",
                "peers[2].addresses[1]", "also an address of peers[0] \"Win-A\"; reverse lookups would be ambiguous");
        /* An IPv6 address spelled with an embedded IPv4 one is still another
         * address than that IPv4 one. */
        accepts("{'domain': 'a.b', 'peers': [{'name': 'a', 'addresses': ['100.64.0.1', 'fd7a::100.64.0.1']},"
                " {'name': 'b', 'addresses': ['100.64.0.2']}]}");
}
END_TEST

START_TEST(test_address_count) {
        /* SHM_ADDRS_MAX IPv4 addresses in one peer fit; one more does not. */
        size_t cap = (size_t) SHM_ADDRS_MAX * 20 + 256, len;
        char *doc = malloc(cap);
        PeersError err;
        PeerMap *m = UNTOUCHED;
        ShmMap s;

        ck_assert_ptr_nonnull(doc);
        for (unsigned extra = 0; extra <= 1; extra++) {
                len = (size_t) snprintf(doc, cap, "{\"domain\": \"a.b\", \"peers\": [{\"name\": \"many\", \"addresses\": [");
                for (unsigned i = 0; i < SHM_ADDRS_MAX + extra; i++)
                        len += (size_t) snprintf(doc + len, cap - len, "%s\"10.%u.%u.%u\"", i ? "," : "",
                                                 i >> 16, (i >> 8) & 0xff, i & 0xff);
                len += (size_t) snprintf(doc + len, cap - len, ", \"fd7a::1\"]}]}");
                ck_assert_uint_lt(len, cap);

                if (extra == 0) {
                        m = NULL;
                        ck_assert_msg(peers_parse(doc, len, SOURCE, &m, &err) == 0, "%s", err.message);
                        peer_map_to_shm(m, &s);
                        ck_assert_uint_eq(s.peers[0].n_v4, SHM_ADDRS_MAX);
                        ck_assert_uint_eq(s.peers[0].n_v6, 1);
                        peer_map_free(m);
                } else {
                        m = UNTOUCHED;
                        ck_assert_int_eq(peers_parse(doc, len, SOURCE, &m, &err), -EBADMSG);
                        ck_assert_ptr_eq(m, UNTOUCHED);
                        ck_assert_str_eq(err.path, "peers[0].addresses");
                        ck_assert_msg(strstr(err.message, "more than 65535 IPv4 addresses"), "%s", err.message);
                }
        }
        free(doc);
}
END_TEST

START_TEST(test_online_ttl) {
        refuses("{'domain': 'a.b', 'peers': [{'name': 'a', 'addresses': [], 'online': 'yes'}]}", "peers[0].online",
                "expected true or false, got a string");
        refuses("{'domain': 'a.b', 'peers': [{'name': 'a', 'addresses': [], 'online': 1}]}", "peers[0].online",
                "got an integer");
        refuses("{'domain': 'a.b', 'peers': [{'name': 'a', 'addresses': [], 'ttl': -1}]}", "peers[0].ttl",
                "-1 is out of range");
        refuses("{'domain': 'a.b', 'peers': [{'name': 'a', 'addresses': [], 'ttl': 2147483648}]}", "peers[0].ttl",
                "2147483648 is out of range");
        refuses("{'domain': 'a.b', 'peers': [{'name': 'a', 'addresses': [], 'ttl': 1.5}]}", "peers[0].ttl",
                "expected an integer number of seconds, got a fractional number");
        refuses("{'domain': 'a.b', 'peers': [{'name': 'a', 'addresses': [], 'ttl': '60'}]}", "peers[0].ttl",
                "got a string");
        refuses("{'domain': 'a.b', 'ttl': -5, 'peers': []}", "ttl", "-5 is out of range");
        refuses("{'domain': 'a.b', 'ttl': true, 'peers': []}", "ttl", "got a boolean");
        accepts("{'domain': 'a.b', 'ttl': 0, 'peers': []}");
        accepts("{'domain': 'a.b', 'ttl': 2147483647, 'peers': []}");
}
END_TEST

START_TEST(test_ranges) {
        PeerMap *m;
        ShmMap s;
        char text[INET6_ADDRSTRLEN], *doc;

        m = parse_ok("{'domain': 'a.b', 'ranges': ['10.1.0.0/16', '2001:db8::/32', '192.0.2.1/32', '::2/128'],"
                     " 'peers': []}");
        peer_map_to_shm(m, &s);
        ck_assert_uint_eq(s.n_ranges, 4);
        ck_assert_int_eq(s.ranges[0].family, AF_INET);
        ck_assert_uint_eq(s.ranges[0].prefixlen, 16);
        ck_assert_str_eq(inet_ntop(AF_INET, &s.ranges[0].addr.in, text, sizeof text), "10.1.0.0");
        ck_assert_int_eq(s.ranges[1].family, AF_INET6);
        ck_assert_uint_eq(s.ranges[1].prefixlen, 32);
        ck_assert_str_eq(inet_ntop(AF_INET6, &s.ranges[1].addr.in6, text, sizeof text), "2001:db8::");
        ck_assert_uint_eq(s.ranges[2].prefixlen, 32);
        ck_assert_uint_eq(s.ranges[3].prefixlen, 128);
        peer_map_free(m);

        /* No ranges at all: only the peers' own addresses are ours. */
        m = parse_ok("{'domain': 'a.b', 'ranges': [], 'peers': []}");
        peer_map_to_shm(m, &s);
        ck_assert_uint_eq(s.n_ranges, 0);
        peer_map_free(m);

        /* SHM_RANGES_MAX fit, one more does not. */
        doc = strdup("{'domain': 'a.b', 'ranges': ['10.1.0.0/16', '10.2.0.0/16', '10.3.0.0/16', '10.4.0.0/16',"
                     " '10.5.0.0/16', '10.6.0.0/16', '10.7.0.0/16', '10.8.0.0/16'], 'peers': []}");
        accepts(doc);
        free(doc);
        refuses("{'domain': 'a.b', 'ranges': ['10.1.0.0/16', '10.2.0.0/16', '10.3.0.0/16', '10.4.0.0/16',"
                " '10.5.0.0/16', '10.6.0.0/16', '10.7.0.0/16', '10.8.0.0/16', '10.9.0.0/16'], 'peers': []}",
                "ranges", "has 9 prefixes; at most 8");

        refuses("{'domain': 'a.b', 'ranges': '100.64.0.0/10', 'peers': []}", "ranges",
                "expected an array of prefixes, got a string");
        refuses_range("100.64.0.1", "has no prefix length");
        refuses_range("100.64.0.0/", "bad prefix length");
        refuses_range("100.64.0.0/x", "bad prefix length");
        refuses_range("100.64.0.0/010", "bad prefix length");
        refuses_range("100.64.0.0/+10", "bad prefix length");
        refuses_range("100.64.0.0/1000", "bad prefix length");
        refuses_range("100.64.0.0/33", "prefix length 33 is more than 32");
        refuses_range("fd7a::/129", "prefix length 129 is more than 128");
        refuses_range("0.0.0.0/0", "would claim every address");
        refuses_range("::/0", "would claim every address");
        refuses_range("100.64.0.1/10", "has bits set after the first 10");
        refuses_range("fd7a:115c:a1e0::1/48", "has bits set after the first 48");
        refuses_range("100.64.0/10", "is not an IPv4 or IPv6 prefix");
        refuses_range("yourorg/10", "is not an IPv4 or IPv6 prefix");
        refuses("{'domain': 'a.b', 'ranges': [10], 'peers': []}", "ranges[0]", "expected a string");
}
END_TEST

/* ---- what this machine lets a document claim (ztnad.conf) ---- */

static ShmPrefix prefix(const char *text, unsigned len) {
        ShmPrefix p = { .prefixlen = len };

        if (inet_pton(AF_INET, text, &p.addr.in) == 1)
                p.family = AF_INET;
        else {
                ck_assert_int_eq(inet_pton(AF_INET6, text, &p.addr.in6), 1);
                p.family = AF_INET6;
        }
        return p;
}

/* ztnad.conf's defaults: domains, address_space. */
static const char *const default_domains[] = { "yourorg.zt.net" };
static ShmPrefix default_space[5];
static PeersPolicy default_policy;

static void default_policy_set(void) {
        default_space[0] = prefix("100.64.0.0", 10);
        default_space[1] = prefix("10.0.0.0", 8);
        default_space[2] = prefix("172.16.0.0", 12);
        default_space[3] = prefix("192.168.0.0", 16);
        default_space[4] = prefix("fc00::", 7);
        default_policy = (PeersPolicy) {
                .domains = default_domains,
                .n_domains = 1,
                .allowed = default_space,
                .n_allowed = 5,
        };
        policy = &default_policy;
}

static void accepts_address(const char *addr) {
        char *peer = docf("{'name': 'a', 'addresses': ['%s']}", addr);
        char *doc = with_peers(peer);

        accepts(doc);
        free(doc);
        free(peer);
}

static void refuses_outside(const char *addr) {
        char *needle = docf("\"%s\" of peer \"a\" is outside the address space this machine allows "
                            "(address_space in ztnad.conf: 100.64.0.0/10 10.0.0.0/8 172.16.0.0/12 "
                            "192.168.0.0/16 fc00::/7)",
                            addr);

        refuses_address(addr, needle);
        free(needle);
}

START_TEST(test_public_suffix) {
        /* With or without a policy: no tailnet owns a public suffix. */
        for (int pass = 0; pass < 2; pass++) {
                if (pass == 1)
                        default_policy_set();
                refuses_domain("'co.uk'", "\"co.uk\" is a public suffix: anyone may register names under it");
                refuses_domain("'CO.UK.'", "is a public suffix");
                refuses_domain("'github.io'", "is a public suffix");      /* the list's private section */
                refuses_domain("'anything.kawasaki.jp'", "is a public suffix"); /* a wildcard rule */
                refuses_domain("'com'", "single label");
        }
        policy = NULL;
        /* Under a suffix is a name someone registered, an exception rule's
         * name too. */
        accepts_domain("example.co.uk", "example.co.uk");
        accepts_domain("city.kawasaki.jp", "city.kawasaki.jp");
}
END_TEST

START_TEST(test_pinned_domain) {
        default_policy_set();
        accepts_domain("yourorg.zt.net", "yourorg.zt.net");
        accepts_domain("YourOrg.ZT.net.", "YourOrg.ZT.net");
        refuses_domain("'example.com'", "\"example.com\" is not a domain this machine takes maps for (domains in "
                                        "ztnad.conf: yourorg.zt.net)");
        refuses_domain("'sub.yourorg.zt.net'", "is not a domain this machine takes maps for");
        refuses_domain("'zt.net'", "is not a domain this machine takes maps for");
        /* The document's other checks come first: a bad domain says why. */
        refuses_domain("'yourorg..zt.net'", "is empty");

        /* Any of several. */
        {
                static const char *const two[] = { "yourorg.zt.net", "corp.example" };
                PeersPolicy p = default_policy;

                p.domains = two;
                p.n_domains = 2;
                policy = &p;
                accepts_domain("corp.example", "corp.example");
                accepts_domain("yourorg.zt.net", "yourorg.zt.net");
                refuses_domain("'example.com'", "(domains in ztnad.conf: yourorg.zt.net corp.example)");
                policy = NULL;
        }
}
END_TEST

START_TEST(test_address_space) {
        char *doc;

        default_policy_set();

        refuses_outside("8.8.8.8");
        refuses_outside("2001:4860::8888");
        refuses_outside("192.0.2.1");
        refuses_outside("2001:db8::1");
        /* Each default prefix: its first and last address, and one past
         * either end. */
        accepts_address("100.64.0.0");
        accepts_address("100.127.255.255");
        refuses_outside("100.63.255.255");
        refuses_outside("100.128.0.0");
        accepts_address("10.0.0.1");
        accepts_address("10.255.255.255");
        refuses_outside("9.255.255.255");
        refuses_outside("11.0.0.0");
        accepts_address("172.16.0.0");
        accepts_address("172.31.255.255");
        refuses_outside("172.15.255.255");
        refuses_outside("172.32.0.0");
        accepts_address("192.168.0.0");
        accepts_address("192.168.255.255");
        refuses_outside("192.167.255.255");
        refuses_outside("192.169.0.0");
        accepts_address("fc00::");
        accepts_address("fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
        refuses_outside("fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
        refuses_outside("fe00::");

        /* The peer is named, at its place in the document. */
        doc = with_peers("{'name': 'Win-A', 'addresses': ['100.64.0.1']},"
                         " {'name': 'evil', 'addresses': ['fd7a:115c:a1e0::9', '8.8.4.4']}");
        refuses(doc, "peers[1].addresses[1]", "\"8.8.4.4\" of peer \"evil\" is outside");
        free(doc);
}
END_TEST

START_TEST(test_range_space) {
        default_policy_set();

        accepts("{'domain': 'yourorg.zt.net', 'ranges': ['100.64.0.0/10', 'fd7a:115c:a1e0::/48', '10.9.0.0/16',"
                " '192.168.1.0/24', '172.16.0.0/12', 'fc00::/7', '10.0.0.1/32'], 'peers': []}");
        refuses_range("8.8.0.0/16", "\"8.8.0.0/16\" is outside the address space this machine allows "
                                    "(address_space in ztnad.conf: 100.64.0.0/10 10.0.0.0/8");
        /* Wider than an allowed prefix is outside it too. */
        refuses_range("100.0.0.0/8", "\"100.0.0.0/8\" is outside");
        refuses_range("fc00::/6", "\"fc00::/6\" is outside");
        refuses_range("2001:4860::/32", "is outside");
        refuses_range("100.128.0.0/10", "is outside");

        /* Without "ranges" the defaults are published, so they are held to
         * the policy as well. */
        accepts("{'domain': 'yourorg.zt.net', 'peers': []}");
        {
                PeersPolicy p = default_policy;

                p.n_allowed = 1; /* 100.64.0.0/10 only */
                policy = &p;
                refuses("{'domain': 'yourorg.zt.net', 'peers': []}", "ranges",
                        "missing, and the default range fd7a:115c:a1e0::/48 is outside the address space");
                accepts("{'domain': 'yourorg.zt.net', 'ranges': ['100.64.0.0/10'], 'peers': []}");
                policy = NULL;
        }
}
END_TEST

START_TEST(test_widened_space) {
        ShmPrefix wide[7];
        PeersPolicy p;
        PeerMap *m;
        ShmMap s;

        default_policy_set();
        memcpy(wide, default_space, sizeof default_space);
        wide[5] = prefix("8.8.8.0", 24);
        wide[6] = prefix("2001:4860::", 32);
        p = default_policy;
        p.allowed = wide;
        p.n_allowed = 7;
        policy = &p;
        m = parse_ok("{'domain': 'yourorg.zt.net', 'ranges': ['100.64.0.0/10', '8.8.8.0/24', '2001:4860::/32'],"
                     " 'peers': [{'name': 'dns', 'addresses': ['8.8.8.8', '2001:4860::8888']}]}");
        peer_map_to_shm(m, &s);
        ck_assert_uint_eq(s.n_peers, 1);
        assert_v4(&s.peers[0].v4[0], "8.8.8.8");
        assert_v6(&s.peers[0].v6[0], "2001:4860::8888");
        peer_map_free(m);
        refuses_address("8.8.4.4", "is outside");

        /* Every address, for an operator who says so. */
        wide[0] = prefix("0.0.0.0", 0);
        wide[1] = prefix("::", 0);
        p.n_allowed = 2;
        accepts_address("8.8.4.4");
        accepts_address("2a00:1450::1");
        policy = NULL;
}
END_TEST

START_TEST(test_size_cap) {
        static const char small[] = "{}";
        PeersError err;
        PeerMap *m = UNTOUCHED;

        /* Refused on the length alone, before a byte is read. */
        ck_assert_int_eq(peers_parse(small, PEERS_INPUT_MAX + 1, SOURCE, &m, &err), -E2BIG);
        ck_assert_ptr_eq(m, UNTOUCHED);
        ck_assert_msg(strstr(err.message, SOURCE ": is 67108865 bytes; the limit is 67108864"), "%s", err.message);
}
END_TEST

START_TEST(test_load_file) {
        const char *tmp = getenv("TMPDIR");
        char dir[256], path[320];
        PeersError err;
        PeerMap *m = UNTOUCHED;
        FILE *f;

        snprintf(dir, sizeof dir, "%s/test-peers-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
        ck_assert_ptr_nonnull(mkdtemp(dir));

        snprintf(path, sizeof path, "%s/missing.json", dir);
        ck_assert_int_eq(peers_load_file(path, &m, &err), -ENOENT);
        ck_assert_ptr_eq(m, UNTOUCHED);
        ck_assert_msg(strstr(err.message, "missing.json: cannot open: "), "%s", err.message);

        ck_assert_int_eq(peers_load_file(dir, &m, &err), -EINVAL);
        ck_assert_msg(strstr(err.message, "is not a regular file"), "%s", err.message);

        /* A FIFO must be refused, not waited on. */
        snprintf(path, sizeof path, "%s/fifo", dir);
        ck_assert_int_eq(mkfifo(path, 0600), 0);
        ck_assert_int_eq(peers_load_file(path, &m, &err), -EINVAL);
        ck_assert_ptr_eq(m, UNTOUCHED);
        ck_assert_int_eq(unlink(path), 0);

        /* Errors in a file name the file. */
        snprintf(path, sizeof path, "%s/bad.json", dir);
        f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fputs("{\"domain\": \"a.b\",\n \"peers\": [{\"name\": \"a\", \"addresses\": [\"1.2.3\"]}]}\n", f);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_int_eq(peers_load_file(path, &m, &err), -EBADMSG);
        ck_assert_ptr_eq(m, UNTOUCHED);
        ck_assert_msg(strstr(err.message, "bad.json: peers[0].addresses[0]: \"1.2.3\" is not an IPv4 or IPv6"),
                      "%s", err.message);
        ck_assert_msg(strncmp(err.message, path, strlen(path)) == 0, "%s", err.message);
        ck_assert_int_eq(unlink(path), 0);

        /* An empty file is a syntax error, not an empty tailnet. */
        snprintf(path, sizeof path, "%s/empty.json", dir);
        f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_int_eq(peers_load_file(path, &m, &err), -EBADMSG);
        ck_assert_ptr_eq(m, UNTOUCHED);
        ck_assert_int_eq(unlink(path), 0);

        ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(test_null_error) {
        PeerMap *m = UNTOUCHED;
        const char bad[] = "{\"domain\": 1}";

        /* The error report is optional. */
        ck_assert_int_eq(peers_parse(bad, sizeof bad - 1, NULL, &m, NULL), -EBADMSG);
        ck_assert_ptr_eq(m, UNTOUCHED);
        ck_assert_int_eq(peers_parse("{", 1, SOURCE, &m, NULL), -EBADMSG);
        ck_assert_ptr_null(peer_map_free(NULL));
}
END_TEST

/* Refused as a syntax error: -EBADMSG, no JSON path, "test.json:LINE:COL:
 * ..." naming `needle`. `doc` is taken as bytes (no quote swapping). */
static void refuses_syntax(const char *doc, size_t len, const char *needle) {
        PeersError err;
        PeerMap *m = UNTOUCHED;
        int r;

        memset(&err, 0x55, sizeof err);
        r = peers_parse(doc, len, SOURCE, &m, &err);
        ck_assert_msg(r == -EBADMSG, "expected -EBADMSG, got %d for %.*s", r, (int) len, doc);
        ck_assert_ptr_eq(m, UNTOUCHED);
        ck_assert_str_eq(err.path, "");
        ck_assert_int_ge(err.line, 1);
        ck_assert_int_ge(err.column, 1);
        ck_assert_msg(strncmp(err.message, SOURCE ":", strlen(SOURCE ":")) == 0, "%s", err.message);
        ck_assert_msg(strstr(err.message, needle), "message \"%s\" lacks \"%s\"", err.message, needle);
        ck_assert_ptr_null(strchr(err.message, '\n'));
}

static void refuses_syntax_sq(const char *sq, const char *needle) {
        char *j = unquote(sq);

        refuses_syntax(j, strlen(j), needle);
        free(j);
}

START_TEST(test_reader_strings) {
        PeerMap *m;
        ShmMap s;
        char text[INET_ADDRSTRLEN];

        /* Escapes in keys and values are decoded before anything is judged. */
        m = parse_ok("{'domain': 'yourorg.zt.net', 'peers': [{'n\\u0061me': 'W\\u0069n-\\u0041', "
                     "'addresses': ['100.64.0.\\u0031']}]}");
        peer_map_to_shm(m, &s);
        ck_assert_uint_eq(s.n_peers, 1);
        ck_assert_str_eq(s.peers[0].name, "Win-A");
        ck_assert_uint_eq(s.peers[0].n_v4, 1);
        ck_assert_str_eq(inet_ntop(AF_INET, &s.peers[0].v4[0], text, sizeof text), "100.64.0.1");
        peer_map_free(m);

        /* Every short escape, decoded (then quoted back for the message). */
        refuses("{'domain': 'a.b', 'peers': [], 'a\\\"b\\\\c\\/d\\be\\ff\\ng\\rh\\ti': 1}", "",
                "unknown key \"a\\\"b\\\\c/d\\x08e\\x0cf\\x0ag\\x0dh\\x09i\" at the top level");
        /* \u escapes become UTF-8: two bytes, three, and a surrogate pair's four. */
        refuses_name("'\\u00e9'", "contains byte 0xc3 at position 1");
        refuses_name("'a\\u20acb'", "contains byte 0xe2 at position 2");
        refuses_name("'ab\\ud83d\\ude00'", "contains byte 0xf0 at position 3");
        /* Raw UTF-8 is fine JSON, and still no label. */
        refuses_name("'\xc3\xa9'", "contains byte 0xc3 at position 1");

        refuses_syntax_sq("{'domain': 'a.b', 'peers': [], 'x': '\\udc00'}", "low surrogate");
        refuses_syntax_sq("{'domain': 'a.b', 'peers': [], 'x': '\\ud83d'}", "high surrogate");
        refuses_syntax_sq("{'domain': 'a.b', 'peers': [], 'x': '\\ud83dx'}", "high surrogate");
        refuses_syntax_sq("{'domain': 'a.b', 'peers': [], 'x': '\\ud83d\\u0041'}", "high surrogate");
        refuses_syntax_sq("{'domain': 'a.b', 'peers': [], 'x': '\\x41'}", "expected an escape");
        refuses_syntax_sq("{'domain': 'a.b', 'peers': [], 'x': '\\u12g4'}", "hexadecimal");
        refuses_syntax_sq("{'domain': 'a.b', 'peers': [], 'x': '\\u0000'}", "\\u0000");
        refuses_syntax_sq("{'domain': 'a.b', 'peers': [], 'x': 'a\tb'}", "control character 0x09");
        refuses_syntax_sq("{'domain': 'a.b", "not terminated");
        /* Overlong, surrogate, above U+10FFFF, truncated, stray bytes. */
        refuses_syntax_sq("{'domain': 'a.b', 'x': '\xc0\xaf'}", "UTF-8");
        refuses_syntax_sq("{'domain': 'a.b', 'x': '\xe0\x80\xaf'}", "UTF-8");
        refuses_syntax_sq("{'domain': 'a.b', 'x': '\xed\xa0\x80'}", "UTF-8");
        refuses_syntax_sq("{'domain': 'a.b', 'x': '\xf4\x90\x80\x80'}", "UTF-8");
        refuses_syntax_sq("{'domain': 'a.b', 'x': '\xe2\x82'}", "UTF-8");
        refuses_syntax_sq("{'domain': 'a.b', 'x': '\x80'}", "UTF-8");
        refuses_syntax_sq("{'domain': 'a.b', 'x': '\xff'}", "UTF-8");
        /* The longest forms are accepted. */
        refuses("{'domain': 'a.b', 'peers': [], '\xf4\x8f\xbf\xbf\xef\xbf\xbd': 1}", "", "unknown key");
}
END_TEST

START_TEST(test_reader_numbers) {
        PeerMap *m;
        ShmMap s;

        accepts("{'domain': 'a.b', 'ttl': -0, 'peers': []}");
        m = parse_ok("{'domain': 'a.b', 'peers': [{'name': 'a', 'addresses': [], 'ttl': 120}], 'ttl': 7}");
        peer_map_to_shm(m, &s);
        ck_assert_uint_eq(s.peers[0].ttl, 120);
        peer_map_free(m);

        refuses("{'domain': 'a.b', 'ttl': 1e3, 'peers': []}", "ttl", "got a fractional number");
        refuses("{'domain': 'a.b', 'ttl': 1.0, 'peers': []}", "ttl", "got a fractional number");
        refuses("{'domain': 'a.b', 'ttl': 1E+2, 'peers': []}", "ttl", "got a fractional number");
        refuses("{'domain': 'a.b', 'ttl': -1.5e-3, 'peers': []}", "ttl", "got a fractional number");
        refuses("{'domain': 'a.b', 'ttl': 9223372036854775807, 'peers': []}", "ttl",
                "9223372036854775807 is out of range");
        refuses("{'domain': 'a.b', 'ttl': -9223372036854775808, 'peers': []}", "ttl",
                "-9223372036854775808 is out of range");
        refuses_syntax_sq("{'domain': 'a.b', 'ttl': 9223372036854775808, 'peers': []}", "too big");
        refuses_syntax_sq("{'domain': 'a.b', 'ttl': -9223372036854775809, 'peers': []}", "too big");

        static const char *const bad[] = { "01", "-", "1.", ".5", "+1", "1e", "1e+", "0x10", "-01", "--1", "1.e3" };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char *doc = docf("{'domain': 'a.b', 'ttl': %s, 'peers': []}", bad[i]);

                refuses_syntax_sq(doc, "expected");
                free(doc);
        }
}
END_TEST

START_TEST(test_reader_structure) {
        PeerMap *m;
        ShmMap s;
        char *deep, *doc;

        /* Members in any order: the default ttl after the peers still counts. */
        m = parse_ok("{'peers': [{'addresses': ['100.64.0.1'], 'name': 'a'}], 'ttl': 7, 'domain': 'a.b'}");
        peer_map_to_shm(m, &s);
        ck_assert_str_eq(s.domain, "a.b");
        ck_assert_uint_eq(s.peers[0].ttl, 7);
        peer_map_free(m);
        accepts(" \t\r\n{ \t\r\n'domain' \t\r\n: \t\r\n'a.b' \t\r\n, 'peers' : [ { 'name' : 'a' , "
                "'addresses' : [ ] , 'online' : false } ] } \t\r\n");

        refuses_syntax_sq("{'domain': 'a.b', 'peers': [], 'x': tru}", "expected a JSON value");
        refuses_syntax_sq("{'domain': 'a.b', 'peers': [], 'x': nul}", "expected a JSON value");
        refuses_syntax_sq("{'domain': 'a.b', 'peers': [], 'x': falsey}", "expected ',' or '}'");
        refuses_syntax_sq("{'domain': 'a.b', 'peers': []} {}", "end of the document");
        refuses_syntax_sq("{'domain': 'a.b', 'peers': []},", "end of the document");
        refuses_syntax_sq("\xef\xbb\xbf{'domain': 'a.b', 'peers': []}", "expected '{'");
        refuses_syntax_sq("42", "expected '{'");
        refuses_syntax_sq("'a.b'", "expected '{'");
        refuses_syntax_sq("   ", "end of input");
        refuses_syntax_sq("{'domain' 'a.b'}", "expected ':'");
        refuses_syntax_sq("{'domain': 'a.b',}", "expected a string");
        refuses_syntax_sq("{'domain': 'a.b', 'peers': [1 2]}", "expected ',' or ']'");
        refuses_syntax_sq("{'domain': 'a.b', 'peers': [1,]}", "expected a JSON value");
        refuses_syntax_sq("{domain: 'a.b'}", "expected a string");
        refuses("[]", "", "the document must be a JSON object, got an array");

        /* A peer's key twice, once escaped: which one would count? */
        refuses_syntax_sq("{'domain': 'a.b', 'peers': [{'name': 'a', 'addresses': [],\n"
                          " 'n\\u0061me': 'b'}]}",
                          "duplicate object key \"name\"");
        {
                PeersError err;
                PeerMap *mm = UNTOUCHED;
                static const char dup[] = "{\"domain\": \"a.b\",\n\"peers\": [{\"name\": \"a\",\n\"addresses\": [],"
                                          "\n\"addresses\": []}]}";

                ck_assert_int_eq(peers_parse(dup, sizeof dup - 1, SOURCE, &mm, &err), -EBADMSG);
                ck_assert_int_eq(err.line, 4);
                ck_assert_int_eq(err.column, 1);
        }

        /* Nesting: deep enough to be only an unknown member, then too deep. */
        for (size_t depth = 100; depth <= 200; depth += 100) {
                char *open = repeat('[', depth), *close = repeat(']', depth);

                deep = docf("%s1%s", open, close);
                doc = docf("{'domain': 'a.b', 'peers': [], 'x': %s}", deep);
                if (depth == 100)
                        refuses(doc, "", "unknown key \"x\" at the top level");
                else
                        refuses_syntax_sq(doc, "nested more than");
                free(doc);
                free(deep);
                free(open);
                free(close);
        }
}
END_TEST

/* Every prefix of a document is a syntax error, never a crash, a read past
 * its end or a map. */
START_TEST(test_reader_truncated) {
        char *doc = unquote("{'domain': 'yourorg.zt.net', 'ranges': ['100.64.0.0/10'], 'ttl': 60, 'peers': ["
                            "{'name': 'W\\u0069n-A', 'addresses': ['100.64.0.1', 'fd7a:115c:a1e0::1'], "
                            "'online': true, 'ttl': -0}, {'name': 'b\xc3\xa9', 'addresses': [], 'online': false, "
                            "'ttl': 1.5e2, 'x': null}]}");
        size_t len = strlen(doc);

        for (size_t n = 0; n < len; n++) {
                /* A copy of exactly n bytes, so ASan sees any read past it. */
                char *cut = malloc(n ? n : 1);
                PeerMap *m = UNTOUCHED;
                PeersError err;

                ck_assert_ptr_nonnull(cut);
                memcpy(cut, doc, n);
                ck_assert_int_eq(peers_parse(cut, n, SOURCE, &m, &err), -EBADMSG);
                ck_assert_ptr_eq(m, UNTOUCHED);
                ck_assert_msg(err.path[0] == '\0', "prefix of %zu bytes: %s", n, err.message);
                free(cut);
        }
        /* The whole of it is valid JSON: what is refused is a value. */
        {
                PeerMap *m = UNTOUCHED;
                PeersError err;

                ck_assert_int_eq(peers_parse(doc, len, SOURCE, &m, &err), -EBADMSG);
                ck_assert_str_eq(err.path, "peers[1]");
                ck_assert_msg(strstr(err.message, "unknown key \"x\""), "%s", err.message);
        }
        free(doc);
}
END_TEST

static Suite *peers_suite(void) {
        Suite *s = suite_create("peers");
        TCase *tc = tcase_create("parse");

        tcase_add_test(tc, test_example_file);
        tcase_add_test(tc, test_minimal_and_defaults);
        tcase_add_test(tc, test_peer_fields);
        tcase_add_test(tc, test_syntax_errors);
        tcase_add_test(tc, test_reader_strings);
        tcase_add_test(tc, test_reader_numbers);
        tcase_add_test(tc, test_reader_structure);
        tcase_add_test(tc, test_reader_truncated);
        tcase_add_test(tc, test_document_shape);
        tcase_add_test(tc, test_unknown_peer_key);
        tcase_add_test(tc, test_domain);
        tcase_add_test(tc, test_domain_length);
        tcase_add_test(tc, test_reserved_domain);
        tcase_add_test(tc, test_name);
        tcase_add_test(tc, test_reserved_names);
        tcase_add_test(tc, test_fqdn_length);
        tcase_add_test(tc, test_duplicate_names);
        tcase_add_test(tc, test_addresses);
        tcase_add_test(tc, test_duplicate_addresses);
        tcase_add_test(tc, test_address_count);
        tcase_add_test(tc, test_online_ttl);
        tcase_add_test(tc, test_ranges);
        tcase_add_test(tc, test_public_suffix);
        tcase_add_test(tc, test_pinned_domain);
        tcase_add_test(tc, test_address_space);
        tcase_add_test(tc, test_range_space);
        tcase_add_test(tc, test_widened_space);
        tcase_add_test(tc, test_size_cap);
        tcase_add_test(tc, test_load_file);
        tcase_add_test(tc, test_null_error);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(peers_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
