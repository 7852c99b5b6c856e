"""An offline check-in from before any check-in on record is a stint of its own.

Migrations 0024 and 0030 kept an offline stint uploaded late when the
volunteer was on duty, since a later check-in, at another shift or the
same one. Not when that later stint was already over at the upload:

- at the same shift, the queued check-in was refused (422, "accepted from"
  the later stint's check-out, as the window opened after the last stint
  recorded there, whenever it began), its check-out too (409), and the
  hours were lost;
- at another shift, the stale check-in put the volunteer on duty where they
  no longer were, and without its check-out the stint ran to its shift's
  end, through the later stint: minutes counted twice.

Now an offline check-in from before the volunteer's next check-in on
record, anywhere, on duty now or over, is a stint of its own, closed where
that next one began (flagged, pending, completed by its check-out), and
leaves the volunteer's duty as it is. It is refused only inside a stint
recorded at its shift: the window opens where the last stint begun before
it ended.

And a late check-out completes the right stint: one shift may now hold two
closed as missing their check-out, and the last begun before the check-out
is the one it ends (it took the one that started last, whichever the
check-out's time).

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-01
"""

from alembic import op

from gridsvc.migrate import migration_beside, replaced_once as _replaced

revision = "0031"
down_revision = "0030"
branch_labels = None
depends_on = None


def _revision_0030():
    return migration_beside(__file__, "0030_offline_stints_in_the_same_shift.py")


def check_function() -> str:
    check = _revision_0030().check_function()
    check = _replaced(check, """    duty_began timestamptz;  -- when the duty in progress elsewhere began (its check-in)
    earlier_stint boolean := false;  -- an offline check-in from before that duty: a stint of its own""",
                      """    duty_began timestamptz;  -- when the volunteer's next stint on record began (its check-in)
    earlier_stint boolean := false;  -- an offline check-in from before that stint: a stint of its own""")
    check = _replaced(check, """        IF on_duty IS NOT NULL AND p_offline THEN
            -- recorded on the phone before the volunteer checked in online, here or elsewhere (the upload
            -- came later)
            duty_began := (gridsvc_open_check_in(me.id, on_duty)).effective_at;
            earlier_stint := coalesce(p_at < duty_began, false);
        END IF;""", """        IF p_offline THEN
            -- recorded on the phone before a check-in on record, here or elsewhere, on duty now or over
            -- (the upload came later)
            duty_began := (SELECT min(e.effective_at) FROM check_event e
                           WHERE e.volunteer_id = me.id AND e.kind = 'check_in' AND e.accepted
                             AND e.effective_at > p_at);
            earlier_stint := duty_began IS NOT NULL;
        END IF;""")
    check = _replaced(check, """        IF p_offline THEN  -- not inside a stint already recorded (an online check-in is later than all of them)""",
                      """        IF p_offline THEN  -- not inside a stint recorded here: after the last one begun before it""")
    check = _replaced(check, """            opens := greatest(opens, (SELECT max(coalesce(co.effective_at, sh.ended_at)) FROM service_hours sh
                                      LEFT JOIN check_event co ON co.id = sh.check_out_id
                                      WHERE sh.volunteer_id = me.id AND sh.shift_id = shift_row.id));""",
                      """            opens := greatest(opens, (SELECT max(coalesce(co.effective_at, sh.ended_at)) FROM service_hours sh
                                      JOIN check_event ci ON ci.id = sh.check_in_id
                                      LEFT JOIN check_event co ON co.id = sh.check_out_id
                                      WHERE sh.volunteer_id = me.id AND sh.shift_id = shift_row.id
                                        AND ci.effective_at <= p_at));""")
    check = _replaced(check, """            SELECT sh.id INTO closed_entry FROM service_hours sh
            WHERE sh.volunteer_id = me.id AND sh.shift_id = shift_row.id AND sh.check_out_id IS NULL
              AND sh.flag_reason = 'missing_check_out' AND sh.status = 'pending'
            ORDER BY sh.started_at DESC LIMIT 1
            FOR UPDATE;""", """            -- The stint it ends: the last begun before it (a shift may hold two closed so).
            SELECT sh.id INTO closed_entry FROM service_hours sh JOIN check_event ci ON ci.id = sh.check_in_id
            WHERE sh.volunteer_id = me.id AND sh.shift_id = shift_row.id AND sh.check_out_id IS NULL
              AND sh.flag_reason = 'missing_check_out' AND sh.status = 'pending'
            ORDER BY ci.effective_at <= p_at DESC, ci.effective_at DESC LIMIT 1
            FOR UPDATE OF sh;""")
    check = _replaced(check, """        IF earlier_stint THEN  -- closed where the duty elsewhere began; its check-out completes it""",
                      """        IF earlier_stint THEN  -- closed where the next stint began; its check-out completes it""")
    return check


def upgrade() -> None:
    op.execute(check_function())


def downgrade() -> None:
    op.execute(_revision_0030().check_function())
