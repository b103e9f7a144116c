/* SPDX-License-Identifier: MIT */
/*
 * The DNS service (dns.h): the stub listener (its own worker threads), the
 * shared answer cache, the threat blocklist, and the DNS-over-TLS
 * upstreams. The daemon owns it and tells it what it needs; it answers
 * upward only through its callbacks.
 *
 * Each stub worker thread has its own upstream on its own loop (made by
 * the stub's worker_init hook), so a forwarded query never crosses threads:
 * handing each one to the daemon's loop and back cost two wake-ups, about
 * 150 us a query. Each worker keeps its own warm, pipelined connections.
 * For `ztna status` a worker copies its upstream's status under a lock
 * every second; the daemon merges the copies.
 *
 * A reload (SIGHUP) builds a whole new generation from the new
 * configuration (blocklist, upstream settings, a stub whose workers make
 * new upstreams) while the old one serves. The new stub takes copies of
 * the old one's sockets for every listen address still configured, so
 * nothing queued in them is lost; then the old stub stops reading
 * (stub_quiesce()) and drains: it is freed once the queries it forwarded
 * are answered. The cache is kept while its settings are unchanged.
 * docs/reload.md says what each key does.
 */
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "dns/blocklist.h"
#include "dns/cache.h"
#include "common/log.h"
#include "dns/dns.h"
#include "hostdns/dns-manager.h"
#include "hostdns/dns-state.h"
#include "common/dns-wire.h"
#include "macro.h"
#include "upstream/resolvconf.h"
#include "dns/stub.h"
#include "common/timeouts.h"
#include "upstream/upstream.h"

#define DNS_ERROR_MAX 512

/* The answer cache, shared by generations while its settings stay. */
typedef struct SharedCache {
        Cache *cache;
        unsigned refs;
        uint64_t max_bytes;
        bool serve_stale;
} SharedCache;

/* One stub worker's upstream, on that worker's thread and loop. */
typedef struct WorkerUpstream {
        struct WorkerUpstream *next;
        Upstream *upstream;
        sd_event_source *status_timer;
        pthread_mutex_t lock; /* `status` */
        UpstreamStatus status;
} WorkerUpstream;

struct DnsGeneration {
        DnsService *service;
        DnsGeneration *next;    /* in the service's list of draining ones */
        uint64_t drain_deadline; /* CLOCK_MONOTONIC */
        Stub *stub;
        SharedCache *cache;     /* NULL: cache_size = 0 */
        Blocklist *blocklist; /* owned by the stub; ours to check for changes */
        sd_event_source *blocklist_timer, *prune_timer;
        char *tls_ca_file;
        UpstreamServer servers[CONFIG_UPSTREAM_MAX];
        ResolvConfServers fallback;
        UpstreamConfig upstream_config;
        uint64_t forward_timeout_usec; /* the stub's deadline, over the upstream's bound */
        UpstreamShared shared; /* the workers' upstreams share server health */
        char *pins_text[CONFIG_PINS_MAX];
        pthread_mutex_t lock; /* `workers` */
        WorkerUpstream *workers;
};

struct DnsService {
        sd_event *event;
        const ZtnadConfig *config; /* the daemon's, borrowed */
        char *store_path;
        char *store_fallback_path; /* NULL: none */
        DnsServiceCallbacks cb;

        DnsGeneration *dns;      /* NULL with stub = no */
        DnsGeneration *draining; /* replaced by a reload, finishing their queries */
        sd_event_source *drain_timer;
        sd_event_source *bind_timer; /* listen addresses not bound yet */
        unsigned bind_attempts;
        uint64_t bind_next_usec; /* CLOCK_MONOTONIC; 0: no retry planned */
        /* The want ports of the stub's sockets in systemd's fd store
         * (named "stub-PORT"), to replace them when they change. */
        uint16_t fdstore_ports[16];
        size_t n_fdstore_ports;
        char **blocked; /* the blocklist's names, published with every map */
        size_t n_blocked;

