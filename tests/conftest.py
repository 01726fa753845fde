"""Shared fixtures: every test of the byte-order core runs against both implementations.

``impl`` is the compiled module (``wirearray._cwire``) or the fallback
(``wirearray.fallback``); ``path_impl`` adds one compiled variant per SIMD path this
CPU can run (scalar, ssse3, avx2, neon), so each kernel is checked against numpy.
``impl_name`` is the same choice spelled as the codec's ``implementation=`` argument
("cython" or "python"), for tests of the Encoder/Decoder.  With WIREARRAY_PUREPYTHON=1
the compiled variants are skipped; with WIREARRAY_REQUIRE_EXTENSION=1 a missing
extension is a failure, not a skip.
"""

from __future__ import annotations

import os

import pytest

from wirearray import fallback


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0")


def load_cwire():
    """The compiled module, or a skip (a failure under WIREARRAY_REQUIRE_EXTENSION=1)."""
    if _flag("WIREARRAY_PUREPYTHON"):
        pytest.skip("WIREARRAY_PUREPYTHON=1: compiled core disabled")
    try:
        from wirearray import _cwire
    except ImportError as exc:
        if _flag("WIREARRAY_REQUIRE_EXTENSION"):
            pytest.fail(f"compiled core required but not importable: {exc}")
        pytest.skip(f"compiled core not built: {exc}")
    return _cwire


def _import_simd() -> str | None:
    """The path the compiled core chose at import (WIREARRAY_SIMD, else the best one):
    what the fixtures restore after a test, so a forced path stays forced."""
    if _flag("WIREARRAY_PUREPYTHON"):
        return None
    try:
        from wirearray import _cwire
    except ImportError:
        return None
    return _cwire.get_simd()


IMPORT_SIMD = _import_simd()


def _cwire_paths() -> list[str]:
    try:
        from wirearray import _cwire
    except ImportError:
        return []
    return list(_cwire.simd_paths())


@pytest.fixture(params=["cython", "python"])
def impl(request):
    """The compiled core (on the path chosen at import) or the pure-Python fallback."""
    if request.param == "python":
        return fallback
    mod = load_cwire()
    mod.set_simd(IMPORT_SIMD or "auto")
    return mod


@pytest.fixture(params=["python"] + [f"cython-{p}" for p in _cwire_paths()])
def path_impl(request):
    """Like ``impl``, with the compiled core once per SIMD path it can run."""
    if request.param == "python":
        yield fallback
        return
    mod = load_cwire()
    mod.set_simd(request.param.split("-", 1)[1])
    try:
        yield mod
    finally:
        mod.set_simd(IMPORT_SIMD or "auto")


@pytest.fixture(params=["cython", "python"])
def impl_name(request) -> str:
    """The codec's ``implementation=`` argument: "cython" or "python".

    "cython" is skipped (or failed) exactly as ``impl`` skips the compiled module.
    """
    if request.param == "cython":
        load_cwire()
    return request.param


# ---- TLS: certificates made by trustme, shared by the transport test modules ----


@pytest.fixture(scope="session")
def ca():
    trustme = pytest.importorskip("trustme", reason="pip install trustme (in the test extra)")
    return trustme.CA()


@pytest.fixture(scope="session")
def server_ctx(ca):
    import ssl

    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost", "127.0.0.1").configure_cert(ctx)
    return ctx


@pytest.fixture(scope="session")
def client_ctx(ca):
    import ssl

    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx
