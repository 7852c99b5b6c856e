"""The demo's "people in the household" is a whole number from 1 to 100.

A number attribute of a service took any finite number: the demo's
``housing`` service stored a household of -5, of 1.5 or of 1e308 (which came
back as an integer of 309 digits). A number attribute's definition may now say
``integer``, ``minimum`` and ``maximum`` (``services.requests._out_of_range``;
without them a value is within ±1e15), and the demo's household says them. A
database seeded before this gets them here, if its definition is still the
demo's as seeded; one an operator changed is left as it is.

Revision ID: 0043
Revises: 0042
Create Date: 2026-12-02
"""
import json

from alembic import op
from sqlalchemy import text

revision = "0043"
down_revision = "0042"
branch_labels = None
depends_on = None

_AS_SEEDED = [{"code": "household", "datatype": "number", "required": False, "description": "people in the household"}]
_BOUNDED = [{**_AS_SEEDED[0], "integer": True, "minimum": 1, "maximum": 100}]


def _replace(before: list, after: list) -> None:
    op.get_bind().execute(text("UPDATE service_type SET attributes = CAST(:after AS jsonb) "
                               "WHERE code = 'housing' AND attributes = CAST(:before AS jsonb)"),
                          {"before": json.dumps(before), "after": json.dumps(after)})


def upgrade() -> None:
    _replace(_AS_SEEDED, _BOUNDED)


def downgrade() -> None:
    _replace(_BOUNDED, _AS_SEEDED)
