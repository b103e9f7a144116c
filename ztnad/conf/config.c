/* SPDX-License-Identifier: MIT */
/*
 * ztnad.conf: one table row per key (its section, type, default, bounds and
 * description), one parser per type. The defaults are text in the table and
 * go through the same parsers as the file, so a default can never be a value
 * the file would refuse, and the shipped example is written from the same
 * rows (config-example.h, which test-config holds examples/ztnad.conf to).
 */

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/inet-util.h"
#include "conf/config.h"
#include "conf/config-keys.h"
#include "common/read-file.h"
#include "macro.h"
#include "conf/public-suffix.h"
#include "shm-format.h"

/* A value, after its quotes are taken off, is at most this long. config_print
 * writes a value back quoted and escaped (at worst twice its length plus the
 * quotes) after the longest key: that line must still fit CONFIG_LINE_MAX so
 * that what it prints parses again. A list prints at most a few bytes longer
 * than it was written (an IPv6 address in RFC 5952 form, see
 * address_format()), which the same margin covers. */
#define CONFIG_VALUE_MAX 2000u
#define KEY_NAME_MAX 32u
static_assert(KEY_NAME_MAX + 3 + 2 * CONFIG_VALUE_MAX + 2 <= CONFIG_LINE_MAX, "a quoted value must fit a line");
static_assert(KEY_NAME_MAX + 3 + CONFIG_VALUE_MAX + CONFIG_UPSTREAM_MAX <= CONFIG_LINE_MAX, "a list must fit a line");
static_assert(KEY_NAME_MAX + 3 + CONFIG_VALUE_MAX + CONFIG_RANGES_MAX <= CONFIG_LINE_MAX, "a list must fit a line");

#define ORG_ID_MAX 255u
#define GROUP_NAME_MAX 32u /* Debian's useradd/groupadd limit */
#define SOCKET_PATH_MAX (sizeof(((struct sockaddr_un *) NULL)->sun_path) - 1)
#define PIN_BASE64_LEN 44u /* 32 bytes: 43 characters and one '=' */
#define WHY_MAX 384u
#define SHOW_MAX 80u /* a value quoted in a message, cut short with "..." */

#define USEC_PER_MIN (60 * USEC_PER_SEC)
#define USEC_PER_HOUR (60 * USEC_PER_MIN)
#define USEC_PER_DAY (24 * USEC_PER_HOUR)
#define KIB UINT64_C(1024)
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)

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

static const Key *key_find(const char *name) {
        for (size_t i = 0; i < N_KEYS; i++)
                if (strcmp(keys[i].name, name) == 0)
                        return &keys[i];
        return NULL;
}

static void *key_field(ZtnadConfig *c, const Key *k) {
        return (char *) c + k->offset;
}

static const void *key_field_const(const ZtnadConfig *c, const Key *k) {
        return (const char *) c + k->offset;
}

/* ---- text helpers ---- */

static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

/* `s` (`len` bytes) shown in a message: in double quotes, printable ASCII
 * only (a value must not forge a second log line), cut short. */
static const char *show(char buf[static SHOW_MAX], const char *s, size_t len) {
        size_t o = 0;

        buf[o++] = '"';
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) s[i];
                int n;

                /* Room for the longest escape, then "...", '"' and NUL. */
                if (o + 4 + 5 > SHOW_MAX) {
                        memcpy(buf + o, "...", 3);
                        o += 3;
                        break;
                }
                if (c == '"' || c == '\\') {
                        buf[o++] = '\\';
                        buf[o++] = (char) c;
                        continue;
                }
                if (c >= 0x20 && c < 0x7f) {
                        buf[o++] = (char) c;
                        continue;
                }
                n = snprintf(buf + o, SHOW_MAX - o, "\\x%02x", c);
                assert(n == 4);
                o += (size_t) n;
        }
        buf[o++] = '"';
        buf[o] = '\0';
        return buf;
}

static const char *show_str(char buf[static SHOW_MAX], const char *s) {
        return show(buf, s, strlen(s));
}

/* For the checks: writes the reason and returns false. */
__attribute__((format(printf, 3, 4)))
static bool why_set(char *why, size_t why_size, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(why, why_size, fmt, ap);
        va_end(ap);
        return false;
}

/* For the parsers: writes the reason and returns -EBADMSG. */
__attribute__((format(printf, 3, 4)))
static int invalid(char *why, size_t why_size, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(why, why_size, fmt, ap);
        va_end(ap);
        return -EBADMSG;
}

/* A decimal number of at most `max_digits` digits, all of `s[0..len)`. */
static bool parse_digits(const char *s, size_t len, size_t max_digits, uint64_t *ret) {
        uint64_t v = 0;

        if (len == 0 || len > max_digits)
                return false;
        for (size_t i = 0; i < len; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (uint64_t) (s[i] - '0');
        }
        *ret = v;
        return true;
}

static bool ascii_equal_n(const char *a, size_t len, const char *b) {
        if (strlen(b) != len)
                return false;
        for (size_t i = 0; i < len; i++)
                if (ascii_tolower(a[i]) != ascii_tolower(b[i]))
                        return false;
        return true;
}

/* A host name as DNS writes it (RFC 1123 2.1): labels of 1 to 63 letters,
 * digits and '-', not starting or ending with '-', at most 253 in all. */
static bool hostname_valid(const char *s, size_t len, char *why, size_t why_size) {
        size_t label = 0;

        if (len == 0)
                return why_set(why, why_size, "is empty");
        if (len > CONFIG_TLS_NAME_MAX)
                return why_set(why, why_size, "is %zu characters long; a host name is at most %u", len,
                               CONFIG_TLS_NAME_MAX);
        for (size_t i = 0; i <= len; i++) {
                if (i == len || s[i] == '.') {
                        if (label == 0)
                                return why_set(why, why_size, "has an empty label");
                        if (label > SHM_LABEL_MAX)
                                return why_set(why, why_size, "has a label longer than %u characters",
                                               SHM_LABEL_MAX);
                        if (s[i - label] == '-' || s[i - 1] == '-')
                                return why_set(why, why_size, "has a label that starts or ends with '-'");
                        label = 0;
                        continue;
                }
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9') || s[i] == '-')) {
                        unsigned char c = (unsigned char) s[i];

                        if (c > 0x20 && c < 0x7f)
                                return why_set(why, why_size,
                                               "contains '%c'; only letters, digits, '-' and '.' are allowed", c);
                        return why_set(why, why_size,
                                       "contains byte 0x%02x; only letters, digits, '-' and '.' are allowed", c);
                }
                label++;
        }
        return true;
}

/* ---- per-key checks ---- */

static bool check_org_id(const char *value, char *why, size_t why_size) {
        size_t len = strlen(value);

        if (len > ORG_ID_MAX)
                return why_set(why, why_size, "is %zu characters long; the limit is %u", len, ORG_ID_MAX);
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) value[i];

                if (c <= 0x20 || c >= 0x7f)
                        return why_set(why, why_size,
                                       "contains %s at position %zu; an organisation ID is printable ASCII without spaces",
                                       c == ' ' ? "a space" : "a byte that is not printable ASCII", i + 1);
        }
        return true;
}

static bool check_group(const char *value, char *why, size_t why_size) {
        size_t len = strlen(value), digits = 0;

        if (len > GROUP_NAME_MAX)
                return why_set(why, why_size, "is %zu characters long; a group name is at most %u", len,
                               GROUP_NAME_MAX);
        if (value[0] == '-')
                return why_set(why, why_size, "starts with '-'");
        for (size_t i = 0; i < len; i++) {
                char c = value[i];

                if (c >= '0' && c <= '9') {
                        digits++;
                        continue;
                }
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '-' || c == '.'))
                        return why_set(why, why_size,
                                       "is not a group name: only letters, digits, '_', '-' and '.' are allowed");
        }
        /* A number would be taken for a GID by some tools and a name by
         * others. */
        if (digits == len)
                return why_set(why, why_size, "is a number; give the group's name");
        return true;
}

