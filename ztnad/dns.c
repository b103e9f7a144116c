/* SPDX-License-Identifier: MIT */
/*
 * The daemon's DNS side: the stub listener (its own worker threads), the
 * shared answer cache, the threat blocklist, and one DNS-over-TLS upstream
 * on the daemon's loop.
 *
 * The stub calls the forwarder on a worker thread. The query is queued and
 * an eventfd wakes the daemon's loop, which hands it to the upstream; the
 * answer goes back with stub_reply_done()/stub_reply_error(), which the
 * stub accepts from any thread. One upstream for all workers keeps one set
 * of warm, pipelined TLS connections.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "blocklist.h"
#include "cache.h"
#include "daemon.h"
#include "dns-wire.h"
#include "macro.h"
#include "resolvconf.h"
#include "stub.h"
#include "upstream.h"

#define USEC_PER_SEC UINT64_C(1000000)
#define BLOCKLIST_CHECK_USEC (5 * USEC_PER_SEC)
#define CACHE_PRUNE_USEC (60 * USEC_PER_SEC)

typedef struct ForwardJob {
        struct ForwardJob *next;
        StubReply *reply;
        size_t len;
        uint8_t query[];
} ForwardJob;

struct DaemonDns {
        Daemon *daemon;
        Stub *stub;
        Cache *cache;
        Upstream *upstream;
        Blocklist *blocklist; /* owned by the stub; ours to check for changes */
        sd_event_source *wake, *blocklist_timer, *prune_timer;
        int efd;
        pthread_mutex_t lock;
        ForwardJob *head, *tail;
        char *pins_text[CONFIG_PINS_MAX];
};

/* Worker thread: queue and wake the loop. */
static void forward(void *userdata, const uint8_t *query, size_t len, StubReply *reply) {
        DaemonDns *dns = userdata;
        ForwardJob *job = malloc(sizeof(*job) + len);
        if (!job) {
                stub_reply_error(reply, DNS_RCODE_SERVFAIL, DNS_EDE_OTHER, "out of memory");
                return;
        }
        job->next = NULL;
        job->reply = reply;
        job->len = len;
        memcpy(job->query, query, len);
        pthread_mutex_lock(&dns->lock);
        if (dns->tail)
                dns->tail->next = job;
        else
                dns->head = job;
        dns->tail = job;
        pthread_mutex_unlock(&dns->lock);
        (void) eventfd_write(dns->efd, 1);
}

static void on_upstream_done(void *userdata, const uint8_t *answer, size_t len, uint16_t rcode, int ede_code,
                             const char *ede_text) {
        ForwardJob *job = userdata;
        if (ede_code >= 0)
                stub_reply_error(job->reply, rcode, ede_code, ede_text);
        else
                stub_reply_done(job->reply, answer, len);
        free(job);
}

static ForwardJob *take_jobs(DaemonDns *dns) {
        pthread_mutex_lock(&dns->lock);
        ForwardJob *jobs = dns->head;
        dns->head = dns->tail = NULL;
        pthread_mutex_unlock(&dns->lock);
        return jobs;
}

static int on_wake(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        DaemonDns *dns = userdata;
        eventfd_t n;
        (void) s;
        (void) revents;
        (void) eventfd_read(fd, &n);
        for (ForwardJob *job = take_jobs(dns), *next; job; job = next) {
                next = job->next;
                if (upstream_resolve(dns->upstream, job->query, job->len, on_upstream_done, job) < 0) {
                        stub_reply_error(job->reply, DNS_RCODE_FORMERR, -1, NULL);
                        free(job);
                }
        }
        return 0;
}

/* The blocklist's names for the store, so the NSS module refuses them too. */
static int blocked_names(const Blocklist *bl, char ***ret, size_t *ret_n) {
        size_t n = blocklist_size(bl);
        char **names = calloc(n ? n : 1, sizeof(char *));
        if (!names)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                char buf[DNS_NAME_TEXT_MAX];
                if (blocklist_name(bl, i, buf, sizeof buf) < 0 || !(names[i] = strdup(buf))) {
                        for (size_t k = 0; k < i; k++)
                                free(names[k]);
                        free(names);
                        return -ENOMEM;
                }
        }
        *ret = names;
        *ret_n = n;
        return 0;
}

void daemon_blocked_free(Daemon *d) {
        for (size_t i = 0; i < d->n_blocked; i++)
                free(d->blocked[i]);
        d->blocked = mfree(d->blocked);
        d->n_blocked = 0;
}

static int load_blocklist(DaemonDns *dns, Blocklist **ret) {
        const ConfigPaths *p = &dns->daemon->config->blocklist;
        char err[DAEMON_ERROR_MAX];
        Blocklist *bl;
        int r = blocklist_load((const char *const *) p->items, p->n, &bl, err, sizeof err);
        if (r < 0) {
                daemon_log(SD_ERR, "blocklist: %s", err);
                return r;
        }
        if (blocklist_skipped(bl))
                daemon_log(SD_WARNING, "blocklist: %zu lines skipped, the first: %s", blocklist_skipped(bl),
                           blocklist_problem(bl));
        *ret = bl;
        return 0;
}

