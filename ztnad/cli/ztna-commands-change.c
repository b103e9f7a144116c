/* SPDX-License-Identifier: MIT */
/*
 * ztna: the commands that change what ztnad publishes: up, down,
 * dns flush, and peers push with the document it reads.
 */

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/ztna-internal.h"
#include "control/control-protocol.h"
#include "macro.h"

/* up, down, flush: one request, one "done". */
int ztna_cmd_change(const Args *a, const char *command, const char *done) {
        _cleanup_(json_decrefp) json_t *req = json_pack("{s:s}", "command", command), *reply = NULL;
        char err[ERROR_MAX];

        if (!req || ztna_daemon_call(a, req, &reply, err, sizeof err) < 0)
                return ztna_unreachable(a, req ? err : "out of memory");
        if (!json_is_true(json_object_get(reply, "ok")))
                return ztna_refused(a, reply);
        if (a->json)
                ztna_print_json(reply);
        else
                puts(done);
        return EXIT_OK;
}

/* The whole file (or stdin for "-"), at most CONTROL_DOCUMENT_MAX bytes. */
static int read_document(const char *path, char **ret, size_t *ret_len, char *err, size_t errlen) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, size = 0;
        struct stat st;

        if (strcmp(path, "-") == 0)
                fd = dup(STDIN_FILENO);
        else
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0) {
                snprintf(err, errlen, "%s: %s", path, strerror(errno));
                return -errno;
        }
        if (S_ISDIR(st.st_mode)) {
                snprintf(err, errlen, "%s: is a directory", path);
                return -EISDIR;
        }
        for (;;) {
                ssize_t n;

                if (len == size) {
                        size_t grow = size ? size * 2 : 65536;
                        char *p;

                        if (grow > CONTROL_DOCUMENT_MAX + 1)
                                grow = CONTROL_DOCUMENT_MAX + 1;
                        if (grow <= size) {
                                snprintf(err, errlen, "%s: over %zu bytes, the largest peers document ztnad takes",
                                         path, CONTROL_DOCUMENT_MAX);
                                return -E2BIG;
                        }
                        p = realloc(buf, grow);
                        if (!p) {
                                snprintf(err, errlen, "out of memory");
                                return -ENOMEM;
                        }
                        buf = p;
                        size = grow;
                }
                n = read(fd, buf + len, size - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        snprintf(err, errlen, "%s: %s", path, strerror(errno));
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        if (len > CONTROL_DOCUMENT_MAX) {
                snprintf(err, errlen, "%s: over %zu bytes, the largest peers document ztnad takes", path,
                         CONTROL_DOCUMENT_MAX);
                return -E2BIG;
        }
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

int ztna_cmd_push(const Args *a, const char *path) {
        _cleanup_(json_decrefp) json_t *req = NULL, *reply = NULL, *status = NULL, *status_req = NULL;
        _cleanup_free_ char *doc = NULL;
        const char *shown = strcmp(path, "-") == 0 ? "standard input" : path;
        Conn c = { .fd = -1 };
        char err[ERROR_MAX];
        size_t len = 0;
        json_t *generation;
        int r;

        if (read_document(path, &doc, &len, err, sizeof err) < 0)
                return ztna_failed(a, EXIT_FAILED, CLIENT_CODE_FILE, "%s", err);
        /* The document goes as a JSON string, byte for byte, so ztnad's
         * errors point at lines and columns of this file. A JSON string
         * holds UTF-8 text without NULs, as a JSON document is. */
        req = json_pack("{s:s, s:o}", "command", "push", "document", json_stringn(doc, len));
        if (!req)
                return ztna_failed(a, EXIT_FAILED, CONTROL_CODE_REJECTED,
                                   "%s: not UTF-8 text (or it holds a NUL byte): not a peers document", shown);
        free(doc);
        doc = NULL;

        r = ztna_conn_open(a, &c, err, sizeof err);
        if (r < 0)
                return ztna_unreachable(a, err);
        r = ztna_conn_call(&c, req, &reply, err, sizeof err);
        if (r < 0) {
                ztna_conn_done(&c);
                return ztna_unreachable(a, err);
        }
        if (!json_is_true(json_object_get(reply, "ok"))) {
                ztna_conn_done(&c);
                return ztna_refused(a, reply);
        }
        /* What it became, on the same connection; best effort. */
        status_req = json_pack("{s:s}", "command", "status");
        if (!status_req || ztna_conn_call(&c, status_req, &status, err, sizeof err) < 0 ||
            !json_is_true(json_object_get(status, "ok"))) {
                json_decref(status);
                status = NULL;
        }
        ztna_conn_done(&c);

        generation = json_object_get(status, "generation");
        if (a->json) {
                if (json_is_integer(generation))
                        json_object_set(reply, "generation", generation);
                ztna_print_json(reply);
        } else if (json_is_integer(generation))
                printf("pushed %s: accepted; ztnad publishes generation %" JSON_INTEGER_FORMAT "\n", shown,
                       json_integer_value(generation));
        else
                printf("pushed %s: accepted\n", shown);
        return EXIT_OK;
}
