/* SPDX-License-Identifier: MIT */
/*
 * controlplane.c without a network: the endpoint URL and what it refuses,
 * the token file rules, the request body, and what a resolve answer must be
 * before `ztna dns query` prints it. Transfers are tested against a real
 * server by tests/integration/test-controlplane.sh.
 */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sources/controlplane.h"

static const ControlPlaneConfig base = {
        .control_url = "https://login.example.com",
        .org_id = "org-1",
        .token_file = "/nonexistent/token",
};

static int endpoint(const char *url, char **ret, char *err, size_t errlen) {
        ControlPlaneConfig c = base;

        c.control_url = url;
        return controlplane_endpoint(&c, ret, err, errlen);
}

START_TEST(test_endpoint) {
        static const struct {
                const char *in, *out;
        } good[] = {
                { "https://login.example.com", "https://login.example.com/api/dns-management" },
                { "https://login.example.com/", "https://login.example.com/api/dns-management" },
                { "HTTPS://login.example.com:8443", "https://login.example.com:8443/api/dns-management" },
                { "https://example.com/ztna//", "https://example.com/ztna/api/dns-management" },
                { "https://127.0.0.1:1", "https://127.0.0.1:1/api/dns-management" },
                { "https://[::1]:443/", "https://[::1]:443/api/dns-management" },
        };
        static const struct {
                const char *in, *why;
        } bad[] = {
                { "http://login.example.com", "is not https://" },
                { "login.example.com", "is not" },
                { "ftp://login.example.com", "is not" },
                { "https://", "is not" },
                { "https://user:pw@login.example.com", "user, query or fragment" },
                { "https://login.example.com/?x=1", "user, query or fragment" },
                { "https://login.example.com/#top", "user, query or fragment" },
                { "", "control_url is not set" },
        };
        char err[CONTROLPLANE_ERROR_MAX];

        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                char *url = NULL;

                ck_assert_msg(endpoint(good[i].in, &url, err, sizeof err) == 0, "%s: %s", good[i].in, err);
                ck_assert_str_eq(url, good[i].out);
                free(url);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char *url = (char *) "untouched";

                ck_assert_int_eq(endpoint(bad[i].in, &url, err, sizeof err), -EINVAL);
                ck_assert_str_eq(url, "untouched");
                ck_assert_msg(strstr(err, bad[i].why), "%s: %s", bad[i].in, err);
        }
}
END_TEST

START_TEST(test_endpoint_needs_org_and_token) {
        ControlPlaneConfig c = base;
        char err[CONTROLPLANE_ERROR_MAX], *url = NULL;

        c.org_id = "";
        ck_assert_int_eq(controlplane_endpoint(&c, &url, err, sizeof err), -EINVAL);
        ck_assert_str_eq(err, "org_id is not set");
        c = base;
        c.token_file = NULL;
        ck_assert_int_eq(controlplane_endpoint(&c, &url, err, sizeof err), -EINVAL);
        ck_assert_str_eq(err, "token_file is not set");
        ck_assert_ptr_null(url);
}
END_TEST

/* A token file holding `len` bytes of `content`, mode `mode`. */
static char *token_file(const void *content, size_t len, mode_t mode) {
        char *path = strdup("/tmp/test-controlplane-XXXXXX");
        int fd;

        ck_assert_ptr_nonnull(path);
        fd = mkstemp(path);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, content, len), (ssize_t) len);
        ck_assert_int_eq(fchmod(fd, mode), 0);
        close(fd);
        return path;
}

static int read_token(const char *content, size_t len, mode_t mode, char **ret, bool *exposed, char *err,
                      size_t errlen) {
        char *path = token_file(content, len, mode);
        int r = controlplane_read_token(path, ret, exposed, err, errlen);

        unlink(path);
        free(path);
        return r;
}

