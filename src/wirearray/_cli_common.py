"""What the command line's modules share: exit codes and the usage error, sizes as
printed, the arrays ``send`` reads (``.npy``: one array; ``.npz``: one message of named
arrays) and the files ``serve --out`` writes (the same two kinds), and the progress
bar -- over TCP and ``--zmq`` alike.

Files are recognised by their first bytes, not their names, and everything is checked
before connecting: a file that is neither kind, an object (pickled) array -- refused
as numpy's ``allow_pickle=False`` refuses it --, a dtype the wire format does not
carry, a .npz member that is not .npy or whose name is not 1 to 255 bytes, a .npz
file of more arrays than a receiver accepts in a message by default, and a
``--random`` shape whose size (computed exactly, in Python integers) exceeds what a
receiver accepts by default are usage errors (exit code 2), reported before anything
is allocated."""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from numpy.lib import format as npformat

from ._format import MAX_NAME, MAX_NDIM, check_wire_dtype
from ._sizes import DEFAULT_MAX_FRAME_BYTES, DEFAULT_MAX_MESSAGE_ARRAYS
from .exceptions import UnsupportedDtypeError

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2
MB = 1e6


class CliUsageError(Exception):
    """Bad arguments found after parsing (exit code 2)."""


def counted(n: int, noun: str) -> str:
    """``"1 message"``, ``"3 messages"``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _fmt_bytes(n: float) -> str:
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def fmt_rate(nbytes: float, seconds: float) -> str:
    """A transfer rate for people: MB/s (10^6 bytes), kB/s below 0.1 MB/s, B/s below
    0.1 kB/s, so that a few small arrays do not read as "0.0 MB/s"."""
    rate = nbytes / max(seconds, 1e-9)
    if rate >= 0.1 * MB or rate == 0:
        return f"{rate / MB:.1f} MB/s"
    if rate >= 100:
        return f"{rate / 1e3:.1f} kB/s"
    return f"{rate:.1f} B/s"  # a server that waited for its few arrays


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:64]


#: what ``send`` and ``serve --out`` handle: one array per .npy file; a .npz file is
#: one message of named arrays (``send_many``), so its names travel with it
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members; an empty zip

#: what ``send`` reads: (label, one array or {name: array} for a .npz message)
Item = tuple[str, Any]


def item_bytes(item: Any) -> int:
    """Payload bytes of one item of :func:`_load_arrays` (an array or a message)."""
    if isinstance(item, dict):
        return sum(int(a.nbytes) for a in item.values())
    return int(item.nbytes)


def _sendable(dtype: np.dtype, where: str) -> None:
    """Refuse, before connecting, a dtype the wire format does not carry."""
    if dtype.hasobject:
        raise CliUsageError(
            f"{where}: object arrays cannot be sent (Python objects need pickle; save "
            "the data as numbers, S/U strings or records of these)"
        )
    # the wire format's own word (records: within its descriptor limits)
    try:
        check_wire_dtype(dtype)
    except UnsupportedDtypeError as exc:
        # the refusal says why, and lists what travels when the dtype is not one of them
        raise CliUsageError(f"{where}: dtype {dtype} cannot be sent: {exc}") from None


def _random_arrays(args: argparse.Namespace) -> list[Item]:
    """``--random DTYPE SHAPE``: the shape checked against the format's and the
    receiver's default limits before anything is allocated (or connected)."""
    dtype_s, shape_s = args.random
    try:
        dtype = np.dtype(dtype_s)
    except TypeError:
        raise CliUsageError(f"unknown dtype {dtype_s!r}") from None
    if dtype.kind not in "fciubmM":
        raise CliUsageError(
            f"dtype {dtype} is not one wirearray sends as --random (bool, integers, floats, "
            "complex, datetime64/timedelta64 with a unit); send strings and records from "
            "a .npy file"
        )
    _sendable(dtype, "--random")
    try:
        shape = tuple(int(x) for x in shape_s.replace("x", ",").split(",") if x.strip())
    except ValueError:
        raise CliUsageError(f"bad shape {shape_s!r} (write e.g. 1000,3 or 1000x3)") from None
    if any(n < 0 for n in shape):
        raise CliUsageError(f"bad shape {shape_s!r}: dimensions cannot be negative")
    if len(shape) > MAX_NDIM:
        raise CliUsageError(
            f"shape {shape_s!r} has {len(shape)} dimensions; the format carries {MAX_NDIM}"
        )
    nbytes = math.prod(shape) * dtype.itemsize  # exact: Python integers
    limit = getattr(args, "max_frame_bytes", None) or DEFAULT_MAX_FRAME_BYTES
    if nbytes > limit:
        raise CliUsageError(
            f"--random {dtype} {shape_s} is {_fmt_bytes(nbytes)}, over the "
            f"{_fmt_bytes(limit)} a receiver accepts by default (serve --max-frame-bytes)"
        )
    if args.count < 1:
        raise CliUsageError(f"--count {args.count}: give 1 or more")
    rng = np.random.default_rng(0)
    try:
        if dtype.kind == "f":
            a = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "c":
            a = (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dtype)
        elif dtype.kind in "mM":
            # around 2000-01-01 +- 30 years, whatever the unit, and NaT first
            secs = rng.integers(
                946_684_800 - 30 * 31_557_600, 946_684_800 + 30 * 31_557_600, size=shape
            )
            a = secs.astype("M8[s]" if dtype.kind == "M" else "m8[s]").astype(dtype)
            if a.size:
                a.flat[0] = np.datetime64("NaT") if dtype.kind == "M" else np.timedelta64("NaT")
        else:
            a = rng.integers(0, 100, size=shape).astype(dtype)
    except MemoryError:
        raise MemoryError(f"not enough memory for a {_fmt_bytes(nbytes)} array") from None
    except ValueError as exc:  # e.g. more dimensions than this numpy supports
        raise CliUsageError(f"--random {dtype} {shape_s}: {exc}") from None
    # the same array each time: --count costs no more memory than one
    return [(f"random {dtype}{list(shape)} #{i + 1}", a) for i in range(args.count)]


