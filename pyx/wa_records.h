/*
 * wa_records.h -- record (structured dtype) conversions: a swap plan compiled once
 * into loops that run at memory speed.
 *
 * What comes in: a record dtype's plan for one conversion (src/wirearray/_records.py,
 * plan_ops) as `nops` ops that tile each record's `itemsize` bytes in offset order:
 * bytes [offset, offset + nbytes) are zeroed (op 0: no field there, so nothing of the
 * source's memory leaks through padding), copied (op 1), or swapped in units of op =
 * 2, 4 or 8 bytes (nbytes a multiple of op).  The Cython caller (pyx/plans.pxi)
 * checks all of that before wa_rec_compile sees them.
 *
 * What wa_rec_compile makes of them (once per dtype and conversion; the caller keeps
 * the result), and why:
 *  - Adjacent ops of the same kind are merged.  A record that is then one op (a
 *    string array, a record of float32 only, any record that is copied as it is on a
 *    big-endian host) is converted as a flat buffer by wa_swap_contig: the SIMD
 *    kernels of wa_bswap.h, or one memcpy.
 *  - The portable loop (every host; the only one on big-endian and other CPUs) runs
 *    the plan column by column over blocks of records that fit in L1: one "micro-op"
 *    per unit (a 2/4/8-byte swap, a 1/2/4/8-byte copy or zero, unrolled at compile
 *    time into fixed-size loads and stores), or per long run (wa_swap_contig on that
 *    run, SIMD where the CPU has it).  Each micro-op is one tight loop over the block
 *    with a fixed stride, so the op's kind is decided once per block rather than once
 *    per field of every record.
 *  - The SIMD loop (SSSE3 pshufb / AVX2 vpshufb on x86, chosen at run time as in
 *    wa_bswap.h; NEON tbl on AArch64): a record of S bytes is a byte permutation
 *    (with zeros) that repeats every T = lcm(S, 32) bytes, so T bytes of shuffle masks
 *    (T <= WA_REC_MAX_PERIOD) convert any number of records in 16- or 32-byte chunks.
 *    No swap unit is longer than 8 bytes, so each destination byte of a chunk at p
 *    comes from [p - 7, p + 23): two overlapping loads, [p - 8, p + 8) and
 *    [p + 8, p + 24), shuffled and OR-ed (pshufb zeroes a lane whose mask byte has
 *    bit 7 set; tbl one whose index is out of range), so a unit that straddles a
 *    16-byte lane is no obstacle and every record size takes this path.  When no
 *    unit straddles a lane (sizes dividing 16, most aligned records), one load and
 *    one shuffle per chunk do ("local" masks).
 *  - In place (dst == src): each chunk's source is loaded before the chunk before it
 *    is stored (the second load of one chunk is the first of the next), so nothing is
 *    read after being overwritten; the SIMD part then ends on a record boundary (a
 *    multiple of T) and the portable loop converts the records after it.  Out of
 *    place, records at either end that the chunks cover partly are converted whole by
 *    the portable loop as well: both write the same bytes.
 *  - Streaming stores, above the caller's threshold and out of place only, as in
 *    wa_bswap.h: the chunks start where the destination is aligned.
 *
 * Every load and store is unaligned-safe (memcpy or loadu/storeu): numpy records are
 * often at odd addresses.  Nothing here touches a Python object or fails once
 * compiled; wa_rec_compile returns NULL only when out of memory.
 */
#ifndef WA_RECORDS_H
#define WA_RECORDS_H

#include <stdlib.h>

#include "wa_bswap.h"

typedef struct {
    uint32_t offset, nbytes, op;
} wa_plan_op;

/* Kinds of micro-op of the portable loop. */
enum {
    WA_MU_S2, WA_MU_S4, WA_MU_S8,            /* one unit swapped */
    WA_MU_C1, WA_MU_C2, WA_MU_C4, WA_MU_C8,  /* that many bytes copied */
    WA_MU_Z1, WA_MU_Z2, WA_MU_Z4, WA_MU_Z8,  /* that many bytes zeroed */
    WA_MU_RUN,                               /* len bytes swapped in units of `unit`
                                                (1: copied) by wa_swap_contig */
    WA_MU_ZERON                              /* len bytes zeroed */
};

