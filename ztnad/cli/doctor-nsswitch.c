/* SPDX-License-Identifier: MIT */
/*
 * nsswitch.conf's hosts line, read the way glibc reads it (nss/nss_database.c
 * and nss/nss_action_parse.c of glibc 2.36), and where ztna sits in it.
 *
 * The file is untrusted input to this parser (tests/fuzz/fuzz-nsswitch.c): every
 * copy is bounded, a line longer than the buffer is cut, not overrun. The
 * doctor's nsswitch layer, which reads the file and loads the module, is
 * doctor-nss.c.
 *
 *     # comment to the end of the line
 *     hosts:   files ztna [!UNAVAIL=return] dns
 *
 * A service name runs to whitespace or '['; criteria are
 * "[" ( ["!"] STATUS "=" ACTION )+ "]", STATUS one of success, notfound,
 * unavail, tryagain and ACTION one of return, continue, merge (both any
 * case). "!STATUS=ACTION" sets every other status. Without criteria a
 * service returns on success and continues on anything else. glibc takes
 * the first line of a database and ignores a malformed one (then its
 * built-in default applies).
 */

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cli/doctor.h"
#include "macro.h"

#define NSS_LINE_MAX 4096u

static const char *const status_names[_NSS_STATUS_MAX] = {
        [NSS_STATUS_SUCCESS] = "SUCCESS",
        [NSS_STATUS_NOTFOUND] = "NOTFOUND",
        [NSS_STATUS_UNAVAIL] = "UNAVAIL",
        [NSS_STATUS_TRYAGAIN] = "TRYAGAIN",
};

static const char *const action_names[] = {
        [NSS_ACTION_CONTINUE] = "continue",
        [NSS_ACTION_RETURN] = "return",
        [NSS_ACTION_MERGE] = "merge",
};

static void service_defaults(NssService *s) {
        for (unsigned i = 0; i < _NSS_STATUS_MAX; i++)
                s->action[i] = i == NSS_STATUS_SUCCESS ? NSS_ACTION_RETURN : NSS_ACTION_CONTINUE;
        s->actions[0] = '\0';
}

static bool word_is(const char *p, size_t n, const char *word) {
        return strlen(word) == n && strncasecmp(p, word, n) == 0;
}

static void append(char *buf, size_t size, const char *s) {
        size_t have = strnlen(buf, size);

        if (have + 1 < size)
                snprintf(buf + have, size - have, "%s", s);
}

/* Criteria at p[0] == '['. On entry *pos is at the '['; on success at the
 * byte after the ']'. The service gets the actions and their normalised
 * text. -EBADMSG on anything glibc refuses. */
static int parse_actions(const char *p, size_t len, size_t *pos, NssService *s, char *err, size_t errlen) {
        size_t i = *pos + 1;
        bool any = false;

        append(s->actions, sizeof s->actions, "[");
        for (;;) {
                bool negate = false;
                size_t st, sn, at, an;
                int status = -1, action = -1;

                while (i < len && isspace((unsigned char) p[i]))
                        i++;
                if (i < len && p[i] == ']' && any) {
                        *pos = i + 1;
                        append(s->actions, sizeof s->actions, "]");
                        return 0;
                }
                if (i < len && p[i] == '!') {
                        negate = true;
                        i++;
                }
                st = i;
                while (i < len && isalpha((unsigned char) p[i]))
                        i++;
                sn = i - st;
                while (i < len && isspace((unsigned char) p[i]))
                        i++;
                if (i >= len || p[i] != '=') {
                        snprintf(err, errlen, "service '%s': criteria need STATUS=ACTION", s->name);
                        return -EBADMSG;
                }
                i++;
                while (i < len && isspace((unsigned char) p[i]))
                        i++;
                at = i;
                while (i < len && isalpha((unsigned char) p[i]))
                        i++;
                an = i - at;
                for (unsigned k = 0; k < _NSS_STATUS_MAX; k++)
                        if (word_is(p + st, sn, status_names[k]))
                                status = (int) k;
                for (unsigned k = 0; k < ELEMENTSOF(action_names); k++)
                        if (word_is(p + at, an, action_names[k]))
                                action = (int) k;
                if (status < 0 || action < 0) {
                        snprintf(err, errlen, "service '%s': unknown %s '%.*s' in its criteria", s->name,
                                 status < 0 ? "status" : "action", (int) (status < 0 ? sn : an) & 0x3f,
                                 p + (status < 0 ? st : at));
                        return -EBADMSG;
                }
                for (unsigned k = 0; k < _NSS_STATUS_MAX; k++)
                        if (negate ? k != (unsigned) status : k == (unsigned) status)
                                s->action[k] = (NssAction) action;
                {
                        char one[32];

                        snprintf(one, sizeof one, "%s%s%s=%s", any ? " " : "", negate ? "!" : "",
                                 status_names[status], action_names[action]);
                        append(s->actions, sizeof s->actions, one);
                }
                any = true;
        }
}