def _read_npy(name: str) -> np.ndarray:
    try:
        with open(name, "rb") as f:
            version = npformat.read_magic(f)
            if version == (1, 0):
                _shape, _order, dtype = npformat.read_array_header_1_0(f)
            else:
                _shape, _order, dtype = npformat.read_array_header_2_0(f)
    except ValueError as exc:
        raise CliUsageError(f"{name}: a damaged .npy header ({exc})") from None
    _sendable(dtype, name)
    try:
        return np.load(name, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise CliUsageError(f"{name}: cannot read the .npy file ({exc})") from None


def _read_npz(name: str) -> dict[str, np.ndarray]:
    try:
        npz = np.load(name, allow_pickle=False)
    except (ValueError, zipfile.BadZipFile) as exc:
        raise CliUsageError(f"{name}: not a readable .npz file ({exc})") from None
    with npz:
        if len(npz.files) > DEFAULT_MAX_MESSAGE_ARRAYS:
            raise CliUsageError(
                f"{name}: {len(npz.files)} arrays in one message, over the "
                f"{DEFAULT_MAX_MESSAGE_ARRAYS} arrays a receiver accepts by default"
            )
        arrays: dict[str, np.ndarray] = {}
        for key in npz.files:
            if not 0 < len(key.encode("utf-8", "surrogatepass")) <= MAX_NAME:
                raise CliUsageError(
                    f"{name}: member {key!r}: array names are 1 to {MAX_NAME} bytes of UTF-8"
                )
            try:
                arrays[key] = npz[key]
            except ValueError as exc:
                if "allow_pickle" in str(exc):
                    raise CliUsageError(
                        f"{name}: {key!r} holds objects; object arrays cannot be sent"
                    ) from None
                raise CliUsageError(f"{name}: cannot read {key!r} ({exc})") from None
            except (OSError, zipfile.BadZipFile) as exc:
                raise CliUsageError(f"{name}: cannot read {key!r} ({exc})") from None
            if not isinstance(arrays[key], np.ndarray):  # numpy.load gives other members as bytes
                raise CliUsageError(f"{name}: {key!r} is not a .npy member")
            _sendable(arrays[key].dtype, f"{name}: {key!r}")
    if not arrays:
        raise CliUsageError(f"{name}: the .npz file holds no arrays")
    return arrays


def _load_arrays(args: argparse.Namespace) -> list[Item]:
    """(label, array or {name: array}) pairs, validated before connecting: each .npy
    file is an array, each .npz file one message of its named arrays."""
    if args.random:
        if args.files:
            raise CliUsageError("give FILE arguments or --random, not both")
        return _random_arrays(args)
    if not args.files:
        raise CliUsageError(
            "nothing to send: give FILE.npy / FILE.npz arguments or --random DTYPE SHAPE"
        )
    items: list[Item] = []
    for name in args.files:
        try:
            with open(name, "rb") as f:
                magic = f.read(6)
        except OSError as exc:
            raise CliUsageError(f"cannot read {name}: {exc.strerror}") from None
        if magic.startswith(NPY_MAGIC):
            items.append((name, _read_npy(name)))
        elif magic.startswith(ZIP_MAGIC):
            if getattr(args, "format", "wire") == "npy":
                raise CliUsageError(
                    f"{name}: a .npz file goes as one message of named arrays, which "
                    "--format npy cannot carry (use the default --format wire)"
                )
            items.append((name, _read_npz(name)))
        else:
            raise CliUsageError(f"{name}: not a .npy/.npz file")
    return items


class OutputError(Exception):
    """``serve --out``: a received message could not be written (exit code 1)."""


def prepare_out_dir(option: str | None) -> Path | None:
    """``serve --out DIR``: the directory, created if needed, checked writable before
    serving (CliUsageError, exit code 2, otherwise)."""
    if not option:
        return None
    out_dir = Path(option)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise CliUsageError(f"--out {option}: not a directory") from None
    except OSError as exc:
        raise CliUsageError(
            f"--out {option}: cannot create the output directory: {exc.strerror}"
        ) from None
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise CliUsageError(f"--out {option}: the output directory is not writable")
    return out_dir


class UnkeepableNamesError(Exception):
    """A received message whose array names no ``.npz`` can keep apart: the peer's
    doing, so ``serve`` refuses that message and its connection, and goes on."""


def _check_npz_names(names: list[str]) -> None:
    """Refuse (UnkeepableNamesError) names that ``numpy.load`` could not give back each to its
    own array: a zip member name ends at NUL (zipfile cuts it there), and numpy.load
    looks a key up as a member name first, so ``"a.npy"`` beside ``"a"`` (member
    ``a.npy``) would read the array of ``"a"``.  Other names -- path-like, non-ASCII --
    are member names verbatim, as numpy.savez writes them."""
    given = set(names)
    for name in names:
        if "\0" in name:
            raise UnkeepableNamesError(f"array name {name!r} holds NUL, which a .npz cannot keep")
        if name.endswith(".npy") and name[:-4] in given:
            raise UnkeepableNamesError(
                f"array names {name[:-4]!r} and {name!r} cannot both be kept in a .npz "
                f"(numpy.load would give {name!r} the array of {name[:-4]!r})"
            )


def _write_npz(path: Path, arrays: dict[Any, np.ndarray]) -> None:
    """What ``numpy.savez`` writes -- a zip of NAME.npy members -- without its keyword
    arguments, so that no array name (``file``, ``allow_pickle``) can collide with them."""
    _check_npz_names([str(name) for name in arrays])
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, a in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as f:
                npformat.write_array(f, np.asanyarray(a), allow_pickle=False)


def save_received(out_dir: Path, index: int, arrays: dict[Any, np.ndarray], message: bool) -> None:
    """Write one received message under ``out_dir``, readable by ``numpy.load``: a
    message of named arrays as ``NNNNNN.npz`` (its names as the keys), a single array
    as ``NNNNNN[-name].npy``.  ``index`` numbers the message's first array.

    Raises:
        OutputError: the file could not be written.
        UnkeepableNamesError: names no .npz keeps apart (nothing is written).
    """
    if message:
        path = out_dir / f"{index:06d}.npz"
        write: Any = functools.partial(_write_npz, path, arrays)
    else:
        ((name, a),) = arrays.items()
        path = out_dir / (f"{index:06d}" + (f"-{_safe(name)}" if name else "") + ".npy")
        write = functools.partial(np.save, path, a)
    try:
        write()
    except OSError as exc:
        raise OutputError(f"--out: cannot write {path}: {exc.strerror or exc}") from None


class _Progress:
    """A one-line progress bar on stderr, drawn only on a terminal (or when forced)."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.done, self.enabled = max(total, 1), 0, enabled
        self.start = time.perf_counter()
        self.last = 0.0

    def update(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if self.enabled and (now - self.last > 0.1 or self.done >= self.total):
            self.last = now
            frac = min(self.done / self.total, 1.0)
            rate = self.done / max(now - self.start, 1e-9) / MB
            bar = "#" * int(frac * 30)
            sys.stderr.write(f"\r[{bar:<30}] {frac:6.1%} {_fmt_bytes(self.done)} {rate:8.1f} MB/s")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")
