/* SPDX-License-Identifier: MIT */
/*
 * The plaintext fallback, used only when allow_plaintext_fallback is set and
 * every DoT server failed for a query: the client's query as it came (no
 * padding), over UDP to the fallback servers in order, over TCP to the same
 * server when the answer is truncated (RFC 7766 5).
 *
 * Off-path forgery is what plaintext invites, so each try uses a new socket
 * (a new random source port from the kernel), a random ID, and a connected
 * socket (only datagrams from the server's address and port arrive); an
 * answer counts only with that ID and the query's question. Anything else
 * is ignored and the wait goes on until the server's timeout.
 *
 * The exchange knows nothing of the query it serves: it reports the answer,
 * or what every server did, through PlainCallbacks (connection.h), and the
 * owner's timer calls upstream_plain_timeout() at its deadline.
 */

#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/inet-util.h"
#include "common/dns-wire.h"
#include "upstream/connection.h"

struct Plain {
        PlainConfig cfg;
        const PlainCallbacks *cb;
        void *userdata;
        size_t index; /* into cfg.servers */
        int fd;
        sd_event_source *io;
        bool tcp, connected;
        uint16_t id;
        uint64_t deadline;
        uint8_t *buf; /* FRAME_MAX: the datagram, or the TCP frame being read */
        size_t len;
        uint8_t *out; /* TCP: the frame to write */
        size_t out_len, out_off;
        char errors[DNS_EDE_TEXT_MAX];
};

static void upstream_plain_close_socket(Plain *p) {
        p->io = sd_event_source_disable_unref(p->io);
        p->fd = safe_close(p->fd);
        p->len = 0;
        p->out_len = p->out_off = 0;
        p->connected = false;
}

Plain *upstream_plain_free(Plain *p) {
        if (!p)
                return NULL;
        upstream_plain_close_socket(p);
        free(p->buf);
        free(p->out);
        free(p);
        return NULL;
}

uint64_t upstream_plain_deadline(const Plain *p) {
        return p ? p->deadline : UINT64_MAX;
}

static void upstream_plain_error(Plain *p, const char *what) {
        char addr[64];
        size_t used = strlen(p->errors);

        (void) sockaddr_host_port(&p->cfg.servers[p->index], addr, sizeof addr);
        if (used < sizeof p->errors - 1)
                upstream_format(p->errors + used, sizeof p->errors - used, "%s%s: %s", used ? "; " : "", addr, what);
}

static int on_plain_io(sd_event_source *es, int fd, uint32_t revents, void *userdata);

