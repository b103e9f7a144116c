/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The upstream resolver: forwards the queries ztnad does not answer itself
 * to DNS-over-TLS servers (RFC 7858), and, only when allowed, to plaintext
 * DNS servers after every DoT server failed.
 *
 * - Single-threaded: one Upstream per sd-event loop; every call and every
 *   callback happens on that loop.
 * - DoT servers are used in order. The certificate chain and the server's
 *   name (or its address when it has no name) are verified, TLS >= 1.2, and
 *   the SPKI pins, when there are any, are checked after the handshake. A
 *   failed verification is a failure of that server: there is no retry
 *   without verification.
 * - One persistent connection per server, reused and pipelined (at most
 *   UPSTREAM_INFLIGHT_MAX queries in flight, the rest wait), closed after
 *   idle_timeout_usec without queries. Each query gets an ID unique on its
 *   connection; an answer must match that ID and the question. TLS sessions
 *   are resumed. Queries are padded to a multiple of 128 bytes (RFC 8467).
 * - A server that does not answer within a delay derived from its measured
 *   round-trip time (RFC 6298 SRTT/RTTVAR, at least 100 ms) makes the query
 *   go to the next server too; the first answer wins. A query is given up on
 *   a server after timeout_usec. A connection that dies with queries in
 *   flight has them sent again elsewhere.
 * - A server whose connection cannot be made, whose handshake fails, or that
 *   stays silent for timeout_usec is marked failed and skipped for a back-off
 *   of 1 s doubling to 60 s; it is probed in the background (". NS") when
 *   the back-off ends, not with users' queries. While every DoT server is in
 *   back-off, queries fail (or fall back) at once.
 * - Every query is answered: by the upstream's answer, or by a SERVFAIL with
 *   an Extended DNS Error (RFC 8914) saying why.
 * - Logs to stderr with sd-daemon priority prefixes: one line per change of
 *   a server's state, never one per query; the "plaintext fallback disabled"
 *   line at most once per few seconds, with a count.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "common/dns-wire.h"
#include "macro.h"
#include "common/timeouts.h" /* how T relates to the rest */

#define UPSTREAM_SERVERS_MAX 16
#define UPSTREAM_FALLBACK_MAX 16
#define UPSTREAM_PINS_MAX 16
#define UPSTREAM_TLS_NAME_MAX 256
#define UPSTREAM_INFLIGHT_MAX 100
#define UPSTREAM_ERROR_MAX 256

typedef struct UpstreamServer {
        struct sockaddr_storage addr; /* AF_INET or AF_INET6, with the port (853) */
        socklen_t addrlen;
        char tls_name[UPSTREAM_TLS_NAME_MAX]; /* "": the certificate must name the address */
} UpstreamServer;

/* Server health shared by several upstreams (one per thread): a server one
 * of them found dead (or slow) is skipped (or asked last) by the others
 * too, so no thread's users wait on it again. Entry i is about server i:
 * CLOCK_MONOTONIC usec, 0 for none (failed_until: UINT64_MAX until the
 * upstream that found it dead sees it back), read and written atomically. */
typedef struct UpstreamShared {
        uint64_t failed_until[UPSTREAM_SERVERS_MAX];
        uint64_t suspect_until[UPSTREAM_SERVERS_MAX]; /* slow lately: others first */
        uint64_t srtt[UPSTREAM_SERVERS_MAX], rttvar[UPSTREAM_SERVERS_MAX]; /* usec: for one yet to measure */
} UpstreamShared;

typedef struct UpstreamConfig {
        /* In order of preference; at least one (the defaults are the
         * configuration's key table's, not this module's). */
        const UpstreamServer *servers;
        size_t n_servers;
        const char *tls_ca_file; /* PEM bundle; NULL: the system's store */
        /* base64 of the SHA-256 of a SubjectPublicKeyInfo (RFC 7469 pin
         * format); a server passes when any certificate of its verified
         * chain matches any pin. None: no pinning. */
        const char *const *spki_pins;
        size_t n_spki_pins;
        uint64_t timeout_usec;      /* T, per server; > 0: the upstream_timeout key's value */
        uint64_t idle_timeout_usec; /* 0: UPSTREAM_IDLE_TIMEOUT_USEC_DEFAULT */
        UpstreamShared *shared;     /* NULL: this upstream's own judgement only */
        bool allow_plaintext_fallback;
        /* Plaintext servers, port included (resolvconf.h finds them): never
         * ztnad's own listen addresses. At least one when
         * allow_plaintext_fallback is set. */
        const struct sockaddr_storage *fallback;
        size_t n_fallback;
} UpstreamConfig;

