/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: arbitrary bytes as /etc/nsswitch.conf (and, from the
 * same bytes, as /etc/mdns.allow), the files `ztna doctor` reads. A refusal
 * must come with a one-line printable message; an accepted hosts line must
 * print as a line that parses back to the same services; and whenever the
 * doctor finds ztna misplaced, the corrected line it prints must parse and
 * be judged right.
 */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/doctor.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void printable(const char *s) {
        for (; *s; s++)
                if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f)
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const domains[] = { "yourorg.zt.net", "corp.local", NULL };
        char err[NSS_ERROR_MAX], line[8192], again_line[8192], text[8200], detail[256], fixed[8192];
        NssHosts h, again;
        const char *domain = domains[size ? data[0] % 3 : 0];
        bool allowed = nss_mdns_allow_matches((const char *) data, size, domain);

        if (nss_parse_hosts((const char *) data, size, &h, err, sizeof err) < 0) {
                printable(err);
                return 0;
        }
        if (!h.found)
                nss_hosts_default(&h);
        nss_hosts_format(&h, line, sizeof line);
        printable(line);
        snprintf(text, sizeof text, "hosts: %s\n", line);
        if (nss_parse_hosts(text, strlen(text), &again, err, sizeof err) < 0) {
                fprintf(stderr, "printed line refused: %s\n%s", err, text);
                abort();
        }
        nss_hosts_format(&again, again_line, sizeof again_line);
        if (strcmp(line, again_line) != 0 || again.n != h.n)
                abort();
        for (size_t i = 0; i < h.n; i++)
                if (memcmp(h.services[i].action, again.services[i].action, sizeof h.services[i].action) != 0)
                        abort();

        if (nss_judge(&h, domain, allowed, detail, sizeof detail, fixed, sizeof fixed) == NSS_VERDICT_OK)
                return 0;
        printable(detail);
        snprintf(text, sizeof text, "hosts: %s\n", fixed);
        if (nss_parse_hosts(text, strlen(text), &again, err, sizeof err) < 0)
                abort();
        if (nss_judge(&again, domain, allowed, detail, sizeof detail, fixed, sizeof fixed) != NSS_VERDICT_OK) {
                fprintf(stderr, "the fix is judged wrong again: %s", text);
                abort();
        }
        return 0;
}
