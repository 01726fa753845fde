"""wirearray on a real big-endian host (s390x) and an arm64 one (NEON), under qemu-user.

tools/emulated_hosts.py unpacks Debian's own python3, numpy, pytest and hypothesis for
s390x and arm64 into .cache/emulated/ and cross-builds the compiled core for them
(first run: about a minute per architecture, with downloads; afterwards it only
checks).  Then, for each of the four (architecture, implementation) pairs -- the
cross-built extension, required, and the fallback, forced:

* the emulated Python says what it is (``sys.byteorder == "big"`` on s390x, the NEON
  path on arm64) and re-enters qemu for ``subprocess.run([sys.executable, ...])``;
* a subset of this test suite runs there (SUITES below: the byte-order core, the
  wire format and the codec everywhere, the transports on s390x);
* this process (x86-64, compiled core) and a peer process on the emulated host
  (tests/emulated_peer.py) exchange every supported dtype over loopback TCP in both
  directions, in both byte-order modes, with checksums on and off, and with the
  receiver keeping the wire's byte order or converting to its own.

All of it carries the ``emulated`` marker: left out of a plain ``pytest`` and run by
.ci/run as its own step with WIREARRAY_REQUIRE_EMULATED=1, where missing tools
(mmdebstrap, qemu-user-static, the cross compilers: installed by the setup script as
root with apt-get) fail instead of skipping.
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import wirearray
from emulated_peer import WAIT, cases, mismatch

pytestmark = pytest.mark.emulated

ROOT = Path(__file__).resolve().parent.parent
TOOL = ROOT / "tools" / "emulated_hosts.py"

HOSTS = [("s390x", "cython"), ("s390x", "python"), ("aarch64", "cython"), ("aarch64", "python")]
HOST_IDS = [f"{a}-{i}" for a, i in HOSTS]

CORE = [
    "tests/test_byteorder.py",
    "tests/test_datetimes.py",
    "tests/test_records.py",
    "tests/test_differential.py",
    "tests/test_scalars.py",
    "tests/test_format.py",
    "tests/test_format_examples.py",
    "tests/test_codec.py",
    "tests/test_fastpath.py",
    "tests/test_records.py",
    "tests/test_record_wire.py",
]
#: What runs on each emulated host, chosen to stay within about 10 minutes in all.
#: Everything byte-order dependent runs on s390x, with both implementations: the
#: core, the wire format, the codec (hostile input included) and its compiled
#: whole-frame fast path, .npy headers, UDP, and
#: with the compiled core the blocking and asyncio transports (the compiled small-frame
#: receive checked against the pure-Python decoder on random streams of both byte
#: orders; out= subclasses) and the implementation switches (which start interpreters
#: through sys.executable, i.e. through qemu).
#: arm64 is little-endian like x86-64: there the point is the NEON kernels (the record
#: kernels' tbl shuffles included), which the core, records, format and codec tests
#: check against numpy (the ARMv8 CRC32C instructions are
#: not compiled in: gcc's default -march lacks +crc, as a baseline wheel's build does);
#: the fallback gets the byte-order tests only.
#: Not run under emulation: the command line, TLS and load tests (slow under qemu, and
#: nothing there depends on the CPU), test_kernels_c (the native check compiles for
#: the *host*), the packaging and free-threading tests.
SUITES = {
    ("s390x", "cython"): [
        *CORE,
        "tests/test_codec_hostile.py",
        "tests/test_npy_interop.py",
        "tests/test_udp.py",
        "tests/test_implementation.py",
        "tests/test_transport.py",
        "tests/test_rx_differential.py",
        "tests/test_out_subclass.py",
    ],
    ("s390x", "python"): [
        *CORE,
        "tests/test_codec_hostile.py",
        "tests/test_npy_interop.py",
        "tests/test_udp.py",
    ],
    ("aarch64", "cython"): CORE,
    ("aarch64", "python"): ["tests/test_byteorder.py", "tests/test_scalars.py"],
}
SUITE_TIMEOUT = 900  # seconds, per run


def _required() -> bool:
    return os.environ.get("WIREARRAY_REQUIRE_EMULATED", "").strip() not in ("", "0")


def _tool():
    spec = importlib.util.spec_from_file_location("emulated_hosts", TOOL)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("emulated_hosts", mod)
    spec.loader.exec_module(mod)
    return mod


_hosts: dict = {}  # arch -> Host, or ("skip" | "fail", reason): set up once per session


def emulated_host(arch: str):
    """tools/emulated_hosts.setup(arch), once per session; a skip where the tools are
    missing and cannot be installed (a failure under WIREARRAY_REQUIRE_EMULATED=1)."""
    if arch not in _hosts:
        if not TOOL.exists():
            _hosts[arch] = ("skip", f"{TOOL} is not here (tests copied without the project)")
        else:
            tool = _tool()
            try:
                _hosts[arch] = tool.setup(arch)
            except tool.ToolsMissing as exc:
                _hosts[arch] = ("skip", f"emulated {arch} host unavailable: {exc}")
            except (subprocess.CalledProcessError, OSError, RuntimeError) as exc:
                _hosts[arch] = ("fail", f"setting up the emulated {arch} host failed: {exc}")
    host = _hosts[arch]
    if isinstance(host, tuple):
        verdict, reason = host
        if verdict == "fail" or _required():
            pytest.fail(reason + (" (WIREARRAY_REQUIRE_EMULATED=1)" if _required() else ""))
        pytest.skip(reason)
    return host


def _expect(arch: str, impl: str) -> dict:
    host = emulated_host(arch)
    return {
        "byteorder": host.arch.byteorder,
        "implementation": impl,
        "simd": host.arch.simd if impl == "cython" else "numpy",
    }


# ---- the emulated Python itself ----

PROBE = """
import json, subprocess, sys
import wirearray
info = wirearray.info()
child = subprocess.run([sys.executable, "-c", "import sys; print(sys.byteorder)"],
                       capture_output=True, text=True, check=True)
