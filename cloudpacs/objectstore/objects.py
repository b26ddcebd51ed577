"""Object I/O in a region, streaming both ways.

Writes go through the Django storage API. Reads of S3 regions use boto3's streaming body
directly, because django-storages' S3File buffers a whole object in a temporary file
before the first byte (in memory with the default max_memory_size)."""

import base64
import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator
from typing import BinaryIO

from django.core.files import File

from cloudpacs.objectstore.regions import region_storage


class ObjectMissing(Exception):
    pass


class ObjectCorrupt(Exception):
    """The region holds other bytes than were sent (the store refused them, or read back
    they hash differently)."""


def _s3(storage) -> bool:
    # Asked of the class: on an instance, `bucket` would open the thread's own connection.
    return hasattr(type(storage), "bucket") and hasattr(type(storage), "connection")


def _client(storage):
    """The storage's S3 client: one per region shared by the process's threads where the
    storage offers it (`RegionS3Storage.shared_client`), else its thread's own."""
    shared = getattr(storage, "shared_client", None)
    return shared if shared is not None else storage.connection.meta.client


def object_put(region: str, key: str, reader) -> None:
    """Store everything `reader.read()` yields under `key`, replacing any older object."""
    storage = region_storage(region)
    name = storage.save(key, File(_ReadOnly(reader), name=key))
    if name != key:  # a storage that renames instead of overwriting would lose track
        storage.delete(name)
        raise RuntimeError(f"region {region} stored the object under another name; "
                           "configure it to overwrite")


def object_put_stream(region: str, key: str, reader) -> None:
    """Like object_put, but the reader is pulled on the calling thread (boto3's transfer
    manager would pull it from threads of its own, where a reader that touches the
    database, as an export does, has no connection)."""
    storage = region_storage(region)
    if not _s3(storage):
        object_put(region, key, reader)
        return
    from boto3.s3.transfer import TransferConfig

    _client(storage).upload_fileobj(
        _ReadOnly(reader), storage.bucket_name, storage._normalize_name(key),
        ExtraArgs=dict(getattr(storage, "object_parameters", None) or {}) or None,
        Config=TransferConfig(use_threads=False))


class _ReadOnly:
    """A forward-only stream as storages expect a file: read(), not seekable, never closed by
    them (the caller owns the source)."""

    closed = False

    def __init__(self, reader) -> None:
        self._reader = reader

    def read(self, n: int = -1) -> bytes:
        return self._reader.read(n)

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        pass


def region_fault(exc: BaseException) -> bool:
    """Whether a failed write says the region itself is unavailable (unreachable, timing out,
    answering 5xx, a local disk refusing writes) rather than something about the object."""
    if isinstance(exc, ObjectCorrupt):
        return False
    from botocore.exceptions import BotoCoreError, ClientError

    if isinstance(exc, ClientError):
        return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 500) >= 500
    return isinstance(exc, (BotoCoreError, OSError))


# A local region's object being written (renamed into place when complete): never an object.
PARTIAL_PREFIX = ".put."


def object_put_checked(region: str, key: str, open_source: Callable[[], BinaryIO], *,
                       sha256: str, size: int, crc32: int | None = None) -> None:
    """Store the bytes `open_source()` yields (`size` of them, SHA-256 `sha256` in hex)
    under `key` and return only once the region holds exactly those bytes; raise
    ObjectCorrupt (or the storage's own error) otherwise. `open_source` gives a fresh,
    seekable reader, closed by this function (botocore rewinds it to sign and to retry).

    What confirms it is the store's own guarantee, not a second read: an S3 region is sent
    a checksum with the object, computes its own over what it received and refuses a
    mismatch (BadDigest) -- a store that does not echo the checksum back is read back and
    hashed instead; a local folder gets the bytes hashed as they are written, fsynced and
    renamed into place. The fixity audit re-reads copies later.

    The checksum sent is `crc32` when the caller gives it (the CRC-32 of the very bytes,
    held in memory, whose SHA-256 it has just computed: the store then confirms it received
    those bytes), else the SHA-256. CRC-32 is what the AWS SDKs send by default; SeaweedFS
    takes a SHA-256 checksum on a slower path (a third less throughput, bench/archive.py),
    and a CRC costs it nothing measurable. The ciphertext's SHA-256 stays the copy's
    recorded checksum, and every segment carries an AES-GCM tag that a changed byte fails."""
    storage = region_storage(region)
    if _s3(storage):
        _s3_put_checked(storage, key, open_source, sha256=sha256, size=size, crc32=crc32)
    else:
        _local_put_checked(storage.path(key), open_source, sha256=sha256, size=size)


