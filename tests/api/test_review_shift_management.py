"""Review of shift management as liaisons and volunteers use it (each test failed before its fix, unless its
docstring says it guards behaviour that was right).

What they would see: a place on a shift given to a volunteer whose account is disabled or who no longer
volunteers, while an able volunteer waits behind them; such a volunteer signed up at all; a liaison of one park
signing up a volunteer of another park, and so reading their phone number and positions; a shift moved to a start
already past, after which it could be neither moved back nor cancelled. The race tests commit for real (two
connections) and clean up after themselves.
"""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from gridsvc.models import Shift, Signup, User, Volunteer
from gridsvc.services import accounts as account_service
from gridsvc.services import shifts as shift_service
from gridsvc.services.checks import CheckPolicy
from gridsvc.services.requests import DispatchPolicy
from tests.api.volunteer_helpers import make_shift, volunteer_id, zone_center, zone_of
from tests.helpers import assert_problem, client_as, community_body, delete_shifts, rect, while_uncommitted, zone_feature


@pytest.fixture()
def admin(login):
    return login("admin")


def _account_id(session, username: str) -> int:
    return session.scalar(select(User.id).where(User.username == username))


def _roster(client, shift_id: int) -> list[tuple[int, str, int | None]]:
    """(volunteer id, status, place on the waitlist) as the liaison's roster lists them."""
    items = client.get(f"/api/v1/shifts/{shift_id}/signups").get_json()["items"]
    return [(s["volunteer_id"], s["status"], s["waitlist_position"]) for s in items]


def _no_longer_volunteering(admin, session, username: str, how: str) -> None:
    change = {"disabled": True} if how == "disabled" else {"roles": ["worker"]}
    answer = admin.patch(f"/api/v1/users/{_account_id(session, username)}", json=change)
    assert answer.status_code == 200, answer.get_json()


# ------------------------------------------------------------------ 1. who may take a place


@pytest.mark.parametrize("how", ["disabled", "role_taken"])
def test_the_waitlist_passes_over_a_volunteer_whose_account_is_disabled_or_who_no_longer_volunteers(
        admin, login, session, clock, how):
    """D waits first in line for a one-place shift, W second; the admin disables D's account (or takes the volunteer
    role away: D left the team). X withdraws: the place went to D, who cannot sign in (or check in: check-in needs
    the volunteer role), and W, who could serve, stayed waitlisted. Raising the capacity did the same. D keeps their
    place in line (a re-enabled account gets the next free place first), but is passed over."""
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, capacity=1, starts_at=clock() + timedelta(days=230))
    url = f"/api/v1/shifts/{shift['id']}"
    x, d, w = "volunteer-001", "volunteer-002", "volunteer-003"
    x_id, d_id, w_id = (volunteer_id(session, name) for name in (x, d, w))
    assert [login(name).post(f"{url}/signups", json={}).get_json()["status"] for name in (x, d, w)] == [
        "confirmed", "waitlisted", "waitlisted"]
    _no_longer_volunteering(admin, session, d, how)

    withdrawn = admin.delete(f"{url}/signups/{x_id}").get_json()  # (the zone's managers are told who moved up)
    assert [p["volunteer_id"] for p in withdrawn["promoted"]] == [w_id]
    assert _roster(admin, shift["id"]) == [(w_id, "confirmed", None), (d_id, "waitlisted", 1)]
    # more places: still not D's; a newcomer able to serve is confirmed
    raised = admin.patch(url, json={"capacity": 2}).get_json()
    assert (raised["confirmed"], raised["waitlisted"], raised["places_left"]) == (1, 1, 1)
    newcomer = login("volunteer-004").post(f"{url}/signups", json={}).get_json()
    assert newcomer["status"] == "confirmed"
    assert _roster(admin, shift["id"]) == [(w_id, "confirmed", None), (newcomer["volunteer_id"], "confirmed", None),
                                           (d_id, "waitlisted", 1)]


