/*
 * wa_format.h -- the wirearray wire format, versions 1 to 4, in C: its constants, the
 * big-endian field accessors, header packing, and the one header check that every
 * compiled path uses (header_length, parse_header and the whole-frame fast path).
 *
 * docs/FORMAT.md is the specification and src/wirearray/_format.py the pure-Python
 * reference.  Tests hold this file to the reference: the same constants
 * (tests/test_format_c.py compiles it on its own) and, through the compiled module,
 * the same results and errors on every header (tests/test_format.py).
 *
 * Invariants:
 *  - Every number of the format is declared here, once.  The Cython side
 *    (pyx/format.pxi, pyx/fastpath.pxi) reads them through pyx/wa.pxd and
 *    spells none itself.
 *  - wa_check_head / wa_check_header make the checks of docs/FORMAT.md section 6,
 *    steps 1 to 3, in that order, and return the first that fails as a wa_status.
 *    The caller decides what a failure means: format.pxi raises the reference's
 *    exception, fastpath.pxi declines and leaves it to the general path.
 *  - Nothing reads beyond `avail` bytes, and no field is used to size or index
 *    anything before it has been checked (the header CRC comes before the rules).
 *  - Header integers are assembled from bytes, big-endian as on the wire: nothing
 *    here depends on the host's byte order or alignment.
 *  - No Python, no allocation, no state: callable without the GIL.
 *
 * Adding a frame kind: one WA_KIND_* line below, and its line in wa_kinds[].
 */
#ifndef WA_FORMAT_H
#define WA_FORMAT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "wa_crc32c.h"

/* ---- section 2: the header ------------------------------------------------------ */
static const unsigned char wa_magic[4] = {0x89, 'W', 'A', 'R'};

enum {
    WA_VERSION = 1,         /* data frames (ARRAY, MESSAGE, END) */
    WA_VERSION_CONTROL = 2, /* the close handshake's ACK and ERROR (docs/FORMAT.md 10) */
    WA_VERSION_TIME = 3,    /* ARRAY frames of datetime64/timedelta64 (docs/FORMAT.md 3) */
    WA_VERSION_RECORD = 4,  /* ARRAY frames of S, U, V and records (docs/FORMAT.md 3) */
    WA_ALIGN = 64,        /* every frame is a multiple of this; every payload starts at one */
    WA_FIXED_HEADER = 32, /* the fixed fields; the shape starts here */
    WA_MIN_HEADER = 64,   /* every frame has at least this many bytes */
    WA_MAX_NDIM = 64,
    WA_MAX_NAME = 255,
    /* 32 + 64 * 8 + 255 rounded up to 64: 832 */
    WA_MAX_HEADER = (WA_FIXED_HEADER + 8 * WA_MAX_NDIM + WA_MAX_NAME + WA_ALIGN - 1) /
                    WA_ALIGN * WA_ALIGN,
    WA_TRAILER = 4 /* the payload's CRC32C after the payload, with WA_FLAG_CHECKSUM */
};

/* Field offsets. */
enum {
    WA_OFF_VERSION = 4,
    WA_OFF_KIND = 5,
    WA_OFF_DTYPE = 6,
    WA_OFF_FLAGS = 7,
    WA_OFF_NDIM = 8,
    WA_OFF_NAME_LEN = 9,
    WA_OFF_HEADER_LEN = 10, /* 2 bytes */
    WA_OFF_COUNT = 12,      /* 4 */
    WA_OFF_PAYLOAD_LEN = 16, /* 8 */
    WA_OFF_SEQ = 24,        /* 4 */
    WA_OFF_CRC = 28,        /* 4 */
    WA_OFF_SHAPE = 32       /* 8 per dimension, then the name, then zeros to H */
};

enum {
    WA_FLAG_BIG_ENDIAN = 0x01,
    WA_FLAG_FORTRAN = 0x02,
    WA_FLAG_CHECKSUM = 0x04,
    WA_FLAGS_KNOWN = WA_FLAG_BIG_ENDIAN | WA_FLAG_FORTRAN | WA_FLAG_CHECKSUM
};

