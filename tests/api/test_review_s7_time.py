"""Review (s7): time-related behaviour a volunteer and a liaison see over weeks: the calendar a phone subscribes
to, hours by month on the park's clock, and position retention."""
from __future__ import annotations

import time as walltime
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy.orm import sessionmaker

from gridsvc.app import create_app
from gridsvc.cli import main
from tests.api.volunteer_helpers import make_shift, post_check, volunteer_id, zone_center, zone_of
from tests.conftest import TEST_CONFIG
from tests.helpers import calendar_events, client_as, csv_rows

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture()
def admin(login):
    return login("admin")


def feed_of(client, vid: int) -> dict[str, dict[str, str]]:
    answer = client.get(f"/api/v1/volunteers/{vid}/shifts.ics")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return calendar_events(answer.get_data(as_text=True))


@pytest.fixture()
def one_place(admin, login, session, clock):
    """A G01 shift in three days with one place: volunteer-001 confirmed, volunteer-002 waiting; each has
    imported their calendar feed."""
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, starts_at=clock() + timedelta(days=3), capacity=1)
    people = {}
    for name in ("volunteer-001", "volunteer-002"):
        client, vid = login(name), volunteer_id(session, name)
        assert client.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201
        uid = f"shift-{shift['id']}-volunteer-{vid}@gridsvc"
        people[name] = {"client": client, "id": vid, "uid": uid, "imported": feed_of(client, vid)[uid]}
    walltime.sleep(1.1)  # the withdrawal comes at least a second later, as a volunteer's would
    return shift, people


def test_a_withdrawn_place_is_cancelled_in_the_calendar_not_dropped_from_it(one_place):
    """volunteer-001 imported their feed (the shift CONFIRMED), then withdrew from the shift three days ahead.
    The next feed no longer has the event at all: a calendar that imported the file (the case README's SEQUENCE
    rule is for) never learns of the withdrawal and keeps showing a confirmed shift the volunteer will not work;
    a cancelled shift, by contrast, stays as STATUS:CANCELLED. The withdrawn place should go out as the same UID
    with STATUS:CANCELLED and a higher SEQUENCE (RFC 5545 3.8.1.11, 3.8.7.4; RFC 5546 2.1.4), as a cancelled
    shift does."""
    shift, people = one_place
    me = people["volunteer-001"]
    assert me["imported"]["STATUS"] == "CONFIRMED"
    answer = me["client"].delete(f"/api/v1/shifts/{shift['id']}/signups/{me['id']}")
    assert answer.status_code == 200, answer.get_json()
    after = feed_of(me["client"], me["id"]).get(me["uid"])
    assert after is not None, "the withdrawn shift vanished from the feed: an imported calendar keeps it CONFIRMED"
    assert after["STATUS"] == "CANCELLED"
    assert int(after["SEQUENCE"]) > int(me["imported"]["SEQUENCE"])


def test_a_place_confirmed_from_the_waitlist_turns_tentative_into_confirmed_with_a_higher_sequence(one_place):
    """Guard (checked sound): volunteer-002 waited for the one place, so their calendar showed the shift
    TENTATIVE; volunteer-001 withdrew, 002 was promoted, and the feed gives the same UID CONFIRMED with a higher
    SEQUENCE and LAST-MODIFIED, so an imported calendar takes the change (README: "its place confirmed")."""
    shift, people = one_place
    waiting = people["volunteer-002"]
    assert waiting["imported"]["STATUS"] == "TENTATIVE"
    withdrawer = people["volunteer-001"]
    assert withdrawer["client"].delete(f"/api/v1/shifts/{shift['id']}/signups/{withdrawer['id']}").status_code == 200
    after = feed_of(waiting["client"], waiting["id"])[waiting["uid"]]
    assert after["STATUS"] == "CONFIRMED"
    assert int(after["SEQUENCE"]) > int(waiting["imported"]["SEQUENCE"])
    assert after["LAST-MODIFIED"] > waiting["imported"]["LAST-MODIFIED"]
    assert (after["DTSTART"], after["DTEND"]) == (waiting["imported"]["DTSTART"], waiting["imported"]["DTEND"])


