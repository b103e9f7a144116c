/* SPDX-License-Identifier: MIT */
/*
 * The control socket over a real socket: a server thread runs a Control on
 * its own sd-event loop with test ops (pushes validated by the real peers
 * parser), and the tests talk to it as clients do, as root, as an
 * unprivileged user and as a member of the admin group (forked children
 * that drop their credentials, so SO_PEERCRED/SO_PEERGROUPS see exactly
 * what they would of `setpriv --reuid`). Hostile clients (garbage, oversize
 * lines, stalls, early hang-ups, floods) must leave the server answering
 * the next client. The protocol without a socket (control_dispatch(),
 * control_log_errno()) is test-control-protocol.c's.
 */

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control/control-server.h"
#include "control/test-control-reply.h"
#include "sources/peers.h"

#define NOBODY 65534
/* A gid no account here uses: the tests' admin group. */
#define ADMIN_GID 4242
#define OTHER_GID 4343

#define GOOD_DOC                                                                                     \
        "{\"domain\": \"yourorg.zt.net\",\n"                                                         \
        " \"peers\": [{\"name\": \"Win-A\", \"addresses\": [\"100.64.0.1\", \"fd7a:115c:a1e0::1\"]},\n" \
        "           {\"name\": \"Mac-B\", \"addresses\": [\"100.64.0.2\"]}]}\n"

/* ---- test ops: what ztnad would do, with a record of what was asked ---- */

typedef struct State {
        pthread_mutex_t lock;
        bool up;
        unsigned generation, flushes, pushes, refused_logs, change_logs;
        size_t big_list; /* peers in a list answer, to make it large */
        unsigned lists;  /* list answers built */
        char *last_doc;
        size_t last_doc_len;
} State;

static json_t *peer_json(const char *name, const char *address) {
        char fqdn[128];

        snprintf(fqdn, sizeof fqdn, "%s.yourorg.zt.net", name);
        return json_pack("{s:s, s:s, s:b, s:i, s:[s]}", "name", name, "fqdn", fqdn, "online", 1, "ttl", 60,
                         "addresses", address);
}

static int op_status(void *userdata, json_t **ret) {
        State *st = userdata;

        pthread_mutex_lock(&st->lock);
        *ret = json_pack("{s:s, s:i, s:i, s:[{s:s, s:n}]}", "state", st->up ? "up" : "down", "generation",
                         (int) st->generation, "records", 2, "sources", "name", "test", "last_error");
        pthread_mutex_unlock(&st->lock);
        return *ret ? 0 : -ENOMEM;
}

static int op_list(void *userdata, json_t **ret) {
        State *st = userdata;
        json_t *peers = json_array();
        size_t n;

        pthread_mutex_lock(&st->lock);
        n = st->big_list;
        st->lists++;
        pthread_mutex_unlock(&st->lock);
        json_array_append_new(peers, peer_json("Win-A", "100.64.0.1"));
        for (size_t i = 0; i < n; i++) {
                char name[32];

                snprintf(name, sizeof name, "peer-%zu", i);
                json_array_append_new(peers, peer_json(name, "100.64.1.1"));
        }
        *ret = json_pack("{s:s, s:o}", "domain", "yourorg.zt.net", "peers", peers);
        return 0;
}

static int op_query(void *userdata, const char *name, json_t **ret) {
        (void) userdata;
        if (strcasecmp(name, "Win-A") != 0 && strcasecmp(name, "win-a.yourorg.zt.net") != 0)
                return -ENOENT;
        *ret = peer_json("Win-A", "100.64.0.1");
        return 0;
}

static int op_push(void *userdata, const char *doc, size_t len, char *err, size_t errlen) {
        State *st = userdata;
        PeersError perr;
        PeerMap *m = NULL;
        int r = peers_parse(doc, len, "push", &m, &perr);

        if (r < 0) {
                snprintf(err, errlen, "%s", perr.message);
                return r;
        }
        peer_map_free(m);
        pthread_mutex_lock(&st->lock);
        free(st->last_doc);
        st->last_doc = malloc(len + 1);
        memcpy(st->last_doc, doc, len);
        st->last_doc[len] = '\0';
        st->last_doc_len = len;
        st->pushes++;
        st->generation++;
        pthread_mutex_unlock(&st->lock);
        return 0;
}

static int op_set_state(void *userdata, bool up) {
        State *st = userdata;

        pthread_mutex_lock(&st->lock);
        st->up = up;
        pthread_mutex_unlock(&st->lock);
        return 0;
}

static int op_flush(void *userdata) {
        State *st = userdata;

        pthread_mutex_lock(&st->lock);
        st->flushes++;
        pthread_mutex_unlock(&st->lock);
        return 0;
}

static void op_log(void *userdata, int priority, const char *message) {
        State *st = userdata;

        (void) priority;
        pthread_mutex_lock(&st->lock);
        if (strstr(message, "refused"))
                st->refused_logs++;
        else
                st->change_logs++;
        pthread_mutex_unlock(&st->lock);
}

static const ControlOps test_ops = {
        .status = op_status,
        .list = op_list,
        .query = op_query,
        .push = op_push,
        .set_state = op_set_state,
        .flush = op_flush,
        .log = op_log,
};

/* ---- the server thread ---- */

typedef struct Server {
        pthread_t thread;
        char dir[64], path[128];
        int stop[2], ready[2];
        gid_t admin_gid;
        ControlLimits limits;
        int listen_fd;
        State state;
} Server;

static Server srv;

