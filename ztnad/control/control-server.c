/* SPDX-License-Identifier: MIT */
/*
 * The control socket's server: accepts `ztna` clients on the daemon's
 * sd-event loop, frames their requests into lines, answers each through the
 * daemon's callbacks, and protects the loop from every client.
 *
 * A connection's life: accepted (its credentials are read once, here: the
 * kernel recorded them at connect(), so a later exec or setuid of the client
 * changes nothing), then reading until a '\n' ends a request line, then
 * writing the reply with reading paused, then reading again. The idle timer
 * runs from the last byte that moved either way. Anything a client does
 * wrong is answered with a refusal, or ends its connection; nothing it does
 * ends the loop.
 */

#include <errno.h>
#include <poll.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "control/control-server.h"
#include "control/control-server-internal.h"
#include "macro.h"
#include "common/time-util.h"

/* Bytes asked of one recv(), and read from one connection before the loop
 * gets to the others: a 128 MiB push does not starve a status request. */
#define READ_CHUNK ((size_t) 64 << 10)
#define READ_BUDGET ((size_t) 1 << 20)
/* Request lines answered in one go before the loop gets to the others. */
#define LINES_BUDGET 16
/* Connections taken from the backlog per wake-up. */
#define ACCEPT_BURST 16
/* Out of fds or memory: accepting pauses this long instead of spinning. */
#define ACCEPT_RETRY_USEC (250 * USEC_PER_MSEC)
/* An input buffer grown past this for one big request is given back once
 * that request has been answered. */
#define INPUT_KEEP ((size_t) 1 << 20)
/* Supplementary groups read on the stack; more take one allocation. */
#define GROUPS_ON_STACK 64

typedef struct Connection Connection;

struct Connection {
        Control *control;
        Connection *prev, *next;
        int fd;
        sd_event_source *io, *idle;
        ControlPeer peer;

        /* Received bytes; none of the first `in_scanned` is a '\n'. */
        char *in;
        size_t in_len, in_size, in_scanned;
        /* The reply being sent: out[out_off..out_len). */
        char *out;
        size_t out_len, out_off;

        bool eof;     /* the client shut its side: answer what is left, then close */
        bool closing; /* close once `out` has left */
};

bool control_peer_is_admin(uid_t uid, gid_t gid, const gid_t *groups, size_t n_groups, gid_t admin_gid) {
        if (uid == 0)
                return true;
        if (admin_gid == (gid_t) -1)
                return false;
        if (gid == admin_gid)
                return true;
        for (size_t i = 0; i < n_groups; i++)
                if (groups[i] == admin_gid)
                        return true;
        return false;
}

/* ---- connections ---- */

static Connection *connection_free(Connection *conn) {
        Control *c;

        if (!conn)
                return NULL;
        c = conn->control;
        if (conn->prev)
                conn->prev->next = conn->next;
        else
                c->connections = conn->next;
        if (conn->next)
                conn->next->prev = conn->prev;
        c->n_connections--;
        c->n_other -= !conn->peer.admin;

        sd_event_source_disable_unref(conn->io);
        sd_event_source_disable_unref(conn->idle);
        safe_close(conn->fd);
        free(conn->in);
        free(conn->out);
        free(conn);
        return NULL;
}

static size_t connection_request_max(const Connection *conn) {
        const ControlLimits *l = &conn->control->limits;

        return conn->peer.admin ? l->request_max : l->request_max_other;
}

static void connection_touch(Connection *conn) {
        uint64_t now;

        if (sd_event_now(conn->control->event, CLOCK_MONOTONIC, &now) < 0)
                return;
        (void) sd_event_source_set_time(conn->idle, now + conn->control->limits.idle_usec);
}

/* Reads what there is, up to the cap of one request line and its '\n', and
 * READ_BUDGET at a time. Returns 0, or -errno of recv() (the connection is
 * broken). */
