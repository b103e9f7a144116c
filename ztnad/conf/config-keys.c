/* SPDX-License-Identifier: MIT */
/*
 * ztnad.conf's key table: every key with its section, type, default, bounds,
 * description and what a reload does when it changes (.apply), the one place
 * the defaults live; the checks some keys add to their type's parser; the
 * names of the sections and of the enum values. The defaults are text and go
 * through the same parsers as the file (config-types.c), so a default can
 * never be a value the file would refuse, and the shipped example is written
 * from the same rows (config-example.h, which test-config holds
 * examples/ztnad.conf to).
 */

#include <assert.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/un.h>

#include "conf/config.h"
#include "conf/config-internal.h"
#include "conf/config-keys.h"
#include "macro.h"
#include "shm-format.h"

#define ORG_ID_MAX 255u
#define GROUP_NAME_MAX 32u /* Debian's useradd/groupadd limit */
#define SOCKET_PATH_MAX (sizeof(((struct sockaddr_un *) NULL)->sun_path) - 1)

/* Section, KeyType and Key: config-keys.h. */
static const char *const section_names[_SECTION_MAX] = {
        [SECTION_ZTNAD] = "ztnad",
        [SECTION_DNS] = "dns",
};

static bool check_org_id(const char *value, char *why, size_t why_size);
static bool check_group(const char *value, char *why, size_t why_size);
static bool check_socket_path(const char *value, char *why, size_t why_size);
static bool check_ifname(const char *value, char *why, size_t why_size);

static const char *const offline_choices[] = {
        [CONFIG_OFFLINE_SHOW] = "show",
        [CONFIG_OFFLINE_HIDE] = "hide",
        NULL,
};
static_assert(sizeof(ConfigOfflinePeers) == sizeof(int), "enums are stored as int");

static const char *const manage_choices[] = {
        [CONFIG_MANAGE_AUTO] = "auto",
        [CONFIG_MANAGE_RESOLVED] = "resolved",
        [CONFIG_MANAGE_RESOLVCONF] = "resolvconf",
        [CONFIG_MANAGE_FILE] = "file",
        [CONFIG_MANAGE_OFF] = "off",
        NULL,
};
static_assert(sizeof(ConfigManage) == sizeof(int), "enums are stored as int");
static_assert(ELEMENTSOF(manage_choices) == _CONFIG_MANAGE_MAX + 1, "a name for every mode");

const char *config_manage_name(ConfigManage m) {
        return m >= 0 && m < _CONFIG_MANAGE_MAX ? manage_choices[m] : "?";
}

#define F(field) offsetof(ZtnadConfig, field)
#define Z SECTION_ZTNAD
#define D SECTION_DNS

/* The file format's single source of truth. Defaults are written in the
 * form config_print() gives (the tests hold them to it). */
