/* SPDX-License-Identifier: MIT */
/*
 * The DNS stub listener (see stub.h): sockets, worker threads, the query
 * path and the TCP connections.
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

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <urcu/urcu-memb.h>

#include "common/inet-util.h"
#include "common/dns-wire.h"
#include "common/log.h"
#include "macro.h"
#include "shm.h"
#include "dns/stub-tailnet.h"
#include "dns/stub.h"

#define UDP_BATCH 64u          /* datagrams per wakeup, for fairness */
#define MMSG_BATCH 32u         /* datagrams per recvmmsg() and sendmmsg() */
/* A UDP query longer than this is dropped (a real one is a few dozen bytes;
 * TCP takes any size). */
#define UDP_QUERY_MAX 4096u
#define ACCEPT_BATCH 16u
#define TCP_OUT_MAX (256u * 1024) /* queued answer bytes before a connection stops being read */
#define ANY_TTL 3600u          /* the RFC 8482 HINFO record */

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

/* ---- logging ---- */

__attribute__((format(printf, 3, 4))) static void stub_log(const Stub *s, int priority, const char *fmt, ...) {
        char line[1024];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        if (s->config.log)
                s->config.log(s->config.log_userdata, priority, line);
        else
                log_line_priority(priority, line);
}

static void count(Worker *w, unsigned stat) {
        atomic_fetch_add_explicit(&w->stats[stat], 1, memory_order_relaxed);
}

/* ---- addresses ---- */

static bool is_loopback(const struct sockaddr *sa) {
        if (sa->sa_family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) (const void *) sa;
                return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
        }
        if (sa->sa_family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) (const void *) sa;
                if (IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr))
                        return true;
                return IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127;
        }
        return false;
}

static uint16_t address_port(const StubAddress *a) {
        if (a->sa.ss_family == AF_INET)
                return ntohs(((const struct sockaddr_in *) (const void *) &a->sa)->sin_port);
        return ntohs(((const struct sockaddr_in6 *) (const void *) &a->sa)->sin6_port);
}

static void address_set_port(StubAddress *a, uint16_t port) {
        if (a->sa.ss_family == AF_INET)
                ((struct sockaddr_in *) (void *) &a->sa)->sin_port = htons(port);
        else
                ((struct sockaddr_in6 *) (void *) &a->sa)->sin6_port = htons(port);
}

int stub_address_text(const StubAddress *a, char *buf, size_t size) {
        return sockaddr_host_port(&a->sa, buf, size);
}

size_t stub_n_addresses(const Stub *s) {
        return s ? s->n_addresses : 0;
}

const StubAddress *stub_address(const Stub *s, size_t i) {
        return s && i < s->n_addresses ? &s->addresses[i] : NULL;
}

/* ---- sockets ---- */

static int open_socket(const StubAddress *a, bool tcp, int *ret) {
        _cleanup_close_ int fd = -1;
        int one = 1;

        fd = socket(a->sa.ss_family, (tcp ? SOCK_STREAM : SOCK_DGRAM) | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        /* One socket per worker on the same address; the kernel spreads
         * datagrams and connections over them. */
        if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0)
                return -errno;
        if (a->sa.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) < 0)
                return -errno;
        if (tcp) {
                (void) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
                (void) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        if (bind(fd, (const struct sockaddr *) &a->sa, a->len) < 0)
                return -errno;
        if (tcp && listen(fd, SOMAXCONN) < 0)
                return -errno;
        *ret = TAKE_FD(fd);
        return 0;
}

/* Binds UDP and TCP for worker 0 on `a`, or nothing. */
static int bind_pair(const StubAddress *a, int *ret_udp, int *ret_tcp) {
        _cleanup_close_ int udp = -1;
        int r = open_socket(a, false, &udp);
        if (r < 0)
                return r;
        r = open_socket(a, true, ret_tcp);
        if (r < 0)
                return r;
        *ret_udp = TAKE_FD(udp);
        return 0;
}

static bool address_equal(const StubAddress *a, const StubAddress *b) {
        return a->len == b->len && memcmp(&a->sa, &b->sa, a->len) == 0;
}

/* Takes `fd` into the Stub's table: it is the Stub's to close from here
 * on, whatever else fails. */
static int stub_own(Stub *s, int fd, bool tcp, const StubAddress *want) {
        StubSocket *t = realloc(s->socks, (s->n_socks + 1) * sizeof *t);
        if (!t) {
                safe_close(fd);
                return -ENOMEM;
        }
        s->socks = t;
        s->socks[s->n_socks++] = (StubSocket) { .fd = fd, .tcp = tcp, .want = *want };
        return 0;
}

static int worker_add_listener(Worker *w, int fd, bool tcp) {
        Listener *l = realloc(w->listeners, (w->n_listeners + 1) * sizeof *l);
        if (!l)
                return -ENOMEM;
        w->listeners = l;
        w->listeners[w->n_listeners++] = (Listener) { .fd = fd, .tcp = tcp, .worker = w };
        return 0;
}

/* Owned by the Stub and watched by worker k. */
static int stub_add_socket(Stub *s, unsigned k, int fd, bool tcp, const StubAddress *want) {
        int r = stub_own(s, fd, tcp, want);
        if (r < 0)
                return r;
        return worker_add_listener(&s->workers[k % s->n_workers], fd, tcp);
}

/* Binds UDP and TCP on `want`, or on the fallback port when port 53 is
 * taken; the address bound goes to *ret_bound. */
static int bind_want(Stub *s, const StubAddress *want, StubAddress *ret_bound, int *ret_udp, int *ret_tcp) {
        StubAddress a = *want;
        int r = bind_pair(&a, ret_udp, ret_tcp);

        if ((r == -EADDRINUSE || r == -EACCES) && address_port(&a) == STUB_DEFAULT_PORT) {
                if (s)
                        stub_log(s, LOG_WARNING, STUB_LOG_HIGH_PORT);
                address_set_port(&a, s ? s->config.fallback_port : STUB_FALLBACK_PORT);
                r = bind_pair(&a, ret_udp, ret_tcp);
        }
        if (r >= 0)
                *ret_bound = a;
        return r;
}

int stub_try_bind(const StubAddress *want, uint16_t fallback_port) {
        StubAddress a = *want;
        int udp = -1, tcp = -1, r;

        r = bind_pair(&a, &udp, &tcp);
        if ((r == -EADDRINUSE || r == -EACCES) && address_port(&a) == STUB_DEFAULT_PORT) {
                address_set_port(&a, fallback_port ? fallback_port : STUB_FALLBACK_PORT);
                r = bind_pair(&a, &udp, &tcp);
        }
        safe_close(udp);
        safe_close(tcp);
        return r < 0 ? r : 0;
}

/* Every worker gets a UDP and a TCP socket on `want`: the inherited ones
 * bound for it first (each keeps its queued queries), then new ones on
 * the same address (SO_REUSEPORT) for workers still without. An address
 * that cannot be bound at all is recorded in s->unbound, not an error. */
