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
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <inttypes.h>
#include <jansson.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "conf/config.h"
#include "control/control-protocol.h"
#include "sources/controlplane.h"
#include "cli/doctor.h"
#include "macro.h"
#include "shm-format.h"
#include "shm.h"
#include "common/version.h"
#include "common/time-util.h"
#include "common/read-file.h"

/* Exit codes: the same in --help and man/ztna.1. */
enum {
        EXIT_OK = 0,            /* dns query: found */
        EXIT_NOT_FOUND = 1,     /* dns query: no such peer or address */
        EXIT_USAGE = 2,
        EXIT_UNAVAILABLE = 3,   /* ztnad unreachable or busy; with --local, the store */
        EXIT_NOT_AUTHORISED = 4,
        EXIT_FAILED = 5,        /* a push rejected, or any other failure */
        /* doctor: 0 healthy, DOCTOR_EXIT_DEGRADED (6), DOCTOR_EXIT_BROKEN (7) */
};

/* The "code" of a --json failure found by ztna itself rather than refused
 * by ztnad (those carry ztnad's CONTROL_CODE_*). */
#define CLIENT_CODE_USAGE "usage"
#define CLIENT_CODE_UNREACHABLE "unreachable"     /* ztnad could not be asked */
#define CLIENT_CODE_STORE "store-unavailable"     /* --local: the store cannot be read */
#define CLIENT_CODE_FILE "cannot-read"            /* push: the document cannot be read */

/* A push of a large document is validated whole before ztnad answers. */
#define DEFAULT_TIMEOUT_SEC 30
/* The doctor's question to ztnad: a live ztnad answers status at once. */
#define DOCTOR_DAEMON_TIMEOUT_USEC (USEC_PER_SEC / 2)
/* A list of a very large tailnet; anything longer is not ztnad talking. */
#define REPLY_MAX ((size_t) 512 << 20)
#define ERROR_MAX 512

typedef struct Args {
        const char *config; /* -c, NULL for the default path */
        const char *store;  /* --store, NULL for the reader's default */
        const char *socket; /* --socket, NULL for the default */
        bool json;
        bool local;
        bool timeout_set; /* -t given */
        uint64_t timeout_usec;
} Args;

static const char *socket_path(const Args *a) {
        return a->socket ? a->socket : CONTROL_DEFAULT_PATH;
}

static const char *store_display(const Args *a) {
        const char *p;

        /* The reader's own choice, spelled out for messages. */
        if (a->store)
                return a->store;
        p = secure_getenv(SHM_ENV_PATH);
        return p && p[0] ? p : SHM_DEFAULT_PATH;
}

/* ---- output ---- */

/* One line of JSON on stdout: ", " and ": " between items, as before. */
static void print_json(const json_t *j) {
        char *text = json_dumps(j, JSON_ENCODE_ANY);

        if (!text) {
                fprintf(stderr, "ztna: out of memory\n");
                return;
        }
        puts(text);
        free(text);
}

