/* SPDX-License-Identifier: MIT */
/*
 * The threat blocklist: both file formats and the lines real downloaded
 * lists carry (hosts-file heads with localhost, CRLF, comments after
 * entries, wildcards, upper case), suffix matching on label boundaries,
 * the sorted enumeration, errors naming the file, change detection, and a
 * list of 200,000 names answering quickly.
 */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dns/blocklist.h"

static char dir[] = "/tmp/test-blocklist-XXXXXX";

/* A name given as text: into wire form by dns_name_from_text(), then
 * blocklist_match() as the stub calls it. False for text that is not a
 * valid name. */
static bool match_text(const Blocklist *bl, const char *name) {
        DnsName n;

        if (dns_name_from_text(name, &n) < 0)
                return false;
        return blocklist_match(bl, &n);
}

static void setup(void) {
        ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
        strcpy(dir, "/tmp/test-blocklist-XXXXXX");
}

static char *write_file(const char *name, const char *content) {
        char *path;
        ck_assert_int_ge(asprintf(&path, "%s/%s", dir, name), 0);
        FILE *f = fopen(path, "we");
        ck_assert_ptr_nonnull(f);
        fputs(content, f);
        ck_assert_int_eq(fclose(f), 0);
        return path;
}

static Blocklist *load(const char *content) {
        char *path = write_file("list", content);
        const char *paths[] = { path };
        Blocklist *bl = NULL;
        char err[256];
        ck_assert_int_eq(blocklist_load(paths, 1, &bl, err, sizeof err), 0);
        free(path);
        return bl;
}

static const char *name_at(const Blocklist *bl, size_t i) {
        static char buf[DNS_NAME_TEXT_MAX];
        ck_assert_int_gt(blocklist_name(bl, i, buf, sizeof buf), 0);
        return buf;
}

START_TEST(test_formats) {
        Blocklist *bl = load("# a downloaded list\n"
                             "127.0.0.1 localhost\n"
                             "127.0.0.1 localhost.localdomain\n"
                             "255.255.255.255 broadcasthost\n"
                             "::1 localhost ip6-localhost ip6-loopback\n"
                             "0.0.0.0 0.0.0.0\n"
                             "\n"
                             "0.0.0.0 ads.example tracker.example   # two on one line\n"
                             "0.0.0.0\tTabbed.Example\r\n"
                             ":: v6.example\n"
                             "bad.example\n"
                             "  spaced.example.  \n"
                             "*.wild.example\n"
                             "UPPER.Example # a comment after an entry\n"
                             "bad.example\n"
                             "under_score.example\r\n"
                             "tld\n"
                             "last.example"); /* no final newline */
        ck_assert_uint_eq(blocklist_skipped(bl), 0);
        ck_assert_str_eq(blocklist_problem(bl), "");

        /* sorted, lower-case, no final dot, no duplicates; localhost
         * names and addresses left out */
        const char *want[] = { "ads.example",    "bad.example", "last.example",        "spaced.example",
                               "tabbed.example", "tld",         "tracker.example",     "under_score.example",
                               "upper.example",  "v6.example",  "wild.example" };
        ck_assert_uint_eq(blocklist_size(bl), sizeof want / sizeof want[0]);
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
                ck_assert_str_eq(name_at(bl, i), want[i]);
        char buf[8];
        ck_assert_int_eq(blocklist_name(bl, blocklist_size(bl), buf, sizeof buf), -ERANGE);
        ck_assert_int_eq(blocklist_name(bl, 0, buf, 4), -ENOBUFS);
        ck_assert_int_eq(blocklist_name(bl, 0, buf, sizeof buf), -ENOBUFS); /* "ads.example" is 11 */

        ck_assert(!match_text(bl, "localhost"));
        ck_assert(match_text(bl, "tabbed.example"));
        ck_assert(match_text(bl, "x.wild.example"));
        ck_assert(match_text(bl, "anything.tld"));
        blocklist_free(bl);
}
END_TEST

