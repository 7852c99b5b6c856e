"""A review of the sign-up rules, as volunteers and liaisons meet them (each test failed before its fix).
"""
from __future__ import annotations

from datetime import timedelta

import pytest

from tests.api.volunteer_helpers import make_shift, volunteer_id, zone_of
from tests.helpers import assert_problem


@pytest.fixture()
def admin(login):
    return login("admin")


def test_a_confirmed_volunteer_signing_up_again_after_a_skill_became_required_hears_already_signed_up(
        admin, login, session, clock):
    """volunteer-001 is confirmed for a shift; the liaison then adds a required skill (translation), which keeps
    confirmed volunteers in place (the roster still shows them confirmed). When the app sends the sign-up again
    (a retry without a key, or a second tap), the answer is 409 `missing_skill` "This shift needs the skill(s)
    translation, which the volunteer does not have": the volunteer reads that they are not on the shift and stay
    home. They should hear `already_signed_up` with `signup_status: confirmed`, as before the skill change (the
    live sign-up is checked only after the skill: services/shifts.py sign_up)."""
    shift = make_shift(admin, zone_id=zone_of(session, "G01").id, capacity=1, starts_at=clock() + timedelta(days=303))
    url = f"/api/v1/shifts/{shift['id']}/signups"
    me = login("volunteer-001")
    vid = volunteer_id(session, "volunteer-001")
    assert me.post(url, json={}).get_json()["status"] == "confirmed"
    assert admin.patch(f"/api/v1/shifts/{shift['id']}", json={"required_skills": ["translation"]}).status_code == 200
    roster = admin.get(url).get_json()["items"]
    assert [(s["volunteer_id"], s["status"]) for s in roster] == [(vid, "confirmed")]

    again = assert_problem(me.post(url, json={}), 409)
    assert (again["reason"], again.get("signup_status")) == ("already_signed_up", "confirmed"), again