static void format_time(uint64_t usec, char *buf, size_t size) {
        time_t t = (time_t) (usec / USEC_PER_SEC);
        struct tm tm;

        if (usec == 0 || !gmtime_r(&t, &tm) || strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
                (void) snprintf(buf, size, "never");
}

static uint64_t age_sec(uint64_t then, uint64_t now) {
        /* The wall clock may step back; an age is never negative. */
        return now > then ? (now - then) / USEC_PER_SEC : 0;
}

static bool has_suffix(const char *s, const char *suffix) {
        size_t n = strlen(s), m = strlen(suffix);

        return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* "last_success_usec" -> "last success". */
static void key_label(const char *key, char *buf, size_t size) {
        size_t n = strlen(key);

        if (has_suffix(key, "_usec"))
                n -= 5;
        if (n >= size)
                n = size - 1;
        for (size_t i = 0; i < n; i++)
                buf[i] = key[i] == '_' ? ' ' : key[i];
        buf[n] = '\0';
}

static void print_scalar(const char *key, const json_t *v) {
        char buf[64];

        if (key && has_suffix(key, "_usec") && (json_is_integer(v) || json_is_null(v))) {
                /* A wall-clock time in µs since the epoch (the protocol's
                 * convention), shown with its age. */
                uint64_t t = json_is_integer(v) && json_integer_value(v) > 0 ? (uint64_t) json_integer_value(v) : 0;

                format_time(t, buf, sizeof buf);
                if (t)
                        printf("%s (%" PRIu64 " s ago)", buf, age_sec(t, clock_now_usec(CLOCK_REALTIME)));
                else
                        fputs(buf, stdout);
                return;
        }
        if (key && has_suffix(key, "_in") && json_is_number(v)) {
                /* A delay in seconds ("next_attempt_in"). */
                printf("%.1f s", json_number_value(v));
                return;
        }
        switch (json_typeof(v)) {
        case JSON_STRING:
                fputs(json_string_value(v), stdout);
                break;
        case JSON_INTEGER:
                printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
                break;
        case JSON_REAL:
                printf("%g", json_real_value(v));
                break;
        case JSON_TRUE:
                fputs("yes", stdout);
                break;
        case JSON_FALSE:
                fputs("no", stdout);
                break;
        case JSON_NULL:
                fputs("none", stdout);
                break;
        default: {
                char *text = json_dumps(v, JSON_ENCODE_ANY);

                fputs(text ? text : "?", stdout);
                free(text);
        }
        }
}

static bool is_scalar_array(const json_t *v) {
        size_t i;
        json_t *item;

        json_array_foreach(v, i, item)
                if (json_is_object(item) || json_is_array(item))
                        return false;
        return true;
}

/* Starts a line at `indent`, or, for the first line of a list item, with
 * "- " just before it. */
static void line_start(int indent, bool *dash) {
        if (*dash) {
                printf("%*s- ", indent - 2, "");
                *dash = false;
        } else
                printf("%*s", indent, "");
}

static bool is_nested(const json_t *v) {
        return json_is_object(v) || (json_is_array(v) && !is_scalar_array(v));
}

/* Whatever ztnad's status holds, as indented "key: value" lines; a list of
 * objects (the sources) as "- " items. */
static void print_object_text(const json_t *obj, int indent, bool dash) {
        const char *key;
        json_t *v;
        int width = 0;

        json_object_foreach((json_t *) obj, key, v) {
                char label[64];

                key_label(key, label, sizeof label);
                if (!is_nested(v) && (int) strlen(label) > width)
                        width = (int) strlen(label);
        }
        json_object_foreach((json_t *) obj, key, v) {
                char label[64];

                key_label(key, label, sizeof label);
                line_start(indent, &dash);
                if (json_is_object(v)) {
                        printf("%s:\n", label);
                        print_object_text(v, indent + 2, false);
                } else if (json_is_array(v) && !is_scalar_array(v)) {
                        size_t i;
                        json_t *item;

                        printf("%s:\n", label);
                        json_array_foreach(v, i, item) {
                                if (json_is_object(item))
                                        print_object_text(item, indent + 4, true);
                                else {
                                        printf("%*s- ", indent + 2, "");
                                        print_scalar(NULL, item);
                                        putchar('\n');
                                }
                        }
                } else {
                        printf("%s:%*s ", label, width - (int) strlen(label), "");
                        if (json_is_array(v)) {
                                size_t i;
                                json_t *item;

                                json_array_foreach(v, i, item) {
                                        fputs(i ? " " : "", stdout);
                                        print_scalar(NULL, item);
                                }
                        } else
                                print_scalar(key, v);
                        putchar('\n');
                }
        }
}

/* ---- the control socket ---- */

typedef struct Conn {
        int fd;
        uint64_t deadline; /* CLOCK_MONOTONIC µs */
        char *buf;         /* bytes read past the last reply */
        size_t len, size;
} Conn;

static void conn_done(Conn *c) {
        safe_close(c->fd);
        c->fd = -1;
        free(c->buf);
        c->buf = NULL;
        c->len = c->size = 0;
}

/* Waits for `events` until the deadline. 1 ready, 0 timed out, -errno. */
static int conn_wait(Conn *c, short events) {
        for (;;) {
                uint64_t now = clock_now_usec(CLOCK_MONOTONIC);
                struct pollfd p = { .fd = c->fd, .events = events };
                int r;

                if (now >= c->deadline)
                        return 0;
                r = poll(&p, 1, (int) ((c->deadline - now + USEC_PER_MSEC - 1) / USEC_PER_MSEC));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return -errno;
                if (r > 0)
                        return 1;
        }
}

static int conn_open(const Args *a, Conn *ret, char *err, size_t errlen) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        const char *path = socket_path(a);
        _cleanup_close_ int fd = -1;

        if (strlen(path) >= sizeof sa.sun_path) {
                snprintf(err, errlen, "socket path too long");
                return -ENAMETOOLONG;
        }
        memcpy(sa.sun_path, path, strlen(path));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *) &sa, sizeof sa) < 0) {
                int r = -errno;

                snprintf(err, errlen, "%s", strerror(-r));
                return r;
        }
        /* Blocking connect (a local socket answers at once), then
         * non-blocking I/O against a deadline. */
        if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
                snprintf(err, errlen, "%s", strerror(errno));
                return -errno;
        }
        *ret = (Conn) { .fd = TAKE_FD(fd), .deadline = clock_now_usec(CLOCK_MONOTONIC) + a->timeout_usec };
        return 0;
}

/* Sends one request line. A server that refuses early (a push too large
 * for this user) answers and closes while we are still sending: then the
 * rest is dropped and its answer read. */
static int conn_send(Conn *c, const json_t *request, char *err, size_t errlen) {
        _cleanup_free_ char *text = json_dumps(request, JSON_COMPACT);
        size_t len, off = 0;

        if (!text) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        len = strlen(text);
        text[len++] = '\n'; /* over the NUL: the length is what counts */
        while (off < len) {
                ssize_t n = send(c->fd, text + off, len - off, MSG_NOSIGNAL);
                int r;

                if (n >= 0) {
                        off += (size_t) n;
                        continue;
                }
                if (errno == EPIPE || errno == ECONNRESET)
                        return 0;
                if (errno != EAGAIN && errno != EINTR) {
                        snprintf(err, errlen, "cannot send to ztnad: %s", strerror(errno));
                        return -errno;
                }
                r = conn_wait(c, POLLOUT);
                if (r == 0) {
                        snprintf(err, errlen, "ztnad did not take the request in time");
                        return -ETIMEDOUT;
                }
                if (r < 0) {
                        snprintf(err, errlen, "%s", strerror(-r));
                        return r;
                }
        }
        return 0;
}

