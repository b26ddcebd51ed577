"""Lossless compression of stored instances, opt-in per clinic (its storage settings page).

An instance whose pixel data came uncompressed is re-encoded by a worker once its copy is
verified in both regions, never on the acknowledgement path: so until the compressed copy
has replaced it, the original is safe in both regions. For each instance:

1. read and decode it, re-encode it (pydicom's encoders: pyjpegls for JPEG-LS lossless,
   pylibjpeg-openjpeg for JPEG 2000 lossless), decode the result and compare every pixel
   with the original; kept as it is when they differ, when the encoder cannot take it
   (a float image, say) or when the result is not smaller;
2. seal the new bytes into tier 1 under a new storage key and put them into both regions,
   each confirmed by the region's checksum, like any pipeline copy;
3. in one transaction, point the instance at the new object (transfer syntax, size,
   SHA-256, header) and keep what it was received as (`Instance.original_*`); the SOP
   Instance UID and every other attribute are unchanged;
4. remove the superseded objects, STORAGE_DROP_GRACE_SECONDS later (an outbox row of kind
   DROP, so a crash cannot forget them; readers that opened the old object finish first).

Readers see either the old object or the new one, whole. WADO-RS and C-GET serve the
stored syntax or transcode to what the client asks. An instance of a deleted study, or
one that changed meanwhile, is left alone and the new objects are removed."""

import io
import logging
from dataclasses import dataclass
from datetime import timedelta

import numpy as np
import pydicom
from django.conf import settings
from django.db import transaction
from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone
from pydicom.uid import UID, JPEG2000Lossless, JPEGLSLossless

from archive.models import Instance
from archive.outbox.services import outbox_add
from archive.storage.models import InstanceCopy, StoragePolicy
from archive.storage.policy import policy_update
from archive.storage.reader import open_instance
from archive.storage.replace import Placed, object_place, object_remove
from archive.storage.tier1 import tier1_path
from cloudpacs.objectstore.objects import object_delete
from cloudpacs.objectstore.regions import REGIONS
from tenants.audit import Actor, audit_record_many
from tenants.models import Tenant

log = logging.getLogger(__name__)

COMPRESS = "compress"  # outbox kind: re-encode the instance (subject)
DROP = "drop_superseded"  # outbox kind: remove an instance's superseded objects (payload: key)
STANDARD = "STANDARD"
SYNTAXES = {JPEGLSLossless: "JPEG-LS lossless", JPEG2000Lossless: "JPEG 2000 lossless"}
# Re-encoding holds an instance in memory a few times over (bytes, pixels, result, check),
# in each worker thread: larger instances (tomosynthesis, long cine loops) stay as received.
MAX_BYTES = 64 * 1024 * 1024
ACTOR = Actor.system("compression")


@dataclass
class Result:
    compressed: bool
    reason: str = ""  # why it was kept as it is
    saved_bytes: int = 0


def compression_set(*, tenant, syntax: str, actor: Actor) -> bool:
    """Turn the clinic's compression on (a syntax of SYNTAXES) or off (""); audited with
    the value before and after. Whether anything changed."""
    if syntax and syntax not in SYNTAXES:
        raise ValueError(f"not a lossless syntax we encode: {syntax}")
    return bool(policy_update(tenant=tenant, actor=actor, compression_syntax=syntax))


def compressible(instance: Instance) -> bool:
    """Received with uncompressed pixel data, and not re-encoded yet."""
    ts = UID(instance.transfer_syntax_uid)
    return (not instance.original_sha256 and ts.is_transfer_syntax and not ts.is_compressed
            and "7FE00010" in (instance.metadata or {}) and instance.size_bytes <= MAX_BYTES)


