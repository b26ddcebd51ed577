"""A new study of one image, written in three round trips on PostgreSQL
(archive/ingest/new_study.py): the same rows, work, retention and audit events as the
general path. What it cannot take -- a study the clinic holds already, a patient another
sender made a moment ago, a SOP Instance UID the clinic holds, a clinic with no retention
policy yet, an app whose new-study work has no statement form -- goes to the general path
with nothing left behind; a failure half way leaves nothing either."""

from contextlib import nullcontext

import pytest
from django.db import connection, transaction
from psycopg.pq import TransactionStatus

from archive.ingest import hooks, new_study
from archive.ingest.service import IngestContext, Outcome, instance_ingest
from archive.ingest.spool import spool_chunks
from archive.models import Instance, Patient, Series, Study
from archive.outbox.models import Outbox
from archive.retention.models import RetentionPolicy, StudyRetention
from archive.storage.tier1 import tier1_path
from billing.models import Charge
from tenants.audit import Actor, audit_verify
from tenants.models import AuditEvent
from tests.dicom_factory import make_ct_series, to_bytes
from tests.round_trips import counting_round_trips

ACTOR = Actor.system("test")

pytestmark = pytest.mark.django_db(transaction=True)  # autocommit, as a request or association runs


def ingest(tenant, ds, context=None):
    return instance_ingest(tenant=tenant, spooled=spool_chunks([to_bytes(ds)]), actor=ACTOR,
                           context=context or IngestContext())


def tier1_files(tenant) -> set:
    folder = tier1_path(f"{tenant.pk}/x").parent
    return set(folder.iterdir()) if folder.exists() else set()


def postgresql_only():
    if connection.vendor != "postgresql":
        pytest.skip("the three-trip path is PostgreSQL's (SQLite takes the general path)")


def written(tenant, study_uid: str) -> dict:
    """Everything ingest wrote for a study, keys replaced by what they point at."""
    study = Study.objects.for_tenant(tenant).get(study_instance_uid=study_uid)
    series = Series.objects.for_tenant(tenant).get(study=study)
    instance = Instance.objects.for_tenant(tenant).get(study=study)
    charge = Charge.objects.for_tenant(tenant).get(study=study)
    retention = StudyRetention.unscoped.get(study=study)
    work = sorted((row.kind, row.payload, row.attempts, row.done_at is None)
                  for row in Outbox.objects.for_tenant(tenant).filter(subject_id__in=[instance.pk, charge.pk])
                  if row.subject_id == (instance.pk if row.kind == "archive" else charge.pk))
    events = [(e.action, e.detail, e.actor_label) for e in AuditEvent.objects.for_tenant(tenant)
              .filter(object_type="study", object_id=str(study.pk))]
    return {
        # Sizes as consistent, not equal: generated UIDs differ in length.
        "study": (study.num_instances, study.num_series, study.size_bytes == instance.size_bytes, study.modalities,
                  study.patient_name,
                  study.patient_birth_date, study.study_date, study.patient.patient_id == study.patient_identifier),
        "series": (series.num_instances, series.modality, series.series_number),
        "instance": (instance.size_bytes > 1000, instance.sop_class_uid, instance.transfer_syntax_uid, bool(instance.metadata),
                     instance.storage_key.startswith(f"{tenant.pk}/")),
        "charge": (charge.state, charge.modalities, charge.size_bytes == instance.size_bytes,
                   charge.study_instance_uid == study_uid),
        "retention": (retention.rule, retention.retain_until, retention.mammography),
        "work": work, "events": events,
    }


@pytest.mark.parametrize("modality", ["CT", "MG"])  # MG: mammography's retention rule
def test_a_new_study_is_written_as_the_general_path_writes_it(tenant, modality):
    ingest(tenant, make_ct_series(1, 8, 8, patient_id="FIRST")[0])  # the clinic's policy, chain and data key
    fast, general = (make_ct_series(1, 8, 8, patient_id=pid, modality=modality, birth_date="20150101")[0]
                     for pid in ("P-FAST", "P-SLOW"))
    with counting_round_trips() if connection.vendor == "postgresql" else nullcontext() as trips:
        assert ingest(tenant, fast).outcome == Outcome.STORED
    with transaction.atomic():  # inside a transaction the general path takes it
        assert ingest(tenant, general).outcome == Outcome.STORED
    if connection.vendor == "postgresql":  # the series' and the data key's look-ups, then the three
        assert trips.count == 5, "\n".join(trips.messages)
    assert written(tenant, fast.StudyInstanceUID) == written(tenant, general.StudyInstanceUID)
    assert written(tenant, fast.StudyInstanceUID)["events"] == [("study.created", {"modality": modality}, "test")]
    assert Patient.objects.for_tenant(tenant).filter(patient_id="P-FAST").count() == 1
    assert audit_verify(tenant=tenant) == []


