/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * `ztna doctor`: walks the layers a lookup travels, in its order, and names
 * the first that fails with the command that fixes it (docs/doctor.md).
 *
 * This header is the doctor's public side: doctor_run() for ztna.c, and
 * the pure parsers the fuzzers take. doctor-nsswitch.c parses
 * nsswitch.conf's hosts line as glibc does and judges where ztna sits in
 * it; doctor-dns.c reads the DNS replies the doctor gets. doctor.c runs the
 * layers, each in a file of its own, and prints them; what those files
 * share is doctor-internal.h.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ztna(1)'s exit codes of `ztna doctor`; 0 to 5 are the other commands'. */
#define DOCTOR_EXIT_HEALTHY 0
#define DOCTOR_EXIT_DEGRADED 6
#define DOCTOR_EXIT_BROKEN 7

/* ---- nsswitch.conf ---- */

#define NSS_SERVICES_MAX 32u
#define NSS_SERVICE_NAME_MAX 63u
#define NSS_ACTIONS_TEXT_MAX 127u
#define NSS_ERROR_MAX 256u
/* Far above any real file; a larger one is judged by its first bytes. */
#define NSS_FILE_MAX ((size_t) 1 << 20)

typedef enum NssStatus {
        NSS_STATUS_SUCCESS,
        NSS_STATUS_NOTFOUND,
        NSS_STATUS_UNAVAIL,
        NSS_STATUS_TRYAGAIN,
        _NSS_STATUS_MAX,
} NssStatus;

typedef enum NssAction {
        NSS_ACTION_CONTINUE,
        NSS_ACTION_RETURN,
        NSS_ACTION_MERGE,
} NssAction;

typedef struct NssService {
        char name[NSS_SERVICE_NAME_MAX + 1];
        /* What glibc does after this service answers each status: the
         * defaults (return on success, continue otherwise) with the
         * bracketed criteria applied. */
        NssAction action[_NSS_STATUS_MAX];
        /* The criteria as written, normalised ("[!UNAVAIL=return]"), "" for
         * none: to write a corrected line back. */
        char actions[NSS_ACTIONS_TEXT_MAX + 1];
} NssService;

typedef struct NssHosts {
        bool found;    /* a hosts: line; without one glibc uses its default */
        unsigned line; /* 1-based, of the hosts: line */
        size_t n;
        NssService services[NSS_SERVICES_MAX];
        /* A later hosts: line glibc ignores (0: none). */
        unsigned duplicate_line;
} NssHosts;

/* Parses the hosts line of an nsswitch.conf held in `len` bytes of `data`
 * (need not be NUL-terminated). Returns 0, or -EBADMSG with `err` saying
 * "line N: PROBLEM" when the hosts line is malformed (glibc then ignores
 * the line and uses its default). */
int nss_parse_hosts(const char *data, size_t len, NssHosts *ret, char *err, size_t errlen);

/* glibc's built-in hosts line, used when nsswitch.conf has none. */
void nss_hosts_default(NssHosts *ret);

typedef enum NssVerdict {
        NSS_VERDICT_OK,
        NSS_VERDICT_MISSING,         /* no ztna in hosts: */
        NSS_VERDICT_AFTER_DNS,       /* dns, resolve or another DNS module asked first */
        NSS_VERDICT_AFTER_MDNS,      /* an mdns module ahead that takes the tailnet domain */
        NSS_VERDICT_NO_RETURN,       /* [!UNAVAIL=return] missing: misses fall through */
} NssVerdict;

/* Whether `domain` is under .local, which every mdns module takes. */
bool nss_domain_is_local(const char *domain);

/* Whether nss-mdns's mdns.allow (`data`, `len` bytes) lets the full mdns
 * modules take names under `domain`: a line "*", or the domain or one above
 * it (leading and trailing dots ignored, any case). */
bool nss_mdns_allow_matches(const char *data, size_t len, const char *domain);

/* Where ztna sits in `h` for the tailnet `domain` (NULL: unknown), with
 * `mdns_allowed` from nss_mdns_allow_matches(). On
 * anything but OK, `detail` says what was seen (the service before it, the
 * status that falls through) and `fixed` is the corrected service list
 * (without "hosts:"). */
NssVerdict nss_judge(const NssHosts *h, const char *domain, bool mdns_allowed, char *detail, size_t detail_len, char *fixed,
                     size_t fixed_len);

/* The service list as glibc reads it, one line. */
void nss_hosts_format(const NssHosts *h, char *buf, size_t size);

/* ---- the doctor ---- */

/* How `ztna doctor` asks ztnad: the status reply (ok true), or -errno with
 * `err` saying why ztnad could not be asked. */
typedef int (*DoctorDaemonCall)(void *userdata, const char *command, json_t **ret, char *err, size_t errlen);

typedef struct DoctorOptions {
        const char *config;      /* ztnad.conf; NULL: the default path */
        const char *store;       /* NULL: what the NSS module reads */
        const char *socket;      /* ztnad's control socket */
        const char *name;        /* NAME to follow, NULL: a known peer */
        bool json;
        DoctorDaemonCall daemon_call;
        void *userdata;
} DoctorOptions;

/* Runs every layer, prints the report, returns a DOCTOR_EXIT_* code. */
int doctor_run(const DoctorOptions *o);

/* Whether a DNS reply of `len` bytes answers query ID without error and
 * holds a record of `qtype` whose data is `want` (alen bytes); *rcode gets
 * its rcode (-1 when it is no reply to ID). ztnad/cli/doctor-dns.c. */
bool doctor_dns_answer_has(const uint8_t *m, size_t len, uint16_t id, uint16_t qtype, const uint8_t *want,
                           size_t alen, int *rcode);

/* The data of the first record of `qtype` (1: A, 4 bytes; 28: AAAA, 16)
 * in a NOERROR reply of `len` bytes to query ID, into `out`; false when
 * there is none (*rcode as above). ztnad/cli/doctor-dns.c. */
bool doctor_dns_first_address(const uint8_t *m, size_t len, uint16_t id, uint16_t qtype, uint8_t *out,
                              int *rcode);
