/* SPDX-License-Identifier: MIT */
/*
 * ztnad.conf the file: reading it, its lines, sections and assignments,
 * errors that name the file, the line and the key; the checks of keys that
 * need each other; the defaults for what the file leaves out; loading,
 * freeing, printing and comparing a configuration. Each key is a row of the
 * table (config-keys.c); each value goes through its type (config-types.c).
 */

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/config.h"
#include "conf/config-internal.h"
#include "conf/config-keys.h"
#include "common/read-file.h"
#include "macro.h"

/* A value, after its quotes are taken off, is at most this long. config_print
 * writes a value back quoted and escaped (at worst twice its length plus the
 * quotes) after the longest key: that line must still fit CONFIG_LINE_MAX so
 * that what it prints parses again. A list prints at most a few bytes longer
 * than it was written (an IPv6 address in RFC 5952 form, see
 * config_address_format()), which the same margin covers. */
#define CONFIG_VALUE_MAX 2000u
#define KEY_NAME_MAX 32u
static_assert(KEY_NAME_MAX + 3 + 2 * CONFIG_VALUE_MAX + 2 <= CONFIG_LINE_MAX, "a quoted value must fit a line");
static_assert(KEY_NAME_MAX + 3 + CONFIG_VALUE_MAX + CONFIG_UPSTREAM_MAX <= CONFIG_LINE_MAX, "a list must fit a line");
static_assert(KEY_NAME_MAX + 3 + CONFIG_VALUE_MAX + CONFIG_RANGES_MAX <= CONFIG_LINE_MAX, "a list must fit a line");

static const Key *key_find(const char *name) {
        for (size_t i = 0; i < CONFIG_N_KEYS; i++)
                if (strcmp(config_keys[i].name, name) == 0)
                        return &config_keys[i];
        return NULL;
}

static void *key_field(ZtnadConfig *c, const Key *k) {
        return (char *) c + k->offset;
}

static const void *key_field_const(const ZtnadConfig *c, const Key *k) {
        return (const char *) c + k->offset;
}

/* ---- the file ---- */

typedef struct Parser {
        const char *source;
        ConfigError *err;
        unsigned set_line[CONFIG_N_KEYS]; /* 0: not in the file */
} Parser;

/* Fills `err` ("SOURCE:LINE: key 'K': PROBLEM", the parts that apply) and
 * returns `code`. `key` is the name as written, possibly not a known one. */
__attribute__((format(printf, 6, 7)))
static int fail(const Parser *p, int code, unsigned line, const char *key, size_t key_len, const char *fmt, ...) {
        ConfigError *e = p->err;
        char at[16] = "", named[sizeof e->key + 8] = "";
        va_list ap;
        int n;

        if (!e)
                return code;
        *e = (ConfigError) { .line = line };
        (void) snprintf(e->file, sizeof e->file, "%s", p->source);
        if (key) {
                size_t k = key_len < sizeof e->key - 1 ? key_len : sizeof e->key - 1;

                memcpy(e->key, key, k);
                e->key[k] = '\0';
                (void) snprintf(named, sizeof named, " key '%s':", e->key);
        }
        if (line > 0)
                (void) snprintf(at, sizeof at, ":%u", line);

        n = snprintf(e->message, sizeof e->message, "%s%s:%s ", p->source, at, named);
        if (n >= 0 && (size_t) n < sizeof e->message) {
                va_start(ap, fmt);
                (void) vsnprintf(e->message + n, sizeof e->message - (size_t) n, fmt, ap);
                va_end(ap);
        }

        /* Values are shown escaped already; the source and a key as written
         * are not ours. */
        for (char *s = e->message; *s; s++)
                if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f)
                        *s = '?';
        for (char *s = e->key; *s; s++)
                if ((unsigned char) *s < 0x20 || (unsigned char) *s >= 0x7f)
                        *s = '?';
        return code;
}

static void trim(const char **s, size_t *len) {
        while (*len > 0 && config_is_blank((*s)[0])) {
                (*s)++;
                (*len)--;
        }
        while (*len > 0 && config_is_blank((*s)[*len - 1]))
                (*len)--;
}

/* Takes the quotes off a value into `buf` (CONFIG_LINE_MAX + 1 bytes): a
 * value that starts with '"' must end with the matching '"', and only \"
 * and \\ are escapes in it. Anything else is taken as it is. */
