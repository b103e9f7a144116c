/* SPDX-License-Identifier: MIT */
/*
 * The DNS manager, ztnad's root helper (dns-manager.h). One run does one
 * verb and exits; what is in place is remembered in DNS_MANAGER_LIB_DIR:
 *
 *   applied.json      the mode in place and exactly what was set (the
 *                     link's index and name, servers, domains), so that a
 *                     revert undoes that and not what today's
 *                     configuration would set
 *   resolv.conf.orig  file mode: /etc/resolv.conf's bytes before the first
 *                     write, or
 *   resolv.conf.link  its symbolic link's target, or
 *   resolv.conf.none  a mark that there was none
 *
 * Every run also writes the status that `ztna status` shows next to the
 * store (0644, root's): the mode, what was set, state and error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ifaddrs.h>
#include <jansson.h>
#include <limits.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "common/write-file.h"
#include "common/log.h"
#include "hostdns/dns-manager.h"
#include "hostdns/dns-state.h"
#include "macro.h"
#include "shm-format.h"
#include "common/time-util.h"
#include "common/read-file.h"

/* One D-Bus call; resolved answers in milliseconds when it is there. */
#define BUS_CALL_TIMEOUT_USEC (2 * USEC_PER_SEC)
/* Right after `apt install systemd-resolved` the name is not on the bus
 * for a while: retry this long, every RETRY_PAUSE. `hold` runs before
 * ztnad starts at boot and must not hold the boot up for long. */
#define BUS_RETRY_USEC (10 * USEC_PER_SEC)
#define BUS_RETRY_HOLD_USEC (2 * USEC_PER_SEC)
#define BUS_RETRY_PAUSE_USEC (250 * USEC_PER_MSEC)
/* file mode: rewrites of /etc/resolv.conf undone per hour, at most. */
#define FILE_REAPPLY_MAX 20
#define FILE_REAPPLY_WINDOW_SEC 3600
#define DOMAINS_MAX (1 + DNS_STATE_RANGES_MAX * DNS_REVERSE_ZONES_PER_PREFIX + 1)
#define TEXT_MAX 65536

#define RESOLVE_SERVICE "org.freedesktop.resolve1"
#define RESOLVE_PATH "/org/freedesktop/resolve1"
#define RESOLVE_MANAGER "org.freedesktop.resolve1.Manager"
#define RESOLVED_UNIT "systemd-resolved.service"
#define ZTNAD_UNIT "ztnad.service"
#define RESOLVCONF_IFACE "lo.ztna"

static const char *const resolvconf_paths[] = { "/sbin/resolvconf", "/usr/sbin/resolvconf" };

/* Paths, overridable for tests that run the helper in a namespace of
 * their own (root only: the helper is never setuid). */
static const char *lib_dir(void) {
        const char *e = secure_getenv("ZTNA_DNS_MANAGER_LIB");
        return e && e[0] == '/' ? e : DNS_MANAGER_LIB_DIR;
}
static const char *resolv_conf_path(void) {
        const char *e = secure_getenv("ZTNA_DNS_MANAGER_RESOLV_CONF");
        return e && e[0] == '/' ? e : "/etc/resolv.conf";
}
static const char *dropin_path(void) {
        const char *e = secure_getenv("ZTNA_DNS_MANAGER_DROPIN");
        return e && e[0] == '/' ? e : "/etc/systemd/resolved.conf.d/ztna.conf";
}

typedef struct Manager {
        const char *verb;
        ZtnadConfig *config; /* NULL when the file is broken */
        char store_dir[PATH_MAX];
        DnsState state;
        bool have_state;
        json_t *applied; /* what is in place (NULL: nothing) */
        json_t *status;  /* what `ztna status` shows */
        sd_bus *bus;
        uint64_t bus_retry_usec;
        bool in_resolved_start; /* resolved is starting: never restart it */
        bool keep_dropin;       /* a mode change to resolved keeps the drop-in */
} Manager;

