"""Threads and free-threaded CPython (3.14t).

pyx/_cwire.pyx declares ``freethreading_compatible``: on a free-threaded interpreter,
importing wirearray leaves the GIL off (an extension without that declaration turns it
back on for the whole process, with a RuntimeWarning).  Why the declaration holds is in
the module's docstring: no shared mutable state but the SIMD path and the streaming
threshold, read once per call.  The second test drives exactly that: threads converting
their own arrays (large enough that the GIL is released on every build) while another
thread switches the path and the streaming threshold under them.  cibuildwheel runs both
on the 3.14t/3.15t wheels; on other builds the first skips and the second still runs.
"""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import threading

import numpy as np
import pytest

from conftest import IMPORT_SIMD, load_cwire
from helpers import random_array


def test_import_keeps_the_gil_disabled():
    if not sysconfig.get_config_var("Py_GIL_DISABLED"):
        pytest.skip("not a free-threaded CPython build")
    load_cwire()
    env = {k: v for k, v in os.environ.items() if k != "PYTHON_GIL"}
    code = "import sys, wirearray, wirearray._cwire; print(sys._is_gil_enabled())"
    r = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False", r.stdout + r.stderr


def test_threads_convert_while_the_path_switches():
    cw = load_cwire()
    rng = np.random.default_rng(3)
    # 512 KiB each: above GIL_RELEASE_BYTES, so the kernels overlap on every build
    cases = []
    for dtype in ("float64", "int32", "complex64", "uint16"):
        a = random_array(dtype, (256, 512 // np.dtype(dtype).itemsize * 4), rng)
        cases.append((a, a.astype(a.dtype.newbyteorder(">")).tobytes()))
        b = a[::-1, ::2]  # strided: the N-d driver
        cases.append((b, b.astype(b.dtype.newbyteorder(">")).tobytes()))
    # records (the compiled plans of plans.pxi) and datetimes, whose per-dtype plans
    # are made and kept while other threads read them: a fresh dtype object each time
    record = np.dtype([("x", "<f4"), ("y", "<f4"), ("t", "<u8"), ("n", "<i4")])
    r = rng.integers(0, 256, (512 << 10) // 20 * 20, dtype=np.uint8).view(record)
    r["t"] = r["t"] % (1 << 62)  # no NaN patterns in x, y: compare bytes as they are
    r["x"] = r["x"].view(np.int32) % 1000
    r["y"] = r["y"].view(np.int32) % 1000
    cases.append((r, r.astype(record.newbyteorder(">")).tobytes()))
    t = random_array("int64", (65536,), rng).view("M8[us]")
    cases.append((t, t.astype(">M8[us]").tobytes()))
    paths = cw.simd_paths()
    old_stream = cw._get_stream_bytes()
    stop = threading.Event()
    errors: list[BaseException] = []
    start = threading.Barrier(len(cases) + 1)

    def convert(a, expected):
        try:
            start.wait()
            out = np.empty(a.shape, a.dtype.newbyteorder(">"))
            for _ in range(40):
                if a.dtype.kind in "Mm":
                    a = a.view(np.dtype(a.dtype.str))  # a new dtype object, equal
                assert cw.hton(a).tobytes() == expected
                assert cw.hton(a, out=out).tobytes() == expected
                assert cw.ntoh(out).tobytes() == a.tobytes()  # bit-exact, NaNs included
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    def switch():
        start.wait()
        i = 0
        while not stop.is_set():
            cw.set_simd(paths[i % len(paths)])
            cw._set_stream_bytes((1, 0, old_stream)[i % 3])  # streaming on, off, default
            i += 1

    workers = [threading.Thread(target=convert, args=case) for case in cases]
    switcher = threading.Thread(target=switch)
    try:
        for t in [*workers, switcher]:
            t.start()
        for t in workers:
            t.join(timeout=300)
    finally:
        stop.set()
        switcher.join(timeout=60)
        cw.set_simd(IMPORT_SIMD or "auto")
        cw._set_stream_bytes(old_stream)
    assert not any(t.is_alive() for t in workers)
    assert errors == []
