"""Check-in and check-out judged and recorded by one function in the database.

A check-in is the mobile app's hottest write. Judged in Python it took five
round trips (BEGIN, the account, lock and judge, record, COMMIT) and most of
a request's CPU went on them. ``gridsvc_check`` does the whole event in one
statement, so the app sends it as a single round trip in autocommit: the
statement is its own transaction.

The rules are the ones ``gridsvc/services/checks.py`` documents; the caller
formats what the answer says about the request itself (the time, the point,
the slack for the accuracy) and maps the outcome codes to problems.

- ``gridsvc_isoformat``: a time as Python's ``isoformat()`` writes it in UTC.
- ``gridsvc_open_check_in``: a volunteer's open check-in to a shift.
- ``gridsvc_record_hours``: the hours of a closed check-in (its overlap with
  the shift), approved at once only when both ends were inside.
- ``gridsvc_close_overdue``: closes a check-in left open past the shift's
  end plus the grace period, hours to the shift's end, flagged for review.
- ``gridsvc_check``: one check event, from the account check to the answer.

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-21
"""
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

ISOFORMAT = """
CREATE FUNCTION gridsvc_isoformat(t timestamptz) RETURNS text LANGUAGE sql STABLE PARALLEL SAFE AS $$
    SELECT to_char(t AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
           || CASE WHEN extract(microseconds FROM t)::bigint % 1000000 = 0 THEN ''
                   ELSE to_char(t AT TIME ZONE 'UTC', '.US') END
           || '+00:00'
$$"""

# The latest accepted check-in with no hours yet: the one a check-out closes.
OPEN_CHECK_IN = """
CREATE FUNCTION gridsvc_open_check_in(p_volunteer_id integer, p_shift_id integer) RETURNS check_event
LANGUAGE sql STABLE AS $$
    SELECT e.* FROM check_event e
    WHERE e.volunteer_id = p_volunteer_id AND e.shift_id = p_shift_id AND e.kind = 'check_in' AND e.accepted
      AND NOT EXISTS (SELECT FROM service_hours sh WHERE sh.check_in_id = e.id)
    ORDER BY e.effective_at DESC LIMIT 1
$$"""

# Travel is not service time: the entry runs from the later of the check-in
# and the shift's start to the earlier of the end given and the shift's end.
RECORD_HOURS = """
CREATE FUNCTION gridsvc_record_hours(p_check_in_id integer, p_check_out_id integer, p_ended_at timestamptz,
                                     p_check_out_inside boolean, p_flag_reason text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    entry service_hours;
BEGIN
    INSERT INTO service_hours (volunteer_id, shift_id, check_in_id, check_out_id, started_at, ended_at, hours,
                               status, auto_approved, flagged, flag_reason)
    SELECT e.volunteer_id, e.shift_id, e.id, p_check_out_id, span.started, span.ended,
           round(extract(epoch FROM span.ended - span.started) / 3600, 2),
           CASE WHEN span.auto THEN 'approved' ELSE 'pending' END, span.auto,
           p_flag_reason IS NOT NULL, p_flag_reason
    FROM check_event e
    JOIN shift s ON s.id = e.shift_id
    CROSS JOIN LATERAL (SELECT greatest(e.effective_at, s.starts_at) AS started) starts
    CROSS JOIN LATERAL (
        SELECT starts.started,
               greatest(starts.started, least(p_ended_at, s.ends_at)) AS ended,
               coalesce(p_check_out_inside, false) AND e.inside AND p_flag_reason IS NULL AS auto) span
    WHERE e.id = p_check_in_id
    RETURNING * INTO entry;
    RETURN jsonb_build_object('id', entry.id, 'hours', entry.hours, 'status', entry.status,
                              'started_at', gridsvc_isoformat(entry.started_at),
                              'ended_at', gridsvc_isoformat(entry.ended_at));
END $$"""

# The caller holds the volunteer's row lock. True when a check-in was closed.
CLOSE_OVERDUE = """
CREATE FUNCTION gridsvc_close_overdue(p_volunteer_id integer, p_now timestamptz, p_grace interval,
                                      p_actor_id integer) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    duty record;
    open_id integer;
BEGIN
    SELECT s.id, s.ends_at INTO duty
    FROM volunteer v JOIN shift s ON s.id = v.on_duty_shift_id
    WHERE v.id = p_volunteer_id AND s.ends_at + p_grace < p_now;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    open_id := (gridsvc_open_check_in(p_volunteer_id, duty.id)).id;
    IF open_id IS NOT NULL THEN
        PERFORM gridsvc_record_hours(open_id, NULL, duty.ends_at, NULL, 'missing_check_out');
    END IF;
    UPDATE volunteer SET on_duty_shift_id = NULL, updated_at = now(),
                         updated_by_id = coalesce(p_actor_id, updated_by_id)
    WHERE id = p_volunteer_id;
    RETURN true;
END $$"""