static void status_error(Manager *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void status_error(Manager *m, const char *fmt, ...) {
        char text[1024];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(text, sizeof text, fmt, ap);
        va_end(ap);
        log_line(SD_ERR, "dns-manager: %s", text);
        json_object_set_new(m->status, "error", json_string(text));
        json_object_set_new(m->status, "state", json_string("error"));
}

/* ---- files ---- */

static int read_all(const char *path, char **ret, size_t *ret_len) {
        int r = read_regular_file(path, TEXT_MAX, READ_FILE_NOFOLLOW, ret, ret_len, NULL, NULL);

        return r == -EINVAL ? -EBADFD : r;
}

/* Atomically: a temporary file in the same directory ("NAME.ztna.XXXXXX",
 * recognisably ours), flushed, renamed over. */
static int write_atomic(const char *path, const char *data, size_t len, mode_t mode) {
        return write_file_atomic(path, ".ztna.", data, len, mode, WRITE_FILE_SYNC);
}

static char *lib_path(const char *name) {
        char *p;
        return asprintf(&p, "%s/%s", lib_dir(), name) < 0 ? NULL : p;
}

static int lib_dir_make(void) {
        struct stat st;
        if (mkdir(lib_dir(), 0700) < 0 && errno != EEXIST)
                return -errno;
        if (lstat(lib_dir(), &st) < 0)
                return -errno;
        if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
                return -EPERM;
        return 0;
}

static int applied_load(Manager *m) {
        _cleanup_free_ char *path = lib_path("applied.json"), *text = NULL;
        json_error_t jerr;
        size_t len;
        int r;

        if (!path)
                return -ENOMEM;
        r = read_all(path, &text, &len);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        m->applied = json_loadb(text, len, 0, &jerr);
        if (!m->applied || !json_is_object(m->applied) || !json_is_string(json_object_get(m->applied, "mode"))) {
                log_line(SD_WARNING, "dns-manager: %s is unreadable (%s); treating it as nothing applied", path,
                         jerr.text);
                m->applied = (json_decref(m->applied), NULL);
        }
        return 0;
}

static int applied_save(Manager *m) {
        _cleanup_free_ char *path = lib_path("applied.json"), *text = NULL;
        int r;

        if (!path)
                return -ENOMEM;
        if (!m->applied) {
                if (unlink(path) < 0 && errno != ENOENT)
                        return -errno;
                return 0;
        }
        r = lib_dir_make();
        if (r < 0)
                return r;
        text = json_dumps(m->applied, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (!text)
                return -ENOMEM;
        return write_atomic(path, text, strlen(text), 0600);
}

static const char *applied_str(const Manager *m, const char *key) {
        return json_string_value(json_object_get(m->applied, key));
}

/* The status next to the store, for `ztna status` (all may read it). */
static void status_save(Manager *m) {
        _cleanup_free_ char *path = NULL, *text = NULL;
        struct stat st;
        int r;

        if (stat(m->store_dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return; /* no runtime directory: ztnad never ran this boot */
        if (asprintf(&path, "%s/" DNS_MANAGER_STATUS_NAME, m->store_dir) < 0)
                return;
        json_object_set_new(m->status, "updated_usec", json_integer((json_int_t) clock_now_usec(CLOCK_REALTIME)));
        text = json_dumps(m->status, JSON_INDENT(2) | JSON_SORT_KEYS);
        if (!text)
                return;
        r = write_atomic(path, text, strlen(text), 0644);
        if (r < 0)
                (void) log_line_errno(SD_WARNING, r, "dns-manager: cannot write %s: %m", path);
}

/* ---- what to set ---- */

static json_t *servers_json(const DnsState *st, bool resolved) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < st->n_servers; i++) {
                char text[64];
                const DnsStateServer *s = &st->servers[i];
                if (resolved ? !dns_state_server_resolved_ok(s) : s->port != 53)
                        continue;
                if (dns_state_server_text(s, text, sizeof text) >= 0)
                        json_array_append_new(a, json_string(text));
        }
        return a;
}

/* The tailnet domain (a search domain) and, routing-only ("~"), the
 * reverse zones of the tailnet ranges; "~." too when the stub takes every
 * name. */
static json_t *domains_json(const DnsState *st, bool default_route) {
        static char zones[DNS_REVERSE_ZONES_PER_PREFIX][DNS_REVERSE_ZONE_MAX];
        json_t *a = json_array();
        char text[DNS_STATE_DOMAIN_MAX + 2];

        if (!a)
                return NULL;
        /* The tailnet domain as a search domain, not routing-only: resolved
         * then completes single labels ("win-a") with it, and lists it in
         * the search line of its stub-resolv.conf for clients such as
         * `dig +search`. It routes the domain to the link all the same. */
        if (st->domain[0]) {
                snprintf(text, sizeof text, "%s", st->domain);
                json_array_append_new(a, json_string(text));
        }
        for (size_t i = 0; i < st->n_ranges; i++) {
                int n = dns_reverse_zones(&st->ranges[i], zones, DNS_REVERSE_ZONES_PER_PREFIX);
                for (int k = 0; k < n && k < (int) DNS_REVERSE_ZONES_PER_PREFIX; k++) {
                        char z[DNS_REVERSE_ZONE_MAX + 1];
                        z[0] = '~';
                        memcpy(z + 1, zones[k], sizeof zones[k]);
                        z[DNS_REVERSE_ZONE_MAX] = '\0';
                        json_array_append_new(a, json_string(z));
                }
        }
        if (default_route)
                json_array_append_new(a, json_string("~."));
        return a;
}

/* The first interface (not loopback) with an address inside a tailnet
 * range: the VPN's tun. 0 when there is none. */
static int find_link(const DnsState *st, char ifname[static IF_NAMESIZE]) {
        struct ifaddrs *list = NULL;
        int found = 0;

        if (getifaddrs(&list) < 0)
                return 0;
        for (struct ifaddrs *i = list; i && !found; i = i->ifa_next) {
                if (!i->ifa_addr || (i->ifa_flags & IFF_LOOPBACK))
                        continue;
                int family = i->ifa_addr->sa_family;
                const uint8_t *a;
                if (family == AF_INET)
                        a = (const uint8_t *) &((struct sockaddr_in *) (void *) i->ifa_addr)->sin_addr;
                else if (family == AF_INET6)
                        a = ((struct sockaddr_in6 *) (void *) i->ifa_addr)->sin6_addr.s6_addr;
                else
                        continue;
                for (size_t k = 0; k < st->n_ranges; k++) {
                        const ShmPrefix *p = &st->ranges[k];
                        const uint8_t *pb = family == AF_INET ? (const uint8_t *) &p->addr.in : p->addr.in6.s6_addr;
                        unsigned bits = p->prefixlen, full = bits / 8, rest = bits % 8;
                        if (p->family != family || memcmp(a, pb, full) != 0)
                                continue;
                        if (rest && ((a[full] ^ pb[full]) & (0xffu << (8 - rest)) & 0xffu))
                                continue;
                        found = (int) if_nametoindex(i->ifa_name);
                        snprintf(ifname, IF_NAMESIZE, "%s", i->ifa_name);
                        break;
                }
        }
        freeifaddrs(list);
        return found;
}

/* ---- systemd-resolved ---- */

static int bus_open(Manager *m) {
        int r;
        if (m->bus)
                return 0;
        r = sd_bus_open_system(&m->bus);
        if (r < 0)
                return r;
        return sd_bus_set_method_call_timeout(m->bus, BUS_CALL_TIMEOUT_USEC);
}

static bool bus_error_transient(const sd_bus_error *e, int r) {
        return r == -ETIMEDOUT || r == -ECONNREFUSED || r == -ENOENT ||
               sd_bus_error_has_names(e, SD_BUS_ERROR_SERVICE_UNKNOWN, SD_BUS_ERROR_NAME_HAS_NO_OWNER,
                                      SD_BUS_ERROR_NO_REPLY, SD_BUS_ERROR_TIMEOUT, SD_BUS_ERROR_DISCONNECTED);
}

/* Sends `msg`, retrying while resolved is not (yet) on the bus. */
static int bus_call_retry(Manager *m, sd_bus_message *msg, const char *what, char *why, size_t why_size) {
        uint64_t deadline = clock_now_usec(CLOCK_MONOTONIC) + m->bus_retry_usec;
        int r;

        for (;;) {
                _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
                sd_bus_message *reply = NULL;

                r = sd_bus_call(m->bus, msg, 0, &e, &reply);
                sd_bus_message_unref(reply);
                if (r >= 0)
                        return 0;
                if (!bus_error_transient(&e, r) || clock_now_usec(CLOCK_MONOTONIC) >= deadline) {
                        snprintf(why, why_size, "%s: %s", what, e.message ? e.message : strerror(-r));
                        return r;
                }
                usleep((useconds_t) BUS_RETRY_PAUSE_USEC);
        }
}

static int resolve_new(Manager *m, const char *method, sd_bus_message **ret) {
        return sd_bus_message_new_method_call(m->bus, ret, RESOLVE_SERVICE, RESOLVE_PATH, RESOLVE_MANAGER, method);
}

#define CHECK(x)                        \
        do {                            \
                int _r = (x);           \
                if (_r < 0) {           \
                        r = _r;         \
                        goto finish;    \
                }                       \
        } while (0)

static int resolved_set_link(Manager *m, int ifindex, const json_t *servers, const json_t *domains,
                             bool default_route, char *why, size_t why_size) {
        sd_bus_message *msg = NULL;
        size_t i;
        json_t *v;
        int r = 0;

        CHECK(bus_open(m));

        CHECK(resolve_new(m, "SetLinkDNSEx", &msg));
        CHECK(sd_bus_message_append(msg, "i", ifindex));
        CHECK(sd_bus_message_open_container(msg, 'a', "(iayqs)"));
        json_array_foreach(servers, i, v) {
                char host[INET6_ADDRSTRLEN + 2];
                const char *text = json_string_value(v), *colon = strrchr(text, ':');
                uint8_t addr[16];
                int family = text[0] == '[' ? AF_INET6 : AF_INET;
                size_t hl = (size_t) (colon - text) - (family == AF_INET6 ? 2 : 0);

                memcpy(host, text + (family == AF_INET6), hl);
                host[hl] = '\0';
                if (inet_pton(family, host, addr) != 1)
                        continue;
                CHECK(sd_bus_message_open_container(msg, 'r', "iayqs"));
                CHECK(sd_bus_message_append(msg, "i", family));
                CHECK(sd_bus_message_append_array(msg, 'y', addr, family == AF_INET ? 4 : 16));
                CHECK(sd_bus_message_append(msg, "qs", (uint16_t) atoi(colon + 1), ""));
                CHECK(sd_bus_message_close_container(msg));
        }
        CHECK(sd_bus_message_close_container(msg));
        CHECK(bus_call_retry(m, msg, "SetLinkDNSEx", why, why_size));
        msg = sd_bus_message_unref(msg);

        CHECK(resolve_new(m, "SetLinkDomains", &msg));
        CHECK(sd_bus_message_append(msg, "i", ifindex));
        CHECK(sd_bus_message_open_container(msg, 'a', "(sb)"));
        json_array_foreach(domains, i, v) {
                /* "~name": routing only; "name": search and route. */
                const char *d = json_string_value(v);
                bool routing = d[0] == '~';
                CHECK(sd_bus_message_append(msg, "(sb)", d + routing, routing));
        }
        CHECK(sd_bus_message_close_container(msg));
        CHECK(bus_call_retry(m, msg, "SetLinkDomains", why, why_size));
        msg = sd_bus_message_unref(msg);

        /* An administrator's global DNSOverTLS=yes or DNSSEC=yes would make
         * every tailnet lookup time out against a stub that does neither. */
        CHECK(resolve_new(m, "SetLinkDNSOverTLS", &msg));
        CHECK(sd_bus_message_append(msg, "is", ifindex, "no"));
        CHECK(bus_call_retry(m, msg, "SetLinkDNSOverTLS", why, why_size));
        msg = sd_bus_message_unref(msg);
        CHECK(resolve_new(m, "SetLinkDNSSEC", &msg));
        CHECK(sd_bus_message_append(msg, "is", ifindex, "no"));
        CHECK(bus_call_retry(m, msg, "SetLinkDNSSEC", why, why_size));
        msg = sd_bus_message_unref(msg);
        CHECK(resolve_new(m, "SetLinkDefaultRoute", &msg));
        CHECK(sd_bus_message_append(msg, "ib", ifindex, default_route));
        CHECK(bus_call_retry(m, msg, "SetLinkDefaultRoute", why, why_size));
finish:
        if (r < 0 && !why[0])
                snprintf(why, why_size, "cannot build a D-Bus call: %s", strerror(-r));
        sd_bus_message_unref(msg);
        return r;
}

static int resolved_revert_link(Manager *m, int ifindex, char *why, size_t why_size) {
        sd_bus_message *msg = NULL;
        int r = 0;

        CHECK(bus_open(m));
        CHECK(resolve_new(m, "RevertLink", &msg));
        CHECK(sd_bus_message_append(msg, "i", ifindex));
        CHECK(bus_call_retry(m, msg, "RevertLink", why, why_size));
finish:
        sd_bus_message_unref(msg);
        return r;
}

/* reload is not supported by resolved on 252 (SIGHUP makes it exit), so a
 * changed drop-in takes a restart, which stalls queries for a moment:
 * hence only when the bytes changed. try-restart: never start it. */
static int resolved_restart(Manager *m) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        if (m->in_resolved_start)
                return 0; /* it reads the drop-in as it starts */
        int r = bus_open(m);
        if (r >= 0)
                r = sd_bus_call_method(m->bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                       "org.freedesktop.systemd1.Manager", "TryRestartUnit", &e, NULL, "ss",
                                       RESOLVED_UNIT, "replace");
        if (r < 0)
                log_line(SD_WARNING, "dns-manager: cannot restart %s: %s", RESOLVED_UNIT,
                         e.message ? e.message : strerror(-r));
        else
                log_line(SD_NOTICE, "dns-manager: restarted %s for %s", RESOLVED_UNIT, dropin_path());
        return r;
}

/* try-restart: a stopped ztnad stays stopped. */
static int ztnad_restart(Manager *m) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        int r = bus_open(m);
        if (r >= 0)
                r = sd_bus_call_method(m->bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                       "org.freedesktop.systemd1.Manager", "TryRestartUnit", &e, NULL, "ss",
                                       ZTNAD_UNIT, "replace");
        if (r < 0)
                log_line(SD_WARNING, "dns-manager: cannot restart %s: %s", ZTNAD_UNIT,
                         e.message ? e.message : strerror(-r));
        return r;
}

