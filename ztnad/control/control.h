/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The control socket: the `ztna` command's way into ztnad. One JSON object
 * per line each way (docs/control-protocol.md):
 *
 *     {"command": "query", "name": "Win-A"}
 *     {"ok": true, "query": "Win-A", "peer": {"name": "Win-A", ...}}
 *     {"command": "down"}
 *     {"ok": false, "code": "not-authorised", "error": "not authorised: ..."}
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
 * Reading (status, list, query) is open to every local user; changes (push,
 * up, down, flush) need root or the admin group. Both are decided from the
 * credentials the kernel recorded when the client connected (SO_PEERCRED,
 * SO_PEERGROUPS), never from a pid, a file in /proc or the group database.
 *
 * The daemon supplies the verbs as callbacks. Each runs on the loop, is
 * given the `userdata` passed to control_new(), and returns >= 0 or a
 * negative errno. A NULL callback answers "unsupported".
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "shm.h"

#define CONTROL_DEFAULT_PATH "/run/ztna/control.sock"

/* The largest peers document a push may carry (as ztnad/sources/peers.h's
 * PEERS_INPUT_MAX). */
#define CONTROL_DOCUMENT_MAX ((size_t) 64 << 20)

/* Error codes of a refusal ("code"); the client maps them to exit codes. */
#define CONTROL_CODE_BAD_REQUEST "bad-request"         /* not JSON, not an object, a field missing or wrong */
#define CONTROL_CODE_UNKNOWN_COMMAND "unknown-command" /* a newer client, perhaps */
#define CONTROL_CODE_NOT_AUTHORISED "not-authorised"   /* a change from a client that may not */
#define CONTROL_CODE_NOT_FOUND "not-found"             /* query: no such peer */
#define CONTROL_CODE_REJECTED "rejected"               /* push: the document is invalid */
#define CONTROL_CODE_TOO_LARGE "too-large"             /* the request line is over the cap */
#define CONTROL_CODE_BUSY "busy"                       /* too many connections */
#define CONTROL_CODE_UNSUPPORTED "unsupported"         /* the daemon has no such verb */
#define CONTROL_CODE_FAILED "failed"                   /* the verb failed inside the daemon */

#define CONTROL_NOT_AUTHORISED_MESSAGE "not authorised: changes need root or the %s group"

/* `len` bytes of store text (a name, a domain) as a JSON string: store
 * names are LDH, so anything outside printable ASCII is shown as '?', never
 * trusted to be UTF-8. NULL on allocation failure. */
json_t *control_json_text(const char *s, size_t len);

/* A store record as the protocol's PEER object, the one shape ztnad's
 * list and query replies and ztna's direct store reads share: {"name",
 * "fqdn", "online", "ttl", "addresses": [IPv4 first, then IPv6]}. NULL on
 * allocation failure. */
json_t *control_peer_json(const ShmSnapshot *s, const ShmRecordView *v);

typedef struct ControlOps {
        /* Fields merged into the status reply: {"state": "up", "generation":
         * 12, "records": 3, "store": "/run/ztna/records", "sources": [...]}
         * (the protocol document lists what ztna shows). */
        int (*status)(void *userdata, json_t **ret);
        /* {"domain": "yourorg.zt.net", "peers": [PEER, ...]} where PEER is
         * {"name", "fqdn", "online", "ttl", "addresses": ["100.64.0.1"]}. */
        int (*list)(void *userdata, json_t **ret);
        /* The PEER object for `name` (a short name, an FQDN or an address);
         * -ENOENT when the tailnet has no such peer. */
        int (*query)(void *userdata, const char *name, json_t **ret);
        /* Validates the whole peers document (`len` bytes, not
         * NUL-terminated, no NUL inside) and publishes it, or returns
         * negative with a one-line reason in `err`, leaving the published
         * map alone. */
        int (*push)(void *userdata, const char *doc, size_t len, char *err, size_t errlen);
        int (*set_state)(void *userdata, bool up);
        /* Forgets cached answers. */
        int (*flush)(void *userdata);
        /* Optional: one line about a change (accepted or refused) or a
         * trouble of the socket, with its syslog priority (LOG_NOTICE...).
         * The server never logs by itself. */
        void (*log)(void *userdata, int priority, const char *message);
} ControlOps;

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
 * (gid_t) -1 for root only. `ops` is copied; `userdata` is passed to it.
 * On failure nothing is left behind and listen_fd stays the caller's. */
int control_new(sd_event *e, const char *path, int listen_fd, gid_t admin_gid, const ControlOps *ops,
                void *userdata, Control **ret);

/* Closes every connection and the listening socket, and removes the
 * socket file if control_new() made it and it is still the same one.
 * NULL-safe, returns NULL. */
Control *control_free(Control *c);

/* Applies to connections accepted afterwards (and to the buffers of those
 * already open). -EINVAL for a zero anywhere. */
int control_set_limits(Control *c, const ControlLimits *limits);

/* Connections open now. */
size_t control_connections(const Control *c);

/* What the kernel said about a client when it connected. */
typedef struct ControlPeer {
        uid_t uid;
        gid_t gid;
        pid_t pid;  /* for log lines only: never trusted for a decision */
        bool admin; /* may change things */
        const char *admin_group; /* the admin group's name, for refusals ("ztna" by default) */
} ControlPeer;

/* Root, or `admin_gid` as the primary group or among the supplementary
 * `groups`. (gid_t) -1 never matches. */
/* The admin group's name, as refusals give it (default "ztna"); copied. */
int control_set_admin_group_name(Control *c, const char *name);

bool control_peer_is_admin(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups, gid_t admin_gid);

/* Answers one request line (`len` bytes, without its '\n'; need not be
 * NUL-terminated) from `peer` by calling `ops`: the reply line, '\n'
 * included, in *ret_reply (malloc'ed) and its length in *ret_len. Every
 * refusal is a reply. Returns 0, or -ENOMEM (nothing written). The server
 * uses it for every line; tests and the fuzz target call it without a
 * socket. */
int control_dispatch(const ControlOps *ops, void *userdata, const ControlPeer *peer, const char *line, size_t len,
                     char **ret_reply, size_t *ret_len);

static inline void control_freep(Control **c) {
        control_free(*c);
}
#define _cleanup_control_ _cleanup_(control_freep)
