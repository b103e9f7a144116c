/* SPDX-License-Identifier: MIT */
/*
 * `ztna doctor [NAME]`: checks each layer a lookup travels, in its order,
 * prints one line per layer (ok / warn / FAIL and what was measured), and
 * ends with the first failing layer, why, and the command that fixes it
 * (docs/doctor.md, ztna(1)).
 *
 * This file is the driver: it loads the configuration, asks ztnad for its
 * status, runs the layers (each in a file of its own, doctor-internal.h),
 * keeps their findings, judges across layers and prints the report, as
 * text or JSON, with the exit code.
 *
 * Every check is bounded (no check waits longer than its own timeout) and
 * runs unprivileged where it can; what needs root and was not checked is
 * said, never counted as healthy or as failed.
 *
 * The layers run in lookup order but are judged together: the store a
 * stopped ztnad left behind still answers, so with ztnad down the store is
 * not what failed, and a store never published because ztnad cannot start
 * takes the daemon's fix.
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/doctor-internal.h"
#include "common/time-util.h"

/* ---- findings ---- */

static const char *const level_text[] = {
        [LEVEL_OK] = "ok",
        [LEVEL_SKIP] = "skip",
        [LEVEL_WARN] = "warn",
        [LEVEL_FAIL] = "FAIL",
};

static const char *const level_json[] = {
        [LEVEL_OK] = "ok",
        [LEVEL_SKIP] = "skip",
        [LEVEL_WARN] = "warn",
        [LEVEL_FAIL] = "fail",
};

static const char *const layer_names[_LAYER_MAX] = {
        [LAYER_NSSWITCH] = "nsswitch",
        [LAYER_STORE] = "store",
        [LAYER_DAEMON] = "daemon",
        [LAYER_SYSDNS] = "system-dns",
        [LAYER_STUB] = "stub",
        [LAYER_UPSTREAM] = "upstream",
        [LAYER_CACHES] = "caches",
        [LAYER_AGREEMENT] = "agreement",
};

static Level layer_level(const Layer *l) {
        Level worst = LEVEL_OK;

        for (size_t i = 0; i < l->n; i++)
                if (l->findings[i].level > worst)
                        worst = l->findings[i].level;
        return worst;
}

/* The finding a layer's line shows: its worst, the first of those. */
static const Finding *layer_headline(const Layer *l) {
        Level worst = layer_level(l);

        for (size_t i = 0; i < l->n; i++)
                if (l->findings[i].level == worst)
                        return &l->findings[i];
        return NULL;
}

static const Finding *layer_failure(const Doctor *d, LayerId id) {
        const Layer *l = &d->layers[id];

        for (size_t i = 0; i < l->n; i++)
                if (l->findings[i].level == LEVEL_FAIL)
                        return &l->findings[i];
        return NULL;
}

/* ---- judging across layers ---- */

/* A store that is missing because ztnad cannot run takes ztnad's fix. */
static void cross_link(Doctor *d) {
        Layer *s = &d->layers[LAYER_STORE];
        const Finding *df = layer_failure(d, LAYER_DAEMON);

        if (!df)
                return;
        for (size_t i = 0; i < s->n; i++) {
                Finding *f = &s->findings[i];

                if (strcmp(f->id, "store-missing") == 0) {
                        snprintf(f->fix, sizeof f->fix, "%s", df->fix);
                        snprintf(f->why + strlen(f->why), sizeof f->why - strlen(f->why),
                                 " (ztnad: %s)", df->measured);
                }
        }
}

/* ---- output ---- */

static json_t *finding_json(const Finding *f) {
        return json_pack("{s:s, s:s, s:s, s:s?, s:s?}", "id", f->id, "status", level_json[f->level], "measured",
                         f->measured, "why", f->why[0] ? f->why : NULL, "fix", f->fix[0] ? f->fix : NULL);
}

