"""The peers of ``bench maps``: pygeoapi and tipg, installed on demand and served
over the same tables as gridsvc.

Each peer lives in its own virtualenv under ``.gridsvc/peers/<name>/`` (never
committed), made with a Python >= 3.12 (pygeoapi 0.24 needs it): pyenv's if
there is one, else ``python3.12`` on the PATH, else ``GRIDSVC_PEER_PYTHON``.
Its configuration (pygeoapi's YAML and OpenAPI document, tipg's environment)
is generated into that folder at run time from the database URL.

Both peers publish exactly the columns gridsvc publishes (taken from
``gridsvc.services.features.COLLECTIONS``), so every server sends the same
properties, and all three reach PostgreSQL the same way (the Unix socket when
the URL names one, else TCP).
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence
from urllib.parse import quote

import requests
from sqlalchemy.engine import make_url

from bench.common import free_port
from gridsvc import localdb

PEERS = {
    "pygeoapi": ("pygeoapi==0.24.*", "geoalchemy2", "psycopg2-binary", "gunicorn"),
    "tipg": ("tipg==1.6.*", "uvicorn"),
}
MIN_PYTHON = (3, 12)


@dataclass(frozen=True)
class Table:
    """One table as every server publishes it."""

    collection: str  # gridsvc's collection id, also used as pygeoapi's resource name
    table: str
    geometry: str
    columns: tuple[str, ...]  # the published non-geometry columns (besides id)


def tables(collection_ids: Sequence[str]) -> list[Table]:
    """The peers' view of gridsvc's collections: the plain columns gridsvc publishes."""
    from gridsvc.services.features import COLLECTIONS

    out = []
    for cid in collection_ids:
        c = COLLECTIONS[cid]
        columns = []
        for p in c.props:
            m = re.fullmatch(r"\{t\}\.(\w+)", p.sql)
            if m:  # computed properties (e.g. a lot's total capacity) have no column to publish
                columns.append(m.group(1))
        out.append(Table(cid, c.table, c.geometry, tuple(columns)))
    return out


def peers_dir() -> Path:
    return localdb.home_dir() / "peers"


# ---------------------------------------------------------------- installing


def find_python() -> str:
    """A Python >= 3.12 for the peers' virtualenvs."""
    candidates = []
    if os.environ.get("GRIDSVC_PEER_PYTHON"):
        candidates.append(os.environ["GRIDSVC_PEER_PYTHON"])
    pyenv_root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    versions = sorted(glob.glob(os.path.join(pyenv_root, "versions", "3.1[2-9]*", "bin", "python")),
                      key=lambda p: [int(x) for x in re.findall(r"\d+", p.split("versions")[-1])[:3]])
    # The oldest supported one first: the peers' own wheels are surest there.
    candidates += versions
    for name in ("python3.12", "python3.13"):
        if shutil.which(name):
            candidates.append(shutil.which(name))
    for python in candidates:
        try:
            out = subprocess.run([python, "-c", "import sys; print(*sys.version_info[:2])"],
                                 capture_output=True, text=True, check=True).stdout.split()
        except (OSError, subprocess.CalledProcessError):
            continue
        if tuple(int(x) for x in out) >= MIN_PYTHON:
            return python
    raise SystemExit("bench maps needs a Python >= 3.12 for pygeoapi 0.24: install one with pyenv "
                     "(`pyenv install 3.12`) or set GRIDSVC_PEER_PYTHON")


def ensure_installed(name: str) -> Path:
    """The peer's virtualenv, created and filled on first use; returns its bin/ directory."""
    venv = peers_dir() / name
    marker = venv / "installed.json"
    spec = list(PEERS[name])
    if marker.exists() and json.loads(marker.read_text()).get("spec") == spec and (venv / "bin" / "python").exists():
        return venv / "bin"
    python = find_python()
    print(f"installing peer {name} into {venv} (once): pip install {' '.join(repr(s) if '*' in s else s for s in spec)} "
          f"with {python}", flush=True)
    if venv.exists():
        shutil.rmtree(venv)
    venv.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    log = venv / "pip-install.log"
    with log.open("w") as out:
        result = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
                                 *spec], stdout=out, stderr=subprocess.STDOUT)
    if result.returncode != 0:
        raise SystemExit(f"installing {name} failed: see {log}")
    freeze = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    versions = {line.split("==")[0].lower(): line.split("==")[1] for line in freeze.splitlines() if "==" in line}
    marker.write_text(json.dumps({"spec": spec, "versions": versions}, indent=1))
    print(f"installed {name} {versions.get(name, '?')}", flush=True)
    return venv / "bin"


