"""Review of the day's changes: defects reproduced."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from gridsvc.models import Zone
from tests.api.volunteer_helpers import with_availability, zone_of

NEW_YORK = ZoneInfo("America/New_York")


def _fall_back_day(after: datetime) -> date:
    """The next first Sunday of November (US clocks go back 02:00 EDT -> 01:00 EST) at least two days on."""
    year = after.year
    while True:
        first = date(year, 11, 1)
        sunday = first + timedelta(days=(6 - first.weekday()) % 7)
        if sunday > after.date() + timedelta(days=2):
            return sunday
        year += 1


def test_free_for_a_shift_in_the_repeated_hour_of_a_dst_fall_back_ignores_availability(login, session, clock):
    """A community on America/New_York; a shift 01:30 EDT to 01:15 EST on the fall-back night (45 minutes: its end
    reads earlier on the wall clock than its start). ``shift_days`` compares the two wall-clock times (same tzinfo:
    Python ignores the offset), finds no time at all, and ``free_for`` then asks nothing of availability: a
    volunteer who gave no windows, or only other days', is listed as free."""
    admin = login("admin")
    g01 = zone_of(session, "G01")
    community_id = session.get(Zone, g01.id).community_id
    assert admin.patch(f"/api/v1/communities/{community_id}", json={"timezone": "America/New_York"}).status_code == 200
    sunday = _fall_back_day(clock())
    starts = datetime(sunday.year, sunday.month, sunday.day, 1, 30, tzinfo=NEW_YORK)  # fold 0: EDT, 05:30 UTC
    ends = starts.astimezone(timezone.utc) + timedelta(minutes=45)  # 06:15 UTC: 01:15 EST
    created = admin.post("/api/v1/shifts", json={
        "title": "夜间巡查", "activity": "traffic_guidance", "zone_id": g01.id, "capacity": 3,
        "starts_at": starts.astimezone(timezone.utc).isoformat(), "ends_at": ends.isoformat(),
        "required_skills": ["first_aid"]})
    assert created.status_code == 201, created.get_json()
    free = with_availability(admin, session, 21, [(7, "01:00", "02:00")])
    no_windows = with_availability(admin, session, 22, [])
    tuesdays = with_availability(admin, session, 23, [(2, "08:00", "09:00")])

    answer = admin.get(f"/api/v1/volunteers?free_for={created.get_json()['id']}&limit=500")
    assert answer.status_code == 200, answer.get_json()
    listed = {item["id"] for item in answer.get_json()["items"]}
    assert free in listed
    assert no_windows not in listed and tuesdays not in listed



def test_a_bulk_review_of_an_entry_gone_before_its_lock_answers_404_for_it(session, clock):
    """``review_many`` reads the entries, then locks those the reviewer may decide: one deleted in between (here by
    the check itself, as another transaction's delete would land) is a 404 in its place, not a missing result
    (which the view indexed: a 500)."""
    from sqlalchemy import delete

    from gridsvc.models import ServiceHours
    from gridsvc.services import checks
    from tests.api.volunteer_helpers import approved_hours

    g01 = zone_of(session, "G01").id
    kept = approved_hours(session, g01, clock() - timedelta(days=2), activity="traffic_guidance", title="早高峰",
                          at=(121.78, 29.87))
    gone = approved_hours(session, g01, clock() - timedelta(days=1), activity="traffic_guidance", title="早高峰",
                          at=(121.78, 29.87))
    session.execute(ServiceHours.__table__.update().where(ServiceHours.id.in_([kept.id, gone.id]))
                    .values(status="pending"))
    session.expire_all()

    def may_review(entry):
        if entry.id == gone.id:
            session.execute(delete(ServiceHours).where(ServiceHours.id == gone.id))

    results = checks.review_many(session, [gone.id, kept.id], approve=True, note=None, reviewer_id=None, now=clock(),
                                 may_review=may_review)
    assert results[gone.id].status == 404 and results[kept.id].status == "approved"
