"""OGC API - Features Part 1 at /ogc, over the Lingfeng fixture (in-process client)."""
from __future__ import annotations

import json
from datetime import date
from urllib.parse import urlsplit

import pytest
from shapely.geometry import box, shape
from sqlalchemy import func, or_, select

from gridsvc.models import Enterprise, ParkingLot, ParkingSpace, Zone
from gridsvc.services.features import forget_extents
from tests.helpers import assert_problem

GEOJSON = "application/geo+json"
COLLECTIONS = {"communities", "zones", "enterprises", "parking-lots", "parking-spaces"}


def path(href: str) -> str:
    parts = urlsplit(href)
    return parts.path + ("?" + parts.query if parts.query else "")


def rel(body, name: str) -> dict | None:
    return next((link for link in body["links"] if link["rel"] == name), None)


def test_landing_page_links_to_the_four_places_a_client_needs(client):
    body = client.get("/ogc").get_json()
    assert {"service-desc", "service-doc", "conformance", "data"} <= {link["rel"] for link in body["links"]}
    assert rel(body, "service-desc")["type"] == "application/vnd.oai.openapi+json;version=3.0"
    for name in ("service-desc", "service-doc", "conformance", "data"):
        assert client.get(path(rel(body, name)["href"])).status_code == 200, name
    assert client.get("/ogc/").get_json() == body


def test_conformance_declares_core_geojson_and_oas30(client):
    classes = client.get("/ogc/conformance").get_json()["conformsTo"]
    for part in ("core", "geojson", "oas30"):
        assert f"http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/{part}" in classes