static int connection_read(Connection *conn) {
        size_t cap = connection_request_max(conn) + 1, budget = READ_BUDGET;
        bool progress = false;

        while (budget > 0 && conn->in_len < cap && !conn->eof) {
                size_t want = READ_CHUNK;
                ssize_t n;

                if (want > cap - conn->in_len)
                        want = cap - conn->in_len;
                if (want > budget)
                        want = budget;
                if (conn->in_size - conn->in_len < want) {
                        /* Doubling, so a 128 MiB line costs a few dozen
                         * reallocations, never past the cap. */
                        size_t size = conn->in_size ? conn->in_size * 2 : READ_CHUNK;
                        char *p;

                        if (size < conn->in_len + want)
                                size = conn->in_len + want;
                        if (size > cap)
                                size = cap;
                        p = realloc(conn->in, size);
                        if (!p)
                                return -ENOMEM;
                        conn->in = p;
                        conn->in_size = size;
                }

                n = recv(conn->fd, conn->in + conn->in_len, want, MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                break;
                        return -errno;
                }
                progress = true;
                if (n == 0) {
                        conn->eof = true;
                        break;
                }
                budget -= (size_t) n;
                conn->in_len += (size_t) n;
                /* A whole request is in: answer it before reading on. */
                if (memchr(conn->in + conn->in_len - n, '\n', (size_t) n))
                        break;
        }
        if (progress)
                connection_touch(conn);
        return 0;
}

/* Sends what it can of the reply. Returns 0, or -errno of send() (EPIPE:
 * the client left without its answer). */
static int connection_write(Connection *conn) {
        bool progress = false;

        while (conn->out_off < conn->out_len) {
                ssize_t n = send(conn->fd, conn->out + conn->out_off, conn->out_len - conn->out_off,
                                 MSG_DONTWAIT | MSG_NOSIGNAL);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                break;
                        return -errno;
                }
                conn->out_off += (size_t) n;
                progress = true;
        }
        if (progress)
                connection_touch(conn);
        if (conn->out_off == conn->out_len) {
                free(conn->out);
                conn->out = NULL;
                conn->out_len = conn->out_off = 0;
        }
        return 0;
}

/* Puts a reply built here (not by an op) in the output, ending the
 * connection after it. -ENOMEM when there is not even memory for that. */
static int connection_refuse(Connection *conn, const char *code, const char *message) {
        char *line;
        size_t len;

        if (control_refusal_line(code, message, &line, &len) < 0)
                return -ENOMEM;
        free(conn->out);
        conn->out = line;
        conn->out_len = len;
        conn->out_off = 0;
        conn->closing = true;
        return 0;
}

/* The next complete request line, answered into `out`. Returns 1 when a
 * line was answered, 0 when none is complete yet, -ENOMEM. */
static int connection_answer_line(Connection *conn) {
        Control *c = conn->control;
        char *nl = memchr(conn->in + conn->in_scanned, '\n', conn->in_len - conn->in_scanned);
        size_t len, rest;
        int r;

        if (!nl) {
                conn->in_scanned = conn->in_len;
                /* At EOF an unterminated last line still counts (a client
                 * may shut its side instead of sending '\n'). */
                if (!conn->eof || conn->in_len == 0)
                        return 0;
                len = conn->in_len;
        } else
                len = (size_t) (nl - conn->in);

        if (len > connection_request_max(conn))
                return 0; /* connection_advance() refuses it */

        r = control_dispatch(&c->ops, c->userdata, &conn->peer, conn->in, len, &conn->out, &conn->out_len);
        if (r < 0)
                return r;
        conn->out_off = 0;

        rest = conn->in_len - (nl ? len + 1 : len);
        memmove(conn->in, conn->in + conn->in_len - rest, rest);
        conn->in_len = rest;
        conn->in_scanned = 0;
        if (conn->in_size > INPUT_KEEP && rest < INPUT_KEEP) {
                /* One big push is over: give its buffer back. */
                char *p = realloc(conn->in, rest > 0 ? rest : 1);

                if (p) {
                        conn->in = p;
                        conn->in_size = rest > 0 ? rest : 1;
                }
        }
        return 1;
}

/* Moves the connection on as far as it goes without waiting: sends, answers
 * the lines already in, refuses an oversize one, and says what to wait for
 * next. Frees the connection when it is over. */
/* The client closed its end entirely (not just its writing side): no one
 * will read an answer, so its requests are not served. Without this a
 * user sending requests and closing at once had ztnad build every answer
 * (a list of 20,000 peers, 100 times a second) while root waited. */
static bool peer_gone(int fd) {
        struct pollfd p = { .fd = fd, .events = 0 };
        return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR));
}

