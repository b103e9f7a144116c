/* SPDX-License-Identifier: MIT */
/*
 * The system-dns layer of `ztna doctor`: the path of programs that ask
 * DNS directly. resolv.conf's servers against what the DNS manager
 * reported it set, and who holds port 53 of the address resolv.conf
 * sends queries to (/proc/net and /proc/PID/fd). When resolv.conf
 * points at systemd-resolved, doctor-resolved.c judges resolved's route.
 */

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/doctor-internal.h"
#include "macro.h"

#define RESOLV_NAMESERVERS_MAX 3 /* glibc's MAXNS: later lines are ignored */
#define RESOLVED_STUB_ADDRESS "127.0.0.53"

/* The file the DNS manager writes; the same override as its own. */
static const char *doctor_resolv_conf_path(void) {
        const char *e = secure_getenv("ZTNA_DNS_MANAGER_RESOLV_CONF");
        return e && e[0] == '/' ? e : "/etc/resolv.conf";
}

/* The nameserver lines glibc uses, in order; returns how many. */
static size_t resolv_nameservers(const char *data, size_t len, char ns[][INET6_ADDRSTRLEN + 8]) {
        size_t i = 0, n = 0;

        while (i < len && n < RESOLV_NAMESERVERS_MAX) {
                char line[256], key[16], addr[INET6_ADDRSTRLEN + 8];

                doctor_next_line(data, len, &i, line, sizeof line);
                if (sscanf(line, "%15s %53s", key, addr) == 2 && strcmp(key, "nameserver") == 0) {
                        char *pct = strchr(addr, '%');
                        if (pct)
                                *pct = '\0';
                        snprintf(ns[n++], INET6_ADDRSTRLEN + 8, "%s", addr);
                }
        }
        return n;
}

/* "127.0.0.1:53" or "[::1]:53" -> its host when the port is 53, else "". */
static void server_host_port53(const char *server, char *host, size_t size) {
        const char *colon = strrchr(server, ':');

        host[0] = '\0';
        if (!colon || strcmp(colon + 1, "53") != 0)
                return;
        if (server[0] == '[' && colon > server + 1 && colon[-1] == ']')
                snprintf(host, size, "%.*s", (int) (colon - server - 2), server + 1);
        else
                snprintf(host, size, "%.*s", (int) (colon - server), server);
}

/* ---- who holds a port: /proc/net for the socket, /proc/PID/fd for it ---- */

#define HOLDER_SOCKETS_MAX 8

typedef struct PortHolder {
        bool found;     /* a socket is bound there */
        bool known;     /* and its process could be seen */
        pid_t pid;
        unsigned uid;   /* the socket's owner, from /proc/net */
        char proto[8];  /* "udp", "tcp6", ... */
        char comm[64];
        char unit[128]; /* the systemd service it runs in, "" for none */
} PortHolder;

/* The hex address of /proc/net/{udp,tcp}{,6} into bytes: the kernel
 * prints each 32-bit word of the network-order address as a host-order
 * number, so reading the words back the same way restores the bytes. */
static bool proc_net_addr(const char *hex, size_t alen, uint8_t *out) {
        if (strlen(hex) != alen * 2)
                return false;
        for (size_t w = 0; w < alen / 4; w++) {
                char word[9];
                uint32_t v;
                char *end;

                memcpy(word, hex + w * 8, 8);
                word[8] = '\0';
                v = (uint32_t) strtoul(word, &end, 16);
                if (*end)
                        return false;
                memcpy(out + w * 4, &v, 4);
        }
        return true;
}

/* Whether a socket bound to `bound` (alen bytes) receives what is sent to
 * `want` of `family`: the same address, the wildcard, or for an IPv6
 * socket the IPv4-mapped form of an IPv4 address. */
static bool bound_covers(const uint8_t *bound, size_t alen, int family, const uint8_t *want) {
        static const uint8_t zero[16], mapped[12] = { [10] = 0xff, [11] = 0xff };

        if (memcmp(bound, zero, alen) == 0)
                return alen == 16 || family == AF_INET;
        if (family == AF_INET)
                return alen == 4 ? memcmp(bound, want, 4) == 0
                                 : memcmp(bound, mapped, 12) == 0 && memcmp(bound + 12, want, 4) == 0;
        return alen == 16 && memcmp(bound, want, 16) == 0;
}