/* One hosts line's services, p[0..len) after the "hosts:". */
static int parse_services(const char *p, size_t len, NssHosts *h, char *err, size_t errlen) {
        size_t i = 0;

        h->n = 0;
        for (;;) {
                NssService *s;
                size_t start;

                while (i < len && isspace((unsigned char) p[i]))
                        i++;
                if (i >= len)
                        return 0;
                if (p[i] == '[') {
                        snprintf(err, errlen, "criteria '[...]' before any service");
                        return -EBADMSG;
                }
                if (h->n >= NSS_SERVICES_MAX) {
                        snprintf(err, errlen, "more than %u services", NSS_SERVICES_MAX);
                        return -EBADMSG;
                }
                s = &h->services[h->n];
                service_defaults(s);
                start = i;
                while (i < len && !isspace((unsigned char) p[i]) && p[i] != '[')
                        i++;
                if (i - start > NSS_SERVICE_NAME_MAX) {
                        snprintf(err, errlen, "a service name over %u bytes", NSS_SERVICE_NAME_MAX);
                        return -EBADMSG;
                }
                /* Shown on a terminal and written into a sed command:
                 * printable ASCII only (no real module has another name). */
                for (size_t k = start; k < i; k++)
                        s->name[k - start] = (unsigned char) p[k] > 0x20 && (unsigned char) p[k] < 0x7f ? p[k] : '?';
                s->name[i - start] = '\0';
                h->n++;
                while (i < len && isspace((unsigned char) p[i]))
                        i++;
                if (i < len && p[i] == '[') {
                        int r = parse_actions(p, len, &i, s, err, errlen);

                        if (r < 0)
                                return r;
                }
        }
}

int nss_parse_hosts(const char *data, size_t len, NssHosts *ret, char *err, size_t errlen) {
        size_t off = 0;
        unsigned lineno = 0;
        NssHosts h = {};

        if (len > NSS_FILE_MAX)
                len = NSS_FILE_MAX;
        while (off < len) {
                const char *line = data + off, *nl = memchr(line, '\n', len - off), *hash;
                size_t n = nl ? (size_t) (nl - line) : len - off, i = 0, name;

                off += n + (nl ? 1 : 0);
                lineno++;
                hash = memchr(line, '#', n);
                if (hash)
                        n = (size_t) (hash - line);
                while (i < n && isspace((unsigned char) line[i]))
                        i++;
                name = i;
                while (i < n && !isspace((unsigned char) line[i]) && line[i] != ':')
                        i++;
                if (i - name != 5 || memcmp(line + name, "hosts", 5) != 0)
                        continue;
                while (i < n && isspace((unsigned char) line[i]))
                        i++;
                if (i >= n || line[i] != ':')
                        continue; /* not a database line: glibc skips it */
                if (h.found) {
                        if (!h.duplicate_line)
                                h.duplicate_line = lineno;
                        continue;
                }
                if (n - i - 1 > NSS_LINE_MAX) {
                        snprintf(err, errlen, "line %u: hosts line over %u bytes", lineno, NSS_LINE_MAX);
                        return -EBADMSG;
                }
                h.found = true;
                h.line = lineno;
                {
                        char why[NSS_ERROR_MAX];
                        int r = parse_services(line + i + 1, n - i - 1, &h, why, sizeof why);

                        if (r < 0) {
                                snprintf(err, errlen, "line %u: %s", lineno, why);
                                return r;
                        }
                }
        }
        *ret = h;
        return 0;
}

void nss_hosts_default(NssHosts *ret) {
        /* glibc 2.36 nss/nss_database.c: "dns [!UNAVAIL=return] files". */
        static const char line[] = "dns [!UNAVAIL=return] files";
        char err[NSS_ERROR_MAX];
        NssHosts h = {};

        (void) parse_services(line, sizeof line - 1, &h, err, sizeof err);
        h.found = false;
        *ret = h;
}

void nss_hosts_format(const NssHosts *h, char *buf, size_t size) {
        if (size == 0)
                return;
        buf[0] = '\0';
        for (size_t i = 0; i < h->n; i++) {
                if (i)
                        append(buf, size, " ");
                append(buf, size, h->services[i].name);
                if (h->services[i].actions[0]) {
                        append(buf, size, " ");
                        append(buf, size, h->services[i].actions);
                }
        }
}

static bool is_ztna(const NssService *s) {
        return strcmp(s->name, "ztna") == 0;
}

/* Modules that send a name out to DNS (or to a WINS server): a tailnet name
 * asked of them first leaks, and comes back with the public answer. */
static bool asks_dns(const NssService *s) {
        return strcmp(s->name, "dns") == 0 || strcmp(s->name, "resolve") == 0 || strcmp(s->name, "wins") == 0;
}

static bool is_mdns(const NssService *s) {
        return strncmp(s->name, "mdns", 4) == 0;
}

/* Modules that answer only for this machine and its files: ztna's place is
 * right after them. */
static bool is_local(const NssService *s) {
        return strcmp(s->name, "files") == 0 || strcmp(s->name, "myhostname") == 0 ||
               strcmp(s->name, "mymachines") == 0;
}