@pytest.mark.parametrize("how", ["disabled", "role_taken"])
def test_a_volunteer_whose_account_is_disabled_or_who_no_longer_volunteers_is_not_signed_up(
        admin, login, session, clock, how):
    """An admin (or the zone's liaison) signing up a disabled account's volunteer profile got a confirmed place
    that nobody would fill; a user whose volunteer role was taken away still signed themselves up (any signed-in
    account may send a sign-up for its own profile). Now a 409 that says why, and no sign-up."""
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, capacity=2, starts_at=clock() + timedelta(days=231))
    url = f"/api/v1/shifts/{shift['id']}/signups"
    name = "volunteer-005"
    vid = volunteer_id(session, name)
    _no_longer_volunteering(admin, session, name, how)

    for client, body in ((admin, {"volunteer_id": vid}), (login("liaison-g01"), {"volunteer_id": vid}),
                         *([(login(name), {})] if how == "role_taken" else [])):
        refused = assert_problem(client.post(url, json=body), 409, "shift-conflict")
        assert refused["reason"] == "may_not_volunteer", refused
    assert _roster(admin, shift["id"]) == []
    assert admin.get(f"/api/v1/shifts/{shift['id']}").get_json()["places_left"] == 2


@pytest.mark.parametrize("how", ["disabled", "role_taken"])
def test_the_confirmed_places_of_a_volunteer_who_may_no_longer_volunteer_go_to_the_waitlist(
        admin, login, session, clock, how):
    """D, confirmed for two shifts next month, leaves the team: the admin disables the account (or takes the
    volunteer role away). D's places stayed confirmed: W, waiting behind D, never got the place, and the other
    shift showed no place left, though nobody would come. Now both places are free at once: W is confirmed, the
    other shift has its place back, and D waits in line at their sign-up's time, passed over (an account enabled
    again takes the next free place first). A place D has already checked in to (check-in opens 30 minutes
    before the start) stays: it is part of D's record, and so is a shift already over."""
    zone_id = zone_of(session, "G01").id
    full = make_shift(admin, zone_id=zone_id, capacity=1, starts_at=clock() + timedelta(days=232))
    roomy = make_shift(admin, zone_id=zone_id, capacity=3, starts_at=clock() + timedelta(days=233))
    soon = make_shift(admin, zone_id=zone_id, capacity=1, starts_at=clock() + timedelta(minutes=20))
    d, w = "volunteer-006", "volunteer-007"
    d_id, w_id = volunteer_id(session, d), volunteer_id(session, w)
    assert [login(name).post(f"/api/v1/shifts/{full['id']}/signups", json={}).get_json()["status"]
            for name in (d, w)] == ["confirmed", "waitlisted"]
    for shift in (roomy, soon):
        assert login(d).post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    lon, lat = zone_center(admin, zone_id)
    checked_in = login(d).post(f"/api/v1/shifts/{soon['id']}/check-in", json={"lon": lon, "lat": lat, "accuracy_m": 5},
                               headers={"Idempotency-Key": f"release-{how}"})
    assert checked_in.status_code == 201, checked_in.get_json()

    _no_longer_volunteering(admin, session, d, how)

    assert _roster(admin, full["id"]) == [(w_id, "confirmed", None), (d_id, "waitlisted", 1)]
    freed = admin.get(f"/api/v1/shifts/{roomy['id']}").get_json()
    assert (freed["confirmed"], freed["waitlisted"], freed["places_left"]) == (0, 1, 3)
    assert _roster(admin, soon["id"]) == [(d_id, "confirmed", None)]
    # a place that frees up later is still not D's
    assert login("volunteer-008").post(f"/api/v1/shifts/{roomy['id']}/signups", json={}).get_json()["status"] == "confirmed"


