/* SPDX-License-Identifier: MIT */
/*
 * stub-harness: the stub listener with the real cache, blocklist and store
 * reader, and a stand-in forwarder, for tests/integration/test-stub.sh to drive with
 * dig, kdig and Python. The forwarder runs on its own thread and finishes
 * replies from there, as the DoT upstream will: it sends each query over
 * plain UDP to --upstream (TCP when the answer is truncated) and appends
 * "NAME TYPE" to --forward-log first, so a test can tell what went out.
 *
 *     stub-harness [--listen ADDR:PORT]... [--activated] [--fallback-port N]
 *                  [--workers N] [--store PATH] [--blocklist FILE]...
 *                  [--upstream ADDR:PORT] [--forward-log FILE]
 *                  [--forward-drop] [--forward-timeout-ms N]
 *                  [--cache-size BYTES] [--no-cache] [--serve-stale]
 *                  [--tcp-idle-ms N] [--tcp-max N]
 *
 * --activated takes the "stub" sockets from $LISTEN_FDS. --forward-drop
 * never finishes a reply (until exit), to exercise the stub's timeout.
 * --cache-size defaults to the cache_size key's default, as in ztnad.
 * Signals: SIGHUP reloads the blocklist, SIGWINCH flushes the cache, SIGUSR2
 * prints the counters, SIGTERM and SIGINT stop (counters printed too). Not
 * SIGUSR1: liburcu's worker threads (the hash table's resize thread) unblock
 * it, being the signal flavour's SIGRCU, so it would kill the process.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <systemd/sd-event.h>
#include <unistd.h>

#include "common/dns-wire.h"
#include "conf/config.h"
#include "dns/cache-stats.h"
#include "dns/stub.h"

typedef struct Job {
        struct Job *next;
        StubReply *reply;
        size_t len;
        uint8_t query[];
} Job;

static struct {
        StubAddress upstream;
        bool have_upstream, drop;
        FILE *log;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        Job *head, *tail;
        Job *dropped;
        bool stop;
} fwd = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static const char *const *blocklist_paths;
static size_t n_blocklist_paths;
static Stub *stub;
static Cache *cache;

static int parse_address(const char *text, StubAddress *ret) {
        char host[INET6_ADDRSTRLEN + 2];
        const char *colon = strrchr(text, ':');
        if (!colon || (size_t) (colon - text) >= sizeof host)
                return -EINVAL;
        memcpy(host, text, (size_t) (colon - text));
        host[colon - text] = '\0';
        unsigned long port = strtoul(colon + 1, NULL, 10);
        if (port == 0 || port > 65535)
                return -EINVAL;
        memset(ret, 0, sizeof *ret);
        if (host[0] == '[' && host[strlen(host) - 1] == ']') {
                struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) (void *) &ret->sa;
                host[strlen(host) - 1] = '\0';
                if (inet_pton(AF_INET6, host + 1, &in6->sin6_addr) != 1)
                        return -EINVAL;
                in6->sin6_family = AF_INET6;
                in6->sin6_port = htons((uint16_t) port);
                ret->len = sizeof *in6;
                return 0;
        }
        struct sockaddr_in *in = (struct sockaddr_in *) (void *) &ret->sa;
        if (inet_pton(AF_INET, host, &in->sin_addr) != 1)
                return -EINVAL;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t) port);
        ret->len = sizeof *in;
        return 0;
}

static void log_line(void *userdata, int priority, const char *message) {
        (void) userdata;
        fprintf(stderr, "<%d>%s\n", priority, message);
        fflush(stderr);
}

/* ---- the forwarder thread ---- */

static void forward(void *userdata, const uint8_t *query, size_t len, StubReply *reply) {
        (void) userdata;
        Job *j = malloc(sizeof *j + len);
        if (!j) {
                stub_reply_error(reply, DNS_RCODE_SERVFAIL, DNS_EDE_OTHER, "out of memory");
                return;
        }
        j->next = NULL;
        j->reply = reply;
        j->len = len;
        memcpy(j->query, query, len);
        pthread_mutex_lock(&fwd.lock);
        if (fwd.tail)
                fwd.tail->next = j;
        else
                fwd.head = j;
        fwd.tail = j;
        pthread_cond_signal(&fwd.cond);
        pthread_mutex_unlock(&fwd.lock);
}

