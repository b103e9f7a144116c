/* SPDX-License-Identifier: MIT */
/*
 * Record sources, publishing and the control socket's verbs. See daemon.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#include "common/write-file.h"
#include "daemon/daemon.h"
#include "conf/example.h"
#include "common/log.h"
#include "macro.h"
#include "sources/peers.h"
#include "shm-format.h"
#include "shm.h"
#include "common/version.h"
#include "common/time-util.h"

/* A file that appears by creation (not rename) is usually still being
 * written; its IN_CLOSE_WRITE normally follows at once and wins. The delay
 * only matters for a file made by link(), which sends nothing else. */
#define CREATE_SETTLE_USEC (200 * USEC_PER_MSEC)
#define TRIM_ABOVE ((size_t) 1 << 20)

static const char *const source_names[_SOURCE_MAX] = {
        [SOURCE_FILE] = "peers file",
        [SOURCE_PUSH] = "control socket",
        [SOURCE_CONTROL] = "control plane",
        [SOURCE_SAVED] = "saved map",
        [SOURCE_EXAMPLE] = "built-in example",
};

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

void daemon_fallback_start(Daemon *d) {
        const char *path = daemon_fallback_path(d);
        if (!path)
                return;
        int r = fallback_new(d->event, d->writer, path, &d->fallback);
        if (r == -EBUSY)
                log_line(SD_WARNING, "the store's copy %s is kept by another ztnad (it holds %s.lock); not saving it",
                         path, path);
        else if (r < 0)
                log_line(SD_WARNING, "cannot keep a copy of the store at %s: %s (while the store is missing, tailnet names go to DNS)",
                         path, strerror(-r));
}

const char *daemon_peers_path(const Daemon *d) {
        return d->peers_override ? d->peers_override : d->config->peers_file;
}

static void source_failed(Daemon *d, SourceKind k, const char *message) {
        Source *s = &d->sources[k];
        s->last_error_usec = clock_now_usec(CLOCK_REALTIME);
        snprintf(s->last_error, sizeof s->last_error, "%s", message);
}

static void notify_status(Daemon *d) {
        if (!d->published)
                (void) sd_notify(0, "STATUS=No peer map published yet");
        else
                (void) sd_notifyf(0, "STATUS=%s: %zu peers of %s from the %s (generation %" PRIu64 ")",
                                  d->up ? "Up" : "Down", d->n_peers, d->domain, source_names[d->current],
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
                source_failed(d, kind, perr.message);
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
                source_failed(d, kind, msg);
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
                 shm_writer_generation(d->writer), n, source_names[kind], origin);
        notify_status(d);
        dns_service_state_write(d->dns);

        if (kind == SOURCE_EXAMPLE)
                d->unsaved = mfree(d->unsaved);
        else if (kind == SOURCE_SAVED || as == APPLY_AGAIN_SAVED)
                d->unsaved = mfree(d->unsaved); /* the saved copy is this map */
        else {
                r = save_state(d, data, len);
                if (r < 0) {
                        log_line(SD_WARNING, "cannot save the map under %s: %s (a cold start will not have it)",
                                 d->config->state_dir, strerror(-r));
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
                source_failed(d, SOURCE_FILE, perr.message);
                return r;
        }
        return daemon_apply(d, SOURCE_FILE, data, len, path, NULL, 0);
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
                source_failed(d, SOURCE_SAVED, perr.message);
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
        log_line(SD_INFO, "republishing the map from the %s (%s)", source_names[d->current], why);
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
        notify_status(d);
        return 0;
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
        if (r < 0) {
                log_line(SD_ERR, "cannot watch %s for changes to %s: %s", d->watch_dir, path, strerror(-r));
                return r;
        }
        /* Armed by IN_CREATE only. */
        r = sd_event_add_time_relative(d->event, &d->settle, CLOCK_MONOTONIC, CREATE_SETTLE_USEC, USEC_PER_MSEC,
                                       on_settle, d);
        if (r >= 0)
                r = sd_event_source_set_enabled(d->settle, SD_EVENT_OFF);
        if (r < 0)
                log_line(SD_ERR, "cannot set up a timer: %s", strerror(-r));
        else
                log_line(SD_INFO, "watching %s for changes", path);
        return r;
}

/* ---- the control plane ---- */

static int on_sync_update(const char *body, size_t len, char *err, size_t errlen, void *userdata) {
        Daemon *d = userdata;
        int r = daemon_apply(d, SOURCE_CONTROL, body, len, d->config->control_url, err, errlen);
        daemon_notify_ready(d);
        return r;
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
                log_line(SD_ERR, "cannot start polling %s: %s", c->control_url, strerror(-r));
        return r;
}

/* READY=1 once the store holds a map (DESIGN.md: only after publishing). */
void daemon_notify_ready(Daemon *d) {
        if (d->ready || !d->published)
                return;
        d->ready = true;
        (void) sd_notify(0, "READY=1");
        notify_status(d);
}

/* ---- the control socket's verbs ---- */

/* A CLOCK_REALTIME time as ISO 8601 UTC, null for never. */
static json_t *json_time(uint64_t usec) {
        char buf[32];
        struct tm tm;
        time_t t = (time_t) (usec / USEC_PER_SEC);
        if (!usec || !gmtime_r(&t, &tm) || !strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm))
                return json_null();
        return json_string(buf);
}