typedef struct {
    uint32_t offset, len;
    unsigned char kind, unit;
} wa_rec_micro;

/* Beyond this period the mask tables (3 x T bytes) stop paying; such records (odd
 * sizes over 512 bytes) take the portable loop, whose long runs are SIMD anyway. */
#define WA_REC_MAX_PERIOD ((size_t)16384)
/* A run of more than this many bytes is one WA_MU_RUN rather than unrolled units. */
#define WA_REC_UNROLL_BYTES 32u
/* Bytes of records the portable loop converts per block (source and destination
 * stay in a 32 KiB L1 data cache). */
#define WA_REC_BLOCK_BYTES ((size_t)8192)

typedef struct {
    size_t itemsize;
    int whole;           /* the op covering the whole record after merging, or -1 */
    size_t block;        /* records per block of the portable loop */
    size_t nmicro;
    wa_rec_micro *micro; /* the portable loop's micro-ops */
    size_t period;       /* T, bytes (a multiple of 32); 0: no SIMD tables */
    int local;           /* every destination byte's source is in its own 16-byte chunk */
    /* Mask tables, T + 32 bytes each (the last 32 repeat the first, so a 32-byte
     * load at any multiple of 16 below T stays inside), for byte q of a period:
     *   loc: source byte within q's own chunk (local kernels), 0x80 for zero;
     *   lo/hi (x86): within [c - 8, c + 8) / [c + 8, c + 24) for the chunk c holding q;
     *   tbl (NEON): within [c - 8, c + 24), as tbl's index into two registers. */
    unsigned char *loc, *lo, *hi, *tbl;
} wa_rec_kernel;

static void wa_rec_free(wa_rec_kernel *k) {
    if (k == NULL) return;
    free(k->micro);
    free(k->loc); /* lo, hi and tbl live in the same block */
    free(k);
}

static inline size_t wa_gcd(size_t a, size_t b) {
    while (b) { size_t t = a % b; a = b; b = t; }
    return a;
}

/* Append micro-ops for `len` bytes at `off` of kind op (0 zero, 1 copy, 2/4/8 swap). */
static size_t wa_rec_emit(wa_rec_micro *mu, size_t n, uint32_t off, uint32_t len, uint32_t op) {
    if (len > WA_REC_UNROLL_BYTES) {
        mu[n].offset = off; mu[n].len = len;
        mu[n].kind = op == 0 ? WA_MU_ZERON : WA_MU_RUN;
        mu[n].unit = (unsigned char)(op == 0 ? 1 : op);
        return n + 1;
    }
    while (len) {
        unsigned char kind;
        uint32_t step;
        if (op >= 2) {
            step = op;
            kind = op == 2 ? WA_MU_S2 : op == 4 ? WA_MU_S4 : WA_MU_S8;
        } else {
            step = len >= 8 ? 8 : len >= 4 ? 4 : len >= 2 ? 2 : 1;
            if (op == 1) kind = step == 8 ? WA_MU_C8 : step == 4 ? WA_MU_C4 : step == 2 ? WA_MU_C2 : WA_MU_C1;
            else kind = step == 8 ? WA_MU_Z8 : step == 4 ? WA_MU_Z4 : step == 2 ? WA_MU_Z2 : WA_MU_Z1;
        }
        mu[n].offset = off; mu[n].len = step; mu[n].kind = kind; mu[n].unit = (unsigned char)op;
        n++;
        off += step;
        len -= step;
    }
    return n;
}

