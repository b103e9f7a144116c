/* SPDX-License-Identifier: MIT */
/*
 * The bounded regular-file reader: a plain file, an empty one, one at the
 * cap and one past it, a directory, a FIFO with no writer (must not block),
 * a missing path, a symlink with and without READ_FILE_NOFOLLOW, a file
 * that holds more than fstat() says (as a file still being written does),
 * and a path relative to a directory opened before it was renamed.
 */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/read-file.h"
#include "common/check-run.h"

static char dir[] = "/tmp/test-read-file.XXXXXX";

static void path_of(char *buf, size_t n, const char *name) {
        snprintf(buf, n, "%s/%s", dir, name);
}

static void write_file(const char *name, const char *data, size_t len) {
        char p[PATH_MAX];
        FILE *f;

        path_of(p, sizeof p, name);
        f = fopen(p, "we");
        ck_assert_ptr_nonnull(f);
        ck_assert_uint_eq(fwrite(data, 1, len, f), len);
        ck_assert_int_eq(fclose(f), 0);
}

static void setup(void) {
        ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
        char cmd[PATH_MAX + 16];

        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        (void) !system(cmd);
        strcpy(dir, "/tmp/test-read-file.XXXXXX");
}

START_TEST(test_plain_and_empty) {
        char p[PATH_MAX], *data = NULL;
        size_t len = 99;
        struct stat st;

        write_file("a", "hello\nworld", 11);
        path_of(p, sizeof p, "a");
        ck_assert_int_eq(read_regular_file(p, 64, 0, &data, &len, &st, NULL), 0);
        ck_assert_uint_eq(len, 11);
        ck_assert_mem_eq(data, "hello\nworld", 11);
        ck_assert_int_eq(data[len], '\0');
        ck_assert_int_eq(st.st_size, 11);
        free(data);

        /* Empty: a buffer all the same, NUL-terminated. */
        data = NULL;
        write_file("empty", "", 0);
        path_of(p, sizeof p, "empty");
        ck_assert_int_eq(read_regular_file(p, 64, 0, &data, &len, NULL, NULL), 0);
        ck_assert_uint_eq(len, 0);
        ck_assert_ptr_nonnull(data);
        ck_assert_int_eq(data[0], '\0');
        free(data);
}
END_TEST

START_TEST(test_cap) {
        char p[PATH_MAX], buf[33], *data = NULL;
        size_t len = 0;
        struct stat st;
        ReadFileStep step;

        memset(buf, 'x', sizeof buf);
        write_file("cap", buf, 32);
        path_of(p, sizeof p, "cap");
        ck_assert_int_eq(read_regular_file(p, 32, 0, &data, &len, NULL, NULL), 0);
        ck_assert_uint_eq(len, 32);
        free(data);

        /* One past the cap: refused before reading, with the size for the
         * caller's message; outputs untouched. */
        data = NULL;
        len = 7;
        write_file("over", buf, 33);
        path_of(p, sizeof p, "over");
        ck_assert_int_eq(read_regular_file(p, 32, 0, &data, &len, &st, &step), -EFBIG);
        ck_assert_int_eq(step, READ_FILE_CHECK);
        ck_assert_int_eq(st.st_size, 33);
        ck_assert_ptr_null(data);
        ck_assert_uint_eq(len, 7);
}
END_TEST

START_TEST(test_not_regular) {
        char p[PATH_MAX], *data = NULL;
        size_t len;
        ReadFileStep step;

        ck_assert_int_eq(read_regular_file(dir, 1 << 20, 0, &data, &len, NULL, &step), -EINVAL);
        ck_assert_int_eq(step, READ_FILE_CHECK);

        /* A FIFO with no writer: open() would block without O_NONBLOCK (the
         * test's timeout would fail it); it is refused at once. */
        path_of(p, sizeof p, "fifo");
        ck_assert_int_eq(mkfifo(p, 0600), 0);
        ck_assert_int_eq(read_regular_file(p, 1 << 20, 0, &data, &len, NULL, &step), -EINVAL);
        ck_assert_int_eq(step, READ_FILE_CHECK);

        path_of(p, sizeof p, "missing");
        ck_assert_int_eq(read_regular_file(p, 1 << 20, 0, &data, &len, NULL, &step), -ENOENT);
        ck_assert_int_eq(step, READ_FILE_OPEN);
        ck_assert_ptr_null(data);
}
END_TEST

