/* SPDX-License-Identifier: MIT */
/* The protocol's PEER object, made from a store record (see control-protocol.h):
 * the one copy ztnad's list and query replies and ztna's direct reads of
 * the store use. */

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "control/control-protocol.h"
#include "shm-format.h"

json_t *control_json_text(const char *s, size_t len) {
        char buf[SHM_LABEL_MAX + 1 + SHM_DOMAIN_MAX + 1];
        size_t n = len < sizeof buf - 1 ? len : sizeof buf - 1;

        for (size_t i = 0; i < n; i++)
                buf[i] = (unsigned char) s[i] >= 0x20 && (unsigned char) s[i] < 0x7f ? s[i] : '?';
        return json_stringn(buf, n);
}

json_t *control_peer_json(const ShmSnapshot *s, const ShmRecordView *v) {
        char fqdn[SHM_LABEL_MAX + 1 + SHM_DOMAIN_MAX + 1], text[INET6_ADDRSTRLEN];
        json_t *addresses = json_array();
        int n;

        n = snprintf(fqdn, sizeof fqdn, "%.*s.%.*s", (int) v->name_len, v->name, (int) s->domain_len, s->domain);
        if (n < 0 || !addresses)
                return json_decref(addresses), NULL;
        for (size_t i = 0; i < v->n_v4 + v->n_v6; i++) {
                bool v4 = i < v->n_v4;
                const uint8_t *b = v4 ? v->v4 + i * 4 : v->v6 + (i - v->n_v4) * 16;

                if (inet_ntop(v4 ? AF_INET : AF_INET6, b, text, sizeof text))
                        json_array_append_new(addresses, json_string(text));
        }
        return json_pack("{s:o, s:o, s:b, s:I, s:o}", "name", control_json_text(v->name, v->name_len), "fqdn",
                         control_json_text(fqdn, strlen(fqdn)), "online", v->online, "ttl", (json_int_t) v->ttl,
                         "addresses", addresses);
}
