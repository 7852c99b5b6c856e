"""A lot's tally of spaces lives on the lot's own row (was the table lot_space_tally).

Maps and tiles read a lot together with how full it is: a tile of a dense
area holds ~800 lots, and an index probe into a separate tally for each was
a quarter of the tile's time. The same statement-level triggers on
parking_space keep the two counts, now as columns of parking_lot; the
updates touch no indexed column, so they stay heap-only (HOT).

Locking: each statement locks the lots it changes in lot order (FOR NO KEY
UPDATE, which does not conflict with the key-share locks that inserting
spaces takes on their lot); a transaction of several statements must lock
them first itself, as gridsvc.services.parking.set_statuses does.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-21
"""
import sqlalchemy as sa
from alembic import op

from gridsvc.migrate import migration_beside

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

OCCUPYING = "('occupied', 'reserved')"

DELTAS = """
    SELECT lot_id, sum(spaces) AS spaces, sum(occupied) AS occupied FROM ({changes}) c
    WHERE lot_id IS NOT NULL GROUP BY lot_id HAVING sum(spaces) <> 0 OR sum(occupied) <> 0"""
# Lock first, in lot order, then apply: an UPDATE ... FROM locks in whatever
# order its join runs. A lot deleted by this statement is simply not found.
APPLY = """
    PERFORM FROM parking_lot WHERE id IN (SELECT lot_id FROM ({deltas}) d) ORDER BY id FOR NO KEY UPDATE;
    UPDATE parking_lot AS l SET spaces_on_record = l.spaces_on_record + d.spaces,
                                spaces_occupied = l.spaces_occupied + d.occupied
    FROM ({deltas}) d WHERE l.id = d.lot_id"""
ADDED = f"SELECT lot_id, 1 AS spaces, (status IN {OCCUPYING})::int AS occupied FROM {{rows}}"
REMOVED = f"SELECT lot_id, -1 AS spaces, -(status IN {OCCUPYING})::int AS occupied FROM {{rows}}"


def _apply(changes: str) -> str:
    return APPLY.format(deltas=DELTAS.format(changes=changes))


def upgrade() -> None:
    op.add_column("parking_lot", sa.Column("spaces_on_record", sa.Integer(), server_default="0", nullable=False))
    op.add_column("parking_lot", sa.Column("spaces_occupied", sa.Integer(), server_default="0", nullable=False))
    op.execute("UPDATE parking_lot l SET spaces_on_record = t.spaces, spaces_occupied = t.occupied "
               "FROM lot_space_tally t WHERE t.lot_id = l.id")
    inserted = _apply(ADDED.format(rows="inserted"))
    deleted = _apply(REMOVED.format(rows="deleted"))
    updated = _apply(REMOVED.format(rows="old_rows") + " UNION ALL " + ADDED.format(rows="new_rows"))
    # Same function names: the triggers of 0010 call them and stay as they are.
    op.execute(f"""
        CREATE OR REPLACE FUNCTION lot_space_tally_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {inserted}; RETURN NULL; END $$;
        CREATE OR REPLACE FUNCTION lot_space_tally_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {deleted}; RETURN NULL; END $$;
        CREATE OR REPLACE FUNCTION lot_space_tally_updated() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {updated}; RETURN NULL; END $$;
        CREATE OR REPLACE FUNCTION lot_space_tally_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN UPDATE parking_lot SET spaces_on_record = 0, spaces_occupied = 0
              WHERE spaces_on_record <> 0 OR spaces_occupied <> 0; RETURN NULL; END $$;
    """)
    op.drop_table("lot_space_tally")


def downgrade() -> None:
    # Back to 0010: its own upgrade makes the table, the functions and the triggers again.
    for event in ("insert", "delete", "update", "truncate"):
        op.execute(f"DROP TRIGGER parking_space_tally_{event} ON parking_space")
    for name in ("inserted", "deleted", "updated", "truncated"):
        op.execute(f"DROP FUNCTION lot_space_tally_{name}()")
    op.drop_column("parking_lot", "spaces_occupied")
    op.drop_column("parking_lot", "spaces_on_record")
    revision_0010 = migration_beside(__file__, "0010_lot_space_tally.py")
    revision_0010.upgrade()
