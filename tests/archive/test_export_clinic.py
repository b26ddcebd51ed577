"""`manage.py export_clinic`: the clinic's archive out as plain DICOM, re-imported into an
empty clinic by STOW-RS over real HTTP and compared bit for bit; an interrupted export
resumes without rewriting what it finished, and never reports a partial study."""

import csv
import hashlib
import io
import shutil
from io import StringIO
from pathlib import Path

import numpy as np
import pydicom
import pytest
import requests
from django.core.management import CommandError, call_command
from pydicom.data import get_testdata_file

from archive.models import Instance
from archive.storage.reader import open_instance
from archive.storage.tier1 import tier1_path
from tenants.audit import AuditEvent
from tests.archive.stow_helpers import multipart, private_dirs  # noqa: F401
from tests.archive.test_services_ingest import ingest_bytes
from tests.dicom_factory import make_ct_series, to_bytes

pytestmark = pytest.mark.usefixtures("private_dirs")


def _load(tenant) -> dict[str, bytes]:
    """Three studies: a CT series, pydicom's real CT, and an MR stored JPEG-LS."""
    sent = [to_bytes(ds) for ds in make_ct_series(3, 64, 64, patient_name="Export^Ed")]
    for name in ("CT_small.dcm", "MR_small_jpeg_ls_lossless.dcm"):
        with open(get_testdata_file(name), "rb") as fh:
            sent.append(fh.read())
    out = {}
    for data in sent:
        assert ingest_bytes(tenant, data).ok
        out[pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID] = data
    return out


def _manifest(root: Path) -> list[dict]:
    with open(root / "manifest.csv", newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.mark.django_db(transaction=True)
def test_export_then_stow_into_an_empty_clinic_is_bit_exact(live_server, tenant, make_tenant, make_token, tmp_path):
    sent = _load(tenant)
    root = tmp_path / "export"
    err = StringIO()
    call_command("export_clinic", "acme", "--to", str(root), stdout=StringIO(), stderr=err)
    assert "3/3 studies" in err.getvalue() and "MB/s" in err.getvalue()  # progress as it goes
    rows = _manifest(root)
    assert {row["sop_instance_uid"] for row in rows} == set(sent)
    for row in rows:
        data = (root / row["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == row["sha256"] and len(data) == int(row["size_bytes"])
    for study_dir in (root / "studies").iterdir():
        dicomdir = pydicom.dcmread(study_dir / "DICOMDIR")
        files = [study_dir.joinpath(*record.ReferencedFileID) for record in dicomdir.DirectoryRecordSequence
                 if record.DirectoryRecordType == "IMAGE"]
        assert files and all(f.is_file() for f in files)
        assert not study_dir.name.endswith(".partial")
    event = AuditEvent.objects.for_tenant(tenant).get(action="clinic.exported")
    assert event.detail["complete"] and event.detail["instances"] == len(sent)

    empty = make_tenant("empty")
    token = make_token(empty, scopes=("upload",))
    body, content_type = multipart([(root / row["file"]).read_bytes() for row in rows])
    answer = requests.post(f"{live_server.url}/t/empty/dicomweb/studies", data=body, timeout=60,
                           headers={"Content-Type": content_type, "Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    for uid, data in sent.items():
        instance = Instance.objects.for_tenant(empty).get(sop_instance_uid=uid)
        with open_instance(instance) as fh:
            again = fh.read()
        assert again == data  # the very bytes the first clinic received
        assert np.array_equal(pydicom.dcmread(io.BytesIO(again)).pixel_array,
                              pydicom.dcmread(io.BytesIO(data)).pixel_array)


def test_an_interrupted_export_resumes_and_reports_nothing_partial_as_done(tenant, tmp_path):
    sent = _load(tenant)
    last_study = Instance.objects.for_tenant(tenant).order_by("-study_id").first()
    # Its bytes gone from every store (tier 1 here; no region copy yet): the export stops there.
    held = tmp_path / "held"
    shutil.move(tier1_path(last_study.storage_key), held)
    root = tmp_path / "export"
    with pytest.raises(CommandError, match="run the export again to resume"):
        call_command("export_clinic", "acme", "--to", str(root), stdout=StringIO(), stderr=StringIO())
    done = sorted(p.name for p in (root / "studies").iterdir())
    assert len(done) == 2 and last_study.study.study_instance_uid not in done  # no partial folder either
    assert not (root / "manifest.csv").exists()
    failed = AuditEvent.objects.for_tenant(tenant).get(action="clinic.exported")
    assert failed.detail["complete"] is False and failed.detail["studies"] == 2
    finished = {name: (root / "studies" / name / "manifest.csv").stat().st_mtime_ns for name in done}

    shutil.move(held, tier1_path(last_study.storage_key))  # the store is back
    err = StringIO()
    call_command("export_clinic", "acme", "--to", str(root), stdout=StringIO(), stderr=err)
    assert "(2 there already)" in err.getvalue()
    assert {name: (root / "studies" / name / "manifest.csv").stat().st_mtime_ns for name in done} == finished
    assert {row["sop_instance_uid"] for row in _manifest(root)} == set(sent)


def test_unknown_clinic_is_a_clear_error(db, tmp_path):
    with pytest.raises(CommandError, match="no clinic"):
        call_command("export_clinic", "nobody", "--to", str(tmp_path))