START_TEST(test_token) {
        char err[CONTROLPLANE_ERROR_MAX], *t = NULL;
        bool exposed = true;

        ck_assert_int_eq(read_token(" \teyJhbGciOi.x-y_z\n\n", 20, 0600, &t, &exposed, err, sizeof err), 0);
        ck_assert_str_eq(t, "eyJhbGciOi.x-y_z");
        ck_assert(!exposed);
        free(t);

        t = NULL;
        ck_assert_int_eq(read_token("tok\n", 4, 0644, &t, &exposed, err, sizeof err), 0);
        ck_assert_str_eq(t, "tok");
        ck_assert_msg(exposed, "a world-readable token file must be flagged");
        free(t);

        t = NULL;
        ck_assert_int_eq(read_token("tok\n", 4, 0640, &t, &exposed, err, sizeof err), 0);
        ck_assert(!exposed);
        free(t);

        t = NULL;
        ck_assert_int_eq(read_token(" \n\t\n", 4, 0600, &t, &exposed, err, sizeof err), -EINVAL);
        ck_assert_ptr_null(t);
        ck_assert_ptr_nonnull(strstr(err, "is empty"));
        ck_assert_int_eq(read_token("", 0, 0600, &t, &exposed, err, sizeof err), -EINVAL);

        /* Each would end the Authorization header and start another. */
        ck_assert_int_eq(read_token("abc\r\nX-Evil: 1", 14, 0600, &t, &exposed, err, sizeof err), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "control character"));
        ck_assert_int_eq(read_token("abc\ndef", 7, 0600, &t, &exposed, err, sizeof err), -EINVAL);
        ck_assert_int_eq(read_token("ab\0cd", 5, 0600, &t, &exposed, err, sizeof err), -EINVAL);
        ck_assert_int_eq(read_token("ab\x7f", 3, 0600, &t, &exposed, err, sizeof err), -EINVAL);
        ck_assert_ptr_null(t);
}
END_TEST

START_TEST(test_token_size) {
        char err[CONTROLPLANE_ERROR_MAX], *t = NULL, *big = malloc(CONTROLPLANE_TOKEN_MAX + 2);
        bool exposed;

        ck_assert_ptr_nonnull(big);
        memset(big, 'a', CONTROLPLANE_TOKEN_MAX + 1);
        /* The last byte that fits, then one past it. */
        ck_assert_int_eq(read_token(big, CONTROLPLANE_TOKEN_MAX, 0600, &t, &exposed, err, sizeof err), 0);
        ck_assert_uint_eq(strlen(t), CONTROLPLANE_TOKEN_MAX);
        free(t);
        t = NULL;
        ck_assert_int_eq(read_token(big, CONTROLPLANE_TOKEN_MAX + 1, 0600, &t, &exposed, err, sizeof err),
                         -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "larger than"));
        ck_assert_ptr_null(t);
        free(big);
}
END_TEST

