/* SPDX-License-Identifier: MIT */
/*
 * The nsswitch layer of `ztna doctor`: is ztna in nsswitch.conf's
 * hosts line where glibc asks it first (the line judged by
 * doctor-nsswitch.c, the pure parser), and does glibc's dlopen() of
 * ztna's NSS module work.
 */

#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli/doctor-internal.h"
#include "macro.h"

#define NSSWITCH_PATH "/etc/nsswitch.conf"
#define MDNS_ALLOW_PATH "/etc/mdns.allow"
#define NSS_MODULE "libnss_ztna.so.2"

static void check_module(Doctor *d) {
        void *h;
        const char *e;
        Finding *f;

        /* The lookup glibc makes: dlopen() of this name, by the library
         * search path, then its entry point. */
        dlerror();
        h = dlopen(NSS_MODULE, RTLD_LAZY | RTLD_LOCAL);
        if (h && dlsym(h, "_nss_ztna_gethostbyname4_r")) {
                Dl_info info = {};
                void *sym = dlsym(h, "_nss_ztna_gethostbyname4_r");

                if (dladdr(sym, &info) && info.dli_fname)
                        doctor_add(d, LAYER_NSSWITCH, LEVEL_OK, "module-loads", "%s loads (%s)", NSS_MODULE,
                                   info.dli_fname);
                else
                        doctor_add(d, LAYER_NSSWITCH, LEVEL_OK, "module-loads", "%s loads", NSS_MODULE);
                return; /* never dlclose()d: the module is nodelete anyway */
        }
        e = dlerror();
        if (h) {
                f = doctor_add(d, LAYER_NSSWITCH, LEVEL_FAIL, "module-broken", "%s loads but has no _nss_ztna_gethostbyname4_r",
                               NSS_MODULE);
                finding_why(f, "the file is not ztna's NSS module, or a damaged one: glibc skips ztna and tailnet names go to the next module");
                finding_fix(f, "apt install --reinstall libnss-ztna");
                return;
        }
        if (e && strstr(e, "cannot open shared object file")) {
                f = doctor_add(d, LAYER_NSSWITCH, LEVEL_FAIL, "module-missing", "%s is not installed: %s", NSS_MODULE,
                               e);
                finding_why(f, "glibc finds no ztna module for this architecture and skips ztna: tailnet names go to the next module");
                finding_fix(f, "apt install libnss-ztna");
                return;
        }
        f = doctor_add(d, LAYER_NSSWITCH, LEVEL_FAIL, "module-unloadable", "%s does not load: %s", NSS_MODULE,
                       e ? e : "unknown error");
        finding_why(f, "a module glibc cannot load (another architecture, a damaged file) is skipped: tailnet names go to the next module");
        finding_fix(f, "apt install --reinstall libnss-ztna");
}

void doctor_check_nsswitch(Doctor *d) {
        _cleanup_free_ char *data = NULL;
        char err[NSS_ERROR_MAX], detail[128], fixed[1024], line[1024];
        size_t len = 0;
        NssHosts h;
        NssVerdict v;
        Finding *f;
        bool mdns_allowed = false;
        int r;

        r = doctor_read_file(NSSWITCH_PATH, &data, &len);
        if (r == -ENOENT) {
                /* glibc then uses its built-in line. */
                nss_hosts_default(&h);
        } else if (r < 0) {
                f = doctor_add(d, LAYER_NSSWITCH, LEVEL_FAIL, "nsswitch-unreadable", "cannot read %s: %s",
                               NSSWITCH_PATH, strerror(-r));
                finding_why(f, "glibc cannot read it either and uses its default, without ztna");
                finding_fix(f, "chmod 0644 %s", NSSWITCH_PATH);
                check_module(d);
                return;
        } else if (nss_parse_hosts(data, len, &h, err, sizeof err) < 0) {
                f = doctor_add(d, LAYER_NSSWITCH, LEVEL_FAIL, "nsswitch-syntax", "%s: %s", NSSWITCH_PATH, err);
                finding_why(f, "glibc ignores a malformed hosts line and uses its default, without ztna");
                /* The fix: the line the packages write. */
                finding_fix(f, "sed -i 's/^hosts:.*/hosts: files ztna [!UNAVAIL=return] dns/' %s", NSSWITCH_PATH);
                check_module(d);
                return;
        } else if (!h.found) {
                nss_hosts_default(&h);
        }

        nss_hosts_format(&h, line, sizeof line);
        {
                _cleanup_free_ char *allow = NULL;
                size_t allow_len = 0;

                if (d->domain[0] && doctor_read_file(MDNS_ALLOW_PATH, &allow, &allow_len) >= 0)
                        mdns_allowed = nss_mdns_allow_matches(allow, allow_len, d->domain);
        }
        v = nss_judge(&h, d->domain[0] ? d->domain : NULL, mdns_allowed, detail, sizeof detail, fixed,
                      sizeof fixed);
        if (v == NSS_VERDICT_OK) {
                if (h.found)
                        doctor_add(d, LAYER_NSSWITCH, LEVEL_OK, "nsswitch-ok", "hosts: %s (%s line %u)", line,
                                   NSSWITCH_PATH, h.line);
                else
                        doctor_add(d, LAYER_NSSWITCH, LEVEL_OK, "nsswitch-ok", "hosts: %s (glibc's default)", line);
        } else {
                static const char *const ids[] = {
                        [NSS_VERDICT_MISSING] = "nsswitch-missing",
                        [NSS_VERDICT_AFTER_DNS] = "nsswitch-after-dns",
                        [NSS_VERDICT_AFTER_MDNS] = "nsswitch-after-mdns",
                        [NSS_VERDICT_NO_RETURN] = "nsswitch-no-return",
                };
                char where[64];

                if (h.found)
                        snprintf(where, sizeof where, "%s line %u", NSSWITCH_PATH, h.line);
                else
                        snprintf(where, sizeof where, "glibc's default: %s has none", NSSWITCH_PATH);
                f = doctor_add(d, LAYER_NSSWITCH, LEVEL_FAIL, ids[v], "hosts: %s (%s)", line, where);
                switch (v) {
                case NSS_VERDICT_MISSING:
                        finding_why(f, "ztna is not in the hosts line: glibc never asks the module and tailnet names go to DNS");
                        break;
                case NSS_VERDICT_AFTER_DNS:
                        finding_why(f, "'%s' comes before ztna: tailnet names go to DNS first and leak, or get a public answer",
                                    detail);
                        break;
                case NSS_VERDICT_AFTER_MDNS:
                        finding_why(f, "'%s' comes before ztna and takes names under %s (%s): mDNS answers or ends the lookup first",
                                    detail, d->domain,
                                    nss_domain_is_local(d->domain) ? "it is under .local"
                                                                   : MDNS_ALLOW_PATH " lists it");
                        break;
                case NSS_VERDICT_NO_RETURN:
                        finding_why(f, "ztna lacks [!UNAVAIL=return]: on %s the lookup goes on to the next module, so unknown or down tailnet names leak to DNS",
                                    detail);
                        break;
                default:
                        break;
                }
                finding_fix(f, "sed -i 's/^hosts:.*/hosts: %s/' %s", fixed, NSSWITCH_PATH);
                if (!h.found)
                        finding_fix(f, "echo 'hosts: %s' >>%s", fixed, NSSWITCH_PATH);
        }
        if (h.duplicate_line)
                doctor_add(d, LAYER_NSSWITCH, LEVEL_WARN, "nsswitch-duplicate",
                           "a second hosts: line (line %u) is ignored by glibc", h.duplicate_line);
        check_module(d);
}
