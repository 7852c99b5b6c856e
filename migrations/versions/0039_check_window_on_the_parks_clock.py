"""A check event refused for its time says the window on the park's clock, and gives it as fields.

The detail of an ``outside_window`` refusal wrote the window in UTC ("A
check-in is accepted from 2026-12-07T22:30:00+00:00 to ..."): a volunteer in
Ningbo read 22:30 for 06:30. It is now written on the clock of the shift's
community, naming it ("from 2026-12-08 06:30 to 09:00, Asia/Shanghai time;
it was 06:25"), and the window travels as ``opens_at`` and ``closes_at``
(UTC, as every time in an answer) for the app to show in its own words. The
schema's docstring promised the app could say when the window opens; no
field said it. Only refusals pay for the community's clock (an accepted
check-in reads nothing more).

Revision ID: 0039
Revises: 0038
Create Date: 2026-12-01
"""

from alembic import op

from gridsvc.migrate import migration_beside, replaced_once as _replaced

revision = "0039"
down_revision = "0038"
branch_labels = None
depends_on = None


def _revision_0037():
    return migration_beside(__file__, "0037_duty_ends_at_the_shifts_end.py")


def check_function() -> str:
    check = _revision_0037().check_function()
    check = _replaced(check, """            ELSE
                format('A %s is accepted from %s to %s; it was %s.', replace(p_kind, '_', '-'),
                       gridsvc_isoformat(opens), gridsvc_isoformat(closes), p_facts ->> 'at')
            END);""", """            ELSE  -- on the park's clock, as its people read one (the fields below give the instants)
                (SELECT format('A %s is accepted from %s to %s, %s time; it was %s.', replace(p_kind, '_', '-'),
                               to_char(opens AT TIME ZONE c.timezone, 'YYYY-MM-DD HH24:MI'),
                               to_char(closes AT TIME ZONE c.timezone,
                                       CASE WHEN (opens AT TIME ZONE c.timezone)::date
                                                 = (closes AT TIME ZONE c.timezone)::date
                                            THEN 'HH24:MI' ELSE 'YYYY-MM-DD HH24:MI' END),
                               c.timezone,
                               to_char(p_at AT TIME ZONE c.timezone,
                                       CASE WHEN (p_at AT TIME ZONE c.timezone)::date
                                                 = (opens AT TIME ZONE c.timezone)::date
                                            THEN 'HH24:MI:SS' ELSE 'YYYY-MM-DD HH24:MI:SS' END))
                 FROM shift s JOIN community c ON c.id = s.community_id WHERE s.id = shift_row.id)
            END);
        IF refusal = 'outside_window' THEN
            answer := answer || jsonb_build_object('opens_at', gridsvc_isoformat(opens),
                                                   'closes_at', gridsvc_isoformat(closes));
        END IF;""")
    return check


def upgrade() -> None:
    op.execute(check_function())


def downgrade() -> None:
    op.execute(_revision_0037().check_function())