/* Sockets bound to host:port (UDP unconnected, TCP listening): their
 * inodes, protocols and owners. */
static size_t port_sockets(const char *host, unsigned port, unsigned long *inodes, char protos[][8], unsigned *uids) {
        static const struct {
                const char *path, *proto;
                size_t alen;
                unsigned state; /* TCP_CLOSE for UDP, TCP_LISTEN for TCP */
        } tables[] = {
                { "/proc/net/udp", "udp", 4, 0x07 },
                { "/proc/net/udp6", "udp6", 16, 0x07 },
                { "/proc/net/tcp", "tcp", 4, 0x0A },
                { "/proc/net/tcp6", "tcp6", 16, 0x0A },
        };
        uint8_t want[16];
        int family = inet_pton(AF_INET, host, want) == 1 ? AF_INET
                     : inet_pton(AF_INET6, host, want) == 1 ? AF_INET6 : AF_UNSPEC;
        size_t n = 0;

        if (family == AF_UNSPEC)
                return 0;
        for (size_t t = 0; t < ELEMENTSOF(tables) && n < HOLDER_SOCKETS_MAX; t++) {
                FILE *f = fopen(tables[t].path, "re");
                char line[512];

                if (!f)
                        continue;
                while (fgets(line, sizeof line, f) && n < HOLDER_SOCKETS_MAX) {
                        char hex[40];
                        unsigned lport, st, uid;
                        unsigned long inode;
                        uint8_t bound[16];

                        if (sscanf(line, " %*u: %39[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x %*x:%*x %*x:%*x %*x %u %*u %lu",
                                   hex, &lport, &st, &uid, &inode) != 5)
                                continue; /* the header */
                        if (lport != port || st != tables[t].state || inode == 0 ||
                            !proc_net_addr(hex, tables[t].alen, bound) ||
                            !bound_covers(bound, tables[t].alen, family, want))
                                continue;
                        inodes[n] = inode;
                        snprintf(protos[n], 8, "%s", tables[t].proto);
                        uids[n] = uid;
                        n++;
                }
                fclose(f);
        }
        return n;
}

/* The systemd service a process runs in ("" when none): the last
 * "*.service" of its cgroup path. */
static void process_unit(pid_t pid, char *unit, size_t size) {
        char path[64], line[512];
        FILE *f;

        unit[0] = '\0';
        snprintf(path, sizeof path, "/proc/%d/cgroup", (int) pid);
        f = fopen(path, "re");
        if (!f)
                return;
        while (fgets(line, sizeof line, f)) {
                char *p = strstr(line, "::/");
                if (!p)
                        continue; /* only the unified hierarchy's line */
                line[strcspn(line, "\n")] = '\0';
                for (char *c = strtok(p + 3, "/"); c; c = strtok(NULL, "/")) {
                        size_t l = strlen(c);
                        if (l > 8 && strcmp(c + l - 8, ".service") == 0)
                                snprintf(unit, size, "%s", c);
                }
        }
        fclose(f);
}

/* Who holds host:port over UDP or TCP. Without root, other users'
 * processes cannot be seen: found without known. */
