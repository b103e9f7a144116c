/* SPDX-License-Identifier: MIT */
/*
 * The control plane's HTTPS requests: building them (URL, headers, body,
 * TLS policy), collecting and bounding their responses, judging how they
 * ended, and the one blocking call, controlplane_resolve().
 */

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sources/controlplane.h"
#include "common/read-file.h"
#include "common/version.h"
#include "common/time-util.h"

#define HTTP_NOT_FOUND 404
#define HTTP_UNAUTHORIZED 401
#define HTTP_FORBIDDEN 403
/* Of a server's own error text quoted in our messages. */
#define SERVER_TEXT_MAX 160
#define BEARER_PREFIX "Authorization: Bearer "
#define INM_PREFIX "If-None-Match: "

struct ControlPlaneRequest {
        CURL *easy;
        struct curl_slist *headers;
        char *url;
        /* The response body, always NUL-terminated once allocated. */
        char *data;
        size_t len, cap;
        bool too_big;
        char etag[CONTROLPLANE_ETAG_MAX + 1];
        char curl_error[CURL_ERROR_SIZE];
};

__attribute__((format(printf, 4, 5)))
static int fail(char *err, size_t errlen, int r, const char *fmt, ...) {
        va_list ap;

        if (err && errlen > 0) {
                va_start(ap, fmt);
                (void) vsnprintf(err, errlen, fmt, ap);
                va_end(ap);
        }
        return r;
}

/* Text the server chose, made safe for one log line: printable ASCII only,
 * bounded. */
static void sanitize(char *dst, size_t dstlen, const char *src, size_t len) {
        size_t j = 0;

        if (dstlen == 0)
                return;
        for (size_t i = 0; i < len && j + 1 < dstlen; i++) {
                unsigned char c = (unsigned char) src[i];

                dst[j++] = c >= 0x20 && c < 0x7f ? (char) c : '?';
        }
        if (j + 1 == dstlen && j < len && j >= 3)
                memcpy(dst + j - 3, "...", 3);
        dst[j] = '\0';
}

int controlplane_endpoint(const ControlPlaneConfig *c, char **ret_url, char *err, size_t errlen) {
        CURLU *u = NULL;
        char *scheme = NULL, *host = NULL, *path = NULL, *query = NULL, *user = NULL, *frag = NULL;
        char *joined = NULL, *url = NULL;
        size_t plen;
        int r;

        if (!c->control_url || !c->control_url[0])
                return fail(err, errlen, -EINVAL, "control_url is not set");
        if (!c->org_id || !c->org_id[0])
                return fail(err, errlen, -EINVAL, "org_id is not set");
        if (!c->token_file || !c->token_file[0])
                return fail(err, errlen, -EINVAL, "token_file is not set");

        u = curl_url();
        if (!u)
                return fail(err, errlen, -ENOMEM, "out of memory");
        /* No guessing of a missing scheme: "login.example.com" is refused
         * rather than tried over plain HTTP. */
        if (curl_url_set(u, CURLUPART_URL, c->control_url, 0) != CURLUE_OK) {
                r = fail(err, errlen, -EINVAL, "control_url \"%s\" is not a URL", c->control_url);
                goto finish;
        }
        if (curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK || strcasecmp(scheme, "https") != 0) {
                r = fail(err, errlen, -EINVAL,
                         "control_url \"%s\" is not https://; the token is only ever sent over TLS", c->control_url);
                goto finish;
        }
        if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !host[0]) {
                r = fail(err, errlen, -EINVAL, "control_url \"%s\" has no host", c->control_url);
                goto finish;
        }
        if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
            curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK ||
            curl_url_get(u, CURLUPART_FRAGMENT, &frag, 0) == CURLUE_OK) {
                r = fail(err, errlen, -EINVAL,
                         "control_url \"%s\" has a user, query or fragment; give the base URL only", c->control_url);
                goto finish;
        }
        /* The API path goes under whatever path the base URL has. */
        if (curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
                r = fail(err, errlen, -ENOMEM, "out of memory");
                goto finish;
        }
        plen = strlen(path);
        while (plen > 0 && path[plen - 1] == '/')
                plen--;
        if (asprintf(&joined, "%.*s%s", (int) plen, path, CONTROLPLANE_API_PATH) < 0) {
                joined = NULL;
                r = fail(err, errlen, -ENOMEM, "out of memory");
                goto finish;
        }
        if (curl_url_set(u, CURLUPART_PATH, joined, 0) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK) {
                r = fail(err, errlen, -EINVAL, "control_url \"%s\": cannot add %s to it", c->control_url,
                         CONTROLPLANE_API_PATH);
                goto finish;
        }
        *ret_url = strdup(url);
        r = *ret_url ? 0 : fail(err, errlen, -ENOMEM, "out of memory");

