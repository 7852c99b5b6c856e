"""An offline check-out uploaded after the grace period completes the hours closed meanwhile.

A volunteer without signal at the end of a shift checks out on the phone, in
time; the upload comes hours later (offline events are accepted for 24 h).
By then ``gridsvc tick``, a read of hours, or the upload itself has closed
the check-in at the shift's end as a missing check-out, and the check-out
was refused (409 ``not_checked_in``): the hours stayed pending, flagged,
though the volunteer did everything right. Now, while those hours still
wait for review, the late check-out completes them: its time, the flag
cleared, approved at once when both ends were inside the geofence, as an
on-time check-out would have been. Hours a liaison has decided stay as
decided.

Also: the volunteer's row is locked FOR NO KEY UPDATE, as the services now
lock volunteers and shifts. That mode does not block the KEY SHARE locks of
foreign-key checks: a check event written for a shift that is being
cancelled no longer waits for the cancellation while holding the volunteer
the cancellation waits for (a deadlock).

Revision ID: 0018
Revises: 0017
Create Date: 2026-11-30
"""
from alembic import op

from gridsvc.migrate import migration_beside

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None

# As gridsvc_record_hours (migration 0014) would have written the entry with
# this check-out: from the later of the check-in and the start to the
# earlier of the check-out and the end.
COMPLETE_HOURS = """
CREATE FUNCTION gridsvc_complete_hours(p_entry_id integer, p_check_out_id integer, p_ended_at timestamptz,
                                       p_check_out_inside boolean) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    entry service_hours;
    new_end timestamptz;
    approve boolean;
BEGIN
    SELECT greatest(sh.started_at, least(p_ended_at, s.ends_at)), coalesce(p_check_out_inside, false) AND e.inside
    INTO new_end, approve
    FROM service_hours sh JOIN check_event e ON e.id = sh.check_in_id JOIN shift s ON s.id = sh.shift_id
    WHERE sh.id = p_entry_id;
    UPDATE service_hours SET check_out_id = p_check_out_id, ended_at = new_end,
                             hours = round(extract(epoch FROM new_end - started_at) / 3600, 2),
                             status = CASE WHEN approve THEN 'approved' ELSE 'pending' END, auto_approved = approve,
                             flagged = false, flag_reason = NULL
    WHERE id = p_entry_id
    RETURNING * INTO entry;
    RETURN jsonb_build_object('id', entry.id, 'hours', entry.hours, 'status', entry.status,
                              'started_at', gridsvc_isoformat(entry.started_at),
                              'ended_at', gridsvc_isoformat(entry.ended_at));
END $$"""

