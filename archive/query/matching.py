"""QIDO-RS attribute matching (PS3.4 C.2.2.2, PS3.18 10.6.1.2) as Django Q objects.

Single value, wildcard (`*`, `?` -> SQL LIKE with escaping), range (dates and times),
UID list and modality-list matching. PN matching is case-insensitive: both the stored
copy and the query value are upper-cased.
"""

import re

from django.db.models import CharField, Lookup, Q

from archive.query.attributes import MATCH_COLUMN, Attr


class BadQuery(ValueError):
    """A query parameter the client must fix; the message says what is wrong."""


@CharField.register_lookup
class DicomLike(Lookup):
    """`column LIKE pattern ESCAPE '\\'` with a pattern built by `like_pattern`."""

    lookup_name = "dicomlike"

    def as_sql(self, compiler, connection):
        lhs, lhs_params = self.process_lhs(compiler, connection)
        rhs, rhs_params = self.process_rhs(compiler, connection)
        return f"{lhs} LIKE {rhs} ESCAPE '\\'", [*lhs_params, *rhs_params]


def like_pattern(value: str) -> str:
    escaped = value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


def has_wildcard(value: str) -> bool:
    return "*" in value or "?" in value


_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")
_DATE = re.compile(r"^\d{8}$")
_TIME = re.compile(r"^\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?$")


def _split_list(value: str) -> list[str]:
    return [v.strip() for v in re.split(r"[,\\]", value) if v.strip()]


def _text_q(column: str, value: str) -> Q:
    if has_wildcard(value):
        if value.strip("*") == "":
            return Q()  # `*` alone matches everything, including empty values
        return Q(**{f"{column}__dicomlike": like_pattern(value)})
    return Q(**{column: value})


def _pn_q(column: str, value: str, fuzzy: bool) -> Q:
    """A PN value may hold alphabetic=ideographic=phonetic groups; a query matches any."""
    value = value.upper()
    if value.strip("*") == "":
        return Q()
    pattern = like_pattern(value)
    patterns = [pattern, pattern + "=%", "%=" + pattern, "%=" + pattern + "=%"]
    if fuzzy:
        # Fuzzy: the value may start any name component (family, given, middle...).
        stem = pattern.rstrip("%") + "%"
        patterns = [stem, "%^" + stem, "%=" + stem, "% " + stem]
    q = Q()
    for p in patterns:
        q |= Q(**{f"{column}__dicomlike": p})
    return q


def _range_q(column: str, value: str, check: re.Pattern, what: str, pad_high: str = "") -> Q:
    low, sep, high = value.partition("-")
    for part in (low, high):
        if part and not check.match(part):
            raise BadQuery(f"{what} {value!r} is not a valid value or range")
    if not sep:
        if has_wildcard(value):
            raise BadQuery(f"wildcards are not allowed in {what} {value!r}")
        return Q(**{f"{column}__startswith": value}) if pad_high else Q(**{column: value})
    if not low and not high:
        raise BadQuery(f"{what} range {value!r} has no bounds")
    q = ~Q(**{column: ""})
    if low:
        q &= Q(**{f"{column}__gte": low})
    if high:
        q &= Q(**{f"{column}__lte": high + pad_high})
    return q


def _modalities_q(column: str, value: str) -> Q:
    """ModalitiesInStudy: a study matches if it has any of the listed modalities."""
    q = Q()
    for modality in _split_list(value):
        if has_wildcard(modality):
            raise BadQuery("wildcards are not supported in ModalitiesInStudy")
        pattern = like_pattern(modality)
        sep = like_pattern("\\")
        q |= (Q(**{column: modality}) | Q(**{f"{column}__dicomlike": pattern + sep + "%"})
              | Q(**{f"{column}__dicomlike": "%" + sep + pattern})
              | Q(**{f"{column}__dicomlike": "%" + sep + pattern + sep + "%"}))
    return q


def attr_q(attr: Attr, value: str, *, prefix: str = "", fuzzy: bool = False) -> Q:
    """The Q object matching `value` against `attr`, whose model is reached via `prefix`."""
    if value == "":
        return Q()  # universal matching: the attribute is returned, nothing filtered
    column = prefix + MATCH_COLUMN.get(attr.tag, attr.column)
    if attr.match == "uid":
        uids = _split_list(value)
        bad = [u for u in uids if len(u) > 64 or not _UID.match(u)]
        if bad or not uids:
            raise BadQuery(f"not a UID or UID list: {value!r}")
        return Q(**{column: uids[0]}) if len(uids) == 1 else Q(**{f"{column}__in": uids})
    if attr.match == "pn":
        return _pn_q(column, value, fuzzy)
    if attr.match == "date":
        return _range_q(column, value, _DATE, "date")
    if attr.match == "time":
        # A partial upper bound ("-12") covers the whole of that hour/minute.
        return _range_q(column, value, _TIME, "time", pad_high="9" * 13)
    if attr.match == "int":
        try:
            return Q(**{column: int(value)})
        except ValueError as exc:
            raise BadQuery(f"{value!r} is not an integer") from exc
    if attr.match == "modalities":
        return _modalities_q(column, value)
    if attr.match == "text":
        return _text_q(column, value)
    raise BadQuery(f"attribute {attr.tag} cannot be used for matching")
