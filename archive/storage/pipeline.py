"""The durable-storage pipeline: each instance's encrypted copy into both regions, checked.

Ingest writes one outbox row of kind ARCHIVE per instance (subject: the instance), and the
rows one transaction committed reach a worker in one message. `archive_rows` does all of
their work there, with a handful of queries for the whole batch (the pipeline used to be
five Celery steps and as many outbox advances per instance, each with its own queries:
about 40 ms of worker CPU per instance, nearly all of it in the ORM).

For each instance the tier-1 file -- already the ciphertext, in the regions' format -- is
read once and checked: decrypted, its plaintext must have the size and SHA-256 recorded at
ingest. Those exact bytes then go to each region that lacks a verified copy, with their
checksum, and the region confirms it holds them (`object_put_checked`: an S3 store computes
the checksum of what it received and refuses a mismatch; a local folder is hashed as it is
written and fsynced). A copy counts as verified only then. Each region is served on its
own, from tier 1 or else (evicted or damaged) from the other region's verified copy, so
an outage of one region leaves the other current. Every step is safe to repeat: an upload
overwrites with the same ciphertext, and the fixity audit re-reads stored copies later."""

import io
import logging
import os
import shutil
import tempfile
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from django.conf import settings
from django.db import connection
from django.db.models import F
from django.utils import timezone

from archive.models import Instance
from archive.outbox.models import Outbox
from archive.outbox.services import outbox_advance
from archive.storage.compression import compress_work
from archive.storage.integrity import stream_check
from archive.storage.keys import data_key_for, key_export
from archive.storage.models import InstanceCopy
from archive.storage.tier1 import tier1_path
from cloudpacs.objectstore import crypto
from cloudpacs.objectstore.objects import (
    object_delete,
    object_open,
    object_put_checked,
    region_fault,
)
from cloudpacs.objectstore.regions import PRIMARY, REGIONS, SECONDARY
from cloudpacs.thread_pools import thread_pool

log = logging.getLogger(__name__)

# The outbox kind of this work; the row's subject is the instance.
ARCHIVE = "archive"
# Tier-1 files up to this size are read into memory once and sent from there to both
# regions; larger ones (a mammogram, a 4 GB tomosynthesis instance) are streamed from the
# file each time, so a worker thread holds at most this much of an instance.
IN_MEMORY_MAX = 8 * 1024 * 1024
# Instances of one batch uploaded at once, per worker process (STORAGE_UPLOAD_THREADS).
UPLOAD_THREADS = settings.STORAGE_UPLOAD_THREADS
# The fields of InstanceCopy this pipeline writes.
_COPY_FIELDS = ["state", "cipher_sha256", "cipher_size", "key_id", "uploaded_at", "verified_at",
                "checked_at", "attempts", "last_error", "updated_at"]


class NoSource(Exception):
    """Neither tier 1 nor a verified copy in the other region holds the instance."""


class RegionUnavailable(Exception):
    """The region failed earlier in this batch: its other instances wait for the retry
    instead of each waiting out the same timeouts."""


def other_region(region: str) -> str:
    return SECONDARY if region == PRIMARY else PRIMARY


@dataclass
class _Sealed:
    """The checked ciphertext of one instance: in memory, in its tier-1 file, or fetched
    from the other region by `opener`. `open()` gives a fresh, seekable reader each time.
    `crc32`: of `data`, the bytes just checked, for the region to confirm (see
    object_put_checked); a file or a fetch is confirmed by its SHA-256."""

    sha256: str
    size: int
    key_id: int
    data: bytes | None = None
    crc32: int | None = None
    path: str | None = None
    opener: Callable[[], BinaryIO] | None = None

    def open(self) -> BinaryIO:
        if self.opener is not None:
            return self.opener()
        return io.BytesIO(self.data) if self.data is not None else open(self.path, "rb")  # noqa: SIM115


class _Keys(dict):
    """The data keys one batch needs, each looked up and unwrapped once."""

    def lookup(self, tenant_id: int):
        def lookup(key_id: int) -> bytes:
            if (tenant_id, key_id) not in self:
                self[tenant_id, key_id] = data_key_for(tenant_id=tenant_id, key_id=key_id)
            return self[tenant_id, key_id]
        return lookup


