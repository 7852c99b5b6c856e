"""Idempotency-Key on signed-in writes (gridsvc/idempotency.py): a phone that lost the answer sends the request
again, and gets the first answer instead of a second effect or a confusing refusal."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from gridsvc.models import RequestEvent, Signup, VolunteerPosition
from gridsvc.seed import DEFAULT_DEMO_PASSWORD
from tests.api.volunteer_helpers import make_shift, volunteer_id, zone_center, zone_of
from tests.helpers import assert_problem, client_as, delete_shifts, while_uncommitted


def _shift(login, session, clock, **kwargs) -> dict:
    return make_shift(login("admin"), zone_id=zone_of(session, "G01").id, starts_at=clock() + timedelta(days=1), **kwargs)


def _signups(session, shift_id: int) -> list[tuple[int, str]]:
    session.expire_all()
    return session.execute(select(Signup.volunteer_id, Signup.status).where(Signup.shift_id == shift_id)
                           .order_by(Signup.id)).all()


def test_a_retried_sign_up_gets_its_first_answer_and_signs_up_once(login, session, clock):
    shift = _shift(login, session, clock, capacity=1)
    volunteer = login("volunteer-001")
    first = volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={}, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 201 and first.get_json()["status"] == "confirmed"
    again = volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={}, headers={"Idempotency-Key": "k-1"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json() == first.get_json() and again.headers["Content-Type"] == first.headers["Content-Type"]
    assert "Idempotent-Replayed" not in first.headers
    assert _signups(session, shift["id"]) == [(volunteer_id(session, "volunteer-001"), "confirmed")]
    # without a key, a second sign-up is refused as before
    problem = assert_problem(volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={}), 409)
    assert problem["reason"] == "already_signed_up"


def test_a_retried_withdrawal_answers_as_the_first_and_promotes_nobody_else(login, session, clock):
    shift = _shift(login, session, clock, capacity=1)
    for username in ("volunteer-001", "volunteer-002", "volunteer-003"):
        login(username).post(f"/api/v1/shifts/{shift['id']}/signups", json={})
    first_id = volunteer_id(session, "volunteer-001")
    url = f"/api/v1/shifts/{shift['id']}/signups/{first_id}"
    first = login("volunteer-001").delete(url, headers={"Idempotency-Key": "withdraw-1"})
    assert first.status_code == 200
    assert first.get_json()["promoted"] == []  # (volunteer-002 moved up: their record, checked below)
    again = login("volunteer-001").delete(url, headers={"Idempotency-Key": "withdraw-1"})
    assert (again.status_code, again.get_json()) == (200, first.get_json())  # not a 404 "no sign-up"
    statuses = dict(_signups(session, shift["id"]))
    assert (statuses[volunteer_id(session, "volunteer-002")], statuses[volunteer_id(session, "volunteer-003")]) \
        == ("confirmed", "waitlisted")


def test_a_retried_position_fix_is_recorded_once_and_the_key_is_free_again_after_24_hours(login, session, clock):
    vid = volunteer_id(session, "volunteer-001")
    volunteer = login("volunteer-001")

    def history() -> int:
        return session.scalar(select(func.count()).where(VolunteerPosition.volunteer_id == vid))

    before = history()
    body = {"lon": 121.781, "lat": 29.871, "accuracy_m": 12}
    assert volunteer.post("/api/v1/me/location", json=body, headers={"Idempotency-Key": "fix-1"}).status_code == 201
    clock.advance(hours=1)
    again = volunteer.post("/api/v1/me/location", json=body, headers={"Idempotency-Key": "fix-1"})
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert history() == before + 1
    clock.advance(hours=24)  # the stored answer has expired: the same key is a new request
    later = volunteer.post("/api/v1/me/location", json=body, headers={"Idempotency-Key": "fix-1"})
    assert later.status_code == 201 and "Idempotent-Replayed" not in later.headers
    assert history() == before + 2


def test_the_same_key_for_another_request_is_422_and_does_nothing(login, session, clock):
    one, other = _shift(login, session, clock), _shift(login, session, clock, title="南门垃圾分类")
    volunteer = login("volunteer-001")
    assert volunteer.post(f"/api/v1/shifts/{one['id']}/signups", json={},
                          headers={"Idempotency-Key": "k-2"}).status_code == 201
    problem = assert_problem(volunteer.post(f"/api/v1/shifts/{other['id']}/signups", json={},
                                            headers={"Idempotency-Key": "k-2"}), 422)
    assert problem["errors"]["Idempotency-Key"] and f"/shifts/{one['id']}/signups" in problem["detail"]
    assert _signups(session, other["id"]) == []
    # another body on the same path is another request too
    assert volunteer.post("/api/v1/me/location", json={"lon": 121.78, "lat": 29.87},
                          headers={"Idempotency-Key": "k-3"}).status_code == 201
    assert_problem(volunteer.post("/api/v1/me/location", json={"lon": 121.79, "lat": 29.87},
                                  headers={"Idempotency-Key": "k-3"}), 422)


def test_a_refused_request_is_not_stored_and_runs_again_when_retried(login, session, clock):
    shift = _shift(login, session, clock, skills=["first_aid"])
    volunteer = login("volunteer-001")
    url, key = f"/api/v1/shifts/{shift['id']}/signups", {"Idempotency-Key": "k-4"}
    assert assert_problem(volunteer.post(url, json={}, headers=key), 409)["reason"] == "missing_skill"
    vid = volunteer_id(session, "volunteer-001")
    skills = login("volunteer-001").get(f"/api/v1/volunteers/{vid}").get_json()["skills"]
    assert login("admin").patch(f"/api/v1/volunteers/{vid}", json={"skills": [*skills, "first_aid"]}).status_code == 200
    again = volunteer.post(url, json={}, headers=key)
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert again.get_json()["status"] == "confirmed"


def test_keys_belong_to_their_account(login, session, clock):
    shift = _shift(login, session, clock, capacity=2)
    for username in ("volunteer-001", "volunteer-002"):
        answer = login(username).post(f"/api/v1/shifts/{shift['id']}/signups", json={},
                                      headers={"Idempotency-Key": "same-key"})
        assert answer.status_code == 201 and "Idempotent-Replayed" not in answer.headers
    assert len(_signups(session, shift["id"])) == 2


def test_a_retried_comment_is_written_once(login, session):
    worker = login("worker-001")
    here = zone_center(login("admin"), zone_of(session, "G03").id)
    created = worker.post("/api/v1/requests", json={"service_code": "parking", "description": "车挡住了消防通道",
                                                    "lon": here[0], "lat": here[1],
                                                    "attributes": {"problem": "no_space"}})
    assert created.status_code == 201, created.get_json()
    request_id = created.get_json()["id"]
    url, key = f"/api/v1/requests/{request_id}/comment", {"Idempotency-Key": "comment-1"}
    first = worker.post(url, json={"note": "还在等"}, headers=key)
    assert first.status_code == 200, first.get_json()
    again = worker.post(url, json={"note": "还在等"}, headers=key)
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    comments = session.scalar(select(func.count()).where(RequestEvent.request_id == request_id,
                                                         RequestEvent.action == "comment"))
    assert comments == 1


def test_a_bad_key_is_422_and_changes_nothing(login, session, clock):
    shift = _shift(login, session, clock)
    volunteer = login("volunteer-001")
    for key in ("", "k" * 101):
        problem = assert_problem(volunteer.post(f"/api/v1/shifts/{shift['id']}/signups", json={},
                                                headers={"Idempotency-Key": key}), 422)
        assert "Idempotency-Key" in problem["errors"]
    assert _signups(session, shift["id"]) == []


def test_sign_in_is_never_stored(client, session):
    body = {"username": "volunteer-001", "password": DEFAULT_DEMO_PASSWORD}
    for _ in range(2):  # each sign-in gives new tokens, none stored
        token = client.post("/api/v1/auth/token", json=body, headers={"Idempotency-Key": "login-1"})
        assert token.status_code == 200 and "Idempotent-Replayed" not in token.headers
    assert session.execute(text("SELECT count(*) FROM idempotent_request WHERE key = 'login-1'")).scalar() == 0


def test_the_document_offers_the_key_on_writes_but_not_on_sign_in(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]

    def keys(path: str, method: str) -> int:
        return [p.get("name") for p in paths[path][method].get("parameters", [])].count("Idempotency-Key")

    assert keys("/api/v1/shifts/{shift_id}/signups", "post") == 1
    assert keys("/api/v1/shifts/{shift_id}/signups/{volunteer_id}", "delete") == 1
    assert keys("/api/v1/me/location", "post") == 1
    assert keys("/api/v1/shifts/{shift_id}/check-in", "post") == 1  # its own, documented once
    assert keys("/api/v1/auth/token", "post") == keys("/api/v1/auth/refresh", "post") == 0


# ------------------------------------------------------------------ two copies at once (real connections)


def _a_copy_while_the_first_waits(committed_app, engine, *, zone_code: str, username: str, key: str, starts_at,
                                  before_the_copy=lambda: None) -> dict:
    """A sign-up with ``key`` waits for the shift's lock (a liaison editing the shift); meanwhile, after
    ``before_the_copy()``, a copy with the same key is sent; then the lock goes, and a retry follows. The three
    answers, and how many places the volunteer holds in the end."""
    admin = client_as(committed_app, "admin")
    with Session(engine) as s:
        zone_id, vid = zone_of(s, zone_code).id, volunteer_id(s, username)
    shift = make_shift(admin, zone_id=zone_id, starts_at=starts_at, capacity=3)
    url, headers = f"/api/v1/shifts/{shift['id']}/signups", {"Idempotency-Key": key}
    volunteer = client_as(committed_app, username)
    copies = []
    try:
        def lock_shift(own):
            own.execute(text("SELECT 1 FROM shift WHERE id = :id FOR UPDATE"), {"id": shift["id"]})

        def copy_meanwhile(_own):
            before_the_copy()
            # in a thread: a copy that waited for the lock as well (a second run) must fail the test, not hang it
            copy = threading.Thread(target=lambda: copies.append(volunteer.post(url, json={}, headers=headers)))
            copy.start()
            copy.join(5)
            assert copies, "the copy ran the sign-up a second time (it waited for the shift's lock)"

        first = while_uncommitted(engine, lock_shift, lambda: volunteer.post(url, json={}, headers=headers),
                                  then=copy_meanwhile)
        retry = volunteer.post(url, json={}, headers=headers)
        with Session(engine) as s:
            places = s.scalar(select(func.count()).where(Signup.shift_id == shift["id"], Signup.volunteer_id == vid))
        return {"first": first, "copy": copies[0], "retry": retry, "places": places}
    finally:
        delete_shifts(engine, shift["id"])
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM idempotent_request WHERE key = :key"), {"key": key})


def test_a_copy_sent_while_the_first_is_answered_waits_its_turn(committed_app, engine):
    """The first sign-up waits for a lock (a liaison editing the shift); its copy, sent meanwhile with the same
    key, must not sign up a second time: it is told to retry (409 request-in-progress, Retry-After), and the
    retry after the first finished gets the first answer."""
    race = _a_copy_while_the_first_waits(committed_app, engine, zone_code="G02", username="volunteer-057",
                                         key="race-1", starts_at=datetime.now().astimezone() + timedelta(days=2))
    first = race["first"]
    assert first.status_code == 201 and first.get_json()["status"] == "confirmed"
    problem = assert_problem(race["copy"], 409, "request-in-progress")
    assert race["copy"].headers["Retry-After"] == "1" and "Idempotency-Key" in problem["detail"]
    assert (race["retry"].status_code, race["retry"].get_json()) == (201, first.get_json())
    assert race["places"] == 1


def test_a_first_request_still_running_after_a_minute_is_not_run_again(committed_app, engine, clock):
    """The sign-up waits over a minute for a lock (a gthread worker has no request timeout); its copy, sent then,
    must not take the claim over as abandoned: it ran the sign-up again (409 already_signed_up), the first
    answer was never stored, and every later retry got that 409."""
    race = _a_copy_while_the_first_waits(committed_app, engine, zone_code="G02", username="volunteer-056",
                                         key="slow-1", starts_at=clock() + timedelta(days=2),
                                         before_the_copy=lambda: clock.advance(seconds=61))
    first = race["first"]
    assert first.status_code == 201 and first.get_json()["status"] == "confirmed"
    assert_problem(race["copy"], 409, "request-in-progress")
    assert (race["retry"].status_code, race["retry"].get_json()) == (201, first.get_json())
    assert race["retry"].headers["Idempotent-Replayed"] == "true"
    assert race["places"] == 1


def test_a_claim_left_by_a_dead_worker_is_taken_over_after_a_minute(login, session, clock):
    """The worker died after claiming the key, before its sign-up committed: the claim stays unanswered, and
    no connection holds its lock. A retry within the minute waits; one after it signs up."""
    shift = _shift(login, session, clock)
    url, key = f"/api/v1/shifts/{shift['id']}/signups", {"Idempotency-Key": "dead-1"}
    volunteer = login("volunteer-001")
    first = volunteer.post(url, json={}, headers=key)
    assert first.status_code == 201
    # as the dead worker left it: claimed, unanswered, its sign-up never committed
    session.execute(text("UPDATE idempotent_request SET status_code = NULL, headers = NULL, body = NULL "
                         "WHERE key = 'dead-1'"))
    session.execute(text("DELETE FROM signup WHERE shift_id = :id"), {"id": shift["id"]})
    clock.advance(seconds=30)
    assert_problem(volunteer.post(url, json={}, headers=key), 409, "request-in-progress")
    assert _signups(session, shift["id"]) == []
    clock.advance(seconds=31)
    again = volunteer.post(url, json={}, headers=key)
    assert again.status_code == 201 and "Idempotent-Replayed" not in again.headers
    assert _signups(session, shift["id"]) == [(volunteer_id(session, "volunteer-001"), "confirmed")]
    replay = volunteer.post(url, json={}, headers=key)
    assert (replay.headers["Idempotent-Replayed"], replay.get_json()) == ("true", again.get_json())
