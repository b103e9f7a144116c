/* SPDX-License-Identifier: MIT */
/*
 * quote_text(): printable ASCII as it is, '"' and '\' escaped, every other
 * byte as \xHH (a newline cannot start a second log line), and a long
 * value cut with "..." without ever writing past the buffer.
 */

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "common/quote.h"
#include "common/check-run.h"

START_TEST(test_escapes) {
        char buf[64];
        const char in[] = "a\"b\\c\nd\x7f\xff";

        ck_assert_str_eq(quote_text(buf, sizeof buf, in, sizeof in - 1), "\"a\\\"b\\\\c\\x0ad\\x7f\\xff\"");
        ck_assert_str_eq(quote_text(buf, sizeof buf, "", 0), "\"\"");
        /* A NUL inside the value is a byte like any other. */
        ck_assert_str_eq(quote_text(buf, sizeof buf, "x\0y", 3), "\"x\\x00y\"");
}
END_TEST

START_TEST(test_cut) {
        char big[1000], buf[32 + 8];
        memset(big, 'z', sizeof big);

        /* Guard bytes after the size given: never written. */
        memset(buf, '#', sizeof buf);
        const char *q = quote_text(buf, 32, big, sizeof big);
        ck_assert_uint_lt(strlen(q), 32);
        ck_assert_str_eq(q + strlen(q) - 4, "...\"");
        for (size_t i = 32; i < sizeof buf; i++)
                ck_assert_int_eq(buf[i], '#');
        /* Escapes near the end: still inside the buffer. */
        memset(big, '\n', sizeof big);
        memset(buf, '#', sizeof buf);
        q = quote_text(buf, 32, big, sizeof big);
        ck_assert_uint_lt(strlen(q), 32);
        ck_assert_str_eq(q + strlen(q) - 4, "...\"");
        for (size_t i = 32; i < sizeof buf; i++)
                ck_assert_int_eq(buf[i], '#');
        /* The smallest buffer allowed takes one escape. */
        ck_assert_str_eq(quote_text(buf, QUOTE_SIZE_MIN, "\x01\x02", 2), "\"\\x01...\"");
}
END_TEST

int main(void) {
        Suite *s = suite_create("quote");
        TCase *tc = tcase_create("core");

        tcase_add_test(tc, test_escapes);
        tcase_add_test(tc, test_cut);
        suite_add_tcase(s, tc);
        return check_run(s);
}
