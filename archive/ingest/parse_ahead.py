"""Hash and parse spooled instances in a separate process while the request goes on
receiving.

STOW-RS hands each part to `ParseAhead.submit` as soon as it is spooled and collects the
results after the closing boundary. Why a process and not a thread: header parsing is pure
Python and holds the GIL, so on a thread it mostly waited for the receiving thread (about
+5% instances/s); in a process it runs on another core (about +30%, bench/run_all.py).
The SHA-256 is computed there too, from the file just written (still in the page cache),
which takes a quarter of a millisecond per CT slice off the receiving thread. The spool
file's writeback is not started: it is plaintext, and it is removed as soon as it is
sealed into tier 1 (whose files do get their writeback started), before the flush, so
its pages mostly never reach the disk.
A parse process that dies costs a retry, never the web worker.

One pool per web worker process, made on first use (gunicorn forks workers, and a pool
does not survive a fork). Its processes start from a fork server that has the parser
imported already. `INGEST_PARSE_PROCESSES=0` parses on the request's own thread instead.
"""

import logging
import multiprocessing
import os
import signal
import threading
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

from archive.ingest import errors
from archive.ingest.errors import InvalidInstance
from archive.ingest.parse import ParsedInstance, parse_outcome
from archive.ingest.spool import file_sha256

log = logging.getLogger(__name__)
PRELOAD = ["archive.ingest.parse", "archive.ingest.spool"]

_lock = threading.Lock()
_pool: tuple[int, ProcessPoolExecutor] | None = None  # (pid that made it, pool)


@dataclass(frozen=True)
class Prepared:
    outcome: ParsedInstance | InvalidInstance  # the header, or why the file is refused
    sha256: str  # of the whole file


def prepare(path: Path, max_inflated_bytes: int) -> Prepared:
    """Runs in the parse process: hash the file, parse its header."""
    return Prepared(parse_outcome(path, max_inflated_bytes=max_inflated_bytes), file_sha256(path))


def _ignore_ctrl_c() -> None:
    """A parse process ends when its web worker shuts the pool down; Ctrl-C in `make run`'s
    terminal reaches the whole process group, and must not print a traceback from each."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _pool_get() -> ProcessPoolExecutor:
    global _pool
    with _lock:
        if _pool is None or _pool[0] != os.getpid():
            context = multiprocessing.get_context("forkserver")
            context.set_forkserver_preload(PRELOAD)
            _pool = (os.getpid(), ProcessPoolExecutor(settings.INGEST_PARSE_PROCESSES, mp_context=context,
                                                         initializer=_ignore_ctrl_c))
        return _pool[1]


def _pool_discard(broken: ProcessPoolExecutor) -> None:
    global _pool
    with _lock:
        if _pool is not None and _pool[1] is broken:
            _pool = None
    broken.shutdown(wait=False, cancel_futures=True)


def warm() -> None:
    """Start the parse process now (gunicorn's post_worker_init), not on the first upload."""
    if settings.INGEST_PARSE_PROCESSES > 0:
        _pool_get().submit(os.getpid).result()


class ParseAhead:
    """Hashes and parses files submitted in order; `result` gives each one's Prepared."""

    def __init__(self) -> None:
        self._limit = settings.INGEST_MAX_INFLATED_BYTES  # the caller's settings, not the child's
        self._futures: dict[Path, tuple[ProcessPoolExecutor, Future]] = {}

    def submit(self, path: Path) -> None:
        if settings.INGEST_PARSE_PROCESSES <= 0:
            return
        pool = _pool_get()
        try:
            self._futures[path] = (pool, pool.submit(prepare, path, self._limit))
        except BrokenProcessPool:
            _pool_discard(pool)  # result() parses this one again in a fresh pool

    def result(self, path: Path) -> Prepared:
        submitted = self._futures.pop(path, None)
        if submitted is None:
            return self._again(path)
        pool, future = submitted
        try:
            return future.result()
        except BrokenProcessPool:
            log.warning("the parse process stopped; parsing %s again in a new one", path.name)
            _pool_discard(pool)
            return self._again(path)

    def results(self, paths: list[Path]) -> list[Prepared]:
        """Each file's result, in order. Once the body is in, this thread has nothing else
        to do: it parses the files the parse process has not started, from the last one
        back, while the process works through the rest from the front."""
        here: dict[Path, Prepared] = {}
        for path in reversed(paths):
            submitted = self._futures.get(path)
            if submitted is not None and submitted[1].cancel():
                del self._futures[path]
                here[path] = prepare(path, self._limit)
        return [here[path] if path in here else self.result(path) for path in paths]

    def _again(self, path: Path) -> Prepared:
        if settings.INGEST_PARSE_PROCESSES <= 0:
            return prepare(path, self._limit)
        pool = _pool_get()
        try:
            return pool.submit(prepare, path, self._limit).result()
        except BrokenProcessPool:
            # Twice on this file: refuse it rather than risk parsing it in the web worker.
            _pool_discard(pool)
            return Prepared(InvalidInstance(errors.PROCESSING_FAILURE, "the header parser stopped on this instance"),
                            file_sha256(path))

    def close(self) -> None:
        """Cancel what has not started and wait for what has, so the caller can remove the
        files: a parse process never reads a file that is being deleted."""
        for _, future in self._futures.values():
            future.cancel()
        for _, future in self._futures.values():
            if not future.cancelled():
                try:
                    future.result()
                except BaseException:  # noqa: BLE001 - nobody wants these results any more
                    pass
        self._futures.clear()