@pytest.mark.parametrize("how", ["disabled", "role_taken"])
def test_an_account_enabled_again_takes_the_free_place_it_waits_for(admin, login, session, clock, how):
    """D's place was released when the account was disabled (or lost the volunteer role), and nobody waited
    for it. Enabled again, D stayed "waitlisted, 1st" with three places free, and could not sign up again
    (409 already waitlisted): only a newcomer's sign-up, or withdrawing and joining the back of the line,
    would have given D a place. Now the waitlists where D waits run again at once, in order."""
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, capacity=3, starts_at=clock() + timedelta(days=234))
    full = make_shift(admin, zone_id=zone_of(session, "G01").id, capacity=1, starts_at=clock() + timedelta(days=235))
    d, w = "volunteer-006", "volunteer-007"
    d_id, w_id = volunteer_id(session, d), volunteer_id(session, w)
    assert login(d).post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    assert [login(name).post(f"/api/v1/shifts/{full['id']}/signups", json={}).get_json()["status"]
            for name in (d, w)] == ["confirmed", "waitlisted"]
    _no_longer_volunteering(admin, session, d, how)
    assert _roster(admin, shift["id"]) == [(d_id, "waitlisted", 1)]
    assert _roster(admin, full["id"]) == [(w_id, "confirmed", None), (d_id, "waitlisted", 1)]

    back = {"disabled": False} if how == "disabled" else {"roles": ["worker", "volunteer"]}
    assert admin.patch(f"/api/v1/users/{_account_id(session, d)}", json=back).status_code == 200
    assert _roster(admin, shift["id"]) == [(d_id, "confirmed", None)]
    # a place W took meanwhile stays W's: D waits in line for it, first
    assert _roster(admin, full["id"]) == [(w_id, "confirmed", None), (d_id, "waitlisted", 1)]


def test_disabling_an_account_while_its_volunteer_signs_up_leaves_no_confirmed_place(committed_app, engine, clock):
    """A sign-up in flight when the admin disabled the account: both succeeded, and the disabled account kept a
    confirmed place that nobody on the waitlist could get. The release read the volunteer's places before it
    waited for the volunteer's lock (held by the sign-up); it now reads them again once it holds it."""
    admin = client_as(committed_app, "admin")
    [v_id, w_id] = _two_volunteers(engine, "volunteer-044", "volunteer-045")
    with Session(engine) as s:
        zone_id = zone_of(s, "G05").id
        user_id, token_version = s.execute(select(User.id, User.token_version).where(User.username == "volunteer-044")).one()
    shift = make_shift(admin, zone_id=zone_id, capacity=1, starts_at=clock() + timedelta(days=43))
    try:
        assert client_as(committed_app, "volunteer-045").post(f"/api/v1/shifts/{shift['id']}/signups",
                                                              json={}).get_json()["status"] == "confirmed"
        assert admin.patch(f"/api/v1/shifts/{shift['id']}", json={"capacity": 2}).status_code == 200
        answer = while_uncommitted(engine, lambda own: shift_service.sign_up(own, shift["id"], v_id, now=clock()),
                                   lambda: admin.patch(f"/api/v1/users/{user_id}", json={"disabled": True}))
        assert answer.status_code == 200, answer.get_json()
        with engine.connect() as conn:
            statuses = dict(conn.execute(select(Signup.volunteer_id, Signup.status)
                                         .where(Signup.shift_id == shift["id"])).all())
            assert conn.execute(select(User.disabled).where(User.id == user_id)).scalar() is True
        assert statuses == {w_id: "confirmed", v_id: "waitlisted"}
    finally:
        delete_shifts(engine, shift["id"])
        with engine.begin() as conn:
            conn.execute(User.__table__.update().where(User.id == user_id).values(disabled=False,
                                                                                   token_version=token_version))


def test_an_account_enabled_while_the_place_it_waits_for_is_freed_takes_it(committed_app, engine, clock):
    """V (disabled) waits first for a one-place shift; W withdraws while the admin enables V again. The
    withdrawal passed V over (still disabled), and the enabling had looked for free places before it waited
    for V's lock, when the shift was still full: V stayed waitlisted beside a free place."""
    admin = client_as(committed_app, "admin")
    v_id, w_id = _two_volunteers(engine, "volunteer-046", "volunteer-047")
    with Session(engine) as s:
        zone_id = zone_of(s, "G05").id
        v_user, token_version = s.execute(select(User.id, User.token_version)
                                          .where(User.username == "volunteer-046")).one()
    shift = make_shift(admin, zone_id=zone_id, capacity=1, starts_at=clock() + timedelta(days=47))
    url = f"/api/v1/shifts/{shift['id']}/signups"
    try:
        assert client_as(committed_app, "volunteer-047").post(url, json={}).get_json()["status"] == "confirmed"
        assert client_as(committed_app, "volunteer-046").post(url, json={}).get_json()["status"] == "waitlisted"
        assert admin.patch(f"/api/v1/users/{v_user}", json={"disabled": True}).status_code == 200
        answer = while_uncommitted(engine, lambda own: shift_service.cancel_signup(own, shift["id"], w_id, now=clock()),
                                   lambda: admin.patch(f"/api/v1/users/{v_user}", json={"disabled": False}))
        assert answer.status_code == 200, answer.get_json()
        with engine.connect() as conn:
            statuses = dict(conn.execute(select(Signup.volunteer_id, Signup.status)
                                         .where(Signup.shift_id == shift["id"])).all())
        assert statuses == {w_id: "cancelled", v_id: "confirmed"}
    finally:
        delete_shifts(engine, shift["id"])
        with engine.begin() as conn:
            conn.execute(User.__table__.update().where(User.id == v_user).values(disabled=False,
                                                                                 token_version=token_version))