        /* of the published map */
        bool published;
        char domain[256];
        ShmPrefix ranges[SHM_RANGES_MAX];
        size_t n_ranges;
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
        DnsGeneration *dns = userdata;
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
        DnsGeneration *dns = userdata;
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

static void blocked_free(DnsService *svc) {
        for (size_t i = 0; i < svc->n_blocked; i++)
                free(svc->blocked[i]);
        svc->blocked = mfree(svc->blocked);
        svc->n_blocked = 0;
}

static int load_blocklist(const ZtnadConfig *c, Blocklist **ret) {
        const ConfigPaths *p = &c->blocklist;
        char err[DNS_ERROR_MAX];
        Blocklist *bl;
        int r = blocklist_load((const char *const *) p->items, p->n, &bl, err, sizeof err);
        if (r < 0) {
                log_line(SD_ERR, "blocklist: %s", err);
                return r;
        }
        if (blocklist_skipped(bl))
                log_line(SD_WARNING, "blocklist: %zu lines skipped, the first: %s", blocklist_skipped(bl),
                         blocklist_problem(bl));
        *ret = bl;
        return 0;
}

/* The blocklist's names for the store; whether they changed. */
static int set_blocked(DnsService *svc, const Blocklist *bl) {
        char **names = NULL;
        size_t n = 0;
        bool same;

        if (bl) {
                int r = blocked_names(bl, &names, &n);
                if (r < 0)
                        return r;
        }
        same = n == svc->n_blocked;
        for (size_t i = 0; same && i < n; i++)
                same = strcmp(names[i], svc->blocked[i]) == 0;
        blocked_free(svc);
        svc->blocked = names;
        svc->n_blocked = n;
        return same ? 0 : 1;
}

/* Swaps a freshly loaded blocklist into the stub and the store. */
static int apply_blocklist(DnsGeneration *dns, Blocklist *bl) {
        int r = set_blocked(dns->service, bl);
        if (r < 0) {
                blocklist_free(bl);
                return r;
        }
        dns->blocklist = bl;
        stub_set_blocklist(dns->stub, bl);
        log_line(SD_INFO, "blocklist: %zu names", dns->service->n_blocked);
        return 0;
}

static int on_blocklist_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        DnsGeneration *dns = userdata;
        DnsService *svc = dns->service;
        Blocklist *bl;
        (void) usec;
        if (dns->blocklist && blocklist_changed(dns->blocklist) && load_blocklist(svc->config, &bl) >= 0 &&
            apply_blocklist(dns, bl) >= 0 && svc->cb.blocklist_changed)
                svc->cb.blocklist_changed(svc->cb.userdata);
        (void) sd_event_source_set_time_relative(s, BLOCKLIST_CHECK_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

/* Expired answers leave the cache only when room is needed; a minute's
 * sweep keeps them from holding memory for nothing. */
static int on_prune_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        DnsGeneration *dns = userdata;
        (void) usec;
        (void) cache_prune(dns->cache->cache, usec);
        (void) sd_event_source_set_time_relative(s, CACHE_PRUNE_USEC);
        (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        return 0;
}

static void stub_log(void *userdata, int priority, const char *message) {
        (void) userdata;
        log_line_priority(priority, message);
}

/* The upstream configuration every worker's upstream is made from. The
 * plaintext fallback never asks ztnad's own listen addresses. Everything it
 * points to (servers, tls_ca_file, pins, fallback) is the generation's own
 * copy: a reload that leaves [dns] alone frees the ZtnadConfig it came
 * from while the generation goes on serving. */
static int upstream_config_build(DnsGeneration *dns, const ZtnadConfig *c) {
        struct sockaddr_storage own[CONFIG_LISTEN_MAX];
        size_t n_own = 0;

        for (size_t i = 0; i < c->upstream.n && i < CONFIG_UPSTREAM_MAX; i++) {
                dns->servers[i].addr = c->upstream.items[i].sa;
                dns->servers[i].addrlen = c->upstream.items[i].sa_len;
                snprintf(dns->servers[i].tls_name, sizeof dns->servers[i].tls_name, "%s", c->upstream.items[i].tls_name);
        }
        if (c->tls_ca_file && !(dns->tls_ca_file = strdup(c->tls_ca_file)))
                return -ENOMEM;
        for (size_t i = 0; i < c->spki_pins.n; i++) {
                dns->pins_text[i] = malloc(4 * ((CONFIG_SHA256_SIZE + 2) / 3) + 1);
                if (!dns->pins_text[i])
                        return -ENOMEM;
                EVP_EncodeBlock((unsigned char *) dns->pins_text[i], c->spki_pins.items[i].sha256, CONFIG_SHA256_SIZE);
        }
        for (size_t i = 0; i < c->listen.n && i < CONFIG_LISTEN_MAX; i++)
                own[n_own++] = c->listen.items[i].sa;
        if (c->allow_plaintext_fallback) {
                /* resolv.conf's servers; none or unreadable: the defaults,
                 * from the configuration's key table. */
                char text[128];
                int r = resolvconf_load(RESOLVCONF_PATH, own, n_own, &dns->fallback);

                if (r < 0 || dns->fallback.n == 0)
                        dns->fallback.n = config_plaintext_fallback_defaults(
                                dns->fallback.addrs, ELEMENTSOF(dns->fallback.addrs), text, sizeof text);
                if (r < 0)
                        log_line(SD_WARNING, "cannot read %s: the plaintext fallback uses %s", RESOLVCONF_PATH, text);
        }

        dns->upstream_config = (UpstreamConfig) {
                .servers = dns->servers,
                .n_servers = c->upstream.n < CONFIG_UPSTREAM_MAX ? c->upstream.n : CONFIG_UPSTREAM_MAX,
                .tls_ca_file = dns->tls_ca_file,
                .spki_pins = (const char *const *) dns->pins_text,
                .n_spki_pins = c->spki_pins.n,
                .timeout_usec = c->upstream_timeout_usec,
                .shared = &dns->shared,
                .allow_plaintext_fallback = c->allow_plaintext_fallback,
                .fallback = dns->fallback.addrs,
                .n_fallback = dns->fallback.n,
        };
        dns->forward_timeout_usec = upstream_max_duration_usec(&dns->upstream_config) + STUB_FORWARD_MARGIN_USEC;
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

void dns_service_state_write(DnsService *svc) {
        _cleanup_free_ char *path = NULL;
        const char *store, *slash;
        DnsState st = { 0 };
        int r;

        if (!svc || !svc->dns || !svc->dns->stub)
                return;
        store = svc->store_path;
        slash = strrchr(store, '/');
        if (!slash)
                return;
        if (asprintf(&path, "%.*s/" DNS_STATE_FILE_NAME, (int) (slash - store), store) < 0)
                return;
        for (size_t i = 0; i < stub_n_addresses(svc->dns->stub) && st.n_servers < DNS_STATE_SERVERS_MAX; i++)
                if (server_from(stub_address(svc->dns->stub, i), &st.servers[st.n_servers]))
                        st.n_servers++;
        if (svc->published) {
                /* The state file spells the domain in lower case. */
                for (size_t i = 0; i < DNS_STATE_DOMAIN_MAX && svc->domain[i]; i++)
                        st.domain[i] = ascii_tolower(svc->domain[i]);
                for (size_t i = 0; i < svc->n_ranges && i < DNS_STATE_RANGES_MAX; i++)
                        st.ranges[st.n_ranges++] = svc->ranges[i];
        }
        r = dns_state_write(path, &st);
        if (r < 0)
                (void) log_line_errno(SD_WARNING, r,
                                      "cannot write %s: %m (the DNS manager cannot point the resolver at the stub)",
                                      path);
}

static SharedCache *shared_cache_unref(SharedCache *sc) {
        if (sc && --sc->refs == 0) {
                cache_free(sc->cache);
                free(sc);
        }
        return NULL;
}

/* The previous generation's cache when its settings are the same. */
static int shared_cache_get(const ZtnadConfig *c, DnsGeneration *prev, SharedCache **ret) {
        SharedCache *sc = prev ? prev->cache : NULL;

        *ret = NULL;
        if (c->cache_size == 0)
                return 0;
        if (sc && sc->max_bytes == c->cache_size && sc->serve_stale == c->serve_stale) {
                sc->refs++;
                *ret = sc;
                return 0;
        }
        sc = calloc(1, sizeof *sc);
        if (!sc)
                return -ENOMEM;
        CacheConfig cc = { .max_bytes = c->cache_size, .serve_stale = c->serve_stale };
        int r = cache_new(&cc, &sc->cache);
        if (r < 0) {
                free(sc);
                return r;
        }
        sc->refs = 1;
        sc->max_bytes = c->cache_size;
        sc->serve_stale = c->serve_stale;
        *ret = sc;
        return 0;
}

/* Frees a generation that serves nobody any more (never the service's
 * blocked names, which the store carries). */
static void dns_free(DnsGeneration *dns) {
        if (!dns)
                return;
        /* Each worker frees its own upstream as it stops. */
        dns->stub = stub_free(dns->stub);
        dns->blocklist_timer = sd_event_source_disable_unref(dns->blocklist_timer);
        dns->prune_timer = sd_event_source_disable_unref(dns->prune_timer);
        dns->cache = shared_cache_unref(dns->cache);
        for (size_t i = 0; i < CONFIG_PINS_MAX; i++)
                free(dns->pins_text[i]);
        free(dns->tls_ca_file);
        pthread_mutex_destroy(&dns->lock);
        free(dns);
}

/* A generation that was built but never served: it stops reading (its
 * sockets are copies; the running generation keeps serving the same
 * addresses) and goes at once. */
static void dns_discard(DnsGeneration *dns) {
        if (!dns)
                return;
        stub_quiesce(dns->stub);
        dns_free(dns);
}

/* A generation from `c`, serving at once. With `prev`, its cache (when
 * the settings are the same) and copies of its sockets are taken over;
 * prev itself is left alone. */
static int dns_new(DnsService *svc, const ZtnadConfig *c, DnsGeneration *prev, const StubSocket *inherit, size_t n_inherit,
                   DnsGeneration **ret) {
        StubAddress listen[CONFIG_LISTEN_MAX];
        _cleanup_free_ StubSocket *socks = NULL;
        _cleanup_free_ int *fds = NULL;
        Blocklist *bl = NULL;
        size_t n_socks = 0;
        int n_fds = 0, r;

        DnsGeneration *dns = calloc(1, sizeof(*dns));
        if (!dns)
                return -ENOMEM;
        dns->service = svc;
        pthread_mutex_init(&dns->lock, NULL);

        r = shared_cache_get(c, prev, &dns->cache);
        if (r < 0)
                goto fail;
        r = load_blocklist(c, &bl);
        if (r < 0)
                goto fail;
        r = upstream_config_build(dns, c);
        if (r < 0)
                goto fail;

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
                if (!prev)
                        log_line(SD_INFO, "DNS manager: also listening on 127.0.0.1 for systemd-resolved");
        }
        if (prev) {
                /* Socket activation's sockets are the previous stub's too. */
                r = stub_sockets(prev->stub, &socks, &n_socks);
                if (r < 0)
                        goto fail;
        } else {
                n_fds = stub_activated_fds(&fds);
                if (n_fds < 0)
                        n_fds = 0;
        }
        StubConfig sc = {
                .listen = listen,
                .n_listen = n_listen,
                .fds = fds,
                .n_fds = (size_t) n_fds,
                .inherit = prev ? socks : inherit,
                .n_inherit = prev ? n_socks : n_inherit,
                .store_path = svc->store_path,
                .store_fallback_path = svc->store_fallback_path,
                .ready = svc->published,
                .cache = dns->cache ? dns->cache->cache : NULL,
                .blocklist = bl,
                .forward = forward,
                .forward_userdata = dns,
                .forward_timeout_usec = dns->forward_timeout_usec,
                .worker_init = worker_init,
                .worker_done = worker_done,
                .log = stub_log,
        };
        /* A stub whose sockets came from socket activation keeps them:
         * listen cannot move them. */
        if (prev && stub_is_activated(prev->stub)) {
                sc.fds = NULL;
                sc.n_fds = 0;
                fds = calloc(n_socks ? n_socks : 1, sizeof *fds);
                if (!fds) {
                        for (size_t i = 0; i < n_socks; i++)
                                safe_close(socks[i].fd);
                        blocklist_free(bl);
                        r = -ENOMEM;
                        goto fail;
                }
                for (size_t i = 0; i < n_socks; i++)
                        fds[i] = socks[i].fd;
                sc.fds = fds;
                sc.n_fds = n_socks;
                sc.inherit = NULL;
                sc.n_inherit = 0;
        }
        bl = NULL; /* the stub's from here on, whatever stub_new() does */
        dns->blocklist = sc.blocklist;
        r = stub_new(&sc, &dns->stub);
        if (r < 0) {
                (void) log_line_errno(SD_ERR, r, "cannot start the DNS stub: %m");
                dns->blocklist = NULL;
                goto fail;
        }
        *ret = dns;
        return 0;
fail:
        blocklist_free(bl);
        dns_free(dns);
        return r;
}

/* Timers of the generation that serves. */
static int dns_arm(DnsGeneration *dns) {
        sd_event *e = dns->service->event;
        int r = sd_event_add_time_relative(e, &dns->blocklist_timer, CLOCK_MONOTONIC, BLOCKLIST_CHECK_USEC,
                                           USEC_PER_SEC, on_blocklist_timer, dns);
        if (r >= 0 && dns->cache)
                r = sd_event_add_time_relative(e, &dns->prune_timer, CLOCK_MONOTONIC, CACHE_PRUNE_USEC,
                                               USEC_PER_SEC, on_prune_timer, dns);
        return r < 0 ? r : 0;
}

static int on_drain_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        DnsService *svc = userdata;

        for (DnsGeneration **p = &svc->draining; *p;) {
                DnsGeneration *dns = *p;
                if (!stub_busy(dns->stub) || usec >= dns->drain_deadline) {
                        *p = dns->next;
                        dns_free(dns);
                } else
                        p = &dns->next;
        }
        if (svc->draining) {
                (void) sd_event_source_set_time_relative(s, DRAIN_CHECK_USEC);
                (void) sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        }
        return 0;
}

/* The old generation stops reading and is freed once its forwarded
 * queries are answered. */
static void dns_retire(DnsService *svc, DnsGeneration *dns) {
        uint64_t now = 0;

        if (!dns)
                return;
        stub_quiesce(dns->stub);
        dns->blocklist_timer = sd_event_source_disable_unref(dns->blocklist_timer);
        dns->prune_timer = sd_event_source_disable_unref(dns->prune_timer);
        (void) sd_event_now(svc->event, CLOCK_MONOTONIC, &now);
        dns->drain_deadline = now + dns->forward_timeout_usec + DRAIN_MARGIN_USEC;
        dns->next = svc->draining;
        svc->draining = dns;
        if (!svc->drain_timer &&
            sd_event_add_time_relative(svc->event, &svc->drain_timer, CLOCK_MONOTONIC, DRAIN_CHECK_USEC,
                                       DRAIN_CHECK_USEC / 2, on_drain_timer, svc) < 0) {
                /* No timer: wait for it here rather than leak it. */
                svc->draining = dns->next;
                dns_free(dns);
                return;
        }
        (void) sd_event_source_set_time_relative(svc->drain_timer, DRAIN_CHECK_USEC);
        (void) sd_event_source_set_enabled(svc->drain_timer, SD_EVENT_ONESHOT);
}

static void bind_retry_schedule(DnsService *svc);
static void fdstore_sync(DnsService *svc);

/* Addresses that could not be bound: when one can be now, a new
 * generation (same configuration) takes over the sockets that are bound
 * and binds the rest. */
static int on_bind_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        DnsService *svc = userdata;
        DnsGeneration *dns = svc->dns, *next;
        bool can = false;

