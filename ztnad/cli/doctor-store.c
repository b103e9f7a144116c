/* SPDX-License-Identifier: MIT */
/*
 * The store layer of `ztna doctor`: the record store the NSS module
 * reads, as the module would judge it (trusted, of this version, not
 * retired, not down, its heartbeat fresh), against the configuration
 * that should have published it, and the followed name as it answers.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "cli/doctor-internal.h"
#include "common/time-util.h"
#include "macro.h"
#include "shm.h"
#include "sources/peers.h"

/* ztnad beats every 5 s (ztnad/daemon/ztnad.c); three missed beats is stale. */
#define HEARTBEAT_STALE_SEC 15u

static void reader_freep(ShmReader **r) {
        shm_reader_free(*r);
}

typedef struct StoreView {
        uint64_t generation, published_usec, heartbeat_usec;
        uint32_t n_records;
        bool down;
        char domain[SHM_DOMAIN_MAX + 1];
        size_t n_ranges;
        ShmWireRange ranges[SHM_RANGES_MAX];
        /* NAME (or the first peer) as the store answers it */
        ShmClass name_class;
        char name[SHM_LABEL_MAX + 2 + SHM_DOMAIN_MAX];
        char name_answer[INET6_ADDRSTRLEN];
} StoreView;

/* NAME's class in the snapshot, and its first address; without NAME, the
 * first peer with an address. Only reads the snapshot. */
static void view_name(const ShmSnapshot *s, const char *name, StoreView *v) {
        ShmRecordView r;

        v->name_class = SHM_NOT_OURS;
        if (name) {
                snprintf(v->name, sizeof v->name, "%s", name);
                v->name_class = shm_snapshot_lookup_name(s, name, &r);
        } else
                for (uint32_t i = 0; i < s->n_records && i < 64; i++)
                        if (shm_snapshot_record(s, i, &r) && r.n_v4 + r.n_v6 > 0) {
                                snprintf(v->name, sizeof v->name, "%.*s.%.*s", (int) r.name_len, r.name,
                                         (int) s->domain_len, s->domain);
                                v->name_class = SHM_FOUND;
                                break;
                        }
        if (v->name_class != SHM_FOUND)
                return;
        if (r.n_v4)
                inet_ntop(AF_INET, r.v4, v->name_answer, sizeof v->name_answer);
        else if (r.n_v6)
                inet_ntop(AF_INET6, r.v6, v->name_answer, sizeof v->name_answer);
}

typedef struct StoreViewCall {
        const char *name;
        StoreView v;
} StoreViewCall;

static int store_view_call(const ShmSnapshot *s, void *userdata) {
        StoreViewCall *c = userdata;
        StoreView *v = &c->v;

        *v = (StoreView) {};
        v->generation = s->generation;
        v->published_usec = s->published_usec;
        v->heartbeat_usec = s->heartbeat_usec;
        v->n_records = s->n_records;
        v->down = shm_snapshot_down(s);
        memcpy(v->domain, s->domain, s->domain_len);
        v->domain[s->domain_len] = '\0';
        v->n_ranges = s->n_ranges;
        memcpy(v->ranges, s->ranges, s->n_ranges * sizeof(ShmWireRange));
        view_name(s, c->name, v);
        return 0;
}

static int store_view(const char *path, const char *name, StoreView *ret) {
        _cleanup_(reader_freep) ShmReader *r = NULL;
        StoreViewCall c = { .name = name };
        int k = shm_reader_new(path, &r);

        if (k < 0)
                return k;
        /* The store's one retry policy for a read torn by a publish. */
        k = shm_snapshot_read(r, store_view_call, NULL, &c);
        if (k < 0)
                return k;
        *ret = c.v;
        return 0;
}

static void format_ranges(const ShmWireRange *r, size_t n, char *buf, size_t size) {
        buf[0] = '\0';
        for (size_t i = 0; i < n; i++) {
                char text[INET6_ADDRSTRLEN], one[INET6_ADDRSTRLEN + 8];
                size_t have = strlen(buf);

                if ((r[i].family != 4 && r[i].family != 6) ||
                    !inet_ntop(r[i].family == 4 ? AF_INET : AF_INET6, r[i].addr, text, sizeof text))
                        continue;
                snprintf(one, sizeof one, "%s%s/%u", i ? " " : "", text, r[i].prefixlen);
                snprintf(buf + have, size - have, "%s", one);
        }
}

static void ranges_from_map(const ShmMap *m, char *buf, size_t size) {
        ShmWireRange r[SHM_RANGES_MAX] = {};
        size_t n = m->n_ranges < SHM_RANGES_MAX ? m->n_ranges : SHM_RANGES_MAX;

        for (size_t i = 0; i < n; i++) {
                r[i].family = m->ranges[i].family == AF_INET ? 4 : 6;
                r[i].prefixlen = (uint8_t) m->ranges[i].prefixlen;
                memcpy(r[i].addr, &m->ranges[i].addr, m->ranges[i].family == AF_INET ? 4 : 16);
        }
        format_ranges(r, n, buf, size);
}

