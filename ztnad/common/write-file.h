/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The one writer that replaces a file whole: readers see the old content or
 * the new, never a part (the saved map, the DNS state file, the files the
 * DNS manager edits under /etc).
 */

#include <stddef.h>
#include <sys/types.h>

enum {
        WRITE_FILE_SYNC = 1u << 0,     /* fsync() the new file before the rename */
        WRITE_FILE_SYNC_DIR = 1u << 1, /* and the directory after it: the rename survives a power cut */
};

/*
 * Writes `len` bytes of `data` to a temporary file beside `path` (named
 * `path`, then `infix`, then six random characters: "peers.json.Ab12Cd"
 * with infix "."), gives it `mode`, and renames it over `path`. On failure
 * the temporary file is removed and `path` is untouched. Returns 0 or
 * -errno.
 */
int write_file_atomic(const char *path, const char *infix, const void *data, size_t len, mode_t mode,
                      unsigned flags);
