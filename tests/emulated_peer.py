"""The far end of the interop tests in test_bigendian_host.py, and their shared cases.

Run by an emulated Python (s390x or aarch64 under qemu-user, set up by
tools/emulated_hosts.py) as ``python emulated_peer.py``: prints one line ``READY
<wirearray.info() as JSON>``, then obeys one JSON command per line of stdin and answers
each with one JSON line on stdout (``{"ok": true, ...}`` or ``{"ok": false, "error":
traceback}``), until stdin closes.  The peer always connects; the host listens:

* ``{"op": "send", "address": "127.0.0.1:PORT", "byteorder": "network"|"native",
  "checksum": bool}`` -- send every item of :func:`cases` in order, then close;
* ``{"op": "recv", "address": ..., "keep_wire_order": bool, "byteorder": the
  sender's mode, "sender": the sender's sys.byteorder}`` -- receive that many items
  and check each one against :func:`cases` with :func:`mismatch`.

The host imports this module for the same cases and checks, so both ends compare
values, not bytes they made themselves.  :func:`cases` does not depend on the CPU:
its bit patterns (NaN payloads, denormals, -0.0 included) come from SHAKE-128 and
are read as little-endian numbers on every host.
"""

from __future__ import annotations

import hashlib
import json
import sys
import traceback

import numpy as np

#: Every dtype wirearray supports (as tests/helpers.py's SUPPORTED), and datetime64 /
#: timedelta64 with units and multipliers (version-3 frames: the count field).
DTYPES = [
    "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
    "datetime64[ns]", "datetime64[10ms]", "timedelta64[3W]",
]  # fmt: skip

#: Dtypes that also travel as one large array: above the decoder's direct-receive
#: threshold (64 KiB, so recv_into lands in the array) and, from 4-byte items on,
#: above the encoder's 256 KiB staging buffer (converted in several chunks).
LARGE = ("uint8", "float16", "int32", "float64", "complex128", "datetime64[ns]")
LARGE_ITEMS = 70_001

WAIT = 120.0  # seconds any one socket operation may take under emulation


def _bits(name: str, dtype: str, shape: tuple[int, ...]) -> np.ndarray:
    dt = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    raw = np.frombuffer(hashlib.shake_128(name.encode()).digest(n * dt.itemsize), np.uint8)
    if dt.kind == "b":
        return (raw & 1).astype(dt).reshape(shape)
    return raw.view(dt.newbyteorder("<")).astype(dt).reshape(shape)


def cases() -> list[tuple[str, object]]:
    """(name, ndarray or {name: ndarray} message) in the order they travel."""
    out: list[tuple[str, object]] = []
    for dt in DTYPES:
        out.append((f"{dt}/0d", _bits(f"{dt}/0d", dt, ())))
        out.append((f"{dt}/empty", _bits(f"{dt}/empty", dt, (0, 3))))
        out.append((f"{dt}/c", _bits(f"{dt}/c", dt, (3, 5))))
        out.append((f"{dt}/fortran", np.asfortranarray(_bits(f"{dt}/fortran", dt, (4, 6)))))
        out.append((f"{dt}/strided", _bits(f"{dt}/strided", dt, (40,))[::-3]))
        # the same values labelled with the other byte order ('>i4' on a little-endian
        # host, '<i4' on a big-endian one)
        a = _bits(f"{dt}/swapped", dt, (9,))
        out.append((f"{dt}/swapped", a.astype(a.dtype.newbyteorder("S"))))
        if dt in LARGE:
            out.append((f"{dt}/large", _bits(f"{dt}/large", dt, (LARGE_ITEMS,))))
    out.append(("message", {dt: _bits(f"message/{dt}", dt, (2, 3)) for dt in DTYPES}))
    return out


