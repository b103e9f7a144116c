/* SPDX-License-Identifier: MIT */
/*
 * The control plane poller on sd-event. libcurl's multi socket interface
 * tells us which sockets to watch (on_curl_socket) and when to wake it
 * (on_curl_timer); the loop tells libcurl what happened
 * (curl_multi_socket_action); finished transfers come out of
 * curl_multi_info_read. A transfer is only ever started from the poll
 * timer, never from inside a libcurl callback.
 */

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "sources/controlplane.h"
#include "common/log.h"
#include "siphash.h"
#include "sources/sync.h"
#include "common/time-util.h"

/* libcurl's timeouts are in milliseconds; the poll needs no finer. */
#define CURL_TIMER_ACCURACY_USEC USEC_PER_MSEC
#define POLL_TIMER_ACCURACY_USEC (10 * USEC_PER_MSEC)
/* +-10 %: JITTER_PERCENT of the delay either way. */
#define JITTER_PERCENT 10u

typedef enum SyncState {
        SYNC_STATE_NEW,     /* no attempt finished yet */
        SYNC_STATE_OK,
        SYNC_STATE_FAILING,
} SyncState;

struct Sync {
        sd_event *event;
        char *control_url, *org_id, *token_file, *ca_file;
        char *url;  /* the endpoint, for messages */
        char *body; /* the "list" request, the same every time */
        ControlPlaneConfig cp;
        uint64_t interval_usec, max_backoff_usec;
        sync_update_fn on_update;
        void *userdata;

        CURLM *multi;
        sd_event_source *curl_timer, *poll_timer;
        ControlPlaneRequest *inflight;
        bool inflight_conditional; /* it carries If-None-Match */
        bool inflight_forced;      /* sync_now(): hand the body over regardless */
        bool force_next;           /* sync_now() asked */
        bool again;                /* sync_now() during a transfer */

        /* The last body the callback accepted, by keyed hash. */
        uint64_t hash_key[2];
        uint64_t accepted_hash;
        bool have_accepted;
        uint64_t rng;

        SyncState state;
        bool token_exposed;
        SyncStatus status;
};

/* snprintf() that may cut a message short, which is fine for messages. */
__attribute__((format(printf, 3, 4)))
static void message_format(char *buf, size_t len, const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vsnprintf(buf, len, fmt, ap);
        va_end(ap);
}

static uint64_t sync_now_usec(const Sync *s) {
        uint64_t now;

        if (sd_event_now(s->event, CLOCK_MONOTONIC, &now) < 0) {
                now = clock_now_usec(CLOCK_MONOTONIC);
        }
        return now;
}

/* xorshift64*: jitter needs spread, not secrecy. */
static uint64_t sync_random(Sync *s) {
        s->rng ^= s->rng >> 12;
        s->rng ^= s->rng << 25;
        s->rng ^= s->rng >> 27;
        return s->rng * UINT64_C(2685821657736338717);
}

/* `d` moved by a random amount within +-JITTER_PERCENT. */
static uint64_t sync_jitter(Sync *s, uint64_t d) {
        uint64_t span = d / 100 * JITTER_PERCENT;

        if (span == 0)
                return d;
        return d - span + sync_random(s) % (2 * span + 1);
}

static void format_delay(char *buf, size_t len, uint64_t usec) {
        if (usec < USEC_PER_SEC)
                (void) snprintf(buf, len, "%llu ms", (unsigned long long) (usec / USEC_PER_MSEC));
        else if (usec < 120 * USEC_PER_SEC)
                (void) snprintf(buf, len, "%.1f s", (double) usec / USEC_PER_SEC);
        else
                (void) snprintf(buf, len, "%.1f min", (double) usec / (60 * USEC_PER_SEC));
}

static void sync_schedule(Sync *s, uint64_t delay) {
        uint64_t at = sync_now_usec(s) + delay;
        int r;

        r = sd_event_source_set_time(s->poll_timer, at);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->poll_timer, SD_EVENT_ONESHOT);
        if (r < 0) {
                (void) log_line_errno(SD_ERR, r, "control plane: cannot arm the poll timer: %m; polling stops");
                s->status.next_attempt_usec = 0;
                return;
        }
        s->status.next_attempt_usec = at;
}

