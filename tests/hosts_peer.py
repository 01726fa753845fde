"""The two ends of a two-host test, run in a network namespace by tests/hosts.py.

    python hosts_peer.py serve ADDRESS SPEC    listen, print the address, receive
    python hosts_peer.py send ADDRESS SPEC     connect and send

SPEC is JSON: ``nbytes`` (the whole stream), ``frames`` (it is sent as that many equal
arrays of ``dtype``), ``seed`` (the bytes are ``numpy.random.default_rng(seed).bytes``),
``byteorder``, ``checksum``, ``timeout`` (seconds, for every wirearray call) and ``echo``
(the server sends each array back, the sender receives it).

The receiving ends take every array into one preallocated buffer (``recv(out=)``), hash
what they received, then expect the sender's end of stream.  Each end prints one JSON
line: ``{"ok": true, "sha256": ..., "seconds": ...}``, or on a wirearray or OS error
``{"ok": false, "error": <class name>, "message": ..., "after": <what a further recv
raised>}`` -- the test decides which outcomes are acceptable.  Anything else is a
traceback and a non-zero exit.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time

import numpy as np

import wirearray


def _arrays(spec: dict) -> tuple[np.dtype, tuple[int, ...]]:
    dtype = np.dtype(spec["dtype"])
    per_frame = spec["nbytes"] // spec["frames"]
    return dtype, (per_frame // dtype.itemsize // 1024, 1024)


def source(spec: dict) -> list[np.ndarray]:
    dtype, shape = _arrays(spec)
    data = np.random.default_rng(spec["seed"]).bytes(spec["nbytes"])
    whole = np.frombuffer(data, dtype=dtype)
    n = whole.size // spec["frames"]
    return [whole[i * n : (i + 1) * n].reshape(shape) for i in range(spec["frames"])]


def report(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


def receive_stream(ch: wirearray.Channel, spec: dict, echo: bool) -> str:
    """Receive ``frames`` arrays into one buffer (echoing each if asked), then the end
    of stream; returns the SHA-256 of the native-order bytes received."""
    dtype, shape = _arrays(spec)
    out = np.empty(shape, dtype)
    digest = hashlib.sha256()
    for _ in range(spec["frames"]):
        a = ch.recv(out=out)
        if a.shape != shape or a.dtype.newbyteorder("=") != dtype.newbyteorder("="):
            raise AssertionError(f"received {a.dtype}{a.shape}, expected {dtype}{shape}")
        digest.update(memoryview(np.ascontiguousarray(a, dtype=dtype)).cast("B"))
        if echo:
            ch.send(a)
    return digest.hexdigest()


def serve(address: str, spec: dict) -> None:
    with wirearray.listen(address, timeout=spec["timeout"]) as listener:
        host, port = listener.address[:2]
        print(f"[{host}]:{port}" if ":" in host else f"{host}:{port}", flush=True)
        ch = listener.accept(timeout=spec["timeout"])
    with ch:
        t0 = time.monotonic()

        def stream() -> str:
            return receive_stream(ch, spec, spec.get("echo", False))

        guarded(ch, stream, ch.recv, t0, end=True)


def send(address: str, spec: dict) -> None:
    arrays = source(spec)
    t0 = time.monotonic()
    ch = wirearray.connect(
        address,
        timeout=spec["timeout"],
        byteorder=spec["byteorder"],
        checksum=spec["checksum"],
    )

    def stream() -> str:
        dtype, shape = _arrays(spec)
        out = np.empty(shape, dtype)
        digest = hashlib.sha256()
        for a in arrays:
            ch.send(a)
            if spec.get("echo"):
                b = ch.recv(out=out)
                digest.update(memoryview(np.ascontiguousarray(b, dtype=dtype)).cast("B"))
        return digest.hexdigest() if spec.get("echo") else ""

    with ch:
        guarded(ch, stream, lambda: ch.send(arrays[0]), t0, end=False)


def guarded(ch: wirearray.Channel, body, again, t0: float, *, end: bool) -> None:
    """Run ``body``; report its result, or the error and what ``again`` (the same
    operation once more) raises then."""
    try:
        digest = body()
        if end:  # nothing may follow the arrays but the peer's end of stream
            try:
                extra = ch.recv()
            except wirearray.EndOfStreamError:
                pass
            else:
                raise AssertionError(f"unexpected extra array {extra.dtype}{extra.shape}")
    except (OSError, wirearray.WireError) as exc:
        # OSError covers TimeoutError and ConnectionError; TruncatedStreamError is a
        # WireError.  Then: a further use of the channel must refuse, not misread.
        try:
            again()
            after = "succeeded"
        except Exception as exc2:
            after = type(exc2).__name__
        report(
            ok=False,
            error=type(exc).__name__,
            message=str(exc),
            after=after,
            seconds=time.monotonic() - t0,
        )
        return
    report(ok=True, sha256=digest, seconds=time.monotonic() - t0)


def main() -> None:
    role, address, spec = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    {"serve": serve, "send": send}[role](address, spec)


if __name__ == "__main__":
    main()
