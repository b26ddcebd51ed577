"""Reading an instance's bytes. Every reader (WADO, C-GET, export, viewer) goes through
`open_instance`, so where the bytes come from is decided in one place: tier 1 when the
file is there, else the encrypted copy in the primary and then the secondary region,
checked against the ingest checksum and kept in tier 1 (archive/storage/tiers.py).
Either way the caller gets a seekable file object of the plaintext, decrypted segment by
segment as it reads."""

import logging
from collections.abc import Iterator
from typing import BinaryIO

from archive.models import Instance
from archive.storage.keys import data_key_for
from archive.storage.tier1 import tier1_open
from archive.storage.tiers import InstanceUnavailable, instance_local_path
from cloudpacs.objectstore.crypto import DecryptionError

__all__ = ["InstanceUnavailable", "StoredBytes", "open_instance", "stored_chunks"]

log = logging.getLogger(__name__)


def open_instance(instance, *, keys: dict | None = None) -> BinaryIO:
    """A seekable binary file object positioned at the start of the Part 10 file; the
    caller closes it.

    `instance` needs `storage_key` and `tenant_id` (an Instance, or any object carrying
    them; without `tenant_id` the Instance row is looked up by its key). `keys` is a dict
    a caller that opens many instances in one request (a series) keeps for the request:
    each data key is then looked up once, not once per instance (the look-up is a query
    that cost more than decrypting a CT slice)."""
    if getattr(instance, "tenant_id", None) is None:
        instance = Instance.unscoped.filter(storage_key=instance.storage_key).first()
        if instance is None:
            raise InstanceUnavailable("no instance with this storage key")
    tenant_id = instance.tenant_id

    def key_lookup(key_id: int) -> bytes:
        if keys is None:
            return data_key_for(tenant_id=tenant_id, key_id=key_id)
        if (tenant_id, key_id) not in keys:
            keys[(tenant_id, key_id)] = data_key_for(tenant_id=tenant_id, key_id=key_id)
        return keys[(tenant_id, key_id)]

    try:
        return tier1_open(instance.storage_key, key_lookup=key_lookup)
    except FileNotFoundError:
        pass
    except DecryptionError as exc:  # a damaged tier-1 file: read a region's copy instead
        log.warning("tier-1 file of instance %s is unreadable (%s); reading a region copy",
                    getattr(instance, "pk", "?"), exc)
    # Not in tier 1 (evicted, or a lost local disk): fetch from the regions.
    if not isinstance(instance, Instance) or not instance.sha256:
        instance = Instance.unscoped.filter(storage_key=instance.storage_key).first()
        if instance is None:
            raise InstanceUnavailable("no instance with this storage key")
    instance_local_path(instance, refresh=True)
    return tier1_open(instance.storage_key, key_lookup=key_lookup)


class StoredBytes:
    """The instance's Part 10 bytes as stored, opened when first read (a zip or a series of
    a thousand instances holds one file open at a time) and closed at its end. Iterate it
    for chunks, or `readinto` a caller's buffer: a response that fills its send buffers
    this way has segments decrypted straight into them.

    A file whose size is not the indexed one raises InstanceUnavailable: a response that
    announced that size (its Content-Length, a zip header) must end broken rather than
    shift every byte after it."""

    def __init__(self, instance, *, keys: dict | None = None, chunk_size: int = 1 << 20) -> None:
        self._instance, self._keys, self._chunk_size = instance, keys, chunk_size
        self._fh = None
        self._done = False

    def _open(self):
        if self._fh is None and not self._done:
            fh = open_instance(self._instance, keys=self._keys)
            if fh.size != self._instance.size_bytes:
                fh.close()
                raise InstanceUnavailable(f"instance {self._instance.pk} reads {fh.size} bytes, "
                                          f"indexed as {self._instance.size_bytes}")
            self._fh = fh
        return self._fh

    def readinto(self, buffer) -> int:
        """Bytes put in `buffer`; 0 at the end, when the file is closed."""
        try:
            fh = self._open()
            if fh is None:
                return 0
            n = fh.readinto(buffer)
        except BaseException:  # a damaged segment, a read error: the file goes now, not at GC
            self.close()
            raise
        if n == 0:
            self.close()
        return n

    def __iter__(self) -> Iterator[bytes]:
        fh = self._open()
        try:
            while fh is not None and (chunk := fh.read(self._chunk_size)):
                yield chunk
        finally:
            self.close()

    def close(self) -> None:
        self._done = True
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def stored_chunks(instance, *, keys: dict | None = None, chunk_size: int = 1 << 20) -> Iterator[bytes]:
    """The instance's Part 10 bytes as stored, in chunks (see StoredBytes)."""
    return iter(StoredBytes(instance, keys=keys, chunk_size=chunk_size))