def _tier1_sealed(instance: Instance, keys: _Keys) -> _Sealed | None:
    """The tier-1 file of `instance`, checked against the ingest checksum; None when tier 1
    no longer holds it (evicted). A file that does not match raises: it is never sent."""
    path = str(tier1_path(instance.storage_key))
    try:
        size = os.path.getsize(path)
        with open(path, "rb") as fh:
            data = fh.read() if size <= IN_MEMORY_MAX else None
            check = stream_check(instance, io.BytesIO(data) if data is not None else fh,
                                 key_lookup=keys.lookup(instance.tenant_id))
    except FileNotFoundError:
        return None
    if not check.ok:
        raise RuntimeError(f"tier-1 file of instance {instance.pk} no longer matches its ingest "
                           f"checksum: {check.detail}")
    if data is not None:
        return _Sealed(check.cipher_sha256, check.cipher_size, check.key_id, data=data, crc32=zlib.crc32(data))
    return _Sealed(check.cipher_sha256, check.cipher_size, check.key_id, path=path)


def _from_other_region(instance: Instance, other: InstanceCopy) -> _Sealed:
    """The other region's verified ciphertext as a source (tier 1 no longer holds it, or
    holds it damaged): its checksum is known, so the target region confirms it like any
    other copy. Fetched into a temporary file (ciphertext only) that a retry can re-read."""

    def open_source() -> BinaryIO:
        os.makedirs(settings.INGEST_TMP_DIR, exist_ok=True)
        spool = tempfile.SpooledTemporaryFile(max_size=IN_MEMORY_MAX, dir=settings.INGEST_TMP_DIR)  # noqa: SIM115
        stream = object_open(other.region, instance.storage_key)
        try:
            shutil.copyfileobj(stream, spool, 1024 * 1024)
        except BaseException:
            spool.close()
            raise
        finally:
            stream.close()
        spool.seek(0)
        return spool

    return _Sealed(other.cipher_sha256, other.cipher_size, other.key_id, opener=open_source)


def _archive_instance(instance: Instance, copies: dict[str, InstanceCopy], keys: _Keys,
                      regions: tuple[str, ...] = REGIONS, down: dict[str, Exception] | None = None) -> None:
    """Give each of `regions` that lacks one a verified copy of `instance`. Each region is
    tried whatever happens to the other; the first failure is raised at the end. `down`
    (shared by a batch) holds the regions found unavailable, which are not tried again."""
    down = {} if down is None else down
    todo = [region for region in regions if copies[region].state != InstanceCopy.VERIFIED]
    if not todo:
        return
    sealed, unsound, failure = None, None, None
    try:
        sealed = _tier1_sealed(instance, keys)
    except Exception as exc:  # noqa: BLE001 - the other region may still serve; else recorded below
        log.warning("tier-1 file of instance %s is unsound: %s", instance.pk, exc)
        unsound = exc
    for region in todo:
        copy = copies[region]
        copy.attempts += 1
        copy.updated_at = timezone.now()
        other = copies[other_region(region)]
        try:
            source = sealed
            if source is None and other.state == InstanceCopy.VERIFIED:
                source = _from_other_region(instance, other)
            if source is None:
                raise unsound or NoSource(f"instance {instance.pk} is in neither tier 1 nor {other.region}")
            if region in down:
                raise RegionUnavailable(f"{region} failed earlier in this batch: {down[region]}")
            try:
                key_export(region=region, key_id=source.key_id)
                object_put_checked(region, instance.storage_key, source.open, sha256=source.sha256,
                                   size=source.size, crc32=source.crc32)
            except Exception as exc:
                if region_fault(exc):
                    down[region] = exc
                raise
        except Exception as exc:  # noqa: BLE001 - recorded; the row is retried
            copy.state, copy.last_error = InstanceCopy.FAILED, f"upload: {exc}"[:2000]
            failure = failure or exc
            continue
        now = timezone.now()
        copy.state, copy.cipher_sha256, copy.cipher_size, copy.key_id = (
            InstanceCopy.VERIFIED, source.sha256, source.size, source.key_id)
        copy.uploaded_at = copy.verified_at = copy.checked_at = copy.updated_at = now
        copy.last_error = ""
    if failure is not None:
        raise failure