static int dropin_write(Manager *m, const json_t *servers, const json_t *domains) {
        _cleanup_free_ char *old = NULL, *dir = strdup(dropin_path());
        char *text = NULL;
        size_t size = 0, old_len = 0, i;
        json_t *v;
        FILE *f;
        int r;

        if (!dir)
                return -ENOMEM;
        f = open_memstream(&text, &size);
        if (!f)
                return -ENOMEM;
        fputs("# Written by ztnad --dns-manager (manage = resolved, no VPN link found).\n"
              "# Removed when DNS management ends; see ztnad.conf(5).\n"
              "[Resolve]\nDNS=",
              f);
        json_array_foreach(servers, i, v)
                fprintf(f, "%s%s", i ? " " : "", json_string_value(v));
        fputs("\nDomains=", f);
        json_array_foreach(domains, i, v)
                fprintf(f, "%s%s", i ? " " : "", json_string_value(v));
        fputs("\n", f);
        if (fclose(f) != 0) {
                free(text);
                return -ENOMEM;
        }
        if (read_all(dropin_path(), &old, &old_len) >= 0 && old_len == size && memcmp(old, text, size) == 0) {
                free(text);
                return 0; /* unchanged: no restart */
        }
        *strrchr(dir, '/') = '\0';
        (void) mkdir(dir, 0755);
        r = write_atomic(dropin_path(), text, size, 0644);
        free(text);
        if (r < 0)
                return r;
        (void) resolved_restart(m);
        return 1;
}

