"""The stored DICOM JSON of a header (archive.ingest.parse): element conversions are kept
and reused (most of a series' elements are the same in every slice), and what comes out
must be exactly what pydicom's own conversion gives, for every file pydicom ships
(every modality, transfer syntax, character set and VR it has test data for)."""

import warnings
from pathlib import Path

import pydicom
import pydicom.data
import pydicom.uid
from pydicom.tag import Tag

from archive.ingest import parse
from tests.dicom_factory import make_ct_series, to_bytes


def pydicom_json(ds) -> dict:
    """The header's DICOM JSON as pydicom converts it, element by element, with the same
    bulk data markers."""
    deferred = {}
    for tag in list(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)
        if Tag(tag) in parse.PIXEL_DATA_TAGS or (isinstance(raw, parse.RawDataElement) and raw.value is None):
            deferred[f"{Tag(tag):08X}"] = raw.VR or "OB"
    shallow = ds.copy()
    for key in deferred:
        del shallow[Tag(int(key, 16))]
    meta = shallow.to_json_dict(bulk_data_threshold=parse.BULK_THRESHOLD,
                                bulk_data_element_handler=lambda elem: f"{elem.tag:08X}")
    for key, vr in deferred.items():
        meta[key] = {"vr": vr if vr not in ("OB or OW", "US or SS") else "OB", "BulkDataURI": key}
    _nested_markers_as_paths(meta)
    return meta


def _nested_markers_as_paths(dataset: dict, prefix: str = "") -> None:
    """What the stored header has in place of pydicom's marker (the bare tag): "@" and the
    value's path, written out here independently of parse's."""
    for tag, elem in dataset.items():
        if "BulkDataURI" in elem:
            elem["BulkDataURI"] = "@" + prefix + tag
        for i, item in enumerate(elem.get("Value") or () if elem.get("vr") == "SQ" else ()):
            _nested_markers_as_paths(item or {}, f"{prefix}{tag}/{i}/")


def _readable(path):
    """(a data set of the file, pydicom's JSON of another), or None if pydicom cannot read it.
    Two reads: making the JSON takes the bulk data elements out of the data set."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return (pydicom.dcmread(path, defer_size=parse.DEFER_SIZE),
                    pydicom_json(pydicom.dcmread(path, defer_size=parse.DEFER_SIZE)))
    except Exception:  # noqa: BLE001 - files pydicom ships broken on purpose
        return None


def test_same_json_as_pydicom_for_every_file_pydicom_ships():
    files = [str(f) for f in sorted((Path(pydicom.data.__file__).parent / "test_files").rglob("*"))
             if f.is_file() and f.suffix not in (".py", ".json", ".txt", ".gz", ".bz2")]
    checked = 0
    parse._converted.clear()
    for _ in range(2):  # the second round answers from what the first kept
        for path in files:
            readable = _readable(path)
            if readable is None:
                continue
            ds, expected = readable
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                assert parse._metadata_json(ds) == expected, path
            checked += 1
    assert checked > 150 and parse._converted  # most of pydicom's files, and conversions kept


def test_each_use_gets_objects_of_its_own():
    parse._converted.clear()
    first, second = (parse._metadata_json(pydicom.dcmread(pydicom.filebase.DicomBytesIO(data), force=True))
                     for data in [to_bytes(make_ct_series(1)[0])] * 2)
    assert first == second and parse._converted
    first["00100010"]["Value"][0]["Alphabetic"] = "Changed^Here"
    assert second["00100010"]["Value"][0]["Alphabetic"] == "Doe^Jane"


def test_what_is_kept_stays_bounded(monkeypatch):
    monkeypatch.setattr(parse, "CONVERTED_KEPT", 10)
    parse._converted.clear()
    for ds in make_ct_series(5):  # 5 slices, a dozen new elements each
        parse._metadata_json(pydicom.dcmread(pydicom.filebase.DicomBytesIO(to_bytes(ds)), force=True))
        assert len(parse._converted) <= 10


def _read(data: bytes):
    return pydicom.dcmread(pydicom.filebase.DicomBytesIO(data), force=True)


def _implicit(ds) -> bytes:
    """`ds` as Implicit VR Little Endian, where a reader takes VRs from its dictionaries."""
    ds.file_meta.TransferSyntaxUID = pydicom.uid.ImplicitVRLittleEndian
    out = pydicom.filebase.DicomBytesIO()
    ds.save_as(out, enforce_file_format=True, implicit_vr=True, little_endian=True)
    return out.getvalue()


def _each_as_pydicom(headers: list[bytes], key: str) -> list[dict]:
    """Element `key`'s JSON from each header in turn, conversions kept between them, each
    checked against pydicom's own conversion of that header."""
    parse._converted.clear()
    found = []
    for data in headers:
        got = parse._metadata_json(_read(data))[key]
        assert got == pydicom_json(_read(data))[key]
        found.append(got)
    return found