static int listen_on(Stub *s, const StubAddress *want, StubSocket *inherit, size_t n_inherit) {
        StubAddress bound = { .len = 0 };
        unsigned n_udp = 0, n_tcp = 0;
        char text[64];
        int r;

        for (size_t i = 0; i < n_inherit; i++) {
                StubSocket *in = &inherit[i];
                StubAddress a = { .len = sizeof a.sa };

                if (in->fd < 0 || !address_equal(&in->want, want))
                        continue;
                if (getsockname(in->fd, (struct sockaddr *) &a.sa, &a.len) < 0 ||
                    !is_loopback((const struct sockaddr *) &a.sa) || (bound.len > 0 && !address_equal(&a, &bound)))
                        continue; /* closed with the unused ones */
                bound = a;
                int fd = TAKE_FD(in->fd);
                r = stub_add_socket(s, in->tcp ? n_tcp++ : n_udp++, fd, in->tcp, want);
                if (r < 0)
                        return r;
        }
        if (bound.len == 0) {
                int udp = -1, tcp = -1;
                r = bind_want(s, want, &bound, &udp, &tcp);
                if (r < 0) {
                        (void) stub_address_text(want, text, sizeof text);
                        stub_log(s, LOG_ERR, "cannot listen on %s: %s", text, strerror(-r));
                        s->unbound[s->n_unbound++] = (StubUnbound) { .want = *want, .error = -r };
                        return 0;
                }
                r = stub_add_socket(s, n_udp++, udp, false, want);
                if (r < 0) {
                        safe_close(tcp);
                        return r;
                }
                r = stub_add_socket(s, n_tcp++, tcp, true, want);
                if (r < 0)
                        return r;
        }
        s->addresses[s->n_addresses++] = bound;

        /* One socket of each per worker: the kernel spreads queries over
         * them. A worker without is only a lost share of the load. */
        while (n_udp < s->n_workers || n_tcp < s->n_workers) {
                bool tcp = n_tcp < n_udp;
                int fd = -1;
                r = open_socket(&bound, tcp, &fd);
                if (r < 0) {
                        (void) stub_address_text(&bound, text, sizeof text);
                        stub_log(s, LOG_WARNING, "cannot open another socket on %s: %s", text, strerror(-r));
                        break;
                }
                r = stub_add_socket(s, tcp ? n_tcp++ : n_udp++, fd, tcp, want);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Every listen address, from inherited sockets or bound anew; inherited
 * sockets for no listen address are closed. */
static int bind_all(Stub *s, const StubConfig *config, StubSocket *inherit, size_t n_inherit) {
        StubAddress def = { .len = sizeof(struct sockaddr_in) };
        const StubAddress *listen = config->listen;
        size_t n_listen = config->n_listen;
        int r;

        if (n_listen == 0) {
                struct sockaddr_in *in = (struct sockaddr_in *) (void *) &def.sa;
                in->sin_family = AF_INET;
                in->sin_port = htons(STUB_DEFAULT_PORT);
                inet_pton(AF_INET, STUB_DEFAULT_ADDRESS, &in->sin_addr);
                listen = &def;
                n_listen = 1;
        }
        if (n_listen > STUB_ADDRESSES_MAX)
                return -E2BIG;

        for (size_t i = 0; i < n_listen; i++) {
                const StubAddress *a = &listen[i];
                bool dup = false;

                if ((a->sa.ss_family != AF_INET && a->sa.ss_family != AF_INET6) ||
                    !is_loopback((const struct sockaddr *) &a->sa)) {
                        stub_log(s, LOG_ERR, "refusing to listen on a non-loopback address");
                        return -EADDRNOTAVAIL;
                }
                for (size_t k = 0; k < i; k++)
                        dup = dup || address_equal(&listen[k], a);
                if (dup)
                        continue;
                r = listen_on(s, a, inherit, n_inherit);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Takes over activated sockets: every worker watches each. */
static int adopt_fds(Stub *s, const StubConfig *config) {
        size_t first = s->n_socks;

        s->activated = true;
        for (size_t i = 0; i < config->n_fds; i++) {
                int fd = config->fds[i], type = 0;
                socklen_t tl = sizeof type;
                StubAddress a = { .len = sizeof a.sa };
                int r = 0;

                if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
                    getsockname(fd, (struct sockaddr *) &a.sa, &a.len) < 0)
                        r = -errno;
                if (r >= 0)
                        r = stub_own(s, fd, type == SOCK_STREAM, &a);
                else
                        safe_close(fd);
                if (r < 0) {
                        for (size_t k = i + 1; k < config->n_fds; k++)
                                safe_close(config->fds[k]);
                        return r;
                }
        }
        for (size_t i = first; i < s->n_socks; i++) {
                int fd = s->socks[i].fd, type = 0;
                socklen_t tl = sizeof type;
                const StubAddress *a = &s->socks[i].want;

                if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0)
                        return -errno;
                if (type != SOCK_DGRAM && type != SOCK_STREAM) {
                        stub_log(s, LOG_ERR, "socket-activated fd %d is neither UDP nor TCP", fd);
                        return -EINVAL;
                }
                if (!is_loopback((const struct sockaddr *) &a->sa)) {
                        stub_log(s, LOG_ERR, "socket-activated fd %d is not on a loopback address", fd);
                        return -EADDRNOTAVAIL;
                }
                int flags = fcntl(fd, F_GETFL);
                if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
                        return -errno;
                (void) fcntl(fd, F_SETFD, FD_CLOEXEC);

                bool known = false;
                for (size_t k = 0; k < s->n_addresses; k++)
                        known = known || address_equal(&s->addresses[k], a);
                if (!known && s->n_addresses < STUB_ADDRESSES_MAX)
                        s->addresses[s->n_addresses++] = *a;

                for (unsigned k = 0; k < s->n_workers; k++) {
                        int r = worker_add_listener(&s->workers[k], fd, type == SOCK_STREAM);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

int stub_sockets(const Stub *s, StubSocket **ret, size_t *ret_n) {
        StubSocket *t = calloc(s->n_socks ? s->n_socks : 1, sizeof *t);
        size_t n = 0;

        if (!t)
                return -ENOMEM;
        for (size_t i = 0; i < s->n_socks; i++) {
                int fd = fcntl(s->socks[i].fd, F_DUPFD_CLOEXEC, 3);
                if (fd < 0) {
                        int r = -errno;
                        while (n > 0)
                                safe_close(t[--n].fd);
                        free(t);
                        return r;
                }
                t[n] = s->socks[i];
                t[n++].fd = fd;
        }
        *ret = t;
        *ret_n = n;
        return 0;
}

size_t stub_n_unbound(const Stub *s) {
        return s ? s->n_unbound : 0;
}

const StubUnbound *stub_unbound(const Stub *s, size_t i) {
        return s && i < s->n_unbound ? &s->unbound[i] : NULL;
}

int stub_activated_fds(int **ret_fds) {
        char **names = NULL;
        int n = sd_listen_fds_with_names(0, &names);
        int *fds = NULL, found = 0;

        if (n <= 0) {
                *ret_fds = NULL;
                return n;
        }
        fds = calloc((size_t) n, sizeof *fds);
        if (!fds) {
                for (int i = 0; i < n; i++)
                        free(names[i]);
                free(names);
                return -ENOMEM;
        }
        for (int i = 0; i < n; i++) {
                if (names && names[i] && strcmp(names[i], "stub") == 0)
                        fds[found++] = SD_LISTEN_FDS_START + i;
                if (names)
                        free(names[i]);
        }
        free(names);
        *ret_fds = fds;
        return found;
}

/* ---- the stub's lifetime ---- */

/* The CPUs this process may run on (CPUAffinity=, a cpuset, taskset):
 * workers beyond them would only take turns. */
static unsigned usable_cpus(void) {
        cpu_set_t set;
        long n;

        if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
                return (unsigned) CPU_COUNT(&set);
        n = sysconf(_SC_NPROCESSORS_ONLN);
        return n > 0 ? (unsigned) n : 1;
}

static void stub_unref(Stub *s) {
        if (atomic_fetch_sub(&s->refs, 1) != 1)
                return;
        for (unsigned i = 0; i < s->n_workers; i++)
                pthread_mutex_destroy(&s->workers[i].lock);
        free(s->workers);
        pthread_mutex_destroy(&s->setup_lock);
        pthread_cond_destroy(&s->setup_cond);
        free(s);
}

/* ---- TCP connections ---- */

static void conn_unref(TcpConn *c) {
        if (atomic_fetch_sub(&c->refs, 1) != 1)
                return;
        free(c->in);
        free(c);
}

static void conn_close(TcpConn *c) {
        Worker *w = c->worker;

        if (c->closed)
                return;
        c->closed = true;
        c->io = sd_event_source_disable_unref(c->io);
        c->idle = sd_event_source_disable_unref(c->idle);
        c->fd = safe_close(c->fd);
        for (OutBuf *o = c->out_head, *next; o; o = next) {
                next = o->next;
                free(o);
        }
        c->out_head = c->out_tail = NULL;
        c->out_bytes = 0;
        if (c->prev)
                c->prev->next = c->next;
        else
                w->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = c->next = NULL;
        atomic_fetch_sub(&w->stub->tcp_connections, 1);
        conn_unref(c);
}

static void conn_update(TcpConn *c);
static void conn_kick(TcpConn *c);

static int conn_flush(TcpConn *c) {
        while (c->out_head) {
                OutBuf *o = c->out_head;
                ssize_t n = send(c->fd, o->data + c->out_off, o->len - c->out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        return -errno;
                }
                c->out_off += (size_t) n;
                c->out_bytes -= (size_t) n;
                if (c->out_off < o->len)
                        return 0;
                c->out_head = o->next;
                if (!c->out_head)
                        c->out_tail = NULL;
                c->out_off = 0;
                free(o);
        }
        return 0;
}

static void conn_send(TcpConn *c, const uint8_t *msg, size_t len) {
        if (c->closed)
                return;
        OutBuf *o = malloc(sizeof *o + 2 + len);
        if (!o) {
                conn_close(c);
                return;
        }
        o->next = NULL;
        o->len = 2 + len;
        o->data[0] = (uint8_t) (len >> 8);
        o->data[1] = (uint8_t) len;
        memcpy(o->data + 2, msg, len);
        if (c->out_tail)
                c->out_tail->next = o;
        else
                c->out_head = o;
        c->out_tail = o;
        c->out_bytes += o->len;
        if (conn_flush(c) < 0) {
                conn_close(c);
                return;
        }
        conn_update(c);
}

/* ---- answering ---- */

static void send_to_client(Worker *w, const Client *cl, const uint8_t *msg, size_t len) {
        if (cl->tcp) {
                conn_send(cl->conn, msg, len);
                return;
        }
        /* An answer to the batch on_udp() is working through: sent with
         * the others when it is done. */
        if (cl->fd == w->tx_fd && w->n_tx < MMSG_BATCH && len <= sizeof w->tx[0]) {
                struct mmsghdr *m = &w->tx_msgs[w->n_tx];

                memcpy(w->tx[w->n_tx], msg, len);
                memcpy(&w->tx_peers[w->n_tx], &cl->peer, cl->peer_len);
                w->tx_iov[w->n_tx] = (struct iovec) { .iov_base = w->tx[w->n_tx], .iov_len = len };
                *m = (struct mmsghdr) { .msg_hdr = {
                        .msg_name = &w->tx_peers[w->n_tx],
                        .msg_namelen = cl->peer_len,
                        .msg_iov = &w->tx_iov[w->n_tx],
                        .msg_iovlen = 1,
                } };
                w->n_tx++;
                return;
        }
        /* UDP: a full socket buffer drops the answer; the client retries. */
        (void) sendto(cl->fd, msg, len, MSG_DONTWAIT | MSG_NOSIGNAL, (const struct sockaddr *) &cl->peer,
                      cl->peer_len);
}

static void respond_error(Worker *w, const Client *cl, const uint8_t *query, size_t qlen, uint16_t rcode, int ede,
                          const char *text) {
        size_t len;
        if (dns_wire_error_response(query, qlen, rcode, ede, text, w->out, sizeof w->out, &len) == 0)
                send_to_client(w, cl, w->out, len);
}

/* Sends `answer` (parsed as a), fitted to the client's query. */
static void respond_answer(Worker *w, const Client *cl, const uint8_t *query, size_t qlen, const DnsMessage *q,
                           const uint8_t *answer, size_t alen, const DnsMessage *a, int ede, const char *text) {
        size_t limit = cl->tcp ? DNS_MESSAGE_MAX : dns_wire_udp_limit(q), len;

        if (dns_wire_adapt_answer(query, qlen, q, answer, alen, a, limit, ede, text, w->out, sizeof w->out, &len) <
            0) {
                respond_error(w, cl, query, qlen, DNS_RCODE_SERVFAIL, DNS_EDE_OTHER, "cannot build the answer");
                return;
        }
        if ((w->out[DNS_OFF_FLAGS] & (DNS_FLAG_TC >> 8)) && !(a->flags & DNS_FLAG_TC))
                count(w, STAT_TRUNCATED);
        send_to_client(w, cl, w->out, len);
}

/* Serves a stale cache entry (RFC 8767) when there is one. */
static bool respond_stale(Worker *w, const Client *cl, const uint8_t *query, size_t qlen, const DnsMessage *q) {
        Cache *cache = w->stub->config.cache;
        DnsMessage a;
        uint64_t now;
        size_t len;

        if (!cache_serve_stale(cache))
                return false;
        (void) sd_event_now(w->event, CLOCK_MONOTONIC, &now);
        int r = cache_get(cache, q, now, true, w->scratch, sizeof w->scratch, &len);
        if (r <= 0 || dns_message_parse(w->scratch, len, &a) < 0)
                return false;
        if (r == CACHE_STALE) {
                count(w, STAT_STALE);
                respond_answer(w, cl, query, qlen, q, w->scratch, len, &a, DNS_EDE_STALE_ANSWER, "Stale Answer");
        } else
                respond_answer(w, cl, query, qlen, q, w->scratch, len, &a, -1, NULL);
        return true;
}

/* ---- forwarding ---- */

static void reply_release(StubReply *r, bool on_worker) {
        Worker *w = r->worker;

        if (on_worker) {
                r->timer = sd_event_source_disable_unref(r->timer);
                if (r->pending_prev)
                        r->pending_prev->pending_next = r->pending_next;
                else if (w->pending == r)
                        w->pending = r->pending_next;
                if (r->pending_next)
                        r->pending_next->pending_prev = r->pending_prev;
                if (!r->answered) {
                        w->inflight--;
                        if (r->client.tcp)
                                r->client.conn->pending--;
                }
                if (r->client.tcp && !r->client.conn->closed)
                        conn_kick(r->client.conn);
        }
        if (r->client.tcp)
                conn_unref(r->client.conn);
        Stub *s = r->stub;
        free(r->answer);
        free(r);
        stub_unref(s);
}

/* The answer for a finished reply; on the worker thread. */
static void reply_answer(StubReply *r) {
        Worker *w = r->worker;
        const Client *cl = &r->client;
        DnsMessage q, a;
        uint64_t now;

        if (dns_message_parse(r->query, r->query_len, &q) < 0)
                return; /* it parsed when it came in */

        if (!r->failed) {
                if (dns_message_parse(r->answer, r->answer_len, &a) < 0 || !(a.flags & DNS_FLAG_QR) ||
                    !a.has_question || !dns_name_equal(&a.qname, &q.qname) || a.qtype != q.qtype ||
                    a.qclass != q.qclass) {
                        r->failed = true;
                        r->rcode = DNS_RCODE_SERVFAIL;
                        r->ede = DNS_EDE_OTHER;
                        snprintf(r->ede_text, sizeof r->ede_text, "invalid answer from upstream");
                } else {
                        /* Kept even when it came too late for this client:
                         * the next one asking is served from the cache. */
                        (void) sd_event_now(w->event, CLOCK_MONOTONIC, &now);
                        (void) cache_put(w->stub->config.cache, &q, r->answer, r->answer_len, &a, now);
                        if (r->answered || (cl->tcp && cl->conn->closed))
                                return;
                        if (a.rcode == DNS_RCODE_SERVFAIL && respond_stale(w, cl, r->query, r->query_len, &q)) {
                                count(w, STAT_UPSTREAM_ERRORS);
                                return;
                        }
                        respond_answer(w, cl, r->query, r->query_len, &q, r->answer, r->answer_len, &a, -1, NULL);
                        return;
                }
        }
        if (r->answered || (cl->tcp && cl->conn->closed))
                return;
        count(w, STAT_UPSTREAM_ERRORS);
        if (respond_stale(w, cl, r->query, r->query_len, &q))
                return;
        respond_error(w, cl, r->query, r->query_len, r->rcode, r->ede, r->ede_text[0] ? r->ede_text : NULL);
}

static int on_reply_timeout(sd_event_source *src, uint64_t usec, void *userdata) {
        StubReply *r = userdata;
        Worker *w = r->worker;
        DnsMessage q;

        (void) src;
        (void) usec;
        r->timer = sd_event_source_disable_unref(r->timer);
        if (r->answered)
                return 0;
        count(w, STAT_TIMEOUTS);
        if (!(r->client.tcp && r->client.conn->closed) && dns_message_parse(r->query, r->query_len, &q) == 0 &&
            !respond_stale(w, &r->client, r->query, r->query_len, &q))
                respond_error(w, &r->client, r->query, r->query_len, DNS_RCODE_SERVFAIL,
                              DNS_EDE_NO_REACHABLE_AUTHORITY, "upstream timed out");
        /* The forwarder still owns the reply; it is freed when finished. */
        r->answered = true;
        w->inflight--;
        if (r->client.tcp) {
                r->client.conn->pending--;
                if (!r->client.conn->closed)
                        conn_kick(r->client.conn);
        }
        return 0;
}

/* The worker whose thread this is, if any. */
static _Thread_local Worker *current_worker;

static void reply_finish(StubReply *r) {
        Worker *w = r->worker;
        bool queued = false;

        /* Finished on the worker's own thread (its forwarder runs on its
         * loop): answered now, not after a trip through the eventfd. Not
         * inside forward(), whose caller may be walking a connection's
         * input, and not while the worker is being torn down. */
        if (current_worker == w && !w->forwarding && !w->closing) {
                reply_answer(r);
                reply_release(r, true);
                return;
        }

        /* The wake-up is written under the lock: once the worker has
         * stopped (under the lock too) its eventfd may be closed. */
        pthread_mutex_lock(&w->lock);
        if (!w->stopped) {
                uint64_t one = 1;
                r->next = NULL;
                if (w->queue_tail)
                        w->queue_tail->next = r;
                else
                        w->queue_head = r;
                w->queue_tail = r;
                queued = true;
                (void) !write(w->wake_fd, &one, sizeof one);
        }
        pthread_mutex_unlock(&w->lock);

        if (!queued)
                reply_release(r, false);
}

void stub_reply_done(StubReply *r, const uint8_t *answer, size_t len) {
        r->answer = len > 0 && len <= DNS_MESSAGE_MAX ? malloc(len) : NULL;
        if (r->answer) {
                memcpy(r->answer, answer, len);
                r->answer_len = len;
        } else {
                r->failed = true;
                r->rcode = DNS_RCODE_SERVFAIL;
                r->ede = DNS_EDE_OTHER;
                snprintf(r->ede_text, sizeof r->ede_text, "%s",
                         len == 0 || len > DNS_MESSAGE_MAX ? "invalid answer from upstream" : "out of memory");
        }
        reply_finish(r);
}

void *stub_reply_worker_data(const StubReply *r) {
        return r->worker->forward_data;
}

void stub_reply_error(StubReply *r, uint16_t rcode, int ede_code, const char *ede_text) {
        r->failed = true;
        r->rcode = rcode;
        r->ede = ede_code;
        snprintf(r->ede_text, sizeof r->ede_text, "%s", ede_text ? ede_text : "");
        reply_finish(r);
}

/* The query the forwarder gets: the client's ID and question, RD, CD, an
 * OPT with our size and the client's DO bit. */
static int upstream_query(const uint8_t *query, const DnsMessage *q, uint8_t *buf, size_t size, size_t *ret_len) {
        DnsBuilder b;

        dns_builder_init(&b, buf, size);
        dns_builder_header(&b, q->id, (uint16_t) (DNS_FLAG_RD | (q->flags & DNS_FLAG_CD)), 1, 0, 0, 1);
        dns_builder_bytes(&b, query + q->question_off, q->question_end - q->question_off);
        dns_builder_opt(&b, DNS_EDNS_UDP_SIZE, 0, q->edns.present && (q->edns.flags & DNS_EDNS_FLAG_DO), -1, NULL);
        return dns_builder_finish(&b, ret_len);
}

static void forward(Worker *w, const Client *cl, const uint8_t *query, size_t qlen, const DnsMessage *q) {
        Stub *s = w->stub;
        size_t len;

        if (!s->config.forward) {
                respond_error(w, cl, query, qlen, DNS_RCODE_SERVFAIL, DNS_EDE_NOT_READY, "no upstream");
                return;
        }
        if (w->inflight >= s->config.max_inflight) {
                respond_error(w, cl, query, qlen, DNS_RCODE_SERVFAIL, DNS_EDE_OTHER, "too many queries in flight");
                return;
        }
        if (upstream_query(query, q, w->scratch, sizeof w->scratch, &len) < 0) {
                respond_error(w, cl, query, qlen, DNS_RCODE_SERVFAIL, DNS_EDE_OTHER, NULL);
                return;
        }

        StubReply *r = calloc(1, sizeof *r + qlen);
        if (!r) {
                respond_error(w, cl, query, qlen, DNS_RCODE_SERVFAIL, DNS_EDE_OTHER, "out of memory");
                return;
        }
        if (sd_event_add_time_relative(w->event, &r->timer, CLOCK_MONOTONIC, s->config.forward_timeout_usec, 0,
                                       on_reply_timeout, r) < 0) {
                free(r);
                respond_error(w, cl, query, qlen, DNS_RCODE_SERVFAIL, DNS_EDE_OTHER, NULL);
                return;
        }
        r->stub = s;
        r->worker = w;
        r->client = *cl;
        r->query_len = qlen;
        memcpy(r->query, query, qlen);
        atomic_fetch_add(&s->refs, 1);
        if (cl->tcp) {
                atomic_fetch_add(&cl->conn->refs, 1);
                cl->conn->pending++;
        }
        r->pending_next = w->pending;
        if (w->pending)
                w->pending->pending_prev = r;
        w->pending = r;
        w->inflight++;
        count(w, STAT_FORWARDED);
        /* r may be finished (and queued) before this returns. */
        w->forwarding = true;
        s->config.forward(s->config.forward_userdata, w->scratch, len, r);
        w->forwarding = false;
}

/* ---- the query path ---- */

static bool is_blocked(Stub *s, const DnsName *name) {
        bool blocked;

        urcu_memb_read_lock();
        Blocklist *bl = rcu_dereference(s->blocklist);
        blocked = blocklist_match(bl, name);
        urcu_memb_read_unlock();
        return blocked;
}

/* An RFC 8482 4.2 answer to ANY: one HINFO "RFC8482" "" record. */
static int build_hinfo(Worker *w, const uint8_t *query, const DnsMessage *q, size_t *ret_len) {
        DnsBuilder b;

        dns_builder_init(&b, w->scratch, sizeof w->scratch);
        dns_builder_header(&b, q->id, DNS_FLAG_QR | DNS_FLAG_RA, 1, 1, 0, 0);
        dns_builder_bytes(&b, query + q->question_off, q->question_end - q->question_off);
        size_t rd = dns_builder_rr_begin(&b, DNS_HEADER_SIZE, DNS_TYPE_HINFO, DNS_CLASS_IN, ANY_TTL);
        dns_builder_u8(&b, 7);
        dns_builder_bytes(&b, "RFC8482", 7);
        dns_builder_u8(&b, 0);
        dns_builder_rr_end(&b, rd);
        return dns_builder_finish(&b, ret_len);
}

static void handle_query(Worker *w, const Client *cl, const uint8_t *query, size_t qlen) {
        Stub *s = w->stub;
        DnsMessage q, a;
        size_t len;
        uint64_t now;

        count(w, cl->tcp ? STAT_TCP_QUERIES : STAT_UDP_QUERIES);
        /* Unreadable, or an answer (answering answers is how loops start). */
        if (qlen < DNS_HEADER_SIZE || (query[DNS_OFF_FLAGS] & (DNS_FLAG_QR >> 8))) {
                count(w, STAT_DROPPED);
                return;
        }
        if (dns_message_parse(query, qlen, &q) < 0) {
                count(w, STAT_FORMERR);
                respond_error(w, cl, query, qlen, DNS_RCODE_FORMERR, -1, NULL);
                return;
        }
        if ((q.flags & DNS_OPCODE_MASK) != DNS_OPCODE_QUERY << DNS_OPCODE_SHIFT) {
                count(w, STAT_NOTIMP);
                respond_error(w, cl, query, qlen, DNS_RCODE_NOTIMP, -1, NULL);
                return;
        }
        if (!q.has_question) {
                count(w, STAT_FORMERR);
                respond_error(w, cl, query, qlen, DNS_RCODE_FORMERR, -1, NULL);
                return;
        }
        if (q.edns.present && q.edns.version > 0) {
                count(w, STAT_FORMERR);
                respond_error(w, cl, query, qlen, DNS_RCODE_BADVERS, -1, NULL);
                return;
        }
        if (q.qtype == DNS_TYPE_AXFR || q.qtype == DNS_TYPE_IXFR || q.qtype == DNS_TYPE_MAILA ||
            q.qtype == DNS_TYPE_MAILB || q.qtype == DNS_TYPE_OPT) {
                count(w, STAT_NOTIMP);
                respond_error(w, cl, query, qlen, DNS_RCODE_NOTIMP, DNS_EDE_NOT_SUPPORTED, NULL);
                return;
        }
        if (q.qclass != DNS_CLASS_IN && q.qclass != DNS_CLASS_ANY) {
                count(w, STAT_REFUSED);
                respond_error(w, cl, query, qlen, DNS_RCODE_REFUSED, DNS_EDE_NOT_SUPPORTED, NULL);
                return;
        }

        /* 1. the threat blocklist */
        if (is_blocked(s, &q.qname)) {
                count(w, STAT_BLOCKED);
                respond_error(w, cl, query, qlen, DNS_RCODE_NXDOMAIN, DNS_EDE_BLOCKED, "Blocked");
                return;
        }

        /* 2. tailnet names */
        switch (stub_tailnet_answer(w->reader, query, &q, w->scratch, sizeof w->scratch, &len)) {
        case STUB_TAILNET_ANSWER:
                count(w, STAT_TAILNET);
                if (dns_message_parse(w->scratch, len, &a) == 0)
                        respond_answer(w, cl, query, qlen, &q, w->scratch, len, &a, -1, NULL);
                return;
        case STUB_TAILNET_DOWN:
                count(w, STAT_TAILNET);
                respond_error(w, cl, query, qlen, DNS_RCODE_SERVFAIL, DNS_EDE_NOT_READY, "tailnet is down");
                return;
        case STUB_TAILNET_ERROR:
                count(w, STAT_TAILNET);
                respond_error(w, cl, query, qlen, DNS_RCODE_SERVFAIL, DNS_EDE_OTHER, "record store unreadable");
                return;
        case STUB_TAILNET_UNSURE:
                count(w, STAT_TAILNET);
                respond_error(w, cl, query, qlen, DNS_RCODE_SERVFAIL, DNS_EDE_NOT_READY,
                              "not in the saved tailnet map; the current one is not published yet");
                return;
        case STUB_TAILNET_NO_STORE:
                /* Before the first publish the name may be the tailnet's
                 * (the domain is not known yet): never forwarded. */
                if (!atomic_load_explicit(&s->ready, memory_order_relaxed)) {
                        count(w, STAT_TAILNET);
                        respond_error(w, cl, query, qlen, DNS_RCODE_SERVFAIL, DNS_EDE_NOT_READY,
                                      "the tailnet map is not published yet");
                        return;
                }
                break;
        case STUB_TAILNET_NO:
                break;
        }

        /* 3. ANY: answered here, minimally (RFC 8482) */
        if (q.qtype == DNS_TYPE_ANY) {
                count(w, STAT_ANY);
                if (build_hinfo(w, query, &q, &len) == 0 && dns_message_parse(w->scratch, len, &a) == 0)
                        respond_answer(w, cl, query, qlen, &q, w->scratch, len, &a, -1, NULL);
                return;
        }

        /* 4. the cache */
        if (s->config.cache) {
                (void) sd_event_now(w->event, CLOCK_MONOTONIC, &now);
                if (cache_get(s->config.cache, &q, now, false, w->scratch, sizeof w->scratch, &len) == CACHE_FRESH &&
                    dns_message_parse(w->scratch, len, &a) == 0) {
                        count(w, STAT_CACHE_HITS);
                        respond_answer(w, cl, query, qlen, &q, w->scratch, len, &a, -1, NULL);
                        return;
                }
        }

        /* 5. upstream */
        forward(w, cl, query, qlen, &q);
}

/* ---- sockets on the loop ---- */

/* Sends the answers of the batch; one that cannot go is dropped (the
 * client asks again), the rest still go. */
static void udp_flush(Worker *w) {
        unsigned sent = 0;

        while (sent < w->n_tx) {
                int n = sendmmsg(w->tx_fd, w->tx_msgs + sent, w->n_tx - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
                sent += n > 0 ? (unsigned) n : 1;
        }
        w->n_tx = 0;
        w->tx_fd = -1;
}

static int on_udp(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Listener *l = userdata;
        Worker *w = l->worker;

        (void) src;
        (void) revents;
        for (unsigned done = 0; done < UDP_BATCH;) {
                Client cl = { .fd = fd };
                int n;

                for (unsigned i = 0; i < MMSG_BATCH; i++) {
                        w->rx_iov[i] = (struct iovec) { .iov_base = w->rx[i], .iov_len = sizeof w->rx[i] };
                        w->rx_msgs[i] = (struct mmsghdr) { .msg_hdr = {
                                .msg_name = &w->rx_peers[i],
                                .msg_namelen = sizeof w->rx_peers[i],
                                .msg_iov = &w->rx_iov[i],
                                .msg_iovlen = 1,
                        } };
                }
                /* MSG_TRUNC: the real length of a datagram too long. */
                n = recvmmsg(fd, w->rx_msgs, MMSG_BATCH, MSG_DONTWAIT | MSG_TRUNC, NULL);
                if (n <= 0)
                        break; /* EAGAIN, or an ICMP error queued by an earlier send */
                w->tx_fd = fd;
                for (int i = 0; i < n; i++) {
                        const struct msghdr *h = &w->rx_msgs[i].msg_hdr;
                        size_t len = w->rx_msgs[i].msg_len;

                        memcpy(&cl.peer, h->msg_name, h->msg_namelen);
                        cl.peer_len = h->msg_namelen;
                        if (!is_loopback((const struct sockaddr *) &cl.peer) || len > sizeof w->rx[i] ||
                            (h->msg_flags & MSG_TRUNC)) {
                                count(w, STAT_DROPPED);
                                continue;
                        }
                        handle_query(w, &cl, w->rx[i], len);
                }
                udp_flush(w);
                done += (unsigned) n;
                /* Fewer than asked for: the socket is empty. */
                if ((unsigned) n < MMSG_BATCH)
                        break;
        }
        return 0;
}

/* Whether a whole message waits in the input buffer. */
static bool conn_has_message(const TcpConn *c) {
        return c->in_len >= 2 && c->in_len - 2 >= ((size_t) c->in[0] << 8 | c->in[1]);
}

static void conn_update(TcpConn *c) {
        Worker *w = c->worker;
        uint32_t events = 0;

        if (c->closed)
                return;
        /* Nothing more to do: the client is gone and every answer is out. */
        if (c->read_eof && c->pending == 0 && !c->out_head && !conn_has_message(c)) {
                conn_close(c);
                return;
        }
        if (!c->read_eof && c->pending < STUB_TCP_PIPELINE_MAX && c->out_bytes < TCP_OUT_MAX)
                events |= EPOLLIN;
        if (c->out_head)
                events |= EPOLLOUT;
        (void) sd_event_source_set_io_events(c->io, events);
        (void) sd_event_source_set_enabled(c->io, events ? SD_EVENT_ON : SD_EVENT_OFF);
        /* The idle clock runs while the connection has nothing to do. */
        (void) sd_event_source_set_time_relative(c->idle, w->stub->config.tcp_idle_usec);
        (void) sd_event_source_set_enabled(c->idle, SD_EVENT_ONESHOT);
}

/* Takes complete messages out of the input buffer. */
static void conn_process(TcpConn *c) {
        size_t off = 0;

        while (!c->closed && c->in_len - off >= 2 && c->pending < STUB_TCP_PIPELINE_MAX &&
               c->out_bytes < TCP_OUT_MAX) {
                size_t mlen = (size_t) c->in[off] << 8 | c->in[off + 1];
                if (mlen == 0) {
                        conn_close(c);
                        return;
                }
                if (c->in_len - off < 2 + mlen)
                        break;
                Client cl = { .tcp = true, .fd = c->fd, .conn = c };
                handle_query(c->worker, &cl, c->in + off + 2, mlen);
                off += 2 + mlen;
        }
        if (c->closed)
                return;
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
}

static int on_conn_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        TcpConn *c = userdata;

        (void) src;
        atomic_fetch_add(&c->refs, 1); /* handle_query() may close it */
        if (revents & EPOLLOUT) {
                if (conn_flush(c) < 0)
                        conn_close(c);
        }
        if (!c->closed && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->read_eof) {
                /* room for the largest message and its length */
                if (c->in_cap - c->in_len < 4096 && c->in_cap < 2 + DNS_MESSAGE_MAX) {
                        size_t cap = c->in_cap * 2 > 2 + DNS_MESSAGE_MAX ? 2 + DNS_MESSAGE_MAX : c->in_cap * 2;
                        uint8_t *in = realloc(c->in, cap);
                        if (!in)
                                conn_close(c);
                        else {
                                c->in = in;
                                c->in_cap = cap;
                        }
                }
                if (!c->closed && c->in_len < c->in_cap) {
                        ssize_t n = recv(fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
                        if (n > 0)
                                c->in_len += (size_t) n;
                        else if (n == 0)
                                c->read_eof = true;
                        else if (errno != EAGAIN && errno != EINTR)
                                conn_close(c);
                }
        }
        if (!c->closed)
                conn_process(c);
        /* A half-close inside a message: the rest will never come. */
        if (!c->closed && c->read_eof && !conn_has_message(c))
                c->in_len = 0;
        if (!c->closed)
                conn_update(c);
        conn_unref(c);
        return 0;
}

/* Room again (an answer went out, a query finished): serve what waits. */
static void conn_kick(TcpConn *c) {
        atomic_fetch_add(&c->refs, 1);
        conn_process(c);
        if (!c->closed)
                conn_update(c);
        conn_unref(c);
}

static int on_conn_idle(sd_event_source *src, uint64_t usec, void *userdata) {
        TcpConn *c = userdata;

        (void) src;
        (void) usec;
        if (c->pending > 0 || c->out_head) {
                /* Still busy: the clock starts again once it is not. */
                conn_update(c);
                return 0;
        }
        conn_close(c);
        return 0;
}

static int on_accept(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Listener *l = userdata;
        Worker *w = l->worker;
        Stub *s = w->stub;

        (void) src;
        (void) revents;
        for (unsigned i = 0; i < ACCEPT_BATCH; i++) {
                struct sockaddr_storage peer;
                socklen_t plen = sizeof peer;
                int cfd = accept4(fd, (struct sockaddr *) &peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (cfd < 0)
                        break;
                if (!is_loopback((const struct sockaddr *) &peer)) {
                        count(w, STAT_DROPPED);
                        safe_close(cfd);
                        continue;
                }
                if (atomic_fetch_add(&s->tcp_connections, 1) >= s->config.tcp_max_connections) {
                        atomic_fetch_sub(&s->tcp_connections, 1);
                        count(w, STAT_DROPPED);
                        safe_close(cfd);
                        continue;
                }
                TcpConn *c = calloc(1, sizeof *c);
                if (c)
                        c->in = malloc(c->in_cap = 1024);
                if (!c || !c->in ||
                    sd_event_add_io(w->event, &c->io, cfd, EPOLLIN, on_conn_io, c) < 0 ||
                    sd_event_add_time_relative(w->event, &c->idle, CLOCK_MONOTONIC, s->config.tcp_idle_usec, 0,
                                               on_conn_idle, c) < 0) {
                        if (c) {
                                sd_event_source_disable_unref(c->io);
                                free(c->in);
                                free(c);
                        }
                        atomic_fetch_sub(&s->tcp_connections, 1);
                        safe_close(cfd);
                        continue;
                }
                int one = 1;
                (void) setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                atomic_init(&c->refs, 1);
                c->worker = w;
                c->fd = cfd;
                c->next = w->conns;
                if (w->conns)
                        w->conns->prev = c;
                w->conns = c;
                count(w, STAT_TCP_CONNECTIONS);
        }
        return 0;
}

/* ---- workers ---- */

static int on_wake(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        Worker *w = userdata;
        uint64_t n;

        (void) src;
        (void) revents;
        (void) !read(fd, &n, sizeof n);
        if (atomic_load(&w->stop)) {
                sd_event_exit(w->event, 0);
                return 0;
        }
        if (atomic_load(&w->quiesce) && !w->quiesced) {
                /* A successor serves these sockets now; what is under way
                 * here is still answered. */
                w->quiesced = true;
                for (size_t i = 0; i < w->n_listeners; i++)
                        w->listeners[i].source = sd_event_source_disable_unref(w->listeners[i].source);
                for (TcpConn *c = w->conns, *next; c; c = next) {
                        next = c->next;
                        c->read_eof = true;
                        conn_update(c);
                }
                pthread_mutex_lock(&w->stub->setup_lock);
                w->stub->quiesce_done++;
                pthread_cond_broadcast(&w->stub->setup_cond);
                pthread_mutex_unlock(&w->stub->setup_lock);
        }
        pthread_mutex_lock(&w->lock);
        StubReply *r = w->queue_head;
        w->queue_head = w->queue_tail = NULL;
        pthread_mutex_unlock(&w->lock);
        while (r) {
                StubReply *next = r->next;
                reply_answer(r);
                reply_release(r, true);
                r = next;
        }
        return 0;
}

static int worker_setup(Worker *w) {
        int r = sd_event_new(&w->event);
        if (r < 0)
                return r;
        r = sd_event_add_io(w->event, &w->wake_source, w->wake_fd, EPOLLIN, on_wake, w);
        if (r < 0)
                return r;
        for (size_t i = 0; i < w->n_listeners; i++) {
                Listener *l = &w->listeners[i];
                r = sd_event_add_io(w->event, &l->source, l->fd, EPOLLIN, l->tcp ? on_accept : on_udp, l);
                if (r < 0)
                        return r;
        }
        if (w->stub->config.store_fallback_path)
                r = shm_reader_new_fallback(w->stub->config.store_path, w->stub->config.store_fallback_path,
                                            &w->reader);
        else
                r = shm_reader_new(w->stub->config.store_path, &w->reader);
        if (r < 0)
                w->reader = NULL; /* no tailnet answers; the rest still works */
        if (w->stub->config.worker_init) {
                r = w->stub->config.worker_init(w->stub->config.forward_userdata, w->event, &w->forward_data);
                if (r < 0)
                        return r;
                w->forward_ready = true;
        }
        return 0;
}

static void worker_teardown(Worker *w) {
        w->closing = true;
        /* The forwarder's part of this worker goes first, on its thread:
         * what it still owes is finished and dropped below with the rest. */
        if (w->forward_ready) {
                w->stub->config.worker_done(w->stub->config.forward_userdata, w->forward_data);
                w->forward_ready = false;
        }
        pthread_mutex_lock(&w->lock);
        w->stopped = true;
        StubReply *r = w->queue_head;
        w->queue_head = w->queue_tail = NULL;
        pthread_mutex_unlock(&w->lock);

        /* Finished but not yet answered: drop. */
        while (r) {
                StubReply *next = r->next;
                r->answered = true;
                reply_release(r, true);
                r = next;
        }
        /* Unfinished: they stay with the forwarder, without our loop. */
        for (StubReply *p = w->pending; p; p = p->pending_next)
                p->timer = sd_event_source_disable_unref(p->timer);
        w->pending = NULL;
        while (w->conns)
                conn_close(w->conns);
        /* The sockets are the Stub's: closed in stub_close(). */
        for (size_t i = 0; i < w->n_listeners; i++)
                w->listeners[i].source = sd_event_source_disable_unref(w->listeners[i].source);
        w->wake_source = sd_event_source_disable_unref(w->wake_source);
        w->event = sd_event_unref(w->event);
        w->reader = shm_reader_free(w->reader);
}

static void *worker_main(void *userdata) {
        Worker *w = userdata;
        Stub *s = w->stub;

        cache_thread_init();
        current_worker = w;
        int r = worker_setup(w);

        pthread_mutex_lock(&s->setup_lock);
        w->setup_result = r;
        s->setup_done++;
        pthread_cond_broadcast(&s->setup_cond);
        pthread_mutex_unlock(&s->setup_lock);

        if (r >= 0) {
                r = sd_event_loop(w->event);
                if (r < 0)
                        stub_log(s, LOG_ERR, "stub worker %u: event loop failed: %s", w->index, strerror(-r));
        }
        worker_teardown(w);
        return NULL;
}

static void workers_stop(Stub *s) {
        for (unsigned i = 0; i < s->n_workers; i++) {
                Worker *w = &s->workers[i];
                if (!w->started)
                        continue;
                atomic_store(&w->stop, true);
                uint64_t one = 1;
                (void) !write(w->wake_fd, &one, sizeof one);
                pthread_join(w->thread, NULL);
                w->started = false;
        }
}

static void stub_close(Stub *s) {
        workers_stop(s);
        for (unsigned i = 0; s->workers && i < s->n_workers; i++) {
                Worker *w = &s->workers[i];
                free(w->listeners);
                w->listeners = NULL;
                w->n_listeners = 0;
                w->wake_fd = safe_close(w->wake_fd);
        }
        /* No worker watches them any more. */
        for (size_t i = 0; i < s->n_socks; i++)
                safe_close(s->socks[i].fd);
        s->socks = mfree(s->socks);
        s->n_socks = 0;
        /* No worker reads it any more. */
        blocklist_free(s->blocklist);
        s->blocklist = NULL;
}

static void close_inherited(StubSocket *inherit, size_t n) {
        for (size_t i = 0; i < n; i++)
                inherit[i].fd = safe_close(inherit[i].fd);
}

int stub_new(const StubConfig *config, Stub **ret) {
        char list[STUB_ADDRESSES_MAX * 64] = "";
        _cleanup_free_ StubSocket *inherit = NULL;
        size_t n_inherit = config->n_inherit;
        int r;

        /* Ours from here on: a copy whose fds are taken one by one. */
        inherit = calloc(n_inherit ? n_inherit : 1, sizeof *inherit);
        if (inherit && n_inherit)
                memcpy(inherit, config->inherit, n_inherit * sizeof *inherit);
        Stub *s = inherit ? calloc(1, sizeof *s) : NULL;
        if (!s) {
                for (size_t i = 0; i < config->n_fds; i++)
                        safe_close(config->fds[i]);
                for (size_t i = 0; i < n_inherit; i++)
                        safe_close(config->inherit[i].fd);
                blocklist_free(config->blocklist);
                return -ENOMEM;
        }
        atomic_init(&s->refs, 1);
        s->config = *config;
        s->config.listen = NULL;
        s->config.fds = NULL;
        s->config.inherit = NULL;
        s->config.blocklist = NULL;
        s->blocklist = config->blocklist;
        atomic_init(&s->ready, config->ready);
        if (s->config.fallback_port == 0)
                s->config.fallback_port = STUB_FALLBACK_PORT;
        if (s->config.tcp_max_connections == 0)
                s->config.tcp_max_connections = STUB_DEFAULT_TCP_CONNECTIONS;
        if (s->config.tcp_idle_usec == 0)
                s->config.tcp_idle_usec = STUB_DEFAULT_TCP_IDLE_USEC;
        if (s->config.forward_timeout_usec == 0)
                s->config.forward_timeout_usec = STUB_DEFAULT_FORWARD_TIMEOUT_USEC;
        if (s->config.max_inflight == 0)
                s->config.max_inflight = STUB_DEFAULT_INFLIGHT;
        if (s->config.n_workers == 0)
                s->config.n_workers = usable_cpus();
        if (s->config.n_workers > STUB_WORKERS_MAX)
                s->config.n_workers = STUB_WORKERS_MAX;
        pthread_mutex_init(&s->setup_lock, NULL);
        pthread_cond_init(&s->setup_cond, NULL);

        s->workers = calloc(s->config.n_workers, sizeof *s->workers);
        if (!s->workers) {
                for (size_t i = 0; i < config->n_fds; i++)
                        safe_close(config->fds[i]);
                close_inherited(inherit, n_inherit);
                r = -ENOMEM;
                goto fail;
        }
        s->n_workers = s->config.n_workers;
        for (unsigned i = 0; i < s->n_workers; i++) {
                Worker *w = &s->workers[i];
                w->stub = s;
                w->index = i;
                w->wake_fd = -1;
                w->tx_fd = -1;
                pthread_mutex_init(&w->lock, NULL);
        }
        /* fds first: they are ours to close whatever happens next */
        r = config->n_fds > 0 ? adopt_fds(s, config) : bind_all(s, config, inherit, n_inherit);
        close_inherited(inherit, n_inherit); /* those bound for no listen address */
        if (r < 0)
                goto fail;
        for (unsigned i = 0; i < s->n_workers; i++) {
                Worker *w = &s->workers[i];
                w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
                if (w->wake_fd < 0) {
                        r = -errno;
                        goto fail;
                }
        }

        for (unsigned i = 0; i < s->n_workers; i++) {
                Worker *w = &s->workers[i];
                r = -pthread_create(&w->thread, NULL, worker_main, w);
                if (r < 0)
                        goto fail;
                w->started = true;
        }
        pthread_mutex_lock(&s->setup_lock);
        while (s->setup_done < s->n_workers)
                pthread_cond_wait(&s->setup_cond, &s->setup_lock);
        pthread_mutex_unlock(&s->setup_lock);
        for (unsigned i = 0; i < s->n_workers; i++)
                if (s->workers[i].setup_result < 0) {
                        r = s->workers[i].setup_result;
                        stub_log(s, LOG_ERR, "cannot start the stub's worker threads: %s", strerror(-r));
                        goto fail;
                }
        /* The workers made their store readers (which copy the paths): keep
         * no pointer into the caller's configuration, which a reload frees. */
        s->config.store_path = NULL;
        s->config.store_fallback_path = NULL;

        for (size_t i = 0; i < s->n_addresses; i++) {
                char text[64];
                if (stub_address_text(&s->addresses[i], text, sizeof text) < 0)
                        continue;
                if (i > 0)
                        strcat(list, ", ");
                strcat(list, text);
        }
        if (s->n_addresses == 0)
                stub_log(s, LOG_WARNING, "the DNS stub has no address to listen on yet");
        else
                stub_log(s, LOG_NOTICE, STUB_LOG_STARTED " on %s (UDP and TCP%s, %u worker%s)", list,
                 s->activated ? ", socket-activated" : "", s->n_workers, s->n_workers == 1 ? "" : "s");
        *ret = s;
        return 0;

fail:
        stub_close(s);
        stub_unref(s);
        return r;
}

Stub *stub_free(Stub *s) {
        if (!s)
                return NULL;
        stub_close(s);
        stub_unref(s);
        return NULL;
}

/* Returns once every worker has stopped reading: a query that arrives
 * after it is the successor's. */
void stub_quiesce(Stub *s) {
        unsigned n = 0;

        for (unsigned i = 0; i < s->n_workers; i++) {
                Worker *w = &s->workers[i];
                uint64_t one = 1;
                if (!w->started || atomic_exchange(&w->quiesce, true))
                        continue;
                n++;
                (void) !write(w->wake_fd, &one, sizeof one);
        }
        pthread_mutex_lock(&s->setup_lock);
        while (s->quiesce_done < n)
                pthread_cond_wait(&s->setup_cond, &s->setup_lock);
        s->quiesce_done = 0;
        pthread_mutex_unlock(&s->setup_lock);
}

bool stub_busy(const Stub *s) {
        /* stub_free()'s reference, and one per reply the forwarder has. */
        return atomic_load(&s->refs) > 1;
}

void stub_set_ready(Stub *s) {
        atomic_store(&s->ready, true);
}

bool stub_is_activated(const Stub *s) {
        return s->activated;
}

void stub_set_blocklist(Stub *s, Blocklist *bl) {
        cache_thread_init();
        Blocklist *old = rcu_xchg_pointer(&s->blocklist, bl);
        /* every worker that could see the old one has moved on */
        urcu_memb_synchronize_rcu();
        blocklist_free(old);
}

void stub_stats(const Stub *s, StubStats *ret) {
        uint64_t sum[_STAT_MAX] = { 0 };

        for (unsigned i = 0; i < s->n_workers; i++)
                for (unsigned k = 0; k < _STAT_MAX; k++)
                        sum[k] += atomic_load_explicit(&s->workers[i].stats[k], memory_order_relaxed);
        *ret = (StubStats) {
                .udp_queries = sum[STAT_UDP_QUERIES],
                .tcp_queries = sum[STAT_TCP_QUERIES],
                .tcp_connections = sum[STAT_TCP_CONNECTIONS],
                .dropped = sum[STAT_DROPPED],
                .formerr = sum[STAT_FORMERR],
                .refused = sum[STAT_REFUSED],
                .notimp = sum[STAT_NOTIMP],
                .blocked = sum[STAT_BLOCKED],
                .tailnet = sum[STAT_TAILNET],
                .any = sum[STAT_ANY],
                .cache_hits = sum[STAT_CACHE_HITS],
                .stale_answers = sum[STAT_STALE],
                .forwarded = sum[STAT_FORWARDED],
                .upstream_errors = sum[STAT_UPSTREAM_ERRORS],
                .timeouts = sum[STAT_TIMEOUTS],
                .truncated = sum[STAT_TRUNCATED],
        };
}
