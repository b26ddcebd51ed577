"""One study and what hangs off it: the study, a series, its series with sizes, its
storage state (the study page and API), and the instances a retrieve sends (WADO-RS,
C-GET next). Unknown or another clinic's objects raise archive.errors.NotFound."""

from dataclasses import dataclass, field
from typing import NamedTuple

from django.db.models import CharField, Count, IntegerField, Q, QuerySet, Sum, TextField
from django.db.models.functions import Cast

from archive.errors import InstanceNotFound, SeriesNotFound, StudyNotFound
from archive.models import Instance, Series, Study
from archive.outbox.models import Outbox
from archive.storage.pipeline import ARCHIVE
from archive.storage.selectors import instance_copies_summary
from cloudpacs.compiled_query import CompiledQuery, Slot, fields_in_order, models_from_row


def study_get(*, tenant, pk: int | None = None, study_uid: str | None = None) -> Study:
    """The clinic's study by primary key or by StudyInstanceUID; StudyNotFound otherwise."""
    lookup = {"pk": pk} if pk is not None else {"study_instance_uid": study_uid}
    study = Study.objects.for_tenant(tenant).filter(**lookup).first()
    if study is None:
        raise StudyNotFound("No such study")
    return study


def series_get(*, tenant, study_uid: str, series_uid: str) -> Series:
    series = (Series.objects.for_tenant(tenant).select_related("study")
              .filter(series_instance_uid=series_uid, study__study_instance_uid=study_uid).first())
    if series is None:
        raise SeriesNotFound("No such series")
    return series


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
    source: str = "copies"  # where the region counts come from (the API reports it)

    @property
    def complete(self) -> bool:
        return self.instances > 0 and self.outbox_pending == 0


def study_storage_state(*, study: Study) -> StorageState:
    """The archive work still to do for the study's instances (outbox rows) and each
    region's copies of them."""
    outbox = (Outbox.objects.for_tenant(study.tenant)
              .filter(kind=ARCHIVE, subject_id__in=Instance.objects.for_tenant(study.tenant)
                      .filter(study=study).values("pk"))
              .aggregate(pending=Count("pk", filter=Q(done_at__isnull=True)),
                         done=Count("pk", filter=Q(done_at__isnull=False)),
                         failing=Count("pk", filter=Q(done_at__isnull=True, attempts__gt=0))))
    counts = instance_copies_summary(study)["counts"]
    return StorageState(instances=study.num_instances, outbox_pending=outbox["pending"],
                        outbox_done=outbox["done"], outbox_failing=outbox["failing"],
                        regions=[RegionState(region=region, counts=dict(by_state))
                                 for region, by_state in counts.items()])


# tenant_id: the reader finds the clinic's data key with it (tier 1 is encrypted).
RETRIEVE_FIELDS = ("pk", "tenant_id", "study_id", "series_id", "sop_instance_uid", "sop_class_uid",
                   "transfer_syntax_uid", "storage_key", "size_bytes", "number_of_frames",
                   "rows", "columns", "instance_number",
                   "study__study_instance_uid", "series__series_instance_uid")


def _one_instance_query() -> tuple[list[str], CompiledQuery]:
    """One instance by its study's, series' and own UIDs within a clinic: what each of a
    viewer's hundreds of frame requests looks up, compiled once (cloudpacs.compiled_query)."""
    attnames = fields_in_order(Instance, {"id" if f == "pk" else f for f in RETRIEVE_FIELDS if "__" not in f})

    def build():
        uid = CharField()
        return (Instance.unscoped.filter(tenant_id=Slot("tenant", IntegerField()),
                                         study__study_instance_uid=Slot("study", uid),
                                         series__series_instance_uid=Slot("series", uid),
                                         sop_instance_uid=Slot("sop", uid))
                .values_list(*attnames, "study__study_instance_uid", "series__series_instance_uid")[:1])

    return attnames, CompiledQuery(build)


