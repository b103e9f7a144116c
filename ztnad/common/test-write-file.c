/* SPDX-License-Identifier: MIT */
/*
 * Replacing a file whole: the content and mode arrive, an existing file is
 * replaced, and a write that cannot finish (a directory in the way, a
 * missing directory) leaves the old file and no temporary file behind.
 */

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/write-file.h"
#include "common/check-run.h"

static char dir[64];

static void setup(void) {
        snprintf(dir, sizeof dir, "/tmp/test-write-file.XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void) {
        char cmd[PATH_MAX + 16];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        ck_assert_int_eq(system(cmd), 0);
}

static size_t entries(void) {
        DIR *d = opendir(dir);
        struct dirent *e;
        size_t n = 0;

        ck_assert_ptr_nonnull(d);
        while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                        n++;
        closedir(d);
        return n;
}

static void content_is(const char *path, const char *want) {
        char buf[256] = "";
        FILE *f = fopen(path, "re");
        size_t n;

        ck_assert_ptr_nonnull(f);
        n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = '\0';
        fclose(f);
        ck_assert_str_eq(buf, want);
}

START_TEST(test_write_and_replace) {
        char path[PATH_MAX];
        struct stat st;

        snprintf(path, sizeof path, "%s/state", dir);
        ck_assert_int_eq(write_file_atomic(path, ".", "first\n", 6, 0640, WRITE_FILE_SYNC | WRITE_FILE_SYNC_DIR), 0);
        content_is(path, "first\n");
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0640);
        ck_assert_int_eq(write_file_atomic(path, ".ztna.", "second\n", 7, 0644, 0), 0);
        content_is(path, "second\n");
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0644);
        ck_assert_int_eq(write_file_atomic(path, ".", "", 0, 0600, WRITE_FILE_SYNC), 0);
        content_is(path, "");
        ck_assert_uint_eq(entries(), 1); /* no temporary file left */
}
END_TEST

START_TEST(test_failures_leave_nothing) {
        char path[PATH_MAX], sub[128];

        /* A directory where the file should go: the rename fails. */
        snprintf(sub, sizeof sub, "%s/busy", dir);
        ck_assert_int_eq(mkdir(sub, 0700), 0);
        snprintf(path, sizeof path, "%s/x", sub);
        ck_assert_int_eq(mkdir(path, 0700), 0);
        ck_assert_int_lt(write_file_atomic(sub, ".", "data", 4, 0644, WRITE_FILE_SYNC), 0);
        ck_assert_uint_eq(entries(), 1); /* only "busy" */

        /* A directory that does not exist: nothing is created. */
        snprintf(path, sizeof path, "%s/missing/state", dir);
        ck_assert_int_eq(write_file_atomic(path, ".", "data", 4, 0644, 0), -ENOENT);
        ck_assert_uint_eq(entries(), 1);
}
END_TEST

int main(void) {
        Suite *s = suite_create("write-file");
        TCase *tc = tcase_create("atomic");

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_write_and_replace);
        tcase_add_test(tc, test_failures_leave_nothing);
        suite_add_tcase(s, tc);
        return check_run(s);
}
