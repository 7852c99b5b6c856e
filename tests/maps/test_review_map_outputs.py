"""Map outputs as OGC API - Features clients use them (found in review; each failed before its fix)."""
from __future__ import annotations

import pytest
from sqlalchemy import select

from gridsvc.models import ParkingLot
from tests.helpers import assert_problem

CRS84 = "http://www.opengis.net/def/crs/OGC/1.3/CRS84"
EPSG_3857 = "http://www.opengis.net/def/crs/EPSG/0/3857"


def rel(body, name: str) -> dict | None:
    return next((link for link in body["links"] if link["rel"] == name), None)


# ------------------------------------------------------------------ crs and bbox-crs


def test_the_crs_a_collection_lists_may_be_asked_for(client, session):
    """A collection says ``"crs": [CRS84], "storageCrs": CRS84`` (OGC API -
    Features Part 2's members); a client that reads them and names that CRS in
    ``crs`` or ``bbox-crs`` got a 400 "Unknown query parameter". The answer says
    its CRS in ``Content-Crs``."""
    collection = client.get("/ogc/collections/parking-lots").get_json()
    assert collection["crs"] == [CRS84] and collection["storageCrs"] == CRS84
    area = "121.775,29.865,121.782,29.872"
    plain = client.get(f"/ogc/collections/parking-lots/items?bbox={area}&limit=1000").get_json()
    answer = client.get("/ogc/collections/parking-lots/items",
                        query_string={"bbox": area, "bbox-crs": CRS84, "crs": CRS84, "limit": 1000})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.headers["Content-Crs"] == f"<{CRS84}>"
    body = answer.get_json()
    assert [f["id"] for f in body["features"]] == [f["id"] for f in plain["features"]] and body["features"]
    assert "crs=" in rel(body, "next" if rel(body, "next") else "self")["href"]  # the links keep it
    lot = session.scalar(select(ParkingLot.id).order_by(ParkingLot.id).limit(1))
    one = client.get(f"/ogc/collections/parking-lots/items/{lot}", query_string={"crs": "[OGC:CRS84]"})
    assert one.status_code == 200 and one.headers["Content-Crs"] == f"<{CRS84}>"
    assert client.get("/ogc/collections/zones/items").headers["Content-Crs"] == f"<{CRS84}>"


@pytest.mark.parametrize("name", ["crs", "bbox-crs"])
def test_a_crs_not_offered_is_a_400_naming_the_parameter(client, name):
    """A guard, not a defect: still refused now that CRS84 is accepted."""
    body = assert_problem(client.get("/ogc/collections/parking-lots/items",
                                     query_string={name: EPSG_3857, "bbox": "121.775,29.865,121.782,29.872"}), 400)
    assert name in body["errors"]


def test_the_api_definition_declares_crs_and_bbox_crs(client):
    """A client generated from /ogc/api learns that it may send them, and which value."""
    paths = client.get("/ogc/api").get_json()["paths"]
    items = {p["name"]: p for p in paths["/collections/parking-lots/items"]["get"]["parameters"]}
    assert items["crs"]["schema"]["enum"] == [CRS84] and items["bbox-crs"]["schema"]["enum"] == [CRS84]


# ------------------------------------------------------------------ a path prefix


def test_links_keep_the_path_prefix_the_api_is_served_under(client):
    """Mounted under /gridsvc (SCRIPT_NAME, as a proxy or a WSGI mount sets it), every link left the prefix
    out, and a client following ``next`` landed on another site's path."""
    page = client.get("/ogc/collections/parking-lots/items?limit=2", environ_overrides={"SCRIPT_NAME": "/gridsvc"})
    assert page.status_code == 200, page.get_json()
    body = page.get_json()
    assert rel(body, "self")["href"].startswith("http://localhost/gridsvc/ogc/collections/parking-lots/items")
    assert rel(body, "next")["href"].startswith("http://localhost/gridsvc/ogc/")
