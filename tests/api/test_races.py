"""Races between requests that touch volunteers, shifts and hours (found in review; each test failed before its
fix). Each makes one interleaving deterministic (``while_uncommitted``) and asserts what a user would see.

Every test here commits for real (two connections race), so each cleans up after itself.
"""
from __future__ import annotations

import threading
from datetime import datetime, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from gridsvc.models import ServiceHours, ServiceRequest, Shift, Signup, Skill, User, Volunteer
from gridsvc.services import checks
from gridsvc.services import shifts as shift_service
from gridsvc.services import volunteers as volunteer_service
from tests.api.volunteer_helpers import make_shift, zone_center, zone_of
from tests.helpers import client_as, delete_shifts, duty_restored, offset, wait_for_lock_waits, while_uncommitted

EVERY_FIX = volunteer_service.HistoryThinning(seconds=0, metres=0)  # these races are about locks, not thinning


# ------------------------------------------------------------------ helpers


def _volunteer(engine, username: str) -> tuple[int, int]:
    """(volunteer id, user id) of a demo volunteer account."""
    with engine.connect() as conn:
        return tuple(conn.execute(select(Volunteer.id, User.id).join(User, User.id == Volunteer.user_id)
                                  .where(User.username == username)).one())


# ------------------------------------------------------------------ hours: a decision overwritten


def test_a_late_offline_check_out_does_not_overwrite_a_decline_made_meanwhile(committed_app, engine, clock):
    """V checked in online, checked out offline a minute before the end and uploaded it 3 h later; meanwhile the
    check-in was closed as a missing check-out. While the upload is judged, the liaison declines those pending
    hours. Both answer success: the liaison is told "declined", and the upload then rewrites the same entry as
    "approved" (flag cleared) over the decision. A decision is final: the entry must stay declined (or the
    decline must be refused); it may not silently become approved."""
    admin = client_as(committed_app, "admin")
    volunteer, user_id = _volunteer(engine, "volunteer-058")
    with Session(engine) as s:
        zone_id = zone_of(s, "G01").id
    center = zone_center(admin, zone_id)
    shift = make_shift(admin, zone_id=zone_id, starts_at=clock() + timedelta(minutes=10), hours=1)
    v = client_as(committed_app, "volunteer-058")
    try:
        with duty_restored(engine, volunteer):
            assert v.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
            checked_in = v.post(f"/api/v1/shifts/{shift['id']}/check-in",
                                json={"lon": center[0], "lat": center[1], "accuracy_m": 10},
                                headers={"Idempotency-Key": "zz-late-in"})
            assert checked_in.status_code == 201, checked_in.get_json()
            end = datetime.fromisoformat(shift["ends_at"])
            clock.current = end + timedelta(hours=3)
            with Session(engine) as s:  # as `gridsvc tick` does
                checks.close_overdue(s, now=clock(), policy=checks.CheckPolicy.of_app(committed_app))
                s.commit()
                entry_id, status, reason = s.execute(select(ServiceHours.id, ServiceHours.status, ServiceHours.flag_reason)
                                                     .where(ServiceHours.volunteer_id == volunteer,
                                                            ServiceHours.shift_id == shift["id"])).one()
            assert (status, reason) == ("pending", "missing_check_out")

            def decline(own):
                checks.review(own, entry_id, approve=False, note="没有签退，不予认定", reviewer_id=None, now=clock())

            late = {"shift_id": shift["id"], "kind": "check_out", "client_time": (end - timedelta(minutes=1)).isoformat(),
                    "lon": center[0], "lat": center[1], "crs": "wgs84", "accuracy_m": 15, "idempotency_key": "zz-late-out"}
            answer = while_uncommitted(engine, decline, lambda: v.post("/api/v1/me/check-events", json={"events": [late]}))
            assert answer.status_code == 200, answer.get_json()
            with engine.connect() as conn:
                final = conn.execute(select(ServiceHours.status).where(ServiceHours.id == entry_id)).scalar()
            # the liaison was told "declined"; the entry says otherwise
            assert final == "declined", f"the liaison's decline was overwritten: the entry is now {final!r}"
    finally:
        delete_shifts(engine, shift["id"])