/* The store against the peers file ztnad is told to publish, when that is
 * the only source: another domain or other ranges mean the store is not
 * this configuration's. */
static void check_store_matches_config(Doctor *d, const StoreView *v) {
        _cleanup_peer_map_ PeerMap *map = NULL;
        char want[256], have[256];
        PeersError perr;
        ShmMap m;
        Finding *f;
        const char *from = doctor_published_from(d);
        bool from_file = from && strcmp(from, "peers file") == 0;

        if (!d->cfg || !d->cfg->peers_file || d->cfg->control_url)
                return;
        if (d->status && !from_file)
                return; /* a push published it: the file is not the source */
        if (peers_load_file(d->cfg->peers_file, &map, &perr) < 0)
                return; /* the daemon layer reports a rejected file */
        peer_map_to_shm(map, &m);
        if (strcasecmp(m.domain, v->domain) != 0) {
                f = doctor_add(d, LAYER_STORE, d->status ? LEVEL_FAIL : LEVEL_WARN, "store-domain",
                               "the store's domain is %s, %s says %s", v->domain, d->cfg->peers_file, m.domain);
                finding_why(f, "the store was not published from this configuration: names under %s do not resolve",
                            m.domain);
                doctor_restart_command(d, "restart", f->fix, sizeof f->fix);
                return;
        }
        ranges_from_map(&m, want, sizeof want);
        format_ranges(v->ranges, v->n_ranges, have, sizeof have);
        if (strcmp(want, have) != 0) {
                f = doctor_add(d, LAYER_STORE, d->status ? LEVEL_FAIL : LEVEL_WARN, "store-ranges",
                               "the store's ranges are %s, %s says %s", have, d->cfg->peers_file, want);
                finding_why(f, "the store was not published from this configuration: reverse lookups of tailnet addresses go to DNS");
                doctor_restart_command(d, "restart", f->fix, sizeof f->fix);
        }
}