START_TEST(test_token_not_a_file) {
        char err[CONTROLPLANE_ERROR_MAX], *t = NULL;
        bool exposed;

        ck_assert_int_eq(controlplane_read_token("/tmp", &t, &exposed, err, sizeof err), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
        ck_assert_int_eq(controlplane_read_token("/nonexistent/token", &t, &exposed, err, sizeof err), -ENOENT);
        ck_assert_ptr_nonnull(strstr(err, "/nonexistent/token"));
        ck_assert_ptr_null(t);
}
END_TEST

START_TEST(test_body) {
        char *b = controlplane_body("list", "org-1", NULL);

        ck_assert_str_eq(b, "{\"action\":\"list\",\"org_id\":\"org-1\"}");
        free(b);
        /* Quotes in a value stay inside their string. */
        b = controlplane_body("resolve", "o\"rg", "Win-A");
        ck_assert_str_eq(b, "{\"action\":\"resolve\",\"org_id\":\"o\\\"rg\",\"name\":\"Win-A\"}");
        free(b);
        ck_assert_ptr_null(controlplane_body("list", "\xff", NULL));
}
END_TEST

static int answer(const char *json, const char *query, ControlPlaneAnswer **ret, char *err, size_t errlen) {
        return controlplane_parse_answer(json, strlen(json), query, ret, err, errlen);
}

START_TEST(test_answer) {
        static const char *const queries[] = { "Win-A", "win-a", "WIN-A.YOURORG.ZT.NET", "Win-A.yourorg.zt.net." };
        const char *json = "{\"name\": \"Win-A\", \"fqdn\": \"Win-A.yourorg.zt.net.\", \"online\": true,"
                           " \"addresses\": [\"100.64.0.1\", \"fd7a:115c:a1e0:0:0:0:0:1\"]}";
        char err[CONTROLPLANE_ERROR_MAX];

        for (size_t i = 0; i < ELEMENTSOF(queries); i++) {
                _cleanup_controlplane_answer_ ControlPlaneAnswer *a = NULL;

                ck_assert_msg(answer(json, queries[i], &a, err, sizeof err) == 0, "%s: %s", queries[i], err);
                ck_assert_str_eq(a->name, "Win-A");
                ck_assert_str_eq(a->fqdn, "Win-A.yourorg.zt.net");
                ck_assert_uint_eq(a->n_addresses, 2);
                ck_assert_int_eq(a->addresses[0].family, AF_INET);
                ck_assert_str_eq(a->addresses[0].text, "100.64.0.1");
                ck_assert_int_eq(a->addresses[1].family, AF_INET6);
                /* Printed the way inet_ntop() writes it. */
                ck_assert_str_eq(a->addresses[1].text, "fd7a:115c:a1e0::1");
        }
}
END_TEST

START_TEST(test_answer_empty) {
        _cleanup_controlplane_answer_ ControlPlaneAnswer *a = NULL;
        char err[CONTROLPLANE_ERROR_MAX];

        ck_assert_int_eq(answer("{\"name\":\"x\",\"fqdn\":\"x.y\",\"addresses\":[]}", "x", &a, err, sizeof err), 0);
        ck_assert_uint_eq(a->n_addresses, 0);
}
END_TEST

START_TEST(test_answer_not_found) {
        ControlPlaneAnswer *a = NULL;
        char err[CONTROLPLANE_ERROR_MAX];

        ck_assert_int_eq(answer("{\"error\": \"not found\"}", "Nobody.", &a, err, sizeof err), -ENOENT);
        ck_assert_str_eq(err, "control plane knows no peer \"Nobody\"");
        ck_assert_int_eq(answer("{\"error\": \"database on fire\\n\"}", "x", &a, err, sizeof err), -EPROTO);
        ck_assert_str_eq(err, "control plane could not resolve \"x\": database on fire?");
        ck_assert_ptr_null(a);
}
END_TEST

START_TEST(test_answer_invalid) {
        static const struct {
                const char *json, *query, *why;
        } bad[] = {
                { "", "x", "not JSON" },
                { "{\"name\":", "x", "not JSON" },
                { "[]", "x", "not a JSON object" },
                { "{\"name\":\"x\",\"name\":\"x\",\"fqdn\":\"x.y\",\"addresses\":[]}", "x", "not JSON" },
                { "{\"fqdn\":\"x.y\",\"addresses\":[]}", "x", "lacks" },
                { "{\"name\":\"x\",\"fqdn\":\"x.y\",\"addresses\":\"1.2.3.4\"}", "x", "lacks" },
                { "{\"name\":\"x y\",\"fqdn\":\"x.y\",\"addresses\":[]}", "x", "invalid \"name\"" },
                { "{\"name\":\"-x\",\"fqdn\":\"-x.y\",\"addresses\":[]}", "-x", "invalid \"name\"" },
                { "{\"name\":\"x\\u0000\",\"fqdn\":\"x.y\",\"addresses\":[]}", "x", "not JSON" },
                { "{\"name\":\"x\",\"fqdn\":\"x\",\"addresses\":[]}", "x", "invalid \"fqdn\"" },
                { "{\"name\":\"x\",\"fqdn\":\"z.y\",\"addresses\":[]}", "x", "invalid \"fqdn\"" },
                { "{\"name\":\"x\",\"fqdn\":\"xx.y\",\"addresses\":[]}", "x", "invalid \"fqdn\"" },
                { "{\"name\":\"x\",\"fqdn\":\"x..y\",\"addresses\":[]}", "x", "invalid \"fqdn\"" },
                { "{\"name\":\"x\",\"fqdn\":\"x.y\",\"addresses\":[]}", "z",
                  "answered for \"x.y\" when asked for \"z\"" },
                { "{\"name\":\"x\",\"fqdn\":\"x.y\",\"addresses\":[]}", "x.z", "answered for" },
                { "{\"name\":\"x\",\"fqdn\":\"x.y\",\"addresses\":[1]}", "x", "addresses[0] is not a string" },
                { "{\"name\":\"x\",\"fqdn\":\"x.y\",\"addresses\":[\"1.2.3.4\",\"1.2.3\"]}", "x",
                  "addresses[1] \"1.2.3\" is not an IP address" },
                { "{\"name\":\"x\",\"fqdn\":\"x.y\",\"addresses\":[\"100.64.0.1 \"]}", "x", "not an IP address" },
                { "{\"name\":\"x\",\"fqdn\":\"x.y\",\"addresses\":[\"fe80::1%eth0\"]}", "x", "not an IP address" },
        };
        char err[CONTROLPLANE_ERROR_MAX];

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                ControlPlaneAnswer *a = NULL;

                ck_assert_msg(answer(bad[i].json, bad[i].query, &a, err, sizeof err) == -EBADMSG, "%s", bad[i].json);
                ck_assert_ptr_null(a);
                ck_assert_msg(strstr(err, bad[i].why), "%s: %s", bad[i].json, err);
        }
}
END_TEST

