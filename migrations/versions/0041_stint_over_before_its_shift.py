"""A stint over before its shift began is dated when it ended, not at the start.

A volunteer may check in up to 30 minutes before a shift's start. One who
checked in then and out again before the start (they left, or tapped the
wrong shift) served none of it, and their entry counts 0.00 h, as it should.
But it was dated from the start to the start, a time still to come when it
was written: a tap out at 10:47 read 10:52-10:52 in their hours. The same
held for a stint ended before the start by the service (an account disabled,
an earlier offline stint ended by a later check-in) and for a late check-out
before the start completing an entry closed at the shift's end.

An entry's span is still the overlap of the stint with the shift. When there
is none, it is now the instant the stint ended (which is never before its
check-in), so the entry is dated when it happened.

Revision ID: 0041
Revises: 0040
Create Date: 2026-12-02
"""

from alembic import op

from gridsvc.migrate import migration_beside, replaced_once as _replaced

revision = "0041"
down_revision = "0040"
branch_labels = None
depends_on = None


def _record_hours_0014() -> str:
    return _replaced(migration_beside(__file__, "0014_check_event_function.py").RECORD_HOURS, "CREATE FUNCTION",
                     "CREATE OR REPLACE FUNCTION")


def _complete_hours_0018() -> str:
    return _replaced(migration_beside(__file__, "0018_late_offline_check_out.py").COMPLETE_HOURS, "CREATE FUNCTION",
                     "CREATE OR REPLACE FUNCTION")


def record_hours() -> str:
    """The entry runs from the later of the check-in and the shift's start to the earlier of the end given and the
    shift's end; a stint that ended before the start (no overlap) is the instant it ended."""
    return _replaced(_record_hours_0014(), "SELECT greatest(e.effective_at, s.starts_at) AS started",
                     "SELECT least(greatest(e.effective_at, s.starts_at), p_ended_at) AS started")


def complete_hours() -> str:
    """As ``record_hours`` would have written the entry with this check-out (its start moves to the check-out
    when that came before the shift's start)."""
    text = _replaced(_complete_hours_0018(), """    new_end timestamptz;
""", """    new_start timestamptz;
    new_end timestamptz;
""")
    text = _replaced(text, """    SELECT greatest(sh.started_at, least(p_ended_at, s.ends_at)), coalesce(p_check_out_inside, false) AND e.inside
    INTO new_end, approve
    FROM service_hours sh JOIN check_event e ON e.id = sh.check_in_id JOIN shift s ON s.id = sh.shift_id
    WHERE sh.id = p_entry_id;
""", """    SELECT least(sh.started_at, p_ended_at), least(p_ended_at, s.ends_at),
           coalesce(p_check_out_inside, false) AND e.inside
    INTO new_start, new_end, approve
    FROM service_hours sh JOIN check_event e ON e.id = sh.check_in_id JOIN shift s ON s.id = sh.shift_id
    WHERE sh.id = p_entry_id;
    new_end := greatest(new_start, new_end);
""")
    return _replaced(text, """    UPDATE service_hours SET check_out_id = p_check_out_id, ended_at = new_end,
                             hours = round(extract(epoch FROM new_end - started_at) / 3600, 2),""",
                     """    UPDATE service_hours SET check_out_id = p_check_out_id, started_at = new_start, ended_at = new_end,
                             hours = round(extract(epoch FROM new_end - new_start) / 3600, 2),""")


def upgrade() -> None:
    op.execute(record_hours())
    op.execute(complete_hours())


def downgrade() -> None:
    op.execute(_record_hours_0014())
    op.execute(_complete_hours_0018())
