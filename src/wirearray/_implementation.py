"""The one place that decides which implementation of the core runs.

* ``WIREARRAY_PUREPYTHON=1`` forces the pure-Python fallback (``wirearray.fallback``);
* ``WIREARRAY_REQUIRE_EXTENSION=1`` makes a missing or broken compiled extension an
  ImportError instead of a silent fallback (CI and wheel tests set it);
* otherwise the compiled ``wirearray._cwire`` is used when it imports.

Both modules have the same names; everything else in the package calls through
:data:`impl`.  ``get("cython" | "python")`` returns a specific one, for tests and
benchmarks that compare them.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip() not in ("", "0")


EXTENSION_ERROR: str | None = None

if _flag("WIREARRAY_PUREPYTHON"):
    if _flag("WIREARRAY_REQUIRE_EXTENSION"):
        raise ImportError(
            "WIREARRAY_PUREPYTHON=1 and WIREARRAY_REQUIRE_EXTENSION=1 contradict each other"
        )
    from . import fallback as impl

    EXTENSION_ERROR = "disabled by WIREARRAY_PUREPYTHON=1"
else:
    try:
        # import_module, not ``from . import _cwire``: while the package initialises,
        # the latter reports a missing module as a "partially initialized module ...
        # circular import", which misleads whoever reads EXTENSION_ERROR
        if importlib.util.find_spec(f"{__package__}._cwire") is None:
            raise ModuleNotFoundError(
                "the compiled extension is not installed (a pure-Python build, e.g. "
                "WIREARRAY_NO_EXTENSION=1, or a platform without a C compiler)"
            )
        impl = importlib.import_module(f"{__package__}._cwire")
    except ImportError as _exc:
        if _flag("WIREARRAY_REQUIRE_EXTENSION"):
            raise ImportError(
                "wirearray's compiled extension is required (WIREARRAY_REQUIRE_EXTENSION=1) "
                f"but failed to import: {_exc}"
            ) from _exc
        from . import fallback as impl

        EXTENSION_ERROR = f"{type(_exc).__name__}: {_exc}"

IMPLEMENTATION: str = "python" if impl.__name__.endswith(".fallback") else "cython"


def get(name: str | None) -> ModuleType:
    """The implementation module called ``name`` ("cython" or "python"); None: the default."""
    if name is None:
        return impl
    if name == "python":
        from . import fallback

        return fallback
    if name == "cython":
        from . import _cwire

        return _cwire
    raise ValueError(f"implementation must be 'cython' or 'python', not {name!r}")
