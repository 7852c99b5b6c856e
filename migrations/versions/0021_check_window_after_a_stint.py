"""Two check-event rules found in review (``gridsvc_check`` of migration 0018, with them).

- A check-in queued offline and uploaded after the volunteer had checked in
  and out online was accepted as a new stint from its earlier time: the
  volunteer was on duty again, and the overlap was counted twice (2.39
  approved hours for 1.47 hours present). An offline check-in now opens no
  earlier than the end of the volunteer's last recorded stint of the shift:
  earlier, it is recorded, flagged and refused (422 outside_window). Online
  check-ins happen now, after every recorded stint, so they skip the lookup.
- A check-out pressed after the grace period, once the check-in had been
  closed as a missing check-out, was answered 409 "no open check-in" and not
  recorded. Online as offline, it now finds those closed hours: it is
  recorded, flagged and refused as late (422 outside_window), and the hours
  stay as closed, waiting for review.

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-30
"""

from alembic import op

from gridsvc.migrate import migration_beside, replaced_once as _replaced

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def _revision_0018():
    return migration_beside(__file__, "0018_late_offline_check_out.py")


def check_function() -> str:
    check = _revision_0018().CHECK
    check = _replaced(check, """        opens := shift_row.starts_at - p_opens_before;""", """        opens := shift_row.starts_at - p_opens_before;
        IF p_offline THEN  -- not inside a stint already recorded (an online check-in is later than all of them)
            opens := greatest(opens, (SELECT max(sh.ended_at) FROM service_hours sh
                                      WHERE sh.volunteer_id = me.id AND sh.shift_id = shift_row.id));
        END IF;""")
    check = _replaced(check, """        ELSIF p_offline THEN
            -- Recorded on the phone in time, uploaded after the grace period:""", """        ELSE
            -- Recorded on the phone in time, uploaded after the grace period (or
            -- pressed online too late, to be recorded as refused):""")
    return check


def upgrade() -> None:
    op.execute(check_function())


def downgrade() -> None:
    op.execute(_revision_0018().CHECK)
