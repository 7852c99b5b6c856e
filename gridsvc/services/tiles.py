"""Mapbox Vector Tiles of a park, built by PostGIS (``ST_AsMVT``).

Each layer filters in a stored SRID against the tile's envelope, so a GiST
index answers: parking lots (the densest layer) have a stored Web Mercator
copy of their geometry (``geom_3857``, migration 0011); the other layers are
filtered in 4326 against the envelope transformed once, and only the rows
found are transformed to Web Mercator. Then they are clipped. Layers with personal data
(volunteers on duty, open requests) go only to callers allowed to see them:
admins everywhere, a liaison in their own zones (and the requests handed to
them from a zone without a liaison).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from gridsvc.db import fetch_prepared
from gridsvc.models import OPEN_STATUSES
from gridsvc.services.maps import lot_occupancy_sql
from gridsvc.services.parking import FRESH_OBSERVATION

MAX_ZOOM = 22
EXTENT = 4096
BUFFER = 64  # pixels of the tile's 4096 drawn beyond its edge, so lines and labels meet across tiles
PUBLIC_LAYERS = ("zones", "parking", "enterprises")
PERSONAL_LAYERS = ("requests", "volunteers")
LAYERS = PUBLIC_LAYERS + PERSONAL_LAYERS


@dataclass(frozen=True)
class Viewer:
    """Whose personal layers the tile may carry: all zones, some zones, or none."""

    all_zones: bool = False
    zone_ids: tuple[int, ...] = ()
    # a liaison's account: requests handed to them from a zone without a liaison are theirs to see too
    liaison_id: int | None = None

    @property
    def sees_personal(self) -> bool:
        return self.all_zones or bool(self.zone_ids) or self.liaison_id is not None


def _mvt(layer: str, select: str) -> str:
    # OFFSET 0 keeps "geom IS NOT NULL" from being pushed into the select,
    # where it would clip every feature twice (once to filter, once to draw).
    return (f"(SELECT coalesce(ST_AsMVT(m, '{layer}', {EXTENT}, 'geom', 'id'), ''::bytea) FROM ({select} OFFSET 0) m "
            f"WHERE m.geom IS NOT NULL)")


def _geom(column: str, web_mercator: bool = False) -> str:
    geometry = column if web_mercator else f"ST_Transform({column}, 3857)"
    return f"ST_AsMVTGeom({geometry}, env.tile, {EXTENT}, {BUFFER}, true) AS geom"


def _zone_scope(column: str, all_zones: bool) -> str:
    return "TRUE" if all_zones else f"{column} = ANY(%(zone_ids)s)"


LAYER_SQL = {
    "zones": lambda all_zones: _mvt("zones", f"""
        SELECT z.id, z.code, z.name, z.community_id, {_geom('z.geom')}
        FROM zone z, env WHERE z.geom && env.query"""),
    # The inner OFFSET 0 keeps the lateral occupancy from being evaluated
    # once for each use (capacity, occupied, utilisation).
    "parking": lambda all_zones: _mvt("parking", f"""
        SELECT p.id, p.name, p.access, p.kind, p.zone_id, p.capacity, p.occupied,
               CASE WHEN p.capacity > 0 THEN round(p.occupied * 1000::float8 / p.capacity) / 1000 END AS utilisation,
               p.geom
        FROM (SELECT l.id, l.name, l.access, l.kind, l.zone_id, o.capacity, o.occupied, {_geom('l.geom_3857', True)}
              FROM parking_lot l CROSS JOIN LATERAL ({lot_occupancy_sql('l')}) o, env
              WHERE l.geom_3857 && env.query_3857 OFFSET 0) p"""),
    "enterprises": lambda all_zones: _mvt("enterprises", f"""
        SELECT e.id, e.name, e.workers, e.zone_id, {_geom('e.location')}
        FROM enterprise e, env WHERE e.location && env.query"""),
    "requests": lambda all_zones: _mvt("requests", f"""
        SELECT r.id, r.service_code, r.status, r.zone_id, gridsvc_isoformat(r.created_at) AS created_at,
               {_geom('r.location')}
        FROM service_request r, env
        WHERE r.location && env.query AND r.status IN {OPEN_STATUSES!r}
          AND ({_zone_scope('r.zone_id', all_zones)} OR r.liaison_id = %(liaison_id)s)"""),
    "volunteers": lambda all_zones: _mvt("volunteers", f"""
        SELECT vol.id, vol.real_name AS name, s.id AS shift_id, s.zone_id,
               gridsvc_isoformat(vol.last_position_at) AS position_at, {_geom('vol.last_position')}
        FROM volunteer vol JOIN shift s ON s.id = vol.on_duty_shift_id, env
        WHERE vol.on_duty_shift_id IS NOT NULL AND vol.last_position && env.query AND s.ends_at > %(now)s
          AND {_zone_scope('s.zone_id', all_zones)}"""),
}


def valid_tile(z: int, x: int, y: int) -> bool:
    return 0 <= z <= MAX_ZOOM and 0 <= x < 2 ** z and 0 <= y < 2 ** z


@functools.lru_cache(maxsize=256)
def _tile_sql(layers: tuple[str, ...], all_zones: bool) -> str:
    """The statement for these layers, built once (the zones themselves are a parameter)."""
    margin = BUFFER / EXTENT
    parts = " || ".join(LAYER_SQL[name](all_zones) for name in layers)
    # the tile as the box2d ST_AsMVTGeom takes: cast once, not once per feature. The query box in lon/lat is the
    # margined tile clipped to the world first: past the antimeridian, the transform wraps its edge round to the
    # other side (tile 1/0/0 became lon 2.8..177.2, and every tile at zoom 1-2 and in the first and last column
    # lost the layers filtered in lon/lat).
    return (f"WITH env AS (SELECT ST_TileEnvelope(%(z)s, %(x)s, %(y)s)::box2d AS tile, "
            f"ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => {margin}) AS query_3857, "
            f"ST_Transform(ST_Intersection(ST_TileEnvelope(%(z)s, %(x)s, %(y)s, margin => {margin}), "
            f"ST_TileEnvelope(0, 0, 0)), 4326) AS query) "
            f"SELECT {parts} FROM env")


def tile(session: Session, z: int, x: int, y: int, layers: tuple[str, ...], viewer: Viewer, now: datetime) -> bytes:
    """The tile with ``layers`` (in that order); empty bytes when nothing is in it."""
    sql = _tile_sql(layers, viewer.all_zones)
    params: dict[str, Any] = {"z": z, "x": x, "y": y, "now": now, "fresh_after": now - FRESH_OBSERVATION,
                              "zone_ids": list(viewer.zone_ids), "liaison_id": viewer.liaison_id}
    return bytes(fetch_prepared(session, sql, params)[0] or b"")