        (void) s;
        (void) usec;
        if (!dns || stub_n_unbound(dns->stub) == 0)
                return 0;
        for (size_t i = 0; i < stub_n_unbound(dns->stub); i++)
                can = can || stub_try_bind(&stub_unbound(dns->stub, i)->want, 0) >= 0;
        if (can && dns_new(svc, svc->config, dns, NULL, 0, &next) >= 0 && dns_arm(next) >= 0) {
                svc->dns = next;
                dns_retire(svc, dns);
                dns_service_state_write(svc);
                fdstore_sync(svc);
                svc->bind_attempts = 0;
                log_line(SD_NOTICE, "DNS stub: %zu of %zu listen addresses bound",
                         stub_n_addresses(next->stub), stub_n_addresses(next->stub) + stub_n_unbound(next->stub));
        }
        bind_retry_schedule(svc);
        return 0;
}

static void bind_retry_schedule(DnsService *svc) {
        uint64_t delay = BIND_RETRY_FIRST_USEC;

        if (!svc->dns || stub_n_unbound(svc->dns->stub) == 0) {
                svc->bind_attempts = 0;
                svc->bind_next_usec = 0;
                (void) sd_event_source_set_enabled(svc->bind_timer, SD_EVENT_OFF);
                return;
        }
        for (unsigned i = 0; i < svc->bind_attempts && delay < BIND_RETRY_MAX_USEC; i++)
                delay *= 2;
        if (delay > BIND_RETRY_MAX_USEC)
                delay = BIND_RETRY_MAX_USEC;
        svc->bind_attempts++;
        if (!svc->bind_timer &&
            sd_event_add_time_relative(svc->event, &svc->bind_timer, CLOCK_MONOTONIC, delay, USEC_PER_SEC / 10,
                                       on_bind_retry, svc) < 0) {
                log_line(SD_ERR, "cannot set up a timer: listen addresses are not tried again");
                return;
        }
        (void) sd_event_source_set_time_relative(svc->bind_timer, delay);
        (void) sd_event_source_set_enabled(svc->bind_timer, SD_EVENT_ONESHOT);
        (void) sd_event_now(svc->event, CLOCK_MONOTONIC, &svc->bind_next_usec);
        svc->bind_next_usec += delay;
}

