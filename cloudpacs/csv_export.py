"""Streamed CSV exports: each row written as it is read, spreadsheet formulas neutralised."""

import csv
from collections.abc import Iterable, Iterator


def csv_safe(value) -> str:
    """Neutralise spreadsheet formulas: exported text may come from outside (labels, user
    agents, DICOM attributes)."""
    text = "" if value is None else str(value)
    if text[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + text
    return text


class _Echo:
    def write(self, value: str) -> str:
        return value


def csv_lines(header: list[str], rows: Iterable[Iterable]) -> Iterator[str]:
    """The header, then each row, as CSV lines (for a StreamingHttpResponse)."""
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([csv_safe(value) for value in row])
