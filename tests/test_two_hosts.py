"""wirearray between two hosts: a server in one network namespace, a client in another,
a veth pair between them (tests/hosts.py), 64 MiB streams checked byte for byte.

Marked ``hosts``: not in the default run (they need root and take about 40 s, or two
minutes where TCP's congestion control is CUBIC rather than BBR);
.ci/run runs them as their own step with WIREARRAY_REQUIRE_HOSTS=1, so a machine that
cannot run them fails there instead of skipping.  The kernel has no netem: rate limits
are tbf, loss is nftables, delay/jitter/reordering is tests/nfq_delayer.py.
"""

from __future__ import annotations

import builtins
import functools
import hashlib
import os
import time

import numpy as np
import pytest

import wirearray
from hosts import CMD_TIMEOUT, TwoHosts, check_environment, namespaces

pytestmark = pytest.mark.hosts

MiB = 1 << 20
NBYTES = 64 * MiB


@functools.cache
def expected_sha256(seed: int) -> str:
    return hashlib.sha256(np.random.default_rng(seed).bytes(NBYTES)).hexdigest()


def spec(**overrides: object) -> dict:
    s = {
        "nbytes": NBYTES,
        "frames": 4,
        "dtype": "float64",
        "seed": 1,
        "byteorder": "network",
        "checksum": False,
        "timeout": 30.0,
        "echo": False,
    }
    s.update(overrides)
    return s


@pytest.fixture(autouse=True)
def _only_when_selected(request):
    """Root and real namespaces: run only on request (``-m hosts``), also where the
    marker is not excluded from the default run."""
    if "hosts" not in (request.config.getoption("markexpr") or ""):
        pytest.skip("two-host tests run only when selected: pytest -m hosts")


@pytest.fixture
def hosts():
    check_environment()
    with TwoHosts() as h:
        yield h


def start(hosts: TwoHosts, family: str, s: dict):
    """Server in a (receiving), client in b (sending); returns both processes."""
    server = hosts.peer(hosts.a, "serve", f"{hosts.a.address(family)}:0", s)
    _, address = server.line(timeout=CMD_TIMEOUT)
    client = hosts.peer(hosts.b, "send", address, s)
    return server, client


def transfer(hosts: TwoHosts, family: str, s: dict, wait: float) -> tuple[dict, dict]:
    server, client = start(hosts, family, s)
    _, sent = client.json(timeout=wait)
    _, got = server.json(timeout=wait)
    return sent, got


def assert_exact(result: dict, s: dict) -> None:
    assert result["ok"], result
    assert result["sha256"] == expected_sha256(s["seed"]), "bytes differ from those sent"


@pytest.mark.parametrize(
    ("family", "byteorder", "checksum", "frames", "dtype"),
    [
        ("ipv4", "network", False, 1, "float64"),
        ("ipv4", "native", True, 16, "int32"),
        ("ipv6", "network", True, 16, "float64"),
        ("ipv6", "native", False, 1, "uint16"),
    ],
    ids=["ipv4-network", "ipv4-native-crc", "ipv6-network-crc", "ipv6-native"],
)
def test_round_trip_64mib(hosts, family, byteorder, checksum, frames, dtype):
    """64 MiB to the server and back (each array echoed), in one frame or sixteen."""
    s = spec(byteorder=byteorder, checksum=checksum, frames=frames, dtype=dtype, echo=True)
    sent, got = transfer(hosts, family, s, wait=120)
    assert_exact(got, s)  # what the server received
    assert_exact(sent, s)  # what came back to the client
    print(f"\n{family} {byteorder}: 64 MiB there and back in {sent['seconds']:.2f} s")


def test_rate_limited(hosts):
    """tbf at 400 Mbit/s on the sender's link: slower, still exact."""
    hosts.rate_limit(hosts.b, "400mbit")
    s = spec()
    _, got = transfer(hosts, "ipv4", s, wait=120)
    assert_exact(got, s)
    floor = NBYTES * 8 / 400e6
    assert got["seconds"] > 0.8 * floor, f"{got['seconds']:.2f} s: was the rate limit applied?"
    print(f"\n400mbit: 64 MiB in {got['seconds']:.2f} s (line rate {floor:.2f} s)")


