/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The one reader of a whole small file (configuration, peers document,
 * blocklist, token, resolv.conf, the DNS manager's state, the files the
 * doctor inspects). Every caller gets the same guarantees:
 *
 *   - open(O_RDONLY|O_NONBLOCK|O_NOCTTY|O_CLOEXEC): a FIFO put in the
 *     file's place cannot block open() (the daemon's event loop would hang
 *     until the watchdog), a tty cannot become our controlling terminal;
 *   - only a regular file is read (a FIFO, a directory, a device: -EINVAL);
 *   - a size cap given by the caller, checked against fstat() before any
 *     allocation and again while reading (-EFBIG);
 *   - one byte more than fstat() said is asked for, so a file still being
 *     written is noticed (-EAGAIN) instead of parsed half-written.
 *
 * Errors are negative errno codes; callers map them to their own messages.
 */

#include <stddef.h>
#include <sys/stat.h>

enum {
        READ_FILE_NOFOLLOW = 1u << 0, /* a symlink as the last component fails with -ELOOP */
        READ_FILE_SECRET = 1u << 1,   /* the buffer holds a secret: wiped before it is freed on failure */
};

/* Which step failed, for messages that name it ("cannot open", "cannot read"). */
typedef enum ReadFileStep {
        READ_FILE_OPEN,  /* open(): its -errno */
        READ_FILE_STAT,  /* fstat(): its -errno */
        READ_FILE_CHECK, /* -EINVAL not a regular file, -EFBIG larger than the cap; *st is set */
        READ_FILE_READ,  /* read(): its -errno; -ENOMEM; -EAGAIN it grew while it was read */
} ReadFileStep;

/*
 * Reads the regular file at `path`, at most `max` bytes. On success returns
 * 0, *ret_data (malloc'ed, NUL-terminated after *ret_len bytes, never NULL)
 * and *ret_len. `st` (optional) receives the file's fstat() from
 * READ_FILE_CHECK on, also on failure; `step` (optional) is set on failure.
 * The ret_* outputs are not written on failure.
 */
int read_regular_file(const char *path, size_t max, unsigned flags, char **ret_data, size_t *ret_len,
                      struct stat *st, ReadFileStep *step);

/* The same with `path` relative to the directory `dir_fd` (AT_FDCWD: the
 * working directory): a caller that has checked a directory it opened
 * reads from that very directory, whatever is renamed meanwhile. */
int read_regular_file_at(int dir_fd, const char *path, size_t max, unsigned flags, char **ret_data,
                         size_t *ret_len, struct stat *st, ReadFileStep *step);