/* The SIMD mask tables of k (k->itemsize and its merged ops known); 0 on success. */
static int wa_rec_tables(wa_rec_kernel *k, const wa_plan_op *ops, size_t nops) {
#if defined(WA_X86) || defined(WA_NEON)
    const size_t S = k->itemsize;
    size_t T, q, j, len;
    int32_t *from;
    unsigned char *block;
    T = S / wa_gcd(S, 32) * 32;
    if (T > WA_REC_MAX_PERIOD) return 0; /* no tables: portable loop */
    from = (int32_t *)malloc(S * sizeof(int32_t));
    if (from == NULL) return -1;
    /* from[b]: the byte of the source record that byte b of the result takes, -1: 0 */
    for (j = 0; j < nops; j++) {
        size_t b, off = ops[j].offset, u = ops[j].op;
        for (b = off; b < off + ops[j].nbytes; b++) {
            if (u == 0) from[b] = -1;
            else if (u == 1) from[b] = (int32_t)b;
            else from[b] = (int32_t)(off + (b - off) / u * u + (u - 1 - (b - off) % u));
        }
    }
    len = T + 32;
    block = (unsigned char *)malloc(4 * len);
    if (block == NULL) { free(from); return -1; }
    k->loc = block; k->lo = block + len; k->hi = block + 2 * len; k->tbl = block + 3 * len;
    k->local = 1;
    for (q = 0; q < len; q++) {
        size_t b = q % T % S;
        long rel;
        if (from[b] < 0) {
            k->loc[q] = k->lo[q] = k->hi[q] = k->tbl[q] = 0x80;
            continue;
        }
        /* the source byte's position in the window [c - 8, c + 24) of q's chunk c */
        rel = (long)(q - b) + from[b] - (long)(q & ~(size_t)15) + 8;
        k->tbl[q] = (unsigned char)rel;
        k->lo[q] = rel < 16 ? (unsigned char)rel : 0x80;
        k->hi[q] = rel >= 16 ? (unsigned char)(rel - 16) : 0x80;
        if (rel >= 8 && rel < 24) k->loc[q] = (unsigned char)(rel - 8);
        else { k->loc[q] = 0x80; k->local = 0; }
    }
    free(from);
    k->period = T;
    return 0;
#else
    (void)k; (void)ops; (void)nops;
    return 0;
#endif
}

/* Compile a conversion's ops (checked by the caller: in offset order, tiling
 * [0, itemsize), swaps a whole number of units).  NULL when out of memory. */
static wa_rec_kernel *wa_rec_compile(size_t itemsize, const wa_plan_op *ops, size_t nops) {
    wa_rec_kernel *k = (wa_rec_kernel *)calloc(1, sizeof(wa_rec_kernel));
    wa_plan_op *merged;
    size_t i, m = 0, cap = 0;
    if (k == NULL) return NULL;
    k->itemsize = itemsize;
    k->whole = -1;
    if (itemsize == 0) return k; /* nothing to convert: wa_rec_apply returns at once */
    k->block = itemsize && itemsize < WA_REC_BLOCK_BYTES ? WA_REC_BLOCK_BYTES / itemsize : 1;
    merged = (wa_plan_op *)malloc((nops ? nops : 1) * sizeof(wa_plan_op));
    if (merged == NULL) { free(k); return NULL; }
    for (i = 0; i < nops; i++) {
        if (ops[i].nbytes == 0) continue;
        if (m && merged[m - 1].op == ops[i].op &&
            merged[m - 1].offset + merged[m - 1].nbytes == ops[i].offset)
            merged[m - 1].nbytes += ops[i].nbytes;
        else
            merged[m++] = ops[i];
    }
    if (m == 1 && merged[0].nbytes == itemsize) {
        k->whole = (int)merged[0].op;
        free(merged);
        return k;
    }
    /* at most one micro-op per unrolled byte group: nbytes / 1 for the shortest */
    for (i = 0; i < m; i++)
        cap += merged[i].nbytes > WA_REC_UNROLL_BYTES ? 1 : merged[i].nbytes;
    k->micro = (wa_rec_micro *)malloc((cap ? cap : 1) * sizeof(wa_rec_micro));
    if (k->micro == NULL || wa_rec_tables(k, merged, m) != 0) {
        free(merged);
        wa_rec_free(k);
        return NULL;
    }
    for (i = 0; i < m; i++)
        k->nmicro = wa_rec_emit(k->micro, k->nmicro, merged[i].offset, merged[i].nbytes,
                                merged[i].op);
    free(merged);
    return k;
}

