/* SPDX-License-Identifier: MIT */
/*
 * test-sync: drives sync.c and controlplane.c against a real HTTPS server
 * for tests/integration/test-controlplane.sh.
 *
 *   test-sync sync OPTIONS      polls on an sd-event loop until SIGTERM or
 *                               --for-ms; SIGHUP calls sync_now()
 *   test-sync resolve OPTIONS NAME
 *                               one controlplane_resolve(), printed the way
 *                               `ztna dns query` prints it
 *
 * sync prints one line per event to stdout, each starting with the
 * milliseconds since start on CLOCK_MONOTONIC (the times are those sync.c
 * recorded, not those of noticing):
 *
 *   T attempt N                    the N-th attempt started
 *   T published P peers of DOMAIN  the callback accepted a body
 *   T rejected MESSAGE             the callback refused a body
 *   T unchanged                    a success with no new body (304 or same)
 *   T error F ERRNO MESSAGE        the F-th failure in a row
 *   T next D                       the next attempt is due at D
 *
 * Publishing is peers_parse() only: the store is not the subject here.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "sources/controlplane.h"
#include "sources/peers.h"
#include "sources/sync.h"
#include "common/time-util.h"

/* How often the status is looked at; attempts are >= 1 s apart. */
#define WATCH_USEC (10 * USEC_PER_MSEC)

enum {
        EXIT_FOUND = 0,
        EXIT_NOT_FOUND = 1,
        EXIT_USAGE = 2,
        EXIT_UNAVAILABLE = 3,
};

typedef struct Harness {
        sd_event *event;
        uint64_t start;
        uint64_t seen_attempt, seen_success, seen_next;
        unsigned seen_failures;
        unsigned long seen_updates;
        Sync *sync;
} Harness;

static uint64_t elapsed_ms(const Harness *h, uint64_t t) {
        return t > h->start ? (t - h->start) / USEC_PER_MSEC : 0;
}

static uint64_t now_usec(const Harness *h) {
        uint64_t t;

        if (sd_event_now(h->event, CLOCK_MONOTONIC, &t) < 0)
                t = clock_now_usec(CLOCK_MONOTONIC);
        return t;
}

/* What the daemon's callback does, minus the store. */
static int on_update(const char *body, size_t len, char *err, size_t errlen, void *userdata) {
        Harness *h = userdata;
        _cleanup_peer_map_ PeerMap *m = NULL;
        PeersError perr;
        ShmMap map;
        int r;

        if (strlen(body) != len) {
                (void) snprintf(err, errlen, "body holds a NUL byte");
                return -EBADMSG;
        }
        r = peers_parse(body, len, "control plane", &m, &perr);
        if (r < 0) {
                (void) snprintf(err, errlen, "%s", perr.message);
                printf("%" PRIu64 " rejected %s\n", elapsed_ms(h, now_usec(h)), perr.message);
                return r;
        }
        peer_map_to_shm(m, &map);
        printf("%" PRIu64 " published %zu peers of %s\n", elapsed_ms(h, now_usec(h)), map.n_peers, map.domain);
        return 0;
}

/* Reports what changed in the status since the last look. */
static int on_watch(sd_event_source *src, uint64_t usec, void *userdata) {
        Harness *h = userdata;
        SyncStatus st;

        sync_get_status(h->sync, &st);
        if (st.last_attempt_usec != h->seen_attempt) {
                static unsigned n;

                h->seen_attempt = st.last_attempt_usec;
                printf("%" PRIu64 " attempt %u\n", elapsed_ms(h, st.last_attempt_usec), ++n);
        }
        if (st.consecutive_failures != h->seen_failures && st.consecutive_failures > 0)
                printf("%" PRIu64 " error %u %s %s\n", elapsed_ms(h, st.last_attempt_usec), st.consecutive_failures,
                       strerrorname_np(-st.last_errno) ? strerrorname_np(-st.last_errno) : "?", st.last_error);
        h->seen_failures = st.consecutive_failures;
        if (st.last_success_usec != h->seen_success) {
                h->seen_success = st.last_success_usec;
                if (st.n_updates == h->seen_updates)
                        printf("%" PRIu64 " unchanged\n", elapsed_ms(h, st.last_success_usec));
        }
        h->seen_updates = st.n_updates;
        if (st.next_attempt_usec != h->seen_next && st.next_attempt_usec != 0)
                printf("%" PRIu64 " next %" PRIu64 "\n", elapsed_ms(h, now_usec(h)),
                       elapsed_ms(h, st.next_attempt_usec));
        h->seen_next = st.next_attempt_usec;
        fflush(stdout);

        if (sd_event_source_set_time(src, usec + WATCH_USEC) < 0 ||
            sd_event_source_set_enabled(src, SD_EVENT_ONESHOT) < 0)
                return sd_event_exit(h->event, EXIT_UNAVAILABLE);
        return 0;
}

static int on_sighup(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata) {
        Harness *h = userdata;

        (void) src;
        (void) si;
        printf("%" PRIu64 " sync-now\n", elapsed_ms(h, now_usec(h)));
        sync_now(h->sync);
        return 0;
}

static int on_exit_signal(sd_event_source *src, const struct signalfd_siginfo *si, void *userdata) {
        (void) si;
        (void) userdata;
        return sd_event_exit(sd_event_source_get_event(src), 0);
}

static int on_deadline(sd_event_source *src, uint64_t usec, void *userdata) {
        (void) usec;
        (void) userdata;
        return sd_event_exit(sd_event_source_get_event(src), 0);
}

