/* SPDX-License-Identifier: MIT */
/*
 * The log helpers: log_line_errno() writes the line log_line() would with
 * strerror(-r) where the format says %m, returns r and leaves errno alone;
 * a line is cut at 1023 bytes; no sd-daemon prefix unless stderr is the
 * journal's stream.
 */

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/check-run.h"

/* Runs `fn` with stderr sent to a temporary file and returns what it wrote. */
static char *captured(void (*fn)(void)) {
        static char out[4096];
        FILE *f = tmpfile();
        int saved = dup(STDERR_FILENO);
        size_t n;

        ck_assert_ptr_nonnull(f);
        ck_assert_int_ge(saved, 0);
        fflush(stderr);
        ck_assert_int_ge(dup2(fileno(f), STDERR_FILENO), 0);
        fn();
        fflush(stderr);
        ck_assert_int_ge(dup2(saved, STDERR_FILENO), 0);
        close(saved);
        rewind(f);
        n = fread(out, 1, sizeof out - 1, f);
        out[n] = '\0';
        fclose(f);
        return out;
}

static int result;

static void log_enoent(void) {
        errno = EAGAIN;
        result = log_line_errno(SD_ERR, -ENOENT, "cannot open %s: %m (and %d more)", "/x", 2);
        ck_assert_int_eq(errno, EAGAIN);
}

static void log_long(void) {
        char big[2000];

        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        result = log_line_errno(SD_WARNING, -EACCES, "%s: %m", big);
}

START_TEST(test_errno_text) {
        char want[256];

        unsetenv("JOURNAL_STREAM");
        snprintf(want, sizeof want, "cannot open /x: %s (and 2 more)\n", strerror(ENOENT));
        ck_assert_str_eq(captured(log_enoent), want);
        ck_assert_int_eq(result, -ENOENT);
}
END_TEST

START_TEST(test_cut) {
        const char *out;

        unsetenv("JOURNAL_STREAM");
        out = captured(log_long);
        ck_assert_uint_eq(strlen(out), 1024); /* 1023 bytes and the newline */
        ck_assert_int_eq(out[1022], 'a');
        ck_assert_int_eq(result, -EACCES);
}
END_TEST

int main(void) {
        Suite *s = suite_create("log");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_errno_text);
        tcase_add_test(tc, test_cut);
        suite_add_tcase(s, tc);
        return check_run(s);
}
