"""Declarative base, engine and the one-session-per-request unit of work.

Views get the request's session with ``current_session()``; services take a
session and only flush; the view commits once. The session is closed (and
rolled back if not committed) when the request ends.
"""
from __future__ import annotations

import re
import threading
import time
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime
from typing import Any, Iterator

import psycopg2
from flask import current_app, g
from sqlalchemy import DateTime, ForeignKey, MetaData, create_engine, event, func
from sqlalchemy.dialects.postgresql import psycopg2 as psycopg2_dialect
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, declared_attr, mapped_column, relationship, sessionmaker

# Stable constraint names so Alembic can alter and drop them later.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Timestamped:
    """Creation and last-change times, set by the database."""

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )


class Audited(Timestamped):
    """Who created and last changed a row: set from ``session.info["actor_id"]``.

    The view puts the signed-in user's id there; services never pass it
    around. Rows written by the CLI or the seed have no actor (NULL).
    """

    @declared_attr
    def created_by_id(cls) -> Mapped[int | None]:
        return mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))

    @declared_attr
    def updated_by_id(cls) -> Mapped[int | None]:
        return mapped_column(ForeignKey("app_user.id", ondelete="SET NULL"))

    @declared_attr
    def created_by(cls) -> Mapped[Any]:
        return relationship("User", foreign_keys=f"{cls.__name__}.created_by_id", viewonly=True)

    @declared_attr
    def updated_by(cls) -> Mapped[Any]:
        return relationship("User", foreign_keys=f"{cls.__name__}.updated_by_id", viewonly=True)


@event.listens_for(Session, "before_flush")
def _stamp_actor(session: Session, _context: Any, _instances: Any) -> None:
    actor = session.info.get("actor_id")
    if actor is None:
        return
    for obj in session.new:
        if isinstance(obj, Audited):
            obj.created_by_id = actor
            obj.updated_by_id = actor
    for obj in session.dirty:
        if isinstance(obj, Audited) and session.is_modified(obj, include_collections=False):
            obj.updated_by_id = actor


@event.listens_for(Session, "do_orm_execute")
def _locked_rows_are_read_fresh(state: Any) -> None:
    """A SELECT ... FOR UPDATE refreshes the objects it returns.

    Why: the session keeps one object per row, and by default a later query
    does not overwrite what an earlier one loaded. A view that read a row
    for its access check and then locked it in the service would decide on
    the values from before the lock: two reviewers both found the same
    hours "pending", and the second decision overwrote the first.
    """
    if state.is_select and state.statement._for_update_arg is not None:
        state.update_execution_options(populate_existing=True)


def _with_url_options(url: str, ours: str) -> str:
    """libpq ``options`` of the URL (``?options=-c%20statement_timeout%3D5s``), then ours."""
    given = make_url(url).query.get("options")
    given = " ".join(given) if isinstance(given, tuple) else given
    return f"{given} {ours}" if given else ours


