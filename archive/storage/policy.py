"""A clinic's storage policy: lossless compression and when copies go cold. Both are
opt-in, set on the clinic's storage page, and audited with the values before and after."""

from django.db import transaction
from django.utils import timezone

from archive.storage.models import StoragePolicy
from tenants.audit import Actor, audit_record


def policy_get(*, tenant) -> StoragePolicy:
    return StoragePolicy.objects.for_tenant(tenant).first() or StoragePolicy(tenant=tenant)


def policy_update(*, tenant, actor: Actor, **values) -> dict:
    """Set fields of the policy (compression_syntax, cold_after_days); {field: [before,
    after]} of what changed, in one audit event."""
    unknown = set(values) - {"compression_syntax", "cold_after_days"}
    if unknown:
        raise TypeError(f"unknown storage policy fields {sorted(unknown)}")
    with transaction.atomic():
        policy, _ = StoragePolicy.objects.for_tenant(tenant).select_for_update().get_or_create()
        changes = {name: [getattr(policy, name), value] for name, value in values.items()
                   if getattr(policy, name) != value}
        if not changes:
            return {}
        for name, (_, value) in changes.items():
            setattr(policy, name, value)
        policy.updated_at = timezone.now()
        policy.save()
        audit_record(tenant=tenant, actor=actor, action="storage.policy_changed", obj_type="clinic",
                     obj_id=tenant.pk, detail={"changes": changes})
    return changes
