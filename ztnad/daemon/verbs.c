/* SPDX-License-Identifier: MIT */
/*
 * The control socket's verbs: the socket started with the admin group from
 * the configuration, and the callbacks (ControlOps) that answer status,
 * list, query, push, up/down and flush from the daemon's state and the
 * store as every other process reads it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <grp.h>
#include <jansson.h>
#include <string.h>
#include <systemd/sd-event.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/time-util.h"
#include "common/version.h"
#include "conf/config.h"
#include "control/control-protocol.h"
#include "control/control-server.h"
#include "daemon/daemon.h"
#include "daemon/fallback.h"
#include "dns/dns.h"
#include "shm.h"
#include "sources/sync.h"

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
        json_object_set_new(o, "published_from", d->published ? json_string(daemon_source_name(d->current)) : json_null());
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
                json_t *j = json_pack("{s:s, s:s?, s:o, s:I, s:s?, s:o}", "name", daemon_source_name(k), "detail", detail,
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

static const ControlOps daemon_control_ops = {
        .status = op_status,
        .list = op_list,
        .query = op_query,
        .push = op_push,
        .set_state = op_set_state,
        .flush = op_flush,
        .log = op_log,
};

/* Listens on control_socket and answers with the verbs above. */
int daemon_control_start(Daemon *d) {
        const char *path = d->config->control_socket;
        gid_t gid = (gid_t) -1;
        struct group *g = getgrnam(d->config->control_group);
        int r;

        if (g)
                gid = g->gr_gid;
        else
                log_line(SD_WARNING, "group %s does not exist: only root may change things through %s",
                         d->config->control_group, path);
        r = daemon_make_parent_dir(path);
        if (r < 0)
                return r;
        r = control_new(d->event, path, -1, gid, NULL, &daemon_control_ops, d, &d->control);
        if (r < 0)
                return log_line_errno(SD_ERR, r, "cannot listen on %s: %m", path);
        return control_set_admin_group_name(d->control, d->config->control_group);
}