static int on_stop(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        (void) fd;
        (void) revents;
        (void) userdata;
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static void *server_main(void *arg) {
        Server *s = arg;
        sd_event *e = NULL;
        Control *c = NULL;
        int r;

        r = sd_event_new(&e);
        if (r >= 0)
                r = control_new(e, s->path, s->listen_fd, s->admin_gid, &s->limits, &test_ops, &s->state, &c);
        if (r >= 0)
                r = sd_event_add_io(e, NULL, s->stop[0], EPOLLIN, on_stop, NULL);
        (void) !write(s->ready[1], &r, sizeof r);
        if (r >= 0)
                (void) sd_event_loop(e);
        control_free(c);
        sd_event_unref(e);
        return NULL;
}

static void server_start_with(const ControlLimits *limits, gid_t admin_gid, int listen_fd) {
        int r = -1;

        /* A reader of the socket file, after a setuid, needs the way in. */
        snprintf(srv.dir, sizeof srv.dir, "/tmp/test-control-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(srv.dir));
        ck_assert_int_eq(chmod(srv.dir, 0755), 0);
        snprintf(srv.path, sizeof srv.path, "%s/control.sock", srv.dir);
        srv.admin_gid = admin_gid;
        srv.limits = limits ? *limits : CONTROL_LIMITS_DEFAULT;
        srv.listen_fd = listen_fd;
        pthread_mutex_init(&srv.state.lock, NULL);
        srv.state.up = true;
        srv.state.generation = 1;
        ck_assert_int_eq(pipe2(srv.stop, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(srv.ready, O_CLOEXEC), 0);
        ck_assert_int_eq(pthread_create(&srv.thread, NULL, server_main, &srv), 0);
        ck_assert_int_eq(read(srv.ready[0], &r, sizeof r), (ssize_t) sizeof r);
        ck_assert_msg(r >= 0, "the server did not start: %s", strerror(-r));
}

static void server_start(const ControlLimits *limits) {
        server_start_with(limits, ADMIN_GID, -1);
}

static void server_stop(void) {
        char b = 0;

        ck_assert_int_eq(write(srv.stop[1], &b, 1), 1);
        pthread_join(srv.thread, NULL);
        close(srv.stop[0]);
        close(srv.stop[1]);
        close(srv.ready[0]);
        close(srv.ready[1]);
        (void) unlink(srv.path);
        (void) rmdir(srv.dir);
        free(srv.state.last_doc);
        memset(&srv, 0, sizeof srv);
}

/* ---- clients ---- */

static int client_connect_to(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        struct timeval tv = { .tv_sec = 10 };
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

        if (fd < 0)
                return -1;
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        (void) setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        (void) setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                close(fd);
                return -1;
        }
        return fd;
}

static int client_connect(void) {
        int fd = client_connect_to(srv.path);

        ck_assert_int_ge(fd, 0);
        return fd;
}

static bool send_all(int fd, const char *data, size_t len) {
        while (len > 0) {
                ssize_t n = send(fd, data, len, MSG_NOSIGNAL);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return false;
                data += n;
                len -= (size_t) n;
        }
        return true;
}

/* One reply line without its '\n'; NULL at EOF (the server closed) or on a
 * timeout. */
static char *read_line(int fd) {
        size_t len = 0, size = 4096;
        char *buf = malloc(size);

        for (;;) {
                ssize_t n;

                if (len + 1 >= size)
                        buf = realloc(buf, size *= 2);
                n = recv(fd, buf + len, 1, 0);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0) {
                        free(buf);
                        return NULL;
                }
                if (buf[len] == '\n') {
                        buf[len] = '\0';
                        return buf;
                }
                len++;
        }
}

/* Sends `request` ('\n' added) and parses the reply. */
static json_t *ask_on(int fd, const char *request) {
        json_error_t jerr;
        char *line;
        json_t *reply;

        ck_assert(send_all(fd, request, strlen(request)));
        ck_assert(send_all(fd, "\n", 1));
        line = read_line(fd);
        ck_assert_msg(line != NULL, "no reply to %s", request);
        reply = json_loads(line, 0, &jerr);
        ck_assert_msg(reply != NULL, "reply is not JSON: %s", line);
        ck_assert(json_is_object(reply));
        free(line);
        return reply;
}

static json_t *ask(const char *request) {
        int fd = client_connect();
        json_t *reply = ask_on(fd, request);

        close(fd);
        return reply;
}

static json_t *push_request(const char *doc) {
        return json_pack("{s:s, s:s}", "command", "push", "document", doc);
}

static char *push_line(const char *doc) {
        json_t *req = push_request(doc);
        char *line = json_dumps(req, JSON_COMPACT);

        json_decref(req);
        return line;
}

/* Runs `request` in a child with the given credentials and returns the
 * reply (NULL if the child got none). `groups` NULL: none at all. */
static json_t *ask_as(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups, const char *request) {
        int out[2];
        pid_t pid;
        char buf[65536];
        size_t len = 0;
        int status;
        json_t *reply;

        ck_assert_int_eq(pipe2(out, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                char *line;
                int fd;

                if (setgroups(n_groups, groups) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
                        _exit(10);
                if (geteuid() != uid)
                        _exit(11);
                size_t rlen = strlen(request);
                char *req = malloc(rlen + 1);

                fd = client_connect_to(srv.path);
                if (fd < 0 || !req)
                        _exit(12);
                memcpy(req, request, rlen);
                req[rlen] = '\n';
                /* A server that refuses early may close before it has it all:
                 * its refusal is still there to read. */
                (void) send_all(fd, req, rlen + 1);
                line = read_line(fd);
                if (!line)
                        _exit(14);
                (void) !write(out[1], line, strlen(line));
                _exit(0);
        }
        close(out[1]);
        for (;;) {
                ssize_t n = read(out[0], buf + len, sizeof buf - 1 - len);

                if (n <= 0)
                        break;
                len += (size_t) n;
        }
        close(out[0]);
        buf[len] = '\0';
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "client child failed: status %d", status);
        reply = json_loads(buf, 0, NULL);
        ck_assert_msg(reply != NULL, "child's reply is not JSON: %s", buf);
        return reply;
}

static json_t *ask_as_nobody(const char *request) {
        return ask_as(NOBODY, NOBODY, NULL, 0, request);
}

static unsigned state_get(unsigned *field) {
        unsigned v;

        pthread_mutex_lock(&srv.state.lock);
        v = *field;
        pthread_mutex_unlock(&srv.state.lock);
        return v;
}

/* The server still answers: what every hostile-client test ends with. */
static void assert_alive(void) {
        json_t *reply = ask("{\"command\": \"status\"}");

        assert_ok(reply);
        json_decref(reply);
}

/* ---- round trips ---- */

START_TEST(test_status) {
        json_t *reply;

        server_start(NULL);
        reply = ask("{\"command\": \"status\"}");
        assert_ok(reply);
        ck_assert_str_eq(json_string_value(json_object_get(reply, "state")), "up");
        ck_assert_int_eq(json_integer_value(json_object_get(reply, "generation")), 1);
        ck_assert(json_is_array(json_object_get(reply, "sources")));
        ck_assert_ptr_null(json_object_get(reply, "id"));
        json_decref(reply);
        server_stop();
}
END_TEST

START_TEST(test_list) {
        json_t *reply, *peers;

        server_start(NULL);
        reply = ask("{\"command\": \"list\"}");
        assert_ok(reply);
        ck_assert_str_eq(json_string_value(json_object_get(reply, "domain")), "yourorg.zt.net");
        peers = json_object_get(reply, "peers");
        ck_assert_int_eq(json_array_size(peers), 1);
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(peers, 0), "fqdn")),
                         "Win-A.yourorg.zt.net");
        json_decref(reply);
        server_stop();
}
END_TEST

