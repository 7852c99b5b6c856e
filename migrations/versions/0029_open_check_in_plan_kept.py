"""A check-out no longer plans its lookup of the open check-in every time.

``gridsvc_open_check_in`` (migration 0014) was a SQL-language function. Not
being a single expression, PostgreSQL (before 18) cannot inline it, and runs
it through its SQL-function executor, which parses and plans the query again
at every call made from PL/pgSQL (the plan lives in the calling expression's
state, which lasts one transaction). Each check-out paid that planning:
about 1.25 ms of database CPU per online check-out against 0.95 ms with the
same query in PL/pgSQL, whose plans a connection keeps (8 interleaved runs of
140 check-outs, median; in ``bench checkin``, 738 -> 891 check-outs/s). Same
query, same result. A kept plan is made from the statistics of its time, and
made again when autovacuum analyses the tables, as for every other kept plan.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-01
"""

from alembic import op

from gridsvc.migrate import migration_beside, replaced_once as _replaced

revision = "0029"
down_revision = "0028"
branch_labels = None
depends_on = None


def _revision_0014():
    return migration_beside(__file__, "0014_check_event_function.py")


def _as_it_was() -> str:
    """Migration 0014's SQL function."""
    return _replaced(_revision_0014().OPEN_CHECK_IN, "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION")


def _in_plpgsql() -> str:
    """The same query, in PL/pgSQL."""
    function = _replaced(_as_it_was(), "LANGUAGE sql STABLE AS $$", """LANGUAGE plpgsql STABLE AS $$
DECLARE
    open_event check_event;
BEGIN""")
    function = _replaced(function, "SELECT e.* FROM check_event e", "SELECT e.* INTO open_event FROM check_event e")
    return _replaced(function, "LIMIT 1\n$$", """LIMIT 1;
    RETURN open_event;  -- all NULL when there is none, as the SQL function answered
END $$""")


def upgrade() -> None:
    op.execute(_in_plpgsql())


def downgrade() -> None:
    op.execute(_as_it_was())
