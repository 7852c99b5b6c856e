"""What an operator meets running the ``gridsvc`` command by hand, from cron or from CI: a clear one-line message
and a non-zero exit status for every failure they can cause (a wrong DATABASE_URL, the database down or not
migrated, PostGIS not creatable, a file that is not GeoJSON, a setting that is not a number), never a traceback.

CliRunner is run with ``catch_exceptions=False``: an error the command does not handle raises here and fails
the test (CliRunner would otherwise report it as exit status 1, like a handled one).
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from gridsvc import localdb
from gridsvc.cli import main


def run(*args, env=None, database_url=None):
    environment = {"DATABASE_URL": database_url, **(env or {})} if database_url else dict(env or {})
    return CliRunner().invoke(main, list(args), env=environment, catch_exceptions=False)


def _with(url: str, **parts) -> str:
    return make_url(url).set(**parts).render_as_string(hide_password=False)


# ------------------------------------------------------------------ the database unreachable or misnamed


@pytest.mark.parametrize("command", [["tick"], ["purge"], ["migrate"], ["seed", "lingfeng"],
                                     ["user", "api-key", "admin"]])
def test_a_database_that_is_down_is_one_line_and_exit_1(command):
    result = run(*command, database_url="postgresql://gridsvc:secret@127.0.0.1:1/gridsvc")
    assert result.exit_code == 1, result.output
    assert "cannot connect to the database" in result.output and "127.0.0.1:1" in result.output
    assert "secret" not in result.output  # the password is never echoed


def test_a_wrong_password_says_so_without_showing_it(database_url):
    result = run("tick", database_url=_with(database_url, password="not-the-password"))
    assert result.exit_code == 1 and "password authentication failed" in result.output, result.output
    assert "not-the-password" not in result.output


def test_a_database_that_does_not_exist_says_which(database_url):
    result = run("purge", database_url=_with(database_url, database="gridsvc_no_such_database"))
    assert result.exit_code == 1 and "gridsvc_no_such_database" in result.output, result.output


@pytest.mark.parametrize("url, says", [
    ("localhost:5432/gridsvc", "postgresql://"),
    ("mysql://u:p@db.example/gridsvc", "postgresql://"),
    ("postgresql://u:p@db.example:port/gridsvc", "postgresql://"),
    # an @ in the password must be written %40, else the host reads "ss@db.example"
    ("postgresql://u:p@ss@db.example/gridsvc", "%40"),
])
def test_a_database_url_that_is_not_one_names_the_setting(url, says):
    result = run("tick", database_url=url)
    assert result.exit_code == 1, result.output
    assert "DATABASE_URL" in result.output and says in result.output


def test_a_database_url_with_sslmode_and_an_encoded_password_reaches_the_server(database_url):
    """The forms the README promises: postgres://, ?sslmode=, a password with special characters (percent-
    encoded). The password is wrong on purpose: the server's own refusal proves the URL was read to the end."""
    odd = "p@ss:w/rd#?%&= 密"
    from urllib.parse import quote

    parsed = make_url(database_url)
    host = f"{parsed.host or '127.0.0.1'}:{parsed.port or 5432}" if parsed.host else ""
    query = "&".join(f"{k}={quote(str(v), safe='')}" for k, v in parsed.query.items())
    query = ("?" + query + "&sslmode=prefer") if query else "?sslmode=prefer"
    url = f"postgres://{parsed.username}:{quote(odd, safe='')}@{host}/{parsed.database}{query}"
    result = run("tick", database_url=url)
    assert result.exit_code == 1 and "password authentication failed" in result.output, result.output


# ------------------------------------------------------------------ the schema missing or behind


@pytest.fixture()
def bare_database(database_url):
    """A database on the test server with nothing in it (not migrated)."""
    url = _with(database_url, database=make_url(database_url).database + "_bare")
    localdb.ensure_database(url, recreate=True)
    yield url