START_TEST(test_query) {
        json_t *reply, *peer;

        server_start(NULL);
        reply = ask("{\"command\": \"query\", \"name\": \"win-a.yourorg.zt.net\"}");
        assert_ok(reply);
        ck_assert_str_eq(json_string_value(json_object_get(reply, "query")), "win-a.yourorg.zt.net");
        peer = json_object_get(reply, "peer");
        ck_assert_str_eq(json_string_value(json_object_get(peer, "fqdn")), "Win-A.yourorg.zt.net");
        ck_assert_str_eq(json_string_value(json_array_get(json_object_get(peer, "addresses"), 0)), "100.64.0.1");
        json_decref(reply);

        reply = ask("{\"command\": \"query\", \"name\": \"nosuch\"}");
        assert_refused(reply, CONTROL_CODE_NOT_FOUND, "nosuch: no such peer");
        json_decref(reply);

        reply = ask("{\"command\": \"query\"}");
        assert_refused(reply, CONTROL_CODE_BAD_REQUEST, "\"name\"");
        json_decref(reply);
        reply = ask("{\"command\": \"query\", \"name\": 7}");
        assert_refused(reply, CONTROL_CODE_BAD_REQUEST, "\"name\"");
        json_decref(reply);
        reply = ask("{\"command\": \"query\", \"name\": \"\"}");
        assert_refused(reply, CONTROL_CODE_BAD_REQUEST, "1 to 1024 bytes");
        json_decref(reply);
        server_stop();
}
END_TEST

START_TEST(test_push_from_root) {
        char *line;
        json_t *reply;

        server_start(NULL);
        line = push_line(GOOD_DOC);
        reply = ask(line);
        assert_ok(reply);
        json_decref(reply);
        free(line);
        /* The daemon got the file's bytes, newlines and all. */
        ck_assert_int_eq(state_get(&srv.state.pushes), 1);
        ck_assert_str_eq(srv.state.last_doc, GOOD_DOC);
        ck_assert_int_eq(state_get(&srv.state.generation), 2);
        ck_assert_int_eq(state_get(&srv.state.change_logs), 1);

        /* An invalid document is rejected with the parser's reason, and the
         * last good one stays. */
        line = push_line("{\"domain\": \"yourorg.zt.net\",\n \"peers\": [{\"name\": \"Win-A\", \"addresses\": "
                         "[\"100.64.0.300\"]}]}");
        reply = ask(line);
        assert_refused(reply, CONTROL_CODE_REJECTED, "peers[0].addresses[0]");
        json_decref(reply);
        free(line);
        line = push_line("{\"domain\": \"yourorg.zt.net\",\n \"peers\": [");
        reply = ask(line);
        assert_refused(reply, CONTROL_CODE_REJECTED, "push:2:");
        json_decref(reply);
        free(line);
        ck_assert_int_eq(state_get(&srv.state.pushes), 1);
        ck_assert_int_eq(state_get(&srv.state.refused_logs), 2);

        reply = ask("{\"command\": \"push\"}");
        assert_refused(reply, CONTROL_CODE_BAD_REQUEST, "\"document\"");
        json_decref(reply);
        reply = ask("{\"command\": \"push\", \"document\": {\"domain\": \"a.b\"}}");
        assert_refused(reply, CONTROL_CODE_BAD_REQUEST, "\"document\", a string");
        json_decref(reply);
        server_stop();
}
END_TEST

