"""Hosts on one Linux machine: network namespaces joined by a veth pair (TwoHosts), or
any number of them on a Linux bridge (Bridge; tests/test_many_hosts.py).

``TwoHosts`` creates namespaces ``wa-<pid>-<n>-a`` and ``-b`` (unique per test run and
per test), one veth pair between them (``veth-a`` in a, ``veth-b`` in b; the pair is
created inside the namespaces and never exists in the caller's), and gives each end
addresses from documentation/ULA ranges that exist only in those namespaces:

    a: 10.213.0.1/24  fd00:77::1/64        b: 10.213.0.2/24  fd00:77::2/64

so no packet can reach any other network.  Impairments, all on one side's link:

* ``rate_limit``: a ``tbf`` qdisc (this kernel has no netem);
* ``impair``: random loss with an nftables ``numgen random`` rule, and delay, jitter and
  reordering by an NFQUEUE on the INPUT hook served by tests/nfq_delayer.py.  The queue
  rule is iptables' NFQUEUE target: this kernel lacks nft's own ``queue`` expression
  (CONFIG_NFT_QUEUE) but has the xtables target, which iptables-nft reaches through
  nft_compat.  Segmentation and receive offloads are switched off first, or the rules
  would see 64 KiB super-packets instead of wire-sized ones;
* ``cut``: the link goes down, or nftables drops everything.

Processes run in a namespace through ``ip netns exec`` with the Python running the
tests and the wirearray it imports (``PYTHONPATH``: the in-place build in src/ or the
installed package alike).  Each one gets SIGKILL if the test process dies
(PR_SET_PDEATHSIG), every wait is bounded, and ``close()`` -- called by the fixtures'
finalizers, also when a test fails -- kills the processes, deletes both namespaces
(which removes the veth pair) and checks that they are gone.  Namespaces left by a test
run that was itself killed (its pid no longer alive) are removed on the next run.

Requirements: Linux, root, iproute2, nftables, ethtool; iptables and NetfilterQueue for
delays.  When they are missing the tests skip, or fail under WIREARRAY_REQUIRE_HOSTS=1
(CI).  Nothing here changes the caller's namespace: no sysctl, rule or interface.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest

import wirearray

TESTS = os.path.dirname(os.path.abspath(__file__))
#: Where the wirearray under test lives: handed to the peers as PYTHONPATH.
PACKAGE_PARENT = os.path.dirname(os.path.dirname(os.path.abspath(wirearray.__file__)))
PREFIX = "wa-"
TOOLS = ("ip", "tc", "nft", "ethtool")
CMD_TIMEOUT = 30.0
_serial = itertools.count()


def required() -> bool:
    return os.environ.get("WIREARRAY_REQUIRE_HOSTS", "").strip() not in ("", "0")


def unavailable(reason: str) -> None:
    """Skip the test -- or fail it under WIREARRAY_REQUIRE_HOSTS=1."""
    if required():
        pytest.fail(f"two-host tests required but unavailable: {reason}", pytrace=False)
    pytest.skip(reason)


def check_environment(*, delayer: bool = False) -> None:
    """Skip (or fail) unless this machine can run the two-host tests."""
    if not sys.platform.startswith("linux"):
        unavailable("network namespaces need Linux")
    if os.geteuid() != 0:
        unavailable("network namespaces need root")
    missing = [t for t in TOOLS if shutil.which(t) is None]
    if missing:
        unavailable(f"missing {', '.join(missing)} (apt-get install iproute2 nftables ethtool)")
    if delayer and shutil.which("iptables") is None:
        unavailable("missing iptables (apt-get install iptables), for the NFQUEUE target")
    if delayer and importlib.util.find_spec("netfilterqueue") is None:
        unavailable("NetfilterQueue not installed (pip install NetfilterQueue)")


def run(*args: str, input: str | None = None, timeout: float = CMD_TIMEOUT) -> str:
    """Run a command; raise with its stderr if it fails; return its stdout."""
    r = subprocess.run(
        list(args), input=input, capture_output=True, text=True, timeout=timeout, check=False
    )
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
    return r.stdout


def namespaces() -> list[str]:
    out = run("ip", "-j", "netns", "list")
    return [n["name"] for n in json.loads(out or "[]")]


def _kill_namespace(ns: str) -> None:
    """Kill what still runs in ``ns`` (only processes this module started), delete it."""
    try:
        pids = run("ip", "netns", "pids", ns).split()
    except (RuntimeError, subprocess.TimeoutExpired):
        pids = []
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass
    subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=CMD_TIMEOUT)


def remove_stale() -> None:
    """Delete namespaces of earlier test runs whose process is gone (killed mid-test)."""
    for ns in namespaces():
        m = re.fullmatch(rf"{PREFIX}(\d+)-\d+-(?:[ab]|h\d+|br)", ns)
        if m and not os.path.exists(f"/proc/{m.group(1)}"):
            _kill_namespace(ns)


_PR_SET_PDEATHSIG = 1


@functools.cache
def _die_with_parent_hook() -> Any:
    """preexec_fn that makes a child die with the test process, or None off Linux.

    prctl is looked up here, in the parent, not in the child; ctypes is imported here
    (on first use), not at collection, so the rest of the suite runs on a Python
    built without ctypes (e.g. without libffi)."""
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (ImportError, OSError, TypeError, AttributeError):  # not Linux: tests skip anyway
        return None

    def die_with_parent() -> None:
        # Runs in the child between fork and exec (kept to one C call): SIGKILL when
        # the test process dies, so no peer or delayer outlives a killed test run.
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return die_with_parent


class Process:
    """A process in a namespace whose output lines are collected by threads, so every
    read can be bounded."""

    def __init__(self, ns: str, argv: list[str]):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [PACKAGE_PARENT] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else [])
        )
        env["PYTHONUNBUFFERED"] = "1"
        self.argv = argv
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            preexec_fn=_die_with_parent_hook(),
        )
        self._lines: queue.Queue = queue.Queue()
        self._err: list[str] = []
        self._threads = [
            threading.Thread(target=self._pump, args=(self.proc.stdout, True), daemon=True),
            threading.Thread(target=self._pump, args=(self.proc.stderr, False), daemon=True),
        ]
        for t in self._threads:
            t.start()

    def _pump(self, stream: Any, is_stdout: bool) -> None:
        for line in stream:
            if is_stdout:
                self._lines.put((time.monotonic(), line.rstrip("\n")))
            else:
                self._err.append(line)
        if is_stdout:
            self._lines.put((time.monotonic(), None))

    @property
    def stderr(self) -> str:
        return "".join(self._err)

    def line(self, timeout: float) -> tuple[float, str]:
        """The next stdout line and when it arrived (time.monotonic()); AssertionError
        with the process's stderr if none comes within ``timeout`` seconds."""
        try:
            at, line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(
                f"no output from {self.argv[1:3]} within {timeout:.0f} s; stderr:\n{self.stderr}"
            ) from None
        if line is None:
            self.proc.wait(timeout=CMD_TIMEOUT)
            for t in self._threads:
                t.join(timeout=CMD_TIMEOUT)
            raise AssertionError(
                f"{self.argv[1:3]} exited {self.proc.returncode} early; stderr:\n{self.stderr}"
            )
        return at, line

    def json(self, timeout: float) -> tuple[float, dict]:
        at, line = self.line(timeout)
        return at, json.loads(line)

    def stop(self, timeout: float = 10.0) -> None:
        """Close stdin, SIGTERM, and SIGKILL after ``timeout`` seconds."""
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()
                self.proc.terminate()
                self.proc.wait(timeout=timeout)
            except (OSError, subprocess.TimeoutExpired):
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=timeout)


