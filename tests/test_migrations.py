"""The migrations build exactly the schema the models describe, and run both ways."""
from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from geoalchemy2 import alembic_helpers
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from gridsvc import localdb
from gridsvc.db import Base
from gridsvc.migrate import downgrade, upgrade


@pytest.fixture()
def scratch_url(database_url):
    url = make_url(database_url).set(database=make_url(database_url).database + "_migrations")
    rendered = url.render_as_string(hide_password=False)
    localdb.ensure_database(rendered, recreate=True)
    yield rendered


def test_models_and_migrations_agree(scratch_url):
    upgrade(scratch_url)
    engine = create_engine(scratch_url)
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"include_object": alembic_helpers.include_object,
                                                         "compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == []


def test_first_revision_creates_postgis_and_downgrade_round_trips(scratch_url):
    upgrade(scratch_url, "0001")
    engine = create_engine(scratch_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT extname FROM pg_extension WHERE extname = 'postgis'")).scalar() == "postgis"
    upgrade(scratch_url)
    downgrade(scratch_url, "0001")
    upgrade(scratch_url)
    assert {"community", "zone", "enterprise"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_0043_bounds_the_demo_household_as_seeded_and_leaves_an_operators_own(scratch_url):
    """A database seeded before 0043 took a household of -5 people: its definition gains integer 1..100; one an
    operator changed is left as it is; and the downgrade gives back the definition as seeded."""
    import json

    upgrade(scratch_url, "0042")
    engine = create_engine(scratch_url)
    seeded = [{"code": "household", "datatype": "number", "required": False, "description": "people in the household"}]
    own = [{**seeded[0], "description": "家庭人数"}]
    with engine.begin() as conn:
        for code, attributes in (("housing", seeded), ("housing_own", own)):
            conn.execute(text("INSERT INTO service_type (code, name_zh, name_en, \"group\", sla_minutes, attributes) "
                              "VALUES (:code, '住房', 'Housing', 'daily life', 240, CAST(:a AS jsonb))"),
                         {"code": code, "a": json.dumps(attributes)})
    upgrade(scratch_url, "0043")

    def attributes(code):
        with engine.connect() as conn:
            return conn.execute(text("SELECT attributes FROM service_type WHERE code = :c"), {"c": code}).scalar()

    assert attributes("housing") == [{**seeded[0], "integer": True, "minimum": 1, "maximum": 100}]
    assert attributes("housing_own") == own
    downgrade(scratch_url, "0042")
    assert attributes("housing") == seeded
    engine.dispose()