/* Frame kinds. */
enum {
    WA_KIND_ARRAY = 1,
    WA_KIND_MESSAGE = 2,
    WA_KIND_END = 3,
    WA_KIND_ACK = 4,
    WA_KIND_ERROR = 5,
    WA_KIND_LIMIT /* one past the largest kind */
};

/* The rules of section 2, per kind.  Without WA_RULE_ARRAY a header carries no
 * array: dtype, flags, ndim and payload_len are all 0, and name_len too unless the
 * kind has WA_RULE_NAME. */
enum {
    WA_RULE_ARRAY = 1,      /* a dtype code, flag bits, a shape, an optional name, and
                               payload_len = prod(shape) * itemsize exactly */
    WA_RULE_COUNT_ZERO = 2, /* count is 0 */
    WA_RULE_NAME = 4        /* a name without an array (ERROR: its reason) */
};

typedef struct {
    const char *name; /* as error messages say it; NULL: no such kind */
    unsigned rules;
    unsigned version; /* the first version that has the kind: what its frames carry */
} wa_kind_info;

static const wa_kind_info wa_kinds[WA_KIND_LIMIT] = {
    [WA_KIND_ARRAY] = {"array", WA_RULE_ARRAY | WA_RULE_COUNT_ZERO, 1},
    [WA_KIND_MESSAGE] = {"message", 0, 1}, /* count: the ARRAY frames that follow */
    [WA_KIND_END] = {"end", WA_RULE_COUNT_ZERO, 1},
    [WA_KIND_ACK] = {"ack", 0, 2},              /* count: the peer's frames received */
    [WA_KIND_ERROR] = {"error", WA_RULE_NAME, 2}, /* count: an error code */
};

/* The version a frame of this kind carries (the lowest that defines it). */
static inline unsigned wa_kind_version(unsigned kind) {
    return kind < WA_KIND_LIMIT && wa_kinds[kind].name != NULL ? wa_kinds[kind].version
                                                                 : WA_VERSION;
}

/* ---- section 3: dtype codes ----------------------------------------------------- */
typedef struct {
    char typechar;          /* numpy's type character (native byte order) */
    unsigned char itemsize; /* bytes per element */
    unsigned char unit;     /* bytes per swapped number: half the item for complex */
    unsigned char version;  /* the first version that has the code: what its frames carry */
    const char *time_unit;  /* datetime64/timedelta64: numpy's unit; NULL for the others */
} wa_dtype_info;

enum { WA_CODE_BOOL = 1 }; /* bool: one byte, 0 or 1 (senders normalise to those) */
/* Codes 1 .. WA_N_CODES - 1; 0 is none.  Codes from WA_CODE_TIME on are datetime64
 * ('M') then timedelta64 ('m'), one code per unit; an ARRAY frame of one carries its
 * multiplier, 1 .. WA_MAX_MULTIPLIER, in its count field. */
enum {
    WA_CODE_TIME = 15,
    WA_N_TIME_UNITS = 13,
    /* version 4: S (count: bytes), U (count: characters), V (count: bytes), and a
     * record (count: the length of its field descriptor, which follows the name) */
    WA_CODE_BYTES = WA_CODE_TIME + 2 * WA_N_TIME_UNITS, /* 41 */
    WA_CODE_UNICODE,
    WA_CODE_RAW,
    WA_CODE_RECORD,
    WA_N_CODES,
    WA_MAX_MULTIPLIER = 2147483647 /* numpy holds a multiplier in a C int */
};

/* The limits of a record descriptor (docs/FORMAT.md section 3), every one checked
 * before anything is sized from it. */
enum {
    WA_MAX_ITEMSIZE = 2147483647, /* numpy's item sizes are C ints */
    WA_MAX_DESCRIPTOR = 8192,     /* descriptor bytes: bounds the header to 9024 */
    WA_MAX_FIELDS = 512,          /* fields of one descriptor, nested ones included */
    WA_MAX_DEPTH = 8,             /* records in records; the frame's own is depth 1 */
    WA_MAX_SUBARRAY_NDIM = 32,
    WA_MAX_SUBARRAY_ELEMENTS = 2147483647,
    WA_RECORD_ALIGNED = 0x01,     /* a record's flag: numpy's align=True */
    WA_RECORD_HEAD = 8,           /* itemsize u32, nfields u16, flags u8, reserved u8 */
    WA_FIELD_FIXED = 10           /* after the name: offset u32, code u8, ndim u8, param u32 */
};

