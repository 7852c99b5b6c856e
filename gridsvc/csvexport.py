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
  every digit, and the tab does not show.
"""
from __future__ import annotations

import csv
import io
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


def csv_response(columns: list[str], rows: Iterable[Iterable[Any]], filename: str, *,
                 personal: bool = False) -> Response:
    """A CSV attachment; ``personal`` data is not kept by caches (``Cache-Control: private, no-store``)."""
    out = io.StringIO()
    out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(columns)
    writer.writerows([inert(value) for value in row] for row in rows)
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if personal:
        headers["Cache-Control"] = "private, no-store"
    return Response(out.getvalue(), mimetype="text/csv", headers=headers)
