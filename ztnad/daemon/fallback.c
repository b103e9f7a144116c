/* SPDX-License-Identifier: MIT */
/*
 * The persisted copy of the store: debounce on the event loop, export there
 * (a memcpy of one table), write on the saving thread. See fallback.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "common/log.h"
#include "common/time-util.h"
#include "daemon/fallback.h"
#include "macro.h"
#include "shm.h"


struct Fallback {
        ShmWriter *writer; /* borrowed */
        char *path;
        int lock_fd;
        sd_event_source *timer;
        uint64_t first_change_usec; /* CLOCK_MONOTONIC; 0: everything saved */
        uint64_t export_usec;       /* the last export's cost on the loop */
        uint64_t export_max_usec;

        pthread_t thread;
        bool thread_started;
        pthread_mutex_t lock; /* guards everything below */
        pthread_cond_t cond;
        void *job; /* the next image to write, owned */
        size_t job_len;
        bool busy; /* the thread is writing one */
        bool stop;
        uint64_t saves, saved_usec, save_usec; /* CLOCK_REALTIME; the last write's cost */
        uint64_t save_max_usec;
        int error; /* of the last save; 0 after a success */
};

static void *saver_main(void *arg) {
        Fallback *f = arg;

        pthread_mutex_lock(&f->lock);
        for (;;) {
                while (!f->job && !f->stop)
                        pthread_cond_wait(&f->cond, &f->lock);
                if (!f->job)
                        break; /* stopping, nothing left to write */
                void *job = f->job;
                size_t len = f->job_len;
                f->job = NULL;
                f->busy = true;
                pthread_mutex_unlock(&f->lock);

                uint64_t start = clock_now_usec(CLOCK_MONOTONIC);
                int r = shm_store_save(f->path, job, len);
                uint64_t took = clock_now_usec(CLOCK_MONOTONIC) - start;
                free(job);

                pthread_mutex_lock(&f->lock);
                f->busy = false;
                if (r < 0 && r != f->error)
                        (void) log_line_errno(SD_WARNING, r, "cannot save the store's copy to %s: %m (lookups fall back to an older copy, or none, while the store is missing)",
                                              f->path);
                else if (r >= 0 && f->error)
                        log_line(SD_NOTICE, "the store's copy is saved to %s again", f->path);
                f->error = r < 0 ? r : 0;
                if (r >= 0) {
                        f->saves++;
                        f->saved_usec = clock_now_usec(CLOCK_REALTIME);
                }
                f->save_usec = took;
                if (took > f->save_max_usec)
                        f->save_max_usec = took;
                pthread_cond_broadcast(&f->cond);
        }
        pthread_mutex_unlock(&f->lock);
        return NULL;
}

int fallback_save_now(Fallback *f) {
        void *image;
        size_t len;

        (void) sd_event_source_set_enabled(f->timer, SD_EVENT_OFF);
        f->first_change_usec = 0;
        uint64_t start = clock_now_usec(CLOCK_MONOTONIC);
        int r = shm_writer_export(f->writer, &image, &len);
        if (r < 0)
                return r == -ENODATA ? 0 : r;
        f->export_usec = clock_now_usec(CLOCK_MONOTONIC) - start;
        if (f->export_usec > f->export_max_usec)
                f->export_max_usec = f->export_usec;

        /* A newer image replaces one the thread has not started on. */
        pthread_mutex_lock(&f->lock);
        free(f->job);
        f->job = image;
        f->job_len = len;
        pthread_cond_broadcast(&f->cond);
        pthread_mutex_unlock(&f->lock);
        return 0;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Fallback *f = userdata;
        (void) s;
        (void) usec;
        int r = fallback_save_now(f);
        if (r < 0)
                (void) log_line_errno(SD_WARNING, r, "cannot copy the store for %s: %m", f->path);
        return 0;
}