#define WA_TIME_CODES(c)                                                              \
    {c, 8, 8, 3, "Y"}, {c, 8, 8, 3, "M"}, {c, 8, 8, 3, "W"}, {c, 8, 8, 3, "D"},     \
        {c, 8, 8, 3, "h"}, {c, 8, 8, 3, "m"}, {c, 8, 8, 3, "s"}, {c, 8, 8, 3, "ms"}, \
        {c, 8, 8, 3, "us"}, {c, 8, 8, 3, "ns"}, {c, 8, 8, 3, "ps"},                 \
        {c, 8, 8, 3, "fs"}, {c, 8, 8, 3, "as"}

static const wa_dtype_info wa_dtypes[WA_N_CODES] = {
    [1] = {'?', 1, 1, 1, NULL},  /* bool */
    [2] = {'b', 1, 1, 1, NULL},  /* int8 */
    [3] = {'B', 1, 1, 1, NULL},  /* uint8 */
    [4] = {'h', 2, 2, 1, NULL},  /* int16 */
    [5] = {'H', 2, 2, 1, NULL},  /* uint16 */
    [6] = {'i', 4, 4, 1, NULL},  /* int32 */
    [7] = {'I', 4, 4, 1, NULL},  /* uint32 */
    [8] = {'q', 8, 8, 1, NULL},  /* int64 */
    [9] = {'Q', 8, 8, 1, NULL},  /* uint64 */
    [10] = {'e', 2, 2, 1, NULL}, /* float16 */
    [11] = {'f', 4, 4, 1, NULL}, /* float32 */
    [12] = {'d', 8, 8, 1, NULL}, /* float64 */
    [13] = {'F', 8, 4, 1, NULL}, /* complex64: two float32 */
    [14] = {'D', 16, 8, 1, NULL}, /* complex128: two float64 */
    /* 15 .. 27: datetime64[Y] .. datetime64[as]; 28 .. 40: timedelta64[Y] .. [as] */
    WA_TIME_CODES('M'),
    WA_TIME_CODES('m'),
    /* 41 .. 44: the item size comes from count (S, U, V) or the descriptor */
    [WA_CODE_BYTES] = {'S', 0, 1, 4, NULL},
    [WA_CODE_UNICODE] = {'U', 0, 4, 4, NULL},
    [WA_CODE_RAW] = {'V', 0, 1, 4, NULL},
    [WA_CODE_RECORD] = {'V', 0, 0, 4, NULL}
};

/* Whether a code (1 .. WA_N_CODES - 1) is datetime64/timedelta64: count = multiplier. */
static inline int wa_code_is_time(unsigned code) {
    return code >= WA_CODE_TIME && code < WA_CODE_BYTES;
}

/* Whether a code is one of version 4's (S, U, V, record): no fixed item size. */
static inline int wa_code_is_record(unsigned code) {
    return code >= WA_CODE_BYTES && code < WA_N_CODES;
}

/* ---- big-endian fields ---------------------------------------------------------- */
static inline uint16_t wa_get16(const unsigned char *p) {
    return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}
static inline uint32_t wa_get32(const unsigned char *p) {
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t wa_get64(const unsigned char *p) {
    return (uint64_t)wa_get32(p) << 32 | wa_get32(p + 4);
}
static inline void wa_put16(unsigned char *p, uint16_t v) {
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}
static inline void wa_put32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}
static inline void wa_put64(unsigned char *p, uint64_t v) {
    wa_put32(p, (uint32_t)(v >> 32));
    wa_put32(p + 4, (uint32_t)v);
}

/* ---- sizes ---------------------------------------------------------------------- */
/* H for ndim dimensions and a name_len-byte name. */
static inline size_t wa_header_size(unsigned ndim, unsigned name_len) {
    return (WA_FIXED_HEADER + 8 * (size_t)ndim + name_len + WA_ALIGN - 1) / WA_ALIGN * WA_ALIGN;
}

