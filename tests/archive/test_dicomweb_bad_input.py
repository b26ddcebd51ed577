"""Bad input to the DICOMweb routes is a 4xx with a clear message, never a 500, and
nothing is stored (Django test client, bearer token). Regressions of issue 8 item 4."""

import pydicom
import pytest

from tests.archive.dicomweb_data import bearer, ingest, ingest_datasets, url
from tests.archive.stow_helpers import assert_nothing_stored, multipart, private_dirs  # noqa: F401
from tests.dicom_factory import make_ct_series, to_bytes

pytestmark = pytest.mark.usefixtures("private_dirs")


@pytest.fixture
def token(tenant, make_token):
    return make_token(tenant, scopes=("upload", "read"))


def stow(client, tenant, token, body: bytes, content_type: str):
    return client.generic("POST", url(tenant, "studies"), body, content_type=content_type,
                          **bearer(token))


@pytest.mark.parametrize("content_type", [
    'multipart/related; type="application/dicom"',
    'multipart/related; type="application/dicom"; boundary=',
    'multipart/related; type="application/dicom"; boundary=""',
    'multipart/related; type="application/dicom"; boundary=' + "b" * 71,
    'multipart/related; type="application/dicom"; boundary="ends with a space "',
    'multipart/related; type="application/dicom"; boundary="semi;colon"',
    'multipart/related; type="application/dicom"; boundary="Grüße"',
])
def test_stow_bad_boundary_is_400(client, tenant, token, settings, content_type):
    body, _ = multipart([to_bytes(make_ct_series(1, 8, 8)[0])], boundary="b" * 71)
    response = stow(client, tenant, token, body, content_type)
    assert response.status_code == 400, response.content
    assert "boundary" in response.json()["error"]
    assert_nothing_stored(tenant, settings)


@pytest.mark.parametrize("boundary", ["b" * 70, "gc0p4Jq0M2Yt08j34c0p'()+_,-./:=?", "with space inside"])
def test_stow_longest_and_oddest_legal_boundaries_work(client, tenant, token, boundary):
    body, _ = multipart([to_bytes(make_ct_series(1, 8, 8)[0])], boundary=boundary)
    response = stow(client, tenant, token, body,
                    f'multipart/related; type="application/dicom"; boundary="{boundary}"')
    assert response.status_code == 200, response.content


@pytest.fixture
def ct(tenant):
    ds = make_ct_series(1, 8, 8)[0]
    ingest_datasets(tenant, [ds])
    return f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"


@pytest.mark.parametrize("tag_path", [
    "7FE00010/0/0010",  # an item of pixel data, which is no sequence
    "7FE00010/",
    "7fe00010/1",
    "00100010/0/00100010",  # PatientName: not a sequence either
    "00080018/0",
    "7FE00010/-1/00100010",
    "zzzz",
    "00100010",  # a text value, not bulk data
    "FFFFFFFF",
    "123456789",
])
def test_bulkdata_path_that_names_no_bulk_value_is_404(client, tenant, token, ct, tag_path):
    response = client.get(url(tenant, f"{ct}/bulkdata/{tag_path}"), **bearer(token))
    assert response.status_code == 404, response.content
    assert "bulk data" in response.json()["error"]


def test_bulkdata_of_a_nested_element_is_served(client, tenant, token):
    """A BulkDataURI of a value inside a sequence item (PS3.18 allows them)."""
    ds = make_ct_series(1, 8, 8)[0]
    ds.add_new(0x00400275, "SQ", [pydicom.Dataset()])  # RequestAttributesSequence
    ds.RequestAttributesSequence[0].add_new(0x00091010, "OB", b"\x01\x02" * 700)  # > defer size
    ingest(tenant, to_bytes(ds))
    path = f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    [meta] = client.get(url(tenant, f"{path}/metadata"), **bearer(token)).json()
    uri = meta["00400275"]["Value"][0]["00091010"]["BulkDataURI"]
    assert uri == "http://testserver" + url(tenant, f"{path}/bulkdata/00400275/0/00091010")
    response = client.get(uri.removeprefix("http://testserver"), **bearer(token))
    assert response.status_code == 200
    assert b"\x01\x02" * 700 + b"\r\n--" in b"".join(response.streaming_content)
    missing = client.get(url(tenant, f"{path}/bulkdata/00400275/1/00091010"), **bearer(token))
    assert missing.status_code == 404 and "no item 1" in missing.json()["error"]


HUGE = "9" * 30


@pytest.mark.parametrize("params, message", [
    ({"offset": HUGE}, "offset"),
    ({"limit": HUGE}, "limit"),
    ({"offset": "1e3"}, "offset"),
    ({"limit": "+5"}, "limit"),
    ({"offset": "1_000"}, "offset"),
    ({"limit": "\u0661"}, "limit"),  # ARABIC-INDIC DIGIT ONE: int() takes it
    ({"offset": "9" * 5000}, "offset"),
    ({"offset": str(2**31)}, "offset"),
    ({"limit": "-1"}, "limit"),
])
@pytest.mark.parametrize("level", ["studies", "series", "instances"])
def test_qido_absurd_limit_offset_is_400(client, tenant, token, params, message, level):
    response = client.get(url(tenant, level), params, **bearer(token))
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert message in error and len(error) < 200


def test_qido_large_offset_past_the_end_is_empty(client, tenant, token, ct):
    response = client.get(url(tenant, "studies"), {"offset": str(2**31 - 1)}, **bearer(token))
    assert response.status_code == 200 and response.json() == []


@pytest.mark.parametrize("params", [{"PatientID": "\x00"}, {"PatientName": "DOE\x00*"},
                                    {"StudyInstanceUID": "1.2\x00"}, {"includefield": "\x00"}])
def test_qido_nul_character_is_400(client, tenant, token, params):
    """PostgreSQL text cannot hold NUL: a NUL in a query value was a 500 there."""
    response = client.get(url(tenant, "studies"), params, **bearer(token))
    assert response.status_code == 400, response.content
    assert "NUL" in response.json()["error"]


@pytest.mark.parametrize("rest", ["studies/1.2%00", "studies/1.2%00/metadata", "studies/1.2%00/series",
                                  "studies/1.2.3/series/1.2%00", "studies/%00"])
def test_wado_nul_in_a_uid_is_404(client, tenant, token, rest):
    response = client.get(url(tenant, rest), **bearer(token))
    assert response.status_code == 404, response.content