/* Reads one reply line and parses it. */
static int conn_receive(Conn *c, json_t **ret, char *err, size_t errlen) {
        json_error_t jerr;
        char *nl;
        json_t *j;

        while (!(nl = memchr(c->buf ? c->buf : "", '\n', c->len))) {
                ssize_t n;
                int r;

                if (c->len >= REPLY_MAX) {
                        snprintf(err, errlen, "ztnad's answer is over %zu bytes", REPLY_MAX);
                        return -E2BIG;
                }
                if (c->size - c->len < 65536) {
                        size_t size = c->size ? c->size * 2 : 65536;
                        char *p = realloc(c->buf, size);

                        if (!p) {
                                snprintf(err, errlen, "out of memory");
                                return -ENOMEM;
                        }
                        c->buf = p;
                        c->size = size;
                }
                n = recv(c->fd, c->buf + c->len, c->size - c->len, 0);
                if (n > 0) {
                        c->len += (size_t) n;
                        continue;
                }
                if (n == 0 || errno == ECONNRESET) {
                        snprintf(err, errlen, "ztnad closed the connection without an answer");
                        return -ECONNRESET;
                }
                if (errno != EAGAIN && errno != EINTR) {
                        snprintf(err, errlen, "cannot read from ztnad: %s", strerror(errno));
                        return -errno;
                }
                r = conn_wait(c, POLLIN);
                if (r == 0) {
                        snprintf(err, errlen, "ztnad did not answer in time");
                        return -ETIMEDOUT;
                }
                if (r < 0) {
                        snprintf(err, errlen, "%s", strerror(-r));
                        return r;
                }
        }

        j = json_loadb(c->buf, (size_t) (nl - c->buf), 0, &jerr);
        c->len -= (size_t) (nl - c->buf) + 1;
        memmove(c->buf, nl + 1, c->len);
        if (!j || !json_is_object(j) || !json_is_boolean(json_object_get(j, "ok"))) {
                json_decref(j);
                snprintf(err, errlen, "ztnad's answer is not a reply of this protocol");
                return -EBADMSG;
        }
        *ret = j;
        return 0;
}

static int conn_call(Conn *c, const json_t *request, json_t **ret, char *err, size_t errlen) {
        int r = conn_send(c, request, err, errlen);

        return r < 0 ? r : conn_receive(c, ret, err, errlen);
}

/* One request on a connection of its own. On failure `err` says why ztnad
 * could not be asked; a refusal is a reply, not a failure. */
static int daemon_call(const Args *a, const json_t *request, json_t **ret, char *err, size_t errlen) {
        Conn c = { .fd = -1 };
        int r;

        r = conn_open(a, &c, err, errlen);
        if (r >= 0)
                r = conn_call(&c, request, ret, err, errlen);
        conn_done(&c);
        return r;
}

static int code_exit(const char *code) {
        if (!code)
                return EXIT_FAILED;
        if (strcmp(code, CONTROL_CODE_NOT_FOUND) == 0)
                return EXIT_NOT_FOUND;
        if (strcmp(code, CONTROL_CODE_NOT_AUTHORISED) == 0)
                return EXIT_NOT_AUTHORISED;
        if (strcmp(code, CONTROL_CODE_BUSY) == 0)
                return EXIT_UNAVAILABLE;
        return EXIT_FAILED;
}

/* A refusal: its message on stderr (and the reply itself with --json), and
 * its exit code. */
static int refused(const Args *a, json_t *reply) {
        const char *error = json_string_value(json_object_get(reply, "error"));

        fprintf(stderr, "ztna: %s\n", error ? error : "ztnad refused without saying why");
        if (a->json)
                print_json(reply);
        return code_exit(json_string_value(json_object_get(reply, "code")));
}

/* A failure of ztna's own, not a reply from ztnad: the message on stderr
 * and, with --json, an object shaped like a refusal
 * ({"ok": false, "code": CODE, "error": MESSAGE}), so that a script reads
 * exactly one JSON object whatever happened. Returns `exit_code`. */
__attribute__((format(printf, 4, 5)))
static int failed(const Args *a, int exit_code, const char *code, const char *fmt, ...) {
        char msg[ERROR_MAX + 128];
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        fprintf(stderr, "ztna: %s\n", msg);
        if (a->json) {
                json_t *j = json_pack("{s:b, s:s, s:s}", "ok", 0, "code", code, "error", msg);

                if (j)
                        print_json(j);
                else
                        /* Out of memory: still one object, made by hand. */
                        printf("{\"ok\": false, \"code\": \"%s\", \"error\": \"out of memory\"}\n", code);
                json_decref(j);
        }
        return exit_code;
}

static int unreachable(const Args *a, const char *err) {
        return failed(a, EXIT_UNAVAILABLE, CLIENT_CODE_UNREACHABLE, "cannot reach ztnad at %s: %s", socket_path(a),
                      err);
}

/* ---- the store ---- */

/* Builds a JSON answer from one snapshot; the snapshot is consistent only
 * if shm_snapshot_end() says so afterwards, so a builder only reads. */
typedef int (*StoreFunc)(const ShmSnapshot *s, const Args *a, const void *userdata, json_t **ret);

static void reader_freep(ShmReader **r) {
        shm_reader_free(*r);
}

typedef struct StoreCall {
        StoreFunc func;
        const Args *a;
        const void *userdata;
        json_t *j;
        bool ran; /* func's answer is from a consistent read */
} StoreCall;

static int store_call(const ShmSnapshot *s, void *userdata) {
        StoreCall *c = userdata;
        c->ran = true;
        return c->func(s, c->a, c->userdata, &c->j);
}

static void store_discard(void *userdata) {
        StoreCall *c = userdata;
        json_decref(c->j);
        c->j = NULL;
        c->ran = false;
}

/* 0 with *ret, or -errno with `err` saying what is wrong with the store. */
static int store_read(const Args *a, StoreFunc func, const void *userdata, json_t **ret, char *err, size_t errlen) {
        _cleanup_(reader_freep) ShmReader *r = NULL;
        StoreCall c = { .func = func, .a = a, .userdata = userdata };
        int k;

        k = shm_reader_new(a->store, &r);
        if (k < 0) {
                snprintf(err, errlen, "cannot read the store %s: %s", store_display(a), strerror(-k));
                return k;
        }
        k = shm_snapshot_read(r, store_call, store_discard, &c);
        if (k >= 0) {
                *ret = c.j;
                return 0;
        }
        json_decref(c.j);
        if (c.ran)
                snprintf(err, errlen, "%s", strerror(-k));
        else if (k == -EAGAIN)
                snprintf(err, errlen, "store %s changed during every one of %u reads", store_display(a),
                         SHM_READ_TRIES);
        else
                snprintf(err, errlen, "store %s is unavailable: %s", store_display(a), strerror(-k));
        return k;
}

