/* SPDX-License-Identifier: MIT */
/*
 * ztnad: publishes the tailnet's peer map into the record store that every
 * process on the machine resolves from, keeps it current from its sources
 * (a watched peers file, pushes over the control socket, an HTTPS control
 * plane), and answers the `ztna` command.
 *
 * One sd-event loop: signals, timers, inotify, sockets, the watchdog. The
 * store outlives the daemon: on SIGTERM it is left as it is, so names keep
 * resolving through a restart; a restarted ztnad takes the store over.
 *
 * This file is main(): options, the start-up order, signals, the
 * heartbeat and shutdown; daemon.h names the file of every other role.
 */

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "common/log.h"
#include "common/time-util.h"
#include "common/version.h"
#include "conf/config.h"
#include "control/control-server.h"
#include "daemon/daemon.h"
#include "daemon/fallback.h"
#include "dns/dns.h"
#include "hostdns/dns-manager.h"
#include "macro.h"
#include "shm-format.h"
#include "shm.h"
#include "sources/sync.h"

/* Readers judge the daemon alive by the heartbeat; a few seconds apart is
 * plenty and costs one store per period. */
#define HEARTBEAT_USEC (5 * USEC_PER_SEC)

/* sysexits.h's EX_CONFIG. The unit restarts on it (within its start
 * limit), so a corrected file is taken up; ztna doctor names the error. */
#define EXIT_CONFIG 78
#define EXIT_USAGE 2

