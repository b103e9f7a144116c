/* SPDX-License-Identifier: MIT */
/*
 * One DNS-over-TLS connection (RFC 7858, framing of RFC 7766): the
 * connection side of connection.h.
 *
 * A connection goes CONNECTING (non-blocking TCP connect) -> HANDSHAKE
 * (SSL_connect driven by the socket's readiness) -> READY. Queries wait on
 * the connection until it is READY and a slot is free, then each gets an ID
 * no other query in flight on this connection has, and its frame (length
 * and message together) is appended to the output, which goes out through
 * SSL_write in whole frames: a query is never split from its length prefix
 * across writes, so the server never waits for a second segment behind
 * Nagle or a delayed ACK (TCP_NODELAY as well).
 *
 * The socket is read through a BIO of our own that uses send(MSG_NOSIGNAL)
 * and recv(): a server that resets the connection must not SIGPIPE ztnad.
 *
 * Events go up through the peer's DotConnCallbacks; what they mean for the
 * server is the owner's decision (upstream.c), never made here. A connect
 * or handshake that fails, or that has not finished T after the connection
 * opened (the connection's timer, the only one that decides this), a
 * certificate that does not verify or matches no pin, a broken answer and
 * a server gone silent on queries it still owes are reported as on_failed
 * with their kind; an established connection that closes or breaks as
 * on_failed FAIL_LOST (FAIL_NONE when it was idle). The owner closes it.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "common/dns-wire.h"
#include "common/log.h"
#include "common/timeouts.h"
#include "upstream/connection.h"

/* Frames handed to one SSL_write: one TLS record at most. */
#define WRITE_CHUNK_MAX 16384u

typedef struct Slot {
        DotRequest *request; /* NULL: free, or abandoned while used */
        uint64_t abandoned; /* an abandoned request's start: still owed an answer */
        uint16_t id;
        bool used;
} Slot;

typedef enum ConnState {
        CONN_CONNECTING, /* TCP */
        CONN_HANDSHAKE,
        CONN_READY,
} ConnState;

struct DotConn {
        DotPeer *peer;
        int fd;
        SSL *ssl;
        sd_event_source *io, *timer;
        ConnState state;
        uint64_t opened, connected, ready, last_rx;
        Slot slots[DOT_INFLIGHT_MAX];
        unsigned n_used;
        DotRequest *wait_head, *wait_tail;
        uint8_t *out; /* frames not yet handed to SSL_write */
        size_t out_len, out_cap;
        size_t out_retry; /* length of an SSL_write to repeat, 0 if none */
        bool write_wants_read, read_wants_write;
        bool rx_drained; /* the last recv() left the socket empty */
        uint64_t rx_bytes; /* received in all */
        uint8_t *in; /* FRAME_MAX bytes */
        size_t in_len;
        /* A failure noticed where it cannot be reported (inside a callback
         * chain): reported from the timer, at once. */
        FailKind pending_fail;
        int pending_errno;
        char pending_error[ATTEMPT_ERROR_MAX];
};

/* ---- a socket BIO without SIGPIPE ---- */

static int bio_sock_write(BIO *b, const char *buf, int len) {
        ssize_t n;

        BIO_clear_retry_flags(b);
        n = send(((DotConn *) BIO_get_data(b))->fd, buf, (size_t) len, MSG_NOSIGNAL);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        BIO_set_retry_write(b);
                return -1;
        }
        return (int) n;
}

/* ACKs what was read at once (the kernel clears the flag on its own): a
 * server without TCP_NODELAY holds an answer behind unacknowledged data
 * (its session tickets, the previous answer) until the ACK comes, and a
 * delayed ACK makes that 40 ms. */
static void dot_conn_ack_now(const DotConn *c) {
        int one = 1;

        (void) setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
}

static int bio_sock_read(BIO *b, char *buf, int len) {
        DotConn *c = BIO_get_data(b);
        ssize_t n;

        BIO_clear_retry_flags(b);
        n = recv(c->fd, buf, (size_t) len, 0);
        /* Less than asked for: the socket had no more just now (OpenSSL
         * reads ahead, asking for all its buffer holds). */
        c->rx_drained = n < len;
        if (n > 0)
                c->rx_bytes += (uint64_t) n;
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        BIO_set_retry_read(b);
                return -1;
        }
        if (n == 0)
                errno = 0; /* EOF: SSL_ERROR_SYSCALL with errno 0 */
        else if (c->state != CONN_READY)
                dot_conn_ack_now(c); /* the handshake: every flight */
        return (int) n;
}

