/*
 * format_constants.c -- prints the wire format as pyx/wa_format.h declares it, as one
 * JSON object, for tests/test_c_headers.py to compare with the pure-Python reference
 * (src/wirearray/_format.py): magic, sizes, field offsets, flags, the kind rules
 * and the dtype table (with each code's version and datetime unit), and header_size / frame_tail over their whole ranges; then one
 * header packed with wa_put_fixed / wa_seal_header and what wa_check_header says of it,
 * and the CRC32C check value by both paths.  Needs no Python: the header is plain C.
 */
#include <stdio.h>

#include "wa_format.h"

int main(void) {
    static const char check[] = "123456789";
    unsigned char head[WA_MIN_HEADER] = {0};
    wa_header h;
    unsigned i, n;
    wa_crc32c_init();
    printf("{\"magic\": [%u, %u, %u, %u],\n", wa_magic[0], wa_magic[1], wa_magic[2],
           wa_magic[3]);
    printf(" \"version\": %d, \"version_control\": %d, \"version_time\": %d, \"align\": %d,"
           " \"fixed_header\": %d, \"min_header\": %d, \"max_multiplier\": %d,\n",
           WA_VERSION, WA_VERSION_CONTROL, WA_VERSION_TIME, WA_ALIGN, WA_FIXED_HEADER,
           WA_MIN_HEADER, WA_MAX_MULTIPLIER);
    printf(" \"version_record\": %d, \"codes_v4\": [%d, %d, %d, %d], \"n_codes\": %d,\n",
           WA_VERSION_RECORD, WA_CODE_BYTES, WA_CODE_UNICODE, WA_CODE_RAW, WA_CODE_RECORD,
           WA_N_CODES);
    printf(" \"record_limits\": [%d, %d, %d, %d, %d, %d, %d, %d, %d],\n", WA_MAX_ITEMSIZE,
           WA_MAX_DESCRIPTOR, WA_MAX_FIELDS, WA_MAX_DEPTH, WA_MAX_SUBARRAY_NDIM,
           WA_MAX_SUBARRAY_ELEMENTS, WA_RECORD_ALIGNED, WA_RECORD_HEAD, WA_FIELD_FIXED);
    printf(" \"descriptor_status\": [%d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d],\n",
           WA_D_OK, WA_D_TRUNCATED, WA_D_TRAILING, WA_D_ITEMSIZE, WA_D_FLAGS, WA_D_FIELDS,
           WA_D_NAME_LEN, WA_D_CODE, WA_D_PARAM, WA_D_NDIM, WA_D_ELEMENTS, WA_D_DEPTH,
           WA_D_OVERLAP, WA_D_PAST_END);
    printf(" \"max_ndim\": %d, \"max_name\": %d, \"max_header\": %d, \"trailer\": %d,\n",
           WA_MAX_NDIM, WA_MAX_NAME, WA_MAX_HEADER, WA_TRAILER);
    printf(" \"offsets\": [%d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d],\n",
           WA_OFF_VERSION, WA_OFF_KIND, WA_OFF_DTYPE, WA_OFF_FLAGS, WA_OFF_NDIM,
           WA_OFF_NAME_LEN, WA_OFF_HEADER_LEN, WA_OFF_COUNT, WA_OFF_PAYLOAD_LEN, WA_OFF_SEQ,
           WA_OFF_CRC, WA_OFF_SHAPE);
    printf(" \"flags\": [%d, %d, %d, %d],\n", WA_FLAG_BIG_ENDIAN, WA_FLAG_FORTRAN,
           WA_FLAG_CHECKSUM, WA_FLAGS_KNOWN);
    printf(" \"kinds\": [%d, %d, %d, %d, %d],\n", WA_KIND_ARRAY, WA_KIND_MESSAGE, WA_KIND_END,
           WA_KIND_ACK, WA_KIND_ERROR);
    printf(" \"kind_rules\": {");
    for (i = 0, n = 0; i < WA_KIND_LIMIT; i++) {
        if (wa_kinds[i].name == NULL) continue;
        printf("%s\"%u\": [\"%s\", %d, %d, %d, %u]", n++ ? ", " : "", i, wa_kinds[i].name,
               (wa_kinds[i].rules & WA_RULE_ARRAY) != 0,
               (wa_kinds[i].rules & WA_RULE_COUNT_ZERO) != 0,
               (wa_kinds[i].rules & WA_RULE_NAME) != 0, wa_kinds[i].version);
    }
    printf("},\n \"dtypes\": {");
    for (i = 1; i < WA_N_CODES; i++)
        printf("%s\"%u\": [\"%c\", %u, %u, %u, \"%s\", %d]", i > 1 ? ", " : "", i,
               wa_dtypes[i].typechar, wa_dtypes[i].itemsize, wa_dtypes[i].unit,
               wa_dtypes[i].version, wa_dtypes[i].time_unit ? wa_dtypes[i].time_unit : "",
               wa_code_is_time(i) + 2 * wa_code_is_record(i));
    printf("},\n \"header_size\": [");
    for (i = 0; i <= WA_MAX_NDIM; i++)
        for (n = 0; n <= WA_MAX_NAME; n++)
            printf("%s%lu", i || n ? ", " : "", (unsigned long)wa_header_size(i, n));
    printf("],\n \"frame_tail\": [");
    for (i = 0; i < 3 * WA_ALIGN; i++)
        printf("%s[%lu, %lu]", i ? ", " : "", (unsigned long)wa_frame_tail(i, 0),
               (unsigned long)wa_frame_tail(i, 1));
    /* an array frame's header: int32, flags 5, shape (3, 4), 48 bytes, name "ab", seq 7 */
    wa_put_fixed(head, WA_KIND_ARRAY, 6, 5, 2, 2, wa_header_size(2, 2), 0, 48, 7);
    wa_put64(head + WA_OFF_SHAPE, 3);
    wa_put64(head + WA_OFF_SHAPE + 8, 4);
    head[WA_OFF_SHAPE + 16] = 'a';
    head[WA_OFF_SHAPE + 17] = 'b';
    wa_seal_header(head, sizeof head);
    printf("],\n \"header\": [");
    for (i = 0; i < sizeof head; i++) printf("%s%u", i ? ", " : "", head[i]);
    printf("],\n \"header_status\": %d, \"status_ok\": %d,\n",
           wa_check_header(head, sizeof head, &h), WA_OK);
    printf(" \"crc_check\": [%lu, %lu]}\n", (unsigned long)wa_crc32c(0, check, 9),
           (unsigned long)wa_crc32c_portable(0, check, 9));
    return 0;
}
