/*
 * wa_bswap.h -- byte-swap kernels for wirearray's compiled core.
 *
 * What lives here: the loops that reverse the bytes of every 2-, 4- or 8-byte
 * unit of a buffer (contiguous or N-d strided), one portable scalar version and
 * SIMD versions chosen at run time.  Cython (pyx/convert.pxi, pyx/fastpath.pxi)
 * validates every argument first and only then calls in here, usually with the GIL
 * released, so nothing in this file touches a Python object or can fail.
 *
 * Design notes (why it looks like this):
 *  - Wheels may only assume the baseline ISA of their platform (SSE2 on x86-64),
 *    and with SSE2 alone gcc/clang keep 32/64-bit bswap loops scalar.  So the
 *    SSSE3 (pshufb) and AVX2 (vpshufb) kernels are compiled per function with
 *    WA_TARGET(...) and picked at run time from wa_cpu_features() (wa_cpu.h, which
 *    the CRC32C dispatch shares); the rest of the module stays baseline code.
 *    MSVC accepts the intrinsics without any /arch flag, so the same source
 *    builds there with the attribute left empty.
 *  - NEON is baseline on AArch64 (arm64 macOS, Windows ARM64, Linux aarch64),
 *    so it needs no dispatch, only a way to be switched off for tests.
 *  - Every load and store goes through memcpy or an unaligned intrinsic: numpy
 *    arrays may be unaligned (np.frombuffer(b, offset=1)) and a plain
 *    `*(uint32_t *)p` would be undefined behaviour there (and a SIGBUS on some
 *    CPUs).  Compilers turn these memcpy calls into single moves.
 *  - The kernels never ask which byte order the host has: they swap.  Deciding
 *    whether a conversion needs a swap at all (on a big-endian host hton is a
 *    copy) is the caller's job, done once per call in Cython.
 *  - dst == src (in place) is allowed everywhere: each block is loaded before
 *    it is stored.  Partial overlap is not; the caller copies first.
 *  - Non-temporal stores: above a size that cannot stay in the last-level
 *    cache, an out-of-place swap that writes through the cache reads every
 *    destination line first (read-for-ownership) and evicts the source.
 *    Streaming stores skip both.  The threshold is the caller's (it knows the
 *    cache size); below it the ordinary stores win because the result is
 *    usually read again soon.
 */
#ifndef WA_BSWAP_H
#define WA_BSWAP_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "wa_cpu.h"

/* ---- portable scalar bswap ------------------------------------------------ */
#if defined(_MSC_VER) && !defined(__clang__)
#include <stdlib.h>
#define wa_bswap16(x) _byteswap_ushort(x)
#define wa_bswap32(x) _byteswap_ulong(x)
#define wa_bswap64(x) _byteswap_uint64(x)
#elif defined(__GNUC__) || defined(__clang__)
#define wa_bswap16(x) __builtin_bswap16(x)
#define wa_bswap32(x) __builtin_bswap32(x)
#define wa_bswap64(x) __builtin_bswap64(x)
#else
static inline uint16_t wa_bswap16(uint16_t x) { return (uint16_t)((x >> 8) | (x << 8)); }
static inline uint32_t wa_bswap32(uint32_t x) {
    return ((x & 0x000000FFu) << 24) | ((x & 0x0000FF00u) << 8) |
           ((x & 0x00FF0000u) >> 8) | ((x & 0xFF000000u) >> 24);
}
static inline uint64_t wa_bswap64(uint64_t x) {
    return ((uint64_t)wa_bswap32((uint32_t)x) << 32) | wa_bswap32((uint32_t)(x >> 32));
}
#endif

/* ---- SIMD paths --------------------------------------------------------------- */
enum { WA_PATH_SCALAR = 0, WA_PATH_SSSE3 = 1, WA_PATH_AVX2 = 2, WA_PATH_NEON = 3 };

#ifdef WA_X86
#include <immintrin.h>
#elif defined(WA_AARCH64)
#define WA_NEON 1
#include <arm_neon.h>
#endif

