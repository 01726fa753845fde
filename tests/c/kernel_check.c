/*
 * kernel_check.c -- checks pyx/wa_bswap.h on its own, without Python, so that it can
 * be cross-compiled and run on emulated hosts (tests/test_emulated.py: aarch64 runs
 * the NEON path, s390x is big-endian).  Every path the CPU offers is compared with a
 * byte-reversal reference for every unit, size 0..300, source and destination
 * misalignment 0..15, in place and out of place, with and without streaming stores,
 * and the N-d strided driver on a transposed, negatively strided 3-d view.  The bool
 * loops of pyx/wa_bool.h (word-wise, so byte order must not matter) are compared with
 * byte loops for every byte value at every position of sizes 0..40 and misalignments
 * 0..7, in place and out of place.  The record kernels of pyx/wa_records.h are
 * compared with a byte-level reference of their ops for random plans of 1..200-byte
 * records (every op kind, units straddling 16-byte lanes, one-op records), 0..150
 * records, misaligned source and destination, in place and out of place, with and
 * without streaming stores, on every path.
 *
 * Prints "host=<little|big> paths=<mask> checks=<n> failures=0" and exits 0 when
 * every check passed.  Usage: kernel_check [expected-host-order]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wa_bool.h"
#include "wa_bswap.h"
#include "wa_records.h"

static unsigned long checks = 0, failures = 0;

static void reference(unsigned char *dst, const unsigned char *src, size_t nbytes, int unit) {
    size_t i;
    int k;
    for (i = 0; i + (size_t)unit <= nbytes; i += (size_t)unit)
        for (k = 0; k < unit; k++) dst[i + (size_t)k] = src[i + (size_t)(unit - 1 - k)];
}

static void expect(int ok, const char *what, int path, int unit, size_t n, int a, int b) {
    checks++;
    if (!ok) {
        failures++;
        if (failures < 20)
            fprintf(stderr, "FAIL %s path=%d unit=%d n=%lu src_off=%d dst_off=%d\n", what,
                    path, unit, (unsigned long)n, a, b);
    }
}


/* ---- records: a byte-level reference and random plans ---- */
static uint32_t lcg = 12345u;
static uint32_t rnd(uint32_t n) {
    lcg = lcg * 1103515245u + 12345u;
    return (lcg >> 8) % n;
}

static void rec_reference(unsigned char *dst, const unsigned char *src, size_t nrec,
                          size_t itemsize, const wa_plan_op *ops, size_t nops) {
    size_t r, k, b;
    for (r = 0; r < nrec; r++)
        for (k = 0; k < nops; k++) {
            size_t off = r * itemsize + ops[k].offset, u = ops[k].op;
            for (b = 0; b < ops[k].nbytes; b++) {
                if (u == 0) dst[off + b] = 0;
                else if (u == 1) dst[off + b] = src[off + b];
                else dst[off + b] = src[off + b / u * u + (u - 1 - b % u)];
            }
        }
}

/* Ops tiling an itemsize-byte record: runs of zero / copy / 2-4-8-byte swaps of
 * random lengths; `kind` < 0 random, else every op of that kind where it fits. */
static size_t random_plan(wa_plan_op *ops, size_t itemsize, int kind) {
    size_t n = 0, off = 0;
    while (off < itemsize) {
        size_t left = itemsize - off, len;
        uint32_t op = kind >= 0 ? (uint32_t)kind : rnd(5);
        if (op == 3) op = 8;
        if (op >= 2 && left < op) op = rnd(2);
        if (op >= 2) len = op * (1 + rnd((uint32_t)(left / op < 6 ? left / op : 6)));
        else len = 1 + rnd((uint32_t)(left < 9 ? left : 9));
        if (op >= 2 && rnd(8) == 0 && left / op > 6) len = left / op * op; /* a long run */
        ops[n].offset = (uint32_t)off;
        ops[n].nbytes = (uint32_t)len;
        ops[n].op = op;
        n++;
        off += len;
    }
    return n;
}

