"""Exact row counts of the OGC collections' tables, kept by statement-level triggers.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-21
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

TABLES = ("community", "zone", "enterprise", "parking_lot", "parking_space")


def upgrade() -> None:
    op.create_table(
        "row_count",
        sa.Column("table_name", sa.String(63), nullable=False),
        sa.Column("n", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("table_name", name="pk_row_count"),
    )
    # One statement adds or removes the statement's rows (transition tables),
    # so a bulk import of 100k spaces is one update, not 100k.
    op.execute("""
        CREATE FUNCTION row_count_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE row_count SET n = n + (SELECT count(*) FROM inserted) WHERE table_name = TG_TABLE_NAME;
            RETURN NULL;
        END $$;
        CREATE FUNCTION row_count_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE row_count SET n = n - (SELECT count(*) FROM deleted) WHERE table_name = TG_TABLE_NAME;
            RETURN NULL;
        END $$;
        CREATE FUNCTION row_count_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE row_count SET n = 0 WHERE table_name = TG_TABLE_NAME;
            RETURN NULL;
        END $$;
    """)
    for table in TABLES:
        op.execute(f"INSERT INTO row_count (table_name, n) SELECT '{table}', count(*) FROM {table}")
        op.execute(f"CREATE TRIGGER {table}_count_insert AFTER INSERT ON {table} REFERENCING NEW TABLE AS inserted "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION row_count_inserted()")
        op.execute(f"CREATE TRIGGER {table}_count_delete AFTER DELETE ON {table} REFERENCING OLD TABLE AS deleted "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION row_count_deleted()")
        op.execute(f"CREATE TRIGGER {table}_count_truncate AFTER TRUNCATE ON {table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION row_count_truncated()")


def downgrade() -> None:
    for table in TABLES:
        for event in ("insert", "delete", "truncate"):
            op.execute(f"DROP TRIGGER {table}_count_{event} ON {table}")
    op.execute("DROP FUNCTION row_count_inserted(); DROP FUNCTION row_count_deleted(); DROP FUNCTION row_count_truncated()")
    op.drop_table("row_count")