/* The same with a desc_len-byte record descriptor after the name. */
static inline size_t wa_header_size_desc(unsigned ndim, unsigned name_len, size_t desc_len) {
    return (WA_FIXED_HEADER + 8 * (size_t)ndim + name_len + desc_len + WA_ALIGN - 1) /
           WA_ALIGN * WA_ALIGN;
}

/* Bytes after a payload: the CRC trailer, if any, and zeros up to a multiple of 64. */
static inline size_t wa_frame_tail(size_t payload_len, int checksum) {
    size_t t = checksum ? WA_TRAILER : 0;
    size_t r = (payload_len + t) % WA_ALIGN;
    return t + (r ? WA_ALIGN - r : 0);
}

/* ---- writing a header ----------------------------------------------------------- */
/* The fixed fields into a zeroed header of header_len bytes; the caller then writes
 * the shape (wa_put64 at WA_OFF_SHAPE + 8 * i) and the name, and seals it. */
static inline void wa_put_fixed(unsigned char *p, unsigned kind, unsigned code, unsigned flags,
                                unsigned ndim, unsigned name_len, size_t header_len,
                                uint32_t count, uint64_t payload_len, uint32_t seq) {
    unsigned version = wa_kind_version(kind);
    if (code > 0 && code < WA_N_CODES && wa_dtypes[code].version > version)
        version = wa_dtypes[code].version; /* the lowest version that has kind and dtype */
    memcpy(p, wa_magic, 4);
    p[WA_OFF_VERSION] = (unsigned char)version;
    p[WA_OFF_KIND] = (unsigned char)kind;
    p[WA_OFF_DTYPE] = (unsigned char)code;
    p[WA_OFF_FLAGS] = (unsigned char)flags;
    p[WA_OFF_NDIM] = (unsigned char)ndim;
    p[WA_OFF_NAME_LEN] = (unsigned char)name_len;
    wa_put16(p + WA_OFF_HEADER_LEN, (uint16_t)header_len);
    wa_put32(p + WA_OFF_COUNT, count);
    wa_put64(p + WA_OFF_PAYLOAD_LEN, payload_len);
    wa_put32(p + WA_OFF_SEQ, seq);
}

/* Store the header CRC: the CRC32C of the header_len bytes with the field itself
 * zero, which it still is. */
static inline void wa_seal_header(unsigned char *p, size_t header_len) {
    wa_put32(p + WA_OFF_CRC, wa_crc32c(0, p, header_len));
}

/* ---- section 6: checking a header ----------------------------------------------- */
typedef struct {
    unsigned version, kind, code, flags, ndim, name_len;
    size_t header_len; /* H */
    uint32_t count, seq, crc;
    uint64_t payload_len;
    size_t desc_len;   /* a record's descriptor bytes (after the name); else 0 */
    uint64_t itemsize; /* an array's item size, once step 3 has found it */
    int desc_status;   /* WA_E_DESCRIPTOR: the descriptor check's WA_D_* ... */
    size_t desc_at;    /* ... and where in the descriptor it failed */
} wa_header;

/* What wa_check_head / wa_check_header found: WA_OK, or the first check that failed,
 * in the order they are made. */
enum {
    WA_OK = 0,
    /* step 1: the first 64 bytes */
    WA_E_SHORT,      /* fewer than WA_MIN_HEADER bytes to look at */
    WA_E_MAGIC,
    WA_E_VERSION,
    WA_E_NDIM,       /* ndim > WA_MAX_NDIM */
    WA_E_HEADER_LEN, /* header_len is not wa_header_size(ndim, name_len) */
    /* step 2: the whole header */
    WA_E_INCOMPLETE, /* fewer than header_len bytes to look at */
    WA_E_CRC,
    WA_E_PADDING,    /* a non-zero byte after the name */
    /* step 3: the rules of the frame's kind */
    WA_E_KIND,       /* not a kind of this frame's version */
    WA_E_DTYPE,      /* an array's dtype code is not one of section 3 */
    WA_E_FLAGS,      /* an array's flags have unknown bits */
    WA_E_NOT_EMPTY,  /* dtype, flags, shape, name or payload where the kind has none */
    WA_E_COUNT,      /* count is not 0 where the kind's is */
    WA_E_PAYLOAD_LEN, /* an array's payload_len is not prod(shape) * itemsize */
    WA_E_MULTIPLIER, /* a time code's count is not 1 .. WA_MAX_MULTIPLIER */
    WA_E_DESCRIPTOR_LEN, /* step 1: a record's descriptor over WA_MAX_DESCRIPTOR */
    WA_E_LENGTH,     /* an S/U/V code's count is not a length 1 .. WA_MAX_ITEMSIZE bytes */
    WA_E_DESCRIPTOR  /* a record's descriptor breaks a rule: desc_status, desc_at */
};