def test_an_account_enabled_while_another_admin_disables_it_ends_as_the_last_change_says(committed_app, engine,
                                                                                           clock):
    """One admin disables V's account while another enables it. The enabling read the account unlocked (still
    enabled), changed nothing, answered 200 "disabled": false, and the account stayed disabled; nor did V get
    back the place the disabling released. Now the second change waits for the first and starts from it."""
    admin = client_as(committed_app, "admin")
    [v_id] = _two_volunteers(engine, "volunteer-048")
    with Session(engine) as s:
        zone_id = zone_of(s, "G05").id
        v_user, token_version = s.execute(select(User.id, User.token_version)
                                          .where(User.username == "volunteer-048")).one()
    shift = make_shift(admin, zone_id=zone_id, capacity=1, starts_at=clock() + timedelta(days=48))
    try:
        assert client_as(committed_app, "volunteer-048").post(f"/api/v1/shifts/{shift['id']}/signups",
                                                              json={}).get_json()["status"] == "confirmed"
        answer = while_uncommitted(
            engine, lambda own: account_service.update_user(own, v_user, {"disabled": True}, check_policy=CheckPolicy(),
                                                            dispatch_policy=DispatchPolicy()),
            lambda: admin.patch(f"/api/v1/users/{v_user}", json={"disabled": False}))
        assert answer.status_code == 200 and answer.get_json()["disabled"] is False, answer.get_json()
        with engine.connect() as conn:
            assert conn.execute(select(User.disabled).where(User.id == v_user)).scalar() is False
            status = conn.execute(select(Signup.status).where(Signup.shift_id == shift["id"],
                                                              Signup.volunteer_id == v_id)).scalar()
        assert status == "confirmed"  # released by the disabling, taken back by the enabling
    finally:
        delete_shifts(engine, shift["id"])
        with engine.begin() as conn:
            conn.execute(User.__table__.update().where(User.id == v_user).values(disabled=False,
                                                                                 token_version=token_version))


@pytest.mark.parametrize("how", ["disabled", "role_taken"])
def test_a_volunteer_on_duty_who_may_no_longer_volunteer_goes_off_duty_with_hours_to_review(
        admin, login, session, clock, how):
    """D is on duty, half an hour into a shift, when the admin disables the account (or takes the role away). D
    stayed on duty until the shift ended: shown on the liaison's map as on duty, counted in the zone's volunteers
    on duty, and credited with the whole shift (closed at its end as a missing check-out). Now D goes off duty at
    that moment: the hours run to it, pending the liaison's review, flagged `may_not_volunteer`."""
    zone_id = zone_of(session, "G01").id
    shift = make_shift(admin, zone_id=zone_id, capacity=2, starts_at=clock() + timedelta(minutes=20))
    d = "volunteer-013"
    d_id = volunteer_id(session, d)
    assert login(d).post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    lon, lat = zone_center(admin, zone_id)
    checked_in = login(d).post(f"/api/v1/shifts/{shift['id']}/check-in", json={"lon": lon, "lat": lat, "accuracy_m": 5},
                               headers={"Idempotency-Key": f"off-duty-{how}"})
    assert checked_in.status_code == 201, checked_in.get_json()
    clock.advance(minutes=50)

    _no_longer_volunteering(admin, session, d, how)

    profile = admin.get(f"/api/v1/volunteers/{d_id}").get_json()
    assert (profile["on_duty"], profile["on_duty_shift_id"]) == (False, None)
    assert admin.get(f"/api/v1/zones/{zone_id}/map").get_json()["volunteers_on_duty"] == 0
    [entry] = [e for e in admin.get(f"/api/v1/volunteers/{d_id}/hours").get_json()["entries"]
               if e["shift_id"] == shift["id"]]
    assert (entry["hours"], entry["status"], entry["flagged"], entry["flag_reason"]) == (
        0.5, "pending", True, "may_not_volunteer")