def test_delay_loss_reordering(hosts):
    """20 ms delay (+-2 ms jitter), 1% loss and 25% reordering on the data path.

    How long it takes is the sender's congestion control's business: about 7 s with BBR
    (this machine's default), about 100 s with CUBIC -- the limits allow for both."""
    check_environment(delayer=True)
    # A bottleneck below what the Python delayer passes on a busy 2-core machine
    # (~100 Mbit/s): the standing queue then forms in tbf, as on a real path, and the
    # delayer holds packets for the time asked rather than for its own backlog.
    hosts.rate_limit(hosts.b, "80mbit")
    delayer = hosts.impair(hosts.a, loss_percent=1, delay_ms=20, jitter_ms=2, reorder=0.25, seed=7)
    s = spec(timeout=60.0)
    _, got = transfer(hosts, "ipv4", s, wait=300)
    assert_exact(got, s)
    lost = hosts.a.nft_counter("wirearray", "lost")
    delayer.stop()
    _, stats = delayer.json(timeout=CMD_TIMEOUT)
    cc = hosts.b.exec("sysctl", "-n", "net.ipv4.tcp_congestion_control").strip()
    packets = stats["packets"]
    print(
        f"\n20ms+1%loss+25%reorder ({cc}): 64 MiB in {got['seconds']:.1f} s; {packets} "
        f"packets delayed, {lost} dropped, {stats['out_of_order']} out of order, held "
        f"{stats['min_hold_ms']:.1f}/{stats['mean_hold_ms']:.1f}/{stats['max_hold_ms']:.1f} ms "
        f"(min/mean/max), delayer CPU {stats['cpu_seconds']:.1f} s"
    )
    # The impairments really happened, at about the rates asked for.
    assert packets > NBYTES / 1500 * 0.9
    assert 0.005 < lost / packets < 0.02
    assert 0.2 < stats["out_of_order"] / packets < 0.3
    assert stats["min_hold_ms"] >= 17.9


ACCEPTABLE = (TimeoutError, wirearray.TruncatedStreamError, OSError)


def error_class(name: str) -> type:
    return getattr(builtins, name, None) or getattr(wirearray, name)


@pytest.mark.parametrize(("how", "family"), [("down", "ipv4"), ("drop", "ipv6")])
def test_link_cut_mid_transfer(hosts, how, family):
    """The link dies with part of the stream delivered: both ends report a clear error
    within their timeout, never a short or wrong array, and refuse further use."""
    timeout = 5.0
    hosts.rate_limit(hosts.b, "100mbit")  # ~5.4 s for the stream: time to cut it
    s = spec(timeout=timeout, frames=1)
    server, client = start(hosts, family, s)
    deadline = time.monotonic() + 30
    while (received := hosts.a.rx_bytes()) < 4 * MiB:
        assert time.monotonic() < deadline, f"transfer did not start ({received} bytes)"
        time.sleep(0.02)
    hosts.cut(hosts.a, how)
    cut_at = time.monotonic()
    assert received < NBYTES * 3 // 4, "the stream was nearly complete before the cut"
    for end, proc in (("server", server), ("client", client)):
        at, result = proc.json(timeout=timeout + 30)
        assert not result["ok"], f"{end} reported success after the cut: {result}"
        assert issubclass(error_class(result["error"]), ACCEPTABLE), result
        assert result["after"] == "StreamBrokenError", result
        assert at - cut_at < timeout + 3, f"{end} took {at - cut_at:.1f} s to fail"
        print(f"\ncut ({how}): {end} {result['error']} after {at - cut_at:.1f} s")


def test_cleanup_after_failure():
    """A failing test body still leaves no namespace, interface or process behind."""
    check_environment()
    with pytest.raises(ZeroDivisionError), TwoHosts() as h:
        p = h.spawn(h.a, "-c", "import time; print('up', flush=True); time.sleep(600)")
        assert p.line(timeout=CMD_TIMEOUT)[1] == "up"
        1 / 0  # noqa: B018
    assert p.proc.returncode is not None
    assert not os.path.exists(f"/proc/{p.proc.pid}")
    assert h.a.ns not in namespaces() and h.b.ns not in namespaces()


def test_no_namespaces_left():
    """Runs last: every namespace this test run created is gone."""
    check_environment()
    mine = f"wa-{os.getpid()}-"
    assert [ns for ns in namespaces() if ns.startswith(mine)] == []