def test_the_same_bytes_under_another_character_set_are_another_value():
    """0xE6 is "æ" in ISO_IR 100 (Latin-1) and "ć" in ISO_IR 101 (Latin-2)."""
    parse._converted.clear()
    latin1 = to_bytes(make_ct_series(1, charset="ISO_IR 100", patient_name="D\u00e6^Jane")[0])
    latin2 = latin1.replace(b"ISO_IR 100", b"ISO_IR 101")
    for data in (latin1, latin2, latin1):
        assert parse._metadata_json(_read(data))["00100010"] == pydicom_json(_read(data))["00100010"]
    assert {parse._metadata_json(_read(d))["00100010"]["Value"][0]["Alphabetic"] for d in (latin1, latin2)} == {
        "D\u00e6^Jane", "D\u0107^Jane"}


def test_a_vr_that_depends_on_other_elements_is_not_taken_from_another_header():
    """Smallest Image Pixel Value is US or SS as Pixel Representation says: the same two
    bytes are 65535 in one header and -1 in the other."""
    headers = []
    for representation in (0, 1, 0):
        ds = make_ct_series(1, 4, 4)[0]
        ds.PixelRepresentation = representation
        ds.add_new(0x00280106, "US" if representation == 0 else "SS", 65535 if representation == 0 else -1)
        headers.append(_implicit(ds))
    assert [got["Value"] for got in _each_as_pydicom(headers, "00280106")] == [[65535], [-1], [65535]]


def test_a_private_element_s_vr_depends_on_its_creator():
    """In Implicit VR a private element's VR comes from its creator's dictionary: the same
    tag and bytes are CS under one creator and UN under another."""
    headers = []
    for creator in ("SIEMENS CSA HEADER", "SOMEONE ELSE", "SIEMENS CSA HEADER"):
        ds = make_ct_series(1, 4, 4)[0]
        block = ds.private_block(0x0029, creator, create=True)
        block.add_new(0x08, "CS", "IMAGE NUM 4")
        headers.append(_implicit(ds))
    assert [got["vr"] for got in _each_as_pydicom(headers, "00291008")] == ["CS", "UN", "CS"]


def test_an_element_sent_as_un_is_read_as_its_dictionary_vr_which_may_depend_on_others():
    """pydicom reads an element sent as UN with its dictionary VR: for Smallest Image Pixel
    Value that is US or SS by Pixel Representation, so the same two bytes sent as UN are
    32768 in one header and -32768 in another."""
    headers = []
    for representation in (0, 1):
        ds = make_ct_series(1, 4, 4)[0]
        ds.PixelRepresentation = representation
        ds.add_new(0x00280106, "OB", b"\x00\x80")  # written as OB, then marked UN (the same layout):
        data = to_bytes(ds)  # pydicom writes a UN element it knows with its dictionary VR
        headers.append(data.replace(b"\x28\x00\x06\x01OB\x00\x00", b"\x28\x00\x06\x01UN\x00\x00", 1))
    assert [got["Value"] for got in _each_as_pydicom(headers, "00280106")] == [[32768], [-32768]]