static int store_list(const ShmSnapshot *s, const Args *a, const void *userdata, json_t **ret) {
        json_t *peers = json_array();
        ShmRecordView v;

        (void) a;
        (void) userdata;
        if (!peers)
                return -ENOMEM;
        for (uint32_t i = 0; i < s->n_records; i++) {
                if (!shm_snapshot_record(s, i, &v))
                        continue; /* damaged: the reader already refuses to answer with it */
                json_array_append_new(peers, control_peer_json(s, &v));
        }
        *ret = json_pack("{s:o, s:o}", "domain", control_json_text(s->domain, s->domain_len), "peers", peers);
        return *ret ? 0 : -ENOMEM;
}

static int store_query(const ShmSnapshot *s, const Args *a, const void *userdata, json_t **ret) {
        const char *q = userdata;
        union {
                struct in_addr in;
                struct in6_addr in6;
        } addr;
        int family = 0;
        ShmRecordView v;
        ShmClass c;

        (void) a;
        if (inet_pton(AF_INET, q, &addr.in) == 1)
                family = AF_INET;
        else if (inet_pton(AF_INET6, q, &addr.in6) == 1)
                family = AF_INET6;
        c = family ? shm_snapshot_lookup_addr(s, family, &addr, &v) : shm_snapshot_lookup_name(s, q, &v);
        if (c != SHM_FOUND) {
                *ret = json_pack("{s:b, s:b}", "found", 0, "ours", c == SHM_UNKNOWN);
                return *ret ? 0 : -ENOMEM;
        }
        *ret = json_pack("{s:b, s:b, s:o}", "found", 1, "down", shm_snapshot_down(s), "peer", control_peer_json(s, &v));
        return *ret ? 0 : -ENOMEM;
}

static int store_status(const ShmSnapshot *s, const Args *a, const void *userdata, json_t **ret) {
        const ShmWireRange *ranges = s->ranges;
        json_t *r = json_array();
        uint64_t now = clock_now_usec(CLOCK_REALTIME);
        char published[64];

        (void) userdata;
        if (!r)
                return -ENOMEM;
        for (uint32_t i = 0; i < s->n_ranges; i++) {
                char text[INET6_ADDRSTRLEN], prefix[INET6_ADDRSTRLEN + 8];
                uint8_t family = ranges[i].family;

                if ((family != 4 && family != 6) ||
                    !inet_ntop(family == 4 ? AF_INET : AF_INET6, ranges[i].addr, text, sizeof text))
                        continue;
                snprintf(prefix, sizeof prefix, "%s/%u", text, ranges[i].prefixlen);
                json_array_append_new(r, json_string(prefix));
        }
        format_time(s->published_usec, published, sizeof published);
        *ret = json_pack("{s:s, s:s, s:I, s:o, s:o, s:I, s:s, s:I, s:I, s:I, s:I}", "path", store_display(a),
                         "state", shm_snapshot_down(s) ? "down" : "up", "generation", (json_int_t) s->generation,
                         "domain", control_json_text(s->domain, s->domain_len), "ranges", r, "records",
                         (json_int_t) s->n_records, "published", published, "published_usec",
                         (json_int_t) s->published_usec, "heartbeat_usec", (json_int_t) s->heartbeat_usec,
                         "heartbeat_age_sec", (json_int_t) age_sec(s->heartbeat_usec, now), "file_size",
                         (json_int_t) s->file_size);
        return *ret ? 0 : -ENOMEM;
}

static void print_store_text(const json_t *st) {
        uint64_t now = clock_now_usec(CLOCK_REALTIME);
        size_t i;
        json_t *r;

        /* The layout of the store-only command this replaced; scripts
         * grep "state: *up". */
        printf("store:      %s\n", json_string_value(json_object_get(st, "path")));
        printf("state:      %s\n", json_string_value(json_object_get(st, "state")));
        printf("generation: %" JSON_INTEGER_FORMAT "\n", json_integer_value(json_object_get(st, "generation")));
        printf("domain:     %s\n", json_string_value(json_object_get(st, "domain")));
        fputs("ranges:    ", stdout);
        json_array_foreach(json_object_get(st, "ranges"), i, r)
                printf(" %s", json_string_value(r));
        printf("\nrecords:    %" JSON_INTEGER_FORMAT "\n", json_integer_value(json_object_get(st, "records")));
        printf("published:  %s (%" PRIu64 " s ago)\n", json_string_value(json_object_get(st, "published")),
               age_sec((uint64_t) json_integer_value(json_object_get(st, "published_usec")), now));
        printf("heartbeat:  %" JSON_INTEGER_FORMAT " s ago\n",
               json_integer_value(json_object_get(st, "heartbeat_age_sec")));
        printf("file size:  %" JSON_INTEGER_FORMAT " bytes\n", json_integer_value(json_object_get(st, "file_size")));
}

/* What the root DNS manager last did (ztnad --dns-manager writes it next
 * to the store): mode, link, servers, domains, state, error. Always an
 * object, so a reader of --json finds the key. */
#define DNS_MANAGER_STATUS_MAX 65536
static json_t *dns_manager_status(const char *store) {
        const char *slash = strrchr(store, '/');
        char path[PATH_MAX], *buf = NULL;
        json_t *o = NULL;
        size_t len = 0;

        /* The shared reader (not fopen(), which a FIFO in its place would
         * block); under DNS_MANAGER_STATUS_MAX bytes, as before. */
        if (slash && snprintf(path, sizeof path, "%.*s/dns-manager.json", (int) (slash - store), store) <
                             (int) sizeof path &&
            read_regular_file(path, DNS_MANAGER_STATUS_MAX - 1, 0, &buf, &len, NULL, NULL) >= 0) {
                o = json_loadb(buf, len, 0, NULL);
                free(buf);
        }
        if (!json_is_object(o)) {
                json_decref(o);
                o = json_pack("{s:n, s:n, s:[], s:[], s:s, s:s}", "mode", "link", "servers", "domains", "state",
                              "unknown", "error", "no report from the DNS manager (ztnad --dns-manager has not run)");
        }
        return o;
}