static long bio_sock_ctrl(BIO *b, int cmd, long num, void *ptr) {
        (void) b;
        (void) num;
        (void) ptr;
        /* Flushing is a no-op: every write went straight to the socket. */
        return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_sock_create(BIO *b) {
        BIO_set_init(b, 1);
        return 1;
}

static BIO_METHOD *bio_sock_method(void) {
        BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "ztna socket");

        if (!m)
                return NULL;
        if (!BIO_meth_set_write(m, bio_sock_write) || !BIO_meth_set_read(m, bio_sock_read) ||
            !BIO_meth_set_ctrl(m, bio_sock_ctrl) || !BIO_meth_set_create(m, bio_sock_create)) {
                BIO_meth_free(m);
                return NULL;
        }
        return m;
}

/* ---- the context ---- */

/* A new session (TLS 1.2 at the end of the handshake, TLS 1.3 tickets
 * after it) replaces the server's: the next connection resumes it. */
static int on_new_session(SSL *ssl, SSL_SESSION *session) {
        DotConn *c = SSL_get_app_data(ssl);

        if (!c || !c->peer)
                return 0;
        SSL_SESSION_free(c->peer->session);
        c->peer->session = session;
        return 1; /* we keep the reference */
}

static void openssl_error(char *buf, size_t len, const char *what) {
        unsigned long e = ERR_get_error();
        char reason[200];

        if (e == 0) {
                upstream_format(buf, len, "%s", what);
                return;
        }
        ERR_error_string_n(e, reason, sizeof reason);
        upstream_format(buf, len, "%s: %s", what, reason);
        ERR_clear_error();
}

int upstream_tls_ctx_new(const char *ca_file, SSL_CTX **ret) {
        SSL_CTX *ctx;
        char msg[256];

        ERR_clear_error();
        ctx = SSL_CTX_new(TLS_client_method());
        if (!ctx)
                return -ENOMEM;
        /* RFC 8310 / BCP 195: nothing older than TLS 1.2. */
        if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
                SSL_CTX_free(ctx);
                return -EINVAL;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
        if (ca_file) {
                if (SSL_CTX_load_verify_locations(ctx, ca_file, NULL) != 1) {
                        openssl_error(msg, sizeof msg, "cannot load");
                        log_line(SD_ERR, "DNS-over-TLS: CA file %s: %s", ca_file, msg);
                        SSL_CTX_free(ctx);
                        return -EIO;
                }
        } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
                openssl_error(msg, sizeof msg, "cannot load the system's CA store");
                log_line(SD_ERR, "DNS-over-TLS: %s", msg);
                SSL_CTX_free(ctx);
                return -EIO;
        }
        /* Client sessions are kept per server by on_new_session(), not in
         * OpenSSL's cache keyed by nothing we choose. */
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        SSL_CTX_sess_set_new_cb(ctx, on_new_session);
        /* The output buffer grows (and moves) while a write is retried. */
        SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        SSL_CTX_clear_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE);
        *ret = ctx;
        return 0;
}

int upstream_pin_decode(const char *b64, uint8_t ret[32]) {
        /* 32 bytes are 44 base64 characters, one '=' of padding. */
        uint8_t out[48];
        size_t n = strlen(b64);

        if (n != 44 || b64[43] != '=' || b64[42] == '=')
                return -EINVAL;
        if (EVP_DecodeBlock(out, (const unsigned char *) b64, (int) n) != 33)
                return -EINVAL;
        memcpy(ret, out, 32);
        return 0;
}

/* ---- connections ---- */

static uint64_t dot_conn_now(const DotConn *c) {
        return upstream_clock_now(c->peer->event);
}

static uint16_t dot_random16(DotRandom *rnd) {
        uint16_t v;

        /* glibc's arc4random() is a getrandom() call each time: a system
         * call on every query's way out. */
        if (rnd->left < sizeof v) {
                if (getrandom(rnd->pool, sizeof rnd->pool, GRND_NONBLOCK) != (ssize_t) sizeof rnd->pool)
                        return (uint16_t) arc4random();
                rnd->left = sizeof rnd->pool;
        }
        rnd->left -= sizeof v;
        memcpy(&v, rnd->pool + rnd->left, sizeof v);
        return v;
}

/* Tells the owner; it closes the connection before returning. */
static void dot_conn_report(DotConn *c, FailKind kind, int err, const char *why) {
        DotPeer *peer = c->peer;

        peer->callbacks->on_failed(c, kind, err, why, peer->userdata);
}

/* No query waits for it. Slots of queries answered elsewhere do not count:
 * a server that never answers those must not keep the connection open. */
