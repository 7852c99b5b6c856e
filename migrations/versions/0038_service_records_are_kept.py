"""Service records are kept: the database refuses to delete them with a zone, a community, a volunteer or an account.

A volunteer's sign-ups, check-ins and service hours (approved, pending or
declined: "declined entries stay, marked, never deleted") are their national
volunteer service record. The services refuse (409) to delete a zone or a
community that has shifts, and nothing in the API or the ``gridsvc`` command
deletes a volunteer, an account or a shift; but the schema still took the
records by ON DELETE CASCADE with whichever row they hung from, so one
``DELETE FROM zone`` (or ``app_user``) typed in psql, or a future code path
that forgot the check, emptied people's records without a word. Now the
database is the backstop:

- ``signup``, ``check_event`` and ``service_hours`` refer to their volunteer
  ON DELETE RESTRICT: a volunteer with any of them cannot be deleted, nor
  (by its cascade to the profile) their account; disable the account
  instead (``gridsvc user disable``, ``PATCH /users/{id}``).
- ``service_hours`` refers to its check-in and check-out ON DELETE RESTRICT:
  a check event under an hours entry cannot be deleted on its own (a
  check-out went with SET NULL, leaving the entry without its end).
- A shift deleted by a cascade, its zone's or its community's, is refused
  while it has check events or hours, or sign-ups once it has started: the
  trigger ``shift_records_kept`` (SQLSTATE 23503, a foreign key violation, as
  the constraints above: the API answers 409). A shift deleted on purpose
  (``DELETE FROM shift``, an operator's deliberate act; the API cancels
  instead) still takes its own rows, and a zone's or community's shifts
  that recorded nothing still go with it.

Revision ID: 0038
Revises: 0037
Create Date: 2026-12-01
"""
from alembic import op

revision = "0038"
down_revision = "0037"
branch_labels = None
depends_on = None

# (table, column, referred table, ON DELETE before, ON DELETE now)
FOREIGN_KEYS = [
    ("signup", "volunteer_id", "volunteer", "CASCADE", "RESTRICT"),
    ("check_event", "volunteer_id", "volunteer", "CASCADE", "RESTRICT"),
    ("service_hours", "volunteer_id", "volunteer", "CASCADE", "RESTRICT"),
    ("service_hours", "check_in_id", "check_event", "CASCADE", "RESTRICT"),
    ("service_hours", "check_out_id", "check_event", "SET NULL", "RESTRICT"),
]

SHIFT_RECORDS_KEPT = """
CREATE FUNCTION gridsvc_shift_records_kept() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    events bigint;
    entries bigint;
    signups bigint;
BEGIN
    SELECT count(*) INTO events FROM check_event WHERE shift_id = OLD.id;
    SELECT count(*) INTO entries FROM service_hours WHERE shift_id = OLD.id;
    SELECT count(*) INTO signups FROM signup WHERE shift_id = OLD.id AND OLD.starts_at <= clock_timestamp();
    IF events + entries + signups > 0 THEN
        RAISE EXCEPTION USING
            ERRCODE = 'foreign_key_violation',
            MESSAGE = format('shift %s (zone %s) has service records: %s check event(s), %s hours entr(ies), '
                             '%s sign-up(s); they are not deleted with its zone or community',
                             OLD.id, OLD.zone_id, events, entries, signups),
            HINT = 'Keep the zone (redraw it instead) or the community; disable accounts rather than delete them.';
    END IF;
    RETURN OLD;
END
$$;
CREATE TRIGGER shift_records_kept BEFORE DELETE ON shift FOR EACH ROW
    -- only a delete made by another trigger: the ON DELETE CASCADE of the shift's zone or community
    WHEN (pg_trigger_depth() > 0) EXECUTE FUNCTION gridsvc_shift_records_kept();
"""


def _set_on_delete(table: str, column: str, referred: str, action: str) -> None:
    name = f"fk_{table}_{column}_{referred}"
    op.drop_constraint(name, table, type_="foreignkey")
    op.create_foreign_key(name, table, referred, [column], ["id"], ondelete=action)


def upgrade() -> None:
    for table, column, referred, _, now in FOREIGN_KEYS:
        _set_on_delete(table, column, referred, now)
    op.execute(SHIFT_RECORDS_KEPT)


def downgrade() -> None:
    op.execute("DROP TRIGGER shift_records_kept ON shift")
    op.execute("DROP FUNCTION gridsvc_shift_records_kept()")
    for table, column, referred, before, _ in reversed(FOREIGN_KEYS):
        _set_on_delete(table, column, referred, before)