static const Key keys[] = {
        { "store", Z, TYPE_PATH, KEY_FILE, F(store), SHM_DEFAULT_PATH,
          .description = "The record store that the NSS module resolves from (on a tmpfs).",
          .apply = CONFIG_APPLY_RESTART },
        { "state_dir", Z, TYPE_PATH, 0, F(state_dir), "/var/lib/ztna",
          .description = "Where the last good peer map is kept for a start without the control plane.",
          .apply = CONFIG_APPLY_RESTART },
        { "store_fallback", Z, TYPE_PATH, KEY_OPTIONAL | KEY_FILE, F(store_fallback), SHM_DEFAULT_FALLBACK_PATH,
          .description = "A copy of the store on disk for lookups while it is missing; empty: none.",
          .apply = CONFIG_APPLY_RESTART },
        { "peers_file", Z, TYPE_PATH, KEY_OPTIONAL | KEY_FILE, F(peers_file), "",
          .description = "A peers JSON file to publish and follow; empty: none.",
          .apply = CONFIG_APPLY_WATCH },
        { "offline_peers", Z, TYPE_ENUM, 0, F(offline_peers), "show", .choices = offline_choices,
          .description = "Whether peers that are offline still resolve: show or hide.",
          .apply = CONFIG_APPLY_REPUBLISH },
        { "control_url", Z, TYPE_URL, KEY_OPTIONAL, F(control_url), "",
          .description = "The control plane's https:// URL to poll for the peer map; empty: none.",
          .apply = CONFIG_APPLY_SYNC },
        { "org_id", Z, TYPE_STRING, KEY_OPTIONAL, F(org_id), "", .check = check_org_id,
          .description = "The organisation's ID at the control plane; required with control_url.",
          .apply = CONFIG_APPLY_SYNC },
        { "token_file", Z, TYPE_PATH, KEY_FILE, F(token_file), "/etc/ztna/token",
          .description = "The file that holds the control plane's bearer token.",
          .apply = CONFIG_APPLY_SYNC },
        { "ca_file", Z, TYPE_PATH, KEY_OPTIONAL | KEY_FILE, F(ca_file), "",
          .description = "CA certificates for the control plane; empty: the system's.",
          .apply = CONFIG_APPLY_SYNC },
        { "sync_interval", Z, TYPE_DURATION, 0, F(sync_interval_usec), "30s", 1 * USEC_PER_SEC, USEC_PER_DAY,
          .description = "How often the control plane is polled, 1s to 1d.",
          .apply = CONFIG_APPLY_SYNC },
        { "control_socket", Z, TYPE_PATH, KEY_FILE, F(control_socket), "/run/ztna/control.sock",
          .check = check_socket_path,
          .description = "The socket of the ztna command and the VPN client's pushes.",
          .apply = CONFIG_APPLY_CONTROL },
        { "control_group", Z, TYPE_STRING, 0, F(control_group), "ztna", .check = check_group,
          .description = "The group that may make changes over the control socket (root always may).",
          .apply = CONFIG_APPLY_CONTROL },
        { "domains", Z, TYPE_DOMAINS, 0, F(domains), "yourorg.zt.net",
          .description = "Tailnet domains a peer map may claim, space-separated; others are refused.",
          .apply = CONFIG_APPLY_PIN },
        { "address_space", Z, TYPE_PREFIXES, 0, F(address_space),
          "100.64.0.0/10 10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 fc00::/7",
          .description = "Prefixes that every peer address and every range of a map must lie in.",
          .apply = CONFIG_APPLY_PIN },
        { "stub", D, TYPE_BOOL, 0, F(stub), "yes",
          .description = "Whether to serve DNS for names outside the tailnet on the listen addresses.",
          .apply = CONFIG_APPLY_DNS },
        { "listen", D, TYPE_LISTEN, KEY_OPTIONAL, F(listen), "127.0.0.53:53",
          .description = "Loopback addresses to serve on, ADDR:PORT or [ADDR6]:PORT, space-separated.",
          .apply = CONFIG_APPLY_DNS },
        { "upstream", D, TYPE_UPSTREAM, KEY_OPTIONAL, F(upstream), "9.9.9.9:853#dns.quad9.net 149.112.112.112:853#dns.quad9.net",
          .description = "DNS-over-TLS servers, ADDR:PORT#tls-name, space-separated, tried in order.",
          .apply = CONFIG_APPLY_DNS },
        { "tls_ca_file", D, TYPE_PATH, KEY_OPTIONAL | KEY_FILE, F(tls_ca_file), "",
          .description = "CA certificates for the upstream servers; empty: the system's.",
          .apply = CONFIG_APPLY_DNS },
        { "spki_pins", D, TYPE_PINS, KEY_OPTIONAL, F(spki_pins), "",
          .description = "Base64 SHA-256 pins of the upstreams' public keys; empty: no pinning.",
          .apply = CONFIG_APPLY_DNS },
        { "allow_plaintext_fallback", D, TYPE_BOOL, 0, F(allow_plaintext_fallback), "no",
          .description = "Fall back to unencrypted DNS when no DNS-over-TLS server answers.",
          .apply = CONFIG_APPLY_DNS },
        { "blocklist", D, TYPE_PATHS, KEY_OPTIONAL | KEY_FILE, F(blocklist), "",
          .description = "Files of names to answer with NXDOMAIN, space-separated; empty: none.",
          .apply = CONFIG_APPLY_DNS },
        { "cache_size", D, TYPE_SIZE, 0, F(cache_size), "16M", 0, GIB,
          .description = "Memory for cached answers, bytes or with K, M or G; 0: no cache.",
          .apply = CONFIG_APPLY_DNS },
        { "serve_stale", D, TYPE_BOOL, 0, F(serve_stale), "no",
          .description = "Answer from expired cache entries when no upstream answers (RFC 8767).",
          .apply = CONFIG_APPLY_DNS },
        { "upstream_timeout", D, TYPE_DURATION, 0, F(upstream_timeout_usec), "3s",
          100 * USEC_PER_MSEC, 60 * USEC_PER_SEC,
          .description = "How long each upstream server has to answer a query, 100ms to 1min.",
          .apply = CONFIG_APPLY_DNS },
        { "manage", D, TYPE_ENUM, 0, F(manage), "auto", .choices = manage_choices,
          .description = "Who points the resolver at the stub: auto, resolved, resolvconf, file or off.",
          .apply = CONFIG_APPLY_DNS },
        { "link", D, TYPE_STRING, KEY_OPTIONAL, F(link), "", .check = check_ifname,
          .description = "The VPN's network interface for resolved's per-link settings; empty: found.",
          .apply = CONFIG_APPLY_DNS },
        { "default_route", D, TYPE_BOOL, 0, F(default_route), "no",
          .description = "With resolved: send every name, not only the tailnet's, to the stub (DoT).",
          .apply = CONFIG_APPLY_DNS },
};