static int report(Doctor *d) {
        const Finding *first = NULL;
        LayerId first_layer = _LAYER_MAX;
        Level overall = LEVEL_OK;
        uint64_t elapsed_ms = (clock_now_usec(CLOCK_MONOTONIC) - d->start_usec) / USEC_PER_MSEC;
        int ret;

        /* The first failure in lookup order, else the first warning. */
        for (Level want = LEVEL_FAIL; want >= LEVEL_WARN && !first; want--)
                for (LayerId l = 0; l < _LAYER_MAX && !first; l++)
                        for (size_t i = 0; i < d->layers[l].n; i++)
                                if (d->layers[l].findings[i].level == want) {
                                        first = &d->layers[l].findings[i];
                                        first_layer = l;
                                        break;
                                }
        for (LayerId l = 0; l < _LAYER_MAX; l++)
                if (layer_level(&d->layers[l]) > overall)
                        overall = layer_level(&d->layers[l]);
        ret = overall == LEVEL_FAIL ? DOCTOR_EXIT_BROKEN : overall == LEVEL_WARN ? DOCTOR_EXIT_DEGRADED : DOCTOR_EXIT_HEALTHY;
        const char *verdict = ret == DOCTOR_EXIT_BROKEN ? "broken" : ret == DOCTOR_EXIT_DEGRADED ? "degraded" : "healthy";

        if (d->o->json) {
                json_t *out = json_object(), *layers = json_array();

                for (LayerId l = 0; l < _LAYER_MAX; l++) {
                        json_t *findings = json_array();

                        for (size_t i = 0; i < d->layers[l].n; i++)
                                json_array_append_new(findings, finding_json(&d->layers[l].findings[i]));
                        json_array_append_new(layers, json_pack("{s:s, s:s, s:o}", "layer", layer_names[l], "status",
                                                                level_json[layer_level(&d->layers[l])], "findings",
                                                                findings));
                }
                json_object_set_new(out, "status", json_string(verdict));
                json_object_set_new(out, "exit", json_integer(ret));
                json_object_set_new(out, "name", d->o->name ? json_string(d->o->name) : json_null());
                json_object_set_new(out, "layers", layers);
                if (first) {
                        json_t *ff = finding_json(first);

                        json_object_set_new(ff, "layer", json_string(layer_names[first_layer]));
                        json_object_set_new(out, "first", ff);
                } else
                        json_object_set_new(out, "first", json_null());
                json_object_set_new(out, "elapsed_ms", json_integer((json_int_t) elapsed_ms));
                {
                        char *text = json_dumps(out, JSON_ENCODE_ANY);

                        if (text)
                                puts(text);
                        free(text);
                }
                json_decref(out);
                return ret;
        }

        for (LayerId l = 0; l < _LAYER_MAX; l++) {
                const Layer *layer = &d->layers[l];
                const Finding *h = layer_headline(layer);

                if (!h)
                        continue;
                printf("%-4s  %-9s %s\n", level_text[h->level], layer_names[l], h->measured);
                for (size_t i = 0; i < layer->n; i++) {
                        const Finding *f = &layer->findings[i];

                        if (f != h && f->level != LEVEL_OK)
                                printf("%-4s  %-9s %s\n", level_text[f->level], "", f->measured);
                }
        }
        if (first) {
                printf("\n%s: %s: %s\n", verdict, layer_names[first_layer], first->why);
                if (first->fix[0])
                        printf("fix: %s\n", first->fix);
        } else
                printf("\nhealthy: every layer checked is ok (%" PRIu64 " ms)\n", elapsed_ms);
        return ret;
}

/* ---- the run ---- */

static void find_store_path(Doctor *d) {
        const char *e;

        /* The path every process's module reads: what lookups see. */
        if (d->o->store)
                snprintf(d->store_path, sizeof d->store_path, "%s", d->o->store);
        else if ((e = secure_getenv(SHM_ENV_PATH)) && e[0] == '/')
                snprintf(d->store_path, sizeof d->store_path, "%s", e);
        else
                snprintf(d->store_path, sizeof d->store_path, "%s", SHM_DEFAULT_PATH);
}

int doctor_run(const DoctorOptions *o) {
        Doctor d = { .o = o, .start_usec = clock_now_usec(CLOCK_MONOTONIC) };
        json_t *reply = NULL;
        int r;

        d.config_path = o->config ? o->config : CONFIG_DEFAULT_PATH;
        d.config_r = config_load(o->config, &d.cfg, &d.cerr);
        find_store_path(&d);

        r = o->daemon_call(o->userdata, "status", &reply, d.daemon_err, sizeof d.daemon_err);
        if (r >= 0 && json_is_true(json_object_get(reply, "ok")))
                d.status = reply;
        else {
                if (r >= 0)
                        snprintf(d.daemon_err, sizeof d.daemon_err, "%s",
                                 json_string_value(json_object_get(reply, "error")) ?: "refused");
                json_decref(reply);
        }

        /* The store first: its domain tells the nsswitch check whether the
         * tailnet is under .local. Reported in lookup order all the same. */
        doctor_check_store(&d);
        doctor_check_nsswitch(&d);
        doctor_check_daemon(&d);
        doctor_check_system_dns(&d);
        doctor_check_stub(&d);
        doctor_check_upstream(&d);
        doctor_check_caches(&d);
        doctor_check_agreement(&d);
        cross_link(&d);

        r = report(&d);
        json_decref(d.status);
        config_free(d.cfg);
        return r;
}
