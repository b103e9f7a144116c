/* SPDX-License-Identifier: MIT */
/*
 * The control protocol: one request line in, one reply line out
 * (docs/control-protocol.md). A line is parsed as JSON, checked against the
 * command table (a known command, no unknown key), refused when it asks for
 * a change from a client that may not make one, and answered through the
 * daemon's callbacks (ControlOps). Every refusal is a reply; nothing a
 * client sends is echoed unsanitized.
 *
 * Pure: no socket, no event loop. The server (control-server.c) feeds it
 * the lines of every connection; tests and the fuzz target also call it
 * without a socket.
 */

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "control/control-protocol.h"
#include "macro.h"

/* What of a client's own text goes back in an error message. */
#define ECHO_MAX 64
/* A query's name or address; DNS names are at most 253 bytes. */
#define QUERY_NAME_MAX 1024
#define PUSH_ERROR_MAX 1024

__attribute__((format(printf, 4, 0)))
static void control_vlog(const ControlOps *ops, void *userdata, int priority, const char *fmt, va_list ap) {
        char line[768];

        (void) vsnprintf(line, sizeof line, fmt, ap);
        ops->log(userdata, priority, line);
}

__attribute__((format(printf, 4, 5)))
void control_log(const ControlOps *ops, void *userdata, int priority, const char *fmt, ...) {
        va_list ap;

        if (!ops->log)
                return;
        va_start(ap, fmt);
        control_vlog(ops, userdata, priority, fmt, ap);
        va_end(ap);
}

__attribute__((format(printf, 5, 6)))
int control_log_errno(const ControlOps *ops, void *userdata, int priority, int r, const char *fmt, ...) {
        int saved_errno = errno;
        va_list ap;

        assert(r < 0);
        if (!ops->log)
                return r;
        errno = -r;
        va_start(ap, fmt);
        control_vlog(ops, userdata, priority, fmt, ap);
        va_end(ap);
        errno = saved_errno;
        return r;
}

/* ---- replies ---- */

/* Text from a client, or from a parser quoting a client, made safe for a
 * message: printable ASCII only, at most `max` bytes of it. */
static void sanitize(char *dst, size_t size, const char *src, size_t len, size_t max) {
        size_t n = 0;

        if (size == 0)
                return;
        for (size_t i = 0; i < len && n + 1 < size; i++) {
                unsigned char ch = (unsigned char) src[i];

                if (i == max) {
                        for (int k = 0; k < 3 && n + 1 < size; k++)
                                dst[n++] = '.';
                        break;
                }
                dst[n++] = ch >= 0x20 && ch < 0x7f ? (char) ch : '?';
        }
        dst[n] = '\0';
}

/* json_decrefp() is jansson's own (2.11). */
#define _cleanup_json_ _cleanup_(json_decrefp)

__attribute__((format(printf, 2, 3)))
static json_t *refusal(const char *code, const char *fmt, ...) {
        char message[512], clean[512];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(message, sizeof message, fmt, ap);
        va_end(ap);
        /* The message quotes clients and parsers; json_string() would
         * refuse bytes that are not UTF-8. */
        sanitize(clean, sizeof clean, message, strlen(message), sizeof clean);
        return json_pack("{s:b, s:s, s:s}", "ok", 0, "code", code, "error", clean);
}

/* {"ok": true} followed by `fields` (may be NULL), which may not override
 * "ok" or "id". Takes `fields`. */
static json_t *success(json_t *fields) {
        _cleanup_json_ json_t *f = fields;
        json_t *reply = json_pack("{s:b}", "ok", 1);

        if (!reply)
                return NULL;
        if (f) {
                (void) json_object_del(f, "ok");
                (void) json_object_del(f, "id");
        }
        if (f && json_object_update_missing(reply, f) < 0)
                return json_decref(reply), NULL;
        return reply;
}