static void connection_advance(Connection *conn) {
        uint32_t events;
        int r;

        for (int lines = 0;;) {
                if (conn->out) {
                        r = connection_write(conn);
                        if (r < 0)
                                goto close; /* EPIPE and the like: the client is gone */
                        if (conn->out) {
                                events = EPOLLOUT;
                                break;
                        }
                }
                if (conn->closing)
                        goto close;

                if (lines == LINES_BUDGET) {
                        /* More may be waiting in `in`; a writable socket
                         * brings us back after the other connections. */
                        events = EPOLLOUT;
                        break;
                }
                if (conn->in_len > 0 && peer_gone(conn->fd))
                        goto close;
                r = connection_answer_line(conn);
                if (r < 0)
                        goto close;
                if (r > 0) {
                        lines++;
                        continue;
                }

                if (conn->in_len > connection_request_max(conn)) {
                        char message[256];

                        /* Only a push is ever this large, and only root and
                         * the admin group may push: say so rather than
                         * "too large" to anyone else. */
                        if (!conn->peer.admin) {
                                (void) snprintf(message, sizeof message,
                                                CONTROL_NOT_AUTHORISED_MESSAGE
                                                " (requests from others are limited to reading)",
                                                control_peer_group(&conn->peer));
                                r = connection_refuse(conn, CONTROL_CODE_NOT_AUTHORISED, message);
                        } else {
                                (void) snprintf(message, sizeof message,
                                                "request line over %zu bytes; the connection is closed",
                                                connection_request_max(conn));
                                r = connection_refuse(conn, CONTROL_CODE_TOO_LARGE, message);
                        }
                        if (r < 0)
                                goto close;
                        continue;
                }
                if (conn->eof)
                        goto close;
                events = EPOLLIN;
                break;
        }
        if (sd_event_source_set_io_events(conn->io, events) < 0)
                goto close;
        return;

close:
        connection_free(conn);
}

static int on_connection_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Connection *conn = userdata;

        (void) s;
        (void) fd;
        /* Hang-up and error come with either event; reading or writing
         * finds out what they mean. */
        if (!conn->out && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR))) {
                if (connection_read(conn) < 0) {
                        connection_free(conn);
                        return 0;
                }
        }
        connection_advance(conn);
        return 0;
}

static int on_connection_idle(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) s;
        (void) usec;
        connection_free(userdata);
        return 0;
}

/* The credentials the kernel recorded at connect(): uid, gid, pid, and the
 * supplementary groups (SO_PEERGROUPS, Linux 4.13). Reading the groups from
 * /proc/<pid>/status would race with the pid being reused, and asking the
 * group database (getgrouplist) would block the loop on NSS and answer what
 * the database says now rather than what the client process holds. */
static int peer_credentials(int fd, gid_t admin_gid, ControlPeer *ret) {
        gid_t stack_groups[GROUPS_ON_STACK];
        _cleanup_free_ gid_t *heap_groups = NULL;
        gid_t *groups = stack_groups;
        struct ucred cred;
        socklen_t len = sizeof cred;

        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
                return -errno;
        if (len != sizeof cred)
                return -EIO;

        len = sizeof stack_groups;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0) {
                if (errno == ERANGE && len > sizeof stack_groups) {
                        /* `len` now says how much is needed. */
                        heap_groups = malloc(len);
                        if (!heap_groups)
                                return -ENOMEM;
                        groups = heap_groups;
                        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
                                return -errno;
                } else if (errno == ENOPROTOOPT)
                        len = 0; /* an old kernel: root and the primary group only */
                else
                        return -errno;
        }

        *ret = (ControlPeer) {
                .uid = cred.uid,
                .gid = cred.gid,
                .pid = cred.pid,
                .admin = control_peer_is_admin(cred.uid, cred.gid, groups, len / sizeof(gid_t), admin_gid),
        };
        return 0;
}

static size_t connections_of(const Control *c, uid_t uid) {
        size_t n = 0;

        for (const Connection *conn = c->connections; conn; conn = conn->next)
                n += conn->peer.uid == uid;
        return n;
}

/* Tells a client that cannot be served now so, without waiting: a fresh
 * socket's buffer takes the short line, or the client learns nothing. */