def test_a_known_patients_new_study_takes_the_patients_row(tenant):
    postgresql_only()
    first = ingest(tenant, make_ct_series(1, 8, 8, patient_id="P1")[0])
    second = ingest(tenant, make_ct_series(1, 8, 8, patient_id="P1")[0])
    assert second.outcome == Outcome.STORED and second.new_study
    assert second.instance.study.patient_id == first.instance.study.patient_id
    assert Patient.objects.for_tenant(tenant).count() == 1


def test_a_further_series_of_a_held_study_goes_the_general_way(tenant):
    postgresql_only()
    ingest(tenant, make_ct_series(1, 8, 8, patient_id="FIRST")[0])
    ct = make_ct_series(1, 8, 8)[0]
    ingest(tenant, ct)
    result = ingest(tenant, make_ct_series(1, 8, 8, study_uid=ct.StudyInstanceUID, modality="PT")[0])
    assert result.outcome == Outcome.STORED and not result.new_study
    study = Study.objects.for_tenant(tenant).get(study_instance_uid=ct.StudyInstanceUID)
    assert (study.num_instances, study.num_series, study.modalities) == (2, 2, "CT\\PT")
    assert Charge.objects.for_tenant(tenant).filter(study=study).count() == 1
    assert AuditEvent.objects.for_tenant(tenant).filter(action="study.created", object_id=str(study.pk)).count() == 1


@pytest.fixture
def statement_errors(monkeypatch) -> list:
    """The errors the three trips' statements raised. A race must end in a ROLLBACK, not in
    a failed statement: PostgreSQL logs a failed statement whole, PHI and all."""
    raised, send = [], new_study.send_together

    def watched(*args, **kwargs):
        try:
            return send(*args, **kwargs)
        except Exception as exc:
            raised.append(exc)
            raise

    monkeypatch.setattr(new_study, "send_together", watched)
    return raised


def test_a_patient_made_by_another_sender_meanwhile_is_the_general_paths(tenant, monkeypatch, statement_errors):
    """The look-up found no patient; another sender's study made the row before ours went
    in: its insert is left out, everything rolls back, and the general path takes that row."""
    postgresql_only()
    ingest(tenant, make_ct_series(1, 8, 8, patient_id="FIRST")[0])
    ingest(tenant, make_ct_series(1, 8, 8, patient_id="RACED")[0])
    monkeypatch.setattr(new_study, "patients_from_rows", lambda rows: [])
    ds = make_ct_series(1, 8, 8, patient_id="RACED")[0]
    result = ingest(tenant, ds)
    assert result.outcome == Outcome.STORED and result.new_study
    assert connection.connection.info.transaction_status == TransactionStatus.IDLE
    assert Patient.objects.for_tenant(tenant).filter(patient_id="RACED").count() == 1
    assert written(tenant, ds.StudyInstanceUID)["events"] == [("study.created", {"modality": "CT"}, "test")]
    assert audit_verify(tenant=tenant) == []
    assert statement_errors == []


def test_a_held_sop_instance_uid_in_a_new_study_leaves_no_study(tenant, statement_errors):
    """A sender reusing a SOP Instance UID under a new study: the instance's insert fails,
    and nothing of the new study stays (no study, series, charge or event)."""
    postgresql_only()
    ingest(tenant, make_ct_series(1, 8, 8, patient_id="FIRST")[0])
    held = make_ct_series(1, 8, 8)[0]
    ingest(tenant, held)
    reused = make_ct_series(1, 8, 8)[0]
    reused.SOPInstanceUID = reused.file_meta.MediaStorageSOPInstanceUID = held.SOPInstanceUID
    before = (Study.unscoped.count(), Series.unscoped.count(), Charge.unscoped.count(), AuditEvent.unscoped.count())
    result = ingest(tenant, reused)
    assert result.outcome == Outcome.CONFLICT
    assert (Study.unscoped.count(), Series.unscoped.count(), Charge.unscoped.count(), AuditEvent.unscoped.count()) == before
    assert connection.connection.info.transaction_status == TransactionStatus.IDLE
    assert statement_errors == []


def test_a_clinics_first_study_makes_its_policy_on_the_general_path(tenant):
    postgresql_only()
    assert not RetentionPolicy.objects.for_tenant(tenant).exists()
    ds = make_ct_series(1, 8, 8)[0]
    assert ingest(tenant, ds).outcome == Outcome.STORED
    assert RetentionPolicy.objects.for_tenant(tenant).count() == 1
    assert StudyRetention.unscoped.filter(study__study_instance_uid=ds.StudyInstanceUID).count() == 1
    assert Study.unscoped.count() == 1 and Charge.unscoped.count() == 1


def test_new_study_work_without_a_statement_form_goes_the_general_way(tenant, monkeypatch):
    postgresql_only()
    seen = []

    def another_apps_work(the_tenant, studies):
        seen.extend(study.study_instance_uid for study in studies)
        return []

    monkeypatch.setattr(hooks, "_new_studies", [*hooks._new_studies, another_apps_work])
    ingest(tenant, make_ct_series(1, 8, 8, patient_id="FIRST")[0])
    ds = make_ct_series(1, 8, 8)[0]
    assert ingest(tenant, ds).outcome == Outcome.STORED
    assert ds.StudyInstanceUID in seen
    assert Charge.objects.for_tenant(tenant).filter(study_instance_uid=ds.StudyInstanceUID).count() == 1


