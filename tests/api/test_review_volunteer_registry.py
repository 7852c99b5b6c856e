"""The volunteer registry, search and positions: defects found in review (each test failed before its fix).

What a liaison, an admin or a volunteer would see: two volunteers on one national volunteer ID (one's hours go
on the other's national record); a phone typed in full-width digits refused as "not digits"; a liaison able to
register a volunteer but not to correct the phone they mistyped; an old position, delivered late, replacing the
newer one dispatch goes by.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from geo.crs import geodesic_distance_m
from gridsvc.models import Volunteer, VolunteerPosition
from gridsvc.services.accounts import find_user
from tests.api.volunteer_helpers import make_shift, volunteer_id, zone_center, zone_of
from tests.helpers import assert_problem, count, offset


def _registered(client, **body) -> dict:
    answer = client.post("/api/v1/volunteers", json={"real_name": "陈静", "phone": "13912345678", **body})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


# ------------------------------------------------------------------ registering


def test_a_national_volunteer_id_already_used_by_someone_else_is_a_409(login, session):
    """volunteer-001's national ID, given again by another registration or profile: both CSV exports would carry
    it, and the second person's hours would be credited to the first on the national record."""
    taken = session.get(Volunteer, volunteer_id(session, "volunteer-001")).national_volunteer_id
    before = count(session, Volunteer)
    for typed in (taken, f" {taken.lower()} "):
        problem = assert_problem(login("worker-001").post("/api/v1/volunteers", json={
            "real_name": "陈静", "phone": "13912345678", "national_volunteer_id": typed}), 409)
        assert "national_volunteer_id" in problem["detail"]
    assert count(session, Volunteer) == before
    me = volunteer_id(session, "volunteer-002")
    assert_problem(login("volunteer-002").patch(f"/api/v1/volunteers/{me}", json={"national_volunteer_id": taken}),
                   409)
    session.expire_all()
    assert session.get(Volunteer, me).national_volunteer_id != taken
    # one's own ID again is no clash
    own = session.get(Volunteer, me).national_volunteer_id
    assert login("volunteer-002").patch(f"/api/v1/volunteers/{me}",
                                        json={"national_volunteer_id": own}).status_code == 200


@pytest.mark.parametrize("typed", ["１３９１２３４５６７８", "+86 139 1234 5678", "139-1234-5678", "+86１３９１２３４５６７８"])
def test_a_phone_in_full_width_digits_or_with_the_country_code_is_taken(login, typed):
    """A Chinese IME in full-width mode types １３９...: it was refused as "Digits, spaces, '-' and a leading '+'
    only". Stored as ASCII digits, the number shows (and is masked) like everyone else's."""
    body = _registered(login("worker-001"), phone=typed)
    assert body["phone"].replace(" ", "").replace("-", "").removeprefix("+86") == "13912345678"
    assert body["phone"].isascii()
    masked = login("planner").get(f"/api/v1/volunteers/{body['id']}").get_json()["phone"]
    assert masked.endswith("5678") and "1234" not in masked


def test_a_liaison_registers_someone_only_into_a_zone_they_manage(login, session):
    """liaison-g01 registered a worker with home zone G05: G05's liaison was handed a volunteer (phone, positions)
    by someone who has no say over G05, and the registering liaison could not see the record they had made."""
    target = find_user(session, "worker-003").id
    g01, g05 = zone_of(session, "G01").id, zone_of(session, "G05").id
    liaison = login("liaison-g01")
    before = count(session, Volunteer)
    assert_problem(liaison.post("/api/v1/volunteers", json={"user_id": target, "real_name": "x", "phone": "13900000000",
                                                           "home_zone_id": g05}), 403)
    # nor into no zone: nobody's volunteer, whose phone the liaison could not see nor correct
    refused = assert_problem(liaison.post("/api/v1/volunteers", json={"user_id": target, "real_name": "x",
                                                                     "phone": "13900000000"}), 403)
    assert "home_zone_id" in refused["detail"]
    assert count(session, Volunteer) == before
    made = _registered(liaison, user_id=target, home_zone_id=g01)
    assert liaison.get(f"/api/v1/volunteers/{made['id']}").get_json()["phone"] == "13912345678"