static void refuse_busy(int fd) {
        static const char line[] = "{\"ok\":false,\"code\":\"" CONTROL_CODE_BUSY
                                   "\",\"error\":\"ztnad is serving too many connections; try again\"}\n";

        (void) send(fd, line, sizeof line - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
}

static int connection_new(Control *c, int fd) {
        _cleanup_free_ Connection *conn = NULL;
        ControlPeer peer;
        uint64_t now;
        int r;

        r = peer_credentials(fd, c->admin_gid, &peer);
        if (r < 0)
                return control_log_errno(&c->ops, c->userdata, LOG_WARNING, r,
                                         "control: cannot read a client's credentials: %m");
        peer.admin_group = c->admin_group;
        /* Slots beyond max_other are kept for root and the admin group:
         * unprivileged users filling the rest cannot lock them out. */
        if (c->n_connections >= c->limits.max_connections ||
            (!peer.admin && c->n_other >= c->limits.max_other) ||
            (peer.uid != 0 && connections_of(c, peer.uid) >= c->limits.max_per_uid)) {
                refuse_busy(fd);
                return -EBUSY;
        }

        conn = calloc(1, sizeof *conn);
        if (!conn)
                return -ENOMEM;
        conn->control = c;
        conn->fd = fd;
        conn->peer = peer;

        r = sd_event_now(c->event, CLOCK_MONOTONIC, &now);
        if (r < 0)
                return r;
        r = sd_event_add_io(c->event, &conn->io, fd, EPOLLIN, on_connection_io, conn);
        if (r < 0)
                return r;
        r = sd_event_add_time(c->event, &conn->idle, CLOCK_MONOTONIC, now + c->limits.idle_usec, USEC_PER_MSEC,
                              on_connection_idle, conn);
        if (r < 0) {
                sd_event_source_disable_unref(conn->io);
                return r;
        }

        conn->next = c->connections;
        if (conn->next)
                conn->next->prev = conn;
        c->connections = conn;
        c->n_connections++;
        c->n_other += !peer.admin;
        TAKE_PTR(conn);
        return 0;
}

/* ---- the listening socket ---- */

static int on_accept_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        Control *c = userdata;

        (void) s;
        (void) usec;
        (void) sd_event_source_set_enabled(c->listen, SD_EVENT_ON);
        return 0;
}

/* Out of fds or memory: the backlog stays full and the listening socket
 * stays readable, so accepting pauses instead of spinning the loop. */
static void accept_pause(Control *c, int error) {
        uint64_t now;
        int r;

        (void) control_log_errno(&c->ops, c->userdata, LOG_WARNING, -error,
                                 "control: cannot accept a connection: %m; pausing");
        r = sd_event_now(c->event, CLOCK_MONOTONIC, &now);
        if (r >= 0 && !c->accept_retry)
                r = sd_event_add_time(c->event, &c->accept_retry, CLOCK_MONOTONIC, now + ACCEPT_RETRY_USEC,
                                      USEC_PER_MSEC, on_accept_retry, c);
        else if (r >= 0) {
                r = sd_event_source_set_time(c->accept_retry, now + ACCEPT_RETRY_USEC);
                if (r >= 0)
                        r = sd_event_source_set_enabled(c->accept_retry, SD_EVENT_ONESHOT);
        }
        /* Without the timer, keep accepting rather than go deaf for good. */
        if (r >= 0)
                (void) sd_event_source_set_enabled(c->listen, SD_EVENT_OFF);
}

/* A short accept queue: a connection waits behind at most this many
 * others. With SOMAXCONN (4096) a flood of connect-send-close from
 * unprivileged users queued thousands ahead of root's, each costing the
 * loop its accept and close; with a short one, root's blocking connect
 * waits for a free place beside the flooders' instead (tests/integration/test-flood.sh). */
#define CONTROL_BACKLOG 64

static int on_listen(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Control *c = userdata;

        (void) s;
        (void) revents;
        for (int i = 0; i < ACCEPT_BURST; i++) {
                int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);

                if (cfd < 0) {
                        if (errno == EAGAIN || errno == EWOULDBLOCK)
                                break;
                        /* The client gave up before we got to it. */
                        if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
                                continue;
                        accept_pause(c, errno);
                        break;
                }
                if (connection_new(c, cfd) < 0)
                        safe_close(cfd);
        }
        return 0;
}

/* A socket file at `path` that refuses connections was left by a ztnad
 * that is gone; one that accepts belongs to a running one. */