/* The address count: the last that fits, then one more. */
START_TEST(test_answer_address_count) {
        char err[CONTROLPLANE_ERROR_MAX];

        for (unsigned n = CONTROLPLANE_ADDRESSES_MAX; n <= CONTROLPLANE_ADDRESSES_MAX + 1; n++) {
                ControlPlaneAnswer *a = NULL;
                char json[8192];
                size_t len = 0;
                int r;

                len += (size_t) snprintf(json + len, sizeof json - len,
                                         "{\"name\":\"x\",\"fqdn\":\"x.y\",\"addresses\":[");
                for (unsigned i = 0; i < n; i++)
                        len += (size_t) snprintf(json + len, sizeof json - len, "%s\"100.64.1.%u\"", i ? "," : "", i);
                (void) snprintf(json + len, sizeof json - len, "]}");
                r = answer(json, "x", &a, err, sizeof err);
                if (n == CONTROLPLANE_ADDRESSES_MAX) {
                        ck_assert_int_eq(r, 0);
                        ck_assert_uint_eq(a->n_addresses, n);
                        ck_assert_str_eq(a->addresses[n - 1].text, "100.64.1.63");
                        controlplane_answer_free(a);
                } else {
                        ck_assert_int_eq(r, -EBADMSG);
                        ck_assert_ptr_nonnull(strstr(err, "addresses"));
                }
        }
}
END_TEST

START_TEST(test_resolve_refuses_before_connecting) {
        ControlPlaneConfig c = base;
        ControlPlaneAnswer *a = NULL;
        char err[CONTROLPLANE_ERROR_MAX];

        ck_assert_int_eq(controlplane_resolve(&c, "", &a, NULL, err, sizeof err), -EINVAL);
        ck_assert_int_eq(controlplane_resolve(&c, "Win A", &a, NULL, err, sizeof err), -EINVAL);
        /* Not -ENOENT, which is the server's "no such peer": ztna asks
         * ztnad instead only for a failure to ask. */
        ck_assert_int_eq(controlplane_resolve(&c, "Win-A", &a, NULL, err, sizeof err), -ENOKEY);
        ck_assert_ptr_nonnull(strstr(err, "cannot open token file /nonexistent/token"));
        c.control_url = "http://127.0.0.1:1";
        ck_assert_int_eq(controlplane_resolve(&c, "Win-A", &a, NULL, err, sizeof err), -EINVAL);
        ck_assert_ptr_nonnull(strstr(err, "is not https://"));
        ck_assert_ptr_null(a);
}
END_TEST

static Suite *controlplane_suite(void) {
        Suite *s = suite_create("controlplane");
        TCase *tc = tcase_create("offline");

        tcase_add_test(tc, test_endpoint);
        tcase_add_test(tc, test_endpoint_needs_org_and_token);
        tcase_add_test(tc, test_token);
        tcase_add_test(tc, test_token_size);
        tcase_add_test(tc, test_token_not_a_file);
        tcase_add_test(tc, test_body);
        tcase_add_test(tc, test_answer);
        tcase_add_test(tc, test_answer_empty);
        tcase_add_test(tc, test_answer_not_found);
        tcase_add_test(tc, test_answer_invalid);
        tcase_add_test(tc, test_answer_address_count);
        tcase_add_test(tc, test_resolve_refuses_before_connecting);
        suite_add_tcase(s, tc);
        return s;
}

int main(void) {
        SRunner *sr = srunner_create(controlplane_suite());
        int failed;

        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