static int dropin_remove(Manager *m) {
        if (unlink(dropin_path()) < 0)
                return errno == ENOENT ? 0 : -errno;
        (void) resolved_restart(m);
        return 1;
}

/* Whether resolved is on the bus now (its runtime directory may be gone
 * or not yet made). */
static bool resolved_on_bus(Manager *m) {
        _cleanup_(sd_bus_error_free) sd_bus_error e = SD_BUS_ERROR_NULL;
        sd_bus_message *reply = NULL;
        int has = 0;

        if (bus_open(m) < 0)
                return false;
        if (sd_bus_call_method(m->bus, "org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
                               "NameHasOwner", &e, &reply, "s", RESOLVE_SERVICE) < 0)
                return false;
        if (sd_bus_message_read(reply, "b", &has) < 0)
                has = 0;
        sd_bus_message_unref(reply);
        return has;
}

/* ---- resolvconf ---- */

static const char *resolvconf_path(void) {
        for (size_t i = 0; i < ELEMENTSOF(resolvconf_paths); i++)
                if (access(resolvconf_paths[i], X_OK) == 0)
                        return resolvconf_paths[i];
        return NULL;
}

/* resolvconf -a IFACE (input on stdin) or -d IFACE. */
static int resolvconf_run(const char *op, const char *input, char *why, size_t why_size) {
        const char *prog = resolvconf_path();
        int pipefd[2], status;
        pid_t pid;

        if (!prog) {
                snprintf(why, why_size, "resolvconf is not installed");
                return -ENOENT;
        }
        if (pipe2(pipefd, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                safe_close(pipefd[0]);
                safe_close(pipefd[1]);
                return -errno;
        }
        if (pid == 0) {
                if (dup2(pipefd[0], STDIN_FILENO) < 0)
                        _exit(127);
                execl(prog, prog, op, RESOLVCONF_IFACE, (char *) NULL);
                _exit(127);
        }
        safe_close(pipefd[0]);
        if (input)
                (void) !write(pipefd[1], input, strlen(input));
        safe_close(pipefd[1]);
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return -errno;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                snprintf(why, why_size, "%s %s %s failed (status %d)", prog, op, RESOLVCONF_IFACE,
                         WIFEXITED(status) ? WEXITSTATUS(status) : -1);
                return -EIO;
        }
        return 0;
}

/* ---- file ---- */

static char *resolv_conf_text(const json_t *servers) {
        char *text = NULL;
        size_t size = 0, i;
        json_t *v;
        FILE *f = open_memstream(&text, &size);

        if (!f)
                return NULL;
        fputs("# Written by ztnad --dns-manager (manage = file): the ztna stub.\n"
              "# The previous file is restored when DNS management ends; see ztnad.conf(5).\n",
              f);
        json_array_foreach(servers, i, v) {
                const char *s = json_string_value(v);
                /* "127.0.0.53:53" or "[::1]:53": resolv.conf takes the address. */
                if (s[0] == '[')
                        fprintf(f, "nameserver %.*s\n", (int) (strchr(s, ']') - s - 1), s + 1);
                else
                        fprintf(f, "nameserver %.*s\n", (int) (strrchr(s, ':') - s), s);
        }
        fputs("options edns0 trust-ad\n", f);
        if (fclose(f) != 0) {
                free(text);
                return NULL;
        }
        return text;
}

/* Saves /etc/resolv.conf as it is, once: the first apply's view is the
 * host's own, which a revert gives back byte for byte. */
