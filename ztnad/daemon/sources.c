/* SPDX-License-Identifier: MIT */
/*
 * The record sources: their names and failures for `ztna status`, the
 * peers file read (at start, on SIGHUP, on a change) and its directory
 * watched with inotify, and the control plane polled (sources/sync.h).
 * Each hands its document to the Daemon's on_document callback, which
 * main() wires to daemon_apply() (map.c): nothing here calls map.c, so
 * map.c may call in (the first map reads the peers file). The control
 * socket's push is in verbs.c.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/inotify.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "common/log.h"
#include "common/time-util.h"
#include "conf/config.h"
#include "daemon/daemon.h"
#include "macro.h"
#include "sources/peers.h"
#include "sources/sync.h"

/* A file that appears by creation (not rename) is usually still being
 * written; its IN_CLOSE_WRITE normally follows at once and wins. The delay
 * only matters for a file made by link(), which sends nothing else. */
#define CREATE_SETTLE_USEC (200 * USEC_PER_MSEC)

static const char *const source_names[_SOURCE_MAX] = {
        [SOURCE_FILE] = "peers file",
        [SOURCE_PUSH] = "control socket",
        [SOURCE_CONTROL] = "control plane",
        [SOURCE_SAVED] = "saved map",
        [SOURCE_EXAMPLE] = "built-in example",
};

const char *daemon_source_name(SourceKind k) {
        return source_names[k];
}

void daemon_source_failed(Daemon *d, SourceKind k, const char *message) {
        Source *s = &d->sources[k];
        s->last_error_usec = clock_now_usec(CLOCK_REALTIME);
        snprintf(s->last_error, sizeof s->last_error, "%s", message);
}

int daemon_reload_file(Daemon *d, const char *why) {
        const char *path = daemon_peers_path(d);
        _cleanup_free_ char *data = NULL;
        PeersError perr;
        size_t len;
        int r;

        if (!path)
                return 0;
        log_line(SD_INFO, "reading %s (%s)", path, why);
        r = peers_read_file(path, &data, &len, &perr);
        if (r < 0) {
                log_line(SD_ERR, "%s (%s); %s", perr.message, why,
                         d->published ? "the last good map stays published" : "nothing published");
                daemon_source_failed(d, SOURCE_FILE, perr.message);
                return r;
        }
        return d->on_document(d, SOURCE_FILE, data, len, path, NULL, 0);
}

/* ---- peers file watch ---- */

static int on_inotify(sd_event_source *s, const struct inotify_event *ev, void *userdata) {
        Daemon *d = userdata;
        const char *path = daemon_peers_path(d);

        (void) s;
        if (ev->mask & IN_Q_OVERFLOW) {
                log_line(SD_WARNING, "inotify queue overflowed; reloading %s", path);
                (void) daemon_reload_file(d, "inotify overflow");
                return 0;
        }
        if (ev->mask & IN_IGNORED) {
                log_line(SD_WARNING, "%s is gone; no longer watching %s (SIGHUP still reloads)", d->watch_dir,
                         path);
                return 0;
        }
        if (ev->len == 0 || strcmp(ev->name, d->watch_name) != 0)
                return 0;

        /* Replaced by rename (the atomic way) or written in place. */
        if (ev->mask & (IN_MOVED_TO | IN_CLOSE_WRITE)) {
                (void) sd_event_source_set_enabled(d->settle, SD_EVENT_OFF);
                (void) daemon_reload_file(d, "file changed");
        } else if (ev->mask & IN_CREATE) {
                (void) sd_event_source_set_time_relative(d->settle, CREATE_SETTLE_USEC);
                (void) sd_event_source_set_enabled(d->settle, SD_EVENT_ONESHOT);
        } else if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
                log_line(SD_WARNING, "%s was removed; the published map stays", path);
        return 0;
}

static int on_settle(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) s;
        (void) usec;
        (void) daemon_reload_file(userdata, "file created");
        return 0;
}

void daemon_watch_stop(Daemon *d) {
        d->inotify = sd_event_source_disable_unref(d->inotify);
        d->settle = sd_event_source_disable_unref(d->settle);
        d->watch_dir = mfree(d->watch_dir);
        d->watch_name = mfree(d->watch_name);
}

/* Watches the peers file's directory, not the file: writers replace the file
 * by rename, which a watch on the old inode would never see. */
int daemon_watch_start(Daemon *d) {
        const char *path = daemon_peers_path(d);
        char *slash;
        int r;

        if (!path)
                return 0;
        d->watch_dir = strdup(path);
        if (!d->watch_dir)
                return -ENOMEM;
        slash = strrchr(d->watch_dir, '/');
        d->watch_name = strdup(slash ? slash + 1 : path);
        if (!d->watch_name)
                return -ENOMEM;
        if (!slash)
                strcpy(d->watch_dir, ".");
        else if (slash == d->watch_dir)
                slash[1] = '\0'; /* "/peers.json": the root */
        else
                *slash = '\0';
        if (d->watch_name[0] == '\0') {
                log_line(SD_ERR, "%s: not a file name", path);
                return -EINVAL;
        }

        r = sd_event_add_inotify(d->event, &d->inotify, d->watch_dir,
                                 IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_ONLYDIR,
                                 on_inotify, d);
        if (r < 0)
                return log_line_errno(SD_ERR, r, "cannot watch %s for changes to %s: %m", d->watch_dir, path);
        /* Armed by IN_CREATE only. */
        r = sd_event_add_time_relative(d->event, &d->settle, CLOCK_MONOTONIC, CREATE_SETTLE_USEC, USEC_PER_MSEC,
                                       on_settle, d);
        if (r >= 0)
                r = sd_event_source_set_enabled(d->settle, SD_EVENT_OFF);
        if (r < 0)
                return log_line_errno(SD_ERR, r, "cannot set up a timer: %m");
        log_line(SD_INFO, "watching %s for changes", path);
        return r;
}

/* ---- the control plane ---- */

static int on_sync_update(const char *body, size_t len, char *err, size_t errlen, void *userdata) {
        Daemon *d = userdata;
        return d->on_document(d, SOURCE_CONTROL, body, len, d->config->control_url, err, errlen);
}

int daemon_sync_start(Daemon *d) {
        const ZtnadConfig *c = d->config;
        if (!c->control_url)
                return 0;
        SyncConfig sc = {
                .control_url = c->control_url,
                .org_id = c->org_id,
                .token_file = c->token_file,
                .ca_file = c->ca_file,
                .interval_usec = c->sync_interval_usec,
        };
        int r = sync_new(d->event, &sc, on_sync_update, d, &d->sync);
        if (r < 0)
                return log_line_errno(SD_ERR, r, "cannot start polling %s: %m", c->control_url);
        return r;
}