class Host:
    """One end of the link: a namespace, its interface and addresses."""

    def __init__(self, ns: str, ifname: str, ipv4: str, ipv6: str):
        self.ns, self.ifname, self.ipv4, self.ipv6 = ns, ifname, ipv4, ipv6

    def __repr__(self) -> str:
        return f"<Host {self.ns} {self.ifname} {self.ipv4} {self.ipv6}>"

    def ip(self, *args: str) -> str:
        return run("ip", "-n", self.ns, *args)

    def exec(self, *args: str, input: str | None = None) -> str:
        return run("ip", "netns", "exec", self.ns, *args, input=input)

    def address(self, family: str) -> str:
        return self.ipv4 if family == "ipv4" else f"[{self.ipv6}]"

    def rx_bytes(self) -> int:
        link = json.loads(self.ip("-j", "-s", "link", "show", "dev", self.ifname))[0]
        return int(link["stats64"]["rx"]["bytes"])

    def nft_counter(self, table: str, name: str) -> int:
        out = json.loads(self.exec("nft", "-j", "list", "counter", "inet", table, name))
        return next(int(x["counter"]["packets"]) for x in out["nftables"] if "counter" in x)


class Namespaces:
    """Network namespaces made for one test: the processes run in them, the
    impairments of their links, and the cleanup.  Subclasses build the topology in
    ``setup()`` and list the hosts in ``hosts``."""

    def __init__(self) -> None:
        self.tag = f"{PREFIX}{os.getpid()}-{next(_serial)}"
        self.hosts: list[Host] = []
        self.processes: list[Process] = []
        self._created: list[str] = []

    def __enter__(self):
        try:
            self.setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def setup(self) -> None:
        raise NotImplementedError

    def _namespace(self, ns: str) -> None:
        try:
            run("ip", "netns", "add", ns)
        except RuntimeError as exc:
            unavailable(f"cannot create a network namespace: {exc}")
        self._created.append(ns)

    @staticmethod
    def _up(h: Host) -> None:
        h.ip("addr", "add", f"{h.ipv4}/24", "dev", h.ifname)
        # nodad: usable at once, no duplicate-address detection wait
        h.ip("addr", "add", f"{h.ipv6}/64", "dev", h.ifname, "nodad")
        h.ip("link", "set", "lo", "up")
        h.ip("link", "set", h.ifname, "up")

    def close(self) -> None:
        """Stop every process, delete every namespace (and so every link), and check
        that nothing is left.  Safe to call twice and after a failed setup."""
        errors = []
        for p in self.processes:
            p.stop()
            if p.proc.poll() is None:
                errors.append(f"process {p.proc.pid} survived")
        self.processes.clear()
        for ns in self._created:
            _kill_namespace(ns)
        left = [ns for ns in self._created if ns in namespaces()]
        self._created.clear()
        if left:
            errors.append(f"namespaces left: {left}")
        if errors:
            raise RuntimeError("; ".join(errors))

    # ---- processes ----

    def spawn(self, host: Host, *argv: str) -> Process:
        p = Process(host.ns, [sys.executable, *argv])
        self.processes.append(p)
        return p

    # ---- impairments ----

    def offloads_off(self) -> None:
        """Segment in the stack, not in (virtual) hardware: one skb per wire packet."""
        for h in self.hosts:
            h.exec("ethtool", "-K", h.ifname, "tso", "off", "gso", "off", "gro", "off")

    def rate_limit(self, host: Host, rate: str) -> None:
        """Limit what ``host`` sends to ``rate`` (a tc rate: "400mbit") with tbf."""
        try:
            host.exec(
                "tc", "qdisc", "add", "dev", host.ifname, "root",
                "tbf", "rate", rate, "burst", "128kb", "latency", "100ms",
            )  # fmt: skip
        except RuntimeError as exc:
            unavailable(f"tc tbf not usable: {exc}")

    def impair(
        self,
        host: Host,
        *,
        loss_percent: int = 0,
        delay_ms: float = 0.0,
        jitter_ms: float = 0.0,
        reorder: float = 0.0,
        reorder_distance: int = 3,
        queue_num: int = 0,
        seed: int | None = None,
    ) -> Process | None:
        """Impair the TCP packets ``host`` receives: drop ``loss_percent`` of them (nft
        counter ``inet wirearray lost``), then hold the rest in tests/nfq_delayer.py
        (an iptables NFQUEUE rule on INPUT).
        Returns the delayer (its statistics come as one JSON line after ``stop()``)."""
        self.offloads_off()
        delayer = None
        if delay_ms or jitter_ms or reorder:
            delayer = self.spawn(
                host,
                os.path.join(TESTS, "nfq_delayer.py"),
                "--queue", str(queue_num),
                "--delay-ms", str(delay_ms),
                "--jitter-ms", str(jitter_ms),
                "--reorder", str(reorder),
                "--reorder-distance", str(reorder_distance),
                "--lifetime", "900",
                *(["--seed", str(seed)] if seed is not None else []),
            )  # fmt: skip
            _, line = delayer.line(timeout=CMD_TIMEOUT)
            assert line == "ready", line
        if loss_percent:
            rule = (
                f'iifname "{host.ifname}" meta l4proto tcp '
                f"numgen random mod 100 < {loss_percent} counter name lost drop"
            )
            # priority -10: before the iptables filter chain below, so lost packets
            # never reach the delayer
            self._nft(host, "wirearray", "input", [rule], priority=-10, counters=("lost",))
        if delayer:
            # The kernel here has no nft "queue" expression (CONFIG_NFT_QUEUE), but has
            # the xtables NFQUEUE target, which iptables(-nft) uses through nft_compat.
            # No --queue-bypass: if the delayer dies, packets stop instead of skipping it.
            for tool in ("iptables", "ip6tables"):
                try:
                    host.exec(
                        tool, "-A", "INPUT", "-i", host.ifname, "-p", "tcp",
                        "-j", "NFQUEUE", "--queue-num", str(queue_num),
                    )  # fmt: skip
                except RuntimeError as exc:
                    unavailable(f"NFQUEUE target not usable: {exc}")
        return delayer

    def cut(self, host: Host, how: str) -> None:
        """Cut ``host``'s link: "down" (ip link set down) or "drop" (nft drops all)."""
        if how == "down":
            host.ip("link", "set", host.ifname, "down")
        elif how == "drop":
            rules = {
                "input": f'iifname "{host.ifname}" drop',
                "output": f'oifname "{host.ifname}" drop',
            }
            for hook, rule in rules.items():
                self._nft(host, f"wirearray_cut_{hook}", hook, [rule], priority=-100)
        else:
            raise ValueError(how)

    def restore(self, host: Host, how: str) -> None:
        """Undo ``cut(host, how)``: the link comes back up, or the drop rules go."""
        if how == "down":
            host.ip("link", "set", host.ifname, "up")
        elif how == "drop":
            for hook in ("input", "output"):
                host.exec("nft", "delete", "table", "inet", f"wirearray_cut_{hook}")
        else:
            raise ValueError(how)

    def _nft(
        self,
        host: Host,
        table: str,
        hook: str,
        rules: list[str],
        priority: int = 0,
        counters: tuple[str, ...] = (),
    ) -> None:
        body = "\n".join(f"    {r}" for r in rules)
        decls = "".join(f"  counter {c} {{ }}\n" for c in counters)
        ruleset = (
            f"table inet {table} {{\n{decls}"
            f"  chain {hook} {{\n    type filter hook {hook} priority {priority}; policy accept;\n"
            f"{body}\n  }}\n}}\n"
        )
        try:
            host.exec("nft", "-f", "-", input=ruleset)
        except RuntimeError as exc:
            unavailable(f"nftables rule not accepted ({exc}):\n{ruleset}")