def test_a_liaison_cannot_sign_up_a_volunteer_of_another_park(admin, login, session, clock):
    """The liaison of G02 signed up, by id, a volunteer who serves only in another park: the volunteer then "worked
    in" G02, and the liaison read their full phone number (and could read their positions and check-ins) until the
    sign-up was withdrawn. Ids are small integers: every volunteer of every park was one sign-up away. A liaison
    may now sign up only volunteers who work in the shift's community (home zone, a sign-up or hours there), as
    they may hand them requests; an admin may still sign up anyone."""
    other = admin.post("/api/v1/communities", json=community_body(name="Other park", boundary=rect(120.30, 31.50, 800, 800)))
    zone = admin.post(f"/api/v1/communities/{other.get_json()['id']}/zones",
                      json=zone_feature("O1", rect(120.30, 31.50, 800, 800)))
    outsider = session.get(Volunteer, volunteer_id(session, "volunteer-030"))
    outsider.home_zone_id = zone.get_json()["id"]
    session.commit()
    assert not session.scalar(select(Signup.id).where(Signup.volunteer_id == outsider.id).limit(1))
    liaison = login("liaison-g02")
    masked = liaison.get(f"/api/v1/volunteers/{outsider.id}").get_json()["phone"]
    assert "*" in masked
    shift = make_shift(admin, zone_id=zone_of(session, "G02").id, capacity=2, starts_at=clock() + timedelta(days=232))
    url = f"/api/v1/shifts/{shift['id']}/signups"

    refused = assert_problem(liaison.post(url, json={"volunteer_id": outsider.id}), 422, "validation")
    assert refused["errors"] == {"volunteer_id": ["does not work in this shift's community"]}, refused
    assert _roster(admin, shift["id"]) == []
    assert liaison.get(f"/api/v1/volunteers/{outsider.id}").get_json()["phone"] == masked
    # a volunteer of the park (home zone G01) is the liaison's to sign up; anyone is the admin's
    g01_volunteer = volunteer_id(session, "volunteer-001")
    assert liaison.post(url, json={"volunteer_id": g01_volunteer}).get_json()["status"] == "confirmed"
    assert admin.post(url, json={"volunteer_id": outsider.id}).get_json()["status"] == "confirmed"
    # and the outsider, signed up here now, may be withdrawn by the liaison
    assert liaison.delete(f"{url}/{outsider.id}").status_code == 200


# ------------------------------------------------------------------ 2. moving a shift


def test_moving_a_shift_to_start_in_the_past_is_refused_and_changes_nothing(admin, login, session, clock):
    """The liaison meant tomorrow 08:00 and typed today's date: the shift, with its confirmed volunteer, started 30
    minutes ago, out of the blue. Worse, begun, it could then be neither moved back ("its times are fixed") nor
    cancelled. A new start already past is now a 422 naming starts_at, as a new end already past is."""
    shift = make_shift(admin, zone_id=zone_of(session, "G03").id, capacity=2, starts_at=clock() + timedelta(days=1))
    url = f"/api/v1/shifts/{shift['id']}"
    assert login("volunteer-021").post(f"{url}/signups", json={}).get_json()["status"] == "confirmed"

    problem = assert_problem(admin.patch(url, json={"starts_at": (clock() - timedelta(minutes=30)).isoformat(),
                                                    "ends_at": (clock() + timedelta(hours=1)).isoformat()}), 422)
    assert list(problem["errors"]) == ["starts_at"], problem
    now = admin.get(url).get_json()
    assert (now["starts_at"], now["ends_at"], now["confirmed"]) == (shift["starts_at"], shift["ends_at"], 1)
    # still a shift that can be moved (to a start to come) or called off
    soon = clock() + timedelta(minutes=45)
    moved = admin.patch(url, json={"starts_at": soon.isoformat(), "ends_at": (soon + timedelta(hours=1)).isoformat()})
    assert moved.status_code == 200, moved.get_json()
    assert datetime.fromisoformat(moved.get_json()["starts_at"]) == soon
    assert admin.delete(url).get_json()["status"] == "cancelled"