def _s3_put_checked(storage, key: str, open_source, *, sha256: str, size: int, crc32: int | None) -> None:
    if crc32 is not None:
        field, checksum = "ChecksumCRC32", base64.b64encode(crc32.to_bytes(4, "big")).decode()
    else:
        field, checksum = "ChecksumSHA256", base64.b64encode(bytes.fromhex(sha256)).decode()
    client = _client(storage)
    name = storage._normalize_name(key)
    extra = dict(getattr(storage, "object_parameters", None) or {})
    with open_source() as body:
        answer = client.put_object(Bucket=storage.bucket_name, Key=name, Body=body, ContentLength=size,
                                   **{field: checksum}, **extra)
    if answer.get(field) == checksum:
        return
    # The store did not confirm the checksum: read the object back and hash it.
    if stream_digest(client.get_object(Bucket=storage.bucket_name, Key=name)["Body"]) != (sha256, size):
        raise ObjectCorrupt(f"{key}: the region holds other bytes than were sent")


def stream_digest(stream) -> tuple[str, int]:
    """(SHA-256 in hex, size) of everything a stream yields; the stream is closed."""
    digest, count = hashlib.sha256(), 0
    try:
        for chunk in iter(lambda: stream.read(1024 * 1024), b""):
            digest.update(chunk)
            count += len(chunk)
    finally:
        stream.close()
    return digest.hexdigest(), count


class ClassesUnsupported(Exception):
    """The region is a local folder: it has no storage classes."""


def object_class_set(region: str, key: str, storage_class: str, *, sha256: str) -> None:
    """Move an object to another storage class of its region, in place (an S3 copy onto
    itself), and return only once the store confirms the bytes are the same (`sha256`, in
    hex, of the object): the copy's checksum, or else a read-back."""
    storage = region_storage(region)
    if not _s3(storage):
        raise ClassesUnsupported(f"region {region} is a local folder")
    client, name = _client(storage), storage._normalize_name(key)
    extra = dict(getattr(storage, "object_parameters", None) or {})
    # REPLACE: a copy onto itself must change something besides the class for some stores
    # (SeaweedFS); our objects carry no metadata of their own to lose.
    answer = client.copy_object(Bucket=storage.bucket_name, Key=name, StorageClass=storage_class,
                                CopySource={"Bucket": storage.bucket_name, "Key": name},
                                MetadataDirective="REPLACE", ChecksumAlgorithm="SHA256", **extra)
    if answer.get("CopyObjectResult", {}).get("ChecksumSHA256") == base64.b64encode(bytes.fromhex(sha256)).decode():
        return
    if stream_digest(client.get_object(Bucket=storage.bucket_name, Key=name)["Body"])[0] != sha256:
        raise ObjectCorrupt(f"{key}: the region holds other bytes after the class change")


def _local_put_checked(path: str, open_source, *, sha256: str, size: int) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, partial = tempfile.mkstemp(prefix=PARTIAL_PREFIX, dir=directory)
    try:
        digest, count = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out, open_source() as src:
            for chunk in iter(lambda: src.read(1024 * 1024), b""):
                digest.update(chunk)
                count += len(chunk)
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        if count != size or digest.hexdigest() != sha256:
            raise ObjectCorrupt(f"{os.path.basename(path)}: the source gave other bytes than expected")
        os.replace(partial, path)
    except BaseException:
        if os.path.exists(partial):
            os.unlink(partial)
        raise
    dir_fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself survives a power cut
    finally:
        os.close(dir_fd)


def object_open(region: str, key: str) -> BinaryIO:
    """A read()-able stream of the object; raises ObjectMissing when it is not there."""
    storage = region_storage(region)
    if _s3(storage):
        from botocore.exceptions import ClientError

        try:
            return _client(storage).get_object(Bucket=storage.bucket_name, Key=storage._normalize_name(key))["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise ObjectMissing(f"{key} is not in {region}") from None
            raise
    try:
        return storage.open(key, "rb")
    except FileNotFoundError:
        raise ObjectMissing(f"{key} is not in {region}") from None


def object_exists(region: str, key: str) -> bool:
    storage = region_storage(region)
    if not _s3(storage):
        return storage.exists(key)
    from botocore.exceptions import ClientError

    try:
        _client(storage).head_object(Bucket=storage.bucket_name, Key=storage._normalize_name(key))
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            return False
        raise
    return True


def object_delete(region: str, key: str) -> None:
    region_storage(region).delete(key)


def object_keys(region: str, prefix: str = "") -> Iterator[str]:
    """Every object key in the region under `prefix` (for restore)."""
    storage = region_storage(region)
    if _s3(storage):
        paginator = _client(storage).get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=storage.bucket_name, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]
        return
    root = storage.location
    for dirpath, _dirs, files in os.walk(root):
        for filename in files:
            if filename.startswith(PARTIAL_PREFIX):  # left by a killed writer, not an object
                continue
            key = os.path.relpath(os.path.join(dirpath, filename), root).replace(os.sep, "/")
            if key.startswith(prefix):
                yield key