static bool check_socket_path(const char *value, char *why, size_t why_size) {
        size_t len = strlen(value);

        if (len > SOCKET_PATH_MAX)
                return why_set(why, why_size, "is %zu bytes long; a socket path is at most %zu", len,
                               SOCKET_PATH_MAX);
        return true;
}

/* A network interface's name as the kernel takes it (dev_valid_name()):
 * 1 to 15 bytes, no '/', ':' or white space, not "." or "..". */
static bool check_ifname(const char *value, char *why, size_t why_size) {
        size_t len = strlen(value);

        if (len > CONFIG_IFNAME_MAX)
                return why_set(why, why_size, "is %zu characters long; an interface name is at most %u", len,
                               CONFIG_IFNAME_MAX);
        if (strcmp(value, ".") == 0 || strcmp(value, "..") == 0)
                return why_set(why, why_size, "is not an interface name");
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) value[i];

                if (c <= 0x20 || c >= 0x7f || c == '/' || c == ':')
                        return why_set(why, why_size,
                                       "is not an interface name: no '/', ':', spaces or bytes outside printable ASCII");
        }
        return true;
}

/* ---- types: parse, print, compare, free ---- */

/* Each parser reads `value` (NUL-terminated, unquoted, trimmed) into
 * `field`, which is zero on entry and is freed with the configuration
 * whatever happens. Returns 0, -EBADMSG with the reason in `why` (a phrase
 * that follows "key 'K': "), or -ENOMEM. */
typedef int (*ParseFn)(const Key *k, const char *value, void *field, char *why, size_t why_size);

static int path_check(const Key *k, const char *s, size_t len, char *why, size_t why_size) {
        char q[SHOW_MAX];

        if (s[0] != '/')
                return invalid(why, why_size, "%s is not an absolute path", show(q, s, len));
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
                        return invalid(why, why_size, "%s contains a control character", show(q, s, len));
        if ((k->flags & KEY_FILE) && s[len - 1] == '/')
                return invalid(why, why_size, "%s ends with '/'; expected the path of a file", show(q, s, len));
        return 0;
}

static int parse_path(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        char **p = field, q[SHOW_MAX], phrase[WHY_MAX];
        int r;

        if (value[0] == '\0') {
                if (k->flags & KEY_OPTIONAL)
                        return 0;
                return invalid(why, why_size, "must not be empty (expected an absolute path)");
        }
        r = path_check(k, value, strlen(value), why, why_size);
        if (r < 0)
                return r;
        if (k->check && !k->check(value, phrase, sizeof phrase))
                return invalid(why, why_size, "%s %s", show_str(q, value), phrase);
        *p = strdup(value);
        return *p ? 0 : -ENOMEM;
}

static int parse_string(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        char **p = field, q[SHOW_MAX], phrase[WHY_MAX];

        if (value[0] == '\0') {
                if (k->flags & KEY_OPTIONAL)
                        return 0;
                return invalid(why, why_size, "must not be empty");
        }
        if (k->check && !k->check(value, phrase, sizeof phrase))
                return invalid(why, why_size, "%s %s", show_str(q, value), phrase);
        *p = strdup(value);
        return *p ? 0 : -ENOMEM;
}

/* A port, "1" to "65535". */
static bool parse_port(const char *s, size_t len, uint16_t *ret) {
        uint64_t v;

        if (!parse_digits(s, len, 5, &v) || v == 0 || v > UINT16_MAX)
                return false;
        *ret = (uint16_t) v;
        return true;
}

/* Only https://: the requests carry the bearer token. The host is a DNS
 * name or an address, with an optional port; no user part (the token comes
 * from token_file, never from the URL); the rest printable ASCII. */
static int parse_url(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        static const char scheme[] = "https://";
        char **p = field, q[SHOW_MAX], phrase[WHY_MAX];
        size_t len = strlen(value), host_len, auth_len;
        const char *auth, *host, *colon = NULL;
        uint16_t port;

        if (len == 0) {
                if (k->flags & KEY_OPTIONAL)
                        return 0;
                return invalid(why, why_size, "must not be empty");
        }
        show(q, value, len);
        if (len >= 7 && ascii_equal_n(value, 7, "http://"))
                return invalid(why, why_size,
                               "%s: plain http:// is refused, the bearer token must travel over https://", q);
        if (len < sizeof scheme - 1 || !ascii_equal_n(value, sizeof scheme - 1, scheme))
                return invalid(why, why_size, "%s does not start with https://", q);
        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) value[i];

                if (c <= 0x20 || c >= 0x7f)
                        return invalid(why, why_size, "%s contains %s; percent-encode it", q,
                                       c == ' ' ? "a space" : "a byte that is not printable ASCII");
        }

        auth = value + sizeof scheme - 1;
        auth_len = strcspn(auth, "/?#");
        if (memchr(auth, '@', auth_len))
                return invalid(why, why_size, "%s has a user part; the token is read from token_file", q);
        host = auth;
        if (auth_len > 0 && auth[0] == '[') {
                const char *close = memchr(auth, ']', auth_len);
                char text[INET6_ADDRSTRLEN];
                struct in6_addr a6;

                host_len = close ? (size_t) (close - auth) - 1 : 0;
                if (!close || host_len >= sizeof text)
                        return invalid(why, why_size, "%s has a bad IPv6 address in brackets", q);
                memcpy(text, auth + 1, host_len);
                text[host_len] = '\0';
                if (inet_pton(AF_INET6, text, &a6) != 1)
                        return invalid(why, why_size, "%s has a bad IPv6 address in brackets", q);
                if ((size_t) (close - auth) + 1 < auth_len) {
                        if (close[1] != ':')
                                return invalid(why, why_size, "%s has text after the ']' of its host", q);
                        colon = close + 1;
                }
        } else {
                colon = memchr(auth, ':', auth_len);
                host_len = colon ? (size_t) (colon - auth) : auth_len;
                if (host_len == 0)
                        return invalid(why, why_size, "%s has no host", q);
                if (!hostname_valid(host, host_len, phrase, sizeof phrase))
                        return invalid(why, why_size, "%s: the host %s", q, phrase);
        }
        if (colon && !parse_port(colon + 1, (size_t) (auth + auth_len - colon - 1), &port))
                return invalid(why, why_size, "%s has a bad port; expected a number from 1 to 65535", q);

        *p = strdup(value);
        return *p ? 0 : -ENOMEM;
}

static const struct {
        const char *suffix;
        uint64_t usec;
} duration_units[] = {
        /* Largest first: config_print() uses the first that divides. */
        { "d", USEC_PER_DAY },
        { "h", USEC_PER_HOUR },
        { "min", USEC_PER_MIN },
        { "s", USEC_PER_SEC },
        { "ms", USEC_PER_MSEC },
        { "us", 1 },
};

static void duration_format(uint64_t usec, char *buf, size_t size) {
        if (usec == 0) {
                (void) snprintf(buf, size, "0");
                return;
        }
        for (size_t i = 0; i < ELEMENTSOF(duration_units); i++)
                if (usec % duration_units[i].usec == 0) {
                        (void) snprintf(buf, size, "%" PRIu64 "%s", usec / duration_units[i].usec,
                                        duration_units[i].suffix);
                        return;
                }
        assert(false);
}

/* A whole number and an optional unit, no space between: "500ms", "30s",
 * "5min", "2h", "1d"; a bare number is seconds. */
