"""C-STORE statuses through the real gateway and a pynetdicom SCU: a conflicting duplicate
is a failure (0111H), an instance whose UIDs are not valid is refused (A900H), and
neither leaves anything stored."""

import pytest
from pynetdicom.sop_class import CTImageStorage

from archive.gateway.models import DicomPeer
from archive.ingest import errors
from archive.models import Instance, Study
from archive.storage.tier1 import tier1_path
from tests.archive.stow_helpers import assert_nothing_stored, files_under, private_dirs  # noqa: F401
from tests.archive.test_gateway import associate, running_gateway
from tests.archive.test_uid_validation import LONG_STUDY_A, LONG_STUDY_B
from tests.dicom_factory import make_ct_series

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def gateway(private_dirs, tenant):  # noqa: F811 - the spool must be this test's before the gateway starts
    DicomPeer.objects.for_tenant(tenant).create(ae_title="MODALITY1")
    with running_gateway() as port:
        yield port


def send(port, tenant, datasets) -> list[int]:
    assoc = associate(port, tenant.ae_title, contexts=[CTImageStorage])
    assert assoc.is_established
    try:
        return [assoc.send_c_store(ds).Status for ds in datasets]
    finally:
        assoc.release()


def test_conflicting_duplicate_is_a_failure_first_copy_kept(gateway, tenant, private_dirs):  # noqa: F811
    ds = make_ct_series(1, 8, 8)[0]
    assert send(gateway, tenant, [ds]) == [0x0000]
    first = Instance.objects.for_tenant(tenant).get()
    kept = tier1_path(first.storage_key).read_bytes()
    changed = make_ct_series(1, 8, 8)[0]
    changed.SOPInstanceUID = changed.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    changed.SeriesDescription = "other content, same SOP Instance UID"
    # Not 0xB000 (a warning that modalities count as stored, and may then delete their copy).
    assert send(gateway, tenant, [changed, ds]) == [errors.DUPLICATE_SOP_INSTANCE, 0x0000]
    assert list(Instance.objects.for_tenant(tenant).values_list("pk", "sha256")) == [(first.pk, first.sha256)]
    assert tier1_path(first.storage_key).read_bytes() == kept
    assert Study.objects.for_tenant(tenant).count() == 1
    assert files_under(private_dirs.INGEST_TMP_DIR) == []


def test_invalid_uids_refused_nothing_stored(gateway, tenant, private_dirs):  # noqa: F811
    """Two studies whose UIDs differ only after the 64th character, and SOP Instance UIDs
    that are markup or a path: each refused, none merged or stored."""
    long_a = make_ct_series(1, 8, 8, study_uid=LONG_STUDY_A, patient_id="PAT-A")[0]
    long_b = make_ct_series(1, 8, 8, study_uid=LONG_STUDY_B, patient_id="PAT-B")[0]
    markup, path = make_ct_series(2, 8, 8)
    markup.SOPInstanceUID = markup.file_meta.MediaStorageSOPInstanceUID = "1.2.3.abc<script>"
    path.SOPInstanceUID = path.file_meta.MediaStorageSOPInstanceUID = "../../tmp/x"
    statuses = send(gateway, tenant, [long_a, long_b, markup, path])
    assert statuses == [errors.DATASET_DOES_NOT_MATCH_SOP_CLASS] * 4
    assert_nothing_stored(tenant, private_dirs)


def test_an_instance_over_the_size_limit_is_refused_out_of_resources(gateway, tenant, private_dirs):  # noqa: F811
    """Over INGEST_MAX_INSTANCE_BYTES: A700H (out of resources), nothing stored, nothing
    of it left in the spool; the association goes on."""
    small, big = make_ct_series(2, 64, 64)
    private_dirs.INGEST_MAX_INSTANCE_BYTES = 4096  # the big one is 8 KiB of pixels alone
    big.PixelData = bytes(64 * 64 * 2)
    small.Rows = small.Columns = 8
    small.PixelData = bytes(8 * 8 * 2)
    assert send(gateway, tenant, [big, small]) == [0xA700, 0x0000]
    assert [i.sop_instance_uid for i in Instance.objects.for_tenant(tenant)] == [small.SOPInstanceUID]
    assert files_under(private_dirs.INGEST_TMP_DIR) == []
