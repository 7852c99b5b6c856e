"""The embedded PostGIS cluster: a project-local PostgreSQL under ``.gridsvc/``.

``make run`` and ``make test`` call this through ``gridsvc db start`` so that a
new user needs no database set up by hand. It finds the PostgreSQL server
binaries and the postgis extension (installing them with apt when running as
root), creates a cluster listening on loopback only, on its own port, with a
generated password, and starts it. When ``DATABASE_URL`` is set none of this
runs: the user's own server is used.

As root the server cannot run as root (PostgreSQL refuses), so the cluster is
owned by and started as the ``postgres`` OS user.
"""
from __future__ import annotations

import json
import os
import pwd
import re
import secrets
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from hashlib import sha1
from pathlib import Path

import psycopg2
from psycopg2 import sql

DEFAULT_PORT = 54329
SERVER_USER = "postgres"  # OS user that runs the server when we are root
DB_SUPERUSER = "gridsvc"  # database role created by initdb


class LocalDbError(RuntimeError):
    """Something the user has to act on; the message says what."""


def home_dir() -> Path:
    """Project-local state: ``GRIDSVC_HOME`` or ``./.gridsvc``."""
    return Path(os.environ.get("GRIDSVC_HOME") or Path.cwd() / ".gridsvc").resolve()


@dataclass(frozen=True)
class ClusterInfo:
    port: int
    user: str
    password: str
    datadir: Path
    socket_dir: Path | None = None

    def url(self, database: str) -> str:
        # The Unix socket saves a fifth of every round trip over loopback TCP.
        if self.socket_dir is not None and (self.socket_dir / f".s.PGSQL.{self.port}").exists():
            return (f"postgresql+psycopg2://{self.user}:{self.password}@/{database}"
                    f"?host={self.socket_dir}&port={self.port}")
        return f"postgresql+psycopg2://{self.user}:{self.password}@127.0.0.1:{self.port}/{database}"


# ---------------------------------------------------------------- binaries


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", path.name)) or (0,)


def find_bindir() -> Path | None:
    """The newest PostgreSQL server bin/ whose version also has postgis installed."""
    override = os.environ.get("GRIDSVC_PG_BINDIR")
    if override:
        return Path(override)
    for bindir in sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: _version_key(p.parent), reverse=True):
        version = bindir.parent.name
        if (bindir / "initdb").exists() and Path(f"/usr/share/postgresql/{version}/extension/postgis.control").exists():
            return bindir
    return None


def _installed_server_versions() -> list[str]:
    return sorted(
        (p.parent.name for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").exists()),
        key=lambda v: _version_key(Path(v)),
    )


def ensure_postgis_installed(echo=print) -> Path:
    """Return the server bin/ dir, installing PostgreSQL + PostGIS with apt if we may."""
    bindir = find_bindir()
    if bindir:
        return bindir
    versions = _installed_server_versions()
    # Match postgis to an installed server; otherwise the distribution's default.
    packages = [f"postgresql-{versions[-1]}-postgis-3"] if versions else ["postgresql", "postgresql-postgis"]
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise LocalDbError(
            "PostgreSQL with PostGIS is not installed. Install it, for example on Debian bookworm:\n"
            "    sudo apt-get install postgresql-15-postgis-3\n"
            "or point DATABASE_URL at an existing PostGIS server."
        )
    echo(f"Installing {' '.join(packages)} with apt-get ...")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    try:
        subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages], check=True, env=env)
    except subprocess.CalledProcessError as exc:  # offline, a held package, a locked dpkg: apt said why above
        raise LocalDbError(f"`{' '.join(exc.cmd)}` failed (exit status {exc.returncode}). Install "
                           f"{' '.join(packages)} (PostgreSQL with postgis) by hand, or point DATABASE_URL at an "
                           "existing PostGIS server.") from None
    bindir = find_bindir()
    if not bindir:
        raise LocalDbError(f"installed {packages} but still found no server with postgis under /usr/lib/postgresql")
    return bindir


# ---------------------------------------------------------------- layout