@pytest.mark.parametrize("command", [["tick"], ["purge"], ["seed", "lingfeng"], ["user", "disable", "admin"]])
def test_a_database_not_migrated_says_run_migrate(bare_database, command):
    result = run(*command, database_url=bare_database)
    assert result.exit_code == 1 and "gridsvc migrate" in result.output, result.output


def test_migrate_without_the_right_to_create_postgis_says_what_a_superuser_must_do(database_url, bare_database):
    admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
    name = make_url(bare_database).database
    try:
        with admin.connect() as conn:
            try:
                conn.execute(text("DROP ROLE IF EXISTS gridsvc_ops_plain"))
                conn.execute(text("CREATE ROLE gridsvc_ops_plain LOGIN PASSWORD 'plain-password'"))
            except Exception:
                pytest.skip("the test database's user may not create roles")
            conn.execute(text(f'ALTER DATABASE "{name}" OWNER TO gridsvc_ops_plain'))
        result = run("migrate", database_url=_with(bare_database, username="gridsvc_ops_plain",
                                                   password="plain-password"))
        assert result.exit_code == 1, result.output
        assert "CREATE EXTENSION postgis" in result.output and name in result.output
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text("DROP ROLE IF EXISTS gridsvc_ops_plain"))
        admin.dispose()


def test_db_start_on_a_database_that_exists_connects_to_it_alone(database_url, monkeypatch):
    """`make run` with DATABASE_URL on a shared server, where the account was given one database (and may not
    connect to the `postgres` maintenance database, as hosted PostgreSQL often has it): `gridsvc db start`
    connected to `postgres` first to see whether the database exists, and stopped there. A database that exists
    is now only connected to; one that does not is still created, through `postgres`."""
    import psycopg2

    reached = []
    connect = psycopg2.connect

    def recording_connect(dsn=None, **kwargs):  # (SQLAlchemy passes keywords only: not ensure_database's)
        if dsn is not None:
            reached.append(make_url(dsn).database)
        return connect(dsn, **kwargs)

    monkeypatch.setattr(psycopg2, "connect", recording_connect)
    result = run("db", "start", database_url=database_url)
    assert result.exit_code == 0, result.output
    assert reached == [make_url(database_url).database]

    missing = _with(database_url, database=make_url(database_url).database + "_new")
    reached.clear()
    try:
        result = run("db", "start", database_url=missing)
        assert result.exit_code == 0, result.output
        assert reached == [make_url(missing).database, "postgres"]
        created = create_engine(missing)
        with created.connect() as conn:
            assert conn.execute(text("SELECT current_database()")).scalar() == make_url(missing).database
        created.dispose()
    finally:
        admin = create_engine(database_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(missing).database}" WITH (FORCE)'))
        admin.dispose()


# ------------------------------------------------------------------ files and settings


@pytest.mark.parametrize("content", ["[1, 2]", '{"type": "Feature", "geometry": null, "properties": {}}',
                                     '{"type": "FeatureCollection"}'])
def test_import_of_json_that_is_not_a_feature_collection_says_so(tmp_path, content):
    path = tmp_path / "lots.geojson"
    path.write_text(content)
    result = run("import", "parking", str(path), database_url="postgresql://u:p@127.0.0.1:1/never-reached")
    assert result.exit_code == 1 and "not a GeoJSON FeatureCollection" in result.output, result.output
    assert "#None" not in result.output


@pytest.mark.parametrize("setting", ["GRIDSVC_CHECKOUT_GRACE_MIN", "GRIDSVC_DISPATCH_ACCEPT_MIN",
                                     "GRIDSVC_DISPATCH_TASK_CAP"])
def test_tick_with_a_setting_that_is_not_a_number_names_it(database_url, setting):
    result = run("tick", database_url=database_url, env={setting: "ten"})
    assert result.exit_code == 2 and setting in result.output, result.output


