"""An offline check-in after a shift's end closes its forgotten stint, as online; a second check-out is no refusal.

1. A volunteer checked in to shift X and forgot to check out. After X had
   ended (within its grace for a check-out), the phone recorded a check-in
   to shift Y offline. Uploaded, it was refused 409 ``already_checked_in``
   and recorded nowhere, so the stint at Y was lost, where the same check-in
   sent online is accepted and closes X at its end (flagged
   ``missing_check_out``). The duty at X ended at X's end: an offline
   check-in timed at or after it closes X there too. One timed before X's
   end is still inside the stint at X.
2. A check-out sent twice (a double tap, or a queued copy with a new key),
   for a volunteer with an earlier stint at that shift closed as a missing
   check-out, was taken as ending that earlier stint: refused
   ``outside_window`` with a window "from 16:30 to 16:30", recorded and
   flagged for the liaison. The stint a check-out ends is the last one begun
   before it at the shift: when that one was checked out, a second
   check-out is ``not_checked_in`` (409, recorded nowhere), as without the
   earlier stint.

Revision ID: 0044
Revises: 0043
Create Date: 2026-12-02
"""

from alembic import op

from gridsvc.migrate import migration_beside, replaced_once as _replaced

revision = "0044"
down_revision = "0043"
branch_labels = None
depends_on = None


def _revision_0042():
    return migration_beside(__file__, "0042_check_in_inside_a_recorded_stint.py")


def check_function() -> str:
    text = _replaced(_revision_0042().check_function(), """\
            me.id, p_now, CASE WHEN p_kind = 'check_in' AND NOT p_offline AND on_duty <> p_shift_id
                               THEN interval '0' ELSE p_grace END, p_actor_id""", """\
            me.id, p_now, CASE WHEN p_kind = 'check_in' AND on_duty <> p_shift_id
                                    -- (offline: timed after that shift's end, when the duty there had ended)
                                    AND (NOT p_offline OR p_at >= (SELECT s.ends_at FROM shift s WHERE s.id = on_duty))
                               THEN interval '0' ELSE p_grace END, p_actor_id""")
    return _replaced(text, """\
              AND sh.flag_reason = 'missing_check_out'
              AND ci.effective_at <= p_at
            ORDER BY ci.effective_at DESC LIMIT 1""", """\
              AND sh.flag_reason = 'missing_check_out'
              -- the last stint begun before it here: one checked out since leaves nothing for it to end
              AND ci.id = (SELECT e.id FROM check_event e
                           WHERE e.volunteer_id = me.id AND e.shift_id = shift_row.id AND e.kind = 'check_in'
                             AND e.accepted AND e.effective_at <= p_at
                           ORDER BY e.effective_at DESC, e.id DESC LIMIT 1)""")


def upgrade() -> None:
    op.execute(check_function())


def downgrade() -> None:
    op.execute(_revision_0042().check_function())
