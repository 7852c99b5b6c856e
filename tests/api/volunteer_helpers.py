"""Arrangements shared by the volunteer, shift and check-in tests."""
from __future__ import annotations

from datetime import datetime, timedelta

from shapely.geometry import shape
from sqlalchemy import select

from gridsvc.models import CheckEvent, ServiceHours, User, Volunteer, Zone
from tests.helpers import offset


def zone_of(session, code: str) -> Zone:
    return session.scalar(select(Zone).where(Zone.code == code).order_by(Zone.id))


def zone_center(client, zone_id: int) -> tuple[float, float]:
    geometry = client.get(f"/api/v1/zones/{zone_id}").get_json()["geometry"]
    point = shape(geometry).representative_point()
    return point.x, point.y


def volunteer_id(session, username: str) -> int:
    return session.scalar(select(Volunteer.id).join(User, User.id == Volunteer.user_id).where(User.username == username))


def make_shift(admin, *, zone_id: int | None = None, starts_at: datetime, hours: float = 2, capacity: int = 5,
               skills=(), point: tuple[float, float] | None = None, radius_m: float | None = None,
               title: str = "北门交通疏导", activity: str = "traffic_guidance") -> dict:
    body = {"title": title, "activity": activity, "starts_at": starts_at.isoformat(),
            "ends_at": (starts_at + timedelta(hours=hours)).isoformat(), "capacity": capacity,
            "required_skills": list(skills)}
    if zone_id is not None:
        body["zone_id"] = zone_id
    if point is not None:
        body["location"] = {"lon": point[0], "lat": point[1]}
        body["radius_m"] = radius_m
    response = admin.post("/api/v1/shifts", json=body)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def g01_shift_of_volunteer_001(login, session, starts_at: datetime, hours: float = 2) -> dict:
    """A G01 shift over [starts_at, + hours] that volunteer-001 is confirmed for: ``id``, ``start`` and ``end``
    (datetimes), the volunteer's ``client`` and ``vid``, the zone's ``center`` (WGS-84) and the ``admin``."""
    admin = login("admin")
    g01 = zone_of(session, "G01").id
    shift = make_shift(admin, zone_id=g01, starts_at=starts_at, hours=hours)
    volunteer = login("volunteer-001")
    assert volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    return {"id": shift["id"], "start": datetime.fromisoformat(shift["starts_at"]),
            "end": datetime.fromisoformat(shift["ends_at"]), "client": volunteer,
            "vid": volunteer_id(session, "volunteer-001"), "center": zone_center(admin, g01), "admin": admin}


def north_of(point: tuple[float, float], metres: float) -> tuple[float, float]:
    return offset(point[0], point[1], 0, metres)


def post_check(client, shift_id, kind, point, accuracy=10, key=None):
    """An online check-in or check-out (``kind``: check-in | check-out) at ``point`` (WGS-84)."""
    headers = {"Idempotency-Key": key} if key else {}
    return client.post(f"/api/v1/shifts/{shift_id}/{kind}", json={"lon": point[0], "lat": point[1], "accuracy_m": accuracy},
                       headers=headers)


def offline(kind, shift_id, at, point, key, accuracy=10):
    """One event of an offline upload (``kind``: check_in | check_out) recorded at ``at``."""
    return {"shift_id": shift_id, "kind": kind, "client_time": at.isoformat(), "lon": point[0], "lat": point[1],
            "crs": "wgs84", "accuracy_m": accuracy, "idempotency_key": key}


def hours_of_shift(session, shift_id) -> list[ServiceHours]:
    session.expire_all()
    return list(session.scalars(select(ServiceHours).where(ServiceHours.shift_id == shift_id)))


def approved_hours(session, zone_id: int, starts: datetime, hours: float = 1.0, *, activity: str, title: str,
                   at: tuple[float, float]) -> ServiceHours:
    """An approved hours entry of volunteer-001 for a shift at ``zone_id`` over [starts, starts + hours], checked in
    at ``at`` (written directly: the tests of days and months need stints at chosen times)."""
    from gridsvc.services.shifts import create_shift

    ends = starts + timedelta(hours=hours)
    shift = create_shift(session, zone_id=zone_id, title=title, activity=activity, capacity=2, starts_at=starts,
                         ends_at=ends)
    vid = volunteer_id(session, "volunteer-001")
    check_in = CheckEvent(shift_id=shift.id, volunteer_id=vid, kind="check_in", effective_at=starts,
                          position=f"SRID=4326;POINT({at[0]} {at[1]})", input_lon=at[0], input_lat=at[1],
                          input_crs="wgs84", inside=True, distance_m=0, accepted=True, status_code=201, response={})
    session.add(check_in)
    session.flush()
    entry = ServiceHours(volunteer_id=vid, shift_id=shift.id, check_in_id=check_in.id, started_at=starts,
                         ended_at=ends, hours=hours, status="approved")
    session.add(entry)
    session.flush()
    return entry


def with_availability(admin, session, number: int, windows: list[tuple[int, str, str]], skills=("first_aid",)) -> int:
    """volunteer-<number>'s id, their weekly availability and skills set as given (through the API, as an admin)."""
    user_id = session.scalar(select(User.id).where(User.username == f"volunteer-{number:03d}"))
    volunteer = session.scalar(select(Volunteer.id).where(Volunteer.user_id == user_id))
    answer = admin.patch(f"/api/v1/volunteers/{volunteer}", json={
        "skills": list(skills), "availability": [{"weekday": d, "start": s, "end": e} for d, s, e in windows]})
    assert answer.status_code == 200, answer.get_json()
    return volunteer