info["child_byteorder"] = child.stdout.strip()
info["executable"] = sys.executable
print(json.dumps(info))
"""


@pytest.mark.parametrize(("arch", "impl"), HOSTS, ids=HOST_IDS)
def test_emulated_python(arch, impl):
    host = emulated_host(arch)
    r = subprocess.run(
        [*host.python_cmd(), "-c", PROBE],
        env=host.env(purepython=impl == "python"),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    expect = _expect(arch, impl)
    assert {k: info[k] for k in expect} == expect, info
    assert info["child_byteorder"] == host.arch.byteorder
    assert info["executable"] == str(host.python)
    if impl == "cython":
        assert info["extension_error"] is None
        if arch == "aarch64":
            assert info["simd_paths"] == ["scalar", "neon"]
        else:
            assert info["simd_paths"] == ["scalar"]


# ---- the test suite, run there ----


@pytest.mark.parametrize(("arch", "impl"), HOSTS, ids=HOST_IDS)
def test_suite(arch, impl, record_property):
    host = emulated_host(arch)
    t0 = time.monotonic()
    r = subprocess.run(
        [
            *host.python_cmd(),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *SUITES[arch, impl],
        ],
        env=host.env(purepython=impl == "python"),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=SUITE_TIMEOUT,
    )
    tail = "\n".join(r.stdout.splitlines()[-30:])
    assert r.returncode == 0, f"{arch}/{impl} suite failed:\n{tail}\n{r.stderr[-3000:]}"
    summary = r.stdout.strip().splitlines()[-1]
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) > 0, summary
    record_property("emulated_summary", summary)
    print(f"{arch}/{impl}: {summary} ({time.monotonic() - t0:.0f} s wall)")


# ---- interop: this host against the emulated one ----


class Peer:
    """tests/emulated_peer.py on an emulated host: one JSON command per line."""

    def __init__(self, arch: str, impl: str):
        host = emulated_host(arch)
        self.name = f"{arch}/{impl}"
        self.proc = subprocess.Popen(
            [*host.python_cmd(), str(ROOT / "tests" / "emulated_peer.py")],
            env=host.env(purepython=impl == "python"),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue = queue.Queue()
        self._stderr: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stdout, True), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stderr, False), daemon=True).start()
        ready = self._line(300)
        assert ready.startswith("READY "), ready
        self.info = json.loads(ready[len("READY ") :])

    def _pump(self, stream, is_stdout: bool) -> None:
        for line in stream:
            if is_stdout:
                self._lines.put(line.rstrip("\n"))
            else:
                self._stderr.append(line)
        if is_stdout:
            self._lines.put(None)

    def _line(self, timeout: float) -> str:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"{self.name} peer silent; stderr:\n{self.stderr}") from None
        if line is None:
            raise AssertionError(f"{self.name} peer exited; stderr:\n{self.stderr}")
        return line

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)[-5000:]

    def command(self, **cmd) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(cmd) + "\n")
        self.proc.stdin.flush()

    def result(self) -> dict:
        return json.loads(self._line(WAIT))

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture(scope="module", params=HOSTS, ids=HOST_IDS)
def peer(request):
    arch, impl = request.param
    expect = _expect(arch, impl)
    p = Peer(arch, impl)
    try:
        assert {k: p.info[k] for k in expect} == expect, p.info
        yield p
    finally:
        p.close()


@pytest.mark.parametrize("keep_wire_order", [False, True], ids=["to-native", "keep-wire"])
@pytest.mark.parametrize("checksum", [False, True], ids=["nocrc", "crc"])
@pytest.mark.parametrize("byteorder", ["network", "native"])
@pytest.mark.parametrize("direction", ["to-peer", "from-peer"])
def test_interop(peer, direction, byteorder, checksum, keep_wire_order):
    """Every supported dtype (0-d, empty, C, Fortran, strided, the other byte order's
    label, large, one message) from this host to the emulated one or back."""
    expected = cases()
    with wirearray.listen(
        ("127.0.0.1", 0), timeout=WAIT, keep_wire_order=keep_wire_order
    ) as listener:
        host, port = listener.address[:2]
        address = f"{host}:{port}"
        if direction == "to-peer":
            peer.command(
                op="recv", address=address, keep_wire_order=keep_wire_order,
                byteorder=byteorder, sender=sys.byteorder,
            )  # fmt: skip
            with listener.accept() as ch:
                for _, item in expected:
                    if isinstance(item, dict):
                        ch.send_many(item, byteorder=byteorder, checksum=checksum)
                    else:
                        ch.send(item, byteorder=byteorder, checksum=checksum)
        else:
            peer.command(op="send", address=address, byteorder=byteorder, checksum=checksum)
            errors = []
            with listener.accept() as ch:
                for name, want in expected:
                    got = ch.recv_many() if isinstance(want, dict) else ch.recv()
                    why = mismatch(
                        got, want, keep_wire_order=keep_wire_order, byteorder=byteorder,
                        sender=peer.info["byteorder"],
                    )  # fmt: skip
                    if why:
                        errors.append(f"{name}: {why}")
                assert list(ch) == [], "items after the expected ones"
            assert not errors, "\n".join(errors)
        result = peer.result()
    assert result["ok"], result.get("error") or "\n".join(result["errors"])
    assert result.get("received", result.get("sent")) == len(expected)