static bool dot_conn_idle(const DotConn *c) {
        if (c->wait_head)
                return false;
        if (c->n_used == 0)
                return true;
        for (unsigned i = 0; i < DOT_INFLIGHT_MAX; i++)
                if (c->slots[i].used && c->slots[i].request)
                        return false;
        return true;
}

/* The start of the oldest query this connection still owes an answer that
 * nobody waits for any more (answered by another server meanwhile); 0 for
 * none. Such a query still tells whether the server has gone silent. */
static uint64_t dot_conn_oldest_abandoned(const DotConn *c) {
        uint64_t oldest = 0;
        for (unsigned i = 0; i < DOT_INFLIGHT_MAX; i++)
                if (c->slots[i].used && !c->slots[i].request && c->slots[i].abandoned &&
                    (!oldest || c->slots[i].abandoned < oldest))
                        oldest = c->slots[i].abandoned;
        return oldest;
}

/* When the connection counts as silent if nothing arrives: the oldest
 * abandoned query's deadline, if nothing came back since it was sent. */
static uint64_t dot_conn_silent_at(const DotConn *c) {
        uint64_t oldest = dot_conn_oldest_abandoned(c);
        if (!oldest || c->last_rx >= oldest)
                return 0;
        return oldest + c->peer->timeout_usec;
}

static int dot_conn_arm_timer(DotConn *c) {
        const DotPeer *peer = c->peer;
        uint64_t when, silent_at = c->state == CONN_READY ? dot_conn_silent_at(c) : 0;
        int r;

        if (c->pending_fail != FAIL_NONE)
                when = 1; /* in the past: at once */
        else if (c->state != CONN_READY)
                when = c->opened + peer->timeout_usec; /* the open deadline */
        else if (dot_conn_idle(c)) {
                when = (c->last_rx > c->ready ? c->last_rx : c->ready) + peer->idle_timeout_usec;
                if (silent_at && silent_at < when)
                        when = silent_at;
        } else if (silent_at)
                when = silent_at;
        else
                return sd_event_source_set_enabled(c->timer, SD_EVENT_OFF);
        r = sd_event_source_set_time(c->timer, when);
        if (r >= 0)
                r = sd_event_source_set_enabled(c->timer, SD_EVENT_ONESHOT);
        return r;
}

static void dot_conn_update_events(DotConn *c) {
        uint32_t ev = 0;

        switch (c->state) {
        case CONN_CONNECTING:
                ev = EPOLLOUT;
                break;
        case CONN_HANDSHAKE:
                ev = c->read_wants_write ? EPOLLOUT : EPOLLIN;
                break;
        case CONN_READY:
                ev = EPOLLIN;
                if (c->read_wants_write || ((c->out_len > 0 || c->out_retry > 0) && !c->write_wants_read))
                        ev |= EPOLLOUT;
                break;
        }
        (void) sd_event_source_set_io_events(c->io, ev);
}

/* Called where closing is not safe: the timer closes it, at once. */
static void dot_conn_defer_fail(DotConn *c, FailKind kind, int err, const char *msg) {
        if (c->pending_fail != FAIL_NONE)
                return;
        c->pending_fail = kind;
        c->pending_errno = err;
        upstream_format(c->pending_error, sizeof c->pending_error, "%s", msg);
        (void) dot_conn_arm_timer(c);
}

DotConn *dot_conn_free(DotConn *c) {
        if (!c)
                return NULL;
        if (c->ssl)
                SSL_free(c->ssl);
        sd_event_source_disable_unref(c->io);
        sd_event_source_disable_unref(c->timer);
        safe_close(c->fd);
        free(c->out);
        free(c->in);
        free(c);
        return NULL;
}

/* Closes the connection and reports whatever was queued or in flight on
 * it with `kind`/`msg`. */
void dot_conn_close(DotConn *c, FailKind kind, const char *msg) {
        DotPeer *peer = c->peer;
        DotRequest *list = NULL, **tail = &list, *a, *next;

        /* Collect first: the owner may open a new connection to this
         * server for them, and must not find this one. */
        for (a = c->wait_head; a; a = next) {
                next = a->wait_next;
                a->wait_prev = NULL;
                a->wait_next = NULL;
                *tail = a;
                tail = &a->wait_next;
        }
        c->wait_head = c->wait_tail = NULL;
        for (unsigned i = 0; i < DOT_INFLIGHT_MAX; i++)
                if (c->slots[i].used && c->slots[i].request) {
                        a = c->slots[i].request;
                        a->wait_next = NULL;
                        *tail = a;
                        tail = &a->wait_next;
                }
        if (c->ssl && kind == FAIL_NONE && c->state == CONN_READY) {
                /* An orderly close: one close_notify, not waited for. */
                ERR_clear_error();
                (void) SSL_shutdown(c->ssl);
        }
        dot_conn_free(c);

        for (a = list; a; a = next) {
                next = a->wait_next;
                a->wait_next = NULL;
                a->conn = NULL;
                a->state = DOT_REQUEST_NONE;
                peer->callbacks->on_request_closed(a, kind, msg, peer->userdata);
        }
}