START_TEST(test_up_down_flush) {
        json_t *reply;

        server_start(NULL);
        reply = ask("{\"command\": \"down\"}");
        assert_ok(reply);
        json_decref(reply);
        ck_assert(!srv.state.up);
        reply = ask("{\"command\": \"status\"}");
        ck_assert_str_eq(json_string_value(json_object_get(reply, "state")), "down");
        json_decref(reply);
        reply = ask("{\"command\": \"up\"}");
        assert_ok(reply);
        json_decref(reply);
        ck_assert(srv.state.up);
        reply = ask("{\"command\": \"flush\"}");
        assert_ok(reply);
        json_decref(reply);
        ck_assert_int_eq(state_get(&srv.state.flushes), 1);
        server_stop();
}
END_TEST

/* ---- who may change things ---- */

START_TEST(test_unprivileged_refused) {
        char *line = push_line(GOOD_DOC);
        json_t *reply;

        server_start(NULL);
        reply = ask_as_nobody(line);
        assert_refused(reply, CONTROL_CODE_NOT_AUTHORISED, "not authorised: changes need root or the ztna group");
        json_decref(reply);
        free(line);
        for (size_t i = 0; i < 3; i++) {
                static const char *const changes[] = { "{\"command\": \"down\"}", "{\"command\": \"up\"}",
                                                       "{\"command\": \"flush\"}" };

                reply = ask_as_nobody(changes[i]);
                assert_refused(reply, CONTROL_CODE_NOT_AUTHORISED, "not authorised");
                json_decref(reply);
        }
        ck_assert_int_eq(state_get(&srv.state.pushes), 0);
        ck_assert_int_eq(state_get(&srv.state.flushes), 0);
        ck_assert(srv.state.up);
        ck_assert_int_eq(state_get(&srv.state.refused_logs), 4);

        /* Reading is open to everyone. */
        reply = ask_as_nobody("{\"command\": \"status\"}");
        assert_ok(reply);
        json_decref(reply);
        reply = ask_as_nobody("{\"command\": \"query\", \"name\": \"Win-A\"}");
        assert_ok(reply);
        json_decref(reply);
        /* Another group is not the admin group. */
        reply = ask_as(NOBODY, OTHER_GID, (const gid_t[]) { OTHER_GID }, 1, "{\"command\": \"down\"}");
        assert_refused(reply, CONTROL_CODE_NOT_AUTHORISED, "not authorised");
        json_decref(reply);
        server_stop();
}
END_TEST

START_TEST(test_admin_group) {
        char *line = push_line(GOOD_DOC);
        json_t *reply;

        server_start(NULL);
        /* A supplementary group, as `setpriv --groups` or a login gives. */
        reply = ask_as(NOBODY, NOBODY, (const gid_t[]) { OTHER_GID, ADMIN_GID }, 2, line);
        assert_ok(reply);
        json_decref(reply);
        ck_assert_int_eq(state_get(&srv.state.pushes), 1);
        /* The primary group. */
        reply = ask_as(NOBODY, ADMIN_GID, NULL, 0, "{\"command\": \"down\"}");
        assert_ok(reply);
        json_decref(reply);
        ck_assert(!srv.state.up);
        free(line);
        server_stop();
}
END_TEST

START_TEST(test_root_only) {
        json_t *reply;

        /* No admin group configured: its former members are refused. */
        server_start_with(NULL, (gid_t) -1, -1);
        reply = ask_as(NOBODY, ADMIN_GID, (const gid_t[]) { ADMIN_GID }, 1, "{\"command\": \"flush\"}");
        assert_refused(reply, CONTROL_CODE_NOT_AUTHORISED, "not authorised");
        json_decref(reply);
        reply = ask("{\"command\": \"flush\"}");
        assert_ok(reply);
        json_decref(reply);
        server_stop();
}
END_TEST

START_TEST(test_is_admin) {
        const gid_t groups[] = { 1, 2, ADMIN_GID };

        ck_assert(control_peer_is_admin(0, 0, NULL, 0, ADMIN_GID));
        ck_assert(control_peer_is_admin(0, 0, NULL, 0, (gid_t) -1));
        ck_assert(control_peer_is_admin(1000, ADMIN_GID, NULL, 0, ADMIN_GID));
        ck_assert(control_peer_is_admin(1000, 1000, groups, 3, ADMIN_GID));
        ck_assert(!control_peer_is_admin(1000, 1000, groups, 2, ADMIN_GID));
        ck_assert(!control_peer_is_admin(1000, 1000, groups, 3, (gid_t) -1));
        ck_assert(!control_peer_is_admin(1000, (gid_t) -1, NULL, 0, (gid_t) -1));
}
END_TEST

/* ---- the protocol's edges ---- */