int control_refusal_line(const char *code, const char *message, char **ret_line, size_t *ret_len) {
        _cleanup_json_ json_t *reply = refusal(code, "%s", message);
        char *text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
        size_t n;

        if (!text)
                return -ENOMEM;
        n = strlen(text);
        /* json_dumps() ends the text with a NUL, where the '\n' goes. */
        text[n] = '\n';
        *ret_line = text;
        *ret_len = n + 1;
        return 0;
}

/* ---- dispatch ---- */

typedef struct Command Command;
typedef json_t *(*CommandFunc)(const Command *cmd, const ControlOps *ops, void *userdata, const ControlPeer *peer,
                               json_t *req);

struct Command {
        const char *name;
        bool change;       /* needs root or the admin group */
        const char *field; /* its one argument besides "command" and "id", or NULL */
        CommandFunc func;
};

static json_t *op_failed(const char *what, int r) {
        if (r == -EOPNOTSUPP)
                return refusal(CONTROL_CODE_UNSUPPORTED, "%s is not supported by this ztnad", what);
        return refusal(CONTROL_CODE_FAILED, "%s failed: %s", what, strerror(r < 0 ? -r : EIO));
}

/* An op's object, or a refusal when it failed or answered something else. */
static json_t *object_result(const char *what, int r, json_t *result) {
        if (r < 0) {
                json_decref(result);
                return op_failed(what, r);
        }
        if (!json_is_object(result)) {
                json_decref(result);
                return refusal(CONTROL_CODE_FAILED, "%s failed: ztnad answered no object", what);
        }
        return success(result);
}

/* A command that is one op answering an object. */
static json_t *object_op(const Command *cmd, int (*op)(void *userdata, json_t **ret), void *userdata) {
        json_t *result = NULL;
        int r;

        if (!op)
                return op_failed(cmd->name, -EOPNOTSUPP);
        r = op(userdata, &result);
        return object_result(cmd->name, r, result);
}

static json_t *cmd_status(const Command *cmd, const ControlOps *ops, void *userdata, const ControlPeer *peer,
                          json_t *req) {
        (void) peer;
        (void) req;
        return object_op(cmd, ops->status, userdata);
}

static json_t *cmd_list(const Command *cmd, const ControlOps *ops, void *userdata, const ControlPeer *peer,
                        json_t *req) {
        (void) peer;
        (void) req;
        return object_op(cmd, ops->list, userdata);
}

static json_t *cmd_query(const Command *cmd, const ControlOps *ops, void *userdata, const ControlPeer *peer,
                         json_t *req) {
        json_t *name = json_object_get(req, "name"), *peer_obj = NULL, *fields;
        char shown[ECHO_MAX + 4];
        size_t len;
        int r;

        (void) peer;
        if (!json_is_string(name))
                return refusal(CONTROL_CODE_BAD_REQUEST, "bad request: query needs \"name\", a string");
        len = json_string_length(name);
        /* jansson refuses "\u0000" in strings, so the name is a C string;
         * an empty or absurdly long one cannot be a peer. */
        if (len == 0 || len > QUERY_NAME_MAX)
                return refusal(CONTROL_CODE_BAD_REQUEST, "bad request: \"name\" must be 1 to %d bytes",
                               QUERY_NAME_MAX);
        if (!ops->query)
                return op_failed(cmd->name, -EOPNOTSUPP);

        r = ops->query(userdata, json_string_value(name), &peer_obj);
        if (r == -ENOENT) {
                json_decref(peer_obj);
                sanitize(shown, sizeof shown, json_string_value(name), len, ECHO_MAX);
                return refusal(CONTROL_CODE_NOT_FOUND, "%s: no such peer in the tailnet", shown);
        }
        if (r < 0 || !json_is_object(peer_obj))
                return object_result(cmd->name, r, peer_obj);
        /* "o" takes peer_obj even when packing fails. */
        fields = json_pack("{s:O, s:o}", "query", name, "peer", peer_obj);
        return fields ? success(fields) : NULL;
}

