"""Reads about durable storage: a clinic's counts, and each instance's state per region."""

from django.db.models import Count, Min
from django.utils import timezone

from archive.models import Instance
from archive.storage.models import InstanceCopy
from cloudpacs.objectstore.regions import PRIMARY, REGIONS, SECONDARY


def instances_verified_everywhere(instances):
    """The ids of these instances (ids or a queryset) verified in every region."""
    return (InstanceCopy.unscoped.filter(instance__in=instances, state=InstanceCopy.VERIFIED)
            .values("instance_id").annotate(n=Count("region")).filter(n=len(REGIONS))
            .values_list("instance_id", flat=True))


def storage_status(*, tenant) -> dict:
    """One clinic's durable-storage counts (`manage.py storage_status SLUG --json`)."""
    instances = Instance.objects.for_tenant(tenant)
    copies = InstanceCopy.objects.for_tenant(tenant)
    by_state = {(r, s): n for r, s, n in copies.values_list("region", "state")
                .annotate(n=Count("pk")).values_list("region", "state", "n")}
    waiting = instances.exclude(pk__in=instances_verified_everywhere(instances.values("pk")))
    oldest = waiting.aggregate(t=Min("created_at"))["t"]
    total = instances.count()
    status = {
        "tenant": tenant.slug,
        "instances": total,
        "bytes": sum(instances.values_list("size_bytes", flat=True)),
        "primary_verified": by_state.get((PRIMARY, InstanceCopy.VERIFIED), 0),
        "secondary_verified": by_state.get((SECONDARY, InstanceCopy.VERIFIED), 0),
        "waiting": waiting.count(),
        "oldest_unreplicated_seconds": (round((timezone.now() - oldest).total_seconds(), 1)
                                        if oldest else None),
    }
    for region in REGIONS:
        status[f"{region}_failed"] = by_state.get((region, InstanceCopy.FAILED), 0)
    return status


def instance_copies_summary(study) -> dict:
    """Each instance of `study` with its copy state per region, plus counts per region.

    {"regions": ["primary", "secondary"],
     "instances": [{"id", "sop_instance_uid", "instance_number", "primary", "secondary",
                    "last_error"}],
     "counts": {"primary": {"verified": n, ...}, "secondary": {...}}, "all_verified": bool}
    A region without a copy row yet shows "pending"."""
    copies: dict[int, dict[str, InstanceCopy]] = {}
    for copy in InstanceCopy.unscoped.filter(instance__study=study, tenant_id=study.tenant_id):
        copies.setdefault(copy.instance_id, {})[copy.region] = copy
    rows, counts = [], {r: {} for r in REGIONS}
    instances = (Instance.objects.for_tenant(study.tenant).filter(study=study)
                 .order_by("series_id", "instance_number", "pk")
                 .values_list("pk", "sop_instance_uid", "instance_number"))
    for pk, sop_uid, number in instances:
        row = {"id": pk, "sop_instance_uid": sop_uid, "instance_number": number, "last_error": ""}
        for region in REGIONS:
            copy = copies.get(pk, {}).get(region)
            state = copy.state if copy else InstanceCopy.PENDING
            row[region] = state
            counts[region][state] = counts[region].get(state, 0) + 1
            if copy and copy.last_error and state != InstanceCopy.VERIFIED:
                row["last_error"] = copy.last_error
        rows.append(row)
    all_verified = all(counts[r].get(InstanceCopy.VERIFIED, 0) == len(rows) for r in REGIONS)
    return {"regions": list(REGIONS), "instances": rows, "counts": counts, "all_verified": all_verified}
