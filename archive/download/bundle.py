"""A clinic's export as one zip, asked for on its settings page: a worker builds it while
reading the archive, encrypts it as it goes (the clinic's data key, the regions' object
format) and puts it in the primary region; the clinic's admins download it, decrypted
as it streams, until it expires (EXPORT_KEEP_DAYS). The zip holds exactly what
`export_clinic` writes to a folder (archive/download/export.py). Nothing of it is
plaintext at rest: not on the worker's disk, not in the region."""

import hashlib
import logging
import time
import uuid
import zipfile
from collections.abc import Iterator
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from archive.download.export import (
    ChunkReader,
    ExportError,
    Progress,
    manifest_bytes,
    study_entries,
)
from archive.download.models import ClinicExport
from archive.models import Instance, Study
from archive.storage.keys import active_data_key, data_key_for
from cloudpacs.objectstore import crypto
from cloudpacs.objectstore.objects import (
    object_delete,
    object_open,
    object_put_stream,
    stream_digest,
)
from cloudpacs.objectstore.regions import PRIMARY
from tenants.audit import Actor, audit_record

log = logging.getLogger(__name__)
ACTOR = Actor.system("clinic export")
BUILD_TASK = "archive.export_build"
SAVE_EVERY_SECONDS = 2.0
STALLED_SECONDS = 15 * 60


class _Sink:
    """Where zipfile writes: kept until the generator hands it on (zipfile writes data
    descriptors to an output it cannot seek)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def write(self, data) -> int:
        self._parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        out, self._parts = b"".join(self._parts), []
        return out


def _zip_chunks(entries: Iterator[tuple[str, Iterator[bytes]]]) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        for name, chunks in entries:
            with zf.open(name, "w", force_zip64=True) as member:
                for chunk in chunks:
                    member.write(chunk)
                    if data := sink.take():
                        yield data
            if data := sink.take():
                yield data
    yield sink.take()


def _entries(export: ClinicExport, progress: Progress) -> Iterator[tuple[str, Iterator[bytes]]]:
    keys: dict = {}
    manifests: list[bytes] = []
    saved = time.monotonic()
    for study in Study.objects.for_tenant(export.tenant).order_by("pk").iterator(chunk_size=200):
        for path, chunks in study_entries(study, keys, progress):
            if path == "manifest.csv":
                data = b"".join(chunks)
                manifests.append(data)
                chunks = iter([data])
            yield f"studies/{study.study_instance_uid}/{path}", chunks
            if time.monotonic() - saved > SAVE_EVERY_SECONDS:
                _save_progress(export, progress)
                saved = time.monotonic()
        progress.studies_done += 1
    header = manifest_bytes([])  # every study's manifest starts with this line
    yield "manifest.csv", iter([header + b"".join(m[len(header):] for m in manifests)])


def _save_progress(export: ClinicExport, progress: Progress) -> None:
    ClinicExport.unscoped.filter(pk=export.pk).update(studies_done=progress.studies_done,
                                                      bytes_done=progress.bytes_done, updated_at=timezone.now())


class _Counting:
    """Passes chunks on, counting their bytes and hashing them."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks, self.size, self.sha256 = chunks, 0, hashlib.sha256()

    def __iter__(self):
        for chunk in self._chunks:
            self.size += len(chunk)
            self.sha256.update(chunk)
            yield chunk


def export_request(*, tenant, user, actor: Actor) -> ClinicExport:
    """A new export of the clinic, queued for a worker (one at a time per clinic)."""
    running = ClinicExport.objects.for_tenant(tenant).filter(state__in=[ClinicExport.QUEUED, ClinicExport.RUNNING])
    # One whose worker went away (no progress for a while) is given up, and a new one made.
    running.filter(updated_at__lt=timezone.now() - timedelta(seconds=STALLED_SECONDS)).update(
        state=ClinicExport.FAILED, error="stopped: the worker building it went away", finished_at=timezone.now())
    if running.exists():
        return running.first()
    export = ClinicExport.objects.for_tenant(tenant).create(
        requested_by=user, studies_total=Study.objects.for_tenant(tenant).count(),
        bytes_total=sum(Instance.objects.for_tenant(tenant).values_list("size_bytes", flat=True)))
    audit_record(tenant=tenant, actor=actor, action="clinic.export_requested", obj_type="export", obj_id=export.pk,
                 detail={"studies": export.studies_total})
    # By name, once committed: the task module imports this one, not the other way round.
    transaction.on_commit(lambda: current_app.tasks[BUILD_TASK].delay(export.pk))
    return export