_RETRIEVE_ATTNAMES, _ONE_INSTANCE = _one_instance_query()
_STUDY, _SERIES = Instance._meta.get_field("study"), Instance._meta.get_field("series")


def _one_instance(*, tenant, study_uid: str, series_uid: str, sop_uid: str) -> list[Instance]:
    rows = _ONE_INSTANCE.rows(tenant=tenant.pk, study=study_uid, series=series_uid, sop=sop_uid)
    if not rows:
        raise InstanceNotFound("No such study, series or instance")
    return [_instance_from_row(rows[0], _RETRIEVE_ATTNAMES, {}, {})]


def _instance_from_row(row, attnames: list[str], studies: dict, series: dict) -> Instance:
    """An Instance from a retrieve row (its fields, then its study's and series' UIDs), with
    its study and series objects: taken from `studies` and `series` (by id) when already
    made for an earlier row, so a series of 300 instances makes one of each."""
    inst, study_instance_uid, series_instance_uid = models_from_row(row, (Instance, attnames))
    if inst.study_id not in studies:
        studies[inst.study_id] = Study.from_db("default", ["id", "study_instance_uid"],
                                               [inst.study_id, study_instance_uid])
    if inst.series_id not in series:
        series[inst.series_id] = Series.from_db("default", ["id", "series_instance_uid"],
                                                [inst.series_id, series_instance_uid])
    _STUDY.set_cached_value(inst, studies[inst.study_id])
    _SERIES.set_cached_value(inst, series[inst.series_id])
    return inst


def _instances_of(tenant, study_uid: str, series_uid: str | None, sop_uid: str | None) -> QuerySet:
    qs = Instance.objects.for_tenant(tenant).filter(study__study_instance_uid=study_uid)
    if series_uid is not None:
        qs = qs.filter(series__series_instance_uid=series_uid)
    if sop_uid is not None:
        qs = qs.filter(sop_instance_uid=sop_uid)
    return qs.order_by("series__series_number", "series_id", "instance_number", "pk")


def instances_for_retrieve(*, tenant, study_uid: str, series_uid: str | None = None,
                           sop_uid: str | None = None) -> list[Instance]:
    """The instances of a study, series or single instance, in series/instance order.
    Raises InstanceNotFound if there are none (unknown UID, or another clinic's)."""
    if series_uid is not None and sop_uid is not None:
        return _one_instance(tenant=tenant, study_uid=study_uid, series_uid=series_uid, sop_uid=sop_uid)
    attnames = _RETRIEVE_ATTNAMES
    rows = _instances_of(tenant, study_uid, series_uid, sop_uid).values_list(
        *attnames, "study__study_instance_uid", "series__series_instance_uid")
    # Rows, not select_related: that made a Study and a Series object for every instance
    # (a tenth of a series retrieve's CPU); here each study and series is made once.
    studies, series = {}, {}
    out = [_instance_from_row(row, attnames, studies, series) for row in rows]
    if not out:
        raise InstanceNotFound("No such study, series or instance")
    return out


class InstanceHeader(NamedTuple):
    study_id: int
    series_instance_uid: str
    sop_instance_uid: str
    json_text: str  # the stored DICOM JSON as the database writes it out


def instance_headers(*, tenant, study_uid: str, series_uid: str | None = None,
                     sop_uid: str | None = None) -> list[InstanceHeader]:
    """The stored headers of a study, series or instance (WADO-RS metadata), in retrieve
    order, as JSON text: a viewer's metadata request passes them through without decoding
    and encoding each one again (that was two thirds of its time). Raises
    InstanceNotFound if there are none."""
    rows = _instances_of(tenant, study_uid, series_uid, sop_uid).annotate(
        json_text=Cast("metadata", TextField())).values_list(
        "study_id", "series__series_instance_uid", "sop_instance_uid", "json_text")
    out = [InstanceHeader(*row) for row in rows]
    if not out:
        raise InstanceNotFound("No such study, series or instance")
    return out
