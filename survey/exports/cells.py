"""CSV cells and files: values as cell text no spreadsheet evaluates, written in chunks."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

# Rows per CSV chunk, and per fetch from the server-side cursor (tables.py reads it here).
CHUNK_ROWS = 5000

# A spreadsheet evaluates a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def safe_cell(value: Any) -> str:
    """Return a value as CSV cell text that no spreadsheet evaluates; numbers stay numbers."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return format_number(value)
    text = str(value)
    if text.startswith(_FORMULA_START) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


def format_number(value: float) -> str:
    """Write a number without a trailing .0 when it is whole, else in its shortest exact form."""
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        return ""
    return str(int(value)) if value.is_integer() else repr(value)


class _SafeCells(dict):
    """Cell texts of values seen before: recurring codes, labels and answers cost one lookup."""

    LIMIT = 20_000

    def __missing__(self, value: Any) -> str:
        """Neutralise a value not seen yet and remember it (forgetting all past LIMIT)."""
        if len(self) >= self.LIMIT:
            self.clear()
        text = self[value] = safe_cell(value)
        return text


def _safe_rows(records: Iterable[Sequence[Any]]) -> Iterator[list[str]]:
    """Turn rows of values into rows of safe cell texts."""
    cells = _SafeCells()
    for record in records:
        yield [cells[value] for value in record]


def _rows_text(rows: Sequence[Sequence[Any]]) -> str:
    """Write rows as CSV text with LF row ends, quoting every cell that holds a CR or a LF.

    The csv module quotes a cell holding a character of its line terminator; with LF alone, a
    bare CR would stay unquoted and spreadsheets would start a new row at it. Such rare rows
    are written with a CRLF terminator (so the CR is quoted) that is then turned into LF.
    """
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    text = out.getvalue()
    if "\r" not in text:
        return text
    lf, crlf = io.StringIO(), io.StringIO()
    plain, careful = csv.writer(lf, lineterminator="\n"), csv.writer(crlf, lineterminator="\r\n")
    for row in rows:
        if any(isinstance(cell, str) and "\r" in cell for cell in row):
            crlf.seek(0)
            crlf.truncate()
            careful.writerow(row)
            lf.write(crlf.getvalue()[:-2] + "\n")
        else:
            plain.writerow(row)
    return lf.getvalue()


def _csv_stream(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> Iterator[str]:
    """Yield a CSV file as text chunks of CHUNK_ROWS rows, header first; rows hold safe cells."""
    yield _rows_text([[safe_cell(name) for name in header]])
    batch: list[Sequence[Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == CHUNK_ROWS:
            yield _rows_text(batch)
            batch.clear()
    yield _rows_text(batch)


def iso_utc(moment: datetime | None) -> str:
    """Format a timestamp as ISO 8601 in UTC with a Z, to the second; empty for None."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def iso_utc_ms(moment: datetime | None) -> str:
    """Format a timestamp as ISO 8601 in UTC with a Z, to the millisecond (truncated, so two
    times keep their order); empty for None."""
    if moment is None:
        return ""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
