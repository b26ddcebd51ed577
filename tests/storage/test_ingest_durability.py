"""INGEST_DURABILITY=primary: an acknowledgement means a region holds the encrypted copy,
confirmed by its own checksum, so no acknowledged instance depends on one node's disk.

Real peers throughout: two SeaweedFS regions, the web server as `make run` starts it (two
of them, each with its own tier 1, as two hosts would be), a real Celery worker with a
tier 1 of its own, pynetdicom as a modality. A region "down" is an endpoint where nothing
listens."""

import shutil

import pydicom
import pytest
import requests
from botocore.config import Config
from pydicom.uid import ExplicitVRLittleEndian
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage

from archive.ingest import errors
from archive.models import Instance
from archive.storage import pipeline
from archive.storage.integrity import copy_check
from archive.storage.models import InstanceCopy
from archive.storage.selectors import storage_status
from cloudpacs.objectstore.objects import object_keys
from tenants.audit import Actor
from tests.archive.stow_helpers import files_under, multipart
from tests.dicom_factory import make_ct_series, to_bytes
from tests.servers import WebServer, database_url, free_port, wait_for
from tests.storage.conftest import TEST_MASTER_KEY

NAME = "Confidential^Patricia"


@pytest.fixture
def primary_mode(settings, s3_regions):
    from archive.storage import durability

    settings.INGEST_DURABILITY = "primary"
    durability._down_until.clear()  # a region another test took down is up here
    yield s3_regions
    durability._down_until.clear()


def _region_down(settings, region: str) -> None:
    """Point `region` at a port where nothing listens (connection refused at once)."""
    current = settings.STORAGES[region]
    settings.STORAGES = {**settings.STORAGES, region: {**current, "OPTIONS": {
        **current["OPTIONS"], "endpoint_url": f"http://127.0.0.1:{free_port()}",
        "client_config": Config(connect_timeout=1, read_timeout=1, retries={"max_attempts": 1})}}}


def _stow(client, token, datasets):
    body, content_type = multipart([to_bytes(ds) for ds in datasets])
    return client.post("/t/acme/dicomweb/studies", data=body, content_type=content_type,
                       HTTP_AUTHORIZATION=f"Bearer {token}", HTTP_ACCEPT="application/dicom+json")


def _copies(tenant) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for uid, region, state in InstanceCopy.objects.for_tenant(tenant).values_list(
            "instance__sop_instance_uid", "region", "state"):
        found.setdefault(uid, set()).add(f"{region}:{state}")
    return found


def test_acknowledged_means_verified_in_the_primary(client, tenant, make_token, primary_mode):
    datasets = make_ct_series(3, 64, 64, patient_name=NAME)
    response = _stow(client, make_token(tenant, scopes=("upload",)), datasets)
    assert response.status_code == 200, response.content
    # No worker has run: the copy was made and confirmed before the answer.
    assert _copies(tenant) == {ds.SOPInstanceUID: {"primary:verified"} for ds in datasets}
    for instance in Instance.objects.for_tenant(tenant):
        assert copy_check(instance, "primary").ok
    # The pipeline then gives the secondary its copy and leaves the primary's alone.
    for instance in Instance.objects.for_tenant(tenant):
        pipeline.copy_upload(instance, "secondary")
    assert storage_status(tenant=tenant)["secondary_verified"] == 3


@pytest.mark.django_db(transaction=True)
def test_a_senders_next_images_get_their_copy_before_the_answer_too(tenant, primary_mode):
    """A C-STORE association's second image on, indexed outside a transaction: in this
    mode it takes the general path, and its confirmed copy's row commits with it."""
    from archive.ingest.service import IngestContext, instance_ingest
    from archive.ingest.spool import spool_chunks

    datasets, context = make_ct_series(3, 64, 64), IngestContext()
    for ds in datasets:
        assert instance_ingest(tenant=tenant, spooled=spool_chunks([to_bytes(ds)]), actor=Actor.system("test"),
                               context=context).ok
    assert _copies(tenant) == {ds.SOPInstanceUID: {"primary:verified"} for ds in datasets}


