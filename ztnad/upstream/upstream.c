/* SPDX-License-Identifier: MIT */
/*
 * The upstream resolver: queries, servers and their state (upstream.h).
 * The connections below it, one DoT connection (upstream-tls.c) and one
 * query's plaintext fallback (upstream-plain.c), report events through
 * callbacks (connection.h); this file alone decides what they mean: when a
 * server has failed, and what a query does next.
 *
 * A query tries the servers in order, one attempt per server. A new
 * attempt starts when the query arrives, when the live one failed, or when
 * the live one has waited longer than its server's hedging delay; each
 * attempt ends at its answer, its failure, or timeout_usec after it started.
 * The first answer finishes the query and abandons the other attempts.
 * When every attempt failed, the query falls back to plaintext (if allowed)
 * or is answered with a SERVFAIL carrying an Extended DNS Error.
 */

#include <assert.h>
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "common/inet-util.h"
#include "common/dns-wire.h"
#include "common/log.h"
#include "common/time-util.h"
#include "upstream/connection.h"
#include "upstream/upstream.h"

_Static_assert(DOT_INFLIGHT_MAX == UPSTREAM_INFLIGHT_MAX, "one limit of queries in flight");

/*
 * Ownership: the Upstream owns its Servers and every live Query; a Server
 * owns its one connection. A Query owns one Attempt per server, and an
 * Attempt its DotRequest, which sits on the server's connection while the
 * attempt is live (connection.h says what happens to it there).
 *
 * Re-entrancy: a query's callback runs only from a connection's event, a
 * query's timer, the fallback's events or upstream_free(). Work that would
 * finish a query or close a connection from inside upstream_resolve() is
 * deferred to a timer set to "now" instead.
 */

typedef struct Server Server;
typedef struct Query Query;

typedef enum AttemptState {
        ATTEMPT_NONE,   /* this server not tried by this query (yet) */
        ATTEMPT_LIVE,   /* handed to the server's connection: waiting or sent */
        ATTEMPT_FAILED, /* or answered */
} AttemptState;

typedef struct Attempt {
        Query *query;
        Server *server;
        DotRequest req; /* req.started: hedge and timeout count from there */
        AttemptState state;
        uint64_t hedge_at;
        uint64_t deadline; /* counts once the connection is ready; until then its open deadline, no later, rules */
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
        DotPeer peer; /* what its connections need; the session and counters they keep */
        DotConn *conn;
        sd_event_source *probe_timer;
        Query *probe;
        uint64_t n_answers, n_failures;
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
        DotRandom random; /* query IDs for every connection */
        uint64_t n_queries, n_answered, n_servfail, n_fallback_used;
        RateLog log_no_fallback, log_fallback;
};

static Attempt *attempt_of(DotRequest *r) {
        return (Attempt *) ((char *) r - offsetof(Attempt, req));
}

/* An error response: header, question (a name of at most 255 bytes and
 * four), an OPT record with an EDE option and its text. */
#define ERROR_RESPONSE_MAX 1024u

/* ". IN NS", RD set: what a background probe asks. The ID is replaced. */
static const uint8_t probe_query[] = {
        0x00, 0x00, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, /* header */
        0x00, 0x00, DNS_TYPE_NS, 0x00, DNS_CLASS_IN,                            /* question */
};

static uint64_t upstream_now(const Upstream *u) {
        return upstream_clock_now(u->event);
}

bool upstream_is_idle(const Upstream *u) {
        int enabled = SD_EVENT_OFF;

        if (u->n_queries_live > 0)
                return false;
        for (size_t i = 0; i < u->n_servers; i++) {
                const Server *s = &u->servers[i];

                if (s->conn || s->probe)
                        return false;
                if (s->probe_timer && sd_event_source_get_enabled(s->probe_timer, &enabled) >= 0 &&
                    enabled != SD_EVENT_OFF)
                        return false;
        }
        return true;
}

const char *upstream_server_state_to_string(UpstreamServerState s) {
        switch (s) {
        case UPSTREAM_SERVER_UNKNOWN:
                return "unknown";
        case UPSTREAM_SERVER_UP:
                return "up";
        case UPSTREAM_SERVER_FAILED:
                return "failed";
        }
        return "?";
}

static void format_delay(char *buf, size_t len, uint64_t usec) {
        if (usec >= USEC_PER_SEC)
                upstream_format(buf, len, "%" PRIu64 " s", (usec + USEC_PER_SEC / 2) / USEC_PER_SEC);
        else
                upstream_format(buf, len, "%" PRIu64 " ms", (usec + USEC_PER_MSEC / 2) / USEC_PER_MSEC);
}

/* ---- rate-limited log lines ---- */

static int on_rate_log_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        RateLog *l = userdata;

        (void) es;
        if (l->suppressed > 0) {
                log_line(l->priority, "%s (%u more times in the last %" PRIu64 " s)", l->line, l->suppressed,
                         FALLBACK_LOG_INTERVAL_USEC / USEC_PER_SEC);
                l->suppressed = 0;
                l->last = usec;
        }
        return 0;
}

static void rate_log(Upstream *u, RateLog *l) {
        uint64_t now = upstream_now(u);

        if (l->last != 0 && now - l->last < FALLBACK_LOG_INTERVAL_USEC) {
                if (l->suppressed++ == 0 && l->timer &&
                    sd_event_source_set_time(l->timer, l->last + FALLBACK_LOG_INTERVAL_USEC) >= 0)
                        (void) sd_event_source_set_enabled(l->timer, SD_EVENT_ONESHOT);
                return;
        }
        log_line(l->priority, "%s", l->line);
        l->last = now;
}

/* ---- servers ---- */