@pytest.mark.parametrize("env", [{"GRIDSVC_PORT": "http"}, {"GRIDSVC_WORKERS": "0"}])
def test_serve_with_a_port_or_workers_that_are_not_numbers_is_a_usage_error(database_url, env, monkeypatch):
    monkeypatch.setattr("os.execv", lambda *a: pytest.fail("gunicorn was started"))
    result = run("serve", database_url=database_url, env=env)
    assert result.exit_code == 2, result.output


@pytest.mark.parametrize("setting, value", [
    ("GRIDSVC_DEFAULT_TIMEZONE", "Asia/Shangai"), ("GRIDSVC_GEOFENCE_CAP_M", "abc"), ("GRIDSVC_PROXY_HOPS", "x"),
    ("GRIDSVC_SIGNIN_ADDRESS_FAILURES", "0"), ("GRIDSVC_LOG_LEVEL", "loud")])
def test_serve_with_a_bad_setting_is_a_usage_error_before_gunicorn_starts(database_url, monkeypatch, setting, value):
    """Checked only in gunicorn's workers, a bad setting printed a traceback per worker and "Worker failed to boot",
    and `serve` exited 1 or 3; the README promises 2 and a short reason naming it."""
    monkeypatch.setattr("os.execv", lambda *a: pytest.fail("gunicorn was started"))
    result = run("serve", database_url=database_url, env={setting: value})
    assert result.exit_code == 2 and setting in result.output and "Traceback" not in result.output, result.output


@pytest.mark.parametrize("setting, value, says", [
    ("GRIDSVC_SIGNIN_ADDRESS_FAILURES", "0", "a whole number from 1, at most 1000000"),
    # (a LIMIT beyond a bigint: every counted sign-in a 500; 400 digits are no float: a traceback, not the name)
    ("GRIDSVC_SIGNIN_ADDRESS_FAILURES", "1" + "0" * 19, "a whole number from 1, at most 1000000"),
    ("GRIDSVC_DISPATCH_TASK_CAP", "9" * 400, "a whole number from 1, at most 1000000"),
    ("GRIDSVC_SIGNIN_ADDRESS_WINDOW_MIN", "100000", "a whole number from 1, at most 1440"),
    ("GRIDSVC_ACCESS_TOKEN_MINUTES", "-5", "a number above 0, at most 525600"),
    ("GRIDSVC_OFFLINE_MAX_AGE_H", "1e9", "a number above 0, at most 8760"),
    ("GRIDSVC_DISPATCH_TASK_CAP", "1.5", "a whole number from 1, at most 1000000")])
def test_a_setting_out_of_its_range_stops_the_app_saying_what_it_may_be(database_url, setting, value, says):
    """No failed sign-in allowed made every counted sign-in a 500 (IndexError); a window of 100,000 minutes quietly
    acted as a day; a negative token lifetime issued tokens already expired; an offline age of a billion hours ran
    a date before year 1 on every upload."""
    from gridsvc.app import create_app
    from tests.conftest import TEST_CONFIG

    with pytest.raises(ValueError, match=f"{setting} must be {says}, not '{value}'"):
        create_app({"DATABASE_URL": database_url, **TEST_CONFIG, setting: value})


def test_token_lifetimes_may_be_fractions(database_url):
    """GRIDSVC_ACCESS_TOKEN_MINUTES=1.5 passed the start's check and then failed it with "invalid literal for int()",
    naming no setting."""
    from gridsvc.app import create_app
    from tests.conftest import TEST_CONFIG

    app = create_app({"DATABASE_URL": database_url, **TEST_CONFIG, "GRIDSVC_ACCESS_TOKEN_MINUTES": "1.5",
                      "GRIDSVC_REFRESH_TOKEN_DAYS": "0.5"})
    assert app.config["JWT_ACCESS_TOKEN_EXPIRES"].total_seconds() == 90
    assert app.config["JWT_REFRESH_TOKEN_EXPIRES"].total_seconds() == 43_200
    app.extensions["gridsvc.db"].dispose()