static int unquote(const Parser *p, unsigned line, const char *key, size_t key_len, const char *v, size_t len,
                   char *buf) {
        size_t o = 0;

        if (len == 0 || v[0] != '"') {
                memcpy(buf, v, len);
                buf[len] = '\0';
                return 0;
        }
        for (size_t i = 1; i < len; i++) {
                if (v[i] == '\\') {
                        if (i + 1 == len || (v[i + 1] != '"' && v[i + 1] != '\\'))
                                return fail(p, -EBADMSG, line, key, key_len,
                                            "unknown escape in a quoted value (only \\\" and \\\\ are escapes)");
                        buf[o++] = v[++i];
                        continue;
                }
                if (v[i] == '"') {
                        if (i + 1 != len)
                                return fail(p, -EBADMSG, line, key, key_len,
                                            "text after the closing quote (a comment must be on a line of its own)");
                        buf[o] = '\0';
                        return 0;
                }
                buf[o++] = v[i];
        }
        return fail(p, -EBADMSG, line, key, key_len, "the quoted value has no closing '\"'");
}

static int parse_section(const Parser *p, unsigned line, const char *s, size_t len, Section *section) {
        char q[SHOW_MAX];
        const char *name = s + 1;
        size_t name_len;

        if (s[len - 1] != ']')
                return fail(p, -EBADMSG, line, NULL, 0,
                            "a section header must end with ']' (a comment must be on a line of its own)");
        name_len = len - 2;
        trim(&name, &name_len);
        for (int i = 0; i < _SECTION_MAX; i++)
                if (strlen(config_section_names[i]) == name_len &&
                    memcmp(config_section_names[i], name, name_len) == 0) {
                        *section = (Section) i;
                        return 0;
                }
        return fail(p, -EBADMSG, line, NULL, 0, "unknown section %s; the sections are [ztnad] and [dns]",
                    config_show(q, s, len));
}

static int parse_assignment(Parser *p, ZtnadConfig *c, unsigned line, Section section, const char *s, size_t len,
                            char *value) {
        const char *eq = memchr(s, '=', len), *key = s, *v;
        size_t key_len, v_len;
        char name[KEY_NAME_MAX + 1], why[WHY_MAX];
        const Key *k;
        size_t idx;
        int r;

        if (!eq)
                return fail(p, -EBADMSG, line, NULL, 0,
                            "expected 'key = value', a [section] header or a comment ('#' or ';' first)");
        key_len = (size_t) (eq - s);
        trim(&key, &key_len);
        v = eq + 1;
        v_len = (size_t) (s + len - v);
        trim(&v, &v_len);
        if (key_len == 0)
                return fail(p, -EBADMSG, line, NULL, 0, "no key before '='");

        k = NULL;
        if (key_len <= KEY_NAME_MAX) {
                memcpy(name, key, key_len);
                name[key_len] = '\0';
                k = key_find(name);
        }
        if (!k) {
                /* A hint for the commonest slip. */
                for (size_t i = 0; i < CONFIG_N_KEYS; i++)
                        if (config_ascii_equal_n(key, key_len, config_keys[i].name))
                                return fail(p, -EBADMSG, line, key, key_len,
                                            "unknown key; keys are lower case: did you mean '%s'?",
                                            config_keys[i].name);
                return fail(p, -EBADMSG, line, key, key_len, "unknown key (see ztnad.conf(5))");
        }
        if (k->section != section)
                return fail(p, -EBADMSG, line, key, key_len, "belongs in section [%s], not [%s]",
                            config_section_names[k->section], config_section_names[section]);
        idx = (size_t) (k - config_keys);
        if (p->set_line[idx] > 0)
                return fail(p, -EBADMSG, line, key, key_len, "given twice, on lines %u and %u", p->set_line[idx],
                            line);
        p->set_line[idx] = line;

        r = unquote(p, line, key, key_len, v, v_len, value);
        if (r < 0)
                return r;
        if (strlen(value) > CONFIG_VALUE_MAX)
                return fail(p, -EBADMSG, line, key, key_len, "the value is %zu bytes long; the limit is %u",
                            strlen(value), CONFIG_VALUE_MAX);
        r = config_parsers[k->type](k, value, key_field(c, k), why, sizeof why);
        if (r == -ENOMEM)
                return fail(p, r, line, key, key_len, "out of memory");
        if (r < 0)
                return fail(p, r, line, key, key_len, "%s", why);
        return 0;
}

/* One line, without its ending ("\n", or "\r\n"). */
static int parse_line(Parser *p, ZtnadConfig *c, unsigned line, Section *section, const char *s, size_t len,
                      char *value) {
        if (len > CONFIG_LINE_MAX)
                return fail(p, -EBADMSG, line, NULL, 0, "the line is %zu bytes long; the limit is %u", len,
                            CONFIG_LINE_MAX);
        for (size_t i = 0; i < len; i++) {
                unsigned char ch = (unsigned char) s[i];

                if (ch == '\0')
                        return fail(p, -EBADMSG, line, NULL, 0, "contains a NUL byte (column %zu)", i + 1);
                if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
                        return fail(p, -EBADMSG, line, NULL, 0, "contains the control character 0x%02x (column %zu)",
                                    ch, i + 1);
        }

        trim(&s, &len);
        if (len == 0 || s[0] == '#' || s[0] == ';')
                return 0;
        if (s[0] == '[')
                return parse_section(p, line, s, len, section);
        return parse_assignment(p, c, line, *section, s, len, value);
}

