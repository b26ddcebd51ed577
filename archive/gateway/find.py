"""C-FIND (PS3.4 C.4.1) in the Patient Root and Study Root models, on the query model QIDO-RS
uses: the identifier becomes a `SearchQuery`, archive.selectors.search runs it, and each
match is answered with the keys the peer asked for, filled as QIDO-RS fills them.

- PATIENT (Patient Root): the clinic's patients among the matching studies, one answer each.
- STUDY, SERIES, IMAGE: as QIDO-RS's studies, series and instances. A key of a higher level
  (the study's UID in a series query, say) matches like any other.
- An empty key is returned, not matched (universal matching); a key the index cannot match
  (an optional attribute) is returned from the stored header when it has it.
- A sequence key with values in its item is matched on each candidate's stored header
  (archive.query.sequences): at most DICOM_FIND_MAX_RESULTS candidates are looked at.
- At most DICOM_FIND_MAX_RESULTS answers, then `0xA700` with a comment saying so; a
  C-CANCEL stops the answers (`0xFE00`); a query the model refuses is `0xC000` with why."""

from collections.abc import Iterator

from django.conf import settings
from pydicom import Dataset
from pydicom.multival import MultiValue
from pynetdicom.sop_class import (
    PatientRootQueryRetrieveInformationModelFind,
    StudyRootQueryRetrieveInformationModelFind,
)

from archive.dicomweb.json import result_json
from archive.query.attributes import INDEXED, INSTANCE, SERIES, STUDY, VISIBLE, vr_of
from archive.query.matching import BadQuery
from archive.query.search import SearchQuery
from archive.query.sequences import has_values, sequence_matches
from archive.selectors import search

# The models the gateway answers C-FIND in (its presentation contexts, and the check that a
# C-FIND came in one of them).
MODELS = (PatientRootQueryRetrieveInformationModelFind, StudyRootQueryRetrieveInformationModelFind)

PENDING = 0xFF00
CANCELLED = 0xFE00
OUT_OF_RESOURCES = 0xA700
UNABLE_TO_PROCESS = 0xC000
IDENTIFIER_DOES_NOT_MATCH = 0xA900

PATIENT = "PATIENT"
LEVELS = {PATIENT: STUDY, "STUDY": STUDY, "SERIES": SERIES, "IMAGE": INSTANCE}
PATIENT_KEYS = {"00100010", "00100020", "00100030", "00100040"}
NOT_KEYS = {"00080005", "00080052", "00080054"}  # character set, level, retrieve AE title


class FindRefused(Exception):
    def __init__(self, status: int, comment: str):
        super().__init__(comment)
        self.status, self.comment = status, comment


def key_value(element) -> str:
    """A key's value as QIDO-RS would take it: a list of UIDs joined by backslashes."""
    if element.VR == "SQ":
        return ""
    value = element.value
    if value is None:
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value)


def find_query(identifier: Dataset) -> tuple[str, SearchQuery, list[str], list[tuple[str, dict]]]:
    """(the DICOM level, the query, the keys to return as tags, the sequence keys to match
    on the stored headers as (tag, wanted item)) of a C-FIND identifier."""
    level = str(identifier.get("QueryRetrieveLevel", "")).strip().upper()
    if level not in LEVELS:
        raise FindRefused(IDENTIFIER_DOES_NOT_MATCH, f"QueryRetrieveLevel {level or '(none)'} is not one of "
                                                     "PATIENT, STUDY, SERIES, IMAGE")
    query = SearchQuery(level=LEVELS[level], limit=settings.DICOM_FIND_MAX_RESULTS)
    keys, sequences = [], []
    for element in identifier:
        tag = f"{element.tag:08X}"
        if tag in NOT_KEYS or element.tag.group == 0x0002:
            continue
        keys.append(tag)
        if element.VR == "SQ" and element.value:
            wanted = element.value[0].to_json_dict()
            if has_values(wanted):
                sequences.append((tag, wanted))
        value = key_value(element)
        attr = INDEXED.get(tag)
        if value and attr is not None and attr.match != "none" and attr.level in VISIBLE[query.level]:
            if level == PATIENT and tag not in PATIENT_KEYS:
                continue
            query.filters.append((attr, value))
        query.include.add(tag)
    return level, query, keys, sequences


def _answer(result: dict, keys: list[str], level: str, ae_title: str) -> Dataset:
    out = {tag: result[tag] for tag in keys if tag in result}
    ds = Dataset.from_json({tag: out.get(tag, {"vr": vr_of(tag)}) for tag in keys})
    ds.QueryRetrieveLevel = level
    ds.RetrieveAETitle = ae_title
    if any(ord(c) > 127 for c in str(out)):
        ds.SpecificCharacterSet = "ISO_IR 192"
    return ds


def find_answers(*, tenant, identifier: Dataset, is_cancelled) -> Iterator[tuple[int, Dataset | None]]:
    """(status, identifier) pairs, as pynetdicom's C-FIND handler yields them."""
    try:
        level, query, keys, sequences = find_query(identifier)
        run = {STUDY: search.study_search, SERIES: search.series_search, INSTANCE: search.instance_search}
        page = run[query.level](tenant=tenant, query=query)
    except FindRefused as exc:
        yield _status(exc.status, exc.comment), None
        return
    except BadQuery as exc:
        yield _status(UNABLE_TO_PROCESS, str(exc)), None
        return
    seen_patients = set()
    for row in page.rows:
        if is_cancelled():
            yield CANCELLED, None
            return
        result = result_json(row, level=query.level, tags=keys, include_all=False, retrieve_url="")
        if not all(sequence_matches(result.get(tag), wanted) for tag, wanted in sequences):
            continue
        if level == PATIENT:
            patient = (row.patient_identifier, row.patient_name, row.patient_birth_date)
            if patient in seen_patients:
                continue
            seen_patients.add(patient)
        yield PENDING, _answer(result, keys, level, tenant.ae_title)
    if page.more:
        yield _status(OUT_OF_RESOURCES, f"more than {query.limit} matches; narrow the query"), None


def _status(code: int, comment: str) -> Dataset:
    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment[:64]  # LO
    return ds
