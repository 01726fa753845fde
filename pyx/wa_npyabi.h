/*
 * wa_npyabi.h -- the few pieces of numpy's C ABI that wirearray uses, declared
 * here so that building wirearray needs no numpy headers (and no numpy at all).
 *
 * Why not the buffer protocol alone: acquiring a Py_buffer from an ndarray and
 * allocating the result through numpy's Python API costs several hundred ns per
 * call, more than the whole of `a.byteswap()` on a small array.  Reading the
 * array's fields and calling PyArray_NewLikeArray directly costs a few tens.
 *
 * Why this is safe: numpy guarantees that its C-API table only grows and that
 * existing slots keep their index and signature (extensions compiled against
 * numpy 1.x run on 1.x and extensions compiled against 2.x run on 1.x and 2.x).
 * The slots used here (PyArray_Type = 2, PyArray_NewFromDescr = 94,
 * PyArray_NewLikeArray = 277, PyArray_SetBaseObject = 282) and the leading fields of
 * PyArrayObject and PyArray_Descr have been unchanged from numpy 1.7 through 2.x.  The numpy 2
 * ABI break changed PyArray_Descr *after* `type_num` (elsize moved), which is
 * why nothing past type_num is read here.  At import the module checks numpy's
 * ABI version and refuses (ImportError -> the pure-Python fallback, or an error
 * under WIREARRAY_REQUIRE_EXTENSION=1) if it is not one it knows.
 *
 * How that is held to numpy: tests/test_c_headers.py compiles tests/c/npyabi_check.c,
 * which includes this file *and* numpy's own headers and asserts that every offset,
 * field size, flag value, ABI version and API slot below is numpy's.
 */
#ifndef WA_NPYABI_H
#define WA_NPYABI_H

#include <Python.h>

typedef struct {
    PyObject_HEAD
    char *data;
    int nd;
    Py_ssize_t *dimensions;
    Py_ssize_t *strides;
    PyObject *base;
    PyObject *descr;
    int flags;
} wa_PyArrayObject;

typedef struct {
    PyObject_HEAD
    PyTypeObject *typeobj;
    char kind;
    char type;
    char byteorder;
    char _flags_v1; /* numpy 1.x: `flags`; numpy 2: unused */
    int type_num;
} wa_PyArray_Descr;

#define WA_NPY_C_CONTIGUOUS 0x0001
#define WA_NPY_F_CONTIGUOUS 0x0002
#define WA_NPY_WRITEABLE 0x0400
#define WA_NPY_ANYORDER (-1)
#define WA_NPY_KEEPORDER 2

/* The numpy C ABI versions this file describes (NPY_ABI_VERSION of numpy 1.x and 2.x),
 * and the C-API table slots it uses. */
#define WA_NPY_ABI_1 0x01000009u
#define WA_NPY_ABI_2 0x02000000u
#define WA_NPY_SLOT_GetNDArrayCVersion 0
#define WA_NPY_SLOT_Type 2
#define WA_NPY_SLOT_NewFromDescr 94
#define WA_NPY_SLOT_NewLikeArray 277
#define WA_NPY_SLOT_SetBaseObject 282

typedef PyObject *(*wa_NewLikeArray_t)(PyObject *prototype, int order, PyObject *descr,
                                       int subok);
typedef PyObject *(*wa_NewFromDescr_t)(PyTypeObject *subtype, PyObject *descr, int nd,
                                       const Py_ssize_t *dims, const Py_ssize_t *strides,
                                       void *data, int flags, PyObject *obj);
typedef int (*wa_SetBaseObject_t)(PyObject *arr, PyObject *base);

static void **wa_npy_api = NULL;
static PyTypeObject *wa_PyArray_Type = NULL;
static wa_NewLikeArray_t wa_PyArray_NewLikeArray = NULL;
static wa_NewFromDescr_t wa_PyArray_NewFromDescr = NULL;
static wa_SetBaseObject_t wa_PyArray_SetBaseObject = NULL;

