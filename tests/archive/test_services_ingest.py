from pathlib import Path

import pytest
from pydicom.data import get_testdata_file

from archive.ingest.service import Outcome, instance_ingest
from archive.ingest.spool import spool_chunks
from archive.models import Instance, Study
from archive.outbox.models import Outbox
from archive.storage.pipeline import ARCHIVE
from archive.storage.reader import open_instance
from archive.storage.tier1 import tier1_path
from tenants.audit import Actor
from tests.dicom_factory import make_ct_series, to_bytes

ACTOR = Actor.system("test")


def ingest_bytes(tenant, data: bytes, **kwargs):
    return instance_ingest(tenant=tenant, spooled=spool_chunks([data]), actor=ACTOR, **kwargs)


def test_stores_indexes_and_queues(tenant):
    datasets = make_ct_series(3)
    results = [ingest_bytes(tenant, to_bytes(ds)) for ds in datasets]
    assert [r.outcome for r in results] == [Outcome.STORED] * 3
    assert results[0].new_study and not results[1].new_study
    study = Study.objects.for_tenant(tenant).get(study_instance_uid=datasets[0].StudyInstanceUID)
    assert (study.num_instances, study.num_series, study.modalities) == (3, 1, "CT")
    assert study.patient_name == "Doe^Jane" and study.patient_name_search == "DOE^JANE"
    instance = results[0].instance
    with open_instance(instance) as fh:  # tier 1 holds it encrypted
        assert fh.read() == to_bytes(datasets[0])
    assert b"DICM" not in tier1_path(instance.storage_key).read_bytes()
    assert Outbox.objects.for_tenant(tenant).filter(subject_id=instance.pk, kind=ARCHIVE).count() == 1
    assert "7FE00010" in instance.metadata and "BulkDataURI" in instance.metadata["7FE00010"]


def test_same_instance_twice_is_stored_once(tenant):
    data = to_bytes(make_ct_series(1)[0])
    first, second = ingest_bytes(tenant, data), ingest_bytes(tenant, data)
    assert (first.outcome, second.outcome) == (Outcome.STORED, Outcome.ALREADY_PRESENT)
    assert Instance.objects.for_tenant(tenant).count() == 1


def test_same_uid_different_bytes_keeps_first(tenant):
    ds = make_ct_series(1)[0]
    first = ingest_bytes(tenant, to_bytes(ds))
    ds.SeriesDescription = "changed"
    second = ingest_bytes(tenant, to_bytes(ds))
    assert second.outcome == Outcome.CONFLICT
    assert Instance.objects.for_tenant(tenant).get().sha256 == first.instance.sha256


@pytest.mark.parametrize("mutilate", [
    lambda b: b"this is not dicom at all" * 10,
    lambda b: b[: len(b) // 2],
    lambda b: b[:200],
])
def test_broken_input_leaves_nothing(tenant, mutilate, settings):
    data = mutilate(to_bytes(make_ct_series(1)[0]))
    result = ingest_bytes(tenant, data)
    assert result.outcome == Outcome.FAILED and result.reason
    assert not Instance.objects.for_tenant(tenant).exists()
    assert not Study.objects.for_tenant(tenant).exists()
    assert list(Path(settings.INGEST_TMP_DIR).glob("spool-*")) == []


def test_missing_uid_refused(tenant):
    ds = make_ct_series(1)[0]
    del ds.SeriesInstanceUID
    result = ingest_bytes(tenant, to_bytes(ds))
    assert result.outcome == Outcome.FAILED and "SeriesInstanceUID" in result.reason


def test_wrong_study_refused(tenant):
    result = ingest_bytes(tenant, to_bytes(make_ct_series(1)[0]), expected_study_uid="1.2.3.4")
    assert result.outcome == Outcome.FAILED
    assert not Instance.objects.for_tenant(tenant).exists()


def test_tenants_do_not_share_instances(tenant, other_tenant):
    data = to_bytes(make_ct_series(1)[0])
    assert ingest_bytes(tenant, data).outcome == Outcome.STORED
    assert ingest_bytes(other_tenant, data).outcome == Outcome.STORED
    assert Instance.objects.for_tenant(other_tenant).count() == 1


# Files bundled with pydicom (no download): several transfer syntaxes and modalities.
@pytest.mark.parametrize("name", [
    "CT_small.dcm", "MR_small.dcm", "MR_small_implicit.dcm", "MR_small_bigendian.dcm",
    "MR_small_RLE.dcm", "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
    "JPEG2000.dcm", "JPGExtended.dcm", "SC_rgb_rle.dcm", "liver_1frame.dcm", "rtdose.dcm",
    "waveform_ecg.dcm", "test-SR.dcm", "image_dfl.dcm",
])
def test_bundled_files_ingest(tenant, name):
    data = Path(get_testdata_file(name)).read_bytes()
    result = ingest_bytes(tenant, data)
    assert result.outcome == Outcome.STORED, result.reason


@pytest.mark.parametrize("name", ["MR_truncated.dcm", "rtplan_truncated.dcm", "no_meta.dcm"])
def test_bundled_broken_files_refused(tenant, name):
    result = ingest_bytes(tenant, Path(get_testdata_file(name)).read_bytes())
    assert result.outcome == Outcome.FAILED, name
    assert not Instance.objects.for_tenant(tenant).exists()


def _deflated(ds) -> bytes:
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    return to_bytes(ds)


def test_deflated_bomb_is_refused_without_inflating_it(tenant, settings):
    """A small deflated file that inflates to hundreds of MB is refused before pydicom would
    inflate it whole in memory."""
    import tracemalloc

    ds = make_ct_series(1)[0]
    ds.ImageComments = "A" * (200 * 1024 * 1024)  # compresses to a few hundred KB
    data = _deflated(ds)
    assert len(data) < 2 * 1024 * 1024
    tracemalloc.start()
    try:
        result = ingest_bytes(tenant, data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.outcome == Outcome.FAILED and "inflates to more than" in result.reason
    assert peak < 32 * 1024 * 1024
    assert not Instance.objects.for_tenant(tenant).exists()


def test_small_deflated_file_still_ingests(tenant):
    assert ingest_bytes(tenant, _deflated(make_ct_series(1)[0])).outcome == Outcome.STORED