/* What wa_check_descriptor found (src/wirearray/_format.py's D_*, same numbers). */
enum {
    WA_D_OK = 0,
    WA_D_TRUNCATED,
    WA_D_TRAILING,
    WA_D_ITEMSIZE,
    WA_D_FLAGS,
    WA_D_FIELDS,
    WA_D_NAME_LEN,
    WA_D_CODE,
    WA_D_PARAM,
    WA_D_NDIM,
    WA_D_ELEMENTS,
    WA_D_DEPTH,
    WA_D_OVERLAP,
    WA_D_PAST_END
};

/* Step 1, on the first bytes of a frame (at least WA_MIN_HEADER of them): magic,
 * version, ndim, and header_len exactly as ndim and name_len make it, which bounds
 * H to WA_MAX_HEADER.  Fills every fixed field of *h. */
static inline int wa_check_head(const unsigned char *p, size_t avail, wa_header *h) {
    if (avail < WA_MIN_HEADER) return WA_E_SHORT;
    h->version = p[WA_OFF_VERSION];
    h->kind = p[WA_OFF_KIND];
    h->code = p[WA_OFF_DTYPE];
    h->flags = p[WA_OFF_FLAGS];
    h->ndim = p[WA_OFF_NDIM];
    h->name_len = p[WA_OFF_NAME_LEN];
    h->header_len = wa_get16(p + WA_OFF_HEADER_LEN);
    h->count = wa_get32(p + WA_OFF_COUNT);
    h->payload_len = wa_get64(p + WA_OFF_PAYLOAD_LEN);
    h->seq = wa_get32(p + WA_OFF_SEQ);
    h->crc = wa_get32(p + WA_OFF_CRC);
    if (memcmp(p, wa_magic, 4) != 0) return WA_E_MAGIC;
    if (h->version < WA_VERSION || h->version > WA_VERSION_RECORD) return WA_E_VERSION;
    if (h->ndim > WA_MAX_NDIM) return WA_E_NDIM;
    h->desc_len = 0;
    h->itemsize = 0;
    h->desc_status = WA_D_OK;
    h->desc_at = 0;
    /* a record's descriptor length, read before the CRC vouches for it (like ndim)
     * and bounded by the format so that H stays small */
    if (h->version >= WA_VERSION_RECORD && h->kind == WA_KIND_ARRAY && h->code == WA_CODE_RECORD) {
        if (h->count > WA_MAX_DESCRIPTOR) return WA_E_DESCRIPTOR_LEN;
        h->desc_len = h->count;
    }
    if (h->header_len != wa_header_size_desc(h->ndim, h->name_len, h->desc_len))
        return WA_E_HEADER_LEN;
    return WA_OK;
}

/* A code's parameter (count of a frame, param of a field): a time code's multiplier,
 * an S/U/V length (U: characters, 4 bytes each), 0 for the others.  Sets *size to
 * the item size for S/U/V. */
static inline int wa_param_ok(unsigned code, uint32_t param, uint64_t *size) {
    if (wa_code_is_time(code)) return param >= 1 && param <= (uint32_t)WA_MAX_MULTIPLIER;
    if (code == WA_CODE_BYTES || code == WA_CODE_RAW || code == WA_CODE_UNICODE) {
        uint64_t n = code == WA_CODE_UNICODE ? 4 * (uint64_t)param : param;
        *size = n;
        return n >= 1 && n <= (uint64_t)WA_MAX_ITEMSIZE;
    }
    return param == 0;
}

/* One record of a descriptor being read: its item size, the fields still to read,
 * where the previous field ended, and (for a nested one) its field in the parent. */
