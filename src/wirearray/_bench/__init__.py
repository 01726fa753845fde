"""The benchmark harness behind ``wirearray bench`` and ``wirearray demo``: private, and
not part of the library.

It ships in the wheel so that those commands run from an installed package, but
``import wirearray`` never loads it (tests/test_cli_bench.py checks); only the command
line imports it, lazily, when one of those commands runs.  It depends on wirearray,
never the other way round, and uses the public API (``wirearray.Channel``,
``wirearray.auth``, ...) except where a module header says otherwise.

* :mod:`.peers` -- the streaming methods (both sides of each: the raw ceiling,
  wirearray, and the peers users pick instead) and the receiving process;
* :mod:`.stream` -- ``bench stream``: the interleaved runs, the tables, JSON, targets;
* :mod:`.demo` -- ``demo``: the raw ceiling and wirearray's byte orders, on the same
  receiving process and methods;
* :mod:`.kernels` -- ``bench kernels`` and ``demo --kernels``: the byte-order kernels
  against numpy;
* :mod:`.plot` -- ``--plot`` (matplotlib, optional).

The pytest-benchmark suites in bench/ import :mod:`.peers` and :mod:`.stream` too, so the
command line and pytest measure the same code.  Optional packages (pyzmq, pyarrow,
trustme, matplotlib: the ``bench`` extra) are imported where used; a missing one skips
its method with a one-line reason.
"""
