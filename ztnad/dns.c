/* SPDX-License-Identifier: MIT */
/*
 * The daemon's DNS side: the stub listener (its own worker threads), the
 * shared answer cache, the threat blocklist, and one DNS-over-TLS upstream
 * on the daemon's loop.
 *
 * Each stub worker thread has its own upstream on its own loop (made by
 * the stub's worker_init hook), so a forwarded query never crosses threads:
 * handing each one to the daemon's loop and back cost two wake-ups, about
 * 150 us a query. Each worker keeps its own warm, pipelined connections.
 * For `ztna status` a worker copies its upstream's status under a lock
 * every second; the daemon merges the copies.
 */
#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "blocklist.h"
#include "cache.h"
#include "daemon.h"
#include "dns-manager.h"
#include "dns-state.h"
#include "dns-wire.h"
#include "macro.h"
#include "resolvconf.h"
#include "stub.h"
#include "upstream.h"

#define USEC_PER_SEC UINT64_C(1000000)
#define BLOCKLIST_CHECK_USEC (5 * USEC_PER_SEC)
#define CACHE_PRUNE_USEC (60 * USEC_PER_SEC)

#define STATUS_COPY_USEC USEC_PER_SEC

/* One stub worker's upstream, on that worker's thread and loop. */
typedef struct WorkerUpstream {
        struct WorkerUpstream *next;
        Upstream *upstream;
        sd_event_source *status_timer;
        pthread_mutex_t lock; /* `status` */
        UpstreamStatus status;
} WorkerUpstream;

struct DaemonDns {
        Daemon *daemon;
        Stub *stub;
        Cache *cache;
        Blocklist *blocklist; /* owned by the stub; ours to check for changes */
        sd_event_source *blocklist_timer, *prune_timer;
        UpstreamServer servers[CONFIG_UPSTREAM_MAX];
        ResolvConfServers fallback;
        UpstreamConfig upstream_config;
        UpstreamShared shared; /* the workers' upstreams share server health */
        char *pins_text[CONFIG_PINS_MAX];
        pthread_mutex_t lock; /* `workers` */
        WorkerUpstream *workers;
};

/* The worker's upstream status, copied for `ztna status` every
 * STATUS_COPY_USEC while the upstream has something under way; once it is
 * idle the last copy stands and the timer rests (no wake-ups of an idle
 * worker) until the next query starts it again. */
