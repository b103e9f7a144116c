/* SPDX-License-Identifier: MIT */
/*
 * The DNS stub's lifetime: stub_new() takes or binds the sockets and
 * starts one worker thread per CPU; quiescing the workers for a
 * successor, stopping them and freeing the stub; and what the daemon
 * reads or sets on a running stub (readiness, the blocklist, counters).
 */

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <syslog.h>
#include <unistd.h>

#include <urcu/urcu-memb.h>

#include "macro.h"
#include "dns/stub-internal.h"

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

/* ---- workers: starting and stopping them with the stub ---- */

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
        r = config->n_fds > 0 ? stub_adopt_fds(s, config) : stub_bind_all(s, config, inherit, n_inherit);
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
                r = -pthread_create(&w->thread, NULL, stub_worker_main, w);
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
