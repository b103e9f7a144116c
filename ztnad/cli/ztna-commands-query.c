/* SPDX-License-Identifier: MIT */
/*
 * ztna: dns query, answered by the first of its ways that can: the
 * control plane, ztnad, or (--local) the store.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cli/ztna-internal.h"
#include "conf/config.h"
#include "control/control-protocol.h"
#include "macro.h"
#include "sources/controlplane.h"

/*
 * dns query: the ways to answer, tried in order until one is not
 * "unavailable". Each gives the protocol's PEER object for `name`, or says
 * the tailnet has no such peer.
 *
 * A third way slots in after the daemon: the HTTPS control plane's
 * controlplane_resolve() (ztnad/sources/controlplane.h), which answers while ztnad
 * is stopped. It becomes one more QueryWay (its PEER object built from the
 * resolved addresses) listed in query_ways_default[] when the control plane
 * is configured; nothing else here changes.
 */
typedef enum QueryOutcome {
        QUERY_FOUND,
        QUERY_NOT_FOUND,
        QUERY_UNAVAILABLE, /* try the next way */
        QUERY_REFUSED,     /* final: *ret holds the refusal */
} QueryOutcome;

typedef struct QueryWay {
        const char *name; /* "daemon", "store": the "source" of a --json answer */
        QueryOutcome (*resolve)(const Args *a, const char *query, json_t **ret, char *err, size_t errlen);
} QueryWay;

static QueryOutcome query_store(const Args *a, const char *query, json_t **ret, char *err, size_t errlen) {
        json_t *j = NULL;

        if (ztna_store_read(a, ztna_store_query, query, &j, err, errlen) < 0)
                return QUERY_UNAVAILABLE;
        if (!json_is_true(json_object_get(j, "found"))) {
                snprintf(err, errlen, "%s",
                         json_is_true(json_object_get(j, "ours")) ? "no such peer in the tailnet"
                                                                   : "not a tailnet name or address");
                json_decref(j);
                return QUERY_NOT_FOUND;
        }
        if (json_is_true(json_object_get(j, "down")))
                fprintf(stderr, "ztna: note: the store is marked down; lookups of tailnet names fail until it is up\n");
        *ret = json_incref(json_object_get(j, "peer"));
        json_decref(j);
        return QUERY_FOUND;
}

static QueryOutcome query_daemon(const Args *a, const char *query, json_t **ret, char *err, size_t errlen) {
        _cleanup_(json_decrefp) json_t *req = json_pack("{s:s, s:s}", "command", "query", "name", query);
        json_t *reply = NULL;
        const char *code;

        if (!req || ztna_daemon_call(a, req, &reply, err, errlen) < 0)
                return QUERY_UNAVAILABLE;
        if (json_is_true(json_object_get(reply, "ok"))) {
                *ret = json_incref(json_object_get(reply, "peer"));
                json_decref(reply);
                if (!json_is_object(*ret)) {
                        json_decref(*ret);
                        snprintf(err, errlen, "ztnad answered without a peer");
                        return QUERY_UNAVAILABLE;
                }
                return QUERY_FOUND;
        }
        code = json_string_value(json_object_get(reply, "code"));
        if (code && strcmp(code, CONTROL_CODE_NOT_FOUND) == 0) {
                snprintf(err, errlen, "no such peer in the tailnet");
                json_decref(reply);
                return QUERY_NOT_FOUND;
        }
        *ret = reply;
        return QUERY_REFUSED;
}

