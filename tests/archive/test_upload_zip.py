"""Zips and CD contents through the browser-upload path: folders, DICOMDIR, non-DICOM
members, path traversal, zip bombs; one audit event per batch."""

import io
import struct
import zipfile
from pathlib import Path

import pytest
from pydicom.fileset import FileSet

from archive.models import Instance
from tenants import roles
from tenants.audit import AuditEvent
from tests.archive.stow_helpers import files_under
from tests.archive.upload_helpers import TusClient, upload_dirs, zip_bytes  # noqa: F401
from tests.dicom_factory import make_ct_series, to_bytes

pytestmark = pytest.mark.usefixtures("upload_dirs")


@pytest.fixture
def tus(client, tenant, make_member, login):
    login(make_member(tenant, roles.TECHNOLOGIST))
    return TusClient(client, tenant.slug)


def statuses(result: dict) -> dict[str, str]:
    return {f["name"]: f["status"] for f in result["files"]}


def test_zip_with_folders_and_a_batch_audit(tus, tenant):
    series = make_ct_series(3, 16, 16)
    data = zip_bytes({f"STUDY/SERIES1/IM{i}": to_bytes(ds) for i, ds in enumerate(series)}
                     | {"STUDY/": b"", "README.txt": b"hello, not an image"})
    batch = tus.batch()
    result = tus.send(data, "exam.zip", batch=batch, chunk=4000)
    assert statuses(result) == {"exam.zip/STUDY/SERIES1/IM0": "stored", "exam.zip/STUDY/SERIES1/IM1": "stored",
                                "exam.zip/STUDY/SERIES1/IM2": "stored", "exam.zip/README.txt": "rejected"}
    readme = [f for f in result["files"] if f["name"].endswith("README.txt")][0]
    assert readme["reason"] == "not a DICOM file"
    again = tus.send(to_bytes(series[0]), "IM0.dcm", batch=batch)
    assert statuses(again) == {"IM0.dcm": "already_present"}
    summary = tus.client.post(f"{tus.base}batches/{batch}/close").json()
    links = summary.pop("study_links")
    assert summary == {"stored": 3, "already_present": 1, "rejected": 1, "skipped": 0, "studies": 1}
    assert len(links) == 1 and links[0]["name"] == "Doe, Jane"
    event = AuditEvent.objects.for_tenant(tenant).get(action="upload.batch")
    assert event.detail["stored"] == 3 and event.detail["studies"] == [series[0].StudyInstanceUID]
    assert "exam" not in str(event.detail)
    assert tus.client.post(f"{tus.base}batches/{batch}/close").status_code == 404


def test_cd_image_with_dicomdir(tus, tenant, tmp_path):
    series = make_ct_series(2, 16, 16)
    fs = FileSet()
    for ds in series:
        fs.add(ds)
    cd = tmp_path / "cd"
    fs.write(cd)
    members = {str(p.relative_to(cd)): p.read_bytes() for p in cd.rglob("*") if p.is_file()}
    assert "DICOMDIR" in members and len(members) == 3
    result = tus.send(zip_bytes(members), "cd.zip")
    assert sorted(f["status"] for f in result["files"]) == ["skipped", "stored", "stored"]
    # A DICOMDIR sent on its own (folder upload of a CD) is skipped too, not refused.
    alone = tus.send(members["DICOMDIR"], "CD/DICOMDIR")
    assert statuses(alone) == {"CD/DICOMDIR": "skipped"}
    assert Instance.objects.for_tenant(tenant).count() == 2