/* The portable loop: records [0, nrec) of dst/src (disjoint or identical). */
static void wa_rec_portable(const wa_rec_kernel *k, char *dst, const char *src, size_t nrec,
                            int path) {
    const size_t S = k->itemsize;
    const int inplace = dst == src;
    size_t r0, m;
    for (r0 = 0; r0 < nrec; r0 += k->block) {
        const size_t nb = nrec - r0 < k->block ? nrec - r0 : k->block;
        for (m = 0; m < k->nmicro; m++) {
            const wa_rec_micro *u = &k->micro[m];
            char *d = dst + r0 * S + u->offset;
            const char *s = src + r0 * S + u->offset;
            size_t r;
#define WA_REC_EACH for (r = 0; r < nb; r++, d += S, s += S)
            switch (u->kind) {
            case WA_MU_S2:
                WA_REC_EACH { uint16_t v; memcpy(&v, s, 2); v = wa_bswap16(v); memcpy(d, &v, 2); }
                break;
            case WA_MU_S4:
                WA_REC_EACH { uint32_t v; memcpy(&v, s, 4); v = wa_bswap32(v); memcpy(d, &v, 4); }
                break;
            case WA_MU_S8:
                WA_REC_EACH { uint64_t v; memcpy(&v, s, 8); v = wa_bswap64(v); memcpy(d, &v, 8); }
                break;
            case WA_MU_C1:
                if (!inplace) WA_REC_EACH *d = *s;
                break;
            case WA_MU_C2:
                if (!inplace) WA_REC_EACH { uint16_t v; memcpy(&v, s, 2); memcpy(d, &v, 2); }
                break;
            case WA_MU_C4:
                if (!inplace) WA_REC_EACH { uint32_t v; memcpy(&v, s, 4); memcpy(d, &v, 4); }
                break;
            case WA_MU_C8:
                if (!inplace) WA_REC_EACH { uint64_t v; memcpy(&v, s, 8); memcpy(d, &v, 8); }
                break;
            case WA_MU_Z1: WA_REC_EACH *d = 0; break;
            case WA_MU_Z2: WA_REC_EACH memset(d, 0, 2); break;
            case WA_MU_Z4: WA_REC_EACH memset(d, 0, 4); break;
            case WA_MU_Z8: WA_REC_EACH memset(d, 0, 8); break;
            case WA_MU_RUN: WA_REC_EACH wa_swap_contig(d, s, u->len, u->unit, path, 0); break;
            default: WA_REC_EACH memset(d, 0, u->len); break; /* WA_MU_ZERON */
            }
#undef WA_REC_EACH
        }
    }
}

#ifdef WA_X86
/* Result bytes [p0, p1) from chunks of 16 (p0, p1 multiples of 16; p1 + 8 <= the
 * buffer's end; dst + p0 16-aligned when streaming). */
WA_TARGET("ssse3")
static void wa_rec_ssse3(char *dst, const char *src, size_t p0, size_t p1, const wa_rec_kernel *k,
                         int stream) {
    const size_t T = k->period;
    size_t p, m = p0 % T;
    /* one loop per store kind: a branch on `stream` per chunk costs in cache */
    if (k->local) {
#define WA_REC_SSSE3_LOCAL(STORE)                                                             \
    {                                                                                         \
        __m128i v = _mm_loadu_si128((const __m128i *)(src + p));                              \
        STORE((__m128i *)(dst + p),                                                           \
              _mm_shuffle_epi8(v, _mm_loadu_si128((const __m128i *)(k->loc + m))));           \
        m += 16;                                                                              \
        if (m >= T) m -= T;                                                                   \
    }
        if (stream) for (p = p0; p < p1; p += 16) WA_REC_SSSE3_LOCAL(_mm_stream_si128)
        else for (p = p0; p < p1; p += 16) WA_REC_SSSE3_LOCAL(_mm_storeu_si128)
#undef WA_REC_SSSE3_LOCAL
    } else {
        __m128i lo, hi;
        if (p0 >= 8) {
            lo = _mm_loadu_si128((const __m128i *)(src + p0 - 8));
        } else { /* p0 == 0: nothing before the first record is ever taken */
            unsigned char first[16] = {0};
            memcpy(first + 8, src, 8);
            lo = _mm_loadu_si128((const __m128i *)first);
        }
        hi = _mm_loadu_si128((const __m128i *)(src + p0 + 8));
#define WA_REC_SSSE3_CHUNK(STORE)                                                             \
    {                                                                                         \
        __m128i v = _mm_or_si128(                                                             \
            _mm_shuffle_epi8(lo, _mm_loadu_si128((const __m128i *)(k->lo + m))),              \
            _mm_shuffle_epi8(hi, _mm_loadu_si128((const __m128i *)(k->hi + m))));             \
        lo = hi; /* the next chunk's [p + 8, p + 24), loaded before this store */             \
        if (p + 16 < p1) hi = _mm_loadu_si128((const __m128i *)(src + p + 24));               \
        STORE((__m128i *)(dst + p), v);                                                       \
        m += 16;                                                                              \
        if (m >= T) m -= T;                                                                   \
    }
        if (stream) for (p = p0; p < p1; p += 16) WA_REC_SSSE3_CHUNK(_mm_stream_si128)
        else for (p = p0; p < p1; p += 16) WA_REC_SSSE3_CHUNK(_mm_storeu_si128)
#undef WA_REC_SSSE3_CHUNK
    }
    if (stream) _mm_sfence();
}

