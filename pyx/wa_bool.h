/*
 * wa_bool.h -- bool payloads as the wire format wants them: one byte, 0 or 1
 * (docs/FORMAT.md section 3).
 *
 * numpy stores a bool as one byte and does not stop other bytes getting there
 * (np.array([0, 1, 2], "u1").view(bool), a buffer from C, a memory-mapped file):
 * such an array reads as True where the byte is not 0, yet its bytes are not the
 * format's.  A sender therefore checks every bool payload and, only when a byte
 * other than 0 or 1 is present, sends `byte != 0` instead.  The check is the common
 * case, so it is one pass that only reads: an OR of 8-byte words, tested per block
 * so that a payload with a stray byte early stops early.  Both loops are plain C on
 * 64-bit words (no intrinsics, no alignment or byte-order assumptions: loads and
 * stores go through memcpy, and nothing carries from one byte into another), which
 * compilers vectorise at -O3 on every target; they touch no Python object and
 * cannot fail, so the caller may release the GIL around them.
 */
#ifndef WA_BOOL_H
#define WA_BOOL_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* The bytes checked between two looks at the accumulated OR. */
#define WA_BOOL_BLOCK 4096

static inline uint64_t wa_bool_load(const unsigned char *p) {
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* 1 when each of the n bytes at p is 0 or 1, else 0. */
static int wa_bool_canonical(const unsigned char *p, size_t n) {
    const uint64_t high = 0xFEFEFEFEFEFEFEFEull; /* any bit but the lowest */
    uint64_t acc = 0;
    size_t i = 0, j;
    unsigned char tail = 0;
    while (n - i >= WA_BOOL_BLOCK) {
        for (j = 0; j < WA_BOOL_BLOCK; j += 8)
            acc |= wa_bool_load(p + i + j);
        if (acc & high)
            return 0;
        i += WA_BOOL_BLOCK;
    }
    for (; n - i >= 8; i += 8)
        acc |= wa_bool_load(p + i);
    for (; i < n; i++)
        tail |= p[i];
    return !(acc & high) && !(tail & 0xFE);
}

/* dst[i] = (src[i] != 0) for n bytes; dst may equal src (each word is loaded before
 * it is stored), partial overlap is not allowed.  Per byte b, in a 64-bit word:
 * (b & 0x7F) + 0x7F sets bit 7 when any of the low seven bits is set and never
 * carries out of the byte (0x7F + 0x7F = 0xFE); OR b adds bit 7 itself; bit 7
 * shifted to bit 0 is then b != 0. */
static void wa_bool_normalize(unsigned char *dst, const unsigned char *src, size_t n) {
    const uint64_t low7 = 0x7F7F7F7F7F7F7F7Full, ones = 0x0101010101010101ull;
    size_t i = 0;
    for (; n - i >= 8; i += 8) {
        uint64_t w = wa_bool_load(src + i);
        uint64_t t = ((((w & low7) + low7) | w) >> 7) & ones;
        memcpy(dst + i, &t, 8);
    }
    for (; i < n; i++)
        dst[i] = (unsigned char)(src[i] != 0);
}

#endif /* WA_BOOL_H */
