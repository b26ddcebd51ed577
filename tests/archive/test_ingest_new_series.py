"""The instances of a series the index does not hold yet (a new study, a new series) are
indexed without looking each one up first: nothing can be stored under a series that is
not. A sender that reused a stored instance's UID in a new series is still answered as
before (the first copy kept), with nothing of the second left behind."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from archive.ingest import service
from archive.ingest.service import Outcome, instances_ingest
from archive.ingest.spool import spool_chunks
from archive.models import Instance, Series, Study
from archive.storage.reader import open_instance
from archive.storage.tier1 import tier1_path
from billing.models import Charge
from tenants.audit import Actor, AuditEvent
from tests.archive.stow_helpers import multipart
from tests.dicom_factory import make_ct_series, to_bytes

ACTOR = Actor.system("test")


def ingest(tenant, blobs: list[bytes]):
    return instances_ingest(tenant=tenant, spooled=[spool_chunks([b]) for b in blobs], actor=ACTOR)


def tier1_files(tenant) -> set:
    folder = tier1_path(f"{tenant.pk}/x").parent
    return set(folder.iterdir()) if folder.exists() else set()


def instance_lookups(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].lstrip().upper().startswith("SELECT")
            and 'FROM "archive_instance"' in q["sql"]]


def test_a_new_study_is_indexed_without_looking_its_instances_up(tenant):
    blobs = [to_bytes(ds) for ds in make_ct_series(3)]
    with CaptureQueriesContext(connection) as queries:
        results = ingest(tenant, blobs)
    assert [r.outcome for r in results] == [Outcome.STORED] * 3
    assert instance_lookups(queries) == []
    assert Study.objects.for_tenant(tenant).get().num_instances == 3


@pytest.mark.parametrize("new_study", [True, False], ids=["new study", "new series of the same study"])
def test_a_uid_reused_in_a_new_series_keeps_the_first_copy_and_leaves_nothing(tenant, new_study,
                                                                             transactional_db):
    """Outside a transaction, as a request or an association runs."""
    first = make_ct_series(2)
    assert [r.outcome for r in ingest(tenant, [to_bytes(ds) for ds in first])] == [Outcome.STORED] * 2
    files = tier1_files(tenant)
    other = make_ct_series(2, study_uid=None if new_study else first[0].StudyInstanceUID)
    other[1].SOPInstanceUID = first[1].SOPInstanceUID  # the sender's UID generator repeated itself
    results = ingest(tenant, [to_bytes(ds) for ds in other])
    assert [r.outcome for r in results] == [Outcome.STORED, Outcome.CONFLICT]
    assert "first copy was kept" in results[1].reason
    kept = Instance.objects.for_tenant(tenant).get(sop_instance_uid=first[1].SOPInstanceUID)
    assert kept.series.series_instance_uid == first[1].SeriesInstanceUID
    assert open_instance(kept).read() == to_bytes(first[1])
    assert tier1_files(tenant) == files | {tier1_path(results[0].instance.storage_key)}
    new_series = Series.objects.for_tenant(tenant).get(series_instance_uid=other[0].SeriesInstanceUID)
    assert new_series.num_instances == 1 and new_series.study.num_instances == (1 if new_study else 3)
    assert Charge.objects.for_tenant(tenant).count() == (2 if new_study else 1)  # one a study, once


def test_a_stow_body_with_a_reused_uid_is_audited_once(client, tenant, make_token, transactional_db):
    """The request's event goes with the indexing transaction, or after it when the racing
    path indexed the body: once either way."""
    token = make_token(tenant, scopes=("upload",))
    first = make_ct_series(1)
    ingest(tenant, [to_bytes(first[0])])
    other = make_ct_series(3)
    other[2].SOPInstanceUID = first[0].SOPInstanceUID
    body, content_type = multipart([to_bytes(ds) for ds in other])
    response = client.post(f"/t/{tenant.slug}/dicomweb/studies", data=body, content_type=content_type,
                           HTTP_ACCEPT="application/dicom+json", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 202  # two stored, one refused: PS3.18's partial success
    events = AuditEvent.objects.for_tenant(tenant).filter(action="dicomweb.stow")
    assert [(e.detail["stored"], e.detail["studies"]) for e in events] == [(2, [other[0].StudyInstanceUID])]


@pytest.mark.parametrize("reused", [1, 4], ids=["one UID reused", "every UID reused"])
def test_reused_uids_are_answered_from_one_look_up_not_one_transaction_each(tenant, reused, monkeypatch,
                                                                               transactional_db):
    """A batch of a new series whose UIDs a sender reused: the others are indexed together,
    as any batch is, not each alone (which cost a transaction and a look-up per instance)."""
    first = make_ct_series(4)
    ingest(tenant, [to_bytes(ds) for ds in first])
    other = make_ct_series(4)
    for n in range(reused):
        other[-1 - n].SOPInstanceUID = first[-1 - n].SOPInstanceUID
    files = tier1_files(tenant)
    alone = []
    monkeypatch.setattr(service, "_index_one_racing", lambda *args: alone.append(args) or pytest.fail("alone"))
    results = ingest(tenant, [to_bytes(ds) for ds in other])
    assert [r.outcome for r in results] == [Outcome.STORED] * (4 - reused) + [Outcome.CONFLICT] * reused
    assert alone == []
    stored = {tier1_path(r.instance.storage_key) for r in results if r.outcome == Outcome.STORED}
    assert tier1_files(tenant) == files | stored
    assert Charge.objects.for_tenant(tenant).count() == (2 if reused < 4 else 1)


def test_a_patient_another_request_made_meanwhile_is_read_and_shared(tenant, monkeypatch):
    """The patient's look-up found none, then another request made the row before this
    insert: the insert leaves it as it is (no key comes back), and it is read and used."""
    first = make_ct_series(1, patient_id="SHARED")
    ingest(tenant, [to_bytes(first[0])])
    real = service.patients_by_id
    calls = []

    def not_yet_on_the_first_look(tenant_, ids):
        calls.append(set(ids))
        return [] if len(calls) == 1 else real(tenant_, ids)

    monkeypatch.setattr(service, "patients_by_id", not_yet_on_the_first_look)
    [result] = ingest(tenant, [to_bytes(make_ct_series(1, patient_id="SHARED")[0])])
    assert result.outcome == Outcome.STORED and calls == [{"SHARED"}, {"SHARED"}]
    studies = Study.objects.for_tenant(tenant)
    assert studies.count() == 2 and len({s.patient_id for s in studies}) == 1