def test_the_demo_is_not_loaded_into_a_database_with_accounts_of_its_own(database_url):
    """`DATABASE_URL=<an existing server> make run` loaded the demo into it: an `admin` and 84 more accounts whose
    password the README publishes, beside the deployment's own people. The seed now says why it loads nothing
    there (exit 0: `make run` goes on to serve); `--force` loads it anyway."""
    from gridsvc.migrate import upgrade

    url = _with(database_url, database=make_url(database_url).database + "_own_accounts")
    localdb.ensure_database(url, recreate=True)
    upgrade(url)
    engine = create_engine(url)
    try:
        # a real deployment's first account is its admin, whose name the demo uses too
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO app_user (username, display_name, password_hash) "
                              "VALUES ('admin', '管理员', 'x')"))
        refused = run("seed", "lingfeng", database_url=url)
        assert refused.exit_code == 0 and "not loading the demo" in refused.output and "admin" in refused.output
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM app_user")).scalar() == 1
            assert conn.execute(text("SELECT count(*) FROM community")).scalar() == 0
        forced = run("seed", "lingfeng", "--force", database_url=url)
        assert forced.exit_code == 0 and "84 demo accounts" in forced.output, forced.output  # (admin was there)
        again = run("seed", "lingfeng", database_url=url)  # the demo's database now: a second run is as ever
        assert again.exit_code == 0 and "is already loaded" in again.output, again.output
    finally:
        engine.dispose()
        with create_engine(database_url, isolation_level="AUTOCOMMIT").connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {make_url(url).database} WITH (FORCE)"))


# ------------------------------------------------------------------ the embedded cluster


def test_a_failed_apt_install_is_a_message_not_a_traceback(monkeypatch):
    """`make run` as root on a machine without PostGIS runs apt-get; offline, it fails."""
    def apt(cmd, **kwargs):
        raise subprocess.CalledProcessError(100, cmd)

    monkeypatch.setattr(localdb, "find_bindir", lambda: None)
    monkeypatch.setattr(localdb.os, "geteuid", lambda: 0)
    monkeypatch.setattr(localdb.shutil, "which", lambda name: "/usr/bin/" + name)
    monkeypatch.setattr(localdb.subprocess, "run", apt)
    result = run("db", "start", env={"DATABASE_URL": ""})
    assert result.exit_code == 1 and "apt-get" in result.output and "postgis" in result.output, result.output


def test_a_second_db_start_says_the_cluster_already_runs(monkeypatch, tmp_path):
    info = localdb.ClusterInfo(port=54399, user="gridsvc", password="x", datadir=tmp_path)
    monkeypatch.setattr(localdb, "ensure_postgis_installed", lambda echo: tmp_path)
    monkeypatch.setattr(localdb, "init_cluster", lambda bindir, home, echo: info)
    monkeypatch.setattr(localdb, "is_running", lambda bindir, info: True)
    said = []
    localdb.start(echo=said.append)
    assert said and "already running" in said[0] and "54399" in said[0]


# ------------------------------------------------------------------ help


def test_every_command_has_a_whole_first_line_of_help():
    """`gridsvc --help` lists each command with its short help; one cut inside "(e.g." or ending "..." reads
    as broken."""
    listing = run("--help").output
    commands = listing.split("Commands:")[1].strip().splitlines()
    assert {line.split()[0] for line in commands} == {"bench", "db", "import", "migrate", "purge", "seed", "serve",
                                                      "tick", "user"}
    assert not [line for line in commands if line.endswith(("...", "(e.g."))], listing
    for group in (["db"], ["user"], ["import"]):
        assert run(*group, "--help").exit_code == 0


def test_bench_passes_the_benchmark_its_options():
    """The README's `--reuse-db`, `--rounds`, `--workers` are the benchmark's: click refused them ("No such
    option") before bench/ saw them. An unknown benchmark is bench's own usage message."""
    result = CliRunner().invoke(main, ["bench", "no-such-benchmark", "--rounds", "3"])
    assert "No such option" not in result.output and result.exit_code == 2