def installed_version(name: str) -> str:
    try:
        return json.loads((peers_dir() / name / "installed.json").read_text())["versions"].get(name, "?")
    except (FileNotFoundError, KeyError):
        return "?"


# ---------------------------------------------------------------- connection


@dataclass(frozen=True)
class Pg:
    host: str  # a socket directory (absolute path) or an address
    port: int
    user: str
    password: str
    dbname: str

    @property
    def socket(self) -> bool:
        return self.host.startswith("/")


def pg_params(url: str) -> Pg:
    u = make_url(url)
    host = u.query.get("host") or u.host or "127.0.0.1"
    port = u.query.get("port") or u.port or 5432
    if isinstance(host, tuple):
        host = host[0]
    if isinstance(port, tuple):
        port = port[0]
    return Pg(host=str(host), port=int(port), user=u.username or "", password=u.password or "", dbname=u.database or "")


# ---------------------------------------------------------------- serving


def _wait_until_up(proc: subprocess.Popen, probe: str, name: str, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(probe, timeout=10).status_code == 200:
                return
        except (requests.ConnectionError, requests.Timeout):
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            tail = log.read_text()[-3000:] if log.exists() else ""
            raise SystemExit(f"{name} did not start (see {log}):\n{tail}")
        time.sleep(0.3)


@contextmanager
def _running(cmd: list[str], env: dict, cwd: Path, probe_path: str, port: int, name: str) -> Iterator[str]:
    log = cwd / "server.log"
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(proc, base + probe_path, name, log)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _pygeoapi_config(pg: Pg, published: Sequence[Table], port: int, extents: dict[str, list[float]]) -> str:
    import yaml  # PyYAML: a dependency of flask-smorest's apispec and of pygeoapi

    resources = {}
    for t in published:
        resources[t.collection] = {
            "type": "collection",
            "title": t.collection,
            "description": f"{t.table} (bench maps)",
            "keywords": ["parking"],
            "links": [],
            "extents": {"spatial": {"bbox": extents[t.collection],
                                    "crs": "http://www.opengis.net/def/crs/OGC/1.3/CRS84"}},
            "providers": [{
                "type": "feature",
                "name": "PostgreSQL",
                "data": {"host": pg.host, "port": pg.port, "dbname": pg.dbname, "user": pg.user,
                         "password": pg.password, "search_path": ["public"]},
                "id_field": "id",
                "table": t.table,
                "geom_field": t.geometry,
                "properties": list(t.columns),
                # pool as large as gridsvc's and tipg's per worker
                "options": {"pool_size": 10, "max_overflow": 0},
            }],
        }
    config = {
        "server": {
            "bind": {"host": "127.0.0.1", "port": port},
            "url": f"http://127.0.0.1:{port}",
            "mimetype": "application/json; charset=UTF-8",
            "encoding": "utf-8",
            "languages": ["en-US"],
            "limits": {"default_items": 10, "max_items": 10000},
            "map": {"url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
                    "attribution": "OpenStreetMap contributors"},
        },
        "logging": {"level": "ERROR"},
        "metadata": {
            "identification": {"title": "bench maps peer", "description": "pygeoapi for gridsvc's bench maps",
                               "keywords": ["bench"], "keywords_type": "theme", "terms_of_service": "none",
                               "url": "http://127.0.0.1"},
            "license": {"name": "CC-BY 4.0", "url": "https://creativecommons.org/licenses/by/4.0/"},
            "provider": {"name": "gridsvc bench", "url": "http://127.0.0.1"},
            "contact": {"name": "gridsvc bench", "email": "bench@example.org", "url": "http://127.0.0.1"},
        },
        "resources": resources,
    }
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


@contextmanager
def pygeoapi_served(url: str, published: Sequence[Table], extents: dict[str, list[float]], workers: int = 2,
                    worker_class: str = "sync", threads: int = 1) -> Iterator[str]:
    """pygeoapi's Flask app under gunicorn, with the PostgreSQL provider over ``published``."""
    bindir = ensure_installed("pygeoapi")
    folder = peers_dir() / "pygeoapi"
    port = free_port()
    pg = pg_params(url)
    config = folder / "pygeoapi-config.yml"
    openapi = folder / "pygeoapi-openapi.yml"
    config.write_text(_pygeoapi_config(pg, published, port, extents))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "DATABASE_URL"))}
    env.update(PYGEOAPI_CONFIG=str(config), PYGEOAPI_OPENAPI=str(openapi), PATH=f"{bindir}:{env.get('PATH', '')}")
    result = subprocess.run([str(bindir / "pygeoapi"), "openapi", "generate", str(config), "--output-file", str(openapi)],
                            env=env, cwd=folder, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"pygeoapi openapi generate failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    cmd = [str(bindir / "gunicorn"), "--bind", f"127.0.0.1:{port}", "--workers", str(workers),
           "--worker-class", worker_class, "--threads", str(threads), "--backlog", "2048", "--log-level", "warning",
           "--no-control-socket", "pygeoapi.flask_app:APP"]
    with _running(cmd, env, folder, "/conformance?f=json", port, "pygeoapi") as base:
        yield base


