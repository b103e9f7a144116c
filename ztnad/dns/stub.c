/* SPDX-License-Identifier: MIT */
/*
 * The DNS stub's query path (see stub.h), on a worker's thread: a query
 * from a UDP socket or a TCP connection through handle_query() (the
 * blocklist, tailnet names, ANY, the cache) to an answer or to the
 * forwarder, a forwarded reply back to its client, and the worker's loop
 * and thread. The hot path, on_udp() -> handle_query() -> respond_*() or
 * forward(), stays in this one file so the compiler inlines it whole.
 * What the files share and how they call each other: stub-internal.h.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <unistd.h>

#include <systemd/sd-event.h>
#include <urcu/urcu-memb.h>

#include "common/dns-wire.h"
#include "common/log.h"
#include "macro.h"
#include "shm.h"
#include "dns/stub-tailnet.h"
#include "dns/stub-internal.h"

#define UDP_BATCH 64u          /* datagrams per wakeup, for fairness */
#define ACCEPT_BATCH 16u
#define ANY_TTL 3600u          /* the RFC 8482 HINFO record */

/* ---- logging ---- */

__attribute__((format(printf, 3, 4))) void stub_log(const Stub *s, int priority, const char *fmt, ...) {
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

/* Also the sockets' check (stub-sockets.c): kept here, beside on_udp(),
 * which calls it for every datagram. */
bool stub_is_loopback(const struct sockaddr *sa) {
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

/* ---- the stub's references ---- */

/* The last one frees it: stub_free()'s (stub-lifetime.c) or an unfinished
 * reply's. */
void stub_unref(Stub *s) {
        if (atomic_fetch_sub(&s->refs, 1) != 1)
                return;
        for (unsigned i = 0; i < s->n_workers; i++)
                pthread_mutex_destroy(&s->workers[i].lock);
        free(s->workers);
        pthread_mutex_destroy(&s->setup_lock);
        pthread_cond_destroy(&s->setup_cond);
        free(s);
}

static void conn_kick(TcpConn *c);

/* ---- answering ---- */

static void send_to_client(Worker *w, const Client *cl, const uint8_t *msg, size_t len) {
        if (cl->tcp) {
                stub_conn_send(cl->conn, msg, len);
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
                stub_conn_unref(r->client.conn);
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
                        if (!stub_is_loopback((const struct sockaddr *) &cl.peer) || len > sizeof w->rx[i] ||
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

/* Takes complete messages out of the input buffer. */
static void conn_process(TcpConn *c) {
        size_t off = 0;

        while (!c->closed && c->in_len - off >= 2 && c->pending < STUB_TCP_PIPELINE_MAX &&
               c->out_bytes < TCP_OUT_MAX) {
                size_t mlen = (size_t) c->in[off] << 8 | c->in[off + 1];
                if (mlen == 0) {
                        stub_conn_close(c);
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
                if (stub_conn_flush(c) < 0)
                        stub_conn_close(c);
        }
        if (!c->closed && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !c->read_eof) {
                /* room for the largest message and its length */
                if (c->in_cap - c->in_len < 4096 && c->in_cap < 2 + DNS_MESSAGE_MAX) {
                        size_t cap = c->in_cap * 2 > 2 + DNS_MESSAGE_MAX ? 2 + DNS_MESSAGE_MAX : c->in_cap * 2;
                        uint8_t *in = realloc(c->in, cap);
                        if (!in)
                                stub_conn_close(c);
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
                                stub_conn_close(c);
                }
        }
        if (!c->closed)
                conn_process(c);
        /* A half-close inside a message: the rest will never come. */
        if (!c->closed && c->read_eof && !stub_conn_has_message(c))
                c->in_len = 0;
        if (!c->closed)
                stub_conn_update(c);
        stub_conn_unref(c);
        return 0;
}

/* Room again (an answer went out, a query finished): serve what waits. */
static void conn_kick(TcpConn *c) {
        atomic_fetch_add(&c->refs, 1);
        conn_process(c);
        if (!c->closed)
                stub_conn_update(c);
        stub_conn_unref(c);
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
                if (!stub_is_loopback((const struct sockaddr *) &peer)) {
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
                                               stub_on_conn_idle, c) < 0) {
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
                        stub_conn_update(c);
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
                stub_conn_close(w->conns);
        /* The sockets are the Stub's: closed in stub_close(). */
        for (size_t i = 0; i < w->n_listeners; i++)
                w->listeners[i].source = sd_event_source_disable_unref(w->listeners[i].source);
        w->wake_source = sd_event_source_disable_unref(w->wake_source);
        w->event = sd_event_unref(w->event);
        w->reader = shm_reader_free(w->reader);
}

/* A worker's thread, started by stub_new() (stub-lifetime.c). */
void *stub_worker_main(void *userdata) {
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