static int op_status(void *userdata, json_t **ret) {
        Daemon *d = userdata;
        json_t *o = json_object(), *sources = json_array();
        if (!o || !sources) {
                json_decref(o);
                json_decref(sources);
                return -ENOMEM;
        }
        json_object_set_new(o, "version", json_string(ZTNA_VERSION));
        json_object_set_new(o, "pid", json_integer(getpid()));
        json_object_set_new(o, "state", json_string(!d->published ? "no map" : d->up ? "up" : "down"));
        json_object_set_new(o, "generation", json_integer((json_int_t) shm_writer_generation(d->writer)));
        json_object_set_new(o, "records", json_integer((json_int_t) d->n_peers));
        json_object_set_new(o, "store", json_string(daemon_store_path(d)));
        json_object_set_new(o, "store_size", json_integer((json_int_t) shm_writer_file_size(d->writer)));
        json_object_set_new(o, "store_fallback", d->fallback ? fallback_status(d->fallback) : json_null());
        json_object_set_new(o, "published", json_time(d->published_usec));
        json_object_set_new(o, "published_from", d->published ? json_string(source_names[d->current]) : json_null());
        json_object_set_new(o, "offline_peers",
                            json_string(d->config->offline_peers == CONFIG_OFFLINE_HIDE ? "hide" : "show"));
        for (unsigned k = 0; k < _SOURCE_MAX; k++) {
                const Source *s = &d->sources[k];
                const char *detail = NULL;
                if (k == SOURCE_FILE)
                        detail = daemon_peers_path(d);
                else if (k == SOURCE_CONTROL)
                        detail = d->config->control_url;
                else if (k == SOURCE_PUSH)
                        detail = d->config->control_socket;
                if (!detail && !s->updates && !s->last_error_usec)
                        continue; /* not configured, never used */
                json_t *j = json_pack("{s:s, s:s?, s:o, s:I, s:s?, s:o}", "name", source_names[k], "detail", detail,
                                      "last_success", json_time(s->last_success_usec), "updates",
                                      (json_int_t) s->updates, "last_error",
                                      s->last_error[0] ? s->last_error : NULL, "last_error_at",
                                      json_time(s->last_error_usec));
                if (j && k == SOURCE_CONTROL && d->sync) {
                        SyncStatus ss;
                        uint64_t now = 0;
                        sync_get_status(d->sync, &ss);
                        /* In sync again (a 304 included): an old rejection
                         * is history, not the state. */
                        if (ss.last_errno == 0 && ss.last_success_usec)
                                json_object_set_new(j, "last_error", json_null());
                        (void) sd_event_now(d->event, CLOCK_MONOTONIC, &now);
                        json_object_set_new(j, "consecutive_failures", json_integer(ss.consecutive_failures));
                        if (ss.next_attempt_usec > now)
                                json_object_set_new(j, "next_attempt_in",
                                                    json_real((double) (ss.next_attempt_usec - now) / 1e6));
                        if (ss.last_error[0])
                                json_object_set_new(j, "sync_error", json_string(ss.last_error));
                        /* Failing now: the last error is that failure, not
                         * "none" next to a count of them. */
                        if (ss.consecutive_failures > 0 && ss.last_error[0] &&
                            json_is_null(json_object_get(j, "last_error")))
                                json_object_set_new(j, "last_error", json_string(ss.last_error));
                }
                if (j)
                        json_array_append_new(sources, j);
        }
        json_object_set_new(o, "sources", sources);
        json_object_set_new(o, "dns", dns_service_status(d->dns));
        *ret = o;
        return 0;
}

