/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The DNS manager: `ztnad --dns-manager VERB`, run as root by the service
 * (ExecStartPre=+, ExecStartPost=+, ExecReload=+, ExecStopPost=+) and by
 * the package scripts. It points the host's resolver at the stub from
 * what the unprivileged daemon wrote to the DNS state file (dns-state.h),
 * and restores the host's previous state when management ends. Why a
 * helper, why it fails closed: docs/dns-manager.md.
 *
 * Verbs:
 *   apply    make the configured mode true (manage = off: revert)
 *   reload   the same, after the daemon has reloaded
 *   hold     before ztnad starts: re-assert what was last applied, so a
 *            daemon that never comes up still leaves tailnet names routed
 *            to its closed socket (fail closed)
 *   stopped  ztnad has stopped: leave everything in place, say so
 *   revert   restore the host's previous state, whatever the configuration
 *   check    file mode: re-apply if /etc/resolv.conf was rewritten
 *   status   print what is in place
 *
 * Root-owned state, backups included, lives in DNS_MANAGER_LIB_DIR (0700);
 * what `ztna status` shows in DNS_MANAGER_STATUS_NAME next to the store.
 */

#include <stdbool.h>

#include "conf/config.h"

#define DNS_MANAGER_LIB_DIR "/var/lib/ztna-dns"
#define DNS_MANAGER_STATUS_NAME "dns-manager.json"
#define DNS_MANAGER_RESOLVED_DIR "/run/systemd/resolve"

/* Returns the process exit status. `config_path` NULL: the default. */
int dns_manager_main(const char *verb, const char *config_path);

/* The mode `manage = auto` means here and now (resolved when it runs,
 * resolvconf when installed, else file); other values as they are. */
ConfigManage dns_manager_effective_mode(const ZtnadConfig *c);