/* The delay before the attempt after the n-th failure in a row: 1 s,
 * doubling, capped. */
static uint64_t sync_backoff(const Sync *s, unsigned failures) {
        uint64_t cap = s->max_backoff_usec > s->interval_usec ? s->max_backoff_usec : s->interval_usec;
        uint64_t d = SYNC_BACKOFF_FIRST_USEC;

        for (unsigned i = 1; i < failures && d < cap; i++)
                d *= 2;
        return d < cap ? d : cap;
}

static void sync_succeeded(Sync *s, const char *how) {
        SyncState was = s->state;
        unsigned failures = s->status.consecutive_failures;

        s->state = SYNC_STATE_OK;
        s->status.last_success_usec = sync_now_usec(s);
        s->status.consecutive_failures = 0;
        s->status.last_errno = 0;
        s->status.last_error[0] = '\0';
        if (was == SYNC_STATE_NEW)
                log_line(SD_INFO, "control plane %s: in sync (%s)", s->url, how);
        else if (was == SYNC_STATE_FAILING)
                log_line(SD_NOTICE, "control plane %s: back in sync (%s) after %u failed attempt%s", s->url, how,
                         failures, failures == 1 ? "" : "s");
        sync_schedule(s, sync_jitter(s, s->interval_usec));
}

/* Whether two failure messages tell of the same failure. Digits do not
 * count: libcurl's "after 1501 milliseconds" differs every time, and HTTP
 * 502 after 500 is the same outage. */
static bool same_failure(const char *a, const char *b) {
        for (;;) {
                while (*a >= '0' && *a <= '9')
                        a++;
                while (*b >= '0' && *b <= '9')
                        b++;
                if (*a != *b)
                        return false;
                if (*a == '\0')
                        return true;
                a++;
                b++;
        }
}

static void sync_failed(Sync *s, int error, const char *message) {
        uint64_t delay;
        char when[32];
        bool same;

        if (error >= 0)
                error = -EIO;
        same = s->state == SYNC_STATE_FAILING && s->status.last_errno == error &&
               same_failure(s->status.last_error, message);
        s->state = SYNC_STATE_FAILING;
        if (s->status.consecutive_failures < UINT_MAX)
                s->status.consecutive_failures++;
        s->status.last_errno = error;
        message_format(s->status.last_error, sizeof s->status.last_error, "%s", message);

        delay = sync_jitter(s, sync_backoff(s, s->status.consecutive_failures));
        /* A repeat of the same failure is not news; a different one is. */
        if (!same) {
                format_delay(when, sizeof when, delay);
                log_line(SD_ERR, "%s; %s, retrying in %s", message,
                         s->have_accepted ? "keeping the published map" : "nothing from the control plane yet",
                         when);
        }
        sync_schedule(s, delay);
}

static void sync_note_token_mode(Sync *s, bool exposed) {
        if (exposed && !s->token_exposed)
                log_line(SD_WARNING, "token file %s is readable by other users; make it 0600 (or 0640 for a group)",
                         s->token_file);
        s->token_exposed = exposed;
}

static void sync_start(Sync *s) {
        char err[CONTROLPLANE_ERROR_MAX];
        ControlPlaneRequest *q = NULL;
        const char *inm = NULL;
        bool exposed = false;
        CURLMcode mc;
        int r;

        if (s->inflight)
                return;
        s->status.last_attempt_usec = sync_now_usec(s);
        s->status.next_attempt_usec = 0;
        if (!s->force_next && s->status.etag[0])
                inm = s->status.etag;

        r = controlplane_request_new(&s->cp, s->body, inm, &q, &exposed, err, sizeof err);
        if (r < 0) {
                sync_failed(s, r, err);
                return;
        }
        sync_note_token_mode(s, exposed);
        mc = curl_multi_add_handle(s->multi, controlplane_request_handle(q));
        if (mc != CURLM_OK) {
                controlplane_request_free(q);
                message_format(err, sizeof err, "control plane: cannot start a transfer: %s",
                               curl_multi_strerror(mc));
                sync_failed(s, -EIO, err);
                return;
        }
        s->inflight = q;
        s->inflight_conditional = inm != NULL;
        s->inflight_forced = s->force_next;
        s->force_next = false;
}