/* As wa_rec_ssse3 in chunks of 32 (p1 - p0 a multiple of 32; dst + p0 32-aligned when
 * streaming).  vpshufb shuffles each 128-bit lane on its own; the two loads
 * [p - 8, p + 24) and [p + 8, p + 40) give each lane of the chunk its own window. */
WA_TARGET("avx2")
static void wa_rec_avx2(char *dst, const char *src, size_t p0, size_t p1, const wa_rec_kernel *k,
                        int stream) {
    const size_t T = k->period;
    size_t p, m = p0 % T;
    /* one loop per store kind: a branch on `stream` per chunk costs in cache */
    if (k->local) {
#define WA_REC_AVX2_LOCAL(STORE)                                                              \
    {                                                                                         \
        __m256i v = _mm256_loadu_si256((const __m256i *)(src + p));                           \
        STORE((__m256i *)(dst + p),                                                           \
              _mm256_shuffle_epi8(v, _mm256_loadu_si256((const __m256i *)(k->loc + m))));     \
        m += 32;                                                                              \
        if (m >= T) m -= T;                                                                   \
    }
        if (stream) for (p = p0; p < p1; p += 32) WA_REC_AVX2_LOCAL(_mm256_stream_si256)
        else for (p = p0; p < p1; p += 32) WA_REC_AVX2_LOCAL(_mm256_storeu_si256)
#undef WA_REC_AVX2_LOCAL
    } else {
        __m256i lo, hi;
        if (p0 >= 8) {
            lo = _mm256_loadu_si256((const __m256i *)(src + p0 - 8));
        } else {
            unsigned char first[32] = {0};
            memcpy(first + 8, src, 24);
            lo = _mm256_loadu_si256((const __m256i *)first);
        }
        hi = _mm256_loadu_si256((const __m256i *)(src + p0 + 8));
#define WA_REC_AVX2_CHUNK(STORE)                                                              \
    {                                                                                         \
        __m256i v = _mm256_or_si256(                                                          \
            _mm256_shuffle_epi8(lo, _mm256_loadu_si256((const __m256i *)(k->lo + m))),        \
            _mm256_shuffle_epi8(hi, _mm256_loadu_si256((const __m256i *)(k->hi + m))));       \
        if (p + 32 < p1) { /* the next chunk's source, loaded before this store */            \
            lo = _mm256_loadu_si256((const __m256i *)(src + p + 24));                         \
            hi = _mm256_loadu_si256((const __m256i *)(src + p + 40));                         \
        }                                                                                     \
        STORE((__m256i *)(dst + p), v);                                                       \
        m += 32;                                                                              \
        if (m >= T) m -= T;                                                                   \
    }
        if (stream) for (p = p0; p < p1; p += 32) WA_REC_AVX2_CHUNK(_mm256_stream_si256)
        else for (p = p0; p < p1; p += 32) WA_REC_AVX2_CHUNK(_mm256_storeu_si256)
#undef WA_REC_AVX2_CHUNK
    }
    if (stream) _mm_sfence();
}
#endif /* WA_X86 */

