/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * What upstream.c (queries, servers, state), upstream-tls.c (connections)
 * and upstream-plain.c (the plaintext fallback) share. Not a public header.
 *
 * Ownership: the Upstream owns its Servers and every live Query; a Server
 * owns its one Conn. A Query owns one Attempt per server. An Attempt that
 * was written on a connection sits in one of its slots until the answer to
 * its ID arrives or the connection closes; when the query finishes first,
 * the slot keeps the ID reserved with no attempt (abandoned), so a late
 * answer can never be taken for another query's.
 *
 * Re-entrancy: a query's callback runs only from a connection's io
 * handler, a query's timer, the fallback's handlers or upstream_free(). Work
 * that would finish a query or close a connection from inside
 * upstream_resolve() is deferred to a timer set to "now" instead.
 */

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "upstream/upstream.h"

/* The timers (hedging, back-off, ...) are in timeouts.h, through upstream.h. */
/* TCP frame: two bytes of length, then the message (RFC 1035 4.2.2). */
#define TCP_LENGTH_SIZE 2u
#define FRAME_MAX (TCP_LENGTH_SIZE + 65535u)
/* RFC 8467 4.1: queries padded to a multiple of 128 bytes. */
#define PADDING_BLOCK 128u
#define EDNS_OPTION_HEADER_SIZE 4u
#define ATTEMPT_ERROR_MAX 160

typedef struct Server Server;
typedef struct Conn Conn;
typedef struct Query Query;
typedef struct Plain Plain;

/* Why a server or an attempt failed; picks the EDE. */
typedef enum FailKind {
        FAIL_NONE,
        FAIL_TIMEOUT,     /* silent: EDE 22 */
        FAIL_UNREACHABLE, /* refused, no route, reset before TLS: EDE 22 */
        FAIL_LOST,        /* an established connection closed with the query in flight */
        FAIL_TLS,         /* handshake, certificate, name or pin: EDE 23 */
        FAIL_PROTOCOL,    /* an answer that breaks the protocol: EDE 23 */
        FAIL_BACKOFF,     /* not tried: the server is in back-off */
} FailKind;

typedef enum AttemptState {
        ATTEMPT_NONE,    /* this server not tried by this query (yet) */
        ATTEMPT_WAITING, /* queued on the server's connection */
        ATTEMPT_SENT,    /* written; holds a slot */
        ATTEMPT_FAILED,
} AttemptState;

typedef struct Attempt {
        Query *query;
        Server *server;
        Conn *conn;
        AttemptState state;
        struct Attempt *wait_prev, *wait_next;
        unsigned slot;
        uint64_t started;  /* handed to the server: hedge and timeout count from here */
        uint64_t sent;     /* written on an established connection (RTT sample); 0 otherwise */
        uint64_t hedge_at; /* 0: not computed yet (the connection is still opening) */
        uint64_t deadline;
        bool hedged;
        FailKind fail;
        char error[ATTEMPT_ERROR_MAX];
} Attempt;

struct Query {
        Upstream *u;
        Query *prev, *next;
        uint8_t *wire; /* padded, for DoT */
        size_t wire_len;
        uint8_t *orig; /* as the client sent it, for the fallback and errors */
        size_t orig_len;
        uint16_t client_id;
        size_t qoff, qlen; /* the question, the same in both */
        upstream_done_fn done;
        void *userdata;
        Server *probe; /* a background probe of this server: no failover */
        unsigned probe_epoch;
        sd_event_source *timer;
        bool final_pending; /* every DoT server failed: fall back or fail from the timer */
        bool lost_retry;    /* the one retry on a server whose connection dropped it was used */
        Plain *plain;
        size_t n_attempts;
        Attempt attempts[];
};

typedef struct Slot {
        Attempt *attempt; /* NULL: free, or abandoned while used */
        uint64_t abandoned; /* an abandoned query's start: still owed an answer */
        uint16_t id;
        bool used;
} Slot;

typedef enum ConnState {
        CONN_CONNECTING, /* TCP */
        CONN_HANDSHAKE,
        CONN_READY,
} ConnState;

