"""An offline check-in timed inside a stint at another shift on record is refused, as online.

A volunteer checked in to shift X at 08:00:00 and out at 08:00:06; the phone had recorded a check-in to shift
Y at 08:00:03, uploaded later. It was accepted, and the record showed two stints at once: X from 08:00:00 to
08:00:06 and Y from 08:00:03. Online, that check-in to Y would have been refused (409 ``already_checked_in``:
the volunteer was on duty at X then). Only a stint at Y itself was looked for (0042). Now a stint at any other
shift that the check-in falls inside (begun at or before it, ended after it: at its check-out, or where it was
closed, and never after its shift's end, where an online check-in elsewhere closes it) refuses it the same
way, the detail naming that stint. Found by the session's soak (about 30 such pairs; none counted hours
twice, as one of each pair was before its shift's start).

Revision ID: 0045
Revises: 0044
Create Date: 2026-12-02
"""

from alembic import op

from gridsvc.migrate import migration_beside, replaced_once as _replaced

revision = "0045"
down_revision = "0044"
branch_labels = None
depends_on = None


def _revision_0044():
    return migration_beside(__file__, "0044_offline_check_in_after_a_forgotten_check_out.py")


def check_function() -> str:
    text = _replaced(_revision_0044().check_function(), """\
    stint_end timestamptz;  -- where the last stint at the shift begun before an offline check-in really ended
""", """\
    stint_end timestamptz;  -- where the last stint at the shift begun before an offline check-in really ended
    elsewhere record;  -- a stint at another shift that an offline check-in falls inside
""")
    return _replaced(text, """\
        IF on_duty IS NOT NULL AND NOT earlier_stint THEN
            out_outcome := 'already_checked_in'; out_body := on_duty::text; RETURN;
        END IF;
""", """\
        IF on_duty IS NOT NULL AND NOT earlier_stint THEN
            out_outcome := 'already_checked_in'; out_body := on_duty::text; RETURN;
        END IF;
        IF p_offline THEN
            -- inside a stint at another shift on record: on duty there then, as online (where a check-in while on
            -- duty elsewhere is refused); that stint ended at its check-out, or where it was closed, and no later
            -- than its shift's end (an online check-in here after it would have closed it there)
            SELECT s.id, ci.effective_at AS began,
                   least(coalesce(co.effective_at, sh.ended_at), s.ends_at) AS ended, c.timezone
            INTO elsewhere
            FROM service_hours sh
            JOIN check_event ci ON ci.id = sh.check_in_id
            LEFT JOIN check_event co ON co.id = sh.check_out_id
            JOIN shift s ON s.id = sh.shift_id
            JOIN community c ON c.id = s.community_id
            WHERE sh.volunteer_id = me.id AND sh.shift_id <> shift_row.id AND ci.effective_at <= p_at
              AND least(coalesce(co.effective_at, sh.ended_at), s.ends_at) > p_at
            ORDER BY ci.effective_at DESC LIMIT 1;
            IF FOUND THEN
                out_outcome := 'inside_a_stint';
                out_body := format('This check-in, at %s, falls inside a stint of yours at shift %s already on '
                                   'record, from %s to %s, %s time: you were checked in there then. It was not '
                                   'recorded.',
                                   to_char(p_at AT TIME ZONE elsewhere.timezone, 'YYYY-MM-DD HH24:MI:SS'),
                                   elsewhere.id,
                                   to_char(elsewhere.began AT TIME ZONE elsewhere.timezone, 'YYYY-MM-DD HH24:MI:SS'),
                                   to_char(elsewhere.ended AT TIME ZONE elsewhere.timezone, 'YYYY-MM-DD HH24:MI:SS'),
                                   elsewhere.timezone);
                RETURN;
            END IF;
        END IF;
""")


def upgrade() -> None:
    op.execute(check_function())


def downgrade() -> None:
    op.execute(_revision_0044().check_function())