static int stale_socket_remove(const char *path, const struct sockaddr_un *sa, socklen_t sa_len) {
        _cleanup_close_ int fd = -1;
        struct stat st;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode))
                return -EEXIST;
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (const struct sockaddr *) sa, sa_len) == 0 || errno == EAGAIN || errno == EINPROGRESS)
                return -EADDRINUSE; /* answering, or its backlog is full */
        if (errno != ECONNREFUSED)
                return -errno;
        if (unlink(path) < 0 && errno != ENOENT)
                return -errno;
        return 0;
}

static int bind_path(Control *c, const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        size_t n = strlen(path);
        socklen_t sa_len;
        struct stat st;
        int r;

        /* A path, not an abstract name, and the kernel's NUL room kept. */
        if (n == 0 || path[0] == '\0')
                return -EINVAL;
        if (n >= sizeof sa.sun_path)
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, n);
        sa_len = (socklen_t) (offsetof(struct sockaddr_un, sun_path) + n + 1);

        c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0)
                return -errno;
        if (bind(c->fd, (struct sockaddr *) &sa, sa_len) < 0) {
                if (errno != EADDRINUSE)
                        return -errno;
                r = stale_socket_remove(path, &sa, sa_len);
                if (r < 0)
                        return r;
                if (bind(c->fd, (struct sockaddr *) &sa, sa_len) < 0)
                        return -errno;
        }
        /* From here on control_free() removes the file. */
        if (stat(path, &st) < 0)
                return -errno;
        c->path = strdup(path);
        if (!c->path) {
                (void) unlink(path);
                return -ENOMEM;
        }
        c->dev = st.st_dev;
        c->ino = st.st_ino;

        /* Connecting needs write permission on the file: everyone may ask;
         * the credentials decide what is answered. Before this chmod the
         * umask only made it stricter. */
        if (chmod(path, 0666) < 0)
                return -errno;
        if (listen(c->fd, CONTROL_BACKLOG) < 0)
                return -errno;
        return 0;
}

static int adopt_fd(Control *c, int fd) {
        int flags, r;

        r = sd_is_socket_unix(fd, SOCK_STREAM, 1, NULL, 0);
        if (r < 0)
                return r;
        if (r == 0)
                return -ENOTSOCK; /* not a listening AF_UNIX stream socket */
        flags = fcntl(fd, F_GETFL);
        if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                return -errno;
        flags = fcntl(fd, F_GETFD);
        if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0)
                return -errno;
        c->fd = fd;
        return 0;
}

int control_new(sd_event *e, const char *path, int listen_fd, gid_t admin_gid, const ControlLimits *limits,
                const ControlOps *ops, void *userdata, Control **ret) {
        const ControlLimits defaults = CONTROL_LIMITS_DEFAULT;
        Control *c;
        int r;

        if (!limits)
                limits = &defaults;
        if (!e || !ops || !ret || limits->max_connections == 0 || limits->max_per_uid == 0 ||
            limits->max_other == 0 || limits->request_max == 0 || limits->request_max_other == 0 ||
            limits->idle_usec == 0)
                return -EINVAL;
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(e);
        c->fd = -1;
        c->ops = *ops;
        c->userdata = userdata;
        c->admin_gid = admin_gid;
        c->limits = *limits;

        r = listen_fd >= 0 ? adopt_fd(c, listen_fd) : bind_path(c, path ? path : CONTROL_DEFAULT_PATH);
        if (r >= 0)
                r = sd_event_add_io(e, &c->listen, c->fd, EPOLLIN, on_listen, c);
        if (r < 0) {
                if (listen_fd >= 0)
                        c->fd = -1; /* still the caller's */
                control_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

int control_set_admin_group_name(Control *c, const char *name) {
        char *copy = name ? strdup(name) : NULL;
        if (name && !copy)
                return -ENOMEM;
        free(c->admin_group);
        c->admin_group = copy;
        return 0;
}

Control *control_free(Control *c) {
        struct stat st;

        if (!c)
                return NULL;
        while (c->connections)
                connection_free(c->connections);
        sd_event_source_disable_unref(c->listen);
        sd_event_source_disable_unref(c->accept_retry);
        safe_close(c->fd);
        free(c->admin_group);
        /* Only our own file: a ztnad started since may have replaced it. */
        if (c->path && stat(c->path, &st) == 0 && st.st_dev == c->dev && st.st_ino == c->ino)
                (void) unlink(c->path);
        free(c->path);
        sd_event_unref(c->event);
        free(c);
        return NULL;
}

