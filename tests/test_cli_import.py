"""`gridsvc import parking FILE` against the test database (real commits, cleaned up)."""
from __future__ import annotations

import json

from click.testing import CliRunner
from sqlalchemy import select

from gridsvc.cli import main
from gridsvc.models import ParkingLot


def test_import_parking_file_all_or_nothing(database_url, engine, tmp_path):
    lon, lat = 121.7800, 29.8700  # inside Lingfeng
    good = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [lon, lat]},
            "properties": {"amenity": "parking", "name": "CLI test lot", "capacity": "12", "ref": "CLI-1"}}
    bad = {"type": "Feature", "geometry": {"type": "Point", "coordinates": [200, lat]}, "properties": {"name": "bad"}}
    path = tmp_path / "lots.geojson"
    try:
        path.write_text(json.dumps({"type": "FeatureCollection", "features": [good, bad]}))
        refused = CliRunner().invoke(main, ["import", "parking", str(path)], env={"DATABASE_URL": database_url})
        assert refused.exit_code != 0 and "feature #1" in refused.output and "nothing was imported" in refused.output
        # saved as Notepad saves UTF-8: with a byte order mark
        path.write_text("\ufeff" + json.dumps({"type": "FeatureCollection", "features": [good]}), encoding="utf-8")
        done = CliRunner().invoke(main, ["import", "parking", str(path)], env={"DATABASE_URL": database_url})
        assert done.exit_code == 0, done.output
        assert "imported 1 lots and 0 spaces" in done.output
        with engine.connect() as conn:
            assert conn.execute(select(ParkingLot.capacity_car).where(ParkingLot.ref == "CLI-1")).scalar() == 12
    finally:
        with engine.begin() as conn:
            conn.execute(ParkingLot.__table__.delete().where(ParkingLot.ref == "CLI-1"))
