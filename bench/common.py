"""Shared benchmark plumbing: a scratch database, a real gunicorn server, statistics."""
from __future__ import annotations

import http.client
import os
import re
import socket
import statistics
import subprocess
import sys
import time
import urllib.parse
from contextlib import contextmanager
from typing import Iterator, Sequence

import requests
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
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
         "--worker-class", worker_class, "--threads", str(threads), "--backlog", "2048", "--log-level", "warning", "--no-control-socket",
         "-c", "python:gridsvc.gunicorn_conf", "gridsvc.app:create_app()"], env=env)
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


class LeanClient:
    """Sequential HTTP calls timed without a heavy client library: ``requests``
    adds about a millisecond of its own to each call, which is the client's
    time, not the server's (the bare-SQL baselines use psycopg2 directly too).
    Reconnects by itself when the server closes (gunicorn sync workers do)."""

    def __init__(self, base: str) -> None:
        self.connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=60)

    def call(self, method: str, path: str, *, params: dict | None = None, body: str | None = None,
             headers: dict | None = None) -> tuple[int, bytes]:
        if params:
            path += "?" + urllib.parse.urlencode(params)
        self.connection.request(method, path, body=body, headers=headers or {})
        response = self.connection.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.connection.close()


def settle_tables(engine, *tables: str) -> None:
    """Leave freshly loaded tables as a production table is: hint bits and
    the visibility map set now rather than by the first requests timed (or
    by autovacuum during them), then a checkpoint writes the loaded pages
    out, so the timed writes do not pay for the load's full-page images."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in tables:
            conn.execute(text(f"VACUUM ANALYZE {table}"))
        try:
            conn.execute(text("CHECKPOINT"))
        except DBAPIError:  # needs superuser or pg_checkpoint on a server of your own
            pass


def run_wrk(url: str, *, seconds: int, connections: int, threads: int, headers: Sequence[tuple[str, str]] = (),
            script: str | None = None, env: dict | None = None, timeout_s: int | None = None) -> dict:
    """One wrk run: req/s, p50 and p99 in ms, non-2xx answers, socket errors, requests."""
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if timeout_s:
        cmd += ["--timeout", f"{timeout_s}s"]
    for name, value in headers:
        cmd += ["-H", f"{name}: {value}"]
    if script:
        cmd += ["-s", str(script)]
    result = subprocess.run([*cmd, url], capture_output=True, text=True, env={**os.environ, **(env or {})})
    if result.returncode != 0:
        raise SystemExit(f"wrk failed: {result.stderr}")
    out = result.stdout
    p50 = re.search(r"50%\s+([\d.]+)(us|ms|s)\b", out)
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rate": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "p50_ms": _ms(p50) if p50 else None, "p99_ms": _ms(p99) if p99 else None,
        "non2xx": int(non2xx.group(1)) if non2xx else 0,
        # read errors are how wrk counts a server closing a connection it was asked to close: not failures
        "socket_errors": (int(sock.group(1)) + int(sock.group(3)) + int(sock.group(4))) if sock else 0,
        "total": int(re.search(r"(\d+) requests in", out).group(1)),
        "output": out,  # for what a script prints
    }


def time_wait_sockets() -> int:
    """TCP sockets in TIME_WAIT on this machine (0 where /proc/net/tcp is not there).

    gunicorn's sync workers close every connection, so a wrk run leaves one
    per request for a minute; with tens of thousands of them, new
    connections on loopback cost more and the rates drift (the trivial
    endpoint's most)."""
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines, None)  # the header
                count += sum(1 for line in lines if line.split()[3] == "06")
        except OSError:
            pass
    return count


class CpuMeter:
    """CPU time a benchmark's processes spend, per request, from /proc (Linux).

    Wall rates on a shared VM drift by tens of per cent within seconds; CPU
    time says where a request's cost goes: the API server's processes (the
    gunicorn listening on ``port``), the database's (backends connected to
    ``database`` of a server on this machine; none for a remote one) and the
    whole machine (every process, the load generator included).
    """

    def __init__(self, port: int, database: str) -> None:
        self.server_marker = f"127.0.0.1:{port}"
        self.database_marker = f" {database} "
        self.tick_s = 1 / os.sysconf("SC_CLK_TCK")

    def sample(self) -> dict[str, float | None]:
        """CPU seconds used so far: server, database (None when its server is
        not on this machine) and machine."""
        database: float | None = None
        ppid_of, cpu_of, servers = {}, {}, set()
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:  # gone meanwhile
                continue
            pid = int(entry.name)
            ppid_of[pid], cpu_of[pid] = int(fields[1]), (int(fields[11]) + int(fields[12])) * self.tick_s
            if "gunicorn" in cmdline and self.server_marker in cmdline:  # not wrk, whose URL has it too
                servers.add(pid)
            elif cmdline.startswith("postgres: ") and self.database_marker in cmdline:
                database = (database or 0.0) + cpu_of[pid]
        # the gunicorn master and its workers
        server = sum(cpu for pid, cpu in cpu_of.items() if pid in servers or ppid_of[pid] in servers)
        with open("/proc/stat") as f:
            jiffies = [int(v) for v in f.readline().split()[1:]]
        machine = (sum(jiffies) - jiffies[3] - jiffies[4]) * self.tick_s  # all but idle and iowait
        return {"server": server, "database": database, "machine": machine}

    @staticmethod
    def per_request_us(before: dict[str, float | None], after: dict[str, float | None],
                       requests: int) -> dict[str, float | None]:
        return {key: None if before[key] is None or after[key] is None
                else (after[key] - before[key]) / max(requests, 1) * 1e6 for key in before}


@contextmanager
def database_on_own_core() -> Iterator[tuple[set[int], set[int]]]:
    """PostgreSQL on this machine pinned to the last core, and this process
    (so the server and the load generator it starts) to the others: the
    shape of a deployment whose database has a machine of its own, on one
    box. Yields (our cores, the database's). Needs the right to set the
    database processes' affinity (their owner, or root)."""
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit("--split-cores needs at least 2 cores")
    ours, database = set(cores[:-1]), {cores[-1]}
    postgres = [int(e.name) for e in os.scandir("/proc") if e.name.isdigit() and _comm(e.name) == "postgres"]
    if not postgres:
        raise SystemExit("--split-cores: no PostgreSQL process on this machine (DATABASE_URL points elsewhere?)")
    try:
        try:
            for pid in postgres:  # the postmaster too: backends it starts later inherit its cores
                _set_affinity(pid, database)
        except PermissionError:
            raise SystemExit("--split-cores: not allowed to pin PostgreSQL's processes (run as their owner or root)")
        os.sched_setaffinity(0, ours)
        yield ours, database
    finally:  # also those pinned before a refusal
        os.sched_setaffinity(0, set(cores))
        for pid in postgres:
            _set_affinity(pid, set(cores))


def _comm(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def _set_affinity(pid: int, cores: set[int]) -> None:
    try:
        os.sched_setaffinity(pid, cores)
    except ProcessLookupError:  # ended meanwhile
        pass


def _ms(match) -> float:
    value, unit = float(match.group(1)), match.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


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