def _copies(instances: list[Instance]) -> dict[tuple[int, str], InstanceCopy]:
    """Every (instance, region) copy row, made where missing: two queries for a batch."""
    InstanceCopy.unscoped.bulk_create(
        [InstanceCopy(instance_id=i.pk, tenant_id=i.tenant_id, region=r) for i in instances for r in REGIONS],
        ignore_conflicts=True)
    return {(c.instance_id, c.region): c
            for c in InstanceCopy.unscoped.filter(instance_id__in=[i.pk for i in instances])}


def _record(copies: list[InstanceCopy], keys: dict[int, str]) -> None:
    """Write what this run did to each copy, only while its instance still has the object
    this run worked on (`keys`: instance id -> storage key; a compression may have swapped
    it meanwhile, and written the new object's copy rows). A failure is written only where
    the copy is not verified: another worker may have finished the same row meanwhile."""
    verified = [c for c in copies if c.state == InstanceCopy.VERIFIED]
    if verified:
        _update_rows(verified, _COPY_FIELDS, keys)
    for copy in copies:
        if copy.state != InstanceCopy.VERIFIED:
            InstanceCopy.unscoped.filter(pk=copy.pk, instance__storage_key=keys[copy.instance_id]).exclude(
                state=InstanceCopy.VERIFIED).update(state=copy.state, last_error=copy.last_error,
                                                    attempts=F("attempts") + 1, updated_at=copy.updated_at)


def _update_rows(copies: list[InstanceCopy], names: list[str], keys: dict[int, str]) -> None:
    """Write `names` of each copy by one parametrised UPDATE run for every row (while its
    instance has the storage key in `keys`). Django's bulk_update builds a CASE expression
    over every row and field, and compiling it was a third of the worker's CPU per instance."""
    fields = [InstanceCopy._meta.get_field(name) for name in names]
    quote = connection.ops.quote_name
    instances = quote(Instance._meta.db_table)
    sql = (f"UPDATE {quote(InstanceCopy._meta.db_table)} SET "
           + ", ".join(f"{quote(f.column)} = %s" for f in fields)
           + f" WHERE {quote('id')} = %s AND {quote('instance_id')} IN "
           + f"(SELECT {quote('id')} FROM {instances} WHERE {quote('storage_key')} = %s)")
    with connection.cursor() as cursor:
        cursor.executemany(sql, [[f.get_db_prep_save(getattr(copy, f.attname), connection) for f in fields]
                                 + [copy.pk, keys[copy.instance_id]] for copy in copies])


def archive_rows(rows: list[Outbox]) -> dict[int, bool | Exception]:
    """The outbox handler of ARCHIVE rows: each row's instance gets a verified copy in both
    regions. Answers per row: True (done; also when the instance was deleted since) or the
    exception that stopped it (the copies record it; the row is retried)."""
    instances = Instance.unscoped.only("id", "tenant_id", "storage_key", "sha256", "size_bytes").in_bulk(
        [row.subject_id for row in rows])
    copies = _copies(list(instances.values())) if instances else {}
    keys, down, results, touched, archived = _Keys(), {}, {}, [], {}
    todo = []
    for row in rows:
        instance = instances.get(row.subject_id)
        if instance is None:  # deleted since (retention): nothing left to do
            results[row.pk] = True
            continue
        todo.append((row, instance))
    _prepare(todo, copies, keys, down)

    def archive(item):
        row, instance = item
        mine = {region: copies[instance.pk, region] for region in REGIONS}
        before = {region: mine[region].state for region in REGIONS}
        try:
            _archive_instance(instance, mine, keys, down=down)
            result = True
        except Exception as exc:  # noqa: BLE001 - answered for this row alone
            log.warning("archiving instance %s failed: %s", instance.pk, exc)
            result = exc
        return row, instance, mine, before, result

    # The first alone (it finds a region that is down, which the rest then leave for the
    # retry), the rest a few at a time: the uploads wait on the network, not the CPU.
    pool = thread_pool("archive", UPLOAD_THREADS)
    done = [archive(item) for item in todo[:1]] + list(pool.map(archive, todo[1:]))
    for row, instance, mine, before, result in done:
        results[row.pk] = result
        touched += [mine[r] for r in REGIONS if before[r] != InstanceCopy.VERIFIED]
        if (any(before[r] != InstanceCopy.VERIFIED for r in REGIONS)
                and all(mine[r].state == InstanceCopy.VERIFIED for r in REGIONS)):
            archived.setdefault(instance.tenant_id, []).append(instance.pk)
    _record(touched, {pk: instance.storage_key for pk, instance in instances.items()})
    _forget_deleted_meanwhile(instances, touched)
    if archived:  # the original is safe in both regions: a clinic's opt-in re-encoding may follow
        compress_work(archived)
    return results