static void sync_store_etag(Sync *s, const char *etag) {
        if (etag && strlen(etag) < sizeof s->status.etag)
                strcpy(s->status.etag, etag);
        else
                s->status.etag[0] = '\0';
}

/* A 200: hand the body over unless it is the one already accepted. */
static void sync_take_body(Sync *s, const ControlPlaneRequest *q, bool forced) {
        char err[CONTROLPLANE_ERROR_MAX], message[SYNC_ERROR_MAX];
        size_t len;
        const char *body = controlplane_request_body(q, &len);
        uint64_t h = siphash13(s->hash_key, body, len, 0);
        int r;

        if (!forced && s->have_accepted && h == s->accepted_hash) {
                sync_store_etag(s, controlplane_request_etag(q));
                sync_succeeded(s, "unchanged");
                return;
        }
        err[0] = '\0';
        r = s->on_update(body, len, err, sizeof err, s->userdata);
        if (r < 0) {
                /* Its ETag is not kept: the next poll fetches the document
                 * whole again, and reports it again if it is still bad. */
                s->status.etag[0] = '\0';
                message_format(message, sizeof message, "map from the control plane rejected: %s",
                               err[0] ? err : strerror(-r));
                sync_failed(s, r, message);
                return;
        }
        s->accepted_hash = h;
        s->have_accepted = true;
        s->status.n_updates++;
        sync_store_etag(s, controlplane_request_etag(q));
        sync_succeeded(s, "new map");
}

static void sync_finished(Sync *s, CURLcode result) {
        ControlPlaneRequest *q = TAKE_PTR(s->inflight);
        bool forced = s->inflight_forced;
        char err[CONTROLPLANE_ERROR_MAX];
        int r;

        (void) curl_multi_remove_handle(s->multi, controlplane_request_handle(q));
        r = controlplane_request_finish(q, result, err, sizeof err);
        if (r == CONTROLPLANE_OK)
                sync_take_body(s, q, forced);
        else if (r == CONTROLPLANE_NOT_MODIFIED && s->inflight_conditional)
                sync_succeeded(s, "not modified");
        else if (r >= 0) {
                message_format(err, sizeof err, "control plane %s answered HTTP %d to \"list\"%s", s->url, r,
                               r == CONTROLPLANE_NOT_MODIFIED ? " without If-None-Match"
                                                              : " (are control_url and org_id right?)");
                sync_failed(s, -EPROTO, err);
        } else
                sync_failed(s, r, err);
        controlplane_request_free(q);

        if (s->again) {
                s->again = false;
                sync_schedule(s, 0);
        }
}

/* Collects what libcurl has finished. */
static void sync_drain(Sync *s) {
        CURLMsg *m;
        int left;

        while ((m = curl_multi_info_read(s->multi, &left)))
                if (m->msg == CURLMSG_DONE && s->inflight &&
                    m->easy_handle == controlplane_request_handle(s->inflight))
                        sync_finished(s, m->data.result);
}

static void sync_socket_action(Sync *s, curl_socket_t fd, int flags) {
        int running;
        CURLMcode mc = curl_multi_socket_action(s->multi, fd, flags, &running);

        sync_drain(s);
        /* One of our callbacks failed (no memory for an io source, say):
         * libcurl will not finish the transfer by itself, so it ends here
         * as a failure and the poll is retried with back-off. */
        if (mc != CURLM_OK && s->inflight) {
                log_line(SD_ERR, "control plane: libcurl: %s; abandoning the transfer", curl_multi_strerror(mc));
                sync_finished(s, CURLE_ABORTED_BY_CALLBACK);
        }
}

static int on_io(sd_event_source *src, int fd, uint32_t revents, void *userdata) {
        int flags = 0;

        (void) src;
        if (revents & EPOLLIN)
                flags |= CURL_CSELECT_IN;
        if (revents & EPOLLOUT)
                flags |= CURL_CSELECT_OUT;
        if (revents & (EPOLLERR | EPOLLHUP))
                flags |= CURL_CSELECT_ERR;
        sync_socket_action(userdata, fd, flags);
        return 0;
}