static json_t *cmd_push(const Command *cmd, const ControlOps *ops, void *userdata, const ControlPeer *peer,
                        json_t *req) {
        json_t *doc = json_object_get(req, "document");
        char err[PUSH_ERROR_MAX] = "";
        size_t len;
        int r;

        (void) peer;
        if (!json_is_string(doc))
                return refusal(CONTROL_CODE_BAD_REQUEST, "bad request: push needs \"document\", a string");
        len = json_string_length(doc);
        if (len > CONTROL_DOCUMENT_MAX)
                return refusal(CONTROL_CODE_TOO_LARGE, "the peers document is %zu bytes; the limit is %zu", len,
                               CONTROL_DOCUMENT_MAX);
        if (!ops->push)
                return op_failed(cmd->name, -EOPNOTSUPP);

        r = ops->push(userdata, json_string_value(doc), len, err, sizeof err);
        if (r < 0) {
                char clean[PUSH_ERROR_MAX];

                if (r == -ENOMEM)
                        return op_failed(cmd->name, r);
                sanitize(clean, sizeof clean, err, strnlen(err, sizeof err), sizeof clean);
                if (clean[0] == '\0')
                        snprintf(clean, sizeof clean, "%s", strerror(-r));
                return refusal(CONTROL_CODE_REJECTED, "push rejected: %s", clean);
        }
        return success(NULL);
}

static json_t *cmd_set_state(const Command *cmd, const ControlOps *ops, void *userdata, const ControlPeer *peer,
                             json_t *req) {
        int r;

        (void) peer;
        (void) req;
        if (!ops->set_state)
                return op_failed(cmd->name, -EOPNOTSUPP);
        r = ops->set_state(userdata, strcmp(cmd->name, "up") == 0);
        return r < 0 ? op_failed(cmd->name, r) : success(NULL);
}

static json_t *cmd_flush(const Command *cmd, const ControlOps *ops, void *userdata, const ControlPeer *peer,
                         json_t *req) {
        int r;

        (void) peer;
        (void) req;
        if (!ops->flush)
                return op_failed(cmd->name, -EOPNOTSUPP);
        r = ops->flush(userdata);
        return r < 0 ? op_failed(cmd->name, r) : success(NULL);
}

static const Command commands[] = {
        { "status", false, NULL, cmd_status },
        { "list", false, NULL, cmd_list },
        { "query", false, "name", cmd_query },
        { "push", true, "document", cmd_push },
        { "up", true, NULL, cmd_set_state },
        { "down", true, NULL, cmd_set_state },
        { "flush", true, NULL, cmd_flush },
};

static const Command *command_find(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        return NULL;
}

/* The request's shape, before any op runs: a known command and no key
 * besides "command", "id" and the command's own (a misspelt key is an error,
 * not silently ignored). */
static json_t *request_check(json_t *req, const Command **ret_cmd) {
        json_t *command = json_object_get(req, "command"), *value;
        const Command *cmd;
        const char *key;
        char shown[ECHO_MAX + 4];

        if (!json_is_string(command))
                return refusal(CONTROL_CODE_BAD_REQUEST, "bad request: \"command\" is missing or not a string");
        cmd = command_find(json_string_value(command));
        if (!cmd) {
                sanitize(shown, sizeof shown, json_string_value(command), json_string_length(command), ECHO_MAX);
                return refusal(CONTROL_CODE_UNKNOWN_COMMAND,
                               "unknown command \"%s\" (known: status, list, query, push, up, down, flush)", shown);
        }
        json_object_foreach(req, key, value) {
                if (strcmp(key, "command") == 0 || strcmp(key, "id") == 0 ||
                    (cmd->field && strcmp(key, cmd->field) == 0))
                        continue;
                sanitize(shown, sizeof shown, key, strlen(key), ECHO_MAX);
                return refusal(CONTROL_CODE_BAD_REQUEST, "bad request: unknown key \"%s\" for %s", shown, cmd->name);
        }
        *ret_cmd = cmd;
        return NULL;
}

