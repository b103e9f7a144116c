/* SPDX-License-Identifier: MIT */
/*
 * ztna: the operator's command. Asks ztnad over its control socket
 * (docs/control-protocol.md), or with --local (implied by --store) reads the
 * record store directly: exactly what every process on the machine
 * resolves, and available while ztnad is stopped.
 *
 * Every command builds one JSON value for its answer, whichever way it was
 * got, and prints it either as JSON (--json) or as text, so the two ways and
 * the two formats cannot drift apart.
 *
 * This file is main(): the options, the dispatch to the commands and the
 * exit codes; the rest is in ztna-*.c (ztna-internal.h says which).
 */

#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/ztna-internal.h"
#include "common/time-util.h"
#include "common/version.h"
#include "conf/config.h"
#include "control/control-protocol.h"
#include "macro.h"
#include "shm-format.h"

/* A push of a large document is validated whole before ztnad answers. */
#define DEFAULT_TIMEOUT_SEC 30

static void help(void) {
        printf("Usage: ztna [OPTIONS] COMMAND\n"
               "\n"
               "Asks ztnad, over its control socket, about the tailnet names this machine\n"
               "resolves, and tells it to change them.\n"
               "\n"
               "Commands:\n"
               "  status              ztnad's state, generation, records, store and sources,\n"
               "                      then the store itself (also when ztnad is unreachable)\n"
               "  dns list            every peer with its addresses\n"
               "  dns query NAME      a peer's addresses (NAME: Win-A or win-a.yourorg.zt.net),\n"
               "                      or the peer holding an address\n"
               "  dns flush           forget cached DNS answers\n"
               "  up                  tailnet names resolve (the store is marked up)\n"
               "  down                tailnet names fail with TRY_AGAIN until 'ztna up'\n"
               "  peers push FILE     publish a peers document (FILE '-': standard input);\n"
               "                      validated whole, a bad one changes nothing\n"
               "  doctor [NAME]       check every layer a lookup of NAME (default: a known\n"
               "                      peer) travels; name the first that fails and its fix\n"
               "Changes (flush, up, down, push) need root or the ztna group.\n"
               "\n"
               "Options:\n"
               "  -c, --config FILE   ztnad.conf to take the control plane from (default\n"
               "                      " CONFIG_DEFAULT_PATH "); when it names control_url,\n"
               "                      dns query asks the control plane over HTTPS first,\n"
               "                      so it works with ztnad stopped\n"
               "  -l, --local         read the record store directly instead of asking ztnad\n"
               "                      (status, dns list, dns query)\n"
               "  -s, --store PATH    the record store (default: $" SHM_ENV_PATH " for tests, else\n"
               "                      " SHM_DEFAULT_PATH "); implies --local unless --socket is\n"
               "                      given too\n"
               "      --socket PATH   ztnad's control socket (default: " CONTROL_DEFAULT_PATH ")\n"
               "  -t, --timeout SECS  how long to wait for ztnad (default: %d)\n"
               "  -j, --json          print JSON\n"
               "  -h, --help          show this help\n"
               "      --version       show the version\n"
               "\n"
               "Exit status:\n"
               "  0  success (dns query: found)\n"
               "  1  dns query: no such peer or address\n"
               "  2  usage error\n"
               "  3  ztnad is unreachable or busy (status: even if the store was shown);\n"
               "     with --local, the store is missing, untrusted or unreadable\n"
               "  4  not authorised: the change needs root or the ztna group\n"
               "  5  rejected (push: the document is invalid) or any other failure\n"
               "  6  doctor: degraded (a layer warns; lookups work)\n"
               "  7  doctor: broken (a layer fails)\n",
               DEFAULT_TIMEOUT_SEC);
}

static int usage_error(const Args *a, const char *msg) {
        return ztna_failed(a, EXIT_USAGE, CLIENT_CODE_USAGE, "%s. Try 'ztna --help'.", msg);
}

