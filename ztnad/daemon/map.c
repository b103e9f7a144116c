/* SPDX-License-Identifier: MIT */
/*
 * The current map: every document from a record source is validated
 * whole, published into the store, and saved under state_dir for a cold
 * start (or kept in memory while saving fails); the first map at start;
 * the same map published again (a republish, after the blocklist or the
 * pins changed); the tailnet's up/down state; what systemd is told
 * (STATUS=, READY=1); and the store's copy on disk started.
 */
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time-util.h"
#include "common/write-file.h"
#include "conf/config.h"
#include "conf/example.h"
#include "daemon/daemon.h"
#include "daemon/fallback.h"
#include "dns/dns.h"
#include "macro.h"
#include "shm-format.h"
#include "shm.h"
#include "sources/peers.h"

#define TRIM_ABOVE ((size_t) 1 << 20)

void daemon_fallback_start(Daemon *d) {
        const char *path = daemon_fallback_path(d);
        if (!path)
                return;
        int r = fallback_new(d->event, d->writer, path, &d->fallback);
        if (r == -EBUSY)
                log_line(SD_WARNING, "the store's copy %s is kept by another ztnad (it holds %s.lock); not saving it",
                         path, path);
        else if (r < 0)
                (void) log_line_errno(SD_WARNING, r, "cannot keep a copy of the store at %s: %m (while the store is missing, tailnet names go to DNS)",
                                      path);
}

void daemon_notify_status(Daemon *d) {
        if (!d->published)
                (void) sd_notify(0, "STATUS=No peer map published yet");
        else
                (void) sd_notifyf(0, "STATUS=%s: %zu peers of %s from the %s (generation %" PRIu64 ")",
                                  d->up ? "Up" : "Down", d->n_peers, d->domain, daemon_source_name(d->current),
                                  shm_writer_generation(d->writer));
}

/* Publishes `m` as it should be seen: offline peers dropped when the
 * configuration says so. */
static int publish_map(Daemon *d, const PeerMap *m, size_t *ret_n) {
        _cleanup_free_ ShmPeer *kept = NULL;
        ShmMap map;

        peer_map_to_shm(m, &map);
        snprintf(d->domain, sizeof d->domain, "%s", map.domain);
        d->n_ranges = map.n_ranges < SHM_RANGES_MAX ? map.n_ranges : SHM_RANGES_MAX;
        memcpy(d->ranges, map.ranges, d->n_ranges * sizeof *d->ranges);
        map.blocked = dns_service_blocked(d->dns, &map.n_blocked);
        if (d->config->offline_peers == CONFIG_OFFLINE_HIDE) {
                size_t n = 0;
                kept = malloc((map.n_peers ? map.n_peers : 1) * sizeof(ShmPeer));
                if (!kept)
                        return -ENOMEM;
                for (size_t i = 0; i < map.n_peers; i++)
                        if (map.peers[i].online)
                                kept[n++] = map.peers[i];
                map.peers = kept;
                map.n_peers = n;
        }
        int r = shm_writer_publish(d->writer, &map, d->up);
        if (r >= 0)
                *ret_n = map.n_peers;
        return r;
}

/* The last good map, for a cold start without its source: written to a
 * temporary file, flushed, renamed over the old one. */
static int save_state(Daemon *d, const char *data, size_t len) {
        const char *dir = d->config->state_dir;
        _cleanup_free_ char *path = NULL;

        if (asprintf(&path, "%s/" STATE_FILE_NAME, dir) < 0)
                return -ENOMEM;
        if (mkdir(dir, 0750) < 0 && errno != EEXIST)
                return -errno;
        /* "peers.json.XXXXXX": what the next start removes as a leftover. */
        return write_file_atomic(path, ".", data, len, 0640, WRITE_FILE_SYNC | WRITE_FILE_SYNC_DIR);
}

/* How a document reaches apply_document(): as an update from its source,
 * or as the current map again (a republish), either from the saved copy
 * (which need not be written again) or from the copy kept in memory
 * (whose save is tried again). */
typedef enum ApplyAs {
        APPLY_UPDATE,
        APPLY_AGAIN_SAVED,
        APPLY_AGAIN_UNSAVED,
} ApplyAs;