class Database:
    """The engine and session factory of one app."""

    def __init__(self, url: str, *, connect_timeout: int = 5, pool_size: int = 10,
                 application_name: str = "gridsvc") -> None:
        options = dict(
            # No pre-ping and no reset-on-return: each would add a round trip to
            # every request. Sessions always end in commit or rollback, and a
            # connection lost to a database restart fails one request with a
            # 503 (Retry-After) while SQLAlchemy invalidates the pool.
            pool_pre_ping=False,
            pool_reset_on_return=None,
            pool_size=int(pool_size),
            # JIT off: our statements are short, and once a prepared statement
            # goes to a generic plan its cost estimate can cross jit_above_cost,
            # making PostgreSQL spend ~300 ms compiling a query that runs in 2 ms.
            # Time zone UTC: a time read back is written +00:00 whatever the
            # server's own setting (often Asia/Shanghai in China); no day boundary
            # depends on it (each comes from its community's timezone).
            # After any options the URL gives (connect_args would replace them).
            connect_args={"connect_timeout": int(connect_timeout), "application_name": application_name,
                          "options": _with_url_options(url, "-c jit=off -c timezone=UTC")},
        )
        self.engine: Engine = create_engine(url, **options)
        # For reads answered by one statement (see without_transaction): its
        # connections stay in autocommit, rather than switching a pooled
        # connection there and back on every such request (0.1 ms of CPU).
        self.autocommit_engine: Engine = create_engine(url, isolation_level="AUTOCOMMIT", **options)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False,
                                         info={AUTOCOMMIT_ENGINE: self.autocommit_engine})
        self._kept = threading.local()  # autocommit_connection's, one per thread

    def autocommit_connection(self) -> AbstractContextManager[Any]:
        """A DBAPI connection in autocommit, for one statement that is its own
        transaction, without a Session (``single_statement`` for a caller that
        has none: check-in's fast path). The tests replace it with their
        transaction's connection.

        Each thread keeps its connection checked out of the autocommit pool
        between calls: the fast path asks for one on every check-in, and a
        checkout and return cost it about a tenth of its own CPU. A
        connection lost to a database restart is dropped on the error that
        reveals it, as the pool would drop it, and the next call connects
        again.
        """
        return self._kept_connection()

    @contextmanager
    def _kept_connection(self) -> Iterator[Any]:
        connection = getattr(self._kept, "connection", None)
        if connection is None:
            connection = self._kept.connection = self.autocommit_engine.raw_connection()
        try:
            yield connection
        except DBAPIError as exc:
            if exc.connection_invalidated:
                self._kept.connection = None
                connection.invalidate(exc.orig)  # not back into the pool
            raise

    def dispose(self) -> None:
        connection = getattr(self._kept, "connection", None)
        if connection is not None:
            self._kept.connection = None
            connection.close()  # back to the pool, which closes it now
        self.engine.dispose()
        self.autocommit_engine.dispose()


AUTOCOMMIT_ENGINE = "gridsvc.autocommit_engine"


def get_database() -> Database:
    return current_app.extensions["gridsvc.db"]


def current_session() -> Session:
    """The session of the current request, opened on first use."""
    if "db_session" not in g:
        g.db_session = get_database().sessionmaker()
        principal = g.get("principal")
        if principal is not None and principal.user_id is not None:
            g.db_session.info["actor_id"] = principal.user_id
    return g.db_session


def without_transaction(session: Session) -> None:
    """Let the session's statements run without BEGIN and ROLLBACK, each its own transaction.

    For a read-only view whose answer comes from one statement (a consistent
    snapshot by itself): it saves two of its three round trips. The session
    takes its connection from the Database's autocommit pool. Does nothing
    once the session has begun (a token's account was read), or for a
    session the Database did not make (the tests' share one connection, in
    a transaction).
    """
    autocommit_engine = session.info.get(AUTOCOMMIT_ENGINE)
    if autocommit_engine is not None and not session.in_transaction():
        session.bind = autocommit_engine


@contextmanager
def single_statement(session: Session) -> Iterator[Any]:
    """A pooled DBAPI connection for one statement that is its own transaction.

    For a write made of one statement (check-in's): it is checked out of the
    Database's autocommit pool directly, around the session, whose
    bookkeeping (begin, connection, commit, close) costs about 0.3 ms of CPU,
    more than a round trip. A session that has begun, or that the Database
    did not make (the tests' share one connection, in a transaction), lends
    its own connection, and is committed after the statement.
    """
    autocommit_engine = session.info.get(AUTOCOMMIT_ENGINE)
    if autocommit_engine is None or session.in_transaction():
        with _dropped_when_lost(session.connection()) as connection:
            yield connection.connection
        session.commit()
        return
    with _autocommit_connection(autocommit_engine) as connection:
        yield connection


@contextmanager
def _autocommit_connection(autocommit_engine: Engine) -> Iterator[Any]:
    connection = autocommit_engine.raw_connection()
    try:
        yield connection
    except DBAPIError as exc:
        if exc.connection_invalidated:
            connection.invalidate(exc.orig)  # not back into the pool
        raise
    finally:
        connection.close()  # back to the pool