/* Returns 0 on success, -1 with a Python exception set. */
static int wa_npy_import(void) {
    PyObject *mod, *cap;
    unsigned int abi;
    mod = PyImport_ImportModule("numpy._core._multiarray_umath");
    if (mod == NULL) {
        PyErr_Clear();
        mod = PyImport_ImportModule("numpy.core._multiarray_umath");
        if (mod == NULL) return -1;
    }
    cap = PyObject_GetAttrString(mod, "_ARRAY_API");
    Py_DECREF(mod);
    if (cap == NULL) return -1;
    if (!PyCapsule_CheckExact(cap)) {
        Py_DECREF(cap);
        PyErr_SetString(PyExc_ImportError, "numpy's _ARRAY_API is not a capsule");
        return -1;
    }
    wa_npy_api = (void **)PyCapsule_GetPointer(cap, NULL);
    Py_DECREF(cap); /* the table lives as long as numpy, which is never unloaded */
    if (wa_npy_api == NULL) return -1;
    /* PyArray_GetNDArrayCVersion -> NPY_ABI_VERSION */
    abi = ((unsigned int (*)(void))wa_npy_api[WA_NPY_SLOT_GetNDArrayCVersion])();
    if (abi != WA_NPY_ABI_1 && abi != WA_NPY_ABI_2) {
        PyErr_Format(PyExc_ImportError,
                     "wirearray's compiled core does not know numpy C ABI 0x%x", abi);
        return -1;
    }
    wa_PyArray_Type = (PyTypeObject *)wa_npy_api[WA_NPY_SLOT_Type];
    wa_PyArray_NewLikeArray = (wa_NewLikeArray_t)wa_npy_api[WA_NPY_SLOT_NewLikeArray];
    wa_PyArray_NewFromDescr = (wa_NewFromDescr_t)wa_npy_api[WA_NPY_SLOT_NewFromDescr];
    wa_PyArray_SetBaseObject = (wa_SetBaseObject_t)wa_npy_api[WA_NPY_SLOT_SetBaseObject];
    return 0;
}

#define WA_ARR(o) ((wa_PyArrayObject *)(o))
#define WA_DESCR(o) ((wa_PyArray_Descr *)(WA_ARR(o)->descr))

static inline int wa_is_ndarray(PyObject *o) {
    return Py_TYPE(o) == wa_PyArray_Type || PyType_IsSubtype(Py_TYPE(o), wa_PyArray_Type);
}

/* An ndarray of the base class itself, not a subclass: the plain case, taken fast. */
static inline int wa_is_exact_ndarray(PyObject *o) { return Py_TYPE(o) == wa_PyArray_Type; }

/* A base-class ndarray viewing the memory of ndarray `arr` (same shape, strides and
 * writability) with dtype `descr`, whose item size must equal arr's.  What
 * arr.view(descr) does, without the Python-level call.  New reference or NULL. */
static PyObject *wa_view_as(PyObject *arr, PyObject *descr) {
    wa_PyArrayObject *a = WA_ARR(arr);
    PyObject *v;
    Py_INCREF(descr); /* stolen by NewFromDescr */
    v = wa_PyArray_NewFromDescr(wa_PyArray_Type, descr, a->nd, a->dimensions, a->strides,
                                a->data, a->flags & WA_NPY_WRITEABLE, NULL);
    if (v == NULL) return NULL;
    Py_INCREF(arr); /* stolen by SetBaseObject */
    if (wa_PyArray_SetBaseObject(v, arr) < 0) {
        Py_DECREF(v);
        return NULL;
    }
    return v;
}

/* A new, uninitialised base-class ndarray of dtype `descr` (borrowed) and shape
 * dims[0..nd), C order, or Fortran order when `fortran` is nonzero: np.empty(shape,
 * descr, order) without the Python-level call.  New reference or NULL. */
static PyObject *wa_new_array(PyObject *descr, int nd, const Py_ssize_t *dims, int fortran) {
    Py_INCREF(descr); /* stolen by NewFromDescr */
    return wa_PyArray_NewFromDescr(wa_PyArray_Type, descr, nd, dims, NULL, NULL,
                                   fortran ? 1 : 0, NULL);
}

#endif /* WA_NPYABI_H */