class TwoHosts(Namespaces):
    """Namespaces ``a`` and ``b`` joined by a veth pair; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        self.a = Host(f"{self.tag}-a", "veth-a", "10.213.0.1", "fd00:77::1")
        self.b = Host(f"{self.tag}-b", "veth-b", "10.213.0.2", "fd00:77::2")
        self.hosts = [self.a, self.b]

    def setup(self) -> None:
        remove_stale()
        a, b = self.a, self.b
        for h in (a, b):
            self._namespace(h.ns)
        try:
            a.ip("link", "add", a.ifname, "type", "veth", "peer", "name", b.ifname, "netns", b.ns)
        except RuntimeError as exc:
            unavailable(f"cannot create a veth pair: {exc}")
        for h in (a, b):
            self._up(h)

    def peer(self, host: Host, role: str, address: str, spec: dict) -> Process:
        """tests/hosts_peer.py in ``host``: ``role`` is "serve" or "send"."""
        return self.spawn(
            host, os.path.join(TESTS, "hosts_peer.py"), role, address, json.dumps(spec)
        )


class Bridge(Namespaces):
    """``n`` hosts on one Ethernet segment: namespaces ``h0`` .. ``h<n-1>``, each with an
    interface ``eth0`` that is one end of a veth pair whose other end (``p<i>``) is a
    port of a Linux bridge in a namespace of its own (``br``, the switch).  Host ``i``
    has 10.213.0.<i+1>/24 and fd00:77::<i+1>/64.  A link cut or an impairment on one
    host's ``eth0`` leaves the others' traffic alone."""

    def __init__(self, n: int) -> None:
        super().__init__()
        if not 2 <= n <= 200:
            raise ValueError("2 to 200 hosts")
        self.hosts = [
            Host(f"{self.tag}-h{i}", "eth0", f"10.213.0.{i + 1}", f"fd00:77::{i + 1:x}")
            for i in range(n)
        ]
        self.switch = f"{self.tag}-br"

    def __getitem__(self, i: int) -> Host:
        return self.hosts[i]

    def setup(self) -> None:
        remove_stale()
        self._namespace(self.switch)
        for h in self.hosts:
            self._namespace(h.ns)
        br = ("ip", "-n", self.switch)
        try:
            run(*br, "link", "add", "br0", "type", "bridge")
        except RuntimeError as exc:
            unavailable(f"cannot create a bridge: {exc}")
        run(*br, "link", "set", "br0", "up")
        for i, h in enumerate(self.hosts):
            port = f"p{i}"
            run(*br, "link", "add", port, "type", "veth", "peer", "name", h.ifname, "netns", h.ns)
            run(*br, "link", "set", port, "master", "br0")
            run(*br, "link", "set", port, "up")
            self._up(h)
