/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The DNS side's timers, in one place, each saying how it relates to the
 * others. A query the stub forwards meets them in this order:
 *
 *   stub ──> upstream: one attempt per DoT server in order, each given up
 *            after upstream_timeout (T); the next server is asked as well
 *            once an attempt has waited its hedging delay (at most T);
 *            one attempt more when a connection dropped the query;
 *        ──> plaintext fallback (only when allowed): one server after the
 *            other, each up to T over UDP and T again over TCP when the
 *            UDP answer was truncated.
 *
 * So the upstream finishes every query within
 *
 *     T * (servers + 1 + (fallback ? 2 * fallback servers : 0))
 *
 * (upstream_max_duration_usec(), upstream.h), and the stub's own deadline
 * for a forwarded query is that plus STUB_FORWARD_MARGIN_USEC: the stub
 * never answers SERVFAIL while the upstream may still bring the answer.
 * The bound is finite because the configuration caps T (100 ms to 1 min)
 * and the number of servers; clients give up far earlier (glibc after 5 s
 * per try), so the stub's deadline is a safety net against a forwarder
 * that never finishes, not a timer users meet.
 */

#include <stdint.h>

#include "common/time-util.h"

/* ---- upstream (upstream.c, upstream-tls.c, upstream-plain.c; docs/upstream.md) ---- */

/* T is the upstream_timeout key: its default and bounds are written only
 * in config-keys.c's key table, and every caller passes it (UpstreamConfig's
 * timeout_usec, never 0). T also bounds how long a connection may take to
 * open (TCP and TLS), counted from its opening by its own timer alone
 * (upstream-tls.c; a query's attempt, started no earlier, waits for that
 * verdict), and how long a query sent on it waits. */
/* A connection without queries is closed after this; far above T, so a
 * server answering slowly is never taken for an idle one. */
#define UPSTREAM_IDLE_TIMEOUT_USEC_DEFAULT (30 * USEC_PER_SEC)
/* Hedging (RFC 6298 2 for the estimate): the next server is asked too when
 * one has not answered within max(SRTT + 4 RTTVAR, HEDGE_MIN_USEC), capped
 * at T; before the first measurement HEDGE_INITIAL_USEC (RFC 6298's
 * initial RTO). Below T's default, so a slow server costs a fraction of T. */
#define HEDGE_MIN_USEC (100 * USEC_PER_MSEC)
#define HEDGE_INITIAL_USEC (1 * USEC_PER_SEC)
/* A failed server is skipped for BACKOFF_FIRST_USEC, doubling up to
 * BACKOFF_MAX_USEC, and probed in the background when it ends. While every
 * server is in back-off a query fails at once, so back-off never adds to
 * the bound above. */
#define BACKOFF_FIRST_USEC (1 * USEC_PER_SEC)
#define BACKOFF_MAX_USEC (60 * USEC_PER_SEC)
/* While every server is in back-off, a user's query may bring a probe
 * forward, but not more often than this per server (below BACKOFF_MAX). */
#define NUDGE_MIN_USEC (2 * USEC_PER_SEC)
/* A server whose connection dropped queries in flight is passed over by new
 * queries for this long unless it answers. */
#define SUSPECT_LOST_USEC (1 * USEC_PER_SEC)
/* The "plaintext fallback disabled" line at most this often. */
#define FALLBACK_LOG_INTERVAL_USEC (5 * USEC_PER_SEC)
/* Slack granted to the upstream's timers: far below HEDGE_MIN_USEC. */
#define TIMER_ACCURACY_USEC (1 * USEC_PER_MSEC)

/* ---- stub (applied in stub-lifetime.c, stub_new) ---- */

/* The stub's deadline for a forwarded query when its caller sets none (the
 * test harness). ztnad sets upstream_max_duration_usec() +
 * STUB_FORWARD_MARGIN_USEC instead. */
#define STUB_DEFAULT_FORWARD_TIMEOUT_USEC (10 * USEC_PER_SEC)
/* Over the upstream's own bound: the upstream's answer (or its SERVFAIL
 * with the reason) crosses from the upstream to the stub in far less. */
#define STUB_FORWARD_MARGIN_USEC (1 * USEC_PER_SEC)
/* A client's TCP connection without a query is closed after this. */
#define STUB_DEFAULT_TCP_IDLE_USEC (10 * USEC_PER_SEC)

/* ---- the daemon's DNS side (dns.c) ---- */

/* A blocklist file's change is noticed within this. */
#define BLOCKLIST_CHECK_USEC (5 * USEC_PER_SEC)
/* Expired answers are swept from the cache this often. */
#define CACHE_PRUNE_USEC (60 * USEC_PER_SEC)
/* A worker's upstream status is copied for `ztna status` this often. */
#define STATUS_COPY_USEC USEC_PER_SEC
/* A reload's old generation is looked at this often, and freed at the
 * latest DRAIN_MARGIN_USEC after its stub's deadline for a forwarded
 * query (by then every query it forwarded has been answered). */
#define DRAIN_CHECK_USEC (100 * USEC_PER_MSEC)
#define DRAIN_MARGIN_USEC USEC_PER_SEC
/* Listen addresses that could not be bound are tried again after 1 s,
 * 2 s, 4 s ... up to a minute apart. */
#define BIND_RETRY_FIRST_USEC USEC_PER_SEC
#define BIND_RETRY_MAX_USEC (60 * USEC_PER_SEC)
