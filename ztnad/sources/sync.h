/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The control plane as a record source: polls "list" on the daemon's
 * sd-event loop and hands every new peers document to a callback, which
 * validates it whole and publishes it (docs/control-plane.md).
 *
 * - One transfer at a time, driven by libcurl's multi socket interface from
 *   the loop's own io and timer sources: the loop never blocks on the
 *   network. (libcurl may resolve a host name on a helper thread of its own;
 *   nothing else runs off the loop.)
 * - A poll every interval, +-10 % jitter, so a fleet of clients does not
 *   poll in step. The first one is due at once.
 * - ETag / If-None-Match: 304 means unchanged and counts as a success.
 *   A 200 whose body is byte-for-byte the last accepted one is not handed
 *   over again either.
 * - After a failure (transport, TLS, HTTP status, rejected body) the next
 *   attempt waits 1 s, doubling with every further failure up to
 *   max(max_backoff, interval), +-10 % jitter; the first success returns to
 *   the interval. A failure never touches what is published.
 * - The token file is read at every attempt, so a rotated token is used at
 *   the next poll without a restart.
 * - Logs to stderr, one line per change of state (in sync, failing, failing
 *   differently, back in sync), not one per poll.
 */

#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "macro.h"

#define SYNC_BACKOFF_FIRST_USEC (UINT64_C(1) * 1000000)
#define SYNC_BACKOFF_MAX_USEC_DEFAULT (UINT64_C(300) * 1000000)
#define SYNC_ERROR_MAX 512
#define SYNC_ETAG_MAX 256

typedef struct SyncConfig {
        const char *control_url, *org_id, *token_file, *ca_file; /* copied; ca_file may be NULL */
        uint64_t interval_usec;    /* > 0; its default is the sync_interval key's */
        uint64_t max_backoff_usec; /* 0: SYNC_BACKOFF_MAX_USEC_DEFAULT */
        uint64_t timeout_usec;     /* per transfer; 0: CONTROLPLANE_TIMEOUT_USEC_DEFAULT */
} SyncConfig;

/* Called from the loop with each new body (HTTP 200): `len` bytes, NUL-
 * terminated. Returns 0 if it was accepted and published, or negative with
 * a message in `err` (the map stays as it was). Must not free the Sync. */
typedef int (*sync_update_fn)(const char *body, size_t len, char *err, size_t errlen, void *userdata);

typedef struct Sync Sync;

/* Checks the configuration (an https URL, org_id, token_file set; a bad one
 * is logged) and schedules the first poll at once. Returns 0, -EINVAL or
 * -ENOMEM. */
int sync_new(sd_event *e, const SyncConfig *c, sync_update_fn on_update, void *userdata, Sync **ret);
Sync *sync_free(Sync *s); /* NULL-safe, returns NULL; aborts a transfer in flight */

/* Polls at once (after the transfer in flight, if any), whatever the
 * back-off, without If-None-Match, and hands the body to the callback even
 * if unchanged: a full resync, e.g. on SIGHUP. */
void sync_now(Sync *s);

/* Times are CLOCK_MONOTONIC microseconds, as sd_event_now() gives them;
 * 0 means never. */
typedef struct SyncStatus {
        uint64_t last_success_usec, last_attempt_usec;
        uint64_t next_attempt_usec;     /* 0 while a transfer is in flight */
        unsigned consecutive_failures;
        unsigned long n_updates;        /* bodies the callback accepted */
        int last_errno;                 /* negative, of the current failure; 0 when in sync */
        char last_error[SYNC_ERROR_MAX]; /* of the current failure; "" when in sync */
        char etag[SYNC_ETAG_MAX];       /* sent as If-None-Match next; "" if none */
} SyncStatus;

void sync_get_status(const Sync *s, SyncStatus *ret);

static inline void sync_freep(Sync **s) {
        sync_free(*s);
}
#define _cleanup_sync_ _cleanup_(sync_freep)