static uint64_t upstream_server_hedge_delay(const Server *s) {
        const UpstreamShared *sh = s->u->shared;
        uint64_t d, srtt = s->srtt, rttvar = s->rttvar;

        /* Not measured here yet: another thread's measurement beats a guess. */
        if (srtt == 0 && sh && s->index < UPSTREAM_SERVERS_MAX) {
                srtt = __atomic_load_n(&sh->srtt[s->index], __ATOMIC_RELAXED);
                rttvar = __atomic_load_n(&sh->rttvar[s->index], __ATOMIC_RELAXED);
        }
        if (srtt == 0)
                d = HEDGE_INITIAL_USEC;
        else
                d = srtt + 4 * rttvar;
        if (d < HEDGE_MIN_USEC)
                d = HEDGE_MIN_USEC;
        if (d > s->u->timeout_usec)
                d = s->u->timeout_usec;
        return d;
}

static void upstream_server_share_rtt(const Server *s) {
        if (s->u->shared && s->index < UPSTREAM_SERVERS_MAX) {
                __atomic_store_n(&s->u->shared->srtt[s->index], s->srtt, __ATOMIC_RELAXED);
                __atomic_store_n(&s->u->shared->rttvar[s->index], s->rttvar, __ATOMIC_RELAXED);
        }
}

/* RFC 6298 2.2 and 2.3, alpha 1/8, beta 1/4. */
static void upstream_server_rtt_sample(Server *s, uint64_t r) {
        if (r == 0)
                r = 1;
        if (s->srtt == 0) {
                s->srtt = r;
                s->rttvar = r / 2;
                upstream_server_share_rtt(s);
                return;
        }
        s->rttvar = (3 * s->rttvar + (s->srtt > r ? s->srtt - r : r - s->srtt)) / 4;
        s->srtt = (7 * s->srtt + r) / 8;
        if (s->srtt == 0)
                s->srtt = 1;
        upstream_server_share_rtt(s);
}

static int on_probe_timer(sd_event_source *es, uint64_t usec, void *userdata);

static void upstream_server_arm_probe(Server *s, uint64_t when) {
        if (!s->probe_timer &&
            sd_event_add_time(s->u->event, &s->probe_timer, CLOCK_MONOTONIC, when, TIMER_ACCURACY_USEC * 10,
                              on_probe_timer, s) < 0) {
                log_line(SD_ERR, "cannot set up a probe timer for %s", s->label);
                return;
        }
        if (sd_event_source_set_time(s->probe_timer, when) < 0 ||
            sd_event_source_set_enabled(s->probe_timer, SD_EVENT_ONESHOT) < 0)
                log_line(SD_ERR, "cannot arm the probe timer for %s", s->label);
}

/* Takes the connection from the server (a new one may be opened while its
 * requests are reported) and closes it. */
static void upstream_server_close_conn(Server *s, FailKind kind, const char *msg) {
        DotConn *c = TAKE_PTR(s->conn);

        if (c)
                dot_conn_close(c, kind, msg);
}

static void upstream_server_failed(Server *s, FailKind kind, int err, const char *msg) {
        Upstream *u = s->u;
        uint64_t now = upstream_now(u), backoff;
        unsigned shift;
        char delay[32];
        bool changed = s->state != UPSTREAM_SERVER_FAILED || strcmp(s->last_error, msg) != 0;

        s->failures++;
        s->fail_epoch++;
        s->n_failures++;
        shift = s->failures - 1 < 6 ? s->failures - 1 : 6;
        backoff = BACKOFF_FIRST_USEC << shift;
        if (backoff > BACKOFF_MAX_USEC)
                backoff = BACKOFF_MAX_USEC;
        s->backoff_until = now + backoff;
        s->failed_at = now;
        s->last_fail = kind;
        s->last_errno = err;
        upstream_format(s->last_error, sizeof s->last_error, "%s", msg);
        if (s->state != UPSTREAM_SERVER_FAILED)
                s->last_change = now;
        s->state = UPSTREAM_SERVER_FAILED;
        s->suspect_until = 0;
        if (changed && !u->freeing) {
                format_delay(delay, sizeof delay, backoff);
                log_line(SD_WARNING, "DNS-over-TLS server %s failed: %s; next try in %s", s->label, msg, delay);
        }
        upstream_server_arm_probe(s, s->backoff_until);
        /* Failed until the probe of the upstream that found it so says it
         * is back, not merely until this back-off ends. */
        if (u->shared && s->index < UPSTREAM_SERVERS_MAX)
                __atomic_store_n(&u->shared->failed_until[s->index], UINT64_MAX, __ATOMIC_RELAXED);
        upstream_server_close_conn(s, kind, msg);
}

static void upstream_server_answered(Server *s) {
        s->n_answers++;
        s->suspect_until = 0;
        if (s->u->shared && s->index < UPSTREAM_SERVERS_MAX)
                __atomic_store_n(&s->u->shared->suspect_until[s->index], 0, __ATOMIC_RELAXED);
        if (s->state == UPSTREAM_SERVER_UP)
                return;
        if (s->state == UPSTREAM_SERVER_FAILED)
                log_line(SD_NOTICE, "DNS-over-TLS server %s is back after %u failed attempts", s->label,
                         s->failures);
        else
                log_line(SD_INFO, "DNS-over-TLS server %s is up", s->label);
        s->state = UPSTREAM_SERVER_UP;
        s->failures = 0;
        s->backoff_until = 0;
        if (s->u->shared && s->index < UPSTREAM_SERVERS_MAX)
                __atomic_store_n(&s->u->shared->failed_until[s->index], 0, __ATOMIC_RELAXED);
        s->last_change = upstream_now(s->u);
        if (s->probe_timer)
                (void) sd_event_source_set_enabled(s->probe_timer, SD_EVENT_OFF);
}

static bool upstream_server_usable(const Server *s) {
        if (s->state == UPSTREAM_SERVER_FAILED)
                return false;
        /* Found dead by another thread's upstream: skipped here too; that
         * one probes it and clears the mark when it is back. */
        const UpstreamShared *sh = s->u->shared;
        return !sh || s->index >= UPSTREAM_SERVERS_MAX ||
               __atomic_load_n(&sh->failed_until[s->index], __ATOMIC_RELAXED) <= upstream_now(s->u);
}

/* ---- queries ---- */

