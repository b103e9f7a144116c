/* SPDX-License-Identifier: MIT */
/*
 * Where the daemon's files are: the record store, its copy on disk and the
 * peers file, from the command line's overrides or else the configuration;
 * and the directory a socket or the store goes in.
 */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "common/log.h"
#include "daemon/daemon.h"
#include "macro.h"
#include "shm-format.h"

const char *daemon_store_path(const Daemon *d) {
        return d->store_override ? d->store_override : d->config->store;
}

const char *daemon_fallback_path(const Daemon *d) {
        if (d->fallback_override)
                return d->fallback_override[0] ? d->fallback_override : NULL;
        const char *p = d->config->store_fallback;
        /* The default copy belongs to the default store: a daemon that
         * publishes elsewhere (--store, a test's `store =`) must not replace
         * the copy that the machine's lookups fall back on. */
        if (p && strcmp(p, SHM_DEFAULT_FALLBACK_PATH) == 0 && strcmp(daemon_store_path(d), SHM_DEFAULT_PATH) != 0)
                return NULL;
        return p;
}

const char *daemon_peers_path(const Daemon *d) {
        return d->peers_override ? d->peers_override : d->config->peers_file;
}

/* The directory a socket or the store lives in, made 0755 when missing:
 * every process on the machine must be able to reach it. One level only. */
int daemon_make_parent_dir(const char *path) {
        _cleanup_free_ char *dir = strdup(path);
        char *slash;

        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return 0;
        *slash = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return log_line_errno(SD_ERR, -errno, "cannot create %s: %m", dir);
        return 0;
}
