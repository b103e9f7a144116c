/* SPDX-License-Identifier: MIT */
/*
 * ztnad: publishes the tailnet's peer map into the record store that every
 * process on the machine resolves from.
 *
 * One sd-event loop. The peers file is validated whole before anything is
 * published; a bad update is logged (file, JSON path, reason) and the last
 * good map simply stays in the store. The store outlives the daemon: on
 * SIGTERM it is left as it is, so names keep resolving through a restart.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "example.h"
#include "macro.h"
#include "peers.h"
#include "shm-format.h"
#include "shm.h"
#include "version.h"

#define USEC_PER_SEC UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)

/* Readers judge the daemon alive by the heartbeat; a few seconds apart is
 * plenty and costs one store per period. */
#define HEARTBEAT_USEC (5 * USEC_PER_SEC)
/* A file that appears by creation (not rename) is usually still being
 * written; its IN_CLOSE_WRITE normally follows at once and wins. The delay
 * only matters for a file made by link(), which sends nothing else. */
#define CREATE_SETTLE_USEC (200 * USEC_PER_MSEC)

#define EXAMPLE_SOURCE "built-in example tailnet"

typedef struct Daemon {
        sd_event *event;
        ShmWriter *writer;
        const char *store_path;
        const char *peers_path; /* NULL: the built-in example */
        char *watch_dir;        /* the peers file's directory and name in it */
        const char *watch_name;
        sd_event_source *inotify, *heartbeat, *settle;
        bool published;
        size_t n_peers; /* of the map in the store */
} Daemon;

__attribute__((format(printf, 2, 3)))
static void log_line(const char *priority, const char *fmt, ...) {
        char line[1024];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(line, sizeof line, fmt, ap);
        va_end(ap);
        /* One call, one line: stderr is unbuffered and the journal reads
         * the <N> prefix as the priority. */
        fprintf(stderr, "%s%s\n", priority, line);
}

static const char *daemon_source(const Daemon *d) {
        return d->peers_path ? d->peers_path : EXAMPLE_SOURCE;
}

static int daemon_load(const Daemon *d, PeerMap **ret, PeersError *err) {
        if (d->peers_path)
                return peers_load_file(d->peers_path, ret, err);
        return peers_parse((const char *) ztna_example_tailnet, ztna_example_tailnet_len, EXAMPLE_SOURCE, ret, err);
}

static int daemon_publish(Daemon *d, const PeerMap *m, const char *why) {
        ShmMap map;
        uint64_t generation;
        int r;

        peer_map_to_shm(m, &map);
        r = shm_writer_publish(d->writer, &map, true);
        if (r < 0) {
                log_line(SD_ERR, "%s: cannot publish to %s: %s%s", daemon_source(d), d->store_path, strerror(-r),
                         d->published ? "; the last good map stays published" : "");
                return r;
        }
        generation = shm_writer_generation(d->writer);
        d->published = true;
        d->n_peers = map.n_peers;
        log_line(SD_NOTICE, "published generation %" PRIu64 " (%s): %zu peers of %s from %s", generation, why,
                 map.n_peers, map.domain, daemon_source(d));
        (void) sd_notifyf(0, "STATUS=Publishing %zu peers of %s from %s (generation %" PRIu64 ")", map.n_peers,
                          map.domain, daemon_source(d), generation);
        return 0;
}

/* Reads the peers again and publishes them if they are valid. Otherwise
 * nothing is written: the store keeps answering from the last good map. */
static void daemon_reload(Daemon *d, const char *why) {
        _cleanup_peer_map_ PeerMap *m = NULL;
        PeersError err;
        int r;

        r = daemon_load(d, &m, &err);
        if (r < 0) {
                log_line(SD_ERR, "%s; keeping generation %" PRIu64 " published", err.message,
                         shm_writer_generation(d->writer));
                (void) sd_notifyf(0, "STATUS=Update rejected, still publishing %zu peers: %s", d->n_peers,
                                  err.message);
                return;
        }
        (void) daemon_publish(d, m, why);
}