/* ---- commands ---- */

static int cmd_status(const Args *a) {
        _cleanup_(json_decrefp) json_t *out = json_object(), *reply = NULL, *store = NULL;
        char derr[ERROR_MAX] = "", serr[ERROR_MAX] = "";
        const char *daemon_store = NULL;
        int dr = 0, sr, ret = EXIT_OK;

        if (!out)
                return failed(a, EXIT_FAILED, CONTROL_CODE_FAILED, "out of memory");
        if (!a->local) {
                json_t *req = json_pack("{s:s}", "command", "status");

                dr = req ? daemon_call(a, req, &reply, derr, sizeof derr) : -ENOMEM;
                json_decref(req);
                if (dr >= 0 && json_is_true(json_object_get(reply, "ok"))) {
                        json_t *d = json_deep_copy(reply);

                        json_object_del(d, "ok");
                        json_object_set_new(d, "reachable", json_true());
                        json_object_set_new(d, "socket", json_string(socket_path(a)));
                        json_object_set_new(out, "daemon", d);
                        /* Show the store the daemon publishes to. */
                        daemon_store = json_string_value(json_object_get(reply, "store"));
                } else {
                        if (dr >= 0) {
                                const char *msg = json_string_value(json_object_get(reply, "error"));

                                snprintf(derr, sizeof derr, "%s", msg ? msg : "no reason given");
                        }
                        json_object_set_new(out, "daemon",
                                            json_pack("{s:b, s:s, s:s}", "reachable", dr >= 0, "socket",
                                                      socket_path(a), "error", derr));
                        ret = dr < 0 ? EXIT_UNAVAILABLE : code_exit(json_string_value(json_object_get(reply, "code")));
                }
        }

        {
                Args sa = *a;

                if (!sa.store && daemon_store)
                        sa.store = daemon_store;
                sr = store_read(&sa, store_status, NULL, &store, serr, sizeof serr);
                if (sr < 0)
                        json_object_set_new(out, "store", json_pack("{s:s, s:s}", "path", store_display(&sa),
                                                                    "error", serr));
                else
                        json_object_set(out, "store", store);
                json_object_set_new(out, "dns_manager", dns_manager_status(store_display(&sa)));
        }
        /* With --local the store is all there is to report on. */
        if (a->local && sr < 0)
                ret = EXIT_UNAVAILABLE;

        if (a->json) {
                /* A failed status is still the report, with what made it
                 * fail in the fields every --json failure has. */
                if (ret != EXIT_OK) {
                        const char *code = CLIENT_CODE_STORE;
                        char msg[ERROR_MAX + 128];

                        if (a->local)
                                snprintf(msg, sizeof msg, "%s", serr);
                        else if (dr < 0) {
                                code = CLIENT_CODE_UNREACHABLE;
                                snprintf(msg, sizeof msg, "cannot reach ztnad at %s: %s", socket_path(a), derr);
                        } else {
                                code = json_string_value(json_object_get(reply, "code"));
                                snprintf(msg, sizeof msg, "%s", derr);
                        }
                        json_object_set_new(out, "ok", json_false());
                        json_object_set_new(out, "code", json_string(code ? code : CONTROL_CODE_FAILED));
                        json_object_set_new(out, "error", json_string(msg));
                }
                print_json(out);
        } else {
                json_t *d = json_object_get(out, "daemon");

                if (d && json_is_true(json_object_get(d, "reachable")) && !json_object_get(d, "error")) {
                        json_t *shown = json_deep_copy(d);

                        printf("daemon:     running, %s\n", socket_path(a));
                        json_object_del(shown, "reachable");
                        json_object_del(shown, "socket");
                        print_object_text(shown, 2, false);
                        json_decref(shown);
                } else if (d)
                        printf("daemon:     not reachable at %s: %s\n", socket_path(a), derr);
                if (sr >= 0)
                        print_store_text(store);
                printf("dns manager:\n");
                print_object_text(json_object_get(out, "dns_manager"), 2, false);
        }
        if (sr < 0)
                fprintf(stderr, "ztna: %s\n", serr);
        /* The text says so on stdout already. */
        if (!a->local && ret == EXIT_UNAVAILABLE && a->json)
                fprintf(stderr, "ztna: cannot reach ztnad at %s: %s%s\n", socket_path(a), derr,
                        sr >= 0 ? " (the store above is what lookups answer from)" : "");
        return ret;
}

static void print_peers_text(const json_t *list) {
        size_t i;
        json_t *peer;

        json_array_foreach(json_object_get(list, "peers"), i, peer) {
                const char *fqdn = json_string_value(json_object_get(peer, "fqdn"));
                size_t k;
                json_t *addr;

                fputs(fqdn ? fqdn : "?", stdout);
                json_array_foreach(json_object_get(peer, "addresses"), k, addr)
                        printf(" %s", json_string_value(addr) ? json_string_value(addr) : "?");
                if (json_is_false(json_object_get(peer, "online")))
                        fputs(" (offline)", stdout);
                putchar('\n');
        }
}

