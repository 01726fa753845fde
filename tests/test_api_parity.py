"""The compiled core, the pure-Python fallback and the compiled core's stub agree.

``wirearray._cwire`` and ``wirearray.fallback`` are one module written twice (as
msgpack's C and fallback packers are); ``wirearray/__init__.py`` takes the functions of
whichever runs.  Held here, by name and by ``inspect.signature``:

* both export the same public names (``__all__``), except COMPILED_ONLY below;
* each function takes the same parameters in both: names, kinds (positional-only,
  keyword-only) and defaults.  Annotations are left to the stub: the compiled functions
  carry none, so that Cython does not turn them into C type checks;
* src/wirearray/_cwire.pyi (shipped in the wheel, next to the module) declares exactly
  the compiled module's public names, every function with those same parameters, and
  private knobs that exist in the compiled module with the parameters it gives;
* hton, ntoh and byteswap have the same docstring in both: the fallback's, which
  wirearray/__init__.py gives the compiled functions (``help(wirearray.hton)``).
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import wirearray
from conftest import load_cwire
from wirearray import fallback

#: Public in the compiled module only: the codec's whole-frame accelerators.  The codec
#: looks them up with getattr and takes its general path where they are missing, which
#: is the pure-Python implementation's only path (tests/test_fastpath.py).
COMPILED_ONLY = {"encode_small", "decode_small", "send_small", "hold_small"}

STUB = Path(wirearray.__file__).resolve().parent / "_cwire.pyi"

Params = list[tuple[str, str, object]]
_NO_DEFAULT = "<no default>"


def params(fn) -> Params:
    """(name, kind, default) of each parameter, as inspect reads them."""
    return [
        (
            p.name,
            p.kind.name,
            _NO_DEFAULT if p.default is inspect.Parameter.empty else p.default,
        )
        for p in inspect.signature(fn).parameters.values()
    ]


def _stub_params(fn: ast.FunctionDef) -> Params:
    a = fn.args
    positional = [(arg, "POSITIONAL_ONLY") for arg in a.posonlyargs] + [
        (arg, "POSITIONAL_OR_KEYWORD") for arg in a.args
    ]
    defaults = [_NO_DEFAULT] * (len(positional) - len(a.defaults)) + [
        ast.literal_eval(d) for d in a.defaults
    ]
    out: Params = [(arg.arg, kind, d) for (arg, kind), d in zip(positional, defaults, strict=True)]
    if a.vararg:
        out.append((a.vararg.arg, "VAR_POSITIONAL", _NO_DEFAULT))
    for arg, d in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        out.append((arg.arg, "KEYWORD_ONLY", _NO_DEFAULT if d is None else ast.literal_eval(d)))
    if a.kwarg:
        out.append((a.kwarg.arg, "VAR_KEYWORD", _NO_DEFAULT))
    return out


@pytest.fixture(scope="module")
def stub() -> tuple[list[str], dict[str, Params]]:
    """The stub's __all__ and the parameters of each function it declares."""
    if not STUB.is_file():
        pytest.fail(f"{STUB} is missing: the stub ships with the package (package-data)")
    tree = ast.parse(STUB.read_text(encoding="utf-8"))
    names: list[str] = []
    functions: dict[str, Params] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            assert node.name not in functions, f"{node.name} declared twice"
            functions[node.name] = _stub_params(node)
        elif isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            names = ast.literal_eval(node.value)
    return names, functions


@pytest.fixture
def cw():
    return load_cwire()


def test_public_names_are_the_same(cw):
    assert COMPILED_ONLY <= set(cw.__all__)
    assert sorted(set(cw.__all__) - COMPILED_ONLY) == sorted(fallback.__all__)
    for mod in (cw, fallback):
        missing = [n for n in mod.__all__ if not callable(getattr(mod, n, None))]
        assert missing == [], f"{mod.__name__}.__all__ names what it lacks"


@pytest.mark.parametrize("name", sorted(fallback.__all__))
def test_same_parameters(cw, name):
    assert params(getattr(cw, name)) == params(getattr(fallback, name))


def test_the_package_exports_the_running_implementation():
    impl = wirearray._implementation.impl
    for name in ("hton", "ntoh", "byteswap", "htons", "htonl", "htonll", "ntohs", "ntohl",
                 "ntohll", "simd_paths", "get_simd", "set_simd"):  # fmt: skip
        assert getattr(wirearray, name) is getattr(impl, name), name
        assert name in fallback.__all__


@pytest.mark.parametrize("name", ["hton", "ntoh", "byteswap"])
def test_same_docstrings(cw, name):
    """wirearray/__init__.py gives these the fallback's docstrings, which only works
    for Cython function objects (binding=True; a builtin's __doc__ is read-only)."""
    assert getattr(cw, name).__doc__ == getattr(fallback, name).__doc__


def test_stub_declares_the_compiled_module(cw, stub):
    names, functions = stub
    assert names == list(cw.__all__)
    assert sorted(set(names) - set(functions)) == [], "in __all__ but not declared"
    for name, declared in functions.items():
        assert hasattr(cw, name), f"the stub declares {name}, the module has none"
        assert params(getattr(cw, name)) == declared, name


def test_stub_agrees_with_the_fallback(stub):
    """Without the compiled module too: the stub's parameters are the fallback's."""
    names, functions = stub
    assert sorted(set(names) - COMPILED_ONLY) == sorted(fallback.__all__)
    for name in fallback.__all__:
        assert functions[name] == params(getattr(fallback, name)), name