/* ---- systemd's file descriptor store ----
 *
 * The stub's listening sockets are kept in the service manager's fd store
 * (FileDescriptorStoreMax= in ztnad.service), named "stub-PORT" after the
 * port they were bound for. A restarted ztnad gets them back
 * (sd_listen_fds_with_names()) and serves the very sockets the old one
 * did: queries that arrive while no process runs wait in them instead of
 * being refused. Sockets of socket activation (ztnad.socket, "stub") are
 * the socket unit's and are not stored. */

static void fdstore_port_add(DnsService *svc, uint16_t port) {
        for (size_t i = 0; i < svc->n_fdstore_ports; i++)
                if (svc->fdstore_ports[i] == port)
                        return;
        if (svc->n_fdstore_ports < ELEMENTSOF(svc->fdstore_ports))
                svc->fdstore_ports[svc->n_fdstore_ports++] = port;
}

/* The stored sockets systemd passed at start, as a stub inherits them;
 * their names are remembered so they can be replaced. */
static int fdstore_take(DnsService *svc, StubSocket **ret, size_t *ret_n) {
        char **names = NULL;
        int n = sd_listen_fds_with_names(0, &names);
        StubSocket *t;
        size_t k = 0;

        *ret = NULL;
        *ret_n = 0;
        if (n <= 0)
                return n;
        t = calloc((size_t) n, sizeof *t);
        for (int i = 0; i < n; i++) {
                int fd = SD_LISTEN_FDS_START + i, type = 0;
                socklen_t tl = sizeof type;
                StubAddress a = { .len = sizeof a.sa };
                unsigned port;
                char end;

                if (!names || !names[i] || sscanf(names[i], "stub-%u%c", &port, &end) != 1 || port == 0 ||
                    port > 65535) {
                        if (names)
                                free(names[i]);
                        continue; /* not ours to judge ("stub" is socket activation's) */
                }
                free(names[i]);
                fdstore_port_add(svc, (uint16_t) port);
                if (!t || getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 ||
                    getsockname(fd, (struct sockaddr *) &a.sa, &a.len) < 0 ||
                    (type != SOCK_DGRAM && type != SOCK_STREAM) ||
                    (a.sa.ss_family != AF_INET && a.sa.ss_family != AF_INET6)) {
                        safe_close(fd);
                        continue;
                }
                if (a.sa.ss_family == AF_INET)
                        ((struct sockaddr_in *) (void *) &a.sa)->sin_port = htons((uint16_t) port);
                else
                        ((struct sockaddr_in6 *) (void *) &a.sa)->sin6_port = htons((uint16_t) port);
                (void) fcntl(fd, F_SETFD, FD_CLOEXEC);
                t[k++] = (StubSocket) { .fd = fd, .tcp = type == SOCK_STREAM, .want = a };
        }
        free(names);
        if (!t)
                return -ENOMEM;
        if (k > 0)
                log_line(SD_INFO, "took %zu stub sockets back from the service manager's fd store", k);
        *ret = t;
        *ret_n = k;
        return 0;
}

