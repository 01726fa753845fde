"""Sphinx configuration of wirearray's API reference, built from the docstrings:

    pip install '.[docs]'
    python -m sphinx -W --keep-going -b html docs/api OUT
"""

from __future__ import annotations

from wirearray import _types

project = "wirearray"
author = "wirearray developers"
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.intersphinx"]
exclude_patterns = ["_build"]
# Google-style docstrings (Args/Returns/Raises/Attributes)
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": True}
# the aliases of wirearray._types, named as such rather than expanded
autodoc_type_aliases = {name: f"wirearray.codec.{name}" for name in _types.__all__}
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
# Types that cross-references cannot resolve without fetching other projects'
# inventories (the build runs offline): numpy's, the standard library's, and the
# aliases, which Sphinx shows by name.
nitpicky = False
html_theme = "alabaster"