int main(int argc, char **argv) {
    static unsigned char src[4096 + 64], dst[4096 + 64], ref[4096 + 64], guard[4096 + 64];
    unsigned mask = wa_paths_available();
    int little = wa_host_is_little();
    int path, ui, so, doff, stream;
    size_t n, i;
    const int units[3] = {2, 4, 8};

    for (i = 0; i < sizeof src; i++) src[i] = (unsigned char)(i * 131u + 7u);

    for (path = 0; path < 4; path++) {
        if (!(mask & (1u << path))) continue;
        for (ui = 0; ui < 3; ui++) {
            int unit = units[ui];
            for (n = 0; n <= 300; n++) {
                size_t nbytes = n * (size_t)unit;
                for (so = 0; so < 16; so++) {
                    for (doff = 0; doff < 16; doff += 3) {
                        for (stream = 0; stream < 2; stream++) {
                            memset(dst, 0xAB, sizeof dst);
                            memcpy(guard, dst, sizeof dst);
                            reference(ref, src + so, nbytes, unit);
                            wa_swap_contig((char *)dst + doff, (const char *)src + so, nbytes,
                                           unit, path, stream);
                            expect(memcmp(dst + doff, ref, nbytes) == 0, "contig", path, unit,
                                   n, so, doff);
                            expect(memcmp(dst, guard, (size_t)doff) == 0 &&
                                       memcmp(dst + doff + nbytes, guard + doff + nbytes,
                                              sizeof dst - (size_t)doff - nbytes) == 0,
                                   "guard", path, unit, n, so, doff);
                        }
                    }
                    /* in place */
                    memcpy(dst, src, sizeof dst);
                    wa_swap_contig((char *)dst + so, (const char *)dst + so, nbytes, unit, path, 0);
                    reference(ref, src + so, nbytes, unit);
                    expect(memcmp(dst + so, ref, nbytes) == 0, "inplace", path, unit, n, so, so);
                }
            }
        }
        /* N-d: a (4, 5, 6) array of 8-byte items viewed transposed with a negative
         * stride on one axis, converted into a C-contiguous destination. */
        {
            ptrdiff_t shape[3] = {6, 4, 5};
            ptrdiff_t sst[3] = {8, 5 * 6 * 8, -6 * 8};
            ptrdiff_t dstr[3] = {4 * 5 * 8, 5 * 8, 8};
            const char *base = (const char *)src + 4 * 6 * 8; /* row j=4 of axis 2 */
            ptrdiff_t a, b, c;
            int ok = 1;
            memset(dst, 0, sizeof dst);
            wa_convert_nd((char *)dst, dstr, base, sst, shape, 3, 8, 8, path, 0);
            for (a = 0; a < 6; a++)
                for (b = 0; b < 4; b++)
                    for (c = 0; c < 5; c++) {
                        const unsigned char *s =
                            (const unsigned char *)base + a * sst[0] + b * sst[1] + c * sst[2];
                        unsigned char r[8];
                        reference(r, s, 8, 8);
                        if (memcmp(dst + a * dstr[0] + b * dstr[1] + c * dstr[2], r, 8)) ok = 0;
                    }
            expect(ok, "nd", path, 8, 120, 0, 0);
        }
    }
    {
        /* records: random plans through wa_rec_compile / wa_rec_apply, every path */
        static unsigned char rsrc[200 * 150 + 64], rdst[200 * 150 + 128], rref[200 * 150 + 64];
        static wa_plan_op ops[256];
        const size_t sizes[] = {1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14, 16, 17, 20, 24, 28, 31,
                                32, 33, 40, 48, 60, 64, 65, 72, 96, 100, 127, 128, 160, 199, 200};
        size_t si, trial, j;
        for (j = 0; j < sizeof rsrc; j++) rsrc[j] = (unsigned char)(j * 151u + 11u);
        for (si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
            const size_t S = sizes[si];
            for (trial = 0; trial < 8; trial++) {
                /* trial 0: one op over the whole record; 1-4: one kind; then mixed */
                int kind = trial == 0 ? -2 : trial <= 4 ? (int)"\0\1\2\4"[trial - 1] : -1;
                size_t nops;
                wa_rec_kernel *k;
                if (kind == -2) {
                    ops[0].offset = 0; ops[0].nbytes = (uint32_t)S;
                    ops[0].op = S % 8 == 0 ? 8 : S % 4 == 0 ? 4 : S % 2 == 0 ? 2 : 1;
                    nops = 1;
                } else {
                    nops = random_plan(ops, S, kind);
                }
                k = wa_rec_compile(S, ops, nops);
                expect(k != NULL, "rec-compile", 0, (int)S, nops, 0, 0);
                if (k == NULL) continue;
                for (path = 0; path < 4; path++) {
                    size_t nrec;
                    if (!(mask & (1u << path))) continue;
                    for (nrec = 0; nrec <= 150; nrec += (nrec < 12 ? 1 : 1 + rnd(23))) {
                        const size_t N = nrec * S;
                        for (so = 0; so < 3; so++) {
                            const size_t sa = (size_t)(so * 7); /* source offsets 0, 7, 14 */
                            rec_reference(rref, rsrc + sa, nrec, S, ops, nops);
                            /* destination offsets: 16-aligned, and off by the source's */
                            for (doff = 0; doff < 3; doff++) {
                                for (stream = 0; stream < 2; stream++) {
                                    /* 32-aligned, 16 past that, and misaligned */
                                    const size_t da = (size_t)(doff * 16) + (doff == 2 ? sa + 1 : 0);
                                    unsigned char *d = rdst + 16 + da +
                                                       (32 - (size_t)((uintptr_t)rdst & 31)) % 32;
                                    memset(rdst, 0xAB, sizeof rdst);
                                    wa_rec_apply(k, (char *)d, (const char *)rsrc + sa, nrec, path,
                                                 stream);
                                    expect(memcmp(d, rref, N) == 0, "rec", path, (int)S, nrec,
                                           (int)sa, (int)da);
                                    expect(d[-1] == 0xAB && d[N] == 0xAB,
                                           "rec-guard", path, (int)S, nrec, (int)sa, (int)da);
                                }
                            }
                            /* in place, at a misaligned address */
                            memcpy(rdst + so, rsrc + sa, N);
                            wa_rec_apply(k, (char *)rdst + so, (const char *)rdst + so, nrec, path, 0);
                            expect(memcmp(rdst + so, rref, N) == 0, "rec-inplace", path, (int)S,
                                   nrec, so, so);
                        }
                    }
                }
                wa_rec_free(k);
            }
        }
        { /* records of no bytes: compiled, and nothing written */
            wa_rec_kernel *k = wa_rec_compile(0, ops, 0);
            expect(k != NULL, "rec-compile", 0, 0, 0, 0, 0);
            if (k != NULL) {
                memset(rdst, 0xAB, sizeof rdst);
                for (path = 0; path < 4; path++)
                    if (mask & (1u << path)) wa_rec_apply(k, (char *)rdst, (const char *)rsrc, 5, path, 0);
                expect(rdst[0] == 0xAB, "rec-empty", 0, 0, 5, 0, 0);
                wa_rec_free(k);
            }
        }
    }
    {
        /* bool bytes: each value 0..255 at each position, in words and in the tail */
        static unsigned char src[64], dst[64];
        size_t n, pos, off, i;
        unsigned v;
        for (n = 0; n <= 40; n++)
            for (off = 0; off < 8; off++)
                for (pos = 0; pos < (n ? n : 1); pos++)
                    for (v = 0; v < 256; v += (n > 12 ? 17 : 1)) {
                        int ok = 1, clean = 1;
                        for (i = 0; i < n; i++) src[off + i] = (unsigned char)(i % 2);
                        if (n) src[off + pos] = (unsigned char)v;
                        for (i = 0; i < n; i++) clean &= src[off + i] <= 1;
                        if (wa_bool_canonical(src + off, n) != clean) ok = 0;
                        memset(dst, 0xAA, sizeof dst);
                        wa_bool_normalize(dst + 7 - off, src + off, n);
                        for (i = 0; i < n; i++)
                            if (dst[7 - off + i] != (src[off + i] != 0)) ok = 0;
                        if (dst[7 - off + n] != 0xAA) ok = 0; /* nothing written past n */
                        wa_bool_normalize(src + off, src + off, n); /* in place */
                        for (i = 0; i < n; i++)
                            if (src[off + i] != dst[7 - off + i]) ok = 0;
                        expect(ok, "bool", 0, 1, n, (int)off, (int)pos);
                    }
    }
    {
        /* a stray byte in a later 4 KiB block of a long buffer */
        static unsigned char big[3 * WA_BOOL_BLOCK + 5];
        memset(big, 1, sizeof big);
        expect(wa_bool_canonical(big, sizeof big), "bool-long", 0, 1, sizeof big, 0, 0);
        big[2 * WA_BOOL_BLOCK + 3] = 2;
        expect(!wa_bool_canonical(big, sizeof big), "bool-long", 0, 1, sizeof big, 0, 1);
    }
    printf("host=%s paths=%u checks=%lu failures=%lu\n", little ? "little" : "big", mask, checks,
           failures);
    if (argc > 1 && strcmp(argv[1], little ? "little" : "big") != 0) {
        fprintf(stderr, "host byte order detected wrongly\n");
        return 2;
    }
    return failures ? 1 : 0;
}