bool nss_domain_is_local(const char *domain) {
        size_t n;

        if (!domain)
                return false;
        n = strlen(domain);
        if (n && domain[n - 1] == '.')
                n--;
        return (n == 5 && strncasecmp(domain, "local", 5) == 0) ||
               (n > 6 && strncasecmp(domain + n - 6, ".local", 6) == 0);
}

/* Whether an mdns module ahead of ztna takes names under `domain`: the
 * _minimal ones take .local only; the full ones whatever mdns.allow lists
 * (.local without that file). */
static bool mdns_takes(const NssService *s, const char *domain, bool allowed) {
        size_t n = strlen(s->name);
        bool minimal = n > 8 && strcmp(s->name + n - 8, "_minimal") == 0;

        return nss_domain_is_local(domain) || (!minimal && allowed);
}

/* The list with every ztna taken out and "ztna [!UNAVAIL=return]" put right
 * after the leading local modules. */
static void fix_line(const NssHosts *h, char *buf, size_t size) {
        NssHosts out = { .found = true };
        bool placed = false;

        for (size_t i = 0; i < h->n && out.n < NSS_SERVICES_MAX; i++) {
                if (is_ztna(&h->services[i]))
                        continue;
                if (!placed && !is_local(&h->services[i])) {
                        NssService *z = &out.services[out.n++];

                        service_defaults(z);
                        snprintf(z->name, sizeof z->name, "ztna");
                        snprintf(z->actions, sizeof z->actions, "[!UNAVAIL=return]");
                        placed = true;
                        if (out.n >= NSS_SERVICES_MAX)
                                break;
                }
                out.services[out.n++] = h->services[i];
        }
        if (!placed && out.n < NSS_SERVICES_MAX) {
                NssService *z = &out.services[out.n++];

                service_defaults(z);
                snprintf(z->name, sizeof z->name, "ztna");
        }
        nss_hosts_format(&out, buf, size);
}

NssVerdict nss_judge(const NssHosts *h, const char *domain, bool mdns_allowed, char *detail, size_t detail_len, char *fixed,
                     size_t fixed_len) {
        size_t z;

        if (detail_len)
                detail[0] = '\0';
        if (fixed_len)
                fixed[0] = '\0';
        for (z = 0; z < h->n; z++)
                if (is_ztna(&h->services[z]))
                        break;
        if (z == h->n) {
                fix_line(h, fixed, fixed_len);
                return NSS_VERDICT_MISSING;
        }
        for (size_t i = 0; i < z; i++) {
                const NssService *s = &h->services[i];

                if (asks_dns(s)) {
                        snprintf(detail, detail_len, "%s%s%s", s->name, s->actions[0] ? " " : "", s->actions);
                        fix_line(h, fixed, fixed_len);
                        return NSS_VERDICT_AFTER_DNS;
                }
                if (is_mdns(s) && mdns_takes(s, domain, mdns_allowed)) {
                        snprintf(detail, detail_len, "%s%s%s", s->name, s->actions[0] ? " " : "", s->actions);
                        fix_line(h, fixed, fixed_len);
                        return NSS_VERDICT_AFTER_MDNS;
                }
        }
        if (z + 1 < h->n) {
                const NssService *s = &h->services[z];
                static const NssStatus must_return[] = { NSS_STATUS_SUCCESS, NSS_STATUS_NOTFOUND,
                                                         NSS_STATUS_TRYAGAIN };

                for (size_t k = 0; k < ELEMENTSOF(must_return); k++)
                        if (s->action[must_return[k]] != NSS_ACTION_RETURN) {
                                snprintf(detail, detail_len, "%s", status_names[must_return[k]]);
                                fix_line(h, fixed, fixed_len);
                                return NSS_VERDICT_NO_RETURN;
                        }
        }
        return NSS_VERDICT_OK;
}

bool nss_mdns_allow_matches(const char *data, size_t len, const char *domain) {
        size_t off = 0, dn;

        if (!domain)
                return false;
        dn = strlen(domain);
        if (dn && domain[dn - 1] == '.')
                dn--;
        if (len > NSS_FILE_MAX)
                len = NSS_FILE_MAX;
        while (off < len) {
                const char *line = data + off, *nl = memchr(line, '\n', len - off);
                size_t n = nl ? (size_t) (nl - line) : len - off, b = 0, e;

                off += n + (nl ? 1 : 0);
                while (b < n && isspace((unsigned char) line[b]))
                        b++;
                e = n;
                while (e > b && isspace((unsigned char) line[e - 1]))
                        e--;
                if (b == e || line[b] == '#')
                        continue;
                if (e - b == 1 && line[b] == '*')
                        return true;
                while (b < e && line[b] == '.')
                        b++;
                while (e > b && line[e - 1] == '.')
                        e--;
                if (b == e || e - b > dn)
                        continue;
                if (strncasecmp(domain + dn - (e - b), line + b, e - b) == 0 &&
                    (e - b == dn || domain[dn - (e - b) - 1] == '.'))
                        return true;
        }
        return false;
}