static int on_status_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        WorkerUpstream *wu = userdata;
        (void) usec;
        pthread_mutex_lock(&wu->lock);
        upstream_get_status(wu->upstream, &wu->status);
        pthread_mutex_unlock(&wu->lock);
        if (upstream_is_idle(wu->upstream))
                return sd_event_source_set_enabled(s, SD_EVENT_OFF);
        (void) sd_event_source_set_time_relative(s, STATUS_COPY_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static void status_timer_wake(WorkerUpstream *wu) {
        int enabled = SD_EVENT_ONESHOT;

        if (sd_event_source_get_enabled(wu->status_timer, &enabled) >= 0 && enabled == SD_EVENT_OFF &&
            sd_event_source_set_time_relative(wu->status_timer, STATUS_COPY_USEC) >= 0)
                (void) sd_event_source_set_enabled(wu->status_timer, SD_EVENT_ONESHOT);
}

/* Worker thread, before it serves. */
static int worker_init(void *userdata, sd_event *e, void **ret) {
        DaemonDns *dns = userdata;
        WorkerUpstream *wu = calloc(1, sizeof(*wu));
        if (!wu)
                return -ENOMEM;
        pthread_mutex_init(&wu->lock, NULL);
        int r = upstream_new(e, &dns->upstream_config, &wu->upstream);
        if (r >= 0)
                r = sd_event_add_time_relative(e, &wu->status_timer, CLOCK_MONOTONIC, 0, USEC_PER_SEC / 10,
                                               on_status_timer, wu);
        if (r < 0) {
                upstream_free(wu->upstream);
                pthread_mutex_destroy(&wu->lock);
                free(wu);
                return r;
        }
        upstream_get_status(wu->upstream, &wu->status);
        pthread_mutex_lock(&dns->lock);
        wu->next = dns->workers;
        dns->workers = wu;
        pthread_mutex_unlock(&dns->lock);
        *ret = wu;
        return 0;
}

/* Worker thread, when it stops: the upstream answers what it still owes
 * with SERVFAIL "shutting down". */
static void worker_done(void *userdata, void *data) {
        DaemonDns *dns = userdata;
        WorkerUpstream *wu = data;
        pthread_mutex_lock(&dns->lock);
        for (WorkerUpstream **p = &dns->workers; *p; p = &(*p)->next)
                if (*p == wu) {
                        *p = wu->next;
                        break;
                }
        pthread_mutex_unlock(&dns->lock);
        wu->status_timer = sd_event_source_disable_unref(wu->status_timer);
        wu->upstream = upstream_free(wu->upstream);
        pthread_mutex_destroy(&wu->lock);
        free(wu);
}

static void on_upstream_done(void *userdata, const uint8_t *answer, size_t len, uint16_t rcode, int ede_code,
                             const char *ede_text) {
        StubReply *reply = userdata;
        if (ede_code >= 0)
                stub_reply_error(reply, rcode, ede_code, ede_text);
        else
                stub_reply_done(reply, answer, len);
}

/* Worker thread: straight to this worker's upstream. */
static void forward(void *userdata, const uint8_t *query, size_t len, StubReply *reply) {
        WorkerUpstream *wu = stub_reply_worker_data(reply);
        (void) userdata;
        if (!wu || upstream_resolve(wu->upstream, query, len, on_upstream_done, reply) < 0) {
                stub_reply_error(reply, DNS_RCODE_SERVFAIL, DNS_EDE_OTHER, "cannot forward the query");
                return;
        }
        status_timer_wake(wu);
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
        (void) userdata;
        daemon_log_priority(priority, message);
}

/* The upstream configuration every worker's upstream is made from. The
 * plaintext fallback never asks ztnad's own listen addresses. */
static int upstream_config_build(DaemonDns *dns) {
        const ZtnadConfig *c = dns->daemon->config;
        struct sockaddr_storage own[CONFIG_LISTEN_MAX];
        size_t n_own = 0;

        for (size_t i = 0; i < c->upstream.n && i < CONFIG_UPSTREAM_MAX; i++) {
                dns->servers[i].addr = c->upstream.items[i].sa;
                dns->servers[i].addrlen = c->upstream.items[i].sa_len;
                snprintf(dns->servers[i].tls_name, sizeof dns->servers[i].tls_name, "%s", c->upstream.items[i].tls_name);
        }
        for (size_t i = 0; i < c->spki_pins.n; i++) {
                dns->pins_text[i] = malloc(4 * ((CONFIG_SHA256_SIZE + 2) / 3) + 1);
                if (!dns->pins_text[i])
                        return -ENOMEM;
                EVP_EncodeBlock((unsigned char *) dns->pins_text[i], c->spki_pins.items[i].sha256, CONFIG_SHA256_SIZE);
        }
        for (size_t i = 0; i < c->listen.n && i < CONFIG_LISTEN_MAX; i++)
                own[n_own++] = c->listen.items[i].sa;
        if (c->allow_plaintext_fallback && resolvconf_load(RESOLVCONF_PATH, own, n_own, &dns->fallback) < 0)
                daemon_log(SD_WARNING, "cannot read %s: the plaintext fallback uses 9.9.9.9 and 149.112.112.112",
                           RESOLVCONF_PATH);

        dns->upstream_config = (UpstreamConfig) {
                .servers = dns->servers,
                .n_servers = c->upstream.n < CONFIG_UPSTREAM_MAX ? c->upstream.n : CONFIG_UPSTREAM_MAX,
                .tls_ca_file = c->tls_ca_file,
                .spki_pins = (const char *const *) dns->pins_text,
                .n_spki_pins = c->spki_pins.n,
                .timeout_usec = c->upstream_timeout_usec,
                .shared = &dns->shared,
                .allow_plaintext_fallback = c->allow_plaintext_fallback,
                .fallback = dns->fallback.addrs,
                .n_fallback = dns->fallback.n,
        };
        return 0;
}

static bool server_from(const StubAddress *a, DnsStateServer *ret) {
        DnsStateServer s = { .family = a->sa.ss_family };
        if (s.family == AF_INET) {
                const struct sockaddr_in *in = (const struct sockaddr_in *) (const void *) &a->sa;
                s.addr.in = in->sin_addr;
                s.port = ntohs(in->sin_port);
        } else if (s.family == AF_INET6) {
                const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *) (const void *) &a->sa;
                s.addr.in6 = in6->sin6_addr;
                s.port = ntohs(in6->sin6_port);
        } else
                return false;
        *ret = s;
        return dns_state_server_usable(&s);
}

static bool listen_resolved_ok(const StubAddress *a) {
        DnsStateServer s;
        return server_from(a, &s) && dns_state_server_resolved_ok(&s);
}

