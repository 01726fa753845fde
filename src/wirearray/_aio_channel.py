"""The asyncio channel: AsyncChannel, the sibling of transport.Channel over the same
sans-I/O core (``_connection``); see aio.py's header for the layer as a whole."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from . import codec as _codec
from ._aio_stream import SocketStream, with_timeout
from ._bulk import recv_payload
from ._channel_helpers import (
    CONTROL_TIMEOUT,
    DEFAULT_CLOSE_TIMEOUT,
    DEFAULT_SEND_BUFFER,
    array_of,
    item_of,
    message_of,
    views,
)
from ._common import array_to_send, byte_view
from ._connection import Connection
from ._sizes import SMALL_FRAME_BYTES
from ._sockets import small_holder, small_receiving, small_sender, tune, writable_now
from .codec import NEED_DATA, Array, Message
from .exceptions import (
    EndOfStreamError,
    ErrorCode,
    PeerError,
    StreamBrokenError,
    WireError,
)

if TYPE_CHECKING:
    from ._types import Buffers, ByteOrder, Format, MessageOut, SchemaLike, SchemaSpec

__all__ = ["AsyncChannel"]


class _CountingLock(asyncio.Lock):
    """The send lock, counting the tasks that hold it or wait for it (``users``).

    The per-message send path frames and sends without the lock when nobody uses it:
    no frame can be numbered before its own, since every other send numbers its
    frames under the lock.  If the socket takes only part of the frame, the rest goes
    under the lock, which has no user and no waiter then, so it is acquired without
    yielding to another task.
    """

    def __init__(self) -> None:
        super().__init__()
        self.users = 0

    async def acquire(self) -> Literal[True]:
        self.users += 1
        try:
            return await super().acquire()
        except BaseException:
            self.users -= 1
            raise

    def release(self) -> None:
        super().release()
        self.users -= 1


class AsyncChannel:
    """One connection carrying arrays both ways, for asyncio.

    Same options and semantics as :class:`wirearray.Channel` (``close_timeout``
    included); the send and receive methods are coroutines and ``async for`` iterates
    until the peer ends the stream.
    """

    def __init__(
        self,
        sock: socket.socket,
        *,
        byteorder: ByteOrder = "network",
        checksum: bool = False,
        timeout: float | None = None,
        max_frame_bytes: int = _codec.DEFAULT_MAX_FRAME_BYTES,
        max_ndim: int = _codec.DEFAULT_MAX_NDIM,
        max_message_arrays: int = _codec.DEFAULT_MAX_MESSAGE_ARRAYS,
        keep_wire_order: bool = False,
        format: Format = "wire",
        send_buffer: int = DEFAULT_SEND_BUFFER,
        close_timeout: float | None = None,
        _stream: SocketStream | None = None,
    ):
        self._core = Connection(
            format=format,
            byteorder=byteorder,
            checksum=checksum,
            max_frame_bytes=max_frame_bytes,
            max_ndim=max_ndim,
            max_message_arrays=max_message_arrays,
            keep_wire_order=keep_wire_order,
            send_buffer=send_buffer,
            close_timeout=close_timeout,
        )
        self.sock = sock
        sock.setblocking(False)
        tune(sock)
        self._stream = _stream if _stream is not None else SocketStream(sock)
        self._on_close: Callable[[], None] | None = None
        self.timeout = timeout
        self._send_lock = _CountingLock()
        # the per-message send path (_sockets.small_sender), on plain socket streams only
        self._plain = type(self._stream) is SocketStream  # not TLS: the socket's bytes are frames
        self._send_small = small_sender(sock, self._core.enc) if self._plain else None
        # ... and the receive path's refill of the read-ahead, which never waits
        self._recv_fd = self._plain and small_receiving(sock, self._core.dec)
        self._hold_small = small_holder(self._core.enc)
        self._want_big = 1 if self._core.enc.byteorder == "network" else -1
        self._recv_lock = asyncio.Lock()
        self._io_tasks: set[asyncio.Task[Any]] = set()  # tasks inside a send or receive
        self._cancelled: set[asyncio.Task[Any]] = set()  # ... that close() cancelled
        # the verdict of a close() in progress, for a close() of another task meanwhile
        self._close_verdict: asyncio.Future[BaseException | None] | None = None

    async def __aenter__(self) -> AsyncChannel:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            await self.close()
        else:  # an incomplete stream: say so rather than end it as if it were whole
            await self.abort(f"the application failed ({exc_type.__name__})")

    @property
    def format(self) -> str:
        """ "wire" or "npy"."""
        return self._core.format

    @property
    def pending_bytes(self) -> int:
        """Bytes held by ``send(..., flush=False)`` and not sent yet."""
        return len(self._core.held)

    @property
    def closed(self) -> bool:
        return self._core.closed

    def fileno(self) -> int:
        return self.sock.fileno()

    # ---- I/O bookkeeping: close() never leaves a task hanging on a closed socket ----

    @contextlib.contextmanager
    def _io(self) -> Iterator[None]:
        task = asyncio.current_task()
        if task is not None:
            self._io_tasks.add(task)
        try:
            yield
        except asyncio.CancelledError:
            if task is not None and task in self._cancelled:
                self._cancelled.discard(task)
                if sys.version_info >= (3, 11):
                    task.uncancel()
                raise StreamBrokenError("the channel was closed during the call") from None
            raise
        finally:
            if task is not None:
                self._io_tasks.discard(task)

    # ---- sending ----

    async def send(
        self,
        array: npt.ArrayLike,
        *,
        byteorder: ByteOrder | None = None,
        checksum: bool | None = None,
        flush: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Send one array (see Channel.send, ``flush=False`` and ``progress`` included)."""
        core = self._core
        small = self._send_small
        if (
            small is not None
            and flush
            and byteorder is None
            and checksum is None
            and progress is None
            and not core.send_blocked
            and not core.held
            and not self._send_lock.users
        ):  # no other send numbered or waiting: one compiled call frames and sends
            if self.timeout == 0 and not writable_now(self.sock):
                # a poll sends only when the socket reports room, as on the Python path
                # (a frame that then starts leaving but does not fit breaks the side)
                array_to_send(array)  # a misuse is reported as such, even now
                raise _full()
            enc = core.enc
            seq = enc._seq
            try:
                # the descriptor asked for each time: a socket closed behind the
                # channel's back says -1 (EBADF), never a number reused since
                fd = self.sock.fileno()
                r = small(fd, array, self._want_big, enc.checksum, seq, SMALL_FRAME_BYTES)
            except OSError as exc:  # the socket failed: the frame was numbered, as sent
                enc._seq = (seq + 1) & 0xFFFFFFFF
                core.data_sent += 1
                core.send_failed(exc)
                raise self._peer_report(exc) from exc
            if r is not None:
                if r:  # the socket took part of the frame, or none of it, now
                    rest, sent = r
                    if not sent and self.timeout == 0:
                        raise _full()  # a poll, nothing sent: nothing numbered
                    enc._seq = (seq + 1) & 0xFFFFFFFF
                    core.data_sent += 1
                    with self._io():
                        # the lock has no user: it is taken without a wait, before any
                        # other send can number a frame, so the rest leaves first
                        async with self._send_lock:
                            await self._transmit(rest, None, None)
                    return
                enc._seq = (seq + 1) & 0xFFFFFFFF
                core.data_sent += 1
                return
        if core.send_blocked:
            core.check_send()
        if self.timeout == 0 and not writable_now(self.sock):
            array_to_send(array)  # a misuse is reported as such, even now
            raise _full()
        hold = self._hold_small
        if not flush and hold is not None and byteorder is None and checksum is None:
            if not core.send_blocked and self.timeout != 0:  # one compiled call, no I/O
                enc = core.enc
                seq = enc._seq
                n = hold(core.held, array, self._want_big, enc.checksum, seq, SMALL_FRAME_BYTES)
                if n >= 0:
                    enc._seq = (seq + 1) & 0xFFFFFFFF
                    core.data_sent += 1
                    if n >= core.send_buffer:
                        await self.flush()
                    return
        if not flush and core.hold(array, byteorder, checksum):  # no I/O: no lock needed
            if len(core.held) >= core.send_buffer:
                await self.flush()
            return
        with self._io():
            async with self._send_lock:  # frames are numbered and sent in one order
                core.check_send()
                data, frames = core.prepare_array(array, byteorder, checksum, True)
                await self._transmit(data, frames, progress)

    async def send_many(
        self,
        arrays: Mapping[str, npt.ArrayLike],
        *,
        byteorder: ByteOrder | None = None,
        checksum: bool | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> None:
        """Send named arrays as one message (see Channel.send_many)."""
        core = self._core
        core.check_send()
        if self.timeout == 0 and not writable_now(self.sock):
            raise _full()
        with self._io():
            async with self._send_lock:
                core.check_send()
                data, frames = core.prepare_message(arrays, byteorder, checksum)
                await self._transmit(data, frames, progress)

    async def flush(self) -> None:
        """Send the frames that ``send(..., flush=False)`` holds (see Channel.flush)."""
        core = self._core
        if not core.held or core.closed:
            return
        core.check_send()
        if self.timeout == 0 and not writable_now(self.sock):
            raise _full()  # the frames stay held
        with self._io():
            async with self._send_lock:
                data = core.take_held()
                if data is not None:
                    await self._transmit(data, None, None)

    async def _transmit(
        self,
        data: bytes | bytearray | None,
        frames: Iterator[Buffers] | None,
        progress: Callable[[int], None] | None,
    ) -> None:
        """Under the send lock: send ``data`` then ``frames``, within the timeout."""
        try:
            await with_timeout(self._send_all(data, frames, progress), self.timeout)
        except BaseException as exc:
            self._core.send_failed(exc)
            if isinstance(exc, OSError) and not isinstance(exc, TimeoutError):
                raise self._peer_report(exc) from exc
            raise

    async def _send_all(
        self,
        data: bytes | bytearray | None,
        frames: Iterator[Buffers] | None,
        progress: Callable[[int], None] | None,
    ) -> None:
        stream = self._stream
        if progress is None:
            if data is not None:
                await stream.sendall(data)
            for parts in frames or ():
                await stream.send_views(views(parts))
            return
        step = 4 << 20
        for buf in ([data] if data is not None else []) + [p for ps in frames or () for p in ps]:
            mv = byte_view(buf)
            for k in range(0, len(mv), step):
                await stream.sendall(mv[k : k + step])
                progress(len(mv[k : k + step]))

    def _peer_report(self, exc: BaseException) -> BaseException:
        """A send failed with ``exc``: what to raise instead -- the peer's report
        (PeerError) or its close (what it received), read from what it left."""
        self._read_report()
        err = self._core.failed_send_error(exc)
        return exc if err is exc else err

    def _read_report(self) -> None:
        """Read, without waiting, what the peer left before its connection went."""
        if not self._recv_lock.locked():  # else a receiving task reads it itself
            self._core.read_report(self._stream.recv_now)

    async def _send_control(self, data: bytes | None) -> None:
        """Hand the peer a control frame (ACK, ERROR), after any send in progress, without
        waiting long for it."""
        if not data:
            return

        async def locked() -> None:
            async with self._send_lock:
                await self._stream.sendall(data)

        try:
            await with_timeout(locked(), CONTROL_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            self._core.control_failed(exc)

    # ---- receiving ----

    async def recv(
        self, out: np.ndarray | None = None, *, schema: SchemaLike | None = None
    ) -> np.ndarray:
        """Receive one array: arguments, result and errors as :meth:`wirearray.Channel.recv`.

        A small frame already received, or readable now, is taken in one compiled call
        without a trip through the event loop, while no other task receives; the rest
        of a frame is awaited (``loop.sock_recv_into``, a large payload received in
        place as it becomes readable).
        """
        core = self._core
        if core.held:
            await self.flush()
        if schema is None:
            # whole frames already received, or readable now (one recv(2) that does not
            # wait, while no other task receives): no await
            fd = self.sock.fileno() if self._recv_fd and not self._recv_lock.locked() else -1
            try:
                a = core.fast_recv(out, fd)
            except BaseException as exc:  # its read failed: as a failed recv_into below
                await self._refused(core.recv_failed(exc))
                raise
            if a is not None:
                return a
            dec = core.dec
            if self._plain and core.receivable and dec.idle and not self._recv_lock.locked():
                # nothing buffered: one read that does not wait (the socket is
                # non-blocking), then the fast path again -- no trip through the event
                # loop when the next frame is already there
                try:
                    n = self.sock.recv_into(dec.get_buffer())
                except (BlockingIOError, InterruptedError):
                    pass  # nothing there yet: wait for it below
                except BaseException as exc:
                    await self._refused(core.recv_failed(exc))
                    raise
                else:
                    dec.advance(n)
                    a = core.fast_recv(out)
                    if a is not None:
                        return a
        return array_of(await self._recv_event(out, schema))

    async def recv_many(
        self,
        out: Mapping[str, np.ndarray] | None = None,
        *,
        schema: Mapping[str, SchemaLike] | None = None,
    ) -> dict[str, np.ndarray]:
        """Receive one message (see Channel.recv_many)."""
        self._core.check_messages()
        return message_of(await self._recv_event(out, schema))

    async def recv_event(
        self, out: np.ndarray | MessageOut | None = None, *, schema: SchemaSpec = None
    ) -> Array | Message:
        """Receive the next array or message as a codec event (see Channel.recv_event)."""
        return await self._recv_event(out, schema)

    def __aiter__(self) -> AsyncIterator[np.ndarray | dict[str, np.ndarray]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[np.ndarray | dict[str, np.ndarray]]:
        while True:
            try:
                ev = await self._recv_event(None, None)
            except EndOfStreamError:
                return
            yield item_of(ev)

    async def _recv_event(
        self, out: np.ndarray | MessageOut | None, schema: SchemaSpec
    ) -> Array | Message:
        core = self._core
        if core.held:
            await self.flush()  # a peer may wait for what is held before it answers
        with self._io():
            async with self._recv_lock:
                earlier = core.start_recv(out, schema)
                if earlier is not None:
                    return earlier
                try:
                    return await with_timeout(self._recv_loop(), self.timeout)
                except (EndOfStreamError, PeerError):
                    raise
                except (TimeoutError, asyncio.CancelledError) as exc:
                    if self.timeout == 0 and isinstance(exc, TimeoutError):
                        # a poll: it read what had arrived and would now wait; the read
                        # it was waiting in took nothing, so the decoder holds the rest
                        core.poll_missed(out, schema)
                        raise TimeoutError("no whole frame has arrived yet (timeout=0)") from None
                    await self._refused(core.recv_failed(exc, interrupted=True))
                    if isinstance(exc, TimeoutError) and core.rx_error is None:
                        raise TimeoutError("timed out waiting for the next frame") from None
                    raise
                except BaseException as exc:
                    await self._refused(core.recv_failed(exc))
                    raise

    async def _refused(self, report: bytes | None) -> None:
        """This side refused the stream: tell the peer why, then end the connection at
        once (see Channel._refused)."""
        if report is not None:
            await self._send_control(report)
            self._finish()

    async def _recv_loop(self) -> Array | Message:
        core, stream = self._core, self._stream
        dec = core.dec
        plain = type(stream) is SocketStream  # not TLS: its socket's bytes are not the wire's
        # a poll (timeout=0) on a plain socket reads only what is there and never awaits
        # a read: a read that completes as the poll's deadline cancels the task would
        # leave its bytes in the buffer unreported, and the frame corrupt
        poll = plain and self.timeout == 0
        while True:
            ev = dec.next_event()
            if ev is NEED_DATA:
                # a large payload: what is readable now received, swapped and
                # checksummed in C (_bulk.py); the event loop waits for the rest
                if plain:
                    try:
                        if recv_payload(stream.sock, dec, 0):
                            continue
                        if poll:
                            dec.advance(stream.recv_now(dec.get_buffer()))
                            continue
                    except BlockingIOError:
                        if poll:  # nothing more now: the decoder keeps the partial frame
                            raise TimeoutError("no whole frame has arrived yet") from None
                dec.advance(await stream.recv_into(dec.get_buffer()))
                continue
            result, reply = core.handle(ev)
            if reply is not None:
                await self._send_control(reply)
            if isinstance(result, (Array, Message)):
                return result
            if isinstance(result, BaseException):
                raise result
            if core.closing:  # CONSUMED: an event the application does not see
                raise StreamBrokenError("the channel was closed during the call")

    # ---- closing ----

    async def close(self, timeout: float | None = None) -> None:
        """End the stream, wait until the peer confirms it received every frame, and
        close the socket (see Channel.close for ``timeout`` and what it raises).  A
        close() while another task's close() waits gets that close's verdict."""
        core = self._core
        verdict = self._close_verdict
        if verdict is not None and not verdict.done():
            first: BaseException | None = await asyncio.shield(verdict)
            if first is not None:
                raise first
            return
        if core.closed or core.closing:
            return
        if timeout is None:
            timeout = core.close_timeout
        if timeout is None:
            # a polling channel (timeout=0) still waits: a confirmation is a round trip
            timeout = self.timeout if self.timeout else DEFAULT_CLOSE_TIMEOUT
        verdict = self._close_verdict = asyncio.get_running_loop().create_future()
        timed_out = interrupted = False
        err: BaseException | None = None
        try:
            try:
                with self._io():  # an abort() meanwhile ends the wait at once
                    await with_timeout(self._closing(timeout > 0), timeout or CONTROL_TIMEOUT)
            except TimeoutError:
                timed_out = True
            except StreamBrokenError:
                interrupted = True
        finally:
            self._finish()
            if timeout > 0:
                err = core.close_result(timeout, timed_out=timed_out, interrupted=interrupted)
            verdict.set_result(err)
        if err is not None:
            raise err

    async def _closing(self, wait: bool) -> None:
        core = self._core
        async with self._send_lock:  # after a send in progress, if any
            data = core.begin_close()
            if data is not None:
                try:
                    await self._stream.sendall(data)
                except OSError as exc:
                    core.send_failed(exc)
                    self._read_report()
        if core.half_close_on_close:
            self._stream.shutdown_write()
        if not wait or not core.close_pending:
            return
        async with self._recv_lock:  # a receiving task may have read the answer already
            dec = core.dec
            try:
                while core.close_pending:
                    ev = core.next_closing_event()
                    if ev is NEED_DATA:
                        n = await self._stream.recv_into(dec.get_buffer())
                        if not n:
                            core.close_failed(None)
                            return
                        dec.advance(n)
                        continue
                    await self._send_control(core.handle(ev)[1])
            except (OSError, WireError) as exc:
                core.close_failed(exc)

    async def abort(self, reason: str = "aborted", *, code: int = ErrorCode.APPLICATION) -> None:
        """End the channel at once with an error (see Channel.abort)."""
        core = self._core
        if core.closed:
            return
        try:
            data = core.abort_frame(code, reason)
            if data is not None:
                with contextlib.suppress(OSError, TimeoutError):
                    await with_timeout(self._stream.sendall(data), CONTROL_TIMEOUT)
        finally:
            self._finish()

    def _finish(self) -> None:
        if self._core.closed:
            return
        self._core.finish()
        current = asyncio.current_task()
        for task in list(self._io_tasks):  # a send or receive waiting on this socket
            if task is not current and not task.done():
                self._cancelled.add(task)
                task.cancel()
        self.sock.close()
        if self._on_close is not None:
            on_close, self._on_close = self._on_close, None
            on_close()


def _full() -> TimeoutError:
    return TimeoutError("the socket cannot take more now (timeout=0); nothing was sent")
