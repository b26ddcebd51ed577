"""DICOM JSON (PS3.18 F.2) for QIDO-RS results and WADO-RS metadata.

Index rows hold decoded Unicode text, so the output is UTF-8 whatever the file's
SpecificCharacterSet was. Person names become {"Alphabetic", "Ideographic", "Phonetic"}.
"""

import json
import re
from collections.abc import Callable, Iterable

from archive.query.attributes import (
    INDEXED,
    INSTANCE,
    RETRIEVE_URL,
    SERIES,
    STUDY,
)

PN_GROUPS = ("Alphabetic", "Ideographic", "Phonetic")
INSTANCE_AVAILABILITY = "00080056"
# Never copied from a stored header into a study/series result: they describe one instance.
_PER_INSTANCE_GROUPS = ("0028", "7FE0", "0002")


def pn_json(value: str) -> dict:
    return {k: v for k, v in zip(PN_GROUPS, value.split("="), strict=False) if v}


def element(vr: str, values: list) -> dict:
    values = [v for v in values if v not in ("", None)]
    if not values:
        return {"vr": vr}
    if vr == "PN":
        values = [pn_json(v) for v in values]
    return {"vr": vr, "Value": values}


def _column_element(obj, tag: str) -> dict:
    attr = INDEXED[tag]
    value = getattr(obj, attr.column)
    if attr.column == "modalities":
        return element(attr.vr, [m for m in value.split("\\") if m])
    if isinstance(value, int):
        return element(attr.vr, [value])
    if value and attr.vr in ("CS", "LO", "SH") and "\\" in value:
        return element(attr.vr, value.split("\\"))
    return element(attr.vr, [value] if value is not None else [])


def _is_bulk(elem: dict) -> bool:
    return "BulkDataURI" in elem or "InlineBinary" in elem


def _level_objects(row, level: str) -> dict[str, object]:
    if level == STUDY:
        return {STUDY: row}
    if level == SERIES:
        return {STUDY: row.study, SERIES: row}
    return {STUDY: row.study, SERIES: row.series, INSTANCE: row}


def result_json(row, *, level: str, tags: Iterable[str], include_all: bool,
                retrieve_url: str) -> dict:
    """One QIDO-RS result. `tags` are the required and requested attributes; those that
    are not index columns of a visible level come from the stored header."""
    objects = _level_objects(row, level)
    metadata = (row.metadata if level == INSTANCE else getattr(row, "rep_metadata", None)) or {}
    out: dict[str, dict] = {}
    if include_all:
        excluded_levels = {STUDY: (SERIES, INSTANCE), SERIES: (INSTANCE,), INSTANCE: ()}[level]
        for tag, elem in metadata.items():
            indexed = INDEXED.get(tag)
            if _is_bulk(elem) or (indexed is not None and indexed.level in excluded_levels):
                continue
            if level != INSTANCE and (tag[:4] in _PER_INSTANCE_GROUPS or tag in ("00080018", "00200013")):
                continue
            out[tag] = elem
    for tag in tags:
        attr = INDEXED.get(tag)
        if attr is not None and attr.level in objects:
            out[tag] = _column_element(objects[attr.level], tag)
        elif tag in metadata and not _is_bulk(metadata[tag]):
            out[tag] = metadata[tag]
        elif tag == INSTANCE_AVAILABILITY:
            out[tag] = element("CS", ["ONLINE"])
    out[RETRIEVE_URL] = element("UR", [retrieve_url])
    return dict(sorted(out.items()))


# A BulkDataURI key in stored JSON text whose marker is a path
# (archive.ingest.parse.PATH_MARK), and one whose marker is not. A quote inside a JSON
# string is always escaped, so these find element keys only, never a value's text.
_PATH_MARKER = re.compile(r'"BulkDataURI":\s*"@')
_BARE_MARKER = re.compile(r'"BulkDataURI":\s*"(?!@)')


def metadata_text(header_json: str, bulk_base: str) -> str:
    """metadata_json on an instance's stored header as JSON text. When each marker is a
    path (ingest writes them so), its URL is `bulk_base` in place of the sign: no decoding
    and encoding again, which for a viewer's series of 300 CT slices was two thirds of the
    metadata request. A header stored with pydicom's bare-tag markers (before, or by an
    older process during an upgrade) is decoded and its URLs made from where each value
    is, as always."""
    if _BARE_MARKER.search(header_json):
        made = metadata_json(json.loads(header_json), lambda path: bulk_base + path)
        return json.dumps(made, ensure_ascii=False, separators=(",", ":"))
    prefix = '"BulkDataURI":' + json.dumps(bulk_base)[:-1]
    return _PATH_MARKER.sub(lambda _: prefix, header_json)


def metadata_json(metadata: dict, bulk_url: Callable[[str], str]) -> dict:
    """An instance's stored header with each BulkDataURI marker (a tag, or a path of
    sequence tag / item index / tag for nested values) turned into an absolute URL."""
    return _with_urls(metadata, "", bulk_url)


def _with_urls(dataset: dict, path: str, bulk_url: Callable[[str], str]) -> dict:
    out = {}
    for tag, elem in dataset.items():
        if "BulkDataURI" in elem:
            out[tag] = {"vr": elem.get("vr", "OB"), "BulkDataURI": bulk_url(f"{path}{tag}")}
        elif elem.get("vr") == "SQ" and elem.get("Value"):
            out[tag] = {"vr": "SQ", "Value": [
                _with_urls(item, f"{path}{tag}/{i}/", bulk_url) if item else item
                for i, item in enumerate(elem["Value"])]}
        else:
            out[tag] = elem
    return out
