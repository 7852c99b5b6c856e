"""One real PostGIS database per run, built by the migrations, with Lingfeng loaded.

Every test runs inside a transaction that is rolled back at its end: the app's
sessions join it through savepoints (SQLAlchemy's
``join_transaction_mode="create_savepoint"``), so a view's commit is real to
the view but invisible to the next test. Tests that need real commits (races
between two connections) use ``committed_client`` and clean up after
themselves.
"""
from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker

from gridsvc import localdb
from gridsvc.app import create_app
from gridsvc.config import test_database_url
from gridsvc.db import single_statement
from gridsvc.migrate import upgrade
from gridsvc.models import Community
from gridsvc.seed import load_lingfeng
from tests.helpers import client_as


@pytest.fixture(scope="session")
def database_url() -> str:
    url = test_database_url()
    if not url:
        pytest.exit("no test database: run `make test` (or `gridsvc db start`) or set DATABASE_URL", returncode=2)
    localdb.ensure_database(url, recreate=True)
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def engine(database_url):
    engine = create_engine(database_url)
    with Session(engine) as session:
        load_lingfeng(session)
        session.commit()
    yield engine
    engine.dispose()


@pytest.fixture()
def connection(engine):
    with engine.connect() as conn:
        outer = conn.begin()
        yield conn
        outer.rollback()


@pytest.fixture()
def session(connection) -> Session:
    """A session inside the test's transaction, for arranging and checking data."""
    with Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False) as s:
        yield s


# The tile cache is off in-process: each test's data lives in its own rolled-back
# transaction, so a tile kept from another test would be another test's truth.
TEST_CONFIG = {"TESTING": True, "GRIDSVC_SECRET_KEY": "test-secret-not-for-production-0123456789",
               "GRIDSVC_TILE_CACHE_SECONDS": 0}


@pytest.fixture()
def app(database_url, connection):
    app = create_app({"DATABASE_URL": database_url, **TEST_CONFIG})
    database = app.extensions["gridsvc.db"]
    database.sessionmaker = sessionmaker(bind=connection, join_transaction_mode="create_savepoint",
                                         expire_on_commit=False)
    database.autocommit_connection = lambda: _statement_in_test_transaction(database)
    yield app
    database.dispose()


@contextmanager
def _statement_in_test_transaction(database):
    """Database.autocommit_connection inside the test's transaction: a
    session's savepoint, committed after the statement, as single_statement
    does for the tests' sessions."""
    session = database.sessionmaker()
    try:
        with single_statement(session) as connection:
            yield connection
    finally:
        session.close()


@pytest.fixture()
def client(app):
    """An anonymous caller."""
    return app.test_client()


@pytest.fixture()
def login(app):
    """``login("liaison-g01")`` -> a test client that sends that account's token."""

    return lambda username: client_as(app, username)


@pytest.fixture()
def admin_client(login):
    return login("admin")


@pytest.fixture()
def committed_app(database_url, engine):
    """An app whose commits are real (for races between connections)."""
    app = create_app({"DATABASE_URL": database_url, **TEST_CONFIG})
    yield app
    app.extensions["gridsvc.db"].dispose()


@pytest.fixture()
def lingfeng(session) -> Community:
    return session.scalar(select(Community).where(Community.name.like("%Lingfeng%")))



@pytest.fixture()
def clock(monkeypatch):
    """The service's clock, frozen at the real now; ``clock.advance(minutes=30)`` moves it."""
    from datetime import datetime, timezone

    from tests.helpers import FrozenClock

    frozen = FrozenClock(datetime.now(timezone.utc).replace(microsecond=0))
    monkeypatch.setattr("gridsvc.clock.now", frozen)
    return frozen
