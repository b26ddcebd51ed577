"""A tus client for tests (Django test client), and zip builders."""

import base64
import io
import zipfile

import pytest

TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def upload_dirs(settings, tmp_path):
    settings.INGEST_TMP_DIR = str(tmp_path / "spool")
    settings.TIER1_PATH = str(tmp_path / "tier1")
    settings.UPLOAD_DIR = str(tmp_path / "uploads")
    return settings


def meta(**values) -> str:
    return ",".join(f"{k} {base64.b64encode(v.encode()).decode()}" for k, v in values.items())


class TusClient:
    def __init__(self, client, slug: str, headers: dict | None = None):
        self.client, self.base, self.headers = client, f"/t/{slug}/upload/", headers or {}

    def batch(self) -> str:
        return self.client.post(self.base + "batches/", headers=self.headers).json()["batch"]

    def create(self, length: int, **metadata):
        return self.client.post(self.base + "files/", headers={
            **TUS, **self.headers, "Upload-Length": str(length), "Upload-Metadata": meta(**metadata)})

    def head(self, url: str):
        return self.client.head(url, headers={**TUS, **self.headers})

    def patch(self, url: str, offset: int, data: bytes, **extra):
        headers = {**TUS, **self.headers, "Upload-Offset": str(offset), **extra}
        return self.client.patch(url, data, content_type="application/offset+octet-stream",
                                 headers=headers)

    def ingest(self, url: str):
        return self.client.post(url + "/ingest", headers=self.headers)

    def send(self, data: bytes, name: str, batch: str = "", chunk: int = 1 << 20) -> dict:
        """Create, PATCH in chunks, ingest: the ingest response's JSON."""
        created = self.create(len(data), filename=name, **({"batch": batch} if batch else {}))
        assert created.status_code == 201, created.content
        url = created["Location"]
        for offset in range(0, len(data), chunk):
            response = self.patch(url, offset, data[offset:offset + chunk])
            assert response.status_code == 204, response.content
        response = self.ingest(url)
        assert response.status_code == 200, response.content
        return response.json()


def zip_bytes(members: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()
