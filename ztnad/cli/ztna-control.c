/* SPDX-License-Identifier: MIT */
/*
 * ztna: the client of ztnad's control socket (docs/control-protocol.md).
 * One JSON request line, one JSON reply line, against a deadline; a
 * refusal in the reply, or ztnad out of reach, turned into ztna's exit code.
 */

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "cli/ztna-internal.h"
#include "common/time-util.h"
#include "control/control-protocol.h"
#include "macro.h"

/* A list of a very large tailnet; anything longer is not ztnad talking. */
#define REPLY_MAX ((size_t) 512 << 20)

const char *ztna_socket_path(const Args *a) {
        return a->socket ? a->socket : CONTROL_DEFAULT_PATH;
}

void ztna_conn_done(Conn *c) {
        safe_close(c->fd);
        c->fd = -1;
        free(c->buf);
        c->buf = NULL;
        c->len = c->size = 0;
}

/* Waits for `events` until the deadline. 1 ready, 0 timed out, -errno. */
static int conn_wait(Conn *c, short events) {
        for (;;) {
                uint64_t now = clock_now_usec(CLOCK_MONOTONIC);
                struct pollfd p = { .fd = c->fd, .events = events };
                int r;

                if (now >= c->deadline)
                        return 0;
                r = poll(&p, 1, (int) ((c->deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r > 0)
                        return 1;
        }
}

int ztna_conn_open(const Args *a, Conn *ret, char *err, size_t errlen) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        const char *path = ztna_socket_path(a);
        _cleanup_close_ int fd = -1;

        if (strlen(path) >= sizeof sa.sun_path) {
                snprintf(err, errlen, "socket path too long");
                return -ENAMETOOLONG;
        }
        memcpy(sa.sun_path, path, strlen(path));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                int r = -errno;

                snprintf(err, errlen, "%s", strerror(-r));
                return r;
        }
        /* Blocking connect (a local socket answers at once), then
         * non-blocking I/O against a deadline. */
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
                snprintf(err, errlen, "%s", strerror(errno));
                return -errno;
        }
        *ret = (Conn) { .fd = TAKE_FD(fd), .deadline = clock_now_usec(CLOCK_MONOTONIC) + a->timeout_usec };
        return 0;
}

/* Sends one request line. A server that refuses early (a push too large
 * for this user) answers and closes while we are still sending: then the
 * rest is dropped and its answer read. */
static int conn_send(Conn *c, const json_t *request, char *err, size_t errlen) {
        _cleanup_free_ char *text = json_dumps(request, JSON_COMPACT);
        size_t len, off = 0;

        if (!text) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        len = strlen(text);
        text[len++] = '\n'; /* over the NUL: the length is what counts */
        while (off < len) {
                ssize_t n = send(c->fd, text + off, len - off, MSG_NOSIGNAL);
                int r;

                if (n >= 0) {
                        off += (size_t) n;
                        continue;
                }
                if (errno == EPIPE || errno == ECONNRESET)
                        return 0;
                if (errno != EAGAIN && errno != EINTR) {
                        snprintf(err, errlen, "cannot send to ztnad: %s", strerror(errno));
                        return -errno;
                }
                r = conn_wait(c, POLLOUT);
                if (r == 0) {
                        snprintf(err, errlen, "ztnad did not take the request in time");
                        return -ETIMEDOUT;
                }
                if (r < 0) {
                        snprintf(err, errlen, "%s", strerror(-r));
                        return r;
                }
        }
        return 0;
}

/* Reads one reply line and parses it. */
static int conn_receive(Conn *c, json_t **ret, char *err, size_t errlen) {
        json_error_t jerr;
        char *nl;
        json_t *j;

        while (!(nl = memchr(c->buf ? c->buf : "", '\n', c->len))) {
                ssize_t n;
                int r;

                if (c->len >= REPLY_MAX) {
                        snprintf(err, errlen, "ztnad's answer is over %zu bytes", REPLY_MAX);
                        return -E2BIG;
                }
                if (c->size - c->len < 65536) {
                        size_t size = c->size ? c->size * 2 : 65536;
                        char *p = realloc(c->buf, size);

                        if (!p) {
                                snprintf(err, errlen, "out of memory");
                                return -ENOMEM;
                        }
                        c->buf = p;
                        c->size = size;
                }
                n = recv(c->fd, c->buf + c->len, c->size - c->len, 0);
                if (n > 0) {
                        c->len += (size_t) n;
                        continue;
                }
                if (n == 0 || errno == ECONNRESET) {
                        snprintf(err, errlen, "ztnad closed the connection without an answer");
                        return -ECONNRESET;
                }
                if (errno != EAGAIN && errno != EINTR) {
                        snprintf(err, errlen, "cannot read from ztnad: %s", strerror(errno));
                        return -errno;
                }
                r = conn_wait(c, POLLIN);
                if (r == 0) {
                        snprintf(err, errlen, "ztnad did not answer in time");
                        return -ETIMEDOUT;
                }
                if (r < 0) {
                        snprintf(err, errlen, "%s", strerror(-r));
                        return r;
                }
        }

        j = json_loadb(c->buf, (size_t) (nl - c->buf), 0, &jerr);
        c->len -= (size_t) (nl - c->buf) + 1;
        memmove(c->buf, nl + 1, c->len);
        if (!j || !json_is_object(j) || !json_is_boolean(json_object_get(j, "ok"))) {
                json_decref(j);
                snprintf(err, errlen, "ztnad's answer is not a reply of this protocol");
                return -EBADMSG;
        }
        *ret = j;
        return 0;
}

int ztna_conn_call(Conn *c, const json_t *request, json_t **ret, char *err, size_t errlen) {
        int r = conn_send(c, request, err, errlen);

        return r < 0 ? r : conn_receive(c, ret, err, errlen);
}

/* One request on a connection of its own. On failure `err` says why ztnad
 * could not be asked; a refusal is a reply, not a failure. */
int ztna_daemon_call(const Args *a, const json_t *request, json_t **ret, char *err, size_t errlen) {
        Conn c = { .fd = -1 };
        int r;

        r = ztna_conn_open(a, &c, err, errlen);
        if (r >= 0)
                r = ztna_conn_call(&c, request, ret, err, errlen);
        ztna_conn_done(&c);
        return r;
}

int ztna_code_exit(const char *code) {
        if (!code)
                return EXIT_FAILED;
        if (strcmp(code, CONTROL_CODE_NOT_FOUND) == 0)
                return EXIT_NOT_FOUND;
        if (strcmp(code, CONTROL_CODE_NOT_AUTHORISED) == 0)
                return EXIT_NOT_AUTHORISED;
        if (strcmp(code, CONTROL_CODE_BUSY) == 0)
                return EXIT_UNAVAILABLE;
        return EXIT_FAILED;
}

/* A refusal: its message on stderr (and the reply itself with --json), and
 * its exit code. */
int ztna_refused(const Args *a, json_t *reply) {
        const char *error = json_string_value(json_object_get(reply, "error"));

        fprintf(stderr, "ztna: %s\n", error ? error : "ztnad refused without saying why");
        if (a->json)
                ztna_print_json(reply);
        return ztna_code_exit(json_string_value(json_object_get(reply, "code")));
}

int ztna_unreachable(const Args *a, const char *err) {
        return ztna_failed(a, EXIT_UNAVAILABLE, CLIENT_CODE_UNREACHABLE, "cannot reach ztnad at %s: %s",
                           ztna_socket_path(a), err);
}
