/* SPDX-License-Identifier: MIT */
/*
 * control-harness: a stand-in daemon for tests/test-control.sh. It serves
 * the control socket with ops that do what ztnad's do (a push is validated
 * whole by the real peers parser and published to a real record store, up
 * and down mark the store, list and query answer from the published map),
 * so the `ztna` command can be tested end to end, as root and as other
 * users, before and apart from the daemon's own wiring.
 *
 *     control-harness --socket PATH --store PATH --peers FILE [--admin-gid N]
 *
 * Runs until SIGTERM or SIGINT; logs to stderr.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../ztnad/control/control.h"
#include "../ztnad/sources/peers.h"

typedef struct Harness {
        ShmWriter *writer;
        PeerMap *map;
        ShmMap shm;
        const char *store;
        bool up;
        uint64_t last_success_usec;
        char last_error[PEERS_ERROR_MAX];
        unsigned flushes;
} Harness;

static uint64_t realtime_usec(void) {
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static int harness_publish(Harness *h, PeerMap *m) {
        ShmMap shm;
        int r;

        peer_map_to_shm(m, &shm);
        r = shm_writer_publish(h->writer, &shm, h->up);
        if (r < 0)
                return r;
        peer_map_free(h->map);
        h->map = m;
        h->shm = shm;
        h->last_success_usec = realtime_usec();
        return 0;
}

static int op_status(void *userdata, json_t **ret) {
        Harness *h = userdata;

        *ret = json_pack("{s:s, s:I, s:I, s:s, s:s, s:[{s:s, s:I, s:s?}], s:i}", "state", h->up ? "up" : "down",
                         "generation", (json_int_t) shm_writer_generation(h->writer), "records",
                         (json_int_t) h->shm.n_peers, "domain", h->shm.domain, "store", h->store, "sources", "name",
                         "pushes", "last_success_usec", (json_int_t) h->last_success_usec, "last_error",
                         h->last_error[0] ? h->last_error : NULL, "flushes", (int) h->flushes);
        return *ret ? 0 : -ENOMEM;
}

static int op_list(void *userdata, json_t **ret) {
        Harness *h = userdata;

        return control_map_list(&h->shm, ret);
}

static int op_query(void *userdata, const char *name, json_t **ret) {
        Harness *h = userdata;

        return control_map_query(&h->shm, name, ret);
}

static int op_push(void *userdata, const char *doc, size_t len, char *err, size_t errlen) {
        Harness *h = userdata;
        PeerMap *m = NULL;
        PeersError perr;
        int r;

        r = peers_parse(doc, len, "push", &m, &perr);
        if (r < 0) {
                snprintf(h->last_error, sizeof h->last_error, "%s", perr.message);
                snprintf(err, errlen, "%s", perr.message);
                return r;
        }
        r = harness_publish(h, m);
        if (r < 0) {
                peer_map_free(m);
                snprintf(err, errlen, "cannot publish: %s", strerror(-r));
        }
        return r;
}

static int op_set_state(void *userdata, bool up) {
        Harness *h = userdata;
        int r = shm_writer_set_state(h->writer, up);

        if (r >= 0)
                h->up = up;
        return r;
}

static int op_flush(void *userdata) {
        Harness *h = userdata;

        h->flushes++;
        return 0;
}

static void op_log(void *userdata, int priority, const char *message) {
        (void) userdata;
        fprintf(stderr, "<%d>%s\n", priority, message);
}

static const ControlOps harness_ops = {
        .status = op_status,
        .list = op_list,
        .query = op_query,
        .push = op_push,
        .set_state = op_set_state,
        .flush = op_flush,
        .log = op_log,
};

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        (void) si;
        (void) userdata;
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "socket", required_argument, NULL, 'S' },
                { "store", required_argument, NULL, 's' },
                { "peers", required_argument, NULL, 'p' },
                { "admin-gid", required_argument, NULL, 'g' },
                {},
        };
        const char *socket_path = NULL, *peers = NULL;
        Harness h = { .up = true };
        gid_t admin_gid = (gid_t) -1;
        sd_event *e = NULL;
        Control *c = NULL;
        PeerMap *m = NULL;
        PeersError perr;
        sigset_t mask;
        int opt, r;

        while ((opt = getopt_long(argc, argv, "", options, NULL)) >= 0)
                switch (opt) {
                case 'S':
                        socket_path = optarg;
                        break;
                case 's':
                        h.store = optarg;
                        break;
                case 'p':
                        peers = optarg;
                        break;
                case 'g':
                        admin_gid = (gid_t) strtoul(optarg, NULL, 10);
                        break;
                default:
                        return 2;
                }
        if (!socket_path || !h.store || !peers) {
                fprintf(stderr, "usage: control-harness --socket PATH --store PATH --peers FILE [--admin-gid N]\n");
                return 2;
        }

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigprocmask(SIG_BLOCK, &mask, NULL);

        r = peers_load_file(peers, &m, &perr);
        if (r < 0) {
                fprintf(stderr, "%s\n", perr.message);
                return 1;
        }
        r = shm_writer_open(h.store, &h.writer);
        if (r >= 0)
                r = harness_publish(&h, m);
        if (r >= 0)
                r = sd_event_default(&e);
        if (r >= 0)
                r = control_new(e, socket_path, -1, admin_gid, &harness_ops, &h, &c);
        if (r >= 0)
                r = sd_event_add_signal(e, NULL, SIGTERM, on_exit_signal, NULL);
        if (r >= 0)
                r = sd_event_add_signal(e, NULL, SIGINT, on_exit_signal, NULL);
        if (r >= 0)
                r = sd_event_loop(e);
        if (r < 0)
                fprintf(stderr, "control-harness: %s\n", strerror(-r));
        control_free(c);
        sd_event_unref(e);
        shm_writer_close(h.writer);
        peer_map_free(h.map);
        return r < 0 ? 1 : 0;
}