static int parse_duration(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        uint64_t *p = field, n, mult = 0;
        size_t digits = strspn(value, "0123456789");
        const char *unit = value + digits;
        char q[SHOW_MAX], lo[32], hi[32];

        show_str(q, value);
        if (digits == 0)
                goto bad;
        if (unit[0] == '\0')
                mult = USEC_PER_SEC;
        for (size_t i = 0; i < ELEMENTSOF(duration_units) && mult == 0; i++)
                if (strcmp(unit, duration_units[i].suffix) == 0)
                        mult = duration_units[i].usec;
        if (mult == 0)
                goto bad;

        duration_format(k->min, lo, sizeof lo);
        duration_format(k->max, hi, sizeof hi);
        /* 20 digits and more may not fit; any of them is out of range. */
        if (!parse_digits(value, digits, 19, &n) || n > k->max / mult)
                return invalid(why, why_size, "%s is longer than the maximum, %s", q, hi);
        if (n * mult < k->min)
                return invalid(why, why_size, "%s is shorter than the minimum, %s", q, lo);
        *p = n * mult;
        return 0;

bad:
        return invalid(why, why_size,
                       "%s is not a duration: expected a whole number and a unit (us, ms, s, min, h, d; none "
                       "means s), e.g. \"30s\"",
                       q);
}

static const struct {
        char suffix;
        uint64_t bytes;
} size_units[] = {
        /* Largest first, as for durations. */
        { 'G', GIB },
        { 'M', MIB },
        { 'K', KIB },
};

static void size_format(uint64_t bytes, char *buf, size_t size) {
        for (size_t i = 0; i < ELEMENTSOF(size_units); i++)
                if (bytes > 0 && bytes % size_units[i].bytes == 0) {
                        (void) snprintf(buf, size, "%" PRIu64 "%c", bytes / size_units[i].bytes,
                                        size_units[i].suffix);
                        return;
                }
        (void) snprintf(buf, size, "%" PRIu64, bytes);
}

/* A whole number of bytes, or of K, M or G (powers of 1024, either case). */
static int parse_size(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        uint64_t *p = field, n, mult = 0;
        size_t digits = strspn(value, "0123456789");
        const char *unit = value + digits;
        char q[SHOW_MAX], lo[32], hi[32];

        show_str(q, value);
        if (digits == 0)
                goto bad;
        if (unit[0] == '\0')
                mult = 1;
        else if (unit[1] == '\0')
                for (size_t i = 0; i < ELEMENTSOF(size_units); i++)
                        if (ascii_tolower(unit[0]) == ascii_tolower(size_units[i].suffix))
                                mult = size_units[i].bytes;
        if (mult == 0)
                goto bad;

        size_format(k->min, lo, sizeof lo);
        size_format(k->max, hi, sizeof hi);
        if (!parse_digits(value, digits, 19, &n) || n > k->max / mult)
                return invalid(why, why_size, "%s is more than the maximum, %s", q, hi);
        if (n * mult < k->min)
                return invalid(why, why_size, "%s is less than the minimum, %s", q, lo);
        *p = n * mult;
        return 0;

bad:
        return invalid(why, why_size,
                       "%s is not a size: expected a whole number of bytes, or of K, M or G (1024, 1024^2, "
                       "1024^3), e.g. \"16M\"",
                       q);
}

static int parse_bool(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        static const char *const yes[] = { "yes", "true", "on", "1" }, *const no[] = { "no", "false", "off", "0" };
        size_t len = strlen(value);
        bool *p = field;
        char q[SHOW_MAX];

        (void) k;
        for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
                if (ascii_equal_n(value, len, yes[i])) {
                        *p = true;
                        return 0;
                }
                if (ascii_equal_n(value, len, no[i])) {
                        *p = false;
                        return 0;
                }
        }
        return invalid(why, why_size, "%s is not a boolean: expected yes, no, true, false, on, off, 1 or 0",
                       show_str(q, value));
}

static int parse_enum(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        size_t len = strlen(value), o = 0;
        int *p = field;
        char q[SHOW_MAX], list[128];

        for (int i = 0; k->choices[i]; i++)
                if (ascii_equal_n(value, len, k->choices[i])) {
                        *p = i;
                        return 0;
                }
        /* "a, b or c" */
        list[0] = '\0';
        for (int i = 0; k->choices[i]; i++) {
                const char *sep = i == 0 ? "" : k->choices[i + 1] ? ", " : " or ";

                o += (size_t) snprintf(list + o, sizeof list - o, "%s%s", sep, k->choices[i]);
                assert(o < sizeof list);
        }
        return invalid(why, why_size, "%s is not one of %s", show_str(q, value), list);
}

/* Calls `fn` on each item of a list separated by spaces and tabs, with its
 * 0-based index; stops at the first error. At most `max` items. */
static int list_foreach(const char *value, size_t max, const char *what, char *why, size_t why_size,
                        int (*fn)(const char *item, size_t len, size_t index, void *userdata, char *why,
                                  size_t why_size),
                        void *userdata) {
        size_t n = 0;

        for (const char *s = value;;) {
                size_t len;
                int r;

                while (is_blank(*s))
                        s++;
                if (*s == '\0')
                        return 0;
                len = strcspn(s, " \t");
                if (n == max)
                        return invalid(why, why_size, "has more than %zu %s", max, what);
                r = fn(s, len, n, userdata, why, why_size);
                if (r < 0)
                        return r;
                n++;
                s += len;
        }
}

static size_t list_count(const char *value) {
        size_t n = 0;

        for (const char *s = value;;) {
                while (is_blank(*s))
                        s++;
                if (*s == '\0')
                        return n;
                n++;
                s += strcspn(s, " \t");
        }
}

static bool address_same(const ConfigAddress *a, const ConfigAddress *b) {
        if (a->sa.ss_family != b->sa.ss_family || a->port != b->port)
                return false;
        if (a->sa.ss_family == AF_INET)
                return ((const struct sockaddr_in *) &a->sa)->sin_addr.s_addr ==
                       ((const struct sockaddr_in *) &b->sa)->sin_addr.s_addr;
        return memcmp(&((const struct sockaddr_in6 *) &a->sa)->sin6_addr,
                      &((const struct sockaddr_in6 *) &b->sa)->sin6_addr, sizeof(struct in6_addr)) == 0;
}

typedef struct AddressList {
        ConfigAddresses *list;
        bool upstream;
} AddressList;

/* One list item, `len` bytes at `item`: "ADDR:PORT" or "[ADDR6]:PORT", then
 * "#tls-name" for an upstream, into items[index], which is then counted. */
