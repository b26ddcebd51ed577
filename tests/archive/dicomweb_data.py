"""Test data for the QIDO-RS / WADO-RS suites: ingest through the one ingest service and
call DICOMweb URLs with a bearer token."""

from pathlib import Path

from pydicom.data import get_testdata_file

from archive.ingest.service import Outcome, instance_ingest
from archive.ingest.spool import spool_chunks
from tenants.audit import Actor
from tests.dicom_factory import to_bytes

ACTOR = Actor.system("test")


def ingest(tenant, data: bytes):
    result = instance_ingest(tenant=tenant, spooled=spool_chunks([data]), actor=ACTOR)
    assert result.outcome == Outcome.STORED, result.reason
    return result.instance


def ingest_datasets(tenant, datasets) -> list:
    return [ingest(tenant, to_bytes(ds)) for ds in datasets]


def bundled(name: str) -> bytes:
    return Path(get_testdata_file(name)).read_bytes()


def url(tenant, rest: str = "") -> str:
    return f"/t/{tenant.slug}/dicomweb/{rest}"


def bearer(token: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {token}"}