finish:
        curl_free(scheme);
        curl_free(host);
        curl_free(path);
        curl_free(query);
        curl_free(user);
        curl_free(frag);
        curl_free(url);
        free(joined);
        curl_url_cleanup(u);
        return r;
}

static bool is_space(char c) {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int controlplane_read_token(const char *path, char **ret_token, bool *ret_exposed, char *err, size_t errlen) {
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        ReadFileStep step;
        size_t size, len, start = 0;
        char *token;
        int r;

        /* The reader's O_NONBLOCK: a FIFO put there must not hang the
         * daemon's loop; only a regular file is read. */
        r = read_regular_file(path, CONTROLPLANE_TOKEN_MAX, READ_FILE_SECRET, &buf, &size, &st, &step);
        if (r < 0) {
                if (step == READ_FILE_OPEN)
                        return fail(err, errlen, r, "cannot open token file %s: %s", path, strerror(-r));
                if (step == READ_FILE_STAT)
                        return fail(err, errlen, r, "cannot stat token file %s: %s", path, strerror(-r));
                if (r == -EINVAL && step == READ_FILE_CHECK)
                        return fail(err, errlen, -EINVAL, "token file %s is not a regular file", path);
                if (r == -EFBIG && step == READ_FILE_CHECK)
                        return fail(err, errlen, -EINVAL,
                                    "token file %s is larger than %zu bytes; is it the right file?", path,
                                    CONTROLPLANE_TOKEN_MAX);
                if (r == -ENOMEM)
                        return fail(err, errlen, r, "out of memory");
                if (r == -EAGAIN)
                        return fail(err, errlen, r, "token file %s changed while it was read", path);
                return fail(err, errlen, r, "cannot read token file %s: %s", path, strerror(-r));
        }
        len = size;

        while (start < len && is_space(buf[start]))
                start++;
        while (len > start && is_space(buf[len - 1]))
                len--;
        r = 0;
        if (len == start)
                r = fail(err, errlen, -EINVAL, "token file %s is empty", path);
        /* It goes into a header line: CR, LF or any other control byte
         * inside would end or corrupt the header. */
        for (size_t i = start; r == 0 && i < len; i++) {
                unsigned char c = (unsigned char) buf[i];

                if (c < 0x20 || c == 0x7f)
                        r = fail(err, errlen, -EINVAL,
                                 "token file %s holds more than one line or a control character (byte %zu)", path,
                                 i + 1);
        }
        if (r < 0) {
                explicit_bzero(buf, size);
                return r;
        }

        token = strndup(buf + start, len - start);
        explicit_bzero(buf, size);
        if (!token)
                return fail(err, errlen, -ENOMEM, "out of memory");
        if (ret_exposed)
                *ret_exposed = (st.st_mode & S_IROTH) != 0;
        *ret_token = token;
        return 0;
}

char *controlplane_body(const char *action, const char *org_id, const char *name) {
        json_t *o;
        char *s;

        o = name ? json_pack("{s:s, s:s, s:s}", "action", action, "org_id", org_id, "name", name)
                 : json_pack("{s:s, s:s}", "action", action, "org_id", org_id);
        if (!o)
                return NULL;
        s = json_dumps(o, JSON_COMPACT | JSON_ENSURE_ASCII);
        json_decref(o);
        return s;
}

/* libcurl's write callback: appends to the body, refusing to grow it past
 * CONTROLPLANE_RESPONSE_MAX (returning short makes libcurl abort the
 * transfer with CURLE_WRITE_ERROR). */
static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata) {
        ControlPlaneRequest *q = userdata;
        size_t n = size * nmemb;

        if (n > CONTROLPLANE_RESPONSE_MAX - q->len) {
                q->too_big = true;
                return 0;
        }
        if (q->len + n + 1 > q->cap) {
                size_t cap = q->cap ? q->cap : 4096;
                char *p;

                while (cap < q->len + n + 1)
                        cap = cap > (CONTROLPLANE_RESPONSE_MAX + 1) / 2 ? CONTROLPLANE_RESPONSE_MAX + 1 : cap * 2;
                p = realloc(q->data, cap);
                if (!p)
                        return 0;
                q->data = p;
                q->cap = cap;
        }
        memcpy(q->data + q->len, ptr, n);
        q->len += n;
        q->data[q->len] = '\0';
        return n;
}