START_TEST(test_bad_requests_keep_the_connection) {
        static const struct {
                const char *line, *code, *needle;
        } cases[] = {
                { "{\"command\": ", CONTROL_CODE_BAD_REQUEST, "not JSON" },
                { "not json at all \xff\xfe", CONTROL_CODE_BAD_REQUEST, "not JSON" },
                { "[\"status\"]", CONTROL_CODE_BAD_REQUEST, "a JSON object" },
                { "\"status\"", CONTROL_CODE_BAD_REQUEST, "not JSON" },
                { "{}", CONTROL_CODE_BAD_REQUEST, "\"command\" is missing" },
                { "{\"command\": 1}", CONTROL_CODE_BAD_REQUEST, "\"command\" is missing or not a string" },
                { "{\"command\": \"reboot\"}", CONTROL_CODE_UNKNOWN_COMMAND, "unknown command \"reboot\"" },
                { "{\"command\": \"status\", \"verbose\": true}", CONTROL_CODE_BAD_REQUEST,
                  "unknown key \"verbose\" for status" },
                { "{\"command\": \"status\", \"command\": \"list\"}", CONTROL_CODE_BAD_REQUEST, "duplicate" },
                { "{\"command\": \"st\\u0000atus\"}", CONTROL_CODE_BAD_REQUEST, "not JSON" },
                { "{\"command\": \"status\"} {\"command\": \"list\"}", CONTROL_CODE_BAD_REQUEST, "not JSON" },
        };
        int fd;

        server_start(NULL);
        fd = client_connect();
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
                json_t *reply = ask_on(fd, cases[i].line);

                assert_refused(reply, cases[i].code, cases[i].needle);
                json_decref(reply);
        }
        /* The same connection still serves. */
        {
                json_t *reply = ask_on(fd, "{\"command\": \"status\", \"id\": 42}");

                assert_ok(reply);
                ck_assert_int_eq(json_integer_value(json_object_get(reply, "id")), 42);
                json_decref(reply);
        }
        close(fd);
        server_stop();
}
END_TEST

START_TEST(test_nul_in_line) {
        static const char line[] = "{\"command\": \"status\"}\0 trailing\n";
        char *reply_line;
        json_t *reply;
        int fd;

        server_start(NULL);
        fd = client_connect();
        ck_assert(send_all(fd, line, sizeof line - 1));
        reply_line = read_line(fd);
        ck_assert_ptr_nonnull(reply_line);
        reply = json_loads(reply_line, 0, NULL);
        assert_refused(reply, CONTROL_CODE_BAD_REQUEST, "NUL");
        json_decref(reply);
        free(reply_line);
        close(fd);
        server_stop();
}
END_TEST

START_TEST(test_pipelined_in_order) {
        static const char lines[] = "{\"command\": \"status\", \"id\": \"a\"}\r\n"
                                    "\n"
                                    "{\"command\": \"query\", \"name\": \"Win-A\", \"id\": [1, 2]}\n"
                                    "{\"command\": \"query\", \"name\": \"nosuch\", \"id\": null}\n";
        json_t *reply;
        char *line;
        int fd;

        server_start(NULL);
        fd = client_connect();
        ck_assert(send_all(fd, lines, sizeof lines - 1));
        line = read_line(fd);
        reply = json_loads(line, 0, NULL);
        assert_ok(reply);
        ck_assert_str_eq(json_string_value(json_object_get(reply, "id")), "a");
        json_decref(reply);
        free(line);
        /* A blank line is a request too, and a bad one. */
        line = read_line(fd);
        reply = json_loads(line, 0, NULL);
        assert_refused(reply, CONTROL_CODE_BAD_REQUEST, "not JSON");
        json_decref(reply);
        free(line);
        line = read_line(fd);
        reply = json_loads(line, 0, NULL);
        assert_ok(reply);
        ck_assert_int_eq(json_array_size(json_object_get(reply, "id")), 2);
        json_decref(reply);
        free(line);
        line = read_line(fd);
        reply = json_loads(line, 0, NULL);
        assert_refused(reply, CONTROL_CODE_NOT_FOUND, "nosuch");
        ck_assert(json_is_null(json_object_get(reply, "id")));
        json_decref(reply);
        free(line);
        close(fd);
        server_stop();
}
END_TEST

START_TEST(test_last_line_at_eof) {
        json_t *reply;
        char *line;
        int fd;

        server_start(NULL);
        fd = client_connect();
        ck_assert(send_all(fd, "{\"command\": \"status\"}", 21));
        ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
        line = read_line(fd);
        ck_assert_ptr_nonnull(line);
        reply = json_loads(line, 0, NULL);
        assert_ok(reply);
        json_decref(reply);
        free(line);
        /* Then the server closes. */
        ck_assert_ptr_null(read_line(fd));
        close(fd);
        server_stop();
}
END_TEST

START_TEST(test_oversize_request) {
        ControlLimits l = CONTROL_LIMITS_DEFAULT;
        size_t big = 200000;
        char *junk = malloc(big);
        json_t *reply;
        char *line;
        int fd;

        l.request_max = 100000;
        l.request_max_other = 1000;
        server_start(&l);
        memset(junk, 'x', big);

        fd = client_connect();
        ck_assert(send_all(fd, junk, l.request_max + 1));
        line = read_line(fd);
        ck_assert_ptr_nonnull(line);
        reply = json_loads(line, 0, NULL);
        assert_refused(reply, CONTROL_CODE_TOO_LARGE, "over 100000 bytes");
        json_decref(reply);
        free(line);
        /* The connection is over: the server cannot find the line's end. */
        ck_assert_ptr_null(read_line(fd));
        close(fd);

        /* Exactly at the cap is fine (and here, bad JSON). */
        fd = client_connect();
        junk[l.request_max] = '\n';
        ck_assert(send_all(fd, junk, l.request_max + 1));
        line = read_line(fd);
        reply = json_loads(line, 0, NULL);
        assert_refused(reply, CONTROL_CODE_BAD_REQUEST, "not JSON");
        json_decref(reply);
        free(line);
        close(fd);

        /* A large request from someone who may only read is the push they
         * may not make: refused as such, and early. */
        junk[2000] = '\0';
        {
                static const char head[] = "{\"command\": \"push\", \"document\": \"";

                memcpy(junk, head, sizeof head - 1);
        }
        reply = ask_as_nobody(junk);
        assert_refused(reply, CONTROL_CODE_NOT_AUTHORISED, "not authorised: changes need root or the ztna group");
        json_decref(reply);
        assert_alive();
        free(junk);
        server_stop();
}
END_TEST

