"""locate: ``GET /api/v1/zones/locate`` over HTTP against the same point-in-polygon
query run directly in SQL, on the Lingfeng park (10 zones) and on a generated
town of 1,000 zones. Prints median and p99 latency and the HTTP/SQL ratio.

    python -m bench locate [--requests 1000] [--seed 1]
"""
from __future__ import annotations

import argparse
import random
import time

import psycopg2
from shapely.geometry import Point
from shapely.prepared import prep
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from bench.common import LeanClient, bench_database_url, load_town, print_table, served, summary
from gridsvc.seed import load_lingfeng

# The query the locate service builds (services/zones.py), written out.
LOCATE_SQL = """
SELECT z.id, z.code, z.name, c.id, c.name
FROM zone z JOIN community c ON z.community_id = c.id
WHERE ST_Covers(z.geom, ST_SetSRID(ST_MakePoint(%s, %s), 4326))
ORDER BY z.id LIMIT 1
"""


def _points_inside(boundary, n: int, rng: random.Random) -> list[tuple[float, float]]:
    inside = prep(boundary)
    minx, miny, maxx, maxy = boundary.bounds
    points: list[tuple[float, float]] = []
    while len(points) < n:
        lon, lat = rng.uniform(minx, maxx), rng.uniform(miny, maxy)
        if inside.contains(Point(lon, lat)):
            points.append((lon, lat))
    return points


def _time_http(base: str, points) -> list[float]:
    samples = []
    client = LeanClient(base)
    for lon, lat in points[:50]:  # warm-up: pools, caches, code paths
        client.call("GET", "/api/v1/zones/locate", params={"lon": lon, "lat": lat})
    for lon, lat in points:
        start = time.perf_counter()
        status, body = client.call("GET", "/api/v1/zones/locate", params={"lon": lon, "lat": lat})
        samples.append(time.perf_counter() - start)
        if status != 200:
            raise SystemExit(f"locate answered {status}: {body[:200]}")
    client.close()
    return samples


def _time_sql(dsn: str, points) -> list[float]:
    samples = []
    conn = psycopg2.connect(dsn)
    try:
        with conn.cursor() as cur:
            for lon, lat in points[:50]:
                cur.execute(LOCATE_SQL, (lon, lat))
                cur.fetchone()
            for lon, lat in points:
                start = time.perf_counter()
                cur.execute(LOCATE_SQL, (lon, lat))
                row = cur.fetchone()
                samples.append(time.perf_counter() - start)
                if row is None:
                    raise SystemExit(f"no zone for {lon}, {lat}")
    finally:
        conn.close()
    return samples


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench locate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1000, help="timed requests per dataset and path")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)

    url = bench_database_url()
    engine = create_engine(url)
    with Session(engine) as session:
        lingfeng = load_lingfeng(session)
        session.commit()
        from gridsvc.fields import as_shape

        lingfeng_boundary = as_shape(lingfeng.community.boundary)
    started = time.perf_counter()
    _, town_boundary = load_town(engine, 1000)
    print(f"generated and loaded a 1,000-zone town in {time.perf_counter() - started:.1f} s")
    datasets = [("Lingfeng (10 zones)", lingfeng_boundary), ("town (1,000 zones)", town_boundary)]
    dsn = url.replace("postgresql+psycopg2://", "postgresql://")

    rows = []
    with served(url) as base:
        for name, boundary in datasets:
            points = _points_inside(boundary, args.requests, rng)
            sql_median, sql_p99 = summary(_time_sql(dsn, points))
            http_median, http_p99 = summary(_time_http(base, points))
            rows.append((name, "SQL (psycopg2, baseline)", len(points), f"{sql_median:.2f}", f"{sql_p99:.2f}", "1.00"))
            rows.append((name, "HTTP GET /zones/locate", len(points), f"{http_median:.2f}", f"{http_p99:.2f}",
                         f"{http_median / sql_median:.2f}"))
    engine.dispose()
    print()
    print_table(["dataset", "path", "n", "median ms", "p99 ms", "ratio (median vs SQL)"], rows)
    return 0
