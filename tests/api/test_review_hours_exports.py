"""A review of service hours and their exports: each test failed before its fix."""
from __future__ import annotations

from datetime import timedelta

from tests.api.test_checkins import admin, post_check  # noqa: F401  (fixture)
from tests.api.volunteer_helpers import make_shift, volunteer_id, zone_center, zone_of
from tests.helpers import csv_rows


def test_a_check_out_before_the_shift_starts_is_no_stint_of_service(admin, login, session, clock):
    """volunteer-001 checks in 20 minutes early, presses check-out by mistake 5 minutes later (still before the
    start), checks in again at once and serves 35 minutes. The overlap of the first [check-in, check-out] with the
    shift is empty, yet it was recorded as an approved stint of 0.00 hours: /hours/totals says 2 stints and the
    national record CSV carries a row from the start to the start, "0.00", approved. Only the stint that overlapped the shift
    should count (entries 1) and the record should not list an empty one."""
    g01 = zone_of(session, "G01").id
    center = zone_center(admin, g01)
    shift = make_shift(admin, zone_id=g01, starts_at=clock() + timedelta(minutes=20), hours=1)
    me, vid = login("volunteer-001"), volunteer_id(session, "volunteer-001")
    assert me.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201
    assert post_check(me, shift["id"], "check-in", *center).status_code == 201
    clock.advance(minutes=5)
    assert post_check(me, shift["id"], "check-out", *center).status_code == 201  # by mistake, before the start
    assert post_check(me, shift["id"], "check-in", *center).status_code == 201
    clock.advance(minutes=50)
    served = post_check(me, shift["id"], "check-out", *center).get_json()["hours"]
    assert (served["hours"], served["status"]) == (0.58, "approved")

    [mine] = [item for item in admin.get(f"/api/v1/hours/totals?zone_id={g01}").get_json()["items"]
              if item["volunteer_id"] == vid]
    assert (mine["hours"], mine["entries"]) == (0.58, 1)
    rows = csv_rows(me.get(f"/api/v1/volunteers/{vid}/hours.csv"))
    assert [row[6] for row in rows[1:]] == ["0.58"]


def test_a_long_numeric_national_volunteer_id_survives_excel_in_the_csv(admin, login, session, clock):
    """The CSV is made for Excel (BOM, formula guard), but an all-digit national volunteer ID such as
    330206199001011234 is written bare: Excel reads it as the number 3.30206E+17 and keeps 15 digits, so the
    record a liaison re-saves or uploads carries 330206199001011000. It should be written so that a spreadsheet
    keeps it as text (as the formula guard does, with a leading apostrophe), the digits intact."""
    g01 = zone_of(session, "G01").id
    center = zone_center(admin, g01)
    shift = make_shift(admin, zone_id=g01, starts_at=clock() + timedelta(minutes=10), hours=1)
    me, vid = login("volunteer-001"), volunteer_id(session, "volunteer-001")
    assert me.patch(f"/api/v1/volunteers/{vid}", json={"national_volunteer_id": "330206199001011234"}).status_code == 200
    assert me.post(f"/api/v1/shifts/{shift['id']}/signups", json={}).status_code == 201
    clock.advance(minutes=10)
    assert post_check(me, shift["id"], "check-in", *center).status_code == 201
    clock.advance(minutes=30)
    assert post_check(me, shift["id"], "check-out", *center).status_code == 201
    [header, row] = csv_rows(me.get(f"/api/v1/volunteers/{vid}/hours.csv"))
    cell = row[header.index("volunteer_id")]
    assert "330206199001011234" in cell
    assert not cell.isdigit(), f"{cell!r} opens in Excel as a 15-digit number"


def test_only_digit_text_a_spreadsheet_would_change_is_kept_text():
    """An 11-digit phone number opens as written and stays as sent; 12 digits or more, or a leading zero, would
    not (3.30206E+17, 15 digits kept; 0571 read as 571): those go after a tab. Numbers and formulas as before."""
    from gridsvc.csvexport import inert

    assert [inert(v) for v in ("13912345678", "330206199001011234", "0571", "0", "ZJ-NB-9", "=1+2", 1.5, "１２３４５６７８９０１２")] == [
        "13912345678", "\t330206199001011234", "\t0571", "0", "ZJ-NB-9", "'=1+2", 1.5, "１２３４５６７８９０１２"]
