"""Reads behind the study page and the study API: one study, its series, its storage state.

Storage state comes from the durable-storage code's per-region copy summary
(`instance_copies_summary(study)`) when that selector exists; the outbox counts
(pending / done archive work for the study's instances) are always included, since they
say whether the copies are still being made.
"""

from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from django.db.models import Count, Q, QuerySet, Sum

from archive.models import Outbox, Series, Study

# Where the durable-storage code may define `instance_copies_summary(study)`.
SUMMARY_MODULES = ("archive.storage.selectors", "archive.storage", "archive.storage.summary",
                   "archive.storage.state", "archive.selectors")


def study_get(*, tenant, pk: int) -> Study:
    """The clinic's study, or Study.DoesNotExist (another clinic's pk included)."""
    return Study.objects.for_tenant(tenant).get(pk=pk)


def study_series(*, study: Study) -> QuerySet:
    """The study's series in scanner order, each with its stored size (one query)."""
    return (Series.objects.for_tenant(study.tenant).filter(study=study)
            .annotate(size_bytes=Sum("instances__size_bytes"))
            .order_by("series_number", "pk"))


@dataclass
class RegionState:
    region: str
    counts: dict[str, int]  # copy state -> number of instances

    @property
    def total(self) -> int:
        return sum(self.counts.values())


@dataclass
class StorageState:
    instances: int
    outbox_pending: int
    outbox_done: int
    outbox_failing: int  # pending with at least one failed attempt
    regions: list[RegionState] = field(default_factory=list)
    source: str = "outbox"  # "copies" when the per-region summary is available

    @property
    def complete(self) -> bool:
        return self.instances > 0 and self.outbox_pending == 0


def _copies_summary_function():
    for name in SUMMARY_MODULES:
        try:
            module = import_module(name)
        except ImportError:
            continue
        function = getattr(module, "instance_copies_summary", None)
        if callable(function):
            return function
    return None


def _regions(summary: Any) -> list[RegionState]:
    """Per-region counts from the summary: {"counts": {region: {state: n}}} (what
    archive.storage.selectors returns), {region: {state: n}} or [{"region": r, state: n}]."""
    if isinstance(summary, dict) and isinstance(summary.get("counts"), dict):
        summary = summary["counts"]
    if isinstance(summary, dict):
        items = [{"region": region, **counts} for region, counts in summary.items()
                 if isinstance(counts, dict)]
    else:
        items = [dict(row) for row in summary or [] if isinstance(row, dict) and "region" in row]
    return [RegionState(region=str(row.pop("region")),
                        counts={str(k): int(v) for k, v in row.items() if isinstance(v, int)})
            for row in items]


def study_storage_state(*, study: Study) -> StorageState:
    outbox = (Outbox.objects.for_tenant(study.tenant)
              .filter(kind=Outbox.ARCHIVE, instance__study=study)
              .aggregate(pending=Count("pk", filter=Q(done_at__isnull=True)),
                         done=Count("pk", filter=Q(done_at__isnull=False)),
                         failing=Count("pk", filter=Q(done_at__isnull=True, attempts__gt=0))))
    state = StorageState(instances=study.num_instances, outbox_pending=outbox["pending"],
                         outbox_done=outbox["done"], outbox_failing=outbox["failing"])
    summary_function = _copies_summary_function()
    if summary_function is not None:
        state.regions = _regions(summary_function(study))
        state.source = "copies"
    return state