/* libcurl's header callback: one header line at a time, CRLF included, of
 * every response the transfer sees. Keeps the last response's ETag if it is
 * fit to be sent back in a header (visible ASCII, bounded). */
static size_t on_header(char *ptr, size_t size, size_t nitems, void *userdata) {
        ControlPlaneRequest *q = userdata;
        size_t n = size * nitems, i, end;
        static const char name[] = "etag:";

        if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
                q->etag[0] = '\0'; /* a new response begins */
                return n;
        }
        if (n < sizeof name - 1 || strncasecmp(ptr, name, sizeof name - 1) != 0)
                return n;
        i = sizeof name - 1;
        end = n;
        while (i < end && (ptr[i] == ' ' || ptr[i] == '\t'))
                i++;
        while (end > i && is_space(ptr[end - 1]))
                end--;
        q->etag[0] = '\0';
        if (end == i || end - i > CONTROLPLANE_ETAG_MAX)
                return n;
        for (size_t j = i; j < end; j++)
                if ((unsigned char) ptr[j] <= 0x20 || (unsigned char) ptr[j] >= 0x7f)
                        return n;
        memcpy(q->etag, ptr + i, end - i);
        q->etag[end - i] = '\0';
        return n;
}

static long ms_of(uint64_t usec) {
        uint64_t ms = (usec + USEC_PER_MSEC - 1) / USEC_PER_MSEC;

        return ms > LONG_MAX ? LONG_MAX : (long) ms;
}

static int add_header(struct curl_slist **list, const char *line) {
        struct curl_slist *l = curl_slist_append(*list, line);

        if (!l)
                return -ENOMEM;
        *list = l;
        return 0;
}