def _as_server_user() -> list[str]:
    """Command prefix that runs a server tool as the right OS user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError as exc:  # the postgresql packages create this user
        raise LocalDbError(f"running as root but there is no '{SERVER_USER}' OS user to run the server") from exc
    return ["runuser", "-u", SERVER_USER, "--"]


def _server_can_use(path: Path) -> bool:
    if os.geteuid() != 0:
        return True
    probe = subprocess.run([*_as_server_user(), "test", "-x", str(path)], capture_output=True)
    return probe.returncode == 0


def _chown_to_server(path: Path) -> None:
    if os.geteuid() == 0:
        entry = pwd.getpwnam(SERVER_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _datadir(home: Path) -> Path:
    """``.gridsvc/pgdata``; as root, somewhere the postgres user can reach.

    A clone under /root is not reachable by the postgres user (mode 700); then
    the data lives under /var/lib/gridsvc/<hash of the project path> and
    ``.gridsvc/pgdata`` is a symlink to it, so the user still finds it there.
    """
    link = home / "pgdata"
    if link.is_symlink() or link.exists():
        return link.resolve()
    if _server_can_use(home):
        return link
    target = Path("/var/lib/gridsvc") / sha1(str(home).encode()).hexdigest()[:12] / "pgdata"
    target.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(target)
    return target


def _free_port(start: int) -> int:
    for port in range(start, start + 100):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
                return port
            except OSError:
                continue
    raise LocalDbError(f"no free TCP port in {start}..{start + 99} on 127.0.0.1; set GRIDSVC_PG_PORT")


def cluster_info(home: Path | None = None) -> ClusterInfo | None:
    """The recorded cluster settings, or None before the first ``db start``."""
    home = home or home_dir()
    try:
        data = json.loads((home / "cluster.json").read_text())
    except FileNotFoundError:
        return None
    socket_dir = data.get("socket_dir") or _configured_socket_dir(Path(data["datadir"]))
    return ClusterInfo(port=data["port"], user=data["user"], password=data["password"], datadir=Path(data["datadir"]),
                       socket_dir=Path(socket_dir) if socket_dir else None)


def _configured_socket_dir(datadir: Path) -> str | None:
    """The socket directory written into postgresql.conf (clusters made before cluster.json recorded it)."""
    try:
        lines = (datadir / "postgresql.conf").read_text().splitlines()
    except OSError:
        return None
    found = [line.split("=", 1)[1].strip().strip("'") for line in lines if line.startswith("unix_socket_directories")]
    return found[-1] if found else None


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def init_cluster(bindir: Path, home: Path, echo=print) -> ClusterInfo:
    home.mkdir(parents=True, exist_ok=True)
    info = cluster_info(home)
    if info and (info.datadir / "PG_VERSION").exists():
        return info
    datadir = _datadir(home)
    datadir.mkdir(parents=True, exist_ok=True)
    _chown_to_server(datadir)
    os.chmod(datadir, 0o700)
    port = int(os.environ.get("GRIDSVC_PG_PORT") or _free_port(DEFAULT_PORT))
    password = secrets.token_urlsafe(18)
    pwfile = datadir.parent / ".pwfile"
    pwfile.write_text(password + "\n")
    _chown_to_server(pwfile)
    os.chmod(pwfile, 0o600)
    echo(f"Creating PostgreSQL cluster in {datadir} (port {port}, loopback only) ...")
    try:
        proc = _run([
            *_as_server_user(), str(bindir / "initdb"), "-D", str(datadir), "-U", DB_SUPERUSER,
            f"--pwfile={pwfile}", "--auth=scram-sha-256", "--encoding=UTF8", "--locale=C.UTF-8",
        ])
    finally:
        pwfile.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise LocalDbError(f"initdb failed:\n{proc.stdout}{proc.stderr}")
    rundir = home / "run"
    rundir.mkdir(exist_ok=True)
    _chown_to_server(rundir)
    if not _server_can_use(rundir):
        rundir = datadir  # socket beside the data when .gridsvc is out of reach
    with open(datadir / "postgresql.conf", "a") as conf:
        conf.write(
            "\n# gridsvc: a private development cluster\n"
            "listen_addresses = '127.0.0.1'\n"
            f"port = {port}\n"
            f"unix_socket_directories = '{rundir}'\n"
            # Losing the last few hundred ms of commits on a crash is fine for a
            # dev cluster and makes the test suite much faster; never corrupts.
            "synchronous_commit = off\n"
            # The data sits on this machine's disk, an SSD today, mostly cached: a random read costs about a
            # sequential one. At the default 4 the planner scanned a year's sign-ups whole rather than look up
            # a zone's current shifts' ones (a liaison's search: 290 against 100 ms).
            "random_page_cost = 1.1\n"
            "max_connections = 100\n"
        )
    info = ClusterInfo(port=port, user=DB_SUPERUSER, password=password, datadir=datadir, socket_dir=rundir)
    state = home / "cluster.json"
    state.write_text(json.dumps({"port": port, "user": DB_SUPERUSER, "password": password, "datadir": str(datadir),
                                 "socket_dir": str(rundir)}, indent=2))
    os.chmod(state, 0o600)
    return info


def is_running(bindir: Path, info: ClusterInfo) -> bool:
    return _run([*_as_server_user(), str(bindir / "pg_ctl"), "status", "-D", str(info.datadir)]).returncode == 0


def start(echo=print) -> ClusterInfo:
    """Install if needed, create if needed, start if stopped; idempotent."""
    bindir = ensure_postgis_installed(echo)
    home = home_dir()
    info = init_cluster(bindir, home, echo)
    if is_running(bindir, info):
        echo(f"PostgreSQL already running on 127.0.0.1:{info.port} (data in {info.datadir})")
        return info
    log = info.datadir.parent / "postgres.log"
    if os.geteuid() == 0 and not log.exists():
        log.touch()
        _chown_to_server(log)
    proc = _run([*_as_server_user(), str(bindir / "pg_ctl"), "start", "-D", str(info.datadir), "-l", str(log), "-w", "-t", "60"])
    if proc.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        raise LocalDbError(f"PostgreSQL did not start:\n{proc.stdout}{proc.stderr}\n{tail}")
    echo(f"PostgreSQL running on 127.0.0.1:{info.port} (data in {info.datadir})")
    return info


def stop(echo=print) -> None:
    info = cluster_info()
    bindir = find_bindir()
    if not info or not bindir or not is_running(bindir, info):
        echo("PostgreSQL cluster is not running")
        return
    proc = _run([*_as_server_user(), str(bindir / "pg_ctl"), "stop", "-D", str(info.datadir), "-m", "fast", "-w"])
    if proc.returncode != 0:
        raise LocalDbError(f"pg_ctl stop failed:\n{proc.stdout}{proc.stderr}")
    echo("PostgreSQL cluster stopped")


def status() -> dict:
    info = cluster_info()
    bindir = find_bindir()
    if not info:
        return {"state": "not created", "home": str(home_dir())}
    running = bool(bindir) and is_running(bindir, info)
    return {"state": "running" if running else "stopped", "port": info.port, "datadir": str(info.datadir),
            "url": info.url("gridsvc").replace(info.password, "***")}


def ensure_database(url: str, *, recreate: bool = False) -> None:
    """Create the database named in ``url`` on its server if it does not exist.

    ``recreate`` drops it first (the test suite starts from an empty database).
    A database that exists is only connected to: an account given one database
    on a shared server (the usual DATABASE_URL) may not connect to any other.
    Creating or dropping one connects to the server's ``postgres`` maintenance
    database.
    """
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = parsed.database
    if not recreate:
        try:
            _connect_with_retry(parsed.set(drivername="postgresql").render_as_string(hide_password=False)).close()
            return
        except psycopg2.OperationalError as exc:
            if not _no_such_database(exc):
                raise
    admin = parsed.set(database="postgres", drivername="postgresql")
    conn = _connect_with_retry(admin.render_as_string(hide_password=False))
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            if recreate:
                cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()


def _connect_with_retry(dsn: str, timeout: float = 30.0):
    """Connect, waiting for a server that is still starting up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return psycopg2.connect(dsn, connect_timeout=5)
        except psycopg2.OperationalError as exc:
            if _no_such_database(exc) or time.monotonic() > deadline:  # (waiting would not make it)
                raise
            time.sleep(0.3)


def _no_such_database(exc: psycopg2.OperationalError) -> bool:
    """The server refused the connection because the database does not exist (SQLSTATE 3D000; psycopg2
    gives a refused connection no pgcode, only the server's message)."""
    return "does not exist" in str(exc) and "database" in str(exc)