START_TEST(test_push_document_cap) {
        /* A document one past CONTROL_DOCUMENT_MAX is refused before the
         * daemon sees it; the request itself is within the request cap. */
        size_t n = CONTROL_DOCUMENT_MAX + 1;
        char *doc = malloc(n + 1);
        char *line;
        json_t *reply;

        memset(doc, ' ', n);
        doc[n] = '\0';
        server_start(NULL);
        line = push_line(doc);
        free(doc);
        ck_assert_ptr_nonnull(line);
        reply = ask(line);
        assert_refused(reply, CONTROL_CODE_TOO_LARGE, "the limit is 67108864");
        json_decref(reply);
        free(line);
        ck_assert_int_eq(state_get(&srv.state.pushes), 0);
        assert_alive();
        server_stop();
}
END_TEST

START_TEST(test_stalled_half_line) {
        ControlLimits l = CONTROL_LIMITS_DEFAULT;
        struct timespec t0, t1;
        char b;
        int fd;

        l.idle_usec = 300000;
        server_start(&l);
        /* Timed from before the connect: the server's clock for this
         * connection starts no earlier, however the two are scheduled. */
        clock_gettime(CLOCK_MONOTONIC, &t0);
        fd = client_connect();
        ck_assert(send_all(fd, "{\"command\": \"sta", 16));
        /* Meanwhile others are served. */
        assert_alive();
        /* The stalled one is closed once idle. */
        ck_assert_int_eq(recv(fd, &b, 1, 0), 0);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        ck_assert_int_ge((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000, 299);
        close(fd);

        /* So is one that connects and says nothing. */
        fd = client_connect();
        ck_assert_int_eq(recv(fd, &b, 1, 0), 0);
        close(fd);
        assert_alive();
        server_stop();
}
END_TEST

START_TEST(test_hang_up_mid_reply) {
        int fd;

        server_start(NULL);
        /* A list answer of a few MiB: far more than a socket buffer. */
        srv.state.big_list = 40000;
        for (int i = 0; i < 5; i++) {
                char buf[1000];

                fd = client_connect();
                ck_assert(send_all(fd, "{\"command\": \"list\"}\n", 20));
                if (i % 2)
                        ck_assert_int_gt(recv(fd, buf, sizeof buf, MSG_WAITALL), 0);
                close(fd);
        }
        /* And one that asks for many without reading any. */
        fd = client_connect();
        for (int i = 0; i < 50; i++)
                if (!send_all(fd, "{\"command\": \"list\"}\n", 20))
                        break;
        close(fd);
        srv.state.big_list = 0;
        assert_alive();
        server_stop();
}
END_TEST

/* A request whose client has already closed the connection is not
 * served: nobody would read the answer, and building a large one 100
 * times a second stalled the loop for everyone. A client that only shut
 * down its writing side is still answered (test_last_line_at_eof). */
START_TEST(test_closed_before_served) {
        unsigned before, after;
        json_t *reply;
        int fd;

        server_start(NULL);
        srv.state.big_list = 40000;
        pthread_mutex_lock(&srv.state.lock);
        before = srv.state.lists;
        pthread_mutex_unlock(&srv.state.lock);
        for (int i = 0; i < 100; i++) {
                fd = client_connect();
                ck_assert(send_all(fd, "{\"command\": \"list\"}\n", 20));
                close(fd);
        }
        /* Served in order: once this answer is back, the others were
         * either built or dropped. */
        srv.state.big_list = 0;
        reply = ask("{\"command\": \"status\"}");
        assert_ok(reply);
        json_decref(reply);
        pthread_mutex_lock(&srv.state.lock);
        after = srv.state.lists;
        pthread_mutex_unlock(&srv.state.lock);
        /* The server may have read a request before its client closed; not
         * most of them. */
        ck_assert_msg(after - before <= 10, "%u of 100 abandoned list requests were answered", after - before);
        server_stop();
}
END_TEST

START_TEST(test_large_reply_arrives_whole) {
        json_t *reply;

        server_start(NULL);
        srv.state.big_list = 40000;
        reply = ask("{\"command\": \"list\"}");
        assert_ok(reply);
        ck_assert_int_eq(json_array_size(json_object_get(reply, "peers")), 40001);
        json_decref(reply);
        server_stop();
}
END_TEST

START_TEST(test_connection_limit) {
        ControlLimits l = CONTROL_LIMITS_DEFAULT;
        int fds[8], extra;
        json_t *reply;

        l.max_connections = 8;
        server_start(&l);
        for (size_t i = 0; i < 8; i++) {
                fds[i] = client_connect();
                /* Each is accepted and served before the next. */
                reply = ask_on(fds[i], "{\"command\": \"status\"}");
                assert_ok(reply);
                json_decref(reply);
        }
        extra = client_connect();
        {
                char *line = read_line(extra);

                ck_assert_ptr_nonnull(line);
                reply = json_loads(line, 0, NULL);
                assert_refused(reply, CONTROL_CODE_BUSY, "too many connections");
                json_decref(reply);
                free(line);
        }
        close(extra);
        /* The ones already in are still served. */
        reply = ask_on(fds[3], "{\"command\": \"status\"}");
        assert_ok(reply);
        json_decref(reply);
        for (size_t i = 0; i < 8; i++)
                close(fds[i]);
        /* Their slots come back. */
        for (int tries = 0;; tries++) {
                int fd = client_connect();
                char *line;

                ck_assert(send_all(fd, "{\"command\": \"status\"}\n", 22));
                line = read_line(fd);
                reply = json_loads(line, 0, NULL);
                free(line);
                close(fd);
                if (json_is_true(json_object_get(reply, "ok"))) {
                        json_decref(reply);
                        break;
                }
                json_decref(reply);
                ck_assert_int_lt(tries, 500); /* 5 s, for a loaded machine */
                usleep(10000);
        }
        server_stop();
}
END_TEST

START_TEST(test_per_user_limit) {
        ControlLimits l = CONTROL_LIMITS_DEFAULT;
        pid_t pid;
        int status;

        l.max_per_uid = 3;
        server_start(&l);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int fds[3], extra;
                char *line;

                if (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
                    setresuid(NOBODY, NOBODY, NOBODY) < 0)
                        _exit(10);
                for (int i = 0; i < 3; i++) {
                        fds[i] = client_connect_to(srv.path);
                        if (fds[i] < 0 || !send_all(fds[i], "{\"command\": \"status\"}\n", 22))
                                _exit(11);
                        line = read_line(fds[i]);
                        if (!line || !strstr(line, "\"ok\":true"))
                                _exit(12);
                        free(line);
                }
                extra = client_connect_to(srv.path);
                line = extra >= 0 ? read_line(extra) : NULL;
                if (!line || !strstr(line, "\"code\":\"busy\""))
                        _exit(13);
                _exit(0);
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "nobody's client: status %d", status);
        /* Root is not held to it, and others were not affected. */
        assert_alive();
        server_stop();
}
END_TEST

