"""The next image of a series a sender is sending (a C-STORE association's second slice
on), indexed in one statement on PostgreSQL (archive/ingest/one_statement.py): the same
rows, counts, work and answers as the general path, duplicates and races included."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from archive.ingest.service import IngestContext, Outcome, instance_ingest
from archive.ingest.spool import spool_chunks
from archive.models import Instance, Series, Study
from archive.outbox.models import Outbox
from archive.retention.models import StudyRetention
from archive.storage.reader import open_instance
from archive.storage.tier1 import tier1_path
from tenants.audit import Actor
from tests.dicom_factory import make_ct_series, to_bytes

ACTOR = Actor.system("test")

@pytest.fixture
def outside_transaction(transactional_db):
    """As a C-STORE association runs. On SQLite the same answers come from the general path."""


def ingest(tenant, blob, context):
    return instance_ingest(tenant=tenant, spooled=spool_chunks([blob]), actor=ACTOR, context=context)


def tier1_files(tenant) -> set:
    folder = tier1_path(f"{tenant.pk}/x").parent
    return set(folder.iterdir()) if folder.exists() else set()


def test_the_next_slices_of_a_series_cost_one_statement_each(tenant, outside_transaction):
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement path is PostgreSQL's (SQLite takes the general path)")
    blobs = [to_bytes(ds) for ds in make_ct_series(4)]
    context = IngestContext()
    assert ingest(tenant, blobs[0], context).outcome == Outcome.STORED  # makes the study and series
    for blob in blobs[1:]:
        with CaptureQueriesContext(connection) as queries:
            result = ingest(tenant, blob, context)
        assert result.outcome == Outcome.STORED and not result.new_study
        assert len(queries) == 1, [q["sql"][:80] for q in queries]
        assert open_instance(result.instance).read() == blob
    study = Study.objects.for_tenant(tenant).get()
    assert (study.num_instances, study.num_series, study.size_bytes) == (4, 1, sum(map(len, blobs)))
    assert Series.objects.for_tenant(tenant).get().num_instances == 4
    instances = set(Instance.objects.for_tenant(tenant).values_list("pk", flat=True))
    archive_rows = Outbox.objects.for_tenant(tenant).filter(kind="archive")
    assert sorted(archive_rows.values_list("subject_id", flat=True)) == sorted(instances)
    assert all(row.payload == {} and row.done_at is None and row.attempts == 0 for row in archive_rows)


def test_an_image_sent_again_is_already_present_and_leaves_no_file(tenant, outside_transaction):
    """A modality sending the series again on a new association: no duplicate look-up
    runs first, so the statement finds it; the answer is the general path's."""
    datasets = make_ct_series(3)
    blobs = [to_bytes(ds) for ds in datasets]
    context = IngestContext()
    for blob in blobs:
        assert ingest(tenant, blob, context).outcome == Outcome.STORED
    files = tier1_files(tenant)
    again = IngestContext()
    assert ingest(tenant, blobs[0], again).outcome == Outcome.ALREADY_PRESENT  # finds the series
    assert ingest(tenant, blobs[1], again).outcome == Outcome.ALREADY_PRESENT  # one statement
    datasets[2].SeriesDescription = "changed"
    conflict = ingest(tenant, to_bytes(datasets[2]), again)
    assert conflict.outcome == Outcome.CONFLICT and "first copy was kept" in conflict.reason
    assert tier1_files(tenant) == files
    study = Study.objects.for_tenant(tenant).get()
    assert (study.num_instances, Series.objects.for_tenant(tenant).get().num_instances) == (3, 3)
    assert Outbox.objects.for_tenant(tenant).filter(kind="archive").count() == 3


