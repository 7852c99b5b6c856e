"""The ``gridsvc`` command: the embedded database, migrations, demo data, serving, benchmarks."""
from __future__ import annotations

import os
import sys

import click

from gridsvc import localdb
from gridsvc.config import database_url


def _echo(message: str) -> None:
    click.echo(message, err=True)


def _require_url() -> str:
    url = database_url()
    if not url:
        raise click.ClickException("no database: set DATABASE_URL or run `gridsvc db start`")
    return url


@click.group()
def main() -> None:
    """gridsvc: grid zones, volunteers and parking for industrial-park communities."""


@main.group()
def db() -> None:
    """The embedded PostGIS cluster under .gridsvc/ (not used when DATABASE_URL is set)."""


@db.command("start")
def db_start() -> None:
    """Install PostGIS if needed (apt, as root), create and start the cluster, create the database."""
    if os.environ.get("DATABASE_URL"):
        _echo("DATABASE_URL is set: using that server, no embedded cluster.")
    else:
        try:
            localdb.start(echo=_echo)
        except localdb.LocalDbError as exc:
            raise click.ClickException(str(exc)) from exc
    try:
        localdb.ensure_database(_require_url())
    except Exception as exc:  # psycopg2 errors: say what failed, no traceback
        raise click.ClickException(f"cannot create the database: {exc}") from exc


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded cluster."""
    localdb.stop(echo=_echo)


@db.command("status")
def db_status() -> None:
    """Say whether the embedded cluster runs, and where."""
    if os.environ.get("DATABASE_URL"):
        click.echo("DATABASE_URL is set: the embedded cluster is not used.")
    for key, value in localdb.status().items():
        click.echo(f"{key}: {value}")


@main.command()
def migrate() -> None:
    """Bring the database schema up to date (Alembic upgrade head)."""
    from gridsvc.migrate import upgrade

    upgrade(_require_url())
    _echo("database schema is up to date")


@main.command()
@click.argument("dataset", type=click.Choice(["lingfeng"]))
def seed(dataset: str) -> None:
    """Load demo data (once: a second run loads nothing)."""
    from gridsvc.db import Database
    from gridsvc.seed import load_lingfeng

    database = Database(_require_url())
    with database.sessionmaker() as session:
        result = load_lingfeng(session)
        session.commit()
        if result.created:
            _echo(f"loaded {result.community.name}: {result.zones} zones, {result.enterprises} enterprises, "
                  f"{result.users} demo accounts")
        else:
            added = ("added " + ", ".join(f"{n} {what}" for what, n in result.added.items())) if result.added \
                else "nothing to do"
            _echo(f"{result.community.name} is already loaded (community {result.community.id}); {added}")
    database.dispose()


@main.group()
def user() -> None:
    """Accounts: create real users (the demo accounts are for trying things out only)."""


@user.command("add")
@click.argument("username")
@click.option("--name", "display_name", required=True, help="the person's name as shown")
@click.option("--role", "roles", multiple=True, required=True,
              type=click.Choice(["admin", "planner", "liaison", "volunteer", "department", "worker"]))
@click.option("--phone", default=None)
@click.option("--department", "departments", multiple=True, help="department code (repeatable)")
@click.password_option(help="asked for when not given; or set GRIDSVC_NEW_PASSWORD", envvar="GRIDSVC_NEW_PASSWORD")
def user_add(username: str, display_name: str, roles: tuple[str, ...], phone: str | None,
             departments: tuple[str, ...], password: str) -> None:
    """Create an account."""
    from gridsvc.db import Database
    from gridsvc.errors import GridsvcError
    from gridsvc.services.accounts import create_user

    if len(password) < 8:
        raise click.ClickException("the password needs at least 8 characters")
    database = Database(_require_url())
    try:
        with database.sessionmaker() as session:
            created = create_user(session, username=username, password=password, display_name=display_name,
                                  roles=list(roles), phone=phone, departments=list(departments))
            session.commit()
            _echo(f"created user {created.username} (id {created.id}) with roles {', '.join(created.roles)}")
    except GridsvcError as exc:
        raise click.ClickException(exc.detail or exc.title) from exc
    finally:
        database.dispose()


@user.command("api-key")
@click.argument("username")
@click.option("--label", default="open311 client", show_default=True)
def user_api_key(username: str, label: str) -> None:
    """Make an api_key for an account (Open311 clients); it is shown once."""
    from gridsvc.db import Database
    from gridsvc.open311 import new_api_key
    from gridsvc.services.accounts import find_user

    database = Database(_require_url())
    try:
        with database.sessionmaker() as session:
            found = find_user(session, username)
            if found is None:
                raise click.ClickException(f"no user {username}")
            key = new_api_key(session, found.id, label)
            session.commit()
            click.echo(key)
    finally:
        database.dispose()


@user.command("revoke-api-keys")
@click.argument("username")
@click.option("--label", default=None, help="only the keys with this label (default: all of the account's)")
def user_revoke_api_keys(username: str, label: str | None) -> None:
    """Revoke an account's api_keys (a key leaked into a log, say): they stop working at once; the account
    and its tokens go on."""
    from gridsvc.db import Database
    from gridsvc.services.accounts import find_user, revoke_api_keys

    database = Database(_require_url())
    try:
        with database.sessionmaker() as session:
            found = find_user(session, username)
            if found is None:
                raise click.ClickException(f"no user {username}")
            revoked = revoke_api_keys(session, found.id, label=label)
            session.commit()
            _echo(f"revoked {revoked} api_key{'s' if revoked != 1 else ''} of {username}"
                  + (f" labelled {label!r}" if label is not None else ""))
    finally:
        database.dispose()


@user.command("disable")
@click.argument("username")
def user_disable(username: str) -> None:
    """Disable an account: its tokens stop working at once."""
    from gridsvc.db import Database
    from gridsvc.errors import GridsvcError
    from gridsvc.services.accounts import find_user, update_user

    database = Database(_require_url())
    try:
        with database.sessionmaker() as session:
            found = find_user(session, username)
            if found is None:
                raise click.ClickException(f"no user {username}")
            update_user(session, found.id, {"disabled": True})
            session.commit()
            _echo(f"disabled {username}")
    except GridsvcError as exc:  # the last enabled admin, say
        raise click.ClickException(exc.detail or exc.title) from exc
    finally:
        database.dispose()


@main.group("import")
def import_() -> None:
    """Import data files."""


@import_.command("parking")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@click.option("--dry-run", is_flag=True, help="check and place every feature, write nothing")
def import_parking_file(path: str, dry_run: bool) -> None:
    """Import a GeoJSON FeatureCollection of parking lots and spaces (our fields or OSM tags): all or nothing."""
    import json

    from gridsvc import clock
    from gridsvc.db import Database
    from gridsvc.schemas.parking import parse_import
    from gridsvc.services.parking_import import ImportFailed, import_parking

    try:
        # utf-8-sig: a file saved by Notepad or exported from Excel starts with a byte order mark
        with open(path, encoding="utf-8-sig") as handle:
            collection = json.load(handle)
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from exc
    report = parse_import(collection)
    database = Database(_require_url())
    try:
        with database.sessionmaker() as session:
            with click.progressbar(length=len(report.items), label="importing", file=sys.stderr) as bar:
                try:
                    result = import_parking(session, report.items, parse_errors=report.errors, now=clock.now(),
                                            dry_run=dry_run, progress=bar.update)
                except ImportFailed as exc:
                    for error in exc.errors:
                        click.echo(f"  feature #{error['index']} {error.get('feature', '')}: {error['errors']}", err=True)
                    raise click.ClickException(exc.detail) from exc
            if not dry_run:
                session.commit()
            verb = "would import" if dry_run else "imported"
            _echo(f"{verb} {result.lots} lots and {result.spaces} spaces "
                  f"({', '.join(f'{z}: {n}' for z, n in sorted(result.by_zone.items()))})")
    finally:
        database.dispose()


@main.command()
@click.option("--days", type=click.FloatRange(min=0, min_open=True), default=None,
              help="retention in days, more than 0 (default GRIDSVC_POSITION_RETENTION_DAYS, 7)")
def purge(days: float | None) -> None:
    """Delete volunteer positions older than the retention period, and stored answers to retried writes older
    than GRIDSVC_IDEMPOTENCY_HOURS (PIPL: keep no more than needed)."""
    from gridsvc import clock, idempotency
    from gridsvc.config import load_config
    from gridsvc.db import Database
    from gridsvc.services.volunteers import purge_positions

    config = load_config()
    retention = days if days is not None else _retention_days(config["GRIDSVC_POSITION_RETENTION_DAYS"])
    try:
        answers_kept = idempotency.kept_hours(config)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    database = Database(_require_url())
    try:
        with database.sessionmaker() as session:
            removed = purge_positions(session, retention_days=retention, now=clock.now())
            answers = idempotency.purge(session, now=clock.now(), hours=answers_kept)
            session.commit()
            _echo(f"deleted {removed} position(s) older than {retention:g} days and {answers} stored answer(s) to "
                  f"retried writes older than {answers_kept:g} hours")
    finally:
        database.dispose()


def _retention_days(configured: object) -> float:
    """GRIDSVC_POSITION_RETENTION_DAYS as a number of days above 0: 0 or less would delete every
    volunteer's last known position, and dispatch would find nobody."""
    try:
        days = float(configured)
    except (TypeError, ValueError):
        days = float("nan")
    if not days > 0:
        raise click.UsageError(f"GRIDSVC_POSITION_RETENTION_DAYS must be a number of days above 0, not {configured!r}.")
    return days