START_TEST(test_matching) {
        Blocklist *bl = load("bad.example\nx.deep.example\n");
        DnsName n;

        ck_assert(match_text(bl, "bad.example"));
        ck_assert(match_text(bl, "bad.example."));
        ck_assert(match_text(bl, "BAD.Example"));
        ck_assert(match_text(bl, "x.bad.example"));
        ck_assert(match_text(bl, "a.b.c.d.e.f.bad.example"));
        /* label boundaries: "notbad.example" is not under "bad.example" */
        ck_assert(!match_text(bl, "notbad.example"));
        ck_assert(!match_text(bl, "bad.example.org"));
        ck_assert(!match_text(bl, "example"));
        /* a parent of an entry is not blocked */
        ck_assert(!match_text(bl, "deep.example"));
        ck_assert(match_text(bl, "x.deep.example"));
        ck_assert(match_text(bl, "y.x.deep.example"));
        /* the root and nonsense */
        ck_assert(!match_text(bl, "."));
        ck_assert(!match_text(bl, ""));
        ck_assert(!match_text(bl, "a..b"));
        /* a label holding a dot is one label, not two */
        ck_assert(!match_text(bl, "bad\\.example"));
        ck_assert(match_text(bl, "a\\.b.bad.example"));
        /* wire form, mixed case, as a query brings it */
        ck_assert_int_eq(dns_name_from_text("WWW.BAD.EXAMPLE", &n), 0);
        ck_assert(blocklist_match(bl, &n));
        /* no list, an empty list */
        ck_assert(!blocklist_match(NULL, &n));
        blocklist_free(bl);
        const char *none[] = { NULL };
        ck_assert_int_eq(blocklist_load(none, 0, &bl, NULL, 0), 0);
        ck_assert_uint_eq(blocklist_size(bl), 0);
        ck_assert(!blocklist_match(bl, &n));
        blocklist_free(bl);
        ck_assert_ptr_null(blocklist_free(NULL));
}
END_TEST

START_TEST(test_bad_lines) {
        /* each bad line is skipped and counted; the good ones stay */
        Blocklist *bl = load("good.example\n"
                             "two names.example\n"
                             "0.0.0.0\n"
                             ".\n"
                             "0.0.0.0 .\n"
                             "a..b\n"
                             "sp@ce.example\n"
                             "0.0.0.0 ok.example bad!.example\n"
                             "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example\n"
                             "fine.example\n"
                             "localhost\n"
                             "x.localhost\n");
        ck_assert_uint_eq(blocklist_size(bl), 3);
        ck_assert_str_eq(name_at(bl, 0), "fine.example");
        ck_assert_str_eq(name_at(bl, 1), "good.example");
        ck_assert_str_eq(name_at(bl, 2), "ok.example");
        ck_assert_uint_eq(blocklist_skipped(bl), 10);
        ck_assert_msg(strstr(blocklist_problem(bl), "/list:2: more than one name"), "%s", blocklist_problem(bl));
        /* the root never gets in, whatever the line */
        ck_assert(!match_text(bl, "com"));
        ck_assert(!match_text(bl, "localhost"));
        blocklist_free(bl);

        /* a line over the cap, a NUL byte */
        char *big = malloc(BLOCKLIST_LINE_MAX + 100);
        memset(big, 'a', BLOCKLIST_LINE_MAX + 50);
        strcpy(big + BLOCKLIST_LINE_MAX + 50, "\nz.example\n");
        bl = load(big);
        free(big);
        ck_assert_uint_eq(blocklist_size(bl), 1);
        ck_assert_uint_eq(blocklist_skipped(bl), 1);
        ck_assert_msg(strstr(blocklist_problem(bl), ":1: line too long"), "%s", blocklist_problem(bl));
        blocklist_free(bl);

        char *path = write_file("nul", "");
        FILE *f = fopen(path, "we");
        fwrite("a.example\nb\0.example\nc.example\n", 1, 31, f);
        fclose(f);
        const char *paths[] = { path };
        ck_assert_int_eq(blocklist_load(paths, 1, &bl, NULL, 0), 0);
        ck_assert_uint_eq(blocklist_size(bl), 2);
        ck_assert_uint_eq(blocklist_skipped(bl), 1);
        blocklist_free(bl);
        free(path);
}
END_TEST