def export_build(export_id: int) -> ClinicExport:
    """Build, encrypt and store the zip (the worker's task). A failure is recorded on the
    export, with nothing left in the region; the admin asks again."""
    export = ClinicExport.unscoped.select_related("tenant").get(pk=export_id)
    if not ClinicExport.unscoped.filter(pk=export.pk, state=ClinicExport.QUEUED).update(
            state=ClinicExport.RUNNING, updated_at=timezone.now()):
        return export  # a second delivery of the same message, or given up meanwhile
    tenant = export.tenant
    progress = Progress(studies_total=export.studies_total, bytes_total=export.bytes_total)
    key = f"_exports/{tenant.pk}/{uuid.uuid4().hex}"
    key_id, data_key = active_data_key(tenant=tenant)
    plain = _Counting(_zip_chunks(_entries(export, progress)))
    cipher = _Counting(crypto.encrypt_chunks(ChunkReader(iter(plain)), data_key=data_key, key_id=key_id))
    try:
        object_put_stream(PRIMARY, key, ChunkReader(iter(cipher)))
        _check_stored(key, cipher.sha256.hexdigest(), cipher.size)
    except Exception as exc:  # noqa: BLE001 - recorded on the export for the admin to see
        try:
            object_delete(PRIMARY, key)
        except Exception:  # noqa: BLE001 - logged; an unreferenced ciphertext
            log.warning("could not remove a failed export's object", exc_info=True)
        why = str(exc) if isinstance(exc, ExportError) else f"{type(exc).__name__}: {exc}"
        ClinicExport.unscoped.filter(pk=export.pk).update(state=ClinicExport.FAILED, error=why[:2000],
                                                          finished_at=timezone.now())
        audit_record(tenant=tenant, actor=ACTOR, action="clinic.export_failed", obj_type="export",
                     obj_id=export.pk, detail={"error": why[:300]})
        raise
    now = timezone.now()
    ClinicExport.unscoped.filter(pk=export.pk, state=ClinicExport.RUNNING).update(
        state=ClinicExport.READY, storage_key=key, size_bytes=plain.size, studies_done=progress.studies_done,
        bytes_done=progress.bytes_done, finished_at=now, expires_at=now + timedelta(days=settings.EXPORT_KEEP_DAYS))
    audit_record(tenant=tenant, actor=ACTOR, action="clinic.export_ready", obj_type="export", obj_id=export.pk,
                 detail={"studies": progress.studies_done, "instances": progress.instances, "bytes": plain.size})
    export.refresh_from_db()
    return export


def _check_stored(key: str, sha256: str, size: int) -> None:
    """Read the stored ciphertext back: the export is ready only if the region holds it whole."""
    if stream_digest(object_open(PRIMARY, key)) != (sha256, size):
        raise ExportError("the region holds other bytes than were written")


def export_chunks(export: ClinicExport) -> Iterator[bytes]:
    """The zip's bytes, decrypted and authenticated segment by segment as they stream.
    The object is opened now: ObjectMissing (or the store's error) before any byte is sent."""
    stream = object_open(PRIMARY, export.storage_key)

    def chunks():
        try:
            yield from crypto.decrypt_chunks(stream, key_lookup=lambda kid: data_key_for(
                tenant_id=export.tenant_id, key_id=kid))
        finally:
            stream.close()
    return chunks()


def exports_withdraw(*, tenant) -> int:
    """A study of the clinic was deleted: its exports made before may hold it, so they
    expire now (no more downloads; the hourly expiry removes their zips)."""
    now = timezone.now()
    ready = ClinicExport.objects.for_tenant(tenant).filter(state=ClinicExport.READY).update(expires_at=now)
    # One being built may already hold the study: it fails, and the admin asks again.
    building = ClinicExport.objects.for_tenant(tenant).filter(
        state__in=[ClinicExport.QUEUED, ClinicExport.RUNNING]).update(
        state=ClinicExport.FAILED, error="a study was deleted while it was built: ask again", finished_at=now)
    return ready + building


def exports_expire(*, now=None) -> int:
    """Remove the zips of exports past their expiry (beat, hourly)."""
    now = now or timezone.now()
    expired = 0
    for export in ClinicExport.unscoped.filter(state=ClinicExport.READY, expires_at__lte=now):
        try:
            object_delete(PRIMARY, export.storage_key)
        except Exception:  # noqa: BLE001 - tried again next hour
            log.warning("could not remove expired export %s", export.pk, exc_info=True)
            continue
        expired += ClinicExport.unscoped.filter(pk=export.pk, state=ClinicExport.READY).update(
            state=ClinicExport.EXPIRED, storage_key="")
    return expired