# ------------------------------------------------------------------ changing a profile


def test_the_liaison_of_the_home_zone_corrects_a_profile_but_cannot_move_it_out_of_their_zones(login, session):
    """The liaison who registered a worker mistyped the phone; only an admin could correct it (403)."""
    vid = volunteer_id(session, "volunteer-001")  # home zone G01
    g05 = zone_of(session, "G05").id
    liaison = login("liaison-g01")
    fixed = liaison.patch(f"/api/v1/volunteers/{vid}", json={"phone": "13800009999", "team": None})
    assert fixed.status_code == 200, fixed.get_json()
    assert (fixed.get_json()["phone"], fixed.get_json()["team"]) == ("13800009999", None)
    # moving the volunteer to a zone the liaison does not manage is not theirs to do
    assert_problem(liaison.patch(f"/api/v1/volunteers/{vid}", json={"home_zone_id": g05}), 403)
    assert session.get(Volunteer, vid).home_zone_id == zone_of(session, "G01").id
    # nor is a volunteer of another zone theirs to change
    other = volunteer_id(session, "volunteer-005")
    assert session.get(Volunteer, other).home_zone_id != zone_of(session, "G01").id
    assert_problem(liaison.patch(f"/api/v1/volunteers/{other}", json={"team": "x"}), 403)


# ------------------------------------------------------------------ positions


def test_a_fix_delivered_late_does_not_replace_the_newer_position(login, session, clock):
    """The phone took a fix at 10:00 without signal and sent it at 10:05, after a fix taken at 10:04: the older
    fix became the last known position, the one dispatch sends people to. The phone says when it took a fix
    (`client_time`); the history keeps both, in the order they were taken."""
    me = login("volunteer-001")
    vid = volunteer_id(session, "volunteer-001")
    here = zone_center(login("admin"), zone_of(session, "G01").id)
    then = offset(*here, 0, 800)
    now = clock()
    fresh = me.post("/api/v1/me/location", json={"lon": here[0], "lat": here[1], "accuracy_m": 10,
                                                 "client_time": (now - timedelta(minutes=1)).isoformat()})
    assert fresh.status_code == 201, fresh.get_json()
    late = me.post("/api/v1/me/location", json={"lon": then[0], "lat": then[1], "accuracy_m": 10,
                                                "client_time": (now - timedelta(minutes=5)).isoformat()})
    assert late.status_code == 201, late.get_json()
    assert late.get_json()["recorded_at"].startswith((now - timedelta(minutes=5)).isoformat()[:19])
    last = me.get("/api/v1/me/volunteer").get_json()["last_position"]
    assert geodesic_distance_m(last["lon"], last["lat"], *here) < 1
    times = session.scalars(select(VolunteerPosition.recorded_at).where(VolunteerPosition.volunteer_id == vid)
                            .order_by(VolunteerPosition.recorded_at)).all()
    assert times == [now - timedelta(minutes=5), now - timedelta(minutes=1)]


@pytest.mark.parametrize("ahead, status", [(timedelta(minutes=3), 201), (timedelta(minutes=30), 422),
                                           (-timedelta(hours=25), 422)])
def test_a_fix_time_far_ahead_or_too_old_is_refused(login, session, clock, ahead, status):
    """A phone's clock a few minutes fast counts as now; a fix time far ahead would pin the last known position
    ahead of every fix until then, and one older than a day is not a position anyone should act on."""
    me = login("volunteer-001")
    answer = me.post("/api/v1/me/location", json={"lon": 121.78, "lat": 29.87,
                                                  "client_time": (clock() + ahead).isoformat()})
    assert answer.status_code == status, answer.get_json()
    if status == 201:
        assert answer.get_json()["recorded_at"].startswith(clock().isoformat()[:19])
    else:
        assert "client_time" in assert_problem(answer, 422)["errors"]
        assert session.scalar(select(func.count()).select_from(VolunteerPosition)) == 0


# ------------------------------------------------------------------ search