def test_path_traversal_and_symlinks_rejected_nothing_written_outside(tus, tenant, tmp_path, settings):
    good = to_bytes(make_ct_series(1, 16, 16)[0])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("../evil.dcm", good)
        zf.writestr("/etc/evil.dcm", good)
        link = zipfile.ZipInfo("link.dcm")
        link.external_attr = (0o120777 << 16)
        zf.writestr(link, "/etc/passwd")
        zf.writestr("inner.zip", zip_bytes({"a.dcm": good}))
    before = set(tmp_path.parent.iterdir())
    result = tus.send(buffer.getvalue(), "evil.zip")
    assert set(statuses(result).values()) == {"rejected"}
    reasons = {f["name"]: f["reason"] for f in result["files"]}
    assert "../" in reasons["evil.zip/../evil.dcm"] and "absolute" in reasons["evil.zip//etc/evil.dcm"]
    assert "symbolic link" in reasons["evil.zip/link.dcm"] and "zip inside" in reasons["evil.zip/inner.zip"]
    assert set(tmp_path.parent.iterdir()) == before
    assert not (tmp_path / "evil.dcm").exists()
    assert not Instance.objects.for_tenant(tenant).exists()
    assert files_under(settings.INGEST_TMP_DIR, settings.TIER1_PATH, settings.UPLOAD_DIR) == []


def test_zip_bomb_refused_by_declared_size(tus, tenant, settings):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf, zf.open("bomb.dcm", "w") as member:
        zero = bytes(1 << 20)
        for _ in range(64):
            member.write(zero)
    data = buffer.getvalue()
    assert len(data) < 200_000
    result = tus.send(data, "bomb.zip")
    assert [f["status"] for f in result["files"]] == ["rejected"]
    assert "zip bomb" in result["files"][0]["reason"]
    assert files_under(settings.INGEST_TMP_DIR, settings.TIER1_PATH, settings.UPLOAD_DIR) == []


def _lie_about_size(data: bytes, declared: int) -> bytes:
    """Rewrite the uncompressed size in the local and central headers (a crafted zip)."""
    raw = bytearray(data)
    local, central = raw.find(b"PK\x03\x04"), raw.rfind(b"PK\x01\x02")
    struct.pack_into("<I", raw, local + 22, declared)
    struct.pack_into("<I", raw, central + 24, declared)
    return bytes(raw)


def test_zip_lying_about_sizes_is_not_unpacked_beyond_its_declaration(tus, tenant, settings, monkeypatch):
    written = []
    from archive.ingest import spool

    real_write = spool.SpooledFile.write
    monkeypatch.setattr(spool.SpooledFile, "write",
                        lambda self, chunk: (written.append(len(chunk)), real_write(self, chunk))[1])
    data = _lie_about_size(zip_bytes({"big.dcm": bytes(8 << 20)}), 1000)
    result = tus.send(data, "liar.zip")
    assert [f["status"] for f in result["files"]] == ["rejected"]
    assert sum(written) <= 1000 + len(data)  # the upload copy is not spooled; members only
    assert not Instance.objects.for_tenant(tenant).exists()
    assert files_under(settings.INGEST_TMP_DIR, settings.TIER1_PATH, settings.UPLOAD_DIR) == []


def test_too_many_members_refused(tus, settings):
    settings.UPLOAD_ZIP_MAX_MEMBERS = 3
    result = tus.send(zip_bytes({f"f{i}": b"x" for i in range(5)}), "many.zip")
    assert "at most 3" in result["files"][0]["reason"]


def test_plain_non_dicom_file_rejected(tus, tenant, settings):
    result = tus.send(b"%PDF-1.4 not an image", "report.pdf")
    assert result["files"] == [{"name": "report.pdf", "status": "rejected", "reason": "not a DICOM file",
                                "study_uid": ""}]
    assert files_under(settings.INGEST_TMP_DIR, settings.TIER1_PATH, settings.UPLOAD_DIR) == []


def test_ratio_grace_keeps_blank_images(tus, tenant):
    ds = make_ct_series(1, 256, 256)[0]
    ds.PixelData = bytes(256 * 256 * 2)  # a blank slice compresses ~1000:1 and is fine
    result = tus.send(zip_bytes({"blank.dcm": to_bytes(ds)}), "blank.zip")
    assert statuses(result) == {"blank.zip/blank.dcm": "stored"}


def test_upload_files_are_under_a_clinic_folder_without_names(tus, tenant, settings):
    tus.create(10, filename="Doe^Jane.dcm")
    paths = [p.relative_to(settings.UPLOAD_DIR) for p in Path(settings.UPLOAD_DIR).rglob("*") if p.is_file()]
    assert paths and all(p.parts[0] == str(tenant.pk) and "Doe" not in str(p) for p in paths)
