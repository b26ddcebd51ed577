"""Reading an instance's bytes. Every reader (WADO, C-GET, export, viewer) goes through
`open_instance`, so where the bytes come from is decided in one place: tier 1 when the
file is there, else the encrypted copy in the primary and then the secondary region,
decrypted and checked against the ingest checksum (archive/storage/tiers.py)."""

from typing import BinaryIO

from archive.storage.tier1 import tier1_path


class InstanceUnavailable(Exception):
    """The instance is indexed but its bytes cannot be read from any store."""


def open_instance(instance) -> BinaryIO:
    """A binary file object positioned at the start of the Part 10 file; caller closes it.

    `instance` needs only `storage_key` (an Instance or any object carrying it)."""
    try:
        return open(tier1_path(instance.storage_key), "rb")  # noqa: SIM115 - caller closes
    except FileNotFoundError:
        pass
    # Not in tier 1 (evicted, or a lost local disk): fetch from the regions.
    from archive.models import Instance
    from archive.storage.tiers import instance_local_path

    if not isinstance(instance, Instance) or not instance.sha256:
        instance = Instance.unscoped.filter(storage_key=instance.storage_key).first()
        if instance is None:
            raise InstanceUnavailable("no instance with this storage key")
    return open(instance_local_path(instance), "rb")  # noqa: SIM115 - caller closes