static uint16_t want_port(const StubAddress *a) {
        if (a->sa.ss_family == AF_INET)
                return ntohs(((const struct sockaddr_in *) (const void *) &a->sa)->sin_port);
        return ntohs(((const struct sockaddr_in6 *) (const void *) &a->sa)->sin6_port);
}

/* Replaces what the fd store holds with the serving stub's sockets (none
 * with stub = no). Without systemd (no NOTIFY_SOCKET) nothing is sent. */
static void fdstore_sync(DnsService *svc) {
        _cleanup_free_ StubSocket *socks = NULL;
        size_t n = 0;
        char msg[64];

        if (!getenv("NOTIFY_SOCKET"))
                return;
        for (size_t i = 0; i < svc->n_fdstore_ports; i++) {
                snprintf(msg, sizeof msg, "FDSTOREREMOVE=1\nFDNAME=stub-%u", svc->fdstore_ports[i]);
                (void) sd_pid_notify(0, false, msg);
        }
        svc->n_fdstore_ports = 0;
        if (!svc->dns || stub_is_activated(svc->dns->stub) || stub_sockets(svc->dns->stub, &socks, &n) < 0)
                return;
        for (size_t i = 0; i < n; i++) {
                int fds[2 * STUB_WORKERS_MAX * STUB_ADDRESSES_MAX];
                size_t k = 0;
                uint16_t port = want_port(&socks[i].want);

                if (socks[i].fd < 0)
                        continue;
                /* every socket bound for this port, in one message */
                for (size_t j = i; j < n && k < ELEMENTSOF(fds); j++)
                        if (socks[j].fd >= 0 && want_port(&socks[j].want) == port) {
                                fds[k++] = socks[j].fd;
                                socks[j].fd = -1;
                        }
                snprintf(msg, sizeof msg, "FDSTORE=1\nFDNAME=stub-%u", port);
                int r = sd_pid_notify_with_fds(0, false, msg, fds, (unsigned) k);
                if (r < 0)
                        (void) log_line_errno(SD_WARNING, r, "cannot keep the stub's sockets in the fd store: %m (a "
                                              "restart drops the queries that arrive meanwhile)");
                else
                        fdstore_port_add(svc, port);
                for (size_t j = 0; j < k; j++)
                        safe_close(fds[j]); /* systemd holds its own copies */
        }
}