static Query *upstream_query_free(Query *q) {
        Upstream *u;

        if (!q)
                return NULL;
        u = q->u;
        for (size_t i = 0; i < q->n_attempts; i++)
                dot_conn_dequeue(&q->attempts[i].req);
        if (q->prev)
                q->prev->next = q->next;
        else if (u->queries == q)
                u->queries = q->next;
        if (q->next)
                q->next->prev = q->prev;
        if (q->probe && q->probe->probe == q)
                q->probe->probe = NULL;
        else if (!q->probe)
                u->n_queries_live--;
        upstream_plain_free(q->plain);
        sd_event_source_disable_unref(q->timer);
        free(q->wire);
        free(q->orig);
        free(q);
        return NULL;
}

static unsigned upstream_query_live(const Query *q) {
        unsigned n = 0;

        for (size_t i = 0; i < q->n_attempts; i++)
                n += q->attempts[i].state == ATTEMPT_LIVE;
        return n;
}

/* The query's timer at its next hedge or deadline, the fallback's
 * deadline, or at once for the final step. */
static int upstream_query_rearm(Query *q) {
        uint64_t next = UINT64_MAX;
        int r;

        if (q->final_pending)
                next = 1; /* in the past: at once */
        else if (q->plain)
                next = upstream_plain_deadline(q->plain);
        else
                for (size_t i = 0; i < q->n_attempts; i++) {
                        const Attempt *a = &q->attempts[i];

                        if (a->state != ATTEMPT_LIVE)
                                continue;
                        if (!a->hedged && !q->probe && a->hedge_at < next)
                                next = a->hedge_at;
                        /* Not before its connection is ready (on_conn_ready
                         * rearms): until then the connection's open
                         * deadline, no later than this one, decides. */
                        if (a->deadline < next && dot_conn_ready(a->req.conn))
                                next = a->deadline;
                }
        if (next == UINT64_MAX)
                return sd_event_source_set_enabled(q->timer, SD_EVENT_OFF);
        r = sd_event_source_set_time(q->timer, next);
        if (r >= 0)
                r = sd_event_source_set_enabled(q->timer, SD_EVENT_ONESHOT);
        return r;
}

static int upstream_attempt_start(Query *q, Attempt *a) {
        Server *s = a->server;
        uint64_t now = upstream_now(q->u);
        int r;

        a->req = (DotRequest) {
                .wire = q->wire,
                .wire_len = q->wire_len,
                .question = q->orig + q->qoff,
                .question_len = q->qlen,
                .started = now,
        };
        a->deadline = now + q->u->timeout_usec;
        a->hedge_at = now + upstream_server_hedge_delay(s);
        a->hedged = false;
        a->fail = FAIL_NONE;
        a->error[0] = '\0';
        /* `now` opens it too: the connection's open deadline is never
         * later than this attempt's. */
        r = s->conn ? 0 : dot_conn_new(&s->peer, now, &s->conn);
        if (r < 0) {
                a->state = ATTEMPT_FAILED;
                a->fail = FAIL_UNREACHABLE;
                upstream_format(a->error, sizeof a->error, "%s: %s", s->label, strerror(-r));
                return r;
        }
        a->state = ATTEMPT_LIVE;
        dot_conn_enqueue(s->conn, &a->req);
        /* A connection still to be opened costs two more round trips
         * (TCP, then TLS 1.3) before the query's own. */
        if (!dot_conn_ready(a->req.conn) && a->hedge_at + 2 * s->srtt < a->deadline)
                a->hedge_at += 2 * s->srtt;
        (void) upstream_query_rearm(q);
        return 0;
}

static bool upstream_server_suspect(const Server *s, uint64_t now) {
        const UpstreamShared *sh = s->u->shared;
        return s->suspect_until > now ||
               (sh && s->index < UPSTREAM_SERVERS_MAX &&
                __atomic_load_n(&sh->suspect_until[s->index], __ATOMIC_RELAXED) > now);
}

static void upstream_server_set_suspect(Server *s, uint64_t until) {
        if (s->suspect_until < until)
                s->suspect_until = until;
        if (s->u->shared && s->index < UPSTREAM_SERVERS_MAX)
                __atomic_store_n(&s->u->shared->suspect_until[s->index], s->suspect_until, __ATOMIC_RELAXED);
}

/* The next server to ask: in order, untried, not in back-off; one that
 * lately dropped or sat on queries only when no other is left. */
static Attempt *upstream_query_pick(Query *q) {
        uint64_t now = upstream_now(q->u);

        for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < q->n_attempts; i++) {
                        Attempt *a = &q->attempts[i];
                        Server *s = a->server;

                        if (a->state != ATTEMPT_NONE)
                                continue;
                        if (q->probe ? s != q->probe : !upstream_server_usable(s))
                                continue;
                        if (pass == 0 && upstream_server_suspect(s, now))
                                continue;
                        return a;
                }
        return NULL;
}

/* While every server is in back-off, a user's query brings the probes
 * forward (not more often than NUDGE_MIN_USEC): a network that came back
 * is noticed at the next query, not at the end of a 60 s back-off. */
static void upstream_nudge(Upstream *u) {
        uint64_t now = upstream_now(u);

        for (size_t i = 0; i < u->n_servers; i++) {
                Server *s = &u->servers[i];

                if (s->state != UPSTREAM_SERVER_FAILED || s->probe || s->backoff_until <= now)
                        continue;
                if (now - s->failed_at < NUDGE_MIN_USEC ||
                    (s->last_probe != 0 && now - s->last_probe < NUDGE_MIN_USEC))
                        continue;
                s->backoff_until = now;
                upstream_server_arm_probe(s, now);
        }
}

static void upstream_query_set_final(Query *q) {
        q->final_pending = true;
        (void) upstream_query_rearm(q);
}

/* Starts the next attempt; when there is none and nothing is in flight,
 * the query's timer finishes it. `one_more`: a hedge, which never ends the
 * query. */