def test_a_failure_half_way_leaves_nothing(tenant, monkeypatch):
    postgresql_only()
    ingest(tenant, make_ct_series(1, 8, 8, patient_id="FIRST")[0])
    before = (Patient.unscoped.count(), Study.unscoped.count(), Instance.unscoped.count(), Outbox.unscoped.count(),
              Charge.unscoped.count(), AuditEvent.unscoped.count())

    def broken(**kwargs):
        raise RuntimeError("the retention rules failed")

    monkeypatch.setattr(new_study, "retention_new_study_statement", broken)
    files = tier1_files(tenant)
    with pytest.raises(RuntimeError):
        ingest(tenant, make_ct_series(1, 8, 8, patient_id="NEW")[0])
    assert tier1_files(tenant) == files
    assert connection.connection.info.transaction_status == TransactionStatus.IDLE
    assert (Patient.unscoped.count(), Study.unscoped.count(), Instance.unscoped.count(), Outbox.unscoped.count(),
            Charge.unscoped.count(), AuditEvent.unscoped.count()) == before


def test_two_senders_of_one_new_study_at_once_make_it_once(tenant):
    """Two requests each bring an image of the same new study and series. The first holds
    its rows (between its second and third trips) while the second's study insert waits
    for them; once the first commits, the second's fails, rolls back, and the general path
    adds its image to the study the first made."""
    postgresql_only()
    import threading
    import time

    import psycopg

    ingest(tenant, make_ct_series(1, 8, 8, patient_id="FIRST")[0])
    first, second = make_ct_series(2, 8, 8)
    first_written, release = threading.Event(), threading.Event()
    real = new_study.retention_new_study_statement

    def held(**kwargs):
        if threading.current_thread().name == "first":
            first_written.set()
            assert release.wait(30)
        return real(**kwargs)

    outcomes = {}

    def sender(ds):
        try:
            outcomes[threading.current_thread().name] = ingest(tenant, ds)
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            outcomes[threading.current_thread().name] = exc
        finally:
            connection.close()

    dsn = connection.settings_dict
    watcher = psycopg.connect(dbname=dsn["NAME"], user=dsn["USER"], host=dsn["HOST"], port=dsn["PORT"] or 5432,
                              password=dsn["PASSWORD"] or None, autocommit=True)
    new_study.retention_new_study_statement = held
    try:
        threads = [threading.Thread(target=sender, args=(ds,), name=name) for name, ds in
                   (("first", first), ("second", second))]
        threads[0].start()
        assert first_written.wait(30)
        threads[1].start()
        deadline = time.monotonic() + 30
        # The second's insert waiting on the first's study row (polled: it gets there when it does).
        while not watcher.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]:
            assert threads[1].is_alive() and time.monotonic() < deadline, outcomes
            time.sleep(0.01)
        release.set()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        release.set()
        new_study.retention_new_study_statement = real
        watcher.close()
    assert outcomes["first"].outcome == Outcome.STORED and outcomes["first"].new_study
    assert outcomes["second"].outcome == Outcome.STORED and not outcomes["second"].new_study
    study = Study.objects.for_tenant(tenant).get(study_instance_uid=first.StudyInstanceUID)
    assert (study.num_instances, study.num_series, study.size_bytes) == (
        2, 1, outcomes["first"].instance.size_bytes + outcomes["second"].instance.size_bytes)
    assert Series.objects.for_tenant(tenant).get(study=study).num_instances == 2
    assert Charge.objects.for_tenant(tenant).filter(study=study).count() == 1
    assert AuditEvent.objects.for_tenant(tenant).filter(action="study.created", object_id=str(study.pk)).count() == 1
    assert StudyRetention.unscoped.filter(study=study).count() == 1
    assert audit_verify(tenant=tenant) == []


def test_a_failure_after_the_commit_keeps_the_stored_image(tenant, monkeypatch):
    """Once COMMIT has gone through, the rows are the index's: a failure handing their work
    to the workers (the sweeper re-drives committed rows) must not make ingest take the
    image's file away from them, or answer that it failed."""
    postgresql_only()
    ingest(tenant, make_ct_series(1, 8, 8, patient_id="FIRST")[0])

    def broken(ids):
        raise RuntimeError("the publisher failed")

    monkeypatch.setattr(new_study, "outbox_published", broken)
    ds = make_ct_series(1, 8, 8, patient_id="NEW")[0]
    result = ingest(tenant, ds)
    assert result.outcome == Outcome.STORED
    instance = Instance.objects.for_tenant(tenant).get(sop_instance_uid=ds.SOPInstanceUID)
    assert tier1_path(instance.storage_key).exists()
    assert Outbox.objects.for_tenant(tenant).filter(kind="archive", subject_id=instance.pk, done_at=None).exists()
