/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The connection side of the upstream: one DNS-over-TLS connection
 * (upstream-tls.c) and one query's plaintext fallback (upstream-plain.c).
 *
 * They know nothing of servers' health, of failover or of the queries
 * they carry: they send what they are handed, match answers to it, and
 * report what happened upward through callbacks (systemd's DnsStream
 * on_packet/complete is the model). The server-health code (upstream.c)
 * owns them and alone decides what an event means: whether a server has
 * failed, what a query does next. Nothing here calls upstream.c, and this
 * header includes nothing of it.
 *
 * Re-entrancy: a callback may hand the connection more to send and may
 * close other connections; on_failed must close its own connection
 * (dot_conn_close()), and the connection touches nothing of itself after
 * that callback returns.
 */

#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "macro.h"
#include "common/dns-wire.h"
#include "common/time-util.h"

/* TCP frame: two bytes of length, then the message (RFC 1035 4.2.2). */
#define TCP_LENGTH_SIZE 2u
#define FRAME_MAX (TCP_LENGTH_SIZE + 65535u)
/* The longest reason an event carries. */
#define ATTEMPT_ERROR_MAX 160
/* Queries in flight on one connection (the rest wait). */
#define DOT_INFLIGHT_MAX 100

/* What went wrong, as a connection sees it; upstream.c picks the EDE. */
typedef enum FailKind {
        FAIL_NONE,        /* nothing: closed while idle */
        FAIL_TIMEOUT,     /* silent: EDE 22 */
        FAIL_UNREACHABLE, /* refused, no route, reset before TLS: EDE 22 */
        FAIL_LOST,        /* an established connection closed with the query in flight */
        FAIL_TLS,         /* handshake, certificate, name or pin: EDE 23 */
        FAIL_PROTOCOL,    /* an answer that breaks the protocol: EDE 23 */
        FAIL_BACKOFF,     /* not tried: the server is in back-off */
} FailKind;

/* ---- helpers both connections and their owner use ---- */

/* snprintf() for texts that may be cut on purpose (a server label in a
 * fixed-size reason): -Wformat-truncation cannot see through it. */
__attribute__((format(printf, 3, 4))) static inline void upstream_format(char *buf, size_t len, const char *fmt,
                                                                          ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(buf, len, fmt, ap);
        va_end(ap);
}

/* The loop's time (CLOCK_MONOTONIC usec), or the clock's before the loop
 * first ran. */
static inline uint64_t upstream_clock_now(sd_event *e) {
        uint64_t now;

        if (sd_event_now(e, CLOCK_MONOTONIC, &now) < 0)
                now = clock_now_usec(CLOCK_MONOTONIC);
        return now;
}

/* Whether the answer's question is `question` (qlen bytes: name, type,
 * class): the name compared ASCII case-insensitively (a server may echo
 * another case, RFC 4343), type and class exactly. */
static inline bool upstream_question_matches(const uint8_t *question, size_t qlen, const uint8_t *msg,
                                             size_t len) {
        uint16_t id;
        size_t qoff, alen;
        const uint8_t *a;

        if (dns_wire_question_span(msg, len, &id, &qoff, &alen) < 0 || alen != qlen || qlen < 4)
                return false;
        a = msg + qoff;
        for (size_t i = 0; i < qlen - 4; i++)
                if (ascii_tolower((char) a[i]) != ascii_tolower((char) question[i]))
                        return false;
        return memcmp(a + qlen - 4, question + qlen - 4, 4) == 0;
}

/* ---- one DNS-over-TLS connection (upstream-tls.c) ---- */

typedef struct DotConn DotConn;

typedef enum DotRequestState {
        DOT_REQUEST_NONE,    /* on no connection */
        DOT_REQUEST_WAITING, /* queued until the connection is ready and a slot is free */
        DOT_REQUEST_SENT,    /* written; holds a slot (an ID) */
} DotRequestState;

/* One query handed to a connection. It lives in its owner's memory (an
 * attempt); the owner sets the first four fields, the connection the rest. */
typedef struct DotRequest {
        const uint8_t *wire; /* the message to send; the connection puts its own ID in */
        size_t wire_len;
        const uint8_t *question; /* name, type and class an answer must carry */
        size_t question_len;
        uint64_t started; /* handed over: an abandoned request is still owed from here */

        DotConn *conn;
        DotRequestState state;
        struct DotRequest *wait_prev, *wait_next;
        unsigned slot;
        uint64_t sent; /* written on a ready connection (an RTT sample); 0 otherwise */
} DotRequest;

