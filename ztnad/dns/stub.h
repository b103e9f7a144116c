/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The DNS stub listener: UDP and TCP on loopback addresses (default
 * 127.0.0.53:53), for programs that do not resolve through NSS.
 *
 * A query is answered, in this order (DESIGN.md "ztnad"):
 *
 *   1. threat blocklist: NXDOMAIN with Extended DNS Error 15 "Blocked";
 *   2. tailnet names, from the record store (the same one NSS reads):
 *      A and AAAA for a peer's names, PTR for its addresses, A and AAAA
 *      for ANY; NOERROR with an empty answer for other types or a peer
 *      without an address of the type; NXDOMAIN for an unknown name
 *      under the tailnet domain or an unknown address in its ranges,
 *      never forwarded; SERVFAIL (EDE 14 "Not Ready") while the store
 *      says the tailnet is down; from the store's persisted copy (before
 *      the first publish after a boot) a peer's answer with a short TTL,
 *      and SERVFAIL rather than NXDOMAIN for a name the copy lacks;
 *      with neither store nor copy before the first publish (a cold
 *      start), SERVFAIL (EDE 14) for every name that would be forwarded:
 *      it might be the tailnet's;
 *   3. ANY for every other name: a synthesised HINFO "RFC8482" record
 *      (RFC 8482 4.2), never forwarded, so ANY cannot amplify;
 *   4. the shared cache;
 *   5. the upstream, through the forwarder callback.
 *
 * Malformed queries get FORMERR when their header is readable and are
 * dropped otherwise; a query with QDCOUNT other than 1 gets FORMERR, an
 * opcode other than QUERY NOTIMP, EDNS version > 0 BADVERS (RFC 6891
 * 6.1.3), AXFR/IXFR/MAILA/MAILB NOTIMP, a class other than IN (or ANY)
 * REFUSED. Responses (QR set) are never answered. Only loopback clients
 * (127.0.0.0/8, ::1) are served; anything else is dropped unanswered, so
 * the stub is never an open resolver.
 *
 * EDNS(0): an answer carries an OPT record when the query had one, with
 * our UDP size (1232) and the DO bit mirrored. A UDP answer larger than
 * the client's size (512 without EDNS) is cut to the question with TC set,
 * so the client asks again over TCP. TCP: 2-byte length framing
 * (RFC 1035 4.2.2), several queries per connection answered as they
 * complete (RFC 7766 6.2.1.1), an idle timeout, a connection limit.
 *
 * Threads: stub_new() starts one worker thread per CPU it may run on (or
 * n_workers), each with its own sd-event loop, its own SO_REUSEPORT UDP
 * and TCP sockets on every address (the kernel spreads queries over them)
 * and its own store reader; the cache and the blocklist are shared. Sockets from
 * socket activation are watched by every worker.
 *
 * The forwarder: for a query that must go upstream the stub calls
 * config->forward on the worker thread, with a clean query (the client's
 * ID and question, RD, its CD bit, an OPT record with our UDP size and
 * the client's DO bit; none of the client's other options) and a
 * StubReply. The forwarder must finish every StubReply exactly once, with
 * stub_reply_done() (the upstream's answer, any ID) or stub_reply_error()
 * (an rcode and an Extended DNS Error), at once or later, from any
 * thread: a finish from another thread is handed to the worker's loop.
 * The stub itself answers SERVFAIL when a reply is not finished within
 * forward_timeout_usec (the late finish is then dropped). A StubReply
 * stays valid until it is finished, even after stub_free().
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "dns/blocklist.h"
#include "dns/cache.h"
#include "common/timeouts.h" /* STUB_DEFAULT_*_USEC */

#define STUB_DEFAULT_ADDRESS "127.0.0.53"
#define STUB_DEFAULT_PORT 53
#define STUB_FALLBACK_PORT 15353
#define STUB_WORKERS_MAX 64u
#define STUB_ADDRESSES_MAX 16u
#define STUB_DEFAULT_TCP_CONNECTIONS 256u
#define STUB_DEFAULT_INFLIGHT 1024u /* per worker */
#define STUB_TCP_PIPELINE_MAX 32u   /* queries in flight on one connection */

/* The log lines the failover guide and the tests look for. */
#define STUB_LOG_HIGH_PORT "Cannot bind to port 53, trying high port"
#define STUB_LOG_STARTED "DNS resolver started"

typedef struct Stub Stub;
typedef struct StubReply StubReply;

typedef void (*stub_forward_fn)(void *userdata, const uint8_t *query, size_t len, StubReply *reply);
/* One line, no newline; priority as syslog's (LOG_WARNING ...). */
typedef void (*stub_log_fn)(void *userdata, int priority, const char *message);

typedef struct StubAddress {
        struct sockaddr_storage sa; /* AF_INET or AF_INET6, port set */
        socklen_t len;
} StubAddress;

/* A listening socket handed from one stub to the next (a reload, a
 * restart through systemd's file descriptor store): `want` is the listen
 * address it was bound for, which differs from its own address when port
 * 53 was taken and the fallback port bound instead. */
typedef struct StubSocket {
        int fd;
        bool tcp;
        StubAddress want;
} StubSocket;

/* A listen address with nothing bound on it (both ports taken, say). */
typedef struct StubUnbound {
        StubAddress want;
        int error; /* errno of the last attempt */
} StubUnbound;

typedef struct StubConfig {
        /* Where to listen; none: 127.0.0.53:53. Loopback addresses only
         * (-EADDRNOTAVAIL otherwise). When port 53 cannot be bound
         * (EADDRINUSE, EACCES) the stub logs STUB_LOG_HIGH_PORT and binds
         * fallback_port (0: 15353) instead. */
        const StubAddress *listen;
        size_t n_listen;
        uint16_t fallback_port;
        /* Sockets from socket activation (stub_activated_fds()); when any
         * are given, `listen` is not used. Taken over: stub_free() closes
         * them, and so does a failing stub_new(). */
        const int *fds;
        size_t n_fds;
        /* Sockets of an earlier stub (stub_sockets()), taken over: those
         * whose `want` is among `listen` serve again, so a query waiting in
         * them is not lost; the others are closed. An address with none is
         * bound anew. */
        const StubSocket *inherit;
        size_t n_inherit;

        unsigned n_workers; /* 0: one per CPU the process may run on */
        /* The paths are read only during stub_new(): the stub keeps no
         * pointer into the caller's strings. */
        const char *store_path; /* NULL: $ZTNA_STORE or /run/ztna/records */
        /* The store's persisted copy, read while the store is missing
         * (docs/store-fallback.md); NULL: none. */
        const char *store_fallback_path;
        /* Whether the store holds the current map. Until stub_set_ready(),
         * a query the store cannot tell about (no store, no copy) might be
         * a tailnet name: SERVFAIL, never forwarded. */
        bool ready;
        Cache *cache;           /* NULL: no cache; not owned */
        Blocklist *blocklist;   /* NULL: none; owned by the stub from here on */
        stub_forward_fn forward; /* NULL: SERVFAIL for every other name */
        void *forward_userdata;
        /* Optional, both or neither: worker_init runs on each worker's
         * thread with its loop before the worker serves (a failure fails
         * stub_new()); what it returns is stub_reply_worker_data() of the
         * replies that worker forwards, so the forwarder can work on that
         * loop without crossing threads. worker_done runs on the worker's
         * thread when it stops, before its loop goes. */
        int (*worker_init)(void *userdata, sd_event *e, void **ret_data);
        void (*worker_done)(void *userdata, void *data);

        unsigned tcp_max_connections; /* over all workers; 0: the default */
        uint64_t tcp_idle_usec;       /* 0: the default */
        /* 0: STUB_DEFAULT_FORWARD_TIMEOUT_USEC; ztnad derives it from the
         * upstream's own bound (timeouts.h). */
        uint64_t forward_timeout_usec;
        unsigned max_inflight;        /* per worker; 0: the default */

        stub_log_fn log; /* NULL: stderr with sd-daemon priority prefixes */
        void *log_userdata;
} StubConfig;

typedef struct StubStats {
        uint64_t udp_queries, tcp_queries, tcp_connections;
        uint64_t dropped;  /* not loopback, unreadable, a response */
        uint64_t formerr, refused, notimp;
        uint64_t blocked, tailnet, any, cache_hits, stale_answers;
        uint64_t forwarded, upstream_errors, timeouts;
        uint64_t truncated;
} StubStats;

/* Binds (or takes over config->fds and config->inherit), starts the
 * workers, logs STUB_LOG_STARTED with the addresses. A listen address that
 * cannot be bound (in use on both ports, say) is logged and left out
 * (stub_unbound()); the others serve. Returns 0 or a negative errno
 * (nothing is left running then, and every fd given is closed). */
int stub_new(const StubConfig *config, Stub **ret);
/* Stops the workers and closes the sockets; NULL-safe. Replies still with
 * the forwarder stay valid until finished. */
Stub *stub_free(Stub *s);

/* Copies (dup()) of every listening socket with the address it was bound
 * for, for a successor stub or systemd's fd store: the caller owns the
 * malloc()ed array and the fds. */
int stub_sockets(const Stub *s, StubSocket **ret, size_t *ret_n);
/* Stops taking queries (a successor serves the same sockets): listeners
 * are no longer watched and TCP connections close once their answers are
 * out. Queries already forwarded are still answered. */
void stub_quiesce(Stub *s);
/* Whether the forwarder still owes answers to this stub's queries. */
bool stub_busy(const Stub *s);
/* Whether its sockets came from socket activation (config->fds). */
bool stub_is_activated(const Stub *s);

/* The listen addresses with nothing bound (see stub_new()). */
size_t stub_n_unbound(const Stub *s);
const StubUnbound *stub_unbound(const Stub *s, size_t i);
/* Whether `want` (or its fallback port, for port 53) can be bound now:
 * the sockets of a trial bind are closed again. 0 or a negative errno. */
int stub_try_bind(const StubAddress *want, uint16_t fallback_port);

/* The addresses actually bound (UDP and TCP share each), for
 * `ztna status`: "127.0.0.53:53", "[::1]:15353". */
size_t stub_n_addresses(const Stub *s);
const StubAddress *stub_address(const Stub *s, size_t i);
int stub_address_text(const StubAddress *a, char *buf, size_t size);

/* The map is published: from now on a query the store cannot tell about
 * is not the tailnet's. */
void stub_set_ready(Stub *s);

/* Swaps in a new blocklist (owned by the stub from here on); the old one
 * is freed once no worker can be using it. NULL: no blocklist. */
void stub_set_blocklist(Stub *s, Blocklist *bl);

void stub_stats(const Stub *s, StubStats *ret);

/* Finishing a forwarded query; see above. `answer` is copied. */
void stub_reply_done(StubReply *reply, const uint8_t *answer, size_t len);
void stub_reply_error(StubReply *reply, uint16_t rcode, int ede_code, const char *ede_text);
/* worker_init's result for the worker that forwarded `reply`; NULL without. */
void *stub_reply_worker_data(const StubReply *reply);

/* The socket-activated fds named "stub" (ztnad.socket's
 * FileDescriptorName=stub), from sd_listen_fds_with_names(); other fds are
 * left alone. Returns how many (0 when not activated) with a malloc()ed
 * array in *ret_fds, or a negative errno. */
int stub_activated_fds(int **ret_fds);
