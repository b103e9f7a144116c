/* SPDX-License-Identifier: MIT */
/*
 * ztnad.conf: every key's default, every kind of bad value refused with a
 * message naming the file, the line and the key, the file syntax (sections,
 * comments, quotes, line endings, limits), the shipped example and man page
 * kept in step with the parser, and config_print() reading back as itself.
 */

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf/config.h"
#include "conf/config-example.h"

#define SOURCE "test.conf"

/* Stands for "not written": a failed parse must leave *ret alone. */
static char untouched_storage;
#define UNTOUCHED ((ZtnadConfig *) (void *) &untouched_storage)

__attribute__((format(printf, 1, 2)))
static char *textf(const char *fmt, ...) {
        va_list ap;
        char *s;

        va_start(ap, fmt);
        ck_assert_int_ge(vasprintf(&s, fmt, ap), 0);
        va_end(ap);
        return s;
}

static char *repeat(char c, size_t n) {
        char *s = malloc(n + 1);

        ck_assert_ptr_nonnull(s);
        memset(s, c, n);
        s[n] = '\0';
        return s;
}

static ZtnadConfig *parse_ok(const char *text) {
        ConfigError err = {};
        ZtnadConfig *c = NULL;
        int r = config_parse(text, strlen(text), SOURCE, &c, &err);

        ck_assert_msg(r == 0, "refused (%d): %s\n--- file:\n%s", r, err.message, text);
        ck_assert_ptr_nonnull(c);
        return c;
}

static ZtnadConfig *defaults(void) {
        ZtnadConfig *c = NULL;

        ck_assert_int_eq(config_defaults(&c), 0);
        ck_assert_ptr_nonnull(c);
        return c;
}

/* Whether `a` and `b` make the daemon behave the same: config_diff(), the
 * comparison a reload makes, finds no key that differs. */
static bool same(const ZtnadConfig *a, const ZtnadConfig *b) {
        size_t n = SIZE_MAX;

        (void) config_diff(a, b, NULL, 0, &n);
        return n == 0;
}

static bool printable_line(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f)
                        return false;
        return true;
}

/* `text` is refused at `line` (0: none) for `key` ("" for none), with a
 * message that starts "test.conf:LINE: key 'KEY': " and contains `why`. */
static void refused_bytes(const char *text, size_t len, unsigned line, const char *key, const char *why) {
        _cleanup_free_ char *prefix = NULL;
        ConfigError err;
        ZtnadConfig *c = UNTOUCHED;
        int r;

        memset(&err, 'x', sizeof err);
        r = config_parse(text, len, SOURCE, &c, &err);
        ck_assert_msg(r == -EBADMSG, "accepted (%d): %.*s", r, (int) len, text);
        ck_assert_ptr_eq(c, UNTOUCHED);
        ck_assert_str_eq(err.file, SOURCE);
        ck_assert_uint_eq(err.line, line);
        ck_assert_str_eq(err.key, key);
        if (line > 0 && key[0])
                prefix = textf("%s:%u: key '%s': ", SOURCE, line, key);
        else if (line > 0)
                prefix = textf("%s:%u: ", SOURCE, line);
        else if (key[0])
                prefix = textf("%s: key '%s': ", SOURCE, key);
        else
                prefix = textf("%s: ", SOURCE);
        ck_assert_msg(strncmp(err.message, prefix, strlen(prefix)) == 0, "message \"%s\" does not start \"%s\"",
                      err.message, prefix);
        ck_assert_msg(strstr(err.message, why), "message \"%s\" does not say \"%s\"", err.message, why);
        ck_assert_msg(printable_line(err.message), "message is not one printable line: %s", err.message);
}

static void refused(const char *text, unsigned line, const char *key, const char *why) {
        refused_bytes(text, strlen(text), line, key, why);
}

static char *print_to_string(const ZtnadConfig *c) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        ck_assert_ptr_nonnull(f);
        config_print(c, f);
        ck_assert_int_eq(fclose(f), 0);
        return text;
}

/* config_print() reads back as an equal configuration, and prints the same
 * again. */
static void assert_round_trip(const ZtnadConfig *c) {
        _cleanup_free_ char *first = print_to_string(c), *second = NULL;
        _cleanup_config_ ZtnadConfig *again = parse_ok(first);

        ck_assert_msg(same(c, again), "printed configuration reads back different:\n%s", first);
        second = print_to_string(again);
        ck_assert_str_eq(first, second);
}

static const char *source_path(const char *relative) {
        static char path[4096];
        const char *slash = strrchr(__FILE__, '/');

        /* This file is ztnad/conf/: the repository is two levels up. */
        if (slash)
                snprintf(path, sizeof path, "%.*s/../../%s", (int) (slash - __FILE__), __FILE__, relative);
        else
                snprintf(path, sizeof path, "../../%s", relative);
        return path;
}

static char *read_text(const char *path) {
        FILE *f = fopen(path, "re");
        char *text;
        long size;

        ck_assert_msg(f != NULL, "cannot open %s", path);
        ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
        size = ftell(f);
        ck_assert_int_ge(size, 0);
        rewind(f);
        text = malloc((size_t) size + 1);
        ck_assert_ptr_nonnull(text);
        ck_assert_uint_eq(fread(text, 1, (size_t) size, f), (size_t) size);
        text[size] = '\0';
        fclose(f);
        return text;
}

static uint16_t sa_port(const ConfigAddress *a) {
        if (a->sa.ss_family == AF_INET)
                return ntohs(((const struct sockaddr_in *) &a->sa)->sin_port);
        return ntohs(((const struct sockaddr_in6 *) &a->sa)->sin6_port);
}

static void assert_address(const ConfigAddress *a, int family, const char *addr, uint16_t port, const char *name) {
        char text[INET6_ADDRSTRLEN];
        const void *bytes = family == AF_INET ? (const void *) &((const struct sockaddr_in *) &a->sa)->sin_addr
                                              : (const void *) &((const struct sockaddr_in6 *) &a->sa)->sin6_addr;

        ck_assert_int_eq(a->sa.ss_family, family);
        ck_assert_uint_eq(a->sa_len,
                          family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
        ck_assert_ptr_nonnull(inet_ntop(family, bytes, text, sizeof text));
        ck_assert_str_eq(text, addr);
        ck_assert_uint_eq(a->port, port);
        ck_assert_uint_eq(sa_port(a), port);
        ck_assert_str_eq(a->tls_name, name);
}

/* ---- defaults ---- */

static void assert_prefix(const ShmPrefix *p, int family, const char *text, unsigned len) {
        char buf[INET6_ADDRSTRLEN];

        ck_assert_int_eq(p->family, family);
        ck_assert_str_eq(inet_ntop(family, &p->addr, buf, sizeof buf), text);
        ck_assert_uint_eq(p->prefixlen, len);
}

START_TEST(test_defaults) {
        _cleanup_config_ ZtnadConfig *c = defaults();

        ck_assert_str_eq(c->store, "/run/ztna/records");
        ck_assert_str_eq(c->state_dir, "/var/lib/ztna");
        ck_assert_ptr_null(c->peers_file);
        ck_assert_int_eq(c->offline_peers, CONFIG_OFFLINE_SHOW);
        ck_assert_ptr_null(c->control_url);
        ck_assert_ptr_null(c->org_id);
        ck_assert_str_eq(c->token_file, "/etc/ztna/token");
        ck_assert_ptr_null(c->ca_file);
        ck_assert_uint_eq(c->sync_interval_usec, 30 * USEC_PER_SEC);
        ck_assert_str_eq(c->control_socket, "/run/ztna/control.sock");
        ck_assert_str_eq(c->control_group, "ztna");
        ck_assert_uint_eq(c->domains.n, 1);
        ck_assert_str_eq(c->domains.items[0], "yourorg.zt.net");
        ck_assert_uint_eq(c->address_space.n, 5);
        assert_prefix(&c->address_space.items[0], AF_INET, "100.64.0.0", 10);
        assert_prefix(&c->address_space.items[1], AF_INET, "10.0.0.0", 8);
        assert_prefix(&c->address_space.items[2], AF_INET, "172.16.0.0", 12);
        assert_prefix(&c->address_space.items[3], AF_INET, "192.168.0.0", 16);
        assert_prefix(&c->address_space.items[4], AF_INET6, "fc00::", 7);

        ck_assert(c->stub);
        ck_assert_uint_eq(c->listen.n, 1);
        assert_address(&c->listen.items[0], AF_INET, "127.0.0.53", 53, "");
        ck_assert_uint_eq(c->upstream.n, 2);
        assert_address(&c->upstream.items[0], AF_INET, "9.9.9.9", 853, "dns.quad9.net");
        assert_address(&c->upstream.items[1], AF_INET, "149.112.112.112", 853, "dns.quad9.net");
        ck_assert_ptr_null(c->tls_ca_file);
        ck_assert_uint_eq(c->spki_pins.n, 0);
        ck_assert(!c->allow_plaintext_fallback);
        ck_assert_uint_eq(c->blocklist.n, 0);
        ck_assert_uint_eq(c->cache_size, 16u << 20);
        ck_assert(!c->serve_stale);
        ck_assert_uint_eq(c->upstream_timeout_usec, 3 * USEC_PER_SEC);
        ck_assert_int_eq(c->manage, CONFIG_MANAGE_AUTO);
        ck_assert_ptr_null(c->link);
        ck_assert(!c->default_route);
}
END_TEST

/* The plaintext fallback's defaults are the upstream key's, on port 53. */
START_TEST(test_plaintext_fallback_defaults) {
        struct sockaddr_storage a[4];
        char text[128], ip[INET6_ADDRSTRLEN];
        const struct sockaddr_in *in;

        ck_assert_uint_eq(config_plaintext_fallback_defaults(a, 4, text, sizeof text), 2);
        ck_assert_str_eq(text, "9.9.9.9 and 149.112.112.112");
        in = (const struct sockaddr_in *) (const void *) &a[0];
        ck_assert_int_eq(in->sin_family, AF_INET);
        ck_assert_uint_eq(ntohs(in->sin_port), 53);
        ck_assert_str_eq(inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip), "9.9.9.9");
        in = (const struct sockaddr_in *) (const void *) &a[1];
        ck_assert_uint_eq(ntohs(in->sin_port), 53);
        ck_assert_str_eq(inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip), "149.112.112.112");
        /* Never past `max`; text optional. */
        ck_assert_uint_eq(config_plaintext_fallback_defaults(a, 1, NULL, 0), 1);
}
END_TEST