/* Bit mask of the paths this CPU (and OS) can run; bit k = path k. */
static inline unsigned wa_paths_available(void) {
    unsigned mask = 1u << WA_PATH_SCALAR, features = wa_cpu_features();
    if (features & WA_CPU_SSSE3) mask |= 1u << WA_PATH_SSSE3;
    if (features & WA_CPU_AVX2) mask |= 1u << WA_PATH_AVX2;
#ifdef WA_NEON
    if (features & WA_CPU_NEON) mask |= 1u << WA_PATH_NEON;
#endif
    return mask;
}

static inline int wa_best_path(unsigned mask) {
    if (mask & (1u << WA_PATH_AVX2)) return WA_PATH_AVX2;
    if (mask & (1u << WA_PATH_NEON)) return WA_PATH_NEON;
    if (mask & (1u << WA_PATH_SSSE3)) return WA_PATH_SSSE3;
    return WA_PATH_SCALAR;
}

/* ---- contiguous kernels ------------------------------------------------------
 * Each swaps n = nbytes / unit consecutive units; nbytes is a multiple of unit.
 */
static void wa_swap_scalar(char *dst, const char *src, size_t nbytes, int unit) {
    size_t i;
    switch (unit) {
    case 2:
        for (i = 0; i + 2 <= nbytes; i += 2) {
            uint16_t v; memcpy(&v, src + i, 2); v = wa_bswap16(v); memcpy(dst + i, &v, 2);
        }
        break;
    case 4:
        for (i = 0; i + 4 <= nbytes; i += 4) {
            uint32_t v; memcpy(&v, src + i, 4); v = wa_bswap32(v); memcpy(dst + i, &v, 4);
        }
        break;
    case 8:
        for (i = 0; i + 8 <= nbytes; i += 8) {
            uint64_t v; memcpy(&v, src + i, 8); v = wa_bswap64(v); memcpy(dst + i, &v, 8);
        }
        break;
    default:
        if (dst != src) memmove(dst, src, nbytes);
    }
}

#ifdef WA_X86
/* pshufb masks: for each byte of a 16-byte lane, the source byte it takes. */
#define WA_MASK16 15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0
static const int8_t wa_shuf2[16] = {1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14};
static const int8_t wa_shuf4[16] = {3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8, 15, 14, 13, 12};
static const int8_t wa_shuf8[16] = {7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8};

static const int8_t *wa_shuf_for(int unit) {
    return unit == 2 ? wa_shuf2 : unit == 4 ? wa_shuf4 : wa_shuf8;
}

WA_TARGET("ssse3")
static void wa_swap_ssse3(char *dst, const char *src, size_t nbytes, int unit, int stream) {
    const __m128i m = _mm_loadu_si128((const __m128i *)wa_shuf_for(unit));
    size_t i = 0;
    if (stream) {
        /* Align the destination to 16 with scalar units first; only possible
         * when the misalignment is a whole number of units. */
        size_t mis = (size_t)((uintptr_t)dst & 15), head = mis ? 16 - mis : 0;
        if (head % (size_t)unit || head > nbytes) stream = 0;
        else if (head) { wa_swap_scalar(dst, src, head, unit); i = head; }
    }
    if (stream) {
        for (; i + 64 <= nbytes; i += 64) {
            __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(src + i + 16));
            __m128i c = _mm_loadu_si128((const __m128i *)(src + i + 32));
            __m128i d = _mm_loadu_si128((const __m128i *)(src + i + 48));
            _mm_stream_si128((__m128i *)(dst + i), _mm_shuffle_epi8(a, m));
            _mm_stream_si128((__m128i *)(dst + i + 16), _mm_shuffle_epi8(b, m));
            _mm_stream_si128((__m128i *)(dst + i + 32), _mm_shuffle_epi8(c, m));
            _mm_stream_si128((__m128i *)(dst + i + 48), _mm_shuffle_epi8(d, m));
        }
        _mm_sfence();
    } else {
        for (; i + 64 <= nbytes; i += 64) {
            __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
            __m128i b = _mm_loadu_si128((const __m128i *)(src + i + 16));
            __m128i c = _mm_loadu_si128((const __m128i *)(src + i + 32));
            __m128i d = _mm_loadu_si128((const __m128i *)(src + i + 48));
            _mm_storeu_si128((__m128i *)(dst + i), _mm_shuffle_epi8(a, m));
            _mm_storeu_si128((__m128i *)(dst + i + 16), _mm_shuffle_epi8(b, m));
            _mm_storeu_si128((__m128i *)(dst + i + 32), _mm_shuffle_epi8(c, m));
            _mm_storeu_si128((__m128i *)(dst + i + 48), _mm_shuffle_epi8(d, m));
        }
    }
    for (; i + 16 <= nbytes; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        _mm_storeu_si128((__m128i *)(dst + i), _mm_shuffle_epi8(a, m));
    }
    wa_swap_scalar(dst + i, src + i, nbytes - i, unit);
}

