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


# ---- commands: every `wirearray ...` line of the README and docs/ is one the parser takes


DOCS = [README, *sorted((README.parent / "docs").glob("*.md"))]


def _commands() -> list[tuple[str, list[str]]]:
    import shlex

    found = []
    for doc in DOCS:
        text = doc.read_text(encoding="utf-8")
        for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
            variables: dict[str, str] = {}
            for line in block.replace("\\\n", " ").splitlines():
                words = shlex.split(line, comments=True)
                assigned = [w for w in words if re.fullmatch(r"[A-Z_]+=\S*", w)]
                if words and assigned == words:  # VAR=value on its own: a shell variable
                    variables.update(w.split("=", 1) for w in words)
                    continue
                words = [re.sub(r"\$([A-Z_]+)", lambda m, v=variables: v[m[1]], w) for w in words]
                while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                    words = words[1:]  # VAR=value prefixes
                if words[:3] == ["python", "-m", "wirearray"]:
                    words = ["wirearray", *words[3:]]
                if words[:1] == ["wirearray"]:
                    found.append((f"{doc.name}: {line.strip()}", words[1:]))
    return found


COMMANDS = _commands()


def test_the_docs_show_commands():
    assert len(COMMANDS) >= 15
    assert any(argv[:1] == ["bench"] and "--plot" in argv for _, argv in COMMANDS)


@pytest.mark.parametrize("argv", [c[1] for c in COMMANDS], ids=[c[0] for c in COMMANDS])
def test_documented_command_parses(argv):
    from wirearray.cli import parse_args

    args = parse_args(argv)  # a usage error exits (SystemExit): a failure
    assert callable(args.func)


def test_documented_extras_exist():
    """Every `pip install '.[extra]'` (or 'wirearray[extra]') names an extra that exists."""
    tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from 3.11")

    extras = set(
        tomllib.loads((README.parent / "pyproject.toml").read_text())["project"][
            "optional-dependencies"
        ]
    )
    named = set()
    for doc in DOCS:
        for group in re.findall(r"(?:\.|wirearray)\[([a-z,]+)\]", doc.read_text(encoding="utf-8")):
            named |= set(group.split(","))
    assert named and named <= extras, named - extras


# ---- the numpy-only peers of `format="npy"`, run as written against the command line


NPY_BLOCKS = re.findall(r"```py\n(# the numpy-only .*?)```", README.read_text("utf-8"), flags=re.S)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_readme_has_both_numpy_only_peers():
    assert [b.splitlines()[0].split(",")[0] for b in NPY_BLOCKS] == [
        "# the numpy-only sender",
        "# the numpy-only receiver",
    ]


def test_numpy_only_sender_against_serve(tmp_path):
    """The sender block, as written but for its port, against the `wirearray serve
    --format npy` its first line names: it ends, and serve got both arrays."""
    from netutil import start_serve

    block = NPY_BLOCKS[0]
    command = re.search(r"`wirearray (serve [^`]*)`", block.splitlines()[0])[1].split()
    port = _free_port()
    server, _ = start_serve(f"127.0.0.1:{port}", *command[1:], "--connections", "1")
    try:
        code = block.replace("5555", str(port))
        exec(compile(code, "README.md[numpy-only sender]", "exec"), {})
        out, err = server.communicate(timeout=60)
    finally:
        server.kill()
    assert server.returncode == 0, err
    assert "float64 (10,)" in out and "float32 (3, 3)" in out, out


