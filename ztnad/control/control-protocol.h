/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The control protocol: the `ztna` command's way into ztnad. One JSON
 * object per line each way (docs/control-protocol.md):
 *
 *     {"command": "query", "name": "Win-A"}
 *     {"ok": true, "query": "Win-A", "peer": {"name": "Win-A", ...}}
 *     {"command": "down"}
 *     {"ok": false, "code": "not-authorised", "error": "not authorised: ..."}
 *
 * Reading (status, list, query) is open to every local user; changes (push,
 * up, down, flush) need root or the admin group, as the server decided from
 * the client's credentials (ControlPeer.admin).
 *
 * The daemon supplies the verbs as callbacks. Each runs on the loop, is
 * given the daemon's `userdata`, and returns >= 0 or a negative errno. A
 * NULL callback answers "unsupported".
 *
 * This part is pure (no socket, no event loop): the server
 * (control-server.h) uses it for every request line, the client (ztna)
 * takes its codes and PEER object, and it never calls the server.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

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
 * trusted to be UTF-8. NULL on allocation failure. (peer-json.c) */
json_t *control_json_text(const char *s, size_t len);

/* A store record as the protocol's PEER object, the one shape ztnad's
 * list and query replies and ztna's direct store reads share: {"name",
 * "fqdn", "online", "ttl", "addresses": [IPv4 first, then IPv6]}. NULL on
 * allocation failure. (peer-json.c) */
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
         * Neither the protocol nor the server logs by itself. */
        void (*log)(void *userdata, int priority, const char *message);
} ControlOps;

/* What the kernel said about a client when it connected. */
typedef struct ControlPeer {
        uid_t uid;
        gid_t gid;
        pid_t pid;  /* for log lines only: never trusted for a decision */
        bool admin; /* may change things */
        const char *admin_group; /* the admin group's name, for refusals ("ztna" by default) */
} ControlPeer;

/* Answers one request line (`len` bytes, without its '\n'; need not be
 * NUL-terminated) from `peer` by calling `ops`: the reply line, '\n'
 * included, in *ret_reply (malloc'ed) and its length in *ret_len. Every
 * refusal is a reply. Returns 0, or -ENOMEM (nothing written). The server
 * uses it for every line; tests and the fuzz target call it without a
 * socket. */
int control_dispatch(const ControlOps *ops, void *userdata, const ControlPeer *peer, const char *line, size_t len,
                     char **ret_reply, size_t *ret_len);

/* A refusal with `code` and `message` (sanitized as every refusal is) as a
 * reply line: '\n'-terminated, `*ret_len` bytes, malloc'ed, not
 * NUL-terminated. For the refusals the server makes itself (a line over the
 * cap). Returns 0 or -ENOMEM. */
int control_refusal_line(const char *code, const char *message, char **ret_line, size_t *ret_len);

/* The admin group's name as refusals give it: peer->admin_group, or
 * "ztna". */
const char *control_peer_group(const ControlPeer *peer);

/* Formats one line and hands it to ops->log, if there is one. */
__attribute__((format(printf, 4, 5)))
void control_log(const ControlOps *ops, void *userdata, int priority, const char *fmt, ...);
/* A failure's line, as common/log.h's log_line_errno() makes one but
 * handed to ops->log: `fmt` is formatted with errno set to -r, so its `%m`
 * writes strerror(-r) where the line wants it. Returns r, which must be
 * negative (a -errno), so a failure is
 *
 *     return control_log_errno(ops, userdata, LOG_WARNING, r, "control: cannot ...: %m");
 *
 * errno is as it was on return. */
__attribute__((format(printf, 5, 6)))
int control_log_errno(const ControlOps *ops, void *userdata, int priority, int r, const char *fmt, ...);
