/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Inside the DNS stub listener: what its files share (the public API is
 * stub.h). Calls between the files go one way:
 *
 *     stub-lifetime.c  making, quiescing and freeing the stub
 *       -> stub-sockets.c  binding, socket activation, inherited sockets
 *       -> stub.c          the query path and the worker threads
 *       -> stub-tcp.c      a TCP connection's output and lifetime
 *
 * (stub-lifetime.c calls stub.c too, and stub-sockets.c stub.c.)
 *
 * Ownership and threads. Each Worker's loop, sockets, TCP connections and
 * pending replies belong to its thread. A reply finished by the forwarder
 * is put on the worker's queue (under its mutex) and the worker is woken
 * through an eventfd; the worker then answers the client. Once a worker
 * has stopped, finishes are dropped where they happen. The Stub is
 * reference-counted: stub_free() holds one reference and every unfinished
 * reply one more, so a forwarder finishing late never touches freed
 * memory. The blocklist pointer is RCU-protected (liburcu memb).
 */

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <systemd/sd-event.h>

#include "common/dns-wire.h"
#include "shm.h"
#include "dns/stub.h"

#define MMSG_BATCH 32u         /* datagrams per recvmmsg() and sendmmsg() */
/* A UDP query longer than this is dropped (a real one is a few dozen bytes;
 * TCP takes any size). */
#define UDP_QUERY_MAX 4096u
#define TCP_OUT_MAX (256u * 1024) /* queued answer bytes before a connection stops being read */

enum {
        STAT_UDP_QUERIES,
        STAT_TCP_QUERIES,
        STAT_TCP_CONNECTIONS,
        STAT_DROPPED,
        STAT_FORMERR,
        STAT_REFUSED,
        STAT_NOTIMP,
        STAT_BLOCKED,
        STAT_TAILNET,
        STAT_ANY,
        STAT_CACHE_HITS,
        STAT_STALE,
        STAT_FORWARDED,
        STAT_UPSTREAM_ERRORS,
        STAT_TIMEOUTS,
        STAT_TRUNCATED,
        _STAT_MAX,
};

typedef struct Worker Worker;
typedef struct TcpConn TcpConn;

/* A worker's watch on one of the Stub's sockets (the Stub owns and
 * closes the fd). */
typedef struct Listener {
        int fd;
        bool tcp;
        sd_event_source *source;
        Worker *worker;
} Listener;

/* Where an answer goes. */
typedef struct Client {
        bool tcp;
        int fd; /* UDP: the socket the query came in on */
        struct sockaddr_storage peer;
        socklen_t peer_len;
        TcpConn *conn;
} Client;

typedef struct OutBuf {
        struct OutBuf *next;
        size_t len;
        uint8_t data[]; /* 2-byte length, then the message */
} OutBuf;

struct TcpConn {
        Worker *worker;
        TcpConn *prev, *next;
        atomic_uint refs; /* the open connection's, and one per pending reply */
        int fd;
        bool closed, read_eof;
        sd_event_source *io, *idle;
        uint8_t *in;
        size_t in_len, in_cap;
        OutBuf *out_head, *out_tail;
        size_t out_off, out_bytes;
        unsigned pending;
};

struct StubReply {
        Stub *stub;
        Worker *worker;
        StubReply *next;              /* the worker's queue of finished replies */
        StubReply *pending_prev, *pending_next; /* the worker's unfinished ones */
        Client client;
        sd_event_source *timer;
        bool answered; /* the stub answered already (timeout) */
        /* the finish */
        bool failed;
        uint16_t rcode;
        int ede;
        char ede_text[DNS_EDE_TEXT_MAX + 1];
        uint8_t *answer;
        size_t answer_len;
        size_t query_len;
        uint8_t query[]; /* the client's, as received */
};

struct Worker {
        Stub *stub;
        unsigned index;
        pthread_t thread;
        bool started;
        sd_event *event;
        int wake_fd;
        sd_event_source *wake_source;
        Listener *listeners;
        size_t n_listeners;
        ShmReader *reader;
        TcpConn *conns;
        StubReply *pending;
        unsigned inflight;
        void *forward_data; /* config.worker_init's, for this worker */
        bool forward_ready;
        bool forwarding; /* inside config.forward() */
        bool closing;    /* in worker_teardown() */
        bool quiesced;   /* stub_quiesce() done on this thread */

        pthread_mutex_t lock; /* the two fields below */
        StubReply *queue_head, *queue_tail;
        bool stopped;

        atomic_bool stop;
        atomic_bool quiesce;
        int setup_result;
        _Atomic uint64_t stats[_STAT_MAX];

        uint8_t scratch[DNS_MESSAGE_MAX];
        uint8_t out[DNS_MESSAGE_MAX];

        /* UDP in batches: the queries of one recvmmsg() and the answers
         * to them, sent together by one sendmmsg() at the end. */
        struct mmsghdr rx_msgs[MMSG_BATCH];
        struct iovec rx_iov[MMSG_BATCH];
        struct sockaddr_storage rx_peers[MMSG_BATCH];
        uint8_t rx[MMSG_BATCH][UDP_QUERY_MAX];
        int tx_fd; /* the socket of the batch being answered, -1 if none */
        unsigned n_tx;
        struct mmsghdr tx_msgs[MMSG_BATCH];
        struct iovec tx_iov[MMSG_BATCH];
        struct sockaddr_storage tx_peers[MMSG_BATCH];
        uint8_t tx[MMSG_BATCH][DNS_EDNS_UDP_SIZE];
};

struct Stub {
        atomic_uint refs;
        StubConfig config; /* listen, fds and blocklist not kept */
        Blocklist *blocklist; /* RCU */
        StubAddress addresses[STUB_ADDRESSES_MAX]; /* bound, for status */
        size_t n_addresses;
        StubUnbound unbound[STUB_ADDRESSES_MAX];
        size_t n_unbound;
        /* Every listening socket, owned here; workers only watch them. */
        StubSocket *socks;
        size_t n_socks;
        bool activated;
        Worker *workers;
        unsigned n_workers;
        atomic_uint tcp_connections;
        atomic_bool ready;

        pthread_mutex_t setup_lock; /* and the quiesce count */
        pthread_cond_t setup_cond;
        unsigned setup_done;
        unsigned quiesce_done;
};

/* stub.c */
__attribute__((format(printf, 3, 4))) void stub_log(const Stub *s, int priority, const char *fmt, ...);
bool stub_is_loopback(const struct sockaddr *sa);
void stub_unref(Stub *s);
void *stub_worker_main(void *userdata);

/* stub-sockets.c */
int stub_bind_all(Stub *s, const StubConfig *config, StubSocket *inherit, size_t n_inherit);
int stub_adopt_fds(Stub *s, const StubConfig *config);

/* stub-tcp.c */
void stub_conn_unref(TcpConn *c);
void stub_conn_close(TcpConn *c);
int stub_conn_flush(TcpConn *c);
void stub_conn_send(TcpConn *c, const uint8_t *msg, size_t len);
bool stub_conn_has_message(const TcpConn *c);
void stub_conn_update(TcpConn *c);
int stub_on_conn_idle(sd_event_source *src, uint64_t usec, void *userdata);
