"""Checking an encrypted copy: read it back, decrypt it, compare with the index.

A copy is good when every segment authenticates and the plaintext has the size and
SHA-256 recorded at ingest. The ciphertext checksum is recorded too, for comparisons
between regions without keys."""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from archive.storage.keys import KeyUnavailable, data_key_for
from cloudpacs.objectstore import crypto
from cloudpacs.objectstore.objects import ObjectMissing, object_open


@dataclass
class CopyCheck:
    ok: bool
    problem: str = ""  # "missing" | "corrupt" | "" ; other failures raise
    detail: str = ""
    cipher_sha256: str = ""
    cipher_size: int = 0
    key_id: int | None = None


class Tee:
    """Hashes and counts what passes through."""

    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self.sha256 = hashlib.sha256()
        self.size = 0

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        self.sha256.update(data)
        self.size += len(data)
        return data


def copy_check(instance, region: str, *, key_lookup: Callable[[int], bytes] | None = None) -> CopyCheck:
    """Read one region's copy of `instance` end to end. Storage errors propagate."""
    try:
        stream = object_open(region, instance.storage_key)
    except ObjectMissing as exc:
        return CopyCheck(False, "missing", str(exc))
    try:
        return stream_check(instance, stream, key_lookup=key_lookup)
    finally:
        close = getattr(stream, "close", None)
        if close:
            close()


def stream_check(instance, stream: BinaryIO, *, key_lookup: Callable[[int], bytes] | None = None) -> CopyCheck:
    """Read an encrypted copy of `instance` from `stream` (a region's object, or the tier-1
    file) to its end, decrypt it and compare it with the index; the caller closes it.
    `key_lookup` (key id -> data key of the instance's clinic) lets a batch look each key
    up once."""
    tee = Tee(stream)
    plain_sha, plain_size, key_id = hashlib.sha256(), 0, None

    def lookup(kid: int) -> bytes:
        nonlocal key_id
        key_id = kid
        if key_lookup is not None:
            return key_lookup(kid)
        return data_key_for(tenant_id=instance.tenant_id, key_id=kid)

    try:
        for chunk in crypto.decrypt_chunks(tee, key_lookup=lookup):
            plain_sha.update(chunk)
            plain_size += len(chunk)
    except crypto.DecryptionError as exc:
        return CopyCheck(False, "corrupt", str(exc), key_id=key_id)
    except KeyUnavailable as exc:
        # A header naming another clinic's or an unknown key is a bad copy, but a master
        # key that does not match is a configuration error: raise, do not "repair".
        if "unknown" in str(exc):
            return CopyCheck(False, "corrupt", str(exc), key_id=key_id)
        raise
    if plain_size != instance.size_bytes or plain_sha.hexdigest() != instance.sha256:
        return CopyCheck(False, "corrupt", "decrypted content does not match the checksum "
                         "recorded at ingest", key_id=key_id)
    return CopyCheck(True, cipher_sha256=tee.sha256.hexdigest(), cipher_size=tee.size, key_id=key_id)
