/* SPDX-License-Identifier: MIT */
/*
 * ztna: the record store read directly (--local), as every process on the
 * machine reads it: one consistent snapshot per answer, and the answers
 * status, dns list and dns query build from it.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/ztna-internal.h"
#include "common/time-util.h"
#include "control/control-protocol.h"
#include "macro.h"
#include "shm-format.h"
#include "shm.h"

const char *ztna_store_display(const Args *a) {
        const char *p;

        /* The reader's own choice, spelled out for messages. */
        if (a->store)
                return a->store;
        p = secure_getenv(SHM_ENV_PATH);
        return p && p[0] ? p : SHM_DEFAULT_PATH;
}

static void reader_freep(ShmReader **r) {
        shm_reader_free(*r);
}

typedef struct StoreCall {
        StoreFunc func;
        const Args *a;
        const void *userdata;
        json_t *j;
        bool ran; /* func's answer is from a consistent read */
} StoreCall;

static int store_call(const ShmSnapshot *s, void *userdata) {
        StoreCall *c = userdata;
        c->ran = true;
        return c->func(s, c->a, c->userdata, &c->j);
}

static void store_discard(void *userdata) {
        StoreCall *c = userdata;
        json_decref(c->j);
        c->j = NULL;
        c->ran = false;
}

/* 0 with *ret, or -errno with `err` saying what is wrong with the store. */
int ztna_store_read(const Args *a, StoreFunc func, const void *userdata, json_t **ret, char *err, size_t errlen) {
        _cleanup_(reader_freep) ShmReader *r = NULL;
        StoreCall c = { .func = func, .a = a, .userdata = userdata };
        int k;

        k = shm_reader_new(a->store, &r);
        if (k < 0) {
                snprintf(err, errlen, "cannot read the store %s: %s", ztna_store_display(a), strerror(-k));
                return k;
        }
        k = shm_snapshot_read(r, store_call, store_discard, &c);
        if (k >= 0) {
                *ret = c.j;
                return 0;
        }
        json_decref(c.j);
        if (c.ran)
                snprintf(err, errlen, "%s", strerror(-k));
        else if (k == -EAGAIN)
                snprintf(err, errlen, "store %s changed during every one of %u reads", ztna_store_display(a),
                         SHM_READ_TRIES);
        else
                snprintf(err, errlen, "store %s is unavailable: %s", ztna_store_display(a), strerror(-k));
        return k;
}

int ztna_store_list(const ShmSnapshot *s, const Args *a, const void *userdata, json_t **ret) {
        json_t *peers = json_array();
        ShmRecordView v;

        (void) a;
        (void) userdata;
        if (!peers)
                return -ENOMEM;
        for (uint32_t i = 0; i < s->n_records; i++) {
                if (!shm_snapshot_record(s, i, &v))
                        continue; /* damaged: the reader already refuses to answer with it */
                json_array_append_new(peers, control_peer_json(s, &v));
        }
        *ret = json_pack("{s:o, s:o}", "domain", control_json_text(s->domain, s->domain_len), "peers", peers);
        return *ret ? 0 : -ENOMEM;
}

int ztna_store_query(const ShmSnapshot *s, const Args *a, const void *userdata, json_t **ret) {
        const char *q = userdata;
        union {
                struct in_addr in;
                struct in6_addr in6;
        } addr;
        int family = 0;
        ShmRecordView v;
        ShmClass c;

        (void) a;
        if (inet_pton(AF_INET, q, &addr.in) == 1)
                family = AF_INET;
        else if (inet_pton(AF_INET6, q, &addr.in6) == 1)
                family = AF_INET6;
        c = family ? shm_snapshot_lookup_addr(s, family, &addr, &v) : shm_snapshot_lookup_name(s, q, &v);
        if (c != SHM_FOUND) {
                *ret = json_pack("{s:b, s:b}", "found", 0, "ours", c == SHM_UNKNOWN);
                return *ret ? 0 : -ENOMEM;
        }
        *ret = json_pack("{s:b, s:b, s:o}", "found", 1, "down", shm_snapshot_down(s), "peer", control_peer_json(s, &v));
        return *ret ? 0 : -ENOMEM;
}

int ztna_store_status(const ShmSnapshot *s, const Args *a, const void *userdata, json_t **ret) {
        const ShmWireRange *ranges = s->ranges;
        json_t *r = json_array();
        uint64_t now = clock_now_usec(CLOCK_REALTIME);
        char published[64];

        (void) userdata;
        if (!r)
                return -ENOMEM;
        for (uint32_t i = 0; i < s->n_ranges; i++) {
                char text[INET6_ADDRSTRLEN], prefix[INET6_ADDRSTRLEN + 8];
                uint8_t family = ranges[i].family;

                if ((family != 4 && family != 6) ||
                    !inet_ntop(family == 4 ? AF_INET : AF_INET6, ranges[i].addr, text, sizeof text))
                        continue;
                snprintf(prefix, sizeof prefix, "%s/%u", text, ranges[i].prefixlen);
                json_array_append_new(r, json_string(prefix));
        }
        ztna_format_time(s->published_usec, published, sizeof published);
        *ret = json_pack("{s:s, s:s, s:I, s:o, s:o, s:I, s:s, s:I, s:I, s:I, s:I}", "path", ztna_store_display(a),
                         "state", shm_snapshot_down(s) ? "down" : "up", "generation", (json_int_t) s->generation,
                         "domain", control_json_text(s->domain, s->domain_len), "ranges", r, "records",
                         (json_int_t) s->n_records, "published", published, "published_usec",
                         (json_int_t) s->published_usec, "heartbeat_usec", (json_int_t) s->heartbeat_usec,
                         "heartbeat_age_sec", (json_int_t) ztna_age_sec(s->heartbeat_usec, now), "file_size",
                         (json_int_t) s->file_size);
        return *ret ? 0 : -ENOMEM;
}