/* The document as the map to publish until a save succeeds. */
static void keep_unsaved(Daemon *d, const char *data, size_t len) {
        char *copy = malloc(len ? len : 1);

        free(d->unsaved);
        d->unsaved = NULL;
        if (!copy) {
                log_line(SD_WARNING, "out of memory keeping the unsaved map; a republish may use an older one");
                return;
        }
        memcpy(copy, data, len);
        d->unsaved = copy;
        d->unsaved_len = len;
}

static int apply_document(Daemon *d, SourceKind kind, const char *data, size_t len, const char *origin, char *err,
                          size_t errlen, ApplyAs as) {
        _cleanup_peer_map_ PeerMap *m = NULL;
        PeersError perr;
        size_t n = 0;
        int r;

        PeersPolicy policy = {
                .domains = (const char *const *) d->config->domains.items,
                .n_domains = d->config->domains.n,
                .allowed = d->config->address_space.items,
                .n_allowed = d->config->address_space.n,
        };

        /* Every source, the built-in example included: what the
         * configuration pins holds for every map this machine publishes. */
        r = peers_parse_policy(data, len, origin, &policy, &m, &perr);
        if (r < 0) {
                log_line(SD_ERR, "%s; %s", perr.message,
                         d->published ? "the last good map stays published" : "nothing published");
                daemon_source_failed(d, kind, perr.message);
                if (err)
                        snprintf(err, errlen, "%s", perr.message);
                return r;
        }
        r = publish_map(d, m, &n);
        if (r < 0) {
                char msg[DAEMON_ERROR_MAX];
                snprintf(msg, sizeof msg, "%s: cannot publish to %s: %s", origin, daemon_store_path(d),
                         strerror(-r));
                log_line(SD_ERR, "%s", msg);
                daemon_source_failed(d, kind, msg);
                if (err)
                        snprintf(err, errlen, "%s", msg);
                return r;
        }

        Source *s = &d->sources[kind];
        s->last_success_usec = d->published_usec = clock_now_usec(CLOCK_REALTIME);
        s->last_error[0] = '\0';
        if (as == APPLY_UPDATE)
                s->updates++;
        d->published = true;
        dns_service_map_published(d->dns, d->domain, d->ranges, d->n_ranges);
        d->current = kind;
        d->n_peers = n;
        fallback_changed(d->fallback);
        log_line(SD_NOTICE, "published generation %" PRIu64 ": %zu peers from the %s (%s)",
                 shm_writer_generation(d->writer), n, daemon_source_name(kind), origin);
        daemon_notify_status(d);
        dns_service_state_write(d->dns);

        if (kind == SOURCE_EXAMPLE)
                d->unsaved = mfree(d->unsaved);
        else if (kind == SOURCE_SAVED || as == APPLY_AGAIN_SAVED)
                d->unsaved = mfree(d->unsaved); /* the saved copy is this map */
        else {
                r = save_state(d, data, len);
                if (r < 0) {
                        (void) log_line_errno(SD_WARNING, r, "cannot save the map under %s: %m (a cold start will "
                                              "not have it)", d->config->state_dir);
                        keep_unsaved(d, data, len);
                } else
                        d->unsaved = mfree(d->unsaved);
        }
        /* The map of a large document is gone; give the memory back
         * rather than keep the peak resident. Small ones are left alone:
         * trimming would only make the next update fault the pages in. */
        m = peer_map_free(m);
        if (len > TRIM_ABOVE)
                (void) malloc_trim(0);
        return 0;
}

int daemon_apply(Daemon *d, SourceKind kind, const char *data, size_t len, const char *origin, char *err,
                 size_t errlen) {
        return apply_document(d, kind, data, len, origin, err, errlen, APPLY_UPDATE);
}

static int load_saved(Daemon *d) {
        _cleanup_free_ char *path = NULL, *data = NULL;
        PeersError perr;
        size_t len;

        if (asprintf(&path, "%s/" STATE_FILE_NAME, d->config->state_dir) < 0)
                return -ENOMEM;
        if (access(path, F_OK) < 0)
                return -ENOENT;
        int r = peers_read_file(path, &data, &len, &perr);
        if (r < 0) {
                log_line(SD_WARNING, "%s; ignoring the saved map", perr.message);
                daemon_source_failed(d, SOURCE_SAVED, perr.message);
                return r;
        }
        return daemon_apply(d, SOURCE_SAVED, data, len, path, NULL, 0);
}