static void upstream_query_advance(Query *q, bool one_more) {
        Attempt *a;

        while ((a = upstream_query_pick(q)))
                if (upstream_attempt_start(q, a) >= 0)
                        return;
        if (one_more || upstream_query_live(q) > 0)
                return;
        /* A connection that dropped the query in flight gets one more go
         * (a server closing an idle connection races with our query). */
        if (!q->lost_retry)
                for (size_t i = 0; i < q->n_attempts; i++) {
                        a = &q->attempts[i];
                        if (a->state == ATTEMPT_FAILED && a->fail == FAIL_LOST && upstream_server_usable(a->server)) {
                                q->lost_retry = true;
                                a->state = ATTEMPT_NONE;
                                if (upstream_attempt_start(q, a) >= 0)
                                        return;
                        }
                }
        if (!q->probe)
                upstream_nudge(q->u);
        upstream_query_set_final(q);
}

static void upstream_attempt_fail(Attempt *a, FailKind kind, const char *msg) {
        Query *q = a->query;

        if (a->state != ATTEMPT_LIVE)
                return;
        dot_conn_dequeue(&a->req);
        a->state = ATTEMPT_FAILED;
        a->fail = kind;
        upstream_format(a->error, sizeof a->error, "%s", msg);
        if (kind == FAIL_LOST)
                upstream_server_set_suspect(a->server, upstream_now(q->u) + SUSPECT_LOST_USEC);
        if (q->u->freeing)
                return;
        if (upstream_query_live(q) == 0)
                upstream_query_advance(q, false);
        else
                (void) upstream_query_rearm(q);
}

static void upstream_query_complete(Query *q, uint8_t *msg, size_t len) {
        Upstream *u = q->u;
        upstream_done_fn done = q->done;
        void *userdata = q->userdata;
        bool probe = q->probe != NULL;
        /* `msg` may be in the fallback's buffer: it goes after the call. */
        Plain *plain = TAKE_PTR(q->plain);
        uint16_t rcode;

        msg[DNS_OFF_ID] = (uint8_t) (q->client_id >> 8);
        msg[DNS_OFF_ID + 1] = (uint8_t) q->client_id;
        rcode = (uint16_t) (msg[DNS_OFF_FLAGS + 1] & DNS_RCODE_MASK);
        upstream_query_free(q);
        if (!probe) {
                u->n_answered++;
                done(userdata, msg, len, rcode, -1, NULL);
        }
        upstream_plain_free(plain);
}

static void upstream_attempt_answered(Attempt *a, uint8_t *msg, size_t len) {
        a->state = ATTEMPT_FAILED; /* no longer live; the query goes now */
        a->fail = FAIL_NONE;
        upstream_query_complete(a->query, msg, len);
}

static void upstream_query_fail(Query *q, int ede_code, const char *text) {
        Upstream *u = q->u;
        upstream_done_fn done = q->done;
        void *userdata = q->userdata;
        uint8_t buf[ERROR_RESPONSE_MAX];
        char copy[DNS_EDE_TEXT_MAX];
        size_t len = 0;
        int r;

        upstream_format(copy, sizeof copy, "%s", text);
        r = dns_wire_error_response(q->orig, q->orig_len, DNS_RCODE_SERVFAIL, ede_code, copy, buf, sizeof buf, &len);
        upstream_query_free(q);
        u->n_servfail++;
        done(userdata, r >= 0 ? buf : NULL, r >= 0 ? len : 0, DNS_RCODE_SERVFAIL, ede_code, copy);
}

/* The reasons, server by server, and the EDE they add up to: 22 "No
 * Reachable Authority" when every server was silent or unreachable, 23
 * "Network Error" when one refused by TLS or broke the protocol. */
static int upstream_query_failure(const Query *q, char *buf, size_t len) {
        uint64_t now = upstream_now(q->u);
        bool tls = false;
        size_t used = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < q->n_attempts; i++) {
                const Attempt *a = &q->attempts[i];
                const Server *s = a->server;
                char part[UPSTREAM_ERROR_MAX + 64], delay[32];
                FailKind k;

                if (a->state == ATTEMPT_FAILED) {
                        k = a->fail;
                        upstream_format(part, sizeof part, "%s", a->error);
                } else if (s->state == UPSTREAM_SERVER_FAILED) {
                        k = s->last_fail;
                        format_delay(delay, sizeof delay, s->backoff_until > now ? s->backoff_until - now : 0);
                        upstream_format(part, sizeof part, "%s (next try in %s)", s->last_error, delay);
                } else
                        continue;
                if (k == FAIL_TLS || k == FAIL_PROTOCOL)
                        tls = true;
                if (used < len)
                        used += (size_t) snprintf(buf + used, len - used, "%s%s", used ? "; " : "", part);
        }
        if (buf[0] == '\0')
                upstream_format(buf, len, "no DNS-over-TLS server answered");
        return tls ? DNS_EDE_NETWORK_ERROR : DNS_EDE_NO_REACHABLE_AUTHORITY;
}

/* ---- the plaintext fallback's events ---- */

static void on_plain_answer(void *userdata, uint8_t *msg, size_t len) {
        upstream_query_complete(userdata, msg, len);
}

static void on_plain_failed(void *userdata, const char *errors) {
        Query *q = userdata;
        char dot[DNS_EDE_TEXT_MAX], text[DNS_EDE_TEXT_MAX];

        (void) upstream_query_failure(q, dot, sizeof dot);
        upstream_format(text, sizeof text, "%s; plaintext fallback: %s", dot, errors);
        upstream_query_fail(q, DNS_EDE_NO_REACHABLE_AUTHORITY, text);
}

static void on_plain_deadline(void *userdata) {
        (void) upstream_query_rearm(userdata);
}

static const PlainCallbacks plain_callbacks = {
        .on_answer = on_plain_answer,
        .on_failed = on_plain_failed,
        .on_deadline = on_plain_deadline,
};

static void upstream_query_plain(Query *q) {
        Upstream *u = q->u;
        const PlainConfig c = {
                .event = u->event,
                .servers = u->fallback,
                .n_servers = u->n_fallback,
                .timeout_usec = u->timeout_usec,
                .query = q->orig,
                .query_len = q->orig_len,
                .question = q->orig + q->qoff,
                .question_len = q->qlen,
        };

        q->plain = upstream_plain_new(&c, &plain_callbacks, q);
        if (!q->plain) {
                upstream_query_fail(q, DNS_EDE_OTHER, "out of memory");
                return;
        }
        upstream_plain_start(q->plain); /* may finish q */
}

