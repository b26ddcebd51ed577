"""WADO-RS metadata is made on the stored header's JSON text (archive.dicomweb.json
.metadata_text): the same DICOM JSON as decoding the header and making each BulkDataURI
from its element's place (metadata_json), for every file pydicom ships and as each
database writes the text out; a value that merely reads like a marker is left alone; and
a header stored with pydicom's bare-tag markers (before markers were paths, or by an
older process during an upgrade) still gets the right URLs."""

import json
import warnings
from pathlib import Path

import pydicom
import pydicom.data
import pytest

from archive.dicomweb.json import metadata_json, metadata_text
from archive.ingest import parse
from archive.models import Instance
from archive.selectors.studies import instance_headers
from tests.archive.dicomweb_data import bearer, ingest, url
from tests.dicom_factory import make_ct_series, to_bytes

BASE = "https://pacs.example/t/x/dicomweb/studies/1.2/series/1.2.3/instances/1.2.3.4/bulkdata/"


def _headers():
    for path in sorted((Path(pydicom.data.__file__).parent / "test_files").rglob("*")):
        if not path.is_file() or path.suffix in (".py", ".json", ".txt", ".gz", ".bz2"):
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                yield path, parse._metadata_json(pydicom.dcmread(path, defer_size=parse.DEFER_SIZE))
        except Exception:  # noqa: BLE001 - files pydicom ships broken on purpose
            continue


def test_text_pass_through_gives_what_decoding_gives_for_every_file_pydicom_ships():
    checked = nested = 0
    for path, header in _headers():
        # As each database writes it out: SQLite keeps json.dumps' text, PostgreSQL's
        # jsonb has its own spacing; both put ": " after a key.
        for text in (json.dumps(header), json.dumps(header, ensure_ascii=False)):
            made = json.loads(metadata_text(text, BASE))
            assert made == metadata_json(header, lambda p: BASE + p), path
        checked += 1
        nested += '/0/' in json.dumps(header)
    assert checked > 150 and nested  # some of pydicom's files have bulk data inside a sequence


def test_a_value_that_reads_like_a_marker_is_not_touched():
    header = {"00081030": {"vr": "LO", "Value": ['x", "BulkDataURI": "@7FE00010']},
              "7FE00010": {"vr": "OW", "BulkDataURI": "@7FE00010"}}
    made = json.loads(metadata_text(json.dumps(header), BASE))
    assert made["00081030"] == header["00081030"]
    assert made["7FE00010"]["BulkDataURI"] == BASE + "7FE00010"


def test_a_base_url_is_escaped_as_json():
    made = json.loads(metadata_text(json.dumps({"7FE00010": {"vr": "OW", "BulkDataURI": "@7FE00010"}}),
                                    'http://h/"\\/'))
    assert made["7FE00010"]["BulkDataURI"] == 'http://h/"\\/7FE00010'


def _nested_bulk_instance():
    ds = make_ct_series(1, 8, 8)[0]
    ds.add_new(0x00400275, "SQ", [pydicom.Dataset(), pydicom.Dataset()])
    ds.RequestAttributesSequence[1].add_new(0x00091010, "OB", b"\x01\x02" * 700)
    return ds


@pytest.mark.django_db
def test_as_the_database_writes_the_header_out(tenant):
    ds = _nested_bulk_instance()
    ingest(tenant, to_bytes(ds))
    [header] = instance_headers(tenant=tenant, study_uid=ds.StudyInstanceUID)
    stored = json.loads(header.json_text)
    assert stored["00400275"]["Value"][1]["00091010"]["BulkDataURI"] == "@00400275/1/00091010"
    assert json.loads(metadata_text(header.json_text, BASE)) == metadata_json(stored, lambda p: BASE + p)


@pytest.mark.django_db
def test_a_header_stored_with_bare_tag_markers_gets_the_right_urls(client, tenant, make_token):
    token = make_token(tenant, scopes=("read",))
    ds = _nested_bulk_instance()
    instance = ingest(tenant, to_bytes(ds))
    stored = Instance.unscoped.get(pk=instance.pk).metadata
    # As pydicom marks them, and as ingest stored them before: the bare tag, also inside
    # the sequence (where the value's URL needs its path).
    stored["00400275"]["Value"][1]["00091010"]["BulkDataURI"] = "00091010"
    stored["7FE00010"]["BulkDataURI"] = "7FE00010"
    Instance.unscoped.filter(pk=instance.pk).update(metadata=stored)
    path = f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    for rest in (f"{path}/metadata", f"studies/{ds.StudyInstanceUID}/metadata"):
        [meta] = client.get(url(tenant, rest), **bearer(token)).json()
        base = "http://testserver" + url(tenant, f"{path}/bulkdata/")
        assert meta["00400275"]["Value"][1]["00091010"]["BulkDataURI"] == base + "00400275/1/00091010"
        assert meta["7FE00010"]["BulkDataURI"] == base + "7FE00010"
    # One stale marker among path markers is enough to take the structural way.
    header = {"7FE00010": {"vr": "OW", "BulkDataURI": "@7FE00010"},
              "00880200": {"vr": "SQ", "Value": [{"7FE00010": {"vr": "OB", "BulkDataURI": "7FE00010"}}]}}
    made = json.loads(metadata_text(json.dumps(header), BASE))
    assert made["00880200"]["Value"][0]["7FE00010"]["BulkDataURI"] == BASE + "00880200/0/7FE00010"
