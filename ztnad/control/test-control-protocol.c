/* SPDX-License-Identifier: MIT */
/*
 * The control protocol without a socket: control_dispatch() turns one
 * request line into one reply line whatever the ops answer (missing,
 * failing, odd), and control_log_errno() makes a failure's log line. The
 * server over a real socket is test-control-server.c's.
 */

#include <check.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "control/control-protocol.h"
#include "control/test-control-reply.h"

/* The status op's answer, as ztnad's is: an object. */
static int op_status(void *userdata, json_t **ret) {
        (void) userdata;
        *ret = json_pack("{s:s, s:i, s:i, s:[{s:s, s:n}]}", "state", "up", "generation", 1, "records", 2,
                         "sources", "name", "test", "last_error");
        return *ret ? 0 : -ENOMEM;
}

static const ControlOps test_ops = {
        .status = op_status,
};

/* ---- control_dispatch() ---- */

static json_t *dispatch(const ControlOps *ops, bool admin, const char *line, size_t len) {
        ControlPeer peer = { .uid = admin ? 0 : 1000, .gid = 1000, .pid = 1, .admin = admin };
        char *reply = NULL;
        size_t reply_len = 0;
        json_t *j;

        ck_assert_int_eq(control_dispatch(ops, NULL, &peer, line, len, &reply, &reply_len), 0);
        ck_assert_uint_gt(reply_len, 0);
        ck_assert_int_eq(reply[reply_len - 1], '\n');
        ck_assert_ptr_null(memchr(reply, '\n', reply_len - 1));
        j = json_loadb(reply, reply_len, 0, NULL);
        ck_assert_ptr_nonnull(j);
        free(reply);
        return j;
}

static int op_status_bad(void *userdata, json_t **ret) {
        (void) userdata;
        *ret = json_string("not an object");
        return 0;
}

static int op_list_fails(void *userdata, json_t **ret) {
        (void) userdata;
        (void) ret;
        return -EIO;
}

static int op_push_silent(void *userdata, const char *doc, size_t len, char *err, size_t errlen) {
        (void) userdata;
        (void) doc;
        (void) len;
        /* A reason with bytes that are not text. */
        snprintf(err, errlen, "bad \x01\xff byte");
        return -EBADMSG;
}

START_TEST(test_dispatch_ops_missing_or_failing) {
        const ControlOps none = {};
        const ControlOps odd = { .status = op_status_bad, .list = op_list_fails, .push = op_push_silent };
        json_t *j;

        j = dispatch(&none, true, "{\"command\": \"flush\"}", 20);
        assert_refused(j, CONTROL_CODE_UNSUPPORTED, "flush is not supported");
        json_decref(j);
        j = dispatch(&none, false, "{\"command\": \"status\"}", 21);
        assert_refused(j, CONTROL_CODE_UNSUPPORTED, "status");
        json_decref(j);
        j = dispatch(&odd, false, "{\"command\": \"status\"}", 21);
        assert_refused(j, CONTROL_CODE_FAILED, "no object");
        json_decref(j);
        j = dispatch(&odd, false, "{\"command\": \"list\"}", 19);
        assert_refused(j, CONTROL_CODE_FAILED, "Input/output error");
        json_decref(j);
        j = dispatch(&odd, true, "{\"command\": \"push\", \"document\": \"x\"}", 36);
        assert_refused(j, CONTROL_CODE_REJECTED, "push rejected: bad ?? byte");
        json_decref(j);
        /* The length given is what counts, not a NUL. */
        j = dispatch(&test_ops, false, "{\"command\": \"status\"}garbage", 21);
        assert_ok(j);
        json_decref(j);
}
END_TEST

START_TEST(test_dispatch_ok_cannot_be_overridden) {
        json_t *j;

        /* An op's own "ok" or "id" never replaces the server's. */
        j = dispatch(&test_ops, false, "{\"command\": \"status\", \"id\": \"mine\"}", 35);
        assert_ok(j);
        ck_assert_str_eq(json_string_value(json_object_get(j, "id")), "mine");
        json_decref(j);
}
END_TEST

/* control_log_errno(): the line with the error's text where %m is, at the
 * priority given, handed to the hook; r returned, errno kept; no hook, no
 * line. */
static char logged[256];
static int logged_priority;

static void op_log_capture(void *userdata, int priority, const char *message) {
        (void) userdata;
        logged_priority = priority;
        snprintf(logged, sizeof logged, "%s", message);
}

START_TEST(test_log_errno) {
        const ControlOps hook = { .log = op_log_capture }, none = {};
        char want[256];

        snprintf(want, sizeof want, "control: cannot accept a connection: %s; pausing", strerror(EMFILE));
        errno = EAGAIN;
        ck_assert_int_eq(control_log_errno(&hook, NULL, LOG_WARNING, -EMFILE,
                                           "control: cannot accept a connection: %m; pausing"),
                         -EMFILE);
        ck_assert_int_eq(errno, EAGAIN);
        ck_assert_int_eq(logged_priority, LOG_WARNING);
        ck_assert_str_eq(logged, want);

        logged[0] = '\0';
        ck_assert_int_eq(control_log_errno(&none, NULL, LOG_WARNING, -EPERM, "%m"), -EPERM);
        ck_assert_str_eq(logged, "");
        ck_assert_int_eq(errno, EAGAIN);
}
END_TEST

static Suite *control_protocol_suite(void) {
        Suite *s = suite_create("control protocol");
        TCase *tc = tcase_create("without a socket");

        tcase_add_test(tc, test_dispatch_ops_missing_or_failing);
        tcase_add_test(tc, test_dispatch_ok_cannot_be_overridden);
        tcase_add_test(tc, test_log_errno);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(control_protocol_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