def test_hours_at_the_year_end_count_on_the_parks_date_everywhere(admin, login, session, clock):
    """Guard (checked sound): on New Year's Eve in Lingfeng the volunteer served 22:00-23:00, then 00:30-02:00
    on 1 January (still 31 December in UTC). Checked in and out online, both count for their Shanghai day and
    month in the JSON report, its from/to (inclusive days), the liaison's queue and totals, and the CSV."""
    g01 = zone_of(session, "G01").id
    center = zone_center(admin, g01)
    local_now = clock().astimezone(SHANGHAI)
    new_year = datetime(local_now.year + 1, 1, 1, tzinfo=SHANGHAI)
    eve = new_year.date() - timedelta(days=1)
    late = make_shift(admin, zone_id=g01, starts_at=new_year - timedelta(hours=2), hours=1, title="除夕巡查")
    early = make_shift(admin, zone_id=g01, starts_at=new_year + timedelta(minutes=30), hours=1.5, title="元旦巡查")
    volunteer, vid = login("volunteer-001"), volunteer_id(session, "volunteer-001")
    for shift in (late, early):
        assert volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201
        clock.current = datetime.fromisoformat(shift["starts_at"]).astimezone(timezone.utc) - timedelta(minutes=10)
        assert post_check(volunteer, shift["id"], "check-in", center).status_code == 201
        clock.current = datetime.fromisoformat(shift["ends_at"]).astimezone(timezone.utc) + timedelta(minutes=10)
        assert post_check(volunteer, shift["id"], "check-out", center).status_code == 201

    def report(query: str = "") -> dict:
        answer = volunteer.get(f"/api/v1/volunteers/{vid}/hours{query}")
        assert answer.status_code == 200, answer.get_json()
        return answer.get_json()

    whole = report()
    assert [(e["shift_title"], e["hours"]) for e in whole["entries"]] == [("除夕巡查", 1.0), ("元旦巡查", 1.5)]
    assert [(m["key"], m["approved"]) for m in whole["by_month"]] == [(f"{eve:%Y-%m}", 1.0), (f"{new_year:%Y-%m}", 1.5)]
    assert whole["approved"] == 2.5
    assert [e["shift_title"] for e in report(f"?from={eve}&to={eve}")["entries"]] == ["除夕巡查"]
    assert [e["shift_title"] for e in report(f"?from={new_year.date()}")["entries"]] == ["元旦巡查"]
    liaison = login("liaison-g01")
    totals = liaison.get(f"/api/v1/hours/totals?from={new_year.date()}&to={new_year.date()}").get_json()
    assert (totals["total_hours"], [i["hours"] for i in totals["items"]]) == (1.5, [1.5])
    queue = liaison.get(f"/api/v1/hours?status=approved&to={eve}&volunteer_id={vid}").get_json()
    assert [i["hours"] for i in queue["items"]] == [1.0]
    rows = csv_rows(volunteer.get(f"/api/v1/volunteers/{vid}/hours.csv"))
    assert [row[3:7] for row in rows[1:]] == [[eve.isoformat(), "22:00:00", "23:00:00", "1.00"],
                                              [new_year.date().isoformat(), "00:30:00", "02:00:00", "1.50"]]


@pytest.mark.parametrize("args, env", [
    (["purge", "--days", "inf"], {}),
    (["purge", "--days", "1000000"], {}),
    (["purge"], {"GRIDSVC_POSITION_RETENTION_DAYS": "inf"}),
], ids=["days-inf", "days-a-million", "setting-inf"])
def test_purge_with_a_keep_forever_retention_says_what_is_wrong_instead_of_crashing(database_url, engine, args, env):
    """An operator who wants positions kept "for ever" runs `gridsvc purge --days inf` (or sets
    GRIDSVC_POSITION_RETENTION_DAYS=inf, or 1000000 days). The command accepts the number (the option is a
    FloatRange with no upper bound, _retention_days checks only "> 0") and then dies with a Python traceback,
    OverflowError from `now - timedelta(days=...)`, exit code 1. It should refuse the value as a usage error
    naming the setting (exit 2, as it does for 0), or treat it as "delete nothing"."""
    result = CliRunner().invoke(main, args, env={"DATABASE_URL": database_url, **env})
    assert not isinstance(result.exception, OverflowError), repr(result.exception)
    assert result.exit_code in (0, 2), result.output


def test_an_infinite_retention_setting_gives_my_locations_invalid_json(database_url, connection):
    """With GRIDSVC_POSITION_RETENTION_DAYS=inf (accepted at start-up: check_numeric_settings only checks it is a
    float), a volunteer opening "the positions kept about me" gets `"retention_days":Infinity` with a 200:
    not JSON (RFC 8259 has no Infinity), so the app's parser fails on it. The setting should be refused at
    start-up (a finite number of days above 0), as a typo in it is."""
    import json

    try:
        app = create_app({"DATABASE_URL": database_url, **TEST_CONFIG, "GRIDSVC_POSITION_RETENTION_DAYS": "inf"})
    except ValueError:
        return  # refused at start-up, naming the setting: what should happen
    database = app.extensions["gridsvc.db"]
    database.sessionmaker = sessionmaker(bind=connection, join_transaction_mode="create_savepoint",
                                         expire_on_commit=False)
    try:
        answer = client_as(app, "volunteer-001").get("/api/v1/me/locations")
        text = answer.get_data(as_text=True)
        json.loads(text, parse_constant=lambda name: pytest.fail(f"not JSON: {name} in {text[:120]}"))
    finally:
        database.dispose()