bool dot_conn_silent_since(const DotConn *c, uint64_t t) {
        return c->last_rx < t;
}

bool dot_conn_ready(const DotConn *c) {
        return c->state == CONN_READY;
}

unsigned dot_conn_inflight(const DotConn *c) {
        return c->n_used;
}

DotRequest *dot_conn_waiting(const DotConn *c) {
        return c->wait_head;
}

static int dot_conn_slot_new(DotConn *c, uint16_t *ret_id) {
        int free_slot = -1;
        uint16_t id;
        bool clash;

        for (unsigned i = 0; i < DOT_INFLIGHT_MAX; i++)
                if (!c->slots[i].used) {
                        free_slot = (int) i;
                        break;
                }
        if (free_slot < 0)
                return -EBUSY;
        /* Unique among the IDs in use; random, though TLS already keeps
         * off-path forgers out. */
        do {
                id = dot_random16(c->peer->random);
                clash = false;
                for (unsigned i = 0; i < DOT_INFLIGHT_MAX; i++)
                        if (c->slots[i].used && c->slots[i].id == id) {
                                clash = true;
                                break;
                        }
        } while (clash);
        *ret_id = id;
        return free_slot;
}

static int dot_conn_out_reserve(DotConn *c, size_t more) {
        size_t need = c->out_len + more;
        uint8_t *p;

        if (need <= c->out_cap)
                return 0;
        if (need < 4096)
                need = 4096;
        if (need < c->out_cap * 2)
                need = c->out_cap * 2;
        p = realloc(c->out, need);
        if (!p)
                return -ENOMEM;
        c->out = p;
        c->out_cap = need;
        return 0;
}

/* Hands whole frames to SSL_write until the socket is full. Never closes:
 * a write error is deferred to the timer. */
static void dot_conn_flush(DotConn *c) {
        char msg[ATTEMPT_ERROR_MAX];

        if (c->state != CONN_READY || c->pending_fail != FAIL_NONE)
                return;
        c->write_wants_read = false;
        while (c->out_retry > 0 || c->out_len > 0) {
                size_t n = c->out_retry;
                int w, e;

                if (n == 0) {
                        /* As many whole frames as fit in a record; at
                         * least one. */
                        size_t off = 0;

                        while (off < c->out_len) {
                                size_t f = TCP_LENGTH_SIZE + ((size_t) c->out[off] << 8 | c->out[off + 1]);

                                if (off > 0 && off + f > WRITE_CHUNK_MAX)
                                        break;
                                off += f;
                        }
                        n = off;
                }
                ERR_clear_error();
                w = SSL_write(c->ssl, c->out, (int) n);
                if (w > 0) {
                        c->out_retry = 0;
                        memmove(c->out, c->out + w, c->out_len - (size_t) w);
                        c->out_len -= (size_t) w;
                        continue;
                }
                e = SSL_get_error(c->ssl, w);
                c->out_retry = n; /* the same length again (SSL_write(3)) */
                if (e == SSL_ERROR_WANT_WRITE)
                        break;
                if (e == SSL_ERROR_WANT_READ) {
                        c->write_wants_read = true;
                        break;
                }
                if (e == SSL_ERROR_SYSCALL && errno != 0)
                        upstream_format(msg, sizeof msg, "writing to %s: %s", c->peer->label, strerror(errno));
                else
                        openssl_error(msg, sizeof msg, "TLS write failed");
                dot_conn_defer_fail(c, FAIL_LOST, -EIO, msg);
                return;
        }
        dot_conn_update_events(c);
}

