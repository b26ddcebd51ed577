"""Rebuild the index, tier 1 and the other region from one region alone.

Each object is decrypted (its header names its data key, restored first from the
region's `_keys/` copies) and handed to the one ingest path under its own storage key, so
the rebuilt index points at the very objects that are already there; the surviving copy
is recorded as verified and the pipeline copies its ciphertext to the other region.
Resumable: objects already in the index are skipped. Clinics (tenants) must exist.
"""

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.utils import timezone

from archive.ingest.service import Outcome, instance_ingest
from archive.ingest.spool import spool_chunks
from archive.models import Instance, Outbox
from archive.storage import crypto
from archive.storage.keys import data_key_for, key_import
from archive.storage.models import DataKey, InstanceCopy
from archive.storage.objects import object_keys, object_open
from archive.storage.pipeline import outbox_drive_inline
from tenants.audit import Actor
from tenants.models import Tenant

log = logging.getLogger(__name__)
ACTOR = Actor.system("restore")


@dataclass
class RestoreReport:
    total: int = 0
    restored: int = 0
    skipped: int = 0
    deleted: int = 0  # objects of studies deleted by approval: they stay gone
    failed: list[str] = field(default_factory=list)
    bytes: int = 0


def _restore_keys(region: str, tenant_ids: set[int] | None) -> None:
    newest: dict[int, DataKey] = {}
    for name in object_keys(region, "_keys/"):
        with object_open(region, name) as stream:
            doc = json.loads(stream.read())
        if tenant_ids is not None and doc["tenant_id"] not in tenant_ids:
            continue
        row = key_import(doc)
        if row.tenant_id not in newest or row.version > newest[row.tenant_id].version:
            newest[row.tenant_id] = row
    for tenant_id, row in newest.items():
        if not DataKey.unscoped.filter(tenant_id=tenant_id, active=True).exists():
            DataKey.unscoped.filter(pk=row.pk).update(active=True)


class _Tee:
    def __init__(self, src) -> None:
        self._src, self.sha256, self.size = src, hashlib.sha256(), 0

    def read(self, n: int = -1) -> bytes:
        data = self._src.read(n)
        self.sha256.update(data)
        self.size += len(data)
        return data


def _restore_object(region: str, key: str, tenant: Tenant, drive: bool) -> tuple[bool, int]:
    key_id = None

    def lookup(kid: int) -> bytes:
        nonlocal key_id
        key_id = kid
        return data_key_for(tenant_id=tenant.pk, key_id=kid)

    stream = object_open(region, key)
    try:
        tee = _Tee(stream)
        spooled = spool_chunks(crypto.decrypt_chunks(tee, key_lookup=lookup))
        result = instance_ingest(tenant=tenant, spooled=spooled, actor=ACTOR, storage_key=key)
    finally:
        stream.close()
    if result.outcome != Outcome.STORED:
        raise RuntimeError(f"{result.outcome.value}: {result.reason}")
    instance = result.instance
    now = timezone.now()
    InstanceCopy.unscoped.update_or_create(
        instance=instance, region=region,
        defaults={"tenant_id": tenant.pk, "state": InstanceCopy.VERIFIED, "cipher_sha256": tee.sha256.hexdigest(),
                  "cipher_size": tee.size, "key_id": key_id, "uploaded_at": now, "verified_at": now,
                  "checked_at": now, "updated_at": now})
    if drive:
        outbox_drive_inline(Outbox.unscoped.get(instance=instance, kind=Outbox.ARCHIVE).pk)
    return True, instance.size_bytes


def _tombstoned_keys(tenants: dict[int, Tenant]) -> set[str]:
    """Keys of deleted studies whose objects a region may still hold (a purge that has not
    finished there): a restore must not bring a deleted study back."""
    from archive.retention.models import StudyTombstone

    found: set[str] = set()
    for keys in StudyTombstone.unscoped.filter(tenant_id__in=tenants).values_list("storage_keys", flat=True):
        found.update(keys)
    return found


def region_restore(*, region: str, tenant: Tenant | None = None, drive: bool = True,
                   progress: Callable[[RestoreReport], None] | None = None,
                   progress_every: float = 2.0) -> RestoreReport:
    """Restore every instance object of `region` (of one clinic if given) not in the index.

    `drive` runs the copy to the other region in this process too (else the workers do)."""
    _restore_keys(region, None if tenant is None else {tenant.pk})
    prefix = f"{tenant.pk}/" if tenant else ""
    keys = [k for k in object_keys(region, prefix) if k.split("/", 1)[0].isdigit()]
    report = RestoreReport(total=len(keys))
    tenants = {t.pk: t for t in Tenant.objects.filter(pk__in={int(k.split("/", 1)[0]) for k in keys})}
    deleted = _tombstoned_keys(tenants)
    last = time.monotonic()
    for key in keys:
        if key in deleted:
            report.deleted += 1
        elif Instance.unscoped.filter(storage_key=key).exists():
            report.skipped += 1
        else:
            owner = tenants.get(int(key.split("/", 1)[0]))
            try:
                if owner is None:
                    raise RuntimeError("its clinic does not exist here")
                _, size = _restore_object(region, key, owner, drive)
                report.restored += 1
                report.bytes += size
            except Exception as exc:  # noqa: BLE001 - reported; the rest goes on
                log.error("restore of %s failed: %s", key, exc)
                report.failed.append(f"{key}: {exc}")
        if progress and time.monotonic() - last >= progress_every:
            progress(report)
            last = time.monotonic()
    if progress:
        progress(report)
    return report
