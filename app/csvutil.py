"""CSV for people who open it in Excel: UTF-8 with BOM, CRLF, and no cell ever runs as a formula."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def guard(value: Any) -> Any:
    """Excel must show a text cell as text, never run it as a formula (CSV injection)."""
    if isinstance(value, str) and value.lstrip("'").startswith(FORMULA_START):
        return "'" + value
    return value


def excel_csv(header: list[str], rows: Iterable[Iterable[Any]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows([guard(v) for v in row] for row in rows)
    return ("\ufeff" + buf.getvalue()).encode("utf-8")  # the BOM makes Excel read UTF-8


def unguard(value: str) -> str:
    """A cell as typed: trimmed, with the export's formula guard undone so a round trip is unchanged."""
    value = value.strip()
    if value.startswith("'") and value.lstrip("'").startswith(FORMULA_START):
        return value[1:]
    return value


def read_records(text: str, max_rows: int) -> list[tuple[int, list[str]]]:
    """Non-blank records of a CSV text with the file line each starts on; header included.

    A broken file is one error for the whole file (400), too many rows is 413, nothing at all is 422.
    """
    from app.errors import DomainError

    if not text.strip():
        raise DomainError("csv.empty", status_code=422)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    records: list[tuple[int, list[str]]] = []
    line = 1
    try:
        for cells in reader:
            start, line = line, reader.line_num + 1
            if any(c.strip() for c in cells):
                records.append((start, cells))
            if len(records) > max_rows + 1:
                raise DomainError("csv.too_many_rows", status_code=413, max=max_rows)
    except csv.Error as exc:
        raise DomainError("csv.malformed", status_code=400, line=reader.line_num) from exc
    if not records:
        raise DomainError("csv.empty", status_code=422)
    return records
