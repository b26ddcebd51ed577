"""The edge gateway's spool: the only state it has, one folder on the clinic's machine.

    incoming/   what pynetdicom is receiving (plaintext, removed once sealed; anything left
                here after a crash was never acknowledged and is removed at start)
    queue/      sealed instances waiting for the cloud, oldest first by name
    rejected/   instances the cloud refused for good, kept for a person to look at
    salt, lock, state.json

An instance is acknowledged to the modality only once it is sealed in queue/: encrypted
(streamed AES-GCM, `cloudpacs.objectstore.crypto`), written to a temporary name, fsynced,
renamed, and the folder fsynced. A queued file is removed only after the cloud answered
that it holds the instance. The key comes from the clinic's upload token (HKDF with the
spool's salt) and is never written down, so the spool's files read as noise without it.

A file's name is `<time in ns>-<digest of its SOP Instance UID>`: the cloud's answer names
instances by UID, and the UIDs themselves are not written in clear.
"""

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from cloudpacs.objectstore.crypto import (
    DecryptionError,
    decrypt_chunks,
    encrypt_chunks,
    plaintext_size,
    read_key_id,
)

__all__ = ["DecryptionError", "Entry", "Spool", "SpoolBusy", "uid_digest"]


class SpoolBusy(RuntimeError):
    """Another edge gateway runs on this spool."""


def uid_digest(sop_instance_uid: str) -> str:
    return hashlib.sha256(sop_instance_uid.encode()).hexdigest()[:24]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Entry:
    path: Path
    size: int
    queued_at: float  # seconds since the epoch

    @property
    def digest(self) -> str:
        return self.path.name.split("-", 1)[1]


class Spool:
    def __init__(self, root: Path, token: str):
        self.root = Path(root)
        self.incoming, self.queue, self.rejected = (self.root / n for n in ("incoming", "queue", "rejected"))
        for folder in (self.root, self.incoming, self.queue, self.rejected):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.key = self._derive_key(token)
        self.key_id = int.from_bytes(hashlib.sha256(self.key).digest()[:4], "big")
        self._lock_fd: int | None = None

    def _derive_key(self, token: str) -> bytes:
        salt_path = self.root / "salt"
        if not salt_path.exists():
            # Made once, durably, and never replaced: a lost salt makes the queue unreadable.
            tmp = self.root / f".salt-{os.getpid()}-{os.urandom(4).hex()}"
            with open(tmp, "wb") as out:
                out.write(os.urandom(16))
                out.flush()
                os.fsync(out.fileno())
            try:
                os.link(tmp, salt_path)  # fails if another start made it first: theirs stands
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
            _fsync_dir(self.root)
        hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt_path.read_bytes(), info=b"cloudpacs edge spool")
        return hkdf.derive(token.encode())

    # -- one process per spool ------------------------------------------------------------
    def lock(self) -> None:
        fd = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise SpoolBusy(f"another edge gateway is running on {self.root}") from None
        self._lock_fd = fd

    def sweep(self) -> int:
        """Remove what a killed process left: partly received data sets and partly sealed
        files. None of them was acknowledged to a modality."""
        removed = 0
        for path in [*self.incoming.iterdir(), *self.queue.glob(".tmp-*")]:
            path.unlink(missing_ok=True)
            removed += 1
        return removed

    # -- in ------------------------------------------------------------------------------------
    def put(self, plain: Path, sop_instance_uid: str) -> Entry:
        """Seal the received file into the queue, durably; the caller may then acknowledge."""
        name = f"{time.time_ns():020d}-{uid_digest(sop_instance_uid)}"
        tmp = self.queue / f".tmp-{name}"
        try:
            with open(plain, "rb") as src, open(tmp, "wb") as out:
                for chunk in encrypt_chunks(src, data_key=self.key, key_id=self.key_id):
                    out.write(chunk)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.queue / name)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.queue)
        path = self.queue / name
        return Entry(path, path.stat().st_size, time.time())

    # -- out -----------------------------------------------------------------------------------
    def entries(self) -> list[Entry]:
        """What waits for the cloud, oldest first."""
        found = []
        for path in sorted(self.queue.iterdir()):
            if path.name.startswith("."):
                continue
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            found.append(Entry(path, stat.st_size, int(path.name.split("-", 1)[0]) / 1e9))
        return found

    def sealed_here(self, entry: Entry) -> bool:
        """Sealed with this token's key? (A file sealed under a previous token waits for it.)"""
        with open(entry.path, "rb") as fh:
            try:
                return read_key_id(fh) == self.key_id
            except DecryptionError:
                return False

    def plain_size(self, entry: Entry) -> int:
        with open(entry.path, "rb") as fh:
            return plaintext_size(fh, entry.size)

    def plain_chunks(self, entry: Entry) -> Iterator[bytes]:
        def key_lookup(key_id: int) -> bytes:
            if key_id != self.key_id:
                raise DecryptionError("sealed with another token's key")
            return self.key

        with open(entry.path, "rb") as fh:
            yield from decrypt_chunks(fh, key_lookup=key_lookup)

    def done(self, entry: Entry) -> None:
        entry.path.unlink(missing_ok=True)

    def reject(self, entry: Entry, reason: str, code: int | None = None) -> None:
        """Keep an instance the cloud will never take, with why (no PHI in the note)."""
        target = self.rejected / entry.path.name
        # The note first: a file gone from the queue is either sent or noted as refused
        # (the migration reads it so), never both unknown.
        note = {"reason": reason, "code": code, "rejected_at": time.time()}
        note_path = target.with_name(target.name + ".json")
        note_path.write_text(json.dumps(note))
        try:
            os.replace(entry.path, target)
        except BaseException:
            note_path.unlink(missing_ok=True)  # still queued: a note would make it refused
            raise

    # -- how it stands -------------------------------------------------------------------------
    def rejected_entries(self) -> list[dict]:
        notes = []
        for path in sorted(self.rejected.glob("*.json")):
            try:
                notes.append({"file": path.name[:-5], **json.loads(path.read_text())})
            except (OSError, ValueError):
                continue
        return notes