WA_TARGET("avx2")
static void wa_swap_avx2(char *dst, const char *src, size_t nbytes, int unit, int stream) {
    /* vpshufb shuffles within each 128-bit lane; a unit never crosses a lane,
     * so the same 16-byte mask is used for both lanes. */
    const __m128i m1 = _mm_loadu_si128((const __m128i *)wa_shuf_for(unit));
    const __m256i m = _mm256_broadcastsi128_si256(m1);
    size_t i = 0;
    if (stream) {
        size_t mis = (size_t)((uintptr_t)dst & 31), head = mis ? 32 - mis : 0;
        if (head % (size_t)unit || head > nbytes) stream = 0;
        else if (head) { wa_swap_scalar(dst, src, head, unit); i = head; }
    }
    if (stream) {
        for (; i + 128 <= nbytes; i += 128) {
            __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
            __m256i b = _mm256_loadu_si256((const __m256i *)(src + i + 32));
            __m256i c = _mm256_loadu_si256((const __m256i *)(src + i + 64));
            __m256i d = _mm256_loadu_si256((const __m256i *)(src + i + 96));
            _mm256_stream_si256((__m256i *)(dst + i), _mm256_shuffle_epi8(a, m));
            _mm256_stream_si256((__m256i *)(dst + i + 32), _mm256_shuffle_epi8(b, m));
            _mm256_stream_si256((__m256i *)(dst + i + 64), _mm256_shuffle_epi8(c, m));
            _mm256_stream_si256((__m256i *)(dst + i + 96), _mm256_shuffle_epi8(d, m));
        }
        _mm_sfence();
    } else {
        for (; i + 128 <= nbytes; i += 128) {
            __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
            __m256i b = _mm256_loadu_si256((const __m256i *)(src + i + 32));
            __m256i c = _mm256_loadu_si256((const __m256i *)(src + i + 64));
            __m256i d = _mm256_loadu_si256((const __m256i *)(src + i + 96));
            _mm256_storeu_si256((__m256i *)(dst + i), _mm256_shuffle_epi8(a, m));
            _mm256_storeu_si256((__m256i *)(dst + i + 32), _mm256_shuffle_epi8(b, m));
            _mm256_storeu_si256((__m256i *)(dst + i + 64), _mm256_shuffle_epi8(c, m));
            _mm256_storeu_si256((__m256i *)(dst + i + 96), _mm256_shuffle_epi8(d, m));
        }
    }
    for (; i + 32 <= nbytes; i += 32) {
        __m256i a = _mm256_loadu_si256((const __m256i *)(src + i));
        _mm256_storeu_si256((__m256i *)(dst + i), _mm256_shuffle_epi8(a, m));
    }
    for (; i + 16 <= nbytes; i += 16) {
        __m128i a = _mm_loadu_si128((const __m128i *)(src + i));
        _mm_storeu_si128((__m128i *)(dst + i), _mm_shuffle_epi8(a, m1));
    }
    wa_swap_scalar(dst + i, src + i, nbytes - i, unit);
}
#endif /* WA_X86 */