static void probe_finished(Query *q) {
        Server *s = q->probe;
        const Attempt *a = &q->attempts[s->index];
        bool counted = s->fail_epoch != q->probe_epoch;
        char msg[ATTEMPT_ERROR_MAX];

        upstream_format(msg, sizeof msg, "%s", a->error[0] ? a->error : "probe failed");
        upstream_query_free(q);
        if (!counted && s->state == UPSTREAM_SERVER_FAILED)
                upstream_server_failed(s, a->fail == FAIL_NONE ? FAIL_TIMEOUT : a->fail, -EIO, msg);
        else if (s->state == UPSTREAM_SERVER_FAILED && !s->probe)
                upstream_server_arm_probe(s, s->backoff_until);
}

static void upstream_query_final(Query *q) {
        Upstream *u = q->u;
        char text[DNS_EDE_TEXT_MAX];
        int ede;

        q->final_pending = false;
        if (q->probe) {
                probe_finished(q);
                return;
        }
        if (u->allow_plaintext_fallback && u->n_fallback > 0) {
                rate_log(u, &u->log_fallback);
                u->n_fallback_used++;
                upstream_query_plain(q);
                return;
        }
        ede = upstream_query_failure(q, text, sizeof text);
        rate_log(u, &u->log_no_fallback);
        upstream_query_fail(q, ede, text);
}

/* An attempt on a ready connection had its time (a connect or handshake
 * that does not finish is the connection's to report: on_conn_failed). */
static void upstream_attempt_timeout(Attempt *a) {
        Server *s = a->server;
        char msg[ATTEMPT_ERROR_MAX], delay[32];

        format_delay(delay, sizeof delay, s->u->timeout_usec);
        if (dot_conn_silent_since(a->req.conn, a->req.started)) {
                /* Nothing at all came back: the server is gone. */
                upstream_format(msg, sizeof msg, "no answer from %s within %s", s->label, delay);
                upstream_server_failed(s, FAIL_TIMEOUT, -ETIMEDOUT, msg);
        } else
                /* It answers others: only this question is slow there. */
                upstream_format(msg, sizeof msg, "no answer from %s within %s", s->label, delay);
        /* upstream_server_failed() failed it through the connection
         * already, unless the server answers others. */
        upstream_attempt_fail(a, FAIL_TIMEOUT, msg);
}

static int on_query_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        Query *q = userdata;
        bool hedge = false;

        (void) es;
        if (q->final_pending) {
                upstream_query_final(q);
                return 0;
        }
        if (q->plain) {
                if (usec >= upstream_plain_deadline(q->plain))
                        upstream_plain_timeout(q->plain); /* may finish q */
                else
                        (void) upstream_query_rearm(q);
                return 0;
        }
        for (size_t i = 0; i < q->n_attempts; i++) {
                Attempt *a = &q->attempts[i];

                if (a->state != ATTEMPT_LIVE)
                        continue;
                if (usec >= a->deadline && dot_conn_ready(a->req.conn))
                        upstream_attempt_timeout(a);
                else if (!a->hedged && !q->probe && usec >= a->hedge_at) {
                        /* Slow: ask the next server as well, and let new
                         * queries start there until this one answers. */
                        a->hedged = true;
                        upstream_server_set_suspect(a->server, a->deadline);
                        hedge = true;
                }
        }
        if (q->final_pending) {
                upstream_query_final(q);
                return 0;
        }
        if (hedge)
                upstream_query_advance(q, true);
        (void) upstream_query_rearm(q);
        return 0;
}

/* Pads the query (RFC 8467 4.1, RFC 7830): the client's OPT record gets a
 * Padding option (replacing one it had) so that the message is a multiple
 * of PADDING_BLOCK bytes; a query without OPT gets one. */
