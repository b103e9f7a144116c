/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * Time in microseconds, the unit sd-event speaks: the units and the clock
 * reading, defined here once (timeouts.h builds its timers on them).
 */

#include <stdint.h>
#include <time.h>

#define NSEC_PER_USEC UINT64_C(1000)
#define USEC_PER_MSEC UINT64_C(1000)
#define USEC_PER_SEC UINT64_C(1000000)

static inline uint64_t timespec_usec(const struct timespec *ts) {
        return (uint64_t) ts->tv_sec * USEC_PER_SEC + (uint64_t) ts->tv_nsec / NSEC_PER_USEC;
}

/* `clock` (CLOCK_MONOTONIC, CLOCK_REALTIME...) now. */
static inline uint64_t clock_now_usec(clockid_t clock) {
        struct timespec ts;

        (void) clock_gettime(clock, &ts);
        return timespec_usec(&ts);
}