# ------------------------------------------------------------------ positions: a fresh fix wiped by purge


def test_purge_does_not_wipe_a_position_reported_while_it_runs(committed_app, engine, clock):
    """`gridsvc purge` reads the volunteers whose last known position is older than the retention period, then
    clears it. A volunteer reporting a fresh position at that moment (POST /me/location, or a check-in) commits
    between the two: the purge then clears the fresh position, and dispatch no longer finds them."""
    volunteer, user_id = _volunteer(engine, "volunteer-059")
    with duty_restored(engine, volunteer):
        with engine.begin() as conn:  # last seen ten days ago: stale
            conn.execute(Volunteer.__table__.update().where(Volunteer.id == volunteer).values(
                last_position=func.ST_GeomFromEWKT("SRID=4326;POINT(121.78 29.87)"),
                last_position_at=clock() - timedelta(days=10), last_accuracy_m=10))

        def report(own):
            me = volunteer_service.require_volunteer_of_user(own, user_id, for_update=True)  # as the view does
            volunteer_service.record_position(own, me, lon=121.781, lat=29.871, crs="wgs84", accuracy_m=8, at=clock(),
                                              thinning=EVERY_FIX)

        def purge():
            with Session(engine) as s:  # as `gridsvc purge` does
                volunteer_service.purge_positions(s, retention_days=7, now=clock())
                s.commit()

        while_uncommitted(engine, report, purge)
        with engine.connect() as conn:
            at, has_point = conn.execute(select(Volunteer.last_position_at, Volunteer.last_position.is_not(None))
                                         .where(Volunteer.id == volunteer)).one()
        assert at == clock() and has_point, "the position reported just now was wiped by the purge"


# ------------------------------------------------------------------ dispatch: the nearest volunteer skipped


def test_dispatch_does_not_skip_the_nearest_volunteer_because_they_report_a_position(committed_app, engine, clock):
    """The only on-duty traffic volunteer stands 100 m from a parking request. Their phone reports its position
    (POST /me/location holds their row for its transaction) at the moment the request is filed: dispatch's
    `FOR UPDATE SKIP LOCKED` on the volunteer's row skipped them as if another dispatch were offering them
    something, and the request went to the liaison as "no volunteer available"."""
    volunteer, user_id = _volunteer(engine, "volunteer-060")
    with Session(engine) as s:
        zone = zone_of(s, "G07")
        zone_id, community_id = zone.id, zone.community_id
    here = zone_center(client_as(committed_app, "admin"), zone_id)
    created, shift_id, had_skill = None, None, True
    with duty_restored(engine, volunteer):  # duty and position as they were, afterwards
        try:
            with Session(engine) as s:
                shift = Shift(community_id=community_id, zone_id=zone_id, title="on call", activity="traffic_guidance",
                              starts_at=clock() - timedelta(minutes=30), ends_at=clock() + timedelta(hours=3),
                              capacity=50)
                s.add(shift)
                s.flush()
                shift_id = shift.id
                v = s.get(Volunteer, volunteer)
                had_skill = "traffic_parking" in v.skill_codes
                if not had_skill:
                    v.skills = [*v.skills, s.get(Skill, "traffic_parking")]
                v.on_duty_shift_id = shift_id
                v.last_position = "SRID=4326;POINT({} {})".format(*offset(*here, 100, 0))
                v.last_position_at = clock()
                s.commit()
            # nobody else on duty nearby with the skill (the demo has nobody on duty)
            with engine.connect() as conn:
                others = conn.execute(select(func.count()).select_from(Volunteer)
                                      .where(Volunteer.on_duty_shift_id.is_not(None), Volunteer.id != volunteer)).scalar()
            assert others == 0
            worker = client_as(committed_app, "worker-003")

            def report(own):
                me = volunteer_service.require_volunteer_of_user(own, user_id, for_update=True)  # as the view does
                lon, lat = offset(*here, 90, 0)
                volunteer_service.record_position(own, me, lon=lon, lat=lat, crs="wgs84", accuracy_m=8, at=clock(),
                                                  thinning=EVERY_FIX)

            answer = while_uncommitted(engine, report, lambda: worker.post("/api/v1/requests", json={
                "service_code": "parking", "description": "北门找不到车位", "lon": here[0], "lat": here[1],
                "attributes": {"problem": "no_space"}}))
            assert answer.status_code == 201, answer.get_json()
            created = answer.get_json()["id"]
            assert answer.get_json()["status"] == "offered", (
                f"the request went {answer.get_json()['status']!r} though volunteer {volunteer} was on duty 100 m away")
            assert answer.get_json()["offer"]["volunteer_id"] == volunteer
        finally:
            with engine.begin() as conn:
                if created:
                    conn.execute(ServiceRequest.__table__.delete().where(ServiceRequest.id == created))
                if not had_skill:
                    conn.execute(text("DELETE FROM volunteer_skill WHERE volunteer_id = :v "
                                      "AND skill_code = 'traffic_parking'"), {"v": volunteer})
                conn.execute(Volunteer.__table__.update().where(Volunteer.id == volunteer).values(on_duty_shift_id=None))
            if shift_id is not None:
                delete_shifts(engine, shift_id)