static int file_backup(void) {
        _cleanup_free_ char *orig = lib_path("resolv.conf.orig"), *link = lib_path("resolv.conf.link"),
                            *none = lib_path("resolv.conf.none"), *data = NULL;
        char target[PATH_MAX];
        struct stat st;
        size_t len;
        ssize_t n;
        int r;

        if (!orig || !link || !none)
                return -ENOMEM;
        if (access(orig, F_OK) == 0 || access(link, F_OK) == 0 || access(none, F_OK) == 0)
                return 0;
        r = lib_dir_make();
        if (r < 0)
                return r;
        if (lstat(resolv_conf_path(), &st) < 0) {
                if (errno != ENOENT)
                        return -errno;
                return write_atomic(none, "", 0, 0600);
        }
        if (S_ISLNK(st.st_mode)) {
                n = readlink(resolv_conf_path(), target, sizeof target - 1);
                if (n < 0)
                        return -errno;
                return write_atomic(link, target, (size_t) n, 0600);
        }
        r = read_all(resolv_conf_path(), &data, &len);
        if (r < 0)
                return r;
        /* Its mode too: the copy's mode is the original's. */
        return write_atomic(orig, data, len, st.st_mode & 07777);
}

/* Gives back what file_backup() saved. `written`: what the helper last
 * wrote; when /etc/resolv.conf no longer holds it, another program (the
 * postinst of systemd-resolved, an administrator) has taken the file over
 * since, and theirs stays: the backup is dropped, not restored over it.
 * NULL: restore whatever is there. */
static int file_restore(const char *written) {
        _cleanup_free_ char *orig = lib_path("resolv.conf.orig"), *link = lib_path("resolv.conf.link"),
                            *none = lib_path("resolv.conf.none"), *data = NULL, *now = NULL;
        struct stat st;
        size_t len, now_len;
        int r;

        if (!orig || !link || !none)
                return -ENOMEM;
        if (written && (lstat(resolv_conf_path(), &st) < 0 || !S_ISREG(st.st_mode) ||
                        read_all(resolv_conf_path(), &now, &now_len) < 0 || now_len != strlen(written) ||
                        memcmp(now, written, now_len) != 0)) {
                log_line(SD_NOTICE, "dns-manager: %s was taken over by another program; leaving it as it is",
                         resolv_conf_path());
                (void) unlink(orig);
                (void) unlink(link);
                (void) unlink(none);
                return 0;
        }
        if (read_all(link, &data, &len) >= 0) {
                _cleanup_free_ char *tmp = NULL;
                if (asprintf(&tmp, "%s.ztna-link", resolv_conf_path()) < 0)
                        return -ENOMEM;
                (void) unlink(tmp);
                if (symlink(data, tmp) < 0 || rename(tmp, resolv_conf_path()) < 0) {
                        r = -errno;
                        (void) unlink(tmp);
                        return r;
                }
                (void) unlink(link);
        } else if (read_all(orig, &data, &len) >= 0) {
                if (stat(orig, &st) < 0)
                        return -errno;
                r = write_atomic(resolv_conf_path(), data, len, st.st_mode & 07777);
                if (r < 0)
                        return r;
                (void) unlink(orig);
        } else if (access(none, F_OK) == 0) {
                if (unlink(resolv_conf_path()) < 0 && errno != ENOENT)
                        return -errno;
                (void) unlink(none);
        }
        return 0;
}

/* ---- modes ---- */

static bool resolvconf_installed(void) {
        return resolvconf_path() != NULL;
}

ConfigManage dns_manager_effective_mode(const ZtnadConfig *c) {
        if (!c->stub)
                return CONFIG_MANAGE_OFF;
        if (c->manage != CONFIG_MANAGE_AUTO)
                return c->manage;
        if (access(DNS_MANAGER_RESOLVED_DIR, F_OK) == 0)
                return CONFIG_MANAGE_RESOLVED;
        if (resolvconf_installed())
                return CONFIG_MANAGE_RESOLVCONF;
        return CONFIG_MANAGE_FILE;
}

static ConfigManage mode_of_name(const char *name) {
        for (int i = 0; i < _CONFIG_MANAGE_MAX; i++)
                if (name && strcmp(config_manage_name((ConfigManage) i), name) == 0)
                        return (ConfigManage) i;
        return CONFIG_MANAGE_OFF;
}

/* Undoes what applied.json says is in place. */
static int revert(Manager *m) {
        char why[512] = "";
        ConfigManage mode;
        int r = 0;

        if (!m->applied) {
                r = file_restore(NULL); /* a backup left by an interrupted run */
                json_object_set_new(m->status, "state", json_string("off"));
                return r;
        }
        mode = mode_of_name(applied_str(m, "mode"));
        switch (mode) {
        case CONFIG_MANAGE_RESOLVED: {
                json_int_t ifindex = json_integer_value(json_object_get(m->applied, "ifindex"));
                const char *ifname = applied_str(m, "link");
                char now[IF_NAMESIZE] = "";

                if (ifindex > 0 && ifname && if_indextoname((unsigned) ifindex, now) && strcmp(now, ifname) == 0)
                        r = resolved_revert_link(m, (int) ifindex, why, sizeof why);
                if (json_is_true(json_object_get(m->applied, "dropin")))
                        (void) dropin_remove(m);
                break;
        }
        case CONFIG_MANAGE_RESOLVCONF:
                r = resolvconf_run("-d", NULL, why, sizeof why);
                break;
        case CONFIG_MANAGE_FILE:
                r = file_restore(applied_str(m, "written"));
                if (r < 0)
                        snprintf(why, sizeof why, "cannot restore %s: %s", resolv_conf_path(), strerror(-r));
                break;
        default:
                break;
        }
        /* The drop-in `resolved-start` wrote while another mode was in
         * place; a change to resolved mode keeps it until the link is set. */
        if (r >= 0 && mode != CONFIG_MANAGE_RESOLVED && !m->keep_dropin &&
            json_is_true(json_object_get(m->applied, "dropin")))
                (void) dropin_remove(m);
        if (r < 0) {
                status_error(m, "reverting %s: %s", applied_str(m, "mode"), why);
                return r;
        }
        log_line(SD_NOTICE, "dns-manager: %s settings reverted", applied_str(m, "mode"));
        m->applied = (json_decref(m->applied), NULL);
        json_object_set_new(m->status, "state", json_string("off"));
        return applied_save(m);
}

/* Applies `mode` with what `want` holds (servers, domains, ...), recording
 * it in m->applied. */