static int cmd_list(const Args *a) {
        _cleanup_(json_decrefp) json_t *list = NULL;
        char err[ERROR_MAX];

        if (a->local) {
                if (store_read(a, store_list, NULL, &list, err, sizeof err) < 0)
                        return failed(a, EXIT_UNAVAILABLE, CLIENT_CODE_STORE, "%s", err);
        } else {
                _cleanup_(json_decrefp) json_t *req = json_pack("{s:s}", "command", "list");

                if (!req || daemon_call(a, req, &list, err, sizeof err) < 0)
                        return unreachable(a, req ? err : "out of memory");
                if (!json_is_true(json_object_get(list, "ok")))
                        return refused(a, list);
                json_object_del(list, "ok");
        }
        if (a->json)
                print_json(list);
        else
                print_peers_text(list);
        return EXIT_OK;
}

/*
 * dns query: the ways to answer, tried in order until one is not
 * "unavailable". Each gives the protocol's PEER object for `name`, or says
 * the tailnet has no such peer.
 *
 * A third way slots in after the daemon: the HTTPS control plane's
 * controlplane_resolve() (ztnad/sources/controlplane.h), which answers while ztnad
 * is stopped. It becomes one more QueryWay (its PEER object built from the
 * resolved addresses) listed in query_ways_default[] when the control plane
 * is configured; nothing else here changes.
 */
typedef enum QueryOutcome {
        QUERY_FOUND,
        QUERY_NOT_FOUND,
        QUERY_UNAVAILABLE, /* try the next way */
        QUERY_REFUSED,     /* final: *ret holds the refusal */
} QueryOutcome;

typedef struct QueryWay {
        const char *name; /* "daemon", "store": the "source" of a --json answer */
        QueryOutcome (*resolve)(const Args *a, const char *query, json_t **ret, char *err, size_t errlen);
} QueryWay;

static QueryOutcome query_store(const Args *a, const char *query, json_t **ret, char *err, size_t errlen) {
        json_t *j = NULL;

        if (store_read(a, store_query, query, &j, err, errlen) < 0)
                return QUERY_UNAVAILABLE;
        if (!json_is_true(json_object_get(j, "found"))) {
                snprintf(err, errlen, "%s",
                         json_is_true(json_object_get(j, "ours")) ? "no such peer in the tailnet"
                                                                   : "not a tailnet name or address");
                json_decref(j);
                return QUERY_NOT_FOUND;
        }
        if (json_is_true(json_object_get(j, "down")))
                fprintf(stderr, "ztna: note: the store is marked down; lookups of tailnet names fail until it is up\n");
        *ret = json_incref(json_object_get(j, "peer"));
        json_decref(j);
        return QUERY_FOUND;
}

static QueryOutcome query_daemon(const Args *a, const char *query, json_t **ret, char *err, size_t errlen) {
        _cleanup_(json_decrefp) json_t *req = json_pack("{s:s, s:s}", "command", "query", "name", query);
        json_t *reply = NULL;
        const char *code;

        if (!req || daemon_call(a, req, &reply, err, errlen) < 0)
                return QUERY_UNAVAILABLE;
        if (json_is_true(json_object_get(reply, "ok"))) {
                *ret = json_incref(json_object_get(reply, "peer"));
                json_decref(reply);
                if (!json_is_object(*ret)) {
                        json_decref(*ret);
                        snprintf(err, errlen, "ztnad answered without a peer");
                        return QUERY_UNAVAILABLE;
                }
                return QUERY_FOUND;
        }
        code = json_string_value(json_object_get(reply, "code"));
        if (code && strcmp(code, CONTROL_CODE_NOT_FOUND) == 0) {
                snprintf(err, errlen, "no such peer in the tailnet");
                json_decref(reply);
                return QUERY_NOT_FOUND;
        }
        *ret = reply;
        return QUERY_REFUSED;
}

static bool is_address(const char *s) {
        unsigned char buf[sizeof(struct in6_addr)];

        return inet_pton(AF_INET, s, buf) == 1 || inet_pton(AF_INET6, s, buf) == 1;
}

/* The control plane, asked over HTTPS the way the earlier client did (the
 * guide's ST3): it answers while ztnad is stopped. Used only when ztnad.conf
 * names one, and only for names: its "resolve" has no lookup by address
 * (docs/control-plane.md), so an address goes to the daemon. Whenever it
 * cannot be asked (the configuration, the token file, the network, the
 * server), the daemon is asked instead and stderr says so; only its own
 * "no such peer" is final. */
static QueryOutcome query_controlplane(const Args *a, const char *query, json_t **ret, char *err, size_t errlen) {
        _cleanup_config_ ZtnadConfig *cfg = NULL;
        _cleanup_controlplane_answer_ ControlPlaneAnswer *ans = NULL;
        ConfigError cerr;
        bool exposed = false;

        if (is_address(query))
                return QUERY_UNAVAILABLE;
        if (config_load(a->config, &cfg, &cerr) < 0) {
                fprintf(stderr, "ztna: %s; not asking the control plane\n", cerr.message);
                return QUERY_UNAVAILABLE;
        }
        if (!cfg->control_url)
                return QUERY_UNAVAILABLE;
        ControlPlaneConfig cp = {
                .control_url = cfg->control_url,
                .org_id = cfg->org_id,
                .token_file = cfg->token_file,
                .ca_file = cfg->ca_file,
        };
        int r = controlplane_resolve(&cp, query, &ans, &exposed, err, errlen);
        if (exposed)
                fprintf(stderr, "ztna: warning: %s is readable by other users\n", cfg->token_file);
        if (r == -ENOENT)
                return QUERY_NOT_FOUND;
        if (r < 0) {
                fprintf(stderr, "ztna: control plane: %s; asking ztnad instead\n", err);
                return QUERY_UNAVAILABLE;
        }
        json_t *addrs = json_array();
        if (!addrs)
                return QUERY_UNAVAILABLE;
        for (size_t i = 0; i < ans->n_addresses; i++)
                json_array_append_new(addrs, json_string(ans->addresses[i].text));
        *ret = json_pack("{s:s, s:s, s:o}", "name", ans->name, "fqdn", ans->fqdn, "addresses", addrs);
        return *ret ? QUERY_FOUND : QUERY_UNAVAILABLE;
}

