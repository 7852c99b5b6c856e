"""Where a stint closed by the next check-in really ended, and what the answers say of duty.

- **A stint closed at the next check-in, before the shift's start.** Queued
  in 25 minutes early, checked in online 20 minutes early (the queue went
  up after it), out by mistake, in again offline 17 minutes early: the
  queued stint was closed at the online check-in, but its hours end at the
  shift's start (hours never count before it), and the window of a new
  offline check-in opened there. The check-in again before the start was
  refused, its check-out too, and the shift's hours were lost. Such a
  stint now ends, for the window, at the next check-in at its shift.
- **A late check-out from before any stint on record** took the first
  stint after it and was refused as outside its window (422, recorded and
  flagged). It ends no stint: 409 not_checked_in, as online, nothing
  recorded.
- **`on_duty` in the answers** says whether the volunteer is checked in to
  the event's shift afterwards (the schema's promise). An earlier stint's
  check-in or check-out at the shift the volunteer is on duty at said
  false.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-01
"""

from alembic import op

from gridsvc.migrate import migration_beside, replaced_once as _replaced

revision = "0032"
down_revision = "0031"
branch_labels = None
depends_on = None


def _revision_0031():
    return migration_beside(__file__, "0031_offline_stint_before_any_later_check_in.py")


def check_function() -> str:
    check = _revision_0031().check_function()
    check = _replaced(check, """            opens := greatest(opens, (SELECT max(coalesce(co.effective_at, sh.ended_at)) FROM service_hours sh""",
                      """            -- (one closed without its check-out ended at the next check-in here, if that came first: its
            -- hours end no earlier than the shift's start)
            opens := greatest(opens, (SELECT max(coalesce(co.effective_at, least(sh.ended_at, (
                                          SELECT min(n.effective_at) FROM check_event n
                                          WHERE n.volunteer_id = me.id AND n.shift_id = shift_row.id
                                            AND n.kind = 'check_in' AND n.accepted
                                            AND n.effective_at > ci.effective_at))))
                                      FROM service_hours sh""")
    check = _replaced(check, """            ORDER BY ci.effective_at <= p_at DESC, ci.effective_at DESC LIMIT 1""",
                      """              AND ci.effective_at <= p_at
            ORDER BY ci.effective_at DESC LIMIT 1""")
    check = _replaced(check, """'on_duty', p_kind = 'check_in' AND NOT earlier_stint);""",
                      """'on_duty',
            -- checked in to this shift afterwards: an earlier stint's events leave the duty as it was
            CASE WHEN p_kind = 'check_in' AND NOT earlier_stint THEN true
                 WHEN p_kind = 'check_out' AND closed_entry IS NULL THEN false
                 ELSE coalesce(on_duty = shift_row.id, false) END);""")
    return check


def upgrade() -> None:
    op.execute(check_function())


def downgrade() -> None:
    op.execute(_revision_0031().check_function())
