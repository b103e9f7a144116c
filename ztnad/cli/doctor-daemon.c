/* SPDX-License-Identifier: MIT */
/*
 * The daemon layer of `ztna doctor`: does ztnad.conf load, does ztnad
 * answer on its control socket, and what its status says of its map
 * and of each source that feeds it.
 */

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/doctor-internal.h"
#include "common/time-util.h"

const char *doctor_published_from(const Doctor *d) {
        return d->status ? json_string_value(json_object_get(d->status, "published_from")) : NULL;
}

static void check_config_file(Doctor *d) {
        Finding *f;

        if (d->config_r >= 0)
                return;
        f = doctor_add(d, LAYER_DAEMON, LEVEL_FAIL, "daemon-config", "%s", d->cerr.message);
        finding_why(f, "ztnad refuses to start with this configuration (exit 78) "
                       "and a running one ignores it on reload");
        if (d->cerr.line)
                finding_fix(f, "edit %s line %u%s%s%s, then: ztnad --check-config%s%s && systemctl restart ztnad",
                            d->cerr.file, d->cerr.line, d->cerr.key[0] ? " (key '" : "", d->cerr.key,
                            d->cerr.key[0] ? "')" : "", d->o->config ? " -c " : "", d->o->config ? d->o->config : "");
        else
                finding_fix(f, "edit %s, then: ztnad --check-config%s%s && systemctl restart ztnad", d->cerr.file,
                            d->o->config ? " -c " : "", d->o->config ? d->o->config : "");
}

static uint64_t parse_time_age(const char *iso, uint64_t now) {
        struct tm tm = {};
        const char *end;
        time_t t;

        if (!iso)
                return UINT64_MAX;
        end = strptime(iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
        if (!end || *end)
                return UINT64_MAX;
        t = timegm(&tm);
        return (uint64_t) t * USEC_PER_SEC < now ? (now - (uint64_t) t * USEC_PER_SEC) / USEC_PER_SEC : 0;
}

static void check_sources(Doctor *d) {
        json_t *sources = json_object_get(d->status, "sources"), *s;
        uint64_t now = clock_now_usec(CLOCK_REALTIME);
        size_t i;

        json_array_foreach(sources, i, s) {
                const char *name = json_string_value(json_object_get(s, "name"));
                const char *detail = json_string_value(json_object_get(s, "detail"));
                const char *error = json_string_value(json_object_get(s, "last_error"));
                const char *sync = json_string_value(json_object_get(s, "sync_error"));
                const char *last = json_string_value(json_object_get(s, "last_success"));
                Finding *f;

                if (!name)
                        continue;
                if (strcmp(name, "control plane") == 0 && (sync || error)) {
                        const char *msg = sync ? sync : error;
                        bool token = strstr(msg, "token") != NULL;

                        f = doctor_add(d, LAYER_DAEMON, LEVEL_WARN,
                                       token ? "daemon-token-refused" : "daemon-sync-failing",
                                       "control plane %s: %s", detail ? detail : "", msg);
                        finding_why(f, "no new map arrives: lookups answer from the last good one (synced %s)",
                                    last ? last : "never");
                        if (token)
                                finding_fix(f, "write the organisation's current token to %s (mode 0600), then: "
                                               "systemctl reload ztnad",
                                            d->cfg && d->cfg->token_file ? d->cfg->token_file : "the token file");
                        else
                                finding_fix(f, "check that %s is reachable: curl -sS -o /dev/null %s",
                                            detail ? detail : "the control plane", detail ? detail : "");
                        continue;
                }
                if (error) {
                        f = doctor_add(d, LAYER_DAEMON, LEVEL_WARN,
                                       strcmp(name, "peers file") == 0 ? "daemon-peers-rejected"
                                                                       : "daemon-source-error",
                                       "%s%s%s: %s", name, detail ? " " : "", detail ? detail : "", error);
                        finding_why(f, "that update was not published: lookups answer from the last good map");
                        if (strcmp(name, "peers file") == 0 && detail)
                                finding_fix(f, "correct %s where the error says; ztnad publishes it when it is saved",
                                            detail);
                        else
                                finding_fix(f, "send a valid peers document again: ztna peers push FILE");
                        continue;
                }
                if (strcmp(name, "control plane") == 0 && d->cfg) {
                        uint64_t age = parse_time_age(last, now);
                        uint64_t limit = 3 * d->cfg->sync_interval_usec / USEC_PER_SEC;

                        if (limit < 90)
                                limit = 90;
                        if (age != UINT64_MAX && age > limit) {
                                f = doctor_add(d, LAYER_DAEMON, LEVEL_WARN, "daemon-sync-stale",
                                               "control plane: last good sync %" PRIu64 " s ago", age);
                                finding_why(f, "the map may be out of date");
                                finding_fix(f, "ztna status");
                        }
                }
        }
}

void doctor_check_daemon(Doctor *d) {
        const char *state;
        Finding *f;

        check_config_file(d);
        if (!doctor_daemon_reachable(d)) {
                if (d->config_r < 0)
                        return; /* the configuration says why it does not run */
                f = doctor_add(d, LAYER_DAEMON, LEVEL_FAIL, "daemon-stopped", "ztnad is not reachable at %s: %s",
                               d->o->socket, d->daemon_err);
                finding_why(f, "ztnad is not running: "
                               "the store is not kept up to date and the DNS stub does not answer");
                doctor_restart_command(d, "start", f->fix, sizeof f->fix);
                return;
        }
        state = json_string_value(json_object_get(d->status, "state"));
        if (state && strcmp(state, "no map") == 0) {
                f = doctor_add(d, LAYER_DAEMON, LEVEL_FAIL, "daemon-no-map", "ztnad runs but has published no map yet");
                finding_why(f, "no source gave it a valid map: see its sources in 'ztna status'");
                finding_fix(f, "ztna status");
        }
        check_sources(d);
        doctor_add(d, LAYER_DAEMON, LEVEL_OK, "daemon-ok", "ztnad %s (pid %" JSON_INTEGER_FORMAT "), state %s, generation %" JSON_INTEGER_FORMAT ", from %s",
                   json_string_value(json_object_get(d->status, "version")) ?: "?",
                   json_integer_value(json_object_get(d->status, "pid")), state ? state : "?",
                   json_integer_value(json_object_get(d->status, "generation")),
                   doctor_published_from(d) ?: "nothing yet");
}
