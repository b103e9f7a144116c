/* SPDX-License-Identifier: MIT */
/*
 * The public suffix list through libpsl. See public-suffix.h.
 */

#include <errno.h>
#include <libpsl.h>
#include <stdlib.h>
#include <string.h>

#include "macro.h"
#include "conf/public-suffix.h"
#include "shm-format.h"

static psl_ctx_t *list;

int public_suffix_check(const char *name, size_t len) {
        char lower[SHM_DOMAIN_MAX + 1];

        /* Longer than any domain the callers accept: no suffix either. */
        if (len > SHM_DOMAIN_MAX)
                return 0;
        if (!list) {
                /* NULL: the distribution's file (PSL_DISTFILE, Debian's
                 * publicsuffix), or the built-in list when that is newer. */
                list = psl_latest(NULL);
                if (!list)
                        return -ENOENT;
        }
        /* libpsl matches lower-case names only. */
        for (size_t i = 0; i < len; i++)
                lower[i] = ascii_tolower(name[i]);
        lower[len] = '\0';
        return psl_is_public_suffix2(list, lower, PSL_TYPE_ANY) ? 1 : 0;
}
