"""Reading through the tiers, and evicting tier 1.

A read is served from tier 1 when the file is there; otherwise the first region with a
good copy (primary, then secondary) is copied back into tier 1 as it is (the same
ciphertext: tier 1 and the regions share the format and the clinic's key), after it has
been decrypted and checked against the ingest checksum, so the next read is local again."""

import hashlib
import logging
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.db.models import Count
from django.utils import timezone

from archive.models import Instance
from archive.storage.keys import data_key_for
from archive.storage.models import InstanceCopy
from archive.storage.tier1 import tier1_path, tier1_writing
from cloudpacs.objectstore import crypto
from cloudpacs.objectstore.objects import ObjectMissing, object_open
from cloudpacs.objectstore.regions import REGIONS

log = logging.getLogger(__name__)


class InstanceUnavailable(Exception):
    """The instance is indexed but its bytes cannot be read from any store."""


class _WritingTee:
    """Writes what passes through to `out`."""

    def __init__(self, src, out) -> None:
        self._src, self._out = src, out

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        self._out.write(data)
        return data


def _fetch_into_tier1(instance: Instance, region: str) -> Path:
    stream = object_open(region, instance.storage_key)
    try:
        with tier1_writing(instance.storage_key) as out:
            sha, size = hashlib.sha256(), 0
            for chunk in crypto.decrypt_chunks(
                    _WritingTee(stream, out),
                    key_lookup=lambda kid: data_key_for(tenant_id=instance.tenant_id, key_id=kid)):
                sha.update(chunk)
                size += len(chunk)
            if sha.hexdigest() != instance.sha256 or size != instance.size_bytes:
                raise crypto.DecryptionError("decrypted content does not match the ingest checksum")
    finally:
        stream.close()
    return tier1_path(instance.storage_key)


def instance_local_path(instance: Instance, *, refresh: bool = False) -> Path:
    """The tier-1 file (encrypted) of the instance, fetched from a region and checked
    first if it is not there (or, with refresh=True, in any case: a damaged tier-1 file)."""
    path = tier1_path(instance.storage_key)
    if path.exists() and not refresh:
        return path
    errors = []
    for region in REGIONS:
        try:
            return _fetch_into_tier1(instance, region)
        except ObjectMissing as exc:
            errors.append(f"{region}: missing ({exc})")
        except Exception as exc:  # noqa: BLE001 - try the next region; the audit repairs
            log.warning("reading instance %s from %s failed: %s", instance.pk, region, exc)
            errors.append(f"{region}: {exc}")
    raise InstanceUnavailable(f"instance {instance.pk}: " + "; ".join(errors))


def tier1_evict(*, now=None) -> int:
    """Remove tier-1 files of instances older than TIER1_KEEP_DAYS whose copies are verified
    in both regions. Returns the number of files removed."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=settings.TIER1_KEEP_DAYS)
    safe = (InstanceCopy.unscoped.filter(state=InstanceCopy.VERIFIED, instance__created_at__lt=cutoff)
            .values("instance_id").annotate(n=Count("region")).filter(n=len(REGIONS))
            .values_list("instance_id", flat=True))
    removed = 0
    for key in Instance.unscoped.filter(pk__in=safe).values_list("storage_key", flat=True).iterator():
        path = tier1_path(key)
        if path.exists():
            path.unlink()
            removed += 1
    return removed