static int request_headers(ControlPlaneRequest *q, const char *token, const char *if_none_match) {
        _cleanup_free_ char *auth = NULL;
        size_t alen = strlen(BEARER_PREFIX) + strlen(token) + 1;
        int r;

        auth = malloc(alen);
        if (!auth)
                return -ENOMEM;
        (void) snprintf(auth, alen, "%s%s", BEARER_PREFIX, token);
        r = add_header(&q->headers, auth);
        explicit_bzero(auth, alen);
        if (r < 0)
                return r;
        if (add_header(&q->headers, "Content-Type: application/json") < 0 ||
            add_header(&q->headers, "Accept: application/json") < 0 ||
            /* The body is small; waiting for "100 Continue" only costs a
             * round trip. */
            add_header(&q->headers, "Expect:") < 0)
                return -ENOMEM;
        if (if_none_match && if_none_match[0]) {
                char line[sizeof INM_PREFIX + CONTROLPLANE_ETAG_MAX];

                if (strlen(if_none_match) > CONTROLPLANE_ETAG_MAX)
                        return -EINVAL;
                (void) snprintf(line, sizeof line, "%s%s", INM_PREFIX, if_none_match);
                if (add_header(&q->headers, line) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* The transfer's policy. Every option here is one a careless default would
 * get wrong for a bearer token, so none is left to libcurl's defaults. */
static int request_options(ControlPlaneRequest *q, const ControlPlaneConfig *c, const char *body) {
        uint64_t timeout = c->timeout_usec ? c->timeout_usec : CONTROLPLANE_TIMEOUT_USEC_DEFAULT;
        uint64_t connect =
                timeout < CONTROLPLANE_CONNECT_TIMEOUT_USEC_MAX ? timeout : CONTROLPLANE_CONNECT_TIMEOUT_USEC_MAX;
        CURL *h = q->easy;
        CURLcode rc = CURLE_OK;

#define SET(opt, val)                                         \
        do {                                                  \
                if (rc == CURLE_OK)                           \
                        rc = curl_easy_setopt(h, opt, val);   \
        } while (0)
        SET(CURLOPT_URL, q->url);
        SET(CURLOPT_PROTOCOLS_STR, "https");
        SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
        /* An API call that redirects is an error, not a hint: following it
         * would replay the token to wherever the Location points. */
        SET(CURLOPT_FOLLOWLOCATION, 0L);
        SET(CURLOPT_SSL_VERIFYPEER, 1L);
        SET(CURLOPT_SSL_VERIFYHOST, 2L);
        SET(CURLOPT_SSLVERSION, (long) CURL_SSLVERSION_TLSv1_2);
        if (c->ca_file && c->ca_file[0])
                SET(CURLOPT_CAINFO, c->ca_file);
        /* No SIGALRM for timeouts: the daemon's signals are its loop's. */
        SET(CURLOPT_NOSIGNAL, 1L);
        SET(CURLOPT_CONNECTTIMEOUT_MS, ms_of(connect));
        SET(CURLOPT_TIMEOUT_MS, ms_of(timeout));
        /* A declared length above the bound is refused before any body;
         * the write callback catches the rest. */
        SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t) CONTROLPLANE_RESPONSE_MAX);
        SET(CURLOPT_POST, 1L);
        SET(CURLOPT_COPYPOSTFIELDS, body);
        SET(CURLOPT_HTTPHEADER, q->headers);
        SET(CURLOPT_USERAGENT, "ztna/" ZTNA_VERSION);
        /* Whatever encodings libcurl decodes; the bound applies to the
         * decoded bytes, so a compressed bomb stops at the bound too. */
        SET(CURLOPT_ACCEPT_ENCODING, "");
        SET(CURLOPT_WRITEFUNCTION, on_write);
        SET(CURLOPT_WRITEDATA, q);
        SET(CURLOPT_HEADERFUNCTION, on_header);
        SET(CURLOPT_HEADERDATA, q);
        SET(CURLOPT_ERRORBUFFER, q->curl_error);
        SET(CURLOPT_PRIVATE, q);
#undef SET
        return rc == CURLE_OK ? 0 : -EIO;
}

int controlplane_request_new(const ControlPlaneConfig *c, const char *body, const char *if_none_match,
                             ControlPlaneRequest **ret, bool *ret_token_exposed, char *err, size_t errlen) {
        ControlPlaneRequest *q;
        char *token = NULL;
        bool exposed = false;
        int r;

        q = calloc(1, sizeof *q);
        if (!q)
                return fail(err, errlen, -ENOMEM, "out of memory");
        r = controlplane_endpoint(c, &q->url, err, errlen);
        if (r < 0)
                goto fail;
        r = controlplane_read_token(c->token_file, &token, &exposed, err, errlen);
        if (r < 0)
                goto fail;
        q->easy = curl_easy_init();
        if (!q->easy) {
                r = fail(err, errlen, -ENOMEM, "cannot set up a transfer (libcurl)");
                goto fail;
        }
        r = request_headers(q, token, if_none_match);
        if (r < 0) {
                (void) fail(err, errlen, r, "cannot set up the request headers: %s", strerror(-r));
                goto fail;
        }
        r = request_options(q, c, body);
        if (r < 0) {
                (void) fail(err, errlen, r, "this libcurl lacks an option ztna needs (libcurl >= 7.85 with TLS)");
                goto fail;
        }
        if (ret_token_exposed)
                *ret_token_exposed = exposed;
        explicit_bzero(token, strlen(token));
        free(token);
        *ret = q;
        return 0;

fail:
        if (token) {
                explicit_bzero(token, strlen(token));
                free(token);
        }
        controlplane_request_free(q);
        return r;
}

ControlPlaneRequest *controlplane_request_free(ControlPlaneRequest *q) {
        if (!q)
                return NULL;
        if (q->easy)
                curl_easy_cleanup(q->easy);
        /* The Authorization line is in here. */
        for (struct curl_slist *l = q->headers; l; l = l->next)
                explicit_bzero(l->data, strlen(l->data));
        curl_slist_free_all(q->headers);
        free(q->url);
        free(q->data);
        free(q);
        return NULL;
}

CURL *controlplane_request_handle(ControlPlaneRequest *q) {
        return q->easy;
}

const char *controlplane_request_body(const ControlPlaneRequest *q, size_t *ret_len) {
        *ret_len = q->len;
        return q->data ? q->data : "";
}

const char *controlplane_request_etag(const ControlPlaneRequest *q) {
        return q->etag[0] ? q->etag : NULL;
}

/* The server's "error" string of a JSON error body, if it sent one. */
static void server_error_text(const ControlPlaneRequest *q, char *buf, size_t buflen) {
        json_t *root, *e;

        buf[0] = '\0';
        if (q->len == 0)
                return;
        root = json_loadb(q->data, q->len, 0, NULL);
        e = json_is_object(root) ? json_object_get(root, "error") : NULL;
        if (json_is_string(e) && json_string_length(e) > 0) {
                char text[SERVER_TEXT_MAX + 1];

                sanitize(text, sizeof text, json_string_value(e), json_string_length(e));
                (void) snprintf(buf, buflen, ": %s", text);
        }
        json_decref(root);
}

static int transport_error(const ControlPlaneRequest *q, CURLcode result, char *err, size_t errlen) {
        const char *detail = q->curl_error[0] ? q->curl_error : curl_easy_strerror(result);
        char text[CURL_ERROR_SIZE];
        int r;

        sanitize(text, sizeof text, detail, strlen(detail));
        switch (result) {
        case CURLE_WRITE_ERROR:
        case CURLE_FILESIZE_EXCEEDED:
                if (result == CURLE_FILESIZE_EXCEEDED || q->too_big)
                        return fail(err, errlen, -EFBIG,
                                    "control plane at %s sent more than %zu bytes; response refused", q->url,
                                    (size_t) CONTROLPLANE_RESPONSE_MAX);
                return fail(err, errlen, -ENOMEM, "out of memory reading the response of %s", q->url);
        case CURLE_PEER_FAILED_VERIFICATION:
                return fail(err, errlen, -EPERM, "control plane at %s is not trusted: %s", q->url, text);
        case CURLE_SSL_CACERT_BADFILE:
                return fail(err, errlen, -EINVAL, "cannot use the CA file for %s: %s", q->url, text);
        case CURLE_SSL_CONNECT_ERROR:
                return fail(err, errlen, -EPROTO, "TLS handshake with %s failed: %s", q->url, text);
        case CURLE_COULDNT_RESOLVE_HOST:
                r = -EHOSTUNREACH;
                break;
        case CURLE_COULDNT_CONNECT:
                r = -ECONNREFUSED;
                break;
        case CURLE_OPERATION_TIMEDOUT:
                r = -ETIMEDOUT;
                break;
        case CURLE_GOT_NOTHING:
        case CURLE_SEND_ERROR:
        case CURLE_RECV_ERROR:
        case CURLE_PARTIAL_FILE:
                r = -ECONNRESET;
                break;
        default:
                r = -EIO;
        }
        return fail(err, errlen, r, "cannot reach the control plane at %s: %s", q->url, text);
}

int controlplane_request_finish(ControlPlaneRequest *q, CURLcode result, char *err, size_t errlen) {
        char server[SERVER_TEXT_MAX + 8];
        long status = 0;

        if (result != CURLE_OK)
                return transport_error(q, result, err, errlen);
        if (curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
                return fail(err, errlen, -EIO, "no HTTP status from %s", q->url);

        switch (status) {
        case CONTROLPLANE_OK:
        case CONTROLPLANE_NOT_MODIFIED:
        case HTTP_NOT_FOUND:
                return (int) status;
        case HTTP_UNAUTHORIZED:
        case HTTP_FORBIDDEN:
                server_error_text(q, server, sizeof server);
                return fail(err, errlen, -EACCES, "control plane refused the token (HTTP %ld)%s", status, server);
        default:
                if (status >= 300 && status < 400)
                        return fail(err, errlen, -EPROTO,
                                    "control plane at %s answered HTTP %ld, a redirect; redirects are not followed, "
                                    "set control_url to the final address",
                                    q->url, status);
                server_error_text(q, server, sizeof server);
                return fail(err, errlen, -EPROTO, "control plane at %s answered HTTP %ld%s", q->url, status, server);
        }
}

/* Whether `s` is one LDH label, as peers.c requires of a peer's name. */
static bool label_ok(const char *s, size_t len) {
        if (len == 0 || len > SHM_LABEL_MAX || s[0] == '-' || s[len - 1] == '-')
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];

                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-'))
                        return false;
        }
        return true;
}

