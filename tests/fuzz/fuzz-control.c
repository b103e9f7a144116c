/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: arbitrary bytes as what a control socket client sends.
 *
 * The first byte chooses. Low bit clear: every '\n'-separated line goes
 * straight to control_dispatch(), as a client that may change things or
 * not (bit 1), with stub ops that succeed, fail or find nothing (bits 2-3).
 * Low bit set: the rest is written to a real connection of a real server
 * (small limits, so oversize lines happen), the client shuts its side, and
 * the loop runs until the server has answered and closed. Every reply line
 * must be one JSON object with a boolean "ok"; the server must close within
 * a bounded number of loop iterations, or it has hung.
 */

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control/control-server.h"
#include "control/control-server-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The stub ops' mood for this input. */
static unsigned mood;

static int stub_status(void *userdata, json_t **ret) {
        (void) userdata;
        if (mood == 1)
                return -EIO;
        *ret = mood == 2 ? json_integer(1) : json_pack("{s:s, s:i}", "state", "up", "generation", 7);
        return 0;
}

static int stub_list(void *userdata, json_t **ret) {
        (void) userdata;
        if (mood == 1)
                return -ENOMEM;
        *ret = json_pack("{s:s, s:[]}", "domain", "a.b", "peers");
        return 0;
}

static int stub_query(void *userdata, const char *name, json_t **ret) {
        (void) userdata;
        if (strcmp(name, "a") != 0)
                return -ENOENT;
        *ret = mood == 2 ? NULL : json_pack("{s:s, s:s, s:[s]}", "name", "a", "fqdn", "a.a.b", "addresses", "1.2.3.4");
        return mood == 1 ? -EIO : 0;
}

static int stub_push(void *userdata, const char *doc, size_t len, char *err, size_t errlen) {
        (void) userdata;
        if (mood == 0)
                return 0;
        /* The reason quotes the document, bytes and all, as a careless
         * validator might. */
        snprintf(err, errlen, "bad document: %.*s", (int) (len < 200 ? len : 200), doc);
        return mood == 3 ? -ENOMEM : -EBADMSG;
}

static int stub_set_state(void *userdata, bool up) {
        (void) userdata;
        (void) up;
        return mood == 1 ? -EIO : 0;
}

static int stub_flush(void *userdata) {
        (void) userdata;
        return mood == 1 ? -EOPNOTSUPP : 0;
}

static void stub_log(void *userdata, int priority, const char *message) {
        (void) userdata;
        (void) priority;
        if (strlen(message) == (size_t) -1)
                abort();
}

static const ControlOps stub_ops = {
        .status = stub_status,
        .list = stub_list,
        .query = stub_query,
        .push = stub_push,
        .set_state = stub_set_state,
        .flush = stub_flush,
        .log = stub_log,
};

static void check_reply(const char *reply, size_t len) {
        json_t *j;

        if (len == 0 || reply[len - 1] != '\n' || memchr(reply, '\n', len - 1))
                abort();
        j = json_loadb(reply, len, 0, NULL);
        if (!j || !json_is_object(j) || !json_is_boolean(json_object_get(j, "ok")))
                abort();
        if (json_is_false(json_object_get(j, "ok")) && !json_is_string(json_object_get(j, "code")))
                abort();
        json_decref(j);
}

static void fuzz_dispatch(const char *p, size_t size, bool admin) {
        ControlPeer peer = { .uid = admin ? 0 : 1000, .gid = 1000, .pid = 1, .admin = admin };

        while (size > 0) {
                const char *nl = memchr(p, '\n', size);
                size_t len = nl ? (size_t) (nl - p) : size;
                char *reply = NULL;
                size_t reply_len = 0;

                if (control_dispatch(&stub_ops, NULL, &peer, p, len, &reply, &reply_len) == 0) {
                        check_reply(reply, reply_len);
                        free(reply);
                }
                if (!nl)
                        break;
                size -= len + 1;
                p = nl + 1;
        }
}

/* ---- through a socket ---- */

static sd_event *event;
static Control *control;
static struct sockaddr_un address = { .sun_family = AF_UNIX };

static void server_teardown(void) {
        control = control_free(control); /* removes the socket file */
        event = sd_event_unref(event);
}

static void server_setup(void) {
        ControlLimits l = CONTROL_LIMITS_DEFAULT;

        l.request_max = 1024;
        l.request_max_other = 256;
        snprintf(address.sun_path, sizeof address.sun_path, "/tmp/fuzz-control-%d.sock", (int) getpid());
        if (sd_event_new(&event) < 0 ||
            control_new(event, address.sun_path, -1, (gid_t) -1, &l, &stub_ops, NULL, &control) < 0)
                abort();
        atexit(server_teardown);
}

static void fuzz_socket(const char *p, size_t size) {
        char buf[65536], *line = NULL;
        size_t line_len = 0;
        bool closed = false;
        size_t sent = 0;
        int fd;

        if (!control)
                server_setup();
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &address, sizeof address) < 0)
                abort();

        if (size == 0)
                (void) shutdown(fd, SHUT_WR);
        for (int i = 0; i < 100000 && !closed; i++) {
                ssize_t n;

                if (sent < size) {
                        n = send(fd, p + sent, size - sent, MSG_NOSIGNAL);
                        if (n > 0)
                                sent += (size_t) n;
                        else if (n < 0 && errno != EAGAIN)
                                sent = size; /* refused and closed on us */
                        if (sent == size)
                                (void) shutdown(fd, SHUT_WR);
                }
                if (sd_event_run(event, 0) < 0)
                        abort();
                while ((n = recv(fd, buf, sizeof buf, 0)) > 0) {
                        /* Replies may arrive in pieces; check whole lines. */
                        for (ssize_t k = 0; k < n; k++) {
                                char *grown = realloc(line, line_len + 1);

                                if (!grown)
                                        abort();
                                line = grown;
                                line[line_len++] = buf[k];
                                if (buf[k] == '\n') {
                                        check_reply(line, line_len);
                                        line_len = 0;
                                }
                        }
                }
                if (n == 0 || (n < 0 && errno != EAGAIN))
                        closed = true;
        }
        /* Every connection ends: answered and closed, or refused. */
        if (!closed || line_len != 0)
                abort();
        free(line);
        close(fd);
        /* Let the server see the close and free the connection. */
        for (int i = 0; i < 8 && control_connections(control) > 0; i++)
                (void) sd_event_run(event, 0);
        if (control_connections(control) != 0)
                abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        uint8_t flags;

        if (size == 0)
                return 0;
        flags = data[0];
        mood = (flags >> 2) & 3;
        if (flags & 1)
                fuzz_socket((const char *) data + 1, size - 1);
        else
                fuzz_dispatch((const char *) data + 1, size - 1, flags & 2);
        return 0;
}