int dns_service_new(sd_event *e, const ZtnadConfig *c, const char *store_path, const char *store_fallback_path,
                    const DnsServiceCallbacks *cb, DnsService **ret) {
        DnsService *svc = calloc(1, sizeof *svc);

        if (!svc)
                return -ENOMEM;
        svc->event = sd_event_ref(e);
        svc->config = c;
        if (cb)
                svc->cb = *cb;
        if (!(svc->store_path = strdup(store_path)) ||
            (store_fallback_path && !(svc->store_fallback_path = strdup(store_fallback_path)))) {
                dns_service_free(svc);
                return -ENOMEM;
        }
        *ret = svc;
        return 0;
}

DnsService *dns_service_free(DnsService *svc) {
        if (!svc)
                return NULL;
        dns_service_stop(svc);
        free(svc->store_path);
        free(svc->store_fallback_path);
        sd_event_unref(svc->event);
        free(svc);
        return NULL;
}

void dns_service_set_config(DnsService *svc, const ZtnadConfig *c) {
        if (svc)
                svc->config = c;
}

int dns_service_start(DnsService *svc) {
        _cleanup_free_ StubSocket *stored = NULL;
        size_t n_stored = 0;
        DnsGeneration *dns;
        int r;

        (void) fdstore_take(svc, &stored, &n_stored);
        if (!svc->config->stub) {
                for (size_t i = 0; i < n_stored; i++)
                        safe_close(stored[i].fd);
                fdstore_sync(svc);
                return 0;
        }
        r = dns_new(svc, svc->config, NULL, stored, n_stored, &dns);
        if (r < 0)
                return r;
        svc->dns = dns;
        r = set_blocked(svc, dns->blocklist);
        if (r >= 0)
                r = dns_arm(dns);
        dns_service_state_write(svc);
        fdstore_sync(svc);
        bind_retry_schedule(svc);
        return r < 0 ? r : 0;
}

