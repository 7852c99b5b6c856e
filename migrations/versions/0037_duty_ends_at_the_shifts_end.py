"""The duty ends at the shift's end in check-in's own answers too.

Every surface (the profile, the search, "my shifts", the zone map, the
tiles, dispatch) counts a volunteer on duty while their shift has not ended;
a check-out that never comes closes the stint at the end. The check
function disagreed at three places:

- A volunteer who forgot to check out of shift A and checked in to shift B,
  which starts as A ends, was refused 409 "already checked in to A" during
  A's check-out grace, while everything else said they were off duty. An
  online check-in to another shift now closes A's stint at A's end (flagged
  ``missing_check_out``, pending; a late check-out of A still completes
  it), as the grace's end would. An offline one keeps the grace: its client
  time may lie inside A's stint.
- A check-in at the shift's last instant was accepted, on duty, at a moment
  everything else counts as after the shift. The check-in window is now
  half-open: until the end, not at it.
- An offline check-in uploaded after the shift's end (inside the grace)
  answered ``on_duty: true``. It answers whether the volunteer is on duty
  now; the stint stays open for a late check-out, as before.

Revision ID: 0037
Revises: 0036
Create Date: 2026-12-01
"""

from alembic import op

from gridsvc.migrate import migration_beside, replaced_once as _replaced

revision = "0037"
down_revision = "0036"
branch_labels = None
depends_on = None


def _revision_0036():
    return migration_beside(__file__, "0036_late_check_out_after_review.py")


def check_function() -> str:
    check = _revision_0036().check_function()
    check = _replaced(check, """    IF on_duty IS NOT NULL AND gridsvc_close_overdue(me.id, p_now, p_grace, p_actor_id) THEN
        on_duty := NULL;
    END IF;""", """    -- A stint left open is closed after the grace for its check-out; at once, from its shift's end, by an online
    -- check-in to another shift (the duty ended there; an offline one may have been recorded inside the stint).
    IF on_duty IS NOT NULL AND gridsvc_close_overdue(
            me.id, p_now, CASE WHEN p_kind = 'check_in' AND NOT p_offline AND on_duty <> p_shift_id
                               THEN interval '0' ELSE p_grace END, p_actor_id) THEN
        on_duty := NULL;
    END IF;""")
    check = _replaced(check, """    refusal := CASE WHEN NOT p_at BETWEEN opens AND closes THEN 'outside_window'""",
                      """    -- a check-in until the shift's end, not at it (on duty while the shift has not ended)
    refusal := CASE WHEN NOT p_at BETWEEN opens AND closes OR (p_kind = 'check_in' AND p_at = closes)
                    THEN 'outside_window'""")
    check = _replaced(check, """            CASE WHEN p_kind = 'check_in' AND closed_on_arrival IS NULL THEN true""",
                      """            -- on duty now: a check-in uploaded after its shift's end is not (its stint waits for a check-out)
            CASE WHEN p_kind = 'check_in' AND closed_on_arrival IS NULL THEN shift_row.ends_at > p_now""")
    return check


def upgrade() -> None:
    op.execute(check_function())


def downgrade() -> None:
    op.execute(_revision_0036().check_function())