def test_primary_down_the_secondary_takes_the_acknowledged_copy(client, tenant, make_token, primary_mode,
                                                                settings, seaweed):
    _region_down(settings, "primary")
    datasets = make_ct_series(2, 64, 64, patient_name=NAME)
    response = _stow(client, make_token(tenant, scopes=("upload",)), datasets)
    assert response.status_code == 200, response.content
    assert _copies(tenant) == {ds.SOPInstanceUID: {"secondary:verified"} for ds in datasets}
    for instance in Instance.objects.for_tenant(tenant):
        assert copy_check(instance, "secondary").ok
    # The primary is back: the pipeline fills it (from tier 1 here, else from the secondary).
    settings.STORAGES = {**settings.STORAGES, "primary": {**settings.STORAGES["primary"], "OPTIONS": {
        **settings.STORAGES["primary"]["OPTIONS"], "endpoint_url": seaweed["primary"].endpoint}}}
    for instance in Instance.objects.for_tenant(tenant):
        pipeline.copy_upload(instance, "primary")
        assert copy_check(instance, "primary").ok


def test_a_region_that_failed_is_not_tried_again_for_a_while(client, tenant, make_token, primary_mode,
                                                            settings, monkeypatch):
    """Each instance must not wait out the same timeouts: after the primary failed, the
    next requests go to the secondary at once, for DOWN_SECONDS."""
    from archive.storage import durability

    _region_down(settings, "primary")
    token = make_token(tenant, scopes=("upload",))
    assert _stow(client, token, make_ct_series(1, 32, 32)).status_code == 200
    tried = []
    real = durability.object_put_checked
    monkeypatch.setattr(durability, "object_put_checked",
                        lambda region, *a, **k: (tried.append(region), real(region, *a, **k))[1])
    assert _stow(client, token, make_ct_series(2, 32, 32)).status_code == 200
    assert tried == ["secondary", "secondary"]


def test_both_regions_down_nothing_is_stored_and_the_sender_is_told_to_retry(client, tenant, make_token,
                                                                             primary_mode, settings):
    _region_down(settings, "primary")
    _region_down(settings, "secondary")
    datasets = make_ct_series(2, 64, 64, patient_name=NAME)
    response = _stow(client, make_token(tenant, scopes=("upload",)), datasets)
    assert response.status_code == 503, response.content
    assert response["Retry-After"]
    failed = pydicom.Dataset.from_json(response.json()).FailedSOPSequence
    assert [(item.ReferencedSOPInstanceUID, item.FailureReason) for item in failed] == [
        (ds.SOPInstanceUID, errors.OUT_OF_RESOURCES) for ds in datasets]
    assert not Instance.objects.for_tenant(tenant).exists()
    assert files_under(settings.TIER1_PATH, settings.INGEST_TMP_DIR) == []


def test_both_regions_down_a_broken_part_is_still_refused_for_what_it_is(client, tenant, make_token,
                                                                         primary_mode, settings):
    _region_down(settings, "primary")
    _region_down(settings, "secondary")
    good = make_ct_series(1, 32, 32)[0]
    body, content_type = multipart([to_bytes(good), b"not dicom at all"])
    response = client.post("/t/acme/dicomweb/studies", data=body, content_type=content_type,
                           HTTP_AUTHORIZATION=f"Bearer {make_token(tenant, scopes=('upload',))}",
                           HTTP_ACCEPT="application/dicom+json")
    assert response.status_code == 409  # not 503: sending it again will not help the broken part
    reasons = sorted(item.FailureReason for item in pydicom.Dataset.from_json(response.json()).FailedSOPSequence)
    assert reasons == sorted([errors.OUT_OF_RESOURCES, errors.CANNOT_UNDERSTAND])


@pytest.mark.django_db(transaction=True)  # the gateway's threads have their own connections
def test_cstore_with_both_regions_down_is_out_of_resources(gateway, tenant, primary_mode, settings):
    _region_down(settings, "primary")
    _region_down(settings, "secondary")
    ds = make_ct_series(1, 64, 64, patient_name=NAME)[0]
    ae = AE(ae_title="MODALITY1")
    ae.add_requested_context(CTImageStorage, ExplicitVRLittleEndian)
    assoc = ae.associate("127.0.0.1", gateway, ae_title=tenant.ae_title)
    assert assoc.is_established
    status = assoc.send_c_store(ds)
    assoc.release()
    assert status.Status == errors.OUT_OF_RESOURCES  # the modality keeps it and sends it again
    assert not Instance.objects.for_tenant(tenant).exists()
    assert files_under(settings.TIER1_PATH) == []