typedef struct {
    uint64_t itemsize, end, offset, elements;
    unsigned left;
} wa_record_state;

static inline int wa_place(wa_record_state *r, uint64_t offset, uint64_t size) {
    if (offset < r->end) return WA_D_OVERLAP;
    if (size > r->itemsize || offset > r->itemsize - size) return WA_D_PAST_END;
    r->end = offset + size;
    return WA_D_OK;
}

static inline int wa_record_head(const unsigned char *d, size_t n, size_t pos,
                                 wa_record_state *r) {
    if (pos + WA_RECORD_HEAD > n) return WA_D_TRUNCATED;
    r->itemsize = wa_get32(d + pos);
    r->left = wa_get16(d + pos + 4);
    r->end = 0;
    if (r->itemsize > (uint64_t)WA_MAX_ITEMSIZE) return WA_D_ITEMSIZE;
    if ((d[pos + 6] & ~WA_RECORD_ALIGNED) || d[pos + 7]) return WA_D_FLAGS;
    return WA_D_OK;
}

/* The structure of a record descriptor (docs/FORMAT.md section 3): the first rule
 * it breaks as WA_D_*, with *at the descriptor offset where, or WA_D_OK and the
 * record's item size in *itemsize.  The same walk, in the same order, as
 * _format.check_descriptor: iterative, the records being read on a stack of at most
 * WA_MAX_DEPTH, every length checked against n before it is read. */
static inline int wa_check_descriptor(const unsigned char *d, size_t n, size_t *at,
                                      uint64_t *itemsize) {
    wa_record_state stack[WA_MAX_DEPTH];
    unsigned depth = 1, fields = 0, code, ndim, i;
    size_t pos = 0, field_at, name_len;
    uint64_t offset, elements, dim, base;
    uint32_t param;
    int st;
    *at = 0;
    st = wa_record_head(d, n, 0, &stack[0]);
    if (st) return st;
    *itemsize = stack[0].itemsize;
    pos = WA_RECORD_HEAD;
    while (depth) {
        wa_record_state *r = &stack[depth - 1];
        if (r->left == 0) { /* a record done: the base of its parent's field */
            depth--;
            if (!depth) break;
            st = wa_place(&stack[depth - 1], r->offset, r->elements * r->itemsize);
            if (st) { *at = pos; return st; }
            continue;
        }
        r->left--;
        if (++fields > WA_MAX_FIELDS) { *at = pos; return WA_D_FIELDS; }
        if (pos + 1 > n) { *at = pos; return WA_D_TRUNCATED; }
        name_len = d[pos];
        if (name_len == 0) { *at = pos; return WA_D_NAME_LEN; }
        if (pos + 1 + name_len + WA_FIELD_FIXED > n) { *at = pos; return WA_D_TRUNCATED; }
        field_at = pos;
        pos += 1 + name_len;
        offset = wa_get32(d + pos);
        code = d[pos + 4];
        ndim = d[pos + 5];
        param = wa_get32(d + pos + 6);
        pos += WA_FIELD_FIXED;
        *at = field_at;
        if (code == 0 || code >= WA_N_CODES) return WA_D_CODE;
        base = code < WA_CODE_BYTES ? wa_dtypes[code].itemsize : 0;
        if (!wa_param_ok(code, param, &base)) return WA_D_PARAM;
        if (ndim > WA_MAX_SUBARRAY_NDIM) return WA_D_NDIM;
        if (pos + 4 * (size_t)ndim > n) return WA_D_TRUNCATED;
        elements = 1;
        for (i = 0; i < ndim; i++) {
            dim = wa_get32(d + pos + 4 * i);
            if (dim > (uint64_t)WA_MAX_SUBARRAY_ELEMENTS ||
                elements * dim > (uint64_t)WA_MAX_SUBARRAY_ELEMENTS)
                return WA_D_ELEMENTS;
            elements *= dim;
        }
        pos += 4 * (size_t)ndim;
        if (code == WA_CODE_RECORD) {
            if (depth >= WA_MAX_DEPTH) return WA_D_DEPTH;
            *at = pos;
            st = wa_record_head(d, n, pos, &stack[depth]);
            if (st) return st;
            stack[depth].offset = offset;
            stack[depth].elements = elements;
            depth++;
            pos += WA_RECORD_HEAD;
            continue;
        }
        st = wa_place(r, offset, elements * base);
        if (st) return st;
    }
    *at = pos;
    if (pos != n) return WA_D_TRAILING;
    return WA_D_OK;
}