static const QueryWay query_way_store = { "store", query_store };
static const QueryWay query_way_daemon = { "daemon", query_daemon };
static const QueryWay query_way_controlplane = { "control plane", query_controlplane };
static const QueryWay *const query_ways_local[] = { &query_way_store, NULL };
static const QueryWay *const query_ways_default[] = { &query_way_controlplane, &query_way_daemon, NULL };

static int cmd_query(const Args *a, const char *query) {
        const QueryWay *const *ways = a->local ? query_ways_local : query_ways_default;
        char err[ERROR_MAX] = "";
        json_t *peer = NULL;

        for (; *ways; ways++) {
                QueryOutcome o = (*ways)->resolve(a, query, &peer, err, sizeof err);
                _cleanup_(json_decrefp) json_t *out = NULL;

                if (o == QUERY_UNAVAILABLE)
                        continue;
                if (o == QUERY_REFUSED) {
                        int ret = refused(a, peer);

                        json_decref(peer);
                        return ret;
                }
                if (o == QUERY_NOT_FOUND) {
                        fprintf(stderr, "ztna: %s: %s\n", query, err);
                        if (a->json) {
                                out = json_pack("{s:s, s:b, s:s}", "query", query, "found", 0, "source",
                                                (*ways)->name);
                                if (out)
                                        print_json(out);
                        }
                        return EXIT_NOT_FOUND;
                }

                if (a->json) {
                        out = json_pack("{s:s, s:b, s:o, s:s}", "query", query, "found", 1, "peer", peer, "source",
                                        (*ways)->name);
                        if (!out)
                                return failed(a, EXIT_FAILED, CONTROL_CODE_FAILED, "out of memory");
                        print_json(out);
                        return EXIT_OK;
                }
                {
                        const char *fqdn = json_string_value(json_object_get(peer, "fqdn"));
                        json_t *addresses = json_object_get(peer, "addresses"), *addr;
                        size_t i;

                        if (!fqdn)
                                fqdn = "?";
                        if (is_address(query))
                                printf("%s -> %s\n", query, fqdn);
                        else if (json_array_size(addresses) == 0)
                                fprintf(stderr, "%s has no addresses\n", fqdn);
                        else
                                /* One line per address, the form the earlier
                                 * client printed. */
                                json_array_foreach(addresses, i, addr)
                                        printf("%s -> %s\n", fqdn, json_string_value(addr));
                }
                json_decref(peer);
                return EXIT_OK;
        }
        /* Every way was unavailable; `err` is the last one's reason. */
        if (a->local)
                return failed(a, EXIT_UNAVAILABLE, CLIENT_CODE_STORE, "%s", err);
        return unreachable(a, err);
}

/* up, down, flush: one request, one "done". */
static int cmd_change(const Args *a, const char *command, const char *done) {
        _cleanup_(json_decrefp) json_t *req = json_pack("{s:s}", "command", command), *reply = NULL;
        char err[ERROR_MAX];

        if (!req || daemon_call(a, req, &reply, err, sizeof err) < 0)
                return unreachable(a, req ? err : "out of memory");
        if (!json_is_true(json_object_get(reply, "ok")))
                return refused(a, reply);
        if (a->json)
                print_json(reply);
        else
                puts(done);
        return EXIT_OK;
}