/* Unprivileged users filling every slot they may have leave root (and the
 * admin group) theirs: max_other of max_connections. */
START_TEST(test_admin_slots) {
        ControlLimits l = CONTROL_LIMITS_DEFAULT;
        int ready[2], done[2], status;
        char byte;
        pid_t pid;
        json_t *reply;

        l.max_connections = 8;
        l.max_other = 4;
        server_start(&l);
        ck_assert_int_eq(pipe(ready), 0);
        ck_assert_int_eq(pipe(done), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                int fds[4], extra;
                char *line;

                close(ready[0]);
                close(done[1]);
                if (setgroups(0, NULL) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
                    setresuid(NOBODY, NOBODY, NOBODY) < 0)
                        _exit(10);
                for (int i = 0; i < 4; i++) {
                        fds[i] = client_connect_to(srv.path);
                        if (fds[i] < 0 || !send_all(fds[i], "{\"command\": \"status\"}\n", 22))
                                _exit(11);
                        line = read_line(fds[i]);
                        if (!line || !strstr(line, "\"ok\":true"))
                                _exit(12);
                        free(line);
                }
                /* A fifth from outside the admin group: busy, though 4 of
                 * the 8 slots are free. */
                extra = client_connect_to(srv.path);
                line = extra >= 0 ? read_line(extra) : NULL;
                if (!line || !strstr(line, "\"code\":\"busy\""))
                        _exit(13);
                /* Hold the four open while root asks. */
                if (write(ready[1], "r", 1) != 1 || read(done[0], &byte, 1) != 1)
                        _exit(14);
                _exit(0);
        }
        close(ready[1]);
        close(done[0]);
        ck_assert_int_eq(read(ready[0], &byte, 1), 1);
        /* Root gets a kept slot, and a change goes through. */
        for (int i = 0; i < 4; i++) {
                int fd = client_connect();
                reply = ask_on(fd, "{\"command\": \"status\"}");
                assert_ok(reply);
                json_decref(reply);
                if (i < 3)
                        continue; /* keep three open: the fourth is the last kept slot */
                close(fd);
        }
        ck_assert_int_eq(write(done[1], "d", 1), 1);
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "nobody's client: status %d", status);
        close(ready[0]);
        close(done[1]);
        server_stop();
}
END_TEST

START_TEST(test_many_clients) {
        enum { N = 200 };
        int fds[N];
        size_t opened = 0;

        server_start(NULL);
        /* More than the limit at once, some saying nothing, some half a
         * line, some garbage; then all gone at once. */
        for (size_t i = 0; i < N; i++) {
                fds[i] = client_connect_to(srv.path);
                if (fds[i] < 0)
                        continue;
                opened++;
                if (i % 3 == 1)
                        (void) send(fds[i], "{\"command\":", 11, MSG_NOSIGNAL);
                else if (i % 3 == 2)
                        (void) send(fds[i], "\x01\x02\xff\n", 4, MSG_NOSIGNAL);
        }
        ck_assert_int_gt(opened, 64);
        for (size_t i = 0; i < N; i++)
                if (fds[i] >= 0)
                        close(fds[i]);
        for (int tries = 0;; tries++) {
                json_t *reply = ask("{\"command\": \"status\"}");
                bool ok = json_is_true(json_object_get(reply, "ok"));

                json_decref(reply);
                if (ok)
                        break;
                ck_assert_int_lt(tries, 500); /* 5 s, for a loaded machine */
                usleep(10000);
        }
        server_stop();
}
END_TEST

/* ---- the socket file ---- */

