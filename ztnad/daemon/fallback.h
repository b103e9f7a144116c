/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The persisted copy of the store (docs/store-fallback.md): after a publish
 * settles, the table readers use is copied out on the event loop and
 * written to disk by a thread of its own (temporary file, fsync, rename),
 * so a slow disk never holds up the loop. The NSS module answers from the
 * copy, as stale, while the store itself is missing.
 */

#include <jansson.h>
#include <stdint.h>
#include <systemd/sd-event.h>

#include "shm.h"

/* A save waits for publishing to pause this long, and never longer than
 * FALLBACK_MAX_DELAY_USEC after the first unsaved change. */
#define FALLBACK_DELAY_USEC UINT64_C(1000000)
#define FALLBACK_MAX_DELAY_USEC UINT64_C(10000000)

typedef struct Fallback Fallback;

/* Takes "<path>.lock" (-EBUSY when another ztnad holds it), removes the
 * temporary files of a saver killed mid-write, starts the saving thread.
 * `writer` must outlive the Fallback. */
int fallback_new(sd_event *event, ShmWriter *writer, const char *path, Fallback **ret);
/* Saves what is still unsaved, waits for the write, stops the thread.
 * NULL-safe. */
Fallback *fallback_free(Fallback *f);

/* The store changed (a publish, up or down): save it once it settles. */
void fallback_changed(Fallback *f);
/* Copies the store out and hands it to the thread now. */
int fallback_save_now(Fallback *f);

/* For `ztna status`: path, last save, last error, the cost of each part. */
json_t *fallback_status(Fallback *f);