/* Who, for the log: never the basis of a decision. */
static void peer_describe(const ControlPeer *peer, char *buf, size_t size) {
        (void) snprintf(buf, size, "uid %u gid %u pid %d", (unsigned) peer->uid, (unsigned) peer->gid,
                        (int) peer->pid);
}

static void change_log(const ControlOps *ops, void *userdata, const ControlPeer *peer, const Command *cmd,
                       const json_t *reply) {
        json_t *error = json_object_get(reply, "error");
        char who[96];

        peer_describe(peer, who, sizeof who);
        if (json_is_true(json_object_get(reply, "ok")))
                control_log(ops, userdata, LOG_NOTICE, "control: %s from %s done", cmd->name, who);
        else
                control_log(ops, userdata, LOG_WARNING, "control: %s from %s refused: %s", cmd->name, who,
                        json_is_string(error) ? json_string_value(error) : "?");
}

const char *control_peer_group(const ControlPeer *peer) {
        return peer->admin_group ? peer->admin_group : "ztna";
}

static json_t *request_answer(const ControlOps *ops, void *userdata, const ControlPeer *peer, const char *line,
                              size_t len) {
        _cleanup_json_ json_t *req = NULL;
        const Command *cmd = NULL;
        json_error_t jerr;
        json_t *reply, *id;

        /* A JSON text may contain no raw NUL; jansson would stop there. */
        if (memchr(line, '\0', len))
                return refusal(CONTROL_CODE_BAD_REQUEST, "bad request: a NUL byte in the request line");
        req = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!req)
                return refusal(CONTROL_CODE_BAD_REQUEST, "bad request: not JSON (byte %d: %s)", jerr.position,
                               jerr.text);
        if (!json_is_object(req))
                return refusal(CONTROL_CODE_BAD_REQUEST, "bad request: a request is a JSON object");
        reply = request_check(req, &cmd);
        if (!reply) {
                if (cmd->change && !peer->admin)
                        reply = refusal(CONTROL_CODE_NOT_AUTHORISED, CONTROL_NOT_AUTHORISED_MESSAGE,
                                        control_peer_group(peer));
                else
                        reply = cmd->func(cmd, ops, userdata, peer, req);
                if (reply && cmd->change)
                        change_log(ops, userdata, peer, cmd, reply);
        }

        /* The client's "id", whatever it is, goes back with the answer so a
         * client sending several requests can match them. */
        id = json_object_get(req, "id");
        if (reply && id && json_object_set(reply, "id", id) < 0)
                return json_decref(reply), NULL;
        return reply;
}

int control_dispatch(const ControlOps *ops, void *userdata, const ControlPeer *peer, const char *line, size_t len,
                     char **ret_reply, size_t *ret_len) {
        _cleanup_json_ json_t *reply = NULL;
        _cleanup_free_ char *text = NULL;
        char *grown;
        size_t n;

        /* "\r\n" from a terminal or a socat session. */
        if (len > 0 && line[len - 1] == '\r')
                len--;
        reply = request_answer(ops, userdata, peer, line, len);
        if (!reply)
                return -ENOMEM;
        text = json_dumps(reply, JSON_COMPACT);
        if (!text) {
                /* An op put a value in its object that cannot be written. */
                json_decref(reply);
                reply = refusal(CONTROL_CODE_FAILED, "ztnad built an answer it cannot send");
                text = reply ? json_dumps(reply, JSON_COMPACT) : NULL;
                if (!text)
                        return -ENOMEM;
        }
        /* Compact JSON has no raw newline: strings escape theirs. */
        n = strlen(text);
        grown = realloc(text, n + 2);
        if (!grown)
                return -ENOMEM;
        text = grown;
        text[n] = '\n';
        text[n + 1] = '\0';
        *ret_reply = TAKE_PTR(text);
        *ret_len = n + 1;
        return 0;
}