struct Conn {
        Server *server;
        int fd;
        SSL *ssl;
        sd_event_source *io, *timer;
        ConnState state;
        uint64_t opened, connected, ready, last_rx;
        Slot slots[UPSTREAM_INFLIGHT_MAX];
        unsigned n_used;
        Attempt *wait_head, *wait_tail;
        uint8_t *out; /* frames not yet handed to SSL_write */
        size_t out_len, out_cap;
        size_t out_retry; /* length of an SSL_write to repeat, 0 if none */
        bool write_wants_read, read_wants_write;
        bool rx_drained; /* the last recv() left the socket empty */
        uint64_t rx_bytes; /* received in all */
        uint8_t *in; /* FRAME_MAX bytes */
        size_t in_len;
        /* A failure noticed where the connection cannot be closed (inside a
         * callback chain): closed from the timer, at once. */
        FailKind pending_fail;
        int pending_errno;
        char pending_error[ATTEMPT_ERROR_MAX];
};

struct Server {
        Upstream *u;
        unsigned index;
        UpstreamServer cfg;
        char label[UPSTREAM_TLS_NAME_MAX + 80]; /* "dns.quad9.net (9.9.9.9:853)" */
        char address[64];
        UpstreamServerState state;
        unsigned failures;
        unsigned fail_epoch; /* bumped by every upstream_server_failed() */
        uint64_t backoff_until, last_change, suspect_until, last_probe, failed_at;
        uint64_t srtt, rttvar; /* 0: not measured */
        FailKind last_fail;
        int last_errno;
        char last_error[UPSTREAM_ERROR_MAX];
        SSL_SESSION *session;
        Conn *conn;
        sd_event_source *probe_timer;
        Query *probe;
        uint64_t n_sent, n_answers, n_connections, n_resumed, n_failures;
};

/* A log line printed at most once per FALLBACK_LOG_INTERVAL_USEC; the
 * ones held back are counted and reported by the timer. */
typedef struct RateLog {
        const char *priority, *line;
        uint64_t last;
        unsigned suppressed;
        sd_event_source *timer;
} RateLog;

struct Upstream {
        sd_event *event;
        SSL_CTX *ctx;
        BIO_METHOD *bio_method;
        Server *servers;
        size_t n_servers;
        uint8_t pins[UPSTREAM_PINS_MAX][32];
        size_t n_pins;
        uint64_t timeout_usec, idle_timeout_usec;
        UpstreamShared *shared;
        bool allow_plaintext_fallback;
        struct sockaddr_storage fallback[UPSTREAM_FALLBACK_MAX];
        size_t n_fallback;
        Query *queries;
        unsigned n_queries_live;
        bool freeing;
        /* Query IDs, 128 to a getrandom() call. */
        uint8_t random_pool[256];
        size_t random_left;
        uint64_t n_queries, n_answered, n_servfail, n_fallback_used;
        RateLog log_no_fallback, log_fallback;
};

/* upstream.c */
__attribute__((format(printf, 3, 4))) void upstream_format(char *buf, size_t len, const char *fmt, ...);
uint64_t upstream_now(const Upstream *u);
uint16_t upstream_random16(Upstream *u);
uint64_t upstream_server_hedge_delay(const Server *s);
void upstream_server_rtt_sample(Server *s, uint64_t rtt);
void upstream_server_failed(Server *s, FailKind kind, int err, const char *msg);
void upstream_server_answered(Server *s);
void upstream_attempt_fail(Attempt *a, FailKind kind, const char *msg);
void upstream_attempt_answered(Attempt *a, uint8_t *msg, size_t len);
void upstream_query_complete(Query *q, uint8_t *msg, size_t len);
void upstream_query_fail(Query *q, int ede_code, const char *text);
/* Why every DoT server failed, server by server; returns the EDE code. */
int upstream_query_failure(const Query *q, char *buf, size_t len);
int upstream_query_rearm(Query *q);
/* The query with RFC 8467 padding, in a new buffer (for the unit tests). */
int upstream_pad_query(const uint8_t *msg, size_t len, uint8_t **ret, size_t *ret_len);
bool upstream_answer_matches(const Query *q, const uint8_t *msg, size_t len);

/* upstream-tls.c */
int upstream_tls_ctx_new(const UpstreamConfig *c, SSL_CTX **ret);
int upstream_pin_decode(const char *b64, uint8_t ret[32]);
BIO_METHOD *upstream_bio_method_new(void);
int dot_conn_enqueue(Server *s, Attempt *a);
void dot_conn_dequeue(Attempt *a);
Conn *dot_conn_free(Conn *c);
void dot_conn_close(Conn *c, FailKind kind, const char *msg);
/* FAIL_TIMEOUT of a silent server, from a query's timer. */
bool dot_conn_silent_since(const Conn *c, uint64_t t);

/* upstream-plain.c */
void upstream_plain_start(Query *q);
Plain *upstream_plain_free(Plain *p);
void upstream_plain_timeout(Query *q);
uint64_t upstream_plain_deadline(const Query *q);