static int apply_mode(Manager *m, ConfigManage mode, json_t *want) {
        json_t *servers = json_object_get(want, "servers"), *domains = json_object_get(want, "domains");
        bool default_route = json_is_true(json_object_get(want, "default_route"));
        char why[512] = "";
        int r = 0;

        json_object_set_new(m->status, "mode", json_string(config_manage_name(mode)));
        json_object_set(m->status, "servers", servers);
        json_object_set(m->status, "domains", domains);
        if (json_array_size(servers) == 0) {
                if (mode == CONFIG_MANAGE_RESOLVED)
                        status_error(m, "the stub listens on no address resolved accepts (127.0.0.53 and "
                                        "127.0.0.54 are refused); nothing changed");
                else
                        status_error(m, "the stub holds no port 53 and resolv.conf has no port syntax: "
                                        "%s was left as it is (free port 53 for ztnad or use manage = resolved)",
                                     mode == CONFIG_MANAGE_FILE ? resolv_conf_path() : "resolvconf");
                return -EADDRNOTAVAIL;
        }

        switch (mode) {
        case CONFIG_MANAGE_RESOLVED: {
                char ifname[IF_NAMESIZE] = "";
                int ifindex = 0;
                const char *want_link = json_string_value(json_object_get(want, "want_link"));

                if (want_link) {
                        ifindex = (int) if_nametoindex(want_link);
                        snprintf(ifname, sizeof ifname, "%s", want_link);
                        if (ifindex <= 0)
                                log_line(SD_WARNING, "dns-manager: link %s does not exist; using %s", want_link,
                                         dropin_path());
                } else if (m->have_state)
                        ifindex = find_link(&m->state, ifname);
                if (ifindex > 0) {
                        r = resolved_set_link(m, ifindex, servers, domains, default_route, why, sizeof why);
                        if (r < 0) {
                                status_error(m, "resolved, link %s: %s", ifname, why);
                                return r;
                        }
                        json_object_del(want, "dropin"); /* `hold` copies the last record */
                        json_object_set_new(want, "ifindex", json_integer(ifindex));
                        json_object_set_new(want, "link", json_string(ifname));
                        json_object_set_new(m->status, "link", json_string(ifname));
                        if (json_is_true(json_object_get(m->applied, "dropin")))
                                (void) dropin_remove(m);
                        log_line(SD_NOTICE, "dns-manager: resolved routes %zu domains on %s to %s",
                                 json_array_size(domains), ifname,
                                 json_string_value(json_array_get(servers, 0)));
                } else {
                        r = dropin_write(m, servers, domains);
                        if (r < 0) {
                                status_error(m, "cannot write %s: %s", dropin_path(), strerror(-r));
                                return r;
                        }
                        json_object_del(want, "ifindex");
                        json_object_del(want, "link");
                        json_object_set_new(want, "dropin", json_true());
                        json_object_set_new(m->status, "link", json_null());
                        json_object_set_new(m->status, "dropin", json_string(dropin_path()));
                        log_line(SD_NOTICE, "dns-manager: no VPN link; %s routes %zu domains to %s",
                                 dropin_path(), json_array_size(domains), json_string_value(json_array_get(servers, 0)));
                }
                break;
        }
        case CONFIG_MANAGE_RESOLVCONF: {
                _cleanup_free_ char *text = resolv_conf_text(servers);
                if (!text)
                        return -ENOMEM;
                r = resolvconf_run("-a", text, why, sizeof why);
                if (r < 0) {
                        status_error(m, "%s", why);
                        return r;
                }
                log_line(SD_NOTICE, "dns-manager: registered %s with resolvconf", RESOLVCONF_IFACE);
                break;
        }
        case CONFIG_MANAGE_FILE: {
                _cleanup_free_ char *text = resolv_conf_text(servers), *old = NULL;
                size_t old_len = 0;
                if (!text)
                        return -ENOMEM;
                r = file_backup();
                if (r < 0) {
                        status_error(m, "cannot save %s: %s; it was left as it is", resolv_conf_path(), strerror(-r));
                        return r;
                }
                if (read_all(resolv_conf_path(), &old, &old_len) < 0 || old_len != strlen(text) ||
                    memcmp(old, text, old_len) != 0) {
                        r = write_atomic(resolv_conf_path(), text, strlen(text), 0644);
                        if (r < 0) {
                                status_error(m, "cannot write %s: %s", resolv_conf_path(), strerror(-r));
                                return r;
                        }
                        log_line(SD_NOTICE, "dns-manager: %s points at the stub", resolv_conf_path());
                }
                json_object_set_new(want, "written", json_string(text));
                break;
        }
        default:
                return -EINVAL;
        }
        json_object_set_new(want, "mode", json_string(config_manage_name(mode)));
        json_object_set_new(m->status, "state", json_string("applied"));
        json_object_set_new(m->status, "error", json_null());
        json_decref(m->applied);
        m->applied = json_incref(want);
        return applied_save(m);
}

/* What the configuration and the daemon's state ask for now. */
static json_t *want_now(Manager *m, ConfigManage mode) {
        bool resolved = mode == CONFIG_MANAGE_RESOLVED;
        json_t *w = json_object();
        if (!w)
                return NULL;
        json_object_set_new(w, "servers", servers_json(&m->state, resolved));
        json_object_set_new(w, "domains", domains_json(&m->state, resolved && m->config->default_route));
        json_object_set_new(w, "default_route", json_boolean(resolved && m->config->default_route));
        if (resolved && m->config->link)
                json_object_set_new(w, "want_link", json_string(m->config->link));
        return w;
}

