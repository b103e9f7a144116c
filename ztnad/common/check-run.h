/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The end of every Check unit test's main(): the suite run with the
 * default output, the program's exit status saying whether any test
 * failed. Test programs only.
 */

#include <check.h>
#include <stdlib.h>

static inline int check_run(Suite *s) {
        SRunner *sr = srunner_create(s);
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
