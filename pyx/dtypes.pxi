# dtypes.pxi -- the dtype tables of the compiled module (included by _cwire.pyx).
#
# Two indexes lead to a dtype here:
#   * a numpy type character, the `type` byte of an array's descriptor: item size
#     (0 = not a dtype wirearray converts), swap unit (the size of one number: half
#     the item for complex), the numpy scalar type that makes the dtype builtin, the
#     native and big-endian dtype objects handed to numpy for results, and the wire
#     dtype code (0 = none);
#   * a wire dtype code (wa_format.h's wa_dtypes[]): the native, little- and
#     big-endian dtype objects a decoded array gets.
#
# datetime64 ('M') and timedelta64 ('m') are int64 underneath and share one type
# character across every unit and multiplier, so the character tables give them
# item size, swap unit and scalar type only: _timelike[] marks them, their result
# dtypes are derived from the array's own descriptor (keeping its unit), and their
# wire code (0 in _char_code[]) and count from the unit and multiplier (_format.py's
# dtype_code and dtype_count, on the general path).  Likewise the code tables hold
# None for their codes: a decoded array's dtype needs the frame's multiplier too.
#
# Invariants:
#   * Built once, here, at import, and never written again: every thread may read
#     them without a lock.
#   * In range without bounds checks: a type character is an unsigned char and the
#     character tables have 256 entries; a wire code is looked up only after
#     wa_check_header (or encode_small's own _char_code lookup) has made it a code of
#     section 3, 1 <= code < WA_N_CODES.
#   * An entry is trusted only together with its scalar type: a user-defined dtype
#     may reuse a type character, and callers compare descr.typeobj with _typeobj[].

cdef int _itemsize[256]
cdef int _unit[256]
cdef int _char_code[256]
cdef bint _timelike[256]
cdef list _typeobj = [None] * 256
cdef list _native = [None] * 256
cdef list _big = [None] * 256

cdef list _code_native = [None] * WA_N_CODES
cdef list _code_little = [None] * WA_N_CODES
cdef list _code_big = [None] * WA_N_CODES


cdef _init_dtype_tables():
    cdef int i, c
    for i in range(256):
        _itemsize[i] = 0
        _unit[i] = 0
        _char_code[i] = 0
        _timelike[i] = False
    by_code = {}
    for c in range(1, WA_N_CODES):
        if chr(wa_dtypes[c].typechar) in TIME_CHARS or wa_code_is_record(c):
            continue  # no fixed dtype: the count field (or a descriptor) completes it
        dt = _np.dtype(chr(wa_dtypes[c].typechar))
        by_code[c] = dt
        _code_native[c] = dt
        _code_little[c] = dt.newbyteorder("<")
        _code_big[c] = dt.newbyteorder(">")
    for ch in SUPPORTED_CHARS:
        dt = _np.dtype(ch)
        i = ord(ch)
        _itemsize[i] = dt.itemsize
        _unit[i] = dt.itemsize // 2 if dt.kind == "c" else dt.itemsize
        _typeobj[i] = dt.type
        if ch in TIME_CHARS:
            _timelike[i] = True
            continue  # no fixed result dtypes and no code: see the header
        _native[i] = dt
        _big[i] = dt.newbyteorder(">")
        # 'l' and 'q' (and 'L'/'Q') are one int64 (uint64) on LP64, 'l' is int32 on
        # Windows: the code is the one whose dtype this one equals.
        for c, code_dt in by_code.items():
            if dt == code_dt:
                _char_code[i] = c


_init_dtype_tables()
