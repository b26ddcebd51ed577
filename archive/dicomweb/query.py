"""Parse a QIDO-RS query string (PS3.18 8.3.4) into a `SearchQuery`."""

import re

from django.http import QueryDict

from archive.query.attributes import INDEXED, VISIBLE, UnknownAttribute, resolve
from archive.query.matching import BadQuery
from archive.query.search import DEFAULT_LIMIT, MAX_LIMIT, SearchQuery

# Parameters that are not attributes. Others (e.g. `emptyvaluematching`) are tolerated.
CONTROL = {"limit", "offset", "includefield", "fuzzymatching", "orderby", "emptyvaluematching",
           "multiplevaluematching", "_"}


# limit and offset are decimal integers up to 2**31 - 1. A larger limit is absurd, and a
# larger offset is past the end of any clinic's results (beyond 2**63 - 1 the database
# cannot even take it, which was a 500): both are refused with a 400 saying so. Within
# that range a limit is capped at MAX_LIMIT (with a Warning, as PS3.18 8.3.4.4 allows)
# and an offset past the last match simply gives an empty page.
MAX_PAGING_VALUE = 2**31 - 1
_DIGITS = re.compile(r"[0-9]{1,10}")


def _int_param(params: QueryDict, name: str, default: int) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    if not _DIGITS.fullmatch(raw) or int(raw) > MAX_PAGING_VALUE:
        shown = raw if len(raw) <= 20 else raw[:20] + "..."
        raise BadQuery(f"{name} must be an integer from 0 to {MAX_PAGING_VALUE}, not {shown!r}")
    return int(raw)


def parse_query(params: QueryDict, level: str) -> SearchQuery:
    for key, values in params.lists():
        if any("\x00" in v for v in [key, *values]):  # no DICOM value has one; PostgreSQL refuses it
            raise BadQuery(f"query parameter {key[:64]!r} contains a NUL character")
    query = SearchQuery(level=level)
    limit = _int_param(params, "limit", DEFAULT_LIMIT)
    query.limit_clamped = limit > MAX_LIMIT
    query.limit = min(limit, MAX_LIMIT) or DEFAULT_LIMIT
    query.offset = _int_param(params, "offset", 0)
    fuzzy = params.get("fuzzymatching", "false").lower()
    if fuzzy not in ("true", "false"):
        raise BadQuery("fuzzymatching must be true or false")
    query.fuzzy = fuzzy == "true"

    for raw in params.getlist("includefield"):
        for name in (n for n in raw.split(",") if n.strip()):
            if name.strip() == "all":
                query.include_all = True
                continue
            try:
                query.include.add(resolve(name))
            except UnknownAttribute as exc:
                raise BadQuery(str(exc)) from exc

    visible_levels = VISIBLE[level]
    for key in params:
        if key in CONTROL or key == "":
            continue
        values = params.getlist(key)
        if len(values) > 1:
            raise BadQuery(f"{key} is given {len(values)} times; give it once (a list is comma-separated)")
        if "." in key:  # sequence matching (e.g. 00400275.00400009): not indexed
            _check_path(key)
            query.unsupported.append(key)
            continue
        try:
            tag = resolve(key)
        except UnknownAttribute as exc:
            raise BadQuery(str(exc)) from exc
        attr = INDEXED.get(tag)
        if attr is None or attr.level not in visible_levels or attr.match == "none":
            query.unsupported.append(key)
            query.include.add(tag)
            continue
        query.filters.append((attr, values[0]))
        query.include.add(tag)
    return query


def _check_path(key: str) -> None:
    for part in key.split("."):
        try:
            resolve(part)
        except UnknownAttribute as exc:
            raise BadQuery(str(exc)) from exc