/* Moves waiting queries into free slots and writes them. */
static void dot_conn_pump(DotConn *c) {
        DotPeer *peer = c->peer;
        uint64_t now;

        if (c->state != CONN_READY || c->pending_fail != FAIL_NONE)
                return;
        now = dot_conn_now(c);
        while (c->wait_head && c->n_used < DOT_INFLIGHT_MAX) {
                DotRequest *a = c->wait_head;
                uint16_t id;
                int slot;

                if (dot_conn_out_reserve(c, TCP_LENGTH_SIZE + a->wire_len) < 0) {
                        dot_conn_defer_fail(c, FAIL_LOST, -ENOMEM, "out of memory");
                        return;
                }
                slot = dot_conn_slot_new(c, &id);
                if (slot < 0)
                        break;
                c->wait_head = a->wait_next;
                if (c->wait_head)
                        c->wait_head->wait_prev = NULL;
                else
                        c->wait_tail = NULL;
                a->wait_next = a->wait_prev = NULL;

                c->slots[slot] = (Slot) { .request = a, .id = id, .used = true };
                c->n_used++;
                a->slot = (unsigned) slot;
                a->state = DOT_REQUEST_SENT;
                /* An RTT sample only for queries that did not wait for the
                 * connection to open. */
                a->sent = a->started >= c->ready ? now : 0;
                peer->n_sent++;

                c->out[c->out_len] = (uint8_t) (a->wire_len >> 8);
                c->out[c->out_len + 1] = (uint8_t) a->wire_len;
                memcpy(c->out + c->out_len + TCP_LENGTH_SIZE, a->wire, a->wire_len);
                c->out[c->out_len + TCP_LENGTH_SIZE + DNS_OFF_ID] = (uint8_t) (id >> 8);
                c->out[c->out_len + TCP_LENGTH_SIZE + DNS_OFF_ID + 1] = (uint8_t) id;
                c->out_len += TCP_LENGTH_SIZE + a->wire_len;
        }
        dot_conn_flush(c);
        (void) dot_conn_arm_timer(c);
}

void dot_conn_dequeue(DotRequest *a) {
        DotConn *c = a->conn;

        if (!c)
                return;
        if (a->state == DOT_REQUEST_WAITING) {
                if (a->wait_prev)
                        a->wait_prev->wait_next = a->wait_next;
                else
                        c->wait_head = a->wait_next;
                if (a->wait_next)
                        a->wait_next->wait_prev = a->wait_prev;
                else
                        c->wait_tail = a->wait_prev;
                a->wait_prev = a->wait_next = NULL;
        } else if (a->state == DOT_REQUEST_SENT && c->slots[a->slot].request == a) {
                /* Abandoned: the ID stays taken until its answer comes, and
                 * the connection keeps its deadline (dot_conn_silent_at). */
                c->slots[a->slot].request = NULL;
                c->slots[a->slot].abandoned = a->started ? a->started : dot_conn_now(c);
                (void) dot_conn_arm_timer(c);
        }
        a->conn = NULL;
        a->state = DOT_REQUEST_NONE;
}

static int on_conn_io(sd_event_source *es, int fd, uint32_t revents, void *userdata);
static int on_conn_timer(sd_event_source *es, uint64_t usec, void *userdata);