UVICORN_NODELAY = '''"""uvicorn's CLI with its listening socket carrying IPPROTO_TCP (uvicorn#3149), written by bench maps."""
import socket
import sys

import uvicorn.config
import uvicorn.main

_bind_socket = uvicorn.config.Config.bind_socket


def bind_socket(self):
    sock = _bind_socket(self)
    if sock.family in (socket.AF_INET, socket.AF_INET6) and sock.proto == 0:
        sock = socket.socket(sock.family, socket.SOCK_STREAM, socket.IPPROTO_TCP, fileno=sock.detach())
    return sock


uvicorn.config.Config.bind_socket = bind_socket

if __name__ == "__main__":
    sys.argv[0] = "uvicorn"
    sys.exit(uvicorn.main.main())
'''


@contextmanager
def tipg_served(url: str, published: Sequence[Table], workers: int = 2, nodelay_fix: bool = True) -> Iterator[str]:
    """tipg under uvicorn, publishing ``published`` (and nothing else) from the public schema.

    ``nodelay_fix``: uvicorn with ``--workers N`` binds its listening socket with
    proto 0, so asyncio never sets TCP_NODELAY on the accepted connections and
    every keep-alive request after the first waits ~40 ms for a delayed ACK
    (uvicorn issue #3149, a one-line fix proposed in #3155). That measures a
    uvicorn bug, not tipg: by default the launcher below rebinds the listener
    with IPPROTO_TCP, which is all the proposed fix does.
    """
    bindir = ensure_installed("tipg")
    folder = peers_dir() / "tipg"
    port = free_port()
    pg = pg_params(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV", "DATABASE_URL", "TIPG_"))}
    if pg.socket:
        # asyncpg takes the socket directory percent-encoded in the host part (pydantic's
        # PostgresDsn, which tipg validates the URL with, refuses an empty host).
        host = quote(pg.host, safe="")
    else:
        host = pg.host
    env["DATABASE_URL"] = f"postgresql://{quote(pg.user)}:{quote(pg.password, safe='')}@{host}:{pg.port}/{pg.dbname}"
    env.update({
        "TIPG_DB_SCHEMAS": json.dumps(["public"]),
        "TIPG_DB_TABLES": json.dumps([f"public.{t.table}" for t in published]),
        "TIPG_DB_SPATIAL_EXTENT": "false",  # not needed by the timed paths; keeps start-up quick
        "TIPG_DB_DATETIME_EXTENT": "false",
        "TIPG_MAX_FEATURES_PER_QUERY": "10000",
        "PATH": f"{bindir}:{env.get('PATH', '')}",
    })
    for t in published:
        key = f"TIPG_TABLE_CONFIG__public_{t.table}__"
        env[key + "pk"] = "id"
        env[key + "geomcol"] = t.geometry
        # id as a property too: tipg sets no feature id in its tiles, and the bench checks tile ids
        env[key + "properties"] = json.dumps(["id", *t.columns, t.geometry])
    (folder / "tipg.env.json").write_text(json.dumps({k: v for k, v in env.items() if k.startswith("TIPG_")}, indent=1))
    args = ["tipg.main:app", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--log-level", "warning", "--no-access-log", "--backlog", "2048"]
    if nodelay_fix:
        launcher = folder / "uvicorn_nodelay.py"
        launcher.write_text(UVICORN_NODELAY)
        cmd = [str(bindir / "python"), str(launcher), *args]
    else:
        cmd = [str(bindir / "uvicorn"), *args]
    with _running(cmd, env, folder, "/healthz", port, "tipg") as base:
        # /healthz answers before the catalogue is read: wait for the tables themselves
        deadline = time.monotonic() + 60
        while True:
            r = requests.get(f"{base}/collections/public.{published[0].table}", timeout=10)
            if r.status_code == 200:
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"tipg does not publish public.{published[0].table}: {r.status_code} {r.text[:300]}")
            time.sleep(0.3)
        yield base


def describe() -> str:
    return f"pygeoapi {installed_version('pygeoapi')}, tipg {installed_version('tipg')}"


if __name__ == "__main__":  # install both: python -m bench.peers
    for peer in PEERS:
        print(ensure_installed(peer))
    sys.exit(0)
