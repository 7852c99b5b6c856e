"""Load the Lingfeng demo park from fixtures/lingfeng through the services.

Going through the services means the fixture obeys the same rules as the
API (valid geometry, zones inside the community, no overlaps). Loading is
idempotent: a community of the same name already present means nothing is
loaded again.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from shapely.geometry import shape
from sqlalchemy import select
from sqlalchemy.orm import Session

from geo.io import geometry_from_geojson
from gridsvc.models import Community
from gridsvc.services import communities, enterprises, zones

FIXTURES_DIR = Path(__file__).resolve().parent.parent / "fixtures"


@dataclass(frozen=True)
class SeedResult:
    community: Community
    created: bool
    zones: int = 0
    enterprises: int = 0


def _read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def load_lingfeng(session: Session, directory: Path = FIXTURES_DIR / "lingfeng") -> SeedResult:
    feature = _read(directory / "community.geojson")
    props = feature["properties"]
    existing = session.scalar(select(Community).where(Community.name == props["name"]))
    if existing is not None:
        return SeedResult(community=existing, created=False)
    community = communities.create_community(
        session, name=props["name"], kind=props["kind"], boundary=geometry_from_geojson(feature["geometry"]),
        enterprise_count=props.get("enterprise_count"), worker_count=props.get("worker_count"),
        timezone=props.get("timezone", "Asia/Shanghai"))
    zone_features = _read(directory / "zones.geojson")["features"]
    for zf in zone_features:
        p = zf["properties"]
        zones.create_zone(session, community.id, code=p["code"], name=p["name"], liaison=p.get("liaison"),
                          geometry=geometry_from_geojson(zf["geometry"]))
    enterprise_features = _read(directory / "enterprises.geojson")["features"]
    for ef in enterprise_features:
        enterprises.create_enterprise(session, community.id, name=ef["properties"]["name"],
                                      workers=ef["properties"]["workers"], location=shape(ef["geometry"]))
    return SeedResult(community=community, created=True, zones=len(zone_features), enterprises=len(enterprise_features))
