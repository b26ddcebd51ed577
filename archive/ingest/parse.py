"""Read and check an instance's header from disk, never loading pixel data."""

import json
import zlib
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pydicom
from django.conf import settings
from pydicom.datadict import dictionary_VR
from pydicom.dataelem import RawDataElement
from pydicom.errors import InvalidDicomError
from pydicom.tag import Tag
from pydicom.uid import DeflatedExplicitVRLittleEndian

from archive.ingest import errors
from archive.ingest.errors import InvalidInstance
from archive.uids import UID_MAX_CHARS, is_valid_uid, strip_uid_padding

# Values larger than this are left on disk while parsing and become BulkDataURIs in the
# stored metadata.
DEFER_SIZE = 4096
BULK_THRESHOLD = 1024
REQUIRED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID")
PIXEL_DATA_TAGS = {Tag(0x7FE00010), Tag(0x7FE00008), Tag(0x7FE00009)}
# PatientID (LO, 64), IssuerOfPatientID (LO, 64), AccessionNumber (SH, 16) and StudyID
# (SH, 16) pick the patient and find the study: cut, two IDs that differ after the cut
# would become one patient. Senders do exceed these VRs (RIS accession numbers of 20 and
# more characters are common), and a PACS that refused them would turn away real studies
# from working modalities, so they are stored whole up to the index columns' width
# (archive.models); a longer value is no identifier, and the instance is refused.
IDENTIFIER_MAX_CHARS = 256
# PatientName is never cut either: PN allows 3 component groups of 64 characters.
PERSON_NAME_MAX_CHARS = 324


@dataclass
class ParsedInstance:
    study_uid: str
    series_uid: str
    sop_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    patient: dict
    study: dict
    series: dict
    instance: dict
    metadata: dict = field(repr=False)


def _text(ds, keyword: str, limit: int | None = 324) -> str:
    value = ds.get(keyword)
    if value is None or value == "":
        return ""
    if isinstance(value, pydicom.multival.MultiValue):
        value = "\\".join(str(v) for v in value)
    return str(value).strip()[:limit]


def _identifier(ds, keyword: str, limit: int = IDENTIFIER_MAX_CHARS) -> str:
    """A value that identifies a patient or study: whole, or the instance is refused."""
    value = _text(ds, keyword, None)
    if len(value) > limit:
        raise InvalidInstance(errors.DATASET_DOES_NOT_MATCH_SOP_CLASS,
                              f"{keyword} is {len(value)} characters long; at most {limit} are "
                              "stored, and an identifier is never cut")
    return value


def _uid(ds, keyword: str) -> str:
    """The UID as sent, without its padding; "" if absent. Taken from the raw bytes while
    pydicom has not converted them: its UID() strips whitespace on both ends."""
    tag = Tag(keyword)
    if tag not in ds:
        return ""
    raw = ds.get_item(tag, keep_deferred=True).value
    if isinstance(raw, bytes):
        return strip_uid_padding(raw.decode("ascii", errors="replace"))  # non-ASCII fails the check
    return strip_uid_padding(_text(ds, keyword, None))  # converted already, or too long to read early


def _check_uid(keyword: str, value: str, code: int) -> None:
    """Refuse a value that is no UID; never store it cut (PS3.5 9.1, archive.uids)."""
    if len(value) > UID_MAX_CHARS:
        raise InvalidInstance(code, f"{keyword} is not a valid UID: it is {len(value)} characters "
                                    f"long, a UID has at most {UID_MAX_CHARS}")
    if not is_valid_uid(value):
        raise InvalidInstance(code, f"{keyword} is not a valid UID (PS3.5 9.1: digits and dots, "
                                    "no leading zero in a component, at most 64 characters)")


def _int(ds, keyword: str) -> int | None:
    try:
        value = ds.get(keyword)
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _check_not_truncated(ds, size: int) -> None:
    for tag in list(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)
        if isinstance(raw, RawDataElement) and raw.length != 0xFFFFFFFF:
            if raw.value_tell + raw.length > size:
                raise InvalidInstance(errors.CANNOT_UNDERSTAND,
                                      f"file is truncated: element {Tag(tag)} runs past the end")


def _metadata_json(ds) -> dict:
    """DICOM JSON of the header; large and deferred values become BulkDataURI markers
    (the tag in hex) that the WADO layer turns into URLs."""
    deferred = {}
    for tag in list(ds.keys()):
        raw = ds.get_item(tag, keep_deferred=True)
        if Tag(tag) in PIXEL_DATA_TAGS or (isinstance(raw, RawDataElement) and raw.value is None):
            deferred[f"{Tag(tag):08X}"] = raw.VR or "OB"
    shallow = ds.copy()
    for key in deferred:
        del shallow[Tag(int(key, 16))]
    charset = ds._character_set
    charset = tuple(charset) if isinstance(charset, list) else charset
    meta = {}
    for tag in shallow.keys():
        key = _converted_key(shallow.get_item(tag, keep_deferred=True), charset)
        if key is not None and (known := _converted.get(key)) is not None:
            meta[f"{tag:08X}"] = json.loads(known)
            continue
        # As Dataset.to_json_dict converts each element.
        value = shallow[tag].to_json_dict(bulk_data_element_handler=lambda elem: f"{elem.tag:08X}",
                                          bulk_data_threshold=BULK_THRESHOLD)
        meta[f"{tag:08X}"] = value
        if key is not None:
            if len(_converted) >= CONVERTED_KEPT:
                _converted.clear()
            _converted[key] = json.dumps(value)
    for key, vr in deferred.items():
        meta[key] = {"vr": vr if vr not in ("OB or OW", "US or SS") else "OB", "BulkDataURI": key}
    mark_bulk_paths(meta)
    return meta


