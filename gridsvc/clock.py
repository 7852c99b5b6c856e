"""The service's notion of now: one place, so tests can move time."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from flask import current_app


def now() -> datetime:
    return datetime.now(timezone.utc)


def default_timezone() -> ZoneInfo:
    """The clock of times without an offset where no one community's applies (a search over several parks,
    a phone's fix, a capacity whose area may span communities): GRIDSVC_DEFAULT_TIMEZONE's."""
    return ZoneInfo(current_app.config["GRIDSVC_DEFAULT_TIMEZONE"])
