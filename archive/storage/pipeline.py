"""The durable-storage pipeline: archive -> verify -> replicate -> verify, per instance.

Each step takes an outbox id, loads the state from the database, does one thing, records
the result and hands over to `outbox_process`, which picks the next step from the
recorded state. Every step is safe to run twice or concurrently (uploads overwrite with an
equally valid ciphertext; verification decrypts what is actually stored). The outbox row is
done when both regions hold a verified copy; `outbox_sweep` re-drives rows left idle.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from archive.models import Instance, Outbox
from archive.storage.integrity import copy_check, stream_check
from archive.storage.keys import key_export
from archive.storage.models import InstanceCopy
from archive.storage.objects import object_open, object_put
from archive.storage.regions import PRIMARY, REGIONS, SECONDARY
from archive.storage.tier1 import tier1_path

log = logging.getLogger(__name__)

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


def _load(outbox_id: int) -> Outbox | None:
    return Outbox.unscoped.select_related("instance", "instance__tenant").filter(pk=outbox_id).first()


def _touch(outbox_id: int, **fields) -> None:
    Outbox.unscoped.filter(pk=outbox_id).update(next_attempt_at=timezone.now(), **fields)


def outbox_process(outbox_id: int) -> tuple[str, str] | None:
    """Advance one outbox row: mark it done, or enqueue its next step. Idempotent."""
    row = _load(outbox_id)
    if row is None or row.done_at is not None or row.kind != Outbox.ARCHIVE:
        return None
    if row.instance is None:  # the instance was deleted (retention): nothing left to do
        _touch(outbox_id, done_at=timezone.now())
        return None
    step = next_step(row.instance)
    if step is None:
        _touch(outbox_id, done_at=timezone.now(), last_error="")
        return None
    _touch(outbox_id)
    from archive import tasks

    task = tasks.upload_copy if step[0] == UPLOAD else tasks.verify_copy
    task.delay(outbox_id, step[1])
    return step


def step_run(outbox_id: int, step: str, region: str) -> None:
    """Run one step (called by the tasks), record a failure on the outbox row, then advance."""
    row = _load(outbox_id)
    if row is None or row.done_at is not None or row.instance is None:
        return
    try:
        if step == UPLOAD:
            copy_upload(row.instance, region)
        else:
            copy_verify(row.instance, region)
    except Exception as exc:
        _touch(outbox_id, last_error=f"{step} {region}: {exc}"[:2000])
        raise
    outbox_process(outbox_id)


def outbox_drive_inline(outbox_id: int) -> bool:
    """Run every remaining step in this process (restore, tests, management commands)."""
    for _ in range(12):
        row = _load(outbox_id)
        if row is None or row.instance is None:
            return False
        step = next_step(row.instance)
        if step is None:
            _touch(outbox_id, done_at=timezone.now(), last_error="")
            return True
        if step[0] == UPLOAD:
            copy_upload(row.instance, step[1])
        else:
            copy_verify(row.instance, step[1])
    return False


def outbox_sweep(*, limit: int = 1000) -> int:
    """Re-drive archive rows not done and idle longer than STORAGE_SWEEP_IDLE_SECONDS.

    Covers a lost broker message, a worker killed mid-step and retries given up during an
    outage. Returns how many rows were re-driven."""
    cutoff = timezone.now() - timedelta(seconds=settings.STORAGE_SWEEP_IDLE_SECONDS)
    ids = list(Outbox.unscoped.filter(kind=Outbox.ARCHIVE, done_at=None, next_attempt_at__lte=cutoff)
               .order_by("next_attempt_at").values_list("pk", "next_attempt_at")[:limit])
    redriven = 0
    for pk, seen in ids:
        # Claim the row (the compare on next_attempt_at stops two sweepers doubling up).
        if Outbox.unscoped.filter(pk=pk, next_attempt_at=seen).update(
                next_attempt_at=timezone.now(), attempts=F("attempts") + 1):
            try:
                outbox_process(pk)
                redriven += 1
            except Exception:  # noqa: BLE001 - broker down: the next sweep tries again
                log.warning("sweeper could not re-drive outbox %s", pk, exc_info=True)
    if redriven:
        log.info("sweeper re-drove %d outbox rows", redriven)
    return redriven
