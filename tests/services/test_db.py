"""The session helpers against a real pooled engine (not the tests' shared connection)."""
from __future__ import annotations

from psycopg2.extensions import TRANSACTION_STATUS_IDLE, TRANSACTION_STATUS_INTRANS

from gridsvc.db import Database, fetch_prepared, without_transaction


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