START_TEST(test_nofollow) {
        char p[PATH_MAX], *data = NULL;
        size_t len;
        ReadFileStep step;

        write_file("target", "t", 1);
        path_of(p, sizeof p, "link");
        ck_assert_int_eq(symlink("target", p), 0);
        ck_assert_int_eq(read_regular_file(p, 64, 0, &data, &len, NULL, NULL), 0);
        ck_assert_uint_eq(len, 1);
        free(data);
        data = NULL;
        ck_assert_int_eq(read_regular_file(p, 64, READ_FILE_NOFOLLOW, &data, &len, NULL, &step), -ELOOP);
        ck_assert_int_eq(step, READ_FILE_OPEN);
        ck_assert_ptr_null(data);
}
END_TEST

/* Relative to an open directory: the one opened, even once another has
 * taken its name; the same checks (a symlink refused) as by path. */
START_TEST(test_at) {
        char p[PATH_MAX], q[PATH_MAX], *data = NULL;
        size_t len;
        ReadFileStep step;
        int dfd;

        path_of(p, sizeof p, "d");
        ck_assert_int_eq(mkdir(p, 0755), 0);
        write_file("d/f", "first", 5);
        dfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        ck_assert_int_ge(dfd, 0);
        path_of(q, sizeof q, "e");
        ck_assert_int_eq(rename(p, q), 0);
        ck_assert_int_eq(mkdir(p, 0755), 0);
        write_file("d/f", "second", 6);

        ck_assert_int_eq(read_regular_file_at(dfd, "f", 64, 0, &data, &len, NULL, NULL), 0);
        ck_assert_uint_eq(len, 5);
        ck_assert_mem_eq(data, "first", 5);
        free(data);
        data = NULL;
        ck_assert_int_eq(symlinkat("f", dfd, "link"), 0);
        ck_assert_int_eq(read_regular_file_at(dfd, "link", 64, READ_FILE_NOFOLLOW, &data, &len, NULL, &step), -ELOOP);
        ck_assert_int_eq(step, READ_FILE_OPEN);
        ck_assert_ptr_null(data);
        ck_assert_int_eq(read_regular_file_at(dfd, "missing", 64, 0, &data, &len, NULL, &step), -ENOENT);
        ck_assert_int_eq(close(dfd), 0);
}
END_TEST

/* More bytes than fstat() reported is what a file still being written
 * looks like. /proc files are regular with st_size 0 and content behind
 * it: the same case, without a race. */
START_TEST(test_growing) {
        char *data = NULL;
        size_t len;
        struct stat st;
        ReadFileStep step;

        if (stat("/proc/self/status", &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != 0) {
                fprintf(stderr, "SKIP - growing file: /proc/self/status is not a size-0 regular file here\n");
                return;
        }
        ck_assert_int_eq(read_regular_file("/proc/self/status", 1 << 20, READ_FILE_SECRET, &data, &len, NULL, &step),
                         -EAGAIN);
        ck_assert_int_eq(step, READ_FILE_READ);
        ck_assert_ptr_null(data);
}
END_TEST

int main(void) {
        Suite *s = suite_create("read-file");
        TCase *tc = tcase_create("core");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_plain_and_empty);
        tcase_add_test(tc, test_cap);
        tcase_add_test(tc, test_not_regular);
        tcase_add_test(tc, test_nofollow);
        tcase_add_test(tc, test_growing);
        tcase_add_test(tc, test_at);
        suite_add_tcase(s, tc);
        return check_run(s);
}
