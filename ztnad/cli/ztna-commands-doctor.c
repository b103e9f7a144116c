/* SPDX-License-Identifier: MIT */
/*
 * ztna: `ztna doctor` started from ztna's options, with its way of asking
 * ztnad. The doctor itself is doctor*.c.
 */

#include <errno.h>
#include <jansson.h>
#include <stdio.h>

#include "cli/doctor.h"
#include "cli/ztna-internal.h"
#include "common/time-util.h"
#include "macro.h"

/* The doctor's question to ztnad: a live ztnad answers status at once. */
#define DOCTOR_DAEMON_TIMEOUT_USEC (USEC_PER_SEC / 2)

/* doctor asks ztnad through this: one request, a short deadline of its
 * own (the doctor's whole run is bounded), the reply whatever it is. */
static int doctor_daemon_call(void *userdata, const char *command, json_t **ret, char *err, size_t errlen) {
        const Args *a = userdata;
        _cleanup_(json_decrefp) json_t *req = json_pack("{s:s}", "command", command);

        if (!req) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        return ztna_daemon_call(a, req, ret, err, errlen);
}

int ztna_cmd_doctor(const Args *a, const char *name) {
        Args da = *a;
        DoctorOptions o = {
                .config = a->config,
                .store = a->store,
                .socket = ztna_socket_path(a),
                .name = name,
                .json = a->json,
                .daemon_call = doctor_daemon_call,
                .userdata = &da,
        };

        if (!a->timeout_set)
                da.timeout_usec = DOCTOR_DAEMON_TIMEOUT_USEC;
        return doctor_run(&o);
}
