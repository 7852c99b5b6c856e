"""Issue 6's story over HTTP with demo accounts, end to end, Open311 included."""
from __future__ import annotations

from sqlalchemy import select

from gridsvc.models import User
from gridsvc.services.accounts import new_api_key
from tests.api.test_requests import file, g03  # noqa: F401  (the fixture: three traffic volunteers on duty in G03)
from tests.open311_client import GeoReportClient


def test_parking_request_from_offer_to_claim_to_rating_and_open311(login, client, session, g03):  # noqa: F811
    worker = login("worker-001")
    request = file(worker, g03["here"]).get_json()
    assert request["zone_id"] == g03["zone"].id and request["status"] == "offered"
    order = list(g03["volunteers"])  # nearest first
    for username in order:
        offered = login("liaison-g03").get(f"/api/v1/requests/{request['id']}").get_json()
        assert offered["offer"]["volunteer_id"] == g03["volunteers"][username]
        login(username).post(f"/api/v1/requests/{request['id']}/decline", json={"note": "手头有任务"})
    with_liaison = login("liaison-g03").get(f"/api/v1/requests/{request['id']}").get_json()
    assert with_liaison["status"] == "with_liaison"
    assert with_liaison["liaison_id"] == session.scalar(select(User.id).where(User.username == "liaison-g03"))

    login("liaison-g03").post(f"/api/v1/requests/{request['id']}/escalate", json={"note": "请交通部门协调"})
    claimed = login("dept-traffic").post(f"/api/v1/requests/{request['id']}/claim", json={}).get_json()
    assert claimed["status"] == "claimed"
    resolved = login("dept-traffic").post(f"/api/v1/requests/{request['id']}/resolve", json={"note": "已划定临时车位"}).get_json()
    assert resolved["status"] == "resolved"
    assert worker.post(f"/api/v1/requests/{request['id']}/rate", json={"rating": 5, "comment": "解决了"}).status_code == 200

    figures = login("admin").get(f"/api/v1/requests/stats?community_id={g03['zone'].community_id}").get_json()
    assert figures["by_status"].get("resolved", 0) >= 1 and figures["mean_rating"] is not None

    key = new_api_key(session, session.scalar(select(User.id).where(User.username == "worker-001")), "story")
    session.commit()
    status, seen = GeoReportClient(client, api_key=key).request(str(request["id"]))
    assert status == 200 and seen[0]["status"] == "closed" and seen[0]["service_code"] == "parking"
    trail = [e["action"] for e in login("admin").get(f"/api/v1/requests/{request['id']}/events").get_json()]
    assert trail == ["file", "offer", "decline", "offer", "decline", "offer", "decline", "to_liaison",
                     "escalate", "claim", "resolve", "rate"]
