"""parking: capacity queries at scale. A generated town of 1,000 zones holds
10,000 lots and 1,000,000 spaces (100 per lot, statuses set as sensors would);
capacity for one zone, for a 500 m radius and for a drawn polygon is asked
over HTTP (gunicorn) and, as the baseline, as the same aggregate in one bare
SQL statement, in the same run.

    python -m bench parking [--lots 10000] [--spaces-per-lot 100] [--requests 200]

Goal (issue 5): median under 50 ms for a zone at 1M spaces, HTTP within 2x of bare SQL.
"""
from __future__ import annotations

import argparse
import json
import random
import time

import psycopg2
from sqlalchemy import create_engine, text

from bench.common import LeanClient, bench_database_url, load_town, print_table, served, summary
from geo.io import geometry_to_geojson
from shapely.geometry import Point, box

# The same numbers the service answers (supply by type, lots, spaces, occupied,
# out of service), in one statement: the baseline. %(area)s is filled per selector.
BARE_SQL = """
WITH lots AS (
    SELECT id, capacity_car, capacity_accessible, capacity_ev_charging, capacity_truck, capacity_ebike
    FROM parking_lot l WHERE {lot_area} AND (opened_on IS NULL OR opened_on <= current_date)),
lone AS (
    SELECT id, space_type, status FROM parking_space s
    WHERE lot_id IS NULL AND {space_area} AND (opened_on IS NULL OR opened_on <= current_date))
SELECT
    (SELECT count(*) FROM lots),
    (SELECT coalesce(sum(capacity_car + capacity_accessible + capacity_ev_charging + capacity_truck + capacity_ebike), 0)
       FROM lots) + (SELECT count(*) FROM lone),
    (SELECT coalesce(sum(coalesce(
        (SELECT o.occupied FROM occupancy_observation o WHERE o.lot_id = lots.id
           AND o.observed_at > now() - interval '24 hours' ORDER BY o.observed_at DESC LIMIT 1),
        (SELECT count(*) FROM parking_space s WHERE s.lot_id = lots.id AND s.status IN ('occupied', 'reserved')))), 0)
       FROM lots) + (SELECT count(*) FROM lone WHERE status IN ('occupied', 'reserved')),
    (SELECT count(*) FROM parking_space s WHERE s.lot_id IN (SELECT id FROM lots)) + (SELECT count(*) FROM lone),
    (SELECT count(*) FROM parking_space s WHERE s.lot_id IN (SELECT id FROM lots) AND s.status = 'out_of_service')
      + (SELECT count(*) FROM lone WHERE status = 'out_of_service')
"""


