"""Rebuild the index, tier 1 and the other region from one region alone.

Each object is decrypted (its header names its data key, restored first from the
region's `_keys/` copies) and handed to the one ingest path under its own storage key, so
the rebuilt index points at the very objects that are already there; the surviving copy
is recorded as verified and the pipeline copies its ciphertext to the other region.
Resumable: objects already in the index are skipped. Clinics (tenants) must exist, with
their uuid (create_tenant --uuid): each object goes to the clinic its data key is bound to
(the clinic's uuid, authenticated by the key wrapping), never by the numeric id in its
storage key, which belongs to another clinic once clinics are re-created in another order.
Objects whose clinic is not here are refused and reported. Key documents written before
keys were bound to uuids are matched by the slug they record.
"""

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection
from django.utils import timezone

from archive.ingest.service import Outcome, instance_ingest
from archive.ingest.spool import spool_chunks
from archive.models import Instance
from archive.storage.integrity import Tee
from archive.storage.keys import KeyRefused, data_key_for, key_import
from archive.storage.models import DataKey, InstanceCopy
from archive.storage.pipeline import archive_row_for, outbox_drive_inline
from cloudpacs.objectstore import crypto
from cloudpacs.objectstore.objects import object_keys, object_open
from tenants.audit import Actor
from tenants.models import Tenant

log = logging.getLogger(__name__)
ACTOR = Actor.system("restore")


@dataclass
class RestoreReport:
    total: int = 0
    restored: int = 0
    skipped: int = 0
    superseded: int = 0  # earlier headers of corrected images, kept for a revert
    deleted: int = 0  # objects of studies deleted by approval: they stay gone
    failed: list[str] = field(default_factory=list)
    # Objects not restored because their data key's clinic is not here or not theirs
    # ("<storage key>: <why>", no PHI): a restore never hands them to another clinic.
    refused: list[str] = field(default_factory=list)
    bytes: int = 0


def _restore_keys(region: str, tenant: Tenant | None) -> tuple[dict[int, Tenant], dict[int, str]]:
    """Import the region's data keys, each for the clinic whose identity it is bound to.

    Returns (clinic of each key id, why each refused key id was refused)."""
    owners: dict[int, Tenant] = {}
    refused: dict[int, str] = {}
    newest: dict[int, DataKey] = {}
    for name in object_keys(region, "_keys/"):
        with object_open(region, name) as stream:
            doc = json.loads(stream.read())
        try:
            row = key_import(doc)
        except KeyRefused as exc:
            refused[int(doc["key_id"])] = str(exc)
            log.error("data key %s from %s refused: %s", doc["key_id"], region, exc)
            continue
        owners[row.pk] = row.tenant
        if tenant is not None and row.tenant_id != tenant.pk:
            continue
        if row.tenant_id not in newest or row.version > newest[row.tenant_id].version:
            newest[row.tenant_id] = row
    for tenant_id, row in newest.items():
        if not DataKey.unscoped.filter(tenant_id=tenant_id, active=True).exists():
            DataKey.unscoped.filter(pk=row.pk).update(active=True)
    _key_ids_past_restored()
    return owners, refused


def _key_ids_past_restored() -> None:
    """Keys come back with their ids (object headers name them): move PostgreSQL's id
    sequence past them, or the next new key of a new database collides with one. Only ever
    forward, so a key being created meanwhile keeps its id. (SQLite does this itself.)"""
    if connection.vendor != "postgresql":
        return
    table = DataKey._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_get_serial_sequence(%s, 'id'), (SELECT max(id) FROM " +
                       connection.ops.quote_name(table) + ")", [table])
        sequence, highest = cursor.fetchone()
        if sequence is None or highest is None:
            return
        cursor.execute(f"SELECT last_value, is_called FROM {sequence}")  # a name PostgreSQL quoted
        last, called = cursor.fetchone()
        if (last + 1 if called else last) <= highest:
            cursor.execute("SELECT setval(%s, %s)", [sequence, highest])


class _Refused(Exception):
    """The object's data key is bound to a clinic that is not here (or not its own)."""


class _NotInScope(Exception):
    """The object belongs to another clinic than the one being restored."""


