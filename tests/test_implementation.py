"""Choosing the implementation: environment variables, in fresh interpreters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from conftest import load_cwire

# A meta-path hook that makes `import wirearray._cwire` fail, as on a machine where
# the extension was never built (or its shared library cannot load).
HIDE_EXTENSION = textwrap.dedent(
    """
    import sys
    class _Hide:
        def find_spec(self, name, path=None, target=None):
            if name == "wirearray._cwire":
                raise ImportError("simulated missing extension")
    sys.meta_path.insert(0, _Hide())
    """
)


def run(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("WIREARRAY_PUREPYTHON", "WIREARRAY_REQUIRE_EXTENSION", "WIREARRAY_SIMD")
    }
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=60
    )


INFO = "import json, wirearray; print(json.dumps(wirearray.info()))"


def test_purepython_forces_fallback():
    r = run(INFO, WIREARRAY_PUREPYTHON="1")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["implementation"] == "python"
    assert "WIREARRAY_PUREPYTHON" in info["extension_error"]


def test_default_uses_extension_when_built():
    load_cwire()
    info = json.loads(run(INFO).stdout)
    assert info["implementation"] == "cython" and info["extension_error"] is None


def test_missing_extension_falls_back_silently():
    r = run(HIDE_EXTENSION + INFO)
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["implementation"] == "python"
    assert "simulated missing extension" in info["extension_error"]


def test_require_extension_makes_missing_extension_an_error():
    r = run(HIDE_EXTENSION + "import wirearray", WIREARRAY_REQUIRE_EXTENSION="1")
    assert r.returncode != 0
    assert "ImportError" in r.stderr and "WIREARRAY_REQUIRE_EXTENSION" in r.stderr


def test_require_extension_passes_with_extension():
    load_cwire()
    r = run(INFO, WIREARRAY_REQUIRE_EXTENSION="1")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["implementation"] == "cython"


def test_contradictory_flags_are_an_error():
    r = run("import wirearray", WIREARRAY_PUREPYTHON="1", WIREARRAY_REQUIRE_EXTENSION="1")
    assert r.returncode != 0 and "contradict" in r.stderr


@pytest.mark.parametrize("path", ["scalar", "ssse3", "avx2", "neon"])
def test_simd_env_forces_path(path):
    cw = load_cwire()
    r = run(INFO, WIREARRAY_SIMD=path)
    if path in cw.simd_paths():
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["simd"] == path
    else:  # a path this CPU cannot run is refused loudly, never silently replaced
        assert r.returncode != 0 and "unavailable SIMD path" in r.stderr


def test_simd_env_unknown_name():
    load_cwire()
    r = run(INFO, WIREARRAY_SIMD="sse9")
    assert r.returncode != 0 and "ValueError" in r.stderr


def test_set_simd_api(impl):
    paths = impl.simd_paths()
    assert impl.get_simd() in paths
    for p in paths:
        assert impl.set_simd(p) == p and impl.get_simd() == p
    assert impl.set_simd("auto") == paths[-1]
    with pytest.raises(ValueError):
        impl.set_simd("no-such-path")


def test_import_wirearray_loads_neither_asyncio_nor_npy():
    """The asyncio layer and the .npy framing load on first use (wirearray.aio,
    format="npy"), so a blocking user pays for neither."""
    r = run(
        "import sys, wirearray, wirearray.codec\n"
        "lazy = ('asyncio', 'wirearray.aio', 'wirearray.npy')\n"
        "print(sorted(m for m in lazy if m in sys.modules))"
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"
    r = run("import sys, wirearray\nwirearray.aio\nprint('asyncio' in sys.modules)")
    assert r.stdout.strip() == "True"


# A Python built without OpenSSL (some minimal and musl builds) has no ssl module: an
# ``import ssl`` there raises ImportError, as ``sys.modules["ssl"] = None`` makes it do.
WITHOUT_SSL = textwrap.dedent(
    """
    import sys
    sys.modules["ssl"] = None
    import asyncio, threading
    import numpy as np
    import wirearray, wirearray.aio, wirearray.codec, wirearray.listener, wirearray.udp
    import wirearray.transport, wirearray.cli, wirearray.npy
    from wirearray import aio

    a = np.arange(12.0).reshape(3, 4)
    key = b"k" * 32
    with wirearray.listen(("127.0.0.1", 0), authkey=key) as listener:
        def serve():
            with listener.accept() as ch:
                ch.send(ch.recv() * 2)
        t = threading.Thread(target=serve)
        t.start()
        with wirearray.connect(listener.address, timeout=10, authkey=key) as ch:
            ch.send(a)
            assert (ch.recv() == a * 2).all()
        t.join(10)

    async def handler(ch):
        async for x in ch:
            await ch.send(x + 1)

    async def main():
        async with await aio.serve(handler, ("127.0.0.1", 0), authkey=key) as server:
            async with await aio.connect(server.address, authkey=key) as ch:
                await ch.send(a)
                assert (await ch.recv() == a + 1).all()

    asyncio.run(main())
    print(wirearray.IMPLEMENTATION, "ssl" in sys.modules and sys.modules["ssl"] is not None)
    """
)


@pytest.mark.parametrize("which", ["cython", "python"])
def test_works_on_a_python_without_ssl(which):
    """wirearray imports, and moves arrays over TCP (blocking and asyncio, with an
    authkey), on a Python that has no ssl module; ssl is imported where TLS is used."""
    if which == "cython":
        load_cwire()
        env = {"WIREARRAY_REQUIRE_EXTENSION": "1"}
    else:
        env = {"WIREARRAY_PUREPYTHON": "1"}
    r = run(WITHOUT_SSL, **env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [which, "False"]


def test_suite_collects_on_a_python_without_ctypes():
    """A Python built without ctypes (no libffi) collects the whole suite, so the
    installed-wheel tests run there; helpers import ctypes where they use it."""
    tests = os.path.dirname(os.path.abspath(__file__))
    code = (
        "import sys\n"
        "sys.modules['ctypes'] = None\n"
        "import pytest\n"
        f"sys.exit(pytest.main(['--collect-only', '-q', '-p', 'no:cacheprovider', {tests!r}]))\n"
    )
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tests
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "tests collected" in r.stdout, r.stdout[-3000:]
    assert "ImportError" not in r.stdout and " error" not in r.stdout, r.stdout[-3000:]
    assert "Traceback" not in r.stderr, r.stderr[-3000:]
