"""Shared benchmark plumbing: a scratch database, a real gunicorn server, statistics."""
from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from typing import Iterator, Sequence

import requests
from sqlalchemy import text
from sqlalchemy.engine import make_url

from fixtures.town import generate_town
from geo.io import geometry_to_geojson

from gridsvc import localdb
from gridsvc.config import database_url
from gridsvc.migrate import upgrade


def bench_database_url() -> str:
    """``<db>_bench`` beside the configured database, rebuilt from the migrations."""
    base = database_url()
    if not base:
        raise SystemExit("no database: run `gridsvc db start` or set DATABASE_URL")
    url = make_url(base)
    rendered = url.set(database=f"{url.database}_bench").render_as_string(hide_password=False)
    localdb.ensure_database(rendered, recreate=True)
    upgrade(rendered)
    return rendered


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def served(url: str, workers: int = 2, worker_class: str = "sync", threads: int = 1) -> Iterator[str]:
    """The API under gunicorn on a free loopback port, as `gridsvc serve` runs it."""
    port = free_port()
    env = dict(os.environ, DATABASE_URL=url, GRIDSVC_LOG_LEVEL="WARNING")
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
         "--worker-class", worker_class, "--threads", str(threads), "--backlog", "2048", "--log-level", "warning", "--no-control-socket", "gridsvc.app:create_app()"], env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(base + "/api/v1/health", timeout=5).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit("the API did not start")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def summary(samples_s: Sequence[float]) -> tuple[float, float]:
    """(median, p99) in milliseconds."""
    ms = [s * 1000 for s in samples_s]
    return statistics.median(ms), percentile(ms, 99)


def print_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = " | ".join(str(h).ljust(w) for h, w in zip(header, widths))
    print(line)
    print("-|-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(str(x).ljust(w) for x, w in zip(row, widths)))


def load_town(engine, zone_count: int) -> tuple[int, object]:
    boundary, zones = generate_town(zone_count)
    with engine.begin() as conn:
        community_id = conn.execute(text(
            "INSERT INTO community (name, kind, boundary, timezone) "
            "VALUES (:name, 'town', ST_SetSRID(ST_GeomFromGeoJSON(:g), 4326), 'Asia/Shanghai') RETURNING id"),
            {"name": f"Generated town ({zone_count} zones)", "g": _json(boundary)}).scalar_one()
        conn.execute(text(
            "INSERT INTO zone (community_id, code, name, geom) "
            "VALUES (:cid, :code, :code, ST_SetSRID(ST_GeomFromGeoJSON(:g), 4326))"),
            [{"cid": community_id, "code": code, "g": _json(geom)} for code, geom in zones])
        conn.execute(text("ANALYZE zone"))
    return community_id, boundary


def _json(geom) -> str:
    import json

    return json.dumps(geometry_to_geojson(geom))
