"""dispatch: file-and-dispatch over HTTP with 100,000 and then 1,000,000
registered volunteers (30 % on duty, mixed skills) in a generated town of
1,000 zones, against (a) the bare KNN candidate query in SQL, timed in turns with the
filings (one query, one filing, ...), and (b) a naive baseline that loads
the eligible volunteers and sorts them by distance in Python, in the same run.

    python -m bench dispatch [--sizes 100000,1000000] [--requests 200]

Goal (issue 6) at 1M: median <= 10 ms, p99 <= 30 ms, and no more than 4x the bare KNN query.
"""
from __future__ import annotations

import argparse
import json
import random
import time
from datetime import datetime, timedelta, timezone

import numpy as np
import psycopg2
from flask_jwt_extended import create_access_token
from shapely.geometry import Point
from shapely.prepared import prep
from sqlalchemy import create_engine, text

from bench.common import LeanClient, bench_database_url, load_town, print_table, served, settle_tables, summary
from gridsvc.app import create_app
from gridsvc.passwords import hash_password
from gridsvc.seed import SERVICES

SECRET = "bench-secret-" + "y" * 32
SKILLS = ["traffic_parking", "garbage_sorting", "epidemic_prevention", "civilized_city", "first_aid", "inspection",
          "translation"]

# The candidate query dispatch runs (services/requests.py), written out, with
# the rows it reads first (2 x OFFER_BATCH + 4).
KNN_SQL = """
SELECT v.id, ST_Distance(v.last_position::geography, ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326)::geography) AS d,
       v.last_position <-> ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326) AS degrees
FROM volunteer v JOIN shift s ON s.id = v.on_duty_shift_id
WHERE s.ends_at > now() AND v.last_position IS NOT NULL AND v.on_duty_shift_id IS NOT NULL
  AND (SELECT count(*) FROM service_request r WHERE r.volunteer_id = v.id AND r.status IN ('assigned', 'in_progress'))
    + (SELECT count(*) FROM request_offer o WHERE o.volunteer_id = v.id AND o.outcome = 'pending') < 1
  AND EXISTS (SELECT 1 FROM volunteer_skill k WHERE k.volunteer_id = v.id AND k.skill_code = 'traffic_parking')
  AND (SELECT NOT u.disabled AND EXISTS (SELECT FROM user_role ur WHERE ur.user_id = u.id AND ur.role = 'volunteer')
       FROM app_user u WHERE u.id = v.user_id)
  AND v.user_id IS DISTINCT FROM %(requester)s
ORDER BY v.last_position <-> ST_SetSRID(ST_MakePoint(%(x)s, %(y)s), 4326)
LIMIT 10
"""

NAIVE_SQL = """
SELECT v.id, ST_X(v.last_position), ST_Y(v.last_position)
FROM volunteer v JOIN shift s ON s.id = v.on_duty_shift_id
WHERE s.ends_at > now() AND v.last_position IS NOT NULL
  AND EXISTS (SELECT 1 FROM volunteer_skill k WHERE k.volunteer_id = v.id AND k.skill_code = 'traffic_parking')
"""


def _haversine_m(lon, lat, lons, lats):
    r = 6_371_008.8
    p1, p2 = np.radians(lat), np.radians(lats)
    dphi, dlmb = p2 - p1, np.radians(lons - lon)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * r * np.arcsin(np.sqrt(a))


def _seed_services(engine) -> None:
    with engine.begin() as conn:
        for code, zh, en, group, skill, _department, sla, attributes in SERVICES:
            conn.execute(text("INSERT INTO service_type (code, name_zh, name_en, \"group\", required_skill, sla_minutes, "
                              "attributes) VALUES (:c, :zh, :en, :g, :s, :sla, CAST(:a AS jsonb)) ON CONFLICT DO NOTHING"),
                         {"c": code, "zh": zh, "en": en, "g": group, "s": skill, "sla": sla, "a": json.dumps(attributes)})