int dot_conn_new(DotPeer *peer, uint64_t now, DotConn **ret) {
        DotConn *c;
        int r, one = 1;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        c->fd = -1;
        c->peer = peer;
        /* The caller's now: a request handed over at the same moment
         * never has a deadline before this connection's. */
        c->opened = now;
        c->in = malloc(FRAME_MAX);
        if (!c->in) {
                free(c);
                return -ENOMEM;
        }
        r = sd_event_add_time(peer->event, &c->timer, CLOCK_MONOTONIC, c->opened + peer->timeout_usec,
                              TIMER_ACCURACY_USEC, on_conn_timer, c);
        if (r < 0) {
                dot_conn_free(c);
                return r;
        }
        c->fd = socket(peer->addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
        if (c->fd < 0) {
                r = -errno;
                dot_conn_free(c);
                return r;
        }
        /* Queries are small and each goes out whole: no Nagle. */
        (void) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        r = sd_event_add_io(peer->event, &c->io, c->fd, EPOLLOUT, on_conn_io, c);
        if (r < 0) {
                dot_conn_free(c);
                return r;
        }
        peer->n_connections++;
        if (connect(c->fd, (const struct sockaddr *) peer->addr, peer->addrlen) < 0 && errno != EINPROGRESS) {
                char msg[ATTEMPT_ERROR_MAX];
                int e = errno;

                /* Reported from the timer, like any other failure. */
                upstream_format(msg, sizeof msg, "connecting to %s: %s", peer->address, strerror(e));
                dot_conn_defer_fail(c, FAIL_UNREACHABLE, -e, msg);
        }
        *ret = c;
        return 0;
}

void dot_conn_enqueue(DotConn *c, DotRequest *a) {
        a->conn = c;
        a->state = DOT_REQUEST_WAITING;
        a->wait_next = NULL;
        a->wait_prev = c->wait_tail;
        if (c->wait_tail)
                c->wait_tail->wait_next = a;
        else
                c->wait_head = a;
        c->wait_tail = a;
        dot_conn_pump(c);
}

static bool pin_match(const DotPeer *u, X509 *cert) {
        X509_PUBKEY *key = X509_get_X509_PUBKEY(cert);
        unsigned char *der = NULL;
        uint8_t md[EVP_MAX_MD_SIZE];
        unsigned mdlen = 0;
        int n;
        bool found = false;

        if (!key)
                return false;
        n = i2d_X509_PUBKEY(key, &der);
        if (n <= 0)
                return false;
        if (EVP_Digest(der, (size_t) n, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32)
                for (size_t i = 0; i < u->n_pins && !found; i++)
                        found = memcmp(md, u->pins[i], 32) == 0;
        OPENSSL_free(der);
        return found;
}

/* RFC 7858 4.2: any certificate of the validated chain may match. */
static bool dot_conn_pins_ok(const DotConn *c) {
        const DotPeer *u = c->peer;
        STACK_OF(X509) *chain;
        X509 *leaf;

        if (u->n_pins == 0)
                return true;
        chain = SSL_get0_verified_chain(c->ssl);
        if (chain) {
                for (int i = 0; i < sk_X509_num(chain); i++)
                        if (pin_match(u, sk_X509_value(chain, i)))
                                return true;
                return false;
        }
        leaf = SSL_get0_peer_certificate(c->ssl);
        return leaf && pin_match(u, leaf);
}

static int dot_conn_start_tls(DotConn *c) {
        const DotPeer *s = c->peer;
        BIO *bio;

        ERR_clear_error();
        c->ssl = SSL_new(s->ctx);
        if (!c->ssl)
                return -ENOMEM;
        bio = BIO_new(s->bio_method);
        if (!bio)
                return -ENOMEM;
        BIO_set_data(bio, c);
        SSL_set_bio(c->ssl, bio, bio);
        /* Whole TLS records, several if they are there, in one recv(). */
        SSL_set_read_ahead(c->ssl, 1);
        SSL_set_app_data(c->ssl, c);
        SSL_set_connect_state(c->ssl);
        SSL_set_hostflags(c->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        if (s->tls_name[0]) {
                if (!SSL_set_tlsext_host_name(c->ssl, s->tls_name) || !SSL_set1_host(c->ssl, s->tls_name))
                        return -ENOMEM;
        } else {
                /* No name: the certificate must carry the address. */
                X509_VERIFY_PARAM *param = SSL_get0_param(c->ssl);
                const void *ip;
                size_t iplen;

                if (s->addr->ss_family == AF_INET) {
                        ip = &((const struct sockaddr_in *) s->addr)->sin_addr;
                        iplen = 4;
                } else {
                        ip = &((const struct sockaddr_in6 *) s->addr)->sin6_addr;
                        iplen = 16;
                }
                if (!X509_VERIFY_PARAM_set1_ip(param, ip, iplen))
                        return -ENOMEM;
        }
        if (s->session && SSL_SESSION_is_resumable(s->session))
                (void) SSL_set_session(c->ssl, s->session);
        return 0;
}

static const char *dot_conn_identity(const DotPeer *s) {
        return s->tls_name[0] ? s->tls_name : s->address;
}

/* 1: READY, 0: in progress, < 0: failed (reported, and the connection
 * closed by the owner). */
static int dot_conn_handshake(DotConn *c) {
        DotPeer *s = c->peer;
        char msg[ATTEMPT_ERROR_MAX];
        long vr;
        int r, e;

        ERR_clear_error();
        r = SSL_connect(c->ssl);
        if (r == 1) {
                if (!dot_conn_pins_ok(c)) {
                        /* Neither this session nor its tickets are ours
                         * to resume. */
                        SSL_SESSION_free(s->session);
                        s->session = NULL;
                        upstream_format(msg, sizeof msg, "TLS certificate of %s matches no SPKI pin",
                                       dot_conn_identity(s));
                        dot_conn_report(c, FAIL_TLS, -EPERM, msg);
                        return -EPERM;
                }
                c->state = CONN_READY;
                c->ready = dot_conn_now(c);
                c->read_wants_write = false;
                if (SSL_session_reused(c->ssl))
                        s->n_resumed++;
                return 1;
        }
        e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                c->read_wants_write = e == SSL_ERROR_WANT_WRITE;
                dot_conn_update_events(c);
                return 0;
        }
        vr = SSL_get_verify_result(c->ssl);
        if (vr != X509_V_OK)
                upstream_format(msg, sizeof msg, "TLS certificate verification failed for %s: %s",
                               dot_conn_identity(s), X509_verify_cert_error_string(vr));
        else if (e == SSL_ERROR_SYSCALL && errno != 0)
                upstream_format(msg, sizeof msg, "TLS handshake with %s: %s", s->address, strerror(errno));
        else if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN)
                upstream_format(msg, sizeof msg, "TLS handshake with %s: connection closed by the server",
                               s->address);
        else {
                char what[96];

                upstream_format(what, sizeof what, "TLS handshake with %s failed", s->address);
                openssl_error(msg, sizeof msg, what);
        }
        ERR_clear_error();
        dot_conn_report(c, FAIL_TLS, -EPROTO, msg);
        return -EPROTO;
}

/* One complete frame. Returns 0, or < 0 when the connection was closed. */
static int dot_conn_frame(DotConn *c, uint8_t *msg, size_t len) {
        DotPeer *s = c->peer;
        char err[ATTEMPT_ERROR_MAX];
        uint16_t id;
        size_t qoff, qlen;
        Slot *slot = NULL;
        DotRequest *a;

        if (dns_wire_question_span(msg, len, &id, &qoff, &qlen) < 0 ||
            !(((unsigned) msg[DNS_OFF_FLAGS] << 8) & DNS_FLAG_QR)) {
                upstream_format(err, sizeof err, "malformed answer from %s", s->label);
                dot_conn_report(c, FAIL_PROTOCOL, -EBADMSG, err);
                return -EBADMSG;
        }
        for (unsigned i = 0; i < DOT_INFLIGHT_MAX; i++)
                if (c->slots[i].used && c->slots[i].id == id) {
                        slot = &c->slots[i];
                        break;
                }
        if (!slot) {
                upstream_format(err, sizeof err, "answer from %s to a query never sent (ID %u)", s->label, id);
                dot_conn_report(c, FAIL_PROTOCOL, -EBADMSG, err);
                return -EBADMSG;
        }
        a = slot->request;
        if (a && !upstream_question_matches(a->question, a->question_len, msg, len)) {
                upstream_format(err, sizeof err, "answer from %s does not match its query's question", s->label);
                dot_conn_report(c, FAIL_PROTOCOL, -EBADMSG, err);
                return -EBADMSG;
        }
        *slot = (Slot) {};
        c->n_used--;
        if (a) {
                a->conn = NULL;
                a->state = DOT_REQUEST_NONE;
        }
        /* a NULL: its query was answered elsewhere. */
        s->callbacks->on_answer(c, a, msg, len, s->userdata);
        return 0;
}

/* After reading: what came is ACKed at once while answers are still owed,
 * the only time a server may hold one back for the ACK (a record's tail
 * behind its first segment, an answer behind the previous one). Otherwise
 * the ACK goes with the next query, at no cost: an ACK of its own is a
 * packet and a wake-up for both ends, on every answer. */
static void dot_conn_read_done(DotConn *c, uint64_t rx_start) {
        if (c->rx_bytes != rx_start && c->n_used > 0)
                dot_conn_ack_now(c);
}

/* Reads and handles every frame available. Returns 0, or < 0 when the
 * connection was closed. */
static int dot_conn_read(DotConn *c) {
        const DotPeer *s = c->peer;
        char msg[ATTEMPT_ERROR_MAX];
        uint64_t rx_start = c->rx_bytes;

        c->read_wants_write = false;
        for (;;) {
                size_t off = 0;
                int n, e;

                ERR_clear_error();
                n = SSL_read(c->ssl, c->in + c->in_len, (int) (FRAME_MAX - c->in_len));
                if (n <= 0) {
                        e = SSL_get_error(c->ssl, n);
                        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                                c->read_wants_write = e == SSL_ERROR_WANT_WRITE;
                                dot_conn_read_done(c, rx_start);
                                return 0;
                        }
                        if (e == SSL_ERROR_ZERO_RETURN || (e == SSL_ERROR_SYSCALL && errno == 0))
                                upstream_format(msg, sizeof msg, "connection closed by %s", s->label);
                        else if (e == SSL_ERROR_SYSCALL)
                                upstream_format(msg, sizeof msg, "connection to %s: %s", s->label, strerror(errno));
                        else
                                openssl_error(msg, sizeof msg, "TLS read failed");
                        ERR_clear_error();
                        /* Quietly when idle: servers close idle
                         * connections (RFC 7766 6.2.3). */
                        dot_conn_report(c, dot_conn_idle(c) ? FAIL_NONE : FAIL_LOST, -ECONNRESET, msg);
                        return -ECONNRESET;
                }
                c->last_rx = dot_conn_now(c);
                c->in_len += (size_t) n;
                while (c->in_len - off >= TCP_LENGTH_SIZE) {
                        size_t flen = (size_t) c->in[off] << 8 | c->in[off + 1];

                        if (c->in_len - off < TCP_LENGTH_SIZE + flen)
                                break;
                        if (dot_conn_frame(c, c->in + off + TCP_LENGTH_SIZE, flen) < 0)
                                return -EBADMSG;
                        off += TCP_LENGTH_SIZE + flen;
                        /* A callback may have queued more; the connection
                         * is still ours (closing is deferred there). */
                }
                memmove(c->in, c->in + off, c->in_len - off);
                c->in_len -= off;
                /* Another SSL_read() would only find EAGAIN. */
                if (c->rx_drained && !SSL_has_pending(c->ssl)) {
                        dot_conn_read_done(c, rx_start);
                        return 0;
                }
        }
}