int dns_service_prepare(DnsService *svc, const ZtnadConfig *c, DnsGeneration **ret) {
        DnsGeneration *dns;
        int r;

        *ret = NULL;
        if (!c->stub)
                return 0;
        if (!svc)
                return -ENOMEM;
        r = dns_new(svc, c, svc->dns, NULL, 0, &dns);
        if (r < 0)
                return r;
        r = dns_arm(dns);
        if (r < 0) {
                dns_discard(dns);
                return r;
        }
        *ret = dns;
        return 0;
}

int dns_service_commit(DnsService *svc, DnsGeneration *dns) {
        DnsGeneration *old;

        if (!svc)
                return 0;
        old = svc->dns;
        svc->dns = dns;
        dns_retire(svc, old);
        dns_service_state_write(svc);
        fdstore_sync(svc);
        bind_retry_schedule(svc);
        return set_blocked(svc, dns ? dns->blocklist : NULL);
}

void dns_service_stop(DnsService *svc) {
        if (!svc)
                return;
        while (svc->draining) {
                DnsGeneration *dns = svc->draining;
                svc->draining = dns->next;
                dns_free(dns);
        }
        svc->drain_timer = sd_event_source_disable_unref(svc->drain_timer);
        svc->bind_timer = sd_event_source_disable_unref(svc->bind_timer);
        dns_free(svc->dns);
        svc->dns = NULL;
        blocked_free(svc);
}

