"""Reading an instance's bytes. Every reader (WADO, C-GET, export, viewer) goes through
`open_instance`, so where the bytes come from (tier 1 now; the encrypted regions as a
fallback once the storage pipeline lands) is decided in one place."""

from typing import BinaryIO

from archive.storage.tier1 import tier1_path


class InstanceUnavailable(Exception):
    """The instance is indexed but its bytes cannot be read from any store."""


def open_instance(instance) -> BinaryIO:
    """A binary file object positioned at the start of the Part 10 file; caller closes it.

    `instance` needs only `storage_key` (an Instance or any object carrying it)."""
    try:
        return open(tier1_path(instance.storage_key), "rb")  # noqa: SIM115 - caller closes
    except FileNotFoundError as exc:
        raise InstanceUnavailable(f"instance {getattr(instance, 'pk', '?')} is not in tier 1") from exc