#ifdef WA_NEON
/* As wa_rec_ssse3 with tbl: one register (local) or the pair {[p - 8, p + 8),
 * [p + 8, p + 24)} as a 32-byte table; an index >= 32 (0x80) gives 0. */
static void wa_rec_neon(char *dst, const char *src, size_t p0, size_t p1, const wa_rec_kernel *k) {
    const size_t T = k->period;
    size_t p, m = p0 % T;
    if (k->local) {
        for (p = p0; p < p1; p += 16) {
            uint8x16_t v = vqtbl1q_u8(vld1q_u8((const uint8_t *)src + p), vld1q_u8(k->loc + m));
            vst1q_u8((uint8_t *)dst + p, v);
            m += 16;
            if (m >= T) m -= T;
        }
    } else {
        uint8x16x2_t w;
        if (p0 >= 8) {
            w.val[0] = vld1q_u8((const uint8_t *)src + p0 - 8);
        } else {
            unsigned char first[16] = {0};
            memcpy(first + 8, src, 8);
            w.val[0] = vld1q_u8(first);
        }
        w.val[1] = vld1q_u8((const uint8_t *)src + p0 + 8);
        for (p = p0; p < p1; p += 16) {
            uint8x16_t v = vqtbl2q_u8(w, vld1q_u8(k->tbl + m));
            w.val[0] = w.val[1];
            if (p + 16 < p1) w.val[1] = vld1q_u8((const uint8_t *)src + p + 24);
            vst1q_u8((uint8_t *)dst + p, v);
            m += 16;
            if (m >= T) m -= T;
        }
    }
}
#endif /* WA_NEON */

/* Convert nrec records from src into dst (disjoint or identical) with the given SIMD
 * path (one the CPU can run); stream: out-of-place stores may bypass the cache. */
static void wa_rec_apply(const wa_rec_kernel *k, char *dst, const char *src, size_t nrec,
                         int path, int stream) {
    const size_t S = k->itemsize;
    size_t N, p0 = 0, p1, chunk, head, tail;
    if (nrec == 0 || S == 0) return;
    N = nrec * S;
    if (k->whole == 0) { memset(dst, 0, N); return; }
    if (k->whole > 0) { wa_swap_contig(dst, src, N, k->whole, path, stream); return; }
    if (dst == src) stream = 0;
    chunk = path == WA_PATH_AVX2 ? 32 : 16;
    if (path == WA_PATH_SCALAR || k->period == 0) goto portable;
#ifdef WA_X86
    if (path != WA_PATH_SSSE3 && path != WA_PATH_AVX2) goto portable;
#elif defined(WA_NEON)
    if (path != WA_PATH_NEON) goto portable;
    stream = 0;
#else
    goto portable;
#endif
    if (stream) {
        size_t mis = (size_t)((uintptr_t)dst & (chunk - 1));
        if (mis & 15) stream = 0;
        else if (mis) p0 = chunk - mis;
    }
    if (N < p0 + chunk + 8) goto portable;
    if (dst == src) /* end on a record boundary: the records after it are still intact */
        p1 = (N - 8) / k->period * k->period;
    else
        p1 = p0 + (N - 8 - p0) / chunk * chunk;
    if (p1 <= p0) goto portable;
#ifdef WA_X86
    if (path == WA_PATH_AVX2) wa_rec_avx2(dst, src, p0, p1, k, stream);
    else wa_rec_ssse3(dst, src, p0, p1, k, stream);
#elif defined(WA_NEON)
    wa_rec_neon(dst, src, p0, p1, k);
#endif
    head = (p0 + S - 1) / S; /* records the chunks cover in part, at either end */
    tail = p1 / S;
    if (head) wa_rec_portable(k, dst, src, head, path);
    if (tail < nrec) wa_rec_portable(k, dst + tail * S, src + tail * S, nrec - tail, path);
    return;
portable:
    wa_rec_portable(k, dst, src, nrec, path);
}

#endif /* WA_RECORDS_H */
