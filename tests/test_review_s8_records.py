"""A volunteer's service record (sign-ups of shifts that took place, check events, hours entries approved, pending
or declined) is never deleted with something else: through the API a delete that would take it is a 409 that
changes nothing, an account is disabled rather than deleted, and the database refuses the cascades that took it
(a ``DELETE FROM zone`` in psql, or a code path that forgot the check). "Declined entries stay, marked, never
deleted."
"""
from __future__ import annotations

from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gridsvc.models import CheckEvent, ServiceHours, Shift, Signup, User, Volunteer, Zone
from gridsvc.services.shifts import create_shift
from tests.api.volunteer_helpers import volunteer_id, zone_of
from tests.helpers import assert_problem, community_body, rect, zone_feature

SHANGHAI = ZoneInfo("Asia/Shanghai")
STATUSES = ("approved", "pending", "declined")


def _record(session, zone_id: int, username: str = "volunteer-001", *, status: str = "declined",
            starts: datetime | None = None) -> ServiceHours:
    """A shift of ``zone_id`` that took place, with ``username``'s confirmed sign-up, check-in, check-out and an
    hours entry of ``status``."""
    starts = starts or datetime(2026, 3, 3, 7, 30, tzinfo=SHANGHAI)
    ends = starts + timedelta(hours=1.5)
    shift = create_shift(session, zone_id=zone_id, title="北门交通疏导", activity="traffic_guidance", capacity=3,
                         starts_at=starts, ends_at=ends)
    vid = volunteer_id(session, username)
    session.add(Signup(shift_id=shift.id, volunteer_id=vid, status="confirmed"))
    events = [CheckEvent(shift_id=shift.id, volunteer_id=vid, kind=kind, effective_at=at,
                         position="SRID=4326;POINT(121.78 29.87)", input_lon=121.78, input_lat=29.87,
                         input_crs="wgs84", inside=True, distance_m=0, accepted=True, status_code=201, response={})
              for kind, at in (("check_in", starts), ("check_out", ends))]
    session.add_all(events)
    session.flush()
    entry = ServiceHours(volunteer_id=vid, shift_id=shift.id, check_in_id=events[0].id, check_out_id=events[1].id,
                         started_at=starts, ended_at=ends, hours=1.5, status=status)
    session.add(entry)
    session.flush()
    return entry


def _kept(session, shift_id: int) -> tuple[int, int, int, list[str]]:
    """What the shift's record holds now: (sign-ups, check events, hours entries, the entries' statuses)."""
    session.expire_all()
    signups = session.scalar(select(func.count()).where(Signup.shift_id == shift_id))
    events = session.scalar(select(func.count()).where(CheckEvent.shift_id == shift_id))
    statuses = sorted(session.scalars(select(ServiceHours.status).where(ServiceHours.shift_id == shift_id)))
    return signups, events, len(statuses), statuses


@contextmanager
def _refused_by_the_database(session):
    """The statement run inside is refused by a constraint, and leaves the test's transaction usable."""
    savepoint = session.begin_nested()
    with pytest.raises(IntegrityError) as caught:
        yield caught
        session.flush()
    savepoint.rollback()


def _fresh_zone(admin) -> tuple[int, int]:
    """A new community with one zone (G01), through the API: nothing of the demo's shifts in it."""
    body = community_body(name="记录测试市场 Records Market")
    community = admin.post("/api/v1/communities", json=body)
    assert community.status_code == 201, community.get_json()
    community_id = community.get_json()["id"]
    zone = admin.post(f"/api/v1/communities/{community_id}/zones",
                      json=zone_feature("G01", rect(120.301, 31.501, 300, 300)))
    assert zone.status_code == 201, zone.get_json()
    return community_id, zone.get_json()["id"]


# ---------------------------------------------------------------- through the API: refused, nothing changed


def test_deleting_a_zone_whose_only_record_is_a_declined_entry_is_a_409_that_changes_nothing(login, session):
    admin = login("admin")
    community_id, zone_id = _fresh_zone(admin)
    entry = _record(session, zone_id, status="declined")
    problem = assert_problem(login("planner").delete(f"/api/v1/zones/{zone_id}"), 409, "has-dependents")
    assert "G01" in problem["detail"] and problem["shifts"] == 1
    assert _kept(session, entry.shift_id) == (1, 2, 1, ["declined"])
    assert session.get(Zone, zone_id) is not None


def test_deleting_a_community_with_a_declined_entry_is_a_409_even_with_cascade(login, session):
    admin = login("admin")
    community_id, zone_id = _fresh_zone(admin)
    entry = _record(session, zone_id, status="declined")
    for query in ("", "?cascade=true"):
        assert_problem(admin.delete(f"/api/v1/communities/{community_id}{query}"), 409, "has-dependents")
    assert _kept(session, entry.shift_id) == (1, 2, 1, ["declined"])
    assert admin.get(f"/api/v1/zones/{zone_id}").status_code == 200