int main(int argc, char **argv) {
        enum { OPT_VERSION = 0x100, OPT_SOCKET };
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "local", no_argument, NULL, 'l' },
                { "store", required_argument, NULL, 's' },
                { "socket", required_argument, NULL, OPT_SOCKET },
                { "timeout", required_argument, NULL, 't' },
                { "json", no_argument, NULL, 'j' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, OPT_VERSION },
                {},
        };
        Args a = { .timeout_usec = DEFAULT_TIMEOUT_SEC * USEC_PER_SEC };
        const char *bad_option = NULL;
        char **cmd, *end;
        unsigned long secs;
        int n, c;

        while ((c = getopt_long(argc, argv, "c:ls:t:jh", options, NULL)) >= 0)
                switch (c) {
                case 'c':
                        a.config = optarg;
                        break;
                case 'l':
                        a.local = true;
                        break;
                case 's':
                        a.store = optarg;
                        break;
                case OPT_SOCKET:
                        a.socket = optarg;
                        break;
                case 't':
                        errno = 0;
                        secs = strtoul(optarg, &end, 10);
                        if (errno || end == optarg || *end || secs == 0 || secs > 3600)
                                bad_option = bad_option ? bad_option : "--timeout takes 1 to 3600 seconds";
                        else {
                                a.timeout_usec = secs * USEC_PER_SEC;
                                a.timeout_set = true;
                        }
                        break;
                case 'j':
                        a.json = true;
                        break;
                case 'h':
                        help();
                        return EXIT_OK;
                case OPT_VERSION:
                        printf("ztna " ZTNA_VERSION "\n");
                        return EXIT_OK;
                default:
                        /* Reported once every option is read: a --json
                         * after it still gets its JSON. */
                        bad_option = bad_option ? bad_option : "unknown option";
                }
        if (bad_option)
                return usage_error(&a, bad_option);
        if ((a.store && !a.store[0]) || (a.socket && !a.socket[0]))
                return usage_error(&a, "empty path");
        /* Naming a store means reading that file. */
        if (a.store && !a.socket)
                a.local = true;

        /* -c names the daemon's configuration: its control socket too. */
        _cleanup_free_ char *config_socket = NULL;
        if (a.config && !a.socket) {
                _cleanup_config_ ZtnadConfig *cfg = NULL;
                ConfigError cerr;
                bool doctor = optind < argc && strcmp(argv[optind], "doctor") == 0;
                if (config_load(a.config, &cfg, &cerr) < 0) {
                        /* A broken configuration is one of the things the
                         * doctor diagnoses: it goes on with the default
                         * socket and reports the file, line and key. */
                        if (!doctor)
                                return ztna_failed(&a, EXIT_USAGE, CLIENT_CODE_USAGE, "%s", cerr.message);
                } else {
                        a.socket = config_socket = strdup(cfg->control_socket);
                        if (!config_socket)
                                return ztna_failed(&a, EXIT_FAILED, CONTROL_CODE_FAILED, "out of memory");
                }
        }
        cmd = argv + optind;
        n = argc - optind;
        if (n == 0)
                return usage_error(&a, "missing command");
        if (strcmp(cmd[0], "status") == 0) {
                if (n != 1)
                        return usage_error(&a, "status takes no arguments");
                return ztna_cmd_status(&a);
        }
        if (strcmp(cmd[0], "dns") == 0) {
                if (n >= 2 && strcmp(cmd[1], "list") == 0) {
                        if (n != 2)
                                return usage_error(&a, "dns list takes no arguments");
                        return ztna_cmd_list(&a);
                }
                if (n >= 2 && strcmp(cmd[1], "query") == 0) {
                        if (n != 3 || cmd[2][0] == '\0')
                                return usage_error(&a, "dns query takes one NAME");
                        return ztna_cmd_query(&a, cmd[2]);
                }
                if (n >= 2 && strcmp(cmd[1], "flush") == 0) {
                        if (n != 2)
                                return usage_error(&a, "dns flush takes no arguments");
                        if (a.local)
                                return usage_error(&a, "dns flush asks ztnad; not with --local or --store");
                        return ztna_cmd_change(&a, "flush", "flushed ztnad's DNS cache");
                }
                return usage_error(&a, "dns needs 'list', 'query NAME' or 'flush'");
        }
        if (strcmp(cmd[0], "up") == 0 || strcmp(cmd[0], "down") == 0) {
                bool up = cmd[0][0] == 'u';

                if (n != 1)
                        return usage_error(&a, up ? "up takes no arguments" : "down takes no arguments");
                if (a.local)
                        return usage_error(&a, "up and down ask ztnad; not with --local or --store");
                return ztna_cmd_change(&a, cmd[0], up ? "tailnet DNS is up"
                                                      : "tailnet DNS is down: tailnet names fail until 'ztna up'");
        }
        if (strcmp(cmd[0], "doctor") == 0) {
                if (n > 2 || (n == 2 && cmd[1][0] == '\0'))
                        return usage_error(&a, "doctor takes at most one NAME");
                return ztna_cmd_doctor(&a, n == 2 ? cmd[1] : NULL);
        }
        if (strcmp(cmd[0], "peers") == 0) {
                if (n >= 2 && strcmp(cmd[1], "push") == 0) {
                        if (n != 3 || cmd[2][0] == '\0')
                                return usage_error(&a, "peers push takes one FILE ('-' for standard input)");
                        if (a.local)
                                return usage_error(&a, "peers push asks ztnad; not with --local or --store");
                        return ztna_cmd_push(&a, cmd[2]);
                }
                return usage_error(&a, "peers needs 'push FILE'");
        }
        return usage_error(&a, "unknown command");
}