int upstream_pad_query(const uint8_t *msg, size_t len, const DnsMessage *m, uint8_t **ret, size_t *ret_len) {
        DnsRR opt = {};
        bool have_opt = false;
        size_t before, after_off, kept = 0, base, pad, cap;
        uint8_t *out;
        DnsBuilder b;
        DnsCursor c;
        int r;

        if (m->edns.present) {
                DnsRRIter it;

                dns_rr_iter_init(&it, msg, len, m);
                while ((r = dns_rr_next(&it, &opt)) > 0)
                        if (opt.type == DNS_TYPE_OPT && opt.section == DNS_SECTION_ADDITIONAL) {
                                have_opt = true;
                                break;
                        }
                if (r < 0)
                        return r;
                if (!have_opt)
                        return -EBADMSG;
        }
        /* Options other than padding, kept in order. */
        if (have_opt) {
                dns_cursor_init(&c, msg, opt.end);
                dns_cursor_seek(&c, opt.rdata_off);
                while (dns_cursor_error(&c) == 0 && dns_cursor_left(&c) > 0) {
                        uint16_t code = dns_cursor_u16(&c), olen = dns_cursor_u16(&c);

                        dns_cursor_skip(&c, olen);
                        if (code != DNS_EDNS_OPT_PADDING)
                                kept += EDNS_OPTION_HEADER_SIZE + olen;
                }
                if (dns_cursor_error(&c) < 0)
                        return -EBADMSG;
                before = opt.off;
                after_off = opt.end;
        } else {
                before = len;
                after_off = len;
        }
        base = before + DNS_OPT_SIZE + kept + EDNS_OPTION_HEADER_SIZE + (len - after_off);
        pad = (PADDING_BLOCK - base % PADDING_BLOCK) % PADDING_BLOCK;
        cap = base + pad;
        if (cap > DNS_MESSAGE_MAX || DNS_OPT_SIZE + kept + EDNS_OPTION_HEADER_SIZE + pad > UINT16_MAX + 11u) {
                /* Too big to pad: sent as it is. */
                out = malloc(len);
                if (!out)
                        return -ENOMEM;
                memcpy(out, msg, len);
                *ret = out;
                *ret_len = len;
                return 0;
        }
        out = malloc(cap);
        if (!out)
                return -ENOMEM;
        dns_builder_init(&b, out, cap);
        dns_builder_bytes(&b, msg, before);
        dns_builder_u8(&b, 0); /* the root */
        dns_builder_u16(&b, DNS_TYPE_OPT);
        if (have_opt) {
                dns_builder_u16(&b, opt.class);
                dns_builder_u32(&b, opt.ttl);
        } else {
                dns_builder_u16(&b, DNS_EDNS_UDP_SIZE);
                dns_builder_u32(&b, 0);
        }
        dns_builder_u16(&b, (uint16_t) (kept + EDNS_OPTION_HEADER_SIZE + pad));
        if (have_opt) {
                dns_cursor_init(&c, msg, opt.end);
                dns_cursor_seek(&c, opt.rdata_off);
                while (dns_cursor_error(&c) == 0 && dns_cursor_left(&c) > 0) {
                        size_t start = c.pos;
                        uint16_t code = dns_cursor_u16(&c), olen = dns_cursor_u16(&c);

                        dns_cursor_skip(&c, olen);
                        if (code != DNS_EDNS_OPT_PADDING && dns_cursor_error(&c) == 0)
                                dns_builder_bytes(&b, msg + start, EDNS_OPTION_HEADER_SIZE + olen);
                }
        }
        dns_builder_u16(&b, DNS_EDNS_OPT_PADDING);
        dns_builder_u16(&b, (uint16_t) pad);
        for (size_t i = 0; i < pad; i++)
                dns_builder_u8(&b, 0);
        dns_builder_bytes(&b, msg + after_off, len - after_off);
        if (!have_opt)
                dns_builder_put_u16(&b, DNS_OFF_ARCOUNT, (uint16_t) (m->arcount + 1));
        r = dns_builder_finish(&b, ret_len);
        if (r < 0) {
                free(out);
                return r;
        }
        *ret = out;
        return 0;
}

static int upstream_query_new(Upstream *u, const uint8_t *msg, size_t len, Query **ret) {
        Query *q;

        q = calloc(1, sizeof *q + u->n_servers * sizeof(Attempt));
        if (!q)
                return -ENOMEM;
        q->u = u;
        q->n_attempts = u->n_servers;
        for (size_t i = 0; i < u->n_servers; i++)
                q->attempts[i] = (Attempt) { .query = q, .server = &u->servers[i] };
        q->orig = malloc(len);
        if (!q->orig) {
                free(q);
                return -ENOMEM;
        }
        memcpy(q->orig, msg, len);
        q->orig_len = len;
        if (sd_event_add_time(u->event, &q->timer, CLOCK_MONOTONIC, 1, TIMER_ACCURACY_USEC, on_query_timer, q) <
                    0 ||
            sd_event_source_set_enabled(q->timer, SD_EVENT_OFF) < 0) {
                sd_event_source_disable_unref(q->timer);
                free(q->orig);
                free(q);
                return -ENOMEM;
        }
        q->next = u->queries;
        if (q->next)
                q->next->prev = q;
        u->queries = q;
        *ret = q;
        return 0;
}

int upstream_resolve(Upstream *u, const uint8_t *query, size_t len, upstream_done_fn done, void *userdata) {
        DnsMessage m;
        uint16_t id;
        size_t qoff, qlen;
        Query *q;
        int r;

        if (!u || !query || !done)
                return -EINVAL;
        if (len < DNS_HEADER_SIZE || (((unsigned) query[DNS_OFF_FLAGS] << 8) & DNS_FLAG_QR) ||
            dns_wire_question_span(query, len, &id, &qoff, &qlen) < 0 || dns_message_parse(query, len, &m) < 0)
                return -EBADMSG;
        r = upstream_query_new(u, query, len, &q);
        if (r < 0)
                return r;
        q->client_id = id;
        q->qoff = qoff;
        q->qlen = qlen;
        q->done = done;
        q->userdata = userdata;
        r = upstream_pad_query(query, len, &m, &q->wire, &q->wire_len);
        if (r < 0) {
                u->n_queries_live++; /* upstream_query_free() counts it down */
                upstream_query_free(q);
                return r;
        }
        u->n_queries_live++;
        u->n_queries++;
        upstream_query_advance(q, false);
        return 0;
}

static int on_probe_timer(sd_event_source *es, uint64_t usec, void *userdata) {
        Server *s = userdata;
        Upstream *u = s->u;
        DnsMessage m;
        Query *q = NULL;

        (void) es;
        if (s->probe || s->state != UPSTREAM_SERVER_FAILED)
                return 0;
        if (upstream_query_new(u, probe_query, sizeof probe_query, &q) < 0 ||
            dns_message_parse(probe_query, sizeof probe_query, &m) < 0 ||
            upstream_pad_query(probe_query, sizeof probe_query, &m, &q->wire, &q->wire_len) < 0) {
                if (q) {
                        q->probe = s; /* not counted as a user's query */
                        upstream_query_free(q);
                }
                upstream_server_arm_probe(s, usec + BACKOFF_FIRST_USEC);
                return 0;
        }
        q->probe = s;
        q->probe_epoch = s->fail_epoch;
        q->qoff = DNS_HEADER_SIZE;
        q->qlen = sizeof probe_query - DNS_HEADER_SIZE;
        s->probe = q;
        s->last_probe = usec;
        if (upstream_attempt_start(q, &q->attempts[s->index]) < 0)
                upstream_query_set_final(q);
        return 0;
}

/* ---- a connection's events ---- */

