/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target: arbitrary bytes as /run/ztna/dns-state, the file the
 * unprivileged daemon hands to its root helper. A refusal leaves the
 * output alone and says why in printable text; whatever is accepted names
 * only loopback servers and formats back to the very same
 * bytes (the parser knows one spelling of everything).
 */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hostdns/dns-state.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static char zones[DNS_REVERSE_ZONES_PER_PREFIX][DNS_REVERSE_ZONE_MAX];
        char why[DNS_STATE_WHY_MAX] = "", text[DNS_STATE_SIZE_MAX + 1];
        DnsState st, untouched;
        int r, n;

        memset(&st, 0xa5, sizeof st);
        untouched = st;
        r = dns_state_parse((const char *) data, size, &st, why, sizeof why);
        if (r < 0) {
                if (memcmp(&st, &untouched, sizeof st) != 0 || why[0] == '\0')
                        abort();
                for (const char *c = why; *c; c++)
                        if ((unsigned char) *c < 0x20 || (unsigned char) *c >= 0x7f)
                                abort();
                return 0;
        }
        for (size_t i = 0; i < st.n_servers; i++)
                if (!dns_state_server_usable(&st.servers[i]))
                        abort();
        n = dns_state_format(&st, text, sizeof text);
        if (n < 0 || (size_t) n != size || memcmp(text, data, size) != 0)
                abort();
        for (size_t i = 0; i < st.n_ranges; i++) {
                r = dns_reverse_zones(&st.ranges[i], zones, DNS_REVERSE_ZONES_PER_PREFIX);
                if (r < 1 || r > (int) DNS_REVERSE_ZONES_PER_PREFIX)
                        abort();
                for (int k = 0; k < r; k++)
                        if (strlen(zones[k]) >= DNS_REVERSE_ZONE_MAX || !strstr(zones[k], ".arpa"))
                                abort();
        }
        return 0;
}
