# simd.pxi -- which kernel path the byte swaps take, and from what size out-of-place
# swaps use streaming stores (included by _cwire.pyx).
#
# The path (scalar / SSSE3 / AVX2 / NEON) is chosen once at import from what the CPU
# can run (wa_cpu.h, through wa_bswap.h's wa_paths_available), WIREARRAY_SIMD forces
# one, and set_simd() switches it for tests and benchmarks.
#
# Invariants:
#   * _path and _stream_bytes are the module's only mutable state.  They are written
#     only by set_simd() / _set_stream_bytes() and at import, and each call reads them
#     once and passes the values down, so a call racing with a switch runs wholly on
#     the old or the new setting (every path gives the same bytes).
#   * _path is always a path in _paths_mask: set_simd() refuses any other.

_PATH_NAMES = {WA_PATH_SCALAR: "scalar", WA_PATH_SSSE3: "ssse3", WA_PATH_AVX2: "avx2",
               WA_PATH_NEON: "neon"}
cdef unsigned _paths_mask = wa_paths_available()
cdef int _path = wa_best_path(_paths_mask)
# Out-of-place swaps at least this large use non-temporal stores (see wa_bswap.h).
cdef size_t _stream_bytes = 0


def simd_paths():
    """Names of the kernel paths this CPU and build can run, best last."""
    order = (WA_PATH_SCALAR, WA_PATH_SSSE3, WA_PATH_NEON, WA_PATH_AVX2)
    return tuple(_PATH_NAMES[p] for p in order if _paths_mask & (1u << p))


def get_simd():
    """Name of the kernel path in use: "scalar", "ssse3", "avx2" or "neon"."""
    return _PATH_NAMES[_path]


def set_simd(name):
    """Select the kernel path by name ("auto" picks the best the CPU has).

    A process-wide setting meant for tests and benchmarks; returns the path chosen.

    Raises:
        ValueError: the name is unknown or the CPU/build cannot run that path.
    """
    global _path
    if name == "auto":
        _path = wa_best_path(_paths_mask)
        return get_simd()
    for p, n in _PATH_NAMES.items():
        if n == name and _paths_mask & (1u << p):
            _path = p
            return n
    raise ValueError(f"unknown or unavailable SIMD path {name!r}; available: {simd_paths()}")


def _get_stream_bytes():
    """Size from which out-of-place swaps use non-temporal stores (0 = never)."""
    return _stream_bytes


def _set_stream_bytes(size_t nbytes):
    """Set that size (0 disables streaming stores); for tests and benchmarks."""
    global _stream_bytes
    _stream_bytes = nbytes


def _default_stream_bytes():
    # A swap that does not fit the last-level cache with its source gains from
    # streaming stores.  Linux/glibc tell the L3 size; elsewhere assume 32 MiB.
    llc = 0
    for name in ("SC_LEVEL3_CACHE_SIZE", "SC_LEVEL2_CACHE_SIZE"):
        try:
            llc = os.sysconf(name)
        except (ValueError, OSError, AttributeError):
            llc = 0
        if llc > 0:
            break
    if llc <= 0:
        llc = 32 << 20
    return max(llc, 4 << 20)


_stream_bytes = _default_stream_bytes()

_env_simd = os.environ.get("WIREARRAY_SIMD", "").strip().lower()
if _env_simd:
    # An impossible request fails loudly (ValueError, not ImportError, so that it is
    # not mistaken for a missing extension and silently replaced by the fallback).
    set_simd(_env_simd)