static int on_inotify(sd_event_source *s, const struct inotify_event *ev, void *userdata) {
        Daemon *d = userdata;

        (void) s;
        if (ev->mask & IN_Q_OVERFLOW) {
                log_line(SD_WARNING, "inotify queue overflowed; reloading %s", d->peers_path);
                daemon_reload(d, "inotify overflow");
                return 0;
        }
        if (ev->mask & IN_IGNORED) {
                log_line(SD_WARNING, "%s is gone; no longer watching %s (SIGHUP still reloads)", d->watch_dir,
                         d->peers_path);
                return 0;
        }
        if (ev->len == 0 || strcmp(ev->name, d->watch_name) != 0)
                return 0;

        /* Replaced by rename (the atomic way) or written in place. */
        if (ev->mask & (IN_MOVED_TO | IN_CLOSE_WRITE)) {
                (void) sd_event_source_set_enabled(d->settle, SD_EVENT_OFF);
                daemon_reload(d, "file changed");
        } else if (ev->mask & IN_CREATE) {
                (void) sd_event_source_set_time_relative(d->settle, CREATE_SETTLE_USEC);
                (void) sd_event_source_set_enabled(d->settle, SD_EVENT_ONESHOT);
        } else if (ev->mask & (IN_DELETE | IN_MOVED_FROM))
                log_line(SD_WARNING, "%s was removed; keeping generation %" PRIu64 " published", d->peers_path,
                         shm_writer_generation(d->writer));
        return 0;
}

static int on_settle(sd_event_source *s, uint64_t usec, void *userdata) {
        (void) s;
        (void) usec;
        daemon_reload(userdata, "file created");
        return 0;
}

