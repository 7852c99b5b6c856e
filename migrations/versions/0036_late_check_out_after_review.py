"""A late check-out of a stint the liaison has already decided.

A volunteer forgot to check out; after the grace period the stint was closed
as a missing check-out, and the liaison approved or declined it. The
check-out pressed afterwards was a 409 "no open check-in to check out from"
(they had one) and was not recorded, where before the review the same press
was the documented late check-out: 422 ``outside_window``, recorded and
flagged for the liaison. The check-out looked for pending entries only.

It now finds the stint it ends (the last closed so, begun before it) whatever
its status. Pending, it completes it as before. Decided, the decision stands:
a check-out in its window (an offline one uploaded after the review) is a 409
``hours_reviewed``, nothing recorded; one after it is the late check-out it
is, refused and recorded, the entry as decided. And a check-out after a
decided stint no longer completes an older pending one.

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-01
"""

from alembic import op

from gridsvc.migrate import migration_beside, replaced_once as _replaced

revision = "0036"
down_revision = "0035"
branch_labels = None
depends_on = None


def _revision_0035():
    return migration_beside(__file__, "0035_account_read_under_the_lock.py")


def check_function() -> str:
    check = _revision_0035().check_function()
    check = _replaced(check, """    closed_entry integer;  -- hours closed as a missing check-out, which this late check-out completes
""", """    closed_entry integer;  -- hours closed as a missing check-out, which this late check-out completes
    closed_status text;  -- pending, or the liaison's decision on them
""")
    check = _replaced(check, """            -- hours wait for review, this check-out completes them.
            -- Locked, as a review locks it: a decision made meanwhile is
            -- waited for, and then the entry is no longer pending.
            -- The stint it ends: the last begun before it (a shift may hold two closed so).
            SELECT sh.id INTO closed_entry FROM service_hours sh JOIN check_event ci ON ci.id = sh.check_in_id
            WHERE sh.volunteer_id = me.id AND sh.shift_id = shift_row.id AND sh.check_out_id IS NULL
              AND sh.flag_reason = 'missing_check_out' AND sh.status = 'pending'
              AND ci.effective_at <= p_at""", """            -- hours wait for review, this check-out completes them; once
            -- decided, the decision stands (below).
            -- Locked, as a review locks it: a decision made meanwhile is
            -- waited for, and then read.
            -- The stint it ends: the last begun before it (a shift may hold two closed so).
            SELECT sh.id, sh.status INTO closed_entry, closed_status
            FROM service_hours sh JOIN check_event ci ON ci.id = sh.check_in_id
            WHERE sh.volunteer_id = me.id AND sh.shift_id = shift_row.id AND sh.check_out_id IS NULL
              AND sh.flag_reason = 'missing_check_out'
              AND ci.effective_at <= p_at""")
    check = _replaced(check, """            closes := least(closes, (SELECT min(e.effective_at) FROM check_event e
                                     WHERE e.volunteer_id = me.id AND e.kind = 'check_in' AND e.accepted
                                       AND e.effective_at > open_check_in.effective_at));
        END IF;""", """            closes := least(closes, (SELECT min(e.effective_at) FROM check_event e
                                     WHERE e.volunteer_id = me.id AND e.kind = 'check_in' AND e.accepted
                                       AND e.effective_at > open_check_in.effective_at));
            IF closed_status <> 'pending' THEN  -- the liaison has decided: the decision stands
                IF p_at BETWEEN opens AND closes THEN
                    out_outcome := 'hours_reviewed'; out_body := closed_status; RETURN;
                END IF;
                closed_entry := NULL;  -- late: refused and recorded below, the entry as decided
            END IF;
        END IF;""")
    return check


def upgrade() -> None:
    op.execute(check_function())


def downgrade() -> None:
    op.execute(_revision_0035().check_function())