def _populate(engine, community_id: int, per_lot: int) -> None:
    with engine.begin() as conn:
        # Ten lots of about 40 m x 40 m per zone, scattered inside it.
        conn.execute(text("""
            INSERT INTO parking_lot (community_id, zone_id, ref, name, access, kind, capacity_car, capacity_accessible,
                                     capacity_ev_charging, capacity_truck, capacity_ebike, geom)
            SELECT z.community_id, z.id, 'B' || z.id || '-' || g.n, 'Bench lot ' || z.id || '-' || g.n, 'public', 'surface',
                   :per_lot - 8, 3, 5, 0, 20,
                   ST_Envelope(ST_Buffer(g.pt::geography, 20)::geometry)
            FROM zone z
            CROSS JOIN LATERAL ST_Dump(ST_GeneratePoints(ST_Buffer(z.geom, -0.0005), 10, z.id)) WITH ORDINALITY AS g(path, pt, n)
            WHERE z.community_id = :c"""), {"c": community_id, "per_lot": per_lot})
        # Their stalls, with statuses as sensors report them.
        conn.execute(text("""
            INSERT INTO parking_space (community_id, zone_id, lot_id, ref, space_type, status, geom)
            SELECT l.community_id, l.zone_id, l.id, NULL,
                   CASE WHEN s.i % 33 = 0 THEN 'accessible' WHEN s.i % 20 = 0 THEN 'ev_charging' ELSE 'car' END,
                   CASE WHEN random() < 0.62 THEN 'occupied' WHEN random() < 0.03 THEN 'out_of_service' ELSE 'free' END,
                   s.pt
            FROM parking_lot l
            CROSS JOIN LATERAL ST_Dump(ST_GeneratePoints(l.geom, :per_lot, l.id)) WITH ORDINALITY AS s(path, pt, i)
            WHERE l.community_id = :c"""), {"c": community_id, "per_lot": per_lot})
        conn.execute(text("ANALYZE parking_lot"))
        conn.execute(text("ANALYZE parking_space"))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench parking", description=__doc__.split("\n\n")[0])
    parser.add_argument("--lots", type=int, default=10_000)
    parser.add_argument("--spaces-per-lot", type=int, default=100)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per selector and path")
    parser.add_argument("--seed", type=int, default=5)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    url = bench_database_url()
    engine = create_engine(url)
    started = time.perf_counter()
    community_id, boundary = load_town(engine, args.lots // 10)
    _populate(engine, community_id, args.spaces_per_lot)
    with engine.connect() as conn:
        lots, spaces = conn.execute(text("SELECT (SELECT count(*) FROM parking_lot), (SELECT count(*) FROM parking_space)")).one()
        zone_ids = list(conn.execute(text("SELECT id FROM zone WHERE community_id = :c"), {"c": community_id}).scalars())
    print(f"generated {lots:,} lots and {spaces:,} spaces over {len(zone_ids):,} zones in {time.perf_counter() - started:.0f} s")

    minx, miny, maxx, maxy = boundary.bounds
    def inside_point():
        while True:
            p = Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
            if boundary.contains(p):
                return p.x, p.y
    cases = {
        "zone": [rng.choice(zone_ids) for _ in range(args.requests)],
        "radius 500 m": [inside_point() for _ in range(args.requests)],
        "drawn polygon (~600 m)": [inside_point() for _ in range(args.requests)],
    }

    def polygon_at(x, y):  # about 600 m x 600 m
        return box(x - 0.003, y - 0.0027, x + 0.003, y + 0.0027)

    dsn = url.replace("postgresql+psycopg2://", "postgresql://")  # libpq reads ?host=/socket/dir too
    conn = psycopg2.connect(dsn)
    conn.autocommit = True

    def bare(kind, arg):
        if kind == "zone":
            sql = BARE_SQL.format(lot_area="l.zone_id = %(z)s", space_area="s.zone_id = %(z)s")
            params = {"z": arg}
        elif kind.startswith("radius"):
            lon, lat = arg
            area = ("{col} && ST_Expand(ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326), %(d)s) AND "
                    "ST_DWithin({col}::geography, ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326)::geography, 500)")
            sql = BARE_SQL.format(lot_area=area.format(col="l.geom"), space_area=area.format(col="s.geom"))
            params = {"x": lon, "y": lat, "d": 0.0062}
        else:
            area = "ST_Intersects({col}, ST_GeomFromText(%(wkt)s, 4326))"
            sql = BARE_SQL.format(lot_area=area.format(col="l.geom"), space_area=area.format(col="s.geom"))
            params = {"wkt": polygon_at(*arg).wkt}
        with conn.cursor() as cur:
            start = time.perf_counter()
            cur.execute(sql, params)
            cur.fetchone()
            return time.perf_counter() - start

    def http(client, kind, arg):
        start = time.perf_counter()
        if kind == "zone":
            status, body = client.call("GET", "/api/v1/parking/capacity", params={"zone_id": arg})
        elif kind.startswith("radius"):
            status, body = client.call("GET", "/api/v1/parking/capacity",
                                       params={"lon": arg[0], "lat": arg[1], "radius_m": 500})
        else:
            status, body = client.call("POST", "/api/v1/parking/capacity",
                                       body=json.dumps({"geometry": geometry_to_geojson(polygon_at(*arg))}),
                                       headers={"Content-Type": "application/json"})
        elapsed = time.perf_counter() - start
        if status != 200:
            raise SystemExit(f"capacity answered {status}: {body[:300]}")
        return elapsed

    rows = []
    with served(url) as base:
        client = LeanClient(base)
        for kind, args_list in cases.items():
            for arg in args_list[:10]:  # warm-up
                bare(kind, arg)
                http(client, kind, arg)
            sql_med, sql_p99 = summary([bare(kind, a) for a in args_list])
            http_med, http_p99 = summary([http(client, kind, a) for a in args_list])
            rows.append((kind, "bare SQL (baseline)", len(args_list), f"{sql_med:.1f}", f"{sql_p99:.1f}", "1.00"))
            rows.append((kind, "HTTP /api/v1/parking/capacity", len(args_list), f"{http_med:.1f}", f"{http_p99:.1f}",
                         f"{http_med / sql_med:.2f}"))
    conn.close()
    engine.dispose()
    print()
    print_table(["selector", "path", "n", "median ms", "p99 ms", "ratio (median vs SQL)"], rows)
    return 0

