"""STOW-RS with a real DICOMweb client (dicomweb-client) against the live server."""

from pathlib import Path

import pydicom
import pytest
from dicomweb_client.api import DICOMwebClient
from pydicom.data import get_testdata_file
from requests.exceptions import HTTPError

from archive.ingest import errors
from archive.models import Instance, Study
from tests.archive.stow_helpers import private_dirs  # noqa: F401
from tests.dicom_factory import make_ct_series

pytestmark = pytest.mark.usefixtures("private_dirs")

# Bundled files with distinct SOP Instance UIDs (several bundled files share one), one per
# transfer syntax: explicit LE/BE, implicit, RLE, JPEG 2000 (both), JPEG-LS, JPEG baseline.
# (Deflated image_dfl.dcm is refused by parse.py's truncation check, which compares offsets
# in the inflated stream with the file size: reported to the ingest owner.)
BUNDLED = ["CT_small.dcm", "ExplVR_BigEnd.dcm", "rtdose.dcm", "SC_rgb_rle.dcm", "693_J2KI.dcm",
           "GDCMJ2K_TextGBR.dcm", "MR_small_jpeg_ls_lossless.dcm", "SC_rgb_jpeg_lossy_gdcm.dcm"]


@pytest.fixture
def dicomweb(live_server, tenant, make_token):
    # chunk_size above the body size: the client then sends Content-Length. Django's live
    # server cannot de-chunk request bodies (production gunicorn can, see test_stow.py).
    return DICOMwebClient(url=f"{live_server.url}/t/{tenant.slug}/dicomweb",
                          headers={"Authorization": f"Bearer {make_token(tenant, scopes=('upload',))}"},
                          chunk_size=64 << 20)


def test_store_generated_ct_series(dicomweb, tenant):
    series = make_ct_series(5, 64, 64)
    result = dicomweb.store_instances(series)
    assert {i.ReferencedSOPInstanceUID for i in result.ReferencedSOPSequence} == {
        ds.SOPInstanceUID for ds in series}
    assert "FailedSOPSequence" not in result
    assert result.RetrieveURL.endswith(f"/dicomweb/studies/{series[0].StudyInstanceUID}")
    study = Study.objects.for_tenant(tenant).get()
    assert (study.study_instance_uid, study.num_instances) == (series[0].StudyInstanceUID, 5)


def test_store_bundled_files_in_several_transfer_syntaxes(dicomweb, tenant):
    datasets = [pydicom.dcmread(get_testdata_file(name)) for name in BUNDLED]
    assert len({ds.SOPInstanceUID for ds in datasets}) == len(BUNDLED)
    result = dicomweb.store_instances(datasets)
    assert "FailedSOPSequence" not in result, [(i.ReferencedSOPInstanceUID, i[0x00091001].value) for i in result.FailedSOPSequence]
    assert len(result.ReferencedSOPSequence) == len(BUNDLED)
    stored = dict(Instance.objects.for_tenant(tenant).values_list("sop_instance_uid", "transfer_syntax_uid"))
    for ds in datasets:
        assert stored[ds.SOPInstanceUID] == ds.file_meta.TransferSyntaxUID
    assert len(set(stored.values())) == len(BUNDLED)
    sizes = dict(Instance.objects.for_tenant(tenant).values_list("sop_instance_uid", "size_bytes"))
    name = BUNDLED[0]
    assert sizes[datasets[0].SOPInstanceUID] >= Path(get_testdata_file(name)).stat().st_size - 200


def test_store_into_a_named_study(dicomweb, tenant):
    series = make_ct_series(2, 16, 16)
    result = dicomweb.store_instances(series, study_instance_uid=series[0].StudyInstanceUID)
    assert len(result.ReferencedSOPSequence) == 2


def test_wrong_study_raises_409_in_the_client(dicomweb, tenant):
    with pytest.raises(HTTPError) as exc:
        dicomweb.store_instances(make_ct_series(1, 8, 8), study_instance_uid="1.2.3.999")
    assert exc.value.response.status_code == 409
    failed = pydicom.Dataset.from_json(exc.value.response.json()).FailedSOPSequence
    assert failed[0].FailureReason == errors.STUDY_UID_MISMATCH
    assert not Instance.objects.for_tenant(tenant).exists()
