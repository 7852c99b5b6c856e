"""CSV downloads as a spreadsheet opens them safely.

Every export here is opened in Excel or WPS by a liaison or a planner, so:

- a UTF-8 byte-order mark first: without it Excel reads Chinese text as
  mojibake;
- text that would start a formula (``=``, ``+``, ``-``, ``@``, or a tab or
  carriage return before one) is written with a leading apostrophe, which
  the spreadsheet shows as plain text. Names and titles come from users (a
  volunteer chooses their own ``real_name``); written as they are,
  ``=HYPERLINK(...)`` would run on the reader's machine ("CSV injection",
  OWASP). Numbers are written as numbers: only text is changed;
- text of digits that a spreadsheet would read as a number and change (12
  digits or more: shown as 3.30206E+17, kept to 15 digits; or a leading
  zero, dropped), such as an ID-card-like national volunteer ID, is written
  after a tab, as Chinese exports commonly do: the cell stays text with
  every digit, and the tab does not show;
- an identifier's column (``text_columns``: a national volunteer ID) is
  text in any form: "1e5" would open as 100000 and "1-2" as 2 January, so
  an ID of digits and punctuation alone goes after a tab too.
"""
from __future__ import annotations

import csv
import io
import re
from typing import Any, Iterable

from flask import Response

_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def inert(value: Any) -> Any:
    """A cell's value, with text that a spreadsheet would run as a formula, or change as a number, kept text."""
    if isinstance(value, str):
        if value.startswith(_FORMULA_STARTS):
            return "'" + value
        if value.isascii() and value.isdigit() and (len(value) >= 12 or (len(value) > 1 and value[0] == "0")):
            return "\t" + value
    return value


# a letter a spreadsheet would not read as part of a number (an exponent's e is)
_LETTER_BUT_E = re.compile(r"[^\W\d_eE]")


def as_text(value: Any) -> Any:
    """An identifier's cell (``inert``), kept text also where a spreadsheet would read it as a number, a date
    or a time: digits with no letter but an exponent's e ("1e5", "1-2", "3/4", "12:30")."""
    cell = inert(value)
    if (cell is value and isinstance(value, str) and value.isascii() and any(c.isdigit() for c in value)
            and not _LETTER_BUT_E.search(value)):
        return "\t" + value
    return cell


def csv_response(columns: list[str], rows: Iterable[Iterable[Any]], filename: str, *,
                 personal: bool = False, text_columns: Iterable[str] = ()) -> Response:
    """A CSV attachment; ``personal`` data is not kept by caches (``Cache-Control: private, no-store``);
    ``text_columns``: identifiers, written ``as_text``."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    text = set(text_columns)
    writes = [as_text if column in text else inert for column in columns]
    writer.writerows([write(value) for write, value in zip(writes, row, strict=True)] for row in rows)
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if personal:
        headers["Cache-Control"] = "private, no-store"
    return Response(out.getvalue(), mimetype="text/csv", headers=headers)