void dns_service_map_published(DnsService *svc, const char *domain, const ShmPrefix *ranges, size_t n_ranges) {
        if (!svc)
                return;
        svc->published = true;
        snprintf(svc->domain, sizeof svc->domain, "%s", domain);
        svc->n_ranges = n_ranges < SHM_RANGES_MAX ? n_ranges : SHM_RANGES_MAX;
        memcpy(svc->ranges, ranges, svc->n_ranges * sizeof *svc->ranges);
        if (svc->dns)
                stub_set_ready(svc->dns->stub);
}

const char *const *dns_service_blocked(const DnsService *svc, size_t *ret_n) {
        *ret_n = svc ? svc->n_blocked : 0;
        return svc ? (const char *const *) svc->blocked : NULL;
}

int dns_service_flush(DnsService *svc) {
        if (svc && svc->dns && svc->dns->cache)
                cache_flush(svc->dns->cache->cache);
        return 0;
}

/* The workers' copies merged: per server the state of the latest change,
 * counters summed, the RTT of the busiest worker. */
static void merge_status(DnsGeneration *dns, UpstreamStatus *ret) {
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

json_t *dns_service_status(const DnsService *svc) {
        DnsGeneration *dns = svc ? svc->dns : NULL;
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
        json_t *unbound = json_array();
        for (size_t i = 0; i < stub_n_unbound(dns->stub); i++) {
                const StubUnbound *u = stub_unbound(dns->stub, i);
                char buf[64], line[192];
                if (stub_address_text(&u->want, buf, sizeof buf) < 0)
                        continue;
                snprintf(line, sizeof line, "%s: %s", buf, strerror(u->error));
                json_array_append_new(unbound, json_string(line));
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
        json_t *o = json_pack("{s:b, s:o, s:I, s:I, s:I, s:I, s:I, s:b, s:o}", "enabled", 1, "listening", addrs,
                              "queries", (json_int_t) (st.udp_queries + st.tcp_queries), "cache_hits",
                              (json_int_t) st.cache_hits, "forwarded", (json_int_t) st.forwarded, "blocked",
                              (json_int_t) st.blocked, "servfail", (json_int_t) us.n_servfail, "plaintext_fallback",
                              us.allow_plaintext_fallback, "upstream", servers);
        /* Addresses that could not be bound, and when they are tried again. */
        if (o && json_array_size(unbound) > 0) {
                uint64_t now = 0;
                json_object_set_new(o, "not_listening", unbound);
                (void) sd_event_now(svc->event, CLOCK_MONOTONIC, &now);
                if (svc->bind_next_usec > now)
                        json_object_set_new(o, "next_bind_attempt_in_seconds",
                                            json_real((double) (svc->bind_next_usec - now) / 1e6));
        } else
                json_decref(unbound);
        return o;
}