static int address_parse_item(const char *item, size_t len, size_t index, void *userdata, char *why,
                              size_t why_size) {
        AddressList *l = userdata;
        ConfigAddress *a = &l->list->items[index];
        const char *hash = memchr(item, '#', len), *port;
        size_t addr_len = hash ? (size_t) (hash - item) : len, host_len, port_len;
        char q[SHOW_MAX], text[INET6_ADDRSTRLEN], phrase[WHY_MAX];
        const char *host;
        int family;

        show(q, item, len);
        if (l->upstream) {
                if (!hash)
                        return invalid(why, why_size,
                                       "%s has no TLS name; expected ADDR:PORT#tls-name, e.g. "
                                       "\"9.9.9.9:853#dns.quad9.net\"",
                                       q);
                if (!hostname_valid(hash + 1, len - addr_len - 1, phrase, sizeof phrase))
                        return invalid(why, why_size, "%s: the TLS name %s", q, phrase);
                memcpy(a->tls_name, hash + 1, len - addr_len - 1);
                a->tls_name[len - addr_len - 1] = '\0';
        } else if (hash)
                return invalid(why, why_size, "%s: a listen address takes no TLS name", q);

        if (addr_len > 0 && item[0] == '[') {
                const char *close = memchr(item, ']', addr_len);

                if (!close || close + 1 == item + addr_len || close[1] != ':')
                        return invalid(why, why_size, "%s: expected [ADDR6]:PORT, e.g. \"[::1]:53\"", q);
                host = item + 1;
                host_len = (size_t) (close - host);
                port = close + 2;
                family = AF_INET6;
        } else {
                const char *colon = memchr(item, ':', addr_len);

                if (!colon)
                        return invalid(why, why_size, "%s has no port; expected ADDR:PORT, e.g. \"127.0.0.53:53\"",
                                       q);
                if (memchr(colon + 1, ':', addr_len - (size_t) (colon + 1 - item)))
                        return invalid(why, why_size, "%s: put an IPv6 address in brackets, as in \"[::1]:53\"", q);
                host = item;
                host_len = (size_t) (colon - item);
                port = colon + 1;
                family = AF_INET;
        }
        port_len = (size_t) (item + addr_len - port);

        if (host_len >= sizeof text)
                goto bad_address;
        memcpy(text, host, host_len);
        text[host_len] = '\0';
        if (family == AF_INET) {
                struct sockaddr_in *sin = (struct sockaddr_in *) &a->sa;

                if (inet_pton(AF_INET, text, &sin->sin_addr) != 1)
                        goto bad_address;
                sin->sin_family = AF_INET;
                a->sa_len = sizeof *sin;
        } else {
                struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) &a->sa;

                if (inet_pton(AF_INET6, text, &sin6->sin6_addr) != 1)
                        goto bad_address;
                sin6->sin6_family = AF_INET6;
                a->sa_len = sizeof *sin6;
        }
        if (!parse_port(port, port_len, &a->port))
                return invalid(why, why_size, "%s: the port %s is not a number from 1 to 65535", q,
                               show(phrase, port, port_len));
        if (family == AF_INET)
                ((struct sockaddr_in *) &a->sa)->sin_port = htons(a->port);
        else
                ((struct sockaddr_in6 *) &a->sa)->sin6_port = htons(a->port);

        if (family == AF_INET) {
                uint32_t v4 = ntohl(((const struct sockaddr_in *) &a->sa)->sin_addr.s_addr);

                /* The stub serves this machine only: never an open resolver. */
                if (!l->upstream && (v4 >> 24) != 127)
                        return invalid(why, why_size, "%s is not a loopback address (127.0.0.0/8 or [::1])", q);
                if (l->upstream && (v4 == 0 || (v4 >> 28) == 0xe || v4 == UINT32_MAX))
                        return invalid(why, why_size, "%s is not a unicast address", q);
        } else {
                const struct in6_addr *v6 = &((const struct sockaddr_in6 *) &a->sa)->sin6_addr;

                if (!l->upstream && !IN6_IS_ADDR_LOOPBACK(v6))
                        return invalid(why, why_size, "%s is not a loopback address (127.0.0.0/8 or [::1])", q);
                if (l->upstream && (IN6_IS_ADDR_UNSPECIFIED(v6) || IN6_IS_ADDR_MULTICAST(v6)))
                        return invalid(why, why_size, "%s is not a unicast address", q);
        }

        for (size_t i = 0; i < index; i++)
                if (address_same(&l->list->items[i], a))
                        return invalid(why, why_size, "%s is listed twice", q);
        l->list->n = index + 1;
        return 0;

bad_address:
        return invalid(why, why_size, "%s: %s is not an IPv%c address", q, show(phrase, host, host_len),
                       family == AF_INET ? '4' : '6');
}

static int parse_addresses(const Key *k, const char *value, void *field, char *why, size_t why_size, bool upstream) {
        ConfigAddresses *p = field;
        AddressList l = { .list = p, .upstream = upstream };
        size_t n = list_count(value), max = upstream ? CONFIG_UPSTREAM_MAX : CONFIG_LISTEN_MAX;

        if (n == 0) {
                if (k->flags & KEY_OPTIONAL)
                        return 0;
                return invalid(why, why_size, "must not be empty");
        }
        p->items = calloc(n < max ? n : max, sizeof *p->items);
        if (!p->items)
                return -ENOMEM;
        return list_foreach(value, max, upstream ? "servers" : "addresses", why, why_size, address_parse_item, &l);
}

static int parse_listen(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        return parse_addresses(k, value, field, why, why_size, false);
}

static int parse_upstream(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        return parse_addresses(k, value, field, why, why_size, true);
}

static const char base64_alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int base64_value(char c) {
        const char *at = c ? strchr(base64_alphabet, c) : NULL;

        return at ? (int) (at - base64_alphabet) : -1;
}

/* A pin is the base64 (RFC 4648 4, padded) of 32 bytes: 43 characters and
 * '='. The last character carries 4 bits; the 2 left over must be zero, so
 * that each pin has one spelling and config_print() gives it back as it
 * was written. */
static int pin_parse_item(const char *item, size_t len, size_t index, void *userdata, char *why, size_t why_size) {
        ConfigPins *pins = userdata;
        ConfigPin *pin = &pins->items[index];
        uint32_t acc = 0;
        unsigned bits = 0;
        size_t o = 0;
        char q[SHOW_MAX];

        show(q, item, len);
        if (len != PIN_BASE64_LEN || item[len - 1] != '=')
                return invalid(why, why_size,
                               "%s is not a pin: expected the base64 of a SHA-256 digest, 44 characters ending "
                               "in '='",
                               q);
        for (size_t i = 0; i < len - 1; i++) {
                int v = base64_value(item[i]);

                if (v < 0)
                        return invalid(why, why_size, "%s contains '%c', which is not base64", q, item[i]);
                acc = (acc << 6) | (uint32_t) v;
                bits += 6;
                if (bits >= 8) {
                        bits -= 8;
                        pin->sha256[o++] = (uint8_t) (acc >> bits);
                        acc &= (UINT32_C(1) << bits) - 1;
                }
        }
        assert(o == CONFIG_SHA256_SIZE && bits == 2);
        if (acc != 0)
                return invalid(why, why_size, "%s is not canonical base64 (its last character is off)", q);

        for (size_t i = 0; i < index; i++)
                if (memcmp(pins->items[i].sha256, pin->sha256, CONFIG_SHA256_SIZE) == 0)
                        return invalid(why, why_size, "%s is listed twice", q);
        pins->n = index + 1;
        return 0;
}

static int parse_pins(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        ConfigPins *p = field;
        size_t n = list_count(value);

        (void) k;
        if (n == 0)
                return 0;
        p->items = calloc(n < CONFIG_PINS_MAX ? n : CONFIG_PINS_MAX, sizeof *p->items);
        if (!p->items)
                return -ENOMEM;
        return list_foreach(value, CONFIG_PINS_MAX, "pins", why, why_size, pin_parse_item, p);
}

typedef struct PathList {
        const Key *key;
        ConfigPaths *paths;
} PathList;

static int path_parse_item(const char *item, size_t len, size_t index, void *userdata, char *why, size_t why_size) {
        PathList *l = userdata;
        char q[SHOW_MAX];
        int r;

        r = path_check(l->key, item, len, why, why_size);
        if (r < 0)
                return r;
        for (size_t i = 0; i < index; i++)
                if (strlen(l->paths->items[i]) == len && memcmp(l->paths->items[i], item, len) == 0)
                        return invalid(why, why_size, "%s is listed twice", show(q, item, len));
        l->paths->items[index] = strndup(item, len);
        if (!l->paths->items[index])
                return -ENOMEM;
        l->paths->n = index + 1;
        return 0;
}

static int parse_paths(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        ConfigPaths *p = field;
        PathList l = { .key = k, .paths = p };
        size_t n = list_count(value);

        if (n == 0)
                return 0;
        p->items = calloc(n < CONFIG_BLOCKLIST_MAX ? n : CONFIG_BLOCKLIST_MAX, sizeof *p->items);
        if (!p->items)
                return -ENOMEM;
        return list_foreach(value, CONFIG_BLOCKLIST_MAX, "files", why, why_size, path_parse_item, &l);
}