/* A host name of LDH labels; one final dot is dropped from *len. */
static bool fqdn_ok(const char *s, size_t *len) {
        size_t n = *len, start = 0;

        if (n > 0 && s[n - 1] == '.')
                n--;
        if (n == 0 || n > SHM_DOMAIN_MAX)
                return false;
        for (size_t i = 0; i <= n; i++) {
                if (i < n && s[i] != '.')
                        continue;
                if (!label_ok(s + start, i - start))
                        return false;
                start = i + 1;
        }
        *len = n;
        return true;
}

static bool name_equal(const char *a, size_t alen, const char *b, size_t blen) {
        return alen == blen && strncasecmp(a, b, alen) == 0;
}

int controlplane_parse_answer(const char *body, size_t len, const char *query, ControlPlaneAnswer **ret,
                              char *err, size_t errlen) {
        json_t *root, *name, *fqdn, *addrs, *e;
        json_error_t jerr;
        ControlPlaneAnswer *a = NULL;
        const char *ns, *fs;
        size_t nlen, flen, qlen = strlen(query), n;
        int r;

        if (qlen > 0 && query[qlen - 1] == '.')
                qlen--;
        root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
        if (!root) {
                char text[SERVER_TEXT_MAX + 1];

                sanitize(text, sizeof text, jerr.text, strlen(jerr.text));
                return fail(err, errlen, -EBADMSG, "control plane's resolve answer is not JSON: line %d column %d: %s",
                            jerr.line, jerr.column, text);
        }
        if (!json_is_object(root)) {
                r = fail(err, errlen, -EBADMSG, "control plane's resolve answer is not a JSON object");
                goto finish;
        }
        e = json_object_get(root, "error");
        if (e) {
                char text[SERVER_TEXT_MAX + 1];

                if (json_is_string(e) && strcasecmp(json_string_value(e), "not found") == 0) {
                        r = fail(err, errlen, -ENOENT, "control plane knows no peer \"%.*s\"", (int) qlen, query);
                        goto finish;
                }
                if (json_is_string(e))
                        sanitize(text, sizeof text, json_string_value(e), json_string_length(e));
                else
                        strcpy(text, "(not a string)");
                r = fail(err, errlen, -EPROTO, "control plane could not resolve \"%.*s\": %s", (int) qlen, query,
                         text);
                goto finish;
        }

        name = json_object_get(root, "name");
        fqdn = json_object_get(root, "fqdn");
        addrs = json_object_get(root, "addresses");
        if (!json_is_string(name) || !json_is_string(fqdn) || !json_is_array(addrs)) {
                r = fail(err, errlen, -EBADMSG,
                         "control plane's resolve answer lacks \"name\", \"fqdn\" (strings) "
                         "or \"addresses\" (an array)");
                goto finish;
        }
        ns = json_string_value(name);
        nlen = json_string_length(name);
        fs = json_string_value(fqdn);
        flen = json_string_length(fqdn);
        if (!label_ok(ns, nlen) || strlen(ns) != nlen) {
                r = fail(err, errlen, -EBADMSG, "control plane's resolve answer has an invalid \"name\"");
                goto finish;
        }
        if (strlen(fs) != flen || !fqdn_ok(fs, &flen) || flen <= nlen || fs[nlen] != '.' ||
            strncasecmp(fs, ns, nlen) != 0) {
                r = fail(err, errlen, -EBADMSG,
                         "control plane's resolve answer has an invalid \"fqdn\" (a host name starting with \"name\")");
                goto finish;
        }
        if (!name_equal(query, qlen, ns, nlen) && !name_equal(query, qlen, fs, flen)) {
                r = fail(err, errlen, -EBADMSG, "control plane answered for \"%.*s\" when asked for \"%.*s\"",
                         (int) flen, fs, (int) qlen, query);
                goto finish;
        }
        n = json_array_size(addrs);
        if (n > CONTROLPLANE_ADDRESSES_MAX) {
                r = fail(err, errlen, -EBADMSG,
                         "control plane's resolve answer has %zu addresses; at most %u are taken", n,
                         CONTROLPLANE_ADDRESSES_MAX);
                goto finish;
        }

        a = calloc(1, sizeof *a + n * sizeof a->addresses[0]);
        if (!a) {
                r = fail(err, errlen, -ENOMEM, "out of memory");
                goto finish;
        }
        memcpy(a->name, ns, nlen);
        memcpy(a->fqdn, fs, flen);
        for (size_t i = 0; i < n; i++) {
                json_t *v = json_array_get(addrs, i);
                ControlPlaneAddress *ad = &a->addresses[i];
                const char *s = json_string_value(v);

                if (!s) {
                        r = fail(err, errlen, -EBADMSG,
                                 "control plane's resolve answer: addresses[%zu] is not a string", i);
                        goto finish;
                }
                if (inet_pton(AF_INET, s, &ad->in) == 1)
                        ad->family = AF_INET;
                else if (inet_pton(AF_INET6, s, &ad->in6) == 1)
                        ad->family = AF_INET6;
                else {
                        char text[INET6_ADDRSTRLEN + 4];

                        sanitize(text, sizeof text, s, json_string_length(v));
                        r = fail(err, errlen, -EBADMSG,
                                 "control plane's resolve answer: addresses[%zu] \"%s\" is not an IP address", i, text);
                        goto finish;
                }
                if (!inet_ntop(ad->family, &ad->in6, ad->text, sizeof ad->text)) {
                        r = fail(err, errlen, -EBADMSG,
                                 "control plane's resolve answer: addresses[%zu] unprintable", i);
                        goto finish;
                }
        }
        a->n_addresses = n;
        *ret = TAKE_PTR(a);
        r = 0;

finish:
        free(a);
        json_decref(root);
        return r;
}