def test_an_index_failure_takes_the_placed_copies_away(client, tenant, make_token, primary_mode, monkeypatch):
    """Placed, then not indexed (the database refused the batch): no object is left that
    no row points to, in a region a restore would read."""
    from archive.ingest import service

    def instances_in_primary():  # the data key's document, written first, is no instance
        return {key for key in object_keys("primary") if not key.startswith("_keys/")}

    before = instances_in_primary()

    def refuse(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(service, "_index", refuse)
    with pytest.raises(RuntimeError):
        _stow(client, make_token(tenant, scopes=("upload",)), make_ct_series(2, 64, 64))
    assert instances_in_primary() == before


@pytest.mark.worker
def test_two_web_nodes_and_a_worker_on_other_disks(tenant, make_token, start_worker, redis_broker, primary_mode,
                                                   settings, tmp_path):
    """Two web nodes and a worker, each with a tier 1 of its own (no shared file system).
    One node's tier 1 is lost right after it acknowledged: every instance it took is
    still archived in both regions and read back, bit for bit, through the other node."""
    from django.db import connection

    token = make_token(tenant, scopes=("upload", "read"))
    app, broker_url = redis_broker
    nodes = []
    for name in ("a", "b"):
        node = WebServer({**primary_mode, "DATABASE_URL": database_url(connection.settings_dict),
                          "CLOUDPACS_MASTER_KEY": TEST_MASTER_KEY, "CLOUDPACS_VAR_DIR": str(tmp_path / f"var-{name}"),
                          "TIER1_PATH": str(tmp_path / f"tier1-{name}"),
                          "INGEST_TMP_DIR": str(tmp_path / f"tmp-{name}"), "INGEST_DURABILITY": "primary",
                          "CELERY_BROKER_URL": broker_url,
                          "CELERY_TASK_DEFAULT_QUEUE": app.conf.task_default_queue}, tmp_path, workers=1)
        nodes.append(node)
    try:
        for node in nodes:
            node.start()
        sent = {}
        for node in nodes:
            datasets = make_ct_series(3, 64, 64, patient_name=NAME)
            body, content_type = multipart([to_bytes(ds) for ds in datasets])
            answer = requests.post(f"{node.url}/t/acme/dicomweb/studies", data=body, timeout=60, headers={
                "Content-Type": content_type, "Authorization": f"Bearer {token}"})
            assert answer.status_code == 200, answer.text
            sent[node.url] = datasets
        shutil.rmtree(tmp_path / "tier1-a")  # node a's disk is gone
        # The nodes' messages wait on Redis for a worker, which has a disk of its own.
        start_worker(TIER1_PATH=str(tmp_path / "tier1-worker"), INGEST_TMP_DIR=str(tmp_path / "tmp-worker"),
                     INGEST_DURABILITY="primary")

        def archived():
            status = storage_status(tenant=tenant)
            return (status["instances"], status["primary_verified"], status["secondary_verified"]) == (6, 6, 6)

        wait_for(archived, timeout=90, interval=0.5, what="both regions to hold every instance")
        for instance in Instance.objects.for_tenant(tenant):
            for region in ("primary", "secondary"):
                assert copy_check(instance, region).ok
        for ds in sent[nodes[0].url]:  # what node a took, read through node b
            url = (f"{nodes[1].url}/t/acme/dicomweb/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                   f"/instances/{ds.SOPInstanceUID}")
            answer = requests.get(url, timeout=60, headers={
                "Authorization": f"Bearer {token}",
                "Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'})
            assert answer.status_code == 200, answer.text
            assert to_bytes(ds)[132:] in answer.content  # the instance as sent, past the preamble
    finally:
        for node in nodes:
            node.stop()


def test_browser_upload_with_both_regions_down_says_to_upload_again(tenant, primary_mode, settings):
    """A zip member that no region takes is rejected with a clear reason, not a 500."""
    import zipfile
    from pathlib import Path

    from archive.upload.ingest import upload_ingest

    _region_down(settings, "primary")
    _region_down(settings, "secondary")
    path = Path(settings.INGEST_TMP_DIR) / "study.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for n, ds in enumerate(make_ct_series(2, 32, 32)):
            zf.writestr(f"IM{n}", to_bytes(ds))
    entries = upload_ingest(tenant=tenant, path=path, name="study.zip", actor=Actor.system("test"))
    assert len(entries) == 2 and all("upload it again later" in str(e) for e in entries)
    assert not Instance.objects.for_tenant(tenant).exists()
