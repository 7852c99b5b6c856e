"""Small builders shared by the tests."""
from __future__ import annotations

import csv
import io
import math
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

PROBLEM = "application/problem+json"
M_PER_DEG_LAT = 110_940.0  # near 30 N, accurate enough to build test shapes


def count(session: Session, model) -> int:
    return session.scalar(select(func.count()).select_from(model))


def offset(lon: float, lat: float, east_m: float, north_m: float) -> tuple[float, float]:
    """The point ``east_m`` / ``north_m`` metres from (lon, lat)."""
    return (lon + east_m / (M_PER_DEG_LAT * math.cos(math.radians(lat))), lat + north_m / M_PER_DEG_LAT)


def rect(lon: float, lat: float, width_m: float, height_m: float) -> dict:
    """A GeoJSON Polygon: a width x height metre rectangle with its SW corner at (lon, lat)."""
    x1, y1 = offset(lon, lat, width_m, height_m)
    return {"type": "Polygon", "coordinates": [[[lon, lat], [x1, lat], [x1, y1], [lon, y1], [lon, lat]]]}


def community_body(**overrides) -> dict:
    body = {"name": "测试市场 Test Market", "kind": "market", "boundary": rect(120.30, 31.50, 1000, 1000),
            "enterprise_count": 12, "worker_count": 300}
    body.update(overrides)
    return body


def zone_feature(code: str, geometry: dict, name: str | None = None, liaison: str | None = None) -> dict:
    properties = {"code": code, "name": name or f"Zone {code}"}
    if liaison is not None:
        properties["liaison"] = liaison
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def assert_problem(response, status: int, type_suffix: str | None = None) -> dict:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.mimetype == PROBLEM
    body = response.get_json()
    assert body["status"] == status and body["title"] and "type" in body
    if type_suffix:
        assert body["type"].endswith(type_suffix), body
    return body


def csv_rows(response) -> list[list[str]]:
    """A CSV download's rows (the header first), read as a spreadsheet would: the byte-order mark dropped."""
    assert response.status_code == 200, response.get_data(as_text=True)
    return list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))


def token_for(app, username: str) -> str:
    """An access token for a demo account, minted directly (sign-in is tested on its own)."""
    from gridsvc.auth import issue_tokens
    from gridsvc.db import current_session
    from gridsvc.services.accounts import find_user

    with app.test_request_context():
        return issue_tokens(find_user(current_session(), username))["access_token"]


def client_as(app, username: str):
    client = app.test_client()
    client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {token_for(app, username)}"
    return client


class FrozenClock:
    """Stands in for gridsvc.clock.now in tests that move time."""

    def __init__(self, start):
        self.current = start

    def __call__(self):
        return self.current

    def advance(self, **delta):
        from datetime import timedelta

        self.current = self.current + timedelta(**delta)
        return self.current


def lock_waits(engine) -> int:
    """How many requests wait for a lock in this database (the cluster may serve other runs at the same time)."""
    with engine.connect() as probe:
        return probe.execute(text("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                  "AND wait_event_type = 'Lock'")).scalar()


def wait_for_lock_waits(engine, count: int, unless=lambda: False) -> None:
    """Until ``count`` requests wait for a lock (or ``unless()``, or 10 s)."""
    deadline = time.monotonic() + 10
    while not unless() and lock_waits(engine) < count and time.monotonic() < deadline:
        time.sleep(0.01)


def while_uncommitted(engine, change, request, then=None):
    """A race made deterministic: ``request()`` runs in another thread while
    ``change(session)`` is made but not committed; when the request waits
    for a lock (or has finished), ``then(session)`` if given, and the
    commit. Returns what ``request`` returned."""
    answers, errors = [], []

    def run() -> None:
        try:
            answers.append(request())
        except BaseException as exc:  # noqa: BLE001 (raised below, in the test's thread)
            errors.append(exc)

    with engine.connect() as conn, Session(bind=conn) as own:
        change(own)
        own.flush()
        other = threading.Thread(target=run)
        other.start()
        wait_for_lock_waits(engine, 1, unless=lambda: not other.is_alive())
        if then is not None:
            then(own)
        own.commit()
    other.join(10)
    if errors:
        raise errors[0]
    assert len(answers) == 1
    return answers[0]


@contextmanager
def duty_restored(engine, volunteer_id: int) -> Iterator[None]:
    """The volunteer's duty and position (and position history) as they were before, afterwards: the committed
    tests share the database with the others."""
    from gridsvc.models import Volunteer, VolunteerPosition

    columns = [Volunteer.on_duty_shift_id, Volunteer.last_position, Volunteer.last_position_at, Volunteer.last_accuracy_m]
    with engine.connect() as conn:
        was = conn.execute(select(*columns).where(Volunteer.id == volunteer_id)).one()
        positions_before = conn.execute(select(func.max(VolunteerPosition.id))).scalar() or 0
    try:
        yield
    finally:
        with engine.begin() as conn:
            conn.execute(Volunteer.__table__.update().where(Volunteer.id == volunteer_id)
                         .values({column.key: value for column, value in zip(columns, was)}))
            conn.execute(VolunteerPosition.__table__.delete().where(VolunteerPosition.id > positions_before))


def delete_shifts(engine, *shift_ids: int) -> None:
    """Committed shifts removed (their sign-ups, check-ins and hours go with them)."""
    from gridsvc.models import Shift

    with engine.begin() as conn:
        conn.execute(Shift.__table__.delete().where(Shift.id.in_(list(shift_ids))))


def calendar_events(feed: str) -> dict[str, dict[str, str]]:
    """An iCalendar feed's events by UID: each property's value (lines unfolded, parameters dropped)."""
    assert "\n" not in feed.replace("\r\n", ""), "a bare LF in the feed"
    events, current = {}, None
    for line in feed.replace("\r\n ", "").split("\r\n"):
        if line == "BEGIN:VEVENT":
            current = {}
        elif line == "END:VEVENT":
            events[current["UID"]] = current
            current = None
        elif current is not None:
            name, _, value = line.partition(":")
            current[name.split(";")[0]] = value
    return events