START_TEST(test_empty_files) {
        _cleanup_config_ ZtnadConfig *d = defaults();
        static const char *const files[] = {
                "",
                "\n",
                "# only a comment",
                "; only a comment\n",
                "\n\n   \t\n# a\n  ; b\n\t# c\n",
                "[ztnad]\n",
                "[dns]\n[ztnad]\n[dns]\n",
                "\xef\xbb\xbf# a byte order mark first\n",
        };

        for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
                _cleanup_config_ ZtnadConfig *c = parse_ok(files[i]);

                ck_assert_msg(same(c, d), "file %zu is not the defaults", i);
        }

        /* NULL data of length 0 is an empty file. */
        {
                _cleanup_config_ ZtnadConfig *c = NULL;

                ck_assert_int_eq(config_parse(NULL, 0, SOURCE, &c, NULL), 0);
                ck_assert(same(c, d));
        }
}
END_TEST

/* ---- the file's syntax ---- */

START_TEST(test_syntax) {
        _cleanup_config_ ZtnadConfig *c = NULL;

        /* Whitespace around keys, '=' and values is not part of them; '#'
         * and ';' after the start of a line are. */
        c = parse_ok("  store\t=   /run/a b/records \t\n"
                     "org_id=acme#1;x\n"
                     "control_url =https://ctl.example/v1?a=b#frag\n"
                     "[dns]\n"
                     "  listen = 127.0.0.1:5353\n");
        ck_assert_str_eq(c->store, "/run/a b/records");
        ck_assert_str_eq(c->org_id, "acme#1;x");
        ck_assert_str_eq(c->control_url, "https://ctl.example/v1?a=b#frag");
        assert_address(&c->listen.items[0], AF_INET, "127.0.0.1", 5353, "");
        c = config_free(c);

        /* Keys before any header are [ztnad]'s; headers may repeat and take
         * blanks inside the brackets. */
        c = parse_ok("state_dir = /a\n[dns]\nstub = no\n[ztnad]\ntoken_file = /t\n[ dns ]\nserve_stale = yes\n");
        ck_assert_str_eq(c->state_dir, "/a");
        ck_assert_str_eq(c->token_file, "/t");
        ck_assert(!c->stub);
        ck_assert(c->serve_stale);

        refused("junk\n", 1, "", "expected 'key = value'");
        refused("# fine\n = /x\n", 2, "", "no key before '='");
        refused("store /x\n", 1, "", "expected 'key = value'");
}
END_TEST

START_TEST(test_sections) {
        refused("[ztnad]\n[resolver]\n", 2, "", "unknown section \"[resolver]\"");
        refused("[DNS]\n", 1, "", "unknown section");
        refused("[]\n", 1, "", "unknown section");
        refused("[dns\n", 1, "", "must end with ']'");
        refused("[dns] # comment\n", 1, "", "must end with ']'");
        /* A key in the other section names the one it belongs in. */
        refused("stub = no\n", 1, "stub", "belongs in section [dns], not [ztnad]");
        refused("[dns]\n\nstore = /x\n", 3, "store", "belongs in section [ztnad], not [dns]");
}
END_TEST

START_TEST(test_unknown_key) {
        refused("# ok\nstore = /x\nstor = /y\n", 3, "stor", "unknown key");
        refused("[dns]\nupstreams = 1.1.1.1:853#one.one.one.one\n", 2, "upstreams", "unknown key");
        refused("Store = /x\n", 1, "Store", "did you mean 'store'?");
        refused("store-dir = /x\n", 1, "store-dir", "unknown key");
        /* Whatever the key, the message stays one printable line. */
        refused("st\xc3\xb6re = /x\n", 1, "st??re", "unknown key");
        {
                _cleanup_free_ char *long_key = repeat('k', 200), *text = textf("%s = 1\n", long_key),
                                    *cut = repeat('k', CONFIG_KEY_MAX - 1);

                refused(text, 1, cut, "unknown key");
        }
}
END_TEST

START_TEST(test_duplicate_key) {
        refused("store = /a\n# between\nstore = /a\n", 3, "store", "given twice, on lines 1 and 3");
        refused("[dns]\nstub = yes\n[ztnad]\n[dns]\nstub = no\n", 5, "stub", "given twice, on lines 2 and 5");
        /* An empty value counts as given. */
        refused("peers_file =\npeers_file = /p\n", 2, "peers_file", "given twice, on lines 1 and 2");
}
END_TEST

START_TEST(test_quoting) {
        _cleanup_config_ ZtnadConfig *c = NULL;

        /* Quotes keep the outer blanks; \" and \\ are the only escapes. */
        c = parse_ok("store = \"/run/x \"\n"
                     "state_dir = \"/var/a\\\"b\\\\c\"\n"
                     "peers_file = \"\"\n"
                     "org_id = \"a\\\\b\"\n"
                     "token_file = /t\\n\"\n");
        ck_assert_str_eq(c->store, "/run/x ");
        ck_assert_str_eq(c->state_dir, "/var/a\"b\\c");
        ck_assert_ptr_null(c->peers_file);
        ck_assert_str_eq(c->org_id, "a\\b");
        /* Unquoted, a backslash and a quote are plain characters. */
        ck_assert_str_eq(c->token_file, "/t\\n\"");
        assert_round_trip(c);
        c = config_free(c);

        /* A quoted list is split like a bare one. */
        c = parse_ok("[dns]\nblocklist = \" /a  /b \"\n");
        ck_assert_uint_eq(c->blocklist.n, 2);
        ck_assert_str_eq(c->blocklist.items[0], "/a");
        ck_assert_str_eq(c->blocklist.items[1], "/b");

        refused("store = \"/x\n", 1, "store", "no closing '\"'");
        refused("store = \"/x\\\"\n", 1, "store", "no closing '\"'");
        refused("store = \"/x\" # comment\n", 1, "store", "text after the closing quote");
        refused("store = \"/x\"\"\n", 1, "store", "text after the closing quote");
        refused("store = \"/x\\n\"\n", 1, "store", "unknown escape");
        refused("store = \"/x\\\n", 1, "store", "unknown escape");
        /* Quoting does not make an empty value valid where it is not. */
        refused("store = \"\"\n", 1, "store", "must not be empty");
}
END_TEST