static void find_port_holder(const char *host, unsigned port, PortHolder *h) {
        unsigned long inodes[HOLDER_SOCKETS_MAX];
        char protos[HOLDER_SOCKETS_MAX][8];
        unsigned uids[HOLDER_SOCKETS_MAX];
        size_t n = port_sockets(host, port, inodes, protos, uids);
        DIR *proc;
        struct dirent *de;

        *h = (PortHolder) {};
        if (n == 0)
                return;
        h->found = true;
        snprintf(h->proto, sizeof h->proto, "%s", protos[0]);
        h->uid = uids[0];
        proc = opendir("/proc");
        if (!proc)
                return;
        while (!h->known && (de = readdir(proc))) {
                char fdpath[64];
                char *end;
                long pid = strtol(de->d_name, &end, 10);
                DIR *fds;
                struct dirent *fe;

                if (*end || pid <= 0)
                        continue;
                snprintf(fdpath, sizeof fdpath, "/proc/%ld/fd", pid);
                fds = opendir(fdpath);
                if (!fds)
                        continue; /* another user's, without root */
                while (!h->known && (fe = readdir(fds))) {
                        char link[PATH_MAX], target[64];
                        ssize_t l;

                        if (fe->d_name[0] == '.')
                                continue;
                        snprintf(link, sizeof link, "%s/%s", fdpath, fe->d_name);
                        l = readlink(link, target, sizeof target - 1);
                        if (l <= 0)
                                continue;
                        target[l] = '\0';
                        for (size_t i = 0; i < n; i++) {
                                char want[40];
                                snprintf(want, sizeof want, "socket:[%lu]", inodes[i]);
                                if (strcmp(target, want) == 0) {
                                        h->known = true;
                                        h->pid = (pid_t) pid;
                                        snprintf(h->proto, sizeof h->proto, "%s", protos[i]);
                                        h->uid = uids[i];
                                        break;
                                }
                        }
                }
                closedir(fds);
        }
        closedir(proc);
        if (h->known) {
                char path[64], comm[64] = "?";
                FILE *f;

                snprintf(path, sizeof path, "/proc/%d/comm", (int) h->pid);
                f = fopen(path, "re");
                if (f) {
                        if (fgets(comm, sizeof comm, f))
                                comm[strcspn(comm, "\n")] = '\0';
                        fclose(f);
                }
                snprintf(h->comm, sizeof h->comm, "%s", comm);
                process_unit(h->pid, h->unit, sizeof h->unit);
        }
}

/* "python3 (pid 812, udp)" or "a program of uid 0 (udp; ...)". */
static void holder_text(const PortHolder *h, char *buf, size_t size) {
        if (h->known)
                snprintf(buf, size, "%s (pid %d%s%s, %s)", h->comm, (int) h->pid, h->unit[0] ? ", " : "", h->unit,
                         h->proto);
        else
                snprintf(buf, size, "a program of uid %u (%s; which one could not tell without root)", h->uid,
                         h->proto);
}

/* Whether ztnad's status lists "host:53" (or "[host]:53") in `key`. */
static bool stub_lists(const Doctor *d, const char *key, const char *host) {
        const json_t *dns = d->status ? json_object_get(d->status, "dns") : NULL;
        const json_t *list = dns ? json_object_get(dns, key) : NULL;
        char a[INET6_ADDRSTRLEN + 8], b[INET6_ADDRSTRLEN + 8];
        size_t i;
        json_t *v;

        snprintf(a, sizeof a, "%s:53", host);
        snprintf(b, sizeof b, "[%s]:53", host);
        json_array_foreach (list, i, v) {
                const char *s = json_string_value(v);
                size_t la = strlen(a), lb = strlen(b);
                if (s && ((strncmp(s, a, la) == 0 && (s[la] == '\0' || s[la] == ':')) ||
                          (strncmp(s, b, lb) == 0 && (s[lb] == '\0' || s[lb] == ':'))))
                        return true;
        }
        return false;
}

/* resolv.conf's first nameserver is where the stub should be (ztnad
 * wants that address, or the DNS manager pointed resolv.conf there), but
 * the stub does not hold its port 53: another program does. */
