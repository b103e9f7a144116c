/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * ztnad's configuration file, /etc/ztna/ztnad.conf (ztnad.conf(5)).
 *
 *     # a comment (';' too), only at the start of a line
 *     store = /run/ztna/records
 *     [dns]
 *     upstream = 9.9.9.9:853#dns.quad9.net
 *
 * Every key has a default that serves a first run. Keys belong to a section,
 * [ztnad] (the default before any header) or [dns]; a key in the wrong
 * section, an unknown key or section, a key given twice and a bad value are
 * errors naming the file, the line and the key. Whitespace around keys and
 * values is trimmed; a value may be double-quoted (escapes \" and \\) to keep
 * its outer whitespace. '#' inside a value is part of it (upstream names use
 * it), so there are no trailing comments.
 *
 * A parse always builds a new configuration and never touches another one:
 * on SIGHUP the daemon parses into a fresh ZtnadConfig and switches to it
 * only when it is valid.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

#include "common/time-util.h"
#include "macro.h"
#include "shm.h"

#define CONFIG_DEFAULT_PATH "/etc/ztna/ztnad.conf"

/* Far above any real file; a runaway one is refused before it is read. */
#define CONFIG_FILE_MAX ((size_t) 1 << 20)
#define CONFIG_LINE_MAX 4096u /* bytes, without the line ending */

#define CONFIG_LISTEN_MAX 8u
#define CONFIG_UPSTREAM_MAX 8u
#define CONFIG_PINS_MAX 16u
#define CONFIG_BLOCKLIST_MAX 64u
#define CONFIG_DOMAINS_MAX 16u
#define CONFIG_RANGES_MAX 32u
#define CONFIG_TLS_NAME_MAX 253u /* RFC 1035 2.3.4, text form */
#define CONFIG_SHA256_SIZE 32u

/* An address to listen on or to forward to. */
typedef struct ConfigAddress {
        /* AF_INET or AF_INET6 with the port set: ready for bind()/connect(). */
        struct sockaddr_storage sa;
        socklen_t sa_len;
        uint16_t port; /* host byte order, the same as in sa */
        /* The name the server's certificate must carry (upstream only, never
         * empty there); "" for a listen address. */
        char tls_name[CONFIG_TLS_NAME_MAX + 1];
} ConfigAddress;

typedef struct ConfigAddresses {
        ConfigAddress *items;
        size_t n;
} ConfigAddresses;

/* The SHA-256 of a certificate's SubjectPublicKeyInfo (RFC 7469 2.4). */
typedef struct ConfigPin {
        uint8_t sha256[CONFIG_SHA256_SIZE];
} ConfigPin;

typedef struct ConfigPins {
        ConfigPin *items;
        size_t n;
} ConfigPins;

typedef struct ConfigPaths {
        char **items; /* absolute paths */
        size_t n;
} ConfigPaths;

/* Domain names, lower case, without a final dot. */
typedef struct ConfigNames {
        char **items;
        size_t n;
} ConfigNames;

/* Address prefixes, host bits clear. */
typedef struct ConfigPrefixes {
        ShmPrefix *items;
        size_t n;
} ConfigPrefixes;

typedef enum ConfigOfflinePeers {
        CONFIG_OFFLINE_SHOW, /* offline peers resolve like online ones */
        CONFIG_OFFLINE_HIDE, /* offline peers are left out of the store */
} ConfigOfflinePeers;

/* [dns] manage: who tells the host's resolver about the stub (the root
 * helper, `ztnad --dns-manager`, does the telling; see docs/dns-manager.md). */
typedef enum ConfigManage {
        CONFIG_MANAGE_AUTO,       /* resolved if it runs, else resolvconf if installed, else file */
        CONFIG_MANAGE_RESOLVED,   /* systemd-resolved over D-Bus */
        CONFIG_MANAGE_RESOLVCONF, /* resolvconf -a lo.ztna */
        CONFIG_MANAGE_FILE,       /* /etc/resolv.conf written and watched */
        CONFIG_MANAGE_OFF,        /* nothing; what was set is restored */
        _CONFIG_MANAGE_MAX,
} ConfigManage;

#define CONFIG_IFNAME_MAX 15u /* IFNAMSIZ - 1 */

/* The effective configuration. Optional paths and strings that are not set
 * are NULL, never "". Durations are in microseconds. */
typedef struct ZtnadConfig {
        /* [ztnad] */
        char *store;
        char *state_dir;
        char *store_fallback; /* NULL: no persisted copy of the store */
        char *peers_file; /* NULL: no peers file */
        ConfigOfflinePeers offline_peers;
        char *control_url; /* NULL: no control plane; otherwise https:// */
        char *org_id;      /* set whenever control_url is */
        char *token_file;
        char *ca_file; /* NULL: the system's CAs */
        uint64_t sync_interval_usec;
        char *control_socket;
        char *control_group;
        /* What a peers document may claim, whatever its source: one of
         * these domains (never a public suffix), and addresses and ranges
         * inside these prefixes. Never empty. */
        ConfigNames domains;
        ConfigPrefixes address_space;

        /* [dns] */
        bool stub;
        ConfigAddresses listen;   /* loopback only; not empty when stub is on */
        ConfigAddresses upstream; /* tls_name set; not empty when stub is on */
        char *tls_ca_file;        /* NULL: the system's CAs */
        ConfigPins spki_pins;
        bool allow_plaintext_fallback;
        ConfigPaths blocklist;
        uint64_t cache_size; /* bytes; 0: no cache */
        bool serve_stale;
        uint64_t upstream_timeout_usec;
        ConfigManage manage;
        char *link;         /* NULL: found (a tun with a tailnet address) */
        bool default_route; /* resolved: every name to the stub, "~." */
} ZtnadConfig;

/* "auto", "resolved", ...: the names the file uses. */
const char *config_manage_name(ConfigManage m);

#define CONFIG_SOURCE_MAX 256
#define CONFIG_KEY_MAX 64
#define CONFIG_ERROR_MAX 512

typedef struct ConfigError {
        char file[CONFIG_SOURCE_MAX]; /* the source, cut short if longer */
        unsigned line;                /* 1-based; 0 when no line is at fault */
        char key[CONFIG_KEY_MAX];     /* "" when no key is at fault */
        /* "FILE:LINE: key 'K': PROBLEM" (or "FILE:LINE: PROBLEM", or
         * "FILE: PROBLEM"), one line of printable ASCII, ready for the log. */
        char message[CONFIG_ERROR_MAX];
} ConfigError;

/* Every key at its default. Returns 0 or -ENOMEM. */
int config_defaults(ZtnadConfig **ret);

/* The plaintext fallback's servers when resolv.conf names none: the
 * addresses of the `upstream` key's default, on port 53 (the key table is
 * the one place the default servers are written). Fills up to `max` of
 * `ret` and returns how many; `text` (may be NULL) gets them for a log
 * line, "A and B". */
size_t config_plaintext_fallback_defaults(struct sockaddr_storage *ret, size_t max, char *text, size_t text_size);

/* Parses `len` bytes of `data` (need not be NUL-terminated; NULL with len 0
 * is an empty file). `source` names the input in messages. On failure `err`
 * (may be NULL) says why and *ret is left alone.
 * Returns 0, -EBADMSG for an invalid file, -E2BIG above CONFIG_FILE_MAX,
 * -ENOMEM. */
int config_parse(const char *data, size_t len, const char *source, ZtnadConfig **ret, ConfigError *err);

/* Reads and parses a regular file (never blocks on a FIFO). `path` NULL
 * means CONFIG_DEFAULT_PATH, whose absence is no error: then *ret gets the
 * defaults and 1 is returned. A path given explicitly must exist.
 * Returns 0 (or 1, see above), the errors of config_parse(), or -errno of
 * open/read. */
int config_load(const char *path, ZtnadConfig **ret, ConfigError *err);

ZtnadConfig *config_free(ZtnadConfig *c); /* NULL-safe, returns NULL */

/* What a running ztnad does when a key changes on SIGHUP: each key's row of
 * the key table (config-keys.c) says it, and the daemon fans a reload out by
 * these bits. */
typedef enum ConfigApply {
        CONFIG_APPLY_RESTART = 1u << 0,   /* kept until the next start */
        CONFIG_APPLY_WATCH = 1u << 1,     /* the peers file is watched anew */
        CONFIG_APPLY_SYNC = 1u << 2,      /* the control plane client starts anew */
        CONFIG_APPLY_CONTROL = 1u << 3,   /* the control socket opens anew */
        CONFIG_APPLY_PIN = 1u << 4,       /* what a map may claim: the map is checked and published again */
        CONFIG_APPLY_REPUBLISH = 1u << 5, /* the map is published again */
        CONFIG_APPLY_DNS = 1u << 6,       /* a new DNS side is built from the [dns] keys */
} ConfigApply;

/* The keys whose values differ, as "upstream, blocklist" into buf (cut
 * short when it is too small), and what the daemon must do about them: the
 * OR of their ConfigApply bits. *ret_n (may be NULL) gets how many
 * differ: 0 when the two would make the daemon behave the same. buf may be
 * NULL when size is 0. */
unsigned config_diff(const ZtnadConfig *a, const ZtnadConfig *b, char *buf, size_t size, size_t *ret_n);

/* Every key as "key = value" under its section header: a file that
 * config_parse() reads back to an equal configuration. */
void config_print(const ZtnadConfig *c, FILE *f);

static inline void config_freep(ZtnadConfig **c) {
        config_free(*c);
}
#define _cleanup_config_ _cleanup_(config_freep)