static void on_conn_connected(DotConn *c, uint64_t rtt, void *userdata) {
        Server *s = userdata;
        uint64_t at;

        upstream_server_rtt_sample(s, rtt);
        /* The hedging delay of queries that waited for the connection
         * counts from when it opened, now that the TCP handshake measured
         * the path; the TLS handshake's round trip is still ahead. */
        at = upstream_now(s->u) + upstream_server_hedge_delay(s) + s->srtt;
        for (DotRequest *r = dot_conn_waiting(c); r; r = r->wait_next) {
                Attempt *a = attempt_of(r);

                if (!a->hedged && a->hedge_at > at) {
                        a->hedge_at = at;
                        (void) upstream_query_rearm(a->query);
                }
        }
}

static void on_conn_ready(DotConn *c, void *userdata) {
        (void) userdata;
        /* Their deadlines count from now on. A query still to hedge has
         * its timer at that hedge or sooner, no later than the deadline,
         * and the timer rearms then: only the others need it now. */
        for (DotRequest *r = dot_conn_waiting(c); r; r = r->wait_next) {
                Attempt *a = attempt_of(r);

                if (a->hedged || a->query->probe)
                        (void) upstream_query_rearm(a->query);
        }
}

static void on_conn_answer(DotConn *c, DotRequest *r, uint8_t *msg, size_t len, void *userdata) {
        Server *s = userdata;

        (void) c;
        upstream_server_answered(s);
        if (!r)
                return; /* its query was answered elsewhere */
        if (r->sent)
                upstream_server_rtt_sample(s, upstream_now(s->u) - r->sent);
        upstream_attempt_answered(attempt_of(r), msg, len);
}

static void on_conn_failed(DotConn *c, FailKind kind, int err, const char *why, void *userdata) {
        Server *s = userdata;

        (void) c; /* s->conn */
        if (kind == FAIL_NONE || kind == FAIL_LOST)
                /* Closed (idle, or by the server): not the server's failure.
                 * Its queries go elsewhere; the next one reconnects. */
                upstream_server_close_conn(s, kind, why);
        else
                upstream_server_failed(s, kind, err, why);
}

static void on_conn_request_closed(DotRequest *r, FailKind kind, const char *why, void *userdata) {
        (void) userdata;
        upstream_attempt_fail(attempt_of(r), kind == FAIL_NONE ? FAIL_LOST : kind, why);
}

static const DotConnCallbacks conn_callbacks = {
        .on_connected = on_conn_connected,
        .on_ready = on_conn_ready,
        .on_answer = on_conn_answer,
        .on_failed = on_conn_failed,
        .on_request_closed = on_conn_request_closed,
};

/* ---- lifecycle ---- */

static bool sockaddr_valid(const struct sockaddr_storage *a, socklen_t len) {
        if (a->ss_family == AF_INET)
                return (len == 0 || len >= sizeof(struct sockaddr_in)) &&
                       ((const struct sockaddr_in *) a)->sin_port != 0;
        if (a->ss_family == AF_INET6)
                return (len == 0 || len >= sizeof(struct sockaddr_in6)) &&
                       ((const struct sockaddr_in6 *) a)->sin6_port != 0;
        return false;
}

static socklen_t sockaddr_len(const struct sockaddr_storage *a) {
        return a->ss_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
}

static int rate_log_init(Upstream *u, RateLog *l, const char *priority, const char *line) {
        l->priority = priority;
        l->line = line;
        return sd_event_add_time(u->event, &l->timer, CLOCK_MONOTONIC, 1, TIMER_ACCURACY_USEC * 100, on_rate_log_timer,
                                 l) < 0 ||
                               sd_event_source_set_enabled(l->timer, SD_EVENT_OFF) < 0
                       ? -ENOMEM
                       : 0;
}

