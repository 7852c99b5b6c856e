"""An offline check-in uploaded after its shift and grace period is closed on arrival.

The phone queued a check-in and nothing more (the check-out was forgotten,
or is still queued), and the upload reached the server after the shift's
end and the check-out grace period. It put the volunteer on duty at a shift
long over (the liaison's map, ``on_duty=true``, dispatch's candidates saw
them) until their next check event or ``gridsvc tick``. Now such a stint is
closed at once at the shift's end, flagged ``missing_check_out`` and pending,
as tick would have closed it, and the volunteer's duty is left as it was. Its
check-out, uploaded later, completes it as any late check-out does.

Revision ID: 0033
Revises: 0032
Create Date: 2026-12-01
"""

from alembic import op

from gridsvc.migrate import migration_beside, replaced_once as _replaced

revision = "0033"
down_revision = "0032"
branch_labels = None
depends_on = None


def _revision_0032():
    return migration_beside(__file__, "0032_stint_ends_and_duty_in_answers.py")


def check_function() -> str:
    check = _revision_0032().check_function()
    check = _replaced(check, """    earlier_stint boolean := false;  -- an offline check-in from before that stint: a stint of its own
""", """    earlier_stint boolean := false;  -- an offline check-in from before that stint: a stint of its own
    closed_on_arrival timestamptz;  -- where this check-in's stint ends, when it is over before it arrives
""")
    check = _replaced(check, """        closes := shift_row.ends_at;
""", """        closes := shift_row.ends_at;
        -- A stint over before it arrived: one before a later check-in ends where that began; one uploaded after
        -- its shift and the grace period ends at the shift's end, as gridsvc tick would have closed it.
        closed_on_arrival := CASE WHEN earlier_stint THEN duty_began
                                  WHEN p_offline AND shift_row.ends_at + p_grace < p_now THEN shift_row.ends_at END;
""")
    check = _replaced(check, """            CASE WHEN p_kind = 'check_in' AND NOT earlier_stint THEN true""",
                      """            CASE WHEN p_kind = 'check_in' AND closed_on_arrival IS NULL THEN true""")
    check = _replaced(check, """            on_duty_shift_id = CASE WHEN p_kind = 'check_in' AND NOT earlier_stint THEN shift_row.id""",
                      """            on_duty_shift_id = CASE WHEN p_kind = 'check_in' AND closed_on_arrival IS NULL THEN shift_row.id""")
    check = _replaced(check, """                                    ELSE v.on_duty_shift_id END,  -- an earlier stint's events leave the duty be""",
                      """                                    ELSE v.on_duty_shift_id END,  -- a stint already over leaves the duty be""")
    check = _replaced(check, """        IF earlier_stint THEN  -- closed where the next stint began; its check-out completes it
            PERFORM gridsvc_record_hours(event_id, NULL, duty_began, NULL, 'missing_check_out');""",
                      """        IF closed_on_arrival IS NOT NULL THEN  -- pending; its check-out completes it
            PERFORM gridsvc_record_hours(event_id, NULL, closed_on_arrival, NULL, 'missing_check_out');""")
    return check


def upgrade() -> None:
    op.execute(check_function())


def downgrade() -> None:
    op.execute(_revision_0032().check_function())
