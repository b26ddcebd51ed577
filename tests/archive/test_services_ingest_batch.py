"""instances_ingest: one disk flush and one transaction for a batch, same answers as one by one."""

from pathlib import Path

import pytest

import archive.ingest.service as service
from archive.ingest.service import Outcome, instances_ingest
from archive.ingest.spool import spool_chunks
from archive.models import Instance, Study
from archive.outbox.models import Outbox
from archive.retention.models import StudyRetention
from archive.storage.reader import open_instance
from archive.storage.tier1 import tier1_path
from tenants.audit import Actor, audit_verify
from tenants.models import AuditEvent
from tests.dicom_factory import make_ct_series, to_bytes

ACTOR = Actor.system("test")


def spools(*blobs):
    return [spool_chunks([b]) for b in blobs]


def test_batch_stores_all_with_few_queries(tenant):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    blobs = [to_bytes(ds) for ds in make_ct_series(12)]
    # Study/patient/series look-ups and creation, the audit record, retention: a fixed
    # number of queries, not a multiple of the batch size.
    with CaptureQueriesContext(connection) as twelve:
        results = instances_ingest(tenant=tenant, spooled=spools(*blobs), actor=ACTOR)
    assert [r.outcome for r in results] == [Outcome.STORED] * 12
    study = Study.objects.for_tenant(tenant).get()
    assert (study.num_instances, study.num_series, study.size_bytes) == (12, 1, sum(map(len, blobs)))
    assert Outbox.objects.for_tenant(tenant).filter(kind="archive").count() == 12
    assert all(open_instance(r.instance).read() == b for r, b in zip(results, blobs, strict=True))
    # After the clinic's first study (policy, keys...), another new study of a new patient
    # costs the same number of queries whether it has 12 or 24 instances.
    counts = []
    for n, patient in ((12, "P-12"), (24, "P-24")):
        with CaptureQueriesContext(connection) as queries:
            instances_ingest(tenant=tenant, actor=ACTOR, spooled=spools(
                *[to_bytes(ds) for ds in make_ct_series(n, patient_id=patient)]))
        counts.append(len(queries))
    assert counts[0] == counts[1] <= len(twelve) <= 40  # the first batch also makes the data key


def test_same_instance_twice_in_one_batch(tenant):
    ds = make_ct_series(1)[0]
    same = to_bytes(ds)
    ds.SeriesDescription = "changed"
    changed = to_bytes(ds)
    results = instances_ingest(tenant=tenant, spooled=spools(same, same, changed), actor=ACTOR)
    assert [r.outcome for r in results] == [Outcome.STORED, Outcome.ALREADY_PRESENT, Outcome.CONFLICT]
    assert Instance.objects.for_tenant(tenant).count() == 1


def test_bad_member_fails_alone(tenant):
    good = [to_bytes(ds) for ds in make_ct_series(2)]
    results = instances_ingest(tenant=tenant, spooled=spools(good[0], b"not dicom" * 50, good[1]), actor=ACTOR)
    assert [r.outcome for r in results] == [Outcome.STORED, Outcome.FAILED, Outcome.STORED]
    assert Instance.objects.for_tenant(tenant).count() == 2


def test_instance_stored_by_another_request_meanwhile(tenant, monkeypatch):
    """Between the look-up and the insert another request stores one of the batch's
    instances: the batch falls back to one by one and answers 'already present' for it."""
    blobs = [to_bytes(ds) for ds in make_ct_series(3)]
    real_flush = service.tier1_flush
    raced = []

    def flush_while_another_request_stores(paths):
        if not raced:
            raced.append(None)  # the other request's own flush must not race again
            raced[0] = service.instance_ingest(tenant=tenant, spooled=spool_chunks([blobs[1]]), actor=ACTOR)
        real_flush(paths)

    monkeypatch.setattr(service, "tier1_flush", flush_while_another_request_stores)
    folder = tier1_path(f"{tenant.pk}/x").parent
    before = set(folder.iterdir()) if folder.exists() else set()
    results = instances_ingest(tenant=tenant, spooled=spools(*blobs), actor=ACTOR)
    assert raced[0].outcome == Outcome.STORED
    assert [r.outcome for r in results] == [Outcome.STORED, Outcome.ALREADY_PRESENT, Outcome.STORED]
    assert Instance.objects.for_tenant(tenant).count() == 3
    assert Study.objects.for_tenant(tenant).get().num_instances == 3
    # The loser's copy was removed from tier 1; the winner's stays.
    added = {p.name for p in set(folder.iterdir()) - before}
    assert added == {i.storage_key.split("/")[1] for i in Instance.objects.for_tenant(tenant)}


