"""Storage classes: a clinic's copies older than its `cold_after_days` move to the regions'
colder class (STORAGE_COLD_CLASS, by default S3 STANDARD_IA; GLACIER_IR also stays
instantly readable), in place, each confirmed by the store before the copy row says so.
Reads, the fixity audit and restores are unchanged: both classes are read like any
object. A local-folder region (the embedded mode) has no classes; its copies stay.

Run daily by beat (`archive.storage_cold_move`). The operator's page (admin, instance
copies → storage by class) shows bytes per clinic, region and class, and an estimated
monthly cost from STORAGE_PRICES_GB_MONTH."""

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Sum
from django.utils import timezone

from archive.storage.models import InstanceCopy, StoragePolicy
from cloudpacs.objectstore.objects import ClassesUnsupported, object_class_set

log = logging.getLogger(__name__)
STANDARD = "STANDARD"


def cold_class() -> str:
    return settings.STORAGE_COLD_CLASS


def prices() -> dict[str, float]:
    """{storage class: price per GB-month} from STORAGE_PRICES_GB_MONTH ("CLASS=price,...")."""
    out = {}
    for item in settings.STORAGE_PRICES_GB_MONTH.split(","):
        name, _, price = item.partition("=")
        if name.strip() and price.strip():
            out[name.strip().upper()] = float(price)
    return out


def cold_move(*, limit: int = 2000) -> dict:
    """Move up to `limit` due copies to the cold class; what was moved and skipped."""
    target, now = cold_class(), timezone.now()
    moved, unsupported, failed = 0, set(), 0
    for tenant_id, days in StoragePolicy.unscoped.exclude(cold_after_days=None).values_list(
            "tenant_id", "cold_after_days"):
        due = (InstanceCopy.unscoped.filter(tenant_id=tenant_id, state=InstanceCopy.VERIFIED,
                                            instance__created_at__lt=now - timedelta(days=days))
               .exclude(storage_class=target).exclude(region__in=unsupported)
               .values_list("pk", "region", "instance__storage_key", "cipher_sha256")[:limit - moved])
        for pk, region, key, sha256 in due:
            try:
                object_class_set(region, key, target, sha256=sha256)
            except ClassesUnsupported:
                unsupported.add(region)
                continue
            except Exception as exc:  # noqa: BLE001 - tried again on the next run
                log.warning("moving a copy in %s to %s failed: %s", region, target, exc)
                failed += 1
                continue
            # Only while the row still names that object (compression may have replaced it).
            moved += InstanceCopy.unscoped.filter(pk=pk, instance__storage_key=key).update(storage_class=target)
        if moved >= limit:
            break
    return {"moved": moved, "failed": failed, "regions_without_classes": sorted(unsupported)}


def bytes_by_class() -> list[dict]:
    """Per clinic, region and class: copies, bytes and the estimated monthly cost."""
    price = prices()
    rows = list(InstanceCopy.unscoped.filter(state=InstanceCopy.VERIFIED)
                .values("tenant__name", "region", "storage_class")
                .annotate(copies=Count("pk"), bytes=Sum("cipher_size"))
                .order_by("tenant__name", "region", "storage_class"))
    for row in rows:
        known = row["storage_class"] in price
        row["monthly_cost"] = (row["bytes"] or 0) / 1e9 * price[row["storage_class"]] if known else None
    return rows
