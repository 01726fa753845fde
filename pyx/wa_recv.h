/* wa_recv.h -- the receive loop of a large payload: recv(2) into the destination's
 * memory until the payload is complete, swapping each chunk in place as it lands and
 * checksumming it on the way (bulk.pxi calls it with the GIL released).
 *
 * Why in C: a payload of megabytes arrives in many recv calls (as much as the
 * kernel's socket buffer holds each time).  Driven from Python, each costs a
 * recv_into, a decoder call, a swap call and a CRC call; here the loop costs one
 * call per payload, or per wake-up when the socket is non-blocking.
 *
 * State (wa_rx): the window is the destination's memory from its first byte not yet
 * swapped; `pos` bytes of it have landed (the first ones may have landed before this
 * call: a partial element, never swapped alone), `swapped` of them are swapped
 * (always whole units).  The CRC32C runs over each chunk as it arrives, before the
 * swap: the checksum is of the wire's bytes (docs/FORMAT.md section 4).
 *
 * Deadlines: `deadline_ns` < 0 waits as long as it takes (a blocking descriptor;
 * a non-blocking one waits in poll(2) without limit), 0 never waits (what is readable
 * now, then WA_RX_AGAIN), > 0 is a CLOCK_MONOTONIC time in ns: poll(2) with the time
 * left whenever recv would block.  CPython's socket timeouts make the descriptor
 * non-blocking, and with a deadline recv is also asked not to wait (MSG_DONTWAIT),
 * so the time is spent in poll, never in a blocking recv.
 *
 * Signals: EINTR from recv or poll returns WA_RX_EINTR at once; the caller takes the
 * GIL, runs Python's signal handlers (which may raise: Ctrl-C) and calls again.
 *
 * Where there is no recv(2)/poll(2) of this kind (Windows), wa_rx_run reports
 * WA_RX_UNSUPPORTED and the caller keeps its Python loop.
 */
#ifndef WA_RECV_H
#define WA_RECV_H

#include <stddef.h>
#include <stdint.h>

#include "wa_bswap.h"
#include "wa_crc32c.h"

enum {
    WA_RX_DONE = 0,        /* the window is full */
    WA_RX_EOF = 1,         /* the peer closed (recv returned 0) */
    WA_RX_AGAIN = 2,       /* deadline 0 and nothing readable now */
    WA_RX_TIMEOUT = 3,     /* the deadline passed */
    WA_RX_EINTR = 4,       /* a signal: run the handlers, then call again */
    WA_RX_ERRNO = 5,       /* recv or poll failed: errno in `err` */
    WA_RX_UNSUPPORTED = 6  /* no such loop on this platform */
};

typedef struct {
    int fd;
    char *buf;          /* the window */
    size_t len;         /* its length */
    size_t pos;         /* bytes landed in it */
    size_t swapped;     /* bytes swapped in place (whole units) */
    size_t chunk;       /* most bytes per recv when swapping or checksumming */
    int unit;           /* swap unit (2, 4, 8), 0: none */
    int path;           /* SIMD path for the swap (wa_bswap.h) */
    int do_crc;
    uint32_t crc;
    int64_t deadline_ns;
    int err;            /* errno of WA_RX_ERRNO */
} wa_rx;

#if defined(_WIN32)

static int64_t wa_now_ns(void) { return 0; }
static int wa_rx_run(wa_rx *s) { (void)s; return WA_RX_UNSUPPORTED; }

#else

#include <errno.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <time.h>

#ifdef MSG_DONTWAIT
#define WA_MSG_DONTWAIT MSG_DONTWAIT
#else /* only a non-blocking descriptor (what CPython's timeouts make) then avoids waiting */
#define WA_MSG_DONTWAIT 0
#endif

static int64_t wa_now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
}

/* Swap (in place) every whole unit landed since the last swap. */
static void wa_rx_swap(wa_rx *s) {
    size_t end;
    if (!s->unit) {
        s->swapped = s->pos;
        return;
    }
    end = s->pos - s->pos % (size_t)s->unit;
    if (end > s->swapped) {
        wa_swap_contig(s->buf + s->swapped, s->buf + s->swapped, end - s->swapped,
                       s->unit, s->path, 0);
        s->swapped = end;
    }
}

/* Wait until fd is readable or the deadline passes; 0 readable, else a WA_RX_ code. */
static int wa_rx_wait(wa_rx *s) {
    struct pollfd p;
    int timeout_ms = -1, r;
    if (s->deadline_ns == 0)
        return WA_RX_AGAIN;
    if (s->deadline_ns > 0) {
        int64_t left = s->deadline_ns - wa_now_ns();
        if (left <= 0)
            return WA_RX_TIMEOUT;
        /* round up: poll(0) would spin until the last millisecond passes */
        left = (left + 999999) / 1000000;
        timeout_ms = left > 0x7fffffff ? 0x7fffffff : (int)left;
    }
    p.fd = s->fd;
    p.events = POLLIN;
    p.revents = 0;
    r = poll(&p, 1, timeout_ms);
    if (r < 0) {
        if (errno == EINTR)
            return WA_RX_EINTR;
        s->err = errno;
        return WA_RX_ERRNO;
    }
    if (r == 0)
        return s->deadline_ns > 0 && wa_now_ns() < s->deadline_ns ? 0 : WA_RX_TIMEOUT;
    return 0; /* readable, or an error/hang-up that the next recv reports */
}

static int wa_rx_run(wa_rx *s) {
    /* with a deadline, never block in recv whatever the descriptor's mode: poll waits */
    int flags = s->deadline_ns >= 0 ? WA_MSG_DONTWAIT : 0;
    while (s->pos < s->len) {
        size_t want = s->len - s->pos;
        ssize_t r;
        if ((s->unit || s->do_crc) && want > s->chunk)
            want = s->chunk; /* swap and checksum each chunk while it is in cache */
        r = recv(s->fd, s->buf + s->pos, want, flags);
        if (r > 0) {
            if (s->do_crc)
                s->crc = wa_crc32c(s->crc, s->buf + s->pos, (size_t)r);
            s->pos += (size_t)r;
            wa_rx_swap(s);
            continue;
        }
        if (r == 0)
            return WA_RX_EOF;
        if (errno == EINTR)
            return WA_RX_EINTR;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int w = wa_rx_wait(s);
            if (w)
                return w;
            continue;
        }
        s->err = errno;
        return WA_RX_ERRNO;
    }
    return WA_RX_DONE;
}

#endif /* _WIN32 */

#endif /* WA_RECV_H */