def compress_work(archived: dict[int, list[int]]) -> None:
    """Queue the re-encoding of instances just verified in both regions ({clinic id:
    instance ids}) whose clinic asked for it: one query when none did."""
    on = set(StoragePolicy.unscoped.filter(tenant_id__in=archived).exclude(compression_syntax="")
             .values_list("tenant_id", flat=True))
    if not on:
        return
    by_tenant: dict[int, list[int]] = {}
    for instance in Instance.unscoped.filter(pk__in=[pk for t in on for pk in archived[t]]).only(
            "id", "tenant_id", "transfer_syntax_uid", "metadata", "original_sha256", "size_bytes"):
        if compressible(instance):
            by_tenant.setdefault(instance.tenant_id, []).append(instance.pk)
    if not by_tenant:
        return
    tenants = Tenant.objects.in_bulk(by_tenant)
    for tenant_id, ids in by_tenant.items():
        outbox_add(tenant=tenants[tenant_id], kind=COMPRESS, subjects=ids)


def compress_rows(rows) -> dict:
    """The outbox handler of COMPRESS rows: True once an instance is re-encoded or kept as
    it is for good; the exception (the row is retried) when a region or the database
    failed on the way."""
    instances = Instance.unscoped.in_bulk([row.subject_id for row in rows])
    syntaxes = dict(StoragePolicy.unscoped.filter(tenant_id__in={i.tenant_id for i in instances.values()})
                    .values_list("tenant_id", "compression_syntax"))
    results, done = {}, {}
    for row in rows:
        instance = instances.get(row.subject_id)
        syntax = syntaxes.get(instance.tenant_id, "") if instance else ""
        if instance is None or not syntax or not compressible(instance):
            results[row.pk] = True  # deleted, turned off meanwhile, or done already
            continue
        try:
            result = compress_instance(instance, syntax)
        except Exception as exc:  # noqa: BLE001 - this row is retried; the others go on
            log.warning("re-encoding instance %s failed: %s", instance.pk, exc)
            results[row.pk] = exc
            continue
        results[row.pk] = True
        done.setdefault(instance.tenant_id, []).append(result)
    tenants = Tenant.objects.in_bulk(done)
    for tenant_id, outcomes in done.items():
        compressed = [r for r in outcomes if r.compressed]
        audit_record_many(tenant=tenants[tenant_id], actor=ACTOR, events=[{
            "action": "storage.compressed", "obj_type": "instances", "detail": {
                "compressed": len(compressed), "kept": len(outcomes) - len(compressed),
                "saved_bytes": sum(r.saved_bytes for r in compressed),
                "kept_why": sorted({r.reason for r in outcomes if not r.compressed})}}])
    return results


def _encoded(instance: Instance, syntax: str) -> bytes | Result:
    """The instance re-encoded in `syntax`, its pixels checked bit for bit; or why not."""
    with open_instance(instance) as fh:
        received = fh.read()
    ds = pydicom.dcmread(io.BytesIO(received))
    if UID(ds.file_meta.TransferSyntaxUID).is_compressed or "PixelData" not in ds:
        return Result(False, "not uncompressed pixel data")
    try:
        original = ds.pixel_array.copy()
        ds.compress(syntax, generate_instance_uid=False,  # the same instance: its UID stays
                    **({"use_mct": False} if syntax == JPEG2000Lossless else {}))
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        data = out.getvalue()
        encoded = pydicom.dcmread(io.BytesIO(data))
        decoded = encoded.pixel_array
    except Exception as exc:  # noqa: BLE001 - encoders refuse many kinds of image
        return Result(False, f"the encoder cannot take it ({type(exc).__name__})")
    if decoded.shape != original.shape or decoded.dtype != original.dtype or not np.array_equal(decoded, original):
        log.error("instance %s: the %s encoding does not decode to the same pixels; kept as received",
                  instance.pk, UID(syntax).name)
        return Result(False, "not bit-exact")
    if not _same_header(encoded, pydicom.dcmread(io.BytesIO(received))):
        log.error("instance %s: the %s encoding changed attributes besides the pixel data; kept as received",
                  instance.pk, UID(syntax).name)
        return Result(False, "attributes changed")
    if len(data) >= instance.size_bytes:
        return Result(False, "not smaller")
    return data


