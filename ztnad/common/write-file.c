/* SPDX-License-Identifier: MIT */
/*
 * Replacing a file whole (see write-file.h).
 */

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/write-file.h"
#include "macro.h"

int write_file_atomic(const char *path, const char *infix, const void *data, size_t len, mode_t mode,
                      unsigned flags) {
        _cleanup_free_ char *tmp = NULL, *dir = NULL;
        _cleanup_close_ int fd = -1;
        const char *bytes = data;
        int r;

        if (asprintf(&tmp, "%s%sXXXXXX", path, infix) < 0)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        for (size_t n = 0; n < len;) {
                ssize_t k = write(fd, bytes + n, len - n);

                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = -errno;
                        goto fail;
                }
                n += (size_t) k;
        }
        if (fchmod(fd, mode) < 0 || ((flags & WRITE_FILE_SYNC) && fsync(fd) < 0) || rename(tmp, path) < 0) {
                r = -errno;
                goto fail;
        }
        if (flags & WRITE_FILE_SYNC_DIR) {
                const char *slash = strrchr(path, '/');
                _cleanup_close_ int dfd = -1;

                dir = slash ? strndup(path, slash == path ? 1 : (size_t) (slash - path)) : strdup(".");
                if (dir)
                        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                if (dfd >= 0)
                        (void) fsync(dfd);
        }
        return 0;
fail:
        (void) unlink(tmp);
        return r;
}
