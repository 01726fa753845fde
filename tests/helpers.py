"""Reference results and array factories for the byte-order tests."""

from __future__ import annotations

import numpy as np

#: Every dtype wirearray supports, by name.
SUPPORTED = [
    "bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
]  # fmt: skip


def random_array(dtype, shape, rng: np.random.Generator) -> np.ndarray:
    """An array of random *bit patterns* (NaN payloads, denormals, -0.0 included).

    Booleans get 0/1 bytes only, as numpy requires.
    """
    dt = np.dtype(dtype)
    n = int(np.prod(shape, dtype=np.int64))
    if dt.kind == "b":
        return (rng.integers(0, 2, size=shape)).astype(dt)
    raw = rng.integers(0, 256, size=n * dt.itemsize, dtype=np.uint8)
    return raw.view(dt).reshape(shape)


def same_bytes(x: np.ndarray, y: np.ndarray) -> bool:
    """True when x and y have the same dtype, shape and element bytes (bit-exact)."""
    return (
        x.dtype == y.dtype
        and x.shape == y.shape
        and np.ascontiguousarray(x).tobytes() == np.ascontiguousarray(y).tobytes()
    )


def big(dt) -> np.dtype:
    return np.dtype(dt).newbyteorder(">")


def native(dt) -> np.dtype:
    return np.dtype(dt).newbyteorder("=")


def ref_hton(a: np.ndarray) -> np.ndarray:
    return a.astype(big(a.dtype))


def ref_ntoh(a: np.ndarray) -> np.ndarray:
    return a.view(big(a.dtype)).astype(native(a.dtype))


def ref_byteswap(a: np.ndarray) -> np.ndarray:
    return a.byteswap()


def layouts(base: np.ndarray) -> dict[str, np.ndarray]:
    """Views of ``base`` (a 3-d array, each dimension >= 4) in every layout worth testing."""
    flat = base.reshape(-1)
    unaligned_buf = np.zeros(flat.nbytes + 1, dtype=np.uint8)
    unaligned_buf[1:] = flat.view(np.uint8)
    unaligned = np.frombuffer(unaligned_buf.data, dtype=base.dtype, offset=1)
    ro = base.copy()
    ro.flags.writeable = False
    return {
        "c": base,
        "f": np.asfortranarray(base),
        "slice-step": base[::2, 1:, ::3],
        "negative": base[::-1, :, ::-2],
        "transposed": base.transpose(2, 0, 1),
        "f-sliced": np.asfortranarray(base)[1:, :, 1:],
        "column": base[:, 1, :],
        "0d": base[1:2, 2:3, 3:4].reshape(()),
        "1d": flat,
        "1d-strided": flat[1::3],
        "empty": base[:0],
        "empty-middle": base[:, 2:2, :],
        "unaligned": unaligned,
        "unaligned-2d": unaligned.reshape(base.shape[0], -1)[:, 1:],
        "readonly": ro,
        "broadcast": np.broadcast_to(flat[:7], (3, 7)),
        "length-1-axes": flat[:5].reshape(1, 5, 1),
    }
