"""The README's Python examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)


def test_readme_has_examples():
    assert len(BLOCKS) >= 2


def _has_pyzmq() -> bool:
    try:
        import zmq
    except ImportError:
        return False
    return hasattr(zmq.Socket, "recv_into")


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_example_runs(index, capsys):
    if "wirearray import zmq" in BLOCKS[index] and not _has_pyzmq():
        pytest.skip("pyzmq >= 26.4 not installed (pip install 'wirearray[zmq]')")
    exec(compile(BLOCKS[index], f"README.md[python block {index}]", "exec"), {})


def test_the_error_tree_is_the_hierarchy_of_exceptions_py():
    # every class of wirearray.exceptions, under its parent, with the builtins it
    # subclasses -- and nothing else
    import wirearray.exceptions as E

    text = README.read_text(encoding="utf-8").split("\n## Errors\n", 1)[1]
    tree = text.split("```", 2)[1]
    parents: list[tuple[int, str]] = []
    seen = {}
    for line in tree.splitlines()[1:]:
        m = re.match(r"^([ │├└─]*)(\w+)(?: \(([\w, ]+)\))?", line)
        if not m or not m.group(2):
            continue
        depth, name = len(m.group(1)) // 4, m.group(2)
        while parents and parents[-1][0] >= depth:
            parents.pop()
        cls = getattr(E, name)
        own = [b for b in cls.__bases__ if b.__module__ == E.__name__]
        builtins = sorted(b.__name__ for b in cls.__bases__ if b.__module__ == "builtins")
        if parents:
            assert [b.__name__ for b in own] == [parents[-1][1]], name
        else:
            assert cls is E.WireError
        assert builtins == sorted(filter(None, (m.group(3) or "").split(", "))) or (
            builtins == ["Exception"] and not m.group(3)
        ), name
        seen[name] = cls
        parents.append((depth, name))
    errors = {n for n in E.__all__ if issubclass(getattr(E, n), BaseException)}
    assert set(seen) == errors
