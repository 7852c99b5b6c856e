"""The ``gridsvc`` command: the embedded database, migrations, demo data, serving, benchmarks."""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import click

from gridsvc import localdb
from gridsvc.config import MAX_RETENTION_DAYS, BadDatabaseUrl, database_url


def _echo(message: str) -> None:
    click.echo(message, err=True)


def _require_url() -> str:
    url = database_url()
    if not url:
        raise click.ClickException("no database: set DATABASE_URL or run `gridsvc db start`")
    return url


def _database():
    """The database of a command that reads or writes the schema: reachable, and migrated to this code's
    revision (else the command would fail half-way on a missing table or column)."""
    from gridsvc.db import Database
    from gridsvc.migrate import pending

    url = _require_url()
    behind = pending(url)
    if behind:
        raise click.ClickException(behind)
    return Database(url)


def _where(url: str | None) -> str:
    """host:port/database of a URL, without its password."""
    from sqlalchemy.engine import make_url

    if not url:
        return "?"
    parsed = make_url(url)
    host = parsed.host or parsed.query.get("host") or "localhost"
    return f"{host}:{parsed.port or parsed.query.get('port') or 5432}/{parsed.database}"


class _Commands(click.Group):
    """Turns a bad DATABASE_URL or a database error into one message and exit status 1: cron, CI and the
    operator read those, and a traceback hid the one line that said what to fix."""

    def invoke(self, ctx: click.Context):
        import psycopg2
        from sqlalchemy.exc import DBAPIError

        try:
            return super().invoke(ctx)
        except BadDatabaseUrl as exc:
            raise click.ClickException(str(exc)) from None
        except (DBAPIError, psycopg2.Error) as exc:
            error = getattr(exc, "orig", None) or exc
            message = str(error).strip()
            if getattr(error, "pgcode", None) is None:  # refused before a session began: the server or the login
                raise click.ClickException(f"cannot connect to the database {_where(database_url())}: {message}\n"
                                           "(is the server running, and DATABASE_URL right? "
                                           "The embedded one: `gridsvc db start`)") from None
            raise click.ClickException(f"the database refused: {message}") from None


@click.group(cls=_Commands)
def main() -> None:
    """gridsvc: grid zones, volunteers and parking for industrial-park communities."""


@main.group(short_help="The embedded PostGIS cluster: start, stop, status.")
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
    url = _require_url()
    try:
        localdb.ensure_database(url)
    except Exception as exc:  # psycopg2 errors: say what failed, no traceback
        raise click.ClickException(f"cannot create the database: {exc}") from exc


@db.command("stop")
def db_stop() -> None:
    """Stop the embedded cluster."""
    try:
        localdb.stop(echo=_echo)
    except localdb.LocalDbError as exc:
        raise click.ClickException(str(exc)) from exc


@db.command("status")
def db_status() -> None:
    """Say whether the embedded cluster runs, and where; exit status 3 when it does not (as `pg_ctl status`),
    so a script can test it."""
    if os.environ.get("DATABASE_URL"):
        click.echo("DATABASE_URL is set: the embedded cluster is not used.")
    state = localdb.status()
    for key, value in state.items():
        click.echo(f"{key}: {value}")
    if state["state"] != "running":
        sys.exit(3)