/* The whole file (or stdin for "-"), at most CONTROL_DOCUMENT_MAX bytes. */
static int read_document(const char *path, char **ret, size_t *ret_len, char *err, size_t errlen) {
        _cleanup_close_ int fd = -1;
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, size = 0;
        struct stat st;

        if (strcmp(path, "-") == 0)
                fd = dup(STDIN_FILENO);
        else
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 || fstat(fd, &st) < 0) {
                snprintf(err, errlen, "%s: %s", path, strerror(errno));
                return -errno;
        }
        if (S_ISDIR(st.st_mode)) {
                snprintf(err, errlen, "%s: is a directory", path);
                return -EISDIR;
        }
        for (;;) {
                ssize_t n;

                if (len == size) {
                        size_t grow = size ? size * 2 : 65536;
                        char *p;

                        if (grow > CONTROL_DOCUMENT_MAX + 1)
                                grow = CONTROL_DOCUMENT_MAX + 1;
                        if (grow <= size) {
                                snprintf(err, errlen, "%s: over %zu bytes, the largest peers document ztnad takes",
                                         path, CONTROL_DOCUMENT_MAX);
                                return -E2BIG;
                        }
                        p = realloc(buf, grow);
                        if (!p) {
                                snprintf(err, errlen, "out of memory");
                                return -ENOMEM;
                        }
                        buf = p;
                        size = grow;
                }
                n = read(fd, buf + len, size - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        snprintf(err, errlen, "%s: %s", path, strerror(errno));
                        return -errno;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
        }
        if (len > CONTROL_DOCUMENT_MAX) {
                snprintf(err, errlen, "%s: over %zu bytes, the largest peers document ztnad takes", path,
                         CONTROL_DOCUMENT_MAX);
                return -E2BIG;
        }
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

static int cmd_push(const Args *a, const char *path) {
        _cleanup_(json_decrefp) json_t *req = NULL, *reply = NULL, *status = NULL, *status_req = NULL;
        _cleanup_free_ char *doc = NULL;
        const char *shown = strcmp(path, "-") == 0 ? "standard input" : path;
        Conn c = { .fd = -1 };
        char err[ERROR_MAX];
        size_t len = 0;
        json_t *generation;
        int r;

        if (read_document(path, &doc, &len, err, sizeof err) < 0)
                return failed(a, EXIT_FAILED, CLIENT_CODE_FILE, "%s", err);
        /* The document goes as a JSON string, byte for byte, so ztnad's
         * errors point at lines and columns of this file. A JSON string
         * holds UTF-8 text without NULs, as a JSON document is. */
        req = json_pack("{s:s, s:o}", "command", "push", "document", json_stringn(doc, len));
        if (!req)
                return failed(a, EXIT_FAILED, CONTROL_CODE_REJECTED,
                              "%s: not UTF-8 text (or it holds a NUL byte): not a peers document", shown);
        free(doc);
        doc = NULL;

        r = conn_open(a, &c, err, sizeof err);
        if (r < 0)
                return unreachable(a, err);
        r = conn_call(&c, req, &reply, err, sizeof err);
        if (r < 0) {
                conn_done(&c);
                return unreachable(a, err);
        }
        if (!json_is_true(json_object_get(reply, "ok"))) {
                conn_done(&c);
                return refused(a, reply);
        }
        /* What it became, on the same connection; best effort. */
        status_req = json_pack("{s:s}", "command", "status");
        if (!status_req || conn_call(&c, status_req, &status, err, sizeof err) < 0 ||
            !json_is_true(json_object_get(status, "ok"))) {
                json_decref(status);
                status = NULL;
        }
        conn_done(&c);

        generation = json_object_get(status, "generation");
        if (a->json) {
                if (json_is_integer(generation))
                        json_object_set(reply, "generation", generation);
                print_json(reply);
        } else if (json_is_integer(generation))
                printf("pushed %s: accepted; ztnad publishes generation %" JSON_INTEGER_FORMAT "\n", shown,
                       json_integer_value(generation));
        else
                printf("pushed %s: accepted\n", shown);
        return EXIT_OK;
}

/* doctor asks ztnad through this: one request, a short deadline of its
 * own (the doctor's whole run is bounded), the reply whatever it is. */
static int doctor_daemon_call(void *userdata, const char *command, json_t **ret, char *err, size_t errlen) {
        const Args *a = userdata;
        _cleanup_(json_decrefp) json_t *req = json_pack("{s:s}", "command", command);

        if (!req) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        return daemon_call(a, req, ret, err, errlen);
}

static int cmd_doctor(const Args *a, const char *name) {
        Args da = *a;
        DoctorOptions o = {
                .config = a->config,
                .store = a->store,
                .socket = socket_path(a),
                .name = name,
                .json = a->json,
                .daemon_call = doctor_daemon_call,
                .userdata = &da,
        };

        if (!a->timeout_set)
                da.timeout_usec = DOCTOR_DAEMON_TIMEOUT_USEC;
        return doctor_run(&o);
}

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
        return failed(a, EXIT_USAGE, CLIENT_CODE_USAGE, "%s. Try 'ztna --help'.", msg);
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
                                return failed(&a, EXIT_USAGE, CLIENT_CODE_USAGE, "%s", cerr.message);
                } else {
                        a.socket = config_socket = strdup(cfg->control_socket);
                        if (!config_socket)
                                return failed(&a, EXIT_FAILED, CONTROL_CODE_FAILED, "out of memory");
                }
        }
        cmd = argv + optind;
        n = argc - optind;
        if (n == 0)
                return usage_error(&a, "missing command");
        if (strcmp(cmd[0], "status") == 0) {
                if (n != 1)
                        return usage_error(&a, "status takes no arguments");
                return cmd_status(&a);
        }
        if (strcmp(cmd[0], "dns") == 0) {
                if (n >= 2 && strcmp(cmd[1], "list") == 0) {
                        if (n != 2)
                                return usage_error(&a, "dns list takes no arguments");
                        return cmd_list(&a);
                }
                if (n >= 2 && strcmp(cmd[1], "query") == 0) {
                        if (n != 3 || cmd[2][0] == '\0')
                                return usage_error(&a, "dns query takes one NAME");
                        return cmd_query(&a, cmd[2]);
                }
                if (n >= 2 && strcmp(cmd[1], "flush") == 0) {
                        if (n != 2)
                                return usage_error(&a, "dns flush takes no arguments");
                        if (a.local)
                                return usage_error(&a, "dns flush asks ztnad; not with --local or --store");
                        return cmd_change(&a, "flush", "flushed ztnad's DNS cache");
                }
                return usage_error(&a, "dns needs 'list', 'query NAME' or 'flush'");
        }
        if (strcmp(cmd[0], "up") == 0 || strcmp(cmd[0], "down") == 0) {
                bool up = cmd[0][0] == 'u';

                if (n != 1)
                        return usage_error(&a, up ? "up takes no arguments" : "down takes no arguments");
                if (a.local)
                        return usage_error(&a, "up and down ask ztnad; not with --local or --store");
                return cmd_change(&a, cmd[0],
                                  up ? "tailnet DNS is up" : "tailnet DNS is down: tailnet names fail until 'ztna up'");
        }
        if (strcmp(cmd[0], "doctor") == 0) {
                if (n > 2 || (n == 2 && cmd[1][0] == '\0'))
                        return usage_error(&a, "doctor takes at most one NAME");
                return cmd_doctor(&a, n == 2 ? cmd[1] : NULL);
        }
        if (strcmp(cmd[0], "peers") == 0) {
                if (n >= 2 && strcmp(cmd[1], "push") == 0) {
                        if (n != 3 || cmd[2][0] == '\0')
                                return usage_error(&a, "peers push takes one FILE ('-' for standard input)");
                        if (a.local)
                                return usage_error(&a, "peers push asks ztnad; not with --local or --store");
                        return cmd_push(&a, cmd[2]);
                }
                return usage_error(&a, "peers needs 'push FILE'");
        }
        return usage_error(&a, "unknown command");
}