static int on_conn_io(sd_event_source *es, int fd, uint32_t revents, void *userdata) {
        DotConn *c = userdata;
        DotPeer *s = c->peer;
        char msg[ATTEMPT_ERROR_MAX];
        int r;

        (void) es;
        (void) fd;
        if (c->pending_fail != FAIL_NONE)
                return 0; /* the timer closes it */

        if (c->state == CONN_CONNECTING) {
                int err = 0;
                socklen_t elen = sizeof err;

                if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &elen) < 0)
                        err = errno;
                if (err == 0 && !(revents & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
                        return 0;
                if (err != 0 || (revents & (EPOLLERR | EPOLLHUP))) {
                        if (err == 0)
                                err = ECONNREFUSED;
                        upstream_format(msg, sizeof msg, "connecting to %s: %s", s->address, strerror(err));
                        dot_conn_report(c, FAIL_UNREACHABLE, -err, msg);
                        return 0;
                }
                c->connected = dot_conn_now(c);
                c->state = CONN_HANDSHAKE;
                s->callbacks->on_connected(c, c->connected - c->opened, s->userdata);
                r = dot_conn_start_tls(c);
                if (r < 0) {
                        upstream_format(msg, sizeof msg, "TLS setup for %s: %s", s->address, strerror(-r));
                        dot_conn_report(c, FAIL_TLS, r, msg);
                        return 0;
                }
        }
        if (c->state == CONN_HANDSHAKE) {
                r = dot_conn_handshake(c);
                if (r <= 0)
                        return 0;
                s->callbacks->on_ready(c, s->userdata);
                (void) dot_conn_arm_timer(c);
                dot_conn_pump(c);
        }
        /* READY */
        if ((revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) || (c->read_wants_write && (revents & EPOLLOUT)) ||
            SSL_pending(c->ssl) > 0) {
                if (dot_conn_read(c) < 0)
                        return 0;
                if (c->pending_fail != FAIL_NONE)
                        return 0;
                /* Answers freed slots. */
                dot_conn_pump(c);
        }
        if (revents & EPOLLOUT || c->write_wants_read)
                dot_conn_flush(c);
        if (c->pending_fail == FAIL_NONE) {
                dot_conn_update_events(c);
                (void) dot_conn_arm_timer(c);
        }
        return 0;
}