/* One tailnet domain a peers document may claim. Stored in lower case
 * without the final dot, the form documents are compared in. */
static int domain_parse_item(const char *item, size_t len, size_t index, void *userdata, char *why,
                             size_t why_size) {
        ConfigNames *l = userdata;
        char q[SHOW_MAX], phrase[WHY_MAX];
        size_t last;
        char *name;
        int r;

        show(q, item, len);
        if (len > 1 && item[len - 1] == '.')
                len--;
        if (!hostname_valid(item, len, phrase, sizeof phrase))
                return invalid(why, why_size, "%s %s", q, phrase);
        if (!memchr(item, '.', len))
                return invalid(why, why_size,
                               "%s has a single label; it would make a whole top-level domain the tailnet's", q);
        last = len;
        while (last > 0 && item[last - 1] != '.')
                last--;
        if (strspn(item + last, "0123456789") == len - last)
                return invalid(why, why_size, "%s ends in an all-numeric label, which reads as an IPv4 address", q);
        r = public_suffix_check(item, len);
        if (r < 0)
                return invalid(why, why_size,
                               "%s cannot be checked against the public suffix list (%s); is the publicsuffix "
                               "package installed?",
                               q, strerror(-r));
        if (r > 0)
                return invalid(why, why_size,
                               "%s is a public suffix (anyone may register names under it), not a domain a "
                               "tailnet can own",
                               q);
        for (size_t i = 0; i < index; i++)
                if (ascii_equal_n(item, len, l->items[i]))
                        return invalid(why, why_size, "%s is listed twice", q);

        name = strndup(item, len);
        if (!name)
                return -ENOMEM;
        for (char *c = name; *c; c++)
                *c = ascii_tolower(*c);
        l->items[index] = name;
        l->n = index + 1;
        return 0;
}

static int parse_domains(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        ConfigNames *p = field;
        size_t n = list_count(value);

        (void) k;
        if (n == 0)
                return invalid(why, why_size, "must not be empty (expected the tailnet's domain, e.g. "
                                              "\"yourorg.zt.net\")");
        p->items = calloc(n < CONFIG_DOMAINS_MAX ? n : CONFIG_DOMAINS_MAX, sizeof *p->items);
        if (!p->items)
                return -ENOMEM;
        return list_foreach(value, CONFIG_DOMAINS_MAX, "domains", why, why_size, domain_parse_item, p);
}

static bool prefix_same(const ShmPrefix *a, const ShmPrefix *b) {
        if (a->family != b->family || a->prefixlen != b->prefixlen)
                return false;
        if (a->family == AF_INET)
                return a->addr.in.s_addr == b->addr.in.s_addr;
        return memcmp(&a->addr.in6, &b->addr.in6, sizeof a->addr.in6) == 0;
}

/* "ADDRESS/LENGTH", host bits clear; "0.0.0.0/0" and "::/0" allow every
 * address of their family, for an operator who means it. */
static int prefix_parse_item(const char *item, size_t len, size_t index, void *userdata, char *why,
                             size_t why_size) {
        ConfigPrefixes *l = userdata;
        ShmPrefix *p = &l->items[index];
        const char *slash = memchr(item, '/', len);
        char q[SHOW_MAX], text[INET6_ADDRSTRLEN];
        size_t alen, plen;
        uint64_t prefixlen;
        const uint8_t *bytes;
        unsigned max;

        show(q, item, len);
        if (!slash)
                return invalid(why, why_size,
                               "%s has no prefix length; expected ADDRESS/LENGTH, e.g. \"100.64.0.0/10\"", q);
        alen = (size_t) (slash - item);
        plen = len - alen - 1;
        if (!parse_digits(slash + 1, plen, 3, &prefixlen) || (plen > 1 && slash[1] == '0'))
                return invalid(why, why_size, "%s has a bad prefix length (expected a decimal number)", q);
        if (alen >= sizeof text)
                return invalid(why, why_size, "%s is not an IPv4 or IPv6 prefix", q);
        memcpy(text, item, alen);
        text[alen] = '\0';
        *p = (ShmPrefix) {};
        if (inet_pton(AF_INET, text, &p->addr.in) == 1) {
                p->family = AF_INET;
                max = 32;
                bytes = (const uint8_t *) &p->addr.in;
        } else if (inet_pton(AF_INET6, text, &p->addr.in6) == 1) {
                p->family = AF_INET6;
                max = 128;
                bytes = p->addr.in6.s6_addr;
        } else
                return invalid(why, why_size, "%s is not an IPv4 or IPv6 prefix", q);
        if (prefixlen > max)
                return invalid(why, why_size, "%s: prefix length %" PRIu64 " is more than %u", q, prefixlen, max);
        for (unsigned bit = (unsigned) prefixlen; bit < max; bit++)
                if (bytes[bit / 8] & (0x80u >> (bit % 8)))
                        return invalid(why, why_size, "%s has bits set after the first %" PRIu64, q, prefixlen);
        p->prefixlen = (unsigned) prefixlen;
        for (size_t i = 0; i < index; i++)
                if (prefix_same(&l->items[i], p))
                        return invalid(why, why_size, "%s is listed twice", q);
        l->n = index + 1;
        return 0;
}

static int parse_prefixes(const Key *k, const char *value, void *field, char *why, size_t why_size) {
        ConfigPrefixes *p = field;
        size_t n = list_count(value);

        (void) k;
        if (n == 0)
                return invalid(why, why_size, "must not be empty (expected prefixes, e.g. \"100.64.0.0/10\")");
        p->items = calloc(n < CONFIG_RANGES_MAX ? n : CONFIG_RANGES_MAX, sizeof *p->items);
        if (!p->items)
                return -ENOMEM;
        return list_foreach(value, CONFIG_RANGES_MAX, "prefixes", why, why_size, prefix_parse_item, p);
}

/* A value as config_parse() reads it back: bare when it can be, otherwise in
 * double quotes with '"' and '\' escaped. */
static void string_print(const char *s, FILE *f) {
        size_t len = s ? strlen(s) : 0;

        if (len == 0)
                return;
        if (s[0] != '"' && !is_blank(s[0]) && !is_blank(s[len - 1])) {
                fputs(s, f);
                return;
        }
        fputc('"', f);
        for (; *s; s++) {
                if (*s == '"' || *s == '\\')
                        fputc('\\', f);
                fputc(*s, f);
        }
        fputc('"', f);
}

/* "[" INET6_ADDRSTRLEN "]:65535#" and a TLS name. */
#define ADDRESS_TEXT_MAX (INET6_ADDRSTRLEN + 9 + CONFIG_TLS_NAME_MAX)

static const char *address_format(const ConfigAddress *a, char buf[static ADDRESS_TEXT_MAX]) {
        char host_port[INET_HOST_PORT_MAX];

        /* RFC 5952 text, which may be a character longer than what was
         * parsed ("1::3:4:5:6:7:8" is "1:0:3:4:5:6:7:8"). */
        (void) inet_host_port(a->sa.ss_family, sockaddr_ip(&a->sa), a->port, host_port, sizeof host_port);
        (void) snprintf(buf, ADDRESS_TEXT_MAX, "%s%s%s", host_port, a->tls_name[0] ? "#" : "", a->tls_name);
        return buf;
}

