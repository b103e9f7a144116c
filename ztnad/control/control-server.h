/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The control socket's server: listens on an AF_UNIX stream socket, reads
 * each client's credentials, frames its bytes into request lines and has
 * the protocol (control-protocol.h) answer them.
 *
 * The server runs on the daemon's sd-event loop and never blocks it: sockets
 * are non-blocking, each connection has its own buffers, a request line is
 * capped (small for clients that may not change anything, large enough for
 * a whole peers document for those who may), an idle connection is closed,
 * and the number of connections (in all and per user) is bounded. Requests
 * on one connection are answered in order, one at a time: the next line is
 * not read until the previous reply has left, so a client that does not
 * read its replies holds one reply's worth of memory at most.
 *
 * Who may change things is decided from the credentials the kernel
 * recorded when the client connected (SO_PEERCRED, SO_PEERGROUPS), never
 * from a pid, a file in /proc or the group database.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "control/control-protocol.h"

typedef struct ControlLimits {
        size_t max_connections;   /* open at once, in all */
        size_t max_per_uid;       /* open at once by one non-root user */
        size_t max_other;         /* open at once by everyone outside root and the admin group, in
                                   * all: the rest of max_connections is kept for those two */
        size_t request_max;       /* bytes in one request line, for root and the admin group */
        size_t request_max_other; /* the same for everyone else (they can only read) */
        uint64_t idle_usec;       /* a connection with no progress either way is closed */
} ControlLimits;

/* A push document escaped as a JSON string at most doubles (every '"', '\\'
 * and control character takes two bytes; UTF-8 goes as it is), plus the
 * rest of the request. */
#define CONTROL_REQUEST_MAX (2 * CONTROL_DOCUMENT_MAX + ((size_t) 64 << 10))
#define CONTROL_REQUEST_MAX_OTHER ((size_t) 64 << 10)

#define CONTROL_LIMITS_DEFAULT                                                                              \
        ((ControlLimits) { .max_connections = 64,                                                         \
                           .max_per_uid = 16,                                                             \
                           .max_other = 48,                                                               \
                           .request_max = CONTROL_REQUEST_MAX,                                            \
                           .request_max_other = CONTROL_REQUEST_MAX_OTHER,                                \
                           .idle_usec = UINT64_C(30) * 1000000 })

typedef struct Control Control;

/* Listens on `listen_fd` when it is >= 0 (socket activation: a listening
 * AF_UNIX stream socket; the Control owns it from then on and closes it but
 * never unlinks its path), else binds `path` (NULL: CONTROL_DEFAULT_PATH;
 * its directory must exist): a stale socket there is replaced, a live one
 * (another ztnad answers) is -EADDRINUSE, anything that is not a socket is
 * -EEXIST. The socket is made mode 0666: reading is open to all.
 * `admin_gid`: the group whose members may change things besides root;
 * (gid_t) -1 for root only. `limits` (copied) NULL: CONTROL_LIMITS_DEFAULT,
 * ztnad's; a zero anywhere in them is -EINVAL. `ops` is copied; `userdata`
 * is passed to it.
 * On failure nothing is left behind and listen_fd stays the caller's. */
int control_new(sd_event *e, const char *path, int listen_fd, gid_t admin_gid, const ControlLimits *limits,
                const ControlOps *ops, void *userdata, Control **ret);

/* Closes every connection and the listening socket, and removes the
 * socket file if control_new() made it and it is still the same one.
 * NULL-safe, returns NULL. */
Control *control_free(Control *c);

/* The admin group's name, as refusals give it (default "ztna"); copied. */
int control_set_admin_group_name(Control *c, const char *name);

/* Root, or `admin_gid` as the primary group or among the supplementary
 * `groups`. (gid_t) -1 never matches. */
bool control_peer_is_admin(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups, gid_t admin_gid);

static inline void control_freep(Control **c) {
        control_free(*c);
}
#define _cleanup_control_ _cleanup_(control_freep)