typedef struct SnapshotCall {
        int (*fn)(const ShmSnapshot *s, const void *arg, json_t **ret);
        const void *arg;
        json_t *j;
} SnapshotCall;

static int snapshot_call(const ShmSnapshot *s, void *userdata) {
        SnapshotCall *c = userdata;
        return c->fn(s, c->arg, &c->j);
}

static void snapshot_discard(void *userdata) {
        SnapshotCall *c = userdata;
        json_decref(c->j);
        c->j = NULL;
}

/* Reads the store as every other process sees it; retried when torn
 * (shm_snapshot_read(): the store's one retry policy). */
static int with_snapshot(Daemon *d, int (*fn)(const ShmSnapshot *s, const void *arg, json_t **ret),
                         const void *arg, json_t **ret) {
        SnapshotCall c = { .fn = fn, .arg = arg };
        int r;

        if (!d->reader) {
                r = shm_reader_new(daemon_store_path(d), &d->reader);
                if (r < 0)
                        return r;
        }
        r = shm_snapshot_read(d->reader, snapshot_call, snapshot_discard, &c);
        if (r >= 0)
                *ret = c.j;
        else
                json_decref(c.j);
        return r;
}

static int snapshot_list(const ShmSnapshot *s, const void *arg, json_t **ret) {
        (void) arg;
        json_t *peers = json_array();
        ShmRecordView v;
        if (!peers)
                return -ENOMEM;
        for (uint32_t i = 0; shm_snapshot_record(s, i, &v); i++)
                json_array_append_new(peers, control_peer_json(s, &v));
        *ret = json_pack("{s:s%, s:o}", "domain", s->domain, (size_t) s->domain_len, "peers", peers);
        return *ret ? 0 : -ENOMEM;
}

static int op_list(void *userdata, json_t **ret) {
        return with_snapshot(userdata, snapshot_list, NULL, ret);
}

static int snapshot_query(const ShmSnapshot *s, const void *arg, json_t **ret) {
        const char *name = arg;
        ShmRecordView v;
        union {
                struct in_addr in;
                struct in6_addr in6;
        } a;
        ShmClass c;

        if (inet_pton(AF_INET, name, &a.in) == 1)
                c = shm_snapshot_lookup_addr(s, AF_INET, &a, &v);
        else if (inet_pton(AF_INET6, name, &a.in6) == 1)
                c = shm_snapshot_lookup_addr(s, AF_INET6, &a, &v);
        else
                c = shm_snapshot_lookup_name(s, name, &v);
        if (c != SHM_FOUND)
                return -ENOENT;
        *ret = control_peer_json(s, &v);
        return *ret ? 0 : -ENOMEM;
}

static int op_query(void *userdata, const char *name, json_t **ret) {
        return with_snapshot(userdata, snapshot_query, name, ret);
}

static int op_push(void *userdata, const char *doc, size_t len, char *err, size_t errlen) {
        Daemon *d = userdata;
        int r = daemon_apply(d, SOURCE_PUSH, doc, len, "pushed document", err, errlen);
        daemon_notify_ready(d);
        return r;
}

static int op_set_state(void *userdata, bool up) {
        return daemon_set_state(userdata, up);
}

static int op_flush(void *userdata) {
        Daemon *d = userdata;
        return dns_service_flush(d->dns);
}

static void op_log(void *userdata, int priority, const char *message) {
        (void) userdata;
        log_line_priority(priority, message);
}

const ControlOps daemon_control_ops = {
        .status = op_status,
        .list = op_list,
        .query = op_query,
        .push = op_push,
        .set_state = op_set_state,
        .flush = op_flush,
        .log = op_log,
};
