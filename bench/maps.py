"""maps: OGC API - Features items and vector tiles against pygeoapi and tipg
(issue 7), all serving the same tables of the same database in the same run.

A generated town (``bench parking``'s: 10,000 lots, 1,000,000 spaces) is
loaded into ``<db>_bench_maps``. Each server in turn (never two at once) runs
with the same number of workers and is first checked to return the same data
as the database (same ids, numberMatched, properties and geometries; the same
lots in the tile), then loaded with wrk (keep-alive, and with
``Connection: close``) and timed by one sequential client:

- ``items?limit=100``, ``items?limit=100&bbox=...`` and ``items/{id}`` of
  ``parking-spaces`` (``--collections`` adds ``parking-lots``);
- the z14 tile holding most lots: gridsvc's ``?layers=parking`` (like for like)
  and its full tile, against tipg's ``parking_lot`` tile.

With both gridsvc-sync and tipg chosen, the tile rebuilt on every request is
then also timed head to head: both servers up, ours and tipg's loaded in turns
for ``--rounds`` rounds, and the median of the rounds' ratios is the figure
(this machine's speed drifts over minutes, which a ratio of two runs made
minutes apart would carry).

Servers: gridsvc under gunicorn (sync, and gthread with ``--gthreads``
threads), pygeoapi 0.24 under gunicorn (sync), tipg 1.6 under uvicorn. The
peers are installed on first use into ``.gridsvc/peers/`` (see bench/peers.py).

    python -m bench maps [--seconds 10] [--workers 2] [--gthreads 4] [--collections parking-spaces,parking-lots]
                         [--servers gridsvc-sync,gridsvc-gthread,pygeoapi,tipg] [--reuse-db] [--rounds 3]

Goal (issue 7): items at least 2x the faster peer, tiles at least 1.5x tipg
(here: in both keep-alive and close modes). The table is also written to
``.gridsvc/bench/maps.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, Callable

import psycopg2
import requests
import shapely
from shapely.geometry import shape
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from bench import peers
from bench.common import load_town, print_table, run_wrk, served
from bench.parking import _populate
from gridsvc import localdb
from gridsvc.config import database_url
from gridsvc.migrate import upgrade

Z = 14
ITEMS_LIMIT = 100
GOALS = {"items": 2.0, "tiles": 1.5}
SERVERS = ("gridsvc-sync", "gridsvc-gthread", "pygeoapi", "tipg")
EXTRA_SERVERS = ("tipg-as-is",)  # tipg on stock uvicorn --workers, with its ~40 ms keep-alive stall (see bench/peers.py)
TIPG_TILE_PROPERTIES = "id,name,access,kind,zone_id"  # the plain columns gridsvc's parking layer carries


# ---------------------------------------------------------------- data


def maps_database(lots: int, per_lot: int, reuse: bool) -> str:
    """``<db>_bench_maps``: its own scratch database, so other benchmarks' ``<db>_bench`` runs leave it alone."""
    base = database_url()
    if not base:
        raise SystemExit("no database: run `gridsvc db start` or set DATABASE_URL")
    parsed = make_url(base)
    url = parsed.set(database=f"{parsed.database}_bench_maps").render_as_string(hide_password=False)
    marker = f"bench maps: lots={lots} spaces-per-lot={per_lot}"
    if reuse:
        try:
            conn = psycopg2.connect(_dsn(url))
        except psycopg2.OperationalError:
            conn = None
        if conn is not None:
            try:
                with conn.cursor() as cur:
                    cur.execute("SELECT shobj_description(oid, 'pg_database') FROM pg_database "
                                "WHERE datname = current_database()")
                    same = cur.fetchone()[0] == marker
            finally:
                conn.close()
            if same:
                upgrade(url)
                _settle(url)  # a new migration may have rewritten a table
                print(f"reusing {parsed.database}_bench_maps ({marker})")
                return url
    started = time.perf_counter()
    localdb.ensure_database(url, recreate=True)
    upgrade(url)
    engine = create_engine(url)
    community_id, _ = load_town(engine, max(1, lots // 10))
    _populate(engine, community_id, per_lot)
    engine.dispose()
    _settle(url)
    conn = psycopg2.connect(_dsn(url))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f"COMMENT ON DATABASE {make_url(url).database} IS %s", (marker,))
    finally:
        conn.close()
    print(f"built {make_url(url).database} in {time.perf_counter() - started:.0f} s")
    return url


def _settle(url: str) -> None:
    """Visibility map set and statistics fresh, as on a settled production table: index-only scans for everyone."""
    conn = psycopg2.connect(_dsn(url))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for table in ("parking_lot", "parking_space"):
                cur.execute(f"VACUUM ANALYZE {table}")
    finally:
        conn.close()


def _dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@dataclass
class Scenario:
    """What is asked, chosen from the data: the densest z14 tile, a box in it, an item in it."""

    tile: tuple[int, int, int]
    tile_lots: int
    bboxes: dict[str, str]  # collection -> "minlon,minlat,maxlon,maxlat"
    item_ids: dict[str, int]
    sizes: dict[str, int] = field(default_factory=dict)


def choose(cur, published: list[peers.Table]) -> Scenario:
    size = 2 * 20037508.342789244 / 2 ** Z
    cur.execute(f"""
        WITH c AS (SELECT ST_Transform(ST_Centroid(geom), 3857) AS p FROM parking_lot)
        SELECT floor((ST_X(p) + 20037508.342789244) / {size})::int, floor((20037508.342789244 - ST_Y(p)) / {size})::int,
               count(*)
        FROM c GROUP BY 1, 2 ORDER BY 3 DESC, 1, 2 LIMIT 1""")
    row = cur.fetchone()
    if row is None:
        raise SystemExit("no parking lots in the bench database")
    x, y, n = row
    cur.execute("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e), ST_X(ST_Centroid(e)), ST_Y(ST_Centroid(e)) "
                "FROM (SELECT ST_Transform(ST_TileEnvelope(%s, %s, %s), 4326) AS e) s", (Z, x, y))
    minx, miny, maxx, maxy, cx, cy = cur.fetchone()
    bboxes, item_ids, sizes = {}, {}, {}
    for t in published:
        if t.table == "parking_space":  # about 400 m x 330 m: a couple of thousand spaces
            box = (cx - 0.002, cy - 0.0015, cx + 0.002, cy + 0.0015)
        else:  # the tile itself: several hundred lots
            box = (minx, miny, maxx, maxy)
        bboxes[t.collection] = ",".join(f"{v:.6f}" for v in box)
        cur.execute(f"SELECT id FROM {t.table} ORDER BY {t.geometry} <-> ST_SetSRID(ST_MakePoint(%s, %s), 4326) LIMIT 1",
                    (cx, cy))
        item_ids[t.collection] = cur.fetchone()[0]
        cur.execute(f"SELECT count(*) FROM {t.table}")
        sizes[t.table] = cur.fetchone()[0]
    return Scenario((Z, x, y), n, bboxes, item_ids, sizes)


# ---------------------------------------------------------------- the same data everywhere


class Mismatch(SystemExit):
    pass


def _norm(value: Any) -> Any:
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    return value


class Truth:
    """What the database says each request must answer."""

    def __init__(self, cur, published: list[peers.Table], scenario: Scenario):
        self.cur = cur
        self.tables = {t.collection: t for t in published}
        self.scenario = scenario

    def rows(self, t: peers.Table, ids: list[int]) -> dict[int, tuple[dict, Any]]:
        cols = ", ".join(t.columns)
        self.cur.execute(f"SELECT id, {cols}, ST_AsBinary({t.geometry}) FROM {t.table} WHERE id = ANY(%s)", (ids,))
        out = {}
        for r in self.cur.fetchall():
            out[r[0]] = ({c: _norm(v) for c, v in zip(t.columns, r[1:-1])}, shapely.from_wkb(bytes(r[-1])))
        return out

    def page(self, t: peers.Table, bbox: str | None) -> tuple[list[int], int]:
        where, params = "TRUE", []
        if bbox:
            where = f"ST_Intersects({t.geometry}, ST_MakeEnvelope(%s, %s, %s, %s, 4326))"
            params = [float(v) for v in bbox.split(",")]
        self.cur.execute(f"SELECT id FROM {t.table} WHERE {where} ORDER BY id LIMIT {ITEMS_LIMIT}", params)
        ids = [r[0] for r in self.cur.fetchall()]
        self.cur.execute(f"SELECT count(*) FROM {t.table} WHERE {where}", params)
        return ids, self.cur.fetchone()[0]

    def tile_ids(self, margin: float = 0.0) -> set[int]:
        z, x, y = self.scenario.tile
        self.cur.execute("SELECT id FROM parking_lot WHERE ST_Intersects(geom, ST_Transform(ST_TileEnvelope(%s, %s, %s, "
                         "margin => %s), 4326))", (z, x, y, margin))
        return {r[0] for r in self.cur.fetchall()}

    # -- checks

    def check_feature(self, where: str, t: peers.Table, feature: dict, expected: tuple[dict, Any]) -> None:
        props, geom = expected
        got = feature.get("properties") or {}
        missing = [c for c in t.columns if c not in got]
        if missing:
            raise Mismatch(f"{where}: feature {feature.get('id')} lacks properties {missing}")
        wrong = {c: (got[c], props[c]) for c in t.columns if got[c] != props[c]}
        if wrong:
            raise Mismatch(f"{where}: feature {feature.get('id')} has other values (served, stored): {wrong}")
        served_geom = shape(feature["geometry"])
        if not served_geom.equals_exact(geom, tolerance=1e-6):
            raise Mismatch(f"{where}: feature {feature.get('id')} geometry {served_geom.wkt[:120]} "
                           f"differs from the stored {geom.wkt[:120]}")

    def check_items(self, where: str, collection: str, body: dict, bbox: str | None) -> None:
        t = self.tables[collection]
        ids, matched = self.page(t, bbox)
        got = [_int(f.get("id")) for f in body.get("features", [])]
        if got != ids:
            raise Mismatch(f"{where}: feature ids differ from the database's first {ITEMS_LIMIT} by id: "
                           f"served {got[:5]}... ({len(got)}), stored {ids[:5]}... ({len(ids)})")
        if "numberMatched" in body and body["numberMatched"] != matched:
            raise Mismatch(f"{where}: numberMatched {body['numberMatched']} but the database has {matched}")
        if body.get("numberReturned", len(got)) != len(ids):
            raise Mismatch(f"{where}: numberReturned {body.get('numberReturned')} for {len(ids)} features")
        stored = self.rows(t, ids)
        for f in body["features"]:
            self.check_feature(where, t, f, stored[_int(f["id"])])

    def check_item(self, where: str, collection: str, body: dict) -> None:
        t = self.tables[collection]
        fid = self.scenario.item_ids[collection]
        if _int(body.get("id")) != fid:
            raise Mismatch(f"{where}: asked for feature {fid}, got {body.get('id')}")
        self.check_feature(where, t, body, self.rows(t, [fid])[fid])

    def check_tile(self, where: str, data: bytes, layer: str, id_from: str, margin: float) -> int:
        import mapbox_vector_tile

        decoded = mapbox_vector_tile.decode(data)
        if layer not in decoded:
            raise Mismatch(f"{where}: no layer {layer!r} in the tile (layers: {sorted(decoded)})")
        features = decoded[layer]["features"]
        got = [_int(f["id"] if id_from == "id" else f["properties"].get("id")) for f in features]
        if len(got) != len(set(got)):
            raise Mismatch(f"{where}: duplicate features in the tile")
        inside, with_margin = self.tile_ids(), self.tile_ids(margin)
        if not inside <= set(got) <= with_margin:
            raise Mismatch(f"{where}: tile lots differ from the database: {len(inside - set(got))} missing, "
                           f"{len(set(got) - with_margin)} outside the tile and its margin")
        return len(got)


def _int(v: Any) -> int | None:
    try:
        return int(v)
    except (TypeError, ValueError):
        return None


# ---------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    name: str
    kind: str  # "items" | "tiles"
    paths: dict[str, str]  # server family ("gridsvc", "pygeoapi", "tipg") -> path
    check: Callable[[str, str, requests.Response], str]  # (where, family, answer): raises Mismatch, returns a note
    baseline: str | None = None  # tiles: the target whose tipg figures this one is compared with
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request of this target


def targets(published: list[peers.Table], s: Scenario, truth: Truth) -> list[Target]:
    out = []

    def json_check(fn):
        def check(where: str, family: str, r: requests.Response) -> str:
            if r.status_code != 200:
                raise Mismatch(f"{where}: HTTP {r.status_code}: {r.text[:300]}")
            body = r.json()
            fn(where, body)
            return f"{len(body.get('features', [body]))} features, {len(r.content):,} bytes"
        return check

    for t in published:
        c = t.collection
        bbox = s.bboxes[c]
        fid = s.item_ids[c]
        out.append(Target(f"{c} items?limit={ITEMS_LIMIT}", "items", {
            "gridsvc": f"/ogc/collections/{c}/items?limit={ITEMS_LIMIT}",
            "pygeoapi": f"/collections/{c}/items?f=json&limit={ITEMS_LIMIT}",
            "tipg": f"/collections/public.{t.table}/items?limit={ITEMS_LIMIT}",
        }, json_check(lambda w, b, c=c: truth.check_items(w, c, b, None))))
        out.append(Target(f"{c} items?limit={ITEMS_LIMIT}&bbox", "items", {
            "gridsvc": f"/ogc/collections/{c}/items?limit={ITEMS_LIMIT}&bbox={bbox}",
            "pygeoapi": f"/collections/{c}/items?f=json&limit={ITEMS_LIMIT}&bbox={bbox}",
            "tipg": f"/collections/public.{t.table}/items?limit={ITEMS_LIMIT}&bbox={bbox}",
        }, json_check(lambda w, b, c=c, bbox=bbox: truth.check_items(w, c, b, bbox))))
        out.append(Target(f"{c} items/{{id}}", "items", {
            "gridsvc": f"/ogc/collections/{c}/items/{fid}",
            "pygeoapi": f"/collections/{c}/items/{fid}?f=json",
            "tipg": f"/collections/public.{t.table}/items/{fid}",
        }, json_check(lambda w, b, c=c: truth.check_item(w, c, b))))

    from gridsvc.services.tiles import BUFFER, EXTENT

    z, x, y = s.tile

    def tile_check(layer: str, id_from: str, margin: float, full: bool = False):
        def check(where: str, family: str, r: requests.Response) -> str:
            if r.status_code != 200:
                raise Mismatch(f"{where}: HTTP {r.status_code}: {r.text[:300]}")
            n = truth.check_tile(where, r.content, layer, id_from, margin)
            if full:
                import mapbox_vector_tile

                layers = mapbox_vector_tile.decode(r.content)
                counts = ", ".join(f"{name} {len(layer['features'])}" for name, layer in layers.items())
                return f"{counts}; {len(r.content):,} bytes"
            return f"{n} lots, {len(r.content):,} bytes"
        return check

    # tipg: 256 px of buffer around its 4096, but it selects only lots that touch the tile itself
    tipg_tile = f"/collections/public.parking_lot/tiles/WebMercatorQuad/{z}/{x}/{y}?properties={TIPG_TILE_PROPERTIES}"
    lots_tile = Target(f"z{z} tile, parking lots", "tiles", {
        "gridsvc": f"/tiles/{z}/{x}/{y}.pbf?layers=parking",
        "tipg": tipg_tile,
    }, lambda w, family, r: (tile_check("default", "property", 0.0) if family == "tipg"
                             else tile_check("parking", "id", BUFFER / EXTENT))(w, family, r))
    out.append(lots_tile)
    # Ours keeps public tiles in memory for their max-age; "no-cache" makes it
    # build every tile again, which is what tipg does on every request.
    rebuild = (("Cache-Control", "no-cache"),)
    out.append(Target(f"z{z} tile, parking lots, rebuilt (no-cache)", "tiles", {
        "gridsvc": f"/tiles/{z}/{x}/{y}.pbf?layers=parking",
    }, tile_check("parking", "id", BUFFER / EXTENT), baseline=lots_tile.name, headers=rebuild))
    out.append(Target(f"z{z} tile, all layers (ours) vs tipg lots", "tiles", {
        "gridsvc": f"/tiles/{z}/{x}/{y}.pbf",
    }, tile_check("parking", "id", BUFFER / EXTENT, full=True), baseline=lots_tile.name))
    out.append(Target(f"z{z} tile, all layers, rebuilt (no-cache)", "tiles", {
        "gridsvc": f"/tiles/{z}/{x}/{y}.pbf",
    }, tile_check("parking", "id", BUFFER / EXTENT, full=True), baseline=lots_tile.name, headers=rebuild))
    return out


# ---------------------------------------------------------------- load


def wrk(url: str, seconds: int, connections: int, threads: int, close: bool,
        headers: tuple[tuple[str, str], ...] = ()) -> dict:
    closing = (("Connection", "close"),) if close else ()
    return run_wrk(url, seconds=seconds, connections=connections, threads=threads, headers=closing + tuple(headers),
                   timeout_s=10)


def sequential(url: str, n: int, headers: tuple[tuple[str, str], ...] = ()) -> float:
    """Median milliseconds of one client asking n times in a row over one keep-alive connection."""
    samples = []
    with requests.Session() as session:
        session.headers["Accept-Encoding"] = "identity"  # tipg compresses when asked; the others do not
        session.headers.update(dict(headers))
        for i in range(n + 10):
            start = time.perf_counter()
            r = session.get(url)
            elapsed = time.perf_counter() - start
            if r.status_code != 200:
                raise SystemExit(f"{url} answered {r.status_code} during the sequential run")
            if i >= 10:
                samples.append(elapsed * 1000)
    return statistics.median(samples)


class OthersCpu:
    """CPU used by other work (not this benchmark, its servers, wrk, or the bench database's
    backends) over a stretch of time, as a fraction of all cores, from /proc."""

    def __init__(self, dsn: str):
        self.dsn = dsn
        self.tick = os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _processes() -> dict[int, tuple[int, int]]:
        """pid -> (ppid, utime + stime ticks)."""
        out = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
        return out

    def _ours(self, procs: dict[int, tuple[int, int]]) -> set[int]:
        mine = {os.getpid()}
        changed = True
        while changed:
            changed = False
            for pid, (ppid, _) in procs.items():
                if ppid in mine and pid not in mine:
                    mine.add(pid)
                    changed = True
        try:
            conn = psycopg2.connect(self.dsn)
            try:
                with conn.cursor() as cur:
                    # the bench database's backends (and their parallel workers) and the server's own helpers
                    cur.execute("SELECT pid FROM pg_stat_activity WHERE datname = current_database() OR datname IS NULL")
                    mine |= {r[0] for r in cur.fetchall()}
            finally:
                conn.close()
        except psycopg2.Error:
            pass
        return mine

    def start(self) -> None:
        self.t0, self.p0 = time.monotonic(), self._processes()

    def stop(self) -> float:
        procs = self._processes()
        ours = self._ours(procs)
        ticks = sum(t - self.p0.get(pid, (0, 0))[1] for pid, (_, t) in procs.items() if pid not in ours)
        return ticks / self.tick / max(1e-6, (time.monotonic() - self.t0) * (os.cpu_count() or 1))


def busy_cpu(seconds: float = 1.0) -> float:
    """The fraction of all cores busy over ``seconds`` (from /proc/stat): others' load while ours idles."""
    def sample():
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait
    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def wait_quiet(limit: float, patience: float) -> float:
    """Wait (up to ``patience`` s) until other processes use under ``limit`` of the CPU; returns the last reading.

    The machine is shared: a test suite running beside the benchmark takes the
    cores every server needs, so each server starts on a quiet machine or the
    table says it did not."""
    deadline = time.monotonic() + patience
    warned = False
    while True:
        busy = busy_cpu()
        if busy < limit or time.monotonic() > deadline:
            if busy >= limit:
                print(f"  WARNING: other processes keep {busy:.0%} of the CPU busy: figures are disturbed")
            return busy
        if not warned:
            print(f"  waiting for a quiet machine ({busy:.0%} of the CPU busy with other work) ...", flush=True)
            warned = True


def tiles_head_to_head(start_ours: Callable, start_tipg: Callable, ours_path: str,
                       ours_headers: tuple[tuple[str, str], ...], tipg_path: str, args: argparse.Namespace) -> dict:
    """Our tile rebuilt on every request and tipg's, loaded in turns (ours, tipg, ours, ...) with both
    servers up (the idle one takes no CPU). The machine's speed drifts over minutes here, and a ratio of
    two runs made minutes apart carries that drift; runs made back to back do not."""
    rounds = []
    with ExitStack() as stack:
        ours, tipg = stack.enter_context(start_ours()), stack.enter_context(start_tipg())
        for base, path, headers in ((ours, ours_path, ours_headers), (tipg, tipg_path, ())):
            wrk(base + path, args.warmup, args.connections, args.threads, close=False, headers=headers)
        for n in range(1, args.rounds + 1):
            for mode, close in (("keep-alive", False), ("close", True)):
                a = wrk(ours + ours_path, args.seconds, args.connections, args.threads, close, ours_headers)
                b = wrk(tipg + tipg_path, args.seconds, args.connections, args.threads, close)
                rounds.append({"round": n, "mode": mode, "ours": a["rate"], "tipg": b["rate"],
                               "ratio": a["rate"] / b["rate"]})
                print(f"  round {n} {mode}: ours {a['rate']:.0f} req/s, tipg {b['rate']:.0f} req/s, "
                      f"{a['rate'] / b['rate']:.2f}x", flush=True)
    median = {mode: round(statistics.median(r["ratio"] for r in rounds if r["mode"] == mode), 2)
              for mode in ("keep-alive", "close")}
    return {"rounds": rounds, "median": median, "goal_met": all(v >= GOALS["tiles"] for v in median.values())}


# ---------------------------------------------------------------- main


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench maps", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lots", type=int, default=10_000)
    parser.add_argument("--spaces-per-lot", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per target, server and mode")
    parser.add_argument("--warmup", type=int, default=2, help="wrk warm-up seconds per target and server")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--workers", type=int, default=2, help="worker processes, the same for every server")
    parser.add_argument("--gthreads", type=int, default=4, help="threads per gridsvc gthread worker")
    parser.add_argument("--requests", type=int, default=200, help="sequential requests per target and server")
    parser.add_argument("--collections", default="parking-spaces",
                        help="comma-separated: parking-spaces, parking-lots")
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help=f"comma-separated, of {', '.join(SERVERS + EXTRA_SERVERS)} (default: all but {', '.join(EXTRA_SERVERS)})")
    parser.add_argument("--reuse-db", action="store_true", help="keep the bench database if it holds the same data")
    parser.add_argument("--rounds", type=int, default=3,
                        help="head-to-head rounds of the rebuilt tile against tipg's, both servers up (0: none)")
    parser.add_argument("--quiet-wait", type=float, default=180,
                        help="seconds to wait per server for other processes to leave the CPU (under 10%%)")
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        raise SystemExit("bench maps needs wrk: apt-get install wrk")
    chosen = [s.strip() for s in args.servers.split(",") if s.strip()]
    if unknown := sorted(set(chosen) - set(SERVERS) - set(EXTRA_SERVERS)):
        raise SystemExit(f"unknown servers: {', '.join(unknown)}")
    started = time.perf_counter()

    # the peers first: a failed install should not cost a database build
    for name in ("pygeoapi", "tipg"):
        if any(server.startswith(name) for server in chosen):
            peers.ensure_installed(name)

    published = peers.tables([c.strip() for c in args.collections.split(",") if c.strip()])
    if "parking_lot" not in {t.table for t in published}:  # the tile compares lots, and needs their catalogue entry
        published_all = published + peers.tables(["parking-lots"])
    else:
        published_all = published
    url = maps_database(args.lots, args.spaces_per_lot, args.reuse_db)
    conn = psycopg2.connect(_dsn(url))
    conn.autocommit = True
    cur = conn.cursor()
    scenario = choose(cur, published_all)
    truth = Truth(cur, published_all, scenario)
    all_targets = targets(published, scenario, truth)
    extents = {}
    for t in published_all:
        cur.execute(f"SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e) FROM (SELECT ST_Extent({t.geometry}) e "
                    f"FROM {t.table}) s")
        extents[t.collection] = [round(v, 6) for v in cur.fetchone()]
    z, x, y = scenario.tile
    print(f"data: {scenario.sizes}; tile {z}/{x}/{y} with {scenario.tile_lots} lots; bboxes {scenario.bboxes}; "
          f"items {scenario.item_ids}")

    servers = {
        "gridsvc-sync": ("gridsvc", f"gunicorn {args.workers} sync workers",
                         lambda: served(url, args.workers, "sync", 1)),
        "gridsvc-gthread": ("gridsvc", f"gunicorn {args.workers} gthread workers x {args.gthreads} threads",
                            lambda: served(url, args.workers, "gthread", args.gthreads)),
        "pygeoapi": ("pygeoapi", f"pygeoapi {peers.installed_version('pygeoapi')}, gunicorn {args.workers} sync workers",
                     lambda: peers.pygeoapi_served(url, published_all, extents, args.workers)),
        "tipg": ("tipg", f"tipg {peers.installed_version('tipg')}, uvicorn {args.workers} workers (TCP_NODELAY fixed)",
                 lambda: peers.tipg_served(url, published_all, args.workers)),
        "tipg-as-is": ("tipg", f"tipg {peers.installed_version('tipg')}, stock uvicorn {args.workers} workers",
                       lambda: peers.tipg_served(url, published_all, args.workers, nodelay_fix=False)),
    }
    results: dict[tuple[str, str], dict] = {}
    others = OthersCpu(_dsn(url))
    background: dict[str, float] = {}  # CPU busy with other work just before each server started
    for server in chosen:
        family, description, start = servers[server]
        print(f"\n== {server}: {description}", flush=True)
        background[server] = round(wait_quiet(0.10, args.quiet_wait), 3)
        with start() as base:
            mine = [t for t in all_targets if family in t.paths]
            for t in mine:  # the same data before any timing
                r = requests.get(base + t.paths[family], headers={"Accept-Encoding": "identity", **dict(t.headers)})
                note = t.check(f"{server} {t.name}", family, r)
                print(f"  checked {t.name}: {note}", flush=True)
            for t in mine:
                target_url = base + t.paths[family]
                wrk(target_url, args.warmup, args.connections, args.threads, close=False, headers=t.headers)
                others.start()
                keep = wrk(target_url, args.seconds, args.connections, args.threads, close=False, headers=t.headers)
                close = wrk(target_url, args.seconds, args.connections, args.threads, close=True, headers=t.headers)
                disturbed = others.stop()
                median = sequential(target_url, args.requests, t.headers)
                results[(t.name, server)] = {"keep_alive": keep, "close": close, "sequential_median_ms": median,
                                             "path": t.paths[family], "others_cpu": disturbed}
                print(f"  {t.name}: {keep['rate']:.0f} req/s keep-alive, {close['rate']:.0f} req/s close, "
                      f"{median:.1f} ms sequential median; other work took {disturbed:.0%} of the CPU", flush=True)
                errors = keep["non2xx"] + close["non2xx"]
                if errors:
                    print(f"  WARNING: {errors} non-2xx answers under load for {server} {t.name}")
    conn.close()
    head_to_head = None
    if args.rounds > 0 and {"gridsvc-sync", "tipg"} <= set(chosen):
        by_name = {t.name: t for t in all_targets}
        rebuilt = by_name[f"z{z} tile, parking lots, rebuilt (no-cache)"]
        print("\n== head to head: our parking tile rebuilt on every request against tipg's, in turns", flush=True)
        head_to_head = tiles_head_to_head(
            servers["gridsvc-sync"][2], servers["tipg"][2], rebuilt.paths["gridsvc"], rebuilt.headers,
            by_name[rebuilt.baseline].paths["tipg"], args)

    rows, records = [], []
    for t in all_targets:
        # the peers as configured for the comparison; tipg-as-is is shown beside them, not compared with
        peer_names = [p for p in ("pygeoapi", "tipg") if (t.name, p) in results] if t.kind == "items" else ["tipg"]
        base_target = t.baseline or t.name
        for server in chosen:
            res = results.get((t.name, server))
            if res is None:
                continue
            record = {"target": t.name, "kind": t.kind, "server": server, "description": servers[server][1],
                      "others_cpu_during": round(res["others_cpu"], 3),
                      "path": res["path"], "req_s_keep_alive": round(res["keep_alive"]["rate"], 1),
                      "req_s_close": round(res["close"]["rate"], 1),
                      "p50_ms_under_load_keep_alive": res["keep_alive"]["p50_ms"],
                      "sequential_median_ms": round(res["sequential_median_ms"], 2),
                      "errors": res["keep_alive"]["non2xx"] + res["close"]["non2xx"]
                      + res["keep_alive"]["socket_errors"] + res["close"]["socket_errors"]}
            ratio_text, goal_text, met_text = "", "", ""
            if server.startswith("gridsvc"):
                goal = GOALS[t.kind]
                ratios = {}
                for mode, key in (("keep_alive", "req_s_keep_alive"), ("close", "req_s_close")):
                    peer_rates = {p: results[(base_target, p)][mode]["rate"] for p in peer_names
                                  if (base_target, p) in results}
                    if peer_rates:
                        best = max(peer_rates, key=peer_rates.get)
                        ratios[mode] = {"vs": best, "ratio": round(record[key] / peer_rates[best], 2)}
                if ratios:
                    record["ratios"] = ratios
                    record["goal"] = goal
                    record["goal_met"] = all(r["ratio"] >= goal for r in ratios.values())
                    ratio_text = " / ".join(f"{r['ratio']:.2f}x {r['vs']}" for r in ratios.values())
                    goal_text = f">= {goal}x {'faster peer' if t.kind == 'items' else 'tipg'}"
                    met_text = "yes" if record["goal_met"] else "NO"
            records.append(record)
            rows.append((t.name, server, f"{record['req_s_keep_alive']:.0f}", f"{record['req_s_close']:.0f}",
                         f"{record['p50_ms_under_load_keep_alive']:.1f}" if record["p50_ms_under_load_keep_alive"] else "",
                         f"{record['sequential_median_ms']:.1f}", record["errors"], f"{res['others_cpu']:.0%}",
                         ratio_text, goal_text, met_text))

    print()
    print(f"{os.cpu_count()} cores; every server {args.workers} workers; wrk {args.threads} threads x "
          f"{args.connections} connections, {args.seconds} s per cell after {args.warmup} s warm-up; "
          f"sequential median of {args.requests} requests on one keep-alive connection")
    print_table(["target", "server", "req/s keep-alive", "req/s close", "p50 ms (load, k-a)", "seq median ms",
                 "errors", "others' CPU", "ours / peer (k-a / close)", "goal", "met"], rows)
    if head_to_head is not None:
        print(f"\nz{z} parking tile rebuilt on every request, head to head with tipg's (both up, loaded in turns, "
              f"{args.seconds} s each):")
        print_table(["round", "mode", "ours req/s", "tipg req/s", "ratio"],
                    [(r["round"], r["mode"], f"{r['ours']:.0f}", f"{r['tipg']:.0f}", f"{r['ratio']:.2f}x")
                     for r in head_to_head["rounds"]])
        print("median ratio: " + ", ".join(f"{mode} {ratio:.2f}x" for mode, ratio in head_to_head["median"].items())
              + f" (goal >= {GOALS['tiles']}x: {'met' if head_to_head['goal_met'] else 'NOT met'})")
    report = {
        "benchmark": "maps", "issue": 7, "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cores": os.cpu_count(), "platform": platform.platform()},
        "settings": {"workers": args.workers, "gthreads": args.gthreads, "wrk_threads": args.threads,
                     "connections": args.connections, "seconds": args.seconds, "warmup": args.warmup,
                     "sequential_requests": args.requests},
        "servers": {s: servers[s][1] for s in chosen},
        "background_cpu_before": background,
        "data": {"rows": scenario.sizes, "tile": list(scenario.tile), "tile_lots": scenario.tile_lots,
                 "bboxes": scenario.bboxes, "item_ids": scenario.item_ids},
        "goals": {"items": "ours >= 2x the faster peer", "tiles": "ours >= 1.5x tipg", "modes": "keep-alive and close"},
        "rows": records,
        "tiles_head_to_head": head_to_head,
    }
    # a run of some servers only does not replace the full table
    name = "maps.json" if chosen == list(SERVERS) else f"maps-{'+'.join(chosen)}.json"
    out = localdb.home_dir() / "bench" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1, ensure_ascii=False))
    noisy = sorted({f"{server} ({res['others_cpu']:.0%})" for (_, server), res in results.items() if res["others_cpu"] >= 0.05})
    if noisy:
        print(f"\nWARNING: other work used the CPU while timing {', '.join(noisy)}: those figures are disturbed; "
              f"run again on a quiet machine")
    print(f"\nwritten to {out} ({time.perf_counter() - started:.0f} s in all)")
    return 0
