"""Per-lot tallies of spaces on record and spaces occupied, kept by triggers on parking_space.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-21
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

OCCUPYING = "('occupied', 'reserved')"

# Each statement's changes are folded into one signed delta per lot and
# applied in lot order (one statement locks its tallies in the same order as
# any other; a transaction of several statements must lock them first itself,
# as gridsvc.services.parking.set_statuses does).
APPLY = """
    INSERT INTO lot_space_tally AS t (lot_id, spaces, occupied)
    SELECT lot_id, sum(spaces), sum(occupied) FROM ({changes}) c
    GROUP BY lot_id HAVING sum(spaces) <> 0 OR sum(occupied) <> 0 ORDER BY lot_id
    ON CONFLICT (lot_id) DO UPDATE SET spaces = t.spaces + EXCLUDED.spaces, occupied = t.occupied + EXCLUDED.occupied
"""
# A tally whose lot is being deleted in the same statement is gone already;
# the insert would then find no lot: lots that no longer exist are skipped.
IN_A_LOT = "lot_id IS NOT NULL AND lot_id IN (SELECT id FROM parking_lot)"
ADDED = f"SELECT lot_id, 1 AS spaces, (status IN {OCCUPYING})::int AS occupied FROM {{rows}} WHERE {IN_A_LOT}"
REMOVED = f"SELECT lot_id, -1 AS spaces, -(status IN {OCCUPYING})::int AS occupied FROM {{rows}} WHERE {IN_A_LOT}"


def upgrade() -> None:
    op.create_table(
        "lot_space_tally",
        sa.Column("lot_id", sa.Integer(), nullable=False),
        sa.Column("spaces", sa.Integer(), server_default="0", nullable=False),
        sa.Column("occupied", sa.Integer(), server_default="0", nullable=False),
        sa.ForeignKeyConstraint(["lot_id"], ["parking_lot.id"], name="fk_lot_space_tally_lot_id_parking_lot",
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("lot_id", name="pk_lot_space_tally"),
    )
    inserted = APPLY.format(changes=ADDED.format(rows="inserted"))
    deleted = APPLY.format(changes=REMOVED.format(rows="deleted"))
    updated = APPLY.format(changes=REMOVED.format(rows="old_rows") + " UNION ALL " + ADDED.format(rows="new_rows"))
    op.execute(f"""
        CREATE FUNCTION lot_space_tally_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {inserted}; RETURN NULL; END $$;
        CREATE FUNCTION lot_space_tally_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {deleted}; RETURN NULL; END $$;
        CREATE FUNCTION lot_space_tally_updated() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {updated}; RETURN NULL; END $$;
        CREATE FUNCTION lot_space_tally_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN DELETE FROM lot_space_tally; RETURN NULL; END $$;
    """)
    op.execute(f"""
        INSERT INTO lot_space_tally (lot_id, spaces, occupied)
        SELECT lot_id, count(*), count(*) FILTER (WHERE status IN {OCCUPYING}) FROM parking_space
        WHERE lot_id IS NOT NULL GROUP BY lot_id
    """)
    op.execute("CREATE TRIGGER parking_space_tally_insert AFTER INSERT ON parking_space REFERENCING NEW TABLE AS inserted "
               "FOR EACH STATEMENT EXECUTE FUNCTION lot_space_tally_inserted()")
    op.execute("CREATE TRIGGER parking_space_tally_delete AFTER DELETE ON parking_space REFERENCING OLD TABLE AS deleted "
               "FOR EACH STATEMENT EXECUTE FUNCTION lot_space_tally_deleted()")
    op.execute("CREATE TRIGGER parking_space_tally_update AFTER UPDATE ON parking_space "
               "REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
               "FOR EACH STATEMENT EXECUTE FUNCTION lot_space_tally_updated()")
    op.execute("CREATE TRIGGER parking_space_tally_truncate AFTER TRUNCATE ON parking_space "
               "FOR EACH STATEMENT EXECUTE FUNCTION lot_space_tally_truncated()")


def downgrade() -> None:
    for event in ("insert", "delete", "update", "truncate"):
        op.execute(f"DROP TRIGGER parking_space_tally_{event} ON parking_space")
    for name in ("inserted", "deleted", "updated", "truncated"):
        op.execute(f"DROP FUNCTION lot_space_tally_{name}()")
    op.drop_table("lot_space_tally")