/* The line that set `name`, else the one that set `other` (may be NULL), else
 * 0: where to point when a key is wrong because of another. */
static unsigned line_of(const Parser *p, const char *name, const char *other) {
        const Key *k = key_find(name), *o = other ? key_find(other) : NULL;

        assert(k && (!other || o));
        if (p->set_line[k - config_keys] > 0 || !o)
                return p->set_line[k - config_keys];
        return p->set_line[o - config_keys];
}

/* What no single value shows: keys that need each other. */
static int check_together(const Parser *p, const ZtnadConfig *c) {
        char q[SHOW_MAX], text[ADDRESS_TEXT_MAX];

        if (c->control_url && !c->org_id)
                return fail(p, -EBADMSG, line_of(p, "org_id", "control_url"), "org_id", strlen("org_id"),
                            "missing; required because control_url is set");
        if (!c->stub)
                return 0;
        if (c->listen.n == 0)
                return fail(p, -EBADMSG, line_of(p, "listen", "stub"), "listen", strlen("listen"),
                            "is empty, but the stub is on (set stub = no to run without it)");
        if (c->upstream.n == 0)
                return fail(p, -EBADMSG, line_of(p, "upstream", "stub"), "upstream", strlen("upstream"),
                            "is empty, but the stub is on (set stub = no to run without it)");
        for (size_t i = 0; i < c->upstream.n; i++)
                for (size_t j = 0; j < c->listen.n; j++)
                        if (config_address_same(&c->upstream.items[i], &c->listen.items[j]))
                                return fail(p, -EBADMSG, line_of(p, "upstream", "listen"), "upstream",
                                            strlen("upstream"),
                                            "%s is also a listen address; the stub would forward to itself",
                                            config_show_str(q, config_address_format(&c->upstream.items[i], text)));
        return 0;
}

int config_parse(const char *data, size_t len, const char *source, ZtnadConfig **ret, ConfigError *err) {
        Parser p = { .source = source ? source : "ztnad.conf", .err = err };
        _cleanup_config_ ZtnadConfig *c = NULL;
        _cleanup_free_ char *value = NULL;
        Section section = SECTION_ZTNAD;
        const char *s = data, *end;
        unsigned line = 0;
        int r;

        if (len > CONFIG_FILE_MAX)
                return fail(&p, -E2BIG, 0, NULL, 0, "is %zu bytes; the limit is %zu", len, CONFIG_FILE_MAX);
        if (len == 0)
                s = "";
        end = s + len;

        c = calloc(1, sizeof *c);
        value = malloc(CONFIG_LINE_MAX + 1);
        if (!c || !value)
                return fail(&p, -ENOMEM, 0, NULL, 0, "out of memory");

        /* Some editors start a UTF-8 file with a byte order mark. */
        if (len >= 3 && memcmp(s, "\xef\xbb\xbf", 3) == 0)
                s += 3;
        while (s < end) {
                const char *nl = memchr(s, '\n', (size_t) (end - s));
                const char *eol = nl ? nl : end;
                size_t n = (size_t) (eol - s);

                /* The file is capped at 1 MiB, so the count cannot wrap. */
                line++;
                if (n > 0 && s[n - 1] == '\r')
                        n--;
                r = parse_line(&p, c, line, &section, s, n, value);
                if (r < 0)
                        return r;
                s = nl ? nl + 1 : end;
        }

        for (size_t i = 0; i < CONFIG_N_KEYS; i++) {
                char why[WHY_MAX];

                if (p.set_line[i] > 0)
                        continue;
                r = config_parsers[config_keys[i].type](&config_keys[i], config_keys[i].def,
                                                        key_field(c, &config_keys[i]), why, sizeof why);
                if (r == -ENOMEM)
                        return fail(&p, r, 0, NULL, 0, "out of memory");
                /* The tests hold every default to its own parser. */
                assert(r == 0);
        }

        r = check_together(&p, c);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(c);
        return 0;
}

int config_defaults(ZtnadConfig **ret) {
        return config_parse(NULL, 0, "defaults", ret, NULL);
}

