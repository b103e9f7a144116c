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
 */

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "conf/config.h"
#include "control/control-server.h"
#include "common/log.h"
#include "daemon/daemon.h"
#include "hostdns/dns-manager.h"
#include "macro.h"
#include "shm-format.h"
#include "shm.h"
#include "sources/sync.h"
#include "common/version.h"
#include "common/time-util.h"

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

/* The directory a socket or the store lives in, made 0755 when missing:
 * every process on the machine must be able to reach it. One level only. */
static int make_parent_dir(const char *path) {
        _cleanup_free_ char *dir = strdup(path);
        char *slash;

        if (!dir)
                return -ENOMEM;
        slash = strrchr(dir, '/');
        if (!slash || slash == dir)
                return 0;
        *slash = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return log_line_errno(SD_ERR, -errno, "cannot create %s: %m", dir);
        return 0;
}

int daemon_control_start(Daemon *d) {
        const char *path = d->config->control_socket;
        gid_t gid = (gid_t) -1;
        struct group *g = getgrnam(d->config->control_group);
        int r;

        if (g)
                gid = g->gr_gid;
        else
                log_line(SD_WARNING, "group %s does not exist: only root may change things through %s",
                         d->config->control_group, path);
        r = make_parent_dir(path);
        if (r < 0)
                return r;
        r = control_new(d->event, path, -1, gid, &daemon_control_ops, d, &d->control);
        if (r < 0)
                return log_line_errno(SD_ERR, r, "cannot listen on %s: %m", path);
        return control_set_admin_group_name(d->control, d->config->control_group);
}

/* SIGHUP: the new configuration is parsed and every part it changes is
 * built while the running ones serve; only when all of it is valid and
 * built does ztnad switch, so a reload is applied whole or not at all.
 * store, state_dir and store_fallback need a restart (the store's lock
 * and readers' mappings, the saved map); the log says so. */
static void daemon_reload(Daemon *d) {
        _cleanup_config_ ZtnadConfig *c = NULL;
        DnsGeneration *dns = NULL;
        ConfigError err;
        unsigned apply = 0;
        size_t n_changed = 0;
        char changed[512];
        bool blocked_changed = false;
        int r;

        r = config_load(d->config_path, &c, &err);
        if (r >= 0)
                apply = config_diff(d->config, c, changed, sizeof changed, &n_changed);
        if (r < 0) {
                log_line(SD_ERR, "%s; keeping the running configuration", err.message);
                (void) sd_notifyf(0, "STATUS=Configuration rejected: %s", err.message);
        } else if (n_changed == 0) {
                log_line(SD_NOTICE, "configuration reloaded: nothing changed");
        } else if ((apply & CONFIG_APPLY_DNS) && dns_service_prepare(d->dns, c, &dns) < 0) {
                log_line(SD_ERR, "%s: the [dns] settings cannot be applied (see above); keeping the running "
                         "configuration", d->config_path ? d->config_path : CONFIG_DEFAULT_PATH);
                (void) sd_notify(0, "STATUS=Configuration rejected: the [dns] settings cannot be applied");
                apply = 0;
        } else {
                /* What each changed key asks for is in its row of the key
                 * table (conf/config.c); the parts are told here. */
                ZtnadConfig *old = d->config;
                /* Keep what cannot change under a running daemon. */
                char *keep_store = c->store, *keep_state = c->state_dir, *keep_fallback = c->store_fallback;
                c->store = old->store;
                c->state_dir = old->state_dir;
                c->store_fallback = old->store_fallback;
                old->store = keep_store;
                old->state_dir = keep_state;
                old->store_fallback = keep_fallback;
                d->config = TAKE_PTR(c);
                c = old; /* freed on return */
                dns_service_set_config(d->dns, d->config);

                if (apply & CONFIG_APPLY_DNS)
                        blocked_changed = dns_service_commit(d->dns, dns) > 0;
                if ((apply & CONFIG_APPLY_WATCH) && !d->peers_override) {
                        daemon_watch_stop(d);
                        (void) daemon_watch_start(d);
                }
                if (apply & CONFIG_APPLY_SYNC) {
                        d->sync = sync_free(d->sync);
                        (void) daemon_sync_start(d);
                }
                if (apply & CONFIG_APPLY_CONTROL) {
                        d->control = control_free(d->control);
                        (void) daemon_control_start(d);
                }
                if (apply & CONFIG_APPLY_RESTART)
                        log_line(SD_WARNING, "configuration reloaded: %s; store, state_dir and store_fallback "
                                 "keep their old values until the next start", changed);
                else
                        log_line(SD_NOTICE, "configuration reloaded: %s", changed);
        }

        /* The peers file's map under the new configuration; when the file
         * cannot be read or is bad now, the current map is republished all
         * the same, so new pins, offline_peers or a new blocklist still
         * apply. */
        if ((!daemon_peers_path(d) || daemon_reload_file(d, "SIGHUP") < 0) &&
            ((apply & (CONFIG_APPLY_PIN | CONFIG_APPLY_REPUBLISH)) || blocked_changed))
                (void) daemon_republish(d, (apply & CONFIG_APPLY_PIN) ? "domains or address_space changed"
                                           : (apply & CONFIG_APPLY_REPUBLISH) ? "offline_peers changed"
                                                                               : "blocklist changed");
        if (d->sync)
                sync_now(d->sync);
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
        Daemon d = { .up = true };
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

        r = make_parent_dir(daemon_store_path(&d));
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