START_TEST(test_line_endings) {
        _cleanup_config_ ZtnadConfig *c = NULL;

        c = parse_ok("# windows\r\nstore = /run/crlf\r\n[dns]\r\nstub = no\r\n\r\n");
        ck_assert_str_eq(c->store, "/run/crlf");
        ck_assert(!c->stub);
        c = config_free(c);

        /* The last line needs no ending. */
        c = parse_ok("state_dir = /end");
        ck_assert_str_eq(c->state_dir, "/end");
        c = config_free(c);
        c = parse_ok("state_dir = /end\r");
        ck_assert_str_eq(c->state_dir, "/end");

        /* A CR anywhere but before the LF is a control character. */
        refused("store = /a\rb\n", 1, "", "control character 0x0d");
        refused("store = /a\n\r\rstate_dir = /b\n", 2, "", "control character 0x0d");
        /* Line numbers count CRLF lines as lines. */
        refused("a = 1\r\n", 1, "a", "unknown key");
        refused("\r\n\r\nstub = x\r\n", 3, "stub", "belongs in section [dns]");
}
END_TEST

START_TEST(test_limits) {
        _cleanup_free_ char *fill = NULL, *text = NULL, *big = NULL;
        ZtnadConfig *c = UNTOUCHED;
        ConfigError err;

        /* A line of CONFIG_LINE_MAX bytes is fine, one more is not, and the
         * CR of a CRLF does not count. */
        fill = repeat('x', CONFIG_LINE_MAX - 1);
        text = textf("#%s\n#%s\r\n", fill, fill);
        c = parse_ok(text);
        c = config_free(c);
        free(text);
        text = textf("\n#x%s\n", fill);
        refused(text, 2, "", "the line is 4097 bytes long; the limit is 4096");

        /* NUL bytes, wherever they are. */
        refused_bytes("store = /a\0b\n", 13, 1, "", "NUL byte (column 11)");
        refused_bytes("# fine\n#\0\n", 10, 2, "", "NUL byte");
        refused("store = /a\tb\x01\n", 1, "", "control character 0x01");
        refused("store = /a\x7f\n", 1, "", "control character 0x7f");

        /* A value longer than config_print() could write back. */
        free(fill);
        fill = repeat('a', 2000);
        free(text);
        text = textf("store = /%s\n", fill);
        refused(text, 1, "store", "the value is 2001 bytes long; the limit is 2000");
        free(text);
        text = textf("store = /%.*s\n", 1998, fill);
        c = parse_ok(text);
        assert_round_trip(c);
        c = config_free(c);

        /* The file as a whole: 1 MiB of comments passes, a byte more is
         * refused before it is read. */
        big = malloc(CONFIG_FILE_MAX + 64);
        ck_assert_ptr_nonnull(big);
        for (size_t i = 0; i < CONFIG_FILE_MAX + 1; i += 64) {
                memset(big + i, '#', 63);
                big[i + 63] = '\n';
        }
        ck_assert_int_eq(config_parse(big, CONFIG_FILE_MAX, SOURCE, &c, &err), 0);
        c = config_free(c);
        c = UNTOUCHED;
        ck_assert_int_eq(config_parse(big, CONFIG_FILE_MAX + 1, SOURCE, &c, &err), -E2BIG);
        ck_assert_ptr_eq(c, UNTOUCHED);
        ck_assert_uint_eq(err.line, 0);
        ck_assert_str_eq(err.message, "test.conf: is 1048577 bytes; the limit is 1048576");
}
END_TEST

/* ---- values, key by key ---- */