size_t config_plaintext_fallback_defaults(struct sockaddr_storage *ret, size_t max, char *text, size_t text_size) {
        _cleanup_config_ ZtnadConfig *d = NULL;
        size_t n = 0, pos = 0;

        if (text && text_size)
                text[0] = '\0';
        if (config_defaults(&d) < 0)
                return 0;
        for (size_t i = 0; i < d->upstream.n && n < max; i++) {
                struct sockaddr_storage a = d->upstream.items[i].sa;
                char ip[INET6_ADDRSTRLEN];
                const void *raw;

                if (a.ss_family == AF_INET) {
                        struct sockaddr_in *in = (struct sockaddr_in *) (void *) &a;
                        in->sin_port = htons(53);
                        raw = &in->sin_addr;
                } else if (a.ss_family == AF_INET6) {
                        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) (void *) &a;
                        in6->sin6_port = htons(53);
                        raw = &in6->sin6_addr;
                } else
                        continue;
                ret[n++] = a;
                if (text && pos < text_size && inet_ntop(a.ss_family, raw, ip, sizeof ip)) {
                        int k = snprintf(text + pos, text_size - pos, "%s%s", n == 1 ? "" : " and ", ip);
                        if (k > 0)
                                pos += (size_t) k;
                }
        }
        return n;
}

int config_load(const char *path, ZtnadConfig **ret, ConfigError *err) {
        Parser p = { .source = path ? path : CONFIG_DEFAULT_PATH, .err = err };
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        ReadFileStep step;
        size_t n;
        int r;

        r = read_regular_file(p.source, CONFIG_FILE_MAX, 0, &buf, &n, &st, &step);
        if (r == -ENOENT && step == READ_FILE_OPEN && !path) {
                r = config_parse(NULL, 0, p.source, ret, err);
                return r < 0 ? r : 1;
        }
        if (r < 0) {
                if (step == READ_FILE_OPEN)
                        return fail(&p, r, 0, NULL, 0, "cannot open: %s", strerror(-r));
                if (step == READ_FILE_STAT)
                        return fail(&p, r, 0, NULL, 0, "cannot stat: %s", strerror(-r));
                if (r == -EINVAL && step == READ_FILE_CHECK)
                        return fail(&p, r, 0, NULL, 0, "is not a regular file");
                if (r == -EFBIG && step == READ_FILE_CHECK)
                        return fail(&p, -E2BIG, 0, NULL, 0, "is %jd bytes; the limit is %zu", (intmax_t) st.st_size,
                                    CONFIG_FILE_MAX);
                if (r == -ENOMEM)
                        return fail(&p, r, 0, NULL, 0, "out of memory");
                if (r == -EAGAIN)
                        return fail(&p, r, 0, NULL, 0, "changed while it was read");
                return fail(&p, r, 0, NULL, 0, "cannot read: %s", strerror(-r));
        }

        return config_parse(buf, n, p.source, ret, err);
}

ZtnadConfig *config_free(ZtnadConfig *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < CONFIG_N_KEYS; i++)
                config_value_free(&config_keys[i], key_field(c, &config_keys[i]));
        free(c);
        return NULL;
}

unsigned config_diff(const ZtnadConfig *a, const ZtnadConfig *b, char *buf, size_t size, size_t *ret_n) {
        size_t n = 0, used = 0;
        unsigned apply = 0;

        if (size > 0)
                buf[0] = '\0';
        for (size_t i = 0; i < CONFIG_N_KEYS; i++) {
                if (config_value_equal(&config_keys[i], key_field_const(a, &config_keys[i]),
                                       key_field_const(b, &config_keys[i])))
                        continue;
                if (used < size) {
                        int k = snprintf(buf + used, size - used, "%s%s", n > 0 ? ", " : "", config_keys[i].name);
                        used += k > 0 ? (size_t) k : 0;
                }
                apply |= config_keys[i].apply;
                n++;
        }
        if (ret_n)
                *ret_n = n;
        return apply;
}

void config_print(const ZtnadConfig *c, FILE *f) {
        for (int s = 0; s < _SECTION_MAX; s++) {
                fprintf(f, "%s[%s]\n", s > 0 ? "\n" : "", config_section_names[s]);
                for (size_t i = 0; i < CONFIG_N_KEYS; i++) {
                        const void *field = key_field_const(c, &config_keys[i]);

                        if (config_keys[i].section != (Section) s)
                                continue;
                        /* "key =" alone for an empty value: no trailing
                         * blank. */
                        fprintf(f, "%s =", config_keys[i].name);
                        if (!config_value_empty(&config_keys[i], field)) {
                                fputc(' ', f);
                                config_value_print(&config_keys[i], field, f);
                        }
                        fputc('\n', f);
                }
        }
}