def test_a_series_deleted_under_the_sender_is_made_again(tenant, outside_transaction):
    """The context remembers a series row another request then deleted (the study was
    removed): the statement fails on its reference, nothing is written, and the instance
    is indexed afresh by the racing path, its study and series made again."""
    blobs = [to_bytes(ds) for ds in make_ct_series(2)]
    context = IngestContext()
    assert ingest(tenant, blobs[0], context).outcome == Outcome.STORED
    Outbox.objects.for_tenant(tenant).delete()
    StudyRetention.unscoped.filter(tenant=tenant).delete()
    Instance.objects.for_tenant(tenant).delete()
    Series.objects.for_tenant(tenant).delete()
    Study.objects.for_tenant(tenant).delete()
    result = ingest(tenant, blobs[1], context)
    assert result.outcome == Outcome.STORED and result.new_study
    study = Study.objects.for_tenant(tenant).get()
    assert (study.num_instances, Series.objects.for_tenant(tenant).get().num_instances) == (1, 1)
    assert list(Outbox.objects.for_tenant(tenant).filter(kind="archive").values_list("subject_id", flat=True)) \
        == [result.instance.pk]


def test_mammography_takes_the_general_path(tenant, outside_transaction):
    """An MG image may lengthen its study's retention: not for the one statement."""
    blobs = [to_bytes(ds) for ds in make_ct_series(2, modality="MG")]
    context = IngestContext()
    ingest(tenant, blobs[0], context)
    with CaptureQueriesContext(connection) as queries:
        assert ingest(tenant, blobs[1], context).outcome == Outcome.STORED
    assert len(queries) > 1
    assert StudyRetention.unscoped.get(tenant=tenant).mammography


def test_inside_a_callers_transaction_the_general_path_runs(tenant, outside_transaction):
    """Within a transaction the statement's foreign keys would be checked only at the
    caller's commit, and a failure would break the caller's transaction."""
    from django.db import transaction

    blobs = [to_bytes(ds) for ds in make_ct_series(2)]
    context = IngestContext()
    ingest(tenant, blobs[0], context)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        assert ingest(tenant, blobs[1], context).outcome == Outcome.STORED
    assert len(queries) > 1


def test_it_locks_the_series_before_the_study_as_the_general_path_does(tenant, outside_transaction):
    """Another request holds the series row (the general path updates a series' counts,
    then its study's): the statement waits for the series without holding the study, so
    the other request's study update goes through, and both end; in the other order one
    of them would be stopped as a deadlock."""
    if connection.vendor != "postgresql":
        pytest.skip("the one-statement path is PostgreSQL's")
    import threading
    import time

    import psycopg

    blobs = [to_bytes(ds) for ds in make_ct_series(2)]
    context = IngestContext()
    ingest(tenant, blobs[0], context)
    series, study = Series.objects.for_tenant(tenant).get(), Study.objects.for_tenant(tenant).get()
    dsn = connection.settings_dict
    other = psycopg.connect(dbname=dsn["NAME"], user=dsn["USER"], host=dsn["HOST"], port=dsn["PORT"] or 5432,
                            password=dsn["PASSWORD"] or None)
    outcome = []

    def sender():
        try:
            outcome.append(ingest(tenant, blobs[1], context).outcome)
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            outcome.append(exc)
        finally:
            connection.close()

    try:
        other.execute("UPDATE archive_series SET num_instances = num_instances WHERE id = %s", [series.pk])
        thread = threading.Thread(target=sender)
        thread.start()
        deadline = time.monotonic() + 30
        # The sender's statement waiting on the series row (polled: it gets there when it gets there).
        while not other.execute("SELECT count(*) FROM pg_locks WHERE NOT granted").fetchone()[0]:
            assert thread.is_alive() and time.monotonic() < deadline, outcome
            time.sleep(0.01)
        other.execute("UPDATE archive_study SET num_instances = num_instances WHERE id = %s", [study.pk])
        other.commit()
        thread.join(timeout=30)
    finally:
        other.close()
    assert outcome == [Outcome.STORED]
    study.refresh_from_db()
    assert study.num_instances == 2 and Series.objects.for_tenant(tenant).get().num_instances == 2


def test_the_archive_work_is_handed_to_the_workers(tenant, outside_transaction, monkeypatch):
    from archive.outbox import services as outbox

    blobs = [to_bytes(ds) for ds in make_ct_series(2)]
    context = IngestContext()
    ingest(tenant, blobs[0], context)
    published = []
    monkeypatch.setattr(outbox._publisher, "add", published.append)
    result = ingest(tenant, blobs[1], context)
    assert published == [[Outbox.objects.for_tenant(tenant).get(subject_id=result.instance.pk).pk]]
