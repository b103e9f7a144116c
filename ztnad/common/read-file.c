/* SPDX-License-Identifier: MIT */
/* The bounded regular-file reader (see read-file.h). */

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/read-file.h"
#include "macro.h"

static int failed(ReadFileStep s, ReadFileStep *step, int r) {
        if (step)
                *step = s;
        return r;
}

static void wipe_free(char *buf, size_t size, unsigned flags) {
        if (buf && (flags & READ_FILE_SECRET))
                explicit_bzero(buf, size);
        free(buf);
}

int read_regular_file(const char *path, size_t max, unsigned flags, char **ret_data, size_t *ret_len,
                      struct stat *st, ReadFileStep *step) {
        return read_regular_file_at(AT_FDCWD, path, max, flags, ret_data, ret_len, st, step);
}

int read_regular_file_at(int dir_fd, const char *path, size_t max, unsigned flags, char **ret_data,
                         size_t *ret_len, struct stat *st, ReadFileStep *step) {
        _cleanup_close_ int fd = -1;
        struct stat s;
        size_t size, len = 0;
        char *buf;
        int oflags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;

        if (flags & READ_FILE_NOFOLLOW)
                oflags |= O_NOFOLLOW;
        fd = openat(dir_fd, path, oflags);
        if (fd < 0)
                return failed(READ_FILE_OPEN, step, -errno);
        if (fstat(fd, &s) < 0)
                return failed(READ_FILE_STAT, step, -errno);
        if (st)
                *st = s;
        if (!S_ISREG(s.st_mode))
                return failed(READ_FILE_CHECK, step, -EINVAL);
        if ((uintmax_t) s.st_size > max)
                return failed(READ_FILE_CHECK, step, -EFBIG);

        /* The size fstat() gave plus one byte, to notice a file still
         * growing, plus the NUL. */
        size = (size_t) s.st_size;
        buf = malloc(size + 2);
        if (!buf)
                return failed(READ_FILE_READ, step, -ENOMEM);
        while (len < size + 1) {
                ssize_t n = read(fd, buf + len, size + 1 - len);

                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        int r = -errno;
                        wipe_free(buf, size + 2, flags);
                        return failed(READ_FILE_READ, step, r);
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        if (len > size) {
                wipe_free(buf, size + 2, flags);
                return failed(READ_FILE_READ, step, -EAGAIN);
        }
        buf[len] = '\0';
        *ret_data = buf;
        *ret_len = len;
        return 0;
}
