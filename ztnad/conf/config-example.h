/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The shipped examples/ztnad.conf, written from the key table: every key
 * commented out at its default, each under its one-line description.
 * test-config holds the file to it (and prints it when they differ, to be
 * written anew); no program needs it, so it lives here, not in ztnad.
 */

#include <stdio.h>

#include "conf/config.h"
#include "conf/config-keys.h"

static inline void config_print_example(FILE *f) {
        fputs("# " CONFIG_DEFAULT_PATH ": ztnad's configuration, see ztnad.conf(5).\n"
              "#\n"
              "# Every key is shown commented out at its default: uncomment a line to\n"
              "# change it, under its own section. A line that starts with '#' or ';'\n"
              "# is a comment; a '#' after a value is part of the value.\n"
              "# \"ztnad --check-config\" prints the configuration in effect. SIGHUP\n"
              "# reloads this file; a file with an error changes nothing.\n",
              f);
        for (int s = 0; s < _SECTION_MAX; s++) {
                fprintf(f, "\n[%s]\n", config_section_names[s]);
                for (size_t i = 0; i < config_n_keys; i++) {
                        if (config_keys[i].section != (Section) s)
                                continue;
                        fprintf(f, "\n# %s\n#%s =%s%s\n", config_keys[i].description, config_keys[i].name,
                                config_keys[i].def[0] ? " " : "", config_keys[i].def);
                }
        }
}