@main.command()
def tick() -> None:
    """Enforce deadlines now: expired offers, and offers to volunteers gone off duty, move on; forgotten check-outs
    close (run it every minute from cron)."""
    from gridsvc import clock
    from gridsvc.config import load_config
    from gridsvc.db import Database
    from gridsvc.services.checks import CheckPolicy
    from gridsvc.services.deadlines import enforce_deadlines
    from gridsvc.services.requests import DispatchPolicy

    config = load_config()
    database = Database(_require_url())
    try:
        with database.sessionmaker() as session:
            done = enforce_deadlines(session, now=clock.now(), checks=CheckPolicy.from_config(config),
                                     dispatch=DispatchPolicy.from_config(config))
            session.commit()
            _echo(f"moved on {done.moved_offers} offer(s) expired or to volunteers gone off duty; "
                  f"closed {done.closed_check_ins} check-in(s) left open past their shift")
    finally:
        database.dispose()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option("--port", type=int, default=lambda: int(os.environ.get("GRIDSVC_PORT", 8000)), show_default="8000 or GRIDSVC_PORT")
@click.option("--workers", type=int, default=lambda: int(os.environ.get("GRIDSVC_WORKERS", 2)), show_default="2")
@click.option("--threads", type=int, default=lambda: int(os.environ.get("GRIDSVC_THREADS", 1)), show_default="1",
              help="threads per worker; more than 1 runs gthread workers (keep-alive; better behind no proxy "
                   "with slow clients), 1 runs sync workers (faster on 2 cores: see bench maps)")
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the API with gunicorn (Ctrl-C stops it)."""
    _require_url()
    _echo(f"serving the API on http://{host}:{port}/api/v1 (docs: http://{host}:{port}/api/docs, "
          f"map: http://{host}:{port}/map, OGC API: http://{host}:{port}/ogc)")
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", str(workers),
            "--worker-class", "gthread" if threads > 1 else "sync", "--threads", str(max(1, threads)),
            "--access-logfile", "-", "--no-control-socket", "--timeout", "60", "-c", "python:gridsvc.gunicorn_conf",
            "gridsvc.app:create_app()"]
    os.execv(sys.executable, argv)


@main.command()
@click.argument("name")
@click.argument("args", nargs=-1)
def bench(name: str, args: tuple[str, ...]) -> None:
    """Run a benchmark from bench/ (e.g. `gridsvc bench locate`)."""
    # bench/ lives beside the package in the repository, not in the install:
    # the console script does not put the working directory on the path.
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        from bench.__main__ import run
    except ImportError as exc:
        raise click.ClickException("bench/ is not importable: run from the repository root") from exc
    sys.exit(run([name, *args]))


if __name__ == "__main__":
    main()