def test_a_series_uid_of_another_study_is_refused(tenant):
    """A series lives in one study: an instance claiming study Y with study X's series UID
    is refused, alone or in the same batch, and study X stays as it was."""
    first = make_ct_series(1)[0]
    assert instances_ingest(tenant=tenant, spooled=spools(to_bytes(first)), actor=ACTOR)[0].ok
    stray = make_ct_series(1, series_uid=first.SeriesInstanceUID)[0]  # a new study UID
    [result] = instances_ingest(tenant=tenant, spooled=spools(to_bytes(stray)), actor=ACTOR)
    assert result.outcome == Outcome.FAILED and "another study" in result.reason
    a, b = make_ct_series(1)[0], make_ct_series(1)[0]
    b.SeriesInstanceUID = a.SeriesInstanceUID
    results = instances_ingest(tenant=tenant, spooled=spools(to_bytes(a), to_bytes(b)), actor=ACTOR)
    assert [r.outcome for r in results] == [Outcome.STORED, Outcome.FAILED]
    assert Study.objects.for_tenant(tenant).count() == 2
    assert Instance.objects.for_tenant(tenant).count() == 2


def test_headers_with_quotes_backslashes_and_accents_are_stored_verbatim(tenant):
    """Headers are bulk inserted value by value (HeaderJSONField); escaping must not
    change a character."""
    series = make_ct_series(3)
    for n, ds in enumerate(series):
        ds.SpecificCharacterSet = "ISO_IR 192"
        ds.StudyDescription = f'Knee "left"\\right {n}'  # a backslash separates values in DICOM
        ds.SeriesDescription = "Schädel ' Übersicht é"
    results = instances_ingest(tenant=tenant, spooled=spools(*[to_bytes(ds) for ds in series]), actor=ACTOR)
    assert all(r.ok for r in results)
    for ds in series:
        stored = Instance.objects.for_tenant(tenant).get(sop_instance_uid=ds.SOPInstanceUID).metadata
        assert stored["00081030"]["Value"] == ['Knee "left"', f"right {series.index(ds)}"]
        assert stored["0008103E"]["Value"] == ["Schädel ' Übersicht é"]


def _one_image_studies(count: int, tag: str) -> list[bytes]:
    return [to_bytes(make_ct_series(1, patient_id=f"{tag}-{n}", accession=f"A{tag}{n}")[0]) for n in range(count)]


def test_many_one_image_studies_cost_the_queries_of_one(tenant):
    """X-ray and ultrasound practices send studies of one image, a hundred to a STOW body:
    each new study, patient, series, retention row and audit event used to cost its own
    queries (about 22 per study: 2,207 for a body of 100)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    instances_ingest(tenant=tenant, spooled=spools(*_one_image_studies(1, "first")), actor=ACTOR)
    counts = []
    for n, tag in ((1, "one"), (40, "forty")):
        with CaptureQueriesContext(connection) as queries:
            results = instances_ingest(tenant=tenant, spooled=spools(*_one_image_studies(n, tag)), actor=ACTOR)
        assert [r.outcome for r in results] == [Outcome.STORED] * n
        counts.append(len(queries))
    assert counts[0] == counts[1]
    studies = Study.objects.for_tenant(tenant).filter(patient_identifier__startswith="forty-")
    assert studies.count() == 40
    assert {(s.num_instances, s.num_series, s.modalities) for s in studies} == {(1, 1, "CT")}
    created = AuditEvent.objects.for_tenant(tenant).filter(action="study.created")
    assert created.count() == 42
    assert audit_verify(tenant=tenant) == []
    assert StudyRetention.objects.for_tenant(tenant).count() == 42


def test_a_study_made_by_another_request_meanwhile_is_joined_not_duplicated(tenant, monkeypatch):
    """Another request creates the same study (with another of its instances) between the
    batch's look-up and its insert: the batch falls back to one by one, joins that study,
    counts its instances into it and records one 'study.created' in all."""
    blobs = [to_bytes(ds) for ds in make_ct_series(3)]
    real_flush = service.tier1_flush
    raced = []

    def flush_while_another_request_stores(paths):
        if not raced:
            raced.append(None)
            raced[0] = service.instance_ingest(tenant=tenant, spooled=spool_chunks([blobs[0]]), actor=ACTOR)
        real_flush(paths)

    monkeypatch.setattr(service, "tier1_flush", flush_while_another_request_stores)
    results = instances_ingest(tenant=tenant, spooled=spools(blobs[1], blobs[2]), actor=ACTOR)
    assert raced[0].outcome == Outcome.STORED and raced[0].new_study
    assert [r.outcome for r in results] == [Outcome.STORED, Outcome.STORED]
    assert not any(r.new_study for r in results)
    study = Study.objects.for_tenant(tenant).get()
    assert (study.num_instances, study.num_series, study.modalities) == (3, 1, "CT")
    assert AuditEvent.objects.for_tenant(tenant).filter(action="study.created").count() == 1


def _another_request_stores_during_the_flush(monkeypatch, tenant, blob):
    """Between the batch's look-ups and its insert, another request stores `blob`: the
    batch's insert then fails and it falls back to one instance at a time."""
    real_flush = service.tier1_flush
    raced = []

    def flush(paths):
        if not raced:
            raced.append(None)  # the other request's own flush must not race again
            raced[0] = service.instance_ingest(tenant=tenant, spooled=spool_chunks([blob]), actor=ACTOR)
        real_flush(paths)

    monkeypatch.setattr(service, "tier1_flush", flush)
    return raced