# gridsvc_check of migration 0015, with the late check-out above.
CHECK = """CREATE OR REPLACE FUNCTION gridsvc_check(
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
    me record;
    previous record;
    shift_row record;
    on_duty integer;
    open_check_in check_event;
    closed_entry integer;  -- hours closed as a missing check-out, which this late check-out completes
    opens timestamptz;
    closes timestamptz;
    is_inside boolean;
    refusal text;
    answer jsonb;
    event_id integer;
BEGIN
    -- All of a volunteer's check events are serialised by this lock, so
    -- five copies of one check-in sent at once record one.
    SELECT v.id, v.on_duty_shift_id, u.disabled, u.token_version,
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
    END IF;
    IF p_role IS NOT NULL THEN  -- as auth.authenticate checks it
        IF me.disabled THEN
            out_outcome := 'account_disabled'; RETURN;
        ELSIF me.token_version IS DISTINCT FROM p_token_version THEN
            out_outcome := 'token_revoked'; RETURN;
        ELSIF NOT p_role = ANY (me.roles) THEN
            out_outcome := 'forbidden'; out_body := to_jsonb(me.roles)::text; RETURN;
        END IF;
    END IF;
    IF me.id IS NULL THEN
        out_outcome := 'no_profile'; RETURN;
    END IF;

    SELECT e.id, e.shift_id, e.kind, e.status_code, e.response INTO previous
    FROM check_event e WHERE e.volunteer_id = me.id AND e.idempotency_key = p_key;
    IF FOUND THEN
        IF previous.shift_id <> p_shift_id OR previous.kind <> p_kind THEN
            out_outcome := 'key_reused'; RETURN;
        END IF;
        out_outcome := 'replayed'; out_status := previous.status_code;
        out_body := (jsonb_build_object('event_id', previous.id) || previous.response)::text;
        RETURN;
    END IF;

    -- The distance to the geofence: the point's radius, else the zone. A
    -- phone inside its zone (the usual case) is settled by a planar
    -- ST_Covers; the costlier distance on the spheroid only outside.
    SELECT s.id, s.status, s.starts_at, s.ends_at,
           EXISTS (SELECT FROM signup sg WHERE sg.shift_id = s.id AND sg.volunteer_id = me.id
                                           AND sg.status = 'confirmed') AS signed_up,
           CASE WHEN s.location IS NOT NULL
                THEN greatest(0.0, ST_Distance(s.location::geography, here::geography) - s.radius_m)
                ELSE (SELECT CASE WHEN ST_Covers(z.geom, here) THEN 0.0
                                  ELSE ST_Distance(z.geom::geography, here::geography) END
                      FROM zone z WHERE z.id = s.zone_id) END AS distance
    INTO shift_row FROM shift s WHERE s.id = p_shift_id;
    IF NOT FOUND THEN
        out_outcome := 'no_shift'; RETURN;
    ELSIF shift_row.status = 'cancelled' THEN
        out_outcome := 'shift_cancelled'; RETURN;
    ELSIF NOT shift_row.signed_up THEN
        out_outcome := 'not_signed_up'; RETURN;
    END IF;

    on_duty := me.on_duty_shift_id;
    IF on_duty IS NOT NULL AND gridsvc_close_overdue(me.id, p_now, p_grace, p_actor_id) THEN
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
            open_check_in := gridsvc_open_check_in(me.id, shift_row.id);
        ELSIF p_offline THEN
            -- Recorded on the phone in time, uploaded after the grace period:
            -- meanwhile the check-in was closed as a missing check-out (by
            -- gridsvc tick, a read of hours, or this upload). While those
            -- hours wait for review, this check-out completes them.
            -- Locked, as a review locks it: a decision made meanwhile is
            -- waited for, and then the entry is no longer pending.
            SELECT sh.id INTO closed_entry FROM service_hours sh
            WHERE sh.volunteer_id = me.id AND sh.shift_id = shift_row.id AND sh.check_out_id IS NULL
              AND sh.flag_reason = 'missing_check_out' AND sh.status = 'pending'
            ORDER BY sh.started_at DESC LIMIT 1
            FOR UPDATE;
            IF closed_entry IS NOT NULL THEN
                SELECT e.* INTO open_check_in FROM check_event e
                WHERE e.id = (SELECT sh.check_in_id FROM service_hours sh WHERE sh.id = closed_entry);
            END IF;
        END IF;
        IF open_check_in.id IS NULL THEN
            out_outcome := 'not_checked_in'; RETURN;
        END IF;
        opens := open_check_in.effective_at;
        closes := shift_row.ends_at + p_grace;
    END IF;

    is_inside := shift_row.distance <= p_allowed_m;
    refusal := CASE WHEN NOT p_at BETWEEN opens AND closes THEN 'outside_window'
                    WHEN p_kind = 'check_in' AND NOT is_inside THEN 'outside_geofence' END;

    answer := p_facts || jsonb_build_object('shift_id', shift_row.id, 'inside', is_inside,
                                            'distance_m', round(shift_row.distance::numeric, 1));
    IF refusal IS NULL THEN
        out_status := 201;
        answer := answer || jsonb_build_object('accepted', true, 'on_duty', p_kind = 'check_in');
    ELSE
        out_status := 422;
        answer := p_refused || answer || jsonb_build_object('accepted', false, 'reason', refusal, 'detail',
            CASE refusal
            WHEN 'outside_geofence' THEN
                format('You are %s m outside the shift''s area (allowed %s m with your reported accuracy); '
                       'move closer and check in again.', round(shift_row.distance), round(p_allowed_m))
            ELSE
                format('A %s is accepted from %s to %s; it was %s.', replace(p_kind, '_', '-'),
                       gridsvc_isoformat(opens), gridsvc_isoformat(closes), p_facts ->> 'at')
            END);
    END IF;

    INSERT INTO check_event (shift_id, volunteer_id, kind, idempotency_key, client_time, effective_at, position,
                             input_lon, input_lat, input_crs, accuracy_m, inside, distance_m, accepted, flagged,
                             reason, offline, status_code, response)
    VALUES (shift_row.id, me.id, p_kind, p_key, p_client_time, p_at, here,
            p_input_lon, p_input_lat, p_input_crs, p_accuracy_m, is_inside, round(shift_row.distance::numeric, 1),
            refusal IS NULL, refusal IS NOT NULL, refusal, p_offline, out_status, answer)
    RETURNING id INTO event_id;

    IF refusal IS NULL THEN
        -- on duty or off, and the last known position (a check event is a
        -- position fix; its own row is the history)
        UPDATE volunteer v SET
            on_duty_shift_id = CASE WHEN p_kind = 'check_in' THEN shift_row.id
                                    WHEN v.on_duty_shift_id = shift_row.id THEN NULL
                                    ELSE v.on_duty_shift_id END,  -- a late check-out leaves another duty be
            last_position = CASE WHEN v.last_position_at IS NULL OR v.last_position_at <= p_at
                                 THEN here ELSE v.last_position END,
            last_accuracy_m = CASE WHEN v.last_position_at IS NULL OR v.last_position_at <= p_at
                                   THEN p_accuracy_m ELSE v.last_accuracy_m END,
            last_position_at = greatest(v.last_position_at, p_at),
            updated_at = now(), updated_by_id = coalesce(p_actor_id, v.updated_by_id)
        WHERE v.id = me.id;
        IF p_kind = 'check_out' THEN
            answer := answer || jsonb_build_object('hours', CASE
                WHEN closed_entry IS NULL THEN gridsvc_record_hours(open_check_in.id, event_id, p_at, is_inside, NULL)
                ELSE gridsvc_complete_hours(closed_entry, event_id, p_at, is_inside) END);
            UPDATE check_event e SET response = answer WHERE e.id = event_id;
        END IF;
    END IF;
    out_outcome := 'recorded';
    out_body := (jsonb_build_object('event_id', event_id) || answer)::text;
END $$"""


def upgrade() -> None:
    op.execute(COMPLETE_HOURS)
    op.execute(CHECK)


def downgrade() -> None:
    previous = migration_beside(__file__, "0015_check_in_fewer_statements.py")
    op.execute(previous.CHECK)
    op.execute("DROP FUNCTION gridsvc_complete_hours(integer, integer, timestamptz, boolean)")