static int on_curl_timer_fired(sd_event_source *src, uint64_t usec, void *userdata) {
        (void) src;
        (void) usec;
        sync_socket_action(userdata, CURL_SOCKET_TIMEOUT, 0);
        return 0;
}

/* CURLMOPT_SOCKETFUNCTION: watch `fd` for `what`, or stop watching it. The
 * io source rides along as libcurl's per-socket pointer. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
        Sync *s = userp;
        sd_event_source *src = socketp;
        uint32_t events = 0;
        int r;

        (void) easy;
        if (what == CURL_POLL_REMOVE) {
                if (src) {
                        (void) curl_multi_assign(s->multi, fd, NULL);
                        sd_event_source_disable_unref(src);
                }
                return 0;
        }
        if (what & CURL_POLL_IN)
                events |= EPOLLIN;
        if (what & CURL_POLL_OUT)
                events |= EPOLLOUT;

        if (!src) {
                r = sd_event_add_io(s->event, &src, fd, events, on_io, s);
                if (r < 0) {
                        (void) log_line_errno(SD_ERR, r, "control plane: cannot watch a socket: %m");
                        return -1;
                }
                (void) sd_event_source_set_description(src, "control-plane-socket");
                if (curl_multi_assign(s->multi, fd, src) != CURLM_OK) {
                        sd_event_source_disable_unref(src);
                        return -1;
                }
        } else {
                r = sd_event_source_set_io_events(src, events);
                if (r < 0) {
                        (void) log_line_errno(SD_ERR, r, "control plane: cannot watch a socket: %m");
                        return -1;
                }
        }
        r = sd_event_source_set_enabled(src, events ? SD_EVENT_ON : SD_EVENT_OFF);
        return r < 0 ? -1 : 0;
}

/* CURLMOPT_TIMERFUNCTION: call curl_multi_socket_action(TIMEOUT) in
 * `timeout_ms` (0: at the next iteration), or never (-1). Only arms our
 * timer: libcurl must not be re-entered from its own callback. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
        Sync *s = userp;
        int r;

        (void) multi;
        if (timeout_ms < 0)
                return sd_event_source_set_enabled(s->curl_timer, SD_EVENT_OFF) < 0 ? -1 : 0;
        r = sd_event_source_set_time(s->curl_timer, sync_now_usec(s) + (uint64_t) timeout_ms * USEC_PER_MSEC);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->curl_timer, SD_EVENT_ONESHOT);
        if (r < 0) {
                (void) log_line_errno(SD_ERR, r, "control plane: cannot arm libcurl's timer: %m");
                return -1;
        }
        return 0;
}

static int on_poll_timer(sd_event_source *src, uint64_t usec, void *userdata) {
        (void) src;
        (void) usec;
        sync_start(userdata);
        return 0;
}

static int sync_strdup(char **dst, const char *src) {
        if (!src || !src[0])
                return 0;
        *dst = strdup(src);
        return *dst ? 0 : -ENOMEM;
}

static void sync_seed(Sync *s) {
        uint64_t seed[3];

        if (getrandom(seed, sizeof seed, GRND_NONBLOCK) != (ssize_t) sizeof seed) {
                struct timespec ts;

                /* Early boot: the hash key only has to differ from what a
                 * server could predict in detail, and jitter needs none. */
                (void) clock_gettime(CLOCK_MONOTONIC, &ts);
                seed[0] = (uint64_t) ts.tv_nsec ^ ((uint64_t) ts.tv_sec << 32) ^ (uint64_t) (uintptr_t) s;
                seed[1] = seed[0] * UINT64_C(0x9e3779b97f4a7c15);
                seed[2] = seed[1] ^ (uint64_t) getpid();
        }
        s->hash_key[0] = seed[0];
        s->hash_key[1] = seed[1];
        s->rng = seed[2] ? seed[2] : 1;
}

