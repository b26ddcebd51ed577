"""WADO-RS: multipart retrieval with transfer-syntax negotiation, metadata with bulk data
URLs, frames, bulk data, audit and isolation (Django test client, bearer token)."""

import io
import json
import re

import numpy as np
import pydicom
import pytest
from pydicom.uid import (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from archive.storage.reader import InstanceUnavailable
from tenants.audit import AuditEvent
from tests.archive.dicomweb_data import bearer, bundled, ingest, ingest_datasets, url
from tests.dicom_factory import make_ct_series, to_bytes


@pytest.fixture
def token(tenant, make_token):
    return make_token(tenant, scopes=("read",))


def parts(response) -> list[tuple[str, bytes]]:
    """Split a multipart/related body (read from the stream) into (content type, body)."""
    assert response.status_code == 200, getattr(response, "content", b"")[:300]
    body = b"".join(response.streaming_content)
    boundary = re.search(r"boundary=([^;]+)", response["Content-Type"]).group(1).encode()
    out = []
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk[2:].partition(b"\r\n\r\n")
        out.append((head.decode().split(":", 1)[1].strip(), data[:-2]))
    return out


@pytest.fixture
def ct(tenant):
    datasets = make_ct_series(3, 16, 16)
    instances = ingest_datasets(tenant, datasets)
    return datasets, instances


def instance_path(ds) -> str:
    return f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


def test_study_series_instance_retrieve_as_stored(client, tenant, token, ct):
    datasets, _ = ct
    ds = datasets[0]
    study = parts(client.get(url(tenant, f"studies/{ds.StudyInstanceUID}"), **bearer(token)))
    assert [body for _, body in study] == [to_bytes(d) for d in datasets]  # byte-identical
    assert study[0][0] == f"application/dicom; transfer-syntax={ExplicitVRLittleEndian}"
    series = parts(client.get(url(tenant, f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"),
                              **bearer(token)))
    assert len(series) == 3
    [(_, one)] = parts(client.get(url(tenant, instance_path(ds)), **bearer(token)))
    assert one == to_bytes(ds)


def test_a_retrieve_as_stored_says_its_length(client, tenant, token, ct):
    """Known sizes, so the response has a Content-Length (a viewer shows progress) that is
    exactly the body's; a part that must be transcoded first leaves it out."""
    datasets, _ = ct
    ds = datasets[0]
    for path in (f"studies/{ds.StudyInstanceUID}", instance_path(ds)):
        response = client.get(url(tenant, path), **bearer(token))
        body = b"".join(response.streaming_content)
        assert int(response["Content-Length"]) == len(body)
    transcoded = client.get(url(tenant, f"studies/{ds.StudyInstanceUID}"), **bearer(token),
                            HTTP_ACCEPT=f'multipart/related; type="application/dicom"; '
                                        f"transfer-syntax={ImplicitVRLittleEndian}")
    assert transcoded.status_code == 200 and not transcoded.has_header("Content-Length")
    assert len(parts(transcoded)) == 3


def test_a_file_of_another_size_than_indexed_breaks_the_response(client, tenant, token, ct):
    """With a declared length, a part of another size must not shift the rest: the stream
    ends as broken at that part."""
    datasets, instances = ct
    type(instances[1]).unscoped.filter(pk=instances[1].pk).update(size_bytes=instances[1].size_bytes + 1)
    response = client.get(url(tenant, f"studies/{datasets[0].StudyInstanceUID}"), **bearer(token))
    with pytest.raises(InstanceUnavailable):
        b"".join(response.streaming_content)


def test_one_audit_event_per_retrieve(client, tenant, token, ct):
    datasets, instances = ct
    before = AuditEvent.objects.for_tenant(tenant).count()
    response = client.get(url(tenant, f"studies/{datasets[0].StudyInstanceUID}"), **bearer(token))
    parts(response)
    events = AuditEvent.objects.for_tenant(tenant).order_by("-seq")
    assert events.count() == before + 1
    event = events.first()
    assert (event.action, event.object_type, event.object_id) == ("dicomweb.retrieve", "study",
                                                                  str(instances[0].study_id))
    assert event.detail["instances"] == 3 and event.actor_type == AuditEvent.TOKEN


@pytest.mark.django_db(transaction=True)  # coverage starts when the event is committed
def test_a_viewer_s_frames_of_one_study_are_covered_by_one_event(client, tenant, make_token, token, ct,
                                                                  settings, monkeypatch):
    """A viewer asks for every frame of a study, each in its own request: the first read
    of each per-image door writes its event (committed before that first answer), which
    covers the same reader's reads of that study through that door for
    PHI_READ_REPEAT_SECONDS; another reader, door or study, or a later read, writes again."""
    from tenants import phi_audit

    datasets, instances = ct
    settings.PHI_READ_REPEAT_SECONDS = 60
    other_reader = make_token(tenant, scopes=("read",), name="other reader")
    events = AuditEvent.objects.for_tenant(tenant)
    before = events.count()

    def read(ds, what="frames/1", reader=token):
        response = client.get(url(tenant, instance_path(ds) + "/" + what), **bearer(reader))
        assert response.status_code == 200
        b"".join(response.streaming_content) if response.streaming else response.content

    for ds in datasets:
        read(ds)
    assert events.count() == before + 1
    first = events.order_by("-seq").first()
    assert (first.action, first.object_id, first.detail["what"]) == ("dicomweb.retrieve",
                                                                    str(instances[0].study_id), "frames")
    assert first.detail["covers_repeats_for_s"] == 60
    read(datasets[0], "rendered")  # another door
    read(datasets[0], reader=other_reader)
    assert events.count() == before + 3
    now = phi_audit._now()
    monkeypatch.setattr(phi_audit, "_now", lambda: now + 61)
    read(datasets[1])  # the window has passed
    assert events.count() == before + 4
    settings.PHI_READ_REPEAT_SECONDS = 0  # an event for every request
    read(datasets[1])
    read(datasets[1])
    assert events.count() == before + 6
    assert "covers_repeats_for_s" not in events.order_by("-seq").first().detail


@pytest.mark.parametrize("accept, expected", [
    ('multipart/related; type="application/dicom"', ExplicitVRLittleEndian),
    ('multipart/related; type="application/dicom"; transfer-syntax=*', JPEG2000Lossless),
    (f'multipart/related; type="application/dicom"; transfer-syntax={ImplicitVRLittleEndian}',
     ImplicitVRLittleEndian),
    (f'multipart/related; type="application/dicom"; transfer-syntax={JPEGLSLossless}', JPEGLSLossless),
    (f'multipart/related; type="application/dicom"; transfer-syntax={RLELossless}', RLELossless),
])
def test_transfer_syntax_negotiation(client, tenant, token, accept, expected):
    data = bundled("MR_small_jp2klossless.dcm")
    ingest(tenant, data)
    original = pydicom.dcmread(io.BytesIO(data))
    response = client.get(url(tenant, instance_path(original)), HTTP_ACCEPT=accept, **bearer(token))
    [(ctype, body)] = parts(response)
    assert ctype == f"application/dicom; transfer-syntax={expected}"
    got = pydicom.dcmread(io.BytesIO(body))
    assert got.file_meta.TransferSyntaxUID == expected
    assert np.array_equal(got.pixel_array, original.pixel_array)  # lossless both ways
    # The same instance in another encoding: pydicom's compress() makes a new SOP Instance
    # UID unless told not to, and a viewer would then show a second copy of the image.
    assert (got.SOPInstanceUID, got.file_meta.MediaStorageSOPInstanceUID) == (original.SOPInstanceUID,) * 2
    if expected == JPEG2000Lossless:
        assert body == data


def test_unavailable_syntax_is_406(client, tenant, token):
    ingest(tenant, bundled("rtdose.dcm"))  # 32-bit: no lossless encoder takes it
    ds = pydicom.dcmread(io.BytesIO(bundled("rtdose.dcm")), stop_before_pixels=True)
    for ts in (JPEGLSLossless, "1.2.840.10008.1.2.4.50"):
        response = client.get(url(tenant, instance_path(ds)), **bearer(token),
                              HTTP_ACCEPT=f'multipart/related; type="application/dicom"; transfer-syntax={ts}')
        assert response.status_code == 406, ts
    assert client.get(url(tenant, instance_path(ds)), HTTP_ACCEPT="application/json",
                      **bearer(token)).status_code == 406


def test_metadata_with_bulkdata_urls(client, tenant, token, ct):
    datasets, _ = ct
    ds = datasets[1]
    response = client.get(url(tenant, instance_path(ds) + "/metadata"), **bearer(token))
    assert response.status_code == 200 and response["Content-Type"].startswith("application/dicom+json")
    [meta] = response.json()
    assert meta["00080018"]["Value"] == [ds.SOPInstanceUID]
    bulk = meta["7FE00010"]["BulkDataURI"]
    assert bulk.startswith("http://testserver/t/acme/dicomweb/") and bulk.endswith("/bulkdata/7FE00010")
    [(ctype, pixels)] = parts(client.get(bulk, **bearer(token)))
    assert pixels == ds.PixelData
    study_meta = client.get(url(tenant, f"studies/{ds.StudyInstanceUID}/metadata"), **bearer(token)).json()
    assert len(study_meta) == 3


def test_frames_uncompressed_and_as_stored(client, tenant, token):
    data = bundled("SC_rgb_rle_2frame.dcm")
    ingest(tenant, data)
    original = pydicom.dcmread(io.BytesIO(data))
    frames_url = url(tenant, instance_path(original) + "/frames/2,1")
    got = parts(client.get(frames_url, **bearer(token)))
    assert [c for c, _ in got] == [f"application/octet-stream; transfer-syntax={ExplicitVRLittleEndian}"] * 2
    expected = original.pixel_array
    assert got[0][1] == expected[1].astype("<u1").tobytes() and got[1][1] == expected[0].tobytes()
    stored = parts(client.get(frames_url, HTTP_ACCEPT='multipart/related; type="image/dicom-rle"',
                              **bearer(token)))
    assert stored[0][0] == f"image/dicom-rle; transfer-syntax={RLELossless}"
    raw = list(pydicom.encaps.generate_frames(original.PixelData, number_of_frames=2))
    assert [b for _, b in stored] == [raw[1], raw[0]]


def test_frames_of_uncompressed_file_read_in_place(client, tenant, token, ct):
    datasets, _ = ct
    [(_, frame)] = parts(client.get(url(tenant, instance_path(datasets[2]) + "/frames/1"), **bearer(token)))
    assert frame == datasets[2].PixelData


@pytest.mark.parametrize("frames, status", [("3", 400), ("0", 400), ("a", 400)])
def test_bad_frames(client, tenant, token, ct, frames, status):
    datasets, _ = ct
    assert client.get(url(tenant, instance_path(datasets[0]) + f"/frames/{frames}"),
                      **bearer(token)).status_code == status


def test_isolation_and_scopes(client, tenant, other_tenant, make_token, token, ct):
    datasets, _ = ct
    ds = datasets[0]
    theirs = make_token(other_tenant, scopes=("read",))
    paths = [f"studies/{ds.StudyInstanceUID}", f"studies/{ds.StudyInstanceUID}/metadata",
             f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}",
             f"studies/{ds.StudyInstanceUID}/thumbnail", instance_path(ds), instance_path(ds) + "/metadata",
             instance_path(ds) + "/frames/1", instance_path(ds) + "/rendered",
             instance_path(ds) + "/bulkdata/7FE00010"]
    for rest in paths:
        assert client.get(url(tenant, rest), **bearer(theirs)).status_code == 404, rest
        assert client.get(url(other_tenant, rest), **bearer(theirs)).status_code == 404, rest
    upload_only = make_token(tenant, scopes=("upload",))
    for rest in paths:
        assert client.get(url(tenant, rest), **bearer(upload_only)).status_code == 403, rest


def test_one_instance_look_up_is_the_clinic_s_and_whole(tenant, other_tenant, ct):
    """A single instance is looked up by compiled SQL (cloudpacs.compiled_query): the same
    fields as the series look-up, scoped to the clinic, and every UID must match."""
    from archive.errors import InstanceNotFound
    from archive.selectors.studies import RETRIEVE_FIELDS, instance_headers, instances_for_retrieve

    datasets, _ = ct
    ds = datasets[1]
    uids = dict(study_uid=ds.StudyInstanceUID, series_uid=ds.SeriesInstanceUID, sop_uid=ds.SOPInstanceUID)
    [one] = instances_for_retrieve(tenant=tenant, **uids)
    [same] = [i for i in instances_for_retrieve(tenant=tenant, study_uid=ds.StudyInstanceUID)
              if i.sop_instance_uid == ds.SOPInstanceUID]
    assert one.get_deferred_fields() == same.get_deferred_fields()  # no field left to a query of its own
    for name in RETRIEVE_FIELDS:
        owner, _, attribute = name.rpartition("__")
        assert getattr(getattr(one, owner) if owner else one, attribute) == \
            getattr(getattr(same, owner) if owner else same, attribute), name
    [header] = instance_headers(tenant=tenant, **uids)
    assert json.loads(header.json_text) == same.metadata and same.metadata
    assert (header.series_instance_uid, header.sop_instance_uid) == (ds.SeriesInstanceUID, ds.SOPInstanceUID)
    for wrong in ({"study_uid": "1.2.3"}, {"series_uid": datasets[0].SeriesInstanceUID + ".9"},
                  {"sop_uid": ds.SOPInstanceUID + ".9"}):
        with pytest.raises(InstanceNotFound):
            instances_for_retrieve(tenant=tenant, **{**uids, **wrong})
        with pytest.raises(InstanceNotFound):
            instance_headers(tenant=tenant, **{**uids, **wrong})
    with pytest.raises(InstanceNotFound):
        instances_for_retrieve(tenant=other_tenant, **uids)
    with pytest.raises(InstanceNotFound):
        instance_headers(tenant=other_tenant, **uids)