int upstream_new(sd_event *e, const UpstreamConfig *c, Upstream **ret) {
        const UpstreamServer *servers;
        size_t n_servers;
        Upstream *u;
        int r;

        /* No T of its own: the upstream_timeout key's default is the one. */
        if (!e || !c || !ret || c->timeout_usec == 0)
                return -EINVAL;
        servers = c->servers;
        n_servers = c->n_servers;
        /* The default servers are the configuration's (its key table), not
         * this module's: a caller always names at least one. */
        if (n_servers == 0 || !servers) {
                log_line(SD_ERR, "DNS-over-TLS: no server given");
                return -EINVAL;
        }
        if (n_servers > UPSTREAM_SERVERS_MAX || c->n_spki_pins > UPSTREAM_PINS_MAX ||
            c->n_fallback > UPSTREAM_FALLBACK_MAX) {
                log_line(SD_ERR, "DNS-over-TLS: too many servers, pins or fallback servers");
                return -EINVAL;
        }
        u = calloc(1, sizeof *u);
        if (!u)
                return -ENOMEM;
        u->event = sd_event_ref(e);
        u->timeout_usec = c->timeout_usec;
        u->idle_timeout_usec = c->idle_timeout_usec ? c->idle_timeout_usec : UPSTREAM_IDLE_TIMEOUT_USEC_DEFAULT;
        u->allow_plaintext_fallback = c->allow_plaintext_fallback;
        u->shared = c->shared;

        r = -ENOMEM;
        u->servers = calloc(n_servers, sizeof *u->servers);
        if (!u->servers)
                goto fail;
        u->n_servers = n_servers;
        for (size_t i = 0; i < n_servers; i++) {
                Server *s = &u->servers[i];

                s->u = u;
                s->index = (unsigned) i;
                s->cfg = servers[i];
                if (!sockaddr_valid(&s->cfg.addr, s->cfg.addrlen) ||
                    !memchr(s->cfg.tls_name, '\0', sizeof s->cfg.tls_name)) {
                        log_line(SD_ERR, "DNS-over-TLS: server %zu: not an IPv4 or IPv6 address with a port and "
                                 "a valid name", i + 1);
                        r = -EINVAL;
                        goto fail;
                }
                s->cfg.addrlen = sockaddr_len(&s->cfg.addr);
                (void) sockaddr_host_port(&s->cfg.addr, s->address, sizeof s->address);
                if (s->cfg.tls_name[0])
                        upstream_format(s->label, sizeof s->label, "%s (%s)", s->cfg.tls_name, s->address);
                else
                        upstream_format(s->label, sizeof s->label, "%s", s->address);
        }
        for (size_t i = 0; i < c->n_spki_pins; i++)
                if (!c->spki_pins[i] || upstream_pin_decode(c->spki_pins[i], u->pins[i]) < 0) {
                        log_line(SD_ERR, "DNS-over-TLS: SPKI pin %zu is not the base64 of a SHA-256 digest", i + 1);
                        r = -EINVAL;
                        goto fail;
                }
        u->n_pins = c->n_spki_pins;
        /* Like the DNS-over-TLS servers, the plaintext ones are the
         * caller's (ztnad: resolv.conf's, else the configuration's). */
        if (c->allow_plaintext_fallback && (c->n_fallback == 0 || !c->fallback)) {
                log_line(SD_ERR, "plaintext fallback allowed but no server given");
                r = -EINVAL;
                goto fail;
        }
        for (size_t i = 0; i < c->n_fallback; i++) {
                if (!sockaddr_valid(&c->fallback[i], 0)) {
                        log_line(SD_ERR, "plaintext fallback server %zu: not an IPv4 or IPv6 address "
                                 "with a port", i + 1);
                        r = -EINVAL;
                        goto fail;
                }
                u->fallback[i] = c->fallback[i];
        }
        u->n_fallback = c->n_fallback;
        r = upstream_tls_ctx_new(c->tls_ca_file, &u->ctx);
        if (r < 0)
                goto fail;
        u->bio_method = upstream_bio_method_new();
        if (!u->bio_method) {
                r = -ENOMEM;
                goto fail;
        }
        for (size_t i = 0; i < n_servers; i++) {
                Server *s = &u->servers[i];

                s->peer = (DotPeer) {
                        .event = u->event,
                        .ctx = u->ctx,
                        .bio_method = u->bio_method,
                        .addr = &s->cfg.addr,
                        .addrlen = s->cfg.addrlen,
                        .tls_name = s->cfg.tls_name,
                        .address = s->address,
                        .label = s->label,
                        .pins = (const uint8_t (*)[32]) u->pins,
                        .n_pins = u->n_pins,
                        .timeout_usec = u->timeout_usec,
                        .idle_timeout_usec = u->idle_timeout_usec,
                        .random = &u->random,
                        .callbacks = &conn_callbacks,
                        .userdata = s,
                };
        }
        r = rate_log_init(u, &u->log_no_fallback, SD_WARNING,
                          "DNS-over-TLS failed, plaintext fallback disabled -- returning SERVFAIL");
        if (r >= 0)
                r = rate_log_init(u, &u->log_fallback, SD_WARNING,
                                  "DNS-over-TLS failed, falling back to plaintext DNS");
        if (r < 0)
                goto fail;
        *ret = u;
        return 0;

fail:
        upstream_free(u);
        return r;
}

/* Each DoT server gets one attempt of at most T, started no later than the
 * previous one's end (a hedge starts it earlier), and a query a connection
 * dropped one attempt more; then each plaintext server up to T over UDP
 * and T over TCP after a truncated answer. Servers in back-off are skipped
 * at once, which only shortens this. */
uint64_t upstream_max_duration_usec(const UpstreamConfig *c) {
        uint64_t t = c->timeout_usec;
        uint64_t n = c->n_servers + 1;

        assert(t > 0);
        if (c->allow_plaintext_fallback)
                n += 2 * c->n_fallback;
        return n * t;
}

Upstream *upstream_free(Upstream *u) {
        if (!u)
                return NULL;
        u->freeing = true;
        /* Every outstanding query is answered, as promised. */
        while (u->queries) {
                Query *q = u->queries;

                if (q->probe) {
                        upstream_query_free(q);
                        continue;
                }
                for (size_t i = 0; i < q->n_attempts; i++)
                        dot_conn_dequeue(&q->attempts[i].req);
                upstream_query_fail(q, DNS_EDE_OTHER, "ztnad is shutting down");
        }
        for (size_t i = 0; u->servers && i < u->n_servers; i++) {
                Server *s = &u->servers[i];

                s->conn = dot_conn_free(s->conn);
                SSL_SESSION_free(s->peer.session);
                sd_event_source_disable_unref(s->probe_timer);
        }
        free(u->servers);
        sd_event_source_disable_unref(u->log_no_fallback.timer);
        sd_event_source_disable_unref(u->log_fallback.timer);
        SSL_CTX_free(u->ctx);
        BIO_meth_free(u->bio_method);
        sd_event_unref(u->event);
        free(u);
        return NULL;
}

void upstream_get_status(const Upstream *u, UpstreamStatus *ret) {
        memset(ret, 0, sizeof *ret);
        ret->n_servers = u->n_servers;
        ret->allow_plaintext_fallback = u->allow_plaintext_fallback;
        ret->n_queries = u->n_queries;
        ret->n_answered = u->n_answered;
        ret->n_servfail = u->n_servfail;
        ret->n_fallback = u->n_fallback_used;
        ret->pending = u->n_queries_live;
        for (size_t i = 0; i < u->n_servers; i++) {
                const Server *s = &u->servers[i];
                UpstreamServerStatus *st = &ret->servers[i];

                upstream_format(st->address, sizeof st->address, "%s", s->address);
                upstream_format(st->tls_name, sizeof st->tls_name, "%s", s->cfg.tls_name);
                st->state = s->state;
                st->connected = s->conn != NULL;
                st->srtt_usec = s->srtt;
                st->rttvar_usec = s->rttvar;
                st->consecutive_failures = s->failures;
                st->backoff_until_usec = s->state == UPSTREAM_SERVER_FAILED ? s->backoff_until : 0;
                st->last_change_usec = s->last_change;
                st->last_errno = s->last_errno;
                upstream_format(st->last_error, sizeof st->last_error, "%s", s->last_error);
                st->inflight = s->conn ? dot_conn_inflight(s->conn) : 0;
                st->n_sent = s->peer.n_sent;
                st->n_answers = s->n_answers;
                st->n_connections = s->peer.n_connections;
                st->n_resumed = s->peer.n_resumed;
                st->n_failures = s->n_failures;
        }
}
