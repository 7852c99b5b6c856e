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
import importlib.util
from pathlib import Path

from alembic import op

revision = "0041"
down_revision = "0040"
branch_labels = None
depends_on = None

# Travel is not service time: the entry runs from the later of the check-in and the shift's start to the earlier
# of the end given and the shift's end; a stint that ended before the start (no overlap) is the instant it ended.
RECORD_HOURS = """
CREATE OR REPLACE FUNCTION gridsvc_record_hours(p_check_in_id integer, p_check_out_id integer,
                                                p_ended_at timestamptz, p_check_out_inside boolean,
                                                p_flag_reason text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    entry service_hours;
BEGIN
    INSERT INTO service_hours (volunteer_id, shift_id, check_in_id, check_out_id, started_at, ended_at, hours,
                               status, auto_approved, flagged, flag_reason)
    SELECT e.volunteer_id, e.shift_id, e.id, p_check_out_id, span.started, span.ended,
           round(extract(epoch FROM span.ended - span.started) / 3600, 2),
           CASE WHEN span.auto THEN 'approved' ELSE 'pending' END, span.auto,
           p_flag_reason IS NOT NULL, p_flag_reason
    FROM check_event e
    JOIN shift s ON s.id = e.shift_id
    CROSS JOIN LATERAL (SELECT least(greatest(e.effective_at, s.starts_at), p_ended_at) AS started) starts
    CROSS JOIN LATERAL (
        SELECT starts.started,
               greatest(starts.started, least(p_ended_at, s.ends_at)) AS ended,
               coalesce(p_check_out_inside, false) AND e.inside AND p_flag_reason IS NULL AS auto) span
    WHERE e.id = p_check_in_id
    RETURNING * INTO entry;
    RETURN jsonb_build_object('id', entry.id, 'hours', entry.hours, 'status', entry.status,
                              'started_at', gridsvc_isoformat(entry.started_at),
                              'ended_at', gridsvc_isoformat(entry.ended_at));
END $$"""

# As gridsvc_record_hours above would have written the entry with this check-out.
COMPLETE_HOURS = """
CREATE OR REPLACE FUNCTION gridsvc_complete_hours(p_entry_id integer, p_check_out_id integer,
                                                  p_ended_at timestamptz, p_check_out_inside boolean) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    entry service_hours;
    new_start timestamptz;
    new_end timestamptz;
    approve boolean;
BEGIN
    SELECT least(sh.started_at, p_ended_at), least(p_ended_at, s.ends_at),
           coalesce(p_check_out_inside, false) AND e.inside
    INTO new_start, new_end, approve
    FROM service_hours sh JOIN check_event e ON e.id = sh.check_in_id JOIN shift s ON s.id = sh.shift_id
    WHERE sh.id = p_entry_id;
    new_end := greatest(new_start, new_end);
    UPDATE service_hours SET check_out_id = p_check_out_id, started_at = new_start, ended_at = new_end,
                             hours = round(extract(epoch FROM new_end - new_start) / 3600, 2),
                             status = CASE WHEN approve THEN 'approved' ELSE 'pending' END, auto_approved = approve,
                             flagged = false, flag_reason = NULL
    WHERE id = p_entry_id
    RETURNING * INTO entry;
    RETURN jsonb_build_object('id', entry.id, 'hours', entry.hours, 'status', entry.status,
                              'started_at', gridsvc_isoformat(entry.started_at),
                              'ended_at', gridsvc_isoformat(entry.ended_at));
END $$"""


def _revision(filename: str):
    spec = importlib.util.spec_from_file_location(filename[:-3], Path(__file__).with_name(filename))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def upgrade() -> None:
    op.execute(RECORD_HOURS)
    op.execute(COMPLETE_HOURS)


def downgrade() -> None:
    op.execute(_revision("0014_check_event_function.py").RECORD_HOURS.replace(
        "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
    op.execute(_revision("0018_late_offline_check_out.py").COMPLETE_HOURS.replace(
        "CREATE FUNCTION", "CREATE OR REPLACE FUNCTION"))
