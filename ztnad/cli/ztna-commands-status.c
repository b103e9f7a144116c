/* SPDX-License-Identifier: MIT */
/*
 * ztna: the commands that show: status (ztnad, the store, the DNS
 * manager's report) and dns list.
 */

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/ztna-internal.h"
#include "common/read-file.h"
#include "common/time-util.h"
#include "control/control-protocol.h"
#include "macro.h"

static void print_store_text(const json_t *st) {
        uint64_t now = clock_now_usec(CLOCK_REALTIME);
        size_t i;
        json_t *r;

        /* The layout of the store-only command this replaced; scripts
         * grep "state: *up". */
        printf("store:      %s\n", json_string_value(json_object_get(st, "path")));
        printf("state:      %s\n", json_string_value(json_object_get(st, "state")));
        printf("generation: %" JSON_INTEGER_FORMAT "\n", json_integer_value(json_object_get(st, "generation")));
        printf("domain:     %s\n", json_string_value(json_object_get(st, "domain")));
        fputs("ranges:    ", stdout);
        json_array_foreach(json_object_get(st, "ranges"), i, r)
                printf(" %s", json_string_value(r));
        printf("\nrecords:    %" JSON_INTEGER_FORMAT "\n", json_integer_value(json_object_get(st, "records")));
        printf("published:  %s (%" PRIu64 " s ago)\n", json_string_value(json_object_get(st, "published")),
               ztna_age_sec((uint64_t) json_integer_value(json_object_get(st, "published_usec")), now));
        printf("heartbeat:  %" JSON_INTEGER_FORMAT " s ago\n",
               json_integer_value(json_object_get(st, "heartbeat_age_sec")));
        printf("file size:  %" JSON_INTEGER_FORMAT " bytes\n", json_integer_value(json_object_get(st, "file_size")));
}

/* What the root DNS manager last did (ztnad --dns-manager writes it next
 * to the store): mode, link, servers, domains, state, error. Always an
 * object, so a reader of --json finds the key. */
#define DNS_MANAGER_STATUS_MAX 65536
static json_t *dns_manager_status(const char *store) {
        const char *slash = strrchr(store, '/');
        char path[PATH_MAX], *buf = NULL;
        json_t *o = NULL;
        size_t len = 0;

        /* The shared reader (not fopen(), which a FIFO in its place would
         * block); under DNS_MANAGER_STATUS_MAX bytes, as before. */
        if (slash && snprintf(path, sizeof path, "%.*s/dns-manager.json", (int) (slash - store), store) <
                             (int) sizeof path &&
            read_regular_file(path, DNS_MANAGER_STATUS_MAX - 1, 0, &buf, &len, NULL, NULL) >= 0) {
                o = json_loadb(buf, len, 0, NULL);
                free(buf);
        }
        if (!json_is_object(o)) {
                json_decref(o);
                o = json_pack("{s:n, s:n, s:[], s:[], s:s, s:s}", "mode", "link", "servers", "domains", "state",
                              "unknown", "error", "no report from the DNS manager (ztnad --dns-manager has not run)");
        }
        return o;
}

