"""Address parsing shared by the blocking and asyncio transports.

Accepted forms (docs in README "Transport"):

* ``("host", port)`` -- a name or an IPv4/IPv6 literal, resolved with getaddrinfo;
* ``"host:port"`` -- the same as a string; IPv6 literals in brackets: ``"[::1]:5555"``;
* ``"unix:/path/to/socket"`` -- a UNIX stream (or datagram) socket; on Linux
  ``"unix:@name"`` is an abstract-namespace socket.

Port 0 asks the OS for a free port (read the bound one from ``Listener.address``).

URL forms (``tcp://host:port``, ``unix:///path``) are refused with the spelling to
use instead, rather than accepted as synonyms: in this project ``tcp://`` and
``ipc://`` name ZeroMQ endpoints (``wirearray.zmq``, ``--zmq``), and accepting them
here too would let the same string mean a ZeroMQ socket in one place and a plain
wirearray channel in another.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .exceptions import AddressError

if TYPE_CHECKING:
    from ._types import Address

__all__ = ["Endpoint", "format_address", "parse_address"]


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A parsed address: either (host, port) for IP or a UNIX path."""

    host: str | None = None
    port: int | None = None
    path: str | None = None

    @property
    def is_unix(self) -> bool:
        return self.path is not None

    def resolve(self, socktype: int, *, passive: bool = False) -> list[tuple[Any, ...]]:
        """getaddrinfo results ``(family, type, proto, canonname, sockaddr)`` for IP
        endpoints; a single AF_UNIX entry for UNIX ones."""
        if self.path is not None:
            if not hasattr(socket, "AF_UNIX"):
                raise AddressError("UNIX sockets are not available on this platform")
            path = "\0" + self.path[1:] if self.path.startswith("@") else self.path
            return [(socket.AF_UNIX, socktype, 0, "", path)]
        flags = socket.AI_PASSIVE if passive else 0
        try:
            return socket.getaddrinfo(self.host, self.port, 0, socktype, 0, flags)
        except socket.gaierror as exc:
            raise AddressError(f"cannot resolve {self.host!r}: {exc.strerror}") from exc


def parse_address(address: object) -> Endpoint:
    """Parse any accepted address form into an :class:`Endpoint`.

    Raises:
        AddressError: not an accepted form (also a ValueError).
    """
    if isinstance(address, Endpoint):
        return address
    if isinstance(address, tuple):
        if len(address) < 2 or not isinstance(address[0], str):
            raise AddressError(f"an IP address is (host, port), not {address!r}")
        return Endpoint(host=address[0] or None, port=_port(address[1], address))
    if not isinstance(address, str):
        raise AddressError(
            f"an address is (host, port), 'host:port' or 'unix:/path', not {address!r}"
        )
    scheme, sep, rest = address.partition("://")
    if sep and scheme.isalpha():
        raise AddressError(_url_hint(address, scheme.lower(), rest))
    if address.startswith("unix:"):
        path = address[5:]
        if not path:
            raise AddressError("'unix:' needs a path, e.g. 'unix:/tmp/wirearray.sock'")
        return Endpoint(path=path)
    if address.startswith("["):
        host, sep, rest = address[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise AddressError(f"an IPv6 address is written '[addr]:port', not {address!r}")
        return Endpoint(host=host, port=_port(rest[1:], address))
    host, sep, port = address.rpartition(":")
    if not sep:
        raise AddressError(f"address {address!r} lacks ':port' (or 'unix:' for a UNIX socket)")
    if ":" in host:
        raise AddressError(f"write IPv6 addresses in brackets: '[{host}]:{port}'")
    return Endpoint(host=host or None, port=_port(port, address))


def _url_hint(address: str, scheme: str, rest: str) -> str:
    """The message for a URL-style address: what to write instead."""
    if scheme in ("unix", "ipc"):
        instead = f"'unix:{rest}'"
    elif scheme in ("tcp", "udp"):
        instead = f"'{rest}'"
    else:
        instead = "'host:port' or 'unix:/path'"
    zmq = (
        " (tcp:// and ipc:// endpoints are ZeroMQ's: wirearray.zmq)"
        if scheme in ("tcp", "ipc")
        else ""
    )
    return f"{address!r} is a URL; write the address as {instead}{zmq}"


def _port(value: Any, address: Any) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise AddressError(f"bad port {value!r} in {address!r}") from None
    if not 0 <= port <= 65535:
        raise AddressError(f"port {port} out of range in {address!r}")
    return port


def format_address(family: int, sockaddr: Any) -> Address:
    """What ``Listener.address`` reports: ``(host, port)`` for IP, ``"unix:/path"`` else."""
    if hasattr(socket, "AF_UNIX") and family == socket.AF_UNIX:
        if isinstance(sockaddr, bytes):
            sockaddr = sockaddr.decode("utf-8", "surrogateescape")
        if sockaddr.startswith("\0"):
            sockaddr = "@" + sockaddr[1:]
        return f"unix:{sockaddr}"
    return (sockaddr[0], sockaddr[1])
