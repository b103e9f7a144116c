/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The daemon's state, shared by its files, one role each:
 *
 *     ztnad.c    main(): options, the start-up order, signals, the
 *                heartbeat, shutdown
 *     paths.c    where the store, its copy and the peers file are
 *     map.c      the current map: validate, publish, save, republish;
 *                up/down; what systemd is told
 *     sources.c  the peers file (read, watched) and the control plane
 *                (polled), each handing its document to on_document
 *                (main() wires it to daemon_apply()); the sources' names
 *                and failures
 *
 *     verbs.c    the control socket and its verbs
 *     reload.c   SIGHUP: the new configuration fanned out to the parts
 *     fallback.c the store's copy on disk (fallback.h)
 *
 * Calls between them go one way, down this list: ztnad.c -> reload.c ->
 * verbs.c -> map.c -> sources.c -> paths.c (fallback.c calls none). A
 * file calls only files below it; sources.c reaches map.c through the
 * on_document callback main() sets, as sources/sync.h reports upward.
 *
 * Every record source hands over a whole peers document. It is validated
 * whole (peers_parse), published in one go, and saved as the last good map
 * under state_dir so a cold start without the source still resolves; a bad
 * document is logged, shown in `ztna status`, and changes nothing.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "conf/config.h"
#include "control/control-server.h"
#include "daemon/fallback.h"
#include "dns/dns.h"
#include "shm-format.h"
#include "shm.h"
#include "sources/sync.h"

#define DAEMON_ERROR_MAX 512
#define STATE_FILE_NAME "peers.json"

typedef enum SourceKind {
        SOURCE_FILE,    /* peers_file, watched */
        SOURCE_PUSH,    /* the control socket */
        SOURCE_CONTROL, /* the HTTPS control plane */
        SOURCE_SAVED,   /* the last good map, at start */
        SOURCE_EXAMPLE, /* the built-in example tailnet */
        _SOURCE_MAX,
} SourceKind;

typedef struct Source {
        uint64_t last_success_usec; /* CLOCK_REALTIME; 0: never */
        uint64_t last_error_usec;
        uint64_t updates;
        char last_error[DAEMON_ERROR_MAX]; /* "" after a success */
} Source;

typedef struct Daemon Daemon;

/* How a record source (sources.c) hands over a whole document from `kind`:
 * returns 0 once it is published, or negative with the reason copied to
 * `err` (when not NULL). main() sets it (to daemon_apply(), map.c). */
typedef int (*daemon_document_fn)(Daemon *d, SourceKind kind, const char *data, size_t len, const char *origin,
                                  char *err, size_t errlen);

struct Daemon {
        sd_event *event;
        ZtnadConfig *config;
        const char *config_path;   /* NULL: the default path */
        const char *peers_override; /* --peers */
        const char *store_override; /* --store */
        const char *fallback_override; /* --store-fallback; "": none */
        bool example;               /* --example: the built-in tailnet */

        ShmWriter *writer;
        Fallback *fallback; /* NULL: no persisted copy */
        ShmReader *reader; /* the daemon's own view, for list/query */
        bool up;
        bool published;
        SourceKind current; /* where the published map came from */
        size_t n_peers;
        char domain[256]; /* of the published map */
        ShmPrefix ranges[SHM_RANGES_MAX]; /* of the published map */
        size_t n_ranges;
        uint64_t published_usec;
        /* The published map's document while saving it under state_dir
         * fails (NULL once the saved copy is current again): a republish
         * must not go back to an older saved map. */
        char *unsaved;
        size_t unsaved_len;

        Source sources[_SOURCE_MAX];

        /* peers file watch: copies of their own, since a reload frees the
         * configuration the path came from */
        char *watch_dir;
        char *watch_name;
        sd_event_source *inotify, *settle;

        sd_event_source *heartbeat;
        Sync *sync;
        Control *control;
        DnsService *dns; /* the stub, cache, blocklist and upstreams */
        bool ready;
        daemon_document_fn on_document; /* the record sources' documents go here */
};

/* ---- paths.c ---- */
const char *daemon_store_path(const Daemon *d);
/* Where the persisted copy of the store goes; NULL: nowhere. */
const char *daemon_fallback_path(const Daemon *d);
const char *daemon_peers_path(const Daemon *d);
/* The directory a socket or the store lives in, made 0755 when missing
 * (one level only); a failure is logged. */
int daemon_make_parent_dir(const char *path);

/* ---- map.c ---- */
/* Starts saving the persisted copy; a failure is logged, not fatal. */
void daemon_fallback_start(Daemon *d);
/* Validates and publishes a whole document from `kind`; on failure the
 * reason is logged, recorded for `ztna status` and copied to `err`. */
int daemon_apply(Daemon *d, SourceKind kind, const char *data, size_t len, const char *origin, char *err,
                 size_t errlen);
int daemon_load_initial(Daemon *d);
int daemon_set_state(Daemon *d, bool up);
/* Publishes the current map again from where it came (after the blocklist
 * changed, say). */
int daemon_republish(Daemon *d, const char *why);
/* STATUS= for systemd: the published map, or none yet. */
void daemon_notify_status(Daemon *d);
void daemon_notify_ready(Daemon *d);

/* ---- sources.c ---- */
/* "peers file", "control socket"...: as the log and `ztna status` name it. */
const char *daemon_source_name(SourceKind k);
/* Records a failure of `k` for `ztna status`. */
void daemon_source_failed(Daemon *d, SourceKind k, const char *message);
/* Reads the peers file (if one is configured) and hands it to
 * d->on_document; a read failure is logged and recorded. */
int daemon_reload_file(Daemon *d, const char *why);
int daemon_watch_start(Daemon *d);
void daemon_watch_stop(Daemon *d);
int daemon_sync_start(Daemon *d);

/* ---- verbs.c ---- */
int daemon_control_start(Daemon *d);

/* ---- reload.c ---- */
/* SIGHUP: applied whole or not at all. */
void daemon_reload(Daemon *d);
