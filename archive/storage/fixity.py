"""Fixity audit: re-read verified copies in both regions and repair a bad one from the good.

Every finding is stored (operator page: Django admin, FixityRun with its findings) and,
when a copy is repaired, written to the clinic's audit log."""

import logging

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from archive.models import Instance
from archive.storage.integrity import copy_check
from archive.storage.models import FixityFinding, FixityRun, InstanceCopy
from cloudpacs.objectstore.objects import object_open, object_put
from cloudpacs.objectstore.regions import REGIONS
from tenants.audit import Actor, audit_record

log = logging.getLogger(__name__)
ACTOR = Actor.system("fixity-audit")


def _instances(limit: int):
    # Least recently checked first, so a bounded batch per run still covers everything.
    copies = (InstanceCopy.unscoped.filter(state=InstanceCopy.VERIFIED)
              .order_by(F("checked_at").asc(nulls_first=True)).values_list("instance_id", flat=True))
    seen: list[int] = []
    for instance_id in copies.iterator():
        if instance_id not in seen:
            seen.append(instance_id)
            if limit and len(seen) >= limit:
                break
    return Instance.unscoped.select_related("tenant").filter(pk__in=seen)


def fixity_run(*, limit: int | None = None) -> FixityRun:
    """One audit pass over instances with verified copies; returns the recorded run."""
    run = FixityRun.objects.create()
    try:
        for instance in _instances(settings.FIXITY_AUDIT_BATCH if limit is None else limit):
            _audit_instance(run, instance)
    except Exception as exc:  # a region that is down: record it, the next run retries
        run.error = str(exc)[:2000]
        log.exception("fixity run %s stopped", run.pk)
    run.finished_at = timezone.now()
    run.save()
    return run


def _audit_instance(run: FixityRun, instance: Instance) -> None:
    checks = {}
    for region in REGIONS:
        checks[region] = copy_check(instance, region)
        run.checked += 1
    now = timezone.now()
    good = [r for r in REGIONS if checks[r].ok]
    for region in REGIONS:
        check = checks[region]
        copy = InstanceCopy.unscoped.filter(instance=instance, region=region).first()
        if check.ok:
            run.ok += 1
            if copy:
                InstanceCopy.unscoped.filter(pk=copy.pk).update(checked_at=now)
            continue
        action, detail = FixityFinding.UNREPAIRED, check.detail
        if good:
            try:
                _repair(instance, source=good[0], target=region)
                action = FixityFinding.REPAIRED
            except Exception as exc:  # noqa: BLE001 - recorded as a finding
                detail = f"{check.detail}; repair failed: {exc}"
        if copy:
            fields = {"checked_at": now, "updated_at": now, "last_error": f"fixity: {check.problem}"}
            if action != FixityFinding.REPAIRED:
                fields["state"] = InstanceCopy.FAILED
            InstanceCopy.unscoped.filter(pk=copy.pk).update(**fields)
        run.repaired += action == FixityFinding.REPAIRED
        run.unrepaired += action != FixityFinding.REPAIRED
        FixityFinding.unscoped.create(
            run=run, tenant_id=instance.tenant_id, instance=instance, storage_key=instance.storage_key,
            region=region, problem=check.problem, action=action, detail=detail[:2000])
        log.warning("fixity: %s copy of instance %s in %s: %s", check.problem, instance.pk, region, action)
        audit_record(tenant=instance.tenant, actor=ACTOR, action=f"storage.copy_{action}",
                     obj_type="instance", obj_id=str(instance.pk),
                     detail={"region": region, "problem": check.problem})


def _repair(instance: Instance, *, source: str, target: str) -> None:
    """Copy the good ciphertext over the bad one, then prove the repair by re-reading it."""
    stream = object_open(source, instance.storage_key)
    try:
        object_put(target, instance.storage_key, stream)
    finally:
        stream.close()
    check = copy_check(instance, target)
    if not check.ok:
        raise RuntimeError(f"copy still bad after repair: {check.detail}")
    now = timezone.now()
    InstanceCopy.unscoped.update_or_create(
        instance=instance, region=target,
        defaults={"tenant_id": instance.tenant_id, "state": InstanceCopy.VERIFIED, "verified_at": now,
                  "checked_at": now, "cipher_sha256": check.cipher_sha256,
                  "cipher_size": check.cipher_size, "key_id": check.key_id, "last_error": "",
                  "updated_at": now})
