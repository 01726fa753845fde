# plans.pxi -- what a conversion needs of a dtype beyond its type character, made once
# per dtype and kept (included by _cwire.pyx, after convert.pxi).
#
#   * datetime64 / timedelta64: the check that the dtype has a unit, and the result
#     dtypes of hton and ntoh, which carry the unit (dtypes.pxi's tables cannot: every
#     unit shares one type character).  Asked for on every call, these cost numpy
#     attribute look-ups and a new dtype each time -- about 1 us, four times an int64
#     conversion of 1,024 elements -- so they are kept in _time_plans.
#   * records (structured, S, U, V): the swap plan of _records.py for each of hton, ntoh
#     and byteswap, compiled by wa_records.h into its SIMD mask tables and portable
#     micro-ops (_RecordKernel), kept in _record_plans with the result dtypes.  A
#     contiguous array (or an out= of the same layout) is then converted by one C
#     call straight into its result; anything else -- strided, a partly overlapping
#     out= -- takes _records.convert, which stages the records through a contiguous
#     buffer and applies the same kernel (_apply_records).
#
# Both caches are dicts keyed by the dtype: numpy keeps a dtype's hash in the dtype,
# so a look-up costs tens of ns, and an equal dtype (the same unit and byte order, the
# same fields at the same offsets) finds the entry of the one first seen.  For time
# dtypes the entry is used as it is (equal dtypes differ at most in their metadata
# dict, which numpy's astype keeps and these results then may not); a record entry
# hands its kernels to an equal dtype, whose result dtypes are made from the dtype
# itself so that field names and titles are its own.
#
# Invariants:
#   * Entries are immutable and never removed: a dict's get and set are atomic on
#     free-threaded CPython as on any other, and an entry, once found, stays valid.
#     Each cache stops growing at _MAX_PLANS entries (a program that makes ever new,
#     unequal dtypes then has their plans made on each call, and nothing worse).
#     Time plans have a table of slots by dtype address in front (below).
#   * A dtype is cached only after check_dtype accepted it: a refused dtype raises
#     the same error on every call.

cdef enum:
    _MAX_PLANS = 1024

cdef dict _time_plans = {}
cdef dict _record_plans = {}
_MODE_NAMES = ("hton", "ntoh", "swap")


# Time plans are asked for on every call, so a direct-mapped table keyed by the
# dtype object's address comes first: a hit is two loads and a comparison.  Each
# slot holds a borrowed pointer to an entry (descr, hton dtype, ntoh dtype) of
# _time_kept, which only grows (to _MAX_PLANS entries) and never lets an entry go: a
# slot read races with a slot write at most as a stale, still valid, entry (one
# aligned pointer: never torn on a supported CPU), and a kept dtype's address is
# never reused by another object.
cdef enum:
    _TIME_SLOTS = 64

cdef PyObject *_time_slots[_TIME_SLOTS]
cdef list _time_kept = []


cdef tuple _time_plan(object descr):
    """(descr, hton result dtype, ntoh result dtype) of a datetime64/timedelta64 dtype;
    UnsupportedDtypeError for one without a unit (or with fields)."""
    cdef size_t slot = (<size_t> <PyObject *> descr >> 4) % _TIME_SLOTS
    cdef PyObject *found = _time_slots[slot]
    cdef tuple entry
    if found is not NULL:
        entry = <tuple> found
        if entry[0] is descr:
            return entry
    plan = _time_plans.get(descr)
    if plan is None:
        check_dtype(descr)  # a unit is required: _common.check_dtype says why
        plan = (descr.newbyteorder(">"), descr.newbyteorder("="))
        if len(_time_plans) < _MAX_PLANS:
            _time_plans[descr] = plan
    entry = (descr, plan[0], plan[1])
    if len(_time_kept) < _MAX_PLANS:
        _time_kept.append(entry)
        _time_slots[slot] = <PyObject *> entry
    return entry


cdef class _RecordKernel:
    """A conversion's ops compiled by wa_rec_compile (owned; freed with the object)."""

    cdef wa_rec_kernel *k

    def __dealloc__(self):
        wa_rec_free(self.k)


cdef _RecordKernel _compile_ops(object ops, Py_ssize_t itemsize):
    """Compile ops ((n, 3) uint32 rows: offset, nbytes, op), checked first: the C
    trusts them.  ValueError for ops that do not tile the record in offset order
    with whole swap units."""
    cdef const uint32_t[:, ::1] o = ops
    cdef Py_ssize_t k, end = 0
    cdef _RecordKernel rk
    if o.shape[1] != 3:
        raise ValueError("record ops: rows of (offset, nbytes, op) expected")
    for k in range(o.shape[0]):
        if (o[k, 2] not in (0, 1, 2, 4, 8) or o[k, 0] != end or
                end + <Py_ssize_t> o[k, 1] > itemsize or (o[k, 2] > 1 and o[k, 1] % o[k, 2])):
            raise ValueError(f"record ops: bad op {tuple(ops[k])} for {itemsize}-byte records")
        end += o[k, 1]
    if end != itemsize:
        raise ValueError(f"record ops cover {end} of {itemsize} bytes")
    rk = _RecordKernel.__new__(_RecordKernel)
    rk.k = wa_rec_compile(<size_t> itemsize,
                          <const wa_plan_op *> &o[0, 0] if o.shape[0] else NULL,
                          <size_t> o.shape[0])
    if rk.k == NULL:
        raise MemoryError("compiling a record swap plan")
    return rk