static void value_print(const Key *k, const void *field, FILE *f) {
        char buf[32];

        switch (k->type) {
        case TYPE_PATH:
        case TYPE_STRING:
        case TYPE_URL:
                string_print(*(char *const *) field, f);
                break;
        case TYPE_DURATION:
                duration_format(*(const uint64_t *) field, buf, sizeof buf);
                fputs(buf, f);
                break;
        case TYPE_SIZE:
                size_format(*(const uint64_t *) field, buf, sizeof buf);
                fputs(buf, f);
                break;
        case TYPE_BOOL:
                fputs(*(const bool *) field ? "yes" : "no", f);
                break;
        case TYPE_ENUM:
                fputs(k->choices[*(const int *) field], f);
                break;
        case TYPE_LISTEN:
        case TYPE_UPSTREAM: {
                const ConfigAddresses *l = field;
                char text[ADDRESS_TEXT_MAX];

                for (size_t i = 0; i < l->n; i++)
                        fprintf(f, "%s%s", i > 0 ? " " : "", address_format(&l->items[i], text));
                break;
        }
        case TYPE_PINS: {
                const ConfigPins *l = field;

                for (size_t i = 0; i < l->n; i++) {
                        const uint8_t *d = l->items[i].sha256;
                        char out[PIN_BASE64_LEN + 1];
                        size_t o = 0;

                        /* 32 bytes: ten groups of three, then two bytes. */
                        for (size_t j = 0; j < CONFIG_SHA256_SIZE; j += 3) {
                                uint32_t v = (uint32_t) d[j] << 16 | (uint32_t) d[j + 1] << 8;

                                if (j + 2 < CONFIG_SHA256_SIZE)
                                        v |= d[j + 2];
                                out[o++] = base64_alphabet[v >> 18 & 63];
                                out[o++] = base64_alphabet[v >> 12 & 63];
                                out[o++] = base64_alphabet[v >> 6 & 63];
                                out[o++] = j + 2 < CONFIG_SHA256_SIZE ? base64_alphabet[v & 63] : '=';
                        }
                        assert(o == PIN_BASE64_LEN);
                        out[o] = '\0';
                        fprintf(f, "%s%s", i > 0 ? " " : "", out);
                }
                break;
        }
        case TYPE_PATHS: {
                const ConfigPaths *l = field;

                for (size_t i = 0; i < l->n; i++)
                        fprintf(f, "%s%s", i > 0 ? " " : "", l->items[i]);
                break;
        }
        case TYPE_DOMAINS: {
                const ConfigNames *l = field;

                for (size_t i = 0; i < l->n; i++)
                        fprintf(f, "%s%s", i > 0 ? " " : "", l->items[i]);
                break;
        }
        case TYPE_PREFIXES: {
                const ConfigPrefixes *l = field;
                char text[INET6_ADDRSTRLEN];

                for (size_t i = 0; i < l->n; i++) {
                        (void) inet_ntop(l->items[i].family, &l->items[i].addr, text, sizeof text);
                        fprintf(f, "%s%s/%u", i > 0 ? " " : "", text, l->items[i].prefixlen);
                }
                break;
        }
        case _TYPE_MAX:
                assert(false);
        }
}

static const ParseFn parsers[_TYPE_MAX] = {
        [TYPE_PATH] = parse_path,
        [TYPE_STRING] = parse_string,
        [TYPE_URL] = parse_url,
        [TYPE_DURATION] = parse_duration,
        [TYPE_SIZE] = parse_size,
        [TYPE_BOOL] = parse_bool,
        [TYPE_ENUM] = parse_enum,
        [TYPE_LISTEN] = parse_listen,
        [TYPE_UPSTREAM] = parse_upstream,
        [TYPE_PINS] = parse_pins,
        [TYPE_PATHS] = parse_paths,
        [TYPE_DOMAINS] = parse_domains,
        [TYPE_PREFIXES] = parse_prefixes,
};

static bool string_equal(const char *a, const char *b) {
        if (!a || !b)
                return a == b;
        return strcmp(a, b) == 0;
}

static bool value_equal(const Key *k, const void *a, const void *b) {
        switch (k->type) {
        case TYPE_PATH:
        case TYPE_STRING:
        case TYPE_URL:
                return string_equal(*(char *const *) a, *(char *const *) b);
        case TYPE_DURATION:
        case TYPE_SIZE:
                return *(const uint64_t *) a == *(const uint64_t *) b;
        case TYPE_BOOL:
                return *(const bool *) a == *(const bool *) b;
        case TYPE_ENUM:
                return *(const int *) a == *(const int *) b;
        case TYPE_LISTEN:
        case TYPE_UPSTREAM: {
                const ConfigAddresses *x = a, *y = b;

                if (x->n != y->n)
                        return false;
                for (size_t i = 0; i < x->n; i++)
                        if (!address_same(&x->items[i], &y->items[i]) ||
                            strcmp(x->items[i].tls_name, y->items[i].tls_name) != 0)
                                return false;
                return true;
        }
        case TYPE_PINS: {
                const ConfigPins *x = a, *y = b;

                return x->n == y->n && (x->n == 0 || memcmp(x->items, y->items, x->n * sizeof *x->items) == 0);
        }
        case TYPE_PATHS: {
                const ConfigPaths *x = a, *y = b;

                if (x->n != y->n)
                        return false;
                for (size_t i = 0; i < x->n; i++)
                        if (strcmp(x->items[i], y->items[i]) != 0)
                                return false;
                return true;
        }
        case TYPE_DOMAINS: {
                const ConfigNames *x = a, *y = b;

                if (x->n != y->n)
                        return false;
                for (size_t i = 0; i < x->n; i++)
                        if (strcmp(x->items[i], y->items[i]) != 0)
                                return false;
                return true;
        }
        case TYPE_PREFIXES: {
                const ConfigPrefixes *x = a, *y = b;

                if (x->n != y->n)
                        return false;
                for (size_t i = 0; i < x->n; i++)
                        if (!prefix_same(&x->items[i], &y->items[i]))
                                return false;
                return true;
        }
        case _TYPE_MAX:
                break;
        }
        assert(false);
        return false;
}

static void value_free(const Key *k, void *field) {
        switch (k->type) {
        case TYPE_PATH:
        case TYPE_STRING:
        case TYPE_URL:
                free(*(char **) field);
                break;
        case TYPE_LISTEN:
        case TYPE_UPSTREAM:
                free(((ConfigAddresses *) field)->items);
                break;
        case TYPE_PINS:
                free(((ConfigPins *) field)->items);
                break;
        case TYPE_PATHS: {
                ConfigPaths *l = field;

                for (size_t i = 0; i < l->n; i++)
                        free(l->items[i]);
                free(l->items);
                break;
        }
        case TYPE_DOMAINS: {
                ConfigNames *l = field;

                for (size_t i = 0; i < l->n; i++)
                        free(l->items[i]);
                free(l->items);
                break;
        }
        case TYPE_PREFIXES:
                free(((ConfigPrefixes *) field)->items);
                break;
        case TYPE_DURATION:
        case TYPE_SIZE:
        case TYPE_BOOL:
        case TYPE_ENUM:
        case _TYPE_MAX:
                break;
        }
}

/* ---- the file ---- */

typedef struct Parser {
        const char *source;
        ConfigError *err;
        unsigned set_line[N_KEYS]; /* 0: not in the file */
} Parser;

/* Fills `err` ("SOURCE:LINE: key 'K': PROBLEM", the parts that apply) and
 * returns `code`. `key` is the name as written, possibly not a known one. */
__attribute__((format(printf, 6, 7)))
static int fail(const Parser *p, int code, unsigned line, const char *key, size_t key_len, const char *fmt, ...) {
        ConfigError *e = p->err;
        char at[16] = "", named[sizeof e->key + 8] = "";
        va_list ap;
        int n;

        if (!e)
                return code;
        *e = (ConfigError) { .line = line };
        (void) snprintf(e->file, sizeof e->file, "%s", p->source);
        if (key) {
                size_t k = key_len < sizeof e->key - 1 ? key_len : sizeof e->key - 1;

                memcpy(e->key, key, k);
                e->key[k] = '\0';
                (void) snprintf(named, sizeof named, " key '%s':", e->key);
        }
        if (line > 0)
                (void) snprintf(at, sizeof at, ":%u", line);

        n = snprintf(e->message, sizeof e->message, "%s%s:%s ", p->source, at, named);
        if (n >= 0 && (size_t) n < sizeof e->message) {
                va_start(ap, fmt);
                (void) vsnprintf(e->message + n, sizeof e->message - (size_t) n, fmt, ap);
                va_end(ap);
        }

        /* Values are shown escaped already; the source and a key as written
         * are not ours. */
        for (char *s = e->message; *s; s++)
                if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f)
                        *s = '?';
        for (char *s = e->key; *s; s++)
                if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f)
                        *s = '?';
        return code;
}