def _restore_object(region: str, key: str, owners: dict[int, Tenant], refused: dict[int, str],
                    only: Tenant | None, drive: bool) -> int:
    """Restore one object into the clinic its data key is bound to (its header names the key,
    and the object decrypts only with it); the number in its storage key is not trusted."""
    owner: Tenant | None = None
    key_id = None

    def lookup(kid: int) -> bytes:
        nonlocal owner, key_id
        key_id = kid
        if kid in refused:
            raise _Refused(refused[kid])
        owner = owners.get(kid) or _known_owner(kid)
        if owner is None:
            raise _Refused(f"its data key {kid} is in no key document of {region}")
        if only is not None and owner.pk != only.pk:
            raise _NotInScope
        return data_key_for(tenant_id=owner.pk, key_id=kid)

    stream = object_open(region, key)
    try:
        tee = Tee(stream)
        spooled = spool_chunks(crypto.decrypt_chunks(tee, key_lookup=lookup))
        result = instance_ingest(tenant=owner, spooled=spooled, actor=ACTOR, storage_key=key)
    finally:
        stream.close()
    if result.outcome != Outcome.STORED:
        raise RuntimeError(f"{result.outcome.value}: {result.reason}")
    instance = result.instance
    now = timezone.now()
    InstanceCopy.unscoped.update_or_create(
        instance=instance, region=region,
        defaults={"tenant_id": owner.pk, "state": InstanceCopy.VERIFIED, "cipher_sha256": tee.sha256.hexdigest(),
                  "cipher_size": tee.size, "key_id": key_id, "uploaded_at": now,
                  "verified_at": now, "checked_at": now, "updated_at": now})
    if drive:
        outbox_drive_inline(archive_row_for(instance).pk)
    return instance.size_bytes


def _known_owner(key_id: int) -> Tenant | None:
    """The clinic of a data key already here (a restore beside the live service)."""
    row = DataKey.unscoped.select_related("tenant").filter(pk=key_id).first()
    return row.tenant if row else None


def _tombstoned_keys() -> set[str]:
    """Keys of deleted studies whose objects a region may still hold (a purge that has not
    finished there): a restore must not bring a deleted study back, into any clinic."""
    from archive.retention.models import StudyTombstone

    found: set[str] = set()
    for keys in StudyTombstone.unscoped.values_list("storage_keys", flat=True):
        found.update(keys)
    return found


def _superseded_keys() -> set[str]:
    """Objects that are not an image's current header: what a correction replaced (kept for
    a revert), and what a revert gave up. Restoring one would silently undo a correction."""
    from archive.corrections.models import HeaderVersion

    rows = HeaderVersion.unscoped.values_list("old_storage_key", "new_storage_key", "correction__reverted_at")
    return {new if reverted_at else old for old, new, reverted_at in rows}


def region_restore(*, region: str, tenant: Tenant | None = None, drive: bool = True,
                   progress: Callable[[RestoreReport], None] | None = None,
                   progress_every: float = 2.0) -> RestoreReport:
    """Restore every instance object of `region` (of one clinic if given) not in the index,
    each into the clinic its data key is bound to; objects whose clinic is not here are
    refused and listed in the report.

    `drive` runs the copy to the other region in this process too (else the workers do)."""
    owners, refused = _restore_keys(region, tenant)
    # Instance objects are "<clinic id when written>/<uuid>"; that id does not pick the clinic.
    keys = [k for k in object_keys(region) if k.split("/", 1)[0].isdigit()]
    report = RestoreReport(total=len(keys))
    deleted = _tombstoned_keys()
    superseded = _superseded_keys()
    last = time.monotonic()
    for key in keys:
        indexed = Instance.unscoped.filter(storage_key=key).values_list("tenant_id", flat=True).first()
        if key in deleted:
            report.deleted += 1
        elif key in superseded:
            report.superseded += 1
        elif indexed is not None:
            if tenant is None or indexed == tenant.pk:
                report.skipped += 1
            else:
                report.total -= 1
        else:
            try:
                report.bytes += _restore_object(region, key, owners, refused, tenant, drive)
                report.restored += 1
            except _NotInScope:
                report.total -= 1
            except _Refused as exc:
                log.error("restore of %s refused: %s", key, exc)
                report.refused.append(f"{key}: {exc}")
            except Exception as exc:  # noqa: BLE001 - reported; the rest goes on
                log.error("restore of %s failed: %s", key, exc)
                report.failed.append(f"{key}: {exc}")
        if progress and time.monotonic() - last >= progress_every:
            progress(report)
            last = time.monotonic()
    if progress:
        progress(report)
    return report