static bool is_address(const char *s) {
        unsigned char buf[sizeof(struct in6_addr)];

        return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* The control plane, asked over HTTPS the way the earlier client did (the
 * guide's ST3): it answers while ztnad is stopped. Used only when ztnad.conf
 * names one, and only for names: its "resolve" has no lookup by address
 * (docs/control-plane.md), so an address goes to the daemon. Whenever it
 * cannot be asked (the configuration, the token file, the network, the
 * server), the daemon is asked instead and stderr says so; only its own
 * "no such peer" is final. */
static QueryOutcome query_controlplane(const Args *a, const char *query, json_t **ret, char *err, size_t errlen) {
        _cleanup_config_ ZtnadConfig *cfg = NULL;
        _cleanup_controlplane_answer_ ControlPlaneAnswer *ans = NULL;
        ConfigError cerr;
        bool exposed = false;

        if (is_address(query))
                return QUERY_UNAVAILABLE;
        if (config_load(a->config, &cfg, &cerr) < 0) {
                fprintf(stderr, "ztna: %s; not asking the control plane\n", cerr.message);
                return QUERY_UNAVAILABLE;
        }
        if (!cfg->control_url)
                return QUERY_UNAVAILABLE;
        ControlPlaneConfig cp = {
                .control_url = cfg->control_url,
                .org_id = cfg->org_id,
                .token_file = cfg->token_file,
                .ca_file = cfg->ca_file,
        };
        int r = controlplane_resolve(&cp, query, &ans, &exposed, err, errlen);
        if (exposed)
                fprintf(stderr, "ztna: warning: %s is readable by other users\n", cfg->token_file);
        if (r == -ENOENT)
                return QUERY_NOT_FOUND;
        if (r < 0) {
                fprintf(stderr, "ztna: control plane: %s; asking ztnad instead\n", err);
                return QUERY_UNAVAILABLE;
        }
        json_t *addrs = json_array();
        if (!addrs)
                return QUERY_UNAVAILABLE;
        for (size_t i = 0; i < ans->n_addresses; i++)
                json_array_append_new(addrs, json_string(ans->addresses[i].text));
        *ret = json_pack("{s:s, s:s, s:o}", "name", ans->name, "fqdn", ans->fqdn, "addresses", addrs);
        return *ret ? QUERY_FOUND : QUERY_UNAVAILABLE;
}

static const QueryWay query_way_store = { "store", query_store };
static const QueryWay query_way_daemon = { "daemon", query_daemon };
static const QueryWay query_way_controlplane = { "control plane", query_controlplane };
static const QueryWay *const query_ways_local[] = { &query_way_store, NULL };
static const QueryWay *const query_ways_default[] = { &query_way_controlplane, &query_way_daemon, NULL };

int ztna_cmd_query(const Args *a, const char *query) {
        const QueryWay *const *ways = a->local ? query_ways_local : query_ways_default;
        char err[ERROR_MAX] = "";
        json_t *peer = NULL;

        for (; *ways; ways++) {
                QueryOutcome o = (*ways)->resolve(a, query, &peer, err, sizeof err);
                _cleanup_(json_decrefp) json_t *out = NULL;

                if (o == QUERY_UNAVAILABLE)
                        continue;
                if (o == QUERY_REFUSED) {
                        int ret = ztna_refused(a, peer);

                        json_decref(peer);
                        return ret;
                }
                if (o == QUERY_NOT_FOUND) {
                        fprintf(stderr, "ztna: %s: %s\n", query, err);
                        if (a->json) {
                                out = json_pack("{s:s, s:b, s:s}", "query", query, "found", 0, "source",
                                                (*ways)->name);
                                if (out)
                                        ztna_print_json(out);
                        }
                        return EXIT_NOT_FOUND;
                }

                if (a->json) {
                        out = json_pack("{s:s, s:b, s:o, s:s}", "query", query, "found", 1, "peer", peer, "source",
                                        (*ways)->name);
                        if (!out)
                                return ztna_failed(a, EXIT_FAILED, CONTROL_CODE_FAILED, "out of memory");
                        ztna_print_json(out);
                        return EXIT_OK;
                }
                {
                        const char *fqdn = json_string_value(json_object_get(peer, "fqdn"));
                        json_t *addresses = json_object_get(peer, "addresses"), *addr;
                        size_t i;

                        if (!fqdn)
                                fqdn = "?";
                        if (is_address(query))
                                printf("%s -> %s\n", query, fqdn);
                        else if (json_array_size(addresses) == 0)
                                fprintf(stderr, "%s has no addresses\n", fqdn);
                        else
                                /* One line per address, the form the earlier
                                 * client printed. */
                                json_array_foreach(addresses, i, addr)
                                        printf("%s -> %s\n", fqdn, json_string_value(addr));
                }
                json_decref(peer);
                return EXIT_OK;
        }
        /* Every way was unavailable; `err` is the last one's reason. */
        if (a->local)
                return ztna_failed(a, EXIT_UNAVAILABLE, CLIENT_CODE_STORE, "%s", err);
        return ztna_unreachable(a, err);
}