/* One bad value of each kind for every key: what the message must say. */
static const struct {
        const char *section, *key, *value, *why;
} bad_values[] = {
        { "ztnad", "store", "run/ztna/records", "\"run/ztna/records\" is not an absolute path" },
        { "ztnad", "store", "/run/ztna/", "ends with '/'" },
        { "ztnad", "store", "", "must not be empty" },
        { "ztnad", "state_dir", "var/lib/ztna", "is not an absolute path" },
        { "ztnad", "state_dir", "", "must not be empty" },
        { "ztnad", "peers_file", "peers.json", "is not an absolute path" },
        { "ztnad", "peers_file", "/etc/ztna/", "ends with '/'" },
        { "ztnad", "offline_peers", "hidden", "\"hidden\" is not one of show or hide" },
        { "ztnad", "offline_peers", "", "is not one of show or hide" },
        { "ztnad", "control_url", "http://ctl.example/", "plain http:// is refused" },
        { "ztnad", "control_url", "ctl.example", "does not start with https://" },
        { "ztnad", "control_url", "ftp://ctl.example", "does not start with https://" },
        { "ztnad", "control_url", "https://", "has no host" },
        { "ztnad", "control_url", "https:///v1", "has no host" },
        { "ztnad", "control_url", "https://:443/", "has no host" },
        { "ztnad", "control_url", "https://user:pw@ctl.example/", "has a user part" },
        { "ztnad", "control_url", "https://ctl.example:0/", "bad port" },
        { "ztnad", "control_url", "https://ctl.example:65536/", "bad port" },
        { "ztnad", "control_url", "https://ctl.example:/", "bad port" },
        { "ztnad", "control_url", "https://ctl..example/", "the host has an empty label" },
        { "ztnad", "control_url", "https://ctl_x.example/", "the host contains '_'" },
        { "ztnad", "control_url", "https://[::1/", "bad IPv6 address" },
        { "ztnad", "control_url", "https://[fe80::zz]/", "bad IPv6 address" },
        { "ztnad", "control_url", "https://[::1]x/", "text after the ']'" },
        { "ztnad", "control_url", "https://ctl.example/a b", "contains a space" },
        { "ztnad", "control_url", "https://ctl.example/\xc3\xa9", "not printable ASCII" },
        { "ztnad", "org_id", "acme corp", "contains a space at position 5" },
        { "ztnad", "org_id", "caf\xc3\xa9", "not printable ASCII" },
        { "ztnad", "token_file", "token", "is not an absolute path" },
        { "ztnad", "token_file", "", "must not be empty" },
        { "ztnad", "ca_file", "ca.pem", "is not an absolute path" },
        { "ztnad", "sync_interval", "0", "\"0\" is shorter than the minimum, 1s" },
        { "ztnad", "sync_interval", "999ms", "is shorter than the minimum, 1s" },
        { "ztnad", "sync_interval", "86401", "\"86401\" is longer than the maximum, 1d" },
        { "ztnad", "sync_interval", "25h", "is longer than the maximum, 1d" },
        { "ztnad", "sync_interval", "99999999999999999999d", "is longer than the maximum" },
        { "ztnad", "sync_interval", "18446744073709551616", "is longer than the maximum" },
        { "ztnad", "sync_interval", "30 s", "is not a duration" },
        { "ztnad", "sync_interval", "30S", "is not a duration" },
        { "ztnad", "sync_interval", "1.5s", "is not a duration" },
        { "ztnad", "sync_interval", "-1s", "is not a duration" },
        { "ztnad", "sync_interval", "s", "is not a duration" },
        { "ztnad", "sync_interval", "", "is not a duration" },
        { "ztnad", "sync_interval", "5m", "is not a duration" },
        { "ztnad", "control_socket", "control.sock", "is not an absolute path" },
        { "ztnad", "control_socket", "/run/ztna/", "ends with '/'" },
        { "ztnad", "control_group", "", "must not be empty" },
        { "ztnad", "control_group", "1000", "\"1000\" is a number; give the group's name" },
        { "ztnad", "control_group", "-ztna", "starts with '-'" },
        { "ztnad", "control_group", "zt na", "is not a group name" },
        { "ztnad", "control_group", "zt:na", "is not a group name" },
        { "ztnad", "control_group", "a23456789012345678901234567890123", "is 33 characters long" },
        { "dns", "stub", "maybe", "\"maybe\" is not a boolean" },
        { "dns", "stub", "", "is not a boolean" },
        { "dns", "stub", "2", "is not a boolean" },
        { "dns", "listen", "127.0.0.53", "has no port" },
        { "dns", "listen", "127.0.0.53:0", "the port \"0\" is not a number from 1 to 65535" },
        { "dns", "listen", "127.0.0.53:65536", "the port \"65536\" is not a number from 1 to 65535" },
        { "dns", "listen", "127.0.0.53:100000", "is not a number from 1 to 65535" },
        { "dns", "listen", "127.0.0.53:", "is not a number from 1 to 65535" },
        { "dns", "listen", "127.0.0.53:5x", "is not a number from 1 to 65535" },
        { "dns", "listen", "127.0.0.53:-1", "is not a number from 1 to 65535" },
        { "dns", "listen", "localhost:53", "\"localhost\" is not an IPv4 address" },
        { "dns", "listen", "127.0.0.256:53", "is not an IPv4 address" },
        { "dns", "listen", "::1:53", "put an IPv6 address in brackets" },
        { "dns", "listen", "[::1]", "expected [ADDR6]:PORT" },
        { "dns", "listen", "[::1]53", "expected [ADDR6]:PORT" },
        { "dns", "listen", "[::1:53", "expected [ADDR6]:PORT" },
        { "dns", "listen", "[127.0.0.1]:53", "is not an IPv6 address" },
        { "dns", "listen", "[::1%lo]:53", "is not an IPv6 address" },
        { "dns", "listen", "0.0.0.0:53", "is not a loopback address" },
        { "dns", "listen", "192.168.1.1:53", "is not a loopback address" },
        { "dns", "listen", "[::]:53", "is not a loopback address" },
        { "dns", "listen", "[::ffff:127.0.0.1]:53", "is not a loopback address" },
        { "dns", "listen", "127.0.0.53:53#dns.quad9.net", "a listen address takes no TLS name" },
        { "dns", "listen", "127.0.0.53:53 127.0.0.53:53", "\"127.0.0.53:53\" is listed twice" },
        { "dns", "listen", "[::1]:53 [0::1]:53", "\"[0::1]:53\" is listed twice" },
        { "dns", "manage", "systemd-resolved", "\"systemd-resolved\" is not one of auto, resolved, resolvconf, file or off" },
        { "dns", "manage", "", "is not one of auto, resolved" },
        { "dns", "link", "ztna0123456789ab", "is 16 characters long; an interface name is at most 15" },
        { "dns", "link", "zt/0", "is not an interface name" },
        { "dns", "link", "zt:0", "is not an interface name" },
        { "dns", "link", "\"zt 0\"", "is not an interface name" },
        { "dns", "link", "..", "is not an interface name" },
        { "dns", "default_route", "maybe", "\"maybe\" is not a boolean" },
        { "dns", "upstream", "9.9.9.9:853", "has no TLS name" },
        { "dns", "upstream", "9.9.9.9:853#", "the TLS name is empty" },
        { "dns", "upstream", "9.9.9.9:853#dns..quad9.net", "the TLS name has an empty label" },
        { "dns", "upstream", "9.9.9.9:853#dns.quad9.net.", "the TLS name has an empty label" },
        { "dns", "upstream", "9.9.9.9:853#-dns.quad9.net", "starts or ends with '-'" },
        { "dns", "upstream", "9.9.9.9:853#dns_quad9.net", "contains '_'" },
        { "dns", "upstream", "9.9.9.9:853#a#b", "contains '#'" },
        { "dns", "upstream", "9.9.9.9#dns.quad9.net", "has no port" },
        { "dns", "upstream", "9.9.9.9:0#dns.quad9.net", "is not a number from 1 to 65535" },
        { "dns", "upstream", "dns.quad9.net:853#dns.quad9.net", "is not an IPv4 address" },
        { "dns", "upstream", "0.0.0.0:853#x", "is not a unicast address" },
        { "dns", "upstream", "224.0.0.1:853#x", "is not a unicast address" },
        { "dns", "upstream", "255.255.255.255:853#x", "is not a unicast address" },
        { "dns", "upstream", "[::]:853#x", "is not a unicast address" },
        { "dns", "upstream", "[ff02::1]:853#x", "is not a unicast address" },
        { "dns", "upstream", "9.9.9.9:853#a 9.9.9.9:853#b", "\"9.9.9.9:853#b\" is listed twice" },
        { "dns", "tls_ca_file", "ca.pem", "is not an absolute path" },
        { "dns", "spki_pins", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8", "is not a pin" },
        { "dns", "spki_pins", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8==", "is not a pin" },
        { "dns", "spki_pins", "sha256/AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", "is not a pin" },
        { "dns", "spki_pins", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd-h8=", "contains '-', which is not base64" },
        { "dns", "spki_pins", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9=", "is not canonical base64" },
        { "dns", "spki_pins",
          "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
          "is listed twice" },
        { "dns", "allow_plaintext_fallback", "sometimes", "is not a boolean" },
        { "dns", "blocklist", "/a blocklist.txt", "\"blocklist.txt\" is not an absolute path" },
        { "dns", "blocklist", "/etc/ztna/lists/", "ends with '/'" },
        { "dns", "blocklist", "/a /b /a", "\"/a\" is listed twice" },
        { "dns", "cache_size", "16MB", "\"16MB\" is not a size" },
        { "dns", "cache_size", "16 M", "is not a size" },
        { "dns", "cache_size", "1T", "is not a size" },
        { "dns", "cache_size", "-1", "is not a size" },
        { "dns", "cache_size", "", "is not a size" },
        { "dns", "cache_size", "2G", "\"2G\" is more than the maximum, 1G" },
        { "dns", "cache_size", "1073741825", "is more than the maximum, 1G" },
        { "dns", "cache_size", "99999999999999999999", "is more than the maximum" },
        { "dns", "serve_stale", "y", "is not a boolean" },
        { "dns", "upstream_timeout", "99ms", "\"99ms\" is shorter than the minimum, 100ms" },
        { "dns", "upstream_timeout", "0", "is shorter than the minimum, 100ms" },
        { "dns", "upstream_timeout", "61s", "\"61s\" is longer than the maximum, 1min" },
        { "dns", "upstream_timeout", "60001ms", "is longer than the maximum, 1min" },
        { "dns", "upstream_timeout", "3 s", "is not a duration" },
        { "ztnad", "domains", "", "must not be empty" },
        { "ztnad", "domains", "co.uk", "\"co.uk\" is a public suffix (anyone may register names under it)" },
        { "ztnad", "domains", "yourorg.zt.net CO.UK.", "\"CO.UK.\" is a public suffix" },
        { "ztnad", "domains", "github.io", "is a public suffix" },
        { "ztnad", "domains", "x.kawasaki.jp", "is a public suffix" },
        { "ztnad", "domains", "com", "\"com\" has a single label" },
        { "ztnad", "domains", "zt.123", "ends in an all-numeric label" },
        { "ztnad", "domains", "a..b", "has an empty label" },
        { "ztnad", "domains", "zt_x.net", "contains '_'" },
        { "ztnad", "domains", "a.b A.B.", "\"A.B.\" is listed twice" },
        { "ztnad", "address_space", "", "must not be empty" },
        { "ztnad", "address_space", "10.0.0.0", "has no prefix length" },
        { "ztnad", "address_space", "10.0.0.0/", "bad prefix length" },
        { "ztnad", "address_space", "10.0.0.0/08", "bad prefix length" },
        { "ztnad", "address_space", "10.0.0.0/33", "prefix length 33 is more than 32" },
        { "ztnad", "address_space", "fc00::/129", "prefix length 129 is more than 128" },
        { "ztnad", "address_space", "10.0.0.1/8", "has bits set after the first 8" },
        { "ztnad", "address_space", "ten/8", "is not an IPv4 or IPv6 prefix" },
        { "ztnad", "address_space", "10.0.0.0/8 10.0.0.0/8", "\"10.0.0.0/8\" is listed twice" },
};

START_TEST(test_bad_values) {
        size_t i = (size_t) _i;
        _cleanup_free_ char *text = NULL;

        /* The bad line is the third, after a comment and the header. */
        text = textf("# bad value %zu\n[%s]\n%s = %s\n", i, bad_values[i].section, bad_values[i].key,
                     bad_values[i].value);
        refused(text, 3, bad_values[i].key, bad_values[i].why);
}
END_TEST

/* A value of each key that is not its default: each must land in its own
 * field (same() tells it from the defaults) and print back. */
static const struct {
        const char *section, *key, *value;
} other_values[] = {
        { "ztnad", "store", "\"/srv/ztna store/records \"" },
        { "ztnad", "state_dir", "/srv/state/" },
        { "ztnad", "peers_file", "/etc/ztna/peers.json" },
        { "ztnad", "offline_peers", "hide" },
        { "ztnad", "control_url", "https://[2001:db8::1]:8443/api/v1?org=x" },
        { "ztnad", "org_id", "\"acme-\\\"corp\\\"\"" },
        { "ztnad", "token_file", "/etc/ztna/other-token" },
        { "ztnad", "ca_file", "/etc/ssl/ctl.pem" },
        { "ztnad", "sync_interval", "90" },
        { "ztnad", "control_socket", "/run/ztna/ctl.sock" },
        { "ztnad", "control_group", "netadm" },
        { "ztnad", "domains", "corp.example yourorg.zt.net" },
        { "ztnad", "address_space", "100.64.0.0/10 fd7a:115c:a1e0::/48 8.8.8.0/24" },
        { "dns", "stub", "off" },
        { "dns", "listen", "127.0.0.1:5353 [::1]:53" },
        { "dns", "upstream", "[2620:fe::fe]:853#dns.quad9.net 1.1.1.1:853#one.one.one.one" },
        { "dns", "tls_ca_file", "/etc/ztna/dot-ca.pem" },
        { "dns", "spki_pins", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= //////////////////////////////////////////8=" },
        { "dns", "allow_plaintext_fallback", "TRUE" },
        { "dns", "blocklist", "/etc/ztna/block/ads /etc/ztna/block/malware" },
        { "dns", "cache_size", "0" },
        { "dns", "serve_stale", "1" },
        { "dns", "upstream_timeout", "1500ms" },
        { "dns", "manage", "Resolved" },
        { "dns", "link", "ztna0" },
        { "dns", "default_route", "yes" },
};

START_TEST(test_every_key_changes) {
        _cleanup_config_ ZtnadConfig *d = defaults();
        _cleanup_free_ char *all = NULL;
        _cleanup_config_ ZtnadConfig *every = NULL;

        for (size_t i = 0; i < sizeof other_values / sizeof other_values[0]; i++) {
                /* A control plane needs its org_id. */
                bool url = strcmp(other_values[i].key, "control_url") == 0;
                _cleanup_free_ char *text = textf("%s[%s]\n%s = %s\n", url ? "org_id = o\n" : "",
                                                  other_values[i].section, other_values[i].key, other_values[i].value);
                _cleanup_config_ ZtnadConfig *c = parse_ok(text);

                ck_assert_msg(!same(c, d), "%s = %s reads as the default", other_values[i].key,
                              other_values[i].value);
                assert_round_trip(c);
        }

        /* All of them at once. */
        all = strdup("");
        for (size_t i = 0; i < sizeof other_values / sizeof other_values[0]; i++) {
                char *more = textf("%s[%s]\n%s = %s\n", all, other_values[i].section, other_values[i].key,
                                   other_values[i].value);

                free(all);
                all = more;
        }
        every = parse_ok(all);
        assert_round_trip(every);
        ck_assert_str_eq(every->store, "/srv/ztna store/records ");
        ck_assert_str_eq(every->org_id, "acme-\"corp\"");
        ck_assert_uint_eq(every->sync_interval_usec, 90 * USEC_PER_SEC);
        ck_assert_int_eq(every->offline_peers, CONFIG_OFFLINE_HIDE);
        ck_assert(!every->stub);
        ck_assert(every->allow_plaintext_fallback);
        ck_assert(every->serve_stale);
        ck_assert_uint_eq(every->cache_size, 0);
        ck_assert_uint_eq(every->upstream_timeout_usec, 1500 * USEC_PER_MSEC);
        ck_assert_int_eq(every->manage, CONFIG_MANAGE_RESOLVED);
        ck_assert_str_eq(every->link, "ztna0");
        ck_assert(every->default_route);
        ck_assert_uint_eq(every->listen.n, 2);
        assert_address(&every->listen.items[0], AF_INET, "127.0.0.1", 5353, "");
        assert_address(&every->listen.items[1], AF_INET6, "::1", 53, "");
        ck_assert_uint_eq(every->upstream.n, 2);
        assert_address(&every->upstream.items[0], AF_INET6, "2620:fe::fe", 853, "dns.quad9.net");
        assert_address(&every->upstream.items[1], AF_INET, "1.1.1.1", 853, "one.one.one.one");
        ck_assert_uint_eq(every->blocklist.n, 2);
        ck_assert_str_eq(every->blocklist.items[1], "/etc/ztna/block/malware");
        ck_assert_uint_eq(every->spki_pins.n, 2);
        for (unsigned i = 0; i < CONFIG_SHA256_SIZE; i++) {
                ck_assert_uint_eq(every->spki_pins.items[0].sha256[i], i);
                ck_assert_uint_eq(every->spki_pins.items[1].sha256[i], 0xff);
        }
}
END_TEST

START_TEST(test_paths) {
        _cleanup_config_ ZtnadConfig *c = NULL;
        _cleanup_free_ char *name = NULL, *text = NULL;
        const size_t socket_max = sizeof(((struct sockaddr_un *) NULL)->sun_path) - 1;

        /* Optional paths: empty means none (NULL). */
        c = parse_ok("peers_file =\nca_file = \"\"\n[dns]\ntls_ca_file =\nblocklist =\n");
        ck_assert_ptr_null(c->peers_file);
        ck_assert_ptr_null(c->ca_file);
        ck_assert_ptr_null(c->tls_ca_file);
        ck_assert_uint_eq(c->blocklist.n, 0);
        c = config_free(c);

        /* Directories may end in '/', files may not; "/" is a directory. */
        c = parse_ok("state_dir = /\n");
        ck_assert_str_eq(c->state_dir, "/");
        c = config_free(c);
        refused("store = /\n", 1, "store", "ends with '/'");

        /* The control socket's path must fit sun_path with its NUL. */
        name = repeat('s', socket_max - 1);
        text = textf("control_socket = /%s\n", name);
        c = parse_ok(text);
        ck_assert_uint_eq(strlen(c->control_socket), socket_max);
        free(text);
        text = textf("control_socket = /%ss\n", name);
        refused(text, 1, "control_socket", "is 108 bytes long; a socket path is at most 107");

        /* Non-ASCII names are file names like any other. */
        c = config_free(c);
        c = parse_ok("peers_file = /etc/ztna/p\xc3\xa9" "ers.json\n");
        ck_assert_str_eq(c->peers_file, "/etc/ztna/p\xc3\xa9" "ers.json");
        assert_round_trip(c);
}
END_TEST

START_TEST(test_durations) {
        static const struct {
                const char *text;
                uint64_t usec;
        } good[] = {
                { "1s", 1000000 },   { "1", 1000000 },          { "1000ms", 1000000 },      { "1000000us", 1000000 },
                { "30", 30000000 },  { "5min", 300000000 },     { "2h", 7200000000 },       { "1d", 86400000000 },
                { "24h", 86400000000 }, { "1440min", 86400000000 }, { "86400", 86400000000 }, { "0001s", 1000000 },
                { "1001ms", 1001000 },
        };

        for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
                _cleanup_free_ char *text = textf("sync_interval = %s\n", good[i].text);
                _cleanup_config_ ZtnadConfig *c = parse_ok(text);

                ck_assert_msg(c->sync_interval_usec == good[i].usec, "%s: %" PRIu64, good[i].text,
                              c->sync_interval_usec);
                assert_round_trip(c);
        }

        /* One step past each bound. */
        refused("sync_interval = 999999us\n", 1, "sync_interval", "shorter than the minimum");
        refused("sync_interval = 86400000001us\n", 1, "sync_interval", "longer than the maximum");
        {
                _cleanup_config_ ZtnadConfig *c = parse_ok("[dns]\nupstream_timeout = 100ms\n");

                ck_assert_uint_eq(c->upstream_timeout_usec, 100000);
        }
        {
                _cleanup_config_ ZtnadConfig *c = parse_ok("[dns]\nupstream_timeout = 1min\n");

                ck_assert_uint_eq(c->upstream_timeout_usec, 60000000);
        }
        refused("[dns]\nupstream_timeout = 99999us\n", 2, "upstream_timeout", "shorter than the minimum, 100ms");
        refused("[dns]\nupstream_timeout = 60000001us\n", 2, "upstream_timeout", "longer than the maximum, 1min");
}
END_TEST

START_TEST(test_bools_and_enums) {
        static const char *const yes[] = { "yes", "true", "on", "1", "YES", "True", "On" };
        static const char *const no[] = { "no", "false", "off", "0", "NO", "False", "oFF" };

        for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
                _cleanup_free_ char *t = textf("[dns]\nstub = %s\nserve_stale = %s\n", no[i], yes[i]);
                _cleanup_config_ ZtnadConfig *c = parse_ok(t);

                ck_assert(!c->stub);
                ck_assert(c->serve_stale);
        }
        {
                _cleanup_config_ ZtnadConfig *c = parse_ok("offline_peers = Hide\n");

                ck_assert_int_eq(c->offline_peers, CONFIG_OFFLINE_HIDE);
        }
}
END_TEST

START_TEST(test_sizes) {
        static const struct {
                const char *text;
                uint64_t bytes;
        } good[] = {
                { "0", 0 },           { "1", 1 },                 { "16M", 16 << 20 },  { "16m", 16 << 20 },
                { "4096K", 4 << 20 }, { "4096k", 4 << 20 },       { "1G", 1 << 30 },    { "1073741824", 1 << 30 },
                { "1000", 1000 },     { "1536K", 1536 << 10 },
        };

        for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
                _cleanup_free_ char *text = textf("[dns]\ncache_size = %s\n", good[i].text);
                _cleanup_config_ ZtnadConfig *c = parse_ok(text);

                ck_assert_msg(c->cache_size == good[i].bytes, "%s: %" PRIu64, good[i].text, c->cache_size);
                assert_round_trip(c);
        }
}
END_TEST

START_TEST(test_control_plane) {
        _cleanup_config_ ZtnadConfig *c = NULL;

        c = parse_ok("control_url = https://ctl.example.com\norg_id = acme\n");
        ck_assert_str_eq(c->control_url, "https://ctl.example.com");
        ck_assert_str_eq(c->org_id, "acme");
        c = config_free(c);
        c = parse_ok("control_url = HTTPS://127.0.0.1:8443/x\norg_id = a\n");
        c = config_free(c);
        /* An org_id alone is harmless. */
        c = parse_ok("org_id = acme\n");

        /* The URL needs an org_id: the error names org_id, at the URL's line
         * or at the line that left it empty. */
        refused("# x\ncontrol_url = https://ctl.example.com/\n", 2, "org_id",
                "missing; required because control_url is set");
        refused("org_id =\ncontrol_url = https://ctl.example.com/\n", 1, "org_id", "required because control_url");
}
END_TEST

START_TEST(test_addresses) {
        _cleanup_config_ ZtnadConfig *c = NULL;
        _cleanup_free_ char *many = NULL;

        /* Ports at their bounds; IPv6 in brackets, printed in RFC 5952
         * form. */
        c = parse_ok("[dns]\nlisten = 127.0.0.1:1\t127.255.255.254:65535  [0:0:0:0:0:0:0:1]:053\n"
                     "upstream = [2001:DB8:0::1]:853#Dns.Example 192.0.2.1:65535#x\n");
        ck_assert_uint_eq(c->listen.n, 3);
        assert_address(&c->listen.items[0], AF_INET, "127.0.0.1", 1, "");
        assert_address(&c->listen.items[1], AF_INET, "127.255.255.254", 65535, "");
        assert_address(&c->listen.items[2], AF_INET6, "::1", 53, "");
        ck_assert_uint_eq(c->upstream.n, 2);
        assert_address(&c->upstream.items[0], AF_INET6, "2001:db8::1", 853, "Dns.Example");
        assert_address(&c->upstream.items[1], AF_INET, "192.0.2.1", 65535, "x");
        assert_round_trip(c);
        {
                _cleanup_free_ char *printed = print_to_string(c);

                ck_assert_msg(strstr(printed, "\nlisten = 127.0.0.1:1 127.255.255.254:65535 [::1]:53\n"), "%s",
                              printed);
                ck_assert_msg(strstr(printed, "\nupstream = [2001:db8::1]:853#Dns.Example 192.0.2.1:65535#x\n"),
                              "%s", printed);
        }
        c = config_free(c);

        /* A printed address may be longer than the one written. */
        c = parse_ok("[dns]\nupstream = [1::3:4:5:6:7:8]:853#x\n");
        assert_round_trip(c);
        c = config_free(c);

        /* The same address on another port is another listener. */
        c = parse_ok("[dns]\nlisten = 127.0.0.53:53 127.0.0.53:5353\n");
        ck_assert_uint_eq(c->listen.n, 2);
        c = config_free(c);

        /* A TLS name of 253 characters, and one more. */
        {
                _cleanup_free_ char *label = repeat('a', 63), *name = textf("%s.%s.%s.%s", label, label, label, label);
                _cleanup_free_ char *text = NULL;

                name[253] = '\0';
                text = textf("[dns]\nupstream = 9.9.9.9:853#%s\n", name);
                c = parse_ok(text);
                ck_assert_uint_eq(strlen(c->upstream.items[0].tls_name), 253);
                assert_round_trip(c);
                c = config_free(c);
                free(text);
                name[253] = 'a';
                name[254] = '\0';
                text = textf("[dns]\nupstream = 9.9.9.9:853#%s\n", name);
                refused(text, 2, "upstream", "is 254 characters long; a host name is at most 253");
                free(text);
                text = textf("[dns]\nupstream = 9.9.9.9:853#%sa.b\n", label);
                refused(text, 2, "upstream", "has a label longer than 63 characters");
        }

        /* Counts: CONFIG_LISTEN_MAX addresses, then one more. */
        many = strdup("[dns]\nlisten =");
        for (unsigned i = 1; i <= CONFIG_LISTEN_MAX + 1; i++) {
                char *more = textf("%s 127.0.0.%u:53", many, i);

                free(many);
                many = more;
                if (i == CONFIG_LISTEN_MAX) {
                        c = parse_ok(many);
                        ck_assert_uint_eq(c->listen.n, CONFIG_LISTEN_MAX);
                        c = config_free(c);
                }
        }
        refused(many, 2, "listen", "has more than 8 addresses");
        free(many);
        many = strdup("[dns]\nupstream =");
        for (unsigned i = 1; i <= CONFIG_UPSTREAM_MAX + 1; i++) {
                char *more = textf("%s 192.0.2.%u:853#x", many, i);

                free(many);
                many = more;
        }
        refused(many, 2, "upstream", "has more than 8 servers");
}
END_TEST

START_TEST(test_stub_needs_addresses) {
        _cleanup_config_ ZtnadConfig *c = NULL;

        /* Without the stub nothing needs to be listened on or forwarded to. */
        c = parse_ok("[dns]\nstub = no\nlisten =\nupstream =\n");
        ck_assert_uint_eq(c->listen.n, 0);
        ck_assert_uint_eq(c->upstream.n, 0);
        assert_round_trip(c);
        c = config_free(c);

        refused("[dns]\nlisten =\n", 2, "listen", "is empty, but the stub is on");
        refused("[dns]\nstub = yes\n\nupstream = \"\"\n", 4, "upstream", "is empty, but the stub is on");
        /* Forwarding to ourselves would loop. */
        refused("[dns]\nlisten = 127.0.0.1:853\nupstream = 9.9.9.9:853#a 127.0.0.1:853#b\n", 3, "upstream",
                "\"127.0.0.1:853#b\" is also a listen address; the stub would forward to itself");
        refused("[dns]\nlisten = [::1]:853 127.0.0.53:53\n\n[ztnad]\n[dns]\nupstream = [::1]:853#self\n", 6,
                "upstream", "is also a listen address");
        /* Not a loop when the stub is off. */
        c = parse_ok("[dns]\nstub = no\nlisten = 127.0.0.1:853\nupstream = 127.0.0.1:853#b\n");
}
END_TEST

START_TEST(test_lists) {
        _cleanup_config_ ZtnadConfig *c = NULL;
        _cleanup_free_ char *many = NULL;

        c = parse_ok("[dns]\nspki_pins = MyIWjAUI2hfKp4bZWUHeHjZe3UPLMeVpGt7NGRMMYDg=\n");
        ck_assert_uint_eq(c->spki_pins.n, 1);
        /* SHA-256("ztna") */
        ck_assert_uint_eq(c->spki_pins.items[0].sha256[0], 0x33);
        ck_assert_uint_eq(c->spki_pins.items[0].sha256[31], 0x38);
        assert_round_trip(c);
        c = config_free(c);

        many = strdup("[dns]\nspki_pins =");
        for (unsigned i = 0; i <= CONFIG_PINS_MAX; i++) {
                char *more = textf("%s AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdH%c8=", many, 'A' + i);

                free(many);
                many = more;
                if (i == CONFIG_PINS_MAX - 1) {
                        c = parse_ok(many);
                        ck_assert_uint_eq(c->spki_pins.n, CONFIG_PINS_MAX);
                        assert_round_trip(c);
                        c = config_free(c);
                }
        }
        refused(many, 2, "spki_pins", "has more than 16 pins");

        free(many);
        many = strdup("[dns]\nblocklist =");
        for (unsigned i = 1; i <= CONFIG_BLOCKLIST_MAX + 1; i++) {
                char *more = textf("%s /b/%u", many, i);

                free(many);
                many = more;
                if (i == CONFIG_BLOCKLIST_MAX) {
                        c = parse_ok(many);
                        ck_assert_uint_eq(c->blocklist.n, CONFIG_BLOCKLIST_MAX);
                        ck_assert_str_eq(c->blocklist.items[CONFIG_BLOCKLIST_MAX - 1], "/b/64");
                        assert_round_trip(c);
                        c = config_free(c);
                }
        }
        refused(many, 2, "blocklist", "has more than 64 files");

        /* Domains: stored in lower case without the final dot; 16 at most. */
        c = parse_ok("domains = YourOrg.ZT.net. example.co.uk city.kawasaki.jp\n");
        ck_assert_uint_eq(c->domains.n, 3);
        ck_assert_str_eq(c->domains.items[0], "yourorg.zt.net");
        ck_assert_str_eq(c->domains.items[1], "example.co.uk");
        ck_assert_str_eq(c->domains.items[2], "city.kawasaki.jp");
        assert_round_trip(c);
        c = config_free(c);
        free(many);
        many = strdup("domains =");
        for (unsigned i = 1; i <= CONFIG_DOMAINS_MAX + 1; i++) {
                char *more = textf("%s t%u.example", many, i);

                free(many);
                many = more;
                if (i == CONFIG_DOMAINS_MAX) {
                        c = parse_ok(many);
                        ck_assert_uint_eq(c->domains.n, CONFIG_DOMAINS_MAX);
                        assert_round_trip(c);
                        c = config_free(c);
                }
        }
        refused(many, 1, "domains", "has more than 16 domains");

        /* Prefixes: printed as inet_ntop() writes them; /0 is the
         * operator's to give. */
        c = parse_ok("address_space = 0.0.0.0/0 ::/0 FC00:0::/7 192.0.2.1/32\n");
        ck_assert_uint_eq(c->address_space.n, 4);
        assert_prefix(&c->address_space.items[0], AF_INET, "0.0.0.0", 0);
        assert_prefix(&c->address_space.items[1], AF_INET6, "::", 0);
        assert_prefix(&c->address_space.items[2], AF_INET6, "fc00::", 7);
        assert_prefix(&c->address_space.items[3], AF_INET, "192.0.2.1", 32);
        assert_round_trip(c);
        c = config_free(c);
        free(many);
        many = strdup("address_space =");
        for (unsigned i = 1; i <= CONFIG_RANGES_MAX + 1; i++) {
                char *more = textf("%s 10.%u.0.0/16", many, i);

                free(many);
                many = more;
                if (i == CONFIG_RANGES_MAX) {
                        c = parse_ok(many);
                        ck_assert_uint_eq(c->address_space.n, CONFIG_RANGES_MAX);
                        assert_round_trip(c);
                        c = config_free(c);
                }
        }
        refused(many, 1, "address_space", "has more than 32 prefixes");
}
END_TEST

/* ---- printing, the example and the man page ---- */

START_TEST(test_print_defaults) {
        _cleanup_config_ ZtnadConfig *d = defaults();
        _cleanup_free_ char *printed = print_to_string(d);

        assert_round_trip(d);
        /* INI the reader can use: sections, "key = value", nothing trailing. */
        ck_assert_msg(strncmp(printed, "[ztnad]\nstore = /run/ztna/records\n", 34) == 0, "%s", printed);
        ck_assert_msg(strstr(printed, "\n[dns]\nstub = yes\nlisten = 127.0.0.53:53\n"), "%s", printed);
        ck_assert_msg(strstr(printed, "\npeers_file =\n"), "%s", printed);
        ck_assert_msg(strstr(printed, "\nsync_interval = 30s\n"), "%s", printed);
        ck_assert_msg(strstr(printed, "\ncache_size = 16M\n"), "%s", printed);
        ck_assert_msg(strstr(printed, "\nupstream = 9.9.9.9:853#dns.quad9.net 149.112.112.112:853#dns.quad9.net\n"),
                      "%s", printed);
        ck_assert_ptr_null(strstr(printed, " \n"));
}
END_TEST

START_TEST(test_example_file) {
        _cleanup_free_ char *path = strdup(source_path("examples/ztnad.conf"));
        _cleanup_free_ char *text = read_text(path), *generated = NULL, *uncommented = NULL, *printed = NULL;
        _cleanup_config_ ZtnadConfig *d = defaults(), *c = NULL, *u = NULL;
        ConfigError err;
        size_t len = 0, o = 0, n_keys = 0;
        FILE *f;

        /* As shipped: all defaults. */
        ck_assert_msg(config_load(path, &c, &err) == 0, "%s", err.message);
        ck_assert(same(c, d));

        /* It is what the table says, so it cannot fall behind the parser. */
        f = open_memstream(&generated, &len);
        ck_assert_ptr_nonnull(f);
        config_print_example(f);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_msg(strcmp(text, generated) == 0,
                      "examples/ztnad.conf differs from config_print_example(); write it anew:\n%s", generated);

        /* Uncommenting every key changes nothing either, and every key
         * config_print() knows is there, at its default. */
        uncommented = malloc(strlen(text) + 1);
        ck_assert_ptr_nonnull(uncommented);
        for (const char *s = text; *s;) {
                size_t line = strcspn(s, "\n");

                if (s[0] == '#' && line > 1 && s[1] != ' ' && memchr(s, '=', line)) {
                        s++;
                        line--;
                        n_keys++;
                }
                memcpy(uncommented + o, s, line);
                o += line;
                s += line;
                if (*s == '\n')
                        uncommented[o++] = *s++;
        }
        uncommented[o] = '\0';
        u = parse_ok(uncommented);
        ck_assert(same(u, d));
        printed = print_to_string(d);
        for (const char *s = printed; *s;) {
                size_t line = strcspn(s, "\n");

                if (s[0] != '[' && line > 0) {
                        _cleanup_free_ char *want = textf("\n#%.*s\n", (int) line, s);

                        ck_assert_msg(strstr(text, want), "the example lacks %s", want);
                        n_keys--;
                }
                s += line + (s[line] == '\n');
        }
        ck_assert_uint_eq(n_keys, 0);

        /* Shipped text: lines an 80-column terminal shows whole. */
        for (const char *s = text; *s;) {
                size_t line = strcspn(s, "\n");

                ck_assert_msg(line < 80, "example line too long: %.*s", (int) line, s);
                s += line + (s[line] == '\n');
        }
}
END_TEST

/* The private-DoT example (docs/private-dot.md) is a file ztnad reads as
 * the page says: two servers with the certificate's name, the CA file and
 * two pins; the page shows the file as it is, and ztnad.conf(5) points at
 * the page. */
START_TEST(test_private_dot_example) {
        _cleanup_free_ char *path = strdup(source_path("examples/private-dot.conf"));
        _cleanup_free_ char *text = read_text(path), *doc = read_text(source_path("docs/private-dot.md")),
                            *man = read_text(source_path("man/ztnad.conf.5")), *printed = NULL;
        _cleanup_config_ ZtnadConfig *c = NULL, *d = defaults();
        _cleanup_free_ char *block = textf("```\n%s```\n", text);
        ConfigError err;
        size_t n = 0;
        char differ[256];

        ck_assert_msg(config_load(path, &c, &err) == 0, "%s", err.message);
        ck_assert_uint_eq(c->upstream.n, 2);
        for (size_t i = 0; i < c->upstream.n; i++) {
                ck_assert_str_eq(c->upstream.items[i].tls_name, "dns.corp.example");
                ck_assert_uint_eq(c->upstream.items[i].port, 853);
        }
        ck_assert_int_eq(c->upstream.items[0].sa.ss_family, AF_INET);
        ck_assert_int_eq(c->upstream.items[1].sa.ss_family, AF_INET6);
        ck_assert_ptr_nonnull(c->tls_ca_file);
        ck_assert_str_eq(c->tls_ca_file, "/etc/ztna/corp-dns-ca.pem");
        ck_assert_uint_eq(c->spki_pins.n, 2);
        ck_assert(!c->allow_plaintext_fallback);
        /* Those three keys and nothing else differ from the defaults. */
        (void) config_diff(c, d, differ, sizeof differ, &n);
        ck_assert_msg(n == 3, "%s", differ);
        ck_assert_str_eq(differ, "upstream, tls_ca_file, spki_pins");
        printed = print_to_string(c);
        ck_assert_msg(strstr(printed, "\nspki_pins = yI4ovpMsfMZEjQmzBGYIbKow7WhyZY3YIfO4HQjrHJw= "
                                      "Xbs73wP++IXMOzbNA1OP/YVF8Fdvgg2bKMs2K5mPwvk=\n"),
                      "%s", printed);

        ck_assert_msg(strstr(doc, block), "docs/private-dot.md does not show examples/private-dot.conf as it is");
        ck_assert_ptr_nonnull(strstr(man, "docs/private\\-dot.md"));
}
END_TEST

START_TEST(test_man_page) {
        _cleanup_free_ char *text = read_text(source_path("man/ztnad.conf.5"));
        _cleanup_config_ ZtnadConfig *d = defaults();
        _cleanup_free_ char *printed = print_to_string(d);

        /* Every key has its entry, ".TP" then "\fBkey\fR = ...", and its
         * default is written in it (roff spells '-' as "\-"). */
        for (const char *s = printed; *s;) {
                size_t line = strcspn(s, "\n");
                const char *eq = memchr(s, '=', line);

                if (eq) {
                        size_t key_len = (size_t) (eq - s) - 1;
                        _cleanup_free_ char *entry = textf(".TP\n\\fB%.*s\\fR = ", (int) key_len, s);
                        const char *at = strstr(text, entry), *next;
                        _cleanup_free_ char *def = NULL;
                        size_t d_len = 0;

                        ck_assert_msg(at, "the man page has no entry %s", entry);
                        next = strstr(at + 1, "\n.TP\n");
                        if (!next)
                                next = at + strlen(at);
                        def = malloc(2 * line + 1);
                        ck_assert_ptr_nonnull(def);
                        for (const char *v = eq + 2; v < s + line; v++) {
                                if (*v == '-')
                                        def[d_len++] = '\\';
                                def[d_len++] = *v;
                        }
                        def[d_len] = '\0';
                        if (d_len > 0) {
                                _cleanup_free_ char *entry_text = strndup(at, (size_t) (next - at));

                                ck_assert_msg(strstr(entry_text, def), "the man page's %s does not give the default %s",
                                              entry, def);
                        }
                }
                s += line + (s[line] == '\n');
        }
}
END_TEST

/* ---- loading ---- */

START_TEST(test_load) {
        const char *tmp = getenv("TMPDIR");
        char dir[4096], path[4200];
        ZtnadConfig *c = UNTOUCHED;
        ConfigError err;
        FILE *f;
        int r;

        snprintf(dir, sizeof dir, "%s/test-config.XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
        ck_assert_ptr_nonnull(mkdtemp(dir));

        /* A file given explicitly must exist. */
        snprintf(path, sizeof path, "%s/missing.conf", dir);
        ck_assert_int_eq(config_load(path, &c, &err), -ENOENT);
        ck_assert_ptr_eq(c, UNTOUCHED);
        ck_assert_uint_eq(err.line, 0);
        ck_assert_str_eq(err.file, path);
        ck_assert_msg(strstr(err.message, "missing.conf: cannot open: "), "%s", err.message);

        /* A directory is not a file. */
        ck_assert_int_eq(config_load(dir, &c, &err), -EINVAL);
        ck_assert_ptr_eq(c, UNTOUCHED);
        ck_assert_msg(strstr(err.message, "is not a regular file"), "%s", err.message);

        /* A FIFO is refused without blocking. */
        snprintf(path, sizeof path, "%s/fifo.conf", dir);
        ck_assert_int_eq(mkfifo(path, 0600), 0);
        ck_assert_int_eq(config_load(path, &c, &err), -EINVAL);
        ck_assert_ptr_eq(c, UNTOUCHED);
        ck_assert_int_eq(unlink(path), 0);

        /* Errors in a file name the file, the line and the key. */
        snprintf(path, sizeof path, "%s/bad.conf", dir);
        f = fopen(path, "we");
        ck_assert_ptr_nonnull(f);
        fputs("# ztnad\nstore = /run/ztna/records\n[dns]\nupstream_timeout = 3 s\n", f);
        ck_assert_int_eq(fclose(f), 0);
        ck_assert_int_eq(config_load(path, &c, &err), -EBADMSG);
        ck_assert_ptr_eq(c, UNTOUCHED);
        ck_assert_str_eq(err.file, path);
        ck_assert_uint_eq(err.line, 4);
        ck_assert_str_eq(err.key, "upstream_timeout");
        {
                _cleanup_free_ char *want = textf("%s:4: key 'upstream_timeout': \"3 s\" is not a duration", path);

                ck_assert_msg(strncmp(err.message, want, strlen(want)) == 0, "%s", err.message);
        }
        ck_assert_int_eq(unlink(path), 0);

        /* A good file. */
        snprintf(path, sizeof path, "%s/good.conf", dir);
        f = fopen(path, "we");
        ck_assert_ptr_nonnull(f);
        fputs("peers_file = /etc/ztna/peers.json\n", f);
        ck_assert_int_eq(fclose(f), 0);
        c = NULL;
        ck_assert_int_eq(config_load(path, &c, &err), 0);
        ck_assert_str_eq(c->peers_file, "/etc/ztna/peers.json");
        c = config_free(c);
        ck_assert_int_eq(unlink(path), 0);

        /* NULL is the default path, whose absence means the defaults (where
         * the machine running the test has none). */
        if (access(CONFIG_DEFAULT_PATH, F_OK) < 0 && errno == ENOENT) {
                _cleanup_config_ ZtnadConfig *d = defaults();

                r = config_load(NULL, &c, &err);
                ck_assert_int_eq(r, 1);
                ck_assert(same(c, d));
                c = config_free(c);
        }

        ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(test_no_error_report) {
        ZtnadConfig *c = UNTOUCHED;

        /* The error report is optional; a failure still leaves *ret alone. */
        ck_assert_int_eq(config_parse("x = 1", 5, NULL, &c, NULL), -EBADMSG);
        ck_assert_int_eq(config_parse("[dns]\nlisten =\n", 15, NULL, &c, NULL), -EBADMSG);
        ck_assert_ptr_eq(c, UNTOUCHED);
        ck_assert_int_eq(config_load("/nonexistent/ztnad.conf", &c, NULL), -ENOENT);
        ck_assert_ptr_eq(c, UNTOUCHED);
        ck_assert_ptr_null(config_free(NULL));
}
END_TEST

START_TEST(test_parse_is_fresh) {
        _cleanup_config_ ZtnadConfig *a = parse_ok("store = /run/a\n"), *b = NULL;
        _cleanup_free_ char *before = print_to_string(a), *after = NULL;
        ZtnadConfig *kept = a;

        /* What SIGHUP does: a second parse, good or bad, builds its own
         * configuration and leaves the running one as it was. */
        ck_assert_int_eq(config_parse("store = bad\n", 12, SOURCE, &a, NULL), -EBADMSG);
        ck_assert_ptr_eq(a, kept);
        b = parse_ok("store = /run/b\n");
        ck_assert_ptr_ne(a, b);
        after = print_to_string(a);
        ck_assert_str_eq(before, after);
        ck_assert(!same(a, b));
}
END_TEST

static Suite *config_suite(void) {
        Suite *s = suite_create("config");
        TCase *tc = tcase_create("parse");

        tcase_add_test(tc, test_defaults);
        tcase_add_test(tc, test_plaintext_fallback_defaults);
        tcase_add_test(tc, test_empty_files);
        tcase_add_test(tc, test_syntax);
        tcase_add_test(tc, test_sections);
        tcase_add_test(tc, test_unknown_key);
        tcase_add_test(tc, test_duplicate_key);
        tcase_add_test(tc, test_quoting);
        tcase_add_test(tc, test_line_endings);
        tcase_add_test(tc, test_limits);
        tcase_add_loop_test(tc, test_bad_values, 0, (int) (sizeof bad_values / sizeof bad_values[0]));
        tcase_add_test(tc, test_every_key_changes);
        tcase_add_test(tc, test_paths);
        tcase_add_test(tc, test_durations);
        tcase_add_test(tc, test_bools_and_enums);
        tcase_add_test(tc, test_sizes);
        tcase_add_test(tc, test_control_plane);
        tcase_add_test(tc, test_addresses);
        tcase_add_test(tc, test_stub_needs_addresses);
        tcase_add_test(tc, test_lists);
        tcase_add_test(tc, test_print_defaults);
        tcase_add_test(tc, test_example_file);
        tcase_add_test(tc, test_private_dot_example);
        tcase_add_test(tc, test_man_page);
        tcase_add_test(tc, test_load);
        tcase_add_test(tc, test_no_error_report);
        tcase_add_test(tc, test_parse_is_fresh);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(config_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