def _add_volunteers(engine, start: int, stop: int, community_id: int, boundary, shift_id: int, seed: int) -> None:
    """Volunteers start..stop-1: accounts, profiles at random points in the town, 30 % on duty, 1-2 skills."""
    minx, miny, maxx, maxy = boundary.bounds
    with engine.begin() as conn:
        conn.execute(text("""
            INSERT INTO app_user (username, display_name, password_hash)
            SELECT 'dv-' || g, 'Dispatch bench ' || g, 'x' FROM generate_series(:a, :b - 1) g"""), {"a": start, "b": stop})
        conn.execute(text("""
            INSERT INTO user_role (user_id, role)
            SELECT id, 'volunteer' FROM app_user WHERE username LIKE 'dv-%' AND substr(username, 4)::int BETWEEN :a AND :b - 1"""),
            {"a": start, "b": stop})
        conn.execute(text("SELECT setseed(:s)"), {"s": seed / 1000})
        # random points in the bounding box, kept when inside the town
        conn.execute(text("""
            INSERT INTO volunteer (user_id, real_name, phone, last_position, last_position_at, on_duty_shift_id)
            SELECT u.id, u.display_name, '13800000000', p.pt, now(),
                   CASE WHEN random() < 0.3 THEN :shift END
            FROM app_user u
            CROSS JOIN LATERAL (SELECT ST_SetSRID(ST_MakePoint(:minx + random() * (:maxx - :minx),
                                                               :miny + random() * (:maxy - :miny)), 4326) AS pt
                                WHERE u.id IS NOT NULL) p
            WHERE u.username LIKE 'dv-%' AND substr(u.username, 4)::int BETWEEN :a AND :b - 1"""),
            {"a": start, "b": stop, "shift": shift_id, "minx": minx, "maxx": maxx, "miny": miny, "maxy": maxy})
        conn.execute(text("""
            INSERT INTO volunteer_skill (volunteer_id, skill_code)
            SELECT DISTINCT v.id, (ARRAY[:s0, :s1, :s2, :s3, :s4, :s5, :s6])[1 + floor(random() * 7)::int]
            FROM volunteer v JOIN app_user u ON u.id = v.user_id, generate_series(1, 2)
            WHERE u.username LIKE 'dv-%' AND substr(u.username, 4)::int BETWEEN :a AND :b - 1
            ON CONFLICT DO NOTHING"""), {"a": start, "b": stop, **{f"s{i}": s for i, s in enumerate(SKILLS)}})
    settle_tables(engine, "volunteer", "volunteer_skill")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="bench dispatch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rng = random.Random(args.seed)

    url = bench_database_url()
    engine = create_engine(url)
    community_id, boundary = load_town(engine, 1000)
    _seed_services(engine)
    now = datetime.now(timezone.utc)
    with engine.begin() as conn:
        zone_id = conn.execute(text("SELECT id FROM zone WHERE community_id = :c ORDER BY id LIMIT 1"), {"c": community_id}).scalar()
        shift_id = conn.execute(text("""
            INSERT INTO shift (community_id, zone_id, title, activity, starts_at, ends_at, capacity)
            VALUES (:c, :z, 'on call', 'dispatch', :s, :e, 1000000) RETURNING id"""),
            {"c": community_id, "z": zone_id, "s": now - timedelta(hours=1), "e": now + timedelta(hours=6)}).scalar()
        worker_id = conn.execute(text("INSERT INTO app_user (username, display_name, password_hash) "
                                      "VALUES ('bench-worker', 'Bench worker', :h) RETURNING id"),
                                 {"h": hash_password("bench-password")}).scalar()
        conn.execute(text("INSERT INTO user_role (user_id, role) VALUES (:u, 'worker')"), {"u": worker_id})
    app = create_app({"DATABASE_URL": url, "GRIDSVC_SECRET_KEY": SECRET})
    with app.app_context():
        token = create_access_token(identity=str(worker_id), additional_claims={"tv": 0}, expires_delta=timedelta(hours=3))
    app.extensions["gridsvc.db"].dispose()
    inside = prep(boundary)
    minx, miny, maxx, maxy = boundary.bounds

    def point():
        while True:
            p = Point(rng.uniform(minx, maxx), rng.uniform(miny, maxy))
            if inside.contains(p):
                return p.x, p.y

    dsn = url.replace("postgresql+psycopg2://", "postgresql://")
    rows = []
    import os

    os.environ["GRIDSVC_SECRET_KEY"] = SECRET
    done = 0
    for size in sizes:
        started = time.perf_counter()
        _add_volunteers(engine, done, size, community_id, boundary, shift_id, args.seed)
        done = size
        print(f"{size:,} volunteers ready ({time.perf_counter() - started:.0f} s to add the last batch)")
        points = [point() for _ in range(args.requests)]  # where requests are filed
        knn_points = [point() for _ in range(args.requests)]  # where the bare query looks (not warmed by a filing)
        conn = psycopg2.connect(dsn)
        conn.autocommit = True
        knn, naive, filings = [], [], []
        with conn.cursor() as cur:
            for x, y in points[: max(20, args.requests // 10)]:  # slow: a tenth of the sample
                t = time.perf_counter()
                cur.execute(NAIVE_SQL)
                data = np.array(cur.fetchall(), dtype=float)
                if len(data):
                    d = _haversine_m(x, y, data[:, 1], data[:, 2])
                    order = np.argsort(d)
                    _ = data[order[:10], 0][d[order[:10]] <= 3000]
                naive.append(time.perf_counter() - t)
            for x, y in knn_points[:10]:
                cur.execute(KNN_SQL, {"x": x, "y": y, "requester": None})
                cur.fetchall()
            # The bare query and the filings in turns, one of each: this machine's
            # speed drifts, and a ratio of two series timed apart would carry it.
            with served(url, workers=2) as base:
                client = LeanClient(base)
                headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
                for i, ((x, y), (kx, ky)) in enumerate(zip(points, knn_points)):
                    t = time.perf_counter()
                    cur.execute(KNN_SQL, {"x": kx, "y": ky, "requester": None})
                    cur.fetchall()
                    knn.append(time.perf_counter() - t)
                    body = json.dumps({"service_code": "parking", "description": f"bench {size} {i}", "lon": x,
                                       "lat": y, "attributes": {"problem": "no_space"}})
                    t = time.perf_counter()
                    status, answer = client.call("POST", "/api/v1/requests", body=body, headers=headers)
                    filings.append(time.perf_counter() - t)
                    if status != 201:
                        raise SystemExit(f"filing answered {status}: {answer[:300]}")
                client.close()
        conn.close()
        with engine.connect() as c:
            offered = c.execute(text("SELECT count(*) FROM service_request WHERE status = 'offered' "
                                     "AND description LIKE :p"), {"p": f"bench {size} %"}).scalar()
        k_med, k_p99 = summary(knn)
        n_med, n_p99 = summary(naive)
        h_med, h_p99 = summary(filings)
        label = f"{size:,}"
        rows.append((label, "bare KNN query (baseline)", len(knn), f"{k_med:.2f}", f"{k_p99:.2f}", "1.00"))
        rows.append((label, "naive: load + sort in Python", len(naive), f"{n_med:.1f}", f"{n_p99:.1f}", f"{n_med / k_med:.1f}"))
        rows.append((label, f"HTTP file + dispatch ({offered}/{len(points)} offered)", len(filings), f"{h_med:.2f}",
                     f"{h_p99:.2f}", f"{h_med / k_med:.1f}"))
    engine.dispose()
    print()
    print_table(["volunteers", "path", "n", "median ms", "p99 ms", "ratio vs KNN"], rows)
    return 0