def test_splitting_a_community_whose_zones_hold_records_is_a_409_that_says_to_redraw(login, session):
    """A split replaces no zone: it is for a community without zones; one with zones (records in them) is told to
    redraw them, not sent to delete zones that cannot go."""
    admin = login("admin")
    community_id, zone_id = _fresh_zone(admin)
    entry = _record(session, zone_id, status="approved")
    problem = assert_problem(admin.post(f"/api/v1/communities/{community_id}/zones/split",
                                        json={"count": 4, "commit": True}), 409)
    assert "PATCH" in problem["detail"] and problem["zone_count"] == 1
    assert _kept(session, entry.shift_id) == (1, 2, 1, ["approved"])
    assert [f["id"] for f in admin.get(f"/api/v1/communities/{community_id}/zones").get_json()["features"]] == [zone_id]


@pytest.mark.parametrize("change", [{"disabled": True}, {"roles": ["worker"]}])
def test_disabling_an_account_or_taking_its_role_keeps_its_record_whole(login, session, change):
    g09 = zone_of(session, "G09").id
    entries = [_record(session, g09, "volunteer-009", status=status,
                       starts=datetime(2026, 3, 3 + day, 7, 30, tzinfo=SHANGHAI))
               for day, status in enumerate(STATUSES)]
    user_id = session.scalar(select(User.id).where(User.username == "volunteer-009"))
    admin = login("admin")
    assert admin.patch(f"/api/v1/users/{user_id}", json=change).status_code == 200
    for entry, status in zip(entries, STATUSES):
        assert _kept(session, entry.shift_id) == (1, 2, 1, [status])
    vid = volunteer_id(session, "volunteer-009")
    report = admin.get(f"/api/v1/volunteers/{vid}/hours?from=2026-03-01&to=2026-03-31").get_json()
    assert sorted(e["status"] for e in report["entries"]) == sorted(STATUSES)
    csv = admin.get(f"/api/v1/volunteers/{vid}/hours.csv?from=2026-03-01&to=2026-03-31").get_data(as_text=True)
    assert all(status in csv for status in STATUSES)


def test_there_is_no_way_to_delete_an_account_or_a_volunteer_profile_through_the_api(login, session):
    admin = login("admin")
    user_id = session.scalar(select(User.id).where(User.username == "volunteer-009"))
    assert admin.delete(f"/api/v1/users/{user_id}").status_code == 405
    assert admin.delete(f"/api/v1/volunteers/{volunteer_id(session, 'volunteer-009')}").status_code == 405


# ---------------------------------------------------------------- the database as the backstop


def test_the_database_refuses_to_delete_a_zone_whose_shift_has_a_declined_entry(session):
    """Deleted in psql (or by a code path without the service's check), the zone took its shifts and, with them,
    the sign-up, check-in, check-out and the declined entry, by ON DELETE CASCADE."""
    zone = zone_of(session, "G09")
    entry = _record(session, zone.id, status="declined")
    with _refused_by_the_database(session) as refused:
        session.execute(text("DELETE FROM zone WHERE id = :z"), {"z": zone.id})
    assert "service records" in str(refused.value.orig)
    assert _kept(session, entry.shift_id) == (1, 2, 1, ["declined"])


def test_the_database_refuses_to_delete_a_community_whose_shift_has_a_record(session):
    zone = zone_of(session, "G09")
    entry = _record(session, zone.id, status="pending")
    with _refused_by_the_database(session):
        session.execute(text("DELETE FROM community WHERE id = :c"), {"c": zone.community_id})
    assert _kept(session, entry.shift_id) == (1, 2, 1, ["pending"])


@pytest.mark.parametrize("table", ["app_user", "volunteer"])
def test_the_database_refuses_to_delete_an_account_or_a_profile_that_has_a_record(session, table):
    """The account went with its volunteer profile, and the profile with every sign-up, check event and hours
    entry of theirs: disable the account instead."""
    entry = _record(session, zone_of(session, "G09").id, "volunteer-009", status="approved")
    vid = entry.volunteer_id
    row = vid if table == "volunteer" else session.scalar(select(Volunteer.user_id).where(Volunteer.id == vid))
    with _refused_by_the_database(session):
        session.execute(text(f"DELETE FROM {table} WHERE id = :id"), {"id": row})
    assert _kept(session, entry.shift_id) == (1, 2, 1, ["approved"])


