"""Worker processes for git work that holds Python's lock: one pool per stablectl process,
one worker per core, started when first asked for and kept for the process's life.

libgit2's file merge lets other threads run, but reading objects, diffing, writing trees and
the Python around them do not: picks computed ahead in threads (controller/pick_ahead.py)
shared one core on a far line. A worker process has a core of its own. Workers are started
with "spawn" (never fork a process that holds threads, sqlite handles and libgit2's locks),
so a worker opens its own repository handles (`PickerSpec.open`), reads what the parent wrote
from the object database on disk, and writes what it makes there (loose objects: the same
objects a pick in the parent would have written). Nothing is sent to a worker that is not
plain data.

A pool that cannot start (no processes allowed here) or that broke (a worker killed) answers
None and is not asked again: the caller does the work in its own process, as before.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_pool: ProcessPoolExecutor | None = None
_size = 0
_broken = False


def cores() -> int:
    return os.cpu_count() or 1


def submit(fn: Callable[..., T], *args: Any, workers: int | None = None) -> Future[T] | None:
    """`fn(*args)` in a worker process (fn a module-level function, args plain data), or None
    when no pool can run it (the caller then runs it itself)."""
    global _pool, _size, _broken
    want = max(1, workers or cores())
    with _lock:
        if _broken:
            return None
        if _pool is None or _size < want:
            if _pool is not None:
                _pool.shutdown(wait=False, cancel_futures=False)
            try:
                _pool = ProcessPoolExecutor(
                    max_workers=want, mp_context=multiprocessing.get_context("spawn")
                )
            except (OSError, ValueError, NotImplementedError):
                _broken = True
                return None
            _size = want
        try:
            return _pool.submit(fn, *args)
        except (BrokenProcessPool, RuntimeError, OSError):
            _broken = True
            return None


def result(future: Future[T]) -> T | None:
    """A submitted job's answer; None (and the pool not used again) if the pool broke under
    it. An exception the job raised is raised here."""
    global _broken
    try:
        return future.result()
    except BrokenProcessPool:
        with _lock:
            _broken = True
        return None


def shutdown() -> None:
    """Stop the workers (tests; the interpreter also stops them at exit)."""
    global _pool, _size, _broken
    with _lock:
        if _pool is not None:
            _pool.shutdown(wait=True, cancel_futures=True)
        _pool, _size, _broken = None, 0, False
