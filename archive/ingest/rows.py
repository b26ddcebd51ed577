"""The index rows ingest reads and writes for every instance, as statements compiled once
(cloudpacs/compiled_query.py). A C-STORE association indexes its instances one at a time,
and a one-image request or association makes its study, series and patient: compiling
these statements cost Django more than PostgreSQL took to run them. A look-up of one UID
is compiled; a batch of several (a STOW-RS body) goes through the ORM, once per batch."""

from django.db.models import BigIntegerField, CharField, DateTimeField, F, IntegerField

from archive.models import Instance, Patient, Series, Study
from cloudpacs.compiled_query import (
    CompiledInsert,
    CompiledQuery,
    CompiledUpdate,
    Slot,
    fields_in_order,
    models_from_row,
)

_INSTANCE_FIELDS, _STUDY_FIELDS, _SERIES_FIELDS, _PATIENT_FIELDS = (
    fields_in_order(m) for m in (Instance, Study, Series, Patient))

instances_insert = CompiledInsert(Instance).insert
studies_insert = CompiledInsert(Study).insert
# A patient shared by studies arriving at once from several senders: a row another request
# made meanwhile is taken as it is (see service.patients_for).
patients_insert_new = CompiledInsert(Patient, ignore_conflicts=True).insert_new
series_insert = CompiledInsert(Series).insert
series_grown = CompiledUpdate(lambda: (
    Series.unscoped.filter(pk=Slot("pk", IntegerField())),
    {"num_instances": F("num_instances") + Slot("instances", IntegerField())}))
study_grown = CompiledUpdate(lambda: (
    Study.unscoped.filter(pk=Slot("pk", IntegerField())),
    {"num_instances": F("num_instances") + Slot("instances", IntegerField()),
     "size_bytes": F("size_bytes") + Slot("size", BigIntegerField()),
     "updated_at": Slot("now", DateTimeField())}))


def _one_by_uid(model, field_name: str, fields: list[str], *related: str) -> CompiledQuery:
    return CompiledQuery(lambda: model.unscoped.filter(
        tenant_id=Slot("tenant", IntegerField()), **{field_name: Slot("uid", CharField())}).values_list(*fields, *related))


_instance_by_uid = _one_by_uid(Instance, "sop_instance_uid", _INSTANCE_FIELDS)
_study_by_uid = _one_by_uid(Study, "study_instance_uid", _STUDY_FIELDS)
_series_with_study_by_uid = _one_by_uid(Series, "series_instance_uid", _SERIES_FIELDS,
                                        *(f"study__{name}" for name in _STUDY_FIELDS))
_patients_by_id = _one_by_uid(Patient, "patient_id", _PATIENT_FIELDS)


# A new one-image study's rows, written with the keys taken for them (new_study.py). A row
# left out by a conflict (another sender made it meanwhile) answers no key: the writer
# then rolls back without an error, so PostgreSQL's log gets no statement full of PHI.
patient_keyed, study_keyed, series_keyed, instance_keyed = (
    CompiledInsert(model, keyed=True, ignore_conflicts=True) for model in (Patient, Study, Series, Instance))


def patients_by_id_statement(tenant, patient_id: str) -> tuple[str, list]:
    """`patients_by_id` of one id as a statement sent with others; its rows go to
    `patients_from_rows`."""
    return _patients_by_id.statement(tenant=tenant.pk, uid=patient_id)


def patients_from_rows(rows: list) -> list[Patient]:
    return [models_from_row(row, (Patient, _PATIENT_FIELDS))[0] for row in _patients_by_id.converted(rows)]


def study_by_uid_statement(tenant, uid: str) -> tuple[str, list]:
    """`studies_by_uid` of one UID as a statement sent with others; its rows go to
    `studies_from_rows`."""
    return _study_by_uid.statement(tenant=tenant.pk, uid=uid)


def studies_from_rows(rows: list) -> list[Study]:
    return [models_from_row(row, (Study, _STUDY_FIELDS))[0] for row in _study_by_uid.converted(rows)]


def _found(tenant, uids, one: CompiledQuery, parts: tuple, many):
    """Rows of the clinic matching `uids`: one value by its compiled look-up (a C-STORE
    association's instances come one at a time), several by the ORM (`many(uids)`)."""
    uids = list(uids)
    if len(uids) != 1:
        return list(many(uids))
    return [models_from_row(row, *parts) for row in one.rows(tenant=tenant.pk, uid=uids[0])]


def existing_instances(tenant, uids: list[str]) -> dict[str, Instance]:
    """The clinic's instances among these SOP Instance UIDs."""
    found = _found(tenant, uids, _instance_by_uid, ((Instance, _INSTANCE_FIELDS),),
                   lambda many: [(i,) for i in Instance.objects.for_tenant(tenant).filter(sop_instance_uid__in=many)])
    return {i.sop_instance_uid: i for (i,) in found}


def studies_by_uid(tenant, uids) -> list[Study]:
    return [row for (row,) in _found(
        tenant, uids, _study_by_uid, ((Study, _STUDY_FIELDS),),
        lambda many: [(row,) for row in Study.objects.for_tenant(tenant).filter(study_instance_uid__in=many)])]


def patients_by_id(tenant, patient_ids) -> list[Patient]:
    return [row for (row,) in _found(
        tenant, patient_ids, _patients_by_id, ((Patient, _PATIENT_FIELDS),),
        lambda many: [(row,) for row in Patient.objects.for_tenant(tenant).filter(patient_id__in=many)])]


def series_with_study(tenant, uids) -> list[Series]:
    def joined(series: Series, study: Study) -> Series:
        series.study = study
        return series

    return [joined(*pair) for pair in _found(
        tenant, uids, _series_with_study_by_uid, ((Series, _SERIES_FIELDS), (Study, _STUDY_FIELDS)),
        lambda many: [(row, row.study) for row in Series.objects.for_tenant(tenant).filter(
            series_instance_uid__in=many).select_related("study")])]