@pytest.mark.parametrize("end", ["check_in_id", "check_out_id"])
def test_the_database_refuses_to_delete_a_check_event_under_an_hours_entry(session, end):
    """The check-in took its entry with it; the check-out left the entry without its end (SET NULL)."""
    entry = _record(session, zone_of(session, "G09").id, status="approved")
    with _refused_by_the_database(session):
        session.execute(text("DELETE FROM check_event WHERE id = :e"), {"e": getattr(entry, end)})
    session.expire_all()
    kept = session.get(ServiceHours, entry.id)
    assert kept.check_in_id is not None and kept.check_out_id is not None


def test_the_database_still_deletes_what_holds_no_record(login, session):
    """The backstop is no wider than the record: a zone whose shifts nobody signed up for or checked in to (and
    a community holding only such zones) still goes, and so does a shift deleted on purpose with its rows."""
    admin = login("admin")
    community_id, zone_id = _fresh_zone(admin)
    later = datetime.now(timezone.utc) + timedelta(days=30)
    empty = create_shift(session, zone_id=zone_id, title="空班次", activity="traffic_guidance", capacity=3,
                         starts_at=later, ends_at=later + timedelta(hours=1))
    empty_id = empty.id
    session.add(Signup(shift_id=empty_id, volunteer_id=volunteer_id(session, "volunteer-001"), status="confirmed"))
    session.flush()
    session.execute(text("DELETE FROM community WHERE id = :c"), {"c": community_id})
    session.expunge_all()
    assert session.get(Shift, empty_id) is None and session.get(Zone, zone_id) is None
    shift_id = _record(session, zone_of(session, "G09").id, status="declined").shift_id
    session.execute(text("DELETE FROM shift WHERE id = :s"), {"s": shift_id})
    session.expunge_all()
    assert _kept(session, shift_id) == (0, 0, 0, [])


# ---------------------------------------------------------------- the gridsvc command


def _run(database_url, *args):
    from gridsvc.cli import main

    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": database_url}, catch_exceptions=False)


@pytest.fixture()
def committed_record(engine):
    """A record of volunteer-009 committed 30 days ago (a check-in's position is far past the retention)."""
    with Session(engine) as own:
        starts = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=30)
        entries = [_record(own, zone_of(own, "G09").id, "volunteer-009", status=status,
                           starts=starts + timedelta(days=day)) for day, status in enumerate(STATUSES)]
        shift_ids = [e.shift_id for e in entries]
        own.commit()
    try:
        yield shift_ids
    finally:
        with engine.begin() as conn:  # a shift deleted on purpose takes its own rows
            conn.execute(Shift.__table__.delete().where(Shift.id.in_(shift_ids)))


def test_purge_deletes_old_positions_only_never_the_record(database_url, engine, committed_record):
    result = _run(database_url, "purge", "--days", "1")
    assert result.exit_code == 0, result.output
    with Session(engine) as own:
        for shift_id, status in zip(committed_record, STATUSES):
            assert _kept(own, shift_id) == (1, 2, 1, [status])


def test_seeding_the_demo_again_keeps_the_record(database_url, engine, committed_record):
    result = _run(database_url, "seed", "lingfeng")
    assert result.exit_code == 0, result.output
    with Session(engine) as own:
        for shift_id, status in zip(committed_record, STATUSES):
            assert _kept(own, shift_id) == (1, 2, 1, [status])


def test_deleting_a_zone_some_volunteers_call_home_is_a_409_until_they_have_another(login, session):
    """Deleting a zone set its volunteers' home zone to none without a word: they belonged to no liaison (nobody
    reached them or saw their whole record). Refused while anyone calls it home; once they moved, it goes."""
    admin = login("admin")
    _, zone_id = _fresh_zone(admin)
    vid = volunteer_id(session, "volunteer-004")  # (a community and a zone of their own: no shift, no request)
    home = admin.get(f"/api/v1/volunteers/{vid}").get_json()["home_zone_id"]
    assert admin.patch(f"/api/v1/volunteers/{vid}", json={"home_zone_id": zone_id}).status_code == 200
    problem = assert_problem(admin.delete(f"/api/v1/zones/{zone_id}"), 409, "has-dependents")
    assert problem["volunteers"] == 1 and "home zone" in problem["detail"]
    assert admin.get(f"/api/v1/volunteers/{vid}").get_json()["home_zone_id"] == zone_id
    community_id = session.get(Zone, zone_id).community_id
    problem = assert_problem(admin.delete(f"/api/v1/communities/{community_id}?cascade=true"), 409, "has-dependents")
    assert problem["volunteers"] == 1
    assert admin.patch(f"/api/v1/volunteers/{vid}", json={"home_zone_id": home}).status_code == 200
    assert admin.delete(f"/api/v1/zones/{zone_id}").status_code == 204
