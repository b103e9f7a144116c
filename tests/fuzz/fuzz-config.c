/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: arbitrary bytes as ztnad.conf. A refusal must come with
 * a one-line printable message that names the source; whatever is accepted
 * must print as a file that parses back to an equal configuration and
 * prints the same again, which is what `ztnad --check-config` promises.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char *print(const ZtnadConfig *c, size_t *ret_len) {
        char *text = NULL;
        FILE *f = open_memstream(&text, ret_len);

        if (!f)
                abort();
        config_print(c, f);
        if (fclose(f) != 0)
                abort();
        return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        ZtnadConfig *c = NULL, *again = NULL;
        ConfigError err;
        char *first, *second;
        size_t first_len, second_len;
        int r;

        r = config_parse((const char *) data, size, "fuzz.conf", &c, &err);
        if (r < 0) {
                if (c)
                        abort();
                if (strncmp(err.message, "fuzz.conf:", 10) != 0)
                        abort();
                for (const char *s = err.message; *s; s++)
                        if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f)
                                abort();
                return 0;
        }

        first = print(c, &first_len);
        r = config_parse(first, first_len, "printed", &again, &err);
        if (r < 0) {
                fprintf(stderr, "printed configuration refused: %s\n%s", err.message, first);
                abort();
        }
        char differ[256];
        size_t n = SIZE_MAX;
        (void) config_diff(c, again, differ, sizeof differ, &n);
        if (n != 0) {
                fprintf(stderr, "printed configuration reads back different (%s):\n%s", differ, first);
                abort();
        }
        second = print(again, &second_len);
        if (first_len != second_len || memcmp(first, second, first_len) != 0)
                abort();

        free(first);
        free(second);
        config_free(again);
        config_free(c);
        return 0;
}
