/* SPDX-License-Identifier: MIT */
#pragma once

/*
 * The control socket server's state, for control-server.c and the tests
 * only: ztnad holds a Control * and calls control-server.h.
 */

#include <stddef.h>
#include <sys/types.h>
#include <systemd/sd-event.h>

#include "control/control-server.h"

typedef struct Connection Connection;

struct Control {
        sd_event *event;
        int fd;
        sd_event_source *listen, *accept_retry;
        ControlOps ops;
        void *userdata;
        gid_t admin_gid;
        char *admin_group; /* NULL: "ztna" */
        ControlLimits limits;

        /* The socket file control_new() bound, removed again by
         * control_free() if it is still this one. */
        char *path;
        dev_t dev;
        ino_t ino;

        Connection *connections;
        size_t n_connections;
        size_t n_other; /* of them, from outside root and the admin group */
};

/* Connections open now: the fuzz target checks that every one it opened
 * is gone once its client hung up. No program needs it. */
static inline size_t control_connections(const Control *c) {
        return c ? c->n_connections : 0;
}