def test_cron_runs_tick_and_purge_twice_at_once_without_double_counting(database_url, engine):
    """Two overlapping cron runs of purge: each old position is deleted once, both exit 0."""
    with engine.begin() as conn:
        vid = conn.execute(text("SELECT id FROM volunteer ORDER BY id LIMIT 1")).scalar()
        conn.execute(text("INSERT INTO volunteer_position (volunteer_id, position, input_crs, recorded_at) "
                          "SELECT :v, ST_SetSRID(ST_MakePoint(121.78, 29.87), 4326), 'wgs84', "
                          "now() - interval '30 days' - n * interval '1 second' FROM generate_series(1, 500) n"),
                     {"v": vid})
    env = {"DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    try:
        command = [sys.executable, "-m", "gridsvc.cli"]
        runs = [subprocess.Popen([*command, what], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 cwd=Path(__file__).resolve().parent.parent)
                for what in ("purge", "purge", "tick", "tick")]
        outputs = [(p.wait(timeout=120), p.stderr.read()) for p in runs]
        assert [code for code, _ in outputs] == [0, 0, 0, 0], outputs
        deleted = [int(err.split("deleted ")[1].split()[0]) for _, err in outputs[:2]]
        assert sum(deleted) == 500, outputs
    finally:
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM volunteer_position WHERE volunteer_id = :v AND recorded_at < now() - "
                              "interval '29 days'"), {"v": vid})


@pytest.mark.parametrize("key, value", [("GRIDSVC_CHECKOUT_GRACE_MIN", "2h"), ("GRIDSVC_DISPATCH_TASK_CAP", "1.5"),
                                        ("GRIDSVC_TILE_CACHE_SECONDS", "")])
def test_a_setting_that_is_not_a_number_stops_the_app_naming_it(database_url, key, value):
    """Under `gridsvc serve` a typo such as GRIDSVC_CHECKOUT_GRACE_MIN=2h started the app and turned every
    check-out (or offer, or tile) into a 500 "could not convert string to float"; it now stops the start."""
    from gridsvc.app import create_app
    from tests.conftest import TEST_CONFIG

    with pytest.raises(ValueError, match=key):
        create_app({"DATABASE_URL": database_url, **TEST_CONFIG, key: value})


@pytest.mark.parametrize("value", ["Asia/Shangai", "UTC+8", "", "../../etc/passwd"])
def test_a_default_timezone_that_is_no_time_zone_stops_the_app_naming_it(database_url, value):
    """GRIDSVC_DEFAULT_TIMEZONE=Asia/Shangai started the app; every request reading a time on that clock was a 500."""
    from gridsvc.app import create_app
    from tests.conftest import TEST_CONFIG

    with pytest.raises(ValueError, match="GRIDSVC_DEFAULT_TIMEZONE must be an IANA time zone"):
        create_app({"DATABASE_URL": database_url, **TEST_CONFIG, "GRIDSVC_DEFAULT_TIMEZONE": value})


def test_db_status_exits_3_when_the_cluster_does_not_run(tmp_path, monkeypatch):
    """`db status` said "not created" or "stopped" with exit status 0, so `gridsvc db status || gridsvc db start`
    in a script never started it; it now exits 3 then, as `pg_ctl status` does, and 0 while it runs."""
    monkeypatch.setenv("GRIDSVC_HOME", str(tmp_path / "nothing-here"))
    absent = CliRunner().invoke(main, ["db", "status"])
    assert absent.exit_code == 3 and "state: not created" in absent.output
    monkeypatch.delenv("GRIDSVC_HOME")
    here = CliRunner().invoke(main, ["db", "status"])
    assert here.exit_code == (0 if localdb.status()["state"] == "running" else 3), here.output