void fallback_changed(Fallback *f) {
        if (!f)
                return;
        uint64_t now = clock_now_usec(CLOCK_MONOTONIC);
        if (!f->first_change_usec)
                f->first_change_usec = now;
        uint64_t when = now + FALLBACK_DELAY_USEC;
        if (when > f->first_change_usec + FALLBACK_MAX_DELAY_USEC)
                when = f->first_change_usec + FALLBACK_MAX_DELAY_USEC;
        if (sd_event_source_set_time(f->timer, when) < 0 || sd_event_source_set_enabled(f->timer, SD_EVENT_ONESHOT) < 0)
                (void) on_timer(f->timer, now, f); /* no timer: save at once rather than never */
}

int fallback_new(sd_event *event, ShmWriter *writer, const char *path, Fallback **ret) {
        _cleanup_free_ char *lock_path = NULL;
        Fallback *f;
        int r;

        if (asprintf(&lock_path, "%s.lock", path) < 0)
                return -ENOMEM;
        f = calloc(1, sizeof(*f));
        if (!f)
                return -ENOMEM;
        f->writer = writer;
        f->lock_fd = -1;
        pthread_mutex_init(&f->lock, NULL);
        pthread_cond_init(&f->cond, NULL);
        f->path = strdup(path);
        if (!f->path) {
                r = -ENOMEM;
                goto fail;
        }
        /* One saver per copy: two daemons renaming over each other's copy
         * would leave whichever map was saved last. */
        f->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (f->lock_fd < 0) {
                r = -errno;
                goto fail;
        }
        if (flock(f->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                r = errno == EWOULDBLOCK ? -EBUSY : -errno;
                goto fail;
        }
        shm_store_remove_leftovers(path);
        r = sd_event_add_time(event, &f->timer, CLOCK_MONOTONIC, 0, USEC_PER_SEC / 10, on_timer, f);
        if (r >= 0)
                r = sd_event_source_set_enabled(f->timer, SD_EVENT_OFF);
        if (r < 0)
                goto fail;
        r = -pthread_create(&f->thread, NULL, saver_main, f);
        if (r < 0)
                goto fail;
        f->thread_started = true;
        *ret = f;
        return 0;
fail:
        fallback_free(f);
        return r;
}

Fallback *fallback_free(Fallback *f) {
        if (!f)
                return NULL;
        if (f->thread_started) {
                /* Flushed on stop: the copy holds what was published last. */
                if (f->first_change_usec) {
                        int r = fallback_save_now(f);
                        if (r < 0)
                                (void) log_line_errno(SD_WARNING, r, "cannot copy the store for %s: %m", f->path);
                }
                pthread_mutex_lock(&f->lock);
                f->stop = true;
                pthread_cond_broadcast(&f->cond);
                pthread_mutex_unlock(&f->lock);
                pthread_join(f->thread, NULL);
        }
        free(f->job);
        f->timer = sd_event_source_disable_unref(f->timer);
        safe_close(f->lock_fd);
        pthread_cond_destroy(&f->cond);
        pthread_mutex_destroy(&f->lock);
        free(f->path);
        free(f);
        return NULL;
}

json_t *fallback_status(Fallback *f) {
        pthread_mutex_lock(&f->lock);
        json_t *o = json_pack("{s:s, s:I, s:s?, s:I, s:I, s:I, s:I, s:b}", "path", f->path, "saves",
                              (json_int_t) f->saves, "last_error", f->error ? strerror(-f->error) : NULL,
                              "export_usec", (json_int_t) f->export_usec, "export_max_usec",
                              (json_int_t) f->export_max_usec, "save_usec", (json_int_t) f->save_usec,
                              "save_max_usec", (json_int_t) f->save_max_usec, "pending",
                              f->first_change_usec || f->job || f->busy);
        uint64_t saved = f->saved_usec;
        pthread_mutex_unlock(&f->lock);
        if (o)
                json_object_set_new(o, "saved_usec", json_integer((json_int_t) saved));
        return o;
}
