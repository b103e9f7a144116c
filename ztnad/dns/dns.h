/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The DNS service: the stub listener, the shared answer cache, the threat
 * blocklist and the upstreams, as one object the daemon owns.
 *
 * It owns its state: the serving generation and the ones draining after a
 * reload, the drain and bind-retry timers, the stub's ports in systemd's fd
 * store, and the blocklist's names. The daemon tells it what it needs (the
 * configuration it holds, the event loop, the store's paths, the published
 * map's domain and ranges); the service tells the daemon through the
 * callbacks given at creation, and never calls into it.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <systemd/sd-event.h>

#include "conf/config.h"
#include "shm-format.h"

typedef struct DnsService DnsService;
/* One generation: a stub with its blocklist, cache and upstreams, built
 * from one configuration. */
typedef struct DnsGeneration DnsGeneration;

typedef struct DnsServiceCallbacks {
        /* The blocklist's files changed and were loaded again: the daemon
         * publishes its map again, with dns_service_blocked()'s names. */
        void (*blocklist_changed)(void *userdata);
        void *userdata;
} DnsServiceCallbacks;

/* A service on `e` for configuration `c` (not started). `c` is borrowed:
 * the daemon keeps it and says when it replaces it (dns_service_set_config).
 * The store paths are copied; store_fallback_path may be NULL. */
int dns_service_new(sd_event *e, const ZtnadConfig *c, const char *store_path, const char *store_fallback_path,
                    const DnsServiceCallbacks *cb, DnsService **ret);
DnsService *dns_service_free(DnsService *s);
void dns_service_set_config(DnsService *s, const ZtnadConfig *c);

/* Takes the stub's sockets back from the fd store and starts the stub
 * (none with stub = no). On failure the caller stops it. */
int dns_service_start(DnsService *s);
/* Stops the stub and frees every generation and the blocklist's names;
 * the service stays, and a reload may start it again. */
void dns_service_stop(DnsService *s);

/* A reload in two steps: prepare builds the DNS side of configuration
 * `c` (NULL with stub = no) while the running one serves, and fails
 * without changing anything (what it had built is freed, its sockets
 * closed); commit makes it the one that serves and retires the old one
 * (returns 1 when the blocklist's names changed, so the store needs
 * them). Nothing can fail between the two. */
int dns_service_prepare(DnsService *s, const ZtnadConfig *c, DnsGeneration **ret);
int dns_service_commit(DnsService *s, DnsGeneration *g);

int dns_service_flush(DnsService *s);
/* A map is published: the stub may forward what the store does not claim
 * (before the first, it could be a tailnet name), and the DNS state file
 * carries the map's domain and ranges. */
void dns_service_map_published(DnsService *s, const char *domain, const ShmPrefix *ranges, size_t n_ranges);
/* Writes what the root DNS manager needs (the stub's bound addresses, the
 * published domain and ranges) to the DNS state file next to the store. */
void dns_service_state_write(DnsService *s);
/* The blocklist's names, published with every map; NULL when none. */
const char *const *dns_service_blocked(const DnsService *s, size_t *ret_n);
json_t *dns_service_status(const DnsService *s);
