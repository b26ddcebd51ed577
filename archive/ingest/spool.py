"""Spool an incoming instance to a temporary file while hashing it, never holding it in memory."""

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

from django.conf import settings

from archive.storage.scratch import scratch_dir


class TooLarge(Exception):
    def __init__(self, limit: int):
        super().__init__(f"larger than the limit of {limit} bytes")
        self.limit = limit


def spool_dir() -> Path:
    """This process's own folder under INGEST_TMP_DIR: whatever a crash leaves in it is
    swept as soon as the process is gone (archive.storage.scratch)."""
    return scratch_dir()


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    """The SHA-256 of a complete file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


class SpooledFile:
    """A temporary file being filled chunk by chunk. Removed on close unless claimed.

    `claim()` hands the path over to whoever moves it into storage. With hashed=False the
    caller hashes the complete file elsewhere and hands in the digest (`digest_set`): STOW-RS
    does so in its parse process, off the thread that receives the body."""

    def __init__(self, max_bytes: int | None = None, *, hashed: bool = True):
        self.max_bytes = max_bytes if max_bytes is not None else settings.INGEST_MAX_INSTANCE_BYTES
        fd, name = tempfile.mkstemp(prefix="spool-", suffix=".dcm", dir=spool_dir())
        self.path = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256() if hashed else None
        self._digest: str | None = None
        self.size = 0
        self._claimed = False

    @classmethod
    def adopt(cls, path: Path, max_bytes: int | None = None, chunk_size: int = 1 << 20) -> "SpooledFile":
        """Take over a complete file written by someone else (the DICOM gateway's received
        dataset): hash it and move it into the spool without copying its bytes."""
        spooled = cls.__new__(cls)
        spooled.max_bytes = max_bytes if max_bytes is not None else settings.INGEST_MAX_INSTANCE_BYTES
        spooled.size = path.stat().st_size
        if spooled.size > spooled.max_bytes:
            raise TooLarge(spooled.max_bytes)
        spooled._hash = None
        spooled._digest = file_sha256(path, chunk_size)
        spooled._claimed = False
        spooled.path = spool_dir() / f"spool-{os.urandom(8).hex()}.dcm"
        try:
            os.replace(path, spooled.path)
        except OSError:  # another file system
            shutil.copyfile(path, spooled.path)
        spooled._file = None  # complete: nothing more is written
        return spooled

    def write(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise TooLarge(self.max_bytes)
        if self._hash is not None:
            self._hash.update(chunk)
        self._file.write(chunk)

    def finish(self) -> None:
        """Close the file. Durability comes later, once per batch, when tier 1 is flushed
        (archive.storage.tier1.tier1_flush) before the instances are acknowledged."""
        if self._file is not None and not self._file.closed:
            self._file.close()

    @property
    def sha256(self) -> str:
        if self._digest is not None:
            return self._digest
        if self._hash is None:
            raise RuntimeError("this spooled file is hashed by its caller, who has not said the digest yet")
        return self._hash.hexdigest()

    def digest_set(self, sha256: str) -> None:
        """The SHA-256 of the complete file, computed by whoever read it back."""
        self._digest = sha256

    def claim(self) -> Path:
        self.finish()
        self._claimed = True
        return self.path

    def close(self) -> None:
        if self._file is not None and not self._file.closed:
            self._file.close()
        if not self._claimed:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "SpooledFile":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def spool_chunks(chunks: Iterable[bytes], max_bytes: int | None = None) -> SpooledFile:
    """Spool an iterable of chunks; the caller closes the returned file."""
    spooled = SpooledFile(max_bytes)
    try:
        for chunk in chunks:
            spooled.write(chunk)
        spooled.finish()
    except BaseException:
        spooled.close()
        raise
    return spooled


def spool_path(path: Path, max_bytes: int | None = None, chunk_size: int = 1 << 20) -> SpooledFile:
    """Copy a file on disk (a zip member extracted, a gateway's received file) into the spool."""
    def chunks():
        with open(path, "rb") as source:
            while chunk := source.read(chunk_size):
                yield chunk

    return spool_chunks(chunks(), max_bytes)
