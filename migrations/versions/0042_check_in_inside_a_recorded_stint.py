"""An offline check-in timed inside a stint already recorded says so, not "check out first".

An offline check-in whose time falls inside a stint on record at its shift is
refused as a second tap would be online (409 ``already_checked_in``, nothing
recorded). Its answer said "You are already checked in to shift 220; check
out first." with ``on_duty_shift_id: 220``, though that stint was over (the
volunteer had checked out, or was on duty at another shift by then), so the
app offered a check-out that could only fail. The reason stays; the detail
now names the stint, when it began and ended, on the park's clock, and there
is no ``on_duty_shift_id``.

Revision ID: 0042
Revises: 0041
Create Date: 2026-12-02
"""

from alembic import op

from gridsvc.migrate import migration_beside, replaced_once as _replaced

revision = "0042"
down_revision = "0041"
branch_labels = None
depends_on = None


def _revision_0039():
    return migration_beside(__file__, "0039_check_window_on_the_parks_clock.py")


def check_function() -> str:
    return _replaced(_revision_0039().check_function(), """            IF stint_end > p_at THEN  -- inside it: a second tap, as online (a retried upload answers it alike)
                out_outcome := 'already_checked_in'; out_body := shift_row.id::text; RETURN;
            END IF;""", """            IF stint_end > p_at THEN  -- inside it: a second tap, as online (a retried upload answers it alike)
                -- (the detail, on the park's clock: that stint is over, or elsewhere, so "check out first" is not)
                out_outcome := 'inside_a_stint';
                out_body := (SELECT format('This check-in, at %s, falls inside a stint of yours at shift %s already '
                                           'on record, from %s to %s, %s time: you were checked in then. It was '
                                           'not recorded.',
                                           to_char(p_at AT TIME ZONE c.timezone, 'YYYY-MM-DD HH24:MI:SS'), s.id,
                                           to_char(began.at AT TIME ZONE c.timezone, 'YYYY-MM-DD HH24:MI:SS'),
                                           to_char(stint_end AT TIME ZONE c.timezone, 'YYYY-MM-DD HH24:MI:SS'),
                                           c.timezone)
                             FROM shift s JOIN community c ON c.id = s.community_id,
                                  LATERAL (SELECT max(e.effective_at) AS at FROM check_event e
                                           WHERE e.volunteer_id = me.id AND e.shift_id = s.id
                                             AND e.kind = 'check_in' AND e.accepted AND e.effective_at <= p_at) began
                             WHERE s.id = shift_row.id);
                RETURN;
            END IF;""")


def upgrade() -> None:
    op.execute(check_function())


def downgrade() -> None:
    op.execute(_revision_0039().check_function())