# Outcomes: 'recorded' and 'replayed' come with the status and the answer
# (JSON text, with the event's id); the others are refusals that record
# nothing, for the caller to answer with a problem:
#   the account (only when p_role is given, as auth.authenticate checks it):
#     no_account, account_disabled, token_revoked, forbidden (body: the roles);
#   no_profile, key_reused, no_shift, shift_cancelled, not_signed_up,
#   already_checked_in (body: the shift on duty), not_checked_in.
# An overdue check-in of the volunteer is closed on the way, and stays closed
# even if the event is then refused: the next read of hours would close it.
CHECK = """
CREATE FUNCTION gridsvc_check(
    p_user_id integer, p_role text, p_token_version integer,
    p_shift_id integer, p_kind text, p_lon double precision, p_lat double precision,
    p_input_lon double precision, p_input_lat double precision, p_input_crs text,
    p_accuracy_m double precision, p_allowed_m double precision, p_key text, p_client_time timestamptz,
    p_at timestamptz, p_offline boolean, p_now timestamptz, p_opens_before interval, p_grace interval,
    p_facts jsonb, p_refused jsonb, p_actor_id integer,
    OUT out_outcome text, OUT out_status integer, OUT out_body text)
LANGUAGE plpgsql AS $$
DECLARE
    here geometry := ST_SetSRID(ST_MakePoint(p_lon, p_lat), 4326);
    account record;
    previous record;
    shift_row record;
    vol_id integer;  -- the volunteer's id (a column name would be ambiguous)
    on_duty integer;
    open_check_in check_event;
    opens timestamptz;
    closes timestamptz;
    distance double precision;
    is_inside boolean;
    refusal text;
    answer jsonb;
    event_id integer;
BEGIN
    IF p_role IS NOT NULL THEN
        SELECT u.disabled, u.token_version,
               ARRAY(SELECT ur.role::text FROM user_role ur WHERE ur.user_id = u.id ORDER BY ur.role) AS roles
        INTO account FROM app_user u WHERE u.id = p_user_id;
        IF NOT FOUND THEN
            out_outcome := 'no_account'; RETURN;
        ELSIF account.disabled THEN
            out_outcome := 'account_disabled'; RETURN;
        ELSIF account.token_version IS DISTINCT FROM p_token_version THEN
            out_outcome := 'token_revoked'; RETURN;
        ELSIF NOT p_role = ANY (account.roles) THEN
            out_outcome := 'forbidden'; out_body := to_jsonb(account.roles)::text; RETURN;
        END IF;
    END IF;

    -- All of a volunteer's check events are serialised by this lock, so
    -- five copies of one check-in sent at once record one.
    SELECT v.id, v.on_duty_shift_id INTO vol_id, on_duty FROM volunteer v WHERE v.user_id = p_user_id FOR UPDATE;
    IF NOT FOUND THEN
        out_outcome := 'no_profile'; RETURN;
    END IF;

    SELECT e.id, e.shift_id, e.kind, e.status_code, e.response INTO previous
    FROM check_event e WHERE e.volunteer_id = vol_id AND e.idempotency_key = p_key;
    IF FOUND THEN
        IF previous.shift_id <> p_shift_id OR previous.kind <> p_kind THEN
            out_outcome := 'key_reused'; RETURN;
        END IF;
        out_outcome := 'replayed'; out_status := previous.status_code;
        out_body := (jsonb_build_object('event_id', previous.id) || previous.response)::text;
        RETURN;
    END IF;

    SELECT s.id, s.status, s.starts_at, s.ends_at, s.location, s.radius_m, s.zone_id INTO shift_row
    FROM shift s WHERE s.id = p_shift_id;
    IF NOT FOUND THEN
        out_outcome := 'no_shift'; RETURN;
    ELSIF shift_row.status = 'cancelled' THEN
        out_outcome := 'shift_cancelled'; RETURN;
    ELSIF NOT EXISTS (SELECT FROM signup sg WHERE sg.shift_id = shift_row.id
                                              AND sg.volunteer_id = vol_id
                                              AND sg.status = 'confirmed') THEN
        out_outcome := 'not_signed_up'; RETURN;
    END IF;

    IF on_duty IS NOT NULL AND gridsvc_close_overdue(vol_id, p_now, p_grace, p_actor_id) THEN
        on_duty := NULL;
    END IF;
    IF p_kind = 'check_in' THEN
        IF on_duty IS NOT NULL THEN
            out_outcome := 'already_checked_in'; out_body := on_duty::text; RETURN;
        END IF;
        opens := shift_row.starts_at - p_opens_before;
        closes := shift_row.ends_at;
    ELSE
        IF on_duty = shift_row.id THEN
            open_check_in := gridsvc_open_check_in(vol_id, shift_row.id);
        END IF;
        IF open_check_in.id IS NULL THEN
            out_outcome := 'not_checked_in'; RETURN;
        END IF;
        opens := open_check_in.effective_at;
        closes := shift_row.ends_at + p_grace;
    END IF;

    -- The distance to the geofence: the point's radius, else the zone. A
    -- phone inside its zone (the usual case) is settled by a planar
    -- ST_Covers; the costlier distance on the spheroid only outside.
    IF shift_row.location IS NOT NULL THEN
        distance := greatest(0.0, ST_Distance(shift_row.location::geography, here::geography) - shift_row.radius_m);
    ELSE
        SELECT CASE WHEN ST_Covers(z.geom, here) THEN 0.0 ELSE ST_Distance(z.geom::geography, here::geography) END
        INTO distance FROM zone z WHERE z.id = shift_row.zone_id;
    END IF;
    is_inside := distance <= p_allowed_m;
    refusal := CASE WHEN NOT p_at BETWEEN opens AND closes THEN 'outside_window'
                    WHEN p_kind = 'check_in' AND NOT is_inside THEN 'outside_geofence' END;

    answer := p_facts || jsonb_build_object('shift_id', shift_row.id, 'inside', is_inside,
                                            'distance_m', round(distance::numeric, 1));
    IF refusal IS NULL THEN
        out_status := 201;
        answer := answer || jsonb_build_object('accepted', true, 'on_duty', p_kind = 'check_in');
    ELSE
        out_status := 422;
        answer := p_refused || answer || jsonb_build_object('accepted', false, 'reason', refusal, 'detail',
            CASE refusal
            WHEN 'outside_geofence' THEN
                format('You are %s m outside the shift''s area (allowed %s m with your reported accuracy); '
                       'move closer and check in again.', round(distance), round(p_allowed_m))
            ELSE
                format('A %s is accepted from %s to %s; it was %s.', replace(p_kind, '_', '-'),
                       gridsvc_isoformat(opens), gridsvc_isoformat(closes), p_facts ->> 'at')
            END);
    END IF;

    INSERT INTO check_event (shift_id, volunteer_id, kind, idempotency_key, client_time, effective_at, position,
                             input_lon, input_lat, input_crs, accuracy_m, inside, distance_m, accepted, flagged,
                             reason, offline, status_code, response)
    VALUES (shift_row.id, vol_id, p_kind, p_key, p_client_time, p_at, here,
            p_input_lon, p_input_lat, p_input_crs, p_accuracy_m, is_inside, round(distance::numeric, 1),
            refusal IS NULL, refusal IS NOT NULL, refusal, p_offline, out_status, answer)
    RETURNING id INTO event_id;

    IF refusal IS NULL THEN
        -- on duty or off, and the last known position (a check event is a
        -- position fix; its own row is the history)
        UPDATE volunteer v SET
            on_duty_shift_id = CASE WHEN p_kind = 'check_in' THEN shift_row.id END,
            last_position = CASE WHEN v.last_position_at IS NULL OR v.last_position_at <= p_at
                                 THEN here ELSE v.last_position END,
            last_accuracy_m = CASE WHEN v.last_position_at IS NULL OR v.last_position_at <= p_at
                                   THEN p_accuracy_m ELSE v.last_accuracy_m END,
            last_position_at = greatest(v.last_position_at, p_at),
            updated_at = now(), updated_by_id = coalesce(p_actor_id, v.updated_by_id)
        WHERE v.id = vol_id;
        IF p_kind = 'check_out' THEN
            answer := answer || jsonb_build_object(
                'hours', gridsvc_record_hours(open_check_in.id, event_id, p_at, is_inside, NULL));
            UPDATE check_event e SET response = answer WHERE e.id = event_id;
        END IF;
    END IF;
    out_outcome := 'recorded';
    out_body := (jsonb_build_object('event_id', event_id) || answer)::text;
END $$"""


def upgrade() -> None:
    for statement in (ISOFORMAT, OPEN_CHECK_IN, RECORD_HOURS, CLOSE_OVERDUE, CHECK):
        op.execute(statement)


def downgrade() -> None:
    op.execute("""
        DROP FUNCTION gridsvc_check; DROP FUNCTION gridsvc_close_overdue; DROP FUNCTION gridsvc_record_hours;
        DROP FUNCTION gridsvc_open_check_in; DROP FUNCTION gridsvc_isoformat""")
