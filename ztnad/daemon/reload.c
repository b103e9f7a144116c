/* SPDX-License-Identifier: MIT */
/*
 * SIGHUP: the configuration read again and fanned out to each part it
 * changes (the DNS service, the peers file watch, the control plane's
 * polling, the control socket), then the peers file read again or the
 * map republished. What each key asks for is its row of the key table
 * (conf/config-keys.c).
 */
#include <systemd/sd-daemon.h>

#include "common/log.h"
#include "conf/config.h"
#include "control/control-server.h"
#include "daemon/daemon.h"
#include "dns/dns.h"
#include "macro.h"
#include "sources/sync.h"

/* SIGHUP: the new configuration is parsed and every part it changes is
 * built while the running ones serve; only when all of it is valid and
 * built does ztnad switch, so a reload is applied whole or not at all.
 * store, state_dir and store_fallback need a restart (the store's lock
 * and readers' mappings, the saved map); the log says so. */
void daemon_reload(Daemon *d) {
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
                 * table (conf/config-keys.c); the parts are told here. */
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