/* Swaps a freshly loaded blocklist into the stub and the store. */
static int apply_blocklist(DaemonDns *dns, Blocklist *bl) {
        Daemon *d = dns->daemon;
        char **names;
        size_t n;
        int r = blocked_names(bl, &names, &n);
        if (r < 0) {
                blocklist_free(bl);
                return r;
        }
        daemon_blocked_free(d);
        d->blocked = names;
        d->n_blocked = n;
        dns->blocklist = bl;
        stub_set_blocklist(dns->stub, bl);
        daemon_log(SD_INFO, "blocklist: %zu names", n);
        return 0;
}

static int on_blocklist_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        DaemonDns *dns = userdata;
        Blocklist *bl;
        (void) usec;
        if (dns->blocklist && blocklist_changed(dns->blocklist) && load_blocklist(dns, &bl) >= 0 &&
            apply_blocklist(dns, bl) >= 0)
                (void) daemon_republish(dns->daemon, "blocklist changed");
        (void) sd_event_source_set_time_relative(s, BLOCKLIST_CHECK_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

/* Expired answers leave the cache only when room is needed; a minute's
 * sweep keeps them from holding memory for nothing. */
static int on_prune_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        DaemonDns *dns = userdata;
        (void) usec;
        (void) cache_prune(dns->cache, usec);
        (void) sd_event_source_set_time_relative(s, CACHE_PRUNE_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static void stub_log(void *userdata, int priority, const char *message) {
        static const char *const prefixes[] = { SD_EMERG, SD_ALERT, SD_CRIT, SD_ERR,
                                                SD_WARNING, SD_NOTICE, SD_INFO, SD_DEBUG };
        (void) userdata;
        daemon_log(prefixes[priority >= 0 && priority < 8 ? priority : 6], "%s", message);
}

static int upstream_start(DaemonDns *dns) {
        const ZtnadConfig *c = dns->daemon->config;
        UpstreamServer servers[CONFIG_UPSTREAM_MAX] = {};
        struct sockaddr_storage own[STUB_ADDRESSES_MAX];
        ResolvConfServers fb = {};
        size_t n_own = stub_n_addresses(dns->stub);

        for (size_t i = 0; i < c->upstream.n && i < CONFIG_UPSTREAM_MAX; i++) {
                servers[i].addr = c->upstream.items[i].sa;
                servers[i].addrlen = c->upstream.items[i].sa_len;
                snprintf(servers[i].tls_name, sizeof servers[i].tls_name, "%s", c->upstream.items[i].tls_name);
        }
        for (size_t i = 0; i < c->spki_pins.n; i++) {
                dns->pins_text[i] = malloc(4 * ((CONFIG_SHA256_SIZE + 2) / 3) + 1);
                if (!dns->pins_text[i])
                        return -ENOMEM;
                EVP_EncodeBlock((unsigned char *) dns->pins_text[i], c->spki_pins.items[i].sha256, CONFIG_SHA256_SIZE);
        }
        /* The plaintext fallback never asks ztnad's own listeners. */
        for (size_t i = 0; i < n_own && i < STUB_ADDRESSES_MAX; i++)
                own[i] = stub_address(dns->stub, i)->sa;
        if (c->allow_plaintext_fallback && resolvconf_load(RESOLVCONF_PATH, own, n_own, &fb) < 0)
                daemon_log(SD_WARNING, "cannot read %s: the plaintext fallback uses 9.9.9.9 and 149.112.112.112",
                           RESOLVCONF_PATH);

        UpstreamConfig uc = {
                .servers = servers,
                .n_servers = c->upstream.n,
                .tls_ca_file = c->tls_ca_file,
                .spki_pins = (const char *const *) dns->pins_text,
                .n_spki_pins = c->spki_pins.n,
                .timeout_usec = c->upstream_timeout_usec,
                .allow_plaintext_fallback = c->allow_plaintext_fallback,
                .fallback = fb.addrs,
                .n_fallback = fb.n,
        };
        int r = upstream_new(dns->daemon->event, &uc, &dns->upstream);
        if (r < 0)
                daemon_log(SD_ERR, "cannot set up the upstream resolvers: %s", strerror(-r));
        return r;
}

int daemon_dns_start(Daemon *d) {
        const ZtnadConfig *c = d->config;
        StubAddress listen[CONFIG_LISTEN_MAX];
        Blocklist *bl = NULL;
        _cleanup_free_ int *fds = NULL;
        int n_fds, r;

        if (!c->stub)
                return 0;
        DaemonDns *dns = calloc(1, sizeof(*dns));
        if (!dns)
                return -ENOMEM;
        dns->daemon = d;
        dns->efd = -1;
        pthread_mutex_init(&dns->lock, NULL);
        d->dns = dns;

        if (c->cache_size > 0) {
                CacheConfig cc = { .max_bytes = c->cache_size, .serve_stale = c->serve_stale };
                r = cache_new(&cc, &dns->cache);
                if (r < 0)
                        return r;
        }
        r = load_blocklist(dns, &bl);
        if (r < 0)
                return r;

        dns->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (dns->efd < 0)
                return -errno;
        r = sd_event_add_io(d->event, &dns->wake, dns->efd, EPOLLIN, on_wake, dns);
        if (r < 0)
                return r;

        for (size_t i = 0; i < c->listen.n && i < CONFIG_LISTEN_MAX; i++) {
                listen[i].sa = c->listen.items[i].sa;
                listen[i].len = c->listen.items[i].sa_len;
        }
        n_fds = stub_activated_fds(&fds);
        if (n_fds < 0)
                n_fds = 0;
        StubConfig sc = {
                .listen = listen,
                .n_listen = c->listen.n,
                .fds = fds,
                .n_fds = (size_t) n_fds,
                .store_path = daemon_store_path(d),
                .cache = dns->cache,
                .blocklist = NULL,
                .forward = forward,
                .forward_userdata = dns,
                .log = stub_log,
        };
        r = stub_new(&sc, &dns->stub);
        if (r < 0) {
                daemon_log(SD_ERR, "cannot start the DNS stub: %s", strerror(-r));
                blocklist_free(bl);
                return r;
        }
        r = apply_blocklist(dns, bl);
        if (r < 0)
                return r;
        r = upstream_start(dns);
        if (r < 0)
                return r;
        r = sd_event_add_time_relative(d->event, &dns->blocklist_timer, CLOCK_MONOTONIC, BLOCKLIST_CHECK_USEC,
                                       USEC_PER_SEC, on_blocklist_timer, dns);
        if (r >= 0 && dns->cache)
                r = sd_event_add_time_relative(d->event, &dns->prune_timer, CLOCK_MONOTONIC, CACHE_PRUNE_USEC,
                                               USEC_PER_SEC, on_prune_timer, dns);
        return r < 0 ? r : 0;
}

void daemon_dns_stop(Daemon *d) {
        DaemonDns *dns = d->dns;
        if (!dns)
                return;
        /* Workers first: nothing new is forwarded. Replies still pending
         * stay valid and are finished below. */
        dns->stub = stub_free(dns->stub);
        dns->upstream = upstream_free(dns->upstream);
        for (ForwardJob *job = take_jobs(dns), *next; job; job = next) {
                next = job->next;
                stub_reply_error(job->reply, DNS_RCODE_SERVFAIL, DNS_EDE_OTHER, "shutting down");
                free(job);
        }
        dns->wake = sd_event_source_disable_unref(dns->wake);
        dns->blocklist_timer = sd_event_source_disable_unref(dns->blocklist_timer);
        dns->prune_timer = sd_event_source_disable_unref(dns->prune_timer);
        safe_close(dns->efd);
        dns->cache = cache_free(dns->cache);
        for (size_t i = 0; i < CONFIG_PINS_MAX; i++)
                free(dns->pins_text[i]);
        pthread_mutex_destroy(&dns->lock);
        d->dns = mfree(dns);
        daemon_blocked_free(d);
}

int daemon_dns_flush(Daemon *d) {
        if (d->dns && d->dns->cache)
                cache_flush(d->dns->cache);
        return 0;
}

json_t *daemon_dns_status(const Daemon *d) {
        const DaemonDns *dns = d->dns;
        if (!dns)
                return json_pack("{s:b}", "enabled", 0);
        json_t *addrs = json_array(), *servers = json_array();
        StubStats st;
        UpstreamStatus us;
        stub_stats(dns->stub, &st);
        upstream_get_status(dns->upstream, &us);
        for (size_t i = 0; i < stub_n_addresses(dns->stub); i++) {
                char buf[64];
                if (stub_address_text(stub_address(dns->stub, i), buf, sizeof buf) >= 0)
                        json_array_append_new(addrs, json_string(buf));
        }
        for (size_t i = 0; i < us.n_servers; i++) {
                const UpstreamServerStatus *s = &us.servers[i];
                json_array_append_new(servers,
                                      json_pack("{s:s, s:s, s:s, s:b, s:f, s:I, s:s?}", "address", s->address,
                                                "tls_name", s->tls_name, "state",
                                                upstream_server_state_to_string(s->state), "connected", s->connected,
                                                "srtt_ms", (double) s->srtt_usec / 1000.0, "failures",
                                                (json_int_t) s->n_failures, "last_error",
                                                s->last_error[0] ? s->last_error : NULL));
        }
        return json_pack("{s:b, s:o, s:I, s:I, s:I, s:I, s:I, s:b, s:o}", "enabled", 1, "listening", addrs,
                         "queries", (json_int_t) (st.udp_queries + st.tcp_queries), "cache_hits",
                         (json_int_t) st.cache_hits, "forwarded", (json_int_t) st.forwarded, "blocked",
                         (json_int_t) st.blocked, "servfail", (json_int_t) us.n_servfail, "plaintext_fallback",
                         us.allow_plaintext_fallback, "upstream", servers);
}
