"""Removing a deleted study's stored objects: tier 1 and both regions.

Runs after the index rows are gone and committed (never before: a rolled-back deletion
must not have destroyed data). Deleting a missing object is not an error, so a purge can
be run again; what could not be deleted is recorded on the tombstone and retried by
`tombstone_purge_finish`."""

import logging

from django.utils import timezone

from archive.retention.models import StudyTombstone
from archive.storage.tier1 import tier1_delete
from cloudpacs.objectstore.objects import object_delete
from cloudpacs.objectstore.regions import REGIONS

log = logging.getLogger(__name__)


def storage_keys_delete(keys: list[str]) -> list[str]:
    """Delete each key from tier 1 and every region; returns the errors (empty when done)."""
    errors: list[str] = []
    for key in keys:
        try:
            tier1_delete(key)
        except OSError as exc:
            errors.append(f"tier1 {key}: {exc}")
        for region in REGIONS:
            try:
                object_delete(region, key)
            except Exception as exc:  # noqa: BLE001 - keep going; the tombstone records it
                errors.append(f"{region} {key}: {exc}")
    return errors


def tombstone_purge_finish(*, tombstone: StudyTombstone) -> bool:
    """Delete the tombstone's objects everywhere; True when nothing is left."""
    errors = storage_keys_delete(list(tombstone.storage_keys))
    if errors:
        log.warning("purge of tombstone %s left %d objects: %s", tombstone.pk, len(errors), errors[0])
        StudyTombstone.unscoped.filter(pk=tombstone.pk).update(purge_error="\n".join(errors)[:4000])
        tombstone.purge_error = "\n".join(errors)[:4000]
        return False
    now = timezone.now()
    StudyTombstone.unscoped.filter(pk=tombstone.pk).update(objects_purged_at=now, purge_error="")
    tombstone.objects_purged_at, tombstone.purge_error = now, ""
    return True


def purges_unfinished(*, tenant):
    return StudyTombstone.objects.for_tenant(tenant).filter(objects_purged_at=None).order_by("deleted_at")
