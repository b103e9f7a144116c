/* SPDX-License-Identifier: MIT */
/*
 * A TCP connection to the DNS stub: its references, closing it, the
 * answers queued for it and their sending, the events it waits for and
 * its idle timer. Reading queries off it is the query path's (stub.c).
 */

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <systemd/sd-event.h>

#include "macro.h"
#include "dns/stub-internal.h"

/* ---- TCP connections ---- */

void stub_conn_unref(TcpConn *c) {
        if (atomic_fetch_sub(&c->refs, 1) != 1)
                return;
        free(c->in);
        free(c);
}

void stub_conn_close(TcpConn *c) {
        Worker *w = c->worker;

        if (c->closed)
                return;
        c->closed = true;
        c->io = sd_event_source_disable_unref(c->io);
        c->idle = sd_event_source_disable_unref(c->idle);
        c->fd = safe_close(c->fd);
        for (OutBuf *o = c->out_head, *next; o; o = next) {
                next = o->next;
                free(o);
        }
        c->out_head = c->out_tail = NULL;
        c->out_bytes = 0;
        if (c->prev)
                c->prev->next = c->next;
        else
                w->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        c->prev = c->next = NULL;
        atomic_fetch_sub(&w->stub->tcp_connections, 1);
        stub_conn_unref(c);
}

int stub_conn_flush(TcpConn *c) {
        while (c->out_head) {
                OutBuf *o = c->out_head;
                ssize_t n = send(c->fd, o->data + c->out_off, o->len - c->out_off, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        return -errno;
                }
                c->out_off += (size_t) n;
                c->out_bytes -= (size_t) n;
                if (c->out_off < o->len)
                        return 0;
                c->out_head = o->next;
                if (!c->out_head)
                        c->out_tail = NULL;
                c->out_off = 0;
                free(o);
        }
        return 0;
}

void stub_conn_send(TcpConn *c, const uint8_t *msg, size_t len) {
        if (c->closed)
                return;
        OutBuf *o = malloc(sizeof *o + 2 + len);
        if (!o) {
                stub_conn_close(c);
                return;
        }
        o->next = NULL;
        o->len = 2 + len;
        o->data[0] = (uint8_t) (len >> 8);
        o->data[1] = (uint8_t) len;
        memcpy(o->data + 2, msg, len);
        if (c->out_tail)
                c->out_tail->next = o;
        else
                c->out_head = o;
        c->out_tail = o;
        c->out_bytes += o->len;
        if (stub_conn_flush(c) < 0) {
                stub_conn_close(c);
                return;
        }
        stub_conn_update(c);
}

/* Whether a whole message waits in the input buffer. */
bool stub_conn_has_message(const TcpConn *c) {
        return c->in_len >= 2 && c->in_len - 2 >= ((size_t) c->in[0] << 8 | c->in[1]);
}

void stub_conn_update(TcpConn *c) {
        Worker *w = c->worker;
        uint32_t events = 0;

        if (c->closed)
                return;
        /* Nothing more to do: the client is gone and every answer is out. */
        if (c->read_eof && c->pending == 0 && !c->out_head && !stub_conn_has_message(c)) {
                stub_conn_close(c);
                return;
        }
        if (!c->read_eof && c->pending < STUB_TCP_PIPELINE_MAX && c->out_bytes < TCP_OUT_MAX)
                events |= EPOLLIN;
        if (c->out_head)
                events |= EPOLLOUT;
        (void) sd_event_source_set_io_events(c->io, events);
        (void) sd_event_source_set_enabled(c->io, events ? SD_EVENT_ON : SD_EVENT_OFF);
        /* The idle clock runs while the connection has nothing to do. */
        (void) sd_event_source_set_time_relative(c->idle, w->stub->config.tcp_idle_usec);
        (void) sd_event_source_set_enabled(c->idle, SD_EVENT_ONESHOT);
}

/* The idle timer (armed by stub_conn_update()). */
int stub_on_conn_idle(sd_event_source *src, uint64_t usec, void *userdata) {
        TcpConn *c = userdata;

        (void) src;
        (void) usec;
        if (c->pending > 0 || c->out_head) {
                /* Still busy: the clock starts again once it is not. */
                stub_conn_update(c);
                return 0;
        }
        stub_conn_close(c);
        return 0;
}
