"""Scratch folders: where a process keeps the temporary files of transfers in progress
(spooled instances, DICOM data sets being received), under INGEST_TMP_DIR.

Each process writes into a folder of its own and holds an flock(2) on it for as long as
it lives. The kernel drops that lock when the process ends in any way, SIGKILL included,
so the sweep (`scratch_sweep`) knows for sure which folders no live process owns and
removes them whole, however young they are, and never touches the files of a transfer
that is still going on, however long it has been idle (a STOW body's parts wait on disk
until its last part is in)."""

import fcntl
import logging
import os
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path

from django.conf import settings

log = logging.getLogger(__name__)

OWNED_PREFIX = "p-"  # a folder a process owns (locked)
STAGING_PREFIX = ".new-"  # a folder being made, locked before it is renamed to p-...

_lock = threading.Lock()
_owned: dict[tuple[int, str], tuple[Path, int]] = {}  # (pid, root) -> (folder, locked fd)


def scratch_dir() -> Path:
    """This process's scratch folder under INGEST_TMP_DIR, made and locked on first use
    (again in a forked child, which must not share its parent's)."""
    root = Path(settings.INGEST_TMP_DIR)
    with _lock:
        owned = _owned.get((os.getpid(), str(root)))
        if owned is not None and owned[0].is_dir():
            return owned[0]
        if owned is not None:  # removed under us (an operator): start a new one
            os.close(owned[1])
        root.mkdir(parents=True, exist_ok=True)
        # Locked under a staging name first, so a sweep never finds it unlocked.
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=root))
        fd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)
        folder = root / f"{OWNED_PREFIX}{uuid.uuid4().hex}"
        os.rename(staging, folder)
        _owned[(os.getpid(), str(root))] = (folder, fd)
        return folder


def _remove(path: Path) -> int:
    """Remove a file or a folder tree; returns how many files went."""
    if path.is_dir() and not path.is_symlink():
        count = sum(len(files) for _, _, files in os.walk(path))
        shutil.rmtree(path, ignore_errors=True)
        return count
    path.unlink(missing_ok=True)
    return 1


def _unowned(folder: Path) -> bool:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False  # its process is alive
    finally:
        os.close(fd)
    return True


def scratch_sweep(*, loose_after_seconds: float | None = None) -> int:
    """Remove what no live process owns under INGEST_TMP_DIR: the folders of processes
    that ended (crashed, killed) at once, and anything else there (files of older
    versions, a staging folder of a process killed while making it) once it is older than
    `loose_after_seconds` (settings.SPOOL_SWEEP_AFTER_SECONDS). Returns files removed."""
    root = Path(settings.INGEST_TMP_DIR)
    if not root.is_dir():
        return 0
    age = settings.SPOOL_SWEEP_AFTER_SECONDS if loose_after_seconds is None else loose_after_seconds
    cutoff = time.time() - age
    removed = 0
    for entry in root.iterdir():
        try:
            if entry.name.startswith(OWNED_PREFIX) and entry.is_dir():
                if _unowned(entry):
                    removed += _remove(entry)
            elif entry.lstat().st_mtime < cutoff:
                removed += _remove(entry)
        except FileNotFoundError:
            continue
    if removed:
        log.info("removed %d files left in the spool by ended transfers", removed)
    return removed
