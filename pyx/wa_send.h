/* wa_send.h -- one non-blocking send(2) of a buffer on a socket descriptor, for the
 * transport's per-message path (pyx/fastpath.pxi send_small), and its receiving twin:
 * one non-blocking recv(2) into the read-ahead (fastpath.pxi SmallRx.take).
 *
 * Why MSG_DONTWAIT, whatever the socket's own mode: the caller holds the GIL and must
 * never wait in the kernel with it.  A socket that cannot take the whole buffer now
 * takes what fits (or nothing: EAGAIN), and the Python caller sends the rest with
 * sock.sendall, which waits with the GIL released and under the channel's deadline.
 * That also leaves CPython's socket timeouts their meaning: a socket with a timeout is
 * O_NONBLOCK at the descriptor level, a socket without one is blocking, and a send
 * that does not wait behaves the same on both.
 *
 * MSG_NOSIGNAL keeps a send on a connection the peer reset from raising SIGPIPE where
 * the flag exists (Linux, the BSDs); CPython ignores SIGPIPE at startup anyway, which
 * covers macOS (no MSG_NOSIGNAL before 10.15's SDK headers).
 *
 * WA_HAVE_SEND is 0 where the call does not exist as used here (Windows: winsock's
 * send takes a SOCKET, not an int, and has no MSG_DONTWAIT; any system without
 * MSG_DONTWAIT): wirearray then sends with Python's sendall, as before.
 */
#ifndef WA_SEND_H
#define WA_SEND_H

#include <stddef.h>
#include <errno.h>

#if !defined(_WIN32)
#include <sys/types.h>
#include <sys/socket.h>
#endif

#if !defined(_WIN32) && defined(MSG_DONTWAIT)
#define WA_HAVE_SEND 1
#ifdef MSG_NOSIGNAL
#define WA_SEND_FLAGS (MSG_DONTWAIT | MSG_NOSIGNAL)
#else
#define WA_SEND_FLAGS MSG_DONTWAIT
#endif

/* Bytes sent (0 when the socket could take none now), or -1 with *err set.  EINTR
 * (a signal arrived during the call) is retried: a non-blocking send that was
 * interrupted sent nothing. */
static ptrdiff_t wa_send_nowait(int fd, const void *buf, size_t len, int *err)
{
    for (;;) {
        ssize_t n = send(fd, buf, len, WA_SEND_FLAGS);
        if (n >= 0)
            return (ptrdiff_t)n;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return 0;
        *err = errno;
        return -1;
    }
}

/* The receiving twin, for the same reasons (the GIL is held, so never wait): bytes
 * received, 0 when the peer closed, -1 with *err set -- EAGAIN/EWOULDBLOCK when
 * nothing is readable now, EINTR when a signal arrived (the caller runs Python's
 * signal handlers, which may raise, before it calls again). */
static ptrdiff_t wa_recv_nowait(int fd, void *buf, size_t len, int *err)
{
    ssize_t n = recv(fd, buf, len, MSG_DONTWAIT);
    if (n >= 0)
        return (ptrdiff_t)n;
    *err = errno;
    return -1;
}

#else
#define WA_HAVE_SEND 0
static ptrdiff_t wa_send_nowait(int fd, const void *buf, size_t len, int *err)
{
    (void)fd; (void)buf; (void)len;
    *err = ENOSYS;
    return -1;
}
static ptrdiff_t wa_recv_nowait(int fd, void *buf, size_t len, int *err)
{
    (void)fd; (void)buf; (void)len;
    *err = ENOSYS;
    return -1;
}
#endif

#endif /* WA_SEND_H */
