/*
 * wa_cpu.h -- what the CPU running wirearray can do: its byte order and the
 * instruction-set extensions the run-time dispatch of wa_bswap.h (byte swaps) and
 * wa_crc32c.h (checksums) chooses from.  Asked once, at import.
 *
 * Invariants:
 *  - Only the baseline ISA of the target is assumed at compile time (SSE2 on x86-64,
 *    NEON on AArch64); everything newer is found here at run time, so one wheel runs
 *    on every CPU of its platform.
 *  - A feature bit is set only when the CPU *and* the OS can run it: AVX2 also needs
 *    the OS to save the YMM registers on a context switch (OSXSAVE, then XCR0).
 *  - Portable C99 with per-compiler spellings: MSVC (__cpuidex, _xgetbv) and
 *    GCC/Clang (<cpuid.h>, the xgetbv opcode); on other CPUs and compilers the
 *    feature mask is 0 and every caller takes its portable path.
 *  - Byte order is found at run time (wa_host_is_little): no macro is portable
 *    across every compiler we target, and nothing here assumes little-endian.
 */
#ifndef WA_CPU_H
#define WA_CPU_H

#include <stdint.h>
#include <string.h>

/* ---- which CPU family this is compiled for -------------------------------------- */
#if defined(__x86_64__) || defined(_M_X64) || defined(__i386__) || \
    (defined(_M_IX86) && !defined(_M_ARM64EC))
#define WA_X86 1
#if defined(_MSC_VER) && !defined(__clang__)
#include <intrin.h>    /* __cpuidex */
#include <immintrin.h> /* _xgetbv */
#else
#include <cpuid.h>
#endif
#elif defined(__aarch64__) || defined(_M_ARM64)
#define WA_AARCH64 1
#endif

/* Compile one function for an ISA beyond the baseline, to be called only after
 * wa_cpu_features() said the CPU has it.  GCC and Clang need the attribute to
 * accept the intrinsics; MSVC accepts them in any function, without /arch. */
#if defined(WA_X86) && !(defined(_MSC_VER) && !defined(__clang__))
#define WA_TARGET(isa) __attribute__((target(isa)))
#else
#define WA_TARGET(isa)
#endif

/* ---- byte order ---------------------------------------------------------------- */
static inline int wa_host_is_little(void) {
    const uint16_t probe = 1;
    unsigned char first;
    memcpy(&first, &probe, 1);
    return first == 1;
}

/* ---- features ------------------------------------------------------------------ */
enum {
    WA_CPU_SSSE3 = 1u << 0, /* pshufb: the 128-bit byte swap */
    WA_CPU_SSE42 = 1u << 1, /* crc32: CRC32C in hardware */
    WA_CPU_AVX2 = 1u << 2,  /* vpshufb on 256 bits, with the OS saving YMM state */
    WA_CPU_NEON = 1u << 3   /* AArch64 Advanced SIMD (always there) */
};

#ifdef WA_X86
static inline void wa_cpuid(unsigned leaf, unsigned sub, unsigned r[4]) {
#if defined(_MSC_VER) && !defined(__clang__)
    int regs[4];
    __cpuidex(regs, (int)leaf, (int)sub);
    r[0] = (unsigned)regs[0]; r[1] = (unsigned)regs[1];
    r[2] = (unsigned)regs[2]; r[3] = (unsigned)regs[3];
#else
    r[0] = r[1] = r[2] = r[3] = 0;
    __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
#endif
}

/* XCR0, the register state the OS saves.  GCC/Clang spell XGETBV as its opcode: the
 * _xgetbv intrinsic would need the whole function compiled with -mxsave.  Only
 * called once CPUID has reported OSXSAVE (else the instruction faults). */
static inline uint64_t wa_xgetbv0(void) {
#if defined(_MSC_VER) && !defined(__clang__)
    return (uint64_t)_xgetbv(0);
#else
    uint32_t lo, hi;
    __asm__ volatile(".byte 0x0f, 0x01, 0xd0" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
#endif
}
#endif /* WA_X86 */

/* The WA_CPU_* bits this CPU (and OS) can run. */
static inline unsigned wa_cpu_features(void) {
    unsigned features = 0;
#ifdef WA_X86
    unsigned r[4], maxleaf;
    wa_cpuid(0, 0, r);
    maxleaf = r[0];
    if (maxleaf >= 1) {
        wa_cpuid(1, 0, r);
        if (r[2] & (1u << 9)) features |= WA_CPU_SSSE3;
        if (r[2] & (1u << 20)) features |= WA_CPU_SSE42;
        /* AVX2: the CPU flag, and an OS that saves the YMM registers (OSXSAVE set,
         * AVX set, XCR0 bits 1-2 on). */
        if ((r[2] & (1u << 27)) && (r[2] & (1u << 28)) && (wa_xgetbv0() & 6) == 6 &&
            maxleaf >= 7) {
            wa_cpuid(7, 0, r);
            if (r[1] & (1u << 5)) features |= WA_CPU_AVX2;
        }
    }
#endif
#ifdef WA_AARCH64
    features |= WA_CPU_NEON; /* baseline on AArch64 */
#endif
    return features;
}

#endif /* WA_CPU_H */