static int do_apply(Manager *m) {
        ConfigManage mode;
        char why[DNS_STATE_WHY_MAX] = "";
        _cleanup_free_ char *state_path = NULL;
        int r;

        if (!m->config) {
                /* A broken configuration: keep what is in place (fail
                 * closed); the daemon refuses to start and says why. */
                status_error(m, "the configuration is invalid; the settings in place are kept");
                return -EINVAL;
        }
        mode = dns_manager_effective_mode(m->config);
        if (m->config->stub && m->config->manage == CONFIG_MANAGE_AUTO && mode != CONFIG_MANAGE_RESOLVED &&
            resolved_on_bus(m))
                mode = CONFIG_MANAGE_RESOLVED;
        json_object_set_new(m->status, "configured", json_string(config_manage_name(m->config->manage)));
        if (mode == CONFIG_MANAGE_OFF)
                return revert(m);

        if (asprintf(&state_path, "%s/" DNS_STATE_FILE_NAME, m->store_dir) < 0)
                return -ENOMEM;
        r = dns_state_read(state_path, &m->state, why, sizeof why);
        if (r < 0) {
                status_error(m, "cannot read %s: %s; the settings in place are kept", state_path,
                             why[0] ? why : strerror(-r));
                return r;
        }
        m->have_state = true;

        /* A different mode than the one in place: undo that one first. */
        if (m->applied && mode_of_name(applied_str(m, "mode")) != mode) {
                bool dropin = json_is_true(json_object_get(m->applied, "dropin"));
                m->keep_dropin = dropin && mode == CONFIG_MANAGE_RESOLVED;
                r = revert(m);
                m->keep_dropin = false;
                if (r < 0)
                        return r;
                /* apply_mode() removes it once the link is set, or
                 * rewrites it with the stub's actual address. */
                if (dropin && mode == CONFIG_MANAGE_RESOLVED) {
                        m->applied = json_pack("{s:s, s:b}", "mode", "off", "dropin", 1);
                        if (!m->applied)
                                return -ENOMEM;
                }
        }
        _cleanup_(json_decrefp) json_t *want = want_now(m, mode);
        if (!want)
                return -ENOMEM;
        /* A link set before that is now another one: clear the old. */
        if (m->applied && json_integer_value(json_object_get(m->applied, "ifindex")) > 0) {
                json_int_t old = json_integer_value(json_object_get(m->applied, "ifindex"));
                char ifname[IF_NAMESIZE] = "", err[256] = "";
                const char *want_link = json_string_value(json_object_get(want, "want_link"));
                int now = want_link ? (int) if_nametoindex(want_link) : find_link(&m->state, ifname);
                if (now != old && if_indextoname((unsigned) old, ifname))
                        (void) resolved_revert_link(m, (int) old, err, sizeof err);
        }
        return apply_mode(m, mode, want);
}

/* `hold`: before ztnad starts, make sure what was applied is still there. */
static int do_hold(Manager *m) {
        ConfigManage mode;
        json_t *want;

        if (!m->applied)
                return 0;
        mode = mode_of_name(applied_str(m, "mode"));
        if (m->config && dns_manager_effective_mode(m->config) == CONFIG_MANAGE_OFF)
                return revert(m);
        want = json_deep_copy(m->applied);
        if (!want)
                return -ENOMEM;
        m->bus_retry_usec = BUS_RETRY_HOLD_USEC;
        int r = apply_mode(m, mode, want);
        json_decref(want);
        return r;
}

/* `resolved-start` (ExecStartPre= of systemd-resolved.service, through the
 * package's drop-in for it): resolved is starting while another mode is in
 * place, as when it is installed after ztna. Until ztnad has restarted into
 * resolved mode and set the link, resolved would send tailnet names to the
 * uplink's servers. So before it starts: a drop-in it reads as it starts,
 * routing the tailnet domain and reverse zones to where ztnad listens for
 * resolved (127.0.0.1:53 unless the configuration names such an address;
 * should that be wrong, names fail, they do not leak), then a restart of
 * ztnad, whose apply moves the routing to the link and removes the
 * drop-in. Nothing to do when resolved mode is already in place. */
static int do_resolved_start(Manager *m) {
        _cleanup_free_ char *state_path = NULL;
        _cleanup_(json_decrefp) json_t *servers = NULL, *domains = NULL;
        char why[DNS_STATE_WHY_MAX] = "";
        int r;

        m->in_resolved_start = true;
        if (!m->config || !m->config->stub ||
            (m->config->manage != CONFIG_MANAGE_AUTO && m->config->manage != CONFIG_MANAGE_RESOLVED))
                return 0;
        if (m->applied && mode_of_name(applied_str(m, "mode")) == CONFIG_MANAGE_RESOLVED)
                return 0;
        if (asprintf(&state_path, "%s/" DNS_STATE_FILE_NAME, m->store_dir) < 0)
                return -ENOMEM;
        r = dns_state_read(state_path, &m->state, why, sizeof why);
        if (r < 0) {
                /* ztnad has not run yet: it routes the names itself when
                 * it starts (resolved is then there). */
                log_line(SD_INFO, "dns-manager: resolved starting; no %s yet (%s)", state_path,
                         why[0] ? why : strerror(-r));
                return 0;
        }
        m->have_state = true;
        servers = servers_json(&m->state, true);
        domains = domains_json(&m->state, false);
        if (!servers || !domains)
                return -ENOMEM;
        if (json_array_size(servers) == 0 && json_array_append_new(servers, json_string("127.0.0.1:53")) < 0)
                return -ENOMEM;
        r = dropin_write(m, servers, domains);
        if (r < 0) {
                status_error(m, "cannot write %s: %s", dropin_path(), strerror(-r));
                return r;
        }
        if (!m->applied) {
                m->applied = json_pack("{s:s}", "mode", "off");
                if (!m->applied)
                        return -ENOMEM;
        }
        json_object_set_new(m->applied, "dropin", json_true());
        r = applied_save(m);
        if (r < 0)
                return r;
        log_line(SD_NOTICE, "dns-manager: systemd-resolved is starting while %s is in place: %s routes %zu "
                            "domains to %s until ztnad has restarted for it",
                 applied_str(m, "mode"), dropin_path(), json_array_size(domains),
                 json_string_value(json_array_get(servers, 0)));
        return ztnad_restart(m);
}