static int run_sync(const SyncConfig *c, uint64_t for_usec) {
        Harness h = {};
        sd_event_source *watch = NULL, *deadline = NULL;
        sigset_t mask;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
                return EXIT_UNAVAILABLE;
        r = sd_event_new(&h.event);
        if (r < 0) {
                fprintf(stderr, "test-sync: sd_event_new: %s\n", strerror(-r));
                return EXIT_UNAVAILABLE;
        }
        h.start = now_usec(&h);
        r = sync_new(h.event, c, on_update, &h, &h.sync);
        if (r < 0) {
                fprintf(stderr, "test-sync: sync_new: %s\n", strerror(-r));
                sd_event_unref(h.event);
                return EXIT_USAGE;
        }
        r = sd_event_add_signal(h.event, NULL, SIGTERM, on_exit_signal, &h);
        if (r >= 0)
                r = sd_event_add_signal(h.event, NULL, SIGINT, on_exit_signal, &h);
        if (r >= 0)
                r = sd_event_add_signal(h.event, NULL, SIGHUP, on_sighup, &h);
        if (r >= 0)
                r = sd_event_add_time_relative(h.event, &watch, CLOCK_MONOTONIC, WATCH_USEC, 1, on_watch, &h);
        if (r >= 0 && for_usec > 0)
                r = sd_event_add_time_relative(h.event, &deadline, CLOCK_MONOTONIC, for_usec, 1, on_deadline, &h);
        if (r >= 0) {
                printf("0 ready\n");
                fflush(stdout);
                r = sd_event_loop(h.event);
        }
        if (r < 0)
                fprintf(stderr, "test-sync: event loop: %s\n", strerror(-r));
        sd_event_source_disable_unref(watch);
        sd_event_source_disable_unref(deadline);
        sync_free(h.sync);
        sd_event_unref(h.event);
        return r < 0 ? EXIT_UNAVAILABLE : r;
}

static int run_resolve(const ControlPlaneConfig *c, const char *name) {
        _cleanup_controlplane_answer_ ControlPlaneAnswer *a = NULL;
        char err[CONTROLPLANE_ERROR_MAX];
        bool exposed = false;
        int r;

        r = controlplane_resolve(c, name, &a, &exposed, err, sizeof err);
        if (exposed)
                fprintf(stderr, "warning: token file %s is readable by other users\n", c->token_file);
        if (r == -ENOENT) {
                fprintf(stderr, "%s\n", err);
                return EXIT_NOT_FOUND;
        }
        if (r < 0) {
                fprintf(stderr, "%s (%s)\n", err, strerrorname_np(-r) ? strerrorname_np(-r) : "?");
                return -r == EINVAL ? EXIT_USAGE : EXIT_UNAVAILABLE;
        }
        if (a->n_addresses == 0)
                printf("%s has no addresses\n", a->fqdn);
        for (size_t i = 0; i < a->n_addresses; i++)
                printf("%s -> %s\n", a->fqdn, a->addresses[i].text);
        return EXIT_FOUND;
}

static void help(void) {
        printf("Usage: test-sync sync|resolve [OPTIONS] [NAME]\n"
               "  --url URL  --org ID  --token-file FILE  --ca-file FILE\n"
               "  --interval-ms N  --max-backoff-ms N  --timeout-ms N  --for-ms N\n");
}

static int parse_ms(const char *s, uint64_t *ret) {
        char *end;
        unsigned long long v;

        errno = 0;
        v = strtoull(s, &end, 10);
        if (errno || end == s || *end || v > UINT64_MAX / USEC_PER_MSEC)
                return -EINVAL;
        *ret = v * USEC_PER_MSEC;
        return 0;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "url", required_argument, NULL, 'u' },
                { "org", required_argument, NULL, 'o' },
                { "token-file", required_argument, NULL, 't' },
                { "ca-file", required_argument, NULL, 'c' },
                { "interval-ms", required_argument, NULL, 'i' },
                { "max-backoff-ms", required_argument, NULL, 'b' },
                { "timeout-ms", required_argument, NULL, 'T' },
                { "for-ms", required_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },
                {},
        };
        SyncConfig sc = {};
        uint64_t for_usec = 0;
        const char *cmd;
        int c, r = 0;

        /* Line by line, so the test sees events as they happen. */
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (argc < 2) {
                help();
                return EXIT_USAGE;
        }
        cmd = argv[1];
        optind = 2;
        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case 'u':
                        sc.control_url = optarg;
                        break;
                case 'o':
                        sc.org_id = optarg;
                        break;
                case 't':
                        sc.token_file = optarg;
                        break;
                case 'c':
                        sc.ca_file = optarg;
                        break;
                case 'i':
                        r = parse_ms(optarg, &sc.interval_usec);
                        break;
                case 'b':
                        r = parse_ms(optarg, &sc.max_backoff_usec);
                        break;
                case 'T':
                        r = parse_ms(optarg, &sc.timeout_usec);
                        break;
                case 'f':
                        r = parse_ms(optarg, &for_usec);
                        break;
                case 'h':
                        help();
                        return 0;
                default:
                        return EXIT_USAGE;
                }
                if (r < 0) {
                        fprintf(stderr, "test-sync: bad number '%s'\n", optarg);
                        return EXIT_USAGE;
                }
        }

        if (strcmp(cmd, "sync") == 0 && optind == argc)
                return run_sync(&sc, for_usec);
        if (strcmp(cmd, "resolve") == 0 && optind + 1 == argc) {
                ControlPlaneConfig cc = {
                        .control_url = sc.control_url,
                        .org_id = sc.org_id,
                        .token_file = sc.token_file,
                        .ca_file = sc.ca_file,
                        .timeout_usec = sc.timeout_usec,
                };

                return run_resolve(&cc, argv[optind]);
        }
        help();
        return EXIT_USAGE;
}
