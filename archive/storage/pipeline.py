"""The durable-storage pipeline: archive -> verify -> replicate -> verify, per instance.

Ingest writes one outbox row of kind ARCHIVE per instance (subject: the instance). Its
handler (archive/storage/handlers.py) picks the next step from the recorded copy states
and queues it; each step (`step_run`) loads the state from the database, does one thing,
records the result and advances the row again. Every step is safe to run twice or
concurrently (uploads overwrite with an equally valid ciphertext; verification decrypts
what is actually stored). The row is done when both regions hold a verified copy.
"""

import logging

from django.db.models import F
from django.utils import timezone

from archive.models import Instance
from archive.outbox.models import Outbox
from archive.outbox.services import outbox_advance, outbox_record_failure
from archive.storage.integrity import copy_check, stream_check
from archive.storage.keys import key_export
from archive.storage.models import InstanceCopy
from archive.storage.tier1 import tier1_path
from cloudpacs.objectstore.objects import object_open, object_put
from cloudpacs.objectstore.regions import PRIMARY, REGIONS, SECONDARY

log = logging.getLogger(__name__)

# The outbox kind of this work; the row's subject is the instance.
ARCHIVE = "archive"
UPLOAD, VERIFY = "upload", "verify"
# Verification failures of one copy before it is marked failed (the sweeper retries later).
MAX_VERIFY_FAILURES = 3


class NoSource(Exception):
    """Neither tier 1 nor a verified copy in the other region holds the instance."""


def other_region(region: str) -> str:
    return SECONDARY if region == PRIMARY else PRIMARY


def _copy(instance: Instance, region: str) -> InstanceCopy:
    copy, _ = InstanceCopy.unscoped.get_or_create(
        instance=instance, region=region, defaults={"tenant_id": instance.tenant_id})
    return copy


def _update(copy: InstanceCopy, **fields) -> None:
    fields["updated_at"] = timezone.now()
    InstanceCopy.unscoped.filter(pk=copy.pk).update(**fields)
    for name, value in fields.items():
        setattr(copy, name, value)


def next_step(instance: Instance) -> tuple[str, str] | None:
    """The next step for `instance`, or None when both regions hold a verified copy."""
    states = dict(InstanceCopy.unscoped.filter(instance=instance).values_list("region", "state"))
    for region in REGIONS:  # primary first: the secondary is a copy of the primary's bytes
        state = states.get(region, InstanceCopy.PENDING)
        if state == InstanceCopy.VERIFIED:
            continue
        return (VERIFY if state == InstanceCopy.UPLOADED else UPLOAD), region
    return None


def copy_upload(instance: Instance, region: str) -> None:
    """Put an encrypted copy into `region`: the other region's verified ciphertext if there
    is one, else the tier-1 file (the same format and key), so every copy holds the same
    bytes. Instance.sha256 stays the checksum of the plaintext, checked on every copy."""
    copy = _copy(instance, region)
    if copy.state in (InstanceCopy.UPLOADED, InstanceCopy.VERIFIED):
        return
    _update(copy, attempts=F("attempts") + 1)
    try:
        source = other_region(region)
        other = InstanceCopy.unscoped.filter(instance=instance, region=source,
                                             state=InstanceCopy.VERIFIED).first()
        if other is not None:
            if other.key_id:
                key_export(region=region, key_id=other.key_id)
            stream = object_open(source, instance.storage_key)
            try:
                object_put(region, instance.storage_key, stream)
            finally:
                stream.close()
            cipher_sha, cipher_size, key_id = other.cipher_sha256, other.cipher_size, other.key_id
        else:
            try:
                fh = open(tier1_path(instance.storage_key), "rb")  # noqa: SIM115 - closed below
            except FileNotFoundError:
                raise NoSource(f"instance {instance.pk} is in neither tier 1 nor {source}") from None
            with fh:
                # Tier 1 holds the ciphertext already: check it, then upload it as it is.
                cipher_sha, cipher_size, key_id = _tier1_check(instance, fh)
                key_export(region=region, key_id=key_id)
                fh.seek(0)
                object_put(region, instance.storage_key, fh)
    except Exception as exc:
        _update(copy, state=InstanceCopy.FAILED, last_error=f"upload: {exc}"[:2000])
        raise
    _update(copy, state=InstanceCopy.UPLOADED, cipher_sha256=cipher_sha, cipher_size=cipher_size,
            key_id=key_id, uploaded_at=timezone.now(), last_error="")


