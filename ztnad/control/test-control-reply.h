/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What the control tests (test-control-protocol.c, test-control-server.c)
 * check a reply with: ok, or refused with a code and a reason that says
 * `needle`.
 */

#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

static inline void assert_ok(json_t *reply) {
        char *text = json_dumps(reply, 0);

        ck_assert_msg(json_is_true(json_object_get(reply, "ok")), "not ok: %s", text);
        free(text);
}

static inline void assert_refused(json_t *reply, const char *code, const char *needle) {
        const char *error = json_string_value(json_object_get(reply, "error"));
        char *text = json_dumps(reply, 0);

        ck_assert_msg(json_is_false(json_object_get(reply, "ok")), "not refused: %s", text);
        ck_assert_msg(json_is_string(json_object_get(reply, "code")), "no code: %s", text);
        ck_assert_msg(strcmp(json_string_value(json_object_get(reply, "code")), code) == 0, "not %s: %s", code,
                      text);
        ck_assert_msg(error && strstr(error, needle), "error lacks \"%s\": %s", needle, text);
        free(text);
}
