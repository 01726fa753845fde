/*
 * wa_crc32c.h -- CRC32C (Castagnoli), the checksum of wirearray frames.
 *
 * CRC32C rather than zlib's CRC32: x86-64 (SSE4.2) and ARMv8.1+ compute it with one
 * instruction per 8 bytes, and iSCSI, ext4, SCTP and gRPC already use it, so other
 * implementations are easy to find.  Parameters: reflected polynomial 0x82F63B78,
 * initial value and final XOR 0xFFFFFFFF; crc32c("123456789") = 0xE3069283.
 *
 * wa_crc32c(crc, p, n) continues a running CRC: wa_crc32c(wa_crc32c(0, a), b) is
 * the CRC of a followed by b, so payloads are checksummed chunk by chunk as they
 * arrive.
 *
 * Paths: SSE4.2 crc32q chosen at run time on x86-64 (a baseline wheel cannot assume
 * it; wa_cpu.h asks the CPU, as for the byte swaps); the ARMv8 CRC instructions where
 * the compiler targets them (__ARM_FEATURE_CRC32: Apple arm64, armv8.1+ builds) on a
 * little-endian AArch64; elsewhere slicing-by-8 tables, built once by
 * wa_crc32c_init().  The result never depends on the host byte order: bytes are
 * combined one by one into the (little-endian-defined) register, and the paths that
 * load 8 bytes as one integer exist only where that integer is little-endian.
 */
#ifndef WA_CRC32C_H
#define WA_CRC32C_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "wa_cpu.h"

#if defined(__ARM_FEATURE_CRC32) && defined(WA_AARCH64) && !defined(__ARM_BIG_ENDIAN)
#define WA_ARM_CRC 1
#include <arm_acle.h>
#endif

#if defined(WA_X86) && (defined(__x86_64__) || defined(_M_X64))
#define WA_HAVE_SSE42_CRC 1
#include <immintrin.h>
#endif

static uint32_t wa_crc_table[8][256];
#ifdef WA_HAVE_SSE42_CRC
static int wa_crc_have_sse42 = 0;
#endif

static void wa_crc32c_init(void) {
    uint32_t i, j, c;
    for (i = 0; i < 256; i++) {
        c = i;
        for (j = 0; j < 8; j++) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1u)));
        wa_crc_table[0][i] = c;
    }
    for (i = 0; i < 256; i++) {
        c = wa_crc_table[0][i];
        for (j = 1; j < 8; j++) {
            c = wa_crc_table[0][c & 0xFF] ^ (c >> 8);
            wa_crc_table[j][i] = c;
        }
    }
#ifdef WA_HAVE_SSE42_CRC
    wa_crc_have_sse42 = (wa_cpu_features() & WA_CPU_SSE42) != 0;
#endif
}

/* Portable: slicing-by-8.  The 8-byte block is assembled as a little-endian
 * integer explicitly, so the same code is right on big-endian hosts. */
static uint32_t wa_crc32c_table(uint32_t c, const unsigned char *p, size_t n) {
    while (n >= 8) {
        uint32_t lo = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                      (uint32_t)p[3] << 24;
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
                      (uint32_t)p[7] << 24;
        lo ^= c;
        c = wa_crc_table[7][lo & 0xFF] ^ wa_crc_table[6][(lo >> 8) & 0xFF] ^
            wa_crc_table[5][(lo >> 16) & 0xFF] ^ wa_crc_table[4][lo >> 24] ^
            wa_crc_table[3][hi & 0xFF] ^ wa_crc_table[2][(hi >> 8) & 0xFF] ^
            wa_crc_table[1][(hi >> 16) & 0xFF] ^ wa_crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) c = wa_crc_table[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c;
}

#ifdef WA_HAVE_SSE42_CRC
/* Clang 14 and later (zig cc, recent Apple clang) made CRC32 a target feature of its
 * own that "sse4.2" no longer implies: its intrinsics refuse to inline without it.  GCC
 * has no such split ("sse4.2" enables crc32), and older Clang does not know the name. */
#if defined(__clang__) && __clang_major__ >= 14
#define WA_TARGET_SSE42_CRC "sse4.2,crc32"
#else
#define WA_TARGET_SSE42_CRC "sse4.2"
#endif
/* crc32 instructions consume little-endian words, which x86 is. */
WA_TARGET(WA_TARGET_SSE42_CRC)
static uint32_t wa_crc32c_sse42(uint32_t c, const unsigned char *p, size_t n) {
    uint64_t c64 = c;
    while (n && ((uintptr_t)p & 7)) { c64 = _mm_crc32_u8((uint32_t)c64, *p++); n--; }
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c64 = _mm_crc32_u64(c64, v);
        p += 8;
        n -= 8;
    }
    while (n--) c64 = _mm_crc32_u8((uint32_t)c64, *p++);
    return (uint32_t)c64;
}
#endif

#ifdef WA_ARM_CRC
static uint32_t wa_crc32c_arm(uint32_t c, const unsigned char *p, size_t n) {
    /* __crc32cd takes the 64-bit word as a little-endian value: WA_ARM_CRC is only
     * defined for little-endian AArch64 (Linux, macOS and Windows all run it so);
     * a big-endian build takes the tables. */
    while (n >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __crc32cd(c, v);
        p += 8;
        n -= 8;
    }
    while (n--) c = __crc32cb(c, *p++);
    return c;
}
#endif

/* Continue `crc` (a finished CRC32C, 0 for none yet) over n bytes at p. */
static uint32_t wa_crc32c(uint32_t crc, const void *data, size_t n) {
    const unsigned char *p = (const unsigned char *)data;
    uint32_t c = crc ^ 0xFFFFFFFFu;
#if defined(WA_ARM_CRC)
    c = wa_crc32c_arm(c, p, n);
#else
#ifdef WA_HAVE_SSE42_CRC
    if (wa_crc_have_sse42) c = wa_crc32c_sse42(c, p, n);
    else
#endif
        c = wa_crc32c_table(c, p, n);
#endif
    return c ^ 0xFFFFFFFFu;
}

/* Force the portable table path (tests compare the two). */
static uint32_t wa_crc32c_portable(uint32_t crc, const void *data, size_t n) {
    return wa_crc32c_table(crc ^ 0xFFFFFFFFu, (const unsigned char *)data, n) ^ 0xFFFFFFFFu;
}

#endif /* WA_CRC32C_H */