static void check_port53(Doctor *d, const char *shown, const char *ns0, bool manager_points_there) {
        PortHolder h;
        char who[TEXT_MAX / 2];
        Finding *f;

        if (!ns0 || !doctor_daemon_reachable(d) || stub_lists(d, "listening", ns0))
                return;
        find_port_holder(ns0, 53, &h);
        if (!h.found)
                return; /* nothing there: the stub layer says why ztnad is not */
        if (h.known && d->status &&
            (json_int_t) h.pid == json_integer_value(json_object_get(d->status, "pid")))
                return;
        holder_text(&h, who, sizeof who);
        if (!manager_points_there && !stub_lists(d, "not_listening", ns0)) {
                /* Not where the stub should be: who answers there instead
                 * is said beside the finding that resolv.conf is wrong. */
                Layer *layer = &d->layers[LAYER_SYSDNS];

                for (size_t i = 0; i < layer->n; i++)
                        if (strcmp(layer->findings[i].id, "dns-settings-overwritten") == 0 ||
                            strcmp(layer->findings[i].id, "resolv-conf-not-resolved") == 0) {
                                size_t have = strlen(layer->findings[i].measured);
                                snprintf(layer->findings[i].measured + have,
                                         sizeof layer->findings[i].measured - have,
                                         "; port 53 of %s is held by %s", ns0, who);
                                break;
                        }
                return;
        }
        f = doctor_add(d, LAYER_SYSDNS, LEVEL_FAIL, "port-53-held", "%s: port 53 of %s is held by %s, not ztnad's stub",
                       shown, ns0, who);
        finding_why(f, "another program answers (or swallows) the queries the system's resolver sends to %s: programs "
                       "that ask DNS directly do not reach ztnad, and ztnad cannot bind the address",
                    ns0);
        /* A restart, not a reload: ztnad binds the freed port as it starts,
         * before the DNS manager runs (ExecStartPost), which then finds
         * the stub on port 53 again. */
        if (h.known && h.unit[0])
                finding_fix(f, "systemctl disable --now %s && systemctl restart ztnad", h.unit);
        else if (h.known)
                finding_fix(f, "kill %d && systemctl restart ztnad", (int) h.pid);
        else
                finding_fix(f, "ss -lntup 'sport = :53' (as root: the program on %s:53), stop it, then: systemctl "
                               "restart ztnad",
                            ns0);
}

