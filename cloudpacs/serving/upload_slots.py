"""How many uploads one client holds open at once, counted across every web process.

Each open upload holds one slot per key (its credential and its client address). A slot
is a one-byte lock (Linux open-file-description lock, F_OFD_SETLK) in one shared file:
the kernel drops it when the upload's file descriptor is closed or its process dies, so a
killed worker never leaves a client locked out, and nothing has to be cleaned up. Locks
lie far past the end of the (empty) file, at an offset drawn from a hash of the key.
"""

import fcntl
import hashlib
import os
import struct
from pathlib import Path

# struct flock on Linux: l_type, l_whence, l_start, l_len, l_pid (with native padding).
_FLOCK = "hhqqi"
_KEY_SPACE = 2**50  # offsets up to 2**50 * 64 stay well inside off_t
_SLOTS_PER_KEY = 64  # the most STOW_MAX_CONCURRENT may be


def _lock(fd: int, offset: int, kind: int) -> bool:
    try:
        fcntl.fcntl(fd, fcntl.F_OFD_SETLK, struct.pack(_FLOCK, kind, os.SEEK_SET, offset, 1, 0))
    except (BlockingIOError, PermissionError):
        return False
    return True


def _base(key: str) -> int:
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % _KEY_SPACE * _SLOTS_PER_KEY


class UploadSlots:
    """`acquire(keys)` takes a slot for each key or none; `release()` gives them back."""

    def __init__(self, path: Path, per_key: int) -> None:
        if not 0 < per_key <= _SLOTS_PER_KEY:
            raise ValueError(f"per-key limit must be 1 to {_SLOTS_PER_KEY}")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.per_key = per_key

    def acquire(self, keys: list[str]) -> int | None:
        """A descriptor holding one slot of every key, or None if one key has none free."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        for key in keys:
            base = _base(key)
            if not any(_lock(fd, base + i, fcntl.F_WRLCK) for i in range(self.per_key)):
                os.close(fd)  # gives back the slots of the keys before this one
                return None
        return fd

    @staticmethod
    def release(fd: int) -> None:
        os.close(fd)