int controlplane_resolve(const ControlPlaneConfig *c, const char *name, ControlPlaneAnswer **ret,
                         bool *ret_token_exposed, char *err, size_t errlen) {
        ControlPlaneRequest *q = NULL;
        _cleanup_free_ char *body = NULL;
        const char *data;
        size_t len, nlen;
        CURLcode rc;
        int r;

        nlen = strlen(name);
        if (nlen > 0 && name[nlen - 1] == '.')
                nlen--;
        if (nlen == 0 || nlen > SHM_DOMAIN_MAX)
                return fail(err, errlen, -EINVAL, "\"%s\" is not a host name", name);
        for (size_t i = 0; i < nlen; i++)
                if ((unsigned char) name[i] <= 0x20 || (unsigned char) name[i] >= 0x7f)
                        return fail(err, errlen, -EINVAL, "\"%s\" is not a host name", name);

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
                return fail(err, errlen, -EIO, "cannot initialise libcurl");
        body = controlplane_body("resolve", c->org_id ? c->org_id : "", name);
        if (!body) {
                r = fail(err, errlen, -EINVAL, "cannot encode the request (is org_id UTF-8?)");
                goto finish;
        }
        r = controlplane_request_new(c, body, NULL, &q, ret_token_exposed, err, errlen);
        if (r == -ENOENT)
                /* A token file that does not exist: the control plane was
                 * never asked, which is not its "no such peer". */
                r = -ENOKEY;
        if (r < 0)
                goto finish;
        rc = curl_easy_perform(controlplane_request_handle(q));
        r = controlplane_request_finish(q, rc, err, errlen);
        if (r < 0)
                goto finish;
        if (r == HTTP_NOT_FOUND) {
                r = fail(err, errlen, -ENOENT, "control plane knows no peer \"%.*s\"", (int) nlen, name);
                goto finish;
        }
        if (r != CONTROLPLANE_OK) {
                r = fail(err, errlen, -EPROTO, "control plane answered HTTP %d to a resolve", r);
                goto finish;
        }
        data = controlplane_request_body(q, &len);
        r = controlplane_parse_answer(data, len, name, ret, err, errlen);

finish:
        controlplane_request_free(q);
        curl_global_cleanup();
        return r;
}

ControlPlaneAnswer *controlplane_answer_free(ControlPlaneAnswer *a) {
        free(a);
        return NULL;
}
