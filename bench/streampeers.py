"""The streaming methods and the receiving process used by bench_stream.py.

They live in the package, in wirearray._bench.peers (both sides of every method, the
control protocol, the receiving process), so that ``python -m wirearray bench stream``
runs the very same code from an installed wheel; this module re-exports them for the
benchmarks.
"""

from wirearray._bench.peers import (
    AUTHKEY,
    CEILING,
    METHODS,
    Link,
    Method,
    Run,
    StreamServer,
    dtype_spec,
    make_array,
    tls_unavailable,
    unavailable,
)

__all__ = [
    "AUTHKEY",
    "CEILING",
    "METHODS",
    "Link",
    "Method",
    "Run",
    "StreamServer",
    "dtype_spec",
    "make_array",
    "tls_unavailable",
    "unavailable",
]
