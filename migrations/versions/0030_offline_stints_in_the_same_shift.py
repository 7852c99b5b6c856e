"""Offline stints within one shift are kept as they happened.

Two ways a volunteer without signal lost hours they had served:

- **Checked out by mistake before the start, and in again.** On the phone:
  in 20 minutes early, out 5 minutes later, in again at once, out at the
  end; all uploaded after the shift. An offline check-in may not fall
  inside a stint already recorded, and the stint's end was read from its
  hours, which stop at the shift's start for a stint before it: the second
  check-in, 14 minutes before the start, was refused (422, "accepted from"
  the start), then its check-out (409 not_checked_in). The window now opens
  where the last stint really ended: its check-out, else where it was
  closed.
- **A queued stint, then an online check-in at the same shift.** The queue
  (in at the start, out 30 minutes later) went up after the volunteer,
  back in signal, checked in online at the same shift. Migration 0024 kept
  such a stint when the online check-in was at another shift; at the same
  shift the check-in was refused (409 already_checked_in) and its check-out
  taken for the end of the online stint (422, too early). The earlier stint
  is now kept as at another shift: closed where the duty in progress began
  (flagged, pending), completed by its check-out if that came before, and
  the volunteer stays on duty.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-01
"""

from alembic import op

from gridsvc.migrate import migration_beside, replaced_once as _replaced

revision = "0030"
down_revision = "0029"
branch_labels = None
depends_on = None


def _revision_0024():
    return migration_beside(__file__, "0024_offline_stint_before_duty_elsewhere.py")


def check_function() -> str:
    check = _revision_0024().check_function()
    # an earlier stint, at another shift or at this one
    check = _replaced(check, """        IF on_duty IS NOT NULL AND on_duty <> shift_row.id AND p_offline THEN
            -- recorded on the phone before the volunteer checked in there online (the upload came later)""",
                      """        IF on_duty IS NOT NULL AND p_offline THEN
            -- recorded on the phone before the volunteer checked in online, here or elsewhere (the upload
            -- came later)""")
    # where the last stint really ended
    check = _replaced(check, """            opens := greatest(opens, (SELECT max(sh.ended_at) FROM service_hours sh
                                      WHERE sh.volunteer_id = me.id AND sh.shift_id = shift_row.id));""",
                      """            -- where each stint really ended (its check-out), not where its hours end: those stop at the
            -- shift's start for a stint before it
            opens := greatest(opens, (SELECT max(coalesce(co.effective_at, sh.ended_at)) FROM service_hours sh
                                      LEFT JOIN check_event co ON co.id = sh.check_out_id
                                      WHERE sh.volunteer_id = me.id AND sh.shift_id = shift_row.id));""")
    # an offline check-out from before the stint in progress here ends the earlier stint
    check = _replaced(check, """        IF on_duty = shift_row.id THEN
            open_check_in := gridsvc_open_check_in(me.id, shift_row.id);
        ELSE""", """        IF on_duty = shift_row.id THEN
            open_check_in := gridsvc_open_check_in(me.id, shift_row.id);
            IF p_offline AND p_at < open_check_in.effective_at THEN
                open_check_in := NULL;  -- recorded before the stint in progress began: it ends an earlier one
            END IF;
        END IF;
        IF open_check_in.id IS NULL THEN""")
    # and neither it nor the earlier stint's check-in changes the duty in progress
    check = _replaced(check, """                                    WHEN v.on_duty_shift_id = shift_row.id THEN NULL
                                    ELSE v.on_duty_shift_id END,  -- a late check-out leaves another duty be""",
                      """                                    WHEN p_kind = 'check_out' AND closed_entry IS NULL
                                         AND v.on_duty_shift_id = shift_row.id THEN NULL
                                    ELSE v.on_duty_shift_id END,  -- an earlier stint's events leave the duty be""")
    return check


def upgrade() -> None:
    op.execute(check_function())


def downgrade() -> None:
    op.execute(_revision_0024().check_function())
