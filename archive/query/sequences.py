"""Sequence matching (PS3.4 C.2.2.2.6) on stored headers, as DICOM JSON.

A sequence key holds one item of keys. A stored sequence matches when one of its items
matches every key of that item with a value: by the same rules as the index's columns
(single value, `*`/`?` wildcards, a date, time or date-time range, a UID list; a person's
name without regard to case). Keys without a value are universal: returned, not matched.
An empty sequence key, or one whose item has no value, matches everything. Sequences the
index has no column for are matched here, on each candidate's header."""

import re

RANGED_VRS = {"DA", "TM", "DT"}


def _strings(element: dict) -> list[str]:
    values = element.get("Value") or []
    if element.get("vr") == "PN":
        return [str(v.get("Alphabetic", "")) if isinstance(v, dict) else str(v) for v in values]
    return [str(v) for v in values]


def _value_matches(vr: str, wanted: str, stored: list[str]) -> bool:
    if vr == "UI":
        return any(s in wanted.split("\\") for s in stored)
    if vr in RANGED_VRS and "-" in wanted:
        low, _, high = wanted.partition("-")
        return any(s and (not low or s >= low) and (not high or s[:len(high)] <= high) for s in stored)
    if vr == "PN":
        wanted, stored = wanted.upper(), [s.upper() for s in stored]
    if "*" in wanted or "?" in wanted:
        pattern = re.compile("".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in wanted),
                             re.DOTALL)
        return any(pattern.fullmatch(s) for s in stored)
    return wanted in stored


def item_matches(stored: dict, wanted: dict) -> bool:
    """Does one stored item (DICOM JSON) match the wanted item (DICOM JSON) key by key?"""
    for tag, element in wanted.items():
        vr = element.get("vr", "")
        if vr == "SQ":
            items = element.get("Value") or []
            if items and not sequence_matches(stored.get(tag), items[0]):
                return False
            continue
        values = _strings(element)
        if not values or values == [""]:
            continue  # universal
        wanted_value = "\\".join(values) if vr == "UI" else values[0]
        if not _value_matches(vr, wanted_value, _strings(stored.get(tag, {}))):
            return False
    return True


def has_values(item: dict) -> bool:
    """Does the wanted item constrain anything (so the sequence must be matched)?"""
    for element in item.values():
        if element.get("vr") == "SQ":
            if any(has_values(i) for i in element.get("Value") or []):
                return True
        elif [v for v in _strings(element) if v]:
            return True
    return False


def sequence_matches(stored: dict | None, wanted_item: dict) -> bool:
    """A stored sequence element (DICOM JSON) against the one wanted item."""
    if not has_values(wanted_item):
        return True
    return any(item_matches(item, wanted_item) for item in (stored or {}).get("Value") or [])