/* `check` (file mode, from ztnad-dns.path): undo a rewrite, boundedly. */
static int do_check(Manager *m) {
        _cleanup_free_ char *text = NULL;
        const char *written;
        size_t len;
        uint64_t now = clock_now_usec(CLOCK_REALTIME) / USEC_PER_SEC;
        json_int_t since, count;

        /* manage = auto and resolved has come (or gone) since the mode in
         * place was chosen: ztnad restarts, so that it listens where the
         * new mode needs and its ExecStartPost= applies that mode. */
        if (m->config && m->config->stub && m->config->manage == CONFIG_MANAGE_AUTO) {
                ConfigManage want = dns_manager_effective_mode(m->config);
                ConfigManage was = m->applied ? mode_of_name(applied_str(m, "mode")) : CONFIG_MANAGE_OFF;
                if (want != CONFIG_MANAGE_RESOLVED && resolved_on_bus(m))
                        want = CONFIG_MANAGE_RESOLVED;
                if (want != was && (was != CONFIG_MANAGE_OFF || want == CONFIG_MANAGE_RESOLVED)) {
                        log_line(SD_NOTICE, "dns-manager: manage = auto now means %s, not %s; restarting %s",
                                 config_manage_name(want), config_manage_name(was), ZTNAD_UNIT);
                        return ztnad_restart(m);
                }
        }
        if (!m->applied || mode_of_name(applied_str(m, "mode")) != CONFIG_MANAGE_FILE)
                return 0;
        written = applied_str(m, "written");
        if (!written)
                return 0;
        if (read_all(resolv_conf_path(), &text, &len) >= 0 && len == strlen(written) && memcmp(text, written, len) == 0)
                return 0;
        since = json_integer_value(json_object_get(m->applied, "reapply_since"));
        count = json_integer_value(json_object_get(m->applied, "reapply_count"));
        if ((uint64_t) since + FILE_REAPPLY_WINDOW_SEC <= now) {
                since = (json_int_t) now;
                count = 0;
        }
        if (count >= FILE_REAPPLY_MAX) {
                status_error(m, "%s was rewritten by another program %d times within an hour; leaving it "
                                "until the next start or reload (find the other program with `ztna doctor`)",
                             resolv_conf_path(), FILE_REAPPLY_MAX);
                return -EBUSY;
        }
        log_line(SD_WARNING, "dns-manager: %s was rewritten by another program; pointing it at the stub again "
                             "(%d of %d this hour)",
                 resolv_conf_path(), (int) count + 1, FILE_REAPPLY_MAX);
        json_object_set_new(m->applied, "reapply_since", json_integer(since));
        json_object_set_new(m->applied, "reapply_count", json_integer(count + 1));
        int r = write_atomic(resolv_conf_path(), written, strlen(written), 0644);
        if (r < 0) {
                status_error(m, "cannot write %s: %s", resolv_conf_path(), strerror(-r));
                return r;
        }
        json_object_set_new(m->status, "state", json_string("applied"));
        json_object_set_new(m->status, "reapplied", json_integer(count + 1));
        return applied_save(m);
}

static void status_from_applied(Manager *m) {
        const char *keys[] = { "mode", "link", "servers", "domains", "default_route", "dropin" };
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                json_t *v = json_object_get(m->applied, keys[i]);
                if (v)
                        json_object_set(m->status, keys[i], v);
        }
        if (json_is_true(json_object_get(m->applied, "dropin")))
                json_object_set_new(m->status, "dropin", json_string(dropin_path()));
}

int dns_manager_main(const char *verb, const char *config_path) {
        Manager m = { .verb = verb, .bus_retry_usec = BUS_RETRY_USEC };
        ConfigError cerr;
        const char *store;
        char *slash;
        int r = 0;

        if (geteuid() != 0) {
                fprintf(stderr, "ztnad --dns-manager: must run as root (systemd-resolved takes link settings "
                                "from root only)\n");
                return 4;
        }
        umask(0022);
        if (config_load(config_path, &m.config, &cerr) < 0) {
                log_line(SD_ERR, "dns-manager: %s", cerr.message);
                m.config = NULL;
        }
        store = m.config ? m.config->store : SHM_DEFAULT_PATH;
        snprintf(m.store_dir, sizeof m.store_dir, "%s", store);
        slash = strrchr(m.store_dir, '/');
        if (slash)
                *(slash == m.store_dir ? slash + 1 : slash) = '\0';

        m.status = json_object();
        if (!m.status)
                return 1;
        r = applied_load(&m);
        if (r < 0)
                (void) log_line_errno(SD_WARNING, r, "dns-manager: cannot read %s: %m", lib_dir());
        status_from_applied(&m);
        json_object_set_new(m.status, "state", json_string(m.applied ? "applied" : "off"));
        json_object_set_new(m.status, "error", json_null());
        if (!m.applied)
                json_object_set_new(m.status, "mode", json_string("off"));

        if (strcmp(verb, "apply") == 0 || strcmp(verb, "reload") == 0)
                r = do_apply(&m);
        else if (strcmp(verb, "hold") == 0)
                r = do_hold(&m);
        else if (strcmp(verb, "revert") == 0)
                r = revert(&m);
        else if (strcmp(verb, "check") == 0)
                r = do_check(&m);
        else if (strcmp(verb, "resolved-start") == 0)
                r = do_resolved_start(&m);
        else if (strcmp(verb, "stopped") == 0) {
                if (m.applied) {
                        json_object_set_new(m.status, "state", json_string("closed"));
                        log_line(SD_NOTICE, "dns-manager: ztnad stopped; the %s settings stay, so tailnet names "
                                            "fail fast instead of leaking",
                                 applied_str(&m, "mode"));
                }
        } else if (strcmp(verb, "status") == 0) {
                char *text = json_dumps(m.status, JSON_INDENT(2) | JSON_SORT_KEYS);
                if (text)
                        puts(text);
                free(text);
        } else {
                fprintf(stderr, "ztnad --dns-manager: unknown verb '%s': apply, reload, hold, stopped, revert, check, "
                                "resolved-start or status\n",
                        verb);
                r = -EINVAL;
                json_decref(m.status);
                config_free(m.config);
                return 2;
        }
        if (strcmp(verb, "status") != 0)
                status_save(&m);
        json_decref(m.applied);
        json_decref(m.status);
        sd_bus_flush_close_unref(m.bus);
        config_free(m.config);
        return r < 0 ? 1 : 0;
}
