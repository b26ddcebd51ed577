"""WADO-RS metadata is made on the stored header's JSON text (archive.dicomweb.json
.metadata_text): the same DICOM JSON as decoding the header and making each BulkDataURI
from its element's place (metadata_json), for every file pydicom ships; a value that
merely reads like a marker is left alone; and headers stored before markers inside
sequences became paths are brought over by migration 0011."""

import importlib
import json
import warnings
from pathlib import Path
from types import SimpleNamespace

import pydicom
import pydicom.data
import pytest

from archive.dicomweb.json import metadata_json, metadata_text
from archive.ingest import parse
from archive.models import Instance
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
    header = {"00081030": {"vr": "LO", "Value": ['x", "BulkDataURI": "7FE00010']},
              "7FE00010": {"vr": "OW", "BulkDataURI": "7FE00010"}}
    made = json.loads(metadata_text(json.dumps(header), BASE))
    assert made["00081030"] == header["00081030"]
    assert made["7FE00010"]["BulkDataURI"] == BASE + "7FE00010"


def test_a_base_url_is_escaped_as_json():
    made = json.loads(metadata_text(json.dumps({"7FE00010": {"vr": "OW", "BulkDataURI": "7FE00010"}}),
                                    'http://h/"\\/'))
    assert made["7FE00010"]["BulkDataURI"] == 'http://h/"\\/7FE00010'


@pytest.mark.django_db
def test_migration_makes_older_nested_markers_paths(client, tenant, make_token):
    token = make_token(tenant, scopes=("read",))
    ds = make_ct_series(1, 8, 8)[0]
    ds.add_new(0x00400275, "SQ", [pydicom.Dataset(), pydicom.Dataset()])
    ds.RequestAttributesSequence[1].add_new(0x00091010, "OB", b"\x01\x02" * 700)
    instance = ingest(tenant, to_bytes(ds))
    stored = Instance.unscoped.get(pk=instance.pk).metadata
    assert stored["00400275"]["Value"][1]["00091010"]["BulkDataURI"] == "00400275/1/00091010"
    # As ingest wrote it before: pydicom's marker, the bare tag.
    stored["00400275"]["Value"][1]["00091010"]["BulkDataURI"] = "00091010"
    Instance.unscoped.filter(pk=instance.pk).update(metadata=stored)

    migration = importlib.import_module("archive.migrations.0011_bulk_data_markers_are_paths")
    from django.apps import apps
    from django.db import connection

    # forwards only asks the editor for its connection (SQLite's editor cannot open
    # inside the test's transaction).
    migration.forwards(apps, SimpleNamespace(connection=connection))
    stored = Instance.unscoped.get(pk=instance.pk).metadata
    assert stored["00400275"]["Value"][1]["00091010"]["BulkDataURI"] == "00400275/1/00091010"
    path = f"studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}"
    [meta] = client.get(url(tenant, f"{path}/metadata"), **bearer(token)).json()
    assert meta["00400275"]["Value"][1]["00091010"]["BulkDataURI"].endswith(
        f"/{path}/bulkdata/00400275/1/00091010")