# A stored BulkDataURI marker is this and the value's path (a tag, or sequence tag / item
# index / tag ...), as the WADO layer's URLs are. Headers stored before had pydicom's
# marker, the bare tag, also inside sequences: without the sign they are read the slow,
# structural way (archive.dicomweb.json.metadata_text).
PATH_MARK = "@"


def mark_bulk_paths(dataset: dict, prefix: str = "") -> None:
    """Make each BulkDataURI marker PATH_MARK and its path: pydicom's handler only sees
    the element, so it wrote the bare tag. The metadata view then makes a URL by putting
    the base in place of the sign, on the stored JSON text, without decoding it."""
    for tag, elem in dataset.items():
        if "BulkDataURI" in elem:
            elem["BulkDataURI"] = f"{PATH_MARK}{prefix}{tag}"
        elif elem.get("vr") == "SQ":
            for i, item in enumerate(elem.get("Value") or ()):
                if item:
                    mark_bulk_paths(item, f"{prefix}{tag}/{i}/")


# pydicom's DICOM JSON conversion was two thirds of parsing a CT slice's header, and most
# of a series' elements are the same in every slice (patient, study, series, equipment).
# An element's JSON is a function of its tag, VR, encoding, character set and bytes: the
# last conversions are kept by those, as JSON text (each use gets objects of its own).
# Left out: private elements (their VR may depend on their creator), sequences, VRs that
# depend on other elements ("US or SS", also when sent as UN, which pydicom reads with its
# dictionary's VR), and values longer than CONVERTED_VALUE_BYTES.
CONVERTED_KEPT = 4096
CONVERTED_VALUE_BYTES = 256
_converted: dict[tuple, str] = {}


def _converted_key(raw, charset) -> tuple | None:
    if not isinstance(raw, RawDataElement) or raw.value is None or len(raw.value) > CONVERTED_VALUE_BYTES:
        return None
    tag = Tag(raw.tag)
    if tag.is_private:
        return None
    vr = raw.VR
    if vr is None or vr == "UN":  # pydicom reads these with its dictionary's VR
        try:
            read_as = dictionary_VR(tag)
        except KeyError:
            return None
        if vr is None:
            vr = read_as
        elif read_as == "SQ" or " or " in read_as:
            return None
    if vr == "SQ" or " or " in vr:
        return None
    return tag, vr, raw.is_implicit_VR, raw.is_little_endian, charset, raw.value


def inflated_size(path: Path | BinaryIO, limit: int) -> int | None:
    """For a Deflated Explicit VR Little Endian file (a path, or an open file object read
    from its start), the size of its data set once inflated, counted chunk by chunk, or
    None as soon as it passes `limit`. pydicom inflates such a file whole in memory, so a
    tiny file could otherwise ask for gigabytes."""
    from pydicom.filereader import _read_file_meta_info, read_preamble

    if not isinstance(path, Path):
        path.seek(0)
    with open(path, "rb") if isinstance(path, Path) else nullcontext(path) as fp:
        read_preamble(fp, False)
        _read_file_meta_info(fp)
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
        total = 0
        while chunk := fp.read(1 << 16):
            data = inflater.decompress(chunk, 1 << 20)
            while True:
                total += len(data)
                if total > limit:
                    return None
                if not inflater.unconsumed_tail:
                    break
                data = inflater.decompress(inflater.unconsumed_tail, 1 << 20)
        return total


def _meta_transfer_syntax(path: Path) -> str:
    """The transfer syntax from the file meta group alone (reading on would inflate)."""
    try:
        return str(pydicom.filereader.read_file_meta_info(path).get("TransferSyntaxUID", ""))
    except Exception:  # noqa: BLE001 - the full parse below says what is wrong
        return ""