cdef class _RecordPlan:
    """A record dtype's result dtypes and compiled kernels, by mode (MODE_HTON, ...)."""

    cdef object descr
    cdef tuple outdescrs
    cdef tuple kernels


cdef _RecordPlan _record_plan(object descr):
    cdef object found = _record_plans.get(descr)
    cdef _RecordPlan plan
    if found is not None and (<_RecordPlan> found).descr is descr:
        return <_RecordPlan> found
    check_dtype(descr)  # raises for a field it cannot convert
    plan = _RecordPlan.__new__(_RecordPlan)
    plan.descr = descr
    if found is not None:  # an equal dtype's kernels; this dtype's own result dtypes
        plan.kernels = (<_RecordPlan> found).kernels
        plan.outdescrs = tuple([_records.conversion(descr, m)[0] for m in _MODE_NAMES])
        return plan
    convs = [_records.conversion(descr, m) for m in _MODE_NAMES]
    plan.outdescrs = tuple([c[0] for c in convs])
    plan.kernels = tuple([_compile_ops(c[1], descr.itemsize) for c in convs])
    if len(_record_plans) < _MAX_PLANS:
        _record_plans[descr] = plan
    return plan


cdef inline void _run_records(const wa_rec_kernel *k, char *dst, const char *src,
                              size_t nrec) noexcept:
    cdef size_t nbytes = nrec * k.itemsize
    cdef int path = _path
    cdef int stream = _stream_bytes != 0 and nbytes >= _stream_bytes
    if nbytes < GIL_RELEASE_BYTES:
        wa_rec_apply(k, dst, src, nrec, path, stream)
    else:
        with nogil:
            wa_rec_apply(k, dst, src, nrec, path, stream)


cdef bint _plain_out(wa_PyArrayObject *arr, object out, object outdescr) except -1:
    """Whether ``out`` is a writable base-class ndarray of the result's dtype and
    shape: prepare_out's answer for it is ``out`` itself, so the call is saved."""
    cdef wa_PyArrayObject *o
    if not wa_is_exact_ndarray(out):
        return False
    o = WA_ARR(out)
    return (o.nd == arr.nd and (o.flags & WA_NPY_WRITEABLE) and
            memcmp(o.dimensions, arr.dimensions, arr.nd * sizeof(Py_ssize_t)) == 0 and
            (<object> o.descr is outdescr or <object> o.descr == outdescr))


cdef object _convert_records(object a, object out, int mode):
    """hton / ntoh / byteswap of the record (or S/U/V) ndarray ``a``."""
    cdef wa_PyArrayObject *arr = WA_ARR(a)
    cdef _RecordPlan plan = _record_plan(<object> arr.descr)
    cdef _RecordKernel rk = <_RecordKernel> plan.kernels[mode]
    cdef object outdescr = plan.outdescrs[mode]
    cdef object result
    cdef wa_PyArrayObject *res
    cdef size_t nrec = 1
    cdef Py_ssize_t nbytes
    cdef int i
    for i in range(arr.nd):
        nrec *= <size_t> arr.dimensions[i]
    nbytes = <Py_ssize_t> (nrec * rk.k.itemsize)
    if out is None:
        if arr.flags & (WA_NPY_C_CONTIGUOUS | WA_NPY_F_CONTIGUOUS):
            Py_INCREF(outdescr)  # NewLikeArray steals a reference
            result = wa_PyArray_NewLikeArray(
                a, WA_NPY_ANYORDER if mode == MODE_BYTESWAP else WA_NPY_KEEPORDER, outdescr, 1)
            res = WA_ARR(result)
            # numpy keeps a contiguous input's order: the records lie in the same
            # order in both, so the whole array is one run
            if res.flags & arr.flags & (WA_NPY_C_CONTIGUOUS | WA_NPY_F_CONTIGUOUS):
                _run_records(rk.k, res.data, arr.data, nrec)
                return result
    else:
        if not wa_is_exact_ndarray(a):
            check_out_source(a, out)
        if _plain_out(arr, out, outdescr):  # what prepare_out would return as it is
            result = out
        else:
            result = prepare_out(a, out, outdescr)
        res = WA_ARR(result)
        if (res.flags & arr.flags & (WA_NPY_C_CONTIGUOUS | WA_NPY_F_CONTIGUOUS) and
                (res.data == arr.data or res.data + nbytes <= arr.data or
                 arr.data + nbytes <= res.data)):  # disjoint or in place
            _run_records(rk.k, res.data, arr.data, nrec)
            return result
    return _records.convert(a, _np.asarray(a), out, _MODE_NAMES[mode],
                            "A" if mode == MODE_BYTESWAP else "K", _apply_records)


def _apply_records(src, dst, ops):
    """Apply a record conversion's ops (``_records.plan_ops``) with wa_rec_apply:
    ``src`` and ``dst`` are disjoint (or identical) C-contiguous ``(n, itemsize)``
    uint8 arrays.  ValueError for mismatched shapes and for ops the kernel could not
    apply safely."""
    cdef const unsigned char[:, ::1] s = src
    cdef unsigned char[:, ::1] d = dst
    cdef _RecordKernel rk
    cdef Py_ssize_t n = s.shape[0], itemsize = s.shape[1]
    if d.shape[0] != n or d.shape[1] != itemsize:
        raise ValueError("_apply_records: mismatched shapes")
    rk = _compile_ops(ops, itemsize)
    if n == 0 or itemsize == 0:
        return
    _run_records(rk.k, <char *> &d[0, 0], <const char *> &s[0, 0], <size_t> n)
