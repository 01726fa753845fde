"""Records and strings in the byte-order functions: structured dtypes (nested structures
and subarray fields included, numpy's offsets, padding and itemsize), and plain ``S``,
``U`` and ``V`` arrays.

A record dtype is turned once into a **swap plan**: the record's bytes as runs, each a
field's (or a subarray's) numbers of one size -- copied (``unit`` 1: bool, int8,
``S``, ``V``), or swapped in units of 2, 4 or 8 bytes (numbers, datetimes; ``U`` in
4-byte code units; complex as two halves) -- in the byte order its field has in
memory.  Bytes that belong to no field (padding, ``align=True`` gaps) are in no run:
every result has them zero, so an array made with ``np.empty`` never passes on what
its memory held there.

For one conversion the plan becomes ops (:func:`plan_ops`, :func:`conversion`) that
tile each record: zero (padding), copy, or swap in units of 2, 4 or 8 bytes.  The
fallback applies them with numpy over the records' bytes (``(n, itemsize)`` uint8
matrices: per op one strided copy, reversed in its units where it swaps), staged
through one C-ordered buffer and copied into the result (or ``out=``) as raw items,
whatever its layout (:func:`convert`).  The compiled core compiles the ops once per
dtype (pyx/plans.pxi, pyx/wa_records.h: SIMD shuffle masks and a portable loop) and
converts a contiguous array straight into its result; other layouts go through
:func:`convert` with that kernel.  numpy's own ``astype``/``byteswap`` give the same
field bytes (the tests hold both to them), but copy padding as it is.

Refused (``UnsupportedDtypeError``): fields that hold Python objects, extended
precision floats, datetime64/timedelta64 without a unit (as for plain arrays), and
fields that overlap (numpy allows them; a byte in two fields could not be swapped
once for each), and unions -- a number dtype with fields, ``np.dtype((np.int64,
fields))`` -- whose value numpy's byteswap converts as the number and its astype as
the fields, so that no one result would match numpy.  A dtype whose plan would
unroll into more than ``MAX_RUNS`` runs (a subarray of many mixed-order records) is
refused too, before the work it would cost; a subarray of records that are one run
(one byte order, no padding) is one run however long.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .exceptions import UnsupportedDtypeError

#: numbers a field may hold, by type character: the swap unit (0: as numpy's own
#: itemsize; complex: half of it)
_NUMBER_CHARS = "?bBhHiIlLqQefdFDMm"

#: the most runs a record dtype may unroll into before merging: a subarray of records
#: repeats its base's runs once per element, and the plan (made in Python, applied op
#: by op) grows with them -- ``[("x", "u1"), ("y", ">i4")]`` times 10**8 would be
#: minutes and tens of GB before any conversion, so such a dtype is refused instead
MAX_RUNS = 1 << 16


@dataclass(frozen=True)
class Run:
    """``nbytes`` bytes at ``offset`` in each record: numbers of ``unit`` bytes (1: copied
    as they are), stored big-endian in memory when ``big``."""

    offset: int
    unit: int
    nbytes: int
    big: bool


@dataclass(frozen=True)
class SwapPlan:
    """How to convert one record: its runs in offset order, and the bytes in none."""

    itemsize: int
    runs: tuple[Run, ...]
    padding: tuple[tuple[int, int], ...]  # (offset, nbytes) of every gap


def is_record(dt: np.dtype) -> bool:
    """Whether ``dt`` is converted through a swap plan: structured, or S/U/V."""
    return dt.fields is not None or dt.char in "SUV"


def _refuse(dt: np.dtype, why: str) -> UnsupportedDtypeError:
    return UnsupportedDtypeError(f"wirearray does not convert dtype {dt!r}: {why}")


def _mem_big(dt: np.dtype) -> bool:
    import sys

    return dt.byteorder == ">" or (dt.byteorder == "=" and sys.byteorder == "big")


def _walk(top: np.dtype, dt: np.dtype, offset: int, out: list[Run]) -> None:
    """Append the runs of a value of ``dt`` at ``offset``."""
    if dt.subdtype is not None:  # a subarray field: its base, count times
        base, shape = dt.subdtype
        count = int(np.prod(shape, dtype=np.int64))
        if base.fields is None and base.char not in "V":
            for run in _leaf(top, base, offset):
                out.append(Run(run.offset, run.unit, run.nbytes * count, run.big))
            return
        one = swap_plan(base)  # raises for a field it cannot convert
        if not base.itemsize:  # zero-size records: nothing to convert, however many
            return
        if not one.padding and len(one.runs) == 1:  # records that are one run: one run
            run = one.runs[0]
            out.append(Run(offset, run.unit, run.nbytes * count, run.big))
            return
        if len(out) + count * (len(one.runs) + len(one.padding)) > MAX_RUNS:
            raise _refuse(top, f"a subarray of {count} records is over {MAX_RUNS} runs")
        for k in range(count):
            _walk(top, base, offset + k * base.itemsize, out)
        return
    if dt.fields is not None:
        if not issubclass(dt.type, np.void):
            # a union (np.dtype((np.int64, fields))): numpy's byteswap converts the
            # base scalar, its astype the fields -- no one answer, so none is given
            raise _refuse(top, f"a union of {dt.type.__name__} and fields")
        for name in dt.names or ():
            field = dt.fields[name]
            _walk(top, field[0], offset + field[1], out)
        if len(out) > MAX_RUNS:
            raise _refuse(top, f"over {MAX_RUNS} runs")
        return
    out.extend(_leaf(top, dt, offset))


def _leaf(top: np.dtype, dt: np.dtype, offset: int) -> list[Run]:
    ch = dt.char
    if dt.hasobject or ch == "O":
        raise _refuse(top, "a field holds Python objects")
    if ch in "SV":  # bytes: never swapped
        return [Run(offset, 1, dt.itemsize, False)] if dt.itemsize else []
    if ch == "U":  # UCS4 code units
        return [Run(offset, 4, dt.itemsize, _mem_big(dt))] if dt.itemsize else []
    if ch not in _NUMBER_CHARS or dt.type is not np.dtype(ch).type:
        raise _refuse(top, f"a field of dtype {dt} (extended precision or user-defined)")
    if ch in "Mm" and np.datetime_data(dt)[0] == "generic":
        raise _refuse(top, "a datetime64/timedelta64 field without a unit")
    unit = dt.itemsize // 2 if dt.kind == "c" else dt.itemsize
    return [Run(offset, unit, dt.itemsize, unit > 1 and _mem_big(dt))]


@lru_cache(maxsize=256)
def swap_plan(dt: np.dtype) -> SwapPlan:
    """The swap plan of a record dtype (see the module header), made once per dtype.

    Raises:
        UnsupportedDtypeError: a field wirearray does not convert, or overlapping fields.
    """
    runs: list[Run] = []
    _walk(dt, dt, 0, runs)
    runs.sort(key=lambda r: r.offset)
    merged: list[Run] = []
    end = 0
    padding = []
    for r in runs:
        if r.offset < end:
            raise _refuse(dt, f"fields overlap at byte {r.offset}")
        if r.offset > end:
            padding.append((end, r.offset - end))
        last = merged[-1] if merged else None
        if (
            last is not None
            and last.offset + last.nbytes == r.offset
            and (last.unit, last.big) == (r.unit, r.big)
        ):
            merged[-1] = Run(last.offset, last.unit, last.nbytes + r.nbytes, last.big)
        else:
            merged.append(r)
        end = r.offset + r.nbytes
    if end > dt.itemsize:  # numpy does not build such dtypes; kept as a guard
        raise _refuse(dt, "a field ends past the item size")
    if end < dt.itemsize:
        padding.append((end, dt.itemsize - end))
    return SwapPlan(dt.itemsize, tuple(merged), tuple(padding))


def plan_ops(plan: SwapPlan, swap_of) -> np.ndarray:
    """The ops of one conversion, in offset order: rows ``(offset, nbytes, op)`` with op
    0 (zero), 1 (copy) or 2/4/8 (swap in units of that size); ``swap_of(run)`` says
    whether a run is swapped."""
    rows = [(off, size, 0) for off, size in plan.padding]
    rows += [(r.offset, r.nbytes, r.unit if r.unit > 1 and swap_of(r) else 1) for r in plan.runs]
    rows.sort()
    return np.array(rows, dtype=np.uint32).reshape(-1, 3)


def apply_numpy(src: np.ndarray, dst: np.ndarray, ops: np.ndarray) -> None:
    """Apply ``ops`` to records: ``src`` and ``dst`` are ``(n, itemsize)`` uint8
    matrices (C order, disjoint)."""
    n = src.shape[0]
    for off, size, op in ops.tolist():
        if op == 0:
            dst[:, off : off + size] = 0
            continue
        block = src[:, off : off + size]
        if op > 1:
            block = block.reshape(n, size // op, op)[:, :, ::-1].reshape(n, size)
        dst[:, off : off + size] = block


def conversion(dt: np.dtype, mode: str) -> tuple[np.dtype, np.ndarray]:
    """The result dtype and the ops (:func:`plan_ops`) of hton ("hton"), ntoh ("ntoh")
    or byteswap ("swap") of records of ``dt``.

    Raises:
        UnsupportedDtypeError: as :func:`swap_plan`.
    """
    from ._common import HOST_IS_LITTLE

    plan = swap_plan(dt)
    if mode == "hton":
        return dt.newbyteorder(">"), plan_ops(plan, lambda r: not r.big)
    if mode == "ntoh":
        return dt.newbyteorder("="), plan_ops(plan, lambda r: HOST_IS_LITTLE)
    return dt, plan_ops(plan, lambda r: True)


def convert(
    a: np.ndarray, arr: np.ndarray, out, mode: str, order: str, kernel=apply_numpy
) -> np.ndarray:
    """hton ("hton"), ntoh ("ntoh") or byteswap ("swap") of the record array ``arr``
    (``a``: the caller's object, whose class the result keeps), into ``out`` or a new
    array allocated in ``order`` as numpy's astype ("K") or byteswap ("A") would;
    ``kernel(src, dst, ops)`` applies the ops (:func:`apply_numpy`, or the compiled
    core's)."""
    from ._common import check_out_source, prepare_out

    dt = arr.dtype
    out_dt, ops = conversion(dt, mode)
    src = np.ascontiguousarray(arr)
    tmp = np.empty(arr.shape, dtype=out_dt)
    if arr.size and dt.itemsize:
        kernel(
            src.reshape(-1).view(np.uint8).reshape(-1, dt.itemsize),
            tmp.reshape(-1).view(np.uint8).reshape(-1, dt.itemsize),
            ops,
        )
    if out is None:
        # numpy's allocation (astype's "K", byteswap's "A"; the class of ``a``)
        result = np.empty_like(a, dtype=out_dt, order=order, subok=True)  # type: ignore[call-overload]
    else:
        if a is not arr:
            check_out_source(a, out)
        result = prepare_out(arr, out, out_dt)
    # one copy of whole items as raw bytes: numpy copies a structured dtype field by
    # field even into its own kind, which would leave the destination's padding as it was
    raw = np.dtype((np.void, dt.itemsize))
    np.asarray(result).view(raw)[...] = tmp.view(raw)
    return result
