"""Vector tiles at ``/tiles/{z}/{x}/{y}.pbf`` for web maps (the /map page, MapLibre, QGIS).

Layers zones, parking (lots with capacity and utilisation) and enterprises
for anyone; requests and volunteers on duty for admins (everywhere) and
liaisons (their zones, and the requests handed to them) who send their token. ``?layers=a,b`` picks layers.
An empty tile is a 204; tiles carry an ETag and are cacheable (publicly
only when they hold nothing personal).

Public tiles are also kept in memory per worker for as long as they tell
clients to keep them (``GRIDSVC_TILE_CACHE_SECONDS``, the max-age): the
same few dozen tiles of a park are asked for by every liaison and planner
at once. ``Cache-Control: no-cache`` in a request rebuilds the tile.
"""
from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict

from flask import Blueprint, Response, current_app, request

from gridsvc import auth, clock
from gridsvc.api import reject_unknown_parameters
from gridsvc.db import current_session, without_transaction
from gridsvc.errors import BadRequest, Forbidden
from gridsvc.services import tiles as service

blp = Blueprint("tiles", __name__)

MVT = "application/vnd.mapbox-vector-tile"
# Personal layers (requests, volunteers on duty) change by the minute and are never kept here: a browser
# may keep them a minute. Public tiles are sent with the max-age this worker keeps them for
# (GRIDSVC_TILE_CACHE_SECONDS), so the two copies expire together.
PERSONAL_MAX_AGE_S = 60


class TileCache:
    """A least-recently-used map of tile key -> (bytes, ETag), each entry kept
    ``ttl_s`` seconds, at most ``max_bytes`` in all; shared by a worker's threads."""

    def __init__(self, ttl_s: float, max_bytes: int) -> None:
        self.ttl_s, self.max_bytes, self.size = ttl_s, max_bytes, 0
        self._entries: OrderedDict[tuple, tuple[float, bytes, str]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> tuple[bytes, str, float] | None:
        """(bytes, ETag, seconds since stored), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            age = time.monotonic() - entry[0]
            if age > self.ttl_s:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return entry[1], entry[2], age

    def put(self, key: tuple, data: bytes, etag: str) -> None:
        if self.ttl_s <= 0 or len(data) > self.max_bytes:
            return
        with self._lock:
            if key in self._entries:
                self._drop(key)
            self._entries[key] = (time.monotonic(), data, etag)
            self.size += len(data)
            while self.size > self.max_bytes:
                self._drop(next(iter(self._entries)))

    def _drop(self, key: tuple) -> None:
        self.size -= len(self._entries.pop(key)[1])


def _cache() -> TileCache:
    cache = current_app.extensions.get("gridsvc.tiles")
    if cache is None:
        cache = current_app.extensions["gridsvc.tiles"] = TileCache(
            float(current_app.config["GRIDSVC_TILE_CACHE_SECONDS"]),
            int(float(current_app.config["GRIDSVC_TILE_CACHE_MB"]) * 1024 * 1024))
    return cache


def _coordinate(name: str, raw: str) -> int:
    if not (raw.isascii() and raw.isdigit()):  # str.isdigit alone takes "²", which int() refuses
        raise BadRequest(f"{name} must be a non-negative integer.", errors={name: ["not a non-negative integer"]})
    return int(raw)


def _viewer(principal: auth.Principal) -> service.Viewer:
    if "admin" in principal.roles:
        return service.Viewer(all_zones=True)
    if "liaison" in principal.roles:
        return service.Viewer(zone_ids=tuple(sorted(principal.liaison_zone_ids)), liaison_id=principal.user_id)
    return service.Viewer()


def _layers(viewer: service.Viewer) -> tuple[str, ...]:
    reject_unknown_parameters({"layers"})
    if "layers" not in request.args:
        return service.LAYERS if viewer.sees_personal else service.PUBLIC_LAYERS
    asked = tuple(dict.fromkeys(n.strip() for n in request.args["layers"].split(",") if n.strip()))
    wrong = [n for n in asked if n not in service.LAYERS]
    if not asked or wrong:
        raise BadRequest(f"layers must name some of {', '.join(service.LAYERS)}.",
                         errors={"layers": [f"unknown: {', '.join(wrong)}" if wrong else "empty"]})
    personal = [n for n in asked if n in service.PERSONAL_LAYERS]
    if personal and not viewer.sees_personal:
        raise Forbidden(f"The layers {', '.join(personal)} are for admins and zone liaisons; sign in as one.")
    return asked


@blp.route("/tiles/<z>/<x>/<y>.pbf")
@auth.access(auth.PUBLIC)
def tile(z: str, x: str, y: str):
    z_, x_, y_ = _coordinate("z", z), _coordinate("x", x), _coordinate("y", y)
    if not service.valid_tile(z_, x_, y_):
        raise BadRequest(f"No tile {z}/{x}/{y}: z is 0..{service.MAX_ZOOM} and x, y are 0..2^z-1.",
                         errors={"tile": ["out of range"]})
    viewer = _viewer(auth.current_principal())
    layers = _layers(viewer)
    personal = any(n in service.PERSONAL_LAYERS for n in layers)
    cache_control = (f"private, max-age={PERSONAL_MAX_AGE_S}" if personal
                     else f"public, max-age={max(0, int(_cache().ttl_s))}")
    headers = {"Cache-Control": cache_control, "Vary": "Authorization"}
    key = (z_, x_, y_, layers)
    cached = None if personal or "no-cache" in request.headers.get("Cache-Control", "") else _cache().get(key)
    if cached is not None:
        data, etag, age = cached
        # how old our copy is (RFC 9111 Age): a client keeps it only for what is left of max-age, so a new count
        # still shows within a minute of the tile being drawn
        headers["Age"] = str(int(age))
    else:
        session = current_session()
        without_transaction(session)  # one statement answers
        data = service.tile(session, z_, x_, y_, layers, viewer, clock.now())
        etag = hashlib.md5(data, usedforsecurity=False).hexdigest() if data else ""
        if not personal:
            _cache().put(key, data, etag)
    if not data:
        return Response(status=204, headers=headers, content_type=MVT)
    headers["ETag"] = f'"{etag}"'
    if request.if_none_match.contains_weak(etag):  # If-None-Match compares weakly (RFC 9110 13.1.2)
        return Response(status=304, headers=headers)
    return Response(data, content_type=MVT, headers=headers)
