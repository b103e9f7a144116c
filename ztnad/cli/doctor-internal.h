/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Inside `ztna doctor`: what its files share. doctor.c, the driver, runs
 * the layers and prints the report; each layer's file adds its findings
 * (doctor_add, then finding_why and finding_fix, in doctor-finding.c with
 * the helpers the layers share) and reads or fills the Doctor the driver
 * passes on. Calls go one way: driver -> layers -> doctor-finding.c. The
 * layers, in lookup order:
 *
 *     nsswitch    doctor-nss.c (hosts line parsed by doctor-nsswitch.c)
 *     store       doctor-store.c
 *     daemon      doctor-daemon.c
 *     system-dns  doctor-sysdns.c, doctor-resolved.c
 *     stub        doctor-stub.c (replies parsed by doctor-dns.c)
 *     upstream    doctor-upstream.c
 *     caches      doctor-caches.c
 *     agreement   doctor-agreement.c
 *
 * The public side (doctor_run, the parsers the fuzzers take) is doctor.h.
 */

#include <jansson.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "cli/doctor.h"
#include "conf/config.h"
#include "shm-format.h"

#define FINDINGS_MAX 12u
#define TEXT_MAX 512u
#define ERR_MAX 512u
/* The whole run's budget: a layer that waits (resolved over D-Bus, the
 * agreement layer's lookups) never waits past it; the other layers'
 * bounds add up to 4.5 s at most. */
#define DOCTOR_BUDGET_USEC (4600 * 1000ULL)
#define DOCTOR_MIN(a, b) ((a) < (b) ? (a) : (b))

typedef enum Level {
        LEVEL_OK,
        LEVEL_SKIP, /* could not be checked (needs root, nothing to check) */
        LEVEL_WARN,
        LEVEL_FAIL,
} Level;

typedef enum LayerId {
        LAYER_NSSWITCH,
        LAYER_STORE,
        LAYER_DAEMON,
        LAYER_SYSDNS,
        LAYER_STUB,
        LAYER_UPSTREAM,
        LAYER_CACHES,
        LAYER_AGREEMENT,
        _LAYER_MAX,
} LayerId;

typedef struct Finding {
        Level level;
        char id[48];            /* stable, documented in ztna(1) */
        char measured[TEXT_MAX]; /* what was seen */
        char why[TEXT_MAX];      /* what it means ("" for ok) */
        char fix[TEXT_MAX];      /* the command that fixes it ("" for ok) */
} Finding;

typedef struct Layer {
        Finding findings[FINDINGS_MAX];
        size_t n;
} Layer;

typedef struct Doctor {
        const DoctorOptions *o;
        uint64_t start_usec;

        ZtnadConfig *cfg;
        int config_r;
        ConfigError cerr;
        const char *config_path; /* as shown */

        json_t *status; /* ztnad's status reply, NULL when unreachable */
        char daemon_err[ERR_MAX];

        char store_path[1024];
        char domain[SHM_DOMAIN_MAX + 1];
        char name[SHM_LABEL_MAX + 2 + SHM_DOMAIN_MAX]; /* followed: NAME or a peer */
        char name_answer[INET6_ADDRSTRLEN];              /* its first address in the store */

        /* What the system-dns layer read, for the agreement layer. */
        char resolv_path[PATH_MAX];
        char resolv_ns0[INET6_ADDRSTRLEN + 8]; /* resolv.conf's first nameserver, "" */
        bool resolv_to_stub;  /* resolv.conf is meant to reach the stub */
        char manager_mode[32]; /* the DNS manager's mode when it applied, "" */

        Layer layers[_LAYER_MAX];
} Doctor;

/* ---- findings (doctor-finding.c) ---- */

/* A finding of `level` in layer `l`, `measured` from the format; a spare
 * when the layer is full. */
Finding *doctor_add(Doctor *d, LayerId l, Level level, const char *id, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));
void finding_why(Finding *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void finding_fix(Finding *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Layer `l`'s finding `id`, NULL when it has none. */
const Finding *doctor_find_finding(const Doctor *d, LayerId l, const char *id);
/* "systemctl VERB ztnad" into buf. */
void doctor_restart_command(const Doctor *d, const char *verb, char *buf, size_t size);
/* Whether ztnad answered the status request. */
bool doctor_daemon_reachable(const Doctor *d);

/* ---- helpers the layers share (doctor-finding.c, but where noted) ---- */

/* A small regular file whole (at most NSS_FILE_MAX bytes), and its next
 * line from *i (cut to fit `size`, without the newline). */
int doctor_read_file(const char *path, char **ret, size_t *ret_len);
void doctor_next_line(const char *data, size_t len, size_t *i, char *line, size_t size);
/* What ztnad's status says its map was published from, NULL (the daemon
 * layer). */
const char *doctor_published_from(const Doctor *d);
/* The doctor's DNS client (the stub layer's): "127.0.0.53:53" or
 * "[::1]:15353" into a socket address; a query for NAME; one exchange over
 * UDP or TCP within timeout_usec, the reply's length or -errno. */
int doctor_parse_addr_port(const char *text, struct sockaddr_storage *ss, socklen_t *len);
size_t doctor_dns_query(const char *name, uint16_t qtype, uint16_t id, uint8_t *buf, size_t size);
ssize_t doctor_dns_exchange(const struct sockaddr_storage *ss, socklen_t sl, bool tcp, const uint8_t *q, size_t qlen,
                            uint8_t *buf, size_t size, uint64_t timeout_usec);

/* ---- the layers ---- */

/* doctor_run() calls the store first, since its domain tells the nsswitch
 * layer whether the tailnet is under .local, and the agreement layer
 * last: it compares what the others found. */

void doctor_check_nsswitch(Doctor *d);
void doctor_check_store(Doctor *d);
void doctor_check_daemon(Doctor *d);
void doctor_check_system_dns(Doctor *d);
/* resolv.conf (`shown`) points at resolved: does resolved route the
 * tailnet domain to the stub. */
void doctor_check_resolved(Doctor *d, const char *shown);
void doctor_check_stub(Doctor *d);
void doctor_check_upstream(Doctor *d);
void doctor_check_caches(Doctor *d);
void doctor_check_agreement(Doctor *d);
