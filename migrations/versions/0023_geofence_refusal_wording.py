"""A geofence refusal never reads as if the volunteer were within the allowance.

The detail rounded both figures to whole metres: 20.4 m outside with 20 m
allowed read "You are 20 m outside the shift's area (allowed 20 m ...)", a
refusal that looks like an acceptance. Both are now given to a tenth of a
metre, the distance rounded up and the allowance down, so the distance
shown is always the larger, as it is.

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-01
"""

from alembic import op

from gridsvc.migrate import migration_beside

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


def _revision_0021():
    return migration_beside(__file__, "0021_check_window_after_a_stint.py")


OLD = """'move closer and check in again.', round(shift_row.distance), round(p_allowed_m))"""
NEW = """'move closer and check in again.', round(ceil(shift_row.distance::numeric * 10) / 10, 1),
                       round(floor(p_allowed_m::numeric * 10) / 10, 1))"""


def check_function() -> str:
    check = _revision_0021().check_function()
    assert check.count(OLD) == 1, OLD
    return check.replace(OLD, NEW)


def upgrade() -> None:
    op.execute(check_function())


def downgrade() -> None:
    op.execute(_revision_0021().check_function())