def test_a_mammography_study_made_on_the_fallback_keeps_its_longer_retention(tenant, monkeypatch):
    mammo = to_bytes(make_ct_series(1, modality="MG", patient_id="MG-1", study_date="20100115",
                                    birth_date="19600101")[0])
    other = to_bytes(make_ct_series(1, patient_id="CT-1")[0])
    raced = _another_request_stores_during_the_flush(monkeypatch, tenant, other)
    results = instances_ingest(tenant=tenant, spooled=spools(mammo, other), actor=ACTOR)
    assert raced[0].outcome == Outcome.STORED
    assert [r.outcome for r in results] == [Outcome.STORED, Outcome.ALREADY_PRESENT]
    study = results[0].instance.study
    assert Study.objects.for_tenant(tenant).get(pk=study.pk).modalities == "MG"
    assert StudyRetention.objects.for_tenant(tenant).get(study=study).mammography is True


def test_a_failure_in_the_fallback_leaves_committed_instances_their_files(tenant, monkeypatch):
    """The fallback commits one instance at a time; if a later one fails (a deadlock, a
    dropped connection), those committed before keep their tier-1 files. (The series is in
    the index already, so the batch's instances were looked up first: of a new series, the
    others are indexed together again; see test_ingest_new_series.py.)"""
    from django.db import OperationalError

    seed, *blobs = [to_bytes(ds) for ds in make_ct_series(4)]
    assert instances_ingest(tenant=tenant, spooled=spools(seed), actor=ACTOR)[0].ok
    _another_request_stores_during_the_flush(monkeypatch, tenant, blobs[1])
    real_index, calls = service._index, []

    def index_failing_on_the_last(*args, **kwargs):
        calls.append(kwargs.get("racing"))
        if len(calls) == 4:  # the batch, then instances 1, 2 and 3 one by one
            raise OperationalError("connection lost")
        return real_index(*args, **kwargs)

    monkeypatch.setattr(service, "_index", index_failing_on_the_last)
    try:
        instances_ingest(tenant=tenant, spooled=spools(*blobs), actor=ACTOR)
    except OperationalError:
        pass
    else:
        raise AssertionError("the failure was swallowed")
    committed = Instance.objects.for_tenant(tenant)
    assert committed.count() == 3  # the seed, the other request's and the fallback's first
    for instance in committed:
        assert tier1_path(instance.storage_key).exists()


def test_a_series_uid_of_another_study_is_refused_within_one_sender(tenant):
    """The same check when the sender's context remembers the series (the next instances of
    a C-STORE association are checked without a query)."""
    from archive.ingest.service import IngestContext

    context = IngestContext()
    first = make_ct_series(1)[0]
    assert instances_ingest(tenant=tenant, spooled=spools(to_bytes(first)), actor=ACTOR, context=context)[0].ok
    assert first.SeriesInstanceUID in context.series_owners()
    stray = make_ct_series(1, series_uid=first.SeriesInstanceUID)[0]
    [result] = instances_ingest(tenant=tenant, spooled=spools(to_bytes(stray)), actor=ACTOR, context=context)
    assert result.outcome == Outcome.FAILED and "another study" in result.reason
    sibling = make_ct_series(2, series_uid=first.SeriesInstanceUID, study_uid=first.StudyInstanceUID)[1]
    assert instances_ingest(tenant=tenant, spooled=spools(to_bytes(sibling)), actor=ACTOR, context=context)[0].ok


def test_a_database_failure_keeps_the_files_for_the_sweep(tenant, monkeypatch, settings, tmp_path):
    """When the database fails during the index (the connection dropped, maybe during the
    COMMIT, whose outcome is then unknown) the sealed files may belong to committed rows:
    they stay, and the leftovers sweep removes those no row owns once their grace is over."""
    from django.db import OperationalError

    from archive.storage.leftovers import leftovers_sweep

    settings.TIER1_PATH, settings.INGEST_TMP_DIR = str(tmp_path / "tier1"), str(tmp_path / "tmp")

    def index_losing_the_connection(*args, **kwargs):
        raise OperationalError("server closed the connection unexpectedly")

    monkeypatch.setattr(service, "_index", index_losing_the_connection)
    with pytest.raises(OperationalError):
        instances_ingest(tenant=tenant, spooled=spools(*[to_bytes(ds) for ds in make_ct_series(2)]), actor=ACTOR)
    kept = [p for p in Path(settings.TIER1_PATH).rglob("*") if p.is_file()]
    assert len(kept) == 2  # not removed: the commit might have happened
    monkeypatch.undo()
    assert leftovers_sweep(orphan_grace_seconds=0).tier1_orphans == 2
    assert not [p for p in Path(settings.TIER1_PATH).rglob("*") if p.is_file()]