static void trim(const char **s, size_t *len) {
        while (*len > 0 && is_blank((*s)[0])) {
                (*s)++;
                (*len)--;
        }
        while (*len > 0 && is_blank((*s)[*len - 1]))
                (*len)--;
}

/* Takes the quotes off a value into `buf` (CONFIG_LINE_MAX + 1 bytes): a
 * value that starts with '"' must end with the matching '"', and only \"
 * and \\ are escapes in it. Anything else is taken as it is. */
static int unquote(const Parser *p, unsigned line, const char *key, size_t key_len, const char *v, size_t len,
                   char *buf) {
        size_t o = 0;

        if (len == 0 || v[0] != '"') {
                memcpy(buf, v, len);
                buf[len] = '\0';
                return 0;
        }
        for (size_t i = 1; i < len; i++) {
                if (v[i] == '\\') {
                        if (i + 1 == len || (v[i + 1] != '"' && v[i + 1] != '\\'))
                                return fail(p, -EBADMSG, line, key, key_len,
                                            "unknown escape in a quoted value (only \\\" and \\\\ are escapes)");
                        buf[o++] = v[++i];
                        continue;
                }
                if (v[i] == '"') {
                        if (i + 1 != len)
                                return fail(p, -EBADMSG, line, key, key_len,
                                            "text after the closing quote (a comment must be on a line of its own)");
                        buf[o] = '\0';
                        return 0;
                }
                buf[o++] = v[i];
        }
        return fail(p, -EBADMSG, line, key, key_len, "the quoted value has no closing '\"'");
}

static int parse_section(const Parser *p, unsigned line, const char *s, size_t len, Section *section) {
        char q[SHOW_MAX];
        const char *name = s + 1;
        size_t name_len;

        if (s[len - 1] != ']')
                return fail(p, -EBADMSG, line, NULL, 0,
                            "a section header must end with ']' (a comment must be on a line of its own)");
        name_len = len - 2;
        trim(&name, &name_len);
        for (int i = 0; i < _SECTION_MAX; i++)
                if (strlen(section_names[i]) == name_len && memcmp(section_names[i], name, name_len) == 0) {
                        *section = (Section) i;
                        return 0;
                }
        return fail(p, -EBADMSG, line, NULL, 0, "unknown section %s; the sections are [ztnad] and [dns]",
                    show(q, s, len));
}

static int parse_assignment(Parser *p, ZtnadConfig *c, unsigned line, Section section, const char *s, size_t len,
                            char *value) {
        const char *eq = memchr(s, '=', len), *key = s, *v;
        size_t key_len, v_len;
        char name[KEY_NAME_MAX + 1], why[WHY_MAX];
        const Key *k;
        size_t idx;
        int r;

        if (!eq)
                return fail(p, -EBADMSG, line, NULL, 0,
                            "expected 'key = value', a [section] header or a comment ('#' or ';' first)");
        key_len = (size_t) (eq - s);
        trim(&key, &key_len);
        v = eq + 1;
        v_len = (size_t) (s + len - v);
        trim(&v, &v_len);
        if (key_len == 0)
                return fail(p, -EBADMSG, line, NULL, 0, "no key before '='");

        k = NULL;
        if (key_len <= KEY_NAME_MAX) {
                memcpy(name, key, key_len);
                name[key_len] = '\0';
                k = key_find(name);
        }
        if (!k) {
                /* A hint for the commonest slip. */
                for (size_t i = 0; i < N_KEYS; i++)
                        if (ascii_equal_n(key, key_len, keys[i].name))
                                return fail(p, -EBADMSG, line, key, key_len,
                                            "unknown key; keys are lower case: did you mean '%s'?", keys[i].name);
                return fail(p, -EBADMSG, line, key, key_len, "unknown key (see ztnad.conf(5))");
        }
        if (k->section != section)
                return fail(p, -EBADMSG, line, key, key_len, "belongs in section [%s], not [%s]",
                            section_names[k->section], section_names[section]);
        idx = (size_t) (k - keys);
        if (p->set_line[idx] > 0)
                return fail(p, -EBADMSG, line, key, key_len, "given twice, on lines %u and %u", p->set_line[idx],
                            line);
        p->set_line[idx] = line;

        r = unquote(p, line, key, key_len, v, v_len, value);
        if (r < 0)
                return r;
        if (strlen(value) > CONFIG_VALUE_MAX)
                return fail(p, -EBADMSG, line, key, key_len, "the value is %zu bytes long; the limit is %u",
                            strlen(value), CONFIG_VALUE_MAX);
        r = parsers[k->type](k, value, key_field(c, k), why, sizeof why);
        if (r == -ENOMEM)
                return fail(p, r, line, key, key_len, "out of memory");
        if (r < 0)
                return fail(p, r, line, key, key_len, "%s", why);
        return 0;
}

/* One line, without its ending ("\n", or "\r\n"). */
static int parse_line(Parser *p, ZtnadConfig *c, unsigned line, Section *section, const char *s, size_t len,
                      char *value) {
        if (len > CONFIG_LINE_MAX)
                return fail(p, -EBADMSG, line, NULL, 0, "the line is %zu bytes long; the limit is %u", len,
                            CONFIG_LINE_MAX);
        for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char) s[i];

                if (ch == '\0')
                        return fail(p, -EBADMSG, line, NULL, 0, "contains a NUL byte (column %zu)", i + 1);
                if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                        return fail(p, -EBADMSG, line, NULL, 0, "contains the control character 0x%02x (column %zu)",
                                    ch, i + 1);
        }

        trim(&s, &len);
        if (len == 0 || s[0] == '#' || s[0] == ';')
                return 0;
        if (s[0] == '[')
                return parse_section(p, line, s, len, section);
        return parse_assignment(p, c, line, *section, s, len, value);
}

/* The line that set `name`, else the one that set `other` (may be NULL), else
 * 0: where to point when a key is wrong because of another. */
static unsigned line_of(const Parser *p, const char *name, const char *other) {
        const Key *k = key_find(name), *o = other ? key_find(other) : NULL;

        assert(k && (!other || o));
        if (p->set_line[k - keys] > 0 || !o)
                return p->set_line[k - keys];
        return p->set_line[o - keys];
}

/* What no single value shows: keys that need each other. */
static int check_together(const Parser *p, const ZtnadConfig *c) {
        char q[SHOW_MAX], text[ADDRESS_TEXT_MAX];

        if (c->control_url && !c->org_id)
                return fail(p, -EBADMSG, line_of(p, "org_id", "control_url"), "org_id", strlen("org_id"),
                            "missing; required because control_url is set");
        if (!c->stub)
                return 0;
        if (c->listen.n == 0)
                return fail(p, -EBADMSG, line_of(p, "listen", "stub"), "listen", strlen("listen"),
                            "is empty, but the stub is on (set stub = no to run without it)");
        if (c->upstream.n == 0)
                return fail(p, -EBADMSG, line_of(p, "upstream", "stub"), "upstream", strlen("upstream"),
                            "is empty, but the stub is on (set stub = no to run without it)");
        for (size_t i = 0; i < c->upstream.n; i++)
                for (size_t j = 0; j < c->listen.n; j++)
                        if (address_same(&c->upstream.items[i], &c->listen.items[j]))
                                return fail(p, -EBADMSG, line_of(p, "upstream", "listen"), "upstream",
                                            strlen("upstream"),
                                            "%s is also a listen address; the stub would forward to itself",
                                            show_str(q, address_format(&c->upstream.items[i], text)));
        return 0;
}