#undef F
#undef Z
#undef D

#define N_KEYS ELEMENTSOF(keys)

const Key *const config_keys = keys;
const size_t config_n_keys = N_KEYS;
const char *const *const config_section_names = section_names;
static_assert(N_KEYS == CONFIG_N_KEYS, "CONFIG_N_KEYS (config-internal.h) counts the rows");

/* ---- per-key checks ---- */

static bool check_org_id(const char *value, char *why, size_t why_size) {
        size_t len = strlen(value);

        if (len > ORG_ID_MAX)
                return config_why_set(why, why_size, "is %zu characters long; the limit is %u", len, ORG_ID_MAX);
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) value[i];

                if (c <= 0x20 || c >= 0x7f)
                        return config_why_set(why, why_size,
                                       "contains %s at position %zu; an organisation ID is printable ASCII without spaces",
                                       c == ' ' ? "a space" : "a byte that is not printable ASCII", i + 1);
        }
        return true;
}

static bool check_group(const char *value, char *why, size_t why_size) {
        size_t len = strlen(value), digits = 0;

        if (len > GROUP_NAME_MAX)
                return config_why_set(why, why_size, "is %zu characters long; a group name is at most %u", len,
                               GROUP_NAME_MAX);
        if (value[0] == '-')
                return config_why_set(why, why_size, "starts with '-'");
        for (size_t i = 0; i < len; i++) {
                char c = value[i];

                if (c >= '0' && c <= '9') {
                        digits++;
                        continue;
                }
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-' || c == '.'))
                        return config_why_set(why, why_size,
                                       "is not a group name: only letters, digits, '_', '-' and '.' are allowed");
        }
        /* A number would be taken for a GID by some tools and a name by
         * others. */
        if (digits == len)
                return config_why_set(why, why_size, "is a number; give the group's name");
        return true;
}

static bool check_socket_path(const char *value, char *why, size_t why_size) {
        size_t len = strlen(value);

        if (len > SOCKET_PATH_MAX)
                return config_why_set(why, why_size, "is %zu bytes long; a socket path is at most %zu", len,
                               SOCKET_PATH_MAX);
        return true;
}

/* A network interface's name as the kernel takes it (dev_valid_name()):
 * 1 to 15 bytes, no '/', ':' or white space, not "." or "..". */
static bool check_ifname(const char *value, char *why, size_t why_size) {
        size_t len = strlen(value);

        if (len > CONFIG_IFNAME_MAX)
                return config_why_set(why, why_size, "is %zu characters long; an interface name is at most %u", len,
                               CONFIG_IFNAME_MAX);
        if (strcmp(value, ".") == 0 || strcmp(value, "..") == 0)
                return config_why_set(why, why_size, "is not an interface name");
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) value[i];

                if (c <= 0x20 || c >= 0x7f || c == '/' || c == ':')
                        return config_why_set(why, why_size,
                                       "is not an interface name: no '/', ':', spaces or bytes outside printable ASCII");
        }
        return true;
}