def _same_header(encoded, received) -> bool:
    """Every attribute but the pixel data as received (the file meta names the new syntax;
    trailing padding after the pixel data is compared too)."""
    encoded = encoded.copy()
    for ds in (encoded, received):
        for tag in [t for t in ds.keys() if t.group == 0x7FE0]:
            del ds[tag]
    return encoded == received


def compress_instance(instance: Instance, syntax: str) -> Result:
    encoded = _encoded(instance, syntax)
    if isinstance(encoded, Result):
        return encoded
    tenant = Tenant.objects.get(pk=instance.tenant_id)
    placed = object_place(tenant, encoded)
    try:
        swapped = _swap(tenant, instance, placed)
    except BaseException:
        object_remove(placed.key, placed.regions)
        raise
    if not swapped:  # deleted or changed meanwhile
        object_remove(placed.key, placed.regions)
        return Result(False, "changed meanwhile")
    return Result(True, saved_bytes=instance.size_bytes - len(encoded))


def _swap(tenant, instance: Instance, placed: Placed) -> bool:
    now = timezone.now()
    with transaction.atomic():
        current = (Instance.unscoped.select_for_update().filter(pk=instance.pk, storage_key=instance.storage_key)
                   .values_list("sha256", flat=True).first())
        if current != instance.sha256:
            return False
        Instance.unscoped.filter(pk=instance.pk).update(
            storage_key=placed.key, transfer_syntax_uid=placed.parsed.transfer_syntax_uid, size_bytes=placed.size,
            sha256=placed.sha256, metadata=placed.parsed.metadata,
            original_sha256=instance.sha256, original_size_bytes=instance.size_bytes,
            original_transfer_syntax_uid=instance.transfer_syntax_uid)
        copies_point_at(instance.pk, placed, now)
        outbox_add(tenant=tenant, kind=DROP, subjects=[instance.pk],
                   payload={"key": instance.storage_key})
    return True


def copies_point_at(instance_id: int, placed: Placed, now) -> None:
    """The instance's copy rows describe the new objects, verified in both regions."""
    InstanceCopy.unscoped.filter(instance_id=instance_id).update(
        state=InstanceCopy.VERIFIED, cipher_sha256=placed.cipher_sha256, cipher_size=placed.cipher_size,
        key_id=placed.key_id, uploaded_at=now, verified_at=now, checked_at=now, last_error="", updated_at=now,
        storage_class=STANDARD)  # new objects; they go cold again on the policy's schedule


def drop_rows(rows) -> dict:
    """The outbox handler of DROP rows: the superseded objects of a re-encoded instance go
    from both regions and tier 1. A region that fails keeps the row for a retry."""
    results = {}
    settle = timezone.now() - timedelta(seconds=settings.STORAGE_DROP_GRACE_SECONDS)
    for row in rows:
        key = row.payload.get("key", "")
        if row.created_at > settle:
            # A reader that found the old object a moment before the swap (a series being
            # streamed, an export) still has it: dropped later (the outbox sweeper re-drives).
            results[row.pk] = False
            continue
        if not key or Instance.unscoped.filter(storage_key=key).exists():
            results[row.pk] = True  # never remove an object an instance still points to
            continue
        try:
            for region in REGIONS:
                object_delete(region, key)
            tier1_path(key).unlink(missing_ok=True)
            results[row.pk] = True
        except Exception as exc:  # noqa: BLE001 - retried
            results[row.pk] = exc
    return results


def compression_summary(*, tenant) -> dict:
    """Stored bytes now and as received, for the clinic's storage page."""
    totals = Instance.objects.for_tenant(tenant).aggregate(
        instances=Count("pk"), stored=Coalesce(Sum("size_bytes"), 0),
        received=Coalesce(Sum(Coalesce("original_size_bytes", "size_bytes")), 0),
        compressed=Count("pk", filter=~Q(original_sha256="")))
    totals["ratio"] = totals["received"] / totals["stored"] if totals["stored"] else None
    return totals