void doctor_check_store(Doctor *d) {
        char dir[1024], restart[64];
        ShmInspect in;
        StoreView v;
        Finding *f;
        const char *daemon_store = d->status ? json_string_value(json_object_get(d->status, "store")) : NULL;
        const char *slash;
        uint64_t now = clock_now_usec(CLOCK_REALTIME);
        int r;

        doctor_restart_command(d, "restart", restart, sizeof restart);
        snprintf(dir, sizeof dir, "%s", d->store_path);
        slash = strrchr(dir, '/');
        if (slash && slash != dir)
                dir[slash - dir] = '\0';

        /* The module reads one path; ztnad may publish to another. */
        if (daemon_store && strcmp(daemon_store, d->store_path) != 0) {
                f = doctor_add(d, LAYER_STORE, LEVEL_FAIL, "store-elsewhere", "lookups read %s, ztnad publishes to %s",
                               d->store_path, daemon_store);
                finding_why(f, "the NSS module reads only %s (or $%s for tests): ztnad's map never reaches it",
                            SHM_DEFAULT_PATH, SHM_ENV_PATH);
                finding_fix(f, "sed -i 's|^store *=.*|store = %s|' %s && systemctl restart ztnad", d->store_path,
                            d->config_path);
        }

        r = shm_store_inspect(d->store_path, &in);
        if (r == -ENOENT) {
                f = doctor_add(d, LAYER_STORE, LEVEL_FAIL, "store-missing", "no store at %s", d->store_path);
                finding_why(f, "ztnad has not published since boot: the module answers UNAVAIL and tailnet names go to the next module");
                doctor_restart_command(d, doctor_daemon_reachable(d) ? "restart" : "start", f->fix, sizeof f->fix);
                return;
        }
        if (r == -EPERM) {
                bool dir_rule = in.rule <= SHM_TRUST_DIR_WRITABLE;

                f = doctor_add(d, LAYER_STORE, LEVEL_FAIL, "store-untrusted",
                               "%s is untrusted: %s (%s uid %u, mode %04o)",
                               d->store_path, shm_trust_rule_to_string(in.rule), dir_rule ? dir : "file",
                               (unsigned) (dir_rule ? in.dir_uid : in.file_uid),
                               (unsigned) ((dir_rule ? in.dir_mode : in.file_mode) & 07777));
                finding_why(f, "the module refuses a store anyone else could have written: it answers UNAVAIL and tailnet names go to the next module");
                if (in.rule == SHM_TRUST_DIR_WRITABLE || in.rule == SHM_TRUST_DIR_OWNER)
                        finding_fix(f, "chown root:root %s && chmod 0755 %s", dir, dir);
                else
                        finding_fix(f, "rm -f %s && %s", d->store_path, restart);
                return;
        }
        if (r == -EPROTONOSUPPORT) {
                f = doctor_add(d, LAYER_STORE, LEVEL_FAIL, "store-version",
                               "%s has format version %u, this ztna reads %u", d->store_path, in.version, SHM_VERSION);
                finding_why(f, "ztnad and libnss-ztna are from different releases: the module ignores the store");
                finding_fix(f, "%s", restart);
                return;
        }
        if (r < 0) {
                f = doctor_add(d, LAYER_STORE, LEVEL_FAIL, r == -EBADMSG ? "store-corrupt" : "store-unreadable",
                               "%s: %s", d->store_path, r == -EBADMSG ? "not a valid store" : strerror(-r));
                finding_why(f, "the module cannot use it and answers UNAVAIL: tailnet names go to the next module");
                finding_fix(f, "%s", restart);
                return;
        }
        if (in.retired) {
                f = doctor_add(d, LAYER_STORE, LEVEL_FAIL, "store-retired",
                               "%s is marked retired but is still at the path", d->store_path);
                finding_why(f, "a writer replaced it and was stopped before renaming the new one in: lookups re-open it on every call");
                finding_fix(f, "%s", restart);
                return;
        }
        r = store_view(d->store_path, d->o->name, &v);
        if (r < 0) {
                f = doctor_add(d, LAYER_STORE, LEVEL_FAIL, "store-unreadable", "%s: %s", d->store_path, strerror(-r));
                finding_why(f, "the module cannot read a consistent copy and answers UNAVAIL");
                finding_fix(f, "%s", restart);
                return;
        }
        snprintf(d->domain, sizeof d->domain, "%s", v.domain);

        if (v.down) {
                f = doctor_add(d, LAYER_STORE, LEVEL_FAIL, "store-down", "%s is marked down (generation %" PRIu64 ")",
                               d->store_path, v.generation);
                finding_why(f, "'ztna down' was run: tailnet names fail with TRY_AGAIN until 'ztna up'");
                finding_fix(f, "ztna up");
                return;
        }
        {
                uint64_t age = now > v.heartbeat_usec ? (now - v.heartbeat_usec) / USEC_PER_SEC : 0;
                uint64_t ahead = v.heartbeat_usec > now ? (v.heartbeat_usec - now) / USEC_PER_SEC : 0;

                if (age > HEARTBEAT_STALE_SEC && doctor_daemon_reachable(d)) {
                        f = doctor_add(d, LAYER_STORE, LEVEL_FAIL, "store-stale",
                                       "%s: heartbeat %" PRIu64 " s old while ztnad runs", d->store_path, age);
                        finding_why(f, "the running ztnad is not the store's writer (or is stuck): changes to the tailnet never reach lookups");
                        finding_fix(f, "%s", restart);
                        return;
                }
                if (ahead > HEARTBEAT_STALE_SEC) {
                        f = doctor_add(d, LAYER_STORE, LEVEL_WARN, "store-clock",
                                       "%s: heartbeat %" PRIu64 " s in the future", d->store_path, ahead);
                        finding_why(f, "the clock went back since ztnad wrote it: ages cannot be judged");
                        finding_fix(f, "timedatectl set-ntp true");
                }
                check_store_matches_config(d, &v);
                if (v.name_class == SHM_UNKNOWN) {
                        f = doctor_add(d, LAYER_STORE, LEVEL_WARN, "store-name-unknown",
                                       "%s: no such peer in the tailnet %s", v.name, v.domain);
                        finding_why(f, "lookups of it fail with NOTFOUND (never DNS): the name is wrong, or the map lacks the peer");
                        finding_fix(f, "ztna dns list");
                } else if (v.name_class == SHM_BLOCKED) {
                        f = doctor_add(d, LAYER_STORE, LEVEL_WARN, "store-name-blocked",
                                       "%s is on the threat blocklist", v.name);
                        finding_why(f, "lookups of it fail with NOTFOUND by design");
                        finding_fix(f, "remove it from the [dns] blocklist files of %s", d->config_path);
                }
                snprintf(d->name, sizeof d->name, "%s", v.name);
                snprintf(d->name_answer, sizeof d->name_answer, "%s", v.name_answer);
                f = doctor_add(d, LAYER_STORE, LEVEL_OK, "store-ok",
                               "%s: up, generation %" PRIu64 ", %" PRIu32 " records, domain %s, heartbeat %" PRIu64
                               " s ago%s; %s -> %s",
                               d->store_path, v.generation, v.n_records, v.domain, age,
                               age > HEARTBEAT_STALE_SEC ? " (its writer is gone; lookups answer from it)" : "",
                               v.name[0] ? v.name : "(no peer)",
                               v.name_class == SHM_FOUND ? v.name_answer
                               : v.name_class == SHM_NOT_OURS ? "not a tailnet name" : "no answer");
        }
}