def test_moving_a_shift_keeps_its_zone_and_its_liaison(login, session, clock):
    """Guard (was right): a shift's zone is not a PATCH field, so a liaison cannot move their shift into another
    zone (nor another liaison's shift into theirs); the other zone's liaison cannot change or cancel it."""
    g01, g02 = zone_of(session, "G01").id, zone_of(session, "G02").id
    shift = make_shift(login("admin"), zone_id=g01, starts_at=clock() + timedelta(days=233))
    url = f"/api/v1/shifts/{shift['id']}"
    assert "zone_id" in assert_problem(login("liaison-g01").patch(url, json={"zone_id": g02}), 422)["errors"]
    other = login("liaison-g02")
    assert_problem(other.patch(url, json={"capacity": 9}), 403)
    assert_problem(other.delete(url), 403)
    assert_problem(other.get(f"{url}/signups"), 403)
    assert login("admin").get(url).get_json() | {"distance_m": None} == shift | {"distance_m": None}


# ------------------------------------------------------------------ 3. races (guards)


def _two_volunteers(engine, *usernames: str) -> list[int]:
    with engine.connect() as conn:
        ids = dict(conn.execute(select(User.username, Volunteer.id).join(Volunteer, Volunteer.user_id == User.id)
                                .where(User.username.in_(usernames))).all())
    return [ids[name] for name in usernames]


@pytest.mark.parametrize("first", ["sign_up", "lower_capacity"])
def test_lowering_the_capacity_while_someone_takes_a_place_never_leaves_more_confirmed_than_places(
        committed_app, engine, clock, first):
    """Guard (was right): a two-place shift with one confirmed. The liaison lowers the capacity to 1 while another
    volunteer signs up. Whichever gets there first, the other is judged against it: the sign-up first, the
    lowering is a 409 (two confirmed); the lowering first, the sign-up is waitlisted."""
    admin = client_as(committed_app, "admin")
    x_id, v_id = _two_volunteers(engine, "volunteer-051", "volunteer-052")
    with Session(engine) as s:
        zone_id = zone_of(s, "G04").id
    shift = make_shift(admin, zone_id=zone_id, capacity=2, starts_at=clock() + timedelta(days=41))
    url = f"/api/v1/shifts/{shift['id']}"
    try:
        assert client_as(committed_app, "volunteer-051").post(f"{url}/signups", json={}).status_code == 201
        if first == "sign_up":
            answer = while_uncommitted(engine, lambda own: shift_service.sign_up(own, shift["id"], v_id, now=clock()),
                                       lambda: admin.patch(url, json={"capacity": 1}))
            assert answer.status_code == 409, answer.get_json()
            assert answer.get_json()["confirmed"] == 2
        else:
            answer = while_uncommitted(
                engine, lambda own: shift_service.update_shift(own, shift["id"], {"capacity": 1}, now=clock()),
                lambda: client_as(committed_app, "volunteer-052").post(f"{url}/signups", json={}))
            assert answer.status_code == 201 and answer.get_json()["waitlist_position"] == 1, answer.get_json()
        with engine.connect() as conn:
            capacity = conn.execute(select(Shift.capacity).where(Shift.id == shift["id"])).scalar()
            statuses = dict(conn.execute(select(Signup.volunteer_id, Signup.status)
                                         .where(Signup.shift_id == shift["id"])).all())
        assert (capacity, statuses) == ((2, {x_id: "confirmed", v_id: "confirmed"}) if first == "sign_up"
                                        else (1, {x_id: "confirmed", v_id: "waitlisted"}))
    finally:
        delete_shifts(engine, shift["id"])