def _tier1_check(instance: Instance, fh) -> tuple[str, int, int]:
    """(ciphertext SHA-256, size, key id) of an open tier-1 file, once its plaintext has
    been decrypted and matched with the ingest checksum."""
    check = stream_check(instance, fh)
    if not check.ok:
        raise RuntimeError(f"tier-1 file of instance {instance.pk} no longer matches its ingest "
                           f"checksum: {check.detail}")
    return check.cipher_sha256, check.cipher_size, check.key_id


def copy_verify(instance: Instance, region: str) -> bool:
    """Read the copy back and decrypt it; mark it verified, or pending for a new upload."""
    copy = _copy(instance, region)
    if copy.state != InstanceCopy.UPLOADED:
        return copy.state == InstanceCopy.VERIFIED
    try:
        check = copy_check(instance, region)
    except Exception as exc:
        _update(copy, last_error=f"verify: {exc}"[:2000])
        raise
    now = timezone.now()
    if check.ok:
        _update(copy, state=InstanceCopy.VERIFIED, verified_at=now, checked_at=now,
                cipher_sha256=check.cipher_sha256, cipher_size=check.cipher_size,
                key_id=check.key_id, last_error="")
        return True
    log.warning("copy of instance %s in %s failed verification: %s", instance.pk, region, check.detail)
    failures = copy.attempts
    _update(copy, state=InstanceCopy.FAILED if failures >= MAX_VERIFY_FAILURES else InstanceCopy.PENDING,
            last_error=f"verify: {check.problem}: {check.detail}"[:2000])
    return False


def _instance(outbox_id: int) -> Instance | None:
    """The instance an undone ARCHIVE row is about; None when the row is done or gone, or
    the instance was deleted since (retention): nothing is left to do then."""
    row = Outbox.unscoped.filter(pk=outbox_id, kind=ARCHIVE, done_at=None).values_list("subject_id").first()
    if row is None:
        return None
    return Instance.unscoped.select_related("tenant").filter(pk=row[0]).first()


def step_run(outbox_id: int, step: str, region: str) -> None:
    """Run one step (called by the tasks), record a failure on the outbox row, then advance."""
    instance = _instance(outbox_id)
    if instance is None:
        outbox_advance(outbox_id)  # marks a row whose instance is gone done
        return
    try:
        if step == UPLOAD:
            copy_upload(instance, region)
        else:
            copy_verify(instance, region)
    except Exception as exc:
        outbox_record_failure(outbox_id, f"{step} {region}: {exc}")
        raise
    outbox_advance(outbox_id)


def outbox_drive_inline(outbox_id: int) -> bool:
    """Run every remaining step of an ARCHIVE row in this process (restore, tests,
    management commands); True once both regions hold a verified copy."""
    for _ in range(12):
        instance = _instance(outbox_id)
        if instance is None:
            return False
        step = next_step(instance)
        if step is None:
            return bool(outbox_advance(outbox_id))  # the handler finds nothing left: marks it done
        if step[0] == UPLOAD:
            copy_upload(instance, step[1])
        else:
            copy_verify(instance, step[1])
    return False


def archive_row_for(instance: Instance) -> Outbox | None:
    """The instance's ARCHIVE outbox row."""
    return Outbox.unscoped.filter(kind=ARCHIVE, subject_id=instance.pk).order_by("-pk").first()