# ------------------------------------------------------------------ shifts: a cancellation meets a check-in


def test_cancelling_a_shift_while_a_volunteer_checks_in_is_not_a_deadlock(committed_app, engine, clock):
    """20 minutes before the start an admin cancels the shift (DELETE /shifts/{id}: locks the shift, then each
    confirmed volunteer) while a confirmed volunteer checks in (gridsvc_check: locks the volunteer, then writes
    the event, whose foreign key needs a share lock on the shift). The locks are taken in opposite orders:
    PostgreSQL finds a deadlock and undoes one of them, answered 409 concurrent-update. Either outcome of a
    serial order is fine (cancelled and the check-in refused, or checked in and the cancellation refused as
    begun); a deadlock is not."""
    from gridsvc.resources.shifts import check_request
    from gridsvc.schemas.common import geopoint

    admin = client_as(committed_app, "admin")
    volunteer, user_id = _volunteer(engine, "volunteer-057")
    with Session(engine) as s:
        zone_id = zone_of(s, "G02").id
    here = zone_center(admin, zone_id)
    shift = make_shift(admin, zone_id=zone_id, starts_at=clock() + timedelta(minutes=20), capacity=3)
    failures = []
    try:
        with duty_restored(engine, volunteer):
            v = client_as(committed_app, "volunteer-057")
            assert v.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
            request = check_request(shift["id"], "check_in", {"point": geopoint(*here, "wgs84"), "accuracy_m": 10},
                                    "zz-deadlock-in")

            def check_in_starts(own):  # gridsvc_check's first statement: the volunteer's row, locked
                own.execute(text("SELECT FROM volunteer WHERE id = :v FOR NO KEY UPDATE"), {"v": volunteer})

            def check_in_goes_on(own):  # ... and the rest of the same statement
                try:
                    checks.check(own, user_id, request, now=clock(), policy=checks.CheckPolicy.of_app(committed_app))
                except Exception as exc:  # noqa: BLE001
                    failures.append(f"the check-in failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                    own.rollback()

            answer = while_uncommitted(engine, check_in_starts, lambda: admin.delete(f"/api/v1/shifts/{shift['id']}"),
                          then=check_in_goes_on)
            if answer.status_code == 409 and answer.get_json()["type"].endswith("concurrent-update"):
                failures.append("the cancellation was answered 409 concurrent-update (a deadlock victim)")
            assert not failures, failures
    finally:
        delete_shifts(engine, shift["id"])


def test_two_withdrawals_from_one_shift_at_once_are_not_a_deadlock(committed_app, engine, clock):
    """A full shift: X confirmed, W first on the waitlist. X withdraws (cancel_signup: X's row, the shift, then
    the promotion locks W's row) while W withdraws from the waitlist (cancel_signup: W's row, then the shift).
    Opposite lock orders: a deadlock, and one of two ordinary withdrawals is answered 409 concurrent-update."""
    admin = client_as(committed_app, "admin")
    x_id, _ = _volunteer(engine, "volunteer-055")
    w_id, _ = _volunteer(engine, "volunteer-056")
    with Session(engine) as s:
        zone_id = zone_of(s, "G04").id
    shift = make_shift(admin, zone_id=zone_id, starts_at=clock() + timedelta(days=9), capacity=1)
    x, w = client_as(committed_app, "volunteer-055"), client_as(committed_app, "volunteer-056")
    failures = []
    try:
        assert x.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
        assert w.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "waitlisted"

        def w_starts(own):  # cancel_signup's first statement: W's row, locked
            shift_service.get_volunteer(own, w_id, for_update=True)

        def w_goes_on(own):  # ... and the rest of W's withdrawal
            try:
                shift_service.cancel_signup(own, shift["id"], w_id, now=clock())
            except Exception as exc:  # noqa: BLE001
                failures.append(f"W's withdrawal failed: {type(exc).__name__}: {str(exc).splitlines()[0]}")
                own.rollback()

        answer = while_uncommitted(engine, w_starts, lambda: x.delete(f"/api/v1/shifts/{shift['id']}/signups/{x_id}"), then=w_goes_on)
        if answer.status_code != 200:
            failures.append(f"X's withdrawal was answered {answer.status_code} {answer.get_json().get('type')}")
        assert not failures, failures
        with engine.connect() as conn:
            assert sorted(conn.execute(select(Signup.status).where(Signup.shift_id == shift["id"])).scalars()) == [
                "cancelled", "cancelled"]
    finally:
        delete_shifts(engine, shift["id"])


# ------------------------------------------------------------------ shifts: not a race, found on the way


def test_moving_a_shift_and_changing_its_capacity_in_one_patch(login, session, clock):
    """PATCH with new times *and* a new capacity: update_shift reuses `confirmed` (the locked volunteer ids from
    the reschedule) for the count of confirmed sign-ups, then passes that int to _promote_where_freed: a 500."""
    admin = login("admin")
    shift = make_shift(admin, zone_id=zone_of(session, "G03").id, starts_at=clock() + timedelta(days=3), capacity=2)
    assert login("volunteer-056").post(f"/api/v1/shifts/{shift['id']}/signups", json={}).get_json()["status"] == "confirmed"
    later = datetime.fromisoformat(shift["starts_at"]) + timedelta(hours=1)
    answer = admin.patch(f"/api/v1/shifts/{shift['id']}", json={
        "starts_at": later.isoformat(), "ends_at": (later + timedelta(hours=2)).isoformat(), "capacity": 4})
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    assert answer.get_json()["capacity"] == 4 and answer.get_json()["confirmed"] == 1


# ------------------------------------------------------------------ sign-ups: withdrawals during a promotion


def _started(answers: dict, name: str, call) -> threading.Thread:
    """``call()`` in a thread of its own, its answer kept as ``answers[name]``."""
    thread = threading.Thread(target=lambda: answers.update({name: call()}))
    thread.start()
    return thread


def _sign_up_statuses(engine, shift_id: int) -> dict[int, str]:
    with engine.connect() as conn:
        return dict(conn.execute(select(Signup.volunteer_id, Signup.status).where(Signup.shift_id == shift_id)).all())


def _queued_behind_the_shift(engine, shift_id: int, requests: list) -> list:
    """Each of ``requests`` started in turn, each once the one before waits for a lock, while the shift's row is
    held; then the shift let go. Their answers, in order."""
    answers: list = [None] * len(requests)

    def run(i, request):
        answers[i] = request()

    with engine.connect() as holder:
        holder.execute(text("SELECT id FROM shift WHERE id = :id FOR NO KEY UPDATE"), {"id": shift_id})
        threads = []
        for i, request in enumerate(requests):
            threads.append(threading.Thread(target=run, args=(i, request)))
            threads[-1].start()
            wait_for_lock_waits(engine, i + 1)
        holder.commit()
    for thread in threads:
        thread.join(20)
    return answers


def test_two_waiting_volunteers_leaving_while_a_capacity_raise_promotes_one_both_leave(committed_app, engine, clock):
    """A shift of one place held by C; W1 and W2 wait. The liaison raises the capacity to 2 (W1 moves up) while
    W1 and W2 both withdraw. W1's withdrawal read its place as waitlisted, found it confirmed once locked, and
    then locked W2 to promote them, after the shift, while W2's own withdrawal held W2 and waited for the
    shift: a deadlock, and one withdrawal was answered 409 "send it again" (in 7 of 10 trials). Both must
    simply succeed: nobody is left holding a place they gave up."""
    admin = client_as(committed_app, "admin")
    with Session(engine) as s:
        zone_id = zone_of(s, "G04").id
    names = ("volunteer-040", "volunteer-041", "volunteer-042")  # C, W1, W2
    ids = {name: _volunteer(engine, name)[0] for name in names}
    shift_ids = []
    try:
        for trial in range(5):  # which withdrawal gets the shift first varies: the deadlock needed W1's first
            shift = make_shift(admin, zone_id=zone_id, starts_at=clock() + timedelta(days=30 + trial), capacity=1)
            shift_ids.append(shift["id"])
            url = f"/api/v1/shifts/{shift['id']}"
            clients = {name: client_as(committed_app, name) for name in names}
            for name in names:
                clients[name].post(f"{url}/signups", json={})
            liaison = client_as(committed_app, "liaison-g04")
            raise_, leave_1, leave_2 = _queued_behind_the_shift(engine, shift["id"], [
                lambda: liaison.patch(url, json={"capacity": 2}),
                lambda: clients["volunteer-041"].delete(f"{url}/signups/{ids['volunteer-041']}"),
                lambda: clients["volunteer-042"].delete(f"{url}/signups/{ids['volunteer-042']}")])
            assert raise_.status_code == 200, raise_.get_json()
            assert (leave_1.status_code, leave_2.status_code) == (200, 200), (leave_1.get_json(), leave_2.get_json())
            assert _sign_up_statuses(engine, shift["id"]) == {
                ids["volunteer-040"]: "confirmed", ids["volunteer-041"]: "cancelled", ids["volunteer-042"]: "cancelled"}
    finally:
        delete_shifts(engine, *shift_ids)


def test_a_capacity_raise_promoting_someone_who_signed_up_after_it_read_the_waitlist_does_not_deadlock(
        committed_app, engine, clock):
    """A capacity raise reads who waits (W1), locks them, then the shift, and promotes in order. W2 joined the
    line after that read and is withdrawing: their withdrawal holds W2 and waits for the shift the raise holds.
    The raise then locked W2 to promote them, after the shift: a deadlock, one of the two answered 409. Now
    the raise asks for W2 without waiting, starts again with W2 locked first, and both succeed."""
    admin = client_as(committed_app, "admin")
    with Session(engine) as s:
        zone_id = zone_of(s, "G04").id
    c, w2, w1 = "volunteer-044", "volunteer-045", "volunteer-046"  # W2's id below W1's: W2 locks itself first
    ids = {name: _volunteer(engine, name)[0] for name in (c, w1, w2)}
    assert ids[w2] < ids[w1]
    shift = make_shift(admin, zone_id=zone_id, starts_at=clock() + timedelta(days=40), capacity=1)
    url = f"/api/v1/shifts/{shift['id']}"
    clients = {name: client_as(committed_app, name) for name in (c, w1, w2)}
    liaison = client_as(committed_app, "liaison-g04")
    answers = {}
    try:
        for name in (c, w1):
            clients[name].post(f"{url}/signups", json={})
        with engine.connect() as holder:  # W1 busy (as their own request would be): the raise waits for them
            holder.execute(text("SELECT id FROM volunteer WHERE id = :id FOR NO KEY UPDATE"), {"id": ids[w1]})
            threads = [_started(answers, "raise", lambda: liaison.patch(url, json={"capacity": 3}))]
            wait_for_lock_waits(engine, 1)
            # W2 joins the line after the raise read it, and withdraws at once (locking W2, then W1: waits)
            assert clients[w2].post(f"{url}/signups", json={}).get_json()["status"] == "waitlisted"
            threads.append(_started(answers, "leave", lambda: clients[w2].delete(f"{url}/signups/{ids[w2]}")))
            wait_for_lock_waits(engine, 2)
            holder.commit()
        for thread in threads:
            thread.join(20)
        assert answers["raise"].status_code == 200, answers["raise"].get_json()
        assert answers["leave"].status_code == 200, answers["leave"].get_json()
        assert _sign_up_statuses(engine, shift["id"]) == {ids[c]: "confirmed", ids[w1]: "confirmed",
                                                          ids[w2]: "cancelled"}
    finally:
        delete_shifts(engine, shift["id"])



def test_a_shift_cancelled_while_someone_confirmed_after_its_read_withdraws_does_not_deadlock(
        committed_app, engine, clock):
    """A cancellation reads the shift's confirmed volunteers (C), locks them, then the shift, and then locks the
    confirmed again, as read under the shift's lock: N, confirmed after its first read, came last, after the
    shift, while N's withdrawal held N and waited for the shift (a deadlock, one answered 409). Now the
    cancellation asks for N without waiting, starts again with N locked first, and both succeed."""
    admin = client_as(committed_app, "admin")
    with Session(engine) as s:
        zone_id = zone_of(s, "G04").id
    c, n = "volunteer-047", "volunteer-048"
    ids = {name: _volunteer(engine, name)[0] for name in (c, n)}
    shift = make_shift(admin, zone_id=zone_id, starts_at=clock() + timedelta(days=50), capacity=5)
    url = f"/api/v1/shifts/{shift['id']}"
    clients = {name: client_as(committed_app, name) for name in (c, n)}
    liaison = client_as(committed_app, "liaison-g04")
    answers = {}
    try:
        clients[c].post(f"{url}/signups", json={})
        with engine.connect() as holds_c, engine.connect() as holds_shift:
            holds_c.execute(text("SELECT id FROM volunteer WHERE id = :id FOR NO KEY UPDATE"), {"id": ids[c]})
            threads = [_started(answers, "cancel", lambda: liaison.delete(url))]
            wait_for_lock_waits(engine, 1)  # the cancellation read C as the confirmed, and waits for C
            assert clients[n].post(f"{url}/signups", json={}).get_json()["status"] == "confirmed"
            holds_shift.execute(text("SELECT id FROM shift WHERE id = :id FOR NO KEY UPDATE"), {"id": shift["id"]})
            holds_c.commit()  # the cancellation takes C, and waits for the shift
            wait_for_lock_waits(engine, 1)
            threads.append(_started(answers, "leave", lambda: clients[n].delete(f"{url}/signups/{ids[n]}")))
            wait_for_lock_waits(engine, 2)  # N's withdrawal holds N, and waits for the shift behind it
            holds_shift.commit()
        for thread in threads:
            thread.join(20)
        assert answers["cancel"].status_code == 200, answers["cancel"].get_json()
        assert answers["leave"].status_code == 200, answers["leave"].get_json()
        with engine.connect() as conn:
            assert conn.execute(select(Shift.status).where(Shift.id == shift["id"])).scalar() == "cancelled"
        assert _sign_up_statuses(engine, shift["id"]) == {ids[c]: "confirmed", ids[n]: "cancelled"}
    finally:
        delete_shifts(engine, shift["id"])


def test_an_account_disabled_while_its_sign_up_commits_does_not_deadlock_with_someone_waiting_there(
        committed_app, engine, clock):
    """The admin disables V's account while V's sign-up to S is in flight (it holds V). Releasing V's places read
    them (S0) and waited for V; once V's sign-up committed, it found S too, and locked W, who waits in S, after
    S0, which it held. W's own request held W and asked for S0: a deadlock, one of the two 409 "send it again".
    Now the release starts again from its savepoint when the places it read changed under V's lock, locking
    them in the module's order, and both succeed."""
    admin = client_as(committed_app, "admin")
    with Session(engine) as s:
        zone_id = zone_of(s, "G05").id
    v, c, w = "volunteer-050", "volunteer-051", "volunteer-052"
    (v_id, v_user), (c_id, _), (w_id, _) = (_volunteer(engine, name) for name in (v, c, w))
    s0 = make_shift(admin, zone_id=zone_id, starts_at=clock() + timedelta(days=60), capacity=3)
    s = make_shift(admin, zone_id=zone_id, starts_at=clock() + timedelta(days=61), capacity=1)
    answers = {}
    try:
        assert client_as(committed_app, v).post(f"/api/v1/shifts/{s0['id']}/signups", json={}).status_code == 201
        assert client_as(committed_app, c).post(f"/api/v1/shifts/{s['id']}/signups", json={}).status_code == 201
        waiting = client_as(committed_app, w).post(f"/api/v1/shifts/{s['id']}/signups", json={}).get_json()
        assert waiting["status"] == "waitlisted"
        with engine.connect() as signing_up, engine.connect() as w_request:
            # V's sign-up to S in flight: it holds V, its place written, not committed
            signing_up.execute(text("SELECT id FROM volunteer WHERE id = :id FOR NO KEY UPDATE"), {"id": v_id})
            signing_up.execute(text("INSERT INTO signup (shift_id, volunteer_id, status) VALUES (:s, :v, 'confirmed')"),
                               {"s": s["id"], "v": v_id})
            threads = [_started(answers, "disable", lambda: admin.patch(f"/api/v1/users/{v_user}",
                                                                        json={"disabled": True}))]
            wait_for_lock_waits(engine, 1)  # the release read S0, and waits for V
            w_request.execute(text("SET lock_timeout = '10s'"))
            w_request.execute(text("SELECT id FROM volunteer WHERE id = :id FOR NO KEY UPDATE"), {"id": w_id})
            signing_up.commit()  # the release takes V, finds S, and waits for W
            wait_for_lock_waits(engine, 1)
            # W's request goes on to S0 (it waited behind the release, which held S0: the deadlock)
            w_request.execute(text("SELECT id FROM shift WHERE id = :id FOR NO KEY UPDATE"), {"id": s0["id"]})
            w_request.commit()
        for thread in threads:
            thread.join(20)
        assert answers["disable"].status_code == 200, answers["disable"].get_json()
        # both of V's places released, S's waitlist run: its one place is C's, W still waits
        assert _sign_up_statuses(engine, s0["id"]) == {v_id: "waitlisted"}
        assert _sign_up_statuses(engine, s["id"]) == {c_id: "confirmed", w_id: "waitlisted", v_id: "waitlisted"}
    finally:
        admin.patch(f"/api/v1/users/{v_user}", json={"disabled": False})
        delete_shifts(engine, s0["id"], s["id"])