static int on_conn_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        DotConn *c = userdata;
        const DotPeer *s = c->peer;
        char msg[ATTEMPT_ERROR_MAX];

        (void) es;
        (void) usec;
        if (c->pending_fail != FAIL_NONE) {
                upstream_format(msg, sizeof msg, "%s", c->pending_error);
                dot_conn_report(c, c->pending_fail, c->pending_errno, msg);
                return 0;
        }
        /* The open deadline (opened + T): the one place a connect or a
         * handshake times out. */
        if (c->state != CONN_READY) {
                if (c->state == CONN_CONNECTING)
                        upstream_format(msg, sizeof msg, "connecting to %s timed out", s->address);
                else
                        upstream_format(msg, sizeof msg, "TLS handshake with %s timed out", s->address);
                dot_conn_report(c, FAIL_TIMEOUT, -ETIMEDOUT, msg);
                return 0;
        }
        uint64_t silent_at = dot_conn_silent_at(c);
        if (silent_at && usec >= silent_at) {
                /* Queries answered elsewhere got nothing back here either:
                 * the server went silent on an open connection. */
                upstream_format(msg, sizeof msg, "no answer from %s within %" PRIu64 " ms", s->label,
                                s->timeout_usec / 1000);
                dot_conn_report(c, FAIL_TIMEOUT, -ETIMEDOUT, msg);
                return 0;
        }
        if (dot_conn_idle(c)) {
                dot_conn_report(c, FAIL_NONE, 0, "idle");
                return 0;
        }
        (void) dot_conn_arm_timer(c);
        return 0;
}

BIO_METHOD *upstream_bio_method_new(void) {
        return bio_sock_method();
}