int sync_new(sd_event *e, const SyncConfig *c, sync_update_fn on_update, void *userdata, Sync **ret) {
        char err[CONTROLPLANE_ERROR_MAX];
        Sync *s;
        int r;

        /* No interval of its own: ztnad.conf's key table holds the default. */
        if (!e || !c || !on_update || !ret || c->interval_usec == 0)
                return -EINVAL;
        s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->event = sd_event_ref(e);
        s->on_update = on_update;
        s->userdata = userdata;
        s->interval_usec = c->interval_usec;
        s->max_backoff_usec = c->max_backoff_usec ? c->max_backoff_usec : SYNC_BACKOFF_MAX_USEC_DEFAULT;
        sync_seed(s);

        if (sync_strdup(&s->control_url, c->control_url) < 0 || sync_strdup(&s->org_id, c->org_id) < 0 ||
            sync_strdup(&s->token_file, c->token_file) < 0 || sync_strdup(&s->ca_file, c->ca_file) < 0) {
                r = -ENOMEM;
                goto fail;
        }
        s->cp = (ControlPlaneConfig) {
                .control_url = s->control_url,
                .org_id = s->org_id,
                .token_file = s->token_file,
                .ca_file = s->ca_file,
                .timeout_usec = c->timeout_usec,
        };
        r = controlplane_endpoint(&s->cp, &s->url, err, sizeof err);
        if (r < 0) {
                log_line(SD_ERR, "control plane: %s", err);
                goto fail;
        }
        s->body = controlplane_body("list", s->org_id, NULL);
        if (!s->body) {
                log_line(SD_ERR, "control plane: cannot encode the request (is org_id UTF-8?)");
                r = -EINVAL;
                goto fail;
        }

        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
                r = -EIO;
                goto fail;
        }
        s->multi = curl_multi_init();
        if (!s->multi) {
                curl_global_cleanup();
                r = -ENOMEM;
                goto fail;
        }
        if (curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) != CURLM_OK ||
            curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s) != CURLM_OK ||
            curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) != CURLM_OK ||
            curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s) != CURLM_OK) {
                r = -EIO;
                goto fail;
        }

        r = sd_event_add_time(e, &s->curl_timer, CLOCK_MONOTONIC, 0, CURL_TIMER_ACCURACY_USEC, on_curl_timer_fired,
                              s);
        if (r >= 0)
                r = sd_event_source_set_enabled(s->curl_timer, SD_EVENT_OFF);
        if (r >= 0)
                r = sd_event_add_time(e, &s->poll_timer, CLOCK_MONOTONIC, 0, POLL_TIMER_ACCURACY_USEC,
                                      on_poll_timer, s);
        if (r < 0) {
                (void) log_line_errno(SD_ERR, r, "control plane: cannot set up timers: %m");
                goto fail;
        }
        (void) sd_event_source_set_description(s->curl_timer, "control-plane-curl-timer");
        (void) sd_event_source_set_description(s->poll_timer, "control-plane-poll");
        sync_schedule(s, 0);

        *ret = s;
        return 0;

fail:
        sync_free(s);
        return r;
}

Sync *sync_free(Sync *s) {
        if (!s)
                return NULL;
        if (s->inflight) {
                (void) curl_multi_remove_handle(s->multi, controlplane_request_handle(s->inflight));
                s->inflight = controlplane_request_free(s->inflight);
        }
        if (s->multi) {
                /* Closing its cached connections calls on_curl_socket()
                 * with CURL_POLL_REMOVE, so the timers and io sources must
                 * still be there. */
                (void) curl_multi_cleanup(s->multi);
                curl_global_cleanup();
        }
        sd_event_source_disable_unref(s->curl_timer);
        sd_event_source_disable_unref(s->poll_timer);
        sd_event_unref(s->event);
        free(s->control_url);
        free(s->org_id);
        free(s->token_file);
        free(s->ca_file);
        free(s->url);
        free(s->body);
        free(s);
        return NULL;
}

void sync_now(Sync *s) {
        s->force_next = true;
        if (s->inflight) {
                s->again = true;
                return;
        }
        sync_schedule(s, 0);
}

void sync_get_status(const Sync *s, SyncStatus *ret) {
        *ret = s->status;
}
