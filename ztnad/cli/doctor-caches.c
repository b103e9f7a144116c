/* SPDX-License-Identifier: MIT */
/*
 * The caches layer of `ztna doctor`: the caches between a lookup and
 * ztna's answer: nscd's hosts cache, which glibc asks before any NSS
 * module, and whether the stub serves stale answers.
 */

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "cli/doctor-internal.h"
#include "macro.h"

#define NSCD_CONF "/etc/nscd.conf"
#define NSCD_SOCKET "/var/run/nscd/socket" /* glibc's _PATH_NSCDSOCKET */

/* Whether nscd.conf (`len` bytes of `data`) enables the hosts cache: the
 * last "enable-cache hosts yes|no" line wins; without one nscd does not
 * cache hosts. */
static bool nscd_conf_caches_hosts(const char *data, size_t len) {
        bool on = false;
        size_t i = 0;

        while (i < len) {
                char line[256], a[32], b[32], c[32];

                doctor_next_line(data, len, &i, line, sizeof line);
                char *hash = strchr(line, '#');
                if (hash)
                        *hash = '\0';
                if (sscanf(line, "%31s %31s %31s", a, b, c) == 3 && strcmp(a, "enable-cache") == 0 &&
                    strcmp(b, "hosts") == 0)
                        on = strcmp(c, "yes") == 0;
        }
        return on;
}

/* Whether a program accepts connections on nscd's socket: glibc's lookups
 * then ask it before any NSS module. */
static bool nscd_running(void) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = NSCD_SOCKET };
        _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

        return fd >= 0 && connect(fd, (const struct sockaddr *) &sa, sizeof sa) == 0;
}

void doctor_check_caches(Doctor *d) {
        _cleanup_free_ char *conf = NULL;
        size_t len = 0;
        bool running = nscd_running();
        Finding *f;

        if (running && doctor_read_file(NSCD_CONF, &conf, &len) >= 0 && nscd_conf_caches_hosts(conf, len)) {
                f = doctor_add(d, LAYER_CACHES, LEVEL_WARN, "nscd-hosts-cache",
                               "nscd is running and caches hosts (" NSCD_CONF ": enable-cache hosts yes)");
                finding_why(f, "glibc asks nscd before ztna: a peer's changed or removed address is answered stale "
                               "until nscd's positive-time-to-live passes");
                finding_fix(f, "sed -i 's/^\\([[:space:]]*enable-cache[[:space:]]\\{1,\\}hosts[[:space:]]\\{1,\\}\\)yes/\\1no/' "
                               NSCD_CONF " && systemctl restart nscd");
        } else if (running)
                doctor_add(d, LAYER_CACHES, LEVEL_OK, "nscd-no-hosts", "nscd is running without a hosts cache");
        else
                doctor_add(d, LAYER_CACHES, LEVEL_OK, "nscd-off", "no nscd on " NSCD_SOCKET);
        if (d->cfg && d->cfg->stub)
                doctor_add(d, LAYER_CACHES, LEVEL_OK, d->cfg->serve_stale ? "serve-stale-on" : "serve-stale-off",
                           d->cfg->serve_stale ? "the stub serves stale answers when every upstream fails"
                                               : "the stub serves no stale answers");
}