/* The first map: the peers file when there is one; else the map saved by
 * the last run; else, with no source configured at all, the built-in
 * example tailnet. With only a control plane and nothing saved, nothing is
 * published until its first answer (a store left by an earlier run keeps
 * answering meanwhile). */
int daemon_load_initial(Daemon *d) {
        /* A run killed while saving the map left its temporary file
         * (peers.json.XXXXXX, up to a whole map each time): this run holds
         * the store's lock, so any such file is a leftover. */
        if (!d->example) {
                _cleanup_free_ char *saved = NULL;
                if (asprintf(&saved, "%s/" STATE_FILE_NAME, d->config->state_dir) < 0)
                        return -ENOMEM;
                shm_store_remove_leftovers(saved);
        }
        if (d->example)
                return daemon_apply(d, SOURCE_EXAMPLE, (const char *) ztna_example_tailnet,
                                    ztna_example_tailnet_len, "built-in example tailnet", NULL, 0);
        if (daemon_peers_path(d) && daemon_reload_file(d, "start") >= 0)
                return 0;
        if (load_saved(d) >= 0)
                return 0;
        if (daemon_peers_path(d) || d->config->control_url)
                return d->published ? 0 : -ENODATA;
        log_line(SD_NOTICE, "no peers_file or control_url configured: publishing the built-in example tailnet");
        return daemon_apply(d, SOURCE_EXAMPLE, (const char *) ztna_example_tailnet, ztna_example_tailnet_len,
                            "built-in example tailnet", NULL, 0);
}

/* The map now published, again: with the blocklist or the pins as they are
 * now. Its document is the one kept in memory while it could not be saved,
 * else the saved copy, whatever its source: a peers file that has turned
 * bad since, or an older saved map, must not stand in for it. */
int daemon_republish(Daemon *d, const char *why) {
        _cleanup_free_ char *path = NULL, *data = NULL;
        PeersError perr;
        size_t len;
        int r;

        if (!d->published)
                return 0;
        log_line(SD_INFO, "republishing the map from the %s (%s)", daemon_source_name(d->current), why);
        if (d->current == SOURCE_EXAMPLE)
                return daemon_apply(d, SOURCE_EXAMPLE, (const char *) ztna_example_tailnet, ztna_example_tailnet_len,
                                    "built-in example tailnet", NULL, 0);
        if (d->unsaved) {
                len = d->unsaved_len;
                data = TAKE_PTR(d->unsaved);
                r = apply_document(d, d->current, data, len, "the map kept in memory", NULL, 0, APPLY_AGAIN_UNSAVED);
                if (r < 0 && !d->unsaved) {
                        d->unsaved = TAKE_PTR(data);
                        d->unsaved_len = len;
                }
                return r;
        }
        if (asprintf(&path, "%s/" STATE_FILE_NAME, d->config->state_dir) < 0)
                return -ENOMEM;
        r = peers_read_file(path, &data, &len, &perr);
        if (r < 0) {
                log_line(SD_WARNING, "%s; the map stays as it is", perr.message);
                return r;
        }
        return apply_document(d, d->current, data, len, path, NULL, 0, APPLY_AGAIN_SAVED);
}

int daemon_set_state(Daemon *d, bool up) {
        if (d->up == up && d->published)
                return 0;
        if (d->published) {
                int r = shm_writer_set_state(d->writer, up);
                if (r < 0)
                        return r;
                fallback_changed(d->fallback);
        }
        d->up = up;
        log_line(SD_NOTICE, "tailnet marked %s", up ? "up" : "down (tailnet names answer TRY_AGAIN)");
        daemon_notify_status(d);
        return 0;
}

/* READY=1 once the store holds a map (DESIGN.md: only after publishing). */
void daemon_notify_ready(Daemon *d) {
        if (d->ready || !d->published)
                return;
        d->ready = true;
        (void) sd_notify(0, "READY=1");
        daemon_notify_status(d);
}