/*
 * Called exactly once per upstream_resolve(), always from the event loop,
 * never from inside upstream_resolve().
 *
 * On an answer: `answer` is the server's message as received, with the
 * client's ID put back; rcode is its RCODE, ede_code -1 and ede_text NULL.
 * It may carry an OPT record the query did not have (padding added one) and
 * be larger than the client accepts: the stub passes it through
 * dns_wire_adapt_answer(). On failure: `answer` is a SERVFAIL for the query
 * made by dns_wire_error_response() (NULL and 0 only if even that failed),
 * rcode is DNS_RCODE_SERVFAIL, ede_code the RFC 8914 code and ede_text the
 * reason. `answer` is only valid during the call. The callback may call
 * upstream_resolve() but must not free the Upstream.
 */
typedef void (*upstream_done_fn)(void *userdata, const uint8_t *answer, size_t len, uint16_t rcode, int ede_code,
                                 const char *ede_text);

typedef struct Upstream Upstream;

/* Copies the configuration. Returns 0, -EINVAL (timeout_usec 0; a bad
 * address, pin or count: logged), -EIO (the CA file cannot be loaded; logged) or -ENOMEM.
 * Connects to nothing yet. */
int upstream_new(sd_event *e, const UpstreamConfig *c, Upstream **ret);
/* NULL-safe, returns NULL. Queries still outstanding are answered with a
 * SERVFAIL first (EDE "Other", "shutting down"). */
Upstream *upstream_free(Upstream *u);

/* The longest an upstream made from `c` (timeout_usec set) takes to finish
 * a query, answer or SERVFAIL (timeouts.h says why): whoever waits for it,
 * the stub, should wait at least this long. */
uint64_t upstream_max_duration_usec(const UpstreamConfig *c);

/* Forwards one query (a DNS message, QR clear, exactly one question).
 * Returns 0 when `done` will be called, -EBADMSG for a message that is not
 * such a query, -ENOMEM; `done` is not called on failure. The query is
 * copied. */
int upstream_resolve(Upstream *u, const uint8_t *query, size_t len, upstream_done_fn done, void *userdata);

typedef enum UpstreamServerState {
        UPSTREAM_SERVER_UNKNOWN, /* not used yet */
        UPSTREAM_SERVER_UP,
        UPSTREAM_SERVER_FAILED, /* skipped until backoff_until_usec, then probed */
} UpstreamServerState;

const char *upstream_server_state_to_string(UpstreamServerState s);

/* Times are CLOCK_MONOTONIC microseconds as sd_event_now() gives them; 0
 * means never or unknown. */
typedef struct UpstreamServerStatus {
        char address[64];                   /* "9.9.9.9:853", "[2620:fe::fe]:853" */
        char tls_name[UPSTREAM_TLS_NAME_MAX];
        UpstreamServerState state;
        bool connected;                     /* a connection is open or opening */
        uint64_t srtt_usec, rttvar_usec;    /* 0 until measured */
        unsigned consecutive_failures;
        uint64_t backoff_until_usec;        /* when the next probe is due, while failed */
        uint64_t last_change_usec;
        int last_errno;                     /* negative, of the last failure; 0 if none */
        char last_error[UPSTREAM_ERROR_MAX]; /* "" if none */
        unsigned inflight;
        uint64_t n_sent, n_answers, n_connections, n_resumed, n_failures;
} UpstreamServerStatus;

typedef struct UpstreamStatus {
        size_t n_servers;
        UpstreamServerStatus servers[UPSTREAM_SERVERS_MAX];
        bool allow_plaintext_fallback;
        uint64_t n_queries, n_answered, n_servfail, n_fallback;
        unsigned pending; /* queries waiting for an answer */
} UpstreamStatus;

void upstream_get_status(const Upstream *u, UpstreamStatus *ret);

/* Whether nothing is under way that could change the status by itself: no
 * query in flight, no connection open, no probe scheduled. */
bool upstream_is_idle(const Upstream *u);

/* RFC 8467 4.1: queries padded to a multiple of 128 bytes. */
#define PADDING_BLOCK 128u
#define EDNS_OPTION_HEADER_SIZE 4u

/* The query `msg` (parsed as `m` by dns_message_parse()) with RFC 8467
 * padding, in a new buffer: upstream_resolve() sends this. Returns 0,
 * -EBADMSG (an OPT record the parse did not find) or -ENOMEM. */
int upstream_pad_query(const uint8_t *msg, size_t len, const DnsMessage *m, uint8_t **ret, size_t *ret_len);

static inline void upstream_freep(Upstream **u) {
        upstream_free(*u);
}
#define _cleanup_upstream_ _cleanup_(upstream_freep)