def _prepare(todo: list, copies: dict, keys: _Keys, down: dict[str, Exception]) -> None:
    """What needs the database, on this thread, before the uploads go to other threads: the
    data keys of the tier-1 files, and each key's document in each region (a region that
    fails here is down for this batch)."""
    needed = set()
    for _, instance in todo:
        # A region's copy may be the source (tier 1 elsewhere or evicted): its key's document too.
        needed.update(c.key_id for r in REGIONS if (c := copies.get((instance.pk, r))) is not None
                      and c.state == InstanceCopy.VERIFIED and c.key_id)
        try:
            with open(tier1_path(instance.storage_key), "rb") as fh:
                key_id = crypto.read_key_id(fh)
        except (FileNotFoundError, crypto.DecryptionError, ValueError):
            continue  # evicted or damaged: the other region's copy is the source
        try:
            keys.lookup(instance.tenant_id)(key_id)
        except Exception:  # noqa: BLE001 - an unknown key fails its own instance, later
            continue
        needed.add(key_id)
    for key_id in sorted(needed):
        for region in REGIONS:
            if region in down:
                continue
            try:
                key_export(region=region, key_id=key_id)
            except Exception as exc:  # noqa: BLE001 - the uploads record it per copy
                if region_fault(exc):
                    down[region] = exc


def _forget_deleted_meanwhile(instances: dict[int, Instance], touched: list[InstanceCopy]) -> None:
    """Remove what this batch uploaded for instances deleted while it ran (a study whose
    deletion was approved mid-upload). The deletion's purge removes the objects there when
    it runs; one this batch put there after the purge had run would be left for good. This
    check comes after the uploads, so one of the two always sees the other."""
    uploaded = {c.instance_id for c in touched if c.state == InstanceCopy.VERIFIED}
    if not uploaded:
        return
    # Gone, or pointing at another object now (a compression swapped it): what this batch
    # uploaded under the old key is nobody's.
    now = dict(Instance.unscoped.filter(pk__in=uploaded).values_list("pk", "storage_key"))
    gone = {pk for pk in uploaded if now.get(pk) != instances[pk].storage_key}
    for pk in gone:
        for copy in (c for c in touched if c.instance_id == pk and c.state == InstanceCopy.VERIFIED):
            try:
                object_delete(copy.region, instances[pk].storage_key)
            except Exception:  # noqa: BLE001 - logged; the key is in the deletion's tombstone
                log.warning("could not remove a copy of deleted instance %s from %s", pk, copy.region,
                            exc_info=True)


def copy_upload(instance: Instance, region: str) -> None:
    """Give one region a verified copy of `instance` now, unless it has one (commands,
    tests). Raises what stopped it; the copy records it."""
    copies = _copies([instance])
    mine = {r: copies[instance.pk, r] for r in REGIONS}
    if mine[region].state == InstanceCopy.VERIFIED:
        return
    try:
        _archive_instance(instance, mine, _Keys(), regions=(region,))
    finally:
        _record([mine[region]], {instance.pk: instance.storage_key})


def outbox_drive_inline(outbox_id: int) -> bool:
    """Do an ARCHIVE row's work in this process (restore, tests, management commands);
    True once both regions hold a verified copy."""
    return bool(outbox_advance(outbox_id))


def archive_row_for(instance: Instance) -> Outbox | None:
    """The instance's ARCHIVE outbox row."""
    return Outbox.unscoped.filter(kind=ARCHIVE, subject_id=instance.pk).order_by("-pk").first()
