"""Helpers shared by the STOW-RS and upload tests: multipart bodies and leftover checks."""

import uuid
from pathlib import Path

import pytest

from archive.models import Instance, Study


def multipart(parts: list[bytes | tuple[str | None, bytes]], boundary: str | None = None,
              close: bool = True) -> tuple[bytes, str]:
    """A multipart/related body of application/dicom parts; a part given as
    (content_type, bytes) gets that Content-Type (None: no Content-Type header)."""
    boundary = boundary or uuid.uuid4().hex
    out = bytearray()
    for part in parts:
        ctype, data = part if isinstance(part, tuple) else ("application/dicom", part)
        out += f"--{boundary}\r\n".encode()
        if ctype is not None:
            out += f"Content-Type: {ctype}\r\n".encode()
        out += b"\r\n" + data + b"\r\n"
    if close:
        out += f"--{boundary}--\r\n".encode()
    return bytes(out), f'multipart/related; type="application/dicom"; boundary={boundary}'


def files_under(*dirs) -> list[Path]:
    return [p for d in dirs if Path(d).exists() for p in Path(d).rglob("*") if p.is_file()]


@pytest.fixture
def private_dirs(settings, tmp_path):
    """Spool and tier 1 in this test's own folders, so 'nothing left behind' is checkable
    while other suites share var/."""
    settings.INGEST_TMP_DIR = str(tmp_path / "spool")
    settings.TIER1_PATH = str(tmp_path / "tier1")
    return settings


def assert_nothing_stored(tenant, settings) -> None:
    assert not Instance.objects.for_tenant(tenant).exists()
    assert not Study.objects.for_tenant(tenant).exists()
    assert files_under(settings.INGEST_TMP_DIR, settings.TIER1_PATH) == []
