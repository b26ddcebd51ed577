"""Tier 1: the local disk where an instance lands before its encrypted copies reach both
regions. A file is fsynced here before the instance is acknowledged."""

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


def tier1_put(source: Path, key: str) -> Path:
    """Move a spooled file into tier 1 atomically and durably."""
    target = tier1_path(key)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.replace(source, target)
    except OSError:  # different file system: copy, then remove the source
        shutil.copyfile(source, target)
        with open(target, "rb") as fh:
            os.fsync(fh.fileno())
        os.unlink(source)
    dir_fd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return target


def tier1_exists(key: str) -> bool:
    return tier1_path(key).exists()


def tier1_delete(key: str) -> None:
    tier1_path(key).unlink(missing_ok=True)
