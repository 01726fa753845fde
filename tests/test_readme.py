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