def test_numpy_only_receiver_from_send(tmp_path):
    """The receiver block, as written but for its port, fed by the `wirearray send`
    command its first line names: both end, send exits 0 (the receiver's close
    confirmed the stream)."""
    import subprocess
    import sys
    import threading
    import time

    import numpy as np

    block = NPY_BLOCKS[1]
    command = re.search(r"`wirearray (send [^`]*)`", block.splitlines()[0])[1].split()
    port = _free_port()
    np.save(tmp_path / "a.npy", np.arange(6.0).reshape(2, 3))
    np.save(tmp_path / "b.npy", np.zeros(4, "i2"))
    argv = [w.replace("5556", str(port)) for w in command]
    scope: dict = {}
    runner = threading.Thread(
        target=exec,
        args=(compile(block.replace("5556", str(port)), "README.md[receiver]", "exec"), scope),
    )
    runner.start()
    for _ in range(200):  # until the block listens
        sent = subprocess.run(
            [sys.executable, "-m", "wirearray", *argv],
            cwd=tmp_path, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        if "connection refused" not in sent.stderr:
            break
        time.sleep(0.05)
    runner.join(60)
    assert not runner.is_alive()
    assert sent.returncode == 0, sent.stderr
    assert [a.shape for a in scope["arrays"]] == [(2, 3), (4,)]


# ---- the signatures the README quotes are the functions' own


def _readme_signatures() -> dict[str, str]:
    """`NAME(PARAMS)` spans of the README that spell out keyword-only parameters (a
    ``*``) or defaults: signatures, as opposed to calls."""
    found = {}
    for name, params in re.findall(
        r"`((?:\w+\.)?\.?\w+)\(([^`()]*(?:\(\)[^`()]*)*)\)`", README.read_text("utf-8")
    ):
        if "*" in params or "=None" in params:
            found[name.lstrip(".")] = " ".join(params.split())
    return found


# what the README leaves out on purpose: a progress callback (the command line's bar)
# and the implementation override (tests and benchmarks)
_UNQUOTED = {"progress", "implementation", "self"}


def _objects() -> dict[str, object]:
    import wirearray

    named: dict[str, object] = {
        "Channel.send": wirearray.Channel.send,
        "Channel.recv": wirearray.Channel.recv,
        "recv_many": wirearray.Channel.recv_many,
        "hton": wirearray.hton,
        "ntoh": wirearray.ntoh,
        "byteswap": wirearray.byteswap,
    }
    if _has_pyzmq():
        from wirearray import zmq as wz

        named |= {
            "send_array": wz.send_array,
            "recv_array": wz.recv_array,
            "Sender": wz.Sender,
            "Receiver": wz.Receiver,
            "recv": wz.Receiver.recv,  # `.recv(...)` in the Receiver's line
        }
    return named


def test_readme_quotes_the_signatures_it_checks():
    quoted = _readme_signatures()
    assert {"Channel.send", "Channel.recv", "hton", "ntoh", "send_array", "Receiver"} <= set(
        quoted
    ), quoted


@pytest.mark.parametrize("name", sorted(_readme_signatures()))
def test_readme_signature_is_the_real_one(name):
    """Every parameter the README shows exists, in the same kind (positional or
    keyword-only) and with the same default; none is missing but the ones above."""
    import inspect

    objects = _objects()
    if name not in objects:
        if name in {"send_array", "recv_array", "Sender", "Receiver", "recv"}:
            pytest.skip("pyzmq >= 26.4 not installed (pip install 'wirearray[zmq]')")
        pytest.fail(f"the README quotes {name}(...), which this test does not know")
    real = inspect.signature(objects[name]).parameters
    shown: dict[str, str | None] = {}
    keyword_only = False
    for part in _readme_signatures()[name].split(", "):
        if part == "*":
            keyword_only = True
            continue
        pname, _, default = part.partition("=")
        assert pname in real, f"{name}: the README shows {pname!r}, which it does not take"
        kind = real[pname].kind
        assert (kind is inspect.Parameter.KEYWORD_ONLY) == keyword_only, (name, pname)
        if default and default != "...":
            assert repr(real[pname].default) == default, (name, pname, real[pname].default)
        shown[pname] = default
    missing = set(real) - set(shown) - _UNQUOTED
    assert not missing, f"{name}: the README leaves out {sorted(missing)}"
