"""An offline stint uploaded after the volunteer checked in elsewhere online is kept.

A volunteer works the morning shift A without signal and checks in and out
on the phone; at the next shift B, with signal again, the online check-in
reaches the server before the phone's queue does. The upload then found
them on duty at B: A's check-in was refused (409 already_checked_in), so
its check-out had no check-in (409 not_checked_in), and the morning's
service was lost from their record, though every event was in time and in
place.

An offline check-in recorded before the check-in of the duty in progress
elsewhere is now accepted as a stint of its own: the volunteer stays on
duty where they are, and the stint is closed at once, at the earlier of its
shift's end and the moment that duty began, flagged missing_check_out
(pending) like any check-out never sent. Its check-out, in the same upload
or a later one, completes it as a late offline check-out does (migration
0018), provided it happened before the volunteer next checked in anywhere:
a stint never runs into the next one, so no time is counted twice.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-01
"""

from alembic import op

from gridsvc.migrate import migration_beside, replaced_once as _replaced

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None


def _revision_0023():
    return migration_beside(__file__, "0023_geofence_refusal_wording.py")


def check_function() -> str:
    check = _revision_0023().check_function()
    check = _replaced(check, """    event_id integer;
BEGIN""", """    event_id integer;
    duty_began timestamptz;  -- when the duty in progress elsewhere began (its check-in)
    earlier_stint boolean := false;  -- an offline check-in from before that duty: a stint of its own
BEGIN""")
    check = _replaced(check, """    IF p_kind = 'check_in' THEN
        IF on_duty IS NOT NULL THEN""", """    IF p_kind = 'check_in' THEN
        IF on_duty IS NOT NULL AND on_duty <> shift_row.id AND p_offline THEN
            -- recorded on the phone before the volunteer checked in there online (the upload came later)
            duty_began := (gridsvc_open_check_in(me.id, on_duty)).effective_at;
            earlier_stint := coalesce(p_at < duty_began, false);
        END IF;
        IF on_duty IS NOT NULL AND NOT earlier_stint THEN""")
    check = _replaced(check, """        opens := open_check_in.effective_at;
        closes := shift_row.ends_at + p_grace;
    END IF;""", """        opens := open_check_in.effective_at;
        closes := shift_row.ends_at + p_grace;
        IF closed_entry IS NOT NULL THEN
            -- a stint ends, at the latest, when the volunteer next checked in (anywhere): no time counted twice
            closes := least(closes, (SELECT min(e.effective_at) FROM check_event e
                                     WHERE e.volunteer_id = me.id AND e.kind = 'check_in' AND e.accepted
                                       AND e.effective_at > open_check_in.effective_at));
        END IF;
    END IF;""")
    check = _replaced(check, """'on_duty', p_kind = 'check_in');""",
                      """'on_duty', p_kind = 'check_in' AND NOT earlier_stint);""")
    check = _replaced(check, """            on_duty_shift_id = CASE WHEN p_kind = 'check_in' THEN shift_row.id""",
                      """            on_duty_shift_id = CASE WHEN p_kind = 'check_in' AND NOT earlier_stint THEN shift_row.id""")
    check = _replaced(check, """        WHERE v.id = me.id;
        IF p_kind = 'check_out' THEN""", """        WHERE v.id = me.id;
        IF earlier_stint THEN  -- closed where the duty elsewhere began; its check-out completes it
            PERFORM gridsvc_record_hours(event_id, NULL, duty_began, NULL, 'missing_check_out');
        END IF;
        IF p_kind = 'check_out' THEN""")
    return check


def upgrade() -> None:
    op.execute(check_function())


def downgrade() -> None:
    op.execute(_revision_0023().check_function())
