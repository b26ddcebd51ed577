"""Object I/O in a region, streaming both ways.

Writes go through the Django storage API. Reads of S3 regions use boto3's streaming body
directly, because django-storages' S3File buffers a whole object in a temporary file
before the first byte (in memory with the default max_memory_size)."""

import os
from collections.abc import Iterator
from typing import BinaryIO

from django.core.files import File

from cloudpacs.objectstore.regions import region_storage


class ObjectMissing(Exception):
    pass


def _s3(storage) -> bool:
    return hasattr(storage, "bucket") and hasattr(storage, "connection")


def object_put(region: str, key: str, reader) -> None:
    """Store everything `reader.read()` yields under `key`, replacing any older object."""
    storage = region_storage(region)
    name = storage.save(key, File(_ReadOnly(reader), name=key))
    if name != key:  # a storage that renames instead of overwriting would lose track
        storage.delete(name)
        raise RuntimeError(f"region {region} stored the object under another name; "
                           "configure it to overwrite")


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


def object_open(region: str, key: str) -> BinaryIO:
    """A read()-able stream of the object; raises ObjectMissing when it is not there."""
    storage = region_storage(region)
    if _s3(storage):
        from botocore.exceptions import ClientError

        try:
            return storage.bucket.Object(storage._normalize_name(key)).get()["Body"]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404", "NotFound"):
                raise ObjectMissing(f"{key} is not in {region}") from None
            raise
    try:
        return storage.open(key, "rb")
    except FileNotFoundError:
        raise ObjectMissing(f"{key} is not in {region}") from None


def object_exists(region: str, key: str) -> bool:
    return region_storage(region).exists(key)


def object_delete(region: str, key: str) -> None:
    region_storage(region).delete(key)


def object_keys(region: str, prefix: str = "") -> Iterator[str]:
    """Every object key in the region under `prefix` (for restore)."""
    storage = region_storage(region)
    if _s3(storage):
        paginator = storage.connection.meta.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=storage.bucket_name, Prefix=prefix):
            for item in page.get("Contents", []):
                yield item["Key"]
        return
    root = storage.location
    for dirpath, _dirs, files in os.walk(root):
        for filename in files:
            key = os.path.relpath(os.path.join(dirpath, filename), root).replace(os.sep, "/")
            if key.startswith(prefix):
                yield key