#ifdef WA_NEON
static void wa_swap_neon(char *dst, const char *src, size_t nbytes, int unit) {
    size_t i = 0;
#define WA_NEON_LOOP(REV)                                                          \
    for (; i + 64 <= nbytes; i += 64) {                                            \
        uint8x16_t a = vld1q_u8((const uint8_t *)src + i);                         \
        uint8x16_t b = vld1q_u8((const uint8_t *)src + i + 16);                    \
        uint8x16_t c = vld1q_u8((const uint8_t *)src + i + 32);                    \
        uint8x16_t d = vld1q_u8((const uint8_t *)src + i + 48);                    \
        vst1q_u8((uint8_t *)dst + i, REV(a));                                      \
        vst1q_u8((uint8_t *)dst + i + 16, REV(b));                                 \
        vst1q_u8((uint8_t *)dst + i + 32, REV(c));                                 \
        vst1q_u8((uint8_t *)dst + i + 48, REV(d));                                 \
    }                                                                              \
    for (; i + 16 <= nbytes; i += 16)                                              \
        vst1q_u8((uint8_t *)dst + i, REV(vld1q_u8((const uint8_t *)src + i)));
    if (unit == 2) { WA_NEON_LOOP(vrev16q_u8) }
    else if (unit == 4) { WA_NEON_LOOP(vrev32q_u8) }
    else { WA_NEON_LOOP(vrev64q_u8) }
#undef WA_NEON_LOOP
    wa_swap_scalar(dst + i, src + i, nbytes - i, unit);
}
#endif

/* Swap (unit 2/4/8) or copy (unit 1) nbytes from src to dst with the given path.
 * A path this build cannot run falls back to scalar (the caller has already
 * refused paths the CPU lacks). */
static void wa_swap_contig(char *dst, const char *src, size_t nbytes, int unit, int path,
                           int stream) {
    if (unit <= 1) {
        if (dst != src) memmove(dst, src, nbytes);
        return;
    }
    if (dst == src) stream = 0; /* in place: the lines are in cache already */
#ifdef WA_X86
    if (path == WA_PATH_AVX2) { wa_swap_avx2(dst, src, nbytes, unit, stream); return; }
    if (path == WA_PATH_SSSE3) { wa_swap_ssse3(dst, src, nbytes, unit, stream); return; }
#endif
#ifdef WA_NEON
    if (path == WA_PATH_NEON) { wa_swap_neon(dst, src, nbytes, unit); return; }
#endif
    (void)stream;
    (void)path;
    wa_swap_scalar(dst, src, nbytes, unit);
}

/* Swap or copy one element of `itemsize` bytes made of itemsize/unit units
 * (complex numbers are two units). */
static inline void wa_swap_item(char *dst, const char *src, int itemsize, int unit) {
    switch (unit) {
    case 2: { uint16_t v; memcpy(&v, src, 2); v = wa_bswap16(v); memcpy(dst, &v, 2); break; }
    case 4: {
        uint32_t v; memcpy(&v, src, 4); v = wa_bswap32(v); memcpy(dst, &v, 4);
        if (itemsize == 8) { memcpy(&v, src + 4, 4); v = wa_bswap32(v); memcpy(dst + 4, &v, 4); }
        break;
    }
    case 8: {
        uint64_t v; memcpy(&v, src, 8); v = wa_bswap64(v); memcpy(dst, &v, 8);
        if (itemsize == 16) { memcpy(&v, src + 8, 8); v = wa_bswap64(v); memcpy(dst + 8, &v, 8); }
        break;
    }
    default: memmove(dst, src, (size_t)itemsize);
    }
}

