"""Real GIS clients against a live server: GDAL's OAPIF driver and OWSLib.

The server runs in a thread over the test database's committed Lingfeng
data; a small WSGI wrapper records the paths asked, to show that GDAL
followed the ``next`` links rather than asking for everything at once.
"""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gridsvc.app import create_app
from gridsvc.models import ParkingLot, ParkingSpace
from tests.browser import live_server

gdal = pytest.mark.skipif(shutil.which("ogrinfo") is None, reason="GDAL is not installed (make test installs gdal-bin as root)")


class Recorder:
    def __init__(self, app):
        self.app, self.paths = app, []

    def __call__(self, environ, start_response):
        query = environ.get("QUERY_STRING")
        self.paths.append(environ["PATH_INFO"] + ("?" + query if query else ""))
        return self.app(environ, start_response)


@pytest.fixture(scope="module")
def server(database_url, engine):
    app = create_app({"DATABASE_URL": database_url, "GRIDSVC_LOG_LEVEL": "WARNING"})
    recorder = Recorder(app.wsgi_app)
    app.wsgi_app = recorder
    with live_server(app) as base:
        yield base, recorder
    app.extensions["gridsvc.db"].dispose()


def run(*argv: str) -> str:
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120,
                            env={"CPL_DEBUG": "OFF", "GDAL_HTTP_TIMEOUT": "60", "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    return result.stdout


@gdal
def test_ogrinfo_lists_the_collections(server):
    base, _ = server
    listing = run("ogrinfo", "-ro", "-q", f"OAPIF:{base}/ogc")
    for collection in ("communities", "zones", "enterprises", "parking-lots", "parking-spaces"):
        assert collection in listing, listing


@gdal
def test_ogrinfo_summarises_a_collection_with_its_fields(server, engine):
    base, _ = server
    summary = run("ogrinfo", "-ro", "-so", f"OAPIF:{base}/ogc", "parking-lots")
    with Session(engine) as session:
        lots = session.scalar(select(func.count()).select_from(ParkingLot))
    assert f"Feature Count: {lots}" in summary
    for field in ("name", "capacity", "access", "opened_on"):
        assert f"{field}:" in summary, summary


@gdal
def test_ogr2ogr_reads_every_parking_space_through_the_next_links(server, engine, tmp_path):
    base, recorder = server
    out = tmp_path / "spaces.geojson"
    recorder.paths.clear()
    run("ogr2ogr", "-f", "GeoJSON", str(out), f"OAPIF:{base}/ogc", "parking-spaces", "-oo", "PAGE_SIZE=10")
    copied = json.loads(out.read_text())["features"]
    with Session(engine) as session:
        expected = dict(session.execute(select(ParkingSpace.id, ParkingSpace.ref)).all())
    assert len(copied) == len(expected) > 10
    assert {f["properties"]["ref"] for f in copied} == set(expected.values())
    pages = [p for p in recorder.paths if p.startswith("/ogc/collections/parking-spaces/items")]
    assert len(pages) >= -(-len(expected) // 10), pages  # one request per page of ten
    assert any("offset=" in p for p in pages)


def test_owslib_reads_collections_and_items_with_a_bbox(server, engine):
    from owslib.ogcapi.features import Features

    base, _ = server
    api = Features(f"{base}/ogc")
    assert {c["id"] for c in api.collections()["collections"]} >= {"zones", "parking-lots", "parking-spaces"}
    assert api.collection("zones")["itemType"] == "feature"
    area = [121.775, 29.865, 121.782, 29.872]
    page = api.collection_items("parking-lots", bbox=area, limit=500)
    with Session(engine) as session:
        expected = session.scalars(select(ParkingLot.id).where(
            func.ST_Intersects(ParkingLot.geom, func.ST_MakeEnvelope(*area, 4326))).order_by(ParkingLot.id)).all()
    assert [f["id"] for f in page["features"]] == expected and 0 < len(expected)
    assert page["numberMatched"] == len(expected)
    one = api.collection_item("parking-lots", str(expected[0]))
    assert one["id"] == expected[0] and one["properties"]["capacity"] >= 0
