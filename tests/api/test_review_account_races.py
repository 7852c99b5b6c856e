"""Races between a change of account and its volunteer's check-in, found in review (each test failed before
its fix). Every test commits for real (two connections race) and cleans up after itself.
"""
from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from gridsvc.models import User, Volunteer
from gridsvc.services import accounts as account_service
from gridsvc.services import checks
from gridsvc.services.requests import DispatchPolicy
from tests.api.volunteer_helpers import make_shift, zone_center, zone_of
from tests.helpers import client_as, delete_shifts, duty_restored, while_uncommitted


def _volunteer(engine, username: str) -> tuple[int, int, int]:
    """(volunteer id, user id, token version) of a demo volunteer account."""
    with engine.connect() as conn:
        return tuple(conn.execute(select(Volunteer.id, User.id, User.token_version)
                                  .join(User, User.id == Volunteer.user_id).where(User.username == username)).one())


def _shift_soon(committed_app, engine, clock, username: str):
    """A G06 shift starting in 5 minutes (committed; the caller deletes it), and the volunteer's client, ids and
    token version, and where to check in."""
    admin = client_as(committed_app, "admin")
    with Session(engine) as s:
        zone_id = zone_of(s, "G06").id
    shift = make_shift(admin, zone_id=zone_id, starts_at=clock() + timedelta(minutes=5), capacity=3)
    return client_as(committed_app, username), _volunteer(engine, username), zone_center(admin, zone_id), shift


def _restore_account(engine, user_id: int, token_version: int) -> None:
    with engine.begin() as conn:
        conn.execute(User.__table__.update().where(User.id == user_id).values(disabled=False,
                                                                              token_version=token_version))


def test_a_check_in_sent_while_the_admin_disables_the_account_does_not_put_it_on_duty(committed_app, engine, clock):
    """V's shift began 10 minutes ago. The admin disables V's account (PATCH /users/{id}: the account, then V's
    row locked, V's places released, V taken off duty) while V's phone checks in. The check-in waits for V's row,
    then judges the account as it read it before the wait (enabled, the old token): it is accepted, and the
    disabled account is on duty (on the liaison's map, its hours counting) until the shift ends. The check-in
    must be refused (401: the account is disabled), or at least leave V off duty."""
    v, (v_id, user_id, token_version), here, shift = _shift_soon(committed_app, engine, clock, "volunteer-031")
    try:
        with duty_restored(engine, v_id):
            assert v.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
            clock.advance(minutes=15)

            def disable(own):
                account_service.update_user(own, user_id, {"disabled": True}, check_policy=checks.CheckPolicy(),
                                            dispatch_policy=DispatchPolicy())

            answer = while_uncommitted(engine, disable, lambda: v.post(
                f"/api/v1/shifts/{shift['id']}/check-in", json={"lon": here[0], "lat": here[1], "accuracy_m": 10},
                headers={"Idempotency-Key": "r2-disabled-in"}))
            with engine.connect() as conn:
                disabled, on_duty = conn.execute(select(User.disabled, Volunteer.on_duty_shift_id)
                                                 .join(Volunteer, Volunteer.user_id == User.id)
                                                 .where(User.id == user_id)).one()
            assert disabled is True
            assert on_duty is None, (f"the disabled account is on duty for shift {on_duty}; the check-in was answered "
                                     f"{answer.status_code} {answer.get_json()}")
    finally:
        delete_shifts(engine, shift["id"])
        _restore_account(engine, user_id, token_version)


def test_disabling_an_account_while_its_volunteer_checks_in_is_not_a_deadlock(committed_app, engine, clock):
    """V's shift began 10 minutes ago and V checks in (gridsvc_check: V's row locked first, then V's row updated,
    its updated_by_id set to V's own account: the foreign key takes a KEY SHARE lock on V's app_user row) while
    the admin disables V's account (update_user: the app_user row locked FOR UPDATE first, then V's row to
    release V's places). Opposite orders, and FOR UPDATE conflicts with KEY SHARE: PostgreSQL finds a deadlock
    and undoes one of two ordinary requests (the admin is told 409 concurrent-update, or the check-in fails).
    Either serial order is fine (checked in, then taken off duty by the disabling; or disabled, and the check-in
    refused); a deadlock is not."""
    from gridsvc.resources.shifts import check_request
    from gridsvc.schemas.common import geopoint

    admin = client_as(committed_app, "admin")
    v, (v_id, user_id, token_version), here, shift = _shift_soon(committed_app, engine, clock, "volunteer-032")
    failures, updated_by = [], None
    try:
        with duty_restored(engine, v_id):
            assert v.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
            with engine.begin() as conn:  # V's first check-in (the profile was last changed by someone else)
                updated_by = conn.execute(select(Volunteer.updated_by_id).where(Volunteer.id == v_id)).scalar()
                conn.execute(Volunteer.__table__.update().where(Volunteer.id == v_id).values(updated_by_id=None))
            clock.advance(minutes=15)
            request = check_request(shift["id"], "check_in", {"point": geopoint(*here, "wgs84"), "accuracy_m": 10},
                                    "r2-deadlock-in")

            def check_in_starts(own):  # gridsvc_check's first step: V's row, locked
                own.info["actor_id"] = user_id  # (as the check-in view and its fast path pass it)
                own.execute(text("SELECT FROM volunteer WHERE id = :v FOR NO KEY UPDATE"), {"v": v_id})

            def check_in_goes_on(own):  # ... and the rest of the same statement
                try:
                    outcome = checks.check(own, user_id, request, now=clock(),
                                           policy=checks.CheckPolicy.of_app(committed_app))
                    assert outcome.status == 201, outcome.body_json
                except Exception as exc:  # noqa: BLE001
                    failures.append(f"the check-in failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                    own.rollback()

            answer = while_uncommitted(engine, check_in_starts,
                                       lambda: admin.patch(f"/api/v1/users/{user_id}", json={"disabled": True}),
                                       then=check_in_goes_on)
            if answer.status_code != 200:
                failures.append(f"the disabling was answered {answer.status_code} {answer.get_json()}")
            assert not failures, failures
    finally:
        delete_shifts(engine, shift["id"])
        _restore_account(engine, user_id, token_version)
        with engine.begin() as conn:
            conn.execute(Volunteer.__table__.update().where(Volunteer.id == v_id).values(updated_by_id=updated_by))
