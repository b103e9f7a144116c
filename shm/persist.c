/* SPDX-License-Identifier: MIT */
/*
 * Files written whole and renamed into place: the persisted copy of the
 * store (docs/store-fallback.md) and the leftovers of a writer killed
 * before its rename.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "macro.h"
#include "shm.h"

#define TEMP_SUFFIX_LEN 6u /* mkostemp()'s XXXXXX */

/* "dir" and "base" of `path` ("." for a bare name). */
static char *dir_of(const char *path, const char **ret_base) {
        const char *slash = strrchr(path, '/');
        *ret_base = slash ? slash + 1 : path;
        return slash ? strndup(path, slash == path ? 1 : (size_t) (slash - path)) : strdup(".");
}

void shm_store_remove_leftovers(const char *path) {
        const char *base;
        _cleanup_free_ char *dir = dir_of(path, &base);
        size_t bl = strlen(base);
        if (!dir)
                return;
        DIR *d = opendir(dir);
        if (!d)
                return;
        for (struct dirent *de; (de = readdir(d));)
                if (strlen(de->d_name) == bl + 1 + TEMP_SUFFIX_LEN && strncmp(de->d_name, base, bl) == 0 &&
                    de->d_name[bl] == '.' &&
                    strspn(de->d_name + bl + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789") ==
                            TEMP_SUFFIX_LEN)
                        (void) unlinkat(dirfd(d), de->d_name, 0);
        closedir(d);
}

int shm_store_save(const char *path, const void *data, size_t len) {
        const char *base;
        _cleanup_free_ char *dir = dir_of(path, &base), *tmp = NULL;
        _cleanup_close_ int fd = -1, dfd = -1;
        int r;

        if (!dir || asprintf(&tmp, "%s.XXXXXX", path) < 0)
                return -ENOMEM;
        fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        for (size_t n = 0; n < len;) {
                ssize_t k = write(fd, (const char *) data + n, len - n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k < 0) {
                        r = -errno;
                        goto fail;
                }
                n += (size_t) k;
        }
        /* 0644 whatever the umask: every process reads it. The data reach
         * the disk before the rename can, so a power cut leaves the old
         * copy or the new one, never an empty file at the path. */
        if (fchmod(fd, 0644) < 0 || fsync(fd) < 0 || rename(tmp, path) < 0) {
                r = -errno;
                goto fail;
        }
        dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0 || fsync(dfd) < 0)
                return -errno; /* renamed, but the rename may not survive a power cut */
        return 0;
fail:
        (void) unlink(tmp);
        return r;
}