/* Events, each with the peer's userdata. */
typedef struct DotConnCallbacks {
        /* TCP is up, after `rtt` usec; the TLS handshake starts. */
        void (*on_connected)(DotConn *c, uint64_t rtt, void *userdata);
        /* The handshake is done (certificate, name and pins verified): the
         * waiting requests go out now. */
        void (*on_ready)(DotConn *c, void *userdata);
        /* An answer carrying a request's ID and question. `r` is off the
         * connection already, or NULL when its request was abandoned
         * (dot_conn_dequeue()): the server answered, too late. */
        void (*on_answer)(DotConn *c, DotRequest *r, uint8_t *msg, size_t len, void *userdata);
        /* The connection cannot go on: it timed out opening or went silent
         * (FAIL_TIMEOUT, "connecting to ... timed out", "TLS handshake with
         * ... timed out", "no answer from ... within ..."), could not connect
         * (FAIL_UNREACHABLE), failed TLS (FAIL_TLS), got a broken answer
         * (FAIL_PROTOCOL), closed or broke with queries in flight
         * (FAIL_LOST), or closed while idle (FAIL_NONE). The owner decides
         * what that means and closes the connection before returning. */
        void (*on_failed)(DotConn *c, FailKind kind, int err, const char *why, void *userdata);
        /* From dot_conn_close(): a request that was on the connection, off
         * it now, with the kind and reason it was closed with. */
        void (*on_request_closed)(DotRequest *r, FailKind kind, const char *why, void *userdata);
} DotConnCallbacks;

/* Query IDs, 128 to a getrandom() call. */
typedef struct DotRandom {
        uint8_t pool[256];
        size_t left;
} DotRandom;

/* What connections need of their server: set by the owner, which keeps it
 * for as long as any connection to the server lives. */
typedef struct DotPeer {
        sd_event *event;
        SSL_CTX *ctx;
        BIO_METHOD *bio_method;
        const struct sockaddr_storage *addr;
        socklen_t addrlen;
        const char *tls_name; /* "": the certificate must name the address */
        const char *address;  /* "9.9.9.9:853" */
        const char *label;    /* "dns.quad9.net (9.9.9.9:853)" */
        const uint8_t (*pins)[32];
        size_t n_pins;
        /* T (timeouts.h): a connection not ready within T of opening has
         * timed out, and one owing abandoned queries goes silent T after
         * the oldest was sent. */
        uint64_t timeout_usec;
        uint64_t idle_timeout_usec;
        DotRandom *random;
        const DotConnCallbacks *callbacks;
        void *userdata;
        /* Kept by the connections, from one to the next: the session to
         * resume, and counters. */
        SSL_SESSION *session;
        uint64_t n_sent, n_connections, n_resumed;
} DotPeer;

int upstream_tls_ctx_new(const char *ca_file, SSL_CTX **ret);
BIO_METHOD *upstream_bio_method_new(void);
int upstream_pin_decode(const char *b64, uint8_t ret[32]);

/* Opens a connection (non-blocking; the outcome comes as events), `now`
 * being its start: the open deadline is now + T. */
int dot_conn_new(DotPeer *peer, uint64_t now, DotConn **ret);
/* Queues `r` (its first four fields set) and sends it when it can. */
void dot_conn_enqueue(DotConn *c, DotRequest *r);
/* Takes `r` off its connection, if on one: a request already written
 * keeps its ID taken until its answer comes (abandoned). */
void dot_conn_dequeue(DotRequest *r);
/* Closes and frees the connection; the requests on it are reported by
 * on_request_closed with `kind`/`why`. */
void dot_conn_close(DotConn *c, FailKind kind, const char *why);
/* Frees it without an event. NULL-safe, returns NULL. */
DotConn *dot_conn_free(DotConn *c);
bool dot_conn_ready(const DotConn *c);
unsigned dot_conn_inflight(const DotConn *c);
/* Nothing at all came back since `t`. */
bool dot_conn_silent_since(const DotConn *c, uint64_t t);
/* The first request waiting for the connection (then ->wait_next). */
DotRequest *dot_conn_waiting(const DotConn *c);

/* ---- one query's plaintext fallback (upstream-plain.c) ---- */

typedef struct Plain Plain;

typedef struct PlainCallbacks {
        /* The answer to the query (`msg` is the exchange's, valid until
         * upstream_plain_free()). */
        void (*on_answer)(void *userdata, uint8_t *msg, size_t len);
        /* Every server was tried: what each did, "; " between them. */
        void (*on_failed)(void *userdata, const char *errors);
        /* upstream_plain_deadline() changed. */
        void (*on_deadline)(void *userdata);
} PlainCallbacks;

typedef struct PlainConfig {
        sd_event *event;
        const struct sockaddr_storage *servers; /* kept, as the query and its question */
        size_t n_servers;
        uint64_t timeout_usec; /* T, per server and transport */
        const uint8_t *query;  /* as the client sent it */
        size_t query_len;
        const uint8_t *question;
        size_t question_len;
} PlainConfig;

/* NULL when out of memory. Nothing is sent before upstream_plain_start(). */
Plain *upstream_plain_new(const PlainConfig *c, const PlainCallbacks *cb, void *userdata);
/* Sends to the first server that takes it, or reports on_failed. */
void upstream_plain_start(Plain *p);
Plain *upstream_plain_free(Plain *p);
/* When the server being asked has had its time; the owner's timer calls
 * upstream_plain_timeout() then. */
uint64_t upstream_plain_deadline(const Plain *p);
void upstream_plain_timeout(Plain *p);