void doctor_check_system_dns(Doctor *d) {
        const char *rpath = doctor_resolv_conf_path();
        _cleanup_free_ char *rdata = NULL, *mdata = NULL;
        char ns[RESOLV_NAMESERVERS_MAX][INET6_ADDRSTRLEN + 8], shown[TEXT_MAX], target[PATH_MAX] = "", mpath[1100];
        size_t rlen = 0, mlen = 0, nns = 0, off = 0;
        json_t *mstatus = NULL;
        const char *state, *mode, *slash;
        struct stat st;
        Finding *f;

        if (lstat(rpath, &st) == 0 && S_ISLNK(st.st_mode)) {
                ssize_t n = readlink(rpath, target, sizeof target - 1);
                target[n > 0 ? n : 0] = '\0';
        }
        int r = doctor_read_file(rpath, &rdata, &rlen);
        if (r < 0) {
                f = doctor_add(d, LAYER_SYSDNS, LEVEL_WARN, "resolv-conf-missing", "%s cannot be read: %s", rpath,
                               strerror(-r));
                finding_why(f, "programs that ask DNS directly fall back to 127.0.0.1 and reach no tailnet name");
                finding_fix(f, "systemctl reload ztnad");
                return;
        }
        nns = resolv_nameservers(rdata, rlen, ns);
        snprintf(d->resolv_path, sizeof d->resolv_path, "%s", rpath);
        if (nns > 0)
                snprintf(d->resolv_ns0, sizeof d->resolv_ns0, "%s", ns[0]);
        off = (size_t) snprintf(shown, sizeof shown, "%s%s%s: nameserver", rpath, target[0] ? " -> " : "", target);
        for (size_t i = 0; i < nns && off < sizeof shown; i++)
                off += (size_t) snprintf(shown + off, sizeof shown - off, "%s%s", i ? ", " : " ", ns[i]);
        if (nns == 0 && off < sizeof shown)
                snprintf(shown + off, sizeof shown - off, " (none)");

        if (d->cfg && !d->cfg->stub) {
                doctor_add(d, LAYER_SYSDNS, LEVEL_OK, "system-dns-stub-off", "%s (the stub is off: nothing to route)",
                           shown);
                return;
        }
        slash = strrchr(d->store_path, '/');
        if (slash && (size_t) snprintf(mpath, sizeof mpath, "%.*s/dns-manager.json", (int) (slash - d->store_path),
                                       d->store_path) < sizeof mpath &&
            doctor_read_file(mpath, &mdata, &mlen) >= 0)
                mstatus = json_loadb(mdata, mlen, 0, NULL);
        state = json_string_value(json_object_get(mstatus, "state"));
        mode = json_string_value(json_object_get(mstatus, "mode"));
        if (!json_is_object(mstatus) || !state) {
                doctor_add(d, LAYER_SYSDNS, LEVEL_SKIP, "dns-manager-no-report",
                           "%s; no report from the DNS manager (ztnad --dns-manager has not run)", shown);
        } else if (strcmp(state, "error") == 0) {
                f = doctor_add(d, LAYER_SYSDNS, LEVEL_FAIL, "dns-manager-error", "%s; the DNS manager failed: %s",
                               shown, json_string_value(json_object_get(mstatus, "error")) ?: "?");
                finding_why(f, "the host's resolver was not pointed at the stub: programs that ask DNS directly do not "
                               "reach tailnet names");
                finding_fix(f, "fix what the DNS manager says, then: systemctl reload ztnad");
        } else if (strcmp(state, "applied") != 0) {
                doctor_add(d, LAYER_SYSDNS, LEVEL_OK, "dns-manager-off", "%s; the DNS manager sets nothing (state %s)",
                           shown, state);
        } else if (mode && strcmp(mode, "resolved") == 0) {
                bool via_resolved = strstr(target, "/run/systemd/resolve/") ||
                                    (nns > 0 && strcmp(ns[0], RESOLVED_STUB_ADDRESS) == 0);
                if (!via_resolved) {
                        f = doctor_add(d, LAYER_SYSDNS, LEVEL_WARN, "resolv-conf-not-resolved",
                                       "%s: not resolved's stub, which the DNS manager configured", shown);
                        finding_why(f, "programs that read resolv.conf bypass resolved and its route of the tailnet "
                                       "domain to ztnad");
                        finding_fix(f, "ln -sf /run/systemd/resolve/stub-resolv.conf %s", rpath);
                } else
                        doctor_check_resolved(d, shown);
        } else {
                /* file or resolvconf: the stub's address on port 53 must be
                 * resolv.conf's first nameserver. */
                const json_t *servers = json_object_get(mstatus, "servers");
                char host[INET6_ADDRSTRLEN + 8];
                size_t at = SIZE_MAX;

                server_host_port53(json_string_value(json_array_get(servers, 0)) ?: "", host, sizeof host);
                for (size_t i = 0; host[0] && i < nns && at == SIZE_MAX; i++)
                        if (strcmp(ns[i], host) == 0)
                                at = i;
                if (at == 0)
                        doctor_add(d, LAYER_SYSDNS, LEVEL_OK, "resolv-conf-stub",
                                   "%s (the stub, set by the DNS manager, %s)", shown, mode ?: "?");
                else if (at != SIZE_MAX) {
                        f = doctor_add(d, LAYER_SYSDNS, LEVEL_WARN, "resolv-conf-stub-not-first",
                                       "%s: the stub %s is not first", shown, host);
                        finding_why(f, "glibc asks the first nameserver first: tailnet names get its NXDOMAIN for "
                                       "programs that ask DNS directly");
                        finding_fix(f, "systemctl reload ztnad");
                } else {
                        f = doctor_add(d, LAYER_SYSDNS, LEVEL_FAIL, "dns-settings-overwritten",
                                       "%s: the stub %s, set by the DNS manager (%s), is gone", shown,
                                       host[0] ? host : "?", mode ?: "?");
                        finding_why(f, "another program rewrote %s after the DNS manager: programs that ask DNS "
                                       "directly no longer reach the stub",
                                    rpath);
                        finding_fix(f, "systemctl reload ztnad");
                }
        }
        if (nns > 0) {
                /* The address resolv.conf sends queries to, when it is (or
                 * should be) the stub's: is it ztnad that holds its port? */
                char mhost[INET6_ADDRSTRLEN + 8] = "";
                bool applied = state && strcmp(state, "applied") == 0 && !(mode && strcmp(mode, "resolved") == 0);

                if (applied)
                        server_host_port53(
                                json_string_value(json_array_get(json_object_get(mstatus, "servers"), 0)) ?: "", mhost,
                                sizeof mhost);
                check_port53(d, shown, ns[0], applied && strcmp(mhost, ns[0]) == 0);
                /* Programs that ask DNS directly are meant to reach the
                 * stub: the DNS manager set it up, or resolv.conf names
                 * the stub's port-53 address. */
                d->resolv_to_stub = (state && strcmp(state, "applied") == 0) || stub_lists(d, "listening", ns[0]);
                if (state && strcmp(state, "applied") == 0)
                        snprintf(d->manager_mode, sizeof d->manager_mode, "%s", mode ?: "?");
        }
        json_decref(mstatus);
}