/* ---- N-d strided driver -------------------------------------------------------
 * Converts every element of an N-d array described by (shape, src strides) into
 * dst (same shape, own strides).  Axes are visited outermost first in the order
 * of decreasing |dst stride| (hton/ntoh allocate dst in "K" order, so that is also
 * the source's memory order; byteswap's dst has numpy's order "A", C for a strided
 * source, which is then read in that order), adjacent axes that are contiguous in
 * both arrays are merged, and a contiguous innermost run goes to the SIMD kernel.  ndim <= 64
 * (numpy's own maximum).  Overlapping src/dst must be identical (in place).
 */
#define WA_MAXDIMS 64
#define WA_STREAM_MIN_RUN ((size_t)64 * 1024)

static inline ptrdiff_t wa_abs(ptrdiff_t x) { return x < 0 ? -x : x; }

static void wa_convert_nd(char *dst, const ptrdiff_t *dst_strides, const char *src,
                          const ptrdiff_t *src_strides, const ptrdiff_t *shape, int ndim,
                          int itemsize, int unit, int path, int stream) {
    ptrdiff_t sh[WA_MAXDIMS], ds[WA_MAXDIMS], ss[WA_MAXDIMS], idx[WA_MAXDIMS];
    int order[WA_MAXDIMS];
    int i, j, n = 0;

    for (i = 0; i < ndim; i++) {
        if (shape[i] == 0) return; /* empty */
    }
    /* Drop length-1 axes, sort the rest by |dst stride|, descending
     * (insertion sort: ndim is tiny). */
    for (i = 0; i < ndim; i++) {
        if (shape[i] == 1) continue;
        order[n++] = i;
    }
    for (i = 1; i < n; i++) {
        int k = order[i];
        for (j = i - 1; j >= 0 && wa_abs(dst_strides[order[j]]) < wa_abs(dst_strides[k]); j--)
            order[j + 1] = order[j];
        order[j + 1] = k;
    }
    /* Merge axis j into its inner neighbour when both arrays step over the
     * inner axis exactly as one longer axis would. */
    {
        int m = 0;
        for (i = 0; i < n; i++) {
            int k = order[i];
            if (m > 0 && ds[m - 1] == shape[k] * dst_strides[k] &&
                ss[m - 1] == shape[k] * src_strides[k]) {
                sh[m - 1] *= shape[k];
                ds[m - 1] = dst_strides[k];
                ss[m - 1] = src_strides[k];
            } else {
                sh[m] = shape[k]; ds[m] = dst_strides[k]; ss[m] = src_strides[k];
                m++;
            }
        }
        n = m;
    }
    if (n == 0) { /* 0-d or all axes of length 1: one element */
        wa_swap_item(dst, src, itemsize, unit);
        return;
    }
    {
        const ptrdiff_t inner = sh[n - 1], dsi = ds[n - 1], ssi = ss[n - 1];
        const int contig = (dsi == itemsize && ssi == itemsize);
        /* Streaming stores pay only on long runs: on short rows they leave partly
         * written lines in the write-combining buffers. */
        if ((size_t)inner * (size_t)itemsize < WA_STREAM_MIN_RUN) stream = 0;
        for (i = 0; i < n; i++) idx[i] = 0;
        for (;;) {
            if (contig) {
                wa_swap_contig(dst, src, (size_t)inner * (size_t)itemsize, unit, path, stream);
            } else {
                char *d = dst;
                const char *s = src;
                ptrdiff_t k;
                for (k = 0; k < inner; k++, d += dsi, s += ssi) wa_swap_item(d, s, itemsize, unit);
            }
            /* advance the outer odometer */
            for (i = n - 2; i >= 0; i--) {
                if (++idx[i] < sh[i]) {
                    dst += ds[i];
                    src += ss[i];
                    break;
                }
                dst -= ds[i] * (sh[i] - 1);
                src -= ss[i] * (sh[i] - 1);
                idx[i] = 0;
            }
            if (i < 0) break;
        }
    }
}

#endif /* WA_BSWAP_H */
