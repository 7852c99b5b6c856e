"""The session helpers against a real pooled engine (not the tests' shared connection)."""
from __future__ import annotations

from typing import Any

import pytest
from psycopg2.extensions import TRANSACTION_STATUS_IDLE, TRANSACTION_STATUS_INTRANS

from gridsvc.db import Database, execute_prepared, fetch_prepared, without_transaction


def test_a_read_without_transaction_leaves_no_transaction_open_and_the_next_session_transactional(database_url):
    database = Database(database_url, pool_size=1)
    try:
        reader = database.sessionmaker()
        without_transaction(reader)
        assert fetch_prepared(reader, "SELECT %(n)s::int + 1", {"n": 41}) == (42,)
        raw = reader.connection().connection.dbapi_connection
        assert raw.get_transaction_status() == TRANSACTION_STATUS_IDLE  # no BEGIN was sent
        reader.close()

        again = database.sessionmaker()  # the next such read reuses the autocommit connection as it is
        without_transaction(again)
        assert again.connection().connection.dbapi_connection is raw and raw.autocommit
        assert fetch_prepared(again, "SELECT %(n)s::int + 1", {"n": 1}) == (2,)  # its prepared statement kept
        again.close()

        writer = database.sessionmaker()  # any other session is transactional
        writer_raw = writer.connection().connection.dbapi_connection
        fetch_prepared(writer, "SELECT 1", {})
        assert writer_raw is not raw and writer_raw.get_transaction_status() == TRANSACTION_STATUS_INTRANS
        writer.close()
    finally:
        database.dispose()


def test_without_transaction_does_nothing_once_the_session_has_begun(database_url):
    database = Database(database_url, pool_size=1)
    try:
        session = database.sessionmaker()
        fetch_prepared(session, "SELECT 1", {})  # e.g. the token's account was read
        without_transaction(session)
        assert session.connection().connection.dbapi_connection.get_transaction_status() == TRANSACTION_STATUS_INTRANS
        session.close()
    finally:
        database.dispose()


def _drop_connections_of(database_url, application_name: str) -> int:
    """What a database restart does to a pool: its connections die under it."""
    from sqlalchemy import create_engine, text

    killer = create_engine(database_url)
    try:
        with killer.connect() as conn:
            return len(conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = :name AND pid <> pg_backend_pid()"), {"name": application_name}).all())
    finally:
        killer.dispose()


def test_a_connection_lost_under_a_prepared_statement_fails_one_request_with_503_then_recovers(database_url):
    """fetch_prepared and single_statement run on the DBAPI connection,
    below SQLAlchemy's own error handling: a connection that died (a
    database restart) must still be answered as the database being away,
    and be dropped from the pool rather than handed to the next request."""
    from sqlalchemy.exc import OperationalError

    from gridsvc.db import single_statement

    database = Database(database_url, pool_size=1, application_name="gridsvc-test-lost")
    try:
        for attempt in range(2):
            session = database.sessionmaker()
            assert fetch_prepared(session, "SELECT %(n)s::int", {"n": 1}) == (1,)
            session.close()
            with single_statement(database.sessionmaker()) as connection:  # the autocommit pool's
                assert execute_prepared(connection, "SELECT %(n)s::int", {"n": 2}) == (2,)
            assert _drop_connections_of(database_url, "gridsvc-test-lost") == 2
            session = database.sessionmaker()
            with pytest.raises(OperationalError):  # the API answers 503 for it
                fetch_prepared(session, "SELECT %(n)s::int", {"n": 3})
            session.close()
            with pytest.raises(OperationalError):
                with single_statement(database.sessionmaker()) as connection:
                    execute_prepared(connection, "SELECT %(n)s::int", {"n": 4})
        session = database.sessionmaker()  # fresh connections again
        assert fetch_prepared(session, "SELECT %(n)s::int", {"n": 5}) == (5,)
        session.close()
        with single_statement(database.sessionmaker()) as connection:
            assert execute_prepared(connection, "SELECT %(n)s::int", {"n": 6}) == (6,)
    finally:
        database.dispose()


def test_each_thread_keeps_its_autocommit_connection_and_a_lost_one_is_replaced(database_url):
    """Database.autocommit_connection (check-in's fast path) keeps one
    connection per thread checked out between calls, with its prepared
    statements; one that died under it (a database restart) fails that one
    statement, is dropped, and the thread's next call connects again."""
    import queue
    import threading

    from sqlalchemy.exc import OperationalError

    database = Database(database_url, pool_size=2, application_name="gridsvc-test-kept")

    def run(n: int) -> tuple[Any, Any]:
        """One statement on the thread's connection: (its DBAPI connection, the row or the error)."""
        try:
            with database.autocommit_connection() as connection:
                return connection.dbapi_connection, execute_prepared(connection, "SELECT %(n)s::int", {"n": n})
        except OperationalError as exc:
            return None, exc

    asks: queue.Queue = queue.Queue()
    answers: queue.Queue = queue.Queue()

    def worker() -> None:  # a second gthread thread, alive throughout
        for n in iter(asks.get, None):
            answers.put(run(n))

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        first, row = run(1)
        assert row == (1,) and first.autocommit
        again, row = run(2)  # the same connection, not back through the pool, its statement still prepared
        assert again is first and row == (2,)
        asks.put(3)
        theirs, row = answers.get(timeout=10)
        assert theirs is not first and row == (3,)

        assert _drop_connections_of(database_url, "gridsvc-test-kept") == 2  # a database restart
        lost, error = run(4)
        assert lost is None and isinstance(error, OperationalError)  # the fast path leaves it to the view
        fresh, row = run(5)
        assert row == (5,) and fresh is not first and first.closed  # the lost one was closed, not pooled
        asks.put(6)
        assert isinstance(answers.get(timeout=10)[1], OperationalError)  # the other thread's, once
        asks.put(7)
        replaced, row = answers.get(timeout=10)
        assert row == (7,) and replaced not in (theirs, fresh)
    finally:
        asks.put(None)
        thread.join()
        database.dispose()


def test_the_apps_connections_are_on_utc_and_keep_the_urls_own_options(database_url):
    """A server set to Asia/Shanghai (common in China) wrote the times the API reads back as +08:00, and an
    `options` given in DATABASE_URL (say a statement_timeout) was silently replaced by the app's own. The app's
    connections are on UTC, with the URL's options kept beside jit=off."""
    separator = "&" if "?" in database_url else "?"
    database = Database(database_url + separator + "options=-c%20statement_timeout%3D4567%20-c%20timezone%3DAsia/Shanghai")
    try:
        for engine in (database.engine, database.autocommit_engine):
            with engine.connect() as conn:
                settings = [conn.exec_driver_sql(f"SHOW {name}").scalar() for name in ("timezone", "jit", "statement_timeout")]
                assert settings == ["UTC", "off", "4567ms"]
                assert conn.exec_driver_sql("SELECT '2026-03-01 08:00:00+08'::timestamptz::text").scalar() \
                    == "2026-03-01 00:00:00+00"
    finally:
        database.dispose()
