"""Defects found by property-based fuzzing of the OpenAPI document (schemathesis, every operation, as admin,
planner, liaison, volunteer, worker and no one), followed up by hand: what the caller sends, what they get, and
what they should get (a clear 4xx problem that changes nothing; never a 500)."""
from __future__ import annotations

import pytest
from sqlalchemy import func, select

from gridsvc.models import Zone
from tests.helpers import PROBLEM, community_body


def _square(lon: float, lat: float, side_deg: float) -> dict:
    return {"type": "Polygon", "coordinates": [[[lon, lat], [lon + side_deg, lat], [lon + side_deg, lat + side_deg],
                                                [lon, lat + side_deg], [lon, lat]]]}


@pytest.mark.parametrize("commit", [False, True])
def test_splitting_a_community_too_small_for_its_zones_is_a_4xx_not_a_500(admin_client, session, commit):
    """``POST /api/v1/communities`` takes a boundary of 1e-13 degrees a side (``"area_m2": 0.0``: about 1e-16 m²), a
    201; ``POST /api/v1/communities/{id}/zones/split {"count": 10}`` (or with ``"commit": true``) on it is then a bare
    500: the bisection (geo/grid.py split_equal_area) makes empty pieces, and _reading_order indexes their centroids
    (``IndexError: index 8 is out of bounds for axis 0 with size 8``; for other such boundaries a GEOSException
    "Invalid number of points in LinearRing"). Either the boundary is refused when the community is created (422
    naming ``boundary``) or the split is refused (422, or 409, as a problem saying the community is too small for
    that many zones); nothing is saved either way."""
    created = admin_client.post("/api/v1/communities",
                                json=community_body(name="微小 Tiny Market", boundary=_square(121.0, 30.0, 1e-13)))
    if created.status_code == 422:  # refused at the door: fine, as long as it names the boundary
        assert created.mimetype == PROBLEM and "boundary" in created.get_json()["errors"]
        return
    assert created.status_code == 201, created.get_data(as_text=True)
    community_id = created.get_json()["id"]

    answer = admin_client.post(f"/api/v1/communities/{community_id}/zones/split", json={"count": 10, "commit": commit})

    assert answer.status_code in (409, 422), answer.get_data(as_text=True)
    assert answer.mimetype == PROBLEM
    problem = answer.get_json()
    assert problem["status"] == answer.status_code and problem["title"] and problem["type"] != "about:blank"
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Zone).where(Zone.community_id == community_id)) == 0


def test_a_boundary_enclosing_less_than_a_square_metre_is_refused_naming_it(admin_client):
    answer = admin_client.post("/api/v1/communities",
                               json=community_body(name="微小 Tiny Market", boundary=_square(121.0, 30.0, 1e-13)))
    assert answer.status_code == 422 and answer.mimetype == PROBLEM
    assert "m²" in str(answer.get_json()["errors"]["boundary"])


@pytest.mark.parametrize("commit", [False, True])
def test_a_split_into_zones_under_a_square_metre_is_a_422_naming_count(admin_client, session, commit):
    """A market stall of about 4.3 m² (2e-5 degrees a side at 30° N) split into 10 zones: 0.43 m² each."""
    created = admin_client.post("/api/v1/communities",
                                json=community_body(name="摊位 Stall", boundary=_square(121.0, 30.0, 2e-5)))
    assert created.status_code == 201, created.get_json()
    community_id = created.get_json()["id"]
    answer = admin_client.post(f"/api/v1/communities/{community_id}/zones/split", json={"count": 10, "commit": commit})
    assert answer.status_code == 422 and answer.mimetype == PROBLEM
    assert answer.get_json()["errors"]["count"] == ["at most 4 zones for this boundary"]
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Zone).where(Zone.community_id == community_id)) == 0
    four = admin_client.post(f"/api/v1/communities/{community_id}/zones/split", json={"count": 4})
    assert four.status_code == 200 and len(four.get_json()["features"]) == 4, four.get_json()