static int on_heartbeat(sd_event_source *s, uint64_t usec, void *userdata) {
        Daemon *d = userdata;
        int r;

        (void) usec;
        shm_writer_heartbeat(d->writer);
        r = sd_event_source_set_time_relative(s, HEARTBEAT_USEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
        if (r < 0)
                (void) log_line_errno(SD_ERR, r, "cannot re-arm the heartbeat timer: %m");
        return 0;
}

/* A record source's document (sources.c), published by map.c. When
 * nothing could be published at start (nothing saved, a bad peers file,
 * the control plane not answering yet), READY=1 waits for the first map,
 * whichever source it comes from. */
static int on_source_document(Daemon *d, SourceKind kind, const char *data, size_t len, const char *origin,
                              char *err, size_t errlen) {
        int r = daemon_apply(d, kind, data, len, origin, err, errlen);
        daemon_notify_ready(d);
        return r;
}

/* The DNS service loaded a changed blocklist: the store carries its names. */
static void on_blocklist_changed(void *userdata) {
        (void) daemon_republish(userdata, "blocklist changed");
}

static int on_sighup(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        (void) s;
        (void) si;
        daemon_reload(userdata);
        return 0;
}

static int on_exit_signal(sd_event_source *s, const struct signalfd_siginfo *si, void *userdata) {
        Daemon *d = userdata;

        /* Not marked down: lookups keep answering from the store while the
         * daemon is restarted; "down" is for an explicit `ztna down`. */
        log_line(SD_NOTICE, "received %s; exiting, %s stays published",
                 si->ssi_signo == SIGINT ? "SIGINT" : "SIGTERM", daemon_store_path(d));
        (void) sd_notify(0, "STOPPING=1");
        return sd_event_exit(sd_event_source_get_event(s), 0);
}

static void daemon_done(Daemon *d) {
        daemon_watch_stop(d);
        d->dns = dns_service_free(d->dns);
        d->heartbeat = sd_event_source_disable_unref(d->heartbeat);
        d->sync = sync_free(d->sync);
        d->control = control_free(d->control);
        /* Before the writer goes: a change not yet saved is saved now. */
        d->fallback = fallback_free(d->fallback);
        d->event = sd_event_unref(d->event);
        /* Releases the lock; the store file stays for the readers. */
        d->writer = shm_writer_close(d->writer);
        d->reader = shm_reader_free(d->reader);
        d->config = config_free(d->config);
        d->unsaved = mfree(d->unsaved);
}

static void help(void) {
        printf("Usage: ztnad [OPTIONS]\n"
               "\n"
               "Publishes the tailnet's peers into the record store that the ztna NSS\n"
               "module resolves from, keeps it current from a watched peers file, pushes\n"
               "over the control socket and an HTTPS control plane, and answers the ztna\n"
               "command. A bad update is logged and the last good map stays.\n"
               "\n"
               "  -c, --config FILE  configuration (default: " CONFIG_DEFAULT_PATH ")\n"
               "      --check-config print the effective configuration and exit\n"
               "  -p, --peers FILE   peers JSON to publish and watch (overrides peers_file)\n"
               "  -s, --store PATH   record store (overrides store; default " SHM_DEFAULT_PATH ")\n"
               "      --store-fallback PATH\n"
               "                     the store's copy on disk (overrides store_fallback;\n"
               "                     with --store alone: none; \"\": none)\n"
               "      --example      publish the built-in example tailnet\n"
               "      --dns-manager VERB  as root: point the host's resolver at the stub\n"
               "                     (apply, reload, hold, stopped, revert, check,\n"
               "                     resolved-start, status)\n"
               "  -f, --foreground   run in the foreground (the default and only mode)\n"
               "  -h, --help         show this help\n"
               "      --version      show the version\n"
               "\n"
               "Signals: SIGHUP reloads the configuration and the peers; SIGTERM and\n"
               "SIGINT exit and leave the store published.\n"
               "\n"
               "Exit status: 0 after SIGTERM or SIGINT; 1 when the store cannot be opened\n"
               "or no map can be published; 2 on a usage error; 78 on a configuration error.\n");
}

int main(int argc, char **argv) {
        enum { OPT_VERSION = 0x100, OPT_CHECK, OPT_EXAMPLE, OPT_STORE_FALLBACK, OPT_DNS_MANAGER };
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "check-config", no_argument, NULL, OPT_CHECK },
                { "peers", required_argument, NULL, 'p' },
                { "store", required_argument, NULL, 's' },
                { "store-fallback", required_argument, NULL, OPT_STORE_FALLBACK },
                { "example", no_argument, NULL, OPT_EXAMPLE },
                { "dns-manager", required_argument, NULL, OPT_DNS_MANAGER },
                { "foreground", no_argument, NULL, 'f' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                {},
        };
        Daemon d = { .up = true, .on_document = on_source_document };
        bool check = false;
        const char *dns_manager = NULL;
        ConfigError cerr;
        sigset_t mask;
        int c, r, ret = EXIT_FAILURE;

        while ((c = getopt_long(argc, argv, "c:p:s:fh", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        d.config_path = optarg;
                        break;
                case OPT_CHECK:
                        check = true;
                        break;
                case 'p':
                        d.peers_override = optarg;
                        break;
                case 's':
                        d.store_override = optarg;
                        break;
                case OPT_STORE_FALLBACK:
                        d.fallback_override = optarg;
                        break;
                case OPT_EXAMPLE:
                        d.example = true;
                        break;
                case OPT_DNS_MANAGER:
                        dns_manager = optarg;
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
                        return EXIT_USAGE;
                }
        if (optind < argc) {
                fprintf(stderr, "ztnad: unexpected argument '%s'. Try 'ztnad --help'.\n", argv[optind]);
                return EXIT_USAGE;
        }
        if ((d.store_override && d.store_override[0] != '/') || (d.peers_override && !d.peers_override[0]) ||
            (d.fallback_override && d.fallback_override[0] && d.fallback_override[0] != '/')) {
                fprintf(stderr, "ztnad: --store and --store-fallback need an absolute path, --peers a file. Try 'ztnad --help'.\n");
                return EXIT_USAGE;
        }

        if (dns_manager)
                return dns_manager_main(dns_manager, d.config_path);

        r = config_load(d.config_path, &d.config, &cerr);
        if (r < 0) {
                log_line(SD_ERR, "%s", cerr.message);
                return EXIT_CONFIG;
        }
        if (check) {
                config_print(d.config, stdout);
                d.config = config_free(d.config);
                return EXIT_SUCCESS;
        }

        /* The store must stay readable by every process whatever umask
         * ztnad inherited. */
        umask(0022);

        /* Signals arrive through the loop (signalfd), so they must be
         * blocked before any thread (libcurl's resolver) could take them. */
        sigemptyset(&mask);
        sigaddset(&mask, SIGTERM);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGHUP);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0) {
                (void) log_line_errno(SD_ERR, -errno, "cannot block signals: %m");
                goto finish;
        }
        /* A client that hangs up mid-reply must not kill the daemon. */
        signal(SIGPIPE, SIG_IGN);

        r = sd_event_default(&d.event);
        if (r < 0) {
                (void) log_line_errno(SD_ERR, r, "cannot create the event loop: %m");
                goto finish;
        }

        r = daemon_make_parent_dir(daemon_store_path(&d));
        if (r < 0)
                goto finish;
        r = shm_writer_open(daemon_store_path(&d), &d.writer);
        if (r == -EBUSY) {
                log_line(SD_ERR, "store %s is in use by another ztnad (it holds %s.lock)", daemon_store_path(&d),
                         daemon_store_path(&d));
                goto finish;
        }
        if (r < 0) {
                (void) log_line_errno(SD_ERR, r, "cannot open store %s: %m", daemon_store_path(&d));
                goto finish;
        }
        /* A restart keeps the state `ztna down` left in the store. */
        d.up = shm_writer_state_up(d.writer);
        daemon_fallback_start(&d);

        /* The blocklist is loaded before the first publish, which carries
         * it into the store. A stub that cannot bind is logged; names still
         * resolve through NSS. */
        r = dns_service_new(d.event, d.config, daemon_store_path(&d), daemon_fallback_path(&d),
                            &(const DnsServiceCallbacks) { .blocklist_changed = on_blocklist_changed, .userdata = &d },
                            &d.dns);
        if (r < 0 || dns_service_start(d.dns) < 0) {
                log_line(SD_ERR, "the DNS stub is not running");
                dns_service_stop(d.dns);
        }

        /* Watch before reading: a change made while the first load runs
         * still triggers a reload afterwards. */
        if (daemon_watch_start(&d) < 0)
                goto finish;
        r = daemon_load_initial(&d);
        if (r < 0 && !d.config->control_url) {
                log_line(SD_ERR, "no valid peer map to publish; exiting");
                (void) sd_notifyf(0, "STATUS=Invalid peers: %s", d.sources[SOURCE_FILE].last_error);
                goto finish;
        }

        if (sd_event_add_signal(d.event, NULL, SIGTERM, on_exit_signal, &d) < 0 ||
            sd_event_add_signal(d.event, NULL, SIGINT, on_exit_signal, &d) < 0 ||
            sd_event_add_signal(d.event, NULL, SIGHUP, on_sighup, &d) < 0 ||
            sd_event_add_time_relative(d.event, &d.heartbeat, CLOCK_MONOTONIC, HEARTBEAT_USEC, USEC_PER_SEC,
                                       on_heartbeat, &d) < 0 ||
            sd_event_set_watchdog(d.event, true) < 0) {
                log_line(SD_ERR, "cannot set up the event loop");
                goto finish;
        }
        if (daemon_control_start(&d) < 0 || daemon_sync_start(&d) < 0)
                goto finish;

        /* With only a control plane and nothing saved, READY=1 waits for
         * its first map (daemon_notify_ready() from the update). */
        daemon_notify_ready(&d);
        if (!d.ready)
                (void) sd_notify(0, "STATUS=Waiting for the first map from the control plane");

        r = sd_event_loop(d.event);
        if (r < 0) {
                (void) log_line_errno(SD_ERR, r, "event loop failed: %m");
                goto finish;
        }
        ret = r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;

finish:
        daemon_done(&d);
        return ret;
}