@main.command(short_help="Bring the database schema up to date.")
def migrate() -> None:
    """Bring the database schema up to date (Alembic upgrade head)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from gridsvc.migrate import upgrade

    url = _require_url()
    try:
        upgrade(url)
    except DBAPIError as exc:
        if "CREATE EXTENSION" not in (exc.statement or ""):
            raise
        # Not a superuser (postgis is not a trusted extension), or postgis not installed on that server.
        raise click.ClickException(
            f"cannot enable PostGIS in database {make_url(url).database}: {str(exc.orig).strip()}\n"
            f"A superuser can run `CREATE EXTENSION postgis;` in that database (the server needs the postgis "
            f"package, e.g. postgresql-15-postgis-3), then run `gridsvc migrate` again.") from None
    _echo("database schema is up to date")


@main.command()
@click.argument("dataset", type=click.Choice(["lingfeng"]))
@click.option("--force", is_flag=True, help="load it into a database with accounts of its own too")
def seed(dataset: str, force: bool) -> None:
    """Load demo data (once: a second run loads nothing)."""
    from gridsvc.seed import accounts_of_its_own, load_lingfeng

    database = _database()
    try:
        with database.sessionmaker() as session:
            own = [] if force else accounts_of_its_own(session)
            if own:
                # (exit 0: `make run` on an existing server goes on to serve it, without the demo)
                _echo(f"not loading the demo: this database has accounts of its own ({', '.join(own)} ...), and the "
                      f"demo's, an admin among them, have a published password; `gridsvc seed lingfeng --force` "
                      f"loads it anyway")
                return
            result = load_lingfeng(session)
            session.commit()
            if result.created:
                _echo(f"loaded {result.community.name}: {result.zones} zones, {result.enterprises} enterprises, "
                      f"{result.users} demo accounts")
            else:
                added = ("added " + ", ".join(f"{n} {what}" for what, n in result.added.items())) if result.added \
                    else "nothing to do"
                _echo(f"{result.community.name} is already loaded (community {result.community.id}); {added}")
    finally:
        database.dispose()


@main.group(short_help="Accounts: add, disable, api-key, revoke-api-keys.")
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
    from gridsvc.errors import GridsvcError
    from gridsvc.services.accounts import create_user

    database = _database()
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


@contextmanager
def _account(username: str):
    """A session on the (migrated) database and the account ``username``, or a clear error; a refusal of the
    service (the last enabled admin, say) is one message too."""
    from gridsvc.errors import GridsvcError
    from gridsvc.services.accounts import find_user

    database = _database()
    try:
        with database.sessionmaker() as session:
            found = find_user(session, username)
            if found is None:
                raise click.ClickException(f"no user {username}")
            yield session, found
    except GridsvcError as exc:
        raise click.ClickException(exc.detail or exc.title) from exc
    finally:
        database.dispose()


@user.command("api-key")
@click.argument("username")
@click.option("--label", default="open311 client", show_default=True)
def user_api_key(username: str, label: str) -> None:
    """Make an api_key for an account (Open311 clients); it is shown once."""
    from gridsvc.services.accounts import new_api_key

    with _account(username) as (session, found):
        key = new_api_key(session, found.id, label)
        session.commit()
        click.echo(key)


@user.command("revoke-api-keys")
@click.argument("username")
@click.option("--label", default=None, help="only the keys with this label (default: all of the account's)")
def user_revoke_api_keys(username: str, label: str | None) -> None:
    """Revoke an account's api_keys (a key leaked into a log, say): they stop working at once; the account
    and its tokens go on."""
    from gridsvc.services.accounts import revoke_api_keys

    with _account(username) as (session, found):
        revoked = revoke_api_keys(session, found.id, label=label)
        session.commit()
        _echo(f"revoked {revoked} api_key{'s' if revoked != 1 else ''} of {username}"
              + (f" labelled {label!r}" if label is not None else ""))


@user.command("disable")
@click.argument("username")
def user_disable(username: str) -> None:
    """Disable an account: its tokens stop working at once (a volunteer's places, duty and requests end too)."""
    from gridsvc.config import load_config
    from gridsvc.services.accounts import update_user
    from gridsvc.services.checks import CheckPolicy
    from gridsvc.services.requests import DispatchPolicy

    with _account(username) as (session, found):
        config = load_config()
        update_user(session, found.id, {"disabled": True}, check_policy=CheckPolicy.from_config(config),
                    dispatch_policy=DispatchPolicy.from_config(config))
        session.commit()
        _echo(f"disabled {username}")


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
    from gridsvc.schemas.parking import parse_import
    from gridsvc.errors import ImportFailed
    from gridsvc.services.parking_import import import_parking

    try:
        # utf-8-sig: a file saved by Notepad or exported from Excel starts with a byte order mark
        with open(path, encoding="utf-8-sig") as handle:
            collection = json.load(handle)
    except OSError as exc:
        raise click.ClickException(f"cannot read {path}: {exc}") from exc
    except ValueError as exc:
        raise click.ClickException(f"{path} is not JSON (GeoJSON is): {exc}") from exc
    report = parse_import(collection)
    if any(error["index"] is None for error in report.errors):  # the file as a whole, not one of its features
        raise click.ClickException(f"{path} is not a GeoJSON FeatureCollection (an object with \"type\": "
                                   f"\"FeatureCollection\" and a \"features\" list)")
    database = _database()
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


@main.command(short_help="Delete position history and stored answers past retention.")
@click.option("--days", type=click.FloatRange(min=0, min_open=True, max=MAX_RETENTION_DAYS), default=None,
              help=f"retention in days, more than 0 and at most {MAX_RETENTION_DAYS} "
                   "(default GRIDSVC_POSITION_RETENTION_DAYS, 7)")
def purge(days: float | None) -> None:
    """Delete volunteer positions older than the retention period, and stored answers to retried writes older
    than GRIDSVC_IDEMPOTENCY_HOURS (PIPL: keep no more than needed)."""
    from gridsvc import clock, idempotency
    from gridsvc.config import load_config, retention_days
    from gridsvc.services.volunteers import purge_positions

    config = load_config()
    try:
        retention = days if days is not None else retention_days(config)
        answers_kept = idempotency.kept_hours(config)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    database = _database()
    try:
        with database.sessionmaker() as session:
            history, last_known = purge_positions(session, retention_days=retention, now=clock.now())
            answers = idempotency.purge(session, now=clock.now(), hours=answers_kept)
            session.commit()
            _echo(f"deleted {history} position(s) of the history and {last_known} last known position(s) older than "
                  f"{retention:g} days, and {answers} stored answer(s) to retried writes older than "
                  f"{answers_kept:g} hours")
    finally:
        database.dispose()


@main.command(short_help="Enforce deadlines now (run it every minute from cron).")
def tick() -> None:
    """Enforce deadlines now: expired offers, and offers to volunteers gone off duty, move on; forgotten check-outs
    close (run it every minute from cron)."""
    from gridsvc import clock
    from gridsvc.config import check_settings, load_config
    from gridsvc.services.checks import CheckPolicy
    from gridsvc.services.deadlines import enforce_deadlines
    from gridsvc.services.requests import DispatchPolicy

    config = load_config()
    try:
        check_settings(config)  # the policies would fail on one without saying which
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    database = _database()
    try:
        with database.sessionmaker() as session:
            done = enforce_deadlines(session, now=clock.now(), checks=CheckPolicy.from_config(config),
                                     dispatch=DispatchPolicy.from_config(config))
            session.commit()
            _echo(f"moved on {done.moved_offers} offer(s) expired or to volunteers gone off duty; "
                  f"closed {done.closed_check_ins} check-in(s) left open past their shift; "
                  f"handed back {done.handed_back} request(s) held by accounts that may no longer volunteer")
    finally:
        database.dispose()


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
# envvar: click checks the environment's value as it checks the option's (a usage error, not a traceback)
@click.option("--port", type=click.IntRange(1, 65535), envvar="GRIDSVC_PORT", default=8000, show_default=True,
              show_envvar=True)
@click.option("--workers", type=click.IntRange(min=1), envvar="GRIDSVC_WORKERS", default=2, show_default=True,
              show_envvar=True)
@click.option("--threads", type=click.IntRange(min=1), envvar="GRIDSVC_THREADS", default=1, show_default=True,
              show_envvar=True,
              help="threads per worker; more than 1 runs gthread workers (keep-alive; better behind no proxy "
                   "with slow clients), 1 runs sync workers (faster on 2 cores: see bench maps)")
def serve(host: str, port: int, workers: int, threads: int) -> None:
    """Serve the API with gunicorn (Ctrl-C stops it)."""
    from gridsvc.config import check_settings, load_config

    _require_url()
    try:  # here, before gunicorn: in its workers a bad setting is a traceback per worker and "Worker failed to boot"
        check_settings(load_config())
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    _echo(f"serving the API on http://{host}:{port}/api/v1 (docs: http://{host}:{port}/api/docs, "
          f"map: http://{host}:{port}/map, OGC API: http://{host}:{port}/ogc)")
    argv = [sys.executable, "-m", "gunicorn", "--bind", f"{host}:{port}", "--workers", str(workers),
            "--worker-class", "gthread" if threads > 1 else "sync", "--threads", str(threads),
            "--access-logfile", "-", "--no-control-socket", "--timeout", "60", "-c", "python:gridsvc.gunicorn_conf",
            "gridsvc.app:create_app()"]
    os.execv(sys.executable, argv)


@main.command(short_help="Run a benchmark: locate, checkin, parking, dispatch, maps.",
              context_settings={"ignore_unknown_options": True})
@click.argument("name")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench(name: str, args: tuple[str, ...]) -> None:
    """Run a benchmark from bench/, e.g. `gridsvc bench locate` or `gridsvc bench maps --reuse-db`; NAME's
    options are passed on (see the README's Benchmarks)."""
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
