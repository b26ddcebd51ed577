"""QIDO-RS and WADO-RS with a real DICOMweb client (dicomweb-client) against the live
server, authenticated with a read-scope bearer token."""

import io

import numpy as np
import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from requests.exceptions import HTTPError

from tests.archive.dicomweb_data import bundled, ingest, ingest_datasets
from tests.archive.stow_helpers import private_dirs  # noqa: F401
from tests.dicom_factory import make_ct_series

pytestmark = pytest.mark.usefixtures("private_dirs")


def client_for(live_server, tenant, token) -> DICOMwebClient:
    return DICOMwebClient(url=f"{live_server.url}/t/{tenant.slug}/dicomweb",
                          headers={"Authorization": f"Bearer {token}"})


@pytest.fixture
def data(tenant):
    ct = make_ct_series(4, 32, 32, patient_name="Client^Carla", patient_id="DWC1", study_date="20230301")
    ingest_datasets(tenant, ct)
    j2k = bundled("MR_small_jp2klossless.dcm")
    ingest(tenant, j2k)
    return ct, pydicom.dcmread(io.BytesIO(j2k))


@pytest.fixture
def dicomweb(live_server, tenant, make_token):
    return client_for(live_server, tenant, make_token(tenant, scopes=("read",)))


def test_search(dicomweb, data):
    ct, mr = data
    studies = dicomweb.search_for_studies(search_filters={"PatientName": "client*"})
    assert [s["0020000D"]["Value"][0] for s in studies] == [ct[0].StudyInstanceUID]
    assert dicomweb.search_for_studies(search_filters={"StudyDate": "20230101-20231231",
                                                       "ModalitiesInStudy": "CT"})
    assert dicomweb.search_for_studies(search_filters={"PatientID": "nobody"}) == []
    series = dicomweb.search_for_series(study_instance_uid=mr.StudyInstanceUID)
    assert [s["0020000E"]["Value"][0] for s in series] == [mr.SeriesInstanceUID]
    instances = dicomweb.search_for_instances(study_instance_uid=ct[0].StudyInstanceUID,
                                              series_instance_uid=ct[0].SeriesInstanceUID,
                                              fields=["SliceThickness"], limit=2, offset=1)
    assert [i["00200013"]["Value"][0] for i in instances] == [2, 3]
    assert instances[0]["00180050"]["Value"][0] == 1.0


def test_retrieve_round_trips_pixels(dicomweb, data):
    ct, mr = data
    study = dicomweb.retrieve_study(ct[0].StudyInstanceUID)
    assert {d.SOPInstanceUID: d.PixelData for d in study} == {d.SOPInstanceUID: d.PixelData for d in ct}
    series = dicomweb.retrieve_series(ct[0].StudyInstanceUID, ct[0].SeriesInstanceUID)
    assert len(series) == 4
    # Stored JPEG 2000, asked for Explicit VR Little Endian: transcoded, same pixels.
    got = dicomweb.retrieve_instance(mr.StudyInstanceUID, mr.SeriesInstanceUID, mr.SOPInstanceUID,
                                     media_types=(("application/dicom", "1.2.840.10008.1.2.1"),))
    assert got.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
    assert np.array_equal(got.pixel_array, mr.pixel_array)
    # The client's default for one instance is transfer-syntax=*: as stored.
    stored = dicomweb.retrieve_instance(mr.StudyInstanceUID, mr.SeriesInstanceUID, mr.SOPInstanceUID)
    assert stored.PixelData == mr.PixelData


def test_metadata_frames_rendered(dicomweb, data):
    ct, _ = data
    ds = ct[2]
    uids = (ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    meta = dicomweb.retrieve_instance_metadata(*uids)
    assert meta["00100010"]["Value"][0]["Alphabetic"] == "Client^Carla"
    assert "/bulkdata/7FE00010" in meta["7FE00010"]["BulkDataURI"]
    [frame] = dicomweb.retrieve_instance_frames(*uids, frame_numbers=[1])
    assert frame == ds.PixelData
    png = dicomweb.retrieve_instance_rendered(*uids, media_types=("image/png",))
    assert png.startswith(b"\x89PNG")
    # dicomweb-client sends `Host: <hostname>` without the port, so URLs built from Host
    # lack the live server's port (on the real service's port 443 they are right).
    uri = meta["7FE00010"]["BulkDataURI"]
    assert uri.startswith("http://localhost/t/acme/dicomweb/studies/")
    bulk = dicomweb.retrieve_bulkdata(uri.replace("http://localhost", dicomweb.base_url.split("/t/")[0]))
    assert bulk == [ds.PixelData]


def test_other_clinic_and_upload_only(live_server, tenant, other_tenant, make_token, data):
    ct, _ = data
    ds = ct[0]
    theirs = client_for(live_server, tenant, make_token(other_tenant, scopes=("read",)))
    with pytest.raises(HTTPError) as exc:
        theirs.retrieve_study(ds.StudyInstanceUID)
    assert exc.value.response.status_code == 404
    with pytest.raises(HTTPError) as exc:
        theirs.search_for_studies()
    assert exc.value.response.status_code == 404
    upload = client_for(live_server, tenant, make_token(tenant, scopes=("upload",)))
    with pytest.raises(HTTPError) as exc:
        upload.retrieve_instance_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SOPInstanceUID)
    assert exc.value.response.status_code == 403