int config_parse(const char *data, size_t len, const char *source, ZtnadConfig **ret, ConfigError *err) {
        Parser p = { .source = source ? source : "ztnad.conf", .err = err };
        _cleanup_config_ ZtnadConfig *c = NULL;
        _cleanup_free_ char *value = NULL;
        Section section = SECTION_ZTNAD;
        const char *s = data, *end;
        unsigned line = 0;
        int r;

        if (len > CONFIG_FILE_MAX)
                return fail(&p, -E2BIG, 0, NULL, 0, "is %zu bytes; the limit is %zu", len, CONFIG_FILE_MAX);
        if (len == 0)
                s = "";
        end = s + len;

        c = calloc(1, sizeof *c);
        value = malloc(CONFIG_LINE_MAX + 1);
        if (!c || !value)
                return fail(&p, -ENOMEM, 0, NULL, 0, "out of memory");

        /* Some editors start a UTF-8 file with a byte order mark. */
        if (len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
                s += 3;
        while (s < end) {
                const char *nl = memchr(s, '\n', (size_t) (end - s));
                const char *eol = nl ? nl : end;
                size_t n = (size_t) (eol - s);

                /* The file is capped at 1 MiB, so the count cannot wrap. */
                line++;
                if (n > 0 && s[n - 1] == '\r')
                        n--;
                r = parse_line(&p, c, line, &section, s, n, value);
                if (r < 0)
                        return r;
                s = nl ? nl + 1 : end;
        }

        for (size_t i = 0; i < N_KEYS; i++) {
                char why[WHY_MAX];

                if (p.set_line[i] > 0)
                        continue;
                r = parsers[keys[i].type](&keys[i], keys[i].def, key_field(c, &keys[i]), why, sizeof why);
                if (r == -ENOMEM)
                        return fail(&p, r, 0, NULL, 0, "out of memory");
                /* The tests hold every default to its own parser. */
                assert(r == 0);
        }

        r = check_together(&p, c);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(c);
        return 0;
}

int config_defaults(ZtnadConfig **ret) {
        return config_parse(NULL, 0, "defaults", ret, NULL);
}

size_t config_plaintext_fallback_defaults(struct sockaddr_storage *ret, size_t max, char *text, size_t text_size) {
        _cleanup_config_ ZtnadConfig *d = NULL;
        size_t n = 0, pos = 0;

        if (text && text_size)
                text[0] = '\0';
        if (config_defaults(&d) < 0)
                return 0;
        for (size_t i = 0; i < d->upstream.n && n < max; i++) {
                struct sockaddr_storage a = d->upstream.items[i].sa;
                char ip[INET6_ADDRSTRLEN];
                const void *raw;

                if (a.ss_family == AF_INET) {
                        struct sockaddr_in *in = (struct sockaddr_in *) (void *) &a;
                        in->sin_port = htons(53);
                        raw = &in->sin_addr;
                } else if (a.ss_family == AF_INET6) {
                        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) (void *) &a;
                        in6->sin6_port = htons(53);
                        raw = &in6->sin6_addr;
                } else
                        continue;
                ret[n++] = a;
                if (text && pos < text_size && inet_ntop(a.ss_family, raw, ip, sizeof ip)) {
                        int k = snprintf(text + pos, text_size - pos, "%s%s", n == 1 ? "" : " and ", ip);
                        if (k > 0)
                                pos += (size_t) k;
                }
        }
        return n;
}

int config_load(const char *path, ZtnadConfig **ret, ConfigError *err) {
        Parser p = { .source = path ? path : CONFIG_DEFAULT_PATH, .err = err };
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        ReadFileStep step;
        size_t n;
        int r;

        r = read_regular_file(p.source, CONFIG_FILE_MAX, 0, &buf, &n, &st, &step);
        if (r == -ENOENT && step == READ_FILE_OPEN && !path) {
                r = config_parse(NULL, 0, p.source, ret, err);
                return r < 0 ? r : 1;
        }
        if (r < 0) {
                if (step == READ_FILE_OPEN)
                        return fail(&p, r, 0, NULL, 0, "cannot open: %s", strerror(-r));
                if (step == READ_FILE_STAT)
                        return fail(&p, r, 0, NULL, 0, "cannot stat: %s", strerror(-r));
                if (r == -EINVAL && step == READ_FILE_CHECK)
                        return fail(&p, r, 0, NULL, 0, "is not a regular file");
                if (r == -EFBIG && step == READ_FILE_CHECK)
                        return fail(&p, -E2BIG, 0, NULL, 0, "is %jd bytes; the limit is %zu", (intmax_t) st.st_size,
                                    CONFIG_FILE_MAX);
                if (r == -ENOMEM)
                        return fail(&p, r, 0, NULL, 0, "out of memory");
                if (r == -EAGAIN)
                        return fail(&p, r, 0, NULL, 0, "changed while it was read");
                return fail(&p, r, 0, NULL, 0, "cannot read: %s", strerror(-r));
        }

        return config_parse(buf, n, p.source, ret, err);
}

ZtnadConfig *config_free(ZtnadConfig *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < N_KEYS; i++)
                value_free(&keys[i], key_field(c, &keys[i]));
        free(c);
        return NULL;
}

unsigned config_diff(const ZtnadConfig *a, const ZtnadConfig *b, char *buf, size_t size, size_t *ret_n) {
        size_t n = 0, used = 0;
        unsigned apply = 0;

        if (size > 0)
                buf[0] = '\0';
        for (size_t i = 0; i < N_KEYS; i++) {
                if (value_equal(&keys[i], key_field_const(a, &keys[i]), key_field_const(b, &keys[i])))
                        continue;
                if (used < size) {
                        int k = snprintf(buf + used, size - used, "%s%s", n > 0 ? ", " : "", keys[i].name);
                        used += k > 0 ? (size_t) k : 0;
                }
                apply |= keys[i].apply;
                n++;
        }
        if (ret_n)
                *ret_n = n;
        return apply;
}

/* Whether a value prints as nothing: an unset optional string, an empty
 * list. */
static bool value_empty(const Key *k, const void *field) {
        switch (k->type) {
        case TYPE_PATH:
        case TYPE_STRING:
        case TYPE_URL:
                return !*(char *const *) field;
        case TYPE_LISTEN:
        case TYPE_UPSTREAM:
                return ((const ConfigAddresses *) field)->n == 0;
        case TYPE_PINS:
                return ((const ConfigPins *) field)->n == 0;
        case TYPE_PATHS:
                return ((const ConfigPaths *) field)->n == 0;
        case TYPE_DOMAINS:
                return ((const ConfigNames *) field)->n == 0;
        case TYPE_PREFIXES:
                return ((const ConfigPrefixes *) field)->n == 0;
        default:
                return false;
        }
}

void config_print(const ZtnadConfig *c, FILE *f) {
        for (int s = 0; s < _SECTION_MAX; s++) {
                fprintf(f, "%s[%s]\n", s > 0 ? "\n" : "", section_names[s]);
                for (size_t i = 0; i < N_KEYS; i++) {
                        const void *field = key_field_const(c, &keys[i]);

                        if (keys[i].section != (Section) s)
                                continue;
                        /* "key =" alone for an empty value: no trailing
                         * blank. */
                        fprintf(f, "%s =", keys[i].name);
                        if (!value_empty(&keys[i], field)) {
                                fputc(' ', f);
                                value_print(&keys[i], field, f);
                        }
                        fputc('\n', f);
                }
        }
}