def parse_instance(path: Path, *, max_inflated_bytes: int | None = None) -> ParsedInstance:
    """Parse a Part 10 file's header. Raises InvalidInstance with a reason on anything wrong.
    `max_inflated_bytes` defaults to settings.INGEST_MAX_INFLATED_BYTES."""
    size = path.stat().st_size
    if _meta_transfer_syntax(path) == DeflatedExplicitVRLittleEndian:
        limit = settings.INGEST_MAX_INFLATED_BYTES if max_inflated_bytes is None else max_inflated_bytes
        try:
            fits = inflated_size(path, limit) is not None
        except (zlib.error, EOFError, ValueError) as exc:
            raise InvalidInstance(errors.CANNOT_UNDERSTAND, f"broken deflated data set: {exc}") from exc
        if not fits:
            raise InvalidInstance(errors.OUT_OF_RESOURCES,
                                  f"deflated data set inflates to more than {limit} bytes")
    try:
        ds = pydicom.dcmread(path, defer_size=DEFER_SIZE)
    except InvalidDicomError as exc:
        raise InvalidInstance(errors.CANNOT_UNDERSTAND, f"not a DICOM file: {exc}") from exc
    except EOFError as exc:
        raise InvalidInstance(errors.CANNOT_UNDERSTAND, "file is truncated") from exc
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on broken input
        raise InvalidInstance(errors.CANNOT_UNDERSTAND, f"unreadable DICOM: {type(exc).__name__}: {exc}") from exc

    meta = ds.file_meta
    transfer_syntax = str(getattr(meta, "TransferSyntaxUID", "") or "")
    if not transfer_syntax:
        raise InvalidInstance(errors.CANNOT_UNDERSTAND, "no file meta information (TransferSyntaxUID)")
    _check_uid("TransferSyntaxUID", transfer_syntax, errors.CANNOT_UNDERSTAND)
    if transfer_syntax != DeflatedExplicitVRLittleEndian:
        # Element positions of a deflated data set are in the inflated stream, not the file;
        # a truncated deflate stream already fails to inflate.
        _check_not_truncated(ds, size)
    try:
        uids = {kw: _uid(ds, kw) for kw in REQUIRED_UIDS}
    except Exception as exc:  # noqa: BLE001
        raise InvalidInstance(errors.CANNOT_UNDERSTAND, f"unreadable header: {exc}") from exc
    missing = [kw for kw, value in uids.items() if not value]
    if missing:
        raise InvalidInstance(errors.DATASET_DOES_NOT_MATCH_SOP_CLASS, f"missing {', '.join(missing)}")
    for kw, value in uids.items():
        _check_uid(kw, value, errors.DATASET_DOES_NOT_MATCH_SOP_CLASS)
    try:
        metadata = _metadata_json(ds)
        patient_name = _identifier(ds, "PatientName", PERSON_NAME_MAX_CHARS)
    except InvalidInstance:
        raise
    except Exception as exc:  # noqa: BLE001 - bad character sets, malformed values
        raise InvalidInstance(errors.CANNOT_UNDERSTAND, f"unreadable header values: {exc}") from exc

    return ParsedInstance(
        study_uid=uids["StudyInstanceUID"],
        series_uid=uids["SeriesInstanceUID"],
        sop_uid=uids["SOPInstanceUID"],
        sop_class_uid=uids["SOPClassUID"],
        transfer_syntax_uid=transfer_syntax,
        patient={
            "patient_id": _identifier(ds, "PatientID"),
            "issuer_of_patient_id": _identifier(ds, "IssuerOfPatientID"),
            "patient_name": patient_name,
            "birth_date": _text(ds, "PatientBirthDate", 8),
            "sex": _text(ds, "PatientSex", 16),
        },
        study={
            "study_date": _text(ds, "StudyDate", 8),
            "study_time": _text(ds, "StudyTime", 16),
            "accession_number": _identifier(ds, "AccessionNumber"),
            "study_id": _identifier(ds, "StudyID"),
            "study_description": _text(ds, "StudyDescription", 128),
            "referring_physician_name": _text(ds, "ReferringPhysicianName"),
            "specific_character_set": _text(ds, "SpecificCharacterSet", 128),
        },
        series={
            "modality": _text(ds, "Modality", 16),
            "series_number": _int(ds, "SeriesNumber"),
            "series_description": _text(ds, "SeriesDescription", 128),
            "body_part_examined": _text(ds, "BodyPartExamined", 16),
            "series_date": _text(ds, "SeriesDate", 8),
            "series_time": _text(ds, "SeriesTime", 16),
            "performed_procedure_step_start_date": _text(ds, "PerformedProcedureStepStartDate", 8),
            "performed_procedure_step_start_time": _text(ds, "PerformedProcedureStepStartTime", 16),
        },
        instance={
            "instance_number": _int(ds, "InstanceNumber"),
            "rows": _int(ds, "Rows"),
            "columns": _int(ds, "Columns"),
            "number_of_frames": _int(ds, "NumberOfFrames"),
        },
        metadata=metadata,
    )


def parse_outcome(path: Path, *, max_inflated_bytes: int | None = None) -> ParsedInstance | InvalidInstance:
    """parse_instance's result, or the refusal it raised, as a value: for parsing in
    another process (archive.ingest.parse_ahead)."""
    try:
        return parse_instance(path, max_inflated_bytes=max_inflated_bytes)
    except InvalidInstance as exc:
        return exc