def close_session(_exc: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()  # rolls back whatever was not committed


# ---------------------------------------------------------------- prepared statements

_NAMED_PARAMETER = re.compile(r"%\((\w+)\)s")


def statement_text(statement: Any, *, literal: bool = False) -> tuple[str, dict[str, Any]]:
    """A Core statement as psycopg2 SQL text for ``fetch_prepared``, and the
    values of the parameters it carries itself (its literals, LIMIT 1 ...);
    ``literal`` writes those values into the text instead (for a fragment)."""
    compiled = statement.compile(dialect=psycopg2_dialect.dialect(), compile_kwargs={"literal_binds": literal})
    return str(compiled), {k: v for k, v in compiled.params.items() if v is not None}


def fetch_prepared(session: Session, sql: str, params: dict[str, Any], *, many: bool = False,
                   run_first: str | tuple[str, ...] | None = None) -> Any:
    """Run a hand-written statement (psycopg2 ``%(name)s`` parameters) as a
    server-side prepared statement of the session's connection.

    For the hot paths (check-in, dispatch, map pages, tiles, capacity):
    PostgreSQL parses and plans the statement once per connection instead of
    on every request, which is most of the cost of a small query. Prepared
    statements outlive transactions, so they are remembered in the pooled
    connection's ``info``. Returns the first row (or all rows with ``many``).

    ``run_first`` is another statement, or several, (taking the same
    parameters) sent in the same round trip just before, their rows
    discarded: a lock, say. Each
    statement of the message reads with its own snapshot, so ``sql`` sees
    everything committed before the lock was granted. A round trip costs as
    much as a small query here, so this halves such a pair.
    """
    with _dropped_when_lost(session.connection()) as connection:
        return execute_prepared(connection.connection, sql, params, many=many, run_first=run_first)


@contextmanager
def _dropped_when_lost(connection: Connection) -> Iterator[Connection]:
    """Invalidate a Connection whose DBAPI connection died under ``execute_prepared``,
    as SQLAlchemy does for the statements it runs itself."""
    try:
        yield connection
    except DBAPIError as exc:
        if exc.connection_invalidated:
            connection.invalidate(exc.orig)
        raise


def execute_prepared(connection: Any, sql: str, params: dict[str, Any], *, many: bool = False,
                     run_first: str | tuple[str, ...] | None = None) -> Any:
    """``fetch_prepared`` on a pooled DBAPI connection (see ``single_statement``).

    A DBAPI error is raised as SQLAlchemy raises it for its own statements
    (an ``OperationalError`` is answered 503, a deadlock 409), with
    ``connection_invalidated`` when the connection itself was lost (say, to
    a database restart): the caller must then drop it from the pool.
    """
    cursor = connection.cursor()
    try:
        first = (run_first,) if isinstance(run_first, str) else (run_first or ())
        calls = [_prepared_call(connection, cursor, statement) for statement in (*first, sql)]
        cursor.execute("; ".join(calls), params)
        return cursor.fetchall() if many else cursor.fetchone()
    except psycopg2.Error as exc:
        raise DBAPIError.instance(sql, params, exc, psycopg2.Error,
                                  connection_invalidated=bool(connection.dbapi_connection.closed)) from exc
    finally:
        if not connection.dbapi_connection.closed:
            cursor.close()


def _prepared_call(connection: Any, cursor: Any, sql: str) -> str:
    """``EXECUTE name(%(a)s, ...)`` for ``sql``, preparing it on first use on this connection."""
    prepared: dict[str, tuple[str, list[str]]] = connection.info.setdefault("gridsvc_prepared", {})
    entry = prepared.get(sql)
    if entry is None:
        names: list[str] = []

        def position(match: re.Match) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        entry = (f"gridsvc_{len(prepared) + 1}", names)
        cursor.execute(f"PREPARE {entry[0]} AS {_NAMED_PARAMETER.sub(position, sql)}")
        prepared[sql] = entry
    name, names = entry
    return f"EXECUTE {name}" + ("(" + ", ".join(f"%({n})s" for n in names) + ")" if names else "")


def try_advisory_xact_lock(session: Session, space: int, key: int, *, seconds: float) -> bool:
    """Take the transaction's advisory lock (space, key), trying every 50 ms for up to ``seconds``; False if
    another transaction held it all along. Why tried, not waited for: a wait while holding rows can deadlock,
    and a wait behind a long writer (an import) kept a caller's request open for as long as it ran."""
    deadline = time.monotonic() + seconds
    while not session.scalar(func.pg_try_advisory_xact_lock(space, key).select()):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True