def test_a_search_near_a_point_read_off_an_amap_map_says_its_crs(login, session):
    """A liaison's map (AMap) gives GCJ-02, hundreds of metres from WGS-84. `crs=gcj02` was ignored as an unknown
    parameter: "who is within 100 m of this gate" found nobody, the volunteer standing at it being 500 m away in
    the wrong datum."""
    from geo.crs import from_wgs84

    here = zone_center(login("admin"), zone_of(session, "G01").id)
    login("volunteer-001").post("/api/v1/me/location", json={"lon": here[0], "lat": here[1], "accuracy_m": 5})
    for crs in ("gcj02", "bd09"):
        seen = from_wgs84(*here, crs)
        assert geodesic_distance_m(*seen, *here) > 300
        found = login("liaison-g01").get(f"/api/v1/volunteers?near={seen[0]},{seen[1]}&crs={crs}&radius_m=100")
        assert [(v["username"], v["distance_m"] < 1) for v in found.get_json()["items"]] == [("volunteer-001", True)]
    assert "crs" in assert_problem(login("admin").get("/api/v1/volunteers?near=121.78,29.87&crs=utm"), 422)["errors"]


# ------------------------------------------------------------------ the skill list


def test_an_admin_corrects_a_skill_name_and_removes_a_skill_nobody_uses(login, client, session):
    """An admin who typed a skill's name wrong, or added one by mistake, could do nothing about it: every
    volunteer picking skills saw it for good. Names change (the code stays: it is what shifts, dispatch and
    searches go by); a skill no volunteer, shift or service uses goes; one in use is a 409 saying what uses it."""
    admin = login("admin")
    assert admin.post("/api/v1/skills", json={"code": "sign_language", "name_zh": "手与",
                                              "name_en": "Sign langauge"}).status_code == 201
    fixed = admin.patch("/api/v1/skills/sign_language", json={"name_zh": "手语", "name_en": "Sign language"})
    assert fixed.status_code == 200, fixed.get_json()
    listed = {s["code"]: s for s in client.get("/api/v1/skills").get_json()}
    assert (listed["sign_language"]["name_zh"], listed["sign_language"]["name_en"]) == ("手语", "Sign language")
    assert_problem(login("planner").patch("/api/v1/skills/sign_language", json={"name_en": "x"}), 403)
    assert_problem(admin.patch("/api/v1/skills/sign_language", json={"code": "signing"}), 422)
    assert_problem(admin.patch("/api/v1/skills/no_such_skill", json={"name_en": "x"}), 404)

    in_use = assert_problem(admin.delete("/api/v1/skills/first_aid"), 409)
    assert "volunteer" in in_use["detail"]
    assert "first_aid" in {s["code"] for s in client.get("/api/v1/skills").get_json()}
    assert_problem(login("planner").delete("/api/v1/skills/sign_language"), 403)
    assert admin.delete("/api/v1/skills/sign_language").status_code == 204
    assert "sign_language" not in {s["code"] for s in client.get("/api/v1/skills").get_json()}