void daemon_dns_state_write(Daemon *d) {
        _cleanup_free_ char *path = NULL;
        const char *store = daemon_store_path(d), *slash = strrchr(store, '/');
        DnsState st = { 0 };
        int r;

        if (!d->dns || !d->dns->stub || !slash)
                return;
        if (asprintf(&path, "%.*s/" DNS_STATE_FILE_NAME, (int) (slash - store), store) < 0)
                return;
        for (size_t i = 0; i < stub_n_addresses(d->dns->stub) && st.n_servers < DNS_STATE_SERVERS_MAX; i++)
                if (server_from(stub_address(d->dns->stub, i), &st.servers[st.n_servers]))
                        st.n_servers++;
        if (d->published) {
                /* The state file spells the domain in lower case. */
                for (size_t i = 0; i < DNS_STATE_DOMAIN_MAX && d->domain[i]; i++)
                        st.domain[i] = ascii_tolower(d->domain[i]);
                for (size_t i = 0; i < d->n_ranges && i < DNS_STATE_RANGES_MAX; i++)
                        st.ranges[st.n_ranges++] = d->ranges[i];
        }
        r = dns_state_write(path, &st);
        if (r < 0)
                daemon_log(SD_WARNING, "cannot write %s: %s (the DNS manager cannot point the resolver at the stub)",
                           path, strerror(-r));
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
        r = upstream_config_build(dns);
        if (r < 0) {
                blocklist_free(bl);
                return r;
        }

        size_t n_listen = 0;
        bool resolved_ok = false;
        for (size_t i = 0; i < c->listen.n && i < CONFIG_LISTEN_MAX; i++) {
                listen[i].sa = c->listen.items[i].sa;
                listen[i].len = c->listen.items[i].sa_len;
                resolved_ok = resolved_ok || listen_resolved_ok(&listen[i]);
                n_listen++;
        }
        /* resolved refuses 127.0.0.53 and 127.0.0.54 as servers (its own
         * stub's addresses): give it 127.0.0.1, on port 53 or the stub's
         * high port when 53 is taken. */
        if (!resolved_ok && n_listen < CONFIG_LISTEN_MAX && dns_manager_effective_mode(c) == CONFIG_MANAGE_RESOLVED) {
                struct sockaddr_in *in = (struct sockaddr_in *) (void *) &listen[n_listen].sa;
                memset(&listen[n_listen], 0, sizeof listen[n_listen]);
                in->sin_family = AF_INET;
                in->sin_port = htons(53);
                in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                listen[n_listen].len = sizeof *in;
                n_listen++;
                daemon_log(SD_INFO, "DNS manager: also listening on 127.0.0.1 for systemd-resolved");
        }
        n_fds = stub_activated_fds(&fds);
        if (n_fds < 0)
                n_fds = 0;
        StubConfig sc = {
                .listen = listen,
                .n_listen = n_listen,
                .fds = fds,
                .n_fds = (size_t) n_fds,
                .store_path = daemon_store_path(d),
                .cache = dns->cache,
                .blocklist = NULL,
                .forward = forward,
                .forward_userdata = dns,
                .worker_init = worker_init,
                .worker_done = worker_done,
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
        daemon_dns_state_write(d);
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
        /* Each worker frees its own upstream as it stops. */
        dns->stub = stub_free(dns->stub);
        dns->blocklist_timer = sd_event_source_disable_unref(dns->blocklist_timer);
        dns->prune_timer = sd_event_source_disable_unref(dns->prune_timer);
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

/* The workers' copies merged: per server the state of the latest change,
 * counters summed, the RTT of the busiest worker. */
static void merge_status(DaemonDns *dns, UpstreamStatus *ret) {
        bool first = true;
        memset(ret, 0, sizeof(*ret));
        pthread_mutex_lock(&dns->lock);
        for (WorkerUpstream *wu = dns->workers; wu; wu = wu->next) {
                pthread_mutex_lock(&wu->lock);
                const UpstreamStatus *w = &wu->status;
                if (first) {
                        *ret = *w;
                        first = false;
                } else {
                        for (size_t i = 0; i < ret->n_servers && i < w->n_servers; i++) {
                                UpstreamServerStatus *a = &ret->servers[i];
                                const UpstreamServerStatus *b = &w->servers[i];
                                if (b->last_change_usec > a->last_change_usec) {
                                        a->state = b->state;
                                        a->last_change_usec = b->last_change_usec;
                                        memcpy(a->last_error, b->last_error, sizeof a->last_error);
                                }
                                if (b->n_answers > a->n_answers) {
                                        a->srtt_usec = b->srtt_usec;
                                        a->rttvar_usec = b->rttvar_usec;
                                }
                                a->connected = a->connected || b->connected;
                                a->n_sent += b->n_sent;
                                a->n_answers += b->n_answers;
                                a->n_connections += b->n_connections;
                                a->n_resumed += b->n_resumed;
                                a->n_failures += b->n_failures;
                        }
                        ret->n_queries += w->n_queries;
                        ret->n_answered += w->n_answered;
                        ret->n_servfail += w->n_servfail;
                        ret->n_fallback += w->n_fallback;
                }
                pthread_mutex_unlock(&wu->lock);
        }
        pthread_mutex_unlock(&dns->lock);
}

json_t *daemon_dns_status(const Daemon *d) {
        DaemonDns *dns = d->dns;
        if (!dns)
                return json_pack("{s:b}", "enabled", 0);
        json_t *addrs = json_array(), *servers = json_array();
        StubStats st;
        UpstreamStatus us;
        stub_stats(dns->stub, &st);
        merge_status(dns, &us);
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
