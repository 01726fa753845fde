/*
 * npyabi_check.c -- pyx/wa_npyabi.h against numpy's own headers.
 *
 * The compiled core reads ndarray and descriptor fields and calls numpy's C-API table
 * by slot, all declared by hand in wa_npyabi.h so that building wirearray needs no
 * numpy headers.  This file includes both that header and numpy's, and checks that the
 * hand-written declarations say what numpy's say:
 *
 *  - at compile time (a failed check is a compile error naming the field): the offset
 *    and size of every field wa_npyabi.h reads, the flag and order values it passes,
 *    the sizes of the integer types in the function signatures it declares, and that
 *    numpy's NPY_ABI_VERSION is one wa_npy_import accepts;
 *  - at run time, the API slots.  numpy's slot macros read the table
 *    (`#define PyArray_NewLikeArray (*(...) PyArray_API[277])`), so they are not
 *    constant expressions; PyArray_API is pointed at a table whose slot k holds the
 *    address of its own entry k, and each macro's value tells its index.
 *
 * tests/test_c_headers.py builds it with numpy.get_include() and Python's include
 * directory, and runs it.  Nothing here calls Python: it is not linked against it.
 * Prints "npyabi ok abi=0x..." and exits 0 when every check passed.
 */
#define NPY_NO_DEPRECATED_API NPY_1_7_API_VERSION
#include <Python.h>
#include <numpy/arrayobject.h>

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "wa_npyabi.h"

#if defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define CHECK(cond, what) _Static_assert(cond, what)
#else /* C99: an array of negative size is the error */
#define CHECK_CAT_(a, b) a##b
#define CHECK_CAT(a, b) CHECK_CAT_(a, b)
#define CHECK(cond, what) typedef char CHECK_CAT(check_line_, __LINE__)[(cond) ? 1 : -1]
#endif

/* Field `ours` of our struct is numpy's field `theirs`: same offset, same size. */
#define MEMBER_SIZE(type, field) sizeof(((type *)0)->field)
#define SAME_FIELD(our_t, their_t, ours, theirs)                                      \
    CHECK(offsetof(our_t, ours) == offsetof(their_t, theirs),                         \
          #our_t "." #ours ": offset differs from numpy's " #their_t "." #theirs);    \
    CHECK(MEMBER_SIZE(our_t, ours) == MEMBER_SIZE(their_t, theirs),                   \
          #our_t "." #ours ": size differs from numpy's " #their_t "." #theirs)

/* ---- ndarray: the leading fields of PyArrayObject ---- */
SAME_FIELD(wa_PyArrayObject, PyArrayObject_fields, data, data);
SAME_FIELD(wa_PyArrayObject, PyArrayObject_fields, nd, nd);
SAME_FIELD(wa_PyArrayObject, PyArrayObject_fields, dimensions, dimensions);
SAME_FIELD(wa_PyArrayObject, PyArrayObject_fields, strides, strides);
SAME_FIELD(wa_PyArrayObject, PyArrayObject_fields, base, base);
SAME_FIELD(wa_PyArrayObject, PyArrayObject_fields, descr, descr);
SAME_FIELD(wa_PyArrayObject, PyArrayObject_fields, flags, flags);
CHECK(sizeof(wa_PyArrayObject) <= sizeof(PyArrayObject_fields),
      "wa_PyArrayObject is larger than numpy's PyArrayObject");

/* ---- dtype descriptor: the fields up to type_num (numpy 2 changed what follows) ---- */
SAME_FIELD(wa_PyArray_Descr, PyArray_Descr, typeobj, typeobj);
SAME_FIELD(wa_PyArray_Descr, PyArray_Descr, kind, kind);
SAME_FIELD(wa_PyArray_Descr, PyArray_Descr, type, type);
SAME_FIELD(wa_PyArray_Descr, PyArray_Descr, byteorder, byteorder);
SAME_FIELD(wa_PyArray_Descr, PyArray_Descr, type_num, type_num);
CHECK(sizeof(wa_PyArray_Descr) <= sizeof(PyArray_Descr),
      "wa_PyArray_Descr is larger than numpy's PyArray_Descr");

/* ---- values passed to numpy, and the types of the declared signatures ---- */
CHECK(WA_NPY_C_CONTIGUOUS == NPY_ARRAY_C_CONTIGUOUS, "WA_NPY_C_CONTIGUOUS");
CHECK(WA_NPY_F_CONTIGUOUS == NPY_ARRAY_F_CONTIGUOUS, "WA_NPY_F_CONTIGUOUS");
CHECK(WA_NPY_WRITEABLE == NPY_ARRAY_WRITEABLE, "WA_NPY_WRITEABLE");
CHECK(WA_NPY_KEEPORDER == NPY_KEEPORDER, "WA_NPY_KEEPORDER");
CHECK(WA_NPY_ANYORDER == NPY_ANYORDER, "WA_NPY_ANYORDER");
CHECK(sizeof(NPY_ORDER) == sizeof(int), "NPY_ORDER is passed as an int");
CHECK(sizeof(npy_intp) == sizeof(Py_ssize_t), "npy_intp is declared as Py_ssize_t");
CHECK(NPY_ABI_VERSION == WA_NPY_ABI_1 || NPY_ABI_VERSION == WA_NPY_ABI_2,
      "numpy's NPY_ABI_VERSION is not one wa_npy_import accepts");

/* ---- API slots, at run time ---- */
#define N_SLOTS 4096
static void *table[N_SLOTS];
static int failures = 0;

static void check_slot(const char *name, uintptr_t value, int ours) {
    uintptr_t first = (uintptr_t)&table[0];
    long theirs = (long)((value - first) / sizeof(void *));
    if (value < first || theirs >= N_SLOTS) {
        printf("FAIL %s: not a slot of the table\n", name);
        failures++;
    } else if (theirs != ours) {
        printf("FAIL %s: numpy's slot %ld, wa_npyabi.h's %d\n", name, theirs, ours);
        failures++;
    }
}

int main(void) {
    int i;
    for (i = 0; i < N_SLOTS; i++) table[i] = &table[i];
    PyArray_API = table;
    /* A data slot: the macro is the object in the slot. */
    check_slot("PyArray_Type", (uintptr_t)&PyArray_Type, WA_NPY_SLOT_Type);
    /* Function slots: the macro is the function pointer in the slot. */
    check_slot("PyArray_GetNDArrayCVersion", (uintptr_t)&PyArray_GetNDArrayCVersion,
               WA_NPY_SLOT_GetNDArrayCVersion);
    check_slot("PyArray_NewFromDescr", (uintptr_t)&PyArray_NewFromDescr,
               WA_NPY_SLOT_NewFromDescr);
    check_slot("PyArray_NewLikeArray", (uintptr_t)&PyArray_NewLikeArray,
               WA_NPY_SLOT_NewLikeArray);
    check_slot("PyArray_SetBaseObject", (uintptr_t)&PyArray_SetBaseObject,
               WA_NPY_SLOT_SetBaseObject);
    if (failures) return 1;
    printf("npyabi ok abi=0x%08x\n", (unsigned)NPY_ABI_VERSION);
    return 0;
}