def test_api_definition_is_openapi_3_0_with_every_parameter_inline(client):
    answer = client.get("/ogc/api")
    assert answer.headers["Content-Type"].startswith("application/vnd.oai.openapi+json")
    spec = answer.get_json()
    assert spec["openapi"].startswith("3.0")
    assert "$ref" not in json.dumps(spec)
    items = spec["paths"]["/collections/parking-spaces/items"]["get"]["parameters"]
    by_name = {p["name"]: p for p in items}
    assert by_name["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 10000, "default": 10}
    assert {"bbox", "offset", "datetime", "status", "space_type", "lot_id"} <= set(by_name)
    assert "datetime" not in {p["name"] for p in spec["paths"]["/collections/zones/items"]["get"]["parameters"]}
    assert set(spec["paths"]) >= {f"/collections/{c}/items/{{featureId}}" for c in COLLECTIONS}


def test_collections_are_features_with_a_crs84_extent_around_the_data(client, session):
    forget_extents()  # another test's transaction may have filled the per-process cache
    body = client.get("/ogc/collections").get_json()
    assert {c["id"] for c in body["collections"]} == COLLECTIONS
    for collection in body["collections"]:
        assert collection["itemType"] == "feature"
        assert collection["extent"]["spatial"]["crs"].endswith("CRS84")
        assert rel(collection, "items")["type"] == GEOJSON
    zones = next(c for c in body["collections"] if c["id"] == "zones")
    minx, miny, maxx, maxy = zones["extent"]["spatial"]["bbox"][0]
    expected = session.execute(select(func.ST_XMin(func.ST_Extent(Zone.geom)), func.ST_YMin(func.ST_Extent(Zone.geom)),
                                      func.ST_XMax(func.ST_Extent(Zone.geom)), func.ST_YMax(func.ST_Extent(Zone.geom)))).one()
    assert (minx, miny, maxx, maxy) == pytest.approx(tuple(expected), abs=1e-6)
    lots = next(c for c in body["collections"] if c["id"] == "parking-lots")
    first, undated = session.execute(select(func.min(ParkingLot.opened_on),
                                            func.bool_or(ParkingLot.opened_on.is_(None)))).one()
    start = None if undated else f"{first.isoformat()}T00:00:00Z"  # undated lots predate the records
    assert lots["extent"]["temporal"]["interval"] == [[start, None]]
    assert client.get("/ogc/collections/parking-lots").get_json()["id"] == "parking-lots"
    assert_problem(client.get("/ogc/collections/volunteers"), 404)


def test_personal_data_is_never_a_collection(client):
    spec = json.dumps(client.get("/ogc/api").get_json())
    for word in ("volunteer", "phone", "requester", "real_name", "liaison"):
        assert word not in spec, word


def test_items_page_through_every_space_with_next_and_prev_links(client, session):
    expected = session.scalars(select(ParkingSpace.id).order_by(ParkingSpace.id)).all()
    url, seen, pages = "/ogc/collections/parking-spaces/items?limit=10", [], 0
    while url:
        answer = client.get(url)
        assert answer.status_code == 200 and answer.headers["Content-Type"] == GEOJSON
        body = answer.get_json()
        assert body["type"] == "FeatureCollection" and body["numberMatched"] == len(expected)
        assert body["numberReturned"] == len(body["features"]) <= 10
        assert (rel(body, "prev") is not None) == (pages > 0)
        seen += [f["id"] for f in body["features"]]
        pages += 1
        url = path(rel(body, "next")["href"]) if rel(body, "next") else None
    assert seen == expected and pages == -(-len(expected) // 10)


def test_a_feature_carries_its_properties_and_geometry(client, session):
    lot = session.scalar(select(ParkingLot).where(ParkingLot.ref == "LF-P003"))
    answer = client.get(f"/ogc/collections/parking-lots/items/{lot.id}")
    assert answer.status_code == 200 and answer.headers["Content-Type"] == GEOJSON
    feature = answer.get_json()
    assert feature["type"] == "Feature" and feature["id"] == lot.id
    assert feature["properties"]["name"] == lot.name and feature["properties"]["capacity"] == 57
    assert feature["properties"]["zone_id"] == lot.zone_id and feature["properties"]["capacity_car"] == lot.capacity_car
    assert shape(feature["geometry"]).geom_type == "Polygon"
    assert rel(feature, "self")["href"].endswith(f"/ogc/collections/parking-lots/items/{lot.id}")
    assert rel(feature, "collection")


def test_bbox_returns_exactly_the_features_that_intersect_it(client, session):
    area = (121.775, 29.865, 121.782, 29.872)
    body = client.get("/ogc/collections/enterprises/items", query_string={
        "bbox": ",".join(map(str, area)), "limit": 1000}).get_json()
    expected = session.scalars(select(Enterprise.id).where(
        func.ST_Intersects(Enterprise.location, func.ST_MakeEnvelope(*area, 4326))).order_by(Enterprise.id)).all()
    assert 0 < len(expected) < session.scalar(select(func.count()).select_from(Enterprise))
    assert [f["id"] for f in body["features"]] == expected and body["numberMatched"] == len(expected)
    assert all(box(*area).covers(shape(f["geometry"])) for f in body["features"])


def test_datetime_selects_what_was_in_use(client, session):
    """Lots without a date have been in use since before records began."""
    body = client.get("/ogc/collections/parking-lots/items",
                      query_string={"datetime": "../2019-12-31", "limit": 1000}).get_json()
    in_use = session.scalars(select(ParkingLot.id).where(or_(
        ParkingLot.opened_on.is_(None), ParkingLot.opened_on <= date(2019, 12, 31))).order_by(ParkingLot.id)).all()
    assert [f["id"] for f in body["features"]] == in_use
    later = client.get("/ogc/collections/parking-lots/items",
                       query_string={"datetime": "2020-01-01/..", "limit": 1000}).get_json()
    opened_later = session.scalars(select(ParkingLot.id).where(ParkingLot.opened_on >= date(2020, 1, 1))).all()
    assert later["numberMatched"] == len(opened_later) > 0
    assert later["numberMatched"] + body["numberMatched"] == session.scalar(select(func.count()).select_from(ParkingLot))


def test_datetime_of_one_day_selects_what_was_in_use_that_day(client, session):
    """An instant is a day of use (opened by then, or undated); an interval a/b is what opened within it."""
    day = session.scalar(select(func.min(ParkingLot.opened_on)).where(ParkingLot.opened_on >= date(2020, 1, 1)))
    in_use = session.scalars(select(ParkingLot.id).where(or_(
        ParkingLot.opened_on.is_(None), ParkingLot.opened_on <= day)).order_by(ParkingLot.id)).all()
    opened_that_day = session.scalars(select(ParkingLot.id).where(ParkingLot.opened_on == day).order_by(ParkingLot.id)).all()
    assert 0 < len(opened_that_day) < len(in_use)
    for instant in (day.isoformat(), f"{day.isoformat()}T12:00:00Z", f"../{day.isoformat()}"):
        body = client.get("/ogc/collections/parking-lots/items", query_string={"datetime": instant, "limit": 1000}).get_json()
        assert [f["id"] for f in body["features"]] == in_use and body["numberMatched"] == len(in_use), instant
    same_day = client.get("/ogc/collections/parking-lots/items",
                          query_string={"datetime": f"{day.isoformat()}/{day.isoformat()}", "limit": 1000}).get_json()
    assert [f["id"] for f in same_day["features"]] == opened_that_day


def test_declared_property_filters(client, session):
    zone = session.scalar(select(Zone).where(Zone.code == "G03"))
    body = client.get("/ogc/collections/parking-lots/items",
                      query_string={"zone_id": zone.id, "access": "employees", "limit": 100}).get_json()
    expected = session.scalars(select(ParkingLot.id).where(ParkingLot.zone_id == zone.id,
                                                           ParkingLot.access == "employees").order_by(ParkingLot.id)).all()
    assert [f["id"] for f in body["features"]] == expected and expected
    codes = client.get("/ogc/collections/zones/items", query_string={"code": "G03"}).get_json()
    assert [f["properties"]["code"] for f in codes["features"]] == ["G03"]


def test_json_is_offered_both_ways(client):
    assert client.get("/ogc/collections/zones/items?f=json").headers["Content-Type"] == GEOJSON
    plain = client.get("/ogc/collections/zones/items", headers={"Accept": "application/json"})
    assert plain.headers["Content-Type"] == "application/json"
    assert plain.get_json()["type"] == "FeatureCollection"


def test_limit_above_the_maximum_is_served_as_the_maximum(client):
    body = client.get("/ogc/collections/zones/items?limit=50000").get_json()
    assert body["numberReturned"] == 10
    assert "limit=10000" in rel(body, "self")["href"] or "limit=50000" in rel(body, "self")["href"]


@pytest.mark.parametrize("query, name", [
    ("foo=1", "foo"), ("bbox=1,2,3", "bbox"), ("bbox=121,30,122,29", "bbox"), ("bbox=200,1,201,2", "bbox"),
    ("bbox=a,b,c,d", "bbox"), ("limit=0", "limit"), ("limit=ten", "limit"), ("offset=-1", "offset"),
    ("datetime=2020-13-01", "datetime"), ("datetime=2021-01-01/2020-01-01", "datetime"),
    ("status=parked", "status"), ("lot_id=x", "lot_id"), ("f=html", "f"), ("limit=1&limit=2", "limit"),
])
def test_bad_parameters_are_400_naming_the_parameter(client, query, name):
    body = assert_problem(client.get(f"/ogc/collections/parking-spaces/items?{query}"), 400)
    assert name in body["errors"]


def test_datetime_on_a_collection_without_time_is_undeclared(client):
    assert "datetime" in assert_problem(client.get("/ogc/collections/zones/items?datetime=2020-01-01"), 400)["errors"]


def test_missing_features_are_404(client):
    assert_problem(client.get("/ogc/collections/parking-lots/items/999999"), 404)
    assert_problem(client.get("/ogc/collections/parking-lots/items/abc"), 404)
    assert_problem(client.get("/ogc/collections/nowhere/items"), 404)


def test_counts_follow_inserts_and_deletes_in_the_same_transaction(client, session):
    """numberMatched of an unfiltered page comes from the trigger-kept row count."""
    before = client.get("/ogc/collections/parking-spaces/items?limit=1").get_json()["numberMatched"]
    lot = session.scalar(select(ParkingLot).where(ParkingLot.ref == "LF-P003"))
    session.add_all([ParkingSpace(community_id=lot.community_id, zone_id=lot.zone_id, lot_id=lot.id, ref=f"T-{i}",
                                  space_type="car", status="free", geom="SRID=4326;POINT(121.7703 29.8707)")
                     for i in range(3)])
    session.commit()
    assert client.get("/ogc/collections/parking-spaces/items?limit=1").get_json()["numberMatched"] == before + 3
    session.query(ParkingSpace).filter(ParkingSpace.ref.like("T-%")).delete(synchronize_session=False)
    session.commit()
    assert client.get("/ogc/collections/parking-spaces/items?limit=1").get_json()["numberMatched"] == before
    assert before == session.scalar(select(func.count()).select_from(ParkingSpace))


PYTHON_TYPES = {"integer": int, "number": (int, float), "string": str}


def test_every_feature_property_is_as_the_document_says(client):
    """A client generated from /ogc/api validates what it reads: a null where
    the document promises an integer breaks it (schemathesis found
    enterprises' parking_demand and spaces' lot_id)."""
    document = client.get("/ogc/api").get_json()
    nulls = set()
    for collection in ("communities", "zones", "enterprises", "parking-lots", "parking-spaces"):
        item = document["paths"][f"/collections/{collection}/items/{{featureId}}"]["get"]
        properties = item["responses"]["200"]["content"]["application/geo+json"]["schema"]["properties"]["properties"]
        declared = properties["properties"]
        features = client.get(f"/ogc/collections/{collection}/items", query_string={"limit": 10000}).get_json()["features"]
        assert features, collection
        for feature in features:
            assert set(feature["properties"]) == set(declared), collection
            for name, value in feature["properties"].items():
                if value is None:
                    assert declared[name].get("nullable") is True, (collection, name)
                    nulls.add((collection, name))
                else:
                    assert isinstance(value, PYTHON_TYPES[declared[name]["type"]]), (collection, name, value)
    assert ("enterprises", "parking_demand") in nulls  # the fixture has such features: the check above ran on them