START_TEST(test_files) {
        char *a = write_file("a", "one.example\nshared.example\n");
        char *b = write_file("b", "0.0.0.0 two.example shared.example\n");
        char *missing, err[256];
        Blocklist *bl = NULL, *untouched = (Blocklist *) &err;

        ck_assert_int_ge(asprintf(&missing, "%s/missing", dir), 0);
        const char *both[] = { a, b };
        ck_assert_int_eq(blocklist_load(both, 2, &bl, err, sizeof err), 0);
        ck_assert_uint_eq(blocklist_size(bl), 3);
        ck_assert(match_text(bl, "x.two.example"));
        ck_assert(!blocklist_changed(bl));

        /* one file missing: the whole load fails, naming it */
        Blocklist *bl2 = untouched;
        const char *three[] = { a, missing, b };
        ck_assert_int_eq(blocklist_load(three, 3, &bl2, err, sizeof err), -ENOENT);
        ck_assert_ptr_eq(bl2, untouched);
        ck_assert_msg(strstr(err, "/missing: No such file or directory"), "%s", err);
        /* a directory */
        const char *d[] = { dir };
        ck_assert_int_eq(blocklist_load(d, 1, &bl2, err, sizeof err), -EINVAL);
        ck_assert_msg(strstr(err, "not a regular file"), "%s", err);
        /* a FIFO nobody writes: refused at once, not waited on (the load
         * runs on ztnad's event loop; the test's timeout catches a hang) */
        char fifo[PATH_MAX];
        snprintf(fifo, sizeof fifo, "%s/fifo", dir);
        ck_assert_int_eq(mkfifo(fifo, 0644), 0);
        const char *ff[] = { fifo };
        ck_assert_int_eq(blocklist_load(ff, 1, &bl2, err, sizeof err), -EINVAL);
        ck_assert_msg(strstr(err, "not a regular file"), "%s", err);
        ck_assert_int_eq(unlink(fifo), 0);

        /* changes: rewritten with another size; touched; replaced; removed */
        FILE *f = fopen(b, "ae");
        fputs("three.example\n", f);
        fclose(f);
        ck_assert(blocklist_changed(bl));
        blocklist_free(bl);
        ck_assert_int_eq(blocklist_load(both, 2, &bl, err, sizeof err), 0);
        ck_assert_uint_eq(blocklist_size(bl), 4);
        ck_assert(!blocklist_changed(bl));

        struct timespec ts[2] = { { .tv_sec = 1000000000 }, { .tv_sec = 1000000000 } };
        ck_assert_int_eq(utimensat(AT_FDCWD, a, ts, 0), 0);
        ck_assert(blocklist_changed(bl));
        blocklist_free(bl);
        ck_assert_int_eq(blocklist_load(both, 2, &bl, err, sizeof err), 0);
        ck_assert(!blocklist_changed(bl));

        char *tmp = write_file("a.new", "one.example\nshared.example\n");
        ck_assert_int_eq(rename(tmp, a), 0); /* same size and content, new inode */
        ck_assert(blocklist_changed(bl));
        blocklist_free(bl);
        ck_assert_int_eq(blocklist_load(both, 2, &bl, err, sizeof err), 0);
        ck_assert_int_eq(unlink(b), 0);
        ck_assert(blocklist_changed(bl));
        blocklist_free(bl);

        free(tmp);
        free(a);
        free(b);
        free(missing);
}
END_TEST

static double now(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

START_TEST(test_large) {
        const size_t n = 200000;
        size_t cap = n * 40, len = 0;
        char *text = malloc(cap);

        for (size_t i = 0; i < n; i++)
                len += (size_t) snprintf(text + len, cap - len, "0.0.0.0 host%zu.ads%zu.example\n", i, i % 97);
        double t0 = now();
        Blocklist *bl = load(text);
        double t1 = now();
        free(text);
        ck_assert_uint_eq(blocklist_size(bl), n);

        /* a million lookups of names 5 labels deep, 600,000 of them blocked */
        size_t hits = 0;
        for (size_t i = 0; i < 1000000; i++) {
                char q[128];
                snprintf(q, sizeof q, "a.b.host%zu.ads%zu.example", i % (2 * n), (i % (2 * n)) % 97);
                hits += match_text(bl, q);
        }
        double t2 = now();
        ck_assert_uint_eq(hits, 600000);
        fprintf(stderr, "blocklist: loaded %zu names in %.2f s, 1e6 lookups in %.2f s\n", n, t1 - t0, t2 - t1);
        /* generous, for sanitizers on a slow machine */
        ck_assert_double_lt(t1 - t0, 20);
        ck_assert_double_lt(t2 - t1, 20);
        blocklist_free(bl);
}
END_TEST

static Suite *blocklist_suite(void) {
        Suite *s = suite_create("blocklist");
        TCase *tc = tcase_create("core");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_formats);
        tcase_add_test(tc, test_matching);
        tcase_add_test(tc, test_bad_lines);
        tcase_add_test(tc, test_files);
        tcase_add_test(tc, test_large);
        tcase_set_timeout(tc, 120);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(blocklist_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