int ztna_cmd_status(const Args *a) {
        _cleanup_(json_decrefp) json_t *out = json_object(), *reply = NULL, *store = NULL;
        char derr[ERROR_MAX] = "", serr[ERROR_MAX] = "";
        const char *daemon_store = NULL;
        int dr = 0, sr, ret = EXIT_OK;

        if (!out)
                return ztna_failed(a, EXIT_FAILED, CONTROL_CODE_FAILED, "out of memory");
        if (!a->local) {
                json_t *req = json_pack("{s:s}", "command", "status");

                dr = req ? ztna_daemon_call(a, req, &reply, derr, sizeof derr) : -ENOMEM;
                json_decref(req);
                if (dr >= 0 && json_is_true(json_object_get(reply, "ok"))) {
                        json_t *d = json_deep_copy(reply);

                        json_object_del(d, "ok");
                        json_object_set_new(d, "reachable", json_true());
                        json_object_set_new(d, "socket", json_string(ztna_socket_path(a)));
                        json_object_set_new(out, "daemon", d);
                        /* Show the store the daemon publishes to. */
                        daemon_store = json_string_value(json_object_get(reply, "store"));
                } else {
                        if (dr >= 0) {
                                const char *msg = json_string_value(json_object_get(reply, "error"));

                                snprintf(derr, sizeof derr, "%s", msg ? msg : "no reason given");
                        }
                        json_object_set_new(out, "daemon",
                                            json_pack("{s:b, s:s, s:s}", "reachable", dr >= 0, "socket",
                                                      ztna_socket_path(a), "error", derr));
                        ret = dr < 0 ? EXIT_UNAVAILABLE
                                     : ztna_code_exit(json_string_value(json_object_get(reply, "code")));
                }
        }

        {
                Args sa = *a;

                if (!sa.store && daemon_store)
                        sa.store = daemon_store;
                sr = ztna_store_read(&sa, ztna_store_status, NULL, &store, serr, sizeof serr);
                if (sr < 0)
                        json_object_set_new(out, "store", json_pack("{s:s, s:s}", "path", ztna_store_display(&sa),
                                                                    "error", serr));
                else
                        json_object_set(out, "store", store);
                json_object_set_new(out, "dns_manager", dns_manager_status(ztna_store_display(&sa)));
        }
        /* With --local the store is all there is to report on. */
        if (a->local && sr < 0)
                ret = EXIT_UNAVAILABLE;

        if (a->json) {
                /* A failed status is still the report, with what made it
                 * fail in the fields every --json failure has. */
                if (ret != EXIT_OK) {
                        const char *code = CLIENT_CODE_STORE;
                        char msg[ERROR_MAX + 128];

                        if (a->local)
                                snprintf(msg, sizeof msg, "%s", serr);
                        else if (dr < 0) {
                                code = CLIENT_CODE_UNREACHABLE;
                                snprintf(msg, sizeof msg, "cannot reach ztnad at %s: %s", ztna_socket_path(a), derr);
                        } else {
                                code = json_string_value(json_object_get(reply, "code"));
                                snprintf(msg, sizeof msg, "%s", derr);
                        }
                        json_object_set_new(out, "ok", json_false());
                        json_object_set_new(out, "code", json_string(code ? code : CONTROL_CODE_FAILED));
                        json_object_set_new(out, "error", json_string(msg));
                }
                ztna_print_json(out);
        } else {
                json_t *d = json_object_get(out, "daemon");

                if (d && json_is_true(json_object_get(d, "reachable")) && !json_object_get(d, "error")) {
                        json_t *shown = json_deep_copy(d);

                        printf("daemon:     running, %s\n", ztna_socket_path(a));
                        json_object_del(shown, "reachable");
                        json_object_del(shown, "socket");
                        ztna_print_object_text(shown, 2, false);
                        json_decref(shown);
                } else if (d)
                        printf("daemon:     not reachable at %s: %s\n", ztna_socket_path(a), derr);
                if (sr >= 0)
                        print_store_text(store);
                printf("dns manager:\n");
                ztna_print_object_text(json_object_get(out, "dns_manager"), 2, false);
        }
        if (sr < 0)
                fprintf(stderr, "ztna: %s\n", serr);
        /* The text says so on stdout already. */
        if (!a->local && ret == EXIT_UNAVAILABLE && a->json)
                fprintf(stderr, "ztna: cannot reach ztnad at %s: %s%s\n", ztna_socket_path(a), derr,
                        sr >= 0 ? " (the store above is what lookups answer from)" : "");
        return ret;
}

static void print_peers_text(const json_t *list) {
        size_t i;
        json_t *peer;

        json_array_foreach(json_object_get(list, "peers"), i, peer) {
                const char *fqdn = json_string_value(json_object_get(peer, "fqdn"));
                size_t k;
                json_t *addr;

                fputs(fqdn ? fqdn : "?", stdout);
                json_array_foreach(json_object_get(peer, "addresses"), k, addr)
                        printf(" %s", json_string_value(addr) ? json_string_value(addr) : "?");
                if (json_is_false(json_object_get(peer, "online")))
                        fputs(" (offline)", stdout);
                putchar('\n');
        }
}

int ztna_cmd_list(const Args *a) {
        _cleanup_(json_decrefp) json_t *list = NULL;
        char err[ERROR_MAX];

        if (a->local) {
                if (ztna_store_read(a, ztna_store_list, NULL, &list, err, sizeof err) < 0)
                        return ztna_failed(a, EXIT_UNAVAILABLE, CLIENT_CODE_STORE, "%s", err);
        } else {
                _cleanup_(json_decrefp) json_t *req = json_pack("{s:s}", "command", "list");

                if (!req || ztna_daemon_call(a, req, &list, err, sizeof err) < 0)
                        return ztna_unreachable(a, req ? err : "out of memory");
                if (!json_is_true(json_object_get(list, "ok")))
                        return ztna_refused(a, list);
                json_object_del(list, "ok");
        }
        if (a->json)
                ztna_print_json(list);
        else
                print_peers_text(list);
        return EXIT_OK;
}