/* prod(shape) * itemsize == payload_len, computed exactly: a zero dimension makes
 * the product 0, and a product that overflows 64 bits never equals a 64-bit length. */
static inline int wa_payload_len_matches(const unsigned char *p, const wa_header *h) {
    uint64_t expected = h->itemsize, d;
    unsigned i;
    for (i = 0; i < h->ndim; i++)
        if (wa_get64(p + WA_OFF_SHAPE + 8 * i) == 0) return h->payload_len == 0;
    for (i = 0; i < h->ndim; i++) {
        d = wa_get64(p + WA_OFF_SHAPE + 8 * i);
        if (expected > UINT64_MAX / d) return 0;
        expected *= d;
    }
    return expected == h->payload_len;
}

/* Steps 1 to 3, on a whole header: step 1, then the header CRC and the zero
 * padding, then the rules of the frame's kind (wa_kinds[]).  Fills *h. */
static inline int wa_check_header(const unsigned char *p, size_t avail, wa_header *h) {
    static const unsigned char zero4[4] = {0, 0, 0, 0};
    size_t i, end;
    uint32_t crc;
    unsigned rules;
    int status = wa_check_head(p, avail, h);
    if (status != WA_OK) return status;
    /* step 2 */
    if (avail < h->header_len) return WA_E_INCOMPLETE;
    crc = wa_crc32c(0, p, WA_OFF_CRC);
    crc = wa_crc32c(crc, zero4, 4);
    crc = wa_crc32c(crc, p + WA_OFF_CRC + 4, h->header_len - WA_OFF_CRC - 4);
    if (crc != h->crc) return WA_E_CRC;
    end = WA_OFF_SHAPE + 8 * (size_t)h->ndim + h->name_len + h->desc_len;
    for (i = end; i < h->header_len; i++)
        if (p[i]) return WA_E_PADDING;
    /* step 3 */
    if (h->kind >= WA_KIND_LIMIT || wa_kinds[h->kind].name == NULL ||
        h->version < wa_kinds[h->kind].version)
        return WA_E_KIND;
    rules = wa_kinds[h->kind].rules;
    if (rules & WA_RULE_ARRAY) {
        if (h->code == 0 || h->code >= WA_N_CODES || h->version < wa_dtypes[h->code].version)
            return WA_E_DTYPE;
        if (h->flags & ~(unsigned)WA_FLAGS_KNOWN) return WA_E_FLAGS;
    } else if (h->code || h->flags || h->ndim || h->payload_len ||
               (h->name_len && !(rules & WA_RULE_NAME))) {
        return WA_E_NOT_EMPTY;
    }
    /* only an array's code is non-zero here */
    h->itemsize = h->code < WA_CODE_BYTES ? wa_dtypes[h->code].itemsize : 0;
    if (wa_code_is_time(h->code)) {
        if (h->count == 0 || h->count > (uint32_t)WA_MAX_MULTIPLIER) return WA_E_MULTIPLIER;
    } else if (h->code == WA_CODE_RECORD) { /* count: the descriptor, bounded in step 1 */
        h->desc_status = wa_check_descriptor(p + end - h->desc_len, h->desc_len, &h->desc_at,
                                             &h->itemsize);
        if (h->desc_status != WA_D_OK) return WA_E_DESCRIPTOR;
    } else if (wa_code_is_record(h->code)) {
        if (!wa_param_ok(h->code, h->count, &h->itemsize)) return WA_E_LENGTH;
    } else if ((rules & WA_RULE_COUNT_ZERO) && h->count) {
        return WA_E_COUNT;
    }
    if ((rules & WA_RULE_ARRAY) && !wa_payload_len_matches(p, h)) return WA_E_PAYLOAD_LEN;
    return WA_OK;
}

#endif /* WA_FORMAT_H */