static ssize_t exchange_tcp(const Job *j, uint8_t *buf, size_t size) {
        struct timeval tv = { .tv_sec = 2 };
        uint8_t hdr[2] = { (uint8_t) (j->len >> 8), (uint8_t) j->len };
        ssize_t n = -1;
        size_t got = 0, want = 0;

        int fd = socket(fwd.upstream.sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, (struct sockaddr *) &fwd.upstream.sa, fwd.upstream.len) < 0 ||
            send(fd, hdr, 2, MSG_NOSIGNAL) != 2 || send(fd, j->query, j->len, MSG_NOSIGNAL) != (ssize_t) j->len)
                goto out;
        uint8_t lenbuf[2];
        while (got < 2) {
                ssize_t k = recv(fd, lenbuf + got, 2 - got, 0);
                if (k <= 0)
                        goto out;
                got += (size_t) k;
        }
        want = (size_t) lenbuf[0] << 8 | lenbuf[1];
        if (want > size)
                goto out;
        got = 0;
        while (got < want) {
                ssize_t k = recv(fd, buf + got, want - got, 0);
                if (k <= 0)
                        goto out;
                got += (size_t) k;
        }
        n = (ssize_t) want;
out:
        close(fd);
        return n;
}

static ssize_t exchange(const Job *j, uint8_t *buf, size_t size) {
        struct timeval tv = { .tv_sec = 2 };
        int fd = socket(fwd.upstream.sa.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -1;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        ssize_t n = -1;
        if (connect(fd, (struct sockaddr *) &fwd.upstream.sa, fwd.upstream.len) == 0 &&
            send(fd, j->query, j->len, 0) == (ssize_t) j->len)
                n = recv(fd, buf, size, 0);
        close(fd);
        if (n >= (ssize_t) DNS_HEADER_SIZE && (buf[DNS_OFF_FLAGS] & (DNS_FLAG_TC >> 8)))
                n = exchange_tcp(j, buf, size);
        return n;
}

static void *forwarder_main(void *userdata) {
        static uint8_t buf[DNS_MESSAGE_MAX];
        (void) userdata;

        for (;;) {
                pthread_mutex_lock(&fwd.lock);
                while (!fwd.head && !fwd.stop)
                        pthread_cond_wait(&fwd.cond, &fwd.lock);
                Job *j = fwd.head;
                if (j) {
                        fwd.head = j->next;
                        if (!fwd.head)
                                fwd.tail = NULL;
                }
                pthread_mutex_unlock(&fwd.lock);
                if (!j)
                        return NULL;

                DnsMessage q;
                char name[DNS_NAME_TEXT_MAX] = "?";
                if (dns_message_parse(j->query, j->len, &q) == 0) {
                        (void) dns_name_to_text(&q.qname, name, sizeof name);
                        if (fwd.log) {
                                fprintf(fwd.log, "%s %u\n", name, q.qtype);
                                fflush(fwd.log);
                        }
                }
                if (fwd.drop) {
                        j->next = fwd.dropped;
                        fwd.dropped = j;
                        continue;
                }
                ssize_t n = fwd.have_upstream ? exchange(j, buf, sizeof buf) : -1;
                if (n > 0)
                        stub_reply_done(j->reply, buf, (size_t) n);
                else
                        stub_reply_error(j->reply, DNS_RCODE_SERVFAIL, DNS_EDE_NO_REACHABLE_AUTHORITY,
                                         "upstream unreachable");
                free(j);
        }
}

/* ---- signals ---- */

static void print_stats(void) {
        StubStats st;
        CacheStats cs = { 0 };
        stub_stats(stub, &st);
        if (cache)
                cache_stats(cache, &cs);
        fprintf(stderr,
                "stats: udp=%" PRIu64 " tcp=%" PRIu64 " conns=%" PRIu64 " dropped=%" PRIu64 " formerr=%" PRIu64
                " refused=%" PRIu64 " notimp=%" PRIu64 " blocked=%" PRIu64 " tailnet=%" PRIu64 " any=%" PRIu64
                " cache_hits=%" PRIu64 " stale=%" PRIu64 " forwarded=%" PRIu64 " upstream_errors=%" PRIu64
                " timeouts=%" PRIu64 " truncated=%" PRIu64 " cache_entries=%" PRIu64 "\n",
                st.udp_queries, st.tcp_queries, st.tcp_connections, st.dropped, st.formerr, st.refused, st.notimp,
                st.blocked, st.tailnet, st.any, st.cache_hits, st.stale_answers, st.forwarded, st.upstream_errors,
                st.timeouts, st.truncated, cs.entries);
        fflush(stderr);
}

static int on_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        (void) userdata;
        switch (si->ssi_signo) {
        case SIGHUP: {
                Blocklist *bl = NULL;
                char err[512];
                int r = blocklist_load(blocklist_paths, n_blocklist_paths, &bl, err, sizeof err);
                if (r < 0)
                        fprintf(stderr, "<3>blocklist: %s\n", err);
                else {
                        fprintf(stderr, "<5>blocklist reloaded: %zu names\n", blocklist_size(bl));
                        stub_set_blocklist(stub, bl);
                }
                break;
        }
        case SIGWINCH:
                cache_flush(cache);
                fprintf(stderr, "<5>cache flushed\n");
                break;
        case SIGUSR2:
                print_stats();
                break;
        default:
                sd_event_exit(sd_event_source_get_event(s), 0);
        }
        fflush(stderr);
        return 0;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "listen", required_argument, NULL, 'l' },
                { "activated", no_argument, NULL, 'a' },
                { "fallback-port", required_argument, NULL, 'F' },
                { "workers", required_argument, NULL, 'w' },
                { "store", required_argument, NULL, 's' },
                { "blocklist", required_argument, NULL, 'b' },
                { "upstream", required_argument, NULL, 'u' },
                { "forward-log", required_argument, NULL, 'L' },
                { "forward-drop", no_argument, NULL, 'D' },
                { "forward-timeout-ms", required_argument, NULL, 'T' },
                { "cache-size", required_argument, NULL, 'c' },
                { "no-cache", no_argument, NULL, 'n' },
                { "serve-stale", no_argument, NULL, 'S' },
                { "tcp-idle-ms", required_argument, NULL, 'i' },
                { "tcp-max", required_argument, NULL, 'm' },
                { 0 },
        };
        StubAddress listen[STUB_ADDRESSES_MAX];
        const char *paths[64];
        /* No publisher here: the store given is taken as current. */
        StubConfig cfg = { .log = log_line, .ready = true };
        CacheConfig ccfg = { 0 };
        bool activated = false, no_cache = false;
        int *fds = NULL, r, opt;

        /* Before any thread starts (cache_new() starts liburcu's), so all of
         * them inherit the mask and only the loop gets the signals. */
        sigset_t mask;
        int sigs[] = { SIGHUP, SIGWINCH, SIGUSR2, SIGTERM, SIGINT };
        sigemptyset(&mask);
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
                sigaddset(&mask, sigs[i]);
        pthread_sigmask(SIG_BLOCK, &mask, NULL);

        {
                _cleanup_config_ ZtnadConfig *d = NULL;

                if (config_defaults(&d) < 0)
                        return 1;
                ccfg.max_bytes = d->cache_size;
        }
        while ((opt = getopt_long(argc, argv, "", options, NULL)) >= 0) {
                switch (opt) {
                case 'l':
                        if (cfg.n_listen == STUB_ADDRESSES_MAX || parse_address(optarg, &listen[cfg.n_listen]) < 0) {
                                fprintf(stderr, "bad --listen %s\n", optarg);
                                return 2;
                        }
                        cfg.n_listen++;
                        break;
                case 'a':
                        activated = true;
                        break;
                case 'F':
                        cfg.fallback_port = (uint16_t) atoi(optarg);
                        break;
                case 'w':
                        cfg.n_workers = (unsigned) atoi(optarg);
                        break;
                case 's':
                        cfg.store_path = optarg;
                        break;
                case 'b':
                        if (n_blocklist_paths == 64)
                                return 2;
                        paths[n_blocklist_paths++] = optarg;
                        break;
                case 'u':
                        if (parse_address(optarg, &fwd.upstream) < 0) {
                                fprintf(stderr, "bad --upstream %s\n", optarg);
                                return 2;
                        }
                        fwd.have_upstream = true;
                        break;
                case 'L':
                        fwd.log = fopen(optarg, "ae");
                        if (!fwd.log) {
                                perror(optarg);
                                return 2;
                        }
                        break;
                case 'D':
                        fwd.drop = true;
                        break;
                case 'T':
                        cfg.forward_timeout_usec = strtoull(optarg, NULL, 10) * 1000;
                        break;
                case 'c':
                        ccfg.max_bytes = strtoull(optarg, NULL, 10);
                        break;
                case 'n':
                        no_cache = true;
                        break;
                case 'S':
                        ccfg.serve_stale = true;
                        break;
                case 'i':
                        cfg.tcp_idle_usec = strtoull(optarg, NULL, 10) * 1000;
                        break;
                case 'm':
                        cfg.tcp_max_connections = (unsigned) atoi(optarg);
                        break;
                default:
                        return 2;
                }
        }
        blocklist_paths = paths;
        cfg.listen = listen;

        if (!no_cache && cache_new(&ccfg, &cache) < 0)
                return 1;
        cfg.cache = cache;
        if (n_blocklist_paths > 0) {
                char err[512];
                r = blocklist_load(paths, n_blocklist_paths, &cfg.blocklist, err, sizeof err);
                if (r < 0) {
                        fprintf(stderr, "blocklist: %s\n", err);
                        return 1;
                }
                if (blocklist_skipped(cfg.blocklist) > 0)
                        fprintf(stderr, "<4>blocklist: %zu lines skipped, the first: %s\n",
                                blocklist_skipped(cfg.blocklist), blocklist_problem(cfg.blocklist));
        }
        if (activated) {
                r = stub_activated_fds(&fds);
                if (r <= 0) {
                        fprintf(stderr, "no socket-activated \"stub\" fds (%d)\n", r);
                        return 1;
                }
                cfg.fds = fds;
                cfg.n_fds = (size_t) r;
        }
        cfg.forward = forward;

        pthread_t fthread;
        if (pthread_create(&fthread, NULL, forwarder_main, NULL) != 0)
                return 1;

        r = stub_new(&cfg, &stub);
        free(fds);
        if (r < 0) {
                fprintf(stderr, "stub_new: %s\n", strerror(-r));
                pthread_mutex_lock(&fwd.lock);
                fwd.stop = true;
                pthread_cond_signal(&fwd.cond);
                pthread_mutex_unlock(&fwd.lock);
                pthread_join(fthread, NULL);
                cache_free(cache);
                return 1;
        }
        for (size_t i = 0; i < stub_n_addresses(stub); i++) {
                char text[64];
                if (stub_address_text(stub_address(stub, i), text, sizeof text) >= 0)
                        printf("listening %s\n", text);
        }
        fflush(stdout);

        sd_event *e = NULL;
        if (sd_event_default(&e) < 0)
                return 1;
        for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
                sd_event_add_signal(e, NULL, sigs[i], on_signal, NULL);
        r = sd_event_loop(e);
        print_stats();

        stub = stub_free(stub);
        pthread_mutex_lock(&fwd.lock);
        fwd.stop = true;
        pthread_cond_signal(&fwd.cond);
        pthread_mutex_unlock(&fwd.lock);
        pthread_join(fthread, NULL);
        /* the stub is gone: these finishes are dropped, but each must happen */
        for (Job *j = fwd.dropped, *next; j; j = next) {
                next = j->next;
                stub_reply_error(j->reply, DNS_RCODE_SERVFAIL, -1, NULL);
                free(j);
        }
        for (Job *j = fwd.head, *next; j; j = next) {
                next = j->next;
                stub_reply_error(j->reply, DNS_RCODE_SERVFAIL, -1, NULL);
                free(j);
        }
        cache_free(cache);
        sd_event_unref(e);
        if (fwd.log)
                fclose(fwd.log);
        return r < 0 ? 1 : 0;
}
