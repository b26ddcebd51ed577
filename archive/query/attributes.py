"""The attributes QIDO-RS can match on and must return, per level (PS3.18 10.6.3).

Each indexed attribute names the column that holds it on its level's model; attributes
that are not indexed come from an instance's stored header (`Instance.metadata`).
"""

from dataclasses import dataclass

from pydicom.datadict import dictionary_VR, keyword_for_tag, tag_for_keyword

STUDY, SERIES, INSTANCE = "study", "series", "instance"
LEVELS = (STUDY, SERIES, INSTANCE)


@dataclass(frozen=True)
class Attr:
    tag: str  # 8 upper-case hex digits, as in DICOM JSON
    vr: str
    level: str
    column: str  # field on the level's model
    match: str  # how a query value is compared: text, pn, date, time, uid, int, modalities, none


def _a(tag: str, level: str, column: str, match: str) -> Attr:
    return Attr(tag, dictionary_VR(tag), level, column, match)


INDEXED: dict[str, Attr] = {a.tag: a for a in [
    # Study (patient attributes are copied onto the study row)
    _a("00080020", STUDY, "study_date", "date"),
    _a("00080030", STUDY, "study_time", "time"),
    _a("00080050", STUDY, "accession_number", "text"),
    _a("00080061", STUDY, "modalities", "modalities"),
    _a("00080090", STUDY, "referring_physician_name", "pn"),
    _a("00081030", STUDY, "study_description", "text"),
    _a("00100010", STUDY, "patient_name", "pn"),
    _a("00100020", STUDY, "patient_identifier", "text"),
    _a("00100030", STUDY, "patient_birth_date", "date"),
    _a("00100040", STUDY, "patient_sex", "text"),
    _a("0020000D", STUDY, "study_instance_uid", "uid"),
    _a("00200010", STUDY, "study_id", "text"),
    _a("00201206", STUDY, "num_series", "none"),
    _a("00201208", STUDY, "num_instances", "none"),
    # Series
    _a("00080060", SERIES, "modality", "text"),
    _a("00080021", SERIES, "series_date", "date"),
    _a("00080031", SERIES, "series_time", "time"),
    _a("0008103E", SERIES, "series_description", "text"),
    _a("00180015", SERIES, "body_part_examined", "text"),
    _a("0020000E", SERIES, "series_instance_uid", "uid"),
    _a("00200011", SERIES, "series_number", "int"),
    _a("00201209", SERIES, "num_instances", "none"),
    _a("00400244", SERIES, "performed_procedure_step_start_date", "date"),
    _a("00400245", SERIES, "performed_procedure_step_start_time", "time"),
    # Instance
    _a("00080016", INSTANCE, "sop_class_uid", "uid"),
    _a("00080018", INSTANCE, "sop_instance_uid", "uid"),
    _a("00200013", INSTANCE, "instance_number", "int"),
    _a("00280010", INSTANCE, "rows", "int"),
    _a("00280011", INSTANCE, "columns", "int"),
    _a("00280008", INSTANCE, "number_of_frames", "int"),
]}

# PatientName matches the upper-cased copy, so matching is case-insensitive.
MATCH_COLUMN = {"00100010": "patient_name_search"}

RETRIEVE_URL = "00081190"
SPECIFIC_CHARACTER_SET = "00080005"

# Attributes every response carries at each level (PS3.18 tables 10.6.3-3..5), besides
# RetrieveURL. Those not in INDEXED come from a representative instance's header.
REQUIRED: dict[str, tuple[str, ...]] = {
    STUDY: ("00080020", "00080030", "00080050", "00080056", "00080061", "00080090", "00080201",
            "00100010", "00100020", "00100030", "00100040", "0020000D", "00200010",
            "00201206", "00201208"),
    SERIES: ("00080060", "00080201", "0008103E", "0020000E", "00200011", "00201209",
             "00400244", "00400245", "00400275"),
    INSTANCE: ("00080016", "00080018", "00080056", "00080201", "00200013", "00280010",
               "00280011", "00280100", "00280008"),
}

# Levels whose attributes a query at a level may match and return: a search for all
# series also matches and returns the study's attributes (PS3.18 10.6.3.3.1).
VISIBLE = {STUDY: (STUDY,), SERIES: (STUDY, SERIES), INSTANCE: (STUDY, SERIES, INSTANCE)}


class UnknownAttribute(ValueError):
    pass


def resolve(name: str) -> str:
    """`PatientID` or `00100020` -> "00100020". Raises UnknownAttribute."""
    name = name.strip()
    if len(name) == 8 and all(c in "0123456789abcdefABCDEF" for c in name):
        return name.upper()
    tag = tag_for_keyword(name)
    if tag is None:
        raise UnknownAttribute(f"unknown attribute {name!r}: use a DICOM keyword or 8 hex digits")
    return f"{tag:08X}"


def vr_of(tag: str) -> str:
    try:
        return dictionary_VR(int(tag, 16))
    except KeyError:
        return "UN"


def keyword_of(tag: str) -> str:
    return keyword_for_tag(int(tag, 16)) or tag
