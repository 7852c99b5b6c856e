"""Review of the Idempotency-Key layer (gridsvc/idempotency.py) and of accounts: what a client sees when it
retries, when its account changed in between, when the database goes away, and in the OpenAPI document."""
from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from gridsvc.models import Community, Signup
from tests.api.volunteer_helpers import make_shift, volunteer_id, zone_of
from tests.helpers import assert_problem, client_as, community_body, delete_shifts, while_uncommitted


def _stored(session, key: str) -> int:
    return session.execute(text("SELECT count(*) FROM idempotent_request WHERE key = :key"), {"key": key}).scalar()


def test_a_key_holding_nul_is_a_422_and_changes_nothing(login, session):
    """A proxy or server that passes a NUL through in a header: PostgreSQL cannot store it (was a 500)."""
    admin = login("admin")
    before = session.scalar(select(func.count()).select_from(Community))
    problem = assert_problem(admin.post("/api/v1/communities", json=community_body(),
                                        headers={"Idempotency-Key": "retry\x00-1"}), 422)
    assert "Idempotency-Key" in problem["errors"]
    assert session.scalar(select(func.count()).select_from(Community)) == before


def test_the_document_keeps_the_query_parameters_of_keyed_writes(client):
    """The Idempotency-Key parameter was added as a list of its own, which replaced the view's parameters:
    a client generated from the document could not send ?dry_run= or ?cascade=."""
    paths = client.get("/api/openapi.json").get_json()["paths"]

    def parameters(path: str, method: str) -> list[str]:
        return [p.get("name") for p in paths[path][method].get("parameters", [])]

    assert parameters("/api/v1/parking/import", "post") == ["dry_run", "Idempotency-Key"]
    assert parameters("/api/v1/communities/{community_id}", "delete") == ["cascade", "Idempotency-Key"]
    # a DELETE reads no body, but its key can still be refused
    assert "422" in paths["/api/v1/zones/{zone_id}"]["delete"]["responses"]


def test_a_write_done_keeps_its_answer_when_the_database_is_lost_before_it_is_stored(committed_app, engine):
    """The sign-up was committed, then the connection that stores its answer was lost (a database restart):
    the volunteer must get the 201, not a 503 that says nothing was done (its retry would sign up again once
    the claim counts as abandoned)."""
    admin = client_as(committed_app, "admin")
    with Session(engine) as s:
        zone_id = zone_of(s, "G03").id
        vid = volunteer_id(s, "volunteer-058")
    shift = make_shift(admin, zone_id=zone_id, starts_at=datetime.now().astimezone() + timedelta(days=2))
    key = f"lost-{uuid.uuid4()}"
    url = f"/api/v1/shifts/{shift['id']}/signups"
    volunteer = client_as(committed_app, "volunteer-058")
    try:
        def lock_shift(own):  # the sign-up waits here, its key already claimed
            own.execute(text("SELECT 1 FROM shift WHERE id = :id FOR UPDATE"), {"id": shift["id"]})

        def lose_the_claims_connection(own):
            # the connection that claimed the key (its last statement names it) is ended, as a restart would
            pid = own.execute(text("SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND state = 'idle' AND query LIKE :claim"), {"claim": f"%{key}%"}).scalar_one()
            assert own.execute(text("SELECT pg_terminate_backend(:pid, 10000)"), {"pid": pid}).scalar()

        first = while_uncommitted(engine, lock_shift, lambda: volunteer.post(url, json={}, headers={"Idempotency-Key": key}),
                                  then=lose_the_claims_connection)
        assert first.status_code == 201, first.get_data(as_text=True)
        assert first.get_json()["status"] == "confirmed"
        # the answer could not be stored: a copy is told to wait, and does not sign up a second time
        assert_problem(volunteer.post(url, json={}, headers={"Idempotency-Key": key}), 409, "request-in-progress")
        with Session(engine) as s:
            assert s.scalar(select(func.count()).where(Signup.shift_id == shift["id"], Signup.volunteer_id == vid)) == 1
    finally:
        delete_shifts(engine, shift["id"])
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM idempotent_request WHERE key = :key"), {"key": key})


# ------------------------------------------------------------------ what already holds (kept by these tests)


def test_a_replayed_create_and_delete_answer_byte_for_byte(login, session):
    admin = login("admin")
    key = {"Idempotency-Key": "community-1"}
    created = admin.post("/api/v1/communities", json=community_body(), headers=key)
    again = admin.post("/api/v1/communities", json=community_body(), headers=key)
    assert (again.status_code, again.get_data(), again.headers["Location"], again.headers["Content-Type"]) \
        == (201, created.get_data(), created.headers["Location"], created.headers["Content-Type"])
    assert again.headers["Idempotent-Replayed"] == "true"
    community_id = created.get_json()["id"]
    url, key = f"/api/v1/communities/{community_id}", {"Idempotency-Key": "community-1-gone"}
    deleted = admin.delete(url, headers=key)
    replayed = admin.delete(url, headers=key)
    assert (deleted.status_code, replayed.status_code, replayed.get_data()) == (204, 204, b"")
    assert replayed.headers["Idempotent-Replayed"] == "true"
    # the query string is part of the request: the same key with ?cascade=true is another request
    assert_problem(admin.delete(url + "?cascade=true", headers=key), 422)


def test_a_retry_is_judged_by_the_account_as_it_is_now(login, session):
    """A replay is no way around a role removed, an account disabled or a token revoked since."""
    admin = login("admin")
    planner = login("planner")
    planner_id = planner.get("/api/v1/me").get_json()["id"]
    zone = zone_of(session, "G05")
    url, key = f"/api/v1/zones/{zone.id}", {"Idempotency-Key": "rename-g05"}
    body = {"properties": {"name": "第五网格 东区"}}
    assert planner.patch(url, json=body, headers=key).status_code == 200
    assert admin.patch(f"/api/v1/users/{planner_id}", json={"roles": ["volunteer"]}).status_code == 200
    assert_problem(planner.patch(url, json=body, headers=key), 403)
    assert admin.patch(f"/api/v1/users/{planner_id}", json={"roles": ["planner"], "disabled": True}).status_code == 200
    assert_problem(planner.patch(url, json=body, headers=key), 401)


def test_a_refused_body_claims_no_key(login, session):
    admin = login("admin")
    answer = admin.post("/api/v1/communities", data=b"--x\r\n\r\nname\r\n--x--", headers={"Idempotency-Key": "form-1"},
                        content_type="multipart/form-data; boundary=x")
    assert_problem(answer, 415)
    assert _stored(session, "form-1") == 0