static int upstream_plain_socket(Plain *p, int type) {
        const struct sockaddr_storage *a = &p->cfg.servers[p->index];
        socklen_t alen = a->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
        int r;

        p->fd = socket(a->ss_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (p->fd < 0)
                return -errno;
        /* UDP: the kernel binds a random ephemeral port and from now on
         * delivers only the server's datagrams. */
        if (connect(p->fd, (const struct sockaddr *) a, alen) < 0 && errno != EINPROGRESS)
                return -errno;
        r = sd_event_add_io(p->cfg.event, &p->io, p->fd, type == SOCK_STREAM ? EPOLLOUT : EPOLLIN, on_plain_io, p);
        if (r < 0)
                return r;
        return 0;
}

/* Sends over UDP to the current server, or moves on to the next while one
 * cannot even be sent to. Reports the failure when none is left. */
static void upstream_plain_try(Plain *p) {
        for (; p->index < p->cfg.n_servers; p->index++) {
                int r;

                upstream_plain_close_socket(p);
                p->tcp = false;
                p->deadline = upstream_clock_now(p->cfg.event) + p->cfg.timeout_usec;
                r = upstream_plain_socket(p, SOCK_DGRAM);
                if (r >= 0) {
                        memcpy(p->buf, p->cfg.query, p->cfg.query_len);
                        p->id = (uint16_t) arc4random();
                        p->buf[DNS_OFF_ID] = (uint8_t) (p->id >> 8);
                        p->buf[DNS_OFF_ID + 1] = (uint8_t) p->id;
                        if (send(p->fd, p->buf, p->cfg.query_len, 0) < 0)
                                r = -errno;
                }
                if (r >= 0) {
                        p->cb->on_deadline(p->userdata);
                        return;
                }
                upstream_plain_error(p, strerror(-r));
        }
        p->cb->on_failed(p->userdata, p->errors);
}

Plain *upstream_plain_new(const PlainConfig *c, const PlainCallbacks *cb, void *userdata) {
        Plain *p = calloc(1, sizeof *p);

        if (p)
                p->buf = malloc(FRAME_MAX);
        if (!p || !p->buf) {
                free(p);
                return NULL;
        }
        p->cfg = *c;
        p->cb = cb;
        p->userdata = userdata;
        p->fd = -1;
        return p;
}

void upstream_plain_start(Plain *p) {
        upstream_plain_try(p);
}

void upstream_plain_timeout(Plain *p) {
        upstream_plain_error(p, p->tcp ? "no answer over TCP" : "timed out");
        p->index++;
        upstream_plain_try(p);
}

/* The answer to our ID and question, or not ours. */
static bool upstream_plain_ours(const Plain *p, const uint8_t *msg, size_t len) {
        return len >= DNS_HEADER_SIZE && ((unsigned) msg[DNS_OFF_ID] << 8 | msg[DNS_OFF_ID + 1]) == p->id &&
               (((unsigned) msg[DNS_OFF_FLAGS] << 8) & DNS_FLAG_QR) &&
               upstream_question_matches(p->cfg.question, p->cfg.question_len, msg, len);
}

static void upstream_plain_next(Plain *p, const char *why) {
        upstream_plain_error(p, why);
        p->index++;
        upstream_plain_try(p);
}

static void upstream_plain_switch_to_tcp(Plain *p) {
        size_t qlen = p->cfg.query_len;
        int r;

        upstream_plain_close_socket(p);
        p->tcp = true;
        p->deadline = upstream_clock_now(p->cfg.event) + p->cfg.timeout_usec;
        free(p->out);
        p->out = malloc(TCP_LENGTH_SIZE + qlen);
        if (!p->out) {
                upstream_plain_next(p, "out of memory");
                return;
        }
        p->id = (uint16_t) arc4random();
        p->out[0] = (uint8_t) (qlen >> 8);
        p->out[1] = (uint8_t) qlen;
        memcpy(p->out + TCP_LENGTH_SIZE, p->cfg.query, qlen);
        p->out[TCP_LENGTH_SIZE + DNS_OFF_ID] = (uint8_t) (p->id >> 8);
        p->out[TCP_LENGTH_SIZE + DNS_OFF_ID + 1] = (uint8_t) p->id;
        p->out_len = TCP_LENGTH_SIZE + qlen;
        r = upstream_plain_socket(p, SOCK_STREAM);
        if (r < 0) {
                upstream_plain_next(p, strerror(-r));
                return;
        }
        p->cb->on_deadline(p->userdata);
}

static void upstream_plain_udp_readable(Plain *p) {

        for (;;) {
                ssize_t n = recv(p->fd, p->buf, FRAME_MAX, 0);

                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return;
                        /* ICMP port unreachable and the like. */
                        upstream_plain_next(p, strerror(errno));
                        return;
                }
                if (!upstream_plain_ours(p, p->buf, (size_t) n))
                        continue;
                if (((unsigned) p->buf[DNS_OFF_FLAGS] << 8) & DNS_FLAG_TC) {
                        upstream_plain_switch_to_tcp(p);
                        return;
                }
                p->cb->on_answer(p->userdata, p->buf, (size_t) n);
                return;
        }
}

static void upstream_plain_tcp_event(Plain *p, uint32_t revents) {

        if (!p->connected) {
                int err = 0;
                socklen_t elen = sizeof err;

                if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
                        err = errno;
                if (err == 0 && (revents & (EPOLLERR | EPOLLHUP)))
                        err = ECONNREFUSED;
                if (err != 0) {
                        upstream_plain_next(p, strerror(err));
                        return;
                }
                p->connected = true;
        }
        while (p->out_off < p->out_len) {
                /* Length and query in one send(). */
                ssize_t n = send(p->fd, p->out + p->out_off, p->out_len - p->out_off, MSG_NOSIGNAL);

                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return;
                        upstream_plain_next(p, strerror(errno));
                        return;
                }
                p->out_off += (size_t) n;
                if (p->out_off == p->out_len)
                        (void) sd_event_source_set_io_events(p->io, EPOLLIN);
        }
        for (;;) {
                size_t want = TCP_LENGTH_SIZE;
                ssize_t n;

                if (p->len >= TCP_LENGTH_SIZE)
                        want += (size_t) p->buf[0] << 8 | p->buf[1];
                if (p->len == want && want > TCP_LENGTH_SIZE) {
                        if (!upstream_plain_ours(p, p->buf + TCP_LENGTH_SIZE, want - TCP_LENGTH_SIZE)) {
                                upstream_plain_next(p, "answer over TCP does not match the query");
                                return;
                        }
                        p->cb->on_answer(p->userdata, p->buf + TCP_LENGTH_SIZE, want - TCP_LENGTH_SIZE);
                        return;
                }
                n = recv(p->fd, p->buf + p->len, want - p->len, 0);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return;
                        upstream_plain_next(p, strerror(errno));
                        return;
                }
                if (n == 0) {
                        upstream_plain_next(p, "connection closed over TCP");
                        return;
                }
                p->len += (size_t) n;
        }
}

static int on_plain_io(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        Plain *p = userdata;

        (void) es;
        (void) fd;
        if (p->tcp)
                upstream_plain_tcp_event(p, revents);
        else
                upstream_plain_udp_readable(p);
        return 0;
}
