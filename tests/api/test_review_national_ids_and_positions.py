"""A second review of the volunteer registry and positions: each test failed before its fix."""
from __future__ import annotations

from sqlalchemy import select

from gridsvc.models import User, Volunteer
from tests.api.volunteer_helpers import volunteer_id
from tests.helpers import count

def report(client, point, **extra) -> dict:
    answer = client.post("/api/v1/me/location", json={"lon": point[0], "lat": point[1], **extra})
    assert answer.status_code == 201, answer.get_json()
    return answer.get_json()


def test_a_national_volunteer_id_typed_in_full_width_characters_is_the_same_id(login, session):
    """volunteer-001's national ID typed with a Chinese IME in full-width mode (ＺＪ－ＮＢ－３３０２０６００１, NFKC-equal
    to ZJ-NB-330206001) is registered today for another person (201) and stored as typed, so two volunteers hold
    one national ID and the second one's CSV carries an ID the national system does not know. It should be a 409
    as the ASCII form is (phones typed in full width are already folded to ASCII)."""
    taken = session.get(Volunteer, volunteer_id(session, "volunteer-001")).national_volunteer_id
    wide = "".join(chr(ord(c) + 0xFEE0) if 0x21 <= ord(c) <= 0x7E else c for c in taken)
    before = count(session, Volunteer)
    answer = login("worker-001").post("/api/v1/volunteers", json={
        "real_name": "陈静", "phone": "13912345678", "national_volunteer_id": wide})
    assert answer.status_code == 409, answer.get_json()
    assert count(session, Volunteer) == before


def test_a_person_whose_volunteer_role_was_removed_can_still_read_the_positions_kept_about_them(login, session):
    """An admin takes the volunteer role away; the person's reported positions stay stored (until `gridsvc purge`,
    7 days) and /me/volunteer still shows their last known position, but GET /me/locations, the page that shows a
    person what is held about where they were (PIPL art. 45, as its own description says), answers 403. It
    should list the positions still kept about them."""
    volunteer = login("volunteer-004")
    report(volunteer, (121.78, 29.87), accuracy_m=8)
    user_id = session.scalar(select(User.id).where(User.username == "volunteer-004"))
    assert login("admin").patch(f"/api/v1/users/{user_id}", json={"roles": []}).status_code == 200
    assert volunteer.get("/api/v1/me/volunteer").get_json()["last_position"] is not None
    kept = volunteer.get("/api/v1/me/locations")
    assert kept.status_code == 200, kept.get_json()
    assert kept.get_json()["total"] == 1