static int on_heartbeat(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;
        int r;

        (void) usec;
        shm_writer_heartbeat(d->writer);
        r = sd_event_source_set_time_relative(s, HEARTBEAT_USEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        if (r < 0)
                log_line(SD_ERR, "cannot re-arm the heartbeat timer: %s", strerror(-r));
        return 0;
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        (void) s;
        (void) si;
        daemon_reload(userdata, "SIGHUP");
        return 0;
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Daemon *d = userdata;

        /* Not marked down: lookups keep answering from the store while the
         * daemon is restarted; "down" is for an explicit disconnect. */
        log_line(SD_NOTICE, "received %s; exiting, %s stays published",
                 si->ssi_signo == SIGINT ? "SIGINT" : "SIGTERM", d->store_path);
        (void) sd_notify(0, "STOPPING=1");
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

/* The store's directory, made 0755 when missing: every process on the
 * machine must be able to reach the store. One level only. */
static int make_store_dir(const char *store_path) {
        _cleanup_free_ char *dir = strdup(store_path);
        char *slash;

        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return 0;
        *slash = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                int r = -errno;

                log_line(SD_ERR, "cannot create %s: %s", dir, strerror(-r));
                return r;
        }
        return 0;
}

/* Watches the peers file's directory, not the file: writers replace the file
 * by rename, which a watch on the old inode would never see. */
static int daemon_watch(Daemon *d) {
        char *slash;
        int r;

        d->watch_dir = strdup(d->peers_path);
        if (!d->watch_dir)
                return -ENOMEM;
        slash = strrchr(d->watch_dir, '/');
        if (!slash) {
                d->watch_name = d->peers_path;
                strcpy(d->watch_dir, ".");
        } else {
                d->watch_name = d->peers_path + (slash - d->watch_dir) + 1;
                if (slash == d->watch_dir)
                        slash[1] = '\0'; /* "/peers.json": the root */
                else
                        *slash = '\0';
        }
        if (d->watch_name[0] == '\0') {
                log_line(SD_ERR, "%s: not a file name", d->peers_path);
                return -EINVAL;
        }

        r = sd_event_add_inotify(d->event, &d->inotify, d->watch_dir,
                                 IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_DELETE | IN_MOVED_FROM | IN_ONLYDIR,
                                 on_inotify, d);
        if (r < 0) {
                log_line(SD_ERR, "cannot watch %s for changes to %s: %s", d->watch_dir, d->peers_path, strerror(-r));
                return r;
        }
        /* Armed by IN_CREATE only. */
        r = sd_event_add_time_relative(d->event, &d->settle, CLOCK_MONOTONIC, CREATE_SETTLE_USEC, USEC_PER_MSEC,
                                       on_settle, d);
        if (r >= 0)
                r = sd_event_source_set_enabled(d->settle, SD_EVENT_OFF);
        if (r < 0)
                log_line(SD_ERR, "cannot set up a timer: %s", strerror(-r));
        return r;
}

static void daemon_done(Daemon *d) {
        sd_event_source_disable_unref(d->inotify);
        sd_event_source_disable_unref(d->heartbeat);
        sd_event_source_disable_unref(d->settle);
        sd_event_unref(d->event);
        /* Releases the lock; the store file stays for the readers. */
        shm_writer_close(d->writer);
        free(d->watch_dir);
}

static void help(void) {
        printf("Usage: ztnad [OPTIONS]\n"
               "\n"
               "Publishes the tailnet's peers into the record store that the ztna NSS\n"
               "module resolves from, and republishes them when the peers file changes\n"
               "or on SIGHUP. A bad update is logged and the last good map stays.\n"
               "\n"
               "  -p, --peers FILE   peers JSON to publish and watch (default: the built-in\n"
               "                     example tailnet)\n"
               "  -s, --store PATH   record store (default: " SHM_DEFAULT_PATH ")\n"
               "  -f, --foreground   run in the foreground (the default and only mode)\n"
               "  -h, --help         show this help\n"
               "      --version      show the version\n"
               "\n"
               "Exit status: 0 after SIGTERM or SIGINT, 1 when the first map cannot be\n"
               "loaded or published or the store cannot be opened, 2 on a usage error.\n");
}

int main(int argc, char **argv) {
        enum { OPT_VERSION = 0x100 };
        static const struct option options[] = {
                { "peers", required_argument, NULL, 'p' },
                { "store", required_argument, NULL, 's' },
                { "foreground", no_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                {},
        };
        Daemon d = { .store_path = SHM_DEFAULT_PATH };
        _cleanup_peer_map_ PeerMap *m = NULL;
        PeersError err;
        sigset_t mask;
        int c, r, ret = EXIT_FAILURE;

        while ((c = getopt_long(argc, argv, "p:s:fh", options, NULL)) >= 0)
                switch (c) {
                case 'p':
                        d.peers_path = optarg;
                        break;
                case 's':
                        d.store_path = optarg;
                        break;
                case 'f':
                        break;
                case 'h':
                        help();
                        return EXIT_SUCCESS;
                case OPT_VERSION:
                        printf("ztnad " ZTNA_VERSION "\n");
                        return EXIT_SUCCESS;
                default:
                        fprintf(stderr, "Try 'ztnad --help'.\n");
                        return 2;
                }
        if (optind < argc) {
                fprintf(stderr, "ztnad: unexpected argument '%s'. Try 'ztnad --help'.\n", argv[optind]);
                return 2;
        }
        if (d.store_path[0] == '\0' || (d.peers_path && d.peers_path[0] == '\0')) {
                fprintf(stderr, "ztnad: empty path. Try 'ztnad --help'.\n");
                return 2;
        }

        /* The store must stay readable by every process whatever umask
         * ztnad inherited. */
        umask(0022);

        /* Signals arrive through the loop (signalfd), so they must be
         * blocked before any thread or handler could take them. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
                log_line(SD_ERR, "cannot block signals: %s", strerror(errno));
                return EXIT_FAILURE;
        }

        r = sd_event_default(&d.event);
        if (r < 0) {
                log_line(SD_ERR, "cannot create the event loop: %s", strerror(-r));
                goto finish;
        }

        /* Watch before reading: a change made while the first load runs
         * still triggers a reload afterwards. */
        if (d.peers_path) {
                r = daemon_watch(&d);
                if (r < 0)
                        goto finish;
        }

        r = daemon_load(&d, &m, &err);
        if (r < 0) {
                log_line(SD_ERR, "%s; nothing published", err.message);
                (void) sd_notifyf(0, "STATUS=Invalid peers: %s", err.message);
                goto finish;
        }

        r = make_store_dir(d.store_path);
        if (r < 0)
                goto finish;
        r = shm_writer_open(d.store_path, &d.writer);
        if (r == -EBUSY) {
                log_line(SD_ERR, "store %s is in use by another ztnad (it holds %s.lock)", d.store_path,
                         d.store_path);
                goto finish;
        }
        if (r < 0) {
                log_line(SD_ERR, "cannot open store %s: %s", d.store_path, strerror(-r));
                goto finish;
        }

        r = daemon_publish(&d, m, "start");
        if (r < 0)
                goto finish;
        m = peer_map_free(m);

        if (sd_event_add_signal(d.event, NULL, SIGTERM, on_exit_signal, &d) < 0 ||
            sd_event_add_signal(d.event, NULL, SIGINT, on_exit_signal, &d) < 0 ||
            sd_event_add_signal(d.event, NULL, SIGHUP, on_sighup, &d) < 0 ||
            sd_event_add_time_relative(d.event, &d.heartbeat, CLOCK_MONOTONIC, HEARTBEAT_USEC, USEC_PER_SEC,
                                       on_heartbeat, &d) < 0 ||
            sd_event_set_watchdog(d.event, true) < 0) {
                log_line(SD_ERR, "cannot set up the event loop");
                goto finish;
        }

        (void) sd_notify(0, "READY=1");
        if (d.peers_path)
                log_line(SD_INFO, "watching %s for changes", d.peers_path);

        r = sd_event_loop(d.event);
        if (r < 0) {
                log_line(SD_ERR, "event loop failed: %s", strerror(-r));
                goto finish;
        }
        ret = r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;

finish:
        daemon_done(&d);
        return ret;
}
