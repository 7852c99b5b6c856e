"""The account is read once the volunteer's lock is held; a check-in inside a stint on record is a 409.

- **An account disabled while its volunteer checks in.** The check event
  locked the volunteer's row and read the account in the same statement.
  Waiting for the lock (an admin disabling the account holds it while the
  volunteer's places are released and their duty ended), PostgreSQL
  re-reads the locked row only: the account was judged as it was before
  the wait, enabled, and the disabled account went on duty. The lock is
  now a statement of its own, and the account (disabled, token version,
  roles) and the volunteer are read after it, with a fresh snapshot.
- **A double-tapped offline check-in, uploaded again.** Judged in order,
  the second tap fell inside the stint the first had opened: 409
  ``already_checked_in``, nothing recorded. A retry of the same upload (the
  answer lost) judged it again once that stint had closed: a recorded,
  flagged 422 ``outside_window`` in the liaison's list. An offline check-in
  inside a stint on record at its shift, open or closed, is now that same
  409, recorded nowhere, whenever it arrives.

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-01
"""

from alembic import op

from gridsvc.migrate import migration_beside, replaced_once as _replaced

revision = "0035"
down_revision = "0034"
branch_labels = None
depends_on = None


def _revision_0034():
    return migration_beside(__file__, "0034_check_answers_judged_as_shown.py")


def check_function() -> str:
    check = _revision_0034().check_function()
    check = _replaced(check, """    closed_on_arrival timestamptz;  -- where this check-in's stint ends, when it is over before it arrives
""", """    closed_on_arrival timestamptz;  -- where this check-in's stint ends, when it is over before it arrives
    stint_end timestamptz;  -- where the last stint at the shift begun before an offline check-in really ended
""")
    check = _replaced(check, """    SELECT v.id, v.on_duty_shift_id, u.disabled, u.token_version,
           ARRAY(SELECT ur.role::text FROM user_role ur WHERE ur.user_id = u.id ORDER BY ur.role) AS roles
    INTO me FROM volunteer v JOIN app_user u ON u.id = v.user_id WHERE v.user_id = p_user_id
    FOR NO KEY UPDATE OF v;
    IF NOT FOUND THEN  -- no volunteer profile; the account's own refusal comes first
        SELECT NULL::integer AS id, NULL::integer AS on_duty_shift_id, u.disabled, u.token_version,
               ARRAY(SELECT ur.role::text FROM user_role ur WHERE ur.user_id = u.id ORDER BY ur.role) AS roles
        INTO me FROM app_user u WHERE u.id = p_user_id;
        IF NOT FOUND THEN
            out_outcome := CASE WHEN p_role IS NULL THEN 'no_profile' ELSE 'no_account' END; RETURN;
        END IF;
    END IF;""", """    PERFORM FROM volunteer v WHERE v.user_id = p_user_id FOR NO KEY UPDATE;
    -- Read once the lock is held, in a statement of its own (a fresh snapshot): a change to the account that
    -- held it meanwhile (disabled, a role taken away, and the duty ended with them) is seen, not only the
    -- volunteer's row. Without a volunteer profile, the account's own refusal comes first.
    SELECT v.id, v.on_duty_shift_id, u.disabled, u.token_version,
           ARRAY(SELECT ur.role::text FROM user_role ur WHERE ur.user_id = u.id ORDER BY ur.role) AS roles
    INTO me FROM app_user u LEFT JOIN volunteer v ON v.user_id = u.id WHERE u.id = p_user_id;
    IF NOT FOUND THEN
        out_outcome := CASE WHEN p_role IS NULL THEN 'no_profile' ELSE 'no_account' END; RETURN;
    END IF;""")
    check = _replaced(check, """            opens := greatest(opens, (SELECT max(coalesce(co.effective_at, least(sh.ended_at, (""",
                      """            stint_end := (SELECT max(coalesce(co.effective_at, least(sh.ended_at, (""")
    check = _replaced(check, """                                        AND ci.effective_at <= p_at));
        END IF;""", """                                        AND ci.effective_at <= p_at);
            IF stint_end > p_at THEN  -- inside it: a second tap, as online (a retried upload answers it alike)
                out_outcome := 'already_checked_in'; out_body := shift_row.id::text; RETURN;
            END IF;
            opens := greatest(opens, stint_end);
        END IF;""")
    return check


def upgrade() -> None:
    op.execute(check_function())


def downgrade() -> None:
    op.execute(_revision_0034().check_function())