START_TEST(test_socket_file) {
        struct stat st;
        sd_event *e = NULL;
        Control *c = NULL, *c2 = NULL;
        char dir[] = "/tmp/test-control-XXXXXX", path[64];
        int fd;

        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(path, sizeof path, "%s/control.sock", dir);
        ck_assert_int_eq(sd_event_new(&e), 0);

        /* Open to all: the credentials decide, not the file mode. */
        ck_assert_int_eq(control_new(e, path, -1, ADMIN_GID, NULL, &test_ops, NULL, &c), 0);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        ck_assert_int_eq(st.st_mode & 07777, 0666);
        /* A live socket is not taken over. */
        ck_assert_int_eq(control_new(e, path, -1, ADMIN_GID, NULL, &test_ops, NULL, &c2), -EADDRINUSE);
        ck_assert_ptr_null(c2);
        /* Removed on the way out. */
        c = control_free(c);
        ck_assert_int_eq(stat(path, &st), -1);

        /* A stale one (nobody listening) is replaced. */
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        {
                struct sockaddr_un sa = { .sun_family = AF_UNIX };

                snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
                ck_assert_int_eq(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        }
        close(fd);
        ck_assert_int_eq(control_new(e, path, -1, ADMIN_GID, NULL, &test_ops, NULL, &c), 0);
        c = control_free(c);

        /* Anything else at the path is left alone. */
        fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        close(fd);
        ck_assert_int_eq(control_new(e, path, -1, ADMIN_GID, NULL, &test_ops, NULL, &c), -EEXIST);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert(S_ISREG(st.st_mode));
        unlink(path);

        ck_assert_int_eq(control_new(e, "", -1, ADMIN_GID, NULL, &test_ops, NULL, &c), -EINVAL);
        /* Limits with a zero would refuse everyone: refused, nothing bound. */
        {
                ControlLimits zero = CONTROL_LIMITS_DEFAULT;

                zero.idle_usec = 0;
                ck_assert_int_eq(control_new(e, path, -1, ADMIN_GID, &zero, &test_ops, NULL, &c), -EINVAL);
                ck_assert_int_ne(access(path, F_OK), 0);
        }
        {
                char longpath[200];

                memset(longpath, 'a', sizeof longpath - 1);
                longpath[0] = '/';
                longpath[sizeof longpath - 1] = '\0';
                ck_assert_int_eq(control_new(e, longpath, -1, ADMIN_GID, NULL, &test_ops, NULL, &c), -ENAMETOOLONG);
        }
        /* Not a listening socket: refused, and the fd stays the caller's. */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(control_new(e, NULL, fd, ADMIN_GID, NULL, &test_ops, NULL, &c), -ENOTSOCK);
        ck_assert_int_eq(fcntl(fd, F_GETFD), FD_CLOEXEC);
        close(fd);
        ck_assert_ptr_null(c);

        sd_event_unref(e);
        rmdir(dir);
}
END_TEST

START_TEST(test_socket_activation) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char dir[] = "/tmp/test-control-XXXXXX";
        struct stat st;
        json_t *reply;
        int fd;

        /* As systemd would hand it over: bound and listening already. */
        ck_assert_ptr_nonnull(mkdtemp(dir));
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s/activated.sock", dir);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *) &sa, sizeof sa), 0);
        ck_assert_int_eq(listen(fd, 8), 0);

        server_start_with(NULL, ADMIN_GID, fd);
        reply = ask_on(client_connect_to(sa.sun_path), "{\"command\": \"status\"}");
        assert_ok(reply);
        json_decref(reply);
        server_stop();
        /* systemd's file: not removed. */
        ck_assert_int_eq(stat(sa.sun_path, &st), 0);
        unlink(sa.sun_path);
        rmdir(dir);
}
END_TEST

static Suite *control_suite(void) {
        Suite *s = suite_create("control server");
        TCase *tc = tcase_create("round trips");
        TCase *auth = tcase_create("authorisation");
        TCase *edge = tcase_create("hostile clients");
        TCase *file = tcase_create("socket file");

        tcase_add_test(tc, test_status);
        tcase_add_test(tc, test_list);
        tcase_add_test(tc, test_query);
        tcase_add_test(tc, test_push_from_root);
        tcase_add_test(tc, test_up_down_flush);
        tcase_add_test(tc, test_pipelined_in_order);
        tcase_add_test(tc, test_last_line_at_eof);
        tcase_add_test(tc, test_large_reply_arrives_whole);
        tcase_set_timeout(tc, 60);
        suite_add_tcase(s, tc);

        tcase_add_test(auth, test_unprivileged_refused);
        tcase_add_test(auth, test_admin_group);
        tcase_add_test(auth, test_root_only);
        tcase_add_test(auth, test_is_admin);
        tcase_set_timeout(auth, 60);
        suite_add_tcase(s, auth);

        tcase_add_test(edge, test_bad_requests_keep_the_connection);
        tcase_add_test(edge, test_nul_in_line);
        tcase_add_test(edge, test_oversize_request);
        tcase_add_test(edge, test_push_document_cap);
        tcase_add_test(edge, test_stalled_half_line);
        tcase_add_test(edge, test_hang_up_mid_reply);
        tcase_add_test(edge, test_connection_limit);
        tcase_add_test(edge, test_per_user_limit);
        tcase_add_test(edge, test_admin_slots);
        tcase_add_test(edge, test_closed_before_served);
        tcase_add_test(edge, test_many_clients);
        tcase_set_timeout(edge, 120);
        suite_add_tcase(s, edge);

        tcase_add_test(file, test_socket_file);
        tcase_add_test(file, test_socket_activation);
        suite_add_tcase(s, file);
        return s;
}

int main(void) {
        SRunner *sr;
        int failed;

        /* The clients write to sockets the server may have closed. */
        signal(SIGPIPE, SIG_IGN);
        if (geteuid() != 0) {
                /* Dropping to another user needs root. */
                fprintf(stderr, "test-control-server: needs root (it runs clients as uid %d)\n", NOBODY);
                return 77;
        }
        sr = srunner_create(control_suite());
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