def _canonical(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()


def _order_char(dt: np.dtype, host: str) -> str:
    """'<', '>' or '|' (one-byte items): how ``dt`` lays out memory on ``host``."""
    if dt.itemsize == 1:
        return "|"
    if dt.byteorder == "=":
        return "<" if host == "little" else ">"
    return dt.byteorder


def mismatch(
    got: object, want: object, *, keep_wire_order: bool, byteorder: str, sender: str
) -> str | None:
    """None when ``got`` (received) carries ``want``'s values bit for bit, with the
    dtype byte order the receiver should see; else what differs.

    ``byteorder`` is the sender's mode ("network" or "native") and ``sender`` its
    sys.byteorder: in native mode an array travels in its memory's order, which for
    a non-native label is not the sender's.
    """
    if isinstance(want, dict):
        if not isinstance(got, dict) or sorted(got) != sorted(want):
            return f"message keys {sorted(got) if isinstance(got, dict) else type(got)}"
        for k in want:
            why = mismatch(
                got[k], want[k], keep_wire_order=keep_wire_order, byteorder=byteorder,
                sender=sender,
            )  # fmt: skip
            if why:
                return f"[{k}] {why}"
        return None
    assert isinstance(want, np.ndarray)
    if not isinstance(got, np.ndarray):
        return f"got {type(got).__name__}, not an ndarray"
    if got.shape != want.shape:
        return f"shape {got.shape} != {want.shape}"
    if got.dtype.newbyteorder("=") != want.dtype.newbyteorder("="):
        return f"dtype {got.dtype} != {want.dtype}"
    if keep_wire_order:
        # cases() are native on both hosts but for the "swapped" ones, which are in
        # the other order on both
        ours = "<" if sender == "little" else ">"
        theirs = ">" if ours == "<" else "<"
        wire = ">" if byteorder == "network" else ours if want.dtype.isnative else theirs
        if want.dtype.itemsize == 1:
            wire = "|"
        if _order_char(got.dtype, sys.byteorder) != wire:
            return f"dtype {got.dtype.str}: expected the wire's order {wire!r}"
    elif not got.dtype.isnative:
        return f"dtype {got.dtype.str} is not native"
    if _canonical(got) != _canonical(want):
        g = np.ascontiguousarray(got).reshape(-1).view(np.uint8)
        w = np.ascontiguousarray(want.astype(got.dtype)).reshape(-1).view(np.uint8)
        first = int(np.flatnonzero(g != w)[0]) if g.size == w.size else -1
        return f"values differ ({got.dtype.str}, first differing byte {first})"
    return None


# ---- the peer process ----


def _send(cmd: dict) -> dict:
    import wirearray

    with wirearray.connect(
        cmd["address"], byteorder=cmd["byteorder"], checksum=cmd["checksum"], timeout=WAIT
    ) as ch:
        for _, item in cases():
            if isinstance(item, dict):
                ch.send_many(item)
            else:
                ch.send(item)
    return {"ok": True, "sent": len(cases())}


def _recv(cmd: dict) -> dict:
    import wirearray

    errors = []
    with wirearray.connect(
        cmd["address"], keep_wire_order=cmd["keep_wire_order"], timeout=WAIT
    ) as ch:
        expected = cases()
        for name, want in expected:
            got = ch.recv_many() if isinstance(want, dict) else ch.recv()
            why = mismatch(
                got, want, keep_wire_order=cmd["keep_wire_order"], byteorder=cmd["byteorder"],
                sender=cmd["sender"],
            )  # fmt: skip
            if why:
                errors.append(f"{name}: {why}")
        extra = list(ch)  # nothing more, then the sender's end-of-stream
    if extra:
        errors.append(f"{len(extra)} unexpected items after the cases")
    return {"ok": not errors, "received": len(expected), "errors": errors}


def main() -> None:
    import wirearray

    print("READY", json.dumps(wirearray.info()), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            cmd = json.loads(line)
            result = {"send": _send, "recv": _recv}[cmd["op"]](cmd)
        except Exception:
            result = {"ok": False, "error": traceback.format_exc()}
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