def test_an_admin_retires_a_skill_in_use_which_its_holders_keep_and_nobody_takes_up(login, client, session, clock):
    """A skill the park stopped asking for (epidemic checks, after the campaign) could not leave the list while a
    volunteer held it (DELETE is a 409), so every sign-up form kept offering it. Retired, it leaves the list (an
    admin may ask for the retired ones too); the volunteers and shifts holding it keep it, a profile or shift
    sent back whole with it is fine, and taking it up anew is a 422 that names it. Brought back, it is offered
    again."""
    admin = login("admin")
    vid = volunteer_id(session, "volunteer-011")
    me = login("volunteer-011")
    assert me.patch(f"/api/v1/volunteers/{vid}", json={"skills": ["epidemic_prevention"]}).status_code == 200
    other = volunteer_id(session, "volunteer-012")
    assert login("volunteer-012").patch(f"/api/v1/volunteers/{other}", json={"skills": ["first_aid"]}).status_code == 200
    shift = make_shift(admin, zone_id=zone_of(session, "G02").id, starts_at=clock() + timedelta(days=240),
                       skills=["epidemic_prevention"])

    retired = admin.patch("/api/v1/skills/epidemic_prevention", json={"retired": True})
    assert retired.status_code == 200, retired.get_json()
    assert retired.get_json()["retired_at"] is not None
    assert "epidemic_prevention" not in {s["code"] for s in client.get("/api/v1/skills").get_json()}
    every = {s["code"]: s for s in client.get("/api/v1/skills?include_retired=true").get_json()}
    assert every["epidemic_prevention"]["retired_at"] == retired.get_json()["retired_at"]
    assert every["first_aid"]["retired_at"] is None

    # held: kept, also when the whole list is sent back with another skill
    kept = me.patch(f"/api/v1/volunteers/{vid}", json={"skills": ["epidemic_prevention", "first_aid"]})
    assert kept.status_code == 200, kept.get_json()
    assert sorted(kept.get_json()["skills"]) == ["epidemic_prevention", "first_aid"]
    url = f"/api/v1/shifts/{shift['id']}"
    assert admin.patch(url, json={"required_skills": ["epidemic_prevention"], "title": "复查"}).status_code == 200
    # taken up anew: refused, naming it
    problem = assert_problem(login("volunteer-012").patch(f"/api/v1/volunteers/{other}",
                                                          json={"skills": ["epidemic_prevention"]}), 422)
    assert "retired skill: epidemic_prevention" in problem["errors"]["skills"]
    problem = assert_problem(admin.post("/api/v1/shifts", json={
        "title": "测温", "activity": "epidemic_checks", "zone_id": zone_of(session, "G02").id, "capacity": 2,
        "starts_at": (clock() + timedelta(days=241)).isoformat(), "ends_at": (clock() + timedelta(days=241, hours=2)).isoformat(),
        "required_skills": ["epidemic_prevention"]}), 422)
    assert "required_skills" in problem["errors"]
    # dropped by its holder, it cannot be taken back while retired
    assert me.patch(f"/api/v1/volunteers/{vid}", json={"skills": ["first_aid"]}).status_code == 200
    assert_problem(me.patch(f"/api/v1/volunteers/{vid}", json={"skills": ["epidemic_prevention"]}), 422)

    back = admin.patch("/api/v1/skills/epidemic_prevention", json={"retired": False})
    assert back.get_json()["retired_at"] is None
    assert "epidemic_prevention" in {s["code"] for s in client.get("/api/v1/skills").get_json()}
    assert me.patch(f"/api/v1/volunteers/{vid}", json={"skills": ["epidemic_prevention"]}).status_code == 200
    assert_problem(admin.patch("/api/v1/skills/epidemic_prevention", json={"retired": "soon"}), 422)


def test_two_registrations_with_one_national_id_at_once_register_one(committed_app, engine):
    """Two people (or a liaison and the volunteer) register with the same national volunteer ID at the same moment:
    the second waits for the first and gets the 409, and one volunteer holds the ID."""
    from gridsvc.models import User
    from gridsvc.services.volunteers import register
    from tests.api.test_volunteers import _unregister
    from tests.helpers import client_as, while_uncommitted

    with engine.connect() as conn:
        first, second = (conn.execute(select(User.id).where(User.username == name)).scalar()
                         for name in ("worker-008", "worker-009"))
    try:
        answer = while_uncommitted(
            engine, lambda own: register(own, user_id=first, real_name="周敏", phone="13912345670", skills=[],
                                         national_volunteer_id="ZJ-NB-RACE-1"),
            lambda: client_as(committed_app, "worker-009").post("/api/v1/volunteers", json={
                "real_name": "吴磊", "phone": "13912345671", "national_volunteer_id": "zj-nb-race-1"}))
        assert "national_volunteer_id" in assert_problem(answer, 409)["detail"]
        with engine.connect() as conn:
            holders = conn.execute(select(Volunteer.user_id).where(
                func.upper(Volunteer.national_volunteer_id) == "ZJ-NB-RACE-1")).scalars().all()
        assert holders == [first]
    finally:
        _unregister(engine, first)
        _unregister(engine, second)
